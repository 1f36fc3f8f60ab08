//! Builds `libpam_sshield.so` for the tests.
//!
//! cargo builds a package's library for its integration tests only when they can link to it,
//! which a cdylib cannot; so the tests run `cargo build -p sshield-pam` themselves, once per
//! test binary, into the same target dir and profile as the tests (cargo has released its
//! build lock by the time tests run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The freshly built module.
pub(crate) fn module_so() -> &'static Path {
    static MODULE: OnceLock<PathBuf> = OnceLock::new();
    MODULE.get_or_init(build)
}

fn build() -> PathBuf {
    // The test runs as <target dir>/<profile dir>/deps/<test>-<hash>.
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test binary lives in <target>/<profile>/deps");
    let target_dir = profile_dir.parent().expect("a target dir");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "-p",
            "sshield-pam",
            "--lib",
            "--profile",
            profile,
        ])
        .arg("--target-dir")
        .arg(target_dir)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo build");
    assert!(status.success(), "cargo build -p sshield-pam failed");
    let module = profile_dir.join("libpam_sshield.so");
    assert!(module.is_file(), "{} was not built", module.display());
    module
}
