//! Secrets: admin and web passwords are argon2id hashes (never recoverable, never returned);
//! SIP passwords must be recoverable (HA1 for other realms, phone configurations) so they are
//! encrypted at rest with AES-256-GCM under a key kept outside the database; API keys are
//! long random strings, so a SHA-256 of them is enough and keeps every request cheap.

use std::{io::Write, path::Path};

use aes_gcm::{
    aead::{Aead, KeyInit},
    Aes256Gcm, Nonce,
};
use argon2::{
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString},
    Argon2,
};
use base64::{engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD, Engine};
use rand::{rngs::OsRng, RngCore};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Hashes on the blocking pool: argon2 is deliberately slow and must not stall the runtime.
/// Inside [`Prehashed::scope`], a password hashed ahead is taken from there instead.
pub async fn hash_password(pw: String) -> Result<String> {
    let ahead = PREHASHED.try_with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().position(|(k, _)| *k == pw)?;
        Some(p.swap_remove(i).1)
    });
    if let Ok(Some(h)) = ahead {
        return Ok(h);
    }
    hash_now(pw).await
}

/// At most as many argon2 computations at once as there are CPUs: each takes 19 MiB while it
/// runs, and more at once would only share the same CPUs.
fn hashing() -> &'static tokio::sync::Semaphore {
    static HASHING: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    HASHING.get_or_init(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    })
}

async fn hash_now(pw: String) -> Result<String> {
    let _turn = hashing().acquire().await.map_err(Error::internal)?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(pw.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(Error::internal)?
    .map_err(|e| Error::internal(anyhow::anyhow!("argon2: {e}")))
}

tokio::task_local! {
    /// Passwords hashed before a write's transaction opened, with their hashes.
    static PREHASHED: std::cell::RefCell<Vec<(String, String)>>;
}

/// Passwords hashed ahead of the statements that store them. An argon2 hash takes tens of
/// milliseconds; made inside a write's transaction it would hold the writer — every other
/// write on the platform — that long, so an API write hashes before its transaction opens.
/// (An import holds the writer from its first row to its last anyway: it hashes a batch's
/// passwords on every CPU instead of one by one.) Each hash is used once, by the [`hash_password`] call for the
/// same password inside [`Prehashed::scope`]; one not asked for is dropped (a password the
/// write turned out not to set, or refused).
#[derive(Clone, Default)]
pub struct Prehashed(Vec<(String, String)>);

impl Prehashed {
    /// Hashes `passwords` side by side, as many at once as there are CPUs (see [`hashing`]:
    /// an import's batch of thousands waits its turns). Dropped unfinished (a client gone, a
    /// hash failed), the hashes not started yet are not made.
    pub async fn of(passwords: Vec<String>) -> Result<Prehashed> {
        let mut hashing = tokio::task::JoinSet::new();
        for (i, pw) in passwords.iter().enumerate() {
            let pw = pw.clone();
            hashing.spawn(async move { (i, hash_now(pw).await) });
        }
        let mut hashes = vec![String::new(); passwords.len()];
        while let Some(done) = hashing.join_next().await {
            let (i, h) = done.map_err(Error::internal)?;
            hashes[i] = h?;
        }
        Ok(Prehashed(passwords.into_iter().zip(hashes).collect()))
    }

    /// Runs `work` with these hashes at hand.
    ///
    /// Not an `async fn`: that would hold `work` twice (its argument, and the scope's future
    /// it moves into), and a write's future is large enough already for a debug build's stack.
    pub fn scope<F: std::future::Future>(
        self,
        work: F,
    ) -> impl std::future::Future<Output = F::Output> {
        PREHASHED.scope(std::cell::RefCell::new(self.0), work)
    }
}

/// Checks `pw` against an argon2 `hash` (counted in `voxprov_auth_password_checks_total`).
pub async fn verify_password(hash: String, pw: String) -> bool {
    metrics::counter!("voxprov_auth_password_checks_total").increment(1);
    let Ok(_turn) = hashing().acquire().await else {
        return false;
    };
    tokio::task::spawn_blocking(move || match PasswordHash::new(&hash) {
        Ok(h) => Argon2::default().verify_password(pw.as_bytes(), &h).is_ok(),
        Err(_) => false,
    })
    .await
    .unwrap_or(false)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    OsRng.fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// A new API key: `vxp_<prefix>_<secret>`. The prefix finds the row; the hash checks it.
pub fn new_api_key() -> (String, String, String) {
    let prefix = hex::encode({
        let mut b = [0u8; 6];
        OsRng.fill_bytes(&mut b);
        b
    });
    let full = format!("vxp_{prefix}_{}", random_token(32));
    let hash = sha256_hex(full.as_bytes());
    (full, prefix, hash)
}

/// Splits a presented API key into its prefix, if it has our shape.
pub fn api_key_prefix(key: &str) -> Option<&str> {
    let rest = key.strip_prefix("vxp_")?;
    let (prefix, secret) = rest.split_once('_')?;
    (prefix.len() == 12 && !secret.is_empty()).then_some(prefix)
}

#[derive(Clone)]
pub struct Cipher {
    aead: Aes256Gcm,
    key: Vec<u8>,
}

impl Cipher {
    /// Loads the key from `path`, creating it (mode 0600) on first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Cipher> {
        let key = if path.exists() {
            let raw = std::fs::read(path)?;
            let text = String::from_utf8_lossy(&raw);
            let t = text.trim();
            if t.len() == 64 && t.chars().all(|c| c.is_ascii_hexdigit()) {
                hex::decode(t)?
            } else if raw.len() == 32 {
                raw
            } else {
                anyhow::bail!(
                    "secret key {}: expected 32 bytes or 64 hex digits",
                    path.display()
                );
            }
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut k = vec![0u8; 32];
            OsRng.fill_bytes(&mut k);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(path)?;
            f.write_all(hex::encode(&k).as_bytes())?;
            f.sync_all()?;
            k
        };
        let aead =
            Aes256Gcm::new_from_slice(&key).map_err(|_| anyhow::anyhow!("bad key length"))?;
        Ok(Cipher { aead, key })
    }

    pub fn encrypt(&self, plain: &str) -> Result<String> {
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let ct = self
            .aead
            .encrypt(Nonce::from_slice(&nonce), plain.as_bytes())
            .map_err(|_| Error::internal(anyhow::anyhow!("encryption failed")))?;
        let mut out = nonce.to_vec();
        out.extend(ct);
        Ok(format!("v1:{}", STANDARD.encode(out)))
    }

    pub fn decrypt(&self, stored: &str) -> Result<String> {
        let fail = || {
            Error::internal(anyhow::anyhow!(
                "stored secret cannot be decrypted (wrong secret key?)"
            ))
        };
        let b = STANDARD
            .decode(stored.strip_prefix("v1:").ok_or_else(fail)?)
            .map_err(|_| fail())?;
        if b.len() < 13 {
            return Err(fail());
        }
        let pt = self
            .aead
            .decrypt(Nonce::from_slice(&b[..12]), &b[12..])
            .map_err(|_| fail())?;
        String::from_utf8(pt).map_err(|_| fail())
    }
}

impl Cipher {
    /// The key itself, for a backup to carry (encrypted under the operator's passphrase).
    pub fn export_key(&self) -> Vec<u8> {
        self.key.clone()
    }

    /// A sub-key for another purpose, so the encryption key itself is used for one thing only.
    pub fn derive_key(&self, purpose: &[u8]) -> Vec<u8> {
        use hmac::{Hmac, Mac};
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("hmac takes any key");
        m.update(purpose);
        m.finalize().into_bytes().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_password_hashed_ahead_is_taken_once_and_others_are_hashed_where_met() {
        let ahead = Prehashed::of(vec![
            "first secret".into(),
            "second secret".into(),
            "never asked".into(),
        ])
        .await
        .unwrap();
        let kept = ahead.0.clone();
        let (a, again, other, second) = ahead
            .scope(async {
                (
                    hash_password("first secret".into()).await.unwrap(),
                    hash_password("first secret".into()).await.unwrap(),
                    hash_password("not hashed ahead".into()).await.unwrap(),
                    hash_password("second secret".into()).await.unwrap(),
                )
            })
            .await;
        assert_eq!(a, kept[0].1, "the hash made ahead is the one used");
        assert_eq!(second, kept[1].1);
        assert_ne!(again, a, "a hash made ahead serves one call only");
        for (h, pw) in [
            (&a, "first secret"),
            (&again, "first secret"),
            (&other, "not hashed ahead"),
        ] {
            let parsed = PasswordHash::new(h).unwrap();
            assert!(Argon2::default()
                .verify_password(pw.as_bytes(), &parsed)
                .is_ok());
        }
        // Outside the scope nothing is at hand, not even a hash no call took.
        assert_ne!(
            hash_password("never asked".into()).await.unwrap(),
            kept[2].1
        );
    }
}
