//! Device models: the catalog (vendor, family, model, the files each requests).

use super::*;

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

pub(super) fn slug(field: &str, s: String) -> Result<String> {
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

pub(super) fn model_fields(i: DeviceModelInput) -> Result<st::ModelFields> {
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
