//! The change log: every change writes one record in the same transaction as the change
//! itself — monotonic id, time, actor, client address, resource, object, operation, before and
//! after (secrets redacted). It is the journal that people read and the ordered feed that
//! consumers (SIP servers, hooks, caches) follow with their own cursor, so a crash at any
//! point loses nothing that was acknowledged.

pub mod follow;

use std::borrow::Cow;

use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use utoipa::ToSchema;

use crate::error::Result;
use crate::model::Actor;
use crate::store::{list_rows, Arg, Conn, Page, Where};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    /// An operator-ordered repair of a SIP server's tables (nothing in voxprov changes).
    Repair,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Repair => "repair",
        }
    }

    /// The operation [`Op::as_str`] names.
    pub fn parse(s: &str) -> Option<Op> {
        [Op::Create, Op::Update, Op::Delete, Op::Repair]
            .into_iter()
            .find(|o| o.as_str() == s)
    }
}

/// Field names whose values never reach the journal.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "webpassword",
    "secret",
    "password_hash",
    // A trunk's registration password at its carrier.
    "peer_auth_pass",
];

/// What a secret field's value becomes in the journal.
pub const REDACTED: &str = "********";

pub fn redact(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .map(|(k, v)| {
                    if SECRET_FIELDS.contains(&k.as_str()) && !v.is_null() {
                        (k.clone(), Value::String(REDACTED.into()))
                    } else {
                        (k.clone(), redact(v))
                    }
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(redact).collect()),
        other => other.clone(),
    }
}

/// `v` as the journal keeps it, copied only if a secret in it still shows (most documents
/// have none, or were built with the marker in place).
pub fn redacted(v: &Value) -> Cow<'_, Value> {
    if shows_secret(v) {
        Cow::Owned(redact(v))
    } else {
        Cow::Borrowed(v)
    }
}

/// `v` as the journal keeps it, taken rather than copied when no secret in it shows.
pub fn redacted_owned(v: Value) -> Value {
    if shows_secret(&v) {
        redact(&v)
    } else {
        v
    }
}

/// Whether [`redact`] would change `v`.
fn shows_secret(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            if SECRET_FIELDS.contains(&k.as_str()) {
                !v.is_null() && v.as_str() != Some(REDACTED)
            } else {
                shows_secret(v)
            }
        }),
        Value::Array(a) => a.iter().any(shows_secret),
        _ => false,
    }
}

pub struct Change<'a> {
    pub resource: &'a str,
    pub object_id: i64,
    pub reseller_id: Option<i64>,
    pub op: Op,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
}

/// What a request recorded, so the HTTP layer can wait for consumers (SIP servers) to apply it
/// once the transaction is committed.
#[derive(Debug, Default, Clone)]
pub struct Recorded {
    pub last_id: i64,
    /// Whether everything was done by admins (who may see SIP servers' names).
    pub by_non_admin: bool,
    pub resources: std::collections::BTreeSet<String>,
    /// After-hook deliveries written.
    pub deliveries: usize,
}

tokio::task_local! {
    pub static RECORDED: std::cell::RefCell<Recorded>;
}

impl Recorded {
    /// Adds what another task recorded for the same request (its write ran on the writer's
    /// lane, see [`crate::resources::on_writer`]) to this task's record, if it keeps one.
    pub fn add_to_current(self) {
        let _ = RECORDED.try_with(|r| {
            let mut r = r.borrow_mut();
            r.last_id = r.last_id.max(self.last_id);
            r.by_non_admin |= self.by_non_admin;
            r.deliveries += self.deliveries;
            r.resources.extend(self.resources);
        });
    }
}

/// Appends one record; call inside the transaction that makes the change.
pub async fn record(c: &mut Conn, actor: &Actor, ch: Change<'_>) -> Result<i64> {
    Ok(record_many(c, actor, &[ch]).await?.unwrap_or(0))
}

/// Appends records in multi-row statements; returns the highest id. The after-hook
/// deliveries the changes make are written with them (see [`crate::hooks`]).
pub async fn record_many(c: &mut Conn, actor: &Actor, chs: &[Change<'_>]) -> Result<Option<i64>> {
    let docs: Vec<_> = chs
        .iter()
        .map(|ch| (ch.before.map(redacted), ch.after.map(redacted)))
        .collect();
    let texts: Vec<(Option<String>, Option<String>)> = docs
        .iter()
        .map(|(b, a)| {
            (
                b.as_deref().map(Value::to_string),
                a.as_deref().map(Value::to_string),
            )
        })
        .collect();
    let entries: Vec<Entry> = chs
        .iter()
        .zip(&texts)
        .map(|(ch, (b, a))| Entry {
            resource: ch.resource,
            object_id: ch.object_id,
            reseller_id: ch.reseller_id,
            op: ch.op,
            before: b.as_deref(),
            after: a.as_deref(),
        })
        .collect();
    insert_entries(c, actor, &entries, |i| {
        let (b, a) = &docs[i];
        Ok((
            b.as_deref().map(Cow::Borrowed),
            a.as_deref().map(Cow::Borrowed),
        ))
    })
    .await
}

/// Appends creations whose after documents are JSON text, redacted already (a bulk import
/// builds them on another thread while it writes the next rows); returns the highest id.
/// After-hooks, if any want them, see the documents parsed back.
pub async fn record_created(
    c: &mut Conn,
    actor: &Actor,
    resource: &str,
    created: &[(Option<i64>, i64, String)],
) -> Result<Option<i64>> {
    let entries: Vec<Entry> = created
        .iter()
        .map(|(reseller_id, object_id, after)| Entry {
            resource,
            object_id: *object_id,
            reseller_id: *reseller_id,
            op: Op::Create,
            before: None,
            after: Some(after),
        })
        .collect();
    insert_entries(c, actor, &entries, |i| {
        let after: Value =
            serde_json::from_str(&created[i].2).map_err(crate::error::Error::internal)?;
        // Hooks never see a secret, whatever the caller promised.
        Ok((None, Some(Cow::Owned(redacted_owned(after)))))
    })
    .await
}

/// One change record as written: its documents as JSON text.
struct Entry<'a> {
    resource: &'a str,
    object_id: i64,
    reseller_id: Option<i64>,
    op: Op,
    before: Option<&'a str>,
    after: Option<&'a str>,
}

type Docs<'a> = (Option<Cow<'a, Value>>, Option<Cow<'a, Value>>);

/// Writes `entries` 64 to a statement, with the after-hook deliveries they make; `docs(i)`
/// gives entry i's documents as values, asked for only where an enabled hook may want them.
async fn insert_entries<'a>(
    c: &mut Conn,
    actor: &Actor,
    entries: &[Entry<'_>],
    docs: impl Fn(usize) -> Result<Docs<'a>>,
) -> Result<Option<i64>> {
    const COLS: usize = 11;
    const CHUNK: usize = 64;
    let ts = crate::store::now();
    let mut last = None;
    let mut deliveries = 0;
    for (n, chunk) in entries.chunks(CHUNK).enumerate() {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("({})", crate::store::params_in_order(c, i * COLS + 1, COLS)))
            .collect();
        let insert = format!(
            "INSERT INTO changes (ts, actor_type, actor_id, actor_name, client_addr, reseller_id, resource, object_id, op, before, after) \
             VALUES {}",
            values.join(", ")
        );
        // The enabled after-hooks come back with the ids, in the same round trip: on
        // PostgreSQL from a writing WITH; SQLite has none, so there more statements in the
        // same query (one hand-off to SQLite's thread while the writer is held, not two): the
        // ids as one row, then the hooks.
        let with_hooks = crate::store::has_row_locks(c);
        let sql = if with_hooks {
            format!(
                "WITH ins AS ({insert} RETURNING id) \
                 SELECT 0 AS k, id, CAST(NULL AS BIGINT) AS reseller_id, CAST(NULL AS TEXT) AS events, \
                 CAST(NULL AS TEXT) AS filter_domain, CAST(NULL AS BIGINT) AS filter_sipserver_id, \
                 CAST(NULL AS BIGINT) AS filter_customer_id FROM ins \
                 UNION ALL SELECT 1 AS k, {}",
                crate::store::hooks::AFTER_TARGETS
            )
        } else {
            format!(
                "{insert}; {}; SELECT {} ORDER BY id",
                crate::store::sqlite_ids_of_insert("changes", chunk.len()),
                crate::store::hooks::AFTER_TARGETS
            )
        };
        let mut q = sqlx::query(&sql);
        for e in chunk {
            q = q
                .bind(ts.clone())
                .bind(actor.kind.as_str())
                .bind(actor.id)
                .bind(actor.name.clone())
                .bind(actor.client.clone())
                .bind(e.reseller_id)
                .bind(e.resource)
                .bind(e.object_id)
                .bind(e.op.as_str())
                .bind(e.before)
                .bind(e.after);
        }
        let rows = q.fetch_all(&mut *c).await?;
        // Ids are given in VALUES order; RETURNING's row order is not promised.
        let mut ids = Vec::with_capacity(chunk.len());
        let mut hooks = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            if !with_hooks {
                // SQLite: the ids' row first, then the hooks.
                if i == 0 {
                    ids = crate::store::sqlite_inserted_ids(row, "changes", chunk.len())?;
                } else {
                    hooks.push(sqlx::FromRow::from_row(row)?);
                }
            } else if row.try_get::<i32, _>(0)? == 1 {
                hooks.push(sqlx::FromRow::from_row(row)?);
            } else {
                ids.push(row.try_get::<i64, _>(1)?);
            }
        }
        if ids.len() != chunk.len() {
            return Err(crate::error::Error::internal(anyhow::anyhow!(
                "{} change records inserted, {} ids read back",
                chunk.len(),
                ids.len()
            )));
        }
        hooks.sort_by_key(|h: &crate::store::hooks::HookTarget| h.id);
        ids.sort_unstable();
        last = last.max(ids.last().copied());
        if hooks.is_empty() {
            continue;
        }
        let values = (0..chunk.len())
            .map(|i| docs(n * CHUNK + i))
            .collect::<Result<Vec<Docs>>>()?;
        let emitted: Vec<crate::hooks::Emitted> = chunk
            .iter()
            .zip(&values)
            .zip(&ids)
            .map(|((e, (b, a)), id)| crate::hooks::Emitted {
                resource: e.resource,
                object_id: e.object_id,
                reseller_id: e.reseller_id,
                op: e.op,
                change_id: Some(*id),
                before: b.as_deref(),
                after: a.as_deref(),
                events: None,
            })
            .collect();
        deliveries += crate::hooks::enqueue_to(c, actor, &emitted, &hooks).await?;
    }
    if let Some(id) = last {
        let _ = RECORDED.try_with(|r| {
            let mut r = r.borrow_mut();
            r.last_id = r.last_id.max(id);
            r.by_non_admin |= !actor.is_admin();
            r.deliveries += deliveries;
            for e in entries {
                if !r.resources.contains(e.resource) {
                    r.resources.insert(e.resource.to_string());
                }
            }
        });
    }
    Ok(last)
}

/// A journal entry as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct JournalEntry {
    pub id: i64,
    pub timestamp: String,
    pub actor_type: String,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub client_addr: Option<String>,
    pub resource: String,
    pub resource_id: i64,
    pub operation: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Debug, Default)]
pub struct JournalFilter {
    pub id: Option<i64>,
    pub resource: Option<String>,
    pub resource_id: Option<i64>,
    pub actor: Option<String>,
    pub operation: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

pub async fn list(
    c: &mut Conn,
    scope: Option<i64>,
    f: &JournalFilter,
    page: &Page,
) -> Result<(Vec<JournalEntry>, Option<i64>)> {
    let mut w = Where::new();
    if let Some(r) = scope {
        w.push("reseller_id = ?", Arg::Int(r));
    }
    if let Some(v) = f.id {
        w.push("id = ?", Arg::Int(v));
    }
    if let Some(v) = &f.resource {
        w.push("resource = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = f.resource_id {
        w.push("object_id = ?", Arg::Int(v));
    }
    if let Some(v) = &f.actor {
        w.text_filter("actor_name", v);
    }
    if let Some(v) = &f.operation {
        w.push("op = ?", Arg::Text(v.clone()));
    }
    if let Some(v) = &f.since {
        w.push("ts >= ?", Arg::Text(v.clone()));
    }
    if let Some(v) = &f.until {
        w.push("ts <= ?", Arg::Text(v.clone()));
    }
    let (rows, total) = list_rows(
        c,
        "id, ts, actor_type, actor_id, actor_name, client_addr, resource, object_id, op, before, after",
        "changes",
        &w,
        page,
    )
    .await?;
    let parse = |s: Option<String>| s.and_then(|s| serde_json::from_str(&s).ok());
    let items = rows
        .into_iter()
        .map(|r| {
            Ok(JournalEntry {
                id: r.try_get(0)?,
                timestamp: r.try_get(1)?,
                actor_type: r.try_get(2)?,
                actor_id: r.try_get(3)?,
                actor: r.try_get(4)?,
                client_addr: r.try_get(5)?,
                resource: r.try_get(6)?,
                resource_id: r.try_get(7)?,
                operation: r.try_get(8)?,
                before: parse(r.try_get(9)?),
                after: parse(r.try_get(10)?),
            })
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?;
    Ok((items, total))
}
