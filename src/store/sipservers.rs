//! SIP servers (delivery targets): their configuration, the domains they serve, where their
//! delivery stands, and the reads a driver needs to compute what a target should hold.

use serde::Serialize;
use sqlx::{FromRow, Row};

use super::{bind_all, insert_id, now, placeholders, Arg, Conn, Flag, Page, Where};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct SipServerRow {
    pub id: i64,
    pub name: String,
    pub driver: String,
    pub role: String,
    pub db_url_enc: String,
    pub rpc_url: Option<String>,
    #[sqlx(try_from = "i64")]
    pub enabled: Flag,
    pub schema_version: Option<i64>,
    pub detected_schema_version: Option<i64>,
    #[sqlx(try_from = "i64")]
    pub store_password: Flag,
    #[sqlx(try_from = "i64")]
    pub carriers: Flag,
    pub sip_address: Option<String>,
    pub routing_attribute: String,
    pub routing_type: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    pub applied_change_id: i64,
    /// The highest change applied, and the ids below it still awaited (JSON list).
    pub applied_hi: i64,
    pub applied_gaps: Option<String>,
    /// Pending full-load requests (0: none).
    pub full_load: i64,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_success_at: Option<String>,
    /// JSON: per table, when it last changed and how its reload went.
    pub tables: Option<String>,
}

const COLS: &str = "id, name, driver, role, db_url_enc, rpc_url, enabled, schema_version, \
    detected_schema_version, store_password, carriers, sip_address, routing_attribute, routing_type, \
    create_timestamp, modify_timestamp, applied_change_id, applied_hi, applied_gaps, full_load, \
    last_error, last_error_at, last_success_at, tables";
pub const FROM: &str = "(SELECT s.*, COALESCE(t.applied_change_id, 0) AS applied_change_id, \
    COALESCE(t.applied_hi, 0) AS applied_hi, t.applied_gaps, \
    COALESCE(t.full_load, 1) AS full_load, t.last_error, t.last_error_at, t.last_success_at, \
    t.tables FROM sipservers s LEFT JOIN sipserver_state t ON t.sipserver_id = s.id) v";

pub struct SipServerFields {
    pub name: String,
    pub driver: String,
    pub role: String,
    pub db_url_enc: String,
    pub rpc_url: Option<String>,
    pub enabled: bool,
    pub schema_version: Option<i64>,
    pub store_password: bool,
    pub carriers: bool,
    pub sip_address: Option<String>,
    pub routing_attribute: String,
    pub routing_type: i64,
}

pub async fn get(c: &mut Conn, id: i64, lock: bool) -> Result<Option<SipServerRow>> {
    super::get_from_view(c, "sipservers", COLS, FROM, id, lock).await
}

pub async fn list(
    c: &mut Conn,
    w: &Where,
    page: &Page,
) -> Result<(Vec<SipServerRow>, Option<i64>)> {
    super::list_as(c, COLS, FROM, w, page).await
}

pub async fn all(c: &mut Conn) -> Result<Vec<SipServerRow>> {
    let rows = sqlx::query(&format!("SELECT {COLS} FROM {FROM} ORDER BY id"))
        .fetch_all(&mut *c)
        .await?;
    Ok(rows
        .iter()
        .map(SipServerRow::from_row)
        .collect::<std::result::Result<_, _>>()?)
}

fn bind_fields<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    f: &'q SipServerFields,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(f.name.as_str())
        .bind(f.driver.as_str())
        .bind(f.role.as_str())
        .bind(f.db_url_enc.as_str())
        .bind(f.rpc_url.as_deref())
        .bind(Flag::int(f.enabled))
        .bind(f.schema_version)
        .bind(Flag::int(f.store_password))
        .bind(f.sip_address.as_deref())
        .bind(f.routing_attribute.as_str())
        .bind(f.routing_type)
        .bind(Flag::int(f.carriers))
}

pub async fn insert(c: &mut Conn, f: &SipServerFields) -> Result<i64> {
    let t = now();
    let id = insert_id(
        bind_fields(
            sqlx::query(
                "INSERT INTO sipservers (name, driver, role, db_url_enc, rpc_url, enabled, schema_version, \
                 store_password, sip_address, routing_attribute, routing_type, carriers, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
            ),
            f,
        )
        .bind(t),
        c,
    )
    .await?;
    sqlx::query("INSERT INTO sipserver_state (sipserver_id, applied_change_id, full_load) VALUES ($1, 0, 1)")
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(id)
}

pub async fn update(c: &mut Conn, id: i64, f: &SipServerFields) -> Result<()> {
    bind_fields(
        sqlx::query(
            "UPDATE sipservers SET name = $1, driver = $2, role = $3, db_url_enc = $4, rpc_url = $5, \
             enabled = $6, schema_version = $7, store_password = $8, sip_address = $9, \
             routing_attribute = $10, routing_type = $11, carriers = $12, modify_timestamp = $13 WHERE id = $14",
        ),
        f,
    )
    .bind(now())
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn delete(c: &mut Conn, id: i64) -> Result<()> {
    for sql in [
        "DELETE FROM sipserver_domains WHERE sipserver_id = $1",
        "DELETE FROM sipserver_state WHERE sipserver_id = $1",
        "DELETE FROM sipservers WHERE id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *c).await?;
    }
    Ok(())
}

/// (sipserver id, domain id, domain name) for the given servers.
pub async fn domains_of(c: &mut Conn, ids: &[i64]) -> Result<Vec<(i64, i64, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ph = placeholders(1, ids.len());
    let sql = format!(
        "SELECT sd.sipserver_id, d.id, d.domain FROM sipserver_domains sd JOIN domains d ON d.id = sd.domain_id \
         WHERE sd.sipserver_id IN ({ph}) ORDER BY d.domain"
    );
    let args: Vec<Arg> = ids.iter().map(|i| Arg::Int(*i)).collect();
    let rows = bind_all(sqlx::query(&sql), &args)
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

pub async fn set_domains(c: &mut Conn, id: i64, domain_ids: &[i64]) -> Result<()> {
    sqlx::query("DELETE FROM sipserver_domains WHERE sipserver_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    for d in domain_ids {
        sqlx::query("INSERT INTO sipserver_domains (sipserver_id, domain_id) VALUES ($1, $2)")
            .bind(id)
            .bind(*d)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// The resources whose change is recorded in the same transaction as a full load asked for
/// (a server changed; a snapshot restored): a delivery worker meeting one does the load before
/// it marks the change applied, so the request waiting for it returns after the load. A write
/// that raises `full_load` beside a change record of another resource must be listed here.
pub const FULL_LOAD_RESOURCES: &[&str] = &["sipservers", "snapshots"];

/// Asks for a full load of the given server, or of every front proxy as well (their routing
/// rows depend on the home servers' settings). `full_load` counts requests: a load clears it
/// only if no request came in while it ran (see [`save_progress`]).
pub async fn request_full_load(c: &mut Conn, id: Option<i64>, proxies_too: bool) -> Result<()> {
    if let Some(id) = id {
        sqlx::query("UPDATE sipserver_state SET full_load = full_load + 1 WHERE sipserver_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
    }
    if proxies_too {
        sqlx::query(
            "UPDATE sipserver_state SET full_load = full_load + 1 WHERE sipserver_id IN (SELECT id FROM sipservers WHERE role = 'proxy')",
        )
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

pub async fn set_detected_version(c: &mut Conn, id: i64, v: Option<i64>) -> Result<()> {
    sqlx::query("UPDATE sipservers SET detected_schema_version = $1 WHERE id = $2")
        .bind(v)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Where delivery stands, as the worker records it after each batch: everything up to
/// `applied` is applied, and above it everything up to `hi` but `gaps`. `full_load_done`: the
/// request generation the finished full load started from; the request is cleared only if
/// no newer one arrived meanwhile.
pub async fn save_progress(
    c: &mut Conn,
    id: i64,
    applied: i64,
    hi: i64,
    gaps: &[i64],
    full_load_done: Option<i64>,
) -> Result<()> {
    let t = now();
    let gaps = (!gaps.is_empty()).then(|| serde_json::to_string(gaps).unwrap_or_default());
    sqlx::query(
        "UPDATE sipserver_state SET applied_change_id = $1, applied_hi = $2, applied_gaps = $3, \
         last_success_at = $4 WHERE sipserver_id = $5",
    )
    .bind(applied)
    .bind(hi.max(applied))
    .bind(gaps)
    .bind(t)
    .bind(id)
    .execute(&mut *c)
    .await?;
    if let Some(generation) = full_load_done {
        sqlx::query(
            "UPDATE sipserver_state SET full_load = 0 WHERE sipserver_id = $1 AND full_load = $2",
        )
        .bind(id)
        .bind(generation)
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// A failed attempt: the cursor stays where it is.
pub async fn save_error(c: &mut Conn, id: i64, error: &str) -> Result<()> {
    sqlx::query(
        "UPDATE sipserver_state SET last_error = $1, last_error_at = $2 WHERE sipserver_id = $3",
    )
    .bind(error)
    .bind(now())
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// Saves the per-table state (JSON) of a server.
pub async fn save_tables(c: &mut Conn, id: i64, tables: &str) -> Result<()> {
    sqlx::query("UPDATE sipserver_state SET tables = $1 WHERE sipserver_id = $2")
        .bind(tables.to_string())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The per-table state (JSON) of a server, if any.
pub async fn tables(c: &mut Conn, id: i64) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT tables FROM sipserver_state WHERE sipserver_id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?
            .flatten(),
    )
}

/// (applied change id, pending full-load requests: 0 = none, is the last attempt failing).
pub async fn state(c: &mut Conn, id: i64) -> Result<Option<(i64, i64, bool)>> {
    let row = sqlx::query(
        "SELECT applied_change_id, full_load, last_error_at, last_success_at FROM sipserver_state WHERE sipserver_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    row.map(|r| {
        let (e, s): (Option<String>, Option<String>) = (r.try_get(2)?, r.try_get(3)?);
        let failing = failing(e.as_deref(), s.as_deref());
        Ok((r.try_get(0)?, r.try_get(1)?, failing))
    })
    .transpose()
}

/// Whether a server's last attempt failed: its last error is newer than its last success.
pub fn failing(last_error_at: Option<&str>, last_success_at: Option<&str>) -> bool {
    match (last_error_at, last_success_at) {
        (Some(e), Some(s)) => e > s,
        (Some(_), None) => true,
        _ => false,
    }
}

/// Which changes a server has: as saved by whichever node delivers to it.
#[derive(Debug, Default, Clone)]
pub struct Delivered {
    pub low: i64,
    pub hi: i64,
    pub gaps: Vec<i64>,
    /// Its last attempt failed ([`delivered`] says; [`Delivered::of`] does not know).
    pub failing: bool,
}

impl Delivered {
    pub fn of(low: i64, hi: i64, gaps: Option<&str>) -> Delivered {
        Delivered {
            low,
            hi: hi.max(low),
            gaps: gaps
                .and_then(|g| serde_json::from_str(g).ok())
                .unwrap_or_default(),
            failing: false,
        }
    }
}

pub async fn delivered(c: &mut Conn, id: i64) -> Result<Option<Delivered>> {
    let row = sqlx::query(
        "SELECT applied_change_id, applied_hi, applied_gaps, last_error_at, last_success_at \
         FROM sipserver_state WHERE sipserver_id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    row.map(|r| {
        let gaps: Option<String> = r.try_get(2)?;
        let (e, ok): (Option<String>, Option<String>) = (r.try_get(3)?, r.try_get(4)?);
        let mut d = Delivered::of(r.try_get(0)?, r.try_get(1)?, gaps.as_deref());
        d.failing = failing(e.as_deref(), ok.as_deref());
        Ok(d)
    })
    .transpose()
}

/// Committed changes not yet applied on a target: those after the highest applied, and the
/// awaited ones below it that have committed since.
pub async fn backlog(c: &mut Conn, d: &Delivered) -> Result<i64> {
    let r = sqlx::query("SELECT COUNT(*) FROM changes WHERE id > $1")
        .bind(d.hi)
        .fetch_one(&mut *c)
        .await?;
    let after: i64 = r.try_get(0)?;
    let late = changes_by_ids(c, &d.gaps, false).await?.len() as i64;
    Ok(after + late)
}

/// The enabled home server serving `domain_id` with the fewest live subscribers.
pub async fn least_loaded_home(c: &mut Conn, domain_id: i64) -> Result<Option<i64>> {
    let r = sqlx::query(&least_loaded_home_sql("$1"))
        .bind(domain_id)
        .fetch_optional(&mut *c)
        .await?;
    r.map(|r| r.try_get(0)).transpose().map_err(Into::into)
}

/// The query behind [`least_loaded_home`] for the domain whose id `domain` (a parameter or a
/// column) gives, to be run on its own or as a scalar subquery.
pub fn least_loaded_home_sql(domain: &str) -> String {
    format!(
        "SELECT s.id FROM sipservers s WHERE s.role = 'home' AND s.enabled = 1 \
         AND (NOT EXISTS (SELECT 1 FROM sipserver_domains sd WHERE sd.sipserver_id = s.id) \
              OR EXISTS (SELECT 1 FROM sipserver_domains sd WHERE sd.sipserver_id = s.id AND sd.domain_id = {domain})) \
         ORDER BY (SELECT COUNT(*) FROM subscribers u WHERE u.home_server_id = s.id AND u.status <> 'terminated'), s.id \
         LIMIT 1"
    )
}

/// A domain (name) of a live subscriber homed on `id` that is not among `domain_ids`.
pub async fn homed_outside(c: &mut Conn, id: i64, domain_ids: &[i64]) -> Result<Option<String>> {
    let sql = format!(
        "SELECT d.domain FROM subscribers s JOIN domains d ON d.id = s.domain_id \
         WHERE s.home_server_id = $1 AND s.status <> 'terminated' AND s.domain_id NOT IN ({}) LIMIT 1",
        placeholders(2, domain_ids.len())
    );
    let mut args = vec![Arg::Int(id)];
    args.extend(domain_ids.iter().map(|d| Arg::Int(*d)));
    let row = bind_all(sqlx::query(&sql), &args)
        .fetch_optional(&mut *c)
        .await?;
    row.map(|r| r.try_get(0)).transpose().map_err(Into::into)
}

/// Whether server `id` is a home server that may hold subscribers of `domain_id`.
pub async fn is_home_for(c: &mut Conn, id: i64, domain_id: i64) -> Result<bool> {
    let r = sqlx::query(
        "SELECT 1 FROM sipservers s WHERE s.id = $1 AND s.role = 'home' \
         AND (NOT EXISTS (SELECT 1 FROM sipserver_domains sd WHERE sd.sipserver_id = s.id) \
              OR EXISTS (SELECT 1 FROM sipserver_domains sd WHERE sd.sipserver_id = s.id AND sd.domain_id = $2))",
    )
    .bind(id)
    .bind(domain_id)
    .fetch_optional(&mut *c)
    .await?;
    Ok(r.is_some())
}

// --- what a target should hold -------------------------------------------------------------

/// A subscriber as a SIP server sees it.
#[derive(Debug, Clone, FromRow)]
pub struct SubscriberState {
    pub id: i64,
    pub uuid: String,
    pub username: String,
    pub domain: String,
    pub domain_id: i64,
    pub password_enc: Option<String>,
    pub status: String,
    pub lock_level: i64,
    pub customer_status: String,
    pub home_server_id: Option<i64>,
    pub customer_id: i64,
}

/// A locked or terminated reseller stops its customers as their own status would.
const STATE_SELECT: &str = "SELECT s.id, s.uuid, s.username, d.domain, s.domain_id, s.password_enc, s.status, s.lock_level, \
    CASE WHEN r.status = 'active' THEN c.status ELSE r.status END AS customer_status, s.home_server_id, s.customer_id \
    FROM subscribers s JOIN domains d ON d.id = s.domain_id JOIN customers c ON c.id = s.customer_id \
    JOIN resellers r ON r.id = c.reseller_id";

/// Live subscribers by id (terminated ones are left out: nothing of theirs belongs anywhere).
pub async fn subscriber_states(c: &mut Conn, ids: &[i64]) -> Result<Vec<SubscriberState>> {
    super::fetch_by_ids(
        c,
        &format!("{STATE_SELECT} WHERE s.status <> 'terminated' AND s.id IN ({{ids}})"),
        ids,
    )
    .await
}

/// Every live subscriber, in id order, a page at a time (`after` = last id seen).
pub async fn subscriber_states_page(
    c: &mut Conn,
    after: i64,
    limit: i64,
) -> Result<Vec<SubscriberState>> {
    let sql = format!(
        "{STATE_SELECT} WHERE s.status <> 'terminated' AND s.id > $1 ORDER BY s.id LIMIT $2"
    );
    let rows = sqlx::query(&sql)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?;
    rows.iter()
        .map(|r| Ok(SubscriberState::from_row(r)?))
        .collect()
}

/// Live subscriber ids of a domain (its preferences are their defaults).
pub async fn subscriber_ids_of_domain(c: &mut Conn, domain_id: i64) -> Result<Vec<i64>> {
    let rows =
        sqlx::query("SELECT id FROM subscribers WHERE domain_id = $1 AND status <> 'terminated'")
            .bind(domain_id)
            .fetch_all(&mut *c)
            .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Subscriber ids (any status) with the given identities.
pub async fn ids_by_identity(c: &mut Conn, keys: &[(String, String)]) -> Result<Vec<i64>> {
    let mut by_domain: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for (user, domain) in keys {
        by_domain
            .entry(domain.as_str())
            .or_default()
            .push(user.as_str());
    }
    let mut out = Vec::new();
    for (domain, users) in by_domain {
        for chunk in users.chunks(500) {
            let sql = format!(
                "SELECT s.id FROM subscribers s JOIN domains d ON d.id = s.domain_id \
                 WHERE d.domain = $1 AND s.username IN ({})",
                placeholders(2, chunk.len())
            );
            let mut args = vec![Arg::Text(domain.to_string())];
            args.extend(chunk.iter().map(|u| Arg::Text(u.to_string())));
            let rows = bind_all(sqlx::query(&sql), &args)
                .fetch_all(&mut *c)
                .await?;
            for r in rows {
                out.push(r.try_get(0)?);
            }
        }
    }
    Ok(out)
}

/// Identities (username, domain) of subscribers by id, whatever their status.
pub async fn identities(c: &mut Conn, ids: &[i64]) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT s.username, d.domain FROM subscribers s JOIN domains d ON d.id = s.domain_id WHERE s.id IN ({})",
            placeholders(1, chunk.len())
        );
        let args: Vec<Arg> = chunk.iter().map(|i| Arg::Int(*i)).collect();
        let rows = bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *c)
            .await?;
        for r in rows {
            out.push((r.try_get(0)?, r.try_get(1)?));
        }
    }
    Ok(out)
}

pub async fn subscriber_ids_of_customer(c: &mut Conn, customer_id: i64) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT id FROM subscribers WHERE customer_id = $1")
        .bind(customer_id)
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn subscriber_ids_of_reseller(c: &mut Conn, reseller_id: i64) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT id FROM subscribers WHERE reseller_id = $1")
        .bind(reseller_id)
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn domain_names(c: &mut Conn) -> Result<Vec<String>> {
    let rows = sqlx::query("SELECT domain FROM domains ORDER BY domain")
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// One entry of the change log as a consumer reads it.
#[derive(Debug, Clone, FromRow)]
pub struct ChangeRow {
    pub id: i64,
    pub resource: String,
    pub object_id: i64,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The columns of a [`ChangeRow`]: with or without its before and after.
fn change_cols(payloads: bool) -> &'static str {
    if payloads {
        "id, resource, object_id, before, after"
    } else {
        "id, resource, object_id, CAST(NULL AS TEXT) AS before, CAST(NULL AS TEXT) AS after"
    }
}

pub async fn changes_after(
    c: &mut Conn,
    after: i64,
    limit: i64,
    payloads: bool,
) -> Result<Vec<ChangeRow>> {
    let rows = sqlx::query(&format!(
        "SELECT {} FROM changes WHERE id > $1 ORDER BY id LIMIT $2",
        change_cols(payloads)
    ))
    .bind(after)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| Ok(ChangeRow::from_row(r)?)).collect()
}

pub async fn changes_by_ids(c: &mut Conn, ids: &[i64], payloads: bool) -> Result<Vec<ChangeRow>> {
    let sql = format!(
        "SELECT {} FROM changes WHERE id IN ({{ids}}) ORDER BY id",
        change_cols(payloads)
    );
    super::fetch_by_ids(c, &sql, ids).await
}

pub async fn change_ids_between(c: &mut Conn, after: i64, upto: i64) -> Result<Vec<i64>> {
    let rows = sqlx::query("SELECT id FROM changes WHERE id > $1 AND id <= $2 ORDER BY id")
        .bind(after)
        .bind(upto)
        .fetch_all(&mut *c)
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn max_change_id(c: &mut Conn) -> Result<i64> {
    let r = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM changes")
        .fetch_one(&mut *c)
        .await?;
    Ok(r.try_get(0)?)
}
