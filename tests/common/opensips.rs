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
    vec![
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
    ]
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
