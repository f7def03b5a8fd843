//! What makes several nodes on one PostgreSQL behave as one: wake-ups between them
//! (LISTEN/NOTIFY, with polling kept as the fallback), the banned addresses mirrored on every
//! node, and housekeeping done by one node at a time.
//!
//! Wake-ups are sent at commit by triggers for what changes seldom (hooks, SIP servers and
//! their progress) or by the writer ([`Store::notify`]: bans, restores, requeued
//! deliveries); the API's own writes (changes, hook deliveries) are announced after their
//! commit by [`Wakeups`], coalesced, so that no write transaction takes PostgreSQL's
//! notification lock. A node that loses its listening connection acts as if it had heard
//! everything, then listens again.

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::Duration,
};

use super::App;
use crate::store::Store;

/// What a node does when it may have missed wake-ups. (A missed restore is told apart by
/// the installation's restore count: dropping every cache at each reconnect would throw away
/// the phones' last good files exactly when the database wobbles.)
const ALL: &[&str] = &[
    "changes",
    "progress",
    "sipservers",
    "hooks",
    "deliveries",
    "strikes",
];

/// The least time between two wake-ups sent by a node.
const SEND_GAP: Duration = Duration::from_millis(5);
/// How often the housekeeping owner looks at what to prune.
const HOUSEKEEPING: Duration = Duration::from_secs(60);
/// Lease history kept, in days.
const LEASE_HISTORY_DAYS: i64 = 30;

/// Topics to announce to the other nodes, sent by one task on a connection of its own.
#[derive(Default)]
pub struct Wakeups {
    due: Mutex<BTreeSet<&'static str>>,
    kick: tokio::sync::Notify,
}

impl Wakeups {
    /// Tells the other nodes, soon, that `topic` changed (after the caller's commit).
    pub fn tell(&self, topic: &'static str) {
        let fresh = self.due.lock().expect("wake-ups").insert(topic);
        if fresh {
            self.kick.notify_one();
        }
    }

    async fn send_loop(&self, store: Store) {
        if store.single_node() {
            return;
        }
        loop {
            self.kick.notified().await;
            let topics = std::mem::take(&mut *self.due.lock().expect("wake-ups"));
            let sent = async {
                let mut c = store.read().await?;
                for t in &topics {
                    Store::notify(&mut c, t).await?;
                }
                Ok::<_, crate::error::Error>(())
            }
            .await;
            if let Err(e) = sent {
                // The others poll meanwhile.
                tracing::debug!("cluster: wake-up not sent: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            } else {
                // What is told meanwhile goes out together: under load one wake-up stands
                // for many commits (each one a statement here and a read on every node).
                tokio::time::sleep(SEND_GAP).await;
            }
        }
    }
}

/// The wake-up listener and sender, the ban mirrors' refresher and the housekeeping duty.
pub fn start(app: &Arc<App>) -> Vec<tokio::task::JoinHandle<()>> {
    let send = {
        let app = app.clone();
        tokio::spawn(async move { app.wakeups.send_loop(app.store.clone()).await })
    };
    let listen = {
        let app = app.clone();
        tokio::spawn(async move { listen(app).await })
    };
    let mirrors = {
        let app = app.clone();
        tokio::spawn(async move {
            loop {
                refresh_bans(&app).await;
                tokio::time::sleep(super::strikes::REFRESH).await;
            }
        })
    };
    let housekeeping = {
        let app = app.clone();
        tokio::spawn(async move { housekeeping(app).await })
    };
    vec![send, listen, mirrors, housekeeping]
}

async fn refresh_bans(app: &App) {
    for s in [&app.credentials.strikes, &app.devices.bans.strikes] {
        if let Err(e) = s.refresh().await {
            tracing::debug!("bans not read: {e}");
        }
    }
}

/// Acts on one topic.
async fn wake(app: &App, topic: &str) {
    match topic {
        "changes" => {
            app.targets.kick();
            app.devices.kick();
        }
        "progress" => app.targets.progress_changed(),
        "sipservers" => app.targets.reconfigure(),
        "hooks" => {
            app.hooks.invalidate();
            app.hooks.kick();
        }
        "deliveries" => app.hooks.kick(),
        "strikes" => refresh_bans(app).await,
        "restored" => {
            // Another node restored a snapshot under the running cluster.
            app.credentials.invalidate();
            app.hooks.invalidate();
            app.devices.reload_all().await;
            app.targets.reconfigure();
            app.targets.kick();
        }
        other => tracing::debug!(topic = other, "wake-up for nothing known"),
    }
}

/// As if every wake-up but a restore's had come (some may have been missed).
async fn wake_all(app: &App) {
    for t in ALL {
        wake(app, t).await;
    }
}

/// The installation's restore count (`None` when unreadable).
async fn restores(store: &Store) -> Option<String> {
    let mut c = store.read().await.ok()?;
    crate::store::installation_value(&mut c, "restores")
        .await
        .ok()
        .map(|v| v.unwrap_or_default())
}

async fn listen(app: Arc<App>) {
    let mut backoff = Duration::from_millis(250);
    let mut restores_seen = restores(&app.store).await;
    loop {
        let mut l = match app.store.listener().await {
            Ok(Some(l)) => l,
            // SQLite: one node, nobody to hear from.
            Ok(None) => return,
            Err(e) => {
                tracing::warn!("cluster: cannot listen for wake-ups, polling meanwhile: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(250);
        // Whatever happened while not listening.
        wake_all(&app).await;
        let now = restores(&app.store).await;
        if now.is_some() && restores_seen.is_some() && now != restores_seen {
            wake(&app, "restored").await;
        }
        if now.is_some() {
            restores_seen = now;
        }
        loop {
            match l.try_recv().await {
                Ok(Some(n)) => {
                    metrics::counter!("voxprov_cluster_wakeups_total", "topic" => n.payload().to_string())
                        .increment(1);
                    wake(&app, n.payload()).await;
                }
                Ok(None) => {
                    // The connection was lost (and is opened again): anything may have been
                    // missed.
                    tracing::info!("cluster: wake-up connection lost, listening again");
                    wake_all(&app).await;
                }
                Err(e) => {
                    tracing::warn!("cluster: wake-up connection failed: {e}");
                    break;
                }
            }
        }
        tokio::time::sleep(backoff).await;
    }
}

/// Pruning, by one node at a time: failures and bans that no longer count, expired UI
/// sessions, old lease history (every minute); hook executions and phone fetch records past
/// their retention (every hour).
async fn housekeeping(app: Arc<App>) {
    let mut hourly = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(HOUSEKEEPING).await;
        let lease = match app.store.try_lease("housekeeping").await {
            Ok(Some(l)) => l,
            Ok(None) => continue,
            Err(e) => {
                tracing::debug!("housekeeping: lease not taken: {e}");
                continue;
            }
        };
        let report = |what: &str, r: crate::error::Result<u64>| match r {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "housekeeping: {what} pruned"),
            Err(e) => tracing::warn!("housekeeping: {what} not pruned: {e}"),
        };
        report("failures and bans", app.credentials.strikes.prune().await);
        report(
            "phone failures and bans",
            app.devices.bans.strikes.prune().await,
        );
        report("UI sessions", prune_sessions(&app.store).await);
        report("lease history", prune_lease_history(&app.store).await);
        if hourly <= tokio::time::Instant::now() {
            hourly = tokio::time::Instant::now() + Duration::from_secs(3600);
            report("hook executions and deliveries", app.hooks.prune().await);
            report("phone fetch records", app.devices.prune_fetches().await);
        }
        lease.release().await;
    }
}

async fn prune_sessions(store: &Store) -> crate::error::Result<u64> {
    let mut tx = store.begin_solo().await?;
    let n = crate::store::sessions::prune(&mut tx, chrono::Utc::now().timestamp_millis()).await?;
    tx.commit().await?;
    Ok(n)
}

async fn prune_lease_history(store: &Store) -> crate::error::Result<u64> {
    let before = chrono::Utc::now().timestamp_millis() - LEASE_HISTORY_DAYS * 86_400_000;
    let mut tx = store.begin_solo().await?;
    let n = crate::store::prune_lease_history(&mut tx, before).await?;
    tx.commit().await?;
    Ok(n)
}
