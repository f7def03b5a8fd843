//! Carriers (`/api/peeringgroups/`, `/api/peeringservers/`, `/api/peeringrules/`,
//! `/api/peeringinboundrules/`): the operator's, so admins only — a reseller gets 403, as on
//! NGCP. A group is a carrier with its priority among carriers (1 is tried first); its
//! servers are the gateways (weights balance calls among the servers of one group; a server
//! may register to the carrier with `peer_auth_*`); its rules say which calls go to it
//! (longest callee prefix first, then group priority; a stopper hides shorter prefixes); its
//! inbound rules say what a call from it must look like. The SIP servers hold all of it as
//! lcr, dispatcher (OPTIONS probing), uacreg, address and htable rows (`targets::routing`).
//!
//! Rewrite rule sets and NCOS levels, which resellers have too, are in [`super::routing`].

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{Error, Problems, Result};
use crate::model::{self, Actor};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::peering::{
    self as st, PeeringGroup, PeeringInboundRule, PeeringRule, PeeringServerRow, RegistrationState,
};
use crate::store::{delete_row, exists, get_as, list_as, save_row, Arg, Conn};

/// A regular expression as Kamailio's PCRE-based modules take it: compiled here (fancy-regex
/// has PCRE's back-references and look-arounds), at most `max` characters (the column width).
pub fn pattern(field: &str, s: &str, max: usize) -> Result<String> {
    let s = s.trim();
    if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("must be a regular expression of 1 to {max} characters"),
        ));
    }
    fancy_regex::Regex::new(s).map_err(|e| {
        Error::invalid(
            field,
            format!(
                "is not a valid regular expression: {}",
                first_line(&e.to_string())
            ),
        )
    })?;
    Ok(s.to_string())
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").chars().take(120).collect()
}

/// A number prefix: digits with + * # (what a dial plan can hold), at most `max` characters.
pub fn prefix(field: &str, s: &str, max: usize, allow_empty: bool) -> Result<String> {
    let s = s.trim();
    if (s.is_empty() && !allow_empty)
        || s.len() > max
        || !s.chars().all(|c| c.is_ascii_digit() || "+*#".contains(c))
    {
        return Err(Error::invalid(
            field,
            format!(
                "'{}' is not a number prefix (up to {max} of 0-9 + * #)",
                s.chars().take(40).collect::<String>()
            ),
        ));
    }
    Ok(s.to_string())
}

/// An integer within bounds, or a 422 naming the field.
pub(super) fn bounded(field: &str, v: i64, min: i64, max: i64) -> Result<i64> {
    if v < min || v > max {
        return Err(Error::invalid(
            field,
            format!("must be between {min} and {max}"),
        ));
    }
    Ok(v)
}

/// A short text (control characters refused by `model::text`); blank counts as none.
pub(super) fn short(field: &str, v: Option<String>, max: usize) -> Result<Option<String>> {
    Ok(model::text(field, v, max)?.filter(|s| !s.trim().is_empty()))
}

async fn group_exists(c: &mut Conn, id: i64) -> Result<()> {
    if !exists(c, "peering_groups", "id = $1", id).await? {
        return Err(Error::invalid(
            "group_id",
            format!("Invalid 'group_id': peering group {id} does not exist"),
        ));
    }
    Ok(())
}

// ---- groups ----------------------------------------------------------------------------

pub struct PeeringGroups;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeeringGroupInput {
    /// The carrier's contract (a live contract, e.g. of type sippeering).
    pub contract_id: i64,
    pub name: String,
    /// 1 (tried first) to 9; default 1.
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub description: Option<String>,
    /// Must be null: time sets are not supported yet.
    #[serde(default)]
    pub time_set_id: Option<i64>,
}

async fn group_cols(c: &mut Conn, i: PeeringGroupInput) -> Result<Vec<(&'static str, Arg)>> {
    let mut p = Problems::default();
    if !exists(
        c,
        "contracts",
        "id = $1 AND status <> 'terminated'",
        i.contract_id,
    )
    .await?
    {
        p.note(
            "contract_id",
            format!(
                "Invalid 'contract_id': contract {} does not exist",
                i.contract_id
            ),
        );
    }
    if i.time_set_id.is_some() {
        p.note(
            "time_set_id",
            "time sets for peering groups are not supported yet: leave it null",
        );
    }
    let name = p.value(model::non_empty("name", i.name, 127))?;
    let priority = p.value(bounded("priority", i.priority.unwrap_or(1), 1, 9))?;
    let description = p.value(short("description", i.description, 255))?;
    p.finish()?;
    Ok(vec![
        ("contract_id", Arg::Int(i.contract_id)),
        ("name", Arg::Text(name)),
        ("priority", Arg::Int(priority)),
        ("description", Arg::opt_text(description)),
    ])
}

async fn unique_group_name(c: &mut Conn, cols: &[(&str, Arg)], id: Option<i64>) -> Result<()> {
    let Some((_, Arg::Text(name))) = cols.iter().find(|(n, _)| *n == "name") else {
        return Ok(());
    };
    let other: Option<i64> = sqlx::query_scalar("SELECT id FROM peering_groups WHERE name = $1")
        .bind(name.clone())
        .fetch_optional(&mut *c)
        .await?;
    if other.is_some_and(|o| Some(o) != id) {
        return Err(Error::invalid(
            "name",
            "a peering group with this name already exists",
        ));
    }
    Ok(())
}

#[async_trait]
impl Resource for PeeringGroups {
    const NAME: &'static str = "peeringgroups";
    const SUMMARY: &'static str =
        "Peering groups: carriers, with their priority among carriers (admins only)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("contract_id", "the carrier's contract"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] =
        &[("id", "id"), ("name", "name"), ("priority", "priority")];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["name", "contract_id"];
    const ADMIN_ONLY: bool = true;
    type Repr = PeeringGroup;
    type Input = PeeringGroupInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PeeringGroup>, Option<i64>)> {
        let w = q.where_scoped(&Actor::system(), &["name"], &["contract_id"])?;
        list_as(c, st::GROUP_COLS, "peering_groups", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PeeringGroup>> {
        get_as(c, st::GROUP_COLS, "peering_groups", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, _: &Actor, i: PeeringGroupInput) -> Result<Created> {
        let cols = group_cols(c, i).await?;
        unique_group_name(c, &cols, None).await?;
        Ok(save_row(c, "peering_groups", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        _: &PeeringGroup,
        i: PeeringGroupInput,
    ) -> Result<()> {
        let cols = group_cols(c, i).await?;
        unique_group_name(c, &cols, Some(id)).await?;
        save_row(c, "peering_groups", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &PeeringGroup) -> Result<()> {
        for (table, what) in [
            ("peering_servers", "servers"),
            ("peering_rules", "rules"),
            ("peering_inbound_rules", "inbound rules"),
        ] {
            if exists(c, table, "group_id = $1", id).await? {
                return Err(Error::Locked(format!(
                    "peering group {id} still has {what}: delete them first"
                )));
            }
        }
        delete_row(c, "peering_groups", id).await
    }
    fn id(r: &PeeringGroup) -> i64 {
        r.id
    }
    fn reseller_of(_: &PeeringGroup) -> Option<i64> {
        None
    }
    fn links(r: &PeeringGroup) -> Vec<(&'static str, String)> {
        vec![
            ("contracts", format!("/api/contracts/{}", r.contract_id)),
            (
                "peeringservers",
                format!("/api/peeringservers/?group_id={}", r.id),
            ),
            (
                "peeringrules",
                format!("/api/peeringrules/?group_id={}", r.id),
            ),
        ]
    }
}

// ---- servers ---------------------------------------------------------------------------

pub struct PeeringServers;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PeeringServer {
    pub id: i64,
    pub group_id: i64,
    pub name: String,
    /// The gateway's IP address: where calls go and where the carrier's calls come from.
    pub ip: String,
    /// A host name for the Request-URI (calls still go to `ip`); null: the IP.
    pub host: Option<String>,
    pub port: i64,
    /// 1 UDP, 2 TCP, 3 TLS.
    pub transport: i64,
    /// 1 to 254: share of calls among the enabled servers of the group.
    pub weight: i64,
    /// Stored only: calls are not yet routed through an extra hop.
    pub via_route: Option<String>,
    pub enabled: bool,
    /// Health-checked with SIP OPTIONS; a server that stops answering is skipped.
    pub probe: bool,
    /// Numbers rewritten for this carrier (out) and for calls from it (in).
    pub rewrite_rule_set_id: Option<i64>,
    /// Register to the carrier with these credentials.
    pub peer_auth_register: bool,
    pub peer_auth_user: Option<String>,
    pub peer_auth_pass: Option<String>,
    /// The carrier's realm; null: the one it challenges with.
    pub peer_auth_realm: Option<String>,
    /// The registration's state on each SIP server, as last read from it.
    pub registration: Vec<RegistrationState>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeeringServerInput {
    pub group_id: i64,
    pub name: String,
    pub ip: String,
    #[serde(default)]
    pub host: Option<String>,
    /// Default 5060.
    #[serde(default)]
    pub port: Option<i64>,
    /// 1 UDP (default), 2 TCP, 3 TLS.
    #[serde(default)]
    pub transport: Option<i64>,
    /// 1 to 254, default 1.
    #[serde(default)]
    pub weight: Option<i64>,
    #[serde(default)]
    pub via_route: Option<String>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub probe: Option<bool>,
    #[serde(default)]
    pub rewrite_rule_set_id: Option<i64>,
    #[serde(default)]
    pub peer_auth_register: Option<bool>,
    #[serde(default)]
    pub peer_auth_user: Option<String>,
    #[serde(default)]
    pub peer_auth_pass: Option<String>,
    #[serde(default)]
    pub peer_auth_realm: Option<String>,
}

fn server_repr(
    r: PeeringServerRow,
    app: &App,
    regs: Vec<RegistrationState>,
) -> Result<PeeringServer> {
    Ok(PeeringServer {
        id: r.id,
        group_id: r.group_id,
        name: r.name,
        ip: r.ip,
        host: r.host,
        port: r.port,
        transport: r.transport,
        weight: r.weight,
        via_route: r.via_route,
        enabled: r.enabled.0,
        probe: r.probe.0,
        rewrite_rule_set_id: r.rewrite_rule_set_id,
        peer_auth_register: r.peer_auth_register.0,
        peer_auth_user: r.peer_auth_user,
        peer_auth_pass: match r.peer_auth_pass_enc.as_deref() {
            // A password that cannot be decrypted (another secret key) is an error, not a
            // null a GET → PUT round trip would then store.
            Some(p) => Some(app.cipher.decrypt(p)?),
            None => None,
        },
        peer_auth_realm: r.peer_auth_realm,
        registration: regs,
        create_timestamp: r.create_timestamp,
        modify_timestamp: r.modify_timestamp,
    })
}

/// A SIP URI user or realm: printable, no separators that would break a URI or a row.
fn sip_token(field: &str, v: Option<String>) -> Result<Option<String>> {
    let v = short(field, v, 64)?;
    if let Some(s) = &v {
        if s.chars()
            .any(|c| c.is_whitespace() || "<>\"'@;:?&=,".contains(c))
        {
            return Err(Error::invalid(
                field,
                "must not hold spaces, quotes or any of < > @ ; : ? & = ,",
            ));
        }
    }
    Ok(v)
}

async fn server_cols(
    c: &mut Conn,
    app: &App,
    i: PeeringServerInput,
) -> Result<Vec<(&'static str, Arg)>> {
    // Every field's problem is gathered, so that one answer names them all.
    let mut p = Problems::default();
    p.check(group_exists(c, i.group_id).await)?;
    let name = p.value(model::non_empty("name", i.name, 64))?;
    let ip = p.value(
        i.ip.trim()
            .parse::<std::net::IpAddr>()
            .map(|a| a.to_string())
            .map_err(|_| {
                Error::invalid(
                    "ip",
                    format!(
                        "'{}' is not an IPv4 or IPv6 address",
                        i.ip.chars().take(60).collect::<String>()
                    ),
                )
            }),
    )?;
    let host = match i.host.filter(|h| !h.trim().is_empty()) {
        Some(h) => p.check(model::domain_name("host", h.trim()))?,
        None => None,
    };
    if let Some(set) = i.rewrite_rule_set_id {
        if !exists(c, "rewrite_rule_sets", "id = $1", set).await? {
            p.note(
                "rewrite_rule_set_id",
                format!("Invalid 'rewrite_rule_set_id': rewrite rule set {set} does not exist"),
            );
        }
    }
    let register = i.peer_auth_register.unwrap_or(false);
    let user = p.value(sip_token("peer_auth_user", i.peer_auth_user))?;
    let realm = p.value(sip_token("peer_auth_realm", i.peer_auth_realm))?;
    let pass = p.value(short("peer_auth_pass", i.peer_auth_pass, 64))?;
    if register && user.is_none() && !p.names("peer_auth_user") {
        p.note(
            "peer_auth_user",
            "is required when peer_auth_register is true",
        );
    }
    if register && pass.is_none() && !p.names("peer_auth_pass") {
        p.note(
            "peer_auth_pass",
            "is required when peer_auth_register is true",
        );
    }
    let port = p.value(bounded("port", i.port.unwrap_or(5060), 1, 65535))?;
    let transport = p.value(bounded("transport", i.transport.unwrap_or(1), 1, 3))?;
    let weight = p.value(bounded("weight", i.weight.unwrap_or(1), 1, 254))?;
    let via_route = p.value(short("via_route", i.via_route, 255))?;
    p.finish()?;
    let pass_enc = pass.map(|p| app.cipher.encrypt(&p)).transpose()?;
    Ok(vec![
        ("group_id", Arg::Int(i.group_id)),
        ("name", Arg::Text(name)),
        ("ip", Arg::Text(ip)),
        ("host", Arg::opt_text(host)),
        ("port", Arg::Int(port)),
        ("transport", Arg::Int(transport)),
        ("weight", Arg::Int(weight)),
        ("via_route", Arg::opt_text(via_route)),
        ("enabled", Arg::flag(i.enabled.unwrap_or(true))),
        ("probe", Arg::flag(i.probe.unwrap_or(false))),
        ("rewrite_rule_set_id", Arg::opt_int(i.rewrite_rule_set_id)),
        ("peer_auth_register", Arg::flag(register)),
        ("peer_auth_user", Arg::opt_text(user)),
        ("peer_auth_pass_enc", Arg::opt_text(pass_enc)),
        ("peer_auth_realm", Arg::opt_text(realm)),
    ])
}

async fn unique_server(c: &mut Conn, cols: &[(&str, Arg)], id: Option<i64>) -> Result<()> {
    let (Some((_, Arg::Int(group))), Some((_, Arg::Text(name)))) = (
        cols.iter().find(|(n, _)| *n == "group_id"),
        cols.iter().find(|(n, _)| *n == "name"),
    ) else {
        return Ok(());
    };
    let get = |n: &str| cols.iter().find(|(c, _)| *c == n).map(|(_, a)| a.clone());
    if let (Some(Arg::Text(ip)), Some(Arg::Int(port)), Some(Arg::Int(transport))) =
        (get("ip"), get("port"), get("transport"))
    {
        let set = match get("rewrite_rule_set_id") {
            Some(Arg::Int(s)) => Some(s),
            _ => None,
        };
        // A call is told to come from a carrier by its source address alone: one address
        // belongs to one group and one rewrite rule set; and one address:port:transport is
        // one gateway (its health is probed once).
        let others = sqlx::query_as::<_, (i64, i64, i64, i64, Option<i64>)>(
            "SELECT id, group_id, port, transport, rewrite_rule_set_id FROM peering_servers WHERE ip = $1",
        )
        .bind(ip.clone())
        .fetch_all(&mut *c)
        .await?;
        for (other, g, p, tr, s) in others {
            if Some(other) == id {
                continue;
            }
            if g != *group || s != set {
                return Err(Error::invalid(
                    "ip",
                    format!("server {other} has this address in another group or with another rewrite rule set: a carrier is recognised by its address"),
                ));
            }
            if p == port && tr == transport {
                return Err(Error::invalid(
                    "port",
                    format!("server {other} already is {ip}:{port} with this transport"),
                ));
            }
        }
    }
    if crate::store::name_taken(c, "peering_servers", "group_id", *group, name, id).await? {
        return Err(Error::invalid(
            "name",
            "a server with this name already exists in the group",
        ));
    }
    Ok(())
}

#[async_trait]
impl Resource for PeeringServers {
    const NAME: &'static str = "peeringservers";
    const SUMMARY: &'static str =
        "Peering servers: a carrier's gateways, optionally registering to it (admins only)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("ip", "IP address"),
        ("group_id", "peering group"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("name", "name"),
        ("group_id", "group_id"),
        ("weight", "weight"),
    ];
    const READ_ONLY: &'static [&'static str] =
        &["id", "registration", "create_timestamp", "modify_timestamp"];
    const VOLATILE: &'static [&'static str] = &["registration"];
    const REQUIRED: &'static [&'static str] = &["group_id", "name", "ip"];
    const ADMIN_ONLY: bool = true;
    type Repr = PeeringServer;
    type Input = PeeringServerInput;

    async fn list(
        c: &mut Conn,
        app: &App,
        _: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PeeringServer>, Option<i64>)> {
        let w = q.where_scoped(&Actor::system(), &["name", "ip"], &["group_id"])?;
        let (rows, n): (Vec<PeeringServerRow>, _) =
            list_as(c, st::SERVER_COLS, "peering_servers", &w, &q.page).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let regs = st::registrations(c, r.id).await?;
            out.push(server_repr(r, app, regs)?);
        }
        Ok((out, n))
    }
    async fn load(c: &mut Conn, app: &App, id: i64, lock: bool) -> Result<Option<PeeringServer>> {
        let r: Option<PeeringServerRow> =
            get_as(c, st::SERVER_COLS, "peering_servers", id, lock).await?;
        match r {
            Some(r) => {
                let regs = st::registrations(c, id).await?;
                Ok(Some(server_repr(r, app, regs)?))
            }
            None => Ok(None),
        }
    }
    async fn create(c: &mut Conn, app: &App, _: &Actor, i: PeeringServerInput) -> Result<Created> {
        let cols = server_cols(c, app, i).await?;
        unique_server(c, &cols, None).await?;
        Ok(save_row(c, "peering_servers", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        _: &Actor,
        id: i64,
        _: &PeeringServer,
        i: PeeringServerInput,
    ) -> Result<()> {
        let cols = server_cols(c, app, i).await?;
        unique_server(c, &cols, Some(id)).await?;
        save_row(c, "peering_servers", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &PeeringServer) -> Result<()> {
        sqlx::query("DELETE FROM peering_registrations WHERE peering_server_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        delete_row(c, "peering_servers", id).await
    }
    fn id(r: &PeeringServer) -> i64 {
        r.id
    }
    fn reseller_of(_: &PeeringServer) -> Option<i64> {
        None
    }
    fn links(r: &PeeringServer) -> Vec<(&'static str, String)> {
        vec![(
            "peeringgroups",
            format!("/api/peeringgroups/{}", r.group_id),
        )]
    }
}

// ---- outbound rules --------------------------------------------------------------------

pub struct PeeringRules;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeeringRuleInput {
    pub group_id: i64,
    /// Up to 16 of 0-9 + * #; empty or absent: every number.
    #[serde(default)]
    pub callee_prefix: Option<String>,
    #[serde(default)]
    pub callee_pattern: Option<String>,
    #[serde(default)]
    pub caller_pattern: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub stopper: Option<bool>,
    /// Default true.
    #[serde(default)]
    pub enabled: Option<bool>,
}

fn opt_pattern(field: &str, v: Option<String>) -> Result<Option<String>> {
    v.filter(|s| !s.trim().is_empty())
        .map(|s| pattern(field, &s, 64))
        .transpose()
}

async fn rule_cols(
    c: &mut Conn,
    i: PeeringRuleInput,
    id: Option<i64>,
) -> Result<Vec<(&'static str, Arg)>> {
    // Every problem at once, in the order they were always checked: the fields' own, then
    // (those being good) the clashes with other rules, then the description.
    let mut p = Problems::default();
    p.check(group_exists(c, i.group_id).await)?;
    let prefix = p.value(prefix(
        "callee_prefix",
        i.callee_prefix.as_deref().unwrap_or(""),
        16,
        true,
    ))?;
    let callee = p.value(opt_pattern("callee_pattern", i.callee_pattern))?;
    let caller = p.value(opt_pattern("caller_pattern", i.caller_pattern))?;
    if p.is_empty() {
        p.check(rule_clashes(c, i.group_id, &prefix, &callee, &caller, id).await)?;
    }
    let description = p.value(short("description", i.description, 255))?;
    p.finish()?;
    Ok(vec![
        ("group_id", Arg::Int(i.group_id)),
        ("callee_prefix", Arg::Text(prefix)),
        ("callee_pattern", Arg::opt_text(callee)),
        ("caller_pattern", Arg::opt_text(caller)),
        ("description", Arg::opt_text(description)),
        ("stopper", Arg::flag(i.stopper.unwrap_or(false))),
        ("enabled", Arg::flag(i.enabled.unwrap_or(true))),
    ])
}

/// Kamailio's lcr holds one rule per (prefix, caller pattern): rules of several groups share
/// it (each group a target), so they must agree on the callee pattern; and one group holds a
/// prefix and caller pattern once.
async fn rule_clashes(
    c: &mut Conn,
    group_id: i64,
    prefix: &str,
    callee: &Option<String>,
    caller: &Option<String>,
    id: Option<i64>,
) -> Result<()> {
    let rows = sqlx::query_as::<_, (i64, i64, Option<String>)>(
        "SELECT id, group_id, callee_pattern FROM peering_rules WHERE callee_prefix = $1 \
         AND COALESCE(caller_pattern, '') = $2",
    )
    .bind(prefix.to_string())
    .bind(caller.clone().unwrap_or_default())
    .fetch_all(&mut *c)
    .await?;
    for (other, group, other_callee) in rows {
        if Some(other) == id {
            continue;
        }
        if group == group_id {
            return Err(Error::invalid(
                "callee_prefix",
                format!(
                    "rule {other} of this group already has this callee_prefix and caller_pattern"
                ),
            ));
        }
        if &other_callee != callee {
            return Err(Error::invalid(
                "callee_pattern",
                format!(
                    "rule {other} (group {group}) has the same callee_prefix and caller_pattern with callee_pattern {}: \
                     rules sharing a prefix and caller pattern must share the callee pattern",
                    other_callee.as_deref().unwrap_or("null")
                ),
            ));
        }
    }
    Ok(())
}

#[async_trait]
impl Resource for PeeringRules {
    const NAME: &'static str = "peeringrules";
    const SUMMARY: &'static str =
        "Peering rules: which called numbers (and callers) go to a peering group (admins only)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("group_id", "peering group"),
        ("callee_prefix", "callee prefix, * wildcard"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("group_id", "group_id"),
        ("callee_prefix", "callee_prefix"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["group_id"];
    const ADMIN_ONLY: bool = true;
    type Repr = PeeringRule;
    type Input = PeeringRuleInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PeeringRule>, Option<i64>)> {
        let w = q.where_scoped(&Actor::system(), &["callee_prefix"], &["group_id"])?;
        list_as(c, st::RULE_COLS, "peering_rules", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PeeringRule>> {
        get_as(c, st::RULE_COLS, "peering_rules", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, _: &Actor, i: PeeringRuleInput) -> Result<Created> {
        let cols = rule_cols(c, i, None).await?;
        Ok(save_row(c, "peering_rules", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        _: &PeeringRule,
        i: PeeringRuleInput,
    ) -> Result<()> {
        let cols = rule_cols(c, i, Some(id)).await?;
        save_row(c, "peering_rules", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &PeeringRule) -> Result<()> {
        delete_row(c, "peering_rules", id).await
    }
    fn id(r: &PeeringRule) -> i64 {
        r.id
    }
    fn reseller_of(_: &PeeringRule) -> Option<i64> {
        None
    }
    fn links(r: &PeeringRule) -> Vec<(&'static str, String)> {
        vec![(
            "peeringgroups",
            format!("/api/peeringgroups/{}", r.group_id),
        )]
    }
}

// ---- inbound rules ---------------------------------------------------------------------

pub struct PeeringInboundRules;

pub const INBOUND_FIELDS: &[&str] = &[
    "from_user",
    "from_domain",
    "from_uri",
    "to_user",
    "to_domain",
    "to_uri",
    "ruri_user",
    "ruri_domain",
    "ruri_uri",
    "pai_user",
    "pai_domain",
    "pai_uri",
];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeeringInboundRuleInput {
    pub group_id: i64,
    pub field: String,
    pub pattern: String,
    /// 400 to 699; default 403.
    #[serde(default)]
    pub reject_code: Option<i64>,
    #[serde(default)]
    pub reject_reason: Option<String>,
    /// Unique within the group; default: after the group's last rule.
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

async fn inbound_cols(
    c: &mut Conn,
    i: PeeringInboundRuleInput,
    id: Option<i64>,
) -> Result<Vec<(&'static str, Arg)>> {
    group_exists(c, i.group_id).await?;
    let field = i.field.trim().to_string();
    if !INBOUND_FIELDS.contains(&field.as_str()) {
        return Err(Error::invalid(
            "field",
            format!("must be one of {}", INBOUND_FIELDS.join(", ")),
        ));
    }
    let pat = pattern("pattern", &i.pattern, 64)?;
    if pat.contains('\t') {
        return Err(Error::invalid("pattern", "must not hold a tab"));
    }
    let code = i
        .reject_code
        .map(|v| bounded("reject_code", v, 400, 699))
        .transpose()?;
    // The rule travels as one htable value of at most 128 characters.
    let reason = short("reject_reason", i.reject_reason, 47)?;
    let priority = match i.priority {
        Some(p) => bounded("priority", p, 0, 1_000_000)?,
        None => {
            let max: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(priority) FROM peering_inbound_rules WHERE group_id = $1",
            )
            .bind(i.group_id)
            .fetch_one(&mut *c)
            .await?;
            max.map_or(0, |m| m + 1)
        }
    };
    let taken: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM peering_inbound_rules WHERE group_id = $1 AND priority = $2",
    )
    .bind(i.group_id)
    .bind(priority)
    .fetch_optional(&mut *c)
    .await?;
    if taken.is_some_and(|t| Some(t) != id) {
        return Err(Error::invalid(
            "priority",
            "another inbound rule of this group has this priority",
        ));
    }
    Ok(vec![
        ("group_id", Arg::Int(i.group_id)),
        ("field", Arg::Text(field)),
        ("pattern", Arg::Text(pat)),
        ("reject_code", Arg::opt_int(code)),
        ("reject_reason", Arg::opt_text(reason)),
        ("priority", Arg::Int(priority)),
        ("enabled", Arg::flag(i.enabled.unwrap_or(true))),
    ])
}

#[async_trait]
impl Resource for PeeringInboundRules {
    const NAME: &'static str = "peeringinboundrules";
    const SUMMARY: &'static str =
        "Peering inbound rules: what a call from a peering group must match, or be rejected (admins only)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[("group_id", "peering group")];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("group_id", "group_id"),
        ("priority", "priority"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["group_id", "field", "pattern"];
    const ADMIN_ONLY: bool = true;
    type Repr = PeeringInboundRule;
    type Input = PeeringInboundRuleInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PeeringInboundRule>, Option<i64>)> {
        let w = q.where_scoped(&Actor::system(), &[], &["group_id"])?;
        list_as(c, st::INBOUND_COLS, "peering_inbound_rules", &w, &q.page).await
    }
    async fn load(
        c: &mut Conn,
        _: &App,
        id: i64,
        lock: bool,
    ) -> Result<Option<PeeringInboundRule>> {
        get_as(c, st::INBOUND_COLS, "peering_inbound_rules", id, lock).await
    }
    async fn create(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        i: PeeringInboundRuleInput,
    ) -> Result<Created> {
        let cols = inbound_cols(c, i, None).await?;
        Ok(save_row(c, "peering_inbound_rules", None, cols)
            .await?
            .into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        _: &PeeringInboundRule,
        i: PeeringInboundRuleInput,
    ) -> Result<()> {
        let cols = inbound_cols(c, i, Some(id)).await?;
        save_row(c, "peering_inbound_rules", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        _: &PeeringInboundRule,
    ) -> Result<()> {
        delete_row(c, "peering_inbound_rules", id).await
    }
    fn id(r: &PeeringInboundRule) -> i64 {
        r.id
    }
    fn reseller_of(_: &PeeringInboundRule) -> Option<i64> {
        None
    }
    fn links(r: &PeeringInboundRule) -> Vec<(&'static str, String)> {
        vec![(
            "peeringgroups",
            format!("/api/peeringgroups/{}", r.group_id),
        )]
    }
}
