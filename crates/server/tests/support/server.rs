//! A running `sshield-server` and a minimal HTTP/1.1 client for it (requests are few and
//! small; a client crate would add more than it tests).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The binary under test.
pub(crate) fn binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sshield-server"))
}

/// A server process, stopped (by its PID) when dropped.
pub(crate) struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The line it printed: `listening on http://...`.
    pub banner: String,
}

impl Server {
    /// Starts `sshield-server [global] serve [serve_args]` and waits for its banner.
    pub(crate) fn start(state_dir: &Path, global: &[&str], serve_args: &[&str]) -> Self {
        // Warnings and errors only: a test's output stays readable.
        Self::start_logging(state_dir, global, serve_args, "warn", Stdio::inherit())
    }

    /// [`Server::start`] with the log level `level` and the log lines sent to `logs`.
    pub(crate) fn start_logging(
        state_dir: &Path,
        global: &[&str],
        serve_args: &[&str],
        level: &str,
        logs: impl Into<Stdio>,
    ) -> Self {
        let mut child = binary()
            .arg("--state-dir")
            .arg(state_dir)
            .args(global)
            .arg("serve")
            .args(serve_args)
            .env("SSHIELD_SERVER_LOG", level)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(logs)
            .spawn()
            .expect("start sshield-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut banner = String::new();
        BufReader::new(stdout)
            .read_line(&mut banner)
            .expect("read the banner");
        let addr = banner
            .trim()
            .rsplit("://")
            .next()
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("no address in the banner {banner:?}")
            });
        Self {
            child,
            addr,
            banner,
        }
    }

    /// Starts a server on 127.0.0.1 over TLS with test certificates made in `certs`:
    /// the server and the paths of `ca.crt`, `server.crt` and `server.key`.
    pub(crate) fn start_tls(state_dir: &Path, certs: &Path) -> (Self, [PathBuf; 3]) {
        crate::support::tls::certificates(certs);
        let files = ["ca.crt", "server.crt", "server.key"].map(|f| certs.join(f));
        let [_, cert, key] = &files;
        let server = Self::start(
            state_dir,
            &[],
            &[
                "--listen",
                "127.0.0.1:0",
                "--tls-cert",
                cert.to_str().expect("utf-8"),
                "--tls-key",
                key.to_str().expect("utf-8"),
            ],
        );
        (server, files)
    }

    /// Sends one request and returns (status, body).
    pub(crate) fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        request(self.addr, method, path, headers, body)
    }

    /// POSTs `body` with these (signature) headers and content type.
    pub(crate) fn post_with(
        &self,
        path: &str,
        headers: &[(&'static str, String)],
        content_type: &str,
        body: &[u8],
    ) -> (u16, String) {
        let mut refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refs.push(("content-type", content_type));
        self.request("POST", path, &refs, body)
    }

    /// POSTs a JSON body as the device that signs in with `token` (a bearer token).
    pub(crate) fn post_as(&self, token: &str, path: &str, body: &str) -> (u16, String) {
        let auth = format!("Bearer {token}");
        self.request(
            "POST",
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    /// POSTs a JSON body.
    pub(crate) fn post_json(&self, path: &str, body: &str) -> (u16, String) {
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close`; (status, body).
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).expect("send head");
    // The server may answer (413) before reading a large body and close; that is fine.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A temp state dir and its path.
pub(crate) fn state_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("state");
    (dir, path)
}

/// Runs `sshield-server --state-dir STATE [global] args...`; (success, stdout, stderr).
pub(crate) fn cli(state_dir: &Path, global: &[&str], args: &[&str]) -> (bool, String, String) {
    let out = binary()
        .arg("--state-dir")
        .arg(state_dir)
        .args(global)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sshield-server");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The base32 secret in the otpauth:// URI that `user enroll` printed.
pub(crate) fn secret_of(enroll_output: &str) -> String {
    let uri = enroll_output
        .lines()
        .find(|l| l.starts_with("otpauth://"))
        .unwrap_or_else(|| panic!("no URI in {enroll_output:?}"));
    uri.split(['?', '&'])
        .find_map(|p| p.strip_prefix("secret="))
        .expect("secret= in the URI")
        .to_owned()
}

/// The backup codes `user enroll` or `user backup-codes` printed.
pub(crate) fn backup_codes_of(output: &str) -> Vec<String> {
    output
        .lines()
        .skip_while(|l| !l.starts_with("Backup codes"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The TOTP code of `secret` at now + `offset` seconds, from oathtool (the reference).
pub(crate) fn oathtool(secret: &str, offset: i64) -> String {
    sshield_e2e::oathtool_totp(secret, offset)
}

/// Enrolls `name` and confirms it with the current code: the user's secret.
pub(crate) fn enroll_confirmed(state_dir: &Path, global: &[&str], name: &str) -> String {
    let (ok, out, err) = cli(state_dir, global, &["user", "enroll", name, "--no-qr"]);
    assert!(ok, "{err}");
    let secret = secret_of(&out);
    let code = oathtool(&secret, 0);
    let (ok, _, err) = cli(state_dir, global, &["user", "confirm", name, &code]);
    assert!(ok, "{err}");
    secret
}

/// A host as the tests play it: a name and an ed25519 key.
pub(crate) struct TestHost {
    /// Its name.
    pub name: String,
    /// Its signing key.
    pub key: ed25519_dalek::SigningKey,
}

impl TestHost {
    /// A host with a fixed key made from `seed`.
    pub(crate) fn new(name: &str, seed: u8) -> Self {
        Self {
            name: name.to_owned(),
            key: ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
        }
    }

    /// Its public key as `/v1/join` takes it.
    pub(crate) fn public_key(&self) -> String {
        data_encoding::BASE64.encode(self.key.verifying_key().as_bytes())
    }

    /// Makes a join token with the CLI and joins with it.
    pub(crate) fn join(&self, server: &Server, state_dir: &Path, global: &[&str]) {
        let (ok, out, err) = cli(state_dir, global, &["host", "add", &self.name]);
        assert!(ok, "{err}");
        let token = out.lines().next().expect("a token").to_owned();
        let body = serde_json::json!({
            "token": token, "name": self.name, "public_key": self.public_key()
        });
        let (status, answer) = server.post_json("/v1/join", &body.to_string());
        assert_eq!(status, 200, "{answer}");
    }

    /// The signature headers for a request at `timestamp` with `nonce`.
    pub(crate) fn headers(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
        timestamp: i64,
        nonce: &str,
    ) -> Vec<(&'static str, String)> {
        sshield_wire::signed::sign(&self.key, &self.name, method, path, body, timestamp, nonce)
    }

    /// POSTs `body` as JSON, signed now with a fresh nonce.
    pub(crate) fn post(&self, server: &Server, path: &str, body: &str) -> (u16, String) {
        let headers = self.headers("POST", path, body.as_bytes(), now(), &fresh_nonce());
        server.post_with(path, &headers, "application/json", body.as_bytes())
    }
}

/// `host`'s `POST /v1/push/wait` for request `id` on the server at `addr`, in a thread:
/// (status, body), and when the answer came.
pub(crate) fn wait_in_background(
    addr: SocketAddr,
    host: TestHost,
    id: &str,
) -> std::thread::JoinHandle<((u16, String), std::time::Instant)> {
    let body = serde_json::json!({ "id": id }).to_string();
    std::thread::spawn(move || {
        let headers = host.headers(
            "POST",
            "/v1/push/wait",
            body.as_bytes(),
            now(),
            &fresh_nonce(),
        );
        let mut refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refs.push(("content-type", "application/json"));
        let answer = request(addr, "POST", "/v1/push/wait", &refs, body.as_bytes());
        (answer, std::time::Instant::now())
    })
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("fits")
}

/// A random nonce.
pub(crate) fn fresh_nonce() -> String {
    let mut bytes = [0u8; 16];
    getrandom::getrandom(&mut bytes).expect("random");
    data_encoding::HEXLOWER.encode(&bytes)
}

/// A verification request body, from 192.0.2.9.
pub(crate) fn verify_body(user: &str, code: &str) -> String {
    verify_from(user, code, "192.0.2.9")
}

/// A verification request body from `source`.
pub(crate) fn verify_from(user: &str, code: &str, source: &str) -> String {
    serde_json::json!({"user": user, "code": code, "source": source, "service": "sshd"}).to_string()
}
