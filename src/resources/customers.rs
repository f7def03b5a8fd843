//! Customers: billing containers for subscribers, identified by a customer contact.
//! Status drives the subscribers: locked locks them, active unlocks them, terminated
//! terminates them all; a terminated customer never changes again.

use async_trait::async_trait;
use serde::Deserialize;
use utoipa::ToSchema;

use super::subscribers;
use crate::app::App;
use crate::error::{Error, Problems, Result};
use crate::model::{self, Actor, CustomerStatus, CustomerType};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::contacts::{Contact, CONTACT_COLS};
use crate::store::customers::{self, save, Customer, CustomerFields, CUSTOMER_COLS};
use crate::store::resellers::{BillingProfile, BILLING_COLS};
use crate::store::{get_as, list_as, Conn};

pub struct Customers;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerInput {
    /// A customer contact; the customer belongs to the contact's reseller.
    #[serde(deserialize_with = "model::int")]
    #[schema(value_type = i64)]
    pub contact_id: i64,
    #[serde(deserialize_with = "model::int")]
    #[schema(value_type = i64)]
    pub billing_profile_id: i64,
    /// sipaccount (default) or pbxaccount.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// active (default), pending, locked or terminated.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
    /// Most subscribers this customer may have; null: unlimited.
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub max_subscribers: Option<i64>,
}

async fn validate(c: &mut Conn, actor: &Actor, i: CustomerInput) -> Result<CustomerFields> {
    // Every field's problem is gathered, so that one answer names them all.
    let mut p = Problems::default();
    let contact: Option<Contact> = get_as(c, CONTACT_COLS, "contacts", i.contact_id, false).await?;
    let live = contact.filter(|ct| ct.status != "terminated");
    let reseller_id = match live.and_then(|ct| ct.reseller_id) {
        Some(r) if actor.scope().is_none_or(|s| s == r) => Some(r),
        _ => {
            p.note(
                "contact_id",
                format!(
                    "The contact_id is not a valid ngcp:customercontacts item: customer contact {} does not exist",
                    i.contact_id
                ),
            );
            None
        }
    };
    let bp: Option<BillingProfile> = get_as(
        c,
        BILLING_COLS,
        "billing_profiles",
        i.billing_profile_id,
        false,
    )
    .await?;
    // A profile is checked against the contact's reseller, or (the contact refused) the
    // actor's own: another reseller's profile is never told apart from none.
    let owner = reseller_id.or(actor.scope());
    if bp.is_none_or(|b| owner.is_some_and(|r| b.reseller_id != r) || b.status == "terminated") {
        p.note(
            "billing_profile_id",
            format!(
                "Invalid 'billing_profile_id': billing profile {} does not exist for this customer's reseller",
                i.billing_profile_id
            ),
        );
    }
    if i.max_subscribers.is_some_and(|m| m < 0) {
        p.note("max_subscribers", "must not be negative");
    }
    let kind = p.check(CustomerType::parse(
        "type",
        i.kind.as_deref().unwrap_or("sipaccount"),
    ))?;
    let status = p.check(CustomerStatus::parse(
        "status",
        i.status.as_deref().unwrap_or("active"),
    ))?;
    let external_id = p.value(model::text("external_id", i.external_id, 255))?;
    p.finish()?;
    let (Some(reseller_id), Some(kind), Some(status)) = (reseller_id, kind, status) else {
        return Err(Error::internal(anyhow::anyhow!(
            "a customer check failed without saying why"
        )));
    };
    Ok(CustomerFields {
        reseller_id,
        contact_id: i.contact_id,
        billing_profile_id: i.billing_profile_id,
        kind: kind.as_str().into(),
        status: status.as_str().into(),
        external_id,
        max_subscribers: i.max_subscribers,
    })
}

#[async_trait]
impl Resource for Customers {
    const NAME: &'static str = "customers";
    const SUMMARY: &'static str = "Customers: billing containers of subscribers";
    const CAN_DELETE: bool = false;
    const BULK: Option<crate::resources::Kind> = Some(crate::resources::Kind::Customers);
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("status", "active, pending, locked or terminated"),
        ("external_id", "external id, * wildcard"),
        ("contact_id", "customer contact"),
        ("reseller_id", "owning reseller"),
        ("billing_profile_id", "billing profile"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("external_id", "external_id"),
        ("status", "status"),
        ("type", "type"),
        ("reseller_id", "reseller_id"),
        ("contact_id", "contact_id"),
        ("billing_profile_id", "billing_profile_id"),
        ("max_subscribers", "max_subscribers"),
        ("create_timestamp", "create_timestamp"),
        ("modify_timestamp", "modify_timestamp"),
    ];
    /// NGCP refuses an explicit null on these (`PATCH` replace `/status` with null is a 422).
    const REQUIRED: &'static [&'static str] = &["status", "contact_id", "type"];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "reseller_id",
        "create_timestamp",
        "modify_timestamp",
        "terminate_timestamp",
    ];
    type Repr = Customer;
    type Input = CustomerInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Customer>, Option<i64>)> {
        let w = q.where_scoped(
            actor,
            &["status", "external_id"],
            &["contact_id", "reseller_id", "billing_profile_id"],
        )?;
        list_as(c, CUSTOMER_COLS, "customers", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Customer>> {
        if lock {
            customers::gate_for_change(c, id).await?;
        }
        get_as(c, CUSTOMER_COLS, "customers", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: CustomerInput) -> Result<Created> {
        let f = validate(c, actor, i).await?;
        if f.status == "terminated" {
            return Err(Error::invalid(
                "status",
                "a customer cannot be created terminated",
            ));
        }
        Ok(save(c, None, &f).await?.into())
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &Customer,
        i: CustomerInput,
    ) -> Result<()> {
        if old.status == "terminated" {
            return Err(Error::invalid(
                "status",
                format!("customer {id} is terminated and cannot change"),
            ));
        }
        let f = validate(c, actor, i).await?;
        if f.reseller_id != old.reseller_id {
            return Err(Error::invalid(
                "contact_id",
                "the contact must belong to the customer's reseller",
            ));
        }
        if let Some(m) = f.max_subscribers {
            let n = customers::live_subscriber_count(c, id).await?;
            if n > m {
                return Err(Error::invalid(
                    "max_subscribers",
                    format!("the customer already has {n} subscribers"),
                ));
            }
        }
        save(c, Some(id), &f).await?;
        if f.status != old.status {
            for sub in customers::live_subscriber_ids(c, id).await? {
                match f.status.as_str() {
                    "terminated" => subscribers::terminate(c, app, actor, sub).await?,
                    "locked" => subscribers::set_status(c, app, actor, sub, "locked").await?,
                    "active" if old.status == "locked" => {
                        subscribers::set_status(c, app, actor, sub, "active").await?
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
    fn id(r: &Customer) -> i64 {
        r.id
    }
    fn reseller_of(r: &Customer) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &Customer) -> Vec<(&'static str, String)> {
        vec![
            (
                "customercontacts",
                format!("/api/customercontacts/{}", r.contact_id),
            ),
            (
                "billingprofiles",
                format!("/api/billingprofiles/{}", r.billing_profile_id),
            ),
            (
                "customerbalances",
                format!("/api/customerbalances/{}", r.id),
            ),
            (
                "subscribers",
                format!("/api/subscribers/?customer_id={}", r.id),
            ),
        ]
    }
}
