//! A fleet on loopback, as issue 11 asks it proven: one `sshield-server` on SQLite and three
//! hosts, each a private sshd whose ForceCommand is `sshield login`, with its own daemon,
//! state dir and config joined with the real `sshield join`. One user, enrolled once on the
//! server, logs in with real `ssh` and codes from `oathtool`; the same code is refused on a
//! second host; a revoked host is refused; with the server stopped, `failmode` decides
//! (secure denies, safe lets in and logs it).
//!
//! Root only; elsewhere it skips, in CI it fails.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sshield_e2e::{can_run, keys, oathtool_totp as oathtool, Client, Sshd, SshdOptions, User};
use tempfile::TempDir;

const INTERNET: &str = "127.0.0.3";
const PROMPT: &str = "Verification code: ";

/// A child process stopped by its PID when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The fleet server: its state dir and process.
struct FleetServer {
    state: TempDir,
    url: String,
    process: Option<Running>,
}

impl FleetServer {
    fn start() -> Self {
        let state = tempfile::tempdir().unwrap();
        let mut child = Command::new(sshield_e2e::server_binary())
            .arg("--state-dir")
            .arg(state.path())
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
            process: Some(process),
        }
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(sshield_e2e::server_binary())
            .arg("--state-dir")
            .arg(self.state.path())
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "sshield-server {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn stop(&mut self) {
        self.process = None;
    }
}

/// One host: a world-readable dir with a copy of `sshield`, its config, store, socket, log,
/// key; its daemon; its sshd.
struct Host {
    dir: TempDir,
    bin: PathBuf,
    config: PathBuf,
    daemon: Option<Running>,
    sshd: Sshd,
}

impl Host {
    /// A host with `failmode`, joined to `server` as `name`, its daemon and sshd started.
    fn join(server: &FleetServer, name: &str, failmode: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sshield-e2e-fleet.")
            .tempdir()
            .unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("sshield");
        sshield_e2e::copy_executable(&sshield_e2e::artefacts().cli, &bin);
        let store = dir.path().join("users");
        fs::create_dir(&store).unwrap();
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).unwrap();
        let config = dir.path().join("sshield.toml");
        fs::write(
            &config,
            format!(
                "# host {name}\nstore = \"users\"\nsocket = \"{}\"\nlog_file = \"{}\"\n\
                 failmode = \"{failmode}\"\n\n[rate_limit]\ndelay = \"0s\"\n",
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

    fn start_daemon(&mut self) {
        let child = Command::new(&self.bin)
            .arg("--config")
            .arg(&self.config)
            .arg("daemon")
            .arg("--syslog-socket")
            .arg(self.dir.path().join("no-syslog"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(Running(child));
        let socket = self.dir.path().join("sshield.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            assert!(Instant::now() < deadline, "the daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshield.log")).unwrap_or_default()
    }

    fn ssh(&self, user: &User) -> Client {
        Client::ssh(&self.sshd, user).key(user.key()).from(INTERNET)
    }

    /// An interactive login typing `code`: the shell's answer, or what the helper said.
    fn login(&self, user: &User, code: &str, expect: &str) -> bool {
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

#[test]
fn one_user_enrolled_once_logs_in_across_a_fleet_of_three() {
    if !can_run() {
        return;
    }
    let mut server = FleetServer::start();
    let user = User::create();
    let name = user.name();
    // Enrolled once, on the server; confirmed with the current code.
    let enrolled = server.cli(&["user", "enroll", name, "--no-qr"]);
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
    server.cli(&["user", "confirm", name, &oathtool(&secret, 0)]);

    let web1 = Host::join(&server, "web1", "secure");
    let web2 = Host::join(&server, "web2", "safe");
    let web3 = Host::join(&server, "web3", "secure");

    // The next step's code logs in on web1 ...
    let code = oathtool(&secret, 30);
    let mut s = web1.ssh(&user).tty().spawn();
    s.expect(PROMPT);
    s.send_line(&code);
    s.send_line("echo fleet-$((40 + 2))");
    s.expect("fleet-42");
    s.send_line("exit");
    assert!(s.wait().success());
    let allow =
        format!("allow user={name} rhost={INTERNET} service=sshield-login method=totp reason=ok");
    assert!(web1.log().contains(&allow), "{}", web1.log());

    // ... and is refused on web2: replay across the fleet.
    assert!(!web2.login(&user, &code, "sshield: code already used"));
    assert!(web2.log().contains("reason=replayed"), "{}", web2.log());

    // web3 takes a backup code, once.
    let mut s = web3.ssh(&user).tty().spawn();
    s.expect(PROMPT);
    s.send_line(&backup[0]);
    s.send_line("echo fleet-$((40 + 2))");
    s.expect("fleet-42");
    s.send_line("exit");
    assert!(s.wait().success());
    assert!(
        web3.log().contains("method=backup reason=ok"),
        "{}",
        web3.log()
    );

    // Revoked: web3 is refused by the server, and the login with it.
    server.cli(&["host", "revoke", "web3"]);
    assert!(!web3.login(
        &user,
        &backup[1],
        "this server cannot check codes right now"
    ));
    assert!(
        web3.log().contains("reason=server-refused") && web3.log().contains("revoked"),
        "{}",
        web3.log()
    );

    // The server stopped: secure web1 denies, safe web2 lets in, both logged as failmode.
    server.stop();
    assert!(!web1.login(
        &user,
        &backup[2],
        "the authentication server cannot be reached"
    ));
    assert!(web1.log().contains(&format!("deny user={name} rhost={INTERNET} service=sshield-login method=none reason=unreachable")), "{}", web1.log());
    let mut s = web2.ssh(&user).tty().spawn();
    s.expect(PROMPT);
    s.send_line(&backup[2]);
    s.send_line("echo fleet-$((40 + 2))");
    s.expect("fleet-42");
    s.send_line("exit");
    assert!(s.wait().success());
    assert!(
        web2.log().contains(&format!("allow user={name} rhost={INTERNET} service=sshield-login method=none reason=failmode-safe")),
        "{}",
        web2.log()
    );
}
