//! Call forwards and preferences over HTTP: every forward type, time sets, every preference
//! type, inheritance from the domain, and the 422 (naming the field) each bad input gets.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn field_of(v: &Value) -> String {
    v["field"].as_str().unwrap_or("").to_string()
}

async fn expect_422(app: &TestApp, method: Method, path: &str, body: Value, field: &str) {
    let (s, v) = send(
        app.req(method.clone(), path)
            .header("Content-Type", "application/json")
            .header("Prefer", "handling=strict")
            .body(body.to_string()),
    )
    .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{method} {path} {body}: {v}"
    );
    assert_eq!(field_of(&v), field, "{body}: {v}");
}

async fn every_forward_type_round_trips_and_bad_input_names_the_field(app: TestApp) {
    let f = app.fixture().await;
    let d = f.domain.clone();
    let sid = app.subscriber(&f, "alice", 5550001).await;
    let path = format!("/api/callforwards/{sid}");

    // Nothing set: every type is there, empty.
    let (s, v) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for t in ["cfu", "cfb", "cft", "cfna", "cfs", "cfr", "cfo"] {
        assert_eq!(v[t]["destinations"], json!([]), "{t}: {v}");
    }

    // All types at once; numbers, URIs and well-known targets are normalized.
    let (s, v) = app
        .put(
            &path,
            json!({
                "cfu": { "destinations": [{ "destination": "+4366610001", "timeout": 20 }] },
                "cfb": { "destinations": [{ "destination": "sip:busy@elsewhere.example" }] },
                "cft": { "destinations": [{ "destination": "4366610002", "timeout": 10, "priority": 2 },
                                          { "destination": "voicebox", "priority": 1 }],
                         "ringtimeout": 25 },
                "cfna": { "destinations": [{ "destination": 4366610003u64 }],
                          "times": [{ "wday": "2-6", "hour": "8-17" }, { "wday": 1, "hour": null }] },
                "cfs": { "destinations": [{ "destination": "4366610004" }] },
                "cfr": { "destinations": [{ "destination": "4366610005" }] },
                "cfo": { "destinations": [{ "destination": "4366610006" }],
                         "sources": ["+43664*"], "sources_mode": "blacklist" }
            }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["cfu"]["destinations"][0]["destination"],
        format!("sip:4366610001@{d}")
    );
    assert_eq!(v["cfu"]["destinations"][0]["timeout"], 20);
    assert_eq!(
        v["cfb"]["destinations"][0]["destination"],
        "sip:busy@elsewhere.example"
    );
    assert_eq!(
        v["cfb"]["destinations"][0]["timeout"], 300,
        "default timeout"
    );
    // The hunting list is ordered by priority.
    assert_eq!(
        v["cft"]["destinations"][0]["destination"],
        "sip:vmu49305550001@voicebox.local"
    );
    assert_eq!(
        v["cft"]["destinations"][1]["destination"],
        format!("sip:4366610002@{d}")
    );
    assert_eq!(v["cft"]["ringtimeout"], 25);
    assert_eq!(
        v["cfna"]["times"],
        json!([
            { "year": null, "month": null, "mday": null, "wday": "2-6", "hour": "8-17", "minute": null },
            { "year": null, "month": null, "mday": null, "wday": "1", "hour": null, "minute": null }
        ])
    );
    assert_eq!(v["cfo"]["sources"], json!(["43664*"]));
    assert_eq!(v["cfo"]["sources_mode"], "blacklist");
    for t in ["cfs", "cfr"] {
        assert_eq!(v[t]["destinations"].as_array().unwrap().len(), 1, "{t}");
    }
    // ringtimeout is the preference of the same name.
    let (_, p) = app.get(&format!("/api/subscriberpreferences/{sid}")).await;
    assert_eq!(p["ringtimeout"], 25, "{p}");

    // The quick sets and mappings are visible through the other three resources.
    let (_, m) = app.get(&format!("/api/cfmappings/{sid}")).await;
    assert_eq!(m["cfu"][0]["destinationset"], "quickset_cfu", "{m}");
    assert_eq!(m["cfna"][0]["timeset"], "quickset_cfna", "{m}");
    assert_eq!(m["cft_ringtimeout"], 25);
    let (_, ds) = app
        .get(&format!(
            "/api/cfdestinationsets/?subscriber_id={sid}&rows=50"
        ))
        .await;
    assert_eq!(ds["total_count"], 7, "{ds}");
    let (_, ts) = app
        .get(&format!("/api/cftimesets/?subscriber_id={sid}"))
        .await;
    assert_eq!(ts["total_count"], 1, "{ts}");

    // PATCH one type; the others stay.
    let (s, v) = app
        .patch(&path, json!([{ "op": "replace", "path": "/cfu/destinations", "value": [{ "destination": "sip:bob@x.example" }] }]))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["cfu"]["destinations"][0]["destination"],
        "sip:bob@x.example"
    );
    assert_eq!(
        v["cfb"]["destinations"][0]["destination"],
        "sip:busy@elsewhere.example"
    );

    // Bad input: 422 naming the field, nothing changed.
    let before = app.get(&path).await.1;
    for (body, field) in [
        (
            json!({ "cfu": { "destinations": [{ "destination": "43 666" }] } }),
            "cfu.destinations[0].destination",
        ),
        (
            json!({ "cfu": { "destinations": [{ "destination": "sip:" }] } }),
            "cfu.destinations[0].destination",
        ),
        (
            json!({ "cfb": { "destinations": [{ "destination": "1", "timeout": 0 }] } }),
            "cfb.destinations[0].timeout",
        ),
        (
            json!({ "cfb": { "destinations": [{ "destination": "1", "timeout": "x" }] } }),
            "cfb.destinations[0].timeout",
        ),
        (
            json!({ "cft": { "destinations": [{ "destination": "1" }], "ringtimeout": 0 } }),
            "cft.ringtimeout",
        ),
        (
            json!({ "cfu": { "destinations": [{ "destination": "1" }], "ringtimeout": 5 } }),
            "cfu.ringtimeout",
        ),
        (
            json!({ "cfna": { "destinations": [{ "destination": "1" }], "times": [{ "hour": "8-25" }] } }),
            "cfna.times[0].hour",
        ),
        (
            json!({ "cfna": { "destinations": [{ "destination": "1" }], "times": [{ "minute": "61" }] } }),
            "cfna.times[0].minute",
        ),
        (
            json!({ "cfna": { "destinations": [{ "destination": "1" }], "times": [{ "wday": "0" }] } }),
            "cfna.times[0].wday",
        ),
        (
            json!({ "cfna": { "destinations": [{ "destination": "1" }], "times": [{ "month": "13" }] } }),
            "cfna.times[0].month",
        ),
        (
            json!({ "cfna": { "destinations": [{ "destination": "1" }], "times": [{ "mday": "10-2" }] } }),
            "cfna.times[0].mday",
        ),
        (
            json!({ "cfna": { "destinations": [{ "destination": "1" }], "times": [{ "year": "1900" }] } }),
            "cfna.times[0].year",
        ),
        (
            json!({ "cfna": { "destinations": [], "times": [{ "hour": "8" }] } }),
            "cfna.destinations",
        ),
        (
            json!({ "cfo": { "destinations": [{ "destination": "1" }], "sources": ["abc"] } }),
            "cfo.sources[0]",
        ),
        (
            json!({ "cfo": { "destinations": [{ "destination": "1" }], "sources_mode": "greylist" } }),
            "cfo.sources_mode",
        ),
        (json!({ "cfx": {} }), "cfx"),
    ] {
        expect_422(&app, Method::PUT, &path, body, field).await;
    }
    assert_eq!(
        app.get(&path).await.1,
        before,
        "a refused PUT changed nothing"
    );

    // DELETE empties; the quick sets go with their mappings.
    let (s, _) = app.delete(&path).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (_, v) = app.get(&path).await;
    assert_eq!(v["cfu"]["destinations"], json!([]));
    let (_, ds) = app
        .get(&format!("/api/cfdestinationsets/?subscriber_id={sid}"))
        .await;
    assert_eq!(ds["total_count"], 0, "{ds}");

    // Every change is journalled under its resource.
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=callforwards&resource_id={sid}"
        ))
        .await;
    assert_eq!(j["total_count"], 3, "{j}");
}
both!(every_forward_type_round_trips_and_bad_input_names_the_field);

async fn named_sets_and_mappings(app: TestApp) {
    let f = app.fixture().await;
    let sid = app.subscriber(&f, "carol", 5550002).await;
    let other = app.subscriber(&f, "dave", 5550003).await;
    let ds = app
        .create(
            "/api/cfdestinationsets/",
            json!({ "subscriber_id": sid, "name": "office", "destinations": [
                { "destination": "4311110001", "timeout": 15 }, { "destination": "voicebox" } ] }),
        )
        .await;
    let ts = app
        .create(
            "/api/cftimesets/",
            json!({ "subscriber_id": sid, "name": "workdays", "times": [{ "wday": "2-6", "hour": "9-17", "minute": "0-59" }] }),
        )
        .await;
    // Names are unique per subscriber; quickset_ is reserved; times are validated.
    expect_422(
        &app,
        Method::POST,
        "/api/cfdestinationsets/",
        json!({ "subscriber_id": sid, "name": "office", "destinations": [{ "destination": "1" }] }),
        "name",
    )
    .await;
    expect_422(&app, Method::POST, "/api/cfdestinationsets/",
        json!({ "subscriber_id": sid, "name": "quickset_cfu", "destinations": [{ "destination": "1" }] }), "name").await;
    expect_422(
        &app,
        Method::POST,
        "/api/cfdestinationsets/",
        json!({ "subscriber_id": sid, "name": "x", "destinations": [] }),
        "destinations",
    )
    .await;
    expect_422(
        &app,
        Method::POST,
        "/api/cftimesets/",
        json!({ "subscriber_id": sid, "name": "bad", "times": [{ "hour": "17-9" }] }),
        "times[0].hour",
    )
    .await;
    expect_422(
        &app,
        Method::POST,
        "/api/cftimesets/",
        json!({ "subscriber_id": 999999, "name": "x", "times": [{ "hour": "1" }] }),
        "subscriber_id",
    )
    .await;

    let (s, m) = app
        .put(
            &format!("/api/cfmappings/{sid}"),
            json!({ "cft": [{ "destinationset": "office", "timeset_id": ts }], "cft_ringtimeout": 12 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["cft"][0]["destinationset_id"], ds);
    assert_eq!(m["cft"][0]["timeset"], "workdays");
    let (_, cfw) = app.get(&format!("/api/callforwards/{sid}")).await;
    assert_eq!(cfw["cft"]["destinations"][0]["timeout"], 15, "{cfw}");
    assert_eq!(cfw["cft"]["ringtimeout"], 12);
    assert_eq!(cfw["cft"]["times"][0]["wday"], "2-6");

    // Another subscriber's set cannot be used; a set in use cannot be deleted.
    expect_422(
        &app,
        Method::PUT,
        &format!("/api/cfmappings/{other}"),
        json!({ "cfu": [{ "destinationset_id": ds }] }),
        "cfu[0].destinationset",
    )
    .await;
    expect_422(
        &app,
        Method::PUT,
        &format!("/api/cfmappings/{sid}"),
        json!({ "cfu": [{ "timeset": "workdays" }] }),
        "cfu[0].destinationset",
    )
    .await;
    let (s, _) = app.delete(&format!("/api/cfdestinationsets/{ds}")).await;
    assert_eq!(s, StatusCode::LOCKED);
    // Changing the set changes the forward.
    let (s, v) = app
        .put(&format!("/api/cfdestinationsets/{ds}"),
            json!({ "subscriber_id": sid, "name": "office", "destinations": [{ "destination": "sip:desk@x.example" }] }))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, cfw) = app.get(&format!("/api/callforwards/{sid}")).await;
    assert_eq!(
        cfw["cft"]["destinations"][0]["destination"],
        "sip:desk@x.example"
    );
}
both!(named_sets_and_mappings);

async fn preferences_of_every_type_with_domain_defaults(app: TestApp) {
    let f = app.fixture().await;
    let sid = app.subscriber(&f, "erin", 5550004).await;
    let (s, defs) = app.get("/api/subscriberpreferencedefs/").await;
    assert_eq!(s, StatusCode::OK);
    for name in [
        "block_in_mode",
        "block_in_list",
        "block_in_clir",
        "block_out_mode",
        "block_out_list",
        "clir",
        "cli",
        "lock",
        "ringtimeout",
        "concurrent_max",
        "allowed_ips",
        "language",
        "emergency_suffix",
    ] {
        assert!(
            defs[name]["data_type"].is_string(),
            "{name} in the catalog: {defs}"
        );
    }
    assert_eq!(defs["block_in_list"]["max_occur"], 0);
    assert_eq!(defs["lock"]["data_type"], "enum");

    let path = format!("/api/subscriberpreferences/{sid}");
    let (s, p) = app.get(&path).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["subscriber_id"], sid);
    let mut body = p.clone();
    body.as_object_mut().unwrap().remove("_links");
    let set = json!({
        "block_in_mode": false, "block_in_list": ["+4366412345", "431*"], "block_in_clir": true,
        "block_out_mode": true, "block_out_list": ["43?"], "clir": 1, "cli": "+4311110000",
        "lock": "2", "ringtimeout": 30, "concurrent_max": 2, "allowed_ips": ["192.0.2.0/24", "2001:db8::1"],
        "language": "de-AT", "emergency_suffix": "112", "prepaid_library": "libinewrate"
    });
    for (k, v) in set.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (s, p) = app.put(&path, body).await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["block_in_list"], json!(["4366412345", "431*"]));
    assert_eq!(p["clir"], true);
    assert_eq!(p["cli"], "4311110000");
    assert_eq!(p["lock"], "2");
    // lock is the subscriber's own.
    let (_, sub) = app.get(&format!("/api/subscribers/{sid}")).await;
    assert_eq!(sub["lock"], 2);

    // PATCH adds to a list.
    let (s, p) = app
        .patch(
            &path,
            json!([{ "op": "add", "path": "/block_in_list/-", "value": "4399*" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["block_in_list"].as_array().unwrap().len(), 3);

    let before = app.get(&path).await.1;
    for (body, field) in [
        (json!({ "no_such_pref": 1 }), "no_such_pref"),
        (json!({ "block_in_list": "431*" }), "block_in_list"),
        (json!({ "block_in_list": ["43a1"] }), "block_in_list[0]"),
        (json!({ "block_in_mode": "yes" }), "block_in_mode"),
        (json!({ "ringtimeout": 0 }), "ringtimeout"),
        (json!({ "ringtimeout": "soon" }), "ringtimeout"),
        (json!({ "concurrent_max": -1 }), "concurrent_max"),
        (json!({ "lock": "7" }), "lock"),
        (json!({ "allowed_ips": ["300.1.1.1"] }), "allowed_ips[0]"),
        (json!({ "language": "english language" }), "language"),
        (json!({ "cli": "12ab" }), "cli"),
        (json!({ "emergency_suffix": "" }), "emergency_suffix"),
        (json!({ "prepaid_library": "other" }), "prepaid_library"),
        (json!({ "subscriber_id": sid + 1000 }), "subscriber_id"),
    ] {
        expect_422(&app, Method::PUT, &path, body, field).await;
    }
    assert_eq!(
        app.get(&path).await.1,
        before,
        "a refused PUT changed nothing"
    );

    // PUT replaces the whole set.
    let (s, p) = app.put(&path, json!({ "language": "en" })).await;
    assert_eq!(s, StatusCode::OK);
    assert!(p.get("block_in_list").is_none(), "{p}");
    let (_, sub) = app.get(&format!("/api/subscribers/{sid}")).await;
    assert_eq!(sub["lock"], 0, "lock left out = unlocked");

    // Domain defaults: accepted names are checked too; per-subscriber ones are refused.
    let dpath = format!("/api/domainpreferences/{}", f.domain_id);
    let (s, dp) = app
        .put(&dpath, json!({ "block_in_clir": true, "language": "fr" }))
        .await;
    assert_eq!(s, StatusCode::OK, "{dp}");
    assert_eq!(dp["domain"], f.domain);
    expect_422(&app, Method::PUT, &dpath, json!({ "cli": "4311" }), "cli").await;
    expect_422(&app, Method::PUT, &dpath, json!({ "nope": true }), "nope").await;

    // A reseller cannot see another reseller's subscriber's preferences.
    let (_, login, pass) = app.reseller("other").await;
    let (s, _) = send(app.req_as(Method::GET, &path, &login, &pass)).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(
        app.req_as(
            Method::PUT,
            &format!("/api/callforwards/{sid}"),
            &login,
            &pass,
        )
        .json(&json!({})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
both!(preferences_of_every_type_with_domain_defaults);
