//! The SQLite writer's lane: one thread, pinned to one CPU, that runs write transactions
//! next to the thread sqlx gives the writer's connection (that thread is started from the
//! lane, so it is pinned to the same CPU).
//!
//! Every statement of a write is a hand-off: the task running it sends the statement to the
//! connection's thread and sleeps, that thread runs it and wakes the task — two wake-ups, with
//! the single writer held throughout. When the two threads sit on different CPUs, a wake-up
//! often has to bring an idle CPU out of its halt, which on a virtual machine is a trip
//! through the hypervisor: on the 2-core development machine about 90 µs a statement, most
//! of the time a create held the writer while both CPUs were 40% idle. On one CPU a wake-up
//! is a switch of threads on that CPU. The rest of a request (HTTP, JSON, reads) still runs
//! on every CPU; only the part that holds the writer is sent here.
//!
//! With a single CPU allowed there is nothing to gain: no lane, everything runs inline (and
//! so on systems other than Linux, where the pinning is not written).

use std::{future::Future, sync::OnceLock};

use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};

static LANE: OnceLock<Option<Handle>> = OnceLock::new();
static SIDE: OnceLock<Option<Handle>> = OnceLock::new();

/// The lane's runtime, started at the first call (one per process, whatever the number of
/// databases opened), or `None` where there is none.
fn lane() -> Option<&'static Handle> {
    LANE.get_or_init(|| start(Which::Writer)).as_ref()
}

/// The SIP-server workers' lane: the same on another CPU than the writer's (see
/// [`spawn_side`]).
fn side() -> Option<&'static Handle> {
    SIDE.get_or_init(|| start(Which::Side)).as_ref()
}

#[derive(Clone, Copy)]
enum Which {
    Writer,
    Side,
}

#[cfg(not(target_os = "linux"))]
fn start(_: Which) -> Option<Handle> {
    None
}

#[cfg(target_os = "linux")]
fn start(which: Which) -> Option<Handle> {
    let allowed = rustix::thread::sched_getaffinity(None).ok()?;
    if allowed.count() < 2 {
        return None;
    }
    // The writer: the last CPU allowed (interrupts tend to land on the first ones); the side
    // lane: the first, another.
    let mut cpus = (0..rustix::thread::CpuSet::MAX_CPU).filter(|c| allowed.is_set(*c));
    let (cpu, name) = match which {
        Which::Writer => (cpus.next_back()?, "voxprov-writer"),
        Which::Side => (cpus.next()?, "voxprov-sipsrv"),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name(name.into())
        // A write's future is deep (handler, resource, store): room as on the main runtime's
        // threads and more.
        .stack_size(8 << 20)
        .spawn(move || {
            let mut only = rustix::thread::CpuSet::new();
            only.set(cpu);
            if let Err(e) = rustix::thread::sched_setaffinity(None, &only) {
                tracing::warn!(cpu, lane = name, error = %e, "lane: cannot pin its thread");
            }
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("voxprov-lane-bg")
                // The lane's blocking threads (argon2, building journal records) are started
                // from the pinned thread: they get every CPU back.
                .on_thread_start(move || {
                    if let Err(e) = rustix::thread::sched_setaffinity(None, &allowed) {
                        tracing::warn!(lane = name, error = %e, "lane: a blocking thread stays pinned");
                    }
                })
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(lane = name, error = %e, "lane: no runtime, its work runs inline");
                    let _ = tx.send(None);
                    return;
                }
            };
            let _ = tx.send(Some(rt.handle().clone()));
            // The lane lives as long as the process.
            rt.block_on(std::future::pending::<()>());
        });
    if let Err(e) = spawned {
        tracing::warn!(lane = name, error = %e, "lane: cannot start its thread, its work runs inline");
        return None;
    }
    rx.recv().ok().flatten()
}

/// Runs `work` on the lane (inline where there is none) and returns what it returned. If the
/// caller goes away meanwhile (a client that hung up), a write still waiting for its turn at
/// the writer gives up (see [`caller`]); one that holds the writer runs to its end.
pub(super) async fn run<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> Result<T> {
    match lane() {
        Some(h) => {
            let caller = CancellationToken::new();
            let _gone = caller.clone().drop_guard();
            h.spawn(CALLER.scope(caller, work))
                .await
                .map_err(Error::internal)
        }
        None => Ok(Box::pin(work).await),
    }
}

/// Whether there is a lane (work given to [`run`] runs in a task of its own).
pub(super) fn exists() -> bool {
    lane().is_some()
}

tokio::task_local! {
    /// Cancelled once the caller of [`run`] has gone away (a client that hung up).
    static CALLER: CancellationToken;
}

/// For work started by [`run`]: what tells that its caller has gone away. A write still
/// waiting for its turn at the writer then gives up, as it did when it ran in the caller's
/// task; one that holds the writer runs to its end.
pub(super) fn caller() -> Option<CancellationToken> {
    CALLER.try_with(|c| c.clone()).ok()
}

/// Starts `work` as a task on the lane (on the caller's runtime where there is none).
pub(super) fn spawn<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    match lane() {
        Some(h) => h.spawn(work),
        None => tokio::spawn(work),
    }
}

/// Starts `work` as a task on the side lane, on another CPU than the writer's (on the
/// caller's runtime where there is none). A SIP server's worker runs there: each batch is a
/// few dozen statements in a row on its reader connections and the SIP server's database
/// connection, opened from the lane (so their threads share its CPU), each a hand-off that
/// would otherwise wake a thread on the other CPU.
pub(super) fn spawn_side<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    match side() {
        Some(h) => h.spawn(work),
        None => tokio::spawn(work),
    }
}
