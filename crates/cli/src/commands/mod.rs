//! One module per group of subcommands, over a shared [`Context`].

pub(crate) mod admin;
pub(crate) mod demo;
pub(crate) mod docs;
pub(crate) mod doctor;
pub(crate) mod enroll;
pub(crate) mod export;
pub(crate) mod import;
pub(crate) mod join;
pub(crate) mod log;
pub(crate) mod log_fleet;
pub(crate) mod setup;
pub(crate) mod show;
pub(crate) mod status;
pub(crate) mod verify;

use std::io::{self, BufRead, IsTerminal, Write};
use std::path::Path;

use sshield_core::accounts;
use sshield_core::config::DEFAULT_CONFIG_PATH;
use sshield_core::record::{Authenticator, TokenKind};
use sshield_core::{Config, ConfigError, Engine, RecordStore, UnixTime, UserName, UserRecord};
use sshield_otp::{KeyUri, OtpKind};
use zeroize::Zeroizing;

use crate::failure::Failure;

/// The loaded config and what is built from it.
#[derive(Debug)]
pub(crate) struct Context {
    pub config: Config,
    pub store: RecordStore,
    pub engine: Engine,
    pub now: UnixTime,
}

impl Context {
    /// Loads the config. The default path may be missing (built-in defaults apply, so root can
    /// enroll before running setup); a path given explicitly must exist.
    pub(crate) fn load(path: &Path) -> Result<Self, Failure> {
        let config = match Config::load(path) {
            Ok(c) => c,
            Err(ConfigError::Io { source, .. })
                if source.kind() == io::ErrorKind::NotFound
                    && path == Path::new(DEFAULT_CONFIG_PATH) =>
            {
                Config::default()
            }
            Err(e) => return Err(e.into()),
        };
        let store = config.record_store();
        let engine = Engine::new(&config);
        Ok(Self {
            config,
            store,
            engine,
            now: UnixTime::now(),
        })
    }

    /// The issuer for Key URIs: the flag, else the config, else the host name.
    pub(crate) fn issuer(&self, flag: Option<&str>) -> String {
        flag.map(str::to_owned)
            .or_else(|| self.config.issuer.clone())
            .unwrap_or_else(|| {
                rustix::system::uname()
                    .nodename()
                    .to_string_lossy()
                    .into_owned()
            })
    }

    /// Reads a user's record, failing clearly if there is none.
    pub(crate) fn record(&self, user: &UserName) -> Result<UserRecord, Failure> {
        self.store.load(user)?.ok_or_else(|| {
            Failure::Error(format!("{user} is not enrolled (sshield enroll {user})"))
        })
    }
}

/// Checks a user name from the command line, as the account it stands for: where the name
/// service maps `ALICE` to `alice`, logins use alice's record (see `accounts::account_name`),
/// so enrolling, importing or showing `ALICE` must mean that record too.
pub(crate) fn user_name(name: &str) -> Result<UserName, Failure> {
    let account = accounts::account_name(name).map_err(Failure::error)?;
    // Which name: a command may take several (`import --user`, a users.oath file's).
    UserName::new(&account).map_err(|e| Failure::Error(format!("{account:?}: {e}")))
}

/// Picks the authenticator called `name`, or the first one.
pub(crate) fn pick<'r>(
    record: &'r UserRecord,
    name: Option<&str>,
) -> Result<&'r Authenticator, Failure> {
    match name {
        Some(n) => record.authenticator(n).ok_or_else(|| {
            Failure::Error(format!(
                "{} has no authenticator named {n:?} (see sshield status {})",
                record.user, record.user
            ))
        }),
        None => record
            .authenticators
            .first()
            .ok_or_else(|| Failure::Error(format!("{} has no authenticators", record.user))),
    }
}

/// The Key URI an app needs to hold `auth`.
pub(crate) fn key_uri(
    user: &str,
    issuer: &str,
    auth: &Authenticator,
    next_counter: u64,
) -> Result<KeyUri, Failure> {
    let digits = auth.digits;
    let kind = match auth.kind {
        TokenKind::Totp => OtpKind::Totp {
            period: auth.period.unwrap_or_default(),
        },
        TokenKind::Hotp => OtpKind::Hotp {
            counter: next_counter,
        },
    };
    Ok(KeyUri {
        kind,
        issuer: Some(issuer.to_owned()),
        account: user.to_owned(),
        secret: auth.secret.clone(),
        algorithm: auth.algorithm,
        digits,
    })
}

/// A code or secret from an argument, or from standard input when the argument is `-`.
pub(crate) fn argument_or_stdin(value: &str, what: &str) -> Result<Zeroizing<String>, Failure> {
    if value != "-" {
        return Ok(Zeroizing::new(value.to_owned()));
    }
    read_line(None)?.ok_or_else(|| Failure::Error(format!("no {what} on standard input")))
}

/// Reads one line from standard input, after printing `prompt` to stderr if stdin is a
/// terminal. `None` at end of input.
pub(crate) fn read_line(prompt: Option<&str>) -> Result<Option<Zeroizing<String>>, Failure> {
    let stdin = io::stdin();
    if let Some(p) = prompt {
        if stdin.is_terminal() {
            eprint!("{p}");
            let _ = io::stderr().flush();
        }
    }
    let mut line = Zeroizing::new(String::new());
    let n = stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::Error(format!("cannot read standard input: {e}")))?;
    if n == 0 {
        return Ok(None);
    }
    Ok(Some(Zeroizing::new(line.trim().to_owned())))
}

/// Prints backup codes two to a line.
pub(crate) fn print_backup_codes(codes: &[Zeroizing<String>]) {
    for pair in codes.chunks(2) {
        let line: Vec<&str> = pair.iter().map(|c| c.as_str()).collect();
        println!("    {}", line.join("    "));
    }
}
