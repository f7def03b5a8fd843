//! SIP servers' own tables, written by voxprov: what lands where, drift and its repair, an
//! outage and the catch-up, home servers, and OpenSIPS's published schema. (Kamailio itself,
//! answering sipp, is in kamailio.rs.)

mod common;

use std::time::Duration;

use common::sipdb::{self, Engine, SipDb};
use common::{items, Backend, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn kamailio_db(app: &TestApp, engine: Engine) -> SipDb {
    let db = SipDb::new(engine, &app.dir);
    db.load(&sipdb::kamailio_schema(engine));
    db
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opensips_tables_made_from_its_schema_facts_get_the_right_rows() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    // Every dialect and both subscriber layouts: 3.1 (ha1, ha1b) and 3.2+ (SHA-2 columns).
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
                    json!({ "store_password": true }),
                )
                .await;
            dbs.push((version, engine, db, id));
        }
    }
    let short = "pw-short-1";
    let long = "a-password-longer-than-25-characters";
    let s1 = app
        .create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "ann", "password": short,
                    "primary_number": { "cc": 43, "ac": 1, "sn": 5550001 },
                    "alias_numbers": [{ "cc": 43, "ac": 1, "sn": 5550002 }] }),
        )
        .await;
    app.create(
        "/api/subscribers/",
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "ben", "password": long }),
    )
    .await;
    for (version, engine, db, id) in &dbs {
        let v = app.wait_synced(*id).await;
        let what = format!("OpenSIPS {version} on {engine:?}");
        let expected_version = if *version == "3.1" { 7 } else { 8 };
        assert_eq!(v["detected_schema_version"], expected_version, "{what}");
        let d = &f.domain;
        let a1 = format!("ann:{d}:{short}");
        let row = db.query(&format!(
            "SELECT password, ha1 FROM subscriber WHERE username = 'ann' AND domain = '{d}'"
        ));
        assert_eq!(row.len(), 1, "{what}: {row:?}");
        assert_eq!(
            row[0][0].trim(),
            short,
            "{what}: stored in clear when asked"
        );
        assert_eq!(row[0][1], sipdb::md5_hex(&a1), "{what}");
        if *version == "3.1" {
            let hb = db.query(&format!(
                "SELECT ha1b FROM subscriber WHERE username = 'ann' AND domain = '{d}'"
            ));
            assert_eq!(
                hb[0][0],
                sipdb::md5_hex(&format!("ann@{d}:{d}:{short}")),
                "{what}"
            );
        } else {
            let sha = db.query(&format!(
                "SELECT ha1_sha256, ha1_sha512t256 FROM subscriber WHERE username = 'ann' AND domain = '{d}'"
            ));
            assert_eq!(sha[0][0], sipdb::sha256_hex(&a1), "{what}");
            assert_eq!(sha[0][1], sipdb::sha512_256_hex(&a1), "{what}");
        }
        // 25 characters is all OpenSIPS's password column holds: the longer one is not stored
        // (and not truncated); its hashes still authenticate.
        let ben = db.query(&format!(
            "SELECT password, ha1 FROM subscriber WHERE username = 'ben' AND domain = '{d}'"
        ));
        assert_eq!(ben[0][0].trim(), "", "{what}");
        assert_eq!(
            ben[0][1],
            sipdb::md5_hex(&format!("ben:{d}:{long}")),
            "{what}"
        );
        let aliases = db.query(&format!(
            "SELECT alias_username, username FROM dbaliases WHERE alias_domain = '{d}' ORDER BY alias_username"
        ));
        assert_eq!(
            aliases,
            vec![
                vec!["4315550001".to_string(), "ann".to_string()],
                vec!["4315550002".to_string(), "ann".to_string()]
            ],
            "{what}"
        );
        assert_eq!(
            db.count(&format!("SELECT COUNT(*) FROM domain WHERE domain = '{d}'")),
            1,
            "{what}"
        );
        let (s, check) = app.get(&format!("/api/sipservers/{id}/check")).await;
        assert_eq!(s, StatusCode::OK, "{check}");
        assert_eq!(check["count"], 0, "{what}: {check}");
    }
    // Locked: gone from every server, numbers included.
    let (s, _) = app
        .patch(
            &format!("/api/subscribers/{s1}"),
            json!([{ "op": "replace", "path": "/lock", "value": 4 }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for (version, engine, db, id) in &dbs {
        app.wait_synced(*id).await;
        let n = db.count("SELECT COUNT(*) FROM subscriber WHERE username = 'ann'");
        let a = db.count("SELECT COUNT(*) FROM dbaliases WHERE username = 'ann'");
        assert_eq!((n, a), (0, 0), "OpenSIPS {version} on {engine:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_by_sync_check_and_mended_by_sync_repair() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    let db = kamailio_db(&app, Engine::Mysql);
    let id = app.sipserver("kam", "kamailio", &db.url(), json!({})).await;
    for (i, u) in ["alice", "bob", "carol"].iter().enumerate() {
        app.subscriber(&f, u, 7_000_000 + i as u64).await;
    }
    app.wait_synced(id).await;
    let (code, out, err) = app.cli(&["sync", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("kam (kamailio, schema 7): 0 differences"),
        "{out}"
    );

    let d = &f.domain;
    db.exec(&format!(
        "UPDATE subscriber SET ha1 = 'tampered' WHERE username = 'alice' AND domain = '{d}';
         DELETE FROM dbaliases WHERE username = 'bob';
         INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES ('mallory', '{d}', 'x', 'y');
         INSERT INTO subscriber (username, domain, ha1, ha1b) VALUES ('keep', 'not-ours.example', 'x', 'y');
         DELETE FROM domain WHERE domain = '{d}';"
    ));
    let (code, out, _) = app.cli(&["sync", "check", "--server", "kam"]);
    assert_eq!(code, 1, "differences give exit status 1: {out}");
    for line in [
        format!("subscriber alice@{d} differs: ha1: (hidden) -> (hidden)"),
        format!("dbaliases 49307000001@{d} missing"),
        format!("subscriber mallory@{d} extra"),
        format!("domain {d} missing"),
    ] {
        assert!(out.contains(&line), "expected '{line}' in:\n{out}");
    }
    assert!(!out.contains("tampered"), "credentials never shown: {out}");
    assert!(
        !out.contains("not-ours"),
        "rows outside voxprov's domains are not voxprov's: {out}"
    );
    let (s, api) = app.get(&format!("/api/sipservers/{id}/check")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(api["count"], 4, "{api}");

    let before = app.journal_count().await;
    let (s, rep) = app
        .post(&format!("/api/sipservers/{id}/repair"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rep}");
    assert_eq!(rep["count"], 4);
    assert_eq!(
        app.journal_count().await,
        before + 1,
        "a repair is journalled"
    );
    let (_, j) = app
        .get("/api/journals/?resource=sipservers&operation=repair")
        .await;
    let j = items(&j, "journals");
    assert_eq!(j[0]["actor"], "administrator", "{j:?}");
    assert_eq!(j[0]["after"]["repaired"], 4);

    let (code, out, _) = app.cli(&["sync", "check"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        db.query(&format!(
            "SELECT ha1 FROM subscriber WHERE username = 'alice' AND domain = '{d}'"
        ))[0][0],
        sipdb::md5_hex(&format!("alice:{d}:sip-secret-1"))
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM subscriber WHERE username = 'keep'"),
        1
    );

    // The CLI repairs as well.
    db.exec("DELETE FROM subscriber WHERE username = 'carol'");
    let (code, out, _) = app.cli(&["sync", "repair"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 difference, repaired"), "{out}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM subscriber WHERE username = 'carol'"),
        1
    );
}

/// A TCP relay to MariaDB that a test can cut, as a network failure would.
struct Relay {
    port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Relay {
    async fn start(port: u16) -> Relay {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let mut conns = Vec::new();
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    a = listener.accept() => {
                        let Ok((mut inbound, _)) = a else { break };
                        conns.push(tokio::spawn(async move {
                            let host = sipdb::mysql_host();
                            if let Ok(mut out) = tokio::net::TcpStream::connect((host.as_str(), 3306)).await {
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            }
                        }));
                    }
                }
            }
            for c in conns {
                c.abort();
            }
        });
        Relay {
            port,
            stop: Some(tx),
        }
    }
    fn cut(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_server_loses_nothing_and_catches_up_by_itself() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    let db = kamailio_db(&app, Engine::Mysql);
    let mut relay = Relay::start(0).await;
    let url = format!("mysql://root@127.0.0.1:{}/{}", relay.port, db.name);
    let down = app
        .sipserver("behind-relay", "kamailio", &url, json!({}))
        .await;
    let direct = app
        .sipserver(
            "direct",
            "kamailio",
            &kamailio_db(&app, Engine::Sqlite).url(),
            json!({}),
        )
        .await;
    app.wait_synced(down).await;

    relay.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let total = 1000;
    let mut behind_seen = 0;
    let mut tasks = tokio::task::JoinSet::new();
    let app = std::sync::Arc::new(app);
    for w in 0..8u64 {
        let app = app.clone();
        let (cust, dom) = (f.customer_id, f.domain.clone());
        tasks.spawn(async move {
            let mut behind = 0;
            for i in (w..total).step_by(8) {
                let r = app
                    .req(Method::POST, "/api/subscribers/")
                    .json(&json!({ "customer_id": cust, "domain": dom, "username": format!("u{i}"),
                                   "password": format!("pw-{i}-secret"), "primary_number": { "cc": 44, "ac": 20, "sn": 8_000_000 + i } }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::CREATED, "creation {i}");
                if let Some(h) = r.headers().get("voxprov-sync-behind") {
                    assert_eq!(h.to_str().unwrap(), "behind-relay", "only the cut-off server is behind");
                    behind += 1;
                }
            }
            behind
        });
    }
    while let Some(r) = tasks.join_next().await {
        behind_seen += r.unwrap();
    }
    assert!(
        behind_seen > total * 9 / 10,
        "responses name the server behind ({behind_seen})"
    );
    let (_, v) = app.get(&format!("/api/sipservers/{down}")).await;
    assert_eq!(v["status"]["state"], "failing", "{v}");
    assert!(
        v["status"]["backlog"].as_i64().unwrap() >= total as i64,
        "{v}"
    );
    assert!(v["status"]["last_error"].is_string(), "{v}");
    // The other server was not held back.
    app.wait_synced(direct).await;
    // Carriers made while it is away reach it too.
    let ct = app.contract("sippeering").await;
    let g = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": ct, "name": "carrier" }),
        )
        .await;
    app.create(
        "/api/peeringservers/",
        json!({ "group_id": g, "name": "gw", "ip": "192.0.2.7" }),
    )
    .await;
    app.create(
        "/api/peeringrules/",
        json!({ "group_id": g, "callee_prefix": "49" }),
    )
    .await;

    let _relay = Relay::start(relay.port).await;
    app.wait_synced(down).await;
    assert_eq!(db.count("SELECT COUNT(*) FROM subscriber"), total as i64);
    assert_eq!(db.count("SELECT COUNT(*) FROM dbaliases"), total as i64);
    assert_eq!(
        db.count("SELECT COUNT(*) FROM lcr_gw WHERE ip_addr = '192.0.2.7'"),
        1
    );
    assert_eq!(db.count("SELECT COUNT(*) FROM lcr_rule_target"), 1);
    assert_eq!(db.count("SELECT COUNT(*) FROM address WHERE grp = 1"), 1);
    let (code, out, err) = app.cli(&["sync", "check"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("behind-relay (kamailio, schema 7): 0 differences"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_servers_share_the_subscribers_and_the_front_proxy_routes_to_them() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    let (da, db_, dp) = (
        kamailio_db(&app, Engine::Sqlite),
        kamailio_db(&app, Engine::Sqlite),
        kamailio_db(&app, Engine::Sqlite),
    );
    let a = app
        .sipserver(
            "home-a",
            "kamailio",
            &da.url(),
            json!({ "role": "home", "sip_address": "sip:10.0.0.1:5060" }),
        )
        .await;
    let b = app
        .sipserver(
            "home-b",
            "kamailio",
            &db_.url(),
            json!({ "role": "home", "sip_address": "sip:10.0.0.2:5060" }),
        )
        .await;
    let p = app
        .sipserver(
            "proxy",
            "kamailio",
            &dp.url(),
            json!({ "role": "proxy", "routing_attribute": "home" }),
        )
        .await;
    let mut homes = Vec::new();
    for (i, u) in ["u1", "u2", "u3", "u4"].iter().enumerate() {
        let (s, created) = app
            .post(
                "/api/subscribers/",
                json!({ "customer_id": f.customer_id, "domain": f.domain, "username": u, "password": "sip-secret-1",
                        "primary_number": { "cc": 49, "ac": 30, "sn": 6_000_000 + i as u64 } }),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{created}");
        let id = created["id"].as_i64().unwrap();
        let (_, v) = app.get(&format!("/api/subscribers/{id}")).await;
        assert_eq!(
            created["home_server_id"], v["home_server_id"],
            "the creation's answer names the home it was given"
        );
        homes.push(v["home_server_id"].as_i64().unwrap());
    }
    assert_eq!(
        homes,
        vec![a, b, a, b],
        "each goes to the least-loaded home server"
    );
    let explicit = app
        .create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "u5", "password": "pw-home-xx", "home_server_id": b }),
        )
        .await;
    let (s, v) = app
        .post(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "u6", "password": "sip-secret-1", "home_server_id": p }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("home_server_id"),
        "{v}"
    );
    for id in [a, b, p] {
        app.wait_synced(id).await;
    }
    let users = |db: &SipDb| -> Vec<String> {
        db.query("SELECT username FROM subscriber ORDER BY username")
            .into_iter()
            .map(|r| r[0].clone())
            .collect()
    };
    assert_eq!(users(&da), vec!["u1", "u3"]);
    assert_eq!(users(&db_), vec!["u2", "u4", "u5"]);
    assert_eq!(
        users(&dp),
        vec!["u1", "u2", "u3", "u4", "u5"],
        "the proxy knows everyone"
    );
    let routes =
        dp.query("SELECT username, attribute, type, value FROM usr_preferences ORDER BY username");
    assert_eq!(routes.len(), 5, "{routes:?}");
    assert_eq!(routes[0], vec!["u1", "home", "0", "sip:10.0.0.1:5060"]);
    assert_eq!(routes[4], vec!["u5", "home", "0", "sip:10.0.0.2:5060"]);

    // Re-homing moves the subscriber and its route.
    let (s, _) = app
        .patch(
            &format!("/api/subscribers/{explicit}"),
            json!([{ "op": "replace", "path": "/home_server_id", "value": a }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for id in [a, b, p] {
        app.wait_synced(id).await;
    }
    assert_eq!(users(&da), vec!["u1", "u3", "u5"]);
    assert_eq!(users(&db_), vec!["u2", "u4"]);
    assert_eq!(
        dp.query("SELECT value FROM usr_preferences WHERE username = 'u5'"),
        vec![vec!["sip:10.0.0.1:5060".to_string()]]
    );
    // A home server's address feeds the proxy's rows: the write returns once the proxy's
    // full load it asked for is done (no waiting here), and does not say the proxy is behind.
    let r = app
        .req(Method::PATCH, &format!("/api/sipservers/{b}"))
        .header("Prefer", "return=representation")
        .header("Content-Type", "application/json-patch+json")
        .body(
            json!([{ "op": "replace", "path": "/sip_address", "value": "sip:10.0.0.22:5060" }])
                .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let behind = r
        .headers()
        .get("voxprov-sync-behind")
        .map(|h| h.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        !behind.split(',').any(|n| n.trim() == "proxy"),
        "the proxy answered late: {behind}"
    );
    assert_eq!(
        dp.query("SELECT value FROM usr_preferences WHERE username = 'u2'"),
        vec![vec!["sip:10.0.0.22:5060".to_string()]]
    );
    let (s, v) = app.delete(&format!("/api/sipservers/{b}")).await;
    assert_eq!(s, StatusCode::LOCKED, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipservers_are_validated_admin_only_and_never_show_the_database_password() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    for (body, field) in [
        (
            json!({ "name": "x", "driver": "asterisk", "db_url": "sqlite:////tmp/x.db" }),
            "driver",
        ),
        (
            json!({ "name": "x", "driver": "kamailio", "db_url": "oracle://h/db" }),
            "db_url",
        ),
        (
            json!({ "name": "x", "driver": "kamailio", "db_url": "sqlite:relative.db" }),
            "db_url",
        ),
        (json!({ "name": "x", "driver": "kamailio" }), "db_url"),
        (
            json!({ "name": "bad name", "driver": "kamailio", "db_url": "sqlite:////tmp/x.db" }),
            "name",
        ),
        (
            json!({ "name": "x", "driver": "kamailio", "db_url": "sqlite:////tmp/x.db", "role": "home" }),
            "sip_address",
        ),
        (
            json!({ "name": "x", "driver": "kamailio", "db_url": "sqlite:////tmp/x.db", "rpc_url": "ftp://x" }),
            "rpc_url",
        ),
        (
            json!({ "name": "x", "driver": "kamailio", "db_url": "sqlite:////tmp/x.db", "domains": ["nope.example"] }),
            "domains[0]",
        ),
        (
            json!({ "name": "x", "driver": "kamailio", "db_url": "sqlite:////tmp/x.db", "schema_version": 0 }),
            "schema_version",
        ),
    ] {
        let (s, v) = app.post("/api/sipservers/", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let url = "mysql://kamailio:s3cr3t-pw@127.0.0.1:1/kamailio";
    let id = app
        .sipserver("k1", "kamailio", url, json!({ "enabled": false }))
        .await;
    let (s, v) = app.get(&format!("/api/sipservers/{id}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v["db_url"],
        "mysql://kamailio:********@127.0.0.1:1/kamailio"
    );
    assert_eq!(v["status"]["state"], "disabled");
    // GET → PUT keeps the stored URL.
    let (s, _) = app.put(&format!("/api/sipservers/{id}"), v.clone()).await;
    assert_eq!(s, StatusCode::OK);
    let (code, out, _) = app.cli(&["sync", "check", "--server", "k1", "--json"]);
    assert_eq!(
        code, 2,
        "an unreachable server is trouble, not a difference: {out}"
    );
    assert!(!out.contains("s3cr3t"), "{out}");
    let (_, j) = app.get("/api/journals/?resource=sipservers").await;
    assert!(!j.to_string().contains("s3cr3t"), "{j}");
    let (s, v) = app
        .post(
            "/api/sipservers/",
            json!({ "name": "k1", "driver": "kamailio", "db_url": url }),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("name"))
    );

    let (_, login, pass) = app.reseller("acme").await;
    let r = app
        .req_as(Method::GET, "/api/sipservers/", &login, &pass)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = app
        .req_as(
            Method::GET,
            &format!("/api/sipservers/{id}/check"),
            &login,
            &pass,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// The value of the series `name{labels}` in a Prometheus text scrape (labels as written,
/// e.g. `sipserver="down"`; empty for none).
fn series(scrape: &str, name: &str, labels: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?;
        let (head, value) = rest.rsplit_once(' ')?;
        // Labels in any order: each of the given ones is there.
        let ok = if labels.is_empty() {
            head.is_empty()
        } else {
            head.starts_with('{') && labels.split(',').all(|l| head.contains(l))
        };
        ok.then(|| value.parse().ok()).flatten()
    })
}

/// /metrics is the operator's, and its series move with what happens: requests are counted by
/// route template, and a SIP server whose database is cut off shows a rising backlog and
/// `up 0`, then 0 and `up 1` once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_requests_and_a_server_down_and_back() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    let (s, _) = common::send(app.client.get(app.url("/metrics"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "a stranger gets no metrics");
    let (_, login, pass) = app.reseller("metricsr").await;
    let (s, _) = common::send(app.req_as(Method::GET, "/metrics", &login, &pass)).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a reseller gets no metrics");
    let scrape = || async {
        let r = app.req(Method::GET, "/metrics").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    };

    let db = kamailio_db(&app, Engine::Mysql);
    let mut relay = Relay::start(0).await;
    let port = relay.port;
    let url = format!("mysql://root@127.0.0.1:{port}/{}", db.name);
    let id = app.sipserver("down", "kamailio", &url, json!({})).await;
    app.wait_synced(id).await;
    let before = scrape().await;
    assert_eq!(
        series(&before, "voxprov_sipserver_backlog", "sipserver=\"down\""),
        Some(0.0),
        "{before}"
    );
    assert_eq!(
        series(&before, "voxprov_sipserver_up", "sipserver=\"down\""),
        Some(1.0),
        "{before}"
    );
    let posts_before = series(
        &before,
        "voxprov_http_requests_total",
        "method=\"POST\",route=\"/api/subscribers/\",status=\"201\"",
    )
    .unwrap_or(0.0);

    relay.cut();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..5 {
        app.subscriber(&f, &format!("m{i}"), 7_000_000 + i).await;
    }
    let start = std::time::Instant::now();
    let during = loop {
        let s = scrape().await;
        if series(&s, "voxprov_sipserver_up", "sipserver=\"down\"") == Some(0.0) {
            break s;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "never seen down: {s}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let backlog = series(&during, "voxprov_sipserver_backlog", "sipserver=\"down\"").unwrap();
    assert!(backlog >= 5.0, "backlog {backlog} while cut off");
    assert_eq!(
        series(
            &during,
            "voxprov_http_requests_total",
            "method=\"POST\",route=\"/api/subscribers/\",status=\"201\""
        )
        .unwrap()
            - posts_before,
        5.0,
        "{during}"
    );
    assert!(series(&during, "voxprov_changes_head", "").unwrap() >= 5.0);
    assert!(
        during.contains("voxprov_http_request_duration_seconds_bucket"),
        "{during}"
    );
    assert!(series(&during, "voxprov_process_resident_memory_bytes", "").unwrap() > 1e6);

    // Back: the backlog drains to 0 and it is up again.
    let _relay = Relay::start(port).await;
    app.wait_synced(id).await;
    let start = std::time::Instant::now();
    loop {
        let s = scrape().await;
        if series(&s, "voxprov_sipserver_backlog", "sipserver=\"down\"") == Some(0.0)
            && series(&s, "voxprov_sipserver_up", "sipserver=\"down\"") == Some(1.0)
        {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "never back: {s}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let back = scrape().await;
    assert!(
        series(
            &back,
            "voxprov_sipserver_apply_duration_seconds_count",
            "sipserver=\"down\""
        )
        .unwrap_or(0.0)
            >= 1.0,
        "batches applied are timed: {back}"
    );

    // Phones: fetches by vendor and outcome, refusals, the cache.
    let (mac, boot, _) = app.yealink_phone(f.customer_id, "6b6b6b").await;
    let get = |path: String| {
        let rb = app
            .client
            .get(app.url(&path))
            .header("User-Agent", "Yealink SIP-T46U 108.86.0.20");
        async move { rb.send().await.unwrap().status() }
    };
    let ok = "outcome=\"ok\",vendor=\"yealink\"";
    let refused = "outcome=\"refused\"";
    let m0 = scrape().await;
    let (ok0, refused0) = (
        series(&m0, "voxprov_phone_fetches_total", ok).unwrap_or(0.0),
        series(&m0, "voxprov_phone_fetches_total", refused).unwrap_or(0.0),
    );
    assert_eq!(get(format!("/prov/{boot}/{mac}.cfg")).await, StatusCode::OK);
    assert_eq!(
        get(format!("/prov/{}/{mac}.cfg", "x".repeat(32))).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(format!("/prov/{}/{mac}.cfg", "y".repeat(32))).await,
        StatusCode::NOT_FOUND
    );
    let m1 = scrape().await;
    assert_eq!(
        series(&m1, "voxprov_phone_fetches_total", ok).unwrap() - ok0,
        1.0,
        "{m1}"
    );
    assert_eq!(
        series(&m1, "voxprov_phone_fetches_total", refused).unwrap() - refused0,
        2.0,
        "{m1}"
    );
    assert!(series(&m1, "voxprov_phone_failures_total", "").unwrap() >= 2.0);
    assert!(
        series(&m1, "voxprov_phone_cache_devices", "").unwrap() >= 1.0,
        "{m1}"
    );
    assert_eq!(series(&m1, "voxprov_phone_banned_addresses", ""), Some(0.0));
}
