//! `voxprov-bench hooks`: after-hook delivery measured against a local receiver.
//!
//! - **reference**: the receiver's own capacity, measured in the same run by the bench posting
//!   payload-sized JSON bodies straight to it at the same concurrency as voxprov's delivery.
//! - **throughput**: a burst of events (bulk subscriber creation, one `subscriber.created`
//!   each) and how fast voxprov drains it to the receiver; printed as events/s and as a ratio
//!   of the reference.
//! - **latency**: subscribers created one by one at a steady pace; for each event, the time
//!   from its commit (the `timestamp` in the payload, taken inside the transaction) to its
//!   arrival at the receiver; p50/p99.
//! - **API writes**: the write rate with no hook enabled; with none enabled but the bench
//!   itself posting a payload-sized body to the receiver twice per write (what two deliveries
//!   cost this machine if voxprov's bookkeeping of them were free: the most the two-hook
//!   ratio can reach where the receiver shares the CPUs); with two healthy hooks.
//! - **hanging receiver**: API write latency with two hooks whose receivers answer, then with
//!   one of them never answering within its 30 s timeout; the ratio of the p99s.
//!
//! No timed assertions: it prints the figures.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Result};
use axum::{body::Bytes, extract::State, routing::post, Router};
use clap::Parser;
use serde_json::{json, Value};

use crate::sipserver::DOMAIN;
use crate::{find_binary, post_created, run_load, Outcome, Server, ADMIN_PASSWORD, ADMIN_USER};

#[derive(Parser)]
pub struct HooksArgs {
    #[arg(long, default_value = "target/release/voxprov")]
    voxprov: PathBuf,
    /// Events in the throughput burst.
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Events in the latency phase (created one request at a time).
    #[arg(long, default_value_t = 2_000)]
    latency_events: usize,
    /// API writes per hanging-receiver phase.
    #[arg(long, default_value_t = 1_000)]
    writes: usize,
    /// Concurrency of the API writers (and of the reference client).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// The server's hooks.max_in_flight_per_hook.
    #[arg(long, default_value_t = 64)]
    in_flight: usize,
    /// SQLite (default) or a PostgreSQL URL for the server.
    #[arg(long)]
    database_url: Option<String>,
}

#[derive(Default)]
struct Seen {
    /// (arrival unix ms, event timestamp unix ms) per delivery.
    arrivals: Vec<(f64, f64)>,
}

fn unix_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

async fn receive(State(seen): State<Arc<Mutex<Seen>>>, body: Bytes) -> &'static str {
    let now = unix_ms();
    let ts = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["timestamp"].as_str().map(String::from))
        .and_then(|t| chrono_ms(&t))
        .unwrap_or(0.0);
    seen.lock().unwrap().arrivals.push((now, ts));
    "{}"
}

/// The payload's RFC 3339 timestamp, to unix ms.
fn chrono_ms(t: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|d| d.timestamp_millis() as f64)
}

async fn hang(_: Bytes) -> &'static str {
    tokio::time::sleep(Duration::from_secs(3600)).await;
    "{}"
}

async fn start_receiver(seen: Arc<Mutex<Seen>>) -> Result<String> {
    let app = Router::new()
        .route("/events", post(receive))
        .route("/hang", post(hang))
        .with_state(seen);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", l.local_addr()?);
    tokio::spawn(async move { axum::serve(l, app).await });
    Ok(base)
}

fn pct(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

async fn wait_for(seen: &Arc<Mutex<Seen>>, n: usize, limit: Duration) -> bool {
    let start = Instant::now();
    while seen.lock().unwrap().arrivals.len() < n {
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

async fn create_one(
    client: &reqwest::Client,
    base: &str,
    customer: i64,
    user: String,
) -> std::result::Result<(), String> {
    let r = client
        .post(format!("{base}/api/subscribers/"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .json(&json!({ "customer_id": customer, "domain": DOMAIN, "username": user, "password": "pw-secret-1" }))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let s = r.status();
    let _ = r.bytes().await;
    if s.as_u16() == 201 {
        Ok(())
    } else {
        Err(s.to_string())
    }
}

pub async fn hooks(args: HooksArgs) -> Result<()> {
    let voxprov = find_binary(&args.voxprov)?;
    let dir = std::env::temp_dir().join(format!("vxbench-hooks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let seen: Arc<Mutex<Seen>> = Arc::default();
    let rbase = start_receiver(seen.clone()).await?;
    let client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(120))
        .build()?;

    // Reference: the receiver's own capacity, payload-sized bodies, same concurrency.
    let sample = json!({ "id": "msg_0123456789abcdef0123456789abcdef", "event": "subscriber.created", "operation": "create",
        "resource": "subscribers", "resource_id": 1, "object": { "username": "x".repeat(400) }, "old_object": null,
        "actor": { "type": "admin", "id": 1, "name": "administrator" }, "timestamp": "2026-01-01T00:00:00.000Z", "change_id": 1 });
    let body = Arc::new(sample.to_string());
    let echo_body = body.clone();
    let n_ref = args.events.min(20_000);
    let (c2, u2) = (client.clone(), format!("{rbase}/events"));
    let reference: Outcome = run_load("reference", n_ref, 16, move |_| {
        let (c, u, b) = (c2.clone(), u2.clone(), body.clone());
        async move {
            let r = c
                .post(&u)
                .header("content-type", "application/json")
                .body((*b).clone())
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let _ = r.bytes().await;
            Ok(())
        }
    })
    .await;
    seen.lock().unwrap().arrivals.clear();

    let in_flight = args.in_flight.to_string();
    let mut env = vec![
        ("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true"),
        ("VOXPROV_HOOKS_MAX_IN_FLIGHT_PER_HOOK", in_flight.as_str()),
    ];
    env.push(("VOXPROV_LOG", "warn"));
    let mut server = Server::start_with(&voxprov, &dir, args.database_url.as_deref(), &env).await?;
    let base = server.base.clone();
    let customer = crate::sipserver::setup(&client, &base).await?;
    let first = post_created(&client, &base, "hooks", json!({ "name": "bench", "events": ["subscriber.created"], "url": format!("{rbase}/events") })).await?;

    // Throughput: a burst, created in bulk (500 per request), drained to the receiver.
    eprintln!("==> throughput: {} events", args.events);
    let t0 = unix_ms();
    for chunk in 0..args.events.div_ceil(500) {
        let rows: Vec<Value> = (chunk * 500..((chunk + 1) * 500).min(args.events))
            .map(|i| json!({ "customer_id": customer, "domain": DOMAIN, "username": format!("t{i}"), "password": "pw-secret-1" }))
            .collect();
        let r = client
            .post(format!("{base}/api/subscribers/?mode=per-row"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .json(&rows)
            .send()
            .await?;
        let status = r.status();
        let v: Value = r.json().await.unwrap_or(Value::Null);
        if !status.is_success() || v["summary"]["errors"] != 0 {
            bail!("bulk create: {status} {}", v["rows"][0]);
        }
    }
    let created_ms = unix_ms() - t0;
    if !wait_for(&seen, args.events, Duration::from_secs(300)).await {
        let state = client
            .get(format!("{base}/api/hooks/"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await?
            .text()
            .await?;
        bail!(
            "only {} of {} events delivered; last executions: {state}",
            seen.lock().unwrap().arrivals.len(),
            args.events
        );
    }
    let (first_ts, last_arrival) = {
        let s = seen.lock().unwrap();
        let first = s.arrivals.iter().map(|a| a.1).fold(f64::MAX, f64::min);
        let last = s.arrivals.iter().map(|a| a.0).fold(0.0, f64::max);
        (first, last)
    };
    let drain_secs = (last_arrival - first_ts) / 1000.0;
    let rate = args.events as f64 / drain_secs;
    // Until every outcome is recorded too (the outbox empty).
    loop {
        let v: Value = client
            .get(format!("{base}/api/hooks/1"))
            .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
            .send()
            .await?
            .json()
            .await?;
        if v["pending_deliveries"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let recorded_secs = (unix_ms() - first_ts) / 1000.0;

    // Latency at a steady pace: one create at a time.
    seen.lock().unwrap().arrivals.clear();
    eprintln!(
        "==> latency: {} events, created one at a time",
        args.latency_events
    );
    for i in 0..args.latency_events {
        create_one(&client, &base, customer, format!("l{i}"))
            .await
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    if !wait_for(&seen, args.latency_events, Duration::from_secs(120)).await {
        bail!("latency phase: events missing");
    }
    let lat: Vec<f64> = seen
        .lock()
        .unwrap()
        .arrivals
        .iter()
        .map(|(a, t)| a - t)
        .collect();

    // API writes with no hook, then with two: both receivers healthy, then one hanging.
    let writes = |prefix: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        move |i: usize| {
            let (client, base) = (client.clone(), base.clone());
            async move { create_one(&client, &base, customer, format!("{prefix}{i}")).await }
        }
    };
    // The same writes with no hook enabled, as the reference for the two below.
    let set_status = |id: i64, status: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let r = client
                .patch(format!("{base}/api/hooks/{id}"))
                .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
                .header("content-type", "application/json-patch+json")
                .body(json!([{ "op": "replace", "path": "/status", "value": status }]).to_string())
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("PATCH hook status: {}", r.text().await.unwrap_or_default());
            }
            Ok(())
        }
    };
    set_status(first, "disabled").await?;
    eprintln!(
        "==> API writes: {} at concurrency {}, no hook enabled",
        args.writes, args.concurrency
    );
    let bare = run_load("no hooks", args.writes, args.concurrency, writes("n")).await;
    // The same writes, still no hook, and after each 201 two bare exchanges with the receiver
    // made by the bench (tasks of their own, at most 2 × `in_flight` at once, the slots of
    // two hooks): two deliveries whose bookkeeping costs nothing.
    let slots = Arc::new(tokio::sync::Semaphore::new(2 * args.in_flight));
    let sent = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let echoed = {
        let (client, base, url) = (client.clone(), base.clone(), format!("{rbase}/events"));
        let (slots, sent, refused) = (slots.clone(), sent.clone(), refused.clone());
        move |i: usize| {
            let (client, base, url) = (client.clone(), base.clone(), url.clone());
            let (slots, sent, body) = (slots.clone(), sent.clone(), echo_body.clone());
            let refused = refused.clone();
            async move {
                create_one(&client, &base, customer, format!("e{i}")).await?;
                for _ in 0..2 {
                    let (c, u, b) = (client.clone(), url.clone(), body.clone());
                    let (slots, sent, refused) = (slots.clone(), sent.clone(), refused.clone());
                    tokio::spawn(async move {
                        let _slot = slots.acquire_owned().await;
                        let r = c
                            .post(&u)
                            .header("content-type", "application/json")
                            .body((*b).clone())
                            .send()
                            .await;
                        let ok = match r {
                            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                            Err(_) => false,
                        };
                        if !ok {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        sent.fetch_add(1, Ordering::Relaxed);
                    });
                }
                Ok(())
            }
        }
    };
    eprintln!(
        "==> API writes: {} at concurrency {}, no hook, two bare posts to the receiver per write",
        args.writes, args.concurrency
    );
    let echo = run_load("bare posts", args.writes, args.concurrency, echoed).await;
    let echo_start = Instant::now();
    let expected = 2 * echo.latencies.len();
    while sent.load(Ordering::Relaxed) < expected && echo_start.elapsed() < Duration::from_secs(60)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let echo_drain = echo_start.elapsed();
    let (done, refused) = (
        sent.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
    );
    if done < expected || refused > 0 {
        bail!("bare posts: {done} of {expected} answered within 60 s of the last write, {refused} refused or failed");
    }
    // The posts still on their way when the writes ended count in the phase's time.
    let echo_rate = echo.latencies.len() as f64 / (echo.elapsed + echo_drain).as_secs_f64();
    set_status(first, "enabled").await?;
    // A second hook, healthy for the first phase; then its receiver hangs.
    let second = post_created(&client, &base, "hooks", json!({ "name": "second", "events": ["subscriber.created"], "url": format!("{rbase}/events"), "timeout": 30 })).await?;
    eprintln!(
        "==> API writes: {} at concurrency {}, two hooks, both receivers healthy",
        args.writes, args.concurrency
    );
    let calm = run_load("calm", args.writes, args.concurrency, writes("c")).await;
    let r = client
        .patch(format!("{base}/api/hooks/{second}"))
        .basic_auth(ADMIN_USER, Some(ADMIN_PASSWORD))
        .header("content-type", "application/json-patch+json")
        .body(
            json!([{ "op": "replace", "path": "/url", "value": format!("{rbase}/hang") }])
                .to_string(),
        )
        .send()
        .await?;
    if !r.status().is_success() {
        bail!("PATCH hook: {}", r.text().await.unwrap_or_default());
    }
    // Let the hanging hook fill its slots first.
    run_load("hang warm-up", 50, 4, writes("w")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!(
        "==> API writes: {} at concurrency {}, with a receiver that hangs 30 s",
        args.writes, args.concurrency
    );
    let hanging = run_load("hanging", args.writes, args.concurrency, writes("h")).await;
    server.stop().await;
    let _ = std::fs::remove_dir_all(&dir);

    let backend = if args.database_url.is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!("hooks {backend} events={} latency_events={} writes={} concurrency={} in_flight_per_hook={}", args.events, args.latency_events, args.writes, args.concurrency, args.in_flight);
    println!(
        "  reference (bench → receiver directly, concurrency 16): {}",
        reference.summary()
    );
    println!(
        "  burst created in {:.1} s (bulk POSTs of 500)",
        created_ms / 1000.0
    );
    println!("  delivered: {:.0} events/s ({} events, first commit → last arrival {:.2} s)  target >= 2000", rate, args.events, drain_secs);
    println!(
        "  ratio delivered/reference: {:.1}%",
        100.0 * rate / reference.ops_per_sec()
    );
    println!(
        "  every outcome recorded (outbox empty) after {:.2} s: {:.0} events/s",
        recorded_secs,
        args.events as f64 / recorded_secs
    );
    println!(
        "  commit → delivery, steady: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  target p99 <= 100",
        pct(lat.clone(), 50.0),
        pct(lat.clone(), 99.0),
        pct(lat, 100.0)
    );
    println!(
        "  API writes, no hook enabled:               {}",
        bare.summary()
    );
    println!(
        "  API writes, no hook, 2 bare posts each:    {}",
        echo.summary()
    );
    println!(
        "  ratio writes/s with the bare posts / none: {:.1}%  (the most two hooks can reach here; last posts {:.2} s after the last write, counted)",
        100.0 * echo_rate / bare.ops_per_sec(),
        echo_drain.as_secs_f64()
    );
    println!(
        "  API writes, two hooks, both healthy:       {}",
        calm.summary()
    );
    println!(
        "  ratio writes/s two healthy hooks / none: {:.1}%  target >= 90%",
        100.0 * calm.ops_per_sec() / bare.ops_per_sec()
    );
    println!(
        "  API writes, two hooks, one hangs 30 s:     {}",
        hanging.summary()
    );
    println!(
        "  ratio p99 hanging/healthy: {:.2}  p50: {:.2}",
        hanging.percentile_ms(99.0) / calm.percentile_ms(99.0),
        hanging.percentile_ms(50.0) / calm.percentile_ms(50.0)
    );
    Ok(())
}
