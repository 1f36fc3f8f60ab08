//! sshield's fleet server: hosts ask it whether a code is good, over versioned JSON.
//!
//! - [`cli`]: the command line; [`docs`]: its man pages.
//! - [`config`]: the TOML file and flags.
//! - [`serve`]: binding, TLS, the loopback rule, shutdown.
//! - [`api`]: the HTTP routes; [`verify`]: one verification through core's engine.
//! - [`offline`]: offline material for hosts, their reports of offline uses and `failmode`
//!   decisions, and a host's own audit.
//! - [`metrics`]: `/metrics` (OpenMetrics text) and the per-request log line.
//! - [`hosts`]: join tokens, joining, and the signatures on every other host request (their
//!   format is `sshield_wire::signed`, shared with the hosts that sign).
//! - [`storage`]: one trait, SQLite and PostgreSQL behind it.
//! - [`records`]: the one compare-and-swap path every change of a user takes.
//! - [`sources`]: failures per source over all users, in the database.
//! - [`users`]: enrolling, confirming, importing users; [`commands`]: the admin's CLI.
//! - [`seal`]: user records encrypted at rest with a key kept outside the database.
//! - [`push`]: Web Push and webhook notifications of a login waiting for approval, and the
//!   passkeys that approve it; [`web`]: the phone's web app.
#![forbid(unsafe_code)]

pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod docs;
pub mod hosts;
mod keyfile;
pub mod metrics;
pub mod offline;
pub mod push;
pub mod records;
pub mod seal;
pub mod serve;
pub mod sources;
pub mod storage;
pub mod users;
pub mod verify;
pub mod web;
