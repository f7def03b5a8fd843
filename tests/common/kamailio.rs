//! A real Kamailio for tests, started with the shipped deploy/kamailio/kamailio.cfg and a
//! kamailio-local.cfg of the test's own (ports, database), and sipp to talk to it.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::sipdb::{Engine, SipDb};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A port free for both UDP and TCP right now.
pub fn free_port() -> u16 {
    loop {
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let p = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", p)).is_ok() {
            return p;
        }
    }
}

/// Short timers so that probing, failover and trunk registrations happen within a test.
pub const FAST_TIMERS: &str = "#!define DS_PING_INTERVAL 1\n#!define TM_FR_TIMER 2000\n\
#!define RELOAD_DELTA 1\n#!define UAC_REG_TIMER_INTERVAL 2\n#!define UAC_REG_RETRY_INTERVAL 5\n\
#!define UAC_REG_GC_INTERVAL 5\n#!define LCR_PROGRESS_TIMEOUT 2000\n#!define LCR_RING_TIMEOUT 4000\n";

pub struct Kamailio {
    pub dir: PathBuf,
    pub sip_port: u16,
    pub rpc_port: u16,
    child: Option<Child>,
}

impl Kamailio {
    /// Creates the database with deploy/kamailio/create-db.sh and starts Kamailio on it.
    pub fn create_db(engine: Engine, dir: &Path) -> SipDb {
        let db = SipDb::new(engine, dir);
        let mut cmd = Command::new("bash");
        cmd.arg(repo().join("deploy/kamailio/create-db.sh"));
        match engine {
            Engine::Sqlite => cmd.args(["--force", "sqlite", &db.name]),
            Engine::Mysql => cmd.args([
                "--force",
                "mysql",
                &db.name,
                "-h",
                &super::sipdb::mysql_host(),
                "-uroot",
            ]),
            Engine::Postgres => panic!("the shipped configuration uses SQLite or MySQL"),
        };
        super::run_ok(&mut cmd, "create-db.sh");
        db
    }

    /// A Kamailio on SQLite, registered as sipserver `kam` of `app` and fully loaded from it:
    /// the database, the Kamailio and the sipserver's id.
    pub async fn loaded_from(app: &super::TestApp) -> (SipDb, Kamailio, i64) {
        Self::loaded_with(app, "#!define TRUST_FOREIGN_CALLERS\n").await
    }

    /// Like [`Kamailio::loaded_from`], with `extra` lines in its kamailio-local.cfg.
    pub async fn loaded_with(app: &super::TestApp, extra: &str) -> (SipDb, Kamailio, i64) {
        let db = Self::create_db(Engine::Sqlite, &app.dir);
        let k = Self::start_with(&db, &app.dir, extra).await;
        let id = app
            .sipserver(
                "kam",
                "kamailio",
                &db.url(),
                serde_json::json!({ "rpc_url": k.rpc_url() }),
            )
            .await;
        app.wait_synced(id).await;
        (db, k, id)
    }

    /// Starts Kamailio; the ports are picked free just before, so another process can take
    /// one in between: a start that fails with "Address already in use" is retried on new
    /// ports.
    pub async fn start(db: &SipDb, dir: &Path) -> Kamailio {
        // The tests' foreign callers are sipp on 127.0.0.1, not a provisioned carrier.
        Self::start_with(db, dir, "#!define TRUST_FOREIGN_CALLERS\n").await
    }

    /// Starts Kamailio with `extra` lines in its kamailio-local.cfg (defines of the shipped
    /// configuration: timers, TRUST_FOREIGN_CALLERS…).
    pub async fn start_with(db: &SipDb, dir: &Path, extra: &str) -> Kamailio {
        let mut attempt = 1;
        loop {
            match Self::try_start(db, dir, extra).await {
                Ok(k) => return k,
                // A port taken in between, or (SQLite) its children opening the database all at
                // once: Kamailio's SQLite driver does not wait on a lock, so a start can lose.
                Err(log)
                    if attempt < 3
                        && (log.contains("Address already in use")
                            || log.contains("database is locked")) =>
                {
                    attempt += 1
                }
                Err(log) => panic!("kamailio did not start: {log}"),
            }
        }
    }

    async fn try_start(db: &SipDb, dir: &Path, extra: &str) -> Result<Kamailio, String> {
        let dir = dir.join(format!("kamailio-{}", free_port()));
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::copy(
            repo().join("deploy/kamailio/kamailio.cfg"),
            dir.join("kamailio.cfg"),
        )
        .unwrap();
        let (sip_port, rpc_port) = (free_port(), free_port());
        let dbcfg = match db.engine {
            Engine::Sqlite => format!("#!substdef \"!SQLITE_DB_PATH!{}!\"\n", db.name),
            Engine::Mysql => format!(
                "#!define WITH_MYSQL\n#!define DBURL \"mysql://root@{}/{}\"\n",
                super::sipdb::mysql_host(),
                db.name
            ),
            Engine::Postgres => unreachable!(),
        };
        std::fs::write(
            dir.join("kamailio-local.cfg"),
            format!(
                "{dbcfg}#!substdef \"!RUN_DIR!{}!\"\n#!substdef \"!SIP_IP!127.0.0.1!\"\n#!substdef \"!SIP_PORT!{sip_port}!\"\n\
                 #!define RPC_PORT {rpc_port}\n#!define CHILDREN 2\n{extra}",
                run.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(dir.join("kamailio.log")).unwrap();
        let child = Command::new("kamailio")
            .current_dir(&dir)
            .arg("-f")
            .arg(dir.join("kamailio.cfg"))
            .args(["-DD", "-E", "-P"])
            .arg(run.join("kamailio.pid"))
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("kamailio starts (apt-get install kamailio)");
        let mut k = Kamailio {
            dir,
            sip_port,
            rpc_port,
            child: Some(child),
        };
        let start = Instant::now();
        let client = reqwest::Client::new();
        loop {
            let r = client
                .post(k.rpc_url())
                .body(r#"{"jsonrpc":"2.0","method":"core.version","id":1}"#)
                .send()
                .await;
            if matches!(r, Ok(ref r) if r.status().is_success()) {
                // The RPC child answers before every SIP child is up: one that fails its
                // database connection ends the whole Kamailio a moment later.
                tokio::time::sleep(Duration::from_millis(500)).await;
                let exited = k
                    .child
                    .as_mut()
                    .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
                if exited || k.log().contains("init_child failed") {
                    return Err(k.log());
                }
                break;
            }
            let exited = k
                .child
                .as_mut()
                .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
            if exited || start.elapsed() > Duration::from_secs(20) {
                return Err(k.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(k)
    }

    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}/RPC", self.rpc_port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default()
    }

    fn sipp_args(&self, scenario: &str, local_port: u16) -> Command {
        let mut c = Command::new("sipp");
        c.arg(format!("127.0.0.1:{}", self.sip_port))
            .arg("-sf")
            .arg(repo().join("tests/sip").join(scenario))
            .args(["-m", "1", "-i", "127.0.0.1", "-p"])
            .arg(local_port.to_string())
            .args(["-nostdin", "-timeout_error", "-trace_msg", "-message_file"])
            .arg(self.dir.join(format!("sipp-{local_port}.msg")))
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    }

    /// What sipp on `port` sent and received (its -message_file).
    pub fn messages(&self, port: u16) -> String {
        std::fs::read_to_string(self.dir.join(format!("sipp-{port}.msg"))).unwrap_or_default()
    }

    /// REGISTER with digest auth; `true` when the scenario (401 then `expect`) ran to the end.
    pub fn register(&self, user: &str, domain: &str, password: &str, ok: bool) -> SippRun {
        let port = free_port();
        let scenario = if ok {
            "reg_ok.xml"
        } else {
            "reg_forbidden.xml"
        };
        let status = self
            .sipp_args(scenario, port)
            .args([
                "-s", user, "-au", user, "-ap", password, "-key", "domain", domain,
            ])
            .args(["-timeout", "15s", "-default_behaviors", "abortunexp"])
            .status()
            .expect("sipp runs (apt-get install sip-tester)");
        SippRun {
            ok: status.success(),
            responses: responses(&self.messages(port)),
        }
    }

    /// The callee: registers, answers one call, de-registers. Runs in the background.
    pub fn callee(&self, user: &str, domain: &str, password: &str) -> (Child, u16) {
        self.callee_with("uas.xml", user, domain, password)
    }

    /// A callee that registers and answers the call with 486 Busy Here (call forward on busy).
    pub fn callee_busy(&self, user: &str, domain: &str, password: &str) -> (Child, u16) {
        self.callee_with("uas_busy.xml", user, domain, password)
    }

    /// A callee that registers, rings and never answers: it takes the CANCEL that Kamailio
    /// sends after the subscriber's `ringtimeout` (call forward on no answer).
    pub fn callee_no_answer(&self, user: &str, domain: &str, password: &str) -> (Child, u16) {
        self.callee_with("uas_noanswer.xml", user, domain, password)
    }

    /// A phone that registers and takes one `Event: check-sync` NOTIFY.
    pub fn phone_awaiting_resync(&self, user: &str, domain: &str, password: &str) -> (Child, u16) {
        self.callee_with("uas_notify.xml", user, domain, password)
    }

    /// reg_then_uas.xml with `uas` (a scenario in tests/sip) for the incoming call.
    pub fn callee_with(&self, uas: &str, user: &str, domain: &str, password: &str) -> (Child, u16) {
        let port = free_port();
        let child = self
            .sipp_args("reg_then_uas.xml", port)
            .arg("-oocsf")
            .arg(repo().join("tests/sip").join(uas))
            .args([
                "-s", user, "-au", user, "-ap", password, "-key", "domain", domain,
            ])
            .args(["-timeout", "40s"])
            .spawn()
            .unwrap();
        (child, port)
    }

    /// A call from a foreign domain (`caller@peer.invalid`) to `number@domain`, expecting 200
    /// (or `expect`).
    pub fn call(&self, number: &str, domain: &str, expect: Option<u16>) -> SippRun {
        self.call_from("caller", number, domain, expect)
    }

    /// Like `call`, from `caller@peer.invalid`: `caller` is the From user part, e.g. a number
    /// such as `4366412345` (incoming call barring) or `anonymous`.
    pub fn call_from(
        &self,
        caller: &str,
        number: &str,
        domain: &str,
        expect: Option<u16>,
    ) -> SippRun {
        let port = free_port();
        let mut c = match expect {
            None => self.sipp_args("uac_invite.xml", port),
            Some(code) => {
                let mut c = self.sipp_args("uac_invite_expect.xml", port);
                c.args(["-set", "expect", &code.to_string()]);
                c
            }
        };
        let status = c
            .args([
                "-s", number, "-key", "domain", domain, "-set", "caller", caller,
            ])
            .args(["-timeout", "15s", "-default_behaviors", "abortunexp"])
            .status()
            .unwrap();
        SippRun {
            ok: status.success(),
            responses: responses(&self.messages(port)),
        }
    }
}

impl Kamailio {
    /// A JSON-RPC call; the `result`, or the `error` object.
    pub async fn rpc(&self, method: &str, params: serde_json::Value) -> serde_json::Value {
        let r: serde_json::Value = reqwest::Client::new()
            .post(self.rpc_url())
            .json(&serde_json::json!({ "jsonrpc": "2.0", "method": method, "params": params, "id": 1 }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        r.get("result")
            .cloned()
            .unwrap_or_else(|| r["error"].clone())
    }

    /// A carrier (a scenario of tests/sip in server mode) on `ip`:`port`, in the background
    /// until stopped.
    pub fn carrier(
        &self,
        scenario: &str,
        ip: &str,
        port: u16,
        name: &str,
        extra: &[&str],
    ) -> Carrier {
        let msg = self.dir.join(format!("carrier-{name}-{port}.msg"));
        let log = self.dir.join(format!("carrier-{name}-{port}.log"));
        let child = Command::new("sipp")
            .arg("-sf")
            .arg(repo().join("tests/sip").join(scenario))
            .args(["-i", ip, "-p", &port.to_string()])
            // The gateways name themselves in their answers; a registrar has no name.
            .args(if scenario.starts_with("registrar") {
                vec![]
            } else {
                vec!["-set", "name", name]
            })
            .args(extra)
            .args(["-nostdin", "-trace_msg", "-message_file"])
            .arg(&msg)
            .args(["-trace_logs", "-log_file"])
            .arg(&log)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sipp runs");
        Carrier {
            child: Some(child),
            msg,
            log,
        }
    }

    /// A subscriber's call (407 challenge, then credentials) to `number`, expecting `expect`.
    pub fn sub_call(
        &self,
        user: &str,
        password: &str,
        domain: &str,
        number: &str,
        expect: u16,
    ) -> SippRun {
        self.sub_calls(user, password, domain, number, expect, 1)
    }

    /// `n` such calls, 20 per second, 10 at a time.
    pub fn sub_calls(
        &self,
        user: &str,
        password: &str,
        domain: &str,
        number: &str,
        expect: u16,
        n: u32,
    ) -> SippRun {
        let (n, expect) = (n.to_string(), expect.to_string());
        self.sub_call_scenario(
            "uac_auth_invite.xml",
            (user, password, domain, number),
            &["-m", &n, "-r", "20", "-l", "10", "-set", "expect", &expect],
        )
    }

    /// A subscriber's call that is answered and held `hold_ms` before the caller hangs up.
    pub fn sub_call_hold(
        &self,
        user: &str,
        password: &str,
        domain: &str,
        number: &str,
        hold_ms: u64,
    ) -> SippRun {
        let d = hold_ms.to_string();
        self.sub_call_scenario(
            "uac_auth_hold.xml",
            (user, password, domain, number),
            &["-d", &d],
        )
    }

    /// A subscriber's call that the caller cancels `after_ms` after it started ringing.
    pub fn sub_call_cancel(
        &self,
        user: &str,
        password: &str,
        domain: &str,
        number: &str,
        after_ms: u64,
    ) -> SippRun {
        let d = after_ms.to_string();
        self.sub_call_scenario(
            "uac_auth_cancel.xml",
            (user, password, domain, number),
            &["-d", &d],
        )
    }

    /// A subscriber's call by `scenario` (407 challenge, then credentials): (user, password,
    /// domain, number), with `extra` sipp arguments.
    fn sub_call_scenario(
        &self,
        scenario: &str,
        (user, password, domain, number): (&str, &str, &str, &str),
        extra: &[&str],
    ) -> SippRun {
        let port = free_port();
        let status = self
            .sipp_args(scenario, port)
            .args(extra)
            .args([
                "-s", number, "-key", "domain", domain, "-set", "caller", user, "-au", user, "-ap",
                password,
            ])
            .args(["-timeout", "60s", "-default_behaviors", "abortunexp"])
            .status()
            .unwrap();
        SippRun {
            ok: status.success(),
            responses: responses(&self.messages(port)),
        }
    }

    /// A carrier's call from `ip` (no authentication) to `number` at Kamailio's address,
    /// expecting `expect`; `extra`: more sipp arguments (-set pai …).
    pub fn peer_call(
        &self,
        ip: &str,
        caller: &str,
        number: &str,
        expect: u16,
        extra: &[&str],
    ) -> SippRun {
        let port = free_port();
        let msg = self.dir.join(format!("peer-{port}.msg"));
        let status = Command::new("sipp")
            .arg(format!("127.0.0.1:{}", self.sip_port))
            .arg("-sf")
            .arg(repo().join("tests/sip/peer_invite.xml"))
            .args(["-m", "1", "-i", ip, "-p", &port.to_string()])
            .args([
                "-s",
                number,
                "-key",
                "domain",
                "127.0.0.1",
                "-set",
                "caller",
                caller,
            ])
            .args(["-set", "expect", &expect.to_string()])
            .args(extra)
            .args([
                "-nostdin",
                "-timeout",
                "15s",
                "-timeout_error",
                "-default_behaviors",
                "abortunexp",
            ])
            .args(["-trace_msg", "-message_file"])
            .arg(&msg)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        SippRun {
            ok: status.success(),
            responses: responses(&std::fs::read_to_string(&msg).unwrap_or_default()),
        }
    }
}

/// A carrier running a sipp scenario until stopped.
pub struct Carrier {
    child: Option<Child>,
    msg: PathBuf,
    log: PathBuf,
}

impl Carrier {
    /// Waits (at most `secs`) until its log shows `needle`; sipp writes its log in bursts,
    /// so a miss here is settled by [`Carrier::stop`], which flushes it.
    pub async fn wait_logged(&self, needle: &str, secs: u64) {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(secs) {
            if std::fs::read_to_string(&self.log).is_ok_and(|l| l.contains(needle)) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it (SIGTERM: sipp writes out its buffered files) and returns what it received
    /// and logged.
    pub fn stop(mut self) -> (String, String) {
        self.halt();
        (
            std::fs::read_to_string(&self.msg).unwrap_or_default(),
            std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }
    fn halt(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
    }
}

impl Drop for Carrier {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The Request-URI users of the INVITEs a carrier received.
pub fn invites(messages: &str) -> Vec<String> {
    messages
        .lines()
        .filter_map(|l| l.trim().strip_prefix("INVITE sip:"))
        .map(|l| l.split('@').next().unwrap_or("").to_string())
        .collect()
}

/// How many OPTIONS a carrier received.
pub fn options(messages: &str) -> usize {
    messages
        .lines()
        .filter(|l| l.trim().starts_with("OPTIONS sip:"))
        .count()
}

#[derive(Debug)]
pub struct SippRun {
    pub ok: bool,
    /// Status codes received, in order.
    pub responses: Vec<String>,
}

fn responses(log: &str) -> Vec<String> {
    log.lines()
        .filter_map(|l| l.trim().strip_prefix("SIP/2.0 "))
        .map(|l| l.chars().take(3).collect())
        .collect()
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        if let Some(c) = self.child.take() {
            terminate(c);
        }
    }
}

/// SIGTERM (Kamailio stops its workers, sipp writes out its buffered files), then SIGKILL
/// after 5 s.
fn terminate(mut c: Child) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(c.id().to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = c.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = c.kill();
    let _ = c.wait();
}

/// `on_both!(test_fn, …)`: each `async fn test_fn(engine: Engine)` as two tests, with a
/// Kamailio on SQLite and on MariaDB.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),*) => {
        $(
            mod $name {
                use super::*;
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_sqlite() {
                    super::$name(Engine::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn on_mariadb() {
                    super::$name(Engine::Mysql).await;
                }
            }
        )*
    };
}
