//! Contracts (`/api/contracts/`): NGCP's system-level agreements — a reseller's (which a
//! reseller names as its `contract_id`) or a peering's — with a system contact and a billing
//! profile. Admins only. As in NGCP a contract is never deleted: terminated (`status`), it is
//! gone from the API and frees its system contact.

use async_trait::async_trait;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::{self, Actor};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::contracts::{save, Contract, ContractFields, CONTRACT_COLS};
use crate::store::{exists, get_as, list_as, Conn};

pub struct Contracts;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContractInput {
    /// A system contact.
    pub contact_id: i64,
    /// reseller or sippeering.
    #[serde(rename = "type")]
    pub kind: String,
    /// active (default), pending, locked or terminated.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub billing_profile_id: Option<i64>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// NGCP's; a contract of a reseller or a peering has no subscribers. Ignored.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub max_subscribers: Option<serde_json::Value>,
}

const KINDS: &[&str] = &["reseller", "sippeering"];
const STATUSES: &[&str] = &["active", "pending", "locked", "terminated"];

async fn fields(
    c: &mut Conn,
    i: ContractInput,
    old: Option<&Contract>,
) -> Result<ContractFields<'static>> {
    if !exists(
        c,
        "contacts",
        "id = $1 AND reseller_id IS NULL AND status <> 'terminated'",
        i.contact_id,
    )
    .await?
    {
        return Err(Error::invalid(
            "contact_id",
            format!(
                "Invalid 'contact_id': system contact {} does not exist",
                i.contact_id
            ),
        ));
    }
    let kind = KINDS
        .iter()
        .find(|k| **k == i.kind)
        .copied()
        .ok_or_else(|| Error::invalid("type", "must be reseller or sippeering"))?;
    if old.is_some_and(|o| o.kind != kind) {
        return Err(Error::invalid("type", "a contract keeps its type"));
    }
    let status = STATUSES
        .iter()
        .find(|s| **s == i.status.as_deref().unwrap_or("active"))
        .copied()
        .ok_or_else(|| {
            Error::invalid("status", format!("must be one of {}", STATUSES.join(", ")))
        })?;
    if let Some(b) = i.billing_profile_id {
        if !exists(
            c,
            "billing_profiles",
            "id = $1 AND status <> 'terminated'",
            b,
        )
        .await?
        {
            return Err(Error::invalid(
                "billing_profile_id",
                format!("Invalid 'billing_profile_id': billing profile {b} does not exist"),
            ));
        }
    }
    Ok(ContractFields {
        contact_id: i.contact_id,
        billing_profile_id: i.billing_profile_id,
        kind,
        status,
        external_id: model::text("external_id", i.external_id, 255)?,
    })
}

#[async_trait]
impl Resource for Contracts {
    const NAME: &'static str = "contracts";
    const SUMMARY: &'static str =
        "Contracts (NGCP's): a reseller's or a peering's, with a system contact; admins only";
    const CAN_DELETE: bool = false;
    const ADMIN_ONLY: bool = true;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("external_id", "external id, * wildcard"),
        ("status", "active, pending, locked or terminated"),
        ("type", "reseller or sippeering"),
        ("contact_id", "system contact"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("external_id", "external_id"),
        ("status", "status"),
        ("type", "type"),
        ("contact_id", "contact_id"),
        ("create_timestamp", "create_timestamp"),
    ];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "create_timestamp",
        "modify_timestamp",
        "terminate_timestamp",
    ];
    const REQUIRED: &'static [&'static str] = &["contact_id", "type", "status"];
    type Repr = Contract;
    type Input = ContractInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Contract>, Option<i64>)> {
        // Contracts have no reseller: the scope does not apply (admins only anyway).
        let mut w = q.where_scoped(actor, &["external_id", "status", "type"], &["contact_id"])?;
        if q.get("status").is_none() {
            w.raw("status <> 'terminated'");
        }
        list_as(c, CONTRACT_COLS, "contracts", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Contract>> {
        get_as(c, CONTRACT_COLS, "contracts", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, _: &Actor, i: ContractInput) -> Result<Created> {
        let f = fields(c, i, None).await?;
        Ok(save(c, None, &f).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &Contract,
        i: ContractInput,
    ) -> Result<()> {
        let f = fields(c, i, Some(old)).await?;
        if f.status == "terminated"
            && exists(
                c,
                "resellers",
                "contract_id = $1 AND status <> 'terminated'",
                id,
            )
            .await?
        {
            return Err(Error::Locked(format!(
                "contract {id} is held by a reseller that is not terminated"
            )));
        }
        save(c, Some(id), &f).await?;
        Ok(())
    }
    fn gone(r: &Contract) -> bool {
        r.status == "terminated"
    }
    fn id(r: &Contract) -> i64 {
        r.id
    }
    fn reseller_of(_: &Contract) -> Option<i64> {
        None
    }
    fn links(r: &Contract) -> Vec<(&'static str, String)> {
        let mut l = vec![(
            "systemcontacts",
            format!("/api/systemcontacts/{}", r.contact_id),
        )];
        if let Some(b) = r.billing_profile_id {
            l.push(("billingprofiles", format!("/api/billingprofiles/{b}")));
        }
        l
    }
}
