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
            // The domain is not remembered with a missing customer (validation reports the
            // customer and reads the domain on its own).
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
    // Every field's own problems are gathered, so that one answer names them all; checks
    // that need a valid customer and domain come after.
    let mut p = Problems::default();
    let customer = look.customer(c, &i, old.is_none()).await?;
    let customer = match customer {
        Some(cu) if actor.scope().is_none_or(|s| s == cu.reseller_id) => {
            if old.is_some_and(|o| o.customer_id != cu.id) {
                p.note(
                    "customer_id",
                    "a subscriber cannot move to another customer",
                );
            } else if cu.status == "terminated" {
                p.note("customer_id", format!("customer {} is terminated", cu.id));
            }
            Some(cu)
        }
        _ => {
            p.note(
                "customer_id",
                format!("customer {} does not exist", i.customer_id),
            );
            None
        }
    };
    let domain: Option<Domain> = match (&i.domain, i.domain_id) {
        (Some(name), id) => match p.check(model::domain_name("domain", name))? {
            Some(name) => {
                let d = look.domain_by_name(c, &name).await?;
                match (&d, id) {
                    (Some(d), Some(id)) if d.id != id => {
                        p.note("domain_id", "does not match domain");
                        None
                    }
                    _ => d,
                }
            }
            None => None,
        },
        (None, Some(id)) => look.domain_by_id(c, id).await?,
        (None, None) => {
            p.note("domain", "is required (or domain_id)");
            None
        }
    };
    let domain = match (domain, &customer) {
        (Some(d), Some(cu)) if d.reseller_id == cu.reseller_id => Some(d),
        // Its customer's problem is noted already.
        (_, None) => None,
        _ => {
            // Unless the domain's own name or id was refused already.
            if !p.names("domain") && !p.names("domain_id") {
                let field = if i.domain.is_some() {
                    "domain"
                } else {
                    "domain_id"
                };
                p.note(field, "does not exist for this customer's reseller");
            }
            None
        }
    };
    let username = p.check(model::sip_username("username", &i.username))?;
    let policy = &app.cfg.password_policy;
    let mut generated_password = None;
    let password_enc = match (i.password, old) {
        (None, Some(o)) => o.password_enc.clone(),
        (Some(Some(pw)), _) if !pw.is_empty() => {
            match p.check(model::required_text("password", pw, 255).and_then(|pw| {
                model::sip_password(policy, "password", &pw, &i.username)?;
                Ok(pw)
            }))? {
                Some(pw) => Some(app.cipher.encrypt(&pw)?),
                None => None,
            }
        }
        (None | Some(None), None) if policy.generate => {
            let pw = crypto::random_token(15);
            let enc = app.cipher.encrypt(&pw)?;
            generated_password = Some(pw);
            Some(enc)
        }
        _ => {
            p.note("password", "is required");
            None
        }
    };
    let webusername = match i.webusername {
        Some(w) if !w.is_empty() => p.check(model::sip_username("webusername", &w))?,
        _ => None,
    };
    // Hashed (slow by design) only once every field is known good.
    let webpassword = match (i.webpassword, old) {
        (Some(Some(pw)), _) if pw.len() < 6 || pw.len() > 128 => {
            p.note("webpassword", "must be 6 to 128 characters");
            None
        }
        (w, _) => Some(w),
    };
    let status = p.check(SubscriberStatus::parse(
        "status",
        i.status.as_deref().unwrap_or("active"),
    ))?;
    let lock = i.lock.unwrap_or(0);
    if !(0..=5).contains(&lock) {
        p.note("lock", "must be 0 to 5");
    }
    let primary = match &i.primary_number {
        Some(n) => p.check(Number::parse("primary_number", n, handling::strict()))?,
        None => None,
    };
    let mut aliases = Vec::new();
    for (k, n) in i.alias_numbers.unwrap_or_default().iter().enumerate() {
        let field = format!("alias_numbers[{k}]");
        let Some(n) = p.check(Number::parse(&field, n, handling::strict()))? else {
            continue;
        };
        if primary.as_ref() == Some(&n) || aliases.contains(&n) {
            p.note(field, format!("number {n} is given twice"));
            continue;
        }
        aliases.push(n);
    }
    let external_id = p.check(model::text("external_id", i.external_id, 255))?;
    let display_name = p.check(model::text("display_name", i.display_name, 255))?;
    let email = p.check(model::email("email", i.email))?;
    p.finish()?;
    let (
        Some(customer),
        Some(domain),
        Some(username),
        Some(status),
        Some(external_id),
        Some(display_name),
        Some(email),
    ) = (
        customer,
        domain,
        username,
        status,
        external_id,
        display_name,
        email,
    )
    else {
        return Err(Error::internal(anyhow::anyhow!(
            "a subscriber check failed without saying why"
        )));
    };
    let webpassword_hash = match (webpassword.flatten(), old) {
        (None, Some(o)) => o.webpassword_hash.clone(),
        (None, None) | (Some(None), _) => None,
        (Some(Some(pw)), _) => Some(crypto::hash_password(pw).await?),
    };
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
            external_id,
            display_name,
            email,
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
