//! Forms: create, edit (sending only what changed), delete after confirmation, actions,
//! and the preferences document.

use super::*;

/// The form's fields: `values` from a representation (`raw` false) or as a failed post sent
/// them (`raw` true); `orig` the values the edit form first showed, carried along so that a
/// save sends only what the user changed.
pub(super) fn form_fields(
    c: &Coll,
    values: &Map<String, Value>,
    errors: &HashMap<String, String>,
    raw: bool,
    orig: Option<&HashMap<String, String>>,
) -> Vec<Value> {
    c.fields
        .iter()
        .map(|(f, kind)| {
            let v = values.get(f).cloned().unwrap_or(Value::Null);
            let value = match (&v, raw) {
                (Value::String(s), true) => s.clone(),
                _ => shown(&v, kind),
            };
            let secret = is_secret(f) && *kind != "boolean";
            let mut o = orig.and_then(|o| o.get(f).cloned());
            // An error of a part (primary_number.sn, alias_numbers[1].cc) shows at its field,
            // once: the API's message names the part already.
            let error = errors.get(f).cloned().or_else(|| {
                let mut parts: Vec<String> = errors
                    .iter()
                    .filter(|(k, _)| *k != f && of_field(k, f))
                    .map(|(k, m)| if m.starts_with(k.as_str()) { m.clone() } else { format!("{k}: {m}") })
                    .collect();
                parts.sort();
                (!parts.is_empty()).then(|| parts.join("; "))
            });
            // A yes/no as a checkbox where the form knows its state (the object's, or the
            // API's default on a new form); else a list that can leave it to the API.
            let (value, checkbox) = match (*kind, value.as_str()) {
                ("boolean", "true" | "false") => (value, true),
                ("boolean", "") => match bool_default(f) {
                    Some(d) => {
                        // Shown as the default: untouched, it is not sent as a change.
                        if o.as_deref() == Some("") {
                            o = Some(d.to_string());
                        }
                        (d.to_string(), true)
                    }
                    None => (value, false),
                },
                _ => (value, false),
            };
            let rows = match *kind {
                "e164" | "e164list" => Some(number_rows(&value, kind)),
                "lines" => Some(line_rows(&value)),
                "members" => Some(member_rows(&value)),
                _ => None,
            };
            json!({"name": f, "label": label(f), "kind": kind, "value": if secret { String::new() } else { value },
                   "secret": secret, "orig": o, "required": c.required.contains(f), "rows": rows, "error": error,
                   "checkbox": checkbox})
        })
        .collect()
}

/// A posted form as the API's JSON: each field by its kind; empty fields left out.
pub(super) fn form_json(
    c: &Coll,
    form: &HashMap<String, String>,
    errors: &mut HashMap<String, String>,
) -> Map<String, Value> {
    let mut m = Map::new();
    for (f, kind) in &c.fields {
        let Some(raw) = form.get(f) else { continue };
        let raw = if is_secret(f) {
            raw.as_str()
        } else {
            raw.trim()
        };
        if raw.is_empty() {
            // A required text left empty is sent empty: the API then names it among the
            // form's other problems (a missing field would be refused on its own).
            if *kind == "text" && !is_secret(f) && c.required.contains(f) && refuses_empty(c.name) {
                m.insert(f.clone(), json!(""));
            }
            continue;
        }
        let v = match *kind {
            "integer" => raw
                .parse::<i64>()
                .map(Value::from)
                .unwrap_or_else(|_| json!(raw)),
            "number" => raw
                .parse::<f64>()
                .ok()
                .and_then(|n| serde_json::Number::from_f64(n).map(Value::Number))
                .unwrap_or_else(|| json!(raw)),
            "boolean" => json!(raw == "true"),
            "json" | "e164" | "e164list" | "lines" => match serde_json::from_str(raw) {
                Ok(v) => v,
                Err(e) => {
                    errors.insert(f.clone(), format!("not valid JSON: {e}"));
                    continue;
                }
            },
            _ => json!(raw),
        };
        m.insert(f.clone(), v);
    }
    m
}

/// (value, label) pairs as a template's options.
fn options(list: Vec<(String, String)>) -> Value {
    list.into_iter()
        .map(|(v, l)| json!({"value": v, "label": l}))
        .collect()
}

/// A value the list does not hold (another reseller's, one made since) stays, shown as
/// `label`.
fn keep_value(list: &mut Vec<(String, String)>, value: String, label: impl FnOnce(&str) -> String) {
    if !value.is_empty() && !list.iter().any(|(v, _)| *v == value) {
        let l = label(&value);
        list.push((value, l));
    }
}

/// A form page: the fields as [`form_fields`] made them, with the choices of the fields that
/// pick from a list ([`widget`]) read now; `error` at the top ([`top_message`]).
#[allow(clippy::too_many_arguments)]
pub(super) async fn form_page(
    app: &UiState,
    peer: SocketAddr,
    u: &User,
    c: &Coll,
    title: String,
    action: String,
    back: String,
    mut fields: Vec<Value>,
    error: Option<String>,
) -> Response {
    let mut read: HashMap<&str, Option<Vec<(String, String)>>> = HashMap::new();
    let mut ahead: HashMap<&str, Option<Vec<(String, String)>>> = HashMap::new();
    // A PBX object's destinations are its tenant's (known once the form has a tenant).
    let tenant = fields
        .iter()
        .find(|f| f["name"] == "tenant_id")
        .and_then(|f| text_of(&f["value"]).parse::<i64>().ok());
    let mut dests: Option<Value> = None;
    if let Some(t) = tenant.filter(|_| {
        fields.iter().any(|f| {
            f["kind"] == "members"
                || matches!(
                    widget(c.name, &text_of(&f["name"])),
                    Some(Widget::Destination)
                )
        })
    }) {
        dests = Some(options(destinations(app, &u.actor, peer, t).await));
    }
    for f in &mut fields {
        let name = text_of(&f["name"]);
        if f["kind"] == "lines" {
            if !read.contains_key("subscribers") {
                read.insert(
                    "subscribers",
                    picks(app, &u.actor, peer, "subscribers").await,
                );
            }
            f["subscribers"] = json!(read["subscribers"].clone().map(|mut l| {
                for r in f["rows"].as_array().into_iter().flatten() {
                    keep_value(&mut l, text_of(&r["subscriber_id"]), |s| {
                        format!("subscriber {s}")
                    });
                }
                options(l)
            }));
            f["line_types"] = options(
                LINE_TYPES
                    .iter()
                    .map(|(v, l)| (v.to_string(), l.to_string()))
                    .collect(),
            );
        }
        // An enum left empty is the API's default; a reference left empty is none.
        f["choice"] = json!(matches!(widget(c.name, &name), Some(Widget::Choice(_))));
        let choices: Option<Vec<(String, String)>> = match widget(c.name, &name) {
            Some(Widget::Choice(list)) => Some(
                list.iter()
                    .map(|(v, l)| (v.to_string(), l.to_string()))
                    .collect(),
            ),
            Some(Widget::Pick(coll)) => {
                if !read.contains_key(coll) {
                    read.insert(coll, picks(app, &u.actor, peer, coll).await);
                }
                // Too many for a list: a text box that suggests them as the user types
                // (a name or an id), up to a page of the API's; past that, the id alone.
                if read[coll].is_none() {
                    if !ahead.contains_key(coll) {
                        let list = picks_upto(app, &u.actor, peer, coll, TYPE_AHEAD_MOST).await;
                        ahead.insert(coll, list);
                    }
                    if let Some(list) = ahead[coll].clone() {
                        f["datalist"] = options(list);
                    }
                }
                read[coll].clone()
            }
            Some(Widget::Destination) | None => None,
        };
        if f["kind"] == "members" || matches!(widget(c.name, &name), Some(Widget::Destination)) {
            f["datalist"] = dests.clone().unwrap_or_else(|| json!([]));
        }
        // A required reference with a single possible object: that one (one reseller, one
        // carrier), rather than a list that offers only a wrong empty choice.
        if let Some([(only, _)]) = choices.as_deref() {
            if f["required"] == json!(true) && text_of(&f["value"]).is_empty() {
                f["value"] = json!(only);
            }
        }
        if let Some(mut list) = choices {
            keep_value(&mut list, text_of(&f["value"]), str::to_string);
            f["options"] = options(list);
        }
    }
    page(
        "form.html",
        json!({"user": user_ctx(u), "csrf": u.csrf, "title": title, "action": action, "back": back, "fields": fields, "error": error}),
    )
}

pub(super) async fn new_form(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(c) = coll(&name).filter(|c| c.create) else {
        return (StatusCode::NOT_FOUND, "nothing to create here").into_response();
    };
    // What a link fills in (a customer's "Add subscriber"): references only, never a URL
    // or a text someone else chose.
    let query: Vec<(String, String)> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let mut given: Map<String, Value> = query
        .iter()
        .filter(|(k, v)| {
            k.ends_with("_id")
                && v.parse::<i64>().is_ok()
                && c.fields
                    .iter()
                    .any(|(f, kind)| f == k && *kind == "integer")
        })
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    // A phone added from a subscriber's page: its first line is that subscriber.
    if let (true, Some(sub)) = (
        c.fields.iter().any(|(f, k)| f == "lines" && *k == "lines"),
        query
            .iter()
            .find(|(k, _)| k == "line_subscriber_id")
            .and_then(|(_, v)| v.parse::<i64>().ok()),
    ) {
        given.insert(
            "lines".into(),
            json!(json!([{"subscriber_id": sub, "type": "private"}]).to_string()),
        );
    }
    let fields = form_fields(c, &given, &HashMap::new(), true, None);
    form_page(
        &app,
        peer,
        &u,
        c,
        format!("New {}", singular(&name)),
        format!("/ui/{name}/new"),
        format!("/ui/{name}/"),
        fields,
        None,
    )
    .await
}

/// What the top of a form says after a refused save: how many fields need a change (their
/// errors are at them), and any problem of a field the form does not show; the API's message
/// when no field is named.
pub(super) fn top_message(
    c: &Coll,
    errors: &HashMap<String, String>,
    msg: String,
) -> Option<String> {
    let placed = c
        .fields
        .iter()
        .filter(|(f, _)| errors.keys().any(|k| of_field(k, f)))
        .count();
    let mut elsewhere: Vec<String> = errors
        .iter()
        .filter(|(k, _)| !c.fields.iter().any(|(f, _)| of_field(k, f)))
        .map(|(k, m)| format!("{k}: {m}"))
        .collect();
    elsewhere.sort();
    let mut out = match placed {
        0 if elsewhere.is_empty() => return Some(msg),
        0 => String::new(),
        1 => "One field needs a change: see below.".to_string(),
        n => format!("{n} fields need a change: see below."),
    };
    if !elsewhere.is_empty() {
        out = format!("{out} {}", elsewhere.join("; ")).trim().to_string();
    }
    Some(out)
}

/// Whether an error's field `k` is form field `f` or a part of it (`primary_number.sn`,
/// `alias_numbers[1].cc`).
fn of_field(k: &str, f: &str) -> bool {
    k == f
        || k.strip_prefix(f)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// The API's 422 as errors at their fields.
pub(super) fn api_errors(v: &Value) -> (HashMap<String, String>, String) {
    let mut e = HashMap::new();
    let msg = text_of(&v["message"]);
    for x in v["errors"].as_array().into_iter().flatten() {
        if let (Some(f), Some(m)) = (x["field"].as_str(), x["message"].as_str()) {
            e.insert(f.to_string(), m.to_string());
        }
    }
    if let (true, Some(f)) = (e.is_empty(), v["field"].as_str()) {
        e.insert(f.to_string(), msg.clone());
    }
    (e, msg)
}

pub(super) async fn create(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    fold_numbers(&c.fields, &mut form);
    fold_checkboxes(&c.fields, &mut form);
    let mut errors = HashMap::new();
    let body = form_json(c, &form, &mut errors);
    let (status, v) = if errors.is_empty() {
        api(
            &app,
            &u.actor,
            peer,
            Method::POST,
            &format!("/api/{name}/"),
            Some(("application/json", Value::Object(body.clone()).to_string())),
        )
        .await
    } else {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "some fields are not valid"}),
        )
    };
    if status == StatusCode::CREATED {
        let id = text_of(&v["id"]);
        let mut r = Redirect::to(&format!("/ui/{name}/{id}")).into_response();
        // Secrets shown once (an API key's, a device's first-boot URL) are on the page now.
        if v.get("secret").is_some() || v.get("boot_token").is_some() {
            let once: Map<String, Value> = ["secret", "boot_token", "provisioning_url"]
                .iter()
                .filter_map(|k| v.get(*k).map(|x| (k.to_string(), x.clone())))
                .collect();
            return page(
                "page.html",
                json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("{name} {id} created"),
                "links": [{"href": format!("/ui/{name}/{id}"), "label": "Continue", "hint": "These values are shown once: copy them now."}],
                "pre": serde_json::to_string_pretty(&once).unwrap_or_default()}),
            );
        }
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    let (mut e2, msg) = api_errors(&v);
    e2.extend(errors);
    let values: Map<String, Value> = c
        .fields
        .iter()
        .filter_map(|(f, _)| form.get(f).map(|x| (f.clone(), json!(x))))
        .collect();
    let mut r = form_page(
        &app,
        peer,
        &u,
        c,
        format!("New {}", singular(&name)),
        format!("/ui/{name}/new"),
        format!("/ui/{name}/"),
        form_fields(c, &values, &e2, true, None),
        top_message(c, &e2, msg),
    )
    .await;
    *r.status_mut() = if status.is_success() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        status
    };
    r
}

pub(super) async fn edit_form(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let Some(c) = coll(&name) else {
        return (StatusCode::NOT_FOUND, "no such collection").into_response();
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        return (s, "not found").into_response();
    }
    let mut values = v.as_object().cloned().unwrap_or_default();
    if c.fields.len() == 1 && c.fields[0].0 == DOCUMENT {
        let mut doc = values.clone();
        doc.remove("_links");
        values.insert(DOCUMENT.into(), Value::Object(doc));
    }
    form_page(
        &app,
        peer,
        &u,
        c,
        format!("Edit {} {id}", singular(&name)),
        format!("/ui/{name}/{id}/edit"),
        format!("/ui/{name}/{id}"),
        {
            let orig: HashMap<String, String> = c
                .fields
                .iter()
                .map(|(f, k)| {
                    (
                        f.clone(),
                        if is_secret(f) && *k != "boolean" {
                            String::new()
                        } else {
                            shown(values.get(f).unwrap_or(&Value::Null), k)
                        },
                    )
                })
                .collect();
            form_fields(c, &values, &HashMap::new(), false, Some(&orig))
        },
        None,
    )
    .await
}

pub(super) async fn update(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(mut form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    fold_numbers(&c.fields, &mut form);
    fold_checkboxes(&c.fields, &mut form);
    let id: i64 = id.parse().unwrap_or(0);
    let (s, cur) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        return (s, "not found").into_response();
    }
    if c.fields.len() == 1 && c.fields[0].0 == DOCUMENT {
        return put_document(&app, &u, peer, c, id, &form).await;
    }
    // Only what the user changed, as JSON Patch, judged against what the form first showed
    // (not against the object now): another user's change to another field is not undone,
    // and fields left as they were (an empty password) stay as they are.
    let changed: HashMap<String, String> = c
        .fields
        .iter()
        .filter_map(|(f, _)| {
            let now = form.get(f)?;
            let was = form
                .get(&format!("_orig_{f}"))
                .map(String::as_str)
                .unwrap_or("");
            (now.trim() != was.trim()).then(|| (f.clone(), now.clone()))
        })
        .collect();
    let mut errors = HashMap::new();
    let new = form_json(c, &changed, &mut errors);
    let mut ops = Vec::new();
    for (f, v) in &new {
        ops.push(json!({"op": if cur.get(f).is_some() { "replace" } else { "add" }, "path": format!("/{f}"), "value": v}));
    }
    for f in changed.keys() {
        if !new.contains_key(f) && !errors.contains_key(f) && !is_secret(f) {
            // Emptied: the value goes (a list becomes empty).
            let kind = c.fields.iter().find(|(n, _)| n == f).map(|(_, k)| *k);
            let none = match kind {
                Some("lines" | "e164list") => json!([]),
                _ => Value::Null,
            };
            ops.push(json!({"op": "replace", "path": format!("/{f}"), "value": none}));
        }
    }
    let (status, v) = if !errors.is_empty() {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": "some fields are not valid"}),
        )
    } else if ops.is_empty() {
        (StatusCode::OK, Value::Null)
    } else {
        api(
            &app,
            &u.actor,
            peer,
            Method::PATCH,
            &format!("/api/{name}/{id}"),
            Some(("application/json-patch+json", Value::Array(ops).to_string())),
        )
        .await
    };
    if status.is_success() {
        let mut r = Redirect::to(&format!("/ui/{name}/{id}")).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    let (mut e2, msg) = api_errors(&v);
    e2.extend(errors);
    let values: Map<String, Value> = c
        .fields
        .iter()
        .filter_map(|(f, _)| form.get(f).map(|x| (f.clone(), json!(x))))
        .collect();
    let mut r = form_page(
        &app,
        peer,
        &u,
        c,
        format!("Edit {} {id}", singular(&name)),
        format!("/ui/{name}/{id}/edit"),
        format!("/ui/{name}/{id}"),
        {
            let orig: HashMap<String, String> = c
                .fields
                .iter()
                .filter_map(|(f, _)| {
                    form.get(&format!("_orig_{f}"))
                        .map(|o| (f.clone(), o.clone()))
                })
                .collect();
            form_fields(c, &values, &e2, true, Some(&orig))
        },
        top_message(c, &e2, msg),
    )
    .await;
    *r.status_mut() = status;
    r
}

pub(super) async fn delete(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::DELETE,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if s.is_success() {
        let mut r = Redirect::to(&format!("/ui/{name}/")).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    item_page(&app, &u, peer, c, id, Some(text_of(&v["message"])), None).await
}

/// The buttons of item pages ([`action_request`]): lock and unlock, device resync, hook
/// redelivery, SIP server check and repair.
pub(super) async fn action(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id, action)): Path<(String, String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (u, c) = match posted(&app, &headers, &form, &name).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let Some((method, uri, patch, done)) = action_request(&name, id, &action) else {
        return (StatusCode::NOT_FOUND, "no such action").into_response();
    };
    let body = match patch {
        Some(p) => ("application/json-patch+json", p),
        None => ("application/json", "{}".into()),
    };
    let (s, v) = api(&app, &u.actor, peer, method, &uri, Some(body)).await;
    if s.is_success() {
        // A secret the API shows once is shown here, once (the page is not cached).
        let mut said = done.to_string();
        if name == "sipservers" {
            said = drift_words(&v);
        } else if let Some(url) = v["provisioning_url"].as_str() {
            said.push_str(&format!(" Give the phone this URL, shown only now: {url}"));
        } else if let Some(secret) = v["secret"].as_str() {
            said.push_str(&format!(" The new secret, shown only now: {secret}"));
            if let Some(t) = v["previous_secret_valid_until"].as_str() {
                said.push_str(&format!(" (the old one keeps working until {t})"));
            }
        }
        item_page(&app, &u, peer, c, id, None, Some(said)).await
    } else {
        let msg = format!("{action}: {}", text_of(&v["message"]));
        item_page(&app, &u, peer, c, id, Some(msg), None).await
    }
}

/// A SIP server's check or repair, in words: what differed and whether it was put right.
fn drift_words(v: &Value) -> String {
    let count = v["count"].as_u64().unwrap_or(0);
    if count == 0 {
        return "In step: the SIP server's tables hold what voxprov provisioned.".into();
    }
    let diffs: Vec<String> = v["differences"]
        .as_array()
        .into_iter()
        .flatten()
        .take(20)
        .map(|d| {
            let what = match d["kind"].as_str() {
                Some("missing") => "missing there",
                Some("extra") => "there but not provisioned",
                _ => "different",
            };
            format!("{} {} ({what})", text_of(&d["table"]), text_of(&d["key"]))
        })
        .collect();
    let more = if count > 20 {
        format!(" and {} more", count - 20)
    } else {
        String::new()
    };
    let head = if v["repaired"] == json!(true) {
        format!("Repaired {count} difference(s)")
    } else {
        format!("{count} difference(s) found, not repaired (Repair puts them right)")
    };
    format!("{head}: {}{more}.", diffs.join("; "))
}

/// The configuration a device would get, as text (GET: it changes nothing).
pub(super) async fn preview(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/pbxdevices/{id}/preview"),
        None,
    )
    .await;
    page(
        "page.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("Configuration of device {id}"),
               "links": [{"href": format!("/ui/pbxdevices/{id}"), "label": "Back to the device", "hint": "passwords masked"}],
               "error": (!s.is_success()).then(|| text_of(&v["message"])), "pre": s.is_success().then(|| text_of(&v))}),
    )
}

/// Deleting asks first (a page with the button that does it).
pub(super) async fn delete_confirm(
    State(app): State<UiState>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    match coll(&name) {
        Some(c) if c.delete => {}
        _ => return (StatusCode::NOT_FOUND, "nothing to delete here").into_response(),
    }
    let id: i64 = id.parse().unwrap_or(0);
    let (verb, consequence) = delete_words(&name);
    page(
        "confirm.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("{verb} {name} {id}?"), "verb": verb,
               "consequence": consequence,
               "action": format!("/ui/{name}/{id}/delete"), "back": format!("/ui/{name}/{id}")}),
    )
}

/// Saves a free-form object (preferences) edited as one JSON document.
pub(super) async fn put_document(
    app: &UiState,
    u: &User,
    peer: SocketAddr,
    c: &Coll,
    id: i64,
    form: &HashMap<String, String>,
) -> Response {
    let name = c.name;
    let raw = form.get(DOCUMENT).cloned().unwrap_or_default();
    let (status, v) = match serde_json::from_str::<Value>(&raw) {
        Ok(doc) => {
            api(
                app,
                &u.actor,
                peer,
                Method::PUT,
                &format!("/api/{name}/{id}"),
                Some(("application/json", doc.to_string())),
            )
            .await
        }
        Err(e) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"message": format!("not valid JSON: {e}"), "field": DOCUMENT}),
        ),
    };
    if status.is_success() {
        let mut r = Redirect::to(&format!("/ui/{name}/{id}")).into_response();
        *r.status_mut() = StatusCode::SEE_OTHER;
        return r;
    }
    let (e, msg) = api_errors(&v);
    let mut values = Map::new();
    values.insert(DOCUMENT.into(), json!(raw));
    let mut r = form_page(
        app,
        peer,
        u,
        c,
        format!("Edit {} {id}", singular(name)),
        format!("/ui/{name}/{id}/edit"),
        format!("/ui/{name}/{id}"),
        form_fields(c, &values, &e, true, None),
        top_message(c, &e, msg),
    )
    .await;
    *r.status_mut() = status;
    r
}
