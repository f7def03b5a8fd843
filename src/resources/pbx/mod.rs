//! The cloud PBX (SARK V6's objects, on the Kamailio voxprov drives): tenants
//! (`/api/pbxtenants/`, a pbxaccount customer with its PBX settings), extensions
//! (`/api/pbxextensions/`, each a subscriber, and a phone when provisioned by MAC), ring groups
//! (`/api/pbxringgroups/`), day and holiday timers (`/api/pbxdaytimers/`,
//! `/api/pbxholidaytimers/`) that open and close a tenant, inbound routes
//! (`/api/pbxinboundroutes/`) and the global settings (`/api/pbxglobals`). The SIP servers hold
//! them as rows of the htable `pbx` (targets/pbx.rs).
//!
//! SARK's validation rules are kept field by field (its `in:` lists, `integer`, `alpha_dash`,
//! `alpha_num`, `email`, `digits:N`, its regular expressions); fields SARK has that need a
//! media server or the Asterisk it drives are stored and documented as "stored only".

pub mod extensions;
pub mod globals;
pub mod inbound;
pub mod ringgroups;
pub mod runtime;
pub mod tenants;
pub mod timers;

use serde_json::Value;

use crate::error::{Error, Problems, Result};
use crate::model::Actor;
use crate::store::pbx::{self as st, PbxTenant};
use crate::store::{get_from_view, Conn};

// ---- SARK's field rules, on JSON values (null and absent are "not given") -----------------

/// `integer`: a JSON integer or a string of digits (Laravel takes both).
pub fn integer(field: &str, v: &Value) -> Result<Option<i64>> {
    match v {
        Value::Null => Ok(None),
        Value::Number(n) if n.is_i64() => Ok(n.as_i64()),
        Value::String(s) if !s.trim().is_empty() => s
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| Error::invalid(field, format!("'{s}' is not an integer"))),
        _ => Err(Error::invalid(field, "must be an integer")),
    }
}

/// `integer` for numbers where leading zeros matter (phone numbers): kept as digits.
pub fn digits(field: &str, v: &Value, max: usize) -> Result<Option<String>> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) => s.trim().to_string(),
        _ => return Err(Error::invalid(field, "must be an integer")),
    };
    if s.is_empty() || s.len() > max || !s.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::invalid(
            field,
            format!("must be an integer (1 to {max} digits)"),
        ));
    }
    Ok(Some(s))
}

/// `in:a,b,c`.
pub fn one_of(field: &str, v: &Value, allowed: &[&str]) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) if allowed.contains(&s.as_str()) => Ok(Some(s.clone())),
        _ => Err(Error::invalid(
            field,
            format!("must be one of {}", allowed.join(", ")),
        )),
    }
}

/// `string`: text without control characters, at most `max` characters.
pub fn string(field: &str, v: &Value, max: usize) -> Result<Option<String>> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => crate::model::text(field, Some(s.clone()), max),
        _ => Err(Error::invalid(field, "must be a string")),
    }
}

fn chars_only(
    field: &str,
    v: &Value,
    max: usize,
    ok: fn(char) -> bool,
    what: &str,
) -> Result<Option<String>> {
    match string(field, v, max)? {
        None => Ok(None),
        Some(s) if !s.is_empty() && s.chars().all(ok) => Ok(Some(s)),
        Some(_) => Err(Error::invalid(field, format!("may only contain {what}"))),
    }
}

/// `alpha_dash`: letters, digits, dashes and underscores.
pub fn alpha_dash(field: &str, v: &Value, max: usize) -> Result<Option<String>> {
    chars_only(
        field,
        v,
        max,
        |c| c.is_ascii_alphanumeric() || c == '-' || c == '_',
        "letters, digits, dashes and underscores",
    )
}

/// `alpha_num`: letters and digits.
pub fn alpha_num(field: &str, v: &Value, max: usize) -> Result<Option<String>> {
    chars_only(
        field,
        v,
        max,
        |c| c.is_ascii_alphanumeric(),
        "letters and digits",
    )
}

/// `alpha`: letters.
pub fn alpha(field: &str, v: &Value, max: usize) -> Result<Option<String>> {
    chars_only(field, v, max, |c| c.is_ascii_alphabetic(), "letters")
}

/// `email`.
pub fn email(field: &str, v: &Value) -> Result<Option<String>> {
    crate::model::email(field, string(field, v, 255)?)
}

/// `required`.
pub fn required<T>(field: &str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| Error::invalid(field, "is required"))
}

// ---- tenants and destinations ------------------------------------------------------------

/// The tenant `id` as `actor` may name it (another reseller's is "does not exist": 422).
pub async fn tenant_for(c: &mut Conn, actor: &Actor, id: i64) -> Result<PbxTenant> {
    let t: Option<PbxTenant> = get_from_view(
        c,
        "pbx_tenants",
        st::TENANT_COLS,
        st::TENANT_VIEW,
        id,
        false,
    )
    .await?;
    match t {
        Some(t) if actor.scope().is_none_or(|r| r == t.reseller_id) => Ok(t),
        _ => Err(Error::invalid(
            "tenant_id",
            format!("Invalid 'tenant_id': PBX tenant {id} does not exist"),
        )),
    }
}

/// A tenant id given as a JSON integer or digit string (SARK's `cluster` names a tenant too).
pub fn tenant_id(v: &Value) -> Result<i64> {
    required("tenant_id", integer("tenant_id", v)?)
}

/// The longest external number a destination may name.
const MAX_NUMBER: usize = 20;

/// A destination of `tenant` (an inbound route's open or closed route, a ring group's outcome
/// or member, a holiday's route): one of the tenant's extension or ring group numbers,
/// `operator`, or an external number (`+` and digits, or digits longer than an extension).
/// Returned as stored: trimmed, `operator` in lower case.
pub async fn destination(c: &mut Conn, tenant: &PbxTenant, field: &str, s: &str) -> Result<String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("operator") {
        return Ok("operator".into());
    }
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.is_empty() || digits.len() > MAX_NUMBER || !digits.chars().all(|c| c.is_ascii_digit())
    {
        return Err(Error::invalid(
            field,
            format!(
                "'{}' is not a destination: an extension or ring group number, 'operator' or an external number",
                s.chars().take(40).collect::<String>()
            ),
        ));
    }
    if !s.starts_with('+') && st::number_taken(c, tenant.id, s, None).await?.is_some() {
        return Ok(s.to_string());
    }
    if s.starts_with('+') || s.len() > tenant.extension_length() {
        return Ok(s.to_string());
    }
    Err(Error::invalid(
        field,
        format!("tenant {} has no extension or ring group {s}", tenant.id),
    ))
}

/// Whether a destination field of the tenant's objects names `number` (before it may go).
pub async fn number_in_use(c: &mut Conn, tenant: i64, number: &str) -> Result<Option<String>> {
    let groups: Vec<(i64, String, String)> =
        sqlx::query_as("SELECT id, members, outcome FROM pbx_ringgroups WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_all(&mut *c)
            .await?;
    for (id, members, outcome) in groups {
        if outcome == number || members.split_whitespace().any(|m| m == number) {
            return Ok(Some(format!("ring group {id}")));
        }
    }
    let routes: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, openroute, closeroute FROM pbx_inboundroutes WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&mut *c)
    .await?;
    for (id, open, closed) in routes {
        if open == number || closed == number {
            return Ok(Some(format!("inbound route {id}")));
        }
    }
    let hol: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM pbx_holidaytimers WHERE tenant_id = $1 AND route = $2 LIMIT 1",
    )
    .bind(tenant)
    .bind(number.to_string())
    .fetch_optional(&mut *c)
    .await?;
    if let Some(id) = hol {
        return Ok(Some(format!("holiday timer {id}")));
    }
    let dvr: Option<String> = sqlx::query_scalar(
        "SELECT extension FROM pbx_extensions WHERE tenant_id = $1 AND dvrvmail = $2 AND extension <> $2 LIMIT 1",
    )
    .bind(tenant)
    .bind(number.to_string())
    .fetch_optional(&mut *c)
    .await?;
    if let Some(e) = dvr {
        return Ok(Some(format!("extension {e} (dvrvmail)")));
    }
    let op: Option<i64> =
        sqlx::query_scalar("SELECT id FROM pbx_tenants WHERE id = $1 AND operator = $2")
            .bind(tenant)
            .bind(number.to_string())
            .fetch_optional(&mut *c)
            .await?;
    if op.is_some() {
        return Ok(Some("the tenant's operator setting".into()));
    }
    Ok(None)
}
