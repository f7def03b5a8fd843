//! Carriers and routing as stored: peering groups, servers, outbound and inbound rules,
//! rewrite rule sets and rules, NCOS levels and patterns, and the registration states read
//! back from the SIP servers.

use serde::Serialize;
use sqlx::FromRow;
use utoipa::ToSchema;

use super::{all_of, Conn, Flag};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PeeringGroup {
    pub id: i64,
    pub contract_id: i64,
    pub name: String,
    /// 1 (tried first) to 9.
    pub priority: i64,
    pub description: Option<String>,
    /// Always null: time sets are not supported yet.
    #[sqlx(default)]
    pub time_set_id: Option<i64>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const GROUP_COLS: &str =
    "id, contract_id, name, priority, description, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, FromRow)]
pub struct PeeringServerRow {
    pub id: i64,
    pub group_id: i64,
    pub name: String,
    pub ip: String,
    pub host: Option<String>,
    pub port: i64,
    pub transport: i64,
    pub weight: i64,
    pub via_route: Option<String>,
    #[sqlx(try_from = "i64")]
    pub enabled: Flag,
    #[sqlx(try_from = "i64")]
    pub probe: Flag,
    pub rewrite_rule_set_id: Option<i64>,
    #[sqlx(try_from = "i64")]
    pub peer_auth_register: Flag,
    pub peer_auth_user: Option<String>,
    pub peer_auth_pass_enc: Option<String>,
    pub peer_auth_realm: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const SERVER_COLS: &str = "id, group_id, name, ip, host, port, transport, weight, via_route, \
    enabled, probe, rewrite_rule_set_id, peer_auth_register, peer_auth_user, peer_auth_pass_enc, \
    peer_auth_realm, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PeeringRule {
    pub id: i64,
    pub group_id: i64,
    /// Digits (with + * #) the called number starts with; empty: any.
    pub callee_prefix: String,
    /// A regular expression on the whole Request-URI (sip:…); null: any.
    pub callee_pattern: Option<String>,
    /// A regular expression on the caller's URI; null: any.
    pub caller_pattern: Option<String>,
    pub description: Option<String>,
    /// A matching stopper rule hides the rules with shorter prefixes.
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub stopper: Flag,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub enabled: Flag,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const RULE_COLS: &str = "id, group_id, callee_prefix, callee_pattern, caller_pattern, \
    description, stopper, enabled, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct PeeringInboundRule {
    pub id: i64,
    pub group_id: i64,
    /// What the pattern is matched against: from_user, from_domain, from_uri, to_user,
    /// to_domain, to_uri, ruri_user, ruri_domain, ruri_uri, pai_user, pai_domain, pai_uri.
    pub field: String,
    /// A regular expression the field must match.
    pub pattern: String,
    /// The answer when it does not (default 403).
    pub reject_code: Option<i64>,
    pub reject_reason: Option<String>,
    /// Rules are checked in ascending priority; unique within the group.
    pub priority: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub enabled: Flag,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const INBOUND_COLS: &str = "id, group_id, field, pattern, reject_code, reject_reason, \
    priority, enabled, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct RewriteRuleSet {
    pub id: i64,
    pub reseller_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const SET_COLS: &str = "id, reseller_id, name, description, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct RewriteRule {
    pub id: i64,
    pub set_id: i64,
    pub reseller_id: i64,
    /// in (calls arriving: normalise) or out (calls leaving to a carrier).
    pub direction: String,
    /// caller or callee.
    pub field: String,
    /// A regular expression; the first matching rule (by priority) of its set, direction and
    /// field applies.
    pub match_pattern: String,
    /// The replacement, with \1 … \9 for the pattern's groups.
    pub replace_pattern: String,
    pub description: Option<String>,
    /// Lower first.
    pub priority: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub enabled: Flag,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const REWRITE_COLS: &str = "id, set_id, reseller_id, direction, field, match_pattern, \
    replace_pattern, description, priority, enabled, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct NcosLevel {
    pub id: i64,
    pub reseller_id: i64,
    /// The level's name.
    pub level: String,
    /// blacklist: the patterns are barred; whitelist: only the patterns may be called.
    pub mode: String,
    /// Stored only: calls within the caller's own area code are not exempted yet.
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub local_ac: Flag,
    /// Stored only: calls within the caller's own PBX are not exempted yet.
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub intra_pbx: Flag,
    pub description: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const NCOS_COLS: &str = "id, reseller_id, level, mode, local_ac, intra_pbx, description, \
    create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct NcosPattern {
    pub id: i64,
    pub ncos_level_id: i64,
    pub reseller_id: i64,
    /// A number prefix: digits, +, * and #.
    pub pattern: String,
    pub description: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const NCOS_PATTERN_COLS: &str =
    "id, ncos_level_id, reseller_id, pattern, description, create_timestamp, modify_timestamp";

/// Everything the SIP servers' routing tables are computed from (these tables are small:
/// read whole).
pub struct RoutingData {
    pub groups: Vec<PeeringGroup>,
    pub servers: Vec<PeeringServerRow>,
    pub rules: Vec<PeeringRule>,
    pub inbound: Vec<PeeringInboundRule>,
    pub rewrites: Vec<RewriteRule>,
    pub ncos: Vec<NcosLevel>,
    pub ncos_patterns: Vec<NcosPattern>,
    pub pbx: super::pbx::PbxData,
}

pub async fn routing_data(c: &mut Conn) -> Result<RoutingData> {
    Ok(RoutingData {
        groups: all_of(c, GROUP_COLS, "peering_groups").await?,
        servers: all_of(c, SERVER_COLS, "peering_servers").await?,
        rules: all_of(c, RULE_COLS, "peering_rules").await?,
        inbound: all_of(c, INBOUND_COLS, "peering_inbound_rules").await?,
        rewrites: all_of(c, REWRITE_COLS, "rewrite_rules").await?,
        ncos: all_of(c, NCOS_COLS, "ncos_levels").await?,
        ncos_patterns: all_of(c, NCOS_PATTERN_COLS, "ncos_patterns").await?,
        pbx: super::pbx::pbx_data(c).await?,
    })
}

#[derive(Debug, Clone, Serialize, FromRow, ToSchema)]
pub struct RegistrationState {
    pub sipserver_id: i64,
    /// registered, registering, failed, disabled or unknown (as the SIP server reports it).
    pub state: String,
    pub detail: Option<String>,
    /// When this state was first read (it is read every 15 s, every second while unsettled).
    pub checked_at: String,
}

pub async fn registrations(c: &mut Conn, server: i64) -> Result<Vec<RegistrationState>> {
    let rows = sqlx::query(
        "SELECT sipserver_id, state, detail, checked_at FROM peering_registrations \
         WHERE peering_server_id = $1 ORDER BY sipserver_id",
    )
    .bind(server)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .iter()
        .map(RegistrationState::from_row)
        .collect::<std::result::Result<_, _>>()?)
}

pub async fn save_registration(
    c: &mut Conn,
    server: i64,
    sipserver: i64,
    state: &str,
    detail: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "DELETE FROM peering_registrations WHERE peering_server_id = $1 AND sipserver_id = $2",
    )
    .bind(server)
    .bind(sipserver)
    .execute(&mut *c)
    .await?;
    sqlx::query(
        "INSERT INTO peering_registrations (peering_server_id, sipserver_id, state, detail, checked_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(server)
    .bind(sipserver)
    .bind(state.to_string())
    .bind(detail.map(str::to_string))
    .bind(super::now())
    .execute(&mut *c)
    .await?;
    Ok(())
}
