//! `/api/subscriberregistrations/` (NGCP's name): the contacts subscribers have registered,
//! read live from every enabled Kamailio (RPC `ul.dump`), only the reader's reseller's
//! subscribers. Read-only: registrations are the phones' to make.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::app::App;
use crate::error::Result;
use crate::model::Actor;

/// Every (AoR, contact) in one `ul.dump` answer: the AoR, and its contact's fields.
fn contacts(dump: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for d in dump["Domains"].as_array().into_iter().flatten() {
        for a in d["Domain"]["AoRs"].as_array().into_iter().flatten() {
            let info = &a["Info"];
            let Some(aor) = info["AoR"].as_str() else {
                continue;
            };
            for c in info["Contacts"].as_array().into_iter().flatten() {
                out.push((aor.to_string(), c["Contact"].clone()));
            }
        }
    }
    out
}

/// The registrations visible to `actor`, optionally of one subscriber only (then asked for
/// that subscriber's AoR alone, `ul.lookup`, rather than every registration there is).
/// With them, the SIP servers that could not be asked (their contacts are not in the list).
pub async fn list(
    app: &App,
    actor: &Actor,
    subscriber: Option<i64>,
) -> Result<(Vec<Value>, Vec<i64>)> {
    if let Some(sub) = subscriber {
        let hit: Option<(String, String, i64)> = {
            let mut c = app.store.read().await?;
            sqlx::query_as(
                "SELECT s.username, d.domain, s.reseller_id FROM subscribers s \
                 JOIN domains d ON d.id = s.domain_id WHERE s.id = $1 AND s.status <> 'terminated'",
            )
            .bind(sub)
            .fetch_optional(&mut *c)
            .await?
        };
        let Some((user, domain, reseller)) = hit else {
            return Ok((Vec::new(), Vec::new()));
        };
        if actor.scope().is_some_and(|r| r != reseller) {
            return Ok((Vec::new(), Vec::new()));
        }
        let (mut out, unanswered) = asked(app, &format!("{user}@{domain}")).await;
        for v in &mut out {
            v["subscriber_id"] = json!(sub);
        }
        return Ok((out, unanswered));
    }
    let targets = crate::targets::load_targets(&app.store, &app.cipher).await?;
    let mut found: Vec<(i64, String, Value)> = Vec::new();
    let mut unanswered = Vec::new();
    for t in targets
        .iter()
        .filter(|t| t.enabled && t.driver == crate::targets::config::Driver::Kamailio)
    {
        let Some(url) = &t.rpc_url else { continue };
        match crate::targets::rpc::call_with(url, "ul.dump", json!([])).await {
            Ok(v) => found.extend(contacts(&v).into_iter().map(|(a, c)| (t.id, a, c))),
            Err(e) => {
                tracing::debug!(target = %t.name, error = %e, "registrations: ul.dump failed");
                unanswered.push(t.id);
            }
        }
    }
    let mut c = app.store.read().await?;
    let mut subs: BTreeMap<String, Option<(i64, i64)>> = BTreeMap::new();
    let mut out = Vec::new();
    for (server, aor, ct) in found {
        if !subs.contains_key(&aor) {
            let (user, domain) = aor.split_once('@').unwrap_or((aor.as_str(), ""));
            let hit: Option<(i64, i64)> = sqlx::query_as(
                "SELECT s.id, s.reseller_id FROM subscribers s JOIN domains d ON d.id = s.domain_id \
                 WHERE s.username = $1 AND d.domain = $2 AND s.status <> 'terminated'",
            )
            .bind(user.to_string())
            .bind(domain.to_string())
            .fetch_optional(&mut *c)
            .await?;
            subs.insert(aor.clone(), hit);
        }
        let Some((sub, reseller)) = subs[&aor] else {
            continue;
        };
        if actor.scope().is_some_and(|r| r != reseller) || subscriber.is_some_and(|s| s != sub) {
            continue;
        }
        let mut v = shown(server, &aor, &ct);
        v["subscriber_id"] = json!(sub);
        out.push(v);
    }
    Ok((out, unanswered))
}

/// One contact as the API shows it.
fn shown(server: i64, aor: &str, ct: &Value) -> Value {
    json!({
        "sipserver_id": server,
        "aor": aor,
        "contact": ct["Address"],
        "expires": ct["Expires"],
        "q": ct["Q"],
        "user_agent": ct["User-Agent"],
        "received": ct["Received"],
        "socket": ct["Socket"],
        "call_id": ct["Call-ID"],
        "last_modified": ct["Last-Modified"],
    })
}

/// The contacts of one AoR (`user@domain`), from every enabled Kamailio (RPC `ul.lookup`).
pub async fn of_aor(app: &App, aor: &str) -> Vec<Value> {
    asked(app, aor).await.0
}

/// Like [`of_aor`], with the SIP servers that could not be asked (unreachable, or no RPC
/// answer): where those are, "no contact" is not known.
pub async fn asked(app: &App, aor: &str) -> (Vec<Value>, Vec<i64>) {
    let Ok(targets) = crate::targets::load_targets(&app.store, &app.cipher).await else {
        // Which servers there are is not known: none of them was asked.
        return (Vec::new(), vec![0]);
    };
    let (mut out, mut unanswered) = (Vec::new(), Vec::new());
    for t in targets
        .iter()
        .filter(|t| t.enabled && t.driver == crate::targets::config::Driver::Kamailio)
    {
        // A Kamailio without an RPC address cannot be asked.
        let Some(url) = &t.rpc_url else {
            unanswered.push(t.id);
            continue;
        };
        let v = match crate::targets::rpc::call_with(url, "ul.lookup", json!(["location", aor]))
            .await
        {
            Ok(v) => v,
            // usrloc answers an AoR it does not hold, or holds with every contact expired,
            // with an error of its own.
            Err(e)
                if e.to_string().contains("AOR not found")
                    || e.to_string().contains("AOR has no contacts") =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(target = %t.name, error = %e, "registrations: ul.lookup failed");
                unanswered.push(t.id);
                continue;
            }
        };
        for c in v["Contacts"].as_array().into_iter().flatten() {
            out.push(shown(t.id, aor, &c["Contact"]));
        }
    }
    (out, unanswered)
}
