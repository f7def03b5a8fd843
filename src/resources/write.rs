//! Writing one object, whoever asks: the body parsed and checked, the input built from it
//! naming the field on every error, the change recorded in the same transaction.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::{to_map, Created, Resource};
use crate::app::App;
use crate::changes::{self, Change, Op};
use crate::error::{Error, Result};
use crate::model::Actor;
use crate::store::Conn;

/// Parses a JSON body. A string holding a NUL character — which no field needs and
/// PostgreSQL cannot store — is refused naming its field, on every database alike.
pub fn parse_json(bytes: &[u8]) -> Result<Value> {
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
    if let Some(field) = nul_at(&v, "") {
        return Err(Error::invalid(field, "must not contain NUL characters"));
    }
    Ok(v)
}

/// Where in `v` a NUL character is (in a string or an object's key), named as the errors of
/// [`to_input`] name fields: `lines[0].label`.
fn nul_at(v: &Value, path: &str) -> Option<String> {
    let here = || {
        if path.is_empty() {
            "body".to_string()
        } else {
            path.to_string()
        }
    };
    match v {
        Value::String(s) if s.contains('\0') => Some(here()),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, x)| nul_at(x, &format!("{path}[{i}]"))),
        Value::Object(m) => m.iter().find_map(|(k, x)| {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                return Some(here());
            }
            nul_at(x, &p)
        }),
        _ => None,
    }
}

pub fn strip(mut v: Value, fields: &[&str]) -> Value {
    if let Value::Object(m) = &mut v {
        for f in fields {
            m.remove(*f);
        }
    }
    v
}

/// Turns a JSON object into the resource's input, naming the field on every error.
pub fn to_input<T: DeserializeOwned>(
    v: Value,
    read_only: &[&str],
    current: Option<&Map<String, Value>>,
) -> Result<T> {
    let Value::Object(mut m) = v else {
        return Err(Error::invalid("body", "must be a JSON object"));
    };
    m.remove("_links");
    m.remove("_embedded");
    for f in read_only {
        if let Some(val) = m.remove(*f) {
            let same = match current {
                Some(cur) => cur.get(*f).unwrap_or(&Value::Null) == &val,
                None => val.is_null(),
            };
            if !same {
                return Err(Error::invalid(*f, "is read-only"));
            }
        }
    }
    serde_path_to_error::deserialize(Value::Object(m)).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let field = if path == "." || path.is_empty() {
            msg.split('`').nth(1).unwrap_or("body").to_string()
        } else {
            path
        };
        Error::invalid(field, msg)
    })
}

pub async fn load_visible<R: Resource>(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    id: i64,
    lock: bool,
) -> Result<R::Repr> {
    match R::load(c, app, id, lock).await? {
        Some(r) if R::visible(&r, actor) => Ok(r),
        _ => Err(Error::NotFound(format!("{} {id} not found", R::NAME))),
    }
}

/// Records a change of a resource's object, from its full representations.
pub async fn record<R: Resource>(
    c: &mut Conn,
    actor: &Actor,
    op: Op,
    before: Option<&R::Repr>,
    after: Option<&R::Repr>,
) -> Result<()> {
    let subject = after.or(before).expect("a change has a subject");
    let (b, a) = (
        before.map(|r| Value::Object(to_map(r))),
        after.map(|r| Value::Object(to_map(r))),
    );
    changes::record(
        c,
        actor,
        Change {
            resource: R::NAME,
            object_id: R::id(subject),
            reseller_id: R::reseller_of(subject),
            op,
            before: b.as_ref(),
            after: a.as_ref(),
        },
    )
    .await?;
    Ok(())
}

/// Creates one object from a JSON body and records it, inside the caller's transaction (a
/// POST, or one row of a bulk import).
pub async fn create_one<R: Resource>(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    v: Value,
) -> Result<(Created, R::Repr)> {
    let input: R::Input = to_input(strip(v, R::VOLATILE), R::READ_ONLY, None)?;
    let created = R::create(c, app, actor, input).await?;
    let repr = R::load(c, app, created.id, false)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("created object vanished")))?;
    record::<R>(c, actor, Op::Create, None, Some(&repr)).await?;
    Ok((created, repr))
}

/// Changes one object (locked by the caller) to the document `new` and records it, inside
/// the caller's transaction (a PUT or PATCH, or the command line).
pub async fn update_one<R: Resource>(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    old: &R::Repr,
    new: Value,
) -> Result<R::Repr> {
    let current = R::view(old, actor);
    let input: R::Input = to_input(strip(new, R::VOLATILE), R::READ_ONLY, Some(&current))?;
    let id = R::id(old);
    R::update(c, app, actor, id, old, input).await?;
    let repr = R::load(c, app, id, false)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("updated object vanished")))?;
    record::<R>(c, actor, Op::Update, Some(old), Some(&repr)).await?;
    Ok(repr)
}

/// How an existing object is to change: a whole new document (PUT), or a JSON Patch
/// (RFC 6902) applied to what it is now.
#[derive(Clone)]
pub enum Edit {
    Put(Value),
    Patch(json_patch::Patch),
}

impl Edit {
    /// The new document: a PUT body, or the current representation with the patch applied.
    pub fn apply<R: Resource>(&self, current: &Map<String, Value>) -> Result<Value> {
        match self {
            // A PUT body was read before the transaction: volatile fields may have moved on.
            Edit::Put(v) => Ok(strip(v.clone(), R::VOLATILE)),
            Edit::Patch(p) => {
                let mut doc = Value::Object(current.clone());
                json_patch::patch(&mut doc, p)
                    .map_err(|e| Error::invalid("patch", format!("cannot apply: {e}")))?;
                Ok(doc)
            }
        }
    }
}

/// Stores what before-hooks' answers mapped onto the object (response_map).
pub async fn save_metadata(
    c: &mut Conn,
    resource: &str,
    id: i64,
    metadata: &[(i64, Vec<(String, String)>)],
) -> Result<()> {
    for (hook, values) in metadata {
        crate::store::hooks::set_metadata(c, resource, id, *hook, values).await?;
    }
    Ok(())
}
