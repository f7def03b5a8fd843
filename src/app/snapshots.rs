//! Snapshots (SARK's): backups kept by the server in `<data_dir>/snapshots/`, taken, listed,
//! downloaded, uploaded, restored into the running system and deleted through the API, by
//! admins only. A restore replaces the configuration (every table but the records of what
//! happened — the journal, CDRs, phones' fetches — and the admin CA) in one transaction, is
//! journalled, has every SIP server loaded in full and the phones' configuration cache
//! rebuilt.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::backup;
use super::App;
use crate::changes::{self, Change, Op};
use crate::error::{Error, Result};
use crate::model::Actor;

/// What a live restore leaves as it is: records of what happened, not configuration — the
/// journal (the restore is added to it), call records and their collectors' cursors, phones'
/// fetch log.
/// The admin CA (`pki`) and the installation's own facts (`installation`: the key check, the
/// restore count) stay too: they are the installation's, like the secret key, and the
/// HTTPS listener trusts the one it loaded.
const KEPT: &[&str] = &[
    "changes",
    "cdrs",
    "cdr_cursors",
    "device_fetches",
    "pki",
    "installation",
];

fn dir(app: &App) -> PathBuf {
    app.cfg.data_dir.join("snapshots")
}

fn check(actor: &Actor, write: bool) -> Result<()> {
    actor.check_admin()?;
    if write {
        actor.check_write()?;
    }
    Ok(())
}

/// A snapshot's file, by its id (letters, digits, '-' and '_' only: never a path). Only
/// admins with write rights: a snapshot holds every password hash and the sealed key.
pub fn path_of(app: &App, actor: &Actor, id: &str) -> Result<PathBuf> {
    check(actor, true)?;
    let ok = (1..=80).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    let p = dir(app).join(format!("{id}.vxb"));
    if !ok || !p.is_file() {
        return Err(Error::NotFound("no such snapshot".into()));
    }
    Ok(p)
}

fn describe(app: &App, id: &str, p: &Path) -> Value {
    let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    match backup::header_of(p, app.store.known_schema_version()) {
        Ok(h) => json!({
            "id": id, "size": size, "created": h.created, "voxprov": h.voxprov,
            "schema": h.schema, "backend": h.backend, "restorable": true,
        }),
        Err(e) => json!({ "id": id, "size": size, "restorable": false, "problem": e.to_string() }),
    }
}

/// Every snapshot, newest first.
pub fn list(app: &App, actor: &Actor) -> Result<Vec<Value>> {
    check(actor, false)?;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir(app)) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let p = e.path();
        if let Some(id) = p
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".vxb"))
        {
            out.push(describe(app, id, &p));
        }
    }
    out.sort_by(|a, b| b["id"].as_str().cmp(&a["id"].as_str()));
    Ok(out)
}

fn passphrase_of(doc: &Value) -> Result<String> {
    if let Some(k) = doc
        .as_object()
        .and_then(|o| o.keys().find(|k| k.as_str() != "passphrase"))
    {
        return Err(Error::invalid(
            k.clone(),
            "unknown field (only passphrase is accepted)",
        ));
    }
    match doc.get("passphrase") {
        Some(Value::String(p)) => Ok(p.clone()),
        Some(_) => Err(Error::invalid("passphrase", "must be a string")),
        None => Err(Error::invalid("passphrase", "is required")),
    }
}

fn new_id() -> String {
    format!(
        "snap-{}-{}",
        chrono::Utc::now().format("%Y%m%dT%H%M%SZ"),
        &crate::crypto::random_token(6).replace(['-', '_'], "x")
    )
}

async fn journal(app: &App, actor: &Actor, op: Op, id: &str) -> Result<()> {
    let mut tx = app.store.begin().await?;
    record(&mut tx, actor, op, &json!({ "snapshot": id })).await?;
    tx.commit().await?;
    Ok(())
}

/// A snapshot's journal entry (resource `snapshots`: taken, uploaded, restored, deleted).
async fn record(tx: &mut crate::store::Tx, actor: &Actor, op: Op, v: &Value) -> Result<()> {
    changes::record(
        tx,
        actor,
        Change {
            resource: "snapshots",
            object_id: 0,
            reseller_id: None,
            op,
            before: (op == Op::Delete).then_some(v),
            after: (op != Op::Delete).then_some(v),
        },
    )
    .await?;
    Ok(())
}

/// Takes a snapshot now (the secret key sealed under `passphrase`).
pub async fn take(app: &App, actor: &Actor, doc: &Value) -> Result<Value> {
    check(actor, true)?;
    let pass = passphrase_of(doc)?;
    backup::check_passphrase(&pass).map_err(|e| {
        Error::invalid(
            "passphrase",
            e.to_string().trim_start_matches("passphrase: "),
        )
    })?;
    let id = new_id();
    let (tmp, f) = partial_file(app, &id)?;
    let path = dir(app).join(format!("{id}.vxb"));
    let mut w = std::io::BufWriter::new(f);
    let written = backup::write(&app.store, &app.cipher, &pass, &mut w).await;
    let done = written.and_then(|_| {
        let f = w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    });
    if let Err(e) = done {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::internal(e));
    }
    journal(app, actor, Op::Create, &id).await?;
    Ok(describe(app, &id, &path))
}

/// Keeps an uploaded file (already written to `tmp`) as a snapshot, if it is one this
/// voxprov can restore.
pub async fn keep_upload(app: &App, actor: &Actor, tmp: &Path) -> Result<Value> {
    check(actor, true)?;
    if let Err(e) = backup::header_of(tmp, app.store.known_schema_version()) {
        let _ = std::fs::remove_file(tmp);
        return Err(Error::invalid("uploadsnap", e.to_string()));
    }
    let id = new_id();
    let path = dir(app).join(format!("{id}.vxb"));
    std::fs::rename(tmp, &path).map_err(Error::internal)?;
    journal(app, actor, Op::Create, &id).await?;
    Ok(describe(app, &id, &path))
}

/// Where an upload is written while it arrives.
pub fn upload_target(app: &App, actor: &Actor) -> Result<(PathBuf, std::fs::File)> {
    check(actor, true)?;
    partial_file(app, &format!("upload-{}", crate::crypto::random_token(9)))
}

/// A new file `<name>.partial` in the snapshots' directory (made the owner's only), renamed
/// once it is whole.
fn partial_file(app: &App, name: &str) -> Result<(PathBuf, std::fs::File)> {
    let d = dir(app);
    crate::fsutil::private_dir(&d).map_err(Error::internal)?;
    let tmp = d.join(format!("{name}.partial"));
    let f = crate::fsutil::create_private(&tmp).map_err(Error::internal)?;
    Ok((tmp, f))
}

/// Restores snapshot `id` into the running system: all of it or nothing.
pub async fn restore(app: &App, actor: &Actor, id: &str, doc: &Value) -> Result<Value> {
    let path = path_of(app, actor, id)?;
    let pass = passphrase_of(doc)?;
    let header = backup::header_of(&path, app.store.known_schema_version())
        .map_err(|e| Error::invalid("snapshot", e.to_string()))?;
    let key = backup::unseal(&header, &pass).await.map_err(|_| {
        Error::invalid(
            "passphrase",
            "wrong passphrase: the snapshot's key cannot be decrypted with it",
        )
    })?;
    if !crate::crypto::constant_time_eq(&key, &app.cipher.export_key()) {
        return Err(Error::invalid(
            "snapshot",
            "taken with another secret key: restore it with `voxprov restore` into an empty installation",
        ));
    }
    let f = std::fs::File::open(&path).map_err(Error::internal)?;
    let (mut tx, summary) =
        backup::load_uncommitted(&app.store, &mut std::io::BufReader::new(f), KEPT)
            .await
            .map_err(|e| {
                // The file's own faults are named; anything else is the server's.
                if e.downcast_ref::<backup::Damaged>().is_some() {
                    Error::invalid("snapshot", e.to_string())
                } else {
                    tracing::error!(
                        snapshot = id,
                        "snapshot restore failed, nothing changed: {e:#}"
                    );
                    Error::internal(e)
                }
            })?;
    // Every SIP server is loaded in full from the restored state.
    sqlx::query("UPDATE sipserver_state SET full_load = full_load + 1")
        .execute(&mut *tx)
        .await?;
    let v = json!({ "snapshot": id, "tables": summary.tables, "rows": summary.rows });
    record(&mut tx, actor, Op::Update, &v).await?;
    // The other nodes drop what they hold of the state before, as this one does below.
    crate::store::count_restore(&mut tx).await?;
    crate::store::Store::notify(&mut tx, "restored").await?;
    tx.commit().await?;
    app.targets.reconfigure();
    app.targets.kick();
    // Admins, keys and sessions are checked afresh; hooks and phones are read again.
    app.credentials.invalidate();
    app.hooks.invalidate();
    app.devices.reload_all().await;
    tracing::warn!(
        snapshot = id,
        rows = summary.rows,
        "snapshot restored into the live system"
    );
    Ok(v)
}

pub async fn delete(app: &App, actor: &Actor, id: &str) -> Result<()> {
    let path = path_of(app, actor, id)?;
    std::fs::remove_file(&path).map_err(Error::internal)?;
    journal(app, actor, Op::Delete, id).await
}
