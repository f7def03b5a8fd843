//! Load generator for voxprov.
//!
//! `voxprov-bench subscribers` measures how fast a real `voxprov serve` process creates
//! subscribers through the Sipwise-compatible REST API (`POST /api/subscribers/`, each with a
//! primary number), at a given concurrency, against SQLite or PostgreSQL.
//!
//! Absolute numbers depend on the machine (CPU, disk, fsync cost, tmpfs or not), so in the same
//! run it also measures a *raw floor*: the same number of subscriber + number rows written
//! straight into a fresh database of the same kind, shaped like the server's tables, with the
//! same durability settings, one transaction per subscriber, at the same concurrency. The ratio
//! `api/raw` is what to compare across machines and commits: machine speed cancels out, and
//! what is left is the cost voxprov adds on top of the database (HTTP, auth, validation, password
//! encryption, change log, serialization).
//!
//! The bench makes no timed assertions; it prints a result block and exits non-zero only when
//! it could not run (server did not start, setup failed, or every request failed).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnection, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Connection;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;

const ADMIN_USER: &str = "administrator";
const ADMIN_PASSWORD: &str = "benchpass";
const DOMAIN: &str = "bench.example.com";
const WARMUP: usize = 100;
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How many failing request bodies are printed per phase; the rest are only counted.
const MAX_PRINTED_ERRORS: usize = 5;

#[derive(Parser)]
#[command(about = "Load generator for voxprov")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create subscribers through the API and compare with raw database inserts.
    Subscribers(SubscribersArgs),
    /// Create subscribers with a Kamailio target database, without one, and with kamctl.
    Sipserver(sipserver::SipServerArgs),
    /// Import a million subscribers from CSV; then lookup and listing latency at that size.
    Import(bulk::ImportArgs),
    /// After-hook delivery: events/s to a local receiver, commit → delivery latency, and API
    /// write latency while a receiver hangs.
    Hooks(hooks::HooksArgs),
    /// Phone provisioning boot storm: configurations/s and p99 beside a hello-world endpoint.
    Prov(prov::ProvArgs),
    /// One tenant's pathological hook template against another tenant's read latency.
    Tenants(tenants::TenantsArgs),
}

mod bulk;
mod hooks;
mod prov;
mod sipserver;
mod tenants;

#[derive(Parser)]
struct SubscribersArgs {
    /// Path to the voxprov binary (build it with `cargo build --release --workspace`).
    #[arg(long, default_value = "target/release/voxprov")]
    voxprov: PathBuf,
    #[arg(long, value_enum, default_value_t = DbKind::Sqlite)]
    db: DbKind,
    /// Admin connection used to create (and drop) fresh databases for the postgres runs.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Measured creates per phase (after 100 uncounted warm-up creates).
    #[arg(long, default_value_t = 5000)]
    count: usize,
    /// Concurrent requests (API) or transactions (raw) in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Every Nth API create also sets a web password (an argon2 hash, tens of ms of CPU);
    /// 0: none. The raw phase writes no hash either way.
    #[arg(long, default_value_t = 0)]
    webpassword_every: usize,
    /// PostgreSQL: also measure N nodes on one database (the clients' requests spread over
    /// them in turn), beside the one-node figure. 1: one node only.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Where the server's data directory and the raw SQLite file go. Default: a fresh
    /// temporary directory, removed afterwards. A given directory is kept for inspection.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum DbKind {
    Sqlite,
    Postgres,
}

impl DbKind {
    fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
        }
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Subscribers(args) => subscribers(args).await,
        Cmd::Sipserver(args) => sipserver::sipserver(args).await,
        Cmd::Import(args) => bulk::import(args).await,
        Cmd::Hooks(args) => hooks::hooks(args).await,
        Cmd::Prov(args) => prov::prov(args).await,
        Cmd::Tenants(args) => tenants::tenants(args).await,
    }
}

// ---------------------------------------------------------------------------------------------
// The `subscribers` scenario
// ---------------------------------------------------------------------------------------------

/// Everything the run creates, so it can be removed whether the run succeeded or not.
struct Resources {
    run_dir: PathBuf,
    remove_run_dir: bool,
    postgres_admin: Option<String>,
    databases: Vec<String>,
}

async fn subscribers(args: SubscribersArgs) -> Result<()> {
    if args.count == 0 || args.concurrency == 0 {
        bail!("--count and --concurrency must be at least 1");
    }
    let voxprov = find_binary(&args.voxprov)?;
    let (base, remove_run_dir) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (std::env::temp_dir(), true),
    };
    let run_dir = base.join(format!("vxbench-{}-{}", std::process::id(), unix_nanos()));
    std::fs::create_dir_all(&run_dir)
        .with_context(|| format!("creating work dir {}", run_dir.display()))?;
    let mut res = Resources {
        run_dir,
        remove_run_dir,
        postgres_admin: (args.db == DbKind::Postgres).then(|| args.postgres_url.clone()),
        databases: Vec::new(),
    };

    if args.nodes > 1 && args.db != DbKind::Postgres {
        bail!("--nodes: several nodes share a PostgreSQL database (--db postgres)");
    }
    let outcome = run_subscribers(&args, &voxprov, &mut res).await;
    cleanup(&res).await;
    let (api, cluster, raw) = outcome?;

    println!(
        "subscribers {} count={} concurrency={} webpassword_every={}",
        args.db.name(),
        args.count,
        args.concurrency,
        args.webpassword_every
    );
    println!("  api : {}", api.summary());
    if let Some(c) = &cluster {
        println!("  api {} nodes: {}", args.nodes, c.summary());
    }
    println!("  raw : {}", raw.summary());
    if raw.ops_per_sec() > 0.0 {
        println!(
            "  ratio api/raw: {:.1}%",
            100.0 * api.ops_per_sec() / raw.ops_per_sec()
        );
        if let Some(c) = &cluster {
            println!(
                "  ratio api {} nodes/raw: {:.1}%  ({} nodes / 1 node: {:.2})",
                args.nodes,
                100.0 * c.ops_per_sec() / raw.ops_per_sec(),
                args.nodes,
                c.ops_per_sec() / api.ops_per_sec().max(f64::MIN_POSITIVE)
            );
        }
    }
    if api.latencies.is_empty() {
        bail!("every API request failed");
    }
    Ok(())
}

async fn run_subscribers(
    args: &SubscribersArgs,
    voxprov: &Path,
    res: &mut Resources,
) -> Result<(Outcome, Option<Outcome>, Outcome)> {
    // API phase. The server is stopped before the raw phase so that its background work
    // (e.g. draining the change log) does not steal CPU from the reference measurement.
    let api = api_on_nodes(args, voxprov, res, 1).await?;
    let cluster = if args.nodes > 1 {
        Some(api_on_nodes(args, voxprov, res, args.nodes).await?)
    } else {
        None
    };
    let raw = match args.db {
        DbKind::Sqlite => raw_sqlite(&res.run_dir.join("raw.db"), args).await?,
        DbKind::Postgres => {
            let url = create_postgres_db(&args.postgres_url, res).await?;
            raw_postgres(&url, args).await?
        }
    };
    Ok((api, cluster, raw))
}

/// The API phase on `n` nodes sharing a fresh database (and the first node's secret key).
async fn api_on_nodes(
    args: &SubscribersArgs,
    voxprov: &Path,
    res: &mut Resources,
    n: usize,
) -> Result<Outcome> {
    let database_url = match args.db {
        DbKind::Sqlite => None,
        DbKind::Postgres => Some(create_postgres_db(&args.postgres_url, res).await?),
    };
    let mut servers = Vec::new();
    for i in 0..n {
        let data_dir = res.run_dir.join(format!("data-{n}-{i}"));
        std::fs::create_dir_all(&data_dir)?;
        if i > 0 {
            let key = res.run_dir.join(format!("data-{n}-0")).join("secret.key");
            std::fs::copy(&key, data_dir.join("secret.key")).context("sharing the secret key")?;
        }
        let server = Server::start(voxprov, &data_dir, database_url.as_deref()).await?;
        eprintln!("==> node {i} of {n} at {}", server.base);
        servers.push(server);
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let api = api_phase(&bases, args.count, args.concurrency, args.webpassword_every).await;
    for s in &mut servers {
        s.stop().await;
    }
    api
}

fn find_binary(path: &Path) -> Result<PathBuf> {
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    // `cargo run -p voxprov-bench` from another directory: try relative to the workspace.
    let in_workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path);
    if path.is_relative() && in_workspace.exists() {
        return Ok(in_workspace);
    }
    bail!(
        "voxprov binary not found at {} (build it with `cargo build --release --workspace` \
         or pass --voxprov)",
        path.display()
    )
}

async fn cleanup(res: &Resources) {
    if let Some(admin) = &res.postgres_admin {
        if !res.databases.is_empty() {
            match PgConnection::connect(admin).await {
                Ok(mut conn) => {
                    for db in &res.databases {
                        if let Err(e) = drop_postgres_db(&mut conn, db).await {
                            eprintln!("warning: could not drop database {db}: {e}");
                        }
                    }
                    let _ = conn.close().await;
                }
                Err(e) => eprintln!("warning: could not connect to drop databases: {e}"),
            }
        }
    }
    if res.remove_run_dir {
        if let Err(e) = std::fs::remove_dir_all(&res.run_dir) {
            eprintln!("warning: could not remove {}: {e}", res.run_dir.display());
        }
    } else {
        eprintln!("==> files kept in {}", res.run_dir.display());
    }
}

// ---------------------------------------------------------------------------------------------
// The server process
// ---------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(voxprov: &Path, data_dir: &Path, database_url: Option<&str>) -> Result<Server> {
        Self::start_with(voxprov, data_dir, database_url, &[]).await
    }

    /// Starts the server with extra environment (settings such as VOXPROV_HOOKS_*).
    async fn start_with(
        voxprov: &Path,
        data_dir: &Path,
        database_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> Result<Server> {
        let mut cmd = Command::new(voxprov);
        cmd.envs(env.iter().copied());
        cmd.arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(url) = database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd.env("VOXPROV_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {}", voxprov.display()))?;

        // Keep the last lines of output: they explain a server that fails to start.
        let tail = Arc::new(Mutex::new(Vec::<String>::new()));
        let stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(drain(stderr, tail.clone()));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();

        let ready = tokio::time::timeout(READY_TIMEOUT, async {
            while let Some(line) = stdout.next_line().await? {
                if let Some(rest) = line.split("voxprov listening on ").nth(1) {
                    return Ok(Some(rest.trim().trim_end_matches('/').to_string()));
                }
                remember(&tail, line);
            }
            Ok::<_, std::io::Error>(None)
        })
        .await;
        let base = match ready {
            Ok(Ok(Some(base))) => base,
            other => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                let why = match other {
                    Err(_) => format!("no 'voxprov listening on' line within {READY_TIMEOUT:?}"),
                    Ok(Err(e)) => format!("reading its stdout: {e}"),
                    _ => "it exited before it was listening".to_string(),
                };
                let tail = tail.lock().unwrap().join("\n");
                bail!("voxprov did not start: {why}\n--- last output ---\n{tail}");
            }
        };
        // Keep draining: a full pipe would block the server's logging, and so the server.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        Ok(Server { child, base })
    }

    /// The server process's peak resident memory (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let pid = self.child.id()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    async fn stop(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

async fn drain(stream: impl AsyncRead + Unpin, tail: Arc<Mutex<Vec<String>>>) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        remember(&tail, line);
    }
}

fn remember(tail: &Mutex<Vec<String>>, line: String) {
    let mut tail = tail.lock().unwrap();
    if tail.len() >= 20 {
        tail.remove(0);
    }
    tail.push(line);
}

// ---------------------------------------------------------------------------------------------
// API phase
// ---------------------------------------------------------------------------------------------

/// Creates through `bases` in turn (one node, or several sharing a database).
async fn api_phase(
    bases: &[String],
    count: usize,
    concurrency: usize,
    webpassword_every: usize,
) -> Result<Outcome> {
    let base = bases[0].as_str();
    // One client for all tasks: keep-alive connections are pooled and reused, as a
    // provisioning integration would do.
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;

    let domain_id = post_created(
        &client,
        base,
        "domains",
        json!({"domain": DOMAIN, "reseller_id": 1}),
    )
    .await?;
    let billing_profile_id = post_created(
        &client,
        base,
        "billingprofiles",
        json!({"handle": "bench", "name": "Bench", "reseller_id": 1}),
    )
    .await?;
    let contact_id = post_created(
        &client,
        base,
        "customercontacts",
        json!({"reseller_id": 1, "email": "bench@example.com", "firstname": "B", "lastname": "B"}),
    )
    .await?;
    let customer_id = post_created(
        &client,
        base,
        "customers",
        json!({
            "contact_id": contact_id,
            "billing_profile_id": billing_profile_id,
            "type": "sipaccount",
            "status": "active",
        }),
    )
    .await?;
    eprintln!(
        "==> setup done (domain {domain_id}, billing profile {billing_profile_id}, \
         contact {contact_id}, customer {customer_id})"
    );

    // Warm-up uses its own usernames and area code so it never collides with measured rows.
    let op = |user_prefix: &'static str, ac: &'static str| {
        let client = client.clone();
        let urls: Vec<String> = bases
            .iter()
            .map(|b| format!("{b}/api/subscribers/"))
            .collect();
        move |i: usize| {
            let client = client.clone();
            let url = urls[i % urls.len()].clone();
            async move {
                let mut body = json!({
                    "customer_id": customer_id,
                    "domain": DOMAIN,
                    "username": format!("{user_prefix}{i}"),
                    "password": format!("pw{i}secret"),
                    "primary_number": {"cc": "49", "ac": ac, "sn": format!("{i:08}")},
                });
                if webpassword_every > 0 && i % webpassword_every == 0 {
                    body["webpassword"] = json!(format!("web{i}secret"));
                }
                let resp = client
                    .post(&url)
                    .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = resp.status();
                if status == StatusCode::CREATED {
                    // Read the (empty) body so the connection goes back to the pool.
                    let _ = resp.bytes().await;
                    Ok(())
                } else {
                    let text = resp.text().await.unwrap_or_default();
                    Err(format!("{status}: {text}"))
                }
            }
        }
    };

    eprintln!("==> api warm-up ({WARMUP} creates)");
    run_load("api warm-up", WARMUP, concurrency, op("warmup", "31")).await;
    eprintln!("==> api: {count} creates at concurrency {concurrency}");
    Ok(run_load("api", count, concurrency, op("u", "30")).await)
}

/// Creates `rows` in one bulk request (`POST /api/subscribers/` with an array).
async fn post_bulk(client: &reqwest::Client, base: &str, rows: &[Value]) -> Result<()> {
    let r = client
        .post(format!("{base}/api/subscribers/"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .json(rows)
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("bulk create: {} {}", r.status(), r.text().await?);
    }
    Ok(())
}

/// POSTs a JSON body to `/api/<collection>/`, expects 201 and returns the id from `Location`.
async fn post_created(
    client: &reqwest::Client,
    base: &str,
    collection: &str,
    body: Value,
) -> Result<i64> {
    let resp = client
        .post(format!("{base}/api/{collection}/"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST /api/{collection}/"))?;
    let status = resp.status();
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let text = resp.text().await.unwrap_or_default();
    if status != StatusCode::CREATED {
        bail!("POST /api/{collection}/ answered {status}, expected 201: {text}");
    }
    let location =
        location.ok_or_else(|| anyhow!("POST /api/{collection}/ answered 201 without Location"))?;
    location
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .and_then(|id| i64::from_str(id).ok())
        .ok_or_else(|| anyhow!("POST /api/{collection}/: no id in Location {location:?}"))
}

// ---------------------------------------------------------------------------------------------
// Raw floor
// ---------------------------------------------------------------------------------------------

/// Stand-in for an AES-GCM encrypted SIP password (nonce + ciphertext + tag, base64), so rows
/// are about as wide as the server's.
const PASSWORD_ENC: &str = "bm9uY2Vub25jZW5vbmNlY2lwaGVydGV4dGNpcGhlcnRleHR0YWd0YWc=";

fn fake_uuid(i: usize) -> String {
    format!("00000000-0000-4000-8000-{i:012x}")
}

fn timestamp() -> String {
    // Only the width matters here, not the calendar.
    format!("{:0>23}", unix_nanos() / 1_000_000)
}

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE subscribers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        uuid TEXT NOT NULL,
        customer_id INTEGER NOT NULL,
        reseller_id INTEGER NOT NULL,
        domain_id INTEGER NOT NULL,
        username TEXT NOT NULL,
        password_enc TEXT,
        webusername TEXT,
        webpassword_hash TEXT,
        status TEXT NOT NULL,
        lock_level INTEGER NOT NULL,
        external_id TEXT,
        display_name TEXT,
        email TEXT,
        create_timestamp TEXT NOT NULL,
        modify_timestamp TEXT NOT NULL
    )",
    "CREATE UNIQUE INDEX subscribers_username_domain ON subscribers (username, domain_id)",
    "CREATE TABLE numbers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        cc TEXT NOT NULL,
        ac TEXT NOT NULL,
        sn TEXT NOT NULL,
        subscriber_id INTEGER REFERENCES subscribers (id),
        reseller_id INTEGER NOT NULL,
        is_primary INTEGER NOT NULL
    )",
    "CREATE UNIQUE INDEX numbers_cc_ac_sn ON numbers (cc, ac, sn)",
];

const POSTGRES_SCHEMA: &[&str] = &[
    "CREATE TABLE subscribers (
        id BIGSERIAL PRIMARY KEY,
        uuid TEXT NOT NULL,
        customer_id BIGINT NOT NULL,
        reseller_id BIGINT NOT NULL,
        domain_id BIGINT NOT NULL,
        username TEXT NOT NULL,
        password_enc TEXT,
        webusername TEXT,
        webpassword_hash TEXT,
        status TEXT NOT NULL,
        lock_level INTEGER NOT NULL,
        external_id TEXT,
        display_name TEXT,
        email TEXT,
        create_timestamp TEXT NOT NULL,
        modify_timestamp TEXT NOT NULL
    )",
    "CREATE UNIQUE INDEX subscribers_username_domain ON subscribers (username, domain_id)",
    "CREATE TABLE numbers (
        id BIGSERIAL PRIMARY KEY,
        cc TEXT NOT NULL,
        ac TEXT NOT NULL,
        sn TEXT NOT NULL,
        subscriber_id BIGINT REFERENCES subscribers (id),
        reseller_id BIGINT NOT NULL,
        is_primary INTEGER NOT NULL
    )",
    "CREATE UNIQUE INDEX numbers_cc_ac_sn ON numbers (cc, ac, sn)",
];

async fn raw_sqlite(path: &Path, args: &SubscribersArgs) -> Result<Outcome> {
    // Exactly the server's settings: WAL + synchronous=FULL is durable against power loss.
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    // ONE connection: SQLite has a single writer, and the server also funnels its writes
    // through one writer connection. More connections would only queue on the database lock.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(600))
        .connect_with(options)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    for stmt in SQLITE_SCHEMA {
        sqlx::query(stmt).execute(&pool).await?;
    }

    let op = |user_prefix: &'static str, ac: &'static str| {
        let pool = pool.clone();
        move |i: usize| {
            let pool = pool.clone();
            async move {
                insert_sqlite(&pool, i, user_prefix, ac)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    };
    eprintln!("==> raw sqlite warm-up ({WARMUP} transactions)");
    run_load("raw warm-up", WARMUP, args.concurrency, op("warmup", "31")).await;
    eprintln!(
        "==> raw sqlite: {} transactions at concurrency {}",
        args.count, args.concurrency
    );
    let outcome = run_load("raw", args.count, args.concurrency, op("u", "30")).await;
    pool.close().await;
    Ok(outcome)
}

async fn insert_sqlite(
    pool: &SqlitePool,
    i: usize,
    user_prefix: &str,
    ac: &str,
) -> sqlx::Result<()> {
    let now = timestamp();
    let username = format!("{user_prefix}{i}");
    let mut tx = pool.begin().await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO subscribers (uuid, customer_id, reseller_id, domain_id, username,
             password_enc, webusername, webpassword_hash, status, lock_level, external_id,
             display_name, email, create_timestamp, modify_timestamp)
         VALUES (?, 1, 1, 1, ?, ?, NULL, NULL, 'active', 0, NULL, NULL, NULL, ?, ?)
         RETURNING id",
    )
    .bind(fake_uuid(i))
    .bind(&username)
    .bind(PASSWORD_ENC)
    .bind(&now)
    .bind(&now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO numbers (cc, ac, sn, subscriber_id, reseller_id, is_primary)
         VALUES ('49', ?, ?, ?, 1, 1)",
    )
    .bind(ac)
    .bind(format!("{i:08}"))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

async fn raw_postgres(url: &str, args: &SubscribersArgs) -> Result<Outcome> {
    // One connection per task, like a server with a pool at least that large. The database
    // keeps its default synchronous_commit (on): a commit is flushed to the WAL.
    let conns = u32::try_from(args.concurrency).unwrap_or(u32::MAX);
    let pool = PgPoolOptions::new()
        .max_connections(conns)
        .acquire_timeout(Duration::from_secs(600))
        .connect(url)
        .await
        .context("connecting to the raw postgres database")?;
    for stmt in POSTGRES_SCHEMA {
        sqlx::query(stmt).execute(&pool).await?;
    }

    let op = |user_prefix: &'static str, ac: &'static str| {
        let pool = pool.clone();
        move |i: usize| {
            let pool = pool.clone();
            async move {
                insert_postgres(&pool, i, user_prefix, ac)
                    .await
                    .map_err(|e| e.to_string())
            }
        }
    };
    eprintln!("==> raw postgres warm-up ({WARMUP} transactions)");
    run_load("raw warm-up", WARMUP, args.concurrency, op("warmup", "31")).await;
    eprintln!(
        "==> raw postgres: {} transactions at concurrency {}",
        args.count, args.concurrency
    );
    let outcome = run_load("raw", args.count, args.concurrency, op("u", "30")).await;
    pool.close().await;
    Ok(outcome)
}

async fn insert_postgres(pool: &PgPool, i: usize, user_prefix: &str, ac: &str) -> sqlx::Result<()> {
    let now = timestamp();
    let username = format!("{user_prefix}{i}");
    let mut tx = pool.begin().await?;
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO subscribers (uuid, customer_id, reseller_id, domain_id, username,
             password_enc, webusername, webpassword_hash, status, lock_level, external_id,
             display_name, email, create_timestamp, modify_timestamp)
         VALUES ($1, 1, 1, 1, $2, $3, NULL, NULL, 'active', 0, NULL, NULL, NULL, $4, $5)
         RETURNING id",
    )
    .bind(fake_uuid(i))
    .bind(&username)
    .bind(PASSWORD_ENC)
    .bind(&now)
    .bind(&now)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO numbers (cc, ac, sn, subscriber_id, reseller_id, is_primary)
         VALUES ('49', $1, $2, $3, 1, 1)",
    )
    .bind(ac)
    .bind(format!("{i:08}"))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

/// Creates `vxbench_<pid>_<n>` through the admin connection and returns its URL (the admin
/// URL with the database name replaced). Remembered in `res` so it is dropped at the end.
async fn create_postgres_db(admin_url: &str, res: &mut Resources) -> Result<String> {
    let name = format!("vxbench_{}_{}", std::process::id(), res.databases.len());
    let mut conn = PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    sqlx::query(&format!("CREATE DATABASE \"{name}\""))
        .execute(&mut conn)
        .await
        .with_context(|| format!("CREATE DATABASE {name}"))?;
    res.databases.push(name.clone());
    let _ = conn.close().await;

    let mut url = Url::parse(admin_url).context("parsing --postgres-url")?;
    url.set_path(&format!("/{name}"));
    Ok(url.to_string())
}

async fn drop_postgres_db(conn: &mut PgConnection, name: &str) -> sqlx::Result<()> {
    // WITH (FORCE) (PostgreSQL 13+) also ends connections a killed server may have left behind.
    let forced = sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut *conn)
        .await;
    if forced.is_err() {
        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\""))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Load runner and statistics
// ---------------------------------------------------------------------------------------------

struct Outcome {
    /// Latencies of the successful operations, sorted ascending.
    latencies: Vec<Duration>,
    errors: usize,
    elapsed: Duration,
}

impl Outcome {
    fn new(elapsed: Duration, mut latencies: Vec<Duration>, errors: usize) -> Outcome {
        latencies.sort_unstable();
        Outcome {
            latencies,
            errors,
            elapsed,
        }
    }

    /// Successful operations per second of wall-clock time.
    fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.latencies.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// Nearest-rank percentile, in milliseconds.
    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.latencies.len()) - 1;
        self.latencies[idx].as_secs_f64() * 1000.0
    }

    fn summary(&self) -> String {
        format!(
            "{:.1} ops/s  p50 {:.1} ms  p99 {:.1} ms  errors {}",
            self.ops_per_sec(),
            self.percentile_ms(50.0),
            self.percentile_ms(99.0),
            self.errors
        )
    }
}

/// Runs `op(0..count)` from `concurrency` tasks that pull the next index from a shared
/// counter, so a slow operation never leaves a worker idle while work remains.
async fn run_load<F, Fut>(label: &'static str, count: usize, concurrency: usize, op: F) -> Outcome
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    let op = Arc::new(op);
    let next = Arc::new(AtomicUsize::new(0));
    let printed = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..concurrency {
        let (op, next, printed) = (op.clone(), next.clone(), printed.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    break;
                }
                let t0 = Instant::now();
                match op(i).await {
                    Ok(()) => latencies.push(t0.elapsed()),
                    Err(msg) => {
                        errors += 1;
                        if printed.fetch_add(1, Ordering::Relaxed) < MAX_PRINTED_ERRORS {
                            eprintln!("  {label} error (#{i}): {msg}");
                        }
                    }
                }
            }
            (latencies, errors)
        });
    }
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((l, e)) => {
                latencies.extend(l);
                errors += e;
            }
            Err(e) => {
                eprintln!("  {label}: worker task failed: {e}");
                errors += 1;
            }
        }
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    Outcome {
        latencies,
        errors,
        elapsed,
    }
}

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}
