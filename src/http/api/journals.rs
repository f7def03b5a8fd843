//! The journal: who changed what, from where, before and after. Read from the change log.

use axum::{
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde_json::{json, Value};

use crate::changes::{self, JournalEntry, JournalFilter};
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::hal;
use crate::http::AppState;
use crate::resources::{parse_list_query, ListQuery};

pub const FILTERS: &[(&str, &str)] = &[
    ("resource", "collection name, e.g. subscribers"),
    ("resource_id", "object id"),
    ("actor", "admin login or apikey:<name>, * wildcard"),
    ("operation", "create, update or delete"),
    ("since", "from this time (YYYY-MM-DD HH:MM:SS, UTC)"),
    ("until", "up to this time"),
];

pub async fn list(
    State(app): State<AppState>,
    Auth(actor): Auth,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let q = parse_list_query(q.as_deref(), FILTERS, &[("id", "id")])?;
    let f = JournalFilter {
        id: None,
        resource: q.get("resource").map(String::from),
        resource_id: q.get_id("resource_id")?,
        actor: q.get("actor").map(String::from),
        operation: q.get("operation").map(String::from),
        since: q.get("since").map(String::from),
        until: q.get("until").map(String::from),
    };
    let mut c = app.store.read().await?;
    let (items, total) = changes::list(&mut c, actor.scope(), &f, &q.page).await?;
    respond(&headers, "journals", &q, items, total)
}

/// One journal entry.
pub async fn get_one(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let id = crate::resources::parse_id(&id)?;
    let f = JournalFilter {
        id: Some(id),
        ..Default::default()
    };
    let page = crate::store::Page {
        page: 1,
        rows: 1,
        order_by: "id",
        descending: false,
        count: false,
        after_id: None,
    };
    let mut c = app.store.read().await?;
    let (mut items, _) = changes::list(&mut c, actor.scope(), &f, &page).await?;
    let e = items
        .pop()
        .ok_or_else(|| Error::NotFound(format!("journal entry {id} not found")))?;
    Ok(hal::respond(StatusCode::OK, &headers, &entry_json(e)?))
}

fn entry_json(e: JournalEntry) -> Result<Value> {
    let links = json!({
        "self": { "href": format!("/api/journals/{}", e.id) },
        "collection": { "href": "/api/journals/" },
        "profile": { "href": hal::PROFILE },
        "curies": hal::curies(),
        format!("ngcp:{}", e.resource): { "href": format!("/api/{}/{}", e.resource, e.resource_id) },
    });
    match serde_json::to_value(&e) {
        Ok(Value::Object(mut m)) => {
            m.insert("_links".into(), links);
            Ok(Value::Object(m))
        }
        _ => Err(Error::internal(anyhow::anyhow!(
            "journal entry not serialisable"
        ))),
    }
}

pub fn respond(
    headers: &HeaderMap,
    name: &str,
    q: &ListQuery,
    items: Vec<JournalEntry>,
    total: Option<i64>,
) -> Result<Response> {
    let items: Vec<Value> = items.into_iter().map(entry_json).collect::<Result<_>>()?;
    let page = hal::CollectionPage {
        name,
        page: q.page.page,
        rows: q.page.rows,
        total,
        query: q.passthrough.clone(),
    };
    Ok(hal::respond(
        StatusCode::OK,
        headers,
        &hal::collection(&page, items),
    ))
}
