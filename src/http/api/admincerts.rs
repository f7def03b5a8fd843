//! `/api/admincerts/`: an admin's client certificate, issued as a ZIP (POST), its state
//! (GET) and its revocation (DELETE). See [`crate::resources::admincerts`].

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};

use crate::error::Result;
use crate::http::auth::Auth;
use crate::http::resource::read_body;
use crate::http::{hal, AppState};
use crate::resources::{admincerts, parse_id};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admincerts/", post(create))
        .route("/api/admincerts/{id}", get(get_one).delete(revoke))
}

async fn create(
    State(app): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Result<Response> {
    let doc = read_body(&app, &headers, body, &["application/json"]).await?;
    let (name, zip) = admincerts::create(&app, &actor, &doc).await?;
    Ok(crate::http::attachment(
        StatusCode::CREATED,
        "application/zip",
        &name,
        zip,
    ))
}

async fn get_one(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    let v = admincerts::get(&app, &actor, parse_id(&id)?).await?;
    Ok(hal::respond(StatusCode::OK, &headers, &v))
}

async fn revoke(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    admincerts::revoke(&app, &actor, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
