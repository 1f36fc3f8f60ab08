//! `sshield generate-docs DIR`: man pages and shell completions, as a packager runs it.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::process::Command;

use common::Sandbox;

#[test]
fn generate_docs_writes_man_pages_and_completions() {
    let sb = Sandbox::new();
    let dir = sb.path().join("out");
    // No config is read: a packager's build machine has none.
    let mut cmd = sb.command();
    cmd.arg("--config")
        .arg(sb.path().join("absent.toml"))
        .arg("generate-docs")
        .arg(&dir);
    common::run_command(cmd, None).expect(0);

    let man = dir.join("man");
    for page in [
        "sshield.1",
        "sshield-enroll.1",
        "sshield-verify.1",
        "sshield-confirm.1",
        "sshield-status.1",
        "sshield-backup-codes.1",
        "sshield-import-users-oath.1",
        "sshield-login.1",
        "sshield-daemon.8",
    ] {
        let text = fs::read_to_string(man.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".TH "), "{page} is not a man page");
    }
    let enroll = fs::read_to_string(man.join("sshield-enroll.1")).unwrap();
    for option in [
        "\\-\\-secret",
        "\\-\\-no\\-confirm",
        "\\-\\-qr\\-png",
        "\\-\\-digits",
    ] {
        assert!(enroll.contains(option), "sshield-enroll.1 lacks {option}");
    }
    // The hidden command documents nobody.
    assert!(!man.join("sshield-generate-docs.1").exists());

    let completions = dir.join("completions");
    let bash = completions.join("sshield.bash");
    let zsh = fs::read_to_string(completions.join("_sshield")).unwrap();
    let fish = fs::read_to_string(completions.join("sshield.fish")).unwrap();
    assert!(zsh.starts_with("#compdef sshield"), "{zsh}");
    assert!(fish.contains("complete -c sshield"), "{fish}");
    let bash_text = fs::read_to_string(&bash).unwrap();
    assert!(bash_text.contains("enroll") && bash_text.contains("--no-confirm"));
    let syntax = Command::new("bash").arg("-n").arg(&bash).output().unwrap();
    assert!(
        syntax.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&syntax.stderr)
    );

    // Into a place it cannot write: a clear error, exit 2.
    let blocker = sb.path().join("file");
    fs::write(&blocker, "").unwrap();
    let out = sb.run(
        &["generate-docs", blocker.join("sub").to_str().unwrap()],
        None,
    );
    out.expect_err(2, "cannot write into");
}

/// The man pages committed in docs/man are exactly what the CLI definitions generate, so they
/// can never describe options that no longer exist.
#[test]
fn committed_man_pages_are_up_to_date() {
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/man");
    let sandbox = Sandbox::new();
    let out = sandbox.path().join("generated");
    sandbox
        .run(&["generate-docs", out.to_str().unwrap()], None)
        .expect(0);
    let list = |dir: &std::path::Path| {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("sshield") && (n.ends_with(".1") || n.ends_with(".8")))
            .collect();
        names.sort();
        names
    };
    let fix = "run scripts/generate-docs and commit docs/man";
    assert_eq!(list(&committed), list(&out.join("man")), "{fix}");
    for name in list(&committed) {
        let a = fs::read(committed.join(&name)).unwrap();
        let b = fs::read(out.join("man").join(&name)).unwrap();
        assert!(a == b, "docs/man/{name} is out of date: {fix}");
    }
}

/// The config files' man pages, sshield.toml(5) and sshield-server.toml(5), are what
/// scripts/config-man makes from docs/config.md, where every key is written once: a key added
/// there and not to the pages (or the other way round) fails here.
#[test]
fn the_config_man_pages_are_made_from_config_md() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new("python3")
        .arg(root.join("scripts/config-man"))
        .arg("--check")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let host = fs::read_to_string(root.join("docs/man/sshield.toml.5")).unwrap();
    let server = fs::read_to_string(root.join("docs/man-server/sshield-server.toml.5")).unwrap();
    for key in [
        "policy.max_drift",
        "server.timeout",
        "offline_window",
        "push.wait",
    ] {
        assert!(host.contains(key), "sshield.toml.5 lacks {key}");
    }
    for key in [
        "workers",
        "offline_max_window",
        "public_url",
        "audit_retention",
    ] {
        assert!(server.contains(key), "sshield-server.toml.5 lacks {key}");
    }
    for key in ["max_body_bytes", "join_token_ttl"] {
        assert!(
            !host.contains(key),
            "a server key in the host's page: {key}"
        );
    }
}
