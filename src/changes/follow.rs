//! Following the change log without missing anything: the cursor a consumer (a SIP server's
//! delivery, the phones' cache) keeps over the change ids.
//!
//! Ids are drawn when a transaction writes its change and become visible when it commits, so
//! on PostgreSQL with several writers id 12 can be read while 11 is still uncommitted — for a
//! millisecond or for minutes. An id missing below one already read is a *gap*. A gap is
//! never given up on a timer: it is given up only when it is certain that it will never
//! appear. Change ids are drawn only after the drawing transaction has its transaction id (the
//! `changes.id` default, see the PostgreSQL migration 0011), so the transaction behind a gap
//! has an id below any transaction id drawn after the gap was seen: the gap's *gate*. Once a
//! snapshot's `xmin` reaches the gate, every transaction below it has ended — committed or
//! rolled back — and a read made after that either finds the id or proves it rolled back
//! ([`Store::horizon`]). On SQLite ids are drawn by one writer in commit order: a gap is
//! final as soon as it is seen.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::Result;
use crate::store::{sipservers as st, Store};

/// Where a consumer stands: every change up to `hi` is consumed but the gaps (or was never
/// going to exist).
#[derive(Debug, Default)]
pub struct Cursor {
    /// Every change up to here is consumed (or was never going to exist): below the first gap.
    low: i64,
    /// The highest change read.
    hi: i64,
    /// Ids in `(low, hi]` not read yet, each with its gate: a transaction id drawn after it
    /// was first missed (`None` until one is).
    gaps: BTreeMap<i64, Option<i64>>,
}

/// What one read of the log should fetch.
#[derive(Debug, Default)]
pub struct Plan {
    /// Read ids above this.
    pub after: i64,
    /// And these gaps again.
    pub gaps: Vec<i64>,
    /// Gaps that this read settles: not found by it, they never will be.
    pub settles: Vec<i64>,
}

impl Cursor {
    /// A cursor past everything up to `low` (saved progress).
    pub fn at(low: i64) -> Cursor {
        Cursor::saved(low, low, &[])
    }

    /// A cursor where a consumer saved it: everything up to `hi` consumed but `gaps`.
    pub fn saved(low: i64, hi: i64, gaps: &[i64]) -> Cursor {
        let mut c = Cursor {
            low,
            hi: hi.max(low),
            gaps: gaps
                .iter()
                .filter(|g| **g > low && **g <= hi)
                .map(|g| (*g, None))
                .collect(),
        };
        c.advance();
        c
    }

    /// Everything up to `low` consumed, and `done` above it, up to `hi`; ids in between not
    /// in `done` are gaps.
    pub fn reset(&mut self, low: i64, done: &BTreeSet<i64>, hi: i64) {
        let gaps: Vec<i64> = (low + 1..=hi).filter(|i| !done.contains(i)).collect();
        *self = Cursor::saved(low, hi, &gaps);
    }

    pub fn low(&self) -> i64 {
        self.low
    }

    pub fn hi(&self) -> i64 {
        self.hi
    }

    pub fn gaps(&self) -> usize {
        self.gaps.len()
    }

    /// The ids awaited below `hi`.
    pub fn gap_ids(&self) -> Vec<i64> {
        self.gaps.keys().copied().collect()
    }

    pub fn is_consumed(&self, id: i64) -> bool {
        id <= self.low || (id <= self.hi && !self.gaps.contains_key(&id))
    }

    /// Whether the next read needs the transaction horizon (there are gaps to settle).
    pub fn needs_horizon(&self) -> bool {
        !self.gaps.is_empty()
    }

    /// Plans the next read, given the horizon read just before it (`None` on SQLite): gaps
    /// without a gate get the horizon's fresh id; those whose gate `xmin` reached are settled
    /// by this read.
    pub fn plan(&mut self, horizon: Option<(i64, i64)>) -> Plan {
        let mut settles = Vec::new();
        for (id, gate) in self.gaps.iter_mut() {
            match horizon {
                None => settles.push(*id),
                Some((xmin, fresh)) => {
                    let g = *gate.get_or_insert(fresh);
                    if g <= xmin {
                        settles.push(*id);
                    }
                }
            }
        }
        Plan {
            after: self.hi,
            gaps: self.gaps.keys().copied().collect(),
            settles,
        }
    }

    /// Changes consumed (read and acted on); ids skipped above the highest become gaps.
    pub fn consumed(&mut self, ids: &[i64]) {
        let prev_hi = self.hi;
        let read: BTreeSet<i64> = ids.iter().copied().collect();
        for i in &read {
            self.gaps.remove(i);
        }
        if let Some(&top) = read.last() {
            self.hi = self.hi.max(top);
        }
        for i in prev_hi + 1..=self.hi {
            if !read.contains(&i) {
                self.gaps.entry(i).or_insert(None);
            }
        }
        self.advance();
    }

    /// Gaps a read settled: those it did not find (still gaps) were rolled back.
    pub fn settled(&mut self, settles: &[i64]) {
        for id in settles {
            self.gaps.remove(id);
        }
        self.advance();
    }

    fn advance(&mut self) {
        self.low = match self.gaps.keys().next() {
            Some(first) => (first - 1).max(self.low),
            None => self.hi,
        };
    }
}

/// The horizon a cursor's next [`Cursor::plan`] needs (`None` when it has no gaps, or on
/// SQLite).
pub async fn horizon(store: &Store, cursor_has_gaps: bool) -> Result<Option<(i64, i64)>> {
    if cursor_has_gaps {
        store.horizon().await
    } else {
        Ok(None)
    }
}

/// Reads what a plan asks for: up to `limit` changes after its highest, and its gaps again,
/// in id order. `payloads`: with before and after.
pub async fn fetch(
    store: &Store,
    plan: &Plan,
    limit: i64,
    payloads: bool,
) -> Result<Vec<st::ChangeRow>> {
    let mut c = store.read().await?;
    let mut rows = st::changes_after(&mut c, plan.after, limit, payloads).await?;
    rows.extend(st::changes_by_ids(&mut c, &plan.gaps, payloads).await?);
    rows.sort_by_key(|r| r.id);
    rows.dedup_by_key(|r| r.id);
    Ok(rows)
}

/// Plans and fetches for a cursor the caller holds.
pub async fn read(
    store: &Store,
    cursor: &mut Cursor,
    limit: i64,
    payloads: bool,
) -> Result<(Vec<st::ChangeRow>, Plan)> {
    let h = horizon(store, cursor.needs_horizon()).await?;
    let plan = cursor.plan(h);
    let rows = fetch(store, &plan, limit, payloads).await?;
    Ok((rows, plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cursor_waits_for_an_id_that_commits_late() {
        let mut c = Cursor::at(10);
        // 12 and 13 committed, 11 still in flight.
        c.consumed(&[12, 13]);
        assert_eq!(c.low(), 10, "11 may still come");
        assert!(c.is_consumed(12) && c.is_consumed(13) && !c.is_consumed(11));
        // 11 commits and is read: the cursor moves past all three.
        c.consumed(&[11]);
        assert_eq!(c.low(), 13);
        assert_eq!(c.gaps(), 0);
    }

    #[test]
    fn a_gap_is_given_up_only_once_every_older_transaction_ended() {
        let mut c = Cursor::at(0);
        c.consumed(&[1, 3]);
        assert_eq!(c.low(), 1);
        // The first look after the gap was seen sets its gate (a fresh id, 100); a transaction
        // holds xmin at 90.
        let p = c.plan(Some((90, 100)));
        assert_eq!(p.gaps, vec![2]);
        assert!(p.settles.is_empty(), "its transaction may still be open");
        // However long that takes, and however many later changes come, 2 is waited for.
        c.consumed(&(4..=1004).collect::<Vec<_>>());
        c.settled(&p.settles);
        assert_eq!(c.low(), 1);
        let p = c.plan(Some((99, 120)));
        assert!(p.settles.is_empty());
        // Every transaction older than the gate has ended: this read settles 2.
        let p = c.plan(Some((100, 130)));
        assert_eq!(p.settles, vec![2]);
        c.settled(&p.settles);
        assert_eq!(c.low(), 1004);
    }

    #[test]
    fn a_late_commit_found_by_the_settling_read_is_consumed() {
        let mut c = Cursor::at(0);
        c.consumed(&[2]);
        c.plan(Some((5, 10)));
        let p = c.plan(Some((10, 12)));
        assert_eq!(p.settles, vec![1]);
        // The read found 1 after all.
        c.consumed(&[1]);
        c.settled(&p.settles);
        assert!(c.is_consumed(1) && c.low() == 2);
    }

    #[test]
    fn on_sqlite_a_gap_is_final_when_seen() {
        let mut c = Cursor::at(0);
        c.consumed(&[1, 3]);
        let p = c.plan(None);
        assert_eq!(p.settles, vec![2]);
        c.settled(&p.settles);
        assert_eq!(c.low(), 3);
    }

    #[test]
    fn a_reset_counts_what_it_saw_as_consumed() {
        let mut c = Cursor::default();
        c.reset(99, &[100, 101, 102, 104, 105].into_iter().collect(), 105);
        assert_eq!(c.low(), 102);
        assert!(c.is_consumed(104) && !c.is_consumed(103));
        c.consumed(&[103]);
        assert_eq!(c.low(), 105);
    }
}
