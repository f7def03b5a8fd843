//! Fetch records: each file served is written (in batches) with its `device.fetched` event.

use super::*;

impl Devices {
    /// Queues a fetch record (written in batches with its device.fetched event).
    pub fn record(&self, f: Fetch, reseller_id: i64) {
        if self.fetches.try_send((f, reseller_id)).is_err() {
            tracing::warn!("device fetch records are falling behind; one was dropped");
        }
    }

    pub(super) async fn record_loop(&self, mut rx: tokio::sync::mpsc::Receiver<(Fetch, i64)>) {
        let mut pending: Vec<(Fetch, i64)> = Vec::new();
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
        }
    }

    /// Deletes fetch records past their retention (one node's housekeeping).
    pub async fn prune_fetches(&self) -> Result<u64> {
        let cutoff = crate::store::ts_of_ms(
            crate::hooks::now_ms() - self.cfg.fetch_retention_days as i64 * 86_400_000,
        );
        let mut tx = self.store.begin_solo().await?;
        let n = st::prune_fetches(&mut tx, &cutoff).await?;
        tx.commit().await?;
        Ok(n)
    }

    pub(super) async fn write_fetches(&self, batch: &[(Fetch, i64)]) -> Result<usize> {
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
