//! What a hook may be: events that exist, where it may call (no SSRF), its credentials, its
//! limits, its template and response map.

use super::*;

/// Header names a hook may not set: they carry the signature, or HTTP's own framing.
pub(super) const RESERVED_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "host",
    "transfer-encoding",
    "connection",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "authorization",
];

pub(super) fn check_events(events: &[String]) -> Result<String> {
    if events.is_empty() {
        return Err(Error::invalid("events", "must name at least one event"));
    }
    if events.len() > 100 {
        return Err(Error::invalid("events", "at most 100 entries"));
    }
    let catalog = hooks::catalog(&crate::resources::event_sources());
    for (i, e) in events.iter().enumerate() {
        let known = e == "*"
            || catalog.iter().any(|(n, _, _)| n == e)
            || e.strip_suffix(".*").is_some_and(|pre| {
                catalog
                    .iter()
                    .any(|(n, _, _)| n.strip_prefix(pre).is_some_and(|r| r.starts_with('.')))
            });
        if !known {
            return Err(Error::invalid(
                format!("events[{i}]"),
                format!(
                    "unknown event '{}'; see /api/hooks/events",
                    e.chars().take(80).collect::<String>()
                ),
            ));
        }
    }
    Ok(serde_json::to_string(events)?)
}

pub(super) fn one_of(
    field: &str,
    v: Option<String>,
    allowed: &[&str],
    default: &str,
) -> Result<String> {
    let v = v.unwrap_or_else(|| default.to_string());
    if allowed.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(Error::invalid(
            field,
            format!("must be one of {}", allowed.join(", ")),
        ))
    }
}

pub(super) fn in_range(field: &str, v: Option<i64>, lo: i64, hi: i64, default: i64) -> Result<i64> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return Err(Error::invalid(
            field,
            format!("must be between {lo} and {hi}"),
        ));
    }
    Ok(v)
}

/// Auth type, name and the credential to store (encrypted); absent credentials are kept from
/// `old` when the type is unchanged.
pub(super) fn check_auth(
    app: &App,
    a: Option<HookAuthInput>,
    old: Option<&HookRow>,
) -> Result<(String, Option<String>, Option<String>)> {
    let Some(a) = a else {
        return Ok(("none".into(), None, None));
    };
    let kind = one_of(
        "auth.type",
        Some(a.kind),
        &["none", "basic", "bearer", "header"],
        "none",
    )?;
    let kept = old
        .filter(|o| o.auth_type == kind)
        .and_then(|o| o.auth_value_enc.clone());
    let secret = |field: &str, v: Option<String>| -> Result<Option<String>> {
        match v {
            Some(v) if v.is_empty() => Err(Error::invalid(field, "must not be empty")),
            Some(v) => {
                let v = model::required_text(field, v, 1024)?;
                Ok(Some(app.cipher.encrypt(&v)?))
            }
            None if kept.is_some() => Ok(kept.clone()),
            None => Err(Error::invalid(field, "is required")),
        }
    };
    let unexpected = |field: &str, v: &Option<String>| -> Result<()> {
        if v.is_some() {
            return Err(Error::invalid(
                field,
                format!("does not apply to auth type {kind}"),
            ));
        }
        Ok(())
    };
    match kind.as_str() {
        "none" => {
            unexpected("auth.username", &a.username)?;
            unexpected("auth.password", &a.password)?;
            unexpected("auth.token", &a.token)?;
            unexpected("auth.header", &a.header)?;
            unexpected("auth.value", &a.value)?;
            Ok((kind, None, None))
        }
        "basic" => {
            unexpected("auth.token", &a.token)?;
            unexpected("auth.header", &a.header)?;
            unexpected("auth.value", &a.value)?;
            let user = model::non_empty("auth.username", a.username.unwrap_or_default(), 255)?;
            if user.contains(':') {
                return Err(Error::invalid("auth.username", "must not contain ':'"));
            }
            Ok((kind, Some(user), secret("auth.password", a.password)?))
        }
        "bearer" => {
            unexpected("auth.username", &a.username)?;
            unexpected("auth.password", &a.password)?;
            unexpected("auth.header", &a.header)?;
            unexpected("auth.value", &a.value)?;
            Ok((kind, None, secret("auth.token", a.token)?))
        }
        _ => {
            unexpected("auth.username", &a.username)?;
            unexpected("auth.password", &a.password)?;
            unexpected("auth.token", &a.token)?;
            let h = a.header.unwrap_or_default();
            if h.is_empty()
                || h.len() > 64
                || !h
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(Error::invalid(
                    "auth.header",
                    "must be a header name (letters, digits, - and _)",
                ));
            }
            if RESERVED_HEADERS.contains(&h.to_ascii_lowercase().as_str()) {
                return Err(Error::invalid(
                    "auth.header",
                    format!("'{h}' is set by voxprov itself"),
                ));
            }
            Ok((kind, Some(h), secret("auth.value", a.value)?))
        }
    }
}

pub(super) async fn validate(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    i: HookInput,
    old: Option<&HookRow>,
) -> Result<HookFields> {
    // Every field's problem is gathered, so that one answer names them all; a check that
    // depends on another field runs only when that field is good.
    let mut p = Problems::default();
    let name = p.value(model::non_empty("name", i.name, 128))?;
    let events = p.value(check_events(&i.events))?;
    let phase = p.value(one_of("phase", i.phase, &["before", "after"], "after"))?;
    let kind = p.value(one_of("kind", i.kind, &["http", "script"], "http"))?;
    let reseller_id = p.value(hook_reseller(c, actor, i.reseller_id).await)?;
    let (url, method, path) = if kind.is_empty() {
        Default::default()
    } else {
        p.value(hook_target(app, actor, &kind, i.url, i.method, i.path))?
    };
    let (auth_type, auth_name, auth_value_enc) = p.value(check_auth(app, i.auth, old))?;
    if kind == "script" && !auth_type.is_empty() && auth_type != "none" {
        p.note("auth", "applies to http hooks only");
    }
    let failure_policy = p.value(one_of(
        "failure_policy",
        i.failure_policy,
        &["fail", "ignore"],
        "fail",
    ))?;
    if phase == "after" && !failure_policy.is_empty() && failure_policy != "fail" {
        p.note(
            "failure_policy",
            "applies to before-hooks; after-hooks are retried until delivered or given up",
        );
    }
    let f = i.filters.unwrap_or(HookFilters {
        domain: None,
        sipserver_id: None,
        customer_id: None,
    });
    // The filters are judged as their owner's: not with an owner refused above.
    if !p.names("reseller_id") {
        p.check(hook_filters(c, actor, reseller_id, &f).await)?;
    }
    let body_template = p.value(hook_template(i.body_template))?;
    let response_map = p.value(hook_response_map(i.response_map))?;
    let priority = p.value(in_range("priority", i.priority, 1, 1000, 100))?;
    let status = p.value(one_of(
        "status",
        i.status,
        &["enabled", "disabled", "archived"],
        "enabled",
    ))?;
    let timeout = p.value(in_range("timeout", i.timeout, 1, 30, 5))?;
    p.finish()?;
    Ok(HookFields {
        reseller_id,
        name,
        events,
        phase,
        kind,
        url,
        method,
        path,
        auth_type,
        auth_name,
        auth_value_enc,
        priority,
        status,
        timeout,
        failure_policy,
        filter_domain: f.domain,
        filter_sipserver_id: f.sipserver_id,
        filter_customer_id: f.customer_id,
        body_template,
        response_map,
    })
}

/// Whose hook it is: a reseller's own, or (an admin's choice) any reseller's or none.
async fn hook_reseller(c: &mut Conn, actor: &Actor, given: Option<i64>) -> Result<Option<i64>> {
    match actor.scope() {
        Some(own) => {
            if given.is_some_and(|r| r != own) {
                return Err(Error::invalid(
                    "reseller_id",
                    format!("reseller {} does not exist", given.unwrap_or(0)),
                ));
            }
            Ok(Some(own))
        }
        None => {
            if let Some(r) = given {
                check_reseller(c, r).await?;
            }
            Ok(given)
        }
    }
}

/// Where the hook calls: an http hook's URL (no SSRF) and method, or a script hook's path.
fn hook_target(
    app: &App,
    actor: &Actor,
    kind: &str,
    url: Option<String>,
    method: Option<String>,
    path: Option<String>,
) -> Result<(Option<String>, String, Option<String>)> {
    let allow_private = app.hooks.config().allow_private_targets;
    if kind == "http" {
        if path.is_some() {
            return Err(Error::invalid("path", "applies to script hooks only"));
        }
        let url = url.ok_or_else(|| Error::invalid("url", "is required for http hooks"))?;
        if url.len() > 2048 {
            return Err(Error::invalid("url", "must be at most 2048 characters"));
        }
        check_url(&url, allow_private).map_err(|e| Error::invalid("url", e))?;
        let method = one_of(
            "method",
            method.map(|m| m.to_ascii_uppercase()),
            &["POST", "PUT", "PATCH"],
            "POST",
        )?;
        Ok((Some(url), method, None))
    } else {
        if !actor.is_admin() {
            return Err(Error::invalid(
                "kind",
                "script hooks run on the server: only admins may add them",
            ));
        }
        if url.is_some() {
            return Err(Error::invalid("url", "applies to http hooks only"));
        }
        let path = path.ok_or_else(|| Error::invalid("path", "is required for script hooks"))?;
        crate::hooks::call::script_path(app.hooks.config().script_dir.as_deref(), &path)?;
        Ok((None, "POST".to_string(), Some(path)))
    }
}

/// The filters name objects the hook's owner may see.
async fn hook_filters(
    c: &mut Conn,
    actor: &Actor,
    reseller_id: Option<i64>,
    f: &HookFilters,
) -> Result<()> {
    if let Some(d) = &f.domain {
        match domain_by_name(c, d).await? {
            Some(dom) if reseller_id.is_none_or(|r| r == dom.reseller_id) => {}
            _ => {
                return Err(Error::invalid(
                    "filters.domain",
                    format!("domain '{d}' does not exist"),
                ))
            }
        }
    }
    if let Some(s) = f.sipserver_id {
        if reseller_id.is_some() || !actor.is_admin() {
            return Err(Error::invalid(
                "filters.sipserver_id",
                "SIP servers are the operator's: only for admins' hooks",
            ));
        }
        if !crate::store::exists(c, "sipservers", "id = $1", s).await? {
            return Err(Error::invalid(
                "filters.sipserver_id",
                format!("sipserver {s} does not exist"),
            ));
        }
    }
    if let Some(cu) = f.customer_id {
        let owner: Option<i64> =
            sqlx::query_scalar("SELECT reseller_id FROM customers WHERE id = $1")
                .bind(cu)
                .fetch_optional(&mut *c)
                .await?;
        let visible = matches!(owner, Some(o) if reseller_id.is_none_or(|r| r == o));
        if !visible {
            return Err(Error::invalid(
                "filters.customer_id",
                format!("customer {cu} does not exist"),
            ));
        }
    }
    Ok(())
}

fn hook_template(t: Option<String>) -> Result<Option<String>> {
    match t {
        Some(t) if t.len() > 65536 => {
            Err(Error::invalid("body_template", "must be at most 64 KiB"))
        }
        Some(t) => {
            crate::templating::check_json_body_syntax(&t)
                .map_err(|e| Error::invalid("body_template", e))?;
            Ok(Some(t))
        }
        None => Ok(None),
    }
}

fn hook_response_map(m: Option<Map<String, Value>>) -> Result<Option<String>> {
    let Some(m) = m else {
        return Ok(None);
    };
    if m.len() > 20 {
        return Err(Error::invalid("response_map", "at most 20 entries"));
    }
    for (k, v) in &m {
        if k.is_empty()
            || k.len() > 64
            || !k
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(Error::invalid(
                format!("response_map.{k}"),
                "keys are 1–64 letters, digits, '_', '.' or '-'",
            ));
        }
        match v.as_str() {
            Some(p) if p.is_empty() || p.starts_with('/') => {}
            _ => {
                return Err(Error::invalid(
                    format!("response_map.{k}"),
                    "must be a JSON pointer such as /data/id",
                ))
            }
        }
    }
    Ok(Some(Value::Object(m).to_string()))
}
