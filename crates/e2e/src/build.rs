//! The artefacts under test, `libpam_sshield.so` and `sshield`, built for the caller.
//!
//! cargo builds neither a cdylib nor another package's binary for this crate's tests or
//! examples, so they are built here, once per process, into the target dir and profile the
//! caller was built for (cargo has released its build lock by the time tests run).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The built module and CLI.
#[derive(Debug)]
pub struct Artefacts {
    /// `target/<profile>/libpam_sshield.so`.
    pub module: PathBuf,
    /// `target/<profile>/sshield`.
    pub cli: PathBuf,
}

/// Builds both once per process and returns their paths.
pub fn artefacts() -> &'static Artefacts {
    static BUILT: OnceLock<Artefacts> = OnceLock::new();
    BUILT.get_or_init(build)
}

/// The caller's target dir, profile dir and cargo profile name. Tests run as
/// `<target>/<profile>/deps/<name>-<hash>`, examples as `<target>/<profile>/examples/<name>`.
fn caller_profile() -> (PathBuf, PathBuf, String) {
    let exe = std::env::current_exe().expect("the running binary's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the binary lives in <target>/<profile>/<deps|examples>");
    let target_dir = profile_dir.parent().expect("a target dir");
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    (
        target_dir.to_owned(),
        profile_dir.to_owned(),
        profile.to_owned(),
    )
}

/// Why `scripts/build-deb` cannot run here, if cargo-deb is missing.
pub fn cargo_deb_missing() -> Option<String> {
    let deb = Command::new(env!("CARGO"))
        .args(["deb", "--version"])
        .output();
    (!deb.is_ok_and(|o| o.status.success()))
        .then(|| "cargo-deb is missing; run scripts/install-test-deps".to_string())
}

/// Runs `scripts/build-deb` for the caller's target dir and profile (`dev` under `cargo
/// test`, reusing what the other tests built) with the .deb written to `out`; returns the
/// .deb's path (the script's last line).
pub fn build_deb(out: &Path) -> PathBuf {
    let (target_dir, _, profile) = caller_profile();
    let run = Command::new(crate::workspace_root().join("scripts/build-deb"))
        .args(["--profile", &profile])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--output")
        .arg(out)
        .env("CARGO", env!("CARGO"))
        .output()
        .expect("run scripts/build-deb");
    let show = || {
        format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            run.status,
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&run.stderr)
        )
    };
    assert!(run.status.success(), "scripts/build-deb: {}", show());
    let stdout = String::from_utf8_lossy(&run.stdout);
    let deb = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        deb.is_file() && deb.starts_with(out),
        "scripts/build-deb's last line is not the .deb it wrote: {}",
        show()
    );
    deb
}

/// Builds `sshield-server` once per process (for fleet tests) and returns its path.
pub fn server_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let (target_dir, profile_dir, profile) = caller_profile();
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "sshield-server", "--bins"])
            .args(["--profile", &profile])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(crate::workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p sshield-server failed");
        let built = profile_dir.join("sshield-server");
        assert!(built.is_file(), "{} was not built", built.display());
        built
    })
}

fn build() -> Artefacts {
    let (target_dir, profile_dir, profile) = caller_profile();
    let profile = profile.as_str();
    // Two builds, each exactly as others run it (crates/pam/tests/harness/build.rs builds the
    // module alone): one build of both would unify their dependencies' features differently
    // and relink the module every time the two kinds of tests alternate.
    for (package, target) in [("sshield-pam", "--lib"), ("sshield", "--bins")] {
        let status = Command::new(env!("CARGO"))
            .args([
                "build",
                "--quiet",
                "-p",
                package,
                target,
                "--profile",
                profile,
            ])
            .arg("--target-dir")
            .arg(&target_dir)
            .current_dir(crate::workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build -p {package} {target} failed");
    }
    let built = Artefacts {
        module: profile_dir.join("libpam_sshield.so"),
        cli: profile_dir.join("sshield"),
    };
    for path in [&built.module, &built.cli] {
        assert!(path.is_file(), "{} was not built", path.display());
    }
    built
}
