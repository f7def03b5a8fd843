//! Call records as stored (see migrations 0008): one per call and SIP server, made and
//! completed from the server's accounting rows by targets/cdrs.rs.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{Arg, Conn};
use crate::error::Result;

#[derive(Debug, Clone, FromRow)]
pub struct CdrRow {
    pub id: i64,
    pub sipserver_id: i64,
    pub call_id: String,
    /// The INVITE's tags: the call is the dialog (Call-ID, From tag); a BYE names it by either.
    pub from_tag: String,
    pub to_tag: String,
    pub reseller_id: Option<i64>,
    pub customer_id: Option<i64>,
    pub tenant_id: Option<i64>,
    pub caller: String,
    pub caller_subscriber_id: Option<i64>,
    pub callee: String,
    pub destination: String,
    pub callee_subscriber_id: Option<i64>,
    pub direction: String,
    pub trunk: Option<String>,
    pub status: String,
    pub sip_code: i64,
    pub sip_reason: String,
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
    pub end_ms: Option<i64>,
}
pub const CDR_COLS: &str =
    "id, sipserver_id, call_id, from_tag, to_tag, reseller_id, customer_id, tenant_id, caller, \
    caller_subscriber_id, callee, destination, callee_subscriber_id, direction, trunk, status, \
    sip_code, sip_reason, start_ms, answer_ms, end_ms";

/// A call record as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Cdr {
    pub id: i64,
    pub sipserver_id: i64,
    /// The SIP Call-ID.
    pub call_id: String,
    pub reseller_id: Option<i64>,
    /// The customer of the caller if a subscriber called, else of the callee.
    pub customer_id: Option<i64>,
    /// The PBX tenant, when the subscriber is an extension.
    pub tenant_id: Option<i64>,
    /// user@domain of the caller (a carrier's caller: the number and the carrier's address).
    pub caller: String,
    pub caller_subscriber_id: Option<i64>,
    /// The number or user as dialled.
    pub callee: String,
    /// Where the call ended up (user@domain): after aliases, short numbers, forwards, groups.
    pub destination: String,
    pub callee_subscriber_id: Option<i64>,
    /// local (subscriber to subscriber), out (to a carrier or a foreign domain), in (from a
    /// carrier or a foreign caller), foreign (neither party is a subscriber).
    pub direction: String,
    /// The peering group (carrier) the call went to or came from.
    pub trunk: Option<String>,
    /// ok | busy | noanswer | cancel | offline | other (NGCP's call_status).
    pub status: String,
    pub sip_code: i64,
    pub sip_reason: String,
    /// When the INVITE arrived (UTC, ISO 8601 with milliseconds).
    pub start_time: String,
    pub answer_time: Option<String>,
    /// When the call ended: the BYE, or the failure.
    pub end_time: Option<String>,
    /// Seconds from answer to end (0 for calls not answered, null while in progress).
    pub duration: Option<f64>,
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

impl From<CdrRow> for Cdr {
    fn from(r: CdrRow) -> Cdr {
        let duration = match (r.status.as_str(), r.answer_ms, r.end_ms) {
            ("ok", Some(a), Some(e)) => Some(((e - a).max(0) as f64) / 1000.0),
            ("ok", _, None) => None,
            _ => Some(0.0),
        };
        Cdr {
            id: r.id,
            sipserver_id: r.sipserver_id,
            call_id: r.call_id,
            reseller_id: r.reseller_id,
            customer_id: r.customer_id,
            tenant_id: r.tenant_id,
            caller: r.caller,
            caller_subscriber_id: r.caller_subscriber_id,
            callee: r.callee,
            destination: r.destination,
            callee_subscriber_id: r.callee_subscriber_id,
            direction: r.direction,
            trunk: r.trunk,
            status: r.status,
            sip_code: r.sip_code,
            sip_reason: r.sip_reason,
            start_time: iso(r.start_ms),
            answer_time: r.answer_ms.map(iso),
            end_time: r.end_ms.map(iso),
            duration,
        }
    }
}

/// The call of an INVITE: (Call-ID, From tag).
pub async fn by_call(
    c: &mut Conn,
    server: i64,
    call_id: &str,
    from_tag: &str,
) -> Result<Option<CdrRow>> {
    one(c, "from_tag = $3", server, call_id, from_tag).await
}

/// The answered call a BYE ends: its Call-ID, and its From tag as either party's tag.
pub async fn by_dialog(
    c: &mut Conn,
    server: i64,
    call_id: &str,
    tag: &str,
) -> Result<Option<CdrRow>> {
    one(
        c,
        "(from_tag = $3 OR to_tag = $3) AND answer_ms IS NOT NULL",
        server,
        call_id,
        tag,
    )
    .await
}

async fn one(
    c: &mut Conn,
    cond: &str,
    server: i64,
    call_id: &str,
    tag: &str,
) -> Result<Option<CdrRow>> {
    let row = sqlx::query(&format!(
        "SELECT {CDR_COLS} FROM cdrs WHERE sipserver_id = $1 AND call_id = $2 AND {cond} \
         ORDER BY id DESC LIMIT 1"
    ))
    .bind(server)
    .bind(call_id.to_string())
    .bind(tag.to_string())
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.as_ref().map(CdrRow::from_row).transpose()?)
}

pub async fn save(c: &mut Conn, r: &CdrRow) -> Result<()> {
    let cols = vec![
        ("sipserver_id", Arg::Int(r.sipserver_id)),
        ("call_id", Arg::Text(r.call_id.clone())),
        ("from_tag", Arg::Text(r.from_tag.clone())),
        ("to_tag", Arg::Text(r.to_tag.clone())),
        ("reseller_id", Arg::opt_int(r.reseller_id)),
        ("customer_id", Arg::opt_int(r.customer_id)),
        ("tenant_id", Arg::opt_int(r.tenant_id)),
        ("caller", Arg::Text(r.caller.clone())),
        ("caller_subscriber_id", Arg::opt_int(r.caller_subscriber_id)),
        ("callee", Arg::Text(r.callee.clone())),
        ("destination", Arg::Text(r.destination.clone())),
        ("callee_subscriber_id", Arg::opt_int(r.callee_subscriber_id)),
        ("direction", Arg::Text(r.direction.clone())),
        ("trunk", Arg::opt_text(r.trunk.clone())),
        ("status", Arg::Text(r.status.clone())),
        ("sip_code", Arg::Int(r.sip_code)),
        ("sip_reason", Arg::Text(r.sip_reason.clone())),
        ("start_ms", Arg::Int(r.start_ms)),
        ("answer_ms", Arg::opt_int(r.answer_ms)),
        ("end_ms", Arg::opt_int(r.end_ms)),
    ];
    super::save_row(c, "cdrs", (r.id > 0).then_some(r.id), cols).await?;
    Ok(())
}

/// How far a server's accounting tables were read: (acc id, missed_calls id).
pub async fn cursor(c: &mut Conn, server: i64) -> Result<(i64, i64)> {
    let r: Option<(i64, i64)> =
        sqlx::query_as("SELECT acc_id, missed_id FROM cdr_cursors WHERE sipserver_id = $1")
            .bind(server)
            .fetch_optional(&mut *c)
            .await?;
    Ok(r.unwrap_or((0, 0)))
}

pub async fn set_cursor(c: &mut Conn, server: i64, acc: i64, missed: i64) -> Result<()> {
    sqlx::query("DELETE FROM cdr_cursors WHERE sipserver_id = $1")
        .bind(server)
        .execute(&mut *c)
        .await?;
    sqlx::query("INSERT INTO cdr_cursors (sipserver_id, acc_id, missed_id) VALUES ($1, $2, $3)")
        .bind(server)
        .bind(acc)
        .bind(missed)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// A subscriber by SIP identity: (id, customer, reseller, PBX tenant).
pub async fn party(
    c: &mut Conn,
    user: &str,
    domain: &str,
) -> Result<Option<(i64, i64, i64, Option<i64>)>> {
    if user.is_empty() || domain.is_empty() {
        return Ok(None);
    }
    Ok(sqlx::query_as(
        "SELECT s.id, s.customer_id, s.reseller_id, e.tenant_id FROM subscribers s \
         JOIN domains d ON d.id = s.domain_id LEFT JOIN pbx_extensions e ON e.subscriber_id = s.id \
         WHERE s.username = $1 AND d.domain = $2 ORDER BY s.id DESC LIMIT 1",
    )
    .bind(user.to_string())
    .bind(domain.to_string())
    .fetch_optional(&mut *c)
    .await?)
}

/// Deletes the records that started before `ms`; how many went.
pub async fn prune(c: &mut Conn, before_ms: i64) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM cdrs WHERE start_ms < $1")
        .bind(before_ms)
        .execute(&mut *c)
        .await?
        .rows_affected())
}
