//! Bulk import: CSV files from the command line (`voxprov import`) and JSON arrays or CSV
//! bodies over HTTP (POST to /api/subscribers/, /api/customers/). Every row goes through the
//! same validation as a single POST, is journalled, and reaches the SIP servers through the
//! change log. Rows stream through in batches, so memory stays flat at millions of rows.
//!
//! Modes:
//! - all-or-nothing: one transaction; every row is still checked (so every error is reported
//!   with its row number), and any error rolls everything back: the database is exactly as
//!   before;
//! - per-row: each batch commits its good rows; bad rows are reported and left out;
//! - dry run: all-or-nothing that always rolls back (reports `valid` instead of `created`).

use std::collections::HashSet;

use serde::Serialize;
use serde_json::{Map, Value};
use sqlx::Connection;
use utoipa::ToSchema;

use crate::app::App;
use crate::changes::Op;
use crate::crypto::Prehashed;
use crate::error::{Error, Result};
use crate::model::{Actor, Number, NumberInput};
use crate::resources::customers::Customers;
use crate::resources::subscribers::{self, Journal, JournalDocs, Lookups, Subscribers};
use crate::resources::write::passwords_in;
use crate::resources::{create_one, record, to_input, to_map, Created, Resource};
use crate::store::Conn;

pub use super::Kind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    AllOrNothing,
    PerRow,
}

pub struct Options {
    pub mode: Mode,
    pub dry_run: bool,
    pub batch: usize,
}

/// What became of one row. `row`: the CSV line number (the header is line 1) or the
/// position in a JSON array (from 1).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RowResult {
    pub row: u64,
    /// created, valid (dry run), error, or not_saved (valid, but rolled back with the others
    /// in all-or-nothing mode).
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// A subscriber's SIP password the policy generated (`password_policy.generate`), shown
    /// here once as in a single creation's answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct Summary {
    pub rows: u64,
    pub created: u64,
    pub errors: u64,
    /// Whether anything was saved.
    pub committed: bool,
    pub dry_run: bool,
}

pub type Row = (u64, Result<Map<String, Value>>);

fn error_result(row: u64, e: &Error) -> RowResult {
    let (field, message) = match e {
        Error::Validation { field, message, .. } => (Some(field.clone()), message.clone()),
        Error::Internal(_) => (None, "internal error (see the server log)".to_string()),
        other => (None, other.to_string()),
    };
    RowResult {
        row,
        status: "error",
        id: None,
        field,
        message: Some(message),
        password: None,
    }
}

/// Imports rows; `report` sees every row's result as soon as it is known (a result that says
/// `created` in all-or-nothing mode stands only if the summary says `committed`).
pub async fn import(
    app: &App,
    actor: &Actor,
    kind: Kind,
    rows: impl Iterator<Item = Row>,
    opts: &Options,
    mut report: impl FnMut(RowResult),
) -> Result<Summary> {
    actor.check_write()?;
    let single_tx = opts.dry_run || opts.mode == Mode::AllOrNothing;
    let mut sum = Summary {
        dry_run: opts.dry_run,
        ..Default::default()
    };
    let mut tx = app.store.begin_solo().await?;
    let mut look = Lookups::default();
    let mut batch: Vec<Row> = Vec::with_capacity(opts.batch);
    let mut rows = rows.peekable();
    // A batch that will be rolled back with the rest if anything fails needs no savepoint of
    // its own where nobody else writes meanwhile (SQLite: the import holds the write lock).
    // Savepoints are not free there: every statement's end walks the journal of the pages
    // the enclosing savepoint changed, which for a batch of 2,000 rows was a tenth of the
    // import's time.
    let guarded = !single_tx || crate::store::has_row_locks(&tx);
    // Without savepoints, a batch's journal records are built on another thread while the
    // next batch is checked and inserted, and written after it: the one transaction holds
    // them all, so when they are written does not matter, and the import's two halves (this
    // task and the database's thread) no longer wait for each other as much.
    let mut journal: Option<tokio::task::JoinHandle<JournalDocs>> = None;
    while rows.peek().is_some() {
        batch.clear();
        batch.extend(rows.by_ref().take(opts.batch.max(1)));
        // Web passwords are hashed on every CPU before the batch is checked, not one by one
        // as each row is.
        let hashed = match kind {
            Kind::Subscribers => {
                let set = batch
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok())
                    .flat_map(passwords_in::<Subscribers>);
                Prehashed::of(set.collect()).await?
            }
            _ => Prehashed::default(),
        };
        let (results, unrecorded) = hashed
            .scope(apply_batch(
                &mut tx,
                app,
                actor,
                kind,
                std::mem::take(&mut batch),
                &mut look,
                guarded,
            ))
            .await?;
        if let Some(docs) = journal.take() {
            record_docs(&mut tx, actor, docs).await?;
        }
        journal = unrecorded.map(|j| tokio::task::spawn_blocking(move || j.docs()));
        for (row, r) in results {
            sum.rows += 1;
            match r {
                Ok(created) => {
                    sum.created += 1;
                    let password = created
                        .once
                        .as_ref()
                        .and_then(|o| o.get("password"))
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    report(RowResult {
                        row,
                        status: if opts.dry_run { "valid" } else { "created" },
                        id: (!opts.dry_run).then_some(created.id),
                        field: None,
                        message: None,
                        // A dry run saves nothing: the password it made up is no one's.
                        password: password.filter(|_| !opts.dry_run),
                    });
                }
                Err(e) => {
                    sum.errors += 1;
                    report(error_result(row, &e));
                }
            }
        }
        if !single_tx {
            // Batches that commit one by one are guarded: they journal their own rows.
            debug_assert!(journal.is_none());
            tx.commit().await?;
            sum.committed |= sum.created > 0;
            tx = app.store.begin_solo().await?;
            look = Lookups::default();
        }
    }
    if let Some(docs) = journal.take() {
        record_docs(&mut tx, actor, docs).await?;
    }
    if opts.dry_run || (opts.mode == Mode::AllOrNothing && sum.errors > 0) {
        tx.rollback().await?;
        if single_tx {
            sum.committed = false;
        }
    } else {
        tx.commit().await?;
        sum.committed |= sum.created > 0;
    }
    Ok(sum)
}

async fn record_docs(
    tx: &mut Conn,
    actor: &Actor,
    docs: tokio::task::JoinHandle<JournalDocs>,
) -> Result<()> {
    docs.await.map_err(Error::internal)?.record(tx, actor).await
}

async fn apply_batch(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    kind: Kind,
    rows: Vec<Row>,
    look: &mut Lookups,
    guarded: bool,
) -> Result<(Vec<(u64, Result<Created>)>, Option<Journal>)> {
    let mut out: Vec<(u64, Result<Created>)> = Vec::with_capacity(rows.len());
    let mut good: Vec<(u64, Map<String, Value>)> = Vec::with_capacity(rows.len());
    for (line, r) in rows {
        match r {
            Ok(m) => good.push((line, m)),
            Err(e) => out.push((line, Err(e))),
        }
    }
    let mut done = false;
    if kind == Kind::Subscribers && !guarded {
        // What the checks could not foresee fails the import (nothing is saved), so the rows
        // are not kept for a retry one by one. The journal records are the caller's to build
        // and write.
        let (lines, inputs): (Vec<u64>, Vec<_>) = good
            .into_iter()
            .map(|(l, m)| (l, to_input(Value::Object(m), Subscribers::READ_ONLY, None)))
            .unzip();
        let (res, journal) = subscribers::write_many(c, app, actor, inputs, look).await?;
        out.extend(lines.into_iter().zip(res));
        out.sort_by_key(|(l, _)| *l);
        return Ok((out, Some(journal)));
    }
    if kind == Kind::Subscribers {
        let inputs = good
            .iter()
            .map(|(_, m)| to_input(Value::Object(m.clone()), Subscribers::READ_ONLY, None))
            .collect();
        let mut sp = c.begin().await?;
        match subscribers::create_many(&mut sp, app, actor, inputs, look).await {
            Ok(res) => {
                sp.commit().await?;
                out.extend(good.iter().map(|(l, _)| *l).zip(res));
                done = true;
            }
            Err(e) => {
                // A row the batch checks could not foresee (a concurrent writer): redo the
                // batch row by row, so only that row fails.
                tracing::info!("bulk batch failed ({e}); retrying its rows one by one");
                sp.rollback().await?;
            }
        }
    }
    if !done {
        for (line, m) in good {
            let mut sp = c.begin().await?;
            let res = match kind {
                Kind::Subscribers => {
                    create_one::<Subscribers>(&mut sp, app, actor, Value::Object(m))
                        .await
                        .map(|(created, _)| created)
                }
                Kind::Customers => create_one::<Customers>(&mut sp, app, actor, Value::Object(m))
                    .await
                    .map(|(created, _)| created),
                Kind::Numbers => add_number(&mut sp, app, actor, m).await.map(Created::from),
            };
            if res.is_ok() {
                sp.commit().await?;
            } else {
                sp.rollback().await?;
            }
            out.push((line, res));
        }
    }
    out.sort_by_key(|(l, _)| *l);
    Ok((out, None))
}

/// A numbers row: the number joins the subscriber's aliases, or becomes its primary number
/// (the old primary turns alias) — an update of the subscriber, journalled as one.
async fn add_number(
    c: &mut Conn,
    app: &App,
    actor: &Actor,
    mut m: Map<String, Value>,
) -> Result<i64> {
    let sid = match m.remove("subscriber_id") {
        Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
        _ => return Err(Error::invalid("subscriber_id", "is required (an integer)")),
    };
    let primary = matches!(m.remove("is_primary"), Some(Value::Bool(true)));
    let n: NumberInput = serde_json::from_value(Value::Object(m))
        .map_err(|e| Error::invalid("number", e.to_string()))?;
    Number::parse("number", &n, super::handling::strict())?;
    let old = match Subscribers::load(c, app, sid, true).await? {
        Some(s) if Subscribers::visible(&s, actor) && s.status != "terminated" => s,
        _ => {
            return Err(Error::invalid(
                "subscriber_id",
                format!("subscriber {sid} does not exist or is terminated"),
            ))
        }
    };
    let current = Subscribers::view(&old, actor);
    let mut next = current.clone();
    let entry = serde_json::to_value(&n).map_err(Error::internal)?;
    let aliases = next
        .entry("alias_numbers")
        .or_insert_with(|| Value::Array(vec![]));
    if primary {
        if let (Some(p), Value::Array(a)) = (
            current.get("primary_number").filter(|p| !p.is_null()),
            &mut *aliases,
        ) {
            a.push(p.clone());
        }
        next.insert("primary_number".into(), entry);
    } else if let Value::Array(a) = aliases {
        a.push(entry);
    }
    let input = to_input(Value::Object(next), Subscribers::READ_ONLY, Some(&current))?;
    Subscribers::update(c, app, actor, sid, &old, input).await?;
    let repr = Subscribers::load(c, app, sid, false)
        .await?
        .ok_or_else(|| Error::not_found("subscriber"))?;
    record::<Subscribers>(c, actor, Op::Update, Some(&old), Some(&repr)).await?;
    Ok(sid)
}

// --- CSV -----------------------------------------------------------------------------------

/// Reads CSV rows as JSON objects shaped like a POST body. The header names the columns
/// (any order, any subset); an unknown column is refused before any row is read.
pub struct CsvRows<R: std::io::Read> {
    rdr: csv::Reader<R>,
    cols: Vec<(String, char)>,
    kind: Kind,
    rec: csv::StringRecord,
}

impl<R: std::io::Read> CsvRows<R> {
    pub fn new(kind: Kind, input: R) -> Result<Self> {
        let mut rdr = csv::ReaderBuilder::new()
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(input);
        let headers = rdr
            .headers()
            .map_err(|e| Error::BadRequest(format!("CSV header: {e}")))?
            .clone();
        let known = kind.columns();
        let mut cols = Vec::new();
        let mut seen = HashSet::new();
        for h in headers.iter() {
            let Some((name, t)) = known.iter().find(|(n, _)| *n == h) else {
                return Err(Error::invalid(
                    h,
                    format!(
                        "is not a {} column; columns: {}",
                        kind.name(),
                        known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                ));
            };
            if !seen.insert(*name) {
                return Err(Error::invalid(h, "is given twice"));
            }
            cols.push((name.to_string(), *t));
        }
        Ok(CsvRows {
            rdr,
            cols,
            kind,
            rec: csv::StringRecord::new(),
        })
    }

    fn convert(&self) -> Result<Map<String, Value>> {
        let mut m = Map::new();
        let mut number = Map::new();
        for ((name, t), v) in self.cols.iter().zip(self.rec.iter()) {
            if v.is_empty() {
                continue;
            }
            let value = match t {
                'i' => v.parse::<i64>().map(Value::from).map_err(|_| {
                    Error::invalid(name.as_str(), format!("'{v}' is not an integer"))
                })?,
                'b' => match v.to_ascii_lowercase().as_str() {
                    "1" | "true" | "yes" => Value::Bool(true),
                    "0" | "false" | "no" => Value::Bool(false),
                    _ => {
                        return Err(Error::invalid(
                            name.as_str(),
                            format!("'{v}' is not true or false"),
                        ))
                    }
                },
                'n' => Value::Array(
                    v.split([';', ' '])
                        .filter(|s| !s.is_empty())
                        .map(|s| {
                            let p: Vec<&str> = s.split('-').collect();
                            match p.as_slice() {
                                [cc, ac, sn] => {
                                    Ok(serde_json::json!({ "cc": cc, "ac": ac, "sn": sn }))
                                }
                                [cc, sn] => Ok(serde_json::json!({ "cc": cc, "ac": "", "sn": sn })),
                                _ => Err(Error::invalid(
                                    name.as_str(),
                                    format!(
                                        "'{s}' is not cc-ac-sn (numbers separated by ; or space)"
                                    ),
                                )),
                            }
                        })
                        .collect::<Result<Vec<_>>>()?,
                ),
                _ if v.contains('\0') => {
                    return Err(Error::invalid(
                        name.as_str(),
                        "must not contain NUL characters",
                    ))
                }
                _ => Value::String(v.to_string()),
            };
            if matches!(name.as_str(), "cc" | "ac" | "sn") {
                number.insert(name.clone(), value);
            } else {
                m.insert(name.clone(), value);
            }
        }
        if !number.is_empty() {
            match self.kind {
                Kind::Subscribers => {
                    m.insert("primary_number".into(), Value::Object(number));
                }
                _ => m.extend(number),
            }
        }
        Ok(m)
    }
}

impl<R: std::io::Read> Iterator for CsvRows<R> {
    type Item = Row;
    fn next(&mut self) -> Option<Row> {
        match self.rdr.read_record(&mut self.rec) {
            Ok(false) => None,
            Ok(true) => {
                let line = self.rec.position().map(|p| p.line()).unwrap_or(0);
                Some((line, self.convert()))
            }
            Err(e) => {
                let line = e.position().map(|p| p.line()).unwrap_or(0);
                // A broken record is reported; reading goes on with the next one (the csv
                // reader resynchronizes at the next line).
                Some((line, Err(Error::invalid("csv", e.to_string()))))
            }
        }
    }
}

/// A JSON array's elements as rows (position from 1).
pub fn json_rows(items: Vec<Value>) -> impl Iterator<Item = Row> {
    items.into_iter().enumerate().map(|(i, v)| {
        let r = match v {
            Value::Object(m) => Ok(m),
            _ => Err(Error::invalid("body", "each element must be a JSON object")),
        };
        (i as u64 + 1, r)
    })
}

/// A subscriber or customer as an export row: the import columns, so an export imports back.
pub fn export_row(kind: Kind, repr: &Map<String, Value>) -> Vec<String> {
    let text = |v: Option<&Value>| match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
    };
    let num = |n: &Value| {
        format!(
            "{}-{}-{}",
            text(n.get("cc")),
            text(n.get("ac")),
            text(n.get("sn"))
        )
    };
    kind.columns()
        .iter()
        .map(|(c, _)| match (kind, *c) {
            (Kind::Subscribers, "cc" | "ac" | "sn") => {
                text(repr.get("primary_number").and_then(|p| p.get(c)))
            }
            (Kind::Subscribers, "alias_numbers") => repr
                .get("alias_numbers")
                .and_then(Value::as_array)
                .map(|a| a.iter().map(num).collect::<Vec<_>>().join(";"))
                .unwrap_or_default(),
            (Kind::Subscribers, "webpassword") => String::new(),
            _ => text(repr.get(*c)),
        })
        .collect()
}

/// Every object of a collection as the actor sees it, in id order, a page at a time (keyset).
pub async fn export_page(
    app: &App,
    actor: &Actor,
    kind: Kind,
    after: i64,
    rows: i64,
) -> Result<Vec<Map<String, Value>>> {
    let q = crate::resources::parse_list_query(
        Some(&format!("rows={rows}&no_count=1&after_id={after}")),
        &[],
        &[("id", "id")],
    )?;
    let mut c = app.store.read().await?;
    Ok(match kind {
        Kind::Numbers => crate::resources::numbers::Numbers::list(&mut c, app, actor, &q)
            .await?
            .0
            .iter()
            .map(to_map)
            .collect(),
        Kind::Subscribers => Subscribers::list(&mut c, app, actor, &q)
            .await?
            .0
            .iter()
            .map(|r| Subscribers::view(r, actor))
            .collect(),
        Kind::Customers => Customers::list(&mut c, app, actor, &q)
            .await?
            .0
            .iter()
            .map(to_map)
            .collect(),
    })
}
