//! One delivery worker per enabled SIP server: its cursor over the change log, the batches it
//! applies, full loads, failure and backoff.
//!
//! The cursor ([`crate::changes::follow`]) copes with ids that commit out of order
//! (PostgreSQL, several writers): an id missing below the highest one applied is waited for
//! until it is certain never to appear, and `applied_change_id` only moves past it then. A
//! failure never moves the saved cursor back. Every write of the worker's outcome is fenced
//! by its lease: a node that lost the lease cannot overwrite a newer owner's progress.

use std::{
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
use crate::changes::follow::{self, Cursor};
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::{sipservers as st, Lease, Store};

/// Changes read per batch.
const BATCH: i64 = 500;
/// Idle poll, for changes written by other processes (the CLI, other nodes) when no wake-up
/// arrives.
const POLL: Duration = Duration::from_secs(1);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
const FULL_LOAD_TIMEOUT: Duration = Duration::from_secs(1800);
/// How often, at most, a worker reads its state (whether a full load was asked for).
const STATE_EVERY: Duration = Duration::from_millis(100);

/// The duty (lease name) of delivering to one server.
pub(super) fn duty(target: i64) -> String {
    format!("sipserver:{target}")
}

/// A target's live status, shared between its worker and the requests waiting for it.
pub struct Status {
    pub id: i64,
    pub name: String,
    pub(super) progress: Mutex<Cursor>,
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
            progress: Mutex::new(Cursor::default()),
            failing: AtomicBool::new(false),
            behind: AtomicBool::new(false),
            leased: AtomicBool::new(false),
            changed: Notify::new(),
            kick: Notify::new(),
        }
    }
    pub(super) fn is_applied(&self, id: i64) -> bool {
        self.progress.lock().expect("progress lock").is_consumed(id)
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
    // Its reads on connections of its own, opened here: on its lane, next to it.
    let store = store.with_own_readers(2).await;
    let mut backoff = Backoff(0);
    loop {
        // Across nodes, one delivers to a target at a time.
        let mut lease = match store.try_lease(&duty(t.id)).await {
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
        // Where delivery stands, as the last owner (this node or another) saved it: a new
        // tenure never starts behind it, so the saved cursor never moves back.
        let state = async {
            let mut c = store.read().await?;
            st::delivered(&mut c, t.id).await
        }
        .await;
        match state {
            Ok(d) => {
                let d = d.unwrap_or_default();
                *status.progress.lock().expect("progress lock") =
                    Cursor::saved(d.low, d.hi, &d.gaps);
            }
            Err(e) => {
                tracing::warn!(target = %t.name, error = %e, "sipserver: cannot read its state");
                lease.release().await;
                tokio::time::sleep(backoff.next()).await;
                continue;
            }
        }
        status.leased.store(true, Ordering::Relaxed);
        let err = match deliver_loop(&store, &cipher, &t, &status, &mut backoff, &mut lease).await {
            Stop::Stale => {
                status.failing.store(true, Ordering::Relaxed);
                status.changed.notify_waiters();
                lease.release().await;
                return;
            }
            Stop::Failed(e) => e,
        };
        status.failing.store(true, Ordering::Relaxed);
        status.changed.notify_waiters();
        let msg = describe(&err);
        tracing::warn!(target = %t.name, error = %msg, "sipserver: delivery failed, will retry");
        if let Ok(mut tx) = store.begin().await {
            // A lost lease is the new owner's to report.
            if lease.fence(&mut tx).await.is_ok()
                && st::save_error(&mut tx, t.id, &msg).await.is_ok()
            {
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
        lease.release().await;
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
        let mut last_state: Option<Instant> = None;
        loop {
            if !lease.alive().await {
                return Err(Stop::Failed(Error::Unavailable(
                    "lost the delivery lease".into(),
                )));
            }
            // A full load asked for (by a request here or on another node) is looked for at
            // most every STATE_EVERY, not before every batch while changes flow; a batch
            // holding a change that asks for one looks at once (see `step`).
            let generation = if last_state.is_none_or(|at| at.elapsed() >= STATE_EVERY) {
                last_state = Some(Instant::now());
                full_load_asked(store, t.id).await?
            } else {
                0
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
                    full_load(store, cipher, t, &layout, &db, status, generation, lease),
                )
                .await
                .map_err(|_| Error::Unavailable("timed out during a full load".into()))??;
                pending.merge(domains);
                // The load counts what it saw as applied: the requests waiting look again.
                status.changed.notify_waiters();
            }
            // A target that stops answering mid-statement must not hold the worker forever.
            let began = std::time::Instant::now();
            let Some((progressed, applied, ids, settles)) = tokio::time::timeout(
                STEP_TIMEOUT,
                step(store, cipher, t, &layout, &db, status, lease),
            )
            .await
            .map_err(|_| Error::Unavailable("timed out applying a batch".into()))??
            else {
                // A full load was asked for with the batch: done first, on the next round.
                last_state = None;
                continue;
            };
            pending.merge(applied);
            if !pending.is_empty() {
                // Best effort: the rows are in; a server that cannot reload now gets it later,
                // and its error shows in the status, but subscribers keep flowing.
                let regs = !pending.reg_refresh.is_empty() || !pending.reg_remove.is_empty();
                let tables = std::mem::take(&mut pending.tables);
                let outcome = after_apply(t, &mut pending).await;
                note_tables(store, t, lease, &tables, &pending, outcome.as_ref().err()).await?;
                if regs {
                    next_reg_poll = Instant::now() + Duration::from_millis(300);
                }
                match outcome {
                    Ok(()) => {}
                    Err(e) => {
                        let msg = format!("reload: {}", clean(&e));
                        tracing::warn!(target = %t.name, error = %msg, "sipserver");
                        let mut tx = store.begin().await?;
                        lease.fence(&mut tx).await?;
                        st::save_error(&mut tx, t.id, &msg).await?;
                        tx.commit().await?;
                    }
                }
            }
            mark_applied(store, t, status, lease, &ids, &settles).await?;
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
                lease.fence(&mut tx).await?;
                announce_state(&mut tx, t, "sipserver.caught_up", None).await?;
                tx.commit().await?;
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
    lease: &Lease,
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
    lease.fence(&mut tx).await?;
    st::save_tables(&mut tx, t.id, &serde_json::Value::Object(map).to_string()).await?;
    tx.commit().await?;
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

/// Loads everything, then starts the cursor where the load stands. Returns whether `domain`
/// rows changed.
///
/// Every change id drawn before the load began is settled first (on PostgreSQL: the
/// transactions that drew them have ended), so the load's read contains each of them that
/// exists; those drawn after are followed as usual, the ones the load already saw counted
/// as applied.
#[allow(clippy::too_many_arguments)]
async fn full_load(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    status: &Status,
    generation: i64,
    lease: &Lease,
) -> Result<Applied> {
    let (drawn, gate) = store.drawn_change_id().await?;
    if let Some(gate) = gate {
        let mut waited = Instant::now();
        while !store.ended_before(gate).await? {
            if waited.elapsed() > Duration::from_secs(30) {
                tracing::warn!(target = %t.name, "sipserver: full load waits for a long transaction to end");
                waited = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let (horizon, recent) = {
        let mut c = store.read().await?;
        let h = st::max_change_id(&mut c).await?;
        (h, st::change_ids_between(&mut c, drawn, h).await?)
    };
    let diffs = diff_full(store, cipher, t, layout, db).await?;
    let n = diffs.len();
    let domains = db
        .apply(layout, &diffs)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let (low, hi, gaps) = {
        let mut p = status.progress.lock().expect("progress lock");
        let mut fresh = Cursor::default();
        fresh.reset(drawn, &recent.into_iter().collect(), horizon.max(drawn));
        // Never behind what was already applied.
        if fresh.low() >= p.low() {
            *p = fresh;
        }
        (p.low(), p.hi(), p.gap_ids())
    };
    let mut tx = store.begin().await?;
    lease.fence(&mut tx).await?;
    st::save_progress(&mut tx, t.id, low, hi, &gaps, Some(generation)).await?;
    tx.commit().await?;
    tracing::info!(target = %t.name, changes = n, "sipserver: full load done");
    Ok(domains)
}

/// One batch: returns whether anything was read, what the server must be told, the changes
/// it held (to be marked applied once the server was told) and the gaps it settled; or
/// nothing, without applying it, when a full load asked for must be done first.
async fn step(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    status: &Status,
    lease: &Lease,
) -> Result<Option<(bool, Applied, Vec<i64>, Vec<i64>)>> {
    let gaps = status
        .progress
        .lock()
        .expect("progress lock")
        .needs_horizon();
    let horizon = follow::horizon(store, gaps).await?;
    let plan = status.progress.lock().expect("progress lock").plan(horizon);
    let batch = follow::fetch(store, &plan, BATCH, true).await?;
    if batch.is_empty() {
        let settled = {
            let mut p = status.progress.lock().expect("progress lock");
            let before = p.gaps();
            p.settled(&plan.settles);
            p.gaps() != before
        };
        if settled {
            save(store, t, status, lease).await?;
        }
        return Ok(Some((false, Applied::default(), Vec::new(), Vec::new())));
    }
    // Some changes come with a full load asked for in their transaction (a home server
    // changed: its proxies route to it by their own rows; a snapshot restored). Read after the
    // batch, the state shows it: the request waiting for such a change is not told it is
    // applied before the load is done.
    if batch
        .iter()
        .any(|c| st::FULL_LOAD_RESOURCES.contains(&c.resource.as_str()))
        && full_load_asked(store, t.id).await? > 0
    {
        return Ok(None);
    }
    // The server's own tables cannot check an epoch: make sure, just before writing them,
    // that the lease still holds (a node that lost it stops here).
    if !lease.alive().await {
        return Err(Error::Unavailable("lost the delivery lease".into()));
    }
    let applied = deliver(store, cipher, t, layout, db, &batch).await?;
    Ok(Some((
        true,
        applied,
        batch.iter().map(|c| c.id).collect(),
        plan.settles,
    )))
}

/// The full load asked for of a server and not done yet (the request count it clears), or 0.
async fn full_load_asked(store: &Store, id: i64) -> Result<i64> {
    let mut c = store.read().await?;
    Ok(st::state(&mut c, id).await?.map_or(0, |s| s.1))
}

/// Marks a batch's changes applied (after the server was told to reload what it caches, so
/// that a waiting request returns once the server acts on its change). The requests waiting
/// on this node are told before the progress is saved: what they wait for is on the server
/// already, and a progress lost to a crash only means the same rows are written again.
async fn mark_applied(
    store: &Store,
    t: &TargetCfg,
    status: &Status,
    lease: &Lease,
    ids: &[i64],
    settles: &[i64],
) -> Result<()> {
    if ids.is_empty() && settles.is_empty() {
        return Ok(());
    }
    {
        let mut p = status.progress.lock().expect("progress lock");
        p.consumed(ids);
        p.settled(settles);
    }
    status.changed.notify_waiters();
    save(store, t, status, lease).await
}

async fn save(store: &Store, t: &TargetCfg, status: &Status, lease: &Lease) -> Result<()> {
    let (low, hi, gaps) = {
        let p = status.progress.lock().expect("progress lock");
        (p.low(), p.hi(), p.gap_ids())
    };
    let mut tx = store.begin().await?;
    lease.fence(&mut tx).await?;
    st::save_progress(&mut tx, t.id, low, hi, &gaps, None).await?;
    tx.commit().await?;
    Ok(())
}
