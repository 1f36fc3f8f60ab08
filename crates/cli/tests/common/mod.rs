//! A small harness for running the real `sshield` binary: each [`Sandbox`] is a fresh temp dir
//! with its own config (`store = "users"`, relative to the config file), so no test needs root
//! or touches a system path, and tests never share a store.
//!
//! Codes are never computed with sshield's own `otp` crate: the referees are independent
//! implementations, `oathtool` (Debian package `oathtool`) for codes and `zbarimg` (Debian
//! package `zbar-tools`) for QR images. A missing referee fails the test with the package to
//! install; it never lets a test pass unchecked.
#![allow(
    dead_code,
    reason = "each test file uses a different part of the harness"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{ErrorKind, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use sshield_e2e::bad_input::{Row, Snapshot};
use tempfile::TempDir;

/// The config every sandbox starts with.
pub(crate) const DEFAULT_CONFIG: &str = "store = \"users\"\n";

/// Fixed base32 secrets (20 bytes each), so a failure can be replayed with oathtool by hand.
pub(crate) const SECRET_A: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
pub(crate) const SECRET_B: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
pub(crate) const SECRET_C: &str = "KRSXG5CTNBUWK3DEKRSXG5CTNBUWK3DE";
pub(crate) const SECRET_D: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";

/// Backup codes look like `k7mq2-xv9hd`: this alphabet has no `0 o 1 l i`.
pub(crate) const BACKUP_ALPHABET: &str = "23456789abcdefghjkmnpqrstuvwxyz";

/// What a run of the binary did.
#[derive(Debug)]
pub(crate) struct Output {
    /// The exit code (`-1` if killed by a signal).
    pub status: i32,
    /// Standard output, as text.
    pub stdout: String,
    /// Standard error, as text.
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, showing everything the command printed if it differs.
    #[track_caller]
    pub(crate) fn expect(&self, status: i32) -> &Self {
        assert_eq!(
            self.status, status,
            "expected exit {status}, got {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        );
        self
    }

    /// Asserts the exit code and that stderr contains `text`.
    #[track_caller]
    pub(crate) fn expect_err(&self, status: i32, text: &str) -> &Self {
        self.expect(status);
        assert!(
            self.stderr.contains(text),
            "expected {text:?} on stderr\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stdout contains `text`.
    #[track_caller]
    pub(crate) fn expect_out(&self, text: &str) -> &Self {
        assert!(
            self.stdout.contains(text),
            "expected {text:?} on stdout\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout,
            self.stderr
        );
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// What `enroll --json` printed.
#[derive(Debug, Clone)]
pub(crate) struct Enrolled {
    pub user: String,
    pub secret: String,
    pub uri: String,
    pub backup_codes: Vec<String>,
}

/// A temp dir with a config file in it.
#[derive(Debug)]
pub(crate) struct Sandbox {
    dir: TempDir,
    config: PathBuf,
}

impl Sandbox {
    /// A sandbox with the default config.
    pub(crate) fn new() -> Self {
        Self::with_config(DEFAULT_CONFIG)
    }

    /// A sandbox whose config file holds `text` (mode 0644: a config is not secret).
    pub(crate) fn with_config(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sshield.toml");
        fs::write(&config, text).unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        Self { dir, config }
    }

    /// The temp dir.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The config file.
    pub(crate) fn config(&self) -> &Path {
        &self.config
    }

    /// The store directory the config names.
    pub(crate) fn store(&self) -> PathBuf {
        self.dir.path().join("users")
    }

    /// `user`'s record file.
    pub(crate) fn record_path(&self, user: &str) -> PathBuf {
        self.store().join(format!("{user}.toml"))
    }

    /// `user`'s record file, as bytes.
    pub(crate) fn record_bytes(&self, user: &str) -> Vec<u8> {
        fs::read(self.record_path(user)).unwrap()
    }

    /// Runs `sshield --config CONFIG ARGS...`, feeding `stdin` if given (else /dev/null).
    pub(crate) fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.command();
        cmd.arg("--config").arg(&self.config).args(args);
        run_command(cmd, stdin)
    }

    /// Runs `sshield ARGS...` with the config named only by `SSHIELD_CONFIG`.
    pub(crate) fn run_env(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = self.command();
        cmd.env("SSHIELD_CONFIG", &self.config).args(args);
        run_command(cmd, stdin)
    }

    /// The binary, run in the sandbox, with no `SSHIELD_CONFIG` from the caller's environment.
    pub(crate) fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sshield"));
        cmd.current_dir(self.dir.path())
            .env_remove("SSHIELD_CONFIG");
        cmd
    }

    /// `enroll USER --json EXTRA...`, expecting success, parsed.
    #[track_caller]
    pub(crate) fn enroll_json(&self, user: &str, extra: &[&str]) -> Enrolled {
        let mut args = vec!["enroll", user, "--json"];
        args.extend_from_slice(extra);
        let out = self.run(&args, None);
        out.expect(0);
        parse_enrolled(&out)
    }

    /// Runs `sshield ARGS...` on a bad input, expecting exit `status` and `text` on stderr,
    /// and the store exactly as it was; the row of docs/bad-input.md that shows it, with the
    /// sandbox's path written `$DIR`.
    #[track_caller]
    pub(crate) fn bad_input_row(
        &self,
        input: &str,
        args: &[&str],
        stdin: Option<&str>,
        status: i32,
        text: &str,
    ) -> Row {
        let before = Snapshot::of(&self.store());
        let out = self.run(args, stdin);
        out.expect_err(
            status,
            &text.replace("$DIR", &self.path().display().to_string()),
        );
        Row {
            input: self.hide_dir(input),
            tried: self.hide_dir(&format!("sshield {}", args.join(" "))),
            outcome: format!("exit {status}"),
            message: self.hide_dir(&out.stderr),
            stored: before.unchanged_since(&self.store()),
        }
    }

    /// `text` with the sandbox's path written `$DIR`.
    pub(crate) fn hide_dir(&self, text: &str) -> String {
        text.replace(&self.path().display().to_string(), "$DIR")
    }

    /// The `state` field of `status USER --json`.
    #[track_caller]
    pub(crate) fn state(&self, user: &str) -> String {
        let out = self.run(&["status", user, "--json"], None);
        out.expect(0);
        let rows = out.json();
        rows[0]["state"].as_str().unwrap().to_owned()
    }
}

/// Starts a prepared command with its output captured, feeding it `stdin` (else /dev/null).
/// A child that exits (or is killed) before reading its input is no error here.
pub(crate) fn spawn_command(mut cmd: Command, stdin: Option<&str>) -> std::process::Child {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("cannot start the sshield binary");
    if let Some(text) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        let _ = pipe.write_all(text.as_bytes());
    }
    child
}

/// Runs a prepared command to completion.
pub(crate) fn run_command(cmd: Command, stdin: Option<&str>) -> Output {
    let out = spawn_command(cmd, stdin).wait_with_output().unwrap();
    Output {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Checks that stdout is exactly one JSON object with exactly the four enroll keys, and
/// returns them.
#[track_caller]
pub(crate) fn parse_enrolled(out: &Output) -> Enrolled {
    assert_eq!(
        out.stdout.lines().count(),
        1,
        "--json must print one line: {:?}",
        out.stdout
    );
    let value = out.json();
    let object = value.as_object().expect("a JSON object");
    let keys: BTreeSet<&str> = object.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["backup_codes", "secret", "uri", "user"]),
        "{value}"
    );
    let text = |k: &str| object[k].as_str().unwrap().to_owned();
    Enrolled {
        user: text("user"),
        secret: text("secret"),
        uri: text("uri"),
        backup_codes: object["backup_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect(),
    }
}

/// True if `code` is a backup code: `xxxxx-xxxxx` from [`BACKUP_ALPHABET`].
pub(crate) fn is_backup_code(code: &str) -> bool {
    let Some((a, b)) = code.split_once('-') else {
        return false;
    };
    [a, b]
        .iter()
        .all(|half| half.len() == 5 && half.chars().all(|c| BACKUP_ALPHABET.contains(c)))
}

/// The mode bits of a file.
pub(crate) fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Runs a referee tool, failing the test (never skipping it) if it is not installed.
#[track_caller]
fn referee(tool: &str, package: &str, args: &[&str]) -> std::process::Output {
    match Command::new(tool).args(args).stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "`{tool}` is not installed; these tests need it as an independent referee: \
             apt-get install {package} (or run scripts/install-test-deps)"
        ),
        Err(e) => panic!("cannot run {tool}: {e}"),
    }
}

/// `oathtool -b ARGS... SECRET`: the codes oathtool prints, one per line.
#[track_caller]
pub(crate) fn oathtool(secret: &str, args: &[&str]) -> Vec<String> {
    let mut all = vec!["-b"];
    all.extend_from_slice(args);
    all.push(secret);
    let out = referee("oathtool", "oathtool", &all);
    assert!(
        out.status.success(),
        "oathtool {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The current code by oathtool; `args` choose the kind (e.g. `--totp=sha256 --digits=8`).
#[track_caller]
pub(crate) fn code_now(secret: &str, args: &[&str]) -> String {
    let codes = oathtool(secret, args);
    assert_eq!(codes.len(), 1, "{codes:?}");
    codes[0].clone()
}

/// Every TOTP code from 3 steps ago to 3 steps ahead, by oathtool: a superset of what the
/// engine's ±1-step window could accept while a test runs.
#[track_caller]
pub(crate) fn totp_codes_around(secret: &str, args: &[&str], period: u64) -> BTreeSet<String> {
    let start = format!("@{}", now() - 3 * period);
    let mut all = args.to_vec();
    all.extend_from_slice(&["-N", &start, "-w", "6"]);
    oathtool(secret, &all).into_iter().collect()
}

/// A code of the right length that is guaranteed wrong: none of the codes oathtool gives for
/// the steps around now. Made by shifting each digit of the real code.
#[track_caller]
pub(crate) fn wrong_totp(secret: &str, args: &[&str], period: u64) -> String {
    let real = totp_codes_around(secret, args, period);
    let current = code_now(secret, args);
    for shift in 1..10u32 {
        let candidate: String = current
            .chars()
            .map(|c| char::from_digit((c.to_digit(10).unwrap() + shift) % 10, 10).unwrap())
            .collect();
        if !real.contains(&candidate) {
            return candidate;
        }
    }
    panic!("no wrong code found near {current}");
}

/// `zbarimg -q --raw FILE`: the decoded text, or the exit code and stderr.
#[track_caller]
pub(crate) fn zbarimg(path: &Path) -> Result<String, (i32, String)> {
    let out = referee(
        "zbarimg",
        "zbar-tools",
        &["-q", "--raw", path.to_str().unwrap()],
    );
    if out.status.success() {
        let text = String::from_utf8(out.stdout).unwrap();
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_owned())
    } else {
        Err((
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }
}

/// A parsed `otpauth://` URI, decoded by this test's own code (not sshield's parser).
#[derive(Debug)]
pub(crate) struct ParsedUri {
    pub kind: String,
    pub label_issuer: Option<String>,
    pub account: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `otpauth://KIND/[ISSUER:]ACCOUNT?k=v&...`, percent-decoding each part.
#[track_caller]
pub(crate) fn parse_uri(uri: &str) -> ParsedUri {
    let rest = uri.strip_prefix("otpauth://").expect("otpauth:// scheme");
    let (kind, rest) = rest.split_once('/').unwrap();
    let (label, query) = rest.split_once('?').unwrap();
    let (label_issuer, account) = match label.split_once(':') {
        Some((i, a)) => (Some(percent_decode(i)), percent_decode(a)),
        None => (None, percent_decode(label)),
    };
    let params = query
        .split('&')
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap();
            (k.to_owned(), percent_decode(v))
        })
        .collect();
    ParsedUri {
        kind: kind.to_owned(),
        label_issuer,
        account,
        params,
    }
}

/// Decodes `%XX` escapes; a URI part must not hold anything else outside unreserved ASCII.
#[track_caller]
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
            out.push(u8::from_str_radix(hex, 16).unwrap());
            i += 3;
        } else {
            assert!(
                b.is_ascii_alphanumeric() || b"-._~".contains(&b),
                "unencoded {:?} in URI part {text:?}",
                b as char
            );
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}
