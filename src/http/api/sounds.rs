//! `/api/soundfilerecordings/{id}`: a sound file's audio, as NGCP serves it.

use axum::{
    extract::{Path, State},
    response::Response,
    routing::get,
    Router,
};

use crate::error::Result;
use crate::http::auth::Auth;
use crate::http::AppState;
use crate::resources::parse_id;
use crate::resources::sounds;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/soundfilerecordings/{id}", get(recording))
}

async fn recording(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let (filename, data) = sounds::recording(&app, &actor, id).await?;
    // A header carries printable ASCII only: anything else (and quotes) becomes '_'.
    let name: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Ok(crate::http::attachment(
        axum::http::StatusCode::OK,
        "audio/x-wav",
        &name,
        data,
    ))
}
