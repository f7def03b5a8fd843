//! Phone provisioning's routes beyond the generic ones: the catalog tree and model
//! detection, the shipped templates and kazoo-provision import, a device's preview, fetches,
//! token and secret resets and resync, the provisioning bans and cache. The rules are
//! [`crate::resources::devices`]'.

use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::{json, Value};

use crate::devices::render;
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::AppState;
use crate::resources::devices::{self as rules, parse_mac, DeviceModel};
use crate::resources::{parse_id, parse_json, to_input};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/pbxdevicemodels/tree", get(tree))
        .route("/api/pbxdevicemodels/detect", get(detect))
        .route("/api/pbxdevicetemplates/builtin", get(builtin))
        .route("/api/pbxdevicetemplates/import_kazoo", post(import_kazoo))
        .route("/api/pbxdevices/{id}/preview", get(preview))
        .route("/api/pbxdevices/{id}/fetches", get(fetches))
        .route("/api/pbxdevices/{id}/reset_token", post(reset_token))
        .route("/api/pbxdevices/{id}/reset_secret", post(reset_secret))
        .route("/api/pbxdevices/{id}/resync", post(resync))
        .route("/api/pbxprovbans/", get(bans))
        .route("/api/pbxdevicecache", get(cache_stats))
        .route("/api/pbxprovbans/{ip}", axum::routing::delete(lift_ban))
}

async fn tree(State(app): State<AppState>, Auth(_): Auth) -> Result<Response> {
    Ok(Json(app.devices.catalog().tree()).into_response())
}

/// A route's query parameters, by name (the last of a repeated one wins). Parameters the route
/// does not take are ignored and named, or refused in strict handling; faults answer JSON.
fn params(q: Option<&str>, known: &[&str]) -> Result<std::collections::HashMap<String, String>> {
    let mut out = std::collections::HashMap::new();
    for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
        if !known.contains(&k.as_ref()) {
            crate::resources::handling::unknown_query(&k, || {
                format!("; this route takes {}", known.join(", "))
            })?;
            continue;
        }
        out.insert(k.into_owned(), v.into_owned());
    }
    Ok(out)
}

async fn detect(
    State(app): State<AppState>,
    Auth(_): Auth,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let q = params(q.as_deref(), &["user_agent", "mac"])?;
    let mac = q.get("mac").map(|m| parse_mac("mac", m)).transpose()?;
    let ua = q.get("user_agent").cloned().unwrap_or_default();
    match app.devices.catalog().detect(&ua, mac.as_deref()) {
        Some(m) => Ok(Json(DeviceModel::from(m.row.clone())).into_response()),
        None => Err(Error::NotFound("no model matches".into())),
    }
}

async fn builtin(Auth(_): Auth) -> Result<Response> {
    let v: Vec<Value> = render::builtin_templates()
        .iter()
        .map(|(n, c)| json!({"name": n, "content": c}))
        .collect();
    Ok(Json(json!({ "templates": v })).into_response())
}

async fn import_kazoo(
    State(app): State<AppState>,
    Auth(actor): Auth,
    body: Body,
) -> Result<Response> {
    let bytes = axum::body::to_bytes(body, app.cfg.max_body_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge(app.cfg.max_body_bytes))?;
    let input = to_input(parse_json(&bytes)?, &[], None)?;
    let (created, repr) = rules::import_kazoo(&app, &actor, input).await?;
    let mut resp = (StatusCode::CREATED, Json(repr)).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!("/api/pbxdevicetemplates/{}", created.id))
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// `?file=` one of the model's files; `?reveal=1` shows passwords (writers only), masked
/// otherwise.
async fn preview(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let mut q = params(q.as_deref(), &["file", "reveal"])?;
    let reveal = match q.get("reveal") {
        Some(v) => crate::resources::query::query_bool("reveal", v)?,
        None => false,
    };
    let r = rules::preview(&app, &actor, id, q.remove("file"), reveal).await?;
    Ok((
        [
            (header::CONTENT_TYPE, r.content_type.clone()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        r.body.clone(),
    )
        .into_response())
}

async fn fetches(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    Ok(Json(rules::fetches(&app, &actor, id).await?).into_response())
}

async fn reset_token(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    Ok(Json(rules::reset_token(&app, &actor, id).await?).into_response())
}

async fn reset_secret(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    Ok(Json(rules::reset_secret(&app, &actor, id).await?).into_response())
}

async fn resync(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let id = parse_id(&id)?;
    Ok(Json(rules::resync(&app, &actor, id).await?).into_response())
}

/// What the provisioning cache holds (admins): phones served without the database.
async fn cache_stats(State(app): State<AppState>, Auth(actor): Auth) -> Result<Response> {
    actor.check_admin()?;
    let (devices, files, warm) = app.devices.stats();
    Ok(Json(json!({"devices": devices, "files": files, "warm": warm})).into_response())
}

async fn bans(State(app): State<AppState>, Auth(actor): Auth) -> Result<Response> {
    actor.check_admin()?;
    let v: Vec<Value> = app
        .devices
        .bans
        .list()
        .await?
        .into_iter()
        .map(
            |(ip, left, n)| json!({"address": ip.to_string(), "seconds_left": left, "failures": n}),
        )
        .collect();
    Ok(Json(json!({ "bans": v })).into_response())
}

async fn lift_ban(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(ip): Path<String>,
) -> Result<Response> {
    actor.check_admin()?;
    actor.check_write()?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| Error::BadRequest("not an IP address".into()))?;
    if app.devices.bans.lift(ip).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound("no ban for this address".into()))
    }
}
