//! `/api/pbxtenants/`: a PBX tenant (SARK's tenant, "cluster"): a customer of type
//! pbxaccount with its PBX settings. Its extensions dial each other by short number; inbound
//! routes open and close by its timers.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::*;
use crate::app::App;
use crate::resources::{Created, ListQuery, Resource};
use crate::store::customers::{Customer, CUSTOMER_COLS};
use crate::store::pbx::{extension_length, TENANT_COLS, TENANT_VIEW};
use crate::store::{delete_row, exists, get_as, list_as, name_taken, save_row, Arg};

pub struct PbxTenants;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantInput {
    /// The pbxaccount customer (required on creation; a tenant keeps it).
    #[serde(default)]
    #[schema(value_type = i64)]
    pub customer_id: Value,
    /// SARK's pkey (alpha_dash), unique per reseller.
    #[serde(default, alias = "pkey")]
    #[schema(value_type = String)]
    pub name: Value,
    #[serde(default)]
    #[schema(value_type = String)]
    pub description: Value,
    /// The SIP domain of its extensions, by name; or give `domain_id`. Kept once it has
    /// extensions.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub domain: Value,
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub domain_id: Value,
    /// The extension pattern, `_XXX` (default): its places are the extension length (2–6).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub localdplan: Value,
    /// integer: the operator's extension.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub operator: Value,
    /// AUTO (default) | CLOSED.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub masteroclo: Value,
    /// integer, stored only.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub abstimeout: Value,
    /// integer, stored only.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub chanmax: Value,
    /// integer|nullable, stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub clusterclid: Value,
    /// integer|nullable, stored only.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub callgroup: Value,
    /// integer|nullable, stored only.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub pickupgroup: Value,
    /// string|nullable, stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub include: Value,
    /// integer|nullable, stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub localarea: Value,
}

fn localdplan(v: &Value) -> Result<String> {
    let Some(s) = string("localdplan", v, 16)? else {
        return Ok("_XXX".into());
    };
    let t = s.trim();
    let body = t.strip_prefix('_').unwrap_or(t);
    if !(2..=6).contains(&body.len())
        || !body
            .chars()
            .all(|c| matches!(c, 'X' | 'Z' | 'N' | '0'..='9'))
    {
        return Err(Error::invalid(
            "localdplan",
            "must be an extension pattern such as _XXX (2 to 6 places of X, Z, N or digits)",
        ));
    }
    Ok(t.to_string())
}

async fn customer_of(c: &mut Conn, actor: &Actor, v: &Value) -> Result<Customer> {
    let id = required("customer_id", integer("customer_id", v)?)?;
    let cust: Option<Customer> = get_as(c, CUSTOMER_COLS, "customers", id, false).await?;
    let Some(cust) = cust.filter(|x| actor.scope().is_none_or(|r| r == x.reseller_id)) else {
        return Err(Error::invalid(
            "customer_id",
            format!("Invalid 'customer_id': customer {id} does not exist"),
        ));
    };
    if cust.kind != "pbxaccount" {
        return Err(Error::invalid(
            "customer_id",
            format!("customer {id} is not of type pbxaccount"),
        ));
    }
    if cust.status == "terminated" {
        return Err(Error::invalid(
            "customer_id",
            format!("customer {id} is terminated"),
        ));
    }
    Ok(cust)
}

async fn domain_of(c: &mut Conn, reseller: i64, i: &TenantInput) -> Result<i64> {
    let by_id = integer("domain_id", &i.domain_id)?;
    let by_name = string("domain", &i.domain, 255)?;
    let (field, found): (&str, Option<(i64, i64)>) = match (by_id, &by_name) {
        (Some(id), _) => (
            "domain_id",
            sqlx::query_as("SELECT id, reseller_id FROM domains WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *c)
                .await?,
        ),
        (None, Some(name)) => (
            "domain",
            sqlx::query_as("SELECT id, reseller_id FROM domains WHERE domain = $1")
                .bind(name.clone())
                .fetch_optional(&mut *c)
                .await?,
        ),
        (None, None) => return Err(Error::invalid("domain", "is required (or domain_id)")),
    };
    match found {
        Some((id, r)) if r == reseller => {
            if let (Some(_), Some(name)) = (by_id, &by_name) {
                let same: Option<i64> =
                    sqlx::query_scalar("SELECT id FROM domains WHERE id = $1 AND domain = $2")
                        .bind(id)
                        .bind(name.clone())
                        .fetch_optional(&mut *c)
                        .await?;
                if same.is_none() {
                    return Err(Error::invalid("domain", "does not match domain_id"));
                }
            }
            Ok(id)
        }
        _ => Err(Error::invalid(
            field,
            format!("Invalid '{field}': no such domain of the customer's reseller"),
        )),
    }
}

async fn columns(
    c: &mut Conn,
    actor: &Actor,
    i: TenantInput,
    old: Option<&PbxTenant>,
) -> Result<Vec<(&'static str, Arg)>> {
    let (cust, reseller) = match old {
        Some(o) => {
            if integer("customer_id", &i.customer_id)?.is_some_and(|x| x != o.customer_id) {
                return Err(Error::invalid("customer_id", "a tenant keeps its customer"));
            }
            (o.customer_id, o.reseller_id)
        }
        None => {
            let cu = customer_of(c, actor, &i.customer_id).await?;
            if exists(c, "pbx_tenants", "customer_id = $1", cu.id).await? {
                return Err(Error::invalid(
                    "customer_id",
                    "this customer is a tenant already",
                ));
            }
            (cu.id, cu.reseller_id)
        }
    };
    // Every field's problem is gathered, so that one answer names them all (checks against
    // the tenant's extensions only with good values).
    let mut p = Problems::default();
    let name = p.value(tenant_name(c, reseller, &i.name, old).await)?;
    let description = p.value(
        string("description", &i.description, 255).and_then(|d| required("description", d)),
    )?;
    let domain_id = p.check(domain_of(c, reseller, &i).await)?;
    let dplan = p.check(localdplan(&i.localdplan))?;
    if let (Some(o), Some(domain_id), Some(dplan)) = (old, domain_id, &dplan) {
        let has_ext = exists(c, "pbx_extensions", "tenant_id = $1", o.id).await?;
        if has_ext && domain_id != o.domain_id {
            p.note("domain", "a tenant with extensions keeps its domain");
        }
        if has_ext && extension_length(dplan) != o.extension_length() {
            p.note(
                "localdplan",
                "a tenant with extensions keeps its extension length",
            );
        }
    }
    let operator = p.value(tenant_operator(c, &i.operator, old).await)?;
    let masteroclo = p
        .value(one_of("masteroclo", &i.masteroclo, &["AUTO", "CLOSED"]))?
        .unwrap_or("AUTO".into());
    let abstimeout = p.value(integer("abstimeout", &i.abstimeout))?;
    let chanmax = p.value(integer("chanmax", &i.chanmax))?;
    let clusterclid = p.value(digits("clusterclid", &i.clusterclid, 20))?;
    let callgroup = p.value(integer("callgroup", &i.callgroup))?;
    let pickupgroup = p.value(integer("pickupgroup", &i.pickupgroup))?;
    let include = p.value(string("include", &i.include, 255))?;
    let localarea = p.value(digits("localarea", &i.localarea, 10))?;
    p.finish()?;
    let (Some(domain_id), Some(dplan)) = (domain_id, dplan) else {
        return Err(Error::internal(anyhow::anyhow!(
            "a tenant check failed without saying why"
        )));
    };
    Ok(vec![
        ("reseller_id", Arg::Int(reseller)),
        ("customer_id", Arg::Int(cust)),
        ("domain_id", Arg::Int(domain_id)),
        ("name", Arg::Text(name)),
        ("description", Arg::Text(description)),
        ("localdplan", Arg::Text(dplan)),
        ("operator", Arg::opt_text(operator)),
        ("masteroclo", Arg::Text(masteroclo)),
        ("abstimeout", Arg::opt_int(abstimeout)),
        ("chanmax", Arg::opt_int(chanmax)),
        ("clusterclid", Arg::opt_text(clusterclid)),
        ("callgroup", Arg::opt_int(callgroup)),
        ("pickupgroup", Arg::opt_int(pickupgroup)),
        ("include", Arg::opt_text(include)),
        ("localarea", Arg::opt_text(localarea)),
    ])
}

/// A tenant's name: letters, digits and dashes, once per reseller.
async fn tenant_name(
    c: &mut Conn,
    reseller: i64,
    v: &Value,
    old: Option<&PbxTenant>,
) -> Result<String> {
    let name = required("name", alpha_dash("name", v, 32)?)?;
    if name_taken(
        c,
        "pbx_tenants",
        "reseller_id",
        reseller,
        &name,
        old.map(|o| o.id),
    )
    .await?
    {
        return Err(Error::invalid(
            "name",
            "a tenant with this name already exists",
        ));
    }
    Ok(name)
}

/// The operator: one of the tenant's extensions (so none for a new tenant).
async fn tenant_operator(
    c: &mut Conn,
    v: &Value,
    old: Option<&PbxTenant>,
) -> Result<Option<String>> {
    let operator = digits("operator", v, 8)?;
    if let (Some(op), Some(o)) = (&operator, old) {
        if st::number_taken(c, o.id, op, None).await?.is_none() {
            return Err(Error::invalid(
                "operator",
                format!("tenant {} has no extension {op}", o.id),
            ));
        }
    } else if operator.is_some() {
        return Err(Error::invalid(
            "operator",
            "a new tenant has no extensions yet: set the operator once it has",
        ));
    }
    Ok(operator)
}

#[async_trait]
impl Resource for PbxTenants {
    const NAME: &'static str = "pbxtenants";
    const SUMMARY: &'static str =
        "PBX tenants: a pbxaccount customer with its extension plan, operator and open/closed state";
    const NGCP: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("reseller_id", "owning reseller"),
        ("customer_id", "the customer"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[("id", "id"), ("name", "name")];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["customer_id", "name", "description"];
    type Repr = PbxTenant;
    type Input = TenantInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PbxTenant>, Option<i64>)> {
        let w = q.where_scoped(actor, &["name"], &["reseller_id", "customer_id"])?;
        list_as(c, TENANT_COLS, TENANT_VIEW, &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PbxTenant>> {
        get_from_view(c, "pbx_tenants", TENANT_COLS, TENANT_VIEW, id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: TenantInput) -> Result<Created> {
        let cols = columns(c, actor, i, None).await?;
        let cust = match &cols[1].1 {
            Arg::Int(x) => *x,
            _ => 0,
        };
        if exists(c, "pbx_tenants", "customer_id = $1", cust).await? {
            return Err(Error::invalid(
                "customer_id",
                "this customer is a tenant already",
            ));
        }
        Ok(save_row(c, "pbx_tenants", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &PbxTenant,
        i: TenantInput,
    ) -> Result<()> {
        let cols = columns(c, actor, i, Some(old)).await?;
        save_row(c, "pbx_tenants", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &PbxTenant) -> Result<()> {
        for (table, what) in [
            ("pbx_extensions", "extensions"),
            ("pbx_ringgroups", "ring groups"),
            ("pbx_inboundroutes", "inbound routes"),
            ("pbx_daytimers", "day timers"),
            ("pbx_holidaytimers", "holiday timers"),
        ] {
            if exists(c, table, "tenant_id = $1", id).await? {
                return Err(Error::Locked(format!("tenant {id} still has {what}")));
            }
        }
        delete_row(c, "pbx_tenants", id).await
    }
    fn id(r: &PbxTenant) -> i64 {
        r.id
    }
    fn reseller_of(r: &PbxTenant) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &PbxTenant) -> Vec<(&'static str, String)> {
        vec![
            ("customers", format!("/api/customers/{}", r.customer_id)),
            (
                "pbxextensions",
                format!("/api/pbxextensions/?tenant_id={}", r.id),
            ),
        ]
    }
}
