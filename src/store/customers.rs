//! Customers (Sipwise "contracts" of type sipaccount/pbxaccount).

use serde::Serialize;
use utoipa::ToSchema;

use super::{insert_id, now, Conn};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Customer {
    pub id: i64,
    pub reseller_id: i64,
    pub contact_id: i64,
    pub billing_profile_id: i64,
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub external_id: Option<String>,
    pub max_subscribers: Option<i64>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    pub terminate_timestamp: Option<String>,
}

pub const CUSTOMER_COLS: &str = "id, reseller_id, contact_id, billing_profile_id, type, status, external_id, max_subscribers, create_timestamp, modify_timestamp, terminate_timestamp";

pub struct CustomerFields {
    pub reseller_id: i64,
    pub contact_id: i64,
    pub billing_profile_id: i64,
    pub kind: String,
    pub status: String,
    pub external_id: Option<String>,
    pub max_subscribers: Option<i64>,
}

pub async fn save(c: &mut Conn, id: Option<i64>, f: &CustomerFields) -> Result<i64> {
    let t = now();
    let term = (f.status == "terminated").then(|| t.clone());
    let sql = match id {
        None => "INSERT INTO customers (reseller_id, contact_id, billing_profile_id, type, status, external_id, max_subscribers, create_timestamp, modify_timestamp, terminate_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9) RETURNING id",
        Some(_) => "UPDATE customers SET reseller_id = $1, contact_id = $2, billing_profile_id = $3, type = $4, status = $5, external_id = $6, \
                    max_subscribers = $7, modify_timestamp = $8, terminate_timestamp = $9 WHERE id = $10 RETURNING id",
    };
    let mut q = sqlx::query(sql)
        .bind(f.reseller_id)
        .bind(f.contact_id)
        .bind(f.billing_profile_id)
        .bind(f.kind.clone())
        .bind(f.status.clone())
        .bind(f.external_id.clone())
        .bind(f.max_subscribers)
        .bind(t)
        .bind(term);
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}

/// Subscribers of a customer that are not terminated.
pub async fn live_subscriber_count(c: &mut Conn, customer_id: i64) -> Result<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM subscribers WHERE customer_id = $1 AND status <> 'terminated'",
    )
    .bind(customer_id)
    .fetch_one(&mut *c)
    .await?;
    Ok(sqlx::Row::try_get(&row, 0)?)
}

pub async fn live_subscriber_ids(c: &mut Conn, customer_id: i64) -> Result<Vec<i64>> {
    let rows = sqlx::query(
        "SELECT id FROM subscribers WHERE customer_id = $1 AND status <> 'terminated' ORDER BY id",
    )
    .bind(customer_id)
    .fetch_all(&mut *c)
    .await?;
    rows.iter().map(|r| Ok(sqlx::Row::try_get(r, 0)?)).collect()
}

/// Reads a customer for adding a subscriber to it. PostgreSQL: a shared row lock, so that
/// many subscribers can be added at once but not while the customer itself changes (a
/// termination must not miss one); an exclusive one when `max_subscribers` must be counted.
/// The mode is chosen from an unlocked read and the row is locked once: taking FOR SHARE and
/// then FOR UPDATE would let two creators each hold the first and wait for the other.
/// SQLite's single writer already excludes both.
pub async fn get_for_subscriber(c: &mut Conn, id: i64) -> Result<Option<Customer>> {
    if !super::has_row_locks(c) {
        return super::get_as(c, CUSTOMER_COLS, "customers", id, false).await;
    }
    let Some(peek) = super::get_as::<Customer>(c, CUSTOMER_COLS, "customers", id, false).await?
    else {
        return Ok(None);
    };
    let mode = if peek.max_subscribers.is_some() {
        "FOR UPDATE"
    } else {
        "FOR SHARE"
    };
    let row = sqlx::query(&format!(
        "SELECT {CUSTOMER_COLS} FROM customers WHERE id = $1 {mode}"
    ))
    .bind(id)
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.as_ref().map(sqlx::FromRow::from_row).transpose()?)
}
