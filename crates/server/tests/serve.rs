//! `sshield-server serve` as an admin meets it: first start, the loopback rule, TLS.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use support::server::{binary, state_dir, Server};

#[test]
fn first_start_makes_the_state_dir_key_and_database_and_answers() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    assert!(
        server.banner.starts_with("listening on http://127.0.0.1:"),
        "{}",
        server.banner
    );
    assert_eq!(
        server.request("GET", "/healthz", &[], b""),
        (200, "ok\n".to_owned())
    );
    let mode = |p: &str| {
        std::fs::metadata(state.join(p))
            .expect("exists")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode(""), 0o700);
    assert_eq!(mode("record.key"), 0o600);
    assert!(state.join("sshield-server.db").exists());
}

#[test]
fn plain_http_on_a_public_address_is_refused_with_the_fix() {
    let (_tmp, state) = state_dir();
    let out = binary()
        .arg("--state-dir")
        .arg(&state)
        .args(["serve", "--listen", "0.0.0.0:0"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to serve plain HTTP on 0.0.0.0:0") && err.contains("--tls-cert"),
        "{err}"
    );
    // Refused before anything is made.
    assert!(!state.exists());
}

#[test]
fn a_config_file_with_an_unknown_key_names_the_file_and_line() {
    let (tmp, state) = state_dir();
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\ntls_certificate = \"x\"\n",
    )
    .expect("w");
    let out = binary()
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .arg("serve")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.toml") && err.contains("line 2") && err.contains("tls_certificate"),
        "{err}"
    );
}

#[test]
fn tls_serves_with_the_given_certificate() {
    let (tmp, state) = state_dir();
    let (server, [ca, _, _]) = Server::start_tls(&state, tmp.path());
    assert!(
        server.banner.starts_with("listening on https://"),
        "{}",
        server.banner
    );
    let out = Command::new("curl")
        .args(["--silent", "--show-error", "--cacert"])
        .arg(&ca)
        .arg(format!("https://{}/healthz", server.addr))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}
