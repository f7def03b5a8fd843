//! The preference catalogs: `/api/subscriberpreferencedefs/` (every preference) and
//! `/api/customerpreferencedefs/`, `/api/domainpreferencedefs/` (those a customer or a domain
//! may set for its subscribers), keyed by name as Sipwise lists them.

use axum::{http::HeaderMap, response::Response, routing::get, Router};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::features::prefs;
use crate::http::auth::Auth;
use crate::http::{hal, AppState};

/// The catalogs: (collection, whether only shared preferences are listed).
pub const CATALOGS: [(&str, bool); 3] = [
    ("subscriberpreferencedefs", false),
    ("customerpreferencedefs", true),
    ("domainpreferencedefs", true),
];

pub fn router() -> Router<AppState> {
    let mut r = Router::new();
    for (name, shared) in CATALOGS {
        let path = format!("/api/{name}/");
        let redirect = path.clone();
        r = r
            .route(
                &path,
                get(move |auth: Auth, headers: HeaderMap| defs(auth, headers, name, shared)),
            )
            .route(
                &format!("/api/{name}"),
                get(move || async move { axum::response::Redirect::permanent(&redirect) }),
            );
    }
    r
}

/// GET: the catalog. Any authenticated user may read it (the extractor refuses everyone
/// else).
async fn defs(Auth(_): Auth, headers: HeaderMap, name: &str, shared: bool) -> Result<Response> {
    let mut m = Map::new();
    for d in prefs::DEFS.iter().filter(|d| !shared || d.shared()) {
        m.insert(
            d.name.into(),
            serde_json::to_value(d.repr()).map_err(Error::internal)?,
        );
    }
    m.insert(
        "_links".into(),
        json!({ "self": { "href": format!("/api/{name}/") }, "profile": { "href": hal::PROFILE } }),
    );
    Ok(hal::respond(
        axum::http::StatusCode::OK,
        &headers,
        &Value::Object(m),
    ))
}
