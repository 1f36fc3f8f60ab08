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
use std::process::Command;
use std::time::{Duration, Instant};

use sshield_e2e::fleet::{start_daemon, FleetServer, Host, Phone, Running, INTERNET, PROMPT};
use sshield_e2e::{can_run, keys, oathtool_totp as oathtool, Client, Sshd, User};

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

    /// As [`PamHost::join`], with `extra` at the end of the host's config.
    fn join_with(server: &FleetServer, name: &str, failmode: &str, extra: &str) -> Self {
        let sshield = common::Sshield::new("");
        let socket = sshield.dir().join("sshield.sock");
        sshield.write_config(&format!(
            "socket = \"{}\"\nfailmode = \"{failmode}\"\n{extra}",
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

/// The server for push tests: requests expire after 4 s, and 1000 may be sent an hour.
const PUSH_SERVER: &str = "[push]\napproval_ttl = \"4s\"\nper_hour = 1000\n";

/// `sshield login` (ForceCommand) pushes at once to an autopush user: the terminal shows the
/// number and the progress of seed 003, and the session starts the moment the phone approves.
#[test]
fn push_in_forcecommand_mode() {
    if !can_run() {
        return;
    }
    let server = FleetServer::start_with(PUSH_SERVER);
    let user = User::create();
    let name = user.name();
    let (secret, _backup) = server.enroll(name);
    let phone = Phone::add(&server, name);
    let host = Host::join_with(
        &server,
        "push1",
        "secure",
        &format!("\n[push]\nautopush_users = [\"{name}\"]\n"),
    );

    // The right number: the session starts.
    let mut s = host.ssh(&user).tty().spawn();
    s.expect("Pushed a login request to your phone (pick ");
    let number = s.expect(")... ").trim_end_matches(")... ").to_owned();
    let (id, list) = phone.pending();
    assert!(list.contains(&number), "{list}");
    assert!(phone.approve(&id, &number).contains("approved"));
    s.expect("Success. Logging you in...");
    s.send_line("echo fleet-$((40 + 2))");
    s.expect("fleet-42");
    s.send_line("exit");
    assert!(s.wait().success());
    let allow =
        format!("allow user={name} rhost={INTERNET} service=sshield-login method=push reason=ok");
    assert!(host.log().contains(&allow), "{}", host.log());

    // A wrong number, then Deny: refused each time (the code prompt follows; Ctrl-C ends).
    for (body, word) in [
        (None, "push-denied"),
        (Some("{\"decision\":\"deny\"}"), "push-denied"),
    ] {
        let mut s = host.ssh(&user).tty().spawn();
        s.expect("(pick ");
        let number: u32 = s.expect(")... ").trim_end_matches(")... ").parse().unwrap();
        let (id, _) = phone.pending();
        match body {
            None => {
                let wrong = if number == 99 { 10 } else { number + 1 };
                phone.approve(&id, &wrong.to_string());
            }
            Some(body) => {
                phone.decide(&id, body);
            }
        }
        s.expect("denied on your phone");
        s.expect(PROMPT);
        s.send(keys::CTRL_C);
        assert!(!s.wait().success());
        let deny = format!(
            "deny user={name} rhost={INTERNET} service=sshield-login method=push reason={word}"
        );
        assert!(host.log().contains(&deny), "{}", host.log());
    }

    // Nobody answers: the push expires, refused.
    let mut s = host.ssh(&user).tty().spawn();
    s.expect("(pick ");
    assert!(
        s.try_expect("expired", Duration::from_secs(15)).is_some(),
        "{}",
        s.stdout()
    );
    s.expect(PROMPT);
    s.send(keys::CTRL_C);
    assert!(!s.wait().success());
    assert!(
        host.log().contains("method=push reason=push-expired"),
        "{}",
        host.log()
    );

    // A code typed instead of waiting: checked as a code, the session starts.
    let mut s = host.ssh(&user).tty().spawn();
    s.expect("(pick ");
    s.expect(")... ");
    s.send_line(&oathtool(&secret, 30));
    s.send_line("echo fleet-$((40 + 2))");
    s.expect("fleet-42");
    s.send_line("exit");
    assert!(s.wait().success());
    assert!(
        host.log().contains("method=totp reason=ok"),
        "{}",
        host.log()
    );

    // Duo's limits, from the server: the push left pending is one at a time (409), so the
    // next login is told why and asked for a code.
    let mut s = host.ssh(&user).tty().spawn();
    s.expect("already waiting on your phone");
    s.expect(PROMPT);
    s.send(keys::CTRL_C);
    assert!(!s.wait().success());
    assert!(
        host.log().contains("method=push reason=push-pending"),
        "{}",
        host.log()
    );
    // "This wasn't me" ends the login, and blocks further pushes (403): a code prompt.
    std::thread::sleep(Duration::from_secs(5));
    let mut s = host.ssh(&user).tty().spawn();
    s.expect("(pick ");
    let (id, _) = phone.pending();
    phone.decide(&id, "{\"decision\":\"report\"}");
    s.expect("This wasn't me");
    assert!(!s.wait().success());
    assert!(
        host.log().contains("method=push reason=push-not-me"),
        "{}",
        host.log()
    );
    let mut s = host.ssh(&user).tty().spawn();
    s.expect("pushes to you are blocked");
    s.expect(PROMPT);
    s.send_line(&oathtool(&secret, 60));
    s.send_line("echo fleet-$((40 + 2))");
    s.expect("fleet-42");
    s.send_line("exit");
    assert!(s.wait().success());
}

/// Non-terminal clients (scp) through `sshield login`: approved by a push without a number
/// where `push.without_number` allows it, the approval request showing the command; where it
/// does not, a code is needed.
#[test]
fn push_without_a_number_for_scp() {
    if !can_run() {
        return;
    }
    let server = FleetServer::start_with(PUSH_SERVER);
    let user = User::create();
    let name = user.name();
    server.enroll(name);
    let phone = Phone::add(&server, name);
    let allowed = Host::join_with(
        &server,
        "scp1",
        "secure",
        "\n[push]\nwithout_number = true\n",
    );
    let refused = Host::join_with(&server, "scp2", "secure", "\n[push]\nenabled = true\n");
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("pushed.txt");
    fs::write(&local, "pushed by scp\n").unwrap();

    let approver = {
        let phone = phone.clone();
        std::thread::spawn(move || {
            let (id, list) = phone.pending();
            let state = phone.decide(&id, "{\"decision\":\"approve\"}");
            (list, state)
        })
    };
    // `-O`: the scp protocol, whose command (`scp -t ...`) is what the phone shows, and whose
    // remote stderr the client prints.
    let out = Client::scp(&allowed.sshd, &user)
        .key(user.key())
        .from(INTERNET)
        .arg("-O")
        .upload(&local, "pushed.txt")
        .run();
    let (list, state) = approver.join().unwrap();
    assert!(out.success(), "{out:?}");
    assert!(
        list.contains("\"command\":\"scp -t")
            && list.contains("pushed.txt")
            && list.contains("\"choices\":[]"),
        "{list}"
    );
    assert!(state.contains("approved"), "{state}");
    assert_eq!(
        fs::read_to_string(user.home().join("pushed.txt")).unwrap(),
        "pushed by scp\n"
    );
    assert!(
        allowed.log().contains(&format!(
            "allow user={name} rhost={INTERNET} service=sshield-login method=push reason=ok"
        )),
        "{}",
        allowed.log()
    );

    // Not allowed on this host: no push is sent, the client hears that a code is needed.
    let out = Client::scp(&refused.sshd, &user)
        .key(user.key())
        .from(INTERNET)
        .arg("-O")
        .upload(&local, "pushed.txt")
        .run();
    assert!(!out.success(), "{out:?}");
    assert!(
        out.stderr.contains("a verification code is needed"),
        "{out:?}"
    );
    assert!(!phone.list().contains("\"id\""));
}

/// The PAM module: the number is in the prompt ("Approve on your phone: pick 47. Press Enter
/// once approved, or type a code: "), Enter waits for the phone through the daemon; a code
/// typed there is checked as a code.
#[test]
fn push_in_pam_mode() {
    if !can_run() {
        return;
    }
    let server = FleetServer::start_with(PUSH_SERVER);
    let user = User::create();
    let name = user.name();
    let (secret, _backup) = server.enroll(name);
    let phone = Phone::add(&server, name);
    let host = PamHost::join_with(
        &server,
        "pam-push",
        "secure",
        &format!("\n[push]\nautopush_users = [\"{name}\"]\n"),
    );
    let ssh = || {
        Client::ssh(&host.sshd, &user)
            .from(INTERNET)
            .key(user.key())
            .methods("publickey,keyboard-interactive")
            .command("echo pam-$((40 + 2))")
    };
    let number_in = |prompts: &[String]| {
        prompts.iter().find_map(|p| {
            p.split("pick ")
                .nth(1)
                .and_then(|rest| rest.split('.').next())
                .map(str::to_owned)
        })
    };
    // Enter, then the phone approves with the number the prompt shows.
    let decide = |body: fn(&str) -> String| {
        let s = ssh().answers([""]).spawn();
        let deadline = Instant::now() + Duration::from_secs(10);
        let number = loop {
            if let Some(n) = number_in(&s.prompts()) {
                break n;
            }
            assert!(
                Instant::now() < deadline,
                "no push prompt: {:?}",
                s.prompts()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let prompt = s.prompts().join("|");
        assert!(
            prompt.contains(&format!(
                "Approve on your phone: pick {number}. Press Enter once approved, or type a code: "
            )),
            "{prompt}"
        );
        let (id, _) = phone.pending();
        phone.decide(&id, &body(&number));
        s.wait()
    };
    let out = decide(|n| format!("{{\"decision\":\"approve\",\"number\":{n}}}"));
    assert!(out.success() && out.stdout.contains("pam-42"), "{out:?}");
    assert!(
        host.log()
            .contains(&host.decision("allow", name, "push", "ok")),
        "{}",
        host.log()
    );
    let out = decide(|n| {
        let wrong = if n == "99" {
            10
        } else {
            n.parse::<u32>().unwrap() + 1
        };
        format!("{{\"decision\":\"approve\",\"number\":{wrong}}}")
    });
    assert!(!out.success(), "{out:?}");
    let out = decide(|_| "{\"decision\":\"deny\"}".to_owned());
    assert!(!out.success(), "{out:?}");
    assert!(
        host.log()
            .contains(&host.decision("deny", name, "push", "push-denied")),
        "{}",
        host.log()
    );

    // Nobody answers: expired, refused.
    let out = ssh().answers([""]).timeout(Duration::from_secs(30)).run();
    assert!(!out.success(), "{out:?}");
    assert!(
        host.log()
            .contains(&host.decision("deny", name, "push", "push-expired")),
        "{}",
        host.log()
    );

    // A code typed at the push prompt is checked as a code.
    let out = ssh().answers([oathtool(&secret, 30)]).run();
    assert!(out.success() && out.stdout.contains("pam-42"), "{out:?}");
    assert!(out.asked("pick "), "{:?}", out.prompt_texts());
    assert!(
        host.log()
            .contains(&host.decision("allow", name, "totp", "ok")),
        "{}",
        host.log()
    );
}
