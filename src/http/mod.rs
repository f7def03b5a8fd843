//! The HTTP face: the router for `/api/`, `/prov/` and health, its layers, and the server
//! loop. The web UI's router ([`crate::ui`]) is merged beside it by `lib.rs`.

pub mod api;
pub mod auth;
pub mod error;
pub mod hal;
pub mod metrics;
pub mod openapi;
pub mod prov;
pub mod resource;
pub mod tls;

use std::{net::SocketAddr, sync::Arc};

use crate::app::App;
use crate::changes::{Recorded, RECORDED};
use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

pub type AppState = Arc<App>;

/// The API's router (`/api/`, `/prov/`, health), with its layers.
pub fn router(app: AppState) -> Router {
    edge(
        api::router()
            .merge(prov::router())
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics::scrape))
            .fallback(|| async { crate::error::Error::NotFound("no such resource".into()) })
            .layer(middleware::from_fn_with_state(app.clone(), sync_wait))
            .layer(middleware::from_fn_with_state(app.clone(), handling))
            .with_state(app),
    )
}

/// What every face's routes get: no control characters in paths and queries, an access log.
pub fn edge(r: Router) -> Router {
    r.layer(middleware::from_fn(refuse_control_characters))
        .layer(middleware::from_fn(access_log))
}

/// Marks a request whose client address was taken from a trusted proxy's `X-Forwarded-For`:
/// nothing reads that header again.
#[derive(Clone, Copy)]
pub struct ClientFromProxy;

/// Behind trusted load balancers (`trusted_proxies`): the client of a request that came
/// through one is the last address in `X-Forwarded-For` that is not itself trusted, and every
/// face sees that address as the peer.
pub fn behind_proxies(r: Router, proxies: &[String]) -> Router {
    let nets: Vec<ipnet::IpNet> = proxies
        .iter()
        .filter_map(|p| crate::model::parse_net(p))
        .collect();
    if nets.is_empty() {
        return r;
    }
    let nets = std::sync::Arc::new(nets);
    r.layer(middleware::from_fn(move |mut req: Request, next: Next| {
        let nets = nets.clone();
        async move {
            use axum::extract::ConnectInfo;
            let peer = req
                .extensions()
                .get::<ConnectInfo<std::net::SocketAddr>>()
                .map(|c| c.0);
            if let Some(peer) = peer {
                let trusted = |ip: &std::net::IpAddr| {
                    let ip = crate::model::canonical_ip(*ip);
                    nets.iter().any(|n| n.contains(&ip))
                };
                if trusted(&peer.ip()) {
                    let hops = req
                        .headers()
                        .get_all("x-forwarded-for")
                        .iter()
                        .filter_map(|v| v.to_str().ok());
                    let client = crate::model::forwarded_client(hops, trusted);
                    if let Some(ip) = client {
                        req.extensions_mut()
                            .insert(ConnectInfo(std::net::SocketAddr::new(ip, 0)));
                    }
                    req.extensions_mut().insert(ClientFromProxy);
                }
            }
            next.run(req).await
        }
    }))
}

/// NGCP's leniency by default, strictness on request (see [`crate::resources::handling`]):
/// `Prefer: handling=strict` (RFC 7240) or the `api_strict` setting, which
/// `Prefer: handling=lenient` overrides for one request. What was ignored is named in the
/// `Voxprov-Ignored` header.
async fn handling(State(app): State<AppState>, req: Request, next: Next) -> Response {
    let asked = req
        .headers()
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split([',', ';']))
        .map(|p| p.trim().to_ascii_lowercase())
        .find_map(|p| match p.as_str() {
            "handling=strict" => Some(true),
            "handling=lenient" => Some(false),
            _ => None,
        });
    let strict = asked.unwrap_or(app.cfg.api_strict);
    let (mut resp, ignored) = crate::resources::handling::scope(strict, next.run(req)).await;
    if !ignored.is_empty() {
        if let Ok(v) = axum::http::HeaderValue::from_str(&ignored.join(", ")) {
            resp.headers_mut().insert("voxprov-ignored", v);
        }
    }
    if asked.is_some() {
        let applied = if strict {
            "handling=strict"
        } else {
            "handling=lenient"
        };
        resp.headers_mut().insert(
            "preference-applied",
            axum::http::HeaderValue::from_static(applied),
        );
    }
    resp
}

/// A file to save (`Content-Disposition: attachment`), never kept by caches on the way.
pub fn attachment(
    status: StatusCode,
    content_type: &str,
    filename: &str,
    body: impl Into<axum::body::Body>,
) -> Response {
    let mut r = (status, body.into()).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        (axum::http::header::CONTENT_TYPE, content_type.to_string()),
        (
            axum::http::header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ),
        (axum::http::header::CACHE_CONTROL, "no-store".to_string()),
    ] {
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            h.insert(name, v);
        }
    }
    r
}

/// NGCP sits behind a web server that merges slashes, and its clients build item URLs as
/// `base + '/' + Location`: `//api/x/1` is `/api/x/1`.
pub(crate) fn merge_slashes(mut req: Request) -> Request {
    let path = req.uri().path();
    if !path.contains("//") {
        return req;
    }
    let mut merged = String::with_capacity(path.len());
    for c in path.chars() {
        if !(c == '/' && merged.ends_with('/')) {
            merged.push(c);
        }
    }
    let pq = match req.uri().query() {
        Some(q) => format!("{merged}?{q}"),
        None => merged,
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(p) = pq.parse() {
        parts.path_and_query = Some(p);
        if let Ok(u) = axum::http::Uri::from_parts(parts) {
            *req.uri_mut() = u;
        }
    }
    req
}

async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

/// After a write is committed: wake the SIP server workers and wait (bounded) until the change
/// is on every reachable enabled server; name the ones still behind in a response header.
async fn sync_wait(State(app): State<AppState>, req: Request, next: Next) -> Response {
    use axum::http::Method;
    if !matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(req).await;
    }
    let (mut resp, rec) = RECORDED
        .scope(std::cell::RefCell::new(Recorded::default()), async {
            let resp = next.run(req).await;
            (resp, RECORDED.with(|r| r.borrow().clone()))
        })
        .await;
    if rec.deliveries > 0 {
        app.hooks.kick();
        app.wakeups.tell("deliveries");
    }
    if rec.last_id > 0 {
        // Other nodes' SIP-server workers and phone caches look now.
        app.wakeups.tell("changes");
    }
    if rec.resources.contains("hooks") {
        app.hooks.invalidate();
    }
    if rec.resources.contains("admins") || rec.resources.contains("apikeys") {
        // Again after the commit: a UI session that re-read its admin between the change
        // and its commit must read it once more.
        app.credentials.invalidate();
    }
    if rec.last_id == 0 || !resp.status().is_success() {
        return resp;
    }
    if rec.resources.contains("sipservers") {
        app.targets.reconfigure();
    }
    // A phone fetching right after the change gets the new configuration from this node.
    const DEVICE_INPUTS: &[&str] = &[
        "pbxdevices",
        "pbxdeviceprofiles",
        "pbxdevicemodels",
        "pbxdevicetemplates",
        "pbxcustomersettings",
        "subscribers",
        "customers",
        "domains",
        "numbers",
    ];
    // (Where several nodes share PostgreSQL a phone's fetch looks at the change log's end
    // itself, on whichever node it lands: nothing to do here.)
    if app.store.single_node() && DEVICE_INPUTS.iter().any(|r| rec.resources.contains(*r)) {
        if let Err(e) = app.devices.catch_up().await {
            tracing::warn!("device cache not refreshed: {e}");
        }
    }
    if app.cfg.sync_wait_ms == 0 {
        app.targets.kick();
        return resp;
    }
    let behind = app.targets.wait_applied(rec.last_id).await;
    if !behind.is_empty() {
        // SIP servers are the operator's: resellers learn how many, not which.
        let value = if rec.by_non_admin {
            behind.len().to_string()
        } else {
            behind.join(", ")
        };
        if let Ok(v) = axum::http::HeaderValue::from_str(&value) {
            resp.headers_mut().insert("voxprov-sync-behind", v);
        }
    }
    resp
}

/// No control character in a query parameter or a path reaches a handler (or a database:
/// PostgreSQL refuses NUL in text, and a filter is no place for a line break). Phones'
/// `/prov/` keeps its one uniform answer, given by its own handler.
async fn refuse_control_characters(req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/prov/") {
        if percent_decoded(req.uri().path())
            .chars()
            .any(char::is_control)
        {
            return crate::error::Error::BadRequest(
                "the path must not contain control characters".into(),
            )
            .into_response();
        }
        if let Some(q) = req.uri().query() {
            for (k, v) in form_urlencoded::parse(q.as_bytes()) {
                if k.chars().chain(v.chars()).any(char::is_control) {
                    let name: String = k.chars().filter(|c| !c.is_control()).take(64).collect();
                    return crate::error::Error::BadRequest(format!(
                        "{name}: control characters are not allowed in query parameters"
                    ))
                    .into_response();
                }
            }
        }
    }
    next.run(req).await
}

/// `%XX` sequences decoded (a path is not a form: `+` stays `+`).
fn percent_decoded(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).and_then(|c| hex(*c)),
            b.get(i + 2).and_then(|c| hex(*c)),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

tokio::task_local! {
    /// Who the request's credentials turned out to be (set by the `Auth` extractor).
    static ACTOR: std::cell::RefCell<Option<String>>;
}

/// Notes who is acting for the access log (outside a request: nothing).
pub fn note_actor(name: &str) {
    let _ = ACTOR.try_with(|a| *a.borrow_mut() = Some(name.to_string()));
}

/// A client's `X-Request-Id` as it may be echoed and logged: 1 to 64 of letters, digits and
/// `._-`; anything else is replaced by one of ours.
fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
        .map(str::to_string)
        .unwrap_or_else(|| crate::crypto::random_token(12))
}

/// Every request at info (target `access`): client, actor, method, route (the template, so no
/// id, token or query string reaches the log), status, duration and request id, which the
/// answer carries as `X-Request-Id`.
async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let req_matched = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .is_some();
    let route = match req.extensions().get::<axum::extract::MatchedPath>() {
        Some(m) => m.as_str().to_string(),
        None => {
            let mut path = req.uri().path().to_string();
            // /prov/<token>/<file>: the token is a credential and stays out of the log.
            if let Some(rest) = path.strip_prefix("/prov/") {
                if let Some((first, file)) = rest.split_once('/') {
                    if crate::devices::security::looks_like_token(first) {
                        path = format!("/prov/…/{file}");
                    }
                }
            }
            path
        }
    };
    let client = req
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_default();
    let id = request_id(&req);
    let start = std::time::Instant::now();
    let (mut resp, actor) = ACTOR
        .scope(std::cell::RefCell::new(None), async {
            let resp = next.run(req).await;
            (resp, ACTOR.with(|a| a.borrow().clone()))
        })
        .await;
    metrics::request(
        if req_matched { &route } else { "unmatched" },
        method.as_str(),
        resp.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    tracing::info!(
        target: "access",
        client = %client,
        actor = actor.as_deref().unwrap_or("-"),
        method = %method,
        route = %route,
        status = resp.status().as_u16(),
        ms = (start.elapsed().as_secs_f64() * 1e4).round() / 10.0,
        request_id = %id,
        "request"
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// Serves `router` until `shutdown` resolves, then waits for requests in flight.
pub async fn serve(
    router: Router,
    listener: tokio::net::TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let svc = tower::ServiceExt::map_request(router, merge_slashes);
    axum::serve(
        listener,
        axum::ServiceExt::<Request>::into_make_service_with_connect_info::<SocketAddr>(svc),
    )
    .with_graceful_shutdown(async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
}
