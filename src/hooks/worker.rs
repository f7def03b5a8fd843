//! The hooks' runtime: the cache of enabled hooks, the delivery worker that empties the
//! outbox, and the writer that records what every attempt did.
//!
//! Delivery: the worker claims due deliveries (a lease in the row, so a crashed node's claims
//! come back after it expires and several nodes can share the work), calls each hook
//! concurrently — at most `max_in_flight_per_hook` per hook, so a hanging receiver only
//! holds its own slots — and hands every answer to the writer, which records the outcome, the
//! execution and the next attempt in batched transactions. An object's deliveries go out in
//! order: one waits while an earlier one of the same object is pending.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::json;
use tokio::sync::{mpsc, Notify};

use super::call::{Caller, HookCfg, Outcome};
use super::now_ms;
use crate::changes::{self, Change, Op};
use crate::config::HooksConfig;
use crate::crypto::Cipher;
use crate::error::Result;
use crate::model::Actor;
use crate::store::hooks::{self as st, DeliveryRow, NewExecution};
use crate::store::Store;

/// How long cached hook settings are trusted before they are read again (other nodes, the
/// CLI). Changes through this node's API are seen at once.
const CACHE_TTL: Duration = Duration::from_secs(2);
/// A claim outlives its hook's timeout by this much, room to record the outcome. A node that
/// dies holding claims delays those deliveries by about this (then they go out again).
const LEASE_MARGIN_MS: i64 = 15_000;
const IDLE_POLL: Duration = Duration::from_millis(500);
/// While a hook that has free slots has calls on their way (answers will keep coming), the
/// worker looks at the outbox at most once per this: every answer and every commit wakes it,
/// and each look is two or three reads that, at each wake-up, mostly found its own deliveries
/// on their way. Otherwise (nothing on its way, or only hooks whose slots are all taken, which
/// it does not read) it looks as soon as it is woken. 5 ms rather than 1: under load a look
/// can take up to five times the deliveries for the same reads (two healthy hooks, medians of
/// four alternating runs: 1,986 writes/s against 1,788, single runs overlapping); the cost is
/// commit → delivery p50 3.9 ms instead of 1.8 (p99 7.5 against 3.5) while events keep coming.
const BUSY_POLL: Duration = Duration::from_millis(5);

struct Cache {
    at: Option<Instant>,
    before: Arc<Vec<HookCfg>>,
    after: Arc<HashMap<i64, HookCfg>>,
}

enum Done {
    /// A before-hook's execution.
    Logged(Box<NewExecution>),
    /// An after-hook delivery attempt.
    Attempt(Box<Attempt>),
}

struct Attempt {
    delivery: DeliveryRow,
    /// The claim it went out under (none where one node has the database to itself).
    claim: Option<Arc<str>>,
    hook: HookCfg,
    exec: NewExecution,
    outcome: Outcome,
    status: Option<i64>,
    retry_after: Option<Duration>,
    /// A failure that a retry cannot mend (the body template fails).
    give_up: bool,
    metadata: Vec<(String, String)>,
}

/// This node's deliveries on their way: sent or being sent, outcome not recorded yet; and
/// those recorded since the current look at the outbox began, which that look (a snapshot
/// taken before) may still see as pending.
#[derive(Default)]
struct Claimed {
    /// Delivery → hook.
    sending: HashMap<i64, i64>,
    recorded: std::collections::HashSet<i64>,
}

impl Claimed {
    fn contains(&self, id: i64) -> bool {
        self.sending.contains_key(&id) || self.recorded.contains(&id)
    }
}

pub struct Hooks {
    pub caller: Caller,
    cfg: HooksConfig,
    store: Store,
    cipher: Cipher,
    cache: Mutex<Cache>,
    kick: Notify,
    in_flight: Mutex<HashMap<i64, usize>>,
    /// Deliveries on their way (sent or being sent, outcome not recorded yet), and those
    /// recorded since the current look at the outbox began.
    claimed: Mutex<Claimed>,
    /// Deliveries in a row whose body template failed, per hook (this node's count).
    template_failures: Mutex<HashMap<i64, u32>>,
    tx: mpsc::UnboundedSender<Done>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Done>>>,
}

impl Hooks {
    pub fn new(cfg: HooksConfig, store: Store, cipher: Cipher) -> Arc<Hooks> {
        let (tx, rx) = mpsc::unbounded_channel();
        Arc::new(Hooks {
            caller: Caller {
                client: super::net::client(cfg.allow_private_targets),
                script_dir: cfg.script_dir.clone(),
                allow_private: cfg.allow_private_targets,
                templates: Arc::new(crate::templating::isolated::Isolated::new(2)),
            },
            cfg,
            store,
            cipher,
            cache: Mutex::new(Cache {
                at: None,
                before: Arc::default(),
                after: Arc::default(),
            }),
            kick: Notify::new(),
            in_flight: Mutex::new(HashMap::new()),
            claimed: Mutex::new(Claimed::default()),
            template_failures: Mutex::new(HashMap::new()),
            tx,
            rx: Mutex::new(Some(rx)),
        })
    }

    pub fn config(&self) -> &HooksConfig {
        &self.cfg
    }

    /// New deliveries may be waiting.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Hooks changed: read them again before the next use.
    pub fn invalidate(&self) {
        self.cache.lock().expect("cache lock").at = None;
    }

    async fn refresh(&self) -> Result<(Arc<Vec<HookCfg>>, Arc<HashMap<i64, HookCfg>>)> {
        {
            let c = self.cache.lock().expect("cache lock");
            if c.at.is_some_and(|t| t.elapsed() < CACHE_TTL) {
                return Ok((c.before.clone(), c.after.clone()));
            }
        }
        let mut conn = self.store.read().await?;
        let before = st::active(&mut conn, "before").await?;
        let after = st::active(&mut conn, "after").await?;
        drop(conn);
        // A hook whose secrets cannot be read (a changed key) is left out and logged, rather
        // than failing every request.
        let usable = |r: &crate::store::hooks::HookRow| match HookCfg::from_row(r, &self.cipher) {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::error!(hook = r.id, error = %e, "hook left out: its secrets cannot be decrypted");
                None
            }
        };
        let before: Vec<HookCfg> = before.iter().filter_map(usable).collect();
        let after: HashMap<i64, HookCfg> =
            after.iter().filter_map(usable).map(|h| (h.id, h)).collect();
        let mut c = self.cache.lock().expect("cache lock");
        c.at = Some(Instant::now());
        c.before = Arc::new(before);
        c.after = Arc::new(after);
        Ok((c.before.clone(), c.after.clone()))
    }

    /// The enabled before-hooks that may take an event of `resource`, in priority order.
    pub async fn before_for(&self, resource: &str) -> Result<Vec<HookCfg>> {
        let (before, _) = self.refresh().await?;
        if before.is_empty() {
            return Ok(Vec::new());
        }
        let s = super::singular(resource);
        let mut names: Vec<String> = ["created", "updated", "deleted"]
            .iter()
            .map(|v| format!("{s}.{v}"))
            .collect();
        names.extend(
            super::LIFECYCLE_EVENTS
                .iter()
                .filter(|(_, r, _)| *r == resource)
                .map(|(e, _, _)| e.to_string()),
        );
        Ok(before
            .iter()
            .filter(|h| names.iter().any(|n| super::matches(&h.events, n)))
            .cloned()
            .collect())
    }

    /// Records before-hooks' executions now; if the database will not take them, the writer
    /// keeps trying in the background.
    pub async fn log_now(&self, execs: Vec<NewExecution>) {
        if execs.is_empty() {
            return;
        }
        let r: Result<()> = async {
            let mut tx = self.store.begin().await?;
            st::insert_executions(&mut tx, &execs).await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if r.is_err() {
            for e in execs {
                let _ = self.tx.send(Done::Logged(Box::new(e)));
            }
        }
    }

    /// Starts the worker and the writer; they run until `stop` is dropped. (Pruning is one
    /// node's housekeeping: [`Hooks::prune`].)
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let rx = self
            .rx
            .lock()
            .expect("rx lock")
            .take()
            .expect("started once");
        let (a, b) = (self.clone(), self.clone());
        // The outcomes' writes hold the single writer: they are made next to it. The writer
        // stops with the worker, aborted or not (its task may live on another runtime).
        let writer = self
            .store
            .spawn_near_writer(async move { a.write_loop(rx).await });
        tokio::spawn(async move {
            let _writer = tokio_util::task::AbortOnDropHandle::new(writer);
            b.dispatch_loop().await;
        })
    }

    async fn dispatch_loop(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(200);
        let mut last_look = tokio::time::Instant::now();
        loop {
            let max = self.cfg.max_in_flight_per_hook;
            let busy = self
                .in_flight
                .lock()
                .expect("in-flight lock")
                .values()
                .any(|n| *n > 0 && *n < max);
            if busy {
                tokio::time::sleep_until(last_look + BUSY_POLL).await;
            }
            last_look = tokio::time::Instant::now();
            match self.dispatch_once().await {
                Ok(0) => {
                    let wait = match self.next_wait().await {
                        Ok(w) => w,
                        Err(_) => IDLE_POLL,
                    };
                    tokio::select! {
                        _ = self.kick.notified() => {}
                        _ = tokio::time::sleep(wait) => {}
                    }
                    backoff = Duration::from_millis(200);
                }
                Ok(_) => backoff = Duration::from_millis(200),
                Err(e) => {
                    tracing::warn!(error = %e, "hooks: cannot read the outbox, will retry");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    async fn next_wait(&self) -> Result<Duration> {
        let mut c = self.store.read().await?;
        let next = st::next_due(&mut c, now_ms()).await?;
        Ok(match next {
            Some(t) => {
                Duration::from_millis((t - now_ms()).clamp(1, IDLE_POLL.as_millis() as i64) as u64)
            }
            None => IDLE_POLL,
        })
    }

    /// Claims what is due and starts the calls; returns how many started.
    pub async fn dispatch_once(self: &Arc<Self>) -> Result<usize> {
        let (_, hooks) = self.refresh().await?;
        self.claimed.lock().expect("claimed lock").recorded.clear();
        let now = now_ms();
        // Per hook, as many as it has free slots; past those of its deliveries already on
        // their way (they stay pending until their outcome is recorded).
        let mut wants: Vec<(i64, i64)> = Vec::new();
        {
            let inflight = self.in_flight.lock().expect("in-flight lock").clone();
            let claimed = self.claimed.lock().expect("claimed lock");
            let limit = self.cfg.disable_after_template_failures;
            let failing = self.template_failures.lock().expect("template failures");
            for id in hooks.keys() {
                if limit > 0 && failing.get(id).is_some_and(|n| *n >= limit) {
                    continue;
                }
                let used = inflight.get(id).copied().unwrap_or(0);
                let free = self.cfg.max_in_flight_per_hook.saturating_sub(used);
                if free > 0 {
                    let on_the_way = claimed.sending.values().filter(|h| *h == id).count();
                    wants.push((*id, (free + on_the_way) as i64));
                }
            }
        }
        if wants.is_empty() {
            // Every slot is taken: a receiver's answer frees one and wakes the worker.
            return Ok(0);
        }
        let picked = {
            let mut ids = Vec::new();
            let mut c = self.store.read().await?;
            for (hook, limit) in &wants {
                let due = st::due(&mut c, *hook, now, *limit).await?;
                let used = self
                    .in_flight
                    .lock()
                    .expect("in-flight lock")
                    .get(hook)
                    .copied();
                let free = self
                    .cfg
                    .max_in_flight_per_hook
                    .saturating_sub(used.unwrap_or(0));
                let claimed = self.claimed.lock().expect("claimed lock");
                ids.extend(
                    due.into_iter()
                        .filter(|id| !claimed.contains(*id))
                        .take(free),
                );
            }
            st::deliveries(&mut c, &ids).await?
        };
        if picked.is_empty() {
            return Ok(0);
        }
        // A lease per delivery: its hook's timeout plus the margin.
        let wanted: Vec<(i64, i64)> = picked
            .iter()
            .map(|d| {
                (
                    d.id,
                    hooks[&d.hook_id].timeout.as_millis() as i64 + LEASE_MARGIN_MS,
                )
            })
            .collect();
        let token = crate::crypto::random_token(16);
        let (got, claim) = st::claim(&self.store, &wanted, now, &token).await?;
        let claim: Option<Arc<str>> = claim.map(Into::into);
        {
            let mut claimed = self.claimed.lock().expect("claimed lock");
            for d in picked.iter().filter(|d| got.contains(&d.id)) {
                claimed.sending.insert(d.id, d.hook_id);
            }
        }
        let mut started = 0;
        for d in picked.into_iter().filter(|d| got.contains(&d.id)) {
            let Some(h) = hooks.get(&d.hook_id).cloned() else {
                continue;
            };
            *self
                .in_flight
                .lock()
                .expect("in-flight lock")
                .entry(h.id)
                .or_default() += 1;
            started += 1;
            let me = self.clone();
            let claim = claim.clone();
            tokio::spawn(async move { me.attempt(d, h, claim).await });
        }
        Ok(started)
    }

    async fn attempt(&self, d: DeliveryRow, h: HookCfg, claim: Option<Arc<str>>) {
        let payload = super::payload_of(&d);
        let a = match &payload {
            Some(p) => self.caller.call(&h, &d.webhook_id, p).await,
            None => super::call::Answer::unsendable(
                "the change record this delivery was made for is missing",
            ),
        };
        // A template that fails on every event is stopped here, at once: the writer disables
        // the hook, and until then this node sends it nothing more. A delivery with nothing
        // to send says nothing about the template, nor about how long calls take.
        if payload.is_some() {
            metrics::histogram!("voxprov_hook_delivery_duration_seconds", "outcome" => a.outcome.as_str())
                .record(a.duration.as_secs_f64());
            let mut t = self.template_failures.lock().expect("template failures");
            let n = t.entry(h.id).or_default();
            *n = if a.give_up { *n + 1 } else { 0 };
        }
        // The slot is free once the receiver has answered; the delivery stays claimed until
        // its outcome is recorded.
        if let Some(n) = self
            .in_flight
            .lock()
            .expect("in-flight lock")
            .get_mut(&h.id)
        {
            *n = n.saturating_sub(1);
        }
        self.kick();
        let metadata = if a.outcome == Outcome::Success {
            super::call::mapped(&h, &a.body)
        } else {
            Vec::new()
        };
        let exec = NewExecution {
            hook_id: h.id,
            reseller_id: h.reseller_id,
            delivery_id: Some(d.id),
            webhook_id: Some(d.webhook_id.clone()),
            phase: "after",
            event: d.event.clone(),
            resource: Some(d.resource.clone()),
            object_id: Some(d.object_id),
            attempt: d.attempts + 1,
            at_ms: a.started_ms,
            duration_ms: a.duration.as_millis() as i64,
            outcome: a.outcome.as_str(),
            error: a.error.clone(),
            request: a.request.to_string(),
            response: a.response.map(|r| r.to_string()),
        };
        let _ = self.tx.send(Done::Attempt(Box::new(Attempt {
            delivery: d,
            claim,
            hook: h,
            exec,
            outcome: a.outcome,
            status: a.status,
            retry_after: a.retry_after,
            give_up: a.give_up,
            metadata,
        })));
    }

    /// When a failed delivery goes out again, or `None` once the schedule is used up.
    fn next_attempt(&self, attempts: i64, retry_after: Option<Duration>, now: i64) -> Option<i64> {
        let step = *self
            .cfg
            .retry_schedule
            .get((attempts - 1).max(0) as usize)?;
        let jitter = 0.8 + rand::random::<f64>() * 0.4;
        let mut at = now + ((step * 1000) as f64 * jitter) as i64;
        if let Some(ra) = retry_after {
            at = at.max(now + ra.as_millis() as i64);
        }
        Some(at)
    }

    async fn write_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Done>) {
        let mut batch: Vec<Done> = Vec::new();
        loop {
            if batch.is_empty() {
                match rx.recv().await {
                    Some(d) => batch.push(d),
                    None => return,
                }
            }
            while batch.len() < 500 {
                match rx.try_recv() {
                    Ok(d) => batch.push(d),
                    Err(_) => break,
                }
            }
            match self.write_batch(&batch).await {
                Ok(()) => {
                    {
                        let mut claimed = self.claimed.lock().expect("claimed lock");
                        for d in &batch {
                            if let Done::Attempt(a) = d {
                                claimed.sending.remove(&a.delivery.id);
                                claimed.recorded.insert(a.delivery.id);
                            }
                        }
                    }
                    // An object's next delivery may go now.
                    batch.clear();
                    self.kick();
                }
                Err(e) => {
                    // Nothing is lost: the batch is kept and written once the database is back
                    // (and a crash meanwhile leaves the leases to expire: at least once).
                    tracing::warn!(error = %e, "hooks: cannot record delivery outcomes, will retry");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn write_batch(&self, batch: &[Done]) -> Result<()> {
        let now = now_ms();
        let mut tx = self.store.begin().await?;
        let mut execs = Vec::with_capacity(batch.len());
        let mut disabled = Vec::new();
        // Successes are recorded together: one statement per hundred and claim, one per hook.
        let mut delivered: HashMap<Option<Arc<str>>, Vec<i64>> = HashMap::new();
        let mut succeeded = std::collections::BTreeSet::new();
        for d in batch {
            match d {
                Done::Logged(e) => execs.push((**e).clone()),
                Done::Attempt(a) => {
                    let Attempt {
                        delivery,
                        claim,
                        hook,
                        exec,
                        outcome,
                        status,
                        retry_after,
                        give_up,
                        metadata,
                    } = &**a;
                    execs.push(exec.clone());
                    let attempts = delivery.attempts + 1;
                    if *outcome == Outcome::Success {
                        delivered
                            .entry(claim.clone())
                            .or_default()
                            .push(delivery.id);
                        succeeded.insert(hook.id);
                        if !metadata.is_empty() {
                            st::set_metadata(
                                &mut tx,
                                &delivery.resource,
                                delivery.object_id,
                                hook.id,
                                metadata,
                            )
                            .await?;
                        }
                        continue;
                    }
                    let err = exec
                        .error
                        .clone()
                        .unwrap_or_else(|| outcome.as_str().into());
                    let gone = *status == Some(410) && hook.kind == "http";
                    // A receiver that says it is gone: the hook stops; this delivery waits for
                    // it to be enabled again rather than being given up.
                    let next = if *give_up {
                        None
                    } else if gone {
                        Some(
                            now + self.cfg.retry_schedule.first().copied().unwrap_or(5) as i64
                                * 1000,
                        )
                    } else {
                        self.next_attempt(attempts, *retry_after, now)
                    };
                    let ours = st::delivery_failed(
                        &mut tx,
                        delivery.id,
                        claim.as_deref(),
                        attempts,
                        next,
                        &err,
                    )
                    .await?;
                    if !ours {
                        // This node's claim lapsed and another took the delivery over: the
                        // attempt is logged, its outcome is the new owner's.
                        metrics::counter!("voxprov_hook_claims_lapsed_total").increment(1);
                        continue;
                    }
                    let (n, since) = st::note_failure(&mut tx, hook.id, exec.at_ms).await?;
                    let template_failures = self
                        .template_failures
                        .lock()
                        .expect("template failures")
                        .get(&hook.id)
                        .copied()
                        .unwrap_or(0);
                    let template_limit = self.cfg.disable_after_template_failures;
                    let reason = if gone {
                        Some("the receiver answered 410 Gone".to_string())
                    } else if template_limit > 0 && template_failures >= template_limit {
                        // Its template fails on every event: nothing is delivered, and each
                        // attempt costs the platform a render at its limits.
                        Some(format!(
                            "{template_failures} deliveries in a row failed in the body template; last: {err}"
                        ))
                    } else if n >= self.cfg.disable_after_failures as i64
                        && now - since >= self.cfg.disable_after_seconds as i64 * 1000
                    {
                        Some(format!(
                            "{n} failed attempts in a row over {} s; last: {err}",
                            (now - since) / 1000
                        ))
                    } else {
                        None
                    };
                    if let Some(reason) = reason {
                        if st::disable(&mut tx, hook.id, &reason).await? {
                            let before =
                                json!({ "id": hook.id, "name": hook.name, "status": "enabled" });
                            let after = json!({ "id": hook.id, "name": hook.name, "status": "disabled", "disabled_reason": reason });
                            changes::record(
                                &mut tx,
                                &Actor::system(),
                                Change {
                                    resource: "hooks",
                                    object_id: hook.id,
                                    reseller_id: hook.reseller_id,
                                    op: Op::Update,
                                    before: Some(&before),
                                    after: Some(&after),
                                },
                            )
                            .await?;
                            disabled.push((hook.id, reason));
                        }
                    }
                }
            }
        }
        for (claim, ids) in &delivered {
            st::deliveries_done(&mut tx, ids, claim.as_deref(), now).await?;
        }
        for h in succeeded {
            st::note_success(&mut tx, h).await?;
        }
        st::insert_executions(&mut tx, &execs).await?;
        tx.commit().await?;
        for (id, reason) in disabled {
            tracing::warn!(hook = id, %reason, "hook disabled");
            // Disabled for good now: enabled again, it starts afresh.
            self.template_failures
                .lock()
                .expect("template failures")
                .remove(&id);
            self.invalidate();
        }
        Ok(())
    }

    /// Deletes executions and finished deliveries past their retention.
    pub async fn prune(&self) -> Result<u64> {
        let keep_ms = self.cfg.retention_days as i64 * 24 * 3600 * 1000;
        let mut tx = self.store.begin_solo().await?;
        let n = st::prune(&mut tx, now_ms() - keep_ms).await?;
        tx.commit().await?;
        Ok(n)
    }
}
