//! The harness for module-level tests: build `pam_sshield.so`, give each test a private
//! config, store and PAM config directory, and log in through real libpam in a child process.
//!
//! Nothing outside the test's temp dir is touched: libpam reads the test's PAM service from
//! that dir (`pam_start_confdir`, Linux-PAM 1.4+), not from `/etc/pam.d`. Only the pamtester
//! smoke test (`tests/pamtester.rs`) needs a file under `/etc/pam.d`, removed when it ends.
#![allow(
    dead_code,
    unused_imports,
    reason = "each test file uses a different part"
)]

pub(crate) mod build;
pub(crate) mod driver;
pub(crate) mod fixture;

pub(crate) use build::module_so;
pub(crate) use driver::ffi as pam;
pub(crate) use driver::{Login, Outcome};
pub(crate) use fixture::Fixture;
