//! One test's world in a temp dir: `sshield.toml`, the record store `users/`, the log file,
//! the PAM config dir `pam.d/`, and the module linked in as `pam_sshield.so` (so libpam names
//! it `pam_sshield` in log lines, as it will be when installed).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use sshield_core::provision::{self, Enrollment};
use sshield_core::{RecordStore, UnixTime, UserName};
use sshield_otp::{Digits, Secret, TotpParams};
use tempfile::TempDir;

use super::driver::{self, Login, Outcome};
use super::module_so;

/// A test's private config, store and PAM services.
#[derive(Debug)]
pub(crate) struct Fixture {
    dir: TempDir,
    /// The config file, `config=` of every service line.
    pub config: PathBuf,
    /// The module, as `<dir>/pam_sshield.so`.
    pub module: PathBuf,
    /// The config's `log_file`.
    pub log_file: PathBuf,
    /// The record store the config names.
    pub store: RecordStore,
}

/// The PAM service name the tests use, in their own config dir.
pub(crate) const SERVICE: &str = "sshield-test";

impl Fixture {
    /// A fixture whose config is `store`, `log_file` and then `config` (tables such as
    /// `[policy]` go there), with failure delays off unless `config` sets `[rate_limit]`.
    pub(crate) fn new(config: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sshield-pam-")
            .tempdir()
            .unwrap();
        let module = dir.path().join("pam_sshield.so");
        std::os::unix::fs::symlink(module_so(), &module).unwrap();
        fs::create_dir(dir.path().join("pam.d")).unwrap();
        // What libpam falls back to for a service without a file: deny, as Debian's does.
        fs::write(
            dir.path().join("pam.d/other"),
            "auth required pam_deny.so\naccount required pam_deny.so\n",
        )
        .unwrap();
        let store = RecordStore::new(dir.path().join("users"));
        store.create_dir().unwrap();
        let fixture = Self {
            config: dir.path().join("sshield.toml"),
            log_file: dir.path().join("sshield.log"),
            module,
            store,
            dir,
        };
        let mut text = format!(
            "store = \"users\"\nlog_file = \"{}\"\n{config}",
            fixture.log_file.display()
        );
        if !config.contains("[rate_limit]") {
            text.push_str("\n[rate_limit]\ndelay = \"0s\"\n");
        }
        fixture.write_config(&text);
        fixture
    }

    /// The temp dir.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config file's text.
    pub(crate) fn write_config(&self, text: &str) {
        fs::write(&self.config, text).unwrap();
    }

    /// Writes the PAM service `name` with `lines`, where `{module}` is the module's path and
    /// `{config}` is `config=<the config file>`.
    pub(crate) fn service(&self, name: &str, lines: &str) {
        let text = lines
            .replace("{module}", &self.module.display().to_string())
            .replace("{config}", &format!("config={}", self.config.display()));
        fs::write(self.path().join("pam.d").join(name), text).unwrap();
    }

    /// The service [`SERVICE`] as one `auth` line: the module with `args` after `config=`.
    pub(crate) fn module_service(&self, args: &str) {
        self.service(
            SERVICE,
            &format!("auth required {{module}} {{config}} {args}\n"),
        );
    }

    /// Logs in through libpam in a child process.
    pub(crate) fn login(&self, login: &Login) -> Outcome {
        driver::run(&self.path().join("pam.d"), login)
    }

    /// Enrolls `user` with an active 6-digit TOTP token.
    pub(crate) fn enroll(&self, user: &str) -> Token {
        self.enroll_digits(user, Digits::SIX)
    }

    /// Enrolls `user` with an active TOTP token of `digits` digits, as `sshield enroll` would.
    pub(crate) fn enroll_digits(&self, user: &str, digits: Digits) -> Token {
        let mut bytes = format!("sshield-pam-test:{user}:").into_bytes();
        bytes.resize(20.max(bytes.len()), b'#');
        let enrollment = Enrollment {
            digits,
            secret: Some(Secret::from_bytes(bytes).unwrap()),
            activate: true,
            ..Enrollment::totp(UserName::new(user).unwrap(), "phone")
        };
        let enrolled = provision::enroll(&self.store, enrollment, UnixTime::now()).unwrap();
        Token {
            params: enrolled.authenticator.totp_params(),
            secret: enrolled.authenticator.secret,
            backup_codes: enrolled
                .backup_codes
                .iter()
                .map(|c| c.as_str().to_owned())
                .collect(),
        }
    }

    /// The lines of the log file (empty if there is none yet).
    pub(crate) fn log_lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

/// What a user's authenticator app holds, and the backup codes printed at enrollment.
#[derive(Debug)]
pub(crate) struct Token {
    secret: Secret,
    params: TotpParams,
    /// The backup codes, as printed.
    pub backup_codes: Vec<String>,
}

impl Token {
    /// The code the app shows now.
    pub(crate) fn code(&self) -> String {
        self.code_at(now())
    }

    fn code_at(&self, time: u64) -> String {
        sshield_otp::totp(&self.secret, &self.params, time)
            .as_str()
            .to_owned()
    }

    /// A code of the right length that the app shows at no time near now.
    pub(crate) fn wrong_code(&self) -> String {
        let near: Vec<String> = (0..9)
            .map(|i| self.code_at(now() - 4 * 30 + i * 30))
            .collect();
        let digits = self.params.digits.get() as usize;
        (0..10)
            .map(|d| d.to_string().repeat(digits))
            .find(|candidate| !near.contains(candidate))
            .expect("ten codes cannot all be near now")
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
