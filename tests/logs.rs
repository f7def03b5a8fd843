//! Logs for machines: `log_format = "json"` writes one JSON object per line, an access line per
//! request (client, actor, method, route template, status, duration, request id) with the
//! request id echoed in `X-Request-Id`, no colour codes in a file, no secret; an invalid log
//! filter stops the start.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_with_an_access_log_and_request_ids() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("VOXPROV_LOG_FORMAT", "json"), ("VOXPROV_LOG", "info")],
    )
    .await;
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "logalice", 5550123).await;
    let r = app
        .req(Method::GET, &format!("/api/subscribers/{sub}"))
        .header("X-Request-Id", "trace-42.a")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["x-request-id"], "trace-42.a");
    // One we would not echo is replaced by ours; none given, one is made.
    for given in [Some("not an id!"), None] {
        let mut rb = app.req(Method::GET, "/api/domains/");
        if let Some(g) = given {
            rb = rb.header("X-Request-Id", g);
        }
        let r = rb.send().await.unwrap();
        let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(Some(id.as_str()) != given && id.len() >= 12, "{id}");
    }
    // A wrong password is logged as a 401, and the password is not.
    let r = app
        .client
        .get(app.url("/api/domains/"))
        .basic_auth("administrator", Some("not-the-password-77"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(app.dir.join("server.log")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let access: Vec<&Value> = lines.iter().filter(|l| l["target"] == "access").collect();
    let mine = access
        .iter()
        .find(|l| l["request_id"] == "trace-42.a")
        .unwrap_or_else(|| panic!("no access line for the request: {log}"));
    assert_eq!(mine["method"], "GET");
    assert_eq!(mine["route"], "/api/subscribers/{id}");
    assert_eq!(mine["status"], 200);
    assert_eq!(mine["actor"], "administrator");
    assert_eq!(mine["client"], "127.0.0.1");
    assert!(mine["ms"].is_number());
    assert!(
        access
            .iter()
            .any(|l| l["status"] == 401 && l["actor"] == "-"),
        "the refused request is logged: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no colour codes in a file");
    for secret in ["sip-secret-1", "not-the-password-77", ADMIN_PASS] {
        assert!(!log.contains(secret), "{secret} in the log: {log}");
    }
}

#[test]
fn an_invalid_log_filter_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("vxlog-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxprov"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("VOXPROV_LOG", "voxprov=loud")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("log:") && err.contains("voxprov=loud"),
        "{err}"
    );
}
