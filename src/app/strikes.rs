//! Failed attempts and bans per client address, the same on every node: counted in the
//! database, and the addresses banned now mirrored in memory so that a request is checked
//! without a round trip. A ban set by one node reaches the others at once by a wake-up
//! (PostgreSQL's LISTEN/NOTIFY) and within [`REFRESH`] without one. With the database away,
//! failures are counted here alone: an attacker gains nothing from an outage.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Mutex, RwLock},
    time::Duration,
};

use crate::error::Result;
use crate::store::{strikes as st, Store};

/// How often the mirror is read again when no wake-up comes.
pub const REFRESH: Duration = Duration::from_secs(5);

pub struct Strikes {
    store: Store,
    /// `login` (admins' credentials) or `prov` (phones).
    face: &'static str,
    limits: st::Limits,
    /// Banned addresses → until (unix ms).
    banned: RwLock<HashMap<IpAddr, i64>>,
    /// Failures counted while the database did not answer: (count, window start).
    local: Mutex<HashMap<IpAddr, (i64, i64)>>,
}

/// What one failure led to.
pub struct Struck {
    pub failures: i64,
    /// The address is banned from now on for this long (this failure reached the limit).
    pub banned_now: Option<Duration>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Strikes {
    pub fn new(
        store: Store,
        face: &'static str,
        max: u32,
        window: Duration,
        ban: Duration,
    ) -> Self {
        Strikes {
            store,
            face,
            limits: st::Limits {
                max: max.max(1) as i64,
                window_ms: window.as_millis() as i64,
                ban_ms: ban.as_millis() as i64,
            },
            banned: RwLock::new(HashMap::new()),
            local: Mutex::new(HashMap::new()),
        }
    }

    /// How long `ip` stays banned, if it is.
    pub fn banned_for(&self, ip: IpAddr) -> Option<Duration> {
        let until = *self.banned.read().expect("bans").get(&ip)?;
        let left = until - now_ms();
        (left > 0).then(|| Duration::from_millis(left as u64))
    }

    /// Counts a failure of `ip`.
    pub async fn fail(&self, ip: IpAddr) -> Struck {
        let now = now_ms();
        let was_banned = self.banned_for(ip).is_some();
        let counted = async {
            let mut tx = self.store.begin().await?;
            let (n, until) =
                st::fail(&mut tx, self.face, &ip.to_string(), now, self.limits).await?;
            if until.is_some() && !was_banned {
                Store::notify(&mut tx, "strikes").await?;
            }
            tx.commit().await?;
            Ok::<_, crate::error::Error>((n, until))
        }
        .await;
        let (failures, until) = match counted {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(face = self.face, "failure counted on this node only: {e}");
                let mut local = self.local.lock().expect("local strikes");
                if local.len() > 100_000 {
                    local.retain(|_, (_, start)| *start > now - self.limits.window_ms);
                }
                let s = local.entry(ip).or_insert((0, now));
                if s.1 <= now - self.limits.window_ms {
                    *s = (0, now);
                }
                s.0 += 1;
                let until = (s.0 >= self.limits.max).then_some(now + self.limits.ban_ms);
                (s.0, until)
            }
        };
        let mut banned_now = None;
        if let Some(u) = until {
            if !was_banned {
                banned_now = Some(Duration::from_millis((u - now).max(0) as u64));
            }
            self.banned.write().expect("bans").insert(ip, u);
        }
        Struck {
            failures,
            banned_now,
        }
    }

    /// Reads the banned addresses again (a wake-up came, or [`REFRESH`] passed).
    pub async fn refresh(&self) -> Result<()> {
        let now = now_ms();
        let rows = {
            let mut c = self.store.read().await?;
            st::banned(&mut c, self.face, now).await?
        };
        let mut fresh: HashMap<IpAddr, i64> = rows
            .iter()
            .filter_map(|(a, until, _)| Some((a.parse().ok()?, *until)))
            .collect();
        // Bans this node set while the database was away stay until they run out.
        let local = self.local.lock().expect("local strikes");
        for (ip, until) in self.banned.read().expect("bans").iter() {
            if *until > now && local.contains_key(ip) {
                fresh.entry(*ip).or_insert(*until);
            }
        }
        drop(local);
        *self.banned.write().expect("bans") = fresh;
        Ok(())
    }

    /// Addresses banned now: (address, seconds left, failures).
    pub async fn list(&self) -> Result<Vec<(IpAddr, u64, i64)>> {
        let now = now_ms();
        let mut c = self.store.read().await?;
        Ok(st::banned(&mut c, self.face, now)
            .await?
            .into_iter()
            .filter_map(|(a, until, n)| Some((a.parse().ok()?, ((until - now) / 1000) as u64, n)))
            .collect())
    }

    /// Lifts a ban (on every node); whether the address had any failures or ban.
    pub async fn lift(&self, ip: IpAddr) -> Result<bool> {
        let mut tx = self.store.begin().await?;
        let had = st::lift(&mut tx, self.face, &ip.to_string()).await?;
        Store::notify(&mut tx, "strikes").await?;
        tx.commit().await?;
        self.local.lock().expect("local strikes").remove(&ip);
        let had_here = self.banned.write().expect("bans").remove(&ip).is_some();
        Ok(had || had_here)
    }

    /// Deletes failures that no longer count (one node does it: a pruning duty).
    pub async fn prune(&self) -> Result<u64> {
        let now = now_ms();
        self.local
            .lock()
            .expect("local strikes")
            .retain(|_, (_, start)| *start > now - self.limits.window_ms - self.limits.ban_ms);
        let mut tx = self.store.begin().await?;
        let n = st::prune(&mut tx, self.face, now, self.limits.window_ms).await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Banned addresses in the mirror (for metrics).
    pub fn banned_count(&self) -> usize {
        let now = now_ms();
        self.banned
            .read()
            .expect("bans")
            .values()
            .filter(|u| **u > now)
            .count()
    }
}
