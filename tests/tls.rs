//! HTTPS in voxprov itself: a generated certificate for trials, reloaded on SIGHUP; admins
//! authenticated by a client certificate from /api/admincerts/ (checked with curl's --cert)
//! and refused once it is revoked; phones presenting a vendor certificate must present their
//! own MAC's — another's or a generic one gets the uniform 404.

mod common;
use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::process::Command;

/// curl over HTTPS, trusting `ca`; extra arguments as given. Status code and body.
fn curl(url: &str, ca: &Path, extra: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            "--cacert",
        ])
        .arg(ca)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (
        code.trim().parse().unwrap_or(0),
        format!("{body}{}", String::from_utf8_lossy(&out.stderr)),
    )
}

/// A CA of a phone vendor, and device certificates it issues.
struct VendorCa {
    cert: rcgen::Certificate,
    key: KeyPair,
}

impl VendorCa {
    fn new() -> VendorCa {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name
            .push(DnType::CommonName, "Example Phones Device CA");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).unwrap();
        VendorCa { cert, key }
    }

    /// A device certificate with this common name: (cert + key PEM).
    fn device(&self, cn: &str) -> String {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = p.signed_by(&key, &self.cert, &self.key).unwrap();
        format!("{}{}", cert.pem(), key.serialize_pem())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_admin_certificates_and_phone_certificates() {
    let vendor = VendorCa::new();
    let scratch = std::env::temp_dir().join(format!("vxtls-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let vendor_ca = scratch.join("vendor-ca.pem");
    std::fs::write(&vendor_ca, vendor.cert.pem()).unwrap();
    let mut app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("VOXPROV_TLS_LISTEN", "127.0.0.1:0"),
            (
                "VOXPROV_TLS_PHONE_CA_FILES",
                &format!("[\"{}\"]", vendor_ca.display()),
            ),
        ],
    )
    .await;
    let https = app.https_base.clone().unwrap();
    let server_ca = app.dir.join("tls/self-signed.crt");
    let mode = std::fs::metadata(app.dir.join("tls/self-signed.key"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600, "the generated key is the owner's only");

    // HTTPS with the generated certificate; plain HTTP still answers beside it.
    let admin = format!("administrator:{ADMIN_PASS}");
    let (code, body) = curl(
        &format!("{https}/api/domains/"),
        &server_ca,
        &["-u", &admin],
    );
    assert_eq!(code, 200, "{body}");
    let (code, _) = curl(&format!("{https}/api/domains/"), &server_ca, &[]);
    assert_eq!(code, 401, "no credentials, no certificate");
    let (s, _) = app.get("/api/domains/").await;
    assert_eq!(s, StatusCode::OK);

    // An admin's certificate, delivered once as a ZIP.
    let (code, _) = curl(
        &format!("{https}/api/admincerts/"),
        &server_ca,
        &[
            "-u",
            &admin,
            "-H",
            "Content-Type: application/json",
            "-d",
            "{\"login\":\"nobody\"}",
        ],
    );
    assert_eq!(code, 422, "an unknown login is named");
    let r = app
        .req(Method::POST, "/api/admincerts/")
        .json(&json!({"login": "administrator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["content-type"], "application/zip");
    let disposition = r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        disposition.contains("NGCP-API-client-certificate-"),
        "{disposition}"
    );
    let zip = r.bytes().await.unwrap();
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip.to_vec())).unwrap();
    let name = archive
        .file_names()
        .find(|n| n.starts_with("NGCP-API-client-certificate-") && n.ends_with(".pem"))
        .unwrap()
        .to_string();
    let mut pem = String::new();
    archive
        .by_name(&name)
        .unwrap()
        .read_to_string(&mut pem)
        .unwrap();
    assert!(pem.contains("BEGIN CERTIFICATE") && pem.contains("PRIVATE KEY"));
    let admin_pem = scratch.join("admin.pem");
    std::fs::write(&admin_pem, &pem).unwrap();

    // The certificate alone authenticates, as that admin (the journal names them).
    let cert_args = ["--cert", admin_pem.to_str().unwrap()];
    let (code, body) = curl(&format!("{https}/api/domains/"), &server_ca, &cert_args);
    assert_eq!(code, 200, "{body}");
    let (code, body) = curl(
        &format!("{https}/api/domains/"),
        &server_ca,
        &[
            &cert_args[..],
            &[
                "-H",
                "Content-Type: application/json",
                "-d",
                "{\"domain\":\"viacert.example.com\",\"reseller_id\":1}",
            ],
        ]
        .concat(),
    );
    assert_eq!(code, 201, "{body}");
    let (_, j) = app
        .get("/api/journals/?resource=domains&actor=administrator")
        .await;
    assert_eq!(
        j["total_count"], 1,
        "the journal names the certificate's admin: {j}"
    );
    let (_, me) = app.get("/api/admins/?login=administrator").await;
    let admin_id = items(&me, "admins")[0]["id"].as_i64().unwrap();
    let (s, v) = app.get(&format!("/api/admincerts/{admin_id}")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["has_certificate"], true);
    assert!(v.get("ssl_client_certificate").is_none() && !v.to_string().contains("PRIVATE"));

    // An API key cannot make one, even for its own admin: a certificate would carry the
    // admin's full rights, which a key's may be narrower than.
    let (s, k) = app
        .post(
            "/api/apikeys/",
            json!({ "name": "certkey", "read_only": true }),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let r = app
        .client
        .post(app.url("/api/admincerts/"))
        .header("X-API-Key", k["secret"].as_str().unwrap())
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // Another reseller's admin cannot make one for the administrator (does not exist for
    // them); a read-only admin cannot revoke someone else's.
    let (_, rname, rpass) = app.reseller("certres").await;
    let r = app
        .req_as(Method::POST, "/api/admincerts/", &rname, &rpass)
        .json(&json!({"login": "administrator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = app
        .post(
            "/api/admins/",
            json!({"login": "viewer", "password": "viewer-pass-1", "role": "admin", "read_only": true}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let r = app
        .req_as(
            Method::DELETE,
            &format!("/api/admincerts/{admin_id}"),
            "viewer",
            "viewer-pass-1",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);

    // Revoked: the same certificate authenticates no one, at once.
    let (s, v) = app.delete(&format!("/api/admincerts/{admin_id}")).await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    let (code, _) = curl(&format!("{https}/api/domains/"), &server_ca, &cert_args);
    assert_eq!(code, 401, "a revoked certificate is refused");

    // Phones: a device certificate from the vendor's CA must name the MAC asked for.
    let f = app.fixture().await;
    let (mac, _, path) = app.yealink_phone(f.customer_id, "c3c3c3").await;
    let oui = &mac[..6];
    let url = format!("{https}{path}");
    let ua = "Yealink SIP-T46U 108.86.0.20";
    let uniform = curl(
        &format!("{https}/prov/000000000001.cfg"),
        &server_ca,
        &["-A", ua],
    );
    assert_eq!(uniform.0, 404);
    let mut refused = Vec::new();
    for (what, cn) in [
        ("another phone's", format!("{oui}c3c3c4")),
        ("a generic", "Yealink Equipment".to_string()),
    ] {
        let file = scratch.join(format!("{}.pem", what.replace([' ', '\''], "_")));
        std::fs::write(&file, vendor.device(&cn)).unwrap();
        let got = curl(
            &url,
            &server_ca,
            &["-A", ua, "--cert", file.to_str().unwrap()],
        );
        assert_eq!(got, uniform, "{what} certificate gets the uniform 404");
        refused.push(file);
    }
    let own = scratch.join("own.pem");
    std::fs::write(&own, vendor.device(&mac)).unwrap();
    let (code, body) = curl(
        &url,
        &server_ca,
        &["-A", ua, "--cert", own.to_str().unwrap()],
    );
    assert_eq!(code, 200, "its own certificate: {body}");
    assert!(body.contains("#!version:1.0.0.1"), "{body}");
    // A certificate from a CA nobody configured does not even get through the handshake.
    let stranger = VendorCa::new();
    let strange = scratch.join("strange.pem");
    std::fs::write(&strange, stranger.device(&mac)).unwrap();
    let (code, _) = curl(
        &url,
        &server_ca,
        &["-A", ua, "--cert", strange.to_str().unwrap()],
    );
    assert_eq!(code, 0, "handshake refused");

    // SIGHUP re-reads the certificate: a new one is served, the old CA no longer matches.
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "renewed");
    let renewed = p.self_signed(&key).unwrap();
    std::fs::write(app.dir.join("tls/self-signed.key"), key.serialize_pem()).unwrap();
    std::fs::write(app.dir.join("tls/self-signed.crt"), renewed.pem()).unwrap();
    let old_ca = scratch.join("old-ca.pem");
    std::fs::write(&old_ca, std::fs::read(&server_ca).unwrap_or_default()).unwrap();
    nix_hup(app.pid());
    let mut served_new = false;
    for _ in 0..50 {
        let (code, _) = curl(&format!("{https}/healthz"), &server_ca, &[]);
        if code == 200 {
            served_new = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(served_new, "the renewed certificate is served after SIGHUP");
    // A broken file on the next reload keeps the current certificate in use.
    std::fs::write(app.dir.join("tls/self-signed.crt"), "not a certificate").unwrap();
    nix_hup(app.pid());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    std::fs::write(&old_ca, renewed.pem()).unwrap();
    let (code, body) = curl(&format!("{https}/healthz"), &old_ca, &[]);
    assert_eq!(code, 200, "still serving the renewed certificate: {body}");
    app.kill9();
    let _ = std::fs::remove_dir_all(&scratch);
}

fn nix_hup(pid: u32) {
    let st = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
}
