//! `/api/pbxextensions/`: a tenant's extension (SARK's extensions). Each is a subscriber of
//! the tenant's customer in the tenant's domain (user name `<extension>-<tenant id>` unless
//! given), so its credentials, call forwards, preferences and registrations are the
//! subscriber's; `provisioned` ones also get a phone (`/api/pbxdevices/`) by MAC with the
//! extension on its first line. `mailbox` extensions are voicemail-only boxes: stored, and
//! their subscriber locked until a media service serves them.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use super::*;
use crate::app::App;
use crate::resources::devices::Devices;
use crate::resources::subscribers::{self, Subscribers};
use crate::resources::write::{create_one, delete_one};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::pbx::{PbxExtension, EXTENSION_COLS, EXTENSION_VIEW};
use crate::store::{list_as, save_row, Arg};

pub struct PbxExtensions;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtensionInput {
    #[serde(default, alias = "cluster")]
    #[schema(value_type = i64)]
    pub tenant_id: Value,
    /// The short number: as many digits as the tenant's `localdplan` has places.
    #[serde(default, alias = "pkey")]
    #[schema(value_type = String)]
    pub extension: Value,
    /// provisioned (needs `macaddr`) | unprovisioned | mailbox. Kept once created.
    #[serde(default, rename = "type")]
    #[schema(value_type = String)]
    pub kind: Value,
    /// The SIP user name (creation only; default `<extension>-<tenant id>`).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub username: Value,
    /// The SIP password (creation only; default: a random one, readable on the subscriber).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub password: Value,
    /// provisioned: the phone's MAC, 12 hex digits.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub macaddr: Value,
    /// provisioned: the phone's model (`/api/pbxdevicemodels/`); default: the one model of
    /// the catalog the MAC's vendor prefix belongs to.
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    pub model_id: Value,
    /// YES (default) | NO: NO locks the subscriber.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub active: Value,
    /// desk | cell. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub callbackto: Value,
    /// integer|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub callerid: Value,
    /// integer|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub cellphone: Value,
    /// ON | OFF (default). Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub celltwin: Value,
    /// None | OTR | OTRR | Inbound.Outbound | Both. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub devicerec: Value,
    /// Another extension of the tenant|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub dvrvmail: Value,
    /// local (default) | remote. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub location: Value,
    /// IPV4 | IPV6. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub protocol: Value,
    /// string|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub provision: Value,
    /// IP | FQDN. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub provisionwith: Value,
    /// No | Once | Always (default). Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub sndcreds: Value,
    /// udp (default) | tcp | tls. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub transport: Value,
    /// email|nullable. Stored only.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub vmailfwd: Value,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Value,
}

/// The SARK fields every write sets (the same on creation and update), every problem
/// gathered.
async fn settings(
    c: &mut Conn,
    tenant: &PbxTenant,
    i: &ExtensionInput,
    own: &str,
) -> Result<Vec<(&'static str, Arg)>> {
    let mut p = Problems::default();
    let dvrvmail = p.value(voicemail_of(c, tenant, &i.dvrvmail, own).await)?;
    let t = |s: &str| s.to_string();
    let active = p.value(one_of("active", &i.active, &["YES", "NO"]))?;
    let callbackto = p.value(one_of("callbackto", &i.callbackto, &["desk", "cell"]))?;
    let callerid = p.value(digits("callerid", &i.callerid, 20))?;
    let cellphone = p.value(digits("cellphone", &i.cellphone, 20))?;
    let celltwin = p.value(one_of("celltwin", &i.celltwin, &["ON", "OFF"]))?;
    let devicerec = p.value(one_of(
        "devicerec",
        &i.devicerec,
        &["None", "OTR", "OTRR", "Inbound.Outbound", "Both"],
    ))?;
    let location = p.value(one_of("location", &i.location, &["local", "remote"]))?;
    let protocol = p.value(one_of("protocol", &i.protocol, &["IPV4", "IPV6"]))?;
    let provision = p.value(string("provision", &i.provision, 4096))?;
    let provisionwith = p.value(one_of("provisionwith", &i.provisionwith, &["IP", "FQDN"]))?;
    let sndcreds = p.value(one_of("sndcreds", &i.sndcreds, &["No", "Once", "Always"]))?;
    let transport = p.value(one_of("transport", &i.transport, &["udp", "tcp", "tls"]))?;
    let vmailfwd = p.value(email("vmailfwd", &i.vmailfwd))?;
    let description = p.value(string("description", &i.description, 255))?;
    p.finish()?;
    Ok(vec![
        ("active", Arg::Text(active.unwrap_or(t("YES")))),
        ("callbackto", Arg::opt_text(callbackto)),
        ("callerid", Arg::opt_text(callerid)),
        ("cellphone", Arg::opt_text(cellphone)),
        ("celltwin", Arg::Text(celltwin.unwrap_or(t("OFF")))),
        ("devicerec", Arg::opt_text(devicerec)),
        ("dvrvmail", Arg::opt_text(dvrvmail)),
        ("location", Arg::Text(location.unwrap_or(t("local")))),
        ("protocol", Arg::opt_text(protocol)),
        ("provision", Arg::opt_text(provision)),
        ("provisionwith", Arg::opt_text(provisionwith)),
        ("sndcreds", Arg::Text(sndcreds.unwrap_or(t("Always")))),
        ("transport", Arg::Text(transport.unwrap_or(t("udp")))),
        ("vmailfwd", Arg::opt_text(vmailfwd)),
        ("description", Arg::opt_text(description)),
    ])
}

/// Where an extension's voicemail goes: itself or another extension of the tenant.
async fn voicemail_of(
    c: &mut Conn,
    tenant: &PbxTenant,
    v: &Value,
    own: &str,
) -> Result<Option<String>> {
    let dvrvmail = digits("dvrvmail", v, 8)?;
    if let Some(d) = &dvrvmail {
        let found = st::extension_id(c, tenant.id, d).await?;
        // (`own` is empty when the extension's own number was refused: not judged then.)
        if found.is_none() && d != own && !own.is_empty() {
            return Err(Error::invalid(
                "dvrvmail",
                format!("tenant {} has no extension {d}", tenant.id),
            ));
        }
    }
    Ok(dvrvmail)
}

fn extension_number(tenant: &PbxTenant, v: &Value) -> Result<String> {
    let n = tenant.extension_length();
    let s = required("extension", digits("extension", v, 8)?)?;
    if s.len() != n {
        return Err(Error::invalid(
            "extension",
            format!(
                "must have {n} digits (the tenant's localdplan {})",
                tenant.localdplan
            ),
        ));
    }
    Ok(s)
}

fn mac(v: &Value) -> Result<String> {
    let s = required("macaddr", string("macaddr", v, 12)?)?;
    if s.len() != 12 || !s.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::invalid("macaddr", "must be 12 hex digits"));
    }
    Ok(s.to_ascii_lowercase())
}

/// The phone model: the one given, or the catalog's model for the MAC's vendor prefix.
async fn model_for(c: &mut Conn, given: Option<i64>, mac: &str) -> Result<i64> {
    if let Some(m) = given {
        return Ok(m);
    }
    let models: Vec<(i64, String)> =
        sqlx::query_as("SELECT id, ouis FROM device_models ORDER BY id")
            .fetch_all(&mut *c)
            .await?;
    let hits: Vec<i64> = models
        .into_iter()
        .filter(|(_, ouis)| {
            serde_json::from_str::<Vec<String>>(ouis)
                .unwrap_or_default()
                .iter()
                .any(|o| o.eq_ignore_ascii_case(&mac[..6]))
        })
        .map(|(id, _)| id)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::invalid(
            "model_id",
            "no phone model is known for this MAC's vendor: give model_id",
        )),
        _ => Err(Error::invalid(
            "model_id",
            "several phone models share this MAC's vendor: give model_id",
        )),
    }
}

#[async_trait]
impl Resource for PbxExtensions {
    const NAME: &'static str = "pbxextensions";
    const SUMMARY: &'static str =
        "PBX extensions: a tenant's short numbers, each a subscriber (and a phone when provisioned)";
    const NGCP: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("tenant_id", "the tenant"),
        ("extension", "the number, * wildcard"),
        ("type", "provisioned, unprovisioned or mailbox"),
        ("subscriber_id", "the subscriber"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[
        ("id", "id"),
        ("extension", "extension"),
        ("tenant_id", "tenant_id"),
    ];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "reseller_id",
        "subscriber_id",
        "username",
        "domain",
        "device_id",
        "create_timestamp",
        "modify_timestamp",
    ];
    const REQUIRED: &'static [&'static str] = &["tenant_id", "extension", "type"];
    type Repr = PbxExtension;
    type Input = ExtensionInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PbxExtension>, Option<i64>)> {
        let mut w = q.where_scoped(
            actor,
            &["extension"],
            &["tenant_id", "subscriber_id", "reseller_id"],
        )?;
        if let Some(t) = q.get("type") {
            w.push("type = ?", Arg::Text(t.to_string()));
        }
        list_as(c, EXTENSION_COLS, EXTENSION_VIEW, &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PbxExtension>> {
        get_from_view(
            c,
            "pbx_extensions",
            EXTENSION_COLS,
            EXTENSION_VIEW,
            id,
            lock,
        )
        .await
    }
    async fn create(c: &mut Conn, app: &App, actor: &Actor, i: ExtensionInput) -> Result<Created> {
        let tenant = tenant_for(c, actor, tenant_id(&i.tenant_id)?).await?;
        // Every field's problem is gathered, so that one answer names them all.
        let mut p = Problems::default();
        let number = p.value(extension_number(&tenant, &i.extension))?;
        if !number.is_empty() {
            if let Some(what) = st::number_taken(c, tenant.id, &number, None).await? {
                p.note(
                    "extension",
                    format!("{number} is {what} of this tenant already"),
                );
            }
        }
        let kind = p.value(
            one_of(
                "type",
                &i.kind,
                &["provisioned", "unprovisioned", "mailbox"],
            )
            .and_then(|k| required("type", k)),
        )?;
        let mac = if kind == "provisioned" {
            p.check(mac(&i.macaddr))?
        } else {
            if !kind.is_empty() && !i.macaddr.is_null() {
                p.note("macaddr", "only provisioned extensions have a MAC");
            }
            None
        };
        let cols = p.check(settings(c, &tenant, &i, &number).await)?;
        let username = p.value(string("username", &i.username, 64))?;
        let password = p.value(string("password", &i.password, 128))?;
        p.finish()?;
        let mut cols = cols.unwrap_or_default();
        let username = username.unwrap_or_else(|| format!("{number}-{}", tenant.id));
        let password = password.unwrap_or_else(|| crate::crypto::random_token(12));
        // `active` was checked by settings(): YES, NO or absent (YES).
        let active = i.active.as_str() != Some("NO") && kind != "mailbox";
        let (sub, _) = create_one::<Subscribers>(
            c,
            app,
            actor,
            json!({
                "customer_id": tenant.customer_id,
                "domain_id": tenant.domain_id,
                "username": username,
                "password": password,
                "status": if active { "active" } else { "locked" },
                "display_name": format!("{} {number}", tenant.name),
            }),
        )
        .await?;
        let mut once = None;
        let device = match &mac {
            Some(m) => {
                let model = model_for(c, integer("model_id", &i.model_id)?, m).await?;
                let (dev, _) = create_one::<Devices>(
                    c,
                    app,
                    actor,
                    json!({
                        "identifier": m,
                        "customer_id": tenant.customer_id,
                        "model_id": model,
                        "station_name": format!("{} {number}", tenant.name),
                        "lines": [{"type": "private", "subscriber_id": sub.id, "line": 1}],
                    }),
                )
                .await
                .map_err(|e| e.renamed_field("identifier", "macaddr"))?;
                // The phone's boot token and secret are shown once: with the extension.
                if let Some(o) = dev.once {
                    let mut m = serde_json::Map::new();
                    m.insert("device".into(), Value::Object(o));
                    once = Some(m);
                }
                Some(dev.id)
            }
            None => None,
        };
        cols.extend([
            ("tenant_id", Arg::Int(tenant.id)),
            ("reseller_id", Arg::Int(tenant.reseller_id)),
            ("extension", Arg::Text(number)),
            ("type", Arg::Text(kind)),
            ("subscriber_id", Arg::Int(sub.id)),
            ("device_id", Arg::opt_int(device)),
            ("macaddr", Arg::opt_text(mac)),
        ]);
        let id = save_row(c, "pbx_extensions", None, cols).await?;
        Ok(Created { id, once })
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &PbxExtension,
        i: ExtensionInput,
    ) -> Result<()> {
        let tenant = tenant_for(c, actor, old.tenant_id).await?;
        if tenant_id(&i.tenant_id)? != old.tenant_id {
            return Err(Error::invalid("tenant_id", "an extension keeps its tenant"));
        }
        if extension_number(&tenant, &i.extension)? != old.extension {
            return Err(Error::invalid(
                "extension",
                "an extension keeps its number: create a new one",
            ));
        }
        if one_of(
            "type",
            &i.kind,
            &["provisioned", "unprovisioned", "mailbox"],
        )?
        .is_some_and(|k| k != old.kind)
        {
            return Err(Error::invalid("type", "an extension keeps its type"));
        }
        if !i.macaddr.is_null() && Some(mac(&i.macaddr)?) != old.macaddr {
            return Err(Error::invalid(
                "macaddr",
                "an extension keeps its MAC: change the device",
            ));
        }
        for (f, v) in [("username", &i.username), ("password", &i.password)] {
            if !v.is_null() && (f == "password" || v.as_str() != Some(old.username.as_str())) {
                return Err(Error::invalid(
                    f,
                    "is changed on the subscriber (/api/subscribers/)",
                ));
            }
        }
        let cols = settings(c, &tenant, &i, &old.extension).await?;
        let active = i.active.as_str() != Some("NO") && old.kind != "mailbox";
        save_row(c, "pbx_extensions", Some(id), cols).await?;
        // active YES/NO locks and unlocks the subscriber; a terminated one stays so, and one
        // whose customer is not active is not unlocked.
        let (status, customer_active): (String, i64) = sqlx::query_as(
            "SELECT s.status, CASE WHEN c.status = 'active' THEN 1 ELSE 0 END \
             FROM subscribers s JOIN customers c ON c.id = s.customer_id WHERE s.id = $1",
        )
        .bind(old.subscriber_id)
        .fetch_one(&mut *c)
        .await?;
        if status == "terminated" || (active && customer_active == 0) {
            return Ok(());
        }
        subscribers::set_status(
            c,
            app,
            actor,
            old.subscriber_id,
            if active { "active" } else { "locked" },
        )
        .await
    }
    async fn delete(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &PbxExtension,
    ) -> Result<()> {
        if let Some(user) = number_in_use(c, old.tenant_id, &old.extension).await? {
            return Err(Error::Locked(format!(
                "extension {} is still named by {user}",
                old.extension
            )));
        }
        sqlx::query("DELETE FROM pbx_extensions WHERE id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        if let Some(d) = old.device_id {
            if crate::store::exists(c, "devices", "id = $1", d).await? {
                delete_one::<Devices>(c, app, actor, d).await?;
            }
        }
        let status: Option<String> =
            sqlx::query_scalar("SELECT status FROM subscribers WHERE id = $1")
                .bind(old.subscriber_id)
                .fetch_optional(&mut *c)
                .await?;
        if status.as_deref() == Some("terminated") {
            return Ok(());
        }
        subscribers::terminate(c, app, actor, old.subscriber_id).await
    }
    fn id(r: &PbxExtension) -> i64 {
        r.id
    }
    fn reseller_of(r: &PbxExtension) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &PbxExtension) -> Vec<(&'static str, String)> {
        let mut l = vec![
            (
                "subscribers",
                format!("/api/subscribers/{}", r.subscriber_id),
            ),
            ("pbxtenants", format!("/api/pbxtenants/{}", r.tenant_id)),
        ];
        if let Some(d) = r.device_id {
            l.push(("pbxdevices", format!("/api/pbxdevices/{d}")));
        }
        l
    }
}
