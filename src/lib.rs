//! voxprov: a provisioning server for SIP/VoIP platforms.
//!
//! Start-up is a library function ([`open`], [`serve`]) so that `main` stays thin and tests
//! can run the real thing; see DESIGN.md for the architecture.

pub mod app;
pub mod changes;
pub mod config;
pub mod crypto;
pub mod devices;
pub mod error;
pub mod features;
pub mod fsutil;
pub mod hooks;
pub mod http;
pub mod model;
pub mod resources;
pub mod store;
pub mod targets;
pub mod templating;
pub mod ui;

use std::sync::Arc;

use sqlx::Row;

use crate::config::{Config, DbKind};
use crate::crypto::Cipher;
use crate::store::Store;

/// Opens (creating where needed) the data directory, the database with its migrations, and
/// the secret key.
pub async fn open(cfg: &Config) -> anyhow::Result<(Store, Cipher)> {
    // The data directory holds the database and the secret key: the owner's only.
    fsutil::private_dir(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("data_dir {}: {e}", cfg.data_dir.display()))?;
    if let Some(db) = cfg.sqlite_path() {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            fsutil::restrict(std::path::Path::new(&p), 0o600)
                .map_err(|e| anyhow::anyhow!("database file {}: {e}", db.display()))?;
        }
    }
    if cfg.db_kind()? == DbKind::Postgres && cfg.secret_key_file.is_none() {
        tracing::warn!(
            "PostgreSQL with a node-local secret key: give every node the same secret_key_file"
        );
    }
    let store = Store::open(&cfg.database_url(), cfg.sqlite_synchronous)
        .await
        .map_err(|e| anyhow::anyhow!("database: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("database migration: {e}"))?;
    let cipher = Cipher::load_or_create(&cfg.secret_key_path())
        .map_err(|e| anyhow::anyhow!("secret key: {e}"))?;
    Ok((store, cipher))
}

/// On an empty database: the `default` reseller and the `administrator` admin, with the
/// password from VOXPROV_ADMIN_PASSWORD or a random one that is printed once.
pub async fn bootstrap(store: &Store) -> anyhow::Result<()> {
    let mut tx = store.begin().await?;
    let n: i64 = sqlx::query("SELECT COUNT(*) FROM admins")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if n > 0 {
        return Ok(());
    }
    let actor = model::Actor::system();
    let resellers: i64 = sqlx::query("SELECT COUNT(*) FROM resellers")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if resellers == 0 {
        let id =
            store::resellers::insert_reseller(&mut tx, "default", "active", None, None).await?;
        let after = serde_json::json!({ "id": id, "name": "default", "status": "active" });
        changes::record(
            &mut tx,
            &actor,
            changes::Change {
                resource: "resellers",
                object_id: id,
                reseller_id: Some(id),
                op: changes::Op::Create,
                before: None,
                after: Some(&after),
            },
        )
        .await?;
    }
    let (password, generated) = match std::env::var("VOXPROV_ADMIN_PASSWORD") {
        Ok(p) if !p.is_empty() => (p, false),
        _ => (crypto::random_token(18), true),
    };
    let hash = crypto::hash_password(password.clone()).await?;
    let t = store::now();
    let id: i64 = sqlx::query(
        "INSERT INTO admins (login, password_hash, role, reseller_id, read_only, is_active, create_timestamp, modify_timestamp) \
         VALUES ('administrator', $1, 'admin', NULL, 0, 1, $2, $2) RETURNING id",
    )
    .bind(hash)
    .bind(t)
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    let after = serde_json::json!({ "id": id, "login": "administrator", "role": "admin" });
    changes::record(
        &mut tx,
        &actor,
        changes::Change {
            resource: "admins",
            object_id: id,
            reseller_id: None,
            op: changes::Op::Create,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    if generated {
        // Printed once, on purpose: there is no other way to learn it.
        println!("voxprov: created admin 'administrator' with password: {password}");
        println!("voxprov: change it with `voxprov admin passwd administrator`");
    } else {
        tracing::info!(
            "created admin 'administrator' with the password from VOXPROV_ADMIN_PASSWORD"
        );
    }
    Ok(())
}

/// Runs the server on `listener` until `shutdown` resolves.
pub async fn serve(
    cfg: Config,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // One server per SQLite database, for as long as this one runs.
    let _lock = match cfg.sqlite_path() {
        Some(db) if cfg.db_kind()? == DbKind::Sqlite => Some(fsutil::lock_database(&db)?),
        _ => None,
    };
    let (store, cipher) = open(&cfg).await?;
    bootstrap(&store).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(app::App::build(cfg, store.clone(), cipher).await?);
    let workers = app.start();
    http::metrics::install();
    // The API first: the UI's pages act through it.
    let api = http::router(app.clone());
    let ui = ui::router(app.clone(), api.clone());
    tracing::info!(%addr, backend = store.backend(), "voxprov serving");
    println!("voxprov listening on http://{addr}");
    http::serve(api.merge(ui), listener, shutdown).await?;
    workers.stop();
    store.close().await;
    Ok(())
}
