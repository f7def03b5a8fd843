//! Phone provisioning at run time: the catalog and templates in memory, every device's
//! render context and its last good files in a cache that follows the change log (so a
//! phone is served without a database query, and still served when the database is down),
//! the fetch recorder, and the ban list.

pub mod catalog;
pub mod render;
pub mod resync;
pub mod security;
pub mod serve;

mod assemble;
mod cache;
mod fetches;
mod files;

use assemble::*;
use cache::*;
use files::*;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};

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
    /// The change log moved (a wake-up from another node): follow now.
    follow_kick: tokio::sync::Notify,
    pub bans: Bans,
    proxies: Vec<ipnet::IpNet>,
    warm_done: AtomicBool,
    /// Told once the warm-up ended (done or given up), for a start that waits for it.
    warmed: tokio::sync::watch::Sender<bool>,
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
            // Everything drawn before now is loaded by the warm-up (or marked stale once its
            // transactions are over, see `Follow::start_gate`).
            let cursor = store.drawn_change_id().await?;
            let mut c = store.read().await?;
            (
                Catalog::load(&mut c).await?,
                Templates::new(st::all_templates(&mut c).await?),
                cursor,
            )
        };
        let (tx, rx) = tokio::sync::mpsc::channel(65536);
        let etag_key = cipher.derive_key(b"voxprov prov etag");
        Ok(Arc::new(Devices {
            bans: Bans::new(&cfg, &store),
            proxies: cfg
                .trusted_proxies
                .iter()
                .filter_map(|p| crate::model::parse_net(p))
                .collect(),
            warm_done: AtomicBool::new(false),
            warmed: tokio::sync::watch::Sender::new(false),
            epoch: std::sync::atomic::AtomicU64::new(0),
            cfg,
            store,
            cipher,
            catalog: RwLock::new(Arc::new(catalog)),
            templates: RwLock::new(Arc::new(templates)),
            cache: RwLock::new(Cache::default()),
            common: Mutex::new(HashMap::new()),
            envs: Mutex::new(HashMap::new()),
            follow_kick: tokio::sync::Notify::new(),
            follow: tokio::sync::Mutex::new(Follow {
                cursor: crate::changes::follow::Cursor::at(cursor.0),
                start_gate: cursor.1,
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
                // Told however the warm-up ends (a panic included): a start waits for it.
                struct Ended<'a>(&'a tokio::sync::watch::Sender<bool>);
                impl Drop for Ended<'_> {
                    fn drop(&mut self) {
                        self.0.send_replace(true);
                    }
                }
                let _ended = Ended(&d.warmed);
                if let Err(e) = d.warm().await {
                    tracing::warn!("device cache warm-up: {e}");
                }
            })
        };
        let follow = {
            let d = self.clone();
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        // A wake-up stands for a commit on another node, where a phone's
                        // fetch looks at the change log's end itself: gathering the
                        // wake-ups of a busy moment into one read costs no phone anything.
                        _ = d.follow_kick.notified() => {
                            tokio::time::sleep(Duration::from_millis(20)).await
                        }
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                    if let Err(e) = d.catch_up().await {
                        tracing::debug!("device cache: change log not readable: {e}");
                    }
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

    /// Waits (at most `max`) for the warm-up started by [`Devices::start`] to end; whether
    /// it did.
    pub async fn wait_warm(&self, max: Duration) -> bool {
        let mut rx = self.warmed.subscribe();
        let done = tokio::time::timeout(max, rx.wait_for(|done| *done)).await;
        matches!(done, Ok(Ok(_)))
    }

    /// Changes were committed elsewhere: the follower looks now rather than at its next poll.
    pub fn kick(&self) {
        self.follow_kick.notify_one();
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

    /// The phone's address: the peer's, or for a trusted proxy the last address in
    /// `X-Forwarded-For` (the values of every such header, in order) that is not itself a
    /// trusted proxy.
    pub fn client_ip<'a>(
        &self,
        peer: std::net::IpAddr,
        forwarded_for: impl Iterator<Item = &'a str>,
    ) -> std::net::IpAddr {
        let trusted = |ip: &std::net::IpAddr| self.proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        crate::model::forwarded_client(forwarded_for, trusted).unwrap_or(peer)
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
