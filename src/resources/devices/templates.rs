//! Templates: operators overriding the shipped ones, for everyone, a reseller or a profile.

use super::*;

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

pub(super) fn template_name(n: &str) -> Result<String> {
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
pub(super) async fn template_owner(
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
    const NGCP: bool = false;
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

pub(super) async fn save_template(
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
