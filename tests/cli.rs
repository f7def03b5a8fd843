//! The command line: migrate, and admin create / passwd / list, on the same data the server uses.

mod common;
use common::*;
use reqwest::{Method, StatusCode};
use std::io::Write;
use std::process::{Command, Stdio};

fn voxprov(app: &TestApp, args: &[&str], stdin: &str) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_voxprov"))
        .args(args)
        .arg("--data-dir")
        .arg(&app.dir)
        .args(["--database-url", &app.db_url])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

async fn admins_are_managed_from_the_command_line(app: TestApp) {
    let (ok, out) = voxprov(&app, &["migrate"], "");
    assert!(ok, "{out}");
    let (ok, out) = voxprov(
        &app,
        &["admin", "create", "ops", "--role", "admin"],
        "first-password\n",
    );
    assert!(ok, "{out}");
    let (ok, out) = voxprov(
        &app,
        &["admin", "create", "weak", "--role", "admin"],
        "short\n",
    );
    assert!(!ok && out.contains("password: must be 8 to 256"), "{out}");
    let (ok, out) = voxprov(
        &app,
        &["admin", "create", "r1", "--role", "reseller"],
        "long-enough-pw\n",
    );
    assert!(!ok && out.contains("reseller_id: is required"), "{out}");
    let (ok, out) = voxprov(&app, &["admin", "list"], "");
    assert!(
        ok && out.contains("administrator") && out.contains("ops"),
        "{out}"
    );
    let (s, _) = send(app.req_as(Method::GET, "/api/domains/", "ops", "first-password")).await;
    assert_eq!(s, StatusCode::OK);
    let (ok, out) = voxprov(&app, &["admin", "passwd", "ops"], "second-password\n");
    assert!(ok, "{out}");
    // The running server remembers verified credentials briefly; a restart forgets them.
    let mut app = app;
    app.kill9();
    app.start().await;
    let (s, _) = send(app.req_as(Method::GET, "/api/domains/", "ops", "first-password")).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = send(app.req_as(Method::GET, "/api/domains/", "ops", "second-password")).await;
    assert_eq!(s, StatusCode::OK);
    let (ok, out) = voxprov(&app, &["admin", "passwd", "nobody"], "second-password\n");
    assert!(!ok && out.contains("no admin"), "{out}");
}
both!(admins_are_managed_from_the_command_line);
