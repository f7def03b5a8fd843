//! `/prov/`: phones fetch their files here. Every request is treated as an attack until it
//! proves otherwise: an unknown MAC, a wrong token, wrong credentials and a refused address
//! all get the same 404, count against the address, and enough of them ban it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::any,
    Router,
};

use super::security::{self, looks_like_token, token_hash};
use super::{DeviceData, DeviceDataFiles, Devices, Loaded};
use crate::http::AppState;
use crate::store::devices::Fetch;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/prov/{*path}", any(prov))
        .route("/prov/", any(|| async { not_found() }))
}

/// The one answer to everything a stranger may not know.
fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "not found\n",
    )
        .into_response()
}

fn sane_file(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 128
        && !f.starts_with('.')
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

struct Req<'a> {
    ip: IpAddr,
    /// The request target as sent (Digest answers are bound to it).
    uri: &'a str,
    ua: &'a str,
    file: &'a str,
    method: &'a Method,
    headers: &'a HeaderMap,
    base: String,
}

async fn prov(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: axum::http::Uri,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let d = &app.devices;
    let ip = d.client_ip(peer.ip(), &headers);
    if d.bans.banned(ip) {
        return not_found();
    }
    if !matches!(method, Method::GET | Method::HEAD | Method::PUT) {
        return not_found();
    }
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (token, file) = match segs.as_slice() {
        [f] => (None, *f),
        [t, f] if looks_like_token(t) => (Some(*t), *f),
        _ => {
            // The path is not logged: it may hold a token.
            d.bans.fail(ip, "malformed path", "");
            return not_found();
        }
    };
    if !sane_file(file) {
        d.bans.fail(ip, "malformed file name", file);
        return not_found();
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let r = Req {
        ip,
        uri: uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
        ua,
        file,
        method: &method,
        headers: &headers,
        base: format!("http://{host}/prov/"),
    };
    let resp = match token {
        Some(t) => with_token(d, &r, t).await,
        None => without_token(d, &r).await,
    };
    match resp {
        Served::Upload(data) => upload(&app, &data, &r, body).await,
        Served::Device(data, files, spec) => {
            if method == Method::PUT {
                return not_found();
            }
            let name = file.to_string();
            match d
                .device_file_bounded(files, spec, name.clone(), r.base.clone())
                .await
            {
                Ok(rendered) => {
                    let status = respond_status(&headers, &rendered.etag);
                    d.record(
                        Fetch {
                            device_id: data.id,
                            ts: crate::store::now(),
                            address: ip.to_string(),
                            user_agent: Some(ua.chars().take(255).collect()),
                            file: name,
                            status: status.as_u16() as i64,
                        },
                        data.reseller_id,
                    );
                    file_response(&method, status, &rendered)
                }
                Err(e) => {
                    tracing::error!(device = %data.mac, file, "rendering failed: {e}");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "configuration could not be rendered\n",
                    )
                        .into_response()
                }
            }
        }
        Served::Common(model, spec) => {
            if method == Method::PUT {
                return not_found();
            }
            match d
                .common_file_bounded(model, spec, file.to_string(), r.base.clone())
                .await
            {
                Ok(rendered) => {
                    let status = respond_status(&headers, &rendered.etag);
                    file_response(&method, status, &rendered)
                }
                Err(e) => {
                    tracing::error!(file, "rendering failed: {e}");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "configuration could not be rendered\n",
                    )
                        .into_response()
                }
            }
        }
        Served::Challenge => {
            let nonce = security::new_nonce(&d.etag_key);
            let value = format!(
                "Digest realm=\"{}\", qop=\"auth\", nonce=\"{nonce}\", algorithm=MD5, Basic realm=\"{}\"",
                security::REALM,
                security::REALM
            );
            let mut resp = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            resp
        }
        Served::NotFound => not_found(),
        Served::Fail(reason) => {
            d.bans.fail(ip, reason, file);
            not_found()
        }
        // Not counted, but the same 404: a slow database must not tell known from unknown.
        Served::Unavailable => not_found(),
    }
}

enum Served {
    Upload(Arc<DeviceData>),
    Device(
        Arc<DeviceData>,
        Arc<DeviceDataFiles>,
        super::catalog::FileSpec,
    ),
    Common(Arc<super::catalog::Model>, super::catalog::FileSpec),
    Challenge,
    /// Nothing here, but nothing wrong either (a file a phone asks for that we do not make).
    NotFound,
    /// A failed attempt: counted against the address.
    Fail(&'static str),
    Unavailable,
}

fn respond_status(headers: &HeaderMap, etag: &str) -> StatusCode {
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    }
}

fn file_response(method: &Method, status: StatusCode, r: &super::Rendered) -> Response {
    let mut b = Response::builder()
        .status(status)
        .header(header::ETAG, &r.etag)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::CONTENT_TYPE, &r.content_type);
    if status == StatusCode::NOT_MODIFIED || method == Method::HEAD {
        b = b.header(header::CONTENT_LENGTH, r.body.len());
        return b.body(Body::empty()).expect("valid response");
    }
    b.body(Body::from(r.body.clone())).expect("valid response")
}

/// `/prov/<token>/<file>`: the token names the device; a MAC in the file must be its own.
async fn with_token(d: &Devices, r: &Req<'_>, token: &str) -> Served {
    let hash = token_hash(token);
    let (loaded, files) = d.by_token(&hash).await;
    let (mut data, mut files) = match (loaded, files) {
        (Loaded::Found(data), Some(f)) => (data, f),
        (Loaded::Unavailable, _) => return Served::Unavailable,
        _ => return Served::Fail("unknown token"),
    };
    if data.auth.mode != "token" {
        return Served::Fail("token for a device without token access");
    }
    // Before anything changes hands: a refused address trades no token.
    if !data.auth.address_allowed(r.ip) {
        return Served::Fail("address not allowed for this customer");
    }
    let now = chrono::Utc::now().timestamp();
    if data.auth.token_hash.as_deref() == Some(hash.as_str()) {
        if !data.auth.token_used {
            // The phone has its long-lived token: the first-boot one dies now.
            if mark_used(d, data.id).await.is_err() {
                return Served::Unavailable;
            }
            match d.refresh(&data.mac).await {
                (Loaded::Found(x), Some(f)) => (data, files) = (x, f),
                _ => return Served::Unavailable,
            }
        }
    } else if data.auth.boot_hash.as_deref() == Some(hash.as_str()) {
        // A first-boot token: always checked against the database (another node may have
        // seen it traded), and traded for a long-lived one that the configuration carries.
        match d.refresh(&data.mac).await {
            (Loaded::Found(x), Some(f)) => (data, files) = (x, f),
            (Loaded::Unavailable, _) => return Served::Unavailable,
            _ => return Served::Fail("unknown token"),
        }
        if data.auth.boot_hash.as_deref() != Some(hash.as_str())
            || data.auth.token_used
            || data.auth.boot_expires.is_some_and(|e| e < now)
        {
            return Served::Fail("spent or expired first-boot token");
        }
        if data.auth.token_hash.is_none() {
            if issue_token(d, data.id).await.is_err() {
                return Served::Unavailable;
            }
            match d.refresh(&data.mac).await {
                (Loaded::Found(x), Some(f)) => (data, files) = (x, f),
                _ => return Served::Unavailable,
            }
        }
    } else {
        return Served::Fail("unknown token");
    }
    if !data.auth.address_allowed(r.ip) {
        return Served::Fail("address not allowed for this customer");
    }
    if r.method == Method::PUT {
        return match log_mac(r.file) {
            Some(m) if m == data.mac => Served::Upload(data),
            _ => Served::Fail("upload for another device"),
        };
    }
    match data.model.match_file(r.file) {
        Some((spec, Some(mac))) if spec.per_device => {
            if mac != data.mac {
                return Served::Fail("MAC does not match the token");
            }
            Served::Device(data.clone(), files, spec.clone())
        }
        // A common file asked for by token carries the token URL (Cisco's Profile_Rule).
        Some((spec, None)) if !spec.per_device => {
            let spec = spec.clone();
            Served::Device(data, files, spec)
        }
        _ => match d.catalog().device_file_mac(r.file) {
            Some(mac) if mac != data.mac => Served::Fail("MAC does not match the token"),
            _ => Served::NotFound,
        },
    }
}

async fn without_token(d: &Devices, r: &Req<'_>) -> Served {
    let cat = d.catalog();
    let mac = if r.method == Method::PUT {
        log_mac(r.file)
    } else {
        cat.device_file_mac(r.file)
    };
    let Some(mac) = mac else {
        return match cat.common_file(r.file, r.ua) {
            Some((m, spec)) => Served::Common(m, spec),
            None => Served::NotFound,
        };
    };
    let (data, files) = match d.by_mac(&mac).await {
        (Loaded::Found(data), Some(f)) => (data, f),
        (Loaded::Unavailable, _) => return Served::Unavailable,
        _ => {
            return if d.cfg.http_challenge && r.headers.get(header::AUTHORIZATION).is_none() {
                Served::Challenge
            } else {
                Served::Fail("unknown MAC")
            }
        }
    };
    let header = r
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if header.is_none() && d.cfg.http_challenge && data.auth.mode != "none" {
        return Served::Challenge;
    }
    let ok = match data.auth.mode.as_str() {
        "none" => true,
        "token" => false,
        _ => security::check_http(
            &data.auth,
            &data.mac,
            header,
            r.method.as_str(),
            r.uri,
            &d.etag_key,
        ),
    };
    if !ok {
        return Served::Fail(if header.is_some() {
            "wrong credentials"
        } else {
            "no credentials"
        });
    }
    if !data.auth.address_allowed(r.ip) {
        return Served::Fail("address not allowed for this customer");
    }
    if r.method == Method::PUT {
        return Served::Upload(data);
    }
    match data.model.match_file(r.file) {
        Some((spec, Some(m))) if spec.per_device && m == data.mac => {
            let spec = spec.clone();
            Served::Device(data, files, spec)
        }
        _ => Served::NotFound,
    }
}

/// The MAC a log upload names: `<mac>-app.log` or `<mac>-boot.log` (Poly's), nothing else,
/// so a phone keeps at most two files.
fn log_mac(file: &str) -> Option<String> {
    let (mac, rest) = file.split_at_checked(12)?;
    (mac.bytes().all(|b| b.is_ascii_hexdigit()) && matches!(rest, "-app.log" | "-boot.log"))
        .then(|| mac.to_ascii_lowercase())
}

async fn mark_used(d: &Devices, id: i64) -> crate::error::Result<()> {
    let mut tx = d.store.begin().await?;
    crate::store::devices::token_used(&mut tx, id).await?;
    tx.commit().await?;
    Ok(())
}

async fn issue_token(d: &Devices, id: i64) -> crate::error::Result<()> {
    let t = security::new_token();
    let mut tx = d.store.begin().await?;
    crate::store::devices::issue_token(&mut tx, id, &token_hash(&t), &d.cipher.encrypt(&t)?)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// A phone's log upload (Poly PUTs `<mac>-app.log` and the like): kept, size-capped, as the
/// device's latest of that name under the data directory.
async fn upload(app: &crate::http::App, data: &DeviceData, r: &Req<'_>, body: Body) -> Response {
    let cap = app.cfg.prov.max_upload_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, cap).await else {
        return (StatusCode::PAYLOAD_TOO_LARGE, "too large\n").into_response();
    };
    let dir = app.cfg.data_dir.join("prov-logs").join(&data.mac);
    let path = dir.join(r.file);
    let res = tokio::task::spawn_blocking(move || {
        crate::fsutil::private_dir(&dir)?;
        crate::fsutil::write_private(&path, &bytes)
    })
    .await;
    match res {
        Ok(Ok(())) => StatusCode::CREATED.into_response(),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "not stored\n").into_response(),
    }
}
