//! Resellers, domains and billing profiles: the small ownership objects.

use serde::Serialize;
use utoipa::ToSchema;

use super::{insert_id, now, Conn, Flag};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Reseller {
    pub id: i64,
    pub name: String,
    pub status: String,
    pub contact_id: Option<i64>,
    /// NGCP's reseller contract (a contract of type reseller).
    pub contract_id: Option<i64>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const RESELLER_COLS: &str =
    "id, name, status, contact_id, contract_id, create_timestamp, modify_timestamp";

pub async fn insert_reseller(
    c: &mut Conn,
    name: &str,
    status: &str,
    contact_id: Option<i64>,
    contract_id: Option<i64>,
) -> Result<i64> {
    let t = now();
    insert_id(
        sqlx::query("INSERT INTO resellers (name, status, contact_id, contract_id, create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $4, $5, $5) RETURNING id")
            .bind(name.to_string())
            .bind(status.to_string())
            .bind(contact_id)
            .bind(contract_id)
            .bind(t),
        c,
    )
    .await
}

pub async fn update_reseller(
    c: &mut Conn,
    id: i64,
    name: &str,
    status: &str,
    contact_id: Option<i64>,
    contract_id: Option<i64>,
) -> Result<()> {
    sqlx::query("UPDATE resellers SET name = $1, status = $2, contact_id = $3, contract_id = $4, modify_timestamp = $5 WHERE id = $6")
        .bind(name.to_string())
        .bind(status.to_string())
        .bind(contact_id)
        .bind(contract_id)
        .bind(now())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Domain {
    pub id: i64,
    pub domain: String,
    pub reseller_id: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const DOMAIN_COLS: &str = "id, domain, reseller_id, create_timestamp, modify_timestamp";

pub async fn insert_domain(c: &mut Conn, domain: &str, reseller_id: i64) -> Result<i64> {
    insert_id(
        sqlx::query("INSERT INTO domains (domain, reseller_id, create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $3) RETURNING id")
            .bind(domain.to_string())
            .bind(reseller_id)
            .bind(now()),
        c,
    )
    .await
}

pub async fn domain_by_name(c: &mut Conn, domain: &str) -> Result<Option<Domain>> {
    let row = sqlx::query(&format!(
        "SELECT {DOMAIN_COLS} FROM domains WHERE domain = $1"
    ))
    .bind(domain.to_string())
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.as_ref().map(sqlx::FromRow::from_row).transpose()?)
}

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct BillingProfile {
    pub id: i64,
    pub handle: String,
    pub name: String,
    pub reseller_id: i64,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub prepaid: Flag,
    /// active, or terminated (then gone from the API).
    pub status: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const BILLING_COLS: &str =
    "id, handle, name, reseller_id, prepaid, status, create_timestamp, modify_timestamp";

pub struct BillingFields<'a> {
    pub handle: &'a str,
    pub name: &'a str,
    pub reseller_id: i64,
    pub prepaid: bool,
    pub status: &'a str,
}

pub async fn upsert_billing_profile(
    c: &mut Conn,
    id: Option<i64>,
    f: &BillingFields<'_>,
) -> Result<i64> {
    match id {
        None => {
            insert_id(
                sqlx::query("INSERT INTO billing_profiles (handle, name, reseller_id, prepaid, status, create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id")
                    .bind(f.handle.to_string())
                    .bind(f.name.to_string())
                    .bind(f.reseller_id)
                    .bind(Flag::int(f.prepaid))
                    .bind(f.status.to_string())
                    .bind(now()),
                c,
            )
            .await
        }
        Some(id) => {
            sqlx::query("UPDATE billing_profiles SET handle = $1, name = $2, reseller_id = $3, prepaid = $4, status = $5, modify_timestamp = $6 WHERE id = $7")
                .bind(f.handle.to_string())
                .bind(f.name.to_string())
                .bind(f.reseller_id)
                .bind(Flag::int(f.prepaid))
                .bind(f.status.to_string())
                .bind(now())
                .bind(id)
                .execute(&mut *c)
                .await?;
            Ok(id)
        }
    }
}
