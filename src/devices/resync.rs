//! Making a phone re-read its configuration: a SIP NOTIFY (`Event: check-sync`) to every
//! contact its accounts have registered, sent by the Kamailio that holds the registration
//! (a usrloc lookup and a transaction started over its JSON-RPC).

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::store::{devices as st, Store};

/// Notifies the registered contacts of these subscribers; `409` when none is registered.
pub async fn notify(store: &Store, subscriber_ids: &[i64]) -> Result<Value> {
    let (aors, servers) = {
        let mut c = store.read().await?;
        let subs = st::line_subscribers(&mut c, subscriber_ids).await?;
        let aors: Vec<String> = subs
            .iter()
            .map(|s| format!("{}@{}", s.username, s.domain))
            .collect();
        (aors, st::rpc_servers(&mut c).await?)
    };
    if aors.is_empty() {
        return Err(Error::Conflict("the device has no account lines".into()));
    }
    let mut sent = Vec::new();
    let mut errors = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, name, _, url) in servers.iter().filter(|s| s.2 == "kamailio") {
        for aor in &aors {
            let found =
                match crate::targets::rpc::call_with(url, "ul.lookup", json!(["location", aor]))
                    .await
                {
                    Ok(v) => v,
                    // Not registered there: usrloc answers an error.
                    Err(_) => continue,
                };
            let mut contacts = Vec::new();
            collect_addresses(&found, &mut contacts);
            for contact in contacts {
                if !seen.insert(contact.clone()) {
                    continue;
                }
                let domain = aor.split_once('@').map(|x| x.1).unwrap_or("");
                let headers = format!(
                    "From: <sip:voxprov@{domain}>;tag={}\r\nTo: <sip:{aor}>\r\nEvent: check-sync;reboot=false\r\n\
                     Subscription-State: terminated;reason=noresource\r\nContact: <sip:voxprov@{domain}>\r\n",
                    uuid::Uuid::new_v4().simple()
                );
                let r = crate::targets::rpc::call_with(
                    url,
                    "tm.t_uac_start",
                    json!(["NOTIFY", contact, ".", ".", headers, ""]),
                )
                .await;
                match r {
                    Ok(_) => sent.push(json!({"aor": aor, "contact": contact, "sipserver": name})),
                    Err(e) => {
                        errors.push(json!({"aor": aor, "sipserver": name, "error": e.to_string()}))
                    }
                }
            }
        }
    }
    if sent.is_empty() {
        return Err(Error::Conflict(if errors.is_empty() {
            "no registered contact of this device's accounts was found on a Kamailio with an rpc_url".into()
        } else {
            format!("no NOTIFY could be sent: {}", Value::Array(errors))
        }));
    }
    Ok(json!({ "notified": sent, "errors": errors }))
}

/// Every contact URI in a usrloc lookup answer (`"Address": "sip:…"`, at any depth).
fn collect_addresses(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("Address", Value::String(s)) if s.starts_with("sip") => out.push(s.clone()),
                    _ => collect_addresses(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_addresses(x, out)),
        _ => {}
    }
}
