//! The daemon as a fleet host's one network client, against a real `sshield-server`: hosts
//! joined with `sshield join`, each with its own daemon, asked in the daemon's protocol as the
//! login helper asks it (the caller is the uid running the tests). Codes from oathtool. With
//! real sshd and ssh: crates/e2e/tests/fleet.rs.

mod support;

use std::path::Path;

use support::host::{join, HostDir};
use support::server::{cli, enroll_confirmed, oathtool, state_dir, Server};

/// The user the daemon sees: whoever runs the tests.
fn me() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .expect("id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn host(failmode: &str) -> HostDir {
    let host = HostDir::new("");
    let config = format!(
        "# a fleet host\nstore = \"users\"\nsocket = \"sshield.sock\"\nfailmode = \"{failmode}\"\n\
         login_tries = 3\n[rate_limit]\ndelay = \"10ms\"\n"
    );
    std::fs::write(host.config(), format!("{}{config}", host.log_file())).expect("config");
    // The store as the package makes it (root's, 0700), empty: every user is the server's.
    std::fs::create_dir(host.dir.join("users")).expect("mkdir users");
    std::fs::set_permissions(
        host.dir.join("users"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod users");
    host
}

fn reply_of(line: &str) -> &str {
    line.split("\"reply\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or(line)
}

fn reason_of(line: &str) -> &str {
    line.split("\"reason\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or("")
}

/// Puts `url` first in the host's `[server].urls` (a dead one, to show the failover).
fn prepend_url(host: &HostDir, url: &str) {
    let text = host
        .text()
        .replace("urls = [", &format!("urls = [\"{url}\", "));
    std::fs::write(host.config(), text).expect("config");
}

fn enroll_locally(host: &HostDir, user: &str) -> String {
    let (code, out, err) = host.sshield(&[
        "enroll",
        user,
        "--secret",
        "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
        "--no-confirm",
        "--json",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".to_owned()
}

fn log_has(host: &HostDir, needle: &str) -> bool {
    host.log().lines().any(|l| l.contains(needle))
}

#[test]
fn a_user_the_server_knows_logs_in_through_every_host_once_per_code() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    let url = format!("http://{}", server.addr);
    let user = me();
    let secret = enroll_confirmed(&state, &[], &user);

    let (web1, web2) = (host("secure"), host("secure"));
    join(&web1, &state, &url, "web1");
    join(&web2, &state, &url, "web2");
    // web1 lists a dead URL first: it fails over to the live one.
    prepend_url(&web1, "http://127.0.0.1:9");
    let (_d1, _d2) = (web1.daemon(), web2.daemon());

    // The confirmation used the current step: the next one is good once, on any host.
    let code = oathtool(&secret, 30);
    let replies = web1.login(&["000000", &code]);
    assert_eq!(reply_of(&replies[0]), "prompt", "{replies:?}");
    assert_eq!(reason_of(&replies[1]), "wrong-code", "{replies:?}");
    assert_eq!(reply_of(&replies[2]), "allow", "{replies:?}");
    assert!(replies[2].contains("\"method\":\"totp\""), "{replies:?}");
    assert!(
        log_has(&web1, &format!("allow user={user} ")),
        "{}",
        web1.log()
    );
    assert!(log_has(&web1, "reason=wrong-code"), "{}", web1.log());

    // The same code on the other host: replayed across the fleet.
    let replies = web2.login(&[&code]);
    assert_eq!(reason_of(&replies[1]), "replayed", "{replies:?}");
    assert!(log_has(&web2, "reason=replayed"), "{}", web2.log());

    // The server's audit has both decisions, each with its host.
    let (ok, audit, err) = cli(&state, &[], &["audit", "--user", &user]);
    assert!(ok, "{err}");
    assert!(audit.contains("web1") && audit.contains("web2"), "{audit}");

    // A revoked host is refused by the server: denied, logged at ERR with the reason, and
    // never let through by failmode.
    let (ok, _, err) = cli(&state, &[], &["host", "revoke", "web2"]);
    assert!(ok, "{err}");
    let replies = web2.login(&[&oathtool(&secret, 60)]);
    assert_eq!(reason_of(&replies[1]), "server-refused", "{replies:?}");
    assert!(replies[1].contains("\"last\":true"), "{replies:?}");
    assert!(
        log_has(&web2, "reason=server-refused") && log_has(&web2, "revoked"),
        "{}",
        web2.log()
    );
}

#[test]
fn failmode_applies_only_when_no_server_answers_and_local_users_stay_local() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    let url = format!("http://{}", server.addr);
    let user = me();
    let secret = enroll_confirmed(&state, &[], &user);
    let (secure, safe, local) = (host("secure"), host("safe"), host("secure"));
    join(&secure, &state, &url, "secure1");
    join(&safe, &state, &url, "safe1");
    join(&local, &state, &url, "local1");
    // On `local` the user has a local record (a break-glass account): the server is never
    // asked, so the server's code is wrong there and the local one is right.
    let local_secret = enroll_locally(&local, &user);
    let daemons = [secure.daemon(), safe.daemon(), local.daemon()];
    let replies = local.login(&[&oathtool(&secret, 30)]);
    assert_eq!(reason_of(&replies[1]), "wrong-code", "{replies:?}");

    drop(server);
    // No server: secure denies, safe lets in, both logged at WARNING as failmode.
    let replies = secure.login(&["123456"]);
    assert_eq!(reason_of(&replies[1]), "unreachable", "{replies:?}");
    assert!(replies[1].contains("\"last\":true"), "{replies:?}");
    assert!(
        log_has(&secure, &format!("deny user={user} ")) && log_has(&secure, "reason=unreachable"),
        "{}",
        secure.log()
    );
    let replies = safe.login(&["123456"]);
    assert_eq!(reply_of(&replies[1]), "exempt", "{replies:?}");
    assert_eq!(reason_of(&replies[1]), "failmode-safe", "{replies:?}");
    assert!(log_has(&safe, "reason=failmode-safe"), "{}", safe.log());
    // The local user logs in with the local code while the server is down.
    let replies = local.login(&[&oathtool(&local_secret, 0)]);
    assert_eq!(reply_of(&replies[1]), "allow", "{replies:?}");
    drop(daemons);
}

#[test]
fn a_broken_host_key_denies_and_never_falls_to_failmode() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    let url = format!("http://{}", server.addr);
    enroll_confirmed(&state, &[], &me());
    let host = host("safe");
    join(&host, &state, &url, "broken1");
    // Readable by others: refused, as the store refuses such files.
    let key: &Path = &host.key();
    std::fs::set_permissions(key, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    let _daemon = host.daemon();
    let replies = host.login(&["123456"]);
    assert_eq!(reason_of(&replies[1]), "server-refused", "{replies:?}");
    assert!(log_has(&host, "chmod 600"), "{}", host.log());
    // Said once at start too, before anyone logs in.
    assert!(
        log_has(&host, "cannot use the [server] section"),
        "{}",
        host.log()
    );
}

#[test]
fn over_https_the_daemon_accepts_only_the_pinned_certificate() {
    let (tmp, state) = state_dir();
    let (server, _) = Server::start_tls(&state, tmp.path());
    let url = format!("https://{}", server.addr);
    let user = me();
    let secret = enroll_confirmed(&state, &[], &user);
    let (pinned, other) = (host("secure"), host("secure"));
    join(&pinned, &state, &url, "tls1");
    join(&other, &state, &url, "tls2");
    // `other` now pins a certificate the server does not have: to it the server is as good as
    // unreachable (an interceptor could as well drop the connection), so failmode decides, and
    // no code is sent to whoever answered.
    let text = other.text();
    let pin = text
        .lines()
        .find_map(|l| l.strip_prefix("pinned_cert = \"sha256:"))
        .expect("a pin")
        .trim_end_matches('"')
        .to_owned();
    let wrong = if pin.starts_with('0') { "1" } else { "0" }.repeat(64);
    std::fs::write(other.config(), text.replace(&pin, &wrong)).expect("config");
    let (_d1, _d2) = (pinned.daemon(), other.daemon());

    let replies = pinned.login(&[&oathtool(&secret, 30)]);
    assert_eq!(reply_of(&replies[1]), "allow", "{replies:?}");
    let replies = other.login(&[&oathtool(&secret, 60)]);
    assert_eq!(reason_of(&replies[1]), "unreachable", "{replies:?}");
    assert!(
        log_has(&other, "reason=unreachable") && log_has(&other, "certificate"),
        "{}",
        other.log()
    );
}
