//! Subscribers: SIP accounts of a customer, in a domain, with a primary number and aliases.
//!
//! Secrets: the SIP password is stored encrypted and shown only to admins; a PUT or PATCH
//! without `password` keeps it (so a reseller's GET → PUT round trip works). The web password
//! is an argon2id hash, never shown; absent keeps it, null clears it.
//! DELETE terminates: the record stays for billing, its numbers are released.

use std::collections::{HashMap, HashSet};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use crate::app::App;
use crate::changes::Op;
use crate::crypto;
use crate::error::{Error, Problems, Result};
use crate::model::{self, Actor, Number, NumberInput, SubscriberStatus};
use crate::resources::{record, to_map, Created, ListQuery, Resource};
use crate::store::customers::{self, Customer};
use crate::store::numbers::{self, NumberRec};
use crate::store::resellers::{domain_by_name, Domain, DOMAIN_COLS};
use crate::store::sipservers;
use crate::store::subscribers::{self as store, SubscriberFields, SubscriberRow};
use crate::store::{get_as, Arg, Conn};

mod many;
mod validate;
pub use many::*;
pub use validate::*;

pub struct Subscribers;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NumberRepr {
    pub cc: String,
    pub ac: String,
    pub sn: String,
    pub number_id: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Subscriber {
    pub id: i64,
    pub uuid: String,
    pub customer_id: i64,
    pub reseller_id: i64,
    pub domain_id: i64,
    pub domain: String,
    pub username: String,
    /// Shown to admins only.
    pub password: Option<String>,
    pub webusername: Option<String>,
    pub status: String,
    /// 0 none, 1 foreign, 2 outgoing, 3 incoming and outgoing, 4 global, 5 ported.
    pub lock: i64,
    pub administrative: bool,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub primary_number: Option<NumberRepr>,
    pub alias_numbers: Vec<NumberRepr>,
    /// The numbers a terminated subscriber had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released_numbers: Option<Value>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    pub terminate_timestamp: Option<String>,
    /// The home server (a sipserver with role `home`) holding this subscriber; see
    /// /api/sipservers/.
    pub home_server_id: Option<i64>,
    /// A customer contact of the subscriber's reseller (NGCP's `contact_id`).
    pub contact_id: Option<i64>,
    /// The subscriber profile set and profile limiting which preferences the subscriber may
    /// change (see /api/subscriberprofilesets/).
    pub profile_set_id: Option<i64>,
    pub profile_id: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriberInput {
    #[serde(deserialize_with = "model::int")]
    #[schema(value_type = i64)]
    pub customer_id: i64,
    /// The domain's name; or give `domain_id`.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub domain_id: Option<i64>,
    pub username: String,
    /// SIP password: required on creation; absent on PUT/PATCH keeps the current one.
    #[serde(default, deserialize_with = "model::present")]
    #[schema(value_type = Option<String>)]
    pub password: Option<Option<String>>,
    #[serde(default)]
    pub webusername: Option<String>,
    /// Web password: absent keeps it, null removes it. Never returned.
    #[serde(default, deserialize_with = "model::present")]
    #[schema(value_type = Option<String>, write_only)]
    pub webpassword: Option<Option<String>>,
    /// active (default) or locked; terminated terminates.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub lock: Option<i64>,
    #[serde(default)]
    pub administrative: Option<bool>,
    #[serde(default)]
    pub external_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub primary_number: Option<NumberInput>,
    #[serde(default)]
    pub alias_numbers: Option<Vec<NumberInput>>,
    /// A home server (sipserver with role `home`) serving the domain. Absent: on creation the
    /// least-loaded enabled one (if any), on update the current one; null: none.
    #[serde(default, deserialize_with = "model::present_int")]
    #[schema(value_type = Option<i64>)]
    pub home_server_id: Option<Option<i64>>,
    /// A customer contact of the same reseller; absent keeps it on update, null removes it.
    #[serde(default, deserialize_with = "model::present_int")]
    #[schema(value_type = Option<i64>)]
    pub contact_id: Option<Option<i64>>,
    /// A subscriber profile set of the same reseller; absent keeps it on update, null removes
    /// it (and the profile).
    #[serde(default, deserialize_with = "model::present_int")]
    #[schema(value_type = Option<i64>)]
    pub profile_set_id: Option<Option<i64>>,
    /// A profile of that set; absent: the set's default.
    #[serde(default, deserialize_with = "model::present_int")]
    #[schema(value_type = Option<i64>)]
    pub profile_id: Option<Option<i64>>,
}

fn number_repr(n: &NumberRec) -> NumberRepr {
    NumberRepr {
        cc: n.cc.clone(),
        ac: n.ac.clone(),
        sn: n.sn.clone(),
        number_id: n.id,
    }
}

fn build(app: &App, row: SubscriberRow, nums: &[NumberRec]) -> Result<Subscriber> {
    let password = row
        .password_enc
        .as_deref()
        .map(|p| app.cipher.decrypt(p))
        .transpose()?;
    Ok(build_with(row, nums, password))
}

/// A subscriber's representation from its row and numbers, with `password` as given.
fn build_with(row: SubscriberRow, nums: &[NumberRec], password: Option<String>) -> Subscriber {
    let mine: Vec<&NumberRec> = nums
        .iter()
        .filter(|n| n.subscriber_id == Some(row.id))
        .collect();
    Subscriber {
        id: row.id,
        uuid: row.uuid,
        customer_id: row.customer_id,
        reseller_id: row.reseller_id,
        domain_id: row.domain_id,
        domain: row.domain,
        username: row.username,
        password,
        webusername: row.webusername,
        status: row.status,
        lock: row.lock_level,
        administrative: row.administrative.0,
        external_id: row.external_id,
        display_name: row.display_name,
        email: row.email,
        primary_number: mine.iter().find(|n| n.is_primary.0).map(|n| number_repr(n)),
        alias_numbers: mine
            .iter()
            .filter(|n| !n.is_primary.0)
            .map(|n| number_repr(n))
            .collect(),
        released_numbers: row
            .released_numbers
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
        create_timestamp: row.create_timestamp,
        modify_timestamp: row.modify_timestamp,
        terminate_timestamp: row.terminate_timestamp,
        home_server_id: row.home_server_id,
        contact_id: row.contact_id,
        profile_set_id: row.profile_set_id,
        profile_id: row.profile_id,
    }
}

/// The row a subscriber validated as `v` has once inserted as `id` at `ts` (what reading it
/// back would give).
fn new_row(id: i64, uuid: String, ts: String, v: Validated) -> SubscriberRow {
    let f = v.fields;
    SubscriberRow {
        id,
        uuid,
        customer_id: f.customer_id,
        reseller_id: f.reseller_id,
        domain_id: f.domain_id,
        domain: v.domain,
        username: f.username,
        password_enc: f.password_enc,
        webusername: f.webusername,
        webpassword_hash: f.webpassword_hash,
        status: f.status,
        lock_level: f.lock_level,
        administrative: crate::store::Flag(f.administrative),
        external_id: f.external_id,
        display_name: f.display_name,
        email: f.email,
        released_numbers: None,
        create_timestamp: ts.clone(),
        modify_timestamp: ts,
        terminate_timestamp: None,
        home_server_id: f.home_server_id,
        contact_id: f.contact_id,
        profile_set_id: f.profile_set_id,
        profile_id: f.profile_id,
    }
}

pub async fn load(c: &mut Conn, app: &App, id: i64, lock: bool) -> Result<Option<Subscriber>> {
    let Some(row) = store::get(c, id, lock).await? else {
        return Ok(None);
    };
    let nums = numbers::for_subscribers(c, &[id]).await?;
    Ok(Some(build(app, row, &nums)?))
}

/// Terminates one subscriber and records it (used by DELETE and by customer termination).
pub async fn terminate(c: &mut Conn, app: &App, actor: &Actor, id: i64) -> Result<()> {
    let Some(before) = load(c, app, id, true).await? else {
        return Ok(());
    };
    terminate_loaded(c, &before).await?;
    let after = load(c, app, id, false).await?;
    record::<Subscribers>(c, actor, Op::Delete, Some(&before), after.as_ref()).await
}

async fn terminate_loaded(c: &mut Conn, s: &Subscriber) -> Result<()> {
    let released = json!({ "primary_number": s.primary_number, "alias_numbers": s.alias_numbers });
    store::terminate(c, s.id, &released.to_string()).await
}

/// Sets a subscriber's status as a consequence of its customer's, and records it.
pub async fn set_status(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    id: i64,
    status: &str,
) -> Result<()> {
    let Some(before) = load(c, app, id, true).await? else {
        return Ok(());
    };
    if before.status == status {
        return Ok(());
    }
    store::set_status(c, id, status).await?;
    let after = load(c, app, id, false).await?;
    record::<Subscribers>(c, actor, Op::Update, Some(&before), after.as_ref()).await
}

#[async_trait]
impl Resource for Subscribers {
    const NAME: &'static str = "subscribers";
    const SUMMARY: &'static str = "Subscribers: SIP accounts with their numbers";
    const BULK: Option<crate::resources::Kind> = Some(crate::resources::Kind::Subscribers);
    const HASHED: &'static [&'static str] = &["webpassword"];
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("username", "SIP username, * wildcard"),
        ("domain", "domain name, * wildcard"),
        ("customer_id", "customer"),
        ("reseller_id", "owning reseller"),
        ("alias", "an alias number as digits cc+ac+sn, * wildcard"),
        (
            "primary_number",
            "the primary number as digits cc+ac+sn, * wildcard",
        ),
        ("external_id", "external id, * wildcard"),
        (
            "status",
            "active, locked or terminated (default: all but terminated)",
        ),
        ("uuid", "subscriber uuid"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("username", "username"),
        ("domain", "domain"),
        ("webusername", "webusername"),
        ("status", "status"),
        ("lock", "lock_level"),
        ("administrative", "administrative"),
        ("display_name", "display_name"),
        ("email", "email"),
        ("customer_id", "customer_id"),
        ("reseller_id", "reseller_id"),
        ("domain_id", "domain_id"),
        ("contact_id", "contact_id"),
        ("profile_set_id", "profile_set_id"),
        ("profile_id", "profile_id"),
        ("uuid", "uuid"),
        ("external_id", "external_id"),
        ("create_timestamp", "create_timestamp"),
        ("modify_timestamp", "modify_timestamp"),
    ];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "uuid",
        "reseller_id",
        "create_timestamp",
        "modify_timestamp",
        "terminate_timestamp",
        "released_numbers",
    ];
    type Repr = Subscriber;
    type Input = SubscriberInput;

    async fn list(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Subscriber>, Option<i64>)> {
        let mut w = q.where_scoped(
            actor,
            &["username", "domain", "external_id", "uuid"],
            &["customer_id", "reseller_id"],
        )?;
        match q.get("status") {
            Some(s) => w.push("status = ?", Arg::Text(s.into())),
            None => w.raw("status <> 'terminated'"),
        };
        for (param, primary) in [("alias", 0), ("primary_number", 1)] {
            if let Some(v) = q.get(param) {
                let op = if v.contains('*') {
                    "LIKE ? ESCAPE '\\'"
                } else {
                    "= ?"
                };
                let val = if v.contains('*') {
                    crate::store::like_pattern(v)
                } else {
                    v.to_string()
                };
                // An IN over the numbers' digits index: one index probe, not a subquery per
                // subscriber.
                w.push(
                    &format!("id IN (SELECT n.subscriber_id FROM numbers n WHERE (n.cc || n.ac || n.sn) {op} AND n.is_primary = {primary})"),
                    Arg::Text(val),
                );
            }
        }
        let (rows, total) = store::list(c, &w, &q.page).await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let nums = numbers::for_subscribers(c, &ids).await?;
        let items = rows
            .into_iter()
            .map(|r| build(app, r, &nums))
            .collect::<Result<Vec<_>>>()?;
        Ok((items, total))
    }
    async fn load(c: &mut Conn, app: &App, id: i64, lock: bool) -> Result<Option<Subscriber>> {
        load(c, app, id, lock).await
    }
    async fn create(c: &mut Conn, app: &App, actor: &Actor, i: SubscriberInput) -> Result<Created> {
        Ok(Self::create_built(c, app, actor, i).await?.0)
    }
    async fn create_built(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        i: SubscriberInput,
    ) -> Result<(Created, Option<Subscriber>)> {
        let v = validate(c, app, actor, i, None, &mut Lookups::default()).await?;
        if v.terminate {
            return Err(Error::invalid(
                "status",
                "a subscriber cannot be created terminated",
            ));
        }
        let cust = v.fields.customer_id;
        if let Some(m) = v.max_subscribers {
            if customers::live_subscriber_count(c, cust).await? >= m {
                return Err(Error::Forbidden(format!(
                    "customer {cust} has reached its maximum of {m} subscribers"
                )));
            }
        }
        let uuid = new_uuid();
        let ts = crate::store::now();
        let (id, nums) = numbers::insert_subscriber_with(
            c,
            &uuid,
            &v.fields,
            &ts,
            v.primary.as_ref(),
            &v.aliases,
        )
        .await?;
        let once = v.once();
        let repr = build(app, new_row(id, uuid, ts, v), &nums)?;
        Ok((Created { id, once }, Some(repr)))
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &Subscriber,
        i: SubscriberInput,
    ) -> Result<()> {
        if old.status == "terminated" {
            return Err(Error::invalid(
                "status",
                format!("subscriber {id} is terminated and cannot change"),
            ));
        }
        let row = store::get(c, id, false)
            .await?
            .ok_or_else(|| Error::not_found("subscriber"))?;
        let v = validate(c, app, actor, i, Some(&row), &mut Lookups::default()).await?;
        if v.terminate
            && crate::store::exists(c, "pbx_extensions", "subscriber_id = $1", id).await?
        {
            return Err(Error::Locked(format!(
                "subscriber {id} is a PBX extension: delete it as /api/pbxextensions/"
            )));
        }
        store::update(c, id, &v.fields).await?;
        numbers::sync_subscriber(c, id, v.fields.reseller_id, v.primary.as_ref(), &v.aliases)
            .await?;
        if v.terminate {
            let current = load(c, app, id, false)
                .await?
                .ok_or_else(|| Error::not_found("subscriber"))?;
            terminate_loaded(c, &current).await?;
        }
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, old: &Subscriber) -> Result<()> {
        if old.status == "terminated" {
            return Err(Error::NotFound(format!(
                "subscriber {id} is already terminated"
            )));
        }
        if crate::store::exists(c, "pbx_extensions", "subscriber_id = $1", id).await? {
            return Err(Error::Locked(format!(
                "subscriber {id} is a PBX extension: delete it as /api/pbxextensions/"
            )));
        }
        terminate_loaded(c, old).await
    }
    fn id(r: &Subscriber) -> i64 {
        r.id
    }
    fn reseller_of(r: &Subscriber) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &Subscriber) -> Vec<(&'static str, String)> {
        let mut l = vec![
            ("customers", format!("/api/customers/{}", r.customer_id)),
            ("domains", format!("/api/domains/{}", r.domain_id)),
            ("numbers", format!("/api/numbers/?subscriber_id={}", r.id)),
        ];
        if let Some(h) = r.home_server_id {
            l.push(("sipservers", format!("/api/sipservers/{h}")));
        }
        if let Some(ct) = r.contact_id {
            l.push(("customercontacts", format!("/api/customercontacts/{ct}")));
        }
        if let Some(p) = r.profile_set_id {
            l.push((
                "subscriberprofilesets",
                format!("/api/subscriberprofilesets/{p}"),
            ));
        }
        if let Some(p) = r.profile_id {
            l.push(("subscriberprofiles", format!("/api/subscriberprofiles/{p}")));
        }
        l
    }
    fn gone(r: &Subscriber) -> bool {
        r.status == "terminated"
    }
    fn view(r: &Subscriber, actor: &Actor) -> Map<String, Value> {
        let mut m = to_map(r);
        if !actor.is_admin() {
            m.remove("password");
        }
        m
    }
}

/// A new subscriber's uuid: time-ordered (version 7), so the unique index on uuid takes new
/// subscribers at its end. Random ones (version 4) put every row of a bulk import on a
/// different leaf page of that index, each page copied into the statement's journal.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::now_v7().to_string()
}
