//! Numbers: E.164 numbers assigned to subscribers (one primary, any aliases). A number is
//! unique across the system; a terminated subscriber's numbers are released (deleted here,
//! kept as a snapshot on the subscriber for billing).

use serde::Serialize;
use utoipa::ToSchema;

use super::{now, Conn, Flag};
use crate::error::{Error, Result};
use crate::model::Number;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct NumberRec {
    pub id: i64,
    pub cc: String,
    pub ac: String,
    pub sn: String,
    pub reseller_id: i64,
    pub subscriber_id: Option<i64>,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub is_primary: Flag,
    /// A device id: an alias that rings one device (NGCP's is_devid).
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub is_devid: Flag,
    pub create_timestamp: String,
}

pub const NUMBER_COLS: &str =
    "id, cc, ac, sn, reseller_id, subscriber_id, is_primary, is_devid, create_timestamp";

impl NumberRec {
    pub fn number(&self) -> Number {
        Number {
            cc: self.cc.clone(),
            ac: self.ac.clone(),
            sn: self.sn.clone(),
        }
    }
}

pub async fn for_subscribers(c: &mut Conn, ids: &[i64]) -> Result<Vec<NumberRec>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let ph: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!("SELECT {NUMBER_COLS} FROM numbers WHERE subscriber_id IN ({}) ORDER BY is_primary DESC, id", ph.join(", "));
    let mut q = sqlx::query(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    let rows = q.fetch_all(&mut *c).await?;
    Ok(rows
        .iter()
        .map(sqlx::FromRow::from_row)
        .collect::<Result<Vec<_>, _>>()?)
}

/// Makes the subscriber's numbers exactly `primary` + `aliases`: removes the others,
/// keeps the ones it has, adds new ones. A number held by anybody else is refused,
/// naming the field it came from.
/// `fresh`: the subscriber was created in this transaction (it has no numbers yet).
pub async fn sync_subscriber(
    c: &mut Conn,
    sub_id: i64,
    reseller_id: i64,
    primary: Option<&Number>,
    aliases: &[Number],
    fresh: bool,
) -> Result<()> {
    let existing = if fresh {
        Vec::new()
    } else {
        for_subscribers(c, &[sub_id]).await?
    };
    let wanted: Vec<(&Number, bool, String)> = primary
        .map(|p| (p, true, "primary_number".to_string()))
        .into_iter()
        .chain(
            aliases
                .iter()
                .enumerate()
                .map(|(i, a)| (a, false, format!("alias_numbers[{i}]"))),
        )
        .collect();
    for e in &existing {
        let n = e.number();
        if !wanted.iter().any(|(w, _, _)| **w == n) {
            sqlx::query("DELETE FROM numbers WHERE id = $1")
                .bind(e.id)
                .execute(&mut *c)
                .await?;
        }
    }
    for (n, is_primary, field) in wanted {
        match existing.iter().find(|e| e.number() == *n) {
            Some(e) if e.is_primary.0 == is_primary => {}
            Some(e) => {
                sqlx::query("UPDATE numbers SET is_primary = $1 WHERE id = $2")
                    .bind(Flag::int(is_primary))
                    .bind(e.id)
                    .execute(&mut *c)
                    .await?;
            }
            None => {
                // One statement: the unique index says whether the number is anyone's.
                if !insert_if_free(c, sub_id, reseller_id, n, is_primary).await? {
                    return Err(Error::invalid(field, n.taken()));
                }
            }
        }
    }
    Ok(())
}

/// Adds a number unless it exists already (whoever has it); whether it was added.
async fn insert_if_free(
    c: &mut Conn,
    sub_id: i64,
    reseller_id: i64,
    n: &Number,
    primary: bool,
) -> Result<bool> {
    let row = sqlx::query(
        "INSERT INTO numbers (cc, ac, sn, reseller_id, subscriber_id, is_primary, create_timestamp) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cc, ac, sn) DO NOTHING RETURNING id",
    )
    .bind(n.cc.clone())
    .bind(n.ac.clone())
    .bind(n.sn.clone())
    .bind(reseller_id)
    .bind(sub_id)
    .bind(Flag::int(primary))
    .bind(now())
    .fetch_optional(&mut *c)
    .await?;
    Ok(row.is_some())
}

pub async fn set_owner(c: &mut Conn, id: i64, subscriber_id: i64) -> Result<()> {
    sqlx::query("UPDATE numbers SET subscriber_id = $1 WHERE id = $2")
        .bind(subscriber_id)
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Which of these numbers (as cc·ac·sn digits) exist already.
pub async fn taken(c: &mut Conn, digits: &[String]) -> Result<std::collections::HashSet<String>> {
    let mut out = std::collections::HashSet::new();
    for chunk in digits.chunks(100) {
        let sql = format!(
            "SELECT cc || ac || sn FROM numbers WHERE (cc || ac || sn) IN ({})",
            super::placeholders(1, chunk.len())
        );
        let mut q = sqlx::query(&sql);
        for d in chunk {
            q = q.bind(d.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            use sqlx::Row;
            out.insert(r.try_get(0)?);
        }
    }
    Ok(out)
}

/// Inserts many numbers (subscriber, reseller, number, primary) in multi-row statements.
pub async fn insert_many(
    c: &mut Conn,
    rows: &[(i64, i64, &Number, bool)],
) -> Result<Vec<NumberRec>> {
    const COLS: usize = 7;
    let ts = now();
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(100) {
        let sql = format!(
            "INSERT INTO numbers (cc, ac, sn, reseller_id, subscriber_id, is_primary, create_timestamp) VALUES {} RETURNING {NUMBER_COLS}",
            (0..chunk.len())
                .map(|i| format!("({})", super::placeholders(i * COLS + 1, COLS)))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query(&sql);
        for (sub, reseller, n, primary) in chunk {
            q = q
                .bind(n.cc.clone())
                .bind(n.ac.clone())
                .bind(n.sn.clone())
                .bind(*reseller)
                .bind(*sub)
                .bind(Flag::int(*primary))
                .bind(ts.clone());
        }
        for r in q.fetch_all(&mut *c).await? {
            out.push(sqlx::FromRow::from_row(&r)?);
        }
    }
    Ok(out)
}
