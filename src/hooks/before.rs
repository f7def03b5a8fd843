//! before-hooks: run in priority order inside a request, before anything is written, and
//! outside any database transaction (a slow hook must not hold the writer for everyone).
//! Each may allow, veto (the client gets 422 naming the hook and its message) or modify the
//! object with a JSON Patch; the caller validates the result again.
//!
//! The answer is `{"allow": bool, "message": "…", "patch": [RFC 6902 ops]}`; an empty 2xx
//! allows, a non-2xx answer (or a script's non-zero exit) vetoes. A timeout or an error
//! follows the hook's failure policy: `fail` refuses the request (503), `ignore` goes on.

use serde_json::Value;

use super::call::{HookCfg, Outcome};
use super::{events_of, matches, payload, reaches};
use crate::changes::{redact, Op};
use crate::error::{Error, Result};
use crate::model::Actor;
use crate::store::hooks::NewExecution;

/// What the request is about to do.
pub struct Pending<'a> {
    pub resource: &'a str,
    pub op: Op,
    pub object_id: Option<i64>,
    pub reseller_id: Option<i64>,
    pub old: Option<&'a Value>,
}

/// The document to write, as the hooks left it, and the values their answers map onto the
/// object (stored with the change).
pub struct Verdict {
    pub doc: Value,
    pub metadata: Vec<(i64, Vec<(String, String)>)>,
}

/// The event a hook is called for: the most specific of the change's events it takes.
fn event_for(h: &HookCfg, events: &[String]) -> Option<String> {
    events.iter().rev().find(|e| matches(&h.events, e)).cloned()
}

/// Runs the hooks; their executions are in the log before the client has its answer.
pub async fn run(
    hooks: &super::worker::Hooks,
    list: &[HookCfg],
    actor: &Actor,
    p: &Pending<'_>,
    doc: Value,
) -> Result<Verdict> {
    let mut log = Vec::new();
    let r = run_logged(hooks, list, actor, p, doc, &mut log).await;
    hooks.log_now(log).await;
    r
}

async fn run_logged(
    hooks: &super::worker::Hooks,
    list: &[HookCfg],
    actor: &Actor,
    p: &Pending<'_>,
    mut doc: Value,
    log: &mut Vec<NewExecution>,
) -> Result<Verdict> {
    let mut metadata = Vec::new();
    let actor_v = super::actor_json(actor);
    let old_redacted = p.old.map(redact);
    for h in list {
        let events = events_of(p.resource, p.op, p.old, Some(&doc));
        let Some(event) = event_for(h, &events) else {
            continue;
        };
        if !reaches(
            &h.target(),
            p.resource,
            p.object_id.unwrap_or(0),
            p.reseller_id,
            Some(&doc),
        ) {
            continue;
        }
        let wid = super::new_webhook_id();
        let object = (p.op != Op::Delete).then(|| redact(&doc));
        let body = payload(
            &wid,
            &event,
            p.op,
            p.resource,
            p.object_id,
            object.as_ref().or(old_redacted.as_ref()),
            old_redacted.as_ref(),
            &actor_v,
            None,
            super::now_ms(),
        );
        let a = hooks.caller.call(h, &wid, &body).await;
        let answer: Option<Value> = serde_json::from_slice(&a.body).ok();
        let msg = |fallback: &str| {
            answer
                .as_ref()
                .and_then(|v| v.get("message"))
                .and_then(Value::as_str)
                .map(|m| m.chars().take(500).collect::<String>())
                .unwrap_or_else(|| fallback.to_string())
        };
        let mut outcome = a.outcome.as_str();
        let mut error = a.error.clone();
        let result: Result<()> = match a.outcome {
            Outcome::Success => {
                let allow = answer
                    .as_ref()
                    .and_then(|v| v.get("allow"))
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                if !allow {
                    outcome = "vetoed";
                    Err(veto(h, &msg("no reason given")))
                } else {
                    match answer.as_ref().and_then(|v| v.get("patch")) {
                        None | Some(Value::Null) => Ok(()),
                        Some(patch) if p.op == Op::Delete => {
                            let _ = patch;
                            Ok(())
                        }
                        Some(patch) => match apply(&mut doc, patch) {
                            Ok(()) => Ok(()),
                            Err(e) => {
                                outcome = "error";
                                error = Some(format!("patch: {e}"));
                                failed(h, &format!("its patch cannot be applied: {e}"))
                            }
                        },
                    }
                }
            }
            Outcome::Failure => {
                outcome = "vetoed";
                let fallback = a.error.clone().unwrap_or_default();
                Err(veto(h, &msg(&fallback)))
            }
            Outcome::Timeout | Outcome::Error => {
                failed(h, a.error.as_deref().unwrap_or("no answer"))
            }
        };
        if result.is_ok() && a.outcome == Outcome::Success {
            let m = super::call::mapped(h, &a.body);
            if !m.is_empty() {
                metadata.push((h.id, m));
            }
        }
        log.push(NewExecution {
            hook_id: h.id,
            reseller_id: h.reseller_id,
            delivery_id: None,
            webhook_id: Some(wid),
            phase: "before",
            event,
            resource: Some(p.resource.to_string()),
            object_id: p.object_id,
            attempt: 1,
            at_ms: a.started_ms,
            duration_ms: a.duration.as_millis() as i64,
            outcome,
            error,
            request: a.request.to_string(),
            response: a.response.map(|r| r.to_string()),
        });
        result?;
    }
    Ok(Verdict { doc, metadata })
}

fn veto(h: &HookCfg, message: &str) -> Error {
    Error::invalid(
        "hook",
        format!("'{}' (hook {}) refused: {message}", h.name, h.id),
    )
}

/// A hook that could not give an answer: refuse (policy `fail`) or go on (`ignore`).
fn failed(h: &HookCfg, why: &str) -> Result<()> {
    if h.fail_closed {
        Err(Error::Unavailable(format!(
            "before-hook '{}' (hook {}) failed: {why}; nothing was written",
            h.name, h.id
        )))
    } else {
        tracing::warn!(hook = h.id, error = %why, "before-hook failed; its failure policy is ignore");
        Ok(())
    }
}

fn apply(doc: &mut Value, patch: &Value) -> std::result::Result<(), String> {
    let p: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| e.to_string())?;
    json_patch::patch(doc, &p).map_err(|e| e.to_string())
}
