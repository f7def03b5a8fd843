//! Admins (who may log in) and API keys.

use serde::Serialize;
use utoipa::ToSchema;

use super::Flag;

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct Admin {
    pub id: i64,
    pub login: String,
    pub role: String,
    pub reseller_id: Option<i64>,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub read_only: Flag,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub is_active: Flag,
    pub email: Option<String>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}
pub const ADMIN_COLS: &str =
    "id, login, role, reseller_id, read_only, is_active, email, create_timestamp, modify_timestamp";

#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ApiKey {
    pub id: i64,
    pub name: String,
    /// The key's public prefix (`vxp_<prefix>_…`), to recognise it in logs.
    pub prefix: String,
    pub admin_id: i64,
    pub role: String,
    pub reseller_id: Option<i64>,
    #[sqlx(try_from = "i64")]
    #[schema(value_type = bool)]
    pub read_only: Flag,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub last_used_from: Option<String>,
    pub create_timestamp: String,
}
pub const APIKEY_COLS: &str = "id, name, prefix, admin_id, role, reseller_id, read_only, expires_at, last_used_at, last_used_from, create_timestamp";
