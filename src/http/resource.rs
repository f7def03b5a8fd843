//! The REST conventions, once: every collection is a [`Resource`] and gets the same list,
//! get, create, PUT, PATCH, DELETE, OPTIONS and journal handlers, the same body parsing,
//! ETags, `Prefer` handling and change records. A resource module says only what differs:
//! its fields, filters and rules.
//!
//! A write is one transaction: load the object (locked), check If-Match, build the new
//! input (PUT body, or the current representation with the JSON Patch applied), validate,
//! write, record the change, commit. Nothing half-written survives an error.

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, get, MethodRouter},
    Router,
};
use serde_json::{json, Map, Value};

use super::{auth::Auth, hal, AppState};
use crate::app::App;
use crate::changes::{self, Op};
use crate::crypto::Prehashed;
use crate::error::{Error, Result};
use crate::hooks::before;
use crate::model::Actor;
use crate::resources::write::{load_record, load_visible, passwords, save_metadata, strip, Edit};
pub use crate::resources::{
    create_one, on_writer, parse_id, parse_json, parse_list_query, record, to_input, to_map,
    update_one, Created, ListQuery, Resource, MAX_ROWS,
};

/// Reads the body, refusing more than the configured limit (413) and other media types (415).
pub async fn read_body(
    app: &App,
    headers: &HeaderMap,
    body: Body,
    accepted: &[&str],
) -> Result<Value> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !accepted.contains(&mime.as_str()) {
        return Err(Error::UnsupportedMediaType(format!(
            "Content-Type must be {} (got '{}')",
            accepted.join(" or "),
            if mime.is_empty() { "none" } else { &mime }
        )));
    }
    let limit = app.cfg.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| Error::PayloadTooLarge(limit))?;
    if bytes.is_empty() {
        return Err(Error::BadRequest(
            "the request is missing a message body".into(),
        ));
    }
    parse_json(&bytes)
}

const JSON_TYPES: &[&str] = &["application/json", "application/hal+json"];
const PATCH_TYPES: &[&str] = &["application/json-patch+json"];

/// The ETag of a representation: a keyed hash, so it reveals nothing about secret fields.
/// Volatile fields (a sync status) are left out: they are not the object's to change.
fn etag<R: Resource>(app: &App, repr: &R::Repr) -> String {
    let v = strip(Value::Object(to_map(repr)), R::VOLATILE);
    format!(
        "\"{}\"",
        app.etag(&serde_json::to_vec(&v).unwrap_or_default())
    )
}

fn check_if_match(headers: &HeaderMap, current: &str) -> Result<()> {
    if let Some(v) = headers.get(header::IF_MATCH) {
        // Bytes that are not visible ASCII hold no entity tag either (and must not make the
        // header count as absent).
        let v = v.to_str().unwrap_or("\u{0}");
        // `*` or entity tags ("…", W/"…"): anything else is a malformed header, not a
        // precondition that failed.
        let tags: Vec<&str> = v.split(',').map(str::trim).collect();
        let well_formed = |t: &str| {
            let t = t.strip_prefix("W/").unwrap_or(t);
            t == "*" || (t.len() >= 2 && t.starts_with('"') && t.ends_with('"'))
        };
        if !tags.iter().all(|t| well_formed(t)) {
            return Err(Error::BadRequest(
                "If-Match: give * or the ETag of a GET (a quoted entity tag)".into(),
            ));
        }
        let ok = tags
            .iter()
            .any(|t| *t == "*" || *t == current || t.trim_start_matches("W/") == current);
        if !ok {
            return Err(Error::PreconditionFailed(
                "If-Match does not match the current ETag; reload and retry".into(),
            ));
        }
    }
    Ok(())
}

fn wants_representation(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("return=representation"))
        })
}

fn item_json<R: Resource>(repr: &R::Repr, actor: &Actor) -> Value {
    hal::item(R::NAME, R::id(repr), R::view(repr, actor), &R::links(repr))
}

fn with_etag(mut resp: Response, tag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(tag) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

pub async fn list_handler<R: Resource>(
    State(app): State<AppState>,
    Auth(actor): Auth,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    R::check_access(&actor, false)?;
    let q = parse_list_query(q.as_deref(), R::FILTERS, R::ORDER_BY)?;
    let mut c = app.store.read().await?;
    let (items, total) = R::list(&mut c, &app, &actor, &q).await?;
    drop(c);
    let items = items.iter().map(|r| item_json::<R>(r, &actor)).collect();
    let page = hal::CollectionPage {
        name: R::NAME,
        page: q.page.page,
        rows: q.page.rows,
        total,
        query: q.passthrough,
    };
    Ok(hal::respond(
        StatusCode::OK,
        &headers,
        &hal::collection(&page, items),
    ))
}

async fn get_item<R: Resource>(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    R::check_access(&actor, false)?;
    let id = parse_id(&id)?;
    let mut c = app.store.read().await?;
    let repr = load_visible::<R>(&mut c, &app, &actor, id, false).await?;
    drop(c);
    let tag = etag::<R>(&app, &repr);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag))
    {
        return Ok(with_etag(StatusCode::NOT_MODIFIED.into_response(), &tag));
    }
    Ok(with_etag(
        hal::respond(StatusCode::OK, &headers, &item_json::<R>(&repr, &actor)),
        &tag,
    ))
}

async fn create<R: Resource>(
    State(app): State<AppState>,
    Auth(actor): Auth,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    R::check_access(&actor, true)?;
    let csv = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().to_ascii_lowercase().starts_with("text/csv"));
    if let (true, Some(kind)) = (csv, R::BULK) {
        refuse_bulk_past_before_hooks::<R>(&app).await?;
        let limit = app.cfg.max_body_bytes;
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| Error::PayloadTooLarge(limit))?;
        let rows = crate::resources::bulk::CsvRows::new(kind, std::io::Cursor::new(bytes))?;
        return bulk(&app, &actor, kind, q.as_deref(), rows).await;
    }
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let v = if R::RAW_BODY.contains(&mime.as_str()) {
        let limit = R::raw_limit(&app);
        let bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| Error::PayloadTooLarge(limit))?;
        if bytes.is_empty() {
            return Err(Error::BadRequest(
                "the request is missing a message body".into(),
            ));
        }
        let query: Vec<(String, String)> =
            form_urlencoded::parse(q.as_deref().unwrap_or("").as_bytes())
                .into_owned()
                .collect();
        R::raw_document(&bytes, &query)?
    } else {
        read_body(&app, &headers, body, JSON_TYPES).await?
    };
    if let Value::Array(items) = v {
        let Some(kind) = R::BULK else {
            return Err(Error::invalid(
                "body",
                "must be a JSON object (bulk creation is not available on this collection)",
            ));
        };
        refuse_bulk_past_before_hooks::<R>(&app).await?;
        return bulk(
            &app,
            &actor,
            kind,
            q.as_deref(),
            crate::resources::bulk::json_rows(items),
        )
        .await;
    }
    if R::PREPARES {
        R::prepare(&app, &actor, &v).await?;
    }
    // before-hooks see a well-formed object only, and run before the transaction opens.
    let hooks = app.hooks.before_for(R::NAME).await?;
    let (v, metadata) = if hooks.is_empty() {
        (v, Vec::new())
    } else {
        to_input::<R::Input>(strip(v.clone(), R::VOLATILE), R::READ_ONLY, None)?;
        // A reseller's own scope always wins over what the body claims.
        let reseller = actor
            .scope()
            .or_else(|| v.get("reseller_id").and_then(Value::as_i64));
        let pending = before::Pending {
            resource: R::NAME,
            op: Op::Create,
            object_id: None,
            reseller_id: reseller,
            old: None,
        };
        let verdict = before::run(&app.hooks, &hooks, &actor, &pending, v).await?;
        (verdict.doc, verdict.metadata)
    };
    let (created, repr) = {
        let (app2, actor) = (app.clone(), actor.clone());
        let hashed = Prehashed::of(passwords::<R>(&v)).await?;
        on_writer(
            &app,
            // Boxed: the handler's future holds a pointer, not the write's whole future.
            Box::pin(hashed.scope(async move {
                let mut tx = app2.store.begin().await?;
                let (created, repr) = create_one::<R>(&mut tx, &app2, &actor, v).await?;
                save_metadata(&mut tx, R::NAME, created.id, &metadata).await?;
                tx.commit().await?;
                Ok((created, repr))
            })),
        )
        .await?
    };
    let location = format!("/api/{}/{}", R::NAME, created.id);
    let tag = etag::<R>(&app, &repr);
    let mut resp = if wants_representation(&headers) || created.once.is_some() {
        let mut body = item_json::<R>(&repr, &actor);
        if let (Some(once), Some(obj)) = (created.once, body.as_object_mut()) {
            obj.extend(once);
        }
        hal::respond(StatusCode::CREATED, &headers, &body)
    } else {
        StatusCode::CREATED.into_response()
    };
    resp.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(&location).map_err(Error::internal)?,
    );
    Ok(with_etag(resp, &tag))
}

/// Bulk creation does not call before-hooks (one call per row inside one transaction would
/// hold the writer for as long as the hooks take), so it is refused while any would be
/// asked about a creation of this kind.
async fn refuse_bulk_past_before_hooks<R: Resource>(app: &App) -> Result<()> {
    let event = format!("{}.created", crate::hooks::singular(R::NAME));
    let asked: Vec<String> = app
        .hooks
        .before_for(R::NAME)
        .await?
        .iter()
        .filter(|h| crate::hooks::matches(&h.events, &event))
        .map(|h| format!("'{}'", h.name))
        .collect();
    if asked.is_empty() {
        return Ok(());
    }
    Err(Error::Conflict(format!(
        "before-hooks {} check every {event}: create these one at a time",
        asked.join(", ")
    )))
}

/// A bulk POST (a JSON array or a text/csv body): per-row results. `?mode=all-or-nothing`
/// (default; 422 and nothing saved when any row fails) or `per-row` (good rows saved);
/// `?dry_run=1` checks every row and saves nothing.
async fn bulk(
    app: &App,
    actor: &Actor,
    kind: crate::resources::Kind,
    q: Option<&str>,
    rows: impl Iterator<Item = crate::resources::bulk::Row>,
) -> Result<Response> {
    use crate::resources::bulk::{Mode, Options};
    let mut opts = Options {
        mode: Mode::AllOrNothing,
        dry_run: false,
        batch: 1000,
    };
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "mode" => {
                opts.mode = match v.as_ref() {
                    "all-or-nothing" => Mode::AllOrNothing,
                    "per-row" => Mode::PerRow,
                    _ => {
                        return Err(Error::BadRequest(format!(
                            "mode: '{v}' is not all-or-nothing or per-row"
                        )))
                    }
                }
            }
            "dry_run" => opts.dry_run = crate::resources::query::query_bool("dry_run", &v)?,
            _ => crate::resources::handling::unknown_query(&k, || {
                " for a bulk POST; use mode, dry_run".into()
            })?,
        }
    }
    let mut results = Vec::new();
    let sum =
        crate::resources::bulk::import(app, actor, kind, rows, &opts, |r| results.push(r)).await?;
    if !sum.committed && !sum.dry_run {
        for r in results.iter_mut().filter(|r| r.status == "created") {
            r.status = "not_saved";
            r.id = None;
            r.password = None;
        }
    }
    let status = if sum.errors > 0 && opts.mode == Mode::AllOrNothing {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        axum::Json(json!({ "summary": sum, "rows": results })),
    )
        .into_response())
}

/// What before-hooks decided about a change of an existing object, decided outside the
/// transaction (hooks may be slow; the writer must not wait for them): the object's ETag
/// they saw, and the document and metadata they left. The transaction then checks that the
/// object is still as the hooks saw it.
struct Decided {
    seen: String,
    doc: Option<Value>,
    metadata: Vec<(i64, Vec<(String, String)>)>,
}

async fn decide<R: Resource>(
    app: &App,
    actor: &Actor,
    id: i64,
    headers: &HeaderMap,
    op: Op,
    change: Option<&Edit>,
) -> Result<Option<Decided>> {
    let hooks = app.hooks.before_for(R::NAME).await?;
    if hooks.is_empty() {
        return Ok(None);
    }
    let mut c = app.store.read().await?;
    let old = load_visible::<R>(&mut c, app, actor, id, false).await?;
    drop(c);
    let seen = etag::<R>(app, &old);
    check_if_match(headers, &seen)?;
    let current = Value::Object(R::view(&old, actor));
    let new = match change {
        Some(ch) => {
            let doc = ch.apply::<R>(current.as_object().expect("an object"))?;
            to_input::<R::Input>(doc.clone(), R::READ_ONLY, current.as_object())?;
            doc
        }
        None => current.clone(),
    };
    let pending = before::Pending {
        resource: R::NAME,
        op,
        object_id: Some(id),
        reseller_id: R::reseller_of(&old),
        old: Some(&current),
    };
    let verdict = before::run(&app.hooks, &hooks, actor, &pending, new).await?;
    Ok(Some(Decided {
        seen,
        doc: change.is_some().then_some(verdict.doc),
        metadata: verdict.metadata,
    }))
}

/// How often a change decided by before-hooks is tried again when the object moved on
/// meanwhile (the hooks are asked again each time).
const HOOK_RACE_RETRIES: usize = 3;

async fn put<R: Resource>(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    R::check_access(&auth.0, true)?;
    let id = parse_id(&id)?;
    let v = read_body(&app, &headers, body, JSON_TYPES).await?;
    modify::<R>(app, auth.0, id, headers, Edit::Put(v)).await
}

async fn patch<R: Resource>(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    R::check_access(&auth.0, true)?;
    let id = parse_id(&id)?;
    let v = read_body(&app, &headers, body, PATCH_TYPES).await?;
    check_patch(&v)?;
    let p: json_patch::Patch = serde_json::from_value(v)
        .map_err(|e| Error::BadRequest(format!("invalid JSON Patch: {e}")))?;
    modify::<R>(app, auth.0, id, headers, Edit::Patch(p)).await
}

/// A JSON Patch's shape (RFC 6902), each fault told as NGCP's clients expect to read it.
fn check_patch(v: &Value) -> Result<()> {
    let Value::Array(ops) = v else {
        return Err(Error::BadRequest(
            "a JSON Patch (RFC 6902) must be an array of operations".into(),
        ));
    };
    for op in ops {
        let Some(o) = op.as_object() else {
            return Err(Error::BadRequest(
                "each JSON Patch operation must be an object".into(),
            ));
        };
        let Some(name) = o.get("op").and_then(Value::as_str) else {
            return Err(Error::BadRequest(
                "each JSON Patch operation must have an 'op' field".into(),
            ));
        };
        let keys: &[&str] = match name {
            "add" | "replace" | "test" => &["path", "value"],
            "remove" => &["path"],
            "move" | "copy" => &["from", "path"],
            other => {
                return Err(Error::BadRequest(format!(
                "Invalid PATCH op '{other}', must be one of add, remove, replace, move, copy, test"
            )))
            }
        };
        let missing: Vec<&str> = keys
            .iter()
            .copied()
            .filter(|k| !o.contains_key(*k))
            .collect();
        if !missing.is_empty() {
            return Err(Error::BadRequest(format!(
                "Missing PATCH keys '{}' for op '{name}'",
                missing.join("', '")
            )));
        }
        if let Some(extra) = o.keys().find(|k| *k != "op" && !keys.contains(&k.as_str())) {
            return Err(Error::BadRequest(format!(
                "Invalid PATCH key '{extra}' for op '{name}'"
            )));
        }
    }
    Ok(())
}

async fn modify<R: Resource>(
    app: AppState,
    actor: Actor,
    id: i64,
    headers: HeaderMap,
    change: Edit,
) -> Result<Response> {
    if R::PREPARES {
        let doc = match &change {
            Edit::Put(v) => v.clone(),
            Edit::Patch(_) => {
                let mut c = app.store.read().await?;
                let old = load_visible::<R>(&mut c, &app, &actor, id, false).await?;
                drop(c);
                change.apply::<R>(&R::view(&old, &actor))?
            }
        };
        R::prepare(&app, &actor, &doc).await?;
    }
    let mut tries = 0;
    let repr = loop {
        tries += 1;
        let decided = decide::<R>(&app, &actor, id, &headers, Op::Update, Some(&change)).await?;
        let set = match &decided {
            Some(d) => d.doc.as_ref().map(passwords::<R>).unwrap_or_default(),
            None => change.passwords::<R>(),
        };
        let hashed = Prehashed::of(set).await?;
        let (app2, actor2, headers2, change2) =
            (app.clone(), actor.clone(), headers.clone(), change.clone());
        let done = on_writer(
            &app,
            // Boxed: the handler's future holds a pointer, not the write's whole future.
            Box::pin(hashed.scope(async move {
                let (app, actor, headers, change) = (app2, actor2, headers2, change2);
                let mut tx = app.store.begin().await?;
                let old = load_visible::<R>(&mut tx, &app, &actor, id, true).await?;
                let tag = etag::<R>(&app, &old);
                let current = R::view(&old, &actor);
                let new = match &decided {
                    // Changed since the before-hooks saw it: asked again.
                    Some(d) if d.seen != tag => return Ok(None),
                    Some(d) => d.doc.clone().expect("a change has a document"),
                    None => change.apply::<R>(&current)?,
                };
                let repr = update_one::<R>(&mut tx, &app, &actor, &old, new).await?;
                // The precondition is judged after the change itself (an invalid body is a 422
                // whatever the ETag), and before anything is committed: a stale If-Match writes
                // nothing.
                check_if_match(&headers, &tag)?;
                if let Some(d) = &decided {
                    save_metadata(&mut tx, R::NAME, id, &d.metadata).await?;
                }
                tx.commit().await?;
                Ok(Some(repr))
            })),
        )
        .await?;
        match done {
            Some(repr) => break repr,
            None if tries < HOOK_RACE_RETRIES => continue,
            None => {
                return Err(Error::Conflict(format!(
                    "{} {id} kept changing while before-hooks were asked; retry",
                    R::NAME
                )))
            }
        }
    };
    let tag = etag::<R>(&app, &repr);
    let resp = if wants_representation(&headers) {
        hal::respond(StatusCode::OK, &headers, &item_json::<R>(&repr, &actor))
    } else {
        StatusCode::NO_CONTENT.into_response()
    };
    Ok(with_etag(resp, &tag))
}

async fn delete<R: Resource>(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    R::check_access(&actor, true)?;
    let id = parse_id(&id)?;
    let mut tries = 0;
    loop {
        tries += 1;
        let decided = decide::<R>(&app, &actor, id, &headers, Op::Delete, None).await?;
        let (app2, actor2, headers2) = (app.clone(), actor.clone(), headers.clone());
        let done = on_writer(&app, async move {
            let (app, actor, headers) = (app2, actor2, headers2);
            let mut tx = app.store.begin().await?;
            let old = load_visible::<R>(&mut tx, &app, &actor, id, true).await?;
            let tag = etag::<R>(&app, &old);
            check_if_match(&headers, &tag)?;
            if let Some(d) = &decided {
                if d.seen != tag {
                    // Changed since the before-hooks saw it: asked again.
                    return Ok(false);
                }
                save_metadata(&mut tx, R::NAME, id, &d.metadata).await?;
            }
            R::delete(&mut tx, &app, &actor, id, &old).await?;
            let after = R::load(&mut tx, &app, id, false).await?;
            record::<R>(&mut tx, &actor, Op::Delete, Some(&old), after.as_ref()).await?;
            tx.commit().await?;
            Ok(true)
        })
        .await?;
        if done {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        if tries >= HOOK_RACE_RETRIES {
            return Err(Error::Conflict(format!(
                "{} {id} kept changing while before-hooks were asked; retry",
                R::NAME
            )));
        }
    }
}

async fn journal<R: Resource>(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    R::check_access(&actor, false)?;
    let id = parse_id(&id)?;
    let mut c = app.store.read().await?;
    // Visible now, or once visible (a terminated subscriber keeps its record).
    load_record::<R>(&mut c, &app, &actor, id, false).await?;
    let q = parse_list_query(q.as_deref(), &[], &[("id", "id")])?;
    let f = changes::JournalFilter {
        resource: Some(R::NAME.into()),
        resource_id: Some(id),
        ..Default::default()
    };
    let (items, total) = changes::list(&mut c, actor.scope(), &f, &q.page).await?;
    let name = format!("{}/{id}/journal", R::NAME);
    super::api::journals::respond(&headers, &name, &q, items, total)
}

/// What hooks' answers put on an object (their response_map): key → value, with the hook
/// and time it came from.
async fn metadata<R: Resource>(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    R::check_access(&actor, false)?;
    let id = parse_id(&id)?;
    let mut c = app.store.read().await?;
    load_record::<R>(&mut c, &app, &actor, id, false).await?;
    let rows = crate::store::hooks::metadata(&mut c, R::NAME, id).await?;
    let mut values = Map::new();
    let mut sources = Map::new();
    for (k, v, hook, at) in rows {
        values.insert(
            k.clone(),
            serde_json::from_str(&v).unwrap_or(Value::String(v)),
        );
        sources.insert(k, json!({ "hook_id": hook, "modify_timestamp": at }));
    }
    Ok(axum::Json(json!({
        "resource": R::NAME,
        "id": id,
        "metadata": values,
        "sources": sources,
        "_links": { "self": { "href": format!("/api/{}/{id}/metadata", R::NAME) },
                    "up": { "href": format!("/api/{}/{id}", R::NAME) } },
    }))
    .into_response())
}

fn allow(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn collection_methods<R: Resource>() -> Vec<Method> {
    let mut m = vec![Method::GET, Method::HEAD, Method::OPTIONS];
    if R::CAN_CREATE {
        m.push(Method::POST);
    }
    m
}

pub fn item_methods<R: Resource>() -> Vec<Method> {
    let mut m = vec![Method::GET, Method::HEAD, Method::OPTIONS];
    if R::CAN_UPDATE {
        m.extend([Method::PUT, Method::PATCH]);
    }
    if R::CAN_DELETE {
        m.push(Method::DELETE);
    }
    m
}

fn options_response(name: &str, methods: Vec<Method>, post: bool, patch: bool) -> Response {
    let mut resp = (
        StatusCode::OK,
        axum::Json(json!({ "methods": methods.iter().map(Method::as_str).collect::<Vec<_>>() })),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ALLOW,
        HeaderValue::from_str(&allow(&methods)).expect("method names"),
    );
    if post {
        // NGCP's form: the media type with the collection's relation as its profile.
        if let Ok(v) = HeaderValue::from_str(&format!(
            "application/hal+json; profile=http://purl.org/sipwise/ngcp-api/#rel-{name}"
        )) {
            h.insert("accept-post", v);
        }
    }
    if patch {
        h.insert(
            "accept-patch",
            HeaderValue::from_static("application/json-patch+json"),
        );
    }
    resp
}

fn not_allowed(methods: Vec<Method>) -> Response {
    let allowed = allow(&methods);
    let mut r =
        Error::MethodNotAllowed(format!("method not allowed; allowed: {allowed}")).into_response();
    if let Ok(v) = HeaderValue::from_str(&allowed) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

/// The routes of one resource.
pub fn routes<R: Resource>() -> Router<AppState> {
    let coll = format!("/api/{}/", R::NAME);
    let item = format!("/api/{}/{{id}}", R::NAME);
    let mut c: MethodRouter<AppState> = get(list_handler::<R>)
        .options(|| async { options_response(R::NAME, collection_methods::<R>(), true, false) });
    if R::CAN_CREATE {
        c = c.post(create::<R>);
    }
    let mut i: MethodRouter<AppState> = get(get_item::<R>)
        .options(|| async { options_response(R::NAME, item_methods::<R>(), false, R::CAN_UPDATE) });
    if R::CAN_UPDATE {
        i = i.put(put::<R>).patch(patch::<R>);
    }
    if R::CAN_DELETE {
        i = i.delete(delete::<R>);
    }
    let redirect_to = coll.clone();
    Router::new()
        .route(
            &coll,
            c.fallback(|| async { not_allowed(collection_methods::<R>()) }),
        )
        .route(
            &item,
            i.fallback(|| async { not_allowed(item_methods::<R>()) }),
        )
        .route(
            &format!("/api/{}/{{id}}/journal/", R::NAME),
            get(journal::<R>),
        )
        .route(
            &format!("/api/{}/{{id}}/metadata", R::NAME),
            get(metadata::<R>),
        )
        .route(
            &format!("/api/{}", R::NAME),
            any(move |RawQuery(q): RawQuery| {
                let to = match q {
                    Some(q) => format!("{redirect_to}?{q}"),
                    None => redirect_to.clone(),
                };
                async move { axum::response::Redirect::permanent(&to) }
            }),
        )
}
