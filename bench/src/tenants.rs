//! `voxprov-bench tenants`: one tenant's hook with a pathological body template must not
//! change what another tenant's requests see.
//!
//! Two resellers. Reseller A only reads (`GET /api/subscribers/?rows=10` with its own
//! credentials). Reseller B creates subscribers, each firing B's after-hook. Three phases of A's
//! reads, in one run on one server:
//! - **quiet**: B does nothing;
//! - **healthy hook**: B creates subscribers; its hook's template is ordinary;
//! - **bad hook**: B creates subscribers at the same pace; its hook's template now blows up at
//!   delivery (alternately: a string doubled until the renderer's memory limit kills it, and a
//!   loop that burns its whole instruction budget). The template passes the trial render at
//!   save (the sample has no username); it fails on every real event.
//!
//! The healthy and pathological phases alternate for `--rounds` rounds (machine drift falls on
//! both alike); the hook delivers to a local receiver that answers at once. Printed: A's
//! p50/p99 per phase, the medians' ratios bad/healthy (the template's own effect) and
//! bad/quiet, and what B's deliveries failed with. No timed assertions.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Result};
use clap::Parser;
use serde_json::{json, Value};

use crate::{find_binary, run_load, Outcome, Server, ADMIN_PASSWORD, ADMIN_USER};

#[derive(Parser)]
pub struct TenantsArgs {
    #[arg(long, default_value = "target/release/voxprov")]
    voxprov: PathBuf,
    /// Reseller A's GETs per phase.
    #[arg(long, default_value_t = 4000)]
    reads: usize,
    /// Concurrency of A's reads.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Concurrent writers of reseller B (each write fires B's hook).
    #[arg(long, default_value_t = 2)]
    writers: usize,
    /// Rounds of (healthy, pathological) phases; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// SQLite (default) or a PostgreSQL URL for the server.
    #[arg(long)]
    database_url: Option<String>,
    /// The server's hooks.disable_after_template_failures (default 0: the bad hook keeps
    /// failing for the whole phase, the worst case; the server's own default is 10).
    #[arg(long, default_value_t = 0)]
    disable_after: u32,
}

const HEALTHY: &str = r#"{"user": "{{ subscriber.username }}"}"#;
/// Passes the trial render (no username in the sample); fails on every real subscriber.
const BAD: &str = r#"{% if subscriber.username %}{% if subscriber.id is even %}{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}{% else %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}{% endif %}"#;

async fn admin_post(
    client: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
) -> Result<Value> {
    let r = client
        .post(format!("{base}/api/{path}"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .header("Prefer", "return=representation")
        .json(&body)
        .send()
        .await?;
    let s = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if s.as_u16() != 201 {
        bail!("POST /api/{path}: {s} {v}");
    }
    Ok(v)
}

/// A reseller with its admin, domain, billing profile, contact and customer; returns the
/// customer id.
async fn tenant(client: &reqwest::Client, base: &str, name: &str) -> Result<i64> {
    let contact = admin_post(
        client,
        base,
        "systemcontacts/",
        json!({ "email": format!("{name}@contracts.example.com") }),
    )
    .await?["id"]
        .clone();
    let contract = admin_post(
        client,
        base,
        "contracts/",
        json!({ "contact_id": contact, "type": "reseller", "status": "active" }),
    )
    .await?["id"]
        .clone();
    let r = admin_post(
        client,
        base,
        "resellers/",
        json!({ "name": name, "contract_id": contract, "status": "active" }),
    )
    .await?["id"]
        .clone();
    admin_post(
        client,
        base,
        "admins/",
        json!({ "login": name, "password": "tenant-pass-1", "role": "reseller", "reseller_id": r }),
    )
    .await?;
    admin_post(
        client,
        base,
        "domains/",
        json!({ "domain": format!("{}.example.com", name.replace('_', "-")), "reseller_id": r }),
    )
    .await?;
    let bp = admin_post(
        client,
        base,
        "billingprofiles/",
        json!({ "handle": name, "name": name, "reseller_id": r }),
    )
    .await?["id"]
        .clone();
    let c = admin_post(
        client,
        base,
        "customercontacts/",
        json!({ "reseller_id": r, "email": "t@example.com" }),
    )
    .await?["id"]
        .clone();
    let cu = admin_post(client, base, "customers/", json!({ "contact_id": c, "billing_profile_id": bp, "type": "sipaccount", "status": "active" })).await?;
    Ok(cu["id"].as_i64().unwrap_or(0))
}

/// B's writers: subscribers created until `stop`, as B's admin.
fn start_writers(
    client: &reqwest::Client,
    base: &str,
    customer: i64,
    writers: usize,
    stop: Arc<AtomicBool>,
    seq: Arc<AtomicUsize>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|_| {
            let (client, base, stop, seq) =
                (client.clone(), base.to_string(), stop.clone(), seq.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let i = seq.fetch_add(1, Ordering::Relaxed);
                    let _ = client
                        .post(format!("{base}/api/subscribers/"))
                        .basic_auth("tenant_b", Some("tenant-pass-1"))
                        .json(
                            &json!({ "customer_id": customer, "domain": "tenant-b.example.com",
                                       "username": format!("b{i}"), "password": "tenant-sip-99" }),
                        )
                        .send()
                        .await;
                }
            })
        })
        .collect()
}

async fn reads(
    client: &reqwest::Client,
    base: &str,
    label: &'static str,
    args: &TenantsArgs,
) -> Outcome {
    let (client, url) = (client.clone(), format!("{base}/api/subscribers/?rows=10"));
    run_load(label, args.reads, args.concurrency, move |_| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let r = client
                .get(&url)
                .basic_auth("tenant_a", Some("tenant-pass-1"))
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let s = r.status();
            let _ = r.bytes().await;
            if s.is_success() {
                Ok(())
            } else {
                Err(s.to_string())
            }
        }
    })
    .await
}

/// A receiver that answers every delivery at once.
async fn start_receiver() -> Result<String> {
    let app = axum::Router::new().fallback(|| async { "{}" });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(base)
}

async fn set_hook(client: &reqwest::Client, base: &str, hook: i64, template: &str) -> Result<()> {
    let r = client
        .patch(format!("{base}/api/hooks/{hook}"))
        .basic_auth("tenant_b", Some("tenant-pass-1"))
        .header("content-type", "application/json-patch+json")
        .body(
            json!([{ "op": "replace", "path": "/body_template", "value": template },
                   { "op": "replace", "path": "/status", "value": "enabled" }])
            .to_string(),
        )
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("PATCH hook: {}", r.text().await?);
    }
    Ok(())
}

/// A's reads while B writes (its hook firing with `template`); returns the reads and B's
/// write count.
async fn phase(
    client: &reqwest::Client,
    base: &str,
    args: &TenantsArgs,
    b: i64,
    seq: &Arc<AtomicUsize>,
    label: &'static str,
) -> (Outcome, usize) {
    let stop = Arc::new(AtomicBool::new(false));
    let w = start_writers(client, base, b, args.writers, stop.clone(), seq.clone());
    let before = seq.load(Ordering::Relaxed);
    let out = reads(client, base, label, args).await;
    let writes = seq.load(Ordering::Relaxed) - before;
    stop.store(true, Ordering::Relaxed);
    for t in w {
        let _ = t.await;
    }
    (out, writes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

pub async fn tenants(args: TenantsArgs) -> Result<()> {
    let voxprov = find_binary(&args.voxprov)?;
    let dir = std::env::temp_dir().join(format!("vxbench-tenants-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let receiver = start_receiver().await?;
    let disable_after = args.disable_after.to_string();
    let env = [
        ("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true"),
        ("VOXPROV_LOG", "warn"),
        ("VOXPROV_SYNC_WAIT_MS", "0"),
        (
            "VOXPROV_HOOKS_DISABLE_AFTER_TEMPLATE_FAILURES",
            disable_after.as_str(),
        ),
    ];
    let mut server = Server::start_with(&voxprov, &dir, args.database_url.as_deref(), &env).await?;
    let base = server.base.clone();
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?;
    let a = tenant(&client, &base, "tenant_a").await?;
    let b = tenant(&client, &base, "tenant_b").await?;
    for i in 0..50 {
        admin_post(&client, &base, "subscribers/", json!({ "customer_id": a, "domain": "tenant-a.example.com", "username": format!("a{i}"), "password": "tenant-sip-99" })).await?;
    }
    let r = client
        .post(format!("{base}/api/hooks/"))
        .basic_auth("tenant_b", Some("tenant-pass-1"))
        .json(&json!({ "name": "b-hook", "events": ["subscriber.created"], "url": format!("{receiver}/h"), "body_template": HEALTHY }))
        .send()
        .await?;
    let hook: Value = r.json().await?;
    let hook = hook["id"].as_i64().unwrap_or(0);
    // Warm-up: credentials verified once, connections open.
    reads(
        &client,
        &base,
        "warm-up",
        &TenantsArgs {
            reads: 200,
            ..args.clone_shallow()
        },
    )
    .await;

    eprintln!("==> quiet: {} reads by A", args.reads);
    let quiet = reads(&client, &base, "quiet", &args).await;
    let seq = Arc::new(AtomicUsize::new(0));
    // Alternating rounds, so that drift of the machine falls on both sides alike.
    let (mut healthy, mut bad) = (Vec::new(), Vec::new());
    for round in 1..=args.rounds {
        set_hook(&client, &base, hook, HEALTHY).await?;
        eprintln!("==> round {round}: healthy hook, B writes, A reads");
        healthy.push(phase(&client, &base, &args, b, &seq, "healthy").await);
        set_hook(&client, &base, hook, BAD).await?;
        eprintln!("==> round {round}: pathological hook, B writes, A reads");
        bad.push(phase(&client, &base, &args, b, &seq, "bad").await);
    }
    // What the bad template did: executions failed with their reason.
    let ex: Value = client
        .get(format!(
            "{base}/api/hookexecutions/?hook_id={hook}&status=error&rows=1000"
        ))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .send()
        .await?
        .json()
        .await?;
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    let list = match &ex["_embedded"]["ngcp:hookexecutions"] {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        o => vec![o.clone()],
    };
    for e in list {
        let why = e["error"].as_str().unwrap_or("").to_string();
        if why.starts_with("body_template") {
            *reasons.entry(why).or_default() += 1;
        }
    }
    let rss = server.peak_rss_kib();
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let backend = if args.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!(
        "tenants {backend} reads={} concurrency={} writers={} rounds={} disable_after_template_failures={}",
        args.reads, args.concurrency, args.writers, args.rounds, args.disable_after
    );
    println!("  A reads, quiet: {}", quiet.summary());
    for (i, ((h, hw), (x, xw))) in healthy.iter().zip(&bad).enumerate() {
        println!(
            "  round {}: healthy hook {}  (B wrote {hw})",
            i + 1,
            h.summary()
        );
        println!("           pathological {}  (B wrote {xw})", x.summary());
    }
    let p = |v: &[(Outcome, usize)], q: f64| {
        median(v.iter().map(|(o, _)| o.percentile_ms(q)).collect())
    };
    println!(
        "  median of rounds: p99 healthy {:.1} ms, pathological {:.1} ms: ratio p99 bad/healthy {:.2}, p50 {:.2}; p99 bad/quiet {:.2}",
        p(&healthy, 99.0),
        p(&bad, 99.0),
        p(&bad, 99.0) / p(&healthy, 99.0),
        p(&bad, 50.0) / p(&healthy, 50.0),
        p(&bad, 99.0) / quiet.percentile_ms(99.0)
    );
    println!("  B's deliveries failed by the template:");
    for (why, n) in reasons {
        println!("    {n:5}  {why}");
    }
    if let Some(kib) = rss {
        println!("  server peak RSS: {:.0} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

impl TenantsArgs {
    fn clone_shallow(&self) -> TenantsArgs {
        TenantsArgs {
            voxprov: self.voxprov.clone(),
            reads: self.reads,
            concurrency: self.concurrency,
            writers: self.writers,
            rounds: self.rounds,
            database_url: self.database_url.clone(),
            disable_after: self.disable_after,
        }
    }
}
