//! `/prov/`: what a phone's request gets, decided without HTTP (the face that speaks it is
//! `http/prov.rs`). Every request is treated as an attack until it proves otherwise: an
//! unknown MAC, a wrong token, wrong credentials and a refused address all get the same
//! answer and count against the address; enough of them ban it.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use super::security::{self, token_hash};
use super::{DeviceData, DeviceDataFiles, Devices, Loaded};

pub use super::security::looks_like_token;

/// A phone's request, as far as the decision goes.
pub struct ProvRequest<'a> {
    pub ip: IpAddr,
    /// The request target as sent (Digest answers are bound to it).
    pub uri: &'a str,
    pub ua: &'a str,
    pub file: &'a str,
    /// GET, HEAD or PUT.
    pub method: &'a str,
    /// A PUT: a log upload.
    pub put: bool,
    pub authorization: Option<&'a str>,
    /// Where phones reach `/prov/`, as this request named it.
    pub base: String,
}

/// What a request gets.
pub enum Served {
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

/// A file name a phone may ask for: short, plain, not hidden.
pub fn sane_file(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 128
        && !f.starts_with('.')
        && f.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// Whether the phone's `If-None-Match` names this ETag (then: 304).
pub fn fresh(if_none_match: Option<&str>, etag: &str) -> bool {
    if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
}

/// Decides a request: by token (`/prov/<token>/<file>`) or by file name and credentials.
pub async fn decide(d: &Devices, token: Option<&str>, r: &ProvRequest<'_>) -> Served {
    match token {
        Some(t) => with_token(d, r, t).await,
        None => without_token(d, r).await,
    }
}

/// `/prov/<token>/<file>`: the token names the device; a MAC in the file must be its own.
async fn with_token(d: &Devices, r: &ProvRequest<'_>, token: &str) -> Served {
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
    if r.put {
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

async fn without_token(d: &Devices, r: &ProvRequest<'_>) -> Served {
    let cat = d.catalog();
    let mac = if r.put {
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
            return if d.cfg.http_challenge && r.authorization.is_none() {
                Served::Challenge
            } else {
                Served::Fail("unknown MAC")
            }
        }
    };
    let header = r.authorization;
    if header.is_none() && d.cfg.http_challenge && data.auth.mode != "none" {
        return Served::Challenge;
    }
    let ok = match data.auth.mode.as_str() {
        "none" => true,
        "token" => false,
        _ => security::check_http(&data.auth, &data.mac, header, r.method, r.uri, &d.etag_key),
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
    if r.put {
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

/// A phone's log upload (Poly PUTs `<mac>-app.log` and the like): kept, size-capped by the
/// caller, as the device's latest of that name under the data directory, owner-only.
pub async fn store_upload(
    data_dir: &Path,
    mac: &str,
    file: &str,
    bytes: bytes::Bytes,
) -> std::io::Result<()> {
    let dir = data_dir.join("prov-logs").join(mac);
    let path = dir.join(file);
    tokio::task::spawn_blocking(move || {
        crate::fsutil::private_dir(&dir)?;
        crate::fsutil::write_private(&path, &bytes)
    })
    .await
    .map_err(std::io::Error::other)?
}
