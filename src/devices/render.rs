//! Rendering configurations: minijinja templates looked up model → family → vendor, each
//! level overridable per profile, per reseller and system-wide; values auto-escaped for
//! XML, and stripped of line breaks in plain formats (a display name cannot inject a line).

use std::collections::HashMap;
use std::sync::Arc;

use minijinja::{AutoEscape, Environment, Output, State, UndefinedBehavior, Value as JValue};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::store::devices::TemplateRow;

mod builtin {
    include!(concat!(env!("OUT_DIR"), "/templates.rs"));
}

pub fn builtin_templates() -> &'static [(&'static str, &'static str)] {
    builtin::BUILTIN
}

use crate::templating::{self, DEVICE};

/// Operators' templates by name, each with its scope.
#[derive(Debug, Default)]
pub struct Templates {
    by_name: HashMap<String, Vec<TemplateRow>>,
}

impl Templates {
    pub fn new(rows: Vec<TemplateRow>) -> Templates {
        let mut by_name: HashMap<String, Vec<TemplateRow>> = HashMap::new();
        for r in rows {
            by_name.entry(r.name.clone()).or_default().push(r);
        }
        Templates { by_name }
    }

    /// The source of `name` for a device of this reseller and profile: the profile's, the
    /// reseller's, the system's, or the shipped one.
    fn source(&self, name: &str, reseller: Option<i64>, profile: Option<i64>) -> Option<String> {
        if let Some(rows) = self.by_name.get(name) {
            let pick = |f: &dyn Fn(&TemplateRow) -> bool| rows.iter().find(|r| f(r));
            // A profile's template counts only while profile and template share a reseller.
            let found = profile
                .and_then(|p| pick(&|r| r.profile_id == Some(p) && r.reseller_id == reseller))
                .or_else(|| {
                    reseller
                        .and_then(|s| pick(&|r| r.reseller_id == Some(s) && r.profile_id.is_none()))
                })
                .or_else(|| pick(&|r| r.reseller_id.is_none() && r.profile_id.is_none()));
            if let Some(r) = found {
                return Some(r.content.clone());
            }
        }
        builtin::BUILTIN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.to_string())
    }

    /// Looks `name` up along its hierarchy: `v/f/m/kind` → `v/f/kind` → `v/kind`.
    fn resolve(&self, name: &str, reseller: Option<i64>, profile: Option<i64>) -> Option<String> {
        let parts: Vec<&str> = name.split('/').collect();
        let kind = parts.last()?;
        let mut prefix = parts[..parts.len() - 1].to_vec();
        loop {
            let candidate = if prefix.is_empty() {
                kind.to_string()
            } else {
                format!("{}/{kind}", prefix.join("/"))
            };
            if let Some(s) = self.source(&candidate, reseller, profile) {
                return Some(s);
            }
            if prefix.len() <= 1 {
                return None;
            }
            prefix.pop();
        }
    }
}

/// The most specific template name for a model's file kind.
pub fn template_name(vendor: &str, family: &str, model: &str, kind: &str) -> String {
    format!(
        "{}/{}/{}/{kind}",
        vendor.to_ascii_lowercase(),
        family.to_ascii_lowercase(),
        model.to_ascii_lowercase().replace(' ', "_")
    )
}

fn escape_for(name: &str) -> AutoEscape {
    if name.ends_with(".xml") || name.ends_with(".htm") {
        AutoEscape::Custom("xml")
    } else {
        AutoEscape::Custom("line")
    }
}

fn format_value(
    out: &mut Output,
    state: &State,
    value: &JValue,
) -> std::result::Result<(), minijinja::Error> {
    if value.is_undefined() || value.is_none() {
        return Ok(());
    }
    let s = value.to_string();
    if value.is_safe() {
        return out.write_str(&s).map_err(minijinja::Error::from);
    }
    let clean: String = match state.auto_escape() {
        AutoEscape::Custom("xml") => {
            let mut o = String::with_capacity(s.len());
            for ch in s.chars() {
                match ch {
                    '&' => o.push_str("&amp;"),
                    '<' => o.push_str("&lt;"),
                    '>' => o.push_str("&gt;"),
                    '"' => o.push_str("&quot;"),
                    '\'' => o.push_str("&apos;"),
                    // Not allowed in XML 1.0 at all.
                    c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
                    c => o.push(c),
                }
            }
            o
        }
        _ => s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    };
    out.write_str(&clean).map_err(minijinja::Error::from)
}

/// An environment for one scope (reseller, profile): templates load lazily along their
/// hierarchy, so `{% extends "yealink/device.cfg" %}` finds the operator's or the shipped one.
pub fn environment(
    templates: Arc<Templates>,
    reseller: Option<i64>,
    profile: Option<i64>,
) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_recursion_limit(32);
    // A loop without end runs out of fuel instead of holding a render thread.
    env.set_fuel(Some(DEVICE.fuel));
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(escape_for);
    env.set_formatter(format_value);
    env.set_loader(move |name| Ok(templates.resolve(name, reseller, profile)));
    env
}

/// Renders one file, at most [`DEVICE`]'s output.
pub fn render(env: &Environment<'static>, name: &str, ctx: &Value) -> Result<String> {
    templating::render_capped(env, name, ctx, DEVICE.max_output)
        .map_err(|e| Error::Unavailable(format!("template {name}: {e}")))
}

/// Checks that a template compiles (at save time: a broken template is the operator's 422,
/// not a phone's failure later).
pub fn check_syntax(name: &str, content: &str) -> Result<()> {
    let mut env = Environment::new();
    env.set_auto_escape_callback(escape_for);
    env.template_from_named_str(name, content)
        .map(|_| ())
        .map_err(|e| Error::invalid("content", format!("{e:#}")))
}

/// Renders a template once with a sample device (two lines, four keys, every well-known
/// setting), so one that compiles but fails at run time (a missing parent, a call of an
/// unknown function, a loop without end, output past the limit) is refused when saved, not
/// when phones ask. Runs on `pool`, within the wall-clock limit every render has.
pub async fn check_render(pool: &templating::RenderPool, name: &str, content: &str) -> Result<()> {
    let (name, content) = (name.to_string(), content.to_string());
    pool.run(DEVICE.wall, move || check_render_now(&name, &content))
        .await
        .map_err(|e| Error::invalid("content", format!("does not render: {e}")))?
}

fn check_render_now(name: &str, content: &str) -> Result<()> {
    let t = Templates::new(vec![TemplateRow {
        id: 0,
        reseller_id: None,
        profile_id: None,
        name: name.to_string(),
        description: None,
        content: content.to_string(),
        create_timestamp: String::new(),
        modify_timestamp: String::new(),
    }]);
    let env = environment(Arc::new(t), None, None);
    let line = |i: i64| {
        serde_json::json!({"index": i, "type": "private", "label": "Line", "display_name": "Sample", "user": format!("u{i}"),
            "auth_user": format!("u{i}"), "password": "secret", "domain": "example.com", "server": "example.com",
            "port": 5060, "transport": "udp", "outbound_proxy": null, "number": "4930123456"})
    };
    let key = |i: i64, t: &str| serde_json::json!({"index": i, "type": t, "label": "Key", "target": "200", "line": 1, "uri": "sip:200@example.com"});
    let ctx = serde_json::json!({
        "device": {"id": 1, "mac": "001565000001", "mac_upper": "001565000001", "mac_colon": "00:15:65:00:00:01", "station_name": "Sample"},
        "model": {"vendor": "sample", "family": "sample", "model": "sample", "code": "", "lines": 2, "keys": 4,
                  "expansion_modules": 0, "expansion_keys": 0},
        "settings": {"timezone": "Europe/Berlin", "language": "en", "ntp_server": "pool.ntp.org", "admin_password": "x",
                     "transport": "udp", "sip_port": 5060, "registration_expires": 3600, "vlan_id": 10},
        "lines": [line(1), line(2)],
        "keys": [key(1, "blf"), key(2, "blf"), key(3, "speeddial"), key(4, "speeddial")],
        "prov": {"url": "http://prov.example.com/prov/", "server": "prov.example.com"},
    });
    templating::render_capped(&env, name, &ctx, DEVICE.max_output)
        .map(|_| ())
        .map_err(|e| Error::invalid("content", format!("does not render: {e}")))
}

/// Converts a kazoo-provision template document (sections of `"setting": {"value": …}` with
/// `{PLACEHOLDER}`s; `cfg_account` once per line with `{ACCOUNT}`) into a minijinja template
/// for `format` (`kv`: `key = value` lines; `snom`: Snom XML settings).
pub fn import_kazoo(doc: &Value, format: &str) -> Result<String> {
    let obj = doc
        .as_object()
        .ok_or_else(|| Error::invalid("document", "must be a JSON object"))?;
    if !obj.contains_key("cfg_account") {
        return Err(Error::invalid(
            "document.cfg_account",
            "is required (the per-line account settings)",
        ));
    }
    let mut out = String::new();
    match format {
        "kv" => out.push_str("#!version:1.0.0.1\n"),
        "snom" => out.push_str(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<settings>\n<phone-settings e=\"2\">\n",
        ),
        _ => return Err(Error::invalid("format", "must be kv or snom")),
    }
    for section in [
        "cfg_base",
        "cfg_behavior",
        "cfg_account",
        "cfg_tone",
        "cfg_keys",
    ] {
        let Some(entries) = obj.get(section) else {
            continue;
        };
        let entries = entries.as_object().ok_or_else(|| {
            Error::invalid(
                format!("document.{section}"),
                "must be an object of settings",
            )
        })?;
        let per_line = section == "cfg_account";
        out.push_str(&format!("{{# {section} #}}\n"));
        if per_line {
            out.push_str("{% for line in lines %}\n");
        }
        for (key, v) in entries {
            let field = format!("document.{section}.{key}");
            let value = match v {
                Value::Object(m) => m.get("value").cloned().unwrap_or(Value::Null),
                other => other.clone(),
            };
            let value = match value {
                Value::String(s) => s,
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                Value::Null => String::new(),
                _ => {
                    return Err(Error::invalid(
                        field,
                        "a value must be a string or a number",
                    ))
                }
            };
            let k = placeholders(key, per_line, &field)?;
            let val = placeholders(value.trim(), per_line, &field)?;
            match format {
                "kv" => out.push_str(&format!("{k} = {val}\n")),
                _ => {
                    if !key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-{}".contains(c))
                        || key.starts_with(|c: char| c.is_ascii_digit())
                    {
                        return Err(Error::invalid(field, "is not a valid Snom setting name"));
                    }
                    out.push_str(&format!("<{k} perm=\"\">{val}</{k}>\n"));
                }
            }
        }
        if per_line {
            out.push_str("{% endfor %}\n");
        }
    }
    if let Some(u) = obj.get("usr_keys").and_then(Value::as_object) {
        let prefix = u
            .get("setable_phone_key_value")
            .and_then(Value::as_str)
            .unwrap_or("fkey");
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
            || prefix.is_empty()
        {
            return Err(Error::invalid(
                "document.usr_keys.setable_phone_key_value",
                "must be a setting name",
            ));
        }
        let start: i64 = u
            .get("setable_phone_key_counter")
            .and_then(|v| v.as_str().and_then(|s| s.parse().ok()).or(v.as_i64()))
            .unwrap_or(1);
        if !(0..=1000).contains(&start) {
            return Err(Error::invalid(
                "document.usr_keys.setable_phone_key_counter",
                "must be between 0 and 1000",
            ));
        }
        let idx = format!("{{{{ key.index + {} }}}}", start - 1);
        let val = "{% if key.type == 'blf' %}blf {{ key.uri }}{% else %}speed {{ key.target }}{% endif %}";
        out.push_str("{# usr_keys #}\n{% for key in keys %}\n");
        match format {
            "kv" => out.push_str(&format!("{prefix}{idx} = {val}\n")),
            _ => out.push_str(&format!(
                "<{prefix} idx=\"{idx}\" perm=\"\">{val}</{prefix}>\n"
            )),
        }
        out.push_str("{% endfor %}\n");
    }
    if format == "snom" {
        out.push_str("</phone-settings>\n</settings>\n");
    }
    check_syntax("import", &out)?;
    Ok(out)
}

/// kazoo-provision's placeholders as template expressions; literal text is kept literal.
fn placeholders(s: &str, per_line: bool, field: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('{') {
        push_literal(&mut out, &rest[..i]);
        let Some(j) = rest[i..].find('}') else {
            push_literal(&mut out, &rest[i..]);
            return Ok(out);
        };
        let name = &rest[i + 1..i + j];
        let line = |expr: &str| -> Result<String> {
            if per_line {
                Ok(format!("{{{{ {expr} }}}}"))
            } else {
                Err(Error::invalid(
                    field,
                    format!("{{{name}}} is only known in cfg_account"),
                ))
            }
        };
        let expr = match name {
            "ACCOUNT" => line("line.index")?,
            "SIPUSERNAME" => line("line.user")?,
            "SIPAUTHNAME" => line("line.auth_user")?,
            "SIPSECRET" => line("line.password")?,
            "SIPREALM" | "SIPDOMAIN" => line("line.domain")?,
            "DISPLAYNAME" => line("line.display_name")?,
            "PROXY_SERVER" | "SIPSERVER" => line("line.server")?,
            "PROXY_PORT" => line("line.port")?,
            "PROV_SERVER_URL" | "PROV_SERVER" => "{{ prov.url }}".into(),
            "MAC" => "{{ device.mac }}".into(),
            "TIMEZONE" => "{{ settings.timezone }}".into(),
            "NTP_SERVER" => "{{ settings.ntp_server }}".into(),
            "LANGUAGE" => "{{ settings.language }}".into(),
            "ADMIN_PASSWORD" => "{{ settings.admin_password }}".into(),
            other
                if other.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                    && !other.is_empty() =>
            {
                return Err(Error::invalid(
                    field,
                    format!("unknown placeholder {{{other}}}"),
                ))
            }
            _ => {
                // Not a placeholder (e.g. JSON in a value): literal.
                push_literal(&mut out, &rest[i..i + j + 1]);
                rest = &rest[i + j + 1..];
                continue;
            }
        };
        out.push_str(&expr);
        rest = &rest[i + j + 1..];
    }
    push_literal(&mut out, rest);
    Ok(out)
}

fn push_literal(out: &mut String, s: &str) {
    if s.contains('{') || s.contains('}') || s.contains('#') || s.contains('%') {
        out.push_str(&format!(
            "{{{{ {} }}}}",
            serde_json::to_string(s).unwrap_or_default()
        ));
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env_with(name: &str, content: &str) -> Environment<'static> {
        let t = Templates::new(vec![TemplateRow {
            id: 1,
            reseller_id: None,
            profile_id: None,
            name: name.into(),
            description: None,
            content: content.into(),
            create_timestamp: String::new(),
            modify_timestamp: String::new(),
        }]);
        environment(Arc::new(t), None, None)
    }

    #[test]
    fn xml_values_are_escaped_and_plain_values_cannot_break_lines() {
        let env = env_with("x/device.xml", "<a n=\"{{ v }}\">{{ v }}</a>");
        let out = render(&env, "x/device.xml", &json!({"v": "<script>&\"'"})).unwrap();
        assert_eq!(
            out,
            "<a n=\"&lt;script&gt;&amp;&quot;&apos;\">&lt;script&gt;&amp;&quot;&apos;</a>"
        );
        let env = env_with("x/device.cfg", "a = {{ v }}\n");
        let out = render(&env, "x/device.cfg", &json!({"v": "x\nadmin = pw"})).unwrap();
        assert_eq!(out.lines().count(), 1);
    }

    #[test]
    fn a_template_that_never_ends_runs_out_of_fuel() {
        let env = env_with(
            "x/device.cfg",
            "{% for i in range(1000000) %}{% for j in range(1000000) %}x{% endfor %}{% endfor %}",
        );
        assert!(render(&env, "x/device.cfg", &json!({})).is_err());
    }

    #[test]
    fn lookup_falls_back_from_model_to_family_to_vendor() {
        let env = env_with("acme/device.cfg", "vendor {{ 1 }}");
        let out = render(&env, "acme/fam/m1/device.cfg", &json!({})).unwrap();
        assert_eq!(out, "vendor 1");
    }

    #[test]
    fn kazoo_documents_become_templates_with_one_account_block_per_line() {
        let doc = json!({
            "cfg_base": {"auto_provision.server.url": {"value": "{PROV_SERVER_URL}"}},
            "cfg_account": {
                "account.{ACCOUNT}.user_name": {"value": " {SIPUSERNAME}"},
                "account.{ACCOUNT}.password": {"value": "{SIPSECRET}"}
            },
            "usr_keys": {"setable_phone_keys": "6", "setable_phone_key_counter": "1", "setable_phone_key_value": "prgkey"}
        });
        let t = import_kazoo(&doc, "kv").unwrap();
        let env = env_with("k/device.cfg", &t);
        let ctx = json!({"prov": {"url": "http://p/"}, "lines": [
            {"index": 1, "user": "u1", "password": "p{1}"}, {"index": 2, "user": "u2", "password": "p2"}],
            "keys": [{"index": 1, "type": "blf", "uri": "sip:x@d", "target": "x"}]});
        let out = render(&env, "k/device.cfg", &ctx).unwrap();
        assert!(out.contains("account.1.user_name = u1"), "{out}");
        assert!(out.contains("account.2.password = p2"), "{out}");
        assert!(out.contains("prgkey1 = blf sip:x@d"), "{out}");
        let bad = json!({"cfg_account": {"x": {"value": "{NOPE}"}}});
        assert!(import_kazoo(&bad, "kv").is_err());
    }
}
