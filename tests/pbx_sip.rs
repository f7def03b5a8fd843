//! The cloud PBX enforced by a real Kamailio (the shipped configuration) on SQLite and on
//! MariaDB: sipp plays the extensions' phones and a carrier calling in. Every object is made
//! through the API; nothing is written to Kamailio's tables by the test.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use chrono::{Datelike, Timelike};
use common::kamailio::Kamailio;
use common::sipdb::{Engine, SipDb};
use common::{items, Backend, Fixture, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Short timers: calls fail over and end within a test; call records are read often.
/// Registrations are kept in memory only (USRLOC_DB_MODE 0): Kamailio's SQLite driver has no
/// busy wait, and two phones de-registering in the same instant (both cancelled by a ring
/// group) would otherwise collide on the database file ("database is locked", a 500).
const TIMERS: &str =
    "#!define TM_FR_TIMER 3000\n#!define RELOAD_DELTA 1\n#!define USRLOC_DB_MODE 0\n";
const ENV: &[(&str, &str)] = &[("VOXPROV_CDRS_COLLECT_INTERVAL_MS", "300")];

struct World {
    app: TestApp,
    db: SipDb,
    k: Kamailio,
    kam: i64,
    f: Fixture,
}

struct Ext {
    id: i64,
    user: String,
    pw: String,
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

async fn world(engine: Engine) -> World {
    let app = TestApp::spawn_with(Backend::Sqlite, ENV).await;
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
    World { app, db, k, kam, f }
}

impl World {
    async fn tenant(&self, name: &str) -> i64 {
        let customer = self
            .app
            .create(
                "/api/customers/",
                json!({ "contact_id": self.f.contact_id, "billing_profile_id": self.f.billing_profile_id,
                        "type": "pbxaccount", "status": "active" }),
            )
            .await;
        self.app
            .create(
                "/api/pbxtenants/",
                json!({ "customer_id": customer, "name": name, "description": name, "domain": self.f.domain }),
            )
            .await
    }
    async fn ext(&self, tenant: i64, number: &str) -> Ext {
        let pw = format!("secret-{tenant}x{number}q");
        let id = self
            .app
            .create(
                "/api/pbxextensions/",
                json!({ "tenant_id": tenant, "extension": number, "type": "unprovisioned", "password": pw }),
            )
            .await;
        Ext {
            id,
            user: format!("{number}-{tenant}"),
            pw,
        }
    }
    async fn synced(&self) {
        self.app.wait_synced(self.kam).await;
    }
    /// `e`'s phone running `uas` (a scenario of tests/sip) for one call, once registered.
    async fn phone(&self, e: &Ext, uas: &str) -> (Child, u16) {
        let (c, port) = self.k.callee_with(uas, &e.user, &self.f.domain, &e.pw);
        let start = Instant::now();
        let aor = format!("{}@{}", e.user, self.f.domain);
        while !self
            .k
            .rpc("ul.lookup", json!(["location", aor]))
            .await
            .to_string()
            .contains(&format!(":{port}"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(15),
                "{} did not register: {}",
                e.user,
                tail(&self.k.log())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        (c, port)
    }
    fn call(&self, from: &Ext, number: &str, code: u16, why: &str) {
        let r = self
            .k
            .sub_call(&from.user, &from.pw, &self.f.domain, number, code);
        assert!(
            r.ok,
            "{why}: {} → {number} expected {code}, sipp saw {:?}\n--- kamailio ---\n{}",
            from.user,
            r.responses,
            tail(&self.k.log())
        );
    }
    /// Waits for a phone's sipp to end; whether it ran its scenario to the end.
    fn done(&self, mut c: Child, what: &str) -> bool {
        let start = Instant::now();
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st.success();
            }
            if start.elapsed() > Duration::from_secs(45) {
                let _ = c.kill();
                panic!(
                    "{what}: the phone's sipp did not end\n{}",
                    tail(&self.k.log())
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The moments (sipp's trace timestamps) at which a phone received messages starting with
/// `first_line` (e.g. "INVITE ", "CANCEL ").
fn received_at(messages: &str, first_line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stamp = String::new();
    let mut received = false;
    let mut expect_start = false;
    for line in messages.lines() {
        let l = line.trim();
        if l.starts_with("----") {
            stamp = l.trim_start_matches('-').trim().to_string();
            continue;
        }
        if l.contains("message received") {
            received = true;
            expect_start = true;
            continue;
        }
        if l.contains("message sent") {
            received = false;
            expect_start = false;
            continue;
        }
        if expect_start && !l.is_empty() {
            if received && l.starts_with(first_line) {
                out.push(stamp.clone());
            }
            expect_start = false;
        }
    }
    out
}

fn at(stamp: &str) -> chrono::NaiveDateTime {
    chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap_or_else(|e| panic!("sipp's time stamp {stamp}: {e}"))
}

/// Extension 201 reaches 202 of its own tenant by short number; the same digits dialled in
/// another tenant reach that tenant's 202 (or nothing), never the first's.
async fn short_numbers_stay_in_their_tenant(engine: Engine) {
    let w = world(engine).await;
    let (ta, tb) = (w.tenant("alpha").await, w.tenant("beta").await);
    let a201 = w.ext(ta, "201").await;
    let a202 = w.ext(ta, "202").await;
    w.ext(ta, "203").await;
    let b201 = w.ext(tb, "201").await;
    let b202 = w.ext(tb, "202").await;
    w.synced().await;

    let (mut a_phone, _) = w.phone(&a202, "uas.xml").await;
    // B's 202 is not registered: B's 201 gets B's 202's 480, not A's registered 202.
    w.call(&b201, "202", 480, "B's own 202 is offline");
    // B has no 203: A's is out of reach (404 inside the tenant's extension length).
    w.call(&b201, "203", 404, "another tenant's extension");
    assert!(
        a_phone.try_wait().unwrap().is_none(),
        "A's 202 must not have been called from B"
    );
    w.call(&a201, "202", 200, "201 dials 202 in its own tenant");
    assert!(
        w.done(a_phone, "A's 202"),
        "A's 202 answered and saw the BYE"
    );

    let (b_phone, _) = w.phone(&b202, "uas.xml").await;
    w.call(&b201, "202", 200, "B's 201 dials B's 202");
    assert!(w.done(b_phone, "B's 202"));
}

/// Ring: both members ring, the first to answer takes the call, the other gets CANCEL. Hunt:
/// member 1 rings for ringdelay seconds, then member 2; nobody answering sends the call to
/// the outcome. Page: every member's INVITE asks for auto-answer (and only page calls do).
async fn ring_hunt_and_page_groups(engine: Engine) {
    let w = world(engine).await;
    let t = w.tenant("groups").await;
    let e201 = w.ext(t, "201").await;
    let e202 = w.ext(t, "202").await;
    let e203 = w.ext(t, "203").await;
    let e204 = w.ext(t, "204").await;
    for (number, kind) in [("400", "Ring"), ("401", "Hunt"), ("402", "Page")] {
        w.app
            .create(
                "/api/pbxringgroups/",
                json!({ "tenant_id": t, "number": number, "grouptype": kind, "out": "202 203",
                        "outcome": "204", "ringdelay": 2 }),
            )
            .await;
    }
    w.synced().await;

    // Ring.
    let (p202, port202) = w.phone(&e202, "uas.xml").await;
    let (p203, port203) = w.phone(&e203, "uas_noanswer.xml").await;
    w.call(&e201, "400", 200, "ring group");
    assert!(w.done(p202, "ring: 202"), "202 answered");
    assert!(w.done(p203, "ring: 203"), "203 rang and was cancelled");
    let m203 = w.k.messages(port203);
    assert_eq!(received_at(&m203, "INVITE ").len(), 1, "{m203}");
    assert_eq!(received_at(&m203, "CANCEL ").len(), 1, "{m203}");
    assert!(
        !m203.contains("answer-after"),
        "only page calls ask for auto-answer"
    );
    let _ = port202;

    // Hunt: 202 rings and is given up after ringdelay, then 203 rings and answers.
    let (p202, port202) = w.phone(&e202, "uas_noanswer.xml").await;
    let (p203, port203) = w.phone(&e203, "uas.xml").await;
    w.call(&e201, "401", 200, "hunt group");
    assert!(w.done(p202, "hunt: 202"));
    assert!(w.done(p203, "hunt: 203"));
    let first = received_at(&w.k.messages(port202), "INVITE ");
    let cancelled = received_at(&w.k.messages(port202), "CANCEL ");
    let invited = received_at(&w.k.messages(port203), "INVITE ");
    assert_eq!((first.len(), cancelled.len(), invited.len()), (1, 1, 1));
    // 203 rings once 202 has rung its ringdelay (2 s; Kamailio cancels 202 and invites 203
    // in the same moment): not at once as in a Ring group.
    let rang = at(&invited[0]) - at(&first[0]);
    assert!(
        rang >= chrono::Duration::milliseconds(1500),
        "203 must ring only after 202 rang for its ringdelay: 202 invited at {}, cancelled at {}, 203 invited at {}",
        first[0],
        cancelled[0],
        invited[0]
    );

    // Hunt, nobody answers: the outcome, 204, takes the call.
    let (p202, _) = w.phone(&e202, "uas_noanswer.xml").await;
    let (p203, _) = w.phone(&e203, "uas_noanswer.xml").await;
    let (p204, _) = w.phone(&e204, "uas.xml").await;
    w.call(&e201, "401", 200, "hunt group to its outcome");
    for (p, n) in [(p202, "202"), (p203, "203"), (p204, "204")] {
        assert!(w.done(p, n), "hunt outcome: {n}");
    }

    // Ring, nobody answers within ringdelay: the outcome too.
    let (p202, q202) = w.phone(&e202, "uas_noanswer.xml").await;
    let (p203, q203) = w.phone(&e203, "uas_noanswer.xml").await;
    let (p204, q204) = w.phone(&e204, "uas.xml").await;
    w.call(&e201, "400", 200, "ring group to its outcome");
    for ((p, n), q) in [(p202, "202"), (p203, "203"), (p204, "204")]
        .into_iter()
        .zip([q202, q203, q204])
    {
        assert!(
            w.done(p, n),
            "ring outcome: {n}\n{}\n{}",
            w.k.messages(q),
            tail(&w.k.log())
        );
    }

    // Page: 202 (which checks both auto-answer headers) answers; 203 rang with them too.
    let (p202, _) = w.phone(&e202, "uas_autoanswer.xml").await;
    let (p203, port203) = w.phone(&e203, "uas_noanswer.xml").await;
    w.call(&e201, "402", 200, "page group");
    assert!(
        w.done(p202, "page: 202"),
        "202's INVITE asked for auto-answer"
    );
    assert!(w.done(p203, "page: 203"));
    let m203 = w.k.messages(port203);
    assert!(
        m203.contains("answer-after=0") && m203.contains("alert-autoanswer"),
        "{m203}"
    );
}

/// A carrier's call to a DID goes to the open destination while a day timer covers now, to
/// the closed one when none does, and to the holiday's route during a holiday.
async fn inbound_routes_follow_the_timers(engine: Engine) {
    let w = world(engine).await;
    let contract = w.app.contract("sippeering").await;
    let g = w
        .app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "trunk", "priority": 1 }),
        )
        .await;
    w.app
        .create(
            "/api/peeringservers/",
            json!({ "group_id": g, "name": "in", "ip": "127.0.0.8", "port": 5060 }),
        )
        .await;
    let t = w.tenant("hours").await;
    let e201 = w.ext(t, "201").await;
    let s201 = w
        .app
        .get(&format!("/api/pbxextensions/{}", e201.id))
        .await
        .1["subscriber_id"]
        .clone();
    let (s, v) = w
        .app
        .patch(
            &format!("/api/subscribers/{s201}"),
            json!([{ "op": "add", "path": "/primary_number",
            "value": { "cc": "49", "ac": "30", "sn": "555100" } }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let e202 = w.ext(t, "202").await;
    let e203 = w.ext(t, "203").await;
    w.app
        .create(
            "/api/pbxinboundroutes/",
            json!({ "tenant_id": t, "number": "+4930555100", "carrier": "DiD", "trunk_id": g,
                    "openroute": "201", "closeroute": "202" }),
        )
        .await;
    // A day timer around now (the SIP server's local time is this machine's).
    let now = chrono::Local::now();
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let today = days[now.weekday().num_days_from_monday() as usize];
    let tomorrow = days[(now.weekday().num_days_from_monday() as usize + 1) % 7];
    let minute = now.hour() * 60 + now.minute();
    let span = if (30..1410).contains(&minute) {
        let (a, b) = (minute - 30, minute + 30);
        format!("{:02}:{:02}-{:02}:{:02}", a / 60, a % 60, b / 60, b % 60)
    } else {
        "*".to_string()
    };
    let timer = w
        .app
        .create(
            "/api/pbxdaytimers/",
            json!({ "tenant_id": t, "dayofweek": today, "timespan": span }),
        )
        .await;
    w.synced().await;

    let carrier_call = |who: &str| {
        let r =
            w.k.peer_call("127.0.0.8", "4930999", "4930555100", 200, &[]);
        assert!(r.ok, "{who}: {:?}\n{}", r.responses, tail(&w.k.log()));
    };
    // Open.
    let (p201, _) = w.phone(&e201, "uas.xml").await;
    carrier_call("open");
    assert!(w.done(p201, "open: 201"));
    // Closed: the only timer is tomorrow's.
    let (s, v) = w
        .app
        .put(
            &format!("/api/pbxdaytimers/{timer}"),
            json!({ "tenant_id": t, "dayofweek": tomorrow, "timespan": span }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    let (p202, _) = w.phone(&e202, "uas.xml").await;
    carrier_call("closed");
    assert!(w.done(p202, "closed: 202"));
    // Open again by the timers, but a holiday now sends the call to its route.
    w.app
        .put(
            &format!("/api/pbxdaytimers/{timer}"),
            json!({ "tenant_id": t, "dayofweek": today, "timespan": span }),
        )
        .await;
    let ts = now.timestamp();
    let hol = w
        .app
        .create(
            "/api/pbxholidaytimers/",
            json!({ "tenant_id": t, "stime": ts - 600, "etime": ts + 600, "route": "203" }),
        )
        .await;
    w.synced().await;
    let (p203, _) = w.phone(&e203, "uas.xml").await;
    carrier_call("holiday");
    assert!(w.done(p203, "holiday: 203"));
    // A holiday without its own route closes the tenant.
    let (s, v) = w
        .app
        .put(
            &format!("/api/pbxholidaytimers/{hol}"),
            json!({ "tenant_id": t, "stime": ts - 600, "etime": ts + 600 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    let (p202, _) = w.phone(&e202, "uas.xml").await;
    carrier_call("holiday, closed route");
    assert!(w.done(p202, "holiday: 202"));
    // A caller-number route of the tenant takes that caller's calls to its DIDs.
    w.app.delete(&format!("/api/pbxholidaytimers/{hol}")).await;
    w.app
        .create(
            "/api/pbxinboundroutes/",
            json!({ "tenant_id": t, "number": "4930999", "carrier": "CLID", "openroute": "203" }),
        )
        .await;
    w.synced().await;
    let (p203, _) = w.phone(&e203, "uas.xml").await;
    carrier_call("caller-number route");
    assert!(w.done(p203, "clid: 203"));
}

/// CFIM set through the runtime forwards the next call; CFBS forwards when the extension
/// answers 486.
async fn runtime_forwards_calls(engine: Engine) {
    let w = world(engine).await;
    let t = w.tenant("fwd").await;
    let e201 = w.ext(t, "201").await;
    let e202 = w.ext(t, "202").await;
    let e203 = w.ext(t, "203").await;
    let (s, v) = w
        .app
        .put(
            &format!("/api/pbxextensions/{}/runtime", e202.id),
            json!({ "cfim": "203" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    let (p203, _) = w.phone(&e203, "uas.xml").await;
    w.call(&e201, "202", 200, "CFIM to 203");
    assert!(w.done(p203, "cfim: 203"));

    let (s, v) = w
        .app
        .put(
            &format!("/api/pbxextensions/{}/runtime", e202.id),
            json!({ "cfim": null, "cfbs": "203" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    let (p202, _) = w.phone(&e202, "uas_busy.xml").await;
    let (p203, _) = w.phone(&e203, "uas.xml").await;
    w.call(&e201, "202", 200, "CFBS to 203");
    assert!(w.done(p202, "cfbs: 202 busy"));
    assert!(w.done(p203, "cfbs: 203"));
    // The runtime shows a live registration while the phone is registered.
    let (p202, _) = w.phone(&e202, "uas.xml").await;
    let (_, rt) = w
        .app
        .get(&format!("/api/pbxextensions/{}/runtime", e202.id))
        .await;
    assert_eq!(
        rt["registrations"].as_array().map(Vec::len),
        Some(1),
        "{rt}"
    );
    let (_, regs) = w.app.get("/api/subscriberregistrations/").await;
    assert!(
        items(&regs, "subscriberregistrations")
            .iter()
            .any(|r| r["aor"].as_str().is_some_and(|a| a.starts_with(&e202.user))),
        "{regs}"
    );
    // One subscriber's registrations, asked for its AoR alone (ul.lookup); another's none.
    let sub_of = |e: &Ext| format!("/api/pbxextensions/{}", e.id);
    let s202 = w.app.get(&sub_of(&e202)).await.1["subscriber_id"].clone();
    let s201 = w.app.get(&sub_of(&e201)).await.1["subscriber_id"].clone();
    let (_, one) = w
        .app
        .get(&format!(
            "/api/subscriberregistrations/?subscriber_id={s202}"
        ))
        .await;
    let one = items(&one, "subscriberregistrations");
    assert_eq!(one.len(), 1, "{one:?}");
    assert_eq!(one[0]["subscriber_id"], s202);
    assert!(
        one[0]["aor"]
            .as_str()
            .is_some_and(|a| a.starts_with(&e202.user)),
        "{one:?}"
    );
    let (_, none) = w
        .app
        .get(&format!(
            "/api/subscriberregistrations/?subscriber_id={s201}"
        ))
        .await;
    assert_eq!(items(&none, "subscriberregistrations").len(), 0, "{none}");
    w.call(&e201, "202", 200, "202 itself");
    assert!(w.done(p202, "202"));
}

/// The seconds between the INVITE a phone received and its CANCEL.
fn rang_for(messages: &str) -> f64 {
    let i = received_at(messages, "INVITE ");
    let c = received_at(messages, "CANCEL ");
    assert_eq!((i.len(), c.len()), (1, 1), "{messages}");
    (at(&c[0]) - at(&i[0])).num_milliseconds() as f64 / 1000.0
}

/// The globals the SIP servers act on: EMERGENCY is never barred, RINGDELAY is a group's
/// ring time when it sets none, INTRINGDELAY a subscriber's before its no-answer forward.
/// And the PBX rows are checked and repaired like every other table.
async fn globals_apply_and_pbx_rows_are_repaired(engine: Engine) {
    let w = world(engine).await;
    let t = w.tenant("glob").await;
    let e201 = w.ext(t, "201").await;
    let e202 = w.ext(t, "202").await;
    let e203 = w.ext(t, "203").await;
    let e204 = w.ext(t, "204").await;
    let sub = |e: &Ext| {
        let app = &w.app;
        let id = e.id;
        async move {
            app.get(&format!("/api/pbxextensions/{id}")).await.1["subscriber_id"]
                .as_i64()
                .unwrap()
        }
    };
    let s201 = sub(&e201).await;
    // EMERGENCY: a locked caller reaches it once it is one.
    let (s, v) = w
        .app
        .patch(
            &format!("/api/subscribers/{s201}"),
            json!([{ "op": "replace", "path": "/lock", "value": 2 }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    w.call(&e201, "555", 403, "lock 2 bars 555");
    let (s, v) = w
        .app
        .put(
            "/api/pbxglobals",
            json!({ "EMERGENCY": "555", "RINGDELAY": 2, "INTRINGDELAY": 2 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    // Not barred: on to the carriers, of which there are none here (404 No Route).
    w.call(&e201, "555", 404, "555 is an emergency number");
    w.app
        .patch(
            &format!("/api/subscribers/{s201}"),
            json!([{ "op": "replace", "path": "/lock", "value": 0 }]),
        )
        .await;
    // RINGDELAY: a Ring group without its own rings 2 s, then the outcome.
    w.app
        .create("/api/pbxringgroups/", json!({ "tenant_id": t, "number": "400", "grouptype": "Ring", "out": "202", "outcome": "203" }))
        .await;
    w.synced().await;
    let (p202, port202) = w.phone(&e202, "uas_noanswer.xml").await;
    let (p203, _) = w.phone(&e203, "uas.xml").await;
    w.call(
        &e201,
        "400",
        200,
        "ring group to its outcome after RINGDELAY",
    );
    assert!(w.done(p202, "202") && w.done(p203, "203"));
    let rang = rang_for(&w.k.messages(port202));
    assert!(
        (1.5..10.0).contains(&rang),
        "RINGDELAY 2: 202 rang {rang} s"
    );
    // INTRINGDELAY: 202's no-answer forward to 204 after 2 s (202 sets no ringtimeout).
    let s202 = sub(&e202).await;
    let (s, v) = w
        .app
        .put(&format!("/api/callforwards/{s202}"), json!({ "cft": { "destinations": [{ "destination": format!("sip:{}@{}", e204.user, w.f.domain) }] } }))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    w.synced().await;
    let (p202, port202) = w.phone(&e202, "uas_noanswer.xml").await;
    let (p204, _) = w.phone(&e204, "uas.xml").await;
    w.call(&e201, "202", 200, "no-answer forward after INTRINGDELAY");
    assert!(w.done(p202, "202") && w.done(p204, "204"));
    let rang = rang_for(&w.k.messages(port202));
    assert!(
        (1.5..10.0).contains(&rang),
        "INTRINGDELAY 2: 202 rang {rang} s"
    );

    // Drift: a PBX row removed and one changed behind voxprov's back are found and mended.
    w.db.exec(&format!(
        "DELETE FROM pbx_htable WHERE key_name = 'ext::{t}::203'"
    ));
    w.db.exec(&format!(
        "UPDATE pbx_htable SET key_value = '9' WHERE key_name = 'tn::{t}::extlen'"
    ));
    let (_, check) = w.app.get(&format!("/api/sipservers/{}/check", w.kam)).await;
    assert_eq!(
        common::differences(&check),
        vec![
            ("pbx_htable".to_string(), "missing".to_string()),
            ("pbx_htable".to_string(), "differs".to_string())
        ],
        "{check}"
    );
    let (s, rep) = w
        .app
        .post(&format!("/api/sipservers/{}/repair", w.kam), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{rep}");
    let (_, check) = w.app.get(&format!("/api/sipservers/{}/check", w.kam)).await;
    assert_eq!(check["count"], 0, "{check}");
    let (p203, _) = w.phone(&e203, "uas.xml").await;
    w.call(
        &e201,
        "203",
        200,
        "203 after the repair (the htable reloaded)",
    );
    assert!(w.done(p203, "203"));
}

/// The call records of `query` once there are `n` of them.
async fn cdrs(app: &TestApp, query: &str, n: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let (s, v) = app
            .get(&format!("/api/cdrs/?rows=100&order_by=id{query}"))
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let list = items(&v, "cdrs");
        if list.len() >= n || start.elapsed() > Duration::from_secs(20) {
            return list;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// 20 calls through Kamailio — answered (held 1–3 s), busy, cancelled by the caller, to an
/// offline extension — become 20 call records with their parties, status and durations,
/// within their reseller, and stay 20 after voxprov restarts.
async fn calls_become_call_records(engine: Engine) {
    let mut w = world(engine).await;
    let t = w.tenant("cdr").await;
    let e201 = w.ext(t, "201").await;
    let e202 = w.ext(t, "202").await;
    let e203 = w.ext(t, "203").await;
    let e204 = w.ext(t, "204").await;
    w.ext(t, "205").await;
    w.synced().await;
    let d = w.f.domain.clone();
    let mut expected: Vec<(&str, &str, u64)> = Vec::new();
    for i in 0..8u64 {
        let hold = 1000 + (i % 3) * 1000;
        let (p, _) = w.phone(&e202, "uas.xml").await;
        let r = w.k.sub_call_hold(&e201.user, &e201.pw, &d, "202", hold);
        assert!(
            r.ok,
            "answered call {i}: {:?}\n{}",
            r.responses,
            tail(&w.k.log())
        );
        assert!(w.done(p, "202"));
        expected.push(("202", "ok", hold));
    }
    for i in 0..6 {
        let (p, _) = w.phone(&e203, "uas_busy.xml").await;
        w.call(&e201, "203", 486, &format!("busy call {i}"));
        assert!(w.done(p, "203"));
        expected.push(("203", "busy", 0));
    }
    for i in 0..3 {
        let (p, _) = w.phone(&e204, "uas_noanswer.xml").await;
        let r = w.k.sub_call_cancel(&e201.user, &e201.pw, &d, "204", 800);
        assert!(
            r.ok,
            "cancelled call {i}: {:?}\n{}",
            r.responses,
            tail(&w.k.log())
        );
        assert!(w.done(p, "204"));
        expected.push(("204", "cancel", 0));
    }
    for i in 0..3 {
        w.call(&e201, "205", 480, &format!("offline call {i}"));
        expected.push(("205", "offline", 0));
    }
    let list = cdrs(&w.app, "", 20).await;
    assert_eq!(list.len(), 20, "{list:#?}");
    let caller = format!("{}@{d}", e201.user);
    for (rec, (callee, status, hold)) in list.iter().zip(&expected) {
        assert_eq!(rec["callee"], *callee, "{rec}");
        assert_eq!(rec["status"], *status, "{rec}");
        assert_eq!(rec["caller"], caller, "{rec}");
        assert_eq!(rec["direction"], "local", "{rec}");
        assert_eq!(rec["reseller_id"], 1, "{rec}");
        assert_eq!(rec["tenant_id"], t, "{rec}");
        assert_eq!(
            rec["caller_subscriber_id"],
            w.app
                .get(&format!("/api/pbxextensions/{}", e201.id))
                .await
                .1["subscriber_id"]
        );
        let dur = rec["duration"].as_f64().unwrap_or(-1.0);
        let want = *hold as f64 / 1000.0;
        assert!(
            (dur - want).abs() <= 1.0,
            "duration {dur} for a call held {want} s: {rec}"
        );
        if *status == "ok" {
            assert!(
                rec["answer_time"].is_string() && rec["end_time"].is_string(),
                "{rec}"
            );
            assert!(
                rec["destination"].as_str().unwrap().starts_with(&e202.user),
                "{rec}"
            );
        }
    }
    // Filters narrow, and the CSV export.
    assert_eq!(cdrs(&w.app, "&status=busy", 6).await.len(), 6);
    assert_eq!(
        cdrs(
            &w.app,
            &format!("&tenant_id={t}&callee=203&direction=local"),
            6
        )
        .await
        .len(),
        6
    );
    for none in [
        "status=noanswer",
        "direction=in",
        "callee=zz",
        "caller=zz*",
        "destination=zz",
        "callid=zz",
        "customer_id=999999",
        "tenant_id=999999",
        "reseller_id=999999",
        "sipserver_id=999999",
        "caller_subscriber_id=999999",
        "callee_subscriber_id=999999",
        "start_ge=2999-01-01",
        "start_le=1970-01-02",
    ] {
        let (s, v) = w.app.get(&format!("/api/cdrs/?{none}")).await;
        assert_eq!(s, StatusCode::OK, "{none}: {v}");
        assert_eq!(
            v["total_count"], 0,
            "{none} matched: the filter is not applied"
        );
    }
    let r = w
        .app
        .req(reqwest::Method::GET, "/api/cdrs/export?limit=5&status=ok")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let csv = r.text().await.unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(
        csv.lines().next().unwrap().starts_with("id,start_time,"),
        "{csv}"
    );
    // Another reseller sees none of them.
    let (_, login, pass) = w.app.reseller("cdrother").await;
    let (s, v) = common::send(
        w.app
            .req_as(reqwest::Method::GET, "/api/cdrs/", &login, &pass),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["total_count"], 0, "{v}");
    // A restart of voxprov: the records are there once, and a new call is collected.
    w.app.kill9();
    w.app.start().await;
    let (p, _) = w.phone(&e202, "uas.xml").await;
    let r = w.k.sub_call_hold(&e201.user, &e201.pw, &d, "202", 500);
    assert!(r.ok, "{:?}", r.responses);
    assert!(w.done(p, "202"));
    let list = cdrs(&w.app, "", 21).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = cdrs(&w.app, "", 21).await;
    assert_eq!(
        (list.len(), again.len()),
        (21, 21),
        "once each after the restart: {again:#?}"
    );
    let ids: std::collections::BTreeSet<&str> =
        again.iter().filter_map(|r| r["call_id"].as_str()).collect();
    assert_eq!(ids.len(), 21);
}

on_both!(
    short_numbers_stay_in_their_tenant,
    ring_hunt_and_page_groups,
    inbound_routes_follow_the_timers,
    runtime_forwards_calls,
    calls_become_call_records,
    globals_apply_and_pbx_rows_are_repaired
);
