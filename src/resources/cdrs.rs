//! `/api/cdrs/` (NGCP's name): call records collected from the SIP servers' accounting
//! (targets/cdrs.rs), read-only, within the reader's reseller; `/api/cdrs/export` gives the
//! same list as CSV (SARK's `GET /logs/cdrs/{limit}`).

use async_trait::async_trait;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::Actor;
use crate::resources::{ListQuery, NoInput, Resource};
use crate::store::cdrs::{Cdr, CdrRow, CDR_COLS};
use crate::store::{get_as, list_as, Arg, Conn};

pub struct Cdrs;

/// A moment as a filter gives it: `YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`, RFC 3339, or seconds
/// since 1970; in ms.
fn moment(field: &str, s: &str) -> Result<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return n
            .checked_mul(1000)
            .ok_or_else(|| Error::BadRequest(format!("{field}: '{s}' is out of range")));
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp_millis());
    }
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, f) {
            return Ok(t.and_utc().timestamp_millis());
        }
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d
            .and_hms_opt(0, 0, 0)
            .unwrap_or_default()
            .and_utc()
            .timestamp_millis());
    }
    Err(Error::BadRequest(format!(
        "{field}: '{s}' is not a date (YYYY-MM-DD), a date and time (YYYY-MM-DD HH:MM:SS, UTC) or seconds since 1970"
    )))
}

pub async fn list_rows(
    c: &mut Conn,
    actor: &Actor,
    q: &ListQuery,
) -> Result<(Vec<Cdr>, Option<i64>)> {
    let mut w = q.where_scoped(
        actor,
        &["caller", "callee", "destination"],
        &[
            "reseller_id",
            "customer_id",
            "tenant_id",
            "sipserver_id",
            "caller_subscriber_id",
            "callee_subscriber_id",
        ],
    )?;
    // The SIP Call-ID is text (a filter named *_id would be read as an integer id).
    if let Some(v) = q.get("callid") {
        w.text_filter("call_id", v);
    }
    for f in ["status", "direction"] {
        if let Some(v) = q.get(f) {
            w.push(&format!("{f} = ?"), Arg::Text(v.to_string()));
        }
    }
    if let Some(v) = q.get("start_ge") {
        w.push("start_ms >= ?", Arg::Int(moment("start_ge", v)?));
    }
    if let Some(v) = q.get("start_le") {
        w.push("start_ms <= ?", Arg::Int(moment("start_le", v)?));
    }
    let (rows, total): (Vec<CdrRow>, _) = list_as(c, CDR_COLS, "cdrs", &w, &q.page).await?;
    Ok((rows.into_iter().map(Cdr::from).collect(), total))
}

#[async_trait]
impl Resource for Cdrs {
    const NAME: &'static str = "cdrs";
    const SUMMARY: &'static str =
        "Call records: every call through the SIP servers, with its parties, status and times";
    const CAN_CREATE: bool = false;
    const CAN_UPDATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("reseller_id", "owning reseller"),
        ("customer_id", "the customer"),
        ("tenant_id", "the PBX tenant"),
        ("sipserver_id", "the SIP server"),
        ("caller_subscriber_id", "the calling subscriber"),
        ("callee_subscriber_id", "the called subscriber"),
        ("caller", "caller user@domain, * wildcard"),
        ("callee", "the number dialled, * wildcard"),
        ("destination", "where the call ended up, * wildcard"),
        ("callid", "the SIP Call-ID, * wildcard"),
        ("status", "ok, busy, noanswer, cancel, offline or other"),
        ("direction", "local, out, in or foreign"),
        (
            "start_ge",
            "started at or after (YYYY-MM-DD[ HH:MM:SS] UTC, or epoch seconds)",
        ),
        ("start_le", "started at or before"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("start_time", "start_ms"),
        ("duration", "end_ms - answer_ms"),
    ];
    const READ_ONLY: &'static [&'static str] = &[];
    type Repr = Cdr;
    type Input = NoInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Cdr>, Option<i64>)> {
        list_rows(c, actor, q).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Cdr>> {
        let r: Option<CdrRow> = get_as(c, CDR_COLS, "cdrs", id, lock).await?;
        Ok(r.map(Cdr::from))
    }
    fn id(r: &Cdr) -> i64 {
        r.id
    }
    fn reseller_of(r: &Cdr) -> Option<i64> {
        r.reseller_id
    }
}

/// The CSV columns of an export, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "start_time",
    "answer_time",
    "end_time",
    "duration",
    "status",
    "sip_code",
    "caller",
    "callee",
    "destination",
    "direction",
    "trunk",
    "reseller_id",
    "customer_id",
    "tenant_id",
    "call_id",
];

/// A CSV field: quoted when it must be, and never a formula to a spreadsheet.
fn csv_field(s: &str) -> String {
    // A spreadsheet takes = @ tab CR, and + or - before anything but a digit, as a formula.
    let mut chars = s.chars();
    let formula = match chars.next() {
        Some('=' | '@' | '\t' | '\r') => true,
        Some('+' | '-') => !chars.next().is_some_and(|c| c.is_ascii_digit()),
        _ => false,
    };
    let s = if formula {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r', '\t']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

pub fn to_csv(rows: &[Cdr]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push('\n');
    for r in rows {
        let v = serde_json::to_value(r).unwrap_or_default();
        let line: Vec<String> = CSV_COLUMNS
            .iter()
            .map(|c| match &v[*c] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => csv_field(s),
                other => other.to_string(),
            })
            .collect();
        out.push_str(&line.join(","));
        out.push('\n');
    }
    out
}
