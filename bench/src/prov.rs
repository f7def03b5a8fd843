//! `voxprov-bench prov`: the boot storm after a power cut. N provisioned phones (Yealink
//! T46U, two accounts and four keys each, long-lived tokens already traded) all fetch their
//! two files (the model's common file and their own) at once over keep-alive connections.
//!
//! - **reference**: the same server's hello-world endpoint (`/healthz`), same connection
//!   count, same number of requests, measured in the same run.
//! - **first boot**: every phone's first fetches (common file, own file) with its
//!   first-boot token, and one with the long-lived token it is given (database writes to
//!   trade the token), for comparison.
//! - **storm (warm)**: every phone's two files; configurations/s, p50/p99 and the ratio to
//!   the reference.
//! - **storm after a restart**: the server restarted (the power cut took it too) and the
//!   storm starts as soon as it listens, while its cache is still warming.
//!
//! Peak memory of the server is printed. No timed assertions: it prints the figures.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use serde_json::{json, Value};

use crate::bulk::vm_hwm;
use crate::sipserver::DOMAIN;
use crate::{find_binary, run_load, Outcome, Server, ADMIN_PASSWORD, ADMIN_USER};

#[derive(Parser)]
pub struct ProvArgs {
    #[arg(long, default_value = "target/release/voxprov")]
    voxprov: PathBuf,
    /// Phones.
    #[arg(long, default_value_t = 10_000)]
    devices: usize,
    /// Keep-alive connections fetching at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// SQLite (default) or a PostgreSQL URL for the server.
    #[arg(long)]
    database_url: Option<String>,
}

const UA: &str = "Yealink SIP-T46U 108.86.0.20";

fn mac(i: usize) -> String {
    format!("805ec0{:06x}", i)
}

async fn get_ok(
    c: &reqwest::Client,
    url: String,
) -> std::result::Result<axum::body::Bytes, String> {
    let r = c
        .get(&url)
        .header("User-Agent", UA)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let s = r.status();
    let b = r.bytes().await.map_err(|e| e.to_string())?;
    if s.as_u16() == 200 {
        Ok(b)
    } else {
        Err(format!("{url}: {s}"))
    }
}

pub async fn prov(args: ProvArgs) -> Result<()> {
    let voxprov = find_binary(&args.voxprov)?;
    if args.devices == 0 || args.devices > 0xffffff {
        bail!("--devices must be between 1 and 16777215");
    }
    let dir = std::env::temp_dir().join(format!("vxbench-prov-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    // With a base URL the server renders every phone's files while it warms up.
    let env = [("VOXPROV_PROV_BASE_URL", "http://prov.bench.invalid/prov/")];
    let mut server = Server::start_with(&voxprov, &dir, args.database_url.as_deref(), &env).await?;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(args.concurrency * 2)
        .timeout(Duration::from_secs(120))
        .build()?;
    let base = server.base.clone();
    let customer = crate::sipserver::setup(&client, &base).await?;
    let model = {
        let v: Value = client
            .get(format!(
                "{base}/api/pbxdevicemodels/?vendor=yealink&model=T46U"
            ))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await?
            .json()
            .await?;
        embedded(&v, "pbxdevicemodels")
            .first()
            .and_then(|m| m["id"].as_i64())
            .context("T46U in the catalog")?
    };

    eprintln!(
        "==> {} subscribers (bulk) and {} devices",
        2 * args.devices,
        args.devices
    );
    let n = args.devices;
    for chunk in (0..2 * n).collect::<Vec<_>>().chunks(1000) {
        let rows: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"customer_id": customer, "domain": DOMAIN, "username": format!("p{i}"), "password": format!("pw-{i}-secret")}))
            .collect();
        crate::post_bulk(&client, &base, &rows).await?;
    }
    let subs: Vec<i64> = {
        let mut ids = Vec::new();
        let mut page = 1;
        loop {
            let v: Value = client
                .get(format!(
                    "{base}/api/subscribers/?rows=1000&page={page}&order_by=id"
                ))
                .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
                .send()
                .await?
                .json()
                .await?;
            let items = v["_embedded"]["ngcp:subscribers"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                break;
            }
            ids.extend(items.iter().filter_map(|s| s["id"].as_i64()));
            page += 1;
        }
        ids
    };
    if subs.len() < 2 * n {
        bail!("only {} subscribers listed", subs.len());
    }
    let boots = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (c2, b2, s2, bt) = (client.clone(), base.clone(), Arc::new(subs), boots.clone());
    let created = run_load("devices", n, 16, move |i| {
        let (c, b, s, bt) = (c2.clone(), b2.clone(), s2.clone(), bt.clone());
        async move {
            let body = json!({"identifier": mac(i), "customer_id": customer, "model_id": model,
                "settings": {"timezone": "Europe/Berlin", "admin_password": "adm-pw-1"},
                "lines": [
                    {"subscriber_id": s[2 * i], "type": "private"}, {"subscriber_id": s[2 * i + 1], "type": "private"},
                    {"type": "blf", "target": "200"}, {"type": "blf", "target": "201"},
                    {"type": "speeddial", "target": "300"}, {"type": "speeddial", "target": "+4930123456"}]});
            let r = c
                .post(format!("{b}/api/pbxdevices/"))
                .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
                .json(&body)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let v: Value = r.json().await.map_err(|e| e.to_string())?;
            let t = v["boot_token"].as_str().ok_or_else(|| v.to_string())?;
            bt.lock().unwrap()[i] = t.to_string();
            Ok(())
        }
    })
    .await;
    eprintln!("    devices: {}", created.summary());

    // First boot: every phone trades its first-boot token; keep the long-lived ones.
    let longs = Arc::new(std::sync::Mutex::new(vec![String::new(); n]));
    let (c2, b2, bt, lt) = (client.clone(), base.clone(), boots.clone(), longs.clone());
    let first = run_load("first boot", n, args.concurrency, move |i| {
        let (c, b, bt, lt) = (c2.clone(), b2.clone(), bt.clone(), lt.clone());
        async move {
            let boot = bt.lock().unwrap()[i].clone();
            // As a Yealink boots: the model's common file, then its own.
            get_ok(&c, format!("{b}/prov/{boot}/y000000000108.cfg")).await?;
            let body = get_ok(&c, format!("{b}/prov/{boot}/{}.cfg", mac(i))).await?;
            let text = String::from_utf8_lossy(&body);
            let url = text
                .lines()
                .find_map(|l| l.strip_prefix("static.auto_provision.server.url = "))
                .ok_or("no provisioning URL")?;
            let t = url
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .unwrap_or("")
                .to_string();
            // The long-lived token's first use kills the first-boot one.
            get_ok(&c, format!("{b}/prov/{t}/{}.cfg", mac(i))).await?;
            lt.lock().unwrap()[i] = t;
            Ok(())
        }
    })
    .await;
    let tokens: Arc<Vec<String>> = Arc::new(longs.lock().unwrap().clone());

    let requests = 2 * n;
    let storm = |label: &'static str, base: String| {
        let (c, t) = (client.clone(), tokens.clone());
        run_load(label, requests, args.concurrency, move |k| {
            let (c, t, b) = (c.clone(), t.clone(), base.clone());
            async move {
                let i = k / 2;
                let file = if k % 2 == 0 {
                    "y000000000108.cfg".to_string()
                } else {
                    format!("{}.cfg", mac(i))
                };
                get_ok(&c, format!("{b}/prov/{}/{file}", t[i]))
                    .await
                    .map(|_| ())
            }
        })
    };
    let hello = |base: String| {
        let c = client.clone();
        run_load("hello", requests, args.concurrency, move |_| {
            let (c, b) = (c.clone(), base.clone());
            async move { get_ok(&c, format!("{b}/healthz")).await.map(|_| ()) }
        })
    };
    // Fetch records of the first boot settle before the storm.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let reference: Outcome = hello(base.clone()).await;
    let warm: Outcome = storm("storm", base.clone()).await;
    let reference2: Outcome = hello(base.clone()).await;
    let pid = server.child.id().unwrap_or(0);
    let peak_kib = vm_hwm(pid);

    // The power cut takes the server too: restart and storm at once.
    server.child.kill().await.ok();
    let _ = server.child.wait().await;
    let mut server2 =
        Server::start_with(&voxprov, &dir, args.database_url.as_deref(), &env).await?;
    let cold: Outcome = storm("storm after restart", server2.base.clone()).await;
    let peak2 = vm_hwm(server2.child.id().unwrap_or(0));
    server2.child.kill().await.ok();
    let _ = server2.child.wait().await;

    // Restarted, and the storm comes once the cache is warm (phones boot slower than this).
    let t0 = std::time::Instant::now();
    let server3 = Server::start_with(&voxprov, &dir, args.database_url.as_deref(), &env).await?;
    loop {
        let v: Value = client
            .get(format!("{}/api/pbxdevicecache", server3.base))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await?
            .json()
            .await?;
        if v["warm"] == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let warmup = t0.elapsed();
    let rewarm: Outcome = storm("storm after warm-up", server3.base.clone()).await;
    drop(server3);

    let db = if args.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!();
    println!(
        "boot storm, {db}: {n} phones × 2 files, {} keep-alive connections",
        args.concurrency
    );
    println!("  hello-world /healthz (before)  {}", reference.summary());
    println!("  first boot (token trade)       {}", first.summary());
    println!("  storm, server running          {}", warm.summary());
    println!("  hello-world /healthz (after)   {}", reference2.summary());
    println!("  storm, server just restarted   {}", cold.summary());
    println!(
        "  storm, restarted and warm      {}  (start to warm cache: {:.2} s)",
        rewarm.summary(),
        warmup.as_secs_f64()
    );
    let refrate = (reference.ops_per_sec() + reference2.ops_per_sec()) / 2.0;
    println!(
        "  configurations/s ratio to hello-world: {:.2} (running), {:.2} (restarted, warm), {:.2} (just restarted); target >= 0.50",
        warm.ops_per_sec() / refrate,
        rewarm.ops_per_sec() / refrate,
        cold.ops_per_sec() / refrate
    );
    println!(
        "  storm p99 {:.1} ms (running), {:.1} ms (restarted, warm), {:.1} ms (just restarted); target <= 20 ms",
        warm.percentile_ms(99.0),
        rewarm.percentile_ms(99.0),
        cold.percentile_ms(99.0)
    );
    if let (Some(a), Some(b)) = (peak_kib, peak2) {
        println!(
            "  server peak RSS: {} MiB (running), {} MiB (restarted)",
            a / 1024,
            b / 1024
        );
    }
    let errors = warm.errors + cold.errors + rewarm.errors + first.errors;
    if errors > 0 {
        bail!("{errors} requests failed");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// A HAL listing's items (one item is embedded as an object, several as an array).
fn embedded(v: &Value, name: &str) -> Vec<Value> {
    match &v["_embedded"][format!("ngcp:{name}")] {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        o => vec![o.clone()],
    }
}
