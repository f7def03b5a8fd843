//! Devices: a phone by MAC, its model, profile, lines and keys, and how it proves itself.

use super::*;
use crate::error::Problems;

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

pub(super) const DEVICE_VOLATILE: &[&str] = &[
    "token_traded",
    "last_fetch_timestamp",
    "last_fetch_address",
    "last_fetch_user_agent",
    "last_fetch_file",
    "fetch_count",
];

pub(super) fn device_repr(r: st::DeviceRow) -> Device {
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

pub(super) async fn device_fields(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    i: DeviceInput,
    old: Option<&Device>,
) -> Result<st::DeviceFields> {
    // Every field's problem is gathered, so that one answer names them all (the lines are
    // checked against the model, so only with a good one).
    let mut p = Problems::default();
    let identifier = p.value(parse_mac("identifier", &i.identifier))?;
    let cust = sqlx::query("SELECT reseller_id, status FROM customers WHERE id = $1")
        .bind(i.customer_id)
        .fetch_optional(&mut *c)
        .await?;
    let reseller_id: Option<i64> = match cust {
        Some(row) => {
            let r: i64 = sqlx::Row::try_get(&row, 0)?;
            let status: String = sqlx::Row::try_get(&row, 1)?;
            (actor.scope().is_none_or(|s| s == r) && status != "terminated").then_some(r)
        }
        None => None,
    };
    if reseller_id.is_none() {
        p.note("customer_id", "no such customer");
    }
    let m: Option<st::ModelRow> =
        get_as(c, st::MODEL_COLS, "device_models", i.model_id, false).await?;
    let m = match m {
        Some(m) if m.kind == "phone" => Some(m),
        Some(_) => {
            p.note("model_id", "an expansion module is not a device of its own");
            None
        }
        None => {
            p.note("model_id", "no such device model");
            None
        }
    };
    if let (Some(pid), Some(reseller_id)) = (i.profile_id, reseller_id) {
        match st::profile(c, pid).await? {
            Some(pr) if pr.reseller_id == reseller_id => {}
            _ => p.note("profile_id", "no such profile of the customer's reseller"),
        }
    }
    let auth = i.auth.unwrap_or_else(|| "token".into());
    if !["token", "basic", "digest", "customer"].contains(&auth.as_str()) {
        p.note("auth", "must be token, basic, digest or customer");
    }
    // Lines name the customer's subscribers: read only for a customer the actor may use.
    let (lines, subs) = match (&m, reseller_id) {
        (Some(m), Some(_)) => p.value(device_lines(c, i.lines, i.customer_id, m).await)?,
        _ => Default::default(),
    };
    let station_name = p.value(model::text("station_name", i.station_name, 64))?;
    let settings = p.value(check_settings(
        app,
        "settings",
        i.settings,
        old.map(|o| o.stored_settings.as_str()),
    ))?;
    p.finish()?;
    let Some(reseller_id) = reseller_id else {
        return Err(Error::internal(anyhow::anyhow!(
            "a device check failed without saying why"
        )));
    };
    Ok(st::DeviceFields {
        identifier,
        customer_id: i.customer_id,
        reseller_id,
        model_id: i.model_id,
        profile_id: i.profile_id,
        station_name,
        lines: serde_json::to_string(&lines).map_err(Error::internal)?,
        settings,
        auth,
        subscriber_ids: subs,
    })
}

/// A device's lines: accounts within the model's lines, keys within its keys (and its
/// modules'), each account a subscriber of the device's customer.
async fn device_lines(
    c: &mut Conn,
    given: Vec<Value>,
    customer_id: i64,
    m: &st::ModelRow,
) -> Result<(Vec<LineSpec>, Vec<i64>)> {
    let mut lines = Vec::new();
    let mut subs = Vec::new();
    let mut accounts = std::collections::BTreeSet::new();
    let mut keys = 0;
    for (n, v) in given.into_iter().enumerate() {
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
                    cust == customer_id && status != "terminated"
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
    Ok((lines, subs))
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
pub(super) fn device_secrets(
    app: &App,
    auth: &str,
    boot: &str,
    secret: &str,
) -> Map<String, Value> {
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
