//! The wire between a host and the fleet server, written once for both ends.
//!
//! - [`signed`]: the signed host request: the canonical message, the header names, the nonce
//!   shape, the timestamp rule. The host signs with [`signed::sign`], the server checks with
//!   [`signed::Signed`].
//! - [`api`]: the JSON bodies of `POST /v1/join` and `POST /v1/verify`.
//! - [`offline`]: offline material, reports of offline uses and `failmode` decisions, and a
//!   host's audit.
//!
//! The crate has no I/O, no clock and no HTTP stack of its own, so the `sshield` binary (and
//! with it the login helper's start-up) pulls in no async runtime for it.
#![forbid(unsafe_code)]

pub mod api;
pub mod offline;
pub mod signed;
