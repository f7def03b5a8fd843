//! The API describes itself: every route has an operation in /api/openapi.json, and /api/
//! is readable in a browser without any external asset.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

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

/// The description tells the whole truth: every operation it lists is served and answers only
/// with statuses it declares (asked as an admin, with ids that exist and ids that do not);
/// the routes beside the collections are in it; filters are typed as the listing checks them;
/// a creation's 201 promises no body (none comes without `Prefer: return=representation`).
#[tokio::test]
async fn every_described_operation_is_served_as_described() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let (_, spec) = app.get("/api/openapi.json").await;
    let paths = spec["paths"].as_object().unwrap();
    for p in [
        "/api/subscriberpreferencedefs/",
        "/api/customerpreferencedefs/",
        "/api/domainpreferencedefs/",
        "/api/pbxdevicemodels/tree",
        "/api/pbxdevicemodels/detect",
        "/api/pbxdevicetemplates/builtin",
        "/api/pbxdevicetemplates/import_kazoo",
        "/api/pbxdevices/{id}/preview",
        "/api/pbxdevices/{id}/fetches",
        "/api/pbxdevices/{id}/reset_token",
        "/api/pbxdevices/{id}/reset_secret",
        "/api/pbxdevices/{id}/resync",
        "/api/pbxprovbans/",
        "/api/pbxprovbans/{ip}",
        "/api/pbxdevicecache",
        "/api/sipservers/{id}/check",
        "/api/sipservers/{id}/repair",
        "/api/soundfilerecordings/{id}",
        "/api/metaconfigdefs/",
        "/api/",
        "/healthz",
        "/readyz",
    ] {
        assert!(paths.contains_key(p), "{p} is not described");
    }
    // Filters: ids are integers, times have their form, the rest are text.
    let params = spec["paths"]["/api/subscribers/"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let param = |n: &str| params.iter().find(|p| p["name"] == n).unwrap()["schema"].clone();
    assert_eq!(param("customer_id")["type"], "integer");
    assert_eq!(param("username")["type"], "string");
    let jp = spec["paths"]["/api/journals/"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let since = jp.iter().find(|p| p["name"] == "since").unwrap();
    assert!(since["schema"]["pattern"].is_string());
    let created = &spec["paths"]["/api/domains/"]["post"]["responses"]["201"];
    assert!(created["content"].is_null() && created["headers"]["Location"].is_object());

    // Something to find: a domain, a customer, a subscriber.
    let (s, _) = app
        .post(
            "/api/domains/",
            json!({"domain": "oas.example.com", "reseller_id": 1}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let declared: Vec<&String> = op["responses"].as_object().unwrap().keys().collect();
            // Harmless to send: reads, and writes with an empty object (refused or creating
            // little); deletions of what does not exist.
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            for id in ["1", "999999"] {
                if m == Method::DELETE && id == "1" {
                    continue;
                }
                let url = path.replace("{id}", id).replace("{ip}", "192.0.2.1");
                let mut rq = app.req(m.clone(), &url);
                rq = match method.as_str() {
                    "post" | "put" => rq.json(&json!({})),
                    "patch" => rq
                        .header("Content-Type", "application/json-patch+json")
                        .body("[]"),
                    _ => rq,
                };
                let r = rq.send().await.unwrap();
                let status = r.status().as_u16().to_string();
                let body = r.text().await.unwrap_or_default();
                assert!(
                    declared.iter().any(|d| **d == status),
                    "{} {url}: {status} is not declared ({declared:?}): {body}",
                    method.to_uppercase()
                );
                assert_ne!(
                    body, r#"{"code":404,"message":"no such resource"}"#,
                    "{url}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 300, "only {checked} operations tried");
}

/// Every sort field a listing declares sorts, both ways, under strict handling (where an
/// unknown one would be a 400 rather than ignored): the SQL behind each is real.
#[tokio::test]
async fn every_declared_order_by_sorts() {
    for backend in [Backend::Sqlite, Backend::Postgres] {
        orderings_sort(TestApp::spawn(backend).await).await;
    }
}

async fn orderings_sort(app: TestApp) {
    let f = app.fixture().await;
    app.subscriber(&f, "sorted", 5551000).await;
    let (_, spec) = app.get("/api/openapi.json").await;
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        let Some(params) = ops["get"]["parameters"].as_array() else {
            continue;
        };
        let Some(order_by) = params.iter().find(|p| p["name"] == "order_by") else {
            continue;
        };
        for field in order_by["schema"]["examples"].as_array().unwrap() {
            for dir in ["asc", "desc"] {
                let url = format!(
                    "{path}?order_by={}&order_by_direction={dir}&rows=5",
                    field.as_str().unwrap()
                );
                let (s, v) = send(
                    app.req(Method::GET, &url)
                        .header("Prefer", "handling=strict"),
                )
                .await;
                assert_eq!(s, StatusCode::OK, "{url}: {v}");
                checked += 1;
            }
        }
    }
    assert!(checked > 150, "only {checked} orderings tried");
}
