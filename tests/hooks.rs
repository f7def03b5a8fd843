//! Event hooks against a real local HTTP receiver and real executables: before-hooks veto,
//! modify, time out and run in priority order; after-hooks are signed (checked by an
//! independent implementation), retried, disabled, redelivered, scoped to their reseller, and
//! none is lost to a SIGKILL.

mod common;
use common::receiver::{verify_with_python, Receiver, Reply};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

/// Hooks may call 127.0.0.1 here; failed deliveries are retried after a second.
const ENV: &[(&str, &str)] = &[
    ("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true"),
    ("VOXPROV_HOOKS_RETRY_SCHEDULE", "[1, 1, 1, 1, 1, 1, 1, 1]"),
];

async fn spawn(backend: Backend) -> TestApp {
    TestApp::spawn_with(backend, ENV).await
}

/// Creates a hook; returns (id, signing secret).
async fn hook(app: &TestApp, body: Value) -> (i64, String) {
    let (s, v) = app.post("/api/hooks/", body.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "POST /api/hooks/ {body}: {v}");
    let secret = v["secret"].as_str().unwrap().to_string();
    (v["id"].as_i64().unwrap(), secret)
}

async fn executions(app: &TestApp, query: &str) -> Vec<Value> {
    let (s, v) = app
        .get(&format!("/api/hookexecutions/?rows=1000&{query}"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    items(&v, "hookexecutions")
}

/// Waits until the hook has no pending deliveries.
async fn wait_drained(app: &TestApp, hook: i64, secs: u64) -> Value {
    let start = Instant::now();
    loop {
        let (_, v) = app.get(&format!("/api/hooks/{hook}")).await;
        if v["pending_deliveries"] == 0 {
            return v;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "hook {hook} still has {} pending",
            v["pending_deliveries"]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn sub_body(f: &Fixture, user: &str) -> Value {
    json!({ "customer_id": f.customer_id, "domain": f.domain, "username": user, "password": "sip-secret-1" })
}

async fn before_hooks_veto_modify_and_run_in_priority_order(app: TestApp) {
    let r = Receiver::start().await;
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "alice", 1001).await;
    r.set(
        "/second",
        vec![Reply::json(json!({ "allow": true, "patch": [
        { "op": "replace", "path": "/display_name", "value": "Set by the CRM" } ] }))],
    );
    r.set(
        "/first",
        vec![Reply::json(
            json!({ "allow": true, "remote": { "id": "crm-7" } }),
        )],
    );
    hook(&app, json!({ "name": "second", "phase": "before", "events": ["subscriber.updated"], "url": r.url("/second"), "priority": 20 })).await;
    let (first, _) = hook(&app, json!({ "name": "first", "phase": "before", "events": ["subscriber.*"], "url": r.url("/first"), "priority": 10,
        "response_map": { "crm_id": "/remote/id" } })).await;

    // Modify: the patch of the second hook is applied, and the first ran first.
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{sub}"),
            json!([{ "op": "replace", "path": "/display_name", "value": "Alice" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["display_name"], "Set by the CRM");
    let (a, b) = (r.hits("/first"), r.hits("/second"));
    assert_eq!((a.len(), b.len()), (1, 1));
    assert!(a[0].at <= b[0].at, "priority 10 runs before 20");
    let p = a[0].json();
    assert_eq!(p["event"], "subscriber.updated");
    assert_eq!(p["operation"], "update");
    assert_eq!(p["object"]["display_name"], "Alice");
    assert_eq!(p["old_object"]["username"], "alice");
    assert_eq!(p["actor"]["name"], "administrator");
    assert_eq!(
        p["object"]["password"], "********",
        "no secret reaches a hook"
    );
    assert!(!a[0].body.contains("sip-secret-1"));
    // The first hook's answer mapped onto the subscriber.
    let (_, m) = app.get(&format!("/api/subscribers/{sub}/metadata")).await;
    assert_eq!(m["metadata"]["crm_id"], "crm-7");
    assert_eq!(m["sources"]["crm_id"]["hook_id"], first);

    // A patch is validated again: an invalid result is the client's 422, nothing written.
    r.set(
        "/second",
        vec![Reply::json(
            json!({ "allow": true, "patch": [{ "op": "replace", "path": "/lock", "value": 99 }] }),
        )],
    );
    let journal = app.journal_count().await;
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{sub}"),
            json!([{ "op": "replace", "path": "/display_name", "value": "X" }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "lock");

    // Veto: 422 naming the hook and its message; nothing is written.
    r.set(
        "/second",
        vec![Reply::json(
            json!({ "allow": false, "message": "credit check failed" }),
        )],
    );
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{sub}"),
            json!([{ "op": "replace", "path": "/display_name", "value": "Bob" }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "hook");
    let msg = v["message"].as_str().unwrap();
    assert!(
        msg.contains("'second'") && msg.contains("credit check failed"),
        "{msg}"
    );
    // A non-2xx answer denies too, with the receiver's message.
    r.set(
        "/second",
        vec![Reply {
            status: 403,
            body: json!({ "message": "not on a Sunday" }).to_string(),
            headers: vec![],
            delay: Duration::ZERO,
        }],
    );
    let (s, v) = app.put(&format!("/api/subscribers/{sub}"), json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "alice", "display_name": "Y" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("not on a Sunday"),
        "{v}"
    );
    let (_, now) = app.get(&format!("/api/subscribers/{sub}")).await;
    assert_eq!(now["display_name"], "Set by the CRM");
    assert_eq!(
        app.journal_count().await,
        journal,
        "a refused change leaves no trace but the log"
    );

    // Creation and deletion ask too; a creation veto leaves no subscriber.
    hook(&app, json!({ "name": "no-bobs", "phase": "before", "events": ["subscriber.created", "subscriber.deleted"], "url": r.url("/no"), "priority": 1 })).await;
    r.set(
        "/no",
        vec![Reply::json(
            json!({ "allow": false, "message": "no more subscribers" }),
        )],
    );
    let (s, v) = app.post("/api/subscribers/", sub_body(&f, "bob")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().contains("'no-bobs'"));
    let (_, l) = app
        .get(&format!(
            "/api/subscribers/?username=bob&domain={}",
            f.domain
        ))
        .await;
    assert_eq!(l["total_count"], 0);
    // Bulk creation cannot go around them.
    let (s, v) = common::send(
        app.req(Method::POST, "/api/subscribers/")
            .json(&json!([sub_body(&f, "bob")])),
    )
    .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["message"].as_str().unwrap().contains("'no-bobs'"), "{v}");
    let (s, _) = app.delete(&format!("/api/subscribers/{sub}")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, still) = app.get(&format!("/api/subscribers/{sub}")).await;
    assert_eq!(still["status"], "active");
    assert_eq!(r.hits("/no")[1].json()["event"], "subscriber.deleted");

    // Every call is in the execution log, vetoes included.
    let ex = executions(&app, "phase=before&status=vetoed").await;
    assert!(ex.len() >= 4, "{ex:?}");
    assert!(ex.iter().all(|e| e["request"]["body"]
        .as_str()
        .is_some_and(|b| !b.contains("sip-secret-1"))));
}
both!(
    before_hooks_veto_modify_and_run_in_priority_order,
    super::ENV
);

async fn before_hook_timeouts_follow_the_failure_policy(app: TestApp) {
    let r = Receiver::start().await;
    let f = app.fixture().await;
    r.set(
        "/slow",
        vec![Reply::ok("{}").delayed(Duration::from_secs(4))],
    );
    let (strict, _) = hook(&app, json!({ "name": "strict", "phase": "before", "events": ["subscriber.created"], "url": r.url("/slow"), "timeout": 1 })).await;
    let (s, v) = app.post("/api/subscribers/", sub_body(&f, "carol")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert!(v["message"].as_str().unwrap().contains("'strict'"), "{v}");
    let (_, l) = app
        .get(&format!(
            "/api/subscribers/?username=carol&domain={}",
            f.domain
        ))
        .await;
    assert_eq!(l["total_count"], 0, "fail: nothing written");
    let ex = executions(&app, &format!("hook_id={strict}")).await;
    assert_eq!(ex[0]["outcome"], "timeout");

    // The same hook with failure_policy ignore: the request goes through.
    let (s, v) = app
        .patch(
            &format!("/api/hooks/{strict}"),
            json!([{ "op": "replace", "path": "/failure_policy", "value": "ignore" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = app.post("/api/subscribers/", sub_body(&f, "carol")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // A receiver that refuses connections is an error, not a veto.
    let (s, _) = app
        .patch(
            &format!("/api/hooks/{strict}"),
            json!([
        { "op": "replace", "path": "/url", "value": "http://127.0.0.1:9/nothing-listens" },
        { "op": "replace", "path": "/failure_policy", "value": "fail" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.post("/api/subscribers/", sub_body(&f, "dave")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let ex = executions(&app, &format!("hook_id={strict}&status=error")).await;
    assert_eq!(ex.len(), 1);
}
both!(before_hook_timeouts_follow_the_failure_policy, super::ENV);

fn script(dir: &std::path::Path, name: &str, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_hooks_take_json_on_stdin_and_answer_with_exit_status_and_stdout() {
    let dir = std::env::temp_dir().join(format!("vxscripts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("seen");
    script(
        &dir,
        "veto-carol",
        r#"in=$(cat); case "$in" in *'"username":"carol"'*) echo '{"allow":false,"message":"carol is banned"}';; *) echo '{"allow":true,"patch":[{"op":"add","path":"/email","value":"set@by.script"}]}';; esac"#,
    );
    script(
        &dir,
        "record",
        &format!(
            "cat > {}; env | wc -l > {}.env; exit 0",
            out.display(),
            out.display()
        ),
    );
    script(&dir, "sleeper", "sleep 30");
    script(&dir, "fails", "echo 'database locked' >&2; exit 3");
    let mut env: Vec<(&str, &str)> = ENV.to_vec();
    let d = dir.display().to_string();
    env.push(("VOXPROV_HOOKS_SCRIPT_DIR", &d));
    let app = TestApp::spawn_with(Backend::Sqlite, &env).await;
    let f = app.fixture().await;

    hook(&app, json!({ "name": "bans", "phase": "before", "kind": "script", "path": "veto-carol", "events": ["subscriber.created"] })).await;
    let (s, v) = app.post("/api/subscribers/", sub_body(&f, "carol")).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(v["message"].as_str().unwrap().contains("carol is banned"));
    let (s, v) = app.post("/api/subscribers/", sub_body(&f, "erin")).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["email"], "set@by.script");

    let (rec, _) = hook(
        &app,
        json!({ "name": "rec", "kind": "script", "path": "record", "events": ["subscriber.*"] }),
    )
    .await;
    let id = app.subscriber(&f, "frank", 2001).await;
    wait_drained(&app, rec, 20).await;
    let seen: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(seen["event"], "subscriber.created");
    assert_eq!(seen["resource_id"], id);
    // No environment is passed on (`env` itself may add PWD).
    let n: i64 = std::fs::read_to_string(format!("{}.env", out.display()))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(n <= 1, "the script saw {n} environment variables");

    // Killed at its timeout; a non-zero exit is a failure with stderr in the log.
    let (sl, _) = hook(&app, json!({ "name": "sleeper", "phase": "before", "kind": "script", "path": "sleeper", "events": ["domain.created"], "timeout": 1, "failure_policy": "ignore" })).await;
    let start = Instant::now();
    let (s, _) = app
        .post(
            "/api/domains/",
            json!({ "domain": "slow.example.com", "reseller_id": 1 }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "the sleeping script was not killed"
    );
    assert_eq!(
        executions(&app, &format!("hook_id={sl}")).await[0]["outcome"],
        "timeout"
    );
    let (fl, _) = hook(
        &app,
        json!({ "name": "fails", "kind": "script", "path": "fails", "events": ["domain.created"] }),
    )
    .await;
    app.create(
        "/api/domains/",
        json!({ "domain": "x.example.com", "reseller_id": 1 }),
    )
    .await;
    let start = Instant::now();
    let ex = loop {
        let ex = executions(&app, &format!("hook_id={fl}")).await;
        if !ex.is_empty() || start.elapsed() > Duration::from_secs(20) {
            break ex;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ex[0]["outcome"], "failure");
    assert!(
        ex[0]["error"].as_str().unwrap().contains("database locked"),
        "{}",
        ex[0]
    );
    assert_eq!(ex[0]["response"]["exit_status"], 3);

    // Paths stay inside the directory; only admins add scripts.
    for (path, why) in [
        ("../../bin/sh", "path"),
        ("/bin/sh", "path"),
        ("missing", "path"),
    ] {
        let (s, v) = app
            .post(
                "/api/hooks/",
                json!({ "name": "x", "kind": "script", "path": path, "events": ["*"] }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(why)),
            "{path}: {v}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn after_hooks_are_signed_in_order_and_verify_independently(app: TestApp) {
    let r = Receiver::start().await;
    let f = app.fixture().await;
    let (id, secret) = hook(
        &app,
        json!({ "name": "crm", "events": ["subscriber.*", "customer.*"], "url": r.url("/events"),
        "auth": { "type": "bearer", "token": "tok-123" } }),
    )
    .await;
    let sub = app.subscriber(&f, "gina", 3001).await;
    for i in 0..5 {
        app.patch(
            &format!("/api/subscribers/{sub}"),
            json!([{ "op": "replace", "path": "/display_name", "value": format!("v{i}") }]),
        )
        .await;
    }
    app.patch(
        &format!("/api/customers/{}", f.customer_id),
        json!([{ "op": "replace", "path": "/status", "value": "locked" }]),
    )
    .await;
    // created, 5 updates, the customer's update and lock, the subscriber's update and lock.
    let hits = r.wait_hits("/events", 10, 30).await;
    wait_drained(&app, id, 30).await;
    for h in &hits {
        assert!(verify_with_python(&secret, h), "signature of {}", h.body);
        assert_eq!(h.header("authorization"), "Bearer tok-123");
        let p = h.json();
        assert_eq!(p["id"], h.header("webhook-id"));
        let ts: i64 = h.header("webhook-timestamp").parse().unwrap();
        assert!((ts - chrono_now()).abs() < 300);
    }
    // A tampered body does not verify.
    let mut bad = hits[0].clone();
    bad.body.push(' ');
    assert!(!verify_with_python(&secret, &bad));
    let events: Vec<String> = hits
        .iter()
        .map(|h| h.json()["event"].as_str().unwrap().to_string())
        .collect();
    for e in [
        "subscriber.created",
        "subscriber.updated",
        "customer.updated",
        "customer.locked",
        "subscriber.locked",
    ] {
        assert!(events.contains(&e.to_string()), "{e} in {events:?}");
    }
    // In order per object.
    let names: Vec<String> = hits
        .iter()
        .map(|h| h.json())
        .filter(|p| p["event"] == "subscriber.updated")
        .map(|p| {
            p["object"]["display_name"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(&names[..5], ["v0", "v1", "v2", "v3", "v4"]);
    // The body says what the journal says about the change, and never the secret.
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscribers&resource_id={sub}&rows=20"
        ))
        .await;
    let entries = common::items(&j, "journals");
    let first_update = hits
        .iter()
        .map(|h| h.json())
        .find(|p| p["event"] == "subscriber.updated" && p["object"]["display_name"] == "v0")
        .unwrap();
    let p = &first_update;
    assert_eq!(
        (&p["operation"], &p["resource"], &p["resource_id"]),
        (&json!("update"), &json!("subscribers"), &json!(sub))
    );
    assert_eq!(
        (&p["actor"]["type"], &p["actor"]["name"]),
        (&json!("admin"), &json!("administrator"))
    );
    assert!(p["actor"]["id"].is_i64(), "{p}");
    assert_eq!(p["object"]["username"], "gina");
    assert_eq!(
        p["object"]["password"], "********",
        "no secret reaches a hook"
    );
    assert_eq!(p["old_object"]["password"], "********");
    assert_eq!(p["old_object"]["username"], "gina");
    assert_eq!(
        p["old_object"]["display_name"],
        Value::Null,
        "before the first update"
    );
    let change = p["change_id"].as_i64().expect("change_id");
    let entry = entries
        .iter()
        .find(|e| e["id"] == change)
        .unwrap_or_else(|| panic!("change {change} in the journal: {j}"));
    assert_eq!(entry["operation"], "update");
    assert_eq!(
        (&p["object"], &p["old_object"]),
        (&entry["after"], &entry["before"])
    );
    // Those bodies were built from the change records when sent: the outbox rows hold none.
    let stored = app.db_query(&format!(
        "SELECT COUNT(*), SUM(CASE WHEN payload = '' THEN 1 ELSE 0 END) FROM hook_deliveries WHERE hook_id = {id}"
    ));
    let (all, bodiless) = stored.split_once('\t').unwrap();
    assert_eq!(all, bodiless, "{stored}");
    assert!(all.parse::<usize>().unwrap() >= hits.len(), "{stored}");
    let ts = chrono::DateTime::parse_from_rfc3339(p["timestamp"].as_str().unwrap()).unwrap();
    assert!((ts.timestamp() - chrono_now()).abs() < 300, "{ts}");
    assert!(hits.iter().all(|h| !h.body.contains("sip-secret-1")));
    // The log masks the credential and keeps the answer.
    let ex = executions(&app, &format!("hook_id={id}&status=success")).await;
    assert_eq!(ex.len(), hits.len());
    assert_eq!(
        ex[0]["request"]["headers"]["authorization"],
        "Bearer ********"
    );
    assert_eq!(ex[0]["response"]["status"], 200);
    let (_, hv) = app.get(&format!("/api/hooks/{id}")).await;
    assert!(
        hv.get("secret").is_none() && !hv.to_string().contains("tok-123"),
        "{hv}"
    );
    let (_, j) = app
        .get(&format!("/api/journals/?resource=hooks&resource_id={id}"))
        .await;
    assert!(!j.to_string().contains("tok-123") && !j.to_string().contains(&secret));
}
both!(
    after_hooks_are_signed_in_order_and_verify_independently,
    super::ENV
);

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn body_templates_and_response_maps(app: TestApp) {
    let r = Receiver::start().await;
    let f = app.fixture().await;
    r.set(
        "/tpl",
        vec![Reply::json(json!({ "result": { "account": "acc-42" } }))],
    );
    let (id, _) = hook(&app, json!({ "name": "tpl", "events": ["subscriber.created"], "url": r.url("/tpl"), "method": "PUT",
        "body_template": "{\"user\": \"{{subscriber.username}}@{{subscriber.domain}}\", \"name\": \"{{subscriber.display_name}}\", \"event\": \"{{event}}\", \"numbers\": {{subscriber.alias_numbers|tojson}}}",
        "response_map": { "billing_account": "/result/account", "missing": "/nope" } })).await;
    let (s, v) = app
        .post(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "hank",
        "password": "sip-secret-1", "display_name": "Hank \"The Tank\" <script>" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let sub = v["id"].as_i64().unwrap();
    let h = &r.wait_hits("/tpl", 1, 20).await[0];
    let body = h.json();
    assert_eq!(
        body,
        json!({ "user": format!("hank@{}", f.domain), "name": "Hank \"The Tank\" <script>", "event": "subscriber.created", "numbers": [] }),
        "{}",
        h.body
    );
    wait_drained(&app, id, 20).await;
    let (_, m) = app.get(&format!("/api/subscribers/{sub}/metadata")).await;
    assert_eq!(m["metadata"], json!({ "billing_account": "acc-42" }));
    // A template that does not compile is refused at the field.
    let (s, v) = app.post("/api/hooks/", json!({ "name": "bad", "events": ["*"], "url": r.url("/x"), "body_template": "{{ unclosed" })).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("body_template"))
    );
}
both!(body_templates_and_response_maps, super::ENV);

async fn failed_deliveries_are_retried_honouring_retry_after(app: TestApp) {
    let r = Receiver::start().await;
    app.fixture().await;
    r.set(
        "/flaky",
        vec![
            Reply::status(503).header("retry-after", "2"),
            Reply::status(500),
            Reply::ok("{}"),
        ],
    );
    let (id, _) = hook(
        &app,
        json!({ "name": "flaky", "events": ["domain.created"], "url": r.url("/flaky") }),
    )
    .await;
    app.create(
        "/api/domains/",
        json!({ "domain": "retry.example.com", "reseller_id": 1 }),
    )
    .await;
    let hits = r.wait_hits("/flaky", 3, 30).await;
    wait_drained(&app, id, 30).await;
    let ids: BTreeSet<&str> = hits.iter().map(|h| h.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "one message id across retries");
    assert!(
        hits[1].at - hits[0].at >= Duration::from_millis(1900),
        "Retry-After: 2 honoured"
    );
    let ex = executions(&app, &format!("hook_id={id}")).await;
    let got: Vec<(i64, &str)> = ex
        .iter()
        .map(|e| {
            (
                e["attempt"].as_i64().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, [(1, "failure"), (2, "failure"), (3, "success")]);
    assert!(ex.iter().all(|e| e["delivery_status"] == "delivered"));
    assert_eq!(ex[0]["response"]["status"], 503);
    // /metrics times each attempt by outcome: two failures, one success here.
    let m = app.metrics().await;
    let count = |outcome: &str| {
        m.lines()
            .find(|l| {
                l.starts_with("voxprov_hook_delivery_duration_seconds_count")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit_once(' '))
            .and_then(|(_, v)| v.parse::<f64>().ok())
    };
    assert_eq!(
        (count("failure"), count("success")),
        (Some(2.0), Some(1.0)),
        "{m}"
    );
    assert!(
        m.contains("voxprov_hook_deliveries{status=\"delivered\"} 1"),
        "{m}"
    );
}
both!(
    failed_deliveries_are_retried_honouring_retry_after,
    super::ENV
);

async fn failing_hooks_are_disabled_and_deliveries_wait_for_them(mut app: TestApp) {
    app.env
        .push(("VOXPROV_HOOKS_DISABLE_AFTER_FAILURES".into(), "3".into()));
    app.env
        .push(("VOXPROV_HOOKS_DISABLE_AFTER_SECONDS".into(), "0".into()));
    app.kill9();
    app.start().await;
    let r = Receiver::start().await;
    r.set("/down", vec![Reply::status(502)]);
    r.set("/gone", vec![Reply::status(410)]);
    let (down, _) = hook(
        &app,
        json!({ "name": "down", "events": ["domain.*"], "url": r.url("/down") }),
    )
    .await;
    let (gone, _) = hook(
        &app,
        json!({ "name": "gone", "events": ["domain.*"], "url": r.url("/gone") }),
    )
    .await;
    app.create(
        "/api/domains/",
        json!({ "domain": "a.example.com", "reseller_id": 1 }),
    )
    .await;
    let start = Instant::now();
    let (dv, gv) = loop {
        let (_, dv) = app.get(&format!("/api/hooks/{down}")).await;
        let (_, gv) = app.get(&format!("/api/hooks/{gone}")).await;
        if dv["status"] == "disabled" && gv["status"] == "disabled" {
            break (dv, gv);
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{dv} {gv}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        gv["disabled_reason"].as_str().unwrap().contains("410"),
        "{gv}"
    );
    assert!(
        dv["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("3 failed attempts"),
        "{dv}"
    );
    assert_eq!(r.hits("/gone").len(), 1, "410 stops at once");
    assert_eq!(r.hits("/down").len(), 3);
    // Disabled: new events are not queued for it; what was pending waits, not lost.
    assert_eq!(dv["pending_deliveries"], 1);
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=hooks&resource_id={down}&actor=system"
        ))
        .await;
    assert_eq!(j["total_count"], 1, "the automatic disable is journalled");
    app.create(
        "/api/domains/",
        json!({ "domain": "b.example.com", "reseller_id": 1 }),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.hits("/down").len(), 3);
    // Enabled again with a working receiver: the held delivery goes out.
    r.set("/down", vec![Reply::ok("{}")]);
    let (s, v) = app
        .patch(
            &format!("/api/hooks/{down}"),
            json!([{ "op": "replace", "path": "/status", "value": "enabled" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["disabled_reason"], Value::Null);
    let hits = r.wait_hits("/down", 4, 30).await;
    assert_eq!(hits[3].json()["object"]["domain"], "a.example.com");
    wait_drained(&app, down, 30).await;
    assert_eq!(
        r.hits("/down").len(),
        4,
        "b.example.com came while it was disabled"
    );
    // Archiving (DELETE) cancels what is pending and keeps the log.
    let (s, _) = app.delete(&format!("/api/hooks/{gone}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, gv) = app.get(&format!("/api/hooks/{gone}")).await;
    assert_eq!(
        (gv["status"].as_str(), gv["pending_deliveries"].as_i64()),
        (Some("archived"), Some(0))
    );
    assert_eq!(executions(&app, &format!("hook_id={gone}")).await.len(), 1);
}
both!(
    failing_hooks_are_disabled_and_deliveries_wait_for_them,
    super::ENV
);

async fn deliveries_are_redelivered_by_hand(mut app: TestApp) {
    app.env
        .push(("VOXPROV_HOOKS_RETRY_SCHEDULE".into(), "[1]".into()));
    app.kill9();
    app.start().await;
    let r = Receiver::start().await;
    r.set("/r", vec![Reply::status(500)]);
    let (id, _) = hook(
        &app,
        json!({ "name": "r", "events": ["domain.created"], "url": r.url("/r") }),
    )
    .await;
    for d in ["r1", "r2", "r3"] {
        app.create(
            "/api/domains/",
            json!({ "domain": format!("{d}.example.com"), "reseller_id": 1 }),
        )
        .await;
    }
    r.wait_hits("/r", 6, 30).await;
    wait_drained(&app, id, 30).await;
    let failed = executions(&app, &format!("hook_id={id}&status=failure")).await;
    assert_eq!(failed.len(), 6);
    assert!(
        failed.iter().all(|e| e["delivery_status"] == "failed"),
        "given up after the schedule"
    );
    r.set("/r", vec![Reply::ok("{}")]);
    // One execution's delivery, with the same webhook-id.
    let one = &failed[0];
    let (s, v) = common::send(app.req(
        Method::POST,
        &format!("/api/hookexecutions/{}/redeliver", one["id"]),
    ))
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    let hits = r.wait_hits("/r", 7, 30).await;
    assert_eq!(
        hits[6].header("webhook-id"),
        one["webhook_id"].as_str().unwrap()
    );
    // Every attempt of a delivery carries the same body, byte for byte.
    let earlier: Vec<_> = hits[..6]
        .iter()
        .filter(|h| h.header("webhook-id") == hits[6].header("webhook-id"))
        .collect();
    assert_eq!(earlier.len(), 2, "two attempts before it was given up");
    assert!(
        earlier.iter().all(|h| h.body == hits[6].body),
        "{}",
        hits[6].body
    );
    wait_drained(&app, id, 30).await;
    // The rest, by time range.
    let (s, v) = common::send(
        app.req(Method::POST, &format!("/api/hooks/{id}/redeliver"))
            .json(&json!({ "since": "2000-01-01 00:00:00" })),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
    assert_eq!(v["requeued"], 2);
    r.wait_hits("/r", 9, 30).await;
    wait_drained(&app, id, 30).await;
    let delivered: BTreeSet<String> = r.hits("/r")[6..]
        .iter()
        .map(|h| h.json()["object"]["domain"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(delivered.len(), 3);
    let (s, v) = common::send(
        app.req(Method::POST, &format!("/api/hooks/{id}/redeliver"))
            .json(&json!({ "since": "yesterday" })),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("since"))
    );
}
both!(deliveries_are_redelivered_by_hand, super::ENV);

async fn reseller_hooks_see_only_their_own_world(app: TestApp) {
    let r = Receiver::start().await;
    let (ra, la, pa) = app.reseller("hka").await;
    let (_rb, lb, pb) = app.reseller("hkb").await;
    let post_as = |l: &str, p: &str, path: &str, body: Value| {
        common::send(
            app.req_as(Method::POST, path, l, p)
                .header("Prefer", "return=representation")
                .json(&body),
        )
    };
    let (s, v) = post_as(
        &la,
        &pa,
        "/api/hooks/",
        json!({ "name": "mine", "events": ["domain.*"], "url": r.url("/a") }),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ha = v["id"].as_i64().unwrap();
    assert_eq!(v["reseller_id"], ra);
    // Not for resellers: scripts, SIP server filters, another reseller's id.
    let (s, v) = post_as(
        &la,
        &pa,
        "/api/hooks/",
        json!({ "name": "s", "kind": "script", "path": "x", "events": ["*"] }),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("kind"))
    );
    let (s, v) = post_as(&la, &pa, "/api/hooks/", json!({ "name": "s", "url": r.url("/a"), "events": ["*"], "filters": { "sipserver_id": 1 } })).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("filters.sipserver_id")
        )
    );
    let (_, admin_hook_v) = app
        .post(
            "/api/hooks/",
            json!({ "name": "ops", "events": ["domain.created"], "url": r.url("/ops") }),
        )
        .await;
    let admin_hook = admin_hook_v["id"].as_i64().unwrap();
    let (s, _) =
        common::send(app.req_as(Method::GET, &format!("/api/hooks/{admin_hook}"), &lb, &pb)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = common::send(app.req_as(Method::GET, &format!("/api/hooks/{ha}"), &lb, &pb)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    // Each reseller creates a domain; A's hook hears only A's, the operator's hears both.
    post_as(
        &la,
        &pa,
        "/api/domains/",
        json!({ "domain": "a.hk.example.com" }),
    )
    .await;
    post_as(
        &lb,
        &pb,
        "/api/domains/",
        json!({ "domain": "b.hk.example.com" }),
    )
    .await;
    r.wait_hits("/ops", 2, 20).await;
    wait_drained(&app, ha, 20).await;
    let a: Vec<Value> = r.hits("/a").iter().map(|h| h.json()).collect();
    assert_eq!(a.len(), 1, "{a:?}");
    assert_eq!(a[0]["object"]["domain"], "a.hk.example.com");
    let (_, la_ex) =
        common::send(app.req_as(Method::GET, "/api/hookexecutions/?rows=100", &la, &pa)).await;
    assert!(
        items(&la_ex, "hookexecutions")
            .iter()
            .all(|e| e["hook_id"] == ha),
        "{la_ex}"
    );
    let (_, lb_ex) =
        common::send(app.req_as(Method::GET, "/api/hookexecutions/?rows=100", &lb, &pb)).await;
    assert_eq!(lb_ex["total_count"], 0);
}
both!(reseller_hooks_see_only_their_own_world, super::ENV);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_may_not_reach_private_addresses_unless_allowed() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://localhost/x",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://192.168.0.10/",
    ] {
        let (s, v) = app
            .post(
                "/api/hooks/",
                json!({ "name": "x", "events": ["*"], "url": url }),
            )
            .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("url")),
            "{url}: {v}"
        );
    }
    let (s, _) = app
        .post(
            "/api/hooks/",
            json!({ "name": "x", "events": ["*"], "url": "https://crm.example.com/hook" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_hook_input_names_the_field() {
    let app = spawn(Backend::Sqlite).await;
    let r = Receiver::start().await;
    let u = r.url("/x");
    let cases = [
        (json!({ "events": ["*"], "url": u }), "name"),
        (json!({ "name": "x", "events": [], "url": u }), "events"),
        (
            json!({ "name": "x", "events": ["subscriber.created", "nope.*"], "url": u }),
            "events[1]",
        ),
        (json!({ "name": "x", "events": ["*"] }), "url"),
        (
            json!({ "name": "x", "events": ["*"], "url": "ftp://x/" }),
            "url",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": "https://u:p@x.example.com/" }),
            "url",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "phase": "during" }),
            "phase",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "kind": "ftp" }),
            "kind",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "method": "DELETE" }),
            "method",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "timeout": 31 }),
            "timeout",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "timeout": 0 }),
            "timeout",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "priority": 0 }),
            "priority",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "status": "on" }),
            "status",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "failure_policy": "ignore" }),
            "failure_policy",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "phase": "before", "failure_policy": "maybe" }),
            "failure_policy",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "auth": { "type": "basic", "username": "u" } }),
            "auth.password",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "auth": { "type": "bearer" } }),
            "auth.token",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "auth": { "type": "header", "header": "webhook-signature", "value": "v" } }),
            "auth.header",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "auth": { "type": "magic" } }),
            "auth.type",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "filters": { "domain": "nope.example.com" } }),
            "filters.domain",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "filters": { "customer_id": 999 } }),
            "filters.customer_id",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "reseller_id": 999 }),
            "reseller_id",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "response_map": { "id": "data.id" } }),
            "response_map.id",
        ),
        (
            json!({ "name": "x", "events": ["*"], "url": u, "unknown": 1 }),
            "unknown",
        ),
        (
            json!({ "name": "x", "events": ["*"], "kind": "script", "path": "x" }),
            "kind",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = send(
            app.req(Method::POST, "/api/hooks/")
                .header("Prefer", "handling=strict")
                .json(&body),
        )
        .await;
        assert_eq!(
            (s, v["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{body}: {v}"
        );
    }
    assert_eq!(
        app.get("/api/hooks/").await.1["total_count"],
        0,
        "nothing half-written"
    );
    // The catalog lists every event with a sample payload.
    let (s, v) = app.get("/api/hooks/events").await;
    assert_eq!(s, StatusCode::OK);
    let names: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    for e in [
        "subscriber.created",
        "customer.locked",
        "customer.activated",
        "customer.terminated",
        "customer.balance.depleted",
        "customer.balance.restored",
        "subscriber.locked",
        "subscriber.unlocked",
        "subscriber.terminated",
        "device.fetched",
        "sipserver.behind",
        "sipserver.caught_up",
        "customerbalance.updated",
        "hook.updated",
    ] {
        assert!(names.contains(&e), "{e}");
    }
    assert!(v["events"][0]["sample"]["object"].is_object());
}

async fn secret_rotation_signs_with_both_secrets_for_the_overlap(app: TestApp) {
    let r = Receiver::start().await;
    let (id, old) = hook(
        &app,
        json!({ "name": "rot", "events": ["domain.created"], "url": r.url("/rot") }),
    )
    .await;
    let (s, v) = common::send(
        app.req(Method::POST, &format!("/api/hooks/{id}/rotate_secret"))
            .json(&json!({ "overlap_seconds": 3600 })),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let new = v["secret"].as_str().unwrap().to_string();
    assert!(new.starts_with("whsec_") && new != old);
    app.create(
        "/api/domains/",
        json!({ "domain": "rot.example.com", "reseller_id": 1 }),
    )
    .await;
    let h = &r.wait_hits("/rot", 1, 20).await[0];
    assert_eq!(h.header("webhook-signature").split(' ').count(), 2);
    assert!(verify_with_python(&new, h) && verify_with_python(&old, h));
    // Without an overlap the old secret stops at once.
    let (_, v) = common::send(
        app.req(Method::POST, &format!("/api/hooks/{id}/rotate_secret"))
            .json(&json!({ "overlap_seconds": 0 })),
    )
    .await;
    let newest = v["secret"].as_str().unwrap().to_string();
    app.create(
        "/api/domains/",
        json!({ "domain": "rot2.example.com", "reseller_id": 1 }),
    )
    .await;
    let h = &r.wait_hits("/rot", 2, 20).await[1];
    assert!(verify_with_python(&newest, h) && !verify_with_python(&new, h));
    let (_, j) = app
        .get(&format!("/api/journals/?resource=hooks&resource_id={id}"))
        .await;
    assert!(!j.to_string().contains(&newest), "no secret in the journal");
}
both!(
    secret_rotation_signs_with_both_secrets_for_the_overlap,
    super::ENV
);

async fn balances_raise_depleted_and_restored(app: TestApp) {
    let r = Receiver::start().await;
    let f = app.fixture().await;
    hook(
        &app,
        json!({ "name": "bal", "events": ["customer.balance.*"], "url": r.url("/bal") }),
    )
    .await;
    let path = format!("/api/customerbalances/{}", f.customer_id);
    let (s, v) = app.get(&path).await;
    assert_eq!(
        (s, v["cash_balance"].as_f64()),
        (StatusCode::OK, Some(0.0)),
        "{v}"
    );
    for (x, _) in [
        (10.0, ""),
        (-2.5, "depleted"),
        (-5.0, ""),
        (0.0, "restored"),
        (3.0, ""),
    ] {
        let (s, v) = app.put(&path, json!({ "cash_balance": x })).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
    let (s, v) = app
        .patch(
            &path,
            json!([{ "op": "replace", "path": "/cash_balance", "value": "lots" }]),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("cash_balance")),
        "{v}"
    );
    let hits = r.wait_hits("/bal", 2, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events: Vec<(String, f64)> = r
        .hits("/bal")
        .iter()
        .map(|h| {
            let p = h.json();
            (
                p["event"].as_str().unwrap().to_string(),
                p["object"]["cash_balance"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            ("customer.balance.depleted".to_string(), -2.5),
            ("customer.balance.restored".to_string(), 0.0)
        ],
        "{hits:?}"
    );
}
both!(balances_raise_depleted_and_restored, super::ENV);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_holds_back_only_its_own_hook() {
    let mut env = ENV.to_vec();
    env.push(("VOXPROV_HOOKS_MAX_IN_FLIGHT_PER_HOOK", "16"));
    let app = TestApp::spawn_with(Backend::Sqlite, &env).await;
    let r = Receiver::start().await;
    let f = app.fixture().await;
    r.set(
        "/hang",
        vec![Reply::ok("{}").delayed(Duration::from_secs(30))],
    );
    let (hang, _) = hook(&app, json!({ "name": "hang", "events": ["subscriber.created"], "url": r.url("/hang"), "timeout": 30 })).await;
    hook(
        &app,
        json!({ "name": "fast", "events": ["subscriber.created"], "url": r.url("/fast") }),
    )
    .await;
    for i in 0..40 {
        app.subscriber(&f, &format!("h{i}"), 5000 + i).await;
    }
    // Every event reaches the healthy hook while the hanging one has not answered once.
    r.wait_hits("/fast", 40, 20).await;
    assert!(executions(&app, &format!("hook_id={hang}"))
        .await
        .is_empty());
    let (_, hv) = app.get(&format!("/api/hooks/{hang}")).await;
    assert_eq!(hv["pending_deliveries"], 40);
    // Its own slots are limited: 16 calls in flight, not 40.
    assert_eq!(r.hits("/hang").len(), 16);
}

async fn sipserver_behind_and_caught_up_reach_hooks(app: TestApp) {
    let r = Receiver::start().await;
    hook(
        &app,
        json!({ "name": "ops", "events": ["sipserver.*"], "url": r.url("/ops") }),
    )
    .await;
    let name = format!("vxhk_{}_{}", std::process::id(), app.backend as u8);
    let mysql = |sql: &str| {
        run_ok(
            std::process::Command::new("mysql").args([
                "-h",
                &common::sipdb::mysql_host(),
                "-uroot",
                "-e",
                sql,
            ]),
            sql,
        )
    };
    mysql(&format!("DROP DATABASE IF EXISTS {name}"));
    let url = format!("mysql://root@{}:3306/{name}", common::sipdb::mysql_host());
    let id = app.sipserver("k1", "kamailio", &url, json!({})).await;
    let of = |e: &str| {
        r.hits("/ops")
            .into_iter()
            .filter(|h| h.json()["event"] == e)
            .collect::<Vec<_>>()
    };
    let start = Instant::now();
    while of("sipserver.behind").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no sipserver.behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let p = of("sipserver.behind")[0].json();
    assert_eq!(
        (p["event"].as_str(), p["resource_id"].as_i64()),
        (Some("sipserver.behind"), Some(id))
    );
    assert!(p["object"]["last_error"].is_string());
    // The database appears: the server catches up and says so.
    mysql(&format!("CREATE DATABASE {name}"));
    let files = common::sipdb::kamailio_schema(common::sipdb::Engine::Mysql);
    for f in files {
        let out = std::process::Command::new("mysql")
            .args(["-h", &common::sipdb::mysql_host(), "-uroot", &name])
            .stdin(std::fs::File::open(f).unwrap())
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let start = Instant::now();
    while of("sipserver.caught_up").is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no sipserver.caught_up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        of("sipserver.behind").len(),
        1,
        "announced once, not at every retry"
    );
    let order: Vec<String> = r
        .hits("/ops")
        .iter()
        .map(|h| h.json()["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        order.last().map(String::as_str),
        Some("sipserver.caught_up"),
        "{order:?}"
    );
    mysql(&format!("DROP DATABASE IF EXISTS {name}"));
}
both!(sipserver_behind_and_caught_up_reach_hooks, super::ENV);

/// Nothing acknowledged is lost: 1,000 deliveries pending or in flight, the server killed
/// with SIGKILL, restarted: every one arrives (duplicates allowed, with the same webhook-id).
async fn no_delivery_is_lost_to_sigkill(mut app: TestApp) {
    let r = Receiver::start().await;
    let f = app.fixture().await;
    r.set(
        "/sink",
        vec![Reply::ok("{}").delayed(Duration::from_millis(40))],
    );
    let (id, _) = hook(
        &app,
        json!({ "name": "sink", "events": ["subscriber.created"], "url": r.url("/sink") }),
    )
    .await;
    let rows: Vec<Value> = (0..1000).map(|i| sub_body(&f, &format!("k{i}"))).collect();
    let (s, v) = common::send(app.req(Method::POST, "/api/subscribers/").json(&rows)).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["summary"]["created"], 1000, "{}", v["summary"]);
    let created: BTreeSet<i64> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    r.wait_hits("/sink", 50, 30).await;
    app.kill9();
    let before = r.hits("/sink").len();
    assert!(
        before < 1000,
        "the kill came too late to matter ({before} delivered)"
    );
    app.start().await;
    let start = Instant::now();
    loop {
        let seen: BTreeSet<i64> = r
            .hits("/sink")
            .iter()
            .filter_map(|h| h.json()["resource_id"].as_i64())
            .collect();
        if seen.len() == 1000 {
            assert_eq!(seen, created);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(180),
            "{} of 1000 after restart",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_drained(&app, id, 60).await;
    // A message delivered twice kept its id; no two messages share one.
    let mut by_id: HashMap<String, BTreeSet<i64>> = HashMap::new();
    for h in r.hits("/sink") {
        by_id
            .entry(h.header("webhook-id").to_string())
            .or_default()
            .insert(h.json()["resource_id"].as_i64().unwrap());
    }
    assert_eq!(by_id.len(), 1000);
    assert!(by_id.values().all(|s| s.len() == 1));
}
both!(no_delivery_is_lost_to_sigkill, super::ENV);

/// A CSV import (all-or-nothing, in batches, so its journal records are built beside the
/// next batch and written after it) journals every subscriber exactly as `GET` shows it —
/// the SIP password redacted, each number with its id — and after-hooks see each creation.
async fn an_import_journals_and_announces_each_subscriber_as_created(app: TestApp) {
    let r = Receiver::start().await;
    let f = app.fixture().await;
    let (id, _) = hook(
        &app,
        json!({ "name": "crm", "events": ["subscriber.created"], "url": r.url("/events") }),
    )
    .await;
    // 70 rows in batches of 66: the first batch takes more than one insert statement for its
    // subscribers (50 a statement), numbers (100) and change records (64), whose ids the
    // server works out without reading each row back; every row must still get its own.
    let rows: Vec<String> = (1..=70)
        .map(|i| {
            format!(
                "{},{},imp{i},imp-{i}-secret,49,40,{},49-41-{i}",
                f.customer_id,
                f.domain,
                8_000_000 + i
            )
        })
        .collect();
    let path = app.csv_file(
        "hooked.csv",
        "customer_id,domain,username,password,cc,ac,sn,alias_numbers",
        &rows,
    );
    let (code, out, err) = app.cli(&["import", "subscribers", &path, "--batch", "66"]);
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, s) = app
        .get(&format!(
            "/api/subscribers/?rows=100&order_by=id&customer_id={}",
            f.customer_id
        ))
        .await;
    let subs = items(&s, "subscribers");
    assert_eq!(subs.len(), 70, "{s}");
    for sub in &subs {
        // Each row's numbers went to its own subscriber.
        let i: u64 = sub["username"].as_str().unwrap()["imp".len()..]
            .parse()
            .unwrap();
        assert_eq!(
            sub["primary_number"]["sn"],
            json!((8_000_000 + i).to_string()),
            "{sub}"
        );
        assert_eq!(sub["alias_numbers"][0]["sn"], json!(i.to_string()), "{sub}");
    }
    let hits = r.wait_hits("/events", 70, 30).await;
    wait_drained(&app, id, 30).await;
    let mut announced: HashMap<i64, Value> = HashMap::new();
    for h in &hits {
        let p = h.json();
        assert_eq!(p["event"], "subscriber.created", "{p}");
        announced.insert(p["object"]["id"].as_i64().unwrap(), p["object"].clone());
    }
    for sub in &subs {
        let sid = sub["id"].as_i64().unwrap();
        // As GET shows it, but the password.
        let mut want = sub.clone();
        assert!(want["password"].as_str().unwrap().ends_with("-secret"));
        want["password"] = json!("********");
        want.as_object_mut().unwrap().remove("_links");
        assert!(want["alias_numbers"][0]["number_id"].is_i64(), "{want}");
        let (_, j) = app
            .get(&format!(
                "/api/journals/?resource=subscribers&resource_id={sid}"
            ))
            .await;
        let entries = items(&j, "journals");
        assert_eq!(entries.len(), 1, "{j}");
        assert_eq!(entries[0]["operation"], "create");
        let mut after = entries[0]["after"].clone();
        after.as_object_mut().unwrap().remove("_links");
        assert_eq!(after, want, "journal of subscriber {sid}");
        let mut object = announced.remove(&sid).expect("announced");
        object.as_object_mut().unwrap().remove("_links");
        assert_eq!(object, want, "hook payload of subscriber {sid}");
    }
    assert!(announced.is_empty(), "{announced:?}");
}
both!(
    an_import_journals_and_announces_each_subscriber_as_created,
    super::ENV
);
