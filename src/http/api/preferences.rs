//! `/api/subscriberpreferencedefs/`: the preference catalog, as Sipwise lists it.

use axum::{http::HeaderMap, response::Response};
use serde_json::{json, Map, Value};

use crate::error::{Error, Result};
use crate::features::prefs;
use crate::http::auth::Auth;
use crate::http::hal;

/// GET /api/subscriberpreferencedefs/: every preference, keyed by name, as Sipwise lists them.
/// Any authenticated user may read it (the extractor refuses everyone else).
pub async fn defs(Auth(_): Auth, headers: HeaderMap) -> Result<Response> {
    let mut m = Map::new();
    for d in prefs::DEFS {
        m.insert(
            d.name.into(),
            serde_json::to_value(d.repr()).map_err(Error::internal)?,
        );
    }
    m.insert(
        "_links".into(),
        json!({ "self": { "href": "/api/subscriberpreferencedefs/" }, "profile": { "href": hal::PROFILE } }),
    );
    Ok(hal::respond(
        axum::http::StatusCode::OK,
        &headers,
        &Value::Object(m),
    ))
}
