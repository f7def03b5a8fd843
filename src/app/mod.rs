//! The application core: configuration, storage, the secret key, the credentials, and the
//! services that act on changes (SIP-server delivery, hooks, the phones' configuration cache).
//! Every face (the HTTP API, the web UI, the command line) acts through one [`App`]; none of
//! them is part of it.

pub mod backup;
pub mod certs;
pub mod cluster;
pub mod credentials;
pub mod snapshots;
pub mod strikes;

use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::config::Config;
use crate::crypto::Cipher;
use crate::devices::Devices;
use crate::hooks::worker::Hooks;
use crate::store::Store;
use crate::targets::Targets;

pub struct App {
    pub cfg: Config,
    pub store: Store,
    pub cipher: Cipher,
    pub credentials: credentials::Credentials,
    pub targets: Arc<Targets>,
    pub hooks: Arc<Hooks>,
    pub devices: Arc<Devices>,
    /// Wake-ups for the other nodes (PostgreSQL).
    pub wakeups: cluster::Wakeups,
    etag_key: Vec<u8>,
}

/// The background work of a running server, stopped together.
pub struct Workers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    targets: Arc<Targets>,
}

impl Workers {
    pub fn stop(self) {
        for t in self.tasks {
            t.abort();
        }
        self.targets.stop();
    }
}

impl App {
    /// The core on an opened store, its services built but not started: a command-line run
    /// acts through it and leaves delivery to a running server, which follows the change log.
    pub async fn build(cfg: Config, store: Store, cipher: Cipher) -> anyhow::Result<App> {
        let targets = Targets::new(
            store.clone(),
            cipher.clone(),
            std::time::Duration::from_millis(cfg.sync_wait_ms),
        );
        let hooks = Hooks::new(cfg.hooks.clone(), store.clone(), cipher.clone());
        let devices = Devices::open(
            cfg.prov.clone(),
            store.clone(),
            cipher.clone(),
            hooks.clone(),
        )
        .await?;
        let credentials =
            credentials::Credentials::new(&store, cfg.auth_cache_seconds, cfg.auth_max_failures);
        let etag_key = cipher.derive_key(b"voxprov etag");
        Ok(App {
            cfg,
            store,
            cipher,
            credentials,
            targets,
            hooks,
            devices,
            wakeups: cluster::Wakeups::default(),
            etag_key,
        })
    }

    /// Starts the services' background work (a server's, not a command's).
    pub fn start(self: &Arc<Self>) -> Workers {
        let mut tasks = vec![
            tokio::spawn(self.targets.clone().supervise()),
            self.hooks.start(),
            tokio::spawn(crate::targets::cdrs::run(
                self.store.clone(),
                self.cipher.clone(),
                self.cfg.cdrs.clone(),
            )),
        ];
        tasks.extend(self.devices.start());
        tasks.extend(cluster::start(self));
        Workers {
            tasks,
            targets: self.targets.clone(),
        }
    }

    /// A keyed hash of a representation: its version, revealing nothing of secret fields.
    pub fn etag(&self, data: &[u8]) -> String {
        let mut m = Hmac::<Sha256>::new_from_slice(&self.etag_key).expect("hmac takes any key");
        m.update(data);
        hex::encode(&m.finalize().into_bytes()[..16])
    }
}
