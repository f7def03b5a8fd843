//! Lanes: threads pinned to one CPU, each with a runtime of its own. The SQLite writer's lane
//! runs write transactions next to the thread sqlx gives the writer's connection (that thread
//! is started from the lane, so it is pinned to the same CPU); each SIP server's worker has a
//! lane of its own on another CPU (see [`spawn_own`]).
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

/// The lane's runtime, started at the first call (one per process, whatever the number of
/// databases opened), or `None` where there is none.
fn lane() -> Option<&'static Handle> {
    LANE.get_or_init(start).as_ref()
}

/// The CPUs allowed to the process, and the one of them the writer's lane takes: the last
/// (interrupts tend to land on the first ones). `None`: fewer than two CPUs, no lanes. Read
/// from the main thread (whose id is the process's), never pinned: asked from a lane, the
/// calling thread's own set would be its one CPU.
#[cfg(target_os = "linux")]
fn cpus() -> Option<(rustix::thread::CpuSet, usize)> {
    let allowed = rustix::thread::sched_getaffinity(Some(rustix::process::getpid())).ok()?;
    if allowed.count() < 2 {
        return None;
    }
    let last = (0..rustix::thread::CpuSet::MAX_CPU)
        .rev()
        .find(|c| allowed.is_set(*c))?;
    Some((allowed, last))
}

/// Pins the calling thread to `cpu`.
#[cfg(target_os = "linux")]
fn pin(cpu: usize, lane: &str) {
    let mut only = rustix::thread::CpuSet::new();
    only.set(cpu);
    if let Err(e) = rustix::thread::sched_setaffinity(None, &only) {
        tracing::warn!(cpu, lane, error = %e, "lane: cannot pin its thread");
    }
}

/// A lane's runtime: its blocking threads (argon2, building journal records, comparing a SIP
/// server's tables) are started from the pinned thread and get every `allowed` CPU back.
#[cfg(target_os = "linux")]
fn runtime(
    allowed: rustix::thread::CpuSet,
    lane: &'static str,
) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("voxprov-lane-bg")
        .on_thread_start(move || {
            if let Err(e) = rustix::thread::sched_setaffinity(None, &allowed) {
                tracing::warn!(lane, error = %e, "lane: a blocking thread stays pinned");
            }
        })
        .build()
}

#[cfg(not(target_os = "linux"))]
fn start() -> Option<Handle> {
    None
}

#[cfg(target_os = "linux")]
fn start() -> Option<Handle> {
    let (allowed, cpu) = cpus()?;
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("voxprov-writer".into())
        // A write's future is deep (handler, resource, store): room as on the main runtime's
        // threads and more.
        .stack_size(8 << 20)
        .spawn(move || {
            pin(cpu, "writer");
            let rt = match runtime(allowed, "writer") {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::warn!(error = %e, "writer lane: no runtime, writes run inline");
                    let _ = tx.send(None);
                    return;
                }
            };
            let _ = tx.send(Some(rt.handle().clone()));
            // The lane lives as long as the process.
            rt.block_on(std::future::pending::<()>());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "writer lane: cannot start its thread, writes run inline");
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

/// Starts `work` on a lane of its own: a thread with its own runtime, pinned to a CPU other
/// than the writer's (taken in turn where there are several), that ends with the work. A SIP
/// server's worker runs so: each batch is a few dozen statements in a row on its reader
/// connections and the SIP server's database connection, opened from that thread (so their
/// threads share its CPU), each a hand-off that would otherwise often wake a thread asleep on
/// another CPU. One thread per worker: a worker's long synchronous stretch (a full load)
/// never holds up another's, which may hold the single writer meanwhile. Where there are no
/// lanes: a task on the caller's runtime.
pub(super) fn spawn_own<T: Send + 'static>(
    work: impl Future<Output = T> + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    #[cfg(target_os = "linux")]
    if let Some((allowed, writer)) = cpus() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static TURN: AtomicUsize = AtomicUsize::new(0);
        let others: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|c| *c != writer && allowed.is_set(*c))
            .collect();
        let cpu = others[TURN.fetch_add(1, Ordering::Relaxed) % others.len()];
        match runtime(allowed, "sipserver") {
            Ok(rt) => {
                // The task is the runtime's from now on; the thread drives it until it ends,
                // aborted or not (the guard inside goes with it), then drops the runtime.
                let (done, ended) = tokio::sync::oneshot::channel::<()>();
                let task = rt.handle().spawn(async move {
                    let _done = done;
                    work.await
                });
                let started = std::thread::Builder::new()
                    .name("voxprov-sipsrv".into())
                    .stack_size(8 << 20)
                    .spawn(move || {
                        pin(cpu, "sipserver");
                        rt.block_on(async {
                            let _ = ended.await;
                        });
                    });
                if let Err(e) = started {
                    // The runtime, dropped with the closure, cancels the task: its owner sees
                    // it ended and starts it again later.
                    tracing::warn!(error = %e, "lane: cannot start a thread for a SIP server's worker");
                }
                return task;
            }
            Err(e) => {
                tracing::warn!(error = %e, "lane: no runtime for a SIP server's worker, it runs on the server's")
            }
        }
    }
    tokio::spawn(work)
}

/// Whether [`spawn_own`] gives work a lane of its own.
pub(super) fn own_lanes() -> bool {
    #[cfg(target_os = "linux")]
    {
        cpus().is_some()
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}
