//! One delivery worker per enabled SIP server: its cursor over the change log, the batches it
//! applies, full loads, failure and backoff.
//!
//! The cursor copes with ids that commit out of order (PostgreSQL, several writers): ids seen
//! missing below the highest one applied are watched for a grace period before they are taken
//! as rolled back, and `applied_change_id` only moves past them then. A failure never moves
//! the saved cursor back.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use tokio::sync::Notify;

use super::config::{Layout, TargetCfg};
use super::db::Applied;
use super::db::TargetDb;
use super::{after_apply, clean, deliver, diff_full, layout_of, load_targets, poll_registrations};
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::{sipservers as st, Lease, Store};

/// Changes read per batch.
const BATCH: i64 = 500;
/// How long an id missing below applied ones is waited for before it counts as rolled back.
/// A PostgreSQL transaction holding its change id uncommitted for longer would be missed by
/// the cursor (and found by `sync check`).
const GAP_GRACE: Duration = Duration::from_secs(60);
/// How far back a full load looks for changes that may still commit.
const FULL_LOAD_WINDOW: i64 = 1000;
/// Idle poll, for changes written by other processes (the CLI, other nodes).
const POLL: Duration = Duration::from_secs(1);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
const FULL_LOAD_TIMEOUT: Duration = Duration::from_secs(1800);
pub(super) const LEASE_BASE: i64 = 0x766f_7870_0000;

/// The part of a target's progress that waiters look at.
#[derive(Default)]
pub(super) struct Progress {
    /// Every change up to here is applied (or was never going to exist).
    pub(super) low: i64,
    /// The highest change read.
    hi: i64,
    /// Applied changes above `low`.
    done: BTreeSet<i64>,
    /// Ids below `hi` not seen yet, and since when.
    gaps: BTreeMap<i64, Instant>,
}

impl Progress {
    fn reset(&mut self, low: i64, done: BTreeSet<i64>, hi: i64) {
        self.low = low;
        self.hi = hi.max(low);
        self.done = done;
        self.gaps.clear();
        self.note_gaps(low, hi);
        self.advance();
    }
    pub(super) fn is_applied(&self, id: i64) -> bool {
        id <= self.low || self.done.contains(&id)
    }
    fn note_gaps(&mut self, from: i64, to: i64) {
        let now = Instant::now();
        for i in from + 1..to {
            if !self.done.contains(&i) {
                self.gaps.entry(i).or_insert(now);
            }
        }
    }
    fn applied(&mut self, ids: &[i64]) {
        let prev_hi = self.hi;
        for &i in ids {
            self.gaps.remove(&i);
            if i > self.low {
                self.done.insert(i);
            }
            self.hi = self.hi.max(i);
        }
        self.note_gaps(prev_hi, self.hi + 1);
        self.advance();
    }
    fn advance(&mut self) {
        loop {
            let next = self.low + 1;
            if self.done.remove(&next) {
                self.low = next;
            } else if self
                .gaps
                .get(&next)
                .is_some_and(|t| t.elapsed() >= GAP_GRACE)
            {
                self.gaps.remove(&next);
                self.low = next;
            } else {
                break;
            }
        }
    }
}

/// A target's live status, shared between its worker and the requests waiting for it.
pub struct Status {
    pub id: i64,
    pub name: String,
    pub(super) progress: Mutex<Progress>,
    /// The last attempt failed: requests do not wait for it.
    pub(super) failing: AtomicBool,
    /// `sipserver.behind` was announced and `caught_up` is still owed.
    behind: AtomicBool,
    /// This node holds the target's lease (another node delivers otherwise).
    pub(super) leased: AtomicBool,
    /// Progress was made (waiters re-check).
    pub(super) changed: Notify,
    /// New changes may be waiting (the worker looks now rather than at its next poll).
    pub(super) kick: Notify,
}

impl Status {
    pub(super) fn new(id: i64, name: String) -> Status {
        Status {
            id,
            name,
            progress: Mutex::new(Progress::default()),
            failing: AtomicBool::new(false),
            behind: AtomicBool::new(false),
            leased: AtomicBool::new(false),
            changed: Notify::new(),
            kick: Notify::new(),
        }
    }
    pub(super) fn is_applied(&self, id: i64) -> bool {
        self.progress.lock().expect("progress lock").is_applied(id)
    }
    fn low(&self) -> i64 {
        self.progress.lock().expect("progress lock").low
    }
}

/// Exponential backoff with jitter: 0.5 s doubling to a minute.
struct Backoff(u32);

impl Backoff {
    fn next(&mut self) -> Duration {
        let base = 500u64.saturating_mul(1 << self.0.min(7)).min(60_000);
        self.0 += 1;
        let jitter = rand::random::<u64>() % (base / 2 + 1);
        Duration::from_millis(base / 2 + jitter)
    }
}

/// Why delivery stopped.
enum Stop {
    Failed(Error),
    /// This worker's configuration is no longer the server's: the supervisor starts a new one.
    Stale,
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e)
    }
}

fn describe(e: &Error) -> String {
    match e {
        Error::Internal(cause) => clean(cause),
        other => clean(&anyhow::anyhow!("{other}")),
    }
}

pub(super) async fn run_worker(store: Store, cipher: Cipher, t: TargetCfg, status: Arc<Status>) {
    let mut backoff = Backoff(0);
    // Where delivery stands, before anything can fail: a failure never moves it back.
    loop {
        let state = async {
            let mut c = store.read().await?;
            st::state(&mut c, t.id).await
        }
        .await;
        match state {
            Ok(s) => {
                let applied = s.map(|s| s.0).unwrap_or(0);
                status.progress.lock().expect("progress lock").reset(
                    applied,
                    BTreeSet::new(),
                    applied,
                );
                break;
            }
            Err(e) => {
                tracing::warn!(target = %t.name, error = %e, "sipserver: cannot read its state");
                tokio::time::sleep(backoff.next()).await;
            }
        }
    }
    loop {
        // Across nodes, one delivers to a target at a time.
        let mut lease = match store.try_lease(LEASE_BASE + t.id).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                status.leased.store(false, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(target = %t.name, error = %e, "sipserver: cannot take the lease");
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        };
        status.leased.store(true, Ordering::Relaxed);
        let err = match deliver_loop(&store, &cipher, &t, &status, &mut backoff, &mut lease).await {
            Stop::Stale => {
                status.failing.store(true, Ordering::Relaxed);
                status.changed.notify_waiters();
                return;
            }
            Stop::Failed(e) => e,
        };
        status.failing.store(true, Ordering::Relaxed);
        status.changed.notify_waiters();
        let msg = describe(&err);
        tracing::warn!(target = %t.name, error = %msg, "sipserver: delivery failed, will retry");
        if let Ok(mut tx) = store.begin().await {
            if st::save_error(&mut tx, t.id, &msg).await.is_ok() {
                let announce = !status.behind.load(Ordering::Relaxed);
                if announce
                    && announce_state(&mut tx, &t, "sipserver.behind", Some(&msg))
                        .await
                        .is_err()
                {
                    tracing::warn!(target = %t.name, "sipserver: cannot queue sipserver.behind");
                }
                if tx.commit().await.is_ok() && announce {
                    status.behind.store(true, Ordering::Relaxed);
                }
            }
        }
        drop(lease);
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Delivers until something fails.
async fn deliver_loop(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    status: &Status,
    backoff: &mut Backoff,
    lease: &mut Lease,
) -> Stop {
    let db = match TargetDb::connect(&t.db_url).await {
        Ok(db) => db,
        Err(e) => return Stop::Failed(Error::Unavailable(clean(&e))),
    };
    let r = async {
        let layout = layout_of(store, t, &db).await?;
        // Whatever the server caches may be stale after an outage or a restart.
        let mut pending = Applied {
            domains: true,
            ..Applied::default()
        };
        let mut next_reg_poll = Instant::now();
        loop {
            if !lease.alive().await {
                return Err(Stop::Failed(Error::Unavailable(
                    "lost the delivery lease".into(),
                )));
            }
            let (_, generation, _) = {
                let mut c = store.read().await?;
                st::state(&mut c, t.id).await?.unwrap_or((0, 0, false))
            };
            if generation > 0 {
                // Another node may have changed the configuration: never load with old settings.
                let current = load_targets(store, cipher).await?;
                if !current
                    .iter()
                    .any(|c| c.id == t.id && c.fingerprint == t.fingerprint && c.enabled)
                {
                    return Err(Stop::Stale);
                }
                let domains = tokio::time::timeout(
                    FULL_LOAD_TIMEOUT,
                    full_load(store, cipher, t, &layout, &db, status, generation),
                )
                .await
                .map_err(|_| Error::Unavailable("timed out during a full load".into()))??;
                pending.merge(domains);
            }
            // A target that stops answering mid-statement must not hold the worker forever.
            let began = std::time::Instant::now();
            let (progressed, applied, ids) =
                tokio::time::timeout(STEP_TIMEOUT, step(store, cipher, t, &layout, &db, status))
                    .await
                    .map_err(|_| Error::Unavailable("timed out applying a batch".into()))??;
            pending.merge(applied);
            if !pending.is_empty() {
                // Best effort: the rows are in; a server that cannot reload now gets it later,
                // and its error shows in the status, but subscribers keep flowing.
                let regs = !pending.reg_refresh.is_empty() || !pending.reg_remove.is_empty();
                let tables = std::mem::take(&mut pending.tables);
                let outcome = after_apply(t, &mut pending).await;
                note_tables(store, t, &tables, &pending, outcome.as_ref().err()).await?;
                if regs {
                    next_reg_poll = Instant::now() + Duration::from_millis(300);
                }
                match outcome {
                    Ok(()) => {}
                    Err(e) => {
                        let msg = format!("reload: {}", clean(&e));
                        tracing::warn!(target = %t.name, error = %msg, "sipserver");
                        let mut tx = store.begin().await?;
                        st::save_error(&mut tx, t.id, &msg).await?;
                        tx.commit().await.map_err(Error::from)?;
                    }
                }
            }
            mark_applied(store, t, status, &ids).await?;
            if !ids.is_empty() {
                // Rows written and the server reloaded: what a change waits for.
                metrics::histogram!("voxprov_sipserver_apply_duration_seconds", "sipserver" => t.name.clone())
                    .record(began.elapsed().as_secs_f64());
            }
            status.failing.store(false, Ordering::Relaxed);
            *backoff = Backoff(0);
            status.changed.notify_waiters();
            // Remote registrations: read back every second until settled, then every 15 s.
            if Instant::now() >= next_reg_poll {
                let wait = match poll_registrations(store, t).await {
                    Ok(true) => Duration::from_secs(15),
                    Ok(false) => Duration::from_secs(1),
                    Err(e) => {
                        tracing::debug!(target = %t.name, error = %e, "registration states");
                        Duration::from_secs(15)
                    }
                };
                next_reg_poll = Instant::now() + wait;
            }
            if !progressed && status.behind.load(Ordering::Relaxed) {
                let mut tx = store.begin().await?;
                announce_state(&mut tx, t, "sipserver.caught_up", None).await?;
                tx.commit().await.map_err(Error::from)?;
                status.behind.store(false, Ordering::Relaxed);
            }
            if !progressed {
                tokio::select! {
                    _ = status.kick.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
    .await;
    db.close().await;
    match r {
        Err(stop) => stop,
        Ok(()) => Stop::Failed(Error::Unavailable("worker stopped".into())),
    }
}

/// Records, per table the batch changed, when and how its reload went (shown as the
/// sipserver's `status.tables`).
async fn note_tables(
    store: &Store,
    t: &TargetCfg,
    tables: &std::collections::BTreeSet<super::rows::Table>,
    left: &Applied,
    error: Option<&anyhow::Error>,
) -> Result<()> {
    // The tables a server caches (or routing tables): the subscriber tables are read on every
    // request and change with nearly every batch, not worth a write each time.
    let noted: Vec<&super::rows::Table> = tables
        .iter()
        .filter(|t| t.spec().is_some() || **t == super::rows::Table::Domain)
        .collect();
    if noted.is_empty() {
        return Ok(());
    }
    let mut c = store.read().await?;
    let mut map: serde_json::Map<String, serde_json::Value> = st::tables(&mut c, t.id)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or_default();
    drop(c);
    let now = crate::store::now();
    for table in noted {
        let reload = match table {
            super::rows::Table::Domain => t.rpc_url.as_ref().map(|_| t.driver.domain_reload()),
            other => other
                .spec()
                .and_then(|s| s.reload)
                .map(|(m, _)| m)
                .or((*other == super::rows::Table::Uacreg).then_some("uac.reg_refresh")),
        };
        // Reloaded unless left over (a failed reload stays pending; a table that changed
        // always had its reload asked for in the same apply).
        let failed = match table {
            super::rows::Table::Domain => left.domains,
            super::rows::Table::Uacreg => {
                !left.reg_refresh.is_empty() || !left.reg_remove.is_empty()
            }
            other => other
                .spec()
                .and_then(|s| s.reload)
                .is_some_and(|r| left.reloads.contains(&r)),
        };
        let reloaded = reload.is_some() && t.rpc_url.is_some() && !failed;
        let error = if failed { error } else { None };
        map.insert(
            table.name().to_string(),
            serde_json::json!({
                "changed_at": now,
                "reload": reload,
                "reloaded": reloaded,
                "error": if reload.is_some() { error.map(clean) } else { None },
            }),
        );
    }
    let mut tx = store.begin().await?;
    st::save_tables(&mut tx, t.id, &serde_json::Value::Object(map).to_string()).await?;
    tx.commit().await.map_err(Error::from)?;
    Ok(())
}

/// Tells hooks that a server fell behind or caught up (events `sipserver.behind` and
/// `sipserver.caught_up`), in the caller's transaction.
async fn announce_state(
    c: &mut crate::store::Conn,
    t: &TargetCfg,
    event: &str,
    error: Option<&str>,
) -> Result<()> {
    let obj = serde_json::json!({
        "id": t.id,
        "name": t.name,
        "state": if error.is_some() { "failing" } else { "ok" },
        "last_error": error,
    });
    crate::hooks::enqueue(
        c,
        &crate::model::Actor::system(),
        &[crate::hooks::Emitted {
            resource: "sipservers",
            object_id: t.id,
            reseller_id: None,
            op: crate::changes::Op::Update,
            change_id: None,
            before: None,
            after: Some(&obj),
            events: Some(vec![event.to_string()]),
        }],
    )
    .await?;
    Ok(())
}

/// Loads everything, then starts the cursor just below the changes it saw. Returns whether
/// `domain` rows changed.
async fn full_load(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    status: &Status,
    generation: i64,
) -> Result<Applied> {
    let (horizon, recent) = {
        let mut c = store.read().await?;
        let h = st::max_change_id(&mut c).await?;
        let from = (h - FULL_LOAD_WINDOW).max(0);
        (h, (from, st::change_ids_between(&mut c, from, h).await?))
    };
    let diffs = diff_full(store, cipher, t, layout, db).await?;
    let n = diffs.len();
    let domains = db
        .apply(layout, &diffs)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let low = {
        let mut p = status.progress.lock().expect("progress lock");
        // Never behind what was already applied.
        let keep = p.low;
        p.reset(recent.0, recent.1.into_iter().collect(), horizon);
        if p.low < keep {
            let done: BTreeSet<i64> = p.done.iter().copied().filter(|i| *i > keep).collect();
            let hi = p.hi;
            p.reset(keep, done, hi);
        }
        p.low
    };
    let mut tx = store.begin().await?;
    st::save_progress(&mut tx, t.id, low, Some(generation)).await?;
    tx.commit().await?;
    tracing::info!(target = %t.name, changes = n, "sipserver: full load done");
    Ok(domains)
}

/// One batch: returns whether anything was read, what the server must be told, and the
/// changes it held (to be marked applied once the server was told).
async fn step(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    status: &Status,
) -> Result<(bool, Applied, Vec<i64>)> {
    let (hi, gaps) = {
        let p = status.progress.lock().expect("progress lock");
        (p.hi, p.gaps.keys().copied().collect::<Vec<_>>())
    };
    let mut batch = {
        let mut c = store.read().await?;
        let mut b = st::changes_after(&mut c, hi, BATCH).await?;
        if !gaps.is_empty() {
            b.extend(st::changes_by_ids(&mut c, &gaps).await?);
        }
        b
    };
    batch.sort_by_key(|c| c.id);
    if batch.is_empty() {
        // Gaps may have aged into "rolled back".
        let before = status.low();
        status.progress.lock().expect("progress lock").advance();
        let after = status.low();
        if after != before {
            save(store, t, after).await?;
        }
        return Ok((false, Applied::default(), Vec::new()));
    }
    let applied = deliver(store, cipher, t, layout, db, &batch).await?;
    Ok((true, applied, batch.iter().map(|c| c.id).collect()))
}

/// Marks a batch's changes applied (after the server was told to reload what it caches, so
/// that a waiting request returns once the server acts on its change).
async fn mark_applied(store: &Store, t: &TargetCfg, status: &Status, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let low = {
        let mut p = status.progress.lock().expect("progress lock");
        p.applied(ids);
        p.low
    };
    save(store, t, low).await
}

async fn save(store: &Store, t: &TargetCfg, low: i64) -> Result<()> {
    let mut tx = store.begin().await?;
    st::save_progress(&mut tx, t.id, low, None).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_waits_for_an_id_that_commits_late() {
        let mut p = Progress::default();
        p.reset(10, BTreeSet::new(), 10);
        // 12 and 13 committed, 11 still in flight.
        p.applied(&[12, 13]);
        assert_eq!(p.low, 10, "11 may still come");
        assert!(p.is_applied(12) && p.is_applied(13) && !p.is_applied(11));
        assert!(p.gaps.contains_key(&11));
        // 11 commits and is applied: the cursor moves past all three.
        p.applied(&[11]);
        assert_eq!(p.low, 13);
        assert!(p.gaps.is_empty() && p.done.is_empty());
    }

    #[test]
    fn an_id_that_never_commits_is_given_up_after_the_grace_period() {
        let mut p = Progress::default();
        p.reset(0, BTreeSet::new(), 0);
        p.applied(&[1, 3]);
        assert_eq!(p.low, 1);
        // Pretend 2 was first missed long ago (a rolled-back transaction).
        p.gaps
            .insert(2, Instant::now() - GAP_GRACE - Duration::from_secs(1));
        p.advance();
        assert_eq!(p.low, 3);
    }

    #[test]
    fn a_full_load_counts_the_ids_it_saw_as_applied() {
        let mut p = Progress::default();
        // Window 100..=105 with 103 missing (in flight during the load).
        p.reset(99, [100, 101, 102, 104, 105].into_iter().collect(), 105);
        assert_eq!(p.low, 102);
        assert!(p.is_applied(104) && !p.is_applied(103));
        p.applied(&[103]);
        assert_eq!(p.low, 105);
    }
}
