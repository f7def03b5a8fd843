//! The Sipwise lifecycle over HTTP: contact → customer → subscriber → change → terminate.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn a_subscriber_goes_from_creation_to_termination(app: TestApp) {
    let f = app.fixture().await;
    // POST without Prefer: 201, Location, no body.
    let r = app
        .req(Method::POST, "/api/subscribers/")
        .json(&json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "alice", "password": "s3cret-sip",
                       "primary_number": { "cc": 43, "ac": 9876, "sn": 10001 },
                       "alias_numbers": [{ "cc": 43, "ac": 9877, "sn": 10001 }], "external_id": "crm-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    assert!(loc.starts_with("/api/subscribers/"), "{loc}");
    assert!(r.headers().contains_key("etag"));
    let (s, sub) = app.get(&loc).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sub["username"], "alice");
    assert_eq!(sub["password"], "s3cret-sip", "admins see the SIP password");
    assert!(sub.get("webpassword").is_none());
    assert_eq!(sub["primary_number"]["sn"], "10001");
    assert_eq!(sub["alias_numbers"][0]["ac"], "9877");
    assert_eq!(sub["_links"]["self"]["href"], loc);
    assert_eq!(
        sub["_links"]["ngcp:customers"]["href"],
        format!("/api/customers/{}", f.customer_id)
    );
    let id = sub["id"].as_i64().unwrap();

    // Filters find it by every handle an operator has.
    for q in [
        "username=alice",
        "alias=43987710001",
        "primary_number=43987610001",
        "external_id=crm-*",
        "alias=4398*",
    ] {
        let (s, v) = app.get(&format!("/api/subscribers/?{q}")).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert_eq!(v["total_count"], 1, "{q}: {v}");
        // Sipwise shape: exactly one item is embedded as an object, not an array.
        assert!(v["_embedded"]["ngcp:subscribers"].is_object(), "{q}");
    }
    let (_, v) = app.get("/api/subscribers/?username=bob").await;
    assert_eq!(v["total_count"], 0);

    // GET → modify → PUT round trip, adding aliases.
    let mut body = sub.clone();
    body.as_object_mut().unwrap().remove("_links");
    body["alias_numbers"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "cc": 1, "ac": 5432, "sn": 777 }));
    body["display_name"] = json!("Alice A.");
    let (s, v) = app.put(&loc, body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["alias_numbers"].as_array().unwrap().len(), 2);
    assert_eq!(v["display_name"], "Alice A.");

    // PATCH with JSON Patch.
    let (s, v) = app
        .patch(
            &loc,
            json!([{ "op": "replace", "path": "/lock", "value": 4 }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["lock"], 4);

    // Numbers are listed and belong to the subscriber.
    let (_, nums) = app.get(&format!("/api/numbers/?subscriber_id={id}")).await;
    assert_eq!(nums["total_count"], 3);

    // DELETE terminates: record kept, numbers released, username free again, id not reused.
    let (s, _) = app.delete(&loc).await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = app.get(&loc).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a terminated subscriber is gone from the API"
    );
    let (s, _) = app.delete(&loc).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Its record stays: listed when asked for by status, with its journal.
    let (_, l) = app
        .get("/api/subscribers/?status=terminated&username=alice")
        .await;
    let t = items(&l, "subscribers").remove(0);
    assert_eq!(t["status"], "terminated");
    let (s, _) = app.get(&format!("{loc}/journal/")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(t["primary_number"].is_null());
    assert_eq!(t["released_numbers"]["primary_number"]["sn"], "10001");
    let (_, nums) = app.get(&format!("/api/numbers/?subscriber_id={id}")).await;
    assert_eq!(nums["total_count"], 0);
    let (_, listed) = app.get("/api/subscribers/?username=alice").await;
    assert_eq!(
        listed["total_count"], 0,
        "terminated subscribers are not listed by default"
    );
    let again = app
        .create("/api/subscribers/", json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "alice", "password": "x-secret",
                "primary_number": { "cc": 43, "ac": 9876, "sn": 10001 } }))
        .await;
    assert!(again > id, "ids are never reused");
    let (s, _) = app.delete(&loc).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "terminating twice");

    // The journal has the whole story, with the password redacted.
    let (_, j) = app.get(&format!("{loc}/journal/")).await;
    let ops: Vec<String> = items(&j, &format!("subscribers/{id}/journal"))
        .iter()
        .map(|e| e["operation"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ops, ["create", "update", "update", "delete"]);
    let text = j.to_string();
    assert!(
        !text.contains("s3cret-sip"),
        "secrets never reach the journal"
    );
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscribers&resource_id={id}&actor=administrator"
        ))
        .await;
    assert_eq!(j["total_count"], 4);
    let entry = &items(&j, "journals")[0];
    assert_eq!(entry["client_addr"], "127.0.0.1");
    let (s, one) = app
        .get(entry["_links"]["self"]["href"].as_str().unwrap())
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(one["_links"]["ngcp:subscribers"]["href"], loc);
    assert_eq!(one["operation"], "create");
}
both!(a_subscriber_goes_from_creation_to_termination);

async fn customer_status_drives_its_subscribers(app: TestApp) {
    let f = app.fixture().await;
    let a = app.subscriber(&f, "s1", 1001).await;
    let b = app.subscriber(&f, "s2", 1002).await;
    let cust = format!("/api/customers/{}", f.customer_id);
    let (s, _) = app
        .patch(
            &cust,
            json!([{ "op": "replace", "path": "/status", "value": "locked" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for id in [a, b] {
        assert_eq!(
            app.get(&format!("/api/subscribers/{id}")).await.1["status"],
            "locked"
        );
    }
    let (s, _) = app
        .patch(
            &cust,
            json!([{ "op": "replace", "path": "/status", "value": "active" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for id in [a, b] {
        assert_eq!(
            app.get(&format!("/api/subscribers/{id}")).await.1["status"],
            "active"
        );
    }
    let r = app
        .req(Method::PATCH, &cust)
        .header("Content-Type", "application/json-patch+json")
        .body(json!([{ "op": "replace", "path": "/status", "value": "terminated" }]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for id in [a, b] {
        assert_eq!(
            app.get(&format!("/api/subscribers/{id}")).await.0,
            StatusCode::NOT_FOUND,
            "terminated with its customer"
        );
    }
    let (_, l) = app
        .get("/api/subscribers/?status=terminated&rows=100")
        .await;
    assert!(items(&l, "subscribers")
        .iter()
        .filter(|s| s["id"] == a || s["id"] == b)
        .all(|s| s["status"] == "terminated"));
    let (s, v) = app
        .patch(
            &cust,
            json!([{ "op": "replace", "path": "/external_id", "value": "x" }]),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a terminated customer cannot change: {v}"
    );
    let (s, v) = app.post("/api/subscribers/", json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "late", "password": "sip-secret-1" })).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "customer_id");
}
both!(customer_status_drives_its_subscribers);

async fn the_rules_of_uniqueness_and_ownership_hold(app: TestApp) {
    let f = app.fixture().await;
    app.subscriber(&f, "dup", 5000).await;
    let base =
        json!({ "customer_id": f.customer_id, "domain": f.domain, "password": "sip-secret-1" });
    let mut b = base.clone();
    b["username"] = json!("dup");
    let (s, v) = app.post("/api/subscribers/", b).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("username")),
        "{v}"
    );
    let mut b = base.clone();
    b["username"] = json!("other");
    b["primary_number"] = json!({ "cc": 49, "ac": 30, "sn": 5000 });
    let (s, v) = app.post("/api/subscribers/", b).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("primary_number")),
        "{v}"
    );
    let mut b = base.clone();
    b["username"] = json!("web1");
    b["webusername"] = json!("dup");
    app.create("/api/subscribers/", b.clone()).await;
    b["username"] = json!("web2");
    let (s, v) = app.post("/api/subscribers/", b).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("webusername")),
        "{v}"
    );
    // A domain that does not exist, and one of another reseller.
    let mut b = base.clone();
    b["username"] = json!("x");
    b["domain"] = json!("nowhere.example.com");
    let (s, v) = app.post("/api/subscribers/", b.clone()).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("domain"))
    );
    let (r2, _, _) = app.reseller("other").await;
    app.create(
        "/api/domains/",
        json!({ "domain": "other.example.com", "reseller_id": r2 }),
    )
    .await;
    b["domain"] = json!("other.example.com");
    let (s, v) = app.post("/api/subscribers/", b).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("domain"))
    );
    // A customer's contact must be a customer contact of the same reseller.
    let other_contact = app
        .create(
            "/api/customercontacts/",
            json!({ "email": "o@example.com", "reseller_id": r2 }),
        )
        .await;
    let (s, v) = app
        .post(
            "/api/customers/",
            json!({ "contact_id": other_contact, "billing_profile_id": f.billing_profile_id }),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("billing_profile_id")),
        "{v}"
    );
    let sys = app
        .create(
            "/api/systemcontacts/",
            json!({ "email": "sys@example.com" }),
        )
        .await;
    let (s, v) = app
        .post(
            "/api/customers/",
            json!({ "contact_id": sys, "billing_profile_id": f.billing_profile_id }),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("contact_id"))
    );
    // Still in use → 423.
    let (s, _) = app
        .delete(&format!("/api/customercontacts/{}", f.contact_id))
        .await;
    assert_eq!(s, StatusCode::LOCKED);
    // Billing profiles are terminated by status, as in NGCP: never while in use.
    let (s, _) = app
        .delete(&format!("/api/billingprofiles/{}", f.billing_profile_id))
        .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let (s, v) = app
        .patch(
            &format!("/api/billingprofiles/{}", f.billing_profile_id),
            json!([{ "op": "replace", "path": "/status", "value": "terminated" }]),
        )
        .await;
    assert_eq!(s, StatusCode::LOCKED, "{v}");
    // An unused one terminates, and is then gone from the API unless asked for.
    let spare = app
        .create(
            "/api/billingprofiles/",
            json!({ "handle": "spare", "name": "Spare", "reseller_id": 1 }),
        )
        .await;
    let (s, v) = app
        .patch(
            &format!("/api/billingprofiles/{spare}"),
            json!([{ "op": "replace", "path": "/status", "value": "terminated" }]),
        )
        .await;
    assert!(s.is_success(), "{v}");
    let (_, v) = app.get("/api/billingprofiles/?handle=spare").await;
    assert_eq!(v["total_count"], 0, "{v}");
    let (_, v) = app
        .get("/api/billingprofiles/?handle=spare&status=terminated")
        .await;
    assert_eq!(v["total_count"], 1, "{v}");
    let (s, _) = app.delete(&format!("/api/domains/{}", f.domain_id)).await;
    assert_eq!(s, StatusCode::LOCKED);
    let unused = app
        .create(
            "/api/customercontacts/",
            json!({ "email": "u@example.com", "reseller_id": 1 }),
        )
        .await;
    assert_eq!(
        app.delete(&format!("/api/customercontacts/{unused}"))
            .await
            .0,
        StatusCode::NO_CONTENT
    );
    // max_subscribers → 403 with a message.
    let cust = format!("/api/customers/{}", f.customer_id);
    let (s, v) = app
        .patch(
            &cust,
            json!([{ "op": "replace", "path": "/max_subscribers", "value": 2 }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut b = base.clone();
    b["username"] = json!("fourth");
    let (s, v) = app.post("/api/subscribers/", b).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(v["message"].as_str().unwrap().contains("maximum"), "{v}");
}
both!(the_rules_of_uniqueness_and_ownership_hold);

async fn an_alias_moves_within_its_customer(app: TestApp) {
    let f = app.fixture().await;
    let a = app
        .create("/api/subscribers/", json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "ma", "password": "sip-secret-1",
                "primary_number": { "cc": 43, "ac": 1, "sn": 1 }, "alias_numbers": [{ "cc": 43, "ac": 1, "sn": 2 }] }))
        .await;
    let b = app.subscriber(&f, "mb", 9).await;
    let (_, v) = app
        .get(&format!("/api/numbers/?subscriber_id={a}&type=alias"))
        .await;
    let alias = items(&v, "numbers")[0]["id"].as_i64().unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/numbers/{alias}"),
            json!([{ "op": "replace", "path": "/subscriber_id", "value": b }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        app.get(&format!("/api/subscribers/{b}")).await.1["alias_numbers"][0]["sn"],
        "2"
    );
    assert_eq!(
        app.get(&format!("/api/subscribers/{a}")).await.1["alias_numbers"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    // The primary number cannot move; nor can a number leave the customer.
    let (_, v) = app
        .get(&format!("/api/numbers/?subscriber_id={a}&type=primary"))
        .await;
    let primary = items(&v, "numbers")[0]["id"].as_i64().unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/numbers/{primary}"),
            json!([{ "op": "replace", "path": "/subscriber_id", "value": b }]),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("subscriber_id"))
    );
    let g = app.fixture().await;
    let c = app.subscriber(&g, "mc", 77).await;
    let (s, _) = app
        .patch(
            &format!("/api/numbers/{alias}"),
            json!([{ "op": "replace", "path": "/subscriber_id", "value": c }]),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // Read-only fields cannot change (strictly: refused; by default ignored).
    let (s, v) = send(
        app.req(Method::PATCH, &format!("/api/numbers/{alias}"))
            .header("Content-Type", "application/json-patch+json")
            .header("Prefer", "handling=strict")
            .body(json!([{ "op": "replace", "path": "/sn", "value": "3" }]).to_string()),
    )
    .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("sn"))
    );
}
both!(an_alias_moves_within_its_customer);

async fn listings_page_sort_and_refuse_unknown_parameters(app: TestApp) {
    let f = app.fixture().await;
    for i in 0..25 {
        app.subscriber(&f, &format!("p{i:02}"), 2000 + i).await;
    }
    let (_, v) = app.get(&format!("/api/subscribers/?customer_id={}&rows=10&page=2&order_by=username&order_by_direction=desc", f.customer_id)).await;
    assert_eq!(v["total_count"], 25);
    let names: Vec<String> = items(&v, "subscribers")
        .iter()
        .map(|s| s["username"].as_str().unwrap().into())
        .collect();
    assert_eq!(names.first().unwrap(), "p14");
    assert_eq!(names.len(), 10);
    assert!(v["_links"]["next"]["href"]
        .as_str()
        .unwrap()
        .contains("page=3"));
    assert!(v["_links"]["prev"]["href"]
        .as_str()
        .unwrap()
        .contains("page=1"));
    let (_, v) = app.get("/api/subscribers/?rows=5000").await;
    assert!(items(&v, "subscribers").len() <= 1000);
    let (_, v) = app.get("/api/subscribers/?no_count=true&rows=5").await;
    assert!(v.get("total_count").is_none());
    for bad in [
        "rows=0",
        "page=-1",
        "order_by=password",
        "order_by_direction=up",
        "colour=blue",
        "customer_id=abc",
    ] {
        let (s, v) = send(
            app.req(Method::GET, &format!("/api/subscribers/?{bad}"))
                .header("Prefer", "handling=strict"),
        )
        .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert!(v["message"].as_str().unwrap().len() > 5);
    }
    // Without the trailing slash: redirected, query kept.
    let r = app
        .req(Method::GET, "/api/subscribers?rows=1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers()["location"], "/api/subscribers/?rows=1");
    // Plain JSON when asked for exactly that.
    let r = app
        .req(Method::GET, "/api/domains/")
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "application/json");
    let r = app.req(Method::GET, "/api/domains/").send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "application/hal+json");
}
both!(listings_page_sort_and_refuse_unknown_parameters);

async fn etags_guard_concurrent_writers_and_options_tell_what_is_allowed(app: TestApp) {
    let f = app.fixture().await;
    let id = app.subscriber(&f, "etag", 3000).await;
    let path = format!("/api/subscribers/{id}");
    let r = app.req(Method::GET, &path).send().await.unwrap();
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = app
        .req(Method::GET, &path)
        .header("If-None-Match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let patch = |t: &str| {
        app.req(Method::PATCH, &path)
            .header("Content-Type", "application/json-patch+json")
            .header("If-Match", t)
            .body(json!([{ "op": "replace", "path": "/display_name", "value": t }]).to_string())
    };
    assert_eq!(
        patch(&tag).send().await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        patch(&tag).send().await.unwrap().status(),
        StatusCode::PRECONDITION_FAILED
    );
    let r = app
        .req(Method::DELETE, &path)
        .header("If-Match", &tag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    // A header that holds no entity tag is malformed, not a failed precondition.
    let obs_text = reqwest::header::HeaderValue::from_bytes(b"\"tag\xe9\"").unwrap();
    let r = app
        .req(Method::PATCH, &path)
        .header("Content-Type", "application/json-patch+json")
        .header("If-Match", obs_text)
        .body(json!([{ "op": "replace", "path": "/display_name", "value": "x" }]).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "If-Match with a non-ASCII byte"
    );
    for bad in ["", "abc", "W/abc"] {
        assert_eq!(
            patch(bad).send().await.unwrap().status(),
            StatusCode::BAD_REQUEST,
            "If-Match: {bad:?}"
        );
    }
    let r = app
        .req(Method::OPTIONS, "/api/subscribers/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD, OPTIONS, POST");
    assert_eq!(
        r.headers()["accept-post"],
        "application/hal+json; profile=http://purl.org/sipwise/ngcp-api/#rel-subscribers"
    );
    let r = app.req(Method::OPTIONS, &path).send().await.unwrap();
    assert_eq!(
        r.headers()["allow"],
        "GET, HEAD, OPTIONS, PUT, PATCH, DELETE"
    );
    assert_eq!(r.headers()["accept-patch"], "application/json-patch+json");
    let r = app
        .req(
            Method::OPTIONS,
            &format!("/api/customers/{}", f.customer_id),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["allow"], "GET, HEAD, OPTIONS, PUT, PATCH");
    let r = app
        .req(Method::DELETE, &format!("/api/customers/{}", f.customer_id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}
both!(etags_guard_concurrent_writers_and_options_tell_what_is_allowed);

async fn sip_passwords_are_encrypted_at_rest(app: TestApp) {
    let f = app.fixture().await;
    app.create(
        "/api/subscribers/",
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "enc", "password": "plain-text-marker-42", "webpassword": "web-marker-99" }),
    )
    .await;
    if app.backend == Backend::Sqlite {
        for entry in std::fs::read_dir(&app.dir).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let hay = String::from_utf8_lossy(&bytes);
            assert!(!hay.contains("plain-text-marker-42") && !hay.contains("web-marker-99"));
        }
    } else {
        let url = app.db_url.clone();
        let out = std::process::Command::new("psql")
            .arg(url)
            .arg("-Atc")
            .arg("SELECT password_enc, webpassword_hash FROM subscribers")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.starts_with("v1:") && text.contains("$argon2id$"),
            "{text}"
        );
        assert!(!text.contains("plain-text-marker-42"));
    }
}
both!(sip_passwords_are_encrypted_at_rest);

/// A creation answers with exactly what reading the subscriber back gives (the answer is built
/// from what was written, not read back), and its journal entry holds the same object, the
/// SIP password redacted.
async fn a_created_subscriber_reads_back_as_it_was_answered(app: TestApp) {
    let f = app.fixture().await;
    let cases = [
        json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "rb1", "password": "pw-read-back-1",
                "primary_number": { "cc": 43, "ac": 555, "sn": 1001 },
                "alias_numbers": [{ "cc": 43, "ac": 555, "sn": 1003 }, { "cc": 43, "ac": 555, "sn": 1002 }],
                "display_name": "Read Back", "email": "rb@example.com", "external_id": "ext-rb1",
                "webusername": "rbweb", "webpassword": "web-pass-1", "lock": 4, "administrative": true }),
        json!({ "customer_id": f.customer_id, "domain_id": f.domain_id, "username": "rb2", "password": "pw-read-back-2",
                "status": "locked", "alias_numbers": [{ "cc": 43, "ac": 555, "sn": 2001 }] }),
        json!({ "customer_id": f.customer_id, "domain": f.domain.to_uppercase(), "username": "rb3", "password": "pw-read-back-3" }),
    ];
    for body in cases {
        let (s, mut created) = app.post("/api/subscribers/", body.clone()).await;
        assert_eq!(s, StatusCode::CREATED, "{body}: {created}");
        let id = created["id"].as_i64().unwrap();
        let (s, mut read) = app.get(&format!("/api/subscribers/{id}")).await;
        assert_eq!(s, StatusCode::OK);
        created.as_object_mut().unwrap().remove("_links");
        read.as_object_mut().unwrap().remove("_links");
        assert_eq!(created, read, "{body}");
        let (_, j) = app.get(&format!("/api/subscribers/{id}/journal/")).await;
        let entry = &items(&j, &format!("subscribers/{id}/journal"))[0];
        assert_eq!(entry["operation"], "create");
        let mut after = entry["after"].clone();
        assert_ne!(after["password"], read["password"], "redacted: {after}");
        after["password"] = read["password"].clone();
        assert_eq!(after, read, "{body}");
    }
}
both!(a_created_subscriber_reads_back_as_it_was_answered);
