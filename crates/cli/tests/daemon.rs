//! `sshield daemon` on its own, without sshd: the socket it serves, its answers, socket
//! activation, and how it refuses to start. (With sshd and `sshield login`:
//! crates/e2e/tests/forcecommand.rs.) Needs no root: the caller is whoever runs the tests.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Sandbox;

/// A running daemon, killed on drop.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(program: &mut Command, socket: &Path) -> Daemon {
    let mut child = program.stdin(Stdio::null()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while UnixStream::connect(socket).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the daemon exited: {status}");
        }
        assert!(Instant::now() < deadline, "the daemon did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Daemon(child)
}

fn daemon_command(sb: &Sandbox) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sshield"));
    cmd.arg("--config")
        .arg(sb.config())
        .arg("daemon")
        .arg("--syslog-socket")
        .arg(sb.path().join("no-syslog"));
    cmd
}

/// Sends `requests` on one connection and returns the reply lines.
fn converse(socket: &Path, requests: &[&str]) -> Vec<String> {
    let mut s = UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    requests
        .iter()
        .map(|r| {
            s.write_all(r.as_bytes()).unwrap();
            s.write_all(b"\n").unwrap();
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            line
        })
        .collect()
}

/// One request and its reply line, or the I/O error's text when the daemon hung up first.
fn try_converse(socket: &Path, request: &str) -> String {
    let attempt = || -> std::io::Result<String> {
        let mut s = UnixStream::connect(socket)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(format!("{request}\n").as_bytes())?;
        let mut line = String::new();
        BufReader::new(s).read_line(&mut line)?;
        Ok(line)
    };
    attempt().unwrap_or_else(|e| e.to_string())
}

fn me() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Enrolls the user running the tests (the daemon's caller); returns the name.
fn enroll_me(sb: &Sandbox) -> String {
    let user = me();
    sb.run(
        &[
            "enroll",
            &user,
            "--secret",
            common::SECRET_A,
            "--no-confirm",
        ],
        None,
    )
    .expect(0);
    user
}

fn with_socket(sb_config: &str) -> (Sandbox, PathBuf) {
    let sb = Sandbox::with_config(&format!(
        "store = \"users\"\nsocket = \"run/sshield.sock\"\n{sb_config}\n[rate_limit]\ndelay = \"0s\"\n"
    ));
    let socket = sb.path().join("run/sshield.sock");
    (sb, socket)
}

#[test]
fn serves_the_configured_socket_and_answers_about_the_caller() {
    let (sb, socket) = with_socket("banner = \"hello\"\nlogin_tries = 2");
    let _daemon = start(&mut daemon_command(&sb), &socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o666, "the socket is for every local user");

    // Not enrolled: a prompt (the daemon never says who is enrolled before a code).
    let replies = converse(&socket, &[r#"{"v":1,"op":"need"}"#]);
    assert_eq!(
        replies[0],
        "{\"v\":1,\"reply\":\"prompt\",\"prompt\":\"Verification code: \",\"accept_env_code\":false,\"tries\":2,\"timeout_secs\":60}\n"
    );

    let user = enroll_me(&sb);
    let code = sb.run(&["code", &user], None).stdout.trim().to_owned();
    let replies = converse(
        &socket,
        &[
            r#"{"v":1,"op":"check","code":"000000x"}"#,
            &format!(r#"{{"v":1,"op":"check","code":"{code}"}}"#),
        ],
    );
    assert!(
        replies[0].starts_with("{\"v\":1,\"reply\":\"deny\",\"reason\":\"wrong-code\""),
        "{replies:?}"
    );
    assert!(replies[0].contains("\"tries_left\":1"), "{replies:?}");
    assert_eq!(
        replies[1],
        "{\"v\":1,\"reply\":\"allow\",\"method\":\"totp\",\"banner\":\"hello\"}\n"
    );

    // Out of tries: the daemon closes the connection.
    let mut s = UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"v\":1,\"op\":\"check\",\"code\":\"1\"}\n{\"v\":1,\"op\":\"check\",\"code\":\"2\"}\n{\"v\":1,\"op\":\"need\"}\n")
        .unwrap();
    let lines: Vec<String> = BufReader::new(s).lines().map(|l| l.unwrap()).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[1].contains("\"tries_left\":0"), "{lines:?}");
}

/// The connection's login is core's (issue 10): a code from `SSHIELD_CODE` that is not
/// shaped like one is not checked and uses no try (the reply asks, with a note); the replies
/// carry `tries_left` and `last`, and the daemon hangs up after the last.
#[test]
fn the_login_of_a_connection_counts_tries_and_says_the_last() {
    let logs = tempfile::tempdir().unwrap();
    let log_file = logs.path().join("sshield.log");
    let (sb, socket) = with_socket(&format!(
        "login_tries = 2\naccept_env_code = true\nlog_file = \"{}\"",
        log_file.display()
    ));
    let _daemon = start(&mut daemon_command(&sb), &socket);
    enroll_me(&sb);
    let mut s = UnixStream::connect(&socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(
        concat!(
            r#"{"v":1,"op":"need"}"#,
            "\n",
            r#"{"v":1,"op":"check","code":"hunter2","entry":"env"}"#,
            "\n",
            r#"{"v":1,"op":"check","code":"000000x"}"#,
            "\n",
            r#"{"v":1,"op":"check","code":"000000y"}"#,
            "\n",
            r#"{"v":1,"op":"need"}"#,
            "\n",
        )
        .as_bytes(),
    )
    .unwrap();
    let lines: Vec<String> = BufReader::new(s).lines().map(|l| l.unwrap()).collect();
    assert_eq!(lines.len(), 4, "closed after the last denial: {lines:#?}");
    assert!(lines[0].contains("\"reply\":\"prompt\"") && lines[0].contains("\"tries\":2"));
    assert!(
        lines[1].contains("\"reply\":\"prompt\"")
            && lines[1].contains("\"tries\":2")
            && lines[1].contains("\"note\":\"wrong code: "),
        "{lines:#?}"
    );
    assert!(
        lines[2].contains("\"tries_left\":1") && lines[2].contains("\"last\":false"),
        "{lines:#?}"
    );
    assert!(
        lines[3].contains("\"tries_left\":0") && lines[3].contains("\"last\":true"),
        "{lines:#?}"
    );
    // The password-shaped entry left no line; each typed code one.
    let log = std::fs::read_to_string(&log_file).unwrap();
    assert_eq!(log.matches("reason=wrong-code").count(), 2, "{log}");
    assert_eq!(log.matches(" reason=").count(), 2, "{log}");
    assert!(!log.contains("hunter2"), "{log}");
}

#[test]
fn refuses_to_start_on_a_broken_config_or_a_live_socket() {
    let sb = Sandbox::with_config("socket = \"s.sock\"\nwindw = 3\n");
    let out = daemon_command(&sb).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(":2: unknown field `windw`"), "{err}");

    let (sb, socket) = with_socket("");
    let _first = start(&mut daemon_command(&sb), &socket);
    let out = daemon_command(&sb).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("another daemon is serving"), "{err}");

    // A file that is not a socket is never removed.
    let (sb, socket) = with_socket("");
    std::fs::create_dir_all(socket.parent().unwrap()).unwrap();
    std::fs::write(&socket, "precious").unwrap();
    let out = daemon_command(&sb).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(&socket).unwrap(), "precious");
}

#[test]
fn a_stale_socket_is_replaced() {
    let (sb, socket) = with_socket("");
    {
        let _old = start(&mut daemon_command(&sb), &socket);
    }
    assert!(socket.exists(), "the killed daemon left its socket file");
    let _new = start(&mut daemon_command(&sb), &socket);
    assert_eq!(converse(&socket, &[r#"{"v":1,"op":"need"}"#]).len(), 1);
}

/// `systemd-socket-activate` (systemd's own tool for exactly this) listening on `passed` and
/// starting the daemon on the first connection, with `extra` options; `None` where the tool
/// is missing outside CI.
fn socket_activate(sb: &Sandbox, passed: &Path, extra: &[&str]) -> Option<Command> {
    let tool = "/usr/bin/systemd-socket-activate";
    if !Path::new(tool).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is missing (package systemd)"
        );
        eprintln!("skipping: {tool} is missing");
        return None;
    }
    let mut cmd = Command::new(tool);
    cmd.arg("-l")
        .arg(passed)
        .args(extra)
        .arg(env!("CARGO_BIN_EXE_sshield"))
        .arg("--config")
        .arg(sb.config())
        .arg("daemon")
        .arg("--syslog-socket")
        .arg(sb.path().join("no-syslog"));
    Some(cmd)
}

/// systemd socket activation: the daemon serves the socket it was passed as fd 3, not the
/// config's.
#[test]
fn socket_activation() {
    let (sb, config_socket) = with_socket("");
    let passed = sb.path().join("activated.sock");
    let Some(mut cmd) = socket_activate(&sb, &passed, &[]) else {
        return;
    };
    let _daemon = start(cmd.stderr(Stdio::null()), &passed);
    let replies = converse(&passed, &[r#"{"v":1,"op":"need"}"#]);
    assert!(
        replies[0].starts_with("{\"v\":1,\"reply\":\"prompt\""),
        "{replies:?}"
    );
    assert!(!config_socket.exists(), "it bound the config's socket too");
}

/// What systemd never passes is refused, not adopted: a datagram socket as fd 3, and
/// `LISTEN_FDS_FIRST_FD` (an extension of the listenfd crate, which would take another fd).
#[test]
fn socket_activation_refuses_what_systemd_never_passes() {
    for (extra, expected) in [
        (&["--datagram"][..], "is not a valid unix stream socket"),
        (
            &["-E", "LISTEN_FDS_FIRST_FD=0"][..],
            "LISTEN_FDS_FIRST_FD is set",
        ),
    ] {
        let (sb, config_socket) = with_socket("");
        let passed = sb.path().join("activated.sock");
        let Some(mut cmd) = socket_activate(&sb, &passed, extra) else {
            return;
        };
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The daemon starts on the first datagram or connection.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !passed.exists() {
            assert!(Instant::now() < deadline, "{extra:?}: nothing listens");
            std::thread::sleep(Duration::from_millis(20));
        }
        if extra == ["--datagram"] {
            let s = std::os::unix::net::UnixDatagram::unbound().unwrap();
            s.send_to(b"x", &passed).unwrap();
        } else {
            let _ = UnixStream::connect(&passed);
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
        assert!(
            !config_socket.exists(),
            "{extra:?}: it bound the config's socket"
        );
    }
}

/// Root (this test) may hold every slot, 128: on a fleet host its connections are the PAM
/// module's `verify` requests, one per login. One more is `busy`. (A non-root uid's share of
/// 8 is shown with two real uids in crates/e2e/tests/forcecommand.rs.)
#[test]
fn root_may_take_every_connection_and_no_more() {
    let (sb, socket) = with_socket("");
    let _daemon = start(&mut daemon_command(&sb), &socket);
    let mut held = Vec::new();
    for _ in 0..128 {
        let mut s = UnixStream::connect(&socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"{\"v\":1,\"op\":\"need\"}\n").unwrap();
        let mut line = String::new();
        BufReader::new(s.try_clone().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.contains("\"reply\":\"prompt\""), "{line}");
        held.push(s);
    }
    // The daemon may answer `busy` and close before the request is even written.
    let mut one_more = UnixStream::connect(&socket).unwrap();
    one_more
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = one_more.write_all(b"{\"v\":1,\"op\":\"need\"}\n");
    let mut line = String::new();
    BufReader::new(one_more).read_line(&mut line).unwrap();
    assert!(line.contains("\"error\":\"busy\""), "{line}");
    // A slot is given back when its connection closes.
    held.pop();
    wait_for_a_prompt(&socket);
}

/// Asks `need` until the answer is a prompt: until the daemon has noticed connections the
/// caller closed, it may still answer `busy` and hang up before the request is written (a
/// broken pipe).
fn wait_for_a_prompt(socket: &Path) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let reply = try_converse(socket, r#"{"v":1,"op":"need"}"#);
        if reply.contains("\"reply\":\"prompt\"") {
            return;
        }
        assert!(Instant::now() < deadline, "{reply:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// docs/bad-input.md, "Daemon requests": each malformed request gets an `error` reply with a
/// stable word and a message, the connection is closed, and the caller's record is untouched.
#[test]
fn table_daemon_requests() {
    use sshield_e2e::bad_input::{Row, Snapshot, Table};

    let mut t = Table::new(
        "daemon protocol",
        "cargo test -p sshield --test daemon table_daemon_requests",
    );
    let (sb, socket) = with_socket("");
    let _daemon = start(&mut daemon_command(&sb), &socket);
    sb.run(
        &[
            "enroll",
            &me(),
            "--secret",
            common::SECRET_A,
            "--no-confirm",
        ],
        None,
    )
    .expect(0);
    let long_code = "1".repeat(100);
    let long_line = format!(r#"{{"v":1,"op":"check","code":"{}"}}"#, "1".repeat(5000));
    for (request, shown, word) in [
        ("hello", "hello", "malformed"),
        ("[1,2]", "[1,2]", "malformed"),
        (r#"{"v":1,"op":"frobnicate"}"#, "", "malformed"),
        (r#"{"v":1,"op":"need","user":"root"}"#, "", "malformed"),
        (r#"{"op":"need"}"#, "", "malformed"),
        (r#"{"v":2,"op":"need"}"#, "", "version"),
        (r#"{"v":1,"op":"check"}"#, "", "bad-code"),
        (r#"{"v":1,"op":"check","code":""}"#, "", "bad-code"),
        (
            r#"{"v":1,"op":"verify","service":"sshd","code":"123456"}"#,
            "",
            "malformed",
        ),
        // From root, on a host with no `[server]`: nothing to relay to.
        (
            r#"{"v":1,"op":"verify","user":"carol","service":"sshd","code":"123456"}"#,
            "",
            "not-a-fleet-host",
        ),
        (
            &format!(r#"{{"v":1,"op":"check","code":"{long_code}"}}"#),
            r#"{"v":1,"op":"check","code":"111…"} (a code of 100 digits)"#,
            "bad-code",
        ),
        (
            &long_line,
            r#"{"v":1,"op":"check","code":"111…"} (a line of 5 030 bytes)"#,
            "too-long",
        ),
    ] {
        let before = Snapshot::of(&sb.store());
        let reply = try_converse(&socket, request);
        let json: serde_json::Value = serde_json::from_str(&reply)
            .unwrap_or_else(|e| panic!("{request}: the reply {reply:?} is not JSON: {e}"));
        assert_eq!(json["reply"], "error", "{request}: {reply}");
        assert_eq!(json["error"], word, "{request}: {reply}");
        let message = json["message"].as_str().unwrap().to_owned();
        assert!(!message.is_empty(), "{request}: {reply}");
        t.push(Row {
            input: if shown.is_empty() { request } else { shown }.to_owned(),
            tried: "one line on the daemon's socket".to_owned(),
            outcome: format!("reply `error`, `{word}`"),
            message,
            stored: before.unchanged_since(&sb.store()),
        });
    }
    // The daemon is still there for the next caller.
    assert_eq!(converse(&socket, &[r#"{"v":1,"op":"need"}"#]).len(), 1);
    t.check();
}

/// Issue 13, load and abuse: the kernel queues at most 128 connections for the accept loop
/// (`listen(2)`'s backlog), so no more than that many of a flooder's connections can stand
/// ahead of another user's login. std's `UnixListener::bind` asked for the kernel's maximum
/// (`net.core.somaxconn`, 4 096), and one user hammering the socket put 145-235 ms (median)
/// before every other user's login (docs/benchmarks.md). The daemon is stopped (SIGSTOP) so
/// that nothing is accepted, and connections are made without blocking until the kernel
/// refuses one (EAGAIN): that count is the queue.
#[test]
fn the_accept_queue_holds_at_most_128_connections() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

    let (sb, socket) = with_socket("");
    let daemon = start(&mut daemon_command(&sb), &socket);
    let pid = Pid::from_raw(i32::try_from(daemon.0.id()).unwrap());
    kill(pid, Signal::SIGSTOP).unwrap();
    let address = SocketAddrUnix::new(&socket).unwrap();
    let mut queued = Vec::new();
    let refused = loop {
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::NONBLOCK,
            None,
        )
        .unwrap();
        match rustix::net::connect_unix(&fd, &address) {
            Ok(()) if queued.len() < 10_000 => queued.push(fd),
            other => break other,
        }
    };
    let count = queued.len();
    drop(queued);
    kill(pid, Signal::SIGCONT).unwrap();
    assert_eq!(refused, Err(rustix::io::Errno::AGAIN), "after {count}");
    // Linux queues one past the backlog (`unix_recvq_full`: full when the queue is longer
    // than it).
    assert!((128..=129).contains(&count), "{count} connections queued");
    // And the daemon serves on.
    wait_for_a_prompt(&socket);
}

/// `sshield log` reads back the decisions the daemon logged (issue 11's `sshield log` on a
/// lone host): newest first, filtered, as JSON and per user and source; in a syslog file,
/// only lines shaped as the front ends write them count, not an sshd line whose user name a
/// client chose.
#[test]
fn sshield_log_reads_back_the_decisions_the_daemon_logged() {
    let logs = tempfile::tempdir().unwrap();
    let log_file = logs.path().join("sshield.log");
    let (sb, socket) = with_socket(&format!("log_file = \"{}\"", log_file.display()));
    let _daemon = start(&mut daemon_command(&sb), &socket);
    let user = enroll_me(&sb);
    let code = common::oathtool(common::SECRET_A, &["--totp"]).remove(0);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let replies = converse(
        &socket,
        &[
            &format!(r#"{{"v":1,"op":"check","code":"{wrong}"}}"#),
            &format!(r#"{{"v":1,"op":"check","code":"{code}"}}"#),
        ],
    );
    assert!(replies[1].contains("\"allow\""), "{replies:#?}");

    let out = sb.run(&["log"], None);
    out.expect(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", out.stdout);
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    // Newest first: the allowed code, then the wrong one; no source (not through sshd).
    assert!(
        lines[0].ends_with(&format!(" {host} {user} - sshield-login allowed totp")),
        "{}",
        out.stdout
    );
    assert!(
        lines[1].ends_with(&format!(" {user} - sshield-login denied wrong-code")),
        "{}",
        out.stdout
    );

    let out = sb.run(&["log", "--failed", "--json"], None);
    out.expect(0);
    let rows: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert_eq!(rows[0]["outcome"], "denied");
    assert_eq!(rows[0]["reason"], "wrong-code");
    assert_eq!(rows[0]["method"], serde_json::Value::Null);
    assert_eq!(rows[0]["user"], user.as_str());

    sb.run(&["log", "--summary"], None)
        .expect(0)
        .expect_out(&format!("{user} - 1 1 "));
    let out = sb.run(&["log", "--user", "nobody-else", "--since", "1h"], None);
    assert_eq!(out.expect(0).stdout, "");

    // A syslog file: Debian 12's rsyslog format, an sshd line whose user name the client chose,
    // and syslog's traditional format (no year: left out, and said so).
    let auth_log = logs.path().join("auth.log");
    std::fs::write(
        &auth_log,
        "2026-12-04T22:40:07.123456+01:00 web1 sshd[42]: pam_sshield(sshd:auth): deny \
         user=alice rhost=192.0.2.9 service=sshd method=code reason=replayed\n\
         2026-12-04T22:41:00.000000+00:00 web1 sshd[43]: Invalid user allow user=root \
         rhost=192.0.2.9 service=sshd method=totp reason=ok from 192.0.2.9 port 50000\n\
         Dec  4 22:42:00 web1 sshd[44]: pam_sshield(sshd:auth): allow user=bob rhost=- \
         service=sshd method=totp reason=ok\n",
    )
    .unwrap();
    let out = sb.run(&["log", "--file", auth_log.to_str().unwrap()], None);
    out.expect(0);
    assert_eq!(
        out.stdout,
        "2026-12-04T21:40:07Z web1 alice 192.0.2.9 sshd denied replayed\n"
    );
    assert!(
        out.stderr
            .contains("1 decision line(s) without an RFC 3339 time"),
        "{}",
        out.stderr
    );
    sb.run(&["log", "--file", "/nonexistent/auth.log"], None)
        .expect_err(2, "cannot read /nonexistent/auth.log");
}
