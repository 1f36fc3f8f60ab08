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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tempfile::TempDir;

use crate::passkey::SoftPasskey;
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

/// The origin the phone's passkey is registered for: the servers here are told it is their
/// `push.public_url` (passkeys need a host name; the test phone talks to 127.0.0.1 and says
/// this origin, as a browser behind a reverse proxy would).
pub const PUBLIC_URL: &str = "https://sshield.test";

/// `config` with `push.public_url` set to [`PUBLIC_URL`], unless it sets its own.
fn with_public_url(config: &str) -> String {
    if config.contains("public_url") {
        return config.to_owned();
    }
    let key = format!("public_url = \"{PUBLIC_URL}\"\n");
    match config.find("[push]\n") {
        Some(at) => {
            let (head, tail) = config.split_at(at + "[push]\n".len());
            format!("{head}{key}{tail}")
        }
        None => format!("{config}\n[push]\n{key}"),
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
        fs::write(state.path().join("server.toml"), with_public_url(config)).unwrap();
        Self::serve(state, None, "127.0.0.1:0")
    }

    /// A server on SQLite on `listen` (`127.0.0.1:PORT`) whose config file holds `config`
    /// (with its own `push.public_url` if it names one: a browser test's `http://localhost:PORT`).
    pub fn start_listening(config: &str, listen: &str) -> Self {
        let state = Arc::new(tempfile::tempdir().unwrap());
        fs::write(state.path().join("server.toml"), with_public_url(config)).unwrap();
        Self::serve(state, None, listen)
    }

    /// A server on `database` (`postgres://...`) whose config file holds `config`.
    pub fn start_on(config: &str, database: &str) -> Self {
        let state = Arc::new(tempfile::tempdir().unwrap());
        fs::write(state.path().join("server.toml"), with_public_url(config)).unwrap();
        Self::serve(state, Some(database.to_owned()), "127.0.0.1:0")
    }

    /// Another replica of this server: the same database, state dir and config, its own
    /// process and port.
    pub fn replica(&self) -> Self {
        Self::serve(
            Arc::clone(&self.state),
            self.database.clone(),
            "127.0.0.1:0",
        )
    }

    /// Starts the stopped server again, on its port, with its state and database.
    pub fn restart(&mut self) {
        let listen = self.url.trim_start_matches("http://").to_owned();
        *self = Self::serve(Arc::clone(&self.state), self.database.clone(), &listen);
    }

    fn serve(state: Arc<TempDir>, database: Option<String>, listen: &str) -> Self {
        let mut command = Command::new(crate::server_binary());
        command
            .arg("--state-dir")
            .arg(state.path())
            .env("SSHIELD_SERVER_CONFIG", state.path().join("server.toml"));
        if let Some(database) = &database {
            command.args(["--database", database]);
        }
        let mut child = command
            .args(["serve", "--listen", listen])
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
        Self::join_as(server, name, failmode, extra, "", &[])
    }

    /// As [`Host::join`], with `urls` (the server's replicas, tried in this order) in its
    /// config in place of the one it joined through.
    pub fn join_listing(server: &FleetServer, name: &str, failmode: &str, urls: &[&str]) -> Self {
        Self::join_as(server, name, failmode, "", "", urls)
    }

    /// A host with `extra` at the end of its config before it joins, `server_keys` added to
    /// the `[server]` section `sshield join` writes (the last in the file), and `urls` in
    /// place of the joined URL unless empty.
    pub fn join_as(
        server: &FleetServer,
        name: &str,
        failmode: &str,
        extra: &str,
        server_keys: &str,
        urls: &[&str],
    ) -> Self {
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
        let joined = fs::read_to_string(&config).unwrap();
        assert!(joined.contains("[server]"), "{joined}");
        let listed = format!("urls = {urls:?}");
        let rewritten: Vec<&str> = joined
            .lines()
            .map(|l| {
                if !urls.is_empty() && l.starts_with("urls = ") {
                    listed.as_str()
                } else {
                    l
                }
            })
            .collect();
        fs::write(&config, rewritten.join("\n") + "\n" + server_keys).unwrap();
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

    /// `sshield log ARGS` on this host, as root: its stdout.
    pub fn sshield_log(&self, args: &[&str]) -> String {
        let out = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("log")
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "sshield log {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    /// `sshield log ARGS` until its output holds each of `wanted` (the daemon reports every
    /// few seconds once the server is back): the last output.
    pub fn wait_for_log(&self, args: &[&str], wanted: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = self.sshield_log(args);
            if wanted.iter().all(|w| out.contains(w)) {
                return out;
            }
            assert!(Instant::now() < deadline, "never {wanted:?} in:\n{out}");
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Logs in typing `code`, expecting the shell.
    pub fn login_ok(&self, user: &User, code: &str) {
        assert!(self.login(user, code, "fleet-42"), "{}", self.log());
    }

    pub fn ssh(&self, user: &User) -> Client {
        Client::ssh(&self.sshd, user).key(user.key()).from(INTERNET)
    }

    /// An interactive login typing `code`: the shell's answer, or what the helper said.
    pub fn login(&self, user: &User, code: &str, expect: &str) -> bool {
        let mut s = self.ssh(user).tty().spawn();
        s.expect(PROMPT);
        s.send_line(code);
        if expect == "fleet-42" {
            s.send_line("echo fleet-$((40 + 2))");
        }
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
    /// Its passkey, which every approval asks (shared by the clones a test hands threads).
    passkey: Arc<Mutex<SoftPasskey>>,
}

impl Phone {
    /// Enrolls a phone for `user` on `server` as the web page does: an enrollment link from
    /// the admin (`sshield-server push enroll-link`), a passkey registered with it, the
    /// device's bearer token in return.
    pub fn add(server: &FleetServer, user: &str) -> Self {
        let out = server.cli(&["push", "enroll-link", user]);
        let link = out.lines().find(|l| l.contains("/enroll#")).unwrap();
        let link = link.rsplit('#').next().unwrap().trim().to_owned();
        let mut phone = Self {
            addr: server.url.trim_start_matches("http://").to_owned(),
            token: String::new(),
            passkey: Arc::new(Mutex::new(SoftPasskey::new(7, PUBLIC_URL))),
        };
        let begin = json!({ "token": link }).to_string();
        let (status, options) = phone.request("POST", "/v1/enroll/passkey", Some(&begin));
        assert_eq!(status, 200, "{options}");
        let options: Value = serde_json::from_str(&options).unwrap();
        let credential = phone.passkey.lock().unwrap().register(&options);
        let finish = json!({ "token": link, "name": "phone", "passkey": credential }).to_string();
        let (status, enrolled) = phone.request("POST", "/v1/enroll", Some(&finish));
        assert_eq!(status, 201, "{enrolled}");
        let enrolled: Value = serde_json::from_str(&enrolled).unwrap();
        assert_eq!(enrolled["passkey"], true, "{enrolled}");
        phone.token = enrolled["token"].as_str().unwrap().to_owned();
        phone
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

    /// `POST /v1/me/approvals/{id}` with `body`: the answer's body. An approval carries a
    /// fresh passkey assertion for that request, as the page gets it (its challenge first).
    pub fn decide(&self, id: &str, body: &str) -> String {
        let mut body: Value = serde_json::from_str(body).unwrap();
        if body["decision"] == "approve" {
            let (status, options) =
                self.request("POST", &format!("/v1/me/approvals/{id}/challenge"), None);
            if status != 200 {
                // A request already decided or expired: the decision's own answer says so.
                assert_eq!(status, 404, "{options}");
            } else {
                let options: Value = serde_json::from_str(&options).unwrap();
                body["assertion"] = self.passkey.lock().unwrap().assert(&options);
            }
        }
        let body = body.to_string();
        let (status, reply) = self.request("POST", &format!("/v1/me/approvals/{id}"), Some(&body));
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
