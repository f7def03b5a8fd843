//! What a SIP server's tables should hold, as plain rows, and the difference between that and
//! what they do hold. One diff serves incremental delivery (a few identities), the initial
//! load, `sync check` (report) and `sync repair` (apply): there is a single idea of "right".

use std::collections::{BTreeMap, BTreeSet};

use md5::Md5;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512_256};
use utoipa::ToSchema;

use super::config::{Layout, Role, TargetCfg};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Table {
    Domain,
    Subscriber,
    Dbaliases,
    UsrPreferences,
    LcrGw,
    LcrRule,
    LcrRuleTarget,
    Dispatcher,
    Uacreg,
    Address,
    Dialplan,
    Htable,
    Userblocklist,
    PbxHtable,
    DrGateways,
    DrCarriers,
    DrRules,
    OsAddress,
    Registrant,
    OsDialplan,
    Userblacklist,
}

/// How a routing table's column is written and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Int,
    Text,
    /// Text where "" is written as NULL (lcr tells NULL from an empty string).
    NullText,
}

/// A routing table voxprov owns part of: which rows are its own (`owned`, a WHERE clause),
/// the columns that identify a row, the ones compared, and constant columns written with
/// every row.
pub struct Spec {
    pub keys: &'static [(&'static str, Col)],
    pub values: &'static [(&'static str, Col)],
    pub fixed: &'static [(&'static str, &'static str)],
    pub owned: &'static str,
    /// What tells the server to reload it (None: read on every call, or per record).
    pub reload: Option<(&'static str, &'static [&'static str])>,
}

use Col::{Int as I, NullText as N, Text as T};

static LCR_GW: Spec = Spec {
    keys: &[("id", I)],
    values: &[
        ("gw_name", T),
        ("ip_addr", T),
        ("hostname", N),
        ("port", I),
        ("uri_scheme", I),
        ("transport", I),
        ("strip", I),
        ("tag", T),
        ("flags", I),
    ],
    fixed: &[("lcr_id", "1")],
    owned: "lcr_id = 1",
    reload: Some(("lcr.reload", &[])),
};
static LCR_RULE: Spec = Spec {
    keys: &[("id", I)],
    values: &[
        ("prefix", N),
        ("from_uri", N),
        ("request_uri", N),
        ("stopper", I),
        ("enabled", I),
    ],
    fixed: &[("lcr_id", "1")],
    owned: "lcr_id = 1",
    reload: Some(("lcr.reload", &[])),
};
static LCR_RULE_TARGET: Spec = Spec {
    keys: &[("rule_id", I), ("gw_id", I)],
    values: &[("priority", I), ("weight", I)],
    fixed: &[("lcr_id", "1")],
    owned: "lcr_id = 1",
    reload: Some(("lcr.reload", &[])),
};
static DISPATCHER: Spec = Spec {
    keys: &[("destination", T)],
    values: &[
        ("flags", I),
        ("priority", I),
        ("attrs", T),
        ("description", T),
    ],
    fixed: &[("setid", "1")],
    owned: "setid = 1",
    reload: Some(("dispatcher.reload", &[])),
};
static UACREG: Spec = Spec {
    keys: &[("l_uuid", T)],
    values: &[
        ("l_username", T),
        ("l_domain", T),
        ("r_username", T),
        ("r_domain", T),
        ("realm", T),
        ("auth_username", T),
        ("auth_password", T),
        ("auth_ha1", T),
        ("auth_proxy", T),
        ("expires", I),
        ("flags", I),
        ("reg_delay", I),
        ("contact_addr", T),
        ("socket", T),
    ],
    fixed: &[],
    owned: "l_uuid LIKE 'vx-ps-%'",
    reload: None,
};
static ADDRESS: Spec = Spec {
    keys: &[("ip_addr", T), ("mask", I), ("port", I), ("tag", T)],
    values: &[],
    fixed: &[("grp", "1")],
    owned: "grp = 1",
    reload: Some(("permissions.addressReload", &[])),
};
static DIALPLAN: Spec = Spec {
    keys: &[
        ("dpid", I),
        ("pr", I),
        ("match_op", I),
        ("match_exp", T),
        ("match_len", I),
        ("subst_exp", T),
        ("repl_exp", T),
        ("attrs", T),
    ],
    values: &[],
    fixed: &[],
    owned: "dpid >= 10",
    reload: Some(("dialplan.reload", &[])),
};
/// The value columns of Kamailio's htable table (and of pbx_htable, made like it).
const HTABLE_VALUES: &[(&str, Col)] = &[
    ("key_type", I),
    ("value_type", I),
    ("key_value", T),
    ("expires", I),
];
static HTABLE: Spec = Spec {
    keys: &[("key_name", T)],
    values: HTABLE_VALUES,
    fixed: &[],
    owned: "key_name LIKE '%::%'",
    reload: Some(("htable.reload", &["inrules"])),
};
static PBX_HTABLE: Spec = Spec {
    keys: &[("key_name", T)],
    values: HTABLE_VALUES,
    fixed: &[],
    // The table is voxprov's alone.
    owned: "1 = 1",
    reload: Some(("htable.reload", &["pbx"])),
};
static USERBLOCKLIST: Spec = Spec {
    keys: &[
        ("username", T),
        ("domain", T),
        ("prefix", T),
        ("allowlist", I),
    ],
    values: &[],
    fixed: &[],
    owned: "domain = 'ncos'",
    reload: None,
};

// OpenSIPS 3.x: drouting, permissions, uac_registrant, dialplan, userblacklist.
static DR_GATEWAYS: Spec = Spec {
    keys: &[("gwid", T)],
    values: &[
        ("type", I),
        ("address", T),
        ("strip", I),
        ("pri_prefix", N),
        ("attrs", N),
        ("probe_mode", I),
        ("state", I),
        ("description", N),
    ],
    fixed: &[],
    owned: "gwid LIKE 'vxps%'",
    reload: Some(("dr_reload", &[])),
};
static DR_CARRIERS: Spec = Spec {
    keys: &[("carrierid", T)],
    values: &[
        ("gwlist", T),
        ("flags", I),
        ("sort_alg", T),
        ("state", I),
        ("description", N),
    ],
    fixed: &[],
    owned: "carrierid LIKE 'vxpg%'",
    reload: Some(("dr_reload", &[])),
};
static DR_RULES: Spec = Spec {
    keys: &[("groupid", T), ("prefix", T), ("attrs", N)],
    values: &[("priority", I), ("gwlist", T), ("sort_alg", T)],
    fixed: &[("description", "'voxprov'")],
    owned: "description = 'voxprov'",
    reload: Some(("dr_reload", &[])),
};
static OS_ADDRESS: Spec = Spec {
    keys: &[
        ("ip", T),
        ("mask", I),
        ("port", I),
        ("proto", T),
        ("context_info", N),
    ],
    values: &[],
    fixed: &[("grp", "1")],
    owned: "grp = 1",
    reload: Some(("address_reload", &[])),
};
static REGISTRANT: Spec = Spec {
    keys: &[("aor", T), ("binding_URI", T), ("registrar", T)],
    values: &[
        ("username", N),
        ("password", N),
        ("binding_params", N),
        ("expiry", I),
    ],
    fixed: &[],
    owned: "binding_params LIKE ';vxps=%'",
    // OpenSIPS 3.x reloads registrations only as a whole table.
    reload: Some(("reg_reload", &[])),
};
static OS_DIALPLAN: Spec = Spec {
    keys: &[
        ("dpid", I),
        ("pr", I),
        ("match_op", I),
        ("match_exp", T),
        ("match_flags", I),
        ("subst_exp", N),
        ("repl_exp", N),
        ("attrs", N),
    ],
    values: &[],
    fixed: &[],
    owned: "dpid >= 10",
    reload: Some(("dp_reload", &[])),
};
static USERBLACKLIST: Spec = Spec {
    keys: &[
        ("username", T),
        ("domain", T),
        ("prefix", T),
        ("whitelist", I),
    ],
    values: &[],
    fixed: &[],
    owned: "domain = 'ncos'",
    reload: None,
};

/// OpenSIPS's routing tables, in the order they are applied.
pub const OPENSIPS_ROUTING: [Table; 7] = [
    Table::DrGateways,
    Table::DrCarriers,
    Table::DrRules,
    Table::OsAddress,
    Table::Registrant,
    Table::OsDialplan,
    Table::Userblacklist,
];

/// The routing tables, in the order they are applied.
pub const ROUTING: [Table; 10] = [
    Table::LcrGw,
    Table::LcrRule,
    Table::LcrRuleTarget,
    Table::Dispatcher,
    Table::Uacreg,
    Table::Address,
    Table::Dialplan,
    Table::Htable,
    Table::Userblocklist,
    Table::PbxHtable,
];

impl Table {
    pub fn name(self) -> &'static str {
        match self {
            Table::Domain => "domain",
            Table::Subscriber => "subscriber",
            Table::Dbaliases => "dbaliases",
            Table::UsrPreferences => "usr_preferences",
            Table::LcrGw => "lcr_gw",
            Table::LcrRule => "lcr_rule",
            Table::LcrRuleTarget => "lcr_rule_target",
            Table::Dispatcher => "dispatcher",
            Table::Uacreg => "uacreg",
            Table::Address => "address",
            Table::Dialplan => "dialplan",
            Table::Htable => "htable",
            Table::Userblocklist => "userblocklist",
            Table::PbxHtable => "pbx_htable",
            Table::DrGateways => "dr_gateways",
            Table::DrCarriers => "dr_carriers",
            Table::DrRules => "dr_rules",
            Table::OsAddress => "address",
            Table::Registrant => "registrant",
            Table::OsDialplan => "dialplan",
            Table::Userblacklist => "userblacklist",
        }
    }
    /// A routing table's description; None for the subscriber tables.
    pub fn spec(self) -> Option<&'static Spec> {
        Some(match self {
            Table::LcrGw => &LCR_GW,
            Table::LcrRule => &LCR_RULE,
            Table::LcrRuleTarget => &LCR_RULE_TARGET,
            Table::Dispatcher => &DISPATCHER,
            Table::Uacreg => &UACREG,
            Table::Address => &ADDRESS,
            Table::Dialplan => &DIALPLAN,
            Table::Htable => &HTABLE,
            Table::Userblocklist => &USERBLOCKLIST,
            Table::PbxHtable => &PBX_HTABLE,
            Table::DrGateways => &DR_GATEWAYS,
            Table::DrCarriers => &DR_CARRIERS,
            Table::DrRules => &DR_RULES,
            Table::OsAddress => &OS_ADDRESS,
            Table::Registrant => &REGISTRANT,
            Table::OsDialplan => &OS_DIALPLAN,
            Table::Userblacklist => &USERBLACKLIST,
            _ => return None,
        })
    }
    pub fn key_cols(self) -> Vec<&'static str> {
        if let Some(s) = self.spec() {
            return s.keys.iter().map(|(c, _)| *c).collect();
        }
        let cols: &[&str] = match self {
            Table::Domain => &["domain"],
            Table::Subscriber => &["username", "domain"],
            Table::Dbaliases => &["alias_username", "alias_domain"],
            // Preferences may hold several values per attribute: the whole row is the key.
            Table::UsrPreferences => &["username", "domain", "attribute", "type", "value"],
            _ => &[],
        };
        cols.to_vec()
    }
}

/// Columns whose values are credentials: compared, never shown.
pub const SECRET_COLS: &[&str] = &[
    "password",
    "ha1",
    "ha1b",
    "ha1_sha256",
    "ha1_sha512t256",
    "auth_password",
];

/// Rows of every table, by key; the values are the layout's value columns for that table.
pub type Rows = BTreeMap<(Table, Vec<String>), Vec<String>>;
/// What a target holds: a key may appear more than once where the table does not forbid it.
pub type Actual = BTreeMap<(Table, Vec<String>), Vec<Vec<String>>>;

/// A subscriber as the SIP servers see it: credentials in clear (decrypted just for this),
/// numbers as digits.
pub struct SubView {
    pub uuid: String,
    pub username: String,
    pub domain: String,
    pub password: String,
    /// Active, lock below 4, customer active.
    pub usable: bool,
    pub home_server_id: Option<i64>,
    pub numbers: Vec<String>,
    /// usr_preferences (attribute, value) rows: call forwards and effective preferences.
    pub features: Vec<(String, String)>,
}

fn hex_digest<D: Digest>(s: &str) -> String {
    hex::encode(D::digest(s.as_bytes()))
}

/// The digest credentials: ha1 = MD5(user:realm:pw), ha1b = MD5(user@domain:realm:pw),
/// realm = domain; OpenSIPS 3.2+ adds SHA-256 and SHA-512/256 of user:realm:pw.
pub fn subscriber_values(layout: &Layout, store_password: bool, s: &SubView) -> Vec<String> {
    let a1 = format!("{}:{}:{}", s.username, s.domain, s.password);
    layout
        .subscriber_cols
        .iter()
        .map(|c| match *c {
            "password" => {
                // A password longer than the column is not stored in clear (never truncated:
                // the hashes carry authentication).
                let fits = layout
                    .password_max
                    .is_none_or(|m| s.password.chars().count() <= m);
                if store_password && fits {
                    s.password.clone()
                } else {
                    String::new()
                }
            }
            "ha1" => hex_digest::<Md5>(&a1),
            "ha1b" => hex_digest::<Md5>(&format!(
                "{}@{}:{}:{}",
                s.username, s.domain, s.domain, s.password
            )),
            "ha1_sha256" => hex_digest::<Sha256>(&a1),
            "ha1_sha512t256" => hex_digest::<Sha512_256>(&a1),
            _ => String::new(),
        })
        .collect()
}

/// Where a subscriber lives from one target's point of view.
pub fn holds(t: &TargetCfg, s: &SubView) -> bool {
    if !s.usable || !t.serves(&s.domain) {
        return false;
    }
    match t.role {
        Role::Standalone | Role::Proxy => true,
        Role::Home => s.home_server_id == Some(t.id),
    }
}

/// The rows `t` should hold for these subscribers. `homes`: every home server's SIP address,
/// for a front proxy's routing rows.
pub fn desired_for_subscribers(
    t: &TargetCfg,
    layout: &Layout,
    homes: &BTreeMap<i64, String>,
    subs: &[SubView],
    out: &mut Rows,
) {
    for s in subs {
        if !holds(t, s) {
            continue;
        }
        out.insert(
            (
                Table::Subscriber,
                vec![s.username.clone(), s.domain.clone()],
            ),
            subscriber_values(layout, t.store_password, s),
        );
        for n in &s.numbers {
            out.insert(
                (Table::Dbaliases, vec![n.clone(), s.domain.clone()]),
                vec![s.username.clone(), s.domain.clone()],
            );
        }
        // A front proxy sends a subscriber homed elsewhere to its home server: it holds a
        // routing row for it, and its features act there, not here.
        let home = (t.role == Role::Proxy)
            .then(|| {
                s.home_server_id
                    .filter(|h| *h != t.id)
                    .and_then(|h| homes.get(&h))
            })
            .flatten();
        let mut pref = |attr: &str, kind: String, value: &str| {
            out.insert(
                (
                    Table::UsrPreferences,
                    vec![
                        s.username.clone(),
                        s.domain.clone(),
                        attr.to_string(),
                        kind,
                        value.to_string(),
                    ],
                ),
                vec![s.uuid.clone()],
            );
        };
        match home {
            Some(addr) => pref(&t.routing_attribute, t.routing_type.to_string(), addr),
            None => {
                for (attr, value) in &s.features {
                    pref(attr, "0".to_string(), value);
                }
            }
        }
    }
}

pub fn desired_domains(t: &TargetCfg, domains: &[String], out: &mut Rows) {
    for d in domains {
        if t.serves(d) {
            out.insert((Table::Domain, vec![d.clone()]), Vec::new());
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// voxprov has it, the target does not.
    Missing,
    /// The target has it, voxprov does not.
    Extra,
    /// Both have it, with different values (or the target has it more than once).
    Differs,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Missing => "missing",
            Kind::Extra => "extra",
            Kind::Differs => "differs",
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FieldDiff {
    pub field: String,
    /// Credentials show as "(hidden)".
    pub target: Option<String>,
    pub voxprov: Option<String>,
}

/// No `Debug`: `want` holds credentials.
#[derive(Clone, Serialize, ToSchema)]
pub struct Difference {
    pub table: Table,
    /// The natural key, e.g. "alice@example.org" or "4311110001@example.org".
    pub key: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldDiff>,
    /// The row voxprov wants (for missing/differs); not serialised, it may hold credentials.
    #[serde(skip)]
    pub want: Option<(Vec<String>, Vec<String>)>,
    #[serde(skip)]
    pub key_vals: Vec<String>,
}

fn show_key(table: Table, key: &[String]) -> String {
    match table {
        Table::Domain => key[0].clone(),
        Table::Subscriber | Table::Dbaliases => format!("{}@{}", key[0], key[1]),
        Table::UsrPreferences => format!("{}@{} {}={}", key[0], key[1], key[2], key[4]),
        _ => key.join(" "),
    }
}

/// Differences within the scope that both sides were read for.
pub fn diff(layout: &Layout, desired: &Rows, actual: &Actual) -> Vec<Difference> {
    let mut out = Vec::new();
    let keys: BTreeSet<&(Table, Vec<String>)> = desired.keys().chain(actual.keys()).collect();
    for k in keys {
        let (table, key) = k;
        let want = desired.get(k);
        let have = actual.get(k);
        let mk = |kind, fields| Difference {
            table: *table,
            key: show_key(*table, key),
            kind,
            fields,
            want: want.map(|w| (key.clone(), w.clone())),
            key_vals: key.clone(),
        };
        match (want, have) {
            (Some(_), None) => out.push(mk(Kind::Missing, Vec::new())),
            (None, Some(_)) => out.push(mk(Kind::Extra, Vec::new())),
            (Some(w), Some(h)) => {
                if h.len() == 1 && &h[0] == w {
                    continue;
                }
                let cols = layout.value_cols(*table);
                let mut fields = Vec::new();
                if h.len() > 1 {
                    fields.push(FieldDiff {
                        field: "(rows)".into(),
                        target: Some(h.len().to_string()),
                        voxprov: Some("1".into()),
                    });
                }
                for (i, col) in cols.iter().enumerate() {
                    let (tv, vv) = (h[0].get(i), w.get(i));
                    if tv != vv {
                        let hide = |v: Option<&String>| {
                            v.map(|v| {
                                if SECRET_COLS.contains(col) {
                                    "(hidden)".to_string()
                                } else {
                                    v.clone()
                                }
                            })
                        };
                        fields.push(FieldDiff {
                            field: (*col).to_string(),
                            target: hide(tv),
                            voxprov: hide(vv),
                        });
                    }
                }
                out.push(mk(Kind::Differs, fields));
            }
            (None, None) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::config::Driver;

    fn sub(password: &str) -> SubView {
        SubView {
            uuid: "u".into(),
            username: "alice".into(),
            domain: "example.test".into(),
            password: password.into(),
            usable: true,
            home_server_id: None,
            numbers: vec![],
            features: vec![],
        }
    }

    #[test]
    fn digest_credentials_follow_the_published_formulas() {
        let k = Layout::new(Driver::Kamailio, 7);
        let v = subscriber_values(&k, false, &sub("s3cret"));
        // printf 'alice:example.test:s3cret' | md5sum, and so on
        assert_eq!(v[1], "d815d6ca18261dac9caedec28c6dc58a");
        assert_eq!(v[2], "89ae26bd8db3f9bfe6da38da81ccde8b");
        assert_eq!(v[0], "", "no plaintext unless asked");
        let o = Layout::new(Driver::Opensips, 8);
        let v = subscriber_values(&o, true, &sub("s3cret"));
        assert_eq!(
            o.subscriber_cols,
            ["password", "ha1", "ha1_sha256", "ha1_sha512t256"]
        );
        assert_eq!(v[0], "s3cret");
        assert_eq!(
            v[2],
            "ad681484adb266c0aae2d2283e74f96e032f99b2642896690c964606529465ef"
        );
        let long = "x".repeat(26);
        assert_eq!(
            subscriber_values(&o, true, &sub(&long))[0],
            "",
            "never truncated"
        );
    }

    #[test]
    fn the_diff_names_missing_extra_differing_and_duplicate_rows() {
        let l = Layout::new(Driver::Kamailio, 7);
        let key = |u: &str| (Table::Subscriber, vec![u.to_string(), "d".to_string()]);
        let vals = |h: &str| vec![String::new(), h.to_string(), "b".to_string()];
        let desired: Rows = [
            (key("a"), vals("1")),
            (key("b"), vals("2")),
            (key("c"), vals("3")),
        ]
        .into_iter()
        .collect();
        let actual: Actual = [
            (key("b"), vec![vals("x")]),
            (key("c"), vec![vals("3"), vals("3")]),
            (key("z"), vec![vals("9")]),
        ]
        .into_iter()
        .collect();
        let d = diff(&l, &desired, &actual);
        let kinds: Vec<(&str, Kind)> = d.iter().map(|x| (x.key.as_str(), x.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("a@d", Kind::Missing),
                ("b@d", Kind::Differs),
                ("c@d", Kind::Differs),
                ("z@d", Kind::Extra)
            ]
        );
        assert_eq!(d[1].fields[0].field, "ha1");
        assert_eq!(d[1].fields[0].target.as_deref(), Some("(hidden)"));
        assert_eq!(d[2].fields[0].field, "(rows)");
    }
}
