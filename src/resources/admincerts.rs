//! `/api/admincerts/` (NGCP's): a client certificate for an admin, issued by voxprov's admin
//! CA and delivered once, as a ZIP with the PEM certificate and key; the admin is then
//! recognised by it on the HTTPS listener without a password. One certificate per admin: a new
//! one replaces the old, revoking (DELETE) clears it.

use std::io::Write;

use serde_json::{json, Value};
use sqlx::Row;

use crate::app::App;
use crate::changes::{self, Change, Op};
use crate::error::{Error, Result};
use crate::model::{Actor, ActorKind};

/// Validity of an issued certificate.
const DAYS: i64 = 365 * 2;

struct Target {
    id: i64,
    login: String,
    reseller_id: Option<i64>,
    serial: Option<String>,
}

/// The admin `by` (id or login) = `key`, as `actor` may see them; `active_only`: a
/// deactivated admin does not count (a revocation still finds them).
async fn target_by(
    app: &App,
    actor: &Actor,
    by: &str,
    key: &str,
    active_only: bool,
) -> Result<Option<Target>> {
    let mut c = app.store.read().await?;
    let sql = format!(
        "SELECT id, login, reseller_id, ssl_client_m_serial FROM admins WHERE {by} = $1{}",
        if active_only {
            " AND is_active = 1"
        } else {
            ""
        }
    );
    let q = sqlx::query(&sql);
    let q = match by {
        "id" => q.bind(key.parse::<i64>().unwrap_or(-1)),
        _ => q.bind(key.to_string()),
    };
    let Some(row) = q.fetch_optional(&mut *c).await? else {
        return Ok(None);
    };
    let t = Target {
        id: row.try_get(0)?,
        login: row.try_get(1)?,
        reseller_id: row.try_get(2)?,
        serial: row.try_get(3)?,
    };
    // A reseller's admins see their own reseller's admins only; others do not exist for them.
    if actor.scope().is_some_and(|r| t.reseller_id != Some(r)) {
        return Ok(None);
    }
    Ok(Some(t))
}

/// May `actor` act on `t`'s certificate? A certificate carries its admin's full rights, so
/// only an admin's own credentials make one (never an API key, whose rights may be narrower);
/// oneself always, someone else only with write rights over them. Revoking asks less: an
/// API key of the admin may revoke (it only takes rights away).
fn check_may(actor: &Actor, t: &Target, issuing: bool) -> Result<()> {
    if issuing && actor.kind != ActorKind::Admin {
        return Err(Error::Forbidden(
            "a client certificate is made with an admin's own login, not an API key".into(),
        ));
    }
    if actor.admin_id == Some(t.id) {
        return Ok(());
    }
    if actor.read_only || actor.kind == ActorKind::ApiKey && actor.admin_id.is_none() {
        return Err(Error::Forbidden(
            "insufficient privileges to manage this administrator's certificate".into(),
        ));
    }
    Ok(())
}

/// Issues a certificate for `login` (default: the caller): the ZIP's file name and bytes.
pub async fn create(app: &App, actor: &Actor, doc: &Value) -> Result<(String, Vec<u8>)> {
    let Some(obj) = doc.as_object() else {
        return Err(Error::BadRequest(
            "the body must be a JSON object ({} for yourself)".into(),
        ));
    };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "login") {
        return Err(Error::invalid(
            k.clone(),
            "unknown field (only login is accepted)",
        ));
    }
    let login = match doc.get("login") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(Error::invalid("login", "must be a string")),
    };
    let t = match &login {
        Some(l) => target_by(app, actor, "login", l, true).await?,
        None => match actor.admin_id {
            Some(id) => target_by(app, actor, "id", &id.to_string(), true).await?,
            None => None,
        },
    }
    .ok_or_else(|| Error::invalid("login", "administrator does not exist"))?;
    check_may(actor, &t, true)?;
    let ca = crate::app::certs::admin_ca(&app.store, &app.cipher).await?;
    let issued = ca.issue_client(&t.login, DAYS)?;
    set_certificate(app, actor, &t, Some((&issued.serial, &issued.fingerprint))).await?;
    let name = format!("NGCP-API-client-certificate-{}", issued.serial);
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .unix_permissions(0o600);
    let pem = format!("{}{}", issued.cert_pem, issued.key_pem);
    zip.start_file(format!("{name}.pem"), opts)
        .map_err(Error::internal)?;
    zip.write_all(pem.as_bytes()).map_err(Error::internal)?;
    zip.start_file("voxprov-admin-ca.pem", opts)
        .map_err(Error::internal)?;
    zip.write_all(ca.cert_pem.as_bytes())
        .map_err(Error::internal)?;
    let bytes = zip.finish().map_err(Error::internal)?.into_inner();
    Ok((format!("{name}.zip"), bytes))
}

/// Whether admin `id` has a certificate, and its serial (never the certificate itself).
pub async fn get(app: &App, actor: &Actor, id: i64) -> Result<Value> {
    let t = target_by(app, actor, "id", &id.to_string(), false)
        .await?
        .ok_or_else(|| Error::NotFound("no such administrator".into()))?;
    Ok(json!({
        "id": t.id,
        "login": t.login,
        "has_certificate": t.serial.is_some(),
        "ssl_client_m_serial": t.serial,
    }))
}

/// Revokes admin `id`'s certificate: from the next request on it authenticates no one.
pub async fn revoke(app: &App, actor: &Actor, id: i64) -> Result<()> {
    let t = target_by(app, actor, "id", &id.to_string(), false)
        .await?
        .ok_or_else(|| Error::NotFound("no such administrator".into()))?;
    check_may(actor, &t, false)?;
    if t.serial.is_none() {
        return Err(Error::NotFound(
            "this administrator has no certificate".into(),
        ));
    }
    set_certificate(app, actor, &t, None).await
}

/// Records admin `t`'s certificate (serial and fingerprint), or none, with its journal entry.
async fn set_certificate(
    app: &App,
    actor: &Actor,
    t: &Target,
    cert: Option<(&str, &str)>,
) -> Result<()> {
    let mut tx = app.store.begin().await?;
    sqlx::query("UPDATE admins SET ssl_client_m_serial = $1, ssl_client_fingerprint = $2, modify_timestamp = $3 WHERE id = $4")
        .bind(cert.map(|c| c.0))
        .bind(cert.map(|c| c.1))
        .bind(crate::store::now())
        .bind(t.id)
        .execute(&mut *tx)
        .await?;
    let state = |serial: Option<&str>| json!({ "id": t.id, "login": t.login, "ssl_client_m_serial": serial });
    let (before, after) = (state(t.serial.as_deref()), state(cert.map(|c| c.0)));
    changes::record(
        &mut tx,
        actor,
        Change {
            resource: "admincerts",
            object_id: t.id,
            reseller_id: t.reseller_id,
            op: if cert.is_some() {
                Op::Create
            } else {
                Op::Delete
            },
            before: Some(&before),
            after: cert.is_some().then_some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
