//! Storage: SQLite (embedded default) or PostgreSQL, chosen once from the URL.
//!
//! Both run the same statements (written with `$N` placeholders, which SQLite accepts too) over
//! sqlx's `Any` driver; what differs lives here and in the per-dialect migrations: how a
//! database is opened, how rows are locked, how writers are serialised. Nothing above this
//! module knows which database it is on.
//!
//! SQLite has a single writer. Rather than letting several connections race for the write lock
//! (SQLITE_BUSY, or a deadlock when two deferred transactions both upgrade), writes go through
//! a pool of exactly one connection and wait their turn; reads use a separate pool and never
//! block on writers thanks to WAL.

pub mod accounts;
pub mod cdrs;
pub mod contacts;
pub mod contracts;
pub mod customers;
pub mod devices;
pub mod dump;
pub mod features;
pub mod hooks;
mod lane;
pub mod numbers;
pub mod pbx;
pub mod peering;
pub mod profiles;
pub mod resellers;
pub mod sessions;
pub mod sipservers;
pub mod sounds;
pub mod strikes;
pub mod subscribers;
mod writer;

pub use writer::Tx;

use std::{str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions},
    pool::PoolConnection,
    Any, AnyPool, Executor,
};

use crate::config::{db_kind, DbKind, SqliteSync};
use crate::error::{Error, Result};

pub type Conn = sqlx::AnyConnection;

#[derive(Clone)]
pub struct Store {
    write: AnyPool,
    /// SQLite's single writer, whose transactions share commits (see [`writer`]).
    group: Option<std::sync::Arc<writer::Group>>,
    read: AnyPool,
    /// SQLite: how a connection is opened and set up, for readers of a lane's own (see
    /// [`Store::with_own_readers`]).
    sqlite: Option<std::sync::Arc<(String, AnyConnectOptions)>>,
    kind: DbKind,
    /// Where the database is (the listener for wake-ups opens its own connection).
    url: std::sync::Arc<str>,
    /// This process among the nodes sharing the database (shown in lease history).
    node: std::sync::Arc<str>,
}

/// The options of a pool of at most `max` SQLite connections, each set up with `pragmas`
/// when opened.
fn sqlite_pool(pragmas: &str, max: u32) -> AnyPoolOptions {
    let pragmas: std::sync::Arc<str> = pragmas.into();
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        .after_connect(move |c, _| {
            let p = pragmas.clone();
            Box::pin(async move {
                c.execute(&*p).await?;
                Ok(())
            })
        })
}

/// `n` SQLite readers, all opened now from the calling thread and kept (never closed for
/// idleness or age): where they are opened decides which CPUs their threads may use.
async fn sqlite_readers(
    pragmas: &str,
    opts: &AnyConnectOptions,
    n: u32,
) -> std::result::Result<AnyPool, sqlx::Error> {
    sqlite_pool(pragmas, n)
        .min_connections(n)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(opts.clone())
        .await
}

static SQLITE_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl Store {
    pub async fn open(url: &str, sync: SqliteSync) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let kind = db_kind(url)?;
        match kind {
            DbKind::Sqlite => {
                let url = if url.contains('?') {
                    url.to_string()
                } else {
                    format!("{url}?mode=rwc")
                };
                let opts = AnyConnectOptions::from_str(&url)?;
                let sync = match sync {
                    SqliteSync::Full => "FULL",
                    SqliteSync::Normal => "NORMAL",
                };
                let pragmas = format!(
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA foreign_keys=ON; \
                     PRAGMA busy_timeout=10000; PRAGMA temp_store=MEMORY;"
                );
                // Opened from the writer's lane, so that the connection's thread is on the
                // lane's CPU (see [`lane`]).
                let (write_pool, write_opts) = (sqlite_pool(&pragmas, 1), opts.clone());
                let write =
                    lane::run(async move { write_pool.connect_with(write_opts).await }).await??;
                // All opened now, from here, and kept: a reader opened later from the writer's
                // lane (a write that reads on the side) would have its thread pinned to the
                // lane's CPU with it, and reads belong on every CPU.
                let read = sqlite_readers(&pragmas, &opts, 8).await?;
                Ok(Store {
                    group: Some(writer::Group::new(write.clone())),
                    write,
                    read,
                    sqlite: Some(std::sync::Arc::new((pragmas, opts))),
                    kind,
                    url: url.into(),
                    node: node_name().into(),
                })
            }
            DbKind::Postgres => {
                let opts = AnyConnectOptions::from_str(url)?;
                // A connection is tested (one round trip) only when it sat idle for a while:
                // the default tests every acquire, a third of a write's round trips. A busy
                // connection that broke (a failover) fails its statement, which answers 503,
                // and is discarded.
                let pool = AnyPoolOptions::new()
                    .max_connections(32)
                    .acquire_timeout(Duration::from_secs(30))
                    .test_before_acquire(false)
                    .before_acquire(|c, meta| {
                        Box::pin(async move {
                            if meta.idle_for < Duration::from_secs(1) {
                                return Ok(true);
                            }
                            Ok(sqlx::Connection::ping(c).await.is_ok())
                        })
                    })
                    .connect_with(opts)
                    .await?;
                Ok(Store {
                    group: None,
                    write: pool.clone(),
                    read: pool,
                    sqlite: None,
                    kind,
                    url: url.into(),
                    node: node_name().into(),
                })
            }
        }
    }

    /// The schema version the database is at (0: never migrated).
    pub async fn schema_at(&self) -> Result<i64> {
        let mut c = self.write.acquire().await?;
        dump::schema_version(&mut c).await
    }

    /// Brings the schema up to this binary's; returns the version it was at before.
    pub async fn migrate(&self) -> anyhow::Result<i64> {
        // A binary older than the database's schema would misread what a newer one wrote.
        let at = self.schema_at().await?;
        let known = self.known_schema_version();
        if at > known {
            anyhow::bail!(
                "the database's schema is at version {at}, newer than this voxprov ({}) knows ({known}): \
                 a newer voxprov upgraded it; run that version (or restore a backup taken before the upgrade)",
                env!("CARGO_PKG_VERSION")
            );
        }
        match self.kind {
            DbKind::Sqlite => SQLITE_MIGRATOR.run(&self.write).await?,
            DbKind::Postgres => POSTGRES_MIGRATOR.run(&self.write).await?,
        }
        Ok(at)
    }

    /// A write transaction. On SQLite it waits for the single writer and shares its commit
    /// with the writes around it (see [`writer`]); its `commit()` returns once durable.
    pub async fn begin(&self) -> Result<Tx> {
        match &self.group {
            Some(g) => g.begin(false).await,
            None => Ok(Tx::pool(self.write.begin().await?)),
        }
    }

    /// Runs `work` where SQLite's single writer is cheapest to reach: on its lane (see
    /// [`lane`]), which hands statements to the writer's connection without waking another
    /// CPU. For work that holds the writer for several statements (an API write from its
    /// `begin` to its `commit`). On PostgreSQL it runs inline.
    pub async fn on_writer<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        match &self.group {
            Some(_) => lane::run(work).await?,
            // Boxed: a write's future is large, and awaited inline it would sit on the
            // caller's stack with the request's.
            None => Box::pin(work).await,
        }
    }

    /// Whether [`Store::on_writer`] runs its work in a task of its own (SQLite with a lane).
    pub fn writes_on_a_lane(&self) -> bool {
        self.group.is_some() && lane::exists()
    }

    /// Starts a task that writes often where the writer is cheapest to reach (see
    /// [`Store::on_writer`]); on PostgreSQL, an ordinary task.
    pub fn spawn_near_writer<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        match &self.group {
            Some(_) => lane::spawn(work),
            None => tokio::spawn(work),
        }
    }

    /// Starts a SIP server's worker on a lane of its own, on another CPU than the writer's
    /// (see [`lane::spawn_own`]); on PostgreSQL, an ordinary task.
    pub fn spawn_on_own_lane<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = T> + Send + 'static,
    ) -> tokio::task::JoinHandle<T> {
        match &self.group {
            Some(_) => lane::spawn_own(work),
            None => tokio::spawn(work),
        }
    }

    /// This store with `n` SQLite readers of its own, opened now from the calling thread (from
    /// a lane: their threads share its CPU) and kept; its writes are the store's. PostgreSQL,
    /// no lanes, or readers that cannot be opened: the store as it is.
    pub async fn with_own_readers(&self, n: u32) -> Store {
        let Some(setup) = self.sqlite.as_ref().filter(|_| lane::own_lanes()) else {
            return self.clone();
        };
        let (pragmas, opts) = &**setup;
        match sqlite_readers(pragmas, opts, n).await {
            Ok(read) => Store {
                read,
                ..self.clone()
            },
            Err(e) => {
                tracing::warn!(error = %e, "cannot open readers of a lane's own; sharing the store's");
                self.clone()
            }
        }
    }

    /// A write transaction for long work (an import, a restore): on SQLite it commits on its
    /// own, so the short writes before it are not kept waiting for their commit.
    pub async fn begin_solo(&self) -> Result<Tx> {
        match &self.group {
            Some(g) => g.begin(true).await,
            None => Ok(Tx::pool(self.write.begin().await?)),
        }
    }

    pub async fn read(&self) -> Result<PoolConnection<Any>> {
        Ok(self.read.acquire().await?)
    }

    pub async fn ping(&self) -> Result<()> {
        let mut c = self.read().await?;
        sqlx::query("SELECT 1").execute(&mut *c).await?;
        Ok(())
    }

    /// Whether this node has the database to itself (SQLite), so work needs no claims
    /// against other nodes.
    /// Each pool's (name, open connections, idle ones), for /metrics.
    pub fn pool_use(&self) -> [(&'static str, u32, usize); 2] {
        [
            ("write", self.write.size(), self.write.num_idle()),
            ("read", self.read.size(), self.read.num_idle()),
        ]
    }

    pub fn single_node(&self) -> bool {
        self.kind == DbKind::Sqlite
    }

    pub fn backend(&self) -> &'static str {
        match self.kind {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }

    /// This process's name among the nodes (`host:pid`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The exclusive right, across every node sharing this database, to do the work named
    /// `duty` (delivering to one SIP server, say) for as long as the lease lives. On
    /// PostgreSQL it is a session advisory lock on a connection of its own, released when the
    /// lease (and so the connection) is dropped or lost; on SQLite there is one node and it is
    /// always granted. Either way the duty's epoch grows by one and the tenure is written to
    /// `lease_history`: the owner's writes are fenced by the epoch ([`Lease::fence`]).
    pub async fn try_lease(&self, duty: &str) -> Result<Option<Lease>> {
        let conn = match self.kind {
            DbKind::Sqlite => None,
            DbKind::Postgres => {
                let mut c = self.write.acquire().await?.detach();
                let row = sqlx::query("SELECT pg_try_advisory_lock($1)")
                    .bind(lease_key(duty))
                    .fetch_one(&mut c)
                    .await?;
                let got: bool = sqlx::Row::try_get(&row, 0)?;
                if !got {
                    return Ok(None);
                }
                Some(tokio::sync::Mutex::new(c))
            }
        };
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut tx = self.begin().await?;
        let epoch: i64 = sqlx::Row::try_get(
            &sqlx::query(
                "INSERT INTO leases (duty, epoch, holder, taken_at) VALUES ($1, 1, $2, $3) \
                 ON CONFLICT (duty) DO UPDATE SET epoch = leases.epoch + 1, holder = excluded.holder, \
                 taken_at = excluded.taken_at RETURNING epoch",
            )
            .bind(duty)
            .bind(&*self.node)
            .bind(now())
            .fetch_one(&mut *tx)
            .await?,
            0,
        )?;
        // The tenure before ends now at the latest (its holder released it or died).
        sqlx::query("UPDATE lease_history SET ended_ms = $1 WHERE duty = $2 AND ended_ms IS NULL")
            .bind(now_ms)
            .bind(duty)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO lease_history (duty, epoch, holder, taken_at, taken_ms) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(duty)
        .bind(epoch)
        .bind(&*self.node)
        .bind(now())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(Lease {
            conn,
            duty: duty.to_string(),
            epoch,
            store: self.clone(),
        }))
    }

    /// Where the transactions stand now (PostgreSQL): `(xmin, fresh)`, where every
    /// transaction id below `xmin` has ended, and `fresh` is a transaction id drawn just now,
    /// above every id any transaction had before this call. (A snapshot's `xmax` would not
    /// do: it is one past the last *completed* id, and a transaction still running can hold
    /// an id above it.) `None` on SQLite, whose single writer commits in the order ids are
    /// drawn.
    pub async fn horizon(&self) -> Result<Option<(i64, i64)>> {
        if self.kind != DbKind::Postgres {
            return Ok(None);
        }
        let mut c = self.read().await?;
        // One statement, its own transaction: the snapshot is taken as it starts, the id drawn
        // as it runs. A transaction older than the drawn id that is still running when the
        // snapshot is taken holds `xmin` at or below its own id, so `xmin >= fresh` later
        // proves it ended.
        let row = sqlx::query(
            "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint, pg_current_xact_id()::text::bigint",
        )
        .fetch_one(&mut *c)
        .await?;
        Ok(Some((
            sqlx::Row::try_get(&row, 0)?,
            sqlx::Row::try_get(&row, 1)?,
        )))
    }

    /// Whether every transaction with an id below `gate` has ended (a gate from
    /// [`Store::horizon`] or [`Store::drawn_change_id`]). Always on SQLite. Reads the horizon
    /// without drawing an id of its own.
    pub async fn ended_before(&self, gate: i64) -> Result<bool> {
        if self.kind != DbKind::Postgres {
            return Ok(true);
        }
        let mut c = self.read().await?;
        let xmin: i64 = sqlx::Row::try_get(
            &sqlx::query("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
                .fetch_one(&mut *c)
                .await?,
            0,
        )?;
        Ok(xmin >= gate)
    }

    /// The highest change id drawn so far, committed or not, and (PostgreSQL) a transaction
    /// id drawn after it was read: once every transaction below that id has ended
    /// ([`Store::horizon`]'s `xmin` reaches it), every change up to the first is settled.
    pub async fn drawn_change_id(&self) -> Result<(i64, Option<i64>)> {
        let mut c = self.read().await?;
        match self.kind {
            DbKind::Sqlite => {
                let row = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM changes")
                    .fetch_one(&mut *c)
                    .await?;
                Ok((sqlx::Row::try_get(&row, 0)?, None))
            }
            DbKind::Postgres => {
                // Two statements, in this order: the id is drawn after the sequence was read.
                let drawn: i64 = sqlx::Row::try_get(
                    &sqlx::query("SELECT COALESCE(pg_sequence_last_value('changes_id_seq'), 0)")
                        .fetch_one(&mut *c)
                        .await?,
                    0,
                )?;
                let gate: i64 = sqlx::Row::try_get(
                    &sqlx::query("SELECT pg_current_xact_id()::text::bigint")
                        .fetch_one(&mut *c)
                        .await?,
                    0,
                )?;
                Ok((drawn, Some(gate)))
            }
        }
    }

    /// Tells every node listening (see [`Store::listener`]) that `topic` changed, when the
    /// caller's transaction commits. Nothing to tell on SQLite (one node).
    pub async fn notify(c: &mut Conn, topic: &str) -> Result<()> {
        if has_row_locks(c) {
            sqlx::query("SELECT pg_notify('voxprov', $1)")
                .bind(topic)
                .execute(&mut *c)
                .await?;
        }
        Ok(())
    }

    /// A connection that receives what other nodes [`notify`](Store::notify) (and the
    /// triggers on the change log, hooks, deliveries and SIP servers). `None` on SQLite.
    pub async fn listener(&self) -> Result<Option<sqlx::postgres::PgListener>> {
        if self.kind != DbKind::Postgres {
            return Ok(None);
        }
        let mut l = sqlx::postgres::PgListener::connect(&self.url).await?;
        l.listen("voxprov").await?;
        Ok(Some(l))
    }

    pub async fn close(&self) {
        if let Some(g) = &self.group {
            g.close().await;
        }
        self.write.close().await;
        self.read.close().await;
    }
}

/// A fact about the installation (table `installation`).
pub async fn installation_value(c: &mut Conn, name: &str) -> Result<Option<String>> {
    let row = sqlx::query("SELECT value FROM installation WHERE name = $1")
        .bind(name)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.map(|r| sqlx::Row::try_get(&r, 0)).transpose()?)
}

/// One secret stored encrypted (a SIP password), if any: which key the database uses.
pub async fn any_stored_secret(c: &mut Conn) -> Result<Option<String>> {
    let row = sqlx::query(
        "SELECT password_enc FROM subscribers WHERE password_enc IS NOT NULL AND password_enc <> '' LIMIT 1",
    )
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.map(|r| sqlx::Row::try_get(&r, 0)).transpose()?)
}

/// Records a fact unless one is recorded already (the first writer wins).
pub async fn installation_set_once(c: &mut Conn, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO installation (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(value)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Counts one more restore of the installation (other nodes compare the count when they
/// reconnect, in case they missed the wake-up).
pub async fn count_restore(c: &mut Conn) -> Result<()> {
    installation_set_once(c, "restores", "0").await?;
    sqlx::query(
        "UPDATE installation SET value = CAST(CAST(value AS BIGINT) + 1 AS TEXT) WHERE name = 'restores'",
    )
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Deletes tenures that ended before `before_ms`.
pub async fn prune_lease_history(c: &mut Conn, before_ms: i64) -> Result<u64> {
    Ok(
        sqlx::query("DELETE FROM lease_history WHERE ended_ms IS NOT NULL AND ended_ms < $1")
            .bind(before_ms)
            .execute(&mut *c)
            .await?
            .rows_affected(),
    )
}

/// `host:pid`: which process holds a lease.
fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// The advisory lock a duty is held under: a stable 63-bit hash of its name.
fn lease_key(duty: &str) -> i64 {
    use sha2::Digest;
    let h = sha2::Sha256::digest(format!("voxprov lease {duty}").as_bytes());
    i64::from_be_bytes(h[..8].try_into().expect("8 bytes")) & i64::MAX
}

/// See [`Store::try_lease`].
pub struct Lease {
    /// Behind a mutex only so that a `&Lease` can be held across awaits (the connection is
    /// not `Sync`).
    conn: Option<tokio::sync::Mutex<sqlx::AnyConnection>>,
    duty: String,
    /// This tenure's number: higher than every earlier owner's.
    pub epoch: i64,
    store: Store,
}

impl Lease {
    /// Whether the lease still holds: its connection (and so its lock) may have been lost to
    /// a network failure or a database restart.
    pub async fn alive(&self) -> bool {
        match &self.conn {
            None => true,
            Some(c) => sqlx::query("SELECT 1")
                .execute(&mut *c.lock().await)
                .await
                .is_ok(),
        }
    }

    /// Checks, inside the transaction about to record this owner's work, that nobody took the
    /// duty since; holds the lease row until the transaction ends, so a new owner's takeover
    /// comes wholly before or after it.
    pub async fn fence(&self, c: &mut Conn) -> Result<()> {
        let lock = if has_row_locks(c) { " FOR SHARE" } else { "" };
        let row = sqlx::query(&format!("SELECT epoch FROM leases WHERE duty = $1{lock}"))
            .bind(&self.duty)
            .fetch_optional(&mut *c)
            .await?;
        let now: Option<i64> = row.map(|r| sqlx::Row::try_get(&r, 0)).transpose()?;
        if now != Some(self.epoch) {
            metrics::counter!("voxprov_lease_fenced_total", "duty" => self.duty.clone())
                .increment(1);
            return Err(Error::Unavailable(format!(
                "{}: another node took this duty over (epoch {} after {})",
                self.duty,
                now.unwrap_or(0),
                self.epoch
            )));
        }
        Ok(())
    }

    /// Ends the tenure in the history (the lock goes with the lease).
    pub async fn release(self) {
        let r = async {
            let mut tx = self.store.begin().await?;
            sqlx::query(
                "UPDATE lease_history SET ended_ms = $1 WHERE duty = $2 AND epoch = $3 AND ended_ms IS NULL",
            )
            .bind(chrono::Utc::now().timestamp_millis())
            .bind(&self.duty)
            .bind(self.epoch)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = r {
            tracing::debug!(duty = %self.duty, "lease release not recorded: {e}");
        }
    }
}

/// `FOR UPDATE` where the database has row locks; SQLite's single writer already excludes
/// every other writer for the whole transaction.
pub fn for_update(c: &Conn) -> &'static str {
    if has_row_locks(c) {
        " FOR UPDATE"
    } else {
        ""
    }
}

/// PostgreSQL locks rows; SQLite's single writer makes row locks unnecessary.
pub fn has_row_locks(c: &Conn) -> bool {
    c.backend_name().eq_ignore_ascii_case("postgresql")
}

/// Timestamps are stored as fixed-width UTC text, so they sort as text on both databases and
/// read the way Sipwise prints them.
pub fn now() -> String {
    chrono::Utc::now().format(TS_FORMAT).to_string()
}

const TS_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// A unix time in milliseconds in the stored timestamp form.
pub fn ts_of_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format(TS_FORMAT)
        .to_string()
}

/// A time given in the stored timestamp form, as unix milliseconds.
pub fn ms_of_ts(ts: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(ts, TS_FORMAT)
        .ok()
        .map(|t| t.and_utc().timestamp_millis())
}

/// A `LIKE` pattern from a Sipwise filter value: `*` is the wildcard; SQL's own wildcards are
/// escaped, so `50%` matches only "50%".
pub fn like_pattern(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for ch in v.chars() {
        match ch {
            '\\' | '%' | '_' => {
                out.push('\\');
                out.push(ch);
            }
            '*' => out.push('%'),
            c => out.push(c),
        }
    }
    out
}

/// A growing WHERE clause with numbered placeholders.
#[derive(Default, Clone)]
pub struct Where {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

#[derive(Clone, Debug)]
pub enum Arg {
    Int(i64),
    Text(String),
    /// A NULL for an integer or a text column (PostgreSQL wants the type).
    NullInt,
    NullText,
}

impl Arg {
    pub fn opt_int(v: Option<i64>) -> Arg {
        v.map_or(Arg::NullInt, Arg::Int)
    }
    pub fn opt_text(v: Option<String>) -> Arg {
        v.map_or(Arg::NullText, Arg::Text)
    }
    pub fn flag(b: bool) -> Arg {
        Arg::Int(b as i64)
    }
}

impl Where {
    pub fn new() -> Self {
        Self::default()
    }
    /// Adds `expr` where `?` stands for the next placeholder.
    pub fn push(&mut self, expr: &str, arg: Arg) -> &mut Self {
        self.args.push(arg);
        let n = self.args.len();
        self.clauses.push(expr.replace('?', &format!("${n}")));
        self
    }
    pub fn raw(&mut self, expr: &str) -> &mut Self {
        self.clauses.push(expr.to_string());
        self
    }
    /// `col = v`, or `col LIKE pattern` when the value has a `*` wildcard.
    pub fn text_filter(&mut self, col: &str, v: &str) -> &mut Self {
        if v.contains('*') {
            self.push(
                &format!("{col} LIKE ? ESCAPE '\\'"),
                Arg::Text(like_pattern(v)),
            )
        } else {
            self.push(&format!("{col} = ?"), Arg::Text(v.to_string()))
        }
    }
    pub fn next_placeholder(&self) -> usize {
        self.args.len() + 1
    }
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }
    pub fn args(&self) -> &[Arg] {
        &self.args
    }
}

/// `$from, $from+1, …`: `n` numbered placeholders for an IN list.
pub fn placeholders(from: usize, n: usize) -> String {
    (from..from + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// On SQLite, a statement to run after a multi-row `INSERT` of `n` rows into `table` (an
/// `AUTOINCREMENT` table, written without `RETURNING`), in the same query, so the ids come
/// back in the same trip as one row instead of one row each (for a bulk import, turning the
/// returned rows into values and freeing them was about a quarter of its CPU). See
/// [`sqlite_inserted_ids`] and [`sqlite_insert_ids`].
pub fn sqlite_ids_of_insert(table: &str, n: usize) -> String {
    format!(
        "SELECT last_insert_rowid(), (SELECT count(*) FROM {table} WHERE id > last_insert_rowid() - {n})"
    )
}

/// The ids, in VALUES order, of the `n` rows an insert followed by
/// [`sqlite_ids_of_insert`] made, from its row. SQLite gives each row of an `AUTOINCREMENT`
/// table an id above every id the table has had, in the order the rows are inserted (VALUES
/// order), so the statement's rows are the table's `n` highest ids; they are the `n` ids up to
/// the last one exactly when `n` rows lie in that range, which the row counts. Anything else
/// is refused rather than guessed.
pub fn sqlite_inserted_ids(row: &sqlx::any::AnyRow, table: &str, n: usize) -> Result<Vec<i64>> {
    use sqlx::Row;
    let last: i64 = row.try_get(0)?;
    let count: i64 = row.try_get(1)?;
    if count != n as i64 {
        return Err(crate::error::Error::internal(anyhow::anyhow!(
            "{n} rows inserted into {table}, but {count} ids in the range up to {last}"
        )));
    }
    Ok((last - n as i64 + 1..=last).collect())
}

/// Runs `q`, an insert of `n` rows into `table` followed by [`sqlite_ids_of_insert`], and
/// gives the rows' ids in VALUES order. (`fetch_one` would look at the insert's result only.)
pub async fn sqlite_insert_ids<'q>(
    c: &mut Conn,
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    table: &str,
    n: usize,
) -> Result<Vec<i64>> {
    let rows = q.fetch_all(&mut *c).await?;
    let row = rows.first().ok_or(sqlx::Error::RowNotFound)?;
    sqlite_inserted_ids(row, table, n)
}

/// `n` placeholders for parameters bound one after another: `$from, $from+1, …` on
/// PostgreSQL, anonymous `?`s on SQLite. SQLite finds a numbered parameter's name by a linear
/// scan and sqlx asks it for every parameter's, so binding a statement with P numbered
/// parameters costs P² steps: for the multi-row inserts of a bulk import (about 700–1,000
/// parameters each) that was a quarter of the import's time. A statement uses this for all
/// its parameters or for none (sqlx counts anonymous ones from the first).
pub fn params_in_order(c: &Conn, from: usize, n: usize) -> String {
    if has_row_locks(c) {
        placeholders(from, n)
    } else {
        vec!["?"; n].join(", ")
    }
}

/// Rows of `sql` for many ids, 500 at a time: `{ids}` in `sql` is where their placeholders go
/// (the statement's only parameters, in order: see [`params_in_order`]).
pub async fn fetch_by_ids<T>(c: &mut Conn, sql: &str, ids: &[i64]) -> Result<Vec<T>>
where
    T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
{
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(500) {
        let sql = sql.replace("{ids}", &params_in_order(c, 1, chunk.len()));
        let args: Vec<Arg> = chunk.iter().map(|i| Arg::Int(*i)).collect();
        for r in bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *c)
            .await?
            .iter()
        {
            out.push(T::from_row(r)?);
        }
    }
    Ok(out)
}

pub fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    args: &'q [Arg],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for a in args {
        q = match a {
            Arg::Int(i) => q.bind(*i),
            Arg::Text(s) => q.bind(s.as_str()),
            Arg::NullInt => q.bind(None::<i64>),
            Arg::NullText => q.bind(None::<String>),
        };
    }
    q
}

/// Paging and ordering of a listing, already validated at the edge.
#[derive(Debug, Clone)]
pub struct Page {
    pub page: i64,
    pub rows: i64,
    /// A column name from the resource's allow-list.
    pub order_by: &'static str,
    pub descending: bool,
    pub count: bool,
    /// Keyset paging: only ids above this (ordering by id ascending). Deep pages cost the
    /// same as the first, where OFFSET would walk every row before them.
    pub after_id: Option<i64>,
}

impl Page {
    pub fn sql(&self, w: &Where) -> String {
        let n = w.next_placeholder();
        format!(
            " ORDER BY {} {}, id {} LIMIT ${} OFFSET ${}",
            self.order_by,
            if self.descending { "DESC" } else { "ASC" },
            if self.descending { "DESC" } else { "ASC" },
            n,
            n + 1
        )
    }
    pub fn limit_args(&self) -> [Arg; 2] {
        [Arg::Int(self.rows), Arg::Int((self.page - 1) * self.rows)]
    }
}

/// Runs `SELECT <cols> FROM <from> <where> <order/limit>` and the matching count.
pub async fn list_rows(
    c: &mut Conn,
    cols: &str,
    from: &str,
    w: &Where,
    page: &Page,
) -> Result<(Vec<sqlx::any::AnyRow>, Option<i64>)> {
    let keyset;
    let paged = match page.after_id {
        Some(a) => {
            let mut k = w.clone();
            k.push("id > ?", Arg::Int(a));
            keyset = k;
            &keyset
        }
        None => w,
    };
    let sql = format!(
        "SELECT {cols} FROM {from}{}{}",
        paged.sql(),
        page.sql(paged)
    );
    let mut args: Vec<Arg> = paged.args().to_vec();
    args.extend(page.limit_args());
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(&mut *c)
        .await?;
    let total = if page.count {
        let sql = format!("SELECT COUNT(*) FROM {from}{}", w.sql());
        let row = bind_all(sqlx::query(&sql), w.args())
            .fetch_one(&mut *c)
            .await?;
        Some(sqlx::Row::try_get::<i64, _>(&row, 0)?)
    } else {
        None
    };
    Ok((rows, total))
}

pub fn not_found_if_none<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| Error::not_found(what))
}

/// A 0/1 integer column seen as a JSON boolean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Flag(pub bool);

impl From<i64> for Flag {
    fn from(v: i64) -> Self {
        Flag(v != 0)
    }
}

impl Flag {
    pub fn int(b: bool) -> i64 {
        b as i64
    }
}

pub trait Record: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin {}
impl<T> Record for T where T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin {}

/// Listing with the rows mapped to records.
pub async fn list_as<T: Record>(
    c: &mut Conn,
    cols: &str,
    from: &str,
    w: &Where,
    page: &Page,
) -> Result<(Vec<T>, Option<i64>)> {
    let (rows, total) = list_rows(c, cols, from, w, page).await?;
    let items = rows
        .iter()
        .map(T::from_row)
        .collect::<std::result::Result<Vec<T>, _>>()?;
    Ok((items, total))
}

/// Every row of `from` (a table or a view), in id order: the small tables the SIP servers'
/// routing and PBX rows are computed from whole.
pub async fn all_of<T: Record>(c: &mut Conn, cols: &str, from: &str) -> Result<Vec<T>> {
    let rows = sqlx::query(&format!("SELECT {cols} FROM {from} ORDER BY id"))
        .fetch_all(&mut *c)
        .await?;
    Ok(rows
        .iter()
        .map(T::from_row)
        .collect::<std::result::Result<_, _>>()?)
}

/// One record by id; `lock` adds a row lock where the database has them.
pub async fn get_as<T: Record>(
    c: &mut Conn,
    cols: &str,
    table: &str,
    id: i64,
    lock: bool,
) -> Result<Option<T>> {
    let sql = format!(
        "SELECT {cols} FROM {table} WHERE id = $1{}",
        if lock { for_update(c) } else { "" }
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(&mut *c).await?;
    Ok(row.as_ref().map(T::from_row).transpose()?)
}

/// One record by id from a view joining `table` to others (`from`), with the row of `table`
/// itself locked first where the database has row locks (a lock cannot name a joined view's
/// rows in every dialect).
pub async fn get_from_view<T: Record>(
    c: &mut Conn,
    table: &str,
    cols: &str,
    from: &str,
    id: i64,
    lock: bool,
) -> Result<Option<T>> {
    if lock && has_row_locks(c) {
        sqlx::query(&format!("SELECT id FROM {table} WHERE id = $1 FOR UPDATE"))
            .bind(id)
            .fetch_optional(&mut *c)
            .await?;
    }
    let row = sqlx::query(&format!("SELECT {cols} FROM {from} WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.as_ref().map(T::from_row).transpose()?)
}

/// Whether any row of `table` matches `cond` (with `$1` = `id`): for "still in use" checks.
pub async fn exists(c: &mut Conn, table: &str, cond: &str, id: i64) -> Result<bool> {
    let sql = format!("SELECT 1 FROM {table} WHERE {cond} LIMIT 1");
    Ok(sqlx::query(&sql)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?
        .is_some())
}

/// Whether `table` holds a row other than `except` named `name` within `scope_col = scope`
/// (names unique per reseller, per set…).
pub async fn name_taken(
    c: &mut Conn,
    table: &str,
    scope_col: &str,
    scope: i64,
    name: &str,
    except: Option<i64>,
) -> Result<bool> {
    let sql = format!("SELECT id FROM {table} WHERE {scope_col} = $1 AND name = $2");
    let other: Option<i64> = sqlx::query_scalar(&sql)
        .bind(scope)
        .bind(name.to_string())
        .fetch_optional(&mut *c)
        .await?;
    Ok(other.is_some_and(|o| Some(o) != except))
}

pub async fn delete_row(c: &mut Conn, table: &str, id: i64) -> Result<()> {
    sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Inserts a row (`id` None) or updates row `id` of `table` with these columns; stamps the
/// create/modify timestamps. Returns the id.
pub async fn save_row(
    c: &mut Conn,
    table: &str,
    id: Option<i64>,
    cols: Vec<(&str, Arg)>,
) -> Result<i64> {
    let ts = now();
    let mut args: Vec<Arg> = cols.iter().map(|(_, a)| a.clone()).collect();
    let sql = match id {
        None => {
            args.push(Arg::Text(ts));
            let names: Vec<&str> = cols.iter().map(|(n, _)| *n).collect();
            format!(
                "INSERT INTO {table} ({}, create_timestamp, modify_timestamp) VALUES ({}, ${n}, ${n}) RETURNING id",
                names.join(", "),
                placeholders(1, cols.len()),
                n = cols.len() + 1
            )
        }
        Some(id) => {
            args.push(Arg::Text(ts));
            args.push(Arg::Int(id));
            let sets: Vec<String> = cols
                .iter()
                .enumerate()
                .map(|(i, (n, _))| format!("{n} = ${}", i + 1))
                .collect();
            format!(
                "UPDATE {table} SET {}, modify_timestamp = ${} WHERE id = ${} RETURNING id",
                sets.join(", "),
                cols.len() + 1,
                cols.len() + 2
            )
        }
    };
    insert_id(bind_all(sqlx::query(&sql), &args), c).await
}

pub async fn insert_id<'q>(
    q: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    c: &mut Conn,
) -> Result<i64> {
    let row = q.fetch_one(&mut *c).await?;
    Ok(sqlx::Row::try_get(&row, 0)?)
}
