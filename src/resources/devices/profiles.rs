//! Device profiles: settings and templates shared by a reseller's phones.

use super::*;

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

pub(super) fn profile_repr(r: st::ProfileRow) -> DeviceProfile {
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

pub(super) async fn unique_profile(
    c: &mut Conn,
    reseller: i64,
    name: &str,
    id: Option<i64>,
) -> Result<()> {
    if crate::store::name_taken(c, "device_profiles", "reseller_id", reseller, name, id).await? {
        return Err(Error::invalid(
            "name",
            "this reseller already has a profile of this name",
        ));
    }
    Ok(())
}
