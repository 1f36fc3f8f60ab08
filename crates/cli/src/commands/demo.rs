//! `sshield demo`: try sshield in a minute without changing any system file.
//!
//! As root it runs the real thing ([`live`]): a throwaway `sshd` on a free loopback port,
//! wired to pam_sshield with a temporary config and store, and the invoking user enrolled, so
//! a newcomer logs in with `ssh` and their phone and watches each decision being made.
//! Without root, or with `--engine-only`, it shows the engine alone ([`engine_only`]): codes
//! typed at the demo's own prompt, checked by the same engine a login uses.
//!
//! - `live`: the order of the steps, what is printed, and the wait for the end.
//! - `prereq`: finding sshd, ssh-keygen, unshare, the module and the user, or saying what to
//!   install.
//! - `server`: the files sshd is given (sshd_config, the PAM service, the sshield config) and
//!   the sshd process in its private mount namespace.
//! - `procs`: stopping sshd and every process it started, by pid.
//! - `events`: Enter, end of input and signals, and the decision lines as they are written.
//! - `scratch`: the temporary directory.

mod events;
mod live;
mod prereq;
mod procs;
mod scratch;
mod server;

use std::io::IsTerminal;
use std::process::ExitCode;

use sshield_core::provision::{self, Enrollment};
use sshield_core::{
    Account, Attempt, Caller, Config, Decision, Engine, Response, UnixTime, UserName,
};
use sshield_otp::totp;
use zeroize::Zeroizing;

use super::{key_uri, print_backup_codes, read_line};
use crate::cli::DemoArgs;
use crate::failure::Failure;
use crate::qr;
use scratch::Scratch;

/// Why the demo could not run.
#[derive(Debug)]
pub(crate) enum DemoFailure {
    /// Something it needs is not installed or not built: exit 1, with what to do.
    Missing(String),
    /// Anything else: exit 2.
    Failed(Failure),
}

impl From<Failure> for DemoFailure {
    fn from(f: Failure) -> Self {
        DemoFailure::Failed(f)
    }
}

/// Runs the demo and returns its exit status: 0 after a clean stop, 1 when something it needs
/// is missing, 2 on any other error.
pub(crate) fn run(args: &DemoArgs) -> ExitCode {
    let outcome = if args.engine_only {
        engine_only().map_err(DemoFailure::from)
    } else if !rustix::process::geteuid().is_root() {
        explain_root();
        engine_only().map_err(DemoFailure::from)
    } else {
        live::run(args)
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(DemoFailure::Missing(what)) => {
            eprintln!("sshield demo: {what}");
            eprintln!(
                "(`sshield demo --engine-only` shows the engine alone, without sshd or root.)"
            );
            ExitCode::from(1)
        }
        Err(DemoFailure::Failed(failure)) => failure.report(),
    }
}

/// Says why the full demo needs root, and how to run it.
fn explain_root() {
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "sshield".to_owned());
    println!("The full demo starts a throwaway sshd that asks for a code through pam_sshield, and");
    println!("that needs root: sshd switches to your user and runs PAM. To run it:\n");
    println!("    sudo {} demo\n", live::shell_quote(&me));
    println!(
        "It changes no system file and removes everything when it ends. Meanwhile, here is the"
    );
    println!("engine on its own (the same one the PAM module calls):\n");
}

/// The engine alone: a throwaway store and a demo user, and codes typed at the demo's own
/// prompt checked as a login would check them (try typing one twice). Without a terminal it
/// runs one round by itself, with the code it computes.
pub(crate) fn engine_only() -> Result<(), Failure> {
    let scratch = Scratch::create()?;
    let config_path = scratch.path().join("sshield.toml");
    let config_text = "# sshield demo config\nstore = \"users\"\nissuer = \"sshield demo\"\n";
    std::fs::write(&config_path, config_text)
        .map_err(|e| Failure::Error(format!("cannot write {}: {e}", config_path.display())))?;
    let config = Config::parse(config_text, &config_path)?;
    let store = config.record_store();
    let user = UserName::new("demo")?;
    let enrollment = Enrollment {
        activate: true,
        ..Enrollment::totp(user.clone(), "phone")
    };
    let enrolled = provision::enroll(&store, enrollment, UnixTime::now())?;
    let auth = &enrolled.authenticator;
    let uri = Zeroizing::new(key_uri(user.as_str(), "sshield demo", auth, 0)?.to_uri());

    println!(
        "sshield demo (engine only): a throwaway store in {} (removed on exit).\n",
        scratch.path().display()
    );
    println!(
        "1. Scan this with an authenticator app (or type the key {}):\n",
        auth.secret.to_base32().as_str()
    );
    println!("{}", qr::terminal(&uri)?);
    println!("2. Backup codes (each works once):\n");
    print_backup_codes(&enrolled.backup_codes);
    println!("\n3. Type the 6-digit code the app shows, or a backup code. Type one twice to see");
    println!("   replay protection. Ctrl-D or an empty line ends the demo.\n");

    let engine = Engine::new(&config);
    let account = Account::resolve(user.as_str());
    let attempt = |typed: &str| {
        let response = Response::new(typed);
        let decision = engine.decide(&Attempt {
            caller: &Caller::new(account.clone(), "sshield-demo"),
            response: &response,
            now: UnixTime::now(),
        });
        match decision {
            Decision::Allow(m) => println!("   accepted ({})", m.as_str()),
            Decision::Deny(r) => println!("   refused: {r}"),
        }
    };

    if !std::io::stdin().is_terminal() {
        let params = auth.totp_params();
        let code = totp(&auth.secret, &params, UnixTime::now().0);
        println!(
            "   (no terminal: trying the current code {} twice by itself)",
            code.as_str()
        );
        attempt(code.as_str());
        attempt(code.as_str());
        return Ok(());
    }
    while let Some(typed) = read_line(Some("Verification code: "))? {
        if typed.is_empty() {
            break;
        }
        attempt(&typed);
    }
    let dir = scratch.remove()?;
    println!(
        "\nDemo over; {} removed. Next: docs/ and `sshield enroll --help`.",
        dir.display()
    );
    Ok(())
}
