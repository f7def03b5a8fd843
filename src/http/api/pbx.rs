//! The PBX's routes beyond its collections' generic ones (the rules are in
//! resources/pbx/runtime.rs): an extension's runtime, a tenant's destinations, the globals
//! document and SARK's system commands; and what is read live or exported rather than
//! stored as objects: registrations (`/api/subscriberregistrations/`) and the CSV export of
//! call records (`/api/cdrs/export`).

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::get,
    Router,
};
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::resource::read_body;
use crate::http::{hal, AppState};
use crate::resources::parse_id;
use crate::resources::pbx::runtime;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/pbxextensions/{id}/runtime",
            get(get_runtime).put(put_runtime),
        )
        .route("/api/pbxdestinations/", get(destinations))
        .route("/api/pbxglobals", get(get_globals).put(put_globals))
        .route("/api/pbxsyscommands/{command}", get(syscommand))
        .route("/api/cdrs/export", get(export_cdrs))
        .route("/api/subscriberregistrations/", get(registrations))
}

async fn get_runtime(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let v = runtime::get_runtime(&app, &actor, parse_id(&id)?).await?;
    Ok(hal::respond(StatusCode::OK, &headers, &v))
}

async fn put_runtime(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let doc = read_body(&app, &headers, body, &["application/json"]).await?;
    let v = runtime::put_runtime(&app, &actor, parse_id(&id)?, &doc).await?;
    Ok(hal::respond(StatusCode::OK, &headers, &v))
}

async fn destinations(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let t = q
        .get("tenant_id")
        .ok_or_else(|| Error::invalid("tenant_id", "is required"))?;
    let t = t
        .parse::<i64>()
        .map_err(|_| Error::invalid("tenant_id", "must be an integer"))?;
    let list = runtime::destinations(&app, &actor, t).await?;
    let body = json!({
        "total_count": list.len(),
        "_embedded": { "ngcp:pbxdestinations": list },
        "_links": { "self": { "href": format!("/api/pbxdestinations/?tenant_id={t}") } },
    });
    Ok(hal::respond(StatusCode::OK, &headers, &body))
}

async fn get_globals(
    State(app): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
) -> Result<Response> {
    let v = runtime::get_globals(&app, &actor).await?;
    Ok(hal::respond(StatusCode::OK, &headers, &v))
}

async fn put_globals(
    State(app): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let doc: Value = read_body(&app, &headers, body, &["application/json"]).await?;
    let v = runtime::put_globals(&app, &actor, &doc).await?;
    Ok(hal::respond(StatusCode::OK, &headers, &v))
}

async fn syscommand(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(command): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let v = runtime::syscommand(&app, &actor, &command).await?;
    Ok(hal::respond(StatusCode::OK, &headers, &v))
}

/// Export rows at most (a larger export is paged with start_ge/start_le).
const EXPORT_MAX: i64 = 100_000;

/// The last `limit` call records (default 1000) matching the filters of `/api/cdrs/`, oldest
/// first, as CSV.
async fn export_cdrs(
    State(app): State<AppState>,
    Auth(actor): Auth,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
) -> Result<Response> {
    use crate::resources::{cdrs, Resource};
    let mut limit = 1000;
    let rest: Vec<(String, String)> = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
        .into_owned()
        .filter(|(k, v)| {
            if k == "limit" {
                limit = v.parse().unwrap_or(-1);
                false
            } else {
                true
            }
        })
        .collect();
    if !(1..=EXPORT_MAX).contains(&limit) {
        return Err(Error::invalid(
            "limit",
            format!("must be 1 to {EXPORT_MAX}"),
        ));
    }
    let rest = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(rest)
        .finish();
    let mut q =
        crate::resources::parse_list_query(Some(&rest), cdrs::Cdrs::FILTERS, cdrs::Cdrs::ORDER_BY)?;
    q.page.rows = limit;
    q.page.page = 1;
    q.page.order_by = "start_ms";
    q.page.descending = true;
    q.page.count = false;
    let mut c = app.store.read().await?;
    let (mut rows, _) = cdrs::list_rows(&mut c, &actor, &q).await?;
    rows.reverse();
    Ok(crate::http::attachment(
        StatusCode::OK,
        "text/csv; charset=utf-8",
        "cdrs.csv",
        cdrs::to_csv(&rows),
    ))
}

async fn registrations(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Query(q): Query<std::collections::BTreeMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response> {
    let sub = match q.get("subscriber_id") {
        Some(s) => Some(s.parse::<i64>().map_err(|_| {
            Error::BadRequest(format!("subscriber_id: '{s}' is not an integer id"))
        })?),
        None => None,
    };
    let (list, unanswered) = crate::resources::registrations::list(&app, &actor, sub).await?;
    let body = json!({
        "total_count": list.len(),
        // SIP servers that could not be asked: their registrations are not in the list.
        "unanswered_sipservers": unanswered,
        "_embedded": { "ngcp:subscriberregistrations": list },
        "_links": { "self": { "href": "/api/subscriberregistrations/" } },
    });
    Ok(hal::respond(StatusCode::OK, &headers, &body))
}
