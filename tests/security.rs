//! What outside probes found, each closed and kept closed: API keys that outlived their
//! admin's rights, templates that could stall the server, control characters that reached the
//! database, a second server on one SQLite database, secrets in world-readable files, weak SIP
//! passwords, documented filters that were dropped, and command-line changes the running
//! server did not see.

mod common;
use common::receiver::{Receiver, Reply};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

async fn with_key(app: &TestApp, method: Method, path: &str, key: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .header("Authorization", format!("Bearer {key}"))
}

async fn key_get(app: &TestApp, path: &str, key: &str) -> (StatusCode, Value) {
    send(with_key(app, Method::GET, path, key).await).await
}

async fn key_send(
    app: &TestApp,
    method: Method,
    path: &str,
    key: &str,
    body: Value,
) -> (StatusCode, Value) {
    let ct = if method == Method::PATCH {
        "application/json-patch+json"
    } else {
        "application/json"
    };
    send(
        with_key(app, method, path, key)
            .await
            .header("Content-Type", ct)
            .body(body.to_string()),
    )
    .await
}

/// Creates an admin and, with its own Basic credentials, an API key; returns (admin id, key).
async fn admin_with_key(app: &TestApp, login: &str, body: Value) -> (i64, String) {
    let mut b = body;
    b["login"] = json!(login);
    b["password"] = json!("holder-pass-1");
    let admin = app.create("/api/admins/", b).await;
    let (s, v) = send(
        app.req_as(Method::POST, "/api/apikeys/", login, "holder-pass-1")
            .json(&json!({ "name": format!("{login}-key") })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (admin, v["secret"].as_str().unwrap().to_string())
}

async fn set_admin(app: &TestApp, id: i64, ops: Value) {
    let (s, v) = app.patch(&format!("/api/admins/{id}"), ops).await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

both!(api_keys_never_have_more_rights_than_their_admin_has_now);

async fn api_keys_never_have_more_rights_than_their_admin_has_now(app: TestApp) {
    let (a, _, _) = app.reseller("keys_a").await;
    let (b, _, _) = app.reseller("keys_b").await;
    let contact_in = |r: i64| json!({ "reseller_id": r, "email": "k@example.com" });

    // A reseller admin's key writes in its reseller.
    let (holder, key) = admin_with_key(
        &app,
        "holder",
        json!({ "role": "reseller", "reseller_id": a }),
    )
    .await;
    let (s, v) = key_send(
        &app,
        Method::POST,
        "/api/customercontacts/",
        &key,
        contact_in(a),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let a_contact = app.create("/api/customercontacts/", contact_in(a)).await;

    // Made read-only: the old key no longer writes, nor can it clear the flag.
    set_admin(
        &app,
        holder,
        json!([{ "op": "replace", "path": "/read_only", "value": true }]),
    )
    .await;
    let (s, _) = key_send(
        &app,
        Method::POST,
        "/api/customercontacts/",
        &key,
        contact_in(a),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a read-only admin's key wrote");
    let (s, _) = key_send(
        &app,
        Method::PATCH,
        &format!("/api/admins/{holder}"),
        &key,
        json!([{ "op": "replace", "path": "/read_only", "value": false }]),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "the key cleared its admin's read_only"
    );
    let (_, v) = app.get(&format!("/api/admins/{holder}")).await;
    assert_eq!(v["read_only"], true);
    set_admin(
        &app,
        holder,
        json!([{ "op": "replace", "path": "/read_only", "value": false }]),
    )
    .await;

    // Writable again, the key still may not change its own admin's flags.
    let (s, v) = key_send(
        &app,
        Method::PATCH,
        &format!("/api/admins/{holder}"),
        &key,
        json!([{ "op": "replace", "path": "/read_only", "value": true }]),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");

    // Moved to reseller B: the key made for A reaches neither A's objects nor B's.
    set_admin(
        &app,
        holder,
        json!([{ "op": "replace", "path": "/reseller_id", "value": b }]),
    )
    .await;
    let (s, _) = key_get(&app, &format!("/api/customercontacts/{a_contact}"), &key).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a moved admin's old key read A's contact"
    );
    let (s, _) = key_send(
        &app,
        Method::POST,
        "/api/customercontacts/",
        &key,
        contact_in(a),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = key_send(
        &app,
        Method::POST,
        "/api/customercontacts/",
        &key,
        contact_in(b),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // A superuser's key, its admin demoted to reseller A: reseller rights only, within A.
    let (boss, boss_key) = admin_with_key(&app, "boss", json!({ "role": "admin" })).await;
    let (s, _) = key_get(&app, "/api/sipservers/", &boss_key).await;
    assert_eq!(s, StatusCode::OK);
    let b_contact = app.create("/api/customercontacts/", contact_in(b)).await;
    set_admin(
        &app,
        boss,
        json!([{ "op": "replace", "path": "/role", "value": "reseller" },
               { "op": "replace", "path": "/reseller_id", "value": a }]),
    )
    .await;
    let (s, _) = key_get(&app, "/api/sipservers/", &boss_key).await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a demoted superuser's key kept admin rights"
    );
    let (s, _) = key_get(
        &app,
        &format!("/api/customercontacts/{b_contact}"),
        &boss_key,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another reseller's object does not exist for it"
    );
    let (s, _) = key_get(
        &app,
        &format!("/api/customercontacts/{a_contact}"),
        &boss_key,
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Deactivated: the key stops at once.
    set_admin(
        &app,
        boss,
        json!([{ "op": "replace", "path": "/is_active", "value": false }]),
    )
    .await;
    let (s, _) = key_get(
        &app,
        &format!("/api/customercontacts/{a_contact}"),
        &boss_key,
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Hooks reach 127.0.0.1 here.
const HOOK_ENV: &[(&str, &str)] = &[("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true")];

both!(
    templates_past_their_limits_are_refused_when_saved,
    super::HOOK_ENV
);

async fn templates_past_their_limits_are_refused_when_saved(app: TestApp) {
    let (_, login, pass) = app.reseller("tpl").await;
    let hook = |t: &str| {
        json!({ "name": "bad", "events": ["subscriber.created"], "url": "http://127.0.0.1:9/x",
                "body_template": t })
    };
    let as_reseller = |body: Value| {
        send(
            app.req_as(Method::POST, "/api/hooks/", &login, &pass)
                .json(&body),
        )
    };
    let cases = [
        (
            "memory: a string doubled forty times",
            r#"{% set ns = namespace(s="x") %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}"#,
            "memory",
        ),
        (
            // One allocation of twice the workers' limit, well within the instruction budget
            // and the engine's own cap on repeated strings: only the memory limit stops it.
            "memory: one string of 64 MiB",
            r#"{{ ("x" * 67108864)|length }}"#,
            "memory",
        ),
        (
            "instructions: two nested loops",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "instruction budget",
        ),
        (
            "output: a megabyte of x",
            r#"{% for i in range(2000) %}{{ "x" * 1000 }}{% endfor %}"#,
            "output exceeds",
        ),
    ];
    for (what, t, says) in cases {
        let started = Instant::now();
        let (s, v) = as_reseller(hook(t)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {v}");
        assert_eq!(v["field"], "body_template", "{what}: {v}");
        assert!(
            v["message"].as_str().unwrap_or("").contains(says),
            "{what}: {v}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} took {:?}",
            started.elapsed()
        );
        // The server is up and answers others.
        let (s, _) = app.get("/api/domains/").await;
        assert_eq!(s, StatusCode::OK, "after {what}");
    }
    let (s, v) = as_reseller(hook(r#"{"user": "{{ subscriber.username }}"}"#)).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // Phone templates: output past the limit is refused as content.
    let (s, v) = app
        .post(
            "/api/pbxdevicetemplates/",
            json!({ "name": "yealink/device.cfg",
                    "content": r#"{% for i in range(5000) %}{{ "x" * 1000 }}{% endfor %}"# }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "content");
    assert!(
        v["message"].as_str().unwrap().contains("output exceeds"),
        "{v}"
    );
}

both!(
    a_template_that_fails_at_delivery_fails_that_execution_once,
    super::HOOK_ENV
);

async fn a_template_that_fails_at_delivery_fails_that_execution_once(app: TestApp) {
    let r = Receiver::start().await;
    r.set("/h", vec![Reply::ok("{}")]);
    let f = app.fixture().await;
    // The sample the trial render sees has no username; a real subscriber has one.
    let (s, v) = app
        .post(
            "/api/hooks/",
            json!({ "name": "late", "events": ["subscriber.created"], "url": r.url("/h"),
                    "body_template": "{% if subscriber.username %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}ok" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let hook = v["id"].as_i64().unwrap();
    app.subscriber(&f, "latebob", 5550001).await;
    let start = Instant::now();
    let ex = loop {
        let (_, v) = app
            .get(&format!("/api/hookexecutions/?hook_id={hook}"))
            .await;
        let ex = items(&v, "hookexecutions");
        if !ex.is_empty() {
            break ex;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no execution logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ex[0]["outcome"], "error", "{}", ex[0]);
    assert!(
        ex[0]["error"]
            .as_str()
            .unwrap()
            .contains("instruction budget"),
        "{}",
        ex[0]
    );
    // Not retried: the same payload would fail the same way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, v) = app
        .get(&format!("/api/hookexecutions/?hook_id={hook}"))
        .await;
    assert_eq!(items(&v, "hookexecutions").len(), 1);
    assert_eq!(items(&v, "hookexecutions")[0]["delivery_status"], "failed");
    assert!(r.hits("/h").is_empty(), "nothing was sent");
}

both!(control_characters_are_refused_at_the_edge_naming_the_input);

async fn control_characters_are_refused_at_the_edge_naming_the_input(app: TestApp) {
    for q in [
        "/api/domains/?domain=a%00b",
        "/api/customercontacts/?email=x%00",
        "/api/subscribers/?username=%00",
        "/api/hooks/?name=a%00",
        "/api/pbxdevicemodels/?vendor=y%00",
        "/api/journals/?since=%00",
        "/api/subscribers/?username=a%0Ab",
    ] {
        let (s, v) = app.get(q).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
        let name = q.split('?').nth(1).unwrap().split('=').next().unwrap();
        assert!(v["message"].as_str().unwrap().starts_with(name), "{q}: {v}");
    }
    let (s, _) = app.get("/api/domains/%00").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = app
        .post(
            "/api/hooks/",
            json!({ "name": "n", "events": ["*"], "url": "http://127.0.0.1:9/", "body_template": "a\u{0}b" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "body_template");
    let (s, v) = app
        .post(
            "/api/customercontacts/",
            json!({ "reseller_id": 1, "email": "n@example.com", "firstname": "a\u{0}" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "firstname");
    let f = app.fixture().await;
    let csv = format!(
        "customer_id,domain,username,password\n{},{},ok1,nul-pass-\u{0}x\n",
        f.customer_id, f.domain
    );
    let (s, v) = send(
        app.req(Method::POST, "/api/subscribers/")
            .header("Content-Type", "text/csv")
            .body(csv),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["rows"][0]["field"], "password", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_the_same_sqlite_database_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxprov"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&app.dir)
        .args(["--database-url", &app.db_url])
        .env("VOXPROV_LOG", "warn")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another voxprov server"), "{err}");
    assert!(err.contains("PostgreSQL"), "{err}");
    // The first one is untouched.
    let (s, _) = app.get("/api/domains/").await;
    assert_eq!(s, StatusCode::OK);
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_hold_secrets_are_the_owners_only() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    app.create(
        "/api/subscribers/",
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "filed",
                "password": "plain-secret-77" }),
    )
    .await;
    assert_eq!(mode(&app.dir), 0o700, "data directory");
    for f in ["voxprov.db", "voxprov.db-wal", "secret.key"] {
        assert_eq!(mode(&app.dir.join(f)), 0o600, "{f}");
    }
    let out = app.dir.join("export.csv");
    let (code, _, err) = app.cli(&["export", "subscribers", "--output", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&out), 0o600);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("filed") && !text.contains("plain-secret-77"),
        "{text}"
    );
    let (code, _, err) = app.cli(&[
        "export",
        "subscribers",
        "--with-passwords",
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(mode(&out), 0o600);
    assert!(std::fs::read_to_string(&out)
        .unwrap()
        .contains("plain-secret-77"));
}

both!(sip_passwords_follow_the_policy_everywhere);

async fn sip_passwords_follow_the_policy_everywhere(app: TestApp) {
    let f = app.fixture().await;
    let body = |user: &str, pw: &str| json!({ "customer_id": f.customer_id, "domain": f.domain, "username": user, "password": pw });
    for (pw, says) in [
        ("1", "at least 8 characters"),
        ("xx-carol-xx", "must not contain the username"),
        ("12345678901", "digits only"),
    ] {
        let (s, v) = app.post("/api/subscribers/", body("carol", pw)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{pw}: {v}");
        assert_eq!(v["field"], "password");
        assert!(v["message"].as_str().unwrap().contains(says), "{pw}: {v}");
    }
    let (s, v) = app
        .post("/api/subscribers/", body("carol", "123456789012"))
        .await;
    assert_eq!(s, StatusCode::CREATED, "twelve digits pass: {v}");
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{}", v["id"]),
            json!([{ "op": "replace", "path": "/password", "value": "carol" }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");

    // Bulk over HTTP and the command line: the same rule, at its line.
    let csv = format!(
        "customer_id,domain,username,password\n{c},{d},dave,good-pass-99\n{c},{d},erin,short\n",
        c = f.customer_id,
        d = f.domain
    );
    let (s, v) = send(
        app.req(Method::POST, "/api/subscribers/?mode=per-row")
            .header("Content-Type", "text/csv")
            .body(csv.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["rows"][1]["field"], "password", "{v}");
    let file = app.dir.join("weak.csv");
    std::fs::write(&file, csv.replace("dave", "dave2")).unwrap();
    let (code, _, err) = app.cli(&["import", "subscribers", file.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("line 3: password: must be at least 8"),
        "{err}"
    );
}

both!(
    subscribers_get_generated_passwords_when_the_operator_asks,
    &[("VOXPROV_PASSWORD_POLICY_GENERATE", "true")]
);

async fn subscribers_get_generated_passwords_when_the_operator_asks(app: TestApp) {
    let f = app.fixture().await;
    let (_, login, pass) = app.reseller("gen").await;
    let _ = (login, pass);
    let (s, v) = app
        .post(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "gena" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let pw = v["password"].as_str().unwrap();
    assert!(pw.len() >= 20, "{pw}");
    let (_, again) = app.get(&format!("/api/subscribers/{}", v["id"])).await;
    assert_eq!(again["password"], pw, "admins see the generated password");
    // A bulk import tells each created row's password once, as a single creation does; a dry
    // run, which saves nothing, tells none.
    let rows = json!([
        { "customer_id": f.customer_id, "domain": f.domain, "username": "genb" },
        { "customer_id": f.customer_id, "domain": f.domain, "username": "genc", "password": "own-pass-4567" }
    ]);
    let (s, v) = app
        .post("/api/subscribers/?dry_run=true", rows.clone())
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["rows"][0].get("password").is_none(), "{v}");
    let (s, v) = app.post("/api/subscribers/", rows).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let pw = v["rows"][0]["password"].as_str().unwrap();
    assert!(pw.len() >= 20, "{pw}");
    assert!(
        v["rows"][1].get("password").is_none(),
        "only generated ones: {v}"
    );
    let (_, again) = app
        .get(&format!("/api/subscribers/{}", v["rows"][0]["id"]))
        .await;
    assert_eq!(again["password"], pw);
}

/// For each filter the OpenAPI document lists, a value that matches nothing.
fn no_match(collection: &str, filter: &str) -> String {
    match (collection, filter) {
        (_, "since") => "2999-01-01 00:00:00".into(),
        (_, "until") => "1970-01-01 00:00:00".into(),
        ("hooks", "status") => "archived".into(),
        ("hookexecutions", "status") => "vetoed".into(),
        (_, "status") => "terminated".into(),
        (_, "phase") => "before".into(),
        (_, "kind") => "script".into(),
        ("numbers", "type") => "alias".into(),
        ("pbxextensions", "type") => "mailbox".into(),
        ("pbxdevicemodels", "type") => "extension".into(),
        ("contracts", "type") => "sippeering".into(),
        (_, "driver") => "opensips".into(),
        (_, "role") => "proxy".into(),
        (_, "operation") => "repair".into(),
        (_, "fetched") => "true".into(),
        (_, "uuid") => "00000000-0000-4000-8000-000000000000".into(),
        (_, "cc" | "ac" | "sn" | "alias" | "primary_number") => "999".into(),
        (_, f) if f.ends_with("_id") => "999999".into(),
        _ => "zz-no-match".into(),
    }
}

both!(every_documented_filter_narrows_its_listing, super::HOOK_ENV);

async fn every_documented_filter_narrows_its_listing(app: TestApp) {
    // At least one object in every collection.
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "filtered", 4440001).await;
    app.create("/api/systemcontacts/", json!({ "email": "s@example.com" }))
        .await;
    app.create("/api/apikeys/", json!({ "name": "k" })).await;
    app.create(
        "/api/cfdestinationsets/",
        json!({ "subscriber_id": sub, "name": "ds", "destinations": [{ "destination": "+4311111" }] }),
    )
    .await;
    app.create(
        "/api/cftimesets/",
        json!({ "subscriber_id": sub, "name": "ts", "times": [{ "wday": "2-6" }] }),
    )
    .await;
    app.create(
        "/api/hooks/",
        json!({ "name": "h", "events": ["domain.created"], "url": "http://127.0.0.1:9/" }),
    )
    .await;
    app.create(
        "/api/domains/",
        json!({ "domain": "filters.example.com", "reseller_id": 1 }),
    )
    .await;
    app.sipserver("s", "kamailio", "sqlite:////nonexistent/k.db", json!({}))
        .await;
    let sc = app
        .create(
            "/api/systemcontacts/",
            json!({ "email": "contract@example.com" }),
        )
        .await;
    app.create(
        "/api/contracts/",
        json!({ "contact_id": sc, "type": "reseller", "status": "active" }),
    )
    .await;
    let set = app
        .create(
            "/api/subscriberprofilesets/",
            json!({ "reseller_id": 1, "name": "ps" }),
        )
        .await;
    app.create(
        "/api/subscriberprofiles/",
        json!({ "profile_set_id": set, "name": "pp" }),
    )
    .await;
    let sounds = app
        .create("/api/soundsets/", json!({ "reseller_id": 1, "name": "ss" }))
        .await;
    let r = app
        .req(
            Method::POST,
            &format!("/api/soundfiles/?set_id={sounds}&handle=music_on_hold"),
        )
        .header("Content-Type", "audio/x-wav")
        .body(wav(1, 8000, 800))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let profile = app
        .create(
            "/api/pbxdeviceprofiles/",
            json!({ "reseller_id": 1, "name": "p" }),
        )
        .await;
    let _ = profile;
    app.create(
        "/api/pbxdevicetemplates/",
        json!({ "name": "yealink/device.cfg", "content": "x" }),
    )
    .await;
    let (_, models) = app.get("/api/pbxdevicemodels/?rows=1000").await;
    let models = items(&models, "pbxdevicemodels");
    let phone = models.iter().find(|m| m["type"] == "phone").unwrap()["id"].clone();
    for m in models.iter().filter(|m| m["type"] != "phone") {
        app.delete(&format!("/api/pbxdevicemodels/{}", m["id"]))
            .await;
    }
    app.create(
        "/api/pbxdevices/",
        json!({ "identifier": "001565aabbcc", "customer_id": f.customer_id, "model_id": phone }),
    )
    .await;
    // Carriers and routing (the contract is of type reseller: a sippeering one would match
    // the contracts' type filter below).
    let ct = app.contract("reseller").await;
    let pg = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": ct, "name": "carrier" }),
        )
        .await;
    app.create(
        "/api/peeringservers/",
        json!({ "group_id": pg, "name": "gw", "ip": "192.0.2.9" }),
    )
    .await;
    app.create(
        "/api/peeringrules/",
        json!({ "group_id": pg, "callee_prefix": "49" }),
    )
    .await;
    app.create(
        "/api/peeringinboundrules/",
        json!({ "group_id": pg, "field": "from_user", "pattern": "^[0-9]+$" }),
    )
    .await;
    let rs = app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "rs" }),
        )
        .await;
    app.create(
        "/api/rewriterules/",
        json!({ "set_id": rs, "direction": "in", "field": "callee", "match_pattern": "^0", "replace_pattern": "49" }),
    )
    .await;
    let nl = app
        .create(
            "/api/ncoslevels/",
            json!({ "reseller_id": 1, "level": "l" }),
        )
        .await;
    app.create(
        "/api/ncospatterns/",
        json!({ "ncos_level_id": nl, "pattern": "0900" }),
    )
    .await;
    // A PBX tenant with one of everything (call records come from a SIP server's accounting:
    // their filters are checked in tests/pbx_sip.rs, calls_become_call_records).
    let pbx_customer = app
        .create(
            "/api/customers/",
            json!({ "contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id, "type": "pbxaccount", "status": "active" }),
        )
        .await;
    let tenant = app
        .create(
            "/api/pbxtenants/",
            json!({ "customer_id": pbx_customer, "name": "t", "description": "T", "domain": f.domain }),
        )
        .await;
    app.create(
        "/api/pbxextensions/",
        json!({ "tenant_id": tenant, "extension": "201", "type": "unprovisioned", "password": "ext-pass-filters" }),
    )
    .await;
    app.create(
        "/api/pbxringgroups/",
        json!({ "tenant_id": tenant, "number": "400", "out": "201", "outcome": "201" }),
    )
    .await;
    app.create("/api/pbxdaytimers/", json!({ "tenant_id": tenant }))
        .await;
    app.create(
        "/api/pbxholidaytimers/",
        json!({ "tenant_id": tenant, "stime": 1798761600, "etime": 1798848000 }),
    )
    .await;
    app.create(
        "/api/pbxinboundroutes/",
        json!({ "tenant_id": tenant, "number": "4930111", "carrier": "CLID", "openroute": "201" }),
    )
    .await;
    // A failed delivery to the closed port leaves an execution.
    let start = Instant::now();
    loop {
        let (_, v) = app.get("/api/hookexecutions/").await;
        if v["total_count"].as_i64().unwrap_or(0) > 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no hook execution"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (_, spec) = app.get("/api/openapi.json").await;
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        let Some(get) = ops.get("get") else { continue };
        let Some(coll) = path
            .strip_prefix("/api/")
            .and_then(|p| p.strip_suffix('/'))
            .filter(|p| !p.contains('/'))
        else {
            continue;
        };
        let name = coll.to_string();
        if name == "cdrs" {
            continue;
        }
        let params = get["parameters"].as_array().into_iter().flatten();
        if !params.clone().any(|p| p["name"] == "page") {
            continue; // a catalog (the preference definitions), not a paged listing
        }
        let (s, all) = app.get(&format!("{path}?rows=1")).await;
        assert_eq!(s, StatusCode::OK, "{path}: {all}");
        assert!(
            all["total_count"].as_i64().unwrap_or(0) > 0,
            "{path} lists nothing: the check below could not fail"
        );
        for p in get["parameters"].as_array().into_iter().flatten() {
            let filter = p["name"].as_str().unwrap();
            if p["in"] != "query"
                || matches!(
                    filter,
                    "page" | "rows" | "order_by" | "order_by_direction" | "no_count" | "after_id"
                )
            {
                continue;
            }
            let value = no_match(&name, filter);
            let url = format!("{path}?{filter}={}", value.replace(' ', "%20"));
            let (s, v) = app.get(&url).await;
            assert_eq!(s, StatusCode::OK, "{url}: {v}");
            assert_eq!(
                v["total_count"], 0,
                "{url} matched: the filter is not applied"
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "only {checked} filters checked");
}

both!(command_line_changes_to_admins_take_effect_at_once_and_are_journalled);

async fn command_line_changes_to_admins_take_effect_at_once_and_are_journalled(app: TestApp) {
    let run = |args: &[&str], stdin: &str| {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_voxprov"));
        c.args(args)
            .arg("--data-dir")
            .arg(&app.dir)
            .args(["--database-url", &app.db_url])
            .env("VOXPROV_LOG", "warn")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = c.spawn().unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&["admin", "create", "ops"], "ops-pass-one\n");
    assert_eq!(code, 0, "{err}");
    let get_as = |pass: &'static str| send(app.req_as(Method::GET, "/api/domains/", "ops", pass));
    assert_eq!(get_as("ops-pass-one").await.0, StatusCode::OK);

    let (code, err) = run(&["admin", "passwd", "ops"], "ops-pass-two\n");
    assert_eq!(code, 0, "{err}");
    // At once: no cached credential outlives the change.
    assert_eq!(get_as("ops-pass-one").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get_as("ops-pass-two").await.0, StatusCode::OK);

    let (_, j) = app.get("/api/journals/?resource=admins").await;
    let ops: Vec<(String, String)> = items(&j, "journals")
        .iter()
        .map(|e| {
            (
                e["operation"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        ops.contains(&("create".into(), "cli: admin create".into())),
        "{ops:?}"
    );
    assert!(
        ops.contains(&("update".into(), "cli: admin passwd".into())),
        "{ops:?}"
    );

    // Errors say what is wrong, never the database's own words.
    let mut errors = Vec::new();
    let (code, err) = run(&["admin", "create", "ops"], "ops-pass-three\n");
    assert_ne!(code, 0);
    assert!(err.contains("login: already exists"), "{err}");
    errors.push(err);
    let (code, err) = run(
        &[
            "admin",
            "create",
            "rr",
            "--role",
            "reseller",
            "--reseller-id",
            "999",
        ],
        "rr-pass-12345\n",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("reseller_id: Invalid 'reseller_id': reseller 999 does not exist"),
        "{err}"
    );
    errors.push(err);
    let (code, err) = run(&["admin", "passwd", "ops"], "short\n");
    assert_ne!(code, 0);
    assert!(err.contains("password: must be 8"), "{err}");
    errors.push(err);
    for e in &errors {
        assert!(!e.to_lowercase().contains("constraint"), "{e}");
    }
}

both!(
    a_hook_whose_template_keeps_failing_is_disabled,
    &[
        ("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true"),
        ("VOXPROV_HOOKS_DISABLE_AFTER_TEMPLATE_FAILURES", "3")
    ]
);

async fn a_hook_whose_template_keeps_failing_is_disabled(app: TestApp) {
    let f = app.fixture().await;
    let (s, v) = app
        .post(
            "/api/hooks/",
            json!({ "name": "doomed", "events": ["subscriber.created"], "url": "http://127.0.0.1:9/",
                    "body_template": "{% if subscriber.username %}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}{% endif %}" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let hook = v["id"].as_i64().unwrap();
    for i in 0..5 {
        app.subscriber(&f, &format!("doomed{i}"), 5560000 + i).await;
    }
    let start = Instant::now();
    loop {
        let (_, v) = app.get(&format!("/api/hooks/{hook}")).await;
        if v["status"] == "disabled" {
            let why = v["disabled_reason"].as_str().unwrap();
            assert!(
                why.contains("3 deliveries in a row failed in the body template"),
                "{why}"
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not disabled: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
