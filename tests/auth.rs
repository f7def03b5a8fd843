//! Who may do what: Basic auth with the Sipwise challenge, roles, reseller scoping, API keys.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

async fn strangers_are_challenged_and_wrong_passwords_refused(app: TestApp) {
    let r = app
        .client
        .get(app.url("/api/subscribers/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"api_admin_http\""
    );
    let (s, v) = send(app.req_as(Method::GET, "/api/subscribers/", "administrator", "wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["code"], 401);
    let (s, _) = send(app.req_as(Method::GET, "/api/subscribers/", "nobody", "wrong")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // Knocking repeatedly gets the address throttled, even with the right password.
    for _ in 0..10 {
        send(app.req_as(Method::GET, "/api/domains/", "administrator", "guess")).await;
    }
    let r = app.req(Method::GET, "/api/domains/").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
}
both!(strangers_are_challenged_and_wrong_passwords_refused);

/// How many argon2 password checks the server made (`/metrics`).
async fn password_checks(app: &TestApp) -> f64 {
    app.metrics()
        .await
        .lines()
        .find(|l| l.starts_with("voxprov_auth_password_checks_total"))
        .and_then(|l| l.rsplit_once(' '))
        .map_or(0.0, |(_, v)| v.parse().unwrap())
}

async fn requests_bringing_the_same_password_at_once_share_one_check(app: TestApp) {
    let (_, login, pass) = app.reseller("busy").await;
    let before = password_checks(&app).await;
    let at_once = |n: usize, login: &str, pass: &str| {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..n {
            set.spawn(send(app.req_as(Method::GET, "/api/domains/", login, pass)));
        }
        set.join_all()
    };
    let answers = at_once(16, &login, &pass).await;
    assert!(
        answers.iter().all(|(s, _)| *s == StatusCode::OK),
        "{answers:?}"
    );
    // Sixteen requests arriving together with a password not checked yet: one argon2 check,
    // the others wait for it rather than each paying their own.
    assert_eq!(password_checks(&app).await - before, 1.0);
    // A wrong password is never taken from another request's check.
    let wrong = at_once(4, &login, "not-the-password").await;
    assert!(wrong.iter().all(|(s, _)| *s == StatusCode::UNAUTHORIZED));
    assert_eq!(password_checks(&app).await - before, 5.0);
    // Nor is a login that does not exist answered any sooner: a check each, as above.
    let unknown = at_once(4, "nobody_here", "x").await;
    assert!(unknown.iter().all(|(s, _)| *s == StatusCode::UNAUTHORIZED));
    assert_eq!(password_checks(&app).await - before, 9.0);
}
both!(requests_bringing_the_same_password_at_once_share_one_check);

async fn a_reseller_sees_only_its_own_world(app: TestApp) {
    let f = app.fixture().await; // reseller 1's
    let theirs = app.subscriber(&f, "theirs", 100).await;
    let (rid, login, pass) = app.reseller("acme").await;
    let as_r = |m: Method, p: &str| app.req_as(m, p, &login, &pass);
    // Its reseller_id is forced on create, whatever it sends.
    let (s, d) = send(
        as_r(Method::POST, "/api/domains/")
            .header("Prefer", "return=representation")
            .json(&json!({ "domain": "acme.example.com" })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    assert_eq!(d["reseller_id"], rid);
    let (s, c) = send(
        as_r(Method::POST, "/api/customercontacts/")
            .header("Prefer", "return=representation")
            .json(&json!({ "email": "x@acme.com", "reseller_id": 1 })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(c["reseller_id"], rid);
    let (_, bp) = send(
        as_r(Method::POST, "/api/billingprofiles/")
            .header("Prefer", "return=representation")
            .json(&json!({ "handle": "acme", "name": "A" })),
    )
    .await;
    let (s, cu) = send(
        as_r(Method::POST, "/api/customers/")
            .header("Prefer", "return=representation")
            .json(&json!({ "contact_id": c["id"], "billing_profile_id": bp["id"] })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{cu}");
    let (s, sub) = send(
        as_r(Method::POST, "/api/subscribers/")
            .header("Prefer", "return=representation")
            .json(&json!({ "customer_id": cu["id"], "domain": "acme.example.com", "username": "mine", "password": "hidden-pass" })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{sub}");
    assert!(
        sub.get("password").is_none(),
        "the SIP password is shown to admins only"
    );
    // Another reseller's objects do not exist for it.
    for path in [
        format!("/api/subscribers/{theirs}"),
        format!("/api/customers/{}", f.customer_id),
        format!("/api/domains/{}", f.domain_id),
        "/api/resellers/1".into(),
    ] {
        let (s, _) = send(as_r(Method::GET, &path)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        let (s, _) = send(as_r(Method::DELETE, &path)).await;
        assert!(
            s == StatusCode::NOT_FOUND
                || s == StatusCode::FORBIDDEN
                || s == StatusCode::METHOD_NOT_ALLOWED,
            "{path}: {s}"
        );
    }
    let (_, v) = send(as_r(Method::GET, "/api/subscribers/")).await;
    assert_eq!(v["total_count"], 1);
    let (_, v) = send(as_r(Method::GET, "/api/journals/")).await;
    assert!(items(&v, "journals")
        .iter()
        .all(|e| e["resource"] != "subscribers" || e["resource_id"] != theirs));
    // It cannot use another reseller's customer or domain.
    let (s, v) = send(as_r(Method::POST, "/api/subscribers/").json(&json!({ "customer_id": f.customer_id, "domain": f.domain, "username": "steal", "password": "sip-secret-1" }))).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("customer_id"))
    );
    // Nor make itself admin, nor create resellers or system contacts.
    let (s, _) = send(
        as_r(Method::POST, "/api/admins/")
            .json(&json!({ "login": "boss", "password": "long-enough", "role": "admin" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = send(as_r(Method::POST, "/api/resellers/").json(&json!({ "name": "mine" }))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = send(as_r(Method::GET, "/api/systemcontacts/")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // The admin sees everything, password included.
    let (_, v) = app.get(&format!("/api/subscribers/{}", sub["id"])).await;
    assert_eq!(v["password"], "hidden-pass");
}
both!(a_reseller_sees_only_its_own_world);

async fn read_only_credentials_cannot_write(app: TestApp) {
    app.create("/api/admins/", json!({ "login": "auditor", "password": "auditor-pass", "role": "admin", "read_only": true })).await;
    let (s, _) = send(app.req_as(Method::GET, "/api/domains/", "auditor", "auditor-pass")).await;
    assert_eq!(s, StatusCode::OK);
    let before = app.journal_count().await;
    let (s, v) = send(
        app.req_as(Method::POST, "/api/domains/", "auditor", "auditor-pass")
            .json(&json!({ "domain": "ro.example.com", "reseller_id": 1 })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(app.journal_count().await, before, "nothing written");
    // Admin passwords are never returned.
    let (_, v) = app.get("/api/admins/?login=auditor").await;
    assert!(!v.to_string().contains("auditor-pass") && !v.to_string().contains("argon2"));
}
both!(read_only_credentials_cannot_write);

async fn api_keys_are_shown_once_scoped_and_revocable(app: TestApp) {
    let (s, k) = app.post("/api/apikeys/", json!({ "name": "crm" })).await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let secret = k["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("vxp_"));
    let id = k["id"].as_i64().unwrap();
    let (_, again) = app.get(&format!("/api/apikeys/{id}")).await;
    assert!(
        again.get("secret").is_none() && !again.to_string().contains(&secret),
        "shown once"
    );
    let (s, _) = send(
        app.client
            .get(app.url("/api/domains/"))
            .bearer_auth(&secret),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = send(
        app.client
            .post(app.url("/api/domains/"))
            .header("X-API-Key", &secret)
            .json(&json!({ "domain": "key.example.com", "reseller_id": 1 })),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (_, j) = app
        .get("/api/journals/?resource=domains&actor=apikey:crm")
        .await;
    assert_eq!(j["total_count"], 1, "the journal names the key");
    // Last use is recorded (off the request path, so poll briefly).
    let mut used = false;
    for _ in 0..50 {
        if !app.get(&format!("/api/apikeys/{id}")).await.1["last_used_at"].is_null() {
            used = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(used);
    // A reseller's key is confined to its reseller; a read-only key cannot write.
    let (rid, login, pass) = app.reseller("keyco").await;
    let (s, rk) = send(
        app.req_as(Method::POST, "/api/apikeys/", &login, &pass)
            .json(&json!({ "name": "r", "role": "admin" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{rk}");
    let (_, rk) = send(
        app.req_as(Method::POST, "/api/apikeys/", &login, &pass)
            .json(&json!({ "name": "r", "read_only": true })),
    )
    .await;
    assert_eq!(rk["reseller_id"], rid);
    let rsecret = rk["secret"].as_str().unwrap();
    let (s, _) = send(
        app.client
            .post(app.url("/api/domains/"))
            .bearer_auth(rsecret)
            .json(&json!({ "domain": "ro.keyco.com" })),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (_, v) = send(
        app.client
            .get(app.url("/api/domains/"))
            .bearer_auth(rsecret),
    )
    .await;
    assert_eq!(v["total_count"], 0);
    // Expired keys fail; past expiry cannot even be set.
    let (s, v) = app
        .post(
            "/api/apikeys/",
            json!({ "name": "old", "expires_at": "2001-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("expires_at"))
    );
    // DELETE revokes.
    assert_eq!(
        app.delete(&format!("/api/apikeys/{id}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (s, _) = send(
        app.client
            .get(app.url("/api/domains/"))
            .bearer_auth(&secret),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = send(
        app.client
            .get(app.url("/api/domains/"))
            .bearer_auth("vxp_000000000000_forged"),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
both!(api_keys_are_shown_once_scoped_and_revocable);
