//! The UI's requests to the API: in-process, through the same router and middleware, with
//! the session's admin as the actor.

use super::*;

/// One API request as the session's admin: the same router, middleware and rules as any
/// client's request.
pub(super) async fn api(
    app: &UiState,
    actor: &Actor,
    peer: SocketAddr,
    method: Method,
    uri: &str,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let router = app.api.clone();
    let mut b = Request::builder().method(method).uri(uri);
    if let Some((ct, _)) = &body {
        b = b.header(header::CONTENT_TYPE, *ct);
    }
    b = b.header("prefer", "return=representation");
    let mut req = match b.body(body.map(|(_, s)| Body::from(s)).unwrap_or_default()) {
        Ok(r) => r,
        Err(_) => return (StatusCode::BAD_REQUEST, json!({"message": "bad request"})),
    };
    // The journal records where each change came from: this request's address.
    let mut actor = actor.clone();
    actor.client = Some(peer.ip().to_string());
    req.extensions_mut().insert(SessionActor(actor));
    req.extensions_mut().insert(ConnectInfo(peer));
    match router.oneshot(req).await {
        Ok(resp) => {
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
                .await
                .unwrap_or_default();
            let v = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            (status, v)
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
