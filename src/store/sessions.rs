//! Web UI sessions, shared by every node: the token's SHA-256, the admin, the form token and
//! when the session began and was last used.

use std::time::Duration;

use sqlx::Row;

use super::Conn;
use crate::error::Result;
use crate::model::{Actor, ActorKind, Role};

/// Idle time after which a session ends, and its longest life however busy.
pub const IDLE: Duration = Duration::from_secs(8 * 3600);
pub const MAX_LIFE: Duration = Duration::from_secs(24 * 3600);

/// Expired sessions' cut-offs at `now_ms`: (last used before, begun before).
pub fn cutoffs(now_ms: i64) -> (i64, i64) {
    (
        now_ms - IDLE.as_millis() as i64,
        now_ms - MAX_LIFE.as_millis() as i64,
    )
}

pub async fn create(
    c: &mut Conn,
    token_hash: &str,
    admin_id: i64,
    csrf: &str,
    now_ms: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO ui_sessions (token_hash, admin_id, csrf, created_ms, seen_ms) VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(token_hash)
    .bind(admin_id)
    .bind(csrf)
    .bind(now_ms)
    .execute(&mut *c)
    .await?;
    Ok(())
}

/// A live session: its admin as the database has them now (active, in an active reseller),
/// its form token and when it was last used. `None` when it expired (idle since before
/// `idle_after_ms`, or begun before `born_after_ms`), ended, or its admin can no longer log in.
pub async fn get(
    c: &mut Conn,
    token_hash: &str,
    idle_after_ms: i64,
    born_after_ms: i64,
) -> Result<Option<(Actor, String, i64)>> {
    let row = sqlx::query(
        "SELECT a.id, a.login, a.role, a.reseller_id, a.read_only, s.csrf, s.seen_ms \
         FROM ui_sessions s JOIN admins a ON a.id = s.admin_id \
         WHERE s.token_hash = $1 AND s.seen_ms > $2 AND s.created_ms > $3 AND a.is_active = 1 \
         AND (a.reseller_id IS NULL OR a.reseller_id IN (SELECT id FROM resellers WHERE status = 'active'))",
    )
    .bind(token_hash)
    .bind(idle_after_ms)
    .bind(born_after_ms)
    .fetch_optional(&mut *c)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let id: i64 = row.try_get(0)?;
    let actor = Actor {
        kind: ActorKind::Admin,
        id: Some(id),
        name: row.try_get(1)?,
        role: Role::parse("role", &row.try_get::<String, _>(2)?)?,
        reseller_id: row.try_get(3)?,
        read_only: row.try_get::<i64, _>(4)? != 0,
        client: None,
        admin_id: Some(id),
    };
    Ok(Some((actor, row.try_get(5)?, row.try_get(6)?)))
}

pub async fn touch(c: &mut Conn, token_hash: &str, now_ms: i64) -> Result<()> {
    sqlx::query("UPDATE ui_sessions SET seen_ms = $1 WHERE token_hash = $2")
        .bind(now_ms)
        .bind(token_hash)
        .execute(&mut *c)
        .await?;
    Ok(())
}

pub async fn end(c: &mut Conn, token_hash: &str) -> Result<()> {
    sqlx::query("DELETE FROM ui_sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Deletes the sessions expired at `now_ms`.
pub async fn prune(c: &mut Conn, now_ms: i64) -> Result<u64> {
    let (idle, born) = cutoffs(now_ms);
    Ok(
        sqlx::query("DELETE FROM ui_sessions WHERE seen_ms <= $1 OR created_ms <= $2")
            .bind(idle)
            .bind(born)
            .execute(&mut *c)
            .await?
            .rows_affected(),
    )
}
