//! Bad input gets a clear 4xx naming the problem, never a 5xx, and nothing is written (read
//! strictly where leniency would ignore it: an unknown or read-only field).

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn bad_input_is_refused_clearly_and_writes_nothing(app: TestApp) {
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "victim", 4242).await;
    let before = app.journal_count().await;
    let post = |body: String, ct: &str| {
        app.req(Method::POST, "/api/subscribers/")
            .header("Content-Type", ct.to_string())
            .header("Prefer", "handling=strict")
            .body(body)
    };
    let good = json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "new", "password": "sip-secret-1" });

    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode, &str)> = vec![
        ("malformed JSON", post("{\"username\": ".into(), "application/json"), StatusCode::BAD_REQUEST, "malformed JSON"),
        ("wrong content type", post(good.to_string(), "text/plain"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        ("no content type", app.req(Method::POST, "/api/subscribers/").body(good.to_string()), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
        ("unknown field", post(json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "n", "password": "sip-secret-1", "colour": "red" }).to_string(), "application/json"), StatusCode::UNPROCESSABLE_ENTITY, "colour"),
        ("wrong type", post(json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "n", "password": "sip-secret-1", "lock": [1] }).to_string(), "application/json"), StatusCode::UNPROCESSABLE_ENTITY, "lock"),
        ("missing field", post(json!({ "customer_id": f.customer_id, "domain": f.domain, "password": "sip-secret-1" }).to_string(), "application/json"), StatusCode::UNPROCESSABLE_ENTITY, "username"),
        ("bad number", post(json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "n", "password": "sip-secret-1", "primary_number": { "cc": "4x", "sn": 1 } }).to_string(), "application/json"), StatusCode::UNPROCESSABLE_ENTITY, "primary_number.cc"),
        ("out of range", post(json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "n", "password": "sip-secret-1", "lock": 9 }).to_string(), "application/json"), StatusCode::UNPROCESSABLE_ENTITY, "lock"),
        ("bad status", post(json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "n", "password": "sip-secret-1", "status": "zombie" }).to_string(), "application/json"), StatusCode::UNPROCESSABLE_ENTITY, "status"),
        ("SQL in a value", post(json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "x'; DROP TABLE subscribers; --", "password": "sip-secret-1" }).to_string(), "application/json"), StatusCode::UNPROCESSABLE_ENTITY, "username"),
        ("array body where there is no bulk creation", app.req(Method::POST, "/api/domains/").header("Content-Type", "application/json").body("[1,2]"), StatusCode::UNPROCESSABLE_ENTITY, "body"),
        ("too large", post(format!("{{\"username\": \"{}\"}}", "a".repeat(1_100_000)), "application/json"), StatusCode::PAYLOAD_TOO_LARGE, "limit"),
        ("invalid id", app.req(Method::GET, "/api/subscribers/abc"), StatusCode::BAD_REQUEST, "invalid id"),
        ("negative id", app.req(Method::GET, "/api/subscribers/-4"), StatusCode::BAD_REQUEST, "invalid id"),
        ("huge id", app.req(Method::GET, "/api/subscribers/99999999999999999999999"), StatusCode::BAD_REQUEST, "invalid id"),
        ("absent id", app.req(Method::GET, "/api/subscribers/999999"), StatusCode::NOT_FOUND, "not found"),
        ("SQL in a filter", app.req(Method::GET, "/api/subscribers/?username=%27%20OR%201%3D1%20--"), StatusCode::OK, ""),
        ("patch not an array", app.req(Method::PATCH, &format!("/api/subscribers/{sub}")).header("Content-Type", "application/json-patch+json").body("{\"op\":\"replace\"}"), StatusCode::BAD_REQUEST, "array"),
        ("patch bad op", app.req(Method::PATCH, &format!("/api/subscribers/{sub}")).header("Content-Type", "application/json-patch+json").body("[{\"op\":\"frobnicate\",\"path\":\"/lock\"}]"), StatusCode::BAD_REQUEST, "PATCH op 'frobnicate'"),
        ("patch bad path", app.req(Method::PATCH, &format!("/api/subscribers/{sub}")).header("Content-Type", "application/json-patch+json").body("[{\"op\":\"remove\",\"path\":\"/nope/deeper\"}]"), StatusCode::UNPROCESSABLE_ENTITY, "patch"),
        ("patch failing test", app.req(Method::PATCH, &format!("/api/subscribers/{sub}")).header("Content-Type", "application/json-patch+json").body("[{\"op\":\"test\",\"path\":\"/username\",\"value\":\"other\"}]"), StatusCode::UNPROCESSABLE_ENTITY, "patch"),
        ("patch as plain JSON", app.req(Method::PATCH, &format!("/api/subscribers/{sub}")).header("Content-Type", "application/json").body("[]"), StatusCode::UNSUPPORTED_MEDIA_TYPE, "json-patch"),
        ("patch to invalid value", app.req(Method::PATCH, &format!("/api/subscribers/{sub}")).header("Content-Type", "application/json-patch+json").body("[{\"op\":\"replace\",\"path\":\"/lock\",\"value\":\"x\"}]"), StatusCode::UNPROCESSABLE_ENTITY, "lock"),
        ("patch read-only", app.req(Method::PATCH, &format!("/api/subscribers/{sub}")).header("Content-Type", "application/json-patch+json").header("Prefer", "handling=strict").body("[{\"op\":\"replace\",\"path\":\"/id\",\"value\":999999}]"), StatusCode::UNPROCESSABLE_ENTITY, "id"),
    ];
    for (what, rb, want, needle) in cases {
        let (s, v) = send(rb).await;
        assert_eq!(s, want, "{what}: {v}");
        assert!(s.as_u16() < 500);
        if !needle.is_empty() {
            let msg = format!(
                "{} {}",
                v["message"].as_str().unwrap_or(""),
                v["field"].as_str().unwrap_or("")
            );
            assert!(
                msg.contains(needle),
                "{what}: message should name '{needle}': {v}"
            );
            assert!(
                !msg.to_lowercase().contains("sqlite")
                    && !msg.to_lowercase().contains("syntax error"),
                "{what}: no database text: {v}"
            );
        }
    }
    // Several wrong fields: one answer names them all (NGCP's `field` the first), nothing
    // written.
    let (s, v) = send(post(
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "two words",
                "password": "sip-secret-1", "email": "nobody", "lock": 9,
                "alias_numbers": [{ "cc": "49", "ac": "30", "sn": "12ab" }] })
        .to_string(),
        "application/json",
    ))
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "username", "{v}");
    let fields: Vec<&str> = v["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("an errors list: {v}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        fields,
        ["username", "lock", "alias_numbers[0].sn", "email"],
        "each wrong field once: {v}"
    );
    assert!(
        v["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("may contain only")),
        "the message alone: {v}"
    );
    // A refused secret is never echoed: not as NGCP's input, not in serde's words.
    for (pw, field) in [
        (json!("short"), "password"),
        (json!(98_765_432_123_i64), "password"),
    ] {
        let (s, v) = send(post(
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "echo",
                    field: pw.clone() })
            .to_string(),
            "application/json",
        ))
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        let body = v.to_string();
        let secret = pw
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| pw.to_string());
        assert!(
            v["field"] == field && !body.contains(&secret),
            "{secret} echoed: {v}"
        );
    }
    assert_eq!(app.journal_count().await, before, "nothing was written");
    let (_, v) = app.get(&format!("/api/subscribers/{sub}")).await;
    assert_eq!(v["username"], "victim");
    assert_eq!(v["lock"], 0);
    let (_, v) = app
        .get("/api/subscribers/?username=%27%20OR%201%3D1%20--")
        .await;
    assert_eq!(v["total_count"], 0);
}
both!(bad_input_is_refused_clearly_and_writes_nothing);

/// The forms' resources name every wrong field of a request at once, each once, whether the
/// fields are of the wrong type (read before any rule) or break a rule; nothing is written.
async fn three_wrong_fields_are_named_at_once(app: TestApp) {
    let f = app.fixture().await;
    let contract = app.contract("sippeering").await;
    let carrier = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "named-at-once" }),
        )
        .await;
    let tenant = app.pbx_tenant(&f, "atonce").await;
    app.create(
        "/api/pbxextensions/",
        json!({ "tenant_id": tenant, "extension": "201", "type": "unprovisioned" }),
    )
    .await;
    let spare = app
        .create(
            "/api/customers/",
            json!({ "contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id,
                    "type": "pbxaccount", "status": "active" }),
        )
        .await;
    let before = app.journal_count().await;
    let cases = [
        (
            "/api/customers/",
            json!({ "contact_id": 999_999, "billing_profile_id": 999_999, "max_subscribers": -1 }),
            vec!["contact_id", "billing_profile_id", "max_subscribers"],
        ),
        (
            "/api/peeringgroups/",
            json!({ "contract_id": 999_999, "name": "", "priority": 12 }),
            vec!["contract_id", "name", "priority"],
        ),
        (
            "/api/peeringservers/",
            json!({ "group_id": carrier, "name": "", "ip": "not an address", "port": 70000 }),
            vec!["name", "ip", "port"],
        ),
        (
            "/api/peeringrules/",
            json!({ "group_id": carrier, "callee_prefix": "4x", "callee_pattern": "(",
                    "description": "a\u{1}b" }),
            vec!["callee_prefix", "callee_pattern", "description"],
        ),
        (
            "/api/pbxringgroups/",
            json!({ "tenant_id": tenant, "number": "1", "grouptype": "Circle", "out": "201",
                    "outcome": "201", "ringdelay": 9999 }),
            vec!["number", "grouptype", "ringdelay"],
        ),
        (
            "/api/customercontacts/",
            json!({ "reseller_id": 1, "firstname": "a\u{1}", "email": "nobody", "city": "x\u{2}" }),
            vec!["firstname", "email", "city"],
        ),
        (
            "/api/pbxdevices/",
            json!({ "identifier": "zz", "customer_id": 999_999, "model_id": 999_999, "lines": [] }),
            vec!["identifier", "customer_id", "model_id"],
        ),
        (
            "/api/hooks/",
            json!({ "name": "", "events": [], "url": "ftp://example.com/x", "timeout": 99 }),
            vec!["name", "events", "url", "timeout"],
        ),
        (
            "/api/pbxtenants/",
            json!({ "customer_id": spare, "name": "bad name!", "domain": f.domain,
                    "masteroclo": "MAYBE" }),
            vec!["name", "description", "masteroclo"],
        ),
        (
            "/api/pbxextensions/",
            json!({ "tenant_id": tenant, "extension": "1", "type": "phone", "active": "MAYBE" }),
            vec!["extension", "type", "active"],
        ),
        (
            "/api/pbxinboundroutes/",
            json!({ "tenant_id": tenant, "number": "abc", "carrier": "X", "openroute": "201",
                    "moh": "LOUD" }),
            vec!["number", "carrier", "moh"],
        ),
        (
            "/api/pbxdaytimers/",
            json!({ "tenant_id": tenant, "datemonth": 40, "dayofweek": "funday",
                    "timespan": "25:00-26:00" }),
            vec!["datemonth", "dayofweek", "timespan"],
        ),
        (
            "/api/sipservers/",
            json!({ "name": "bad name!", "driver": "asterisk", "db_url": "sqlite:///tmp/x.db",
                    "rpc_url": "ftp://x", "routing_type": 7 }),
            vec!["name", "driver", "rpc_url", "routing_type"],
        ),
        // Wrong types: each named, though none of the rules could be asked.
        (
            "/api/peeringservers/",
            json!({ "group_id": carrier, "name": "t", "ip": "192.0.2.1", "port": "x",
                    "weight": [1], "enabled": "maybe" }),
            vec!["enabled", "port", "weight"],
        ),
    ];
    for (path, body, want) in cases {
        let (s, v) = app.post(path, body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path} {body}: {v}");
        let mut got: Vec<&str> = v["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: an errors list: {v}"))
            .iter()
            .map(|e| e["field"].as_str().unwrap_or(""))
            .collect();
        got.sort_unstable();
        let mut want = want;
        want.sort_unstable();
        assert_eq!(got, want, "{path} {body}: each wrong field once: {v}");
    }
    assert_eq!(app.journal_count().await, before, "nothing was written");
    // Gathering never judges a field as someone else's: a reseller naming another reseller
    // as a hook's owner learns nothing of that reseller's domains from the answer.
    let (_, login, pass) = app.reseller("gatherer").await;
    let mut answers = Vec::new();
    for domain in [f.domain.as_str(), "no-such-domain.example"] {
        let (s, v) = send(
            app.req_as(Method::POST, "/api/hooks/", &login, &pass)
                .json(&json!({
                "name": "probe", "events": ["subscriber.created"], "url": "https://example.com/x",
                "reseller_id": 1, "filters": { "domain": domain } })),
        )
        .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        answers.push(v["errors"].clone());
    }
    assert_eq!(answers[0], answers[1], "the same answer either way");
    // A refused token (a value of the wrong type) is not quoted back.
    let (s, v) = send(
        app.req(Method::POST, "/api/hooks/")
            .header("Prefer", "handling=strict")
            .json(&json!({ "name": "t", "events": ["subscriber.created"],
                           "url": "https://example.com/x",
                           "auth": { "type": "bearer", "token": 987_654_321 } })),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(!v.to_string().contains("987654321"), "{v}");
}
both!(three_wrong_fields_are_named_at_once);

#[test]
fn an_unknown_database_url_is_refused_at_start() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxprov"))
        .args([
            "serve",
            "--database-url",
            "mysql://root@localhost/voxprov",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("database_url") && err.contains("mysql"),
        "{err}"
    );
}
