//! A smoke test through `pamtester`, an application we did not write. pamtester reads its
//! service from `/etc/pam.d` only, so this test adds a file there under a unique name and
//! removes it when it ends, also when it fails. Needs root (CI runs as root); elsewhere it is
//! skipped with a message.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod harness;

use std::fs;
use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use harness::Fixture;

/// The child-process side of the driver, which this file does not use but the harness names.
#[test]
fn pam_driver_process() {
    harness::driver::main_if_requested();
}

/// `/etc/pam.d/<name>`, removed on drop.
struct ServiceFile(PathBuf);

impl ServiceFile {
    /// Creates it; `None` if this user may not write `/etc/pam.d`.
    fn create(name: &str, text: &str) -> Option<Self> {
        let path = PathBuf::from("/etc/pam.d").join(name);
        let mut file = match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::PermissionDenied => return None,
            Err(e) => panic!("{}: {e}", path.display()),
        };
        let guard = Self(path);
        file.write_all(text.as_bytes()).unwrap();
        Some(guard)
    }
}

impl Drop for ServiceFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

/// Runs `pamtester SERVICE USER authenticate` from `rhost`, typing `answer`.
fn pamtester(service: &str, user: &str, rhost: &str, answer: &str) -> (bool, String) {
    let mut child = Command::new("pamtester")
        .args([
            "-I",
            &format!("rhost={rhost}"),
            service,
            user,
            "authenticate",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pamtester");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn pamtester_logs_in_with_a_code_and_is_refused_a_wrong_one() {
    if Command::new("pamtester").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "pamtester is missing (scripts/install-test-deps installs it)"
        );
        eprintln!("skipped: pamtester is not installed");
        return;
    }
    let f = Fixture::new("");
    let token = f.enroll("alice");
    // libpam lowercases service names before it looks for the file.
    let suffix = f
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    let service = format!("sshield-test-{}-{suffix}", std::process::id());
    let text = format!(
        "# Added by sshield's tests (crates/pam/tests/pamtester.rs); removed when they end.\n\
         auth required {} config={}\naccount required pam_permit.so\n",
        f.module.display(),
        f.config.display()
    );
    let Some(_file) = ServiceFile::create(&service, &text) else {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: cannot write /etc/pam.d (not root)");
        return;
    };

    let (ok, output) = pamtester(&service, "alice", "203.0.113.9", &token.code());
    assert!(ok, "{output}");
    assert!(output.contains("Verification code: "), "{output}");
    assert!(output.contains("successfully authenticated"), "{output}");

    let (ok, output) = pamtester(&service, "alice", "203.0.113.9", &token.wrong_code());
    assert!(!ok, "{output}");

    let lines = f.log_lines();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let expected = format!("user=alice rhost=203.0.113.9 service={service} method=");
    assert!(
        lines[0].contains(&format!("allow {expected}totp reason=ok")),
        "{lines:?}"
    );
    assert!(
        lines[1].contains(&format!("deny {expected}code reason=wrong-code")),
        "{lines:?}"
    );
}
