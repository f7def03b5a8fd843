//! A device's files and the models' common files, rendered (on the render pool) and cached.

use super::*;

pub(super) fn model_ctx(m: &Model) -> Value {
    let r = &m.row;
    json!({
        "vendor": r.vendor, "family": r.family, "model": r.model, "code": r.code,
        "lines": r.lines, "keys": r.keys, "expansion_modules": r.expansion_modules,
        "expansion_keys": r.expansion_keys,
    })
}

pub(super) fn common_ctx(model: &Model, settings: &Value, base: &str) -> Value {
    let mut s = settings.as_object().cloned().unwrap_or_default();
    for k in SECRET_SETTINGS {
        s.remove(*k);
    }
    json!({
        "model": model_ctx(model),
        "settings": s,
        "lines": [],
        "keys": [],
        "prov": {"url": base, "server": host_of(base)},
    })
}

pub(super) fn host_of(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_default()
}

impl Devices {
    /// A file's place in its device's cache, and the base URL it is rendered for. The base
    /// URL is part of the key: without prov.base_url it comes from the request's Host, and
    /// one request must not decide what every later one is told.
    pub(super) fn file_key(&self, d: &DeviceData, name: &str, base_url: &str) -> (String, String) {
        let base = self.base_url(d.provisioning_url.as_deref(), base_url);
        (format!("{name}\n{base}"), base)
    }

    /// [`Devices::device_file`], rendering (when the cache has no answer) on the render pool
    /// within the wall-clock limit of phone templates.
    pub async fn device_file_bounded(
        self: &Arc<Self>,
        files: Arc<DeviceDataFiles>,
        spec: catalog::FileSpec,
        name: String,
        base_url: String,
    ) -> Result<Arc<Rendered>> {
        let (key, _) = self.file_key(&files.0.data, &name, &base_url);
        if let Some(r) = files.0.files.lock().expect("lock").get(&key) {
            return Ok(r.clone());
        }
        let d = self.clone();
        self.pool
            .run(crate::templating::DEVICE.wall, move || {
                d.device_file(&files, &spec, &name, &base_url)
            })
            .await
            .map_err(|e| Error::Unavailable(format!("rendering: {e}")))?
    }

    /// [`Devices::common_file`] on the render pool.
    pub async fn common_file_bounded(
        self: &Arc<Self>,
        model: Arc<Model>,
        spec: catalog::FileSpec,
        name: String,
        base_url: String,
    ) -> Result<Arc<Rendered>> {
        let key = Self::common_key(&model, &name, &self.common_base(&base_url), false);
        if let Some(r) = self.common.lock().expect("lock").get(&key) {
            return Ok(r.clone());
        }
        let d = self.clone();
        self.pool
            .run(crate::templating::DEVICE.wall, move || {
                d.common_file(&model, &spec, &name, &base_url)
            })
            .await
            .map_err(|e| Error::Unavailable(format!("rendering: {e}")))?
    }

    /// Renders (or takes from the cache) one per-device file.
    pub fn device_file(
        &self,
        files: &DeviceDataFiles,
        spec: &catalog::FileSpec,
        name: &str,
        base_url: &str,
    ) -> Result<Arc<Rendered>> {
        let e = &files.0;
        let d = &e.data;
        let (key, base) = self.file_key(d, name, base_url);
        if let Some(r) = e.files.lock().expect("lock").get(&key) {
            return Ok(r.clone());
        }
        let r = Arc::new(self.render_for(d, spec, &base)?);
        let mut files = e.files.lock().expect("lock");
        if files.len() >= 16 {
            files.clear();
        }
        files.insert(key, r.clone());
        Ok(r)
    }

    /// One of a device's files: its own with its scope's templates, or a common one (no
    /// secrets, system templates) that carries the device's token URL when it has one.
    pub(super) fn render_for(
        &self,
        d: &DeviceData,
        spec: &catalog::FileSpec,
        base: &str,
    ) -> Result<Rendered> {
        if spec.per_device {
            return self.render_for_device(d, spec, base);
        }
        // A common file is the model's, rendered once; only the token in its URL differs
        // per phone, put in place of a mark.
        let name = d.model.file_name(spec, &d.mac);
        let token = match (&d.auth.mode[..], &d.auth.token) {
            ("token", Some(t)) => Some(t.as_str()),
            _ => None,
        };
        let common = self.common_rendered(&d.model, spec, &name, base, token.is_some())?;
        let Some(token) = token else {
            return Ok(Rendered {
                body: common.body.clone(),
                etag: common.etag.clone(),
                content_type: common.content_type.clone(),
            });
        };
        let body = String::from_utf8_lossy(&common.body).replace(TOKEN_MARK, token);
        Ok(Rendered {
            etag: self.etag(body.as_bytes()),
            body: Bytes::from(body),
            content_type: common.content_type.clone(),
        })
    }

    pub(super) fn render_for_device(
        &self,
        d: &DeviceData,
        spec: &catalog::FileSpec,
        base: &str,
    ) -> Result<Rendered> {
        let mut ctx = d.context();
        ctx["prov"] = self.prov_ctx(d, base);
        self.render_file(&d.model, spec, Some(d.reseller_id), d.profile_id, &ctx)
    }

    /// Renders any file of a device without caching it (the preview).
    pub fn preview(
        &self,
        d: &DeviceData,
        spec: &catalog::FileSpec,
        base_url: &str,
    ) -> Result<Rendered> {
        let base = self.base_url(d.provisioning_url.as_deref(), base_url);
        self.render_for(d, spec, &base)
    }

    pub(super) fn prov_ctx(&self, d: &DeviceData, base_url: &str) -> Value {
        let base = self.base_url(d.provisioning_url.as_deref(), base_url);
        let url = match (&d.auth.mode[..], &d.auth.token) {
            ("token", Some(t)) => format!("{base}{t}/"),
            _ => base.clone(),
        };
        json!({ "url": url, "server": host_of(&base) })
    }

    pub(super) fn base_url(&self, provisioning_url: Option<&str>, request_base: &str) -> String {
        self.cfg
            .base_url
            .clone()
            .or_else(|| {
                provisioning_url.map(|s| {
                    if s.ends_with('/') {
                        s.to_string()
                    } else {
                        format!("{s}/")
                    }
                })
            })
            .unwrap_or_else(|| request_base.to_string())
    }

    /// The bottom of system → profile → customer → device: defaults, then `prov.settings`.
    pub(super) fn system_settings(&self) -> Map<String, Value> {
        let mut s = Map::new();
        s.insert("transport".into(), json!("udp"));
        s.insert("sip_port".into(), json!(5060));
        s.insert("registration_expires".into(), json!(3600));
        s.insert("language".into(), json!("en"));
        s.insert("timezone".into(), json!("UTC"));
        for (k, v) in &self.cfg.settings {
            s.insert(k.clone(), v.clone());
        }
        s
    }

    /// A common (per-model) file: no device, no lines, no secrets.
    pub fn common_file(
        &self,
        model: &Arc<Model>,
        spec: &catalog::FileSpec,
        name: &str,
        base_url: &str,
    ) -> Result<Arc<Rendered>> {
        let base = self.common_base(base_url);
        self.common_rendered(model, spec, name, &base, false)
    }

    pub(super) fn common_base(&self, base_url: &str) -> String {
        self.base_url(
            self.cfg
                .settings
                .get("provisioning_url")
                .and_then(Value::as_str),
            base_url,
        )
    }

    pub(super) fn common_key(model: &Model, name: &str, base: &str, mark: bool) -> (i64, String) {
        (model.row.id, format!("{name}\n{base}\n{mark}"))
    }

    /// A common file for `base`; with `mark`, its provisioning URL ends in a token mark.
    pub(super) fn common_rendered(
        &self,
        model: &Arc<Model>,
        spec: &catalog::FileSpec,
        name: &str,
        base: &str,
        mark: bool,
    ) -> Result<Arc<Rendered>> {
        let key = Self::common_key(model, name, base, mark);
        if let Some(r) = self.common.lock().expect("lock").get(&key) {
            return Ok(r.clone());
        }
        let mut ctx = common_ctx(model, &Value::Object(self.system_settings()), base);
        if mark {
            ctx["prov"]["url"] = json!(format!("{base}{TOKEN_MARK}/"));
        }
        let r = Arc::new(self.render_file(model, spec, None, None, &ctx)?);
        let mut common = self.common.lock().expect("lock");
        if common.len() >= 1024 {
            common.clear();
        }
        common.insert(key, r.clone());
        Ok(r)
    }

    pub(super) fn render_file(
        &self,
        model: &Model,
        spec: &catalog::FileSpec,
        reseller: Option<i64>,
        profile: Option<i64>,
        ctx: &Value,
    ) -> Result<Rendered> {
        let env = self
            .envs
            .lock()
            .expect("lock")
            .entry((reseller, profile))
            .or_insert_with(|| Arc::new(render::environment(self.templates(), reseller, profile)))
            .clone();
        let name = render::template_name(
            &model.row.vendor,
            &model.row.family,
            &model.row.model,
            &spec.template,
        );
        let body = render::render(&env, &name, ctx)?;
        Ok(Rendered {
            etag: self.etag(body.as_bytes()),
            body: Bytes::from(body),
            content_type: spec.content_type.clone(),
        })
    }
}
