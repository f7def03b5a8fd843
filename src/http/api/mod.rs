//! `/api/`: the generic routes of every resource (see [`crate::resources::each`]) and the
//! few routes beyond them, each family's in its own module.

pub mod admincerts;
pub mod devices;
pub mod hooks;
pub mod journals;
pub mod pbx;
pub mod platform;
pub mod preferences;
pub mod sipservers;
pub mod snapshots;
pub mod sounds;

use axum::{routing::get, Router};

use super::openapi;
use super::resource::routes;
use super::AppState;
use crate::resources::{Resource, Visit};

pub fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/api/", get(openapi::index).options(openapi::root_options))
        .route(
            "/api",
            get(|| async { axum::response::Redirect::permanent("/api/") }),
        )
        .route("/api/openapi.json", get(openapi::spec))
        .route("/api/journals/", get(journals::list))
        .route("/api/journals/{id}", get(journals::get_one))
        .route(
            "/api/journals",
            get(|| async { axum::response::Redirect::permanent("/api/journals/") }),
        );
    r = r
        .merge(preferences::router())
        .merge(platform::router())
        .merge(sipservers::router())
        .merge(sounds::router())
        .merge(hooks::router())
        .merge(devices::router())
        .merge(pbx::router())
        .merge(admincerts::router())
        .merge(snapshots::router());
    struct Routes(Router<AppState>);
    impl Visit for Routes {
        fn visit<R: Resource>(&mut self) {
            let r = std::mem::take(&mut self.0);
            self.0 = r.merge(routes::<R>());
        }
    }
    let mut all = Routes(r);
    crate::resources::each(&mut all);
    all.0
}
