//! The cloud PBX through the API: SARK's field rules each answer 422 naming the field, a
//! tenant and everything in it stays within its reseller, references answer 423, and the
//! runtime, destinations, globals and system commands. What a real Kamailio does with them is
//! in tests/pbx_sip.rs.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A pbxaccount customer of the fixture's reseller.
async fn pbx_customer(app: &TestApp, f: &Fixture) -> i64 {
    app.create(
        "/api/customers/",
        json!({ "contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id,
                "type": "pbxaccount", "status": "active" }),
    )
    .await
}

async fn tenant(app: &TestApp, f: &Fixture, name: &str) -> i64 {
    let customer = pbx_customer(app, f).await;
    app.create(
        "/api/pbxtenants/",
        json!({ "customer_id": customer, "name": name, "description": format!("{name} Ltd"),
                "domain": f.domain }),
    )
    .await
}

async fn extension(app: &TestApp, tenant: i64, number: &str) -> i64 {
    app.create(
        "/api/pbxextensions/",
        json!({ "tenant_id": tenant, "extension": number, "type": "unprovisioned" }),
    )
    .await
}

async fn sark_rules_each_answer_422_naming_the_field(app: TestApp) {
    let f = app.fixture().await;
    let t = tenant(&app, &f, "acme").await;
    let e201 = extension(&app, t, "201").await;
    extension(&app, t, "202").await;
    // The tenant's DID is one of its extensions' numbers.
    let sub = app.get(&format!("/api/pbxextensions/{e201}")).await.1["subscriber_id"].clone();
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{sub}"),
            json!([{ "op": "add", "path": "/primary_number",
            "value": { "cc": "49", "ac": "30", "sn": "555000" } }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Tenants.
    let fresh = pbx_customer(&app, &f).await;
    let good = json!({ "customer_id": fresh, "name": "bravo", "description": "Bravo", "domain": f.domain });
    refused(
        &app,
        "/api/pbxtenants/",
        &good,
        vec![
            ("name", json!({ "name": null })),
            ("name", json!({ "name": "a b" })),
            ("name", json!({ "name": "acme" })),
            ("description", json!({ "description": null })),
            ("description", json!({ "description": 5 })),
            ("customer_id", json!({ "customer_id": null })),
            ("customer_id", json!({ "customer_id": f.customer_id })),
            ("customer_id", json!({ "customer_id": 999999 })),
            ("domain", json!({ "domain": "elsewhere.example" })),
            ("domain", json!({ "domain": null })),
            ("localdplan", json!({ "localdplan": "abc" })),
            ("localdplan", json!({ "localdplan": "_X" })),
            ("operator", json!({ "operator": "x1" })),
            ("masteroclo", json!({ "masteroclo": "OPEN" })),
            ("abstimeout", json!({ "abstimeout": "ten" })),
            ("chanmax", json!({ "chanmax": "x" })),
            ("clusterclid", json!({ "clusterclid": "12a" })),
            ("callgroup", json!({ "callgroup": "x" })),
            ("pickupgroup", json!({ "pickupgroup": 1.5 })),
            ("include", json!({ "include": 5 })),
            ("localarea", json!({ "localarea": "x" })),
        ],
    )
    .await;

    // Extensions.
    let good = json!({ "tenant_id": t, "extension": "203", "type": "unprovisioned" });
    refused(
        &app,
        "/api/pbxextensions/",
        &good,
        vec![
            ("tenant_id", json!({ "tenant_id": null })),
            ("tenant_id", json!({ "tenant_id": 999999 })),
            ("extension", json!({ "extension": null })),
            ("extension", json!({ "extension": "20" })),
            ("extension", json!({ "extension": "2a3" })),
            ("extension", json!({ "extension": "201" })),
            ("type", json!({ "type": null })),
            ("type", json!({ "type": "phone" })),
            ("macaddr", json!({ "macaddr": "001122334455" })),
            ("macaddr", json!({ "type": "provisioned" })),
            (
                "macaddr",
                json!({ "type": "provisioned", "macaddr": "00112233445" }),
            ),
            (
                "macaddr",
                json!({ "type": "provisioned", "macaddr": "00112233445g" }),
            ),
            ("active", json!({ "active": "Y" })),
            ("callbackto", json!({ "callbackto": "home" })),
            ("callerid", json!({ "callerid": "12ab" })),
            ("cellphone", json!({ "cellphone": "x" })),
            ("celltwin", json!({ "celltwin": "on" })),
            ("devicerec", json!({ "devicerec": "All" })),
            ("dvrvmail", json!({ "dvrvmail": "999" })),
            ("location", json!({ "location": "far" })),
            ("protocol", json!({ "protocol": "IPV5" })),
            ("provision", json!({ "provision": 5 })),
            ("provisionwith", json!({ "provisionwith": "DNS" })),
            ("sndcreds", json!({ "sndcreds": "Yes" })),
            ("transport", json!({ "transport": "sctp" })),
            ("vmailfwd", json!({ "vmailfwd": "not-mail" })),
        ],
    )
    .await;

    // Ring groups.
    let good = json!({ "tenant_id": t, "number": "400", "grouptype": "Ring", "out": "201 202",
                       "outcome": "203" });
    refused(
        &app,
        "/api/pbxringgroups/",
        &good,
        vec![
            ("tenant_id", json!({ "tenant_id": 999999 })),
            ("number", json!({ "number": null })),
            ("number", json!({ "number": "4" })),
            ("number", json!({ "number": "4x0" })),
            ("number", json!({ "number": "201" })),
            ("grouptype", json!({ "grouptype": "Everyone" })),
            ("out", json!({ "out": null })),
            ("out", json!({ "out": "20!" })),
            ("out[1]", json!({ "out": "201 299" })),
            ("out", json!({ "out": "201 201" })),
            ("out", json!({ "grouptype": "Alias" })),
            (
                "out",
                json!({ "grouptype": "Page", "out": "201 +4930123456" }),
            ),
            ("outcome", json!({ "outcome": null })),
            ("outcome", json!({ "outcome": "9" })),
            ("outcome", json!({ "outcome": "400" })),
            ("ringdelay", json!({ "ringdelay": 0 })),
            ("ringdelay", json!({ "ringdelay": "x" })),
            ("obeydnd", json!({ "obeydnd": "maybe" })),
            ("devicerec", json!({ "devicerec": "x" })),
            ("dialparamshunt", json!({ "dialparamshunt": "t1" })),
            ("dialparamsring", json!({ "dialparamsring": "1" })),
            ("divert", json!({ "divert": "x" })),
            ("greeting", json!({ "greeting": "greeting1" })),
            ("pagegroup", json!({ "pagegroup": "x" })),
            ("speedalert", json!({ "speedalert": 5 })),
            ("longdesc", json!({ "longdesc": 5 })),
        ],
    )
    .await;

    // Day timers.
    let good = json!({ "tenant_id": t, "dayofweek": "mon", "timespan": "09:00-17:30" });
    refused(
        &app,
        "/api/pbxdaytimers/",
        &good,
        vec![
            ("tenant_id", json!({ "tenant_id": null })),
            ("datemonth", json!({ "datemonth": "32" })),
            ("datemonth", json!({ "datemonth": 0 })),
            ("dayofweek", json!({ "dayofweek": "monday" })),
            ("month", json!({ "month": "january" })),
            ("timespan", json!({ "timespan": "9:00-17:00" })),
            ("timespan", json!({ "timespan": "24:00-25:00" })),
            ("timespan", json!({ "timespan": "17:00-09:00" })),
            ("timespan", json!({ "timespan": "09:00" })),
            ("description", json!({ "description": 5 })),
        ],
    )
    .await;

    // Holiday timers.
    let good =
        json!({ "tenant_id": t, "stime": 1798761600, "etime": "1798848000", "route": "202" });
    refused(
        &app,
        "/api/pbxholidaytimers/",
        &good,
        vec![
            ("tenant_id", json!({ "tenant_id": null })),
            ("stime", json!({ "stime": null })),
            ("stime", json!({ "stime": "123" })),
            ("stime", json!({ "stime": "17987616x0" })),
            ("etime", json!({ "etime": 1798761600 })),
            ("route", json!({ "route": "9" })),
            ("description", json!({ "description": 5 })),
        ],
    )
    .await;

    // Inbound routes.
    let group = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": app.contract("sippeering").await, "name": "trunk" }),
        )
        .await;
    let good = json!({ "tenant_id": t, "number": "+4930555000", "carrier": "DiD", "trunk_id": group,
                       "openroute": "201", "closeroute": "400" });
    refused(
        &app,
        "/api/pbxinboundroutes/",
        &good,
        vec![
            ("tenant_id", json!({ "tenant_id": 999999 })),
            ("number", json!({ "number": null })),
            ("number", json!({ "number": "abc" })),
            ("number", json!({ "number": "+4930555999" })),
            ("carrier", json!({ "carrier": null })),
            ("carrier", json!({ "carrier": "DID" })),
            ("trunk_id", json!({ "trunk_id": 999999 })),
            ("openroute", json!({ "openroute": null })),
            ("openroute", json!({ "openroute": "9" })),
            ("closeroute", json!({ "closeroute": "x" })),
            ("active", json!({ "active": "yes" })),
            ("alertinfo", json!({ "alertinfo": 5 })),
            ("swoclip", json!({ "swoclip": "maybe" })),
            ("tag", json!({ "tag": "a b" })),
            ("inprefix", json!({ "inprefix": "x" })),
            ("description", json!({ "description": "Main line" })),
            ("disa", json!({ "disa": "PIN" })),
            ("disapass", json!({ "disapass": "a-b" })),
            ("moh", json!({ "moh": "1" })),
        ],
    )
    .await;
    // The same DID twice is refused (one DID, one route); a caller-number route is the
    // tenant's own, for calls to its DIDs, so any caller's number will do.
    let (s, v) = app.post("/api/pbxinboundroutes/", good.clone()).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "number", "{v}");
    let clid =
        json!({ "tenant_id": t, "number": "4930111", "carrier": "CLID", "openroute": "202" });
    assert_eq!(
        app.post("/api/pbxinboundroutes/", clid.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post("/api/pbxinboundroutes/", clid).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Globals: every kind of rule.
    for (name, bad) in [
        ("RINGDELAY", json!("ten")),
        ("ABSTIMEOUT", json!(null)),
        ("BLINDBUSY", json!("x")),
        ("ACL", json!("maybe")),
        ("ALERT", json!("not-mail")),
        ("SUPEMAIL", json!("x@")),
        ("MONITOROUT", json!(5)),
        ("CAMPONQOPT", json!(5)),
        ("EMERGENCY", json!("1122")),
        ("COUNTRYCODE", json!("GBR")),
        ("COUNTRYCODE", json!("u1")),
        ("EURL", json!("http://no host/")),
        ("FQDN", json!("not a host")),
        ("LOCALIP", json!("1.2.3")),
        ("VXT", json!("2")),
        ("NO_SUCH_SETTING", json!(1)),
    ] {
        let (s, v) = app.put("/api/pbxglobals", json!({ name: bad })).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{name}={bad}: {v}");
        assert_eq!(v["field"], name, "{name}={bad}: {v}");
    }
    let (s, v) = app
        .put(
            "/api/pbxglobals",
            json!({ "RINGDELAY": 15, "EMERGENCY": "999", "COUNTRYCODE": "uk", "FQDN": "pbx.example.com",
                    "LOCALIP": "192.0.2.10", "EURL": "https://pbx.example.com/x", "LDAPPASS": "s3cret" }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["RINGDELAY"], "15");
    assert_eq!(v["COUNTRYCODE"], "uk");
    assert_eq!(v["LDAPPASS"], "********", "a password is never shown: {v}");
    assert!(v["MIXMONITOR"].is_null());
    let (_, g) = app.get("/api/pbxglobals").await;
    assert_eq!(g["EMERGENCY"], "999");
    // Nothing half-written: a body with one bad setting changes nothing.
    let (s, _) = app
        .put(
            "/api/pbxglobals",
            json!({ "RINGDELAY": 30, "ACL": "maybe" }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (_, g) = app.get("/api/pbxglobals").await;
    assert_eq!(g["RINGDELAY"], "15");
}
both!(sark_rules_each_answer_422_naming_the_field);

async fn a_tenant_and_its_objects_stay_within_their_reseller(app: TestApp) {
    let (ra, la, pa) = app.reseller("pbxa").await;
    let (_rb, lb, pb) = app.reseller("pbxb").await;
    // Reseller A's own domain, customer and tenant, made by A.
    let as_a = |m: Method, p: &str| {
        app.req_as(m, p, &la, &pa)
            .header("Prefer", "return=representation")
    };
    let as_b = |m: Method, p: &str| app.req_as(m, p, &lb, &pb);
    let (s, v) =
        send(as_a(Method::POST, "/api/domains/").json(&json!({ "domain": "pbxa.example" }))).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let ids = |v: &Value| v["id"].as_i64().unwrap();
    let (_, contact) = send(
        as_a(Method::POST, "/api/customercontacts/").json(&json!({ "email": "a@pbxa.example" })),
    )
    .await;
    let (_, bp) = send(
        as_a(Method::POST, "/api/billingprofiles/").json(&json!({ "handle": "pbxa", "name": "A" })),
    )
    .await;
    let (s, cust) = send(as_a(Method::POST, "/api/customers/").json(&json!({
        "contact_id": ids(&contact), "billing_profile_id": ids(&bp), "type": "pbxaccount", "status": "active" }))).await;
    assert_eq!(s, StatusCode::CREATED, "{cust}");
    let (s, t) = send(as_a(Method::POST, "/api/pbxtenants/").json(&json!({
        "customer_id": ids(&cust), "name": "a", "description": "A", "domain": "pbxa.example" })))
    .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let t = ids(&t);
    assert_eq!(
        send(as_a(Method::GET, &format!("/api/pbxtenants/{t}")))
            .await
            .1["reseller_id"],
        ra
    );
    let (s, e) = send(as_a(Method::POST, "/api/pbxextensions/").json(&json!({
        "tenant_id": t, "extension": "201", "type": "unprovisioned" })))
    .await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    let e = ids(&e);

    // B sees none of it, cannot name it, cannot touch it.
    for path in [
        "/api/pbxtenants/",
        "/api/pbxextensions/",
        "/api/pbxringgroups/",
        "/api/pbxinboundroutes/",
    ] {
        let (s, v) = send(as_b(Method::GET, path)).await;
        assert_eq!(s, StatusCode::OK, "{path}: {v}");
        assert_eq!(v["total_count"], 0, "B lists A's {path}: {v}");
    }
    for path in [
        format!("/api/pbxtenants/{t}"),
        format!("/api/pbxextensions/{e}"),
        format!("/api/pbxextensions/{e}/runtime"),
    ] {
        let (s, v) = send(as_b(Method::GET, &path)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "B reads {path}: {v}");
    }
    let (s, _) = send(
        as_b(Method::PUT, &format!("/api/pbxextensions/{e}/runtime"))
            .json(&json!({ "cfim": "123456" })),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = send(as_b(Method::DELETE, &format!("/api/pbxtenants/{t}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for (path, body) in [
        (
            "/api/pbxextensions/",
            json!({ "tenant_id": t, "extension": "202", "type": "unprovisioned" }),
        ),
        (
            "/api/pbxringgroups/",
            json!({ "tenant_id": t, "number": "400", "out": "201", "outcome": "201" }),
        ),
        ("/api/pbxdaytimers/", json!({ "tenant_id": t })),
        (
            "/api/pbxinboundroutes/",
            json!({ "tenant_id": t, "number": "4930777", "carrier": "CLID", "openroute": "201" }),
        ),
    ] {
        let (s, v) = send(as_b(Method::POST, path).json(&body)).await;
        assert_eq!(
            s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "B names A's tenant at {path}: {v}"
        );
        assert_eq!(v["field"], "tenant_id", "{v}");
    }
    let (s, _) = send(as_b(
        Method::GET,
        &format!("/api/pbxdestinations/?tenant_id={t}"),
    ))
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    // A tenant is made of a pbxaccount customer of one's own.
    let (s, v) = send(as_b(Method::POST, "/api/pbxtenants/").json(&json!({
        "customer_id": ids(&cust), "name": "stolen", "description": "B", "domain": "pbxa.example" }))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "customer_id");
    // Trunks are the operator's: a reseller names none.
    let (s, v) = send(as_a(Method::POST, "/api/pbxinboundroutes/").json(&json!({
        "tenant_id": t, "number": "4930777", "carrier": "CLID", "openroute": "201", "trunk_id": 1 }))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "trunk_id");
    // The globals are the operator's.
    assert_eq!(
        send(as_b(Method::GET, "/api/pbxglobals")).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(as_a(Method::PUT, "/api/pbxglobals").json(&json!({ "RINGDELAY": 5 })))
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // A's own view of its destinations.
    let (s, v) = send(as_a(
        Method::GET,
        &format!("/api/pbxdestinations/?tenant_id={t}"),
    ))
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["_embedded"]["ngcp:pbxdestinations"][0]["destination"],
        "201"
    );
}
both!(a_tenant_and_its_objects_stay_within_their_reseller);

async fn runtime_references_and_system_commands(app: TestApp) {
    let f = app.fixture().await;
    let t = tenant(&app, &f, "rt").await;
    let e1 = extension(&app, t, "201").await;
    extension(&app, t, "202").await;
    let (_, ext) = app.get(&format!("/api/pbxextensions/{e1}")).await;
    assert_eq!(ext["username"], format!("201-{t}"));
    assert_eq!(ext["domain"], f.domain);
    let sub = ext["subscriber_id"].as_i64().unwrap();
    let (s, sv) = app.get(&format!("/api/subscribers/{sub}")).await;
    assert_eq!(s, StatusCode::OK, "{sv}");
    assert_eq!(sv["status"], "active");

    // Runtime: CFIM to another extension is that extension's URI underneath; CFBS external.
    let (s, v) = app
        .put(
            &format!("/api/pbxextensions/{e1}/runtime"),
            json!({ "cfim": "202", "cfbs": "+4930999", "ringdelay": 25 }),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["cfim"], "202");
    assert_eq!(v["cfbs"], "4930999");
    assert_eq!(v["ringdelay"], 25);
    let (_, cf) = app.get(&format!("/api/callforwards/{sub}")).await;
    assert_eq!(
        cf["cfu"]["destinations"][0]["destination"],
        format!("sip:202-{t}@{}", f.domain),
        "{cf}"
    );
    // Bad runtime values name the field and change nothing.
    for (body, field) in [
        (json!({ "cfim": "20x" }), "cfim"),
        (json!({ "cfbs": "abc" }), "cfbs"),
        (json!({ "ringdelay": "x" }), "ringdelay"),
        (json!({ "cfnr": "1" }), "cfnr"),
    ] {
        let (s, v) = app
            .put(&format!("/api/pbxextensions/{e1}/runtime"), body.clone())
            .await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (_, v) = app.get(&format!("/api/pbxextensions/{e1}/runtime")).await;
    assert_eq!(v["cfim"], "202");
    // Clearing CFIM leaves CFBS.
    let (_, v) = app
        .put(
            &format!("/api/pbxextensions/{e1}/runtime"),
            json!({ "cfim": null }),
        )
        .await;
    assert!(v["cfim"].is_null(), "{v}");
    assert_eq!(v["cfbs"], "4930999");

    // active NO locks the subscriber; YES unlocks it.
    let (s, v) = app
        .patch(
            &format!("/api/pbxextensions/{e1}"),
            json!([{ "op": "replace", "path": "/active", "value": "NO" }]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        app.get(&format!("/api/subscribers/{sub}")).await.1["status"],
        "locked"
    );
    app.patch(
        &format!("/api/pbxextensions/{e1}"),
        json!([{ "op": "replace", "path": "/active", "value": "YES" }]),
    )
    .await;
    assert_eq!(
        app.get(&format!("/api/subscribers/{sub}")).await.1["status"],
        "active"
    );

    // An extension's subscriber goes with the extension only.
    let (s, v) = app.delete(&format!("/api/subscribers/{sub}")).await;
    assert_eq!(s, StatusCode::LOCKED, "{v}");
    // What is named answers 423; the tenant goes last.
    let g = app
        .create(
            "/api/pbxringgroups/",
            json!({ "tenant_id": t, "number": "400", "out": "201 202", "outcome": "202" }),
        )
        .await;
    let (s, _) = app.delete(&format!("/api/pbxextensions/{e1}")).await;
    assert_eq!(s, StatusCode::LOCKED);
    let (s, _) = app.delete(&format!("/api/pbxtenants/{t}")).await;
    assert_eq!(s, StatusCode::LOCKED);
    assert_eq!(
        app.delete(&format!("/api/pbxringgroups/{g}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("/api/pbxextensions/{e1}")).await.0,
        StatusCode::NO_CONTENT
    );
    let (_, sv) = app.get(&format!("/api/subscribers/{sub}")).await;
    assert_ne!(
        sv["status"], "active",
        "the extension's subscriber goes with it: {sv}"
    );

    // SARK's commit and pbxrunstate answer; the others are refused.
    for cmd in ["commit", "pbxrunstate"] {
        let (s, v) = app.get(&format!("/api/pbxsyscommands/{cmd}")).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["committed"], true);
        assert!(v["sipservers"].is_array());
    }
    let (s, _) = app.get("/api/pbxsyscommands/reboot").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, _) = app.get("/api/pbxsyscommands/format").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
both!(runtime_references_and_system_commands);

/// SARK's provisioned extension: the MAC makes the phone, and the phone's first fetch carries
/// the extension's credentials (and nobody else's).
async fn a_provisioned_extension_gets_a_phone_that_fetches_its_credentials(app: TestApp) {
    let f = app.fixture().await;
    let t = tenant(&app, &f, "prov").await;
    let (_, models) = app
        .get("/api/pbxdevicemodels/?vendor=yealink&rows=100")
        .await;
    let t46u = items(&models, "pbxdevicemodels")
        .into_iter()
        .find(|m| m["model"] == "T46U")
        .expect("the catalog has the Yealink T46U")["id"]
        .as_i64()
        .unwrap();
    let mac = "001565a1b2c3";
    // Yealink's vendor prefix is several models': the model must be named.
    let (s, v) = app
        .post(
            "/api/pbxextensions/",
            json!({ "tenant_id": t, "extension": "210", "type": "provisioned", "macaddr": mac }),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "model_id");
    let (s, v) = app
        .req(Method::POST, "/api/pbxextensions/")
        .header("Prefer", "return=representation")
        .json(&json!({ "tenant_id": t, "extension": "210", "type": "provisioned", "macaddr": mac.to_uppercase(),
                       "model_id": t46u, "password": "ext-210-pass-x" }))
        .send()
        .await
        .map(|r| (r.status(), r))
        .unwrap();
    assert_eq!(s, StatusCode::CREATED);
    let v: Value = v.json().await.unwrap();
    let device = v["device_id"].as_i64().expect("a phone was made");
    let boot = v["device"]["boot_token"]
        .as_str()
        .expect("its boot token is shown once")
        .to_string();
    assert_eq!(v["macaddr"], mac);
    let (_, d) = app.get(&format!("/api/pbxdevices/{device}")).await;
    assert_eq!(d["identifier"], mac);
    assert_eq!(d["lines"][0]["subscriber_id"], v["subscriber_id"]);
    // The phone fetches its configuration: the extension's user and password are in it.
    let r = app
        .client
        .get(app.url(&format!("/prov/{boot}/{mac}.cfg")))
        .header(
            "User-Agent",
            "Yealink SIP-T46U 108.86.0.20 00:15:65:a1:b2:c3",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = r.text().await.unwrap();
    let user = format!("210-{t}");
    assert!(
        body.contains(&format!("account.1.user_name = {user}")),
        "{body}"
    );
    assert!(
        body.contains("account.1.password = ext-210-pass-x"),
        "{body}"
    );
    assert!(
        body.contains(&format!("account.1.sip_server.1.address = {}", f.domain))
            || body.contains(&f.domain),
        "{body}"
    );
    // The same MAC cannot be a second phone; deleting the extension takes its phone with it.
    let (s, v) = app
        .post("/api/pbxextensions/", json!({ "tenant_id": t, "extension": "211", "type": "provisioned", "macaddr": mac, "model_id": t46u }))
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "macaddr", "{v}");
    let ext = v["id"].as_i64();
    assert!(ext.is_none());
    let (_, list) = app.get(&format!("/api/pbxextensions/?tenant_id={t}")).await;
    let e = items(&list, "pbxextensions")[0]["id"].as_i64().unwrap();
    assert_eq!(
        app.delete(&format!("/api/pbxextensions/{e}")).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("/api/pbxdevices/{device}")).await.0,
        StatusCode::NOT_FOUND
    );
}
both!(a_provisioned_extension_gets_a_phone_that_fetches_its_credentials);
