//! `/api/pbxinboundroutes/`: SARK's inbound routes. A call from a carrier to a DID (carrier
//! `DiD`), or from a caller number (carrier `CLID`), goes to the tenant's open destination
//! while the tenant is open and to the closed one otherwise (see timers.rs); a holiday sends
//! it to the holiday's route. `GET /api/pbxdestinations/?tenant_id=` lists what may be named.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::*;
use crate::app::App;
use crate::resources::{Created, ListQuery, Resource};
use crate::store::pbx::{PbxInboundRoute, INBOUND_COLS};
use crate::store::{delete_row, exists, get_as, list_as, save_row, Arg};

pub struct PbxInboundRoutes;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InboundRouteInput {
    #[serde(default, alias = "cluster")]
    #[schema(value_type = i64)]
    pub tenant_id: Value,
    /// The DID (carrier DiD) or the caller's number (carrier CLID): digits, a leading +
    /// allowed (stored without it).
    #[serde(default, alias = "pkey")]
    #[schema(value_type = String)]
    pub number: Value,
    /// DiD | CLID.
    #[serde(default)]
    #[schema(value_type = String)]
    pub carrier: Value,
    /// The peering group (trunk) the number comes in on: informational, set by admins only
    /// (the route applies whichever carrier brings the call).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub trunk_id: Value,
    /// Where calls go while the tenant is open: a destination (/api/pbxdestinations/).
    #[serde(default)]
    #[schema(value_type = String)]
    pub openroute: Value,
    /// Where calls go while it is closed; default: the open route.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub closeroute: Value,
    /// YES (default) | NO: NO leaves the number to the subscribers' own numbers.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub active: Value,
    /// Sent as the call's Alert-Info header.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub alertinfo: Value,
    /// YES | NO (default). Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub swoclip: Value,
    /// alpha_num|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub tag: Value,
    /// integer|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub inprefix: Value,
    /// alpha_num.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Value,
    /// DISA | CALLBACK|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub disa: Value,
    /// alpha_num|nullable. Stored only, never shown.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub disapass: Value,
    /// ON | OFF. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub moh: Value,
}

async fn columns(
    c: &mut Conn,
    actor: &Actor,
    i: InboundRouteInput,
    old: Option<&PbxInboundRoute>,
) -> Result<Vec<(&'static str, Arg)>> {
    let tenant = tenant_for(c, actor, tenant_id(&i.tenant_id)?).await?;
    if old.is_some_and(|o| o.tenant_id != tenant.id) {
        return Err(Error::invalid(
            "tenant_id",
            "an inbound route keeps its tenant",
        ));
    }
    // Every field's problem is gathered, so that one answer names them all (the number is
    // checked against the carrier kind only when that is good).
    let mut p = Problems::default();
    let carrier =
        one_of("carrier", &i.carrier, &["DiD", "CLID"]).and_then(|v| required("carrier", v));
    let kind = carrier.as_deref().ok();
    let number = p.value(route_number(c, &tenant, &i.number, kind, old).await)?;
    let carrier = p.check(carrier)?;
    let trunk = p.value(route_trunk(c, actor, &i.trunk_id).await)?;
    let open = match p
        .check(string("openroute", &i.openroute, 64).and_then(|v| required("openroute", v)))?
    {
        Some(text) => p.value(destination(c, &tenant, "openroute", &text).await)?,
        None => String::new(),
    };
    let closed = match p.value(string("closeroute", &i.closeroute, 64))? {
        Some(s) if !s.trim().is_empty() => {
            p.value(destination(c, &tenant, "closeroute", &s).await)?
        }
        _ => open.clone(),
    };
    let alertinfo = p.value(string("alertinfo", &i.alertinfo, 255))?;
    let active = p.value(one_of("active", &i.active, &["YES", "NO"]))?;
    let swoclip = p.value(one_of("swoclip", &i.swoclip, &["YES", "NO"]))?;
    let tag = p.value(alpha_num("tag", &i.tag, 32))?;
    let inprefix = p.value(digits("inprefix", &i.inprefix, 10))?;
    let description = p.value(alpha_num("description", &i.description, 255))?;
    let disa = p.value(one_of("disa", &i.disa, &["DISA", "CALLBACK"]))?;
    // Never shown, so a GET → PUT round trip omits it: absent keeps it.
    let disapass = match (&i.disapass, old) {
        (Value::Null, Some(o)) => o.disapass.clone(),
        (v, _) => p.value(alpha_num("disapass", v, 32))?,
    };
    let moh = p.value(one_of("moh", &i.moh, &["ON", "OFF"]))?;
    p.finish()?;
    Ok(vec![
        ("tenant_id", Arg::Int(tenant.id)),
        ("reseller_id", Arg::Int(tenant.reseller_id)),
        ("number", Arg::Text(number)),
        ("carrier", Arg::Text(carrier.unwrap_or_default())),
        ("trunk_id", Arg::opt_int(trunk)),
        ("openroute", Arg::Text(open)),
        ("closeroute", Arg::Text(closed)),
        ("active", Arg::Text(active.unwrap_or("YES".into()))),
        (
            "alertinfo",
            Arg::opt_text(alertinfo.filter(|a| !a.is_empty())),
        ),
        ("swoclip", Arg::Text(swoclip.unwrap_or("NO".into()))),
        ("tag", Arg::opt_text(tag)),
        ("inprefix", Arg::opt_text(inprefix)),
        ("description", Arg::opt_text(description)),
        ("disa", Arg::opt_text(disa)),
        ("disapass", Arg::opt_text(disapass)),
        ("moh", Arg::opt_text(moh)),
    ])
}

/// The number a route is for: digits; a DiD one of the tenant's customer's numbers (no
/// reseller routes another's calls), a CLID any caller's; routed once.
async fn route_number(
    c: &mut Conn,
    tenant: &PbxTenant,
    given: &Value,
    carrier: Option<&str>,
    old: Option<&PbxInboundRoute>,
) -> Result<String> {
    let raw = match given {
        Value::Number(n) => Value::String(n.to_string()),
        v => v.clone(),
    };
    let number = required("number", string("number", &raw, 21)?)?;
    let number = number.trim().trim_start_matches('+').to_string();
    if number.is_empty() || number.len() > 20 || !number.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::invalid(
            "number",
            "must be a number: digits, a leading + allowed",
        ));
    }
    let Some(carrier) = carrier else {
        return Ok(number);
    };
    if carrier == "DiD" && !st::customer_has_number(c, tenant.customer_id, &number).await? {
        return Err(Error::invalid(
            "number",
            format!("{number} is not a number of the tenant's customer (give it to one of its subscribers first)"),
        ));
    }
    let scope = if carrier == "DiD" {
        None
    } else {
        Some(tenant.id)
    };
    let taken = st::inbound_route_of(c, carrier, &number, scope).await?;
    if taken.is_some_and(|t| Some(t) != old.map(|o| o.id)) {
        return Err(Error::invalid(
            "number",
            format!("{number} has an inbound route already"),
        ));
    }
    Ok(number)
}

/// The carrier (peering group) a route takes calls from: the operator's, so admins only.
async fn route_trunk(c: &mut Conn, actor: &Actor, given: &Value) -> Result<Option<i64>> {
    let trunk = integer("trunk_id", given)?;
    if trunk.is_some() && !actor.is_admin() {
        return Err(Error::invalid(
            "trunk_id",
            "only admins name trunks (peering groups are the operator's)",
        ));
    }
    if let Some(t) = trunk {
        if !exists(c, "peering_groups", "id = $1", t).await? {
            return Err(Error::invalid(
                "trunk_id",
                format!("Invalid 'trunk_id': peering group {t} does not exist"),
            ));
        }
    }
    Ok(trunk)
}

#[async_trait]
impl Resource for PbxInboundRoutes {
    const NAME: &'static str = "pbxinboundroutes";
    const SUMMARY: &'static str =
        "PBX inbound routes: a DID or caller number to a tenant's open and closed destinations";
    const NGCP: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("tenant_id", "the tenant"),
        ("number", "the number, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[("id", "id"), ("number", "number")];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["tenant_id", "number", "carrier", "openroute"];
    type Repr = PbxInboundRoute;
    type Input = InboundRouteInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PbxInboundRoute>, Option<i64>)> {
        let w = q.where_scoped(actor, &["number"], &["tenant_id", "reseller_id"])?;
        list_as(c, INBOUND_COLS, "pbx_inboundroutes", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PbxInboundRoute>> {
        get_as(c, INBOUND_COLS, "pbx_inboundroutes", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: InboundRouteInput) -> Result<Created> {
        let cols = columns(c, actor, i, None).await?;
        Ok(save_row(c, "pbx_inboundroutes", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &PbxInboundRoute,
        i: InboundRouteInput,
    ) -> Result<()> {
        let cols = columns(c, actor, i, Some(old)).await?;
        save_row(c, "pbx_inboundroutes", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &PbxInboundRoute) -> Result<()> {
        delete_row(c, "pbx_inboundroutes", id).await
    }
    fn id(r: &PbxInboundRoute) -> i64 {
        r.id
    }
    fn reseller_of(r: &PbxInboundRoute) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &PbxInboundRoute) -> Vec<(&'static str, String)> {
        vec![("pbxtenants", format!("/api/pbxtenants/{}", r.tenant_id))]
    }
}
