//! `/api/pbxdaytimers/` and `/api/pbxholidaytimers/`: when a tenant is open. Day timers
//! (SARK's recurring timers) are the open hours: the tenant is open while one of them covers
//! the moment (always, if it has none). Holiday timers (non-recurring) close it from `stime`
//! to `etime` whatever the day timers say, sending calls to their `route` (or the inbound
//! route's closed destination). The SIP servers evaluate them at each call, in their local
//! time.

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::*;
use crate::app::App;
use crate::resources::{Created, ListQuery, Resource};
use crate::store::pbx::{
    timespan, PbxDayTimer, PbxHolidayTimer, DAYS, DAYTIMER_COLS, HOLIDAY_COLS, MONTHS,
};
use crate::store::{delete_row, get_as, list_as, save_row, Arg};

/// Timers a tenant may have: the SIP server walks them at every call to its DIDs.
const MAX_DAY_TIMERS: i64 = 50;
const MAX_HOLIDAYS: i64 = 90;

/// Whether the tenant of `cols` (the first column) has room for one more timer of `table`.
async fn room(c: &mut Conn, cols: &[(&'static str, Arg)], table: &str, max: i64) -> Result<()> {
    let Some(("tenant_id", Arg::Int(t))) = cols.first().map(|(k, v)| (*k, v)) else {
        return Ok(());
    };
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM {table} WHERE tenant_id = $1"
    ))
    .bind(*t)
    .fetch_one(&mut *c)
    .await?;
    if n >= max {
        return Err(Error::invalid(
            "tenant_id",
            format!("tenant {t} has {max} such timers already (the most a tenant may have)"),
        ));
    }
    Ok(())
}

pub struct PbxDayTimers;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DayTimerInput {
    #[serde(default, alias = "cluster")]
    #[schema(value_type = i64)]
    pub tenant_id: Value,
    /// `*` (default) or 1 … 31.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub datemonth: Value,
    /// `*` (default) or mon, tue, wed, thu, fri, sat, sun.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub dayofweek: Value,
    /// `*` (default) or jan … dec.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub month: Value,
    /// `*` (default) or HH:MM-HH:MM, the start before the end (the end minute not included).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub timespan: Value,
    #[serde(default, alias = "desc")]
    #[schema(value_type = Option<String>)]
    pub description: Value,
}

async fn day_cols(
    c: &mut Conn,
    actor: &Actor,
    i: DayTimerInput,
) -> Result<Vec<(&'static str, Arg)>> {
    let tenant = tenant_for(c, actor, tenant_id(&i.tenant_id)?).await?;
    let mut dates: Vec<String> = vec!["*".into()];
    dates.extend((1..=31).map(|d| d.to_string()));
    let dates: Vec<&str> = dates.iter().map(String::as_str).collect();
    // Every field's problem is gathered, so that one answer names them all.
    let mut p = Problems::default();
    let datemonth = p.value(match &i.datemonth {
        Value::Number(n) => one_of("datemonth", &Value::String(n.to_string()), &dates),
        v => one_of("datemonth", v, &dates),
    })?;
    let mut days = vec!["*"];
    days.extend(DAYS);
    let mut months = vec!["*"];
    months.extend(MONTHS);
    // In the order they were always checked: the time span before the day and month.
    let span = p
        .value(string("timespan", &i.timespan, 16))?
        .unwrap_or("*".into());
    if !p.names("timespan") {
        p.check(timespan("timespan", &span))?;
    }
    let dayofweek = p.value(one_of("dayofweek", &i.dayofweek, &days))?;
    let month = p.value(one_of("month", &i.month, &months))?;
    let description = p.value(string("description", &i.description, 255))?;
    p.finish()?;
    Ok(vec![
        ("tenant_id", Arg::Int(tenant.id)),
        ("reseller_id", Arg::Int(tenant.reseller_id)),
        ("datemonth", Arg::Text(datemonth.unwrap_or("*".into()))),
        ("dayofweek", Arg::Text(dayofweek.unwrap_or("*".into()))),
        ("month", Arg::Text(month.unwrap_or("*".into()))),
        ("timespan", Arg::Text(span)),
        ("description", Arg::opt_text(description)),
    ])
}

#[async_trait]
impl Resource for PbxDayTimers {
    const NAME: &'static str = "pbxdaytimers";
    const SUMMARY: &'static str = "PBX day timers: a tenant's open hours (recurring)";
    const NGCP: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("tenant_id", "the tenant"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["tenant_id"];
    type Repr = PbxDayTimer;
    type Input = DayTimerInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PbxDayTimer>, Option<i64>)> {
        let w = q.where_scoped(actor, &[], &["tenant_id", "reseller_id"])?;
        list_as(c, DAYTIMER_COLS, "pbx_daytimers", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PbxDayTimer>> {
        get_as(c, DAYTIMER_COLS, "pbx_daytimers", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: DayTimerInput) -> Result<Created> {
        let cols = day_cols(c, actor, i).await?;
        room(c, &cols, "pbx_daytimers", MAX_DAY_TIMERS).await?;
        Ok(save_row(c, "pbx_daytimers", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &PbxDayTimer,
        i: DayTimerInput,
    ) -> Result<()> {
        if tenant_id(&i.tenant_id)? != old.tenant_id {
            return Err(Error::invalid("tenant_id", "a timer keeps its tenant"));
        }
        let cols = day_cols(c, actor, i).await?;
        save_row(c, "pbx_daytimers", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &PbxDayTimer) -> Result<()> {
        delete_row(c, "pbx_daytimers", id).await
    }
    fn id(r: &PbxDayTimer) -> i64 {
        r.id
    }
    fn reseller_of(r: &PbxDayTimer) -> Option<i64> {
        Some(r.reseller_id)
    }
}

pub struct PbxHolidayTimers;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HolidayTimerInput {
    #[serde(default, alias = "cluster")]
    #[schema(value_type = i64)]
    pub tenant_id: Value,
    /// Where calls go meanwhile (a destination of the tenant); null: the closed route.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub route: Value,
    #[serde(default, alias = "desc")]
    #[schema(value_type = Option<String>)]
    pub description: Value,
    /// Start: seconds since 1970, 10 digits.
    #[serde(default)]
    #[schema(value_type = i64)]
    pub stime: Value,
    /// End: seconds since 1970, 10 digits, after the start.
    #[serde(default)]
    #[schema(value_type = i64)]
    pub etime: Value,
}

fn epoch(field: &str, v: &Value) -> Result<i64> {
    let s = required(field, digits(field, v, 10)?)?;
    if s.len() != 10 {
        return Err(Error::invalid(
            field,
            "must be 10 digits (seconds since 1970)",
        ));
    }
    s.parse()
        .map_err(|_| Error::invalid(field, "must be 10 digits"))
}

async fn holiday_cols(
    c: &mut Conn,
    actor: &Actor,
    i: HolidayTimerInput,
) -> Result<Vec<(&'static str, Arg)>> {
    let tenant = tenant_for(c, actor, tenant_id(&i.tenant_id)?).await?;
    let (s, e) = (epoch("stime", &i.stime)?, epoch("etime", &i.etime)?);
    if e <= s {
        return Err(Error::invalid("etime", "must be after stime"));
    }
    let route = match string("route", &i.route, 64)? {
        Some(r) if !r.trim().is_empty() => Some(destination(c, &tenant, "route", &r).await?),
        _ => None,
    };
    Ok(vec![
        ("tenant_id", Arg::Int(tenant.id)),
        ("reseller_id", Arg::Int(tenant.reseller_id)),
        ("route", Arg::opt_text(route)),
        (
            "description",
            Arg::opt_text(string("description", &i.description, 255)?),
        ),
        ("stime", Arg::Int(s)),
        ("etime", Arg::Int(e)),
    ])
}

#[async_trait]
impl Resource for PbxHolidayTimers {
    const NAME: &'static str = "pbxholidaytimers";
    const SUMMARY: &'static str = "PBX holiday timers: a tenant closed from one moment to another";
    const NGCP: bool = false;
    const FILTERS: &'static [(&'static str, &'static str)] = &[
        ("tenant_id", "the tenant"),
        ("reseller_id", "owning reseller"),
    ];
    const READ_ONLY: &'static [&'static str] =
        &["id", "reseller_id", "create_timestamp", "modify_timestamp"];
    const REQUIRED: &'static [&'static str] = &["tenant_id", "stime", "etime"];
    type Repr = PbxHolidayTimer;
    type Input = HolidayTimerInput;

    async fn list(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        q: &ListQuery,
    ) -> Result<(Vec<PbxHolidayTimer>, Option<i64>)> {
        let w = q.where_scoped(actor, &[], &["tenant_id", "reseller_id"])?;
        list_as(c, HOLIDAY_COLS, "pbx_holidaytimers", &w, &q.page).await
    }
    async fn load(c: &mut Conn, _: &App, id: i64, lock: bool) -> Result<Option<PbxHolidayTimer>> {
        get_as(c, HOLIDAY_COLS, "pbx_holidaytimers", id, lock).await
    }
    async fn create(c: &mut Conn, _: &App, actor: &Actor, i: HolidayTimerInput) -> Result<Created> {
        let cols = holiday_cols(c, actor, i).await?;
        room(c, &cols, "pbx_holidaytimers", MAX_HOLIDAYS).await?;
        Ok(save_row(c, "pbx_holidaytimers", None, cols).await?.into())
    }
    async fn update(
        c: &mut Conn,
        _: &App,
        actor: &Actor,
        id: i64,
        old: &PbxHolidayTimer,
        i: HolidayTimerInput,
    ) -> Result<()> {
        if tenant_id(&i.tenant_id)? != old.tenant_id {
            return Err(Error::invalid("tenant_id", "a timer keeps its tenant"));
        }
        let cols = holiday_cols(c, actor, i).await?;
        save_row(c, "pbx_holidaytimers", Some(id), cols).await?;
        Ok(())
    }
    async fn delete(c: &mut Conn, _: &App, _: &Actor, id: i64, _: &PbxHolidayTimer) -> Result<()> {
        delete_row(c, "pbx_holidaytimers", id).await
    }
    fn id(r: &PbxHolidayTimer) -> i64 {
        r.id
    }
    fn reseller_of(r: &PbxHolidayTimer) -> Option<i64> {
        Some(r.reseller_id)
    }
}
