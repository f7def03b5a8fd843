//! Actions on hooks beyond create/update/delete: the event catalog, secret rotation,
//! redelivery.

use super::*;

/// A payload of `event` as hooks receive it, with a placeholder object.
pub fn sample_payload(event: &str) -> Value {
    let op = if event.ends_with(".created") {
        Op::Create
    } else if event.ends_with(".deleted") || event.ends_with(".terminated") {
        Op::Delete
    } else {
        Op::Update
    };
    // An exact name, else the collection of a pattern's prefix ("subscriber.*").
    let prefix = event.split('.').next().unwrap_or("");
    let catalog = hooks::catalog(&crate::resources::event_sources());
    let resource = catalog
        .iter()
        .find(|(e, _, _)| e == event)
        .or_else(|| {
            catalog
                .iter()
                .find(|(e, _, _)| e.split('.').next() == Some(prefix))
        })
        .map(|(_, r, _)| r.clone())
        .unwrap_or_else(|| "subscribers".into());
    let object = json!({ "id": 42, "…": "the object's representation, secrets masked" });
    hooks::payload(
        "msg_2d7c8c3f0f1b4e0e9a0f3b6a1c9d8e7f",
        event,
        op,
        &resource,
        Some(42),
        Some(&object),
        (op != Op::Create).then_some(&object),
        &json!({ "type": "admin", "id": 1, "name": "administrator" }),
        Some(1234),
        hooks::now_ms(),
    )
}

/// Every event a hook can take, with a sample payload.
pub fn event_catalog() -> Vec<Value> {
    hooks::catalog(&crate::resources::event_sources())
        .into_iter()
        .map(|(event, resource, description)| {
            let sample = sample_payload(&event);
            json!({ "event": event, "resource": resource, "description": description, "sample": sample })
        })
        .collect()
}

/// The hook `id` as `actor` may see it (`write`: and change it).
pub async fn visible_hook(app: &App, actor: &Actor, id: i64, write: bool) -> Result<Hook> {
    Hooks::check_access(actor, write)?;
    let mut c = app.store.read().await?;
    match Hooks::load(&mut c, app, id, false).await? {
        Some(h) if Hooks::visible(&h, actor) => Ok(h),
        _ => Err(Error::NotFound(format!("hooks {id} not found"))),
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateInput {
    #[serde(default)]
    overlap_seconds: Option<i64>,
}

/// A new signing secret, shown once; the old one keeps signing too for the overlap (default
/// a day) so receivers can switch without losing a message.
pub async fn rotate_secret(app: &App, actor: &Actor, id: i64, input: RotateInput) -> Result<Value> {
    let hook = visible_hook(app, actor, id, true).await?;
    let overlap = in_range(
        "overlap_seconds",
        input.overlap_seconds,
        0,
        7 * 24 * 3600,
        24 * 3600,
    )?;
    let secret = sign::new_secret();
    let mut tx = app.store.begin().await?;
    let row = st::get(&mut tx, hook.id, true)
        .await?
        .ok_or_else(|| Error::not_found("hook"))?;
    let until = chrono::Utc::now().timestamp() + overlap;
    st::rotate_secret(
        &mut tx,
        hook.id,
        &app.cipher.encrypt(&secret)?,
        &row.secret_enc,
        until,
    )
    .await?;
    let after = Hooks::load(&mut tx, app, hook.id, false)
        .await?
        .ok_or_else(|| Error::not_found("hook"))?;
    record::<Hooks>(&mut tx, actor, Op::Update, Some(&hook), Some(&after)).await?;
    tx.commit().await?;
    app.hooks.invalidate();
    Ok(json!({
        "secret": secret,
        "previous_secret_valid_until": (overlap > 0).then(|| ts_of_ms(until * 1000)),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeliverInput {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    until: Option<String>,
    /// failed (default): given-up deliveries; all: every delivery in the range again.
    #[serde(default)]
    status: Option<String>,
}

pub(super) fn check_time(field: &str, v: &str) -> Result<i64> {
    ms_of_ts(v).ok_or_else(|| Error::invalid(field, "must be a time as YYYY-MM-DD HH:MM:SS (UTC)"))
}

/// Queues a hook's deliveries of a time range again (by default those given up).
pub async fn redeliver_range(
    app: &App,
    actor: &Actor,
    id: i64,
    input: RedeliverInput,
) -> Result<Value> {
    let hook = visible_hook(app, actor, id, true).await?;
    let status = one_of("status", input.status, &["failed", "all"], "failed")?;
    let mut w = crate::store::Where::new();
    w.push("hook_id = ?", Arg::Int(hook.id));
    if let Some(s) = &input.since {
        w.push("created_at >= ?", Arg::Int(check_time("since", s)?));
    }
    if let Some(u) = &input.until {
        w.push("created_at <= ?", Arg::Int(check_time("until", u)? + 999));
    }
    // Never what an archived hook cancelled.
    if status == "failed" {
        w.raw("status = 'failed'");
    } else {
        w.raw("status IN ('delivered', 'failed')");
    }
    let mut tx = app.store.begin().await?;
    let n = st::requeue(&mut tx, &w, hooks::now_ms()).await?;
    tx.commit().await?;
    tracing::info!(hook = hook.id, count = n, actor = %actor.name, "hook deliveries requeued by hand");
    app.hooks.kick();
    Ok(json!({ "requeued": n, "hook_status": hook.status }))
}

/// Queues the delivery of one execution again, with the same webhook-id.
pub async fn redeliver_one(app: &App, actor: &Actor, id: i64) -> Result<Value> {
    HookExecutions::check_access(actor, true)?;
    let mut c = app.store.read().await?;
    let exec = match HookExecutions::load(&mut c, app, id, false).await? {
        Some(e) if HookExecutions::visible(&e, actor) => e,
        _ => return Err(Error::NotFound(format!("hookexecutions {id} not found"))),
    };
    drop(c);
    let Some(delivery) = exec.delivery_id else {
        return Err(Error::invalid(
            "id",
            "a before-hook's execution has nothing to redeliver",
        ));
    };
    let mut w = crate::store::Where::new();
    w.push("id = ?", Arg::Int(delivery));
    w.raw("status IN ('delivered', 'failed')");
    let mut tx = app.store.begin().await?;
    let n = st::requeue(&mut tx, &w, hooks::now_ms()).await?;
    tx.commit().await?;
    if n == 0 {
        return Err(Error::Conflict(format!(
            "delivery {delivery} is already waiting to go out"
        )));
    }
    tracing::info!(delivery, actor = %actor.name, "hook delivery requeued by hand");
    app.hooks.kick();
    Ok(json!({ "delivery_id": delivery, "webhook_id": exec.webhook_id }))
}
