//! Hooks, their outbox of deliveries, their execution log, the metadata their answers put on
//! objects, and customer balances (which drive two of their events).

use serde::Serialize;
use sqlx::{FromRow, Row};

use super::{bind_all, insert_id, now, placeholders, Arg, Conn};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct HookRow {
    pub id: i64,
    pub reseller_id: Option<i64>,
    pub name: String,
    pub events: String,
    pub phase: String,
    pub kind: String,
    pub url: Option<String>,
    pub method: String,
    pub path: Option<String>,
    pub auth_type: String,
    pub auth_name: Option<String>,
    pub auth_value_enc: Option<String>,
    pub priority: i64,
    pub status: String,
    pub disabled_reason: Option<String>,
    pub timeout: i64,
    pub failure_policy: String,
    pub filter_domain: Option<String>,
    pub filter_sipserver_id: Option<i64>,
    pub filter_customer_id: Option<i64>,
    pub secret_enc: String,
    pub previous_secret_enc: Option<String>,
    pub previous_secret_until: Option<i64>,
    pub body_template: Option<String>,
    pub response_map: Option<String>,
    pub failing_since: Option<i64>,
    pub consecutive_failures: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    pub pending_deliveries: i64,
}

pub const HOOK_COLS: &str = "id, reseller_id, name, events, phase, kind, url, method, path, \
    auth_type, auth_name, auth_value_enc, priority, status, disabled_reason, timeout, \
    failure_policy, filter_domain, filter_sipserver_id, filter_customer_id, secret_enc, \
    previous_secret_enc, previous_secret_until, body_template, response_map, failing_since, \
    consecutive_failures, create_timestamp, modify_timestamp, pending_deliveries";

/// Hooks with the number of their pending deliveries.
pub const HOOK_FROM: &str = "(SELECT h.*, (SELECT COUNT(*) FROM hook_deliveries d \
    WHERE d.hook_id = h.id AND d.status = 'pending') AS pending_deliveries FROM hooks h) v";

/// Everything of a hook an operator sets (secrets already encrypted).
pub struct HookFields {
    pub reseller_id: Option<i64>,
    pub name: String,
    pub events: String,
    pub phase: String,
    pub kind: String,
    pub url: Option<String>,
    pub method: String,
    pub path: Option<String>,
    pub auth_type: String,
    pub auth_name: Option<String>,
    pub auth_value_enc: Option<String>,
    pub priority: i64,
    pub status: String,
    pub timeout: i64,
    pub failure_policy: String,
    pub filter_domain: Option<String>,
    pub filter_sipserver_id: Option<i64>,
    pub filter_customer_id: Option<i64>,
    pub body_template: Option<String>,
    pub response_map: Option<String>,
}

pub async fn get(c: &mut Conn, id: i64, lock: bool) -> Result<Option<HookRow>> {
    super::get_from_view(c, "hooks", HOOK_COLS, HOOK_FROM, id, lock).await
}

/// Hooks of one phase that take events (enabled), lowest priority number first.
pub async fn active(c: &mut Conn, phase: &str) -> Result<Vec<HookRow>> {
    let sql = format!(
        "SELECT {HOOK_COLS} FROM {HOOK_FROM} WHERE phase = $1 AND status = 'enabled' ORDER BY priority, id"
    );
    Ok(sqlx::query_as(&sql).bind(phase).fetch_all(&mut *c).await?)
}

/// What fan-out needs of the enabled after-hooks; without the pending count, which would
/// cost a scan on every write.
pub async fn after_targets(c: &mut Conn) -> Result<Vec<HookTarget>> {
    Ok(
        sqlx::query_as(&format!("SELECT {AFTER_TARGETS} ORDER BY id"))
            .fetch_all(&mut *c)
            .await?,
    )
}

/// The columns and rows of [`after_targets`] (unordered), for a statement of its own or to
/// ride along with another.
pub const AFTER_TARGETS: &str =
    "id, reseller_id, events, filter_domain, filter_sipserver_id, filter_customer_id \
     FROM hooks WHERE phase = 'after' AND status = 'enabled'";

#[derive(Debug, Clone, FromRow)]
pub struct HookTarget {
    pub id: i64,
    pub reseller_id: Option<i64>,
    pub events: String,
    pub filter_domain: Option<String>,
    pub filter_sipserver_id: Option<i64>,
    pub filter_customer_id: Option<i64>,
}

pub async fn insert(c: &mut Conn, f: &HookFields, secret_enc: &str) -> Result<i64> {
    let t = now();
    let q = sqlx::query(
        "INSERT INTO hooks (reseller_id, name, events, phase, kind, url, method, path, auth_type, auth_name, \
         auth_value_enc, priority, status, timeout, failure_policy, filter_domain, filter_sipserver_id, \
         filter_customer_id, body_template, response_map, secret_enc, create_timestamp, modify_timestamp) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $22) RETURNING id",
    );
    insert_id(bind_fields(q, f).bind(secret_enc).bind(t), c).await
}

fn bind_fields<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    f: &HookFields,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(f.reseller_id)
        .bind(f.name.clone())
        .bind(f.events.clone())
        .bind(f.phase.clone())
        .bind(f.kind.clone())
        .bind(f.url.clone())
        .bind(f.method.clone())
        .bind(f.path.clone())
        .bind(f.auth_type.clone())
        .bind(f.auth_name.clone())
        .bind(f.auth_value_enc.clone())
        .bind(f.priority)
        .bind(f.status.clone())
        .bind(f.timeout)
        .bind(f.failure_policy.clone())
        .bind(f.filter_domain.clone())
        .bind(f.filter_sipserver_id)
        .bind(f.filter_customer_id)
        .bind(f.body_template.clone())
        .bind(f.response_map.clone())
}

/// Saves an operator's change. Enabling clears the failure streak (a fresh start); the
/// reason of an automatic disable stays until then.
pub async fn update(c: &mut Conn, id: i64, f: &HookFields, was: &str) -> Result<()> {
    let q = sqlx::query(
        "UPDATE hooks SET reseller_id = $1, name = $2, events = $3, phase = $4, kind = $5, url = $6, method = $7, \
         path = $8, auth_type = $9, auth_name = $10, auth_value_enc = $11, priority = $12, status = $13, \
         timeout = $14, failure_policy = $15, filter_domain = $16, filter_sipserver_id = $17, \
         filter_customer_id = $18, body_template = $19, response_map = $20, modify_timestamp = $21 WHERE id = $22",
    );
    bind_fields(q, f)
        .bind(now())
        .bind(id)
        .execute(&mut *c)
        .await?;
    if f.status == "enabled" && was != "enabled" {
        sqlx::query(
            "UPDATE hooks SET disabled_reason = NULL, failing_since = NULL, consecutive_failures = 0 WHERE id = $1",
        )
        .bind(id)
        .execute(&mut *c)
        .await?;
    }
    if f.status == "archived" && was != "archived" {
        cancel_pending(c, id).await?;
    }
    Ok(())
}

/// An archived hook's pending deliveries will never go out.
pub async fn cancel_pending(c: &mut Conn, hook_id: i64) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE hook_deliveries SET status = 'cancelled', lease_until = NULL WHERE hook_id = $1 AND status = 'pending'",
    )
    .bind(hook_id)
    .execute(&mut *c)
    .await?
    .rows_affected())
}

pub async fn rotate_secret(
    c: &mut Conn,
    id: i64,
    secret_enc: &str,
    previous_enc: &str,
    previous_until: i64,
) -> Result<()> {
    sqlx::query(
        "UPDATE hooks SET secret_enc = $1, previous_secret_enc = $2, previous_secret_until = $3, modify_timestamp = $4 WHERE id = $5",
    )
    .bind(secret_enc)
    .bind(previous_enc)
    .bind(previous_until)
    .bind(now())
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// One delivery to write into the outbox.
pub struct NewDelivery {
    pub hook_id: i64,
    pub webhook_id: String,
    pub event: String,
    pub resource: String,
    pub object_id: i64,
    pub change_id: Option<i64>,
    pub payload: String,
}

pub async fn insert_deliveries(c: &mut Conn, ds: &[NewDelivery], now_ms: i64) -> Result<()> {
    const COLS: usize = 10;
    let ts = now();
    for chunk in ds.chunks(50) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", placeholders(i * COLS + 1, COLS)))
            .collect();
        let sql = format!(
            "INSERT INTO hook_deliveries (hook_id, webhook_id, event, resource, object_id, change_id, payload, \
             next_attempt_at, created_at, create_timestamp) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for d in chunk {
            q = q
                .bind(d.hook_id)
                .bind(d.webhook_id.clone())
                .bind(d.event.clone())
                .bind(d.resource.clone())
                .bind(d.object_id)
                .bind(d.change_id)
                .bind(d.payload.clone())
                .bind(now_ms)
                .bind(now_ms)
                .bind(ts.clone());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, FromRow)]
pub struct DeliveryRow {
    pub id: i64,
    pub hook_id: i64,
    pub webhook_id: String,
    pub event: String,
    pub resource: String,
    pub object_id: i64,
    /// The body as JSON text; empty when it is built from the change record at send time
    /// (see [`crate::hooks::payload_of`]), whose fields follow (NULL otherwise).
    pub payload: String,
    pub attempts: i64,
    pub created_at: i64,
    pub change_id: Option<i64>,
    pub op: Option<String>,
    pub actor_type: Option<String>,
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// One hook's deliveries that are due, not claimed by another node, and first in line for
/// their object (an earlier pending delivery of the same object goes first), oldest first:
/// their ids only. The worker asks again each time a slot frees, and the first of these are
/// mostly its own deliveries on their way (pending until their outcome is recorded): it
/// skips those and reads the few it picks whole with [`deliveries`], not every payload again.
/// Walks that hook's pending deliveries only, however many finished ones the table keeps or
/// other hooks have waiting. "First in line" is a scalar subquery rather than NOT EXISTS:
/// PostgreSQL, without statistics on a young table, plans the anti-join as a scan of every
/// pending delivery per row (68 ms at 3,000 pending); the subquery is an index probe (0.7 ms).
pub async fn due(c: &mut Conn, hook_id: i64, now_ms: i64, limit: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT d.id FROM hook_deliveries d \
         WHERE d.hook_id = $1 AND d.status = 'pending' AND d.next_attempt_at <= $2 \
         AND (d.lease_until IS NULL OR d.lease_until < $2) \
         AND d.id = (SELECT MIN(e.id) FROM hook_deliveries e WHERE e.hook_id = d.hook_id \
             AND e.resource = d.resource AND e.object_id = d.object_id AND e.status = 'pending') \
         ORDER BY d.next_attempt_at, d.id LIMIT $3",
    )
    .bind(hook_id)
    .bind(now_ms)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?)
}

/// The deliveries `ids` names that are still pending, whole, in the order of `ids`; those
/// written without a body come with their change record's fields to build it from.
pub async fn deliveries(c: &mut Conn, ids: &[i64]) -> Result<Vec<DeliveryRow>> {
    let mut rows: std::collections::HashMap<i64, DeliveryRow> = super::fetch_by_ids(
        c,
        "SELECT d.id, d.hook_id, d.webhook_id, d.event, d.resource, d.object_id, d.payload, \
         d.attempts, d.created_at, d.change_id, ch.op, ch.actor_type, ch.actor_id, ch.actor_name, \
         ch.before, ch.after \
         FROM hook_deliveries d LEFT JOIN changes ch ON d.payload = '' AND ch.id = d.change_id \
         WHERE d.status = 'pending' AND d.id IN ({ids})",
        ids,
    )
    .await?
    .into_iter()
    .map(|r: DeliveryRow| (r.id, r))
    .collect();
    Ok(ids.iter().filter_map(|id| rows.remove(id)).collect())
}

/// Claims deliveries (id, lease length in ms) under `token`; returns the ids this node got
/// (another node may have taken some first) and the claim their outcomes must be recorded
/// under. Where one node has the database to itself (SQLite) there is nobody to claim them
/// from: the worker's own bookkeeping is enough, and a claim would wait for the single writer
/// and cost a synchronous commit for nothing (after a crash everything pending goes out again
/// anyway); the claim is then none.
pub async fn claim(
    store: &super::Store,
    ids: &[(i64, i64)],
    now_ms: i64,
    token: &str,
) -> Result<(Vec<i64>, Option<String>)> {
    if ids.is_empty() || store.single_node() {
        return Ok((ids.iter().map(|(id, _)| *id).collect(), None));
    }
    let mut by_lease: std::collections::BTreeMap<i64, Vec<i64>> = Default::default();
    for (id, lease) in ids {
        by_lease.entry(*lease).or_default().push(*id);
    }
    let mut got = Vec::new();
    let mut tx = store.begin().await?;
    // 500 ids to a statement: PostgreSQL takes at most 65,535 parameters.
    for (lease, all) in &by_lease {
        for ids in all.chunks(500) {
            let sql = format!(
                "UPDATE hook_deliveries SET lease_until = $1, claim = $3 WHERE id IN ({}) AND status = 'pending' \
                 AND (lease_until IS NULL OR lease_until < $2) RETURNING id",
                placeholders(4, ids.len())
            );
            let mut q = sqlx::query(&sql)
                .bind(now_ms + lease)
                .bind(now_ms)
                .bind(token);
            for id in ids {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&mut *tx).await? {
                got.push(r.try_get(0)?);
            }
        }
    }
    tx.commit().await?;
    Ok((got, Some(token.to_string())))
}

/// The soonest time after `now_ms` a retry falls due (unix ms). Deliveries due already but
/// not sent are waiting for something that wakes the worker anyway: an earlier delivery of
/// their object, a free slot, their hook being enabled, a lease running out (polled).
pub async fn next_due(c: &mut Conn, now_ms: i64) -> Result<Option<i64>> {
    let row = sqlx::query(
        "SELECT MIN(next_attempt_at) FROM hook_deliveries WHERE status = 'pending' AND next_attempt_at > $1",
    )
    .bind(now_ms)
    .fetch_one(&mut *c)
    .await?;
    Ok(row.try_get(0)?)
}

/// Deliveries that went out (each on one more attempt), claimed under `claim`; those claimed
/// since by another node (this one's claim lapsed) are that node's to record.
pub async fn deliveries_done(
    c: &mut Conn,
    ids: &[i64],
    claim: Option<&str>,
    at_ms: i64,
) -> Result<()> {
    for chunk in ids.chunks(500) {
        // Parameters in order (see [`super::params_in_order`]): the three parts in turn.
        let (at, claimed, ids) = (
            super::params_in_order(c, 1, 1),
            super::params_in_order(c, 2, 1),
            super::params_in_order(c, 3, chunk.len()),
        );
        let sql = format!(
            "UPDATE hook_deliveries SET status = 'delivered', attempts = attempts + 1, delivered_at = {at}, \
             lease_until = NULL, last_error = NULL WHERE status = 'pending' AND claim IS NOT DISTINCT FROM {claimed} \
             AND id IN ({ids})"
        );
        let mut q = sqlx::query(&sql).bind(at_ms).bind(claim);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

/// A failed attempt under `claim`: due again at `next_ms`, or given up (`None`). False when
/// the claim had lapsed and another node claimed the delivery since (nothing is written).
pub async fn delivery_failed(
    c: &mut Conn,
    id: i64,
    claim: Option<&str>,
    attempts: i64,
    next_ms: Option<i64>,
    error: &str,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE hook_deliveries SET status = $1, attempts = $2, next_attempt_at = COALESCE($3, next_attempt_at), \
         lease_until = NULL, last_error = $4 WHERE id = $5 AND status = 'pending' AND claim IS NOT DISTINCT FROM $6",
    )
    .bind(if next_ms.is_some() { "pending" } else { "failed" })
    .bind(attempts)
    .bind(next_ms)
    .bind(error)
    .bind(id)
    .bind(claim)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(n > 0)
}

/// Puts deliveries back in line to go out now, with the whole retry schedule ahead of them (a
/// manual redelivery). Returns how many.
pub async fn requeue(c: &mut Conn, w: &super::Where, now_ms: i64) -> Result<u64> {
    let n = w.next_placeholder();
    let sql = format!(
        "UPDATE hook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = ${n}, lease_until = NULL, claim = NULL{}",
        w.sql()
    );
    let mut args = w.args().to_vec();
    args.push(Arg::Int(now_ms));
    let q = bind_all(sqlx::query(&sql), &args);
    let n = q.execute(&mut *c).await?.rows_affected();
    // Whichever node has free slots may send them.
    super::Store::notify(c, "deliveries").await?;
    Ok(n)
}

/// A hook's failure streak after one more failed attempt: (consecutive failures, since).
pub async fn note_failure(c: &mut Conn, id: i64, at_ms: i64) -> Result<(i64, i64)> {
    let row = sqlx::query(
        "UPDATE hooks SET consecutive_failures = consecutive_failures + 1, failing_since = COALESCE(failing_since, $1) \
         WHERE id = $2 RETURNING consecutive_failures, failing_since",
    )
    .bind(at_ms)
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    match row {
        Some(r) => Ok((
            r.try_get(0)?,
            r.try_get::<Option<i64>, _>(1)?.unwrap_or(at_ms),
        )),
        None => Ok((0, at_ms)),
    }
}

pub async fn note_success(c: &mut Conn, id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE hooks SET consecutive_failures = 0, failing_since = NULL WHERE id = $1 AND consecutive_failures <> 0",
    )
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Disables an enabled hook, saying why. Returns whether it was enabled.
pub async fn disable(c: &mut Conn, id: i64, reason: &str) -> Result<bool> {
    Ok(sqlx::query(
        "UPDATE hooks SET status = 'disabled', disabled_reason = $1, modify_timestamp = $2 WHERE id = $3 AND status = 'enabled'",
    )
    .bind(reason)
    .bind(now())
    .bind(id)
    .execute(&mut *c)
    .await?
    .rows_affected()
        > 0)
}

/// One logged attempt.
#[derive(Debug, Clone)]
pub struct NewExecution {
    pub hook_id: i64,
    pub reseller_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub webhook_id: Option<String>,
    pub phase: &'static str,
    pub event: String,
    pub resource: Option<String>,
    pub object_id: Option<i64>,
    pub attempt: i64,
    pub at_ms: i64,
    pub duration_ms: i64,
    pub outcome: &'static str,
    pub error: Option<String>,
    pub request: String,
    pub response: Option<String>,
}

pub async fn insert_executions(c: &mut Conn, es: &[NewExecution]) -> Result<()> {
    const COLS: usize = 16;
    // Parameters in order (SQLite finds a numbered one by a linear scan of all of them), so
    // 64 rows to a statement: a batch of outcomes holds the single writer for an eighth of
    // the hand-offs to SQLite's thread that eight rows to a statement took.
    for chunk in es.chunks(64) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", super::params_in_order(c, i * COLS + 1, COLS)))
            .collect();
        let sql = format!(
            "INSERT INTO hook_executions (hook_id, reseller_id, delivery_id, webhook_id, phase, event, resource, object_id, \
             attempt, ts, created_at, duration_ms, outcome, error, request, response) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for e in chunk {
            let ts = super::ts_of_ms(e.at_ms);
            q = q
                .bind(e.hook_id)
                .bind(e.reseller_id)
                .bind(e.delivery_id)
                .bind(e.webhook_id.clone())
                .bind(e.phase)
                .bind(e.event.clone())
                .bind(e.resource.clone())
                .bind(e.object_id)
                .bind(e.attempt)
                .bind(ts)
                .bind(e.at_ms)
                .bind(e.duration_ms)
                .bind(e.outcome)
                .bind(e.error.clone())
                .bind(e.request.clone())
                .bind(e.response.clone());
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ExecutionRow {
    pub id: i64,
    pub hook_id: i64,
    pub reseller_id: Option<i64>,
    pub delivery_id: Option<i64>,
    pub webhook_id: Option<String>,
    pub phase: String,
    pub event: String,
    pub resource: Option<String>,
    pub object_id: Option<i64>,
    pub attempt: i64,
    pub ts: String,
    pub duration_ms: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub request: String,
    pub response: Option<String>,
    pub delivery_status: Option<String>,
}

pub const EXEC_COLS: &str = "id, hook_id, reseller_id, delivery_id, webhook_id, phase, event, \
    resource, object_id, attempt, ts, duration_ms, outcome, error, request, response, delivery_status";
pub const EXEC_FROM: &str = "(SELECT x.*, d.status AS delivery_status FROM hook_executions x \
    LEFT JOIN hook_deliveries d ON d.id = x.delivery_id) v";

/// Deletes executions and finished deliveries older than `before_ms`.
pub async fn prune(c: &mut Conn, before_ms: i64) -> Result<u64> {
    let a = sqlx::query("DELETE FROM hook_executions WHERE created_at < $1")
        .bind(before_ms)
        .execute(&mut *c)
        .await?
        .rows_affected();
    let b = sqlx::query(
        "DELETE FROM hook_deliveries WHERE created_at < $1 AND status IN ('delivered', 'cancelled', 'failed')",
    )
    .bind(before_ms)
    .execute(&mut *c)
    .await?
    .rows_affected();
    Ok(a + b)
}

pub async fn set_metadata(
    c: &mut Conn,
    resource: &str,
    object_id: i64,
    hook_id: i64,
    values: &[(String, String)],
) -> Result<()> {
    let t = now();
    for (k, v) in values {
        sqlx::query(
            "INSERT INTO object_metadata (resource, object_id, key, value, hook_id, modify_timestamp) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (resource, object_id, key) DO UPDATE SET value = excluded.value, hook_id = excluded.hook_id, \
             modify_timestamp = excluded.modify_timestamp",
        )
        .bind(resource)
        .bind(object_id)
        .bind(k.clone())
        .bind(v.clone())
        .bind(hook_id)
        .bind(t.clone())
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub async fn metadata(
    c: &mut Conn,
    resource: &str,
    object_id: i64,
) -> Result<Vec<(String, String, Option<i64>, String)>> {
    let rows = sqlx::query(
        "SELECT key, value, hook_id, modify_timestamp FROM object_metadata WHERE resource = $1 AND object_id = $2 ORDER BY key",
    )
    .bind(resource)
    .bind(object_id)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct Balance {
    /// The customer's id.
    pub id: i64,
    pub customer_id: i64,
    pub reseller_id: i64,
    pub cash_balance: f64,
    pub free_time_balance: i64,
}

pub const BALANCE_COLS: &str = "id, customer_id, reseller_id, cash_balance, free_time_balance";
pub const BALANCE_FROM: &str = "(SELECT c.id, c.id AS customer_id, c.reseller_id, \
    COALESCE(b.cash_balance, 0.0) AS cash_balance, COALESCE(b.free_time_balance, 0) AS free_time_balance \
    FROM customers c LEFT JOIN customer_balances b ON b.customer_id = c.id) v";

pub async fn save_balance(c: &mut Conn, customer_id: i64, cash: f64, free_time: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO customer_balances (customer_id, cash_balance, free_time_balance, modify_timestamp) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (customer_id) DO UPDATE SET cash_balance = excluded.cash_balance, \
         free_time_balance = excluded.free_time_balance, modify_timestamp = excluded.modify_timestamp",
    )
    .bind(customer_id)
    .bind(cash)
    .bind(free_time)
    .bind(now())
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// DELETE of a hook: it stops, its pending deliveries are cancelled, its log stays.
pub async fn archive(c: &mut Conn, id: i64) -> Result<()> {
    sqlx::query("UPDATE hooks SET status = 'archived', modify_timestamp = $1 WHERE id = $2")
        .bind(now())
        .bind(id)
        .execute(&mut *c)
        .await?;
    cancel_pending(c, id).await?;
    Ok(())
}
