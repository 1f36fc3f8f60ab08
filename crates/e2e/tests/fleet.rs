//! A fleet on loopback, as issue 11 asks it proven: one `sshield-server` on SQLite and three
//! hosts, each a private sshd whose ForceCommand is `sshield login`, with its own daemon,
//! state dir and config joined with the real `sshield join`. One user, enrolled once on the
//! server, logs in with real `ssh` and codes from `oathtool`; the same code is refused on a
//! second host; a revoked host is refused; with the server stopped, `failmode` decides
//! (secure denies, safe lets in and logs it).
//!
//! The PAM module's fleet mode too: a private sshd whose keyboard-interactive step is
//! pam_sshield.so, on a host joined the same way; the module asks the host's daemon over its
//! socket, and the daemon asks the server.
//!
//! At scale: two replicas on a throwaway PostgreSQL, three hosts listing both, 50 users and
//! 50 simultaneous logins, then the same 50 codes refused as replays.
//!
//! Root only; elsewhere it skips, in CI it fails.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod common;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, Instant};

use sshield_e2e::{
    can_run, keys, oathtool_totp as oathtool, Client, Postgres, Sshd, SshdOptions, User,
};
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

/// The fleet server: its state dir, the arguments before the subcommand (`--database`,
/// `--config`) and its process. Replicas share the state dir (the record key) and the
/// database.
struct FleetServer {
    state: Rc<TempDir>,
    global: Vec<String>,
    url: String,
    process: Option<Running>,
}

impl FleetServer {
    /// A lone server on its SQLite file.
    fn start() -> Self {
        Self::start_with("")
    }

    /// A lone server on its SQLite file, with `config` as its config file.
    fn start_with(config: &str) -> Self {
        let state = tempfile::tempdir().unwrap();
        let path = state.path().join("server.toml");
        fs::write(&path, config).unwrap();
        let global = vec!["--config".to_owned(), path.display().to_string()];
        Self::serve(Rc::new(state), global)
    }

    /// A server with `global` arguments (a database, a config) on the `state` dir.
    fn serve(state: Rc<TempDir>, global: Vec<String>) -> Self {
        Self::serve_on(state, global, "127.0.0.1:0")
    }

    /// As [`FleetServer::serve`], on `listen`, waiting for the banner.
    fn serve_on(state: Rc<TempDir>, global: Vec<String>, listen: &str) -> Self {
        let mut child = Command::new(sshield_e2e::server_binary())
            .arg("--state-dir")
            .arg(state.path())
            .args(&global)
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
            global,
            url,
            process: Some(process),
        }
    }

    /// Starts the stopped server again, on its port and with its database.
    fn restart(&mut self) {
        let listen = self.url.trim_start_matches("http://").to_owned();
        *self = Self::serve_on(Rc::clone(&self.state), self.global.clone(), &listen);
    }

    /// Another replica: the same state dir and database, its own process and port.
    fn replica(&self) -> Self {
        Self::serve(Rc::clone(&self.state), self.global.clone())
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(sshield_e2e::server_binary())
            .arg("--state-dir")
            .arg(self.state.path())
            .args(&self.global)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "sshield-server {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    fn stop(&mut self) {
        self.process = None;
    }

    /// Enrolls `name` on the server, confirmed with the current code: the secret and the
    /// backup codes.
    fn enroll(&self, name: &str) -> (String, Vec<String>) {
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
fn start_daemon(
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
        Self::join_as(server, name, failmode, &[&server.url], "")
    }

    /// As [`Host::join`], with `server_keys` added to the `[server]` section `sshield join`
    /// wrote (the last in the file).
    fn join_with(server: &FleetServer, name: &str, failmode: &str, server_keys: &str) -> Self {
        Self::join_as(server, name, failmode, &[&server.url], server_keys)
    }

    /// As [`Host::join`], with `urls` (the server's replicas, tried in this order) in its
    /// config in place of the one it joined through.
    fn join_listing(server: &FleetServer, name: &str, failmode: &str, urls: &[&str]) -> Self {
        Self::join_as(server, name, failmode, urls, "")
    }

    /// A host listing `urls`, with `server_keys` added to its `[server]` section.
    fn join_as(
        server: &FleetServer,
        name: &str,
        failmode: &str,
        urls: &[&str],
        server_keys: &str,
    ) -> Self {
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
        let joined = fs::read_to_string(&config).unwrap();
        assert!(joined.contains("[server]"), "{joined}");
        let listed = format!("urls = {urls:?}");
        let rewritten: Vec<&str> = joined
            .lines()
            .map(|l| {
                if l.starts_with("urls = ") {
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

    fn start_daemon(&mut self) {
        self.daemon = Some(start_daemon(
            &self.bin,
            &self.config,
            &self.dir.path().join("sshield.sock"),
        ));
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshield.log")).unwrap_or_default()
    }

    /// `sshield log ARGS` on this host, as root: its stdout.
    fn sshield_log(&self, args: &[&str]) -> String {
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
    fn wait_for_log(&self, args: &[&str], wanted: &[&str]) -> String {
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
    fn login_ok(&self, user: &User, code: &str) {
        assert!(self.login(user, code, "fleet-42"), "{}", self.log());
    }

    fn ssh(&self, user: &User) -> Client {
        Client::ssh(&self.sshd, user).key(user.key()).from(INTERNET)
    }

    /// An interactive login typing `code`: the shell's answer, or what the helper said.
    fn login(&self, user: &User, code: &str, expect: &str) -> bool {
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

#[test]
fn one_user_enrolled_once_logs_in_across_a_fleet_of_three() {
    if !can_run() {
        return;
    }
    let mut server = FleetServer::start();
    let user = User::create();
    let name = user.name();
    // Enrolled once, on the server; confirmed with the current code.
    let (secret, backup) = server.enroll(name);

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

#[test]
fn offline_codes_are_accepted_once_while_the_server_is_down_and_reported_when_it_returns() {
    if !can_run() {
        return;
    }
    // A window of four steps either side, so the confirmation's step, the login's and the
    // offline one's all count during the test.
    let mut server = FleetServer::start_with("offline_max_window = \"1h\"\n[policy]\nwindow = 4\n");
    let user = User::create();
    let name = user.name();
    let (secret, backup) = server.enroll(name);
    let offline = "offline_window = \"1h\"\n";
    let web1 = Host::join_with(&server, "web1", "secure", offline);
    let web2 = Host::join_with(&server, "web2", "secure", offline);
    let web3 = Host::join_with(&server, "web3", "safe", offline);

    // A login through the server on web1: web1 keeps the user's offline material, root's
    // alone, and no secret in it.
    web1.login_ok(&user, &oathtool(&secret, 30));
    // (Fetched after the answer, in the daemon's background: the login does not wait.)
    let material = web1.dir.path().join("offline").join(format!("{name}.json"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !material.exists() {
        assert!(Instant::now() < deadline, "no material: {}", web1.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = fs::read_to_string(&material).unwrap();
    assert_eq!(
        fs::metadata(&material).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        !text.contains(&secret) && !text.contains(&backup[0]),
        "{text}"
    );
    assert!(!text.contains(&oathtool(&secret, 60)), "a code in clear");

    // The server stopped: the next code is accepted offline on web1, once.
    server.stop();
    let next = oathtool(&secret, 60);
    web1.login_ok(&user, &next);
    assert!(
        web1.log()
            .contains("offline: no server answered; a totp code of user"),
        "{}",
        web1.log()
    );
    assert!(!web1.login(&user, &next, "sshield: code already used"));
    // A wrong code is denied by the material, not by failmode.
    assert!(!web1.login(&user, "000000", "sshield: wrong code"));
    assert!(!web1.log().contains("reason=unreachable"), "{}", web1.log());
    // A backup code works once offline.
    web1.login_ok(&user, &backup[0]);
    assert!(!web1.login(&user, &backup[0], "sshield: code already used"));
    // Hosts with no material for the user: failmode decides (secure web2 denies, safe web3
    // lets in), and both decisions are queued for the server.
    assert!(!web2.login(
        &user,
        &oathtool(&secret, 60),
        "the authentication server cannot be reached"
    ));
    web3.login_ok(&user, "123456");
    assert!(
        web3.log().contains("reason=failmode-safe"),
        "{}",
        web3.log()
    );

    // The server back: the reports arrive, and `sshield log` reads them from its audit.
    server.restart();
    let listed = web1.wait_for_log(
        &["--json", "--user", name],
        &["\"outcome\":\"offline\"", "\"method\":\"backup\""],
    );
    assert_eq!(
        listed.matches("\"outcome\":\"offline\"").count(),
        2,
        "{listed}"
    );
    assert!(
        listed.contains("\"outcome\":\"allowed\""),
        "the online login too: {listed}"
    );
    assert!(
        listed.contains("\"host\":\"web1\"") && !listed.contains("web2"),
        "{listed}"
    );
    web2.wait_for_log(&["--failed"], &["web2", "failmode unreachable"]);
    web3.wait_for_log(&[], &["web3", "failmode failmode-safe"]);
    // `--local` still reads the host's own log; another host's entries are not this host's
    // to read.
    assert!(web1.sshield_log(&["--local"]).contains("allow"));
    let out = Command::new(&web1.bin)
        .arg("--config")
        .arg(&web1.config)
        .args(["log", "--host", "web2"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && said.contains("sshield-server audit --host web2"),
        "{out:?}"
    );

    // The code used offline on web1 is refused on web2, and so is the backup code.
    assert!(!web2.login(&user, &next, "sshield: code already used"));
    assert!(web2.log().contains("reason=replayed"), "{}", web2.log());
    assert!(!web2.login(&user, &backup[0], "sshield: code already used"));
    // Reports sent twice are counted once: the audit holds one entry per offline use.
    let audit = server.cli(&["audit", "--user", name, "--json"]);
    assert_eq!(
        audit.matches("\"outcome\":\"offline\"").count(),
        2,
        "{audit}"
    );
}

/// The fleet at scale, as issue 11 asks it: two `sshield-server` replicas on one throwaway
/// PostgreSQL and three hosts listing both (in different orders, so both replicas answer);
/// 50 users enrolled once on the server (imported, as an admin moving from pam_oath would);
/// 50 simultaneous `ssh` logins of different users, spread over the hosts, all succeed with
/// codes from oathtool; the same 50 codes again, each on another host, all fail as replays.
#[test]
fn fifty_simultaneous_logins_across_three_hosts_and_two_replicas() {
    const USERS: usize = 50;
    if !can_run() || !sshield_e2e::run_or_skip("the fleet on PostgreSQL", Postgres::missing()) {
        return;
    }
    let pg = Postgres::start();
    let database = pg.create_database("fleet");
    let state = Rc::new(tempfile::tempdir().unwrap());
    // The server answers a denial at once (`delay`), and 50 replays from one address are
    // not a guesser to lock out here (`source_max_failures`): each is told `replayed`.
    let config = state.path().join("server.toml");
    fs::write(
        &config,
        "[rate_limit]\ndelay = \"0s\"\nsource_max_failures = 1000\n",
    )
    .unwrap();
    let global = vec![
        "--database".to_owned(),
        database,
        "--config".to_owned(),
        config.display().to_string(),
    ];
    let a = FleetServer::serve(Rc::clone(&state), global);
    let b = a.replica();

    // 50 users and their TOTP secrets (hex, as in a users.oath), imported in one go.
    let users: Vec<User> = (0..USERS).map(|_| User::create()).collect();
    let secrets: Vec<String> = (0..USERS)
        .map(|i| format!("{:040x}", 0x5eed_0000_u64 + u64::try_from(i).unwrap()))
        .collect();
    let oath = state.path().join("users.oath");
    let lines: String = users
        .iter()
        .zip(&secrets)
        .map(|(u, hex)| format!("HOTP/T30 {} - {hex}\n", u.name()))
        .collect();
    fs::write(&oath, lines).unwrap();
    let imported = a.cli(&["user", "import-users-oath", &oath.display().to_string()]);
    assert!(
        imported.contains(&format!("imported {USERS} user")),
        "{imported}"
    );

    let hosts = [
        Host::join_listing(&a, "big1", "secure", &[&a.url, &b.url]),
        Host::join_listing(&a, "big2", "secure", &[&b.url, &a.url]),
        Host::join_listing(&a, "big3", "secure", &[&a.url, &b.url]),
    ];
    let codes: Vec<String> = secrets.iter().map(|hex| oathtool_hex(hex)).collect();

    let started = Instant::now();
    let mut sessions = all_at_once(&users, &codes, |i| &hosts[i % 3]);
    for s in &mut sessions {
        s.send_line("echo fleet-$((40 + 2))");
    }
    for s in &mut sessions {
        expect_within(s, "fleet-42");
        s.send_line("exit");
    }
    for (s, user) in sessions.into_iter().zip(&users) {
        let out = s.wait();
        assert!(out.success(), "{}: {out:?}", user.name());
    }
    eprintln!("{USERS} simultaneous logins in {:?}", started.elapsed());
    for (i, user) in users.iter().enumerate() {
        let allow = format!(
            "allow user={} rhost={INTERNET} service=sshield-login method=totp reason=ok",
            user.name()
        );
        assert!(
            hosts[i % 3].log().contains(&allow),
            "{}",
            hosts[i % 3].log()
        );
    }
    // Both replicas decided some of them.
    for replica in [&a, &b] {
        let allowed = verifications(replica, "allowed", "none");
        assert!(allowed > 0, "{} decided none", replica.url);
        eprintln!("{}: {allowed} allowed", replica.url);
    }
    assert_eq!(
        verifications(&a, "allowed", "none") + verifications(&b, "allowed", "none"),
        USERS
    );

    // The same codes again, all at once, each on the next host: replays across the fleet.
    let mut sessions = all_at_once(&users, &codes, |i| &hosts[(i + 1) % 3]);
    for s in &mut sessions {
        expect_within(s, "sshield: code already used");
        s.send(keys::CTRL_C);
    }
    for (s, user) in sessions.into_iter().zip(&users) {
        let out = s.wait();
        assert!(!out.success(), "{} logged in with a used code", user.name());
    }
    for (i, user) in users.iter().enumerate() {
        let host = &hosts[(i + 1) % 3];
        let deny = format!(
            "deny user={} rhost={INTERNET} service=sshield-login ",
            user.name()
        );
        let log = host.log();
        assert!(
            log.lines()
                .any(|l| l.contains(&deny) && l.contains(" reason=replayed")),
            "{log}"
        );
    }
    assert_eq!(
        verifications(&a, "denied", "replayed") + verifications(&b, "denied", "replayed"),
        USERS
    );
}

/// Logs every user in at once on the host `host_of` their index picks: every session
/// connected and at the code prompt first, then each user's code typed in one go, so the
/// verifications reach the fleet together.
fn all_at_once<'a>(
    users: &[User],
    codes: &[String],
    host_of: impl Fn(usize) -> &'a Host,
) -> Vec<sshield_e2e::Session> {
    let mut sessions: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| host_of(i).ssh(user).tty().spawn())
        .collect();
    for s in &mut sessions {
        expect_within(s, PROMPT);
    }
    for (s, code) in sessions.iter_mut().zip(codes) {
        s.send_line(code);
    }
    sessions
}

/// Waits for `needle` longer than [`sshield_e2e::Session::expect`] does: 50 logins at once
/// on a shared machine may take more than its 10 s.
fn expect_within(s: &mut sshield_e2e::Session, needle: &str) {
    let seen = s.try_expect(needle, Duration::from_secs(90));
    assert!(
        seen.is_some(),
        "did not see {needle:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        s.stdout(),
        s.stderr()
    );
}

/// The current TOTP code of a hex key (as users.oath holds it), from oathtool.
fn oathtool_hex(hex: &str) -> String {
    let out = Command::new("oathtool")
        .args(["--totp", hex])
        .output()
        .unwrap();
    assert!(out.status.success(), "oathtool: {out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// A replica's count of decisions with this outcome and reason, from its `/metrics`.
fn verifications(server: &FleetServer, outcome: &str, reason: &str) -> usize {
    let out = Command::new("curl")
        .args(["-sf", &format!("{}/metrics", server.url)])
        .output()
        .unwrap();
    assert!(out.status.success(), "curl /metrics: {out:?}");
    let series =
        format!("sshield_server_verifications_total{{outcome=\"{outcome}\",reason=\"{reason}\"}} ");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// A fleet host whose sshd asks for the code through pam_sshield.so (a public key, then
/// keyboard-interactive): its sshield config joined to `server` as `name`, and its daemon.
struct PamHost {
    sshield: common::Sshield,
    sshd: Sshd,
    socket: PathBuf,
    daemon: Option<Running>,
}

impl PamHost {
    fn join(server: &FleetServer, name: &str, failmode: &str) -> Self {
        Self::join_with(server, name, failmode, "")
    }

    /// As [`PamHost::join`], with `server_keys` added to the `[server]` section.
    fn join_with(server: &FleetServer, name: &str, failmode: &str, server_keys: &str) -> Self {
        let sshield = common::Sshield::new("");
        let socket = sshield.dir().join("sshield.sock");
        sshield.write_config(&format!(
            "socket = \"{}\"\nfailmode = \"{failmode}\"\n",
            socket.display()
        ));
        let token = server.cli(&["host", "add", name]);
        let token = token.lines().next().unwrap();
        let cli = &sshield_e2e::artefacts().cli;
        let out = Command::new(cli)
            .arg("--config")
            .arg(&sshield.config)
            .args(["join", &server.url, token, "--name", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "sshield join: {out:?}");
        let joined = fs::read_to_string(&sshield.config).unwrap();
        fs::write(&sshield.config, format!("{joined}{server_keys}")).unwrap();
        let sshd = Sshd::start(common::key_then_code_options(&sshield));
        let daemon = Some(start_daemon(cli, &sshield.config, &socket));
        Self {
            sshield,
            sshd,
            socket,
            daemon,
        }
    }

    /// `ssh` with the user's key, then keyboard-interactive typing `code`: whether the shell
    /// ran.
    fn login(&self, user: &User, code: &str) -> bool {
        let out = Client::ssh(&self.sshd, user)
            .from(INTERNET)
            .key(user.key())
            .methods("publickey,keyboard-interactive")
            .command("echo ok")
            .answers([code])
            .run();
        out.success() && out.stdout == "ok\n"
    }

    fn log(&self) -> String {
        self.sshield.log_lines().join("\n")
    }

    /// The module's decision line for `user`, as it logs it in this sshd.
    fn decision(&self, outcome: &str, user: &str, method: &str, reason: &str) -> String {
        common::decision(outcome, user, INTERNET, &self.sshd, method, reason)
    }
}

#[test]
fn the_pam_module_asks_the_server_through_the_daemon() {
    if !can_run() {
        return;
    }
    let mut server = FleetServer::start();
    let remote = User::create();
    let (secret, _backup) = server.enroll(remote.name());
    let secure = PamHost::join(&server, "pam1", "secure");
    let safe = PamHost::join(&server, "pam2", "safe");

    // Enrolled only on the server: the module asks the daemon, the daemon the server.
    let code = oathtool(&secret, 30);
    assert!(
        !secure.login(&remote, &oathtool(&secret, -3600)),
        "an hour-old code"
    );
    assert!(
        secure
            .log()
            .contains(&secure.decision("deny", remote.name(), "code", "wrong-code")),
        "{}",
        secure.log()
    );
    assert!(secure.login(&remote, &code), "{}", secure.log());
    assert!(
        secure
            .log()
            .contains(&secure.decision("allow", remote.name(), "totp", "ok")),
        "{}",
        secure.log()
    );
    // The same code again, on this host and on the other: replayed.
    assert!(!secure.login(&remote, &code));
    assert!(!safe.login(&remote, &code));
    assert!(
        safe.log()
            .contains(&safe.decision("deny", remote.name(), "code", "replayed")),
        "{}",
        safe.log()
    );

    // A user with a record in the host's store logs in locally, the server never asked
    // (its log has no line for them).
    let local = User::create();
    let token = secure.sshield.enroll(local.name());
    assert!(secure.login(&local, &token.code()), "{}", secure.log());
    assert!(
        secure
            .log()
            .contains(&secure.decision("allow", local.name(), "totp", "ok")),
        "{}",
        secure.log()
    );

    // The server stopped: the daemon cannot reach it; secure denies, safe lets in.
    server.stop();
    let next = oathtool(&secret, 60);
    assert!(!secure.login(&remote, &next));
    assert!(
        secure
            .log()
            .contains(&secure.decision("deny", remote.name(), "none", "unreachable")),
        "{}",
        secure.log()
    );
    assert!(safe.login(&remote, &next), "{}", safe.log());
    assert!(
        safe.log()
            .contains(&safe.decision("allow", remote.name(), "none", "failmode-safe")),
        "{}",
        safe.log()
    );
    // The local user still logs in with the server down.
    assert!(secure.login(&local, &token.code()), "{}", secure.log());

    // The daemon stopped too: the module cannot ask, `failmode` decides the same way.
    let mut secure = secure;
    secure.daemon = None;
    assert!(!secure.login(&remote, &oathtool(&secret, 90)));
    assert!(
        secure
            .log()
            .contains(&format!("the daemon at {}", secure.socket.display())),
        "{}",
        secure.log()
    );
}

/// Offline logins through the PAM module: the module asks the daemon, which holds the
/// material; the same rules as through `sshield login`.
#[test]
fn the_pam_module_takes_an_offline_code_once_through_the_daemon() {
    if !can_run() {
        return;
    }
    let mut server = FleetServer::start_with("[policy]\nwindow = 4\n");
    let remote = User::create();
    let (secret, backup) = server.enroll(remote.name());
    let host = PamHost::join_with(&server, "pam4", "secure", "offline_window = \"1h\"\n");
    assert!(
        host.login(&remote, &oathtool(&secret, 30)),
        "{}",
        host.log()
    );
    let material = host
        .sshield
        .dir()
        .join("offline")
        .join(format!("{}.json", remote.name()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !material.exists() {
        assert!(Instant::now() < deadline, "no material: {}", host.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    server.stop();
    let next = oathtool(&secret, 60);
    assert!(host.login(&remote, &next), "{}", host.log());
    assert!(
        host.log()
            .contains(&host.decision("allow", remote.name(), "totp", "ok")),
        "{}",
        host.log()
    );
    assert!(!host.login(&remote, &next), "the same code again");
    assert!(
        host.log()
            .contains(&host.decision("deny", remote.name(), "code", "replayed")),
        "{}",
        host.log()
    );
    assert!(host.login(&remote, &backup[1]), "{}", host.log());
    assert!(
        !host.login(&remote, &backup[1]),
        "the same backup code again"
    );
    assert!(!host.log().contains("reason=unreachable"), "{}", host.log());
}

#[test]
fn only_root_may_ask_the_daemon_about_another_user() {
    if !can_run() {
        return;
    }
    let server = FleetServer::start();
    let remote = User::create();
    let (secret, _backup) = server.enroll(remote.name());
    let host = PamHost::join(&server, "pam3", "safe");
    fs::set_permissions(host.sshield.dir(), fs::Permissions::from_mode(0o755)).unwrap();
    let code = oathtool(&secret, 30);
    let request = format!(
        "{{\"v\":1,\"op\":\"verify\",\"user\":\"{}\",\"rhost\":\"{INTERNET}\",\"service\":\"sshd\",\"code\":\"{code}\"}}",
        remote.name()
    );
    // A local user (not root) naming someone else: refused, the code not even sent on.
    let other = User::create();
    let out = Command::new("runuser")
        .args(["-u", other.name(), "--", "python3", "-c"])
        .arg(
            "import socket,sys\n\
             s=socket.socket(socket.AF_UNIX)\n\
             s.connect(sys.argv[1])\n\
             s.sendall(sys.argv[2].encode()+b'\\n')\n\
             print(s.makefile().readline(),end='')",
        )
        .arg(&host.socket)
        .arg(&request)
        .output()
        .unwrap();
    let reply = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        reply.contains("\"reply\":\"error\"") && reply.contains("\"error\":\"forbidden\""),
        "{out:?}"
    );
    // Root may: the code was never used by the refused request, so it is good now.
    let mut stream = UnixStream::connect(&host.socket).unwrap();
    std::io::Write::write_all(&mut stream, format!("{request}\n").as_bytes()).unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).unwrap();
    assert!(
        reply.contains("\"reply\":\"verdict\"") && reply.contains("\"outcome\":\"allowed\""),
        "{reply}"
    );
}
