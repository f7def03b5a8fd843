//! `/api/soundfilerecordings/{id}`: a sound file's audio, as NGCP serves it.

use axum::{
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
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
    Ok((
        [
            (header::CONTENT_TYPE, "audio/x-wav".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        data,
    )
        .into_response())
}
