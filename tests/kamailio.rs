//! A real Kamailio, started with the shipped configuration (deploy/kamailio/), enforces what
//! the API provisions: sipp registers and calls through it.

mod common;

use std::time::{Duration, Instant};

use common::kamailio::Kamailio;
use common::sipdb::{Engine, SipDb};
use common::{Backend, TestApp};
use reqwest::StatusCode;
use serde_json::json;

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits (15 s at most) until `user`'s contact on `port` is in Kamailio's location table.
async fn wait_registered(k: &Kamailio, db: &SipDb, user: &str, port: u16) {
    let start = Instant::now();
    while db.count(&format!(
        "SELECT COUNT(*) FROM location WHERE username = '{user}' AND contact LIKE '%:{port}%'"
    )) == 0
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{user} did not register: {}",
            tail(&k.log())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

macro_rules! expect_register {
    ($k:expr, $user:expr, $domain:expr, $pw:expr, $ok:expr, $why:expr) => {{
        let r = $k.register($user, $domain, $pw, $ok);
        assert!(
            r.ok,
            "{}: expected {}, sipp saw {:?}\n--- kamailio ---\n{}",
            $why,
            if $ok { "401 then 200" } else { "403" },
            r.responses,
            tail(&$k.log())
        );
    }};
}

async fn registration_follows_the_api(engine: Engine) {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    let db = Kamailio::create_db(engine, &app.dir);
    let k = Kamailio::start(&db, &app.dir).await;
    let id = app
        .sipserver(
            "kam",
            "kamailio",
            &db.url(),
            json!({ "rpc_url": k.rpc_url() }),
        )
        .await;
    // The full load wrote the domain and had Kamailio reload it.
    app.wait_synced(id).await;
    let d = f.domain.as_str();

    let sub = app
        .create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": d, "username": "alice", "password": "first-pass-1",
                    "primary_number": { "cc": 43, "ac": 1, "sn": 7770001 } }),
        )
        .await;
    // No sleep: the 201 came after the change was applied to Kamailio's tables.
    expect_register!(
        k,
        "alice",
        d,
        "first-pass-1",
        true,
        "created through the API"
    );
    expect_register!(k, "alice", d, "not-the-password", false, "wrong password");

    let path = format!("/api/subscribers/{sub}");
    let (_, mut v) = app.get(&path).await;
    v["password"] = json!("second-pass-2");
    let (s, _) = app.put(&path, v).await;
    assert_eq!(s, StatusCode::OK);
    expect_register!(
        k,
        "alice",
        d,
        "first-pass-1",
        false,
        "old password after PUT"
    );
    expect_register!(
        k,
        "alice",
        d,
        "second-pass-2",
        true,
        "new password after PUT"
    );

    let set = |field: &'static str, value: serde_json::Value| {
        let app = &app;
        let path = path.clone();
        async move {
            let (s, v) = app
                .patch(
                    &path,
                    json!([{ "op": "replace", "path": format!("/{field}"), "value": value }]),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    };
    set("status", json!("locked")).await;
    expect_register!(k, "alice", d, "second-pass-2", false, "subscriber locked");
    set("status", json!("active")).await;
    expect_register!(k, "alice", d, "second-pass-2", true, "subscriber unlocked");
    set("lock", json!(4)).await;
    expect_register!(
        k,
        "alice",
        d,
        "second-pass-2",
        false,
        "lock level 4 (global)"
    );
    set("lock", json!(0)).await;
    expect_register!(k, "alice", d, "second-pass-2", true, "lock level 0");

    let cpath = format!("/api/customers/{}", f.customer_id);
    let (s, _) = app
        .patch(
            &cpath,
            json!([{ "op": "replace", "path": "/status", "value": "locked" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    expect_register!(k, "alice", d, "second-pass-2", false, "customer locked");
    let (s, _) = app
        .patch(
            &cpath,
            json!([{ "op": "replace", "path": "/status", "value": "active" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    expect_register!(k, "alice", d, "second-pass-2", true, "customer unlocked");

    let (s, _) = app.delete(&path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    expect_register!(k, "alice", d, "second-pass-2", false, "subscriber deleted");
    let (code, out, _) = app.cli(&["sync", "check"]);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_follows_the_api_with_kamailio_on_sqlite() {
    registration_follows_the_api(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_follows_the_api_with_kamailio_on_mariadb() {
    registration_follows_the_api(Engine::Mysql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_to_an_alias_number_reaches_the_registered_subscriber() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = Kamailio::create_db(Engine::Sqlite, &app.dir);
    let k = Kamailio::start(&db, &app.dir).await;
    // Reloads over Kamailio's Unix datagram socket this time.
    let sock = k.dir.join("run/kamailio_rpc.sock");
    let id = app
        .sipserver(
            "kam",
            "kamailio",
            &db.url(),
            json!({ "rpc_url": sock.display().to_string() }),
        )
        .await;
    app.wait_synced(id).await;
    // The domain is created while Kamailio runs: it is delivered and reloaded on the spot.
    let f = app.fixture().await;
    let d = f.domain.as_str();
    let bob = app
        .create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": d, "username": "bob", "password": "Pw-8880001-b",
                    "primary_number": { "cc": 43, "ac": 1, "sn": 8880001 },
                    "alias_numbers": [{ "cc": 43, "ac": 1, "sn": 8880002 }] }),
        )
        .await;
    // Not registered yet: 480.
    let r = k.call("4318880002", d, Some(480));
    assert!(r.ok, "{:?}\n{}", r.responses, tail(&k.log()));

    let (mut callee, port) = k.callee("bob", d, "Pw-8880001-b");
    wait_registered(&k, &db, "bob", port).await;
    let r = k.call("4318880002", d, None);
    assert!(
        r.ok,
        "call to the alias: {:?}\n{}",
        r.responses,
        tail(&k.log())
    );
    assert!(
        r.responses.contains(&"200".to_string()),
        "{:?}",
        r.responses
    );
    let st = callee.wait().unwrap();
    assert!(st.success(), "the callee answered and saw the BYE");

    // An unknown number is not found; a released one neither.
    let r = k.call("4399999999", d, Some(404));
    assert!(r.ok, "{:?}", r.responses);
    let (s, _) = app.delete(&format!("/api/subscribers/{bob}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let r = k.call("4318880002", d, Some(404));
    assert!(r.ok, "after termination: {:?}", r.responses);
}

/// Forwards and barring set through the API are what Kamailio does: a CFU forwards the call
/// to the registered target; a caller on block_in_list gets 603, an anonymous one 433 with
/// block_in_clir; removing the forward stops it. The rows are also checked in usr_preferences.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_and_barring_set_through_the_api_are_enforced() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = Kamailio::create_db(Engine::Sqlite, &app.dir);
    let k = Kamailio::start(&db, &app.dir).await;
    let id = app
        .sipserver(
            "kam",
            "kamailio",
            &db.url(),
            json!({ "rpc_url": k.rpc_url() }),
        )
        .await;
    app.wait_synced(id).await;
    let f = app.fixture().await;
    let d = f.domain.as_str();
    let mk = |user: &'static str, sn: u64| {
        json!({ "customer_id": f.customer_id, "domain": d, "username": user, "password": format!("Pw-{sn}-sip"),
                "primary_number": { "cc": 43, "ac": 1, "sn": sn } })
    };
    let alice = app.create("/api/subscribers/", mk("alice", 7770001)).await;
    let bob = app.create("/api/subscribers/", mk("bob", 8880001)).await;

    // alice forwards everything to bob's number.
    let (s, v) = app
        .put(
            &format!("/api/callforwards/{alice}"),
            json!({ "cfu": { "destinations": [{ "destination": "+4318880001" }] } }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.wait_synced(id).await;
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM usr_preferences WHERE username = 'alice' AND attribute = 'cfu' AND value = 'sip:4318880001@{d}'"
        )),
        1
    );
    let (mut callee, port) = k.callee("bob", d, "Pw-8880001-sip");
    wait_registered(&k, &db, "bob", port).await;
    let r = k.call("4317770001", d, None);
    assert!(
        r.ok,
        "call to alice, forwarded to bob: {:?}\n{}",
        r.responses,
        tail(&k.log())
    );
    assert!(
        callee.wait().unwrap().success(),
        "bob answered the forwarded call"
    );

    // bob bars one number and a prefix, and anonymous callers.
    let (s, v) = app
        .put(
            &format!("/api/subscriberpreferences/{bob}"),
            json!({ "block_in_list": ["4366412345", "+4399*"], "block_in_clir": true }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.wait_synced(id).await;
    for (caller, code) in [("4366412345", 603), ("+4399123", 603), ("anonymous", 433)] {
        let r = k.call_from(caller, "4318880001", d, Some(code));
        assert!(
            r.ok,
            "{caller} → bob: expected {code}, got {:?}\n{}",
            r.responses,
            tail(&k.log())
        );
    }
    // Anyone else gets through to bob (not registered any more: 480).
    let r = k.call_from("4366400000", "4318880001", d, Some(480));
    assert!(
        r.ok,
        "an unlisted caller: {:?}\n{}",
        r.responses,
        tail(&k.log())
    );

    // Without the forward, alice's number is alice's again (not registered: 480).
    let (s, _) = app.delete(&format!("/api/callforwards/{alice}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    app.wait_synced(id).await;
    assert_eq!(
        db.count("SELECT COUNT(*) FROM usr_preferences WHERE username = 'alice'"),
        0
    );
    let r = k.call("4317770001", d, Some(480));
    assert!(
        r.ok,
        "after the forward is removed: {:?}\n{}",
        r.responses,
        tail(&k.log())
    );
    // Lifting the barring lets the listed number through.
    let (s, _) = app
        .put(&format!("/api/subscriberpreferences/{bob}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    app.wait_synced(id).await;
    let r = k.call_from("4366412345", "4318880001", d, Some(480));
    assert!(
        r.ok,
        "after the barring is lifted: {:?}\n{}",
        r.responses,
        tail(&k.log())
    );
}

/// POST /api/pbxdevices/<id>/resync: Kamailio looks the phone's account up in its location
/// table and sends the registered contact a NOTIFY with Event: check-sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_sends_a_check_sync_notify_to_the_registered_phone() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = Kamailio::create_db(Engine::Sqlite, &app.dir);
    let k = Kamailio::start(&db, &app.dir).await;
    let id = app
        .sipserver(
            "kam",
            "kamailio",
            &db.url(),
            json!({ "rpc_url": k.rpc_url() }),
        )
        .await;
    app.wait_synced(id).await;
    let f = app.fixture().await;
    let d = f.domain.as_str();
    let carol = app
        .create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": d, "username": "carol", "password": "Pw-resync-c9" }),
        )
        .await;
    let (_, models) = app
        .get("/api/pbxdevicemodels/?vendor=yealink&model=T46U")
        .await;
    let model = common::items(&models, "pbxdevicemodels")[0]["id"]
        .as_i64()
        .unwrap();
    let dev = app
        .create(
            "/api/pbxdevices/",
            json!({ "identifier": "805ec0000123", "customer_id": f.customer_id, "model_id": model,
                    "lines": [{ "subscriber_id": carol, "type": "private" }] }),
        )
        .await;
    // Not registered: nothing to notify, and the answer says so.
    let (s, v) = app
        .post(&format!("/api/pbxdevices/{dev}/resync"), json!({}))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");

    let (mut phone, port) = k.phone_awaiting_resync("carol", d, "Pw-resync-c9");
    wait_registered(&k, &db, "carol", port).await;
    let (s, v) = app
        .post(&format!("/api/pbxdevices/{dev}/resync"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}\n{}", tail(&k.log()));
    assert!(
        v["notified"][0]["contact"]
            .as_str()
            .unwrap()
            .contains(&format!(":{port}")),
        "{v}"
    );
    let st = phone.wait().unwrap();
    assert!(
        st.success(),
        "the phone got the check-sync NOTIFY\n{}",
        tail(&k.log())
    );
}

/// A locked customer's subscriber is unreachable at once, on its number and its URI, although
/// its phone registered before: voxprov removes the registration (`ul.rm`), and the shipped
/// configuration refuses users it does not provision even where nobody removed it (a server
/// without `rpc_url`). Unlocked and registered again, it is reached again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_subscriber_gets_no_calls_on_a_contact_registered_before() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = Kamailio::create_db(Engine::Sqlite, &app.dir);
    let k = Kamailio::start(&db, &app.dir).await;
    let id = app
        .sipserver(
            "kam",
            "kamailio",
            &db.url(),
            json!({ "rpc_url": k.rpc_url() }),
        )
        .await;
    app.wait_synced(id).await;
    let f = app.fixture().await;
    let d = f.domain.as_str();
    let bob = app
        .create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": d, "username": "bob", "password": "Locked-pw-71",
                    "primary_number": { "cc": 43, "ac": 1, "sn": 8880101 } }),
        )
        .await;
    let set_customer = |status: &'static str| {
        let app = &app;
        async move {
            let (s, v) = app
                .patch(
                    &format!("/api/customers/{}", f.customer_id),
                    json!([{ "op": "replace", "path": "/status", "value": status }]),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
        }
    };

    let (mut callee, port) = k.callee("bob", d, "Locked-pw-71");
    wait_registered(&k, &db, "bob", port).await;
    set_customer("locked").await;
    // The registration is gone from Kamailio (its location table follows, write-through).
    let registered = |db: &SipDb| db.count("SELECT COUNT(*) FROM location WHERE username = 'bob'");
    let start = Instant::now();
    while registered(&db) > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "ul.rm did not remove bob"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for target in ["bob", "4318880101"] {
        let r = k.call(target, d, Some(404));
        assert!(
            r.ok,
            "locked, call to {target}: {:?}\n{}",
            r.responses,
            tail(&k.log())
        );
    }
    let _ = callee.kill();
    let _ = callee.wait();

    set_customer("active").await;
    let (mut callee, port) = k.callee("bob", d, "Locked-pw-71");
    wait_registered(&k, &db, "bob", port).await;
    let r = k.call("4318880101", d, None);
    assert!(r.ok, "unlocked: {:?}\n{}", r.responses, tail(&k.log()));
    assert!(callee.wait().unwrap().success(), "bob answered");

    // Without RPC nobody removes the registration: the configuration still refuses him.
    let (s, v) = app
        .patch(
            &format!("/api/sipservers/{id}"),
            json!([{ "op": "replace", "path": "/rpc_url", "value": null }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.wait_synced(id).await;
    let (mut callee, port) = k.callee("bob", d, "Locked-pw-71");
    wait_registered(&k, &db, "bob", port).await;
    let (s, _) = app
        .patch(
            &format!("/api/subscribers/{bob}"),
            json!([{ "op": "replace", "path": "/status", "value": "locked" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(registered(&db) > 0, "the registration stays without RPC");
    for target in ["bob", "4318880101"] {
        let r = k.call(target, d, Some(404));
        assert!(
            r.ok,
            "locked without RPC, call to {target}: {:?}",
            r.responses
        );
    }
    let _ = callee.kill();
    let _ = callee.wait();
}
