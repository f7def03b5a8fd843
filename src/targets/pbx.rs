//! The cloud PBX as a Kamailio holds it: one htable, `pbx` (database table `pbx_htable`),
//! whose keys the shipped kamailio.cfg reads at each call (the contract is in
//! deploy/kamailio/README.md, "PBX"). Like the routing tables it is small and recomputed whole
//! on any PBX change.

use std::collections::BTreeMap;

use super::rows::{Rows, Table};
use crate::store::pbx::{timespan, PbxData, PbxDayTimer, PbxTenant, DAYS, MONTHS};

/// Seconds a group rings when neither it nor the RINGDELAY global says.
const DEFAULT_RINGDELAY: i64 = 20;

fn put(out: &mut Rows, key: String, value: String) {
    out.insert(
        (Table::PbxHtable, vec![key]),
        vec!["0".into(), "0".into(), value, "0".into()],
    );
}

/// A day timer as a tmrec `time_period_match()` period: one sub-period per part of its time
/// span (whole hours, and the minutes of the first and last hour), each with its day, month
/// and date. Empty for a timer that is always on.
pub fn period(t: &PbxDayTimer) -> String {
    let mut fixed = Vec::new();
    if let Some(d) = DAYS.iter().position(|d| *d == t.dayofweek) {
        fixed.push(format!("wd {{{}}}", d + 1));
    }
    if let Some(m) = MONTHS.iter().position(|m| *m == t.month) {
        fixed.push(format!("mo {{{}}}", m + 1));
    }
    if t.datemonth != "*" {
        fixed.push(format!("md {{{}}}", t.datemonth));
    }
    let fixed = fixed.join(" ");
    let Ok(Some((a, b))) = timespan("timespan", &t.timespan) else {
        return if fixed.is_empty() { "".into() } else { fixed };
    };
    // [a, b) in minutes of the day, as hour/minute ranges.
    let (h1, m1, h2, m2) = (a / 60, a % 60, b / 60, b % 60);
    let mut parts = Vec::new();
    if h1 == h2 {
        parts.push(format!("hr {{{h1}}} minute {{{m1}-{}}}", m2 - 1));
    } else {
        let mut first_full = h1;
        if m1 > 0 {
            parts.push(format!("hr {{{h1}}} minute {{{m1}-59}}"));
            first_full = h1 + 1;
        }
        if first_full < h2 {
            parts.push(format!("hr {{{first_full}-{}}}", h2 - 1));
        }
        if m2 > 0 {
            parts.push(format!("hr {{{h2}}} minute {{0-{}}}", m2 - 1));
        }
    }
    parts
        .into_iter()
        .map(|p| {
            if fixed.is_empty() {
                p
            } else {
                format!("{fixed} {p}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// What a destination of tenant `t` becomes: `sip:<user>@<domain>` (an extension), `rg:<id>`
/// (a ring group), `num:<digits>` (an external number), or "" (nothing: 480).
fn resolve(
    t: &PbxTenant,
    dest: &str,
    exts: &BTreeMap<(i64, &str), String>,
    groups: &BTreeMap<(i64, &str), String>,
) -> String {
    let dest = if dest == "operator" {
        match &t.operator {
            Some(o) => o.as_str(),
            None => return String::new(),
        }
    } else {
        dest
    };
    if let Some(u) = exts.get(&(t.id, dest)) {
        return u.clone();
    }
    if let Some(g) = groups.get(&(t.id, dest)) {
        return g.clone();
    }
    match dest.strip_prefix('+') {
        Some(d) => format!("num:{d}"),
        None if dest.chars().all(|c| c.is_ascii_digit()) && dest.len() > t.extension_length() => {
            format!("num:{dest}")
        }
        None => String::new(),
    }
}

/// The resource names whose changes alter the PBX rows of the SIP servers.
pub fn is_pbx(resource: &str) -> bool {
    matches!(
        resource,
        "pbxtenants"
            | "pbxextensions"
            | "pbxringgroups"
            | "pbxdaytimers"
            | "pbxholidaytimers"
            | "pbxinboundroutes"
            | "pbxglobals"
    )
}

pub fn desired(d: &PbxData, out: &mut Rows) {
    // Nothing of a tenant whose customer or reseller is locked or terminated.
    let live: std::collections::BTreeSet<i64> = d
        .tenants
        .iter()
        .filter(|t| t.live.0)
        .map(|t| t.id)
        .collect();
    let global = |n: &str| {
        d.globals
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    let ringdelay = global("RINGDELAY")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|v| *v > 0)
        .unwrap_or(DEFAULT_RINGDELAY);
    if let Some(v) = global("INTRINGDELAY").filter(|v| v.parse::<i64>().is_ok_and(|x| x > 0)) {
        put(out, "glob::intringdelay".into(), v);
    }
    if let Some(v) = global("EMERGENCY") {
        put(out, "glob::emergency".into(), v);
    }
    let tenants: BTreeMap<i64, &PbxTenant> = d
        .tenants
        .iter()
        .filter(|t| live.contains(&t.id))
        .map(|t| (t.id, t))
        .collect();
    let exts: BTreeMap<(i64, &str), String> = d
        .extensions
        .iter()
        .map(|e| {
            (
                (e.tenant_id, e.extension.as_str()),
                format!("sip:{}@{}", e.username, e.domain),
            )
        })
        .collect();
    // Groups by number; an Alias group is its member's own destination.
    let mut groups: BTreeMap<(i64, &str), String> = BTreeMap::new();
    for g in &d.ringgroups {
        let v = if g.grouptype == "Alias" {
            let m = g.out.split_whitespace().next().unwrap_or("");
            exts.get(&(g.tenant_id, m)).cloned().unwrap_or_default()
        } else {
            format!("rg:{}", g.id)
        };
        groups.insert((g.tenant_id, g.number.as_str()), v);
    }
    for t in tenants.values() {
        put(
            out,
            format!("tn::{}::extlen", t.id),
            t.extension_length().to_string(),
        );
        if t.masteroclo == "CLOSED" {
            put(out, format!("tn::{}::closed", t.id), "1".into());
        }
        let days: Vec<String> = d
            .daytimers
            .iter()
            .filter(|x| x.tenant_id == t.id)
            .map(period)
            .collect();
        if !days.is_empty() {
            put(out, format!("tn::{}::day::n", t.id), days.len().to_string());
            for (i, p) in days.into_iter().enumerate() {
                put(out, format!("tn::{}::day::{i}", t.id), p);
            }
        }
        let hols: Vec<String> = d
            .holidays
            .iter()
            .filter(|h| h.tenant_id == t.id)
            .map(|h| {
                let dest = h
                    .route
                    .as_deref()
                    .map(|r| resolve(t, r, &exts, &groups))
                    .unwrap_or_default();
                format!("{} {} {dest}", h.stime, h.etime)
                    .trim_end()
                    .to_string()
            })
            .collect();
        if !hols.is_empty() {
            put(out, format!("tn::{}::hol::n", t.id), hols.len().to_string());
            for (i, h) in hols.into_iter().enumerate() {
                put(out, format!("tn::{}::hol::{i}", t.id), h);
            }
        }
    }
    for e in d.extensions.iter().filter(|e| live.contains(&e.tenant_id)) {
        put(
            out,
            format!("sub::{}@{}", e.username, e.domain),
            e.tenant_id.to_string(),
        );
        put(
            out,
            format!("ext::{}::{}", e.tenant_id, e.extension),
            format!("sip:{}@{}", e.username, e.domain),
        );
    }
    for g in &d.ringgroups {
        let Some(t) = tenants.get(&g.tenant_id) else {
            continue;
        };
        let key = format!("ext::{}::{}", g.tenant_id, g.number);
        if g.grouptype == "Alias" {
            put(out, key, groups[&(g.tenant_id, g.number.as_str())].clone());
            continue;
        }
        put(out, key, format!("rg:{}", g.id));
        let kind = match g.grouptype.as_str() {
            "Hunt" => "hunt",
            "Page" => "page",
            _ => "ring",
        };
        put(out, format!("rg::{}::type", g.id), kind.into());
        let members: Vec<String> = g
            .out
            .split_whitespace()
            .map(|m| resolve(t, m, &exts, &groups))
            .filter(|m| !m.is_empty() && !m.starts_with("rg:"))
            .collect();
        put(out, format!("rg::{}::n", g.id), members.len().to_string());
        for (i, m) in members.into_iter().enumerate() {
            put(out, format!("rg::{}::{i}", g.id), m);
        }
        put(
            out,
            format!("rg::{}::delay", g.id),
            g.ringdelay.unwrap_or(ringdelay).to_string(),
        );
        let outcome = resolve(t, &g.outcome, &exts, &groups);
        if !outcome.is_empty() {
            put(out, format!("rg::{}::out", g.id), outcome);
        }
    }
    for r in d.inbound.iter().filter(|r| r.active == "YES") {
        let Some(t) = tenants.get(&r.tenant_id) else {
            continue;
        };
        let key = if r.carrier == "CLID" {
            format!("clid::{}::{}", t.id, r.number)
        } else {
            format!("did::{}", r.number)
        };
        put(out, key, r.id.to_string());
        put(out, format!("ir::{}::tenant", r.id), t.id.to_string());
        put(
            out,
            format!("ir::{}::open", r.id),
            resolve(t, &r.openroute, &exts, &groups),
        );
        put(
            out,
            format!("ir::{}::closed", r.id),
            resolve(t, &r.closeroute, &exts, &groups),
        );
        if let Some(a) = r.alertinfo.as_ref().filter(|a| !a.is_empty()) {
            put(out, format!("ir::{}::alertinfo", r.id), a.clone());
        }
    }
}
