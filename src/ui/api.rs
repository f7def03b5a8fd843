//! The UI's requests to the API: in-process, through the same router and middleware, with
//! the session's admin as the actor.

use super::*;

/// One API request as the session's admin: the same router, middleware and rules as any
/// client's request; the answer's body as JSON (or as a JSON string when it is not JSON).
pub(super) async fn api(
    app: &UiState,
    actor: &Actor,
    peer: SocketAddr,
    method: Method,
    uri: &str,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let (status, bytes) = api_bytes(app, actor, peer, method, uri, body, 16 << 20).await;
    let v = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, v)
}

/// Like [`api`], the answer's body as it came, at most `limit` bytes (a 502 past that).
pub(super) async fn api_bytes(
    app: &UiState,
    actor: &Actor,
    peer: SocketAddr,
    method: Method,
    uri: &str,
    body: Option<(&str, String)>,
    limit: usize,
) -> (StatusCode, axum::body::Bytes) {
    let router = app.api.clone();
    let mut b = Request::builder().method(method).uri(uri);
    if let Some((ct, _)) = &body {
        b = b.header(header::CONTENT_TYPE, *ct);
    }
    b = b.header("prefer", "return=representation");
    let mut req = match b.body(body.map(|(_, s)| Body::from(s)).unwrap_or_default()) {
        Ok(r) => r,
        Err(_) => {
            return (
                StatusCode::BAD_REQUEST,
                axum::body::Bytes::from_static(br#"{"message": "bad request"}"#),
            )
        }
    };
    // The journal records where each change came from: this request's address.
    let mut actor = actor.clone();
    actor.client = Some(peer.ip().to_string());
    req.extensions_mut().insert(SessionActor(actor));
    req.extensions_mut().insert(ConnectInfo(peer));
    match router.oneshot(req).await {
        Ok(resp) => {
            let status = resp.status();
            match axum::body::to_bytes(resp.into_body(), limit).await {
                Ok(bytes) => (status, bytes),
                Err(_) => (
                    StatusCode::BAD_GATEWAY,
                    axum::body::Bytes::from_static(br#"{"message": "the answer was too large"}"#),
                ),
            }
        }
        Err(e) => match e {},
    }
}

pub(super) fn items(v: &Value, name: &str) -> Vec<Value> {
    match &v["_embedded"][format!("ngcp:{name}")] {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        o => vec![o.clone()],
    }
}

pub(super) fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
