//! Carriers and routing as a Kamailio holds them: what voxprov's peering groups, servers,
//! rules, rewrite rule sets and NCOS levels become in lcr, dispatcher, uacreg, address,
//! dialplan, htable and userblocklist rows (the contract the shipped kamailio.cfg reads is
//! in deploy/kamailio/README.md), and the remote registrations' state read back.
//!
//! These tables are small and their rows depend on each other (a rule's targets are the
//! servers of every group sharing its prefix), so any routing change recomputes them whole
//! and applies the difference.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{Driver, TargetCfg};
use super::rows::{Rows, Table};
use crate::crypto::Cipher;
use crate::error::Result;
use crate::features::prefs::{rewrite_dpid, REWRITE_DPIDS};
use crate::store::peering::{PeeringRule, PeeringServerRow, RewriteRule, RoutingData};

/// The uacreg l_uuid of a registering peering server.
pub fn reg_uuid(server: i64) -> String {
    format!("vx-ps-{server}")
}

fn transport_name(t: i64) -> &'static str {
    match t {
        2 => "tcp",
        3 => "tls",
        _ => "udp",
    }
}

/// An address as a URI host: IPv6 in brackets.
fn bracketed(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

/// The mask of a single address (address table rows).
fn host_mask(ip: &str) -> &'static str {
    if ip.contains(':') {
        "128"
    } else {
        "32"
    }
}

/// A gateway as a SIP URI with its transport: its dispatcher destination (probing) and the
/// proxy its registration goes through.
fn gateway_uri(s: &PeeringServerRow) -> String {
    format!(
        "sip:{}:{};transport={}",
        bracketed(&s.ip),
        s.port,
        transport_name(s.transport)
    )
}

fn dpid_of(set: Option<i64>, direction: &str, field: &str) -> i64 {
    let Some(set) = set else { return 0 };
    REWRITE_DPIDS
        .iter()
        .find(|(_, d, f, _)| *d == direction && *f == field)
        .map_or(0, |(_, _, _, off)| rewrite_dpid(set, *off))
}

/// The groups' priorities, and the enabled servers of groups that exist.
fn usable(d: &RoutingData) -> (BTreeMap<i64, i64>, Vec<&PeeringServerRow>) {
    let groups: BTreeMap<i64, i64> = d.groups.iter().map(|g| (g.id, g.priority)).collect();
    let servers = d
        .servers
        .iter()
        .filter(|x| x.enabled.0 && groups.contains_key(&x.group_id))
        .collect();
    (groups, servers)
}

/// The enabled rules by (callee prefix, caller pattern): the SIP servers hold one rule for
/// each, shared by the groups that have it.
fn merged_rules(d: &RoutingData) -> BTreeMap<(String, String), Vec<&PeeringRule>> {
    let mut merged: BTreeMap<(String, String), Vec<&PeeringRule>> = BTreeMap::new();
    for r in d.rules.iter().filter(|r| r.enabled.0) {
        merged
            .entry((
                r.callee_prefix.clone(),
                r.caller_pattern.clone().unwrap_or_default(),
            ))
            .or_default()
            .push(r);
    }
    merged
}

/// A rewrite rule as a dialplan row, the same on Kamailio and OpenSIPS: dpid, priority,
/// match_op 1 (regular expression), the pattern, 0 (Kamailio's match_len, OpenSIPS's
/// match_flags), the pattern again as the substitution, the replacement, no attributes.
fn dialplan_row(r: &RewriteRule) -> Vec<String> {
    vec![
        dpid_of(Some(r.set_id), &r.direction, &r.field).to_string(),
        r.priority.to_string(),
        "1".into(),
        r.match_pattern.clone(),
        "0".into(),
        r.match_pattern.clone(),
        r.replace_pattern.clone(),
        String::new(),
    ]
}

/// The rows every routing table of `t` should hold.
pub fn desired(t: &TargetCfg, d: &RoutingData, cipher: &Cipher, out: &mut Rows) -> Result<()> {
    if !t.carriers {
        return Ok(());
    }
    if t.driver == Driver::Opensips {
        return desired_opensips(t, d, cipher, out);
    }
    super::pbx::desired(&d.pbx, out);
    let s = |v: &dyn ToString| v.to_string();
    let (groups, servers) = usable(d);
    for x in &servers {
        let tag = format!(
            "gw={};grp={};cro={};ceo={}",
            x.id,
            x.group_id,
            dpid_of(x.rewrite_rule_set_id, "out", "caller"),
            dpid_of(x.rewrite_rule_set_id, "out", "callee")
        );
        out.insert(
            (Table::LcrGw, vec![s(&x.id)]),
            vec![
                x.name.clone(),
                x.ip.clone(),
                x.host.clone().unwrap_or_default(),
                s(&x.port),
                "1".into(),
                s(&x.transport),
                "0".into(),
                tag,
                "0".into(),
            ],
        );
        if x.probe.0 {
            out.insert(
                (Table::Dispatcher, vec![gateway_uri(x)]),
                vec![
                    "0".into(),
                    "0".into(),
                    format!("gw={}", x.id),
                    x.name.clone(),
                ],
            );
        }
        let tag = format!(
            "grp={};gw={};cri={};cei={}",
            x.group_id,
            x.id,
            dpid_of(x.rewrite_rule_set_id, "in", "caller"),
            dpid_of(x.rewrite_rule_set_id, "in", "callee")
        );
        out.insert(
            (
                Table::Address,
                vec![x.ip.clone(), host_mask(&x.ip).into(), "0".into(), tag],
            ),
            Vec::new(),
        );
        if x.peer_auth_register.0 {
            let user = x.peer_auth_user.clone().unwrap_or_default();
            let pass = x
                .peer_auth_pass_enc
                .as_deref()
                .map(|p| cipher.decrypt(p))
                .transpose()?
                .unwrap_or_default();
            let domain = x.host.clone().unwrap_or_else(|| bracketed(&x.ip));
            let proxy = gateway_uri(x);
            out.insert(
                (Table::Uacreg, vec![reg_uuid(x.id)]),
                vec![
                    user.clone(),
                    domain.clone(),
                    user.clone(),
                    domain,
                    x.peer_auth_realm.clone().unwrap_or_default(),
                    user,
                    pass,
                    String::new(),
                    proxy,
                    "600".into(),
                    "0".into(),
                    "0".into(),
                    String::new(),
                    String::new(),
                ],
            );
        }
    }
    // Outbound rules: one lcr rule per (prefix, caller pattern), shared by the groups that
    // have it; each group's enabled servers are its targets at the group's priority.
    let merged = merged_rules(d);
    let mut solved: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for ((prefix, caller), rules) in merged {
        let id = rules.iter().map(|r| r.id).min().unwrap_or(0);
        let stopper = rules.iter().any(|r| r.stopper.0);
        out.insert(
            (Table::LcrRule, vec![s(&id)]),
            vec![
                prefix,
                caller,
                rules[0].callee_pattern.clone().unwrap_or_default(),
                if stopper { "1" } else { "0" }.into(),
                "1".into(),
            ],
        );
        for r in &rules {
            let prio = groups.get(&r.group_id).copied().unwrap_or(9);
            let members: Vec<&&PeeringServerRow> = servers
                .iter()
                .filter(|x| x.group_id == r.group_id)
                .collect();
            // Solved once per group, whatever the number of its rules.
            let weights = solved
                .entry(r.group_id)
                .or_insert_with(|| {
                    lcr_weights(&members.iter().map(|x| x.weight).collect::<Vec<_>>())
                })
                .clone();
            for (x, w) in members.iter().zip(weights) {
                out.insert(
                    (Table::LcrRuleTarget, vec![s(&id), s(&x.id)]),
                    vec![s(&prio), s(&w)],
                );
            }
        }
    }
    // Inbound rules, per group in priority order: "<group>::n" the count, "<group>::<i>" the
    // rule as field, code, reason and pattern separated by tabs (the pattern last).
    let mut by_group: BTreeMap<i64, Vec<&crate::store::peering::PeeringInboundRule>> =
        BTreeMap::new();
    for r in d.inbound.iter().filter(|r| r.enabled.0) {
        by_group.entry(r.group_id).or_default().push(r);
    }
    for (g, mut rules) in by_group {
        rules.sort_by_key(|r| (r.priority, r.id));
        let row = |v: String| vec!["0".into(), "0".into(), v, "0".into()];
        out.insert(
            (Table::Htable, vec![format!("{g}::n")]),
            row(rules.len().to_string()),
        );
        for (i, r) in rules.iter().enumerate() {
            let v = format!(
                "{}\t{}\t{}\t{}",
                r.field,
                r.reject_code.unwrap_or(403),
                r.reject_reason.as_deref().unwrap_or("Forbidden"),
                r.pattern
            );
            out.insert((Table::Htable, vec![format!("{g}::{i}")]), row(v));
        }
    }
    // Rewrite rules: one dialplan per rule set, direction and field.
    for r in d.rewrites.iter().filter(|r| r.enabled.0) {
        out.insert((Table::Dialplan, dialplan_row(r)), Vec::new());
    }
    desired_ncos(d, Table::Userblocklist, out);
    Ok(())
}

/// NCOS levels: the patterns barred (blacklist) or, for a whitelist, every first digit
/// barred and the patterns allowed — the longest matching prefix decides (Kamailio's
/// userblocklist, OpenSIPS's userblacklist: the same rows).
fn desired_ncos(d: &RoutingData, table: Table, out: &mut Rows) {
    for l in &d.ncos {
        let user = format!("ncos{}", l.id);
        let mut rows: BTreeSet<(String, &str)> = BTreeSet::new();
        let patterns: Vec<&str> = d
            .ncos_patterns
            .iter()
            .filter(|p| p.ncos_level_id == l.id)
            .map(|p| p.pattern.as_str())
            .collect();
        if l.mode == "whitelist" {
            for first in [
                "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "+", "*", "#",
            ] {
                if !patterns.contains(&first) {
                    rows.insert((first.to_string(), "0"));
                }
            }
            for p in &patterns {
                rows.insert((p.to_string(), "1"));
            }
        } else {
            for p in &patterns {
                rows.insert((p.to_string(), "0"));
            }
        }
        for (prefix, allow) in rows {
            out.insert(
                (
                    table,
                    vec![user.clone(), "ncos".into(), prefix, allow.into()],
                ),
                Vec::new(),
            );
        }
    }
}

/// OpenSIPS 3.x: a peering group is a drouting carrier (`vxpg<id>`, its servers `vxps<id>`
/// weighted, `sort_alg` W); a rule is a dr_rules row of routing group 1 whose gateway list
/// names the carriers having it in priority order (hunt); callee and caller patterns travel
/// in the rule's `attrs` for the script. Trusted sources are address group 1
/// (`context_info` = group:server); registrations are registrant rows (bound to the
/// sipserver's `sip_address`); rewrite rules are dialplan rows as on Kamailio; NCOS levels are
/// userblacklist rows. Inbound rules are not written for OpenSIPS.
fn desired_opensips(t: &TargetCfg, d: &RoutingData, cipher: &Cipher, out: &mut Rows) -> Result<()> {
    let (groups, servers) = usable(d);
    for x in &servers {
        let mut address = format!("sip:{}:{}", bracketed(&x.ip), x.port);
        if x.transport != 1 {
            address.push_str(&format!(";transport={}", transport_name(x.transport)));
        }
        out.insert(
            (Table::DrGateways, vec![format!("vxps{}", x.id)]),
            vec![
                "1".into(),
                address,
                "0".into(),
                String::new(),
                format!(
                    "grp={};cro={};ceo={}",
                    x.group_id,
                    dpid_of(x.rewrite_rule_set_id, "out", "caller"),
                    dpid_of(x.rewrite_rule_set_id, "out", "callee")
                ),
                if x.probe.0 { "2" } else { "0" }.into(),
                "0".into(),
                x.name.clone(),
            ],
        );
        out.insert(
            (
                Table::OsAddress,
                vec![
                    x.ip.clone(),
                    host_mask(&x.ip).into(),
                    "0".into(),
                    "any".into(),
                    format!("{}:{}", x.group_id, x.id),
                ],
            ),
            Vec::new(),
        );
        if x.peer_auth_register.0 {
            let Some(me) = &t.sip_address else {
                tracing::warn!(target = %t.name, server = x.id,
                    "OpenSIPS registrations need the sipserver's sip_address (the binding): not written");
                continue;
            };
            let me = me.trim_start_matches("sip:").trim_start_matches("sips:");
            let user = x.peer_auth_user.clone().unwrap_or_default();
            let domain = x.host.clone().unwrap_or_else(|| bracketed(&x.ip));
            let pass = x
                .peer_auth_pass_enc
                .as_deref()
                .map(|p| cipher.decrypt(p))
                .transpose()?
                .unwrap_or_default();
            out.insert(
                (
                    Table::Registrant,
                    vec![
                        format!("sip:{user}@{domain}"),
                        format!("sip:{user}@{me}"),
                        format!("sip:{}:{}", bracketed(&x.ip), x.port),
                    ],
                ),
                vec![user, pass, format!(";vxps={}", x.id), "600".into()],
            );
        }
    }
    for g in groups.keys() {
        let members: Vec<&&PeeringServerRow> =
            servers.iter().filter(|x| x.group_id == *g).collect();
        if members.is_empty() {
            continue;
        }
        let list: Vec<String> = members
            .iter()
            .map(|x| format!("vxps{}={}", x.id, x.weight))
            .collect();
        out.insert(
            (Table::DrCarriers, vec![format!("vxpg{g}")]),
            vec![
                list.join(","),
                "0".into(),
                "W".into(),
                "0".into(),
                String::new(),
            ],
        );
    }
    let merged = merged_rules(d);
    for ((prefix, caller), rules) in merged {
        let mut carriers: Vec<(i64, i64)> = rules
            .iter()
            .filter(|r| servers.iter().any(|x| x.group_id == r.group_id))
            .map(|r| (groups.get(&r.group_id).copied().unwrap_or(9), r.group_id))
            .collect();
        carriers.sort();
        carriers.dedup();
        if carriers.is_empty() {
            continue;
        }
        let gwlist: Vec<String> = carriers.iter().map(|(_, g)| format!("#vxpg{g}")).collect();
        let attrs = format!(
            "caller={};callee={}",
            caller,
            rules[0].callee_pattern.clone().unwrap_or_default()
        );
        out.insert(
            (Table::DrRules, vec!["1".into(), prefix, attrs]),
            vec!["0".into(), gwlist.join(","), "N".into()],
        );
    }
    for r in d.rewrites.iter().filter(|r| r.enabled.0) {
        // OpenSIPS's repl_exp holds 32 characters.
        if r.replace_pattern.chars().count() > 32 {
            tracing::warn!(target = %t.name, rule = r.id,
                "rewrite rule's replacement is longer than OpenSIPS's 32 characters: not written");
            continue;
        }
        out.insert((Table::OsDialplan, dialplan_row(r)), Vec::new());
    }
    let mut bl = Rows::new();
    desired_ncos(d, Table::Userblacklist, &mut bl);
    out.extend(bl);
    Ok(())
}

/// lcr orders gateways of equal priority by weight × a random number, which does not share
/// calls in proportion to the weights (weights 1 and 2 put the first gateway first a quarter
/// of the time, not a third — lcr's own documentation). The weights written are chosen so
/// that each gateway comes first in proportion to the weight given through the API.
pub fn lcr_weights(given: &[i64]) -> Vec<i64> {
    if given.len() < 2 || given.iter().all(|w| *w == given[0]) {
        return given.to_vec();
    }
    let total: f64 = given.iter().map(|w| *w as f64).sum();
    let want: Vec<f64> = given.iter().map(|w| *w as f64 / total).collect();
    let mut w: Vec<f64> = given.iter().map(|w| *w as f64).collect();
    for _ in 0..100 {
        let p = first_probabilities(&w);
        if p.iter().zip(&want).all(|(p, q)| (p - q).abs() < 0.002) {
            break;
        }
        for i in 0..w.len() {
            if p[i] > 0.0 {
                w[i] *= (want[i] / p[i]).powf(0.7);
            }
        }
        let max = w.iter().cloned().fold(f64::MIN, f64::max);
        w.iter_mut().for_each(|x| *x *= 254.0 / max);
    }
    w.iter().map(|x| (x.round() as i64).clamp(1, 254)).collect()
}

/// The probability that each gateway comes first when each draws weight × U(0, 1).
pub fn first_probabilities(w: &[f64]) -> Vec<f64> {
    const STEPS: usize = 2000;
    w.iter()
        .enumerate()
        .map(|(i, wi)| {
            // P(i first) = ∫₀¹ Π_{j≠i} min(1, u·wᵢ/wⱼ) du
            (0..STEPS)
                .map(|k| {
                    let u = (k as f64 + 0.5) / STEPS as f64;
                    w.iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .map(|(_, wj)| (u * wi / wj).min(1.0))
                        .product::<f64>()
                })
                .sum::<f64>()
                / STEPS as f64
        })
        .collect()
}

/// Whether a change to this collection changes routing rows.
pub fn is_routing(resource: &str) -> bool {
    matches!(
        resource,
        "peeringgroups"
            | "peeringservers"
            | "peeringrules"
            | "peeringinboundrules"
            | "rewriterulesets"
            | "rewriterules"
            | "ncoslevels"
            | "ncospatterns"
    ) || super::pbx::is_pbx(resource)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lcr_weights_share_first_tries_in_proportion() {
        // lcr's documented example: weights 1 and 2 → the first comes first 1/4 of the time.
        let p = first_probabilities(&[1.0, 2.0]);
        assert!((p[0] - 0.25).abs() < 0.001, "{p:?}");
        for given in [vec![1, 3], vec![1, 2, 3], vec![10, 10, 80], vec![5, 1]] {
            let w = lcr_weights(&given);
            let p = first_probabilities(&w.iter().map(|x| *x as f64).collect::<Vec<_>>());
            let total: i64 = given.iter().sum();
            for (g, p) in given.iter().zip(&p) {
                let want = *g as f64 / total as f64;
                assert!((p - want).abs() < 0.01, "{given:?} → {w:?}: {p} for {want}");
            }
        }
        assert_eq!(lcr_weights(&[7, 7]), vec![7, 7]);
    }
}
