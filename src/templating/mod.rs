//! Templates that people other than voxprov's authors write — hook bodies, phone
//! configurations, converted kazoo-provision documents — run under four limits, whoever wrote
//! them: an instruction budget (minijinja's fuel), a cap on the output, a wall-clock limit, and
//! off the async worker threads, so that a template never slows a request that has nothing to
//! do with it.
//!
//! Two places to run them:
//! - [`RenderPool`]: a bounded set of blocking threads in this process, for templates only
//!   admins write (phone configurations, rendered on the provisioning hot path);
//! - [`isolated::Isolated`]: separate worker processes with a memory limit, killed at the
//!   deadline, for templates a tenant writes (a reseller's hook body). Fuel bounds the number
//!   of instructions, not what one instruction allocates: a string doubled thirty times is a
//!   few dozen instructions and gigabytes of memory. Only a process of its own can be stopped
//!   at any point and held to a memory limit without taking the server with it.

pub mod isolated;

use std::sync::Arc;
use std::time::Duration;

use minijinja::Environment;
use serde_json::Value;
use tokio::sync::Semaphore;

/// The limits one render runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// minijinja instructions.
    pub fuel: u64,
    /// Bytes of output.
    pub max_output: usize,
    pub wall: Duration,
}

/// Hook bodies: small JSON documents built from one event.
pub const HOOK_BODY: Limits = Limits {
    fuel: 200_000,
    max_output: 256 * 1024,
    wall: Duration::from_secs(1),
};

/// Phone configurations: the shipped templates need a few thousand instructions and write
/// tens of kilobytes.
pub const DEVICE: Limits = Limits {
    fuel: 5_000_000,
    max_output: 1024 * 1024,
    wall: Duration::from_secs(2),
};

/// Why a render did not produce output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("{0}")]
    Invalid(String),
    #[error("the template ran out of its instruction budget ({0} instructions)")]
    Fuel(u64),
    #[error("the template's output exceeds the limit of {0} bytes")]
    TooLarge(usize),
    #[error("the template did not finish within {0} ms")]
    Timeout(u128),
    #[error("the template exceeded the renderer's memory limit")]
    Memory,
    #[error("no template renderer is available: {0}")]
    Unavailable(String),
    #[error("the renderer was busy with this owner's templates for {0} s")]
    Busy(u64),
}

impl TemplateError {
    /// Whether the same template with the same data would fail again (so a delivery is not
    /// retried), as opposed to the renderer's own trouble (retried later).
    pub fn is_final(&self) -> bool {
        !matches!(self, TemplateError::Busy(_) | TemplateError::Unavailable(_))
    }
}

/// A writer that refuses to grow past its limit: rendering stops at the first byte too many.
struct Capped {
    buf: Vec<u8>,
    limit: usize,
    over: bool,
}

impl std::io::Write for Capped {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.buf.len() + b.len() > self.limit {
            self.over = true;
            return Err(std::io::Error::other("output limit"));
        }
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Renders template `name` of `env` (whose fuel is set) with `ctx`, at most `max_output`
/// bytes.
pub fn render_capped(
    env: &Environment<'_>,
    name: &str,
    ctx: &Value,
    max_output: usize,
) -> Result<String, TemplateError> {
    let t = env
        .get_template(name)
        .map_err(|e| TemplateError::Invalid(format!("{e:#}")))?;
    render_template(&t, ctx, max_output, env.fuel().unwrap_or(0))
}

/// Compiles `source` into `env` under `name` and renders it once.
pub fn render_source(
    env: &mut Environment<'_>,
    name: &str,
    source: &str,
    ctx: &Value,
    max_output: usize,
) -> Result<String, TemplateError> {
    let fuel = env.fuel().unwrap_or(0);
    env.add_template_owned(name.to_string(), source.to_string())
        .map_err(|e| TemplateError::Invalid(format!("{e:#}")))?;
    let t = env
        .get_template(name)
        .map_err(|e| TemplateError::Invalid(format!("{e:#}")))?;
    render_template(&t, ctx, max_output, fuel)
}

fn render_template(
    t: &minijinja::Template<'_, '_>,
    ctx: &Value,
    max_output: usize,
    fuel: u64,
) -> Result<String, TemplateError> {
    let mut out = Capped {
        buf: Vec::new(),
        limit: max_output,
        over: false,
    };
    match t.render_captured_to(minijinja::Value::from_serialize(ctx), &mut out) {
        Ok(_) => String::from_utf8(out.buf)
            .map_err(|_| TemplateError::Invalid("the output is not UTF-8".into())),
        Err(_) if out.over => Err(TemplateError::TooLarge(max_output)),
        Err(e) if e.kind() == minijinja::ErrorKind::OutOfFuel => Err(TemplateError::Fuel(fuel)),
        Err(e) => Err(TemplateError::Invalid(format!("{e:#}"))),
    }
}

/// A bounded set of blocking threads for renders: at most `size` at once, each waited for at
/// most its wall-clock limit. A render past its deadline keeps its thread (and its place)
/// until its fuel runs out, so runaway renders can never take more than `size` threads.
#[derive(Clone)]
pub struct RenderPool {
    slots: Arc<Semaphore>,
}

impl RenderPool {
    pub fn new(size: usize) -> RenderPool {
        RenderPool {
            slots: Arc::new(Semaphore::new(size.max(1))),
        }
    }

    /// One render per core: renders are pure CPU.
    pub fn per_core() -> RenderPool {
        RenderPool::new(
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
        )
    }

    pub async fn run<T: Send + 'static>(
        &self,
        wall: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TemplateError> {
        let started = tokio::time::Instant::now();
        let permit = tokio::time::timeout(wall, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| TemplateError::Timeout(wall.as_millis()))?
            .map_err(|_| TemplateError::Unavailable("the render pool is closed".into()))?;
        let task = tokio::task::spawn_blocking(move || {
            let out = f();
            drop(permit);
            out
        });
        let left = wall.saturating_sub(started.elapsed());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(TemplateError::Unavailable(format!("render failed: {e}"))),
            Err(_) => Err(TemplateError::Timeout(wall.as_millis())),
        }
    }
}

/// The environment hook bodies render in: values are escaped for use inside a JSON string,
/// so `"{{subscriber.display_name}}"` stays valid JSON whatever the name holds; objects and
/// lists print as JSON; `|tojson` gives a complete JSON value.
pub fn json_body_env(fuel: u64) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(fuel));
    env.set_recursion_limit(32);
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() || value.is_none() {
            return Ok(());
        }
        let text = if let Some(s) = value.as_str() {
            let quoted = serde_json::to_string(s).unwrap_or_default();
            quoted[1..quoted.len() - 1].to_string()
        } else if matches!(
            value.kind(),
            minijinja::value::ValueKind::Map | minijinja::value::ValueKind::Seq
        ) {
            serde_json::to_string(value).unwrap_or_default()
        } else {
            value.to_string()
        };
        out.write_str(&text)
            .map_err(|_| minijinja::Error::new(minijinja::ErrorKind::WriteFailure, "cannot write"))
    });
    env
}

/// Checks that a hook body template compiles (its trial render is [`isolated`]'s).
pub fn check_json_body_syntax(source: &str) -> Result<(), String> {
    json_body_env(0)
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(fuel: u64) -> Environment<'static> {
        let mut e = Environment::new();
        e.set_fuel(Some(fuel));
        e
    }

    #[test]
    fn output_past_the_cap_is_refused_without_being_built() {
        let r = render_source(
            &mut env(1_000_000),
            "t",
            "{% for i in range(100000) %}0123456789{% endfor %}",
            &serde_json::json!({}),
            4096,
        );
        assert_eq!(r, Err(TemplateError::TooLarge(4096)));
    }

    #[test]
    fn a_loop_without_end_runs_out_of_fuel() {
        let r = render_source(
            &mut env(10_000),
            "t",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &serde_json::json!({}),
            4096,
        );
        assert_eq!(r, Err(TemplateError::Fuel(10_000)));
    }

    #[test]
    fn hook_bodies_escape_values_for_json_strings() {
        let out = render_source(
            &mut json_body_env(1000),
            "t",
            r#"{"n": "{{ name }}"}"#,
            &serde_json::json!({"name": "a\"b\n"}),
            4096,
        )
        .unwrap();
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap()["n"], "a\"b\n");
    }

    #[tokio::test]
    async fn the_pool_gives_up_waiting_at_the_deadline() {
        let pool = RenderPool::new(1);
        let r = pool
            .run(Duration::from_millis(50), || {
                std::thread::sleep(Duration::from_millis(300))
            })
            .await;
        assert_eq!(r, Err(TemplateError::Timeout(50)));
        // The runaway still holds the only slot: the next render waits its turn.
        let r = pool.run(Duration::from_millis(50), || 1).await;
        assert_eq!(r, Err(TemplateError::Timeout(50)));
        let r = pool.run(Duration::from_secs(2), || 2).await;
        assert_eq!(r, Ok(2));
    }
}
