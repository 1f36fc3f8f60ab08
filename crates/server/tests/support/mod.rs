//! What the server's tests share: a throwaway PostgreSQL cluster (one per test binary, one
//! database per test), and a running `sshield-server` process with a small HTTP client.
#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

pub(crate) mod host;
pub(crate) mod passkey;
pub(crate) mod pg;
pub(crate) mod push_service;
pub(crate) mod server;
pub(crate) mod tls;
