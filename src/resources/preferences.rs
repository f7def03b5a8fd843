//! Preferences: /api/subscriberpreferencedefs/ (the catalog, also served as
//! /api/customerpreferencedefs/ and /api/domainpreferencedefs/), /api/subscriberpreferences/{id},
//! /api/customerpreferences/{id} and /api/domainpreferences/{id}. A subscriber's effective
//! value is its own, else its customer's, else its domain's. GET shows what is set; PUT
//! replaces the whole set; PATCH changes it.
//!
//! `lock` is the subscriber's own lock level (the same value /api/subscribers/ shows), not a
//! second copy of it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::callforwards::{list_subs, sub_ctx};
use crate::app::App;
use crate::error::Result;
use crate::features::prefs;
use crate::model::Actor;
use crate::resources::{ListQuery, Resource};
use crate::store::customers::{Customer, CUSTOMER_COLS};
use crate::store::features::{self as fs, PrefOwner};
use crate::store::resellers::{Domain, DOMAIN_COLS};
use crate::store::{get_as, list_as, Conn};

/// A set of preferences as a body: names → values; checked against the catalog.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct PrefsInput(pub BTreeMap<String, Value>);

pub struct SubscriberPreferences;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SubscriberPrefs {
    pub subscriber_id: i64,
    pub customer_id: i64,
    /// The preferences that are set, by name (see /api/subscriberpreferencedefs/).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub prefs: BTreeMap<String, Value>,
    #[serde(skip)]
    pub reseller_id: i64,
}

fn with_lock(mut p: BTreeMap<String, Value>, lock: i64) -> BTreeMap<String, Value> {
    if lock > 0 {
        p.insert("lock".into(), Value::String(lock.to_string()));
    }
    p
}

#[async_trait]
impl Resource for SubscriberPreferences {
    const NAME: &'static str = "subscriberpreferences";
    const SUMMARY: &'static str =
        "Preferences of a subscriber (id = subscriber id); unknown names are refused";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("subscriber_id", "subscriber"),
        ("customer_id", "customer"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] = &["subscriber_id", "customer_id", "id"];
    type Repr = SubscriberPrefs;
    type Input = PrefsInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<SubscriberPrefs>, Option<i64>)> {
        let (rows, total) = list_subs(c, actor, q).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut all = fs::prefs_of(c, PrefOwner::Subscriber, &ids).await?;
        let items = rows
            .into_iter()
            .map(|r| SubscriberPrefs {
                prefs: with_lock(all.remove(&r.id).unwrap_or_default(), r.lock_level),
                subscriber_id: r.id,
                customer_id: r.customer_id,
                reseller_id: r.reseller_id,
            })
            .collect();
        Ok((items, total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<SubscriberPrefs>> {
        let Some(s) = sub_ctx(c, id, lock).await? else {
            return Ok(None);
        };
        let p = fs::prefs_of(c, PrefOwner::Subscriber, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Ok(Some(SubscriberPrefs {
            prefs: with_lock(p, s.row.lock_level),
            subscriber_id: id,
            customer_id: s.row.customer_id,
            reseller_id: s.row.reseller_id,
        }))
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &SubscriberPrefs,
        i: PrefsInput,
    ) -> Result<()> {
        let mut p = prefs::validate_set(i.0, false)?;
        super::routing::check_preference_refs(c, old.reseller_id, &p).await?;
        let lock = p
            .remove("lock")
            .and_then(|v| v.as_str().and_then(|s| s.parse::<i64>().ok()))
            .unwrap_or(0);
        fs::set_lock(c, id, lock).await?;
        fs::replace_prefs(c, PrefOwner::Subscriber, id, &p).await
    }
    fn id(r: &SubscriberPrefs) -> i64 {
        r.subscriber_id
    }
    fn reseller_of(r: &SubscriberPrefs) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &SubscriberPrefs) -> Vec<(&'static str, String)> {
        vec![
            (
                "subscribers",
                format!("/api/subscribers/{}", r.subscriber_id),
            ),
            (
                "subscriberpreferencedefs",
                "/api/subscriberpreferencedefs/".into(),
            ),
        ]
    }
}

pub struct DomainPreferences;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DomainPrefs {
    pub domain_id: i64,
    pub domain: String,
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub prefs: BTreeMap<String, Value>,
    #[serde(skip)]
    pub reseller_id: i64,
}

#[async_trait]
impl Resource for DomainPreferences {
    const NAME: &'static str = "domainpreferences";
    const SUMMARY: &'static str =
        "Preferences of a domain (id = domain id): defaults its subscribers inherit";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("domain", "domain name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] = &["domain_id", "domain", "id"];
    type Repr = DomainPrefs;
    type Input = PrefsInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<DomainPrefs>, Option<i64>)> {
        let w = q.where_scoped(actor, &["domain"], &["reseller_id"])?;
        let (rows, total): (Vec<Domain>, _) =
            list_as(c, DOMAIN_COLS, "domains", &w, &q.page).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut all = fs::prefs_of(c, PrefOwner::Domain, &ids).await?;
        let items = rows
            .into_iter()
            .map(|d| DomainPrefs {
                prefs: all.remove(&d.id).unwrap_or_default(),
                domain_id: d.id,
                domain: d.domain,
                reseller_id: d.reseller_id,
            })
            .collect();
        Ok((items, total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<DomainPrefs>> {
        let Some(d): Option<Domain> = get_as(c, DOMAIN_COLS, "domains", id, lock).await? else {
            return Ok(None);
        };
        let p = fs::prefs_of(c, PrefOwner::Domain, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Ok(Some(DomainPrefs {
            prefs: p,
            domain_id: d.id,
            domain: d.domain,
            reseller_id: d.reseller_id,
        }))
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &DomainPrefs,
        i: PrefsInput,
    ) -> Result<()> {
        let p = prefs::validate_set(i.0, true)?;
        super::routing::check_preference_refs(c, old.reseller_id, &p).await?;
        fs::replace_prefs(c, PrefOwner::Domain, id, &p).await
    }
    fn id(r: &DomainPrefs) -> i64 {
        r.domain_id
    }
    fn reseller_of(r: &DomainPrefs) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &DomainPrefs) -> Vec<(&'static str, String)> {
        vec![("domains", format!("/api/domains/{}", r.domain_id))]
    }
}

pub struct CustomerPreferences;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerPrefs {
    pub customer_id: i64,
    /// The preferences that are set, by name (see /api/customerpreferencedefs/).
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub prefs: BTreeMap<String, Value>,
    #[serde(skip)]
    pub reseller_id: i64,
    #[serde(skip)]
    pub status: String,
}

#[async_trait]
impl Resource for CustomerPreferences {
    const NAME: &'static str = "customerpreferences";
    const SUMMARY: &'static str = "Preferences of a customer (id = customer id): defaults its \
         subscribers inherit over their domain's";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("reseller_id", "owning reseller"),
        ("external_id", "the customer's external id, * wildcard"),
    ];
    const READ_ONLY: &'static [&'static str] = &["customer_id", "id"];
    type Repr = CustomerPrefs;
    type Input = PrefsInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<CustomerPrefs>, Option<i64>)> {
        let mut w = q.where_scoped(actor, &["external_id"], &["reseller_id"])?;
        w.raw("status <> 'terminated'");
        let (rows, total): (Vec<Customer>, _) =
            list_as(c, CUSTOMER_COLS, "customers", &w, &q.page).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut all = fs::prefs_of(c, PrefOwner::Customer, &ids).await?;
        let items = rows
            .into_iter()
            .map(|cu| CustomerPrefs {
                prefs: all.remove(&cu.id).unwrap_or_default(),
                customer_id: cu.id,
                reseller_id: cu.reseller_id,
                status: cu.status,
            })
            .collect();
        Ok((items, total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<CustomerPrefs>> {
        let Some(cu): Option<Customer> = get_as(c, CUSTOMER_COLS, "customers", id, lock).await?
        else {
            return Ok(None);
        };
        let p = fs::prefs_of(c, PrefOwner::Customer, &[id])
            .await?
            .remove(&id)
            .unwrap_or_default();
        Ok(Some(CustomerPrefs {
            prefs: p,
            customer_id: cu.id,
            reseller_id: cu.reseller_id,
            status: cu.status,
        }))
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &CustomerPrefs,
        i: PrefsInput,
    ) -> Result<()> {
        let p = prefs::validate_set(i.0, true)?;
        super::routing::check_preference_refs(c, old.reseller_id, &p).await?;
        fs::replace_prefs(c, PrefOwner::Customer, id, &p).await
    }
    fn id(r: &CustomerPrefs) -> i64 {
        r.customer_id
    }
    fn reseller_of(r: &CustomerPrefs) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn gone(r: &CustomerPrefs) -> bool {
        r.status == "terminated"
    }
    fn links(r: &CustomerPrefs) -> Vec<(&'static str, String)> {
        vec![("customers", format!("/api/customers/{}", r.customer_id))]
    }
}
