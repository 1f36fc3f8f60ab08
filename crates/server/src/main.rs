//! The `sshield-server` binary: parse the command line, run one subcommand, map failures to
//! a message and an exit status.

use std::process::ExitCode;

use clap::Parser;
use sshield_server::cli::{Cli, Command, LogFormat};
use sshield_server::config::{Overrides, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SSHIELD_SERVER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sshield-server: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    let mut over = Overrides {
        config: cli.config,
        state_dir: cli.state_dir,
        database: cli.database,
        ..Overrides::default()
    };
    if let Command::GenerateDocs { dir } = &cli.command {
        return sshield_server::docs::generate(dir).map_err(|e| e.to_string());
    }
    if let Command::Serve(args) = &cli.command {
        over.listen = args.listen;
        over.tls_cert = args.tls_cert.clone();
        over.tls_key = args.tls_key.clone();
    }
    let settings = Settings::load(&over).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers.get())
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(async move {
        let admin = match cli.command {
            Command::Serve(_) => {
                return sshield_server::serve::serve(settings)
                    .await
                    .map_err(|e| e.to_string())
            }
            Command::GenerateDocs { .. } => return Ok(()),
            admin => admin,
        };
        // The admin's commands use the database directly, as the server does.
        let app = sshield_server::serve::open_app(&settings)
            .await
            .map_err(|e| e.to_string())?;
        let out = match admin {
            Command::User(command) => sshield_server::commands::user(&app, command).await?,
            Command::Host(command) => {
                let hint = sshield_server::commands::JoinHint::from_settings(&settings)?;
                sshield_server::commands::host(&app, command, Some(&hint)).await?
            }
            Command::Push(command) => sshield_server::commands::push(&app, command).await?,
            Command::Audit(args) => sshield_server::commands::audit(&app, args).await?,
            Command::Serve(_) | Command::GenerateDocs { .. } => String::new(),
        };
        print!("{out}");
        Ok(())
    })
}
