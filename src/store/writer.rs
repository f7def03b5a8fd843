//! Write transactions, and group commit on SQLite.
//!
//! SQLite has one writer and pays one `fsync` per commit. Requests that arrive while another
//! is writing need not each pay their own: on SQLite every write transaction
//! ([`Store::begin`](super::Store::begin)) is a savepoint inside a transaction shared with
//! the writes around it. Writers still run one after another on the single connection (each
//! sees the others' finished work, exactly as if they had committed in turn), a writer that
//! fails rolls back to its savepoint without touching the others, and the shared transaction
//! commits when nobody else is waiting for the writer, when it has gathered [`MAX_MEMBERS`]
//! writes, or when it is [`MAX_AGE`] old. A writer's `commit()` returns only once that
//! shared commit is durable, and fails if it fails: nothing is acknowledged before it is on
//! disk. Work that holds the writer for long (a bulk import, a restore) runs alone
//! ([`Store::begin_solo`](super::Store::begin_solo)) so it does not keep the short writes
//! before it waiting for their commit.
//!
//! PostgreSQL has concurrent writers and groups the commits of concurrent transactions
//! itself: there a transaction is a plain one from the pool.

use std::{
    ops::{Deref, DerefMut},
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use sqlx::{pool::PoolConnection, Any, AnyPool, TransactionManager as _};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use crate::error::{Error, Result};

type Tm = <Any as sqlx::Database>::TransactionManager;

/// The longest a shared transaction stays open gathering writes: the first one waits that
/// long at most (plus the commit) for the ones behind it.
const MAX_AGE: Duration = Duration::from_millis(10);
/// The most writes one commit carries.
const MAX_MEMBERS: usize = 64;
/// How long a writer waits for its turn before giving up (as the pool's acquire did).
const TURN_TIMEOUT: Duration = Duration::from_secs(30);

/// The single writer of an SQLite database and its shared transaction.
pub(super) struct Group {
    pool: AnyPool,
    writer: Arc<Mutex<Writer>>,
    /// Writers waiting for their turn: while there are some, the shared transaction is left
    /// open for them.
    queued: AtomicUsize,
}

struct Writer {
    /// Taken from the pool at the first write and kept (until [`Group::close`]).
    conn: Option<PoolConnection<Any>>,
    open: Option<Shared>,
    /// A savepoint is open in the shared transaction for the next member already: the
    /// member before released its own and took this one in the same statement (one trip to
    /// SQLite's thread fewer per write while others wait).
    reopened: bool,
}

/// The transaction several writers share.
struct Shared {
    since: Instant,
    members: usize,
    done: watch::Sender<Option<Outcome>>,
    /// Whether a task makes sure it commits even if no writer comes back to it.
    watched: bool,
}

/// How a shared commit ended (an error is told to every member, so it is kept as text).
type Outcome = std::result::Result<(), Arc<str>>;

impl Group {
    pub(super) fn new(pool: AnyPool) -> Arc<Group> {
        Arc::new(Group {
            pool,
            writer: Arc::new(Mutex::new(Writer {
                conn: None,
                open: None,
                reopened: false,
            })),
            queued: AtomicUsize::new(0),
        })
    }

    async fn turn(&self) -> Result<OwnedMutexGuard<Writer>> {
        self.queued.fetch_add(1, Ordering::SeqCst);
        let _unqueue = Unqueue(&self.queued);
        let lock = self.writer.clone().lock_owned();
        // A write sent to the writer's lane whose client hung up meanwhile does not begin.
        let caller = super::lane::caller();
        let waited = async move {
            match caller {
                Some(c) => tokio::select! {
                    biased;
                    _ = c.cancelled() => Err(Error::Unavailable(
                        "the request went away before its write began".into(),
                    )),
                    w = lock => Ok(w),
                },
                None => Ok(lock.await),
            }
        };
        tokio::time::timeout(TURN_TIMEOUT, waited)
            .await
            .map_err(|_| Error::Unavailable("database busy, retry".into()))?
    }

    /// A write transaction: a savepoint in the shared transaction, or the shared transaction
    /// itself when it opens with this one (nobody else's work to protect from its failure
    /// yet), or (`solo`) a transaction of its own, begun after the shared one has committed.
    pub(super) async fn begin(self: &Arc<Self>, solo: bool) -> Result<Tx> {
        let mut w = self.turn().await?;
        // Between transactions the connection is in the shared one (with the next member's
        // savepoint, if the last member took it) or in none: anything else (a rollback that
        // did not happen) means its state is lost.
        let want = usize::from(w.open.is_some()) + usize::from(w.reopened);
        if w.conn
            .as_ref()
            .is_some_and(|c| Tm::get_transaction_depth(c) != want)
        {
            w.abort("the writer's transaction state was lost").await;
        }
        // Long work starts after the shared transaction has committed; and one that has
        // gathered writes for long enough is committed rather than joined.
        let old = w
            .open
            .as_ref()
            .is_some_and(|o| o.since.elapsed() >= MAX_AGE);
        if (solo || old) && w.open.is_some() {
            w = finished(w).await?;
        }
        if w.conn.is_none() {
            // Opened from the writer's lane: its thread is on the lane's CPU.
            let pool = self.pool.clone();
            w.conn = Some(super::lane::run(async move { pool.acquire().await }).await??);
        }
        let role = if w.open.is_some() {
            if !std::mem::take(&mut w.reopened) {
                if let Err(e) = Tm::begin(w.conn(), None).await {
                    w.abort(&e.to_string()).await;
                    return Err(e.into());
                }
            }
            Role::Member
        } else {
            // IMMEDIATE: the write lock is taken now, not at the first write. A deferred
            // transaction reads from a snapshot and, if another process (the CLI's import
            // beside a running server) committed since, its first write fails at once with
            // SQLITE_BUSY, which no busy timeout waits out.
            if let Err(e) = Tm::begin(w.conn(), Some("BEGIN IMMEDIATE".into())).await {
                // Nothing of anyone's is on it: a fresh connection for the next writer.
                w.discard();
                return Err(e.into());
            }
            if solo {
                Role::Solo
            } else {
                w.open = Some(Shared {
                    since: Instant::now(),
                    members: 0,
                    done: watch::Sender::new(None),
                    watched: false,
                });
                Role::First
            }
        };
        Ok(Tx(Kind::Sqlite {
            w: Some(w),
            group: self.clone(),
            role,
        }))
    }

    /// Commits what is open and gives the connection back to the pool (before it closes).
    pub(super) async fn close(&self) {
        let mut w = self.writer.lock().await;
        w.finish().await;
        w.conn = None;
    }

    /// Commits the shared transaction if it is still the one `rx` tells of, should no writer
    /// do it in time (the ones it was left open for went away).
    fn watch(self: &Arc<Self>, rx: watch::Receiver<Option<Outcome>>) {
        let group = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MAX_AGE * 2).await;
                if rx.borrow().is_some() || rx.has_changed().is_err() {
                    return;
                }
                // Not counted as a waiting writer: nobody leaves a transaction open for it.
                let Ok(mut w) =
                    tokio::time::timeout(TURN_TIMEOUT, group.writer.clone().lock_owned()).await
                else {
                    continue;
                };
                // Shared transactions end in order: this one not done means it is the open one.
                if rx.borrow().is_none() && rx.has_changed().is_ok() {
                    w.finish().await;
                }
                return;
            }
        });
    }
}

/// Commits the shared transaction on a task of its own, so a caller that goes away (a client
/// that hung up) cannot leave it half done; gives the writer back.
async fn finished(mut w: OwnedMutexGuard<Writer>) -> Result<OwnedMutexGuard<Writer>> {
    tokio::spawn(async move {
        w.finish().await;
        w
    })
    .await
    .map_err(Error::internal)
}

/// Waits for the shared commit a member is in.
async fn durable(mut rx: watch::Receiver<Option<Outcome>>) -> Result<()> {
    loop {
        if let Some(r) = rx.borrow_and_update().clone() {
            return r.map_err(|why| Error::Unavailable(format!("commit failed ({why}), retry")));
        }
        if rx.changed().await.is_err() {
            return Err(Error::Unavailable(
                "the shared transaction was abandoned, retry".into(),
            ));
        }
    }
}

struct Unqueue<'a>(&'a AtomicUsize);

impl Drop for Unqueue<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    fn conn(&mut self) -> &mut sqlx::AnyConnection {
        self.conn.as_mut().expect("the writer holds its connection")
    }

    /// Commits the shared transaction (if one is open) and tells its members.
    async fn finish(&mut self) {
        let Some(open) = self.open.take() else {
            return;
        };
        let conn = self
            .conn
            .as_mut()
            .expect("an open transaction has its connection");
        // A savepoint taken for a member that did not come is released first.
        let released = match std::mem::take(&mut self.reopened) {
            true => Tm::commit(conn).await,
            false => Ok(()),
        };
        let committed = match released {
            Ok(()) => Tm::commit(conn).await,
            Err(e) => Err(e),
        };
        let r = match committed {
            // A COMMIT that left a transaction open released a savepoint instead: what the
            // members wrote is not on disk.
            Ok(()) if Tm::get_transaction_depth(conn) != 0 => {
                Err(Arc::from("the commit left a transaction open"))
            }
            Ok(()) => Ok(()),
            Err(e) => Err(Arc::from(e.to_string())),
        };
        if r.is_err() {
            self.unwind().await;
        }
        metrics::histogram!("voxprov_db_commit_writes").record(open.members as f64);
        if let Err(why) = &r {
            tracing::error!(writes = open.members, "shared commit failed: {why}");
        }
        open.done.send_replace(Some(r));
    }

    /// Rolls the shared transaction back wholly (its state is no longer known) and fails its
    /// members; the connection is replaced.
    async fn abort(&mut self, why: &str) {
        self.unwind().await;
        if let Some(open) = self.open.take() {
            tracing::error!(
                writes = open.members,
                "shared transaction rolled back: {why}"
            );
            open.done.send_replace(Some(Err(Arc::from(why))));
        }
    }

    /// Rolls back whatever is open on the connection and replaces it (its state is in doubt).
    async fn unwind(&mut self) {
        if let Some(conn) = self.conn.as_mut() {
            while Tm::get_transaction_depth(conn) > 0 {
                if Tm::rollback(conn).await.is_err() {
                    break;
                }
            }
        }
        self.discard();
    }

    fn discard(&mut self) {
        self.reopened = false;
        if let Some(mut c) = self.conn.take() {
            c.close_on_drop();
        }
    }
}

/// A write transaction; dereferences to the connection it runs on. Dropped without
/// [`Tx::commit`], its work is rolled back.
pub struct Tx(Kind);

enum Kind {
    Pool(sqlx::Transaction<'static, Any>),
    Sqlite {
        /// `None` once ended.
        w: Option<OwnedMutexGuard<Writer>>,
        group: Arc<Group>,
        role: Role,
    },
    Ended,
}

#[derive(Clone, Copy, PartialEq)]
enum Role {
    /// A transaction of its own.
    Solo,
    /// Opened the shared transaction: its work is the transaction's first.
    First,
    /// A savepoint in a shared transaction others are in already.
    Member,
}

impl Tx {
    pub(super) fn pool(t: sqlx::Transaction<'static, Any>) -> Tx {
        Tx(Kind::Pool(t))
    }

    /// Makes the work durable: returns once it is committed (on SQLite, with the writes
    /// sharing its commit).
    pub async fn commit(mut self) -> Result<()> {
        match std::mem::replace(&mut self.0, Kind::Ended) {
            Kind::Pool(t) => Ok(t.commit().await?),
            Kind::Sqlite {
                w: Some(w),
                group,
                role,
            } => {
                // On a task of its own: a caller that goes away (a client that hung up) must
                // not leave the connection between a statement and sqlx's record of it.
                let shared = tokio::spawn(commit_on(w, group, role))
                    .await
                    .map_err(Error::internal)??;
                match shared {
                    Some(rx) => durable(rx).await,
                    None => Ok(()),
                }
            }
            Kind::Sqlite { w: None, .. } | Kind::Ended => Ok(()),
        }
    }

    /// Undoes the work (on SQLite, only this transaction's share).
    pub async fn rollback(mut self) -> Result<()> {
        match std::mem::replace(&mut self.0, Kind::Ended) {
            Kind::Pool(t) => Ok(t.rollback().await?),
            Kind::Sqlite {
                w: Some(w),
                group,
                role,
            } => tokio::spawn(rollback_on(w, group, role))
                .await
                .map_err(Error::internal)?,
            Kind::Sqlite { w: None, .. } | Kind::Ended => Ok(()),
        }
    }
}

/// The end of a commit, on the writer: a solo transaction commits; a shared one's member
/// releases its savepoint and commits the shared transaction, or leaves it open for the
/// writers waiting (and then takes the next one's savepoint in the same statement as its
/// release). What to wait for, if anything.
async fn commit_on(
    mut w: OwnedMutexGuard<Writer>,
    group: Arc<Group>,
    role: Role,
) -> Result<Option<watch::Receiver<Option<Outcome>>>> {
    match role {
        Role::Solo => {
            let r = Tm::commit(w.conn()).await;
            let open = Tm::get_transaction_depth(w.conn()) != 0;
            if r.is_err() || open {
                w.unwind().await;
            }
            r?;
            if open {
                return Err(Error::Unavailable(
                    "commit failed (it left a transaction open), retry".into(),
                ));
            }
            return Ok(None);
        }
        Role::First => {}
        Role::Member => {
            let open = w.open.as_ref().expect("a member's transaction is open");
            let last = open.members + 1 >= MAX_MEMBERS || open.since.elapsed() >= MAX_AGE;
            // Another writer waits and the shared transaction stays open for it: its
            // savepoint is taken now, with this one's release.
            let reopen = !last && group.queued.load(Ordering::SeqCst) > 0;
            let r = if reopen {
                release_and_reopen(w.conn()).await
            } else {
                Tm::commit(w.conn()).await.map_err(Error::from)
            };
            if let Err(e) = r {
                // A savepoint that cannot be released leaves the shared transaction in
                // doubt: end it, failing everyone in it (none was acknowledged yet).
                w.abort(&e.to_string()).await;
                return Err(e);
            }
            w.reopened = reopen;
        }
    }
    let open = w.open.as_mut().expect("a member's transaction is open");
    open.members += 1;
    let rx = open.done.subscribe();
    let full = open.members >= MAX_MEMBERS || open.since.elapsed() >= MAX_AGE;
    if full || group.queued.load(Ordering::SeqCst) == 0 {
        w.finish().await;
    } else if !std::mem::replace(&mut open.watched, true) {
        // Left open for the writers waiting: they commit it, or the watch does.
        group.watch(rx.clone());
    }
    Ok(Some(rx))
}

/// Releases the savepoint a member wrote in and takes a new one for the next member, in one
/// statement. sqlx's count of open savepoints is unchanged by it, and so is the name it gives
/// the savepoint at this depth (`_sqlx_savepoint_<depth - 1>`), which the next member's
/// commit or rollback will use.
async fn release_and_reopen(conn: &mut sqlx::AnyConnection) -> Result<()> {
    let n = Tm::get_transaction_depth(conn).saturating_sub(1);
    let sql = format!("RELEASE SAVEPOINT _sqlx_savepoint_{n}; SAVEPOINT _sqlx_savepoint_{n}");
    sqlx::query(&sql).execute(&mut *conn).await?;
    Ok(())
}

/// The end of a rollback, on the writer. One that fails (SQLite ends the whole transaction
/// on an I/O error or a full disk) leaves the shared transaction in doubt: it is ended,
/// failing everyone in it, rather than letting the next writer's savepoint start a
/// transaction of its own.
async fn rollback_on(mut w: OwnedMutexGuard<Writer>, group: Arc<Group>, role: Role) -> Result<()> {
    let r = Tm::rollback(w.conn()).await;
    let want = usize::from(role == Role::Member);
    if r.is_err() || Tm::get_transaction_depth(w.conn()) != want {
        w.abort("a rollback failed").await;
        r?;
        return Err(Error::Unavailable("rollback failed, retry".into()));
    }
    match role {
        Role::Solo => {}
        // The whole shared transaction was this one's: it is gone.
        Role::First => w.open = None,
        // The writes that left the shared transaction open for this one are not kept
        // waiting for it: commit now unless another writer is already next.
        Role::Member => {
            if group.queued.load(Ordering::SeqCst) == 0 {
                w.finish().await;
            }
        }
    }
    Ok(())
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Kind::Sqlite {
            w: Some(mut w),
            group,
            role,
        } = std::mem::replace(&mut self.0, Kind::Ended)
        else {
            return; // a pool transaction rolls itself back
        };
        // The task holds the writer until the rollback is done, so nobody writes after the
        // failed work before it is undone.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    if let Err(e) = rollback_on(w, group, role).await {
                        tracing::error!("rolling back a dropped write: {e}");
                    }
                });
            }
            Err(_) => {
                // No runtime (the process is ending): let sqlx roll back on the connection.
                if let Some(c) = w.conn.as_mut() {
                    Tm::start_rollback(c);
                }
                if role == Role::First {
                    w.open = None;
                }
            }
        }
    }
}

impl Deref for Tx {
    type Target = sqlx::AnyConnection;

    fn deref(&self) -> &sqlx::AnyConnection {
        match &self.0 {
            Kind::Pool(t) => t,
            Kind::Sqlite { w: Some(w), .. } => {
                w.conn.as_ref().expect("the writer holds its connection")
            }
            _ => panic!("transaction used after it ended"),
        }
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut sqlx::AnyConnection {
        match &mut self.0 {
            Kind::Pool(t) => t,
            Kind::Sqlite { w: Some(w), .. } => w.conn(),
            _ => panic!("transaction used after it ended"),
        }
    }
}
