//! Three voxprov nodes on one PostgreSQL behind a real HAProxy (Debian's package, with the
//! shipped configuration's health checks): a 16-client mixed write load goes through the
//! balancer while the node delivering to the SIP server is killed with SIGKILL and started
//! again. Every acknowledged write is there with its journal entry, every after-hook event
//! reaches the receiver, the Kamailio ends with no drift, and the server was written by one
//! node at a time.

mod common;
use common::kamailio::{free_port, Kamailio};
use common::receiver::{Receiver, Reply};
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Child;
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc, Mutex,
};
use std::time::{Duration, Instant};

const CLIENTS: usize = 16;
const LOAD: Duration = Duration::from_secs(24);

/// HAProxy with the shipped configuration's defaults and checks, in front of `nodes`.
struct Balancer {
    child: Child,
    port: u16,
}

impl Balancer {
    fn start(dir: &std::path::Path, nodes: &[&TestApp]) -> Balancer {
        let shipped =
            std::fs::read_to_string(common::kamailio::repo().join("deploy/haproxy/voxprov.cfg"))
                .unwrap();
        let port = free_port();
        // The shipped file with this test's addresses: no syslog here, the nodes' ports.
        let mut cfg: Vec<String> = Vec::new();
        for line in shipped.lines() {
            let t = line.trim();
            if t.starts_with("log ") || t.starts_with("server ") {
                continue;
            }
            if t.starts_with("bind :8080") {
                cfg.push(format!("    bind 127.0.0.1:{port}"));
                continue;
            }
            cfg.push(line.to_string());
        }
        for (i, n) in nodes.iter().enumerate() {
            cfg.push(format!(
                "    server node{i} {} check",
                n.base.trim_start_matches("http://")
            ));
        }
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, cfg.join("\n") + "\n").unwrap();
        Balancer {
            child: haproxy(&path),
            port,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A query's rows, each its columns.
fn rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    psql_at(url, sql)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// What the clients were told: per subscriber, the acknowledged operations in order, and
/// whether any of its requests went unanswered (its final state is then not known).
#[derive(Default)]
struct Ledger {
    ops: BTreeMap<i64, Vec<(String, Option<String>)>>,
    unsure: BTreeSet<i64>,
    acked: usize,
    refused: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_behind_haproxy_survive_a_node_killed_mid_load() {
    let env = [("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true")];
    let mut nodes = vec![TestApp::spawn_with(Backend::Postgres, &env).await];
    for _ in 1..3 {
        let mut p = nodes[0].peer(&[]);
        p.start().await;
        nodes.push(p);
    }
    for n in nodes.iter_mut() {
        n.keep_port();
    }
    let lb = Balancer::start(&nodes[0].dir, &nodes.iter().collect::<Vec<_>>());
    let c = reqwest::Client::new();
    let api = |m: Method, path: &str| {
        c.request(m, lb.url(path))
            .basic_auth("administrator", Some(ADMIN_PASS))
    };
    // The balancer's checks pass.
    let start = Instant::now();
    loop {
        if let Ok(r) = api(Method::GET, "/api/domains/").send().await {
            if r.status() == StatusCode::OK {
                break;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(20), "HAProxy serves");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let f = nodes[0].fixture().await;
    let (db, k, server) = Kamailio::loaded_from(&nodes[0]).await;
    let r = Receiver::start().await;
    r.set("/events", vec![Reply::ok("")]);
    let (s, hook) = nodes[0]
        .post(
            "/api/hooks/",
            json!({"name": "all", "phase": "after", "events": ["subscriber.*"], "url": r.url("/events")}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{hook}");
    let hook_id = hook["id"].as_i64().unwrap();

    let ledger: Arc<Mutex<Ledger>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for cl in 0..CLIENTS {
        let (c, base, ledger, stop, cust, dom) = (
            c.clone(),
            lb.url(""),
            ledger.clone(),
            stop.clone(),
            f.customer_id,
            f.domain.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut mine: Vec<i64> = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                let req = |m: Method, p: String| {
                    c.request(m, format!("{base}{p}"))
                        .basic_auth("administrator", Some(ADMIN_PASS))
                        .timeout(Duration::from_secs(30))
                };
                let (target, op, rb) = match i % 4 {
                    2 if !mine.is_empty() => {
                        let id = mine[(i as usize / 4) % mine.len()];
                        let name = format!("c{cl} v{i}");
                        (
                            Some(id),
                            ("update".to_string(), Some(name.clone())),
                            req(Method::PATCH, format!("/api/subscribers/{id}"))
                                .header("content-type", "application/json-patch+json")
                                .body(
                                    json!([{"op": "replace", "path": "/display_name", "value": name}])
                                        .to_string(),
                                ),
                        )
                    }
                    3 if mine.len() > 2 => {
                        let id = mine.remove(0);
                        (
                            Some(id),
                            ("delete".to_string(), None),
                            req(Method::DELETE, format!("/api/subscribers/{id}")),
                        )
                    }
                    _ => (
                        None,
                        ("create".to_string(), None),
                        req(Method::POST, "/api/subscribers/".into()).json(&json!({
                            "customer_id": cust, "domain": dom, "username": format!("lb{cl}x{i}"),
                            "password": format!("Pw-{cl}-{i}-secret")
                        })),
                    ),
                };
                let answer = rb.send().await;
                let mut l = ledger.lock().unwrap();
                match answer {
                    Ok(resp) if resp.status().is_success() => {
                        l.acked += 1;
                        let id = match target {
                            Some(id) => id,
                            None => {
                                let loc = resp.headers()["location"].to_str().unwrap().to_string();
                                let id: i64 = loc.rsplit('/').next().unwrap().parse().unwrap();
                                mine.push(id);
                                id
                            }
                        };
                        l.ops.entry(id).or_default().push(op);
                    }
                    Ok(resp) => {
                        // Only while a node is going or coming: the balancer's 502/503, or
                        // a node's own 503 (never a 4xx: every request here is valid).
                        assert!(
                            resp.status().is_server_error(),
                            "{} for {op:?}",
                            resp.status()
                        );
                        l.refused += 1;
                        if let Some(id) = target {
                            l.unsure.insert(id);
                        }
                    }
                    Err(_) => {
                        l.refused += 1;
                        if let Some(id) = target {
                            l.unsure.insert(id);
                        }
                    }
                }
            }
        }));
    }

    // Mid-load, the node holding the SIP server's delivery lease dies without warning.
    tokio::time::sleep(LOAD / 4).await;
    let duty = format!("sipserver:{server}");
    let holder = rows(
        &nodes[0].db_url,
        &format!("SELECT holder FROM leases WHERE duty = '{duty}'"),
    )[0][0]
        .clone();
    let victim = nodes
        .iter()
        .position(|n| holder.ends_with(&format!(":{}", n.pid())))
        .expect("a node holds the lease");
    let killed_pid = nodes[victim].pid();
    nodes[victim].kill9();
    let killed_at = Instant::now();
    tokio::time::sleep(LOAD / 4).await;
    nodes[victim].start().await;
    tokio::time::sleep(LOAD / 2).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await.unwrap();
    }
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    println!(
        "cluster load: {} writes acknowledged, {} refused or cut while node {victim} (pid {killed_pid}) was killed and restarted",
        ledger.acked, ledger.refused
    );
    assert!(ledger.acked > 200, "the load ran: {}", ledger.acked);

    // 1. Every acknowledged write is there, with its journal entry.
    let node = &nodes[(victim + 1) % 3];
    for (id, ops) in &ledger.ops {
        let (_, j) = node
            .get(&format!(
                "/api/journals/?resource=subscribers&resource_id={id}&rows=100"
            ))
            .await;
        let journal: Vec<String> = items(&j, "journals")
            .iter()
            .map(|e| e["operation"].as_str().unwrap_or("").to_string())
            .collect();
        for kind in ["create", "update", "delete"] {
            let acked = ops.iter().filter(|(o, _)| o == kind).count();
            let logged = journal.iter().filter(|o| *o == kind).count();
            assert!(
                logged >= acked,
                "subscriber {id}: {acked} acknowledged {kind}s, {logged} in the journal"
            );
        }
        if ledger.unsure.contains(id) {
            continue;
        }
        let (s, v) = node.get(&format!("/api/subscribers/{id}")).await;
        match ops.last().unwrap() {
            (o, _) if o == "delete" => assert_eq!(s, StatusCode::NOT_FOUND, "{id}: {v}"),
            _ => {
                assert_eq!(s, StatusCode::OK, "{id}");
                let last_name = ops.iter().rev().find_map(|(_, n)| n.clone());
                if let Some(name) = last_name {
                    assert_eq!(v["display_name"], name.as_str(), "{id}");
                }
            }
        }
    }

    // 2. Every after-hook event reached the receiver (at least once; once per webhook-id).
    let start = Instant::now();
    loop {
        let (_, h) = node.get(&format!("/api/hooks/{hook_id}")).await;
        if h["pending_deliveries"] == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "deliveries drain: {h}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hits = r.hits("/events");
    let mut by_webhook: HashMap<String, i64> = HashMap::new();
    for h in &hits {
        let wid = h.headers.get("webhook-id").cloned().unwrap_or_default();
        let change = h.json()["change_id"].as_i64().unwrap_or(-1);
        if let Some(prev) = by_webhook.insert(wid.clone(), change) {
            assert_eq!(prev, change, "webhook-id {wid} always names one change");
        }
    }
    let deliveries = rows(
        &nodes[0].db_url,
        &format!(
            "SELECT webhook_id, change_id, status FROM hook_deliveries WHERE hook_id = {hook_id}"
        ),
    );
    for d in &deliveries {
        assert_eq!(d[2], "delivered", "{d:?}");
        assert!(
            by_webhook.contains_key(&d[0]),
            "delivery {d:?} reached the receiver"
        );
    }
    let changes = rows(
        &nodes[0].db_url,
        &format!("SELECT id FROM changes WHERE resource = 'subscribers' AND object_id IN (SELECT id FROM subscribers WHERE customer_id = {})", f.customer_id),
    );
    let delivered: BTreeSet<i64> = by_webhook.values().copied().collect();
    for ch in &changes {
        let id: i64 = ch[0].parse().unwrap();
        assert!(
            delivered.contains(&id),
            "change {id} was delivered to the hook"
        );
    }
    println!(
        "cluster load: {} events, {} requests at the receiver ({} resent after the kill)",
        by_webhook.len(),
        hits.len(),
        hits.len() - by_webhook.len()
    );

    // 3. The SIP server ends with no drift.
    let start = Instant::now();
    loop {
        let (_, v) = node.get(&format!("/api/sipservers/{server}")).await;
        if v["status"]["state"] == "ok" && v["status"]["backlog"] == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{}",
            v["status"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (_, check) = node.get(&format!("/api/sipservers/{server}/check")).await;
    assert_eq!(check["count"], 0, "no drift: {check}");
    let live = db.count(&format!(
        "SELECT COUNT(*) FROM subscriber WHERE domain = '{}'",
        f.domain
    ));
    assert!(live > 0);

    // 4. One node at a time: the lease history's tenures follow each other; the killed
    //    holder's last tenure began before the kill and the next one only after it (a second
    //    owner while the first lived would have begun before); the fenced progress is the
    //    last tenure's.
    let tenures: Vec<Value> = rows(
        &nodes[0].db_url,
        &format!("SELECT epoch, holder, taken_ms, COALESCE(ended_ms, -1) FROM lease_history WHERE duty = '{duty}' ORDER BY epoch"),
    )
    .iter()
    .map(|r| json!({"epoch": r[0].parse::<i64>().unwrap(), "holder": r[1], "taken": r[2].parse::<i64>().unwrap(), "ended": r[3].parse::<i64>().unwrap()}))
    .collect();
    assert!(tenures.len() >= 2, "{tenures:?}");
    for w in tenures.windows(2) {
        assert!(w[1]["epoch"].as_i64() > w[0]["epoch"].as_i64());
        let ended = w[0]["ended"].as_i64().unwrap();
        assert!(
            ended >= 0 && ended <= w[1]["taken"].as_i64().unwrap(),
            "tenures overlap: {w:?}"
        );
    }
    let killed = format!(":{killed_pid}");
    let last = tenures
        .iter()
        .rposition(|t| t["holder"].as_str().unwrap().ends_with(&killed))
        .expect("the killed node held the duty");
    let kill_ms = chrono_now_ms() - killed_at.elapsed().as_millis() as i64;
    assert!(
        tenures[last]["taken"].as_i64().unwrap() < kill_ms,
        "{tenures:?}"
    );
    let next = tenures
        .get(last + 1)
        .expect("another node took over from the killed one");
    assert!(
        !next["holder"].as_str().unwrap().ends_with(&killed),
        "{tenures:?}"
    );
    assert!(
        next["taken"].as_i64().unwrap() > kill_ms,
        "nobody took the duty while its holder lived: {tenures:?}"
    );
    let current = rows(
        &nodes[0].db_url,
        &format!("SELECT epoch FROM leases WHERE duty = '{duty}'"),
    )[0][0]
        .parse::<i64>()
        .unwrap();
    assert_eq!(
        current,
        tenures.last().unwrap()["epoch"].as_i64().unwrap(),
        "the lease is the last tenure's"
    );
    println!(
        "cluster load: delivery taken over {} ms after the kill",
        next["taken"].as_i64().unwrap() - kill_ms
    );
    // A subscriber created through the balancer and still live registers with the real
    // Kamailio.
    let live_id = ledger
        .ops
        .iter()
        .rev()
        .find(|(id, ops)| !ledger.unsure.contains(*id) && ops.last().unwrap().0 != "delete")
        .map(|(id, _)| *id)
        .unwrap();
    let (_, sub) = node.get(&format!("/api/subscribers/{live_id}")).await;
    let user = sub["username"].as_str().unwrap();
    let (cl, i) = user.trim_start_matches("lb").split_once('x').unwrap();
    assert!(
        k.register(user, &f.domain, &format!("Pw-{cl}-{i}-secret"), true)
            .ok
    );
}

fn chrono_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
