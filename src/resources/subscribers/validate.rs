//! A subscriber body checked against its customer, domain, numbers and home server, and the
//! password policy: the rules one POST and every row of a bulk import share.

use super::*;
use crate::resources::handling;
use crate::resources::profiles::check_subscriber_profile;

pub(super) struct Validated {
    pub(super) fields: SubscriberFields,
    pub(super) domain: String,
    pub(super) primary: Option<Number>,
    pub(super) aliases: Vec<Number>,
    pub(super) terminate: bool,
    /// The customer's limit, read under the lock `validate` took.
    pub(super) max_subscribers: Option<i64>,
    /// A password the policy generated (shown once, in the creation's answer).
    pub(super) generated_password: Option<String>,
}

impl Validated {
    /// What the creation's answer shows once (the generated password), if anything.
    pub(super) fn once(&self) -> Option<Map<String, Value>> {
        self.generated_password
            .clone()
            .map(|p| Map::from_iter([("password".to_string(), Value::String(p))]))
    }
}

/// What validation looks up, remembered across the rows of a bulk import (one POST uses a
/// fresh one). Customers are read with a shared row lock held until the transaction ends
/// (and, for a creation under a subscriber limit, the counting lock: see
/// [`customers::for_subscriber`]).
#[derive(Default)]
pub struct Lookups {
    customers: HashMap<i64, Option<Customer>>,
    domains_by_name: HashMap<String, Option<Domain>>,
    domains_by_id: HashMap<i64, Option<Domain>>,
    /// Domains no home server serves (no lookup per row needed).
    homeless: HashSet<i64>,
    /// A domain's least-loaded home server as read with its customer, good for one use.
    home_read: Option<(i64, Option<i64>)>,
}

impl Lookups {
    /// The customer a subscriber names, read with its domain and default home server in one
    /// statement, unless it is known already (the next rows of an import).
    async fn customer(
        &mut self,
        c: &mut Conn,
        i: &SubscriberInput,
        creating: bool,
    ) -> Result<Option<Customer>> {
        if let Some(cu) = self.customers.get(&i.customer_id) {
            return Ok(cu.clone());
        }
        let name = i
            .domain
            .as_deref()
            .and_then(|n| model::domain_name("domain", n).ok());
        let key = match (&name, i.domain_id) {
            (Some(n), _) => customers::DomainKey::Name(n),
            (None, Some(id)) => customers::DomainKey::Id(id),
            // Nothing to look a domain up by: validation says so.
            (None, None) => customers::DomainKey::Id(0),
        };
        let want_home = creating && i.home_server_id.is_none();
        let got = customers::for_subscriber(c, i.customer_id, key, want_home, creating).await?;
        self.customers.insert(i.customer_id, got.customer.clone());
        if got.customer.is_none() {
            // Validation stops at the customer; nothing else is asked.
            return Ok(None);
        }
        match (&name, i.domain_id) {
            (Some(n), _) => {
                self.domains_by_name.insert(n.clone(), got.domain.clone());
            }
            (None, Some(id)) => {
                self.domains_by_id.insert(id, got.domain.clone());
            }
            (None, None) => {}
        }
        if let (Some(d), true) = (&got.domain, want_home) {
            self.home_read = Some((d.id, got.home));
        }
        Ok(got.customer)
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
        let h = match self.home_read.take() {
            Some((d, h)) if d == domain_id => h,
            _ => sipservers::least_loaded_home(c, domain_id).await?,
        };
        if h.is_none() {
            self.homeless.insert(domain_id);
        }
        Ok(h)
    }
}

pub(super) async fn validate(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    i: SubscriberInput,
    old: Option<&SubscriberRow>,
    look: &mut Lookups,
) -> Result<Validated> {
    let customer = look.customer(c, &i, old.is_none()).await?;
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
        .map(|n| Number::parse("primary_number", n, handling::strict()))
        .transpose()?;
    let mut aliases = Vec::new();
    for (k, n) in i.alias_numbers.unwrap_or_default().iter().enumerate() {
        let field = format!("alias_numbers[{k}]");
        let n = Number::parse(&field, n, handling::strict())?;
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
    let contact_id = match (i.contact_id, old) {
        // The contact it already has stays acceptable after that contact was terminated
        // (NGCP terminates a contact its subscribers still name); a new one must be live.
        (Some(Some(ct)), Some(o)) if o.contact_id == Some(ct) => Some(ct),
        (Some(Some(ct)), _) => Some(check_contact(c, customer.reseller_id, ct).await?),
        (Some(None), _) => None,
        (None, Some(o)) => o.contact_id,
        (None, None) => None,
    };
    let (profile_set_id, profile_id) = match (i.profile_set_id, i.profile_id, old) {
        (None, None, Some(o)) => (o.profile_set_id, o.profile_id),
        (None, Some(p), Some(o)) => {
            check_subscriber_profile(c, customer.reseller_id, o.profile_set_id, p).await?
        }
        (set, p, _) => {
            check_subscriber_profile(c, customer.reseller_id, set.flatten(), p.flatten()).await?
        }
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
            contact_id,
            profile_set_id,
            profile_id,
        },
        primary,
        aliases,
        terminate: effective == SubscriberStatus::Terminated,
        generated_password,
    })
}

/// A subscriber's contact: a live customer contact of the subscriber's reseller.
async fn check_contact(c: &mut Conn, reseller: i64, id: i64) -> Result<i64> {
    let ct: Option<crate::store::contacts::Contact> = get_as(
        c,
        crate::store::contacts::CONTACT_COLS,
        "contacts",
        id,
        false,
    )
    .await?;
    match ct {
        Some(ct) if ct.status != "terminated" && ct.reseller_id == Some(reseller) => Ok(id),
        _ => Err(Error::invalid(
            "contact_id",
            format!("Invalid 'contact_id': customer contact {id} does not exist for this reseller"),
        )),
    }
}
