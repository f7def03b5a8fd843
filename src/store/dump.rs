//! A logical copy of voxprov's own tables, the same way on both databases: each row as a JSON
//! object (binary columns as hex) read inside one snapshot, and written back by column name
//! into a database migrated by this binary. Backups, restores and snapshots are made of it;
//! the file around it is [`crate::app::backup`]'s.

use sqlx::Row;

use super::{Conn, Store};
use crate::config::DbKind;
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Int,
    Real,
    Text,
    Blob,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Column {
    pub name: String,
    pub kind: Kind,
    /// The database's own type name (PostgreSQL casts to it on the way back).
    #[serde(skip)]
    pub sql_type: String,
}

#[derive(Debug, Clone)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
}

fn q(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn kind_of(sql_type: &str) -> Kind {
    let t = sql_type.to_ascii_lowercase();
    if t.contains("int") {
        Kind::Int
    } else if t.contains("real")
        || t.contains("doub")
        || t.contains("floa")
        || t.contains("numeric")
    {
        Kind::Real
    } else if t.contains("blob") || t.contains("bytea") {
        Kind::Blob
    } else {
        Kind::Text
    }
}

/// The highest schema version this binary's migrations know.
pub fn known_schema_version(kind: &DbKind) -> i64 {
    let m = match kind {
        DbKind::Sqlite => &super::SQLITE_MIGRATOR,
        DbKind::Postgres => &super::POSTGRES_MIGRATOR,
    };
    m.iter().map(|m| m.version).max().unwrap_or(0)
}

impl Store {
    pub fn known_schema_version(&self) -> i64 {
        known_schema_version(&self.kind)
    }
}

/// The schema version the database is at (0: never migrated).
pub async fn schema_version(c: &mut Conn) -> Result<i64> {
    let v: Option<i64> = sqlx::query("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(&mut *c)
        .await
        .ok()
        .and_then(|r| r.try_get(0).ok());
    Ok(v.unwrap_or(0))
}

/// Every table of voxprov's, a table after those it refers to.
/// A running installation's own state rather than its data: sessions, failure counters,
/// leases. Not backed up (a restored database starts with no one logged in and no one
/// banned); sessions go with their admins when those are replaced.
const RUNTIME: &[&str] = &["ui_sessions", "strikes", "leases", "lease_history"];

pub async fn tables(c: &mut Conn, kind: &DbKind) -> Result<Vec<Table>> {
    let names: Vec<String> = match kind {
        DbKind::Sqlite => sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             AND name <> '_sqlx_migrations' ORDER BY rowid",
        ),
        DbKind::Postgres => sqlx::query(
            "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind = 'r' AND n.nspname = current_schema() AND c.relname <> '_sqlx_migrations' ORDER BY c.oid",
        ),
    }
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| r.try_get(0))
    .collect::<std::result::Result<_, _>>()?;
    let mut all = Vec::new();
    for name in names.iter().filter(|n| !RUNTIME.contains(&n.as_str())) {
        let (cols_sql, refs_sql) = match kind {
            DbKind::Sqlite => (
                "SELECT name, type FROM pragma_table_info($1) ORDER BY cid",
                "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list($1)",
            ),
            DbKind::Postgres => (
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
                 WHERE a.attrelid = to_regclass(quote_ident($1)) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                "SELECT DISTINCT confrelid::regclass::text FROM pg_constraint \
                 WHERE contype = 'f' AND conrelid = to_regclass(quote_ident($1))",
            ),
        };
        let columns = sqlx::query(cols_sql)
            .bind(name)
            .fetch_all(&mut *c)
            .await?
            .iter()
            .map(|r| {
                let sql_type: String = r.try_get(1)?;
                Ok(Column {
                    name: r.try_get(0)?,
                    kind: kind_of(&sql_type),
                    sql_type,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<String> = sqlx::query(refs_sql)
            .bind(name)
            .fetch_all(&mut *c)
            .await?
            .iter()
            .filter_map(|r| r.try_get::<String, _>(0).ok())
            .map(|s| s.trim_matches('"').to_string())
            .collect();
        all.push((
            Table {
                name: name.clone(),
                columns,
            },
            refs,
        ));
    }
    // Referenced tables first; a cycle (none today) falls back to creation order.
    let mut ordered: Vec<Table> = Vec::new();
    while !all.is_empty() {
        let pos = all
            .iter()
            .position(|(t, refs)| {
                refs.iter().all(|r| {
                    r == &t.name || ordered.iter().any(|o| &o.name == r) || !names.contains(r)
                })
            })
            .unwrap_or(0);
        ordered.push(all.remove(pos).0);
    }
    Ok(ordered)
}

/// The statement that reads `t`'s rows, each as one JSON object text, in id order.
pub fn select_rows(kind: &DbKind, t: &Table) -> String {
    let has_id = t.columns.iter().any(|c| c.name == "id");
    match kind {
        DbKind::Sqlite => {
            // json_object takes at most 63 pairs: larger rows are merged from parts.
            let parts: Vec<String> = t
                .columns
                .chunks(60)
                .map(|cols| {
                    let pairs: Vec<String> = cols
                        .iter()
                        .map(|c| match c.kind {
                            Kind::Blob => format!("'{}', hex({})", c.name, q(&c.name)),
                            _ => format!("'{}', {}", c.name, q(&c.name)),
                        })
                        .collect();
                    format!("json_object({})", pairs.join(", "))
                })
                .collect();
            let expr = parts
                .into_iter()
                .reduce(|a, b| format!("json_patch({a}, {b})"))
                .unwrap_or_else(|| "json_object()".into());
            format!(
                "SELECT {expr} FROM {} ORDER BY {}",
                q(&t.name),
                if has_id { "\"id\"" } else { "rowid" }
            )
        }
        DbKind::Postgres => {
            let cols: Vec<String> = t
                .columns
                .iter()
                .map(|c| match c.kind {
                    Kind::Blob => format!("encode({0}, 'hex') AS {0}", q(&c.name)),
                    _ => q(&c.name),
                })
                .collect();
            format!(
                "SELECT row_to_json(x)::text FROM (SELECT {} FROM {}) x{}",
                cols.join(", "),
                q(&t.name),
                if has_id { " ORDER BY x.\"id\"" } else { "" }
            )
        }
    }
}

/// Writes `rows` (a JSON array of objects with the backup's `columns`) into `t`, a table of
/// this database: every column by name, converted to the column's own type.
pub async fn insert_rows(
    c: &mut Conn,
    kind: &DbKind,
    t: &Table,
    columns: &[String],
    rows: &str,
) -> Result<()> {
    let mut names = Vec::new();
    let mut exprs = Vec::new();
    for name in columns {
        let col = t.columns.iter().find(|c| &c.name == name).ok_or_else(|| {
            Error::invalid(
                "backup",
                format!(
                    "column {}.{name} no longer exists in this voxprov's schema",
                    t.name
                ),
            )
        })?;
        names.push(q(name));
        let key = name.replace('\'', "''");
        exprs.push(match (kind, col.kind) {
            (DbKind::Sqlite, Kind::Blob) => format!("unhex(json_extract(value, '$.\"{key}\"'))"),
            (DbKind::Sqlite, _) => format!("json_extract(value, '$.\"{key}\"')"),
            (DbKind::Postgres, Kind::Blob) => format!("decode(r->>'{key}', 'hex')"),
            (DbKind::Postgres, _) => format!("(r->>'{key}')::{}", col.sql_type),
        });
    }
    let sql = match kind {
        DbKind::Sqlite => format!(
            "INSERT INTO {} ({}) SELECT {} FROM json_each($1)",
            q(&t.name),
            names.join(", "),
            exprs.join(", ")
        ),
        DbKind::Postgres => format!(
            "INSERT INTO {} ({}) SELECT {} FROM json_array_elements($1::json) r",
            q(&t.name),
            names.join(", "),
            exprs.join(", ")
        ),
    };
    sqlx::query(&sql).bind(rows).execute(&mut *c).await?;
    Ok(())
}

/// References are checked at commit, not row by row: some go in a circle (a reseller's
/// contract's contact belongs to the reseller).
pub async fn defer_references(c: &mut Conn, kind: &DbKind) -> Result<()> {
    let sql = match kind {
        DbKind::Sqlite => "PRAGMA defer_foreign_keys = ON",
        DbKind::Postgres => "SET CONSTRAINTS ALL DEFERRED",
    };
    sqlx::query(sql).execute(&mut *c).await?;
    Ok(())
}

/// Empties every table (referring ones first). On PostgreSQL the tables are locked first, so
/// no other writer's row slips in between.
pub async fn clear(c: &mut Conn, kind: &DbKind, tables: &[Table]) -> Result<()> {
    if *kind == DbKind::Postgres && !tables.is_empty() {
        let names: Vec<String> = tables.iter().map(|t| q(&t.name)).collect();
        sqlx::query(&format!(
            "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
            names.join(", ")
        ))
        .execute(&mut *c)
        .await?;
    }
    for t in tables.iter().rev() {
        sqlx::query(&format!("DELETE FROM {}", q(&t.name)))
            .execute(&mut *c)
            .await?;
    }
    Ok(())
}

/// After rows came in with their ids: the next generated id follows the highest, and never
/// goes back below one already handed out (a live restore: readers of the change log remember
/// ids).
pub async fn reset_sequences(c: &mut Conn, kind: &DbKind, tables: &[Table]) -> Result<()> {
    if *kind != DbKind::Postgres {
        // SQLite's AUTOINCREMENT counter follows explicit ids by itself.
        return Ok(());
    }
    for t in tables
        .iter()
        .filter(|t| t.columns.iter().any(|c| c.name == "id"))
    {
        sqlx::query(&format!(
            "SELECT setval(s, GREATEST(COALESCE(MAX(\"id\"), 0), COALESCE(pg_sequence_last_value(s), 0)) + 1, false) \
             FROM {}, (SELECT pg_get_serial_sequence($1, 'id')::regclass AS s) seq WHERE s IS NOT NULL GROUP BY s",
            q(&t.name)
        ))
        .bind(q(&t.name))
        .execute(&mut *c)
        .await?;
    }
    Ok(())
}

/// No admin and no change yet: a database nothing was done in (migrations may seed tables).
pub async fn is_fresh(c: &mut Conn) -> Result<bool> {
    let n: i64 =
        sqlx::query("SELECT (SELECT COUNT(*) FROM admins) + (SELECT COUNT(*) FROM changes)")
            .fetch_one(&mut *c)
            .await?
            .try_get(0)?;
    Ok(n == 0)
}

/// A read transaction that sees one moment of the database for as long as it lasts.
pub async fn snapshot(store: &Store) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    let conn = store.read.acquire().await?;
    let mut tx = sqlx::Transaction::begin(conn, None).await?;
    if store.kind == DbKind::Postgres {
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

pub fn kind(store: &Store) -> DbKind {
    store.kind.clone()
}
