//! The web UI under `/ui/`: server-rendered pages (auto-escaping minijinja templates, no
//! JavaScript) for people. It holds no rules of its own: every read and write is a request
//! to the API, dispatched inside the server with the session's admin as the actor, so the
//! validation, authorization, journal, hooks and SIP server delivery are the API's own.
//!
//! Sessions live in the database (any node serves them, a restart logs no one out); the
//! cookie is HttpOnly and
//! SameSite=Strict, Secure when the request came over HTTPS; every form carries a CSRF
//! token bound to the session, and a POST without it is refused.

// The "error" of a page helper is the finished answer (a redirect to the login page, a 403):
// it is returned at once, so its size does not matter.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

use crate::app::App;
use crate::http::auth::SessionActor;
use crate::model::Actor;

mod api;
mod browse;
mod edit;
mod forwards;
mod import;
mod login;
mod pages;
mod prefs;
mod session;
mod views;
use api::*;
use browse::*;
use edit::*;
use forwards::*;
use import::*;
use login::*;
use pages::*;
use prefs::*;
use session::*;
use views::*;

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
            ("forwards.html", include_str!("templates/forwards.html")),
            ("prefs.html", include_str!("templates/prefs.html")),
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

/// The UI's state: the application, its sessions, and the API's router its pages call.
pub struct Ui {
    app: Arc<App>,
    sessions: Sessions,
    /// The API (with its layers) that every page acts through, in-process.
    api: Router,
}

impl std::ops::Deref for Ui {
    type Target = App;
    fn deref(&self) -> &App {
        &self.app
    }
}

pub type UiState = Arc<Ui>;

/// The UI's routes, acting through `api` (the API's router, built first).
pub fn router(app: Arc<App>, api: Router) -> Router {
    let ui = Arc::new(Ui {
        sessions: Sessions::new(app.store.clone()),
        app,
        api,
    });
    crate::http::edge(routes().with_state(ui))
}

fn routes() -> Router<UiState> {
    Router::new()
        .route("/ui/pbxdevices/{id}/preview", get(preview))
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
        .route(
            "/ui/{name}/import",
            get(import_form)
                .post(import)
                .layer(axum::extract::DefaultBodyLimit::max(IMPORT_MAX + 64 * 1024)),
        )
        .route("/ui/{name}/export", get(export))
        .route("/ui/{name}/{id}", get(item))
        .route("/ui/{name}/{id}/edit", get(edit_form).post(update))
        .route(
            "/ui/{name}/{id}/forwards",
            get(forwards_form).post(save_forwards),
        )
        .route(
            "/ui/{name}/{id}/preferences",
            get(prefs_form).post(save_prefs),
        )
        .route("/ui/{name}/{id}/delete", get(delete_confirm).post(delete))
        .route("/ui/{name}/{id}/{action}", post(action))
}

#[cfg(test)]
mod tests {
    /// A template that does not compile would fail every page at its first use.
    #[test]
    fn every_template_compiles() {
        let env = super::templates();
        for name in [
            "item.html",
            "form.html",
            "list.html",
            "dashboard.html",
            "forwards.html",
            "prefs.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }
}
