//! `voxprov backup` during a write load of 16 clients, `voxprov restore` into a fresh data
//! directory and database: every change acknowledged before the backup began is there, and
//! SIP passwords still decrypt — a Kamailio loaded from the restored server lets a
//! subscriber register. A wrong passphrase is refused with a clear message and nothing
//! written; a backup from a newer schema is refused; a database with a newer schema than the
//! binary refuses to start.

mod common;
use common::kamailio::*;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};

const CLIENTS: usize = 16;

/// Each load subscriber's own SIP password (not containing its username, as policy wants).
fn password(user: &str) -> String {
    format!("{}-sec-pw", user.chars().rev().collect::<String>())
}

async fn backup_under_load_restores_everything_acknowledged(backend: Backend) {
    let app = Arc::new(TestApp::spawn(backend).await);
    let f = app.fixture().await;
    let customer_id = f.customer_id;
    let pass_file = app.dir.join("passphrase");
    std::fs::write(&pass_file, "a long backup passphrase\n").unwrap();
    // 16 clients create subscribers as fast as they are answered; each records what was
    // acknowledged (id, username) and when.
    let acked: Arc<Mutex<Vec<(std::time::Instant, i64, String)>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let (app, f, acked, stop) = (app.clone(), f.domain.clone(), acked.clone(), stop.clone());
        let customer = customer_id;
        clients.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let user = format!("load{c}x{n}");
                let (s, v) = app
                    .post(
                        "/api/subscribers/",
                        json!({"customer_id": customer, "domain": f, "username": user, "password": password(&user)}),
                    )
                    .await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                acked.lock().unwrap().push((std::time::Instant::now(), v["id"].as_i64().unwrap(), user));
                n += 1;
            }
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let began = std::time::Instant::now();
    let out = app.cli(&[
        "backup",
        app.dir.join("full.vxb").to_str().unwrap(),
        "--passphrase-file",
        pass_file.to_str().unwrap(),
    ]);
    assert_eq!(out.0, 0, "backup: {} {}", out.1, out.2);
    // The load went on while the backup ran.
    let during = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, ..)| *t > began)
        .count();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let before: Vec<(i64, String)> = acked
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, ..)| *t < began)
        .map(|(_, id, u)| (*id, u.clone()))
        .collect();
    assert!(
        before.len() >= CLIENTS,
        "the load was running: {} before",
        before.len()
    );
    assert!(during > 0, "writes were acknowledged while the backup ran");
    eprintln!(
        "{backend:?}: {} writes acknowledged before the backup began, {during} while it ran; {}",
        before.len(),
        out.1.trim()
    );
    let mode = std::fs::metadata(app.dir.join("full.vxb")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o600
    );

    // A wrong passphrase: refused, clearly, and nothing written in the fresh place.
    let mut restored = TestApp::unstarted(backend, &[]);
    std::fs::remove_dir_all(&restored.dir).unwrap();
    let wrong = app.dir.join("wrong");
    std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
    let file = app.dir.join("full.vxb");
    let (code, _, err) = restored.cli(&[
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        wrong.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("wrong passphrase"), "{err}");
    assert!(
        !restored.dir.exists(),
        "nothing written: {:?}",
        std::fs::read_dir(&restored.dir).map(|d| d.count())
    );
    if backend == Backend::Postgres {
        let out = std::process::Command::new("psql")
            .arg(&restored.db_url)
            .args([
                "-qAtc",
                "SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'",
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "0",
            "no table created"
        );
    }

    // The right one: everything acknowledged before the backup began is there.
    let (code, out, err) = restored.cli(&[
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        pass_file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restored"), "{out}");
    // Restoring again over it is refused: the database is no longer empty.
    let (code, _, err) = restored.cli(&[
        "restore",
        file.to_str().unwrap(),
        "--passphrase-file",
        pass_file.to_str().unwrap(),
    ]);
    assert_ne!(code, 0);
    assert!(err.contains("not empty"), "{err}");
    restored.start().await;
    for (id, user) in &before {
        let (s, v) = restored.get(&format!("/api/subscribers/{id}")).await;
        assert_eq!(
            s,
            StatusCode::OK,
            "subscriber {id} ({user}) acknowledged before the backup"
        );
        assert_eq!(v["username"], user.as_str());
    }
    // Ids go on after the restored ones.
    let (s, v) = restored
        .post(
            "/api/domains/",
            json!({"domain": "after.example.com", "reseller_id": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // SIP passwords decrypt: a Kamailio loaded from the restored server lets one register.
    let (_db, k, _) = Kamailio::loaded_from(&restored).await;
    let (_, user) = &before[before.len() / 2];
    let r = k.register(user, &f.domain, &password(user), true);
    assert!(
        r.ok,
        "REGISTER with the restored password: {:?}\n{}",
        r.responses,
        k.log()
    );
    let r = k.register(user, &f.domain, "not-the-password-1", false);
    assert!(r.ok, "a wrong password is still refused: {:?}", r.responses);
    drop(k);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_load_on_sqlite() {
    backup_under_load_restores_everything_acknowledged(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn backup_under_load_on_postgres() {
    backup_under_load_restores_everything_acknowledged(Backend::Postgres).await;
}

/// What cannot be restored or run is refused with a message saying why, and leaves nothing
/// half-done: a truncated file, a backup from a newer schema, a database a newer voxprov
/// upgraded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_newer_and_upgraded_are_refused_clearly() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    app.subscriber(&f, "keepme", 5550100).await;
    let pass = app.dir.join("passphrase");
    std::fs::write(&pass, "another long passphrase").unwrap();
    let file = app.dir.join("b.vxb");
    let (code, out, err) = app.cli(&[
        "backup",
        file.to_str().unwrap(),
        "--passphrase-file",
        pass.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&file).unwrap();

    let restore = |variant: &str, body: String| {
        let target = TestApp::unstarted(Backend::Sqlite, &[]);
        let path = app.dir.join(format!("{variant}.vxb"));
        std::fs::write(&path, body).unwrap();
        let (code, _, err) = target.cli(&[
            "restore",
            path.to_str().unwrap(),
            "--passphrase-file",
            pass.to_str().unwrap(),
        ]);
        let count = std::process::Command::new("sqlite3")
            .arg(target.dir.join("voxprov.db"))
            .arg("SELECT COUNT(*) FROM admins")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_default();
        (code, err, count, target)
    };
    // Cut in the middle of the rows: nothing restored.
    let cut = text.len() * 2 / 3;
    let cut = text[..cut].rfind('\n').unwrap() + 1;
    let (code, err, admins, _t) = restore("truncated", text[..cut].to_string());
    assert_ne!(code, 0);
    assert!(err.contains("truncated"), "{err}");
    assert_eq!(admins, "0", "nothing restored from a truncated file");
    // One row changed: the checksum says so.
    let tampered = text.replacen("keepme", "keepmf", 1);
    let (code, err, admins, _t) = restore("tampered", tampered);
    assert_ne!(code, 0);
    assert!(err.contains("damaged"), "{err}");
    assert_eq!(admins, "0");
    // From a newer voxprov's schema.
    let newer = text.replacen("\"schema\":", "\"schema\":99", 1);
    let (code, err, _, _t) = restore("newer", newer);
    assert_ne!(code, 0);
    assert!(
        err.contains("newer voxprov") && err.contains("upgrade voxprov first"),
        "{err}"
    );

    // A database a newer voxprov migrated: this one refuses to run on it.
    let st = std::process::Command::new("sqlite3")
        .arg(app.dir.join("voxprov.db"))
        .arg("INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (9999, 'future', 1, x'00', 0)")
        .status()
        .unwrap();
    assert!(st.success());
    let (code, _, err) = app.cli(&["migrate"]);
    assert_ne!(code, 0);
    assert!(err.contains("newer than this voxprov"), "{err}");
}
