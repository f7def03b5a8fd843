//! A PostgreSQL failover under load: two real PostgreSQL instances made by this test (a
//! primary with a synchronous standby, streaming replication), HAProxy in front as the
//! address voxprov knows, two voxprov nodes behind it. Mid-load the primary is killed
//! (`pg_ctl stop -m immediate`, a crash) and the standby promoted: every write acknowledged
//! with 2xx is on the new primary, the clients saw only 503s (with `Retry-After`) during the
//! switch, and the nodes went on without a restart.

mod common;
use common::kamailio::free_port;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};
use std::time::{Duration, Instant};

/// PostgreSQL's own programs (Debian's postgresql package).
fn pg_bin(name: &str) -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server package is installed")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    versions.sort();
    versions.last().unwrap().join("bin").join(name)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a PostgreSQL program as the `postgres` user when the test runs as root (the server
/// refuses root).
fn as_pg(prog: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(prog));
        c
    } else {
        Command::new(pg_bin(prog))
    }
}

/// One PostgreSQL instance in a directory of its own.
struct Pg {
    dir: PathBuf,
    port: u16,
}

impl Pg {
    fn ctl(&self, args: &[&str]) {
        let mut c = as_pg("pg_ctl");
        c.arg("-D")
            .arg(&self.dir)
            .args(["-w", "-t", "60"])
            .args(args)
            .arg("-l")
            .arg(self.dir.join("log"))
            .stdout(Stdio::null());
        run_ok(&mut c, &format!("pg_ctl {args:?}"));
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        let _ = as_pg("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["stop", "-m", "immediate"])
            .output();
    }
}

fn private_dir(base: &Path, name: &str) -> PathBuf {
    let d = base.join(name);
    std::fs::create_dir_all(&d).unwrap();
    if is_root() {
        run_ok(
            &mut {
                let mut c = Command::new("chown");
                c.arg("-R").arg("postgres:").arg(base);
                c
            },
            "chown",
        );
    }
    d
}

/// A primary that waits for its standby on every commit, and the standby.
fn pair(base: &Path) -> (Pg, Pg) {
    let primary = Pg {
        dir: private_dir(base, "primary"),
        port: free_port(),
    };
    run_ok(
        &mut {
            let mut c = as_pg("initdb");
            c.arg("-D")
                .arg(&primary.dir)
                .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"]);
            c
        },
        "initdb",
    );
    let conf = format!(
        "port = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
         wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n\
         synchronous_standby_names = '*'\nsynchronous_commit = on\nfsync = on\n",
        primary.port,
        primary.dir.display()
    );
    append(&primary.dir.join("postgresql.conf"), &conf);
    append(
        &primary.dir.join("pg_hba.conf"),
        "host replication postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 trust\n",
    );
    // Started without a standby, a commit would wait for one forever: the standby is made
    // before anything is written.
    primary.ctl(&["start"]);
    let standby = Pg {
        dir: private_dir(base, "standby"),
        port: free_port(),
    };
    std::fs::remove_dir_all(&standby.dir).unwrap();
    run_ok(
        &mut {
            let mut c = as_pg("pg_basebackup");
            c.args([
                "-h",
                "127.0.0.1",
                "-p",
                &primary.port.to_string(),
                "-U",
                "postgres",
                "-D",
            ])
            .arg(&standby.dir)
            .args(["-R", "-X", "stream", "--checkpoint=fast"]);
            c
        },
        "pg_basebackup",
    );
    append(
        &standby.dir.join("postgresql.conf"),
        &format!(
            "port = {}\nunix_socket_directories = '{}'\n",
            standby.port,
            standby.dir.display()
        ),
    );
    standby.ctl(&["start"]);
    (primary, standby)
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// HAProxy as the database's one address: the primary, and the standby as the backup.
struct Proxy {
    child: Child,
    port: u16,
}

impl Proxy {
    fn start(dir: &Path, primary: &Pg, standby: &Pg) -> Proxy {
        let port = free_port();
        let cfg = format!(
            "global\n    maxconn 1000\n\
             defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1h\n    timeout server 1h\n\
             listen postgres\n    bind 127.0.0.1:{port}\n    option tcp-check\n\
             \x20   default-server inter 300ms fall 2 rise 2 on-marked-down shutdown-sessions\n\
             \x20   server primary 127.0.0.1:{} check\n    server standby 127.0.0.1:{} check backup\n",
            primary.port, standby.port
        );
        let path = dir.join("haproxy-pg.cfg");
        std::fs::write(&path, cfg).unwrap();
        Proxy {
            child: haproxy(&path),
            port,
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
struct Seen {
    acked: Vec<(String, Instant)>,
    /// Answers other than 2xx: (status, had Retry-After, when).
    refused: Vec<(u16, bool, Instant)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_primary_killed_under_load_fails_over_to_its_standby() {
    let base = std::env::temp_dir().join(format!("vxfailover-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    let (primary, standby) = pair(&base);
    psql_at(&primary.url("postgres"), "CREATE DATABASE voxprov");
    let proxy = Proxy::start(&base, &primary, &standby);
    let db_url = format!("postgres://postgres@127.0.0.1:{}/voxprov", proxy.port);

    // Two nodes on the proxied address.
    let mut a = TestApp::unstarted(Backend::Sqlite, &[]);
    a.db_url = db_url.clone();
    a.start().await;
    let mut b = a.peer(&[]);
    b.start().await;
    let f = a.fixture().await;

    let seen: Arc<Mutex<Seen>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for cl in 0..16 {
        let (c, base_url, seen, stop, cust, dom) = (
            a.client.clone(),
            if cl % 2 == 0 {
                a.base.clone()
            } else {
                b.base.clone()
            },
            seen.clone(),
            stop.clone(),
            f.customer_id,
            f.domain.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let username = format!("fo{cl}x{i}");
                let r = c
                    .request(Method::POST, format!("{base_url}/api/subscribers/"))
                    .basic_auth("administrator", Some(ADMIN_PASS))
                    .timeout(Duration::from_secs(60))
                    .json(&json!({"customer_id": cust, "domain": dom, "username": username, "password": "Sip-secret-77"}))
                    .send()
                    .await
                    .expect("the node answers (it is not the one failing)");
                let status = r.status();
                if status.is_success() {
                    seen.lock().unwrap().acked.push((username, Instant::now()));
                } else {
                    let retry = r.headers().contains_key("retry-after");
                    seen.lock()
                        .unwrap()
                        .refused
                        .push((status.as_u16(), retry, Instant::now()));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // The primary crashes; a moment later the standby is promoted (as a manager would).
    let killed_at = Instant::now();
    primary.ctl(&["stop", "-m", "immediate"]);
    tokio::time::sleep(Duration::from_secs(1)).await;
    standby.ctl(&["promote"]);
    // Alone now: it must not wait for a standby of its own (its settings are the old
    // primary's copy), as a failover manager would set it.
    psql_at(
        &standby.url("postgres"),
        "ALTER SYSTEM SET synchronous_standby_names = ''",
    );
    psql_at(&standby.url("postgres"), "SELECT pg_reload_conf()");
    let promoted_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();

    // Only 503s with Retry-After, and only between the crash and shortly after the promotion.
    for (status, retry, at) in &seen.refused {
        assert_eq!(*status, 503, "only 503s during the switch");
        assert!(*retry, "a 503 says when to retry");
        assert!(
            *at >= killed_at,
            "nothing refused before the primary went away"
        );
    }
    let before = seen.acked.iter().filter(|(_, t)| *t < killed_at).count();
    assert!(before > 20, "the load ran before the crash: {before}");
    // The switch: from the last write acknowledged before the first refusal to the first one
    // acknowledged after the last refusal.
    let first_refused = seen.refused.iter().map(|r| r.2).min();
    let last_refused = seen.refused.iter().map(|r| r.2).max();
    let (from, to) = match (first_refused, last_refused) {
        (Some(f), Some(l)) => (f, l),
        _ => (killed_at, killed_at),
    };
    let last_before = seen
        .acked
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| *t <= from)
        .max()
        .unwrap();
    let after: Vec<Instant> = seen
        .acked
        .iter()
        .map(|(_, t)| *t)
        .filter(|t| *t > to)
        .collect();
    assert!(
        after.len() > 20,
        "the nodes write again after the promotion, without a restart: {}",
        after.len()
    );
    let first_after = *after.iter().min().unwrap();
    println!(
        "failover: {} writes acknowledged, {} answered 503 (all with Retry-After); writes unavailable for {} ms \
         (last acknowledged write before the switch to the first after it; the standby was promoted {} ms after the crash)",
        seen.acked.len(),
        seen.refused.len(),
        first_after.duration_since(last_before).as_millis(),
        promoted_at.duration_since(killed_at).as_millis()
    );
    // Every acknowledged write is on the new primary.
    let on_new = psql_at(
        &standby.url("voxprov"),
        &format!(
            "SELECT string_agg(username, ' ') FROM subscribers WHERE customer_id = {}",
            f.customer_id
        ),
    );
    let present: std::collections::HashSet<&str> = on_new.split(' ').collect();
    let lost: Vec<&String> = seen
        .acked
        .iter()
        .map(|(u, _)| u)
        .filter(|u| !present.contains(u.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "acknowledged but not on the new primary: {lost:?}"
    );
    // And each with its journal entry.
    let journalled = psql_at(
        &standby.url("voxprov"),
        &format!("SELECT COUNT(*) FROM changes WHERE resource = 'subscribers' AND op = 'create' AND object_id IN (SELECT id FROM subscribers WHERE customer_id = {})", f.customer_id),
    );
    assert!(journalled.parse::<usize>().unwrap() >= seen.acked.len());
    // Reads work through both nodes, on the new primary.
    for n in [&a, &b] {
        let (s, _) = n.get("/api/subscribers/?rows=1").await;
        assert_eq!(s, StatusCode::OK);
    }
    drop(a);
    drop(b);
    drop(proxy);
    drop(standby);
    drop(primary);
    let _ = std::fs::remove_dir_all(&base);
}
