//! The `voxprov` command: parse, load configuration, hand over to the library.

use std::{io::BufRead, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use sqlx::Row;
use voxprov::config::{Config, Flags};

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
    let cli = Cli::parse();
    let cfg = match Config::load(cli.config.as_deref(), &cli.flags) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("voxprov: {e}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&cfg.log).unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    for var in Config::unknown_env_vars() {
        tracing::warn!("unknown environment variable {var} ignored");
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    match rt.block_on(run(cli.command, cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxprov: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cmd: Command, cfg: Config) -> anyhow::Result<()> {
    match cmd {
        Command::Serve => {
            let listener = tokio::net::TcpListener::bind(cfg.listen)
                .await
                .map_err(|e| anyhow::anyhow!("listen {}: {e}", cfg.listen))?;
            voxprov::serve(cfg, listener, shutdown_signal()).await
        }
        Command::Migrate => {
            voxprov::open(&cfg).await?;
            println!("database is up to date");
            Ok(())
        }
        Command::Admin { command } => admin(command, cfg).await,
    }
}

fn read_password() -> anyhow::Result<String> {
    eprintln!("password (read from standard input):");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    let p = line.trim_end_matches(['\r', '\n']).to_string();
    if p.chars().count() < 8 {
        anyhow::bail!("password: must be at least 8 characters");
    }
    Ok(p)
}

async fn admin(cmd: AdminCommand, cfg: Config) -> anyhow::Result<()> {
    let (store, _) = voxprov::open(&cfg).await?;
    match cmd {
        AdminCommand::Create {
            login,
            role,
            reseller_id,
            read_only,
        } => {
            voxprov::model::sip_username("login", &login)?;
            let role = voxprov::model::Role::parse("role", &role)?;
            if (role == voxprov::model::Role::Reseller) != reseller_id.is_some() {
                anyhow::bail!("--reseller-id is required for role reseller and only for it");
            }
            let hash = voxprov::crypto::hash_password(read_password()?).await?;
            let mut tx = store.begin().await?;
            let t = voxprov::store::now();
            sqlx::query(
                "INSERT INTO admins (login, password_hash, role, reseller_id, read_only, is_active, create_timestamp, modify_timestamp) \
                 VALUES ($1, $2, $3, $4, $5, 1, $6, $6)",
            )
            .bind(login.clone())
            .bind(hash)
            .bind(role.as_str())
            .bind(reseller_id)
            .bind(read_only as i64)
            .bind(t)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            println!("admin '{login}' created");
        }
        AdminCommand::Passwd { login } => {
            let hash = voxprov::crypto::hash_password(read_password()?).await?;
            let mut tx = store.begin().await?;
            let n = sqlx::query(
                "UPDATE admins SET password_hash = $1, modify_timestamp = $2 WHERE login = $3",
            )
            .bind(hash)
            .bind(voxprov::store::now())
            .bind(login.clone())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            tx.commit().await?;
            if n == 0 {
                anyhow::bail!("no admin '{login}'");
            }
            println!("password of '{login}' changed");
        }
        AdminCommand::List => {
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
        }
    }
    store.close().await;
    Ok(())
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
