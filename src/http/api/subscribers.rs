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

use crate::changes::Op;
use crate::crypto;
use crate::error::{Error, Result};
use crate::http::resource::{record, to_map, Created, ListQuery, Resource};
use crate::http::App;
use crate::model::{self, Actor, Number, NumberInput, SubscriberStatus};
use crate::store::customers::{self, Customer, CUSTOMER_COLS};
use crate::store::numbers::{self, NumberRec};
use crate::store::resellers::{domain_by_name, Domain, DOMAIN_COLS};
use crate::store::sipservers;
use crate::store::subscribers::{self as store, SubscriberFields, SubscriberRow};
use crate::store::{get_as, Arg, Conn};

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
    let mine: Vec<&NumberRec> = nums
        .iter()
        .filter(|n| n.subscriber_id == Some(row.id))
        .collect();
    Ok(Subscriber {
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
    })
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

struct Validated {
    fields: SubscriberFields,
    domain: String,
    primary: Option<Number>,
    aliases: Vec<Number>,
    terminate: bool,
    /// The customer's limit, read under the lock `validate` took.
    max_subscribers: Option<i64>,
    /// A password the policy generated (shown once, in the creation's answer).
    generated_password: Option<String>,
}

/// What validation looks up, remembered across the rows of a bulk import (one POST uses a
/// fresh one). Customers are read with a row lock, held until the transaction ends.
#[derive(Default)]
pub struct Lookups {
    customers: HashMap<i64, Option<Customer>>,
    domains_by_name: HashMap<String, Option<Domain>>,
    domains_by_id: HashMap<i64, Option<Domain>>,
    /// Domains no home server serves (no lookup per row needed).
    homeless: HashSet<i64>,
}

impl Lookups {
    async fn customer(&mut self, c: &mut Conn, id: i64) -> Result<Option<Customer>> {
        if let Some(cu) = self.customers.get(&id) {
            return Ok(cu.clone());
        }
        let cu: Option<Customer> = get_as(c, CUSTOMER_COLS, "customers", id, true).await?;
        self.customers.insert(id, cu.clone());
        Ok(cu)
    }
    async fn domain_by_name(&mut self, c: &mut Conn, name: &str) -> Result<Option<Domain>> {
        if let Some(d) = self.domains_by_name.get(name) {
            return Ok(d.clone());
        }
        let d = domain_by_name(c, name).await?;
        self.domains_by_name.insert(name.to_string(), d.clone());
        Ok(d)
    }
    async fn domain_by_id(&mut self, c: &mut Conn, id: i64) -> Result<Option<Domain>> {
        if let Some(d) = self.domains_by_id.get(&id) {
            return Ok(d.clone());
        }
        let d: Option<Domain> = get_as(c, DOMAIN_COLS, "domains", id, false).await?;
        self.domains_by_id.insert(id, d.clone());
        Ok(d)
    }
    async fn home(&mut self, c: &mut Conn, domain_id: i64) -> Result<Option<i64>> {
        if self.homeless.contains(&domain_id) {
            return Ok(None);
        }
        let h = sipservers::least_loaded_home(c, domain_id).await?;
        if h.is_none() {
            self.homeless.insert(domain_id);
        }
        Ok(h)
    }
}

async fn validate(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    i: SubscriberInput,
    old: Option<&SubscriberRow>,
    look: &mut Lookups,
) -> Result<Validated> {
    let customer = look.customer(c, i.customer_id).await?;
    let customer = match customer {
        Some(cu) if actor.scope().is_none_or(|s| s == cu.reseller_id) => cu,
        _ => {
            return Err(Error::invalid(
                "customer_id",
                format!("customer {} does not exist", i.customer_id),
            ))
        }
    };
    if let Some(o) = old {
        if o.customer_id != customer.id {
            return Err(Error::invalid(
                "customer_id",
                "a subscriber cannot move to another customer",
            ));
        }
    }
    if customer.status == "terminated" {
        return Err(Error::invalid(
            "customer_id",
            format!("customer {} is terminated", customer.id),
        ));
    }
    let domain: Option<Domain> = match (&i.domain, i.domain_id) {
        (Some(name), id) => {
            let name = model::domain_name("domain", name)?;
            let d = look.domain_by_name(c, &name).await?;
            if let (Some(d), Some(id)) = (&d, id) {
                if d.id != id {
                    return Err(Error::invalid("domain_id", "does not match domain"));
                }
            }
            d
        }
        (None, Some(id)) => look.domain_by_id(c, id).await?,
        (None, None) => return Err(Error::invalid("domain", "is required (or domain_id)")),
    };
    let domain = match domain {
        Some(d) if d.reseller_id == customer.reseller_id => d,
        _ => {
            let field = if i.domain.is_some() {
                "domain"
            } else {
                "domain_id"
            };
            return Err(Error::invalid(
                field,
                "does not exist for this customer's reseller",
            ));
        }
    };
    let username = model::sip_username("username", &i.username)?;
    let policy = &app.cfg.password_policy;
    let mut generated_password = None;
    let password_enc = match (i.password, old) {
        (None, Some(o)) => o.password_enc.clone(),
        (Some(Some(p)), _) if !p.is_empty() => {
            let p = model::required_text("password", p, 255)?;
            model::sip_password(policy, "password", &p, &username)?;
            Some(app.cipher.encrypt(&p)?)
        }
        (None | Some(None), None) if policy.generate => {
            let p = crypto::random_token(15);
            let enc = app.cipher.encrypt(&p)?;
            generated_password = Some(p);
            Some(enc)
        }
        _ => return Err(Error::invalid("password", "is required")),
    };
    let webusername = match i.webusername {
        Some(w) if !w.is_empty() => Some(model::sip_username("webusername", &w)?),
        _ => None,
    };
    let webpassword_hash = match (i.webpassword, old) {
        (None, Some(o)) => o.webpassword_hash.clone(),
        (None, None) | (Some(None), _) => None,
        (Some(Some(p)), _) => {
            if p.len() < 6 || p.len() > 128 {
                return Err(Error::invalid("webpassword", "must be 6 to 128 characters"));
            }
            Some(crypto::hash_password(p).await?)
        }
    };
    let status = SubscriberStatus::parse("status", i.status.as_deref().unwrap_or("active"))?;
    let lock = i.lock.unwrap_or(0);
    if !(0..=5).contains(&lock) {
        return Err(Error::invalid("lock", "must be 0 to 5"));
    }
    let primary = i
        .primary_number
        .as_ref()
        .map(|n| Number::parse("primary_number", n))
        .transpose()?;
    let mut aliases = Vec::new();
    for (k, n) in i.alias_numbers.unwrap_or_default().iter().enumerate() {
        let field = format!("alias_numbers[{k}]");
        let n = Number::parse(&field, n)?;
        if primary.as_ref() == Some(&n) || aliases.contains(&n) {
            return Err(Error::invalid(field, format!("number {n} is given twice")));
        }
        aliases.push(n);
    }
    if !actor.is_admin() {
        if let Some(h) = i.home_server_id {
            if h != old.and_then(|o| o.home_server_id) {
                return Err(Error::invalid(
                    "home_server_id",
                    "only admins choose home servers",
                ));
            }
        }
    }
    let home_server_id = match (i.home_server_id, old) {
        (Some(Some(h)), _) => {
            if !sipservers::is_home_for(c, h, domain.id).await? {
                return Err(Error::invalid(
                    "home_server_id",
                    format!(
                        "sipserver {h} is not a home server for domain {}",
                        domain.domain
                    ),
                ));
            }
            Some(h)
        }
        (Some(None), _) => None,
        (None, Some(o)) => o.home_server_id,
        (None, None) => look.home(c, domain.id).await?,
    };
    // A locked customer's subscribers stay locked whatever is asked.
    let effective = if customer.status == "locked" && status == SubscriberStatus::Active {
        SubscriberStatus::Locked
    } else {
        status
    };
    Ok(Validated {
        domain: domain.domain.clone(),
        max_subscribers: customer.max_subscribers,
        fields: SubscriberFields {
            customer_id: customer.id,
            reseller_id: customer.reseller_id,
            domain_id: domain.id,
            username,
            password_enc,
            webusername,
            webpassword_hash,
            status: if effective == SubscriberStatus::Terminated {
                "active".into()
            } else {
                effective.as_str().into()
            },
            lock_level: lock,
            administrative: i.administrative.unwrap_or(false),
            external_id: model::text("external_id", i.external_id, 255)?,
            display_name: model::text("display_name", i.display_name, 255)?,
            email: model::email("email", i.email)?,
            home_server_id,
        },
        primary,
        aliases,
        terminate: effective == SubscriberStatus::Terminated,
        generated_password,
    })
}

/// Creates many subscribers at once (bulk import, a JSON array or CSV POST): the same
/// validation as one POST, then multi-row inserts and journal records. Each row gets its id
/// or its error; a bad row does not stop the others. Call inside a savepoint: if an insert
/// still fails (a concurrent writer took a name), the caller redoes the rows one by one.
pub async fn create_many(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    rows: Vec<Result<SubscriberInput>>,
    look: &mut Lookups,
) -> Result<Vec<Result<i64>>> {
    let mut out: Vec<Result<i64>> = Vec::with_capacity(rows.len());
    let mut ok: Vec<(usize, Validated)> = Vec::new();
    let mut pending: HashMap<i64, i64> = HashMap::new();
    for r in rows {
        let v = match r {
            Ok(i) => validate(c, app, actor, i, None, look).await,
            Err(e) => Err(e),
        };
        let v = v.and_then(|v| {
            if v.terminate {
                Err(Error::invalid(
                    "status",
                    "a subscriber cannot be created terminated",
                ))
            } else {
                Ok(v)
            }
        });
        match v {
            Ok(v) => {
                let cust = v.fields.customer_id;
                if let Some(m) = v.max_subscribers {
                    let live = customers::live_subscriber_count(c, cust).await?;
                    let n = pending.entry(cust).or_default();
                    if live + *n >= m {
                        out.push(Err(Error::Forbidden(format!(
                            "customer {cust} has reached its maximum of {m} subscribers"
                        ))));
                        continue;
                    }
                    *n += 1;
                }
                ok.push((out.len(), v));
                out.push(Ok(0));
            }
            Err(e) => out.push(Err(e)),
        }
    }
    // Names and numbers: taken in the database, or twice in this batch.
    let mut by_domain: HashMap<i64, Vec<String>> = HashMap::new();
    let mut digits = Vec::new();
    for (_, v) in &ok {
        by_domain
            .entry(v.fields.domain_id)
            .or_default()
            .push(v.fields.username.clone());
        digits.extend(v.primary.iter().chain(&v.aliases).map(Number::e164));
    }
    let mut taken: HashSet<(i64, String)> = HashSet::new();
    for (d, names) in &by_domain {
        for n in store::taken_usernames(c, *d, names).await? {
            taken.insert((*d, n));
        }
    }
    let mut taken_nums = numbers::taken(c, &digits).await?;
    let mut accepted: Vec<(usize, Validated)> = Vec::with_capacity(ok.len());
    for (k, v) in ok {
        let key = (v.fields.domain_id, v.fields.username.clone());
        if !taken.insert(key) {
            out[k] = Err(Error::invalid(
                "username",
                format!(
                    "'{}' already exists in domain {}",
                    v.fields.username, v.domain
                ),
            ));
            continue;
        }
        let nums: Vec<(String, String)> = v
            .primary
            .iter()
            .map(|n| (n, "primary_number".to_string()))
            .chain(
                v.aliases
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n, format!("alias_numbers[{i}]"))),
            )
            .map(|(n, f)| (n.e164(), f))
            .collect();
        if let Some((n, f)) = nums.iter().find(|(n, _)| taken_nums.contains(n)) {
            out[k] = Err(Error::invalid(
                f.as_str(),
                format!("number +{n} is already assigned"),
            ));
            taken.remove(&(v.fields.domain_id, v.fields.username.clone()));
            continue;
        }
        taken_nums.extend(nums.into_iter().map(|(n, _)| n));
        accepted.push((k, v));
    }
    if accepted.is_empty() {
        return Ok(out);
    }
    let uuids: Vec<String> = accepted
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let rows: Vec<(String, &SubscriberFields)> = uuids
        .iter()
        .zip(&accepted)
        .map(|(u, (_, v))| (u.clone(), &v.fields))
        .collect();
    let ids = store::insert_many(c, &rows).await?;
    let mut nums: Vec<(i64, i64, &Number, bool)> = Vec::new();
    for (id, (_, v)) in ids.iter().zip(&accepted) {
        let r = v.fields.reseller_id;
        nums.extend(v.primary.iter().map(|n| (*id, r, n, true)));
        nums.extend(v.aliases.iter().map(|n| (*id, r, n, false)));
    }
    let recs = numbers::insert_many(c, &nums).await?;
    let mut recs_by_sub: HashMap<i64, Vec<NumberRec>> = HashMap::new();
    for n in recs {
        if let Some(s) = n.subscriber_id {
            recs_by_sub.entry(s).or_default().push(n);
        }
    }
    let ts = crate::store::now();
    let mut afters = Vec::with_capacity(accepted.len());
    for ((id, uuid), (k, v)) in ids.iter().zip(uuids).zip(accepted) {
        let f = v.fields;
        let row = SubscriberRow {
            id: *id,
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
            modify_timestamp: ts.clone(),
            terminate_timestamp: None,
            home_server_id: f.home_server_id,
        };
        let mut mine = recs_by_sub.remove(id).unwrap_or_default();
        mine.sort_by_key(|n| (!n.is_primary.0, n.id));
        let repr = build(app, row, &mine)?;
        afters.push((repr.reseller_id, *id, Value::Object(to_map(&repr))));
        out[k] = Ok(*id);
    }
    let changes: Vec<crate::changes::Change> = afters
        .iter()
        .map(|(r, id, after)| crate::changes::Change {
            resource: Subscribers::NAME,
            object_id: *id,
            reseller_id: Some(*r),
            op: Op::Create,
            before: None,
            after: Some(after),
        })
        .collect();
    crate::changes::record_many(c, actor, &changes).await?;
    Ok(out)
}

#[async_trait]
impl Resource for Subscribers {
    const NAME: &'static str = "subscribers";
    const SUMMARY: &'static str = "Subscribers: SIP accounts with their numbers";
    const BULK: Option<crate::bulk::Kind> = Some(crate::bulk::Kind::Subscribers);
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
        ("external_id", "external_id"),
        ("create_timestamp", "create_timestamp"),
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
        let id = store::insert(c, &uuid::Uuid::new_v4().to_string(), &v.fields).await?;
        numbers::sync_subscriber(c, id, v.fields.reseller_id, v.primary.as_ref(), &v.aliases)
            .await?;
        Ok(Created {
            id,
            once: v
                .generated_password
                .map(|p| Map::from_iter([("password".to_string(), Value::String(p))])),
        })
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
        l
    }
    fn view(r: &Subscriber, actor: &Actor) -> Map<String, Value> {
        let mut m = to_map(r);
        if !actor.is_admin() {
            m.remove("password");
        }
        m
    }
}
