//! The PBX's routes beyond its collections' generic ones (the rules are in
//! resources/pbx/runtime.rs): an extension's runtime, a tenant's destinations, the globals
//! document and SARK's system commands.

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
