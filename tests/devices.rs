//! Phone provisioning against the real server: every shipped vendor's configuration fetched
//! the way its phones fetch it and parsed by a real parser; tokens traded and killed; HTTP
//! credentials and allow-lists; MAC enumeration banned; kazoo-provision templates imported;
//! and a known phone still served while its database is unreachable.

mod common;
use common::receiver::Receiver;
use common::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant};

const ENV: &[(&str, &str)] = &[
    ("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true"),
    ("VOXPROV_PROV_BAN_FAILURES", "1000"),
];

fn spec() -> Value {
    serde_json::from_str(include_str!("fixtures/prov/vendors.json")).unwrap()
}

/// A phone's request: no API credentials, the vendor's User-Agent.
async fn fetch(
    app: &TestApp,
    path: &str,
    ua: &str,
) -> (StatusCode, HashMap<String, String>, String) {
    let r = app
        .client
        .get(app.url(path))
        .header("User-Agent", ua)
        .send()
        .await
        .unwrap();
    let status = r.status();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    (status, headers, r.text().await.unwrap())
}

/// The configuration as (key, value) pairs, by the rules tests/fixtures/prov/vendors.json
/// is written for. XML is parsed by roxmltree: a body that is not well-formed fails here.
fn flatten(format: &str, body: &str) -> HashMap<String, String> {
    flatten_with(format, body, "ID")
}

/// `pair_key`: the attribute that, with `value`, makes a key/value element (Gigaset's `name`).
fn flatten_with(format: &str, body: &str, pair_key: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    match format {
        "kv" => {
            for line in body.lines() {
                let l = line.trim();
                if l.is_empty() || l.starts_with('#') || l.starts_with('<') || l.starts_with("--") {
                    continue;
                }
                let cut = match (l.find('='), l.find(':')) {
                    (Some(e), Some(c)) => e.min(c),
                    (Some(e), None) => e,
                    (None, Some(c)) => c,
                    (None, None) => panic!("not a key/value line: {l:?}\n{body}"),
                };
                let key = l[..cut].split_whitespace().collect::<Vec<_>>().join(" ");
                out.insert(key, l[cut + 1..].trim().to_string());
            }
        }
        "xml" => {
            let doc = roxmltree::Document::parse(body)
                .unwrap_or_else(|e| panic!("not well-formed XML: {e}\n{body}"));
            for n in doc.descendants().filter(|n| n.is_element()) {
                let id = n
                    .attribute(pair_key)
                    .or(n.attribute("ID"))
                    .or(n.attribute("id"));
                if let (Some(id), Some(v)) = (id, n.attribute("value")) {
                    out.insert(id.to_string(), v.to_string());
                    continue;
                }
                let text: String = n
                    .children()
                    .filter(|c| c.is_text())
                    .map(|c| c.text().unwrap_or(""))
                    .collect();
                if !text.trim().is_empty() {
                    let mut key = n.tag_name().name().to_string();
                    if let Some(i) = n.attribute("idx") {
                        key = format!("{key}[{i}]");
                    }
                    out.insert(key, text.trim().to_string());
                }
                for a in n.attributes() {
                    let name = a.name();
                    if ["idx", "perm", "ua", "class", "version"].contains(&name)
                        || name.starts_with("xmlns")
                    {
                        continue;
                    }
                    out.insert(name.to_string(), a.value().to_string());
                }
            }
        }
        other => panic!("unknown format {other}"),
    }
    out
}

struct Phone {
    id: i64,
    mac: String,
    boot: String,
    users: Vec<(String, String)>,
    keys: Vec<String>,
}

fn subst(s: &str, mac: &str) -> String {
    let colon: Vec<String> = mac
        .as_bytes()
        .chunks(2)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    s.replace("{mac_colon}", &colon.join(":"))
        .replace("{mac}", mac)
        .replace("{MAC}", &mac.to_ascii_uppercase())
}

async fn model_id(app: &TestApp, vendor: &str, model: &str) -> i64 {
    let (s, v) = app
        .get(&format!("/api/pbxdevicemodels/?vendor={vendor}&rows=100"))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    items(&v, "pbxdevicemodels")
        .into_iter()
        .find(|m| m["model"] == model)
        .unwrap_or_else(|| panic!("{vendor} {model} is not in the catalog"))["id"]
        .as_i64()
        .unwrap()
}

/// A device with two account lines (two subscribers) and four keys (two BLF, two speed dial).
async fn phone(app: &TestApp, f: &Fixture, model: i64, mac: &str, tag: &str) -> Phone {
    phone_keys(app, f, model, mac, tag, 4).await
}

async fn phone_keys(
    app: &TestApp,
    f: &Fixture,
    model: i64,
    mac: &str,
    tag: &str,
    nkeys: usize,
) -> Phone {
    let mut users = Vec::new();
    let mut subs = Vec::new();
    for n in 1..=2 {
        let user = format!("{tag}u{n}");
        let pass = format!("pw-{tag}-{n}-x");
        let id = app
            .create(
                "/api/subscribers/",
                json!({"customer_id": f.customer_id, "domain": f.domain, "username": user, "password": pass}),
            )
            .await;
        users.push((user, pass));
        subs.push(id);
    }
    let mut keys = vec![
        format!("{tag}blf1"),
        format!("{tag}blf2"),
        "200".to_string(),
        "+4930123".to_string(),
    ];
    keys.truncate(nkeys);
    let mut lines = vec![
        json!({"subscriber_id": subs[0], "type": "private", "line": 1}),
        json!({"subscriber_id": subs[1], "type": "private", "line": 2}),
    ];
    for (i, k) in keys.iter().enumerate() {
        let kind = if i < 2 { "blf" } else { "speeddial" };
        lines.push(json!({"type": kind, "target": k, "label": format!("Key {i}")}));
    }
    let (s, v) = app
        .post(
            "/api/pbxdevices/",
            json!({
                "identifier": mac, "customer_id": f.customer_id, "model_id": model, "station_name": format!("Desk {tag}"),
                "settings": {"timezone": "Europe/Berlin", "admin_password": "adm-pw-1", "vlan_id": 20},
                "lines": lines,
            }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert!(
        v.get("secret").is_some(),
        "the device's secret is shown once: {v}"
    );
    Phone {
        id: v["id"].as_i64().unwrap(),
        mac: v["identifier"].as_str().unwrap().to_string(),
        boot: v["boot_token"].as_str().unwrap().to_string(),
        users,
        keys,
    }
}

async fn every_vendor_serves_each_lines_credentials_and_strangers_get_the_same_404(app: TestApp) {
    let f = app.fixture().await;
    let vendors = spec();
    let vendors = vendors.as_object().unwrap();
    assert!(vendors.len() >= 8, "eight vendors are shipped");
    let (_, nf_headers, nf_body) = fetch(&app, "/prov/000000000001.cfg", "x").await;
    for (n, (vendor, s)) in vendors.iter().enumerate() {
        let model = model_id(&app, vendor, s["model"].as_str().unwrap()).await;
        let (_, mv) = app.get(&format!("/api/pbxdevicemodels/{model}")).await;
        let nkeys = mv["keys"].as_i64().unwrap().min(4) as usize;
        // A MAC of the vendor's own OUI, as its phones have.
        let oui = mv["ouis"][0].as_str().unwrap().to_string();
        let mac = format!("{oui}0d0e{n:02x}");
        let p = phone_keys(&app, &f, model, &mac, &format!("v{n}"), nkeys).await;
        let ua = subst(s["user_agent"].as_str().unwrap(), &p.mac);
        let file = subst(s["file"].as_str().unwrap(), &p.mac);
        let (st, h, body) = fetch(&app, &format!("/prov/{}/{file}", p.boot), &ua).await;
        assert_eq!(st, StatusCode::OK, "{vendor} {file}: {body}");
        assert!(
            h["content-type"].starts_with(s["content_type"].as_str().unwrap()),
            "{vendor}: content type {}",
            h["content-type"]
        );
        assert!(h.contains_key("etag"), "{vendor}: ETag");
        if vendor == "yealink" {
            assert!(body.starts_with("#!version:1.0.0.1\n"), "{body}");
        }
        let pair = s["xml_pair_key"].as_str().unwrap_or("ID");
        let kv = flatten_with(s["format"].as_str().unwrap(), &body, pair);
        // A spec names a key by pattern ({n}, {k}) or lists them (one per account or key).
        let key_of = |spec: &Value, i: usize, var: &str, offset: i64| -> String {
            match spec {
                Value::Array(a) => a[i].as_str().unwrap().to_string(),
                v => v
                    .as_str()
                    .unwrap()
                    .replace(var, &(i as i64 + 1 + offset).to_string()),
            }
        };
        let check = |what: &str, got: &str, want: &str, ctx: String| {
            if s["match"][what] == "contains" {
                assert!(
                    got.contains(want),
                    "{ctx}: {got:?} does not contain {want:?}"
                );
            } else {
                assert_eq!(got, want, "{ctx}");
            }
        };
        for (i, (user, pass)) in p.users.iter().enumerate() {
            let get = |k: &str| {
                let key = key_of(&s["line"][k], i, "{n}", 0);
                kv.get(&key)
                    .cloned()
                    .unwrap_or_else(|| panic!("{vendor}: no {key} in\n{body}"))
            };
            let n = i + 1;
            check(
                "server",
                &get("server"),
                &f.domain,
                format!("{vendor} line {n} server"),
            );
            check(
                "user",
                &get("user"),
                user,
                format!("{vendor} line {n} user"),
            );
            check(
                "auth",
                &get("auth"),
                user,
                format!("{vendor} line {n} auth name"),
            );
            check(
                "password",
                &get("password"),
                pass,
                format!("{vendor} line {n} password"),
            );
        }
        let offset = s["key_index_offset"].as_i64().unwrap_or(0);
        if !s["key_target"].is_null() {
            assert_eq!(p.keys.len(), 4, "{vendor}: four keys");
            for (k, target) in p.keys.iter().enumerate() {
                let key = key_of(&s["key_target"], k, "{k}", offset);
                let v = kv
                    .get(&key)
                    .unwrap_or_else(|| panic!("{vendor}: no key {key} in\n{body}"));
                assert!(
                    v.contains(target.as_str()),
                    "{vendor}: key {key} = {v}, want {target}"
                );
            }
        }
        // Without the token, and for a MAC one digit off: the same 404 as for nothing at all.
        let off = format!(
            "{}{}",
            &p.mac[..11],
            if p.mac.ends_with('f') { 'e' } else { 'f' }
        );
        let off_file = subst(s["file"].as_str().unwrap(), &off);
        for path in [
            format!("/prov/{file}"),
            format!("/prov/{}/{off_file}", p.boot),
            format!("/prov/{off_file}"),
        ] {
            let (st, h, b) = fetch(&app, &path, &ua).await;
            assert_eq!(st, StatusCode::NOT_FOUND, "{vendor} {path}");
            assert_eq!(b, nf_body, "{vendor} {path}: the uniform body");
            assert_eq!(h.get("content-type"), nf_headers.get("content-type"));
            assert!(!b.contains(&p.users[0].1));
        }
    }
}
both!(
    every_vendor_serves_each_lines_credentials_and_strangers_get_the_same_404,
    super::ENV
);

/// The long-lived token from a Yealink configuration's provisioning URL.
fn token_in(body: &str) -> String {
    let url = body
        .lines()
        .find_map(|l| l.strip_prefix("static.auto_provision.server.url = "))
        .expect("the configuration names its provisioning URL");
    url.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap()
        .to_string()
}

const YEALINK_UA: &str = "Yealink SIP-T46U 108.86.0.20 0a:0b:0c:00:00:01";

async fn the_first_boot_token_is_traded_and_then_dead(app: TestApp) {
    let f = app.fixture().await;
    let m = model_id(&app, "yealink", "T46U").await;
    let p = phone(&app, &f, m, "0a0b0c000001", "t").await;
    let file = format!("{}.cfg", p.mac);
    let (s, _, first) = fetch(&app, &format!("/prov/{}/{file}", p.boot), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
    let long = token_in(&first);
    assert_ne!(
        long, p.boot,
        "the configuration points the phone at a new token"
    );
    // A repeated first-boot fetch (the answer was lost) gets the same long-lived token.
    let (s, _, again) = fetch(&app, &format!("/prov/{}/{file}", p.boot), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(token_in(&again), long);
    let (s, _, body) = fetch(&app, &format!("/prov/{long}/{file}"), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains(&p.users[0].1));
    // The phone has its token: the first-boot one is dead.
    let (s, _, _) = fetch(&app, &format!("/prov/{}/{file}", p.boot), YEALINK_UA).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (_, v) = app.get(&format!("/api/pbxdevices/{}", p.id)).await;
    assert_eq!(v["token_traded"], true, "{v}");
    assert!(
        !v.to_string().contains(&long),
        "no token in the representation"
    );
    // A reset (replaced phone) issues a new first-boot token and kills the long-lived one.
    let (s, v) = app
        .post(&format!("/api/pbxdevices/{}/reset_token", p.id), json!({}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let boot2 = v["boot_token"].as_str().unwrap();
    let (s, _, _) = fetch(&app, &format!("/prov/{long}/{file}"), YEALINK_UA).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, h, _) = fetch(&app, &format!("/prov/{boot2}/{file}"), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
    // The Host header decides nothing for later requests: a configuration asked for under
    // another name is not what the next request is served.
    let (_, _, b) = fetch(&app, &format!("/prov/{boot2}/{file}"), YEALINK_UA).await;
    let long_b = token_in(&b);
    let r = app
        .client
        .get(app.url(&format!("/prov/{long_b}/{file}")))
        .header("User-Agent", YEALINK_UA)
        .header("Host", "evil.invalid")
        .send()
        .await
        .unwrap();
    assert!(r.text().await.unwrap().contains("evil.invalid"));
    let (_, _, b) = fetch(&app, &format!("/prov/{long_b}/{file}"), YEALINK_UA).await;
    assert!(!b.contains("evil.invalid"), "{b}");
    // ETag / If-None-Match.
    let long2 = long_b.clone();
    let r = app
        .client
        .get(app.url(&format!("/prov/{long2}/{file}")))
        .header("User-Agent", YEALINK_UA)
        .header("If-None-Match", h["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
}
both!(the_first_boot_token_is_traded_and_then_dead, super::ENV);

async fn a_change_reaches_the_next_fetch_and_every_fetch_is_recorded(app: TestApp) {
    let rx = Receiver::start().await;
    app.create(
        "/api/hooks/",
        json!({"name": "fetches", "events": ["device.fetched"], "phase": "after", "kind": "http", "url": rx.url("/f")}),
    )
    .await;
    let f = app.fixture().await;
    let m = model_id(&app, "yealink", "T46U").await;
    let p = phone(&app, &f, m, "0a0b0c000002", "c").await;
    let file = format!("{}.cfg", p.mac);
    let (_, _, body) = fetch(&app, &format!("/prov/{}/{file}", p.boot), YEALINK_UA).await;
    let long = token_in(&body);
    let (_, v) = app
        .get(&format!("/api/subscribers/?username={}", p.users[0].0))
        .await;
    let sub = items(&v, "subscribers")[0]["id"].as_i64().unwrap();
    let (s, v) = app
        .patch(
            &format!("/api/subscribers/{sub}"),
            json!([{"op": "replace", "path": "/password", "value": "new-pass-77"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _, body) = fetch(&app, &format!("/prov/{long}/{file}"), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
    assert!(body.contains("account.1.password = new-pass-77"), "{body}");
    let hits = rx.wait_hits("/f", 2, 20).await;
    let ev = hits[0].json();
    assert_eq!(ev["event"], "device.fetched");
    assert_eq!(ev["resource_id"], p.id);
    assert_eq!(ev["object"]["file"], file);
    assert!(
        !hits.iter().any(|h| h.body.contains("new-pass-77")),
        "no secrets in events"
    );
    let start = Instant::now();
    loop {
        let (_, v) = app.get(&format!("/api/pbxdevices/{}", p.id)).await;
        if v["fetch_count"].as_i64() == Some(2) {
            assert_eq!(v["last_fetch_file"], file);
            assert_eq!(v["last_fetch_address"], "127.0.0.1");
            assert_eq!(v["last_fetch_user_agent"], YEALINK_UA);
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "fetches not recorded: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, v) = app.get("/api/pbxdevices/?fetched=true").await;
    assert_eq!(v["total_count"], 1, "{v}");
    let (_, v) = app.get("/api/pbxdevices/?fetched=false").await;
    assert_eq!(v["total_count"], 0, "{v}");
    let (_, v) = app.get(&format!("/api/pbxdevices/{}/fetches", p.id)).await;
    assert_eq!(v["fetches"].as_array().unwrap().len(), 2, "{v}");
    // The preview renders without serving: passwords masked unless asked for.
    let r = app
        .req(Method::GET, &format!("/api/pbxdevices/{}/preview", p.id))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    assert!(text.contains("account.1.user_name = "), "{text}");
    assert!(
        !text.contains("new-pass-77") && !text.contains(&long),
        "{text}"
    );
    let text = app
        .req(
            Method::GET,
            &format!("/api/pbxdevices/{}/preview?reveal=true", p.id),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("account.1.password = new-pass-77"), "{text}");
}
both!(
    a_change_reaches_the_next_fetch_and_every_fetch_is_recorded,
    super::ENV
);

async fn http_credentials_and_allow_lists_guard_devices_without_tokens(app: TestApp) {
    let f = app.fixture().await;
    let m = model_id(&app, "yealink", "T46U").await;
    let p = phone(&app, &f, m, "0a0b0c000003", "h").await;
    let file = format!("/prov/{}.cfg", p.mac);
    let (s, v) = app
        .patch(
            &format!("/api/pbxdevices/{}", p.id),
            json!([{"op": "replace", "path": "/auth", "value": "basic"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, v) = app
        .post(&format!("/api/pbxdevices/{}/reset_secret", p.id), json!({}))
        .await;
    let secret = v["secret"].as_str().unwrap().to_string();
    let get = |user: String, pass: String| {
        app.client
            .get(app.url(&file))
            .header("User-Agent", YEALINK_UA)
            .basic_auth(user, Some(pass))
            .send()
    };
    let r = get(p.mac.clone(), secret.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains(&p.users[1].1));
    let r = get(p.mac.clone(), "wrong".into()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (s, _, _) = fetch(&app, &file, YEALINK_UA).await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "no credentials, no challenge by default"
    );
    // The customer's allow-list: 127.0.0.1 is not in it.
    let (s, v) = app
        .put(
            &format!("/api/pbxcustomersettings/{}", f.customer_id),
            json!({"allowed_cidrs": ["192.0.2.0/24"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = get(p.mac.clone(), secret.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let (s, _) = app
        .put(
            &format!("/api/pbxcustomersettings/{}", f.customer_id),
            json!({"allowed_cidrs": ["127.0.0.0/8"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let r = get(p.mac.clone(), secret.clone()).await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Bad input names its field.
    let (s, v) = app
        .put(
            &format!("/api/pbxcustomersettings/{}", f.customer_id),
            json!({"allowed_cidrs": ["10.0.0.0/33"]}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "allowed_cidrs[0]");
}
both!(
    http_credentials_and_allow_lists_guard_devices_without_tokens,
    super::ENV
);

async fn digest_challenges_look_the_same_for_known_and_unknown_macs(app: TestApp) {
    let f = app.fixture().await;
    let m = model_id(&app, "yealink", "T46U").await;
    let p = phone(&app, &f, m, "0a0b0c000004", "g").await;
    let (s, _) = app
        .patch(
            &format!("/api/pbxdevices/{}", p.id),
            json!([{"op": "replace", "path": "/auth", "value": "digest"}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (_, v) = app
        .post(&format!("/api/pbxdevices/{}/reset_secret", p.id), json!({}))
        .await;
    let secret = v["secret"].as_str().unwrap().to_string();
    let path = format!("/prov/{}.cfg", p.mac);
    let (s1, h1, _) = fetch(&app, &path, YEALINK_UA).await;
    let (s2, h2, _) = fetch(&app, "/prov/0a0b0c0000ff.cfg", YEALINK_UA).await;
    assert_eq!(
        (s1, s2),
        (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED)
    );
    let www = &h1["www-authenticate"];
    assert_eq!(
        www.split("nonce").next(),
        h2["www-authenticate"].split("nonce").next()
    );
    let nonce = www
        .split("nonce=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let md5 = |s: String| {
        let out = std::process::Command::new("python3")
            .args([
                "-c",
                "import hashlib,sys; print(hashlib.md5(sys.argv[1].encode()).hexdigest())",
                &s,
            ])
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let ha1 = md5(format!("{}:voxprov:{secret}", p.mac));
    let ha2 = md5(format!("GET:{path}"));
    let resp = md5(format!("{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}"));
    let auth = format!(
        "Digest username=\"{}\", realm=\"voxprov\", nonce=\"{nonce}\", uri=\"{path}\", qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{resp}\"",
        p.mac
    );
    let r = app
        .client
        .get(app.url(&path))
        .header("User-Agent", YEALINK_UA)
        .header("Authorization", auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.text().await.unwrap().contains(&p.users[0].1));
}
both!(
    digest_challenges_look_the_same_for_known_and_unknown_macs,
    &[("VOXPROV_PROV_HTTP_CHALLENGE", "true")]
);

async fn mac_enumeration_is_banned_within_twenty_tries_and_never_served(app: TestApp) {
    let f = app.fixture().await;
    let m = model_id(&app, "yealink", "T46U").await;
    let p = phone(&app, &f, m, "0a0b0c000005", "e").await;
    let mut served = 0;
    let mut leaked = 0;
    let mut seed: u64 = 0x9e3779b97f4a7c15;
    let mut tasks = Vec::new();
    let mut macs = Vec::new();
    for _ in 0..10_000 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        macs.push(format!("805ec0{:06x}", seed & 0xffffff));
    }
    for chunk in macs.chunks(500) {
        let chunk = chunk.to_vec();
        let client = app.client.clone();
        let base = app.base.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for mac in chunk {
                let r = client
                    .get(format!("{base}/prov/{mac}.cfg"))
                    .header("User-Agent", YEALINK_UA)
                    .send()
                    .await
                    .unwrap();
                out.push((r.status(), r.text().await.unwrap()));
            }
            out
        }));
    }
    for t in tasks {
        for (s, body) in t.await.unwrap() {
            if s != StatusCode::NOT_FOUND {
                served += 1;
            }
            if body.contains("password") || body.contains(&p.users[0].1) {
                leaked += 1;
            }
        }
    }
    assert_eq!((served, leaked), (0, 0));
    let (_, v) = app.get("/api/pbxprovbans/").await;
    let ban = &v["bans"][0];
    assert_eq!(ban["address"], "127.0.0.1", "{v}");
    assert!(
        ban["failures"].as_i64().unwrap() <= 20,
        "banned after at most 20: {v}"
    );
    // Banned: even the right token gets the 404 now.
    let (s, _, _) = fetch(&app, &format!("/prov/{}/{}.cfg", p.boot, p.mac), YEALINK_UA).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let log = std::fs::read_to_string(app.dir.join("server.log")).unwrap();
    assert!(
        log.contains("prov: banned 127.0.0.1 for"),
        "a fail2ban-friendly line"
    );
    assert!(log.contains("prov: failed request from 127.0.0.1: unknown MAC"));
    // Lifted by an admin, the phone is served again.
    let (s, _) = app.delete("/api/pbxprovbans/127.0.0.1").await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _, _) = fetch(&app, &format!("/prov/{}/{}.cfg", p.boot, p.mac), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
}
both!(mac_enumeration_is_banned_within_twenty_tries_and_never_served);

async fn kazoo_templates_import_and_render_for_yealink_and_snom(app: TestApp) {
    let f = app.fixture().await;
    let doc = json!({
        "_id": "ui/yealink/t4x/t46u", "pvt_type": "provisioner",
        "endpoint_brand": "yealink", "endpoint_family": "t4x", "endpoint_model": "t46u",
        "cfg_base": {"static.auto_provision.server.url": {"value": "{PROV_SERVER_URL}"}, "local_time.time_zone_name": {"value": "{TIMEZONE}"}},
        "cfg_behavior": {"features.dnd.enable": {"value": "0"}},
        "cfg_account": {
            "account.{ACCOUNT}.enable": {"value": "1"},
            "account.{ACCOUNT}.user_name": {"value": " {SIPUSERNAME}"},
            "account.{ACCOUNT}.auth_name": {"value": "{SIPAUTHNAME}"},
            "account.{ACCOUNT}.password": {"value": "{SIPSECRET}"},
            "account.{ACCOUNT}.sip_server.1.address": {"value": "{PROXY_SERVER}"}
        },
        "cfg_tone": {"voice.tone.country": {"value": "Germany"}},
        "usr_keys": {"setable_phone_keys": "27", "setable_phone_key_counter": "1", "setable_phone_key_value": "linekey.value."}
    });
    // A key prefix must be a setting name: the bad one is named.
    let (s, v) = app
        .post(
            "/api/pbxdevicetemplates/import_kazoo",
            json!({"document": doc, "name": "yealink/t4x/t46u/device.cfg", "format": "kv"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "document.usr_keys.setable_phone_key_value");
    let mut doc = doc;
    doc["usr_keys"]["setable_phone_key_value"] = json!("prgkey");
    let (s, v) = app
        .post(
            "/api/pbxdevicetemplates/import_kazoo",
            json!({"document": doc, "name": "yealink/t4x/t46u/device.cfg", "format": "kv"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let m = model_id(&app, "yealink", "T46U").await;
    let p = phone(&app, &f, m, "0a0b0c000006", "k").await;
    let (s, _, body) = fetch(&app, &format!("/prov/{}/{}.cfg", p.boot, p.mac), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
    let kv = flatten("kv", &body);
    assert_eq!(kv["account.1.user_name"], p.users[0].0);
    assert_eq!(kv["account.2.password"], p.users[1].1);
    assert_eq!(kv["account.2.sip_server.1.address"], f.domain);
    assert_eq!(kv["local_time.time_zone_name"], "Europe/Berlin");
    assert_eq!(kv["prgkey1"], format!("blf sip:{}@{}", p.keys[0], f.domain));
    assert!(
        kv["static.auto_provision.server.url"].starts_with("http://"),
        "{body}"
    );

    // Snom: the same sections as Snom XML settings.
    let snom = spec()["snom"].clone();
    let sm = model_id(&app, "snom", snom["model"].as_str().unwrap()).await;
    let (_, mv) = app.get(&format!("/api/pbxdevicemodels/{sm}")).await;
    let kind = mv["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["per_device"] == true)
        .unwrap()["template"]
        .as_str()
        .unwrap()
        .to_string();
    let sdoc = json!({
        "cfg_base": {"setting_server": {"value": "{PROV_SERVER_URL}"}},
        "cfg_account": {
            "user_active{ACCOUNT}": {"value": "on"},
            "user_name{ACCOUNT}": {"value": "{SIPUSERNAME}"},
            "user_pass{ACCOUNT}": {"value": "{SIPSECRET}"},
            "user_host{ACCOUNT}": {"value": "{PROXY_SERVER}"}
        }
    });
    let (s, v) = app
        .post(
            "/api/pbxdevicetemplates/import_kazoo",
            json!({"document": sdoc, "name": format!("snom/{kind}"), "format": "snom"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let mac = "000413aa0007";
    let sp = phone(&app, &f, sm, mac, "s").await;
    let ua = subst(snom["user_agent"].as_str().unwrap(), mac);
    let file = subst(snom["file"].as_str().unwrap(), mac);
    let (s, _, body) = fetch(&app, &format!("/prov/{}/{file}", sp.boot), &ua).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let kv = flatten("xml", &body);
    assert_eq!(kv["user_name1"], sp.users[0].0, "{body}");
    assert_eq!(kv["user_pass2"], sp.users[1].1);
    assert_eq!(kv["user_host2"], f.domain);
}
both!(
    kazoo_templates_import_and_render_for_yealink_and_snom,
    super::ENV
);

async fn devices_refuse_other_customers_subscribers_and_bad_input_by_field(app: TestApp) {
    let f = app.fixture().await;
    let g = app.fixture().await;
    let other = app.subscriber(&g, "stranger", 5550001).await;
    let m = model_id(&app, "yealink", "T46U").await;
    let cases = [
        (
            json!({"identifier": "0a0b0c000008", "customer_id": f.customer_id, "model_id": m,
                "lines": [{"subscriber_id": other, "type": "private"}]}),
            "lines[0].subscriber_id",
        ),
        (
            json!({"identifier": "0a0b0c00000", "customer_id": f.customer_id, "model_id": m}),
            "identifier",
        ),
        (
            json!({"identifier": "0a0b0c000008", "customer_id": f.customer_id, "model_id": 99999}),
            "model_id",
        ),
        (
            json!({"identifier": "0a0b0c000008", "customer_id": f.customer_id, "model_id": m, "auth": "none"}),
            "auth",
        ),
        (
            json!({"identifier": "0a0b0c000008", "customer_id": f.customer_id, "model_id": m,
                "settings": {"vlan_id": 5000}}),
            "settings.vlan_id",
        ),
        (
            json!({"identifier": "0a0b0c000008", "customer_id": f.customer_id, "model_id": m,
                "lines": [{"type": "blf"}]}),
            "lines[0].target",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = app.post("/api/pbxdevices/", body.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {v}");
        assert_eq!(v["field"], field, "{body}: {v}");
    }
    let (s, v) = app
        .post(
            "/api/pbxdevicetemplates/",
            json!({"name": "yealink/device.cfg", "content": "{% if %}"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "content");
    // Profiles mask their admin password and keep it on a round trip.
    let (s, v) = app
        .post("/api/pbxdeviceprofiles/", json!({"reseller_id": 1, "name": "office", "settings": {"admin_password": "topsecret", "language": "de"}}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["settings"]["admin_password"], "********");
    let id = v["id"].as_i64().unwrap();
    let mut body = v.clone();
    for k in ["id", "_links", "create_timestamp", "modify_timestamp"] {
        body.as_object_mut().unwrap().remove(k);
    }
    let (s, v) = app.put(&format!("/api/pbxdeviceprofiles/{id}"), body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, j) = app
        .get(&format!("/api/pbxdeviceprofiles/{id}/journal/"))
        .await;
    assert!(!j.to_string().contains("topsecret"));
    // Templates run inside the server: only admins write them.
    let (_, login, pass) = app.reseller("tplres").await;
    let (s, _) = send(
        app.req_as(Method::POST, "/api/pbxdevicetemplates/", &login, &pass)
            .json(&json!({"name": "yealink/device.cfg", "content": "x"})),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A template that compiles but cannot render is refused when saved.
    let (s, v) = app
        .post(
            "/api/pbxdevicetemplates/",
            json!({"name": "yealink/device.cfg", "content": "{% extends \"nowhere/x.cfg\" %}"}),
        )
        .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["field"], "content");
    // The brand tree and detection.
    let (_, t) = app.get("/api/pbxdevicemodels/tree").await;
    assert!(
        t["yealink"]["families"].as_object().unwrap().len() >= 2,
        "{t}"
    );
    let (s, d) = app.get("/api/pbxdevicemodels/detect?user_agent=Yealink%20SIP-T46U%20108.86.0.20%2080:5e:c0:11:22:33").await;
    assert_eq!(s, StatusCode::OK, "{d}");
    assert_eq!(d["model"], "T46U");
    // A reseller sees only its own devices.
    let (r, login, pass) = app.reseller("devres").await;
    let p = phone(&app, &f, m, "0a0b0c000009", "r").await;
    let (s, _) = send(app.req_as(
        Method::GET,
        &format!("/api/pbxdevices/{}", p.id),
        &login,
        &pass,
    ))
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v) = send(app.req_as(Method::GET, "/api/pbxdevices/", &login, &pass)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["total_count"], 0, "reseller {r}: {v}");
}
both!(
    devices_refuse_other_customers_subscribers_and_bad_input_by_field,
    super::ENV
);

/// PostgreSQL only: SQLite is inside the server and cannot be stopped apart from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_phone_gets_its_last_good_configuration_while_the_database_is_down() {
    let app = TestApp::spawn_with(Backend::Postgres, ENV).await;
    let f = app.fixture().await;
    let m = model_id(&app, "yealink", "T46U").await;
    let p = phone(&app, &f, m, "0a0b0c00000a", "d").await;
    let file = format!("{}.cfg", p.mac);
    let (_, _, first) = fetch(&app, &format!("/prov/{}/{file}", p.boot), YEALINK_UA).await;
    let long = token_in(&first);
    let (s, _, good) = fetch(&app, &format!("/prov/{long}/{file}"), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK);
    // A change marks the cached configuration stale (a customer's setting: the cache re-reads
    // it at the next fetch), then the database goes away.
    let (s, v) = app
        .put(
            &format!("/api/pbxcustomersettings/{}", f.customer_id),
            json!({"settings": {"ntp_server": "ntp.changed.example"}}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let db = app.db_url.rsplit('/').next().unwrap().to_string();
    psql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS false"));
    psql(&format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{db}'"
    ));
    let (s, _, body) = fetch(&app, &format!("/prov/{long}/{file}"), YEALINK_UA).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body, good, "the last good configuration");
    assert!(body.contains(&format!("account.1.password = {}", p.users[0].1)));
    // Strangers still get nothing.
    let (s, _, _) = fetch(&app, &format!("/prov/{file}"), YEALINK_UA).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    psql(&format!("ALTER DATABASE {db} ALLOW_CONNECTIONS true"));
    // Back: the fresh configuration (with the new NTP server) is rendered.
    let start = Instant::now();
    loop {
        let (s, _, body) = fetch(&app, &format!("/prov/{long}/{file}"), YEALINK_UA).await;
        if s == StatusCode::OK && body.contains("ntp.changed.example") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not re-rendered after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
