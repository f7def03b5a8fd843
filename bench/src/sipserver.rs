//! `voxprov-bench sipserver`: subscriber creations per second with one Kamailio target
//! database (SQLite or MariaDB), beside the same load with no target and beside `kamctl add`
//! on the same kind of target database, in one run.
//!
//! Phases, each on fresh databases:
//! 1. **api, no target**: `POST /api/subscribers/` at `--concurrency`, no sipserver.
//! 2. **api, kamailio target**: the same with one sipserver (driver kamailio), created with the
//!    shipped `deploy/kamailio/create-db.sh`. Every 201 is answered only after the row is in
//!    Kamailio's `subscriber` table (the server's bounded wait), so this is end-to-end
//!    provisioning throughput; the bench checks the rows are all there at the end.
//! 3. **api, kamailio target, one at a time**: phase 2 at concurrency 1, like for like with
//!    kamctl, which operators run one subscriber at a time.
//! 4. **kamctl add**: Kamailio's own tool, one process per subscriber, sequential, into a
//!    fresh target database of the same kind.
//!
//! No Kamailio process runs: both voxprov and kamctl write its database, which is what is
//! compared. Ratios are printed; nothing is asserted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use serde_json::json;

use crate::{
    find_binary, post_created, run_load, unix_nanos, Outcome, Server, ADMIN_PASSWORD, ADMIN_USER,
};

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Sqlite,
    Mysql,
}

#[derive(Parser)]
pub struct SipServerArgs {
    #[arg(long, default_value = "target/release/voxprov")]
    voxprov: PathBuf,
    /// The Kamailio database engine.
    #[arg(long, value_enum, default_value_t = Target::Sqlite)]
    target: Target,
    /// Measured API creates per phase (after 100 uncounted warm-up creates).
    #[arg(long, default_value_t = 2000)]
    count: usize,
    /// API creates in the one-at-a-time phase, and kamctl adds.
    #[arg(long, default_value_t = 200)]
    sequential_count: usize,
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Subscribers (each with a primary number: two rows on the server) already provisioned
    /// when a new server is added, for the full-load phase; 0 skips it.
    #[arg(long, default_value_t = 50_000)]
    full_load: usize,
    /// MariaDB host (root without a password) for --target mysql.
    #[arg(long, default_value = "127.0.0.1")]
    mysql_host: String,
}

pub const DOMAIN: &str = "kam.bench.example.com";

struct Dbs {
    mysql_host: String,
    mysql: Vec<String>,
    dir: PathBuf,
}

impl Dbs {
    fn create(&mut self, target: Target) -> Result<(String, String)> {
        let n = self.mysql.len() + self.dir.read_dir()?.count();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/kamailio/create-db.sh");
        match target {
            Target::Sqlite => {
                let path = self.dir.join(format!("kam{n}.sqlite"));
                run(std::process::Command::new("bash")
                    .arg(&script)
                    .args(["--force", "sqlite"])
                    .arg(&path))?;
                let p = path.display().to_string();
                Ok((format!("sqlite:///{p}"), p))
            }
            Target::Mysql => {
                let name = format!("vxbench_kam_{}_{n}", std::process::id());
                run(std::process::Command::new("bash").arg(&script).args([
                    "--force",
                    "mysql",
                    &name,
                    "-h",
                    &self.mysql_host,
                    "-uroot",
                ]))?;
                self.mysql.push(name.clone());
                Ok((
                    format!("mysql://root@{}:3306/{name}", self.mysql_host),
                    name,
                ))
            }
        }
    }
    fn count(&self, target: Target, db: &str) -> Result<i64> {
        self.count_rows(target, db, "subscriber")
    }
    fn count_rows(&self, target: Target, db: &str, table: &str) -> Result<i64> {
        let out = match target {
            Target::Sqlite => std::process::Command::new("sqlite3")
                .arg(db)
                .arg(format!("SELECT COUNT(*) FROM {table}"))
                .output()?,
            Target::Mysql => std::process::Command::new("mysql")
                .args(["-h", &self.mysql_host, "-uroot", "-N", "-B", db, "-e"])
                .arg(format!("SELECT COUNT(*) FROM {table}"))
                .output()?,
        };
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
    }
}

impl Drop for Dbs {
    fn drop(&mut self) {
        for db in &self.mysql {
            let _ = std::process::Command::new("mysql")
                .args(["-h", &self.mysql_host, "-uroot", "-e"])
                .arg(format!(
                    "DROP DATABASE IF EXISTS {db}; DROP USER IF EXISTS 'vxbench'@'%'"
                ))
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run(cmd: &mut std::process::Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub async fn setup(client: &reqwest::Client, base: &str) -> Result<i64> {
    post_created(
        client,
        base,
        "domains",
        json!({"domain": DOMAIN, "reseller_id": 1}),
    )
    .await?;
    let bp = post_created(
        client,
        base,
        "billingprofiles",
        json!({"handle": "b", "name": "B", "reseller_id": 1}),
    )
    .await?;
    let contact = post_created(
        client,
        base,
        "customercontacts",
        json!({"reseller_id": 1, "email": "b@example.com"}),
    )
    .await?;
    post_created(
        client,
        base,
        "customers",
        json!({"contact_id": contact, "billing_profile_id": bp, "type": "sipaccount", "status": "active"}),
    )
    .await
}

async fn api_load(
    base: &str,
    customer: i64,
    prefix: &'static str,
    count: usize,
    concurrency: usize,
) -> Outcome {
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("{base}/api/subscribers/");
    let behind = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let b2 = behind.clone();
    let out = run_load(prefix, count, concurrency, move |i: usize| {
        let (client, url, behind) = (client.clone(), url.clone(), b2.clone());
        async move {
            let body = json!({"customer_id": customer, "domain": DOMAIN, "username": format!("{prefix}{i}"),
                              "password": format!("pw{i}secret"), "primary_number": {"cc": "49", "ac": "40", "sn": format!("{}{i:07}", prefix.len())}});
            let r = client.post(&url).basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD)).json(&body).send().await.map_err(|e| e.to_string())?;
            if r.headers().contains_key("voxprov-sync-behind") {
                behind.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let s = r.status();
            let _ = r.bytes().await;
            if s.as_u16() == 201 { Ok(()) } else { Err(format!("{s}")) }
        }
    })
    .await;
    let n = behind.load(std::sync::atomic::Ordering::Relaxed);
    if n > 0 {
        eprintln!("    {n} responses said a target was behind");
    }
    out
}

/// Adds a Kamailio server and waits until it is loaded (its status `ok`), at most `limit`.
async fn add_target(
    client: &reqwest::Client,
    base: &str,
    name: &str,
    url: &str,
    limit: Duration,
) -> Result<()> {
    let id = post_created(
        client,
        base,
        "sipservers",
        json!({"name": name, "driver": "kamailio", "db_url": url}),
    )
    .await?;
    let start = Instant::now();
    loop {
        let v: serde_json::Value = client
            .get(format!("{base}/api/sipservers/{id}"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await?
            .json()
            .await?;
        if v["status"]["state"] == "ok" {
            return Ok(());
        }
        if start.elapsed() > limit {
            bail!("the server {name} did not load: {}", v["status"]);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One server run: optional target, warm-up, measured load(s). Returns the outcomes and the
/// subscriber rows found on the target.
async fn server_phase(
    voxprov: &Path,
    dir: &Path,
    target: Option<&str>,
    loads: &[(&'static str, usize, usize)],
) -> Result<Vec<Outcome>> {
    let data = dir.join(format!("data-{}", unix_nanos()));
    std::fs::create_dir_all(&data)?;
    let mut server = Server::start(voxprov, &data, None).await?;
    let client = reqwest::Client::new();
    let customer = setup(&client, &server.base).await?;
    if let Some(url) = target {
        add_target(&client, &server.base, "kam", url, Duration::from_secs(30)).await?;
    }
    run_load_quiet(&server.base, customer).await;
    let mut out = Vec::new();
    for (prefix, count, conc) in loads {
        eprintln!(
            "==> {prefix}: {count} creates at concurrency {conc}{}",
            if target.is_some() {
                ", with a kamailio target"
            } else {
                ""
            }
        );
        out.push(api_load(&server.base, customer, prefix, *count, *conc).await);
    }
    server.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    Ok(out)
}

async fn run_load_quiet(base: &str, customer: i64) {
    api_load(base, customer, "warm", crate::WARMUP, 4).await;
}

fn kamctl(target: Target, dbs: &Dbs, db: &str, home: &Path, count: usize) -> Result<Outcome> {
    std::fs::create_dir_all(home)?;
    let rc = match target {
        Target::Sqlite => {
            format!("DBENGINE=SQLITE\nDB_PATH={db}\nSTORE_PLAINTEXT_PW=0\nVERIFY_ACL=0\n")
        }
        Target::Mysql => {
            // kamctl always passes -p: it needs an account with a password.
            run(std::process::Command::new("mysql").args(["-h", &dbs.mysql_host, "-uroot", "-e"]).arg(format!(
                "CREATE USER IF NOT EXISTS 'vxbench'@'%' IDENTIFIED BY 'vxbenchpw'; GRANT ALL ON {db}.* TO 'vxbench'@'%';"
            )))?;
            format!(
                "DBENGINE=MYSQL\nDBHOST={}\nDBNAME={db}\nDBRWUSER=vxbench\nDBRWPW=vxbenchpw\nDBROUSER=vxbench\nDBROPW=vxbenchpw\nSTORE_PLAINTEXT_PW=0\nVERIFY_ACL=0\n",
                dbs.mysql_host
            )
        }
    };
    std::fs::write(home.join(".kamctlrc"), rc)?;
    eprintln!("==> kamctl add: {count} subscribers, one after another");
    let mut latencies = Vec::with_capacity(count);
    let mut errors = 0;
    let start = Instant::now();
    for i in 0..count {
        let t = Instant::now();
        let out = std::process::Command::new("kamctl")
            .env("HOME", home)
            .args(["add", &format!("k{i}@{DOMAIN}"), &format!("pw{i}secret")])
            .stdin(std::process::Stdio::null())
            .output()
            .context("kamctl (apt-get install kamailio)")?;
        if out.status.success() {
            latencies.push(t.elapsed());
        } else {
            errors += 1;
            if errors <= 3 {
                eprintln!(
                    "    kamctl failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
    Ok(Outcome::new(start.elapsed(), latencies, errors))
}

pub async fn sipserver(args: SipServerArgs) -> Result<()> {
    let voxprov = find_binary(&args.voxprov)?;
    let dir = std::env::temp_dir().join(format!(
        "vxbench-kam-{}-{}",
        std::process::id(),
        unix_nanos()
    ));
    std::fs::create_dir_all(&dir)?;
    let mut dbs = Dbs {
        mysql_host: args.mysql_host.clone(),
        mysql: Vec::new(),
        dir: dir.clone(),
    };
    let dbdir = dir.join("db");
    std::fs::create_dir_all(&dbdir)?;
    dbs.dir = dbdir.clone();

    let none = server_phase(
        &voxprov,
        &dir,
        None,
        &[("nt", args.count, args.concurrency)],
    )
    .await?
    .remove(0);
    let (url, db) = dbs.create(args.target)?;
    let mut with = server_phase(
        &voxprov,
        &dir,
        Some(&url),
        &[
            ("wt", args.count, args.concurrency),
            ("seq", args.sequential_count, 1),
        ],
    )
    .await?;
    let (with, seq) = (with.remove(0), with.remove(0));
    let rows = dbs.count(args.target, &db)?;
    let expected = (crate::WARMUP + args.count + args.sequential_count) as i64;
    let (_, kdb) = dbs.create(args.target)?;
    let k = kamctl(
        args.target,
        &dbs,
        &kdb,
        &dir.join("home"),
        args.sequential_count,
    )?;
    let krows = dbs.count(args.target, &kdb)?;
    let full = match args.full_load {
        0 => None,
        n => Some(full_load(&voxprov, &dir, &mut dbs, args.target, n).await?),
    };
    drop(dbs);

    let t = match args.target {
        Target::Sqlite => "sqlite",
        Target::Mysql => "mariadb",
    };
    println!(
        "sipserver kamailio-{t} count={} concurrency={} sequential={}",
        args.count, args.concurrency, args.sequential_count
    );
    println!("  api, no target           : {}", none.summary());
    println!("  api, kamailio target     : {}", with.summary());
    println!("  api, target, 1 at a time : {}", seq.summary());
    println!("  kamctl add, 1 at a time  : {}", k.summary());
    println!(
        "  rows on the target: {rows} of {expected} created through the API; kamctl: {krows} of {}",
        args.sequential_count
    );
    println!(
        "  ratio target/no-target (concurrency {}): {:.1}%",
        args.concurrency,
        100.0 * with.ops_per_sec() / none.ops_per_sec()
    );
    println!(
        "  ratio api/kamctl, both one at a time: {:.1}x",
        seq.ops_per_sec() / k.ops_per_sec()
    );
    println!(
        "  ratio api (concurrency {})/kamctl: {:.1}x",
        args.concurrency,
        with.ops_per_sec() / k.ops_per_sec()
    );
    if let Some(f) = &full {
        let rows = 2 * f.subscribers;
        println!(
            "  full load of {} subscribers ({rows} rows) into a new server: {:.2} s, {:.0} rows/s",
            f.subscribers,
            f.load.as_secs_f64(),
            rows as f64 / f.load.as_secs_f64()
        );
        println!(
            "  raw: the same number of rows inserted one statement each, one transaction, by the {} client: {:.2} s, {:.0} rows/s",
            if args.target == Target::Sqlite { "sqlite3" } else { "mysql" },
            f.raw.as_secs_f64(),
            rows as f64 / f.raw.as_secs_f64()
        );
        println!(
            "  ratio full-load rate/raw rate: {:.1}%",
            100.0 * f.raw.as_secs_f64() / f.load.as_secs_f64()
        );
    }
    if rows != expected {
        bail!("the target holds {rows} subscribers, expected {expected}");
    }
    Ok(())
}

struct FullLoad {
    subscribers: usize,
    load: Duration,
    raw: Duration,
}

/// A new server added to a voxprov that already holds `n` subscribers (each with a primary
/// number): the time from the POST until its status is ok with every row there. The reference
/// is the same number of rows written by the database's own client in one transaction, one
/// INSERT each (what a hand-written load script does).
async fn full_load(
    voxprov: &Path,
    dir: &Path,
    dbs: &mut Dbs,
    target: Target,
    n: usize,
) -> Result<FullLoad> {
    let data = dir.join(format!("data-{}", unix_nanos()));
    std::fs::create_dir_all(&data)?;
    let mut server = Server::start(voxprov, &data, None).await?;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    let customer = setup(&client, &base).await?;
    eprintln!("==> full load: {n} subscribers created in bulk, then a new server added");
    for chunk in 0..n.div_ceil(500) {
        let rows: Vec<serde_json::Value> = (chunk * 500..((chunk + 1) * 500).min(n))
            .map(|i| json!({"customer_id": customer, "domain": DOMAIN, "username": format!("f{i}"),
                            "password": format!("pw{i}secret"), "primary_number": {"cc": "49", "ac": "30", "sn": format!("{i:08}")}}))
            .collect();
        crate::post_bulk(&client, &base, &rows).await?;
    }
    let (url, db) = dbs.create(target)?;
    let start = Instant::now();
    add_target(&client, &base, "new", &url, Duration::from_secs(600)).await?;
    let load = start.elapsed();
    server.stop().await;
    let _ = std::fs::remove_dir_all(&data);
    let loaded = (
        dbs.count(target, &db)?,
        dbs.count_rows(target, &db, "dbaliases")?,
    );
    if loaded != (n as i64, n as i64) {
        bail!(
            "the new server holds {} subscribers and {} aliases, expected {n} of each",
            loaded.0,
            loaded.1
        );
    }

    // The reference: the same rows by the database's own client.
    let (_, raw_db) = dbs.create(target)?;
    let mut sql = String::with_capacity(n * 300);
    sql.push_str("BEGIN;\n");
    for i in 0..n {
        sql.push_str(&format!(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('r{i}', '{DOMAIN}', 'pw{i}secret', '{i:032x}', '{:032x}');\n\
             INSERT INTO dbaliases (alias_username, alias_domain, username, domain) VALUES ('4930{i:08}', '{DOMAIN}', 'r{i}', '{DOMAIN}');\n",
            i + 1
        ));
    }
    sql.push_str("COMMIT;\n");
    let script = dir.join("raw.sql");
    std::fs::write(&script, sql)?;
    let mut cmd = match target {
        Target::Sqlite => {
            let mut c = std::process::Command::new("sqlite3");
            c.arg(&raw_db);
            c
        }
        Target::Mysql => {
            let mut c = std::process::Command::new("mysql");
            c.args(["-h", &dbs.mysql_host, "-uroot", &raw_db]);
            c
        }
    };
    cmd.stdin(std::fs::File::open(&script)?);
    let start = Instant::now();
    run(&mut cmd)?;
    let raw = start.elapsed();
    let _ = std::fs::remove_file(&script);
    if dbs.count(target, &raw_db)? != n as i64
        || dbs.count_rows(target, &raw_db, "dbaliases")? != n as i64
    {
        bail!("the raw load left a different number of rows");
    }
    Ok(FullLoad {
        subscribers: n,
        load,
        raw,
    })
}
