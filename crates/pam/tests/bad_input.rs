//! docs/bad-input.md, "PAM module arguments": each bad argument on the `pam_sshield.so` line,
//! and a broken config reached through the module, fails closed (`PAM_SERVICE_ERR`, nothing
//! asked) with one log line naming the argument or the file and line, and leaves the store
//! alone.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod harness;

use harness::{Fixture, Login};
use sshield_e2e::bad_input::{Row, Snapshot, Table};

/// The child-process side of every login in this file (see `harness/driver.rs`).
#[test]
fn pam_driver_process() {
    harness::driver::main_if_requested();
}

#[test]
fn table_pam_arguments() {
    let mut t = Table::new(
        "pam arguments",
        "cargo test -p sshield-pam --test bad_input table_pam_arguments",
    );
    // `{config}` is `config=<the fixture's config>`; `{module}` the module's path.
    for (args, config, expected) in [
        (
            "{config} use_frist_pass",
            None,
            "unknown module argument \"use_frist_pass\"; the arguments are config=PATH, debug",
        ),
        ("{config} debug=1", None, "unknown module argument \"debug=1\""),
        (
            "{config} prompt=Code:",
            None,
            "prompt= is not a module argument; set `prompt = \"...\"` in the config file",
        ),
        (
            "{config} use_first_pass forward_pass",
            None,
            "use_first_pass and forward_pass cannot be combined; choose one",
        ),
        (
            "config=relative.toml",
            None,
            "config=\"relative.toml\" must be an absolute path, e.g. config=/etc/sshield/sshield.toml",
        ),
        (
            "{config} config=/etc/other.toml",
            None,
            "config= is given twice with different paths, $DIR/sshield.toml and /etc/other.toml; keep one",
        ),
        (
            "config=/nonexistent/sshield.toml",
            None,
            "/nonexistent/sshield.toml: config file not found; create it (see sshield.toml(5)), \
             or name another: config=PATH on the pam_sshield line",
        ),
        (
            "{config}",
            Some("store = \"users\"\n[policy]\nwindw = 3\n"),
            "$DIR/sshield.toml:3: unknown field `windw`",
        ),
        (
            "{config}",
            Some("store = \"users\"\n[policy]\nwindow = \"three\"\n"),
            "$DIR/sshield.toml:3: policy.window: invalid type: string \"three\", expected a whole number",
        ),
    ] {
        let f = Fixture::new("");
        f.enroll("alice");
        if let Some(text) = config {
            f.write_config(text);
        }
        let dir = f.path().display().to_string();
        f.service(
            harness::fixture::SERVICE,
            &format!("auth required {{module}} {args}\n"),
        );
        let store = f.path().join("users");
        let before = Snapshot::of(&store);
        let out = f.login(&Login::new("alice", "203.0.113.9", &["123456"]));
        let detail = out.setup_error();
        let expected = expected.replace("$DIR", &dir);
        assert!(detail.starts_with(&expected), "{args}: {detail}");
        let shown = |text: &str| text.replace(&dir, "$DIR");
        t.push(Row {
            input: match config {
                Some(text) => format!("sshield.toml:\n{text}"),
                None => args.replace("{config} ", ""),
            },
            tried: shown(&format!(
                "auth required pam_sshield.so {}",
                args.replace("{config}", "config=$DIR/sshield.toml")
            )),
            outcome: "`PAM_SERVICE_ERR`, nothing asked".to_owned(),
            message: shown(&out.lines()[0].replace("\\x22", "\"")),
            stored: before.unchanged_since(&store),
        });
    }
    t.check();
}

/// A hand-edited `digits = 12` refuses that user's PAM logins as a store error naming the
/// file, line and fix, not as `wrong-code` (issue 10), leaves the file as it is, and leaves
/// other users alone.
#[test]
fn a_record_with_digits_out_of_range_is_a_store_error_naming_file_and_line() {
    let f = Fixture::new("");
    let alice = f.enroll("alice");
    f.enroll("bob");
    let path = f.store.dir().join("bob.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text.lines().position(|l| l == "digits = 6").unwrap() + 1;
    let edited = text.replace("digits = 6", "digits = 12");
    std::fs::write(&path, &edited).unwrap();
    f.module_service("");

    let bob = f.login(&Login::new("bob", "203.0.113.9", &["123456123456"]));
    assert_eq!(bob.authenticate, harness::pam::PAM_AUTH_ERR, "{bob:#?}");
    let logged = bob.lines()[0].replace("\\x22", "\"");
    assert!(logged.contains("reason=store-error detail="), "{logged}");
    let expected = format!(
        "{}:{line}: digits = 12 is not supported: set it to 6, 7 or 8",
        path.display()
    );
    assert!(logged.contains(&expected), "{logged}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);

    let alice = f.login(&Login::new("alice", "203.0.113.9", &[&alice.code()]));
    assert_eq!(alice.authenticate, harness::pam::PAM_SUCCESS, "{alice:#?}");
}
