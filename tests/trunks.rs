//! Carriers and routing through the API: every field of the new collections is checked (422
//! naming it), peering is the operator's (resellers get 403), a reseller's rewrite rule sets
//! and NCOS levels are its own, and what is still referenced answers 423. What a real
//! Kamailio does with them is in tests/trunks_sip.rs.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A carrier's contract.
async fn peering_contract(app: &TestApp) -> i64 {
    app.contract("sippeering").await
}

/// Carriers A (priority 1) and B (priority 2): their groups.
async fn two_carriers(app: &TestApp) -> (i64, i64) {
    let contract = peering_contract(app).await;
    let mut ids = Vec::new();
    for (name, priority) in [("A", 1), ("B", 2)] {
        ids.push(
            app.create(
                "/api/peeringgroups/",
                json!({ "contract_id": contract, "name": name, "priority": priority }),
            )
            .await,
        );
    }
    (ids[0], ids[1])
}

async fn every_field_is_checked(app: TestApp) {
    let contract = peering_contract(&app).await;
    let (s, _) = app.get("/api/peeringgroups/").await;
    assert_eq!(s, StatusCode::OK);
    let good = json!({ "contract_id": contract, "name": "carrier-a", "priority": 1 });
    refused(
        &app,
        "/api/peeringgroups/",
        &good,
        vec![
            ("contract_id", json!({ "contract_id": 999999 })),
            ("name", json!({ "name": "" })),
            ("priority", json!({ "priority": 0 })),
            ("priority", json!({ "priority": 10 })),
            ("time_set_id", json!({ "time_set_id": 1 })),
            ("description", json!({ "description": "a\u{1}b" })),
        ],
    )
    .await;
    let group = items(
        &app.get("/api/peeringgroups/?name=carrier-a").await.1,
        "peeringgroups",
    )[0]["id"]
        .as_i64()
        .unwrap();
    refused(
        &app,
        "/api/peeringgroups/",
        &json!({ "contract_id": contract, "name": "carrier-b" }),
        vec![("name", json!({ "name": "carrier-a" }))],
    )
    .await;

    let set = app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "to-carrier" }),
        )
        .await;
    let good = json!({ "group_id": group, "name": "gw1", "ip": "127.0.0.21", "port": 5060,
                       "transport": 1, "weight": 10, "rewrite_rule_set_id": set });
    refused(
        &app,
        "/api/peeringservers/",
        &good,
        vec![
            ("group_id", json!({ "group_id": 999999 })),
            ("name", json!({ "name": "" })),
            ("ip", json!({ "ip": "carrier.example.com" })),
            ("ip", json!({ "ip": "300.1.1.1" })),
            ("host", json!({ "host": "bad host!" })),
            ("port", json!({ "port": 0 })),
            ("port", json!({ "port": 65536 })),
            ("transport", json!({ "transport": 4 })),
            ("weight", json!({ "weight": 0 })),
            ("weight", json!({ "weight": 255 })),
            (
                "rewrite_rule_set_id",
                json!({ "rewrite_rule_set_id": 999999 }),
            ),
            (
                "peer_auth_user",
                json!({ "peer_auth_register": true, "peer_auth_pass": "x" }),
            ),
            (
                "peer_auth_pass",
                json!({ "peer_auth_register": true, "peer_auth_user": "trunk" }),
            ),
            ("peer_auth_user", json!({ "peer_auth_user": "a@b" })),
            ("peer_auth_realm", json!({ "peer_auth_realm": "a b" })),
        ],
    )
    .await;
    refused(
        &app,
        "/api/peeringservers/",
        &merged(&good, json!({ "name": "gw2", "ip": "::1" })),
        vec![("name", json!({ "name": "gw1" }))],
    )
    .await;

    let good = json!({ "group_id": group, "callee_prefix": "0049", "caller_pattern": "^sip:.*@", "stopper": false });
    refused(
        &app,
        "/api/peeringrules/",
        &good,
        vec![
            ("group_id", json!({ "group_id": 999999 })),
            ("callee_prefix", json!({ "callee_prefix": "00x9" })),
            (
                "callee_prefix",
                json!({ "callee_prefix": "12345678901234567" }),
            ),
            ("callee_pattern", json!({ "callee_pattern": "^sip:(00" })),
            ("caller_pattern", json!({ "caller_pattern": "[a-" })),
            (
                "caller_pattern",
                json!({ "caller_pattern": "x".repeat(65) }),
            ),
        ],
    )
    .await;
    // The same prefix and caller pattern twice in a group; and another group's rule with the
    // same prefix and caller pattern must agree on the callee pattern (lcr holds one rule).
    refused(
        &app,
        "/api/peeringrules/",
        &json!({ "group_id": group, "callee_prefix": "0043" }),
        vec![(
            "callee_prefix",
            json!({ "callee_prefix": "0049", "caller_pattern": "^sip:.*@" }),
        )],
    )
    .await;
    let group2 = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "carrier-c", "priority": 2 }),
        )
        .await;
    // One address is one carrier (calls are recognised by it), one ip:port one gateway.
    refused(
        &app,
        "/api/peeringservers/",
        &json!({ "group_id": group, "name": "gw3", "ip": "127.0.0.21", "port": 5070, "rewrite_rule_set_id": set }),
        vec![
            ("ip", json!({ "group_id": group2 })),
            ("ip", json!({ "rewrite_rule_set_id": null })),
            ("port", json!({ "port": 5060 })),
        ],
    )
    .await;
    refused(
        &app,
        "/api/peeringrules/",
        &json!({ "group_id": group2, "callee_prefix": "0049", "caller_pattern": "^sip:.*@" }),
        vec![(
            "callee_pattern",
            json!({ "callee_pattern": "^sip:0049[0-9]+@" }),
        )],
    )
    .await;

    let good = json!({ "group_id": group, "field": "from_user", "pattern": "^[0-9]+$", "reject_code": 403, "reject_reason": "Bad caller", "priority": 1 });
    refused(
        &app,
        "/api/peeringinboundrules/",
        &good,
        vec![
            ("group_id", json!({ "group_id": 999999 })),
            ("field", json!({ "field": "colour" })),
            ("pattern", json!({ "pattern": "(" })),
            ("reject_code", json!({ "reject_code": 200 })),
            ("reject_code", json!({ "reject_code": 700 })),
            ("reject_reason", json!({ "reject_reason": "x".repeat(48) })),
        ],
    )
    .await;
    refused(
        &app,
        "/api/peeringinboundrules/",
        &merged(&good, json!({ "priority": 2 })),
        vec![("priority", json!({ "priority": 1 }))],
    )
    .await;

    let good = json!({ "set_id": set, "direction": "out", "field": "callee", "match_pattern": "^00([1-9][0-9]+)$", "replace_pattern": "+\\1", "priority": 1 });
    refused(
        &app,
        "/api/rewriterules/",
        &good,
        vec![
            ("set_id", json!({ "set_id": 999999 })),
            ("direction", json!({ "direction": "sideways" })),
            ("field", json!({ "field": "both" })),
            ("match_pattern", json!({ "match_pattern": "^(0" })),
            ("replace_pattern", json!({ "replace_pattern": "\\2" })),
            ("replace_pattern", json!({ "replace_pattern": "\\x" })),
            ("priority", json!({ "priority": -1 })),
        ],
    )
    .await;
    refused(
        &app,
        "/api/rewriterulesets/",
        &json!({ "reseller_id": 1, "name": "other" }),
        vec![
            ("name", json!({ "name": "to-carrier" })),
            ("reseller_id", json!({ "reseller_id": 999999 })),
        ],
    )
    .await;

    let good = json!({ "reseller_id": 1, "level": "no-premium", "mode": "blacklist" });
    refused(
        &app,
        "/api/ncoslevels/",
        &good,
        vec![
            ("level", json!({ "level": "" })),
            ("mode", json!({ "mode": "greylist" })),
            ("reseller_id", json!({ "reseller_id": 999999 })),
        ],
    )
    .await;
    let level = items(
        &app.get("/api/ncoslevels/?level=no-premium").await.1,
        "ncoslevels",
    )[0]["id"]
        .as_i64()
        .unwrap();
    refused(
        &app,
        "/api/ncospatterns/",
        &json!({ "ncos_level_id": level, "pattern": "0900" }),
        vec![
            ("ncos_level_id", json!({ "ncos_level_id": 999999 })),
            ("pattern", json!({ "pattern": "09x0" })),
            ("pattern", json!({ "pattern": "" })),
        ],
    )
    .await;
    refused(
        &app,
        "/api/ncospatterns/",
        &json!({ "ncos_level_id": level, "pattern": "0190" }),
        vec![("pattern", json!({ "pattern": "0900" }))],
    )
    .await;

    // Preferences naming them: the reference must exist.
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "ncosuser", 5550100).await;
    let path = format!("/api/subscriberpreferences/{sub}");
    for (name, bad) in [("ncos_id", 999999), ("rewrite_rule_set_id", 999999)] {
        let (s, v) = app.put(&path, json!({ name: bad })).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}: {v}");
        assert_eq!(v["field"], name, "{v}");
    }
    let (s, v) = app
        .put(
            &path,
            json!({ "ncos_id": level, "rewrite_rule_set_id": set }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}
both!(every_field_is_checked);

async fn peering_is_the_operators_and_the_rest_stays_within_a_reseller(app: TestApp) {
    let contract = peering_contract(&app).await;
    let group = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "carrier" }),
        )
        .await;
    let (ra, la, pa) = app.reseller("rta").await;
    let (rb, lb, pb) = app.reseller("rtb").await;
    for path in [
        "/api/peeringgroups/".to_string(),
        format!("/api/peeringgroups/{group}"),
        "/api/peeringservers/".to_string(),
        "/api/peeringrules/".to_string(),
        "/api/peeringinboundrules/".to_string(),
    ] {
        let (s, v) = send(app.req_as(Method::GET, &path, &la, &pa)).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "GET {path} as a reseller: {v}");
    }
    let (s, _) = send(
        app.req_as(Method::POST, "/api/peeringgroups/", &la, &pa)
            .json(&json!({ "contract_id": contract, "name": "mine" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    // Rewrite rule sets and NCOS levels: each reseller its own.
    let create_as = |login: String, pass: String, path: &'static str, body: Value| {
        let app = &app;
        async move {
            let (s, v) = send(
                app.req_as(Method::POST, path, &login, &pass)
                    .header("Prefer", "return=representation")
                    .json(&body),
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{path} {body}: {v}");
            v["id"].as_i64().unwrap()
        }
    };
    let set_a = create_as(
        la.clone(),
        pa.clone(),
        "/api/rewriterulesets/",
        json!({ "name": "a-set" }),
    )
    .await;
    let level_a = create_as(
        la.clone(),
        pa.clone(),
        "/api/ncoslevels/",
        json!({ "level": "a-level" }),
    )
    .await;
    let (s, v) = send(app.req_as(
        Method::GET,
        &format!("/api/rewriterulesets/{set_a}"),
        &la,
        &pa,
    ))
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["reseller_id"], ra);
    for path in [
        format!("/api/rewriterulesets/{set_a}"),
        format!("/api/ncoslevels/{level_a}"),
    ] {
        let (s, _) = send(app.req_as(Method::GET, &path, &lb, &pb)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "another reseller's {path}");
    }
    let (_, list) = send(app.req_as(Method::GET, "/api/ncoslevels/", &lb, &pb)).await;
    assert!(items(&list, "ncoslevels").is_empty(), "{list}");
    // B cannot add rules to A's set or patterns to A's level.
    for (path, body, field) in [
        (
            "/api/rewriterules/",
            json!({ "set_id": set_a, "direction": "in", "field": "callee", "match_pattern": "^0", "replace_pattern": "49" }),
            "set_id",
        ),
        (
            "/api/ncospatterns/",
            json!({ "ncos_level_id": level_a, "pattern": "0900" }),
            "ncos_level_id",
        ),
    ] {
        let (s, v) = send(app.req_as(Method::POST, path, &lb, &pb).json(&body)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{path}: {v}");
        assert_eq!(v["field"], field, "{v}");
    }
    // A set a carrier uses rewrites everyone's calls through it: its owner may no longer
    // change its rules.
    let g = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "uses-a-set" }),
        )
        .await;
    app.create(
        "/api/peeringservers/",
        json!({ "group_id": g, "name": "gw", "ip": "192.0.2.77", "rewrite_rule_set_id": set_a }),
    )
    .await;
    let (s, v) = send(
        app.req_as(Method::POST, "/api/rewriterules/", &la, &pa)
            .json(&json!({ "set_id": set_a, "direction": "out", "field": "callee", "match_pattern": "^(.*)$", "replace_pattern": "666\\1" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    let _ = rb;
}
both!(peering_is_the_operators_and_the_rest_stays_within_a_reseller);

async fn what_is_referenced_answers_423(app: TestApp) {
    let contract = peering_contract(&app).await;
    let group = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "carrier" }),
        )
        .await;
    let set = app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "s" }),
        )
        .await;
    app.create(
        "/api/rewriterules/",
        json!({ "set_id": set, "direction": "in", "field": "callee", "match_pattern": "^0([1-9].*)$", "replace_pattern": "49\\1" }),
    )
    .await;
    let server = app
        .create(
            "/api/peeringservers/",
            json!({ "group_id": group, "name": "gw", "ip": "127.0.0.22", "rewrite_rule_set_id": set }),
        )
        .await;
    let level = app
        .create(
            "/api/ncoslevels/",
            json!({ "reseller_id": 1, "level": "l" }),
        )
        .await;
    let f = app.fixture().await;
    let (s, _) = app
        .put(
            &format!("/api/domainpreferences/{}", f.domain_id),
            json!({ "ncos_id": level }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    for path in [
        format!("/api/peeringgroups/{group}"),
        format!("/api/rewriterulesets/{set}"),
        format!("/api/ncoslevels/{level}"),
    ] {
        let (s, v) = app.delete(&path).await;
        assert_eq!(s, StatusCode::LOCKED, "DELETE {path}: {v}");
    }
    assert_eq!(
        app.delete(&format!("/api/peeringservers/{server}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (s, _) = app
        .put(
            &format!("/api/domainpreferences/{}", f.domain_id),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for path in [
        format!("/api/peeringgroups/{group}"),
        format!("/api/rewriterulesets/{set}"),
        format!("/api/ncoslevels/{level}"),
    ] {
        assert_eq!(app.delete(&path).await.0, StatusCode::NO_CONTENT, "{path}");
        assert_eq!(app.get(&path).await.0, StatusCode::NOT_FOUND, "{path}");
    }
    // The set's rules went with it.
    let (_, v) = app.get(&format!("/api/rewriterules/?set_id={set}")).await;
    assert!(items(&v, "rewriterules").is_empty(), "{v}");
}
both!(what_is_referenced_answers_423);

/// What lands in a Kamailio database (SQLite, then MariaDB), what leaves it when disabled,
/// drift reported and mended, and the rows of others left alone.
async fn routing_rows_follow_the_api(engine: common::sipdb::Engine) {
    use common::sipdb::{self, SipDb};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let db = SipDb::new(engine, &app.dir);
    db.load(&sipdb::kamailio_schema(engine));
    // Rows that are not voxprov's: another lcr instance (lcr ids are one key space: voxprov
    // writes its own ids, so others keep clear of them — README), a low dialplan id, another
    // address group, another dispatcher set.
    db.exec("INSERT INTO lcr_gw (id, lcr_id, gw_name, ip_addr, port, flags) VALUES (1000001, 2, 'theirs', '192.0.2.1', 5060, 0)");
    db.exec("INSERT INTO dialplan (dpid, pr, match_op, match_exp, match_len, subst_exp, repl_exp, attrs) VALUES (1, 1, 1, '^1', 0, '^1', '2', '')");
    db.exec("INSERT INTO address (grp, ip_addr, mask, port) VALUES (7, '192.0.2.2', 32, 0)");
    db.exec("INSERT INTO dispatcher (setid, destination, flags, priority, attrs, description) VALUES (9, 'sip:192.0.2.3:5060', 0, 0, '', 'theirs')");
    let kam = app.sipserver("kam", "kamailio", &db.url(), json!({})).await;
    app.wait_synced(kam).await;

    let (ga, gb) = two_carriers(&app).await;
    let set = app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "carrier-a" }),
        )
        .await;
    app.create("/api/rewriterules/", json!({ "set_id": set, "direction": "out", "field": "callee", "match_pattern": "^00([1-9][0-9]*)$", "replace_pattern": "+\\1", "priority": 1 })).await;
    app.create("/api/rewriterules/", json!({ "set_id": set, "direction": "in", "field": "callee", "match_pattern": "^\\+(.*)$", "replace_pattern": "\\1", "priority": 1 })).await;
    let a = app.create("/api/peeringservers/", json!({ "group_id": ga, "name": "a1", "ip": "127.0.0.31", "port": 5070, "weight": 3, "probe": true, "rewrite_rule_set_id": set,
        "peer_auth_register": true, "peer_auth_user": "trunk1", "peer_auth_pass": "trunk-secret-1", "peer_auth_realm": "carrier.example" })).await;
    let b = app
        .create(
            "/api/peeringservers/",
            json!({ "group_id": gb, "name": "b1", "ip": "127.0.0.32", "transport": 2 }),
        )
        .await;
    let r1 = app
        .create(
            "/api/peeringrules/",
            json!({ "group_id": ga, "callee_prefix": "0049" }),
        )
        .await;
    app.create(
        "/api/peeringrules/",
        json!({ "group_id": gb, "callee_prefix": "0049" }),
    )
    .await;
    app.create("/api/peeringrules/", json!({ "group_id": gb, "callee_prefix": "0043", "stopper": true, "caller_pattern": "^sip:1" })).await;
    app.create("/api/peeringinboundrules/", json!({ "group_id": ga, "field": "from_user", "pattern": "^[0-9]+$", "reject_code": 488, "reject_reason": "Numbers only" })).await;
    let level = app
        .create(
            "/api/ncoslevels/",
            json!({ "reseller_id": 1, "level": "wl", "mode": "whitelist" }),
        )
        .await;
    app.create(
        "/api/ncospatterns/",
        json!({ "ncos_level_id": level, "pattern": "030" }),
    )
    .await;
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "ncos1", 5550001).await;
    let (s, v) = app
        .put(
            &format!("/api/subscriberpreferences/{sub}"),
            json!({ "ncos_id": level, "rewrite_rule_set_id": set }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.wait_synced(kam).await;

    // The server shows, per table, when voxprov changed it (no rpc_url here: no reloads).
    let (_, srv) = app.get(&format!("/api/sipservers/{kam}")).await;
    for table in [
        "lcr_gw",
        "lcr_rule",
        "lcr_rule_target",
        "dispatcher",
        "uacreg",
        "address",
        "dialplan",
        "htable",
        "userblocklist",
    ] {
        let st = &srv["status"]["tables"][table];
        assert!(st["changed_at"].is_string(), "{table}: {srv}");
        assert_eq!(st["reloaded"], false, "{table}: {srv}");
    }
    assert_eq!(
        srv["status"]["tables"]["lcr_gw"]["reload"], "lcr.reload",
        "{srv}"
    );
    let q = |sql: &str| db.query(sql);
    let tag_a = format!("gw={a};grp={ga};cro={};ceo={}", set * 10 + 3, set * 10 + 4);
    assert_eq!(
        q("SELECT id, gw_name, ip_addr, port, transport, tag FROM lcr_gw WHERE lcr_id = 1 ORDER BY id"),
        vec![
            vec![a.to_string(), "a1".into(), "127.0.0.31".into(), "5070".into(), "1".into(), tag_a],
            vec![b.to_string(), "b1".into(), "127.0.0.32".into(), "5060".into(), "2".into(), format!("gw={b};grp={gb};cro=0;ceo=0")],
        ]
    );
    // The two groups' 0049 rules are one lcr rule with a target per group, at its priority.
    assert_eq!(
        q("SELECT id, prefix, stopper FROM lcr_rule WHERE lcr_id = 1 AND prefix = '0049'"),
        vec![vec![r1.to_string(), "0049".into(), "0".into()]]
    );
    assert_eq!(
        q(&format!("SELECT gw_id, priority, weight FROM lcr_rule_target WHERE rule_id = {r1} ORDER BY gw_id")),
        vec![vec![a.to_string(), "1".into(), "3".into()], vec![b.to_string(), "2".into(), "1".into()]]
    );
    assert_eq!(
        q("SELECT stopper, from_uri FROM lcr_rule WHERE prefix = '0043'"),
        vec![vec!["1".to_string(), "^sip:1".into()]]
    );
    assert_eq!(
        q("SELECT destination, attrs FROM dispatcher WHERE setid = 1"),
        vec![vec![
            "sip:127.0.0.31:5070;transport=udp".to_string(),
            format!("gw={a}")
        ]]
    );
    assert_eq!(
        q("SELECT l_uuid, r_username, r_domain, realm, auth_username, auth_password, auth_proxy FROM uacreg"),
        vec![vec![format!("vx-ps-{a}"), "trunk1".into(), "127.0.0.31".into(), "carrier.example".into(), "trunk1".into(), "trunk-secret-1".into(), "sip:127.0.0.31:5070;transport=udp".into()]]
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM address WHERE grp = 1"), 2);
    assert_eq!(
        q("SELECT dpid, match_exp, repl_exp FROM dialplan WHERE dpid >= 10 ORDER BY dpid"),
        vec![
            vec![(set * 10 + 2).to_string(), "^\\+(.*)$".into(), "\\1".into()],
            vec![
                (set * 10 + 4).to_string(),
                "^00([1-9][0-9]*)$".into(),
                "+\\1".into()
            ],
        ]
    );
    assert_eq!(
        q(&format!("SELECT REPLACE(key_value, CHAR(9), '|') FROM htable WHERE key_name IN ('{ga}::n', '{ga}::0') ORDER BY key_name")),
        vec![vec!["from_user|488|Numbers only|^[0-9]+$".to_string()], vec!["1".to_string()]]
    );
    // Whitelist: every first digit barred, the pattern allowed.
    assert_eq!(db.count(&format!("SELECT COUNT(*) FROM userblocklist WHERE username = 'ncos{level}' AND domain = 'ncos' AND allowlist = 0")), 13);
    assert_eq!(
        q(&format!(
            "SELECT prefix FROM userblocklist WHERE username = 'ncos{level}' AND allowlist = 1"
        )),
        vec![vec!["030".to_string()]]
    );
    let prefs = q(
        "SELECT attribute, value FROM usr_preferences WHERE username = 'ncos1' ORDER BY attribute",
    );
    assert!(
        prefs.contains(&vec!["ncos_id".to_string(), level.to_string()]),
        "{prefs:?}"
    );
    assert!(
        prefs.contains(&vec![
            "rewrite_callee_in_dpid".to_string(),
            (set * 10 + 2).to_string()
        ]),
        "{prefs:?}"
    );

    // The trunk's password never reaches the journal (or hooks, which carry the same
    // snapshots).
    let (s, j) = app.get(&format!("/api/peeringservers/{a}/journal/")).await;
    assert_eq!(s, StatusCode::OK, "{j}");
    assert!(!j.to_string().contains("trunk-secret-1"), "{j}");
    assert!(j.to_string().contains("peer_auth_pass"), "{j}");

    // Drift: a changed gateway and a deleted registration are reported, then mended.
    db.exec(&format!("UPDATE lcr_gw SET port = 5099 WHERE id = {a}"));
    db.exec("DELETE FROM uacreg");
    let (s, check) = app.get(&format!("/api/sipservers/{kam}/check")).await;
    assert_eq!(s, StatusCode::OK, "{check}");
    assert_eq!(
        differences(&check),
        vec![
            ("lcr_gw".to_string(), "differs".to_string()),
            ("uacreg".to_string(), "missing".to_string())
        ],
        "{check}"
    );
    assert!(
        !check.to_string().contains("trunk-secret-1"),
        "the check shows no password: {check}"
    );
    let (s, rep) = app
        .post(&format!("/api/sipservers/{kam}/repair"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rep}");
    let (_, check) = app.get(&format!("/api/sipservers/{kam}/check")).await;
    assert_eq!(check["count"], 0, "{check}");
    assert_eq!(
        q(&format!("SELECT port FROM lcr_gw WHERE id = {a}")),
        vec![vec!["5070".to_string()]]
    );

    // Disabled: the server's rows leave every table; the others' rows stay.
    let (s, v) = app
        .patch(
            &format!("/api/peeringservers/{a}"),
            json!([{ "op": "replace", "path": "/enabled", "value": false }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    app.wait_synced(kam).await;
    assert_eq!(
        db.count(&format!("SELECT COUNT(*) FROM lcr_gw WHERE id = {a}")),
        0
    );
    assert_eq!(
        db.count(&format!(
            "SELECT COUNT(*) FROM lcr_rule_target WHERE gw_id = {a}"
        )),
        0
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM uacreg"), 0);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM dispatcher WHERE setid = 1"),
        0
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM address WHERE grp = 1"), 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM lcr_gw WHERE lcr_id = 2"), 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM dialplan WHERE dpid = 1"), 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM address WHERE grp = 7"), 1);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM dispatcher WHERE setid = 9"),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_rows_follow_the_api_on_sqlite() {
    routing_rows_follow_the_api(common::sipdb::Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_rows_follow_the_api_on_mariadb() {
    routing_rows_follow_the_api(common::sipdb::Engine::Mysql).await;
}

/// OpenSIPS (3.1 and 3.4 tables, from OpenSIPS's documented schema facts, on SQLite, MariaDB
/// and PostgreSQL): a group is a drouting carrier, a rule a dr_rules row naming the carriers
/// in priority order, trusted sources address group 1, a registration a registrant row,
/// rewrites dialplan rows, NCOS userblacklist rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensips_gets_drouting_address_registrant_dialplan_rows() {
    use common::sipdb::{self, Engine, SipDb};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let mut dbs = Vec::new();
    for version in ["3.1", "3.4"] {
        for engine in [Engine::Sqlite, Engine::Mysql, Engine::Postgres] {
            let db = SipDb::new(engine, &app.dir);
            db.exec(&sipdb::opensips_ddl(version, engine));
            let name = format!("os{}-{:?}", version.replace('.', ""), engine).to_lowercase();
            let id = app
                .sipserver(
                    &name,
                    "opensips",
                    &db.url(),
                    json!({ "sip_address": "sip:192.0.2.50:5060" }),
                )
                .await;
            dbs.push((version, engine, db, id));
        }
    }
    let (ga, gb) = two_carriers(&app).await;
    let a = app.create("/api/peeringservers/", json!({ "group_id": ga, "name": "a1", "ip": "127.0.0.31", "weight": 3, "probe": true,
        "peer_auth_register": true, "peer_auth_user": "trunk1", "peer_auth_pass": "trunk-secret-1" })).await;
    let b = app
        .create(
            "/api/peeringservers/",
            json!({ "group_id": gb, "name": "b1", "ip": "127.0.0.32", "transport": 2 }),
        )
        .await;
    app.create(
        "/api/peeringrules/",
        json!({ "group_id": gb, "callee_prefix": "0049" }),
    )
    .await;
    app.create(
        "/api/peeringrules/",
        json!({ "group_id": ga, "callee_prefix": "0049" }),
    )
    .await;
    let set = app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "s" }),
        )
        .await;
    app.create("/api/rewriterules/", json!({ "set_id": set, "direction": "out", "field": "callee", "match_pattern": "^00(.*)$", "replace_pattern": "+\\1" })).await;
    let level = app
        .create(
            "/api/ncoslevels/",
            json!({ "reseller_id": 1, "level": "bl" }),
        )
        .await;
    app.create(
        "/api/ncospatterns/",
        json!({ "ncos_level_id": level, "pattern": "0900" }),
    )
    .await;
    for (version, engine, db, id) in &dbs {
        let v = app.wait_synced(*id).await;
        let what = format!("OpenSIPS {version} on {engine:?}: {v}");
        assert_eq!(
            db.query("SELECT gwid, address, probe_mode FROM dr_gateways ORDER BY gwid"),
            vec![
                vec![format!("vxps{a}"), "sip:127.0.0.31:5060".into(), "2".into()],
                vec![
                    format!("vxps{b}"),
                    "sip:127.0.0.32:5060;transport=tcp".into(),
                    "0".into()
                ],
            ],
            "{what}"
        );
        assert_eq!(
            db.query("SELECT carrierid, gwlist, sort_alg FROM dr_carriers ORDER BY carrierid"),
            vec![
                vec![format!("vxpg{ga}"), format!("vxps{a}=3"), "W".into()],
                vec![format!("vxpg{gb}"), format!("vxps{b}=1"), "W".into()],
            ],
            "{what}"
        );
        // Hunt: group A (priority 1) before B.
        assert_eq!(
            db.query("SELECT groupid, prefix, gwlist FROM dr_rules"),
            vec![vec![
                "1".to_string(),
                "0049".into(),
                format!("#vxpg{ga},#vxpg{gb}")
            ]],
            "{what}"
        );
        assert_eq!(
            db.count("SELECT COUNT(*) FROM address WHERE grp = 1"),
            2,
            "{what}"
        );
        assert_eq!(
            db.query("SELECT aor, binding_URI, registrar, username, password FROM registrant"),
            vec![vec![
                "sip:trunk1@127.0.0.31".to_string(),
                "sip:trunk1@192.0.2.50:5060".into(),
                "sip:127.0.0.31:5060".into(),
                "trunk1".into(),
                "trunk-secret-1".into()
            ]],
            "{what}"
        );
        assert_eq!(
            db.query("SELECT dpid, match_exp, repl_exp FROM dialplan"),
            vec![vec![
                (set * 10 + 4).to_string(),
                "^00(.*)$".into(),
                "+\\1".into()
            ]],
            "{what}"
        );
        assert_eq!(
            db.query(&format!(
                "SELECT prefix, whitelist FROM userblacklist WHERE username = 'ncos{level}'"
            )),
            vec![vec!["0900".to_string(), "0".into()]],
            "{what}"
        );
        let (_, check) = app.get(&format!("/api/sipservers/{id}/check")).await;
        assert_eq!(check["count"], 0, "{what}: {check}");
    }
    // A rule removed leaves every dialplan (its NULL columns compared as empty).
    let (_, rules) = app.get(&format!("/api/rewriterules/?set_id={set}")).await;
    let rule = items(&rules, "rewriterules")[0]["id"].as_i64().unwrap();
    assert_eq!(
        app.delete(&format!("/api/rewriterules/{rule}")).await.0,
        StatusCode::NO_CONTENT
    );
    for (version, engine, db, id) in &dbs {
        app.wait_synced(*id).await;
        assert_eq!(
            db.count("SELECT COUNT(*) FROM dialplan"),
            0,
            "OpenSIPS {version} on {engine:?}"
        );
        let (_, check) = app.get(&format!("/api/sipservers/{id}/check")).await;
        assert_eq!(check["count"], 0, "{check}");
    }
}

/// Carriers reach only the servers that take them: a server added before carriers existed
/// (its database without the routing tables) keeps getting its subscribers, and one with
/// `carriers: false` keeps its own lcr rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carriers_go_only_where_asked_and_old_databases_keep_working() {
    use common::sipdb::{self, Engine, SipDb};
    let app = TestApp::spawn(Backend::Sqlite).await;
    let old = SipDb::new(Engine::Sqlite, &app.dir);
    let schema: Vec<_> = sipdb::kamailio_schema(Engine::Sqlite)
        .into_iter()
        .take(6)
        .collect();
    old.load(&schema);
    let off = SipDb::new(Engine::Sqlite, &app.dir);
    off.load(&sipdb::kamailio_schema(Engine::Sqlite));
    off.exec("INSERT INTO lcr_gw (id, lcr_id, gw_name, ip_addr, port, flags) VALUES (1, 1, 'theirs', '192.0.2.1', 5060, 0)");
    let s_old = app
        .sipserver("old", "kamailio", &old.url(), json!({}))
        .await;
    let s_off = app
        .sipserver("off", "kamailio", &off.url(), json!({ "carriers": false }))
        .await;
    let (_, v) = app.get(&format!("/api/sipservers/{s_off}")).await;
    assert_eq!(v["carriers"], false, "{v}");
    let (_, v) = app.get(&format!("/api/sipservers/{s_old}")).await;
    assert_eq!(
        v["carriers"], true,
        "new servers take carriers by default: {v}"
    );
    let contract = peering_contract(&app).await;
    let g = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "A" }),
        )
        .await;
    app.create(
        "/api/peeringservers/",
        json!({ "group_id": g, "name": "a", "ip": "127.0.0.41" }),
    )
    .await;
    app.create(
        "/api/peeringrules/",
        json!({ "group_id": g, "callee_prefix": "49" }),
    )
    .await;
    let f = app.fixture().await;
    app.subscriber(&f, "still", 5550123).await;
    app.wait_synced(s_old).await;
    app.wait_synced(s_off).await;
    assert_eq!(
        old.count("SELECT COUNT(*) FROM subscriber WHERE username = 'still'"),
        1
    );
    assert_eq!(
        off.count("SELECT COUNT(*) FROM subscriber WHERE username = 'still'"),
        1
    );
    assert_eq!(
        off.query("SELECT gw_name FROM lcr_gw"),
        vec![vec!["theirs".to_string()]]
    );
    for id in [s_old, s_off] {
        let (_, check) = app.get(&format!("/api/sipservers/{id}/check")).await;
        assert_eq!(check["count"], 0, "{check}");
    }
}
