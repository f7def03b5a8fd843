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
