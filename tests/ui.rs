//! The web UI in a real headless Chromium (Debian's chromium and chromium-driver): log in,
//! create a customer and a subscriber through the forms, find it by number, set a call
//! forward, add a device and preview its configuration, redeliver a failed hook execution,
//! and a reseller who cannot see another reseller's objects. Values with markup render
//! inert; a form post without its token is refused. Screenshots of the main pages go to
//! artifacts/ui/ (ignored by git).

mod common;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Driver {
    child: Child,
    client: Client,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromium() -> Driver {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let port = common::kamailio::free_port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs (apt-get install chromium chromium-driver)");
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium",
               "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1000"]}),
    );
    let client = ClientBuilder::rustls()
        .expect("rustls")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session");
    Driver { child, client }
}

async fn shot(c: &Client, name: &str) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts/ui");
    std::fs::create_dir_all(&dir).unwrap();
    let png = c.screenshot().await.unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

async fn fill(c: &Client, field: &str, value: &str) {
    let e = c
        .find(Locator::Id(&format!("f_{field}")))
        .await
        .unwrap_or_else(|_| panic!("no field {field}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Picks the option with `value` of the form's select for `field`.
async fn choose(c: &Client, field: &str, value: &str) {
    c.find(Locator::Css(&format!(
        "select#f_{field} option[value='{value}']"
    )))
    .await
    .unwrap_or_else(|_| panic!("no choice {value} for {field}"))
    .click()
    .await
    .unwrap();
}

/// Fills a number editor's row: `prefix` f_primary_number_ or f_alias_numbers_0_.
async fn fill_number(c: &Client, prefix: &str, cc: &str, ac: &str, sn: &str) {
    for (part, v) in [("cc", cc), ("ac", ac), ("sn", sn)] {
        fill_id(c, &format!("{prefix}{part}"), v).await;
    }
}

async fn fill_id(c: &Client, id: &str, value: &str) {
    let e = c
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|_| panic!("no field {id}"));
    e.clear().await.unwrap();
    e.send_keys(value).await.unwrap();
}

/// Submits the page's form and waits until the answer has replaced the page.
async fn submit(c: &Client) {
    click(
        c,
        Locator::Css("main form button[type=submit]:last-of-type"),
    )
    .await;
}

/// Clicks what navigates (a link, a form's button) and waits for the next page.
async fn click(c: &Client, what: Locator<'_>) {
    let old = c.find(Locator::Css("main")).await.unwrap();
    c.find(what).await.unwrap().click().await.unwrap();
    let start = Instant::now();
    // The old page's elements go stale once the new page is there.
    while old.tag_name().await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the form's answer did not come"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait().for_element(Locator::Css("main")).await.unwrap();
}

/// Types into the header's search box, presses Enter and waits for the results page.
async fn search(c: &Client, what: &str) {
    let old = c.find(Locator::Css("main")).await.unwrap();
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys(what).await.unwrap();
    q.send_keys("\u{E007}").await.unwrap(); // Enter
    let start = Instant::now();
    while old.tag_name().await.is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no search results"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    c.wait().for_element(Locator::Css("main")).await.unwrap();
}

/// The id of the object whose page a successful form led to.
async fn created_id(c: &Client) -> i64 {
    let url = c.current_url().await.unwrap();
    match url.path().rsplit('/').next().and_then(|id| id.parse().ok()) {
        Some(id) => id,
        None => panic!("{url}: {}", text(c).await),
    }
}

async fn login(c: &Client, base: &str, user: &str, pass: &str) {
    c.goto(&format!("{base}/ui/login")).await.unwrap();
    c.find(Locator::Id("login"))
        .await
        .unwrap()
        .send_keys(user)
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys(pass)
        .await
        .unwrap();
    click(c, Locator::Css("main form button")).await;
}

async fn text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_does_the_daily_work_in_a_browser() {
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[
            ("VOXPROV_HOOKS_ALLOW_PRIVATE_TARGETS", "true"),
            ("VOXPROV_HOOKS_RETRY_SCHEDULE", "[]"),
        ],
    )
    .await;
    let base = app.base.clone();
    // What the forms refer to: a domain, billing profile and a contact whose name is markup.
    let domain = "ui.example.com";
    app.create("/api/domains/", json!({"domain": domain, "reseller_id": 1}))
        .await;
    let bp = app
        .create(
            "/api/billingprofiles/",
            json!({"handle": "bp", "name": "Default", "reseller_id": 1}),
        )
        .await;
    let xss = "<script>document.title='pwned'</script>\"'<b>";
    let contact = app
        .create(
            "/api/customercontacts/",
            json!({"email": "c@example.com", "lastname": xss, "reseller_id": 1}),
        )
        .await;

    let d = chromium().await;
    let c = &d.client;
    login(c, &base, "administrator", "wrong-password").await;
    assert!(text(c).await.contains("Wrong login or password"));
    login(c, &base, "administrator", ADMIN_PASS).await;
    assert!(text(c).await.contains("Dashboard"), "{}", text(c).await);
    shot(c, "dashboard").await;

    // A customer through its form.
    c.goto(&format!("{base}/ui/customers/new")).await.unwrap();
    choose(c, "contact_id", &contact.to_string()).await;
    choose(c, "billing_profile_id", &bp.to_string()).await;
    choose(c, "type", "sipaccount").await;
    choose(c, "status", "active").await;
    fill(c, "external_id", "cust-ui-1").await;
    shot(c, "customer-form").await;
    submit(c).await;
    let url = c.current_url().await.unwrap();
    let customer: i64 = url
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{url}"));
    assert!(text(c).await.contains("cust-ui-1"));

    // A subscriber: first with a bad username (the error is shown at the field), then good.
    c.goto(&format!("{base}/ui/subscribers/new")).await.unwrap();
    choose(c, "customer_id", &customer.to_string()).await;
    choose(c, "domain", domain).await;
    fill(c, "username", "bad user").await;
    fill(c, "password", "sub-pass-123").await;
    fill_number(c, "f_primary_number_", "49", "30", "5551234").await;
    submit(c).await;
    let Ok(err) = c.find(Locator::Id("e_username")).await else {
        panic!("the error at the field: {}", text(c).await);
    };
    assert!(err.text().await.unwrap().contains("may contain only"));
    fill(c, "username", "alice").await;
    fill(c, "password", "sub-pass-123").await;
    submit(c).await;
    let url = c.current_url().await.unwrap();
    let sub: i64 = url
        .path()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{url}"));
    shot(c, "subscriber").await;

    // Found by number from the search box.
    c.goto(&format!("{base}/ui/")).await.unwrap();
    search(c, "4930555").await;
    let t = text(c).await;
    assert!(
        t.contains("Subscribers by number") && t.contains(&format!("alice@{domain}")),
        "{t}"
    );
    shot(c, "search").await;

    // A CSV import with its progress: two good rows and a bad one (reported, the rest kept).
    c.goto(&format!("{base}/ui/subscribers/")).await.unwrap();
    click(c, Locator::LinkText("Import CSV")).await;
    let csv = format!(
        "customer_id,domain,username,password\n{customer},{domain},bob,Pw-import-1\n{customer},{domain},bad user,x-pass-123\n{customer},{domain},carol,Pw-import-3\n"
    );
    fill(c, "csv", &csv).await;
    submit(c).await;
    let done = c.wait().for_element(Locator::Id("done")).await.unwrap();
    assert_eq!(done.text().await.unwrap(), "Done: 2 created, 1 failed.");
    let t = text(c).await;
    assert!(
        t.contains("line 3") && t.contains("username"),
        "the bad line named: {t}"
    );
    shot(c, "import-progress").await;
    let (_, v) = app.get("/api/subscribers/?username=carol").await;
    assert_eq!(v["total_count"], 1);

    // A call forward through the subscriber's call forward form.
    c.goto(&format!("{base}/ui/callforwards/{sub}/edit"))
        .await
        .unwrap();
    fill(
        c,
        "cfu",
        r#"{"destinations": [{"destination": "+4930999", "timeout": 20}]}"#,
    )
    .await;
    submit(c).await;
    let (_, v) = app.get(&format!("/api/callforwards/{sub}")).await;
    assert!(
        v["cfu"]["destinations"][0]["destination"]
            .as_str()
            .unwrap_or("")
            .contains("4930999"),
        "{v}"
    );

    // Preferences, edited as one document.
    c.goto(&format!("{base}/ui/subscriberpreferences/{sub}/edit"))
        .await
        .unwrap();
    fill(c, "document", r#"{"ringtimeout": 33}"#).await;
    submit(c).await;
    let (_, p) = app.get(&format!("/api/subscriberpreferences/{sub}")).await;
    assert_eq!(p["ringtimeout"], 33, "{p}\n{}", text(c).await);

    // A device and its configuration preview.
    let (_, models) = app
        .get("/api/pbxdevicemodels/?vendor=yealink&model=T46U")
        .await;
    let model = items(&models, "pbxdevicemodels")[0]["id"].as_i64().unwrap();
    c.goto(&format!("{base}/ui/pbxdevices/new")).await.unwrap();
    fill(c, "identifier", "80:5e:c0:aa:bb:cc").await;
    choose(c, "customer_id", &customer.to_string()).await;
    choose(c, "model_id", &model.to_string()).await;
    fill(c, "station_name", "Reception").await;
    choose(c, "lines_0_subscriber_id", &sub.to_string()).await;
    submit(c).await;
    assert!(text(c).await.contains("shown once"), "{}", text(c).await);
    click(c, Locator::LinkText("Continue")).await;
    click(c, Locator::LinkText("Preview configuration")).await;
    let t = text(c).await;
    assert!(
        t.contains("account.1.user_name = alice") && !t.contains("sub-pass-123"),
        "{t}"
    );
    shot(c, "device-preview").await;

    // A failed hook execution, opened and redelivered.
    let dead = format!("http://127.0.0.1:{}/gone", common::kamailio::free_port());
    let hook = app
        .create(
            "/api/hooks/",
            json!({"name": "crm", "events": ["customer.updated"], "url": dead}),
        )
        .await;
    app.patch(
        &format!("/api/customers/{customer}"),
        json!([{"op": "replace", "path": "/external_id", "value": "cust-ui-2"}]),
    )
    .await;
    let start = Instant::now();
    let exec = loop {
        let (_, v) = app.get("/api/hookexecutions/?rows=10").await;
        if let Some(e) = items(&v, "hookexecutions").first() {
            break e["id"].as_i64().unwrap();
        }
        assert!(start.elapsed() < Duration::from_secs(15), "no execution");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    c.goto(&format!("{base}/ui/hookexecutions/{exec}"))
        .await
        .unwrap();
    shot(c, "hook-execution").await;
    click(
        c,
        Locator::XPath("//main//button[normalize-space()='Redeliver']"),
    )
    .await;
    assert!(
        text(c).await.contains("Queued for redelivery"),
        "{}",
        text(c).await
    );
    // The hook's signing secret rotated from its page: the new one shown this once.
    c.goto(&format!("{base}/ui/hooks/{hook}")).await.unwrap();
    click(
        c,
        Locator::XPath("//main//button[normalize-space()='Rotate secret']"),
    )
    .await;
    let t = text(c).await;
    let secret = t
        .split("shown only now: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no new secret on the page: {t}"))
        .to_string();
    assert!(
        secret.len() >= 16 && t.contains("the old one keeps working until"),
        "{t}"
    );
    c.goto(&format!("{base}/ui/hooks/{hook}")).await.unwrap();
    assert!(!text(c).await.contains(&secret), "shown once only");

    // The journal, filtered to the customer: its update with before and after.
    c.goto(&format!("{base}/ui/journal")).await.unwrap();
    fill_id(c, "j_resource", "customers").await;
    fill_id(c, "j_resource_id", &customer.to_string()).await;
    click(c, Locator::Css("main form button")).await;
    let t = text(c).await;
    assert!(
        t.contains("2 in all"),
        "create and update of the customer: {t}"
    );
    click(
        c,
        Locator::XPath("//main//table//a[contains(@href, '/ui/journal/')]"),
    )
    .await;
    let t = text(c).await;
    assert!(
        t.contains("cust-ui-1") && t.contains("cust-ui-2"),
        "before and after: {t}"
    );
    shot(c, "journal-change").await;

    // Markup in a value is text on every page that shows it.
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=customercontacts&resource_id={contact}"
        ))
        .await;
    let contact_change = items(&j, "journals")[0]["id"].as_i64().unwrap();
    for page in [
        format!("/ui/customercontacts/{contact}"),
        "/ui/customercontacts/".to_string(),
        "/ui/search?q=script".to_string(),
        "/ui/journal".to_string(),
        format!("/ui/journal/{contact_change}"),
        "/ui/".to_string(),
        format!("/ui/customercontacts/{contact}/edit"),
    ] {
        c.goto(&format!("{base}{page}")).await.unwrap();
        assert_ne!(c.title().await.unwrap(), "pwned", "{page}");
        assert!(
            c.find(Locator::Css("main b")).await.is_err(),
            "{page}: a <b> from the data became markup"
        );
    }
    let t = {
        c.goto(&format!("{base}/ui/customercontacts/{contact}"))
            .await
            .unwrap();
        text(c).await
    };
    assert!(t.contains("<script>"), "shown as text: {t}");
    shot(c, "contact-with-markup").await;
    for (p, name) in [
        ("/ui/journal", "journal"),
        ("/ui/pbxdevices/", "devices"),
        ("/ui/hooks/", "hooks"),
        ("/ui/subscribers/", "subscribers"),
    ] {
        c.goto(&format!("{base}{p}")).await.unwrap();
        shot(c, name).await;
    }
    // A phone-sized screen.
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/ui/")).await.unwrap();
    shot(c, "dashboard-phone").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // Log out; then a reseller sees only its own world.
    click(
        c,
        Locator::XPath("//header//button[normalize-space()='Log out']"),
    )
    .await;
    assert!(c.current_url().await.unwrap().path().ends_with("/ui/login"));
    let (_, login_name, pass) = app.reseller("uires").await;
    login(c, &base, &login_name, &pass).await;
    c.goto(&format!("{base}/ui/customers/{customer}"))
        .await
        .unwrap();
    assert!(text(c).await.contains("not found"), "{}", text(c).await);
    c.goto(&format!("{base}/ui/subscribers/")).await.unwrap();
    assert!(text(c).await.contains("0 in all"), "{}", text(c).await);
    shot(c, "reseller-subscribers").await;
    c.clone().close().await.unwrap();
}

/// The cookies a response sets, as a Cookie header.
/// Page loads and form submissions a task took in the browser, for the note on the UI.
#[derive(Default)]
struct Tally {
    loads: u32,
    posts: u32,
}

impl Tally {
    async fn goto(&mut self, c: &Client, url: &str) {
        self.loads += 1;
        c.goto(url).await.unwrap();
    }
    /// Follows a link.
    async fn follow(&mut self, c: &Client, what: Locator<'_>) {
        self.loads += 1;
        click(c, what).await;
    }
    /// The login page, and the administrator logged in: one page, one submission, one page.
    async fn login(&mut self, c: &Client, base: &str) {
        self.goto(c, &format!("{base}/ui/login")).await;
        fill_id(c, "login", "administrator").await;
        fill_id(c, "password", ADMIN_PASS).await;
        self.send(c, Locator::Css("main form button")).await;
    }
    /// Types into the header's search box and presses Enter: one submission, one page.
    async fn search(&mut self, c: &Client, what: &str) {
        self.loads += 1;
        self.posts += 1;
        search(c, what).await;
    }
    /// Sends a form by its button: one submission, one page.
    async fn send(&mut self, c: &Client, what: Locator<'_>) {
        self.loads += 1;
        self.posts += 1;
        click(c, what).await;
    }
}

/// The support desk's task "find a subscriber by a number and lock it", in Chromium, on the
/// purpose-built pages: the lists name things (username@domain, number, the customer's
/// company, status), the subscriber's page reads as people speak (numbers as +cc ac sn, the
/// lock by its name), Lock and Unlock are buttons, and at phone width the identifying
/// columns stay while the rest fold away. Counts the page loads and submissions it took.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_finds_a_subscriber_by_number_and_locks_it() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let domain = "desk.example.com";
    app.create("/api/domains/", json!({"domain": domain, "reseller_id": 1}))
        .await;
    let bp = app
        .create(
            "/api/billingprofiles/",
            json!({"handle": "desk", "name": "Desk", "reseller_id": 1}),
        )
        .await;
    let contact = app
        .create(
            "/api/customercontacts/",
            json!({"email": "it@acme.example", "company": "Acme Widgets", "reseller_id": 1}),
        )
        .await;
    let customer = app
        .create(
            "/api/customers/",
            json!({"contact_id": contact, "billing_profile_id": bp, "type": "sipaccount", "status": "active"}),
        )
        .await;
    let mut subs = Vec::new();
    for (user, sn) in [("anna", "7000101"), ("ben", "7000102"), ("cleo", "7000103")] {
        subs.push(
            app.create(
                "/api/subscribers/",
                json!({"customer_id": customer, "domain": domain, "username": user,
                       "password": "Desk-pass-1", "display_name": format!("{user} at Acme"),
                       "primary_number": {"cc": "49", "ac": "30", "sn": sn},
                       "alias_numbers": [{"cc": "49", "ac": "30", "sn": format!("9{sn}")}]}),
            )
            .await,
        );
    }
    let ben = subs[1];

    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;

    // The number as a caller would read it out, with spaces.
    n.search(c, "+49 30 7000102").await;
    let hit = format!("//main//a[contains(., 'ben@{domain}')]");
    n.follow(c, Locator::XPath(&hit)).await;
    assert_eq!(
        c.current_url().await.unwrap().path(),
        format!("/ui/subscribers/{ben}")
    );
    let t = text(c).await;
    assert!(t.contains(&format!("ben@{domain}")), "{t}");
    assert!(
        t.contains("+49 30 7000102") && t.contains("+49 30 97000102"),
        "numbers as people write them: {t}"
    );
    assert!(!t.contains("number_id"), "no raw number objects: {t}");
    shot(c, "task-lock-subscriber-before").await;
    n.send(
        c,
        Locator::XPath("//main//button[normalize-space()='Lock']"),
    )
    .await;
    let t = text(c).await;
    assert!(t.contains("Locked"), "{t}");
    assert!(t.contains("global (no calls, no registration)"), "{t}");
    let (_, v) = app.get(&format!("/api/subscribers/{ben}")).await;
    assert_eq!(v["lock"], 4, "{v}");
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscribers&resource_id={ben}"
        ))
        .await;
    assert_eq!(j["total_count"], 2, "created, then locked: {j}");
    shot(c, "task-lock-subscriber-after").await;
    eprintln!(
        "task 'find a subscriber by a number and lock it': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    // The dashboard says what happened, in words; a switched-off hook is at the top.
    app.create(
        "/api/hooks/",
        json!({"name": "billing-sync", "events": ["subscriber.updated"], "url": "https://billing.example.com/hook", "status": "disabled"}),
    )
    .await;
    app.create(
        "/api/hooks/",
        json!({"name": "crm-sync", "events": ["subscriber.created"], "url": "https://crm.example.com/hook"}),
    )
    .await;
    c.goto(&format!("{base}/ui/")).await.unwrap();
    let t = text(c).await;
    assert!(
        t.contains(&format!(
            "administrator changed subscriber ben@{domain} (lock)"
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!("administrator created subscriber anna@{domain}")),
        "{t}"
    );
    let attention = c
        .find(Locator::Css("ul.trouble"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        attention.contains("Hook billing-sync: disabled"),
        "{attention}"
    );
    assert!(
        !attention.contains("crm-sync"),
        "an enabled hook is no trouble: {attention}"
    );
    shot(c, "dashboard").await;
    c.back().await.unwrap();
    c.goto(&format!("{base}/ui/subscribers/{ben}"))
        .await
        .unwrap();
    // The other two are untouched; unlocking is one button too.
    for other in [subs[0], subs[2]] {
        let (_, v) = app.get(&format!("/api/subscribers/{other}")).await;
        assert_eq!(v["lock"], 0, "{v}");
    }
    click(
        c,
        Locator::XPath("//main//button[normalize-space()='Unlock']"),
    )
    .await;
    let (_, v) = app.get(&format!("/api/subscribers/{ben}")).await;
    assert_eq!(v["lock"], 0, "{v}");
    assert!(c
        .find(Locator::XPath("//main//button[normalize-space()='Lock']"))
        .await
        .is_ok());

    // The lists name things: the subscriber list, sorted by username descending.
    c.goto(&format!("{base}/ui/subscribers/")).await.unwrap();
    let head = c
        .find(Locator::Css("main table thead"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for col in [
        "Subscriber",
        "Number",
        "Name",
        "Customer",
        "Status",
        "Registered",
    ] {
        assert!(head.contains(col), "column {col}: {head}");
    }
    let first_row = || async {
        c.find(Locator::Css("main table tbody tr"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let row = first_row().await;
    assert!(
        row.contains(&format!("anna@{domain}"))
            && row.contains("+49 30 7000101")
            && row.contains("Acme Widgets")
            && row.contains("active"),
        "{row}"
    );
    let sort = "//main//thead//a[starts-with(normalize-space(), 'Subscriber')]";
    click(c, Locator::XPath(sort)).await;
    click(c, Locator::XPath(sort)).await;
    let row = first_row().await;
    assert!(row.contains(&format!("cleo@{domain}")), "descending: {row}");
    shot(c, "subscribers-list").await;
    c.set_window_size(390, 844).await.unwrap();
    c.goto(&format!("{base}/ui/subscribers/")).await.unwrap();
    let cells = c
        .find_all(Locator::Css("main table tbody tr:first-child td"))
        .await
        .unwrap();
    let mut shown = Vec::new();
    for cell in &cells {
        shown.push(cell.is_displayed().await.unwrap());
    }
    assert_eq!(
        shown,
        [true, true, false, false, false, false],
        "at phone width: the subscriber and its number"
    );
    shot(c, "subscribers-list-phone").await;
    c.goto(&format!("{base}/ui/subscribers/{ben}"))
        .await
        .unwrap();
    shot(c, "subscriber-phone").await;
    c.set_window_size(1280, 1000).await.unwrap();

    // The customer list: the contact's company and the subscriber count.
    c.goto(&format!("{base}/ui/customers/")).await.unwrap();
    let row = first_row().await;
    assert!(
        row.contains("Acme Widgets") && row.contains('3') && row.contains("active"),
        "{row}"
    );
    shot(c, "customers-list").await;
    c.clone().close().await.unwrap();
}

/// The desk's task "create a customer with its contact and three subscribers with
/// numbers", in Chromium: the contact, then the customer picking it (and its billing
/// profile) from lists, then from the customer's page "Add subscriber" three times, with
/// the number editor (cc / area code / number, alias rows). A first try with a bad username
/// shows the error once, at its field. Counts page loads and submissions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_creates_a_customer_with_three_subscribers() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let domain = "nordwind.example.com";
    app.create("/api/domains/", json!({"domain": domain, "reseller_id": 1}))
        .await;
    let bp = app
        .create(
            "/api/billingprofiles/",
            json!({"handle": "std", "name": "Standard", "reseller_id": 1}),
        )
        .await;

    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;

    // The contact.
    n.goto(c, &format!("{base}/ui/customercontacts/new")).await;
    fill(c, "company", "Nordwind Telecom").await;
    fill(c, "firstname", "Ines").await;
    fill(c, "lastname", "Kraft").await;
    fill(c, "email", "ines@nordwind.example").await;
    choose(c, "reseller_id", "1").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let contact = created_id(c).await;

    // The customer: contact and billing profile picked by name; required fields marked.
    n.goto(c, &format!("{base}/ui/customers/new")).await;
    let label = c
        .find(Locator::Css(
            "select#f_contact_id option[selected], select#f_contact_id",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        label.contains("Nordwind Telecom"),
        "the contact by name: {label}"
    );
    assert!(
        c.find(Locator::Css("label[for=f_contact_id] .req"))
            .await
            .is_ok(),
        "required fields are marked"
    );
    choose(c, "contact_id", &contact.to_string()).await;
    choose(c, "billing_profile_id", &bp.to_string()).await;
    choose(c, "type", "sipaccount").await;
    choose(c, "status", "active").await;
    fill(c, "external_id", "NW-1001").await;
    shot(c, "customer-form").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let customer = created_id(c).await;
    assert!(
        text(c).await.contains("Subscribers (0)"),
        "{}",
        text(c).await
    );

    // Three subscribers from the customer's page; the first try has a bad username.
    let people = [
        ("ines", "5550100", "5550199"),
        ("jan", "5550101", ""),
        ("kai", "5550102", ""),
    ];
    for (i, (user, sn, alias)) in people.iter().enumerate() {
        n.follow(c, Locator::LinkText("Add subscriber")).await;
        let picked = c
            .find(Locator::Css(&format!(
                "select#f_customer_id option[value='{customer}']"
            )))
            .await
            .unwrap();
        assert_eq!(
            picked.prop("selected").await.unwrap().as_deref(),
            Some("true"),
            "the customer comes filled in"
        );
        choose(c, "domain", domain).await;
        fill(c, "password", "Nordwind-pw-1").await;
        fill(c, "display_name", &format!("{user} (Nordwind)")).await;
        fill_number(c, "f_primary_number_", "49", "40", sn).await;
        if !alias.is_empty() {
            fill_number(c, "f_alias_numbers_0_", "49", "40", alias).await;
        }
        if i == 0 {
            // Three wrong fields: all three answered at once, each at its field, once.
            fill(c, "username", "ines kraft").await;
            fill(c, "email", "ines-at-nordwind").await;
            fill_id(c, "f_alias_numbers_0_sn", "55501x9").await;
            shot(c, "subscriber-form").await;
            n.send(c, Locator::Css("main form button[type=submit]"))
                .await;
            let page = text(c).await;
            for (field, says) in [
                ("username", "may contain only letters"),
                ("email", ""),
                ("alias_numbers", "alias_numbers[0]"),
            ] {
                let err = c
                    .find(Locator::Id(&format!("e_{field}")))
                    .await
                    .unwrap_or_else(|_| panic!("no error at {field}: {page}"))
                    .text()
                    .await
                    .unwrap();
                assert!(err.contains(says), "{field}: {err}");
                assert!(
                    !err.contains("Validation failed"),
                    "the problem itself, at the field it is under: {err}"
                );
                assert_eq!(
                    page.matches(err.as_str()).count(),
                    1,
                    "{field}'s error once: {page}"
                );
            }
            assert!(page.contains("3 fields need a change"), "{page}");
            fill_id(c, "f_alias_numbers_0_sn", alias).await;
            fill(c, "email", "").await;
            // What was typed is still there: the numbers in their editor.
            let kept = c
                .find(Locator::Id("f_primary_number_sn"))
                .await
                .unwrap()
                .prop("value")
                .await
                .unwrap();
            assert_eq!(kept.as_deref(), Some(*sn));
            shot(c, "subscriber-form-error").await;
            fill(c, "password", "Nordwind-pw-1").await;
        }
        fill(c, "username", user).await;
        n.send(c, Locator::Css("main form button[type=submit]"))
            .await;
        let t = text(c).await;
        assert!(
            t.contains(&format!("{user}@{domain}")) && t.contains(&format!("+49 40 {sn}")),
            "{t}"
        );
        n.follow(
            c,
            Locator::XPath("//main//table//a[contains(@href, '/ui/customers/')]"),
        )
        .await;
    }
    let t = text(c).await;
    assert!(t.contains("Subscribers (3)"), "{t}");
    for (user, sn, _) in people {
        assert!(
            t.contains(&format!("{user}@{domain}")) && t.contains(&format!("+49 40 {sn}")),
            "{t}"
        );
    }
    shot(c, "customer-with-subscribers").await;
    eprintln!(
        "task 'create a customer with its contact and three subscribers with numbers': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    let (_, v) = app
        .get(&format!("/api/subscribers/?customer_id={customer}"))
        .await;
    assert_eq!(v["total_count"], 3, "{v}");
    let (_, ines) = app.get("/api/subscribers/?username=ines").await;
    let ines = &items(&ines, "subscribers")[0];
    assert_eq!(ines["alias_numbers"][0]["sn"], "5550199", "{ines}");
    assert_eq!(ines["display_name"], "ines (Nordwind)");

    // Editing keeps what is not touched: the alias stays, a second one is added in the
    // editor's empty row.
    let id = ines["id"].as_i64().unwrap();
    n.goto(c, &format!("{base}/ui/subscribers/{id}/edit")).await;
    fill_number(c, "f_alias_numbers_1_", "49", "40", "5550198").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let (_, v) = app.get(&format!("/api/subscribers/{id}")).await;
    let aliases: Vec<&str> = v["alias_numbers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["sn"].as_str().unwrap())
        .collect();
    assert_eq!(aliases, ["5550199", "5550198"], "{v}");
    let (_, j) = app
        .get(&format!(
            "/api/journals/?resource=subscribers&resource_id={id}"
        ))
        .await;
    assert_eq!(j["total_count"], 2, "one creation, one change: {j}");
    c.clone().close().await.unwrap();
}

/// The desk's task "import a CSV with a dry run that names a bad line, then apply", in
/// Chromium: a file chosen in the import form, checked first (the bad line named, nothing
/// saved), then saved with the button the check offers; and the list exported as CSV (the
/// import's columns, no SIP passwords).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_imports_a_csv_checked_first() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let file = std::env::temp_dir().join(format!("voxprov-ui-import-{}.csv", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "customer_id,domain,username,password,cc,ac,sn\n\
             {c},{d},olga,Import-pw-1,49,89,4400101\n\
             {c},{d},bad name,Import-pw-2,49,89,4400102\n\
             {c},{d},pavel,Import-pw-3,49,89,4400103\n",
            c = f.customer_id,
            d = f.domain
        ),
    )
    .unwrap();
    let before = app.journal_count().await;

    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;
    n.goto(c, &format!("{base}/ui/subscribers/")).await;
    n.follow(c, Locator::LinkText("Import CSV")).await;
    c.find(Locator::Id("f_file"))
        .await
        .unwrap()
        .send_keys(file.to_str().unwrap())
        .await
        .unwrap();
    n.send(c, Locator::Css("main form button[name=check]"))
        .await;
    let done = c.wait().for_element(Locator::Id("done")).await.unwrap();
    assert_eq!(
        done.text().await.unwrap(),
        "Checked: 2 valid, 1 with errors. Nothing was saved."
    );
    let t = text(c).await;
    assert!(t.contains("line 3: username"), "the bad line named: {t}");
    assert_eq!(app.journal_count().await, before, "a check saves nothing");
    shot(c, "import-checked").await;
    n.send(c, Locator::Id("apply")).await;
    let done = c.wait().for_element(Locator::Id("done")).await.unwrap();
    assert_eq!(done.text().await.unwrap(), "Done: 2 created, 1 failed.");
    shot(c, "import-applied").await;
    eprintln!(
        "task 'import a CSV with a dry run that names a bad line, then apply': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    for user in ["olga", "pavel"] {
        let (_, v) = app.get(&format!("/api/subscribers/?username={user}")).await;
        assert_eq!(v["total_count"], 1, "{user}: {v}");
    }

    // The list exported, as the session's user: the import's columns, no passwords.
    let session: String = c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|k| format!("{}={}", k.name(), k.value()))
        .collect::<Vec<_>>()
        .join("; ");
    let r = reqwest::Client::new()
        .get(app.url("/ui/subscribers/export?username=*a*"))
        .header("cookie", session)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r
        .headers()
        .get("content-disposition")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("subscribers.csv")));
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    assert!(lines.next().unwrap().starts_with("customer_id,"), "{csv}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 2, "the filter applies (olga, pavel): {csv}");
    assert!(csv.contains("olga") && csv.contains("4400103"), "{csv}");
    assert!(!csv.contains("Import-pw"), "no SIP passwords: {csv}");
    let _ = std::fs::remove_file(&file);
    c.clone().close().await.unwrap();
}

/// The desk's task "set a busy forward with a time set", in Chromium: from the subscriber's
/// page to its call forwards, a destination with its ring time under "When busy", Monday to
/// Friday, 8 to 18 o'clock; saved as the API's time windows, shown again as ticked days and
/// hours, and a save without a change writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_sets_a_busy_forward_with_a_time_set() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "rosa", 5550177).await;

    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;
    n.goto(c, &format!("{base}/ui/subscribers/{sub}")).await;
    n.follow(c, Locator::LinkText("Call forwards")).await;
    fill_id(c, "f_cfb_dest_0", "+4312345678").await;
    fill_id(c, "f_cfb_timeout_0", "20").await;
    for day in [2, 3, 4, 5, 6] {
        c.find(Locator::Id(&format!("f_cfb_day_{day}")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }
    fill_id(c, "f_cfb_from", "8").await;
    fill_id(c, "f_cfb_to", "18").await;
    shot(c, "forwards-form").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let t = text(c).await;
    assert!(t.contains("Call forwards saved."), "{t}");
    eprintln!(
        "task 'set a busy forward with a time set': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    let (_, v) = app.get(&format!("/api/callforwards/{sub}")).await;
    let cfb = &v["cfb"];
    assert!(
        cfb["destinations"][0]["destination"]
            .as_str()
            .is_some_and(|d| d.contains("4312345678")),
        "{v}"
    );
    assert_eq!(cfb["destinations"][0]["timeout"], 20, "{v}");
    assert_eq!(cfb["enabled"], true, "{v}");
    let times = cfb["times"].as_array().unwrap();
    assert_eq!(times.len(), 1, "{v}");
    assert_eq!(
        (&times[0]["wday"], &times[0]["hour"]),
        (&json!("2-6"), &json!("8-17")),
        "{v}"
    );
    for other in ["cfu", "cft", "cfna"] {
        assert_eq!(
            v[other]["destinations"],
            json!([]),
            "{other} untouched: {v}"
        );
    }
    // Shown again as it was set.
    let checked = |id: String| async move {
        c.find(Locator::Id(&id))
            .await
            .unwrap()
            .prop("checked")
            .await
            .unwrap()
    };
    assert_eq!(checked("f_cfb_day_2".into()).await.as_deref(), Some("true"));
    assert_eq!(
        checked("f_cfb_day_7".into()).await.as_deref(),
        Some("false")
    );
    assert_eq!(checked("f_cfb_on".into()).await.as_deref(), Some("true"));
    let value = |id: &'static str| async move {
        c.find(Locator::Id(id))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    };
    assert_eq!(value("f_cfb_dest_0").await, "+4312345678");
    assert_eq!(
        (value("f_cfb_from").await, value("f_cfb_to").await),
        ("8".into(), "18".into())
    );
    shot(c, "forwards-saved").await;
    let (_, j) = app.get("/api/journals/?resource=callforwards").await;
    let journalled = j["total_count"].clone();
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    assert!(
        text(c).await.contains("Nothing changed."),
        "{}",
        text(c).await
    );
    let (_, j) = app.get("/api/journals/?resource=callforwards").await;
    assert_eq!(
        j["total_count"], journalled,
        "a save without a change writes nothing"
    );
    // A wrong ring time is answered at its forward.
    fill_id(c, "f_cfb_timeout_0", "soon").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let err = c
        .find(Locator::Id("e_cfb"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(err.contains("soon"), "{err}");
    // The busy forward removed (its days still ticked), an unconditional one typed with spaces.
    fill_id(c, "f_cfb_dest_0", "").await;
    fill_id(c, "f_cfb_timeout_0", "").await;
    fill_id(c, "f_cfu_dest_0", "+43 1 2345679").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    assert!(
        text(c).await.contains("Call forwards saved."),
        "{}",
        text(c).await
    );
    let (_, v) = app.get(&format!("/api/callforwards/{sub}")).await;
    assert_eq!(v["cfb"]["destinations"], json!([]), "{v}");
    assert!(
        v["cfu"]["destinations"][0]["destination"]
            .as_str()
            .is_some_and(|d| d.contains("4312345679")),
        "{v}"
    );
    c.clone().close().await.unwrap();
}

/// The desk's task "add a phone for a subscriber and see its first fetch", in Chromium: from
/// the subscriber's page "Add phone" (customer and first line filled in), the model picked
/// by name, the MAC typed; the boot URL shown once; the phone fetches its configuration and
/// the device's page shows that fetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_adds_a_phone_and_sees_its_first_fetch() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "tomas", 5550188).await;
    let (_, models) = app
        .get("/api/pbxdevicemodels/?vendor=yealink&model=T46U")
        .await;
    let model = items(&models, "pbxdevicemodels")[0]["id"].as_i64().unwrap();

    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;
    n.goto(c, &format!("{base}/ui/subscribers/{sub}")).await;
    n.follow(c, Locator::LinkText("Add phone")).await;
    let selected = |css: String| async move {
        c.find(Locator::Css(&css))
            .await
            .unwrap()
            .prop("selected")
            .await
            .unwrap()
    };
    assert_eq!(
        selected(format!(
            "select#f_customer_id option[value='{}']",
            f.customer_id
        ))
        .await
        .as_deref(),
        Some("true"),
        "the subscriber's customer comes filled in"
    );
    assert_eq!(
        selected(format!(
            "select#f_lines_0_subscriber_id option[value='{sub}']"
        ))
        .await
        .as_deref(),
        Some("true"),
        "and the subscriber as the first line"
    );
    fill(c, "identifier", "80:5E:C0:12:34:56").await;
    choose(c, "model_id", &model.to_string()).await;
    fill(c, "station_name", "Front desk").await;
    shot(c, "device-form").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let once = c
        .find(Locator::Css("main pre"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let once: serde_json::Value =
        serde_json::from_str(&once).unwrap_or_else(|e| panic!("{e}: {once}"));
    let url = once["provisioning_url"]
        .as_str()
        .unwrap_or_else(|| panic!("{once}"))
        .to_string();
    n.follow(c, Locator::LinkText("Continue")).await;
    let device = created_id(c).await;
    let t = text(c).await;
    assert!(t.contains("Device 805ec0123456"), "{t}");
    assert!(t.contains("yealink T46U"), "the model by name: {t}");
    assert!(
        t.contains(&format!("1. tomas@{} (private line)", f.domain)),
        "the line by its subscriber: {t}"
    );
    assert!(!t.contains(&url), "the boot URL is not shown again");

    // The phone's first fetch, then the page again.
    // The boot URL is a directory: the phone asks it for <mac>.cfg.
    let file = format!("{url}805ec0123456.cfg");
    let full = if file.starts_with('/') {
        app.url(&file)
    } else {
        file
    };
    let r = reqwest::Client::new()
        .get(&full)
        .header(
            "user-agent",
            "Yealink SIP-T46U 108.86.0.45 80:5e:c0:12:34:56",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{url}");
    assert!(r.text().await.unwrap().contains("tomas"));
    // Fetches are recorded in the background, a moment later: the desk reloads the page.
    let start = Instant::now();
    loop {
        let (_, v) = app.get(&format!("/api/pbxdevices/{device}")).await;
        if v["fetch_count"].as_i64() == Some(1) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the fetch is not recorded: {v}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    n.goto(c, &format!("{base}/ui/pbxdevices/{device}")).await;
    let fetches = c
        .find(Locator::XPath(
            "//main//h2[normalize-space()='Last fetches']/following-sibling::table[1]",
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        fetches.contains("200") || fetches.contains("ok"),
        "{fetches}"
    );
    assert!(
        fetches.contains("SIP-T46U"),
        "the phone's user agent: {fetches}"
    );
    shot(c, "device-fetched").await;
    eprintln!(
        "task 'add a phone for a subscriber and see its first fetch': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    // A replaced phone: a new first-boot URL, shown once on the page; the old one is dead.
    click(c, Locator::Css("form[action$='/reset_token'] button")).await;
    let t = text(c).await;
    let fresh = t
        .split("shown only now: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no new URL on the page: {t}"))
        .to_string();
    assert_ne!(fresh, url);
    let app = &app;
    let fetch = |u: String| async move {
        let u = if u.starts_with('/') { app.url(&u) } else { u };
        reqwest::Client::new()
            .get(format!("{u}805ec0123456.cfg"))
            .header(
                "user-agent",
                "Yealink SIP-T46U 108.86.0.45 80:5e:c0:12:34:56",
            )
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(fetch(fresh.clone()).await, StatusCode::OK, "{fresh}");
    assert_ne!(
        fetch(url.clone()).await,
        StatusCode::OK,
        "the old URL still works"
    );
    n.goto(c, &format!("{base}/ui/pbxdevices/{device}")).await;
    assert!(
        !text(c).await.contains(&fresh),
        "the new URL is not shown again"
    );
    c.clone().close().await.unwrap();
}

/// The desk's task "create a ring group with two members", in Chromium: from the tenant's
/// page "Add ring group" (the tenant filled in), the kind picked by its meaning, the members
/// typed or picked from the tenant's extensions in order, where an unanswered call goes; the
/// tenant's page then lists the group with its members, and its open hours as a week.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_creates_a_ring_group_with_two_members() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let customer = app
        .create(
            "/api/customers/",
            json!({ "contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id,
                    "type": "pbxaccount", "status": "active" }),
        )
        .await;
    let tenant = app
        .create(
            "/api/pbxtenants/",
            json!({ "customer_id": customer, "name": "acme", "description": "Acme Ltd", "domain": f.domain }),
        )
        .await;
    for ext in ["201", "202"] {
        app.create(
            "/api/pbxextensions/",
            json!({ "tenant_id": tenant, "extension": ext, "type": "unprovisioned" }),
        )
        .await;
    }
    app.create(
        "/api/pbxdaytimers/",
        json!({ "tenant_id": tenant, "dayofweek": "mon", "timespan": "08:30-17:00" }),
    )
    .await;

    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;
    n.goto(c, &format!("{base}/ui/pbxtenants/{tenant}")).await;
    let t = text(c).await;
    assert!(
        t.contains("Tenant acme") && t.contains("Extensions (2)"),
        "{t}"
    );
    assert!(
        t.contains("Monday 08:30-17:00") && t.contains("Tuesday closed"),
        "open hours as a week: {t}"
    );
    n.follow(c, Locator::LinkText("Add ring group")).await;
    let options = c
        .find(Locator::Css("datalist#dl_out"))
        .await
        .unwrap()
        .html(true)
        .await
        .unwrap();
    assert!(
        options.contains("201 (extension)") && options.contains("202 (extension)"),
        "{options}"
    );
    fill(c, "number", "400").await;
    choose(c, "grouptype", "Hunt").await;
    fill_id(c, "f_out_0", "202").await;
    fill_id(c, "f_out_1", "201").await;
    fill(c, "ringdelay", "15").await;
    fill(c, "outcome", "201").await;
    shot(c, "ringgroup-form").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let t = text(c).await;
    assert!(
        t.contains("Ring group 400 (Hunt)") && t.contains("202, 201"),
        "{t}"
    );
    let group = created_id(c).await;
    let (_, v) = app.get(&format!("/api/pbxringgroups/{group}")).await;
    assert_eq!(v["out"], "202 201", "members in the order given: {v}");
    assert_eq!(v["grouptype"], "Hunt");
    n.goto(c, &format!("{base}/ui/pbxtenants/{tenant}")).await;
    let t = text(c).await;
    assert!(
        t.contains("Ring groups (1)") && t.contains("400 Hunt 202, 201 201"),
        "{t}"
    );
    shot(c, "tenant").await;
    eprintln!(
        "task 'create a ring group with two members': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    // Editing keeps the members unless they are changed: a third one added in an empty row.
    n.goto(c, &format!("{base}/ui/pbxringgroups/{group}/edit"))
        .await;
    fill_id(c, "f_out_2", "4930555123").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let (_, v) = app.get(&format!("/api/pbxringgroups/{group}")).await;
    assert_eq!(v["out"], "202 201 4930555123", "{v}\n{}", text(c).await);
    c.clone().close().await.unwrap();
}

/// The desk's task "create a trunk and an outbound route and see the trunk registered", in
/// Chromium against a real Kamailio (the shipped configuration, on SQLite) and a carrier's
/// registrar played by sipp on 127.0.0.6 that challenges the REGISTER and accepts only the
/// trunk's credentials. The carrier, its trunk and its route are made through the forms; the
/// trunk's page is reloaded until it shows the registration Kamailio reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_creates_a_trunk_and_a_route_and_sees_it_registered() {
    use common::kamailio::{Kamailio, FAST_TIMERS};
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let (_db, k, kam) = Kamailio::loaded_with(&app, FAST_TIMERS).await;
    let contract = app.contract("sippeering").await;
    let port = common::kamailio::free_port();
    let registrar = k.carrier(
        "registrar_401.xml",
        "127.0.0.6",
        port,
        "R1",
        &[
            "-set",
            "user",
            "acme-trunk",
            "-set",
            "password",
            "Acme-pass-1",
        ],
    );

    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;
    n.follow(c, Locator::LinkText("Trunks")).await;
    n.follow(c, Locator::LinkText("Carriers")).await;
    n.follow(c, Locator::LinkText("New")).await;
    fill(c, "name", "Acme Telecom").await;
    choose(c, "contract_id", &contract.to_string()).await;
    fill(c, "priority", "1").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let t = text(c).await;
    assert!(t.contains("Carrier Acme Telecom"), "{t}");
    let carrier = created_id(c).await;

    // A trunk with three mistakes first: every one named at its field, once.
    n.follow(c, Locator::LinkText("Add trunk")).await;
    fill(c, "name", "").await;
    fill(c, "ip", "not an address").await;
    fill(c, "port", "70000").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    for field in ["name", "ip", "port"] {
        let errs = c
            .find_all(Locator::Css(&format!("#e_{field}")))
            .await
            .unwrap();
        assert_eq!(errs.len(), 1, "one error at {field}: {}", text(c).await);
    }
    let t = text(c).await;
    assert_eq!(t.matches("must be between 1 and 65535").count(), 1, "{t}");
    fill(c, "name", "acme-1").await;
    fill(c, "ip", "127.0.0.6").await;
    fill(c, "port", &port.to_string()).await;
    choose(c, "transport", "1").await;
    c.find(Locator::Id("f_peer_auth_register"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    fill(c, "peer_auth_user", "acme-trunk").await;
    fill(c, "peer_auth_pass", "Acme-pass-1").await;
    fill(c, "peer_auth_realm", "carrier.test").await;
    shot(c, "trunk-form").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let t = text(c).await;
    assert!(
        t.contains("Trunk acme-1") && t.contains("Acme Telecom"),
        "{t}"
    );
    assert!(!t.contains("Acme-pass-1"), "the password is masked: {t}");
    let trunk = created_id(c).await;

    // The route, from the carrier's page (the trunk's page links to its carrier).
    n.follow(c, Locator::LinkText(&format!("Acme Telecom ({carrier})")))
        .await;
    n.follow(c, Locator::LinkText("Add outbound route")).await;
    fill(c, "callee_prefix", "49").await;
    fill(c, "description", "Germany via Acme").await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let route = created_id(c).await;
    let (_, v) = app.get(&format!("/api/peeringrules/{route}")).await;
    assert_eq!(v["group_id"], carrier, "{v}");
    assert_eq!(v["callee_prefix"], "49", "{v}");

    // Back to the carrier: its trunk and its route listed; then the trunk until registered.
    n.follow(c, Locator::LinkText(&format!("Acme Telecom ({carrier})")))
        .await;
    let t = text(c).await;
    assert!(
        t.contains("Trunks (1)") && t.contains("Outbound routes (1)") && t.contains("starting 49"),
        "{t}"
    );
    shot(c, "carrier").await;
    n.follow(c, Locator::LinkText("acme-1")).await;
    let start = Instant::now();
    loop {
        let t = text(c).await;
        if t.contains(&format!("registered on SIP server {kam}")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(45),
            "the trunk's page never showed it registered: {t}\n{}",
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        n.goto(c, &format!("{base}/ui/peeringservers/{trunk}"))
            .await;
    }
    shot(c, "trunk").await;
    let (_, v) = app.get(&format!("/api/peeringservers/{trunk}")).await;
    assert_eq!(v["registration"][0]["state"], "registered", "{v}");
    let (_, log) = registrar.stop();
    assert!(log.contains("auth ok acme-trunk: registered"), "{log}");
    // The list of trunks says so too.
    n.goto(c, &format!("{base}/ui/peeringservers/")).await;
    let t = text(c).await;
    assert!(
        t.contains("acme-1") && t.contains("registered on SIP server"),
        "{t}"
    );
    eprintln!(
        "task 'create a trunk and an outbound route and see the trunk registered': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    // Yes/no fields are checkboxes: unticking "Enabled" saves a no, and only that.
    n.goto(c, &format!("{base}/ui/peeringservers/{trunk}/edit"))
        .await;
    let enabled = c.find(Locator::Id("f_enabled")).await.unwrap();
    assert_eq!(
        enabled.prop("checked").await.unwrap().as_deref(),
        Some("true")
    );
    enabled.click().await.unwrap();
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let (_, v) = app.get(&format!("/api/peeringservers/{trunk}")).await;
    assert_eq!(v["enabled"], false, "{v}\n{}", text(c).await);
    assert_eq!(v["peer_auth_register"], true, "{v}");
    // A yes/no whose name looks like a secret's (store_password) is a checkbox like any
    // other: saving the SIP server's form untouched changes nothing.
    let (s, v) = app
        .patch(
            &format!("/api/sipservers/{kam}"),
            json!([{"op": "replace", "path": "/store_password", "value": true}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    n.goto(c, &format!("{base}/ui/sipservers/{kam}/edit")).await;
    n.send(c, Locator::Css("main form button[type=submit]"))
        .await;
    let (_, v) = app.get(&format!("/api/sipservers/{kam}")).await;
    assert_eq!(v["store_password"], true, "{v}\n{}", text(c).await);
    c.clone().close().await.unwrap();
}

/// The desk's task "find yesterday's failed calls of a subscriber and hand them on as a
/// spreadsheet": real calls through a real Kamailio (one answered, two to a phone that is
/// gone), collected into call records, found on the Calls page by outcome and caller, and
/// downloaded as CSV with the same filters.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_finds_failed_calls_and_downloads_them() {
    use common::kamailio::Kamailio;
    let app = TestApp::spawn_with(
        Backend::Sqlite,
        &[("VOXPROV_CDRS_COLLECT_INTERVAL_MS", "300")],
    )
    .await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let (db, k, kam) = Kamailio::loaded_from(&app).await;
    let d = f.domain.clone();
    for (user, sn) in [("alice", 7001), ("bob", 7002)] {
        app.create(
            "/api/subscribers/",
            json!({ "customer_id": f.customer_id, "domain": d, "username": user,
                    "password": format!("Calls-pw-{}", user.len()), "primary_number": { "cc": 49, "ac": 30, "sn": sn } }),
        )
        .await;
    }
    app.wait_synced(kam).await;
    // bob answers once; then his phone is gone and two more calls find no one.
    let (mut phone, port) = k.callee("bob", &d, "Calls-pw-3");
    let start = Instant::now();
    while !k
        .rpc("ul.lookup", json!(["location", format!("bob@{d}")]))
        .await
        .to_string()
        .contains(&format!(":{port}"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "bob did not register: {}",
            k.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = k.sub_call_hold("alice", "Calls-pw-5", &d, "bob", 1500);
    assert!(r.ok, "answered call: {:?}\n{}", r.responses, k.log());
    let _ = phone.wait();
    k.rpc("ul.rm", json!(["location", format!("bob@{d}")]))
        .await;
    for _ in 0..2 {
        let r = k.sub_call("alice", "Calls-pw-5", &d, "bob", 480);
        assert!(r.ok, "call to nobody: {:?}\n{}", r.responses, k.log());
    }
    let start = Instant::now();
    while app.get("/api/cdrs/").await.1["total_count"] != 3 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{}",
            app.get("/api/cdrs/").await.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let dr = chromium().await;
    let c = &dr.client;
    let mut n = Tally::default();
    n.login(c, &base).await;
    // Nobody is registered now, and the SIP server says so: "no", not "unknown".
    c.goto(&format!("{base}/ui/subscribers/?username=alice"))
        .await
        .unwrap();
    let row = c
        .find(Locator::Css("main tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(row.split_whitespace().last(), Some("no"), "{row}");
    n.follow(c, Locator::LinkText("Calls")).await;
    let t = text(c).await;
    assert!(t.contains("3 in all"), "{t}");
    assert_eq!(t.matches("not reachable (480)").count(), 2, "{t}");
    assert!(
        t.contains("answered") && t.contains(&format!("alice@{d}")),
        "{t}"
    );
    shot(c, "calls").await;
    // The newest first: the row above the answered call is a failed one.
    let first = c
        .find(Locator::Css("main tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(first.contains("not reachable"), "{first}");
    // Filter: not reachable, by alice, today (from and until the same day: the whole day).
    c.find(Locator::Css("details.filters summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    choose(c, "status", "offline").await;
    fill(c, "caller", &format!("alice@{d}")).await;
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    // A date input takes the day as the browser's locale writes it; set it as the form sends it.
    c.execute(
        "document.getElementById('f_start_ge').value = arguments[0];\
         document.getElementById('f_start_le').value = arguments[0];",
        vec![json!(today)],
    )
    .await
    .unwrap();
    n.send(
        c,
        Locator::Css("form[aria-label=Filter] button[type=submit]"),
    )
    .await;
    let t = text(c).await;
    let rows = c
        .find(Locator::Css("main tbody"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(t.contains("2 in all") && !rows.contains("answered"), "{t}");
    shot(c, "calls-filtered").await;
    // The download carries the same filters: two rows of CSV, both 480s.
    let href = c
        .find(Locator::Css("a[href^=\"/ui/cdrs/export\"]"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    let cookie = c
        .get_all_cookies()
        .await
        .unwrap()
        .iter()
        .map(|k| format!("{}={}", k.name(), k.value()))
        .collect::<Vec<_>>()
        .join("; ");
    n.loads += 1;
    let r = reqwest::Client::new()
        .get(format!("{base}{href}"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("cdrs.csv"));
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two calls: {csv}");
    assert!(lines[0].starts_with("id,start_time,"), "{csv}");
    assert!(
        lines[1..].iter().all(|l| l.contains(",offline,480,")),
        "{csv}"
    );
    // A call's own page, in words.
    n.follow(c, Locator::Css("main tbody tr td a")).await;
    let t = text(c).await;
    assert!(
        t.contains(&format!("Call from alice@{d} to bob")) && t.contains("SIP code"),
        "{t}"
    );
    shot(c, "p-call-desktop").await;
    // At phone width: the list keeps when, who and whom; nothing to scroll sideways.
    c.set_window_size(390, 844).await.unwrap();
    fits_the_screen(c, "a call record").await;
    shot(c, "p-call-phone").await;
    c.goto(&format!("{base}/ui/cdrs/")).await.unwrap();
    fits_the_screen(c, "the calls list").await;
    shot(c, "p-calls-phone").await;
    c.set_window_size(1280, 1000).await.unwrap();
    c.goto(&format!("{base}/ui/cdrs/")).await.unwrap();
    shot(c, "p-calls-desktop").await;
    eprintln!(
        "task 'find failed calls and download them': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    // Someone deleted bob from Kamailio's table by hand: Check names it, Repair puts it back.
    db.exec("DELETE FROM subscriber WHERE username = 'bob'");
    n.goto(c, &format!("{base}/ui/sipservers/{kam}")).await;
    n.send(
        c,
        Locator::XPath("//main//button[normalize-space()='Check']"),
    )
    .await;
    let t = text(c).await;
    assert!(
        t.contains("1 difference(s) found, not repaired")
            && t.contains(&format!("bob@{d} (missing there)")),
        "{t}"
    );
    n.send(
        c,
        Locator::XPath("//main//button[normalize-space()='Repair']"),
    )
    .await;
    let t = text(c).await;
    assert!(t.contains("Repaired 1 difference(s)"), "{t}");
    assert_eq!(
        db.count("SELECT COUNT(*) FROM subscriber WHERE username = 'bob'"),
        1
    );
    // Kamailio gone: whether alice is registered is not known, and the list says so.
    drop(k);
    c.goto(&format!("{base}/ui/subscribers/?username=alice"))
        .await
        .unwrap();
    let row = c
        .find(Locator::Css("main tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(row.split_whitespace().last(), Some("unknown"), "{row}");
    c.clone().close().await.unwrap();
}

/// A subscriber's preferences as a form built from the catalog: groups that open, a yes/no,
/// a number, a list one per line; three wrong values named at their fields with nothing
/// saved, then saved; a value emptied is no longer set (the customer's applies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desk_sets_preferences_from_their_definitions() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "prefs", 5550123).await;
    let d = chromium().await;
    let c = &d.client;
    let mut n = Tally::default();
    n.login(c, &base).await;
    n.goto(c, &format!("{base}/ui/subscribers/{sub}")).await;
    n.follow(c, Locator::LinkText("Preferences")).await;
    let t = text(c).await;
    assert!(
        t.contains("0 set here") && t.contains("Call Blockings"),
        "{t}"
    );
    for group in [
        "Call Blockings",
        "Call Forwards",
        "Access Restrictions",
        "Internals",
    ] {
        c.find(Locator::XPath(&format!(
            "//details[summary[normalize-space()='{group}']]/summary"
        )))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    }
    choose(c, "block_in_clir", "true").await;
    fill(c, "block_in_list", "+4366412345\n431*").await;
    fill(c, "ringtimeout", "45").await;
    fill(c, "concurrent_max", "lots").await;
    fill(c, "allowed_ips", "192.0.2.0/24\nnot-an-address").await;
    fill(c, "language", "not a language").await;
    shot(c, "p-prefs-desktop").await;
    n.send(
        c,
        Locator::Css("main form[aria-label=Preferences] button[type=submit]"),
    )
    .await;
    let t = text(c).await;
    // The form's own check (a whole number) first; the API's come once it reads.
    assert!(t.contains("One preference needs a change"), "{t}");
    assert_eq!(
        c.find_all(Locator::Css("#e_concurrent_max"))
            .await
            .unwrap()
            .len(),
        1
    );
    let (_, p) = app.get(&format!("/api/subscriberpreferences/{sub}")).await;
    assert!(p["ringtimeout"].is_null(), "nothing saved: {p}");
    fill(c, "concurrent_max", "2").await;
    n.send(
        c,
        Locator::Css("main form[aria-label=Preferences] button[type=submit]"),
    )
    .await;
    let t = text(c).await;
    for field in ["allowed_ips", "language"] {
        assert_eq!(
            c.find_all(Locator::Css(&format!("#e_{field}")))
                .await
                .unwrap()
                .len(),
            1,
            "an error at {field}: {t}"
        );
    }
    let (_, p) = app.get(&format!("/api/subscriberpreferences/{sub}")).await;
    assert!(p["ringtimeout"].is_null(), "nothing saved: {p}");
    fill(c, "allowed_ips", "192.0.2.0/24").await;
    fill(c, "language", "de-AT").await;
    n.send(
        c,
        Locator::Css("main form[aria-label=Preferences] button[type=submit]"),
    )
    .await;
    let t = text(c).await;
    assert!(
        t.contains("Preferences saved.") && t.contains("6 set here"),
        "{t}"
    );
    let (_, p) = app.get(&format!("/api/subscriberpreferences/{sub}")).await;
    assert_eq!(p["ringtimeout"], 45, "{p}");
    assert_eq!(p["block_in_clir"], true, "{p}");
    assert_eq!(p["block_in_list"], json!(["4366412345", "431*"]), "{p}");
    assert_eq!(p["concurrent_max"], 2, "{p}");
    assert_eq!(p["allowed_ips"], json!(["192.0.2.0/24"]), "{p}");
    assert_eq!(p["language"], "de-AT", "{p}");
    eprintln!(
        "task 'set a subscriber's preferences': {} page loads, {} form submissions",
        n.loads, n.posts
    );
    // Emptied: no longer set here; the rest untouched.
    fill(c, "ringtimeout", "").await;
    n.send(
        c,
        Locator::Css("main form[aria-label=Preferences] button[type=submit]"),
    )
    .await;
    let (_, p) = app.get(&format!("/api/subscriberpreferences/{sub}")).await;
    assert!(p["ringtimeout"].is_null(), "{p}");
    assert_eq!(p["concurrent_max"], 2, "{p}");
    c.set_window_size(390, 844).await.unwrap();
    fits_the_screen(c, "the preferences page").await;
    shot(c, "p-prefs-phone").await;
    c.clone().close().await.unwrap();
}

/// With more customers than a list can show, the subscriber form's customer is a text box
/// that suggests them by name as the desk types (the browser's own suggestions, no script);
/// the one picked is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_among_hundreds_is_typed_ahead() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let body: Vec<serde_json::Value> = (0..210)
        .map(|n| {
            json!({ "contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id,
                    "type": "sipaccount", "external_id": format!("many-{n}") })
        })
        .collect();
    let (s, v) = app
        .post("/api/customers/", serde_json::Value::Array(body))
        .await;
    assert!(s.is_success(), "{v}");
    let (_, v) = app.get("/api/customers/?external_id=many-205").await;
    let pick = items(&v, "customers")[0]["id"].as_i64().unwrap();
    let d = chromium().await;
    let c = &d.client;
    login(c, &base, "administrator", ADMIN_PASS).await;
    c.goto(&format!("{base}/ui/subscribers/new")).await.unwrap();
    let input = c.find(Locator::Id("f_customer_id")).await.unwrap();
    assert_eq!(input.tag_name().await.unwrap(), "input");
    assert_eq!(
        input.attr("list").await.unwrap().as_deref(),
        Some("dl_customer_id")
    );
    let options = c
        .find_all(Locator::Css("datalist#dl_customer_id option"))
        .await
        .unwrap();
    assert!(options.len() > 210, "{} suggestions", options.len());
    let labels = c
        .find(Locator::Css("datalist#dl_customer_id"))
        .await
        .unwrap()
        .html(true)
        .await
        .unwrap();
    assert!(
        labels.contains(&format!("(customer {pick}), many-205")),
        "suggested by name"
    );
    fill(c, "customer_id", &pick.to_string()).await;
    choose(c, "domain", &f.domain).await;
    fill(c, "username", "typed").await;
    fill(c, "password", "Ahead-pw-991").await;
    submit(c).await;
    let sub = created_id(c).await;
    let (_, v) = app.get(&format!("/api/subscribers/{sub}")).await;
    assert_eq!(v["customer_id"], pick, "{v}");
    c.clone().close().await.unwrap();
}

/// Every form shows all the problems of a submission at once, each once, at its field: a
/// contact, a carrier, an outbound route and a ring group, each sent with three wrong fields
/// (the subscriber's and the trunk's forms are tried in their tasks above).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_form_names_three_wrong_fields_at_once() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let contract = app.contract("sippeering").await;
    let carrier = app
        .create(
            "/api/peeringgroups/",
            json!({ "contract_id": contract, "name": "three-at-once" }),
        )
        .await;
    let tenant = app.pbx_tenant(&f, "three").await;
    app.create(
        "/api/pbxextensions/",
        json!({ "tenant_id": tenant, "extension": "201", "type": "unprovisioned" }),
    )
    .await;
    let long = "x".repeat(300);
    let forms: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/ui/customercontacts/new".into(),
            vec![
                ("firstname", long.as_str()),
                ("city", long.as_str()),
                ("email", "nobody"),
            ],
        ),
        (
            "/ui/peeringgroups/new".into(),
            vec![
                ("name", ""),
                ("priority", "12"),
                ("description", long.as_str()),
            ],
        ),
        (
            format!("/ui/peeringrules/new?group_id={carrier}"),
            vec![
                ("callee_prefix", "4x"),
                ("callee_pattern", "("),
                ("caller_pattern", "["),
            ],
        ),
        (
            format!("/ui/pbxringgroups/new?tenant_id={tenant}"),
            vec![
                ("number", "1"),
                ("ringdelay", "9999"),
                ("outcome", "no-such-place"),
            ],
        ),
    ];
    let d = chromium().await;
    let c = &d.client;
    login(c, &base, "administrator", ADMIN_PASS).await;
    let before = app.journal_count().await;
    for (path, wrong) in &forms {
        c.goto(&format!("{base}{path}")).await.unwrap();
        if path.contains("peeringgroups") {
            choose(c, "contract_id", &contract.to_string()).await;
        }
        if path.contains("pbxringgroups") {
            fill_id(c, "f_out_0", "201").await;
        }
        for (field, value) in wrong {
            fill(c, field, value).await;
        }
        submit(c).await;
        let page = text(c).await;
        for (field, _) in wrong {
            let errs = c
                .find_all(Locator::Css(&format!("#e_{field}")))
                .await
                .unwrap();
            assert_eq!(errs.len(), 1, "{path}: one error at {field}: {page}");
            let said = errs[0].text().await.unwrap();
            assert!(!said.is_empty(), "{path}: {field}");
        }
        // The top of the page counts them and leaves the saying to the fields.
        assert!(
            page.contains("3 fields need a change: see below."),
            "{path}: {page}"
        );
        assert_eq!(
            c.find_all(Locator::Css(".field-error"))
                .await
                .unwrap()
                .len(),
            wrong.len(),
            "{path}: only the wrong fields: {page}"
        );
    }
    assert_eq!(app.journal_count().await, before, "nothing was saved");
    c.clone().close().await.unwrap();
}

/// Every purpose-built page, filled with data, at desktop and at phone width: screenshots in
/// artifacts/ui/ (looked at by people; see the note of the change), and at phone width no
/// page is wider than the screen (nothing to scroll sideways).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purpose_built_pages_fit_a_phone() {
    let app = TestApp::spawn_with(Backend::Sqlite, &[]).await;
    let base = app.base.clone();
    let f = app.fixture().await;
    let sub = app.subscriber(&f, "wanda", 5550199).await;
    app.patch(
        &format!("/api/subscribers/{sub}"),
        json!([{"op": "replace", "path": "/display_name", "value": "Wanda Wilkinson-Ferreira"}]),
    )
    .await;
    let (_, models) = app
        .get("/api/pbxdevicemodels/?vendor=yealink&model=T46U")
        .await;
    let model = items(&models, "pbxdevicemodels")[0]["id"].as_i64().unwrap();
    let device = app
        .create(
            "/api/pbxdevices/",
            json!({"identifier": "805ec0aabbcc", "customer_id": f.customer_id, "model_id": model,
                   "station_name": "Reception", "lines": [{"subscriber_id": sub, "type": "private"}]}),
        )
        .await;
    app.create(
        "/api/hooks/",
        json!({"name": "crm", "events": ["subscriber.created", "subscriber.updated"], "url": "https://crm.example.com/hook"}),
    )
    .await;
    let contract = app.contract("sippeering").await;
    let carrier = app
        .create("/api/peeringgroups/", json!({"contract_id": contract, "name": "carrier-a", "priority": 1, "description": "Main carrier"}))
        .await;
    let trunk = app
        .create(
            "/api/peeringservers/",
            json!({"group_id": carrier, "name": "gw1", "ip": "127.0.0.21", "port": 5060, "transport": 1, "weight": 10}),
        )
        .await;
    app.create(
        "/api/peeringrules/",
        json!({"group_id": carrier, "callee_prefix": "0043", "description": "Austria"}),
    )
    .await;
    let pbx = app
        .create(
            "/api/customers/",
            json!({"contact_id": f.contact_id, "billing_profile_id": f.billing_profile_id, "type": "pbxaccount", "status": "active"}),
        )
        .await;
    let tenant = app
        .create("/api/pbxtenants/", json!({"customer_id": pbx, "name": "acme", "description": "Acme Ltd", "domain": f.domain}))
        .await;
    for ext in ["201", "202"] {
        app.create(
            "/api/pbxextensions/",
            json!({"tenant_id": tenant, "extension": ext, "type": "unprovisioned"}),
        )
        .await;
    }
    let group = app
        .create("/api/pbxringgroups/", json!({"tenant_id": tenant, "number": "400", "grouptype": "Ring", "out": "201 202", "outcome": "201"}))
        .await;

    let d = chromium().await;
    let c = &d.client;
    login(c, &base, "administrator", ADMIN_PASS).await;
    let pages = [
        ("/ui/".to_string(), "p-dashboard"),
        ("/ui/subscribers/".into(), "p-subscribers"),
        (format!("/ui/subscribers/{sub}"), "p-subscriber"),
        ("/ui/subscribers/new".into(), "p-subscriber-new"),
        (format!("/ui/subscribers/{sub}/forwards"), "p-forwards"),
        ("/ui/customers/".into(), "p-customers"),
        (format!("/ui/customers/{}", f.customer_id), "p-customer"),
        ("/ui/pbxdevices/".into(), "p-devices"),
        (format!("/ui/pbxdevices/{device}"), "p-device"),
        (format!("/ui/pbxdevices/{device}/edit"), "p-device-edit"),
        ("/ui/hooks/".into(), "p-hooks"),
        ("/ui/sipservers/".into(), "p-sipservers"),
        ("/ui/peeringgroups/".into(), "p-carriers"),
        ("/ui/peeringservers/".into(), "p-trunks"),
        (format!("/ui/peeringservers/{trunk}"), "p-trunk"),
        ("/ui/peeringrules/".into(), "p-routes"),
        (format!("/ui/peeringgroups/{carrier}"), "p-carrier"),
        (
            format!("/ui/peeringservers/new?group_id={carrier}"),
            "p-trunk-new",
        ),
        ("/ui/cdrs/".into(), "p-calls-empty"),
        (
            format!("/ui/customers/{}/preferences", f.customer_id),
            "p-customer-prefs",
        ),
        (format!("/ui/pbxtenants/{tenant}"), "p-tenant"),
        (
            format!("/ui/pbxringgroups/{group}/edit"),
            "p-ringgroup-edit",
        ),
        ("/ui/subscribers/import".into(), "p-import"),
        ("/ui/search?q=5550199".into(), "p-search"),
    ];
    for (width, height, suffix) in [(1280, 1000, "desktop"), (390, 844, "phone")] {
        c.set_window_size(width, height).await.unwrap();
        for (path, name) in &pages {
            c.goto(&format!("{base}{path}")).await.unwrap();
            let t = text(c).await;
            assert!(!t.contains("could not be rendered"), "{path}: {t}");
            shot(c, &format!("{name}-{suffix}")).await;
            if suffix == "phone" {
                fits_the_screen(c, path).await;
            }
        }
    }
    // What the lists say, in words.
    c.set_window_size(1280, 1000).await.unwrap();
    c.goto(&format!("{base}/ui/peeringservers/")).await.unwrap();
    let row = c
        .find(Locator::Css("main table tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("gw1")
            && row.contains("not registering")
            && row.contains("127.0.0.21:5060 UDP")
            && row.contains("carrier-a"),
        "{row}"
    );
    c.goto(&format!("{base}/ui/peeringrules/")).await.unwrap();
    let row = c
        .find(Locator::Css("main table tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        row.contains("starting 0043") && row.contains("carrier-a"),
        "{row}"
    );
    c.clone().close().await.unwrap();
}

/// Asserts the page needs no sideways scrolling at the window's width.
async fn fits_the_screen(c: &Client, what: &str) {
    let fits = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    let (wide, screen) = (fits[0].as_i64().unwrap(), fits[1].as_i64().unwrap());
    assert!(
        wide <= screen + 1,
        "{what} is {wide} px wide on a {screen} px screen"
    );
}

fn cookies(r: &reqwest::Response) -> String {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A page's form token.
fn csrf_of(page: &str) -> String {
    page.split("name=\"_csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string()
}

/// The login page: its cookie and its form token.
async fn login_form(client: &reqwest::Client, app: &TestApp) -> (String, String) {
    let r = client.get(app.url("/ui/login")).send().await.unwrap();
    let cookie = cookies(&r);
    (cookie, csrf_of(&r.text().await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_post_without_its_token_is_refused() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let (login_cookie, csrf) = login_form(&client, &app).await;
    // The login form itself needs its token.
    let r = client
        .post(app.url("/ui/login"))
        .header("cookie", &login_cookie)
        .form(&[("login", "administrator"), ("password", ADMIN_PASS)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = client
        .post(app.url("/ui/login"))
        .header("cookie", &login_cookie)
        .form(&[
            ("_csrf", csrf.as_str()),
            ("login", "administrator"),
            ("password", ADMIN_PASS),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let session = cookies(&r)
        .split("; ")
        .find(|c| c.starts_with("vxs="))
        .unwrap()
        .to_string();
    let post = |form: Vec<(&'static str, &'static str)>| {
        client
            .post(app.url("/ui/domains/new"))
            .header("cookie", session.clone())
            .form(&form)
            .send()
    };
    let r = post(vec![("domain", "csrf.example"), ("reseller_id", "1")])
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let r = post(vec![
        ("_csrf", "forged-token-value-000000000000"),
        ("domain", "csrf.example"),
        ("reseller_id", "1"),
    ])
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let (_, v) = app.get("/api/domains/").await;
    assert_eq!(v["total_count"], 0, "nothing was created");
    // With the session's own token it goes through (the refusals above were the token's).
    let page = client
        .get(app.url("/ui/domains/new"))
        .header("cookie", session.clone())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let token = csrf_of(&page);
    let r = client
        .post(app.url("/ui/domains/new"))
        .header("cookie", session.clone())
        .form(&[
            ("_csrf", token.as_str()),
            ("domain", "csrf.example"),
            ("reseller_id", "1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // A session follows its admin: once the admin is deactivated, the next page is the login.
    let other = app
        .create(
            "/api/admins/",
            json!({"login": "ops2", "password": "ops2-pass-123", "role": "admin"}),
        )
        .await;
    let (lc, t2) = login_form(&client, &app).await;
    let r = client
        .post(app.url("/ui/login"))
        .header("cookie", &lc)
        .form(&[
            ("_csrf", t2.as_str()),
            ("login", "ops2"),
            ("password", "ops2-pass-123"),
        ])
        .send()
        .await
        .unwrap();
    let s2 = cookies(&r)
        .split("; ")
        .find(|c| c.starts_with("vxs="))
        .unwrap()
        .to_string();
    let r = client
        .get(app.url("/ui/"))
        .header("cookie", &s2)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let (s, v) = app
        .patch(
            &format!("/api/admins/{other}"),
            json!([{"op": "replace", "path": "/is_active", "value": false}]),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = client
        .get(app.url("/ui/"))
        .header("cookie", &s2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SEE_OTHER,
        "a deactivated admin's session ends"
    );

    // Pages without a session go to the login page.
    let r = client.get(app.url("/ui/customers/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
}
