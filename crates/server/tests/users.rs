//! `sshield-server user ...` as an admin runs it, and what ends up in the database.

mod support;

use std::fs;

use support::server::{backup_codes_of, cli, enroll_confirmed, oathtool, secret_of, state_dir};

#[test]
fn enroll_prints_uri_qr_and_backup_codes_and_confirm_activates() {
    let (_tmp, state) = state_dir();
    let (ok, out, err) = cli(&state, &[], &["user", "enroll", "alice"]);
    assert!(ok, "{err}");
    let secret = secret_of(&out);
    assert!(out.contains("otpauth://totp/sshield:alice?"), "{out}");
    assert!(out.contains('▀') || out.contains('▄'), "a QR code: {out}");
    assert_eq!(backup_codes_of(&out).len(), 10, "{out}");
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "alice\tpending\n");

    // A wrong code confirms nothing; the right one does, once.
    // Ten minutes ahead: far outside the window.
    let wrong = oathtool(&secret, 600);
    let (ok, _, err) = cli(&state, &[], &["user", "confirm", "alice", &wrong]);
    assert!(!ok && err.contains("does not confirm"), "{err}");
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "alice\tpending\n");
    let right = oathtool(&secret, 0);
    let (ok, out, err) = cli(&state, &[], &["user", "confirm", "alice", &right]);
    assert!(ok, "{err}");
    assert!(out.contains("confirmed"), "{out}");
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "alice\tactive\n");

    // Enrolling again would replace the phone's secret behind the user's back: refused.
    let (ok, _, err) = cli(&state, &[], &["user", "enroll", "alice"]);
    assert!(!ok && err.contains("user remove alice"), "{err}");
}

#[test]
fn disable_enable_backup_codes_and_remove() {
    let (_tmp, state) = state_dir();
    enroll_confirmed(&state, &[], "bob");
    assert!(cli(&state, &[], &["user", "disable", "bob"]).0);
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "bob\tdisabled\n");
    let again = cli(&state, &[], &["user", "disable", "bob"]).1;
    assert!(again.contains("already"), "{again}");
    assert!(cli(&state, &[], &["user", "enable", "bob"]).0);
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "bob\tactive\n");
    let (ok, out, _) = cli(&state, &[], &["user", "backup-codes", "bob"]);
    assert!(ok && backup_codes_of(&out).len() == 10, "{out}");
    assert!(cli(&state, &[], &["user", "remove", "bob"]).0);
    assert_eq!(cli(&state, &[], &["user", "list"]).1, "");
    let (ok, _, err) = cli(&state, &[], &["user", "remove", "bob"]);
    assert!(!ok && err.contains("not enrolled"), "{err}");
    let (ok, _, err) = cli(&state, &[], &["user", "enroll", "../etc"]);
    assert!(!ok && err.contains("user name"), "{err}");
}

/// The raw database (the SQLite file and its write-ahead log) holds no secret: not the TOTP
/// secret in base32 or in bytes, not a backup code. Only the record key opens them.
#[test]
fn the_database_file_holds_no_secret() {
    let (_tmp, state) = state_dir();
    let (ok, out, err) = cli(&state, &[], &["user", "enroll", "carol", "--no-qr"]);
    assert!(ok, "{err}");
    let secret = secret_of(&out);
    let codes = backup_codes_of(&out);
    let code = oathtool(&secret, 0);
    assert!(cli(&state, &[], &["user", "confirm", "carol", &code]).0);
    let raw_secret = data_encoding::BASE32_NOPAD
        .decode(secret.trim_end_matches('=').as_bytes())
        .expect("base32");
    let mut raw = Vec::new();
    for file in ["sshield-server.db", "sshield-server.db-wal"] {
        raw.extend(fs::read(state.join(file)).unwrap_or_default());
    }
    assert!(raw.len() > 4096, "the database was read");
    // The plaintext columns are there (so the search below could find text).
    assert!(contains(&raw, b"carol") && contains(&raw, b"active"));
    let lower = secret.to_lowercase();
    for needle in [secret.as_bytes(), lower.as_bytes(), &raw_secret[..]] {
        assert!(!contains(&raw, needle), "the secret is in the database");
    }
    for code in &codes {
        let compact = code.replace('-', "");
        assert!(!contains(&raw, code.as_bytes()) && !contains(&raw, compact.as_bytes()));
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn import_users_oath_and_google_authenticator() {
    let (tmp, state) = state_dir();
    // RFC 6238's test secret; pam_oath's format: type, user, pin, secret (hex).
    let oath = tmp.path().join("users.oath");
    fs::write(
        &oath,
        "HOTP/T30 dave - 3132333435363738393031323334353637383930\n",
    )
    .expect("write");
    let (ok, out, err) = cli(
        &state,
        &[],
        &["user", "import-users-oath", oath.to_str().expect("utf-8")],
    );
    assert!(ok, "{err}");
    assert!(out.contains("imported 1 user(s): dave"), "{out}");
    // Again: the user is there, nothing is overwritten.
    let (ok, _, err) = cli(
        &state,
        &[],
        &["user", "import-users-oath", oath.to_str().expect("utf-8")],
    );
    assert!(!ok && err.contains("already has dave"), "{err}");

    let ga = tmp.path().join("google_authenticator");
    fs::write(
        &ga,
        "JBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 3\n\" TOTP_AUTH\n12345678\n",
    )
    .expect("write");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&ga, fs::Permissions::from_mode(0o400)).expect("chmod");
    let (ok, out, err) = cli(
        &state,
        &[],
        &[
            "user",
            "import-google-authenticator",
            "erin",
            ga.to_str().expect("utf-8"),
        ],
    );
    assert!(ok, "{err}");
    assert!(out.contains("imported 1 user(s): erin"), "{out}");
    assert_eq!(
        cli(&state, &[], &["user", "list"]).1,
        "dave\tactive\nerin\tactive\n"
    );
}
