//! Any collection's list and item pages, described by the API's own OpenAPI schemas.

use super::*;

// ---------------------------------------------------------------------------------------
// Any collection: list, item, forms

pub(super) struct Coll {
    pub(super) name: &'static str,
    pub(super) summary: &'static str,
    pub(super) filters: &'static [(&'static str, &'static str)],
    pub(super) create: bool,
    pub(super) update: bool,
    pub(super) delete: bool,
    pub(super) bulk: bool,
    /// The input's fields in the form's order: (name, kind text|integer|number|boolean|json,
    /// or e164|e164list for numbers).
    pub(super) fields: Vec<(String, &'static str)>,
    /// Fields the API requires on creation.
    pub(super) required: Vec<String>,
}

/// A collection as the UI knows it; described once from the API's documentation (its
/// schemas are serialised to read the input's fields, too much to do per page).
pub(super) fn coll(name: &str) -> Option<&'static Coll> {
    static ALL: std::sync::OnceLock<Vec<Coll>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        crate::http::openapi::docs()
            .into_iter()
            .map(describe)
            .collect()
    })
    .iter()
    .find(|c| c.name == name)
}

pub(super) fn describe(d: crate::http::openapi::ResourceDoc) -> Coll {
    let input = d
        .schemas
        .iter()
        .find(|(n, _)| *n == d.input)
        .map(|(_, s)| s.clone())
        .unwrap_or(Value::Null);
    let hidden = form_hidden(d.name);
    let mut fields: Vec<(String, &'static str)> = input["properties"]
        .as_object()
        .map(|p| {
            p.iter()
                .filter(|(k, _)| !hidden.contains(&k.as_str()))
                .map(|(k, s)| {
                    (
                        k.clone(),
                        kind_override(d.name, k).unwrap_or_else(|| kind_of(s)),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let order = form_order(d.name);
    fields.sort_by_key(|(k, _)| order.iter().position(|f| f == k).unwrap_or(order.len()));
    let mut required: Vec<String> = input["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(Value::as_str)
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    required.extend(also_required(d.name).iter().map(|f| f.to_string()));
    if fields.is_empty() {
        // A free-form object (preferences): edited as one JSON document, saved with PUT.
        fields.push((DOCUMENT.to_string(), "json"));
    }
    Coll {
        name: d.name,
        summary: d.summary,
        filters: d.filters,
        create: d.create,
        update: d.update,
        delete: d.delete,
        bulk: d.bulk,
        fields,
        required,
    }
}

/// The one field of a collection whose input is a free-form object.
pub(super) const DOCUMENT: &str = "document";

pub(super) fn kind_of(s: &Value) -> &'static str {
    let types: Vec<&str> = match &s["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let t: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
    match t.as_slice() {
        ["string"] => "text",
        ["integer"] => "integer",
        ["number"] => "number",
        ["boolean"] => "boolean",
        _ if s.get("$ref").is_some() || s.get("oneOf").is_some() || s.get("allOf").is_some() => {
            "json"
        }
        _ => "json",
    }
}

pub(super) async fn list(
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
    let Some(c) = coll(&name) else {
        return (StatusCode::NOT_FOUND, "no such collection").into_response();
    };
    let q = q.unwrap_or_default();
    // The page size is the UI's (each row may cost lookups).
    let given: HashMap<String, String> = form_urlencoded::parse(q.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != "rows")
        .collect();
    let page_no: i64 = given
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let base_q = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &given {
            if k != "page" && !v.is_empty() {
                query.append_pair(k, v);
            }
        }
        query.finish()
    };
    let (s, v) = api(
        &app,
        &u.actor,
        peer,
        Method::GET,
        &format!(
            "/api/{name}/?rows={PAGE}&page={page_no}&{}",
            api_filters(c.name, &given)
        ),
        None,
    )
    .await;
    let list = items(&v, c.name);
    let (columns, rows) = match columns(c.name) {
        Some(cols) => {
            let related = related(&app, &u.actor, peer, c.name, &list).await;
            // Call records come newest first unless sorted otherwise (see api_filters).
            let newest = (String::from("start_time"), String::from("desc"));
            let (by, dir) = match given.get("order_by") {
                None if c.name == "cdrs" => (Some(&newest.0), Some(&newest.1)),
                by => (by, given.get("order_by_direction")),
            };
            let others = {
                let mut query = form_urlencoded::Serializer::new(String::new());
                for (k, v) in &given {
                    if !matches!(k.as_str(), "page" | "order_by" | "order_by_direction")
                        && !v.is_empty()
                    {
                        query.append_pair(k, v);
                    }
                }
                query.finish()
            };
            let heads: Vec<Value> = cols
                .iter()
                .map(|col| {
                    let sorted =
                        col.sort
                            .filter(|k| by.map(String::as_str) == Some(*k))
                            .map(|_| {
                                if dir.map(String::as_str) == Some("desc") {
                                    "desc"
                                } else {
                                    "asc"
                                }
                            });
                    let href = col.sort.map(|k| {
                        let next = if sorted == Some("asc") { "desc" } else { "asc" };
                        format!("/ui/{name}/?order_by={k}&order_by_direction={next}&{others}")
                    });
                    json!({"title": col.title, "href": href, "sorted": sorted, "opt": !col.keep})
                })
                .collect();
            let rows: Vec<Value> = list
                .iter()
                .map(|o| json!({"id": o["id"], "cells": cols.iter().map(|col| (col.cell)(o, &related)).collect::<Vec<_>>()}))
                .collect();
            (heads, rows)
        }
        None => {
            let mut keys: Vec<String> = vec!["id".into()];
            if let Some(first) = list.first().and_then(Value::as_object) {
                for (k, v) in first {
                    if k != "id"
                        && k != "_links"
                        && !is_secret(k)
                        && (v.is_string() || v.is_number() || v.is_boolean())
                        && keys.len() < 7
                        && !k.ends_with("timestamp")
                    {
                        keys.push(k.clone());
                    }
                }
            }
            let heads = keys
                .iter()
                .enumerate()
                .map(|(i, k)| json!({"title": k, "href": null, "sorted": null, "opt": i >= 3}))
                .collect();
            let rows: Vec<Value> = list
                .iter()
                .map(|o| json!({"id": o["id"], "cells": keys.iter().map(|k| text_of(&o[k])).collect::<Vec<_>>()}))
                .collect();
            (heads, rows)
        }
    };
    let total = v["total_count"].as_i64().unwrap_or(list.len() as i64);
    let link = |p: i64| format!("/ui/{name}/?page={p}&{base_q}");
    page(
        "list.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "name": c.name, "title": heading(c.name), "summary": c.summary,
               "error": (!s.is_success()).then(|| text_of(&v["message"])),
               "filters": filter_form(&app, &u, peer, c, &given).await,
               "columns": columns, "rows": rows, "total": total, "can_create": c.create, "can_import": c.bulk,
               "can_export": c.bulk || c.name == "cdrs",
               "see_also": see_also(c.name).iter().map(|(l, coll)| json!({"label": l, "href": format!("/ui/{coll}/")})).collect::<Vec<_>>(),
               "query": base_q, "filtered": c.filters.iter().any(|(f, _)| given.get(*f).is_some_and(|v| !v.is_empty())),
               "prev": (page_no > 1).then(|| link(page_no - 1)), "next": (page_no * (PAGE as i64) < total).then(|| link(page_no + 1))}),
    )
}

/// A list page's query as the API takes it: a day given as "until" is that whole day, and
/// call records come newest first unless the page sorts them otherwise.
pub(super) fn api_filters(name: &str, given: &HashMap<String, String>) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in given {
        if v.is_empty() || k == "page" {
            continue;
        }
        let day = chrono::NaiveDate::parse_from_str(v.trim(), "%Y-%m-%d").is_ok();
        if k == "start_le" && day {
            query.append_pair(k, &format!("{}T23:59:59.999Z", v.trim()));
        } else {
            query.append_pair(k, v);
        }
    }
    if name == "cdrs" && !given.contains_key("order_by") {
        query.append_pair("order_by", "start_time");
        query.append_pair("order_by_direction", "desc");
    }
    query.finish()
}

/// The filter form of a list: the purpose-built one where there is one (labels, days,
/// choices, objects picked by name), else every filter the API has as a text box.
async fn filter_form(
    app: &UiState,
    u: &User,
    peer: SocketAddr,
    c: &Coll,
    given: &HashMap<String, String>,
) -> Vec<Value> {
    let value = |f: &str| given.get(f).cloned().unwrap_or_default();
    let Some(fields) = filter_fields(c.name) else {
        return c
            .filters
            .iter()
            .map(|(f, h)| json!({"name": f, "label": f, "help": h, "kind": "text", "value": value(f)}))
            .collect();
    };
    let mut out = Vec::new();
    for (f, label, kind) in fields {
        let (kind, options) = match kind {
            FilterKind::Text => ("text", None),
            FilterKind::Day => ("date", None),
            FilterKind::Choice(list) => (
                "select",
                Some(
                    list.iter()
                        .map(|(v, l)| (v.to_string(), l.to_string()))
                        .collect::<Vec<_>>(),
                ),
            ),
            FilterKind::Pick(coll) => match picks(app, &u.actor, peer, coll).await {
                Some(list) => ("select", Some(list)),
                None => ("text", None),
            },
        };
        let v = value(f);
        out.push(json!({"name": f, "label": label, "help": "", "kind": kind, "value": v,
            "options": options.map(|o| o.into_iter().map(|(k, l)| json!({"value": k, "label": l, "selected": k == v})).collect::<Vec<_>>())}));
    }
    out
}

pub(super) async fn item(
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
    item_page(&app, &u, peer, c, id, None, None).await
}

pub(super) async fn item_page(
    app: &UiState,
    u: &User,
    peer: SocketAddr,
    c: &Coll,
    id: i64,
    error: Option<String>,
    flash: Option<String>,
) -> Response {
    let name = c.name;
    let (s, v) = api(
        app,
        &u.actor,
        peer,
        Method::GET,
        &format!("/api/{name}/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        return refused_page(u, format!("{name} {id}"), s, &v);
    }
    let rel = related(app, &u.actor, peer, name, std::slice::from_ref(&v)).await;
    let mut fields = Vec::new();
    if let Some(o) = v.as_object() {
        let first = first_fields(name);
        let mut keys: Vec<&String> = o.keys().filter(|k| *k != "_links").collect();
        keys.sort_by_key(|k| first.iter().position(|f| f == k).unwrap_or(first.len()));
        for k in keys {
            let x = &o[k];
            let link = match (link_target(k), x.as_i64()) {
                (Some(to), Some(n)) => Some(format!("/ui/{to}/{n}")),
                _ => None,
            };
            if let (Some(_), Some(n)) = (&link, x.as_i64()) {
                if let Some(named) = rel.name_of(k, n) {
                    fields.push(
                        json!({"name": label(k), "value": named, "link": link, "block": false}),
                    );
                    continue;
                }
            }
            // Secrets are strings; a flag named after one (token_traded) is not one.
            // Masked; revealed on request where the API gave it to this user.
            if is_secret(k) && x.is_string() {
                fields.push(
                    json!({"name": label(k), "value": "********", "secret": x, "link": null, "block": false}),
                );
                continue;
            }
            if name == "cdrs" && k == "status" {
                fields.push(json!({"name": "Outcome", "value": call_outcome(&v), "link": null, "block": false}));
                continue;
            }
            // Only an answered call has a length.
            if name == "cdrs" && k == "duration" && v["answer_time"].is_null() {
                continue;
            }
            if name == "peeringservers" && k == "registration" {
                fields.push(json!({"name": "Registration", "value": registration_text(&v), "link": null, "block": false}));
                continue;
            }
            if name == "pbxdevices" && k == "lines" {
                let text = rel.lines_text(x);
                fields.push(json!({"name": label(k), "value": text, "link": null, "block": false}));
                continue;
            }
            if let Some(text) = readable(name, k, x) {
                fields.push(json!({"name": label(k), "value": text, "link": link, "block": false}));
                if name == "subscribers" && k == "lock" {
                    fields.push(json!({"name": "Registered", "value": rel.registered(id), "link": null, "block": false}));
                }
                continue;
            }
            let block = x.is_object() || x.is_array();
            let value = if block {
                serde_json::to_string_pretty(x).unwrap_or_default()
            } else {
                text_of(x)
            };
            fields.push(json!({"name": label(k), "value": value, "link": link, "block": block}));
        }
    }
    let mut extra = Vec::new();
    let mut posts = buttons(name, id, &v);
    let mut sections = Vec::new();
    match name {
        "pbxdevices" => {
            extra.push(json!({"href": format!("/ui/pbxdevices/{id}/preview"), "label": "Preview configuration"}));
            posts.push(json!({"href": format!("/ui/pbxdevices/{id}/resync"), "label": "Resync"}));
            let (_, f) = api(
                app,
                &u.actor,
                peer,
                Method::GET,
                &format!("/api/pbxdevices/{id}/fetches"),
                None,
            )
            .await;
            let rows: Vec<Vec<String>> = f["fetches"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .iter()
                .take(20)
                .map(|r| {
                    vec![
                        text_of(&r["ts"]),
                        text_of(&r["address"]),
                        text_of(&r["file"]),
                        text_of(&r["status"]),
                        text_of(&r["user_agent"]),
                    ]
                })
                .collect();
            sections.push(json!({"title": "Last fetches", "columns": ["when", "from", "file", "status", "user agent"], "rows": rows}));
        }
        "hooks" => {
            extra.push(
                json!({"href": format!("/ui/hookexecutions/?hook_id={id}"), "label": "Executions"}),
            );
        }
        "hookexecutions" => {
            posts.push(
                json!({"href": format!("/ui/hookexecutions/{id}/redeliver"), "label": "Redeliver"}),
            );
        }
        "sipservers" => {
            posts.push(json!({"href": format!("/ui/sipservers/{id}/check"), "label": "Check"}));
            posts.push(json!({"href": format!("/ui/sipservers/{id}/repair"), "label": "Repair"}));
        }
        "pbxtenants" => {
            for (coll, label) in [
                ("pbxextensions", "Add extension"),
                ("pbxringgroups", "Add ring group"),
                ("pbxinboundroutes", "Add inbound route"),
                ("pbxdaytimers", "Add open hours"),
            ] {
                extra.push(
                    json!({"href": format!("/ui/{coll}/new?tenant_id={id}"), "label": label}),
                );
            }
            sections.extend(tenant_sections(app, u, peer, id).await);
        }
        "customers" => {
            if v["status"] != json!("terminated") {
                extra.push(json!({"href": format!("/ui/subscribers/new?customer_id={id}"), "label": "Add subscriber"}));
            }
            extra.push(
                json!({"href": format!("/ui/customers/{id}/preferences"), "label": "Preferences"}),
            );
            let (_, subs) = api(
                app,
                &u.actor,
                peer,
                Method::GET,
                &format!("/api/subscribers/?customer_id={id}&rows=50&order_by=username"),
                None,
            )
            .await;
            let list = items(&subs, "subscribers");
            let cols = columns("subscribers").unwrap_or_default();
            let none = Related::default();
            let rows: Vec<Vec<Value>> = list
                .iter()
                .map(|o| {
                    let mut cells: Vec<Value> = cols
                        .iter()
                        .filter(|col| matches!(col.title, "Subscriber" | "Number" | "Name" | "Status"))
                        .map(|col| json!((col.cell)(o, &none)))
                        .collect();
                    cells[0] = json!({"text": cells[0], "href": format!("/ui/subscribers/{}", text_of(&o["id"]))});
                    cells
                })
                .collect();
            let total = subs["total_count"].as_i64().unwrap_or(0);
            let title = section_title("Subscribers", list.len(), total);
            sections.push(json!({"title": title, "columns": ["Subscriber", "Number", "Name", "Status"], "rows": rows}));
        }
        "domains" => {
            extra.push(
                json!({"href": format!("/ui/domains/{id}/preferences"), "label": "Preferences"}),
            );
        }
        "peeringgroups" => {
            extra.push(json!({"href": format!("/ui/peeringservers/new?group_id={id}"), "label": "Add trunk"}));
            extra.push(json!({"href": format!("/ui/peeringrules/new?group_id={id}"), "label": "Add outbound route"}));
            for (coll, title) in [
                ("peeringservers", "Trunks"),
                ("peeringrules", "Outbound routes"),
            ] {
                sections.push(listed(app, u, peer, coll, title, &format!("group_id={id}")).await);
            }
        }
        "subscribers" => {
            extra.push(
                json!({"href": format!("/ui/subscribers/{id}/forwards"), "label": "Call forwards"}),
            );
            extra.push(
                json!({"href": format!("/ui/subscribers/{id}/preferences"), "label": "Preferences"}),
            );
            if v["status"] != json!("terminated") {
                extra.push(json!({"href": format!("/ui/pbxdevices/new?customer_id={}&line_subscriber_id={id}", text_of(&v["customer_id"])), "label": "Add phone"}));
            }
        }
        _ => {}
    }
    page(
        "item.html",
        json!({"user": user_ctx(u), "csrf": u.csrf, "name": name, "id": id, "title": title(name, id, &v, &rel),
               "delete_label": delete_words(name).0, "sections_first": name == "pbxtenants",
               "fields": fields, "can_update": c.update, "can_delete": c.delete, "extra": extra, "posts": posts,
               "sections": sections, "error": error, "flash": flash}),
    )
}

/// The page for an object the API would not show (absent, another reseller's): its answer.
pub(super) fn refused_page(u: &User, title: String, s: StatusCode, v: &Value) -> Response {
    let mut r = page(
        "page.html",
        json!({"user": user_ctx(u), "csrf": u.csrf, "title": title, "error": text_of(&v["message"])}),
    );
    *r.status_mut() = s;
    r
}

/// The collection an `…_id` field points into.
pub(super) fn link_target(field: &str) -> Option<&'static str> {
    Some(match field {
        "reseller_id" => "resellers",
        "customer_id" => "customers",
        "subscriber_id" | "caller_subscriber_id" | "callee_subscriber_id" => "subscribers",
        "contact_id" => "customercontacts",
        "billing_profile_id" => "billingprofiles",
        "domain_id" => "domains",
        "home_server_id" | "sipserver_id" => "sipservers",
        "hook_id" => "hooks",
        "model_id" => "pbxdevicemodels",
        "profile_id" => "pbxdeviceprofiles",
        "device_id" => "pbxdevices",
        "group_id" => "peeringgroups",
        "tenant_id" => "pbxtenants",
        _ => return None,
    })
}

/// Form values for the input's fields, from a representation (edit) or a failed post.
/// Field names whose values are secrets: never shown, never pre-filled, never trimmed.
pub(super) fn is_secret(f: &str) -> bool {
    // `pass` also catches a trunk's peer_auth_pass.
    f.contains("pass") || f.contains("secret") || f.contains("token")
}

/// A value as a form shows it.
pub(super) fn shown(v: &Value, kind: &str) -> String {
    match (v, kind) {
        (Value::Null, _) => String::new(),
        (x, "e164" | "e164list") => numbers_shown(x, kind),
        (x, "lines") => lines_shown(x),
        (x, "json") => serde_json::to_string_pretty(x).unwrap_or_default(),
        (Value::String(s), _) => s.clone(),
        (x, _) => x.to_string(),
    }
}

/// A tenant's page below its fields: its extensions, ring groups with their members, inbound
/// routes, and its open hours as a week.
/// A section of an item page: the objects of `coll` that `filter` selects, with the list
/// page's columns (the first linking to each), at most 50.
async fn listed(
    app: &UiState,
    u: &User,
    peer: SocketAddr,
    coll: &str,
    title: &str,
    filter: &str,
) -> Value {
    const MOST: i64 = 50;
    let uri = format!("/api/{coll}/?{filter}&rows={MOST}");
    let (_, v) = api(app, &u.actor, peer, Method::GET, &uri, None).await;
    let list = items(&v, coll);
    let cols = columns(coll).unwrap_or_default();
    let rel = related(app, &u.actor, peer, coll, &list).await;
    let rows: Vec<Vec<Value>> = list
        .iter()
        .map(|o| {
            let mut cells: Vec<Value> = cols.iter().map(|col| json!((col.cell)(o, &rel))).collect();
            if let Some(first) = cells.first_mut() {
                *first =
                    json!({"text": first, "href": format!("/ui/{coll}/{}", text_of(&o["id"]))});
            }
            cells
        })
        .collect();
    let total = v["total_count"].as_i64().unwrap_or(list.len() as i64);
    let title = section_title(title, list.len(), total);
    json!({"title": title, "columns": cols.iter().map(|c| c.title).collect::<Vec<_>>(), "rows": rows})
}

/// A section's heading with its count: "Extensions (200 of 420: see the list for all)"
/// where the page shows not all.
fn section_title(what: &str, shown: usize, total: i64) -> String {
    if total > shown as i64 {
        format!("{what} ({shown} of {total}: see the list for all)")
    } else {
        format!("{what} ({total})")
    }
}

async fn tenant_sections(app: &UiState, u: &User, peer: SocketAddr, id: i64) -> Vec<Value> {
    let list = |coll: &'static str| async move {
        let uri = format!("/api/{coll}/?tenant_id={id}&rows=200");
        let (_, v) = api(app, &u.actor, peer, Method::GET, &uri, None).await;
        let list = items(&v, coll);
        let total = v["total_count"].as_i64().unwrap_or(list.len() as i64);
        (list, total)
    };
    let (ext, ext_total) = list("pbxextensions").await;
    let (grp, grp_total) = list("pbxringgroups").await;
    let (rts, rts_total) = list("pbxinboundroutes").await;
    let link = |coll: &str, o: &Value, text: String| json!({"text": text, "href": format!("/ui/{coll}/{}", text_of(&o["id"]))});
    let t = |o: &Value, k: &str| text_of(&o[k]);
    let extensions: Vec<Vec<Value>> = ext
        .iter()
        .map(|o| {
            vec![
                link("pbxextensions", o, t(o, "extension")),
                json!(t(o, "type")),
                json!(t(o, "active")),
            ]
        })
        .collect();
    let groups: Vec<Vec<Value>> = grp
        .iter()
        .map(|o| {
            vec![
                link("pbxringgroups", o, t(o, "number")),
                json!(t(o, "grouptype")),
                json!(t(o, "out")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(", ")),
                json!(t(o, "outcome")),
            ]
        })
        .collect();
    let routes: Vec<Vec<Value>> = rts
        .iter()
        .map(|o| {
            vec![
                link("pbxinboundroutes", o, t(o, "number")),
                json!(t(o, "openroute")),
                json!(t(o, "closeroute")),
            ]
        })
        .collect();
    let (timers, _) = list("pbxdaytimers").await;
    let days = [
        ("mon", "Monday"),
        ("tue", "Tuesday"),
        ("wed", "Wednesday"),
        ("thu", "Thursday"),
        ("fri", "Friday"),
        ("sat", "Saturday"),
        ("sun", "Sunday"),
    ];
    let week: Vec<Vec<Value>> = if timers.is_empty() {
        Vec::new()
    } else {
        days.iter()
            .map(|(d, name)| {
                let mut spans: Vec<String> = timers
                    .iter()
                    .filter(|o| {
                        let w = t(o, "dayofweek").to_ascii_lowercase();
                        w == *d || w == "*" || w.is_empty()
                    })
                    .map(|o| {
                        let when = t(o, "timespan");
                        let extra: Vec<String> = ["month", "datemonth"]
                            .iter()
                            .map(|k| t(o, k))
                            .filter(|x| !x.is_empty() && x != "*")
                            .collect();
                        if extra.is_empty() {
                            when
                        } else {
                            format!("{when} ({})", extra.join(" "))
                        }
                    })
                    .collect();
                spans.sort();
                let open = if spans.is_empty() {
                    "closed".to_string()
                } else {
                    spans.join(", ")
                };
                vec![json!(name), json!(open)]
            })
            .collect()
    };
    vec![
        json!({"title": section_title("Extensions", extensions.len(), ext_total), "columns": ["Extension", "Type", "Active"], "rows": extensions}),
        json!({"title": section_title("Ring groups", groups.len(), grp_total), "columns": ["Number", "Type", "Members in order", "Nobody answers"], "rows": groups}),
        json!({"title": section_title("Inbound routes", routes.len(), rts_total), "columns": ["Number", "Open", "Closed"], "rows": routes}),
        json!({"title": if week.is_empty() { "Open hours: always open (none set)".to_string() } else { "Open hours".to_string() }, "columns": ["Day", "Open"], "rows": week}),
    ]
}
