//! Bulk provisioning: `voxprov import|export` on the command line and JSON-array / CSV POSTs
//! over HTTP. Bad rows are reported with their line and field; all-or-nothing leaves the
//! database exactly as it was; every saved row is journalled.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn csv_rows(f: &Fixture, from: u64, n: u64) -> Vec<String> {
    (from..from + n)
        .map(|i| {
            format!(
                "{},{},user{i},pass-{i}-secret,49,30,{},49-31-{i};49-32-{i}",
                f.customer_id,
                f.domain,
                7_000_000 + i
            )
        })
        .collect()
}

const HEADER: &str = "customer_id,domain,username,password,cc,ac,sn,alias_numbers";

async fn snapshot(app: &TestApp) -> (Value, i64) {
    let (_, s) = app.get("/api/subscribers/?rows=1000&order_by=id").await;
    (
        Value::Array(items(&s, "subscribers")),
        app.journal_count().await,
    )
}

/// How many subscribers the fixture's customer has.
async fn subscriber_count(app: &TestApp, f: &Fixture) -> i64 {
    let (_, s) = app
        .get(&format!(
            "/api/subscribers/?rows=1&customer_id={}",
            f.customer_id
        ))
        .await;
    s["total_count"].as_i64().unwrap()
}

async fn csv_import_modes_and_export(app: TestApp) {
    let f = app.fixture().await;
    let mut rows = csv_rows(&f, 1, 50);
    // Line 4 (header = line 1): a bad username; line 9: a number line 2 already has;
    // line 12: not a customer.
    rows[2] = rows[2].replace("user3,", "bad user,");
    rows[7] = rows[7].replace(&format!(",{},", 7_000_008), &format!(",{},", 7_000_001));
    rows[10] = rows[10].replacen(&f.customer_id.to_string(), "999999", 1);
    let path = &app.csv_file("subs.csv", HEADER, &rows);

    let before = snapshot(&app).await;
    for mode_args in [vec!["--dry-run"], vec!["--mode", "all-or-nothing"]] {
        let mut args = vec!["import", "subscribers", path];
        args.extend(mode_args.iter().copied());
        let (code, out, err) = app.cli(&args);
        assert_eq!(code, 1, "{args:?}: {out}\n{err}");
        for want in [
            "line 4: username:",
            "line 9: primary_number: Number '49'-'30'-'7000001' already exists",
            "line 12: customer_id:",
        ] {
            assert!(err.contains(want), "{args:?}: missing '{want}' in\n{err}");
        }
        assert_eq!(
            err.lines().filter(|l| l.starts_with("line ")).count(),
            3,
            "{err}"
        );
        assert!(out.contains("47 "), "{out}");
        // Exactly as before: no subscriber, no journal entry.
        assert_eq!(
            snapshot(&app).await,
            before,
            "{args:?} left the database as it was"
        );
    }

    // Per row: the good rows are saved, each journalled once.
    let (code, out, err) = app.cli(&[
        "import",
        "subscribers",
        path,
        "--mode",
        "per-row",
        "--batch",
        "7",
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("47 created, 3 errors; committed"),
        "{out}\n{err}"
    );
    let (_, s) = app.get("/api/subscribers/?rows=1").await;
    assert_eq!(s["total_count"], 47);
    let (_, j) = app
        .get("/api/journals/?resource=subscribers&operation=create&rows=1")
        .await;
    assert_eq!(j["total_count"], 47);
    let (_, s) = app.get("/api/subscribers/?username=user50").await;
    let u = &items(&s, "subscribers")[0];
    assert_eq!(u["primary_number"]["sn"], "7000050");
    assert_eq!(u["alias_numbers"].as_array().unwrap().len(), 2, "{u}");
    assert_eq!(u["password"], "pass-50-secret");

    // Keyset paging: ids above the one given, in id order; only ordered by id.
    let (_, all) = app.get("/api/subscribers/?rows=100").await;
    let ids: Vec<i64> = items(&all, "subscribers")
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    let (s, v) = app
        .get(&format!(
            "/api/subscribers/?rows=5&no_count=true&after_id={}",
            ids[9]
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let got: Vec<i64> = items(&v, "subscribers")
        .iter()
        .map(|s| s["id"].as_i64().unwrap())
        .collect();
    assert_eq!(got, ids[10..15].to_vec());
    assert!(v.get("total_count").is_none_or(Value::is_null), "{v}");
    let (s, _) = app
        .get("/api/subscribers/?after_id=3&order_by=username")
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    // Export: CSV with the import columns, JSON with representations; both complete.
    let (code, out, err) = app.cli(&["export", "subscribers", "--format", "csv"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 48);
    assert!(
        lines[0].starts_with("customer_id,domain,domain_id,username,password"),
        "{}",
        lines[0]
    );
    // SIP passwords stay out unless asked for.
    assert!(
        out.contains("user50,,") && !out.contains("pass-50"),
        "{out}"
    );
    assert!(out.contains("49-31-50;49-32-50"), "{out}");
    let (code, out, err) = app.cli(&["export", "subscribers", "--with-passwords"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("user50,pass-50-secret"), "{out}");
    let (code, out, err) = app.cli(&["export", "subscribers", "--format", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 47);

    // An unknown column is refused before any row is read.
    let path = &app.csv_file("subs.csv", "customer_id,nickname", &["1,x".to_string()]);
    let (code, _, err) = app.cli(&["import", "subscribers", path]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("nickname"), "{err}");
}
both!(csv_import_modes_and_export);

/// The command line's import beside a running server that writes too: no batch is lost to
/// the other process's commits (on SQLite a deferred transaction whose snapshot another
/// process has overtaken fails its first write at once, whatever the busy timeout).
async fn an_import_beside_a_writing_server_keeps_every_row(app: TestApp) {
    let f = app.fixture().await;
    let rows = csv_rows(&f, 1, 300);
    let path = app.csv_file("beside.csv", HEADER, &rows);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (stop, f2) = (stop.clone(), app.fixture().await);
        let (client, url) = (app.client.clone(), app.url("/api/subscribers/"));
        tokio::spawn(async move {
            let mut made = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let r = client
                    .post(&url)
                    .basic_auth("administrator", Some(ADMIN_PASS))
                    .json(&json!({ "customer_id": f2.customer_id, "domain": f2.domain,
                        "username": format!("api{made}"), "password": "sip-secret-1",
                        "primary_number": { "cc": 49, "ac": 40, "sn": 100_000 + made } }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(
                    r.status(),
                    StatusCode::CREATED,
                    "{}",
                    r.text().await.unwrap()
                );
                made += 1;
            }
            made
        })
    };
    let (code, out, err) = tokio::task::block_in_place(|| {
        app.cli(&[
            "import",
            "subscribers",
            &path,
            "--mode",
            "per-row",
            "--batch",
            "3",
        ])
    });
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let made = writer.await.unwrap();
    assert!(made > 0, "the server wrote while the import ran");
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("300 created, 0 errors"), "{out}\n{err}");
    assert_eq!(subscriber_count(&app, &f).await, 300);
}
both!(an_import_beside_a_writing_server_keeps_every_row);

/// Web usernames are unique per domain too: a clash inside the file or with a subscriber
/// already there is named with its line, in either mode, and the rest is checked as well.
async fn webusername_clashes_are_named_by_line(app: TestApp) {
    let f = app.fixture().await;
    let mut b = json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "first",
        "password": "sip-secret-1", "webusername": "taken-web",
        "primary_number": { "cc": 49, "ac": 30, "sn": 6_000_000 } });
    app.create("/api/subscribers/", b.take()).await;
    let row = |i: u64, web: &str| {
        format!(
            "{},{},wu{i},pass-{i}-secret,{web},49,30,{}",
            f.customer_id,
            f.domain,
            6_000_100 + i
        )
    };
    let rows = [
        row(1, "web-a"),
        row(2, "taken-web"), // line 3: someone has it
        row(3, "web-b"),
        row(4, "web-a"), // line 5: line 2 has it
        row(5, "web-c"),
    ];
    let path = &app.csv_file(
        "web.csv",
        "customer_id,domain,username,password,webusername,cc,ac,sn",
        &rows,
    );
    let before = snapshot(&app).await;
    let (code, out, err) = app.cli(&["import", "subscribers", path]);
    assert_eq!(code, 1, "{out}\n{err}");
    for want in ["line 3: webusername:", "line 5: webusername:"] {
        assert!(err.contains(want), "missing '{want}' in\n{err}");
    }
    assert!(out.contains("3 created, 2 errors"), "{out}\n{err}");
    assert_eq!(
        snapshot(&app).await,
        before,
        "all-or-nothing left the database as it was"
    );
    let (code, out, err) = app.cli(&["import", "subscribers", path, "--mode", "per-row"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        out.contains("3 created, 2 errors; committed"),
        "{out}\n{err}"
    );
    assert_eq!(subscriber_count(&app, &f).await, 4);
}
both!(webusername_clashes_are_named_by_line);

async fn bulk_posts_give_per_row_results(app: TestApp) {
    let f = app.fixture().await;
    let row = |i: u64| {
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": format!("b{i}"), "password": "pw-123456",
                "primary_number": { "cc": 43, "ac": 1, "sn": 600000 + i } })
    };
    let mut body: Vec<Value> = (1..=5).map(row).collect();
    body[3]["username"] = json!("b1"); // taken by the first row
    let before = snapshot(&app).await;
    let (s, v) = app
        .post("/api/subscribers/", Value::Array(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["summary"]["errors"], 1);
    assert_eq!(v["summary"]["committed"], false);
    assert_eq!(v["rows"][3]["field"], "username", "{v}");
    assert_eq!(v["rows"][3]["row"], 4);
    assert_eq!(v["rows"][0]["status"], "not_saved");
    assert_eq!(
        snapshot(&app).await,
        before,
        "all-or-nothing left nothing behind"
    );

    let (s, v) = app
        .post("/api/subscribers/?dry_run=1", Value::Array(body.clone()))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["rows"][0]["status"], "valid");
    assert_eq!(snapshot(&app).await, before);

    let (s, v) = app
        .post("/api/subscribers/?mode=per-row", Value::Array(body))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["summary"]["created"], 4);
    let id = v["rows"][4]["id"].as_i64().unwrap();
    let (_, sub) = app.get(&format!("/api/subscribers/{id}")).await;
    assert_eq!(sub["username"], "b5");

    // text/csv, as a reseller: scoped like a single POST.
    let csv = format!(
        "customer_id,domain,username,password,cc,ac,sn\n{c},{d},c1,pw-123456,43,1,610001\n{c},{d},c2,pw-123456,43,1,610002\n",
        c = f.customer_id,
        d = f.domain
    );
    let (s, v) = send(
        app.req(Method::POST, "/api/subscribers/")
            .header("Content-Type", "text/csv")
            .body(csv.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["summary"]["created"], 2);
    let (_, login, pass) = app.reseller("other").await;
    let (s, v) = send(
        app.req_as(
            Method::POST,
            "/api/subscribers/?mode=per-row",
            &login,
            &pass,
        )
        .header("Content-Type", "text/csv")
        .body(
            csv.replace("c1,", "c3,")
                .replace("c2,", "c4,")
                .replace("61000", "62000"),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["summary"]["errors"], 2,
        "another reseller's customer: {v}"
    );
    assert_eq!(v["rows"][0]["field"], "customer_id");

    // Customers take arrays too; collections without bulk say so.
    let (s, v) = app
        .post(
            "/api/customers/",
            json!([{ "contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id, "type": "sipaccount" },
                   { "contact_id": 999999, "billing_profile_id": f.billing_profile_id }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["rows"][1]["field"], "contact_id", "{v}");
    let (s, v) = app
        .post("/api/domains/", json!([{ "domain": "x.example" }]))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
}
both!(bulk_posts_give_per_row_results);

async fn numbers_import_adds_to_subscribers(app: TestApp) {
    let f = app.fixture().await;
    let sid = app.subscriber(&f, "nina", 5550100).await;
    let file = app.dir.join("numbers.csv");
    std::fs::write(
        &file,
        format!("subscriber_id,cc,ac,sn,is_primary\n{sid},49,40,111,\n{sid},49,40,222,true\n999999,49,40,333,\n"),
    )
    .unwrap();
    let (code, out, err) = app.cli(&[
        "import",
        "numbers",
        file.to_str().unwrap(),
        "--mode",
        "per-row",
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("line 4: subscriber_id:"), "{err}");
    let (_, s) = app.get(&format!("/api/subscribers/{sid}")).await;
    assert_eq!(s["primary_number"]["sn"], "222", "{s}");
    let aliases: Vec<&str> = s["alias_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["sn"].as_str().unwrap())
        .collect();
    assert_eq!(aliases.len(), 2, "{s}");
    assert!(
        aliases.contains(&"111") && aliases.contains(&"5550100"),
        "{aliases:?}"
    );
}
both!(numbers_import_adds_to_subscribers);

/// Web passwords are hashed ahead of the statements that store them (a request's before its
/// transaction, an import's batch on every CPU): each stored hash is of its own row's
/// password, whichever way the subscriber came — one POST, a bulk POST, a CSV import in
/// batches, a PATCH.
async fn web_passwords_hashed_ahead_are_each_rows_own(app: TestApp) {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let f = app.fixture().await;
    let body = |user: &str, web: Option<&str>| {
        let mut b = json!({ "customer_id": f.customer_id, "domain": f.domain, "username": user, "password": "sip-secret-1" });
        if let Some(w) = web {
            b["webpassword"] = json!(w);
        }
        b
    };
    let (s, v) = app
        .post("/api/subscribers/", body("one", Some("web-one-1")))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let rows = json!([
        body("bulk1", Some("web-bulk-1")),
        body("bulk2", None),
        body("bulk3", Some("web-bulk-3")),
        body("bulk4", Some("web-bulk-1")),
    ]);
    let (s, v) = app.post("/api/subscribers/", rows).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let csv: Vec<String> = (1..=5)
        .map(|i| {
            format!(
                "{},{},csv{i},sip-secret-{i},web-csv-{i}",
                f.customer_id, f.domain
            )
        })
        .collect();
    let path = app.csv_file(
        "web.csv",
        "customer_id,domain,username,password,webpassword",
        &csv,
    );
    let (code, out, err) =
        tokio::task::block_in_place(|| app.cli(&["import", "subscribers", &path, "--batch", "2"]));
    assert_eq!(code, 0, "{out}\n{err}");
    let (_, list) = app.get("/api/subscribers/?username=bulk3&rows=1").await;
    let id = items(&list, "subscribers")[0]["id"].as_i64().unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{id}"),
            json!([{ "op": "replace", "path": "/webpassword", "value": "web-patched-3" }]),
        )
        .await;
    assert!(s.is_success(), "{v}");

    let mut want: Vec<(String, Option<String>)> = vec![
        ("one".into(), Some("web-one-1".into())),
        ("bulk1".into(), Some("web-bulk-1".into())),
        ("bulk2".into(), None),
        ("bulk3".into(), Some("web-patched-3".into())),
        ("bulk4".into(), Some("web-bulk-1".into())),
    ];
    want.extend((1..=5).map(|i| (format!("csv{i}"), Some(format!("web-csv-{i}")))));
    let stored = app.db_query("SELECT username, COALESCE(webpassword_hash, '-') FROM subscribers");
    let hash_of = |user: &str| {
        stored
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{user}\t")))
            .unwrap_or_else(|| panic!("{user} missing from\n{stored}"))
            .to_string()
    };
    for (user, web) in &want {
        let h = hash_of(user);
        match web {
            None => assert_eq!(h, "-", "{user}"),
            Some(pw) => {
                let parsed = PasswordHash::new(&h).unwrap();
                assert!(
                    argon2::Argon2::default()
                        .verify_password(pw.as_bytes(), &parsed)
                        .is_ok(),
                    "{user}'s hash is not of {pw}"
                );
            }
        }
    }
    assert_ne!(
        hash_of("bulk1"),
        hash_of("bulk4"),
        "each hash has its own salt"
    );
}
both!(web_passwords_hashed_ahead_are_each_rows_own);
