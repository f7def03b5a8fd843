//! Who is calling: admins' passwords and API keys checked against the database, for every
//! face (the API's Basic and Bearer credentials, the web UI's login form).
//!
//! The admin behind a credential is read on every request, so a change of its rights (or of
//! an API key's admin) takes effect at once on every node. What is remembered, for a short
//! time, is only that a password matched a given password hash: argon2 costs tens of
//! milliseconds by design and would otherwise cap the API at a few dozen requests per second
//! per core. Failed attempts are counted per client address on every node together
//! ([`super::strikes`]); past the limit the address gets 429 for a minute, from every node.

use std::{
    collections::HashMap,
    net::IpAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sqlx::Row;

use crate::crypto;
use crate::error::{Error, Result};
use crate::model::{Actor, ActorKind, Rights, Role};
use crate::store::Store;

pub struct Credentials {
    /// Verified (login, password) pairs → the password hash they were verified against.
    cache: Mutex<HashMap<[u8; 32], (String, Instant)>>,
    /// Pairs being verified now: requests that bring the same pair wait for that check rather
    /// than making their own (when a busy client's pair drops out of the cache, its requests
    /// in flight would otherwise each pay an argon2 check at the same moment).
    checking: Checking,
    /// Failed attempts and bans per address, shared by the nodes.
    pub strikes: std::sync::Arc<super::strikes::Strikes>,
    ttl: Duration,
    key_touched: Mutex<HashMap<i64, Instant>>,
}

/// A turn at checking one (login, password) pair; the last request out removes the pair's
/// entry (dropped on every path, a request that went away included).
struct Gate<'a>(Arc<tokio::sync::Mutex<()>>, &'a Checking, [u8; 32]);

/// The pairs being checked, each with the turn its requests wait for.
type Checking = Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>;

impl<'a> Gate<'a> {
    fn new(map: &'a Checking, key: [u8; 32]) -> Self {
        let g = map
            .lock()
            .expect("auth checks")
            .entry(key)
            .or_default()
            .clone();
        Gate(g, map, key)
    }
}

impl Drop for Gate<'_> {
    fn drop(&mut self) {
        let mut map = self.1.lock().expect("auth checks");
        // The map's reference and this one: nobody else is waiting.
        if Arc::strong_count(&self.0) == 2 {
            map.remove(&self.2);
        }
    }
}

/// How long failures are counted together, and how long an address that reached the limit
/// is refused.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

impl Credentials {
    pub fn new(store: &Store, ttl_secs: u64, max_failures: u32) -> Self {
        Credentials {
            cache: Mutex::new(HashMap::new()),
            checking: Mutex::new(HashMap::new()),
            strikes: std::sync::Arc::new(super::strikes::Strikes::new(
                store.clone(),
                "login",
                max_failures,
                FAILURE_WINDOW,
                FAILURE_WINDOW,
            )),
            ttl: Duration::from_secs(ttl_secs),
            key_touched: Mutex::new(HashMap::new()),
        }
    }

    /// Forget every remembered credential (an admin was changed or removed).
    pub fn invalidate(&self) {
        self.cache.lock().expect("auth cache").clear();
    }

    fn check_banned(&self, ip: Option<IpAddr>) -> Result<()> {
        let Some(ip) = ip else { return Ok(()) };
        match self.strikes.banned_for(ip) {
            Some(left) => Err(Error::TooManyRequests(left.as_secs().max(1))),
            None => Ok(()),
        }
    }

    async fn failed(&self, ip: Option<IpAddr>) -> Error {
        if let Some(ip) = ip {
            let s = self.strikes.fail(ip).await;
            tracing::warn!(client = %ip, failures = s.failures, "authentication failed");
            if let Some(d) = s.banned_now {
                tracing::warn!(client = %ip, seconds = d.as_secs(), "authentication: address refused after too many failures");
            }
        }
        Error::Unauthorized
    }

    /// An admin's login and password (HTTP Basic, the web UI's login form).
    /// An admin by the client certificate they presented over HTTPS (its SHA-256): read
    /// on every request, so a revoked certificate or a deactivated admin is refused at once.
    pub async fn verify_certificate(&self, store: &Store, der: &[u8]) -> Result<Actor> {
        let fingerprint = crypto::sha256_hex(der);
        let row = {
            let mut c = store.read().await?;
            sqlx::query("SELECT id, login, role, reseller_id, read_only FROM admins WHERE ssl_client_fingerprint = $1 AND is_active = 1 \
                         AND (reseller_id IS NULL OR reseller_id IN (SELECT id FROM resellers WHERE status = 'active'))")
                .bind(&fingerprint)
                .fetch_optional(&mut *c)
                .await?
        };
        let Some(row) = row else {
            return Err(Error::Unauthorized);
        };
        let role: String = row.try_get(2)?;
        Ok(Actor {
            kind: ActorKind::Admin,
            id: Some(row.try_get(0)?),
            name: row.try_get(1)?,
            role: Role::parse("role", &role)?,
            reseller_id: row.try_get(3)?,
            read_only: row.try_get::<i64, _>(4)? != 0,
            client: None,
            admin_id: Some(row.try_get(0)?),
        })
    }

    pub async fn verify_basic(
        &self,
        store: &Store,
        login: &str,
        password: &str,
        ip: Option<IpAddr>,
    ) -> Result<Actor> {
        self.check_banned(ip)?;
        let key: [u8; 32] = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(login.as_bytes());
            h.update([0]);
            h.update(password.as_bytes());
            h.finalize().into()
        };
        // The admin is read on every request — role, reseller, read-only, active take effect
        // at once, on every node, whoever changed them (the API, the CLI, another node). Only
        // the deliberately slow password check is remembered, and only for the password hash
        // it was made against: a new password is checked afresh.
        // The address's ban, read with the admin (no extra round trip; a row whether or not
        // the login exists, so a ban another node set a moment ago answers the same for both).
        let row = {
            let mut c = store.read().await?;
            sqlx::query("SELECT a.id, a.password_hash, a.role, a.reseller_id, a.read_only, b.until \
                         FROM (SELECT (SELECT banned_until_ms FROM strikes WHERE face = 'login' AND addr = $2) AS until) b \
                         LEFT JOIN admins a ON a.login = $1 AND a.is_active = 1 \
                         AND (a.reseller_id IS NULL OR a.reseller_id IN (SELECT id FROM resellers WHERE status = 'active'))")
                .bind(login)
                .bind(ip.map(|i| i.to_string()).unwrap_or_default())
                .fetch_one(&mut *c)
                .await?
        };
        check_ban_row(row.try_get(5)?)?;
        if row.try_get::<Option<i64>, _>(0)?.is_none() {
            // Same cost as a wrong password, so timing does not reveal which logins exist:
            // a check of its own, and behind the same gate (requests bringing one wrong pair
            // at once are checked one after another either way).
            {
                let gate = Gate::new(&self.checking, key);
                let _turn = gate.0.lock().await;
                let _ = crypto::verify_password(DUMMY_HASH.to_string(), password.to_string()).await;
            }
            return Err(self.failed(ip).await);
        }
        let hash: String = row.try_get(1)?;
        if !self.remembered(&key, &hash) && !self.check_once(key, &hash, password).await {
            return Err(self.failed(ip).await);
        }
        let role: String = row.try_get(2)?;
        Ok(Actor {
            kind: ActorKind::Admin,
            id: Some(row.try_get(0)?),
            name: login.to_string(),
            role: Role::parse("role", &role)?,
            reseller_id: row.try_get(3)?,
            read_only: row.try_get::<i64, _>(4)? != 0,
            client: None,
            admin_id: Some(row.try_get(0)?),
        })
    }

    /// Whether `key`'s password was verified against `hash` lately.
    fn remembered(&self, key: &[u8; 32], hash: &str) -> bool {
        self.cache
            .lock()
            .expect("auth cache")
            .get(key)
            .is_some_and(|(h, at)| h == hash && at.elapsed() < self.ttl)
    }

    /// Verifies `password` against `hash` and remembers a match; one check at a time per
    /// pair, and a request that waited for another's check takes its remembered match (a
    /// failure is not shared: each wrong attempt pays its own check, as for an unknown login).
    async fn check_once(&self, key: [u8; 32], hash: &str, password: &str) -> bool {
        let gate = Gate::new(&self.checking, key);
        let _turn = gate.0.lock().await;
        self.remembered(&key, hash) || {
            let ok = crypto::verify_password(hash.to_string(), password.to_string()).await;
            if ok {
                let mut cache = self.cache.lock().expect("auth cache");
                if cache.len() > 10_000 {
                    cache.clear();
                }
                cache.insert(key, (hash.to_string(), Instant::now()));
            }
            ok
        }
    }

    /// An API key's secret.
    pub async fn verify_api_key(
        &self,
        store: &Store,
        key: &str,
        ip: Option<IpAddr>,
    ) -> Result<Actor> {
        self.check_banned(ip)?;
        match self.api_key(store, key, ip).await? {
            Some(a) => Ok(a),
            None => Err(self.failed(ip).await),
        }
    }

    async fn api_key(&self, store: &Store, key: &str, ip: Option<IpAddr>) -> Result<Option<Actor>> {
        let Some(prefix) = crypto::api_key_prefix(key) else {
            return Ok(None);
        };
        // The admin's rights are read with the key on every request: a key never outlives a
        // change of its admin (demoted, moved, made read-only, deactivated), on any node.
        let row = {
            let mut c = store.read().await?;
            sqlx::query(
                "SELECT k.id, k.name, k.secret_hash, k.role, k.reseller_id, k.read_only, k.expires_at, \
                        a.id, a.role, a.reseller_id, a.read_only, \
                        (SELECT banned_until_ms FROM strikes WHERE face = 'login' AND addr = $2) \
                 FROM apikeys k JOIN admins a ON a.id = k.admin_id WHERE k.prefix = $1 AND a.is_active = 1 \
                 AND (a.reseller_id IS NULL OR a.reseller_id IN (SELECT id FROM resellers WHERE status = 'active'))",
            )
            .bind(prefix)
            .bind(ip.map(|i| i.to_string()).unwrap_or_default())
            .fetch_optional(&mut *c)
            .await?
        };
        let Some(row) = row else { return Ok(None) };
        check_ban_row(row.try_get(11)?)?;
        let hash: String = row.try_get(2)?;
        if !crypto::constant_time_eq(
            hash.as_bytes(),
            crypto::sha256_hex(key.as_bytes()).as_bytes(),
        ) {
            return Ok(None);
        }
        if let Some(exp) = row.try_get::<Option<String>, _>(6)? {
            if exp <= crate::store::now() {
                return Ok(None);
            }
        }
        let id: i64 = row.try_get(0)?;
        let made_with = Rights {
            role: Role::parse("role", &row.try_get::<String, _>(3)?)?,
            reseller_id: row.try_get(4)?,
            read_only: row.try_get::<i64, _>(5)? != 0,
        };
        let admin_now = Rights {
            role: Role::parse("role", &row.try_get::<String, _>(8)?)?,
            reseller_id: row.try_get(9)?,
            read_only: row.try_get::<i64, _>(10)? != 0,
        };
        let Some(rights) = made_with.intersect(admin_now) else {
            return Err(Error::Forbidden(
                "this API key was made for a reseller its admin no longer belongs to".into(),
            ));
        };
        self.touch_key(store, id, ip);
        Ok(Some(Actor {
            kind: ActorKind::ApiKey,
            id: Some(id),
            name: format!("apikey:{}", row.try_get::<String, _>(1)?),
            role: rights.role,
            reseller_id: rights.reseller_id,
            read_only: rights.read_only,
            client: None,
            admin_id: Some(row.try_get(7)?),
        }))
    }

    /// Records the key's last use, at most once a minute per key and off the request path:
    /// a write per request would serialise every API call on SQLite's single writer.
    fn touch_key(&self, store: &Store, id: i64, ip: Option<IpAddr>) {
        {
            let mut t = self.key_touched.lock().expect("key_touched");
            if t.get(&id)
                .is_some_and(|at| at.elapsed() < Duration::from_secs(60))
            {
                return;
            }
            t.insert(id, Instant::now());
        }
        let store = store.clone();
        tokio::spawn(async move {
            let res = async {
                let mut tx = store.begin().await?;
                sqlx::query(
                    "UPDATE apikeys SET last_used_at = $1, last_used_from = $2 WHERE id = $3",
                )
                .bind(crate::store::now())
                .bind(ip.map(|i| i.to_string()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok::<_, Error>(())
            }
            .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "could not record API key use");
            }
        });
    }
}

/// Refuses an address whose ban (read with the credential) is running.
fn check_ban_row(banned_until_ms: Option<i64>) -> Result<()> {
    let left = banned_until_ms.unwrap_or(0) - chrono::Utc::now().timestamp_millis();
    if left > 0 {
        return Err(Error::TooManyRequests((left as u64).div_ceil(1000)));
    }
    Ok(())
}

/// argon2id hash of a random string, verified against when the login does not exist.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$1Dnmu1ZVl5QW3rN4qjYbTrhS3wTB1AXkG0Ncg/Jrpqo";
