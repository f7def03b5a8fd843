//! Resellers, domains and billing profiles.

use async_trait::async_trait;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{self, Actor, ResellerStatus};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::resellers::*;
use crate::store::{delete_row, exists, get_as, list_as, Arg, Conn, Where};

pub struct Resellers;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResellerInput {
    pub name: String,
    /// active, locked or terminated (required on creation; a PUT without it keeps active).
    #[serde(default)]
    pub status: Option<String>,
    /// A system contact.
    #[serde(default)]
    pub contact_id: Option<i64>,
    /// NGCP's reseller contract (`/api/contracts/`, type reseller); one reseller per contract.
    #[serde(default)]
    pub contract_id: Option<i64>,
}

/// A contract a reseller may hold: of type reseller, live, not another reseller's.
async fn check_contract(c: &mut Conn, contract: Option<i64>, reseller: Option<i64>) -> Result<()> {
    let Some(k) = contract else { return Ok(()) };
    if !exists(
        c,
        "contracts",
        "id = $1 AND type = 'reseller' AND status <> 'terminated'",
        k,
    )
    .await?
    {
        return Err(Error::invalid(
            "contract_id",
            format!("Invalid 'contract_id': contract {k} is not a reseller contract"),
        ));
    }
    let holder: Option<i64> = sqlx::query_scalar("SELECT id FROM resellers WHERE contract_id = $1")
        .bind(k)
        .fetch_optional(&mut *c)
        .await?;
    if holder.is_some_and(|h| Some(h) != reseller) {
        return Err(Error::invalid(
            "contract_id",
            "reseller with this contract already exists",
        ));
    }
    Ok(())
}

async fn check_system_contact(c: &mut Conn, id: Option<i64>) -> Result<()> {
    if let Some(id) = id {
        if !exists(
            c,
            "contacts",
            "id = $1 AND reseller_id IS NULL AND status <> 'terminated'",
            id,
        )
        .await?
        {
            return Err(Error::invalid(
                "contact_id",
                format!("system contact {id} does not exist"),
            ));
        }
    }
    Ok(())
}

/// An admin naming a reseller: it must exist.
pub async fn check_reseller(c: &mut Conn, id: i64) -> Result<()> {
    if !exists(c, "resellers", "id = $1", id).await? {
        return Err(Error::invalid(
            "reseller_id",
            format!("Invalid 'reseller_id': reseller {id} does not exist"),
        ));
    }
    if exists(c, "resellers", "id = $1 AND status = 'terminated'", id).await? {
        return Err(Error::invalid(
            "reseller_id",
            format!("Invalid 'reseller_id': reseller {id} is terminated"),
        ));
    }
    Ok(())
}

#[async_trait]
impl Resource for Resellers {
    const NAME: &'static str = "resellers";
    /// As NGCP: a reseller is terminated (`status`), never deleted.
    const CAN_DELETE: bool = false;
    const SUMMARY: &'static str = "Resellers: the tenants of the platform; each owns its domains, contacts, customers and admins";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "reseller name, * wildcard"),
        ("status", "active, locked or terminated"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("name", "name"),
        ("status", "status"),
        ("contract_id", "contract_id"),
        ("create_timestamp", "create_timestamp"),
        ("modify_timestamp", "modify_timestamp"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["name", "status"];
    type Repr = Reseller;
    type Input = ResellerInput;

    const ADMIN_WRITES: bool = true;
    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Reseller>, Option<i64>)> {
        let mut w = Where::new();
        if let Some(r) = actor.scope() {
            w.push("id = ?", Arg::Int(r));
        }
        if let Some(v) = q.get("name") {
            w.text_filter("name", v);
        }
        if let Some(v) = q.get("status") {
            w.push("status = ?", Arg::Text(v.into()));
        }
        list_as(c, RESELLER_COLS, "resellers", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Reseller>> {
        get_as(c, RESELLER_COLS, "resellers", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, _: &Actor, i: ResellerInput) -> Result<Created> {
        let name = model::non_empty("name", i.name, 127)?;
        // NGCP's clients state the status; one left out is a mistake NGCP reports.
        let Some(status) = i.status.as_deref() else {
            return Err(Error::invalid(
                "status",
                "is required: active, locked or terminated",
            ));
        };
        let status = ResellerStatus::parse("status", status)?;
        check_system_contact(c, i.contact_id).await?;
        // As in NGCP, a reseller is created on its contract (`/api/contracts/`, type
        // reseller), which carries its billing. (Reseller 1, made at installation, has none.)
        if i.contract_id.is_none() {
            return Err(Error::invalid(
                "contract_id",
                "is required: a reseller contract from /api/contracts/",
            ));
        }
        check_contract(c, i.contract_id, None).await?;
        Ok(
            insert_reseller(c, &name, status.as_str(), i.contact_id, i.contract_id)
                .await?
                .into(),
        )
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &Reseller,
        i: ResellerInput,
    ) -> Result<()> {
        if old.contract_id.is_some() && i.contract_id.is_none() {
            return Err(Error::invalid(
                "contract_id",
                "is required: a reseller keeps a contract once it has one",
            ));
        }
        let name = model::non_empty("name", i.name, 127)?;
        let status = ResellerStatus::parse("status", i.status.as_deref().unwrap_or("active"))?;
        check_system_contact(c, i.contact_id).await?;
        check_contract(c, i.contract_id, Some(id)).await?;
        update_reseller(c, id, &name, status.as_str(), i.contact_id, i.contract_id).await
    }
    fn id(r: &Reseller) -> i64 {
        r.id
    }
    fn reseller_of(r: &Reseller) -> Option<i64> {
        Some(r.id)
    }
    fn links(r: &Reseller) -> Vec<(&'static str, String)> {
        let mut l = Vec::new();
        if let Some(c) = r.contact_id {
            l.push(("systemcontacts", format!("/api/systemcontacts/{c}")));
        }
        if let Some(k) = r.contract_id {
            l.push(("contracts", format!("/api/contracts/{k}")));
        }
        l
    }
}

pub struct Domains;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainInput {
    /// The SIP domain (DNS name or IPv4 address).
    pub domain: String,
    /// Required for admins; a reseller's own is used otherwise.
    #[serde(default)]
    pub reseller_id: Option<i64>,
}

#[async_trait]
impl Resource for Domains {
    const NAME: &'static str = "domains";
    const SUMMARY: &'static str = "SIP domains; subscribers live in one";
    const CAN_UPDATE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("domain", "domain name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("domain", "domain"),
        ("reseller_id", "reseller_id"),
        ("create_timestamp", "create_timestamp"),
        ("modify_timestamp", "modify_timestamp"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    type Repr = Domain;
    type Input = DomainInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Domain>, Option<i64>)> {
        let mut w = q.where_scoped(actor, &[], &["reseller_id"])?;
        if let Some(v) = q.get("domain") {
            w.text_filter("domain", &v.to_ascii_lowercase());
        }
        list_as(c, DOMAIN_COLS, "domains", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Domain>> {
        get_as(c, DOMAIN_COLS, "domains", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: DomainInput) -> Result<Created> {
        let domain = model::domain_name("domain", &i.domain)?;
        let reseller = actor.owning_reseller(i.reseller_id)?;
        check_reseller(c, reseller).await?;
        Ok(insert_domain(c, &domain, reseller).await?.into())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &Domain) -> Result<()> {
        if exists(c, "subscribers", "domain_id = $1", id).await? {
            return Err(Error::Locked(format!(
                "domain {id} still has subscribers (terminated ones are kept for billing)"
            )));
        }
        if exists(c, "sipserver_domains", "domain_id = $1", id).await? {
            return Err(Error::Locked(format!(
                "domain {id} is listed in a sipserver's domains"
            )));
        }
        delete_row(c, "domains", id).await
    }
    fn id(r: &Domain) -> i64 {
        r.id
    }
    fn reseller_of(r: &Domain) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &Domain) -> Vec<(&'static str, String)> {
        vec![("resellers", format!("/api/resellers/{}", r.reseller_id))]
    }
}

pub struct BillingProfiles;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BillingProfileInput {
    /// Unique short name that clients search by.
    pub handle: String,
    pub name: String,
    #[serde(default)]
    pub reseller_id: Option<i64>,
    #[serde(default)]
    pub prepaid: Option<bool>,
    /// active (default), or terminated: gone from the API (refused while customers use it).
    #[serde(default)]
    pub status: Option<String>,
}

#[async_trait]
impl Resource for BillingProfiles {
    const NAME: &'static str = "billingprofiles";
    /// As NGCP: a profile is terminated (`status`), never deleted.
    const CAN_DELETE: bool = false;
    const SUMMARY: &'static str = "Billing profiles (no rating engine: a customer must name one)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("handle", "handle, * wildcard"),
        ("name", "name, * wildcard"),
        ("reseller_id", "owning reseller"),
        (
            "status",
            "active or terminated (terminated ones are listed only when asked for)",
        ),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("handle", "handle"),
        ("name", "name"),
        ("reseller_id", "reseller_id"),
        ("prepaid", "prepaid"),
        ("status", "status"),
        ("create_timestamp", "create_timestamp"),
        ("modify_timestamp", "modify_timestamp"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["handle", "name", "reseller_id"];
    type Repr = BillingProfile;
    type Input = BillingProfileInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<BillingProfile>, Option<i64>)> {
        let mut w = q.where_scoped(actor, &["handle", "name"], &["reseller_id"])?;
        // A terminated profile is gone from the API (as a GET says) unless asked for.
        match q.get("status") {
            Some(v) => w.push("status = ?", Arg::Text(v.into())),
            None => w.raw("status <> 'terminated'"),
        };
        list_as(c, BILLING_COLS, "billing_profiles", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<BillingProfile>> {
        get_as(c, BILLING_COLS, "billing_profiles", id, lock).await
    }
    async fn create(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        i: BillingProfileInput,
    ) -> Result<Created> {
        let reseller = actor.owning_reseller(i.reseller_id)?;
        check_reseller(c, reseller)
            .await
            .map_err(|_| Error::invalid("reseller_id", "Invalid reseller"))?;
        let (handle, name) = (
            model::non_empty("handle", i.handle, 63)?,
            model::non_empty("name", i.name, 127)?,
        );
        if i.status.as_deref().unwrap_or("active") != "active" {
            return Err(Error::invalid("status", "a new profile is active"));
        }
        let f = BillingFields {
            handle: &handle,
            name: &name,
            reseller_id: reseller,
            prepaid: i.prepaid.unwrap_or(false),
            status: "active",
        };
        Ok(upsert_billing_profile(c, None, &f).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &BillingProfile,
        i: BillingProfileInput,
    ) -> Result<()> {
        let reseller = match (actor.scope(), i.reseller_id) {
            (None, Some(r)) => r,
            _ => old.reseller_id,
        };
        if reseller != old.reseller_id
            && exists(c, "customers", "billing_profile_id = $1", id).await?
        {
            return Err(Error::invalid(
                "reseller_id",
                "cannot change while customers use this profile",
            ));
        }
        check_reseller(c, reseller).await?;
        let (handle, name) = (
            model::non_empty("handle", i.handle, 63)?,
            model::non_empty("name", i.name, 127)?,
        );
        let status = match i.status.as_deref().unwrap_or("active") {
            s @ ("active" | "terminated") => s,
            _ => return Err(Error::invalid("status", "must be active or terminated")),
        };
        if status == "terminated"
            && exists(
                c,
                "customers",
                "billing_profile_id = $1 AND status <> 'terminated'",
                id,
            )
            .await?
        {
            return Err(Error::Locked(format!(
                "billing profile {id} is still used by customers"
            )));
        }
        let f = BillingFields {
            handle: &handle,
            name: &name,
            reseller_id: reseller,
            prepaid: i.prepaid.unwrap_or(false),
            status,
        };
        upsert_billing_profile(c, Some(id), &f).await?;
        Ok(())
    }
    fn gone(r: &BillingProfile) -> bool {
        r.status == "terminated"
    }
    fn id(r: &BillingProfile) -> i64 {
        r.id
    }
    fn reseller_of(r: &BillingProfile) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &BillingProfile) -> Vec<(&'static str, String)> {
        vec![("resellers", format!("/api/resellers/{}", r.reseller_id))]
    }
}
