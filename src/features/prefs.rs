//! Subscriber and domain preferences: the catalog (what /api/subscriberpreferencedefs/
//! lists), validation of values, and how each value reaches a SIP server's usr_preferences.
//!
//! Unlike Sipwise, which silently ignores names it does not know, an unknown name is refused
//! with 422 naming it: a typo must not look like success.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    Boolean,
    Int,
    #[serde(rename = "string")]
    Text,
    Enum,
}

/// How a string value is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    None,
    /// Digits with `*` (any digits) and `?` (one digit) wildcards; a leading `+` is dropped.
    NumberPattern,
    /// E.164 digits; a leading `+` is dropped.
    Number,
    /// An IPv4/IPv6 address or network in CIDR notation.
    IpNet,
    /// A language tag such as `en` or `de-AT`.
    Language,
    /// Dial-string characters.
    DialString,
}

/// Where a preference may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    /// Subscriber and domain (a domain value is the default its subscribers inherit).
    Both,
    Subscriber,
}

pub struct PrefDef {
    pub name: &'static str,
    pub data_type: DataType,
    /// 1: one value; 0: a list of any length.
    pub max_occur: u32,
    pub read_only: bool,
    pub label: &'static str,
    pub description: &'static str,
    pub group: &'static str,
    /// Enum: (label, value).
    pub enum_values: &'static [(&'static str, &'static str)],
    /// Integer bounds.
    pub min: i64,
    pub max: i64,
    check: Check,
    level: Level,
    /// Written to the SIP servers' usr_preferences under its own name.
    pub delivered: bool,
}

const fn def(
    name: &'static str,
    data_type: DataType,
    group: &'static str,
    label: &'static str,
    description: &'static str,
) -> PrefDef {
    PrefDef {
        name,
        data_type,
        max_occur: 1,
        read_only: false,
        label,
        description,
        group,
        enum_values: &[],
        min: 0,
        max: 0,
        check: Check::None,
        level: Level::Both,
        delivered: true,
    }
}

const fn list(mut d: PrefDef, check: Check) -> PrefDef {
    d.max_occur = 0;
    d.check = check;
    d
}

const fn bounded(mut d: PrefDef, min: i64, max: i64) -> PrefDef {
    d.min = min;
    d.max = max;
    d
}

const fn checked(mut d: PrefDef, check: Check) -> PrefDef {
    d.check = check;
    d
}

const fn subscriber_only(mut d: PrefDef) -> PrefDef {
    d.level = Level::Subscriber;
    d
}

const fn not_delivered(mut d: PrefDef) -> PrefDef {
    d.delivered = false;
    d
}

const fn enumerated(mut d: PrefDef, values: &'static [(&'static str, &'static str)]) -> PrefDef {
    d.enum_values = values;
    d
}

use DataType::{Boolean, Enum, Int, Text};

/// The catalog, in the order it is listed.
pub static DEFS: &[PrefDef] = &[
    def("block_in_mode", Boolean, "Call Blockings", "Block mode for incoming calls",
        "true: only callers on block_in_list may call (whitelist); false: callers on block_in_list are rejected (blacklist)."),
    list(def("block_in_list", Text, "Call Blockings", "Incoming block list",
        "Caller numbers (E.164 digits; * matches any digits, ? one digit) checked against block_in_mode."), Check::NumberPattern),
    def("block_in_clir", Boolean, "Call Blockings", "Block anonymous incoming calls",
        "Reject callers that hide their number (433 Anonymity Disallowed)."),
    def("block_out_mode", Boolean, "Call Blockings", "Block mode for outgoing calls",
        "true: only numbers on block_out_list may be called (whitelist); false: numbers on block_out_list are blocked."),
    list(def("block_out_list", Text, "Call Blockings", "Outgoing block list",
        "Called numbers (E.164 digits; * and ? wildcards) checked against block_out_mode."), Check::NumberPattern),
    def("clir", Boolean, "Number Manipulations", "Hide own number",
        "Calling line identification restriction for outgoing calls."),
    subscriber_only(checked(def("cli", Text, "Number Manipulations", "Calling line identity",
        "The number (E.164 digits) shown to callees."), Check::Number)),
    subscriber_only(enumerated(def("lock", Enum, "Access Restrictions", "Lock level",
        "Same as the subscriber's lock: 0 none, 1 foreign, 2 outgoing, 3 incoming and outgoing, 4 global, 5 ported."),
        &[("none", "0"), ("foreign", "1"), ("outgoing", "2"), ("incoming and outgoing", "3"), ("global", "4"), ("ported", "5")])),
    bounded(def("ringtimeout", Int, "Call Forwards", "Ring timeout",
        "Seconds to ring before a call forward on no answer (cft) applies."), 1, 3600),
    bounded(def("concurrent_max", Int, "Access Restrictions", "Maximum concurrent calls",
        "Calls the subscriber may have at once; 0: unlimited."), 0, 100_000),
    list(def("allowed_ips", Text, "Access Restrictions", "Allowed source addresses",
        "IP addresses or CIDR networks the subscriber may register and call from; empty: any."), Check::IpNet),
    checked(def("language", Text, "Internals", "Language",
        "Language of announcements and voicemail prompts (a tag such as en or de-AT)."), Check::Language),
    checked(def("emergency_suffix", Text, "Number Manipulations", "Emergency suffix",
        "Appended to emergency numbers to route them to the right local service."), Check::DialString),
    bounded(def("ncos_id", Int, "Access Restrictions", "Class of service",
        "The NCOS level (/api/ncoslevels/) whose patterns bar numbers, or are the only ones allowed."), 1, i64::MAX),
    not_delivered(bounded(def("rewrite_rule_set_id", Int, "Number Manipulations", "Rewrite rule set",
        "The rewrite rule set (/api/rewriterulesets/) that normalises the numbers of calls made."), 1, i64::MAX)),
    not_delivered(enumerated(def("prepaid_library", Enum, "Internals", "Prepaid library",
        "Rating library a prepaid subscriber is billed with (kept for billing integrations)."),
        &[("libswrate", "libswrate"), ("libinewrate", "libinewrate")])),
];

pub fn find(name: &str) -> Option<&'static PrefDef> {
    DEFS.iter().find(|d| d.name == name)
}

/// The catalog entry as /api/subscriberpreferencedefs/ shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrefDefRepr {
    pub name: &'static str,
    pub data_type: DataType,
    pub max_occur: u32,
    pub read_only: bool,
    pub label: &'static str,
    pub description: &'static str,
    pub group: &'static str,
    /// Enum preferences: the allowed values.
    pub enum_values: Vec<EnumValue>,
    /// Integer preferences: the bounds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    /// Whether /api/domainpreferences/ accepts it too (as its subscribers' default).
    pub domain_pref: bool,
    /// Whether /api/customerpreferences/ accepts it too (over the domain's, under the
    /// subscriber's own).
    pub customer_pref: bool,
    /// Always true: every preference can be set per subscriber.
    pub subscriber_pref: bool,
    /// The usr_preferences attribute SIP servers receive it as (none: voxprov keeps it).
    pub usr_preferences_attribute: Option<&'static str>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnumValue {
    pub label: &'static str,
    pub value: &'static str,
}

impl PrefDef {
    /// Whether a domain or a customer may set it for its subscribers.
    pub fn shared(&self) -> bool {
        self.level == Level::Both
    }
    pub fn repr(&self) -> PrefDefRepr {
        PrefDefRepr {
            name: self.name,
            data_type: self.data_type,
            max_occur: self.max_occur,
            read_only: self.read_only,
            label: self.label,
            description: self.description,
            group: self.group,
            enum_values: self
                .enum_values
                .iter()
                .map(|(label, value)| EnumValue { label, value })
                .collect(),
            min: (self.data_type == Int).then_some(self.min),
            max: (self.data_type == Int).then_some(self.max),
            domain_pref: self.level == Level::Both,
            customer_pref: self.level == Level::Both,
            subscriber_pref: true,
            usr_preferences_attribute: self.delivered.then_some(self.name),
        }
    }
}

/// Validates a whole set of preferences (a PUT body, or a patched representation): every
/// name must be known and settable at this level (`shared`: a domain's or a customer's, which
/// their subscribers inherit); every value is normalized. `null` or an empty list removes a
/// preference.
pub fn validate_set(
    input: BTreeMap<String, Value>,
    shared: bool,
) -> Result<BTreeMap<String, Value>> {
    // Every preference's problem at once (in name order, as the set is read).
    let mut p = crate::error::Problems::default();
    let mut out = BTreeMap::new();
    for (name, v) in input {
        let Some(d) = find(&name) else {
            p.note(
                name.as_str(),
                "is not a known preference (see /api/subscriberpreferencedefs/)",
            );
            continue;
        };
        if shared && d.level == Level::Subscriber {
            p.note(
                name.as_str(),
                "can only be set per subscriber, not per domain or customer",
            );
            continue;
        }
        if let Some(Some(v)) = p.check(validate_value(d, &name, v))? {
            out.insert(name, v);
        }
    }
    p.finish()?;
    Ok(out)
}

/// One preference's value, validated as in a set, with errors on `field` (call forwards carry
/// `ringtimeout` as `cft.ringtimeout`).
pub fn validate_one(name: &str, field: &str, v: Value) -> Result<Option<Value>> {
    let d = find(name).ok_or_else(|| Error::invalid(field, "is not a known preference"))?;
    validate_value(d, field, v)
}

fn validate_value(d: &PrefDef, field: &str, v: Value) -> Result<Option<Value>> {
    if v.is_null() {
        return Ok(None);
    }
    if d.max_occur == 0 {
        let Value::Array(items) = v else {
            return Err(Error::invalid(field, "must be a list (JSON array)"));
        };
        if items.len() > 1000 {
            return Err(Error::invalid(
                field,
                "must not hold more than 1000 entries",
            ));
        }
        let mut out: Vec<Value> = Vec::with_capacity(items.len());
        for (i, item) in items.into_iter().enumerate() {
            let f = format!("{field}[{i}]");
            let s = scalar(d, &f, item)?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        return Ok((!out.is_empty()).then_some(Value::Array(out)));
    }
    scalar(d, field, v).map(Some)
}

fn scalar(d: &PrefDef, field: &str, v: Value) -> Result<Value> {
    match d.data_type {
        Boolean => match v {
            Value::Bool(b) => Ok(Value::Bool(b)),
            // Perl and form clients send 0/1.
            Value::Number(n) if n.as_i64() == Some(0) || n.as_i64() == Some(1) => {
                Ok(Value::Bool(n.as_i64() == Some(1)))
            }
            _ => Err(Error::invalid(field, "must be true or false")),
        },
        Int => {
            let n = match &v {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            }
            .ok_or_else(|| Error::invalid(field, "must be an integer"))?;
            if n < d.min || n > d.max {
                return Err(Error::invalid(
                    field,
                    format!("must be between {} and {}", d.min, d.max),
                ));
            }
            Ok(Value::from(n))
        }
        Enum => {
            let s = match &v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            };
            if d.enum_values.iter().any(|(_, val)| *val == s) {
                Ok(Value::String(s))
            } else {
                Err(Error::invalid(
                    field,
                    format!(
                        "must be one of {}",
                        d.enum_values
                            .iter()
                            .map(|(_, v)| *v)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ))
            }
        }
        Text => {
            let Value::String(s) = v else {
                return Err(Error::invalid(field, "must be a string"));
            };
            check_string(d.check, field, s.trim()).map(Value::String)
        }
    }
}

/// Digits with `*`/`?` wildcards, as block lists and call forward conditions take them.
pub fn number_pattern(field: &str, s: &str) -> Result<String> {
    let p = s.trim().trim_start_matches('+');
    if p.is_empty()
        || p.len() > 32
        || !p
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '?')
    {
        return Err(Error::invalid(
            field,
            format!(
                "'{}' is not a number pattern (digits, * for any digits, ? for one digit)",
                s.chars().take(40).collect::<String>()
            ),
        ));
    }
    Ok(p.to_string())
}

fn check_string(check: Check, field: &str, s: &str) -> Result<String> {
    let bad = |what: &str| Err(Error::invalid(field, what.to_string()));
    match check {
        Check::NumberPattern => number_pattern(field, s),
        Check::Number => {
            let n = s.trim_start_matches('+');
            if n.is_empty() || n.len() > 15 || !n.chars().all(|c| c.is_ascii_digit()) {
                return bad("must be a number of 1 to 15 digits (E.164, + optional)");
            }
            Ok(n.to_string())
        }
        Check::IpNet => {
            let (addr, prefix) = s.split_once('/').unwrap_or((s, ""));
            let Ok(ip) = addr.parse::<std::net::IpAddr>() else {
                return bad("must be an IP address or a network such as 192.0.2.0/24");
            };
            if !prefix.is_empty() {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                if !prefix.parse::<u8>().is_ok_and(|p| p <= max) {
                    return bad("has an invalid prefix length");
                }
                return Ok(format!("{ip}/{prefix}"));
            }
            Ok(ip.to_string())
        }
        Check::Language => {
            let mut parts = s.split('-');
            let first = parts.next().unwrap_or("");
            let ok = (2..=3).contains(&first.len())
                && first.chars().all(|c| c.is_ascii_alphabetic())
                && parts.all(|p| {
                    (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric())
                });
            if !ok {
                return bad("must be a language tag such as en or de-AT");
            }
            Ok(s.to_string())
        }
        Check::DialString => {
            if s.is_empty()
                || s.len() > 32
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "*#+-_.".contains(c))
            {
                return bad("must be 1 to 32 characters of digits, letters, * # + - _ .");
            }
            Ok(s.to_string())
        }
        Check::None => {
            if s.chars().count() > 255 || s.chars().any(char::is_control) {
                return bad("must be at most 255 characters without control characters");
            }
            Ok(s.to_string())
        }
    }
}

/// usr_preferences (attribute, value) rows for a set of effective preferences.
pub fn attributes(prefs: &BTreeMap<String, Value>, out: &mut Vec<(String, String)>) {
    // A rewrite rule set: the dialplan ids of its in-rules, which normalise the caller and
    // what is dialled (its out-rules act where the set is a carrier's).
    if let Some(set) = prefs.get("rewrite_rule_set_id").and_then(Value::as_i64) {
        for (attr, direction, _, off) in REWRITE_DPIDS {
            if direction == "in" {
                out.push((attr.to_string(), rewrite_dpid(set, off).to_string()));
            }
        }
    }
    for (name, v) in prefs {
        let Some(d) = find(name).filter(|d| d.delivered) else {
            continue;
        };
        let mut push = |v: &Value| {
            let s = match v {
                // Only a set flag is written: an absent row means false.
                Value::Bool(true) => Some("1".to_string()),
                Value::Bool(false) | Value::Null => None,
                Value::Number(n) => Some(n.to_string()),
                Value::String(s) if d.name == "lock" && s == "0" => None,
                Value::String(s) => Some(s.clone()),
                _ => None,
            };
            if let Some(s) = s {
                out.push((d.name.to_string(), s));
            }
        };
        match v {
            Value::Array(items) => items.iter().for_each(&mut push),
            v => push(v),
        }
    }
}

/// The dialplan ids a rewrite rule set's rules land in: (usr_preferences attribute,
/// direction, field, offset). dpid = set id × 10 + offset.
pub const REWRITE_DPIDS: [(&str, &str, &str, i64); 4] = [
    ("rewrite_caller_in_dpid", "in", "caller", 1),
    ("rewrite_callee_in_dpid", "in", "callee", 2),
    ("rewrite_caller_out_dpid", "out", "caller", 3),
    ("rewrite_callee_out_dpid", "out", "callee", 4),
];

pub fn rewrite_dpid(set: i64, offset: i64) -> i64 {
    set * 10 + offset
}

/// Every attribute name preferences may write (the ones a SIP server's rows are managed for).
pub fn managed_attributes() -> impl Iterator<Item = &'static str> {
    DEFS.iter().filter(|d| d.delivered).map(|d| d.name).chain(
        REWRITE_DPIDS
            .iter()
            .filter(|(_, d, _, _)| *d == "in")
            .map(|(a, _, _, _)| *a),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(v: Value) -> Result<BTreeMap<String, Value>> {
        validate_set(serde_json::from_value(v).unwrap(), false)
    }

    #[test]
    fn values_are_normalized_and_rows_follow() {
        let p = set(json!({
            "block_in_list": ["+4366412345", "431*", "431*"],
            "block_in_clir": true, "block_in_mode": false, "ringtimeout": "20",
            "allowed_ips": ["192.0.2.0/24"], "lock": 0, "cli": null
        }))
        .unwrap();
        assert_eq!(p["block_in_list"], json!(["4366412345", "431*"]));
        assert_eq!(p["ringtimeout"], json!(20));
        assert!(!p.contains_key("cli"));
        let mut rows = Vec::new();
        attributes(&p, &mut rows);
        rows.sort();
        assert_eq!(
            rows,
            [
                ("allowed_ips", "192.0.2.0/24"),
                ("block_in_clir", "1"),
                ("block_in_list", "431*"),
                ("block_in_list", "4366412345"),
                ("ringtimeout", "20"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }

    #[test]
    fn bad_values_name_the_field() {
        for (body, field) in [
            (json!({ "no_such_pref": 1 }), "no_such_pref"),
            (json!({ "block_in_list": "431*" }), "block_in_list"),
            (json!({ "block_in_list": ["43a"] }), "block_in_list[0]"),
            (json!({ "block_in_clir": "yes" }), "block_in_clir"),
            (json!({ "ringtimeout": 0 }), "ringtimeout"),
            (json!({ "lock": 9 }), "lock"),
            (json!({ "allowed_ips": ["10.0.0.0/33"] }), "allowed_ips[0]"),
            (json!({ "language": "english!" }), "language"),
            (json!({ "cli": "+43 1" }), "cli"),
        ] {
            match set(body.clone()) {
                Err(Error::Validation { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(validate_set(
            serde_json::from_value(json!({ "lock": "1" })).unwrap(),
            true
        )
        .is_err());
    }
}
