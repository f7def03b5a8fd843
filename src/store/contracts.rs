//! Contracts: NGCP's system-level agreements — a reseller's, or a peering's — each with a
//! system contact and, optionally, a billing profile.

use serde::Serialize;
use utoipa::ToSchema;

use super::{insert_id, now, Conn};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Contract {
    pub id: i64,
    pub contact_id: i64,
    pub billing_profile_id: Option<i64>,
    /// reseller or sippeering.
    #[serde(rename = "type")]
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub external_id: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    pub terminate_timestamp: Option<String>,
}

pub const CONTRACT_COLS: &str = "id, contact_id, billing_profile_id, type, status, external_id, \
     create_timestamp, modify_timestamp, terminate_timestamp";

pub struct ContractFields<'a> {
    pub contact_id: i64,
    pub billing_profile_id: Option<i64>,
    pub kind: &'a str,
    pub status: &'a str,
    pub external_id: Option<String>,
}

pub async fn save(c: &mut Conn, id: Option<i64>, f: &ContractFields<'_>) -> Result<i64> {
    let t = now();
    let terminated = (f.status == "terminated").then(|| t.clone());
    let q = match id {
        None => sqlx::query(
            "INSERT INTO contracts (contact_id, billing_profile_id, type, status, external_id, create_timestamp, modify_timestamp, terminate_timestamp) \
             VALUES ($1, $2, $3, $4, $5, $6, $6, $7) RETURNING id",
        ),
        Some(_) => sqlx::query(
            "UPDATE contracts SET contact_id = $1, billing_profile_id = $2, type = $3, status = $4, external_id = $5, \
             modify_timestamp = $6, terminate_timestamp = COALESCE(terminate_timestamp, $7) WHERE id = $8 RETURNING id",
        ),
    };
    let mut q = q
        .bind(f.contact_id)
        .bind(f.billing_profile_id)
        .bind(f.kind.to_string())
        .bind(f.status.to_string())
        .bind(f.external_id.clone())
        .bind(t)
        .bind(terminated);
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}
