//! `sshield`: the admin's command for enrolling users and checking codes.
//!
//! Exit status: 0 success, 1 a code or request was refused, 2 an error (message on stderr).
#![forbid(unsafe_code)]

mod cli;
mod commands;
mod daemon;
mod failure;
mod fleet;
mod login;
mod procs;
mod protocol;
mod qr;
mod syslog;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use crate::cli::{Cli, Command, ImportCommand};
use crate::failure::Failure;

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let config_from_env =
        matches.value_source("config") == Some(clap::parser::ValueSource::EnvVariable);
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    if let Command::Login { syslog_socket } = &cli.command {
        // The environment is the client's (`AcceptEnv SSHIELD_*` lets `ssh -o
        // SetEnv=SSHIELD_CONFIG=/dev/stdin` through, issue 9 item 5): the helper takes its
        // config from sshd's ForceCommand line, else the default path, never from there.
        let config = if config_from_env {
            std::path::Path::new(sshield_core::config::DEFAULT_CONFIG_PATH)
        } else {
            cli.config.as_path()
        };
        // Its own exit codes and messages: it speaks to the logging-in user, not the admin.
        return login::run(config, syslog_socket);
    }
    if let Command::Doctor(args) = &cli.command {
        // Its exit status is the worst finding's severity, not success or failure.
        return commands::doctor::run(&cli.config, args);
    }
    if let Command::Demo(args) = &cli.command {
        // Its own exit status: 1 when something it needs is missing, with what to install.
        return commands::demo::run(args);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => failure.report(),
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    let config_path = cli.config;
    let ctx = || commands::Context::load(&config_path);
    match cli.command {
        Command::Enroll(args) => commands::enroll::run(&ctx()?, args),
        Command::Confirm { user, code, name } => {
            commands::verify::confirm(&ctx()?, &user, &code, name.as_deref())
        }
        Command::Verify { user, code } => commands::verify::verify(&ctx()?, &user, &code),
        Command::Code { user, name } => commands::show::code(&ctx()?, &user, name.as_deref()),
        Command::Qr {
            user,
            name,
            issuer,
            images,
        } => commands::show::qr(&ctx()?, &user, name.as_deref(), issuer.as_deref(), &images),
        Command::Status { user, json } => commands::status::run(&ctx()?, user.as_deref(), json),
        Command::BackupCodes { user, json } => commands::admin::backup_codes(&ctx()?, &user, json),
        Command::Disable { user } => commands::admin::set_disabled(&ctx()?, &user, true),
        Command::Enable { user } => commands::admin::set_disabled(&ctx()?, &user, false),
        Command::Remove { user, name } => commands::admin::remove(&ctx()?, &user, name.as_deref()),
        Command::BindKeys {
            user,
            keys,
            name,
            clear: _,
        } => commands::admin::bind_keys(&ctx()?, &user, name.as_deref(), &keys),
        Command::Import(ImportCommand::UsersOath {
            file,
            replace,
            dry_run,
        }) => commands::import::users_oath(&ctx()?, &file, replace, dry_run),
        Command::Import(ImportCommand::GoogleAuthenticator {
            file,
            user,
            replace,
            dry_run,
        }) => commands::import::google_authenticator(&ctx()?, &file, &user, replace, dry_run),
        Command::Export { users, output } => {
            commands::export::run(&ctx()?, &users, output.as_deref())
        }
        Command::Daemon { syslog_socket } => {
            // No default-config fallback: the daemon decides logins, so its config must exist.
            let config = sshield_core::Config::load(&config_path)?;
            daemon::run(config, syslog_socket)
        }
        Command::Login { .. } | Command::Doctor(_) | Command::Demo(_) => Ok(()),
        Command::Log(args) => commands::log::run(&config_path, &args),
        Command::GenerateDocs { dir } => commands::docs::generate(&dir),
        Command::Setup(args) => commands::setup::run(&config_path, &args),
        Command::Join(args) => commands::join::run(&config_path, &args),
    }
}
