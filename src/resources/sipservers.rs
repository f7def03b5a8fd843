//! SIP servers: the Kamailio and OpenSIPS instances whose tables voxprov writes. Admins only:
//! they are the platform's infrastructure, not a reseller's.
//!
//! `db_url` carries a password: stored encrypted, never returned (shown masked); a PUT with
//! the masked value, or without it, keeps the stored one. Any change of a server's settings
//! gives it a full load; a change of a home server also reloads every front proxy, whose
//! routing rows point at it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{Error, Problems, Result};
use crate::model::{self, Actor};
use crate::resources::{Created, ListQuery, Resource};
use crate::store::resellers::domain_by_name;
use crate::store::sipservers::{self as store, SipServerFields, SipServerRow};
use crate::store::{Arg, Conn};
use crate::targets::config::{db_url_for_sqlx, mask_url, Driver, Role};

pub struct SipServers;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SyncStatus {
    /// ok, failing, loading (full load pending) or disabled.
    pub state: String,
    /// Every change up to this id of the change log is applied on the server.
    pub applied_change_id: i64,
    /// Changes after it, not yet applied.
    pub backlog: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    pub last_success_at: Option<String>,
    /// Per table voxprov writes there: when it last changed (`changed_at`), the reload it
    /// needed (`reload`, null for tables read on every call), whether that reload went
    /// through (`reloaded`) and its error.
    #[schema(value_type = Object)]
    pub tables: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SipServer {
    pub id: i64,
    pub name: String,
    /// kamailio or opensips.
    pub driver: String,
    /// standalone (all subscribers of its domains), home (only those homed on it) or proxy
    /// (all, plus a routing row per subscriber homed elsewhere).
    pub role: String,
    /// The server's database, password masked.
    pub db_url: String,
    /// Where to send reloads: Kamailio JSON-RPC over HTTP (http://127.0.0.1:5071/RPC) or a
    /// Unix datagram socket path; OpenSIPS mi_http (http://127.0.0.1:8888/mi).
    pub rpc_url: Option<String>,
    pub enabled: bool,
    /// The domains it serves; empty = all.
    pub domains: Vec<String>,
    /// The subscriber table version to write for; null = as detected.
    pub schema_version: Option<i64>,
    /// As read from the server's `version` table.
    pub detected_schema_version: Option<i64>,
    /// Also write the plaintext password (for configurations that compute HA1 themselves).
    pub store_password: bool,
    /// Write the carrier and routing tables here (lcr, dispatcher, uacreg, address, dialplan,
    /// htable, userblocklist; OpenSIPS: dr_*, address, registrant, dialplan, userblacklist).
    /// Default true, false for home servers (their front proxies take the carriers' calls);
    /// servers added before carriers existed stay false until set.
    pub carriers: bool,
    /// A home server's SIP address, e.g. sip:10.0.0.11:5060: the value of a front proxy's
    /// routing row.
    pub sip_address: Option<String>,
    /// The usr_preferences attribute a front proxy's routing rows use.
    pub routing_attribute: String,
    /// Their avpops type (0: string name, string value).
    pub routing_type: i64,
    pub status: SyncStatus,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

/// No `Debug`: it holds the database password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SipServerInput {
    pub name: String,
    pub driver: String,
    #[serde(default)]
    pub role: Option<String>,
    /// sqlite:///abs/path.db (or Kamailio's sqlite:////abs/path.db), mysql://user:pw@host/db,
    /// postgres://user:pw@host/db. Required on creation; absent or masked keeps it.
    #[serde(default)]
    pub db_url: Option<String>,
    #[serde(default)]
    pub rpc_url: Option<String>,
    #[serde(default)]
    pub enabled: Option<bool>,
    #[serde(default)]
    pub domains: Option<Vec<String>>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub schema_version: Option<i64>,
    #[serde(default)]
    pub store_password: Option<bool>,
    #[serde(default)]
    pub carriers: Option<bool>,
    #[serde(default)]
    pub sip_address: Option<String>,
    #[serde(default)]
    pub routing_attribute: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub routing_type: Option<i64>,
}

async fn build(c: &mut Conn, app: &App, r: SipServerRow) -> Result<SipServer> {
    let domains = store::domains_of(c, &[r.id])
        .await?
        .into_iter()
        .map(|(_, _, d)| d)
        .collect();
    let backlog = if r.enabled.0 {
        let d = store::Delivered::of(r.applied_change_id, r.applied_hi, r.applied_gaps.as_deref());
        Some(store::backlog(c, &d).await?)
    } else {
        None
    };
    let failing = store::failing(r.last_error_at.as_deref(), r.last_success_at.as_deref());
    let state = if !r.enabled.0 {
        "disabled"
    } else if failing {
        "failing"
    } else if r.full_load > 0 {
        "loading"
    } else {
        "ok"
    };
    let url = app.cipher.decrypt(&r.db_url_enc)?;
    Ok(SipServer {
        id: r.id,
        name: r.name,
        driver: r.driver,
        role: r.role,
        db_url: mask_url(&url),
        rpc_url: r.rpc_url,
        enabled: r.enabled.0,
        domains,
        schema_version: r.schema_version,
        detected_schema_version: r.detected_schema_version,
        store_password: r.store_password.0,
        carriers: r.carriers.0,
        sip_address: r.sip_address,
        routing_attribute: r.routing_attribute,
        routing_type: r.routing_type,
        status: SyncStatus {
            state: state.into(),
            applied_change_id: r.applied_change_id,
            backlog,
            last_error: r.last_error,
            last_error_at: r.last_error_at,
            last_success_at: r.last_success_at,
            tables: r
                .tables
                .as_deref()
                .and_then(|t| serde_json::from_str(t).ok())
                .unwrap_or_else(|| serde_json::json!({})),
        },
        create_timestamp: r.create_timestamp,
        modify_timestamp: r.modify_timestamp,
    })
}

fn token(field: &str, v: &str, max: usize) -> Result<String> {
    if v.is_empty()
        || v.len() > max
        || !v
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return Err(Error::invalid(
            field,
            format!("must be 1 to {max} characters: letters, digits, '_', '-', '.'"),
        ));
    }
    Ok(v.to_string())
}

async fn validate(
    c: &mut Conn,
    app: &App,
    i: SipServerInput,
    old: Option<&SipServerRow>,
) -> Result<(SipServerFields, Vec<i64>)> {
    // Every field's problem is gathered, so that one answer names them all; the checks that
    // depend on the role run with a good one.
    let mut p = Problems::default();
    let name = p.value(token("name", &i.name, 64))?;
    let driver = p.check(Driver::parse("driver", &i.driver))?;
    let role_s = i.role.unwrap_or_else(|| "standalone".into());
    let role = p.check(Role::parse("role", &role_s))?;
    let db_url_enc = match (i.db_url, old) {
        (None, Some(o)) => o.db_url_enc.clone(),
        (Some(u), Some(o)) if u == mask_url(&app.cipher.decrypt(&o.db_url_enc)?) => {
            o.db_url_enc.clone()
        }
        (Some(u), _) => match p.check(
            model::required_text("db_url", u, 1024).and_then(|u| db_url_for_sqlx(&u).map(|_| u)),
        )? {
            Some(u) => app.cipher.encrypt(&u)?,
            None => String::new(),
        },
        (None, None) => {
            p.note("db_url", "is required");
            String::new()
        }
    };
    let rpc_url = p.value(rpc_url_of(i.rpc_url))?;
    let domain_ids = p.value(served_domains(c, i.domains.unwrap_or_default()).await)?;
    if i.schema_version.is_some_and(|v| !(1..=100).contains(&v)) {
        p.note("schema_version", "must be 1 to 100");
    }
    let sip_address = p.value(sip_address_of(i.sip_address))?;
    if role == Some(Role::Home) && sip_address.is_none() && !p.names("sip_address") {
        p.note(
            "sip_address",
            "is required for a home server (front proxies route to it)",
        );
    }
    let routing_attribute = p.value(token(
        "routing_attribute",
        i.routing_attribute.as_deref().unwrap_or("home_server"),
        32,
    ))?;
    let routing_type = i.routing_type.unwrap_or(0);
    if !(0..=3).contains(&routing_type) {
        p.note("routing_type", "must be 0 to 3");
    }
    if let (Some(o), Some(Role::Home), false) = (old, role, domain_ids.is_empty()) {
        // Subscribers homed here must stay in a domain the server serves.
        if let Some(d) = store::homed_outside(c, o.id, &domain_ids).await? {
            p.note(
                "domains",
                format!("subscribers of domain {d} are homed on this server; move them first"),
            );
        }
    }
    if let (Some(o), Some(role)) = (old, role) {
        if o.role == "home" && role != Role::Home {
            let live = crate::store::exists(
                c,
                "subscribers",
                "home_server_id = $1 AND status <> 'terminated'",
                o.id,
            )
            .await?;
            if live {
                p.note(
                    "role",
                    "subscribers are homed on this server; move them first",
                );
            }
        }
    }
    p.finish()?;
    let (Some(driver), Some(role)) = (driver, role) else {
        return Err(Error::internal(anyhow::anyhow!(
            "a SIP server check failed without saying why"
        )));
    };
    Ok((
        SipServerFields {
            name,
            driver: driver.as_str().into(),
            role: role_s,
            db_url_enc,
            rpc_url,
            enabled: i.enabled.unwrap_or(true),
            schema_version: i.schema_version,
            store_password: i.store_password.unwrap_or(false),
            carriers: i.carriers.unwrap_or(role != Role::Home),
            sip_address,
            routing_attribute,
            routing_type,
        },
        domain_ids,
    ))
}

/// The RPC endpoint: JSON-RPC over http(s) or a Unix socket, without credentials.
fn rpc_url_of(v: Option<String>) -> Result<Option<String>> {
    let Some(u) = v.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    let u = model::required_text("rpc_url", u, 1024)?;
    let ok = u.starts_with("http://")
        || u.starts_with("https://")
        || u.starts_with('/')
        || u.starts_with("unix:/");
    let has_credentials =
        url::Url::parse(&u).is_ok_and(|p| !p.username().is_empty() || p.password().is_some());
    if has_credentials {
        return Err(Error::invalid(
            "rpc_url",
            "must not carry credentials: keep the RPC endpoint on loopback or a private network",
        ));
    }
    if !ok {
        return Err(Error::invalid(
            "rpc_url",
            "must be http(s)://… (JSON-RPC, mi_http) or a Unix socket path",
        ));
    }
    Ok(Some(u))
}

/// The domains a server serves, each once and existing.
async fn served_domains(c: &mut Conn, given: Vec<String>) -> Result<Vec<i64>> {
    let mut domain_ids = Vec::new();
    for (k, d) in given.iter().enumerate() {
        let field = format!("domains[{k}]");
        let name = model::domain_name(&field, d)?;
        match domain_by_name(c, &name).await? {
            Some(dom) if !domain_ids.contains(&dom.id) => domain_ids.push(dom.id),
            Some(_) => return Err(Error::invalid(field, "is given twice")),
            None => {
                return Err(Error::invalid(
                    field,
                    format!("domain {name} does not exist"),
                ))
            }
        }
    }
    Ok(domain_ids)
}

/// Where front proxies reach a home server: a SIP URI.
fn sip_address_of(v: Option<String>) -> Result<Option<String>> {
    let Some(a) = v.filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    // usr_preferences.value holds 128 characters.
    let a = model::required_text("sip_address", a, 128)?;
    if !(a.starts_with("sip:") || a.starts_with("sips:")) || a.contains(char::is_whitespace) {
        return Err(Error::invalid(
            "sip_address",
            "must be a SIP URI such as sip:10.0.0.11:5060",
        ));
    }
    Ok(Some(a))
}

#[async_trait]
impl Resource for SipServers {
    const NAME: &'static str = "sipservers";
    const NGCP: bool = false;
    const SUMMARY: &'static str =
        "SIP servers (Kamailio, OpenSIPS) whose tables voxprov writes, with their sync status";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("driver", "kamailio or opensips"),
        ("role", "standalone, proxy or home"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[("id", "id"), ("name", "name")];
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "detected_schema_version",
        "status",
        "create_timestamp",
        "modify_timestamp",
    ];
    const VOLATILE: &'static [&'static str] = &["status", "detected_schema_version"];
    const ADMIN_ONLY: bool = true;
    type Repr = SipServer;
    type Input = SipServerInput;

    async fn list(
        c: &mut Conn,
        app: &App,
        _: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<SipServer>, Option<i64>)> {
        let mut w = crate::store::Where::new();
        if let Some(v) = q.get("name") {
            w.text_filter("name", v);
        }
        for col in ["driver", "role"] {
            if let Some(v) = q.get(col) {
                w.push(&format!("{col} = ?"), Arg::Text(v.into()));
            }
        }
        let (rows, total) = store::list(c, &w, &q.page).await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(build(c, app, r).await?);
        }
        Ok((out, total))
    }
    async fn load(c: &mut Conn, app: &App, id: i64, lock: bool) -> Result<Option<SipServer>> {
        match store::get(c, id, lock).await? {
            Some(r) => Ok(Some(build(c, app, r).await?)),
            None => Ok(None),
        }
    }
    async fn create(c: &mut Conn, app: &App, _: &Actor, i: SipServerInput) -> Result<Created> {
        let (f, domains) = validate(c, app, i, None).await?;
        let home = f.role == "home";
        let id = store::insert(c, &f).await?;
        store::set_domains(c, id, &domains).await?;
        store::request_full_load(c, Some(id), home).await?;
        Ok(id.into())
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        _: &Actor,
        id: i64,
        old: &SipServer,
        i: SipServerInput,
    ) -> Result<()> {
        let row = store::get(c, id, false)
            .await?
            .ok_or_else(|| Error::not_found("sipserver"))?;
        let (f, domains) = validate(c, app, i, Some(&row)).await?;
        let home = f.role == "home" || old.role == "home";
        store::update(c, id, &f).await?;
        store::set_domains(c, id, &domains).await?;
        store::request_full_load(c, Some(id), home).await
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, old: &SipServer) -> Result<()> {
        if crate::store::exists(
            c,
            "subscribers",
            "home_server_id = $1 AND status <> 'terminated'",
            id,
        )
        .await?
        {
            return Err(Error::Locked(format!(
                "subscribers are homed on sipserver {id}; move them first"
            )));
        }
        sqlx::query("UPDATE subscribers SET home_server_id = NULL WHERE home_server_id = $1")
            .bind(id)
            .execute(&mut *c)
            .await?;
        store::delete(c, id).await?;
        store::request_full_load(c, None, old.role == "home").await
    }
    fn id(r: &SipServer) -> i64 {
        r.id
    }
    fn reseller_of(_: &SipServer) -> Option<i64> {
        None
    }
    fn links(r: &SipServer) -> Vec<(&'static str, String)> {
        vec![
            ("check", format!("/api/sipservers/{}/check", r.id)),
            ("repair", format!("/api/sipservers/{}/repair", r.id)),
        ]
    }
}
