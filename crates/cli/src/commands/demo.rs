//! `sshield demo`: try sshield in a minute without touching any system file.
//!
//! Makes a throwaway config and store in a temporary directory, enrolls a demo user, shows the
//! QR code to scan, then checks the codes typed at the prompt through the same engine a login
//! uses, saying why each is accepted or refused (try typing one twice). Everything is removed
//! on exit. Without a terminal it runs one round by itself, with the code it computes.

use std::fs;
use std::io::IsTerminal;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sshield_core::provision::{self, Enrollment};
use sshield_core::{Attempt, Config, Decision, Engine, Response, UnixTime, UserName};
use sshield_otp::totp;

use super::{key_uri, print_backup_codes, read_line};
use crate::failure::Failure;
use crate::qr;

/// A temporary directory removed on drop, also when the demo fails.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn run() -> Result<(), Failure> {
    let scratch = Scratch(make_scratch_dir()?);
    let config_path = scratch.0.join("sshield.toml");
    let config_text = "# sshield demo config\nstore = \"users\"\nissuer = \"sshield demo\"\n";
    fs::write(&config_path, config_text)
        .map_err(|e| Failure::Error(format!("cannot write {}: {e}", config_path.display())))?;
    let config = Config::parse(config_text, &config_path)?;
    let store = config.record_store();
    let user = UserName::new("demo")?;
    let now = UnixTime::now();
    let enrollment = Enrollment {
        activate: true,
        ..Enrollment::totp(user.clone(), "phone")
    };
    let enrolled = provision::enroll(&store, enrollment, now)?;
    let auth = &enrolled.authenticator;
    let uri = key_uri(user.as_str(), "sshield demo", auth, 0)?.to_uri();

    println!(
        "sshield demo: a throwaway store in {} (removed on exit).\n",
        scratch.0.display()
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
    let attempt = |typed: &str| {
        let response = Response::new(typed);
        let decision = engine.decide(&Attempt {
            user: user.as_str(),
            source: None,
            service: "sshield-demo",
            response: &response,
            first_factor: None,
            now: UnixTime::now(),
        });
        match decision {
            Decision::Allow(m) => println!("   accepted ({})", m.as_str()),
            Decision::Deny(r) => println!("   refused: {r}"),
        }
    };

    if !std::io::stdin().is_terminal() {
        let params = auth.totp_params().map_err(Failure::error)?;
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
    println!(
        "\nDemo over; {} removed. Next: docs/ and `sshield enroll --help`.",
        scratch.0.display()
    );
    Ok(())
}

fn make_scratch_dir() -> Result<PathBuf, Failure> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!("sshield-demo-{}-{attempt}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(|e| Failure::Error(format!("cannot secure {}: {e}", dir.display())))?;
                return Ok(dir);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(Failure::Error(format!(
                    "cannot create a directory in {}: {e}",
                    show(&base)
                )))
            }
        }
    }
    Err(Failure::Error(format!(
        "cannot create a fresh directory in {}",
        show(&base)
    )))
}

fn show(p: &Path) -> String {
    p.display().to_string()
}
