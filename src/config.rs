//! Configuration: defaults → TOML file (`--config`) → `VOXPROV_*` environment → flags.
//! Validated once at start; a bad value stops the server with a message naming the setting.

use std::{fmt, net::SocketAddr, path::PathBuf};

use figment::{
    providers::{Env, Format, Serialized, Toml},
    Figment,
};
use serde::{Deserialize, Serialize};

/// A string that never prints: database URLs carry passwords.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"********\"")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory for the SQLite database and the secret key.
    pub data_dir: PathBuf,
    /// `sqlite:PATH` or `postgres://…`; default: `sqlite:<data_dir>/voxprov.db`.
    pub database_url: Option<Secret>,
    /// File holding the key that encrypts SIP passwords at rest (32 bytes, hex or raw);
    /// default `<data_dir>/secret.key`, created 0600 on first start.
    pub secret_key_file: Option<PathBuf>,
    /// `full` (default): a write acknowledged to a client survives power loss.
    /// `normal`: survives a crash of voxprov but not of the machine; faster.
    pub sqlite_synchronous: SqliteSync,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// The largest sound file (a WAV upload to /api/soundfiles/) accepted.
    pub max_sound_file_bytes: usize,
    /// The largest snapshot an admin may upload to /api/snapshots/.
    pub max_snapshot_bytes: u64,
    /// Seconds a verified Basic credential is remembered (argon2 is deliberately slow).
    pub auth_cache_seconds: u64,
    /// Failed logins from one address within a minute before it gets 429 (counted on every
    /// node together).
    pub auth_max_failures: u32,
    /// Load balancers or reverse proxies (addresses or CIDRs) in front of every face: for
    /// requests from them the client's address is the last one in `X-Forwarded-For` that is
    /// not itself a trusted proxy (failure counts, bans, allow-lists and the journal use it).
    pub trusted_proxies: Vec<String>,
    /// How long a write request waits, in milliseconds, for its change to reach every
    /// reachable enabled SIP server before answering (0: do not wait). Targets still behind
    /// are named in the `Voxprov-Sync-Behind` response header.
    pub sync_wait_ms: u64,
    /// Log filter (tracing EnvFilter syntax); an invalid one stops the start.
    pub log: String,
    /// `text` (default) or `json` (one JSON object per line, for log collectors). Colours
    /// only when the log goes to a terminal.
    pub log_format: LogFormat,
    /// Read API requests strictly by default: unknown fields and query parameters, and changed
    /// read-only fields, are refused instead of ignored (NGCP's leniency; a request can ask
    /// either way with `Prefer: handling=strict|lenient`).
    pub api_strict: bool,
    /// Mark the web UI's cookies Secure on every answer (HTTPS in front of voxprov). Off:
    /// Secure only when the proxy says `X-Forwarded-Proto: https`.
    pub ui_secure_cookies: bool,
    /// Event hooks (`[hooks]` in the file, `VOXPROV_HOOKS_*` in the environment).
    pub hooks: HooksConfig,
    /// Phone provisioning (`[prov]` in the file, `VOXPROV_PROV_*` in the environment).
    pub prov: ProvConfig,
    /// What a SIP password must be (`[password_policy]`, `VOXPROV_PASSWORD_POLICY_*`): the
    /// API, bulk import, the command line and the web UI all apply it.
    pub password_policy: PasswordPolicy,
    /// Call records (`[cdrs]`, `VOXPROV_CDRS_*`): collected from the SIP servers' accounting.
    pub cdrs: CdrConfig,
    /// HTTPS (`[tls]`, `VOXPROV_TLS_*`): a second listener speaking TLS, client certificates
    /// for admins (`/api/admincerts/`) and, optionally, for phones.
    pub tls: TlsConfig,
}

/// voxprov's own HTTPS listener (rustls).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Address of the HTTPS listener; unset: no HTTPS (`listen` stays plain HTTP).
    pub listen: Option<SocketAddr>,
    /// Keep plain HTTP on `listen` as well (phones often cannot do HTTPS). Off with an HTTPS
    /// listener: HTTPS only.
    pub http: bool,
    /// Server certificate chain (PEM) and its private key (PEM), re-read on SIGHUP. Unset: a
    /// self-signed pair is generated at first start in `<data_dir>/tls/` (for trials).
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Names the generated certificate is made for (besides localhost and 127.0.0.1).
    pub self_signed_names: Vec<String>,
    /// Ask HTTPS clients for a certificate (optional for them): admins from
    /// `/api/admincerts/`, phones from `phone_ca_files`. A client that sends one that none of
    /// these CAs issued is refused at the handshake.
    pub client_certs: bool,
    /// CA certificates (PEM files) of the phone vendors whose device certificates are trusted.
    pub phone_ca_files: Vec<PathBuf>,
    /// A phone's own files only to a request with a certificate naming its MAC (so over
    /// HTTPS only); off, a certificate is checked when one is presented.
    pub phone_cert_required: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: None,
            http: true,
            cert_file: None,
            key_file: None,
            self_signed_names: Vec::new(),
            client_certs: true,
            phone_ca_files: Vec::new(),
            phone_cert_required: false,
        }
    }
}

/// How call records are collected and kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdrConfig {
    /// Milliseconds between two reads of each Kamailio's acc and missed_calls tables.
    pub collect_interval_ms: u64,
    /// Records older than this many days are deleted (0: kept forever).
    pub retention_days: u64,
}

impl Default for CdrConfig {
    fn default() -> Self {
        CdrConfig {
            collect_interval_ms: 2000,
            retention_days: 365,
        }
    }
}

/// The rules for subscribers' SIP passwords. A SIP password is guessed online, by registering
/// with it: short ones, the username itself and PINs fall in minutes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PasswordPolicy {
    /// Fewest characters.
    pub min_length: usize,
    /// Refuse a password that contains the username (in any case).
    pub forbid_username: bool,
    /// A password of digits only must be at least this long.
    pub min_digits_only_length: usize,
    /// A subscriber created without a password gets a strong generated one, shown once in
    /// the creation's answer (and to admins, who see SIP passwords). Off: it is required.
    pub generate: bool,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 8,
            forbid_username: true,
            min_digits_only_length: 12,
            generate: false,
        }
    }
}

/// Phone provisioning: how `/prov/` identifies, trusts and bans, and what it tells phones.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProvConfig {
    /// The URL phones reach `/prov/` at (e.g. `https://prov.example.com/prov/`), rendered into
    /// their configuration as their next provisioning URL. Unset: taken from the request.
    pub base_url: Option<String>,
    /// Failed requests (unknown MAC, wrong token or credentials, refused address) from one
    /// address within `ban_window_seconds` before it is banned…
    pub ban_failures: u32,
    pub ban_window_seconds: u64,
    /// …for this many seconds (every request then gets the same 404).
    pub ban_seconds: u64,
    /// How long a first-boot token stays valid if never traded.
    pub boot_token_days: u64,
    /// Answer a credential-less request for a per-device file with a 401 challenge (the same
    /// for every MAC, known or not) so phones configured for Basic/Digest send credentials.
    /// Off: such requests get the uniform 404 and phones must send credentials unasked.
    pub http_challenge: bool,
    /// How long a fetch waits for the database before it serves the last good configuration.
    pub db_timeout_ms: u64,
    /// Largest log file a phone may PUT (Poly uploads logs).
    pub max_upload_bytes: usize,
    /// Fetch records older than this many days are deleted.
    pub fetch_retention_days: u64,
    /// At start, connections are accepted only once every phone's configuration is cached
    /// (after a power cut the phones storm the server the moment it listens), waiting at
    /// most this many seconds; `0`: accept at once and warm up meanwhile.
    pub warm_wait_seconds: u64,
    /// System-wide device settings, the bottom of system → profile → customer → device.
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Reverse proxies (addresses or CIDRs) in front of `/prov/`: for requests from them the
    /// phone's address is taken from `X-Forwarded-For` (bans and allow-lists apply to it).
    pub trusted_proxies: Vec<String>,
}

impl Default for ProvConfig {
    fn default() -> Self {
        ProvConfig {
            base_url: None,
            ban_failures: 20,
            ban_window_seconds: 600,
            ban_seconds: 900,
            boot_token_days: 30,
            http_challenge: false,
            db_timeout_ms: 1500,
            max_upload_bytes: 1 << 20,
            fetch_retention_days: 30,
            warm_wait_seconds: 60,
            settings: serde_json::Map::new(),
            trusted_proxies: Vec::new(),
        }
    }
}

/// Event hooks: where they may go, how deliveries are retried, how long executions are kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HooksConfig {
    /// Let HTTP hooks target loopback, link-local and private addresses (off: a hook is no
    /// way to reach the operator's internal network).
    pub allow_private_targets: bool,
    /// The directory script hooks are taken from; unset: no script hooks.
    pub script_dir: Option<PathBuf>,
    /// Seconds to wait before each retry of a failed after-hook delivery (±20 % jitter);
    /// when it is used up the delivery is marked failed (redeliverable by hand).
    pub retry_schedule: Vec<u64>,
    /// A hook is disabled after this many failed attempts in a row…
    pub disable_after_failures: u32,
    /// …that span at least this many seconds without a success.
    pub disable_after_seconds: u64,
    /// Executions (and finished deliveries) older than this many days are deleted.
    pub retention_days: u64,
    /// Deliveries of one hook in flight at once (different objects; one object is in order).
    pub max_in_flight_per_hook: usize,
    /// A hook is disabled after this many failed attempts in a row when its body template
    /// failed (a limit, an error) on the last one; 0: never for this reason.
    pub disable_after_template_failures: u32,
}

impl Default for HooksConfig {
    fn default() -> Self {
        HooksConfig {
            allow_private_targets: false,
            script_dir: None,
            // Standard Webhooks' suggestion: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
            retry_schedule: vec![5, 300, 1800, 7200, 18000, 36000, 36000],
            disable_after_failures: 50,
            disable_after_seconds: 5 * 24 * 3600,
            retention_days: 30,
            max_in_flight_per_hook: 64,
            disable_after_template_failures: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SqliteSync {
    Full,
    Normal,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".parse().expect("static address"),
            data_dir: PathBuf::from("./voxprov-data"),
            database_url: None,
            secret_key_file: None,
            sqlite_synchronous: SqliteSync::Full,
            max_body_bytes: 1 << 20,
            max_sound_file_bytes: 8 << 20,
            max_snapshot_bytes: 1 << 30,
            auth_cache_seconds: 30,
            auth_max_failures: 10,
            trusted_proxies: Vec::new(),
            sync_wait_ms: 2000,
            log: "info".into(),
            log_format: LogFormat::Text,
            ui_secure_cookies: false,
            api_strict: false,
            hooks: HooksConfig::default(),
            prov: ProvConfig::default(),
            password_policy: PasswordPolicy::default(),
            cdrs: CdrConfig::default(),
            tls: TlsConfig::default(),
        }
    }
}

/// Settings given on the command line; `None` means "not given", so lower layers show through.
#[derive(Debug, Default, Clone, Serialize, clap::Args)]
pub struct Flags {
    /// Address to listen on (VOXPROV_LISTEN), e.g. 127.0.0.1:8080 or 0.0.0.0:443.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Data directory (VOXPROV_DATA_DIR).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite:PATH or postgres://user@host/db (VOXPROV_DATABASE_URL).
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
}

/// The setting names, from the struct itself; a section's settings as `section_name`, the
/// way they are spelled in the environment (`VOXPROV_HOOKS_SCRIPT_DIR`).
fn known_keys() -> Vec<String> {
    // Unset optional settings serialise as null, so their keys are here too.
    let Ok(serde_json::Value::Object(top)) = serde_json::to_value(Config::default()) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for (k, v) in top {
        match v {
            serde_json::Value::Object(section) => {
                keys.extend(section.keys().map(|s| format!("{k}_{s}")))
            }
            _ => keys.push(k),
        }
    }
    keys
}

/// `hooks_script_dir` → `hooks.script_dir`: an environment name to its place in the file.
fn env_key_path(k: &str) -> String {
    for section in ["hooks", "prov", "password_policy", "cdrs", "tls"] {
        if let Some(rest) = k.strip_prefix(section).and_then(|r| r.strip_prefix('_')) {
            return format!("{section}.{rest}");
        }
    }
    k.to_string()
}

/// Environment variables that are read but are not settings of the file.
const OTHER_ENV: &[&str] = &[
    "VOXPROV_ADMIN_PASSWORD",
    "VOXPROV_DATABASE_URL_FILE",
    "VOXPROV_CONFIG",
    "VOXPROV_BACKUP_PASSPHRASE",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

impl Config {
    pub fn load(file: Option<&std::path::Path>, flags: &Flags) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                anyhow::bail!("config file {} does not exist", path.display());
            }
            fig = fig.merge(Toml::file(path));
        }
        // Only our settings: other VOXPROV_* variables are warned about (unknown_env_vars),
        // not fatal, so a stray variable cannot stop a server from starting.
        let known = known_keys();
        fig = fig.merge(
            Env::prefixed("VOXPROV_")
                .filter(move |k| known.iter().any(|n| k.as_str().eq_ignore_ascii_case(n)))
                .map(|k| env_key_path(&k.as_str().to_ascii_lowercase()).into()),
        );
        if let Ok(path) = std::env::var("VOXPROV_DATABASE_URL_FILE") {
            let url = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("VOXPROV_DATABASE_URL_FILE {path}: {e}"))?;
            fig = fig.merge(Serialized::global("database_url", url.trim().to_string()));
        }
        fig = fig.merge(Serialized::globals(flags));
        let cfg: Config = fig
            .extract()
            .map_err(|e| anyhow::anyhow!("configuration: {e}"))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Environment variables that look like ours but are not: a typo must not pass silently.
    pub fn unknown_env_vars() -> Vec<String> {
        let known: Vec<String> = known_keys()
            .iter()
            .map(|k| format!("VOXPROV_{}", k.to_uppercase()))
            .collect();
        std::env::vars()
            .map(|(k, _)| k)
            .filter(|k| {
                k.starts_with("VOXPROV_") && !known.contains(k) && !OTHER_ENV.contains(&k.as_str())
            })
            .filter(|k| !k.starts_with("VOXPROV_TEST_"))
            .collect()
    }

    fn validate(&self) -> anyhow::Result<()> {
        self.db_kind()?;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log) {
            anyhow::bail!("log: '{}' is not a log filter ({e})", self.log);
        }
        if self.max_body_bytes < 1024 {
            anyhow::bail!("max_body_bytes: must be at least 1024");
        }
        if self.max_sound_file_bytes < 1024 {
            anyhow::bail!("max_sound_file_bytes: must be at least 1024");
        }
        if self.hooks.retry_schedule.iter().any(|s| *s > 7 * 24 * 3600) {
            anyhow::bail!("hooks.retry_schedule: a step may be at most a week (604800 s)");
        }
        if self.cdrs.retention_days > 36_500 {
            anyhow::bail!("cdrs.retention_days: at most 36500 (0 keeps records forever)");
        }
        if !(100..=3_600_000).contains(&self.cdrs.collect_interval_ms) {
            anyhow::bail!("cdrs.collect_interval_ms: must be 100 to 3600000");
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            anyhow::bail!("tls.cert_file and tls.key_file: give both or neither");
        }
        if self.tls.listen.is_none() && !self.tls.http {
            anyhow::bail!("tls.http: cannot be off without tls.listen (nothing would listen)");
        }
        if self
            .tls
            .listen
            .is_some_and(|a| a == self.listen && a.port() != 0)
            && self.tls.http
        {
            anyhow::bail!("tls.listen: must differ from listen while tls.http is on");
        }
        for f in self
            .tls
            .phone_ca_files
            .iter()
            .chain(&self.tls.cert_file)
            .chain(&self.tls.key_file)
        {
            if !f.is_file() {
                anyhow::bail!("tls: {} is not a readable file", f.display());
            }
        }
        if self.hooks.max_in_flight_per_hook == 0 {
            anyhow::bail!("hooks.max_in_flight_per_hook: must be at least 1");
        }
        if let Some(dir) = &self.hooks.script_dir {
            if !dir.is_dir() {
                anyhow::bail!("hooks.script_dir: {} is not a directory", dir.display());
            }
        }
        if let Some(u) = &self.prov.base_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) || !u.ends_with('/') {
                anyhow::bail!("prov.base_url: must be an http(s) URL ending in '/'");
            }
        }
        for (name, list) in [
            ("prov.trusted_proxies", &self.prov.trusted_proxies),
            ("trusted_proxies", &self.trusted_proxies),
        ] {
            for (i, p) in list.iter().enumerate() {
                if crate::model::parse_net(p).is_none() {
                    anyhow::bail!("{name}[{i}]: '{p}' is not an address or CIDR");
                }
            }
        }
        if self.prov.ban_failures == 0 {
            anyhow::bail!("prov.ban_failures: must be at least 1");
        }
        if !(1..=128).contains(&self.password_policy.min_length) {
            anyhow::bail!("password_policy.min_length: must be 1 to 128");
        }
        Ok(())
    }

    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(s) => s.0.clone(),
            None => format!("sqlite://{}", self.data_dir.join("voxprov.db").display()),
        }
    }

    pub fn db_kind(&self) -> anyhow::Result<DbKind> {
        db_kind(&self.database_url())
    }

    /// The SQLite database file (`sqlite://PATH`, `sqlite:PATH`, with or without options).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        let url = self.database_url();
        let rest = url.strip_prefix("sqlite:")?;
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let path = rest.split('?').next().unwrap_or(rest);
        (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
    }

    pub fn secret_key_path(&self) -> PathBuf {
        self.secret_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("secret.key"))
    }
}

/// The database is chosen once, from the URL's scheme; anything else is refused rather than
/// guessed (a typo must not silently create an empty SQLite file).
pub fn db_kind(url: &str) -> anyhow::Result<DbKind> {
    let scheme = url.split(':').next().unwrap_or("");
    match scheme {
        "sqlite" => Ok(DbKind::Sqlite),
        "postgres" | "postgresql" => Ok(DbKind::Postgres),
        other => anyhow::bail!(
            "database_url: unsupported scheme '{other}': use sqlite:PATH or postgres://user@host/database"
        ),
    }
}

#[cfg(test)]
mod example {
    use super::*;

    /// deploy/voxprov.toml.example loads, and names every setting there is (a new setting
    /// must be documented there too).
    #[test]
    fn the_example_file_loads_and_names_every_setting() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/voxprov.toml.example");
        let text = std::fs::read_to_string(&path).unwrap();
        let cfg = Config::load(Some(&path), &Flags::default()).expect("the example loads");
        assert_eq!(cfg.listen, Config::default().listen);
        let Ok(serde_json::Value::Object(top)) = serde_json::to_value(Config::default()) else {
            panic!("the defaults serialise")
        };
        for (k, v) in top {
            match v {
                serde_json::Value::Object(section) => {
                    assert!(
                        text.contains(&format!("[{k}]")),
                        "[{k}] is not in the example"
                    );
                    for leaf in section.keys() {
                        assert!(
                            text.contains(&format!("# {leaf} ="))
                                || text.contains(&format!("[{k}.{leaf}]")),
                            "{k}.{leaf} is not in the example"
                        );
                    }
                }
                _ => assert!(
                    text.contains(&format!("# {k} =")),
                    "{k} is not in the example"
                ),
            }
        }
    }
}
