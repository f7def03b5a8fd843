//! The web UI under `/ui/`: server-rendered pages (auto-escaping minijinja templates, no
//! JavaScript) for people. It holds no rules of its own: every read and write is a request
//! to the API, dispatched inside the server with the session's admin as the actor, so the
//! validation, authorization, journal, hooks and SIP server delivery are the API's own.
//!
//! Sessions live in memory (a node restart logs everyone out); the cookie is HttpOnly and
//! SameSite=Strict, Secure when the request came over HTTPS; every form carries a CSRF
//! token bound to the session, and a POST without it is refused.

// The "error" of a page helper is the finished answer (a redirect to the login page, a 403):
// it is returned at once, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::{
    body::Body,
    extract::{ConnectInfo, Path, RawQuery, State},
    http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
    Form, Router,
};
use minijinja::Environment;
use serde_json::{json, Map, Value};
use tower::ServiceExt;

use crate::http::{AppState, SessionActor};
use crate::model::Actor;

const SESSION_COOKIE: &str = "vxs";
const LOGIN_COOKIE: &str = "vxl";
/// Idle time after which a session ends, and its longest life however busy.
const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
const SESSION_MAX: Duration = Duration::from_secs(24 * 3600);

struct Session {
    actor: Actor,
    csrf: String,
    seen: Instant,
    born: Instant,
    /// The admins' generation the actor was read at: when an admin changes, it is read again.
    generation: u64,
}

#[derive(Default)]
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    fn get(&self, id: &str) -> Option<(Actor, String, u64)> {
        let mut m = self.map.lock().expect("sessions");
        let s = m.get_mut(id)?;
        if s.seen.elapsed() > SESSION_TTL || s.born.elapsed() > SESSION_MAX {
            m.remove(id);
            return None;
        }
        s.seen = Instant::now();
        Some((s.actor.clone(), s.csrf.clone(), s.generation))
    }
    fn refresh(&self, id: &str, actor: Actor, generation: u64) {
        if let Some(s) = self.map.lock().expect("sessions").get_mut(id) {
            s.actor = actor;
            s.generation = generation;
        }
    }
    fn create(&self, actor: Actor, generation: u64) -> String {
        let id = crate::crypto::random_token(32);
        let mut m = self.map.lock().expect("sessions");
        m.retain(|_, s| s.seen.elapsed() < SESSION_TTL);
        m.insert(
            id.clone(),
            Session {
                actor,
                csrf: crate::crypto::random_token(24),
                seen: Instant::now(),
                born: Instant::now(),
                generation,
            },
        );
        id
    }
    fn end(&self, id: &str) {
        self.map.lock().expect("sessions").remove(id);
    }
}

fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, src) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("login.html", include_str!("templates/login.html")),
            ("dashboard.html", include_str!("templates/dashboard.html")),
            ("list.html", include_str!("templates/list.html")),
            ("item.html", include_str!("templates/item.html")),
            ("form.html", include_str!("templates/form.html")),
            ("search.html", include_str!("templates/search.html")),
            ("page.html", include_str!("templates/page.html")),
            ("journal.html", include_str!("templates/journal.html")),
            ("import.html", include_str!("templates/import.html")),
            ("progress.html", include_str!("templates/progress.html")),
            ("confirm.html", include_str!("templates/confirm.html")),
            ("change.html", include_str!("templates/change.html")),
        ] {
            env.add_template(name, src).expect("UI templates compile");
        }
        env
    })
}

fn page(name: &str, ctx: Value) -> Response {
    match templates()
        .get_template(name)
        .and_then(|t| t.render(minijinja::Value::from_serialize(&ctx)))
    {
        Ok(html) => {
            let mut r = Html(html).into_response();
            let h = r.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert("x-frame-options", HeaderValue::from_static("DENY"));
            h.insert(
                "content-security-policy",
                HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'"),
            );
            r
        }
        Err(e) => {
            tracing::error!("UI template {name}: {e:#}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response()
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// `always_secure`: the `ui_secure_cookies` setting (HTTPS in front whether or not the proxy
/// says so).
fn set_cookie(
    resp: &mut Response,
    headers: &HeaderMap,
    always_secure: bool,
    name: &str,
    value: &str,
    max_age: i64,
) {
    let v = format!(
        "{name}={value}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if always_secure || secure(headers) {
            "; Secure"
        } else {
            ""
        }
    );
    if let Ok(v) = HeaderValue::from_str(&v) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// The logged-in user of a page request, or a redirect to the login page.
struct User {
    actor: Actor,
    csrf: String,
}

async fn user(app: &AppState, headers: &HeaderMap) -> Result<User, Response> {
    let login = || Redirect::to("/ui/login").into_response();
    let id = cookie(headers, SESSION_COOKIE).ok_or_else(login)?;
    let (mut actor, csrf, generation) = app.sessions.get(&id).ok_or_else(login)?;
    let now = app.auth.generation();
    if generation != now {
        // An admin was changed: this one may be deactivated, demoted or made read-only.
        match current_admin(app, &actor).await {
            Some(a) => {
                actor = a;
                app.sessions.refresh(&id, actor.clone(), now);
            }
            None => {
                app.sessions.end(&id);
                return Err(login());
            }
        }
    }
    Ok(User { actor, csrf })
}

/// The admin as the database has it now; `None` when gone or inactive.
async fn current_admin(app: &AppState, a: &Actor) -> Option<Actor> {
    use sqlx::Row;
    let mut c = app.store.read().await.ok()?;
    let row = sqlx::query(
        "SELECT role, reseller_id, read_only FROM admins WHERE id = $1 AND is_active = 1",
    )
    .bind(a.id?)
    .fetch_optional(&mut *c)
    .await
    .ok()??;
    let mut n = a.clone();
    n.role = crate::model::Role::parse("role", &row.try_get::<String, _>(0).ok()?).ok()?;
    n.reseller_id = row.try_get(1).ok()?;
    n.read_only = row.try_get::<i64, _>(2).ok()? != 0;
    Some(n)
}

fn user_ctx(u: &User) -> Value {
    json!({"name": u.actor.name, "admin": u.actor.is_admin(), "read_only": u.actor.read_only})
}

fn ct_eq(a: &str, b: &str) -> bool {
    crate::crypto::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// A form post must carry the session's token (and come from this origin, when the browser
/// says where it came from).
fn check_csrf(
    u: &User,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(), Response> {
    let token_ok = form.get("_csrf").is_some_and(|t| ct_eq(t, &u.csrf));
    let origin_ok = match (headers.get(header::ORIGIN), headers.get(header::HOST)) {
        (Some(o), Some(h)) => o
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://").map(|x| x.1.to_string()))
            .is_some_and(|o| Some(o.as_str()) == h.to_str().ok()),
        _ => true,
    };
    if token_ok && origin_ok {
        Ok(())
    } else {
        Err((
            StatusCode::FORBIDDEN,
            "form token missing or wrong: reload the page and try again",
        )
            .into_response())
    }
}

/// The start of every form post on a collection: the session, its CSRF token, the
/// collection.
async fn posted(
    app: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    name: &str,
) -> Result<(User, &'static Coll), Response> {
    let u = user(app, headers).await?;
    check_csrf(&u, headers, form)?;
    let c =
        coll(name).ok_or_else(|| (StatusCode::NOT_FOUND, "no such collection").into_response())?;
    Ok((u, c))
}

/// One API request as the session's admin: the same router, middleware and rules as any
/// client's request.
async fn api(
    app: &AppState,
    actor: &Actor,
    peer: SocketAddr,
    method: Method,
    uri: &str,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let Some(router) = app.router() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"message": "starting"}),
        );
    };
    let mut b = Request::builder().method(method).uri(uri);
    if let Some((ct, _)) = &body {
        b = b.header(header::CONTENT_TYPE, *ct);
    }
    b = b.header("prefer", "return=representation");
    let mut req = match b.body(body.map(|(_, s)| Body::from(s)).unwrap_or_default()) {
        Ok(r) => r,
        Err(_) => return (StatusCode::BAD_REQUEST, json!({"message": "bad request"})),
    };
    // The journal records where each change came from: this request's address.
    let mut actor = actor.clone();
    actor.client = Some(peer.ip().to_string());
    req.extensions_mut().insert(SessionActor(actor));
    req.extensions_mut().insert(ConnectInfo(peer));
    match router.oneshot(req).await {
        Ok(resp) => {
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 16 << 20)
                .await
                .unwrap_or_default();
            let v = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            (status, v)
        }
        Err(e) => match e {},
    }
}

fn items(v: &Value, name: &str) -> Vec<Value> {
    match &v["_embedded"][format!("ngcp:{name}")] {
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        o => vec![o.clone()],
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(dashboard))
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/logout", post(logout))
        .route("/ui/search", get(search))
        .route("/ui/collections", get(collections))
        .route("/ui/journal", get(journal))
        .route("/ui/journal/{id}", get(journal_entry))
        .route("/ui/{name}/", get(list))
        .route("/ui/{name}/new", get(new_form).post(create))
        .route("/ui/{name}/import", get(import_form).post(import))
        .route("/ui/{name}/{id}", get(item))
        .route("/ui/{name}/{id}/edit", get(edit_form).post(update))
        .route("/ui/{name}/{id}/delete", get(delete_confirm).post(delete))
        .route("/ui/{name}/{id}/{action}", post(action))
}

// ---------------------------------------------------------------------------------------
// Login

async fn login_page(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if user(&app, &headers).await.is_ok() {
        return Redirect::to("/ui/").into_response();
    }
    login_form(&headers, app.cfg.ui_secure_cookies, None, "")
}

/// The login form's token is bound to a cookie of its own (there is no session yet).
fn login_form(
    headers: &HeaderMap,
    always_secure: bool,
    error: Option<&str>,
    login: &str,
) -> Response {
    let nonce = crate::crypto::random_token(24);
    let mut r = page(
        "login.html",
        json!({"csrf": nonce, "error": error, "login": login}),
    );
    if error.is_some() {
        *r.status_mut() = StatusCode::UNAUTHORIZED;
    }
    set_cookie(&mut r, headers, always_secure, LOGIN_COOKIE, &nonce, 600);
    r
}

async fn login(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let nonce_ok = match (cookie(&headers, LOGIN_COOKIE), form.get("_csrf")) {
        (Some(c), Some(f)) => ct_eq(&c, f),
        _ => false,
    };
    if !nonce_ok {
        return (
            StatusCode::FORBIDDEN,
            "form token missing or wrong: reload the page and try again",
        )
            .into_response();
    }
    let login = form.get("login").cloned().unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    // The API's own check: argon2, the failure counter and its back-off per address.
    let mut h = HeaderMap::new();
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{login}:{password}"),
    );
    if let Ok(v) = HeaderValue::from_str(&format!("Basic {basic}")) {
        h.insert(header::AUTHORIZATION, v);
    }
    match app.auth.authenticate(&app, &h, Some(peer.ip())).await {
        Ok(mut actor) => {
            actor.client = Some(peer.ip().to_string());
            let id = app.sessions.create(actor, app.auth.generation());
            let mut r = Redirect::to("/ui/").into_response();
            set_cookie(
                &mut r,
                &headers,
                app.cfg.ui_secure_cookies,
                SESSION_COOKIE,
                &id,
                SESSION_TTL.as_secs() as i64,
            );
            set_cookie(
                &mut r,
                &headers,
                app.cfg.ui_secure_cookies,
                LOGIN_COOKIE,
                "",
                0,
            );
            r
        }
        Err(crate::error::Error::TooManyRequests(s)) => {
            let mut r = login_form(
                &headers,
                app.cfg.ui_secure_cookies,
                Some(&format!("Too many failed attempts: try again in {s} s.")),
                &login,
            );
            *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
            r
        }
        Err(_) => login_form(
            &headers,
            app.cfg.ui_secure_cookies,
            Some("Wrong login or password."),
            &login,
        ),
    }
}

async fn logout(
    State(app): State<AppState>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&u, &headers, &form) {
        return r;
    }
    if let Some(id) = cookie(&headers, SESSION_COOKIE) {
        app.sessions.end(&id);
    }
    let mut r = Redirect::to("/ui/login").into_response();
    set_cookie(
        &mut r,
        &headers,
        app.cfg.ui_secure_cookies,
        SESSION_COOKIE,
        "",
        0,
    );
    r
}

// ---------------------------------------------------------------------------------------
// Dashboard, search, journal

async fn dashboard(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let a = &u.actor;
    let mut counts = Vec::new();
    for (name, label) in [
        ("customers", "Customers"),
        ("subscribers", "Subscribers"),
        ("pbxdevices", "Devices"),
        ("hooks", "Hooks"),
        ("domains", "Domains"),
    ] {
        let (s, v) = api(
            &app,
            a,
            peer,
            Method::GET,
            &format!("/api/{name}/?rows=1"),
            None,
        )
        .await;
        if s.is_success() {
            counts.push(json!({"name": name, "label": label, "count": v["total_count"]}));
        }
    }
    let sipservers = if a.is_admin() {
        let (_, v) = api(&app, a, peer, Method::GET, "/api/sipservers/?rows=20", None).await;
        Some(items(&v, "sipservers"))
    } else {
        None
    };
    let (_, hf) = api(
        &app,
        a,
        peer,
        Method::GET,
        "/api/hookexecutions/?status=failure&rows=5&order_by=id&order_by_direction=desc",
        None,
    )
    .await;
    let (_, df) = api(
        &app,
        a,
        peer,
        Method::GET,
        "/api/pbxdevices/?rows=5&fetched=true&order_by=last_fetch&order_by_direction=desc",
        None,
    )
    .await;
    let fetches: Vec<Value> = items(&df, "pbxdevices")
        .into_iter()
        .filter(|d| !d["last_fetch_timestamp"].is_null())
        .collect();
    let (_, ch) = api(
        &app,
        a,
        peer,
        Method::GET,
        "/api/journals/?rows=10&order_by_direction=desc",
        None,
    )
    .await;
    page(
        "dashboard.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "counts": counts, "sipservers": sipservers,
               "hook_failures": items(&hf, "hookexecutions"), "fetches": fetches, "changes": items(&ch, "journals")}),
    )
}

async fn search(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let q: String = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let mut groups = Vec::new();
    if !q.is_empty() {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let digits: String = q.chars().filter(|c| c.is_ascii_digit()).collect();
        let mac: String = q
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect::<String>()
            .to_ascii_lowercase();
        let wild = format!("*{q}*");
        let mut probes: Vec<(&str, &str, String)> = vec![
            (
                "subscribers",
                "Subscribers by username",
                format!("username={}", enc(&wild)),
            ),
            (
                "subscribers",
                "Subscribers by external id",
                format!("external_id={}", enc(&wild)),
            ),
            (
                "customers",
                "Customers by external id",
                format!("external_id={}", enc(&wild)),
            ),
            (
                "customercontacts",
                "Contacts by last name",
                format!("lastname={}", enc(&wild)),
            ),
            (
                "customercontacts",
                "Contacts by company",
                format!("company={}", enc(&wild)),
            ),
            (
                "pbxdevices",
                "Devices by station name",
                format!("station_name={}", enc(&wild)),
            ),
        ];
        if digits.len() >= 3 && digits.len() + 3 >= q.len() {
            probes.insert(
                0,
                (
                    "subscribers",
                    "Subscribers by number",
                    format!("primary_number={}", enc(&format!("*{digits}*"))),
                ),
            );
            probes.insert(
                1,
                (
                    "subscribers",
                    "Subscribers by alias number",
                    format!("alias={}", enc(&format!("*{digits}*"))),
                ),
            );
        }
        if mac.len() >= 4 && mac.len() + 5 >= q.len() {
            probes.insert(
                0,
                (
                    "pbxdevices",
                    "Devices by MAC",
                    format!("identifier={}", enc(&format!("*{mac}*"))),
                ),
            );
        }
        for (name, title, query) in probes {
            let (s, v) = api(
                &app,
                &u.actor,
                peer,
                Method::GET,
                &format!("/api/{name}/?rows=20&{query}"),
                None,
            )
            .await;
            if !s.is_success() {
                continue;
            }
            let rows: Vec<Value> = items(&v, name)
                .iter()
                .map(|o| json!({"id": o["id"], "label": label_of(name, o)}))
                .collect();
            if !rows.is_empty() {
                groups.push(json!({"name": name, "title": title, "rows": rows}));
            }
        }
    }
    page(
        "search.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "q": q, "groups": groups}),
    )
}

fn label_of(name: &str, o: &Value) -> String {
    let t = |k: &str| text_of(&o[k]);
    match name {
        "subscribers" => {
            let n = &o["primary_number"];
            let num = if n.is_object() {
                format!(" +{}{}{}", t_of(n, "cc"), t_of(n, "ac"), t_of(n, "sn"))
            } else {
                String::new()
            };
            format!("{}@{}{num}", t("username"), t("domain"))
        }
        "customers" => format!("customer {} {}", t("id"), t("external_id")),
        "customercontacts" => format!("{} {} {}", t("firstname"), t("lastname"), t("company")),
        "pbxdevices" => format!("{} {}", t("identifier"), t("station_name")),
        _ => t("id"),
    }
}

fn t_of(v: &Value, k: &str) -> String {
    text_of(&v[k])
}

async fn journal(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let given: HashMap<String, String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let page_no: i64 = given
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let base_q = {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &given {
            if k != "page" && !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.finish()
    };
    let uri = format!("/api/journals/?rows=50&page={page_no}&order_by_direction=desc&{base_q}");
    let (s, v) = api(&app, &u.actor, peer, Method::GET, &uri, None).await;
    let total = v["total_count"].as_i64().unwrap_or(0);
    let link = |p: i64| format!("/ui/journal?page={p}&{base_q}");
    let filters: Vec<Value> = crate::http::api::journals::FILTERS
        .iter()
        .map(|(f, h)| json!({"name": f, "help": h, "value": given.get(*f).cloned().unwrap_or_default()}))
        .collect();
    page(
        "journal.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "filters": filters, "rows": items(&v, "journals"), "total": total,
               "error": (!s.is_success()).then(|| text_of(&v["message"])),
               "prev": (page_no > 1).then(|| link(page_no - 1)), "next": (page_no * 50 < total).then(|| link(page_no + 1))}),
    )
}

async fn journal_entry(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/journals/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        let ctx = json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("Change {id}"), "error": text_of(&v["message"])});
        let mut r = page("page.html", ctx);
        *r.status_mut() = s;
        return r;
    }
    // Before and after side by side, field by field.
    let empty = Map::new();
    let before = v["before"].as_object().unwrap_or(&empty);
    let after = v["after"].as_object().unwrap_or(&empty);
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    let show = |x: Option<&Value>| match x {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(o) => serde_json::to_string(o).unwrap_or_default(),
    };
    let diff: Vec<Value> = fields
        .into_iter()
        .filter(|f| *f != "_links")
        .map(|f| json!({"field": f, "before": show(before.get(f)), "after": show(after.get(f)), "changed": before.get(f) != after.get(f)}))
        .collect();
    page(
        "change.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "e": v, "diff": diff}),
    )
}

async fn collections(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let links: Vec<Value> = crate::http::api::docs()
        .iter()
        .map(|d| json!({"href": format!("/ui/{}/", d.name), "label": d.name, "hint": d.summary}))
        .collect();
    page(
        "page.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "title": "All collections", "links": links}),
    )
}

// ---------------------------------------------------------------------------------------
// Any collection: list, item, forms

struct Coll {
    name: &'static str,
    summary: &'static str,
    filters: &'static [(&'static str, &'static str)],
    create: bool,
    update: bool,
    delete: bool,
    bulk: bool,
    /// The input's fields: (name, kind text|integer|number|boolean|json).
    fields: Vec<(String, &'static str)>,
}

/// A collection as the UI knows it; described once from the API's documentation (its
/// schemas are serialised to read the input's fields, too much to do per page).
fn coll(name: &str) -> Option<&'static Coll> {
    static ALL: std::sync::OnceLock<Vec<Coll>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| crate::http::api::docs().into_iter().map(describe).collect())
        .iter()
        .find(|c| c.name == name)
}

fn describe(d: crate::http::openapi::ResourceDoc) -> Coll {
    let input = d
        .schemas
        .iter()
        .find(|(n, _)| *n == d.input)
        .map(|(_, s)| s.clone())
        .unwrap_or(Value::Null);
    let mut fields: Vec<(String, &'static str)> = input["properties"]
        .as_object()
        .map(|p| p.iter().map(|(k, s)| (k.clone(), kind_of(s))).collect())
        .unwrap_or_default();
    if fields.is_empty() {
        // A free-form object (preferences): edited as one JSON document, saved with PUT.
        fields.push((DOCUMENT.to_string(), "json"));
    }
    Coll {
        name: d.name,
        summary: d.summary,
        filters: d.filters,
        create: d.create,
        update: d.update,
        delete: d.delete,
        bulk: d.bulk,
        fields,
    }
}

/// The one field of a collection whose input is a free-form object.
const DOCUMENT: &str = "document";

fn kind_of(s: &Value) -> &'static str {
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let t: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    match t.as_slice() {
        ["string"] => "text",
        ["integer"] => "integer",
        ["number"] => "number",
        ["boolean"] => "boolean",
        _ if s.get("$ref").is_some() || s.get("oneOf").is_some() || s.get("allOf").is_some() => {
            "json"
        }
        _ => "json",
    }
}

async fn list(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(c) = coll(&name) else {
        return (StatusCode::NOT_FOUND, "no such collection").into_response();
    };
    let q = q.unwrap_or_default();
    let given: HashMap<String, String> =
        form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    let page_no: i64 = given
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let base_q = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &given {
            if k != "page" && !v.is_empty() {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/{name}/?rows=25&page={page_no}&{base_q}"),
        None,
    )
    .await;
    let list = items(&v, c.name);
    let mut columns: Vec<String> = vec!["id".into()];
    if let Some(first) = list.first().and_then(Value::as_object) {
        for (k, v) in first {
            if k != "id"
                && k != "_links"
                && (v.is_string() || v.is_number() || v.is_boolean())
                && columns.len() < 7
                && !k.ends_with("timestamp")
            {
                columns.push(k.clone());
            }
        }
    }
    let rows: Vec<Value> = list
        .iter()
        .map(|o| json!({"id": o["id"], "cells": columns.iter().map(|k| text_of(&o[k])).collect::<Vec<_>>()}))
        .collect();
    let total = v["total_count"].as_i64().unwrap_or(list.len() as i64);
    let link = |p: i64| format!("/ui/{name}/?page={p}&{base_q}");
    page(
        "list.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "name": c.name, "title": c.name, "summary": c.summary,
               "error": (!s.is_success()).then(|| text_of(&v["message"])),
               "filters": c.filters.iter().map(|(f, h)| json!({"name": f, "help": h, "value": given.get(*f).cloned().unwrap_or_default()})).collect::<Vec<_>>(),
               "columns": columns, "rows": rows, "total": total, "can_create": c.create, "can_import": c.bulk,
               "filtered": c.filters.iter().any(|(f, _)| given.get(*f).is_some_and(|v| !v.is_empty())),
               "prev": (page_no > 1).then(|| link(page_no - 1)), "next": (page_no * 25 < total).then(|| link(page_no + 1))}),
    )
}

async fn item(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(c) = coll(&name) else {
        return (StatusCode::NOT_FOUND, "no such collection").into_response();
    };
    let id: i64 = id.parse().unwrap_or(0);
    item_page(&app, &u, peer, c, id, None, None).await
}

async fn item_page(
    app: &AppState,
    u: &User,
    peer: SocketAddr,
    c: &Coll,
    id: i64,
    error: Option<String>,
    flash: Option<String>,
) -> Response {
    let name = c.name;
    let (s, v) = api(
        app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        let mut r = page(
            "page.html",
            json!({"user": user_ctx(u), "csrf": u.csrf, "title": format!("{name} {id}"), "error": text_of(&v["message"])}),
        );
        *r.status_mut() = s;
        return r;
    }
    let mut fields = Vec::new();
    if let Some(o) = v.as_object() {
        for (k, x) in o {
            if k == "_links" {
                continue;
            }
            let link = match (link_target(k), x.as_i64()) {
                (Some(to), Some(n)) => Some(format!("/ui/{to}/{n}")),
                _ => None,
            };
            let block = x.is_object() || x.is_array();
            if is_secret(k) && !x.is_null() {
                fields.push(json!({"name": k, "value": "********", "link": null, "block": false}));
                continue;
            }
            let value = if block {
                serde_json::to_string_pretty(x).unwrap_or_default()
            } else {
                text_of(x)
            };
            fields.push(json!({"name": k, "value": value, "link": link, "block": block}));
        }
    }
    let mut extra = Vec::new();
    let mut posts = Vec::new();
    let mut sections = Vec::new();
    match name {
        "pbxdevices" => {
            extra.push(json!({"href": format!("/ui/pbxdevices/{id}/preview"), "label": "Preview configuration"}));
            posts.push(json!({"href": format!("/ui/pbxdevices/{id}/resync"), "label": "Resync"}));
            let (_, f) = api(
                app,
                &u.actor,
                peer,
                Method::GET,
                &format!("/api/pbxdevices/{id}/fetches"),
                None,
            )
            .await;
            let rows: Vec<Vec<String>> = f["fetches"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .take(20)
                .map(|r| {
                    vec![
                        text_of(&r["ts"]),
                        text_of(&r["address"]),
                        text_of(&r["file"]),
                        text_of(&r["status"]),
                        text_of(&r["user_agent"]),
                    ]
                })
                .collect();
            sections.push(json!({"title": "Last fetches", "columns": ["when", "from", "file", "status", "user agent"], "rows": rows}));
        }
        "hooks" => {
            extra.push(
                json!({"href": format!("/ui/hookexecutions/?hook_id={id}"), "label": "Executions"}),
            );
        }
        "hookexecutions" => {
            posts.push(
                json!({"href": format!("/ui/hookexecutions/{id}/redeliver"), "label": "Redeliver"}),
            );
        }
        "sipservers" => {
            posts.push(json!({"href": format!("/ui/sipservers/{id}/check"), "label": "Check"}));
            posts.push(json!({"href": format!("/ui/sipservers/{id}/repair"), "label": "Repair"}));
        }
        "subscribers" => {
            extra.push(json!({"href": format!("/ui/callforwards/{id}"), "label": "Call forwards"}));
            extra.push(
                json!({"href": format!("/ui/subscriberpreferences/{id}"), "label": "Preferences"}),
            );
        }
        _ => {}
    }
    page(
        "item.html",
        json!({"user": user_ctx(u), "csrf": u.csrf, "name": name, "id": id, "title": format!("{name} {id}"),
               "fields": fields, "can_update": c.update, "can_delete": c.delete, "extra": extra, "posts": posts,
               "sections": sections, "error": error, "flash": flash}),
    )
}

/// The collection an `…_id` field points into.
fn link_target(field: &str) -> Option<&'static str> {
    Some(match field {
        "reseller_id" => "resellers",
        "customer_id" => "customers",
        "subscriber_id" => "subscribers",
        "contact_id" => "customercontacts",
        "billing_profile_id" => "billingprofiles",
        "domain_id" => "domains",
        "home_server_id" | "sipserver_id" => "sipservers",
        "hook_id" => "hooks",
        "model_id" => "pbxdevicemodels",
        "profile_id" => "pbxdeviceprofiles",
        "device_id" => "pbxdevices",
        _ => return None,
    })
}

/// Form values for the input's fields, from a representation (edit) or a failed post.
/// Field names whose values are secrets: never shown, never pre-filled, never trimmed.
fn is_secret(f: &str) -> bool {
    f.contains("password") || f.contains("secret") || f.contains("token")
}

/// A value as a form shows it.
fn shown(v: &Value, kind: &str) -> String {
    match (v, kind) {
        (Value::Null, _) => String::new(),
        (x, "json") => serde_json::to_string_pretty(x).unwrap_or_default(),
        (Value::String(s), _) => s.clone(),
        (x, _) => x.to_string(),
    }
}

/// The form's fields: `values` from a representation (`raw` false) or as a failed post sent
/// them (`raw` true); `orig` the values the edit form first showed, carried along so that a
/// save sends only what the user changed.
fn form_fields(
    c: &Coll,
    values: &Map<String, Value>,
    errors: &HashMap<String, String>,
    raw: bool,
    orig: Option<&HashMap<String, String>>,
) -> Vec<Value> {
    c.fields
        .iter()
        .map(|(f, kind)| {
            let v = values.get(f).cloned().unwrap_or(Value::Null);
            let value = match (&v, raw) {
                (Value::String(s), true) => s.clone(),
                _ => shown(&v, kind),
            };
            let secret = is_secret(f);
            let o = orig.and_then(|o| o.get(f).cloned());
            json!({"name": f, "kind": kind, "value": if secret { String::new() } else { value }, "secret": secret, "orig": o,
                   "error": errors.get(f).cloned().or_else(|| errors.iter().find(|(k, _)| k.starts_with(&format!("{f}.")) || k.starts_with(&format!("{f}["))).map(|(k, m)| format!("{k}: {m}")))})
        })
        .collect()
}

/// A posted form as the API's JSON: each field by its kind; empty fields left out.
fn form_json(
    c: &Coll,
    form: &HashMap<String, String>,
    errors: &mut HashMap<String, String>,
) -> Map<String, Value> {
    let mut m = Map::new();
    for (f, kind) in &c.fields {
        let Some(raw) = form.get(f) else { continue };
        let raw = if is_secret(f) {
            raw.as_str()
        } else {
            raw.trim()
        };
        if raw.is_empty() {
            continue;
        }
        let v = match *kind {
            "integer" => raw
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| json!(raw)),
            "number" => raw
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or_else(|| json!(raw)),
            "boolean" => json!(raw == "true"),
            "json" => match serde_json::from_str(raw) {
                Ok(v) => v,
                Err(e) => {
                    errors.insert(f.clone(), format!("not valid JSON: {e}"));
                    continue;
                }
            },
            _ => json!(raw),
        };
        m.insert(f.clone(), v);
    }
    m
}

fn form_page(
    u: &User,
    _c: &Coll,
    title: String,
    action: String,
    back: String,
    fields: Vec<Value>,
    error: Option<String>,
) -> Response {
    page(
        "form.html",
        json!({"user": user_ctx(u), "csrf": u.csrf, "title": title, "action": action, "back": back, "fields": fields, "error": error}),
    )
}

async fn new_form(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(c) = coll(&name).filter(|c| c.create) else {
        return (StatusCode::NOT_FOUND, "nothing to create here").into_response();
    };
    let fields = form_fields(c, &Map::new(), &HashMap::new(), false, None);
    form_page(
        &u,
        c,
        format!("New {name}"),
        format!("/ui/{name}/new"),
        format!("/ui/{name}/"),
        fields,
        None,
    )
}

/// The API's 422 as errors at their fields.
fn api_errors(v: &Value) -> (HashMap<String, String>, String) {
    let mut e = HashMap::new();
    let msg = text_of(&v["message"]);
    if let Some(f) = v["field"].as_str() {
        e.insert(f.to_string(), msg.clone());
    }
    (e, msg)
}

async fn create(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let mut errors = HashMap::new();
    let body = form_json(c, &form, &mut errors);
    let (status, v) = if errors.is_empty() {
        api(
            &app,
            &u.actor,
            peer,
            Method::POST,
            &format!("/api/{name}/"),
            Some(("application/json", Value::Object(body.clone()).to_string())),
        )
        .await
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "some fields are not valid"}),
        )
    };
    if status == StatusCode::CREATED {
        let id = text_of(&v["id"]);
        let mut r = Redirect::to(&format!("/ui/{name}/{id}")).into_response();
        // Secrets shown once (an API key's, a device's first-boot URL) are on the page now.
        if v.get("secret").is_some() || v.get("boot_token").is_some() {
            let once: Map<String, Value> = ["secret", "boot_token", "provisioning_url"]
                .iter()
                .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())))
                .collect();
            return page(
                "page.html",
                json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("{name} {id} created"),
                "links": [{"href": format!("/ui/{name}/{id}"), "label": "Continue", "hint": "These values are shown once: copy them now."}],
                "pre": serde_json::to_string_pretty(&once).unwrap_or_default()}),
            );
        }
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    let (mut e2, msg) = api_errors(&v);
    e2.extend(errors);
    let values: Map<String, Value> = c
        .fields
        .iter()
        .filter_map(|(f, _)| form.get(f).map(|x| (f.clone(), json!(x))))
        .collect();
    let mut r = form_page(
        &u,
        c,
        format!("New {name}"),
        format!("/ui/{name}/new"),
        format!("/ui/{name}/"),
        form_fields(c, &values, &e2, true, None),
        Some(msg),
    );
    *r.status_mut() = if status.is_success() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status
    };
    r
}

async fn edit_form(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(c) = coll(&name) else {
        return (StatusCode::NOT_FOUND, "no such collection").into_response();
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        return (s, "not found").into_response();
    }
    let mut values = v.as_object().cloned().unwrap_or_default();
    if c.fields.len() == 1 && c.fields[0].0 == DOCUMENT {
        let mut doc = values.clone();
        doc.remove("_links");
        values.insert(DOCUMENT.into(), Value::Object(doc));
    }
    form_page(
        &u,
        c,
        format!("Edit {name} {id}"),
        format!("/ui/{name}/{id}/edit"),
        format!("/ui/{name}/{id}"),
        {
            let orig: HashMap<String, String> = c
                .fields
                .iter()
                .map(|(f, k)| {
                    (
                        f.clone(),
                        if is_secret(f) {
                            String::new()
                        } else {
                            shown(values.get(f).unwrap_or(&Value::Null), k)
                        },
                    )
                })
                .collect();
            form_fields(c, &values, &HashMap::new(), false, Some(&orig))
        },
        None,
    )
}

async fn update(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, cur) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        return (s, "not found").into_response();
    }
    if c.fields.len() == 1 && c.fields[0].0 == DOCUMENT {
        return put_document(&app, &u, peer, c, id, &form).await;
    }
    // Only what the user changed, as JSON Patch, judged against what the form first showed
    // (not against the object now): another user's change to another field is not undone,
    // and fields left as they were (an empty password) stay as they are.
    let changed: HashMap<String, String> = c
        .fields
        .iter()
        .filter_map(|(f, _)| {
            let now = form.get(f)?;
            let was = form
                .get(&format!("_orig_{f}"))
                .map(String::as_str)
                .unwrap_or("");
            (now.trim() != was.trim()).then(|| (f.clone(), now.clone()))
        })
        .collect();
    let mut errors = HashMap::new();
    let new = form_json(c, &changed, &mut errors);
    let mut ops = Vec::new();
    for (f, v) in &new {
        ops.push(json!({"op": if cur.get(f).is_some() { "replace" } else { "add" }, "path": format!("/{f}"), "value": v}));
    }
    for f in changed.keys() {
        if !new.contains_key(f) && !errors.contains_key(f) && !is_secret(f) {
            // Emptied: the value goes.
            ops.push(json!({"op": "replace", "path": format!("/{f}"), "value": null}));
        }
    }
    let (status, v) = if !errors.is_empty() {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "some fields are not valid"}),
        )
    } else if ops.is_empty() {
        (StatusCode::OK, Value::Null)
    } else {
        api(
            &app,
            &u.actor,
            peer,
            Method::PATCH,
            &format!("/api/{name}/{id}"),
            Some(("application/json-patch+json", Value::Array(ops).to_string())),
        )
        .await
    };
    if status.is_success() {
        let mut r = Redirect::to(&format!("/ui/{name}/{id}")).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    let (mut e2, msg) = api_errors(&v);
    e2.extend(errors);
    let values: Map<String, Value> = c
        .fields
        .iter()
        .filter_map(|(f, _)| form.get(f).map(|x| (f.clone(), json!(x))))
        .collect();
    let mut r = form_page(
        &u,
        c,
        format!("Edit {name} {id}"),
        format!("/ui/{name}/{id}/edit"),
        format!("/ui/{name}/{id}"),
        {
            let orig: HashMap<String, String> = c
                .fields
                .iter()
                .filter_map(|(f, _)| {
                    form.get(&format!("_orig_{f}"))
                        .map(|o| (f.clone(), o.clone()))
                })
                .collect();
            form_fields(c, &values, &e2, true, Some(&orig))
        },
        Some(msg),
    );
    *r.status_mut() = status;
    r
}

async fn delete(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::DELETE,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if s.is_success() {
        let mut r = Redirect::to(&format!("/ui/{name}/")).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    item_page(&app, &u, peer, c, id, Some(text_of(&v["message"])), None).await
}

/// The buttons of item pages: device resync, hook redelivery, SIP server check and repair.
async fn action(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id, action)): Path<(String, String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let uri = match (name.as_str(), action.as_str()) {
        ("pbxdevices", "resync") => format!("/api/pbxdevices/{id}/resync"),
        ("hookexecutions", "redeliver") => format!("/api/hookexecutions/{id}/redeliver"),
        ("sipservers", "check") => format!("/api/sipservers/{id}/check"),
        ("sipservers", "repair") => format!("/api/sipservers/{id}/repair"),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::POST,
        &uri,
        Some(("application/json", "{}".into())),
    )
    .await;
    let msg = if s.is_success() {
        format!("{action}: done")
    } else {
        format!("{action}: {}", text_of(&v["message"]))
    };
    item_page(
        &app,
        &u,
        peer,
        c,
        id,
        (!s.is_success()).then(|| msg.clone()),
        s.is_success().then_some(msg),
    )
    .await
}

/// The configuration a device would get, as text (GET: it changes nothing).
pub async fn preview(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/pbxdevices/{id}/preview"),
        None,
    )
    .await;
    page(
        "page.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("Configuration of device {id}"),
               "links": [{"href": format!("/ui/pbxdevices/{id}"), "label": "Back to the device", "hint": "passwords masked"}],
               "error": (!s.is_success()).then(|| text_of(&v["message"])), "pre": s.is_success().then(|| text_of(&v))}),
    )
}

// ---------------------------------------------------------------------------------------
// Long work with progress: CSV import in batches, SIP server repair

const IMPORT_BATCH: usize = 200;

async fn import_form(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match coll(&name) {
        Some(c) if c.bulk => {}
        _ => return (StatusCode::NOT_FOUND, "nothing to import here").into_response(),
    }
    let example = if name == "subscribers" {
        "customer_id,domain,username,password,cc,ac,sn"
    } else {
        "contact_id,billing_profile_id,type,status,external_id"
    };
    page(
        "import.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "name": name, "example": example, "batch": IMPORT_BATCH}),
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A page whose list of steps arrives while the work goes on (HTML streamed as it is
/// written: the browser shows each step as it comes, no script needed).
fn progress_page(u: &User, title: &str, back: &str) -> Result<(String, String), Response> {
    let html = match templates().get_template("progress.html").and_then(|t| {
        t.render(minijinja::Value::from_serialize(
            json!({"user": user_ctx(u), "csrf": u.csrf, "title": title, "back": back}),
        ))
    }) {
        Ok(h) => h,
        Err(e) => {
            tracing::error!("UI template progress.html: {e:#}");
            return Err((
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response());
        }
    };
    let (head, tail) = html.split_once("@@STREAM@@").unwrap_or((&html, ""));
    Ok((head.to_string(), tail.to_string()))
}

fn streamed(rx: tokio::sync::mpsc::Receiver<String>) -> Response {
    let stream = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::ReceiverStream::new(rx),
        Ok::<_, std::convert::Infallible>,
    );
    let mut r = Response::new(Body::from_stream(stream));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

async fn import(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if let Err(r) = check_csrf(&u, &headers, &form) {
        return r;
    }
    match coll(&name) {
        Some(c) if c.bulk => {}
        _ => return (StatusCode::NOT_FOUND, "nothing to import here").into_response(),
    }
    // Split into batches of whole CSV records (a quoted field may hold a line break).
    let csv_text = form.get("csv").cloned().unwrap_or_default();
    let mut rdr = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let header = match rdr.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            return (StatusCode::UNPROCESSABLE_ENTITY, format!("CSV header: {e}")).into_response()
        }
    };
    let records: Vec<csv::StringRecord> = match rdr.records().collect() {
        Ok(r) => r,
        Err(e) => return (StatusCode::UNPROCESSABLE_ENTITY, format!("CSV: {e}")).into_response(),
    };
    let (head, tail) =
        match progress_page(&u, &format!("Importing {name}"), &format!("/ui/{name}/")) {
            Ok(x) => x,
            Err(r) => return r,
        };
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let actor = u.actor.clone();
    tokio::spawn(async move {
        let _ = tx.send(head).await;
        let total = records.len();
        let (mut created, mut failed) = (0, 0);
        for (n, chunk) in records.chunks(IMPORT_BATCH).enumerate() {
            let mut w = csv::Writer::from_writer(Vec::new());
            let _ = w.write_record(&header);
            for r in chunk {
                let _ = w.write_record(r);
            }
            let body = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
            let (s, v) = api(
                &app,
                &actor,
                peer,
                Method::POST,
                &format!("/api/{name}/?mode=per-row"),
                Some(("text/csv", body)),
            )
            .await;
            let first = n * IMPORT_BATCH;
            let mut line = String::new();
            if s.is_success() {
                let rows = v["rows"].as_array().cloned().unwrap_or_default();
                let ok = rows.iter().filter(|r| r["status"] == "created").count();
                created += ok;
                failed += rows.len() - ok;
                line.push_str(&format!(
                    "<li>rows {}–{} of {total}: {ok} created",
                    first + 1,
                    first + chunk.len()
                ));
                let errs: Vec<String> = rows
                    .iter()
                    .filter(|r| r["status"] != "created")
                    .map(|r| {
                        // Each batch repeats the header: its line L is line L + first of the text.
                        let line = r["row"].as_i64().map(|x| x + first as i64).unwrap_or(0);
                        match r["field"].as_str() {
                            Some(f) => {
                                esc(&format!("line {line}: {f}: {}", text_of(&r["message"])))
                            }
                            None => esc(&format!("line {line}: {}", text_of(&r["message"]))),
                        }
                    })
                    .collect();
                if !errs.is_empty() {
                    line.push_str(&format!(
                        ", {} failed<ul class=\"error\"><li>{}</li></ul>",
                        errs.len(),
                        errs.join("</li><li>")
                    ));
                }
                line.push_str("</li>\n");
            } else {
                failed += chunk.len();
                line = format!(
                    "<li class=\"error\">rows {}–{}: {}</li>\n",
                    first + 1,
                    first + chunk.len(),
                    esc(&text_of(&v["message"]))
                );
            }
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let _ = tx
            .send(format!(
                "<li><strong id=\"done\">Done: {created} created, {failed} failed.</strong></li>\n"
            ))
            .await;
        let _ = tx.send(tail).await;
    });
    streamed(rx)
}

/// Deleting asks first (a page with the button that does it).
async fn delete_confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match coll(&name) {
        Some(c) if c.delete => {}
        _ => return (StatusCode::NOT_FOUND, "nothing to delete here").into_response(),
    }
    let id: i64 = id.parse().unwrap_or(0);
    page(
        "confirm.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("Delete {name} {id}?"),
               "action": format!("/ui/{name}/{id}/delete"), "back": format!("/ui/{name}/{id}")}),
    )
}

/// Saves a free-form object (preferences) edited as one JSON document.
async fn put_document(
    app: &AppState,
    u: &User,
    peer: SocketAddr,
    c: &Coll,
    id: i64,
    form: &HashMap<String, String>,
) -> Response {
    let name = c.name;
    let raw = form.get(DOCUMENT).cloned().unwrap_or_default();
    let (status, v) = match serde_json::from_str::<Value>(&raw) {
        Ok(doc) => {
            api(
                app,
                &u.actor,
                peer,
                Method::PUT,
                &format!("/api/{name}/{id}"),
                Some(("application/json", doc.to_string())),
            )
            .await
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": format!("not valid JSON: {e}"), "field": DOCUMENT}),
        ),
    };
    if status.is_success() {
        let mut r = Redirect::to(&format!("/ui/{name}/{id}")).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    let (e, msg) = api_errors(&v);
    let mut values = Map::new();
    values.insert(DOCUMENT.into(), json!(raw));
    let mut r = form_page(
        u,
        c,
        format!("Edit {name} {id}"),
        format!("/ui/{name}/{id}/edit"),
        format!("/ui/{name}/{id}"),
        form_fields(c, &values, &e, true, None),
        Some(msg),
    );
    *r.status_mut() = status;
    r
}
