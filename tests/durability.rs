//! Nothing acknowledged is lost: SIGKILL in the middle of a create load, restart, and every
//! subscriber answered 201 is there with its journal entry. On SQLite concurrent writes share
//! one commit (group commit): the load checks they did, so the kill lands among shared
//! commits; and a write that fails inside a shared commit fails alone.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::sync::{Arc, Mutex};

async fn every_acknowledged_create_survives_sigkill(mut app: TestApp) {
    let f = app.fixture().await;
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (client, url, acked, stop, f_cust, f_dom) = (
            app.client.clone(),
            app.url("/api/subscribers/"),
            acked.clone(),
            stop.clone(),
            f.customer_id,
            f.domain.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let username = format!("k{c}x{i}");
                let r = client
                    .request(Method::POST, &url)
                    .basic_auth("administrator", Some(ADMIN_PASS))
                    .json(&json!({ "customer_id": f_cust, "domain": f_dom, "username": username, "password": "sip-secret-1",
                                   "primary_number": { "cc": 49, "ac": 70 + c, "sn": 100000 + i } }))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == StatusCode::CREATED => acked.lock().unwrap().push(username),
                    Ok(r) => assert!(r.status().as_u16() < 500 || stop.load(std::sync::atomic::Ordering::SeqCst), "{}", r.status()),
                    Err(_) => break, // the server is gone
                }
                i += 1;
            }
        }));
    }
    // Let the load run, then kill the server without warning.
    while acked.lock().unwrap().len() < 150 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    if app.db_url.starts_with("sqlite") {
        let (commits, writes) = shared_commits(&app).await;
        assert!(
            commits > 0.0 && writes > commits,
            "16 clients' creates share commits: {writes} writes in {commits} commits"
        );
    }
    app.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    app.start().await;
    let present = usernames(&app, f.customer_id).await;
    let missing: Vec<&String> = acked.iter().filter(|u| !present.contains(*u)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged creates lost: {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // Each has its journal entry.
    let (_, j) = app
        .get("/api/journals/?resource=subscribers&operation=create&rows=1")
        .await;
    assert!(j["total_count"].as_i64().unwrap() >= acked.len() as i64);
    for u in acked.iter().take(20) {
        let (_, s) = app.get(&format!("/api/subscribers/?username={u}")).await;
        let id = items(&s, "subscribers")[0]["id"].as_i64().unwrap();
        let (_, j) = app
            .get(&format!(
                "/api/journals/?resource=subscribers&resource_id={id}&operation=create"
            ))
            .await;
        assert_eq!(j["total_count"], 1, "{u}");
    }
}
both!(every_acknowledged_create_survives_sigkill);

/// The usernames of a customer's subscribers (up to 1,000).
async fn usernames(app: &TestApp, customer_id: i64) -> std::collections::HashSet<String> {
    let (_, v) = app
        .get(&format!(
            "/api/subscribers/?customer_id={customer_id}&rows=1000"
        ))
        .await;
    items(&v, "subscribers")
        .iter()
        .map(|s| s["username"].as_str().unwrap().to_string())
        .collect()
}

/// The shared commits so far and the writes they carried (SQLite's `voxprov_db_commit_writes`).
async fn shared_commits(app: &TestApp) -> (f64, f64) {
    let m = app.metrics().await;
    let value = |name: &str| {
        m.lines()
            .find_map(|l| l.strip_prefix(name)?.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (
        value("voxprov_db_commit_writes_count"),
        value("voxprov_db_commit_writes_sum"),
    )
}

/// Creates that fail (a number already taken: found by the unique index after the subscriber
/// row is written, so the failure must undo a write) interleaved with good ones from 16 clients: each failure is a 422 of its
/// own, every good create is there, no bad one is, and on SQLite they shared commits.
async fn a_failing_write_fails_alone_in_a_shared_commit(app: TestApp) {
    let f = app.fixture().await;
    let taken = app
        .post(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "holder",
                    "password": "sip-secret-1", "primary_number": { "cc": 49, "ac": 99, "sn": 1 } }),
        )
        .await;
    assert_eq!(taken.0, StatusCode::CREATED);
    let (commits_before, writes_before) = shared_commits(&app).await;
    let mut tasks = Vec::new();
    for c in 0..16 {
        let (client, url, f_cust, f_dom) = (
            app.client.clone(),
            app.url("/api/subscribers/"),
            f.customer_id,
            f.domain.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..12 {
                let bad = (c + i) % 3 == 0;
                let username = format!("g{c}x{i}");
                let sn = if bad { 1 } else { 200000 + c * 100 + i };
                let r = client
                    .request(Method::POST, &url)
                    .basic_auth("administrator", Some(ADMIN_PASS))
                    .json(
                        &json!({ "customer_id": f_cust, "domain": f_dom, "username": username,
                                   "password": "sip-secret-1",
                                   "primary_number": { "cc": 49, "ac": 99, "sn": sn } }),
                    )
                    .send()
                    .await
                    .unwrap();
                out.push((username, bad, r.status()));
            }
            out
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.extend(t.await.unwrap());
    }
    for (u, bad, status) in &results {
        let want = if *bad {
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::CREATED
        };
        assert_eq!(*status, want, "{u}");
    }
    let present = usernames(&app, f.customer_id).await;
    for (u, bad, _) in &results {
        assert_eq!(present.contains(u), !bad, "{u}");
    }
    let good = results.iter().filter(|r| !r.1).count();
    let (_, j) = app
        .get("/api/journals/?resource=subscribers&operation=create&rows=1")
        .await;
    assert_eq!(
        j["total_count"].as_i64().unwrap(),
        good as i64 + 1,
        "one journal entry per good create, none for a failed one"
    );
    if app.db_url.starts_with("sqlite") {
        let (commits, writes) = shared_commits(&app).await;
        let (commits, writes) = (commits - commits_before, writes - writes_before);
        assert!(
            writes > commits,
            "the load shared commits: {writes} writes in {commits} commits"
        );
    }
}
both!(a_failing_write_fails_alone_in_a_shared_commit);
