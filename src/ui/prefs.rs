//! Preferences as a form built from their definitions (the API's catalog): grouped as the
//! catalog groups them, each as its kind asks — yes/no, a whole number within its bounds, one
//! of an enum's values, a text, or a list with one value per line. Empty means not set here
//! (for a subscriber: its customer's, else its domain's value applies). A save sends one JSON
//! Patch of what the user changed; the API checks every value.

use std::collections::BTreeMap;

use super::*;

/// The preferences collection and its catalog for an object of `name`.
fn catalog(name: &str) -> Option<(&'static str, &'static str)> {
    match name {
        "subscribers" => Some(("subscriberpreferences", "subscriberpreferencedefs")),
        "customers" => Some(("customerpreferences", "customerpreferencedefs")),
        "domains" => Some(("domainpreferences", "domainpreferencedefs")),
        _ => None,
    }
}

/// A value as the form shows it: a list one per line, yes/no as true/false.
fn shown_pref(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(text_of).collect::<Vec<_>>().join("\n"),
        other => text_of(other),
    }
}

/// What the user typed, the way [`shown_pref`] writes it (lines trimmed, empty ones left out).
fn typed(raw: &str) -> String {
    raw.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// One posted value of a preference as JSON (the API judges it).
fn one(def: &Value, raw: &str) -> std::result::Result<Value, String> {
    match def["data_type"].as_str() {
        Some("boolean") => match raw {
            "true" => Ok(json!(true)),
            "false" => Ok(json!(false)),
            _ => Err("must be yes or no".into()),
        },
        Some("int") => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("'{raw}' is not a whole number")),
        _ => Ok(json!(raw)),
    }
}

/// A posted field as the preference's value; `None`: not set here.
fn posted_pref(def: &Value, raw: &str) -> std::result::Result<Option<Value>, String> {
    let text = typed(raw);
    if text.is_empty() {
        return Ok(None);
    }
    if def["max_occur"] == json!(0) {
        let items = text
            .lines()
            .map(|l| one(def, l))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        return Ok(Some(Value::Array(items)));
    }
    one(def, &text).map(Some)
}

/// What a preferences page works on: the object's preferences collection, what is set now,
/// and the catalog as (name, definition) in its order, without what cannot be set.
struct Current {
    coll: &'static str,
    set: Value,
    defs: Vec<(String, Value)>,
}

impl Current {
    async fn read(
        app: &UiState,
        u: &User,
        peer: SocketAddr,
        name: &str,
        id: i64,
    ) -> std::result::Result<Current, Response> {
        let Some((coll, catalog)) = catalog(name) else {
            return Err((StatusCode::NOT_FOUND, "no preferences here").into_response());
        };
        let get =
            |uri: String| async move { api(app, &u.actor, peer, Method::GET, &uri, None).await };
        let (s, set) = get(format!("/api/{coll}/{id}")).await;
        if !s.is_success() {
            return Err(refused_page(u, format!("{name} {id}"), s, &set));
        }
        let (s, v) = get(format!("/api/{catalog}/")).await;
        if !s.is_success() {
            return Err(refused_page(u, "preferences".into(), s, &v));
        }
        let defs = v
            .as_object()
            .map(|m| {
                m.iter()
                    .filter(|(k, d)| *k != "_links" && d["read_only"] != json!(true))
                    .map(|(k, d)| (k.clone(), d.clone()))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Current { coll, set, defs })
    }

    /// A set of preferences (this one's, or a saved one's) as the form's values.
    fn shown(&self, set: &Value) -> HashMap<String, String> {
        self.defs
            .iter()
            .map(|(p, _)| (p.clone(), shown_pref(&set[p])))
            .collect()
    }
}

/// The page: the preferences by group, with `values` (as set, or as posted) and `errors`.
#[allow(clippy::too_many_arguments)]
fn prefs_page(
    u: &User,
    name: &str,
    id: i64,
    defs: &[(String, Value)],
    values: &HashMap<String, String>,
    orig: &HashMap<String, String>,
    errors: &HashMap<String, String>,
    flash: Option<String>,
    error: Option<String>,
) -> Response {
    let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (pref, d) in defs {
        let value = values.get(pref).cloned().unwrap_or_default();
        let was = orig.get(pref).cloned().unwrap_or_default();
        let list = d["max_occur"] == json!(0);
        let kind = match d["data_type"].as_str() {
            _ if list => "list",
            Some("boolean") => "boolean",
            Some("int") => "int",
            Some("enum") => "enum",
            _ => "text",
        };
        let options: Vec<Value> = d["enum_values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|o| json!({"value": o["value"], "label": o["label"]}))
            .collect();
        // An error of a list's item (block_in_list[1]) shows at the list.
        let error = errors.get(pref).cloned().or_else(|| {
            errors
                .iter()
                .find(|(k, _)| k.starts_with(&format!("{pref}[")))
                .map(|(k, m)| format!("{k}: {m}"))
        });
        groups.entry(text_of(&d["group"])).or_default().push(
            json!({"name": pref, "label": d["label"], "help": d["description"],
                         "kind": kind, "value": value, "orig": was, "options": options,
                         "min": d["min"], "max": d["max"], "error": error}),
        );
    }
    let set = values.values().filter(|v| !v.is_empty()).count();
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, fields)| {
            let open = fields
                .iter()
                .any(|f| f["value"] != json!("") || !f["error"].is_null());
            json!({"name": g, "fields": fields, "open": open})
        })
        .collect();
    let inherit = match name {
        "subscribers" => "its customer's, else its domain's value applies",
        "customers" => "the domain's value applies to its subscribers",
        _ => "the platform's default applies",
    };
    page(
        "prefs.html",
        json!({"user": user_ctx(u), "csrf": u.csrf,
               "title": format!("Preferences of {} {id}", singular(name)),
               "action": format!("/ui/{name}/{id}/preferences"), "back": format!("/ui/{name}/{id}"),
               "groups": groups, "set": set, "inherit": inherit, "flash": flash, "error": error,
               "count": errors.len()}),
    )
}

pub(super) async fn prefs_form(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let id: i64 = id.parse().unwrap_or(0);
    let cur = match Current::read(&app, &u, peer, &name, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let values = cur.shown(&cur.set);
    prefs_page(
        &u,
        &name,
        id,
        &cur.defs,
        &values,
        &values,
        &HashMap::new(),
        None,
        None,
    )
}

pub(super) async fn save_prefs(
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
    let id: i64 = id.parse().unwrap_or(0);
    let cur = match Current::read(&app, &u, peer, &name, id).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (coll, defs, set) = (cur.coll, &cur.defs, &cur.set);
    // Only what the user changed against what the page showed (its `_orig_` copy): another
    // user's change to another preference is not undone.
    let mut values = HashMap::new();
    let mut orig = cur.shown(set);
    for (p, was) in orig.iter_mut() {
        if let Some(w) = form.get(&format!("_orig_{p}")) {
            *was = w.clone();
        }
    }
    let mut errors = HashMap::new();
    let mut ops = Vec::new();
    for (pref, d) in defs {
        let Some(raw) = form.get(&format!("p_{pref}")) else {
            continue;
        };
        values.insert(pref.clone(), raw.clone());
        if typed(raw) == typed(&orig[pref]) {
            continue;
        }
        match posted_pref(d, raw) {
            Err(m) => {
                errors.insert(pref.clone(), m);
            }
            Ok(None) if !set[pref].is_null() => {
                ops.push(json!({"op": "remove", "path": format!("/{pref}")}));
            }
            Ok(None) => {}
            Ok(Some(v)) => {
                let op = if set[pref].is_null() {
                    "add"
                } else {
                    "replace"
                };
                ops.push(json!({"op": op, "path": format!("/{pref}"), "value": v}));
            }
        }
    }
    if !errors.is_empty() {
        return prefs_page(&u, &name, id, defs, &values, &orig, &errors, None, None);
    }
    if ops.is_empty() {
        return prefs_page(
            &u,
            &name,
            id,
            defs,
            &values,
            &orig,
            &errors,
            Some("Nothing changed.".into()),
            None,
        );
    }
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::PATCH,
        &format!("/api/{coll}/{id}"),
        Some(("application/json-patch+json", Value::Array(ops).to_string())),
    )
    .await;
    if s.is_success() {
        let values = cur.shown(&v);
        return prefs_page(
            &u,
            &name,
            id,
            defs,
            &values,
            &values,
            &errors,
            Some("Preferences saved.".into()),
            None,
        );
    }
    // The API's problems at their preferences; any other at the top.
    let mut top = None;
    for e in v["errors"].as_array().into_iter().flatten() {
        let field = text_of(&e["field"]);
        let base = field.split('[').next().unwrap_or("");
        if defs.iter().any(|(p, _)| p == base) {
            errors.insert(field, text_of(&e["message"]));
        } else {
            top = Some(format!("{field}: {}", text_of(&e["message"])));
        }
    }
    if errors.is_empty() && top.is_none() {
        top = Some(text_of(&v["message"]));
    }
    prefs_page(&u, &name, id, defs, &values, &orig, &errors, None, top)
}
