//! The HTTP face of authentication: HTTP Basic with an admin's login (what Sipwise clients
//! send after the `api_admin_http` challenge), or an API key as `Authorization: Bearer …` /
//! `X-API-Key`, or over HTTPS the client certificate an admin got from `/api/admincerts/`.
//! The checks themselves are [`crate::app::credentials`]'.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, FromRequestParts},
    http::{header, request::Parts, HeaderMap},
};
use base64::{engine::general_purpose::STANDARD, Engine};

use super::AppState;
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::Actor;

/// An authenticated request. Handlers take this; there is no way to reach a handler without it.
pub struct Auth(pub Actor);

/// The admin a UI session acts as, put on the UI's own requests to the API. Only code in
/// this crate can make one: a client cannot send it.
#[derive(Clone)]
pub struct SessionActor(pub(crate) Actor);

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self> {
        if let Some(s) = parts.extensions.get::<SessionActor>() {
            super::note_actor(&s.0.name);
            return Ok(Auth(s.0.clone()));
        }
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let cert = parts
            .extensions
            .get::<super::tls::PeerCertificate>()
            .map(|c| c.0.clone());
        let mut actor = authenticate(app, &parts.headers, ip, cert.as_deref()).await?;
        actor.client = ip.map(|i| i.to_string());
        super::note_actor(&actor.name);
        Ok(Auth(actor))
    }
}

async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    ip: Option<std::net::IpAddr>,
    cert: Option<&Vec<u8>>,
) -> Result<Actor> {
    let authz = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if let Some(key) =
        api_key.or_else(|| authz.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim))
    {
        return app.credentials.verify_api_key(&app.store, key, ip).await;
    }
    let Some(basic) = authz.and_then(|a| a.strip_prefix("Basic ")) else {
        // No credentials in the request: the client certificate of the connection, if any
        // (an admin's from /api/admincerts/).
        return match cert {
            Some(der) => app.credentials.verify_certificate(&app.store, der).await,
            None => Err(Error::Unauthorized),
        };
    };
    let decoded = STANDARD
        .decode(basic.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    // A malformed pair counts as a failed attempt, like a wrong password.
    let (login, password) = decoded
        .as_deref()
        .and_then(|d| d.split_once(':'))
        .unwrap_or(("", ""));
    app.credentials
        .verify_basic(&app.store, login, password, ip)
        .await
}
