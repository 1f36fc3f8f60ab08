//! `sshield join` against a real `sshield-server`: the host's key, the pinned certificate
//! (or the admin's CA), the `[server]` section written with the file's comments kept, and
//! each refusal leaving the host as it was.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use sshield_core::fleet::Trust;
use sshield_core::Config;
use support::host::HostDir;
use support::server::{cli, state_dir, Server};

const CONFIG: &str = "# this host's own comment\nstore = \"users\"\nfailmode = \"secure\"\n";

fn token(state: &Path, name: &str) -> String {
    let (ok, out, err) = cli(state, &[], &["host", "add", name]);
    assert!(ok, "{err}");
    out.lines().next().expect("a token").to_owned()
}

fn hosts(state: &Path) -> String {
    let (ok, out, err) = cli(state, &[], &["host", "list"]);
    assert!(ok, "{err}");
    out
}

#[test]
fn join_over_loopback_http_writes_the_key_and_the_server_section() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    let url = format!("http://{}", server.addr);
    let host = HostDir::new(CONFIG);
    let (code, out, err) = host.join(&[&url, &token(&state, "web1"), "--name", "web1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("joined") && out.contains("\"web1\""), "{out}");
    // The key: a root-only file the server holds the public half of.
    let mode = std::fs::metadata(host.key())
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert!(hosts(&state).contains("web1"), "{}", hosts(&state));
    // The config: the comment and keys kept, the section added, and it loads as the daemon's.
    let text = host.text();
    assert!(text.starts_with(CONFIG), "{text}");
    assert!(
        text.contains("[server]") && text.contains("timeout = \"2s\""),
        "{text}"
    );
    let config = Config::load(&host.config()).expect("the joined config loads");
    let fleet = config.server.expect("a [server] section");
    assert_eq!(fleet.host, "web1");
    assert_eq!(fleet.urls[0].base, url);
    assert_eq!(fleet.key_file, host.key());
    assert_eq!(fleet.trust, Trust::PlainLoopback);

    // Joined already: refused, nothing changed.
    let (code, _, err) = host.join(&[&url, &token(&state, "web1b"), "--name", "web1b"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("has joined already"), "{err}");
    assert_eq!(host.text(), text);
}

#[test]
fn a_refused_token_leaves_the_host_as_it_was() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    let url = format!("http://{}", server.addr);
    let token = token(&state, "web2");
    for (args, says) in [
        // The token names another host: refused (and spent).
        (
            vec![url.as_str(), token.as_str(), "--name", "web3"],
            "made for host \"web2\"",
        ),
        // Spent: refused again, now as used.
        (
            vec![url.as_str(), token.as_str(), "--name", "web2"],
            "unknown, used or expired",
        ),
        (
            vec![url.as_str(), "sshj_nonsense", "--name", "web2"],
            "unknown, used or expired",
        ),
    ] {
        let host = HostDir::new(CONFIG);
        let (code, out, err) = host.join(&args);
        assert_eq!(code, 1, "{args:?}: {out}{err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!host.key().exists(), "{args:?}: a key was left behind");
        assert_eq!(host.text(), CONFIG, "{args:?}");
    }
}

#[test]
fn bad_urls_and_unreachable_servers_are_errors_that_change_nothing() {
    let host = HostDir::new(CONFIG);
    for (url, says) in [
        ("http://10.0.0.1:8080", "plain http would send codes"),
        ("ftp://127.0.0.1", "not a server URL"),
        // Nothing listens on port 9 of loopback (discard).
        ("http://127.0.0.1:9", "cannot reach http://127.0.0.1:9"),
    ] {
        let (code, out, err) = host.join(&[url, "sshj_x", "--name", "web4"]);
        assert_eq!(code, 2, "{url}: {out}{err}");
        assert!(err.contains(says), "{url}: {err}");
        assert!(!host.key().exists());
        assert_eq!(host.text(), CONFIG);
    }
}

/// The SHA-256 of a PEM certificate's DER, as `openssl x509 -fingerprint -sha256` says it.
fn openssl_fingerprint(cert: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert)
        .output()
        .expect("openssl");
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .expect("a fingerprint")
        .to_owned()
}

#[test]
fn https_pins_the_certificate_it_saw_or_trusts_the_given_ca() {
    let (tmp, state) = state_dir();
    let (server, [ca, cert, _]) = Server::start_tls(&state, tmp.path());
    let url = format!("https://{}", server.addr);
    let fingerprint = openssl_fingerprint(&cert);
    let pin = format!("sha256:{}", fingerprint.replace(':', "").to_lowercase());

    // Trust on first use: what it saw is pinned, and said.
    let host = HostDir::new(CONFIG);
    let (code, out, err) = host.join(&[&url, &token(&state, "tls1"), "--name", "tls1"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&pin), "{out}");
    assert!(
        host.text().contains(&format!("pinned_cert = \"{pin}\"")),
        "{}",
        host.text()
    );

    // A fingerprint given (openssl's form) that is not the server's: refused before the token
    // is spent, nothing written.
    let wrong = HostDir::new(CONFIG);
    let other = "AB:".repeat(31) + "AB";
    let token2 = token(&state, "tls2");
    let (code, _, err) = wrong.join(&[&url, &token2, "--name", "tls2", "--fingerprint", &other]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot reach"), "{err}");
    assert!(!wrong.key().exists());
    assert_eq!(wrong.text(), CONFIG);
    // The right one, in openssl's form: joins with the same token, which was not spent.
    let (code, out, err) = wrong.join(&[
        &url,
        &token2,
        "--name",
        "tls2",
        "--fingerprint",
        &fingerprint,
    ]);
    assert_eq!(code, 0, "{out}{err}");

    // A CA instead of a pin.
    let by_ca = HostDir::new(CONFIG);
    let (code, out, err) = by_ca.join(&[
        &url,
        &token(&state, "tls3"),
        "--name",
        "tls3",
        "--ca",
        ca.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let config = Config::load(&by_ca.config()).expect("loads");
    assert_eq!(config.server.expect("server").trust, Trust::Ca(ca.clone()));
    // The server's own certificate is no CA: refused as an issuer.
    let not_ca = HostDir::new(CONFIG);
    let (code, _, err) = not_ca.join(&[
        &url,
        &token(&state, "tls4"),
        "--name",
        "tls4",
        "--ca",
        ca.with_file_name("server.key").to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("server.key") && err.contains("PEM"), "{err}");

    // With the server's config naming its certificate, `host add` prints the whole line to run
    // on the host, its certificate's pin in it; that line joins.
    let server_config = tmp.path().join("server.toml");
    let key = ca.with_file_name("server.key");
    std::fs::write(
        &server_config,
        format!(
            "listen = \"{}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            server.addr,
            cert.display(),
            key.display()
        ),
    )
    .expect("write the server's config");
    let config_arg = ["--config", server_config.to_str().expect("utf-8")];
    let (ok, out, err) = cli(&state, &config_arg, &["host", "add", "tls5"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("sshield join "))
        .expect("a join line")
        .trim()
        .to_owned();
    let token5 = out.lines().next().expect("a token");
    assert_eq!(
        line,
        format!("sshield join {url} {token5} --name tls5 --fingerprint {pin}")
    );
    let printed = HostDir::new(CONFIG);
    let args: Vec<&str> = line.split(' ').skip(2).collect();
    let (code, out, err) = printed.join(&args);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("as given with --fingerprint"), "{out}");
}
