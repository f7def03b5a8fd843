//! A device's render context assembled from its rows: model, lines, keys, settings merged
//! system → profile → customer → device.

use super::*;

/// What devices refer to, loaded in batches (the warm-up reads pages of devices).
#[derive(Default)]
pub(super) struct Inputs {
    pub(super) subs: HashMap<i64, st::LineSubscriber>,
    pub(super) profiles: HashMap<i64, Option<st::ProfileRow>>,
    pub(super) custs: HashMap<i64, Option<st::CustomerSettingsRow>>,
}

impl Inputs {
    pub(super) async fn load(&mut self, c: &mut Conn, rows: &[DeviceRow]) -> Result<()> {
        let mut want = Vec::new();
        for r in rows {
            let lines: Vec<LineSpec> = serde_json::from_str(&r.lines).unwrap_or_default();
            want.extend(lines.iter().filter_map(|l| l.subscriber_id));
        }
        want.sort_unstable();
        want.dedup();
        want.retain(|id| !self.subs.contains_key(id));
        for chunk in want.chunks(500) {
            for s in st::line_subscribers(c, chunk).await? {
                self.subs.insert(s.id, s);
            }
        }
        for r in rows {
            if let Some(p) = r.profile_id {
                if let std::collections::hash_map::Entry::Vacant(e) = self.profiles.entry(p) {
                    e.insert(st::profile(c, p).await?);
                }
            }
            if let std::collections::hash_map::Entry::Vacant(e) = self.custs.entry(r.customer_id) {
                e.insert(st::customer_settings(c, r.customer_id).await?);
            }
        }
        Ok(())
    }
}

impl Devices {
    /// Loads everything a device's configuration is made of.
    pub(super) async fn build(&self, c: &mut Conn, row: DeviceRow) -> Result<DeviceData> {
        let mut inputs = Inputs::default();
        inputs.load(c, std::slice::from_ref(&row)).await?;
        self.assemble(row, &inputs)
    }

    /// A device's render context and credentials from its row and what it refers to.
    pub(super) fn assemble(&self, row: DeviceRow, inputs: &Inputs) -> Result<DeviceData> {
        let model = self
            .catalog()
            .models
            .get(&row.model_id)
            .cloned()
            .ok_or_else(|| {
                Error::internal(anyhow::anyhow!("model {} not in the catalog", row.model_id))
            })?;
        let lines: Vec<LineSpec> = serde_json::from_str(&row.lines).map_err(Error::internal)?;
        let sub_ids: Vec<i64> = lines.iter().filter_map(|l| l.subscriber_id).collect();
        let subs: Vec<&st::LineSubscriber> = sub_ids
            .iter()
            .filter_map(|id| inputs.subs.get(id))
            .collect();
        let profile = row
            .profile_id
            .and_then(|p| inputs.profiles.get(&p).cloned().flatten());
        let Some(cust) = inputs.custs.get(&row.customer_id).cloned().flatten() else {
            return Err(Error::NotFound(
                "the device's customer is terminated".into(),
            ));
        };
        let cust = Some(cust);
        // system → profile → customer → device
        let mut settings = self.system_settings();
        let layers = [
            profile.as_ref().map(|p| p.settings.clone()),
            cust.as_ref().and_then(|c| c.settings.clone()),
            Some(row.settings.clone()),
        ];
        for layer in layers.into_iter().flatten() {
            let m: Map<String, Value> = serde_json::from_str(&layer).unwrap_or_default();
            for (k, v) in m {
                let v = if SECRET_SETTINGS.contains(&k.as_str()) {
                    match v.as_str().map(|s| self.cipher.decrypt(s)) {
                        Some(Ok(p)) => json!(p),
                        _ => continue,
                    }
                } else {
                    v
                };
                settings.insert(k, v);
            }
        }
        let transport = settings["transport"].as_str().unwrap_or("udp").to_string();
        let port = settings
            .get("sip_port")
            .and_then(Value::as_i64)
            .unwrap_or(if transport == "tls" { 5061 } else { 5060 });
        let server_override = settings
            .get("sip_server")
            .and_then(Value::as_str)
            .map(str::to_string);
        let outbound = settings
            .get("outbound_proxy")
            .cloned()
            .unwrap_or(Value::Null);
        let mut acct = Vec::new();
        let mut keys = Vec::new();
        let mut next_line = 1;
        for l in &lines {
            let sub = l
                .subscriber_id
                .and_then(|id| subs.iter().find(|s| s.id == id));
            if let Some(s) = sub {
                if s.status == "terminated" {
                    continue;
                }
            }
            match l.kind.as_str() {
                "private" | "shared" => {
                    let Some(s) = sub else { continue };
                    let password = match &s.password_enc {
                        Some(p) => self.cipher.decrypt(p)?,
                        None => String::new(),
                    };
                    let index = l.line.unwrap_or(next_line);
                    next_line = index + 1;
                    let display = s
                        .display_name
                        .clone()
                        .or(l.label.clone())
                        .unwrap_or_else(|| s.username.clone());
                    acct.push(json!({
                        "index": index,
                        "type": l.kind,
                        "label": l.label.clone().unwrap_or_else(|| display.clone()),
                        "display_name": display,
                        "user": s.username,
                        "auth_user": s.username,
                        "password": password,
                        "domain": s.domain,
                        "server": server_override.clone().unwrap_or_else(|| s.domain.clone()),
                        "port": port,
                        "transport": transport,
                        "outbound_proxy": outbound,
                        "number": s.number,
                    }));
                }
                kind => {
                    let (target, domain) = match (sub, &l.target) {
                        (_, Some(t)) => (t.clone(), subs.first().map(|s| s.domain.clone())),
                        (Some(s), None) => (s.username.clone(), Some(s.domain.clone())),
                        (None, None) => continue,
                    };
                    let domain = domain.or_else(|| {
                        acct.first()
                            .and_then(|a| a["domain"].as_str().map(str::to_string))
                    });
                    let uri = match &domain {
                        Some(d) => format!("sip:{target}@{d}"),
                        None => format!("sip:{target}"),
                    };
                    keys.push(json!({
                        "index": keys.len() + 1,
                        "type": kind,
                        "label": l.label.clone().unwrap_or_else(|| target.clone()),
                        "target": target,
                        "line": l.line.unwrap_or(1),
                        "uri": uri,
                    }));
                }
            }
        }
        let mac = row.identifier.clone();
        let ctx = json!({
            "device": {
                "id": row.id,
                "mac": mac,
                "mac_upper": mac.to_ascii_uppercase(),
                "mac_colon": mac.as_bytes().chunks(2).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join(":"),
                "station_name": row.station_name,
            },
            "model": model_ctx(&model),
            "settings": settings,
            "lines": acct,
            "keys": keys,
        });
        let token = match &row.token_enc {
            Some(t) => Some(self.cipher.decrypt(t)?),
            None => None,
        };
        let cidrs = cust
            .as_ref()
            .and_then(|c| c.allowed_cidrs.as_deref())
            .map(|s| serde_json::from_str::<Vec<String>>(s).unwrap_or_default())
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect();
        let auth = AuthInfo {
            mode: row.auth.clone(),
            secret: self.cipher.decrypt(&row.secret_enc)?,
            boot_hash: row.boot_token_hash.clone(),
            boot_expires: row.boot_token_expires,
            token_hash: row.token_hash.clone(),
            token,
            token_used: row.token_used != 0,
            customer_user: cust.as_ref().and_then(|c| c.prov_username.clone()),
            customer_pass: match cust.as_ref().and_then(|c| c.prov_password_enc.as_deref()) {
                Some(p) => Some(self.cipher.decrypt(p)?),
                None => None,
            },
            cidrs,
        };
        Ok(DeviceData {
            id: row.id,
            mac,
            customer_id: row.customer_id,
            reseller_id: row.reseller_id,
            profile_id: row.profile_id,
            model,
            subscriber_ids: sub_ids,
            provisioning_url: ctx["settings"]
                .get("provisioning_url")
                .and_then(Value::as_str)
                .map(str::to_string),
            ctx: ctx.to_string().into(),
            auth,
        })
    }
}
