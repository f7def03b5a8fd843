//! `/prov/` over HTTP: phones fetch their files here. The decision is
//! [`crate::devices::serve`]'s; this is the transport: the path and headers read, the one
//! uniform 404, ETags, the Digest challenge, the upload's size limit.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{header, HeaderMap, HeaderValue, Method, StatusCode},
    response::{IntoResponse, Response},
    routing::any,
    Router,
};

use super::AppState;
use crate::devices::security;
use crate::devices::serve::{decide, fresh, looks_like_token, sane_file, ProvRequest, Served};
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

fn file_response(method: &Method, status: StatusCode, r: &crate::devices::Rendered) -> Response {
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

fn status_for(headers: &HeaderMap, etag: &str) -> StatusCode {
    let inm = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if fresh(inm, etag) {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    }
}

fn rendering_failed() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        "configuration could not be rendered\n",
    )
        .into_response()
}

async fn prov(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    parts: axum::http::request::Parts,
    body: Body,
) -> Response {
    let (method, uri, headers) = (parts.method.clone(), &parts.uri, &parts.headers);
    let tls = parts.extensions.get::<super::tls::OverTls>();
    let cert = parts.extensions.get::<super::tls::PeerCertificate>();
    let d = &app.devices;
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok());
    let ip = if parts.extensions.get::<super::ClientFromProxy>().is_some() {
        peer.ip()
    } else {
        d.client_ip(peer.ip(), forwarded)
    };
    if d.bans.banned(ip) {
        return not_found();
    }
    if !matches!(method, Method::GET | Method::HEAD | Method::PUT) {
        return not_found();
    }
    d.catch_up_if_behind().await;
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (token, file) = match segs.as_slice() {
        [f] => (None, *f),
        [t, f] if looks_like_token(t) => (Some(*t), *f),
        _ => {
            // The path is not logged: it may hold a token.
            d.bans.fail(ip, "malformed path", "").await;
            return not_found();
        }
    };
    if !sane_file(file) {
        d.bans.fail(ip, "malformed file name", file).await;
        return not_found();
    }
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    let ua = text(header::USER_AGENT).unwrap_or("");
    let host = text(header::HOST)
        .filter(|h| {
            h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    let r = ProvRequest {
        ip,
        uri: uri.path_and_query().map(|p| p.as_str()).unwrap_or(""),
        ua,
        file,
        method: method.as_str(),
        put: method == Method::PUT,
        authorization: text(header::AUTHORIZATION),
        base: format!(
            "{}://{host}/prov/",
            if tls.is_some() { "https" } else { "http" }
        ),
    };
    let mut served = decide(d, token, &r).await;
    // A phone's certificate must name the MAC it asks for (a generic one names none).
    if let Served::Device(data, ..) | Served::Upload(data) = &served {
        let cert_mac = cert
            .as_ref()
            .map(|c| crate::app::certs::certificate_mac(&c.0));
        let refusal = match cert_mac {
            Some(Some(m)) if m == data.mac.to_ascii_lowercase().replace([':', '-'], "") => None,
            Some(Some(_)) => Some("certificate of another device"),
            Some(None) => Some("certificate names no single MAC"),
            None if app.cfg.tls.phone_cert_required => Some("no device certificate"),
            None => None,
        };
        if let Some(reason) = refusal {
            served = Served::Fail(reason);
        }
    }
    match served {
        Served::Upload(data) => {
            let cap = app.cfg.prov.max_upload_bytes;
            let Ok(bytes) = axum::body::to_bytes(body, cap).await else {
                return (StatusCode::PAYLOAD_TOO_LARGE, "too large\n").into_response();
            };
            match crate::devices::serve::store_upload(&app.cfg.data_dir, &data.mac, file, bytes)
                .await
            {
                Ok(()) => StatusCode::CREATED.into_response(),
                Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "not stored\n").into_response(),
            }
        }
        Served::Device(data, files, spec) => {
            if r.put {
                return not_found();
            }
            let name = file.to_string();
            match d
                .device_file_bounded(files, spec, name.clone(), r.base.clone())
                .await
            {
                Ok(rendered) => {
                    let status = status_for(headers, &rendered.etag);
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
                    super::metrics::phone_fetch(
                        &data.model.row.vendor,
                        if status == StatusCode::NOT_MODIFIED {
                            "not_modified"
                        } else {
                            "ok"
                        },
                    );
                    file_response(&method, status, &rendered)
                }
                Err(e) => {
                    super::metrics::phone_fetch(&data.model.row.vendor, "render_failed");
                    tracing::error!(device = %data.mac, file, "rendering failed: {e}");
                    rendering_failed()
                }
            }
        }
        Served::Common(model, spec) => {
            if r.put {
                return not_found();
            }
            match d
                .common_file_bounded(model, spec, file.to_string(), r.base.clone())
                .await
            {
                Ok(rendered) => {
                    let status = status_for(headers, &rendered.etag);
                    file_response(&method, status, &rendered)
                }
                Err(e) => {
                    tracing::error!(file, "rendering failed: {e}");
                    rendering_failed()
                }
            }
        }
        Served::Challenge => {
            let value = security::challenge(d);
            let mut resp = (StatusCode::UNAUTHORIZED, "authentication required\n").into_response();
            if let Ok(v) = HeaderValue::from_str(&value) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
            resp
        }
        Served::NotFound => not_found(),
        Served::Fail(reason) => {
            super::metrics::phone_fetch("unknown", "refused");
            d.bans.fail(ip, reason, file).await;
            not_found()
        }
        // Not counted, but the same 404: a slow database must not tell known from unknown.
        Served::Unavailable => not_found(),
    }
}
