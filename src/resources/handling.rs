//! How strictly a request is read. NGCP's API is lenient, and the clients written for it
//! rely on that: booleans as `0`/`1`, ids as digit strings, fields and query parameters it
//! does not know ignored, read-only fields sent back in a PUT. voxprov reads requests the same
//! way by default — and names everything it ignored (the API puts the list in a
//! `Voxprov-Ignored` header), so nothing is dropped silently. Strict handling (`Prefer:
//! handling=strict`, RFC 7240, or the `api_strict` setting) refuses instead: 400 for an
//! unknown query parameter, 422 naming an unknown or read-only field.
//!
//! The handling is a property of the request being served (a task-local scope the API sets
//! up); work outside a request — the command line, bulk files — is strict.
//!
//! What a body may hold comes from its input type's schema ([`Shape`]): which fields are
//! booleans, integers or strings, which objects are closed.

use std::any::TypeId;
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{Map, Value};
use utoipa::{PartialSchema, ToSchema};

pub struct Handling {
    pub strict: bool,
    ignored: RefCell<Vec<String>>,
}

tokio::task_local! {
    static HANDLING: Handling;
}

/// Runs `f` with this handling; returns its output and what was ignored.
pub async fn scope<F: std::future::Future>(strict: bool, f: F) -> (F::Output, Vec<String>) {
    HANDLING
        .scope(
            Handling {
                strict,
                ignored: RefCell::new(Vec::new()),
            },
            async {
                let out = f.await;
                let ignored = HANDLING.with(|h| h.ignored.take());
                (out, ignored)
            },
        )
        .await
}

/// Whether the request being served is read strictly (outside a request: yes).
pub fn strict() -> bool {
    HANDLING.try_with(|h| h.strict).unwrap_or(true)
}

/// Notes something the request held that was ignored: `body:field` or `query:name`.
pub fn ignored(what: impl Into<String>) {
    let what = what.into();
    let _ = HANDLING.try_with(|h| {
        let mut v = h.ignored.borrow_mut();
        if !v.contains(&what) {
            v.push(what);
        }
    });
}

/// A query parameter the route does not take: ignored and named, or under strict handling a
/// 400 saying `unknown query parameter '<name>'` and then `what the route takes`.
pub fn unknown_query(name: &str, takes: impl FnOnce() -> String) -> crate::error::Result<()> {
    if strict() {
        return Err(crate::error::Error::BadRequest(format!(
            "unknown query parameter '{name}'{}",
            takes()
        )));
    }
    ignored(format!("query:{name}"));
    Ok(())
}

/// What a value of an input type may be.
#[derive(Debug)]
pub enum Shape {
    Bool,
    Int,
    Num,
    Str,
    /// Anything (a free-form value).
    Any,
    /// An object with these fields; `open`: other keys are allowed too (a map).
    Object {
        props: BTreeMap<String, Shape>,
        open: bool,
    },
    Array(Box<Shape>),
}

/// The shape of `T`'s input, from its schema (computed once per type).
pub fn shape_of<T: ToSchema + 'static>() -> Arc<Shape> {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, Arc<Shape>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(s) = cache.lock().expect("shapes").get(&TypeId::of::<T>()) {
        return s.clone();
    }
    let mut nested = Vec::new();
    T::schemas(&mut nested);
    let refs: HashMap<String, Value> = nested
        .into_iter()
        .map(|(n, s)| (n, serde_json::to_value(s).unwrap_or(Value::Null)))
        .collect();
    let root = serde_json::to_value(<T as PartialSchema>::schema()).unwrap_or(Value::Null);
    let shape = Arc::new(build(&root, &refs, 0));
    cache
        .lock()
        .expect("shapes")
        .insert(TypeId::of::<T>(), shape.clone());
    shape
}

fn build(s: &Value, refs: &HashMap<String, Value>, depth: usize) -> Shape {
    if depth > 16 {
        return Shape::Any;
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or("");
        return match refs.get(name) {
            Some(t) => build(t, refs, depth + 1),
            None => Shape::Any,
        };
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            let real: Vec<&Value> = alts
                .iter()
                .filter(|a| a.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            return match real.as_slice() {
                [one] => build(one, refs, depth + 1),
                _ => Shape::Any,
            };
        }
    }
    let ty = match s.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    };
    match ty {
        Some("boolean") => Shape::Bool,
        Some("integer") => Shape::Int,
        Some("number") => Shape::Num,
        Some("string") => Shape::Str,
        Some("array") => Shape::Array(Box::new(
            s.get("items")
                .map(|i| build(i, refs, depth + 1))
                .unwrap_or(Shape::Any),
        )),
        Some("object") | None if s.get("properties").is_some() => {
            let props: BTreeMap<String, Shape> = s["properties"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), build(v, refs, depth + 1)))
                        .collect()
                })
                .unwrap_or_default();
            let open = matches!(s.get("additionalProperties"), Some(v) if v != &Value::Bool(false));
            Shape::Object { props, open }
        }
        Some("object") => Shape::Object {
            props: BTreeMap::new(),
            open: true,
        },
        _ => Shape::Any,
    }
}

/// Reads `v` as NGCP does: booleans from 0/1 and their strings, integers from digit strings,
/// strings from numbers; keys the shape does not know are dropped (and named, `body:path`).
pub fn coerce(v: &mut Value, shape: &Shape, path: &str) {
    match (shape, &*v) {
        (Shape::Bool, Value::Number(n)) => match n.as_i64() {
            Some(0) => *v = Value::Bool(false),
            Some(1) => *v = Value::Bool(true),
            _ => {}
        },
        (Shape::Bool, Value::String(s)) => match s.to_ascii_lowercase().as_str() {
            "0" | "false" => *v = Value::Bool(false),
            "1" | "true" => *v = Value::Bool(true),
            _ => {}
        },
        (Shape::Int, Value::String(s)) => {
            if let Ok(i) = s.trim().parse::<i64>() {
                *v = Value::from(i);
            }
        }
        (Shape::Num, Value::String(s)) => {
            if let Ok(i) = s.trim().parse::<i64>() {
                *v = Value::from(i);
            } else if let Some(n) = s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                *v = Value::Number(n);
            }
        }
        (Shape::Str, Value::Number(n)) => *v = Value::String(n.to_string()),
        (Shape::Array(item), Value::Array(_)) => {
            if let Value::Array(a) = v {
                for (i, x) in a.iter_mut().enumerate() {
                    coerce(x, item, &format!("{path}[{i}]"));
                }
            }
        }
        (Shape::Object { props, open }, Value::Object(_)) => {
            if let Value::Object(m) = v {
                coerce_object(m, props, *open, path);
            }
        }
        _ => {}
    }
}

fn coerce_object(
    m: &mut Map<String, Value>,
    props: &BTreeMap<String, Shape>,
    open: bool,
    path: &str,
) {
    let keys: Vec<String> = m.keys().cloned().collect();
    for k in keys {
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match props.get(&k) {
            Some(s) => {
                if let Some(x) = m.get_mut(&k) {
                    coerce(x, s, &here);
                }
            }
            None if !open => {
                m.remove(&k);
                ignored(format!("body:{here}"));
            }
            None => {}
        }
    }
}
