//! The execution log: every attempt of every hook, what was sent and what came back.

use super::*;

pub struct HookExecutions;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Execution {
    pub id: i64,
    pub hook_id: i64,
    pub reseller_id: Option<i64>,
    /// after-hooks: the delivery (outbox row) this attempt was for.
    pub delivery_id: Option<i64>,
    /// The message id (the webhook-id header), the same for every attempt of a delivery.
    pub webhook_id: Option<String>,
    pub phase: String,
    pub event: String,
    pub resource: Option<String>,
    pub resource_id: Option<i64>,
    pub attempt: i64,
    pub timestamp: String,
    pub duration_ms: i64,
    /// success, failure, timeout, error or vetoed.
    pub outcome: String,
    pub error: Option<String>,
    /// method, url, headers (credentials masked), body (truncated at 16 KiB).
    #[schema(value_type = Object)]
    pub request: Value,
    /// status, headers, body (truncated); a script's exit status, stdout and stderr.
    #[schema(value_type = Option<Object>)]
    pub response: Option<Value>,
    /// Where its delivery stands now: pending, delivered, failed or cancelled.
    pub delivery_status: Option<String>,
}

pub(super) fn exec_of(r: ExecutionRow) -> Execution {
    Execution {
        id: r.id,
        hook_id: r.hook_id,
        reseller_id: r.reseller_id,
        delivery_id: r.delivery_id,
        webhook_id: r.webhook_id,
        phase: r.phase,
        event: r.event,
        resource: r.resource,
        resource_id: r.object_id,
        attempt: r.attempt,
        timestamp: r.ts,
        duration_ms: r.duration_ms,
        outcome: r.outcome,
        error: r.error,
        request: serde_json::from_str(&r.request).unwrap_or(Value::Null),
        response: r
            .response
            .as_deref()
            .and_then(|s| serde_json::from_str(s).ok()),
        delivery_status: r.delivery_status,
    }
}

#[async_trait]
impl Resource for HookExecutions {
    const NAME: &'static str = "hookexecutions";
    const NGCP: bool = false;
    const SUMMARY: &'static str =
        "Every attempt of every hook: request, response, duration, outcome";
    const CAN_CREATE: bool = false;
    const CAN_UPDATE: bool = false;
    const CAN_DELETE: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("hook_id", "the hook"),
        ("event", "event name, * wildcard"),
        (
            "status",
            "outcome: success, failure, timeout, error or vetoed",
        ),
        ("phase", "before or after"),
        ("delivery_id", "the delivery"),
        ("webhook_id", "the message id"),
        ("since", "from this time (YYYY-MM-DD HH:MM:SS, UTC)"),
        ("until", "up to this time"),
    ];
    const READ_ONLY: &'static [&'static str] = &[];
    type Repr = Execution;
    type Input = crate::resources::NoInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<Execution>, Option<i64>)> {
        let mut w = q.where_scoped(
            actor,
            &["event", "phase", "webhook_id"],
            &["hook_id", "delivery_id"],
        )?;
        if let Some(s) = q.get("status") {
            w.push("outcome = ?", Arg::Text(s.to_string()));
        }
        if let Some(s) = q.get("since") {
            w.push("ts >= ?", Arg::Text(s.to_string()));
        }
        if let Some(s) = q.get("until") {
            w.push("ts <= ?", Arg::Text(s.to_string()));
        }
        let (rows, total) =
            list_as::<ExecutionRow>(c, st::EXEC_COLS, st::EXEC_FROM, &w, &q.page).await?;
        Ok((rows.into_iter().map(exec_of).collect(), total))
    }
    async fn load(c: &mut Conn, _: &App, id: i64, _lock: bool) -> Result<Option<Execution>> {
        let row: Option<ExecutionRow> = get_from_view(
            c,
            "hook_executions",
            st::EXEC_COLS,
            st::EXEC_FROM,
            id,
            false,
        )
        .await?;
        Ok(row.map(exec_of))
    }
    fn id(r: &Execution) -> i64 {
        r.id
    }
    fn reseller_of(r: &Execution) -> Option<i64> {
        r.reseller_id
    }
    fn links(r: &Execution) -> Vec<(&'static str, String)> {
        vec![("hooks", format!("/api/hooks/{}", r.hook_id))]
    }
}
