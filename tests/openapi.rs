//! The API describes itself: every route has an operation in /api/openapi.json, and /api/
//! is readable in a browser without any external asset.

mod common;
use common::*;
use reqwest::{Method, StatusCode};

#[tokio::test]
async fn every_collection_and_operation_is_described() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let r = app
        .client
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let spec: serde_json::Value = r.json().await.unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    let names = [
        "resellers",
        "admins",
        "apikeys",
        "domains",
        "billingprofiles",
        "systemcontacts",
        "customercontacts",
        "customers",
        "subscribers",
        "numbers",
        "sipservers",
    ];
    for n in names {
        let coll = &paths[&format!("/api/{n}/")];
        let item = &paths[&format!("/api/{n}/{{id}}")];
        assert!(coll["get"].is_object() && item["get"].is_object(), "{n}");
        // What OPTIONS allows is exactly what the description documents.
        let app = &app;
        let allow = |path: String| async move {
            app.req(Method::OPTIONS, &path)
                .send()
                .await
                .unwrap()
                .headers()["allow"]
                .to_str()
                .unwrap()
                .to_string()
        };
        let item_allow = allow(format!("/api/{n}/1")).await;
        for (m, op) in [("PUT", "put"), ("PATCH", "patch"), ("DELETE", "delete")] {
            assert_eq!(item_allow.contains(m), item[op].is_object(), "{n} {m}");
        }
        let allow = allow(format!("/api/{n}/")).await;
        assert_eq!(allow.contains("POST"), coll["post"].is_object(), "{n} POST");
        if let Some(body) =
            coll["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str()
        {
            let name = body.rsplit('/').next().unwrap();
            assert!(
                spec["components"]["schemas"][name]["properties"].is_object(),
                "{n}: schema {name}"
            );
        }
    }
    assert!(
        spec["components"]["schemas"]["SubscriberInput"]["properties"]["primary_number"]
            .is_object()
    );
    assert!(paths.contains_key("/api/journals/"));
    // A browser gets documentation, self-contained.
    let r = app
        .client
        .get(app.url("/api/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html = r.text().await.unwrap();
    assert!(html.contains("POST /api/subscribers/") && html.contains("SubscriberInput"));
    assert!(
        !html.contains("<script src=\"http")
            && !html.contains("<link rel=\"stylesheet\" href=\"http")
    );
    // A program gets the index of collections.
    let (_, idx) = app.get("/api/").await;
    assert_eq!(
        idx["_links"]["ngcp:subscribers"]["href"],
        "/api/subscribers/"
    );
}

#[tokio::test]
async fn health_endpoints_answer_without_credentials() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.client
            .get(app.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}
