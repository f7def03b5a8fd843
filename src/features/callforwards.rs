//! Call forwards as Sipwise models them: a *destination set* (a hunting list of targets,
//! each rung for `timeout` seconds in `priority` order), an optional *time set* (windows in
//! which the forward applies), and a *mapping* that ties a forward type to them, optionally
//! only for some callers (`sources`) or called numbers (`bnumbers`).
//!
//! This module validates and normalizes; storage is `store::features`, the HTTP resources are
//! `resources::callforwards`.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::prefs::number_pattern;
use crate::error::{Error, Result};

crate::model::string_enum!(
    /// unconditional, busy, timeout (no answer), not available, SMS, rerouting, overflow.
    CfType { Cfu = "cfu", Cfb = "cfb", Cft = "cft", Cfna = "cfna", Cfs = "cfs", Cfr = "cfr", Cfo = "cfo" }
);

pub const TYPES: [CfType; 7] = [
    CfType::Cfu,
    CfType::Cfb,
    CfType::Cft,
    CfType::Cfna,
    CfType::Cfs,
    CfType::Cfr,
    CfType::Cfo,
];

impl CfType {
    /// The types a SIP server acts on (the others are kept for SMS and PBX integrations).
    pub fn delivered(self) -> bool {
        matches!(self, CfType::Cfu | CfType::Cfb | CfType::Cft | CfType::Cfna)
    }
}

/// One hunting-list entry, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Destination {
    /// A SIP URI: numbers become `sip:<digits>@<subscriber's domain>`, well-known targets
    /// their service URI (voicebox → `sip:vmu<number>@voicebox.local`).
    pub destination: String,
    /// Seconds to ring this destination before the next one.
    pub timeout: i64,
    /// Lower rings first.
    pub priority: i64,
    /// With `customhours` (`sip:custom-hours@app.local`): the sound handle to play, one of
    /// the group custom_announcements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announcement_id: Option<i64>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationInput {
    /// A number (digits, + optional), a SIP URI, or voicebox, fax2mail, conference.
    #[schema(value_type = String)]
    pub destination: Value,
    /// Seconds, 1 to 3600; default 300.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub timeout: Value,
    /// Default: the position in the list.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub priority: Value,
    /// With customhours: the announcement to play (a sound handle of the group
    /// custom_announcements).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub announcement_id: Value,
    /// Accepted and ignored (Sipwise returns it).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub simple_destination: Value,
}

/// One window of a time set. Each field is empty (any) or a value or range `from-to`:
/// year 1970-2100, month 1-12, mday 1-31, wday 1-7 (1 = Sunday), hour 0-23, minute 0-59.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct TimeEntry {
    pub year: Option<String>,
    pub month: Option<String>,
    pub mday: Option<String>,
    pub wday: Option<String>,
    pub hour: Option<String>,
    pub minute: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub year: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub month: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub mday: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub wday: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub hour: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub minute: Value,
}

/// What a destination's short forms expand with.
pub struct Owner<'a> {
    pub domain: &'a str,
    pub username: &'a str,
    /// The primary number as digits.
    pub number: Option<&'a str>,
}

fn as_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn int_or(field: &str, v: &Value, default: i64, min: i64, max: i64) -> Result<i64> {
    let n = match v {
        Value::Null => return Ok(default),
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::invalid(field, "must be an integer"))?;
    if n < min || n > max {
        return Err(Error::invalid(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(n)
}

fn uri_ok(rest: &str) -> bool {
    let (user, host) = match rest.rsplit_once('@') {
        Some((u, h)) => (u, h),
        None => ("", rest),
    };
    let host = host.split([';', '?']).next().unwrap_or("");
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c));
    let user_ok = user
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c));
    host_ok && user_ok
}

/// A destination as given → its SIP URI.
pub fn destination(field: &str, v: &Value, o: &Owner) -> Result<String> {
    let s = as_text(v).ok_or_else(|| Error::invalid(field, "must be a string"))?;
    let lower = s.to_ascii_lowercase();
    let number = || {
        o.number.ok_or_else(|| {
            Error::invalid(
                field,
                format!("{s} needs the subscriber to have a primary number"),
            )
        })
    };
    let uri = match lower.as_str() {
        "voicebox" => format!("sip:vmu{}@voicebox.local", number()?),
        "fax2mail" => format!("sip:{}@fax2mail.local", number()?),
        "conference" => format!("sip:conf={}@conference.local", number()?),
        "localuser" => format!("sip:{}@{}", o.username, o.domain),
        // NGCP's application services, addressed by name on its application server.
        "customhours" => "sip:custom-hours@app.local".into(),
        "officehours" => "sip:office-hours@app.local".into(),
        "autoattendant" => "sip:auto-attendant@app.local".into(),
        "callingcard" => "sip:callingcard@app.local".into(),
        "callthrough" => "sip:callthrough@app.local".into(),
        _ if lower.starts_with("sip:") || lower.starts_with("sips:") => {
            let (scheme, rest) = s.split_once(':').unwrap_or(("sip", ""));
            if s.len() > 255 || !uri_ok(rest) {
                return Err(Error::invalid(
                    field,
                    format!(
                        "'{}' is not a valid SIP URI",
                        s.chars().take(60).collect::<String>()
                    ),
                ));
            }
            format!("{}:{rest}", scheme.to_ascii_lowercase())
        }
        _ => {
            let digits = s.strip_prefix('+').unwrap_or(&s);
            if digits.is_empty() || digits.len() > 20 || !digits.chars().all(|c| c.is_ascii_digit())
            {
                return Err(Error::invalid(
                    field,
                    format!(
                        "'{}' is not a number, a sip: URI or one of voicebox, fax2mail, conference, localuser, customhours, officehours, autoattendant, callingcard, callthrough",
                        s.chars().take(60).collect::<String>()
                    ),
                ));
            }
            format!("sip:{digits}@{}", o.domain)
        }
    };
    Ok(uri)
}

/// A hunting list, validated: at least one entry, at most 20.
pub fn destinations(
    field: &str,
    input: &[DestinationInput],
    o: &Owner,
) -> Result<Vec<Destination>> {
    if input.len() > 20 {
        return Err(Error::invalid(
            field,
            "must not hold more than 20 destinations",
        ));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, d) in input.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let dest = destination(&format!("{f}.destination"), &d.destination, o)?;
        let announcement_id =
            announcement(&format!("{f}.announcement_id"), &d.announcement_id, &dest)?;
        out.push(Destination {
            destination: dest,
            timeout: int_or(&format!("{f}.timeout"), &d.timeout, 300, 1, 3600)?,
            priority: int_or(&format!("{f}.priority"), &d.priority, i as i64 + 1, 0, 1000)?,
            announcement_id,
        });
    }
    out.sort_by_key(|d| d.priority);
    Ok(out)
}

/// The announcement a custom-announcement destination plays: only there, and a handle of
/// the group custom_announcements.
fn announcement(field: &str, v: &Value, dest: &str) -> Result<Option<i64>> {
    if v.is_null() {
        return Ok(None);
    }
    if dest != "sip:custom-hours@app.local" {
        return Err(Error::invalid(
            field,
            "is only for the destination customhours",
        ));
    }
    let id = match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| Error::invalid(field, "must be a sound handle id"))?;
    match super::sounds::handle(id) {
        Some((_, "custom_announcements")) => Ok(Some(id)),
        _ => Err(Error::invalid(
            field,
            format!("sound handle {id} is not one of the group custom_announcements"),
        )),
    }
}

const TIME_FIELDS: [(&str, u32, u32); 6] = [
    ("year", 1970, 2100),
    ("month", 1, 12),
    ("mday", 1, 31),
    ("wday", 1, 7),
    ("hour", 0, 23),
    ("minute", 0, 59),
];

fn range(field: &str, v: &Value, lo: u32, hi: u32) -> Result<Option<String>> {
    let Some(s) = as_text(v) else {
        return if v.is_null() {
            Ok(None)
        } else {
            Err(Error::invalid(
                field,
                "must be a number or a range such as 8-17",
            ))
        };
    };
    if s.is_empty() {
        return Ok(None);
    }
    let parse = |p: &str| {
        p.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| (lo..=hi).contains(n))
    };
    let bad = || {
        Error::invalid(
            field,
            format!("'{s}' is not a value or range from-to within {lo}-{hi}"),
        )
    };
    match s.split_once('-') {
        None => parse(&s).map(|n| Some(n.to_string())).ok_or_else(bad),
        Some((a, b)) => {
            let (a, b) = (parse(a).ok_or_else(bad)?, parse(b).ok_or_else(bad)?);
            if a > b {
                return Err(Error::invalid(
                    field,
                    format!("'{s}': a range must not run backwards (from ≤ to)"),
                ));
            }
            Ok(Some(if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }))
        }
    }
}

pub fn times(field: &str, input: &[TimeInput]) -> Result<Vec<TimeEntry>> {
    if input.len() > 100 {
        return Err(Error::invalid(field, "must not hold more than 100 entries"));
    }
    let mut out = Vec::with_capacity(input.len());
    for (i, t) in input.iter().enumerate() {
        let vals = [&t.year, &t.month, &t.mday, &t.wday, &t.hour, &t.minute];
        let mut r: [Option<String>; 6] = Default::default();
        for (k, ((name, lo, hi), v)) in TIME_FIELDS.iter().zip(vals).enumerate() {
            r[k] = range(&format!("{field}[{i}].{name}"), v, *lo, *hi)?;
        }
        let [year, month, mday, wday, hour, minute] = r;
        let e = TimeEntry {
            year,
            month,
            mday,
            wday,
            hour,
            minute,
        };
        if e == TimeEntry::default() {
            return Err(Error::invalid(
                format!("{field}[{i}]"),
                "an entry must restrict at least one of year, month, mday, wday, hour, minute",
            ));
        }
        out.push(e);
    }
    Ok(out)
}

/// The time set as a Time::Period expression (Kamailio's tmrec `time_period_match`):
/// entries are alternatives, the fields of one entry all have to match.
pub fn period(times: &[TimeEntry]) -> String {
    times
        .iter()
        .map(|t| {
            [
                ("yr", &t.year),
                ("mo", &t.month),
                ("md", &t.mday),
                ("wd", &t.wday),
                ("hr", &t.hour),
                ("min", &t.minute),
            ]
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {{{v}}}")))
            .collect::<Vec<_>>()
            .join(" ")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

crate::model::string_enum!(
    /// Whether `sources`/`bnumbers` list who the forward applies to, or who it does not.
    ListMode { Whitelist = "whitelist", Blacklist = "blacklist" }
);

pub fn patterns(field: &str, v: &[Value]) -> Result<Vec<String>> {
    if v.len() > 1000 {
        return Err(Error::invalid(
            field,
            "must not hold more than 1000 entries",
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for (i, p) in v.iter().enumerate() {
        let f = format!("{field}[{i}]");
        let s = match p {
            // Sipwise's source sets list {source: "..."} objects.
            Value::Object(m) => m
                .get("source")
                .or_else(|| m.get("number"))
                .and_then(as_text),
            other => as_text(other),
        }
        .ok_or_else(|| Error::invalid(&f, "must be a number pattern"))?;
        let s = number_pattern(&f, &s)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// One forward as a SIP server receives it: the first destination, when the windows allow.
pub struct Delivered<'a> {
    pub cf_type: CfType,
    pub destinations: &'a [Destination],
    pub times: &'a [TimeEntry],
    pub conditional: bool,
}

/// usr_preferences rows for the forwards of one subscriber: `<type>` = first destination's
/// URI, `<type>_period` = the time set. Forwards limited to some callers or called numbers
/// are not written: the shipped configuration cannot evaluate those conditions, and an
/// unconditional forward would be wrong.
pub fn attributes(forwards: &[Delivered], out: &mut Vec<(String, String)>) {
    for f in forwards {
        if !f.cf_type.delivered() || f.conditional {
            continue;
        }
        if out.iter().any(|(a, _)| a == f.cf_type.as_str()) {
            continue; // the first mapping of a type wins
        }
        let Some(first) = f.destinations.first() else {
            continue;
        };
        out.push((f.cf_type.as_str().to_string(), first.destination.clone()));
        if !f.times.is_empty() {
            out.push((format!("{}_period", f.cf_type.as_str()), period(f.times)));
        }
    }
}

/// The usr_preferences attributes forwards may write.
pub fn managed_attributes() -> Vec<String> {
    TYPES
        .iter()
        .filter(|t| t.delivered())
        .flat_map(|t| [t.as_str().to_string(), format!("{}_period", t.as_str())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const O: Owner = Owner {
        domain: "example.test",
        username: "alice",
        number: Some("4311110001"),
    };

    #[test]
    fn destinations_normalize() {
        for (given, want) in [
            (json!("+4366610001"), "sip:4366610001@example.test"),
            (json!(4366610001u64), "sip:4366610001@example.test"),
            (json!("SIP:bob@other.example"), "sip:bob@other.example"),
            (json!("voicebox"), "sip:vmu4311110001@voicebox.local"),
            (json!("customhours"), "sip:custom-hours@app.local"),
        ] {
            assert_eq!(destination("d", &given, &O).unwrap(), want);
        }
        for bad in [
            json!("43 666"),
            json!("sip:"),
            json!("sip:a b@x"),
            json!(true),
        ] {
            assert!(destination("d", &bad, &O).is_err(), "{bad}");
        }
    }

    #[test]
    fn times_validate_and_render() {
        let t: Vec<TimeInput> = serde_json::from_value(json!([
            { "wday": "2-6", "hour": "8-17" }, { "wday": 1, "hour": "10-10" }
        ]))
        .unwrap();
        let t = times("times", &t).unwrap();
        assert_eq!(period(&t), "wd {2-6} hr {8-17}, wd {1} hr {10}");
        for (bad, field) in [
            (json!([{ "hour": "8-24" }]), "times[0].hour"),
            (json!([{ "month": "0" }]), "times[0].month"),
            (json!([{ "wday": "6-2" }]), "times[0].wday"),
            (json!([{}]), "times[0]"),
            (json!([{ "minute": [1] }]), "times[0].minute"),
        ] {
            let t: Vec<TimeInput> = serde_json::from_value(bad).unwrap();
            match times("times", &t) {
                Err(Error::Validation { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{other:?}"),
            }
        }
    }
}
