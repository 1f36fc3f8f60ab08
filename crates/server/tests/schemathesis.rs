//! schemathesis (PyPI) against a running server's own `/v1/openapi.json`: every check it has
//! (no 5xx, responses that match their schemas, schema-valid requests accepted and invalid
//! ones refused, authentication enforced), with every request signed as a joined host signs
//! it (tests/schemathesis/sign_requests.py) so `/v1/verify` is exercised past its signature.
//! scripts/install-test-deps installs it; tests/schemathesis/schemathesis.toml holds its one
//! setting, with the reason.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use sshield_server::storage::{AuditQuery, Backend, DatabaseTarget, Storage};
use support::server::{enroll_confirmed, state_dir, Server, TestHost};

/// `st`, from $SSHIELD_SCHEMATHESIS or the virtualenv scripts/install-test-deps makes.
fn schemathesis() -> PathBuf {
    let st = std::env::var_os("SSHIELD_SCHEMATHESIS").map_or_else(
        || {
            let venv = std::env::var_os("SSHIELD_TEST_VENV").map_or_else(
                || {
                    let home = std::env::var_os("HOME").unwrap_or_default();
                    Path::new(&home).join(".cache/sshield-test-venv")
                },
                PathBuf::from,
            );
            venv.join("bin/st")
        },
        PathBuf::from,
    );
    assert!(
        st.is_file(),
        "schemathesis is not installed at {}: run scripts/install-test-deps",
        st.display()
    );
    st
}

#[test]
fn schemathesis_finds_no_5xx_and_no_schema_violation() {
    let st = schemathesis();
    let (tmp, state) = state_dir();
    // Denials answer at once: the fuzzer sends hundreds, the delays are tested elsewhere. A
    // push wait on a request the fuzzer made itself is held open at most 2 s (25 s by
    // default, past schemathesis's 10 s read timeout, which it reports as an error).
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        "[rate_limit]\ndelay = \"0s\"\n[push]\nmax_wait = \"2s\"\n",
    )
    .expect("write config");
    let global = ["--config", config.to_str().expect("utf-8")];
    let server = Server::start(&state, &global, &["--listen", "127.0.0.1:0"]);
    // The document's example user exists, so some requests reach a real record.
    enroll_confirmed(&state, &global, "alice");
    let host = TestHost::new("st-host", 5);
    host.join(&server, &state, &global);
    let base = format!("http://{}", server.addr);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    // Run in the temp dir: schemathesis and hypothesis leave caches in the working directory.
    let out = Command::new(&st)
        .current_dir(tmp.path())
        .env("SCHEMATHESIS_HOOKS", "sign_requests")
        .env("PYTHONPATH", &dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("SSHIELD_ST_HOST", &host.name)
        .env("SSHIELD_ST_SEED", "05".repeat(32))
        .arg("--config-file")
        .arg(dir.join("schemathesis.toml"))
        .args(["run", &format!("{base}/v1/openapi.json"), "--url", &base])
        .args(["--generation-database", "none"])
        .args(["--checks", "all", "--max-examples", "100", "--seed", "1"])
        .args(["--no-color"])
        // Placeholders, so schemathesis counts the signature headers as given credentials;
        // the hook replaces them with a good signature.
        .args(["-H", "X-Sshield-Host: x", "-H", "X-Sshield-Timestamp: 0"])
        .args(["-H", "X-Sshield-Nonce: x", "-H", "X-Sshield-Signature: x"])
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis found failures:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");

    // Signed requests reached the engine: the host's decisions are in the audit log.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let decisions = runtime.block_on(async {
        let target = DatabaseTarget::Sqlite(state.join("sshield-server.db"));
        let store = Backend::open(&target).await.expect("open");
        let query = AuditQuery {
            host: Some(host.name.clone()),
            limit: 100_000,
            ..AuditQuery::default()
        };
        store.query_audit(&query).await.expect("audit").len()
    });
    assert!(
        decisions >= 20,
        "only {decisions} signed verifications:\n{report}"
    );
}
