//! Writing one object, whoever asks: the body parsed and checked, the input built from it
//! naming the field on every error, the change recorded in the same transaction.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use utoipa::ToSchema;

use super::{handling, to_map, Created, Resource};
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
pub fn to_input<T: DeserializeOwned + ToSchema + 'static>(
    v: Value,
    read_only: &[&str],
    current: Option<&Map<String, Value>>,
) -> Result<T> {
    let Value::Object(mut m) = v else {
        return Err(Error::invalid("body", "must be a JSON object"));
    };
    m.remove("_links");
    m.remove("_embedded");
    let strict = handling::strict();
    for f in read_only {
        if let Some(val) = m.remove(*f) {
            let same = match current {
                Some(cur) => cur.get(*f).unwrap_or(&Value::Null) == &val,
                None => val.is_null(),
            };
            match (same, strict) {
                (true, _) => {}
                (false, true) => return Err(Error::invalid(*f, "is read-only")),
                (false, false) => handling::ignored(format!("body:{f}")),
            }
        }
    }
    let mut v = Value::Object(m);
    if !strict {
        handling::coerce(&mut v, &handling::shape_of::<T>(), "");
    }
    let first = match deserialize::<T>(&v) {
        Ok(t) => return Ok(t),
        Err(p) => p,
    };
    // Every field's problem at once: the field in error is left out and the rest read again,
    // until the rest reads or its problem is one already named (a field left out that is
    // required reads as missing).
    let Value::Object(mut rest) = v else {
        return Err(Error::invalid(first.0, first.1));
    };
    let mut problems = vec![first];
    let mut removed: Vec<String> = Vec::new();
    while problems.len() < 32 {
        let (field, _) = problems.last().expect("one problem at least");
        let top = field.split(['.', '[']).next().unwrap_or("").to_string();
        if rest.remove(&top).is_none() {
            break;
        }
        removed.push(top);
        match deserialize::<T>(&Value::Object(rest.clone())) {
            Ok(_) => break,
            // A field left out reads as missing: that is the problem named already.
            Err(p) if problems.iter().any(|(f, _)| *f == p.0) || removed.contains(&p.0) => break,
            Err(p) => problems.push(p),
        }
    }
    let mut all = problems.into_iter();
    let (field, message) = all.next().expect("one problem at least");
    Err(Error::Validation {
        field,
        message,
        input: None,
        more: all.collect(),
    })
}

/// The input read from `v`, or the path of the field in error and the problem.
fn deserialize<T: DeserializeOwned>(v: &Value) -> std::result::Result<T, (String, String)> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let msg = e.into_inner().to_string();
        let field = if path == "." || path.is_empty() {
            msg.split('`').nth(1).unwrap_or("body").to_string()
        } else {
            path
        };
        // serde quotes the value it could not read: never a secret's.
        let last = field.rsplit(['.', '[']).next().unwrap_or("");
        let secret = ["pass", "secret", "token"].iter().any(|w| last.contains(w))
            || field.starts_with("auth.");
        let msg = if secret && (msg.starts_with("invalid type") || msg.starts_with("invalid value"))
        {
            without_quoted(&msg)
        } else {
            msg
        };
        (field, msg)
    })
}

/// A message without its quoted parts (serde quotes a value in backticks, a string in
/// double quotes).
fn without_quoted(msg: &str) -> String {
    let outside = |s: &str, quote: char| -> String {
        s.split(quote)
            .enumerate()
            .filter(|(n, _)| n % 2 == 0)
            .map(|(_, part)| part)
            .collect()
    };
    outside(&outside(msg, '`'), '"')
        .replace(" ,", ",")
        .replace("  ", " ")
        .trim()
        .to_string()
}

/// The object `id` as `actor` may see it; 404 when absent, another reseller's, or gone
/// ([`Resource::gone`]).
pub async fn load_visible<R: Resource>(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    id: i64,
    lock: bool,
) -> Result<R::Repr> {
    match load_record::<R>(c, app, actor, id, lock).await? {
        r if !R::gone(&r) => Ok(r),
        _ => Err(Error::NotFound(format!("{} {id} not found", R::NAME))),
    }
}

/// Like [`load_visible`], gone objects included (their journal stays readable).
pub async fn load_record<R: Resource>(
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

/// Runs a request's write (from its `begin` to its `commit`) where the single writer is
/// cheapest to reach ([`crate::store::Store::on_writer`]), as part of the request: it reads
/// its input as strictly as the request does, what it ignores is named in the request's
/// answer, what it records is what the request waits for once committed (SIP servers,
/// hooks), and it logs under the request's span.
pub async fn on_writer<T: Send + 'static>(
    app: &App,
    work: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    use tracing::Instrument;
    if !app.store.writes_on_a_lane() {
        // In this task: its context is the request's already.
        return app.store.on_writer(work).await;
    }
    let strict = handling::strict();
    let work = async move {
        let fresh = std::cell::RefCell::new(changes::Recorded::default());
        let ((out, rec), ignored) = handling::scope(
            strict,
            changes::RECORDED.scope(fresh, async move {
                let out = work.await;
                (out, changes::RECORDED.with(|r| r.take()))
            }),
        )
        .await;
        Ok((out, rec, ignored))
    };
    let (out, rec, ignored) = app
        .store
        .on_writer(work.instrument(tracing::Span::current()))
        .await?;
    rec.add_to_current();
    for what in ignored {
        handling::ignored(what);
    }
    out
}

/// The passwords a document sets (see [`Resource::HASHED`]).
pub fn passwords<R: Resource>(doc: &Value) -> Vec<String> {
    doc.as_object().map(passwords_in::<R>).unwrap_or_default()
}

/// [`passwords`], of a document's fields.
pub fn passwords_in<R: Resource>(doc: &Map<String, Value>) -> Vec<String> {
    R::HASHED
        .iter()
        .filter_map(|f| doc.get(*f).and_then(hashable))
        .collect()
}

/// A password worth hashing ahead: text no longer than any such field takes (256
/// characters; a longer one is refused by its field's check without being hashed).
fn hashable(v: &Value) -> Option<String> {
    v.as_str()
        .filter(|s| s.chars().count() <= 256)
        .map(String::from)
}

/// Creates one object from a JSON body and records it, inside the caller's transaction (a
/// POST, or one row of a bulk import).
pub async fn create_one<R: Resource>(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    v: Value,
) -> Result<(Created, R::Repr)> {
    refuse_null_required::<R>(&v)?;
    let doc = v.clone();
    let input: R::Input =
        to_input(strip(v, R::VOLATILE), R::READ_ONLY, None).map_err(|e| e.with_input(&doc))?;
    let (created, built) = R::create_built(c, app, actor, input)
        .await
        .map_err(|e| e.with_input(&doc))?;
    let repr = match built {
        Some(r) => r,
        None => R::load(c, app, created.id, false)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("created object vanished")))?,
    };
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
    refuse_null_required::<R>(&new)?;
    if unchanged::<R>(&current, &new) {
        // Nothing to write: no new modify_timestamp, no journal entry (a GET → PUT round
        // trip gives back what it sent).
        return R::load(c, app, R::id(old), false)
            .await?
            .ok_or_else(|| Error::internal(anyhow::anyhow!("object vanished")));
    }
    let doc = new.clone();
    let input: R::Input = to_input(strip(new, R::VOLATILE), R::READ_ONLY, Some(&current))
        .map_err(|e| e.with_input(&doc))?;
    let id = R::id(old);
    R::update(c, app, actor, id, old, input)
        .await
        .map_err(|e| e.with_input(&doc))?;
    let repr = R::load(c, app, id, false)
        .await?
        .ok_or_else(|| Error::internal(anyhow::anyhow!("updated object vanished")))?;
    record::<R>(c, actor, Op::Update, Some(old), Some(&repr)).await?;
    Ok(repr)
}

/// Deletes one object and records it, inside the caller's transaction (an object that goes
/// with another: an extension's phone).
pub async fn delete_one<R: Resource>(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    id: i64,
) -> Result<()> {
    let Some(old) = R::load(c, app, id, true).await? else {
        return Ok(());
    };
    R::delete(c, app, actor, id, &old).await?;
    let after = R::load(c, app, id, false).await?;
    record::<R>(c, actor, Op::Delete, Some(&old), after.as_ref()).await
}

/// A field that must have a value cannot be set to null (a PATCH `replace` with null, a PUT
/// with `"email": null`): 422 naming it, not a silent "keep".
fn refuse_null_required<R: Resource>(doc: &Value) -> Result<()> {
    for f in R::REQUIRED {
        if doc.get(*f).is_some_and(Value::is_null) {
            return Err(Error::invalid(*f, "is required").with_input(doc));
        }
    }
    Ok(())
}

/// Whether `new` says nothing `current` does not: every field it holds is there with the
/// same value (read-only and volatile fields, and HAL's own, aside).
fn unchanged<R: Resource>(current: &Map<String, Value>, new: &Value) -> bool {
    let Value::Object(n) = new else { return false };
    // Read strictly, a read-only field that differs is an error to report, not a no-op.
    let strict = handling::strict();
    n.iter().all(|(k, v)| {
        k.starts_with('_')
            || (!strict && R::READ_ONLY.contains(&k.as_str()))
            || R::VOLATILE.contains(&k.as_str())
            || current.get(k) == Some(v)
    }) && current
        .keys()
        .filter(|k| !R::READ_ONLY.contains(&k.as_str()) && !R::VOLATILE.contains(&k.as_str()))
        .all(|k| n.contains_key(k))
}

/// How an existing object is to change: a whole new document (PUT), or a JSON Patch
/// (RFC 6902) applied to what it is now.
#[derive(Clone)]
pub enum Edit {
    Put(Value),
    Patch(json_patch::Patch),
}

impl Edit {
    /// The passwords this change sets (see [`Resource::HASHED`]): a PUT body's, or the
    /// values a patch adds or replaces at those fields.
    pub fn passwords<R: Resource>(&self) -> Vec<String> {
        match self {
            Edit::Put(v) => passwords::<R>(v),
            Edit::Patch(p) => {
                p.0.iter()
                    .filter_map(|op| match op {
                        json_patch::PatchOperation::Add(a) => Some((a.path.as_str(), &a.value)),
                        json_patch::PatchOperation::Replace(r) => Some((r.path.as_str(), &r.value)),
                        _ => None,
                    })
                    .filter(|(path, _)| {
                        path.strip_prefix('/')
                            .is_some_and(|f| R::HASHED.contains(&f))
                    })
                    .filter_map(|(_, v)| hashable(v))
                    .collect()
            }
        }
    }
    /// The new document: a PUT body, or the current representation with the patch applied.
    pub fn apply<R: Resource>(&self, current: &Map<String, Value>) -> Result<Value> {
        match self {
            // A PUT body was read before the transaction: volatile fields may have moved on.
            Edit::Put(v) => Ok(strip(v.clone(), R::VOLATILE)),
            Edit::Patch(p) => {
                let mut doc = Value::Object(current.clone());
                let lenient;
                let p = if handling::strict() {
                    p
                } else {
                    lenient = replace_absent_as_add(p, current);
                    &lenient
                };
                json_patch::patch(&mut doc, p)
                    .map_err(|e| Error::invalid("patch", format!("cannot apply: {e}")))?;
                Ok(doc)
            }
        }
    }
}

/// NGCP's clients `replace` fields the representation does not show — a write-only
/// `webpassword`, an unset optional field — which RFC 6902 refuses (the path must exist).
/// Read leniently, such a `replace` of a top-level member sets it, as `add` does.
fn replace_absent_as_add(p: &json_patch::Patch, current: &Map<String, Value>) -> json_patch::Patch {
    use json_patch::{AddOperation, PatchOperation};
    let ops =
        p.0.iter()
            .map(|op| match op {
                PatchOperation::Replace(r) => {
                    let tokens: Vec<_> = r.path.tokens().collect();
                    match tokens.as_slice() {
                        [name] if !current.contains_key(name.decoded().as_ref()) => {
                            PatchOperation::Add(AddOperation {
                                path: r.path.clone(),
                                value: r.value.clone(),
                            })
                        }
                        _ => op.clone(),
                    }
                }
                _ => op.clone(),
            })
            .collect();
    json_patch::Patch(ops)
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
