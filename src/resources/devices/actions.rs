//! Actions on devices beyond create/update/delete: preview, fetches, token and secret
//! resets, resync, and kazoo-provision import.

use super::*;

// ---------------------------------------------------------------------------------------
// Extra routes

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KazooImport {
    #[schema(value_type = Object)]
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

/// Turns a kazoo-provision template document into a template of ours, and saves it.
pub async fn import_kazoo(
    app: &App,
    actor: &Actor,
    i: KazooImport,
) -> Result<(Created, DeviceTemplate)> {
    DeviceTemplates::check_access(actor, true)?;
    let content = render::import_kazoo(&i.document, &i.format)?;
    let v = json!({
        "name": i.name, "content": content, "description": i.description,
        "reseller_id": i.reseller_id, "profile_id": i.profile_id,
    });
    DeviceTemplates::prepare(app, actor, &v).await?;
    let mut tx = app.store.begin().await?;
    let (created, repr) = create_one::<DeviceTemplates>(&mut tx, app, actor, v).await?;
    tx.commit().await?;
    Ok((created, repr))
}

/// The device `id` as `actor` may see it (`write`: and change it).
pub async fn visible_device(app: &App, actor: &Actor, id: i64, write: bool) -> Result<Device> {
    Devices::check_access(actor, write)?;
    let mut c = app.store.read().await?;
    match Devices::load(&mut c, app, id, false).await? {
        Some(d) if Devices::visible(&d, actor) => Ok(d),
        _ => Err(Error::NotFound(format!("pbxdevices {id} not found"))),
    }
}

/// A device's file rendered as it would be served, without serving it (no fetch recorded, no
/// token traded): `file`, or its first own file. Passwords are masked unless `reveal`
/// (writers only).
pub async fn preview(
    app: &App,
    actor: &Actor,
    id: i64,
    file: Option<String>,
    reveal: bool,
) -> Result<std::sync::Arc<crate::devices::Rendered>> {
    let dev = visible_device(app, actor, id, reveal).await?;
    let (loaded, _) = app.devices.refresh(&dev.identifier).await;
    let crate::devices::Loaded::Found(data) = loaded else {
        return Err(Error::Unavailable("the device could not be loaded".into()));
    };
    let name = match file {
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
    app.devices
        .preview(&shown, spec, &base)
        .map(std::sync::Arc::new)
}

/// A device's last hundred fetches.
pub async fn fetches(app: &App, actor: &Actor, id: i64) -> Result<Value> {
    let dev = visible_device(app, actor, id, false).await?;
    let mut c = app.store.read().await?;
    let rows = st::fetches_of(&mut c, dev.id, 100).await?;
    Ok(json!({ "fetches": rows }))
}

/// A new first-boot token (a replaced or factory-reset phone); the long-lived one dies.
pub async fn reset_token(app: &App, actor: &Actor, id: i64) -> Result<Value> {
    let dev = visible_device(app, actor, id, true).await?;
    if dev.auth != "token" {
        return Err(Error::Conflict(
            "this device does not use token URLs".into(),
        ));
    }
    let boot = new_token();
    let expires = chrono::Utc::now().timestamp() + app.cfg.prov.boot_token_days as i64 * 86400;
    let mut tx = app.store.begin().await?;
    st::reset_tokens(&mut tx, dev.id, &token_hash(&boot), expires).await?;
    let after = Devices::load(&mut tx, app, dev.id, false)
        .await?
        .ok_or_else(|| Error::not_found("device"))?;
    record::<Devices>(&mut tx, actor, Op::Update, Some(&dev), Some(&after)).await?;
    tx.commit().await?;
    let base = app
        .cfg
        .prov
        .base_url
        .clone()
        .unwrap_or_else(|| "/prov/".into());
    Ok(json!({"boot_token": boot, "provisioning_url": format!("{base}{boot}/")}))
}

/// A new per-device secret (Basic/Digest), shown once.
pub async fn reset_secret(app: &App, actor: &Actor, id: i64) -> Result<Value> {
    let dev = visible_device(app, actor, id, true).await?;
    let secret = crate::crypto::random_token(18);
    let mut tx = app.store.begin().await?;
    st::set_secret(&mut tx, dev.id, &app.cipher.encrypt(&secret)?).await?;
    let after = Devices::load(&mut tx, app, dev.id, false)
        .await?
        .ok_or_else(|| Error::not_found("device"))?;
    record::<Devices>(&mut tx, actor, Op::Update, Some(&dev), Some(&after)).await?;
    tx.commit().await?;
    Ok(json!({ "secret": secret }))
}

/// Tells the phone to re-read its configuration: a check-sync NOTIFY to every contact its
/// account lines have registered (see [`crate::devices::resync`]).
pub async fn resync(app: &App, actor: &Actor, id: i64) -> Result<Value> {
    let dev = visible_device(app, actor, id, true).await?;
    let ids: Vec<i64> = dev
        .lines
        .iter()
        .filter(|l| l.kind == "private" || l.kind == "shared")
        .filter_map(|l| l.subscriber_id)
        .collect();
    crate::devices::resync::notify(&app.store, &ids).await
}
