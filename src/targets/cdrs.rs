//! Call records: every Kamailio running the shipped configuration writes its calls into its
//! `acc` (answered INVITEs, BYEs) and `missed_calls` (INVITEs that failed) tables; this task
//! reads them incrementally into voxprov's `cdrs` (one record per call and server, keyed by
//! Call-ID) and keeps them for `[cdrs] retention_days`.
//!
//! Idempotent: the read position of each server's tables is stored in the transaction that
//! writes the records it produced, so a restart of voxprov (or of the collection on another
//! node: one node collects at a time, under a lease) neither loses nor repeats a call, and a
//! restarted Kamailio only adds rows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::config::{Driver, TargetCfg};
use super::db::{AccRow, TargetDb};
use super::load_targets;
use crate::config::CdrConfig;
use crate::crypto::Cipher;
use crate::error::Result;
use crate::store::cdrs::{self as st, CdrRow};
use crate::store::{Lease, Store};

/// Accounting rows read per table and round.
const BATCH: i64 = 500;
/// The lease that makes one node the collector.
const DUTY: &str = "cdrs";

/// NGCP's call_status of a final SIP code.
fn status_of(code: i64) -> &'static str {
    match code {
        200..=299 => "ok",
        486 | 600 => "busy",
        487 => "cancel",
        408 => "noanswer",
        404 | 480 => "offline",
        _ => "other",
    }
}

/// "<s>.<µs>" → ms.
fn ts_ms(s: &str) -> Option<i64> {
    let (sec, frac) = s.trim().split_once('.').unwrap_or((s.trim(), "0"));
    let sec: i64 = sec.parse().ok()?;
    let us: i64 = format!("{frac:0<6}").get(..6)?.parse().ok()?;
    Some(sec * 1000 + us / 1000)
}

/// Where a call ended up: the local subscriber it was for, else the R-URI it went to (a
/// gateway, a foreign domain).
fn destination(r: &AccRow) -> String {
    if r.dst_aor.contains('@') {
        r.dst_aor.clone()
    } else {
        format!("{}@{}", r.dst_user, r.dst_domain)
    }
}

async fn parties(c: &mut crate::store::Conn, r: &AccRow, row: &mut CdrRow) -> Result<()> {
    let caller = st::party(c, &r.src_user, &r.src_domain).await?;
    let (du, dd) = r.dst_aor.split_once('@').unwrap_or(("", ""));
    let callee = st::party(c, du, dd).await?;
    row.caller = format!("{}@{}", r.src_user, r.src_domain);
    row.callee = if r.dst_ouser.is_empty() {
        r.dst_user.clone()
    } else {
        r.dst_ouser.clone()
    };
    row.destination = destination(r);
    row.caller_subscriber_id = caller.map(|p| p.0);
    row.callee_subscriber_id = callee.map(|p| p.0);
    let owner = caller.or(callee);
    row.customer_id = owner.map(|p| p.1);
    row.reseller_id = owner.map(|p| p.2);
    row.tenant_id = owner.and_then(|p| p.3);
    row.direction = match (caller.is_some(), callee.is_some()) {
        (true, true) => "local",
        (true, false) => "out",
        (false, true) => "in",
        (false, false) => "foreign",
    }
    .into();
    row.trunk = Some(r.trunk.clone()).filter(|t| !t.is_empty());
    Ok(())
}

fn fresh(server: i64, r: &AccRow) -> CdrRow {
    CdrRow {
        id: 0,
        sipserver_id: server,
        call_id: r.callid.clone(),
        from_tag: r.from_tag.clone(),
        to_tag: String::new(),
        reseller_id: None,
        customer_id: None,
        tenant_id: None,
        caller: String::new(),
        caller_subscriber_id: None,
        callee: String::new(),
        destination: String::new(),
        callee_subscriber_id: None,
        direction: String::new(),
        trunk: None,
        status: String::new(),
        sip_code: 0,
        sip_reason: String::new(),
        start_ms: ts_ms(&r.start_ts).unwrap_or(r.at_ms),
        answer_ms: None,
        end_ms: None,
    }
}

/// One accounting row into the call's record.
async fn apply(
    c: &mut crate::store::Conn,
    server: i64,
    r: &AccRow,
    answered_table: bool,
) -> Result<()> {
    if r.callid.is_empty() {
        return Ok(());
    }
    let method = r.method.to_ascii_uppercase();
    let existing = if method == "BYE" {
        // Only a BYE that was answered 2xx ends the call: a stray BYE (481) does not.
        if !(200..300).contains(&r.sip_code) {
            return Ok(());
        }
        st::by_dialog(c, server, &r.callid, &r.from_tag).await?
    } else {
        st::by_call(c, server, &r.callid, &r.from_tag).await?
    };
    let row = match (method.as_str(), answered_table, existing) {
        ("INVITE", true, old) => {
            let mut row = old.unwrap_or_else(|| fresh(server, r));
            // A second 200 (two phones of a group answering at once): the first counts.
            if row.status == "ok" && row.answer_ms.is_some() {
                return Ok(());
            }
            row.to_tag = r.to_tag.clone();
            parties(c, r, &mut row).await?;
            row.status = status_of(r.sip_code).into();
            row.sip_code = r.sip_code;
            row.sip_reason = r.sip_reason.clone();
            row.answer_ms = Some(r.at_ms);
            row.end_ms = None;
            if let Some(s) = ts_ms(&r.start_ts) {
                row.start_ms = s;
            }
            row
        }
        ("BYE", true, Some(mut row)) => {
            if row.end_ms.is_some() {
                return Ok(());
            }
            row.end_ms = Some(r.at_ms);
            row
        }
        ("INVITE", false, old) => {
            let first = old.is_none();
            let mut row = old.unwrap_or_else(|| fresh(server, r));
            if row.status == "ok" {
                return Ok(());
            }
            if first {
                parties(c, r, &mut row).await?;
            } else {
                row.destination = destination(r);
            }
            row.status = status_of(r.sip_code).into();
            row.sip_code = r.sip_code;
            row.sip_reason = r.sip_reason.clone();
            row.end_ms = Some(r.at_ms);
            row
        }
        _ => return Ok(()),
    };
    st::save(c, &row).await
}

/// Reads what a server accounted since the last time; how many rows it read.
/// `lease`: the collecting duty's, checked before the batch is recorded.
pub async fn collect(store: &Store, t: &TargetCfg, db: &TargetDb, lease: &Lease) -> Result<usize> {
    let (acc_after, missed_after) = {
        let mut c = store.read().await?;
        st::cursor(&mut c, t.id).await?
    };
    let unavailable =
        |e: sqlx::Error| crate::error::Error::Unavailable(format!("sipserver {}: {e}", t.name));
    let acc = db
        .read_acc("acc", acc_after, BATCH)
        .await
        .map_err(unavailable)?;
    let missed = db
        .read_acc("missed_calls", missed_after, BATCH)
        .await
        .map_err(unavailable)?;
    if acc.is_empty() && missed.is_empty() {
        return Ok(0);
    }
    let mut tx = store.begin_solo().await?;
    lease.fence(&mut tx).await?;
    // Another collector (a node that lost its lease meanwhile) moved on: leave it to it.
    if st::cursor(&mut tx, t.id).await? != (acc_after, missed_after) {
        return Ok(0);
    }
    // In the order they were written: an answer before its BYE, failures of one call in turn.
    let mut all: Vec<(&AccRow, bool)> = acc
        .iter()
        .map(|r| (r, true))
        .chain(missed.iter().map(|r| (r, false)))
        .collect();
    all.sort_by_key(|(r, _)| (r.at_ms, r.id));
    for (r, answered) in &all {
        apply(&mut tx, t.id, r, *answered).await?;
    }
    let a = acc.last().map_or(acc_after, |r| r.id);
    let m = missed.last().map_or(missed_after, |r| r.id);
    st::set_cursor(&mut tx, t.id, a, m).await?;
    tx.commit().await?;
    Ok(acc.len() + missed.len())
}

/// Collects from every enabled Kamailio, on one node at a time, until the process ends.
pub async fn run(store: Store, cipher: Cipher, cfg: CdrConfig) {
    let mut dbs: HashMap<i64, (String, TargetDb)> = HashMap::new();
    let mut lease: Option<Lease> = None;
    let mut pruned = Instant::now() - Duration::from_secs(3600);
    loop {
        tokio::time::sleep(Duration::from_millis(cfg.collect_interval_ms)).await;
        if let Some(l) = &mut lease {
            if !l.alive().await {
                lease = None;
            }
        }
        if lease.is_none() {
            lease = store.try_lease(DUTY).await.ok().flatten();
            if lease.is_none() {
                continue;
            }
        }
        let Some(held) = lease.as_ref() else { continue };
        let Ok(targets) = load_targets(&store, &cipher).await else {
            continue;
        };
        let kams: Vec<&TargetCfg> = targets
            .iter()
            .filter(|t| t.enabled && t.driver == Driver::Kamailio)
            .collect();
        dbs.retain(|id, (url, _)| kams.iter().any(|t| t.id == *id && t.db_url == *url));
        for t in kams {
            if let std::collections::hash_map::Entry::Vacant(slot) = dbs.entry(t.id) {
                match TargetDb::connect(&t.db_url).await {
                    Ok(db) => {
                        slot.insert((t.db_url.clone(), db));
                    }
                    Err(e) => {
                        tracing::debug!(target = %t.name, error = %super::clean(&e), "cdrs: cannot connect");
                        continue;
                    }
                }
            }
            let db = &dbs[&t.id].1;
            // A full batch: read on at once.
            loop {
                match collect(&store, t, db, held).await {
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::debug!(target = %t.name, error = %e, "cdrs: collection failed");
                        dbs.remove(&t.id);
                        break;
                    }
                }
            }
        }
        if cfg.retention_days > 0 && pruned.elapsed() >= Duration::from_secs(3600) {
            pruned = Instant::now();
            let before =
                chrono::Utc::now().timestamp_millis() - cfg.retention_days as i64 * 86_400_000;
            if let Ok(mut tx) = store.begin_solo().await {
                if let Ok(n) = st::prune(&mut tx, before).await {
                    if tx.commit().await.is_ok() && n > 0 {
                        tracing::info!(deleted = n, "cdrs: records past their retention deleted");
                    }
                }
            }
        }
    }
}
