//! The dashboard, the search box, the journal and the list of collections.

use super::*;

// ---------------------------------------------------------------------------------------
// Dashboard, search, journal

pub(super) async fn dashboard(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let a = &u.actor;
    let mut counts = Vec::new();
    for (name, label) in [
        ("customers", "Customers"),
        ("subscribers", "Subscribers"),
        ("pbxdevices", "Devices"),
        ("hooks", "Hooks"),
        ("domains", "Domains"),
    ] {
        let (s, v) = api(
            &app,
            a,
            peer,
            Method::GET,
            &format!("/api/{name}/?rows=1"),
            None,
        )
        .await;
        if s.is_success() {
            counts.push(json!({"name": name, "label": label, "count": v["total_count"]}));
        }
    }
    let sipservers = if a.is_admin() {
        let (_, v) = api(
            &app,
            a,
            peer,
            Method::GET,
            "/api/sipservers/?rows=100",
            None,
        )
        .await;
        Some(items(&v, "sipservers"))
    } else {
        None
    };
    let trunks = if a.is_admin() {
        let (_, v) = api(
            &app,
            a,
            peer,
            Method::GET,
            "/api/peeringservers/?rows=200",
            None,
        )
        .await;
        items(&v, "peeringservers")
    } else {
        Vec::new()
    };
    let (_, hv) = api(&app, a, peer, Method::GET, "/api/hooks/?rows=200", None).await;
    let hooks = items(&hv, "hooks");
    let trouble = trouble(sipservers.as_deref().unwrap_or_default(), &trunks, &hooks);
    let hook_names: HashMap<String, String> = hooks
        .iter()
        .map(|h| (text_of(&h["id"]), text_of(&h["name"])))
        .collect();
    let (_, hf) = api(
        &app,
        a,
        peer,
        Method::GET,
        "/api/hookexecutions/?status=failure&rows=5&order_by=id&order_by_direction=desc",
        None,
    )
    .await;
    let (_, df) = api(
        &app,
        a,
        peer,
        Method::GET,
        "/api/pbxdevices/?rows=5&fetched=true&order_by=last_fetch&order_by_direction=desc",
        None,
    )
    .await;
    let fetches: Vec<Value> = items(&df, "pbxdevices")
        .into_iter()
        .filter(|d| !d["last_fetch_timestamp"].is_null())
        .collect();
    let (_, ch) = api(
        &app,
        a,
        peer,
        Method::GET,
        "/api/journals/?rows=10&order_by_direction=desc",
        None,
    )
    .await;
    let failures: Vec<Value> = items(&hf, "hookexecutions")
        .into_iter()
        .map(|mut e| {
            let id = text_of(&e["hook_id"]);
            e["hook"] = json!(hook_names.get(&id).cloned().unwrap_or(id));
            e
        })
        .collect();
    let changes: Vec<Value> = items(&ch, "journals")
        .iter()
        .map(
            |j| json!({"id": j["id"], "timestamp": j["timestamp"], "sentence": change_sentence(j)}),
        )
        .collect();
    page(
        "dashboard.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "counts": counts, "sipservers": sipservers,
               "trouble": trouble, "trunks": trunks.len(), "hooks": hooks.len(),
               "hook_failures": failures, "fetches": fetches, "changes": changes}),
    )
}

pub(super) async fn search(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let q: String = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .find(|(k, _)| k == "q")
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_default();
    let mut groups = Vec::new();
    if !q.is_empty() {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let digits: String = q.chars().filter(|c| c.is_ascii_digit()).collect();
        let mac: String = q
            .chars()
            .filter(|c| c.is_ascii_hexdigit())
            .collect::<String>()
            .to_ascii_lowercase();
        let wild = format!("*{q}*");
        let mut probes: Vec<(&str, &str, String)> = vec![
            (
                "subscribers",
                "Subscribers by username",
                format!("username={}", enc(&wild)),
            ),
            (
                "subscribers",
                "Subscribers by external id",
                format!("external_id={}", enc(&wild)),
            ),
            (
                "customers",
                "Customers by external id",
                format!("external_id={}", enc(&wild)),
            ),
            (
                "customercontacts",
                "Contacts by last name",
                format!("lastname={}", enc(&wild)),
            ),
            (
                "customercontacts",
                "Contacts by company",
                format!("company={}", enc(&wild)),
            ),
            (
                "pbxdevices",
                "Devices by station name",
                format!("station_name={}", enc(&wild)),
            ),
        ];
        if digits.len() >= 3 && digits.len() + 3 >= q.len() {
            probes.insert(
                0,
                (
                    "subscribers",
                    "Subscribers by number",
                    format!("primary_number={}", enc(&format!("*{digits}*"))),
                ),
            );
            probes.insert(
                1,
                (
                    "subscribers",
                    "Subscribers by alias number",
                    format!("alias={}", enc(&format!("*{digits}*"))),
                ),
            );
        }
        if mac.len() >= 4 && mac.len() + 5 >= q.len() {
            probes.insert(
                0,
                (
                    "pbxdevices",
                    "Devices by MAC",
                    format!("identifier={}", enc(&format!("*{mac}*"))),
                ),
            );
        }
        for (name, title, query) in probes {
            let (s, v) = api(
                &app,
                &u.actor,
                peer,
                Method::GET,
                &format!("/api/{name}/?rows=20&{query}"),
                None,
            )
            .await;
            if !s.is_success() {
                continue;
            }
            let rows: Vec<Value> = items(&v, name)
                .iter()
                .map(|o| json!({"id": o["id"], "label": label_of(name, o)}))
                .collect();
            if !rows.is_empty() {
                groups.push(json!({"name": name, "title": title, "rows": rows}));
            }
        }
    }
    page(
        "search.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "q": q, "groups": groups}),
    )
}

pub(super) fn label_of(name: &str, o: &Value) -> String {
    let t = |k: &str| text_of(&o[k]);
    match name {
        "subscribers" => {
            let n = &o["primary_number"];
            let num = if n.is_object() {
                format!(" +{}{}{}", t_of(n, "cc"), t_of(n, "ac"), t_of(n, "sn"))
            } else {
                String::new()
            };
            format!("{}@{}{num}", t("username"), t("domain"))
        }
        "customers" => format!("customer {} {}", t("id"), t("external_id")),
        "customercontacts" => format!("{} {} {}", t("firstname"), t("lastname"), t("company")),
        "pbxdevices" => format!("{} {}", t("identifier"), t("station_name")),
        _ => t("id"),
    }
}

pub(super) fn t_of(v: &Value, k: &str) -> String {
    text_of(&v[k])
}

pub(super) async fn journal(
    State(app): State<UiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let given: HashMap<String, String> = form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    let page_no: i64 = given
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let base_q = {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &given {
            if k != "page" && !v.is_empty() {
                s.append_pair(k, v);
            }
        }
        s.finish()
    };
    let uri = format!("/api/journals/?rows=50&page={page_no}&order_by_direction=desc&{base_q}");
    let (s, v) = api(&app, &u.actor, peer, Method::GET, &uri, None).await;
    let total = v["total_count"].as_i64().unwrap_or(0);
    let link = |p: i64| format!("/ui/journal?page={p}&{base_q}");
    let filters: Vec<Value> = crate::http::api::journals::FILTERS
        .iter()
        .map(|(f, h)| json!({"name": f, "help": h, "value": given.get(*f).cloned().unwrap_or_default()}))
        .collect();
    page(
        "journal.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "filters": filters, "rows": items(&v, "journals"), "total": total,
               "error": (!s.is_success()).then(|| text_of(&v["message"])),
               "prev": (page_no > 1).then(|| link(page_no - 1)), "next": (page_no * 50 < total).then(|| link(page_no + 1))}),
    )
}

pub(super) async fn journal_entry(
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
        &format!("/api/journals/{id}"),
        None,
    )
    .await;
    if !s.is_success() {
        let ctx = json!({"user": user_ctx(&u), "csrf": u.csrf, "title": format!("Change {id}"), "error": text_of(&v["message"])});
        let mut r = page("page.html", ctx);
        *r.status_mut() = s;
        return r;
    }
    // Before and after side by side, field by field.
    let empty = Map::new();
    let before = v["before"].as_object().unwrap_or(&empty);
    let after = v["after"].as_object().unwrap_or(&empty);
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    let show = |x: Option<&Value>| match x {
        None => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(o) => serde_json::to_string(o).unwrap_or_default(),
    };
    let diff: Vec<Value> = fields
        .into_iter()
        .filter(|f| *f != "_links")
        .map(|f| json!({"field": f, "before": show(before.get(f)), "after": show(after.get(f)), "changed": before.get(f) != after.get(f)}))
        .collect();
    page(
        "change.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "e": v, "diff": diff}),
    )
}

pub(super) async fn collections(State(app): State<UiState>, headers: HeaderMap) -> Response {
    let u = match user(&app, &headers).await {
        Ok(u) => u,
        Err(r) => return r,
    };
    let links: Vec<Value> = crate::http::openapi::docs()
        .iter()
        .map(|d| json!({"href": format!("/ui/{}/", d.name), "label": d.name, "hint": d.summary}))
        .collect();
    page(
        "page.html",
        json!({"user": user_ctx(&u), "csrf": u.csrf, "title": "All collections", "links": links}),
    )
}
