//! `sshield enroll` end to end: the JSON contract, codes checked against oathtool, QR images
//! decoded by zbarimg, non-default token parameters, and names that need escaping.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use common::{
    code_now, is_backup_code, mode, oathtool, parse_enrolled, parse_uri, totp_codes_around,
    wrong_totp, zbarimg, Sandbox, SECRET_A, SECRET_B,
};

#[test]
fn json_enroll_then_totp_replay_wrong_and_backup_codes() {
    let sb = Sandbox::new();
    let out = sb.run(&["enroll", "alice", "--json", "--no-confirm"], None);
    out.expect(0);
    let e = parse_enrolled(&out);
    assert!(out.stdout.ends_with("}\n"), "{:?}", out.stdout);
    assert_eq!(e.user, "alice");
    assert!(e.uri.starts_with("otpauth://totp/"), "{}", e.uri);
    assert!(e.uri.contains(&format!("secret={}", e.secret)), "{}", e.uri);
    assert_eq!(e.backup_codes.len(), 10);
    for c in &e.backup_codes {
        assert!(is_backup_code(c), "bad backup code {c:?}");
    }
    assert_eq!(mode(&sb.store()), 0o700);
    assert_eq!(mode(&sb.record_path("alice")), 0o600);

    let code = code_now(&e.secret, &["--totp"]);
    sb.run(&["verify", "alice", &code], None)
        .expect_err(0, "accepted: TOTP code");
    sb.run(&["verify", "alice", &code], None)
        .expect_err(1, "already used");
    let wrong = wrong_totp(&e.secret, &["--totp"], 30);
    sb.run(&["verify", "alice", &wrong], None)
        .expect_err(1, "wrong code");

    let backup = &e.backup_codes[3];
    sb.run(&["verify", "alice", backup], None)
        .expect_err(0, "backup code (9 left)");
    sb.run(&["verify", "alice", backup], None)
        .expect_err(1, "already used");
    // Another code of the set still works.
    sb.run(&["verify", "alice", &e.backup_codes[0]], None)
        .expect_err(0, "backup code (8 left)");
    // Typed in capitals and without the dash, it is the same code, and still single-use.
    let shouted = e.backup_codes[5].replace('-', "").to_uppercase();
    sb.run(&["verify", "alice", &shouted], None)
        .expect_err(0, "backup code (7 left)");
    sb.run(&["verify", "alice", &e.backup_codes[5]], None)
        .expect_err(1, "already used");
}

#[test]
fn racing_logins_with_one_code_accept_it_once() {
    // Seven losers per round would lock the pair out before the second round: count no
    // failures here; the race is what is under test.
    let sb = Sandbox::with_config("store = \"users\"\n[rate_limit]\nenabled = false\n");
    let e = sb.enroll_json("alice", &["--no-confirm"]);
    for code in [code_now(&e.secret, &["--totp"]), e.backup_codes[0].clone()] {
        let children: Vec<_> = (0..8)
            .map(|_| {
                let mut cmd = sb.command();
                cmd.arg("--config")
                    .arg(sb.config())
                    .args(["verify", "alice", &code])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null());
                cmd.spawn().unwrap()
            })
            .collect();
        let mut statuses: Vec<i32> = children
            .into_iter()
            .map(|c| c.wait_with_output().unwrap().status.code().unwrap())
            .collect();
        statuses.sort_unstable();
        assert_eq!(statuses, [0, 1, 1, 1, 1, 1, 1, 1], "code {code}");
    }
}

#[test]
fn verify_reads_the_code_from_stdin() {
    let sb = Sandbox::new();
    let e = sb.enroll_json("bob", &["--no-confirm"]);
    let code = code_now(&e.secret, &["--totp"]);
    sb.run(&["verify", "bob", "-"], Some(&format!("{code}\n")))
        .expect_err(0, "accepted");
    sb.run(&["verify", "bob", "-"], Some(&format!("{code}\n")))
        .expect_err(1, "already used");
    sb.run(&["verify", "bob", "-"], Some(""))
        .expect_err(2, "no code on standard input");
}

#[test]
fn secret_from_stdin_is_the_secret_oathtool_uses() {
    let sb = Sandbox::new();
    let out = sb.run(
        &["enroll", "bob", "--secret", "-", "--no-confirm", "--json"],
        Some(&format!("{SECRET_A}\n")),
    );
    out.expect(0);
    let e = parse_enrolled(&out);
    assert_eq!(e.secret, SECRET_A);
    let code = code_now(SECRET_A, &["--totp"]);
    sb.run(&["verify", "bob", &code], None).expect(0);
}

#[test]
fn png_qr_from_human_output_decodes_to_the_key_uri() {
    let sb = Sandbox::new();
    let png = sb.path().join("alice.png");
    let out = sb.run(
        &[
            "enroll",
            "alice",
            "--no-confirm",
            "--issuer",
            "Example",
            "--qr-png",
            png.to_str().unwrap(),
        ],
        None,
    );
    out.expect(0).expect_out("is active");
    let uri = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Key URI: "))
        .expect("a `Key URI:` line")
        .to_owned();
    assert!(uri.starts_with("otpauth://totp/Example:alice?"), "{uri}");
    assert_eq!(zbarimg(&png), Ok(uri.clone()));
    assert_eq!(mode(&png), 0o600, "the QR image holds the secret");

    // The secret typed by hand (grouped in fours) is the one in the URI.
    let typed = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("Or type this key into the app: "))
        .expect("the key line")
        .replace(' ', "");
    assert_eq!(parse_uri(&uri).params["secret"], typed);
    let code = code_now(&typed, &["--totp"]);
    sb.run(&["verify", "alice", &code], None).expect(0);
}

#[test]
fn png_and_svg_qr_from_json_decode_to_the_key_uri() {
    let sb = Sandbox::new();
    let png = sb.path().join("bob.png");
    let svg = sb.path().join("bob.svg");
    let e = sb.enroll_json(
        "bob",
        &[
            "--no-confirm",
            "--qr-png",
            png.to_str().unwrap(),
            "--qr-svg",
            svg.to_str().unwrap(),
        ],
    );
    assert_eq!(zbarimg(&png), Ok(e.uri.clone()));
    assert_eq!(mode(&png), 0o600);
    assert_eq!(mode(&svg), 0o600);

    let text = fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"), "{text}");
    assert!(text.trim_end().ends_with("</svg>"), "{text}");
    // zbarimg reads SVG through ImageMagick's `rsvg-convert` delegate (librsvg2-bin, which
    // scripts/install-test-deps installs): the image itself is decoded, never skipped.
    assert_eq!(zbarimg(&svg), Ok(e.uri));
}

/// Issue 9, item 7: a QR image is written only into a file the command itself creates. A file
/// planted by another user (who keeps it open and reads the secret), a symlink to a file root
/// owns, or a dangling symlink are refused before anything is enrolled, and left as they were.
#[test]
fn qr_image_is_written_only_into_a_new_file() {
    let sb = Sandbox::new();
    let planted = sb.path().join("planted.png");
    fs::write(&planted, b"stale").unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o644)).unwrap();
    let victim = sb.path().join("shadow");
    fs::write(&victim, b"root:*:19000:0:99999:7:::\n").unwrap();
    let to_victim = sb.path().join("link.svg");
    std::os::unix::fs::symlink(&victim, &to_victim).unwrap();
    let dangling = sb.path().join("dangling.png");
    let target = sb.path().join("made-by-symlink");
    std::os::unix::fs::symlink(&target, &dangling).unwrap();

    for (flag, path) in [
        ("--qr-png", &planted),
        ("--qr-svg", &to_victim),
        ("--qr-png", &dangling),
    ] {
        sb.run(
            &[
                "enroll",
                "alice",
                "--no-confirm",
                flag,
                path.to_str().unwrap(),
            ],
            None,
        )
        .expect_err(2, "already exists; the QR image holds the secret");
    }
    assert_eq!(fs::read(&planted).unwrap(), b"stale");
    assert_eq!(mode(&planted), 0o644);
    assert_eq!(fs::read(&victim).unwrap(), b"root:*:19000:0:99999:7:::\n");
    assert!(!target.exists(), "a dangling symlink was followed");
    // Refused before the record was made: no backup codes were shown and then lost.
    let status = sb.run(&["status", "alice"], None);
    status.expect(2);
    assert!(
        !status.stdout.contains("active") && !status.stdout.contains("pending"),
        "{status:?}"
    );

    // A good name next to a bad one: nothing is enrolled and the good one is not left behind.
    let fresh = sb.path().join("fresh.png");
    sb.run(
        &[
            "enroll",
            "alice",
            "--no-confirm",
            "--qr-png",
            fresh.to_str().unwrap(),
            "--qr-svg",
            to_victim.to_str().unwrap(),
        ],
        None,
    )
    .expect_err(2, "already exists");
    assert!(!fresh.exists(), "{} was left behind", fresh.display());

    // `sshield qr` refuses the same way.
    let e = sb.enroll_json("alice", &["--no-confirm"]);
    sb.run(
        &["qr", "alice", "--qr-png", planted.to_str().unwrap()],
        None,
    )
    .expect_err(2, "already exists");
    assert_eq!(fs::read(&planted).unwrap(), b"stale");
    sb.run(&["qr", "alice", "--qr-png", fresh.to_str().unwrap()], None)
        .expect(0);
    assert_eq!(zbarimg(&fresh), Ok(e.uri));
    assert_eq!(mode(&fresh), 0o600);
}

#[test]
fn qr_command_shows_the_same_uri_as_enroll() {
    let sb = Sandbox::with_config("store = \"users\"\nissuer = \"Bastion One\"\n");
    let e = sb.enroll_json("alice", &["--no-confirm"]);
    let png = sb.path().join("again.png");
    let out = sb.run(&["qr", "alice", "--qr-png", png.to_str().unwrap()], None);
    out.expect(0).expect_out(&format!("Key URI: {}", e.uri));
    assert_eq!(zbarimg(&png), Ok(e.uri));
}

#[test]
fn sha256_8_digits_60_seconds() {
    let sb = Sandbox::new();
    let e = sb.enroll_json(
        "alice",
        &[
            "--no-confirm",
            "--algorithm",
            "sha256",
            "--digits",
            "8",
            "--period",
            "60",
        ],
    );
    let uri = parse_uri(&e.uri);
    assert_eq!(uri.params["algorithm"], "SHA256");
    assert_eq!(uri.params["digits"], "8");
    assert_eq!(uri.params["period"], "60");
    let flags = ["--totp=sha256", "--digits=8", "--time-step-size=60s"];
    let code = code_now(&e.secret, &flags);
    assert_eq!(code.len(), 8);
    sb.run(&["verify", "alice", &code[..6]], None)
        .expect_err(1, "wrong code");
    // A SHA-1 code for the same secret is not accepted either.
    let sha1 = code_now(&e.secret, &["--totp", "--digits=8", "--time-step-size=60s"]);
    if !totp_codes_around(&e.secret, &flags, 60).contains(&sha1) {
        sb.run(&["verify", "alice", &sha1], None).expect(1);
    }
    sb.run(&["verify", "alice", &code], None).expect(0);
    sb.run(&["verify", "alice", &code], None)
        .expect_err(1, "already used");
    let wrong = wrong_totp(&e.secret, &flags, 60);
    sb.run(&["verify", "alice", &wrong], None).expect(1);
}

#[test]
fn sha512_7_digits() {
    let sb = Sandbox::new();
    let e = sb.enroll_json(
        "alice",
        &["--no-confirm", "--algorithm", "sha512", "--digits", "7"],
    );
    let uri = parse_uri(&e.uri);
    assert_eq!(uri.params["algorithm"], "SHA512");
    assert_eq!(uri.params["digits"], "7");
    let code = code_now(&e.secret, &["--totp=sha512", "--digits=7"]);
    assert_eq!(code.len(), 7);
    sb.run(&["verify", "alice", &code[..6]], None).expect(1);
    sb.run(&["verify", "alice", &code], None).expect(0);
}

#[test]
fn hotp_from_counter_5() {
    let sb = Sandbox::new();
    let e = sb.enroll_json(
        "alice",
        &[
            "--no-confirm",
            "--hotp",
            "--counter",
            "5",
            "--secret",
            SECRET_B,
        ],
    );
    let uri = parse_uri(&e.uri);
    assert_eq!(uri.kind, "hotp");
    assert_eq!(uri.params["counter"], "5");
    let at = |c: u64| code_now(SECRET_B, &["--hotp", "-c", &c.to_string()]);
    // `code` shows the next expected code without using it up.
    sb.run(&["code", "alice"], None)
        .expect(0)
        .expect_out(&format!("{}\n", at(5)));
    // Before the provisioned counter: never valid.
    // (The secret is fixed, so this code is not one of counters 5..=15 on every run.)
    sb.run(&["verify", "alice", &at(4)], None)
        .expect_err(1, "wrong code");
    sb.run(&["verify", "alice", &at(5)], None)
        .expect_err(0, "HOTP code");
    sb.run(&["verify", "alice", &at(5)], None)
        .expect_err(1, "already used");
    // A press that never reached the server is skipped over (look-ahead).
    sb.run(&["verify", "alice", &at(7)], None).expect(0);
    sb.run(&["verify", "alice", &at(6)], None).expect(1);
    sb.run(&["code", "alice"], None)
        .expect(0)
        .expect_out(&format!("{}\n", at(8)));
    // oathtool agrees with itself over a window, as a sanity check of the referee call.
    assert_eq!(
        oathtool(SECRET_B, &["--hotp", "-c", "5", "-w", "1"])[1],
        at(6)
    );
}

#[test]
fn issuer_with_spaces_at_colon_and_non_ascii_survives_the_qr_code() {
    let sb = Sandbox::new();
    let issuer = "ACME Corp: Büro @ Zürich ☃";
    let png = sb.path().join("q.png");
    let e = sb.enroll_json(
        "alice@corp.example",
        &[
            "--no-confirm",
            "--issuer",
            issuer,
            "--qr-png",
            png.to_str().unwrap(),
        ],
    );
    let decoded = zbarimg(&png).unwrap();
    assert_eq!(decoded, e.uri);
    let uri = parse_uri(&decoded);
    assert_eq!(uri.kind, "totp");
    assert_eq!(uri.label_issuer.as_deref(), Some(issuer));
    assert_eq!(uri.account, "alice@corp.example");
    assert_eq!(uri.params["issuer"], issuer);
    assert_eq!(uri.params["secret"], e.secret);
    let code = code_now(&e.secret, &["--totp"]);
    sb.run(&["verify", "alice@corp.example", &code], None)
        .expect(0);
}

#[test]
fn bad_user_names_are_errors_that_create_nothing() {
    let sb = Sandbox::new();
    for bad in ["../x", "a/b", "zoë", ".hidden", "-rf", "a b", ""] {
        // After `--`, so that `-rf` reaches the name check instead of clap's option parser.
        let out = sb.run(
            &["enroll", "--no-confirm", "--secret", SECRET_A, "--", bad],
            None,
        );
        out.expect_err(2, "user name");
        assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    }
    assert!(!sb.path().join("x.toml").exists());
    let leftovers: Vec<_> = fs::read_dir(sb.store())
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for args in [
        &["confirm", "../x", "123456"][..],
        &["code", "../x"],
        &["status", "../x"],
        &["disable", "../x"],
        &["remove", "../x"],
    ] {
        sb.run(args, None).expect_err(2, "user name");
    }
}

/// Issue 9, item 9: the README's config-management example put the secret on the command
/// line, where `ps` shows it to every local user. The example as the README prints it now
/// runs, keeps the secret out of the arguments, and enrolls the secret oathtool checks.
#[test]
fn the_readmes_config_management_example_keeps_the_secret_out_of_ps() {
    let readme =
        fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let example = readme
        .lines()
        .find(|l| l.starts_with("sshield enroll alice --secret"))
        .expect("the README's config-management example");
    let words: Vec<&str> = example.split_whitespace().collect();
    assert!(
        !words.iter().any(|w| w.contains('$')),
        "the README passes the secret on the command line: {example}"
    );
    // `--secret-file FILE`, written 0600 as config management does, and run as printed.
    let sb = Sandbox::new();
    let file_at = words.iter().position(|w| *w == "--secret-file").unwrap();
    let file = sb.path().join("alice.secret");
    fs::write(&file, format!("{SECRET_A}\n")).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    let mut args: Vec<String> = words[1..].iter().map(|w| w.to_string()).collect();
    args[file_at] = file.display().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = sb.run(&args, None);
    out.expect(0);
    assert!(!args.iter().any(|a| a.contains(SECRET_A)));
    assert_eq!(parse_enrolled(&out).secret, SECRET_A);
    sb.run(&["verify", "alice", &code_now(SECRET_A, &["--totp"])], None)
        .expect(0);
    // Run again: the same secret changes nothing (idempotent, as config management needs).
    sb.run(&args, None).expect(0);
}

/// A secret file must not be readable by others (it would only move the leak from `ps` to
/// the file), must be a regular file (a FIFO must not hang the run), and is an alternative
/// to --secret, not an addition.
#[test]
fn a_secret_file_others_can_read_is_refused() {
    let sb = Sandbox::new();
    let file = sb.path().join("s");
    fs::write(&file, SECRET_A).unwrap();
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let path = file.to_str().unwrap();
    sb.run(
        &["enroll", "bob", "--secret-file", path, "--no-confirm"],
        None,
    )
    .expect_err(
        2,
        &format!("mode 0644 lets group or others read the secret; run: chmod 600 {path}"),
    );
    let fifo = sb.path().join("fifo");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    sb.run(
        &[
            "enroll",
            "bob",
            "--secret-file",
            fifo.to_str().unwrap(),
            "--no-confirm",
        ],
        None,
    )
    .expect_err(2, "not a regular file");
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    sb.run(
        &[
            "enroll",
            "bob",
            "--secret-file",
            path,
            "--secret",
            SECRET_B,
            "--no-confirm",
        ],
        None,
    )
    .expect_err(2, "cannot be used with");
    fs::write(&file, "not base32!\n").unwrap();
    sb.run(
        &["enroll", "bob", "--secret-file", path, "--no-confirm"],
        None,
    )
    .expect_err(2, &format!("--secret-file {path}:"));
    let status = sb.run(&["status", "bob"], None);
    assert!(!status.stdout.contains("active"), "{status:?}");
}
