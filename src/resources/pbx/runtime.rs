//! What SARK keeps beside its objects: an extension's runtime (`GET`/`PUT
//! /api/pbxextensions/{id}/runtime`: CFIM, CFBS and ringdelay — the subscriber's cfu, cfb and
//! ringtimeout, the same call forwards `/api/callforwards/` shows — and its live
//! registrations), the tenant's destinations (`GET /api/pbxdestinations/?tenant_id=`), the
//! globals document and the system commands SARK clients send (`commit`, `pbxrunstate`).

use serde_json::{json, Map, Value};

use super::extensions::PbxExtensions;
use super::*;
use crate::app::App;
use crate::changes::{self, Change, Op};
use crate::resources::callforwards::CallForwards;
use crate::resources::write::{load_visible, update_one};
use crate::resources::{to_map, Resource};
use crate::store::pbx::PbxExtension;

/// A forward target of an extension as SARK shows it: a number (an extension's own URI as its
/// short number).
fn shown_target(c_exts: &[(String, String)], uri: &str) -> String {
    if let Some((ext, _)) = c_exts.iter().find(|(_, u)| u == uri) {
        return ext.clone();
    }
    let user = uri
        .strip_prefix("sip:")
        .and_then(|r| r.split('@').next())
        .unwrap_or(uri);
    user.to_string()
}

async fn tenant_extensions(c: &mut Conn, tenant: i64) -> Result<Vec<(String, String)>> {
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT e.extension, s.username, d.domain FROM pbx_extensions e \
         JOIN subscribers s ON s.id = e.subscriber_id JOIN domains d ON d.id = s.domain_id \
         WHERE e.tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(&mut *c)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(e, u, d)| (e, format!("sip:{u}@{d}")))
        .collect())
}

/// The forward a block makes, if it is on.
fn first_target(block: &Value) -> Option<&str> {
    if block["enabled"] == Value::Bool(false) {
        return None;
    }
    block["destinations"].get(0)?["destination"].as_str()
}

async fn runtime_doc(app: &App, c: &mut Conn, actor: &Actor, e: &PbxExtension) -> Result<Value> {
    let cf = load_visible::<CallForwards>(c, app, actor, e.subscriber_id, false).await?;
    let cf = Value::Object(to_map(&cf));
    let exts = tenant_extensions(c, e.tenant_id).await?;
    let show = |b: &Value| first_target(b).map(|u| shown_target(&exts, u));
    Ok(json!({
        "extension": e.extension,
        "tenant_id": e.tenant_id,
        "subscriber_id": e.subscriber_id,
        "cfim": show(&cf["cfu"]),
        "cfbs": show(&cf["cfb"]),
        "ringdelay": cf["cft"]["ringtimeout"],
        "registrations": crate::resources::registrations::of_aor(app, &format!("{}@{}", e.username, e.domain)).await,
    }))
}

pub async fn get_runtime(app: &App, actor: &Actor, id: i64) -> Result<Value> {
    let mut c = app.store.read().await?;
    let e = load_visible::<PbxExtensions>(&mut c, app, actor, id, false).await?;
    runtime_doc(app, &mut c, actor, &e).await
}

/// A forward target: `+`? digits; a number of the tenant becomes its extension's URI.
fn target(field: &str, v: &Value, exts: &[(String, String)]) -> Result<Option<String>> {
    let s = match v {
        Value::Null => return Ok(None),
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) if s.trim().is_empty() => return Ok(None),
        Value::String(s) => s.trim().to_string(),
        _ => {
            return Err(Error::invalid(
                field,
                "must be a number (+ and digits) or null",
            ))
        }
    };
    let digits = s.strip_prefix('+').unwrap_or(&s);
    if digits.is_empty() || digits.len() > 20 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return Err(Error::invalid(
            field,
            "must be a number (+ and digits) or null",
        ));
    }
    Ok(Some(
        exts.iter()
            .find(|(e, _)| *e == s)
            .map(|(_, u)| u.clone())
            .unwrap_or(s),
    ))
}

/// Sets CFIM, CFBS and ringdelay (each given key; null clears it). Other forwards stay.
pub async fn put_runtime(app: &App, actor: &Actor, id: i64, body: &Value) -> Result<Value> {
    actor.check_write()?;
    let Value::Object(m) = body else {
        return Err(Error::invalid("body", "must be a JSON object"));
    };
    for k in m.keys() {
        if !["cfim", "cfbs", "ringdelay"].contains(&k.as_str()) && !k.starts_with('_') {
            if ["extension", "tenant_id", "subscriber_id", "registrations"].contains(&k.as_str()) {
                continue;
            }
            return Err(Error::invalid(
                k.as_str(),
                "is not a runtime setting (cfim, cfbs, ringdelay)",
            ));
        }
    }
    let mut tx = app.store.begin().await?;
    let e = load_visible::<PbxExtensions>(&mut tx, app, actor, id, true).await?;
    let exts = tenant_extensions(&mut tx, e.tenant_id).await?;
    let old = load_visible::<CallForwards>(&mut tx, app, actor, e.subscriber_id, true).await?;
    let mut doc: Map<String, Value> = CallForwards::view(&old, actor);
    for (key, block) in [("cfim", "cfu"), ("cfbs", "cfb")] {
        if let Some(v) = m.get(key) {
            let t = target(key, v, &exts)?;
            let mut b = doc.get(block).cloned().unwrap_or_else(|| json!({}));
            b["enabled"] = json!(t.is_some());
            b["destinations"] = match t {
                Some(t) => json!([{ "destination": t }]),
                None => json!([]),
            };
            if let Some(o) = b.as_object_mut() {
                if o["destinations"].as_array().is_some_and(|a| a.is_empty()) {
                    o.insert("times".into(), json!([]));
                    o.insert("sources".into(), json!([]));
                    o.insert("bnumbers".into(), json!([]));
                }
            }
            doc.insert(block.into(), b);
        }
    }
    if let Some(v) = m.get("ringdelay") {
        let rd = integer("ringdelay", v)?;
        let mut b = doc.get("cft").cloned().unwrap_or_else(|| json!({}));
        b["ringtimeout"] = json!(rd);
        doc.insert("cft".into(), b);
    }
    doc.remove("subscriber_id");
    update_one::<CallForwards>(&mut tx, app, actor, &old, Value::Object(doc))
        .await
        .map_err(|err| match err {
            Error::Validation {
                field,
                message,
                input,
                more,
            } => {
                let f = if field.starts_with("cfu") {
                    "cfim"
                } else if field.starts_with("cfb") {
                    "cfbs"
                } else if field.starts_with("cft") {
                    "ringdelay"
                } else {
                    field.as_str()
                };
                Error::Validation {
                    field: f.to_string(),
                    message,
                    input,
                    more,
                }
            }
            e => e,
        })?;
    tx.commit().await?;
    get_runtime(app, actor, id).await
}

/// Every destination of a tenant: its extensions, ring groups and operator.
pub async fn destinations(app: &App, actor: &Actor, tenant: i64) -> Result<Vec<Value>> {
    let mut c = app.store.read().await?;
    let t = tenant_for(&mut c, actor, tenant).await?;
    let mut out = Vec::new();
    let exts: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, extension, type FROM pbx_extensions WHERE tenant_id = $1 ORDER BY extension",
    )
    .bind(t.id)
    .fetch_all(&mut *c)
    .await?;
    for (id, number, kind) in exts {
        out.push(
            json!({ "destination": number, "type": "extension", "extension_type": kind, "id": id }),
        );
    }
    let groups: Vec<(i64, String, String)> = sqlx::query_as(
        "SELECT id, number, grouptype FROM pbx_ringgroups WHERE tenant_id = $1 ORDER BY number",
    )
    .bind(t.id)
    .fetch_all(&mut *c)
    .await?;
    for (id, number, kind) in groups {
        out.push(
            json!({ "destination": number, "type": "ringgroup", "grouptype": kind, "id": id }),
        );
    }
    if let Some(op) = &t.operator {
        out.push(json!({ "destination": "operator", "type": "operator", "extension": op }));
    }
    Ok(out)
}

pub async fn get_globals(app: &App, actor: &Actor) -> Result<Value> {
    actor.check_admin()?;
    let mut c = app.store.read().await?;
    Ok(Value::Object(globals::document(
        &st::globals(&mut c).await?,
    )))
}

pub async fn put_globals(app: &App, actor: &Actor, body: &Value) -> Result<Value> {
    actor.check_admin()?;
    actor.check_write()?;
    let updates = globals::parse_update(body)?;
    let mut tx = app.store.begin().await?;
    let stored_before = st::globals(&mut tx).await?;
    let before = Value::Object(globals::document(&stored_before));
    for (name, value) in &updates {
        st::set_global(&mut tx, name, value.as_deref()).await?;
    }
    let stored_after = st::globals(&mut tx).await?;
    let after = Value::Object(globals::document(&stored_after));
    // Compared as stored: a new password shows as ******** on both sides, yet it changed.
    if stored_before != stored_after {
        changes::record(
            &mut tx,
            actor,
            Change {
                resource: "pbxglobals",
                object_id: 0,
                reseller_id: None,
                op: Op::Update,
                before: Some(&before),
                after: Some(&after),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(after)
}

/// SARK's system commands: `commit` (voxprov applies every change as it is made: reports each
/// SIP server's applied state) and `pbxrunstate` (the servers' status). Others are refused.
pub async fn syscommand(app: &App, actor: &Actor, command: &str) -> Result<Value> {
    match command {
        "commit" | "pbxrunstate" => {}
        "reboot" | "pbxstart" | "pbxstop" => {
            return Err(Error::invalid(
                "command",
                format!("{command}: voxprov does not start or stop the SIP servers"),
            ))
        }
        _ => return Err(Error::NotFound(format!("no system command {command}"))),
    }
    let mut c = app.store.read().await?;
    let servers = crate::store::sipservers::all(&mut c).await?;
    let last: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM changes")
        .fetch_one(&mut *c)
        .await?;
    let mut list = Vec::new();
    for s in servers {
        let applied = s.applied_change_id;
        let latest = last.unwrap_or(0);
        let mut v = json!({
            "sipserver_id": s.id,
            "enabled": s.enabled.0,
            "applied_change_id": applied,
            "pending_changes": (latest - applied).max(0),
            "in_sync": s.enabled.0 && applied >= latest,
        });
        if actor.is_admin() {
            v["name"] = json!(s.name);
            v["last_error"] = json!(s.last_error);
        }
        list.push(v);
    }
    Ok(json!({
        "command": command,
        "committed": true,
        "message": "voxprov applies every change when it is made: there is nothing to commit",
        "latest_change_id": last.unwrap_or(0),
        "sipservers": list,
    }))
}
