//! Telling a SIP server to reload what it caches: JSON-RPC 2.0 over HTTP (Kamailio's
//! jsonrpcs + xhttp, OpenSIPS's mi_http), or over a Unix datagram socket (Kamailio's jsonrpcs
//! `dgram` transport).

use std::time::Duration;

use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(5);

pub async fn call(rpc_url: &str, method: &str) -> anyhow::Result<Value> {
    send(
        rpc_url,
        method,
        json!({ "jsonrpc": "2.0", "method": method, "id": 1 }),
    )
    .await
}

/// A call with positional parameters.
pub async fn call_with(rpc_url: &str, method: &str, params: Value) -> anyhow::Result<Value> {
    let req = json!({ "jsonrpc": "2.0", "method": method, "params": params, "id": 1 });
    send(rpc_url, method, req).await
}

async fn send(rpc_url: &str, method: &str, req: Value) -> anyhow::Result<Value> {
    let resp: Value = if rpc_url.starts_with("http://") || rpc_url.starts_with("https://") {
        let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        let r = client.post(rpc_url).json(&req).send().await?;
        let status = r.status();
        let body = r.text().await?;
        if !status.is_success() {
            // Kamailio answers a JSON-RPC error with an HTTP error status too: keep its text
            // ("ongoing reload", "Record not found") for the caller.
            let detail = serde_json::from_str::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").cloned())
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            anyhow::bail!("{method}: HTTP {status}{detail}");
        }
        serde_json::from_str(&body)
            .map_err(|e| anyhow::anyhow!("{method}: answer is not JSON-RPC: {e}"))?
    } else {
        let path = rpc_url.strip_prefix("unix:").unwrap_or(rpc_url);
        dgram(path, &req).await?
    };
    if let Some(err) = resp.get("error") {
        anyhow::bail!("{method}: {}", err);
    }
    Ok(resp.get("result").cloned().unwrap_or(Value::Null))
}

/// One request and its answer over a Unix datagram socket; the server answers to the
/// sender's address, so we bind a socket of our own for the reply.
async fn dgram(path: &str, req: &Value) -> anyhow::Result<Value> {
    let dir = std::env::temp_dir();
    let me = dir.join(format!(
        "voxprov-rpc-{}.sock",
        uuid::Uuid::new_v4().simple()
    ));
    let sock = tokio::net::UnixDatagram::bind(&me)?;
    let result = async {
        sock.send_to(req.to_string().as_bytes(), path).await?;
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(TIMEOUT, sock.recv(&mut buf))
            .await
            .map_err(|_| anyhow::anyhow!("no answer from {path}"))??;
        Ok(serde_json::from_slice(&buf[..n])?)
    }
    .await;
    let _ = std::fs::remove_file(&me);
    result
}
