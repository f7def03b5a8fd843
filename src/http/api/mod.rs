//! `/api/`: one module per resource family; this file lists them once, for the router and
//! for the OpenAPI description, so the two cannot drift apart.

pub mod admins;
pub mod callforwards;
pub mod contacts;
pub mod customers;
pub mod devices;
pub mod hooks;
pub mod journals;
pub mod numbers;
pub mod preferences;
pub mod resellers;
pub mod sipservers;
pub mod subscribers;

use axum::{routing::get, Router};

use super::openapi::{self, ResourceDoc};
use super::resource::{routes, Resource};
use super::AppState;

/// Calls `$f::<R>()` for every resource, in the order the documentation lists them.
macro_rules! each_resource {
    ($f:ident) => {
        vec![
            $f::<resellers::Resellers>(),
            $f::<admins::Admins>(),
            $f::<admins::ApiKeys>(),
            $f::<resellers::Domains>(),
            $f::<resellers::BillingProfiles>(),
            $f::<contacts::SystemContacts>(),
            $f::<contacts::CustomerContacts>(),
            $f::<customers::Customers>(),
            $f::<subscribers::Subscribers>(),
            $f::<numbers::Numbers>(),
            $f::<callforwards::CallForwards>(),
            $f::<callforwards::CfDestinationSets>(),
            $f::<callforwards::CfTimeSets>(),
            $f::<callforwards::CfMappings>(),
            $f::<preferences::SubscriberPreferences>(),
            $f::<preferences::DomainPreferences>(),
            $f::<sipservers::SipServers>(),
            $f::<hooks::CustomerBalances>(),
            $f::<hooks::Hooks>(),
            $f::<hooks::HookExecutions>(),
            $f::<devices::DeviceModels>(),
            $f::<devices::DeviceTemplates>(),
            $f::<devices::DeviceProfiles>(),
            $f::<devices::CustomerDeviceSettings>(),
            $f::<devices::Devices>(),
        ]
    };
}

pub fn router() -> Router<AppState> {
    let mut r = Router::new()
        .route("/api/", get(openapi::index))
        .route(
            "/api",
            get(|| async { axum::response::Redirect::permanent("/api/") }),
        )
        .route("/api/openapi.json", get(openapi::spec))
        .route("/api/journals/", get(journals::list))
        .route("/api/journals/{id}", get(journals::get_one))
        .route("/api/subscriberpreferencedefs/", get(preferences::defs))
        .route(
            "/api/subscriberpreferencedefs",
            get(|| async { axum::response::Redirect::permanent("/api/subscriberpreferencedefs/") }),
        )
        .route(
            "/api/journals",
            get(|| async { axum::response::Redirect::permanent("/api/journals/") }),
        );
    r = r
        .merge(sipservers::router())
        .merge(hooks::router())
        .merge(devices::router());
    for rr in each_resource!(routes) {
        r = r.merge(rr);
    }
    r
}

pub fn docs() -> Vec<ResourceDoc> {
    each_resource!(describe)
}

fn describe<R: Resource>() -> ResourceDoc {
    openapi::describe::<R>()
}

/// Every collection whose objects change, with the operations it takes (create, update,
/// delete): events are named after them.
pub fn event_sources() -> Vec<(&'static str, [bool; 3])> {
    each_resource!(source_of)
        .into_iter()
        .filter(|(_, ops)| ops.iter().any(|o| *o))
        .collect()
}

fn source_of<R: Resource>() -> (&'static str, [bool; 3]) {
    (R::NAME, [R::CAN_CREATE, R::CAN_UPDATE, R::CAN_DELETE])
}
