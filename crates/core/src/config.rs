//! The one config file every front end reads: `/etc/sshield/sshield.toml` by default.
//!
//! The file holds policy, never secrets, so it may be world-readable; it must not be writable
//! by anyone but its owner, since whoever writes it decides who needs a second factor.
//! Unknown keys are errors (a typo like `windw = 3` must not be silently ignored), reported
//! with the file and line.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::store::{describe_io, line_of, RecordStore};

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
    /// Login policy.
    pub policy: Policy,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: PathBuf::from(DEFAULT_STORE_PATH),
            issuer: None,
            policy: Policy::default(),
        }
    }
}

/// How codes are checked.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// TOTP steps accepted either side of the current one (1 = ±30 s for 30 s tokens).
    pub window: u64,
    /// HOTP counters accepted beyond the next expected one (the token was pressed unused).
    pub hotp_lookahead: u64,
    /// The most clock drift, in steps, sshield will learn and follow for one token.
    pub max_drift: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            window: 1,
            hotp_lookahead: 10,
            max_drift: 20,
        }
    }
}

impl Config {
    /// Reads and checks the config at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let meta = fs::metadata(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
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
        let text = fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            line: e.span().map(|s| line_of(text, s.start)),
            message: e.message().to_owned(),
        })?;
        if config.store.is_relative() {
            // Relative to the config file, so a test dir or a demo can be self-contained.
            let base = path.parent().unwrap_or(Path::new("/"));
            config.store = base.join(&config.store);
        }
        if config.policy.window > 10 {
            return Err(ConfigError::Invalid {
                path: path.to_owned(),
                line: line_of_setting(text, "window"),
                message: format!(
                    "policy.window = {} accepts codes up to {} steps away; use 0 to 10 (1 is usual)",
                    config.policy.window, config.policy.window
                ),
            });
        }
        Ok(config)
    }

    /// The record store this config names.
    pub fn record_store(&self) -> RecordStore {
        RecordStore::new(&self.store)
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
                "{}: config file not found; create it (see sshield.toml(5)) or pass --config PATH",
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
}
