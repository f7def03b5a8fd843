//! Calling one hook once: an HTTP request, or an executable with the payload on stdin. The
//! same for both phases; what the answer means is the caller's business. Every call returns
//! what was sent and what came back, truncated and with credentials masked, for the
//! execution log.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use serde_json::{json, Map, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::sign;
use crate::crypto::Cipher;
use crate::error::{Error, Result};
use crate::store::hooks::HookRow;

/// Bodies kept in the execution log are cut here.
pub const LOG_BODY_LIMIT: usize = 16 * 1024;
/// Most of an answer read from a receiver or a script.
const ANSWER_LIMIT: usize = 256 * 1024;
/// Longest Retry-After honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    None,
    Basic { user: String, password: String },
    Bearer(String),
    Header { name: String, value: String },
}

/// A hook ready to call: decrypted, parsed.
#[derive(Clone)]
pub struct HookCfg {
    pub id: i64,
    pub name: String,
    pub reseller_id: Option<i64>,
    pub events: Vec<String>,
    pub kind: String,
    pub url: Option<String>,
    pub method: String,
    pub path: Option<String>,
    pub auth: Auth,
    pub priority: i64,
    pub timeout: Duration,
    pub fail_closed: bool,
    /// The current secret, then the previous one while its overlap lasts.
    pub secrets: Vec<String>,
    pub body_template: Option<String>,
    pub response_map: Vec<(String, String)>,
    pub filter_domain: Option<String>,
    pub filter_sipserver_id: Option<i64>,
    pub filter_customer_id: Option<i64>,
}

impl std::fmt::Debug for HookCfg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookCfg")
            .field("id", &self.id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl HookCfg {
    pub fn from_row(r: &HookRow, cipher: &Cipher) -> Result<HookCfg> {
        let value = r
            .auth_value_enc
            .as_deref()
            .map(|v| cipher.decrypt(v))
            .transpose()?
            .unwrap_or_default();
        let name = r.auth_name.clone().unwrap_or_default();
        let auth = match r.auth_type.as_str() {
            "basic" => Auth::Basic {
                user: name,
                password: value,
            },
            "bearer" => Auth::Bearer(value),
            "header" => Auth::Header { name, value },
            _ => Auth::None,
        };
        let mut secrets = vec![cipher.decrypt(&r.secret_enc)?];
        if let (Some(p), Some(until)) = (&r.previous_secret_enc, r.previous_secret_until) {
            if until > chrono::Utc::now().timestamp() {
                secrets.push(cipher.decrypt(p)?);
            }
        }
        let response_map = r
            .response_map
            .as_deref()
            .and_then(|m| serde_json::from_str::<Map<String, Value>>(m).ok())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|p| (k, p.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Ok(HookCfg {
            id: r.id,
            name: r.name.clone(),
            reseller_id: r.reseller_id,
            events: serde_json::from_str(&r.events).unwrap_or_default(),
            kind: r.kind.clone(),
            url: r.url.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            auth,
            priority: r.priority,
            timeout: Duration::from_secs(r.timeout.clamp(1, 30) as u64),
            fail_closed: r.failure_policy != "ignore",
            secrets,
            body_template: r.body_template.clone(),
            response_map,
            filter_domain: r.filter_domain.clone(),
            filter_sipserver_id: r.filter_sipserver_id,
            filter_customer_id: r.filter_customer_id,
        })
    }

    pub fn target(&self) -> crate::store::hooks::HookTarget {
        crate::store::hooks::HookTarget {
            id: self.id,
            reseller_id: self.reseller_id,
            events: String::new(),
            filter_domain: self.filter_domain.clone(),
            filter_sipserver_id: self.filter_sipserver_id,
            filter_customer_id: self.filter_customer_id,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx, or exit status 0.
    Success,
    /// Another status, or another exit status.
    Failure,
    Timeout,
    /// No answer at all: refused connection, bad address, a script that cannot start.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Timeout => "timeout",
            Outcome::Error => "error",
        }
    }
}

/// What one call did.
pub struct Answer {
    pub outcome: Outcome,
    /// HTTP status, or the script's exit status.
    pub status: Option<i64>,
    pub body: Vec<u8>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
    pub started_ms: i64,
    pub duration: Duration,
    /// For the execution log.
    pub request: Value,
    pub response: Option<Value>,
    /// Trying again cannot help (the body template fails): no retry.
    pub give_up: bool,
}

impl Answer {
    /// Nothing could be sent (`why`): given up at once, not retried.
    pub fn unsendable(why: &str) -> Answer {
        let mut a = Answer::none(json!({}));
        a.error = Some(why.to_string());
        a.give_up = true;
        a.started_ms = super::now_ms();
        a
    }

    /// No answer (yet): what was sent, for the log.
    fn none(request: Value) -> Answer {
        Answer {
            outcome: Outcome::Error,
            status: None,
            body: Vec::new(),
            error: None,
            retry_after: None,
            started_ms: 0,
            duration: Duration::ZERO,
            request,
            response: None,
            give_up: false,
        }
    }
}

/// What a call needs besides the hook.
#[derive(Clone)]
pub struct Caller {
    pub client: reqwest::Client,
    pub script_dir: Option<PathBuf>,
    pub allow_private: bool,
    /// Where body templates render: worker processes, off the server's threads and memory.
    pub templates: std::sync::Arc<crate::templating::isolated::Isolated>,
}

/// Text for the log: at most LOG_BODY_LIMIT bytes, without NUL characters (PostgreSQL's text
/// refuses them, and one would stop the log).
pub fn clean_text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).replace('\0', "\u{FFFD}")
}

fn cut(b: &[u8]) -> Value {
    let s = clean_text(&b[..b.len().min(LOG_BODY_LIMIT)]);
    if b.len() > LOG_BODY_LIMIT {
        json!(format!("{s}… [{} bytes in all]", b.len()))
    } else {
        json!(s)
    }
}

/// The context a hook's body template sees: the payload's fields, the object under its
/// singular name (`subscriber`) and `old`.
pub fn template_context(payload: &Value) -> Value {
    let mut ctx = payload.as_object().cloned().unwrap_or_default();
    if let Some(r) = payload.get("resource").and_then(Value::as_str) {
        ctx.insert(super::singular(r).to_string(), payload["object"].clone());
    }
    ctx.insert("old".into(), payload["old_object"].clone());
    Value::Object(ctx)
}

/// The values a hook's response_map takes from its answer: key → JSON at the pointer.
pub fn mapped(h: &HookCfg, body: &[u8]) -> Vec<(String, String)> {
    if h.response_map.is_empty() {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Vec::new();
    };
    h.response_map
        .iter()
        .filter_map(|(k, p)| v.pointer(p).map(|x| (k.clone(), x.to_string())))
        .collect()
}

fn retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
    let secs = (at.timestamp() - chrono::Utc::now().timestamp()).max(0) as u64;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

impl Caller {
    /// The request body: the payload as JSON, or the hook's template rendered (under the
    /// limits of [`crate::templating::HOOK_BODY`]) with [`template_context`].
    pub async fn render_body(
        &self,
        h: &HookCfg,
        payload: &Value,
    ) -> std::result::Result<(Vec<u8>, &'static str), crate::templating::TemplateError> {
        let Some(t) = &h.body_template else {
            return Ok((payload.to_string().into_bytes(), "application/json"));
        };
        let body = self
            .templates
            .render_json_body(
                h.reseller_id,
                t,
                template_context(payload),
                crate::templating::HOOK_BODY,
            )
            .await?;
        let ct = if serde_json::from_str::<Value>(&body).is_ok() {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        };
        Ok((body.into_bytes(), ct))
    }

    /// Calls the hook once with `payload` as message `webhook_id`.
    pub async fn call(&self, h: &HookCfg, webhook_id: &str, payload: &Value) -> Answer {
        let started_ms = super::now_ms();
        let start = Instant::now();
        let (body, ct) = match self.render_body(h, payload).await {
            Ok(b) => b,
            Err(e) => {
                // Rendering the same payload again would fail the same way: not retried
                // (unless the renderer itself was the trouble).
                let mut a = Answer::none(json!({ "template": h.body_template }));
                a.error = Some(format!("body_template: {e}"));
                a.give_up = e.is_final();
                a.started_ms = started_ms;
                a.duration = start.elapsed();
                return a;
            }
        };
        let mut a = if h.kind == "script" {
            self.run_script(h, &body).await
        } else {
            self.send_http(h, webhook_id, &body, ct).await
        };
        a.started_ms = started_ms;
        a.duration = start.elapsed();
        a
    }

    async fn send_http(&self, h: &HookCfg, webhook_id: &str, body: &[u8], ct: &str) -> Answer {
        let url = h.url.clone().unwrap_or_default();
        let ts = chrono::Utc::now().timestamp();
        let secrets: Vec<&str> = h.secrets.iter().map(String::as_str).collect();
        let mut headers: Vec<(String, String)> = vec![
            ("content-type".into(), ct.into()),
            ("webhook-id".into(), webhook_id.into()),
            ("webhook-timestamp".into(), ts.to_string()),
            (
                "webhook-signature".into(),
                sign::header(&secrets, webhook_id, ts, body),
            ),
        ];
        let mut logged: Map<String, Value> =
            headers.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        match &h.auth {
            Auth::None => {}
            Auth::Basic { user, password } => {
                use base64::Engine;
                let v =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                headers.push(("authorization".into(), format!("Basic {v}")));
                logged.insert("authorization".into(), json!("Basic ********"));
            }
            Auth::Bearer(t) => {
                headers.push(("authorization".into(), format!("Bearer {t}")));
                logged.insert("authorization".into(), json!("Bearer ********"));
            }
            Auth::Header { name, value } => {
                headers.push((name.to_ascii_lowercase(), value.clone()));
                logged.insert(name.to_ascii_lowercase(), json!("********"));
            }
        }
        let request =
            json!({ "method": h.method, "url": url, "headers": logged, "body": cut(body) });
        let mut a = Answer::none(request);
        // Literal addresses never reach the guarded resolver: check them here, every time.
        if let Err(e) = super::net::check_url(&url, self.allow_private) {
            a.error = Some(format!("url {e}"));
            return a;
        }
        let method =
            reqwest::Method::from_bytes(h.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut rb = self
            .client
            .request(method, &url)
            .timeout(h.timeout)
            .body(body.to_vec());
        for (k, v) in &headers {
            rb = rb.header(k.as_str(), v.as_str());
        }
        let fut = async {
            let resp = rb.send().await?;
            let status = resp.status();
            let rh: Map<String, Value> = resp
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(clean_text(v.as_bytes()))))
                .collect();
            let ra = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after);
            let mut body = Vec::new();
            let mut resp = resp;
            while let Some(chunk) = resp.chunk().await? {
                body.extend_from_slice(&chunk[..chunk.len().min(ANSWER_LIMIT - body.len())]);
                if body.len() >= ANSWER_LIMIT {
                    break;
                }
            }
            Ok::<_, reqwest::Error>((status, rh, ra, body))
        };
        match tokio::time::timeout(h.timeout, fut).await {
            Err(_) => {
                a.outcome = Outcome::Timeout;
                a.error = Some(format!("no answer within {} s", h.timeout.as_secs()));
            }
            Ok(Err(e)) if e.is_timeout() => {
                a.outcome = Outcome::Timeout;
                a.error = Some(format!("no answer within {} s", h.timeout.as_secs()));
            }
            Ok(Err(e)) => {
                a.error = Some(describe(&e));
            }
            Ok(Ok((status, rh, ra, body))) => {
                a.outcome = if status.is_success() {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                a.status = Some(status.as_u16() as i64);
                if !status.is_success() {
                    a.error = Some(format!("answered {status}"));
                }
                a.retry_after = ra;
                a.response =
                    Some(json!({ "status": status.as_u16(), "headers": rh, "body": cut(&body) }));
                a.body = body;
            }
        }
        a
    }

    async fn run_script(&self, h: &HookCfg, body: &[u8]) -> Answer {
        let name = h.path.clone().unwrap_or_default();
        let mut a = Answer::none(json!({ "path": name, "stdin": cut(body) }));
        let path = match script_path(self.script_dir.as_deref(), &name) {
            Ok(p) => p,
            Err(e) => {
                a.error = Some(e.to_string());
                return a;
            }
        };
        match run(&path, body, h.timeout).await {
            Err(e) => a.error = Some(e),
            Ok(None) => {
                a.outcome = Outcome::Timeout;
                a.error = Some(format!("killed after {} s", h.timeout.as_secs()));
            }
            Ok(Some((code, stdout, stderr))) => {
                a.status = Some(code);
                a.outcome = if code == 0 {
                    Outcome::Success
                } else {
                    Outcome::Failure
                };
                if code != 0 {
                    let tail = clean_text(&stderr[..stderr.len().min(500)])
                        .trim()
                        .to_string();
                    a.error = Some(if tail.is_empty() {
                        format!("exit status {code}")
                    } else {
                        format!("exit status {code}: {tail}")
                    });
                }
                a.response = Some(
                    json!({ "exit_status": code, "stdout": cut(&stdout), "stderr": cut(&stderr) }),
                );
                a.body = stdout;
            }
        }
        a
    }
}

fn describe(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

/// A script hook's executable: a plain file name inside the configured directory, never a
/// path out of it.
pub fn script_path(dir: Option<&Path>, name: &str) -> Result<PathBuf> {
    let Some(dir) = dir else {
        return Err(Error::invalid(
            "kind",
            "script hooks are off: the operator sets hooks.script_dir to allow them",
        ));
    };
    if name.is_empty() || name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return Err(Error::invalid(
            "path",
            "must be a file name in the hooks directory",
        ));
    }
    let p = dir.join(name);
    let canon = p.canonicalize().map_err(|_| {
        Error::invalid(
            "path",
            format!("no executable '{name}' in the hooks directory"),
        )
    })?;
    let root = dir.canonicalize().map_err(Error::internal)?;
    if !canon.starts_with(&root) {
        return Err(Error::invalid("path", "leads out of the hooks directory"));
    }
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(&canon).map_err(Error::internal)?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(Error::invalid(
            "path",
            format!("'{name}' is not an executable file"),
        ));
    }
    Ok(canon)
}

/// Runs `path` with no shell, no arguments and an empty environment, `input` on stdin; kills
/// its whole process group at the timeout (`None`). Returns (exit status, stdout, stderr).
async fn run(
    path: &Path,
    input: &[u8],
    timeout: Duration,
) -> std::result::Result<Option<(i64, Vec<u8>, Vec<u8>)>, String> {
    use std::process::Stdio;
    let mut child = tokio::process::Command::new(path)
        .env_clear()
        .current_dir(path.parent().unwrap_or(Path::new("/")))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
    let pid = child.id();
    let mut stdin = child.stdin.take();
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let input = input.to_vec();
    let work = async move {
        let feed = async {
            if let Some(mut s) = stdin.take() {
                // A script that does not read its input is not an error.
                let _ = s.write_all(&input).await;
                let _ = s.shutdown().await;
            }
        };
        let mut out = Vec::new();
        let mut err = Vec::new();
        let read_out = async {
            let mut buf = [0u8; 8192];
            loop {
                match stdout.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if out.len() < ANSWER_LIMIT => out.extend_from_slice(&buf[..n]),
                    Ok(_) => {}
                }
            }
        };
        let read_err = async {
            let mut buf = [0u8; 8192];
            loop {
                match stderr.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) if err.len() < LOG_BODY_LIMIT => err.extend_from_slice(&buf[..n]),
                    Ok(_) => {}
                }
            }
        };
        tokio::join!(feed, read_out, read_err);
        let status = child.wait().await;
        (status, out, err)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((Ok(status), out, err)) => {
            Ok(Some((status.code().map(i64::from).unwrap_or(-1), out, err)))
        }
        Ok((Err(e), _, _)) => Err(format!("waiting for the script: {e}")),
        Err(_) => {
            if let Some(pid) = pid {
                // The script and anything it started.
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(retry_after("120"), Some(Duration::from_secs(120)));
        assert_eq!(retry_after("999999999"), Some(MAX_RETRY_AFTER));
        assert!(retry_after("Wed, 21 Oct 2015 07:28:00 GMT").is_some());
        assert_eq!(retry_after("soon"), None);
    }
}
