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
//! repair` applies. The worker itself (cursor, batches, backoff) is in [`worker`].

pub mod cdrs;
pub mod config;
pub mod db;
pub mod pbx;
pub mod routing;
pub mod rows;
pub mod rpc;
mod worker;

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::{atomic::Ordering, Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::Notify;
use utoipa::ToSchema;

use self::worker::{run_worker, Status};

use self::config::{Layout, TargetCfg};
use self::db::{Applied, Scope, TargetDb};
use self::rows::{Difference, Rows, SubView};
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::{numbers, sipservers as st, Conn, Store};

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

    /// Another node saved a server's progress: requests waiting here for it look again.
    pub fn progress_changed(&self) {
        for w in self.workers.lock().expect("workers lock").values() {
            w.status.changed.notify_waiters();
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
            // A worker that ended (stale configuration, or a panic) is started afresh.
            let keep = !w.handle.is_finished()
                && wanted
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
            let status = Arc::new(Status::new(id, t.name.clone()));
            let handle = self.store.spawn_on_own_lane(run_worker(
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
                let mut failing = s.failing.load(Ordering::Relaxed);
                if s.leased.load(Ordering::Relaxed) {
                    if s.is_applied(id) {
                        break;
                    }
                } else {
                    if let Some(d) = self.state_elsewhere(s.id).await {
                        if crate::changes::follow::Cursor::saved(d.low, d.hi, &d.gaps)
                            .is_consumed(id)
                        {
                            break;
                        }
                        failing = d.failing;
                    }
                }
                if failing || tokio::time::Instant::now() >= deadline {
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

    /// A target delivered by another node: what it has and whether it is failing, as that
    /// node saved it.
    async fn state_elsewhere(&self, target: i64) -> Option<st::Delivered> {
        let mut c = self.store.read().await.ok()?;
        st::delivered(&mut c, target).await.ok().flatten()
    }

    /// Differences between voxprov and one server's tables.
    pub async fn check(&self, id: i64) -> Result<CheckReport> {
        let t = self.target(id).await?;
        check_target(&self.store, &self.cipher, &t, false).await
    }

    /// Mends one server's tables; see [`repair_target`].
    pub async fn repair(&self, id: i64) -> Result<CheckReport> {
        let t = self.target(id).await?;
        repair_target(&self.store, &self.cipher, &t, REPAIR_WAIT).await
    }

    async fn target(&self, id: i64) -> Result<TargetCfg> {
        load_targets(&self.store, &self.cipher)
            .await?
            .into_iter()
            .find(|t| t.id == id)
            .ok_or_else(|| Error::not_found("sipserver"))
    }
}

const REPAIR_WAIT: Duration = Duration::from_secs(120);

/// Mends one server's tables: reports the differences, then hands them to the delivery
/// worker (of this process or another node) as a full load, so the repair never races the
/// worker's batches. A disabled server, or one no worker takes up within `wait` (no server
/// running), is repaired directly.
pub async fn repair_target(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    wait: Duration,
) -> Result<CheckReport> {
    let mut report = check_target(store, cipher, t, false).await?;
    report.repaired = true;
    if report.count == 0 {
        return Ok(report);
    }
    if t.enabled && full_load_and_wait(store, t.id, wait).await? {
        tracing::info!(target = %t.name, "sipserver: repaired by its delivery worker");
        return Ok(report);
    }
    tracing::info!(target = %t.name, "sipserver: no worker took the repair; applying it directly");
    check_target(store, cipher, t, true).await
}

/// Asks for a full load and waits until a worker (of this process or another) has done it.
/// `Ok(false)`: nobody did within `wait`.
async fn full_load_and_wait(store: &Store, id: i64, wait: Duration) -> Result<bool> {
    let mut tx = store.begin().await?;
    st::request_full_load(&mut tx, Some(id), false).await?;
    tx.commit().await?;
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let pending = {
            let mut c = store.read().await?;
            st::state(&mut c, id).await?.map(|s| s.1).unwrap_or(0)
        };
        if pending == 0 {
            return Ok(true);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// What `sync check` / `sync repair` found on one server.
#[derive(Serialize, ToSchema)]
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
            let mut applied = db.apply(&layout, &diffs).await.map_err(|e| {
                Error::Unavailable(format!("sipserver {}: {}", t.name, clean(&e.into())))
            })?;
            after_apply(t, &mut applied)
                .await
                .map_err(|e| Error::Unavailable(format!("sipserver {}: {}", t.name, clean(&e))))?;
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
pub(crate) fn clean(e: &anyhow::Error) -> String {
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
    Ok(Layout {
        carriers: t.carriers,
        ..Layout::new(t.driver, v)
    })
}

/// Brings the server's running state in line with rows just applied: reloads its `domain`
/// cache, and removes the registrations of subscribers whose rows went (`ul.rm` on
/// Kamailio, `ul_rm` on OpenSIPS), so nobody reaches a contact a locked or terminated
/// subscriber registered before. Without an `rpc_url` there is nothing to tell: the shipped
/// configuration refuses calls to users it does not provision, registered or not.
pub(crate) async fn after_apply(t: &TargetCfg, applied: &mut Applied) -> anyhow::Result<()> {
    let Some(u) = &t.rpc_url else {
        if !applied.is_empty() {
            tracing::debug!(target = %t.name, "no rpc_url: no reload, no registrations removed");
        }
        *applied = Applied {
            tables: std::mem::take(&mut applied.tables),
            ..Applied::default()
        };
        return Ok(());
    };
    // Each call on its own: what went through is dropped from `applied`, what failed stays
    // for the next attempt and does not hold up the others. The first error is returned.
    let mut first: Option<anyhow::Error> = None;
    let mut keep = |r: anyhow::Result<()>| match r {
        Ok(()) => true,
        Err(e) => {
            tracing::debug!(target = %t.name, error = %e, "after apply");
            first.get_or_insert(e);
            false
        }
    };
    if applied.domains && keep(rpc::call(u, t.driver.domain_reload()).await.map(|_| ())) {
        applied.domains = false;
    }
    for r in std::mem::take(&mut applied.reloads) {
        if !keep(reload(u, r.0, r.1).await) {
            applied.reloads.insert(r);
        }
    }
    // Remote registrations one record at a time: a whole-table reload would re-register
    // every trunk (and Kamailio refuses a second one within reg_gc_interval).
    for uuid in std::mem::take(&mut applied.reg_refresh) {
        let r = rpc::call_with(u, "uac.reg_refresh", serde_json::json!([uuid])).await;
        if keep(r.map(|_| ())) {
            tracing::info!(target = %t.name, l_uuid = %uuid, "remote registration refreshed");
        } else {
            applied.reg_refresh.insert(uuid);
        }
    }
    // Unregister first (expires 0 to the registrar), then forget the records — once the
    // un-REGISTERs are answered: a registrar that challenges one is answered with the
    // record's credentials, which are gone once the record is removed (under load the removal
    // could overtake the challenge, leaving the trunk registered until it expired). All are
    // sent, then waited for together.
    let removing = std::mem::take(&mut applied.reg_remove);
    let mut sent = Vec::new();
    for uuid in &removing {
        match rpc::call_with(u, "uac.reg_unregister", serde_json::json!(["l_uuid", uuid])).await {
            Ok(_) => sent.push(uuid.as_str()),
            Err(e) => {
                tracing::debug!(target = %t.name, l_uuid = %uuid, error = %e, "uac.reg_unregister")
            }
        }
    }
    if tokio::time::timeout(UNREGISTER_WAIT, unregistered(u, &sent))
        .await
        .is_err()
    {
        tracing::info!(target = %t.name, records = ?sent, "un-REGISTER not answered in time; records removed anyway");
    }
    for uuid in removing {
        let r = match rpc::call_with(u, "uac.reg_remove", serde_json::json!([uuid])).await {
            Ok(_) => {
                tracing::info!(target = %t.name, l_uuid = %uuid, "remote registration removed");
                Ok(())
            }
            Err(e) if e.to_string().to_ascii_lowercase().contains("not found") => Ok(()),
            Err(e) => Err(e),
        };
        if !keep(r) {
            applied.reg_remove.insert(uuid);
        }
    }
    for (user, domain) in std::mem::take(&mut applied.unregister) {
        let aor = format!("{user}@{domain}");
        let r = match rpc::call_with(
            u,
            t.driver.unregister(),
            serde_json::json!(["location", aor]),
        )
        .await
        {
            Ok(_) => {
                tracing::info!(target = %t.name, %aor, "registrations removed");
                Ok(())
            }
            // Nothing registered: nothing to remove.
            Err(e) if e.to_string().to_ascii_lowercase().contains("not found") => Ok(()),
            Err(e) => Err(e),
        };
        if !keep(r) {
            applied.unregister.insert((user, domain));
        }
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// One reload RPC. dispatcher, permissions and dialplan refuse a reload while an earlier one
/// is younger than their reload_delta (5 s by default; "ongoing reload"): it is tried again
/// for up to 12 s.
async fn reload(u: &str, method: &str, params: &[&str]) -> anyhow::Result<()> {
    let mut tries = 0;
    loop {
        let r = if params.is_empty() {
            rpc::call(u, method).await
        } else {
            rpc::call_with(u, method, serde_json::json!(params)).await
        };
        match r {
            Ok(_) => return Ok(()),
            Err(e)
                if e.to_string()
                    .to_ascii_lowercase()
                    .contains("ongoing reload")
                    && tries < 12 =>
            {
                tracing::debug!(error = %e, method, "reload refused for now; trying again");
                tries += 1;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads each registering peering server's state from the server (`uac.reg_info`) and saves
/// it. Returns whether every one is settled (registered or disabled).
pub(crate) async fn poll_registrations(store: &Store, t: &TargetCfg) -> Result<bool> {
    let Some(u) = &t.rpc_url else { return Ok(true) };
    if t.driver != config::Driver::Kamailio {
        return Ok(true);
    }
    // A server that does not take carriers registers nowhere (and loses any state it had).
    let ids: Vec<i64> = if t.carriers {
        let mut c = store.read().await?;
        sqlx::query_scalar(
            "SELECT id FROM peering_servers WHERE peer_auth_register = 1 AND enabled = 1 ORDER BY id",
        )
        .fetch_all(&mut *c)
        .await?
    } else {
        Vec::new()
    };
    let mut settled = true;
    let mut states = Vec::new();
    for id in ids {
        let uuid = routing::reg_uuid(id);
        let (state, detail) =
            match rpc::call_with(u, "uac.reg_info", serde_json::json!(["l_uuid", uuid])).await {
                Ok(v) => {
                    let (state, detail) = reg_state(&v);
                    settled &= state == "registered" || state == "disabled";
                    (state, detail)
                }
                // No answer (no uac module, the server away): asked again at the slow pace.
                Err(e) => ("unknown".to_string(), Some(clean(&e))),
            };
        states.push((id, state, detail));
    }
    let saved: Vec<(i64, String, Option<String>)> = {
        let mut c = store.read().await?;
        sqlx::query_as(
            "SELECT peering_server_id, state, detail FROM peering_registrations \
             WHERE sipserver_id = $1 ORDER BY peering_server_id",
        )
        .bind(t.id)
        .fetch_all(&mut *c)
        .await?
    };
    // Written only when something changed (the poll runs every second while unsettled).
    if saved != states {
        // States of servers that no longer register here are gone with them.
        let mut tx = store.begin().await?;
        let keep: Vec<String> = states.iter().map(|(id, _, _)| id.to_string()).collect();
        let cond = if keep.is_empty() {
            String::new()
        } else {
            format!(" AND peering_server_id NOT IN ({})", keep.join(", "))
        };
        sqlx::query(&format!(
            "DELETE FROM peering_registrations WHERE sipserver_id = $1{cond}"
        ))
        .bind(t.id)
        .execute(&mut *tx)
        .await?;
        for (id, state, detail) in &states {
            crate::store::peering::save_registration(&mut tx, *id, t.id, state, detail.as_deref())
                .await?;
        }
        tx.commit().await?;
    }
    Ok(settled)
}

/// Returns once none of uac's records `uuids` has a REGISTER in flight (flag 2, set while the
/// un-REGISTER and its challenge's answer are on their way): the un-REGISTERs answered. A
/// record it cannot read is not waited for. The caller bounds the wait.
async fn unregistered(u: &str, uuids: &[&str]) {
    let mut pending: Vec<&str> = uuids.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for uuid in pending {
            if let Ok(v) =
                rpc::call_with(u, "uac.reg_info", serde_json::json!(["l_uuid", uuid])).await
            {
                if v.get("flags")
                    .and_then(Value::as_i64)
                    .is_some_and(|f| f & 2 != 0)
                {
                    still.push(uuid);
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

/// How long a delivery's trunk removals wait for their un-REGISTERs to be answered
/// (together).
const UNREGISTER_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// uac's record flags: 1 disabled, 2 registration ongoing, 4 online (registered), 16 loaded;
/// 0 just refreshed and not yet handled; 16 alone: loaded and not registered (refused,
/// timed out, or unregistered).
fn reg_state(v: &Value) -> (String, Option<String>) {
    let flags = v.get("flags").and_then(Value::as_i64).unwrap_or(-1);
    let state = if flags < 0 {
        "unknown"
    } else if flags & 1 != 0 {
        "disabled"
    } else if flags & 4 != 0 {
        "registered"
    } else if flags == 0 || flags & 2 != 0 {
        "registering"
    } else {
        "failed"
    };
    (state.to_string(), Some(format!("flags={flags}")))
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
    let pairs: Vec<(i64, i64, i64)> = states
        .iter()
        .map(|s| (s.id, s.domain_id, s.customer_id))
        .collect();
    let mut attrs = crate::store::features::delivery_attributes(c, &pairs).await?;
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
            let mut features = attrs.remove(&s.id).unwrap_or_default();
            if (1..4).contains(&s.lock_level) {
                features.push(("lock".into(), s.lock_level.to_string()));
            }
            Ok(SubView {
                features,
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
    let data = crate::store::peering::routing_data(&mut c).await?;
    routing::desired(t, &data, cipher, &mut desired)?;
    drop(c);
    let actual = db
        .read(layout, &Scope::All, &domains, &t.managed_attributes())
        .await
        .map_err(|e| Error::Unavailable(format!("sipserver {}: {}", t.name, clean(&e.into()))))?;
    db.drop_missing(&t.name, &mut desired);
    // Comparing every row is long work without a pause (a second and more at a million
    // subscribers): on a thread of its own, not one of the runtime's.
    let layout = layout.clone();
    tokio::task::spawn_blocking(move || rows::diff(&layout, &desired, &actual))
        .await
        .map_err(Error::internal)
}

/// What a batch of changes touched.
#[derive(Default)]
struct Touched {
    sub_ids: BTreeSet<i64>,
    identities: BTreeSet<(String, String)>,
    aliases: BTreeSet<(String, String)>,
    domains: BTreeSet<String>,
    /// Carriers, rewrite rules or NCOS levels changed.
    routing: bool,
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
    let mut changed_subs = Vec::new();
    for ch in changes {
        let snaps: Vec<Value> = [parse(&ch.before), parse(&ch.after)]
            .into_iter()
            .flatten()
            .collect();
        match ch.resource.as_str() {
            "subscribers" => {
                t.sub_ids.insert(ch.object_id);
                changed_subs.push(ch.object_id);
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
                    // A PBX tenant's rows come and go with its customer.
                    if crate::store::exists(c, "pbx_tenants", "customer_id = $1", ch.object_id)
                        .await?
                    {
                        t.routing = true;
                    }
                }
            }
            // A reseller locked, terminated or back to active: all its subscribers.
            "resellers" => {
                let status: BTreeSet<Option<&str>> =
                    snaps.iter().map(|s| s["status"].as_str()).collect();
                if status.len() > 1 {
                    t.sub_ids
                        .extend(st::subscriber_ids_of_reseller(c, ch.object_id).await?);
                    if crate::store::exists(c, "pbx_tenants", "reseller_id = $1", ch.object_id)
                        .await?
                    {
                        t.routing = true;
                    }
                }
            }
            // Features are keyed by subscriber id; sets name their subscriber.
            "callforwards" | "cfmappings" | "subscriberpreferences" => {
                t.sub_ids.insert(ch.object_id);
            }
            "cfdestinationsets" | "cftimesets" => {
                for s in &snaps {
                    if let Some(id) = s["subscriber_id"].as_i64() {
                        t.sub_ids.insert(id);
                    }
                }
            }
            "customerpreferences" => {
                t.sub_ids
                    .extend(st::subscriber_ids_of_customer(c, ch.object_id).await?);
            }
            "domainpreferences" => {
                t.sub_ids
                    .extend(st::subscriber_ids_of_domain(c, ch.object_id).await?);
            }
            r if routing::is_routing(r) => t.routing = true,
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
    // An extension's subscriber: its name is in the PBX rows (one look for the whole batch).
    if !t.routing && !changed_subs.is_empty() {
        let ext: Vec<(i64,)> = crate::store::fetch_by_ids(
            c,
            "SELECT subscriber_id FROM pbx_extensions WHERE subscriber_id IN ({ids}) LIMIT 1",
            &changed_subs,
        )
        .await?;
        t.routing = !ext.is_empty();
    }
    Ok(t)
}

/// Applies one batch of changes to one target. Returns what the server must be told.
async fn deliver(
    store: &Store,
    cipher: &Cipher,
    t: &TargetCfg,
    layout: &Layout,
    db: &TargetDb,
    changes: &[st::ChangeRow],
) -> Result<Applied> {
    let mut c = store.read().await?;
    let mut tc = touched(&mut c, changes).await?;
    if tc.sub_ids.is_empty() && tc.identities.is_empty() && tc.domains.is_empty() && !tc.routing {
        return Ok(Applied::default());
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
    let mut desired = Rows::new();
    if tc.routing {
        let data = crate::store::peering::routing_data(&mut c).await?;
        routing::desired(t, &data, cipher, &mut desired)?;
    }
    drop(c);
    rows::desired_for_subscribers(t, layout, &homes, &views, &mut desired);
    // A server with a list of domains only ever sees those; one serving all domains also
    // loses the rows of a domain voxprov deleted.
    tc.domains.retain(|d| t.serves(d));
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
        routing: tc.routing,
    };
    let actual = db
        .read(layout, &scope, &domains, &t.managed_attributes())
        .await
        .map_err(|e| Error::Internal(e.into()))?;
    db.drop_missing(&t.name, &mut desired);
    let diffs = rows::diff(layout, &desired, &actual);
    db.apply(layout, &diffs)
        .await
        .map_err(|e| Error::Internal(e.into()))
}
