//! The device catalog: vendor → family → model, the files each model asks for, and how a
//! request is recognised (file-name patterns, User-Agent, MAC OUI). The shipped catalog is
//! `catalog.json`; it seeds `device_models` once, after which operators own the rows.

use std::collections::BTreeMap;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::{Error, Result};
use crate::store::devices::{self as st, ModelFields, ModelRow};
use crate::store::Conn;

const BUILTIN: &str = include_str!("catalog.json");

/// A file a model requests: its name pattern, the template that renders it, whether it is
/// per device (carries a MAC and secrets) or common (no secrets), and its content type.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Name pattern: `{mac}`, `{MAC}`, `{code}`, `{model}` are replaced.
    pub file: String,
    /// Template kind under the vendor, e.g. `device.cfg`.
    pub template: String,
    pub per_device: bool,
    pub content_type: String,
}

#[derive(Deserialize)]
struct BuiltinCatalog {
    vendors: Vec<BuiltinVendor>,
}

#[derive(Deserialize)]
struct BuiltinVendor {
    vendor: String,
    #[allow(dead_code)]
    name: String,
    ouis: Vec<String>,
    user_agent: String,
    files: Vec<FileSpec>,
    families: Vec<BuiltinFamily>,
}

#[derive(Deserialize)]
struct BuiltinFamily {
    family: String,
    #[allow(dead_code)]
    name: String,
    models: Vec<BuiltinModel>,
}

#[derive(Deserialize)]
struct BuiltinModel {
    model: String,
    #[serde(default)]
    code: String,
    #[serde(rename = "type", default = "phone")]
    kind: String,
    lines: i64,
    keys: i64,
    #[serde(default)]
    expansion_modules: i64,
    #[serde(default)]
    expansion_keys: i64,
    #[serde(default)]
    user_agent: Option<String>,
    #[serde(default)]
    files: Option<Vec<FileSpec>>,
}

fn phone() -> String {
    "phone".into()
}

/// Inserts the shipped models never added before (by vendor and model); after that the rows
/// are the operator's: edited ones stay as they are, deleted ones stay deleted.
pub async fn seed(c: &mut Conn) -> anyhow::Result<usize> {
    let cat: BuiltinCatalog = serde_json::from_str(BUILTIN)?;
    let mut n = 0;
    for v in &cat.vendors {
        for f in &v.families {
            for m in &f.models {
                if !st::mark_seeded(c, &v.vendor, &m.model).await?
                    || st::model_exists(c, &v.vendor, &m.model).await?
                {
                    continue;
                }
                // The model's own pattern within the vendor's: "Yealink … T46U".
                let ua = match &m.user_agent {
                    Some(u) => format!("(?:{}).*(?:{})", v.user_agent, u),
                    None => v.user_agent.clone(),
                };
                let files = m.files.clone().unwrap_or_else(|| v.files.clone());
                st::save_model(
                    c,
                    None,
                    &ModelFields {
                        vendor: v.vendor.clone(),
                        family: f.family.clone(),
                        model: m.model.clone(),
                        kind: m.kind.clone(),
                        code: m.code.clone(),
                        lines: m.lines,
                        keys: m.keys,
                        expansion_modules: m.expansion_modules,
                        expansion_keys: m.expansion_keys,
                        files: serde_json::to_string(&files)?,
                        user_agent: Some(ua),
                        ouis: serde_json::to_string(&v.ouis)?,
                        image: None,
                        builtin: true,
                    },
                )
                .await?;
                n += 1;
            }
        }
    }
    Ok(n)
}

/// A model as the server uses it: its row with the patterns compiled.
#[derive(Debug)]
pub struct Model {
    pub row: ModelRow,
    pub files: Vec<FileSpec>,
    pub ouis: Vec<String>,
    ua: Option<Regex>,
    patterns: Vec<Regex>,
}

impl Model {
    pub fn from_row(row: ModelRow) -> Result<Model> {
        let files: Vec<FileSpec> = serde_json::from_str(&row.files).map_err(Error::internal)?;
        let ouis: Vec<String> = serde_json::from_str(&row.ouis).unwrap_or_default();
        let ua = row.user_agent.as_deref().map(compile_ua).transpose()?;
        let patterns = files
            .iter()
            .map(|f| file_regex(&f.file, &row.code, &row.model))
            .collect::<Result<Vec<_>>>()?;
        Ok(Model {
            row,
            files,
            ouis,
            ua,
            patterns,
        })
    }
    /// The file spec a name matches and the MAC in it (lowercase), if any.
    pub fn match_file(&self, name: &str) -> Option<(&FileSpec, Option<String>)> {
        self.files.iter().zip(&self.patterns).find_map(|(f, re)| {
            re.captures(name)
                .map(|c| (f, c.name("mac").map(|m| m.as_str().to_ascii_lowercase())))
        })
    }
    /// The name a device of this model asks for `spec` by.
    pub fn file_name(&self, spec: &FileSpec, mac: &str) -> String {
        spec.file
            .replace("{mac}", mac)
            .replace("{MAC}", &mac.to_ascii_uppercase())
            .replace("{code}", &self.row.code)
            .replace("{model}", &self.row.model)
    }
    pub fn matches_ua(&self, ua: &str) -> bool {
        self.ua.as_ref().is_some_and(|r| r.is_match(ua))
    }
    pub fn has_oui(&self, mac: &str) -> bool {
        mac.len() >= 6 && self.ouis.iter().any(|o| o.eq_ignore_ascii_case(&mac[..6]))
    }
}

pub fn compile_ua(p: &str) -> Result<Regex> {
    RegexBuilder::new(p)
        .case_insensitive(true)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| Error::invalid("user_agent", format!("not a valid regular expression: {e}")))
}

/// A file-name pattern as an anchored regex with the MAC captured.
pub fn file_regex(pattern: &str, code: &str, model: &str) -> Result<Regex> {
    let mut re = String::from("^");
    let mut rest = pattern;
    let mut macs = 0;
    while let Some(i) = rest.find('{') {
        re.push_str(&regex::escape(&rest[..i]));
        let Some(j) = rest[i..].find('}') else {
            return Err(Error::invalid(
                "files",
                format!("unclosed '{{' in {pattern}"),
            ));
        };
        match &rest[i + 1..i + j] {
            "mac" | "MAC" => {
                macs += 1;
                if macs > 1 {
                    return Err(Error::invalid(
                        "files",
                        format!("{pattern}: one MAC per name"),
                    ));
                }
                re.push_str("(?P<mac>[0-9a-fA-F]{12})");
            }
            "code" => re.push_str(&regex::escape(code)),
            "model" => re.push_str(&regex::escape(model)),
            other => {
                return Err(Error::invalid(
                    "files",
                    format!("{pattern}: unknown placeholder {{{other}}} (mac, MAC, code, model)"),
                ))
            }
        }
        rest = &rest[i + j + 1..];
    }
    re.push_str(&regex::escape(rest));
    re.push('$');
    RegexBuilder::new(&re)
        .case_insensitive(true)
        .build()
        .map_err(|e| Error::invalid("files", e.to_string()))
}

/// Every model, compiled; replaced as a whole when the catalog changes.
#[derive(Debug, Default)]
pub struct Catalog {
    pub models: BTreeMap<i64, std::sync::Arc<Model>>,
}

impl Catalog {
    pub async fn load(c: &mut Conn) -> Result<Catalog> {
        let mut models = BTreeMap::new();
        for row in st::all_models(c).await? {
            let id = row.id;
            match Model::from_row(row) {
                Ok(m) => {
                    models.insert(id, std::sync::Arc::new(m));
                }
                Err(e) => tracing::error!(model = id, "device model unusable: {e}"),
            }
        }
        Ok(Catalog { models })
    }

    /// The models whose common (secret-free) file this is, best first: the User-Agent's
    /// model, then any model of a vendor the User-Agent names, then any.
    pub fn common_file(&self, name: &str, ua: &str) -> Option<(std::sync::Arc<Model>, FileSpec)> {
        let mut best: Option<(u8, std::sync::Arc<Model>, FileSpec)> = None;
        for m in self.models.values() {
            if let Some((f, None)) = m.match_file(name) {
                if f.per_device {
                    continue;
                }
                let score = if m.matches_ua(ua) { 2 } else { 1 };
                if best.as_ref().is_none_or(|b| score > b.0) {
                    best = Some((score, m.clone(), f.clone()));
                }
            }
        }
        best.map(|(_, m, f)| (m, f))
    }

    /// Whether any model's per-device pattern matches the name; the MAC in it.
    pub fn device_file_mac(&self, name: &str) -> Option<String> {
        self.models.values().find_map(|m| match m.match_file(name) {
            // All zeros is Poly's (and others') common file name, never a device.
            Some((f, Some(mac))) if f.per_device && mac != "000000000000" => Some(mac),
            _ => None,
        })
    }

    /// The model a phone is, from its User-Agent and MAC: the longest User-Agent match, a
    /// model of the MAC's vendor first.
    pub fn detect(&self, ua: &str, mac: Option<&str>) -> Option<std::sync::Arc<Model>> {
        let mut best: Option<(usize, bool, std::sync::Arc<Model>)> = None;
        for m in self.models.values() {
            let Some(re) = &m.ua else { continue };
            let Some(found) = re.find(ua) else { continue };
            let oui = mac.is_some_and(|x| m.has_oui(x));
            let key = (found.len(), oui);
            if best.as_ref().is_none_or(|b| (key.1, key.0) > (b.1, b.0)) {
                best = Some((key.0, key.1, m.clone()));
            }
        }
        if best.is_none() {
            if let Some(mac) = mac {
                return self.models.values().find(|m| m.has_oui(mac)).cloned();
            }
        }
        best.map(|b| b.2)
    }

    /// kazoo-provision's phonetree: brand → families → models.
    pub fn tree(&self) -> serde_json::Value {
        let mut tree = serde_json::Map::new();
        for m in self.models.values() {
            let r = &m.row;
            let brand = tree.entry(r.vendor.clone()).or_insert_with(
                || serde_json::json!({"id": r.vendor, "name": r.vendor, "families": {}}),
            );
            let fams = brand["families"]
                .as_object_mut()
                .expect("families is an object");
            let fam = fams.entry(r.family.clone()).or_insert_with(|| {
                serde_json::json!({"id": format!("{}_{}", r.vendor, r.family), "name": r.family, "models": {}})
            });
            fam["models"][&r.model] = serde_json::json!({
                "id": format!("{}_{}", r.vendor, r.model.to_ascii_lowercase().replace(' ', "_")),
                "model_id": r.id,
                "name": r.model,
                "type": r.kind,
                "lines": r.lines,
                "keys": r.keys,
            });
        }
        serde_json::Value::Object(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_patterns_capture_the_mac_and_take_codes_literally() {
        let re = file_regex("y0000000000{code}.cfg", "28", "T46G").unwrap();
        assert!(re.is_match("y000000000028.cfg"));
        assert!(!re.is_match("y0000000000xx.cfg"));
        let re = file_regex("snom{model}-{MAC}.htm", "", "D735").unwrap();
        let c = re.captures("snomD735-000413ABCDEF.htm").unwrap();
        assert_eq!(&c["mac"], "000413ABCDEF");
        assert!(!re.is_match("snomD735-000413ABCDE.htm"));
        assert!(file_regex("{mac}{mac}", "", "").is_err());
        assert!(file_regex("{serial}.cfg", "", "").is_err());
    }

    #[test]
    fn the_shipped_catalog_parses_and_every_device_file_names_a_mac() {
        let cat: BuiltinCatalog = serde_json::from_str(BUILTIN).unwrap();
        assert!(cat.vendors.len() >= 8);
        for v in &cat.vendors {
            compile_ua(&v.user_agent).unwrap();
            for f in &v.families {
                for m in &f.models {
                    for spec in m.files.as_ref().unwrap_or(&v.files) {
                        let re = file_regex(&spec.file, &m.code, &m.model).unwrap();
                        assert_eq!(
                            spec.per_device,
                            re.capture_names().any(|n| n == Some("mac")),
                            "{}",
                            spec.file
                        );
                    }
                }
            }
        }
    }
}
