//! Subscribers: the SIP accounts.

use serde::Serialize;
use sqlx::FromRow;

use super::{now, Conn, Flag, Page, Where};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct SubscriberRow {
    pub id: i64,
    pub uuid: String,
    pub customer_id: i64,
    pub reseller_id: i64,
    pub domain_id: i64,
    pub domain: String,
    pub username: String,
    pub password_enc: Option<String>,
    pub webusername: Option<String>,
    pub webpassword_hash: Option<String>,
    pub status: String,
    pub lock_level: i64,
    #[sqlx(try_from = "i64")]
    pub administrative: Flag,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub released_numbers: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    pub terminate_timestamp: Option<String>,
    pub home_server_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub profile_set_id: Option<i64>,
    pub profile_id: Option<i64>,
}

const COLS: &str = "id, uuid, customer_id, reseller_id, domain_id, domain, username, password_enc, webusername, \
    webpassword_hash, status, lock_level, administrative, external_id, display_name, email, released_numbers, \
    create_timestamp, modify_timestamp, terminate_timestamp, home_server_id, contact_id, profile_set_id, profile_id";
/// Subscribers with their domain name; filters and ordering name plain columns of `v`.
pub const FROM: &str =
    "(SELECT s.*, d.domain AS domain FROM subscribers s JOIN domains d ON d.id = s.domain_id) v";

pub async fn get(c: &mut Conn, id: i64, lock: bool) -> Result<Option<SubscriberRow>> {
    super::get_from_view(c, "subscribers", COLS, FROM, id, lock).await
}

pub async fn list(
    c: &mut Conn,
    w: &Where,
    page: &Page,
) -> Result<(Vec<SubscriberRow>, Option<i64>)> {
    super::list_as(c, COLS, FROM, w, page).await
}

pub struct SubscriberFields {
    pub customer_id: i64,
    pub reseller_id: i64,
    pub domain_id: i64,
    pub username: String,
    pub password_enc: Option<String>,
    pub webusername: Option<String>,
    pub webpassword_hash: Option<String>,
    pub status: String,
    pub lock_level: i64,
    pub administrative: bool,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub home_server_id: Option<i64>,
    pub contact_id: Option<i64>,
    pub profile_set_id: Option<i64>,
    pub profile_id: Option<i64>,
}

/// Inserts one subscriber created at `ts` (its creation and modification time).
pub async fn insert(c: &mut Conn, uuid: &str, f: &SubscriberFields, ts: &str) -> Result<i64> {
    let ids = insert_many(c, &[(uuid.to_string(), f)], ts).await?;
    Ok(ids[0])
}

pub async fn update(c: &mut Conn, id: i64, f: &SubscriberFields) -> Result<()> {
    let q = sqlx::query(
        "UPDATE subscribers SET customer_id = $1, reseller_id = $2, domain_id = $3, username = $4, password_enc = $5, webusername = $6, \
         webpassword_hash = $7, status = $8, lock_level = $9, administrative = $10, external_id = $11, display_name = $12, email = $13, \
         modify_timestamp = $14, home_server_id = $16, contact_id = $17, profile_set_id = $18, profile_id = $19 WHERE id = $15",
    );
    bind_own(q, f)
        .bind(now())
        .bind(id)
        .bind(f.home_server_id)
        .bind(f.contact_id)
        .bind(f.profile_set_id)
        .bind(f.profile_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn set_status(c: &mut Conn, id: i64, status: &str) -> Result<()> {
    sqlx::query("UPDATE subscribers SET status = $1, modify_timestamp = $2 WHERE id = $3")
        .bind(status.to_string())
        .bind(now())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Terminates: the record stays (billing needs it, the id is never reused), the numbers are
/// released and remembered in `released_numbers`.
pub async fn terminate(c: &mut Conn, id: i64, released_numbers: &str) -> Result<()> {
    let t = now();
    sqlx::query("DELETE FROM numbers WHERE subscriber_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("UPDATE subscribers SET status = 'terminated', released_numbers = $1, modify_timestamp = $2, terminate_timestamp = $2 WHERE id = $3")
        .bind(released_numbers.to_string())
        .bind(t)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

const INSERT_COLS: &str = "uuid, customer_id, reseller_id, domain_id, username, password_enc, webusername, \
    webpassword_hash, status, lock_level, administrative, external_id, display_name, email, create_timestamp, \
    home_server_id, modify_timestamp, contact_id, profile_set_id, profile_id";

/// How many parameters one row of [`INSERT_COLS`] takes, bound by [`bind_row`] (the creation
/// time twice: it is the modification time too).
pub const INSERT_PARAMS: usize = 20;

/// One subscriber's insert, its parameters `$1` to `$20` bound by [`bind_row`] (`$3` is the
/// reseller, `$15` the creation time), returning its id.
pub static INSERT_ONE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO subscribers ({INSERT_COLS}) VALUES ({}) RETURNING id",
        super::placeholders(1, INSERT_PARAMS)
    )
});

/// [`INSERT_ONE`] with anonymous parameters (SQLite, see `params_in_order`): the statement can
/// be followed by others in the same query.
pub static INSERT_ONE_IN_ORDER: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "INSERT INTO subscribers ({INSERT_COLS}) VALUES ({}) RETURNING id",
        vec!["?"; INSERT_PARAMS].join(", ")
    )
});

/// Binds the subscriber's own fields, `customer_id` to `email`, in column order (an insert and
/// an update share them).
fn bind_own<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    f: &SubscriberFields,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    q.bind(f.customer_id)
        .bind(f.reseller_id)
        .bind(f.domain_id)
        .bind(f.username.clone())
        .bind(f.password_enc.clone())
        .bind(f.webusername.clone())
        .bind(f.webpassword_hash.clone())
        .bind(f.status.clone())
        .bind(f.lock_level)
        .bind(Flag::int(f.administrative))
        .bind(f.external_id.clone())
        .bind(f.display_name.clone())
        .bind(f.email.clone())
}

/// Binds one row of [`INSERT_COLS`]: [`INSERT_PARAMS`] parameters, the creation time also as
/// the modification time.
pub fn bind_row<'q>(
    q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    uuid: &str,
    f: &SubscriberFields,
    ts: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    bind_own(q.bind(uuid.to_string()), f)
        .bind(ts.to_string())
        .bind(f.home_server_id)
        .bind(ts.to_string())
        .bind(f.contact_id)
        .bind(f.profile_set_id)
        .bind(f.profile_id)
}

/// Inserts many subscribers created at `ts` in multi-row statements (bulk import); ids in
/// input order.
pub async fn insert_many(
    c: &mut Conn,
    rows: &[(String, &SubscriberFields)],
    ts: &str,
) -> Result<Vec<i64>> {
    // Every parameter bound in turn, so SQLite's are anonymous (see `params_in_order`).
    const COLS: usize = INSERT_PARAMS;
    let sqlite = !super::has_row_locks(c);
    let mut ids = std::collections::HashMap::with_capacity(rows.len());
    let mut in_order = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(50) {
        let values = (0..chunk.len())
            .map(|i| format!("({})", super::params_in_order(c, i * COLS + 1, COLS)))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = if sqlite {
            format!(
                "INSERT INTO subscribers ({INSERT_COLS}) VALUES {values}; {}",
                super::sqlite_ids_of_insert("subscribers", chunk.len())
            )
        } else {
            format!("INSERT INTO subscribers ({INSERT_COLS}) VALUES {values} RETURNING id, uuid")
        };
        let mut q = sqlx::query(&sql);
        for (uuid, f) in chunk {
            q = bind_row(q, uuid, f, ts);
        }
        if sqlite {
            in_order.extend(super::sqlite_insert_ids(c, q, "subscribers", chunk.len()).await?);
            continue;
        }
        for r in q.fetch_all(&mut *c).await? {
            use sqlx::Row;
            ids.insert(r.try_get::<String, _>(1)?, r.try_get::<i64, _>(0)?);
        }
    }
    if sqlite {
        return Ok(in_order);
    }
    rows.iter()
        .map(|(uuid, _)| {
            ids.get(uuid).copied().ok_or_else(|| {
                crate::error::Error::internal(anyhow::anyhow!(
                    "inserted subscriber {uuid} not returned"
                ))
            })
        })
        .collect()
}

/// A name unique per domain among live subscribers.
#[derive(Clone, Copy)]
pub enum UniqueName {
    Username,
    Webusername,
}

/// Which of the names given per domain (domain id → names) are taken by live subscribers of
/// that domain, as (domain id, name).
pub async fn taken_names(
    c: &mut Conn,
    which: UniqueName,
    by_domain: &std::collections::HashMap<i64, Vec<String>>,
) -> Result<std::collections::HashSet<(i64, String)>> {
    let column = match which {
        UniqueName::Username => "username",
        UniqueName::Webusername => "webusername",
    };
    let mut out = std::collections::HashSet::new();
    for (domain_id, names) in by_domain {
        for n in taken_in(c, column, *domain_id, names).await? {
            out.insert((*domain_id, n));
        }
    }
    Ok(out)
}

async fn taken_in(
    c: &mut Conn,
    column: &'static str,
    domain_id: i64,
    names: &[String],
) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for chunk in names.chunks(100) {
        let sql = format!(
            "SELECT {column} FROM subscribers WHERE domain_id = $1 AND status <> 'terminated' AND {column} IN ({})",
            super::placeholders(2, chunk.len())
        );
        let mut q = sqlx::query(&sql).bind(domain_id);
        for n in chunk {
            q = q.bind(n.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            use sqlx::Row;
            out.insert(r.try_get(0)?);
        }
    }
    Ok(out)
}
