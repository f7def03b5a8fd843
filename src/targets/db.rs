//! A SIP server's own database: reading the rows voxprov manages and applying differences.
//!
//! Kamailio and OpenSIPS keep their tables in SQLite, MySQL/MariaDB or PostgreSQL, so this is
//! the one place that writes three dialects: `?` or `$N` placeholders, and "now" for the
//! `last_modified` columns (SQLite Kamailio stores Julian-day numbers, not text).
//! Changes to one target go in one transaction: a batch lands whole or not at all.

use std::{str::FromStr, time::Duration};

use sqlx::{
    any::{AnyConnectOptions, AnyPoolOptions, AnyRow},
    AnyPool, ConnectOptions, Connection, Row,
};

use super::config::{db_url_for_sqlx, Driver, Layout};
use super::rows::{Actual, Col, Difference, Kind, Table, OPENSIPS_ROUTING, ROUTING};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Mysql,
    Postgres,
}

/// The most rows one multi-row insert carries (a subscriber row has five or six values, an
/// alias row four: at most 600 parameters, under every database's limit).
const INSERT_ROWS: usize = 100;

pub struct TargetDb {
    pool: AnyPool,
    dialect: Dialect,
    /// Routing tables the database lacks (created before carriers existed): not written.
    missing: std::sync::Mutex<std::collections::BTreeSet<Table>>,
}

/// What to read from a target: everything (a full load, check or repair), or the rows of some
/// identities, numbers and domains (an incremental batch).
pub enum Scope {
    All,
    Some {
        identities: Vec<(String, String)>,
        aliases: Vec<(String, String)>,
        domains: Vec<String>,
        /// The routing tables too (they are small: read whole).
        routing: bool,
    },
}

pub type DbResult<T> = std::result::Result<T, sqlx::Error>;

fn int(r: &AnyRow, i: usize) -> DbResult<i64> {
    r.try_get::<i64, _>(i)
        .or_else(|_| r.try_get::<i32, _>(i).map(i64::from))
        .or_else(|_| r.try_get::<i16, _>(i).map(i64::from))
}

fn text(r: &AnyRow, i: usize) -> DbResult<String> {
    Ok(r.try_get::<Option<String>, _>(i)?.unwrap_or_default())
}

/// What applying a diff left for the server's running state: its `domain` cache to reload,
/// and the registrations of subscribers whose rows went (locked, terminated, moved away) to
/// remove, so that nobody reaches them on a contact registered before.
/// Routing tables whose rows changed are reloaded (`reloads`: RPC and parameters); remote
/// registrations are refreshed or removed one record at a time.
#[derive(Debug, Default)]
pub struct Applied {
    pub domains: bool,
    pub unregister: std::collections::BTreeSet<(String, String)>,
    pub reloads: std::collections::BTreeSet<(&'static str, &'static [&'static str])>,
    /// uacreg l_uuids written (new or changed) and removed.
    pub reg_refresh: std::collections::BTreeSet<String>,
    pub reg_remove: std::collections::BTreeSet<String>,
    /// The tables whose rows changed.
    pub tables: std::collections::BTreeSet<Table>,
}

impl Applied {
    pub fn merge(&mut self, other: Applied) {
        self.domains |= other.domains;
        self.unregister.extend(other.unregister);
        self.reloads.extend(other.reloads);
        self.tables.extend(other.tables);
        for u in other.reg_refresh {
            self.reg_remove.remove(&u);
            self.reg_refresh.insert(u);
        }
        for u in other.reg_remove {
            self.reg_refresh.remove(&u);
            self.reg_remove.insert(u);
        }
    }
    pub fn is_empty(&self) -> bool {
        !self.domains
            && self.unregister.is_empty()
            && self.reloads.is_empty()
            && self.reg_refresh.is_empty()
            && self.reg_remove.is_empty()
            && self.tables.is_empty()
    }
}

/// Whether an error says the table is not there (a database created before the routing
/// tables existed).
fn no_such_table(e: &sqlx::Error) -> bool {
    let m = e.to_string().to_ascii_lowercase();
    m.contains("no such table") || m.contains("doesn't exist") || m.contains("does not exist")
}

/// One accounting row of a Kamailio running the shipped configuration (tables acc and
/// missed_calls, with its extra columns; see deploy/kamailio/README.md, "Call records").
#[derive(Debug, Clone)]
pub struct AccRow {
    pub id: i64,
    pub method: String,
    pub callid: String,
    pub from_tag: String,
    pub to_tag: String,
    pub sip_code: i64,
    pub sip_reason: String,
    pub src_user: String,
    pub src_domain: String,
    pub dst_ouser: String,
    /// The local subscriber the call was for (user@domain), before its contacts were looked up.
    pub dst_aor: String,
    pub dst_user: String,
    pub dst_domain: String,
    /// When the INVITE arrived: "<epoch s>.<µs>" (empty on BYEs).
    pub start_ts: String,
    pub trunk: String,
    /// When the row was written (the answer, the BYE, the failure), ms since 1970.
    pub at_ms: i64,
}

impl TargetDb {
    /// Accounting rows of `table` (acc or missed_calls) after `after`, in id order; none when
    /// the database has no such table (or not the shipped configuration's columns).
    pub async fn read_acc(&self, table: &str, after: i64, limit: i64) -> DbResult<Vec<AccRow>> {
        let int_type = match self.dialect {
            Dialect::Sqlite => "INTEGER",
            Dialect::Mysql => "SIGNED",
            Dialect::Postgres => "BIGINT",
        };
        let q = self.sql(&format!(
            "SELECT CAST(id AS {int_type}), method, callid, from_tag, to_tag, \
             CAST(sip_code AS {int_type}), sip_reason, \
             src_user, src_domain, dst_ouser, dst_aor, dst_user, dst_domain, start_ts, trunk, \
             CAST(time_sec AS {int_type}), CAST(time_usec AS {int_type}) \
             FROM {table} WHERE id > ? ORDER BY id LIMIT {limit}"
        ));
        let rows = match sqlx::query(&q).bind(after).fetch_all(&self.pool).await {
            Ok(r) => r,
            Err(e)
                if no_such_table(&e)
                    || e.to_string().contains("no such column")
                    || e.to_string().contains("Unknown column") =>
            {
                static WARNED: std::sync::Once = std::sync::Once::new();
                WARNED.call_once(|| {
                    tracing::warn!(error = %e, "a SIP server's database lacks the accounting columns of the shipped configuration: no call records from it (create the tables with deploy/kamailio/create-db.sh)");
                });
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        rows.iter()
            .map(|r| {
                Ok(AccRow {
                    id: int(r, 0)?,
                    method: text(r, 1)?,
                    callid: text(r, 2)?,
                    from_tag: text(r, 3)?,
                    to_tag: text(r, 4)?,
                    sip_code: int(r, 5).unwrap_or(0),
                    sip_reason: text(r, 6)?,
                    src_user: text(r, 7)?,
                    src_domain: text(r, 8)?,
                    dst_ouser: text(r, 9)?,
                    dst_aor: text(r, 10)?,
                    dst_user: text(r, 11)?,
                    dst_domain: text(r, 12)?,
                    start_ts: text(r, 13)?,
                    trunk: text(r, 14)?,
                    at_ms: int(r, 15)? * 1000 + int(r, 16)? / 1000,
                })
            })
            .collect()
    }

    pub async fn connect(url: &str) -> anyhow::Result<TargetDb> {
        sqlx::any::install_default_drivers();
        let u = db_url_for_sqlx(url).map_err(|e| anyhow::anyhow!("{e}"))?;
        let dialect = if u.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if u.starts_with("mysql:") {
            Dialect::Mysql
        } else {
            Dialect::Postgres
        };
        let opts = AnyConnectOptions::from_str(&u)?;
        // One direct connection first: a pool retries until its timeout and then reports
        // only "timed out", where the operator needs "connection refused" or "access denied".
        let probe = tokio::time::timeout(Duration::from_secs(5), opts.connect())
            .await
            .map_err(|_| anyhow::anyhow!("connecting timed out"))??;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(2)
            .min_connections(0)
            .acquire_timeout(Duration::from_secs(5))
            .idle_timeout(Duration::from_secs(60))
            .connect_with(opts)
            .await?;
        Ok(TargetDb {
            pool,
            dialect,
            missing: Default::default(),
        })
    }

    /// Drops the rows of tables the database lacks from `desired` (a database made before
    /// carriers existed): the rest is delivered, and the gap is logged.
    pub fn drop_missing(&self, name: &str, desired: &mut super::rows::Rows) {
        let missing = self.missing.lock().expect("missing lock").clone();
        if missing.is_empty() {
            return;
        }
        let before = desired.len();
        desired.retain(|(t, _), _| !missing.contains(t));
        if desired.len() != before {
            let names: Vec<&str> = missing.iter().map(|t| t.name()).collect();
            tracing::warn!(target = %name, tables = %names.join(", "),
                "the SIP server's database lacks these tables: carrier rows not written (create them, e.g. with deploy/kamailio/create-db.sh)");
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// `?` placeholders as the dialect wants them.
    fn sql(&self, s: &str) -> String {
        if self.dialect != Dialect::Postgres {
            return s.to_string();
        }
        let mut out = String::with_capacity(s.len() + 8);
        let mut n = 0;
        for ch in s.chars() {
            if ch == '?' {
                n += 1;
                out.push_str(&format!("${n}"));
            } else {
                out.push(ch);
            }
        }
        out
    }

    /// "Now" for a DATETIME column: Kamailio's db_sqlite reads Julian-day numbers, OpenSIPS's
    /// reads text.
    fn now(&self, driver: Driver) -> &'static str {
        match self.dialect {
            Dialect::Sqlite if driver == Driver::Kamailio => "julianday('now')",
            Dialect::Sqlite => "datetime('now')",
            Dialect::Mysql => "NOW()",
            Dialect::Postgres => "now()",
        }
    }

    /// The subscriber table's version from the target's `version` table, if it says.
    pub async fn detect_version(&self) -> DbResult<Option<i64>> {
        let row = sqlx::query(&self.sql("SELECT table_version FROM version WHERE table_name = ?"))
            .bind("subscriber")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| int(&r, 0)).transpose()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    fn in_list(n: usize) -> String {
        vec!["?"; n].join(", ")
    }

    /// Reads the managed rows in `scope`. `domains`: the domains this target's rows may be
    /// in (voxprov's, restricted to what it serves); rows elsewhere are not voxprov's.
    pub async fn read(
        &self,
        layout: &Layout,
        scope: &Scope,
        owned_domains: &[String],
        attrs: &[String],
    ) -> DbResult<Actual> {
        let mut out = Actual::new();
        // Rows read by identity and by alias may overlap: count each physical row once.
        let mut seen = std::collections::HashSet::new();
        let seen = &mut seen;
        let sub_cols = layout.subscriber_cols.join(", ");
        let owned: std::collections::BTreeSet<&str> =
            owned_domains.iter().map(String::as_str).collect();
        match scope {
            Scope::All => {
                let q = format!("SELECT id, username, domain, {sub_cols} FROM subscriber");
                for r in sqlx::query(&q).fetch_all(&self.pool).await? {
                    push_sub(&mut out, seen, layout, &r, &owned)?;
                }
                for r in sqlx::query(
                    "SELECT id, alias_username, alias_domain, username, domain FROM dbaliases",
                )
                .fetch_all(&self.pool)
                .await?
                {
                    push_alias(&mut out, seen, &r, &owned)?;
                }
                if !attrs.is_empty() {
                    let q = self.sql(&format!(
                        "SELECT id, username, domain, attribute, type, value, uuid FROM usr_preferences WHERE attribute IN ({})",
                        Self::in_list(attrs.len())
                    ));
                    let mut qq = sqlx::query(&q);
                    for a in attrs {
                        qq = qq.bind(a.as_str());
                    }
                    for r in qq.fetch_all(&self.pool).await? {
                        push_pref(&mut out, seen, &r, &owned)?;
                    }
                }
                for r in sqlx::query("SELECT id, domain FROM domain")
                    .fetch_all(&self.pool)
                    .await?
                {
                    let d = text(&r, 1)?;
                    if owned.contains(d.as_str()) {
                        out.entry((Table::Domain, vec![d]))
                            .or_default()
                            .push(Vec::new());
                    }
                }
                if layout.carriers {
                    self.read_routing(layout.driver, &mut out).await?;
                }
            }
            Scope::Some {
                identities,
                aliases,
                domains,
                routing,
            } => {
                if *routing && layout.carriers {
                    self.read_routing(layout.driver, &mut out).await?;
                }
                let mut by_domain: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
                for (u, d) in identities {
                    by_domain.entry(d.as_str()).or_default().push(u.as_str());
                }
                for (d, users) in &by_domain {
                    for chunk in users.chunks(200) {
                        let inl = Self::in_list(chunk.len());
                        let q = self.sql(&format!(
                            "SELECT id, username, domain, {sub_cols} FROM subscriber WHERE domain = ? AND username IN ({inl})"
                        ));
                        let mut qq = sqlx::query(&q).bind(*d);
                        for u in chunk {
                            qq = qq.bind(*u);
                        }
                        for r in qq.fetch_all(&self.pool).await? {
                            push_sub(&mut out, seen, layout, &r, &owned)?;
                        }
                        let q = self.sql(&format!(
                            "SELECT id, alias_username, alias_domain, username, domain FROM dbaliases WHERE domain = ? AND username IN ({inl})"
                        ));
                        let mut qq = sqlx::query(&q).bind(*d);
                        for u in chunk {
                            qq = qq.bind(*u);
                        }
                        for r in qq.fetch_all(&self.pool).await? {
                            push_alias(&mut out, seen, &r, &owned)?;
                        }
                        if !attrs.is_empty() {
                            let q = self.sql(&format!(
                                "SELECT id, username, domain, attribute, type, value, uuid FROM usr_preferences \
                                 WHERE domain = ? AND username IN ({inl}) AND attribute IN ({})",
                                Self::in_list(attrs.len())
                            ));
                            let mut qq = sqlx::query(&q).bind(*d);
                            for u in chunk {
                                qq = qq.bind(*u);
                            }
                            for a in attrs {
                                qq = qq.bind(a.as_str());
                            }
                            for r in qq.fetch_all(&self.pool).await? {
                                push_pref(&mut out, seen, &r, &owned)?;
                            }
                        }
                    }
                }
                let mut alias_by_domain: std::collections::BTreeMap<&str, Vec<&str>> =
                    Default::default();
                for (a, d) in aliases {
                    alias_by_domain
                        .entry(d.as_str())
                        .or_default()
                        .push(a.as_str());
                }
                for (d, al) in &alias_by_domain {
                    for chunk in al.chunks(200) {
                        let q = self.sql(&format!(
                            "SELECT id, alias_username, alias_domain, username, domain FROM dbaliases WHERE alias_domain = ? AND alias_username IN ({})",
                            Self::in_list(chunk.len())
                        ));
                        let mut qq = sqlx::query(&q).bind(*d);
                        for a in chunk {
                            qq = qq.bind(*a);
                        }
                        for r in qq.fetch_all(&self.pool).await? {
                            push_alias(&mut out, seen, &r, &owned)?;
                        }
                    }
                }
                if !domains.is_empty() {
                    let q = self.sql(&format!(
                        "SELECT id, domain FROM domain WHERE domain IN ({})",
                        Self::in_list(domains.len())
                    ));
                    let mut qq = sqlx::query(&q);
                    for d in domains {
                        qq = qq.bind(d.as_str());
                    }
                    for r in qq.fetch_all(&self.pool).await? {
                        // A domain voxprov no longer knows is still in scope here: it was
                        // named by a change (deleted), so its row is voxprov's to remove.
                        if seen.insert((Table::Domain, int(&r, 0)?)) {
                            out.entry((Table::Domain, vec![text(&r, 1)?]))
                                .or_default()
                                .push(Vec::new());
                        }
                    }
                }
            }
        }
        Ok(out)
    }

    /// Applies the differences in one transaction. Returns whether the `domain` table changed
    /// (the SIP server caches it and needs a reload).
    pub async fn apply(&self, layout: &Layout, diffs: &[Difference]) -> DbResult<Applied> {
        let mut applied = Applied::default();
        if diffs.is_empty() {
            return Ok(applied);
        }
        let mut tx = self.pool.begin().await?;
        // Every removal first, then every insertion: a row whose key moved (an lcr rule
        // renumbered) must leave before its successor arrives, whatever order the keys sort in.
        for d in diffs {
            let t = d.table;
            applied.tables.insert(t);
            applied.domains |= t == Table::Domain;
            if let Some(spec) = t.spec() {
                if let Some(r) = spec.reload {
                    applied.reloads.insert(r);
                }
            }
            if t == Table::Uacreg {
                let uuid = d.key_vals[0].clone();
                if d.kind == Kind::Extra {
                    applied.reg_remove.insert(uuid);
                } else {
                    applied.reg_refresh.insert(uuid);
                }
            }
            if t == Table::Subscriber && d.kind == Kind::Extra && d.key_vals.len() >= 2 {
                applied
                    .unregister
                    .insert((d.key_vals[0].clone(), d.key_vals[1].clone()));
            }
            if matches!(d.kind, Kind::Extra | Kind::Differs) {
                let cols = t.key_cols();
                // A key column written as NULL for "" is compared as "" (NULL = '' is never
                // true: the row could not be removed).
                let nullable = |i: usize| {
                    t.spec()
                        .is_some_and(|s| s.keys.get(i).is_some_and(|(_, k)| *k == Col::NullText))
                };
                let mut cond = cols
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        if nullable(i) {
                            format!("COALESCE({c}, '') = ?")
                        } else {
                            format!("{c} = ?")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(" AND ");
                if let Some(spec) = t.spec() {
                    cond = format!("{cond} AND {}", spec.owned);
                }
                let q = self.sql(&format!("DELETE FROM {} WHERE {cond}", t.name()));
                let mut qq = sqlx::query(&q);
                for (i, v) in d.key_vals.iter().enumerate() {
                    let int = match t.spec() {
                        Some(spec) => spec.keys[i].1 == Col::Int,
                        None => t == Table::UsrPreferences && i == 3,
                    };
                    qq = if int {
                        qq.bind(v.parse::<i64>().unwrap_or(0))
                    } else {
                        qq.bind(v.as_str())
                    };
                }
                qq.execute(&mut *tx).await?;
            }
        }
        // Subscriber and alias rows (most of what a batch writes) go in multi-row inserts;
        // the rest one by one.
        let mut subs: Vec<Vec<&str>> = Vec::new();
        let mut aliases: Vec<Vec<&str>> = Vec::new();
        for d in diffs {
            if let (Kind::Missing | Kind::Differs, Some((key, vals))) = (d.kind, &d.want) {
                match d.table {
                    Table::Subscriber => {
                        subs.push(key.iter().chain(vals).map(String::as_str).collect())
                    }
                    Table::Dbaliases => {
                        aliases.push(key.iter().chain(vals).map(String::as_str).collect())
                    }
                    _ => self.insert(&mut tx, layout, d.table, key, vals).await?,
                }
            }
        }
        let sub_cols = format!("username, domain, {}", layout.subscriber_cols.join(", "));
        self.insert_many(&mut tx, "subscriber", &sub_cols, &subs)
            .await?;
        self.insert_many(
            &mut tx,
            "dbaliases",
            "alias_username, alias_domain, username, domain",
            &aliases,
        )
        .await?;
        tx.commit().await?;
        Ok(applied)
    }

    /// Inserts text rows into `table` (`cols`: as many as each row has values), up to
    /// [`INSERT_ROWS`] a statement.
    async fn insert_many(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        table: &str,
        cols: &str,
        rows: &[Vec<&str>],
    ) -> DbResult<()> {
        for chunk in rows.chunks(INSERT_ROWS) {
            let one = format!("({})", Self::in_list(chunk[0].len()));
            let q = self.sql(&format!(
                "INSERT INTO {table} ({cols}) VALUES {}",
                vec![one.as_str(); chunk.len()].join(", ")
            ));
            let mut qq = sqlx::query(&q);
            for v in chunk.iter().flatten() {
                qq = qq.bind(*v);
            }
            qq.execute(&mut **tx).await?;
        }
        Ok(())
    }

    /// Reads voxprov's rows of every routing table; a table the database lacks reads empty
    /// (and a row voxprov wants there fails to apply, naming it).
    async fn read_routing(&self, driver: Driver, out: &mut Actual) -> DbResult<()> {
        let tables: &[Table] = match driver {
            Driver::Kamailio => &ROUTING,
            Driver::Opensips => &OPENSIPS_ROUTING,
        };
        // Integers are read as one signed 64-bit type: MySQL's TINYINT UNSIGNED (lcr's
        // transport) is a type sqlx's Any driver does not map.
        let int_type = match self.dialect {
            Dialect::Sqlite => "INTEGER",
            Dialect::Mysql => "SIGNED",
            Dialect::Postgres => "BIGINT",
        };
        for &t in tables {
            let Some(spec) = t.spec() else { continue };
            let cols: Vec<String> = spec
                .keys
                .iter()
                .chain(spec.values)
                .map(|(c, k)| match k {
                    Col::Int => format!("CAST({c} AS {int_type})"),
                    _ => (*c).to_string(),
                })
                .collect();
            let q = format!(
                "SELECT {} FROM {} WHERE {}",
                cols.join(", "),
                t.name(),
                spec.owned
            );
            let rows = match sqlx::query(&q).fetch_all(&self.pool).await {
                Ok(r) => r,
                Err(e) if no_such_table(&e) => {
                    self.missing.lock().expect("missing lock").insert(t);
                    continue;
                }
                Err(e) => return Err(e),
            };
            for r in rows {
                let mut vals = Vec::with_capacity(cols.len());
                for (i, (_, kind)) in spec.keys.iter().chain(spec.values).enumerate() {
                    vals.push(match kind {
                        Col::Int => r
                            .try_get::<Option<i64>, _>(i)?
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        _ => text(&r, i)?,
                    });
                }
                let values = vals.split_off(spec.keys.len());
                out.entry((t, vals)).or_default().push(values);
            }
        }
        Ok(())
    }

    async fn insert(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        layout: &Layout,
        t: Table,
        key: &[String],
        vals: &[String],
    ) -> DbResult<()> {
        if let Some(spec) = t.spec() {
            let names: Vec<&str> = spec
                .fixed
                .iter()
                .map(|(c, _)| *c)
                .chain(spec.keys.iter().chain(spec.values).map(|(c, _)| *c))
                .collect();
            let ph: Vec<&str> = spec
                .fixed
                .iter()
                .map(|(_, v)| *v)
                .chain(std::iter::repeat_n(
                    "?",
                    spec.keys.len() + spec.values.len(),
                ))
                .collect();
            let q = self.sql(&format!(
                "INSERT INTO {} ({}) VALUES ({})",
                t.name(),
                names.join(", "),
                ph.join(", ")
            ));
            let mut qq = sqlx::query(&q);
            for ((_, kind), v) in spec
                .keys
                .iter()
                .chain(spec.values)
                .zip(key.iter().chain(vals))
            {
                qq = match kind {
                    Col::Int => qq.bind(v.parse::<i64>().unwrap_or(0)),
                    Col::NullText if v.is_empty() => qq.bind(None::<String>),
                    _ => qq.bind(v.as_str()),
                };
            }
            qq.execute(&mut **tx).await?;
            return Ok(());
        }
        let now = self.now(layout.driver);
        let q = match t {
            Table::Domain => match layout.driver {
                Driver::Kamailio => {
                    format!("INSERT INTO domain (domain, did, last_modified) VALUES (?, ?, {now})")
                }
                Driver::Opensips => {
                    format!("INSERT INTO domain (domain, last_modified) VALUES (?, {now})")
                }
            },
            Table::UsrPreferences => format!(
                "INSERT INTO usr_preferences (username, domain, attribute, type, value, uuid, last_modified) \
                 VALUES (?, ?, ?, ?, ?, ?, {now})"
            ),
            _ => unreachable!("routing tables are written above, subscribers and aliases in bulk"),
        };
        let q = self.sql(&q);
        let mut qq = sqlx::query(&q);
        match t {
            Table::Domain => {
                qq = qq.bind(key[0].as_str());
                if layout.driver == Driver::Kamailio {
                    qq = qq.bind(key[0].as_str());
                }
            }
            _ => {
                // usr_preferences
                qq = qq
                    .bind(key[0].as_str())
                    .bind(key[1].as_str())
                    .bind(key[2].as_str())
                    .bind(key[3].parse::<i64>().unwrap_or(0))
                    .bind(key[4].as_str())
                    .bind(vals[0].as_str());
            }
        }
        qq.execute(&mut **tx).await?;
        Ok(())
    }
}

type Seen = std::collections::HashSet<(Table, i64)>;
type Owned<'a> = std::collections::BTreeSet<&'a str>;

fn push_sub(
    out: &mut Actual,
    seen: &mut Seen,
    layout: &Layout,
    r: &AnyRow,
    owned: &Owned,
) -> DbResult<()> {
    let (u, d) = (text(r, 1)?, text(r, 2)?);
    if !owned.contains(d.as_str()) || !seen.insert((Table::Subscriber, int(r, 0)?)) {
        return Ok(());
    }
    let vals = (0..layout.subscriber_cols.len())
        .map(|i| text(r, 3 + i))
        .collect::<DbResult<Vec<_>>>()?;
    out.entry((Table::Subscriber, vec![u, d]))
        .or_default()
        .push(vals);
    Ok(())
}

fn push_alias(out: &mut Actual, seen: &mut Seen, r: &AnyRow, owned: &Owned) -> DbResult<()> {
    let (a, ad, u, d) = (text(r, 1)?, text(r, 2)?, text(r, 3)?, text(r, 4)?);
    if (!owned.contains(ad.as_str()) && !owned.contains(d.as_str()))
        || !seen.insert((Table::Dbaliases, int(r, 0)?))
    {
        return Ok(());
    }
    out.entry((Table::Dbaliases, vec![a, ad]))
        .or_default()
        .push(vec![u, d]);
    Ok(())
}

fn push_pref(out: &mut Actual, seen: &mut Seen, r: &AnyRow, owned: &Owned) -> DbResult<()> {
    let d = text(r, 2)?;
    if !owned.contains(d.as_str()) || !seen.insert((Table::UsrPreferences, int(r, 0)?)) {
        return Ok(());
    }
    let key = vec![
        text(r, 1)?,
        d,
        text(r, 3)?,
        int(r, 4)?.to_string(),
        text(r, 5)?,
    ];
    out.entry((Table::UsrPreferences, key))
        .or_default()
        .push(vec![text(r, 6)?]);
    Ok(())
}
