//! A fleet on loopback for end-to-end tests and benchmarks: the `sshield-server` (SQLite, or
//! any `--database`), hosts whose sshd hands logins to `sshield login` (ForceCommand) with their
//! own daemon, joined with the real `sshield join`, and the user's phone as a client of the
//! device API (what the phone's web page calls, with the device's bearer token).
//!
//! Every process started here is stopped by its PID when its value is dropped.
#![allow(
    clippy::unwrap_used,
    reason = "a test harness: a failed step panics with the reason, failing the test"
)]

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::{keys, oathtool_totp as oathtool, Client, Sshd, SshdOptions, User};

/// The source address of "the internet" in fleet tests.
pub const INTERNET: &str = "127.0.0.3";
/// The code prompt of the hosts here.
pub const PROMPT: &str = "Verification code: ";

/// A child process stopped by its PID when dropped.
#[derive(Debug)]
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fleet server: its state dir and process.
#[derive(Debug)]
pub struct FleetServer {
    /// Its state dir (the SQLite file, the record key, the VAPID key, `server.toml`), shared
    /// by replicas.
    pub state: Arc<TempDir>,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub url: String,
    /// `--database`, if not the SQLite file in the state dir.
    database: Option<String>,
    process: Option<Running>,
}

impl FleetServer {
    /// A server on SQLite with the default config.
    pub fn start() -> Self {
        Self::start_with("")
    }

    /// A server on SQLite whose config file holds `config`.
    pub fn start_with(config: &str) -> Self {
        let state = Arc::new(tempfile::tempdir().unwrap());
        fs::write(state.path().join("server.toml"), config).unwrap();
        Self::serve(state, None)
    }

    /// A server on `database` (`postgres://...`) whose config file holds `config`.
    pub fn start_on(config: &str, database: &str) -> Self {
        let state = Arc::new(tempfile::tempdir().unwrap());
        fs::write(state.path().join("server.toml"), config).unwrap();
        Self::serve(state, Some(database.to_owned()))
    }

    /// Another replica of this server: the same database, state dir and config, its own
    /// process and port.
    pub fn replica(&self) -> Self {
        Self::serve(Arc::clone(&self.state), self.database.clone())
    }

    fn serve(state: Arc<TempDir>, database: Option<String>) -> Self {
        let mut command = Command::new(crate::server_binary());
        command
            .arg("--state-dir")
            .arg(state.path())
            .env("SSHIELD_SERVER_CONFIG", state.path().join("server.toml"));
        if let Some(database) = &database {
            command.args(["--database", database]);
        }
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("SSHIELD_SERVER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut banner = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut banner)
            .unwrap();
        let process = Running(child);
        let url = banner.trim().rsplit(' ').next().unwrap().to_owned();
        assert!(url.starts_with("http://127.0.0.1:"), "{banner}");
        Self {
            state,
            url,
            database,
            process: Some(process),
        }
    }

    /// Runs `sshield-server ARGS` on this server's state and database: its stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let mut command = Command::new(crate::server_binary());
        command.arg("--state-dir").arg(self.state.path()).env(
            "SSHIELD_SERVER_CONFIG",
            self.state.path().join("server.toml"),
        );
        if let Some(database) = &self.database {
            command.args(["--database", database]);
        }
        let out = command.args(args).output().unwrap();
        assert!(out.status.success(), "sshield-server {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// Stops the server (by its PID).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Enrolls `name` on the server, confirmed with the current code: the secret and the
    /// backup codes.
    pub fn enroll(&self, name: &str) -> (String, Vec<String>) {
        let enrolled = self.cli(&["user", "enroll", name, "--no-qr"]);
        let uri = enrolled
            .lines()
            .find(|l| l.starts_with("otpauth://"))
            .unwrap();
        let secret = uri
            .split(['?', '&'])
            .find_map(|p| p.strip_prefix("secret="))
            .unwrap()
            .to_owned();
        let backup: Vec<String> = enrolled
            .lines()
            .skip_while(|l| !l.starts_with("Backup codes"))
            .skip(1)
            .take_while(|l| l.starts_with("  "))
            .map(|l| l.trim().to_owned())
            .collect();
        assert!(backup.len() >= 3, "{enrolled}");
        self.cli(&["user", "confirm", name, &oathtool(&secret, 0)]);
        (secret, backup)
    }
}

/// Starts `sshield --config CONFIG daemon` and waits until it listens on `socket`.
pub fn start_daemon(
    bin: &std::path::Path,
    config: &std::path::Path,
    socket: &std::path::Path,
) -> Running {
    let child = Command::new(bin)
        .arg("--config")
        .arg(config)
        .arg("daemon")
        .arg("--syslog-socket")
        .arg(socket.with_extension("no-syslog"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Running(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(socket).is_err() {
        assert!(Instant::now() < deadline, "the daemon did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    daemon
}

/// One host: a world-readable dir with a copy of `sshield`, its config, store, socket, log,
/// key; its daemon; its sshd.
#[derive(Debug)]
pub struct Host {
    /// Its world-readable dir.
    pub dir: TempDir,
    /// Its copy of `sshield`.
    pub bin: PathBuf,
    /// Its config.
    pub config: PathBuf,
    /// Its daemon (`None` once stopped).
    pub daemon: Option<Running>,
    /// Its sshd.
    pub sshd: Sshd,
}

impl Host {
    /// A host with `failmode`, joined to `server` as `name`, its daemon and sshd started.
    pub fn join(server: &FleetServer, name: &str, failmode: &str) -> Self {
        Self::join_with(server, name, failmode, "")
    }

    /// As [`Host::join`], with `extra` at the end of the host's config.
    pub fn join_with(server: &FleetServer, name: &str, failmode: &str, extra: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sshield-e2e-fleet.")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("sshield");
        crate::copy_executable(&crate::artefacts().cli, &bin);
        let store = dir.path().join("users");
        fs::create_dir(&store).unwrap();
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
        let config = dir.path().join("sshield.toml");
        fs::write(
            &config,
            format!(
                "# host {name}\nstore = \"users\"\nsocket = \"{}\"\nlog_file = \"{}\"\n\
                 failmode = \"{failmode}\"\n\n[rate_limit]\ndelay = \"0s\"\n{extra}",
                dir.path().join("sshield.sock").display(),
                dir.path().join("sshield.log").display()
            ),
        )
        .unwrap();
        fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).unwrap();
        let token = server.cli(&["host", "add", name]);
        let token = token.lines().next().unwrap();
        let out = Command::new(&bin)
            .arg("--config")
            .arg(&config)
            .args(["join", &server.url, token, "--name", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "sshield join: {out:?}");
        let sshd = Sshd::start(SshdOptions::new().config(vec![
            "AuthenticationMethods publickey".to_owned(),
            format!(
                "ForceCommand {} --config {} login",
                bin.display(),
                config.display()
            ),
            "DisableForwarding yes".to_owned(),
        ]));
        let mut host = Self {
            dir,
            bin,
            config,
            daemon: None,
            sshd,
        };
        host.start_daemon();
        host
    }

    pub fn start_daemon(&mut self) {
        self.daemon = Some(start_daemon(
            &self.bin,
            &self.config,
            &self.dir.path().join("sshield.sock"),
        ));
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshield.log")).unwrap_or_default()
    }

    pub fn ssh(&self, user: &User) -> Client {
        Client::ssh(&self.sshd, user).key(user.key()).from(INTERNET)
    }

    /// An interactive login typing `code`: the shell's answer, or what the helper said.
    pub fn login(&self, user: &User, code: &str, expect: &str) -> bool {
        let mut s = self.ssh(user).tty().spawn();
        s.expect(PROMPT);
        s.send_line(code);
        s.expect(expect);
        if expect == "fleet-42" {
            s.send_line("exit");
        } else {
            s.send(keys::CTRL_C);
        }
        s.wait().success()
    }
}

/// The user's phone, as its web page calls the server: a device with a bearer token, listing
/// pending requests and deciding them, over plain HTTP/1.1 on loopback.
#[derive(Debug, Clone)]
pub struct Phone {
    /// `127.0.0.1:PORT`.
    addr: String,
    token: String,
}

impl Phone {
    /// Adds a device for `user` on `server` (`sshield-server push add-device`).
    pub fn add(server: &FleetServer, user: &str) -> Self {
        let out = server.cli(&["push", "add-device", user, "phone"]);
        Self {
            addr: server.url.trim_start_matches("http://").to_owned(),
            token: out.lines().next().unwrap().trim().to_owned(),
        }
    }

    /// One request with the device's token: the status and the body.
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let body = body.unwrap_or("");
        let mut stream = TcpStream::connect(&self.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        let status = reply
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = reply
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    }

    /// `GET /v1/me/approvals`.
    pub fn list(&self) -> String {
        let (status, body) = self.request("GET", "/v1/me/approvals", None);
        assert_eq!(status, 200, "{body}");
        body
    }

    /// The newest pending request, waiting up to 10 s for one: its id, and the whole list.
    pub fn pending(&self) -> (String, String) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let list = self.list();
            if let Some(at) = list.find("\"id\":\"") {
                let rest = &list[at + 6..];
                let id = rest.split('"').next().unwrap().to_owned();
                return (id, list);
            }
            assert!(Instant::now() < deadline, "no pending request: {list}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `POST /v1/me/approvals/{id}` with `body`: the answer's body.
    pub fn decide(&self, id: &str, body: &str) -> String {
        let (status, reply) = self.request("POST", &format!("/v1/me/approvals/{id}"), Some(body));
        assert!(status == 200 || status == 404, "{status} {reply}");
        reply
    }

    /// Approves request `id` with `number`.
    pub fn approve(&self, id: &str, number: &str) -> String {
        self.decide(
            id,
            &format!("{{\"decision\":\"approve\",\"number\":{number}}}"),
        )
    }
}
