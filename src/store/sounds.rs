//! Sound sets and their files (announcements, music on hold): kept as data for the media
//! servers that play them.

use serde::Serialize;
use utoipa::ToSchema;

use super::{insert_id, now, Conn};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SoundSetRow {
    pub id: i64,
    pub reseller_id: i64,
    pub customer_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub contract_default: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const SET_COLS: &str = "id, reseller_id, customer_id, name, description, contract_default, \
     create_timestamp, modify_timestamp";

pub struct SetFields {
    pub reseller_id: i64,
    pub customer_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub contract_default: bool,
}

pub async fn save_set(c: &mut Conn, id: Option<i64>, f: &SetFields) -> Result<i64> {
    if f.contract_default {
        // One default per customer (or per reseller, among sets of no customer).
        sqlx::query(
            "UPDATE sound_sets SET contract_default = 0 WHERE reseller_id = $1 \
             AND COALESCE(customer_id, 0) = COALESCE($2, 0) AND contract_default <> 0",
        )
        .bind(f.reseller_id)
        .bind(f.customer_id)
        .execute(&mut *c)
        .await?;
    }
    let q = match id {
        None => sqlx::query(
            "INSERT INTO sound_sets (reseller_id, customer_id, name, description, contract_default, \
             create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        ),
        Some(_) => sqlx::query(
            "UPDATE sound_sets SET reseller_id = $1, customer_id = $2, name = $3, description = $4, \
             contract_default = $5, modify_timestamp = $6 WHERE id = $7 RETURNING id",
        ),
    };
    let mut q = q
        .bind(f.reseller_id)
        .bind(f.customer_id)
        .bind(f.name.clone())
        .bind(f.description.clone())
        .bind(i64::from(f.contract_default))
        .bind(now());
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}

/// A file's description; the audio itself is read only by [`data`].
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SoundFileRow {
    pub id: i64,
    pub set_id: i64,
    pub reseller_id: i64,
    pub handle: String,
    pub filename: String,
    pub loopplay: i64,
    pub codec: String,
    pub size: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const FILE_COLS: &str = "id, set_id, reseller_id, handle, filename, loopplay, codec, size, \
     create_timestamp, modify_timestamp";
/// Files with their set's reseller; filters name plain columns of `v`.
pub const FILES_FROM: &str = "(SELECT f.id, f.set_id, s.reseller_id, f.handle, f.filename, \
     f.loopplay, f.codec, f.size, f.create_timestamp, f.modify_timestamp \
     FROM sound_files f JOIN sound_sets s ON s.id = f.set_id) v";

pub struct FileFields<'a> {
    pub set_id: i64,
    pub handle: &'a str,
    pub filename: &'a str,
    pub loopplay: bool,
    pub codec: &'a str,
    /// None keeps the stored audio (a change of the description only).
    pub data: Option<&'a [u8]>,
}

pub async fn save_file(c: &mut Conn, id: Option<i64>, f: &FileFields<'_>) -> Result<i64> {
    let t = now();
    let q = match (id, f.data) {
        (None, Some(data)) => sqlx::query(
            "INSERT INTO sound_files (set_id, handle, filename, loopplay, codec, size, data, \
             create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(f.set_id)
        .bind(f.handle.to_string())
        .bind(f.filename.to_string())
        .bind(i64::from(f.loopplay))
        .bind(f.codec.to_string())
        .bind(data.len() as i64)
        .bind(data.to_vec())
        .bind(t),
        (Some(id), Some(data)) => sqlx::query(
            "UPDATE sound_files SET handle = $1, filename = $2, loopplay = $3, codec = $4, size = $5, \
             data = $6, modify_timestamp = $7 WHERE id = $8 RETURNING id",
        )
        .bind(f.handle.to_string())
        .bind(f.filename.to_string())
        .bind(i64::from(f.loopplay))
        .bind(f.codec.to_string())
        .bind(data.len() as i64)
        .bind(data.to_vec())
        .bind(t)
        .bind(id),
        (Some(id), None) => sqlx::query(
            "UPDATE sound_files SET handle = $1, filename = $2, loopplay = $3, modify_timestamp = $4 \
             WHERE id = $5 RETURNING id",
        )
        .bind(f.handle.to_string())
        .bind(f.filename.to_string())
        .bind(i64::from(f.loopplay))
        .bind(t)
        .bind(id),
        (None, None) => {
            return Err(crate::error::Error::invalid("data", "a new sound file needs its audio"))
        }
    };
    insert_id(q, c).await
}

/// The file of a set for a handle, if there is one.
pub async fn file_for(c: &mut Conn, set_id: i64, handle: &str) -> Result<Option<i64>> {
    Ok(
        sqlx::query_scalar("SELECT id FROM sound_files WHERE set_id = $1 AND handle = $2")
            .bind(set_id)
            .bind(handle.to_string())
            .fetch_optional(&mut *c)
            .await?,
    )
}

/// The audio of a file.
pub async fn data(c: &mut Conn, id: i64) -> Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT data FROM sound_files WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *c)
            .await?,
    )
}
