//! Admins (who log in with HTTP Basic) and API keys.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map};
use utoipa::ToSchema;

use super::resellers::check_reseller;
use crate::app::App;
use crate::crypto;
use crate::error::{Error, Result};
use crate::model::{self, Actor, ActorKind, Role};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::accounts::{Admin, ApiKey, ADMIN_COLS, APIKEY_COLS};
use crate::store::{delete_row, get_as, insert_id, list_as, now, Conn, Flag};

pub struct Admins;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminInput {
    pub login: String,
    /// Required on creation (at least 8 characters); absent on PUT/PATCH keeps it. Never returned.
    #[serde(default)]
    #[schema(write_only)]
    pub password: Option<String>,
    /// admin or reseller (default: reseller when reseller_id is given).
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub reseller_id: Option<i64>,
    #[serde(default)]
    pub read_only: Option<bool>,
    #[serde(default)]
    pub is_active: Option<bool>,
    #[serde(default)]
    pub email: Option<String>,
}

/// Role and reseller for a new credential, never more than the creator has.
async fn grant(
    c: &mut Conn,
    actor: &Actor,
    role: Option<&str>,
    reseller_id: Option<i64>,
) -> Result<(Role, Option<i64>)> {
    let role = match role {
        Some(r) => Role::parse("role", r)?,
        None if reseller_id.is_some() || !actor.is_admin() => Role::Reseller,
        None => Role::Admin,
    };
    match (actor.scope(), role) {
        (Some(_), Role::Admin) => Err(Error::Forbidden(
            "a reseller cannot grant the admin role".into(),
        )),
        (Some(own), Role::Reseller) => {
            if reseller_id.is_some_and(|r| r != own) {
                return Err(Error::invalid(
                    "reseller_id",
                    format!("reseller {} does not exist", reseller_id.unwrap_or(0)),
                ));
            }
            Ok((Role::Reseller, Some(own)))
        }
        (None, Role::Admin) => {
            if reseller_id.is_some() {
                return Err(Error::invalid(
                    "reseller_id",
                    "must be empty for role admin",
                ));
            }
            Ok((Role::Admin, None))
        }
        (None, Role::Reseller) => {
            let r = reseller_id
                .ok_or_else(|| Error::invalid("reseller_id", "is required for role reseller"))?;
            check_reseller(c, r).await?;
            Ok((Role::Reseller, Some(r)))
        }
    }
}

async fn password_hash(p: Option<String>) -> Result<Option<String>> {
    match p {
        None => Ok(None),
        Some(p) if p.chars().count() < 8 || p.len() > 256 => {
            Err(Error::invalid("password", "must be 8 to 256 characters"))
        }
        Some(p) => Ok(Some(crypto::hash_password(p).await?)),
    }
}

#[async_trait]
impl Resource for Admins {
    const NAME: &'static str = "admins";
    const HASHED: &'static [&'static str] = &["password"];
    const SUMMARY: &'static str = "Admins: the people (and scripts) that log in, with their role";
    const FILTERS: &'static [(&'static str, &'static str)] =
        &[("login", "login, * wildcard"), ("reseller_id", "reseller")];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("login", "login"),
        ("role", "role"),
        ("reseller_id", "reseller_id"),
        ("email", "email"),
        ("create_timestamp", "create_timestamp"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    type Repr = Admin;
    type Input = AdminInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Admin>, Option<i64>)> {
        list_as(
            c,
            ADMIN_COLS,
            "admins",
            &q.where_scoped(actor, &["login"], &["reseller_id"])?,
            &q.page,
        )
        .await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Admin>> {
        get_as(c, ADMIN_COLS, "admins", id, lock).await
    }
    async fn create(c: &mut Conn, app: &App, actor: &Actor, i: AdminInput) -> Result<Created> {
        let login = model::sip_username("login", &i.login)?;
        let (role, reseller) = grant(c, actor, i.role.as_deref(), i.reseller_id).await?;
        let hash = password_hash(i.password)
            .await?
            .ok_or_else(|| Error::invalid("password", "is required"))?;
        let id = insert_id(
            sqlx::query(
                "INSERT INTO admins (login, password_hash, role, reseller_id, read_only, is_active, email, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) RETURNING id",
            )
            .bind(login)
            .bind(hash)
            .bind(role.as_str())
            .bind(reseller)
            .bind(Flag::int(i.read_only.unwrap_or(false)))
            .bind(Flag::int(i.is_active.unwrap_or(true)))
            .bind(model::email("email", i.email)?)
            .bind(now()),
            c,
        )
        .await?;
        app.credentials.invalidate();
        Ok(id.into())
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &Admin,
        i: AdminInput,
    ) -> Result<()> {
        let login = model::sip_username("login", &i.login)?;
        if actor.kind == ActorKind::ApiKey && actor.admin_id == Some(id) {
            // A key's rights are cut down to its admin's: it must not be able to raise them.
            let role_changes = i.role.as_deref().is_some_and(|r| r != old.role);
            let reseller_changes = i.reseller_id.is_some_and(|r| Some(r) != old.reseller_id)
                || (i.role.as_deref() == Some("admin") && old.reseller_id.is_some());
            let read_only_changes = i.read_only.unwrap_or(false) != old.read_only.0;
            if role_changes || reseller_changes || read_only_changes {
                return Err(Error::Forbidden(
                    "an API key cannot change its own admin's role, reseller or read-only flag"
                        .into(),
                ));
            }
        }
        let (role, reseller) = grant(
            c,
            actor,
            i.role.as_deref().or(Some(old.role.as_str())),
            i.reseller_id
                .or(old.reseller_id)
                .filter(|_| i.role.as_deref() != Some("admin")),
        )
        .await?;
        let hash = password_hash(i.password).await?;
        sqlx::query(
            "UPDATE admins SET login = $1, password_hash = COALESCE($2, password_hash), role = $3, reseller_id = $4, read_only = $5, \
             is_active = $6, email = $7, modify_timestamp = $8 WHERE id = $9",
        )
        .bind(login)
        .bind(hash)
        .bind(role.as_str())
        .bind(reseller)
        .bind(Flag::int(i.read_only.unwrap_or(false)))
        .bind(Flag::int(i.is_active.unwrap_or(true)))
        .bind(model::email("email", i.email)?)
        .bind(now())
        .bind(id)
        .execute(&mut *c)
        .await?;
        app.credentials.invalidate();
        Ok(())
    }
    async fn delete(c: &mut Conn, app: &App, actor: &Actor, id: i64, _: &Admin) -> Result<()> {
        if actor.kind == ActorKind::Admin && actor.id == Some(id) {
            return Err(Error::Forbidden("you cannot delete yourself".into()));
        }
        sqlx::query("DELETE FROM apikeys WHERE admin_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        delete_row(c, "admins", id).await?;
        app.credentials.invalidate();
        Ok(())
    }
    fn id(r: &Admin) -> i64 {
        r.id
    }
    fn reseller_of(r: &Admin) -> Option<i64> {
        r.reseller_id
    }
}

pub struct ApiKeys;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyInput {
    pub name: String,
    /// When the key stops working (RFC 3339 or "YYYY-MM-DD HH:MM:SS" UTC); null: never.
    #[serde(default)]
    pub expires_at: Option<String>,
    /// admin or reseller; never more than the creator's own.
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub reseller_id: Option<i64>,
    #[serde(default)]
    pub read_only: Option<bool>,
}

fn parse_time(field: &str, v: &str) -> Result<String> {
    let t = chrono::DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&chrono::Utc).naive_utc())
        .or_else(|_| chrono::NaiveDateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S"))
        .map_err(|_| {
            Error::invalid(
                field,
                format!("'{v}' is not a time (RFC 3339 or YYYY-MM-DD HH:MM:SS)"),
            )
        })?;
    Ok(t.format("%Y-%m-%d %H:%M:%S").to_string())
}

#[async_trait]
impl Resource for ApiKeys {
    const NAME: &'static str = "apikeys";
    const NGCP: bool = false;
    const SUMMARY: &'static str =
        "API keys: the secret is shown once, in the creation response; DELETE revokes";
    const CAN_UPDATE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] =
        &[("name", "name, * wildcard"), ("reseller_id", "reseller")];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[("id", "id"), ("name", "name")];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "prefix",
        "admin_id",
        "last_used_at",
        "last_used_from",
        "create_timestamp",
    ];
    type Repr = ApiKey;
    type Input = ApiKeyInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<ApiKey>, Option<i64>)> {
        list_as(
            c,
            APIKEY_COLS,
            "apikeys",
            &q.where_scoped(actor, &["name"], &["reseller_id"])?,
            &q.page,
        )
        .await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<ApiKey>> {
        get_as(c, APIKEY_COLS, "apikeys", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: ApiKeyInput) -> Result<Created> {
        let name = model::non_empty("name", i.name, 127)?;
        let (role, reseller) = grant(c, actor, i.role.as_deref(), i.reseller_id).await?;
        let expires = i
            .expires_at
            .as_deref()
            .map(|v| parse_time("expires_at", v))
            .transpose()?;
        if expires.as_ref().is_some_and(|e| *e <= now()) {
            return Err(Error::invalid("expires_at", "must be in the future"));
        }
        // A key created with a key belongs to the same admin.
        let admin_id = actor
            .admin_id
            .ok_or_else(|| Error::Forbidden("this credential cannot create API keys".into()))?;
        let (secret, prefix, hash) = crypto::new_api_key();
        let id = insert_id(
            sqlx::query(
                "INSERT INTO apikeys (name, prefix, secret_hash, admin_id, role, reseller_id, read_only, expires_at, create_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
            )
            .bind(name)
            .bind(prefix)
            .bind(hash)
            .bind(admin_id)
            .bind(role.as_str())
            .bind(reseller)
            .bind(Flag::int(actor.read_only || i.read_only.unwrap_or(false)))
            .bind(expires)
            .bind(now()),
            c,
        )
        .await?;
        let mut once = Map::new();
        once.insert("secret".into(), json!(secret));
        Ok(Created {
            id,
            once: Some(once),
        })
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &ApiKey) -> Result<()> {
        delete_row(c, "apikeys", id).await
    }
    fn id(r: &ApiKey) -> i64 {
        r.id
    }
    fn reseller_of(r: &ApiKey) -> Option<i64> {
        r.reseller_id
    }
}
