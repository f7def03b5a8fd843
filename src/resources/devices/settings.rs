//! Device settings shared by profiles, customers and devices: known settings checked by
//! type, secrets encrypted and shown masked.

use super::*;

// ---------------------------------------------------------------------------------------
// Settings (profiles, customers, devices)

/// Validates a settings object: known settings by type, others as plain scalars; secrets
/// encrypted (a masked value keeps the stored one).
pub(super) fn check_settings(
    app: &App,
    field: &str,
    v: Option<Value>,
    old: Option<&str>,
) -> Result<String> {
    let Some(v) = v else { return Ok("{}".into()) };
    let Value::Object(m) = v else {
        return Err(Error::invalid(field, "must be an object"));
    };
    let old: Map<String, Value> = old
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default();
    let mut out = Map::new();
    for (k, v) in m {
        let f = format!("{field}.{k}");
        if v.is_null() {
            continue;
        }
        let s = |max: usize| -> Result<Value> {
            match &v {
                Value::String(s) if s.len() <= max && !s.chars().any(char::is_control) => {
                    Ok(v.clone())
                }
                _ => Err(Error::invalid(
                    &f,
                    format!("must be text of at most {max} characters"),
                )),
            }
        };
        let int = |lo: i64, hi: i64| -> Result<Value> {
            match v.as_i64() {
                Some(n) if (lo..=hi).contains(&n) => Ok(json!(n)),
                _ => Err(Error::invalid(
                    &f,
                    format!("must be an integer between {lo} and {hi}"),
                )),
            }
        };
        let val = match k.as_str() {
            "admin_password" => {
                if v.as_str() == Some(MASK) {
                    match old.get(&k) {
                        Some(x) => x.clone(),
                        None => return Err(Error::invalid(&f, "no stored password to keep")),
                    }
                } else {
                    s(64)?;
                    json!(app.cipher.encrypt(v.as_str().unwrap_or_default())?)
                }
            }
            "timezone" | "ntp_server" | "sip_server" | "outbound_proxy" | "syslog_server" => {
                s(255)?
            }
            "language" => s(16)?,
            "dial_plan" => s(1024)?,
            "provisioning_url" | "firmware_url" => {
                let x = s(500)?;
                let u = x.as_str().unwrap_or_default();
                // Phones fetch /prov/ over HTTP(S); firmware may also come by TFTP.
                let tftp = k == "firmware_url" && u.starts_with("tftp://");
                if !(u.starts_with("http://") || u.starts_with("https://") || tftp)
                    || url::Url::parse(u).is_err()
                {
                    return Err(Error::invalid(
                        &f,
                        "must be an http(s) URL (firmware: or tftp)",
                    ));
                }
                x
            }
            "transport" => match v.as_str() {
                Some("udp" | "tcp" | "tls") => v.clone(),
                _ => return Err(Error::invalid(&f, "must be udp, tcp or tls")),
            },
            "sip_port" => int(1, 65535)?,
            "vlan_id" => int(1, 4094)?,
            "registration_expires" => int(60, 86400)?,
            _ => {
                let good = k.len() <= 64
                    && k.starts_with(|c: char| c.is_ascii_lowercase())
                    && k.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'
                    });
                if !good {
                    return Err(Error::invalid(
                        &f,
                        "a setting name is lowercase letters, digits, _ and .",
                    ));
                }
                match &v {
                    Value::String(_) => s(1024)?,
                    Value::Number(_) | Value::Bool(_) => v.clone(),
                    _ => return Err(Error::invalid(&f, "must be text, a number or true/false")),
                }
            }
        };
        out.insert(k, val);
    }
    Ok(Value::Object(out).to_string())
}

/// Settings as shown: secrets masked.
pub(super) fn show_settings(s: &str) -> Map<String, Value> {
    let mut m: Map<String, Value> = serde_json::from_str(s).unwrap_or_default();
    for k in SECRET_SETTINGS {
        if let Some(v) = m.get_mut(*k) {
            *v = json!(MASK);
        }
    }
    m
}
