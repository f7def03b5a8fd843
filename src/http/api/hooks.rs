//! Hooks' routes beyond the generic ones: the event catalog, a hook's executions, redelivery
//! and secret rotation. The rules are [`crate::resources::hooks`]'.

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::json;

use crate::app::App;
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::AppState;
use crate::resources::hooks::{self as rules, HookExecutions, Hooks};
use crate::resources::{parse_id, parse_json, to_input, Resource};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/hooks/events", get(events))
        .route("/api/hooks/{id}/executions", get(executions_of))
        .route("/api/hooks/{id}/redeliver", post(redeliver_range))
        .route("/api/hooks/{id}/rotate_secret", post(rotate_secret))
        .route("/api/hookexecutions/{id}/redeliver", post(redeliver_one))
}

async fn events(Auth(actor): Auth) -> Result<Response> {
    Hooks::check_access(&actor, false)?;
    let list = rules::event_catalog();
    Ok(Json(json!({ "total_count": list.len(), "events": list })).into_response())
}

async fn executions_of(
    state: State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let id = parse_id(&id)?;
    rules::visible_hook(&state, &auth.0, id, false).await?;
    let q = match q.filter(|s| !s.is_empty()) {
        Some(q) => format!("{q}&hook_id={id}"),
        None => format!("hook_id={id}"),
    };
    crate::http::resource::list_handler::<HookExecutions>(state, auth, RawQuery(Some(q)), headers)
        .await
}

/// A JSON body that may be left out (then the defaults apply).
async fn optional_body<T: serde::de::DeserializeOwned + utoipa::ToSchema + Default + 'static>(
    app: &App,
    body: Body,
) -> Result<T> {
    let bytes = axum::body::to_bytes(body, app.cfg.max_body_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge(app.cfg.max_body_bytes))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    to_input(parse_json(&bytes)?, &[], None)
}

async fn rotate_secret(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let input = optional_body(&app, body).await?;
    Ok(Json(rules::rotate_secret(&app, &actor, id, input).await?).into_response())
}

async fn redeliver_range(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let input = optional_body(&app, body).await?;
    let v = rules::redeliver_range(&app, &actor, id, input).await?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}

async fn redeliver_one(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let v = rules::redeliver_one(&app, &actor, id).await?;
    Ok((StatusCode::ACCEPTED, Json(v)).into_response())
}
