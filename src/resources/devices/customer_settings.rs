//! A customer's provisioning settings: its phones' settings, allowed addresses, shared
//! credentials.

use super::*;

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
    const NGCP: bool = false;
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

pub(super) fn cust_repr(r: st::CustomerSettingsRow) -> CustomerSettings {
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
