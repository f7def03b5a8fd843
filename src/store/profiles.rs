//! Subscriber profile sets and their profiles (which preferences a subscriber may change).

use serde::Serialize;
use utoipa::ToSchema;

use super::{insert_id, now, Conn};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ProfileSet {
    pub id: i64,
    pub reseller_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const SET_COLS: &str = "id, reseller_id, name, description, create_timestamp, modify_timestamp";

pub async fn save_set(
    c: &mut Conn,
    id: Option<i64>,
    reseller_id: i64,
    name: &str,
    description: Option<String>,
) -> Result<i64> {
    let q = match id {
        None => sqlx::query("INSERT INTO subscriber_profile_sets (reseller_id, name, description, create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $4, $4) RETURNING id"),
        Some(_) => sqlx::query("UPDATE subscriber_profile_sets SET reseller_id = $1, name = $2, description = $3, modify_timestamp = $4 WHERE id = $5 RETURNING id"),
    };
    let mut q = q
        .bind(reseller_id)
        .bind(name.to_string())
        .bind(description)
        .bind(now());
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}

/// A profile as stored: `attributes` is JSON text.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProfileRow {
    pub id: i64,
    pub profile_set_id: i64,
    pub reseller_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub set_default: i64,
    pub attributes: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const PROFILE_COLS: &str = "id, profile_set_id, reseller_id, name, description, set_default, \
     attributes, create_timestamp, modify_timestamp";

pub struct ProfileFields {
    pub profile_set_id: i64,
    pub reseller_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub set_default: bool,
    pub attributes: String,
}

pub async fn save_profile(c: &mut Conn, id: Option<i64>, f: &ProfileFields) -> Result<i64> {
    if f.set_default {
        // One default per set.
        sqlx::query("UPDATE subscriber_profiles SET set_default = 0 WHERE profile_set_id = $1 AND set_default <> 0")
            .bind(f.profile_set_id)
            .execute(&mut *c)
            .await?;
    }
    let q = match id {
        None => sqlx::query("INSERT INTO subscriber_profiles (profile_set_id, reseller_id, name, description, set_default, attributes, create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id"),
        Some(_) => sqlx::query("UPDATE subscriber_profiles SET profile_set_id = $1, reseller_id = $2, name = $3, description = $4, set_default = $5, attributes = $6, modify_timestamp = $7 WHERE id = $8 RETURNING id"),
    };
    let mut q = q
        .bind(f.profile_set_id)
        .bind(f.reseller_id)
        .bind(f.name.clone())
        .bind(f.description.clone())
        .bind(f.set_default as i64)
        .bind(f.attributes.clone())
        .bind(now());
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}

/// The default profile of a set, if it has one.
pub async fn default_of(c: &mut Conn, set_id: i64) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM subscriber_profiles WHERE profile_set_id = $1 AND set_default <> 0 ORDER BY id LIMIT 1",
    )
    .bind(set_id)
    .fetch_optional(&mut *c)
    .await?)
}
