//! Tenant templates rendered in worker processes of their own (`voxprov render-worker`, the
//! same binary): each worker lowers its priority and caps its memory, reads one request per
//! line on standard input and answers one line on standard output. The server keeps a few
//! of them, gives each tenant at most one at a time, and kills a worker that misses its
//! deadline or dies (a memory limit hit aborts it); the next render starts a fresh one.
//!
//! What crosses the pipe is JSON: the template's text, the context, and the limits.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Semaphore;

use super::{Limits, TemplateError};

/// The command-line word that makes the binary a worker.
pub const WORKER_ARG: &str = "render-worker";
/// Memory a worker may hold (heap and anonymous mappings).
const MEMORY_LIMIT: u64 = 32 * 1024 * 1024;
/// Renders share the machine with the API: workers run at a lower priority.
const NICENESS: i32 = 19;
/// How long a render may wait for its owner's turn and a free worker.
const QUEUE_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Serialize, Deserialize)]
struct Request {
    /// Which environment: "json_body".
    env: String,
    template: String,
    context: Value,
    fuel: u64,
    max_output: usize,
    /// A trial render with a sample context: missing attributes read as empty, so the render
    /// goes as far as it can.
    #[serde(default)]
    trial: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Ok(String),
    Err(TemplateErrorWire),
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "detail")]
enum TemplateErrorWire {
    Invalid(String),
    Fuel(u64),
    TooLarge(usize),
}

impl From<TemplateErrorWire> for TemplateError {
    fn from(w: TemplateErrorWire) -> Self {
        match w {
            TemplateErrorWire::Invalid(s) => TemplateError::Invalid(s),
            TemplateErrorWire::Fuel(n) => TemplateError::Fuel(n),
            TemplateErrorWire::TooLarge(n) => TemplateError::TooLarge(n),
        }
    }
}

/// The worker's main loop (the process was started with [`WORKER_ARG`]). Returns when its
/// standard input closes.
pub fn worker_main() -> std::process::ExitCode {
    use rustix::process::{setpriority_process, setrlimit, Resource, Rlimit};
    use std::io::{BufRead, Write};
    let _ = setpriority_process(None, NICENESS);
    let limit = Rlimit {
        current: Some(MEMORY_LIMIT),
        maximum: Some(MEMORY_LIMIT),
    };
    if setrlimit(Resource::Data, limit).is_err() {
        // Without its memory limit a worker is no safer than the server: refuse to run.
        return std::process::ExitCode::from(3);
    }
    let stdin = std::io::stdin().lock();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lines() {
        let Ok(line) = line else { break };
        let answer = match serde_json::from_str::<Request>(&line) {
            Ok(req) => render(&req),
            Err(e) => Answer::Err(TemplateErrorWire::Invalid(format!("bad request: {e}"))),
        };
        let mut out = serde_json::to_string(&answer).unwrap_or_default();
        out.push('\n');
        if stdout
            .write_all(out.as_bytes())
            .and_then(|_| stdout.flush())
            .is_err()
        {
            break;
        }
    }
    std::process::ExitCode::SUCCESS
}

fn render(req: &Request) -> Answer {
    let mut env = match req.env.as_str() {
        "json_body" => super::json_body_env(req.fuel),
        other => {
            return Answer::Err(TemplateErrorWire::Invalid(format!(
                "unknown environment {other}"
            )))
        }
    };
    if req.trial {
        env.set_undefined_behavior(minijinja::UndefinedBehavior::Chainable);
    }
    match super::render_source(&mut env, "t", &req.template, &req.context, req.max_output) {
        Ok(s) => Answer::Ok(s),
        Err(TemplateError::Fuel(n)) => Answer::Err(TemplateErrorWire::Fuel(n)),
        Err(TemplateError::TooLarge(n)) => Answer::Err(TemplateErrorWire::TooLarge(n)),
        Err(e) => Answer::Err(TemplateErrorWire::Invalid(e.to_string())),
    }
}

struct Worker {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    async fn exchange(&mut self, req: &[u8]) -> std::io::Result<Answer> {
        self.stdin.write_all(req).await?;
        self.stdin.flush().await?;
        let mut line = String::new();
        if self.stdout.read_line(&mut line).await? == 0 {
            return Err(std::io::Error::other("the worker ended"));
        }
        serde_json::from_str(&line).map_err(std::io::Error::other)
    }
}

/// The server's side: a few worker processes shared by every tenant, at most one per tenant
/// at a time.
pub struct Isolated {
    exe: PathBuf,
    slots: Semaphore,
    idle: Mutex<Vec<Worker>>,
    /// One place per owner (a reseller, or the operator as `None`).
    owners: Mutex<HashMap<Option<i64>, Arc<Semaphore>>>,
}

impl Isolated {
    /// `workers` processes at most, started when first needed.
    pub fn new(workers: usize) -> Isolated {
        Isolated {
            // /proc/self/exe is the running binary even after a package upgrade replaced the
            // file on disk.
            exe: if cfg!(target_os = "linux") {
                PathBuf::from("/proc/self/exe")
            } else {
                std::env::current_exe().unwrap_or_else(|_| PathBuf::from("voxprov"))
            },
            slots: Semaphore::new(workers.max(1)),
            idle: Mutex::new(Vec::new()),
            owners: Mutex::new(HashMap::new()),
        }
    }

    fn spawn(&self) -> Result<Worker, TemplateError> {
        let mut child = Command::new(&self.exe)
            .arg(WORKER_ARG)
            .env_clear()
            // mimalloc (the global allocator) would otherwise map its first arena writable,
            // a gigabyte, before the worker lowers its data limit, and serve the template's
            // allocations from it past that limit; committed as used, they count against it.
            .env("MIMALLOC_ARENA_EAGER_COMMIT", "0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| TemplateError::Unavailable(format!("cannot start a renderer: {e}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(TemplateError::Unavailable("renderer without pipes".into()));
        };
        Ok(Worker {
            child,
            stdin,
            stdout: BufReader::new(stdout),
        })
    }

    /// Renders a hook body (see [`super::json_body_env`]) for `owner`.
    pub async fn render_json_body(
        &self,
        owner: Option<i64>,
        template: &str,
        context: Value,
        limits: Limits,
    ) -> Result<String, TemplateError> {
        self.render(owner, template, context, limits, false).await
    }

    /// Renders a hook body once with a sample context, as it is saved: an error that only
    /// the sample causes (a missing attribute) does not count, a limit does.
    pub async fn trial_json_body(
        &self,
        owner: Option<i64>,
        template: &str,
        context: Value,
        limits: Limits,
    ) -> Result<(), TemplateError> {
        match self.render(owner, template, context, limits, true).await {
            Ok(_) | Err(TemplateError::Invalid(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn render(
        &self,
        owner: Option<i64>,
        template: &str,
        context: Value,
        limits: Limits,
        trial: bool,
    ) -> Result<String, TemplateError> {
        let req = Request {
            env: "json_body".into(),
            template: template.to_string(),
            context,
            fuel: limits.fuel,
            max_output: limits.max_output,
            trial,
        };
        let mut line = serde_json::to_vec(&req)
            .map_err(|e| TemplateError::Invalid(format!("context: {e}")))?;
        line.push(b'\n');
        // Waiting for a place is not rendering: an owner's renders queue behind each other
        // (its own backlog), and the wall-clock limit starts when its render does.
        let queued = tokio::time::Instant::now() + QUEUE_WAIT;
        let busy = || TemplateError::Busy(QUEUE_WAIT.as_secs());
        let own = self
            .owners
            .lock()
            .expect("owners")
            .entry(owner)
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone();
        let _own = tokio::time::timeout_at(queued, own.acquire_owned())
            .await
            .map_err(|_| busy())?
            .map_err(|_| TemplateError::Unavailable("closed".into()))?;
        let _slot = tokio::time::timeout_at(queued, self.slots.acquire())
            .await
            .map_err(|_| busy())?
            .map_err(|_| TemplateError::Unavailable("closed".into()))?;
        let idle = self.idle.lock().expect("idle").pop();
        let mut w = match idle {
            Some(w) => w,
            None => self.spawn()?,
        };
        let deadline = tokio::time::Instant::now() + limits.wall;
        let timeout = || TemplateError::Timeout(limits.wall.as_millis());
        match tokio::time::timeout_at(deadline, w.exchange(&line)).await {
            Ok(Ok(answer)) => {
                self.idle.lock().expect("idle").push(w);
                match answer {
                    Answer::Ok(s) => Ok(s),
                    Answer::Err(e) => Err(e.into()),
                }
            }
            Ok(Err(e)) => {
                // A worker dies mid-render when an allocation fails at its memory limit
                // (Rust aborts: SIGABRT); anything else is the renderer's own trouble.
                use std::os::unix::process::ExitStatusExt;
                let status =
                    tokio::time::timeout(std::time::Duration::from_millis(500), w.child.wait())
                        .await;
                match status {
                    Ok(Ok(s)) if s.signal() == Some(6) => Err(TemplateError::Memory),
                    Ok(Ok(s)) => Err(TemplateError::Unavailable(format!("renderer {s}: {e}"))),
                    _ => Err(TemplateError::Unavailable(format!("renderer: {e}"))),
                }
            }
            // Dropping the worker kills it.
            Err(_) => Err(timeout()),
        }
    }
}
