//! Who may have a device's configuration: its token, its HTTP credentials, its customer's
//! address allow-list; and who may not ask at all any more (bans after repeated failures).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use base64::Engine;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};

use crate::config::ProvConfig;

#[derive(Debug, Clone)]
pub struct AuthInfo {
    /// token | basic | digest | customer | none
    pub mode: String,
    pub secret: String,
    pub boot_hash: Option<String>,
    pub boot_expires: Option<i64>,
    pub token_hash: Option<String>,
    pub token: Option<String>,
    pub token_used: bool,
    pub customer_user: Option<String>,
    pub customer_pass: Option<String>,
    pub cidrs: Vec<ipnet::IpNet>,
}

impl AuthInfo {
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        let ip = crate::model::canonical_ip(ip);
        self.cidrs.is_empty() || self.cidrs.iter().any(|n| n.contains(&ip))
    }

    /// The user name and password HTTP authentication expects.
    fn credentials<'a>(&'a self, mac: &'a str) -> Option<(&'a str, &'a str)> {
        match self.mode.as_str() {
            "basic" | "digest" => Some((mac, &self.secret)),
            "customer" => Some((
                self.customer_user.as_deref()?,
                self.customer_pass.as_deref()?,
            )),
            _ => None,
        }
    }
}

/// A token as it appears in a URL: 32 URL-safe base64 characters (24 random bytes).
pub fn looks_like_token(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

pub fn new_token() -> String {
    crate::crypto::random_token(24)
}

pub fn token_hash(token: &str) -> String {
    crate::crypto::sha256_hex(token.as_bytes())
}

use crate::crypto::constant_time_eq as ct_eq;

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

pub const REALM: &str = "voxprov";

/// Checks an `Authorization` header (Basic, or Digest with a nonce we issued) against the
/// device's credentials.
pub fn check_http(
    auth: &AuthInfo,
    mac: &str,
    header: Option<&str>,
    method: &str,
    uri: &str,
    nonce_key: &[u8],
) -> bool {
    let (Some(h), Some((user, pass))) = (header, auth.credentials(mac)) else {
        return false;
    };
    if let Some(b) = h.strip_prefix("Basic ") {
        if auth.mode == "digest" {
            return false;
        }
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b.trim()) else {
            return false;
        };
        let Ok(s) = String::from_utf8(raw) else {
            return false;
        };
        let Some((u, p)) = s.split_once(':') else {
            return false;
        };
        return ct_eq(u.as_bytes(), user.as_bytes()) & ct_eq(p.as_bytes(), pass.as_bytes());
    }
    if let Some(d) = h.strip_prefix("Digest ") {
        let f = parse_digest(d);
        let get = |k: &str| f.get(k).map(String::as_str).unwrap_or("");
        if get("username") != user
            || get("realm") != REALM
            || get("uri") != uri
            || !nonce_valid(get("nonce"), nonce_key)
        {
            return false;
        }
        let ha1 = md5_hex(&format!("{user}:{REALM}:{pass}"));
        let ha2 = md5_hex(&format!("{method}:{}", get("uri")));
        let expect = match get("qop") {
            "" => md5_hex(&format!("{ha1}:{}:{ha2}", get("nonce"))),
            "auth" => md5_hex(&format!(
                "{ha1}:{}:{}:{}:auth:{ha2}",
                get("nonce"),
                get("nc"),
                get("cnonce")
            )),
            _ => return false,
        };
        return ct_eq(expect.as_bytes(), get("response").as_bytes());
    }
    false
}

fn parse_digest(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else { break };
        let key = rest[..eq].trim().to_ascii_lowercase();
        rest = rest[eq + 1..].trim_start();
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            value = r[..end].to_string();
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = &rest[end..];
        }
        rest = rest.trim_start().trim_start_matches(',').trim_start();
        out.insert(key, value);
    }
    out
}

/// A nonce we can check without remembering it: time and an HMAC of it; valid 5 minutes.
/// The `WWW-Authenticate` value of the uniform challenge: Digest (with a fresh nonce) and
/// Basic, the same for every MAC, known or not.
pub fn challenge(d: &super::Devices) -> String {
    let nonce = new_nonce(&d.etag_key);
    format!(
        "Digest realm=\"{REALM}\", qop=\"auth\", nonce=\"{nonce}\", algorithm=MD5, Basic realm=\"{REALM}\""
    )
}

pub fn new_nonce(key: &[u8]) -> String {
    let t = chrono::Utc::now().timestamp();
    format!("{t:x}.{}", nonce_mac(key, t))
}

fn nonce_mac(key: &[u8], t: i64) -> String {
    let mut m = Hmac::<sha2::Sha256>::new_from_slice(key).expect("any key");
    m.update(&t.to_be_bytes());
    hex::encode(&m.finalize().into_bytes()[..16])
}

fn nonce_valid(nonce: &str, key: &[u8]) -> bool {
    let Some((t, mac)) = nonce.split_once('.') else {
        return false;
    };
    let Ok(t) = i64::from_str_radix(t, 16) else {
        return false;
    };
    let age = chrono::Utc::now().timestamp() - t;
    (0..=300).contains(&age) && ct_eq(nonce_mac(key, t).as_bytes(), mac.as_bytes())
}

/// Failures per address, shared by every node ([`crate::app::strikes`]); an address with
/// too many is banned for a while, on all of them.
pub struct Bans {
    pub strikes: std::sync::Arc<crate::app::strikes::Strikes>,
}

impl Bans {
    pub fn new(cfg: &ProvConfig, store: &crate::store::Store) -> Bans {
        Bans {
            strikes: std::sync::Arc::new(crate::app::strikes::Strikes::new(
                store.clone(),
                "prov",
                cfg.ban_failures,
                Duration::from_secs(cfg.ban_window_seconds),
                Duration::from_secs(cfg.ban_seconds),
            )),
        }
    }

    pub fn banned(&self, ip: IpAddr) -> bool {
        self.strikes.banned_for(ip).is_some()
    }

    /// Counts a failure; logs it, and the ban when this one reaches the limit, in lines a
    /// fail2ban filter can match (`prov: failed request from <HOST>`).
    pub async fn fail(&self, ip: IpAddr, reason: &str, file: &str) {
        if self.banned(ip) {
            // Already banned (this request was admitted just before): not counted again.
            return;
        }
        metrics::counter!("voxprov_phone_failures_total").increment(1);
        let file: String = file.chars().take(64).filter(|c| !c.is_control()).collect();
        tracing::warn!("prov: failed request from {ip}: {reason} (file {file:?})");
        let s = self.strikes.fail(ip).await;
        if let Some(d) = s.banned_now {
            metrics::counter!("voxprov_phone_bans_total").increment(1);
            tracing::warn!(
                "prov: banned {ip} for {} s after {} failed requests",
                d.as_secs(),
                s.failures
            );
        }
    }

    /// Addresses banned now, with the seconds left and their failures.
    pub async fn list(&self) -> crate::error::Result<Vec<(IpAddr, u64, i64)>> {
        self.strikes.list().await
    }

    pub async fn lift(&self, ip: IpAddr) -> crate::error::Result<bool> {
        self.strikes.lift(ip).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(mode: &str) -> AuthInfo {
        AuthInfo {
            mode: mode.into(),
            secret: "s3cret".into(),
            boot_hash: None,
            boot_expires: None,
            token_hash: None,
            token: None,
            token_used: false,
            customer_user: None,
            customer_pass: None,
            cidrs: vec!["10.0.0.0/8".parse().unwrap()],
        }
    }

    #[test]
    fn digest_answers_are_checked_with_rfc_2617_arithmetic() {
        let key = b"k";
        let a = auth("digest");
        let nonce = new_nonce(key);
        let ha1 = md5_hex(&format!("805ec0123456:{REALM}:s3cret"));
        let ha2 = md5_hex("GET:/prov/805ec0123456.cfg");
        let resp = md5_hex(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}"));
        let h = format!(
            "Digest username=\"805ec0123456\", realm=\"{REALM}\", nonce=\"{nonce}\", uri=\"/prov/805ec0123456.cfg\", qop=auth, nc=00000001, cnonce=\"abc\", response=\"{resp}\""
        );
        let uri = "/prov/805ec0123456.cfg";
        assert!(check_http(&a, "805ec0123456", Some(&h), "GET", uri, key));
        assert!(!check_http(&a, "805ec0123457", Some(&h), "GET", uri, key));
        assert!(!check_http(
            &a,
            "805ec0123456",
            Some(&h),
            "GET",
            uri,
            b"other"
        ));
        assert!(
            !check_http(&a, "805ec0123456", Some(&h), "GET", "/prov/x.cfg", key),
            "an answer is bound to its URI"
        );
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("805ec0123456:s3cret")
        );
        assert!(
            !check_http(&a, "805ec0123456", Some(&basic), "GET", uri, key),
            "digest mode refuses Basic"
        );
        assert!(check_http(
            &auth("basic"),
            "805ec0123456",
            Some(&basic),
            "GET",
            uri,
            key
        ));
    }

    #[test]
    fn allow_lists_take_ipv4_mapped_addresses() {
        let a = auth("token");
        assert!(a.address_allowed("10.1.2.3".parse().unwrap()));
        assert!(a.address_allowed("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!a.address_allowed("192.168.1.1".parse().unwrap()));
    }
}
