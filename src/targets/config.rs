//! A SIP server as the delivery machinery sees it: decrypted URL, role, schema layout.

use std::collections::BTreeSet;

use super::rows::Table;
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::sipservers::SipServerRow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    Kamailio,
    Opensips,
}

impl Driver {
    pub fn parse(field: &str, v: &str) -> Result<Driver> {
        match v {
            "kamailio" => Ok(Driver::Kamailio),
            "opensips" => Ok(Driver::Opensips),
            _ => Err(Error::invalid(field, "must be kamailio or opensips")),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Kamailio => "kamailio",
            Driver::Opensips => "opensips",
        }
    }
    /// The subscriber table version assumed when the target's `version` table does not say:
    /// Kamailio 5.x and OpenSIPS 3.2+.
    pub fn default_version(self) -> i64 {
        match self {
            Driver::Kamailio => 7,
            Driver::Opensips => 8,
        }
    }
    pub fn domain_reload(self) -> &'static str {
        match self {
            Driver::Kamailio => "domain.reload",
            Driver::Opensips => "domain_reload",
        }
    }
    /// Removes an AOR's registrations: parameters (table, AOR).
    pub fn unregister(self) -> &'static str {
        match self {
            Driver::Kamailio => "ul.rm",
            Driver::Opensips => "ul_rm",
        }
    }
}

/// What a server holds. `standalone`: every usable subscriber of the domains it serves.
/// `home`: only the subscribers homed on it. `proxy`: like standalone, plus a usr_preferences
/// routing row (its `routing_attribute`, `routing_type`, value = the home server's
/// `sip_address`) for each subscriber homed elsewhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Standalone,
    Proxy,
    Home,
}

impl Role {
    pub fn parse(field: &str, v: &str) -> Result<Role> {
        match v {
            "standalone" => Ok(Role::Standalone),
            "proxy" => Ok(Role::Proxy),
            "home" => Ok(Role::Home),
            _ => Err(Error::invalid(field, "must be standalone, proxy or home")),
        }
    }
}

/// The columns a driver writes, by schema version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub driver: Driver,
    pub version: i64,
    pub subscriber_cols: Vec<&'static str>,
    /// The password column's width: a longer password is not stored in clear.
    pub password_max: Option<usize>,
    /// The carrier and routing tables are read and written (the server's `carriers`).
    pub carriers: bool,
}

impl Layout {
    pub fn new(driver: Driver, version: i64) -> Layout {
        let (subscriber_cols, password_max) = match (driver, version) {
            (Driver::Opensips, v) if v >= 8 => (
                vec!["password", "ha1", "ha1_sha256", "ha1_sha512t256"],
                Some(25),
            ),
            // OpenSIPS 3.x: CHAR(25); Kamailio 5.x: VARCHAR(64).
            (Driver::Opensips, _) => (vec!["password", "ha1", "ha1b"], Some(25)),
            (Driver::Kamailio, _) => (vec!["password", "ha1", "ha1b"], Some(64)),
        };
        Layout {
            driver,
            version,
            subscriber_cols,
            password_max,
            carriers: false,
        }
    }
    pub fn value_cols(&self, t: Table) -> Vec<&'static str> {
        match t {
            Table::Domain => Vec::new(),
            Table::Subscriber => self.subscriber_cols.clone(),
            Table::Dbaliases => vec!["username", "domain"],
            Table::UsrPreferences => vec!["uuid"],
            // Routing tables: the same for every layout.
            t => t
                .spec()
                .map(|s| s.values.iter().map(|(c, _)| *c).collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Clone)]
pub struct TargetCfg {
    pub id: i64,
    pub name: String,
    pub driver: Driver,
    pub role: Role,
    pub db_url: String,
    pub rpc_url: Option<String>,
    pub enabled: bool,
    /// `None`: every domain.
    pub domains: Option<BTreeSet<String>>,
    pub schema_version: Option<i64>,
    pub store_password: bool,
    /// Gets the carrier and routing tables.
    pub carriers: bool,
    pub sip_address: Option<String>,
    pub routing_attribute: String,
    pub routing_type: i64,
    /// Changes when anything above changes: the worker restarts with a full load.
    pub fingerprint: String,
}

impl std::fmt::Debug for TargetCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetCfg")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TargetCfg {
    pub fn from_row(r: &SipServerRow, domains: Vec<String>, cipher: &Cipher) -> Result<TargetCfg> {
        let db_url = cipher.decrypt(&r.db_url_enc)?;
        let fingerprint = format!(
            "{}|{}|{}|{:?}|{}|{:?}|{:?}|{}|{:?}|{}|{}|{}|{}",
            r.driver,
            r.role,
            r.db_url_enc,
            r.rpc_url,
            r.enabled.0,
            domains,
            r.schema_version,
            r.store_password.0,
            r.sip_address,
            r.routing_attribute,
            r.routing_type,
            r.name,
            r.carriers.0
        );
        Ok(TargetCfg {
            id: r.id,
            name: r.name.clone(),
            driver: Driver::parse("driver", &r.driver)?,
            role: Role::parse("role", &r.role)?,
            db_url,
            rpc_url: r.rpc_url.clone(),
            enabled: r.enabled.0,
            domains: if domains.is_empty() {
                None
            } else {
                Some(domains.into_iter().collect())
            },
            schema_version: r.schema_version,
            store_password: r.store_password.0,
            carriers: r.carriers.0,
            sip_address: r.sip_address.clone(),
            routing_attribute: r.routing_attribute.clone(),
            routing_type: r.routing_type,
            fingerprint,
        })
    }
    pub fn serves(&self, domain: &str) -> bool {
        self.domains.as_ref().is_none_or(|d| d.contains(domain))
    }
    /// usr_preferences attributes this server's rows are managed for; rows with other
    /// attributes belong to someone else and are never touched.
    pub fn managed_attributes(&self) -> Vec<String> {
        let mut v = crate::features::managed_attributes();
        if self.role == Role::Proxy {
            v.push(self.routing_attribute.clone());
        }
        v
    }
}

/// `db_url` as given → a URL sqlx opens, or an error naming the field. SQLite paths must be
/// absolute (`sqlite:///abs/file.db`, or Kamailio's own spelling `sqlite:////abs/file.db`), and
/// the file must exist: a typo must not silently create an empty database.
pub fn db_url_for_sqlx(url: &str) -> Result<String> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.trim_start_matches('/');
        if path.is_empty() || !rest.starts_with('/') {
            return Err(Error::invalid(
                "db_url",
                "an SQLite path must be absolute: sqlite:///abs/path.db",
            ));
        }
        let (path, _) = path.split_once('?').unwrap_or((path, ""));
        return Ok(format!("sqlite:///{path}?mode=rw"));
    }
    if url.starts_with("mysql://")
        || url.starts_with("mariadb://")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        let u = url.replacen("mariadb://", "mysql://", 1);
        match url::Url::parse(&u) {
            Ok(p) if p.host_str().is_some_and(|h| !h.is_empty()) => return Ok(u),
            _ => {
                return Err(Error::invalid(
                    "db_url",
                    "is not a valid URL with a host (a password with '@', ':' or '/' must be percent-encoded)",
                ))
            }
        }
    }
    Err(Error::invalid(
        "db_url",
        "must start with sqlite:, mysql:// (MySQL/MariaDB) or postgres://",
    ))
}

/// The URL with any password replaced, for showing: the user-info password and any
/// `password` query parameter. What cannot be parsed is not shown at all.
pub fn mask_url(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return url.to_string();
    }
    let Ok(mut u) = url::Url::parse(url) else {
        return "(not shown)".into();
    };
    if u.password().is_some() {
        let _ = u.set_password(Some("********"));
    }
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let secret = k.to_ascii_lowercase().contains("pass");
                (
                    k.into_owned(),
                    if secret {
                        "********".into()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string().replace("%2A", "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show_in_a_masked_url() {
        assert_eq!(
            mask_url("mysql://kam:s3cret@db.example:3306/kamailio"),
            "mysql://kam:********@db.example:3306/kamailio"
        );
        let m = mask_url("postgres://kam@db/k?password=s3cret&sslmode=require");
        assert!(
            !m.contains("s3cret") && m.contains("sslmode=require"),
            "{m}"
        );
        assert!(!mask_url("mysql://kam:p@ss@db/k").contains("ss@"));
        assert_eq!(
            mask_url("sqlite:////var/lib/k.db"),
            "sqlite:////var/lib/k.db"
        );
        assert!(db_url_for_sqlx("mysql://kam:p@ss@/k").is_err());
    }
}
