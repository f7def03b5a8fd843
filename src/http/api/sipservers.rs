//! `/api/sipservers/{id}/check` and `/repair`: compare a SIP server's tables with voxprov, and
//! mend them.

use axum::{
    extract::{Path, State},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};

use crate::error::Result;
use crate::http::auth::Auth;
use crate::http::AppState;
use crate::resources::sipservers::SipServers;
use crate::resources::{parse_id, Resource};

/// `/api/sipservers/{id}/check` (GET or POST) and `/repair` (POST).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/sipservers/{id}/check", get(check).post(check))
        .route("/api/sipservers/{id}/repair", post(repair))
}

async fn check(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    SipServers::check_access(&actor, false)?;
    let id = parse_id(&id)?;
    let report = app.targets.check(id).await?;
    Ok(Json(report).into_response())
}

async fn repair(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    SipServers::check_access(&actor, true)?;
    let id = parse_id(&id)?;
    let report = app.targets.repair(id).await?;
    crate::targets::journal_repair_as(&app.store, &actor, &report).await?;
    Ok(Json(report).into_response())
}
