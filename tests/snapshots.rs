//! /api/snapshots/ (SARK's): taken, listed, downloaded, uploaded, restored into the running
//! server and deleted by admins only. A restore brings back exactly the snapshot's state —
//! through the API, on a Kamailio (a full load: the restored subscriber registers again, the
//! one made after the snapshot is refused) and for phones (the device cache is rebuilt) — and
//! is journalled; a wrong passphrase changes nothing.

mod common;
use common::kamailio::*;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

const PASS: &str = "snapshot passphrase 1";

async fn snapshots_restore_the_live_system(app: TestApp) {
    let f = app.fixture().await;
    let (_db, k, kam) = Kamailio::loaded_from(&app).await;
    let before = app
        .create(
            "/api/subscribers/",
            json!({"customer_id": f.customer_id, "domain": f.domain, "username": "kept", "password": "Ab-restored-77"}),
        )
        .await;

    // Admins only; a passphrase is required and must be long enough.
    let (_, rlogin, rpass) = app.reseller("snapres").await;
    let r = app
        .req_as(Method::GET, "/api/snapshots/", &rlogin, &rpass)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (s, v) = app.post("/api/snapshots/", json!({})).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("passphrase")),
        "{v}"
    );
    let (s, v) = app
        .post("/api/snapshots/", json!({"passphrase": "short"}))
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("passphrase")),
        "{v}"
    );

    let (s, snap) = app
        .post("/api/snapshots/", json!({"passphrase": PASS}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{snap}");
    let id = snap["id"].as_str().unwrap().to_string();

    // After the snapshot: one subscriber more, the kept one terminated.
    let after = app
        .create(
            "/api/subscribers/",
            json!({"customer_id": f.customer_id, "domain": f.domain, "username": "later", "password": "Cd-afterwards-88"}),
        )
        .await;
    let (s, _) = app.delete(&format!("/api/subscribers/{before}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    // A phone provisioned after the snapshot, fetching its configuration (so it is cached).
    let (_, _, phone_url) = app.yealink_phone(f.customer_id, "5a5a5a").await;
    let fetch = |url: String| {
        let c = app
            .client
            .get(app.url(&url))
            .header("User-Agent", "Yealink SIP-T46U 108.86.0.20");
        async move { c.send().await.unwrap().status() }
    };
    assert_eq!(fetch(phone_url.clone()).await, StatusCode::OK);
    assert!(k.register("later", &f.domain, "Cd-afterwards-88", true).ok);

    // Download, upload: the same snapshot comes back as a new one.
    let r = app
        .req(Method::GET, &format!("/api/snapshots/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let file = r.bytes().await.unwrap();
    assert!(file.starts_with(b"{\"format\":\"voxprov-backup\""));
    let r = app
        .req(Method::POST, "/api/snapshots/")
        .header("Content-Type", "application/octet-stream")
        .body(file.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let uploaded: serde_json::Value = r.json().await.unwrap();
    let up = uploaded["id"].as_str().unwrap().to_string();
    let r = app
        .req(Method::POST, "/api/snapshots/")
        .header("Content-Type", "application/octet-stream")
        .body("not a snapshot\n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::UNPROCESSABLE_ENTITY,
        "garbage is not kept"
    );
    let (_, list) = app.get("/api/snapshots/").await;
    assert_eq!(list["total_count"], 2, "{list}");

    // A wrong passphrase restores nothing.
    let (s, v) = app
        .put(
            &format!("/api/snapshots/{up}"),
            json!({"passphrase": "wrong passphrase 9"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = app.get(&format!("/api/subscribers/{after}")).await;
    assert_eq!(s, StatusCode::OK);

    // Restore (the uploaded copy): the state of the snapshot, everywhere.
    let (s, v) = app
        .put(&format!("/api/snapshots/{up}"), json!({"passphrase": PASS}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.get(&format!("/api/subscribers/{before}")).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("active")),
        "{v}"
    );
    let (s, _) = app.get(&format!("/api/subscribers/{after}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "made after the snapshot");
    // The phones' cache was rebuilt: the later phone is unknown again.
    assert_eq!(fetch(phone_url.clone()).await, StatusCode::NOT_FOUND);
    // The SIP server is loaded in full from the restored state.
    let mut clean = false;
    for _ in 0..300 {
        let (s, check) = app.get(&format!("/api/sipservers/{kam}/check")).await;
        if s == StatusCode::OK && differences(&check).is_empty() {
            clean = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(clean, "the Kamailio matches the restored state");
    let r = k.register("kept", &f.domain, "Ab-restored-77", true);
    assert!(r.ok, "the restored subscriber registers: {:?}", r.responses);
    let r = k.register("later", &f.domain, "Cd-afterwards-88", false);
    assert!(
        r.ok,
        "the one made after the snapshot is refused: {:?}",
        r.responses
    );
    // Journalled, by whom; ids go on above everything handed out before.
    let (_, j) = app.get("/api/journals/?resource=snapshots&rows=50").await;
    assert!(
        j["total_count"].as_i64().unwrap() >= 3,
        "take, upload, restore: {j}"
    );
    let newer = app
        .create(
            "/api/subscribers/",
            json!({"customer_id": f.customer_id, "domain": f.domain, "username": "newer", "password": "Ef-newest-99"}),
        )
        .await;
    assert!(newer > after, "ids are never reused: {newer} after {after}");

    let (s, _) = app.delete(&format!("/api/snapshots/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&format!("/api/snapshots/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.get("/api/snapshots/..%2Fsecret").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

both!(snapshots_restore_the_live_system);
