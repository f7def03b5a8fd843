//! Failed attempts per client address, shared by every node: counted in a window, and past
//! the limit a ban until a given time.

use sqlx::Row;

use super::Conn;
use crate::error::Result;

/// The limits of one face ('login', 'prov').
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max: i64,
    pub window_ms: i64,
    pub ban_ms: i64,
}

/// Counts one failure of `addr`; returns the failures in the current window and the end of
/// the address's ban, if it is banned (by this failure or before).
pub async fn fail(
    c: &mut Conn,
    face: &str,
    addr: &str,
    now_ms: i64,
    l: Limits,
) -> Result<(i64, Option<i64>)> {
    // While a ban runs nothing changes (requests admitted just before it are not counted on
    // top); otherwise a window that began before now - window starts again with this failure,
    // and a ban that ran out may be set again.
    let row = sqlx::query(
        "INSERT INTO strikes (face, addr, failures, window_start_ms, banned_until_ms) \
         VALUES ($1, $2, 1, $3, CASE WHEN $5 <= 1 THEN $3 + $6 END) \
         ON CONFLICT (face, addr) DO UPDATE SET \
           failures = CASE WHEN strikes.banned_until_ms > $3 THEN strikes.failures \
             WHEN strikes.window_start_ms <= $3 - $4 THEN 1 ELSE strikes.failures + 1 END, \
           window_start_ms = CASE WHEN strikes.banned_until_ms > $3 THEN strikes.window_start_ms \
             WHEN strikes.window_start_ms <= $3 - $4 THEN $3 ELSE strikes.window_start_ms END, \
           banned_until_ms = CASE \
             WHEN strikes.banned_until_ms > $3 THEN strikes.banned_until_ms \
             WHEN (CASE WHEN strikes.window_start_ms <= $3 - $4 THEN 1 ELSE strikes.failures + 1 END) >= $5 THEN $3 + $6 \
             ELSE NULL END \
         RETURNING failures, banned_until_ms",
    )
    .bind(face)
    .bind(addr)
    .bind(now_ms)
    .bind(l.window_ms)
    .bind(l.max)
    .bind(l.ban_ms)
    .fetch_one(&mut *c)
    .await?;
    let until: Option<i64> = row.try_get(1)?;
    Ok((row.try_get(0)?, until.filter(|u| *u > now_ms)))
}

/// Addresses banned at `now_ms`: (address, banned until, failures).
pub async fn banned(c: &mut Conn, face: &str, now_ms: i64) -> Result<Vec<(String, i64, i64)>> {
    let rows = sqlx::query(
        "SELECT addr, banned_until_ms, failures FROM strikes WHERE face = $1 AND banned_until_ms > $2 ORDER BY addr",
    )
    .bind(face)
    .bind(now_ms)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}

/// Forgets an address's failures and ban; whether there were any.
pub async fn lift(c: &mut Conn, face: &str, addr: &str) -> Result<bool> {
    Ok(
        sqlx::query("DELETE FROM strikes WHERE face = $1 AND addr = $2")
            .bind(face)
            .bind(addr)
            .execute(&mut *c)
            .await?
            .rows_affected()
            > 0,
    )
}

/// Deletes what no longer counts: no ban running and the window over.
pub async fn prune(c: &mut Conn, face: &str, now_ms: i64, window_ms: i64) -> Result<u64> {
    Ok(sqlx::query(
        "DELETE FROM strikes WHERE face = $1 AND (banned_until_ms IS NULL OR banned_until_ms <= $2) \
         AND window_start_ms <= $3",
    )
    .bind(face)
    .bind(now_ms)
    .bind(now_ms - window_ms)
    .execute(&mut *c)
    .await?
    .rows_affected())
}
