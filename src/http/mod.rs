//! The HTTP face: one router for `/api/`, health endpoints, and the server loop.

pub mod api;
pub mod auth;
pub mod error;
pub mod hal;
pub mod openapi;
pub mod resource;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::changes::{Recorded, RECORDED};
use crate::config::Config;
use crate::crypto::Cipher;
use crate::store::Store;
use crate::targets::Targets;

pub struct App {
    pub cfg: Config,
    pub store: Store,
    pub cipher: Cipher,
    pub auth: auth::AuthState,
    pub targets: Arc<Targets>,
    pub hooks: Arc<crate::hooks::worker::Hooks>,
    pub devices: Arc<crate::devices::Devices>,
    pub sessions: crate::ui::Sessions,
    /// The whole router, for the UI's requests to the API (set once when it is built).
    router: std::sync::OnceLock<Router>,
    etag_key: Vec<u8>,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(
        cfg: Config,
        store: Store,
        cipher: Cipher,
        targets: Arc<Targets>,
        hooks: Arc<crate::hooks::worker::Hooks>,
        devices: Arc<crate::devices::Devices>,
    ) -> App {
        let auth = auth::AuthState::new(cfg.auth_cache_seconds, cfg.auth_max_failures);
        let etag_key = cipher.derive_key(b"voxprov etag");
        App {
            cfg,
            store,
            cipher,
            auth,
            targets,
            hooks,
            devices,
            sessions: crate::ui::Sessions::default(),
            router: std::sync::OnceLock::new(),
            etag_key,
        }
    }

    pub fn router(&self) -> Option<Router> {
        self.router.get().cloned()
    }

    pub fn etag(&self, data: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.etag_key).expect("hmac takes any key");
        m.update(data);
        hex::encode(&m.finalize().into_bytes()[..16])
    }
}

/// The admin a UI session acts as, put on the UI's own requests to the API. Only code in
/// this crate can make one: a client cannot send it.
#[derive(Clone)]
pub struct SessionActor(pub(crate) crate::model::Actor);

pub fn router(app: AppState) -> Router {
    let r = build_router(app.clone());
    let _ = app.router.set(r.clone());
    r
}

fn build_router(app: AppState) -> Router {
    api::router()
        .merge(crate::devices::serve::router())
        .merge(crate::ui::router())
        .route("/ui/pbxdevices/{id}/preview", get(crate::ui::preview))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { crate::error::Error::NotFound("no such resource".into()) })
        .layer(middleware::from_fn_with_state(app.clone(), sync_wait))
        .layer(middleware::from_fn(refuse_control_characters))
        .layer(middleware::from_fn(access_log))
        .with_state(app)
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
    }
    if rec.resources.contains("hooks") {
        app.hooks.invalidate();
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
    if DEVICE_INPUTS.iter().any(|r| rec.resources.contains(*r)) {
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

async fn access_log(req: Request, next: Next) -> Response {
    let (method, mut path) = (req.method().clone(), req.uri().path().to_string());
    // /prov/<token>/<file>: the token is a credential and stays out of the log.
    if let Some(rest) = path.strip_prefix("/prov/") {
        if let Some((first, file)) = rest.split_once('/') {
            if crate::devices::security::looks_like_token(first) {
                path = format!("/prov/…/{file}");
            }
        }
    }
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    tracing::debug!(%method, %path, status = resp.status().as_u16(), ms = start.elapsed().as_secs_f64() * 1e3, "request");
    resp
}

/// Serves until `shutdown` resolves, then waits for requests in flight.
pub async fn serve(
    app: AppState,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = router(app);
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
