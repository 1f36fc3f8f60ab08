//! The one config file every front end reads: `/etc/sshield/sshield.toml` by default.
//!
//! The file holds policy, never secrets, so it may be world-readable; it must not be writable
//! by anyone but its owner, since whoever writes it decides who needs a second factor.
//! Unknown keys are errors (a typo like `windw = 3` must not be silently ignored), reported
//! with the file and line.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use std::time::Duration;

use serde::Deserialize;

use crate::de;
use crate::fleet::ServerSection;
pub use crate::fleet::{ServerConfig, ServerUrl, Trust};

pub use crate::policy::{Policy, Unenrolled};
pub use crate::push::PushPolicy;
pub use crate::ratelimit::RateLimit;
use crate::store::{describe_io, line_of, toml_message, RecordStore};

/// Where the config lives unless `--config`, `SSHIELD_CONFIG` or `config=` says otherwise.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/sshield/sshield.toml";
/// Where records live unless the config's `store` says otherwise.
pub const DEFAULT_STORE_PATH: &str = "/var/lib/sshield/users";

/// The parsed config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The records directory.
    pub store: PathBuf,
    /// The issuer shown in authenticator apps; defaults to the host name.
    pub issuer: Option<String>,
    /// What to do when a remote service (daemon, approval server) cannot be reached.
    pub failmode: Failmode,
    /// The text of the code prompt.
    pub prompt: String,
    /// Also append every decision line to this file (besides syslog).
    pub log_file: Option<PathBuf>,
    /// Who must use a second factor, and how codes are checked.
    pub policy: Policy,
    /// Failure counting and lockout.
    pub rate_limit: RateLimit,
    /// The Unix socket `sshield daemon` serves and `sshield login` asks.
    pub socket: PathBuf,
    /// `sshield login`: with no terminal to prompt on (scp, sftp, git, rsync), take the code
    /// from the client's `SSHIELD_CODE` (`ssh -o SetEnv=SSHIELD_CODE=...`, sshd `AcceptEnv`).
    pub accept_env_code: bool,
    /// `sshield login`: printed after a good code (seed 000's configurable banner).
    pub banner: Option<String>,
    /// `sshield login`: codes a user may try per login before the session ends.
    pub login_tries: u32,
    /// `sshield login`: how long the prompt waits for a code.
    #[serde(deserialize_with = "de::duration")]
    pub login_timeout: Duration,
    /// `sshield login`: what replaces `internal-sftp` (which only sshd itself can run).
    pub sftp_server: PathBuf,
    /// `sshield login`: the arguments `sftp_server` runs with (e.g. `["-R"]` for read-only).
    /// Never the client's: with a ForceCommand, sshd hands the helper `internal-sftp -R` from
    /// its `Subsystem` line and `internal-sftp` from `ssh host internal-sftp` alike, so words
    /// taken from there would let any client drop the admin's `-R` (issue 9, item 14). Other
    /// words than these are refused.
    pub sftp_server_args: Vec<String>,
    /// Push approval for the fleet's users (`[push]`; off unless set).
    pub push: PushPolicy,
    /// The fleet server this host joined (`sshield join`), checked; `None` on a lone host.
    #[serde(skip)]
    pub server: Option<ServerConfig>,
    /// The `[server]` section as written, until `parse` checks it into `server`.
    #[serde(rename = "server")]
    server_section: Option<ServerSection>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: PathBuf::from(DEFAULT_STORE_PATH),
            issuer: None,
            failmode: Failmode::Secure,
            prompt: DEFAULT_PROMPT.to_owned(),
            log_file: None,
            policy: Policy::default(),
            rate_limit: RateLimit::default(),
            socket: PathBuf::from(DEFAULT_SOCKET_PATH),
            accept_env_code: false,
            banner: None,
            login_tries: 3,
            login_timeout: Duration::from_secs(60),
            sftp_server: PathBuf::from(DEFAULT_SFTP_SERVER),
            sftp_server_args: Vec::new(),
            push: PushPolicy::default(),
            server: None,
            server_section: None,
        }
    }
}

/// Where `sshield daemon` listens unless the config's `socket` says otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/sshield/sshield.sock";
/// The sftp-server binary `sshield login` runs for `internal-sftp` (Debian's path).
pub const DEFAULT_SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// The prompt unless the config's `prompt` says otherwise. It says what to type, and that a
/// backup code works at the same prompt.
pub const DEFAULT_PROMPT: &str = "Verification code: ";

/// What a front end does when a remote service it needs is unreachable (duo_unix's
/// `failmode`). A broken config or record is never "unreachable": it always denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failmode {
    /// Deny the login.
    Secure,
    /// Allow the login, and log it loudly.
    Safe,
}

impl Config {
    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let io_error = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        // Checked and read through one open file, so what is checked is what is read (a
        // rename between a check by path and the read would slip another file in), and with
        // two system calls fewer: this runs at every login.
        let file = fs::File::open(path).map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        let euid = rustix::process::geteuid().as_raw();
        if meta.mode() & 0o022 != 0 {
            return Err(ConfigError::Writable {
                path: path.to_owned(),
                mode: meta.mode() & 0o7777,
            });
        }
        if meta.uid() != 0 && meta.uid() != euid {
            return Err(ConfigError::Owner {
                path: path.to_owned(),
                owner: meta.uid(),
            });
        }
        Self::read_open(&file, &meta, path)
    }

    /// Reads the config at `path` for a program that runs as an ordinary user but decides
    /// for root: `sshield login`, the ForceCommand helper. Whoever can change its config can
    /// write `failmode = "safe"` and a dead `socket`, and be let in without a code (issue 9,
    /// item 5). So the file must be a regular file that root owns and only root can write,
    /// and every directory above it (symlinks resolved) must be root's and writable by root
    /// alone, or sticky like /tmp, where nobody else can rename root's entries.
    pub fn load_root_owned(path: &Path) -> Result<Self, ConfigError> {
        let io_error = |source| ConfigError::Io {
            path: path.to_owned(),
            source,
        };
        let real = fs::canonicalize(path).map_err(io_error)?;
        for dir in real.ancestors().skip(1) {
            let meta = fs::metadata(dir).map_err(|source| ConfigError::Io {
                path: dir.to_owned(),
                source,
            })?;
            let sticky = meta.mode() & 0o1000 != 0;
            if meta.uid() != 0 || (meta.mode() & 0o022 != 0 && !sticky) {
                return Err(ConfigError::NotRootOnly {
                    path: path.to_owned(),
                    culprit: dir.to_owned(),
                    owner: meta.uid(),
                    mode: meta.mode() & 0o7777,
                });
            }
        }
        // No symlink is left in `real`; O_NOFOLLOW says so again for its last part, and
        // O_NONBLOCK keeps a FIFO planted there from hanging the login before the type check.
        let file = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
            .open(&real)
            .map_err(io_error)?;
        let meta = file.metadata().map_err(io_error)?;
        if !meta.is_file() || meta.uid() != 0 || meta.mode() & 0o022 != 0 {
            return Err(ConfigError::NotRootOnly {
                path: path.to_owned(),
                culprit: real,
                owner: meta.uid(),
                mode: meta.mode() & 0o7777,
            });
        }
        Self::read_open(&file, &meta, path)
    }

    /// Reads the open, checked config file to its end and parses it.
    fn read_open(file: &fs::File, meta: &fs::Metadata, path: &Path) -> Result<Self, ConfigError> {
        // Sized from the fstat the caller made; read to the end all the same, in case the file
        // grew. (`File::read_to_string` would fstat and lseek again for its size hint, which
        // a `Take` has none of.)
        let mut text = String::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        io::Read::read_to_string(&mut io::Read::take(file, u64::MAX), &mut text).map_err(
            |source| ConfigError::Io {
                path: path.to_owned(),
                source,
            },
        )?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: toml_message(text, &e),
        })?;
        if config.store.is_relative() {
            // Relative to the config file, so a test dir or a demo can be self-contained.
            let base = path.parent().unwrap_or(Path::new("/"));
            config.store = base.join(&config.store);
        }
        if config.socket.is_relative() {
            let base = path.parent().unwrap_or(Path::new("/"));
            config.socket = base.join(&config.socket);
        }
        if !(1..=10).contains(&config.login_tries) {
            return Err(setting_error(
                text,
                path,
                "login_tries",
                format!(
                    "login_tries = {} is out of range; use 1 to 10 (3 is usual)",
                    config.login_tries
                ),
            ));
        }
        if config.login_timeout.is_zero() {
            return Err(setting_error(
                text,
                path,
                "login_timeout",
                "login_timeout = \"0s\" would refuse every login; write e.g. \"60s\"".to_owned(),
            ));
        }
        if config.policy.window > 10 {
            return Err(setting_error(text, path, "window", format!(
                    "policy.window = {} accepts codes up to {} steps away; use 0 to 10 (1 is usual)",
                    config.policy.window, config.policy.window
                )));
        }
        if !(1..=128).contains(&config.rate_limit.ipv6_prefix) {
            return Err(setting_error(text, path, "ipv6_prefix", format!(
                    "rate_limit.ipv6_prefix = {} is not a prefix length; use 1 to 128 (64 is usual)",
                    config.rate_limit.ipv6_prefix
                )));
        }
        if config.rate_limit.familiar_sources > 64 {
            return Err(setting_error(text, path, "familiar_sources", format!(
                    "rate_limit.familiar_sources = {} gives that many sources a budget of their own; use 0 to 64 (8 is usual)",
                    config.rate_limit.familiar_sources
                )));
        }
        if config.push.wait < Duration::from_secs(5) || config.push.wait > crate::push::MAX_WAIT {
            return Err(setting_error(
                text,
                path,
                "wait",
                "push.wait: use 5s to 5m (60s is usual: the server lets a push be approved for \
                 approval_ttl, 60s by default)"
                    .to_owned(),
            ));
        }
        if let Some(section) = config.server_section.take() {
            let base = path.parent().unwrap_or(Path::new("/"));
            config.server = Some(
                section
                    .check(base)
                    .map_err(|(key, message)| setting_error(text, path, key, message))?,
            );
        }
        Ok(config)
    }

    /// The record store this config names.
    pub fn record_store(&self) -> RecordStore {
        RecordStore::new(&self.store)
    }
}

/// The error for a setting `key` whose value is out of range, at the line that sets it.
fn setting_error(text: &str, path: &Path, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        line: line_of_setting(text, key),
        message: message.into(),
    }
}

/// The 1-based line that sets `key` (`key = ...` or `policy.key = ...`), skipping comments and
/// other keys that merely mention it; failing that, the first line using it outside a comment
/// (an inline table).
fn line_of_setting(text: &str, key: &str) -> Option<usize> {
    let sets = |line: &str| {
        let line = line.trim_start();
        let line = line.strip_prefix("policy.").unwrap_or(line);
        line.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    let uses = |line: &str| line.split('#').next().unwrap_or("").contains(key);
    text.lines()
        .position(sets)
        .or_else(|| text.lines().position(uses))
        .map(|i| i + 1)
}

/// Why the config could not be used.
#[derive(Debug)]
pub enum ConfigError {
    /// Could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Group- or world-writable.
    Writable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Owned by someone other than root or the current user.
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },
    /// For `sshield login`: the file, or a directory above it, is not root's alone.
    NotRootOnly {
        /// The config file as named.
        path: PathBuf,
        /// The file or directory that is not root's alone.
        culprit: PathBuf,
        /// Its owner.
        owner: u32,
        /// Its permission bits.
        mode: u32,
    },
    /// Not valid TOML, an unknown key, or a value out of range.
    Invalid {
        /// The file.
        path: PathBuf,
        /// 1-based line, where known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } if source.kind() == io::ErrorKind::NotFound => write!(
                f,
                "{}: config file not found; create it (see sshield.toml(5)), or name another: \
                 config=PATH on the pam_sshield line, --config PATH for the sshield command",
                path.display()
            ),
            Self::Io { path, source } => write!(f, "cannot read {}: {}", path.display(), describe_io(source)),
            Self::Writable { path, mode } => write!(
                f,
                "{}: mode {mode:04o} lets others change the policy; run: chmod go-w {}",
                path.display(),
                path.display()
            ),
            Self::Owner { path, owner } => write!(
                f,
                "{}: owned by uid {owner}; the config must belong to root (or to you, for a test config); run: chown root {}",
                path.display(),
                path.display()
            ),
            Self::NotRootOnly { path, culprit, owner, mode } => write!(
                f,
                "{}: {} is owned by uid {owner} with mode {mode:04o}; `sshield login` runs as the \
                 user logging in, so it reads its config only from a regular file that root owns \
                 and alone can change, in directories only root can change; run: chown root: {} \
                 && chmod go-w {}, or move the config to /etc/sshield",
                path.display(),
                culprit.display(),
                culprit.display(),
                culprit.display()
            ),
            Self::Invalid { path, line: Some(line), message } => {
                write!(f, "{}:{line}: {}", path.display(), message.trim_end())
            }
            Self::Invalid { path, line: None, message } => {
                write!(f, "{}: {}", path.display(), message.trim_end())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_relative_store() {
        let c = Config::parse("", Path::new("/etc/sshield/sshield.toml")).unwrap();
        assert_eq!(c.store, PathBuf::from(DEFAULT_STORE_PATH));
        assert_eq!(c.policy.window, 1);
        let c = Config::parse("store = \"users\"\n", Path::new("/tmp/t/s.toml")).unwrap();
        assert_eq!(c.store, PathBuf::from("/tmp/t/users"));
    }

    #[test]
    fn typo_is_an_error_with_a_line() {
        let e = Config::parse(
            "store = \"/x\"\n[policy]\nwindw = 3\n",
            Path::new("/c.toml"),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("/c.toml:3: unknown field `windw`"),
            "{text}"
        );
        let e = Config::parse("[policy]\nwindow = 50\n", Path::new("/c.toml")).unwrap_err();
        assert!(e.to_string().starts_with("/c.toml:2:"), "{e}");
    }

    #[test]
    fn rate_limit_keys_of_older_configs_still_load_and_new_ones_are_checked() {
        let old = "[rate_limit]\nenabled = true\nmax_failures = 5\nsource_max_failures = 20\n\
                   within = \"15m\"\nlockout = \"15m\"\ndelay = \"1s\"\n";
        let c = Config::parse(old, Path::new("/c.toml")).unwrap();
        assert_eq!(c.rate_limit.max_failures_per_day, 20);
        assert_eq!(c.rate_limit.familiar_sources, 8);
        assert_eq!(c.rate_limit.ipv6_prefix, 64);
        let new =
            "[rate_limit]\nmax_failures_per_day = 0\nfamiliar_sources = 3\nipv6_prefix = 56\n";
        let c = Config::parse(new, Path::new("/c.toml")).unwrap();
        assert_eq!(
            (
                c.rate_limit.max_failures_per_day,
                c.rate_limit.familiar_sources,
                c.rate_limit.ipv6_prefix
            ),
            (0, 3, 56)
        );
        for (text, line) in [
            ("[rate_limit]\nipv6_prefix = 0\n", 2),
            ("[rate_limit]\n\nipv6_prefix = 129\n", 3),
            ("[rate_limit]\nfamiliar_sources = 1000\n", 2),
        ] {
            let e = Config::parse(text, Path::new("/c.toml")).unwrap_err();
            assert!(
                e.to_string()
                    .starts_with(&format!("/c.toml:{line}: rate_limit.")),
                "{e}"
            );
        }
    }

    #[test]
    fn the_server_section_is_checked_with_its_line() {
        let good = "[server]\nurls = [\"http://127.0.0.1:8080\", \"https://b.example\"]\n\
                    host = \"web1\"\nkey_file = \"host.key\"\n\
                    pinned_cert = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\n";
        let c = Config::parse(good, Path::new("/etc/s/s.toml")).unwrap();
        let server = c.server.expect("a server");
        assert_eq!(server.key_file, PathBuf::from("/etc/s/host.key"));
        assert_eq!(server.urls.len(), 2);
        assert_eq!(server.timeout, crate::fleet::DEFAULT_TIMEOUT);
        assert_eq!(server.trust, Trust::Pinned([0; 32]));
        assert!(Config::parse("", Path::new("/c.toml"))
            .unwrap()
            .server
            .is_none());
        for (text, says) in [
            ("[server]\nhost = \"a\"\nkey_file = \"k\"\nurls = [\"http://10.1.1.1\"]\n", "/c.toml:4: server.urls: \"http://10.1.1.1\": plain http"),
            ("[server]\nurls = [\"https://a.example\"]\nhost = \"a\"\nkey_file = \"k\"\n", "/c.toml:2: server: an https:// URL needs pinned_cert"),
            ("[server]\nurls = []\nhost = \"a\"\nkey_file = \"k\"\n", "/c.toml:2: server.urls is empty"),
            ("[server]\nurls = [\"http://[::1]:1\"]\nhost = \"a b\"\nkey_file = \"k\"\n", "/c.toml:3: server.host"),
            ("[server]\nurls = [\"http://[::1]:1\"]\nhost = \"a\"\nkey_file = \"k\"\ntimeout = \"0s\"\n", "/c.toml:5: server.timeout"),
            ("[server]\nurls = [\"https://x\"]\nhost = \"a\"\nkey_file = \"k\"\npinned_cert = \"sha1:00\"\n", "/c.toml:5: server.pinned_cert"),
            ("[server]\nurls = [\"https://x\"]\nhost = \"a\"\n", "/c.toml:1: missing field `key_file`"),
        ] {
            let e = Config::parse(text, Path::new("/c.toml")).unwrap_err().to_string();
            assert!(e.starts_with(says), "{e}");
        }
    }
}
