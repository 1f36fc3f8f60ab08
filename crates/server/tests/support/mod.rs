//! What the server's tests share: a throwaway PostgreSQL cluster (one per test binary, one
//! database per test), and a running `sshield-server` process with a small HTTP client.
#![allow(
    dead_code,
    reason = "each test binary uses its own part of this module"
)]

pub mod host;
pub mod pg;
pub mod push_service;
pub mod server;
pub mod tls;
