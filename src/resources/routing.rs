//! Number rewriting and class of service, which resellers keep for their own customers:
//! `/api/rewriterulesets/` and `/api/rewriterules/` (regular-expression rewrites of the caller
//! and callee, in — when a call arrives, to normalise it — and out — when it leaves to a
//! carrier), attached to peering servers (`rewrite_rule_set_id`) and to domains, customers or
//! subscribers by preference (`rewrite_rule_set_id`); `/api/ncoslevels/` and
//! `/api/ncospatterns/` (number prefixes barred, or the only ones allowed), assigned by
//! preference (`ncos_id`). The SIP servers hold them as dialplan and userblocklist rows.

use async_trait::async_trait;
use serde::Deserialize;
use utoipa::ToSchema;

use super::peering::{bounded, pattern, prefix, short};
use super::resellers::check_reseller;
use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{self, Actor};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::peering::{self as st, NcosLevel, NcosPattern, RewriteRule, RewriteRuleSet};
use crate::store::{delete_row, exists, get_as, list_as, name_taken, save_row, Arg, Conn};

/// Whether a preference of any level names this object (`value` is its id as JSON).
async fn named_by_preference(c: &mut Conn, name: &str, id: i64) -> Result<bool> {
    for table in [
        "subscriber_preferences",
        "customer_preferences",
        "domain_preferences",
    ] {
        let hit: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM {table} WHERE name = $1 AND value = $2 LIMIT 1"
        ))
        .bind(name.to_string())
        .bind(id.to_string())
        .fetch_optional(&mut *c)
        .await?;
        if hit.is_some() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The references preferences make (`ncos_id`, `rewrite_rule_set_id`) must exist within the
/// owner's reseller.
pub async fn check_preference_refs(
    c: &mut Conn,
    reseller: i64,
    prefs: &std::collections::BTreeMap<String, serde_json::Value>,
) -> Result<()> {
    for (name, table, what) in [
        ("ncos_id", "ncos_levels", "NCOS level"),
        (
            "rewrite_rule_set_id",
            "rewrite_rule_sets",
            "rewrite rule set",
        ),
    ] {
        if let Some(id) = prefs.get(name).and_then(|v| v.as_i64()) {
            if !exists(
                c,
                table,
                &format!("id = $1 AND reseller_id = {reseller}"),
                id,
            )
            .await?
            {
                return Err(Error::invalid(
                    name,
                    format!("Invalid '{name}': {what} {id} does not exist"),
                ));
            }
        }
    }
    Ok(())
}

/// A rule set a carrier uses rewrites every reseller's calls through that carrier: only
/// admins may change its rules.
async fn carrier_set_guard(c: &mut Conn, actor: &Actor, set: i64) -> Result<()> {
    if !actor.is_admin() && exists(c, "peering_servers", "rewrite_rule_set_id = $1", set).await? {
        return Err(Error::Forbidden(format!(
            "rewrite rule set {set} is used by carriers: only admins may change its rules"
        )));
    }
    Ok(())
}

fn scope_check(actor: &Actor, field: &str, owner: i64, what: &str, id: i64) -> Result<()> {
    if actor.scope().is_some_and(|r| r != owner) {
        return Err(Error::invalid(
            field,
            format!("Invalid '{field}': {what} {id} does not exist"),
        ));
    }
    Ok(())
}

// ---- rewrite rule sets -----------------------------------------------------------------

pub struct RewriteRuleSets;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteRuleSetInput {
    /// Required for admins; a reseller's own is used otherwise.
    #[serde(default)]
    pub reseller_id: Option<i64>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[async_trait]
impl Resource for RewriteRuleSets {
    const NAME: &'static str = "rewriterulesets";
    const SUMMARY: &'static str =
        "Rewrite rule sets: how numbers are normalised when calls arrive and leave";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("name", "name"),
        ("reseller_id", "reseller_id"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["name", "reseller_id"];
    type Repr = RewriteRuleSet;
    type Input = RewriteRuleSetInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<RewriteRuleSet>, Option<i64>)> {
        let w = q.where_scoped(actor, &["name"], &["reseller_id"])?;
        list_as(c, st::SET_COLS, "rewrite_rule_sets", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<RewriteRuleSet>> {
        get_as(c, st::SET_COLS, "rewrite_rule_sets", id, lock).await
    }
    async fn create(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        i: RewriteRuleSetInput,
    ) -> Result<Created> {
        let reseller = actor.owning_reseller(i.reseller_id)?;
        check_reseller(c, reseller).await?;
        let name = model::non_empty("name", i.name, 64)?;
        if name_taken(c, "rewrite_rule_sets", "reseller_id", reseller, &name, None).await? {
            return Err(Error::invalid(
                "name",
                "a rewrite rule set with this name already exists",
            ));
        }
        let cols = vec![
            ("reseller_id", Arg::Int(reseller)),
            ("name", Arg::Text(name)),
            (
                "description",
                Arg::opt_text(short("description", i.description, 255)?),
            ),
        ];
        Ok(save_row(c, "rewrite_rule_sets", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &RewriteRuleSet,
        i: RewriteRuleSetInput,
    ) -> Result<()> {
        if i.reseller_id.is_some_and(|r| r != old.reseller_id) {
            return Err(Error::invalid(
                "reseller_id",
                "a rewrite rule set keeps its reseller",
            ));
        }
        let name = model::non_empty("name", i.name, 64)?;
        if name_taken(
            c,
            "rewrite_rule_sets",
            "reseller_id",
            old.reseller_id,
            &name,
            Some(id),
        )
        .await?
        {
            return Err(Error::invalid(
                "name",
                "a rewrite rule set with this name already exists",
            ));
        }
        let cols = vec![
            ("reseller_id", Arg::Int(old.reseller_id)),
            ("name", Arg::Text(name)),
            (
                "description",
                Arg::opt_text(short("description", i.description, 255)?),
            ),
        ];
        save_row(c, "rewrite_rule_sets", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &RewriteRuleSet) -> Result<()> {
        if exists(c, "peering_servers", "rewrite_rule_set_id = $1", id).await? {
            return Err(Error::Locked(format!(
                "rewrite rule set {id} is still used by peering servers"
            )));
        }
        if named_by_preference(c, "rewrite_rule_set_id", id).await? {
            return Err(Error::Locked(format!(
                "rewrite rule set {id} is still named by preferences (rewrite_rule_set_id)"
            )));
        }
        sqlx::query("DELETE FROM rewrite_rules WHERE set_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        delete_row(c, "rewrite_rule_sets", id).await
    }
    fn id(r: &RewriteRuleSet) -> i64 {
        r.id
    }
    fn reseller_of(r: &RewriteRuleSet) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &RewriteRuleSet) -> Vec<(&'static str, String)> {
        vec![(
            "rewriterules",
            format!("/api/rewriterules/?set_id={}", r.id),
        )]
    }
}

// ---- rewrite rules ---------------------------------------------------------------------

pub struct RewriteRules;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RewriteRuleInput {
    pub set_id: i64,
    /// in or out.
    pub direction: String,
    /// caller or callee.
    pub field: String,
    pub match_pattern: String,
    pub replace_pattern: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Lower first; default 50.
    #[serde(default)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub enabled: Option<bool>,
}

/// The replacement: printable, at most 256 characters (Kamailio's column), and every `\N` a
/// group the pattern has.
fn replacement(field: &str, s: &str, groups: usize) -> Result<String> {
    if s.chars().count() > 256 || s.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            "must be at most 256 characters without control characters",
        ));
    }
    let mut chars = s.chars().peekable();
    while let Some(ch) = chars.next() {
        if ch == '\\' {
            match chars.next() {
                Some(d) if d.is_ascii_digit() => {
                    let n = d.to_digit(10).unwrap_or(0) as usize;
                    if n >= groups {
                        return Err(Error::invalid(
                            field,
                            format!("refers to group \\{n}, but match_pattern has {} group(s)", groups - 1),
                        ));
                    }
                }
                Some('\\') => {}
                _ => {
                    return Err(Error::invalid(
                        field,
                        "a backslash must be followed by a group number (\\0 to \\9) or another backslash",
                    ))
                }
            }
        }
    }
    Ok(s.to_string())
}

async fn rewrite_cols(
    c: &mut Conn,
    actor: &Actor,
    i: RewriteRuleInput,
) -> Result<Vec<(&'static str, Arg)>> {
    let set: Option<RewriteRuleSet> =
        get_as(c, st::SET_COLS, "rewrite_rule_sets", i.set_id, false).await?;
    let Some(set) = set else {
        return Err(Error::invalid(
            "set_id",
            format!(
                "Invalid 'set_id': rewrite rule set {} does not exist",
                i.set_id
            ),
        ));
    };
    scope_check(
        actor,
        "set_id",
        set.reseller_id,
        "rewrite rule set",
        i.set_id,
    )?;
    carrier_set_guard(c, actor, set.id).await?;
    let direction = i.direction.trim().to_ascii_lowercase();
    if direction != "in" && direction != "out" {
        return Err(Error::invalid("direction", "must be in or out"));
    }
    let field = i.field.trim().to_ascii_lowercase();
    if field != "caller" && field != "callee" {
        return Err(Error::invalid("field", "must be caller or callee"));
    }
    let m = pattern("match_pattern", &i.match_pattern, 64)?;
    let groups = fancy_regex::Regex::new(&m)
        .map(|r| r.captures_len())
        .unwrap_or(1);
    let r = replacement("replace_pattern", &i.replace_pattern, groups)?;
    let priority = bounded("priority", i.priority.unwrap_or(50), 0, 1_000_000)?;
    Ok(vec![
        ("set_id", Arg::Int(set.id)),
        ("reseller_id", Arg::Int(set.reseller_id)),
        ("direction", Arg::Text(direction)),
        ("field", Arg::Text(field)),
        ("match_pattern", Arg::Text(m)),
        ("replace_pattern", Arg::Text(r)),
        (
            "description",
            Arg::opt_text(short("description", i.description, 255)?),
        ),
        ("priority", Arg::Int(priority)),
        ("enabled", Arg::flag(i.enabled.unwrap_or(true))),
    ])
}

#[async_trait]
impl Resource for RewriteRules {
    const NAME: &'static str = "rewriterules";
    const SUMMARY: &'static str = "Rewrite rules: one regular-expression rewrite of a rule set";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("set_id", "rewrite rule set"),
        ("direction", "in or out"),
        ("field", "caller or callee"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] =
        &[("id", "id"), ("set_id", "set_id"), ("priority", "priority")];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &[
        "set_id",
        "direction",
        "field",
        "match_pattern",
        "replace_pattern",
    ];
    type Repr = RewriteRule;
    type Input = RewriteRuleInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<RewriteRule>, Option<i64>)> {
        let w = q.where_scoped(actor, &["direction", "field"], &["set_id", "reseller_id"])?;
        list_as(c, st::REWRITE_COLS, "rewrite_rules", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<RewriteRule>> {
        get_as(c, st::REWRITE_COLS, "rewrite_rules", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: RewriteRuleInput) -> Result<Created> {
        let cols = rewrite_cols(c, actor, i).await?;
        Ok(save_row(c, "rewrite_rules", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &RewriteRule,
        i: RewriteRuleInput,
    ) -> Result<()> {
        if i.set_id != old.set_id {
            return Err(Error::invalid("set_id", "a rewrite rule keeps its set"));
        }
        let cols = rewrite_cols(c, actor, i).await?;
        save_row(c, "rewrite_rules", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &RewriteRule,
    ) -> Result<()> {
        carrier_set_guard(c, actor, old.set_id).await?;
        delete_row(c, "rewrite_rules", id).await
    }
    fn id(r: &RewriteRule) -> i64 {
        r.id
    }
    fn reseller_of(r: &RewriteRule) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &RewriteRule) -> Vec<(&'static str, String)> {
        vec![(
            "rewriterulesets",
            format!("/api/rewriterulesets/{}", r.set_id),
        )]
    }
}

// ---- NCOS levels -----------------------------------------------------------------------

pub struct NcosLevels;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NcosLevelInput {
    /// Required for admins; a reseller's own is used otherwise.
    #[serde(default)]
    pub reseller_id: Option<i64>,
    pub level: String,
    /// blacklist (default) or whitelist.
    #[serde(default)]
    pub mode: Option<String>,
    #[serde(default)]
    pub local_ac: Option<bool>,
    #[serde(default)]
    pub intra_pbx: Option<bool>,
    #[serde(default)]
    pub description: Option<String>,
}

async fn ncos_cols(
    c: &mut Conn,
    reseller: i64,
    i: NcosLevelInput,
    id: Option<i64>,
) -> Result<Vec<(&'static str, Arg)>> {
    let level = model::non_empty("level", i.level, 64)?;
    let other: Option<i64> =
        sqlx::query_scalar("SELECT id FROM ncos_levels WHERE reseller_id = $1 AND level = $2")
            .bind(reseller)
            .bind(level.clone())
            .fetch_optional(&mut *c)
            .await?;
    if other.is_some_and(|o| Some(o) != id) {
        return Err(Error::invalid(
            "level",
            "an NCOS level with this name already exists",
        ));
    }
    let mode = i
        .mode
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_else(|| "blacklist".into());
    if mode != "blacklist" && mode != "whitelist" {
        return Err(Error::invalid("mode", "must be blacklist or whitelist"));
    }
    Ok(vec![
        ("reseller_id", Arg::Int(reseller)),
        ("level", Arg::Text(level)),
        ("mode", Arg::Text(mode)),
        ("local_ac", Arg::flag(i.local_ac.unwrap_or(false))),
        ("intra_pbx", Arg::flag(i.intra_pbx.unwrap_or(false))),
        (
            "description",
            Arg::opt_text(short("description", i.description, 255)?),
        ),
    ])
}

#[async_trait]
impl Resource for NcosLevels {
    const NAME: &'static str = "ncoslevels";
    const SUMMARY: &'static str =
        "NCOS levels: classes of service (numbers barred, or the only ones allowed)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("level", "name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("level", "level"),
        ("reseller_id", "reseller_id"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["level", "reseller_id"];
    type Repr = NcosLevel;
    type Input = NcosLevelInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<NcosLevel>, Option<i64>)> {
        let w = q.where_scoped(actor, &["level"], &["reseller_id"])?;
        list_as(c, st::NCOS_COLS, "ncos_levels", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<NcosLevel>> {
        get_as(c, st::NCOS_COLS, "ncos_levels", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: NcosLevelInput) -> Result<Created> {
        let reseller = actor.owning_reseller(i.reseller_id)?;
        check_reseller(c, reseller).await?;
        let cols = ncos_cols(c, reseller, i, None).await?;
        Ok(save_row(c, "ncos_levels", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &NcosLevel,
        i: NcosLevelInput,
    ) -> Result<()> {
        if i.reseller_id.is_some_and(|r| r != old.reseller_id) {
            return Err(Error::invalid(
                "reseller_id",
                "an NCOS level keeps its reseller",
            ));
        }
        let cols = ncos_cols(c, old.reseller_id, i, Some(id)).await?;
        save_row(c, "ncos_levels", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &NcosLevel) -> Result<()> {
        if named_by_preference(c, "ncos_id", id).await? {
            return Err(Error::Locked(format!(
                "NCOS level {id} is still assigned by preferences (ncos_id)"
            )));
        }
        sqlx::query("DELETE FROM ncos_patterns WHERE ncos_level_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        delete_row(c, "ncos_levels", id).await
    }
    fn id(r: &NcosLevel) -> i64 {
        r.id
    }
    fn reseller_of(r: &NcosLevel) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &NcosLevel) -> Vec<(&'static str, String)> {
        vec![(
            "ncospatterns",
            format!("/api/ncospatterns/?ncos_level_id={}", r.id),
        )]
    }
}

// ---- NCOS patterns ---------------------------------------------------------------------

pub struct NcosPatterns;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NcosPatternInput {
    pub ncos_level_id: i64,
    /// A number prefix: up to 32 of 0-9 + * #.
    pub pattern: String,
    #[serde(default)]
    pub description: Option<String>,
}

async fn ncos_pattern_cols(
    c: &mut Conn,
    actor: &Actor,
    i: NcosPatternInput,
    id: Option<i64>,
) -> Result<Vec<(&'static str, Arg)>> {
    let level: Option<NcosLevel> =
        get_as(c, st::NCOS_COLS, "ncos_levels", i.ncos_level_id, false).await?;
    let Some(level) = level else {
        return Err(Error::invalid(
            "ncos_level_id",
            format!(
                "Invalid 'ncos_level_id': NCOS level {} does not exist",
                i.ncos_level_id
            ),
        ));
    };
    scope_check(
        actor,
        "ncos_level_id",
        level.reseller_id,
        "NCOS level",
        level.id,
    )?;
    let p = prefix("pattern", &i.pattern, 32, false)?;
    let other: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM ncos_patterns WHERE ncos_level_id = $1 AND pattern = $2",
    )
    .bind(level.id)
    .bind(p.clone())
    .fetch_optional(&mut *c)
    .await?;
    if other.is_some_and(|o| Some(o) != id) {
        return Err(Error::invalid(
            "pattern",
            "the NCOS level already has this pattern",
        ));
    }
    Ok(vec![
        ("ncos_level_id", Arg::Int(level.id)),
        ("reseller_id", Arg::Int(level.reseller_id)),
        ("pattern", Arg::Text(p)),
        (
            "description",
            Arg::opt_text(short("description", i.description, 255)?),
        ),
    ])
}

#[async_trait]
impl Resource for NcosPatterns {
    const NAME: &'static str = "ncospatterns";
    const SUMMARY: &'static str = "NCOS patterns: the number prefixes of an NCOS level";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("ncos_level_id", "NCOS level"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("pattern", "pattern"),
        ("ncos_level_id", "ncos_level_id"),
    ];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["ncos_level_id", "pattern"];
    type Repr = NcosPattern;
    type Input = NcosPatternInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<NcosPattern>, Option<i64>)> {
        let w = q.where_scoped(actor, &[], &["ncos_level_id", "reseller_id"])?;
        list_as(c, st::NCOS_PATTERN_COLS, "ncos_patterns", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<NcosPattern>> {
        get_as(c, st::NCOS_PATTERN_COLS, "ncos_patterns", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: NcosPatternInput) -> Result<Created> {
        let cols = ncos_pattern_cols(c, actor, i, None).await?;
        Ok(save_row(c, "ncos_patterns", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &NcosPattern,
        i: NcosPatternInput,
    ) -> Result<()> {
        if i.ncos_level_id != old.ncos_level_id {
            return Err(Error::invalid(
                "ncos_level_id",
                "an NCOS pattern keeps its level",
            ));
        }
        let cols = ncos_pattern_cols(c, actor, i, Some(id)).await?;
        save_row(c, "ncos_patterns", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &NcosPattern) -> Result<()> {
        delete_row(c, "ncos_patterns", id).await
    }
    fn id(r: &NcosPattern) -> i64 {
        r.id
    }
    fn reseller_of(r: &NcosPattern) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &NcosPattern) -> Vec<(&'static str, String)> {
        vec![("ncoslevels", format!("/api/ncoslevels/{}", r.ncos_level_id))]
    }
}
