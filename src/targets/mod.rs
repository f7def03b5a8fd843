//! SIP targets: make what voxprov holds true in each Kamailio's or OpenSIPS's own tables.
//!
//! One worker per enabled server follows the change log with its own cursor. For each batch of
//! changes it works out which identities (username@domain), numbers and domains were touched,
//! computes what the server should hold for them from voxprov's *current* state, reads what it
//! does hold, and applies the difference in one transaction on the target. Deriving from the
//! current state makes delivery idempotent and convergent: replaying a batch, or applying one
//! after a later change, lands on the same rows. A failing server only stops its own worker,
//! which retries with backoff; the others go on. A new (or reconfigured) server gets a full
//! load, which is the same diff over everything — the diff `sync check` reports and `sync
//! repair` applies.
//!
//! The cursor copes with ids that commit out of order (PostgreSQL, several writers): ids seen
//! missing below the highest one applied are watched for a grace period before they are
//! taken as rolled back, and `applied_change_id` only moves past them then.

pub mod config;
pub mod db;
pub mod rows;
pub mod rpc;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;
use utoipa::ToSchema;

use self::config::{Layout, Role, TargetCfg};
use self::db::{Scope, TargetDb};
use self::rows::{Difference, Rows, SubView};
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::{numbers, sipservers as st, Conn, Store};

/// Changes read per batch.
const BATCH: i64 = 500;
/// How long an id missing below applied ones is waited for before it counts as rolled back.
const GAP_GRACE: Duration = Duration::from_secs(10);
/// How far back a full load looks for changes that may still commit (see module docs).
const FULL_LOAD_WINDOW: i64 = 1000;
/// Idle poll, for changes written by other processes (the CLI, other nodes).
const POLL: Duration = Duration::from_secs(1);
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
const LEASE_BASE: i64 = 0x766f_7870_0000;

/// The part of a target's progress that waiters look at.
#[derive(Default)]
struct Progress {
    /// Every change up to here is applied (or was never going to exist).
    low: i64,
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
    fn is_applied(&self, id: i64) -> bool {
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
    progress: Mutex<Progress>,
    /// The last attempt failed: requests do not wait for it.
    failing: AtomicBool,
    /// This node holds the target's lease (another node delivers otherwise).
    leased: AtomicBool,
    /// Progress was made (waiters re-check).
    changed: Notify,
    /// New changes may be waiting (the worker looks now rather than at its next poll).
    kick: Notify,
}

impl Status {
    fn is_applied(&self, id: i64) -> bool {
        self.progress.lock().expect("progress lock").is_applied(id)
    }
}

struct Worker {
    fingerprint: String,
    status: Arc<Status>,
    handle: tokio::task::JoinHandle<()>,
}

/// The delivery machinery: one per process.
pub struct Targets {
    store: Store,
    cipher: Cipher,
    wait: Duration,
    workers: Mutex<HashMap<i64, Worker>>,
    config_changed: Notify,
}

impl Targets {
    pub fn new(store: Store, cipher: Cipher, wait: Duration) -> Arc<Targets> {
        Arc::new(Targets {
            store,
            cipher,
            wait,
            workers: Mutex::new(HashMap::new()),
            config_changed: Notify::new(),
        })
    }

    /// Keeps one worker per enabled server, restarting a worker whose configuration
    /// changed, until the process ends.
    pub async fn supervise(self: Arc<Self>) {
        loop {
            if let Err(e) = self.sync_workers().await {
                tracing::warn!(error = %e, "sipservers: cannot load the configuration");
            }
            tokio::select! {
                _ = self.config_changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            }
        }
    }

    /// The sipservers changed (called after the API commits such a change).
    pub fn reconfigure(&self) {
        self.config_changed.notify_one();
    }

    /// New changes were committed.
    pub fn kick(&self) {
        for w in self.workers.lock().expect("workers lock").values() {
            w.status.kick.notify_one();
        }
    }

    pub fn stop(&self) {
        for (_, w) in self.workers.lock().expect("workers lock").drain() {
            w.handle.abort();
        }
    }

    async fn sync_workers(self: &Arc<Self>) -> Result<()> {
        let cfgs = load_targets(&self.store, &self.cipher).await?;
        let mut workers = self.workers.lock().expect("workers lock");
        let wanted: HashMap<i64, &TargetCfg> = cfgs
            .iter()
            .filter(|t| t.enabled)
            .map(|t| (t.id, t))
            .collect();
        workers.retain(|id, w| {
            let keep = wanted
                .get(id)
                .is_some_and(|t| t.fingerprint == w.fingerprint);
            if !keep {
                w.handle.abort();
            }
            keep
        });
        for (id, t) in wanted {
            if workers.contains_key(&id) {
                continue;
            }
            let status = Arc::new(Status {
                id,
                name: t.name.clone(),
                progress: Mutex::new(Progress::default()),
                failing: AtomicBool::new(false),
                leased: AtomicBool::new(false),
                changed: Notify::new(),
                kick: Notify::new(),
            });
            let handle = tokio::spawn(run_worker(
                self.store.clone(),
                self.cipher.clone(),
                t.clone(),
                status.clone(),
            ));
            workers.insert(
                id,
                Worker {
                    fingerprint: t.fingerprint.clone(),
                    status,
                    handle,
                },
            );
        }
        Ok(())
    }

    /// Waits (bounded by the configured time) until change `id` is applied on every enabled
    /// target that is reachable; returns the names of those that are behind.
    pub async fn wait_applied(&self, id: i64) -> Vec<String> {
        let statuses: Vec<Arc<Status>> = self
            .workers
            .lock()
            .expect("workers lock")
            .values()
            .map(|w| w.status.clone())
            .collect();
        if statuses.is_empty() {
            return Vec::new();
        }
        for s in &statuses {
            s.kick.notify_one();
        }
        let deadline = tokio::time::Instant::now() + self.wait;
        let mut behind = Vec::new();
        for s in statuses {
            loop {
                let notified = s.changed.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();
                if s.leased.load(Ordering::Relaxed) {
                    if s.is_applied(id) {
                        break;
                    }
                } else if self.applied_elsewhere(s.id, id).await {
                    break;
                }
                if s.failing.load(Ordering::Relaxed) || tokio::time::Instant::now() >= deadline {
                    behind.push(s.name.clone());
                    break;
                }
                // Another node delivers when this one holds no lease: poll its progress.
                let poll = if s.leased.load(Ordering::Relaxed) {
                    deadline
                } else {
                    (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline)
                };
                tokio::select! {
                    _ = &mut notified => {}
                    _ = tokio::time::sleep_until(poll) => {}
                }
            }
        }
        behind.sort();
        behind
    }

    async fn applied_elsewhere(&self, target: i64, id: i64) -> bool {
        let Ok(mut c) = self.store.read().await else {
            return false;
        };
        matches!(st::state(&mut c, target).await, Ok(Some((applied, _))) if applied >= id)
    }

    /// Differences between voxprov and one server's tables; with `repair`, also mends them.
    pub async fn check(&self, id: i64, repair: bool) -> Result<CheckReport> {
        let t = load_targets(&self.store, &self.cipher)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| Error::not_found("sipserver"))?;
        check_target(&self.store, &self.cipher, &t, repair).await
    }
}

/// What `sync check` / `sync repair` found on one server.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckReport {
    pub sipserver_id: i64,
    pub name: String,
    pub schema_version: i64,
    /// Number of differences found.
    pub count: usize,
    /// Whether they were applied.
    pub repaired: bool,
    pub differences: Vec<Difference>,
}

/// Journals a repair (by the API's actor, or the system for the CLI).
pub async fn journal_repair(store: &Store, r: &CheckReport) -> Result<()> {
    journal_repair_as(store, &crate::model::Actor::system(), r).await
}

pub async fn journal_repair_as(
    store: &Store,
    actor: &crate::model::Actor,
    r: &CheckReport,
) -> Result<()> {
    let after = serde_json::json!({
        "name": r.name, "repaired": r.count, "differences": r.differences,
    });
    let mut tx = store.begin().await?;
    crate::changes::record(
        &mut tx,
        actor,
        crate::changes::Change {
            resource: "sipservers",
            object_id: r.sipserver_id,
            reseller_id: None,
            op: crate::changes::Op::Repair,
            before: None,
            after: Some(&after),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub async fn load_targets(store: &Store, cipher: &Cipher) -> Result<Vec<TargetCfg>> {
    let mut c = store.read().await?;
    let rows = st::all(&mut c).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let doms = st::domains_of(&mut c, &ids).await?;
    rows.iter()
        .map(|r| {
            let d: Vec<String> = doms
                .iter()
                .filter(|(s, _, _)| *s == r.id)
                .map(|(_, _, n)| n.clone())
                .collect();
            TargetCfg::from_row(r, d, cipher)
        })
        .collect()
}

pub async fn check_target(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    repair: bool,
) -> Result<CheckReport> {
    let db = TargetDb::connect(&t.db_url)
        .await
        .map_err(|e| Error::Unavailable(format!("sipserver {}: {}", t.name, clean(&e))))?;
    let result = async {
        let layout = layout_of(store, t, &db).await?;
        let diffs = diff_full(store, cipher, t, &layout, &db).await?;
        if repair {
            let reload = db.apply(&layout, &diffs).await.map_err(|e| {
                Error::Unavailable(format!("sipserver {}: {}", t.name, clean(&e.into())))
            })?;
            if reload {
                reload_domains(t).await.map_err(|e| {
                    Error::Unavailable(format!("sipserver {}: {}", t.name, clean(&e)))
                })?;
            }
        }
        Ok(CheckReport {
            sipserver_id: t.id,
            name: t.name.clone(),
            schema_version: layout.version,
            count: diffs.len(),
            repaired: repair,
            differences: diffs,
        })
    }
    .await;
    db.close().await;
    result
}

/// An error's text for an operator, without a password that a driver may have echoed.
fn clean(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.split_whitespace()
        .map(|w| {
            if w.contains("://") {
                config::mask_url(w)
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

async fn layout_of(store: &Store, t: &TargetCfg, db: &TargetDb) -> Result<Layout> {
    let detected = db.detect_version().await.ok().flatten();
    if let Ok(mut tx) = store.begin().await {
        if st::set_detected_version(&mut tx, t.id, detected)
            .await
            .is_ok()
        {
            let _ = tx.commit().await;
        }
    }
    let v = t
        .schema_version
        .or(detected)
        .unwrap_or_else(|| t.driver.default_version());
    Ok(Layout::new(t.driver, v))
}

async fn reload_domains(t: &TargetCfg) -> anyhow::Result<()> {
    match &t.rpc_url {
        Some(u) => rpc::call(u, t.driver.domain_reload()).await.map(|_| ()),
        None => {
            tracing::debug!(target = %t.name, "no rpc_url: the domain table is not reloaded");
            Ok(())
        }
    }
}

/// Home servers' SIP addresses, for front proxies' routing rows.
async fn homes(c: &mut Conn) -> Result<BTreeMap<i64, String>> {
    Ok(st::all(c)
        .await?
        .into_iter()
        .filter(|s| s.role == "home")
        .filter_map(|s| s.sip_address.map(|a| (s.id, a)))
        .collect())
}

async fn sub_views(
    c: &mut Conn,
    cipher: &Cipher,
    states: Vec<st::SubscriberState>,
) -> Result<Vec<SubView>> {
    let ids: Vec<i64> = states.iter().map(|s| s.id).collect();
    let nums = numbers::for_subscribers(c, &ids).await?;
    let mut by_sub: HashMap<i64, Vec<String>> = HashMap::new();
    for n in nums {
        if let Some(s) = n.subscriber_id {
            by_sub
                .entry(s)
                .or_default()
                .push(format!("{}{}{}", n.cc, n.ac, n.sn));
        }
    }
    states
        .into_iter()
        .map(|s| {
            let password = s
                .password_enc
                .as_deref()
                .map(|p| cipher.decrypt(p))
                .transpose()?
                .unwrap_or_default();
            Ok(SubView {
                usable: s.status == "active" && s.lock_level < 4 && s.customer_status == "active",
                numbers: by_sub.remove(&s.id).unwrap_or_default(),
                uuid: s.uuid,
                username: s.username,
                domain: s.domain,
                password,
                home_server_id: s.home_server_id,
            })
        })
        .collect()
}

fn owned_domains(t: &TargetCfg, all: Vec<String>) -> Vec<String> {
    all.into_iter().filter(|d| t.serves(d)).collect()
}

async fn diff_full(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
) -> Result<Vec<Difference>> {
    let mut c = store.read().await?;
    let domains = owned_domains(t, st::domain_names(&mut c).await?);
    let homes = homes(&mut c).await?;
    let mut desired = Rows::new();
    rows::desired_domains(t, &domains, &mut desired);
    let mut after = 0;
    loop {
        let page = st::subscriber_states_page(&mut c, after, 5000).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        let views = sub_views(&mut c, cipher, page).await?;
        rows::desired_for_subscribers(t, layout, &homes, &views, &mut desired);
    }
    drop(c);
    let actual = db
        .read(layout, &Scope::All, &domains, &t.managed_attributes())
        .await
        .map_err(|e| Error::Unavailable(format!("sipserver {}: {}", t.name, clean(&e.into()))))?;
    Ok(rows::diff(layout, &desired, &actual))
}

/// What a batch of changes touched.
#[derive(Default)]
struct Touched {
    sub_ids: BTreeSet<i64>,
    identities: BTreeSet<(String, String)>,
    aliases: BTreeSet<(String, String)>,
    domains: BTreeSet<String>,
}

fn parse(v: &Option<String>) -> Option<Value> {
    v.as_deref().and_then(|s| serde_json::from_str(s).ok())
}

fn digits(n: &Value) -> Option<String> {
    Some(format!(
        "{}{}{}",
        n.get("cc")?.as_str()?,
        n.get("ac")?.as_str().unwrap_or(""),
        n.get("sn")?.as_str()?
    ))
}

async fn touched(c: &mut Conn, changes: &[st::ChangeRow]) -> Result<Touched> {
    let mut t = Touched::default();
    for ch in changes {
        let snaps: Vec<Value> = [parse(&ch.before), parse(&ch.after)]
            .into_iter()
            .flatten()
            .collect();
        match ch.resource.as_str() {
            "subscribers" => {
                t.sub_ids.insert(ch.object_id);
                for s in &snaps {
                    let (Some(u), Some(d)) = (s["username"].as_str(), s["domain"].as_str()) else {
                        continue;
                    };
                    t.identities.insert((u.to_string(), d.to_string()));
                    let nums = s["alias_numbers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(std::iter::once(&s["primary_number"]));
                    for n in nums {
                        if let Some(dg) = digits(n) {
                            t.aliases.insert((dg, d.to_string()));
                        }
                    }
                }
            }
            "numbers" => {
                for s in &snaps {
                    if let Some(id) = s["subscriber_id"].as_i64() {
                        t.sub_ids.insert(id);
                    }
                }
            }
            "customers" => {
                let status: BTreeSet<Option<&str>> =
                    snaps.iter().map(|s| s["status"].as_str()).collect();
                if status.len() > 1 {
                    t.sub_ids
                        .extend(st::subscriber_ids_of_customer(c, ch.object_id).await?);
                }
            }
            "domains" => {
                for s in &snaps {
                    if let Some(d) = s["domain"].as_str() {
                        t.domains.insert(d.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    Ok(t)
}

/// Applies one batch of changes to one target. Returns whether `domain` rows changed.
async fn deliver(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    changes: &[st::ChangeRow],
) -> Result<bool> {
    let mut c = store.read().await?;
    let mut tc = touched(&mut c, changes).await?;
    if tc.sub_ids.is_empty() && tc.identities.is_empty() && tc.domains.is_empty() {
        return Ok(false);
    }
    let idents: Vec<(String, String)> = tc.identities.iter().cloned().collect();
    tc.sub_ids
        .extend(st::ids_by_identity(&mut c, &idents).await?);
    let ids: Vec<i64> = tc.sub_ids.iter().copied().collect();
    tc.identities.extend(st::identities(&mut c, &ids).await?);
    let states = st::subscriber_states(&mut c, &ids).await?;
    let views = sub_views(&mut c, cipher, states).await?;
    let domains = owned_domains(t, st::domain_names(&mut c).await?);
    let homes = homes(&mut c).await?;
    drop(c);
    let mut desired = Rows::new();
    rows::desired_for_subscribers(t, layout, &homes, &views, &mut desired);
    let known: Vec<String> = tc
        .domains
        .iter()
        .filter(|d| domains.contains(d))
        .cloned()
        .collect();
    rows::desired_domains(t, &known, &mut desired);
    for (table, key) in desired.keys() {
        if *table == rows::Table::Dbaliases {
            tc.aliases.insert((key[0].clone(), key[1].clone()));
        }
    }
    let scope = Scope::Some {
        identities: tc.identities.into_iter().collect(),
        aliases: tc.aliases.into_iter().collect(),
        domains: tc.domains.into_iter().collect(),
    };
    let actual = db
        .read(layout, &scope, &domains, &t.managed_attributes())
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    let diffs = rows::diff(layout, &desired, &actual);
    db.apply(layout, &diffs)
        .await
        .map_err(|e| Error::Internal(e.into()))
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

async fn run_worker(store: Store, cipher: Cipher, t: TargetCfg, status: Arc<Status>) {
    let mut backoff = Backoff(0);
    loop {
        // Across nodes, one delivers to a target at a time.
        let lease = match store.try_lease(LEASE_BASE + t.id).await {
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
        let err = deliver_loop(&store, &cipher, &t, &status, &mut backoff).await;
        status.failing.store(true, Ordering::Relaxed);
        status.changed.notify_waiters();
        let msg = clean(&anyhow::anyhow!("{err}"));
        tracing::warn!(target = %t.name, error = %msg, "sipserver: delivery failed, will retry");
        let applied = status.progress.lock().expect("progress lock").low;
        if let Ok(mut tx) = store.begin().await {
            if st::save_progress(&mut tx, t.id, applied, false, Some(&msg))
                .await
                .is_ok()
            {
                let _ = tx.commit().await;
            }
        }
        drop(lease);
        tokio::time::sleep(backoff.next()).await;
    }
}

/// Delivers until something fails; returns the failure.
async fn deliver_loop(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    status: &Status,
    backoff: &mut Backoff,
) -> Error {
    let db = match TargetDb::connect(&t.db_url).await {
        Ok(db) => db,
        Err(e) => return Error::Unavailable(clean(&e)),
    };
    let r = async {
        let layout = layout_of(store, t, &db).await?;
        // Whatever it caches may be stale after an outage or a restart.
        reload_domains(t).await.map_err(Error::Internal)?;
        let (applied, full) = {
            let mut c = store.read().await?;
            st::state(&mut c, t.id).await?.unwrap_or((0, true))
        };
        if !full {
            // Everything after the saved cursor is read again (applying twice is harmless).
            let mut p = status.progress.lock().expect("progress lock");
            p.reset(applied, BTreeSet::new(), applied);
        }
        let mut need_full = full;
        loop {
            if need_full {
                full_load(store, cipher, t, &layout, &db, status).await?;
                need_full = false;
            } else {
                let (_, again) = {
                    let mut c = store.read().await?;
                    st::state(&mut c, t.id).await?.unwrap_or((0, false))
                };
                if again {
                    need_full = true;
                    continue;
                }
            }
            // A target that stops answering mid-statement must not hold the worker forever.
            let progressed =
                tokio::time::timeout(STEP_TIMEOUT, step(store, cipher, t, &layout, &db, status))
                    .await
                    .map_err(|_| Error::Unavailable("timed out applying a batch".into()))??;
            status.failing.store(false, Ordering::Relaxed);
            *backoff = Backoff(0);
            status.changed.notify_waiters();
            if !progressed {
                tokio::select! {
                    _ = status.kick.notified() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
        #[allow(unreachable_code)]
        Ok::<(), Error>(())
    }
    .await;
    db.close().await;
    match r {
        Err(e) => e,
        Ok(()) => Error::Unavailable("worker stopped".into()),
    }
}

async fn full_load(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    status: &Status,
) -> Result<()> {
    let (horizon, recent) = {
        let mut c = store.read().await?;
        let h = st::max_change_id(&mut c).await?;
        let from = (h - FULL_LOAD_WINDOW).max(0);
        (h, (from, st::change_ids_between(&mut c, from, h).await?))
    };
    let diffs = diff_full(store, cipher, t, layout, db).await?;
    let n = diffs.len();
    let reload = db
        .apply(layout, &diffs)
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    if reload {
        reload_domains(t).await.map_err(Error::Internal)?;
    }
    let low = {
        let mut p = status.progress.lock().expect("progress lock");
        p.reset(recent.0, recent.1.into_iter().collect(), horizon);
        p.low
    };
    let mut tx = store.begin().await?;
    st::save_progress(&mut tx, t.id, low, true, None).await?;
    tx.commit().await?;
    tracing::info!(target = %t.name, changes = n, "sipserver: full load done");
    Ok(())
}

/// One batch: returns whether anything was read.
async fn step(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    status: &Status,
) -> Result<bool> {
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
        let (before, after) = {
            let mut p = status.progress.lock().expect("progress lock");
            let before = p.low;
            p.advance();
            (before, p.low)
        };
        if after != before {
            save(store, t, after).await?;
        }
        return Ok(false);
    }
    let reload = deliver(store, cipher, t, layout, db, &batch).await?;
    if reload {
        reload_domains(t).await.map_err(Error::Internal)?;
    }
    let ids: Vec<i64> = batch.iter().map(|c| c.id).collect();
    let low = {
        let mut p = status.progress.lock().expect("progress lock");
        p.applied(&ids);
        p.low
    };
    save(store, t, low).await?;
    Ok(true)
}

async fn save(store: &Store, t: &TargetCfg, low: i64) -> Result<()> {
    let mut tx = store.begin().await?;
    st::save_progress(&mut tx, t.id, low, false, None).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether a server of this role may be given as a subscriber's home.
pub fn can_be_home(role: &str) -> bool {
    Role::parse("role", role).is_ok_and(|r| r == Role::Home)
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
