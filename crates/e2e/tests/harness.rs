//! The harness proven on what OpenSSH and pam_unix do without sshield: if these pass, a
//! failing sshield end-to-end test is about sshield.
//!
//! Root only (they add users and PAM service files); elsewhere they skip, in CI they fail.

use std::fs;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use sshield_e2e::{can_run, keys, Client, Group, Sshd, SshdOptions, User, UserOptions};

fn password_only() -> SshdOptions {
    SshdOptions::new().config(["AuthenticationMethods password"])
}

#[test]
fn password_login_through_the_harness_pam_service() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start(password_only());
    let user = User::create();

    let out = Client::ssh(&sshd, &user)
        .methods("password")
        .command("echo ok; id -un")
        .answers([user.password()])
        .run();
    out.assert_success();
    assert_eq!(out.stdout, format!("ok\n{}\n", user.name()));
    assert_eq!(
        out.prompts,
        [format!("{}@127.0.0.1's password: ", user.name())]
    );
    assert!(sshd.log().contains(&format!(
        "Accepted password for {} from 127.0.0.1 port",
        user.name()
    )));

    // The service file is named after sshd's program name, and nothing else is.
    let pam = sshd.pam_service_path();
    assert_eq!(pam, Path::new("/etc/pam.d").join(sshd.service_name()));
    assert!(fs::read_to_string(pam).unwrap().contains("pam_unix.so"));
}

#[test]
fn the_pam_service_file_is_the_one_sshd_uses() {
    if !can_run() {
        return;
    }
    // The right password, but this sshd's own PAM stack denies everyone: if sshd read
    // /etc/pam.d/sshd (or "other") instead, pam_unix would let the user in.
    let sshd = Sshd::start(
        password_only().pam(["auth required pam_deny.so", "account required pam_unix.so"]),
    );
    let user = User::create();
    let out = Client::ssh(&sshd, &user)
        .methods("password")
        .command("echo ok")
        .answers([user.password()])
        .run();
    out.assert_denied();
    assert!(sshd
        .log()
        .contains(&format!("Failed password for {}", user.name())));
}

#[test]
fn public_key_login() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start(SshdOptions::new().config(["AuthenticationMethods publickey"]));
    let user = User::create();
    let out = Client::ssh(&sshd, &user)
        .key(user.key())
        .command("echo ok")
        .run();
    out.assert_success();
    assert_eq!(out.stdout, "ok\n");
    assert!(out.prompts.is_empty(), "{out:?}");
    assert!(sshd
        .log()
        .contains(&format!("Accepted publickey for {}", user.name())));

    // Without the key, there is no way in.
    Client::ssh(&sshd, &user)
        .command("echo ok")
        .run()
        .assert_denied();
}

#[test]
fn keyboard_interactive_with_pam_unix() {
    if !can_run() {
        return;
    }
    let sshd =
        Sshd::start(SshdOptions::new().config(["AuthenticationMethods keyboard-interactive"]));
    let user = User::create();
    let out = Client::ssh(&sshd, &user)
        .methods("keyboard-interactive")
        .command("echo ok")
        .answers([user.password()])
        .run();
    out.assert_success();
    assert_eq!(
        out.prompts,
        [format!("({}@127.0.0.1) Password: ", user.name())]
    );
    assert_eq!(out.prompt_texts(), ["Password: "]);
    assert!(sshd.log().contains(&format!(
        "Accepted keyboard-interactive/pam for {}",
        user.name()
    )));
}

#[test]
fn public_key_then_keyboard_interactive() {
    if !can_run() {
        return;
    }
    // The shape of the 2FA setup: key first, then PAM asks.
    let sshd = Sshd::start(
        SshdOptions::new().config(["AuthenticationMethods publickey,keyboard-interactive:pam"]),
    );
    let user = User::create();
    let out = Client::ssh(&sshd, &user)
        .key(user.key())
        .command("echo ok")
        .answers([user.password()])
        .run();
    out.assert_success();
    assert_eq!(out.prompt_texts(), ["Password: "]);
    let log = sshd.log();
    assert!(
        log.contains(&format!("Partial publickey for {}", user.name())),
        "{log}"
    );
    assert!(log.contains(&format!(
        "Accepted keyboard-interactive/pam for {}",
        user.name()
    )));

    // The key alone is not enough.
    let out = Client::ssh(&sshd, &user)
        .key(user.key())
        .command("echo ok")
        .run();
    out.assert_denied();
    assert!(out.asked("Password: "));
}

#[test]
fn wrong_password_is_refused_and_logged() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start(SshdOptions::new());
    let user = User::create();
    for methods in ["password", "keyboard-interactive"] {
        let mark = sshd.log_mark();
        let out = Client::ssh(&sshd, &user)
            .methods(methods)
            .command("touch refused-marker")
            .answers(["not the password"])
            .run();
        out.assert_denied();
        assert_eq!(out.prompts.len(), 1, "{out:?}");
        let log = sshd.log_since(mark);
        assert!(
            log.contains(&format!("Failed {methods}")),
            "{methods}: {log}"
        );
        assert!(!log.contains("Accepted"), "{log}");
    }
    assert!(!user.home().join("refused-marker").exists());

    // No answer at all (askpass has none left) is refused too, not hung.
    Client::ssh(&sshd, &user)
        .methods("password")
        .command("true")
        .run()
        .assert_denied();
    // Nor does an unknown user get in.
    Client::ssh(&sshd, "sshield-e2e-nobody")
        .methods("password")
        .answers(["x"])
        .run()
        .assert_denied();
}

#[test]
fn source_addresses_are_what_sshd_sees() {
    if !can_run() {
        return;
    }
    // 127.0.0.2 plays "the LAN": password logins only from there.
    let sshd = Sshd::start(SshdOptions::new().config([
        "PasswordAuthentication no",
        "Match Address 127.0.0.2",
        "    PasswordAuthentication yes",
    ]));
    let user = User::create();

    let mark = sshd.log_mark();
    let lan = Client::ssh(&sshd, &user)
        .from("127.0.0.2")
        .methods("password")
        .command("echo $SSH_CONNECTION")
        .answers([user.password()])
        .run();
    lan.assert_success();
    assert!(lan.stdout.starts_with("127.0.0.2 "), "{lan:?}");
    assert!(sshd.log_since(mark).contains(&format!(
        "Accepted password for {} from 127.0.0.2 port",
        user.name()
    )));

    let mark = sshd.log_mark();
    let internet = Client::ssh(&sshd, &user)
        .from("127.0.0.3")
        .methods("password")
        .command("true")
        .answers([user.password()])
        .run();
    internet.assert_denied();
    assert!(
        internet.prompts.is_empty(),
        "password auth is off from there: {internet:?}"
    );
    let log = sshd.log_since(mark);
    assert!(log.contains("Connection from 127.0.0.3 port"), "{log}");
    assert!(!log.contains("Accepted"), "{log}");
}

#[test]
fn several_listen_addresses() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start(SshdOptions::new().listen(["127.0.0.1", "127.0.0.2", "::1"]));
    let user = User::create();
    for to in ["127.0.0.1", "127.0.0.2", "::1"] {
        let out = Client::ssh(&sshd, &user)
            .to(to)
            .key(user.key())
            .command("echo $SSH_CONNECTION")
            .run();
        out.assert_success();
        let fields: Vec<&str> = out.stdout.split_whitespace().collect();
        assert_eq!(fields[2], to, "{out:?}");
        assert_eq!(fields[3], sshd.port().to_string());
    }
}

#[test]
fn sftp_put_and_get() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start(password_only());
    let user = User::create();
    let local = tempfile::tempdir().unwrap();
    let up = local.path().join("up.txt");
    let down = local.path().join("down.txt");
    fs::write(&up, "sent over sftp\n").unwrap();

    let out = Client::sftp(
        &sshd,
        &user,
        format!(
            "put {} uploaded.txt\nget uploaded.txt {}",
            up.display(),
            down.display()
        ),
    )
    .answers([user.password()])
    .run();
    out.assert_success();
    assert_eq!(out.prompts.len(), 1, "{out:?}");
    assert_eq!(fs::read_to_string(&down).unwrap(), "sent over sftp\n");
    let remote = user.home().join("uploaded.txt");
    assert_eq!(fs::read_to_string(&remote).unwrap(), "sent over sftp\n");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&fs::metadata(&remote).unwrap()),
        user.uid()
    );

    // A failing batch command fails the run.
    let out = Client::sftp(&sshd, &user, "get no-such-file /dev/null")
        .answers([user.password()])
        .run();
    assert!(!out.success(), "{out:?}");
}

#[test]
fn scp_upload_and_download() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start(password_only());
    let user = User::create();
    let local = tempfile::tempdir().unwrap();
    let up = local.path().join("up.bin");
    let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(&up, &data).unwrap();

    // scp speaks SFTP by default since OpenSSH 9.0; -O is the old scp protocol, which runs
    // `scp -t` through the user's shell (what a ForceCommand helper sees).
    for (protocol, extra) in [("sftp", None), ("legacy scp", Some("-O"))] {
        let mut client = Client::scp(&sshd, &user)
            .upload(&up, "copy.bin")
            .answers([user.password()]);
        if let Some(flag) = extra {
            client = client.arg(flag);
        }
        client.run().assert_success();
        assert_eq!(
            fs::read(user.home().join("copy.bin")).unwrap(),
            data,
            "{protocol}"
        );

        let down = local.path().join(format!("down-{protocol}.bin"));
        let mut client = Client::scp(&sshd, &user)
            .download("copy.bin", &down)
            .answers([user.password()]);
        if let Some(flag) = extra {
            client = client.arg(flag);
        }
        let out = client.run();
        out.assert_success();
        assert_eq!(fs::read(&down).unwrap(), data, "{protocol}");
        assert_eq!(out.prompts.len(), 1);
        fs::remove_file(user.home().join("copy.bin")).unwrap();
    }
}

#[test]
fn groups_are_visible_to_the_session() {
    if !can_run() {
        return;
    }
    let admins = Group::create();
    let others = Group::create();
    // sshd's own group rule, as a group policy will be.
    let sshd = Sshd::start(SshdOptions::new().config([format!("AllowGroups {}", admins.name())]));
    let member = User::with(UserOptions::new().group(&admins));
    let outsider = User::create();

    let out = Client::ssh(&sshd, &member)
        .key(member.key())
        .command("id -Gn")
        .run();
    out.assert_success();
    assert!(
        out.stdout.split_whitespace().any(|g| g == admins.name()),
        "{out:?}"
    );

    Client::ssh(&sshd, &outsider)
        .key(outsider.key())
        .command("true")
        .run()
        .assert_denied();
    outsider.join(&admins);
    outsider.join(&others);
    let out = Client::ssh(&sshd, &outsider)
        .key(outsider.key())
        .command("id -Gn")
        .run();
    out.assert_success();
    assert!(out.stdout.contains(others.name()), "{out:?}");
}

#[test]
fn a_remote_terminal_can_be_typed_into_and_interrupted() {
    if !can_run() {
        return;
    }
    let sshd = Sshd::start(SshdOptions::new());
    let user = User::create();
    let marker = user.home().join("ran");

    // A prompt on the remote terminal, answered.
    let mut session = Client::ssh(&sshd, &user)
        .key(user.key())
        .tty()
        .command("read -p 'Code: ' c && echo got=$c")
        .spawn();
    session.expect("Code: ");
    session.send_line("424242");
    session.expect("got=424242");
    assert!(session.wait().success());

    // Ctrl-C at the prompt: the remote pty interrupts it, the rest never runs.
    let mut session = Client::ssh(&sshd, &user)
        .key(user.key())
        .tty()
        .command(format!("read -p 'Code: ' c; touch {}", marker.display()))
        .spawn();
    session.expect("Code: ");
    session.send(keys::CTRL_C);
    let out = session.wait();
    assert!(!out.success(), "{out:?}");
    assert!(!marker.exists());

    // Ctrl-D: end of file at the prompt.
    let mut session = Client::ssh(&sshd, &user)
        .key(user.key())
        .tty()
        .command("if read -p 'Code: ' c; then echo read; else echo eof; fi")
        .spawn();
    session.expect("Code: ");
    session.send(keys::CTRL_D);
    session.expect("eof");
    session.wait();

    // A dropped connection: sshd hangs up the remote side.
    let mut session = Client::ssh(&sshd, &user)
        .key(user.key())
        .tty()
        .command(format!(
            "read -p 'Code: ' c; sleep 1; touch {}",
            marker.display()
        ))
        .spawn();
    session.expect("Code: ");
    let _ = session.disconnect();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!marker.exists(), "the command went on after the hang-up");
}

#[test]
fn dropping_stops_sshd_and_removes_everything() {
    if !can_run() {
        return;
    }
    let group = Group::create();
    let user = User::with(UserOptions::new().group(&group));
    let sshd = Sshd::start(SshdOptions::new());
    // A session that is still running when the test ends.
    let mut session = Client::ssh(&sshd, &user)
        .key(user.key())
        .command("echo started; exec sleep 300")
        .spawn();
    session.expect("started");
    let tree = sshd.processes();
    assert!(tree.len() >= 3, "listener, connection, session: {tree:?}");

    let pid = sshd.pid();
    let port = sshd.port();
    let pam = sshd.pam_service_path().to_owned();
    let dir = sshd.dir().to_owned();
    let (user_name, home, group_name) = (
        user.name().to_owned(),
        user.home().to_owned(),
        group.name().to_owned(),
    );
    assert!(pam.exists() && dir.exists() && home.exists());
    assert!(User::exists(&user_name) && Group::exists(&group_name));

    drop(sshd);
    for p in &tree {
        assert!(
            !sshield_e2e::is_alive(*p),
            "process {p} of sshd {pid} survived"
        );
    }
    assert!(!pam.exists(), "{} is left", pam.display());
    assert!(!dir.exists());
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "port {port} still open"
    );
    let out = session.wait();
    assert!(!out.success());

    drop(user);
    drop(group);
    assert!(!User::exists(&user_name));
    assert!(!home.exists());
    assert!(!Group::exists(&group_name));
}

#[test]
fn a_panicking_test_cleans_up_too() {
    if !can_run() {
        return;
    }
    let seen = std::sync::Mutex::new(None);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let sshd = Sshd::start(SshdOptions::new());
        let user = User::create();
        *seen.lock().unwrap() = Some((
            sshd.pid(),
            sshd.pam_service_path().to_owned(),
            user.name().to_owned(),
        ));
        panic!("test failure");
    }));
    assert!(result.is_err());
    let (pid, pam, name) = seen.into_inner().unwrap().unwrap();
    assert!(!sshield_e2e::is_alive(pid));
    assert!(!pam.exists());
    assert!(!User::exists(&name));
}

#[test]
fn a_bad_config_fails_with_sshd_s_own_message() {
    if !can_run() {
        return;
    }
    let result =
        std::panic::catch_unwind(|| Sshd::start(SshdOptions::new().config(["NoSuchKeyword yes"])));
    let message = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(message.contains("NoSuchKeyword"), "{message}");
    // ... and its PAM file is gone with it.
    let service = message
        .split("PAM service ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap();
    assert!(service.starts_with("sshield-e2e-"), "{message}");
    assert!(!Path::new("/etc/pam.d").join(service).exists());
}

#[test]
fn syslog_of_sshd_pam_and_sessions_is_captured_privately() {
    if !can_run() {
        return;
    }
    let machine_had_dev_log = Path::new("/dev/log").exists();
    let sshd = Sshd::start(SshdOptions::new());
    assert!(
        sshd.syslog_captured(),
        "this machine should allow a private mount namespace"
    );
    let user = User::create();

    // pam_unix logs a failed password to authpriv.notice (10 * 8 + 5).
    Client::ssh(&sshd, &user)
        .methods("password")
        .command("true")
        .answers(["wrong"])
        .run()
        .assert_denied();
    let failure = format!(
        "pam_unix({}:auth): authentication failure",
        sshd.service_name()
    );
    assert!(
        sshd.wait_for_syslog(&failure, Duration::from_secs(5)),
        "{}",
        sshd.syslog()
    );
    let line = sshd
        .syslog()
        .lines()
        .find(|l| l.contains(&failure))
        .unwrap()
        .to_owned();
    assert!(line.starts_with("<85>"), "{line}");
    assert!(
        line.contains("rhost=127.0.0.1") && line.contains(&format!("user={}", user.name())),
        "{line}"
    );

    // A session's own logging lands there too (and nowhere else).
    Client::ssh(&sshd, &user)
        .key(user.key())
        .command("logger -p authpriv.info -t sshield-e2e-probe hello from the session")
        .run()
        .assert_success();
    assert!(sshd.wait_for_syslog(
        "sshield-e2e-probe: hello from the session",
        Duration::from_secs(5)
    ));
    assert_eq!(
        Path::new("/dev/log").exists(),
        machine_had_dev_log,
        "the machine's /dev changed"
    );

    // Without capture, sshd runs as it is; asking for the capture then says why not.
    let plain = Sshd::start(SshdOptions::new().capture_syslog(false));
    assert!(!plain.syslog_captured());
    Client::ssh(&plain, &user)
        .key(user.key())
        .command("true")
        .run()
        .assert_success();
}
