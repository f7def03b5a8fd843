//! Carriers and routing enforced by a real Kamailio (the shipped configuration) on SQLite and
//! on MariaDB: sipp plays the subscribers, the carriers (gateways on 127.0.0.x), a carrier's
//! registrar and carriers calling in. Every object is made through the API; nothing is written
//! to Kamailio's tables by the test.

mod common;

use std::time::{Duration, Instant};

use common::kamailio::{invites, Kamailio, FAST_TIMERS as TIMERS};
use common::sipdb::{Engine, SipDb};
use common::{Backend, Fixture, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct World {
    app: TestApp,
    db: SipDb,
    k: Kamailio,
    kam: i64,
    f: Fixture,
    contract: i64,
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

async fn world(engine: Engine) -> World {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let f = app.fixture().await;
    let db = Kamailio::create_db(engine, &app.dir);
    let k = Kamailio::start_with(&db, &app.dir, TIMERS).await;
    let kam = app
        .sipserver(
            "kam",
            "kamailio",
            &db.url(),
            json!({ "rpc_url": k.rpc_url() }),
        )
        .await;
    app.wait_synced(kam).await;
    let contract = app.contract("sippeering").await;
    World {
        app,
        db,
        k,
        kam,
        f,
        contract,
    }
}

impl World {
    async fn group(&self, name: &str, priority: i64) -> i64 {
        self.app
            .create(
                "/api/peeringgroups/",
                json!({ "contract_id": self.contract, "name": name, "priority": priority }),
            )
            .await
    }
    async fn server(&self, group: i64, name: &str, ip: &str, port: u16, more: Value) -> i64 {
        let mut body = json!({ "group_id": group, "name": name, "ip": ip, "port": port });
        if let (Value::Object(b), Value::Object(m)) = (&mut body, more) {
            b.extend(m);
        }
        self.app.create("/api/peeringservers/", body).await
    }
    async fn rule(&self, group: i64, prefix: &str, more: Value) -> i64 {
        let mut body = json!({ "group_id": group, "callee_prefix": prefix });
        if let (Value::Object(b), Value::Object(m)) = (&mut body, more) {
            b.extend(m);
        }
        self.app.create("/api/peeringrules/", body).await
    }
    async fn subscriber(&self, user: &str, sn: u64) -> i64 {
        self.app
            .create(
                "/api/subscribers/",
                json!({ "customer_id": self.f.customer_id, "domain": self.f.domain, "username": user,
                        "password": pw(user), "primary_number": { "cc": 49, "ac": 30, "sn": sn } }),
            )
            .await
    }
    async fn synced(&self) {
        self.app.wait_synced(self.kam).await;
    }
    /// A subscriber's call that must end with `code`.
    fn call(&self, user: &str, number: &str, code: u16, why: &str) {
        let r = self
            .k
            .sub_call(user, &pw(user), &self.f.domain, number, code);
        assert!(
            r.ok,
            "{why}: {user} → {number} expected {code}, sipp saw {:?}\n--- kamailio ---\n{}",
            r.responses,
            tail(&self.k.log())
        );
    }
    async fn patch(&self, path: &str, field: &str, value: Value) {
        let (s, v) = self
            .app
            .patch(
                path,
                json!([{ "op": "replace", "path": format!("/{field}"), "value": value }]),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
    }
    /// Waits until `user`'s contact on `port` is registered.
    async fn registered(&self, user: &str, port: u16) {
        let start = Instant::now();
        while self.db.count(&format!(
            "SELECT COUNT(*) FROM location WHERE username = '{user}' AND contact LIKE '%:{port}%'"
        )) == 0
        {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{user} did not register: {}",
                tail(&self.k.log())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A subscriber's SIP password (the policy refuses one holding the username).
fn pw(user: &str) -> String {
    format!("sip-secret-{}", user.len() * 7 + 3)
}

fn port() -> u16 {
    common::kamailio::free_port()
}

/// A subscriber's call goes to carrier A rewritten by A's rule set (after the caller's own
/// in-rewrite); A refusing with 503, or not answering within the progress timeout, sends it
/// to B.
async fn outbound_calls_are_rewritten_and_fail_over(engine: Engine) {
    let w = world(engine).await;
    w.subscriber("alice", 5550001).await;
    // The domain normalises what its subscribers dial: 00 → international without prefix.
    let dom_set = w
        .app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "domain-in" }),
        )
        .await;
    w.app
        .create(
            "/api/rewriterules/",
            json!({ "set_id": dom_set, "direction": "in", "field": "callee",
        "match_pattern": "^00([1-9][0-9]+)$", "replace_pattern": "\\1" }),
        )
        .await;
    let (s, v) = w
        .app
        .put(
            &format!("/api/domainpreferences/{}", w.f.domain_id),
            json!({ "rewrite_rule_set_id": dom_set }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // Carrier A wants numbers with a +.
    let a_set = w
        .app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "carrier-a-out" }),
        )
        .await;
    w.app
        .create(
            "/api/rewriterules/",
            json!({ "set_id": a_set, "direction": "out", "field": "callee",
        "match_pattern": "^([1-9][0-9]+)$", "replace_pattern": "+\\1" }),
        )
        .await;
    let (pa, pb) = (port(), port());
    let ga = w.group("A", 1).await;
    let gb = w.group("B", 2).await;
    w.server(
        ga,
        "a",
        "127.0.0.2",
        pa,
        json!({ "rewrite_rule_set_id": a_set }),
    )
    .await;
    w.server(gb, "b", "127.0.0.3", pb, json!({})).await;
    w.rule(ga, "49", json!({})).await;
    w.rule(gb, "49", json!({})).await;
    w.synced().await;

    // Kamailio's own translation agrees, without SIP.
    let t =
        w.k.rpc(
            "dialplan.translate",
            json!([dom_set * 10 + 2, "0049301234"]),
        )
        .await;
    assert_eq!(t["Output"], "49301234", "{t}");
    let t =
        w.k.rpc("dialplan.translate", json!([a_set * 10 + 4, "49301234"]))
            .await;
    assert_eq!(
        t["Output"],
        "+49301234",
        "{t}\n{:?}\n{}\n{}",
        w.db.query("SELECT dpid, match_exp, repl_exp FROM dialplan"),
        w.app.get(&format!("/api/sipservers/{}", w.kam)).await.1,
        tail(&w.k.log())
    );

    let a = w.k.carrier("carrier_uas.xml", "127.0.0.2", pa, "A", &[]);
    let b = w.k.carrier("carrier_uas.xml", "127.0.0.3", pb, "B", &[]);
    w.call("alice", "0049301234", 200, "route to A");
    let (am, bm) = (a.stop().0, b.stop().0);
    assert_eq!(invites(&am), vec!["+49301234"], "A's Request-URI\n{am}");
    assert!(invites(&bm).is_empty(), "B got nothing\n{bm}");

    let a = w.k.carrier("carrier_503.xml", "127.0.0.2", pa, "A", &[]);
    let b = w.k.carrier("carrier_uas.xml", "127.0.0.3", pb, "B", &[]);
    w.call("alice", "0049301234", 200, "A answers 503: hunt to B");
    let (am, bm) = (a.stop().0, b.stop().0);
    assert_eq!(invites(&am), vec!["+49301234"], "{am}");
    assert_eq!(
        invites(&bm),
        vec!["49301234"],
        "B gets the number by its own (empty) rules\n{bm}"
    );

    let a = w.k.carrier("carrier_silent.xml", "127.0.0.2", pa, "A", &[]);
    let b = w.k.carrier("carrier_uas.xml", "127.0.0.3", pb, "B", &[]);
    let started = Instant::now();
    w.call(
        "alice",
        "0049301234",
        200,
        "A silent: B after the progress timeout",
    );
    let took = started.elapsed();
    let (am, bm) = (a.stop().0, b.stop().0);
    assert!(!invites(&am).is_empty(), "A was tried first\n{am}");
    assert_eq!(invites(&bm), vec!["49301234"], "{bm}");
    // Not a timing assertion on voxprov: the progress timeout (2 s here) is far below the ring
    // timeout (4 s) and tm's own (30 s by default), so B can only have come from it.
    assert!(took < Duration::from_secs(30), "{took:?}");

    // A rings and then never answers: no failover (the ring timeout is the caller's).
    let a = w.k.carrier(
        "carrier_silent.xml",
        "127.0.0.2",
        pa,
        "A",
        &["-set", "ring", "1"],
    );
    let b = w.k.carrier("carrier_uas.xml", "127.0.0.3", pb, "B", &[]);
    w.call(
        "alice",
        "0049301234",
        408,
        "A rang: its timeout goes back to the caller",
    );
    let (_, bm) = (a.stop().0, b.stop().0);
    assert!(invites(&bm).is_empty(), "no failover after ringing\n{bm}");
}

/// Longest prefix first, a stopper hides shorter prefixes, a caller pattern selects, and a
/// balance route shares 200 calls by weight.
async fn rules_choose_the_gateway(engine: Engine) {
    let w = world(engine).await;
    w.subscriber("alice", 5550001).await;
    w.subscriber("bob", 5550002).await;
    let (pa, pb, pc, pd) = (port(), port(), port(), port());
    let ga = w.group("A", 1).await;
    let gb = w.group("B", 1).await;
    let gc = w.group("C", 1).await;
    w.server(ga, "a", "127.0.0.2", pa, json!({})).await;
    w.server(gb, "b", "127.0.0.3", pb, json!({})).await;
    w.server(gc, "c", "127.0.0.4", pc, json!({ "weight": 1 }))
        .await;
    w.server(gc, "d", "127.0.0.5", pd, json!({ "weight": 3 }))
        .await;
    w.rule(ga, "4930", json!({})).await;
    w.rule(gb, "49", json!({})).await;
    w.rule(ga, "43", json!({})).await;
    w.rule(gb, "431", json!({ "stopper": true })).await;
    w.rule(ga, "44", json!({ "caller_pattern": "^sip:alice@" }))
        .await;
    w.rule(gb, "44", json!({ "caller_pattern": "^sip:bob@" }))
        .await;
    w.rule(gc, "33", json!({})).await;
    w.synced().await;

    let a = w.k.carrier("carrier_uas.xml", "127.0.0.2", pa, "A", &[]);
    let b = w.k.carrier("carrier_uas.xml", "127.0.0.3", pb, "B", &[]);
    w.call("alice", "4930123", 200, "4930 is longer than 49");
    w.call("alice", "4940123", 200, "only 49 matches");
    w.call("alice", "44123", 200, "alice's caller pattern");
    w.call("bob", "44456", 200, "bob's caller pattern");
    let (am, bm) = (a.stop().0, b.stop().0);
    assert_eq!(invites(&am), vec!["4930123", "44123"], "{am}");
    assert_eq!(invites(&bm), vec!["4940123", "44456"], "{bm}");

    // 431 is a stopper: when its gateway refuses, the shorter 43 (A) is not tried.
    let a = w.k.carrier("carrier_uas.xml", "127.0.0.2", pa, "A", &[]);
    let b = w.k.carrier("carrier_503.xml", "127.0.0.3", pb, "B", &[]);
    w.call(
        "alice",
        "4311234",
        500,
        "stopper: no fallback (a last 503 reaches the caller as 500)",
    );
    w.call(
        "alice",
        "4321234",
        200,
        "43 without the stopper's prefix goes to A",
    );
    let (am, bm) = (a.stop().0, b.stop().0);
    assert_eq!(invites(&am), vec!["4321234"], "{am}");
    assert_eq!(invites(&bm), vec!["4311234"], "{bm}");

    // Balance: weights 1 and 3 in one group.
    let c = w.k.carrier("carrier_uas.xml", "127.0.0.4", pc, "C", &[]);
    let d = w.k.carrier("carrier_uas.xml", "127.0.0.5", pd, "D", &[]);
    let r =
        w.k.sub_calls("alice", &pw("alice"), &w.f.domain, "33123", 200, 200);
    assert!(
        r.ok,
        "200 calls: {:?}\n{}",
        r.responses.len(),
        tail(&w.k.log())
    );
    let (cm, dm) = (c.stop().0, d.stop().0);
    let (nc, nd) = (invites(&cm).len() as f64, invites(&dm).len() as f64);
    assert_eq!(nc + nd, 200.0, "every call reached one of them");
    println!("balance 1:3 over 200 calls: C {nc}, D {nd}");
    // C should get a quarter: 50 of 200, binomial σ = √(200·¼·¾) ≈ 6.1. Tolerance 4σ (±25
    // calls): a correct server fails this about once in 16,000 runs.
    assert!(
        (nc - 50.0).abs() <= 25.0,
        "C got {nc}, D {nd} (expected 50:150)"
    );
}

/// A gateway that stops answering OPTIONS is skipped without an INVITE, and used again once
/// it answers.
async fn dead_gateways_are_skipped(engine: Engine) {
    let w = world(engine).await;
    w.subscriber("alice", 5550001).await;
    let (pa, pb) = (port(), port());
    let ga = w.group("A", 1).await;
    let gb = w.group("B", 2).await;
    w.server(ga, "a", "127.0.0.2", pa, json!({ "probe": true }))
        .await;
    w.server(gb, "b", "127.0.0.3", pb, json!({})).await;
    w.rule(ga, "49", json!({})).await;
    w.rule(gb, "49", json!({})).await;
    w.synced().await;
    let wait_flags = |want: &'static str| {
        let w = &w;
        async move {
            let start = Instant::now();
            loop {
                let v = w.k.rpc("dispatcher.list", json!([])).await.to_string();
                if v.contains(&format!("\"FLAGS\":\"{want}")) {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "dispatcher never showed {want}: {v}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let a = w.k.carrier(
        "carrier_uas.xml",
        "127.0.0.2",
        pa,
        "A",
        &["-set", "no_options", "1"],
    );
    wait_flags("I").await;
    let b = w.k.carrier("carrier_uas.xml", "127.0.0.3", pb, "B", &[]);
    w.call("alice", "49301234", 200, "A is dead: B");
    let (am, bm) = (a.stop().0, b.stop().0);
    assert!(invites(&am).is_empty(), "no INVITE to a dead gateway\n{am}");
    assert!(common::kamailio::options(&am) > 0, "A was probed\n{am}");
    assert_eq!(invites(&bm), vec!["49301234"]);

    let a = w.k.carrier("carrier_uas.xml", "127.0.0.2", pa, "A", &[]);
    wait_flags("A").await;
    let b = w.k.carrier("carrier_uas.xml", "127.0.0.3", pb, "B", &[]);
    w.call("alice", "49301234", 200, "A answers OPTIONS again: A");
    let (am, bm) = (a.stop().0, b.stop().0);
    assert_eq!(invites(&am), vec!["49301234"], "{am}");
    assert!(invites(&bm).is_empty());
}

/// Registration to a carrier: challenged, accepted with the provisioned credentials, its
/// state read back through the API; changing one trunk leaves the other's registration
/// alone; disabling a trunk unregisters it.
async fn trunks_register_one_at_a_time(engine: Engine) {
    let w = world(engine).await;
    let (p1, p2) = (port(), port());
    let r1 = w.k.carrier(
        "registrar_401.xml",
        "127.0.0.6",
        p1,
        "R1",
        &["-set", "user", "trunk1", "-set", "password", "trunk-pass-1"],
    );
    let r2 = w.k.carrier(
        "registrar_401.xml",
        "127.0.0.7",
        p2,
        "R2",
        &["-set", "user", "trunk2", "-set", "password", "trunk-pass-2"],
    );
    let g = w.group("R", 1).await;
    let s1 = w
        .server(
            g,
            "t1",
            "127.0.0.6",
            p1,
            json!({ "peer_auth_register": true, "peer_auth_user": "trunk1",
        "peer_auth_pass": "trunk-pass-1", "peer_auth_realm": "carrier.test" }),
        )
        .await;
    let s2 = w
        .server(
            g,
            "t2",
            "127.0.0.7",
            p2,
            json!({ "peer_auth_register": true, "peer_auth_user": "trunk2",
        "peer_auth_pass": "trunk-pass-2", "peer_auth_realm": "carrier.test" }),
        )
        .await;
    w.synced().await;
    let state_of = |id: i64| {
        let app = &w.app;
        async move {
            let (_, v) = app.get(&format!("/api/peeringservers/{id}")).await;
            v["registration"][0]["state"]
                .as_str()
                .unwrap_or("")
                .to_string()
        }
    };
    for id in [s1, s2] {
        let start = Instant::now();
        while state_of(id).await != "registered" {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "server {id} not registered: {}\n{}",
                w.app.get(&format!("/api/peeringservers/{id}")).await.1,
                tail(&w.k.log())
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let before =
        w.k.rpc("uac.reg_info", json!(["l_uuid", format!("vx-ps-{s2}")]))
            .await;
    // A wrong password for trunk 1: refused, shown as failed; the other trunk is untouched.
    w.app
        .patch(
            &format!("/api/peeringservers/{s1}"),
            json!([{ "op": "replace", "path": "/peer_auth_pass", "value": "wrong-pass" }]),
        )
        .await;
    w.synced().await;
    let start = Instant::now();
    while state_of(s1).await != "failed" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "wrong password not seen as failed: {}",
            state_of(s1).await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let after =
        w.k.rpc("uac.reg_info", json!(["l_uuid", format!("vx-ps-{s2}")]))
            .await;
    assert_eq!(
        before["reg_init"], after["reg_init"],
        "trunk 2 not re-registered: {before} / {after}"
    );
    assert_eq!(
        before["timer_expires"], after["timer_expires"],
        "{before} / {after}"
    );
    // Disabled: unregistered (REGISTER with expires 0) and forgotten.
    w.patch(
        &format!("/api/peeringservers/{s2}"),
        "enabled",
        json!(false),
    )
    .await;
    w.synced().await;
    let start = Instant::now();
    loop {
        let v =
            w.k.rpc("uac.reg_info", json!(["l_uuid", format!("vx-ps-{s2}")]))
                .await;
        if v["code"] == 404 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still known: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Forgotten by Kamailio as soon as it sends the un-REGISTER; the answer comes after.
    r2.wait_logged("auth ok trunk2: un-REGISTER", 5).await;
    let (r2m, r2log) = r2.stop();
    let registers = r2m
        .lines()
        .filter(|l| l.trim().starts_with("REGISTER sip:"))
        .count();
    assert!(r2log.contains("auth ok trunk2: registered"), "{r2log}");
    assert!(r2log.contains("auth ok trunk2: un-REGISTER"), "{r2log}");
    // Challenge + credentials once, then the un-REGISTER (challenged, then with credentials).
    assert!(
        registers <= 4,
        "trunk 2 registered again when trunk 1 changed: {registers} REGISTERs\n{r2m}"
    );
    let (_, r1log) = r1.stop();
    assert!(r1log.contains("auth FAILED"), "{r1log}");
}

/// Calls from carriers: a trusted address reaches the subscriber behind a DID, an untrusted
/// one is refused, and an inbound rule rejects with its own code.
async fn carriers_call_in(engine: Engine) {
    let w = world(engine).await;
    w.subscriber("bob", 5550002).await;
    let g = w.group("In", 1).await;
    w.server(g, "in", "127.0.0.8", 5060, json!({})).await;
    w.app
        .create(
            "/api/peeringinboundrules/",
            json!({ "group_id": g, "field": "from_user", "pattern": "^[0-9]+$",
        "reject_code": 488, "reject_reason": "Numbers only" }),
        )
        .await;
    w.synced().await;
    let (callee, cport) = w.k.callee("bob", &w.f.domain, &pw("bob"));
    w.registered("bob", cport).await;
    let r =
        w.k.peer_call("127.0.0.8", "4930999", "49305550002", 200, &[]);
    assert!(
        r.ok,
        "trusted carrier → DID: {:?}\n{}",
        r.responses,
        tail(&w.k.log())
    );
    let _ = callee.wait_with_output();
    let r =
        w.k.peer_call("127.0.0.9", "4930999", "49305550002", 403, &[]);
    assert!(r.ok, "untrusted address: {:?}", r.responses);
    let r =
        w.k.peer_call("127.0.0.8", "anonymous", "49305550002", 488, &[]);
    assert!(r.ok, "inbound rule: {:?}", r.responses);
}

/// Class of service and lock levels.
async fn class_of_service_and_locks(engine: Engine) {
    let w = world(engine).await;
    let alice = w.subscriber("alice", 5550001).await;
    w.subscriber("bob", 5550002).await;
    let pa = port();
    let g = w.group("A", 1).await;
    w.server(g, "a", "127.0.0.2", pa, json!({})).await;
    w.rule(g, "", json!({})).await;
    let level = w
        .app
        .create(
            "/api/ncoslevels/",
            json!({ "reseller_id": 1, "level": "no-premium" }),
        )
        .await;
    w.app
        .create(
            "/api/ncospatterns/",
            json!({ "ncos_level_id": level, "pattern": "0900" }),
        )
        .await;
    let (s, v) = w
        .app
        .put(
            &format!("/api/subscriberpreferences/{alice}"),
            json!({ "ncos_id": level }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    let a = w.k.carrier("carrier_uas.xml", "127.0.0.2", pa, "A", &[]);
    w.call("alice", "0900123", 403, "NCOS bars 0900");
    w.call("alice", "0301234", 200, "NCOS lets 0301 through");
    w.call("bob", "0900123", 200, "bob has no NCOS level");
    // A whitelist: only what it lists.
    let wl = w
        .app
        .create(
            "/api/ncoslevels/",
            json!({ "reseller_id": 1, "level": "national-only", "mode": "whitelist" }),
        )
        .await;
    w.app
        .create(
            "/api/ncospatterns/",
            json!({ "ncos_level_id": wl, "pattern": "030" }),
        )
        .await;
    let (_, subs) = w.app.get("/api/subscribers/?username=bob").await;
    let bob = common::items(&subs, "subscribers")[0]["id"]
        .as_i64()
        .unwrap();
    let (s, v) = w
        .app
        .put(
            &format!("/api/subscriberpreferences/{bob}"),
            json!({ "ncos_id": wl }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.call("bob", "0900123", 403, "whitelist: 0900 not listed");
    w.call("bob", "0301234", 200, "whitelist: 030 listed");
    let (s, _) = w
        .app
        .put(&format!("/api/subscriberpreferences/{bob}"), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);

    let sub = format!("/api/subscribers/{alice}");
    // 1: foreign numbers barred, the platform's own reachable.
    w.patch(&sub, "lock", json!(1)).await;
    w.call("alice", "0301234", 403, "lock 1: off-net barred");
    let (callee, cport) = w.k.callee("bob", &w.f.domain, &pw("bob"));
    w.registered("bob", cport).await;
    w.call(
        "alice",
        "49305550002",
        200,
        "lock 1: a local number still rings",
    );
    let _ = callee.wait_with_output();
    // 2: every outgoing call barred but emergency calls; incoming still fine.
    w.patch(&sub, "lock", json!(2)).await;
    w.call("alice", "49305550002", 403, "lock 2: outgoing barred");
    w.call(
        "alice",
        "112",
        200,
        "lock 2: an emergency call goes through",
    );
    // 3: incoming barred too.
    w.patch(&sub, "lock", json!(3)).await;
    w.call("alice", "49305550002", 403, "lock 3: outgoing barred");
    w.call("bob", "49305550001", 403, "lock 3: incoming barred");
    w.patch(&sub, "lock", json!(0)).await;
    w.call("alice", "0301234", 200, "unlocked");
    // A carrier's rewrite cannot turn an allowed number into a barred one: the number each
    // gateway would get is checked too.
    let set = w
        .app
        .create(
            "/api/rewriterulesets/",
            json!({ "reseller_id": 1, "name": "to-national" }),
        )
        .await;
    w.app
        .create(
            "/api/rewriterules/",
            json!({ "set_id": set, "direction": "out", "field": "callee",
        "match_pattern": "^\\+49(.*)$", "replace_pattern": "0\\1" }),
        )
        .await;
    let (_, servers) = w
        .app
        .get(&format!("/api/peeringservers/?group_id={g}"))
        .await;
    let server = common::items(&servers, "peeringservers")[0]["id"]
        .as_i64()
        .unwrap();
    w.patch(
        &format!("/api/peeringservers/{server}"),
        "rewrite_rule_set_id",
        json!(set),
    )
    .await;
    w.call(
        "alice",
        "+49900123",
        403,
        "NCOS on the number the gateway would get",
    );
    w.call("alice", "+49301234", 200, "rewritten, allowed");
    let am = a.stop().0;
    assert_eq!(
        invites(&am),
        vec!["0301234", "0900123", "0301234", "112", "0301234", "0301234"],
        "{am}"
    );
}

on_both!(
    outbound_calls_are_rewritten_and_fail_over,
    rules_choose_the_gateway,
    dead_gateways_are_skipped,
    trunks_register_one_at_a_time,
    carriers_call_in,
    class_of_service_and_locks
);
