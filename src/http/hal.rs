//! HAL+JSON envelopes in Sipwise's shape: `_links` with self, collection, profile, curies and
//! `ngcp:*` relations; collections with `_embedded["ngcp:<name>"]`, `total_count` and
//! next/prev links.

use axum::{
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Map, Value};

pub const PROFILE: &str = "http://purl.org/sipwise/ngcp-api/";

pub fn curies() -> Value {
    json!({ "name": "ngcp", "href": "http://purl.org/sipwise/ngcp-api/#rel-{rel}", "templated": true })
}

/// Adds `_links` to an item's representation.
pub fn item(name: &str, id: i64, mut obj: Map<String, Value>, related: &[(&str, String)]) -> Value {
    let mut links = Map::new();
    links.insert(
        "self".into(),
        json!({ "href": format!("/api/{name}/{id}") }),
    );
    links.insert(
        "collection".into(),
        json!({ "href": format!("/api/{name}/") }),
    );
    links.insert("profile".into(), json!({ "href": PROFILE }));
    links.insert("curies".into(), curies());
    links.insert(
        "ngcp:journal".into(),
        json!({ "href": format!("/api/{name}/{id}/journal/") }),
    );
    for (rel, href) in related {
        links.insert(format!("ngcp:{rel}"), json!({ "href": href }));
    }
    obj.insert("_links".into(), Value::Object(links));
    Value::Object(obj)
}

pub struct CollectionPage<'a> {
    pub name: &'a str,
    pub page: i64,
    pub rows: i64,
    pub total: Option<i64>,
    /// The other query parameters, already encoded, to carry into next/prev links.
    pub query: String,
}

/// A collection page. With exactly one item, `_embedded` and the `ngcp:<name>` link hold the
/// object itself, not an array: that is what Sipwise returns and what its own clients rely
/// on.
pub fn collection(p: &CollectionPage, items: Vec<Value>) -> Value {
    let href = |page: i64| {
        let extra = if p.query.is_empty() {
            String::new()
        } else {
            format!("&{}", p.query)
        };
        format!("/api/{}/?page={}&rows={}{}", p.name, page, p.rows, extra)
    };
    let mut links = Map::new();
    links.insert("self".into(), json!({ "href": href(p.page) }));
    links.insert("profile".into(), json!({ "href": PROFILE }));
    links.insert("curies".into(), curies());
    let mut item_links: Vec<Value> = items
        .iter()
        .filter_map(|i| i.get("_links").and_then(|l| l.get("self")).cloned())
        .collect();
    // As `_embedded` below: one item is the link itself, none no relation at all (NGCP's
    // clients walk `_links` and `_embedded` alike and expect the same shape in both).
    match item_links.len() {
        0 => {}
        1 => {
            links.insert(format!("ngcp:{}", p.name), item_links.remove(0));
        }
        _ => {
            links.insert(format!("ngcp:{}", p.name), Value::Array(item_links));
        }
    }
    if p.page > 1 {
        links.insert("prev".into(), json!({ "href": href(p.page - 1) }));
    }
    let more = match p.total {
        Some(t) => p.page * p.rows < t,
        None => items.len() as i64 == p.rows,
    };
    if more {
        links.insert("next".into(), json!({ "href": href(p.page + 1) }));
    }
    let mut out = Map::new();
    out.insert("_links".into(), Value::Object(links));
    let key = format!("ngcp:{}", p.name);
    match items.len() {
        0 => {}
        1 => {
            out.insert(
                "_embedded".into(),
                json!({ key: items.into_iter().next().expect("one item") }),
            );
        }
        _ => {
            out.insert("_embedded".into(), json!({ key: items }));
        }
    }
    if let Some(t) = p.total {
        out.insert("total_count".into(), json!(t));
    }
    Value::Object(out)
}

/// Responds with HAL+JSON, or plain JSON when the client asks for exactly that.
pub fn respond(status: StatusCode, req_headers: &HeaderMap, body: &Value) -> Response {
    let plain = req_headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.trim() == "application/json");
    let ct = if plain {
        "application/json"
    } else {
        "application/hal+json"
    };
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let mut resp = (status, bytes).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    resp
}
