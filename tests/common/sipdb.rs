//! A SIP server's database for tests: a fresh SQLite file, MariaDB database or PostgreSQL
//! database, with tables created from the SIP server's own schema scripts, read back with the
//! databases' own command-line clients.
#![allow(dead_code)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicUsize, Ordering},
};

static SEQ: AtomicUsize = AtomicUsize::new(0);

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Engine {
    Sqlite,
    Mysql,
    Postgres,
}

pub fn mysql_host() -> String {
    std::env::var("VOXPROV_TEST_MYSQL_HOST").unwrap_or_else(|_| "127.0.0.1".into())
}

pub struct SipDb {
    pub engine: Engine,
    /// SQLite: the file; otherwise the database name.
    pub name: String,
    pub path: Option<PathBuf>,
}

impl SipDb {
    pub fn new(engine: Engine, dir: &Path) -> SipDb {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("vxsip_{}_{n}", std::process::id());
        match engine {
            Engine::Sqlite => {
                let path = dir.join(format!("{name}.sqlite"));
                let _ = std::fs::remove_file(&path);
                SipDb {
                    engine,
                    name: path.display().to_string(),
                    path: Some(path),
                }
            }
            Engine::Mysql => {
                mysql(
                    None,
                    &format!("DROP DATABASE IF EXISTS {name}; CREATE DATABASE {name}"),
                );
                SipDb {
                    engine,
                    name,
                    path: None,
                }
            }
            Engine::Postgres => {
                psql_admin(&format!("DROP DATABASE IF EXISTS {name}"));
                psql_admin(&format!("CREATE DATABASE {name}"));
                SipDb {
                    engine,
                    name,
                    path: None,
                }
            }
        }
    }

    /// The URL voxprov is given for this database.
    pub fn url(&self) -> String {
        match self.engine {
            // Kamailio's own spelling, four slashes: voxprov must accept it.
            Engine::Sqlite => format!("sqlite:///{}", self.name),
            Engine::Mysql => format!("mysql://root@{}:3306/{}", mysql_host(), self.name),
            Engine::Postgres => pg_url(&self.name),
        }
    }

    /// Runs SQL scripts, in order.
    pub fn load(&self, files: &[PathBuf]) {
        for f in files {
            let sql = std::fs::read_to_string(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            self.exec(&sql);
        }
    }

    pub fn exec(&self, sql: &str) {
        match self.engine {
            Engine::Sqlite => run_stdin(Command::new("sqlite3").arg(&self.name), sql),
            Engine::Mysql => mysql(Some(&self.name), sql),
            Engine::Postgres => run_stdin(
                Command::new("psql")
                    .arg(pg_url(&self.name))
                    .args(["-q", "-v", "ON_ERROR_STOP=1"]),
                sql,
            ),
        };
    }

    /// Rows as text, tab-separated columns.
    pub fn query(&self, sql: &str) -> Vec<Vec<String>> {
        let out = match self.engine {
            Engine::Sqlite => run_stdin(
                Command::new("sqlite3")
                    .args(["-separator", "\t"])
                    .arg(&self.name),
                sql,
            ),
            Engine::Mysql => run_stdin(
                Command::new("mysql")
                    .args(["-h", &mysql_host(), "-uroot", "-N", "-B", "-r"])
                    .arg(&self.name),
                sql,
            ),
            Engine::Postgres => run_stdin(
                Command::new("psql").arg(pg_url(&self.name)).args([
                    "-qAt",
                    "-F",
                    "\t",
                    "-v",
                    "ON_ERROR_STOP=1",
                ]),
                sql,
            ),
        };
        out.lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect()
    }

    pub fn count(&self, sql: &str) -> i64 {
        self.query(sql)[0][0].parse().unwrap()
    }
}

impl Drop for SipDb {
    fn drop(&mut self) {
        match self.engine {
            Engine::Sqlite => {}
            Engine::Mysql => {
                let _ = Command::new("mysql")
                    .args(["-h", &mysql_host(), "-uroot", "-e"])
                    .arg(format!("DROP DATABASE IF EXISTS {}", self.name))
                    .output();
            }
            Engine::Postgres => {
                let _ = Command::new("psql")
                    .arg(super::pg_admin_url())
                    .arg("-qAtc")
                    .arg(format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        self.name
                    ))
                    .output();
            }
        }
    }
}

fn pg_url(db: &str) -> String {
    let base = super::pg_admin_url();
    format!("{}/{db}", base.rsplit_once('/').unwrap().0)
}

fn psql_admin(sql: &str) {
    run_stdin(
        Command::new("psql").arg(super::pg_admin_url()).arg("-qAt"),
        sql,
    );
}

fn mysql(db: Option<&str>, sql: &str) -> String {
    let mut c = Command::new("mysql");
    c.args(["-h", &mysql_host(), "-uroot", "-N", "-B", "-r"]);
    if let Some(d) = db {
        c.arg(d);
    }
    run_stdin(&mut c, sql)
}

fn run_stdin(cmd: &mut Command, input: &str) -> String {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\ninput: {}",
        String::from_utf8_lossy(&out.stderr),
        input.chars().take(300).collect::<String>()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kamailio's own schema scripts for the tables voxprov writes (from the Debian packages).
pub fn kamailio_schema(engine: Engine) -> Vec<PathBuf> {
    let dir = match engine {
        Engine::Sqlite => "/usr/share/kamailio/db_sqlite",
        Engine::Mysql => "/usr/share/kamailio/mysql",
        Engine::Postgres => "/usr/share/kamailio/postgres",
    };
    [
        "standard",
        "auth_db",
        "alias_db",
        "domain",
        "avpops",
        "usrloc",
        "lcr",
        "dispatcher",
        "uac",
        "permissions",
        "dialplan",
        "htable",
        "userblocklist",
    ]
    .iter()
    .map(|f| PathBuf::from(dir).join(format!("{f}-create.sql")))
    .collect()
}

/// OpenSIPS's tables for `version` ("3.1" or "3.4"), as DDL for `engine` (see
/// [`super::opensips`]).
pub fn opensips_ddl(version: &str, engine: Engine) -> String {
    super::opensips::ddl(&super::opensips::tables(version), engine)
}

pub fn md5_hex(s: &str) -> String {
    use md5::Digest;
    hex::encode(md5::Md5::digest(s.as_bytes()))
}

pub fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

pub fn sha512_256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha512_256::digest(s.as_bytes()))
}
