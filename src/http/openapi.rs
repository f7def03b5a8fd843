//! The API described from the code: every resource's routes, filters and body schemas come
//! from the same [`Resource`] implementations that serve them (schemas derived with utoipa).
//! `/api/openapi.json` is OpenAPI 3.1; `/api/` renders the same description as a page for a
//! browser (no external assets) and as a HAL index of collections for programs.

use std::sync::OnceLock;

use axum::{
    http::{header, HeaderMap, StatusCode},
    response::{Html, IntoResponse, Response},
};
use serde_json::{json, Map, Value};
use utoipa::{PartialSchema, ToSchema};

use super::{hal, resource::Resource};

pub struct ResourceDoc {
    pub name: &'static str,
    pub summary: &'static str,
    pub filters: &'static [(&'static str, &'static str)],
    pub order_by: Vec<&'static str>,
    pub create: bool,
    pub update: bool,
    pub delete: bool,
    /// POST also takes CSV and JSON arrays (bulk import).
    pub bulk: bool,
    pub repr: String,
    pub input: String,
    pub schemas: Vec<(String, Value)>,
}

/// Every resource's description, in the documentation's order.
pub fn docs() -> Vec<ResourceDoc> {
    struct Docs(Vec<ResourceDoc>);
    impl crate::resources::Visit for Docs {
        fn visit<R: Resource>(&mut self) {
            self.0.push(describe::<R>());
        }
    }
    let mut d = Docs(Vec::new());
    crate::resources::each(&mut d);
    d.0
}

pub fn describe<R: Resource>() -> ResourceDoc {
    let mut nested = Vec::new();
    <R::Repr as ToSchema>::schemas(&mut nested);
    <R::Input as ToSchema>::schemas(&mut nested);
    let mut schemas: Vec<(String, Value)> = nested
        .into_iter()
        .map(|(n, s)| (n, serde_json::to_value(s).unwrap_or(Value::Null)))
        .collect();
    let repr = <R::Repr as ToSchema>::name().to_string();
    let input = <R::Input as ToSchema>::name().to_string();
    schemas.push((
        repr.clone(),
        serde_json::to_value(<R::Repr as PartialSchema>::schema()).unwrap_or(Value::Null),
    ));
    schemas.push((
        input.clone(),
        serde_json::to_value(<R::Input as PartialSchema>::schema()).unwrap_or(Value::Null),
    ));
    ResourceDoc {
        name: R::NAME,
        summary: R::SUMMARY,
        filters: R::FILTERS,
        order_by: R::ORDER_BY.iter().map(|(n, _)| *n).collect(),
        create: R::CAN_CREATE,
        update: R::CAN_UPDATE,
        delete: R::CAN_DELETE,
        bulk: R::BULK.is_some(),
        repr,
        input,
        schemas,
    }
}

fn sref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn err(desc: &str) -> Value {
    json!({ "description": desc, "content": { "application/json": { "schema": sref("Error") } } })
}

fn query_param(name: &str, desc: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": desc, "schema": schema })
}

fn build() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "required": ["code", "message"], "properties": {
            "code": { "type": "integer" }, "message": { "type": "string" },
            "field": { "type": "string", "description": "the offending field, on 422" } } }),
    );
    schemas.insert(
        "JsonPatch".into(),
        json!({ "type": "array", "description": "RFC 6902 JSON Patch", "items": { "type": "object",
            "required": ["op", "path"], "properties": { "op": { "enum": ["add", "remove", "replace", "move", "copy", "test"] },
            "path": { "type": "string" }, "from": { "type": "string" }, "value": {} } } }),
    );
    let id_param = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } });
    let if_match = json!({ "name": "If-Match", "in": "header", "required": false, "description": "ETag from a GET; 412 if the object changed since", "schema": { "type": "string" } });
    let prefer = json!({ "name": "Prefer", "in": "header", "required": false, "description": "return=representation to get the object back", "schema": { "type": "string", "enum": ["return=minimal", "return=representation"] } });
    let common_errors = |ops: &mut Map<String, Value>| {
        ops.insert(
            "401".into(),
            err("no or wrong credentials (WWW-Authenticate: Basic realm=\"api_admin_http\")"),
        );
        ops.insert("403".into(), err("role does not allow this"));
    };
    for d in docs() {
        for (n, s) in d.schemas {
            schemas.insert(n, s);
        }
        let tag = d.name;
        let mut params = vec![
            query_param(
                "page",
                "page number, from 1",
                json!({ "type": "integer", "minimum": 1, "default": 1 }),
            ),
            query_param(
                "rows",
                "rows per page (at most 1000)",
                json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 10 }),
            ),
            query_param("order_by", "sort field", json!({ "enum": d.order_by })),
            query_param(
                "order_by_direction",
                "asc or desc",
                json!({ "enum": ["asc", "desc"] }),
            ),
            query_param(
                "no_count",
                "skip total_count (faster on large collections)",
                json!({ "type": "boolean" }),
            ),
        ];
        params.extend(
            d.filters
                .iter()
                .map(|(n, desc)| query_param(n, desc, json!({ "type": "string" }))),
        );
        let mut coll = Map::new();
        let mut lr = Map::new();
        lr.insert("200".into(), json!({ "description": format!("a page of {}; _embedded[\"ngcp:{}\"] is an array, or the object itself when the page holds exactly one", d.name, d.name), "content": { "application/hal+json": { "schema": { "type": "object" } } } }));
        lr.insert(
            "400".into(),
            err("bad paging, ordering or filter parameter"),
        );
        common_errors(&mut lr);
        coll.insert("get".into(), json!({ "tags": [tag], "operationId": format!("list_{}", d.name), "summary": format!("List {}", d.name), "description": d.summary, "parameters": params, "responses": lr }));
        if d.create {
            let mut r = Map::new();
            r.insert("201".into(), json!({ "description": "created; Location: /api/<name>/<id>", "headers": { "Location": { "schema": { "type": "string" } }, "ETag": { "schema": { "type": "string" } } }, "content": { "application/hal+json": { "schema": sref(&d.repr) } } }));
            r.insert("400".into(), err("malformed JSON"));
            r.insert("413".into(), err("body over the size limit"));
            r.insert("415".into(), err("not application/json"));
            r.insert("422".into(), err("invalid field"));
            common_errors(&mut r);
            coll.insert("post".into(), json!({ "tags": [tag], "operationId": format!("create_{}", d.name), "summary": format!("Create in {}", d.name), "parameters": [prefer], "requestBody": { "required": true, "content": { "application/json": { "schema": sref(&d.input) } } }, "responses": r }));
        }
        paths.insert(format!("/api/{}/", d.name), Value::Object(coll));
        let mut item = Map::new();
        let mut gr = Map::new();
        gr.insert("200".into(), json!({ "description": "the object", "headers": { "ETag": { "schema": { "type": "string" } } }, "content": { "application/hal+json": { "schema": sref(&d.repr) } } }));
        gr.insert(
            "304".into(),
            json!({ "description": "If-None-Match matched" }),
        );
        gr.insert("404".into(), err("no such object (or another reseller's)"));
        common_errors(&mut gr);
        item.insert("get".into(), json!({ "tags": [tag], "operationId": format!("get_{}", d.name), "summary": format!("Get one of {}", d.name), "parameters": [id_param], "responses": gr }));
        if d.update {
            let mut r = Map::new();
            r.insert("200".into(), json!({ "description": "updated (Prefer: return=representation)", "content": { "application/hal+json": { "schema": sref(&d.repr) } } }));
            r.insert("204".into(), json!({ "description": "updated" }));
            r.insert("404".into(), err("no such object"));
            r.insert("412".into(), err("If-Match does not match"));
            r.insert("415".into(), err("wrong media type"));
            r.insert("422".into(), err("invalid field"));
            common_errors(&mut r);
            item.insert("put".into(), json!({ "tags": [tag], "operationId": format!("replace_{}", d.name), "summary": format!("Replace one of {}", d.name), "parameters": [id_param, if_match, prefer], "requestBody": { "required": true, "content": { "application/json": { "schema": sref(&d.input) } } }, "responses": r.clone() }));
            item.insert("patch".into(), json!({ "tags": [tag], "operationId": format!("patch_{}", d.name), "summary": format!("Patch one of {} (RFC 6902)", d.name), "parameters": [id_param, if_match, prefer], "requestBody": { "required": true, "content": { "application/json-patch+json": { "schema": sref("JsonPatch") } } }, "responses": r }));
        }
        if d.delete {
            let mut r = Map::new();
            r.insert("204".into(), json!({ "description": "deleted" }));
            r.insert("404".into(), err("no such object"));
            r.insert("412".into(), err("If-Match does not match"));
            r.insert("423".into(), err("still in use"));
            common_errors(&mut r);
            item.insert("delete".into(), json!({ "tags": [tag], "operationId": format!("delete_{}", d.name), "summary": format!("Delete one of {}", d.name), "parameters": [id_param, if_match], "responses": r }));
        }
        paths.insert(format!("/api/{}/{{id}}", d.name), Value::Object(item));
        paths.insert(
            format!("/api/{}/{{id}}/metadata", d.name),
            json!({ "get": { "tags": [tag], "operationId": format!("metadata_{}", d.name), "summary": format!("Values hooks' answers put on one of {} (response_map)", d.name), "parameters": [id_param], "responses": { "200": { "description": "metadata: key → value, and the hook each came from" }, "404": err("no such object") } } }),
        );
        paths.insert(
            format!("/api/{}/{{id}}/journal/", d.name),
            json!({ "get": { "tags": [tag], "operationId": format!("journal_{}", d.name), "summary": format!("Journal of one of {}", d.name), "parameters": [id_param], "responses": { "200": { "description": "change records, newest last" }, "404": err("no such object") } } }),
        );
    }
    let mut jp: Vec<Value> = super::api::journals::FILTERS
        .iter()
        .map(|(n, d)| query_param(n, d, json!({ "type": "string" })))
        .collect();
    jp.push(query_param(
        "page",
        "page number",
        json!({ "type": "integer" }),
    ));
    jp.push(query_param(
        "rows",
        "rows per page",
        json!({ "type": "integer" }),
    ));
    paths.insert("/api/journals/".into(), json!({ "get": { "tags": ["journals"], "operationId": "list_journals", "summary": "The journal: every change with actor, client address, before and after", "parameters": jp, "responses": { "200": { "description": "change records" } } } }));
    paths.insert("/api/journals/{id}".into(), json!({ "get": { "tags": ["journals"], "operationId": "get_journal", "summary": "One journal entry", "parameters": [id_param], "responses": { "200": { "description": "the change record" }, "404": err("no such entry (or another reseller's)") } } }));
    let obj = json!({ "type": "object" });
    paths.insert("/api/hooks/events".into(), json!({ "get": { "tags": ["hooks"], "operationId": "hook_events", "summary": "Every event a hook can take, with a sample payload", "responses": { "200": { "description": "the event catalog" } } } }));
    paths.insert("/api/hooks/{id}/executions".into(), json!({ "get": { "tags": ["hooks"], "operationId": "hook_executions_of", "summary": "One hook's execution log (the filters of /api/hookexecutions/ apply)", "parameters": [id_param], "responses": { "200": { "description": "executions" }, "404": err("no such hook") } } }));
    paths.insert("/api/hooks/{id}/rotate_secret".into(), json!({ "post": { "tags": ["hooks"], "operationId": "rotate_hook_secret", "summary": "A new signing secret, shown once; the old one also signs for overlap_seconds (default 86400, at most 604800)", "parameters": [id_param],
        "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "overlap_seconds": { "type": "integer" } } } } } },
        "responses": { "200": { "description": "{secret, previous_secret_valid_until}", "content": { "application/json": { "schema": obj } } }, "404": err("no such hook"), "422": err("bad overlap_seconds") } } }));
    paths.insert("/api/hooks/{id}/redeliver".into(), json!({ "post": { "tags": ["hooks"], "operationId": "redeliver_hook_range", "summary": "Send a hook's deliveries of a time range again: status failed (default) or all", "parameters": [id_param],
        "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "since": { "type": "string" }, "until": { "type": "string" }, "status": { "type": "string", "enum": ["failed", "all"] } } } } } },
        "responses": { "202": { "description": "{requeued}" }, "404": err("no such hook"), "422": err("bad time or status") } } }));
    paths.insert("/api/hookexecutions/{id}/redeliver".into(), json!({ "post": { "tags": ["hookexecutions"], "operationId": "redeliver_execution", "summary": "Send the delivery of one execution again, with the same webhook-id", "parameters": [id_param],
        "responses": { "202": { "description": "{delivery_id, webhook_id}" }, "404": err("no such execution"), "409": err("already waiting to go out"), "422": err("a before-hook execution") } } }));
    paths.insert("/api/openapi.json".into(), json!({ "get": { "tags": ["meta"], "operationId": "openapi", "summary": "This description", "security": [], "responses": { "200": { "description": "OpenAPI 3.1" } } } }));
    json!({
        "openapi": "3.1.0",
        "info": { "title": "voxprov API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Provisioning API compatible with Sipwise NGCP's REST API: HAL+JSON, Location headers, Prefer, JSON Patch, ETag/If-Match." },
        "servers": [{ "url": "/" }],
        "security": [{ "basic": [] }, { "bearer": [] }, { "apikey": [] }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "basic": { "type": "http", "scheme": "basic" },
                "bearer": { "type": "http", "scheme": "bearer", "description": "an API key" },
                "apikey": { "type": "apiKey", "in": "header", "name": "X-API-Key" }
            }
        }
    })
}

pub fn spec_value() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(build)
}

pub async fn spec() -> Response {
    let mut r = axum::Json(spec_value().clone()).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// `/api/`: readable documentation for a browser, a HAL index of collections otherwise.
pub async fn index(headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/html") {
        return Html(docs_page()).into_response();
    }
    let mut links = Map::new();
    links.insert("self".into(), json!({ "href": "/api/" }));
    links.insert("curies".into(), hal::curies());
    links.insert("describedby".into(), json!({ "href": "/api/openapi.json" }));
    for d in docs() {
        links.insert(
            format!("ngcp:{}", d.name),
            json!({ "href": format!("/api/{}/", d.name), "title": d.summary }),
        );
    }
    links.insert("ngcp:journals".into(), json!({ "href": "/api/journals/" }));
    hal::respond(StatusCode::OK, &headers, &json!({ "_links": links }))
}

/// `OPTIONS /api/`: the methods, and one `Link` per collection (NGCP's discovery).
pub async fn root_options() -> Response {
    let mut resp = (
        StatusCode::OK,
        axum::Json(json!({ "methods": ["GET", "HEAD", "OPTIONS"] })),
    )
        .into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ALLOW,
        header::HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    let mut names: Vec<&str> = docs().iter().map(|d| d.name).collect();
    names.push("journals");
    for name in names {
        if let Ok(v) = header::HeaderValue::from_str(&format!(
            "</api/{name}/>; rel=\"collection http://purl.org/sipwise/ngcp-api/#rel-{name}\""
        )) {
            h.append(header::LINK, v);
        }
    }
    resp
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn docs_page() -> String {
    let spec = spec_value();
    let mut toc = String::new();
    let mut body = String::new();
    let schemas = &spec["components"]["schemas"];
    if let Some(paths) = spec["paths"].as_object() {
        for (path, ops) in paths {
            let Some(ops) = ops.as_object() else { continue };
            for (method, op) in ops {
                let id = op["operationId"].as_str().unwrap_or("");
                toc.push_str(&format!(
                    "<li><a href=\"#{}\"><code>{} {}</code></a> {}</li>",
                    esc(id),
                    method.to_uppercase(),
                    esc(path),
                    esc(op["summary"].as_str().unwrap_or(""))
                ));
                body.push_str(&format!(
                    "<section id=\"{}\"><h3><code>{} {}</code></h3><p>{}</p>",
                    esc(id),
                    method.to_uppercase(),
                    esc(path),
                    esc(op["description"]
                        .as_str()
                        .or(op["summary"].as_str())
                        .unwrap_or(""))
                ));
                if let Some(params) = op["parameters"].as_array() {
                    body.push_str("<table><tr><th>parameter</th><th>in</th><th>meaning</th></tr>");
                    for p in params {
                        body.push_str(&format!(
                            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                            esc(p["name"].as_str().unwrap_or("")),
                            esc(p["in"].as_str().unwrap_or("")),
                            esc(p["description"].as_str().unwrap_or(""))
                        ));
                    }
                    body.push_str("</table>");
                }
                if let Some(r) = op["requestBody"]["content"]
                    .as_object()
                    .and_then(|c| c.values().next())
                {
                    let name = r["schema"]["$ref"]
                        .as_str()
                        .unwrap_or("")
                        .rsplit('/')
                        .next()
                        .unwrap_or("");
                    body.push_str(&format!(
                        "<p>Body: <a href=\"#schema-{0}\"><code>{0}</code></a></p>",
                        esc(name)
                    ));
                }
                if let Some(resps) = op["responses"].as_object() {
                    let list: Vec<String> = resps
                        .iter()
                        .map(|(code, r)| {
                            format!(
                                "<code>{}</code> {}",
                                esc(code),
                                esc(r["description"].as_str().unwrap_or(""))
                            )
                        })
                        .collect();
                    body.push_str(&format!("<p>Responses: {}</p>", list.join("; ")));
                }
                body.push_str("</section>");
            }
        }
    }
    if let Some(s) = schemas.as_object() {
        body.push_str("<h2>Schemas</h2>");
        for (name, schema) in s {
            body.push_str(&format!("<section id=\"schema-{0}\"><h3>{0}</h3><table><tr><th>field</th><th>type</th><th>meaning</th></tr>", esc(name)));
            if let Some(props) = schema["properties"].as_object() {
                let required: Vec<&str> = schema["required"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
                    .unwrap_or_default();
                for (f, p) in props {
                    let ty = p["type"].to_string().replace('"', "");
                    let ty = if ty == "null" {
                        p["$ref"]
                            .as_str()
                            .or(p["oneOf"].as_array().and(Some("object")))
                            .unwrap_or("")
                            .rsplit('/')
                            .next()
                            .unwrap_or("")
                            .to_string()
                    } else {
                        ty
                    };
                    body.push_str(&format!(
                        "<tr><td><code>{}</code>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(f),
                        if required.contains(&f.as_str()) {
                            " *"
                        } else {
                            ""
                        },
                        esc(&ty),
                        esc(p["description"].as_str().unwrap_or(""))
                    ));
                }
            }
            body.push_str("</table></section>");
        }
    }
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>voxprov API</title><style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:auto;padding:1rem;line-height:1.4}}\
         code{{background:#f3f3f3;padding:0 .2em}}table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}}\
         section{{border-top:1px solid #ddd;margin-top:1em}}</style></head><body><h1>voxprov API</h1>\
         <p>Sipwise NGCP-compatible provisioning API. Authenticate with HTTP Basic (realm <code>api_admin_http</code>) or an API key \
         (<code>Authorization: Bearer …</code> or <code>X-API-Key</code>). Send <code>application/json</code>; PATCH takes \
         <code>application/json-patch+json</code>. Errors are <code>{{\"code\": N, \"message\": \"…\"}}</code>. Machine-readable: \
         <a href=\"/api/openapi.json\">/api/openapi.json</a>.</p><h2>Operations</h2><ul>{toc}</ul>{body}</body></html>"
    )
}
