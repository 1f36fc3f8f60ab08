//! The heart of sshield, shared by every front end (PAM module, `sshield` CLI, daemon, server).
//!
//! - [`config`]: the one TOML file every front end reads; [`fleet`]: its `[server]` section.
//! - [`record`]: what is stored per user: authenticators, backup codes, and login state kept
//!   apart from provisioning.
//! - [`store`]: one file per user, locked and atomically replaced, with ownership checks; the
//!   login state updated in place beside it (`login_state`).
//! - [`Login`]: one login conversation, without I/O: [`Engine::begin`], then
//!   [`Login::start`] and [`Login::next`] give the [`Step`]s every front end follows
//!   (docs/architecture.md). Who is logging in is one [`Caller`].
//! - [`policy`]: who must pass a second factor ([`Engine::requirement`]).
//! - [`engine`]: whether a code is good, under the user's lock ([`Engine::decide`] for tools
//!   and tests that check one code; [`check_record`] on a record held in memory).
//! - [`ratelimit`]: failure counting and lockout.
//! - [`remote`]: the fleet server, asked about users with no local record.
//! - [`relay`]: the PAM module's way to it, through the local daemon.
//! - [`push`]: push approval on a fleet host (who is pushed to; what the phone's answer means).
//! - [`log`]: the one stable log line per decision, its severity, and the [`log::LogSink`]
//!   through which a login's lines leave.
//! - [`passed`]: which login last passed a user's second factor (for `setup --confirm`).
//! - [`provision`]: enrolling, confirming, disabling and removing users.
//! - [`export`]: the document `sshield export` writes for a fleet server to import.
//! - [`import`]: reading pam_oath's usersfile and `~/.google_authenticator` files.
//! - [`user_file`]: reading a file from a place another user controls, safely.
//!
//! Nothing here knows about PAM, terminals or HTTP; the time is always passed in.
#![forbid(unsafe_code)]

pub mod accounts;
mod address;
pub mod backup;
mod caller;
pub mod config;
mod de;
pub mod engine;
pub mod export;
pub mod first_factor;
pub mod fleet;
pub mod import;
pub mod log;
mod login;
mod login_state;
pub mod passed;
pub mod policy;
pub mod provision;
pub mod push;
pub mod ratelimit;
pub mod record;
pub mod relay;
pub mod remote;
mod shape;
pub mod store;
mod time;
pub mod user_file;
mod username;

pub use accounts::Account;
pub use caller::Caller;
pub use config::{Config, ConfigError};
pub use engine::{
    check_record, check_record_trailing, Attempt, Decision, DenyReason, Engine, Method, Outcome,
    Response,
};
pub use first_factor::FirstFactor;
pub use login::{Allowed, Ask, Denied, Entry, Login, Pushed, Step};
pub use policy::{Exemption, Policy, Requirement};
pub use record::{Authenticator, TokenKind, UserRecord, UserState};
pub use remote::{Remote, RemoteAnswer};
pub use store::{RecordStore, StoreError};
pub use time::UnixTime;
pub use username::{UserName, UserNameError};
