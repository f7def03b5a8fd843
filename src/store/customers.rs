//! Customers (Sipwise "contracts" of type sipaccount/pbxaccount).

use serde::Serialize;
use utoipa::ToSchema;

use super::resellers::Domain;
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

/// What a subscriber's creation reads before anything else, in one statement: its
/// customer (locked as [`for_subscriber`] says), its domain (by name or id) and, if
/// `want_home`, that domain's least-loaded home server.
pub struct ForSubscriber {
    pub customer: Option<Customer>,
    pub domain: Option<Domain>,
    pub home: Option<i64>,
}

/// A domain as a subscriber names it.
pub enum DomainKey<'a> {
    Name(&'a str),
    Id(i64),
}

/// Reads [`ForSubscriber`]. PostgreSQL: the customer row is share-locked by the same
/// statement (after passing [`gate_for_change`]'s gate), so that many subscribers can be
/// added or changed at once but not while the customer itself changes (a termination must
/// not miss one); when `counting` and the customer has a subscriber limit, it is then also
/// locked for counting, so that creations under a limit count one at a time while the others
/// still run side by side. SQLite's single writer already excludes all of it.
pub async fn for_subscriber(
    c: &mut Conn,
    customer_id: i64,
    domain: DomainKey<'_>,
    want_home: bool,
    counting: bool,
) -> Result<ForSubscriber> {
    let locks = super::has_row_locks(c);
    let cols: Vec<String> = CUSTOMER_COLS
        .split(", ")
        .map(|col| format!("c.{col}"))
        .collect();
    let (join, key) = match domain {
        DomainKey::Name(n) => ("d.domain = $2", super::Arg::Text(n.to_string())),
        DomainKey::Id(id) => ("d.id = $2", super::Arg::Int(id)),
    };
    let sql = format!(
        "SELECT {}, d.id AS d_id, d.domain AS d_domain, d.reseller_id AS d_reseller_id, \
         d.create_timestamp AS d_create_timestamp, d.modify_timestamp AS d_modify_timestamp, \
         CASE WHEN $3 = 1 AND d.id IS NOT NULL THEN ({}) END AS home \
         FROM customers c {} LEFT JOIN domains d ON {join} WHERE c.id = $1{}",
        cols.join(", "),
        super::sipservers::least_loaded_home_sql("d.id"),
        // The gate, shared, before the row lock (the join yields no row before it is held).
        if locks {
            format!(
                "CROSS JOIN (SELECT pg_advisory_xact_lock_shared({GATE}, {}) AS gate) g",
                lock_key("$1")
            )
        } else {
            String::new()
        },
        if locks { " FOR SHARE OF c" } else { "" }
    );
    let q = sqlx::query(&sql).bind(customer_id);
    let q = super::bind_all(q, std::slice::from_ref(&key)).bind(i64::from(want_home));
    let Some(row) = q.fetch_optional(&mut *c).await? else {
        return Ok(ForSubscriber {
            customer: None,
            domain: None,
            home: None,
        });
    };
    use sqlx::Row;
    let customer: Customer = sqlx::FromRow::from_row(&row)?;
    let domain = match row.try_get::<Option<i64>, _>("d_id")? {
        Some(id) => Some(Domain {
            id,
            domain: row.try_get("d_domain")?,
            reseller_id: row.try_get("d_reseller_id")?,
            create_timestamp: row.try_get("d_create_timestamp")?,
            modify_timestamp: row.try_get("d_modify_timestamp")?,
        }),
        None => None,
    };
    let home: Option<i64> = row.try_get("home")?;
    if locks && counting && customer.max_subscribers.is_some() {
        lock_for_counting(c, customer_id).await?;
    }
    Ok(ForSubscriber {
        customer: Some(customer),
        domain,
        home,
    })
}

/// Advisory lock classes (two-key form; the leases use the one-key form): the gate before a
/// customer's row, and the count of its subscribers.
const GATE: i32 = 2;
const COUNTING: i32 = 1;

/// The second key of a customer's advisory locks, from an SQL expression of its id (two
/// customers sharing one only wait for each other).
fn lock_key(id: &str) -> String {
    format!("CAST({id} % 2147483647 AS INTEGER)")
}

/// Taken (PostgreSQL) before locking a customer's row for a change of its own: subscriber
/// creations hold that row shared, and a new shared row lock does not wait for a writer
/// already waiting, so under a steady stream of creations the change could wait for ever.
/// They pass this gate shared first ([`for_subscriber`]); the gate queues in order, so
/// creations that come after the change wait behind it.
pub async fn gate_for_change(c: &mut Conn, id: i64) -> Result<()> {
    if super::has_row_locks(c) {
        lock_exclusive(c, GATE, id).await?;
    }
    Ok(())
}

/// Held (PostgreSQL, until the transaction ends) by whoever counts a customer's subscribers
/// against its limit before adding one. Taken after the customer's shared row lock: two
/// creators each holding that one and waiting to upgrade it would wait for each other for
/// ever; this lock is nobody's but theirs. (A customer change takes the row exclusively, so
/// it waits for them all.)
async fn lock_for_counting(c: &mut Conn, id: i64) -> Result<()> {
    lock_exclusive(c, COUNTING, id).await
}

/// A customer's advisory lock of `class`, exclusive, until the transaction ends.
async fn lock_exclusive(c: &mut Conn, class: i32, id: i64) -> Result<()> {
    sqlx::query(&format!(
        "SELECT pg_advisory_xact_lock({class}, {})",
        lock_key("$1")
    ))
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}
