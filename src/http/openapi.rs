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

use super::api::preferences::CATALOGS;
use super::{hal, resource::Resource};
use crate::resources::query::{filter_kind, FilterKind};

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
    /// Media types POST also takes as a raw body, and the query parameters that come with it.
    pub raw_body: &'static [&'static str],
    pub raw_query: &'static [(&'static str, &'static str)],
    /// Whether NGCP has this collection (see [`Resource::NGCP`]).
    pub ngcp: bool,
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
        raw_body: R::RAW_BODY,
        raw_query: R::RAW_QUERY,
        ngcp: R::NGCP,
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

/// A filter's schema, as the listing checks it (see [`filter_kind`]).
fn filter_param(name: &str, desc: &str) -> Value {
    let schema = match filter_kind(name) {
        FilterKind::Id => json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX }),
        FilterKind::Time => json!({ "type": "string",
            "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])( ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9])?$",
            "description": "YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (UTC)" }),
        FilterKind::Text => text_schema(),
    };
    query_param(name, desc, schema)
}

/// A text query parameter: no control characters (refused on every route), at most 255
/// characters.
fn text_schema() -> Value {
    json!({ "type": "string", "maxLength": 255, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$" })
}

/// A successful answer: what [`crate::resources::handling`] ignored is named in a header.
fn ok(desc: &str, content: Option<(&str, Value)>) -> Value {
    let mut r = json!({ "description": desc, "headers": {
        "Voxprov-Ignored": { "description": "what the request held that was ignored (lenient handling): body:<field> or query:<name>, comma-separated", "schema": { "type": "string" } } } });
    if let Some((media, schema)) = content {
        r["content"] = json!({ media: { "schema": schema } });
    }
    r
}

/// The answers any operation can give besides its own: a malformed request (a control
/// character, an unknown parameter under strict handling), credentials, rights, the rate
/// limit, and the database being out of reach.
fn errors(r: &mut Map<String, Value>, own: &[(&str, &str)]) {
    r.insert(
        "400".into(),
        err("malformed request: bad parameter, control character, or (strict handling) an unknown parameter"),
    );
    r.insert(
        "401".into(),
        err("no or wrong credentials (WWW-Authenticate: Basic realm=\"api_admin_http\")"),
    );
    r.insert(
        "403".into(),
        err("the role, reseller or read-only flag does not allow this"),
    );
    r.insert(
        "429".into(),
        json!({ "description": "too many failed logins from this address; Retry-After says when to come back",
            "headers": { "Retry-After": { "schema": { "type": "integer" } } },
            "content": { "application/json": { "schema": sref("Error") } } }),
    );
    r.insert(
        "503".into(),
        err("the database is out of reach or busy; retry"),
    );
    for (code, desc) in own {
        r.insert((*code).into(), err(desc));
    }
}

/// An operation of an authenticated route.
fn op(
    tag: &str,
    id: String,
    summary: String,
    params: Vec<Value>,
    mut responses: Map<String, Value>,
    own_errors: &[(&str, &str)],
) -> Value {
    errors(&mut responses, own_errors);
    json!({ "tags": [tag], "operationId": id, "summary": summary, "parameters": params, "responses": responses })
}

fn responses(list: Vec<(&str, Value)>) -> Map<String, Value> {
    list.into_iter().map(|(c, v)| (c.to_string(), v)).collect()
}

const WRITE_ERRORS: &[(&str, &str)] = &[
    ("404", "no such object (or another reseller's)"),
    ("409", "conflicts with another object (a duplicate), or a bulk import while before-hooks check creations"),
    ("412", "If-Match does not match the current ETag"),
    ("413", "body over the size limit"),
    ("415", "a media type this operation does not take"),
    ("422", "a field is invalid (`field` names it), or a before-hook refused the change"),
    ("423", "locked: still in use, or its parent is terminated"),
];

fn build() -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "required": ["code", "message"], "properties": {
            "code": { "type": "integer" }, "message": { "type": "string" },
            "field": { "type": "string", "description": "the offending field, on 422" },
            "errors": { "type": "array", "description": "on 422: each problem with its field and its message alone",
                "items": { "type": "object", "properties": {
                    "field": { "type": "string" }, "message": { "type": "string" } } } } } }),
    );
    schemas.insert(
        "JsonPatch".into(),
        json!({ "type": "array", "description": "RFC 6902 JSON Patch", "items": { "type": "object",
            "required": ["op", "path"], "properties": { "op": { "enum": ["add", "remove", "replace", "move", "copy", "test"] },
            "path": { "type": "string" }, "from": { "type": "string" }, "value": {} } } }),
    );
    let mut bulk_schemas = Vec::new();
    <crate::resources::bulk::RowResult as ToSchema>::schemas(&mut bulk_schemas);
    for (n, s) in bulk_schemas {
        schemas.insert(n, serde_json::to_value(s).unwrap_or(Value::Null));
    }
    schemas.insert(
        "BulkRow".into(),
        serde_json::to_value(<crate::resources::bulk::RowResult as PartialSchema>::schema())
            .unwrap_or(Value::Null),
    );
    schemas.insert(
        "BulkSummary".into(),
        serde_json::to_value(<crate::resources::bulk::Summary as PartialSchema>::schema())
            .unwrap_or(Value::Null),
    );
    schemas.insert(
        "BulkResult".into(),
        json!({ "type": "object", "required": ["summary", "rows"], "properties": {
            "summary": sref("BulkSummary"), "rows": { "type": "array", "items": sref("BulkRow") } } }),
    );
    let id_param = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1, "maximum": i64::MAX } });
    let if_match = json!({ "name": "If-Match", "in": "header", "required": false, "description": "ETag from a GET; 412 if the object changed since", "schema": { "type": "string" } });
    let prefer = json!({ "name": "Prefer", "in": "header", "required": false,
        "description": "RFC 7240, comma-separated: return=representation (the object back in the answer) or return=minimal; handling=strict (unknown fields and parameters refused, nothing coerced) or handling=lenient (NGCP's way, the default unless api_strict is set)",
        "schema": { "type": "string" }, "examples": {
            "representation": { "value": "return=representation" },
            "strict": { "value": "handling=strict" },
            "both": { "value": "return=representation, handling=strict" } } });
    let hal_obj = json!({ "type": "object" });
    for d in docs() {
        for (n, s) in d.schemas {
            schemas.insert(n, s);
        }
        let tag = d.name;
        let mut params = vec![
            prefer.clone(),
            query_param(
                "page",
                "page number, from 1",
                json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000_000, "default": 1 }),
            ),
            query_param(
                "rows",
                "rows per page: at most 1000 are returned (more is cut to 1000 and named in Voxprov-Ignored; a 400 under handling=strict)",
                json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX, "default": 10 }),
            ),
            query_param(
                "order_by",
                &format!("sort field: {}; another is ignored (named in Voxprov-Ignored; a 400 under handling=strict)", d.order_by.join(", ")),
                json!({ "type": "string", "examples": d.order_by }),
            ),
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
        params.extend(d.filters.iter().map(|(n, desc)| filter_param(n, desc)));
        let mut coll = Map::new();
        let page = format!("a page of {0}; _embedded[\"ngcp:{0}\"] is an array, or the object itself when the page holds exactly one", d.name);
        coll.insert(
            "get".into(),
            op(
                tag,
                format!("list_{}", d.name),
                format!("List {}", d.name),
                params,
                responses(vec![(
                    "200",
                    ok(&page, Some(("application/hal+json", hal_obj.clone()))),
                )]),
                &[],
            ),
        );
        if d.create {
            let mut r = responses(vec![(
                "201",
                ok(
                    &format!("created; Location: /api/{}/<id>. No body by default (NGCP's way); with Prefer: return=representation, or when the object carries a secret shown once, the body is the object (application/hal+json, schema {})", d.name, d.repr),
                    None,
                ),
            )]);
            r["201"]["headers"]["Location"] = json!({ "schema": { "type": "string" } });
            r["201"]["headers"]["ETag"] = json!({ "schema": { "type": "string" } });
            let mut content = Map::new();
            let mut create_params = vec![prefer.clone()];
            let mut own = WRITE_ERRORS.to_vec();
            own.retain(|(c, _)| *c != "412" && *c != "404");
            if d.bulk {
                content.insert("application/json".into(), json!({ "schema": { "oneOf": [sref(&d.input),
                    { "type": "array", "description": format!("bulk import: one object per row, each read as {} and judged on its own (a row that is not is reported in the answer, not refused with the request)", d.input), "items": {} }] } }));
                content.insert("text/csv".into(), json!({ "schema": { "type": "string", "description": "bulk import: a header line of field names, then one row per object" } }));
                create_params.push(query_param(
                    "mode",
                    "bulk only: all-or-nothing (default: 422 and nothing saved when a row fails) or per-row",
                    json!({ "enum": ["all-or-nothing", "per-row"] }),
                ));
                create_params.push(query_param(
                    "dry_run",
                    "bulk only: check every row, save nothing",
                    json!({ "type": "boolean" }),
                ));
                r.insert(
                    "200".into(),
                    ok(
                        "bulk import: per-row results",
                        Some(("application/json", sref("BulkResult"))),
                    ),
                );
                own.retain(|(c, _)| *c != "422");
                r.insert("422".into(), json!({ "description": "a field is invalid (`field` names it); for a bulk import in all-or-nothing mode, the per-row results of a refused import",
                    "content": { "application/json": { "schema": { "oneOf": [sref("Error"), sref("BulkResult")] } } } }));
            } else {
                content.insert(
                    "application/json".into(),
                    json!({ "schema": sref(&d.input) }),
                );
            }
            for media in d.raw_body {
                content.insert(
                    (*media).into(),
                    json!({ "schema": { "type": "string", "contentMediaType": media, "format": "binary" } }),
                );
            }
            create_params.extend(d.raw_query.iter().map(|(n, desc)| {
                query_param(
                    n,
                    &format!("with a raw body: {desc}"),
                    json!({ "type": "string" }),
                )
            }));
            let mut o = op(
                tag,
                format!("create_{}", d.name),
                format!("Create in {}", d.name),
                create_params,
                r,
                &own,
            );
            o["requestBody"] = json!({ "required": true, "content": content });
            coll.insert("post".into(), o);
        }
        paths.insert(format!("/api/{}/", d.name), Value::Object(coll));
        let mut item = Map::new();
        let mut gr = responses(vec![
            (
                "200",
                ok("the object", Some(("application/hal+json", sref(&d.repr)))),
            ),
            ("304", json!({ "description": "If-None-Match matched" })),
        ]);
        gr["200"]["headers"]["ETag"] = json!({ "schema": { "type": "string" } });
        item.insert(
            "get".into(),
            op(
                tag,
                format!("get_{}", d.name),
                format!("Get one of {}", d.name),
                vec![id_param.clone(), prefer.clone()],
                gr,
                &[("404", "no such object (or another reseller's)")],
            ),
        );
        if d.update {
            let r = responses(vec![
                (
                    "200",
                    ok(
                        "updated; the object (Prefer: return=representation)",
                        Some(("application/hal+json", sref(&d.repr))),
                    ),
                ),
                ("204", ok("updated", None)),
            ]);
            let params = vec![id_param.clone(), if_match.clone(), prefer.clone()];
            let mut put = op(
                tag,
                format!("replace_{}", d.name),
                format!("Replace one of {}", d.name),
                params.clone(),
                r.clone(),
                WRITE_ERRORS,
            );
            put["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": sref(&d.input) } } });
            item.insert("put".into(), put);
            let mut patch = op(
                tag,
                format!("patch_{}", d.name),
                format!("Patch one of {} (RFC 6902)", d.name),
                params,
                r,
                WRITE_ERRORS,
            );
            patch["requestBody"] = json!({ "required": true, "content": { "application/json-patch+json": { "schema": sref("JsonPatch") } } });
            item.insert("patch".into(), patch);
        }
        if d.delete {
            item.insert(
                "delete".into(),
                op(
                    tag,
                    format!("delete_{}", d.name),
                    format!("Delete one of {}", d.name),
                    vec![id_param.clone(), if_match.clone(), prefer.clone()],
                    responses(vec![("204", ok("deleted", None))]),
                    &[
                        ("404", "no such object (or another reseller's)"),
                        ("409", "other objects still depend on it"),
                        ("422", "a before-hook refused the deletion"),
                        ("412", "If-Match does not match the current ETag"),
                        ("423", "still in use"),
                    ],
                ),
            );
        }
        paths.insert(format!("/api/{}/{{id}}", d.name), Value::Object(item));
        paths.insert(
            format!("/api/{}/{{id}}/metadata", d.name),
            json!({ "get": op(tag, format!("metadata_{}", d.name), format!("Values hooks' answers put on one of {} (response_map)", d.name),
                vec![id_param.clone()], responses(vec![("200", ok("metadata: key → value, and the hook each came from", Some(("application/json", hal_obj.clone()))))]),
                &[("404", "no such object")]) }),
        );
        paths.insert(
            format!("/api/{}/{{id}}/journal/", d.name),
            json!({ "get": op(tag, format!("journal_{}", d.name), format!("Journal of one of {}", d.name),
                vec![id_param.clone()], responses(vec![("200", ok("change records, newest last", Some(("application/hal+json", hal_obj.clone()))))]),
                &[("404", "no such object")]) }),
        );
    }
    extra_paths(&mut paths, &id_param, &prefer);
    json!({
        "openapi": "3.1.0",
        "info": { "title": "voxprov API", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Provisioning API compatible with Sipwise NGCP's REST API: HAL+JSON, Location headers, Prefer, JSON Patch, ETag/If-Match. Lenient as NGCP by default (unknown fields and parameters ignored and named in Voxprov-Ignored); Prefer: handling=strict refuses them." },
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

/// The routes that are not a collection's own: the journal, hooks' and devices' actions,
/// SIP servers' check and repair, catalogs, recordings, the root and the probes.
fn extra_paths(paths: &mut Map<String, Value>, id_param: &Value, prefer: &Value) {
    let obj = json!({ "type": "object" });
    let json_ok = |desc: &str| {
        ok(
            desc,
            Some(("application/json", json!({ "type": "object" }))),
        )
    };
    let hal_ok = |desc: &str| {
        ok(
            desc,
            Some(("application/hal+json", json!({ "type": "object" }))),
        )
    };
    let id = || id_param.clone();
    let mut add = |path: &str, method: &str, v: Value| {
        let e = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        e[method] = v;
    };
    let mut jp: Vec<Value> = super::api::journals::FILTERS
        .iter()
        .map(|(n, d)| filter_param(n, d))
        .collect();
    jp.push(query_param(
        "page",
        "page number, from 1",
        json!({ "type": "integer", "minimum": 1, "maximum": 1_000_000_000 }),
    ));
    jp.push(query_param(
        "rows",
        "rows per page: at most 1000 are returned",
        json!({ "type": "integer", "minimum": 1, "maximum": i64::MAX }),
    ));
    jp.push(prefer.clone());
    add(
        "/api/journals/",
        "get",
        op(
            "journals",
            "list_journals".into(),
            "The journal: every change with actor, client address, before and after".into(),
            jp,
            responses(vec![("200", hal_ok("change records"))]),
            &[],
        ),
    );
    add(
        "/api/journals/{id}",
        "get",
        op(
            "journals",
            "get_journal".into(),
            "One journal entry".into(),
            vec![id()],
            responses(vec![("200", hal_ok("the change record"))]),
            &[("404", "no such entry (or another reseller's)")],
        ),
    );
    add(
        "/api/hooks/events",
        "get",
        op(
            "hooks",
            "hook_events".into(),
            "Every event a hook can take, with a sample payload".into(),
            vec![],
            responses(vec![("200", json_ok("the event catalog"))]),
            &[],
        ),
    );
    add(
        "/api/hooks/{id}/executions",
        "get",
        op(
            "hooks",
            "hook_executions_of".into(),
            "One hook's execution log (the filters of /api/hookexecutions/ apply)".into(),
            vec![id()],
            responses(vec![("200", hal_ok("executions"))]),
            &[("404", "no such hook")],
        ),
    );
    let mut rot = op("hooks", "rotate_hook_secret".into(), "A new signing secret, shown once; the old one also signs for overlap_seconds (default 86400, at most 604800)".into(),
        vec![id()], responses(vec![("200", json_ok("{secret, previous_secret_valid_until}"))]),
        &[("404", "no such hook"), ("413", "body over the size limit"), ("415", "not JSON"), ("422", "bad overlap_seconds")]);
    rot["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "overlap_seconds": { "type": "integer" } } } } } });
    add("/api/hooks/{id}/rotate_secret", "post", rot);
    let mut red = op(
        "hooks",
        "redeliver_hook_range".into(),
        "Send a hook's deliveries of a time range again: status failed (default) or all".into(),
        vec![id()],
        responses(vec![("202", json_ok("{requeued}"))]),
        &[
            ("404", "no such hook"),
            ("413", "body over the size limit"),
            ("415", "not JSON"),
            ("422", "bad time or status"),
        ],
    );
    red["requestBody"] = json!({ "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "since": { "type": "string" }, "until": { "type": "string" }, "status": { "type": "string", "enum": ["failed", "all"] } } } } } });
    add("/api/hooks/{id}/redeliver", "post", red);
    add(
        "/api/hookexecutions/{id}/redeliver",
        "post",
        op(
            "hookexecutions",
            "redeliver_execution".into(),
            "Send the delivery of one execution again, with the same webhook-id".into(),
            vec![id()],
            responses(vec![("202", json_ok("{delivery_id, webhook_id}"))]),
            &[
                ("404", "no such execution"),
                ("409", "already waiting to go out"),
                ("422", "a before-hook execution"),
            ],
        ),
    );
    for (name, _) in CATALOGS {
        let what = format!("{}s", name.trim_end_matches("preferencedefs"));
        add(&format!("/api/{name}/"), "get", op(name, format!("list_{name}"), format!("The preferences {what} can have: name → type, default, whether it can be set on subscribers, customers and domains"),
            vec![], responses(vec![("200", hal_ok("the catalog"))]), &[]));
    }
    add(
        "/api/metaconfigdefs/",
        "get",
        op(
            "meta",
            "metaconfigdefs".into(),
            "What the platform has switched on, in NGCP's shape: config.features (cloudpbx…), config.security (password checks)".into(),
            vec![],
            responses(vec![("200", hal_ok("the switches"))]),
            &[],
        ),
    );
    add(
        "/api/soundfilerecordings/{id}",
        "get",
        op(
            "soundfiles",
            "get_soundfilerecording".into(),
            "A sound file's audio".into(),
            vec![id()],
            responses(vec![(
                "200",
                ok(
                    "the WAV file (Content-Disposition names it)",
                    Some((
                        "audio/x-wav",
                        json!({ "type": "string", "format": "binary" }),
                    )),
                ),
            )]),
            &[("404", "no such sound file (or another reseller's)")],
        ),
    );
    add("/api/sipservers/{id}/check", "get", op("sipservers", "check_sipserver".into(), "Compare the SIP server's tables with what voxprov holds: rows missing, changed or extra".into(),
        vec![id()], responses(vec![("200", json_ok("the comparison"))]), &[("404", "no such SIP server")]));
    add(
        "/api/sipservers/{id}/check",
        "post",
        op(
            "sipservers",
            "check_sipserver_post".into(),
            "Same as GET".into(),
            vec![id()],
            responses(vec![("200", json_ok("the comparison"))]),
            &[("404", "no such SIP server")],
        ),
    );
    add("/api/sipservers/{id}/repair", "post", op("sipservers", "repair_sipserver".into(), "Write what the SIP server's tables lack or hold wrongly, remove what voxprov did not put there; journalled".into(),
        vec![id()], responses(vec![("200", json_ok("what was repaired"))]), &[("404", "no such SIP server")]));
    // The PBX's runtime, destinations, globals and system commands; registrations, CDR export.
    let mut rt = op("pbxextensions", "put_extension_runtime".into(),
        "Set an extension's cfim (unconditional forward), cfbs (forward on busy) and ringdelay: each key given is set, null clears it".into(),
        vec![id()], responses(vec![("200", hal_ok("the runtime"))]),
        &[("404", "no such extension (or another reseller's)"), ("415", "not JSON"), ("422", "a bad number, naming cfim, cfbs or ringdelay")]);
    rt["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": {
        "cfim": { "type": ["string", "integer", "null"], "minimum": 0, "description": "+ and digits (an integer is taken as its digits); an extension number of the tenant means that extension; empty or null clears it" },
        "cfbs": { "type": ["string", "integer", "null"], "minimum": 0 }, "ringdelay": { "type": ["integer", "null"] } } } } } });
    add("/api/pbxextensions/{id}/runtime", "put", rt);
    add("/api/pbxextensions/{id}/runtime", "get", op("pbxextensions", "get_extension_runtime".into(),
        "An extension's cfim, cfbs and ringdelay (its subscriber's cfu, cfb and ringtimeout) and its live registrations".into(),
        vec![id()], responses(vec![("200", hal_ok("the runtime"))]), &[("404", "no such extension (or another reseller's)")]));
    add("/api/pbxdestinations/", "get", op("pbxtenants", "list_pbx_destinations".into(),
        "Every destination a tenant's inbound routes, ring group outcomes and holidays may name".into(),
        vec![query_param("tenant_id", "the tenant (required)", json!({ "type": "integer" }))],
        responses(vec![("200", hal_ok("the destinations"))]), &[("422", "no such tenant (or another reseller's)")]));
    let globals: Map<String, Value> = crate::resources::pbx::globals::GLOBALS
        .iter()
        .map(|(n, _, applied, what)| {
            let d = if *applied {
                format!("applied: {what}")
            } else {
                what.to_string()
            };
            (
                (*n).to_string(),
                json!({ "type": ["string", "integer", "null"], "description": d }),
            )
        })
        .collect();
    add(
        "/api/pbxglobals",
        "get",
        op(
            "pbxglobals",
            "get_pbx_globals".into(),
            "SARK's global settings (admins); passwords are shown as ********".into(),
            vec![],
            responses(vec![("200", hal_ok("every setting, null when unset"))]),
            &[("403", "not an admin")],
        ),
    );
    let mut gp = op("pbxglobals", "put_pbx_globals".into(),
        "Change the settings given (SARK's rule for each; null clears it); one bad value changes nothing".into(), vec![],
        responses(vec![("200", hal_ok("every setting"))]), &[("403", "not an admin"), ("415", "not JSON"), ("422", "a bad value or an unknown setting, naming it")]);
    gp["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": globals } } } });
    add("/api/pbxglobals", "put", gp);
    add("/api/pbxsyscommands/{command}", "get", op("pbxglobals", "pbx_syscommand".into(),
        "SARK's commit and pbxrunstate: voxprov applies every change as it is made, so both report each SIP server's applied state".into(),
        vec![json!({ "name": "command", "in": "path", "required": true, "schema": { "type": "string", "enum": ["commit", "pbxrunstate"] } })],
        responses(vec![("200", hal_ok("the SIP servers' state"))]), &[("404", "no such command"), ("422", "reboot, pbxstart, pbxstop: refused")]));
    add("/api/subscriberregistrations/", "get", op("subscribers", "list_subscriberregistrations".into(),
        "The contacts subscribers have registered, read live from every Kamailio (within the reader's reseller)".into(),
        vec![query_param("subscriber_id", "one subscriber only", json!({ "type": "integer" }))],
        responses(vec![("200", hal_ok("the registrations; `unanswered_sipservers` lists the SIP servers that could not be asked (their contacts are missing from the list)"))]), &[]));
    add("/api/cdrs/export", "get", op("cdrs", "export_cdrs".into(),
        "The last `limit` call records (default 1000, at most 100000) matching the filters of /api/cdrs/, oldest first, as CSV".into(),
        vec![query_param("limit", "how many", json!({ "type": "integer", "minimum": 1, "maximum": 100000 }))],
        responses(vec![("200", ok("CSV", Some(("text/csv", json!({ "type": "string" })))))]), &[("422", "a bad filter or limit")]));
    // Admins' client certificates (NGCP's /api/admincerts/).
    let mut ac = op("admins", "create_admincert".into(),
        "A client certificate for an admin (default: the caller), delivered once as a ZIP holding the certificate and key in PEM and voxprov's admin CA; it authenticates that admin on the HTTPS listener and replaces any earlier one".into(),
        vec![], responses(vec![("201", ok("the ZIP (Content-Disposition names it)", Some(("application/zip", json!({ "type": "string", "format": "binary" })))))]),
        &[("400", "not a JSON object"), ("403", "another admin's, without the right to"), ("415", "not JSON"), ("422", "no such administrator, or an unknown field")]);
    ac["requestBody"] = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "properties": {
        "login": { "type": ["string", "null"], "description": "the admin's login; absent: the caller" } } } } } });
    add("/api/admincerts/", "post", ac);
    add(
        "/api/admincerts/{id}",
        "get",
        op(
            "admins",
            "get_admincert".into(),
            "Whether an admin has a client certificate, and its serial".into(),
            vec![id()],
            responses(vec![(
                "200",
                hal_ok("{id, login, has_certificate, ssl_client_m_serial}"),
            )]),
            &[("404", "no such administrator (or another reseller's)")],
        ),
    );
    add("/api/admincerts/{id}", "delete", op("admins", "revoke_admincert".into(),
        "Revoke an admin's client certificate: it authenticates no one from the next request on".into(),
        vec![id()], responses(vec![("204", ok("revoked", None))]), &[("403", "another admin's, without the right to"), ("404", "no such administrator, or no certificate")]));
    // Snapshots (SARK's): admins only.
    let snap_id =
        || json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    let pass_body = json!({ "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["passphrase"], "properties": {
        "passphrase": { "type": "string", "description": "seals the secret key in the snapshot (at least 12 characters)" } } } } } });
    add("/api/snapshots/", "get", op("snapshots", "list_snapshots".into(),
        "The snapshots the server keeps, newest first: id, size, when, which voxprov and schema".into(),
        vec![], responses(vec![("200", hal_ok("the snapshots"))]), &[("403", "not an admin")]));
    let mut take = op("snapshots", "create_snapshot".into(),
        "Take a snapshot now (JSON with the passphrase), or upload one (the file as application/octet-stream)".into(),
        vec![], responses(vec![("201", hal_ok("the snapshot (Location names it)"))]),
        &[("400", "not JSON"), ("403", "not an admin, or read-only"), ("413", "an upload larger than max_snapshot_bytes"), ("415", "neither JSON nor a file"), ("422", "no or a short passphrase, or an upload that is not a snapshot this voxprov can restore")]);
    take["requestBody"] = json!({ "required": true, "content": {
        "application/json": pass_body["content"]["application/json"].clone(),
        "application/octet-stream": { "schema": { "type": "string", "format": "binary" } } } });
    add("/api/snapshots/", "post", take);
    add(
        "/api/snapshots/{id}",
        "get",
        op(
            "snapshots",
            "download_snapshot".into(),
            "Download a snapshot (its secret key stays sealed under its passphrase)".into(),
            vec![snap_id()],
            responses(vec![(
                "200",
                ok(
                    "the file",
                    Some((
                        "application/octet-stream",
                        json!({ "type": "string", "format": "binary" }),
                    )),
                ),
            )]),
            &[("403", "not an admin"), ("404", "no such snapshot")],
        ),
    );
    let mut restore = op("snapshots", "restore_snapshot".into(),
        "Restore a snapshot into the running system (SARK's PUT /backups/{backup}): the configuration is replaced in one transaction, the journal, CDRs and phones' fetch log are kept, every SIP server is loaded in full and the phones' cache rebuilt".into(),
        vec![snap_id()], responses(vec![("200", json_ok("what was restored"))]),
        &[("400", "not JSON"), ("403", "not an admin, or read-only"), ("404", "no such snapshot"), ("415", "not JSON"), ("422", "wrong passphrase, another installation's key, or a damaged file")]);
    restore["requestBody"] = pass_body.clone();
    add("/api/snapshots/{id}", "put", restore);
    add(
        "/api/snapshots/{id}",
        "delete",
        op(
            "snapshots",
            "delete_snapshot".into(),
            "Delete a snapshot".into(),
            vec![snap_id()],
            responses(vec![("204", ok("deleted", None))]),
            &[
                ("403", "not an admin, or read-only"),
                ("404", "no such snapshot"),
            ],
        ),
    );
    add(
        "/api/pbxdevicemodels/tree",
        "get",
        op(
            "pbxdevicemodels",
            "device_model_tree".into(),
            "The model catalog as vendor → family → model".into(),
            vec![],
            responses(vec![("200", json_ok("the tree"))]),
            &[],
        ),
    );
    add(
        "/api/pbxdevicemodels/detect",
        "get",
        op(
            "pbxdevicemodels",
            "detect_device_model".into(),
            "The model a phone's User-Agent (and MAC) points to".into(),
            vec![
                query_param("user_agent", "a User-Agent header", text_schema()),
                query_param(
                    "mac",
                    "the phone's MAC (12 hex digits, separators : - . allowed)",
                    json!({ "type": "string", "pattern": "^([0-9A-Fa-f]{2}[:.-]?){5}[0-9A-Fa-f]{2}$" }),
                ),
            ],
            responses(vec![("200", json_ok("the model"))]),
            &[
                ("404", "no model matches"),
                ("422", "mac is not a MAC address"),
            ],
        ),
    );
    add(
        "/api/pbxdevicetemplates/builtin",
        "get",
        op(
            "pbxdevicetemplates",
            "builtin_device_templates".into(),
            "The templates voxprov ships, by name".into(),
            vec![],
            responses(vec![("200", json_ok("{templates: [{name, content}]}"))]),
            &[],
        ),
    );
    let mut kz = op(
        "pbxdevicetemplates",
        "import_kazoo_template".into(),
        "Turn a Kazoo provisioner template (JSON) into a device template".into(),
        vec![],
        responses(vec![(
            "201",
            ok(
                "the template made; Location names it",
                Some(("application/json", obj.clone())),
            ),
        )]),
        &[
            ("409", "a template of that name exists"),
            ("413", "body over the size limit"),
            ("415", "not JSON"),
            ("422", "not a template this importer understands"),
        ],
    );
    kz["requestBody"] =
        json!({ "required": true, "content": { "application/json": { "schema": obj } } });
    add("/api/pbxdevicetemplates/import_kazoo", "post", kz);
    add("/api/pbxdevices/{id}/preview", "get", op("pbxdevices", "preview_device".into(), "One of the device's files as the phone would get it; passwords masked unless reveal (writers)".into(),
        vec![id(), query_param("file", "which of the model's files (default: the main one)", json!({ "type": "string" })), query_param("reveal", "show passwords (writers only)", json!({ "type": "boolean" }))],
        responses(vec![("200", ok("the file", Some(("*/*", json!({ "type": "string" })))))]), &[("404", "no such device or file"), ("422", "the template does not render")]));
    add(
        "/api/pbxdevices/{id}/fetches",
        "get",
        op(
            "pbxdevices",
            "device_fetches".into(),
            "The device's last fetches: when, from where, which file, with what answer".into(),
            vec![id()],
            responses(vec![("200", json_ok("the fetches"))]),
            &[("404", "no such device")],
        ),
    );
    for (action, what) in [
        (
            "reset_token",
            "A new provisioning URL token (the old one stops working); shown once",
        ),
        (
            "reset_secret",
            "A new per-device secret (the old one stops working); shown once",
        ),
        (
            "resync",
            "Ask the phone to fetch its configuration again (a SIP NOTIFY check-sync)",
        ),
    ] {
        add(
            &format!("/api/pbxdevices/{{id}}/{action}"),
            "post",
            op(
                "pbxdevices",
                format!("{action}_device"),
                what.into(),
                vec![id()],
                responses(vec![("200", json_ok("the outcome"))]),
                &[
                    ("404", "no such device"),
                    ("409", "not possible in the device's state"),
                ],
            ),
        );
    }
    add(
        "/api/pbxprovbans/",
        "get",
        op(
            "pbxprovbans",
            "list_prov_bans".into(),
            "Addresses banned from /prov/ after repeated failures (admins)".into(),
            vec![],
            responses(vec![(
                "200",
                json_ok("{bans: [{address, seconds_left, failures}]}"),
            )]),
            &[],
        ),
    );
    add(
        "/api/pbxprovbans/{ip}",
        "delete",
        op(
            "pbxprovbans",
            "lift_prov_ban".into(),
            "Lift the ban on an address (admins)".into(),
            vec![
                json!({ "name": "ip", "in": "path", "required": true, "schema": { "anyOf": [{ "type": "string", "format": "ipv4" }, { "type": "string", "format": "ipv6" }] }, "description": "an IPv4 or IPv6 address" }),
            ],
            responses(vec![("204", ok("lifted", None))]),
            &[("404", "no ban for this address")],
        ),
    );
    add(
        "/api/pbxdevicecache",
        "get",
        op(
            "pbxdevices",
            "device_cache".into(),
            "What the provisioning cache holds (admins)".into(),
            vec![],
            responses(vec![("200", json_ok("{devices, files, warm}"))]),
            &[],
        ),
    );
    add(
        "/api/",
        "get",
        json!({ "tags": ["meta"], "operationId": "api_root", "summary": "The collections (HAL links), or this description as a page for a browser (Accept: text/html)", "security": [],
        "responses": { "200": { "description": "the index", "content": { "application/hal+json": { "schema": obj }, "text/html": { "schema": { "type": "string" } } } } } }),
    );
    add(
        "/api/",
        "options",
        json!({ "tags": ["meta"], "operationId": "api_root_options", "summary": "The methods, and a Link header per collection (NGCP's discovery)", "security": [],
        "responses": { "200": { "description": "Allow and Link headers", "content": { "application/json": { "schema": obj } } } } }),
    );
    add(
        "/api/openapi.json",
        "get",
        json!({ "tags": ["meta"], "operationId": "openapi", "summary": "This description", "security": [], "responses": { "200": { "description": "OpenAPI 3.1", "content": { "application/json": { "schema": obj } } } } }),
    );
    add(
        "/healthz",
        "get",
        json!({ "tags": ["meta"], "operationId": "healthz", "summary": "Liveness: the process answers", "security": [],
        "responses": { "200": { "description": "ok", "content": { "text/plain": { "schema": { "type": "string" } } } } } }),
    );
    add(
        "/readyz",
        "get",
        json!({ "tags": ["meta"], "operationId": "readyz", "summary": "Readiness: the database answers", "security": [],
        "responses": { "200": { "description": "ready", "content": { "text/plain": { "schema": { "type": "string" } } } },
                       "503": { "description": "database unavailable", "content": { "text/plain": { "schema": { "type": "string" } } } } } }),
    );
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
    for (name, _) in CATALOGS {
        links.insert(
            format!("ngcp:{name}"),
            json!({ "href": format!("/api/{name}/") }),
        );
    }
    links.insert("ngcp:journals".into(), json!({ "href": "/api/journals/" }));
    hal::respond(StatusCode::OK, &headers, &json!({ "_links": links }))
}

/// `OPTIONS /api/`: the methods, and one `Link` per NGCP collection (NGCP's discovery).
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
    let mut names: Vec<&str> = docs().iter().filter(|d| d.ngcp).map(|d| d.name).collect();
    names.extend(CATALOGS.iter().map(|(n, _)| *n));
    names.push("metaconfigdefs");
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
