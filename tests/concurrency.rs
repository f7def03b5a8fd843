//! Concurrent writers: limits hold, If-Match lets exactly one of many win, nothing 5xx.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn thirty_two_clients_never_exceed_max_subscribers(app: TestApp) {
    let f = app.fixture().await;
    let (s, _) = app
        .patch(
            &format!("/api/customers/{}", f.customer_id),
            json!([{ "op": "replace", "path": "/max_subscribers", "value": 20 }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let rb = app.req(Method::POST, "/api/subscribers/").json(&json!({
            "customer_id": f.customer_id, "domain": f.domain, "username": format!("c{i}"), "password": "sip-secret-1",
            "primary_number": { "cc": 49, "ac": 89, "sn": 1000 + i } }));
        tasks.push(tokio::spawn(
            async move { rb.send().await.unwrap().status() },
        ));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert!(codes.iter().all(|c| c.as_u16() < 500), "{codes:?}");
    assert_eq!(
        codes.iter().filter(|c| **c == StatusCode::CREATED).count(),
        20,
        "{codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == StatusCode::FORBIDDEN)
            .count(),
        12,
        "{codes:?}"
    );
    let (_, v) = app
        .get(&format!("/api/subscribers/?customer_id={}", f.customer_id))
        .await;
    assert_eq!(v["total_count"], 20);
}
both!(thirty_two_clients_never_exceed_max_subscribers);

async fn of_thirty_two_patches_with_one_etag_exactly_one_wins(app: TestApp) {
    let f = app.fixture().await;
    let id = app.subscriber(&f, "race", 7000).await;
    let path = format!("/api/subscribers/{id}");
    let tag = app.req(Method::GET, &path).send().await.unwrap().headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let rb = app
            .req(Method::PATCH, &path)
            .header("Content-Type", "application/json-patch+json")
            .header("If-Match", &tag)
            .body(json!([{ "op": "replace", "path": "/display_name", "value": format!("writer {i}") }]).to_string());
        tasks.push(tokio::spawn(
            async move { rb.send().await.unwrap().status() },
        ));
    }
    let mut codes = Vec::new();
    for t in tasks {
        codes.push(t.await.unwrap());
    }
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == StatusCode::NO_CONTENT)
            .count(),
        1,
        "{codes:?}"
    );
    assert_eq!(
        codes
            .iter()
            .filter(|c| **c == StatusCode::PRECONDITION_FAILED)
            .count(),
        31,
        "{codes:?}"
    );
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscribers&resource_id={id}&operation=update"
        ))
        .await;
    assert_eq!(j["total_count"], 1);
}
both!(of_thirty_two_patches_with_one_etag_exactly_one_wins);

/// PostgreSQL: subscriber creations hold their customer's row shared, and a new shared row
/// lock does not queue behind a writer already waiting, so a steady stream of creations
/// could keep a change of the customer waiting for ever. Creations pass a gate first, which
/// queues in order: a creation that arrives after a waiting change goes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_change_is_not_overtaken_by_later_creations() {
    let app = TestApp::spawn(Backend::Postgres).await;
    let f = app.fixture().await;
    let cust = f.customer_id;
    // pg_locks is the whole cluster's, and the tests running beside this one have customers
    // with the same id in databases of their own: only this database's locks count.
    let advisory = |granted: bool| {
        psql_at(
            &app.db_url,
            &format!(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = 2 AND objid = {cust} AND granted = {granted} \
                 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            ),
        )
        .parse::<i64>()
        .unwrap()
    };
    let wait_for = |what: &str, done: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !done() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(30),
                "never: {what}"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    // A creation in progress, holding what the server's own would: the gate and the row,
    // both shared.
    let mut held = std::process::Command::new("psql")
        .arg(&app.db_url)
        .args(["-qAtc", &format!(
            "BEGIN; SELECT pg_advisory_xact_lock_shared(2, {cust}); SELECT id FROM customers WHERE id = {cust} FOR SHARE; SELECT pg_sleep(60); COMMIT;"
        )])
        .env("PGAPPNAME", "vx-held-creation")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the held creation", &|| advisory(true) == 1);
    // A change of the customer waits for it ...
    let change = tokio::spawn(send(
        app.req(Method::PATCH, &format!("/api/customers/{cust}"))
            .header("Content-Type", "application/json-patch+json")
            .body(
                json!([{ "op": "replace", "path": "/external_id", "value": "changed" }])
                    .to_string(),
            ),
    ));
    wait_for("the change waiting", &|| advisory(false) == 1);
    // ... and a creation that comes now waits behind the change (without the gate it would
    // share the row with the held one and be done before the change).
    let create = tokio::spawn(send(
        app.req(Method::POST, "/api/subscribers/").json(&json!({
        "customer_id": cust, "domain": f.domain, "username": "later", "password": "pw-second-1" })),
    ));
    wait_for("the creation done or waiting", &|| {
        create.is_finished() || advisory(false) == 2
    });
    // Ends the held transaction (its backend sleeps on even once psql is gone).
    psql_at(
        &app.db_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'vx-held-creation'",
    );
    held.wait().unwrap();
    let (s, v) = change.await.unwrap();
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (s, v) = create.await.unwrap();
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let entry = |q: &str| {
        let q = q.to_string();
        let app = &app;
        async move {
            let (_, j) = app.get(&format!("/api/journals/?{q}")).await;
            items(&j, "journals")[0]["id"].as_i64().unwrap()
        }
    };
    let changed = entry(&format!(
        "resource=customers&resource_id={cust}&operation=update"
    ))
    .await;
    let created = entry("resource=subscribers&operation=create").await;
    assert!(
        changed < created,
        "the later creation went first: change {changed}, creation {created}"
    );
}

/// SQLite held by another process past the busy timeout: a write is told to retry (503, "database
/// busy"), never a 500, nothing of it is kept, and the next write after the other process lets
/// go succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_that_meets_a_held_sqlite_database_is_told_to_retry() {
    use std::io::{BufRead, Write};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    let mut holder = std::process::Command::new("sqlite3")
        .arg(app.dir.join("voxprov.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("sqlite3 runs");
    let mut stdin = holder.stdin.take().unwrap();
    // The shell waits for the lock too (should the server be writing just then), and stops
    // at an error rather than say "held" without holding it.
    writeln!(
        stdin,
        ".bail on\n.timeout 5000\nBEGIN IMMEDIATE;\nSELECT 'held';"
    )
    .unwrap();
    stdin.flush().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "held");
    let body = json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "busy",
        "password": "sip-secret-1", "primary_number": { "cc": 49, "ac": 30, "sn": 8_800_000 } });
    let (s, v) = app.post("/api/subscribers/", body.clone()).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(
        v.to_string()
            .contains("database unavailable (database busy)"),
        "{v}"
    );
    writeln!(stdin, "ROLLBACK;").unwrap();
    drop(stdin);
    assert!(holder.wait().unwrap().success());
    let (_, list) = app.get("/api/subscribers/?username=busy").await;
    assert_eq!(list["total_count"], 0, "{list}");
    let (s, v) = app.post("/api/subscribers/", body).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// The threads of process `pid` as (name, CPUs it may run on), from /proc.
#[cfg(target_os = "linux")]
fn threads_and_cpus(pid: u32) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for t in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = t.unwrap().path();
        let (Ok(name), Ok(status)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("status")),
        ) else {
            continue; // ended meanwhile
        };
        let cpus = status
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
            .unwrap()
            .trim()
            .to_string();
        out.push((name.trim().to_string(), cpus));
    }
    out
}

/// On SQLite, the single writer's connection runs on one CPU together with the lane that
/// drives the writes, and a SIP server's worker on another CPU together with its own reader
/// connections and its connection to the SIP server's database (src/store/lane.rs): a
/// statement handed over wakes a thread on the same CPU. Only those: the API's readers, the
/// lanes' blocking threads and everything else keep every CPU.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_writer_and_sipserver_workers_share_a_cpu_with_their_lane_and_nothing_else_is_confined(
) {
    use common::sipdb::{self, Engine, SipDb};
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let f = app.fixture().await;
    let kam = SipDb::new(Engine::Sqlite, &app.dir);
    kam.load(&sipdb::kamailio_schema(Engine::Sqlite));
    // Its first full load compares rows on a blocking thread started from the worker's lane:
    // that thread gets every CPU back.
    let id = app
        .sipserver("pinned", "kamailio", &kam.url(), json!({}))
        .await;
    app.create(
        "/api/subscribers/",
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "pinned",
                "password": "sip-secret-1", "primary_number": { "cc": 49, "ac": 30, "sn": 7100 } }),
    )
    .await;
    app.wait_synced(id).await;
    assert_eq!(
        kam.count("SELECT count(*) FROM subscriber WHERE username = 'pinned'"),
        1
    );
    let threads = threads_and_cpus(app.pid());
    let all = threads
        .iter()
        .find(|(n, _)| n == "voxprov")
        .map(|(_, c)| c.clone())
        .expect("the main thread");
    let lane = |name: &str| -> Vec<String> {
        threads
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, c)| c.clone())
            .collect()
    };
    let (writer, side) = (lane("voxprov-writer"), lane("voxprov-sipsrv"));
    if !all.contains(['-', ',']) {
        // One CPU allowed: nothing to share, no lanes.
        assert!(writer.is_empty() && side.is_empty(), "{threads:?}");
        return;
    }
    assert_eq!(writer.len(), 1, "one writer's lane: {threads:?}");
    assert_eq!(
        side.len(),
        1,
        "one lane for the one SIP server's worker: {threads:?}"
    );
    let (writer, side) = (&writer[0], &side[0]);
    for cpu in [writer, side] {
        assert!(
            cpu.parse::<u32>().is_ok(),
            "a lane is on one CPU: {threads:?}"
        );
    }
    assert_ne!(writer, side, "the lanes are on different CPUs: {threads:?}");
    assert!(
        threads.iter().any(|(n, _)| n == "voxprov-lane-bg"),
        "a lane started a blocking thread (the full load's comparison): {threads:?}"
    );
    let sqlite: Vec<&String> = threads
        .iter()
        .filter(|(n, _)| n.starts_with("sqlx-sqlite"))
        .map(|(_, c)| c)
        .collect();
    assert!(
        sqlite.len() >= 10,
        "the writer, 8 readers, the worker's: {threads:?}"
    );
    assert_eq!(
        sqlite.iter().filter(|c| **c == writer).count(),
        1,
        "the writer's connection alone is on the writer lane's CPU: {threads:?}"
    );
    assert!(
        sqlite.iter().filter(|c| **c == side).count() >= 3,
        "the worker's two readers and its connection to the SIP server's database are on its \
         lane's CPU: {threads:?}"
    );
    let unpinned = sqlite.iter().filter(|c| **c == &all).count();
    assert!(
        unpinned >= 8,
        "the API's 8 readers keep every CPU: {threads:?}"
    );
    for (name, cpus) in &threads {
        let pinned = name == "voxprov-writer"
            || name == "voxprov-sipsrv"
            || (name.starts_with("sqlx-sqlite") && (cpus == writer || cpus == side));
        if !pinned {
            assert_eq!(cpus, &all, "{name} keeps every CPU: {threads:?}");
        }
    }
}
