//! Several `voxprov serve` nodes on one PostgreSQL: nothing a client or a phone sees depends
//! on which node answers — UI sessions, failed-login bans, the phones' configuration — and
//! the change log is followed without a gap however long a transaction stays open.

mod common;
use common::kamailio::Kamailio;
use common::receiver::{Receiver, Reply};
use common::sipdb::Engine;
use common::*;
use reqwest::StatusCode;
use serde_json::json;
use std::time::{Duration, Instant};

/// Starts `n` nodes on one fresh PostgreSQL database, sharing the secret key.
async fn nodes(n: usize, env: &[(&str, &str)]) -> Vec<TestApp> {
    let first = TestApp::spawn_with(Backend::Postgres, env).await;
    let mut all = vec![first];
    for _ in 1..n {
        let mut p = all[0].peer(&[]);
        p.start().await;
        all.push(p);
    }
    all
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn cookies(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"_csrf\" value=\"")
        .nth(1)
        .expect("a form token")
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// A UI page fetched with a cookie.
async fn page_as(c: &reqwest::Client, url: String, cookie: &str) -> reqwest::Response {
    c.get(url).header("cookie", cookie).send().await.unwrap()
}

/// A UI form posted with a cookie.
async fn form_as(
    c: &reqwest::Client,
    url: String,
    cookie: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    c.post(url)
        .header("cookie", cookie)
        .form(form)
        .send()
        .await
        .unwrap()
}

/// Posts the login form of `node`'s UI as `administrator` with `password`.
async fn ui_login_as(c: &reqwest::Client, node: &TestApp, password: &str) -> reqwest::Response {
    let r = c.get(node.url("/ui/login")).send().await.unwrap();
    let login_cookie = cookies(&r);
    let csrf = csrf_of(&r.text().await.unwrap());
    form_as(
        c,
        node.url("/ui/login"),
        &login_cookie,
        &[
            ("_csrf", csrf.as_str()),
            ("login", "administrator"),
            ("password", password),
        ],
    )
    .await
}

/// Logs in through `node`'s UI; returns the session cookie (`vxs=…`).
async fn ui_login(c: &reqwest::Client, node: &TestApp) -> String {
    let r = ui_login_as(c, node, ADMIN_PASS).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "logged in");
    cookies(&r)
        .split("; ")
        .find(|c| c.starts_with("vxs="))
        .expect("a session cookie")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_session_made_through_one_node_works_through_another() {
    let mut n = nodes(2, &[]).await;
    let c = client();
    let session = ui_login(&c, &n[0]).await;
    // Node B knows the session: its pages, and a form post with the session's token.
    let r = page_as(&c, n[1].url("/ui/domains/new"), &session).await;
    assert_eq!(r.status(), StatusCode::OK, "node B serves the session");
    let csrf = csrf_of(&r.text().await.unwrap());
    let r = form_as(
        &c,
        n[1].url("/ui/domains/new"),
        &session,
        &[
            ("_csrf", csrf.as_str()),
            ("domain", "cluster.example"),
            ("reseller_id", "1"),
        ],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "a form posted through B");
    let (_, v) = n[0].get("/api/domains/?domain=cluster.example").await;
    assert_eq!(v["total_count"], 1, "{v}");
    // A node restarted keeps it: nothing was in its memory.
    n[0].kill9();
    n[0].start().await;
    let r = page_as(&c, n[0].url("/ui/"), &session).await;
    assert_eq!(r.status(), StatusCode::OK, "the session outlives a restart");
    // The database keeps only the token's hash.
    let token = session.trim_start_matches("vxs=");
    let out = std::process::Command::new("psql")
        .arg(&n[0].db_url)
        .args(["-qAtc", "SELECT token_hash FROM ui_sessions"])
        .output()
        .unwrap();
    let stored = String::from_utf8_lossy(&out.stdout);
    let hash = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(token.as_bytes()))
    };
    assert!(stored.contains(&hash), "the session is stored: {stored}");
    assert!(!stored.contains(token), "as its hash only");
    // Logged out through B: A refuses it too.
    let page = page_as(&c, n[1].url("/ui/"), &session)
        .await
        .text()
        .await
        .unwrap();
    let r = form_as(
        &c,
        n[1].url("/ui/logout"),
        &session,
        &[("_csrf", csrf_of(&page).as_str())],
    )
    .await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = page_as(&c, n[0].url("/ui/"), &session).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "ended everywhere");
    assert!(r.headers()["location"]
        .to_str()
        .unwrap()
        .ends_with("/ui/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_failed_logins_over_three_nodes_lock_the_address_out_on_all() {
    let n = nodes(3, &[("VOXPROV_AUTH_MAX_FAILURES", "20")]).await;
    let c = client();
    let basic = |node: &TestApp, pass: &str| {
        c.get(node.url("/api/domains/"))
            .basic_auth("administrator", Some(pass))
            .send()
    };
    for i in 0..20 {
        let r = basic(&n[i % 3], "wrong-password").await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "failure {i}");
    }
    // The right password now gets 429 from every node: the 20 were counted together.
    for (i, node) in n.iter().enumerate() {
        let r = basic(node, ADMIN_PASS).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "node {i} refuses the address"
        );
        assert!(r.headers().contains_key("retry-after"));
    }
    // And the UI's login form likewise.
    let r = ui_login_as(&c, &n[2], ADMIN_PASS).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_changed_through_one_node_is_served_by_another_on_the_next_fetch() {
    let n = nodes(2, &[]).await;
    let f = n[0].fixture().await;
    let (_, _, path) = n[0].yealink_phone(f.customer_id, "0c1a55").await;
    let fetch = |node: &TestApp| {
        let r = node
            .client
            .get(node.url(&path))
            .header("User-Agent", "Yealink SIP-T46U 108.86.0.20");
        async move {
            let r = r.send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            r.text().await.unwrap()
        }
    };
    // Both nodes have served (and cached) it.
    assert!(fetch(&n[1]).await.contains("dhcp_host_name = Desk 0c1a55"));
    assert!(fetch(&n[0]).await.contains("dhcp_host_name = Desk 0c1a55"));
    let (_, devs) = n[0].get("/api/pbxdevices/?identifier=*0c1a55").await;
    let id = items(&devs, "pbxdevices")[0]["id"].as_i64().unwrap();
    let mut worst = Duration::ZERO;
    for round in 0..20 {
        let name = format!("Desk round {round}");
        let (s, v) = n[0]
            .patch(
                &format!("/api/pbxdevices/{id}"),
                json!([{"op": "replace", "path": "/station_name", "value": name}]),
            )
            .await;
        assert!(s.is_success(), "{v}");
        let acked = Instant::now();
        let body = fetch(&n[1]).await;
        let took = acked.elapsed();
        assert!(
            body.contains(&format!("dhcp_host_name = {name}")),
            "round {round}: node B's next fetch serves the change"
        );
        worst = worst.max(took);
    }
    println!(
        "cluster: a device change on node A was in node B's next /prov/ answer; slowest such answer {} ms (20 rounds)",
        worst.as_millis()
    );
}

/// A subscriber creation whose transaction stays open for two minutes after it drew its
/// change id (an outside transaction holds the hook outbox's table lock), while 1,000
/// later changes commit around it: once it commits, it reaches the SIP server and the hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_held_open_for_two_minutes_is_delivered_once_it_commits() {
    let n = nodes(
        2,
        &[
            ("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true"),
            ("VOXPROV_SYNC_WAIT_MS", "0"),
        ],
    )
    .await;
    let a = &n[0];
    let f = a.fixture().await;
    let db = Kamailio::create_db(Engine::Sqlite, &a.dir);
    let server = a.sipserver("kam", "kamailio", &db.url(), json!({})).await;
    a.wait_synced(server).await;
    let r = Receiver::start().await;
    r.set("/created", vec![Reply::ok("")]);
    let (s, v) = a
        .post(
            "/api/hooks/",
            json!({"name": "created", "phase": "after", "events": ["subscriber.created"], "url": r.url("/created")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");

    // The outside transaction: holds hook_deliveries against inserts for 120 s.
    let mut holder = std::process::Command::new("psql")
        .arg(&a.db_url)
        .args([
            "-qAt",
            "-c",
            "BEGIN; LOCK TABLE hook_deliveries IN SHARE ROW EXCLUSIVE MODE; SELECT pg_sleep(120); COMMIT;",
        ])
        .spawn()
        .unwrap();
    // Wait until the lock is held.
    loop {
        let out = std::process::Command::new("psql")
            .arg(&a.db_url)
            .args(["-qAtc", "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE c.relname = 'hook_deliveries' AND l.mode = 'ShareRowExclusiveLock' AND l.granted"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == "1" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let held_started = Instant::now();
    // The held one: its change is written, then it waits on the outbox.
    let held = {
        let client = a.client.clone();
        let url = a.url("/api/subscribers/");
        let body = json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "held", "password": "Sip-secret-99" });
        tokio::spawn(async move {
            let r = client
                .post(url)
                .basic_auth("administrator", Some(ADMIN_PASS))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.text().await.unwrap())
        })
    };
    // Its change id is drawn (a change row exists that nobody can see yet) and it waits.
    loop {
        let out = std::process::Command::new("psql")
            .arg(&a.db_url)
            .args(["-qAtc", "SELECT pg_sequence_last_value('changes_id_seq') > (SELECT MAX(id) FROM changes) \
                             AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation \
                                         WHERE c.relname = 'hook_deliveries' AND NOT l.granted)"])
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == "t" {
            break;
        }
        assert!(!held.is_finished(), "the held request waits");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // 1,000 later changes commit around it, through both nodes, and reach the server.
    let mut last = 0;
    for i in 0..1000 {
        let node = &n[i % 2];
        let (s, v) = node
            .post(
                "/api/customercontacts/",
                json!({"email": format!("later{i}@example.com"), "reseller_id": 1}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        last = v["id"].as_i64().unwrap();
    }
    assert!(last > 0);
    a.create(
        "/api/domains/",
        json!({"domain": "later.example", "reseller_id": 1}),
    )
    .await;
    // The later changes are on the server already (the domain), the held one is not.
    let start = Instant::now();
    while db.count("SELECT COUNT(*) FROM domain WHERE domain = 'later.example'") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "later changes are delivered meanwhile"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        db.count("SELECT COUNT(*) FROM subscriber WHERE username = 'held'"),
        0
    );
    assert!(
        held_started.elapsed() < Duration::from_secs(110),
        "the later changes committed while the held one was open"
    );
    // It commits when the outside transaction ends.
    let (status, body) = held.await.unwrap();
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(holder.wait().unwrap().success());
    println!(
        "cluster: the held transaction stayed open {} s",
        held_started.elapsed().as_secs()
    );
    let start = Instant::now();
    while db.count("SELECT COUNT(*) FROM subscriber WHERE username = 'held'") == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the held change reaches the SIP server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hits = r.wait_hits("/created", 1, 60).await;
    assert_eq!(
        hits[0].json()["object"]["username"],
        "held",
        "{}",
        hits[0].body
    );
    let v = a.wait_synced(server).await;
    assert_eq!(v["status"]["backlog"], 0);
    let (_, check) = a.get(&format!("/api/sipservers/{server}/check")).await;
    assert_eq!(check["count"], 0, "no drift: {check}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secret_key_is_refused() {
    let n = nodes(1, &[]).await;
    let other = n[0].peer(&[]);
    // Its own key, not the first node's.
    std::fs::remove_file(other.dir.join("secret.key")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_voxprov"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&other.dir)
        .args(["--database-url", &other.db_url])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another key"), "{err}");
    // The first node is unharmed.
    let (s, _) = n[0].get("/api/domains/").await;
    assert_eq!(s, StatusCode::OK);
}
