//! The Perl client from the Sipwise handbook (seed 001), start to end (call forwards and
//! preferences included), unchanged but for its two typos, run against voxprov over HTTP as a
//! reseller, as the handbook assumes.

mod common;
use common::*;
use reqwest::StatusCode;
use serde_json::json;

async fn the_sipwise_handbook_perl_client_runs_unchanged(app: TestApp) {
    let (rid, login, pass) = app.reseller("seedco").await;
    app.create(
        "/api/domains/",
        json!({ "domain": "ngcp.example.com", "reseller_id": rid }),
    )
    .await;
    app.create(
        "/api/billingprofiles/",
        json!({ "handle": "my_test_profile", "name": "Test", "reseller_id": rid }),
    )
    .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/seed/sipwise_example.pl");
    let base = app.base.clone();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("perl")
            .arg(script)
            .env("VOXPROV_URI", &base)
            .env("VOXPROV_NETLOC", base.trim_start_matches("http://"))
            .env("VOXPROV_USER", login)
            .env("VOXPROV_PASS", pass)
            .env("VOXPROV_RESELLER_ID", "")
            .output()
            .expect("perl runs (libwww-perl and libjson-perl are installed by scripts/test.sh)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "perl failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "Fetched billing profile",
        "Created customer contact",
        "Created customer",
        "Created subscriber",
        "Set call forward",
        "Updated subscriber preferences",
        "Updated subscriber",
        "Terminated subscriber",
        "Terminated customer",
    ] {
        assert!(stdout.contains(line), "missing '{line}' in:\n{stdout}");
    }
    let result = stdout
        .lines()
        .find(|l| l.starts_with("RESULT "))
        .expect("RESULT line");
    let id = |k: &str| {
        result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{k}=")))
            .unwrap()
            .parse::<i64>()
            .unwrap()
    };
    let (customer, subscriber) = (id("customer_id"), id("subscriber_id"));
    // The forward and the preferences were stored as sent (journalled: the subscriber is
    // terminated by now, so they are read from the journal).
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=callforwards&resource_id={subscriber}"
        ))
        .await;
    let cf = &items(&j, "journals")[0]["after"]["cfna"]["destinations"];
    assert_eq!(
        cf[0]["destination"], "sip:4366610001@ngcp.example.com",
        "{cf}"
    );
    assert_eq!(cf[1]["timeout"], 300, "{cf}");
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscriberpreferences&resource_id={subscriber}"
        ))
        .await;
    let p = &items(&j, "journals")[0]["after"];
    assert_eq!(p["block_in_clir"], true, "{p}");
    assert_eq!(
        p["block_in_list"],
        serde_json::json!(["4366412345", "431*"]),
        "{p}"
    );
    assert_eq!(p["prepaid_library"], "libinewrate", "{p}");
    // The server agrees with what the client was told.
    let (_, c) = app.get(&format!("/api/customers/{customer}")).await;
    assert_eq!(c["status"], "terminated");
    assert_eq!(c["reseller_id"], rid);
    let (st, _) = app.get(&format!("/api/subscribers/{subscriber}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND, "gone from the API");
    // The record stays, listed when asked for by status.
    let (_, l) = app
        .get(&format!(
            "/api/subscribers/?status=terminated&customer_id={customer}"
        ))
        .await;
    let s = items(&l, "subscribers").remove(0);
    assert_eq!(s["status"], "terminated");
    assert_eq!(s["username"], "test_10001");
    // The PUT added two aliases to the two it was created with.
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscribers&resource_id={subscriber}&operation=update"
        ))
        .await;
    let upd = items(&j, "journals");
    assert_eq!(
        upd[0]["after"]["alias_numbers"].as_array().unwrap().len(),
        4,
        "{}",
        upd[0]
    );
    assert_eq!(upd[0]["actor"], "seedco_admin");
    assert_eq!(
        s["released_numbers"]["alias_numbers"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}
both!(the_sipwise_handbook_perl_client_runs_unchanged);
