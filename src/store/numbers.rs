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
pub async fn sync_subscriber(
    c: &mut Conn,
    sub_id: i64,
    reseller_id: i64,
    primary: Option<&Number>,
    aliases: &[Number],
) -> Result<()> {
    let existing = for_subscribers(c, &[sub_id]).await?;
    let wanted = wanted(primary, aliases);
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

/// The numbers a subscriber is to have, each with whether it is the primary and the field
/// it came from.
fn wanted<'a>(
    primary: Option<&'a Number>,
    aliases: &'a [Number],
) -> Vec<(&'a Number, bool, String)> {
    primary
        .map(|p| (p, true, "primary_number".to_string()))
        .into_iter()
        .chain(
            aliases
                .iter()
                .enumerate()
                .map(|(i, a)| (a, false, format!("alias_numbers[{i}]"))),
        )
        .collect()
}

/// Gives a subscriber created in this transaction its numbers, created at `ts`, in as few
/// statements as there are hundreds of them; one held by anybody already is refused, naming
/// the field it came from (once all are tried: the caller's transaction is undone anyway).
/// The records come primary first, then the aliases as given.
pub async fn insert_fresh(
    c: &mut Conn,
    sub_id: i64,
    reseller_id: i64,
    primary: Option<&Number>,
    aliases: &[Number],
    ts: &str,
) -> Result<Vec<NumberRec>> {
    let wanted = wanted(primary, aliases);
    let rows: Vec<(i64, i64, &Number, bool)> = wanted
        .iter()
        .map(|(n, p, _)| (sub_id, reseller_id, *n, *p))
        .collect();
    let mut out = insert_rows(c, &rows, ts, " ON CONFLICT (cc, ac, sn) DO NOTHING").await?;
    refuse_missing(&wanted, &out)?;
    // Ids are drawn in VALUES order; RETURNING's row order is not promised.
    out.sort_by_key(|n| (!n.is_primary.0, n.id));
    Ok(out)
}

/// A wanted number that was not added is somebody's already: refused, naming its field (the
/// caller's transaction is undone).
fn refuse_missing(wanted: &[(&Number, bool, String)], added: &[NumberRec]) -> Result<()> {
    match wanted
        .iter()
        .find(|(n, _, _)| !added.iter().any(|a| a.number() == **n))
    {
        Some((n, _, field)) => Err(Error::invalid(field.as_str(), n.taken())),
        None => Ok(()),
    }
}

/// Inserts a subscriber created at `ts` and its numbers in one statement (PostgreSQL: a
/// writing WITH; SQLite: two statements in one query), as [`super::subscribers::insert`] and
/// [`insert_fresh`] would one after the other; its id and the numbers, primary first. Up to
/// 100 numbers (more go through [`insert_fresh`]).
pub async fn insert_subscriber_with(
    c: &mut Conn,
    uuid: &str,
    f: &super::subscribers::SubscriberFields,
    ts: &str,
    primary: Option<&Number>,
    aliases: &[Number],
) -> Result<(i64, Vec<NumberRec>)> {
    let wanted = wanted(primary, aliases);
    if wanted.is_empty() || wanted.len() > 100 {
        let id = super::subscribers::insert(c, uuid, f, ts).await?;
        let nums = insert_fresh(c, id, f.reseller_id, primary, aliases, ts).await?;
        return Ok((id, nums));
    }
    if !super::has_row_locks(c) {
        return insert_subscriber_with_sqlite(c, uuid, f, ts, &wanted).await;
    }
    const SUB: usize = super::subscribers::INSERT_PARAMS;
    let values: Vec<String> = (0..wanted.len())
        .map(|i| {
            let b = SUB + i * 4;
            format!(
                "(${}, ${}, ${}, CAST(${} AS INTEGER))",
                b + 1,
                b + 2,
                b + 3,
                b + 4
            )
        })
        .collect();
    let sql = format!(
        "WITH s AS ({}), \
         n AS (INSERT INTO numbers (cc, ac, sn, reseller_id, subscriber_id, is_primary, create_timestamp) \
               SELECT v.cc, v.ac, v.sn, $3, s.id, v.p, $15 FROM s CROSS JOIN (VALUES {}) AS v (cc, ac, sn, p) \
               ON CONFLICT (cc, ac, sn) DO NOTHING RETURNING {NUMBER_COLS}) \
         SELECT s.id AS subscriber_row_id, n.* FROM s LEFT JOIN n ON TRUE",
        *super::subscribers::INSERT_ONE,
        values.join(", ")
    );
    let mut q = super::subscribers::bind_row(sqlx::query(&sql), uuid, f, ts);
    for (n, p, _) in &wanted {
        q = q
            .bind(n.cc.clone())
            .bind(n.ac.clone())
            .bind(n.sn.clone())
            .bind(Flag::int(*p));
    }
    let rows = q.fetch_all(&mut *c).await?;
    use sqlx::Row;
    let Some(id) = rows
        .first()
        .map(|r| r.try_get::<i64, _>("subscriber_row_id"))
        .transpose()?
    else {
        return Err(Error::internal(anyhow::anyhow!(
            "inserted subscriber not returned"
        )));
    };
    let mut added = Vec::with_capacity(rows.len());
    for r in &rows {
        if r.try_get::<Option<i64>, _>("id")?.is_some() {
            added.push(sqlx::FromRow::from_row(r)?);
        }
    }
    refuse_missing(&wanted, &added)?;
    added.sort_by_key(|n: &NumberRec| (!n.is_primary.0, n.id));
    Ok((id, added))
}

/// [`insert_subscriber_with`] on SQLite, which has no writing WITH: two statements sent as one
/// (one hand-off to SQLite's thread instead of two, while the writer is held), the numbers
/// finding their subscriber by its uuid.
async fn insert_subscriber_with_sqlite(
    c: &mut Conn,
    uuid: &str,
    f: &super::subscribers::SubscriberFields,
    ts: &str,
    wanted: &[(&Number, bool, String)],
) -> Result<(i64, Vec<NumberRec>)> {
    let values: Vec<&str> = wanted
        .iter()
        .map(|_| "(?, ?, ?, ?, (SELECT id FROM subscribers WHERE uuid = ?), ?, ?)")
        .collect();
    let sql = format!(
        "{}; INSERT INTO numbers (cc, ac, sn, reseller_id, subscriber_id, is_primary, create_timestamp) \
         VALUES {} ON CONFLICT (cc, ac, sn) DO NOTHING RETURNING {NUMBER_COLS}",
        *super::subscribers::INSERT_ONE_IN_ORDER,
        values.join(", ")
    );
    let mut q = super::subscribers::bind_row(sqlx::query(&sql), uuid, f, ts);
    for (n, p, _) in wanted {
        q = q
            .bind(n.cc.clone())
            .bind(n.ac.clone())
            .bind(n.sn.clone())
            .bind(f.reseller_id)
            .bind(uuid.to_string())
            .bind(Flag::int(*p))
            .bind(ts.to_string());
    }
    let rows = q.fetch_all(&mut *c).await?;
    // The first statement's one row (the subscriber's id), then the numbers added.
    let Some((first, rest)) = rows.split_first() else {
        return Err(Error::internal(anyhow::anyhow!(
            "inserted subscriber not returned"
        )));
    };
    use sqlx::Row;
    let id = first.try_get::<i64, _>(0)?;
    let mut added = rest
        .iter()
        .map(sqlx::FromRow::from_row)
        .collect::<std::result::Result<Vec<NumberRec>, _>>()?;
    refuse_missing(wanted, &added)?;
    added.sort_by_key(|n: &NumberRec| (!n.is_primary.0, n.id));
    Ok((id, added))
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
            super::params_in_order(c, 1, chunk.len())
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

/// Inserts many numbers (subscriber, reseller, number, primary), created at `ts`, in multi-row
/// statements; their records, in the order of `rows`. Only the ids are read back: the rest is
/// what was written (a bulk import read a whole record back for every number, a tenth of its
/// time).
pub async fn insert_many(
    c: &mut Conn,
    rows: &[(i64, i64, &Number, bool)],
    ts: &str,
) -> Result<Vec<NumberRec>> {
    use sqlx::Row;
    let mut ids = Vec::with_capacity(rows.len());
    let sqlite = !super::has_row_locks(c);
    for chunk in rows.chunks(INSERT_CHUNK) {
        if sqlite {
            let sql = format!(
                "{}; {}",
                insert_sql(c, chunk.len(), "", ""),
                super::sqlite_ids_of_insert("numbers", chunk.len())
            );
            let q = bind_rows(sqlx::query(&sql), chunk, ts);
            ids.extend(super::sqlite_insert_ids(c, q, "numbers", chunk.len()).await?);
            continue;
        }
        let sql = insert_sql(c, chunk.len(), "", "id");
        let rows = bind_rows(sqlx::query(&sql), chunk, ts)
            .fetch_all(&mut *c)
            .await?;
        let mut got = rows
            .iter()
            .map(|r| r.try_get::<i64, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        if got.len() != chunk.len() {
            return Err(Error::internal(anyhow::anyhow!(
                "{} numbers inserted, {} ids returned",
                chunk.len(),
                got.len()
            )));
        }
        // Ids are given in VALUES order; RETURNING's row order is not promised.
        got.sort_unstable();
        ids.extend(got);
    }
    Ok(ids
        .into_iter()
        .zip(rows)
        .map(|(id, (sub, reseller, n, primary))| NumberRec {
            id,
            cc: n.cc.clone(),
            ac: n.ac.clone(),
            sn: n.sn.clone(),
            reseller_id: *reseller,
            subscriber_id: Some(*sub),
            is_primary: Flag(*primary),
            is_devid: Flag(false),
            create_timestamp: ts.to_string(),
        })
        .collect())
}

const INSERT_CHUNK: usize = 100;

/// An insert of `n` numbers, `conflict` (an `ON CONFLICT` clause, or nothing) after the rows,
/// returning `returning` (nothing if empty).
fn insert_sql(c: &Conn, n: usize, conflict: &str, returning: &str) -> String {
    const COLS: usize = 7;
    let returning = if returning.is_empty() {
        String::new()
    } else {
        format!(" RETURNING {returning}")
    };
    format!(
        "INSERT INTO numbers (cc, ac, sn, reseller_id, subscriber_id, is_primary, create_timestamp) VALUES {}{conflict}{returning}",
        (0..n)
            .map(|i| format!("({})", super::params_in_order(c, i * COLS + 1, COLS)))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn bind_rows<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    rows: &[(i64, i64, &Number, bool)],
    ts: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for (sub, reseller, n, primary) in rows {
        q = q
            .bind(n.cc.clone())
            .bind(n.ac.clone())
            .bind(n.sn.clone())
            .bind(*reseller)
            .bind(*sub)
            .bind(Flag::int(*primary))
            .bind(ts.to_string());
    }
    q
}

/// Numbers inserted as [`insert_many`] would, with `conflict` (an `ON CONFLICT` clause) after
/// each statement's rows; the records of the rows inserted.
async fn insert_rows(
    c: &mut Conn,
    rows: &[(i64, i64, &Number, bool)],
    ts: &str,
    conflict: &str,
) -> Result<Vec<NumberRec>> {
    let mut out = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(INSERT_CHUNK) {
        let sql = insert_sql(c, chunk.len(), conflict, NUMBER_COLS);
        for r in bind_rows(sqlx::query(&sql), chunk, ts)
            .fetch_all(&mut *c)
            .await?
        {
            out.push(sqlx::FromRow::from_row(&r)?);
        }
    }
    Ok(out)
}
