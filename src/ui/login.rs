//! Login and logout: admins' credentials through the API's own check.

use super::*;

// ---------------------------------------------------------------------------------------
// Login

pub(super) async fn login_page(State(app): State<UiState>, headers: HeaderMap) -> Response {
    if user(&app, &headers).await.is_ok() {
        return Redirect::to("/ui/").into_response();
    }
    login_form(&headers, app.cfg.ui_secure_cookies, None, "")
}

/// The login form's token is bound to a cookie of its own (there is no session yet).
pub(super) fn login_form(
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

pub(super) async fn login(
    State(app): State<UiState>,
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
    match app
        .credentials
        .verify_basic(&app.store, &login, &password, Some(peer.ip()))
        .await
    {
        Ok(actor) => {
            let id = match app.sessions.create(&actor).await {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!("ui: session not created: {e}");
                    let mut r = login_form(
                        &headers,
                        app.cfg.ui_secure_cookies,
                        Some("The database does not answer: try again in a moment."),
                        &login,
                    );
                    *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                    return r;
                }
            };
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

pub(super) async fn logout(
    State(app): State<UiState>,
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
        if let Err(e) = app.sessions.end(&id).await {
            tracing::warn!("ui: session not ended: {e}");
        }
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
