//! The server's settings: the TOML file (default /etc/sshield/server.toml), then command-line
//! flags over it. Every key is documented in docs/server.md.

use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sshield_core::config::RateLimit;
use sshield_core::Policy;

use crate::storage::DatabaseTarget;

/// The config file read when no --config is given (and it exists).
pub const DEFAULT_CONFIG: &str = "/etc/sshield/server.toml";
/// Where the SQLite file and the record key live by default.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/sshield-server";
/// The port when none is configured: unassigned by IANA, and not sshield's daemon socket.
pub const DEFAULT_PORT: u16 = 8740;
/// The SQLite file's name in the state dir.
pub const SQLITE_FILE: &str = "sshield-server.db";
/// The largest request body accepted: a verification is well under 1 KiB.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024;
/// How long audit entries are kept by default: 90 days.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 24 * 60 * 60);

/// The config file as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Address and port to serve on.
    pub listen: Option<SocketAddr>,
    /// Directory for the SQLite file and the record key.
    pub state_dir: Option<PathBuf>,
    /// `sqlite` (the file in the state dir), `sqlite:///path/file.db`, or `postgres://...`.
    pub database: Option<String>,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// Largest request body, in bytes.
    pub max_body_bytes: Option<usize>,
    /// How long a join token from `host add` stays valid (`15m`).
    #[serde(default, with = "humantime_serde_opt")]
    pub join_token_ttl: Option<Duration>,
    /// How far a signed host request's timestamp may be from the server's clock (`60s`).
    #[serde(default, with = "humantime_serde_opt")]
    pub signature_skew: Option<Duration>,
    /// How long audit entries are kept (`90d`), or `forever`.
    #[serde(default, with = "retention")]
    pub audit_retention: Option<Retention>,
    /// How codes are checked: the `[policy]` keys of sshield.toml that apply to a code
    /// (`window`, `hotp_lookahead`, `max_drift`); the others are a host's.
    #[serde(default)]
    pub policy: Option<Policy>,
    /// Failure counting, lockout and delays, per (user, source) and per source over all
    /// users: the `[rate_limit]` keys of sshield.toml (docs/ratelimit.md).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Push approval: the `[push]` table (docs/push.md).
    #[serde(default)]
    pub push: Option<PushConfig>,
    /// The longest window of coming codes a host gets for offline logins (`12h`), or `off`.
    #[serde(default, with = "offline_window")]
    pub offline_max_window: Option<Duration>,
    /// Threads serving requests ([`default_workers`]).
    pub workers: Option<NonZeroUsize>,
}

/// How far ahead a host may hold a user's coming codes unless `offline_max_window` says
/// otherwise: half a day, so a server down overnight does not stop the fleet.
pub const DEFAULT_OFFLINE_MAX_WINDOW: Duration = Duration::from_secs(12 * 60 * 60);

/// `offline_max_window`: a duration of at most a week, or `"off"` (as `0`).
mod offline_window {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        if text == "off" {
            return Ok(Some(Duration::ZERO));
        }
        let bad = |why: String| {
            serde::de::Error::custom(format!(
                "offline_max_window = {text:?} {why}; write e.g. \"12h\" (at most \"7d\"), or \
                 \"off\" to give hosts no offline material"
            ))
        };
        let span = humantime::parse_duration(&text)
            .map_err(|e| bad(format!("is not a duration ({e})")))?;
        if span > sshield_core::fleet::MAX_OFFLINE_WINDOW {
            return Err(bad("is more than a week".to_owned()));
        }
        Ok(Some(span))
    }
}

/// The `[push]` table as written; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// The URL users' phones reach this server at; notifications link to its approval page.
    pub public_url: Option<String>,
    /// The operator's contact in VAPID JWTs (`mailto:` or `https:`).
    pub subject: Option<String>,
    /// How long one Web Push or webhook call may take (`10s`).
    #[serde(default, with = "humantime_serde_opt")]
    pub send_timeout: Option<Duration>,
    /// How long a request stays approvable (`60s`).
    #[serde(default, with = "humantime_serde_opt")]
    pub approval_ttl: Option<Duration>,
    /// Most push requests per user per hour.
    pub per_hour: Option<u32>,
    /// Longest a host's wait call is held open (`25s`).
    #[serde(default, with = "humantime_serde_opt")]
    pub max_wait: Option<Duration>,
    /// How long an enrollment link from `push enroll-link` stays valid (`15m`), and how long
    /// after enrolling by link a phone may add an authenticator app.
    #[serde(default, with = "humantime_serde_opt")]
    pub enroll_link_ttl: Option<Duration>,
    /// Take `http://` push endpoints (a test push service); off: browsers' are all https.
    pub allow_http_endpoints: Option<bool>,
    /// Where the admins hear of "This wasn't me": a webhook URL, signed like users' webhooks
    /// with the key in `admin-webhook.key` in the state dir.
    pub admin_webhook: Option<String>,
}

/// Push approval's settings in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushSettings {
    /// The server's public URL, without a trailing slash.
    pub public_url: String,
    /// The VAPID `sub` claim.
    pub subject: String,
    /// Timeout of one push or webhook call.
    pub send_timeout: Duration,
    /// How long a request stays approvable.
    pub approval_ttl: Duration,
    /// Most requests per user per hour.
    pub per_hour: u32,
    /// Longest wait call.
    pub max_wait: Duration,
    /// Enrollment link lifetime; also the authenticator app step's window after enrolling.
    pub enroll_link_ttl: Duration,
    /// Whether `http://` push endpoints are taken.
    pub allow_http_endpoints: bool,
    /// The admins' webhook, told of every "This wasn't me".
    pub admin_webhook: Option<String>,
}

/// Durations written as `15m`, `60s`, like sshield.toml's.
mod humantime_serde_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map(Some).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"15m\" or \"60s\""
            ))
        })
    }
}

/// How long the audit log keeps an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// Entries older than this are deleted.
    For(Duration),
    /// Nothing is deleted.
    Forever,
}

/// `audit_retention`: a duration (more than zero), or `"forever"`.
mod retention {
    use serde::{Deserialize, Deserializer};

    use super::Retention;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Retention>, D::Error> {
        let text = String::deserialize(d)?;
        if text == "forever" {
            return Ok(Some(Retention::Forever));
        }
        let bad = |why: String| {
            serde::de::Error::custom(format!(
                "audit_retention = {text:?} {why}; write a duration, \
                 e.g. \"90d\" or \"1y\", or \"forever\" to keep every entry"
            ))
        };
        let span = humantime::parse_duration(&text)
            .map_err(|e| bad(format!("is not a duration ({e})")))?;
        if span.is_zero() {
            return Err(bad("would delete every entry at once".to_owned()));
        }
        Ok(Some(Retention::For(span)))
    }
}

/// What the command line says, over the file.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// --config.
    pub config: Option<PathBuf>,
    /// --state-dir.
    pub state_dir: Option<PathBuf>,
    /// --database.
    pub database: Option<String>,
    /// --listen.
    pub listen: Option<SocketAddr>,
    /// --tls-cert.
    pub tls_cert: Option<PathBuf>,
    /// --tls-key.
    pub tls_key: Option<PathBuf>,
}

/// The settings in force.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to serve on.
    pub listen: SocketAddr,
    /// State directory.
    pub state_dir: PathBuf,
    /// The database.
    pub database: DatabaseTarget,
    /// Certificate and key, if TLS is on.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Join token lifetime.
    pub join_token_ttl: Duration,
    /// Accepted clock skew of signed requests.
    pub signature_skew: Duration,
    /// How long audit entries are kept.
    pub audit_retention: Retention,
    /// Code-checking rules.
    pub policy: Policy,
    /// Failure counting and lockout.
    pub rate_limit: RateLimit,
    /// Push approval.
    pub push: PushSettings,
    /// The longest offline window a host is given (zero: none).
    pub offline_max_window: Duration,
    /// Threads serving requests.
    pub workers: NonZeroUsize,
}

/// A config that cannot be used.
#[derive(Debug)]
pub enum ConfigError {
    /// The file could not be read.
    Read {
        /// Its path.
        path: PathBuf,
        /// Why.
        error: std::io::Error,
    },
    /// The file is not valid TOML for these keys.
    Parse {
        /// Its path.
        path: PathBuf,
        /// The parser's message, with line and column.
        error: String,
    },
    /// `database` is neither `sqlite`, `sqlite://PATH` nor a PostgreSQL URL.
    Database {
        /// What was given.
        given: String,
    },
    /// Only one of tls_cert and tls_key was given.
    HalfTls,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Read { path, error } => {
                write!(f, "cannot read the config file {}: {error}", path.display())
            }
            Self::Parse { path, error } => write!(
                f,
                "{}: {error}(every key is described in docs/server.md)",
                path.display()
            ),
            Self::Database { given } => write!(
                f,
                "database = {given:?} is not a database this server knows: write \"sqlite\" \
                 (the file in the state dir), \"sqlite:///path/to/file.db\", or \
                 \"postgres://user@host:5432/dbname\""
            ),
            Self::HalfTls => f.write_str(
                "TLS needs both a certificate and its key: give --tls-cert and --tls-key \
                 (tls_cert and tls_key in the config), or neither",
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Settings {
    /// Reads the config file (the given one, or the default one if it exists) and applies
    /// the command line over it.
    pub fn load(over: &Overrides) -> Result<Self, ConfigError> {
        let file = match &over.config {
            Some(path) => read_file(path)?,
            None if Path::new(DEFAULT_CONFIG).exists() => read_file(Path::new(DEFAULT_CONFIG))?,
            None => ConfigFile::default(),
        };
        Self::resolve(file, over)
    }

    /// The settings from a parsed file and the command line.
    pub fn resolve(file: ConfigFile, over: &Overrides) -> Result<Self, ConfigError> {
        let state_dir = over
            .state_dir
            .clone()
            .or(file.state_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_DIR));
        let database = over
            .database
            .clone()
            .or(file.database)
            .unwrap_or_else(|| "sqlite".to_owned());
        let database = parse_database(&database, &state_dir)?;
        let tls = match (
            over.tls_cert.clone().or(file.tls_cert),
            over.tls_key.clone().or(file.tls_key),
        ) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            _ => return Err(ConfigError::HalfTls),
        };
        let listen = over
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
        let tls_on = tls.is_some();
        Ok(Self {
            listen,
            state_dir,
            database,
            tls,
            max_body_bytes: file.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
            join_token_ttl: file.join_token_ttl.unwrap_or(Duration::from_secs(15 * 60)),
            signature_skew: file.signature_skew.unwrap_or(Duration::from_secs(60)),
            audit_retention: file
                .audit_retention
                .unwrap_or(Retention::For(DEFAULT_AUDIT_RETENTION)),
            policy: file.policy.unwrap_or_default(),
            rate_limit: file.rate_limit.unwrap_or_default(),
            push: push_settings(file.push.unwrap_or_default(), listen, tls_on),
            offline_max_window: file
                .offline_max_window
                .unwrap_or(DEFAULT_OFFLINE_MAX_WINDOW),
            workers: file.workers.unwrap_or_else(default_workers),
        })
    }
}

/// One thread fewer than the machine's cores, and at least one: the core left over is for
/// SQLite's writer thread, or the database on the same machine, and the kernel's network
/// work. On two cores, one thread served more verifications at every concurrency measured
/// on SQLite, and at 1 and 8 on PostgreSQL, than two did (docs/benchmarks.md): a second
/// thread mostly woke to find nothing to do.
pub fn default_workers() -> NonZeroUsize {
    std::thread::available_parallelism()
        .ok()
        .and_then(|cores| NonZeroUsize::new(cores.get() - 1))
        .unwrap_or(NonZeroUsize::MIN)
}

/// The `[push]` table's defaults: the public URL is the listening address (right for a test
/// or a server behind no proxy; a fleet sets its own name), 60 s to approve (Duo's), 10 pushes
/// an hour, waits of 25 s (under common proxies' 30 s idle timeouts), enrollment links valid
/// for 15 minutes (as join tokens).
fn push_settings(file: PushConfig, listen: SocketAddr, tls: bool) -> PushSettings {
    let scheme = if tls { "https" } else { "http" };
    PushSettings {
        public_url: file
            .public_url
            .map(|u| u.trim_end_matches('/').to_owned())
            .unwrap_or_else(|| format!("{scheme}://{listen}")),
        subject: file
            .subject
            .unwrap_or_else(|| "mailto:root@localhost".to_owned()),
        send_timeout: file.send_timeout.unwrap_or(Duration::from_secs(10)),
        approval_ttl: file.approval_ttl.unwrap_or(Duration::from_secs(60)),
        per_hour: file.per_hour.unwrap_or(10),
        max_wait: file.max_wait.unwrap_or(Duration::from_secs(25)),
        enroll_link_ttl: file.enroll_link_ttl.unwrap_or(Duration::from_secs(15 * 60)),
        allow_http_endpoints: file.allow_http_endpoints.unwrap_or(false),
        admin_webhook: file.admin_webhook,
    }
}

fn read_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_owned(),
        error,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_owned(),
        error: e.to_string(),
    })
}

fn parse_database(given: &str, state_dir: &Path) -> Result<DatabaseTarget, ConfigError> {
    if given == "sqlite" {
        return Ok(DatabaseTarget::Sqlite(state_dir.join(SQLITE_FILE)));
    }
    if let Some(path) = given.strip_prefix("sqlite://") {
        if !path.is_empty() {
            return Ok(DatabaseTarget::Sqlite(PathBuf::from(path)));
        }
    }
    if given.starts_with("postgres://") || given.starts_with("postgresql://") {
        return Ok(DatabaseTarget::Postgres(given.to_owned()));
    }
    Err(ConfigError::Database {
        given: given.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_config_means_loopback_and_sqlite_in_the_state_dir() {
        let s = Settings::resolve(ConfigFile::default(), &Overrides::default()).expect("ok");
        assert_eq!(s.listen.to_string(), "127.0.0.1:8740");
        assert_eq!(
            s.database,
            DatabaseTarget::Sqlite(PathBuf::from("/var/lib/sshield-server/sshield-server.db"))
        );
        assert!(s.tls.is_none());
    }

    #[test]
    fn workers_are_a_count_of_at_least_one_and_leave_a_core() {
        let read = |text: &str| toml::from_str::<ConfigFile>(text).map(|f| f.workers);
        assert_eq!(read("workers = 3").expect("ok"), NonZeroUsize::new(3));
        for bad in ["0", "-1", "\"two\""] {
            let err = read(&format!("max_body_bytes = 1\nworkers = {bad}")).expect_err(bad);
            let text = err.to_string();
            assert!(
                text.contains("line 2") && text.contains("workers"),
                "{text}"
            );
        }
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        let s = Settings::resolve(ConfigFile::default(), &Overrides::default()).expect("ok");
        assert_eq!(s.workers.get(), cores.saturating_sub(1).max(1));
    }

    #[test]
    fn an_unknown_key_names_its_line() {
        let err = toml::from_str::<ConfigFile>("listen = \"127.0.0.1:1\"\nlisten_port = 3\n")
            .expect_err("refused");
        let text = err.to_string();
        assert!(
            text.contains("line 2") && text.contains("listen_port"),
            "{text}"
        );
    }

    #[test]
    fn audit_retention_is_a_duration_or_forever() {
        let read = |text: &str| toml::from_str::<ConfigFile>(text).map(|f| f.audit_retention);
        assert_eq!(
            read("audit_retention = \"30d\"").expect("ok"),
            Some(Retention::For(Duration::from_secs(30 * 86_400)))
        );
        assert_eq!(
            read("audit_retention = \"forever\"").expect("ok"),
            Some(Retention::Forever)
        );
        for bad in ["\"ninety days\"", "\"0s\"", "90"] {
            let err = read(&format!("audit_retention = {bad}")).expect_err(bad);
            let text = err.to_string();
            assert!(text.contains("line 1"), "{bad}: {text}");
        }
        let err = read("audit_retention = \"0s\"")
            .expect_err("zero")
            .to_string();
        assert!(
            err.contains("every entry") && err.contains("forever"),
            "{err}"
        );
        let s = Settings::resolve(ConfigFile::default(), &Overrides::default()).expect("ok");
        assert_eq!(s.audit_retention, Retention::For(DEFAULT_AUDIT_RETENTION));
    }

    #[test]
    fn a_mysql_url_is_refused_with_the_choices() {
        let over = Overrides {
            database: Some("mysql://x".to_owned()),
            ..Overrides::default()
        };
        let err = Settings::resolve(ConfigFile::default(), &over).expect_err("refused");
        assert!(err.to_string().contains("postgres://"), "{err}");
    }

    #[test]
    fn the_push_table_has_its_defaults_and_refuses_unknown_keys() {
        let s = Settings::resolve(ConfigFile::default(), &Overrides::default()).expect("ok");
        assert_eq!(s.push.public_url, "http://127.0.0.1:8740");
        assert_eq!(s.push.approval_ttl, Duration::from_secs(60));
        assert_eq!(s.push.per_hour, 10);
        assert!(!s.push.allow_http_endpoints);
        let file: ConfigFile = toml::from_str(
            "[push]\npublic_url = \"https://sshield.example/\"\nmax_wait = \"5s\"\n",
        )
        .expect("parses");
        let s = Settings::resolve(file, &Overrides::default()).expect("ok");
        assert_eq!(s.push.public_url, "https://sshield.example");
        assert_eq!(s.push.max_wait, Duration::from_secs(5));
        let err = toml::from_str::<ConfigFile>("[push]\nper_day = 3\n").expect_err("refused");
        assert!(err.to_string().contains("per_day"), "{err}");
        let err =
            toml::from_str::<ConfigFile>("[push]\napproval_ttl = \"soon\"\n").expect_err("refused");
        assert!(err.to_string().contains("is not a duration"), "{err}");
    }
}
