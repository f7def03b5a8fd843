//! Black-box test harness: starts the real `voxprov` binary on port 0 with a fresh database
//! (a new SQLite file, or a new PostgreSQL database), and talks to it over HTTP.
#![allow(dead_code)]

pub mod kamailio;
pub mod opensips;
pub mod receiver;
pub mod sipdb;

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub const ADMIN_PASS: &str = "test-admin-pass";
static SEQ: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn pg_admin_url() -> String {
    std::env::var("VOXPROV_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Runs a program to its end and gives its standard output; if it fails, the test fails
/// naming `what` with everything the program printed.
pub fn run_ok(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim_end().to_string()
}

/// One psql command against `url`: its rows one a line, columns tab-separated.
pub fn psql_at(url: &str, sql: &str) -> String {
    run_ok(
        Command::new("psql")
            .arg(url)
            .args(["-qAt", "-F", "\t", "-c", sql]),
        &format!("psql {sql}"),
    )
}

/// One psql command as the test suite's PostgreSQL administrator.
pub fn psql(sql: &str) -> String {
    psql_at(&pg_admin_url(), sql)
}

/// HAProxy in the foreground on a configuration file, once `haproxy -c` accepts it.
pub fn haproxy(cfg: &std::path::Path) -> Child {
    run_ok(
        Command::new("haproxy").arg("-c").arg("-f").arg(cfg),
        "haproxy -c (Debian package haproxy)",
    );
    Command::new("haproxy")
        .arg("-db")
        .arg("-f")
        .arg(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("haproxy starts")
}

pub struct TestApp {
    pub base: String,
    /// `https://…` when the server was started with an HTTPS listener (VOXPROV_TLS_LISTEN).
    pub https_base: Option<String>,
    pub client: reqwest::Client,
    pub backend: Backend,
    pub dir: PathBuf,
    pub db_url: String,
    pg_db: Option<String>,
    child: Option<Child>,
    /// Extra environment for the server (settings such as VOXPROV_HOOKS_*).
    pub env: Vec<(String, String)>,
    /// Where `start` listens (port 0: any; see `keep_port`).
    listen: String,
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> TestApp {
        Self::spawn_with(backend, &[]).await
    }

    /// Starts a server with extra environment variables.
    pub async fn spawn_with(backend: Backend, env: &[(&str, &str)]) -> TestApp {
        let mut app = Self::unstarted(backend, env);
        app.start().await;
        app
    }

    /// A data directory and an empty database, no server yet (`start` runs one).
    pub fn unstarted(backend: Backend, env: &[(&str, &str)]) -> TestApp {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vxtest-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (db_url, pg_db) = match backend {
            Backend::Sqlite => (format!("sqlite://{}/voxprov.db", dir.display()), None),
            Backend::Postgres => {
                let name = format!("vxtest_{}_{n}", std::process::id());
                psql(&format!("DROP DATABASE IF EXISTS {name}"));
                psql(&format!("CREATE DATABASE {name}"));
                let base = pg_admin_url();
                let url = format!("{}/{name}", base.rsplit_once('/').unwrap().0);
                (url, Some(name))
            }
        };
        let app = TestApp {
            base: String::new(),
            https_base: None,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            backend,
            dir,
            db_url,
            pg_db,
            child: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            listen: "127.0.0.1:0".into(),
        };
        app
    }

    /// Another node of the same installation: its own data directory, this one's database
    /// and secret key (the README's "several nodes"). Not started; `start` runs it.
    pub fn peer(&self, env: &[(&str, &str)]) -> TestApp {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("vxtest-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let key = self.dir.join("secret.key");
        if key.exists() {
            std::fs::copy(&key, dir.join("secret.key")).unwrap();
        }
        let mut envs = self.env.clone();
        envs.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        TestApp {
            base: String::new(),
            https_base: None,
            client: self.client.clone(),
            backend: self.backend,
            dir,
            db_url: self.db_url.clone(),
            // The database is the first node's to drop.
            pg_db: None,
            child: None,
            env: envs,
            listen: "127.0.0.1:0".into(),
        }
    }

    /// Starts (or restarts) the server on the same data directory and database.
    pub async fn start(&mut self) {
        note_secrets(&json!({ "password": ADMIN_PASS }));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("server.log"))
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_voxprov"))
            .args(["serve", "--listen", &self.listen, "--data-dir"])
            .arg(&self.dir)
            .args(["--database-url", &self.db_url])
            .env("VOXPROV_ADMIN_PASSWORD", ADMIN_PASS)
            // Info (every request's access line) as JSON: the suite's logs are what
            // scripts/check-logs.py parses and searches for secrets.
            .env("VOXPROV_LOG", "info")
            .env("VOXPROV_LOG_FORMAT", "json")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("voxprov starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("voxprov listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "server did not start; log: {}",
                    std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
                )
            });
        self.base = addr;
        // HTTP is announced first, then HTTPS (printed together, before serving).
        self.https_base = None;
        if self.env.iter().any(|(k, _)| k == "VOXPROV_TLS_LISTEN") {
            let tls = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the HTTPS listener is announced");
            assert!(tls.starts_with("https://"), "{tls}");
            self.https_base = Some(tls);
        }
        self.child = Some(child);
    }

    /// Restarts listen on the port the server has now (a load balancer knows it).
    pub fn keep_port(&mut self) {
        self.listen = self.base.trim_start_matches("http://").to_string();
    }

    /// The server's process id, to signal it.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe_free_kill(&mut c);
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn req_as(
        &self,
        method: Method,
        path: &str,
        user: &str,
        pass: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .basic_auth(user, Some(pass))
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.req_as(method, path, "administrator", ADMIN_PASS)
    }

    /// `/metrics` as text.
    pub async fn metrics(&self) -> String {
        self.req(Method::GET, "/metrics")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        send(self.req(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        note_secrets(&body);
        send(
            self.req(Method::POST, path)
                .header("Prefer", "return=representation")
                .json(&body),
        )
        .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        note_secrets(&body);
        send(
            self.req(Method::PUT, path)
                .header("Prefer", "return=representation")
                .json(&body),
        )
        .await
    }

    pub async fn patch(&self, path: &str, ops: Value) -> (StatusCode, Value) {
        note_secrets(&ops);
        send(
            self.req(Method::PATCH, path)
                .header("Prefer", "return=representation")
                .header("Content-Type", "application/json-patch+json")
                .body(ops.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        send(self.req(Method::DELETE, path)).await
    }

    /// POST that must succeed; returns the new id.
    pub async fn create(&self, path: &str, body: Value) -> i64 {
        let (s, v) = self.post(path, body.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "POST {path} {body}: {v}");
        v["id"].as_i64().unwrap()
    }

    /// Domain, billing profile, contact and customer under reseller 1.
    pub async fn fixture(&self) -> Fixture {
        let tag = SEQ.fetch_add(1, Ordering::SeqCst);
        let domain = format!("d{tag}.example.com");
        let domain_id = self
            .create(
                "/api/domains/",
                json!({ "domain": domain, "reseller_id": 1 }),
            )
            .await;
        let bp = self
            .create(
                "/api/billingprofiles/",
                json!({ "handle": format!("bp{tag}"), "name": "Default", "reseller_id": 1 }),
            )
            .await;
        let contact = self
            .create(
                "/api/customercontacts/",
                json!({ "email": "c@example.com", "reseller_id": 1 }),
            )
            .await;
        let customer = self.create("/api/customers/", json!({ "contact_id": contact, "billing_profile_id": bp, "type": "sipaccount", "status": "active" })).await;
        Fixture {
            domain,
            domain_id,
            billing_profile_id: bp,
            contact_id: contact,
            customer_id: customer,
        }
    }

    pub async fn subscriber(&self, f: &Fixture, username: &str, sn: u64) -> i64 {
        self.create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": username, "password": "sip-secret-1",
                    "primary_number": { "cc": 49, "ac": 30, "sn": sn } }),
        )
        .await
    }

    /// A live contract of `kind` (reseller, sippeering) with a system contact of its own.
    pub async fn contract(&self, kind: &str) -> i64 {
        let tag = SEQ.fetch_add(1, Ordering::SeqCst);
        let contact = self
            .create(
                "/api/systemcontacts/",
                json!({ "email": format!("contract{tag}@contracts.example.com") }),
            )
            .await;
        self.create(
            "/api/contracts/",
            json!({ "contact_id": contact, "type": kind, "status": "active" }),
        )
        .await
    }

    /// A reseller with its own admin; returns (reseller id, login, password).
    pub async fn reseller(&self, name: &str) -> (i64, String, String) {
        let contract = self.contract("reseller").await;
        let id = self
            .create(
                "/api/resellers/",
                json!({ "name": name, "contract_id": contract, "status": "active" }),
            )
            .await;
        let login = format!("{name}_admin");
        let pass = "reseller-pass-1".to_string();
        self.create(
            "/api/admins/",
            json!({ "login": login, "password": pass, "role": "reseller", "reseller_id": id }),
        )
        .await;
        (id, login, pass)
    }

    /// A Yealink T46U of `customer` with a MAC of Yealink's whose last three bytes are
    /// `tail` (6 hex digits): its MAC, its first-boot token and the path of its own file.
    pub async fn yealink_phone(&self, customer: i64, tail: &str) -> (String, String, String) {
        let (_, models) = self
            .get("/api/pbxdevicemodels/?vendor=yealink&rows=100")
            .await;
        let model = items(&models, "pbxdevicemodels")
            .into_iter()
            .find(|m| m["model"] == "T46U")
            .expect("the T46U is in the catalog");
        let mac = format!("{}{tail}", model["ouis"][0].as_str().unwrap());
        let (s, dev) = self
            .post(
                "/api/pbxdevices/",
                json!({"identifier": mac, "customer_id": customer, "model_id": model["id"], "station_name": format!("Desk {tail}")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{dev}");
        let boot = dev["boot_token"].as_str().unwrap().to_string();
        let path = format!("/prov/{boot}/{mac}.cfg");
        (mac, boot, path)
    }

    /// Adds a sipserver; returns its id.
    /// A PBX customer of the fixture's contact and its tenant `name` on the fixture's domain:
    /// the tenant's id.
    pub async fn pbx_tenant(&self, f: &Fixture, name: &str) -> i64 {
        let customer = self
            .create(
                "/api/customers/",
                json!({ "contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id,
                        "type": "pbxaccount", "status": "active" }),
            )
            .await;
        self.create(
            "/api/pbxtenants/",
            json!({ "customer_id": customer, "name": name, "description": name, "domain": f.domain }),
        )
        .await
    }

    pub async fn sipserver(&self, name: &str, driver: &str, db_url: &str, extra: Value) -> i64 {
        let mut body = json!({ "name": name, "driver": driver, "db_url": db_url });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        self.create("/api/sipservers/", body).await
    }

    /// Waits until the sipserver has applied everything (backlog 0, state ok).
    pub async fn wait_synced(&self, id: i64) -> Value {
        let start = std::time::Instant::now();
        loop {
            let (s, v) = self.get(&format!("/api/sipservers/{id}")).await;
            assert_eq!(s, StatusCode::OK, "{v}");
            if v["status"]["state"] == "ok" && v["status"]["backlog"] == 0 {
                return v;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "sipserver {id} did not catch up: {}",
                v["status"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Writes a CSV file (`header`, then `rows`) into the data directory; its path.
    pub fn csv_file(&self, name: &str, header: &str, rows: &[String]) -> String {
        let file = self.dir.join(name);
        std::fs::write(&file, format!("{header}\n{}\n", rows.join("\n"))).unwrap();
        file.to_str().unwrap().to_string()
    }

    /// Runs a `voxprov` command on this server's data directory and database.
    pub fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_voxprov"))
            .args(args)
            .arg("--data-dir")
            .arg(&self.dir)
            .args(["--database-url", &self.db_url])
            .env("VOXPROV_LOG", "warn")
            .output()
            .expect("voxprov runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// One query straight against the server's database (sqlite3 or psql): its rows one a
    /// line, columns tab-separated.
    pub fn db_query(&self, sql: &str) -> String {
        match self.backend {
            Backend::Sqlite => {
                let db = self
                    .db_url
                    .strip_prefix("sqlite://")
                    .expect("an SQLite URL");
                run_ok(
                    Command::new("sqlite3").args([
                        "-cmd",
                        ".timeout 5000",
                        "-separator",
                        "\t",
                        db,
                        sql,
                    ]),
                    &format!("sqlite3 {sql}"),
                )
            }
            Backend::Postgres => psql_at(&self.db_url, sql),
        }
    }

    pub async fn journal_count(&self) -> i64 {
        let (_, v) = self.get("/api/journals/?rows=1").await;
        v["total_count"].as_i64().unwrap()
    }
}

pub struct Fixture {
    pub domain: String,
    pub domain_id: i64,
    pub billing_profile_id: i64,
    pub contact_id: i64,
    pub customer_id: i64,
}

/// Sends a request; secrets in the answer (generated passwords, tokens, keys shown once) are
/// noted for the check of the suite's logs.
pub async fn send(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let (s, v) = send_unnoted(rb).await;
    note_secrets(&v);
    (s, v)
}

async fn send_unnoted(rb: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = rb.send().await.expect("request sent");
    let s = r.status();
    let text = r.text().await.unwrap_or_default();
    (s, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Where the secrets the tests created are noted and the servers' logs kept, for
/// scripts/check-logs.py, which fails the suite when a log holds one.
fn evidence_dir(kind: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target")
        .join(kind);
    let _ = std::fs::create_dir_all(&d);
    d
}

/// Notes every secret-looking value in `v` (by field name) in target/test-secrets/.
pub fn note_secrets(v: &Value) {
    const NAMES: &[&str] = &[
        "password",
        "webpassword",
        "secret",
        "boot_token",
        "token",
        "api_key",
        "passphrase",
        "admin_password",
        "ha1",
        "auth_password",
    ];
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if let Value::String(s) = x {
                        if NAMES.contains(&k.as_str()) && s.len() >= 8 && !s.contains('*') {
                            out.push(s.clone());
                        }
                    }
                    walk(x, out);
                }
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(v, &mut found);
    if found.is_empty() {
        return;
    }
    use std::io::Write;
    let path = evidence_dir("test-secrets").join(format!("{}.txt", std::process::id()));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        for s in found {
            let _ = writeln!(f, "{s}");
        }
    }
}

/// The items of a collection page, whether Sipwise-style single object or array.
pub fn items(v: &Value, name: &str) -> Vec<Value> {
    match &v["_embedded"][format!("ngcp:{name}")] {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        o => vec![o.clone()],
    }
}

fn unsafe_free_kill(c: &mut Child) {
    let _ = Command::new("kill")
        .arg("-9")
        .arg(c.id().to_string())
        .status();
    let _ = c.wait();
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(db) = &self.pg_db {
            let _ = Command::new("psql")
                .arg(pg_admin_url())
                .arg("-qAtc")
                .arg(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .output();
        }
        // The server's log joins the suite's, which is searched for every noted secret.
        let name = self
            .dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("app")
            .to_string();
        let _ = std::fs::copy(
            self.dir.join("server.log"),
            evidence_dir("test-logs").join(format!("{name}.log")),
        );
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Runs one scenario against SQLite and against PostgreSQL, as two tests.
#[macro_export]
macro_rules! both {
    ($name:ident) => {
        $crate::both!($name, &[]);
    };
    ($name:ident, $env:expr) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$name(
                    $crate::common::TestApp::spawn_with($crate::common::Backend::Sqlite, $env)
                        .await,
                )
                .await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                super::$name(
                    $crate::common::TestApp::spawn_with($crate::common::Backend::Postgres, $env)
                        .await,
                )
                .await;
            }
        }
    };
}

/// A WAV file: `format` 1 (PCM, 16 bits) or 6/7 (A-law/µ-law, 8 bits), `rate` Hz, mono.
pub fn wav(format: u16, rate: u32, samples: usize) -> Vec<u8> {
    let bits: u16 = if format == 1 { 16 } else { 8 };
    let data_len = samples * usize::from(bits / 8);
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&((36 + data_len) as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * u32::from(bits / 8)).to_le_bytes());
    b.extend_from_slice(&(bits / 8).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&(data_len as u32).to_le_bytes());
    b.extend((0..data_len).map(|i| (i * 7 % 251) as u8));
    b
}

/// `base` with the fields of `over` (a null removes the field).
pub fn merged(base: &Value, over: Value) -> Value {
    let mut b = base.clone();
    if let (Value::Object(b), Value::Object(o)) = (&mut b, over) {
        for (k, v) in o {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
    b
}

/// Each case: a body that differs from a good one in one field, which the 422 must name.
pub async fn refused(app: &TestApp, path: &str, good: &Value, cases: Vec<(&str, Value)>) {
    for (field, over) in cases {
        let body = merged(good, over);
        let (s, v) = send(
            app.req(Method::POST, path)
                .header("Prefer", "handling=strict")
                .json(&body),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {v}");
        let named = v["field"].as_str().unwrap_or("");
        assert!(
            named == field || v["message"].as_str().unwrap_or("").contains(field),
            "{path} {body}: expected the error to name {field}: {v}"
        );
    }
    // …and the good body itself is taken.
    let (s, v) = app.post(path, good.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{path} {good}: {v}");
}

/// A sipserver check's differences as (table, kind) pairs, in the order it lists them.
pub fn differences(check: &Value) -> Vec<(String, String)> {
    check["differences"]
        .as_array()
        .unwrap_or_else(|| panic!("not a check report: {check}"))
        .iter()
        .map(|d| {
            (
                d["table"].as_str().unwrap_or("").to_string(),
                d["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}
