//! Hooks (`/api/hooks/`), their execution log (`/api/hookexecutions/`), the event catalog,
//! redelivery and secret rotation; and customer balances (`/api/customerbalances/`), which a
//! billing system drives and which raise `customer.balance.depleted|restored`.
//!
//! A hook's secrets — its signing secret and the credential it sends — are stored encrypted
//! and never returned: the signing secret is shown once, when created or rotated; a PUT
//! without the credential keeps it.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::resellers::check_reseller;
use crate::app::App;
use crate::changes::Op;
use crate::error::{Error, Problems, Result};
use crate::hooks::{self, net::check_url, sign};
use crate::model::{self, Actor};
use crate::resources::{record, Created, ListQuery, Resource};
use crate::store::hooks::{self as st, Balance, ExecutionRow, HookFields, HookRow};
use crate::store::resellers::domain_by_name;
use crate::store::{get_from_view, list_as, ms_of_ts, ts_of_ms, Arg, Conn};

mod actions;
mod balances;
mod executions;
mod validate;
pub use actions::*;
pub use balances::*;
pub use executions::*;
use validate::*;

pub struct Hooks;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct HookAuth {
    /// none, basic, bearer or header (a named API-key header).
    #[serde(rename = "type")]
    pub kind: String,
    /// basic: the user name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// header: the header's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookFilters {
    /// Only objects in this domain (by name).
    #[serde(default)]
    pub domain: Option<String>,
    /// Only this SIP server and subscribers homed on it (admins).
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub sipserver_id: Option<i64>,
    /// Only this customer and its subscribers.
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub customer_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Hook {
    pub id: i64,
    /// The reseller whose objects it sees; null: the operator's, sees everything.
    pub reseller_id: Option<i64>,
    pub name: String,
    /// Event names or patterns: `subscriber.created`, `subscriber.*`, `*`.
    pub events: Vec<String>,
    /// before (inside the request: may veto or modify) or after (delivered from the outbox).
    pub phase: String,
    /// http or script.
    pub kind: String,
    pub url: Option<String>,
    pub method: String,
    /// script: the executable's file name in the operator's hooks directory.
    pub path: Option<String>,
    pub auth: HookAuth,
    /// 1 runs first.
    pub priority: i64,
    /// enabled, disabled or archived.
    pub status: String,
    /// Why the hook was disabled by voxprov itself (410 Gone, sustained failure).
    pub disabled_reason: Option<String>,
    /// Seconds, 1–30.
    pub timeout: i64,
    /// before-hooks: fail (refuse the request when the hook cannot answer) or ignore.
    pub failure_policy: String,
    pub filters: HookFilters,
    /// The request body as a template ({{subscriber.username}}); default: the JSON payload.
    pub body_template: Option<String>,
    /// Metadata key → JSON pointer into the answer, stored on the object.
    #[schema(value_type = Option<Object>)]
    pub response_map: Option<Value>,
    /// While a rotated-out secret still signs too.
    pub previous_secret_valid_until: Option<String>,
    pub consecutive_failures: i64,
    pub failing_since: Option<String>,
    /// Deliveries waiting to go out.
    pub pending_deliveries: i64,
    pub create_timestamp: String,
    pub modify_timestamp: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookAuthInput {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub username: Option<String>,
    /// basic: absent on PUT/PATCH keeps the stored one. Never returned.
    #[serde(default)]
    #[schema(write_only)]
    pub password: Option<String>,
    /// bearer: absent keeps the stored one. Never returned.
    #[serde(default)]
    #[schema(write_only)]
    pub token: Option<String>,
    #[serde(default)]
    pub header: Option<String>,
    /// header: the header's value; absent keeps the stored one. Never returned.
    #[serde(default)]
    #[schema(write_only)]
    pub value: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookInput {
    pub name: String,
    pub events: Vec<String>,
    /// after (default) or before.
    #[serde(default)]
    pub phase: Option<String>,
    /// http (default) or script.
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    /// POST (default), PUT or PATCH.
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub auth: Option<HookAuthInput>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub priority: Option<i64>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub timeout: Option<i64>,
    #[serde(default)]
    pub failure_policy: Option<String>,
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub reseller_id: Option<i64>,
    #[serde(default)]
    pub filters: Option<HookFilters>,
    #[serde(default)]
    pub body_template: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub response_map: Option<Map<String, Value>>,
}

fn build(r: HookRow) -> Hook {
    let prev = r
        .previous_secret_until
        .filter(|t| *t > chrono::Utc::now().timestamp())
        .map(|t| ts_of_ms(t * 1000));
    Hook {
        id: r.id,
        reseller_id: r.reseller_id,
        name: r.name,
        events: serde_json::from_str(&r.events).unwrap_or_default(),
        phase: r.phase,
        kind: r.kind,
        url: r.url,
        method: r.method,
        path: r.path,
        auth: HookAuth {
            username: (r.auth_type == "basic")
                .then(|| r.auth_name.clone())
                .flatten(),
            header: (r.auth_type == "header")
                .then(|| r.auth_name.clone())
                .flatten(),
            kind: r.auth_type,
        },
        priority: r.priority,
        status: r.status,
        disabled_reason: r.disabled_reason,
        timeout: r.timeout,
        failure_policy: r.failure_policy,
        filters: HookFilters {
            domain: r.filter_domain,
            sipserver_id: r.filter_sipserver_id,
            customer_id: r.filter_customer_id,
        },
        body_template: r.body_template,
        response_map: r
            .response_map
            .as_deref()
            .and_then(|m| serde_json::from_str(m).ok()),
        previous_secret_valid_until: prev,
        consecutive_failures: r.consecutive_failures,
        failing_since: r.failing_since.map(ts_of_ms),
        pending_deliveries: r.pending_deliveries,
        create_timestamp: r.create_timestamp,
        modify_timestamp: r.modify_timestamp,
    }
}

#[async_trait]
impl Resource for Hooks {
    const NAME: &'static str = "hooks";
    const NGCP: bool = false;
    const PREPARES: bool = true;
    /// A body template is rendered once with a sample event, in a renderer process under
    /// the limits every delivery has: one that runs out of instructions, writes too much,
    /// takes too long or too much memory is refused now, not at its first delivery.
    async fn prepare(app: &App, actor: &Actor, doc: &Value) -> Result<()> {
        let Some(t) = doc.get("body_template").and_then(Value::as_str) else {
            return Ok(());
        };
        if t.len() > 65536 || crate::templating::check_json_body_syntax(t).is_err() {
            return Ok(()); // said by the validation, with its reason
        }
        let event = doc
            .get("events")
            .and_then(|e| e.get(0))
            .and_then(Value::as_str)
            .unwrap_or("subscriber.updated");
        let ctx = hooks::call::template_context(&sample_payload(event));
        let owner = actor
            .scope()
            .or_else(|| doc.get("reseller_id").and_then(Value::as_i64));
        app.hooks
            .caller
            .templates
            .trial_json_body(owner, t, ctx, crate::templating::HOOK_BODY)
            .await
            .map_err(|e| match e.is_final() {
                true => Error::invalid("body_template", e.to_string()),
                false => Error::Unavailable(format!("body_template cannot be checked now: {e}")),
            })
    }
    const SUMMARY: &'static str = "Event hooks: before (veto or modify) and after (signed, retried deliveries); DELETE archives";
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("name", "name, * wildcard"),
        ("phase", "before or after"),
        ("kind", "http or script"),
        ("status", "enabled, disabled or archived"),
        ("reseller_id", "owning reseller"),
    ];
    const ORDER_BY: &'static [(&'static str, &'static str)] =
        &[("id", "id"), ("name", "name"), ("priority", "priority")];
    /// The volatile fields are here too: a PATCH carries them as they are.
    const READ_ONLY: &'static [&'static str] = &[
        "id",
        "previous_secret_valid_until",
        "create_timestamp",
        "modify_timestamp",
        "disabled_reason",
        "consecutive_failures",
        "failing_since",
        "pending_deliveries",
    ];
    const VOLATILE: &'static [&'static str] = &[
        "disabled_reason",
        "consecutive_failures",
        "failing_since",
        "pending_deliveries",
    ];
    type Repr = Hook;
    type Input = HookInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Hook>, Option<i64>)> {
        let w = q.where_scoped(
            actor,
            &["name", "phase", "kind", "status"],
            &["reseller_id"],
        )?;
        let (rows, total) =
            list_as::<HookRow>(c, st::HOOK_COLS, st::HOOK_FROM, &w, &q.page).await?;
        Ok((rows.into_iter().map(build).collect(), total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Hook>> {
        Ok(st::get(c, id, lock).await?.map(build))
    }
    async fn create(c: &mut Conn, app: &App, actor: &Actor, i: HookInput) -> Result<Created> {
        let f = validate(c, app, actor, i, None).await?;
        let secret = sign::new_secret();
        let id = st::insert(c, &f, &app.cipher.encrypt(&secret)?).await?;
        let mut once = Map::new();
        once.insert("secret".into(), json!(secret));
        Ok(Created {
            id,
            once: Some(once),
        })
    }
    async fn update(
        c: &mut Conn,
        app: &App,
        actor: &Actor,
        id: i64,
        old: &Hook,
        i: HookInput,
    ) -> Result<()> {
        let row = st::get(c, id, false)
            .await?
            .ok_or_else(|| Error::not_found("hook"))?;
        let f = validate(c, app, actor, i, Some(&row)).await?;
        if f.phase != old.phase {
            return Err(Error::invalid("phase", "cannot change: create a new hook"));
        }
        st::update(c, id, &f, &old.status).await
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &Hook) -> Result<()> {
        st::archive(c, id).await
    }
    fn id(r: &Hook) -> i64 {
        r.id
    }
    fn reseller_of(r: &Hook) -> Option<i64> {
        r.reseller_id
    }
    fn links(r: &Hook) -> Vec<(&'static str, String)> {
        vec![(
            "hookexecutions",
            format!("/api/hookexecutions/?hook_id={}", r.id),
        )]
    }
}
