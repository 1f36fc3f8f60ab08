//! The heart of sshield, shared by every front end (PAM module, `sshield` CLI, daemon, server).
//!
//! - [`config`]: the one TOML file every front end reads.
//! - [`record`]: what is stored per user: authenticators, backup codes, and login state kept
//!   apart from provisioning.
//! - [`store`]: one file per user, locked and atomically replaced, with ownership checks; the
//!   login state updated in place beside it (`login_state`).
//! - [`policy`]: who must pass a second factor ([`Engine::requirement`]).
//! - [`engine`]: the one place that decides a login; front ends only carry its questions and
//!   answers.
//! - [`ratelimit`]: failure counting and lockout.
//! - [`log`]: the one stable log line per decision.
//! - [`passed`]: which login last passed a user's second factor (for `setup --confirm`).
//! - [`provision`]: enrolling, confirming, disabling and removing users.
//! - [`import`]: reading pam_oath's usersfile and `~/.google_authenticator` files.
//! - [`user_file`]: reading a file from a place another user controls, safely.
//!
//! Nothing here knows about PAM, terminals or HTTP; the time is always passed in.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod backup;
pub mod config;
pub mod engine;
pub mod first_factor;
pub mod import;
pub mod log;
mod login_state;
pub mod passed;
pub mod policy;
pub mod provision;
pub mod ratelimit;
pub mod record;
pub mod store;
mod time;
pub mod user_file;
mod username;

pub use accounts::Account;
pub use config::{Config, ConfigError};
pub use engine::{Attempt, Decision, DenyReason, Engine, Method, Outcome, Response};
pub use first_factor::FirstFactor;
pub use log::Subject;
pub use policy::{Exemption, Requirement};
pub use record::{Authenticator, TokenKind, UserRecord, UserState};
pub use store::{RecordStore, StoreError};
pub use time::UnixTime;
pub use username::{UserName, UserNameError};
