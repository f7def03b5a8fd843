//! The cloud PBX as stored: tenants, extensions, ring groups, day and holiday timers, inbound
//! routes and global settings (see migrations 0008_pbx).

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{all_of, Conn};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PbxTenant {
    pub id: i64,
    pub reseller_id: i64,
    /// The pbxaccount customer this tenant is.
    pub customer_id: i64,
    /// The SIP domain its extensions are subscribers of.
    pub domain_id: i64,
    #[sqlx(default)]
    pub domain: String,
    /// SARK's pkey: unique per reseller.
    pub name: String,
    pub description: String,
    /// The extension pattern (`_XXX`: three digits): how long extension numbers are.
    pub localdplan: String,
    /// The operator's extension (the `operator` destination).
    pub operator: Option<String>,
    /// AUTO: open or closed by the timers; CLOSED: closed whatever they say.
    pub masteroclo: String,
    /// Stored only.
    pub abstimeout: Option<i64>,
    /// Stored only.
    pub chanmax: Option<i64>,
    /// Stored only.
    pub clusterclid: Option<String>,
    /// Stored only.
    pub callgroup: Option<i64>,
    /// Stored only.
    pub pickupgroup: Option<i64>,
    /// Stored only.
    pub include: Option<String>,
    /// Stored only.
    pub localarea: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    /// Whether its customer and reseller are active: the SIP servers hold nothing of a tenant
    /// that is not.
    #[serde(skip)]
    #[sqlx(try_from = "i64")]
    pub live: super::Flag,
}
pub const TENANT_COLS: &str =
    "id, reseller_id, customer_id, domain_id, domain, name, description, \
    localdplan, operator, masteroclo, abstimeout, chanmax, clusterclid, callgroup, pickupgroup, \
    include, localarea, create_timestamp, modify_timestamp, live";
pub const TENANT_VIEW: &str = "(SELECT t.*, d.domain AS domain, \
    CASE WHEN c.status = 'active' AND r.status = 'active' THEN 1 ELSE 0 END AS live \
    FROM pbx_tenants t JOIN domains d ON d.id = t.domain_id \
    JOIN customers c ON c.id = t.customer_id JOIN resellers r ON r.id = t.reseller_id) v";

impl PbxTenant {
    /// How many digits an extension number has (the places of `localdplan`).
    pub fn extension_length(&self) -> usize {
        extension_length(&self.localdplan)
    }
}

pub fn extension_length(localdplan: &str) -> usize {
    localdplan
        .trim()
        .chars()
        .filter(|c| matches!(c, 'X' | 'Z' | 'N' | '0'..='9'))
        .count()
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PbxExtension {
    pub id: i64,
    pub tenant_id: i64,
    pub reseller_id: i64,
    /// The short number (SARK's pkey).
    pub extension: String,
    /// provisioned | unprovisioned | mailbox.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The subscriber that is this extension (its SIP credentials and call forwards).
    pub subscriber_id: i64,
    /// The SIP user name and domain the phone registers with.
    #[sqlx(default)]
    pub username: String,
    #[sqlx(default)]
    pub domain: String,
    /// The phone (provisioned extensions).
    pub device_id: Option<i64>,
    pub macaddr: Option<String>,
    /// YES | NO (NO locks the subscriber: it can neither register nor call).
    pub active: String,
    /// Stored only.
    pub callerid: Option<String>,
    /// Stored only.
    pub cellphone: Option<String>,
    /// Stored only.
    pub celltwin: String,
    /// udp | tcp | tls: stored only.
    pub transport: String,
    /// local | remote: stored only.
    pub location: String,
    /// No | Once | Always: stored only.
    pub sndcreds: String,
    /// Stored only.
    pub callbackto: Option<String>,
    /// Stored only.
    pub devicerec: Option<String>,
    /// Stored only.
    pub dvrvmail: Option<String>,
    /// Stored only.
    pub protocol: Option<String>,
    /// Stored only.
    pub provision: Option<String>,
    /// Stored only.
    pub provisionwith: Option<String>,
    /// Stored only.
    pub vmailfwd: Option<String>,
    pub description: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const EXTENSION_COLS: &str = "id, tenant_id, reseller_id, extension, type, subscriber_id, \
    username, domain, device_id, macaddr, active, callerid, cellphone, celltwin, transport, \
    location, sndcreds, callbackto, devicerec, dvrvmail, protocol, provision, provisionwith, \
    vmailfwd, description, create_timestamp, modify_timestamp";
pub const EXTENSION_VIEW: &str = "(SELECT e.*, s.username AS username, d.domain AS domain \
    FROM pbx_extensions e JOIN subscribers s ON s.id = e.subscriber_id \
    JOIN domains d ON d.id = s.domain_id) v";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PbxRingGroup {
    pub id: i64,
    pub tenant_id: i64,
    pub reseller_id: i64,
    /// The number the group is dialled by (SARK's pkey).
    pub number: String,
    /// Ring (all at once) | Hunt (one after another) | Alias (a second number of one
    /// member) | Page (all at once, answered by the phones themselves).
    pub grouptype: String,
    /// SARK's `out`: the members, extension or external numbers separated by spaces.
    #[sqlx(rename = "members")]
    pub out: String,
    /// Seconds: how long the group (Ring, Page) or each member (Hunt) rings; null: the
    /// RINGDELAY global.
    pub ringdelay: Option<i64>,
    /// Where the call goes when nobody answers.
    pub outcome: String,
    /// Stored only.
    pub obeydnd: Option<String>,
    pub longdesc: Option<String>,
    /// Stored only.
    pub devicerec: Option<String>,
    /// Stored only.
    pub dialparamshunt: Option<String>,
    /// Stored only.
    pub dialparamsring: Option<String>,
    /// Stored only.
    pub divert: Option<i64>,
    /// Stored only.
    pub greeting: Option<String>,
    /// Stored only.
    pub pagegroup: Option<i64>,
    /// Stored only.
    pub speedalert: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const RINGGROUP_COLS: &str = "id, tenant_id, reseller_id, number, grouptype, members, \
    ringdelay, outcome, obeydnd, longdesc, devicerec, dialparamshunt, dialparamsring, divert, \
    greeting, pagegroup, speedalert, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PbxDayTimer {
    pub id: i64,
    pub tenant_id: i64,
    pub reseller_id: i64,
    pub description: Option<String>,
    /// `*` or mon … sun.
    pub dayofweek: String,
    /// `*` or jan … dec.
    pub month: String,
    /// `*` or 1 … 31.
    pub datemonth: String,
    /// `*` or HH:MM-HH:MM (the end minute is not included).
    pub timespan: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const DAYTIMER_COLS: &str = "id, tenant_id, reseller_id, description, dayofweek, month, \
    datemonth, timespan, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PbxHolidayTimer {
    pub id: i64,
    pub tenant_id: i64,
    pub reseller_id: i64,
    pub description: Option<String>,
    /// Where calls go meanwhile; null: the inbound route's closed destination.
    pub route: Option<String>,
    /// Start, seconds since 1970 (included).
    pub stime: i64,
    /// End, seconds since 1970 (excluded).
    pub etime: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const HOLIDAY_COLS: &str = "id, tenant_id, reseller_id, description, route, stime, etime, \
    create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PbxInboundRoute {
    pub id: i64,
    pub tenant_id: i64,
    pub reseller_id: i64,
    /// The number: the called DID (carrier DiD) or the caller's number (carrier CLID).
    pub number: String,
    /// DiD | CLID.
    pub carrier: String,
    /// The peering group (trunk) the DID is on; null: any.
    pub trunk_id: Option<i64>,
    pub openroute: String,
    pub closeroute: String,
    /// YES | NO.
    pub active: String,
    /// Sent as the call's Alert-Info (distinctive ringing).
    pub alertinfo: Option<String>,
    /// Stored only.
    pub swoclip: String,
    /// Stored only.
    pub tag: Option<String>,
    /// Stored only.
    pub inprefix: Option<String>,
    pub description: Option<String>,
    /// Stored only.
    pub disa: Option<String>,
    /// Stored only (never shown).
    #[serde(skip)]
    pub disapass: Option<String>,
    /// Stored only.
    pub moh: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const INBOUND_COLS: &str = "id, tenant_id, reseller_id, number, carrier, trunk_id, openroute, \
    closeroute, active, alertinfo, swoclip, tag, inprefix, description, disa, disapass, moh, \
    create_timestamp, modify_timestamp";

/// What the SIP servers' PBX rows are computed from.
#[derive(Debug, Default)]
pub struct PbxData {
    pub tenants: Vec<PbxTenant>,
    pub extensions: Vec<PbxExtension>,
    pub ringgroups: Vec<PbxRingGroup>,
    pub daytimers: Vec<PbxDayTimer>,
    pub holidays: Vec<PbxHolidayTimer>,
    pub inbound: Vec<PbxInboundRoute>,
    pub globals: Vec<(String, String)>,
}

pub async fn pbx_data(c: &mut Conn) -> Result<PbxData> {
    Ok(PbxData {
        tenants: all_of(c, TENANT_COLS, TENANT_VIEW).await?,
        extensions: all_of(c, EXTENSION_COLS, EXTENSION_VIEW).await?,
        ringgroups: all_of(c, RINGGROUP_COLS, "pbx_ringgroups").await?,
        daytimers: all_of(c, DAYTIMER_COLS, "pbx_daytimers").await?,
        holidays: all_of(c, HOLIDAY_COLS, "pbx_holidaytimers").await?,
        inbound: all_of(c, INBOUND_COLS, "pbx_inboundroutes").await?,
        globals: globals(c).await?,
    })
}

pub async fn globals(c: &mut Conn) -> Result<Vec<(String, String)>> {
    let rows: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT name, value FROM pbx_globals ORDER BY name")
            .fetch_all(&mut *c)
            .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect())
}

pub async fn set_global(c: &mut Conn, name: &str, value: Option<&str>) -> Result<()> {
    sqlx::query("DELETE FROM pbx_globals WHERE name = $1")
        .bind(name.to_string())
        .execute(&mut *c)
        .await?;
    if let Some(v) = value {
        sqlx::query("INSERT INTO pbx_globals (name, value, modify_timestamp) VALUES ($1, $2, $3)")
            .bind(name.to_string())
            .bind(v.to_string())
            .bind(super::now())
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// The id of the tenant's extension `number`, if it has one.
pub async fn extension_id(c: &mut Conn, tenant: i64, number: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM pbx_extensions WHERE tenant_id = $1 AND extension = $2")
            .bind(tenant)
            .bind(number.to_string())
            .fetch_optional(&mut *c)
            .await?,
    )
}

/// Whether `digits` (cc, ac and sn together) is a number of a live subscriber of `customer`.
pub async fn customer_has_number(c: &mut Conn, customer: i64, digits: &str) -> Result<bool> {
    let hit: Option<i64> = sqlx::query_scalar(
        "SELECT n.id FROM numbers n JOIN subscribers s ON s.id = n.subscriber_id \
         WHERE s.customer_id = $1 AND s.status <> 'terminated' AND n.cc || n.ac || n.sn = $2 LIMIT 1",
    )
    .bind(customer)
    .bind(digits.to_string())
    .fetch_optional(&mut *c)
    .await?;
    Ok(hit.is_some())
}

/// The inbound route of `carrier` for `number`: platform-wide, or within one tenant.
pub async fn inbound_route_of(
    c: &mut Conn,
    carrier: &str,
    number: &str,
    tenant: Option<i64>,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM pbx_inboundroutes WHERE carrier = $1 AND number = $2 \
         AND ($3 = 0 OR tenant_id = $3) LIMIT 1",
    )
    .bind(carrier.to_string())
    .bind(number.to_string())
    .bind(tenant.unwrap_or(0))
    .fetch_optional(&mut *c)
    .await?)
}

/// Whether `number` is already an extension, ring group or inbound destination number of the
/// tenant (other than the object `except` of `table`).
pub async fn number_taken(
    c: &mut Conn,
    tenant: i64,
    number: &str,
    except: Option<(&str, i64)>,
) -> Result<Option<&'static str>> {
    for (table, col, what) in [
        ("pbx_extensions", "extension", "an extension"),
        ("pbx_ringgroups", "number", "a ring group"),
    ] {
        let id: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT id FROM {table} WHERE tenant_id = $1 AND {col} = $2"
        ))
        .bind(tenant)
        .bind(number.to_string())
        .fetch_optional(&mut *c)
        .await?;
        if let Some(id) = id {
            if except != Some((table, id)) {
                return Ok(Some(what));
            }
        }
    }
    Ok(None)
}

// ---- day timers ------------------------------------------------------------------------

pub const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
pub const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Minutes of the day of `HH:MM`, SARK's hours 00–23 and minutes 00–59.
fn hhmm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A timespan as (start, end) minutes of the day; None for `*`.
pub fn timespan(field: &str, s: &str) -> Result<Option<(u32, u32)>> {
    if s == "*" {
        return Ok(None);
    }
    let parsed = s
        .split_once('-')
        .and_then(|(a, b)| Some((hhmm(a)?, hhmm(b)?)));
    match parsed {
        Some((a, b)) if a < b => Ok(Some((a, b))),
        Some(_) => Err(Error::invalid(
            field,
            "the start must be before the end (split a span over midnight into two timers)",
        )),
        None => Err(Error::invalid(field, "must be * or HH:MM-HH:MM")),
    }
}
