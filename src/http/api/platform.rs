//! `/api/metaconfigdefs/`: what this platform has switched on, in NGCP's shape. NGCP's clients
//! read it to decide what to offer (a cloud PBX, password checks) before they ask for it.

use axum::{extract::State, http::HeaderMap, response::Response, routing::get, Router};
use serde_json::json;

use crate::error::Result;
use crate::http::auth::Auth;
use crate::http::{hal, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/metaconfigdefs/", get(config))
        .route(
            "/api/metaconfigdefs",
            get(|| async { axum::response::Redirect::permanent("/api/metaconfigdefs/") }),
        )
}

/// Read by any authenticated user, as the preference catalogs are. Only switches, never a
/// secret or an address.
async fn config(
    State(app): State<AppState>,
    Auth(_): Auth,
    headers: HeaderMap,
) -> Result<Response> {
    let policy = &app.cfg.password_policy;
    let body = json!({
        "_links": { "self": { "href": "/api/metaconfigdefs/" }, "profile": { "href": hal::PROFILE } },
        "config": {
            // voxprov's PBX is its own collections (/api/pbxtenants/, /api/pbxextensions/…),
            // not NGCP's pilot, seat and group subscribers: NGCP's clients must not offer those.
            "features": { "cloudpbx": false, "voicemail": false, "fax": false },
            "security": {
                // SIP passwords are checked by [password_policy]; web passwords only for
                // length (6 to 128 characters).
                "password_sip_validate": policy.min_length > 0 || policy.forbid_username,
                "password_web_validate": false,
                "password_min_length": policy.min_length,
                "password_sip_autogenerate": policy.generate,
            },
            "numbermanagement": { "auto_sync_cli": false },
        },
    });
    Ok(hal::respond(axum::http::StatusCode::OK, &headers, &body))
}
