//! Nothing acknowledged is lost: SIGKILL in the middle of a create load, restart, and every
//! subscriber answered 201 is there with its journal entry.

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
    app.kill9();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    app.start().await;
    let (_, v) = app
        .get(&format!(
            "/api/subscribers/?customer_id={}&rows=1000&no_count=false",
            f.customer_id
        ))
        .await;
    let present: std::collections::HashSet<String> = items(&v, "subscribers")
        .iter()
        .map(|s| s["username"].as_str().unwrap().to_string())
        .collect();
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
