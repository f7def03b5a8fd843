//! `/api/pbxringgroups/`: SARK's ring groups, dialled by their own number inside the tenant:
//! Ring (every member at once, the first to answer takes the call), Hunt (one member after
//! another, `ringdelay` seconds each), Alias (a second number for one extension) and Page
//! (every member at once, with the auto-answer indication phones act on). Nobody answering
//! sends the call to `outcome`. NGCP's PBX groups map onto the same object: hunt policy
//! serial = Hunt, parallel = Ring; hunt timeout = `ringdelay`.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::*;
use crate::app::App;
use crate::resources::{Created, ListQuery, Resource};
use crate::store::pbx::{PbxRingGroup, RINGGROUP_COLS};
use crate::store::{delete_row, get_as, list_as, save_row, Arg};

pub struct PbxRingGroups;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RingGroupInput {
    #[serde(default, alias = "cluster")]
    #[schema(value_type = i64)]
    pub tenant_id: Value,
    /// The number it is dialled by inside the tenant (2 to 8 digits, not an extension's).
    #[serde(default, alias = "pkey")]
    #[schema(value_type = String)]
    pub number: Value,
    /// Ring (default) | Hunt | Alias | Page.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub grouptype: Value,
    /// The members: extension numbers (and, for Ring and Hunt, external numbers), separated
    /// by spaces, in hunting order.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub out: Value,
    /// integer: seconds (1–600); null: the RINGDELAY global.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub ringdelay: Value,
    /// Where the call goes when nobody answers: an extension or ring group number,
    /// `operator`, or an external number.
    #[serde(default)]
    #[schema(value_type = String)]
    pub outcome: Value,
    /// YES | NO. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub obeydnd: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub longdesc: Value,
    /// default | None | OTR | OTRR | Inbound.Outbound | Both. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub devicerec: Value,
    /// alpha|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub dialparamshunt: Value,
    /// alpha|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub dialparamsring: Value,
    /// integer|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub divert: Value,
    /// usergreeting and four digits|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub greeting: Value,
    /// integer. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub pagegroup: Value,
    /// string. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub speedalert: Value,
}

fn members_text(v: &Value) -> Result<String> {
    let Some(s) = string("out", v, 1024)? else {
        return Ok(String::new());
    };
    if s.chars().count() < 2
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@-_/ \t".contains(c))
    {
        return Err(Error::invalid(
            "out",
            "must be 2 to 1024 of letters, digits, @ - _ / and spaces",
        ));
    }
    Ok(s)
}

/// The group's own number: 2 to 8 digits, not taken by another object of the tenant.
async fn group_number(
    c: &mut Conn,
    tenant: &PbxTenant,
    number: &Value,
    old: Option<&PbxRingGroup>,
) -> Result<String> {
    let number = required("number", digits("number", number, 8)?)?;
    if number.len() < 2 {
        return Err(Error::invalid("number", "must have 2 to 8 digits"));
    }
    if let Some(what) =
        st::number_taken(c, tenant.id, &number, old.map(|o| ("pbx_ringgroups", o.id))).await?
    {
        return Err(Error::invalid(
            "number",
            format!("{number} is {what} of this tenant already"),
        ));
    }
    Ok(number)
}

/// The members in order: extensions, or external numbers where the kind allows them.
async fn group_members(
    c: &mut Conn,
    tenant: &PbxTenant,
    out: &Value,
    kind: &str,
) -> Result<Vec<String>> {
    let text = members_text(out)?;
    let mut members = Vec::new();
    for (n, m) in text.split_whitespace().enumerate() {
        let field = format!("out[{n}]");
        let d = destination(c, tenant, &field, m).await?;
        let is_ext = st::extension_id(c, tenant.id, &d).await?;
        if is_ext.is_none() {
            let group = st::number_taken(c, tenant.id, &d, None).await?.is_some();
            if group || d == "operator" {
                return Err(Error::invalid(
                    "out",
                    format!("member {m}: a member is an extension or an external number"),
                ));
            }
            if kind == "Alias" || kind == "Page" {
                return Err(Error::invalid(
                    "out",
                    format!("member {m}: {kind} groups have extensions only"),
                ));
            }
        }
        if members.contains(&d) {
            return Err(Error::invalid("out", format!("member {m} is listed twice")));
        }
        members.push(d);
    }
    if members.is_empty() {
        return Err(Error::invalid("out", "is required: at least one member"));
    }
    if kind == "Alias" && members.len() != 1 {
        return Err(Error::invalid(
            "out",
            "an Alias group has exactly one member",
        ));
    }
    if members.len() > 32 {
        return Err(Error::invalid("out", "at most 32 members"));
    }
    Ok(members)
}

fn greeting(v: &Value) -> Result<Option<String>> {
    let greeting = string("greeting", v, 32)?;
    if let Some(g) = &greeting {
        let ok = g
            .strip_prefix("usergreeting")
            .is_some_and(|d| d.len() == 4 && d.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            return Err(Error::invalid(
                "greeting",
                "must be usergreeting followed by four digits",
            ));
        }
    }
    Ok(greeting)
}

async fn columns(
    c: &mut Conn,
    tenant: &PbxTenant,
    i: RingGroupInput,
    old: Option<&PbxRingGroup>,
) -> Result<Vec<(&'static str, Arg)>> {
    // Every field's problem is gathered, so that one answer names them all.
    let mut p = Problems::default();
    let number = p.value(group_number(c, tenant, &i.number, old).await)?;
    let kind = p
        .value(one_of(
            "grouptype",
            &i.grouptype,
            &["Ring", "Hunt", "Alias", "Page"],
        ))?
        .unwrap_or("Ring".into());
    let members = p.value(group_members(c, tenant, &i.out, &kind).await)?;
    let outcome =
        match p.check(string("outcome", &i.outcome, 64).and_then(|v| required("outcome", v)))? {
            Some(text) => p.value(destination(c, tenant, "outcome", &text).await)?,
            None => String::new(),
        };
    if !outcome.is_empty() && outcome == number {
        p.note("outcome", "must not be the group itself");
    }
    let ringdelay = p.value(integer("ringdelay", &i.ringdelay))?;
    if ringdelay.is_some_and(|d| !(1..=600).contains(&d)) {
        p.note("ringdelay", "must be 1 to 600 seconds");
    }
    let greeting = p.value(greeting(&i.greeting))?;
    let obeydnd = p.value(one_of("obeydnd", &i.obeydnd, &["YES", "NO"]))?;
    let longdesc = p.value(string("longdesc", &i.longdesc, 255))?;
    let devicerec = p.value(one_of(
        "devicerec",
        &i.devicerec,
        &["default", "None", "OTR", "OTRR", "Inbound.Outbound", "Both"],
    ))?;
    let dialparamshunt = p.value(alpha("dialparamshunt", &i.dialparamshunt, 32))?;
    let dialparamsring = p.value(alpha("dialparamsring", &i.dialparamsring, 32))?;
    let divert = p.value(integer("divert", &i.divert))?;
    let pagegroup = p.value(integer("pagegroup", &i.pagegroup))?;
    let speedalert = p.value(string("speedalert", &i.speedalert, 255))?;
    p.finish()?;
    Ok(vec![
        ("tenant_id", Arg::Int(tenant.id)),
        ("reseller_id", Arg::Int(tenant.reseller_id)),
        ("number", Arg::Text(number)),
        ("grouptype", Arg::Text(kind)),
        ("members", Arg::Text(members.join(" "))),
        ("ringdelay", Arg::opt_int(ringdelay)),
        ("outcome", Arg::Text(outcome)),
        ("obeydnd", Arg::opt_text(obeydnd)),
        ("longdesc", Arg::opt_text(longdesc)),
        ("devicerec", Arg::opt_text(devicerec)),
        ("dialparamshunt", Arg::opt_text(dialparamshunt)),
        ("dialparamsring", Arg::opt_text(dialparamsring)),
        ("divert", Arg::opt_int(divert)),
        ("greeting", Arg::opt_text(greeting)),
        ("pagegroup", Arg::opt_int(pagegroup)),
        ("speedalert", Arg::opt_text(speedalert)),
    ])
}

#[async_trait]
impl Resource for PbxRingGroups {
    const NAME: &'static str = "pbxringgroups";
    const SUMMARY: &'static str =
        "PBX ring groups: Ring, Hunt, Alias and Page groups dialled by their number in a tenant";
    const NGCP: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("tenant_id", "the tenant"),
        ("number", "the number, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[("id", "id"), ("number", "number")];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["tenant_id", "number", "outcome"];
    type Repr = PbxRingGroup;
    type Input = RingGroupInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PbxRingGroup>, Option<i64>)> {
        let w = q.where_scoped(actor, &["number"], &["tenant_id", "reseller_id"])?;
        list_as(c, RINGGROUP_COLS, "pbx_ringgroups", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PbxRingGroup>> {
        get_as(c, RINGGROUP_COLS, "pbx_ringgroups", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: RingGroupInput) -> Result<Created> {
        let tenant = tenant_for(c, actor, tenant_id(&i.tenant_id)?).await?;
        let cols = columns(c, &tenant, i, None).await?;
        Ok(save_row(c, "pbx_ringgroups", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &PbxRingGroup,
        i: RingGroupInput,
    ) -> Result<()> {
        if tenant_id(&i.tenant_id)? != old.tenant_id {
            return Err(Error::invalid("tenant_id", "a ring group keeps its tenant"));
        }
        let tenant = tenant_for(c, actor, old.tenant_id).await?;
        let cols = columns(c, &tenant, i, Some(old)).await?;
        save_row(c, "pbx_ringgroups", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, old: &PbxRingGroup) -> Result<()> {
        if let Some(user) = number_in_use(c, old.tenant_id, &old.number).await? {
            return Err(Error::Locked(format!(
                "ring group {} is still named by {user}",
                old.number
            )));
        }
        delete_row(c, "pbx_ringgroups", id).await
    }
    fn id(r: &PbxRingGroup) -> i64 {
        r.id
    }
    fn reseller_of(r: &PbxRingGroup) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &PbxRingGroup) -> Vec<(&'static str, String)> {
        vec![("pbxtenants", format!("/api/pbxtenants/{}", r.tenant_id))]
    }
}
