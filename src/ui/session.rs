//! Sessions (in memory, HttpOnly SameSite=Strict cookies, 8 hours idle, 24 at most), the
//! admin behind each (re-read when admins change), and CSRF tokens on every form.

use super::*;

pub(super) const SESSION_COOKIE: &str = "vxs";
pub(super) const LOGIN_COOKIE: &str = "vxl";
/// Idle time after which a session ends, and its longest life however busy.
pub(super) const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);
pub(super) const SESSION_MAX: Duration = Duration::from_secs(24 * 3600);

pub(super) struct Session {
    pub(super) actor: Actor,
    pub(super) csrf: String,
    pub(super) seen: Instant,
    pub(super) born: Instant,
    /// The admins' generation the actor was read at: when an admin changes, it is read again.
    pub(super) generation: u64,
}

#[derive(Default)]
pub struct Sessions {
    pub(super) map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    pub(super) fn get(&self, id: &str) -> Option<(Actor, String, u64)> {
        let mut m = self.map.lock().expect("sessions");
        let s = m.get_mut(id)?;
        if s.seen.elapsed() > SESSION_TTL || s.born.elapsed() > SESSION_MAX {
            m.remove(id);
            return None;
        }
        s.seen = Instant::now();
        Some((s.actor.clone(), s.csrf.clone(), s.generation))
    }
    pub(super) fn refresh(&self, id: &str, actor: Actor, generation: u64) {
        if let Some(s) = self.map.lock().expect("sessions").get_mut(id) {
            s.actor = actor;
            s.generation = generation;
        }
    }
    pub(super) fn create(&self, actor: Actor, generation: u64) -> String {
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
    pub(super) fn end(&self, id: &str) {
        self.map.lock().expect("sessions").remove(id);
    }
}

pub(super) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub(super) fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

/// `always_secure`: the `ui_secure_cookies` setting (HTTPS in front whether or not the proxy
/// says so).
pub(super) fn set_cookie(
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
pub(super) struct User {
    pub(super) actor: Actor,
    pub(super) csrf: String,
}

pub(super) async fn user(app: &UiState, headers: &HeaderMap) -> Result<User, Response> {
    let login = || Redirect::to("/ui/login").into_response();
    let id = cookie(headers, SESSION_COOKIE).ok_or_else(login)?;
    let (mut actor, csrf, generation) = app.sessions.get(&id).ok_or_else(login)?;
    let now = app.credentials.generation();
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
pub(super) async fn current_admin(app: &UiState, a: &Actor) -> Option<Actor> {
    use sqlx::Row;
    let mut c = app.store.read().await.ok()?;
    let row = sqlx::query(
        "SELECT role, reseller_id, read_only FROM admins WHERE id = $1 AND is_active = 1 \
         AND (reseller_id IS NULL OR reseller_id IN (SELECT id FROM resellers WHERE status = 'active'))",
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

pub(super) fn user_ctx(u: &User) -> Value {
    json!({"name": u.actor.name, "admin": u.actor.is_admin(), "read_only": u.actor.read_only})
}

pub(super) fn ct_eq(a: &str, b: &str) -> bool {
    crate::crypto::constant_time_eq(a.as_bytes(), b.as_bytes())
}

/// A form post must carry the session's token (and come from this origin, when the browser
/// says where it came from).
pub(super) fn check_csrf(
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
pub(super) async fn posted(
    app: &UiState,
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
