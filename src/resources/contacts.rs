//! Customer contacts (a reseller's, identifying customers) and system contacts (admin-only,
//! for resellers themselves). One table; a system contact has no reseller.

use async_trait::async_trait;
use serde::Deserialize;
use utoipa::ToSchema;

use super::resellers::check_reseller;
use crate::app::App;
use crate::error::{Error, Problems, Result};
use crate::model::{self, Actor};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::contacts::{save, Contact, ContactFields, CONTACT_COLS};
use crate::store::{delete_row, exists, get_as, list_as, Conn};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactInput {
    /// Customer contacts only: required for admins, a reseller's own otherwise.
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub reseller_id: Option<i64>,
    #[serde(default)]
    pub firstname: Option<String>,
    #[serde(default)]
    pub lastname: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub company: Option<String>,
    #[serde(default)]
    pub street: Option<String>,
    #[serde(default)]
    pub postcode: Option<String>,
    #[serde(default)]
    pub city: Option<String>,
    #[serde(default)]
    pub country: Option<String>,
    #[serde(default)]
    pub phonenumber: Option<String>,
    #[serde(default)]
    pub mobilenumber: Option<String>,
    #[serde(default)]
    pub external_id: Option<String>,
}

fn fields(i: ContactInput, reseller_id: Option<i64>) -> Result<ContactFields> {
    // Every field's problem at once, in the order the fields were always checked.
    let mut p = Problems::default();
    fn t(p: &mut Problems, f: &str, v: Option<String>) -> Result<Option<String>> {
        p.value(model::text(f, v, 255))
    }
    let firstname = t(&mut p, "firstname", i.firstname)?;
    let lastname = t(&mut p, "lastname", i.lastname)?;
    let email = p.value(model::email("email", i.email))?;
    let company = t(&mut p, "company", i.company)?;
    let street = t(&mut p, "street", i.street)?;
    let postcode = t(&mut p, "postcode", i.postcode)?;
    let city = t(&mut p, "city", i.city)?;
    let country = t(&mut p, "country", i.country)?;
    let phonenumber = t(&mut p, "phonenumber", i.phonenumber)?;
    let mobilenumber = t(&mut p, "mobilenumber", i.mobilenumber)?;
    let external_id = t(&mut p, "external_id", i.external_id)?;
    if email.is_none() && !p.names("email") {
        p.note("email", "is required");
    }
    p.finish()?;
    Ok(ContactFields {
        reseller_id,
        firstname,
        lastname,
        email,
        company,
        street,
        postcode,
        city,
        country,
        phonenumber,
        mobilenumber,
        external_id,
    })
}

/// A system contact belongs to no reseller: a `reseller_id` sent for one is ignored (NGCP's
/// clients send what they read) or, read strictly, refused.
fn no_reseller(given: Option<i64>) -> Result<()> {
    match given {
        None => Ok(()),
        Some(_) if !crate::resources::handling::strict() => {
            crate::resources::handling::ignored("body:reseller_id");
            Ok(())
        }
        Some(_) => Err(Error::invalid(
            "reseller_id",
            "a system contact belongs to no reseller",
        )),
    }
}

/// Both contact collections; `SYSTEM` selects system contacts.
pub struct Contacts<const SYSTEM: bool>;
pub type CustomerContacts = Contacts<false>;
pub type SystemContacts = Contacts<true>;

#[async_trait]
impl<const SYSTEM: bool> Resource for Contacts<SYSTEM> {
    const NAME: &'static str = if SYSTEM {
        "systemcontacts"
    } else {
        "customercontacts"
    };
    const SUMMARY: &'static str = if SYSTEM {
        "System contacts (of resellers and the platform; admins only)"
    } else {
        "Customer contacts: who a customer is"
    };
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("email", "email, * wildcard"),
        ("external_id", "external id, * wildcard"),
        ("firstname", "first name, * wildcard"),
        ("lastname", "last name, * wildcard"),
        ("company", "company, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("email", "email"),
        ("firstname", "firstname"),
        ("lastname", "lastname"),
        ("company", "company"),
        ("city", "city"),
        ("country", "country"),
        ("external_id", "external_id"),
        ("reseller_id", "reseller_id"),
        ("create_timestamp", "create_timestamp"),
        ("modify_timestamp", "modify_timestamp"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = if SYSTEM {
        &["email"]
    } else {
        &["email", "reseller_id"]
    };
    type Repr = Contact;
    type Input = ContactInput;

    const ADMIN_ONLY: bool = SYSTEM;
    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Contact>, Option<i64>)> {
        let mut w = q.where_scoped(
            actor,
            &["email", "external_id", "firstname", "lastname", "company"],
            &["reseller_id"],
        )?;
        w.raw(if SYSTEM {
            "reseller_id IS NULL AND status <> 'terminated'"
        } else {
            "reseller_id IS NOT NULL AND status <> 'terminated'"
        });
        list_as(c, CONTACT_COLS, "contacts", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Contact>> {
        let r: Option<Contact> = get_as(c, CONTACT_COLS, "contacts", id, lock).await?;
        Ok(r.filter(|r| r.reseller_id.is_none() == SYSTEM))
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, mut i: ContactInput) -> Result<Created> {
        let reseller = if SYSTEM {
            no_reseller(i.reseller_id)?;
            None
        } else {
            let r = actor.owning_reseller(i.reseller_id.take())?;
            check_reseller(c, r).await?;
            Some(r)
        };
        Ok(save(c, None, &fields(i, reseller)?).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &Contact,
        mut i: ContactInput,
    ) -> Result<()> {
        let reseller = match (SYSTEM, actor.scope(), i.reseller_id.take()) {
            (true, _, r) => {
                no_reseller(r)?;
                None
            }
            (false, None, Some(r)) if Some(r) != old.reseller_id => {
                if exists(c, "customers", "contact_id = $1", id).await? {
                    return Err(Error::invalid(
                        "reseller_id",
                        "cannot change while customers use this contact",
                    ));
                }
                check_reseller(c, r).await?;
                Some(r)
            }
            _ => old.reseller_id,
        };
        save(c, Some(id), &fields(i, reseller)?).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &Contact) -> Result<()> {
        if exists(
            c,
            "customers",
            "contact_id = $1 AND status <> 'terminated'",
            id,
        )
        .await?
            || exists(
                c,
                "resellers",
                "contact_id = $1 AND status <> 'terminated'",
                id,
            )
            .await?
            || exists(
                c,
                "contracts",
                "contact_id = $1 AND status <> 'terminated'",
                id,
            )
            .await?
        {
            return Err(Error::Locked(format!("contact {id} is still in use")));
        }
        // Named only by what is terminated: gone from the API, kept for those records.
        if exists(c, "customers", "contact_id = $1", id).await?
            || exists(c, "resellers", "contact_id = $1", id).await?
            || exists(c, "contracts", "contact_id = $1", id).await?
            || exists(c, "subscribers", "contact_id = $1", id).await?
        {
            sqlx::query(
                "UPDATE contacts SET status = 'terminated', modify_timestamp = $1 WHERE id = $2",
            )
            .bind(crate::store::now())
            .bind(id)
            .execute(&mut *c)
            .await?;
            return Ok(());
        }
        delete_row(c, "contacts", id).await
    }
    fn gone(r: &Contact) -> bool {
        r.status == "terminated"
    }
    fn id(r: &Contact) -> i64 {
        r.id
    }
    fn reseller_of(r: &Contact) -> Option<i64> {
        r.reseller_id
    }
    /// A system contact has no reseller: NGCP shows none.
    fn view(r: &Contact, _: &Actor) -> serde_json::Map<String, serde_json::Value> {
        let mut m = crate::resources::to_map(r);
        if SYSTEM {
            m.remove("reseller_id");
        }
        m
    }
    fn visible(r: &Contact, actor: &Actor) -> bool {
        match actor.scope() {
            None => true,
            Some(s) => !SYSTEM && r.reseller_id == Some(s),
        }
    }
}
