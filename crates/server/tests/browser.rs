//! The phone's web app in real Chromium (Debian's), driven by Playwright with a DevTools
//! virtual authenticator for the passkey (tests/browser.py). This test starts the server and
//! plays the SSH host and the admin: the script asks for a push, a wait, an enrollment link,
//! a revocation or the audit, and this side answers with signed host requests and the CLI.
//! Screenshots of each page at a phone's viewport are left in target/artifacts/browser/.
//!
//! Chromium and Playwright come from scripts/install-test-deps; without them this test fails
//! (it is never skipped).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::server::{cli, enroll_confirmed, oathtool, state_dir, verify_body, Server, TestHost};

/// How long a request waits for the phone, and an enrollment link lasts, in this test.
const APPROVAL_TTL: u64 = 10;
const LINK_TTL: u64 = 30;

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn artifacts() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; the artifacts go beside it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir")
        .join("artifacts/browser");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// What the script asks of the host and the admin.
struct HostSide<'a> {
    server: &'a Server,
    host: TestHost,
    state: &'a Path,
    global: Vec<&'a str>,
}

impl HostSide<'_> {
    fn cli(&self, args: &[&str]) -> String {
        let (ok, out, err) = cli(self.state, &self.global, args);
        assert!(ok, "sshield-server {args:?}: {err}");
        out
    }

    fn answer(&self, ask: &Value) -> Value {
        let user = ask["user"].as_str().unwrap_or("alice");
        match ask["ask"].as_str().unwrap_or("") {
            "enroll-link" => {
                let out = self.cli(&["push", "enroll-link", user]);
                json!({"link": out.lines().next().expect("a link")})
            }
            "push" => {
                let body = json!({"user": user, "source": "203.0.113.9", "service": "sshd",
                    "command": ask["command"]});
                let (status, answer) = self.host.post(self.server, "/v1/push", &body.to_string());
                let mut answer: Value = serde_json::from_str(&answer).expect("JSON");
                answer["status"] = json!(status);
                answer
            }
            "wait" => {
                let body = json!({"id": ask["id"]}).to_string();
                let (status, answer) = self.host.post(self.server, "/v1/push/wait", &body);
                assert_eq!(status, 200, "{answer}");
                serde_json::from_str(&answer).expect("JSON")
            }
            "verify" => {
                // The app's code of the next step: the confirmation used this step's.
                let secret = ask["secret"].as_str().expect("a secret");
                let code = oathtool(secret, 30);
                let (status, answer) =
                    self.host
                        .post(self.server, "/v1/verify", &verify_body(user, &code));
                assert_eq!(status, 200, "{answer}");
                serde_json::from_str(&answer).expect("JSON")
            }
            "revoke-device" => {
                let id = ask["device"].as_str().expect("a device id");
                let out = self.cli(&["push", "revoke-device", user, id]);
                json!({"ok": true, "said": out})
            }
            "devices" => {
                let out = self.cli(&["push", "devices", user]);
                json!({"count": out.lines().count()})
            }
            "audit" => {
                let out = self.cli(&["audit", "--user", user, "--json"]);
                let entries: Vec<Value> = out
                    .lines()
                    .map(|l| serde_json::from_str(l).expect("JSON line"))
                    .collect();
                json!({ "entries": entries })
            }
            other => panic!("the script asked for {other:?}"),
        }
    }
}

#[test]
fn the_phone_enrolls_and_approves_in_chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is missing: run scripts/install-test-deps"
    );
    let (tmp, state) = state_dir();
    let port = free_port();
    // Browsers allow passkeys for a host name, never an IP address: the server calls itself
    // localhost, which Chromium also takes as a secure context over plain HTTP.
    let base = format!("http://localhost:{port}");
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!(
            "[push]\npublic_url = \"{base}\"\napproval_ttl = \"{APPROVAL_TTL}s\"\n\
             enroll_link_ttl = \"{LINK_TTL}s\"\nmax_wait = \"1s\"\n"
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let global = vec!["--config", config.as_str()];
    let listen = format!("127.0.0.1:{port}");
    let server = Server::start(&state, &global, &["--listen", &listen]);
    enroll_confirmed(&state, &global, "alice");
    let host = TestHost::new("web1", 7);
    host.join(&server, &state, &global);
    let side = HostSide {
        server: &server,
        host,
        state: &state,
        global,
    };

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .env("SSHIELD_BASE", &base)
        .env("SSHIELD_ARTIFACTS", artifacts())
        .env("SSHIELD_APPROVAL_TTL", APPROVAL_TTL.to_string())
        .env("SSHIELD_LINK_TTL", LINK_TTL.to_string())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run python3 tests/browser.py (scripts/install-test-deps installs Playwright)");
    let mut to_script = child.stdin.take().expect("stdin");
    let from_script = BufReader::new(child.stdout.take().expect("stdout"));
    let mut done = None;
    for line in from_script.lines() {
        let line = line.expect("read the script");
        let message: Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
        if message.get("done").is_some() {
            done = Some(message);
            continue;
        }
        let answer = side.answer(&message);
        writeln!(to_script, "{answer}").expect("answer the script");
    }
    let status = child.wait().expect("the script");
    assert!(status.success(), "tests/browser.py failed: {status}");
    let done = done.expect("the script finished its checks");
    assert!(done["checks"].as_u64().is_some_and(|n| n >= 36), "{done}");
}
