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

use crate::config::Config;
use crate::crypto::Cipher;
use crate::store::Store;

pub struct App {
    pub cfg: Config,
    pub store: Store,
    pub cipher: Cipher,
    pub auth: auth::AuthState,
    etag_key: Vec<u8>,
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(cfg: Config, store: Store, cipher: Cipher) -> App {
        let auth = auth::AuthState::new(cfg.auth_cache_seconds, cfg.auth_max_failures);
        let etag_key = cipher.derive_key(b"voxprov etag");
        App {
            cfg,
            store,
            cipher,
            auth,
            etag_key,
        }
    }

    pub fn etag(&self, data: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.etag_key).expect("hmac takes any key");
        m.update(data);
        hex::encode(&m.finalize().into_bytes()[..16])
    }
}

pub fn router(app: AppState) -> Router {
    api::router()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .fallback(|| async { crate::error::Error::NotFound("no such resource".into()) })
        .layer(middleware::from_fn(access_log))
        .with_state(app)
}

async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => "ready".into_response(),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response(),
    }
}

async fn access_log(req: Request, next: Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
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
