//! Phone provisioning rows: the model catalog, template overrides, profiles, customers'
//! provisioning settings, devices (with their tokens) and the log of their fetches.

use serde::Serialize;
use sqlx::{FromRow, Row};

use super::{insert_id, now, Conn};
use crate::error::Result;

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ModelRow {
    pub id: i64,
    pub vendor: String,
    pub family: String,
    pub model: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub code: String,
    pub lines: i64,
    pub keys: i64,
    pub expansion_modules: i64,
    pub expansion_keys: i64,
    pub files: String,
    pub user_agent: Option<String>,
    pub ouis: String,
    pub image: Option<String>,
    pub builtin: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

pub const MODEL_COLS: &str = "id, vendor, family, model, type, code, lines, keys, \
    expansion_modules, expansion_keys, files, user_agent, ouis, image, builtin, \
    create_timestamp, modify_timestamp";

pub struct ModelFields {
    pub vendor: String,
    pub family: String,
    pub model: String,
    pub kind: String,
    pub code: String,
    pub lines: i64,
    pub keys: i64,
    pub expansion_modules: i64,
    pub expansion_keys: i64,
    pub files: String,
    pub user_agent: Option<String>,
    pub ouis: String,
    pub image: Option<String>,
    pub builtin: bool,
}

pub async fn save_model(c: &mut Conn, id: Option<i64>, f: &ModelFields) -> Result<i64> {
    let sql = match id {
        None => "INSERT INTO device_models (vendor, family, model, type, code, lines, keys, expansion_modules, \
                 expansion_keys, files, user_agent, ouis, image, builtin, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15) RETURNING id",
        Some(_) => "UPDATE device_models SET vendor = $1, family = $2, model = $3, type = $4, code = $5, lines = $6, \
                    keys = $7, expansion_modules = $8, expansion_keys = $9, files = $10, user_agent = $11, ouis = $12, \
                    image = $13, builtin = $14, modify_timestamp = $15 WHERE id = $16 RETURNING id",
    };
    let mut q = sqlx::query(sql)
        .bind(f.vendor.clone())
        .bind(f.family.clone())
        .bind(f.model.clone())
        .bind(f.kind.clone())
        .bind(f.code.clone())
        .bind(f.lines)
        .bind(f.keys)
        .bind(f.expansion_modules)
        .bind(f.expansion_keys)
        .bind(f.files.clone())
        .bind(f.user_agent.clone())
        .bind(f.ouis.clone())
        .bind(f.image.clone())
        .bind(f.builtin as i64)
        .bind(now());
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}

pub async fn all_models(c: &mut Conn) -> Result<Vec<ModelRow>> {
    let sql = format!("SELECT {MODEL_COLS} FROM device_models ORDER BY vendor, family, model");
    Ok(sqlx::query_as(&sql).fetch_all(&mut *c).await?)
}

/// Records that a shipped model was added; false when it had been already.
pub async fn mark_seeded(c: &mut Conn, vendor: &str, model: &str) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO device_models_seeded (vendor, model) VALUES ($1, $2) ON CONFLICT DO NOTHING",
    )
    .bind(vendor.to_string())
    .bind(model.to_string())
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn model_exists(c: &mut Conn, vendor: &str, model: &str) -> Result<bool> {
    Ok(
        sqlx::query("SELECT 1 FROM device_models WHERE vendor = $1 AND model = $2")
            .bind(vendor.to_string())
            .bind(model.to_string())
            .fetch_optional(&mut *c)
            .await?
            .is_some(),
    )
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct TemplateRow {
    pub id: i64,
    pub reseller_id: Option<i64>,
    pub profile_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub content: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

pub const TEMPLATE_COLS: &str =
    "id, reseller_id, profile_id, name, description, content, create_timestamp, modify_timestamp";

pub async fn save_template(
    c: &mut Conn,
    id: Option<i64>,
    reseller_id: Option<i64>,
    profile_id: Option<i64>,
    name: &str,
    description: Option<String>,
    content: &str,
) -> Result<i64> {
    let sql = match id {
        None => "INSERT INTO device_templates (reseller_id, profile_id, name, description, content, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) RETURNING id",
        Some(_) => "UPDATE device_templates SET reseller_id = $1, profile_id = $2, name = $3, description = $4, content = $5, \
                    modify_timestamp = $6 WHERE id = $7 RETURNING id",
    };
    let mut q = sqlx::query(sql)
        .bind(reseller_id)
        .bind(profile_id)
        .bind(name.to_string())
        .bind(description)
        .bind(content.to_string())
        .bind(now());
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}

pub async fn all_templates(c: &mut Conn) -> Result<Vec<TemplateRow>> {
    let sql = format!("SELECT {TEMPLATE_COLS} FROM device_templates");
    Ok(sqlx::query_as(&sql).fetch_all(&mut *c).await?)
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct ProfileRow {
    pub id: i64,
    pub reseller_id: i64,
    pub name: String,
    pub description: Option<String>,
    pub settings: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

pub const PROFILE_COLS: &str =
    "id, reseller_id, name, description, settings, create_timestamp, modify_timestamp";

pub async fn save_profile(
    c: &mut Conn,
    id: Option<i64>,
    reseller_id: i64,
    name: &str,
    description: Option<String>,
    settings: &str,
) -> Result<i64> {
    let sql = match id {
        None => "INSERT INTO device_profiles (reseller_id, name, description, settings, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        Some(_) => "UPDATE device_profiles SET reseller_id = $1, name = $2, description = $3, settings = $4, \
                    modify_timestamp = $5 WHERE id = $6 RETURNING id",
    };
    let mut q = sqlx::query(sql)
        .bind(reseller_id)
        .bind(name.to_string())
        .bind(description)
        .bind(settings.to_string())
        .bind(now());
    if let Some(id) = id {
        q = q.bind(id);
    }
    insert_id(q, c).await
}

/// A customer's provisioning settings; customers without a row have the defaults.
#[derive(Debug, Clone, Serialize, FromRow)]
pub struct CustomerSettingsRow {
    pub id: i64,
    pub reseller_id: i64,
    pub settings: Option<String>,
    pub allowed_cidrs: Option<String>,
    pub prov_username: Option<String>,
    pub prov_password_enc: Option<String>,
    pub modify_timestamp: Option<String>,
}

pub const CUSTOMER_SETTINGS_COLS: &str =
    "id, reseller_id, settings, allowed_cidrs, prov_username, prov_password_enc, modify_timestamp";
pub const CUSTOMER_SETTINGS_FROM: &str = "(SELECT c.id, c.reseller_id, s.settings, \
    s.allowed_cidrs, s.prov_username, s.prov_password_enc, s.modify_timestamp \
    FROM customers c LEFT JOIN device_customer_settings s ON s.customer_id = c.id \
    WHERE c.status <> 'terminated') v";

pub async fn save_customer_settings(
    c: &mut Conn,
    customer_id: i64,
    settings: &str,
    cidrs: &str,
    username: Option<String>,
    password_enc: Option<String>,
) -> Result<()> {
    sqlx::query("DELETE FROM device_customer_settings WHERE customer_id = $1")
        .bind(customer_id)
        .execute(&mut *c)
        .await?;
    sqlx::query(
        "INSERT INTO device_customer_settings (customer_id, settings, allowed_cidrs, prov_username, prov_password_enc, modify_timestamp) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(customer_id)
    .bind(settings.to_string())
    .bind(cidrs.to_string())
    .bind(username)
    .bind(password_enc)
    .bind(now())
    .execute(&mut *c)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, Serialize, FromRow)]
pub struct DeviceRow {
    pub id: i64,
    pub identifier: String,
    pub customer_id: i64,
    pub reseller_id: i64,
    pub model_id: i64,
    pub profile_id: Option<i64>,
    pub station_name: Option<String>,
    pub lines: String,
    pub settings: String,
    pub auth: String,
    pub secret_enc: String,
    pub boot_token_hash: Option<String>,
    pub boot_token_expires: Option<i64>,
    pub token_hash: Option<String>,
    pub token_enc: Option<String>,
    pub token_used: i64,
    pub last_fetch_ts: Option<String>,
    pub last_fetch_addr: Option<String>,
    pub last_fetch_ua: Option<String>,
    pub last_fetch_file: Option<String>,
    pub fetch_count: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

pub const DEVICE_COLS: &str = "id, identifier, customer_id, reseller_id, model_id, profile_id, \
    station_name, lines, settings, auth, secret_enc, boot_token_hash, boot_token_expires, \
    token_hash, token_enc, token_used, last_fetch_ts, last_fetch_addr, last_fetch_ua, \
    last_fetch_file, fetch_count, create_timestamp, modify_timestamp";

pub struct DeviceFields {
    pub identifier: String,
    pub customer_id: i64,
    pub reseller_id: i64,
    pub model_id: i64,
    pub profile_id: Option<i64>,
    pub station_name: Option<String>,
    pub lines: String,
    pub settings: String,
    pub auth: String,
    pub subscriber_ids: Vec<i64>,
}

/// Creates a device with its secret and first-boot token, or updates what an operator sets.
pub async fn save_device(
    c: &mut Conn,
    id: Option<i64>,
    f: &DeviceFields,
    new_secrets: Option<(&str, &str, i64)>,
) -> Result<i64> {
    let id = match id {
        None => {
            let (secret_enc, boot_hash, expires) = new_secrets.expect("a new device has secrets");
            let q = sqlx::query(
                "INSERT INTO devices (identifier, customer_id, reseller_id, model_id, profile_id, station_name, lines, settings, auth, \
                 secret_enc, boot_token_hash, boot_token_expires, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13) RETURNING id",
            )
            .bind(f.identifier.clone())
            .bind(f.customer_id)
            .bind(f.reseller_id)
            .bind(f.model_id)
            .bind(f.profile_id)
            .bind(f.station_name.clone())
            .bind(f.lines.clone())
            .bind(f.settings.clone())
            .bind(f.auth.clone())
            .bind(secret_enc.to_string())
            .bind(boot_hash.to_string())
            .bind(expires)
            .bind(now());
            insert_id(q, c).await?
        }
        Some(id) => {
            let q = sqlx::query(
                "UPDATE devices SET identifier = $1, customer_id = $2, reseller_id = $3, model_id = $4, profile_id = $5, \
                 station_name = $6, lines = $7, settings = $8, auth = $9, modify_timestamp = $10 WHERE id = $11 RETURNING id",
            )
            .bind(f.identifier.clone())
            .bind(f.customer_id)
            .bind(f.reseller_id)
            .bind(f.model_id)
            .bind(f.profile_id)
            .bind(f.station_name.clone())
            .bind(f.lines.clone())
            .bind(f.settings.clone())
            .bind(f.auth.clone())
            .bind(now())
            .bind(id);
            insert_id(q, c).await?
        }
    };
    sqlx::query("DELETE FROM device_lines WHERE device_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    let mut subs = f.subscriber_ids.clone();
    subs.sort_unstable();
    subs.dedup();
    for s in subs {
        sqlx::query("INSERT INTO device_lines (device_id, subscriber_id) VALUES ($1, $2)")
            .bind(id)
            .bind(s)
            .execute(&mut *c)
            .await?;
    }
    Ok(id)
}

pub async fn delete_device(c: &mut Conn, id: i64) -> Result<()> {
    sqlx::query("DELETE FROM device_lines WHERE device_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    sqlx::query("DELETE FROM device_fetches WHERE device_id = $1")
        .bind(id)
        .execute(&mut *c)
        .await?;
    super::delete_row(c, "devices", id).await
}

/// A new first-boot token; the long-lived one is forgotten (a replaced or reset phone).
pub async fn reset_tokens(c: &mut Conn, id: i64, boot_hash: &str, expires: i64) -> Result<()> {
    sqlx::query(
        "UPDATE devices SET boot_token_hash = $1, boot_token_expires = $2, token_hash = NULL, token_enc = NULL, \
         token_used = 0, modify_timestamp = $3 WHERE id = $4",
    )
    .bind(boot_hash.to_string())
    .bind(expires)
    .bind(now())
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn set_secret(c: &mut Conn, id: i64, secret_enc: &str) -> Result<()> {
    sqlx::query("UPDATE devices SET secret_enc = $1, modify_timestamp = $2 WHERE id = $3")
        .bind(secret_enc.to_string())
        .bind(now())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// The first-boot token traded for a long-lived one (only while none was issued).
pub async fn issue_token(c: &mut Conn, id: i64, hash: &str, enc: &str) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE devices SET token_hash = $1, token_enc = $2, token_used = 0 WHERE id = $3 AND token_hash IS NULL",
    )
    .bind(hash.to_string())
    .bind(enc.to_string())
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// The long-lived token has been used: the phone has it, so the first-boot token dies.
pub async fn token_used(c: &mut Conn, id: i64) -> Result<()> {
    sqlx::query(
        "UPDATE devices SET token_used = 1, boot_token_hash = NULL, boot_token_expires = NULL WHERE id = $1",
    )
    .bind(id)
    .execute(&mut *c)
    .await?;
    Ok(())
}

pub async fn device_by(c: &mut Conn, cond: &str, v: &str) -> Result<Option<DeviceRow>> {
    let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE {cond} = $1");
    Ok(sqlx::query_as(&sql)
        .bind(v.to_string())
        .fetch_optional(&mut *c)
        .await?)
}

pub async fn device_by_id(c: &mut Conn, id: i64) -> Result<Option<DeviceRow>> {
    let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE id = $1");
    Ok(sqlx::query_as(&sql)
        .bind(id)
        .fetch_optional(&mut *c)
        .await?)
}

pub async fn all_devices(c: &mut Conn, after_id: i64, limit: i64) -> Result<Vec<DeviceRow>> {
    let sql = format!("SELECT {DEVICE_COLS} FROM devices WHERE id > $1 ORDER BY id LIMIT $2");
    Ok(sqlx::query_as(&sql)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&mut *c)
        .await?)
}

/// What a line needs of a subscriber.
#[derive(Debug, Clone, FromRow)]
pub struct LineSubscriber {
    pub id: i64,
    pub customer_id: i64,
    pub username: String,
    pub domain: String,
    pub password_enc: Option<String>,
    pub display_name: Option<String>,
    pub status: String,
    pub number: Option<String>,
}

pub async fn line_subscribers(c: &mut Conn, ids: &[i64]) -> Result<Vec<LineSubscriber>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT s.id, s.customer_id, s.username, d.domain, s.password_enc, s.display_name, s.status, \
         (SELECT n.cc || n.ac || n.sn FROM numbers n WHERE n.subscriber_id = s.id AND n.is_primary = 1 LIMIT 1) AS number \
         FROM subscribers s JOIN domains d ON d.id = s.domain_id WHERE s.id IN ({})",
        super::placeholders(1, ids.len())
    );
    let mut q = sqlx::query_as(&sql);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(&mut *c).await?)
}

pub async fn profile(c: &mut Conn, id: i64) -> Result<Option<ProfileRow>> {
    super::get_as(c, PROFILE_COLS, "device_profiles", id, false).await
}

pub async fn customer_settings(c: &mut Conn, id: i64) -> Result<Option<CustomerSettingsRow>> {
    super::get_from_view(
        c,
        "customers",
        CUSTOMER_SETTINGS_COLS,
        CUSTOMER_SETTINGS_FROM,
        id,
        false,
    )
    .await
}

/// One fetch, as the recorder batches them.
pub struct Fetch {
    pub device_id: i64,
    pub ts: String,
    pub address: String,
    pub user_agent: Option<String>,
    pub file: String,
    pub status: i64,
}

pub async fn record_fetches(c: &mut Conn, fetches: &[Fetch]) -> Result<()> {
    let mut last: std::collections::BTreeMap<i64, (&Fetch, i64)> = Default::default();
    for f in fetches {
        let e = last.entry(f.device_id).or_insert((f, 0));
        e.0 = f;
        e.1 += 1;
    }
    for (id, (f, n)) in last {
        sqlx::query(
            "UPDATE devices SET last_fetch_ts = $1, last_fetch_addr = $2, last_fetch_ua = $3, last_fetch_file = $4, \
             fetch_count = fetch_count + $5 WHERE id = $6",
        )
        .bind(f.ts.clone())
        .bind(f.address.clone())
        .bind(f.user_agent.clone())
        .bind(f.file.clone())
        .bind(n)
        .bind(id)
        .execute(&mut *c)
        .await?;
    }
    for chunk in fetches.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO device_fetches (device_id, ts, address, user_agent, file, status) VALUES ",
        );
        for i in 0..chunk.len() {
            let b = i * 6;
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            ));
        }
        let mut q = sqlx::query(&sql);
        for f in chunk {
            q = q
                .bind(f.device_id)
                .bind(f.ts.clone())
                .bind(f.address.clone())
                .bind(f.user_agent.clone())
                .bind(f.file.clone())
                .bind(f.status);
        }
        q.execute(&mut *c).await?;
    }
    Ok(())
}

pub async fn prune_fetches(c: &mut Conn, before_ts: &str) -> Result<u64> {
    Ok(sqlx::query("DELETE FROM device_fetches WHERE ts < $1")
        .bind(before_ts.to_string())
        .execute(&mut *c)
        .await?
        .rows_affected())
}

#[derive(Debug, Clone, Serialize, FromRow, utoipa::ToSchema)]
pub struct FetchRow {
    pub id: i64,
    pub device_id: i64,
    pub ts: String,
    pub address: String,
    pub user_agent: Option<String>,
    pub file: String,
    pub status: i64,
}

pub async fn fetches_of(c: &mut Conn, device_id: i64, limit: i64) -> Result<Vec<FetchRow>> {
    Ok(sqlx::query_as(
        "SELECT id, device_id, ts, address, user_agent, file, status FROM device_fetches \
         WHERE device_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(device_id)
    .bind(limit)
    .fetch_all(&mut *c)
    .await?)
}

/// Enabled SIP servers that take RPC calls: (id, name, driver, rpc_url).
pub async fn rpc_servers(c: &mut Conn) -> Result<Vec<(i64, String, String, String)>> {
    let rows = sqlx::query(
        "SELECT id, name, driver, rpc_url FROM sipservers WHERE enabled = 1 AND rpc_url IS NOT NULL ORDER BY id",
    )
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
        .collect()
}

/// Changes after `after` (the cache follows the change log).
pub async fn changes_since(c: &mut Conn, after: i64) -> Result<Vec<(i64, String, i64)>> {
    let rows = sqlx::query(
        "SELECT id, resource, object_id FROM changes WHERE id > $1 ORDER BY id LIMIT 2000",
    )
    .bind(after)
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect()
}
