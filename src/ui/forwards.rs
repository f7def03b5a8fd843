//! A subscriber's call forwards as people set them: for each kind (always, when busy, when
//! not answered, when not reachable) the destinations in order with their ring times, and
//! when it applies as week days and hours. Saved as one JSON Patch of the kinds that changed;
//! what the page does not show (conditions on callers and called numbers, time windows that
//! are more than days and hours) is kept as it is.

use std::collections::BTreeSet;

use super::*;

const KINDS: [(&str, &str); 4] = [
    ("cfu", "Always"),
    ("cfb", "When busy"),
    ("cft", "When not answered"),
    ("cfna", "When not reachable"),
];

/// Week days as the form lists them, with their number in the API's time windows (1 =
/// Sunday).
const DAYS: [(&str, i64); 7] = [
    ("Mon", 2),
    ("Tue", 3),
    ("Wed", 4),
    ("Thu", 5),
    ("Fri", 6),
    ("Sat", 7),
    ("Sun", 1),
];

/// A time window made of week days and one span of hours (`to` exclusive); no days: every
/// day, no hours: all day.
#[derive(Debug, Default, PartialEq)]
struct Week {
    days: BTreeSet<i64>,
    hours: Option<(i64, i64)>,
}

/// "2", "2-6" as the numbers they span.
fn span(s: &str) -> Option<(i64, i64)> {
    match s.split_once('-') {
        Some((a, b)) => Some((a.trim().parse().ok()?, b.trim().parse().ok()?)),
        None => {
            let v = s.trim().parse().ok()?;
            Some((v, v))
        }
    }
}

/// The time windows as a [`Week`], when they are no more than that.
fn as_week(times: &[Value]) -> Option<Week> {
    let mut w = Week::default();
    let mut hours: Option<Option<(i64, i64)>> = None;
    for t in times {
        let o = t.as_object()?;
        if ["year", "month", "mday", "minute"]
            .iter()
            .any(|k| o.get(*k).is_some_and(|v| !v.is_null() && v != ""))
        {
            return None;
        }
        let h = match o
            .get("hour")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(s) => Some(span(s).map(|(a, b)| (a, b + 1))?),
            None => None,
        };
        if hours.is_some_and(|seen| seen != h) {
            return None;
        }
        hours = Some(h);
        match o
            .get("wday")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            Some(s) => {
                let (a, b) = span(s)?;
                w.days.extend(a..=b);
            }
            None => w.days.extend(1..=7),
        }
    }
    w.hours = hours.flatten();
    if w.days.len() == 7 {
        w.days.clear();
    }
    Some(w)
}

/// A [`Week`] as the API's time windows: one per run of consecutive days.
fn from_week(w: &Week) -> Vec<Value> {
    let hour = w.hours.map(|(a, b)| {
        if b - 1 == a {
            a.to_string()
        } else {
            format!("{a}-{}", b - 1)
        }
    });
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for d in &w.days {
        match runs.last_mut() {
            Some((_, end)) if *end + 1 == *d => *end = *d,
            _ => runs.push((*d, *d)),
        }
    }
    let entry = |wday: Option<String>| {
        let mut m = Map::new();
        if let Some(d) = wday {
            m.insert("wday".into(), json!(d));
        }
        if let Some(h) = &hour {
            m.insert("hour".into(), json!(h));
        }
        Value::Object(m)
    };
    if runs.is_empty() {
        return if hour.is_some() {
            vec![entry(None)]
        } else {
            Vec::new()
        };
    }
    runs.into_iter()
        .map(|(a, b)| {
            entry(Some(if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }))
        })
        .collect()
}

/// What the page compares and saves of one kind.
fn block_of(cur: &Value, domain: &str) -> Value {
    json!({
        "destinations": cur["destinations"].as_array().cloned().unwrap_or_default().iter()
            .map(|d| json!({"destination": shown_destination(&text_of(&d["destination"]), domain), "timeout": d["timeout"]}))
            .collect::<Vec<_>>(),
        "times": cur["times"].as_array().cloned().unwrap_or_default().iter()
            .map(|t| Value::Object(t.as_object().cloned().unwrap_or_default().into_iter().filter(|(_, v)| !v.is_null() && v != "").collect()))
            .collect::<Vec<_>>(),
        "enabled": cur["enabled"].as_bool().unwrap_or(true),
    })
}

/// The form's sections from the forwards now (or from a refused post, `form`).
fn sections(
    cur: &Value,
    domain: &str,
    form: Option<&HashMap<String, String>>,
    errors: &HashMap<String, String>,
) -> Vec<Value> {
    KINDS
        .iter()
        .map(|(k, label)| {
            let b = &cur[*k];
            let dests: Vec<Value> = b["destinations"].as_array().cloned().unwrap_or_default();
            let week = as_week(b["times"].as_array().map(Vec::as_slice).unwrap_or_default());
            let rows = form
                .map(|f| (0..).take_while(|i| f.contains_key(&format!("{k}_dest_{i}"))).count())
                .unwrap_or(dests.len() + 1)
                .max(2);
            let field = |name: String, fallback: String| match form {
                Some(f) => f.get(&name).cloned().unwrap_or_default(),
                None => fallback,
            };
            let dest_rows: Vec<Value> = (0..rows)
                .map(|i| {
                    let d = dests.get(i);
                    json!({
                        "i": i,
                        "destination": field(format!("{k}_dest_{i}"), d.map(|d| shown_destination(&text_of(&d["destination"]), domain)).unwrap_or_default()),
                        "timeout": field(format!("{k}_timeout_{i}"), d.map(|d| text_of(&d["timeout"])).unwrap_or_default()),
                    })
                })
                .collect();
            let days: Vec<Value> = DAYS
                .iter()
                .map(|(name, n)| {
                    let on = match form {
                        Some(f) => f.contains_key(&format!("{k}_day_{n}")),
                        None => week.as_ref().is_some_and(|w| w.days.contains(n)),
                    };
                    json!({"name": name, "n": n, "on": on})
                })
                .collect();
            let (from, to) = match week.as_ref().and_then(|w| w.hours) {
                Some((a, b)) => (a.to_string(), b.to_string()),
                None => (String::new(), String::new()),
            };
            let mut error: Vec<String> = errors
                .iter()
                .filter(|(f, _)| f.as_str() == *k || f.starts_with(&format!("{k}.")))
                .map(|(f, m)| format!("{f}: {m}"))
                .collect();
            error.sort();
            json!({
                "kind": k, "label": label,
                "on": match form { Some(f) => f.contains_key(&format!("{k}_on")), None => !dests.is_empty() && b["enabled"] != json!(false) },
                "rows": dest_rows, "days": days,
                "from": field(format!("{k}_from"), from), "to": field(format!("{k}_to"), to),
                "custom_times": week.is_none(),
                "ringtimeout": field("cft_ring".into(), text_of(&b["ringtimeout"])),
                "error": (!error.is_empty()).then(|| error.join("; ")),
            })
        })
        .collect()
}

/// A destination as people type it: the number of a `sip:<number>@<the subscriber's domain>`
/// URI (what the API makes of a typed number); any other destination as it is stored.
fn shown_destination(d: &str, domain: &str) -> String {
    match d.strip_prefix("sip:").and_then(|r| r.split_once('@')) {
        Some((user, host))
            if host.eq_ignore_ascii_case(domain)
                && !user.is_empty()
                && user.chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("+{user}")
        }
        _ => d.to_string(),
    }
}

/// A typed destination: a number may be written with spaces (+43 1 234567).
fn typed_destination(d: &str) -> String {
    let d = d.trim();
    if d.starts_with('+') || d.starts_with(|c: char| c.is_ascii_digit()) {
        d.split_whitespace().collect()
    } else {
        d.to_string()
    }
}

/// One kind's block as the form sent it, or an error naming the form's field.
fn posted_block(
    k: &str,
    cur: &Value,
    domain: &str,
    form: &HashMap<String, String>,
) -> Result<Value, (String, String)> {
    let now: Vec<Value> = cur[k]["destinations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut destinations = Vec::new();
    for i in 0.. {
        let Some(d) = form.get(&format!("{k}_dest_{i}")) else {
            break;
        };
        let d = typed_destination(d);
        let d = d.as_str();
        let t = form
            .get(&format!("{k}_timeout_{i}"))
            .map(|t| t.trim())
            .unwrap_or("");
        if d.is_empty() {
            continue;
        }
        let timeout = if t.is_empty() {
            json!(300)
        } else {
            match t.parse::<i64>() {
                Ok(n) => json!(n),
                Err(_) => {
                    return Err((
                        format!("{k}.destinations[{}].timeout", destinations.len()),
                        format!("'{t}' is not a number of seconds"),
                    ))
                }
            }
        };
        let mut dest = json!({"destination": d, "timeout": timeout});
        // An announcement it had stays with it.
        if let Some(a) = now
            .iter()
            .find(|x| shown_destination(&text_of(&x["destination"]), domain) == d)
            .map(|x| &x["announcement_id"])
            .filter(|a| !a.is_null())
        {
            dest["announcement_id"] = a.clone();
        }
        destinations.push(dest);
    }
    let mut block = block_of(&cur[k], domain);
    // The time windows: the page's days and hours, unless they were more than that and
    // the page left them alone.
    let week_now = as_week(
        cur[k]["times"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
    );
    let hour = |name: &str| -> Result<Option<i64>, (String, String)> {
        match form
            .get(&format!("{k}_{name}"))
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            None => Ok(None),
            Some(s) => match s.parse::<i64>() {
                Ok(h) if (0..=24).contains(&h) => Ok(Some(h)),
                _ => Err((
                    format!("{k}.times"),
                    format!("{name}: '{s}' is not an hour from 0 to 24"),
                )),
            },
        }
    };
    let hours = match (hour("from")?, hour("to")?) {
        (None, None) => None,
        (Some(a), Some(b)) if b > a => Some((a, b)),
        (Some(a), None) => Some((a, 24)),
        (None, Some(b)) if b > 0 => Some((0, b)),
        _ => {
            return Err((
                format!("{k}.times"),
                "the hours must end after they start".into(),
            ))
        }
    };
    let mut days: BTreeSet<i64> = DAYS
        .iter()
        .filter(|(_, n)| form.contains_key(&format!("{k}_day_{n}")))
        .map(|(_, n)| *n)
        .collect();
    if days.len() == 7 {
        days.clear();
    }
    let week = Week { days, hours };
    if week_now.is_some() || week != Week::default() {
        block["times"] = Value::Array(from_week(&week));
    }
    // A forward set where there was none is on; otherwise as the box says.
    let was_set = cur[k]["destinations"]
        .as_array()
        .is_some_and(|d| !d.is_empty());
    block["enabled"] = json!(form.contains_key(&format!("{k}_on")) || !was_set);
    block["destinations"] = Value::Array(destinations);
    if k == "cft" {
        match form
            .get("cft_ring")
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            Some(s) => match s.parse::<i64>() {
                Ok(n) => block["ringtimeout"] = json!(n),
                Err(_) => {
                    return Err((
                        "cft.ringtimeout".into(),
                        format!("'{s}' is not a number of seconds"),
                    ))
                }
            },
            None => block["ringtimeout"] = cur[k]["ringtimeout"].clone(),
        }
    }
    Ok(block)
}

/// Whether a posted block differs from the forward now (an unset kind left unset does not;
/// time windows are compared by what they mean when both are days and hours).
fn changed(k: &str, block: &Value, cur: &Value, domain: &str) -> bool {
    let empty = |b: &Value| b["destinations"].as_array().is_none_or(Vec::is_empty);
    if empty(block) && empty(cur) {
        return false;
    }
    let now = block_of(cur, domain);
    let plain = |b: &Value| {
        let dests: Vec<Value> = b["destinations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| json!([d["destination"], d["timeout"]]))
            .collect();
        (dests, b["enabled"].clone())
    };
    let times = |b: &Value| b["times"].as_array().cloned().unwrap_or_default();
    let same_times = match (as_week(&times(block)), as_week(&times(&now))) {
        (Some(a), Some(b)) => a == b,
        _ => times(block) == times(&now),
    };
    plain(block) != plain(&now)
        || !same_times
        || (k == "cft" && block["ringtimeout"] != cur["ringtimeout"])
}

/// What a forwards page shows beyond the forwards now: a refused post's values and errors,
/// or what a save did.
#[derive(Default)]
struct Said<'a> {
    form: Option<&'a HashMap<String, String>>,
    errors: HashMap<String, String>,
    error: Option<String>,
    flash: Option<String>,
}

/// The subscriber whose forwards a page is about, or the page saying it cannot be seen.
async fn subscriber(app: &UiState, u: &User, peer: SocketAddr, id: i64) -> Result<Value, Response> {
    let uri = format!("/api/subscribers/{id}");
    let (s, sub) = api(app, &u.actor, peer, Method::GET, &uri, None).await;
    if s.is_success() {
        Ok(sub)
    } else {
        Err(refused_page(u, format!("subscriber {id}"), s, &sub))
    }
}

/// The forwards page of `sub` (as [`subscriber`] read it), with its forwards read now.
async fn forwards_page(
    app: &UiState,
    u: &User,
    peer: SocketAddr,
    id: i64,
    sub: &Value,
    said: Said<'_>,
) -> Response {
    let (_, cur) = api(
        app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/callforwards/{id}"),
        None,
    )
    .await;
    page(
        "forwards.html",
        json!({"user": user_ctx(u), "csrf": u.csrf, "id": id,
               "title": format!("Call forwards of {}@{}", text_of(&sub["username"]), text_of(&sub["domain"])),
               "sections": sections(&cur, &text_of(&sub["domain"]), said.form, &said.errors), "error": said.error, "flash": said.flash}),
    )
}

pub(super) async fn forwards_form(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    if name != "subscribers" {
        return (StatusCode::NOT_FOUND, "only subscribers have call forwards").into_response();
    }
    let id: i64 = id.parse().unwrap_or(0);
    match subscriber(&app, &u, peer, id).await {
        Ok(sub) => forwards_page(&app, &u, peer, id, &sub, Said::default()).await,
        Err(r) => r,
    }
}

pub(super) async fn save_forwards(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (u, _) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    if name != "subscribers" {
        return (StatusCode::NOT_FOUND, "only subscribers have call forwards").into_response();
    }
    let id: i64 = id.parse().unwrap_or(0);
    let sub = match subscriber(&app, &u, peer, id).await {
        Ok(sub) => sub,
        Err(r) => return r,
    };
    let domain = text_of(&sub["domain"]);
    let (s, cur) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/callforwards/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        return (s, text_of(&cur["message"])).into_response();
    }
    let mut ops = Vec::new();
    let mut errors = HashMap::new();
    for (k, _) in KINDS {
        match posted_block(k, &cur, &domain, &form) {
            Ok(block) if changed(k, &block, &cur[k], &domain) => {
                let value = if block["destinations"].as_array().is_none_or(Vec::is_empty) {
                    // Removed: no destinations, and so no conditions either.
                    json!({"destinations": []})
                } else {
                    // Conditions the page does not show stay as they are.
                    let mut full = block;
                    for keep in ["sources", "sources_mode", "bnumbers", "bnumbers_mode"] {
                        if let Some(v) = cur[k].get(keep) {
                            full[keep] = v.clone();
                        }
                    }
                    full
                };
                ops.push(json!({"op": "replace", "path": format!("/{k}"), "value": value}));
            }
            Ok(_) => {}
            Err((field, msg)) => {
                errors.insert(field, msg);
            }
        }
    }
    if ops.is_empty() && errors.is_empty() {
        return forwards_page(
            &app,
            &u,
            peer,
            id,
            &sub,
            Said {
                flash: Some("Nothing changed.".into()),
                ..Default::default()
            },
        )
        .await;
    }
    let (status, v) = if errors.is_empty() {
        api(
            &app,
            &u.actor,
            peer,
            Method::PATCH,
            &format!("/api/callforwards/{id}"),
            Some(("application/json-patch+json", Value::Array(ops).to_string())),
        )
        .await
    } else {
        (StatusCode::UNPROCESSABLE_ENTITY, json!({}))
    };
    if status.is_success() {
        return forwards_page(
            &app,
            &u,
            peer,
            id,
            &sub,
            Said {
                flash: Some("Call forwards saved.".into()),
                ..Default::default()
            },
        )
        .await;
    }
    let (api_errs, msg) = api_errors(&v);
    errors.extend(api_errs);
    let top = if errors.is_empty() {
        msg
    } else {
        "The forwards marked below need a change.".into()
    };
    let mut r = forwards_page(
        &app,
        &u,
        peer,
        id,
        &sub,
        Said {
            form: Some(&form),
            errors,
            error: Some(top),
            flash: None,
        },
    )
    .await;
    *r.status_mut() = StatusCode::UNPROCESSABLE_ENTITY;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weeks_round_trip_through_time_windows() {
        let w = Week {
            days: [2, 3, 4, 5, 6].into(),
            hours: Some((8, 18)),
        };
        let t = from_week(&w);
        assert_eq!(t, vec![json!({"wday": "2-6", "hour": "8-17"})]);
        assert_eq!(as_week(&t), Some(w));
        let w = Week {
            days: [1, 4, 7].into(),
            hours: None,
        };
        let t = from_week(&w);
        assert_eq!(
            t,
            vec![
                json!({"wday": "1"}),
                json!({"wday": "4"}),
                json!({"wday": "7"})
            ]
        );
        assert_eq!(as_week(&t), Some(w));
        assert_eq!(from_week(&Week::default()), Vec::<Value>::new());
        assert_eq!(as_week(&[]), Some(Week::default()));
        // More than days and hours: not shown as a week (and kept as it is).
        assert_eq!(as_week(&[json!({"month": "12", "mday": "24-26"})]), None);
        assert_eq!(
            as_week(&[
                json!({"wday": "2", "hour": "8"}),
                json!({"wday": "3", "hour": "9"})
            ]),
            None
        );
    }
}
