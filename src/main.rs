//! The `voxprov` command: parse, load configuration, hand over to the library.

use std::{io::BufRead, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use sqlx::Row;
use voxprov::config::{Config, Flags};

/// mimalloc instead of glibc's malloc: in a profile of an import, allocating and freeing took
/// about a quarter of the process's samples (glibc's arena consolidation among them), on the
/// writer's path as much as on the validators'.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "voxprov",
    version,
    about = "Provisioning server for SIP/VoIP platforms"
)]
struct Cli {
    /// TOML configuration file (VOXPROV_CONFIG).
    #[arg(long, global = true, env = "VOXPROV_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: Flags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve,
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage admins.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Import a CSV file (header row names the columns): every row validated, journalled and
    /// sent to the SIP servers. Exit status 1 when any row failed, 2 when the file is unusable.
    Import {
        kind: voxprov::resources::bulk::Kind,
        file: PathBuf,
        /// all-or-nothing: any error rolls everything back; per-row: good rows are kept.
        #[arg(long, value_enum, default_value = "all-or-nothing")]
        mode: voxprov::resources::bulk::Mode,
        /// Check every row (errors with their line numbers) and save nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rows per batch (and per commit in per-row mode).
        #[arg(long, default_value_t = 2000)]
        batch: usize,
    },
    /// Write every object of a kind, in id order, to standard output or --output (a file
    /// only its owner can read). SIP passwords are left out unless --with-passwords.
    Export {
        kind: voxprov::resources::bulk::Kind,
        #[arg(long, value_enum, default_value = "csv")]
        format: ExportFormat,
        #[arg(long)]
        output: Option<PathBuf>,
        /// Include subscribers' SIP passwords, in plain text.
        #[arg(long)]
        with_passwords: bool,
    },
    /// Write a consistent backup of the database and the secret key (encrypted with a
    /// passphrase) to FILE, while the server runs. The passphrase comes from
    /// --passphrase-file, VOXPROV_BACKUP_PASSPHRASE or the first line of standard input.
    Backup {
        file: PathBuf,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Restore a backup into an empty database and data directory (the server stopped): every
    /// row, and the secret key so SIP passwords decrypt. All or nothing.
    Restore {
        file: PathBuf,
        #[arg(long)]
        passphrase_file: Option<PathBuf>,
    },
    /// Compare SIP servers' tables with voxprov (check) or mend them (repair).
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ExportFormat {
    /// The import columns: an export imports back.
    Csv,
    /// One JSON array of full representations.
    Json,
}

#[derive(Subcommand)]
enum SyncCommand {
    /// List every difference; exit status 1 when there is any, 2 when a server cannot be read.
    Check {
        /// Only this sipserver (by name).
        #[arg(long)]
        server: Option<String>,
        /// Print the reports as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Apply voxprov's state to the servers' tables (journalled).
    Repair {
        #[arg(long)]
        server: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create an admin; the password is read from standard input.
    Create {
        login: String,
        /// admin or reseller
        #[arg(long, default_value = "admin")]
        role: String,
        #[arg(long)]
        reseller_id: Option<i64>,
        #[arg(long)]
        read_only: bool,
    },
    /// Set an admin's password, read from standard input.
    Passwd { login: String },
    /// List admins.
    List,
}

fn main() -> ExitCode {
    // Template renderer processes (see voxprov::templating::isolated): no configuration, no
    // logging, nothing but the loop.
    if std::env::args().nth(1).as_deref() == Some(voxprov::templating::isolated::WORKER_ARG) {
        return voxprov::templating::isolated::worker_main();
    }
    // Everything voxprov writes (the database, the secret key, uploads, exports) is the
    // owner's only, whatever the caller's umask.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref(), &cli.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("voxprov: {e}");
            return ExitCode::from(2);
        }
    };
    // The filter was checked when the configuration was loaded.
    let filter = tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| "info".into());
    let log = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cfg.log_format {
        voxprov::config::LogFormat::Json => log.json().flatten_event(true).init(),
        voxprov::config::LogFormat::Text => log.init(),
    }
    for var in Config::unknown_env_vars() {
        tracing::warn!("unknown environment variable {var} ignored");
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(cli.command, cfg)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("voxprov: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Command, cfg: Config) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::Serve => {
            let listeners = voxprov::Listeners::bind(&cfg).await?;
            voxprov::serve(cfg, listeners, shutdown_signal()).await?;
        }
        Command::Migrate => match voxprov::migrate(&cfg).await? {
            (b, now) if b == now => println!("database schema is up to date (version {now})"),
            (0, now) => println!("database schema created (version {now})"),
            (b, now) => println!("database schema upgraded from version {b} to {now}"),
        },
        Command::Backup {
            file,
            passphrase_file,
        } => {
            let pass = passphrase(passphrase_file.as_deref())?;
            voxprov::app::backup::check_passphrase(&pass)?;
            let (store, cipher) = voxprov::open_existing(&cfg).await?;
            let tmp = file.with_extension("partial");
            let f = voxprov::fsutil::create_private(&tmp)
                .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
            let mut w = std::io::BufWriter::new(f);
            let summary = match voxprov::app::backup::write(&store, &cipher, &pass, &mut w).await {
                Ok(s) => s,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            };
            let f = w
                .into_inner()
                .map_err(|e| anyhow::anyhow!("{}: {e}", tmp.display()))?;
            f.sync_all()?;
            std::fs::rename(&tmp, &file)?;
            println!(
                "backup written to {}: {} tables, {} rows, schema {}, {} bytes",
                file.display(),
                summary.tables,
                summary.rows,
                summary.schema,
                summary.bytes
            );
        }
        Command::Restore {
            file,
            passphrase_file,
        } => {
            let pass = passphrase(passphrase_file.as_deref())?;
            let s = voxprov::restore(&cfg, &file, &pass).await?;
            println!(
                "restored {} tables, {} rows (schema {}) from {}",
                s.tables,
                s.rows,
                s.schema,
                file.display()
            );
        }
        Command::Admin { command } => admin(command, cfg).await?,
        Command::Sync { command } => return sync(command, cfg).await,
        Command::Import {
            kind,
            file,
            mode,
            dry_run,
            batch,
        } => return import(cfg, kind, file, mode, dry_run, batch).await,
        Command::Export {
            kind,
            format,
            output,
            with_passwords,
        } => export(cfg, kind, format, output, with_passwords).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The application the command-line tools act through, as the server would (no listener,
/// no delivery workers: a running server picks the changes up from the change log).
async fn cli_app(
    cfg: Config,
    who: &str,
) -> anyhow::Result<(voxprov::app::App, voxprov::model::Actor)> {
    let (store, cipher) = voxprov::open(&cfg).await?;
    // Not started: the changes a command makes are delivered by a running server.
    let app = voxprov::app::App::build(cfg, store, cipher).await?;
    let mut actor = voxprov::model::Actor::system();
    actor.name = who.to_string();
    Ok((app, actor))
}

async fn import(
    cfg: Config,
    kind: voxprov::resources::bulk::Kind,
    file: PathBuf,
    mode: voxprov::resources::bulk::Mode,
    dry_run: bool,
    batch: usize,
) -> anyhow::Result<ExitCode> {
    use std::io::Write;
    // One pass over the file: the progress bar counts the bytes the CSV reader takes.
    let (f, size) = match std::fs::File::open(&file).and_then(|f| Ok((f.metadata()?.len(), f))) {
        Ok((size, f)) => (f, size),
        Err(e) => {
            eprintln!("voxprov: {}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let bar =
        indicatif::ProgressBar::new(size).with_style(indicatif::ProgressStyle::with_template(
            "{spinner} {bytes}/{total_bytes} {wide_bar} {binary_bytes_per_sec} eta {eta}",
        )?);
    let rows = match voxprov::resources::bulk::CsvRows::new(kind, bar.wrap_read(f)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("voxprov: {}: {e}", file.display());
            return Ok(ExitCode::from(2));
        }
    };
    let (app, actor) = cli_app(cfg, &format!("import {}", file.display())).await?;
    let started = std::time::Instant::now();
    let opts = voxprov::resources::bulk::Options {
        mode,
        dry_run,
        batch,
    };
    let stderr = std::io::stderr();
    let sum = voxprov::resources::bulk::import(&app, &actor, kind, rows, &opts, |r| {
        if r.status == "error" {
            bar.suspend(|| {
                let _ = writeln!(
                    stderr.lock(),
                    "line {}: {}{}",
                    r.row,
                    r.field
                        .as_deref()
                        .map(|f| format!("{f}: "))
                        .unwrap_or_default(),
                    r.message.as_deref().unwrap_or("")
                );
            });
        }
    })
    .await?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{}: {} rows, {} {}, {} errors; {} in {:.1} s ({:.0} rows/s)",
        kind.name(),
        sum.rows,
        sum.created,
        if dry_run { "valid" } else { "created" },
        sum.errors,
        if sum.committed {
            "committed"
        } else if dry_run {
            "dry run, nothing saved"
        } else {
            "nothing saved"
        },
        secs,
        sum.rows as f64 / secs.max(1e-9)
    );
    app.store.close().await;
    Ok(if sum.errors == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn export(
    cfg: Config,
    kind: voxprov::resources::bulk::Kind,
    format: ExportFormat,
    output: Option<PathBuf>,
    with_passwords: bool,
) -> anyhow::Result<()> {
    use std::io::Write;
    let (app, actor) = cli_app(cfg, "export").await?;
    let out: Box<dyn Write> = match &output {
        Some(p) => Box::new(
            voxprov::fsutil::create_private(p)
                .map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut out = std::io::BufWriter::new(out);
    let mut csv = match format {
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record(kind.columns().iter().map(|(c, _)| *c))?;
            Some(w)
        }
        ExportFormat::Json => {
            out.write_all(b"[")?;
            None
        }
    };
    let (mut after, mut first) = (0, true);
    loop {
        let page = voxprov::resources::bulk::export_page(&app, &actor, kind, after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.get("id").and_then(|v| v.as_i64()).unwrap_or(i64::MAX);
        for item in &page {
            let mut item = item.clone();
            if !with_passwords {
                item.remove("password");
            }
            let item = &item;
            match &mut csv {
                Some(w) => w.write_record(voxprov::resources::bulk::export_row(kind, item))?,
                None => {
                    if !first {
                        out.write_all(b",\n")?;
                    }
                    serde_json::to_writer(&mut out, item)?;
                }
            }
            first = false;
        }
        if let Some(w) = csv.take() {
            // Page by page, so memory stays flat.
            out.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
            csv = Some(csv::Writer::from_writer(Vec::new()));
        }
    }
    if let Some(w) = csv.take() {
        out.write_all(&w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    } else {
        out.write_all(b"]\n")?;
    }
    out.flush()?;
    app.store.close().await;
    Ok(())
}

async fn sync(cmd: SyncCommand, cfg: Config) -> anyhow::Result<ExitCode> {
    let (server, json, repair) = match cmd {
        SyncCommand::Check { server, json } => (server, json, false),
        SyncCommand::Repair { server, json } => (server, json, true),
    };
    let (store, cipher) = voxprov::open(&cfg).await?;
    let targets: Vec<_> = voxprov::targets::load_targets(&store, &cipher)
        .await?
        .into_iter()
        .filter(|t| server.as_ref().is_none_or(|s| *s == t.name))
        .collect();
    if let Some(s) = &server {
        if targets.is_empty() {
            anyhow::bail!("no sipserver named '{s}'");
        }
    }
    let (mut differences, mut failed) = (0, 0);
    let mut reports = Vec::new();
    for t in &targets {
        let report = if repair {
            // Handed to a running server's worker when there is one (see repair_target).
            let wait = std::time::Duration::from_secs(20);
            voxprov::targets::repair_target(&store, &cipher, t, wait).await
        } else {
            voxprov::targets::check_target(&store, &cipher, t, false).await
        };
        match report {
            Ok(r) => {
                differences += r.count;
                if repair {
                    voxprov::targets::journal_repair(&store, &r).await?;
                }
                if !json {
                    println!(
                        "{} ({}, schema {}): {} difference{}{}",
                        r.name,
                        t.driver.as_str(),
                        r.schema_version,
                        r.count,
                        if r.count == 1 { "" } else { "s" },
                        if repair && r.count > 0 {
                            ", repaired"
                        } else {
                            ""
                        }
                    );
                    for d in &r.differences {
                        let fields: Vec<String> = d
                            .fields
                            .iter()
                            .map(|f| {
                                format!(
                                    "{}: {} -> {}",
                                    f.field,
                                    f.target.as_deref().unwrap_or("-"),
                                    f.voxprov.as_deref().unwrap_or("-")
                                )
                            })
                            .collect();
                        println!(
                            "  {} {} {}{}{}",
                            d.table.name(),
                            d.key,
                            d.kind.as_str(),
                            if fields.is_empty() { "" } else { ": " },
                            fields.join(", ")
                        );
                    }
                }
                reports.push(serde_json::to_value(&r)?);
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", t.name);
                reports.push(serde_json::json!({ "name": t.name, "error": e.to_string() }));
            }
        }
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    store.close().await;
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else if differences > 0 && !repair {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn read_password() -> anyhow::Result<String> {
    eprintln!("password (read from standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Admins are changed through the same rules as the API's (validation, the journal, the
/// change log that running servers follow), with the command as the actor.
async fn admin(cmd: AdminCommand, cfg: Config) -> anyhow::Result<()> {
    use voxprov::resources::admins::Admins;
    use voxprov::resources::{create_one, update_one, Resource};
    match cmd {
        AdminCommand::Create {
            login,
            role,
            reseller_id,
            read_only,
        } => {
            let password = read_password()?;
            let (app, actor) = cli_app(cfg, "cli: admin create").await?;
            let doc = serde_json::json!({
                "login": login, "password": password, "role": role,
                "reseller_id": reseller_id, "read_only": read_only,
            });
            let mut tx = app.store.begin().await?;
            create_one::<Admins>(&mut tx, &app, &actor, doc).await?;
            tx.commit().await?;
            app.store.close().await;
            println!("admin '{login}' created");
        }
        AdminCommand::Passwd { login } => {
            let password = read_password()?;
            let (app, actor) = cli_app(cfg, "cli: admin passwd").await?;
            let mut tx = app.store.begin().await?;
            let id: Option<i64> = sqlx::query_scalar("SELECT id FROM admins WHERE login = $1")
                .bind(login.clone())
                .fetch_optional(&mut *tx)
                .await?;
            let old = match id {
                Some(id) => Admins::load(&mut tx, &app, id, true).await?,
                None => None,
            }
            .ok_or_else(|| anyhow::anyhow!("no admin '{login}'"))?;
            let mut doc = serde_json::Value::Object(Admins::view(&old, &actor));
            doc["password"] = serde_json::Value::String(password);
            update_one::<Admins>(&mut tx, &app, &actor, &old, doc).await?;
            tx.commit().await?;
            app.store.close().await;
            println!("password of '{login}' changed");
        }
        AdminCommand::List => {
            let (store, _) = voxprov::open(&cfg).await?;
            let mut c = store.read().await?;
            let rows = sqlx::query(
                "SELECT id, login, role, reseller_id, read_only, is_active FROM admins ORDER BY id",
            )
            .fetch_all(&mut *c)
            .await?;
            println!(
                "{:>4}  {:<24} {:<9} {:>8}  flags",
                "id", "login", "role", "reseller"
            );
            for r in rows {
                let reseller: Option<i64> = r.try_get(3)?;
                let mut flags = Vec::new();
                if r.try_get::<i64, _>(4)? != 0 {
                    flags.push("read-only");
                }
                if r.try_get::<i64, _>(5)? == 0 {
                    flags.push("inactive");
                }
                println!(
                    "{:>4}  {:<24} {:<9} {:>8}  {}",
                    r.try_get::<i64, _>(0)?,
                    r.try_get::<String, _>(1)?,
                    r.try_get::<String, _>(2)?,
                    reseller
                        .map(|r| r.to_string())
                        .unwrap_or_else(|| "-".into()),
                    flags.join(",")
                );
            }
            drop(c);
            store.close().await;
        }
    }
    Ok(())
}

/// A backup's passphrase: from a file, the environment, or standard input's first line.
fn passphrase(file: Option<&std::path::Path>) -> anyhow::Result<String> {
    let p = if let Some(f) = file {
        std::fs::read_to_string(f)
            .map_err(|e| anyhow::anyhow!("--passphrase-file {}: {e}", f.display()))?
    } else if let Ok(p) = std::env::var("VOXPROV_BACKUP_PASSPHRASE") {
        p
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        line
    };
    let p = p.trim_end_matches(['\r', '\n']).to_string();
    if p.is_empty() {
        anyhow::bail!("passphrase: none given (--passphrase-file, VOXPROV_BACKUP_PASSPHRASE or standard input)");
    }
    Ok(p)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
