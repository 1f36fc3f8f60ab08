//! Shared set-up for the integration tests: a real store directory in a fresh temp dir, with
//! users enrolled through the same `provision::enroll` the `sshield enroll` command uses, and
//! logins decided by the real [`Engine`].
//!
//! Secrets are fixed per (user, authenticator) so that every code, and every "wrong" code, is
//! the same on every run: a test can never pass or fail by a 1-in-a-million code collision.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use sshield_core::config::Policy;
use sshield_core::provision::{self, Enrollment};
use sshield_core::{
    Account, Attempt, Authenticator, Caller, Decision, Engine, RecordStore, Response, TokenKind,
    UnixTime, UserName, UserRecord,
};
use sshield_otp::{Algorithm, Digits, Period, Secret};
use tempfile::TempDir;

/// A fixed moment at the start of a 30-second step, so `T + 30 * n` lies in step `STEP + n`.
pub(crate) const T: u64 = 1_700_000_010;
/// The TOTP step (30 s) that contains `T`.
pub(crate) const STEP: u64 = T / 30;

/// A store in its own temp dir (mode 0700), and an engine over it with the default policy.
#[derive(Debug)]
pub(crate) struct TestStore {
    tmp: TempDir,
    pub store: RecordStore,
    pub engine: Engine,
}

impl TestStore {
    /// An empty store at `<tmp>/users`, created the way `enroll` creates it (mode 0700).
    pub(crate) fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let store = RecordStore::new(tmp.path().join("users"));
        store.create_dir().unwrap();
        let engine = Engine::with_store(store.clone(), Policy::default());
        Self { tmp, store, engine }
    }

    /// The temp dir that holds the store (for files that must live outside it).
    pub(crate) fn root(&self) -> &Path {
        self.tmp.path()
    }

    /// The store directory.
    pub(crate) fn dir(&self) -> &Path {
        self.store.dir()
    }

    /// Enrolls `user` with an active 6-digit TOTP authenticator called `default`.
    pub(crate) fn enroll(&self, user: &str) -> Token {
        self.enroll_with(totp(user, "default"))
    }

    /// Enrolls whatever `e` says, as `sshield enroll` would, ten minutes before `T`.
    pub(crate) fn enroll_with(&self, e: Enrollment) -> Token {
        let enrolled = provision::enroll(&self.store, e, UnixTime(T - 600)).unwrap();
        Token {
            auth: enrolled.authenticator,
            backup_codes: enrolled
                .backup_codes
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
        }
    }

    /// One login by `user`, typing `typed`, at `now`.
    pub(crate) fn decide(&self, user: &str, typed: &str, now: u64) -> Decision {
        decide(&self.engine, user, typed, now)
    }

    /// `user`'s record as stored.
    pub(crate) fn record(&self, user: &str) -> UserRecord {
        self.store.load(&name(user)).unwrap().unwrap()
    }

    /// The path of `user`'s record file.
    pub(crate) fn path(&self, user: &str) -> PathBuf {
        self.store.record_path(&name(user))
    }

    /// The bytes of `user`'s record file.
    pub(crate) fn bytes(&self, user: &str) -> Vec<u8> {
        fs::read(self.path(user)).unwrap()
    }
}

/// One login decided by `engine`, from an outside address over sshd.
pub(crate) fn decide(engine: &Engine, user: &str, typed: &str, now: u64) -> Decision {
    let response = Response::new(typed);
    engine.decide(&Attempt {
        caller: &Caller::new(Account::resolve(user), "sshd")
            .from_source(Some("203.0.113.7".parse().unwrap())),
        response: &response,
        now: UnixTime(now),
    })
}

/// `allow`, or the stable reason word of a denial (`replayed`, `wrong-code`, ...), so tests
/// read `assert_eq!(outcome(&d), "replayed")`.
pub(crate) fn outcome(d: &Decision) -> &'static str {
    match d {
        Decision::Allow(_) => "allow",
        Decision::Deny(reason) => reason.as_str(),
    }
}

/// The message of a store denial, or a panic naming what was decided instead.
pub(crate) fn store_error(d: &Decision) -> String {
    match d {
        Decision::Deny(sshield_core::DenyReason::Store(e)) => e.to_string(),
        other => panic!("expected a store error, got {other:?}"),
    }
}

pub(crate) fn name(user: &str) -> UserName {
    UserName::new(user).unwrap()
}

/// A fixed 20-byte secret for `user`'s authenticator `auth`.
pub(crate) fn fixed_secret(user: &str, auth: &str) -> Secret {
    let mut bytes = format!("sshield-test:{user}:{auth}:").into_bytes();
    bytes.resize(20.max(bytes.len()), b'#');
    Secret::from_bytes(bytes).unwrap()
}

/// An active 6-digit SHA-1 30-second TOTP enrollment with a fixed secret.
pub(crate) fn totp(user: &str, auth: &str) -> Enrollment {
    Enrollment {
        user: name(user),
        name: auth.to_owned(),
        kind: TokenKind::Totp,
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        period: Period::THIRTY,
        counter: 0,
        secret: Some(fixed_secret(user, auth)),
        activate: true,
        replace: false,
    }
}

/// An active 6-digit HOTP enrollment starting at counter 0, with a fixed secret.
pub(crate) fn hotp(user: &str, auth: &str) -> Enrollment {
    Enrollment {
        kind: TokenKind::Hotp,
        ..totp(user, auth)
    }
}

/// What the user's authenticator app holds after scanning the QR code, plus the backup codes
/// printed at enrollment.
#[derive(Debug)]
pub(crate) struct Token {
    pub auth: Authenticator,
    pub backup_codes: Vec<String>,
}

impl Token {
    /// The TOTP code the app shows at `unix_time`.
    pub(crate) fn at(&self, unix_time: u64) -> String {
        let params = self.auth.totp_params();
        sshield_otp::totp(&self.auth.secret, &params, unix_time)
            .as_str()
            .to_owned()
    }

    /// The HOTP code for `counter`.
    pub(crate) fn counter(&self, counter: u64) -> String {
        let params = self.auth.hotp_params();
        sshield_otp::hotp(&self.auth.secret, &params, counter)
            .as_str()
            .to_owned()
    }
}

/// `code` with its last digit changed: the typo a user makes.
pub(crate) fn typo(code: &str) -> String {
    let (head, last) = code.split_at(code.len() - 1);
    let digit = last.parse::<u8>().unwrap();
    format!("{head}{}", (digit + 1) % 10)
}

/// Whether the tests run as root (CI does), which owner checks need.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
