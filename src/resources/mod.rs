//! The resources: every collection's declaration (name, filters, order, read-only fields,
//! links), its input and its rules (validate, create, update, delete, cascades), one module
//! per family. They know nothing of HTTP: the API (the `http` face), the web UI (through the
//! API), bulk import and the command line all act through them.
//!
//! **Adding a collection** (the recipe):
//! 1. `store/<family>.rs`: its row type and SQL; a migration per database
//!    (`migrations/sqlite/`, `migrations/postgres/`, same number, same tables).
//! 2. `resources/<family>.rs`: the representation (`Repr`, `Serialize + ToSchema`), the input
//!    (`Input`, `Deserialize + ToSchema`, `deny_unknown_fields`), and `impl Resource`: `NAME`,
//!    `SUMMARY`, `FILTERS`, `ORDER_BY`, `READ_ONLY`, who may read and write it
//!    (`ADMIN_ONLY`/`ADMIN_WRITES`/`check_access`), `list`/`load`, and the rules in
//!    `create`/`update`/`delete` — each error a `422` naming its field, references to other
//!    objects checked within the actor's reseller, `423` for what is still in use.
//! 3. List it once in [`each`]: the API's routes, the OpenAPI document, the web UI's pages and
//!    the hooks' event names (`<singular>.created|updated|deleted`) follow from that line.
//! 4. If a SIP server must hold it: its rows in `targets/` (desired rows, diff, check/repair).
//! 5. Routes beyond the generic ones (an action such as `/reset_token`): a thin handler in
//!    `http/api/<family>.rs` calling a function here.
//! 6. Black-box tests in `tests/` over HTTP, on SQLite and PostgreSQL (`both!`): every field's
//!    422, reseller isolation, and what it does on a real SIP server where it has an effect.

pub mod admincerts;
pub mod admins;
pub mod bulk;
pub mod callforwards;
pub mod cdrs;
pub mod contacts;
pub mod contracts;
pub mod customers;
pub mod devices;
pub mod handling;
pub mod hooks;
pub mod numbers;
pub mod pbx;
pub mod peering;
pub mod preferences;
pub mod profiles;
pub mod query;
pub mod registrations;
pub mod resellers;
pub mod routing;
pub mod sipservers;
pub mod sounds;
pub mod subscribers;
pub mod write;

use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::app::App;
use crate::error::{Error, Result};
use crate::model::Actor;
use crate::store::Conn;

pub use query::{parse_id, parse_list_query, ListQuery, MAX_ROWS};
pub use write::{create_one, delete_one, on_writer, parse_json, record, to_input, update_one};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
/// What a bulk import creates, with its CSV columns (a resource's bulk declaration: see
/// [`Resource::BULK`]; [`bulk`] does the import).
pub enum Kind {
    Subscribers,
    Customers,
    /// Numbers added to existing subscribers (as aliases, or as the new primary).
    Numbers,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Subscribers => "subscribers",
            Kind::Customers => "customers",
            Kind::Numbers => "numbers",
        }
    }
    /// CSV columns: (name, type). Types: i = integer, b = boolean, s = text, n = number list.
    pub fn columns(self) -> &'static [(&'static str, char)] {
        match self {
            Kind::Subscribers => &[
                ("customer_id", 'i'),
                ("domain", 's'),
                ("domain_id", 'i'),
                ("username", 's'),
                ("password", 's'),
                ("webusername", 's'),
                ("webpassword", 's'),
                ("status", 's'),
                ("lock", 'i'),
                ("administrative", 'b'),
                ("external_id", 's'),
                ("display_name", 's'),
                ("email", 's'),
                ("home_server_id", 'i'),
                ("cc", 's'),
                ("ac", 's'),
                ("sn", 's'),
                ("alias_numbers", 'n'),
            ],
            Kind::Customers => &[
                ("contact_id", 'i'),
                ("billing_profile_id", 'i'),
                ("type", 's'),
                ("status", 's'),
                ("external_id", 's'),
                ("max_subscribers", 'i'),
            ],
            Kind::Numbers => &[
                ("subscriber_id", 'i'),
                ("cc", 's'),
                ("ac", 's'),
                ("sn", 's'),
                ("is_primary", 'b'),
            ],
        }
    }
}

/// What a resource module provides.
#[async_trait]
pub trait Resource: Send + Sync + 'static {
    /// Collection name, as in `/api/<NAME>/` and the journal.
    const NAME: &'static str;
    const SUMMARY: &'static str;
    const CAN_CREATE: bool = true;
    const CAN_UPDATE: bool = true;
    const CAN_DELETE: bool = true;
    /// Accepted filter parameters and what they match.
    const FILTERS: &'static [(&'static str, &'static str)];
    /// `order_by` values and the column each sorts by.
    const ORDER_BY: &'static [(&'static str, &'static str)] = &[("id", "id")];
    /// Representation fields clients cannot set. PUT and PATCH accept them unchanged (so a
    /// GET → modify → PUT round trip works); a different value is refused.
    const READ_ONLY: &'static [&'static str];
    /// Fields that must have a value: a document setting one to null is refused (422).
    const REQUIRED: &'static [&'static str] = &[];
    /// Read-only fields that change on their own (a sync status): accepted with any value
    /// and ignored, so a GET → PUT round trip does not race them.
    const VOLATILE: &'static [&'static str] = &[];

    type Repr: Serialize + ToSchema + Send + Sync;
    type Input: DeserializeOwned + ToSchema + Send;

    /// POST also takes a JSON array or a text/csv body (bulk import of this kind).
    const BULK: Option<Kind> = None;

    /// Media types POST also takes as a raw body (a sound file's audio/x-wav), turned into
    /// the JSON document by [`Resource::raw_document`] with the query string's parameters.
    const RAW_BODY: &'static [&'static str] = &[];
    /// The query parameters a raw body comes with (for the API's description).
    const RAW_QUERY: &'static [(&'static str, &'static str)] = &[];
    /// The largest raw body POST takes.
    fn raw_limit(app: &App) -> usize {
        app.cfg.max_body_bytes
    }
    fn raw_document(_bytes: &[u8], _query: &[(String, String)]) -> Result<Value> {
        Err(Error::UnsupportedMediaType(
            "only JSON is accepted here".into(),
        ))
    }

    /// Whether NGCP has this collection. NGCP's clients discover collections from
    /// `OPTIONS /api/` and take every `Link` there for one of NGCP's relations, so voxprov's
    /// own are left out of it (`GET /api/` and the OpenAPI document list them).
    const NGCP: bool = true;

    /// Only admins may see or touch this collection at all (infrastructure, system objects).
    const ADMIN_ONLY: bool = false;
    /// Everyone reads (within their scope); only admins write.
    const ADMIN_WRITES: bool = false;

    /// Fields whose text is kept as an argon2 hash (a web password): hashed before the write's
    /// transaction opens (see [`crate::crypto::Prehashed`]).
    const HASHED: &'static [&'static str] = &[];

    /// Whether [`Resource::prepare`] has work to do (PATCH then builds the new document before
    /// the transaction, to hand it over).
    const PREPARES: bool = false;
    /// Checks on the new document that are too slow to run while the write transaction holds
    /// the writer (a trial render of a template someone wrote). Runs before the transaction
    /// opens, on the body of a POST or PUT and on the patched document of a PATCH.
    async fn prepare(_app: &App, _actor: &Actor, _doc: &Value) -> Result<()> {
        Ok(())
    }

    /// Who may touch this collection at all, before anything is loaded.
    fn check_access(actor: &Actor, write: bool) -> Result<()> {
        if Self::ADMIN_ONLY || (write && Self::ADMIN_WRITES) {
            actor.check_admin()?;
        }
        if write {
            actor.check_write()?;
        }
        Ok(())
    }

    async fn list(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Self::Repr>, Option<i64>)>;
    /// The full representation (secrets included, as the journal and admins see it), or
    /// `None`. `lock`: inside a write transaction, lock the row against concurrent writers.
    async fn load(c: &mut Conn, app: &App, id: i64, lock: bool) -> Result<Option<Self::Repr>>;
    async fn create(
        _c: &mut Conn,
        _app: &App,
        _actor: &Actor,
        _input: Self::Input,
    ) -> Result<Created> {
        Err(Error::MethodNotAllowed("POST is not allowed here".into()))
    }
    /// [`Resource::create`], with the new object's full representation where the resource
    /// builds it from what it wrote (saving the statements that would read it back; it must
    /// equal what [`Resource::load`] gives). `None`: it is loaded.
    async fn create_built(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        input: Self::Input,
    ) -> Result<(Created, Option<Self::Repr>)> {
        Ok((Self::create(c, app, actor, input).await?, None))
    }
    async fn update(
        _c: &mut Conn,
        _app: &App,
        _actor: &Actor,
        _id: i64,
        _old: &Self::Repr,
        _input: Self::Input,
    ) -> Result<()> {
        Err(Error::MethodNotAllowed(
            "PUT and PATCH are not allowed here".into(),
        ))
    }
    async fn delete(
        _c: &mut Conn,
        _app: &App,
        _actor: &Actor,
        _id: i64,
        _old: &Self::Repr,
    ) -> Result<()> {
        Err(Error::MethodNotAllowed("DELETE is not allowed here".into()))
    }

    fn id(repr: &Self::Repr) -> i64;
    /// The reseller owning the object; `None` for objects only admins may see.
    fn reseller_of(repr: &Self::Repr) -> Option<i64>;
    /// Related links (`ngcp:<rel>`).
    fn links(_repr: &Self::Repr) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// The representation as `actor` may see it (e.g. without secrets).
    fn view(repr: &Self::Repr, _actor: &Actor) -> Map<String, Value> {
        to_map(repr)
    }
    /// Gone from the API although its record stays (a terminated subscriber: kept for
    /// billing and the journal, listed only when asked for by status): GET, PUT, PATCH and
    /// DELETE answer 404; its journal still answers.
    fn gone(_repr: &Self::Repr) -> bool {
        false
    }
    fn visible(repr: &Self::Repr, actor: &Actor) -> bool {
        match actor.scope() {
            None => true,
            Some(r) => Self::reseller_of(repr) == Some(r),
        }
    }
}

pub struct Created {
    pub id: i64,
    /// Fields shown once in the creation response (e.g. an API key's secret).
    pub once: Option<Map<String, Value>>,
}

impl From<i64> for Created {
    fn from(id: i64) -> Self {
        Created { id, once: None }
    }
}

pub fn to_map<T: Serialize>(v: &T) -> Map<String, Value> {
    match serde_json::to_value(v) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    }
}

/// The input of a collection nobody writes to.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
pub struct NoInput {}

/// Something done once per resource type (routes, documentation, event names).
pub trait Visit {
    fn visit<R: Resource>(&mut self);
}

/// Every collection, once, in the order the documentation lists them: the API's routes,
/// the OpenAPI document, the web UI's pages and the hooks' events all follow this list.
pub fn each(v: &mut impl Visit) {
    v.visit::<resellers::Resellers>();
    v.visit::<admins::Admins>();
    v.visit::<admins::ApiKeys>();
    v.visit::<resellers::Domains>();
    v.visit::<resellers::BillingProfiles>();
    v.visit::<contacts::SystemContacts>();
    v.visit::<contracts::Contracts>();
    v.visit::<contacts::CustomerContacts>();
    v.visit::<customers::Customers>();
    v.visit::<profiles::ProfileSets>();
    v.visit::<profiles::Profiles>();
    v.visit::<subscribers::Subscribers>();
    v.visit::<numbers::Numbers>();
    v.visit::<callforwards::CallForwards>();
    v.visit::<callforwards::CfDestinationSets>();
    v.visit::<callforwards::CfTimeSets>();
    v.visit::<callforwards::CfMappings>();
    v.visit::<preferences::SubscriberPreferences>();
    v.visit::<preferences::CustomerPreferences>();
    v.visit::<preferences::DomainPreferences>();
    v.visit::<sounds::SoundSets>();
    v.visit::<sounds::SoundHandles>();
    v.visit::<sounds::SoundFiles>();
    v.visit::<peering::PeeringGroups>();
    v.visit::<peering::PeeringServers>();
    v.visit::<peering::PeeringRules>();
    v.visit::<peering::PeeringInboundRules>();
    v.visit::<routing::RewriteRuleSets>();
    v.visit::<routing::RewriteRules>();
    v.visit::<routing::NcosLevels>();
    v.visit::<routing::NcosPatterns>();
    v.visit::<pbx::tenants::PbxTenants>();
    v.visit::<pbx::extensions::PbxExtensions>();
    v.visit::<pbx::ringgroups::PbxRingGroups>();
    v.visit::<pbx::timers::PbxDayTimers>();
    v.visit::<pbx::timers::PbxHolidayTimers>();
    v.visit::<pbx::inbound::PbxInboundRoutes>();
    v.visit::<cdrs::Cdrs>();
    v.visit::<sipservers::SipServers>();
    v.visit::<hooks::CustomerBalances>();
    v.visit::<hooks::Hooks>();
    v.visit::<hooks::HookExecutions>();
    v.visit::<devices::DeviceModels>();
    v.visit::<devices::DeviceTemplates>();
    v.visit::<devices::DeviceProfiles>();
    v.visit::<devices::CustomerDeviceSettings>();
    v.visit::<devices::Devices>();
}

/// Every collection whose objects change, with the operations it takes (create, update,
/// delete): events are named after them.
pub fn event_sources() -> Vec<(&'static str, [bool; 3])> {
    struct Sources(Vec<(&'static str, [bool; 3])>);
    impl Visit for Sources {
        fn visit<R: Resource>(&mut self) {
            let ops = [R::CAN_CREATE, R::CAN_UPDATE, R::CAN_DELETE];
            if ops.iter().any(|o| *o) {
                self.0.push((R::NAME, ops));
            }
        }
    }
    let mut s = Sources(Vec::new());
    each(&mut s);
    s.0
}
