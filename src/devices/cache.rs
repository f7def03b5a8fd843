//! The cache of devices and their rendered files: filled at start, following the change log,
//! kept as the last good configuration while the database does not answer.

use super::*;

pub(super) struct Entry {
    pub(super) data: Arc<DeviceData>,
    pub(super) files: Mutex<HashMap<String, Arc<Rendered>>>,
    pub(super) stale: AtomicBool,
}

#[derive(Default)]
pub(super) struct Cache {
    pub(super) by_mac: HashMap<String, Arc<Entry>>,
    /// Token hashes (long-lived and first-boot) → MAC.
    pub(super) by_token: HashMap<String, String>,
}

impl Cache {
    pub(super) fn put(&mut self, data: Arc<DeviceData>) -> Arc<Entry> {
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
    pub(super) fn remove(&mut self, mac: &str) {
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
    pub(super) fn remove_id(&mut self, id: i64) {
        let mac = self
            .by_mac
            .values()
            .find(|e| e.data.id == id)
            .map(|e| e.data.mac.clone());
        if let Some(mac) = mac {
            self.remove(&mac);
        }
    }
    pub(super) fn mark(&self, f: impl Fn(&DeviceData) -> bool) {
        for e in self.by_mac.values() {
            if f(&e.data) {
                e.stale.store(true, Ordering::Relaxed);
            }
        }
    }
}

pub(super) struct Follow {
    pub(super) cursor: crate::changes::follow::Cursor,
    /// Until every transaction that was open when the cache began has ended (PostgreSQL: the
    /// horizon's `xmin` reaches this), a change drawn before the start may still commit
    /// unseen by the cursor; then everything loaded until that moment is marked stale once.
    pub(super) start_gate: Option<i64>,
}

impl Devices {
    /// Forgets every device and file and loads them again (after a snapshot was restored
    /// under the running server: nothing from before may be served as "last good").
    pub async fn reload_all(self: &Arc<Self>) {
        if let Err(e) = self.reload_catalog().await {
            tracing::warn!("device cache: catalog not reloaded: {e}");
            self.envs.lock().expect("lock").clear();
            self.common.lock().expect("lock").clear();
        }
        self.epoch.fetch_add(1, Ordering::SeqCst);
        *self.cache.write().expect("lock") = Cache::default();
        if let Err(e) = self.warm().await {
            tracing::warn!("device cache: not warmed again: {e}");
        }
    }

    /// Reads the catalog and the templates again, and forgets what was rendered from the
    /// old ones.
    async fn reload_catalog(&self) -> Result<()> {
        let mut c = self.store.read().await?;
        let cat = Catalog::load(&mut c).await?;
        let tpl = Templates::new(st::all_templates(&mut c).await?);
        drop(c);
        *self.catalog.write().expect("lock") = Arc::new(cat);
        *self.templates.write().expect("lock") = Arc::new(tpl);
        self.envs.lock().expect("lock").clear();
        self.common.lock().expect("lock").clear();
        Ok(())
    }

    pub(super) async fn warm(self: &Arc<Self>) -> Result<()> {
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
    pub(super) fn prerender(&self, e: &Arc<Entry>) {
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

    /// Follows the change log and marks what a change touches as stale (kept as the last
    /// good configuration until a fresh one is rendered). The cursor waits for ids that commit
    /// out of order, however late (see [`crate::changes::follow`]).
    pub async fn catch_up(&self) -> Result<()> {
        const BATCH: i64 = 2000;
        let mut f = self.follow.lock().await;
        if let Some(gate) = f.start_gate {
            if self.store.ended_before(gate).await? {
                // Catalog and templates too: a late model or template change is among them.
                self.reload_catalog().await?;
                f.start_gate = None;
                self.epoch.fetch_add(1, Ordering::SeqCst);
                self.cache.read().expect("lock").mark(|_| true);
            }
        }
        loop {
            let (rows, plan) =
                crate::changes::follow::read(&self.store, &mut f.cursor, BATCH, false).await?;
            if rows.is_empty() {
                f.cursor.settled(&plan.settles);
                return Ok(());
            }
            // New catalog and templates first, so nothing rendered after the marks below
            // can come from the old ones.
            if rows.iter().any(|r| {
                matches!(
                    r.resource.as_str(),
                    "pbxdevicemodels" | "pbxdevicetemplates"
                )
            }) {
                self.reload_catalog().await?;
            }
            self.epoch.fetch_add(1, Ordering::SeqCst);
            let mut devices = Vec::new();
            for r in &rows {
                self.invalidate(&r.resource, r.object_id);
                if r.resource == "pbxdevices" {
                    devices.push(r.object_id);
                }
            }
            let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
            f.cursor.consumed(&ids);
            f.cursor.settled(&plan.settles);
            // A device's own change (a new token or secret, a MAC change) is read at once:
            // revoked credentials must not live on as a "last good" entry.
            for id in devices {
                self.reload_id(id).await;
            }
            if (rows.len() as i64) < BATCH {
                return Ok(());
            }
        }
    }

    /// Before a phone is answered where several nodes share the database: a change another
    /// node committed a moment ago may not have woken this one's follower yet. One look at
    /// the change log's end (bounded by `db_timeout_ms`: with the database away the last good
    /// files are served) and the cache catches up first if it is behind.
    pub async fn catch_up_if_behind(&self) {
        if self.store.single_node() {
            return;
        }
        let limit = Duration::from_millis(self.cfg.db_timeout_ms);
        let r = tokio::time::timeout(limit, async {
            let (hi, awaited) = {
                let f = self.follow.lock().await;
                (f.cursor.hi(), f.cursor.gaps() > 0)
            };
            let end = {
                let mut c = self.store.read().await?;
                crate::store::sipservers::max_change_id(&mut c).await?
            };
            // Past the end, or a change awaited below it that may have committed since.
            if end > hi || awaited {
                self.catch_up().await?;
            }
            Ok::<_, Error>(())
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("device cache: change log not readable: {e}"),
            Err(_) => tracing::debug!("device cache: change log not read in time"),
        }
    }

    pub(super) async fn reload_id(&self, id: i64) {
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
    pub(super) fn invalidate(&self, resource: &str, id: i64) -> bool {
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
        let fresh = cached
            .as_ref()
            .is_some_and(|e| !e.stale.load(Ordering::Relaxed));
        metrics::counter!("voxprov_phone_cache_lookups_total", "result" => if fresh { "hit" } else { "miss" })
            .increment(1);
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

    pub(super) async fn reload(
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
}
