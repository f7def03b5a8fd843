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
    let (store, _) = open_store(cfg).await?;
    let cipher = load_key(cfg)?;
    check_key(&store, &cipher).await?;
    Ok((store, cipher))
}

/// The secret key must be the one the database's secrets were written with: every node of a
/// cluster shares it. The first start records a check value; a later start with another key
/// is refused before anything is written.
async fn check_key(store: &Store, cipher: &Cipher) -> anyhow::Result<()> {
    const PLAIN: &str = "voxprov secret key check";
    let refused = || {
        anyhow::anyhow!(
            "secret key: the database's secrets were written with another key (every node must have the same secret.key: copy it from a node already running); the server was not started"
        )
    };
    let mut tx = store.begin().await?;
    if store::installation_value(&mut tx, "key_check")
        .await?
        .is_none()
    {
        // First start of this version on an existing database: a secret already stored says
        // which key it is (no record is made for a key that cannot read it).
        if let Some(stored) = store::any_stored_secret(&mut tx).await? {
            if cipher.decrypt(&stored).is_err() {
                return Err(refused());
            }
        }
        store::installation_set_once(&mut tx, "key_check", &cipher.encrypt(PLAIN)?).await?;
    }
    let stored = store::installation_value(&mut tx, "key_check").await?;
    tx.commit().await?;
    match stored.map(|s| cipher.decrypt(&s)) {
        Some(Ok(p)) if p == PLAIN => Ok(()),
        _ => Err(refused()),
    }
}

/// `voxprov migrate`: [`open`], saying which schema version the database was at before and
/// is at now.
pub async fn migrate(cfg: &Config) -> anyhow::Result<(i64, i64)> {
    let (store, before) = open_store(cfg).await?;
    load_key(cfg)?;
    Ok((before, store.known_schema_version()))
}

/// The data directory (the owner's only) and the database, migrated; with the schema version
/// it was at before.
async fn open_store(cfg: &Config) -> anyhow::Result<(Store, i64)> {
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
    let before = store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("database migration: {e}"))?;
    Ok((store, before))
}

/// The secret key, created (0600) on first start.
fn load_key(cfg: &Config) -> anyhow::Result<Cipher> {
    Cipher::load_or_create(&cfg.secret_key_path()).map_err(|e| anyhow::anyhow!("secret key: {e}"))
}

/// Opens an existing installation as it is, for reading (a backup): nothing is created or
/// migrated — a missing secret key or database, or a schema this binary does not have
/// exactly, is refused (the usual cause: the wrong `--config` or data directory).
pub async fn open_existing(cfg: &Config) -> anyhow::Result<(Store, Cipher)> {
    let key = cfg.secret_key_path();
    if !key.is_file() {
        anyhow::bail!(
            "no secret key at {}: is this the installation's configuration (--config, --data-dir)?",
            key.display()
        );
    }
    if let Some(db) = cfg.sqlite_path() {
        if !db.is_file() {
            anyhow::bail!("no database at {}", db.display());
        }
    }
    let store = Store::open(&cfg.database_url(), cfg.sqlite_synchronous)
        .await
        .map_err(|e| anyhow::anyhow!("database: {e}"))?;
    let at = store.schema_at().await?;
    let known = store.known_schema_version();
    if at != known {
        anyhow::bail!(
            "the database's schema is at version {at}, this voxprov's is {known}: back up with the voxprov that runs it (or run `voxprov migrate` first)"
        );
    }
    let cipher = Cipher::load_or_create(&key).map_err(|e| anyhow::anyhow!("secret key: {e}"))?;
    Ok((store, cipher))
}

/// Restores a backup file into the configured database and data directory, which must be
/// empty (or hold this very backup's secret key): the passphrase is checked before anything
/// is written; the rows go in all together or not at all.
pub async fn restore(
    cfg: &Config,
    file: &std::path::Path,
    passphrase: &str,
) -> anyhow::Result<app::backup::Summary> {
    let kind = cfg.db_kind()?;
    let known = store::dump::known_schema_version(&kind);
    let header = app::backup::header_of(file, known)?;
    let key = app::backup::unseal(&header, passphrase).await?;
    let key_path = cfg.secret_key_path();
    let mut wrote_key = false;
    if key_path.exists() {
        let existing = Cipher::load_or_create(&key_path)?;
        if !crypto::constant_time_eq(&existing.export_key(), &key) {
            anyhow::bail!(
                "a different secret key exists at {}: restore into an empty data directory (nothing was written)",
                key_path.display()
            );
        }
    }
    // No server may run on it meanwhile (as `serve` takes it: the lock, then the store).
    let _lock = match cfg.sqlite_path() {
        Some(db) if kind == DbKind::Sqlite => Some(fsutil::lock_database(&db)?),
        _ => None,
    };
    let (store, _) = open_store(cfg).await?;
    {
        let mut c = store.read().await?;
        if !store::dump::is_fresh(&mut c).await? {
            anyhow::bail!(
                "the database is not empty (it has admins or changes): restore into an empty database (nothing was written)"
            );
        }
    }
    if !key_path.exists() {
        if let Some(dir) = key_path.parent() {
            fsutil::private_dir(dir)?;
        }
        fsutil::write_private(&key_path, hex::encode(&key).as_bytes())?;
        wrote_key = true;
    }
    let f = std::fs::File::open(file)?;
    let result = app::backup::load(&store, &mut std::io::BufReader::new(f)).await;
    store.close().await;
    if result.is_err() && wrote_key {
        let _ = std::fs::remove_file(&key_path);
    }
    result
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

/// The sockets a server answers on: plain HTTP, HTTPS, or both.
pub struct Listeners {
    pub http: Option<tokio::net::TcpListener>,
    pub https: Option<tokio::net::TcpListener>,
}

impl Listeners {
    /// Binds what the configuration asks for (before anything else, so a taken port stops
    /// the start at once).
    pub async fn bind(cfg: &Config) -> anyhow::Result<Listeners> {
        let http = match cfg.tls.http {
            true => Some(
                tokio::net::TcpListener::bind(cfg.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("listen {}: {e}", cfg.listen))?,
            ),
            false => None,
        };
        let https = match cfg.tls.listen {
            Some(a) => Some(
                tokio::net::TcpListener::bind(a)
                    .await
                    .map_err(|e| anyhow::anyhow!("tls.listen {a}: {e}"))?,
            ),
            None => None,
        };
        Ok(Listeners { http, https })
    }
}

/// Runs the server on `listeners` until `shutdown` resolves.
pub async fn serve(
    cfg: Config,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // SIGHUP is taken from the start (its default would end the process: `systemctl reload`
    // must never stop the service); with HTTPS it re-reads the certificate.
    #[cfg(unix)]
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    // One server per SQLite database, for as long as this one runs.
    let _lock = match cfg.sqlite_path() {
        Some(db) if cfg.db_kind()? == DbKind::Sqlite => Some(fsutil::lock_database(&db)?),
        _ => None,
    };
    let (store, cipher) = open(&cfg).await?;
    bootstrap(&store).await?;
    let app = Arc::new(app::App::build(cfg, store.clone(), cipher).await?);
    // The certificate is checked before anything is served: a bad one stops the start.
    let tls = match listeners.https {
        Some(_) => Some(http::tls::Tls::load(&app).await?),
        None => None,
    };
    let workers = app.start();
    http::metrics::install();
    // The API first: the UI's pages act through it.
    let api = http::router(app.clone());
    let router = http::behind_proxies(
        api.clone().merge(ui::router(app.clone(), api)),
        &app.cfg.trusted_proxies,
    );
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // A boot storm after a power cut meets a warm cache: the sockets are bound (the port is
    // ours) but nothing is accepted until every phone's configuration is cached.
    let wait = std::time::Duration::from_secs(app.cfg.prov.warm_wait_seconds);
    if !wait.is_zero() {
        let t0 = std::time::Instant::now();
        let mut stopping = stop.clone();
        tokio::select! {
            warm = app.devices.wait_warm(wait) => match warm {
                true => tracing::info!(ms = t0.elapsed().as_millis() as u64, "phone cache warm-up ended: accepting connections"),
                false => tracing::warn!(
                    "phone cache still warming after prov.warm_wait_seconds ({}): accepting connections",
                    wait.as_secs()
                ),
            },
            _ = stopping.changed() => {}
        }
    }
    #[cfg(unix)]
    reload_on_sighup(hangups, tls.clone());
    let mut servers = tokio::task::JoinSet::new();
    if let Some(l) = listeners.http {
        let addr = l.local_addr()?;
        tracing::info!(%addr, backend = store.backend(), "voxprov serving HTTP");
        println!("voxprov listening on http://{addr}");
        servers.spawn(http::serve(router.clone(), l, stop.clone()));
    }
    if let (Some(l), Some(tls)) = (listeners.https, tls) {
        let addr = l.local_addr()?;
        tracing::info!(%addr, backend = store.backend(), "voxprov serving HTTPS");
        println!("voxprov listening on https://{addr}");
        servers.spawn(http::tls::serve(router, l, tls, stop.clone()));
    }
    while let Some(done) = servers.join_next().await {
        done??;
    }
    workers.stop();
    store.close().await;
    Ok(())
}

/// SIGHUP re-reads the TLS certificate (renewed by certbot and the like) without a restart;
/// without HTTPS there is nothing to re-read, and it says so.
#[cfg(unix)]
fn reload_on_sighup(mut hangups: tokio::signal::unix::Signal, tls: Option<Arc<http::tls::Tls>>) {
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match &tls {
                Some(tls) => match tls.reload() {
                    Ok(()) => tracing::info!("tls: certificate reloaded"),
                    Err(e) => {
                        tracing::error!("tls: reload failed, keeping the old certificate: {e:#}")
                    }
                },
                None => tracing::info!("SIGHUP: no HTTPS listener, nothing to reload"),
            }
        }
    });
}
