//! `/api/pbxglobals`: SARK's global settings, one document (GET, PUT with the settings to
//! change; admins only). Each has SARK's rule; the ones the SIP servers act on are marked
//! `applied` in [`GLOBALS`], the rest are stored so SARK-style clients keep them.

use serde_json::{Map, Value};

use super::{alpha, digits, email, integer, one_of, string};
use crate::error::{Error, Result};

#[derive(Clone, Copy)]
pub enum Rule {
    Int,
    IntOrNull,
    In(&'static [&'static str]),
    Email,
    EmailOrNull,
    Str,
    StrOrNull,
    Digits(usize),
    /// alpha|size:2.
    Alpha2,
    Url,
    Fqdn,
    Ip,
}

const NO_YES: &[&str] = &["NO", "YES"];
const YES_NO: &[&str] = &["YES", "NO"];
const EN_DIS: &[&str] = &["enabled", "disabled"];
const ON_OFF: &[&str] = &["ON", "OFF"];
const REC: &[&str] = &["None", "OTR", "OTRR", "Inbound.Outbound", "Both"];

/// Every global: (name, rule, applied by the SIP servers, what it does here).
pub const GLOBALS: &[(&str, Rule, bool, &str)] = &[
    ("ABSTIMEOUT", Rule::Int, false, "stored only"),
    ("ACL", Rule::In(NO_YES), false, "stored only"),
    ("AGENTSTART", Rule::Int, false, "stored only"),
    ("ALERT", Rule::Email, false, "stored only"),
    ("ALLOWHASHXFER", Rule::In(EN_DIS), false, "stored only"),
    ("BLINDBUSY", Rule::IntOrNull, false, "stored only"),
    ("BOUNCEALERT", Rule::IntOrNull, false, "stored only"),
    ("CALLPARKING", Rule::In(NO_YES), false, "stored only"),
    ("CALLRECORD1", Rule::In(REC), false, "stored only"),
    ("CAMPONQONOFF", Rule::In(&["OFF", "ON"]), false, "stored only"),
    ("CAMPONQOPT", Rule::StrOrNull, false, "stored only"),
    ("CFWDEXTRNRULE", Rule::In(EN_DIS), false, "stored only"),
    ("CFWDPROGRESS", Rule::In(EN_DIS), false, "stored only"),
    ("CFWDANSWER", Rule::In(EN_DIS), false, "stored only"),
    ("CLUSTER", Rule::In(ON_OFF), false, "stored only (tenants are always on)"),
    ("CONFTYPE", Rule::In(&["simple", "hosted"]), false, "stored only"),
    ("COSSTART", Rule::In(ON_OFF), false, "stored only (class of service: /api/ncoslevels/)"),
    ("COUNTRYCODE", Rule::Alpha2, false, "stored only"),
    ("EURL", Rule::Url, false, "stored only"),
    ("EMERGENCY", Rule::Digits(3), true, "an emergency number: never barred by lock or class of service, in addition to the SIP server's EMERGENCY_NUMBERS"),
    ("FQDN", Rule::Fqdn, false, "stored only"),
    ("FQDNINSPECT", Rule::In(NO_YES), false, "stored only"),
    ("FQDNPROV", Rule::In(NO_YES), false, "stored only"),
    ("INTRINGDELAY", Rule::Int, true, "seconds a subscriber rings before its no-answer forward (cft) when it sets no ringtimeout (default 20)"),
    ("IVRKEYWAIT", Rule::IntOrNull, false, "stored only"),
    ("IVRDIGITWAIT", Rule::IntOrNull, false, "stored only"),
    ("LACL", Rule::In(NO_YES), false, "stored only"),
    ("LDAPBASE", Rule::StrOrNull, false, "stored only"),
    ("LDAPOU", Rule::StrOrNull, false, "stored only"),
    ("LDAPUSER", Rule::StrOrNull, false, "stored only"),
    ("LDAPPASS", Rule::StrOrNull, false, "stored only"),
    ("LEASEHDTIME", Rule::Int, false, "stored only"),
    ("LOCALIP", Rule::Ip, false, "stored only"),
    ("LOGLEVEL", Rule::Int, false, "stored only"),
    ("LOGSIPDISPSIZE", Rule::Int, false, "stored only"),
    ("LOGSIPNUMFILES", Rule::Int, false, "stored only"),
    ("LOGSIPFILESIZE", Rule::Int, false, "stored only"),
    ("LTERM", Rule::In(NO_YES), false, "stored only"),
    ("MAXIN", Rule::Int, false, "stored only"),
    ("MIXMONITOR", Rule::In(NO_YES), false, "stored only"),
    ("MONITOROUT", Rule::Str, false, "stored only"),
    ("MONITORSTAGE", Rule::Str, false, "stored only"),
    ("MONITORTYPE", Rule::In(&["monitor", "mixmonitor"]), false, "stored only"),
    ("NATDEFAULT", Rule::In(&["local", "remote"]), false, "stored only"),
    ("OPERATOR", Rule::Int, false, "stored only (each tenant has its operator)"),
    ("PWDLEN", Rule::Int, false, "stored only"),
    ("PLAYBEEP", Rule::In(YES_NO), false, "stored only"),
    ("PLAYBUSY", Rule::In(YES_NO), false, "stored only"),
    ("PLAYCONGESTED", Rule::In(YES_NO), false, "stored only"),
    ("PLAYTRANSFER", Rule::In(YES_NO), false, "stored only"),
    ("RECFINALDEST", Rule::Str, false, "stored only"),
    ("RECLIMIT", Rule::Int, false, "stored only"),
    ("RECQDITHER", Rule::Int, false, "stored only"),
    ("RECQSEARCHLIM", Rule::Int, false, "stored only"),
    ("RINGDELAY", Rule::Int, true, "seconds a Ring or Page group, or each member of a Hunt group, rings when the group sets no ringdelay (default 20)"),
    ("SESSIONTIMOUT", Rule::Int, false, "stored only"),
    ("SENDEDOMAIN", Rule::In(YES_NO), false, "stored only"),
    ("SIPIAXSTART", Rule::Int, false, "stored only"),
    ("SIPFLOOD", Rule::In(NO_YES), false, "stored only"),
    ("SPYPASS", Rule::Int, false, "stored only"),
    ("SUPEMAIL", Rule::EmailOrNull, false, "stored only"),
    ("SYSOP", Rule::Int, false, "stored only"),
    ("SYSPASS", Rule::Int, false, "stored only"),
    ("TLSPORT", Rule::Int, false, "stored only"),
    ("USEROTP", Rule::Str, false, "stored only"),
    ("USERCREATE", Rule::In(NO_YES), false, "stored only"),
    ("VDELAY", Rule::Int, false, "stored only"),
    ("VMAILAGE", Rule::Int, false, "stored only"),
    ("VOICEINSTR", Rule::In(YES_NO), false, "stored only"),
    ("VOIPMAX", Rule::Int, false, "stored only"),
    ("VXT", Rule::In(&["0", "1"]), false, "stored only"),
    ("ZTP", Rule::In(&["disabled", "enabled"]), false, "stored only"),
];

/// Globals never shown (passwords).
pub const SECRET: &[&str] = &["LDAPPASS", "SYSPASS", "SPYPASS"];

fn fqdn(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 255
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
        && !labels
            .last()
            .is_some_and(|t| t.chars().all(|c| c.is_ascii_digit()))
}

/// One setting checked against its rule: Some(stored text) or None (cleared).
pub fn check(name: &str, rule: Rule, v: &Value) -> Result<Option<String>> {
    let text = match v {
        Value::Number(n) => Value::String(n.to_string()),
        v => v.clone(),
    };
    let need = |o: Option<String>| {
        o.ok_or_else(|| Error::invalid(name, "is required (null is not allowed)"))
    };
    Ok(match rule {
        Rule::Int => Some(need(integer(name, v)?.map(|i| i.to_string()))?),
        Rule::IntOrNull => integer(name, v)?.map(|i| i.to_string()),
        Rule::In(list) => Some(need(one_of(name, &text, list)?)?),
        Rule::Email => Some(need(email(name, v)?)?),
        Rule::EmailOrNull => email(name, v)?,
        Rule::Str => Some(need(string(name, v, 255)?)?),
        Rule::StrOrNull => string(name, v, 255)?,
        Rule::Digits(n) => {
            let d = need(digits(name, &text, n)?)?;
            if d.len() != n {
                return Err(Error::invalid(name, format!("must be {n} digits")));
            }
            Some(d)
        }
        Rule::Alpha2 => {
            let a = need(alpha(name, v, 2)?)?;
            if a.len() != 2 {
                return Err(Error::invalid(name, "must be 2 letters"));
            }
            Some(a)
        }
        Rule::Url => {
            let s = need(string(name, v, 255)?)?;
            let rest = s
                .strip_prefix("https://")
                .or_else(|| s.strip_prefix("http://"))
                .unwrap_or(&s);
            let host = rest.split('/').next().unwrap_or("");
            if !fqdn(&host.to_ascii_lowercase())
                || rest.contains(char::is_whitespace) && host.is_empty()
            {
                return Err(Error::invalid(
                    name,
                    "must be a URL (http(s)://host.domain/path)",
                ));
            }
            Some(s)
        }
        Rule::Fqdn => {
            let s = need(string(name, v, 255)?)?;
            if !fqdn(&s.to_ascii_lowercase()) {
                return Err(Error::invalid(
                    name,
                    "must be a fully qualified domain name",
                ));
            }
            Some(s)
        }
        Rule::Ip => {
            let s = need(string(name, v, 64)?)?;
            if s.parse::<std::net::IpAddr>().is_err() {
                return Err(Error::invalid(name, "must be an IP address"));
            }
            Some(s)
        }
    })
}

/// A PUT body checked: the settings to write (name, value or None to clear).
pub fn parse_update(body: &Value) -> Result<Vec<(&'static str, Option<String>)>> {
    let Value::Object(m) = body else {
        return Err(Error::invalid("body", "must be a JSON object of settings"));
    };
    let mut out = Vec::new();
    for (k, v) in m {
        if k.starts_with('_') {
            continue;
        }
        let Some((name, rule, _, _)) = GLOBALS.iter().find(|(n, ..)| *n == k.as_str()) else {
            return Err(Error::invalid(k.as_str(), "is not a global setting"));
        };
        if SECRET.contains(name) && v.as_str() == Some("********") {
            continue;
        }
        let value = check(name, *rule, v)?;
        // What the SIP servers read: seconds, 1 to 3600.
        if matches!(*name, "RINGDELAY" | "INTRINGDELAY")
            && value
                .as_deref()
                .is_some_and(|x| !x.parse::<i64>().is_ok_and(|n| (1..=3600).contains(&n)))
        {
            return Err(Error::invalid(*name, "must be 1 to 3600 seconds"));
        }
        out.push((*name, value));
    }
    Ok(out)
}

/// The document: every setting (null when unset), secrets masked.
pub fn document(stored: &[(String, String)]) -> Map<String, Value> {
    let mut m = Map::new();
    for (name, ..) in GLOBALS {
        let v = stored
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone());
        let shown = match v {
            Some(_) if SECRET.contains(name) => Value::String("********".into()),
            Some(v) => Value::String(v),
            None => Value::Null,
        };
        m.insert((*name).to_string(), shown);
    }
    m
}
