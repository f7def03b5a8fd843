//! Hooks (`/api/hooks/`), their execution log (`/api/hookexecutions/`), the event catalog,
//! redelivery and secret rotation; and customer balances (`/api/customerbalances/`), which a
//! billing system drives and which raise `customer.balance.depleted|restored`.
//!
//! A hook's secrets — its signing secret and the credential it sends — are stored encrypted
//! and never returned: the signing secret is shown once, when created or rotated; a PUT
//! without the credential keeps it.

use async_trait::async_trait;
use axum::{
    body::Body,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use utoipa::ToSchema;

use super::resellers::check_reseller;
use crate::changes::Op;
use crate::error::{Error, Result};
use crate::hooks::{self, net::check_url, sign};
use crate::http::auth::Auth;
use crate::http::resource::{parse_id, record, Created, ListQuery, Resource};
use crate::http::{App, AppState};
use crate::model::{self, Actor};
use crate::store::hooks::{self as st, Balance, ExecutionRow, HookFields, HookRow};
use crate::store::resellers::domain_by_name;
use crate::store::{get_from_view, list_as, ms_of_ts, ts_of_ms, Arg, Conn};

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

/// Header names a hook may not set: they carry the signature, or HTTP's own framing.
const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
];

fn check_events(events: &[String]) -> Result<String> {
    if events.is_empty() {
        return Err(Error::invalid("events", "must name at least one event"));
    }
    if events.len() > 100 {
        return Err(Error::invalid("events", "at most 100 entries"));
    }
    let catalog = hooks::catalog(&super::event_sources());
    for (i, e) in events.iter().enumerate() {
        let known = e == "*"
            || catalog.iter().any(|(n, _, _)| n == e)
            || e.strip_suffix(".*").is_some_and(|pre| {
                catalog
                    .iter()
                    .any(|(n, _, _)| n.strip_prefix(pre).is_some_and(|r| r.starts_with('.')))
            });
        if !known {
            return Err(Error::invalid(
                format!("events[{i}]"),
                format!(
                    "unknown event '{}'; see /api/hooks/events",
                    e.chars().take(80).collect::<String>()
                ),
            ));
        }
    }
    Ok(serde_json::to_string(events)?)
}

fn one_of(field: &str, v: Option<String>, allowed: &[&str], default: &str) -> Result<String> {
    let v = v.unwrap_or_else(|| default.to_string());
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(Error::invalid(
            field,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

fn in_range(field: &str, v: Option<i64>, lo: i64, hi: i64, default: i64) -> Result<i64> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return Err(Error::invalid(
            field,
            format!("must be between {lo} and {hi}"),
        ));
    }
    Ok(v)
}

/// Auth type, name and the credential to store (encrypted); absent credentials are kept from
/// `old` when the type is unchanged.
fn check_auth(
    app: &App,
    a: Option<HookAuthInput>,
    old: Option<&HookRow>,
) -> Result<(String, Option<String>, Option<String>)> {
    let Some(a) = a else {
        return Ok(("none".into(), None, None));
    };
    let kind = one_of(
        "auth.type",
        Some(a.kind),
        &["none", "basic", "bearer", "header"],
        "none",
    )?;
    let kept = old
        .filter(|o| o.auth_type == kind)
        .and_then(|o| o.auth_value_enc.clone());
    let secret = |field: &str, v: Option<String>| -> Result<Option<String>> {
        match v {
            Some(v) if v.is_empty() => Err(Error::invalid(field, "must not be empty")),
            Some(v) => {
                let v = model::required_text(field, v, 1024)?;
                Ok(Some(app.cipher.encrypt(&v)?))
            }
            None if kept.is_some() => Ok(kept.clone()),
            None => Err(Error::invalid(field, "is required")),
        }
    };
    let unexpected = |field: &str, v: &Option<String>| -> Result<()> {
        if v.is_some() {
            return Err(Error::invalid(
                field,
                format!("does not apply to auth type {kind}"),
            ));
        }
        Ok(())
    };
    match kind.as_str() {
        "none" => {
            unexpected("auth.username", &a.username)?;
            unexpected("auth.password", &a.password)?;
            unexpected("auth.token", &a.token)?;
            unexpected("auth.header", &a.header)?;
            unexpected("auth.value", &a.value)?;
            Ok((kind, None, None))
        }
        "basic" => {
            unexpected("auth.token", &a.token)?;
            unexpected("auth.header", &a.header)?;
            unexpected("auth.value", &a.value)?;
            let user = model::non_empty("auth.username", a.username.unwrap_or_default(), 255)?;
            if user.contains(':') {
                return Err(Error::invalid("auth.username", "must not contain ':'"));
            }
            Ok((kind, Some(user), secret("auth.password", a.password)?))
        }
        "bearer" => {
            unexpected("auth.username", &a.username)?;
            unexpected("auth.password", &a.password)?;
            unexpected("auth.header", &a.header)?;
            unexpected("auth.value", &a.value)?;
            Ok((kind, None, secret("auth.token", a.token)?))
        }
        _ => {
            unexpected("auth.username", &a.username)?;
            unexpected("auth.password", &a.password)?;
            unexpected("auth.token", &a.token)?;
            let h = a.header.unwrap_or_default();
            if h.is_empty()
                || h.len() > 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Error::invalid(
                    "auth.header",
                    "must be a header name (letters, digits, - and _)",
                ));
            }
            if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
                return Err(Error::invalid(
                    "auth.header",
                    format!("'{h}' is set by voxprov itself"),
                ));
            }
            Ok((kind, Some(h), secret("auth.value", a.value)?))
        }
    }
}

async fn validate(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    i: HookInput,
    old: Option<&HookRow>,
) -> Result<HookFields> {
    let name = model::non_empty("name", i.name, 128)?;
    let events = check_events(&i.events)?;
    let phase = one_of("phase", i.phase, &["before", "after"], "after")?;
    let kind = one_of("kind", i.kind, &["http", "script"], "http")?;
    let reseller_id = match actor.scope() {
        Some(own) => {
            if i.reseller_id.is_some_and(|r| r != own) {
                return Err(Error::invalid(
                    "reseller_id",
                    format!("reseller {} does not exist", i.reseller_id.unwrap_or(0)),
                ));
            }
            Some(own)
        }
        None => {
            if let Some(r) = i.reseller_id {
                check_reseller(c, r).await?;
            }
            i.reseller_id
        }
    };
    let allow_private = app.hooks.config().allow_private_targets;
    let (url, method, path) = if kind == "http" {
        if i.path.is_some() {
            return Err(Error::invalid("path", "applies to script hooks only"));
        }
        let url = i
            .url
            .ok_or_else(|| Error::invalid("url", "is required for http hooks"))?;
        if url.len() > 2048 {
            return Err(Error::invalid("url", "must be at most 2048 characters"));
        }
        check_url(&url, allow_private).map_err(|e| Error::invalid("url", e))?;
        let method = one_of(
            "method",
            i.method.map(|m| m.to_ascii_uppercase()),
            &["POST", "PUT", "PATCH"],
            "POST",
        )?;
        (Some(url), method, None)
    } else {
        if !actor.is_admin() {
            return Err(Error::invalid(
                "kind",
                "script hooks run on the server: only admins may add them",
            ));
        }
        if i.url.is_some() {
            return Err(Error::invalid("url", "applies to http hooks only"));
        }
        let path = i
            .path
            .ok_or_else(|| Error::invalid("path", "is required for script hooks"))?;
        crate::hooks::call::script_path(app.hooks.config().script_dir.as_deref(), &path)?;
        (None, "POST".to_string(), Some(path))
    };
    let (auth_type, auth_name, auth_value_enc) = check_auth(app, i.auth, old)?;
    if kind == "script" && auth_type != "none" {
        return Err(Error::invalid("auth", "applies to http hooks only"));
    }
    let failure_policy = one_of(
        "failure_policy",
        i.failure_policy,
        &["fail", "ignore"],
        "fail",
    )?;
    if phase == "after" && failure_policy != "fail" {
        return Err(Error::invalid(
            "failure_policy",
            "applies to before-hooks; after-hooks are retried until delivered or given up",
        ));
    }
    let f = i.filters.unwrap_or(HookFilters {
        domain: None,
        sipserver_id: None,
        customer_id: None,
    });
    if let Some(d) = &f.domain {
        match domain_by_name(c, d).await? {
            Some(dom) if reseller_id.is_none_or(|r| r == dom.reseller_id) => {}
            _ => {
                return Err(Error::invalid(
                    "filters.domain",
                    format!("domain '{d}' does not exist"),
                ))
            }
        }
    }
    if let Some(s) = f.sipserver_id {
        if reseller_id.is_some() || !actor.is_admin() {
            return Err(Error::invalid(
                "filters.sipserver_id",
                "SIP servers are the operator's: only for admins' hooks",
            ));
        }
        if !crate::store::exists(c, "sipservers", "id = $1", s).await? {
            return Err(Error::invalid(
                "filters.sipserver_id",
                format!("sipserver {s} does not exist"),
            ));
        }
    }
    if let Some(cu) = f.customer_id {
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT reseller_id FROM customers WHERE id = $1")
                .bind(cu)
                .fetch_optional(&mut *c)
                .await?;
        let visible = matches!(owner, Some(o) if reseller_id.is_none_or(|r| r == o));
        if !visible {
            return Err(Error::invalid(
                "filters.customer_id",
                format!("customer {cu} does not exist"),
            ));
        }
    }
    let body_template = match i.body_template {
        Some(t) if t.len() > 65536 => {
            return Err(Error::invalid("body_template", "must be at most 64 KiB"))
        }
        Some(t) => {
            crate::templating::check_json_body_syntax(&t)
                .map_err(|e| Error::invalid("body_template", e))?;
            Some(t)
        }
        None => None,
    };
    let response_map = match i.response_map {
        None => None,
        Some(m) => {
            if m.len() > 20 {
                return Err(Error::invalid("response_map", "at most 20 entries"));
            }
            for (k, v) in &m {
                if k.is_empty()
                    || k.len() > 64
                    || !k
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
                {
                    return Err(Error::invalid(
                        format!("response_map.{k}"),
                        "keys are 1–64 letters, digits, '_', '.' or '-'",
                    ));
                }
                match v.as_str() {
                    Some(p) if p.is_empty() || p.starts_with('/') => {}
                    _ => {
                        return Err(Error::invalid(
                            format!("response_map.{k}"),
                            "must be a JSON pointer such as /data/id",
                        ))
                    }
                }
            }
            Some(Value::Object(m).to_string())
        }
    };
    Ok(HookFields {
        reseller_id,
        name,
        events,
        phase,
        kind,
        url,
        method,
        path,
        auth_type,
        auth_name,
        auth_value_enc,
        priority: in_range("priority", i.priority, 1, 1000, 100)?,
        status: one_of(
            "status",
            i.status,
            &["enabled", "disabled", "archived"],
            "enabled",
        )?,
        timeout: in_range("timeout", i.timeout, 1, 30, 5)?,
        failure_policy,
        filter_domain: f.domain,
        filter_sipserver_id: f.sipserver_id,
        filter_customer_id: f.customer_id,
        body_template,
        response_map,
    })
}

#[async_trait]
impl Resource for Hooks {
    const NAME: &'static str = "hooks";
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

pub struct HookExecutions;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Execution {
    pub id: i64,
    pub hook_id: i64,
    pub reseller_id: Option<i64>,
    /// after-hooks: the delivery (outbox row) this attempt was for.
    pub delivery_id: Option<i64>,
    /// The message id (the webhook-id header), the same for every attempt of a delivery.
    pub webhook_id: Option<String>,
    pub phase: String,
    pub event: String,
    pub resource: Option<String>,
    pub resource_id: Option<i64>,
    pub attempt: i64,
    pub timestamp: String,
    pub duration_ms: i64,
    /// success, failure, timeout, error or vetoed.
    pub outcome: String,
    pub error: Option<String>,
    /// method, url, headers (credentials masked), body (truncated at 16 KiB).
    #[schema(value_type = Object)]
    pub request: Value,
    /// status, headers, body (truncated); a script's exit status, stdout and stderr.
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
    /// Where its delivery stands now: pending, delivered, failed or cancelled.
    pub delivery_status: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct NoInput {}

fn exec_of(r: ExecutionRow) -> Execution {
    Execution {
        id: r.id,
        hook_id: r.hook_id,
        reseller_id: r.reseller_id,
        delivery_id: r.delivery_id,
        webhook_id: r.webhook_id,
        phase: r.phase,
        event: r.event,
        resource: r.resource,
        resource_id: r.object_id,
        attempt: r.attempt,
        timestamp: r.ts,
        duration_ms: r.duration_ms,
        outcome: r.outcome,
        error: r.error,
        request: serde_json::from_str(&r.request).unwrap_or(Value::Null),
        response: r
            .response
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
        delivery_status: r.delivery_status,
    }
}

#[async_trait]
impl Resource for HookExecutions {
    const NAME: &'static str = "hookexecutions";
    const SUMMARY: &'static str =
        "Every attempt of every hook: request, response, duration, outcome";
    const CAN_CREATE: bool = false;
    const CAN_UPDATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("hook_id", "the hook"),
        ("event", "event name, * wildcard"),
        (
            "status",
            "outcome: success, failure, timeout, error or vetoed",
        ),
        ("phase", "before or after"),
        ("delivery_id", "the delivery"),
        ("webhook_id", "the message id"),
        ("since", "from this time (YYYY-MM-DD HH:MM:SS, UTC)"),
        ("until", "up to this time"),
    ];
    const READ_ONLY: &'static [&'static str] = &[];
    type Repr = Execution;
    type Input = NoInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Execution>, Option<i64>)> {
        let mut w = q.where_scoped(
            actor,
            &["event", "phase", "webhook_id"],
            &["hook_id", "delivery_id"],
        )?;
        if let Some(s) = q.get("status") {
            w.push("outcome = ?", Arg::Text(s.to_string()));
        }
        if let Some(s) = q.get("since") {
            w.push("ts >= ?", Arg::Text(s.to_string()));
        }
        if let Some(s) = q.get("until") {
            w.push("ts <= ?", Arg::Text(s.to_string()));
        }
        let (rows, total) =
            list_as::<ExecutionRow>(c, st::EXEC_COLS, st::EXEC_FROM, &w, &q.page).await?;
        Ok((rows.into_iter().map(exec_of).collect(), total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, _lock: bool) -> Result<Option<Execution>> {
        let row: Option<ExecutionRow> = get_from_view(
            c,
            "hook_executions",
            st::EXEC_COLS,
            st::EXEC_FROM,
            id,
            false,
        )
        .await?;
        Ok(row.map(exec_of))
    }
    fn id(r: &Execution) -> i64 {
        r.id
    }
    fn reseller_of(r: &Execution) -> Option<i64> {
        r.reseller_id
    }
    fn links(r: &Execution) -> Vec<(&'static str, String)> {
        vec![("hooks", format!("/api/hooks/{}", r.hook_id))]
    }
}

pub struct CustomerBalances;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceInput {
    /// The customer's cash balance; crossing 0 raises customer.balance.depleted or restored.
    pub cash_balance: f64,
    /// Free-time balance in seconds.
    #[serde(default, deserialize_with = "model::opt_int")]
    #[schema(value_type = Option<i64>)]
    pub free_time_balance: Option<i64>,
}

#[async_trait]
impl Resource for CustomerBalances {
    const NAME: &'static str = "customerbalances";
    const SUMMARY: &'static str =
        "Customers' balances (id = the customer's id), as a billing system drives them";
    const CAN_CREATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[("reseller_id", "owning reseller")];
    const READ_ONLY: &'static [&'static str] = &["id", "customer_id", "reseller_id"];
    type Repr = Balance;
    type Input = BalanceInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Balance>, Option<i64>)> {
        let w = q.where_scoped(actor, &[], &["reseller_id"])?;
        list_as(c, st::BALANCE_COLS, st::BALANCE_FROM, &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<Balance>> {
        get_from_view(c, "customers", st::BALANCE_COLS, st::BALANCE_FROM, id, lock).await
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        _: &Actor,
        id: i64,
        old: &Balance,
        i: BalanceInput,
    ) -> Result<()> {
        if !i.cash_balance.is_finite() || i.cash_balance.abs() > 1e15 {
            return Err(Error::invalid("cash_balance", "must be a finite amount"));
        }
        let free = i.free_time_balance.unwrap_or(old.free_time_balance);
        if free < 0 {
            return Err(Error::invalid("free_time_balance", "must not be negative"));
        }
        st::save_balance(c, id, i.cash_balance, free).await
    }
    fn id(r: &Balance) -> i64 {
        r.id
    }
    fn reseller_of(r: &Balance) -> Option<i64> {
        Some(r.reseller_id)
    }
    fn links(r: &Balance) -> Vec<(&'static str, String)> {
        vec![("customers", format!("/api/customers/{}", r.customer_id))]
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/hooks/events", get(events))
        .route("/api/hooks/{id}/executions", get(executions_of))
        .route("/api/hooks/{id}/redeliver", post(redeliver_range))
        .route("/api/hooks/{id}/rotate_secret", post(rotate_secret))
        .route("/api/hookexecutions/{id}/redeliver", post(redeliver_one))
}

/// A payload of `event` as hooks receive it, with a placeholder object.
fn sample_payload(event: &str) -> Value {
    let op = if event.ends_with(".created") {
        Op::Create
    } else if event.ends_with(".deleted") || event.ends_with(".terminated") {
        Op::Delete
    } else {
        Op::Update
    };
    // An exact name, else the collection of a pattern's prefix ("subscriber.*").
    let prefix = event.split('.').next().unwrap_or("");
    let catalog = hooks::catalog(&super::event_sources());
    let resource = catalog
        .iter()
        .find(|(e, _, _)| e == event)
        .or_else(|| {
            catalog
                .iter()
                .find(|(e, _, _)| e.split('.').next() == Some(prefix))
        })
        .map(|(_, r, _)| r.clone())
        .unwrap_or_else(|| "subscribers".into());
    let object = json!({ "id": 42, "…": "the object's representation, secrets masked" });
    hooks::payload(
        "msg_2d7c8c3f0f1b4e0e9a0f3b6a1c9d8e7f",
        event,
        op,
        &resource,
        Some(42),
        Some(&object),
        (op != Op::Create).then_some(&object),
        &json!({ "type": "admin", "id": 1, "name": "administrator" }),
        Some(1234),
    )
}

/// Every event a hook can take, with a sample payload.
async fn events(Auth(actor): Auth) -> Result<Response> {
    Hooks::check_access(&actor, false)?;
    let list: Vec<Value> = hooks::catalog(&super::event_sources())
        .into_iter()
        .map(|(event, resource, description)| {
            let sample = sample_payload(&event);
            json!({ "event": event, "resource": resource, "description": description, "sample": sample })
        })
        .collect();
    Ok(Json(json!({ "total_count": list.len(), "events": list })).into_response())
}

async fn executions_of(
    state: State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
) -> Result<Response> {
    let id = parse_id(&id)?;
    let mut c = state.store.read().await?;
    let hook = Hooks::load(&mut c, &state, id, false).await?;
    drop(c);
    if !hook.is_some_and(|h| Hooks::visible(&h, &auth.0)) {
        return Err(Error::NotFound(format!("hooks {id} not found")));
    }
    let q = match q.filter(|s| !s.is_empty()) {
        Some(q) => format!("{q}&hook_id={id}"),
        None => format!("hook_id={id}"),
    };
    crate::http::resource::list_handler::<HookExecutions>(state, auth, RawQuery(Some(q)), headers)
        .await
}

async fn load_hook_for_write(app: &App, actor: &Actor, id: &str) -> Result<Hook> {
    Hooks::check_access(actor, true)?;
    let id = parse_id(id)?;
    let mut c = app.store.read().await?;
    match Hooks::load(&mut c, app, id, false).await? {
        Some(h) if Hooks::visible(&h, actor) => Ok(h),
        _ => Err(Error::NotFound(format!("hooks {id} not found"))),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateInput {
    #[serde(default)]
    overlap_seconds: Option<i64>,
}

/// A JSON body that may be left out (then the defaults apply).
async fn optional_body<T: serde::de::DeserializeOwned + Default>(
    app: &App,
    body: Body,
) -> Result<T> {
    let bytes = axum::body::to_bytes(body, app.cfg.max_body_bytes)
        .await
        .map_err(|_| Error::PayloadTooLarge(app.cfg.max_body_bytes))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    let v: Value = crate::http::resource::parse_json(&bytes)?;
    crate::http::resource::to_input(v, &[], None)
}

/// A new signing secret, shown once; the old one keeps signing too for the overlap (default
/// a day) so receivers can switch without losing a message.
async fn rotate_secret(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let hook = load_hook_for_write(&app, &actor, &id).await?;
    let input: RotateInput = optional_body(&app, body).await?;
    let overlap = in_range(
        "overlap_seconds",
        input.overlap_seconds,
        0,
        7 * 24 * 3600,
        24 * 3600,
    )?;
    let secret = sign::new_secret();
    let mut tx = app.store.begin().await?;
    let row = st::get(&mut tx, hook.id, true)
        .await?
        .ok_or_else(|| Error::not_found("hook"))?;
    let until = chrono::Utc::now().timestamp() + overlap;
    st::rotate_secret(
        &mut tx,
        hook.id,
        &app.cipher.encrypt(&secret)?,
        &row.secret_enc,
        until,
    )
    .await?;
    let after = Hooks::load(&mut tx, &app, hook.id, false)
        .await?
        .ok_or_else(|| Error::not_found("hook"))?;
    record::<Hooks>(&mut tx, &actor, Op::Update, Some(&hook), Some(&after)).await?;
    tx.commit().await?;
    app.hooks.invalidate();
    Ok(Json(json!({
        "secret": secret,
        "previous_secret_valid_until": (overlap > 0).then(|| ts_of_ms(until * 1000)),
    }))
    .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverInput {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// failed (default): given-up deliveries; all: every delivery in the range again.
    #[serde(default)]
    status: Option<String>,
}

fn check_time(field: &str, v: &str) -> Result<i64> {
    ms_of_ts(v).ok_or_else(|| Error::invalid(field, "must be a time as YYYY-MM-DD HH:MM:SS (UTC)"))
}

/// Sends a hook's deliveries of a time range again (by default those given up).
async fn redeliver_range(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response> {
    let hook = load_hook_for_write(&app, &actor, &id).await?;
    let input: RedeliverInput = optional_body(&app, body).await?;
    let status = one_of("status", input.status, &["failed", "all"], "failed")?;
    let mut w = crate::store::Where::new();
    w.push("hook_id = ?", Arg::Int(hook.id));
    if let Some(s) = &input.since {
        w.push("created_at >= ?", Arg::Int(check_time("since", s)?));
    }
    if let Some(u) = &input.until {
        w.push("created_at <= ?", Arg::Int(check_time("until", u)? + 999));
    }
    // Never what an archived hook cancelled.
    if status == "failed" {
        w.raw("status = 'failed'");
    } else {
        w.raw("status IN ('delivered', 'failed')");
    }
    let mut tx = app.store.begin().await?;
    let n = st::requeue(&mut tx, &w, hooks::now_ms()).await?;
    tx.commit().await?;
    tracing::info!(hook = hook.id, count = n, actor = %actor.name, "hook deliveries requeued by hand");
    app.hooks.kick();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requeued": n, "hook_status": hook.status })),
    )
        .into_response())
}

/// Sends the delivery of one execution again, with the same webhook-id.
async fn redeliver_one(
    State(app): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Response> {
    HookExecutions::check_access(&actor, true)?;
    let id = parse_id(&id)?;
    let mut c = app.store.read().await?;
    let exec = match HookExecutions::load(&mut c, &app, id, false).await? {
        Some(e) if HookExecutions::visible(&e, &actor) => e,
        _ => return Err(Error::NotFound(format!("hookexecutions {id} not found"))),
    };
    drop(c);
    let Some(delivery) = exec.delivery_id else {
        return Err(Error::invalid(
            "id",
            "a before-hook's execution has nothing to redeliver",
        ));
    };
    let mut w = crate::store::Where::new();
    w.push("id = ?", Arg::Int(delivery));
    w.raw("status IN ('delivered', 'failed')");
    let mut tx = app.store.begin().await?;
    let n = st::requeue(&mut tx, &w, hooks::now_ms()).await?;
    tx.commit().await?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "delivery {delivery} is already waiting to go out"
        )));
    }
    tracing::info!(delivery, actor = %actor.name, "hook delivery requeued by hand");
    app.hooks.kick();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "delivery_id": delivery, "webhook_id": exec.webhook_id })),
    )
        .into_response())
}
