//! `GET /metrics`: Prometheus text, for admins (Basic or an API key). Counters and histograms
//! of what passes through (HTTP requests, by route template) are recorded as it happens; the
//! state of things (the change log's head, each SIP server's lag and health, hook deliveries,
//! phone fetches, database pools, memory) is read at each scrape.

use std::sync::OnceLock;
use std::time::Instant;

use axum::{extract::State, http::header, response::IntoResponse, response::Response};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use super::auth::Auth;
use super::AppState;
use crate::error::Result;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
static STARTED: OnceLock<Instant> = OnceLock::new();

/// Installs the process's recorder (a server calls it once at start; again is a no-op).
pub fn install() {
    STARTED.get_or_init(Instant::now);
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets(&[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ])
            .expect("static buckets")
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full("voxprov_db_commit_writes".into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            )
            .expect("static buckets")
            .install_recorder()
            .expect("one recorder per process")
    });
}

/// One request, as the access log saw it (`route`: the template, or `unmatched`).
pub fn request(route: &str, method: &str, status: u16, seconds: f64) {
    let labels = [("route", route.to_string()), ("method", method.to_string())];
    counter!("voxprov_http_requests_total", "route" => route.to_string(),
        "method" => method.to_string(), "status" => status.to_string())
    .increment(1);
    histogram!("voxprov_http_request_duration_seconds", &labels).record(seconds);
}

/// A phone's fetch of its own file: `outcome` ok, not_modified, render_failed, or refused
/// (unknown MAC, wrong token or certificate: the vendor is not known then).
pub fn phone_fetch(vendor: &str, outcome: &'static str) {
    counter!("voxprov_phone_fetches_total", "vendor" => vendor.to_string(), "outcome" => outcome)
        .increment(1);
}

/// The resident memory of this process, from /proc (Linux).
fn resident_bytes() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0)
}

async fn state(app: &AppState) -> Result<()> {
    let mut c = app.store.read().await?;
    let head: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM changes")
        .fetch_one(&mut *c)
        .await?;
    let head = head.unwrap_or(0);
    gauge!("voxprov_changes_head").set(head as f64);
    let now = chrono::Utc::now().timestamp_millis();
    for s in crate::store::sipservers::all(&mut c).await? {
        let l = [("sipserver", s.name.clone())];
        gauge!("voxprov_sipserver_enabled", &l).set(if s.enabled.0 { 1.0 } else { 0.0 });
        gauge!("voxprov_sipserver_applied_change_id", &l).set(s.applied_change_id as f64);
        gauge!("voxprov_sipserver_backlog", &l).set((head - s.applied_change_id).max(0) as f64);
        let ok = s
            .last_success_at
            .as_deref()
            .and_then(crate::store::ms_of_ts);
        let err = s.last_error_at.as_deref().and_then(crate::store::ms_of_ts);
        // Up: its last attempt went through (no error since the last success).
        let up = s.enabled.0 && ok.is_some() && err.is_none_or(|e| ok.is_some_and(|o| o >= e));
        gauge!("voxprov_sipserver_up", &l).set(if up { 1.0 } else { 0.0 });
        if let Some(o) = ok {
            gauge!("voxprov_sipserver_last_success_age_seconds", &l)
                .set(((now - o).max(0) as f64) / 1000.0);
        }
    }
    let deliveries: Vec<(String, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM hook_deliveries GROUP BY status")
            .fetch_all(&mut *c)
            .await?;
    for status in ["pending", "delivered", "failed", "cancelled"] {
        let n = deliveries
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |d| d.1);
        gauge!("voxprov_hook_deliveries", "status" => status).set(n as f64);
    }
    let fetches: Vec<(i64, i64)> =
        sqlx::query_as("SELECT status, COUNT(*) FROM device_fetches GROUP BY status")
            .fetch_all(&mut *c)
            .await?;
    for (status, n) in fetches {
        gauge!("voxprov_phone_fetches_recorded", "status" => status.to_string()).set(n as f64);
    }
    drop(c);
    let (devices, files, warm) = app.devices.stats();
    gauge!("voxprov_phone_cache_devices").set(devices as f64);
    gauge!("voxprov_phone_cache_files").set(files as f64);
    gauge!("voxprov_phone_cache_warm").set(if warm { 1.0 } else { 0.0 });
    gauge!("voxprov_phone_banned_addresses").set(app.devices.bans.strikes.banned_count() as f64);
    for (pool, size, idle) in app.store.pool_use() {
        gauge!("voxprov_db_pool_connections", "pool" => pool, "state" => "open").set(size as f64);
        gauge!("voxprov_db_pool_connections", "pool" => pool, "state" => "idle").set(idle as f64);
    }
    if let Some(b) = resident_bytes() {
        gauge!("voxprov_process_resident_memory_bytes").set(b);
    }
    if let Some(s) = STARTED.get() {
        gauge!("voxprov_uptime_seconds").set(s.elapsed().as_secs_f64());
    }
    Ok(())
}

pub async fn scrape(State(app): State<AppState>, Auth(actor): Auth) -> Result<Response> {
    actor.check_admin()?;
    state(&app).await?;
    let body = HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default();
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response())
}
