//! Event hooks: third-party systems called when things happen (JeraSoft's handlers, OpenSIPS
//! Provisioner's "provisions").
//!
//! - before-hooks ([`before`]) run inside a request, in priority order, and may allow, veto
//!   or modify (a JSON Patch) what is about to be written;
//! - after-hooks are written to an outbox (`hook_deliveries`) in the same transaction as the
//!   change that caused them ([`enqueue`], called by the change log), then delivered by
//!   [`worker`]: at least once, in order per object, signed ([`sign`]), retried, logged.
//!
//! Events are derived from change records ([`events_of`]): `<resource>.created|updated|deleted`
//! plus lifecycle ones read off the before/after pair (a customer whose status became locked
//! is also `customer.locked`).

pub mod before;
pub mod call;
pub mod net;
pub mod sign;
pub mod worker;

use serde_json::{json, Map, Value};

use crate::changes::Op;
use crate::error::Result;
use crate::model::Actor;
use crate::store::hooks::{self as st, HookTarget, NewDelivery};
use crate::store::Conn;

/// `subscribers` → `subscriber`: event names use the singular.
pub fn singular(resource: &str) -> &str {
    resource.strip_suffix('s').unwrap_or(resource)
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// A new webhook id: stable for a message across its retries and redeliveries.
pub fn new_webhook_id() -> String {
    format!("msg_{}", uuid::Uuid::new_v4().simple())
}

fn status_of(v: Option<&Value>) -> Option<&str> {
    v.and_then(|v| v.get("status")).and_then(Value::as_str)
}

/// The events one change is: the generic one and the lifecycle ones its before/after show.
pub fn events_of(
    resource: &str,
    op: Op,
    before: Option<&Value>,
    after: Option<&Value>,
) -> Vec<String> {
    let s = singular(resource);
    let mut out = vec![match op {
        Op::Create => format!("{s}.created"),
        Op::Update => format!("{s}.updated"),
        Op::Delete => format!("{s}.deleted"),
        Op::Repair => format!("{s}.repaired"),
    }];
    let (was, now) = (status_of(before), status_of(after));
    let changed = op == Op::Update && was != now;
    match resource {
        "customers" if changed => match now {
            Some("locked") => out.push("customer.locked".into()),
            Some("active") => out.push("customer.activated".into()),
            Some("terminated") => out.push("customer.terminated".into()),
            _ => {}
        },
        "subscribers" => match (op, now) {
            (Op::Delete, _) | (Op::Update, Some("terminated")) if was != Some("terminated") => {
                out.push("subscriber.terminated".into())
            }
            (Op::Update, Some("locked")) if changed => out.push("subscriber.locked".into()),
            (Op::Update, Some("active")) if changed && was == Some("locked") => {
                out.push("subscriber.unlocked".into())
            }
            _ => {}
        },
        "customerbalances" => {
            let bal = |v: Option<&Value>| {
                v.and_then(|v| v.get("cash_balance"))
                    .and_then(Value::as_f64)
            };
            if let (Some(b), Some(a)) = (bal(before), bal(after)) {
                if b > 0.0 && a <= 0.0 {
                    out.push("customer.balance.depleted".into());
                }
                if b < 0.0 && a >= 0.0 {
                    out.push("customer.balance.restored".into());
                }
            }
        }
        _ => {}
    }
    out
}

/// Whether an event matches one of a hook's patterns: exact, `prefix.*`, or `*`.
pub fn matches(patterns: &[String], event: &str) -> bool {
    patterns.iter().any(|p| {
        p == "*"
            || p == event
            || p.strip_suffix(".*")
                .is_some_and(|pre| event.strip_prefix(pre).is_some_and(|r| r.starts_with('.')))
    })
}

/// Events that are not `<resource>.created|updated|deleted`, with what they mean.
pub const LIFECYCLE_EVENTS: &[(&str, &str, &str)] = &[
    (
        "customer.locked",
        "customers",
        "a customer's status became locked",
    ),
    (
        "customer.activated",
        "customers",
        "a customer's status became active",
    ),
    (
        "customer.terminated",
        "customers",
        "a customer was terminated",
    ),
    (
        "customer.balance.depleted",
        "customerbalances",
        "a customer's cash_balance went from above 0 to 0 or below",
    ),
    (
        "customer.balance.restored",
        "customerbalances",
        "a customer's cash_balance went from below 0 to 0 or above",
    ),
    (
        "subscriber.locked",
        "subscribers",
        "a subscriber's status became locked",
    ),
    (
        "subscriber.unlocked",
        "subscribers",
        "a locked subscriber became active again",
    ),
    (
        "subscriber.terminated",
        "subscribers",
        "a subscriber was terminated (DELETE, or its customer's termination)",
    ),
    (
        "sipserver.behind",
        "sipservers",
        "a SIP server stopped taking changes (its backlog grows)",
    ),
    (
        "sipserver.caught_up",
        "sipservers",
        "a SIP server that was behind has applied everything again",
    ),
    (
        "sipserver.repaired",
        "sipservers",
        "an operator repaired a SIP server's tables",
    ),
    (
        "device.fetched",
        "pbxdevices",
        "a phone fetched its configuration (phone provisioning)",
    ),
];

/// Every event name, for the resources given (the API's collections, with whether they are
/// created, updated, deleted).
pub fn catalog(resources: &[(&str, [bool; 3])]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (r, ops) in resources {
        let s = singular(r);
        let verbs = [
            ("created", "created"),
            ("updated", "changed"),
            ("deleted", "deleted"),
        ];
        for ((verb, what), on) in verbs.iter().zip(ops) {
            if *on {
                out.push((
                    format!("{s}.{verb}"),
                    r.to_string(),
                    format!("a {s} was {what}"),
                ));
            }
        }
    }
    for (e, r, d) in LIFECYCLE_EVENTS {
        out.push((e.to_string(), r.to_string(), d.to_string()));
    }
    out
}

/// The object a change is about, for filters: after, or before for a deletion.
fn subject<'a>(before: Option<&'a Value>, after: Option<&'a Value>) -> Option<&'a Value> {
    after.or(before)
}

/// Whether an event about `resource`/`object_id` (owned by `reseller_id`) reaches a hook: a
/// reseller's hook sees only its own objects; filters narrow further.
pub fn reaches(
    h: &HookTarget,
    resource: &str,
    object_id: i64,
    reseller_id: Option<i64>,
    object: Option<&Value>,
) -> bool {
    if h.reseller_id.is_some() && h.reseller_id != reseller_id {
        return false;
    }
    let field = |k: &str| object.and_then(|o| o.get(k));
    if let Some(d) = &h.filter_domain {
        if field("domain").and_then(Value::as_str) != Some(d.as_str()) {
            return false;
        }
    }
    if let Some(c) = h.filter_customer_id {
        let own = matches!(resource, "customers" | "customerbalances") && object_id == c;
        if !own && field("customer_id").and_then(Value::as_i64) != Some(c) {
            return false;
        }
    }
    if let Some(s) = h.filter_sipserver_id {
        let own = resource == "sipservers" && object_id == s;
        if !own && field("home_server_id").and_then(Value::as_i64) != Some(s) {
            return false;
        }
    }
    true
}

/// One event about to be written to the outbox, from a change or from the system itself.
pub struct Emitted<'a> {
    pub resource: &'a str,
    pub object_id: i64,
    pub reseller_id: Option<i64>,
    pub op: Op,
    pub change_id: Option<i64>,
    pub before: Option<&'a Value>,
    pub after: Option<&'a Value>,
    /// Only these events (a system event); otherwise derived from the change.
    pub events: Option<Vec<String>>,
}

pub fn actor_json(a: &Actor) -> Value {
    actor_value(a.kind.as_str(), a.id, &a.name)
}

/// The `actor` of a body, from its parts (as a change record keeps them).
fn actor_value(kind: &str, id: Option<i64>, name: &str) -> Value {
    json!({ "type": kind, "id": id, "name": name })
}

/// The body every hook receives (before-hooks get the same shape without a change id);
/// `at_ms`: when the event was queued (its `timestamp`).
#[allow(clippy::too_many_arguments)]
pub fn payload(
    id: &str,
    event: &str,
    op: Op,
    resource: &str,
    object_id: Option<i64>,
    object: Option<&Value>,
    old_object: Option<&Value>,
    actor: &Value,
    change_id: Option<i64>,
    at_ms: i64,
) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("event".into(), json!(event));
    m.insert("operation".into(), json!(op.as_str()));
    m.insert("resource".into(), json!(resource));
    m.insert("resource_id".into(), json!(object_id));
    m.insert("object".into(), object.cloned().unwrap_or(Value::Null));
    m.insert(
        "old_object".into(),
        old_object.cloned().unwrap_or(Value::Null),
    );
    m.insert("actor".into(), actor.clone());
    let at = chrono::DateTime::from_timestamp_millis(at_ms).unwrap_or_default();
    m.insert(
        "timestamp".into(),
        json!(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    if let Some(c) = change_id {
        m.insert("change_id".into(), json!(c));
    }
    Value::Object(m)
}

/// Writes the deliveries these events make for the enabled after-hooks, in the caller's
/// transaction (the one that records the change): a change is never committed without them.
/// Objects are already redacted (no secrets). Returns how many were written.
///
/// A delivery made for a change record is written without its body: the change record holds
/// everything the body says (the redacted documents, the actor, the operation), so the body
/// is built when the delivery is sent ([`payload_of`]), off the single writer's turn, and the
/// outbox row stays small. System events (no change record) are written with their body.
pub async fn enqueue(c: &mut Conn, actor: &Actor, emitted: &[Emitted<'_>]) -> Result<usize> {
    if emitted.is_empty() {
        return Ok(0);
    }
    let hooks = st::after_targets(c).await?;
    enqueue_to(c, actor, emitted, &hooks).await
}

/// [`enqueue`] to `hooks`, the enabled after-hooks as read in the caller's transaction
/// (ordered by id).
pub async fn enqueue_to(
    c: &mut Conn,
    actor: &Actor,
    emitted: &[Emitted<'_>],
    hooks: &[st::HookTarget],
) -> Result<usize> {
    if emitted.is_empty() || hooks.is_empty() {
        return Ok(0);
    }
    let patterns: Vec<Vec<String>> = hooks
        .iter()
        .map(|h| serde_json::from_str(&h.events).unwrap_or_default())
        .collect();
    let actor = actor_json(actor);
    let now = now_ms();
    let mut out = Vec::new();
    for e in emitted {
        let from_change = e.change_id.is_some() && e.events.is_none();
        let events = match &e.events {
            Some(v) => v.clone(),
            None => events_of(e.resource, e.op, e.before, e.after),
        };
        let subj = subject(e.before, e.after);
        for (h, pats) in hooks.iter().zip(&patterns) {
            if !reaches(h, e.resource, e.object_id, e.reseller_id, subj) {
                continue;
            }
            for ev in events.iter().filter(|ev| matches(pats, ev)) {
                let wid = new_webhook_id();
                let body = if from_change {
                    String::new()
                } else {
                    payload(
                        &wid,
                        ev,
                        e.op,
                        e.resource,
                        Some(e.object_id),
                        e.after,
                        e.before,
                        &actor,
                        e.change_id,
                        now,
                    )
                    .to_string()
                };
                out.push(NewDelivery {
                    hook_id: h.id,
                    webhook_id: wid,
                    event: ev.clone(),
                    resource: e.resource.to_string(),
                    object_id: e.object_id,
                    change_id: e.change_id,
                    payload: body,
                });
            }
        }
    }
    st::insert_deliveries(c, &out, now).await?;
    Ok(out.len())
}

/// The body of a delivery as its hook receives it: as written, or (written without one, see
/// [`enqueue_to`]) built from the change record it was made for, the same on every attempt:
/// `timestamp` is when it was queued. The documents are redacted again, whatever the change
/// record promised. `None` if that change record is missing (nothing deletes change records:
/// the delivery is given up rather than sent with a made-up body).
pub fn payload_of(d: &st::DeliveryRow) -> Option<Value> {
    if !d.payload.is_empty() {
        return Some(serde_json::from_str(&d.payload).unwrap_or(Value::Null));
    }
    let Some(op) = d.op.as_deref().and_then(Op::parse) else {
        tracing::error!(
            delivery = d.id,
            change = d.change_id,
            "the change record of a hook delivery is missing: the delivery is given up"
        );
        return None;
    };
    let doc = |t: &Option<String>| {
        let v: Value = serde_json::from_str(t.as_deref()?).ok()?;
        Some(crate::changes::redacted_owned(v))
    };
    let actor = actor_value(
        d.actor_type.as_deref().unwrap_or_default(),
        d.actor_id,
        d.actor_name.as_deref().unwrap_or_default(),
    );
    Some(payload(
        &d.webhook_id,
        &d.event,
        op,
        &d.resource,
        Some(d.object_id),
        doc(&d.after).as_ref(),
        doc(&d.before).as_ref(),
        &actor,
        d.change_id,
        d.created_at,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_events_are_read_off_the_status_change() {
        let (a, l, t) = (
            json!({"status":"active"}),
            json!({"status":"locked"}),
            json!({"status":"terminated"}),
        );
        assert_eq!(
            events_of("customers", Op::Update, Some(&a), Some(&l)),
            ["customer.updated", "customer.locked"]
        );
        assert_eq!(
            events_of("customers", Op::Update, Some(&l), Some(&a)),
            ["customer.updated", "customer.activated"]
        );
        assert_eq!(
            events_of("customers", Op::Update, Some(&a), Some(&t)),
            ["customer.updated", "customer.terminated"]
        );
        assert_eq!(
            events_of("customers", Op::Update, Some(&a), Some(&a)),
            ["customer.updated"]
        );
        assert_eq!(
            events_of("subscribers", Op::Delete, Some(&a), Some(&t)),
            ["subscriber.deleted", "subscriber.terminated"]
        );
        assert_eq!(
            events_of("subscribers", Op::Update, Some(&l), Some(&a)),
            ["subscriber.updated", "subscriber.unlocked"]
        );
        assert_eq!(
            events_of("subscribers", Op::Update, Some(&a), Some(&l)),
            ["subscriber.updated", "subscriber.locked"]
        );
        assert_eq!(
            events_of("subscribers", Op::Create, None, Some(&a)),
            ["subscriber.created"]
        );
    }

    fn bodiless(op: Option<&str>, before: Option<&str>, after: Option<&str>) -> st::DeliveryRow {
        st::DeliveryRow {
            id: 7,
            hook_id: 1,
            webhook_id: "msg_x".into(),
            event: "customerbalance.updated".into(),
            resource: "customerbalances".into(),
            object_id: 3,
            payload: String::new(),
            attempts: 0,
            created_at: 1_780_000_000_123,
            change_id: Some(99),
            op: op.map(Into::into),
            actor_type: Some("apikey".into()),
            actor_id: Some(5),
            actor_name: Some("crm".into()),
            before: before.map(Into::into),
            after: after.map(Into::into),
        }
    }

    #[test]
    fn a_body_left_to_send_time_is_built_from_its_change_record() {
        let d = bodiless(
            Some("update"),
            Some(r#"{"cash_balance":1.5,"password":"old-secret"}"#),
            Some(r#"{"cash_balance":949.6747799999999,"webpassword":"s3cret"}"#),
        );
        let p = payload_of(&d).unwrap();
        assert_eq!(p["id"], "msg_x");
        assert_eq!(p["event"], "customerbalance.updated");
        assert_eq!(p["operation"], "update");
        assert_eq!(
            (&p["resource"], &p["resource_id"]),
            (&json!("customerbalances"), &json!(3))
        );
        assert_eq!(p["change_id"], 99);
        assert_eq!(
            p["actor"],
            json!({ "type": "apikey", "id": 5, "name": "crm" })
        );
        assert_eq!(p["timestamp"], "2026-05-28T20:26:40.123Z");
        // Read back exactly as written, and never a secret, whatever the record held.
        assert_eq!(
            p["object"]["cash_balance"].as_f64(),
            Some(949.6747799999999)
        );
        assert_eq!(p["object"]["webpassword"], crate::changes::REDACTED);
        assert_eq!(p["old_object"]["password"], crate::changes::REDACTED);
        assert_eq!(payload_of(&d), payload_of(&d), "the same on every attempt");
        // A create has no old object; a delete's record has no after.
        let c = payload_of(&bodiless(Some("create"), None, Some("{}"))).unwrap();
        assert_eq!(
            (&c["operation"], &c["old_object"]),
            (&json!("create"), &Value::Null)
        );
        let del = payload_of(&bodiless(Some("delete"), Some("{}"), None)).unwrap();
        assert_eq!(
            (&del["operation"], &del["object"], &del["old_object"]),
            (&json!("delete"), &Value::Null, &json!({}))
        );
        // No change record: nothing made up.
        assert_eq!(payload_of(&bodiless(None, None, None)), None);
        // A body written with the delivery (a system event) is sent as written.
        let mut sys = bodiless(None, None, None);
        sys.payload = r#"{"event":"sipserver.behind"}"#.into();
        assert_eq!(payload_of(&sys).unwrap()["event"], "sipserver.behind");
    }

    #[test]
    fn balance_events_fire_on_crossing_zero_only() {
        let b = |x: f64| json!({ "cash_balance": x });
        let ev = |x, y| events_of("customerbalances", Op::Update, Some(&b(x)), Some(&b(y)));
        assert_eq!(
            ev(5.0, 0.0),
            ["customerbalance.updated", "customer.balance.depleted"]
        );
        assert_eq!(
            ev(5.0, -1.0),
            ["customerbalance.updated", "customer.balance.depleted"]
        );
        assert_eq!(ev(0.0, -1.0), ["customerbalance.updated"]);
        assert_eq!(
            ev(-1.0, 0.0),
            ["customerbalance.updated", "customer.balance.restored"]
        );
        assert_eq!(
            ev(-1.0, 3.0),
            ["customerbalance.updated", "customer.balance.restored"]
        );
        assert_eq!(ev(3.0, 4.0), ["customerbalance.updated"]);
    }

    #[test]
    fn patterns_match_exactly_by_prefix_or_all() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(matches(&p(&["subscriber.*"]), "subscriber.created"));
        assert!(!matches(
            &p(&["subscriber.*"]),
            "subscriberpreference.updated"
        ));
        assert!(matches(&p(&["customer.*"]), "customer.balance.depleted"));
        assert!(matches(
            &p(&["customer.balance.*"]),
            "customer.balance.restored"
        ));
        assert!(matches(&p(&["*"]), "domain.deleted"));
        assert!(matches(&p(&["domain.created"]), "domain.created"));
        assert!(!matches(&p(&["domain.created"]), "domain.updated"));
    }
}
