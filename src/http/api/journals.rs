//! The journal: who changed what, from where, before and after. Read from the change log.

use axum::{
    extract::{RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde_json::Value;

use crate::changes::{self, JournalEntry, JournalFilter};
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::hal;
use crate::http::resource::{parse_list_query, ListQuery};
use crate::http::AppState;

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

pub fn respond(
    headers: &HeaderMap,
    name: &str,
    q: &ListQuery,
    items: Vec<JournalEntry>,
    total: Option<i64>,
) -> Result<Response> {
    let items: Vec<Value> = items
        .into_iter()
        .map(|e| {
            let id = e.id;
            match serde_json::to_value(&e) {
                Ok(Value::Object(m)) => Ok(hal::item("journals", id, m, &[])),
                _ => Err(Error::internal(anyhow::anyhow!(
                    "journal entry not serialisable"
                ))),
            }
        })
        .collect::<Result<_>>()?;
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
