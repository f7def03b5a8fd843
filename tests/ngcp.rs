//! NGCP's contract: what Sipwise's clients send and expect. Each leniency NGCP has is the
//! default (and named in `Voxprov-Ignored`), and `Prefer: handling=strict` refuses the same
//! request; the resources NGCP clients need beyond the core (contracts, subscriber contacts
//! and profiles, customer preferences, sound sets) behave as they expect.

mod common;

use common::sipdb::{self, Engine, SipDb};
use common::{items, send, wav, TestApp};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

fn ignored(r: &reqwest::Response) -> String {
    r.headers()
        .get("voxprov-ignored")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// POSTs `body` twice, lenient then strict: (lenient status, Voxprov-Ignored, strict status,
/// strict answer).
async fn both_ways(
    app: &TestApp,
    path: &str,
    body: Value,
) -> (StatusCode, String, StatusCode, Value) {
    let r = app
        .req(Method::POST, path)
        .json(&body)
        .send()
        .await
        .unwrap();
    let (ls, li) = (r.status(), ignored(&r));
    let (ss, sv) = send(
        app.req(Method::POST, path)
            .header("Prefer", "handling=strict")
            .json(&body),
    )
    .await;
    (ls, li, ss, sv)
}

async fn ngcp_leniency_is_the_default_and_strictness_refuses_the_same_request(app: TestApp) {
    let f = app.fixture().await;
    // Booleans as 0/1 and strings, ids as digit strings, an unknown field.
    let (ls, li, ss, sv) = both_ways(
        &app,
        "/api/subscribers/",
        json!({ "customer_id": f.customer_id.to_string(), "domain": f.domain, "username": "len1",
                "password": "sip-secret-1", "administrative": 0, "is_pbx_pilot": false }),
    )
    .await;
    assert_eq!(ls, StatusCode::CREATED);
    assert!(li.contains("body:is_pbx_pilot"), "{li}");
    assert_eq!(ss, StatusCode::UNPROCESSABLE_ENTITY, "{sv}");
    let (_, v) = app.get("/api/subscribers/?username=len1").await;
    let sub = &items(&v, "subscribers")[0];
    assert_eq!(sub["administrative"], false);
    assert_eq!(sub["customer_id"], f.customer_id);

    let (ls, _, ss, sv) = both_ways(
        &app,
        "/api/subscribers/",
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "len2",
                "password": "sip-secret-1", "administrative": "true" }),
    )
    .await;
    assert_eq!(ls, StatusCode::CREATED);
    assert_eq!(ss, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(sv["field"], "administrative", "{sv}");
    let (_, v) = app.get("/api/subscribers/?username=len2").await;
    assert_eq!(items(&v, "subscribers")[0]["administrative"], true);

    // Digit strings for integer ids on every collection, e.g. a domain's reseller.
    let (ls, _, ss, _) = both_ways(
        &app,
        "/api/domains/",
        json!({ "domain": "lenient.example.org", "reseller_id": "1" }),
    )
    .await;
    assert_eq!(ls, StatusCode::CREATED);
    assert_eq!(ss, StatusCode::UNPROCESSABLE_ENTITY);

    // Unknown query parameters are ignored and named; strict refuses them.
    let r = app
        .req(
            Method::GET,
            "/api/subscribers/?is_pbx_pilot=0&order_by=nonsense",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let li = ignored(&r);
    assert!(
        li.contains("query:is_pbx_pilot") && li.contains("query:order_by"),
        "{li}"
    );
    let r = app
        .req(Method::GET, "/api/subscribers/?is_pbx_pilot=0")
        .header("Prefer", "handling=strict")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("is_pbx_pilot"));

    // Read-only fields in a PUT (NGCP sends "id": "1" back) are ignored; strict refuses a
    // different value.
    let id = sub["id"].as_i64().unwrap();
    let (_, mut cur) = app.get(&format!("/api/subscribers/{id}")).await;
    cur.as_object_mut().unwrap().remove("_links");
    cur["id"] = json!("999");
    cur["display_name"] = json!("Lenient");
    let r = app
        .req(Method::PUT, &format!("/api/subscribers/{id}"))
        .json(&cur)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(ignored(&r).contains("body:id"), "{}", ignored(&r));
    let (_, now) = app.get(&format!("/api/subscribers/{id}")).await;
    assert_eq!(
        (now["id"].as_i64(), now["display_name"].as_str()),
        (Some(id), Some("Lenient"))
    );
    let (s, v) = send(
        app.req(Method::PUT, &format!("/api/subscribers/{id}"))
            .header("Prefer", "handling=strict")
            .json(&cur),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "id");

    // The server-wide setting makes strict the default.
    let strict = TestApp::spawn_with(app.backend, &[("VOXPROV_API_STRICT", "true")]).await;
    let f2 = strict.fixture().await;
    let (s, v) = send(strict.req(Method::POST, "/api/subscribers/").json(&json!({
        "customer_id": f2.customer_id, "domain": f2.domain, "username": "s1",
        "password": "sip-secret-1", "administrative": 0 })))
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, _) = send(
        strict
            .req(Method::POST, "/api/subscribers/")
            .header("Prefer", "handling=lenient")
            .json(&json!({
        "customer_id": f2.customer_id, "domain": f2.domain, "username": "s1",
        "password": "sip-secret-1", "administrative": 0 })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
}
both!(ngcp_leniency_is_the_default_and_strictness_refuses_the_same_request);

async fn ngcp_contract_where_voxprov_used_to_differ(app: TestApp) {
    let f = app.fixture().await;
    // A terminated subscriber is gone: 404, listed only with ?status=terminated.
    let id = app.subscriber(&f, "gone", 5550001).await;
    let (s, _) = app.delete(&format!("/api/subscribers/{id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&format!("/api/subscribers/{id}")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = app.get("/api/subscribers/?username=gone").await;
    assert_eq!(v["total_count"], 0);
    let (_, v) = app
        .get("/api/subscribers/?username=gone&status=terminated")
        .await;
    assert_eq!(v["total_count"], 1);

    // Required fields: a customer contact needs an email; null on a required field is 422.
    let (s, v) = app
        .post(
            "/api/customercontacts/",
            json!({ "reseller_id": 1, "firstname": "No" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "email");
    let (s, v) = app
        .patch(
            &format!("/api/customercontacts/{}", f.contact_id),
            json!([{ "op": "replace", "path": "/email", "value": null }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "email");

    // Validation messages in NGCP's form, the field still named.
    let (s, v) = app
        .patch(
            &format!("/api/customers/{}", f.customer_id),
            json!([{ "op": "replace", "path": "/status", "value": "invalid" }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let m = v["message"].as_str().unwrap();
    assert!(
        m.starts_with("Validation failed. field='status', input='invalid', errors='"),
        "{m}"
    );
    assert_eq!(v["field"], "status");

    // One-item pages collapse _links too; //api/ is /api/.
    let (_, v) = app.get("/api/customers/?rows=1").await;
    assert!(v["_links"]["ngcp:customers"].is_object(), "{v}");
    let (s, v) = app.get("//api//customers/?rows=1").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Domain names as NGCP accepts them; whitespace and control characters still refused.
    let (s, v) = app
        .post(
            "/api/domains/",
            json!({ "domain": "api_test.api_test", "reseller_id": 1 }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    for bad in ["a b.example", "tab\t.example"] {
        let (s, v) = app
            .post("/api/domains/", json!({ "domain": bad, "reseller_id": 1 }))
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {v}");
    }

    // Accept-Post with NGCP's profile; OPTIONS /api/ with a Link per collection.
    let r = app
        .req(Method::OPTIONS, "/api/customers/")
        .send()
        .await
        .unwrap();
    let ap = r.headers()["accept-post"].to_str().unwrap();
    assert!(
        ap.contains("profile=http://purl.org/sipwise/ngcp-api/#rel-customers"),
        "{ap}"
    );
    let r = app.req(Method::OPTIONS, "/api/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let links: Vec<_> = r
        .headers()
        .get_all("link")
        .iter()
        .map(|l| l.to_str().unwrap().to_string())
        .collect();
    assert!(
        links
            .iter()
            .any(|l| l
                .contains("rel=\"collection http://purl.org/sipwise/ngcp-api/#rel-soundsets\"")),
        "{links:?}"
    );
    // Only NGCP's relations there: its clients take every one for theirs.
    assert!(
        !links.iter().any(|l| l.contains("/api/hooks/")),
        "{links:?}"
    );
    // Customers link their balance; system contacts carry no reseller_id.
    let (_, v) = app.get(&format!("/api/customers/{}", f.customer_id)).await;
    assert!(v["_links"]["ngcp:customerbalances"].is_object(), "{v}");
    let sc = app
        .create(
            "/api/systemcontacts/",
            json!({ "email": "sys@example.com" }),
        )
        .await;
    let (_, v) = app.get(&format!("/api/systemcontacts/{sc}")).await;
    assert!(v.get("reseller_id").is_none(), "{v}");
}
both!(ngcp_contract_where_voxprov_used_to_differ);

async fn a_reseller_is_created_on_a_contract_as_ngcp_does(app: TestApp) {
    let sc = app
        .create(
            "/api/systemcontacts/",
            json!({ "email": "res@example.com" }),
        )
        .await;
    let contract = app
        .create(
            "/api/contracts/",
            json!({ "contact_id": sc, "type": "reseller", "status": "active" }),
        )
        .await;
    let (s, v) = app
        .post(
            "/api/resellers/",
            json!({ "contract_id": contract, "name": "on-contract", "status": "active" }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["contract_id"], contract);
    // A contract carries one reseller.
    let (s, v) = app
        .post(
            "/api/resellers/",
            json!({ "contract_id": contract, "name": "second", "status": "active" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "contract_id");
    // A customer contact is not a contract's contact.
    let cc = app
        .create(
            "/api/customercontacts/",
            json!({ "email": "x@example.com", "reseller_id": 1 }),
        )
        .await;
    let (s, v) = app
        .post(
            "/api/contracts/",
            json!({ "contact_id": cc, "type": "reseller" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "contact_id");
    // Contracts are admins' only.
    let (_, login, pass) = app.reseller("contractless").await;
    let (s, _) = send(app.req_as(Method::GET, "/api/contracts/", &login, &pass)).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
both!(a_reseller_is_created_on_a_contract_as_ngcp_does);

async fn subscribers_name_a_contact_and_a_profile_of_their_resellers(app: TestApp) {
    let f = app.fixture().await;
    let set = app
        .create(
            "/api/subscriberprofilesets/",
            json!({ "reseller_id": 1, "name": "basic" }),
        )
        .await;
    let dflt = app
        .create(
            "/api/subscriberprofiles/",
            json!({ "profile_set_id": set, "name": "standard", "set_default": true, "attributes": ["clir", "block_in_list"] }),
        )
        .await;
    let other = app
        .create(
            "/api/subscriberprofiles/",
            json!({ "profile_set_id": set, "name": "restricted", "attributes": [] }),
        )
        .await;
    let (s, v) = app
        .post(
            "/api/subscriberprofiles/",
            json!({ "profile_set_id": set, "name": "bad", "attributes": ["no_such_pref"] }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "attributes[0]", "{v}");

    let contact = app
        .create(
            "/api/customercontacts/",
            json!({ "email": "sub@example.com", "reseller_id": 1 }),
        )
        .await;
    let (s, v) = app
        .post(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "prof", "password": "sip-secret-1",
                    "contact_id": contact, "profile_set_id": set }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["contact_id"], contact);
    assert_eq!(v["profile_id"], dflt, "the set's default profile");
    // As in NGCP, a contact its subscribers name is terminated all the same (gone from the
    // API); the subscriber keeps it and can still be changed.
    let sub = v["id"].as_i64().unwrap();
    let (s, _) = app
        .delete(&format!("/api/customercontacts/{contact}"))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{sub}"),
            json!([{ "op": "replace", "path": "/display_name", "value": "Still Here" }]),
        )
        .await;
    assert!(s.is_success(), "{v}");
    assert_eq!(v["contact_id"], contact);
    assert_eq!(
        v["_links"]["ngcp:subscriberprofiles"]["href"],
        format!("/api/subscriberprofiles/{dflt}")
    );
    let id = v["id"].as_i64().unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{id}"),
            json!([{ "op": "replace", "path": "/profile_id", "value": other }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["profile_id"], other);

    // Another reseller's contact or set is not visible, named by field.
    let (r2, _, _) = app.reseller("otherres").await;
    let foreign_set = app
        .create(
            "/api/subscriberprofilesets/",
            json!({ "reseller_id": r2, "name": "theirs" }),
        )
        .await;
    let foreign_contact = app
        .create(
            "/api/customercontacts/",
            json!({ "email": "o@example.com", "reseller_id": r2 }),
        )
        .await;
    for (field, value) in [
        ("contact_id", foreign_contact),
        ("profile_set_id", foreign_set),
        ("profile_id", 999_999),
    ] {
        let (s, v) = app
            .patch(
                &format!("/api/subscribers/{id}"),
                json!([{ "op": "replace", "path": format!("/{field}"), "value": value }]),
            )
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {v}");
        assert_eq!(v["field"], field, "{v}");
    }
    // A set in use is not deleted.
    let (s, _) = app
        .delete(&format!("/api/subscriberprofilesets/{set}"))
        .await;
    assert_eq!(s, StatusCode::LOCKED);
}
both!(subscribers_name_a_contact_and_a_profile_of_their_resellers);

/// A customer's preferences sit between its domain's and its subscribers' own, and reach the
/// SIP server's usr_preferences that way.
async fn customer_preferences_are_inherited_between_domain_and_subscriber(app: TestApp) {
    let f = app.fixture().await;
    let db = SipDb::new(Engine::Sqlite, &app.dir);
    db.load(&sipdb::kamailio_schema(Engine::Sqlite));
    let srv = app.sipserver("k", "kamailio", &db.url(), json!({})).await;
    app.subscriber(&f, "inh", 5551001).await;
    let (_, defs) = app.get("/api/customerpreferencedefs/").await;
    assert!(
        defs.get("language").is_some() && defs.get("cli").is_none(),
        "subscriber-only preferences are not a customer's"
    );
    let (s, _) = app
        .put(
            &format!("/api/domainpreferences/{}", f.domain_id),
            json!({ "language": "de", "concurrent_max": 5 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app
        .put(
            &format!("/api/customerpreferences/{}", f.customer_id),
            json!({ "language": "fr" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["language"], "fr");
    let (s, v) = app
        .put(
            &format!("/api/customerpreferences/{}", f.customer_id),
            json!({ "cli": "4312345" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "cli");
    app.wait_synced(srv).await;
    let prefs = |db: &SipDb| {
        db.query("SELECT attribute, value FROM usr_preferences WHERE username = 'inh' AND attribute IN ('language', 'concurrent_max') ORDER BY attribute")
    };
    assert_eq!(
        prefs(&db),
        vec![
            vec!["concurrent_max".to_string(), "5".into()],
            vec!["language".into(), "fr".into()]
        ]
    );
    // Removing the customer's value falls back to the domain's.
    let (s, _) = app
        .put(
            &format!("/api/customerpreferences/{}", f.customer_id),
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    app.wait_synced(srv).await;
    assert_eq!(prefs(&db)[1], vec!["language".to_string(), "de".into()]);
}
both!(customer_preferences_are_inherited_between_domain_and_subscriber);

async fn sound_files_are_uploaded_checked_and_read_back(app: TestApp) {
    let set = app
        .create(
            "/api/soundsets/",
            json!({ "reseller_id": 1, "name": "main" }),
        )
        .await;
    let (_, h) = app.get("/api/soundhandles/?group=music_on_hold").await;
    assert_eq!(items(&h, "soundhandles")[0]["handle"], "music_on_hold");
    // Descending starts from the last handle, not from the end of the first page.
    let (_, h) = app
        .get("/api/soundhandles/?rows=2&order_by_direction=desc")
        .await;
    let last = h["total_count"].as_i64().unwrap();
    assert_eq!(items(&h, "soundhandles")[0]["id"], last, "{h}");

    let audio = wav(1, 8000, 4000);
    let upload = |body: Vec<u8>, query: &str| {
        app.req(
            Method::POST,
            &format!("/api/soundfiles/?set_id={set}&{query}"),
        )
        .header("Content-Type", "audio/x-wav")
        .body(body)
    };
    let r = upload(
        audio.clone(),
        "handle=music_on_hold&filename=moh.wav&loopplay=true",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let (_, v) = app.get(&loc).await;
    assert_eq!(
        (
            v["handle"].as_str(),
            v["loopplay"].as_bool(),
            v["codec"].as_str()
        ),
        (Some("music_on_hold"), Some(true), Some("PCM16/8000/1"))
    );
    assert_eq!(v["size"], audio.len());
    assert!(v.get("data").is_none(), "the audio is not in the JSON");
    let id = v["id"].as_i64().unwrap();
    let r = app
        .req(Method::GET, &format!("/api/soundfilerecordings/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "audio/x-wav");
    assert_eq!(
        r.bytes().await.unwrap().to_vec(),
        audio,
        "the audio comes back byte for byte"
    );

    // A second upload for the same handle replaces the first (NGCP's behaviour).
    let alaw = wav(6, 8000, 800);
    let r = upload(alaw.clone(), "handle=music_on_hold")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["location"].to_str().unwrap(), loc);
    let (_, v) = app.get(&loc).await;
    assert_eq!(v["codec"], "PCMA/8000/1");

    // What is refused, and why.
    let mut not_wav = b"ID3\x03 this is an mp3".to_vec();
    not_wav.resize(200, 0);
    for (body, query, field) in [
        (not_wav, "handle=music_on_hold", "data"),
        (wav(1, 4000, 100), "handle=music_on_hold", "data"),
        (audio.clone(), "handle=no_such_handle", "handle"),
        (
            audio.clone(),
            "handle=music_on_hold&filename=../../etc/passwd",
            "filename",
        ),
    ] {
        let (s, v) = send(upload(body, query)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {v}");
        assert_eq!(v["field"], field, "{v}");
    }
    let (s, _) = send(
        app.req(
            Method::POST,
            &format!("/api/soundfiles/?set_id={set}&handle=music_on_hold"),
        )
        .header("Content-Type", "audio/mpeg")
        .body(audio.clone()),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Bigger than the limit: 413, nothing stored.
    let small = TestApp::spawn_with(app.backend, &[("VOXPROV_MAX_SOUND_FILE_BYTES", "4096")]).await;
    let s2 = small
        .create("/api/soundsets/", json!({ "reseller_id": 1, "name": "m" }))
        .await;
    let (s, _) = send(
        small
            .req(
                Method::POST,
                &format!("/api/soundfiles/?set_id={s2}&handle=music_on_hold"),
            )
            .header("Content-Type", "audio/x-wav")
            .body(wav(1, 8000, 8000)),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let (_, v) = small.get("/api/soundfiles/").await;
    assert_eq!(v["total_count"], 0);

    // Another reseller sees neither the set nor its audio.
    let (_, login, pass) = app.reseller("soundless").await;
    let (s, _) = send(app.req_as(
        Method::GET,
        &format!("/api/soundfilerecordings/{id}"),
        &login,
        &pass,
    ))
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = send(app.req_as(Method::GET, "/api/soundsets/", &login, &pass)).await;
    assert_eq!(v["total_count"], 0);
    // Deleting the set deletes its files.
    let (s, _) = app.delete(&format!("/api/soundsets/{set}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&loc).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
both!(sound_files_are_uploaded_checked_and_read_back);

/// Details NGCP's own API tests check, each of which voxprov once answered differently.
async fn ngcp_details_its_own_tests_check(app: TestApp) {
    // A reseller needs its contract and a status, each named when missing.
    for (body, field) in [
        (json!({ "name": "r", "status": "active" }), "contract_id"),
        (json!({ "name": "r", "contract_id": 1 }), "status"),
    ] {
        let (s, v) = app.post("/api/resellers/", body).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert_eq!(v["field"], field, "{v}");
        assert!(
            v["message"]
                .as_str()
                .unwrap()
                .contains(&format!("field='{field}'")),
            "{v}"
        );
    }
    let f = app.fixture().await;
    // A customer's status cannot be nulled.
    let (s, v) = app
        .patch(
            &format!("/api/customers/{}", f.customer_id),
            json!([{ "op": "replace", "path": "/status", "value": null }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "status");

    let sub = app.subscriber(&f, "details", 5550100).await;
    // `replace` of a field the representation does not show (a write-only web password)
    // sets it, as NGCP's clients expect; RFC 6902 as written (strict) refuses it.
    let ops = json!([{ "op": "replace", "path": "/webpassword", "value": "web-pass-1234" }]);
    let (s, v) = send(
        app.req(Method::PATCH, &format!("/api/subscribers/{sub}"))
            .header("Content-Type", "application/json-patch+json")
            .header("Prefer", "handling=strict")
            .body(ops.to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = app.patch(&format!("/api/subscribers/{sub}"), ops).await;
    assert!(s.is_success(), "{v}");
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscribers&resource_id={sub}&order_by_direction=desc&rows=1"
        ))
        .await;
    assert_eq!(
        j["_embedded"]["ngcp:journals"]["operation"], "update",
        "the change was made: {j}"
    );
    // Numbers past E.164's 15 digits, as NGCP stores them (ac up to 7, sn up to 31 digits);
    // strict handling keeps E.164.
    let long = json!([{ "op": "replace", "path": "/alias_numbers",
        "value": [{ "cc": "11", "ac": "0022", "sn": "0044417653210001" }] }]);
    let (s, v) = send(
        app.req(Method::PATCH, &format!("/api/subscribers/{sub}"))
            .header("Content-Type", "application/json-patch+json")
            .header("Prefer", "handling=strict")
            .body(long.to_string()),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    let (s, v) = app.patch(&format!("/api/subscribers/{sub}"), long).await;
    assert!(s.is_success(), "{v}");
    let (_, n) = app
        .get(&format!("/api/numbers/?type=alias&subscriber_id={sub}"))
        .await;
    let alias = &n["_embedded"]["ngcp:numbers"];
    assert_eq!(
        (&alias["cc"], &alias["ac"], &alias["sn"]),
        (&json!("11"), &json!("0022"), &json!("0044417653210001")),
        "leading zeros kept: {n}"
    );
    assert_eq!(alias["is_devid"], false);
    // An alias becomes a device id.
    let id = alias["id"].as_i64().unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/numbers/{id}"),
            json!([{ "op": "replace", "path": "/is_devid", "value": true }]),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let (_, v) = app.get(&format!("/api/numbers/{id}")).await;
    assert_eq!(v["is_devid"], true, "{v}");
    // Someone else's number, in NGCP's words.
    let other = app.subscriber(&f, "details2", 5550101).await;
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{other}"),
            json!([{ "op": "add", "path": "/alias_numbers/-",
                "value": { "cc": "11", "ac": "0022", "sn": "0044417653210001" } }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("Number '11'-'0022'-'0044417653210001' already exists"),
        "{v}"
    );
    // NGCP's application destinations; a subscriber's forwards link to themselves.
    let (s, v) = app
        .post(
            "/api/cfdestinationsets/",
            json!({ "subscriber_id": sub, "name": "ann",
                "destinations": [{ "destination": "customhours", "priority": 1, "timeout": 300 }] }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(
        v["destinations"][0]["destination"],
        "sip:custom-hours@app.local"
    );
    // A custom announcement names what it plays: a handle of its group, only there.
    let (_, h) = app
        .get("/api/soundhandles/?group=custom_announcements&rows=1")
        .await;
    let ann = h["_embedded"]["ngcp:soundhandles"]["id"].clone();
    let (_, h) = app
        .get("/api/soundhandles/?group=music_on_hold&rows=1")
        .await;
    let moh = h["_embedded"]["ngcp:soundhandles"]["id"].clone();
    let set = |dest: &str, ann: &Value| {
        json!({ "subscriber_id": sub, "name": format!("ann-{dest}-{ann}"),
            "destinations": [{ "destination": dest, "announcement_id": ann }] })
    };
    let (s, v) = app
        .post("/api/cfdestinationsets/", set("customhours", &ann))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["destinations"][0]["announcement_id"], ann, "{v}");
    for (dest, a) in [
        ("customhours", &moh),
        ("customhours", &json!("aaa")),
        ("+4311111", &ann),
    ] {
        let (s, v) = app.post("/api/cfdestinationsets/", set(dest, a)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{dest} {a}: {v}");
        assert_eq!(v["field"], "destinations[0].announcement_id", "{v}");
    }
    let (_, v) = app.get(&format!("/api/callforwards/{sub}")).await;
    assert_eq!(
        v["_links"]["ngcp:callforwards"]["href"],
        format!("/api/callforwards/{sub}")
    );
    // OPTIONS /api/ lists the preference catalogs too.
    let r = app.req(Method::OPTIONS, "/api/").send().await.unwrap();
    let links: Vec<&str> = r
        .headers()
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert!(
        links
            .iter()
            .any(|l| l.contains("/api/customerpreferencedefs/")),
        "{links:?}"
    );
    // The platform's switches, as NGCP's clients read them before offering a feature.
    let (s, v) = app.get("/api/metaconfigdefs/").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["config"]["features"]["cloudpbx"], false);
    assert_eq!(v["config"]["security"]["password_sip_validate"], true);
}
both!(ngcp_details_its_own_tests_check);

/// A reseller is never deleted (NGCP has no DELETE there), so its status must mean something:
/// locked or terminated, its admins and their keys are refused and its subscribers leave the
/// SIP servers; terminated, nothing new is made under it; active again, all comes back.
async fn a_resellers_status_stops_and_restarts_its_world(app: TestApp) {
    let (rid, login, pass) = app.reseller("halt").await;
    let db = SipDb::new(Engine::Sqlite, &app.dir);
    db.load(&sipdb::kamailio_schema(Engine::Sqlite));
    let srv = app.sipserver("k", "kamailio", &db.url(), json!({})).await;
    let domain = "halt.example.com";
    app.create(
        "/api/domains/",
        json!({ "domain": domain, "reseller_id": rid }),
    )
    .await;
    let bp = app
        .create(
            "/api/billingprofiles/",
            json!({ "handle": "h", "name": "H", "reseller_id": rid }),
        )
        .await;
    let cc = app
        .create(
            "/api/customercontacts/",
            json!({ "email": "c@halt.example.com", "reseller_id": rid }),
        )
        .await;
    let cu = app
        .create(
            "/api/customers/",
            json!({ "contact_id": cc, "billing_profile_id": bp, "type": "sipaccount", "status": "active" }),
        )
        .await;
    app.create(
        "/api/subscribers/",
        json!({ "customer_id": cu, "domain": domain, "username": "halted", "password": "sip-secret-9" }),
    )
    .await;
    app.wait_synced(srv).await;
    let rows = |db: &SipDb| {
        db.query("SELECT username FROM subscriber WHERE username = 'halted'")
            .len()
    };
    assert_eq!(rows(&db), 1);
    let as_reseller = || send(app.req_as(Method::GET, "/api/domains/", &login, &pass));
    assert_eq!(as_reseller().await.0, StatusCode::OK);

    let path = format!("/api/resellers/{rid}");
    let set = |status: &'static str| {
        app.patch(
            &path,
            json!([{ "op": "replace", "path": "/status", "value": status }]),
        )
    };
    for status in ["locked", "terminated"] {
        let (s, v) = set(status).await;
        assert!(s.is_success(), "{v}");
        app.wait_synced(srv).await;
        assert_eq!(rows(&db), 0, "{status}: the subscriber left the SIP server");
        assert_eq!(
            as_reseller().await.0,
            StatusCode::UNAUTHORIZED,
            "{status}: its admin is refused"
        );
    }
    let (s, v) = app
        .post(
            "/api/domains/",
            json!({ "domain": "late.example.com", "reseller_id": rid }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "reseller_id");
    let (s, v) = set("active").await;
    assert!(s.is_success(), "{v}");
    app.wait_synced(srv).await;
    assert_eq!(rows(&db), 1, "back on the SIP server");
    assert_eq!(as_reseller().await.0, StatusCode::OK);
}
both!(a_resellers_status_stops_and_restarts_its_world);
