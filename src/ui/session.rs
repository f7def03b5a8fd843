//! Sessions (in the database, so every node knows them: HttpOnly SameSite=Strict cookies,
//! 8 hours idle, 24 at most), the admin behind each (read with the session on every request,
//! so a deactivated or demoted admin's session changes at once), and CSRF tokens on every
//! form.

use super::*;
use crate::store::sessions as st;

pub(super) const SESSION_COOKIE: &str = "vxs";
pub(super) const LOGIN_COOKIE: &str = "vxl";
/// Idle time after which a session ends (the cookie's life too).
pub(super) const SESSION_TTL: Duration = st::IDLE;
/// A session's last use is written at most this often.
const TOUCH_EVERY_MS: i64 = 60_000;

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The cookie's token as the database keeps it: a leaked table does not log anyone in.
fn token_hash(token: &str) -> String {
    crate::crypto::sha256_hex(token.as_bytes())
}

/// The sessions, over the database.
pub struct Sessions {
    store: crate::store::Store,
}

impl Sessions {
    pub(super) fn new(store: crate::store::Store) -> Sessions {
        Sessions { store }
    }

    /// The session's admin as they are now, and its form token.
    pub(super) async fn get(&self, token: &str) -> crate::error::Result<Option<(Actor, String)>> {
        let now = now_ms();
        let (idle, born) = st::cutoffs(now);
        let hash = token_hash(token);
        let found = {
            let mut c = self.store.read().await?;
            st::get(&mut c, &hash, idle, born).await?
        };
        let Some((actor, csrf, seen)) = found else {
            return Ok(None);
        };
        if now - seen >= TOUCH_EVERY_MS {
            // Best effort: a database that reads but does not write (a failover) still serves
            // the page.
            let touched = async {
                let mut tx = self.store.begin().await?;
                st::touch(&mut tx, &hash, now).await?;
                tx.commit().await?;
                Ok::<_, crate::error::Error>(())
            }
            .await;
            if let Err(e) = touched {
                tracing::debug!("ui: session use not recorded: {e}");
            }
        }
        Ok(Some((actor, csrf)))
    }

    /// A new session for an admin; returns the cookie's token.
    pub(super) async fn create(&self, actor: &Actor) -> crate::error::Result<String> {
        let admin = actor
            .admin_id
            .ok_or_else(|| crate::error::Error::Forbidden("only admins log in".into()))?;
        let token = crate::crypto::random_token(32);
        let mut tx = self.store.begin().await?;
        st::create(
            &mut tx,
            &token_hash(&token),
            admin,
            &crate::crypto::random_token(24),
            now_ms(),
        )
        .await?;
        tx.commit().await?;
        Ok(token)
    }

    pub(super) async fn end(&self, token: &str) -> crate::error::Result<()> {
        let mut tx = self.store.begin().await?;
        st::end(&mut tx, &token_hash(token)).await?;
        tx.commit().await?;
        Ok(())
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
    match app.sessions.get(&id).await {
        Ok(Some((actor, csrf))) => Ok(User { actor, csrf }),
        Ok(None) => Err(login()),
        Err(e) => {
            tracing::warn!("ui: session not readable: {e}");
            Err((
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "5")],
                "the database does not answer: try again in a moment",
            )
                .into_response())
        }
    }
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
