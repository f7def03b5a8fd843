//! `voxprov-bench import`: a CSV of N subscribers (each with a primary and an alias number)
//! imported with `voxprov import` on SQLite, against the batched raw-insert floor measured in
//! the same run (the same rows, multi-row INSERTs, same durability settings); then, on the
//! imported database, lookup and listing latency through the running server.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{find_binary, post_created, Server, ADMIN_PASSWORD, ADMIN_USER, DOMAIN, SQLITE_SCHEMA};

#[derive(Parser)]
pub struct ImportArgs {
    #[arg(long, default_value = "target/release/voxprov")]
    voxprov: PathBuf,
    /// Subscribers in the CSV.
    #[arg(long, default_value_t = 1_000_000)]
    count: usize,
    /// Requests per latency measurement.
    #[arg(long, default_value_t = 2000)]
    lookups: usize,
    /// Kept for inspection when given; default: a temporary directory, removed afterwards.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

pub async fn import(args: ImportArgs) -> Result<()> {
    let voxprov = find_binary(&args.voxprov)?;
    let (dir, remove) = match &args.work_dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("voxprov-bench-import-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)?;
    let result = run(&voxprov, &dir, &args).await;
    if remove {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result
}

async fn run(voxprov: &Path, dir: &Path, args: &ImportArgs) -> Result<()> {
    let n = args.count;
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;

    // The customer the rows belong to, made through the API.
    let mut server = Server::start(voxprov, &data, None).await?;
    let client = reqwest::Client::new();
    let base = server.base.clone();
    post_created(
        &client,
        &base,
        "domains",
        json!({ "domain": DOMAIN, "reseller_id": 1 }),
    )
    .await?;
    let bp = post_created(
        &client,
        &base,
        "billingprofiles",
        json!({ "handle": "bench", "name": "Bench", "reseller_id": 1 }),
    )
    .await?;
    let contact = post_created(
        &client,
        &base,
        "customercontacts",
        json!({ "reseller_id": 1, "email": "b@example.com" }),
    )
    .await?;
    let customer = post_created(
        &client,
        &base,
        "customers",
        json!({ "contact_id": contact, "billing_profile_id": bp, "type": "sipaccount", "status": "active" }),
    )
    .await?;
    server.stop().await;

    let csv = dir.join("subscribers.csv");
    eprintln!("==> writing {n} rows to {}", csv.display());
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv)?);
        writeln!(
            w,
            "customer_id,domain,username,password,cc,ac,sn,alias_numbers"
        )?;
        for i in 0..n {
            writeln!(
                w,
                "{customer},{DOMAIN},imp{i},pw-{i:08},43,1,{},43-2-{}",
                10_000_000 + i,
                10_000_000 + i
            )?;
        }
    }

    eprintln!(
        "==> raw floor: {n} subscribers + {} numbers, batched multi-row INSERTs",
        2 * n
    );
    let raw = raw_floor(&dir.join("raw.sqlite"), n).await?;
    let raw_rate = n as f64 / raw.as_secs_f64();

    eprintln!("==> voxprov import subscribers ({n} rows, all-or-nothing)");
    let started = Instant::now();
    let mut child = tokio::process::Command::new(voxprov)
        .arg("import")
        .arg("subscribers")
        .arg(&csv)
        .arg("--data-dir")
        .arg(&data)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let mut peak_kib = 0u64;
    let status = loop {
        if let Some(kib) = vm_hwm(pid) {
            peak_kib = peak_kib.max(kib);
        }
        tokio::select! {
            s = child.wait() => break s?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    };
    let took = started.elapsed();
    let out = child.wait_with_output().await?;
    if !status.success() {
        bail!(
            "import failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    let rate = n as f64 / took.as_secs_f64();

    eprintln!("==> lookups on the imported database");
    let mut server = Server::start(voxprov, &data, None).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder().tcp_nodelay(true).build()?;
    let mut rng = Lcg(0x5eed);
    let k = args.lookups;
    let by_user = latency(&client, &base, k, |_| {
        format!("/api/subscribers/?username=imp{}", rng.below(n))
    })
    .await?;
    let mut rng = Lcg(0xa11a5);
    let by_alias = latency(&client, &base, k, |_| {
        format!("/api/subscribers/?alias=432{}", 10_000_000 + rng.below(n))
    })
    .await?;
    let mut rng = Lcg(0xba6e);
    let pages = (n / 100).max(1);
    let page_count = latency(&client, &base, k / 4, |_| {
        format!(
            "/api/subscribers/?rows=100&page={}",
            1 + rng.below(pages.min(100))
        )
    })
    .await?;
    let mut rng = Lcg(0xba6f);
    let page_nocount = latency(&client, &base, k / 4, |_| {
        format!(
            "/api/subscribers/?rows=100&no_count=true&page={}",
            1 + rng.below(pages.min(100))
        )
    })
    .await?;
    let mut rng = Lcg(0xdee9);
    let keyset = latency(&client, &base, k / 4, |_| {
        format!(
            "/api/subscribers/?rows=100&no_count=true&after_id={}",
            rng.below(n)
        )
    })
    .await?;
    server.stop().await;

    // All or nothing at this size: a second file as long as the first, one bad row at its
    // next-to-last line; the database must be exactly as it was.
    let bad_line = n; // the header is line 1: rows are lines 2..=n+1
    let aon = all_or_nothing(voxprov, &data, dir, customer, n, bad_line).await?;

    println!("\n== import of {n} subscribers (each with a primary and an alias number), SQLite");
    println!(
        "raw floor (batched INSERTs, same rows)  {:>9.0} subscribers/s  ({:.1} s)",
        raw_rate,
        raw.as_secs_f64()
    );
    println!("voxprov import                          {:>9.0} subscribers/s  ({:.1} s)  = {:.1}% of the floor", rate, took.as_secs_f64(), 100.0 * rate / raw_rate);
    println!(
        "target ≥ 20000 subscribers/s: {}",
        if rate >= 20000.0 { "met" } else { "NOT met" }
    );
    println!(
        "peak RSS of the import process: {:.1} MiB",
        peak_kib as f64 / 1024.0
    );
    println!(
        "all-or-nothing: {n} more rows, a bad one at line {bad_line}: refused in {:.1} s, {} \
         (subscribers, numbers, change records before {:?}, after {:?})",
        aon.took.as_secs_f64(),
        if aon.before == aon.after {
            "database exactly as it was"
        } else {
            "DATABASE CHANGED"
        },
        aon.before,
        aon.after
    );
    println!("\n== latency at {n} subscribers (ms, sequential requests over keep-alive)");
    println!("{:<44} {:>7} {:>7} {:>7}", "request", "p50", "p99", "max");
    for (label, l, target) in [
        ("GET ?username=… (target p99 ≤ 5)", &by_user, 5.0),
        ("GET ?alias=… (target p99 ≤ 5)", &by_alias, 5.0),
        ("100-row page with numbers, total_count", &page_count, 50.0),
        (
            "100-row page, no_count=true (target ≤ 50)",
            &page_nocount,
            50.0,
        ),
        ("100-row page, after_id keyset, no_count", &keyset, 50.0),
    ] {
        let (p50, p99, max) = pct(l);
        println!(
            "{label:<44} {p50:>7.2} {p99:>7.2} {max:>7.2}  {}",
            if p99 <= target { "" } else { "over target" }
        );
    }
    Ok(())
}

struct AllOrNothing {
    took: Duration,
    before: (i64, i64, i64),
    after: (i64, i64, i64),
}

/// Imports `n` new subscribers with a bad username at CSV line `bad_line` (all-or-nothing)
/// and counts subscribers, numbers and change records before and after.
async fn all_or_nothing(
    voxprov: &Path,
    data: &Path,
    dir: &Path,
    customer: i64,
    n: usize,
    bad_line: usize,
) -> Result<AllOrNothing> {
    let csv = dir.join("bad-row.csv");
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&csv)?);
        writeln!(
            w,
            "customer_id,domain,username,password,cc,ac,sn,alias_numbers"
        )?;
        for i in 0..n {
            // Row i is on line i + 2.
            let user = if i + 2 == bad_line {
                "bad user".to_string()
            } else {
                format!("second{i}")
            };
            writeln!(
                w,
                "{customer},{DOMAIN},{user},pw-{i:08},43,3,{},43-4-{}",
                20_000_000 + i,
                20_000_000 + i
            )?;
        }
    }
    let before = counts(data).await?;
    eprintln!("==> voxprov import of {n} more rows, a bad one at line {bad_line}");
    let started = Instant::now();
    let out = tokio::process::Command::new(voxprov)
        .arg("import")
        .arg("subscribers")
        .arg(&csv)
        .arg("--data-dir")
        .arg(data)
        .stdin(std::process::Stdio::null())
        .output()
        .await?;
    let took = started.elapsed();
    let err = String::from_utf8_lossy(&out.stderr);
    if out.status.code() != Some(1) || !err.contains(&format!("line {bad_line}: username")) {
        bail!(
            "the import with a bad row at line {bad_line} did not fail on it: {}\n{err}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let after = counts(data).await?;
    Ok(AllOrNothing {
        took,
        before,
        after,
    })
}

/// Subscribers, numbers and change records in the server's database.
async fn counts(data: &Path) -> Result<(i64, i64, i64)> {
    let options = SqliteConnectOptions::new()
        .filename(data.join("voxprov.db"))
        .read_only(true);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    let mut got = [0i64; 3];
    for (g, table) in got.iter_mut().zip(["subscribers", "numbers", "changes"]) {
        *g = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&pool)
            .await?;
    }
    pool.close().await;
    Ok((got[0], got[1], got[2]))
}

/// Peak resident set of a process (KiB), from /proc.
pub fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n.max(1)
    }
}

async fn latency(
    client: &reqwest::Client,
    base: &str,
    count: usize,
    mut path: impl FnMut(usize) -> String,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(count);
    for i in 0..count + 20 {
        let p = path(i);
        let t = Instant::now();
        let r = client
            .get(format!("{base}{p}"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await
            .with_context(|| format!("GET {p}"))?;
        let status = r.status();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("GET {p}: {status} {body}");
        }
        if i >= 20 {
            out.push(t.elapsed()); // the first 20 warm the caches
        }
    }
    Ok(out)
}

fn pct(l: &[Duration]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = l.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (at(0.50), at(0.99), v.last().copied().unwrap_or(0.0))
}

async fn raw_floor(path: &Path, n: usize) -> Result<Duration> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await?;
    for stmt in SQLITE_SCHEMA {
        sqlx::query(stmt).execute(&pool).await?;
    }
    let started = Instant::now();
    let per_stmt = 500;
    let per_tx = 10_000;
    let mut tx = pool.begin().await?;
    let mut i = 0;
    while i < n {
        let end = (i + per_stmt).min(n);
        let mut sql = String::from(
            "INSERT INTO subscribers (id, uuid, customer_id, reseller_id, domain_id, username, password_enc, status, lock_level, create_timestamp, modify_timestamp) VALUES ",
        );
        for j in i..end {
            if j > i {
                sql.push(',');
            }
            sql.push_str(&format!("({}, '{:032x}', 1, 1, 1, 'imp{j}', '{}', 'active', 0, '2026-11-22 00:00:00', '2026-11-22 00:00:00')", j + 1, j, super::PASSWORD_ENC));
        }
        sqlx::query(&sql).execute(&mut *tx).await?;
        let mut sql = String::from(
            "INSERT INTO numbers (cc, ac, sn, subscriber_id, reseller_id, is_primary) VALUES ",
        );
        for j in i..end {
            if j > i {
                sql.push(',');
            }
            sql.push_str(&format!(
                "('43','1','{}',{},1,1),('43','2','{}',{},1,0)",
                10_000_000 + j,
                j + 1,
                10_000_000 + j,
                j + 1
            ));
        }
        sqlx::query(&sql).execute(&mut *tx).await?;
        i = end;
        if i % per_tx == 0 || i == n {
            tx.commit().await?;
            tx = pool.begin().await?;
        }
    }
    tx.commit().await?;
    let took = started.elapsed();
    pool.close().await;
    Ok(took)
}
