//! Contacts: customer contacts (belong to a reseller) and system contacts (no reseller).

use serde::Serialize;
use utoipa::ToSchema;

use super::{insert_id, now, Conn};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Contact {
    pub id: i64,
    pub reseller_id: Option<i64>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub phonenumber: Option<String>,
    pub mobilenumber: Option<String>,
    pub external_id: Option<String>,
    /// active, or terminated (deleted while a terminated customer or contract still names it).
    #[serde(skip)]
    pub status: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

pub const CONTACT_COLS: &str = "id, reseller_id, firstname, lastname, email, company, street, postcode, city, country, phonenumber, mobilenumber, external_id, status, create_timestamp, modify_timestamp";

/// The writable fields, validated.
#[derive(Debug, Clone, Default)]
pub struct ContactFields {
    pub reseller_id: Option<i64>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub email: Option<String>,
    pub company: Option<String>,
    pub street: Option<String>,
    pub postcode: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub phonenumber: Option<String>,
    pub mobilenumber: Option<String>,
    pub external_id: Option<String>,
}

pub async fn save(c: &mut Conn, id: Option<i64>, f: &ContactFields) -> Result<i64> {
    let sql = match id {
        None => "INSERT INTO contacts (reseller_id, firstname, lastname, email, company, street, postcode, city, country, phonenumber, mobilenumber, external_id, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
        Some(_) => "UPDATE contacts SET reseller_id = $1, firstname = $2, lastname = $3, email = $4, company = $5, street = $6, postcode = $7, \
                    city = $8, country = $9, phonenumber = $10, mobilenumber = $11, external_id = $12, modify_timestamp = $13 WHERE id = $14 RETURNING id",
    };
    let mut q = sqlx::query(sql)
        .bind(f.reseller_id)
        .bind(f.firstname.clone())
        .bind(f.lastname.clone())
        .bind(f.email.clone())
        .bind(f.company.clone())
        .bind(f.street.clone())
        .bind(f.postcode.clone())
        .bind(f.city.clone())
        .bind(f.country.clone())
        .bind(f.phonenumber.clone())
        .bind(f.mobilenumber.clone())
        .bind(f.external_id.clone())
        .bind(now());
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}
