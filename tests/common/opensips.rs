//! OpenSIPS's tables, as far as voxprov's tests need them, described once and turned into
//! each database's DDL. Written from OpenSIPS's documented schema facts (table and column
//! names, types, widths, defaults, keys, and the `version` rows its modules check at start):
//! no script of OpenSIPS's own is kept here.
//!
//! Versions: 3.1 has `subscriber` version 7 (`ha1`, `ha1b`); 3.2 and later version 8
//! (`ha1_sha256`, `ha1_sha512t256` instead of `ha1b`). The other tables are the same in 3.1
//! and 3.4.

use super::sipdb::Engine;

#[derive(Clone, Copy)]
pub enum Ty {
    /// Auto-increment integer key.
    Id,
    Int,
    /// CHAR(n) (VARCHAR(n) on PostgreSQL).
    Str(u32),
    DateTime,
}

pub struct Col {
    pub name: &'static str,
    pub ty: Ty,
    pub null: bool,
    /// SQL literal; `None`: no default.
    pub default: Option<&'static str>,
}

pub struct Table {
    pub name: &'static str,
    /// The row in `version` the module checks; `None` for `version` itself.
    pub version: Option<u32>,
    pub cols: Vec<Col>,
    /// (index name, columns)
    pub unique: Vec<(&'static str, &'static [&'static str])>,
    pub index: Vec<(&'static str, &'static [&'static str])>,
}

fn col(name: &'static str, ty: Ty) -> Col {
    let default = match ty {
        Ty::Str(_) => Some("''"),
        Ty::Int => Some("0"),
        Ty::DateTime => Some("'1900-01-01 00:00:01'"),
        Ty::Id => None,
    };
    Col {
        name,
        ty,
        null: false,
        default,
    }
}

fn nullable(name: &'static str, ty: Ty) -> Col {
    Col {
        name,
        ty,
        null: true,
        default: Some("NULL"),
    }
}

/// The tables of `version` ("3.1" or "3.4") that voxprov writes, with `version` first.
pub fn tables(version: &str) -> Vec<Table> {
    let mut subscriber = vec![
        col("id", Ty::Id),
        col("username", Ty::Str(64)),
        col("domain", Ty::Str(64)),
        col("password", Ty::Str(25)),
        col("email_address", Ty::Str(64)),
        col("ha1", Ty::Str(64)),
    ];
    let sub_version = if version == "3.1" {
        subscriber.push(col("ha1b", Ty::Str(64)));
        7
    } else {
        subscriber.push(col("ha1_sha256", Ty::Str(64)));
        subscriber.push(col("ha1_sha512t256", Ty::Str(64)));
        8
    };
    subscriber.push(nullable("rpid", Ty::Str(64)));
    // uac_registrant: version 3 (3.2 and later) adds `state`.
    let mut registrant = vec![
        col("id", Ty::Id),
        col("registrar", Ty::Str(255)),
        nullable("proxy", Ty::Str(255)),
        col("aor", Ty::Str(255)),
        nullable("third_party_registrant", Ty::Str(255)),
        nullable("username", Ty::Str(64)),
        nullable("password", Ty::Str(64)),
        col("binding_URI", Ty::Str(255)),
        nullable("binding_params", Ty::Str(64)),
        nullable("expiry", Ty::Int),
        nullable("forced_socket", Ty::Str(64)),
        nullable("cluster_shtag", Ty::Str(64)),
    ];
    let reg_version = if version == "3.1" {
        2
    } else {
        registrant.push(col("state", Ty::Int));
        3
    };
    let routing = vec![
        Table {
            name: "dr_gateways",
            version: Some(6),
            cols: vec![
                col("id", Ty::Id),
                Col {
                    default: None,
                    ..col("gwid", Ty::Str(64))
                },
                col("type", Ty::Int),
                Col {
                    default: None,
                    ..col("address", Ty::Str(128))
                },
                col("strip", Ty::Int),
                nullable("pri_prefix", Ty::Str(16)),
                nullable("attrs", Ty::Str(255)),
                col("probe_mode", Ty::Int),
                col("state", Ty::Int),
                nullable("socket", Ty::Str(128)),
                nullable("description", Ty::Str(128)),
            ],
            unique: vec![("dr_gw_idx", &["gwid"])],
            index: vec![],
        },
        Table {
            name: "dr_rules",
            version: Some(4),
            cols: vec![
                col("ruleid", Ty::Id),
                Col {
                    default: None,
                    ..col("groupid", Ty::Str(255))
                },
                Col {
                    default: None,
                    ..col("prefix", Ty::Str(64))
                },
                nullable("timerec", Ty::Str(255)),
                col("priority", Ty::Int),
                nullable("routeid", Ty::Str(255)),
                Col {
                    default: None,
                    ..col("gwlist", Ty::Str(255))
                },
                Col {
                    default: Some("'N'"),
                    ..col("sort_alg", Ty::Str(1))
                },
                nullable("sort_profile", Ty::Int),
                nullable("attrs", Ty::Str(255)),
                nullable("description", Ty::Str(128)),
            ],
            unique: vec![],
            index: vec![],
        },
        Table {
            name: "dr_carriers",
            version: Some(3),
            cols: vec![
                col("id", Ty::Id),
                Col {
                    default: None,
                    ..col("carrierid", Ty::Str(64))
                },
                Col {
                    default: None,
                    ..col("gwlist", Ty::Str(255))
                },
                col("flags", Ty::Int),
                Col {
                    default: Some("'N'"),
                    ..col("sort_alg", Ty::Str(1))
                },
                col("state", Ty::Int),
                nullable("attrs", Ty::Str(255)),
                nullable("description", Ty::Str(128)),
            ],
            unique: vec![("dr_carrier_idx", &["carrierid"])],
            index: vec![],
        },
        Table {
            name: "address",
            version: Some(5),
            cols: vec![
                col("id", Ty::Id),
                col("grp", Ty::Int),
                Col {
                    default: None,
                    ..col("ip", Ty::Str(50))
                },
                Col {
                    default: Some("32"),
                    ..col("mask", Ty::Int)
                },
                col("port", Ty::Int),
                Col {
                    default: Some("'any'"),
                    ..col("proto", Ty::Str(4))
                },
                nullable("pattern", Ty::Str(64)),
                nullable("context_info", Ty::Str(32)),
            ],
            unique: vec![],
            index: vec![],
        },
        Table {
            name: "registrant",
            version: Some(reg_version),
            cols: registrant,
            unique: vec![("registrant_idx", &["aor", "binding_URI", "registrar"])],
            index: vec![],
        },
        Table {
            name: "dialplan",
            version: Some(5),
            cols: vec![
                col("id", Ty::Id),
                Col {
                    default: None,
                    ..col("dpid", Ty::Int)
                },
                col("pr", Ty::Int),
                Col {
                    default: None,
                    ..col("match_op", Ty::Int)
                },
                Col {
                    default: None,
                    ..col("match_exp", Ty::Str(64))
                },
                col("match_flags", Ty::Int),
                nullable("subst_exp", Ty::Str(64)),
                nullable("repl_exp", Ty::Str(32)),
                nullable("timerec", Ty::Str(255)),
                col("disabled", Ty::Int),
                nullable("attrs", Ty::Str(255)),
            ],
            unique: vec![],
            index: vec![],
        },
        // userblacklist: columns as its documentation names them; the version row's value
        // is not one voxprov's tests could check against a running OpenSIPS.
        Table {
            name: "userblacklist",
            version: Some(2),
            cols: vec![
                col("id", Ty::Id),
                col("username", Ty::Str(64)),
                col("domain", Ty::Str(64)),
                col("prefix", Ty::Str(64)),
                col("whitelist", Ty::Int),
            ],
            unique: vec![],
            index: vec![("userblacklist_idx", &["username", "domain", "prefix"])],
        },
    ];
    let mut all = vec![
        Table {
            name: "version",
            version: None,
            cols: vec![
                Col {
                    default: None,
                    ..col("table_name", Ty::Str(32))
                },
                col("table_version", Ty::Int),
            ],
            unique: vec![("t_name_idx", &["table_name"])],
            index: vec![],
        },
        Table {
            name: "subscriber",
            version: Some(sub_version),
            cols: subscriber,
            unique: vec![("account_idx", &["username", "domain"])],
            index: vec![("username_idx", &["username"])],
        },
        Table {
            name: "dbaliases",
            version: Some(2),
            cols: vec![
                col("id", Ty::Id),
                col("alias_username", Ty::Str(64)),
                col("alias_domain", Ty::Str(64)),
                col("username", Ty::Str(64)),
                col("domain", Ty::Str(64)),
            ],
            unique: vec![("alias_idx", &["alias_username", "alias_domain"])],
            index: vec![("target_idx", &["username", "domain"])],
        },
        Table {
            name: "domain",
            version: Some(3),
            cols: vec![
                col("id", Ty::Id),
                col("domain", Ty::Str(64)),
                nullable("attrs", Ty::Str(255)),
                col("last_modified", Ty::DateTime),
            ],
            unique: vec![("domain_idx", &["domain"])],
            index: vec![],
        },
        Table {
            name: "usr_preferences",
            version: Some(3),
            cols: vec![
                col("id", Ty::Id),
                col("uuid", Ty::Str(64)),
                Col {
                    default: Some("0"),
                    ..col("username", Ty::Str(128))
                },
                col("domain", Ty::Str(64)),
                col("attribute", Ty::Str(32)),
                col("type", Ty::Int),
                col("value", Ty::Str(128)),
                col("last_modified", Ty::DateTime),
            ],
            unique: vec![],
            index: vec![
                ("ua_idx", &["uuid", "attribute"]),
                ("uda_idx", &["username", "domain", "attribute"]),
                ("value_idx", &["value"]),
            ],
        },
    ];
    all.extend(routing);
    all
}

fn sql_type(ty: Ty, engine: Engine) -> String {
    match (ty, engine) {
        (Ty::Id, Engine::Sqlite) => "INTEGER PRIMARY KEY AUTOINCREMENT".into(),
        (Ty::Id, Engine::Mysql) => "INT UNSIGNED AUTO_INCREMENT PRIMARY KEY".into(),
        (Ty::Id, Engine::Postgres) => "SERIAL PRIMARY KEY".into(),
        (Ty::Int, _) => "INTEGER".into(),
        (Ty::Str(n), Engine::Postgres) => format!("VARCHAR({n})"),
        (Ty::Str(n), _) => format!("CHAR({n})"),
        (Ty::DateTime, Engine::Postgres) => "TIMESTAMP WITHOUT TIME ZONE".into(),
        (Ty::DateTime, _) => "DATETIME".into(),
    }
}

/// The DDL creating `tables` on `engine`, each with its `version` row.
pub fn ddl(tables: &[Table], engine: Engine) -> String {
    let mut out = String::new();
    for t in tables {
        let mut lines: Vec<String> = t
            .cols
            .iter()
            .map(|c| {
                let mut l = format!("    {} {}", c.name, sql_type(c.ty, engine));
                if let Some(d) = c.default {
                    l.push_str(&format!(" DEFAULT {d}"));
                }
                l.push_str(if c.null { " NULL" } else { " NOT NULL" });
                l
            })
            .collect();
        for (name, cols) in &t.unique {
            lines.push(format!(
                "    CONSTRAINT {}_{name} UNIQUE ({})",
                t.name,
                cols.join(", ")
            ));
        }
        out.push_str(&format!(
            "CREATE TABLE {} (\n{}\n)",
            t.name,
            lines.join(",\n")
        ));
        out.push_str(if engine == Engine::Mysql {
            " ENGINE=InnoDB;\n"
        } else {
            ";\n"
        });
        for (name, cols) in &t.index {
            out.push_str(&format!(
                "CREATE INDEX {}_{name} ON {} ({});\n",
                t.name,
                t.name,
                cols.join(", ")
            ));
        }
        if let Some(v) = t.version {
            out.push_str(&format!(
                "INSERT INTO version (table_name, table_version) VALUES ('{}', {v});\n",
                t.name
            ));
        }
        out.push('\n');
    }
    out
}
