//! The `sshield-server` command line (clap), also the source of its man pages.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// sshield's fleet server: one place for a fleet's users, codes and audit log.
///
/// Hosts ask it over HTTPS whether a code is good; users are enrolled once, here. The data
/// lives in a SQLite file under the state dir (made on first start), or in PostgreSQL for
/// fleets with several replicas. See docs/server.md.
#[derive(Debug, Parser)]
#[command(name = "sshield-server", version, max_term_width = 100)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/sshield/server.toml if it exists.
    #[arg(
        long,
        global = true,
        env = "SSHIELD_SERVER_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,
    /// Directory for the SQLite file and the record key. Default: /var/lib/sshield-server.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// `sqlite` (the file in the state dir), `sqlite:///path/file.db`, or
    /// `postgres://user@host:5432/db` for fleets.
    #[arg(long, global = true, value_name = "URL")]
    pub database: Option<String>,
    /// Log lines on stderr as `text` for people or `json` (one object per line) for a log
    /// collector. The level comes from SSHIELD_SERVER_LOG (default `info`).
    #[arg(
        long,
        global = true,
        env = "SSHIELD_SERVER_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per event: `timestamp`, `level`, `target`, `fields`.
    Json,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API until SIGTERM or Ctrl-C.
    Serve(ServeArgs),
    /// Enroll, confirm and manage users (talks to the database directly, not over HTTP).
    #[command(subcommand)]
    User(UserCommand),
    /// Let hosts join, list and revoke them.
    #[command(subcommand)]
    Host(HostCommand),
    /// Push approval: users' devices and webhooks, and lifting a "This wasn't me" block.
    #[command(subcommand)]
    Push(PushCommand),
    /// Show recent decisions from the audit log, newest first.
    Audit(AuditArgs),
    /// Write the man pages into DIR.
    #[command(hide = true)]
    GenerateDocs {
        /// Where to write them.
        dir: PathBuf,
    },
}

/// `serve`'s options.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address and port. Default: 127.0.0.1:8740. Plain HTTP only on loopback addresses.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// `user`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Give NAME a new TOTP authenticator: prints the otpauth:// URI, a QR code for the app,
    /// and ten backup codes (shown once). It is pending until `user confirm`.
    Enroll {
        /// The login name.
        name: String,
        /// Print no QR code (only the URI).
        #[arg(long)]
        no_qr: bool,
    },
    /// Activate NAME's pending authenticator with the code its app shows now.
    Confirm {
        /// The login name.
        name: String,
        /// The code.
        code: String,
    },
    /// Issue NAME ten new backup codes (shown once), voiding the old ones.
    BackupCodes {
        /// The login name.
        name: String,
    },
    /// Switch NAME's second factor off; the record is kept (`user enable` switches it on).
    Disable {
        /// The login name.
        name: String,
    },
    /// Switch NAME's second factor back on.
    Enable {
        /// The login name.
        name: String,
    },
    /// Delete NAME and its authenticators (the audit log keeps their history).
    Remove {
        /// The login name.
        name: String,
    },
    /// List users and their state.
    List,
    /// Import users from a host's store, as `sshield export` wrote it: authenticators,
    /// backup codes and login state, so a code used on the host is refused here too.
    Import {
        /// The file `sshield export --output FILE` wrote; `-` reads it from standard input
        /// (`ssh root@web1 sshield export | sshield-server user import --from-sshield -`).
        #[arg(long, value_name = "FILE")]
        from_sshield: PathBuf,
    },
    /// Import users from pam_oath's usersfile (users.oath), with their replay state.
    ImportUsersOath {
        /// The file.
        file: PathBuf,
    },
    /// Import USER's ~/.google_authenticator, with its replay state and scratch codes.
    ImportGoogleAuthenticator {
        /// The login name.
        name: String,
        /// The file.
        file: PathBuf,
    },
}

/// `host`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum HostCommand {
    /// Print a one-time token with which host NAME joins (valid for `join_token_ttl`,
    /// default 15 minutes; only its hash is stored).
    Add {
        /// The host's name (letters, digits, '.', '-', '_').
        name: String,
    },
    /// List hosts: name, joined, revoked.
    List,
    /// Refuse every request of host NAME from now on.
    Revoke {
        /// The host's name.
        name: String,
    },
}

/// `push`'s subcommands.
#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Add a device for USER and print its token, once: the device's web app signs in with
    /// it to list USER's push requests, deny them and register its Web Push subscription. It
    /// has no passkey, so it cannot approve: phones enroll by link (`push enroll-link`).
    AddDevice {
        /// The user.
        user: String,
        /// A name for the device (`alice's phone`).
        name: String,
    },
    /// Print a one-time link (valid for `push.enroll_link_ttl`, default 15 minutes) that
    /// makes the phone it is opened on one of USER's devices: it registers the phone's passkey
    /// (needed to approve) and shows a new set of USER's backup codes once. Only its hash is
    /// stored.
    EnrollLink {
        /// The user.
        user: String,
    },
    /// List USER's devices: id, kind, name, whether its browser is subscribed to Web Push,
    /// added, revoked.
    Devices {
        /// The user.
        user: String,
    },
    /// Revoke one of USER's devices: it can no longer sign in, approve or be notified.
    RevokeDevice {
        /// The user.
        user: String,
        /// The device's id, from `push devices` (it may begin with `-`).
        #[arg(allow_hyphen_values = true)]
        id: String,
    },
    /// Send USER's notifications to a webhook too (JSON POST), and print the HMAC secret
    /// its receiver checks the `X-Sshield-Signature` header with, once.
    SetWebhook {
        /// The user.
        user: String,
        /// The receiver's URL (https://, or http:// for a receiver on this machine).
        url: String,
    },
    /// Stop sending USER's notifications to a webhook.
    RemoveWebhook {
        /// The user.
        user: String,
    },
    /// Send USER's devices and webhook a test notification now, and print what each
    /// push service or receiver answered.
    Test {
        /// The user.
        user: String,
    },
    /// Let pushes reach USER again after they answered "This wasn't me".
    Unblock {
        /// The user.
        user: String,
    },
}

/// `audit`'s filters.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this user's decisions.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only those asked by this host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only those in this past span (`90s`, `1h`, `2d`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Only denials.
    #[arg(long)]
    pub failed: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
}
