//! Phone provisioning objects: device models (the catalog), templates (operators'
//! overrides), profiles, customers' provisioning settings and devices, plus the brand tree,
//! detection, preview, token and secret resets, fetch history, bans and kazoo import.

use async_trait::async_trait;
use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::resellers::check_reseller;
use crate::changes::Op;
use crate::devices::catalog::{compile_ua, file_regex, FileSpec};
use crate::devices::security::{new_token, token_hash};
use crate::devices::{render, LineSpec, MASK, SECRET_SETTINGS};
use crate::error::{Error, Result};
use crate::http::auth::Auth;
use crate::http::resource::{create_one, parse_id, record, Created, ListQuery, Resource};
use crate::http::{App, AppState};
use crate::model::{self, Actor};
use crate::store::devices::{self as st};
use crate::store::{exists, get_as, get_from_view, list_as, Conn};

// ---------------------------------------------------------------------------------------
// Device models

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceModel {
    pub id: i64,
    pub vendor: String,
    pub family: String,
    pub model: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub code: String,
    pub lines: i64,
    pub keys: i64,
    pub expansion_modules: i64,
    pub expansion_keys: i64,
    pub files: Vec<FileSpec>,
    pub user_agent: Option<String>,
    pub ouis: Vec<String>,
    pub image: Option<String>,
    pub builtin: bool,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

impl From<st::ModelRow> for DeviceModel {
    fn from(r: st::ModelRow) -> Self {
        DeviceModel {
            id: r.id,
            files: serde_json::from_str(&r.files).unwrap_or_default(),
            ouis: serde_json::from_str(&r.ouis).unwrap_or_default(),
            vendor: r.vendor,
            family: r.family,
            model: r.model,
            kind: r.kind,
            code: r.code,
            lines: r.lines,
            keys: r.keys,
            expansion_modules: r.expansion_modules,
            expansion_keys: r.expansion_keys,
            user_agent: r.user_agent,
            image: r.image,
            builtin: r.builtin != 0,
            create_timestamp: r.create_timestamp,
            modify_timestamp: r.modify_timestamp,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceModelInput {
    pub vendor: String,
    pub family: String,
    pub model: String,
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(deserialize_with = "model::int")]
    pub lines: i64,
    #[serde(deserialize_with = "model::int")]
    pub keys: i64,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub expansion_modules: Option<i64>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub expansion_keys: Option<i64>,
    pub files: Vec<FileSpec>,
    #[serde(default)]
    pub user_agent: Option<String>,
    #[serde(default)]
    pub ouis: Vec<String>,
    #[serde(default)]
    pub image: Option<String>,
}

fn slug(field: &str, s: String) -> Result<String> {
    let s = model::non_empty(field, s, 64)?;
    if !s
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || " _.-+".contains(c))
    {
        return Err(Error::invalid(
            field,
            "letters, digits, space, _ . - + only",
        ));
    }
    Ok(s)
}

fn model_fields(i: DeviceModelInput) -> Result<st::ModelFields> {
    let vendor = slug("vendor", i.vendor)?.to_ascii_lowercase();
    let family = slug("family", i.family)?.to_ascii_lowercase();
    let modelname = slug("model", i.model)?;
    let kind = i.kind.unwrap_or_else(|| "phone".into());
    if !["phone", "extension"].contains(&kind.as_str()) {
        return Err(Error::invalid("type", "must be phone or extension"));
    }
    let code = i.code.unwrap_or_default();
    if code.len() > 32
        || !code
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::invalid("code", "up to 32 letters, digits, _ or -"));
    }
    let range = |f: &str, v: i64, hi: i64| {
        if (0..=hi).contains(&v) {
            Ok(v)
        } else {
            Err(Error::invalid(f, format!("must be between 0 and {hi}")))
        }
    };
    let lines = range("lines", i.lines, 64)?;
    let keys = range("keys", i.keys, 512)?;
    let em = range("expansion_modules", i.expansion_modules.unwrap_or(0), 16)?;
    let ek = range("expansion_keys", i.expansion_keys.unwrap_or(0), 512)?;
    if i.files.is_empty() || i.files.len() > 16 {
        return Err(Error::invalid("files", "between 1 and 16 files"));
    }
    for (n, f) in i.files.iter().enumerate() {
        let field = format!("files[{n}]");
        let re = file_regex(&f.file, &code, &modelname)
            .map_err(|e| Error::invalid(format!("{field}.file"), e.to_string()))?;
        let has_mac = re.capture_names().any(|c| c == Some("mac"));
        if f.per_device != has_mac {
            return Err(Error::invalid(
                format!("{field}.file"),
                "a per-device file names the MAC ({mac} or {MAC}); a common file must not",
            ));
        }
        if !f
            .template
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || f.template.is_empty()
        {
            return Err(Error::invalid(
                format!("{field}.template"),
                "a template kind such as device.cfg",
            ));
        }
        if f.content_type.is_empty()
            || f.content_type.len() > 100
            || f.content_type.contains(['\r', '\n'])
        {
            return Err(Error::invalid(
                format!("{field}.content_type"),
                "a media type",
            ));
        }
    }
    if let Some(u) = &i.user_agent {
        if u.len() > 500 {
            return Err(Error::invalid("user_agent", "at most 500 characters"));
        }
        compile_ua(u)?;
    }
    let mut ouis = Vec::new();
    for (n, o) in i.ouis.iter().enumerate() {
        let o: String = o
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect::<String>()
            .to_ascii_lowercase();
        if o.len() != 6 {
            return Err(Error::invalid(
                format!("ouis[{n}]"),
                "an OUI is 6 hex digits",
            ));
        }
        ouis.push(o);
    }
    Ok(st::ModelFields {
        vendor,
        family,
        model: modelname,
        kind,
        code,
        lines,
        keys,
        expansion_modules: em,
        expansion_keys: ek,
        files: serde_json::to_string(&i.files).map_err(Error::internal)?,
        user_agent: i.user_agent,
        ouis: serde_json::to_string(&ouis).map_err(Error::internal)?,
        image: model::text("image", i.image, 2000)?,
        builtin: false,
    })
}

pub struct DeviceModels;

#[async_trait]
impl Resource for DeviceModels {
    const NAME: &'static str = "pbxdevicemodels";
    const SUMMARY: &'static str = "Phone models: vendor, family, capabilities, the files they request, how they are recognised";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("vendor", "vendor, * wildcard"),
        ("family", "family, * wildcard"),
        ("model", "model, * wildcard"),
        ("type", "phone | extension"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] =
        &[("id", "id"), ("vendor", "vendor"), ("model", "model")];
    const READ_ONLY: &'static [&'static str] =
        &["id", "builtin", "create_timestamp", "modify_timestamp"];
    type Repr = DeviceModel;
    type Input = DeviceModelInput;

    const ADMIN_WRITES: bool = true;
    async fn list(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<DeviceModel>, Option<i64>)> {
        let mut w = crate::store::Where::new();
        for col in ["vendor", "family", "model", "type"] {
            if let Some(v) = q.get(col) {
                w.text_filter(col, v);
            }
        }
        let (rows, n): (Vec<st::ModelRow>, _) =
            list_as(c, st::MODEL_COLS, "device_models", &w, &q.page).await?;
        Ok((rows.into_iter().map(Into::into).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<DeviceModel>> {
        let r: Option<st::ModelRow> = get_as(c, st::MODEL_COLS, "device_models", id, lock).await?;
        Ok(r.map(Into::into))
    }
    async fn create(c: &mut Conn, _: &App, _: &Actor, i: DeviceModelInput) -> Result<Created> {
        let f = model_fields(i)?;
        if st::model_exists(c, &f.vendor, &f.model).await? {
            return Err(Error::invalid(
                "model",
                "this vendor already has a model of this name",
            ));
        }
        Ok(st::save_model(c, None, &f).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &DeviceModel,
        i: DeviceModelInput,
    ) -> Result<()> {
        let mut f = model_fields(i)?;
        if (f.vendor != old.vendor || f.model != old.model)
            && st::model_exists(c, &f.vendor, &f.model).await?
        {
            return Err(Error::invalid(
                "model",
                "this vendor already has a model of this name",
            ));
        }
        f.builtin = old.builtin;
        st::save_model(c, Some(id), &f).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &DeviceModel) -> Result<()> {
        if exists(c, "devices", "model_id = $1", id).await? {
            return Err(Error::Locked(format!(
                "device model {id} is used by devices"
            )));
        }
        crate::store::delete_row(c, "device_models", id).await
    }
    fn id(r: &DeviceModel) -> i64 {
        r.id
    }
    fn reseller_of(_: &DeviceModel) -> Option<i64> {
        None
    }
    fn visible(_: &DeviceModel, _: &Actor) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------
// Templates

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceTemplate {
    pub id: i64,
    pub reseller_id: Option<i64>,
    pub profile_id: Option<i64>,
    pub name: String,
    pub description: Option<String>,
    pub content: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

impl From<st::TemplateRow> for DeviceTemplate {
    fn from(r: st::TemplateRow) -> Self {
        DeviceTemplate {
            id: r.id,
            reseller_id: r.reseller_id,
            profile_id: r.profile_id,
            name: r.name,
            description: r.description,
            content: r.content,
            create_timestamp: r.create_timestamp,
            modify_timestamp: r.modify_timestamp,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceTemplateInput {
    /// `vendor/kind`, `vendor/family/kind` or `vendor/family/model/kind`, e.g.
    /// `yealink/device.cfg`, `yealink/t4x/t46u/device.cfg`.
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Admins: a reseller's override (none: everyone's).
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub reseller_id: Option<i64>,
    /// An override for the devices of one profile only.
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub profile_id: Option<i64>,
}

fn template_name(n: &str) -> Result<String> {
    let n = n.trim().to_ascii_lowercase();
    let parts: Vec<&str> = n.split('/').collect();
    let ok = (2..=4).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        });
    if !ok {
        return Err(Error::invalid(
            "name",
            "vendor/kind, vendor/family/kind or vendor/family/model/kind (e.g. yealink/device.cfg)",
        ));
    }
    Ok(n)
}

/// Who a template belongs to: a profile's reseller, the actor's own, or (admins) as given.
async fn template_owner(
    c: &mut Conn,
    actor: &Actor,
    reseller: Option<i64>,
    profile: Option<i64>,
) -> Result<Option<i64>> {
    if let Some(p) = profile {
        let prof = st::profile(c, p).await?;
        match prof {
            Some(pr) if actor.scope().is_none_or(|s| s == pr.reseller_id) => {
                if reseller.is_some_and(|r| r != pr.reseller_id) {
                    return Err(Error::invalid("reseller_id", "is the profile's reseller"));
                }
                return Ok(Some(pr.reseller_id));
            }
            _ => return Err(Error::invalid("profile_id", "no such profile")),
        }
    }
    match actor.scope() {
        Some(s) => Ok(Some(s)),
        None => {
            if let Some(r) = reseller {
                check_reseller(c, r).await?;
            }
            Ok(reseller)
        }
    }
}

pub struct DeviceTemplates;

#[async_trait]
impl Resource for DeviceTemplates {
    const NAME: &'static str = "pbxdevicetemplates";
    const PREPARES: bool = true;
    /// A trial render with a sample device, on the render pool: a template that fails or
    /// passes a limit is refused before the transaction holds the writer.
    async fn prepare(app: &App, _: &Actor, doc: &Value) -> Result<()> {
        let (Some(name), Some(content)) = (
            doc.get("name").and_then(Value::as_str),
            doc.get("content").and_then(Value::as_str),
        ) else {
            return Ok(());
        };
        let Ok(name) = template_name(name) else {
            return Ok(()); // said by the validation
        };
        if content.len() > 256 * 1024 {
            return Ok(());
        }
        render::check_syntax(&name, content)?;
        render::check_render(&app.devices.pool, &name, content).await
    }
    const SUMMARY: &'static str = "Configuration templates overriding the shipped ones, for everyone, a reseller or a profile";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "template name, * wildcard"),
        ("reseller_id", "owning reseller"),
        ("profile_id", "profile"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    type Repr = DeviceTemplate;
    type Input = DeviceTemplateInput;

    /// Resellers read their templates; only admins write them: a template runs inside the
    /// server, and one that builds huge strings could take it down for every tenant.
    const ADMIN_WRITES: bool = true;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<DeviceTemplate>, Option<i64>)> {
        let w = q.where_scoped(actor, &["name"], &["reseller_id", "profile_id"])?;
        let (rows, n): (Vec<st::TemplateRow>, _) =
            list_as(c, st::TEMPLATE_COLS, "device_templates", &w, &q.page).await?;
        Ok((rows.into_iter().map(Into::into).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<DeviceTemplate>> {
        let r: Option<st::TemplateRow> =
            get_as(c, st::TEMPLATE_COLS, "device_templates", id, lock).await?;
        Ok(r.map(Into::into))
    }
    async fn create(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        i: DeviceTemplateInput,
    ) -> Result<Created> {
        save_template(c, actor, None, i).await.map(Into::into)
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        _: &DeviceTemplate,
        i: DeviceTemplateInput,
    ) -> Result<()> {
        save_template(c, actor, Some(id), i).await.map(|_| ())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &DeviceTemplate) -> Result<()> {
        crate::store::delete_row(c, "device_templates", id).await
    }
    fn id(r: &DeviceTemplate) -> i64 {
        r.id
    }
    fn reseller_of(r: &DeviceTemplate) -> Option<i64> {
        r.reseller_id
    }
}

async fn save_template(
    c: &mut Conn,
    actor: &Actor,
    id: Option<i64>,
    i: DeviceTemplateInput,
) -> Result<i64> {
    let name = template_name(&i.name)?;
    if i.content.len() > 256 * 1024 {
        return Err(Error::invalid("content", "at most 256 KiB"));
    }
    // The trial render is done before the transaction (see `prepare`).
    render::check_syntax(&name, &i.content)?;
    let owner = template_owner(c, actor, i.reseller_id, i.profile_id).await?;
    let dup = sqlx::query(
        "SELECT id FROM device_templates WHERE name = $1 AND COALESCE(reseller_id, 0) = $2 AND COALESCE(profile_id, 0) = $3",
    )
    .bind(name.clone())
    .bind(owner.unwrap_or(0))
    .bind(i.profile_id.unwrap_or(0))
    .fetch_optional(&mut *c)
    .await?;
    if let Some(row) = dup {
        let other: i64 = sqlx::Row::try_get(&row, 0)?;
        if Some(other) != id {
            return Err(Error::invalid(
                "name",
                "this scope already has a template of this name",
            ));
        }
    }
    st::save_template(
        c,
        id,
        owner,
        i.profile_id,
        &name,
        model::text("description", i.description, 500)?,
        &i.content,
    )
    .await
}

// ---------------------------------------------------------------------------------------
// Settings (profiles, customers, devices)

/// Validates a settings object: known settings by type, others as plain scalars; secrets
/// encrypted (a masked value keeps the stored one).
fn check_settings(app: &App, field: &str, v: Option<Value>, old: Option<&str>) -> Result<String> {
    let Some(v) = v else { return Ok("{}".into()) };
    let Value::Object(m) = v else {
        return Err(Error::invalid(field, "must be an object"));
    };
    let old: Map<String, Value> = old
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let mut out = Map::new();
    for (k, v) in m {
        let f = format!("{field}.{k}");
        if v.is_null() {
            continue;
        }
        let s = |max: usize| -> Result<Value> {
            match &v {
                Value::String(s) if s.len() <= max && !s.chars().any(char::is_control) => {
                    Ok(v.clone())
                }
                _ => Err(Error::invalid(
                    &f,
                    format!("must be text of at most {max} characters"),
                )),
            }
        };
        let int = |lo: i64, hi: i64| -> Result<Value> {
            match v.as_i64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(json!(n)),
                _ => Err(Error::invalid(
                    &f,
                    format!("must be an integer between {lo} and {hi}"),
                )),
            }
        };
        let val = match k.as_str() {
            "admin_password" => {
                if v.as_str() == Some(MASK) {
                    match old.get(&k) {
                        Some(x) => x.clone(),
                        None => return Err(Error::invalid(&f, "no stored password to keep")),
                    }
                } else {
                    s(64)?;
                    json!(app.cipher.encrypt(v.as_str().unwrap_or_default())?)
                }
            }
            "timezone" | "ntp_server" | "sip_server" | "outbound_proxy" | "syslog_server" => {
                s(255)?
            }
            "language" => s(16)?,
            "dial_plan" => s(1024)?,
            "provisioning_url" | "firmware_url" => {
                let x = s(500)?;
                let u = x.as_str().unwrap_or_default();
                // Phones fetch /prov/ over HTTP(S); firmware may also come by TFTP.
                let tftp = k == "firmware_url" && u.starts_with("tftp://");
                if !(u.starts_with("http://") || u.starts_with("https://") || tftp)
                    || url::Url::parse(u).is_err()
                {
                    return Err(Error::invalid(
                        &f,
                        "must be an http(s) URL (firmware: or tftp)",
                    ));
                }
                x
            }
            "transport" => match v.as_str() {
                Some("udp" | "tcp" | "tls") => v.clone(),
                _ => return Err(Error::invalid(&f, "must be udp, tcp or tls")),
            },
            "sip_port" => int(1, 65535)?,
            "vlan_id" => int(1, 4094)?,
            "registration_expires" => int(60, 86400)?,
            _ => {
                let good = k.len() <= 64
                    && k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                    });
                if !good {
                    return Err(Error::invalid(
                        &f,
                        "a setting name is lowercase letters, digits, _ and .",
                    ));
                }
                match &v {
                    Value::String(_) => s(1024)?,
                    Value::Number(_) | Value::Bool(_) => v.clone(),
                    _ => return Err(Error::invalid(&f, "must be text, a number or true/false")),
                }
            }
        };
        out.insert(k, val);
    }
    Ok(Value::Object(out).to_string())
}

/// Settings as shown: secrets masked.
fn show_settings(s: &str) -> Map<String, Value> {
    let mut m: Map<String, Value> = serde_json::from_str(s).unwrap_or_default();
    for k in SECRET_SETTINGS {
        if let Some(v) = m.get_mut(*k) {
            *v = json!(MASK);
        }
    }
    m
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeviceProfile {
    pub id: i64,
    pub reseller_id: i64,
    pub name: String,
    pub description: Option<String>,
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    #[serde(skip)]
    stored: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceProfileInput {
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub reseller_id: Option<i64>,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// timezone, language, ntp_server, admin_password, provisioning_url, firmware_url,
    /// vlan_id, transport, sip_port, sip_server, outbound_proxy, registration_expires,
    /// dial_plan, syslog_server, and any lowercase name of your own templates.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
}

pub struct DeviceProfiles;

#[async_trait]
impl Resource for DeviceProfiles {
    const NAME: &'static str = "pbxdeviceprofiles";
    const SUMMARY: &'static str =
        "Settings shared by many devices (time zone, language, NTP, admin password, VLAN…)";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] = &["id", "create_timestamp", "modify_timestamp"];
    type Repr = DeviceProfile;
    type Input = DeviceProfileInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<DeviceProfile>, Option<i64>)> {
        let w = q.where_scoped(actor, &["name"], &["reseller_id"])?;
        let (rows, n): (Vec<st::ProfileRow>, _) =
            list_as(c, st::PROFILE_COLS, "device_profiles", &w, &q.page).await?;
        Ok((rows.into_iter().map(profile_repr).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<DeviceProfile>> {
        let r: Option<st::ProfileRow> =
            get_as(c, st::PROFILE_COLS, "device_profiles", id, lock).await?;
        Ok(r.map(profile_repr))
    }
    async fn create(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        i: DeviceProfileInput,
    ) -> Result<Created> {
        let r = actor.owning_reseller(i.reseller_id)?;
        check_reseller(c, r).await?;
        let name = model::non_empty("name", i.name, 128)?;
        let settings = check_settings(app, "settings", i.settings, None)?;
        unique_profile(c, r, &name, None).await?;
        Ok(st::save_profile(
            c,
            None,
            r,
            &name,
            model::text("description", i.description, 500)?,
            &settings,
        )
        .await?
        .into())
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &DeviceProfile,
        i: DeviceProfileInput,
    ) -> Result<()> {
        let r = match (actor.scope(), i.reseller_id) {
            (None, Some(r)) if r != old.reseller_id => {
                if exists(c, "devices", "profile_id = $1", id).await? {
                    return Err(Error::invalid(
                        "reseller_id",
                        "cannot change while devices use this profile",
                    ));
                }
                check_reseller(c, r).await?;
                r
            }
            _ => old.reseller_id,
        };
        let name = model::non_empty("name", i.name, 128)?;
        let settings = check_settings(app, "settings", i.settings, Some(&old.stored))?;
        unique_profile(c, r, &name, Some(id)).await?;
        if r != old.reseller_id {
            // The profile's templates move with it.
            sqlx::query("UPDATE device_templates SET reseller_id = $1 WHERE profile_id = $2")
                .bind(r)
                .bind(id)
                .execute(&mut *c)
                .await?;
        }
        st::save_profile(
            c,
            Some(id),
            r,
            &name,
            model::text("description", i.description, 500)?,
            &settings,
        )
        .await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &DeviceProfile) -> Result<()> {
        if exists(c, "devices", "profile_id = $1", id).await? {
            return Err(Error::Locked(format!("profile {id} is used by devices")));
        }
        sqlx::query("DELETE FROM device_templates WHERE profile_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        crate::store::delete_row(c, "device_profiles", id).await
    }
    fn id(r: &DeviceProfile) -> i64 {
        r.id
    }
    fn reseller_of(r: &DeviceProfile) -> Option<i64> {
        Some(r.reseller_id)
    }
}

fn profile_repr(r: st::ProfileRow) -> DeviceProfile {
    DeviceProfile {
        id: r.id,
        reseller_id: r.reseller_id,
        name: r.name,
        description: r.description,
        settings: show_settings(&r.settings),
        create_timestamp: r.create_timestamp,
        modify_timestamp: r.modify_timestamp,
        stored: r.settings,
    }
}

async fn unique_profile(c: &mut Conn, reseller: i64, name: &str, id: Option<i64>) -> Result<()> {
    let row = sqlx::query("SELECT id FROM device_profiles WHERE reseller_id = $1 AND name = $2")
        .bind(reseller)
        .bind(name.to_string())
        .fetch_optional(&mut *c)
        .await?;
    if let Some(row) = row {
        if Some(sqlx::Row::try_get::<i64, _>(&row, 0)?) != id {
            return Err(Error::invalid(
                "name",
                "this reseller already has a profile of this name",
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CustomerSettings {
    /// The customer's id.
    pub id: i64,
    pub customer_id: i64,
    pub reseller_id: i64,
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    /// Addresses phones of this customer may fetch from (empty: any).
    pub allowed_cidrs: Vec<String>,
    /// HTTP user name for devices with auth `customer`.
    pub prov_username: Option<String>,
    /// Masked; set a new one to change it.
    pub prov_password: Option<String>,
    pub modify_timestamp: Option<String>,
    #[serde(skip)]
    stored: (String, Option<String>),
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerSettingsInput {
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    #[serde(default)]
    pub allowed_cidrs: Vec<String>,
    #[serde(default)]
    pub prov_username: Option<String>,
    #[serde(default)]
    pub prov_password: Option<String>,
}

pub struct CustomerDeviceSettings;

#[async_trait]
impl Resource for CustomerDeviceSettings {
    const NAME: &'static str = "pbxcustomersettings";
    const SUMMARY: &'static str = "A customer's phone provisioning: settings, allowed addresses, shared HTTP credentials (id = the customer's id)";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[("reseller_id", "owning reseller")];
    const READ_ONLY: &'static [&'static str] =
        &["id", "customer_id", "reseller_id", "modify_timestamp"];
    type Repr = CustomerSettings;
    type Input = CustomerSettingsInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<CustomerSettings>, Option<i64>)> {
        let w = q.where_scoped(actor, &[], &["reseller_id"])?;
        let (rows, n): (Vec<st::CustomerSettingsRow>, _) = list_as(
            c,
            st::CUSTOMER_SETTINGS_COLS,
            st::CUSTOMER_SETTINGS_FROM,
            &w,
            &q.page,
        )
        .await?;
        Ok((rows.into_iter().map(cust_repr).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<CustomerSettings>> {
        let r: Option<st::CustomerSettingsRow> = get_from_view(
            c,
            "customers",
            st::CUSTOMER_SETTINGS_COLS,
            st::CUSTOMER_SETTINGS_FROM,
            id,
            lock,
        )
        .await?;
        Ok(r.map(cust_repr))
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        _: &Actor,
        id: i64,
        old: &CustomerSettings,
        i: CustomerSettingsInput,
    ) -> Result<()> {
        let settings = check_settings(app, "settings", i.settings, Some(&old.stored.0))?;
        let mut cidrs = Vec::new();
        for (n, s) in i.allowed_cidrs.iter().enumerate() {
            let net: ipnet::IpNet = s
                .parse()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    Error::invalid(
                        format!("allowed_cidrs[{n}]"),
                        "must be an address or CIDR such as 192.0.2.0/24",
                    )
                })?;
            cidrs.push(net.to_string());
        }
        if cidrs.len() > 100 {
            return Err(Error::invalid("allowed_cidrs", "at most 100 entries"));
        }
        let user = model::text("prov_username", i.prov_username, 64)?;
        if user.as_deref().is_some_and(|u| u.contains(':')) {
            return Err(Error::invalid("prov_username", "must not contain ':'"));
        }
        let pass = match i.prov_password.as_deref() {
            Some(MASK) => old.stored.1.clone(),
            Some("") | None => None,
            Some(p) if p.len() < 8 || p.len() > 128 => {
                return Err(Error::invalid(
                    "prov_password",
                    "between 8 and 128 characters",
                ))
            }
            Some(p) => Some(app.cipher.encrypt(p)?),
        };
        if user.is_some() != pass.is_some() {
            return Err(Error::invalid(
                "prov_password",
                "user name and password go together",
            ));
        }
        st::save_customer_settings(
            c,
            id,
            &settings,
            &serde_json::to_string(&cidrs).map_err(Error::internal)?,
            user,
            pass,
        )
        .await
    }
    fn id(r: &CustomerSettings) -> i64 {
        r.id
    }
    fn reseller_of(r: &CustomerSettings) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &CustomerSettings) -> Vec<(&'static str, String)> {
        vec![("customers", format!("/api/customers/{}", r.customer_id))]
    }
}

fn cust_repr(r: st::CustomerSettingsRow) -> CustomerSettings {
    let stored = r.settings.clone().unwrap_or_else(|| "{}".into());
    CustomerSettings {
        id: r.id,
        customer_id: r.id,
        reseller_id: r.reseller_id,
        settings: show_settings(&stored),
        allowed_cidrs: r
            .allowed_cidrs
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default(),
        prov_username: r.prov_username,
        prov_password: r.prov_password_enc.as_ref().map(|_| MASK.to_string()),
        modify_timestamp: r.modify_timestamp,
        stored: (stored, r.prov_password_enc),
    }
}

// ---------------------------------------------------------------------------------------
// Devices

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Device {
    pub id: i64,
    /// The MAC address, 12 lowercase hex digits.
    pub identifier: String,
    pub customer_id: i64,
    pub reseller_id: i64,
    pub model_id: i64,
    pub profile_id: Option<i64>,
    pub station_name: Option<String>,
    pub lines: Vec<LineSpec>,
    #[schema(value_type = Object)]
    pub settings: Map<String, Value>,
    /// token (URL token, default) | basic | digest (the device's own secret) | customer
    /// (the customer's shared credentials).
    pub auth: String,
    /// Whether the phone has traded its first-boot token for its long-lived one.
    pub token_traded: bool,
    pub last_fetch_timestamp: Option<String>,
    pub last_fetch_address: Option<String>,
    pub last_fetch_user_agent: Option<String>,
    pub last_fetch_file: Option<String>,
    pub fetch_count: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    #[serde(skip)]
    stored_settings: String,
}

const DEVICE_VOLATILE: &[&str] = &[
    "token_traded",
    "last_fetch_timestamp",
    "last_fetch_address",
    "last_fetch_user_agent",
    "last_fetch_file",
    "fetch_count",
];

fn device_repr(r: st::DeviceRow) -> Device {
    Device {
        id: r.id,
        identifier: r.identifier,
        customer_id: r.customer_id,
        reseller_id: r.reseller_id,
        model_id: r.model_id,
        profile_id: r.profile_id,
        station_name: r.station_name,
        lines: serde_json::from_str(&r.lines).unwrap_or_default(),
        settings: show_settings(&r.settings),
        auth: r.auth,
        token_traded: r.token_used != 0,
        last_fetch_timestamp: r.last_fetch_ts,
        last_fetch_address: r.last_fetch_addr,
        last_fetch_user_agent: r.last_fetch_ua,
        last_fetch_file: r.last_fetch_file,
        fetch_count: r.fetch_count,
        create_timestamp: r.create_timestamp,
        modify_timestamp: r.modify_timestamp,
        stored_settings: r.settings,
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceInput {
    /// The MAC address in any usual form (00:15:65:aa:bb:cc, 0015.65aa.bbcc, 001565AABBCC).
    pub identifier: String,
    #[serde(deserialize_with = "model::int")]
    pub customer_id: i64,
    #[serde(deserialize_with = "model::int")]
    pub model_id: i64,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub profile_id: Option<i64>,
    #[serde(default)]
    pub station_name: Option<String>,
    #[serde(default)]
    pub lines: Vec<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<Value>,
    #[serde(default)]
    pub auth: Option<String>,
}

pub fn parse_mac(field: &str, s: &str) -> Result<String> {
    let hex: String = s
        .chars()
        .filter(|c| !matches!(c, ':' | '-' | '.' | ' '))
        .collect::<String>()
        .to_ascii_lowercase();
    if hex.len() != 12 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid(
            field,
            "must be a MAC address (12 hex digits)",
        ));
    }
    if hex == "000000000000" || hex == "ffffffffffff" {
        return Err(Error::invalid(field, "is not a device's MAC address"));
    }
    Ok(hex)
}

async fn device_fields(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    i: DeviceInput,
    old: Option<&Device>,
) -> Result<st::DeviceFields> {
    let identifier = parse_mac("identifier", &i.identifier)?;
    let cust = sqlx::query("SELECT reseller_id, status FROM customers WHERE id = $1")
        .bind(i.customer_id)
        .fetch_optional(&mut *c)
        .await?;
    let reseller_id: i64 = match cust {
        Some(row) => {
            let r: i64 = sqlx::Row::try_get(&row, 0)?;
            let status: String = sqlx::Row::try_get(&row, 1)?;
            if actor.scope().is_some_and(|s| s != r) || status == "terminated" {
                return Err(Error::invalid("customer_id", "no such customer"));
            }
            r
        }
        None => return Err(Error::invalid("customer_id", "no such customer")),
    };
    let m: Option<st::ModelRow> =
        get_as(c, st::MODEL_COLS, "device_models", i.model_id, false).await?;
    let Some(m) = m else {
        return Err(Error::invalid("model_id", "no such device model"));
    };
    if m.kind != "phone" {
        return Err(Error::invalid(
            "model_id",
            "an expansion module is not a device of its own",
        ));
    }
    if let Some(p) = i.profile_id {
        match st::profile(c, p).await? {
            Some(pr) if pr.reseller_id == reseller_id => {}
            _ => {
                return Err(Error::invalid(
                    "profile_id",
                    "no such profile of the customer's reseller",
                ))
            }
        }
    }
    let auth = i.auth.unwrap_or_else(|| "token".into());
    if !["token", "basic", "digest", "customer"].contains(&auth.as_str()) {
        return Err(Error::invalid(
            "auth",
            "must be token, basic, digest or customer",
        ));
    }
    // Lines: accounts within the model's lines, keys within its keys (and modules').
    let mut lines = Vec::new();
    let mut subs = Vec::new();
    let mut accounts = std::collections::BTreeSet::new();
    let mut keys = 0;
    for (n, v) in i.lines.into_iter().enumerate() {
        let f = format!("lines[{n}]");
        let l: LineSpec =
            serde_json::from_value(v).map_err(|e| Error::invalid(&f, e.to_string()))?;
        match l.kind.as_str() {
            "private" | "shared" | "blf" | "speeddial" => {}
            _ => {
                return Err(Error::invalid(
                    format!("{f}.type"),
                    "must be private, shared, blf or speeddial",
                ))
            }
        }
        let account = l.kind == "private" || l.kind == "shared";
        if let Some(s) = l.subscriber_id {
            let row = sqlx::query("SELECT customer_id, status FROM subscribers WHERE id = $1")
                .bind(s)
                .fetch_optional(&mut *c)
                .await?;
            let ok = match row {
                Some(r) => {
                    let cust: i64 = sqlx::Row::try_get(&r, 0)?;
                    let status: String = sqlx::Row::try_get(&r, 1)?;
                    // Accounts carry credentials: only the customer's own subscribers. A BLF
                    // key may watch a colleague of the same reseller's customer only too.
                    cust == i.customer_id && status != "terminated"
                }
                None => false,
            };
            if !ok {
                return Err(Error::invalid(
                    format!("{f}.subscriber_id"),
                    "no such subscriber of this customer",
                ));
            }
            subs.push(s);
        } else if account {
            return Err(Error::invalid(
                format!("{f}.subscriber_id"),
                "an account line needs a subscriber",
            ));
        } else if l.target.is_none() {
            return Err(Error::invalid(
                format!("{f}.target"),
                "a key needs a subscriber_id or a target",
            ));
        }
        if let Some(t) = &l.target {
            if t.is_empty()
                || t.len() > 128
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+*#._-@".contains(c))
            {
                return Err(Error::invalid(
                    format!("{f}.target"),
                    "a number, extension or user name",
                ));
            }
        }
        if let Some(lb) = &l.label {
            if lb.len() > 64 || lb.chars().any(char::is_control) {
                return Err(Error::invalid(
                    format!("{f}.label"),
                    "at most 64 characters, no control characters",
                ));
            }
        }
        if account {
            let idx = l.line.unwrap_or(accounts.len() as i64 + 1);
            if idx < 1 || idx > m.lines || !accounts.insert(idx) {
                return Err(Error::invalid(
                    format!("{f}.line"),
                    format!("{} has accounts 1 to {}, each used once", m.model, m.lines),
                ));
            }
        } else {
            keys += 1;
            if keys > m.keys + m.expansion_modules * m.expansion_keys {
                return Err(Error::invalid(
                    f,
                    format!("{} has {} programmable keys", m.model, m.keys),
                ));
            }
        }
        lines.push(l);
    }
    Ok(st::DeviceFields {
        identifier,
        customer_id: i.customer_id,
        reseller_id,
        model_id: i.model_id,
        profile_id: i.profile_id,
        station_name: model::text("station_name", i.station_name, 64)?,
        lines: serde_json::to_string(&lines).map_err(Error::internal)?,
        settings: check_settings(
            app,
            "settings",
            i.settings,
            old.map(|o| o.stored_settings.as_str()),
        )?,
        auth,
        subscriber_ids: subs,
    })
}

pub struct Devices;

#[async_trait]
impl Resource for Devices {
    const NAME: &'static str = "pbxdevices";
    const SUMMARY: &'static str = "Desk phones by MAC: model, customer, profile, lines and keys, settings, how they authenticate";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("identifier", "MAC, * wildcard"),
        ("customer_id", "customer"),
        ("reseller_id", "owning reseller"),
        ("model_id", "device model"),
        ("profile_id", "profile"),
        ("station_name", "station name, * wildcard"),
        (
            "fetched",
            "true: only devices that have fetched a file; false: only those that have not",
        ),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("identifier", "identifier"),
        ("last_fetch", "last_fetch_ts"),
    ];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const VOLATILE: &'static [&'static str] = DEVICE_VOLATILE;
    type Repr = Device;
    type Input = DeviceInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Device>, Option<i64>)> {
        let mut w = q.where_scoped(
            actor,
            &["station_name"],
            &["customer_id", "reseller_id", "model_id", "profile_id"],
        )?;
        if let Some(v) = q.get("identifier") {
            let v: String = v
                .chars()
                .filter(|c| !matches!(c, ':' | '-' | '.'))
                .collect::<String>()
                .to_ascii_lowercase();
            w.text_filter("identifier", &v);
        }
        match q.get("fetched") {
            Some("true") => {
                w.raw("last_fetch_ts IS NOT NULL");
            }
            Some("false") => {
                w.raw("last_fetch_ts IS NULL");
            }
            Some(v) => {
                return Err(Error::BadRequest(format!(
                    "fetched: '{v}' is not true or false"
                )))
            }
            None => {}
        }
        let (rows, n): (Vec<st::DeviceRow>, _) =
            list_as(c, st::DEVICE_COLS, "devices", &w, &q.page).await?;
        Ok((rows.into_iter().map(device_repr).collect(), n))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Device>> {
        let r: Option<st::DeviceRow> = get_as(c, st::DEVICE_COLS, "devices", id, lock).await?;
        Ok(r.map(device_repr))
    }
    async fn create(c: &mut Conn, app: &App, actor: &Actor, i: DeviceInput) -> Result<Created> {
        let f = device_fields(c, app, actor, i, None).await?;
        if st::device_by(c, "identifier", &f.identifier)
            .await?
            .is_some()
        {
            return Err(Error::invalid(
                "identifier",
                "a device with this MAC exists",
            ));
        }
        let secret = crate::crypto::random_token(18);
        let boot = new_token();
        let expires = chrono::Utc::now().timestamp() + app.cfg.prov.boot_token_days as i64 * 86400;
        let id = st::save_device(
            c,
            None,
            &f,
            Some((&app.cipher.encrypt(&secret)?, &token_hash(&boot), expires)),
        )
        .await?;
        Ok(Created {
            id,
            once: Some(device_secrets(app, &f.auth, &boot, &secret)),
        })
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &Device,
        i: DeviceInput,
    ) -> Result<()> {
        let f = device_fields(c, app, actor, i, Some(old)).await?;
        if f.identifier != old.identifier
            && st::device_by(c, "identifier", &f.identifier)
                .await?
                .is_some()
        {
            return Err(Error::invalid(
                "identifier",
                "a device with this MAC exists",
            ));
        }
        st::save_device(c, Some(id), &f, None).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &Device) -> Result<()> {
        st::delete_device(c, id).await
    }
    fn id(r: &Device) -> i64 {
        r.id
    }
    fn reseller_of(r: &Device) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &Device) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("customers", format!("/api/customers/{}", r.customer_id)),
            (
                "pbxdevicemodels",
                format!("/api/pbxdevicemodels/{}", r.model_id),
            ),
        ];
        if let Some(p) = r.profile_id {
            v.push(("pbxdeviceprofiles", format!("/api/pbxdeviceprofiles/{p}")));
        }
        v
    }
}

/// The secrets shown once: the first-boot provisioning URL and the device's password.
fn device_secrets(app: &App, auth: &str, boot: &str, secret: &str) -> Map<String, Value> {
    let base = app
        .cfg
        .prov
        .base_url
        .clone()
        .unwrap_or_else(|| "/prov/".into());
    let mut m = Map::new();
    if auth == "token" {
        m.insert("boot_token".into(), json!(boot));
        m.insert("provisioning_url".into(), json!(format!("{base}{boot}/")));
    }
    m.insert("secret".into(), json!(secret));
    m
}

// ---------------------------------------------------------------------------------------
// Extra routes

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/pbxdevicemodels/tree", get(tree))
        .route("/api/pbxdevicemodels/detect", get(detect))
        .route("/api/pbxdevicetemplates/builtin", get(builtin))
        .route("/api/pbxdevicetemplates/import_kazoo", post(import_kazoo))
        .route("/api/pbxdevices/{id}/preview", get(preview))
        .route("/api/pbxdevices/{id}/fetches", get(fetches))
        .route("/api/pbxdevices/{id}/reset_token", post(reset_token))
        .route("/api/pbxdevices/{id}/reset_secret", post(reset_secret))
        .route("/api/pbxdevices/{id}/resync", post(resync))
        .route("/api/pbxprovbans/", get(bans))
        .route("/api/pbxdevicecache", get(cache_stats))
        .route("/api/pbxprovbans/{ip}", axum::routing::delete(lift_ban))
}

async fn tree(State(app): State<AppState>, Auth(_): Auth) -> Result<Response> {
    Ok(Json(app.devices.catalog().tree()).into_response())
}

#[derive(Deserialize)]
struct DetectQuery {
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    mac: Option<String>,
}

async fn detect(
    State(app): State<AppState>,
    Auth(_): Auth,
    Query(q): Query<DetectQuery>,
) -> Result<Response> {
    let mac = q.mac.as_deref().map(|m| parse_mac("mac", m)).transpose()?;
    let ua = q.user_agent.unwrap_or_default();
    match app.devices.catalog().detect(&ua, mac.as_deref()) {
        Some(m) => Ok(Json(DeviceModel::from(m.row.clone())).into_response()),
        None => Err(Error::NotFound("no model matches".into())),
    }
}

async fn builtin(Auth(_): Auth) -> Result<Response> {
    let v: Vec<Value> = render::builtin_templates()
        .iter()
        .map(|(n, c)| json!({"name": n, "content": c}))
        .collect();
    Ok(Json(json!({ "templates": v })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KazooImport {
    document: Value,
    name: String,
    /// kv (key = value lines, Yealink style) or snom (Snom XML settings).
    format: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    reseller_id: Option<i64>,
    #[serde(default)]
    profile_id: Option<i64>,
}

/// Turns a kazoo-provision template document into a template of ours.
async fn import_kazoo(
    State(app): State<AppState>,
    Auth(actor): Auth,
    body: Body,
) -> Result<Response> {
    DeviceTemplates::check_access(&actor, true)?;
    let bytes = axum::body::to_bytes(body, app.cfg.max_body_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge(app.cfg.max_body_bytes))?;
    let v: Value = crate::http::resource::parse_json(&bytes)?;
    let i: KazooImport = crate::http::resource::to_input(v, &[], None)?;
    let content = render::import_kazoo(&i.document, &i.format)?;
    let v = json!({
        "name": i.name, "content": content, "description": i.description,
        "reseller_id": i.reseller_id, "profile_id": i.profile_id,
    });
    DeviceTemplates::prepare(&app, &actor, &v).await?;
    let mut tx = app.store.begin().await?;
    let (created, repr) = create_one::<DeviceTemplates>(&mut tx, &app, &actor, v).await?;
    tx.commit().await?;
    let mut resp = (StatusCode::CREATED, Json(repr)).into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!("/api/pbxdevicetemplates/{}", created.id))
    {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

async fn visible_device(app: &App, actor: &Actor, id: &str, write: bool) -> Result<Device> {
    Devices::check_access(actor, write)?;
    let id = parse_id(id)?;
    let mut c = app.store.read().await?;
    match Devices::load(&mut c, app, id, false).await? {
        Some(d) if Devices::visible(&d, actor) => Ok(d),
        _ => Err(Error::NotFound(format!("pbxdevices {id} not found"))),
    }
}

#[derive(Deserialize)]
struct PreviewQuery {
    #[serde(default)]
    file: Option<String>,
    /// Show passwords (writers only); masked otherwise.
    #[serde(default)]
    reveal: Option<bool>,
}

/// Renders a device's file as it would be served, without serving it (no fetch recorded,
/// no token traded). Passwords are masked unless `reveal=true`.
async fn preview(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    Query(q): Query<PreviewQuery>,
) -> Result<Response> {
    let reveal = q.reveal.unwrap_or(false);
    let dev = visible_device(&app, &actor, &id, reveal).await?;
    let (loaded, _) = app.devices.refresh(&dev.identifier).await;
    let crate::devices::Loaded::Found(data) = loaded else {
        return Err(Error::Unavailable("the device could not be loaded".into()));
    };
    let name = match q.file {
        Some(f) => f,
        None => {
            let spec = data
                .model
                .files
                .iter()
                .find(|f| f.per_device)
                .or(data.model.files.first());
            let Some(spec) = spec else {
                return Err(Error::NotFound("the model requests no files".into()));
            };
            data.model.file_name(spec, &data.mac)
        }
    };
    let Some((spec, mac)) = data.model.match_file(&name) else {
        return Err(Error::invalid("file", "not a file this model requests"));
    };
    if mac.is_some_and(|m| m != data.mac) {
        return Err(Error::invalid("file", "names another device's MAC"));
    }
    let shown = data.clone_masked(!reveal);
    let base = app
        .cfg
        .prov
        .base_url
        .clone()
        .unwrap_or_else(|| "http://voxprov.invalid/prov/".into());
    let r = app.devices.preview(&shown, spec, &base)?;
    Ok((
        [
            (header::CONTENT_TYPE, r.content_type.clone()),
            (header::CACHE_CONTROL, "no-store".into()),
        ],
        r.body,
    )
        .into_response())
}

async fn fetches(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let dev = visible_device(&app, &actor, &id, false).await?;
    let mut c = app.store.read().await?;
    let rows = st::fetches_of(&mut c, dev.id, 100).await?;
    Ok(Json(json!({ "fetches": rows })).into_response())
}

/// A new first-boot token (a replaced or factory-reset phone); the long-lived one dies.
async fn reset_token(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let dev = visible_device(&app, &actor, &id, true).await?;
    if dev.auth != "token" {
        return Err(Error::Conflict(
            "this device does not use token URLs".into(),
        ));
    }
    let boot = new_token();
    let expires = chrono::Utc::now().timestamp() + app.cfg.prov.boot_token_days as i64 * 86400;
    let mut tx = app.store.begin().await?;
    st::reset_tokens(&mut tx, dev.id, &token_hash(&boot), expires).await?;
    let after = Devices::load(&mut tx, &app, dev.id, false)
        .await?
        .ok_or_else(|| Error::not_found("device"))?;
    record::<Devices>(&mut tx, &actor, Op::Update, Some(&dev), Some(&after)).await?;
    tx.commit().await?;
    let base = app
        .cfg
        .prov
        .base_url
        .clone()
        .unwrap_or_else(|| "/prov/".into());
    Ok(
        Json(json!({"boot_token": boot, "provisioning_url": format!("{base}{boot}/")}))
            .into_response(),
    )
}

async fn reset_secret(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let dev = visible_device(&app, &actor, &id, true).await?;
    let secret = crate::crypto::random_token(18);
    let mut tx = app.store.begin().await?;
    st::set_secret(&mut tx, dev.id, &app.cipher.encrypt(&secret)?).await?;
    let after = Devices::load(&mut tx, &app, dev.id, false)
        .await?
        .ok_or_else(|| Error::not_found("device"))?;
    record::<Devices>(&mut tx, &actor, Op::Update, Some(&dev), Some(&after)).await?;
    tx.commit().await?;
    Ok(Json(json!({ "secret": secret })).into_response())
}

/// What the provisioning cache holds (admins): phones served without the database.
async fn cache_stats(State(app): State<AppState>, Auth(actor): Auth) -> Result<Response> {
    actor.check_admin()?;
    let (devices, files, warm) = app.devices.stats();
    Ok(Json(json!({"devices": devices, "files": files, "warm": warm})).into_response())
}

async fn bans(State(app): State<AppState>, Auth(actor): Auth) -> Result<Response> {
    actor.check_admin()?;
    let v: Vec<Value> = app
        .devices
        .bans
        .list()
        .into_iter()
        .map(
            |(ip, left, n)| json!({"address": ip.to_string(), "seconds_left": left, "failures": n}),
        )
        .collect();
    Ok(Json(json!({ "bans": v })).into_response())
}

async fn lift_ban(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(ip): Path<String>,
) -> Result<Response> {
    actor.check_admin()?;
    actor.check_write()?;
    let ip: std::net::IpAddr = ip
        .parse()
        .map_err(|_| Error::BadRequest("not an IP address".into()))?;
    if app.devices.bans.lift(ip) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Error::NotFound("no ban for this address".into()))
    }
}

/// Tells the phone to re-read its configuration: SIP NOTIFY (Event: check-sync) to every
/// contact its accounts have registered, sent by the Kamailio that holds the registration
/// (usrloc lookup and a transaction started over its JSON-RPC).
async fn resync(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    let dev = visible_device(&app, &actor, &id, true).await?;
    let (aors, servers) = {
        let mut c = app.store.read().await?;
        let ids: Vec<i64> = dev
            .lines
            .iter()
            .filter(|l| l.kind == "private" || l.kind == "shared")
            .filter_map(|l| l.subscriber_id)
            .collect();
        let subs = st::line_subscribers(&mut c, &ids).await?;
        let aors: Vec<String> = subs
            .iter()
            .map(|s| format!("{}@{}", s.username, s.domain))
            .collect();
        (aors, st::rpc_servers(&mut c).await?)
    };
    if aors.is_empty() {
        return Err(Error::Conflict("the device has no account lines".into()));
    }
    let mut sent = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, name, _, url) in servers.iter().filter(|s| s.2 == "kamailio") {
        for aor in &aors {
            let found =
                match crate::targets::rpc::call_with(url, "ul.lookup", json!(["location", aor]))
                    .await
                {
                    Ok(v) => v,
                    // Not registered there: usrloc answers an error.
                    Err(_) => continue,
                };
            let mut contacts = Vec::new();
            collect_addresses(&found, &mut contacts);
            for contact in contacts {
                if !seen.insert(contact.clone()) {
                    continue;
                }
                let domain = aor.split_once('@').map(|x| x.1).unwrap_or("");
                let headers = format!(
                    "From: <sip:voxprov@{domain}>;tag={}\r\nTo: <sip:{aor}>\r\nEvent: check-sync;reboot=false\r\n\
                     Subscription-State: terminated;reason=noresource\r\nContact: <sip:voxprov@{domain}>\r\n",
                    uuid::Uuid::new_v4().simple()
                );
                let r = crate::targets::rpc::call_with(
                    url,
                    "tm.t_uac_start",
                    json!(["NOTIFY", contact, ".", ".", headers, ""]),
                )
                .await;
                match r {
                    Ok(_) => sent.push(json!({"aor": aor, "contact": contact, "sipserver": name})),
                    Err(e) => {
                        errors.push(json!({"aor": aor, "sipserver": name, "error": e.to_string()}))
                    }
                }
            }
        }
    }
    if sent.is_empty() {
        return Err(Error::Conflict(if errors.is_empty() {
            "no registered contact of this device's accounts was found on a Kamailio with an rpc_url".into()
        } else {
            format!("no NOTIFY could be sent: {}", Value::Array(errors))
        }));
    }
    Ok(Json(json!({ "notified": sent, "errors": errors })).into_response())
}

/// Every contact URI in a usrloc lookup answer (`"Address": "sip:…"`, at any depth).
fn collect_addresses(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("Address", Value::String(s)) if s.starts_with("sip") => out.push(s.clone()),
                    _ => collect_addresses(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_addresses(x, out)),
        _ => {}
    }
}
