//! `/api/snapshots/` (SARK's snapshots): list, take (POST JSON), upload (POST the file as
//! `application/octet-stream`), download (GET one), restore (PUT, as SARK's `PUT
//! /backups/{backup}`), delete. Admins only. See [`crate::app::snapshots`].

use axum::{
    body::Body,
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use serde_json::json;
use std::io::Write;
use tokio_stream::StreamExt;

use crate::app::snapshots;
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::resource::read_body;
use crate::http::{hal, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/snapshots/", get(list).post(create))
        .route(
            "/api/snapshots/{id}",
            get(download).put(restore).delete(delete),
        )
}

async fn list(
    State(app): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
) -> Result<Response> {
    let items = snapshots::list(&app, &actor)?;
    let body = json!({
        "total_count": items.len(),
        "_embedded": { "ngcp:snapshots": items },
        "_links": { "self": { "href": "/api/snapshots/" } },
    });
    Ok(hal::respond(StatusCode::OK, &headers, &body))
}

fn created(headers: &HeaderMap, v: serde_json::Value) -> Response {
    let loc = format!("/api/snapshots/{}", v["id"].as_str().unwrap_or(""));
    let mut r = hal::respond(StatusCode::CREATED, headers, &v);
    if let Ok(h) = header::HeaderValue::from_str(&loc) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    r
}

/// JSON `{"passphrase"}` takes a snapshot; a file (`application/octet-stream`) is an upload.
async fn create(
    State(app): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct != "application/octet-stream" {
        let doc = read_body(&app, &headers, body, &["application/json"]).await?;
        let v = snapshots::take(&app, &actor, &doc).await?;
        return Ok(created(&headers, v));
    }
    let (tmp, f) = snapshots::upload_target(&app, &actor)?;
    let cap = app.cfg.max_snapshot_bytes;
    let mut w = std::io::BufWriter::new(f);
    let mut n: u64 = 0;
    let mut stream = body.into_data_stream();
    let failed = loop {
        match stream.next().await {
            None => break None,
            Some(Ok(chunk)) => {
                n += chunk.len() as u64;
                if n > cap {
                    break Some(Error::PayloadTooLarge(cap as usize));
                }
                if let Err(e) = w.write_all(&chunk) {
                    break Some(Error::internal(e));
                }
            }
            Some(Err(e)) => break Some(Error::BadRequest(format!("upload interrupted: {e}"))),
        }
    };
    let flushed = w.flush().map_err(Error::internal);
    if let Some(e) = failed.or(flushed.err()) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    let v = snapshots::keep_upload(&app, &actor, &tmp).await?;
    Ok(created(&headers, v))
}

async fn download(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let path = snapshots::path_of(&app, &actor, &id)?;
    let f = tokio::fs::File::open(&path)
        .await
        .map_err(Error::internal)?;
    let len = f.metadata().await.map_err(Error::internal)?.len();
    let mut r = crate::http::attachment(
        StatusCode::OK,
        "application/octet-stream",
        &format!("{id}.vxb"),
        Body::from_stream(tokio_util::io::ReaderStream::new(f)),
    );
    if let Ok(v) = header::HeaderValue::from_str(&len.to_string()) {
        r.headers_mut().insert(header::CONTENT_LENGTH, v);
    }
    Ok(r)
}

async fn restore(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let doc = read_body(&app, &headers, body, &["application/json"]).await?;
    let v = snapshots::restore(&app, &actor, &id, &doc).await?;
    Ok(hal::respond(StatusCode::OK, &headers, &v))
}

async fn delete(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    snapshots::delete(&app, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
