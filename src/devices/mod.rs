//! Phone provisioning at run time: the catalog and templates in memory, every device's
//! render context and its last good files in a cache that follows the change log (so a
//! phone is served without a database query, and still served when the database is down),
//! the fetch recorder, and the ban list.

pub mod catalog;
pub mod render;
pub mod security;
pub mod serve;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use sqlx::Row;

use crate::config::ProvConfig;
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::devices::{self as st, DeviceRow, Fetch};
use crate::store::{Conn, Store};
use catalog::{Catalog, Model};
use render::Templates;
use security::{AuthInfo, Bans};

/// Settings whose values are secrets: encrypted at rest, masked in representations, left
/// out of common (per-model) files.
pub const SECRET_SETTINGS: &[&str] = &["admin_password"];
pub const MASK: &str = "********";
/// Stands for a phone's token in a common file rendered once for all phones of a model.
const TOKEN_MARK: &str = "vxtokenmark0f3a9c";

/// Everything needed to serve one device without the database.
#[derive(Debug)]
pub struct DeviceData {
    pub id: i64,
    pub mac: String,
    pub customer_id: i64,
    pub reseller_id: i64,
    pub profile_id: Option<i64>,
    pub model: Arc<Model>,
    pub subscriber_ids: Vec<i64>,
    /// The render context without `prov` (which depends on the request), as JSON text: a
    /// tenth of the memory of a parsed value, and parsed only to render.
    ctx: Box<str>,
    /// The settings' provisioning URL, if any.
    provisioning_url: Option<String>,
    pub auth: AuthInfo,
}

impl DeviceData {
    /// A copy for showing to people: passwords and the token masked when `mask`.
    pub fn context(&self) -> Value {
        serde_json::from_str(&self.ctx).unwrap_or_default()
    }

    pub fn clone_masked(&self, mask: bool) -> DeviceData {
        let mut ctx = self.context();
        let mut auth = self.auth.clone();
        if mask {
            if let Some(lines) = ctx["lines"].as_array_mut() {
                for l in lines {
                    l["password"] = json!(MASK);
                }
            }
            for k in SECRET_SETTINGS {
                if ctx["settings"].get(*k).is_some() {
                    ctx["settings"][*k] = json!(MASK);
                }
            }
            auth.token = auth.token.map(|_| "TOKEN".into());
        }
        DeviceData {
            id: self.id,
            mac: self.mac.clone(),
            customer_id: self.customer_id,
            reseller_id: self.reseller_id,
            profile_id: self.profile_id,
            model: self.model.clone(),
            subscriber_ids: self.subscriber_ids.clone(),
            ctx: ctx.to_string().into(),
            provisioning_url: self.provisioning_url.clone(),
            auth,
        }
    }
}

/// One rendered file, as served.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    pub etag: String,
    pub content_type: String,
}

struct Entry {
    data: Arc<DeviceData>,
    files: Mutex<HashMap<String, Arc<Rendered>>>,
    stale: AtomicBool,
}

#[derive(Default)]
struct Cache {
    by_mac: HashMap<String, Arc<Entry>>,
    /// Token hashes (long-lived and first-boot) → MAC.
    by_token: HashMap<String, String>,
}

impl Cache {
    fn put(&mut self, data: Arc<DeviceData>) -> Arc<Entry> {
        if let Some(old) = self.by_mac.get(&data.mac) {
            for h in [&old.data.auth.token_hash, &old.data.auth.boot_hash]
                .into_iter()
                .flatten()
            {
                self.by_token.remove(h);
            }
        }
        for h in [&data.auth.token_hash, &data.auth.boot_hash]
            .into_iter()
            .flatten()
        {
            self.by_token.insert(h.clone(), data.mac.clone());
        }
        let e = Arc::new(Entry {
            data: data.clone(),
            files: Mutex::new(HashMap::new()),
            stale: AtomicBool::new(false),
        });
        self.by_mac.insert(data.mac.clone(), e.clone());
        e
    }
    fn remove(&mut self, mac: &str) {
        if let Some(old) = self.by_mac.remove(mac) {
            for h in [&old.data.auth.token_hash, &old.data.auth.boot_hash]
                .into_iter()
                .flatten()
            {
                // Only this device's: after a MAC change the hash may be another entry's.
                if self.by_token.get(h).is_some_and(|m| m == mac) {
                    self.by_token.remove(h);
                }
            }
        }
    }
    fn remove_id(&mut self, id: i64) {
        let mac = self
            .by_mac
            .values()
            .find(|e| e.data.id == id)
            .map(|e| e.data.mac.clone());
        if let Some(mac) = mac {
            self.remove(&mac);
        }
    }
    fn mark(&self, f: impl Fn(&DeviceData) -> bool) {
        for e in self.by_mac.values() {
            if f(&e.data) {
                e.stale.store(true, Ordering::Relaxed);
            }
        }
    }
}

struct Follow {
    cursor: i64,
    seen: BTreeSet<i64>,
}

/// Whose templates apply: (reseller, profile).
type Scope = (Option<i64>, Option<i64>);

pub struct Devices {
    pub cfg: ProvConfig,
    store: Store,
    cipher: Cipher,
    catalog: RwLock<Arc<Catalog>>,
    templates: RwLock<Arc<Templates>>,
    cache: RwLock<Cache>,
    common: Mutex<HashMap<(i64, String), Arc<Rendered>>>,
    /// One template environment per (reseller, profile): templates compile once.
    envs: Mutex<HashMap<Scope, Arc<minijinja::Environment<'static>>>>,
    follow: tokio::sync::Mutex<Follow>,
    pub bans: Bans,
    proxies: Vec<ipnet::IpNet>,
    warm_done: AtomicBool,
    /// Bumped by every invalidation: a load that started before a bump is cached as stale,
    /// so data read just before a change can never pass for fresh.
    epoch: std::sync::atomic::AtomicU64,
    fetches: tokio::sync::mpsc::Sender<(Fetch, i64)>,
    fetch_rx: Mutex<Option<tokio::sync::mpsc::Receiver<(Fetch, i64)>>>,
    hooks: Arc<crate::hooks::worker::Hooks>,
    etag_key: Vec<u8>,
    /// Renders run here, off the async threads, each within its wall-clock limit.
    pub pool: crate::templating::RenderPool,
}

/// How a device's data loads: found, absent, or the database could not say.
pub enum Loaded {
    Found(Arc<DeviceData>),
    Absent,
    Unavailable,
}

impl Devices {
    /// Seeds the catalog and loads it with the templates; the cache fills in the background.
    pub async fn open(
        cfg: ProvConfig,
        store: Store,
        cipher: Cipher,
        hooks: Arc<crate::hooks::worker::Hooks>,
    ) -> anyhow::Result<Arc<Devices>> {
        let (catalog, templates, cursor) = {
            let mut tx = store.begin().await?;
            let n = catalog::seed(&mut tx).await?;
            tx.commit().await?;
            if n > 0 {
                tracing::info!(models = n, "device catalog: shipped models added");
            }
            let mut c = store.read().await?;
            let cursor: i64 = sqlx::query("SELECT COALESCE(MAX(id), 0) FROM changes")
                .fetch_one(&mut *c)
                .await?
                .try_get(0)?;
            (
                Catalog::load(&mut c).await?,
                Templates::new(st::all_templates(&mut c).await?),
                cursor,
            )
        };
        let (tx, rx) = tokio::sync::mpsc::channel(65536);
        let etag_key = cipher.derive_key(b"voxprov prov etag");
        Ok(Arc::new(Devices {
            bans: Bans::new(&cfg),
            proxies: cfg
                .trusted_proxies
                .iter()
                .filter_map(|p| {
                    p.parse()
                        .ok()
                        .or_else(|| p.parse::<std::net::IpAddr>().ok().map(Into::into))
                })
                .collect(),
            warm_done: AtomicBool::new(false),
            epoch: std::sync::atomic::AtomicU64::new(0),
            cfg,
            store,
            cipher,
            catalog: RwLock::new(Arc::new(catalog)),
            templates: RwLock::new(Arc::new(templates)),
            cache: RwLock::new(Cache::default()),
            common: Mutex::new(HashMap::new()),
            envs: Mutex::new(HashMap::new()),
            follow: tokio::sync::Mutex::new(Follow {
                cursor,
                seen: BTreeSet::new(),
            }),
            fetches: tx,
            fetch_rx: Mutex::new(Some(rx)),
            hooks,
            etag_key,
            pool: crate::templating::RenderPool::per_core(),
        }))
    }

    /// The background work: warm the cache, follow the change log, write fetch records.
    pub fn start(self: &Arc<Self>) -> Vec<tokio::task::JoinHandle<()>> {
        let warm = {
            let d = self.clone();
            tokio::spawn(async move {
                if let Err(e) = d.warm().await {
                    tracing::warn!("device cache warm-up: {e}");
                }
            })
        };
        let follow = {
            let d = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    if let Err(e) = d.catch_up().await {
                        tracing::debug!("device cache: change log not readable: {e}");
                    }
                    d.bans.prune();
                }
            })
        };
        let rx = self.fetch_rx.lock().expect("lock").take();
        let rec = {
            let d = self.clone();
            tokio::spawn(async move {
                if let Some(rx) = rx {
                    d.record_loop(rx).await;
                }
            })
        };
        vec![warm, follow, rec]
    }

    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().expect("lock").clone()
    }

    pub fn templates(&self) -> Arc<Templates> {
        self.templates.read().expect("lock").clone()
    }

    pub fn etag(&self, body: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(&self.etag_key).expect("any key");
        m.update(body);
        format!("\"{}\"", hex::encode(&m.finalize().into_bytes()[..12]))
    }

    async fn warm(self: &Arc<Self>) -> Result<()> {
        let mut after = 0;
        let mut n = 0;
        let mut inputs = Inputs::default();
        loop {
            let rows = {
                let mut c = self.store.read().await?;
                st::all_devices(&mut c, after, 500).await?
            };
            let Some(last) = rows.last() else { break };
            after = last.id;
            let epoch = self.epoch.load(Ordering::SeqCst);
            let mut c = self.store.read().await?;
            // One query per page for the lines' subscribers; profiles and customers once.
            inputs.subs.clear();
            inputs.load(&mut c, &rows).await?;
            let mut fresh = Vec::new();
            for row in rows {
                let mac = row.identifier.clone();
                if self.cache.read().expect("lock").by_mac.contains_key(&mac) {
                    continue;
                }
                match self.assemble(row, &inputs) {
                    Ok(d) => {
                        let e = self.cache.write().expect("lock").put(Arc::new(d));
                        if self.epoch.load(Ordering::SeqCst) != epoch {
                            e.stale.store(true, Ordering::SeqCst);
                        } else {
                            fresh.push(e);
                        }
                        n += 1;
                    }
                    Err(Error::NotFound(_)) => {}
                    Err(e) => tracing::warn!(device = %mac, "device cache: {e}"),
                }
            }
            if self.cfg.base_url.is_some() && !fresh.is_empty() {
                // Rendered on the pool, off the async threads; each render has its own fuel.
                let d = self.clone();
                let wall = crate::templating::DEVICE.wall * fresh.len() as u32;
                if let Err(e) = self
                    .pool
                    .run(wall, move || fresh.iter().for_each(|e| d.prerender(e)))
                    .await
                {
                    tracing::warn!("device cache: pre-rendering: {e}");
                }
            }
        }
        self.warm_done.store(true, Ordering::Relaxed);
        tracing::info!(devices = n, "device cache warm");
        Ok(())
    }

    /// With a configured base URL the files can be rendered before any phone asks (after a
    /// power cut the server is back long before the phones).
    fn prerender(&self, e: &Arc<Entry>) {
        let Some(base) = self.cfg.base_url.clone() else {
            return;
        };
        let files = DeviceDataFiles(e.clone());
        for spec in &e.data.model.files {
            let name = e.data.model.file_name(spec, &e.data.mac);
            if let Err(err) = self.device_file(&files, spec, &name, &base) {
                tracing::warn!(device = %e.data.mac, "pre-rendering {name}: {err}");
            }
        }
    }

    /// The phone's address: the peer's, or for a trusted proxy the last address in
    /// `X-Forwarded-For` that is not itself a trusted proxy.
    pub fn client_ip(
        &self,
        peer: std::net::IpAddr,
        headers: &axum::http::HeaderMap,
    ) -> std::net::IpAddr {
        let trusted = |ip: &std::net::IpAddr| self.proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops: Vec<std::net::IpAddr> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        hops.into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer)
    }

    /// Devices and files in the cache, and whether the warm-up is done.
    pub fn stats(&self) -> (usize, usize, bool) {
        let c = self.cache.read().expect("lock");
        let files = c
            .by_mac
            .values()
            .map(|e| e.files.lock().expect("lock").len())
            .sum();
        (
            c.by_mac.len(),
            files,
            self.warm_done.load(Ordering::Relaxed),
        )
    }

    /// Follows the change log and marks what a change touches as stale (kept as the last
    /// good configuration until a fresh one is rendered). Ids are re-read a little behind
    /// the cursor: on PostgreSQL a transaction with a lower id can commit after a higher one.
    pub async fn catch_up(&self) -> Result<()> {
        const WINDOW: i64 = 256;
        let mut f = self.follow.lock().await;
        loop {
            let rows = {
                let mut c = self.store.read().await?;
                st::changes_since(&mut c, (f.cursor - WINDOW).max(0)).await?
            };
            let fresh: Vec<_> = rows.iter().filter(|r| !f.seen.contains(&r.0)).collect();
            if fresh.is_empty() {
                return Ok(());
            }
            // New catalog and templates first, so nothing rendered after the marks below
            // can come from the old ones.
            if fresh
                .iter()
                .any(|r| matches!(r.1.as_str(), "pbxdevicemodels" | "pbxdevicetemplates"))
            {
                let mut c = self.store.read().await?;
                let cat = Catalog::load(&mut c).await?;
                let tpl = Templates::new(st::all_templates(&mut c).await?);
                *self.catalog.write().expect("lock") = Arc::new(cat);
                *self.templates.write().expect("lock") = Arc::new(tpl);
                self.envs.lock().expect("lock").clear();
                self.common.lock().expect("lock").clear();
            }
            self.epoch.fetch_add(1, Ordering::SeqCst);
            let mut devices = Vec::new();
            for (id, resource, object) in &fresh {
                f.seen.insert(*id);
                f.cursor = f.cursor.max(*id);
                self.invalidate(resource, *object);
                if resource == "pbxdevices" {
                    devices.push(*object);
                }
            }
            let floor = f.cursor - WINDOW;
            f.seen = f.seen.split_off(&floor);
            // A device's own change (a new token or secret, a MAC change) is read at once:
            // revoked credentials must not live on as a "last good" entry.
            for id in devices {
                self.reload_id(id).await;
            }
            if rows.len() < 2000 {
                return Ok(());
            }
        }
    }

    async fn reload_id(&self, id: i64) {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let res = async {
            let mut c = self.store.read().await?;
            match st::device_by_id(&mut c, id).await? {
                Some(row) => self.build(&mut c, row).await.map(Some),
                None => Ok(None),
            }
        }
        .await;
        let mut cache = self.cache.write().expect("lock");
        match res {
            Ok(Some(d)) => {
                // A MAC change: the old MAC's entry goes.
                cache.remove_id(id);
                let e = cache.put(Arc::new(d));
                if self.epoch.load(Ordering::SeqCst) != epoch {
                    e.stale.store(true, Ordering::SeqCst);
                }
            }
            Ok(None) | Err(Error::NotFound(_)) => cache.remove_id(id),
            Err(e) => tracing::warn!(device = id, "device cache: not reloaded: {e}"),
        }
    }

    /// Marks the entries a change touches; true when the catalog or templates must reload.
    fn invalidate(&self, resource: &str, id: i64) -> bool {
        let cache = self.cache.read().expect("lock");
        match resource {
            "pbxdevices" => cache.mark(|d| d.id == id),
            "subscribers" => cache.mark(|d| d.subscriber_ids.contains(&id)),
            "customers" | "pbxcustomersettings" => cache.mark(|d| d.customer_id == id),
            "pbxdeviceprofiles" => cache.mark(|d| d.profile_id == Some(id)),
            "pbxdevicemodels" | "pbxdevicetemplates" => {
                cache.mark(|_| true);
                return true;
            }
            "domains" | "numbers" | "resellers" | "sipservers" => cache.mark(|_| true),
            _ => {}
        }
        false
    }

    /// The device with this MAC: from the cache while fresh, else from the database (and the
    /// stale entry when the database does not answer in time).
    pub async fn by_mac(&self, mac: &str) -> (Loaded, Option<Arc<DeviceDataFiles>>) {
        let cached = self.cache.read().expect("lock").by_mac.get(mac).cloned();
        if let Some(e) = &cached {
            if !e.stale.load(Ordering::Relaxed) {
                return (
                    Loaded::Found(e.data.clone()),
                    Some(Arc::new(DeviceDataFiles(e.clone()))),
                );
            }
        }
        self.reload("identifier", mac, cached).await
    }

    /// The device a token (hash) belongs to.
    pub async fn by_token(&self, hash: &str) -> (Loaded, Option<Arc<DeviceDataFiles>>) {
        let mac = self.cache.read().expect("lock").by_token.get(hash).cloned();
        if let Some(mac) = mac {
            let r = self.by_mac(&mac).await;
            if let Loaded::Found(d) = &r.0 {
                if d.auth.token_hash.as_deref() == Some(hash)
                    || d.auth.boot_hash.as_deref() == Some(hash)
                {
                    return r;
                }
            }
        }
        match self.reload("token_hash", hash, None).await {
            (Loaded::Absent, _) => self.reload("boot_token_hash", hash, None).await,
            other => other,
        }
    }

    /// Reads a device afresh (after a token changed hands, say).
    pub async fn refresh(&self, mac: &str) -> (Loaded, Option<Arc<DeviceDataFiles>>) {
        self.reload("identifier", mac, None).await
    }

    async fn reload(
        &self,
        col: &str,
        v: &str,
        stale: Option<Arc<Entry>>,
    ) -> (Loaded, Option<Arc<DeviceDataFiles>>) {
        let limit = Duration::from_millis(self.cfg.db_timeout_ms);
        let epoch = self.epoch.load(Ordering::SeqCst);
        let load = async {
            let mut c = self.store.read().await?;
            match st::device_by(&mut c, col, v).await? {
                Some(row) => match self.build(&mut c, row).await {
                    Ok(d) => Ok::<_, Error>(Some(d)),
                    // The customer is terminated: its phones get nothing.
                    Err(Error::NotFound(_)) => Ok(None),
                    Err(e) => Err(e),
                },
                None => Ok(None),
            }
        };
        match tokio::time::timeout(limit, load).await {
            Ok(Ok(Some(d))) => {
                let e = self.cache.write().expect("lock").put(Arc::new(d));
                if self.epoch.load(Ordering::SeqCst) != epoch {
                    e.stale.store(true, Ordering::SeqCst);
                }
                (
                    Loaded::Found(e.data.clone()),
                    Some(Arc::new(DeviceDataFiles(e))),
                )
            }
            Ok(Ok(None)) => {
                if col == "identifier" {
                    self.cache.write().expect("lock").remove(v);
                }
                (Loaded::Absent, None)
            }
            Ok(Err(_)) | Err(_) if stale.is_some() => {
                let e2 = stale.expect("checked");
                tracing::warn!(device = %e2.data.mac, "database unavailable; serving the last good configuration");
                (
                    Loaded::Found(e2.data.clone()),
                    Some(Arc::new(DeviceDataFiles(e2))),
                )
            }
            Ok(Err(e)) => {
                tracing::warn!("device lookup: {e}");
                (Loaded::Unavailable, None)
            }
            Err(_) => (Loaded::Unavailable, None),
        }
    }

    /// Loads everything a device's configuration is made of.
    async fn build(&self, c: &mut Conn, row: DeviceRow) -> Result<DeviceData> {
        let mut inputs = Inputs::default();
        inputs.load(c, std::slice::from_ref(&row)).await?;
        self.assemble(row, &inputs)
    }

    /// A device's render context and credentials from its row and what it refers to.
    fn assemble(&self, row: DeviceRow, inputs: &Inputs) -> Result<DeviceData> {
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

    /// A file's place in its device's cache, and the base URL it is rendered for. The base
    /// URL is part of the key: without prov.base_url it comes from the request's Host, and
    /// one request must not decide what every later one is told.
    fn file_key(&self, d: &DeviceData, name: &str, base_url: &str) -> (String, String) {
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
    fn render_for(&self, d: &DeviceData, spec: &catalog::FileSpec, base: &str) -> Result<Rendered> {
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

    fn render_for_device(
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

    fn prov_ctx(&self, d: &DeviceData, base_url: &str) -> Value {
        let base = self.base_url(d.provisioning_url.as_deref(), base_url);
        let url = match (&d.auth.mode[..], &d.auth.token) {
            ("token", Some(t)) => format!("{base}{t}/"),
            _ => base.clone(),
        };
        json!({ "url": url, "server": host_of(&base) })
    }

    fn base_url(&self, provisioning_url: Option<&str>, request_base: &str) -> String {
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
    fn system_settings(&self) -> Map<String, Value> {
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

    fn common_base(&self, base_url: &str) -> String {
        self.base_url(
            self.cfg
                .settings
                .get("provisioning_url")
                .and_then(Value::as_str),
            base_url,
        )
    }

    fn common_key(model: &Model, name: &str, base: &str, mark: bool) -> (i64, String) {
        (model.row.id, format!("{name}\n{base}\n{mark}"))
    }

    /// A common file for `base`; with `mark`, its provisioning URL ends in a token mark.
    fn common_rendered(
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

    fn render_file(
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

    /// Queues a fetch record (written in batches with its device.fetched event).
    pub fn record(&self, f: Fetch, reseller_id: i64) {
        if self.fetches.try_send((f, reseller_id)).is_err() {
            tracing::warn!("device fetch records are falling behind; one was dropped");
        }
    }

    async fn record_loop(&self, mut rx: tokio::sync::mpsc::Receiver<(Fetch, i64)>) {
        let mut pending: Vec<(Fetch, i64)> = Vec::new();
        let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            if pending.is_empty() {
                match rx.recv().await {
                    Some(f) => pending.push(f),
                    None => return,
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            while pending.len() < 5000 {
                match rx.try_recv() {
                    Ok(f) => pending.push(f),
                    Err(_) => break,
                }
            }
            match self.write_fetches(&pending).await {
                Ok(n) => {
                    pending.clear();
                    if n > 0 {
                        self.hooks.kick();
                    }
                }
                Err(e) => {
                    tracing::warn!(
                        pending = pending.len(),
                        "device fetch records not written yet: {e}"
                    );
                    pending.truncate(100_000);
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
            if last_prune.elapsed() > Duration::from_secs(3600) {
                last_prune = std::time::Instant::now();
                let cutoff = crate::store::ts_of_ms(
                    crate::hooks::now_ms() - self.cfg.fetch_retention_days as i64 * 86_400_000,
                );
                if let Ok(mut tx) = self.store.begin().await {
                    if st::prune_fetches(&mut tx, &cutoff).await.is_ok() {
                        let _ = tx.commit().await;
                    }
                }
            }
        }
    }

    async fn write_fetches(&self, batch: &[(Fetch, i64)]) -> Result<usize> {
        let mut tx = self.store.begin().await?;
        let fetches: Vec<&Fetch> = batch.iter().map(|(f, _)| f).collect();
        let owned: Vec<Fetch> = fetches
            .iter()
            .map(|f| Fetch {
                device_id: f.device_id,
                ts: f.ts.clone(),
                address: f.address.clone(),
                user_agent: f.user_agent.clone(),
                file: f.file.clone(),
                status: f.status,
            })
            .collect();
        st::record_fetches(&mut tx, &owned).await?;
        let objects: Vec<Value> = batch
            .iter()
            .map(|(f, _)| {
                json!({"device_id": f.device_id, "file": f.file, "address": f.address,
                       "user_agent": f.user_agent, "status": f.status, "timestamp": f.ts})
            })
            .collect();
        let emitted: Vec<crate::hooks::Emitted> = batch
            .iter()
            .zip(&objects)
            .map(|((f, reseller), obj)| crate::hooks::Emitted {
                resource: "pbxdevices",
                object_id: f.device_id,
                reseller_id: Some(*reseller),
                op: crate::changes::Op::Update,
                change_id: None,
                before: None,
                after: Some(obj),
                events: Some(vec!["device.fetched".into()]),
            })
            .collect();
        let n = crate::hooks::enqueue(&mut tx, &crate::model::Actor::system(), &emitted).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// What devices refer to, loaded in batches (the warm-up reads pages of devices).
#[derive(Default)]
struct Inputs {
    subs: HashMap<i64, st::LineSubscriber>,
    profiles: HashMap<i64, Option<st::ProfileRow>>,
    custs: HashMap<i64, Option<st::CustomerSettingsRow>>,
}

impl Inputs {
    async fn load(&mut self, c: &mut Conn, rows: &[DeviceRow]) -> Result<()> {
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

/// The cached files of one device entry (what `device_file` fills).
pub struct DeviceDataFiles(Arc<Entry>);

/// A device line as stored: an account (private, shared) or a key (blf, speeddial).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct LineSpec {
    #[serde(default)]
    pub subscriber_id: Option<i64>,
    /// The account (1…) a line is, or a key belongs to.
    #[serde(default)]
    pub line: Option<i64>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub label: Option<String>,
    /// A key's target (extension, number or username) when it is not a subscriber.
    #[serde(default)]
    pub target: Option<String>,
}

fn model_ctx(m: &Model) -> Value {
    let r = &m.row;
    json!({
        "vendor": r.vendor, "family": r.family, "model": r.model, "code": r.code,
        "lines": r.lines, "keys": r.keys, "expansion_modules": r.expansion_modules,
        "expansion_keys": r.expansion_keys,
    })
}

fn common_ctx(model: &Model, settings: &Value, base: &str) -> Value {
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

fn host_of(url: &str) -> String {
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
