//! A host's store carried to the server: `sshield export` on the host, then `sshield-server
//! user import --from-sshield`. Codes and backup codes the host accepted stay used (oathtool
//! makes the codes); a bad file names its line or field and stores nothing; both backends.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::server::{cli, oathtool, state_dir, verify_from, Server, TestHost};

const SECRET: &str = "JBSWY3DPEHPK3PXP";

/// A host: a config naming a store in `dir`, and the `sshield` CLI run against it.
struct Host {
    config: PathBuf,
}

impl Host {
    fn new(dir: &Path) -> Self {
        let config = dir.join("sshield.toml");
        fs::write(
            &config,
            format!("store = \"{}\"\n", dir.join("store").display()),
        )
        .expect("write config");
        Self { config }
    }

    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = Command::new(&sshield_e2e::artefacts().cli)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env_remove("SSHIELD_CONFIG")
            .output()
            .expect("run sshield");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Enrolls `user` with [`SECRET`], active; returns the backup codes.
    fn enroll(&self, user: &str) -> Vec<String> {
        let (ok, out, err) =
            self.run(&["enroll", user, "--secret", SECRET, "--no-confirm", "--json"]);
        assert!(ok, "{err}");
        let json: serde_json::Value = serde_json::from_str(&out).expect("enroll's JSON");
        json["backup_codes"]
            .as_array()
            .expect("backup codes")
            .iter()
            .map(|c| c.as_str().expect("a code").to_owned())
            .collect()
    }
}

/// `sshield-server user import --from-sshield FILE`.
fn import(state: &Path, global: &[&str], file: &Path) -> (bool, String, String) {
    let file = file.to_str().expect("utf-8");
    cli(state, global, &["user", "import", "--from-sshield", file])
}

/// What the host accepted stays used on the server; what it did not is accepted there.
fn carries_replay_state(global: &[&str]) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = Host::new(tmp.path());
    let backup = host.enroll("alice");
    host.enroll("bob");
    let used = oathtool(SECRET, 0);
    let (ok, _, err) = host.run(&["verify", "alice", &used]);
    assert!(ok, "the host accepts alice's code: {err}");
    let (ok, _, err) = host.run(&["verify", "alice", &backup[0]]);
    assert!(ok, "the host accepts a backup code: {err}");

    let file = tmp.path().join("export.json");
    let (ok, out, err) = host.run(&[
        "export",
        "--user",
        "alice",
        "--output",
        file.to_str().expect("utf-8"),
    ]);
    assert!(ok && out.is_empty(), "{err}");
    assert!(err.contains("exported 1 user"), "{err}");
    let mode = fs::metadata(&file).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the export holds secrets");
    // Never over an existing file (it might be readable by others).
    let (ok, _, err) = host.run(&["export", "--output", file.to_str().expect("utf-8")]);
    assert!(
        !ok && err.contains("never written over an existing file"),
        "{err}"
    );

    let (_server_tmp, state) = state_dir();
    let (ok, out, err) = import(&state, global, &file);
    assert!(ok, "{err}");
    assert!(
        out.contains("imported 1 user(s)") && out.contains("alice"),
        "{out}"
    );
    assert_eq!(cli(&state, global, &["user", "list"]).1, "alice\tactive\n");

    let server = Server::start(&state, global, &["--listen", "127.0.0.1:0"]);
    let web = TestHost::new("web1", 7);
    web.join(&server, &state, global);
    let ask = |code: &str| {
        let (status, body) = web.post(
            &server,
            "/v1/verify",
            &verify_from("alice", code, "192.0.2.9"),
        );
        assert_eq!(status, 200, "{body}");
        serde_json::from_str::<serde_json::Value>(&body).expect("JSON")
    };
    let answer = ask(&used);
    assert_eq!(
        answer["reason"], "replayed",
        "the host's code again: {answer}"
    );
    let answer = ask(&backup[0]);
    assert_eq!(
        answer["outcome"], "denied",
        "the used backup code: {answer}"
    );
    let answer = ask(&backup[1]);
    assert_eq!(
        answer["method"], "backup",
        "an unused backup code: {answer}"
    );
    let answer = ask(&oathtool(SECRET, 30));
    assert_eq!(answer["method"], "totp", "the next code: {answer}");

    // Importing the same file again: alice is there; nothing changes.
    let (ok, _, err) = import(&state, global, &file);
    assert!(!ok && err.contains("already has alice"), "{err}");
}

#[test]
fn an_export_carries_replay_state_to_sqlite() {
    carries_replay_state(&[]);
}

#[test]
fn an_export_carries_replay_state_to_postgres() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(support::pg::database());
    carries_replay_state(&["--database", &db.url]);
}

/// `sshield export | sshield-server user import --from-sshield -`: no copy on disk.
#[test]
fn an_export_piped_into_the_import() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = Host::new(tmp.path());
    host.enroll("mia");
    let (ok, exported, err) = host.run(&["export"]);
    assert!(ok, "{err}");
    let (_server_tmp, state) = state_dir();
    let mut import = support::server::binary()
        .arg("--state-dir")
        .arg(&state)
        .args(["user", "import", "--from-sshield", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start the import");
    import
        .stdin
        .take()
        .expect("stdin")
        .write_all(exported.as_bytes())
        .expect("pipe");
    let done = import.wait_with_output().expect("wait");
    let out = String::from_utf8_lossy(&done.stdout);
    assert!(done.status.success() && out.contains("mia"), "{out}");
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "mia\tactive\n");
}

/// Each bad file: refused with the file and the line, column or field, nothing stored.
#[test]
fn a_bad_export_is_refused_whole_with_its_field() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let host = Host::new(tmp.path());
    host.enroll("carol");
    host.enroll("dave");
    let (ok, good, err) = host.run(&["export"]);
    assert!(ok, "{err}");
    let good: serde_json::Value = serde_json::from_str(&good).expect("JSON");
    let (_server_tmp, state) = state_dir();
    let edit = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut doc = good.clone();
        f(&mut doc);
        serde_json::to_string_pretty(&doc).expect("JSON")
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "truncated",
            "{\n  \"format\": \"sshield-export\",\n  \"vers".to_owned(),
            "line 3, column",
        ),
        (
            "not JSON",
            "users:\n  - carol\n".to_owned(),
            "line 1, column 1",
        ),
        (
            "an unknown field",
            edit(&|d| d["users"][1]["colour"] = "red".into()),
            "unknown field `colour`",
        ),
        (
            "another format",
            edit(&|d| d["format"] = "privacyidea".into()),
            "field `format`",
        ),
        (
            "a newer version",
            edit(&|d| d["version"] = 9.into()),
            "field `version` is 9",
        ),
        (
            "a bad user name",
            edit(&|d| d["users"][1]["user"] = "../etc".into()),
            "field `users[1].user`",
        ),
        (
            "a user twice",
            edit(&|d| d["users"][1]["user"] = "carol".into()),
            "appears twice",
        ),
        (
            "a bad secret",
            edit(&|d| d["users"][0]["authenticator"][0]["secret"] = "not base32!".into()),
            "line ",
        ),
    ];
    for (what, text, expected) in cases {
        let file = tmp.path().join("bad.json");
        fs::write(&file, &text).expect("write");
        let (ok, _, err) = import(&state, &[], &file);
        assert!(!ok, "{what}: accepted");
        assert!(
            err.contains(file.to_str().expect("utf-8")) && err.contains(expected),
            "{what}: {err}"
        );
        assert!(err.contains("nothing was imported"), "{what}: {err}");
        assert_eq!(cli(&state, &[], &["user", "list"]).1, "", "{what}: stored");
    }
    let (ok, _, err) = import(&state, &[], Path::new("/nonexistent/export.json"));
    assert!(
        !ok && err.contains("/nonexistent/export.json: cannot read it"),
        "{err}"
    );

    // One of the file's users on the server already: none of the others is stored either.
    let file = tmp.path().join("good.json");
    fs::write(&file, good.to_string()).expect("write");
    support::server::enroll_confirmed(&state, &[], "dave");
    let (ok, _, err) = import(&state, &[], &file);
    assert!(!ok && err.contains("already has dave"), "{err}");
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "dave\tactive\n");
}
