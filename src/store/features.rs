//! Call forward sets and mappings, and subscriber/domain preferences.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;
use sqlx::{FromRow, Row};

use super::{bind_all, insert_id, list_as, now, placeholders, Arg, Conn, Flag, Page, Where};
use crate::error::{Error, Result};
use crate::features::callforwards::{self, CfType, Delivered, Destination, TimeEntry};
use crate::features::prefs;

/// Destination sets and time sets share one shape: a named JSON list of a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetKind {
    Destinations,
    Times,
}

impl SetKind {
    fn table(self) -> &'static str {
        match self {
            SetKind::Destinations => "cf_destination_sets",
            SetKind::Times => "cf_time_sets",
        }
    }
    fn column(self) -> &'static str {
        match self {
            SetKind::Destinations => "destinations",
            SetKind::Times => "times",
        }
    }
    fn mapping_column(self) -> &'static str {
        match self {
            SetKind::Destinations => "destination_set_id",
            SetKind::Times => "time_set_id",
        }
    }
    /// The set joined with its subscriber's reseller (for scoping); filters name columns of `v`.
    pub fn from(self) -> String {
        format!(
            "(SELECT x.id, x.subscriber_id, x.name, x.{} AS body, x.create_timestamp, x.modify_timestamp, \
             s.reseller_id AS reseller_id FROM {} x JOIN subscribers s ON s.id = x.subscriber_id) v",
            self.column(),
            self.table()
        )
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct SetRow {
    pub id: i64,
    pub subscriber_id: i64,
    pub name: String,
    /// JSON list.
    pub body: String,
    pub create_timestamp: String,
    pub modify_timestamp: String,
    pub reseller_id: i64,
}

const SET_COLS: &str =
    "id, subscriber_id, name, body, create_timestamp, modify_timestamp, reseller_id";

pub async fn get_set(c: &mut Conn, kind: SetKind, id: i64, lock: bool) -> Result<Option<SetRow>> {
    super::get_from_view(c, kind.table(), SET_COLS, &kind.from(), id, lock).await
}

pub async fn list_sets(
    c: &mut Conn,
    kind: SetKind,
    w: &Where,
    page: &Page,
) -> Result<(Vec<SetRow>, Option<i64>)> {
    list_as(c, SET_COLS, &kind.from(), w, page).await
}

pub async fn set_id_by_name(
    c: &mut Conn,
    kind: SetKind,
    subscriber_id: i64,
    name: &str,
) -> Result<Option<i64>> {
    let sql = format!(
        "SELECT id FROM {} WHERE subscriber_id = $1 AND name = $2",
        kind.table()
    );
    let row = sqlx::query(&sql)
        .bind(subscriber_id)
        .bind(name.to_string())
        .fetch_optional(&mut *c)
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

pub async fn insert_set(
    c: &mut Conn,
    kind: SetKind,
    subscriber_id: i64,
    name: &str,
    body: &str,
) -> Result<i64> {
    let sql = format!(
        "INSERT INTO {} (subscriber_id, name, {}, create_timestamp, modify_timestamp) VALUES ($1, $2, $3, $4, $4) RETURNING id",
        kind.table(),
        kind.column()
    );
    insert_id(
        sqlx::query(&sql)
            .bind(subscriber_id)
            .bind(name.to_string())
            .bind(body.to_string())
            .bind(now()),
        c,
    )
    .await
}

pub async fn update_set(
    c: &mut Conn,
    kind: SetKind,
    id: i64,
    name: &str,
    body: &str,
) -> Result<()> {
    let sql = format!(
        "UPDATE {} SET name = $1, {} = $2, modify_timestamp = $3 WHERE id = $4",
        kind.table(),
        kind.column()
    );
    sqlx::query(&sql)
        .bind(name.to_string())
        .bind(body.to_string())
        .bind(now())
        .bind(id)
        .execute(&mut *c)
        .await?;
    Ok(())
}

/// Subscribers whose mappings use this set.
pub async fn set_users(c: &mut Conn, kind: SetKind, id: i64) -> Result<Vec<i64>> {
    let sql = format!(
        "SELECT DISTINCT subscriber_id FROM cf_mappings WHERE {} = $1",
        kind.mapping_column()
    );
    let rows = sqlx::query(&sql).bind(id).fetch_all(&mut *c).await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn delete_set(c: &mut Conn, kind: SetKind, id: i64) -> Result<()> {
    if !set_users(c, kind, id).await?.is_empty() {
        return Err(Error::Locked(
            "the set is used by a call forward mapping; change the mapping first (/api/cfmappings/)"
                .to_string(),
        ));
    }
    super::delete_row(c, kind.table(), id).await
}

/// Removes a subscriber's unnamed quick sets (`quickset_*`) no mapping uses any more.
pub async fn drop_unused_quicksets(c: &mut Conn, subscriber_id: i64) -> Result<()> {
    for kind in [SetKind::Destinations, SetKind::Times] {
        let sql = format!(
            "DELETE FROM {t} WHERE subscriber_id = $1 AND name LIKE 'quickset\\_%' ESCAPE '\\' \
             AND id NOT IN (SELECT {m} FROM cf_mappings WHERE subscriber_id = $1 AND {m} IS NOT NULL)",
            t = kind.table(),
            m = kind.mapping_column()
        );
        sqlx::query(&sql)
            .bind(subscriber_id)
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

// --- mappings ------------------------------------------------------------------------------

#[derive(Debug, Clone, FromRow)]
pub struct MappingRow {
    pub subscriber_id: i64,
    pub cf_type: String,
    pub position: i64,
    pub destination_set_id: i64,
    pub destination_set: String,
    pub destinations: String,
    pub time_set_id: Option<i64>,
    pub time_set: Option<String>,
    pub times: Option<String>,
    pub sources: String,
    pub sources_mode: String,
    pub bnumbers: String,
    pub bnumbers_mode: String,
    #[sqlx(try_from = "i64")]
    pub enabled: Flag,
}

impl MappingRow {
    pub fn cf_type(&self) -> CfType {
        CfType::parse("type", &self.cf_type).unwrap_or(CfType::Cfu)
    }
    pub fn destinations(&self) -> Vec<Destination> {
        serde_json::from_str(&self.destinations).unwrap_or_default()
    }
    pub fn times(&self) -> Vec<TimeEntry> {
        self.times
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }
    pub fn sources(&self) -> Vec<String> {
        serde_json::from_str(&self.sources).unwrap_or_default()
    }
    pub fn bnumbers(&self) -> Vec<String> {
        serde_json::from_str(&self.bnumbers).unwrap_or_default()
    }
}

/// The mappings of these subscribers, in subscriber, type and position order.
pub async fn mappings_of(c: &mut Conn, ids: &[i64]) -> Result<Vec<MappingRow>> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT m.subscriber_id, m.type AS cf_type, m.position, m.destination_set_id, ds.name AS destination_set, \
             ds.destinations, m.time_set_id, ts.name AS time_set, ts.times, m.sources, m.sources_mode, m.bnumbers, \
             m.bnumbers_mode, m.enabled FROM cf_mappings m JOIN cf_destination_sets ds ON ds.id = m.destination_set_id \
             LEFT JOIN cf_time_sets ts ON ts.id = m.time_set_id WHERE m.subscriber_id IN ({}) \
             ORDER BY m.subscriber_id, m.type, m.position",
            placeholders(1, chunk.len())
        );
        let args: Vec<Arg> = chunk.iter().map(|i| Arg::Int(*i)).collect();
        for r in bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *c)
            .await?
        {
            out.push(MappingRow::from_row(&r)?);
        }
    }
    Ok(out)
}

pub struct MappingFields {
    pub cf_type: CfType,
    pub destination_set_id: i64,
    pub time_set_id: Option<i64>,
    pub sources: Vec<String>,
    pub sources_mode: String,
    pub bnumbers: Vec<String>,
    pub bnumbers_mode: String,
    pub enabled: bool,
}

/// Replaces all of a subscriber's mappings.
pub async fn replace_mappings(c: &mut Conn, subscriber_id: i64, m: &[MappingFields]) -> Result<()> {
    sqlx::query("DELETE FROM cf_mappings WHERE subscriber_id = $1")
        .bind(subscriber_id)
        .execute(&mut *c)
        .await?;
    for (pos, f) in m.iter().enumerate() {
        sqlx::query(
            "INSERT INTO cf_mappings (subscriber_id, type, position, destination_set_id, time_set_id, sources, sources_mode, \
             bnumbers, bnumbers_mode, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(subscriber_id)
        .bind(f.cf_type.as_str())
        .bind(pos as i64)
        .bind(f.destination_set_id)
        .bind(f.time_set_id)
        .bind(serde_json::to_string(&f.sources).map_err(Error::internal)?)
        .bind(f.sources_mode.clone())
        .bind(serde_json::to_string(&f.bnumbers).map_err(Error::internal)?)
        .bind(f.bnumbers_mode.clone())
        .bind(Flag::int(f.enabled))
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

// --- preferences ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
pub enum PrefOwner {
    Subscriber,
    Customer,
    Domain,
}

impl PrefOwner {
    fn table(self) -> (&'static str, &'static str) {
        match self {
            PrefOwner::Subscriber => ("subscriber_preferences", "subscriber_id"),
            PrefOwner::Customer => ("customer_preferences", "customer_id"),
            PrefOwner::Domain => ("domain_preferences", "domain_id"),
        }
    }
}

pub async fn prefs_of(
    c: &mut Conn,
    owner: PrefOwner,
    ids: &[i64],
) -> Result<HashMap<i64, BTreeMap<String, Value>>> {
    let (table, col) = owner.table();
    let mut out: HashMap<i64, BTreeMap<String, Value>> = HashMap::new();
    for chunk in ids.chunks(500) {
        let sql = format!(
            "SELECT {col}, name, value FROM {table} WHERE {col} IN ({})",
            placeholders(1, chunk.len())
        );
        let args: Vec<Arg> = chunk.iter().map(|i| Arg::Int(*i)).collect();
        for r in bind_all(sqlx::query(&sql), &args)
            .fetch_all(&mut *c)
            .await?
        {
            let v: String = r.try_get(2)?;
            out.entry(r.try_get(0)?).or_default().insert(
                r.try_get(1)?,
                serde_json::from_str(&v).unwrap_or(Value::Null),
            );
        }
    }
    Ok(out)
}

pub async fn replace_prefs(
    c: &mut Conn,
    owner: PrefOwner,
    id: i64,
    prefs: &BTreeMap<String, Value>,
) -> Result<()> {
    let (table, col) = owner.table();
    sqlx::query(&format!("DELETE FROM {table} WHERE {col} = $1"))
        .bind(id)
        .execute(&mut *c)
        .await?;
    for (name, v) in prefs {
        sqlx::query(&format!(
            "INSERT INTO {table} ({col}, name, value) VALUES ($1, $2, $3)"
        ))
        .bind(id)
        .bind(name.clone())
        .bind(v.to_string())
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// Sets or removes one preference (call forwards keep `ringtimeout` here).
pub async fn set_pref(
    c: &mut Conn,
    owner: PrefOwner,
    id: i64,
    name: &str,
    value: Option<&Value>,
) -> Result<()> {
    let (table, col) = owner.table();
    sqlx::query(&format!(
        "DELETE FROM {table} WHERE {col} = $1 AND name = $2"
    ))
    .bind(id)
    .bind(name.to_string())
    .execute(&mut *c)
    .await?;
    if let Some(v) = value {
        sqlx::query(&format!(
            "INSERT INTO {table} ({col}, name, value) VALUES ($1, $2, $3)"
        ))
        .bind(id)
        .bind(name.to_string())
        .bind(v.to_string())
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// The usr_preferences rows of these subscribers (id, domain id, customer id): their forwards
/// and their effective preferences (their own, else their customer's, else their domain's).
pub async fn delivery_attributes(
    c: &mut Conn,
    subs: &[(i64, i64, i64)],
) -> Result<HashMap<i64, Vec<(String, String)>>> {
    let ids: Vec<i64> = subs.iter().map(|(s, _, _)| *s).collect();
    let distinct = |mut v: Vec<i64>| {
        v.sort_unstable();
        v.dedup();
        v
    };
    let domain_ids = distinct(subs.iter().map(|(_, d, _)| *d).collect());
    let customer_ids = distinct(subs.iter().map(|(_, _, cu)| *cu).collect());
    let own = prefs_of(c, PrefOwner::Subscriber, &ids).await?;
    let cust = prefs_of(c, PrefOwner::Customer, &customer_ids).await?;
    let dom = prefs_of(c, PrefOwner::Domain, &domain_ids).await?;
    let mut maps: HashMap<i64, Vec<MappingRow>> = HashMap::new();
    for m in mappings_of(c, &ids).await? {
        maps.entry(m.subscriber_id).or_default().push(m);
    }
    let mut out = HashMap::new();
    for (sid, did, cid) in subs {
        let mut effective = dom.get(did).cloned().unwrap_or_default();
        if let Some(p) = cust.get(cid) {
            effective.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        if let Some(p) = own.get(sid) {
            effective.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let mut attrs = Vec::new();
        if let Some(ms) = maps.get(sid) {
            let parsed: Vec<(CfType, Vec<Destination>, Vec<TimeEntry>, bool)> = ms
                .iter()
                .filter(|m| m.enabled.0)
                .map(|m| {
                    (
                        m.cf_type(),
                        m.destinations(),
                        m.times(),
                        !m.sources().is_empty() || !m.bnumbers().is_empty(),
                    )
                })
                .collect();
            let delivered: Vec<Delivered> = parsed
                .iter()
                .map(|(t, d, tm, cond)| Delivered {
                    cf_type: *t,
                    destinations: d,
                    times: tm,
                    conditional: *cond,
                })
                .collect();
            callforwards::attributes(&delivered, &mut attrs);
        }
        prefs::attributes(&effective, &mut attrs);
        if !attrs.is_empty() {
            out.insert(*sid, attrs);
        }
    }
    Ok(out)
}

/// The `lock` preference is the subscriber's lock level.
pub async fn set_lock(c: &mut Conn, subscriber_id: i64, lock: i64) -> Result<()> {
    sqlx::query("UPDATE subscribers SET lock_level = $1, modify_timestamp = $2 WHERE id = $3 AND lock_level <> $1")
        .bind(lock)
        .bind(now())
        .bind(subscriber_id)
        .execute(&mut *c)
        .await?;
    Ok(())
}
