//! Every way a host's request can be wrong, as the server answers it: a 4xx with a message
//! that says what to fix, never a 5xx, and nothing stored changed. The table is written into
//! docs/bad-input.md (crates/e2e/src/bad_input.rs). Then a disk-full SQLite: a 503 with the
//! cause in the server's log, and nothing already stored lost.

mod support;

use std::path::Path;
use std::process::Command;

use sha2::{Digest, Sha256};
use sshield_e2e::bad_input::{Row, Table};
use sshield_server::storage::{AuditQuery, Backend, DatabaseTarget, Storage};
use support::server::{
    cli, enroll_confirmed, fresh_nonce, now, oathtool, state_dir, verify_body, verify_from, Server,
    TestHost,
};

/// Users (name, version, SHA-256 of the sealed record), hosts, audit entries.
type Stored = (Vec<(String, i64, Vec<u8>)>, Vec<String>, usize);

/// What the database holds, read with the library while the server runs: each user's name,
/// version and sealed record (hashed), the hosts, and how many audit entries there are.
fn stored(state: &Path) -> Stored {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let target = DatabaseTarget::Sqlite(state.join("sshield-server.db"));
        let store = Backend::open(&target).await.expect("open");
        let mut users = Vec::new();
        for row in store.list_users().await.expect("users") {
            let full = store
                .load_user(&row.name)
                .await
                .expect("user")
                .expect("row");
            users.push((
                full.name,
                full.version,
                Sha256::digest(&full.sealed).to_vec(),
            ));
        }
        let hosts = store
            .list_hosts()
            .await
            .expect("hosts")
            .into_iter()
            .map(|h| format!("{}:{:?}", h.name, h.revoked_at))
            .collect();
        let audit = store
            .query_audit(&AuditQuery {
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .expect("audit")
            .len();
        (users, hosts, audit)
    })
}

/// The number in "its time is -120s from the server's", which depends on the second.
fn steady(message: &str) -> String {
    match message.split_once("its time is ") {
        Some((head, tail)) => {
            let rest = tail.trim_start_matches(|c: char| c == '-' || c.is_ascii_digit());
            format!("{head}its time is Ns{}", rest.trim_start_matches('s'))
        }
        None => message.to_owned(),
    }
}

#[test]
fn table_server_requests() {
    let (_tmp, state) = state_dir();
    let server = Server::start(&state, &[], &["--listen", "127.0.0.1:0"]);
    let secret = enroll_confirmed(&state, &[], "alice");
    let host = TestHost::new("web1", 1);
    host.join(&server, &state, &[]);
    let good = verify_body("alice", &oathtool(&secret, 30));
    let path = "/v1/verify";
    let json = "application/json";
    let signed =
        |body: &str, ts: i64, nonce: &str| host.headers("POST", path, body.as_bytes(), ts, nonce);
    let with = |headers: Vec<(&'static str, String)>, name: &'static str, value: &str| {
        let mut h: Vec<_> = headers.into_iter().filter(|(k, _)| *k != name).collect();
        if !value.is_empty() {
            h.push((name, value.to_owned()));
        }
        h
    };
    let big = format!(
        r#"{{"user":"alice","code":"{}","service":"sshd"}}"#,
        "1".repeat(20_000)
    );
    let other_path = host.headers("POST", "/v1/join", good.as_bytes(), now(), &fresh_nonce());
    let other_method = host.headers("PUT", path, good.as_bytes(), now(), &fresh_nonce());
    let altered = signed(&verify_body("alice", "000000"), now(), &fresh_nonce());
    let stranger = TestHost::new("web9", 9);
    let impostor = TestHost::new("web1", 2);
    // (input, tried with, method, path, headers, content type, body, status)
    type Case = (
        &'static str,
        String,
        &'static str,
        &'static str,
        Vec<(&'static str, String)>,
        &'static str,
        String,
        u16,
    );
    let cases: Vec<Case> = vec![
        ("no signature headers at all", "POST /v1/verify".into(), "POST", path, vec![], json, good.clone(), 401),
        ("X-Sshield-Signature left out", "POST /v1/verify".into(), "POST", path, with(signed(&good, now(), &fresh_nonce()), "x-sshield-signature", ""), json, good.clone(), 401),
        ("X-Sshield-Timestamp: yesterday", "POST /v1/verify".into(), "POST", path, with(signed(&good, now(), &fresh_nonce()), "x-sshield-timestamp", "yesterday"), json, good.clone(), 401),
        ("X-Sshield-Nonce: short", "POST /v1/verify".into(), "POST", path, signed(&good, now(), "short"), json, good.clone(), 401),
        ("X-Sshield-Nonce: ../../etc/passwd/x", "POST /v1/verify".into(), "POST", path, signed(&good, now(), "../../etc/passwd/x"), json, good.clone(), 401),
        ("X-Sshield-Signature: not base64!", "POST /v1/verify".into(), "POST", path, with(signed(&good, now(), &fresh_nonce()), "x-sshield-signature", "not base64!"), json, good.clone(), 401),
        ("X-Sshield-Signature: 10 bytes", "POST /v1/verify".into(), "POST", path, with(signed(&good, now(), &fresh_nonce()), "x-sshield-signature", "AAAAAAAAAAAAAA=="), json, good.clone(), 401),
        ("signed 2 minutes ago", "POST /v1/verify".into(), "POST", path, signed(&good, now() - 120, &fresh_nonce()), json, good.clone(), 401),
        ("signed 2 minutes ahead", "POST /v1/verify".into(), "POST", path, signed(&good, now() + 120, &fresh_nonce()), json, good.clone(), 401),
        ("signed for /v1/join", "POST /v1/verify".into(), "POST", path, other_path, json, good.clone(), 401),
        ("signed for PUT", "POST /v1/verify".into(), "POST", path, other_method, json, good.clone(), 401),
        ("body changed after signing", "POST /v1/verify".into(), "POST", path, altered, json, good.clone(), 401),
        ("a host that never joined", "POST /v1/verify as web9".into(), "POST", path, stranger.headers("POST", path, good.as_bytes(), now(), &fresh_nonce()), json, good.clone(), 401),
        ("web1's name, another key", "POST /v1/verify as web1".into(), "POST", path, impostor.headers("POST", path, good.as_bytes(), now(), &fresh_nonce()), json, good.clone(), 401),
        ("a 20 kB body (limit 16 kB)", "POST /v1/verify, signed".into(), "POST", path, signed(&big, now(), &fresh_nonce()), json, big.clone(), 413),
        ("a 20 kB body, unsigned", "POST /v1/verify".into(), "POST", path, vec![], json, big.clone(), 413),
        ("user=alice&code=1", "POST /v1/verify, signed, form-encoded".into(), "POST", path, signed("user=alice&code=1", now(), &fresh_nonce()), "application/x-www-form-urlencoded", "user=alice&code=1".into(), 415),
        ("{\"user\": ", "POST /v1/verify, signed".into(), "POST", path, signed("{\"user\": ", now(), &fresh_nonce()), json, "{\"user\": ".into(), 400),
        (r#"{"user":"alice","code":"1","service":"sshd","admin":true}"#, "POST /v1/verify, signed".into(), "POST", path, signed(r#"{"user":"alice","code":"1","service":"sshd","admin":true}"#, now(), &fresh_nonce()), json, r#"{"user":"alice","code":"1","service":"sshd","admin":true}"#.into(), 422),
        (r#"{"user":"../root","code":"1","service":"sshd"}"#, "POST /v1/verify, signed".into(), "POST", path, signed(r#"{"user":"../root","code":"1","service":"sshd"}"#, now(), &fresh_nonce()), json, r#"{"user":"../root","code":"1","service":"sshd"}"#.into(), 422),
        (r#"{"token":"sshj_x","name":"web2","public_key":"AAAA"}"#, "POST /v1/join".into(), "POST", "/v1/join", vec![], json, r#"{"token":"sshj_x","name":"web2","public_key":"AAAA"}"#.into(), 422),
        (r#"{"token":"sshj_forged","name":"web2","public_key":"<a real key>"}"#, "POST /v1/join".into(), "POST", "/v1/join", vec![], json, serde_json::json!({"token":"sshj_forged","name":"web2","public_key":stranger.public_key()}).to_string(), 401),
    ];
    // Offline logins' routes (docs/server.md, "Offline logins").
    let for_path = |method: &str, at: &str, body: &str| {
        host.headers(method, at, body.as_bytes(), now(), &fresh_nonce())
    };
    let material = r#"{"user":"alice","window_secs":3600}"#;
    let short_id = r#"{"reports":[{"id":"short","time":1,"user":"alice","service":"sshd","outcome":"failmode","reason":"unreachable"}]}"#;
    let allowed = r#"{"reports":[{"id":"0123456789abcdef","time":1,"user":"alice","service":"sshd","outcome":"allowed"}]}"#;
    let neither = r#"{"reports":[{"id":"0123456789abcdef","time":1,"user":"alice","service":"sshd","outcome":"offline","method":"totp"}]}"#;
    let offline_cases: Vec<Case> = vec![
        (
            material,
            "POST /v1/offline, signed, no allowed login from web1 just before".into(),
            "POST",
            "/v1/offline",
            for_path("POST", "/v1/offline", material),
            json,
            material.into(),
            403,
        ),
        (
            short_id,
            "POST /v1/report, signed".into(),
            "POST",
            "/v1/report",
            for_path("POST", "/v1/report", short_id),
            json,
            short_id.into(),
            422,
        ),
        (
            allowed,
            "POST /v1/report, signed".into(),
            "POST",
            "/v1/report",
            for_path("POST", "/v1/report", allowed),
            json,
            allowed.into(),
            422,
        ),
        (
            neither,
            "POST /v1/report, signed".into(),
            "POST",
            "/v1/report",
            for_path("POST", "/v1/report", neither),
            json,
            neither.into(),
            422,
        ),
        (
            "?host=web2",
            "GET /v1/audit?host=web2, signed".into(),
            "GET",
            "/v1/audit?host=web2",
            for_path("GET", "/v1/audit?host=web2", ""),
            json,
            String::new(),
            400,
        ),
        (
            "?limit=100000",
            "GET /v1/audit?limit=100000, signed".into(),
            "GET",
            "/v1/audit?limit=100000",
            for_path("GET", "/v1/audit?limit=100000", ""),
            json,
            String::new(),
            400,
        ),
    ];
    let cases: Vec<Case> = cases.into_iter().chain(offline_cases).collect();
    let mut table = Table::new(
        "server requests",
        "cargo test -p sshield-server --test bad_input table_server_requests",
    );
    for (input, tried, method, at, headers, content_type, body, status) in cases {
        let before = stored(&state);
        let mut refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refs.push(("content-type", content_type));
        let (got, answer) = server.request(method, at, &refs, body.as_bytes());
        assert_eq!(got, status, "{input}: {answer}");
        let message = serde_json::from_str::<serde_json::Value>(&answer)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("{input}: not a JSON error: {answer}"));
        let after = stored(&state);
        assert_eq!(before, after, "{input}: stored data changed");
        table.push(Row {
            input: input.to_owned(),
            tried,
            outcome: format!("HTTP {status}"),
            message: steady(&message),
            stored: format!(
                "unchanged ({} user, {} host, {} audit entries)",
                after.0.len(),
                after.1.len(),
                after.2
            ),
        });
    }
    // A good request sent twice: the second is the replay.
    let nonce = fresh_nonce();
    let headers = signed(&verify_body("nobody", "123456"), now(), &nonce);
    let body = verify_body("nobody", "123456");
    assert_eq!(
        server.post_with(path, &headers, json, body.as_bytes()).0,
        200
    );
    let before = stored(&state);
    let (status, answer) = server.post_with(path, &headers, json, body.as_bytes());
    assert_eq!(status, 401, "{answer}");
    let after = stored(&state);
    assert_eq!(before, after, "a replay changed stored data");
    let message: serde_json::Value = serde_json::from_str(&answer).expect("JSON");
    table.push(Row {
        input: "a signed request sent again".to_owned(),
        tried: "POST /v1/verify, same nonce".to_owned(),
        outcome: "HTTP 401".to_owned(),
        message: message["error"].as_str().unwrap_or_default().to_owned(),
        stored: format!(
            "unchanged ({} user, {} host, {} audit entries)",
            after.0.len(),
            after.1.len(),
            after.2
        ),
    });
    // Nothing above used alice's code.
    let (status, answer) = host.post(&server, path, &good);
    assert!(status == 200 && answer.contains("allowed"), "{answer}");
    table.check();
}

/// A tiny filesystem of its own (tmpfs, unmounted after) so the disk can be filled.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let done = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(done.success(), "mount a tmpfs (this test needs root)");
        Self { dir }
    }

    /// Writes `name` until the filesystem is full.
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.dir.path().join(name)).expect("filler");
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// SQLite on a full disk: a verification that cannot be stored is a 503 (the server's fault,
/// not the host's), the log says the disk is full, the code is not used up, an admin's change
/// that cannot be stored fails with the cause, and once there is room again everything stored
/// before is there and the same code is accepted once. (SQLite writes into space its log
/// file already holds first: writes go on until that is used up.)
#[test]
fn a_full_disk_is_a_503_and_loses_nothing() {
    let disk = Tmpfs::new("4m");
    let state = disk.dir.path().join("state");
    let logs_dir = tempfile::tempdir().expect("tempdir");
    let logs = std::fs::File::create(logs_dir.path().join("server.log")).expect("log");
    let server = Server::start_logging(&state, &[], &["--listen", "127.0.0.1:0"], "warn", logs);
    let secret = enroll_confirmed(&state, &[], "ivy");
    enroll_confirmed(&state, &[], "jon");
    let host = TestHost::new("web1", 1);
    host.join(&server, &state, &[]);
    let before = stored(&state);
    disk.fill("filler");

    // Space the write-ahead log already holds is used again once it was copied into the
    // database (every 100 ms): the first verifications on the full disk may still be stored,
    // whole. Denials of unknown users from other sources (each stored with its audit entry and
    // its source's count) use that space up; the database cannot grow, so the log cannot
    // start over, and a verification that needs new space is a 503.
    let mut full = None;
    for i in 0..400 {
        let source = format!("198.51.{}.{}", 100 + i / 200, 1 + i % 200);
        let filler = verify_from(&format!("nobody{i}"), "000000", &source);
        let (status, body) = host.post(&server, "/v1/verify", &filler);
        if status == 503 {
            full = Some(body);
            break;
        }
        assert!(
            status == 200 && body.contains("not-enrolled"),
            "{status} {body}"
        );
    }
    let full = full.expect("a full disk was a 503 within 400 verifications");
    assert!(full.contains("database failed"), "{full}");
    // What SQLite gave back after the failed write is taken again before each step below.
    disk.fill("filler-2");
    let code = oathtool(&secret, 30);
    let (status, body) = host.post(&server, "/v1/verify", &verify_body("ivy", &code));
    assert!(
        status == 503 && body.contains("database failed"),
        "{status} {body}"
    );
    // An admin's change bigger than the whole disk (a small one may still fit where SQLite
    // wrote before, and is then stored whole).
    disk.fill("filler-3");
    let oath = logs_dir.path().join("users.oath");
    let lines: String = (0..20_000)
        .map(|i| format!("HOTP/T30 kim{i} - {:040x}\n", i + 1))
        .collect();
    std::fs::write(&oath, lines).expect("users.oath");
    let oath = oath.to_string_lossy().into_owned();
    let (ok, _, err) = cli(&state, &[], &["user", "import-users-oath", &oath]);
    assert!(!ok && err.contains("full"), "the admin is told: {err}");
    let log = std::fs::read_to_string(logs_dir.path().join("server.log")).expect("log");
    assert!(log.contains("database or disk is full"), "{log}");

    for filler in ["filler", "filler-2", "filler-3"] {
        std::fs::remove_file(disk.dir.path().join(filler)).expect("make room");
    }
    let after = stored(&state);
    assert_eq!(before.0, after.0, "every user as before");
    assert_eq!(before.1, after.1, "every host as before");
    let (status, body) = host.post(&server, "/v1/verify", &verify_body("ivy", &code));
    assert!(status == 200 && body.contains("allowed"), "{body}");
    let (status, body) = host.post(&server, "/v1/verify", &verify_body("ivy", &code));
    assert!(status == 200 && body.contains("replayed"), "{body}");
    drop(server);
}

/// Two replicas on one PostgreSQL: a signed request answered by one and sent again to the
/// other is a replay there too (the nonce is remembered in the shared database).
#[test]
fn a_request_replayed_to_another_replica_is_refused() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let db = runtime.block_on(support::pg::database());
    let global = ["--database", db.url.as_str()];
    let (_tmp, state) = state_dir();
    let first = Server::start(&state, &global, &["--listen", "127.0.0.1:0"]);
    let second = Server::start(&state, &global, &["--listen", "127.0.0.1:0"]);
    let secret = enroll_confirmed(&state, &global, "lea");
    let host = TestHost::new("web1", 1);
    host.join(&first, &state, &global);
    let body = verify_body("lea", &oathtool(&secret, 30));
    let headers = host.headers("POST", "/v1/verify", body.as_bytes(), now(), &fresh_nonce());
    let json = "application/json";
    let (status, answer) = first.post_with("/v1/verify", &headers, json, body.as_bytes());
    assert!(status == 200 && answer.contains("allowed"), "{answer}");
    let (status, answer) = second.post_with("/v1/verify", &headers, json, body.as_bytes());
    assert!(
        status == 401 && answer.contains("replayed request"),
        "{status} {answer}"
    );
}

/// What a phone's bad requests could change: each request's state, the devices, each
/// passkey (its counter), unused enrollment links, the audit entries.
fn phone_state(state: &Path, users: &[&str]) -> String {
    use sshield_server::storage::{PasskeyStorage, PushStorage};
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let target = DatabaseTarget::Sqlite(state.join("sshield-server.db"));
        let store = Backend::open(&target).await.expect("open");
        let mut out = String::new();
        for user in users {
            let pending = store.pending_approvals(user, now()).await.expect("pending");
            let devices = store.list_devices(user).await.expect("devices");
            let passkeys = store.passkeys_of(user).await.expect("passkeys");
            out.push_str(&format!(
                "{user}: pending {:?}, devices {:?}, passkeys {:?}\n",
                pending.iter().map(|r| &r.id).collect::<Vec<_>>(),
                devices
                    .iter()
                    .map(|d| (&d.id, d.revoked_at))
                    .collect::<Vec<_>>(),
                passkeys.iter().map(|p| &p.passkey).collect::<Vec<_>>(),
            ));
        }
        let audit = store
            .query_audit(&AuditQuery {
                limit: 100_000,
                ..AuditQuery::default()
            })
            .await
            .expect("audit")
            .len();
        out.push_str(&format!("audit {audit}"));
        out
    })
}

/// The origin the phones' server calls itself.
const ORIGIN: &str = "https://sshield.test";

/// A server for phones at [`ORIGIN`] whose enrollment links last `link_ttl` seconds, with
/// alice and bob enrolled and confirmed: its temp dir, state dir, config file and process.
fn phone_world(link_ttl: u64) -> (tempfile::TempDir, std::path::PathBuf, String, Server) {
    let (tmp, state) = state_dir();
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        format!("[push]\npublic_url = \"{ORIGIN}\"\nenroll_link_ttl = \"{link_ttl}s\"\n"),
    )
    .expect("config");
    let config = config.to_str().expect("utf-8").to_owned();
    let global = ["--config", config.as_str()];
    let server = Server::start(&state, &global, &["--listen", "127.0.0.1:0"]);
    enroll_confirmed(&state, &global, "alice");
    enroll_confirmed(&state, &global, "bob");
    (tmp, state, config, server)
}

/// A phone's bad requests (forged, replayed or phished passkey assertions, another user's
/// request, cross-site requests, spent or expired links): each a 4xx with what to do, logged,
/// and nothing changed: the request still pending, no device added, no counter moved.
#[test]
fn table_phone_requests() {
    use serde_json::{json, Value};
    use support::passkey::{challenge, enroll_with, SoftPasskey};

    let (_tmp, state, config, server) = phone_world(2);
    let global = ["--config", config.as_str()];
    let host = TestHost::new("web1", 1);
    host.join(&server, &state, &global);
    let json_of =
        |s: &str| -> Value { serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}")) };
    let link = |user: &str| {
        let (ok, out, err) = cli(&state, &global, &["push", "enroll-link", user]);
        assert!(ok, "{err}");
        out.lines()
            .next()
            .expect("link")
            .rsplit('#')
            .next()
            .expect("token")
            .to_owned()
    };
    let enroll = |user: &str, passkey: &mut SoftPasskey| -> (String, String) {
        let token = link(user);
        (enroll_with(&server, &token, passkey).0, token)
    };

    let mut alice_key = SoftPasskey::new(1, ORIGIN);
    let (alice, spent_link) = enroll("alice", &mut alice_key);
    let mut bob_key = SoftPasskey::new(2, ORIGIN);
    let (bob, _) = enroll("bob", &mut bob_key);
    let ask = |user: &str| -> (String, i64) {
        let body = json!({"user": user, "source": "203.0.113.9", "service": "sshd"}).to_string();
        let (status, created) = host.post(&server, "/v1/push", &body);
        assert_eq!(status, 201, "{created}");
        let created = json_of(&created);
        (
            created["id"].as_str().expect("id").to_owned(),
            created["number"].as_i64().expect("n"),
        )
    };
    let challenge = |token: &str, id: &str| -> Value {
        let (status, options) = challenge(&server, token, id);
        assert_eq!(status, 200, "{options}");
        options
    };

    // A good approval first: its assertion is the one replayed below.
    let (first, number) = ask("alice");
    let options = challenge(&alice, &first);
    let used = alice_key.assert(&options);
    let body = json!({"decision": "approve", "number": number, "assertion": used});
    let auth = format!("Bearer {alice}");
    let (status, answer) = server.request(
        "POST",
        &format!("/v1/me/approvals/{first}"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.to_string().as_bytes(),
    );
    assert!(status == 200 && answer.contains("approved"), "{answer}");

    // Alice's next request, pending through every case below.
    let (id, number) = ask("alice");
    let decide_path = format!("/v1/me/approvals/{id}");
    // The same credential id, another key: what a forger without the phone has.
    let mut forger = SoftPasskey::new(3, ORIGIN);
    forger.id = alice_key.id.clone();
    forger.counter = 1000;
    let mut phisher = SoftPasskey::new(1, "https://sshield.test.evil.example");
    phisher.counter = 2000;
    let mut unverified = SoftPasskey::new(1, ORIGIN);
    unverified.verified = false;
    unverified.counter = 3000;
    let late_link = link("alice");
    std::thread::sleep(std::time::Duration::from_millis(2_100));
    let approve_with = |assertion: Value| {
        json!({"decision": "approve", "number": number, "assertion": assertion}).to_string()
    };
    let bearer = |token: &str| vec![("authorization", format!("Bearer {token}"))];
    let json_type = "application/json";
    let cross_site = vec![
        ("origin", "https://evil.example".to_owned()),
        ("sec-fetch-site", "cross-site".to_owned()),
    ];
    // (input, tried, path, headers, content type, body, status): each row's body is made
    // just before it is sent, after a fresh challenge where the row needs one.
    type Case<'a> = (
        &'static str,
        &'static str,
        String,
        Vec<(&'static str, String)>,
        &'static str,
        Box<dyn FnMut() -> String + 'a>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "an assertion signed by another key (forged)",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            bearer(&alice),
            json_type,
            Box::new(|| {
                let o = challenge(&alice, &id);
                approve_with(forger.assert(&o))
            }),
            403,
        ),
        (
            "the last approval's assertion, sent again (replayed)",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            bearer(&alice),
            json_type,
            Box::new(|| {
                challenge(&alice, &id);
                approve_with(used.clone())
            }),
            403,
        ),
        (
            "an assertion made on another site (phished)",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            bearer(&alice),
            json_type,
            Box::new(|| {
                let o = challenge(&alice, &id);
                approve_with(phisher.assert(&o))
            }),
            403,
        ),
        (
            "an assertion without user verification",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            bearer(&alice),
            json_type,
            Box::new(|| {
                let o = challenge(&alice, &id);
                approve_with(unverified.assert(&o))
            }),
            403,
        ),
        (
            "a good assertion, no challenge asked",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            bearer(&alice),
            json_type,
            Box::new(|| {
                let mut again = SoftPasskey::new(1, ORIGIN);
                again.counter = 4000;
                approve_with(again.assert(&json!({"publicKey": {"challenge": "AAAA"}})))
            }),
            403,
        ),
        (
            "approve with a number and no assertion",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            bearer(&alice),
            json_type,
            Box::new(|| json!({"decision": "approve", "number": number}).to_string()),
            422,
        ),
        (
            "bob's device asks a challenge for alice's request",
            "POST /v1/me/approvals/{id}/challenge as bob",
            format!("{decide_path}/challenge"),
            bearer(&bob),
            json_type,
            Box::new(String::new),
            404,
        ),
        (
            "bob's device denies alice's request",
            "POST /v1/me/approvals/{id} as bob",
            decide_path.clone(),
            bearer(&bob),
            json_type,
            Box::new(|| json!({"decision": "deny"}).to_string()),
            404,
        ),
        (
            "a cross-site request: Origin https://evil.example, text/plain",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            cross_site.clone(),
            "text/plain",
            Box::new(|| json!({"decision": "report"}).to_string()),
            403,
        ),
        (
            "a cross-site request with the device's token",
            "POST /v1/me/approvals/{id}",
            decide_path.clone(),
            [cross_site.clone(), bearer(&alice)].concat(),
            json_type,
            Box::new(|| json!({"decision": "report"}).to_string()),
            403,
        ),
        (
            "a cross-site enrollment with a link's token",
            "POST /v1/enroll",
            "/v1/enroll".to_owned(),
            cross_site.clone(),
            "text/plain",
            Box::new(|| json!({"token": late_link, "name": "x"}).to_string()),
            403,
        ),
        (
            "a link used already",
            "POST /v1/enroll/passkey",
            "/v1/enroll/passkey".to_owned(),
            vec![],
            json_type,
            Box::new(|| json!({"token": spent_link}).to_string()),
            401,
        ),
        (
            "an expired link",
            "POST /v1/enroll/passkey",
            "/v1/enroll/passkey".to_owned(),
            vec![],
            json_type,
            Box::new(|| json!({"token": late_link}).to_string()),
            401,
        ),
        (
            "an expired link, with a passkey",
            "POST /v1/enroll",
            "/v1/enroll".to_owned(),
            vec![],
            json_type,
            Box::new(|| {
                json!({"token": late_link, "name": "x", "passkey": SoftPasskey::new(4, ORIGIN).register(&json!({"publicKey": {"challenge": "AAAA"}}))}).to_string()
            }),
            401,
        ),
    ];
    let mut table = Table::new(
        "phone requests",
        "cargo test -p sshield-server --test bad_input table_phone_requests",
    );
    for (input, tried, at, headers, content_type, mut body, status) in cases {
        let body = body();
        let before = phone_state(&state, &["alice", "bob"]);
        let mut refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refs.push(("content-type", content_type));
        let (got, answer) = server.request("POST", &at, &refs, body.as_bytes());
        assert_eq!(got, status, "{input}: {answer}");
        let message = json_of(&answer)["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{input}: not a JSON error: {answer}"))
            .replace(&id, "{id}");
        let after = phone_state(&state, &["alice", "bob"]);
        assert_eq!(before, after, "{input}: stored data changed");
        table.push(Row {
            input: input.to_owned(),
            tried: tried.to_owned(),
            outcome: format!("HTTP {status}"),
            message,
            stored: "unchanged (the request pending, 2 devices, no passkey counter moved)"
                .to_owned(),
        });
    }
    // After all that, the phone still approves the request, once.
    let options = challenge(&alice, &id);
    let body = approve_with(alice_key.assert(&options));
    let (status, answer) = server.request(
        "POST",
        &decide_path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert!(status == 200 && answer.contains("approved"), "{answer}");
    table.check();
}

/// The authenticator app step of a phone's enrollment (`/v1/me/authenticator`, its
/// `/confirm`): a device enrolled too long ago, one whose step is spent, another user's
/// device, a wrong code, nothing pending, a cross-site request. Each a 4xx naming what to do;
/// no secret is handed out and no authenticator changes (the users' sealed records read before
/// and after); a wrong code only counts as a failed try, and the app still confirms after.
#[test]
fn table_app_step_requests() {
    use serde_json::{json, Value};
    use support::passkey::{enroll_with, SoftPasskey};

    const TTL: u64 = 5;
    let (_tmp, state, config, server) = phone_world(TTL);
    let global = ["--config", config.as_str()];
    let json_of =
        |s: &str| -> Value { serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}")) };
    let mut seed = 10;
    let mut enroll = |user: &str| -> String {
        let (ok, out, err) = cli(&state, &global, &["push", "enroll-link", user]);
        assert!(ok, "{err}");
        let token = out
            .lines()
            .next()
            .and_then(|l| l.rsplit('#').next())
            .expect("token")
            .to_owned();
        seed += 1;
        enroll_with(&server, &token, &mut SoftPasskey::new(seed, ORIGIN)).0
    };
    let send = |token: &str, path: &str, body: &str| -> (u16, Value) {
        let (status, answer) = server.post_as(token, path, body);
        (status, json_of(&answer))
    };
    const BEGIN: &str = "/v1/me/authenticator";
    const CONFIRM: &str = "/v1/me/authenticator/confirm";

    let old = enroll("alice");
    std::thread::sleep(std::time::Duration::from_millis(TTL * 1000 + 200));
    // A phone that added its app already.
    let done = enroll("alice");
    let (status, offer) = send(&done, BEGIN, "{}");
    assert_eq!(status, 201, "{offer}");
    let first = offer["secret"].as_str().expect("secret").to_owned();
    let body = json!({"code": oathtool(&first, 0)}).to_string();
    let (status, answer) = send(&done, CONFIRM, &body);
    assert_eq!(status, 200, "{answer}");
    // The phone whose app is pending through every row.
    let alice = enroll("alice");
    let (status, offer) = send(&alice, BEGIN, "{}");
    assert_eq!(status, 201, "{offer}");
    assert!(
        offer["qr_svg"]
            .as_str()
            .is_some_and(|s| s.starts_with("<?xml") || s.starts_with("<svg")),
        "{offer}"
    );
    let secret = offer["secret"].as_str().expect("secret").to_owned();
    let bob = enroll("bob");
    let near: Vec<String> = [-60, -30, 0, 30, 60]
        .iter()
        .map(|s| oathtool(&secret, *s))
        .collect();
    let wrong = ["000000", "111111", "222222"]
        .into_iter()
        .find(|c| !near.iter().any(|n| n == c))
        .expect("a wrong code");
    let right = || json!({"code": oathtool(&secret, 0)}).to_string();
    let bearer = |token: &str| vec![("authorization", format!("Bearer {token}"))];
    let cross_site = vec![
        ("origin", "https://evil.example".to_owned()),
        ("sec-fetch-site", "cross-site".to_owned()),
    ];
    let json_type = "application/json";
    // (input, tried, path, headers, content type, body, status, what may change)
    type Case = (
        &'static str,
        &'static str,
        &'static str,
        Vec<(&'static str, String)>,
        &'static str,
        String,
        u16,
        &'static str,
    );
    let unchanged =
        "unchanged (no secret handed out; alice's app still pending, every record as it was)";
    let cases: Vec<Case> = vec![
        (
            "a device enrolled longer ago than enroll_link_ttl",
            "POST /v1/me/authenticator",
            BEGIN,
            bearer(&old),
            json_type,
            "{}".into(),
            403,
            unchanged,
        ),
        (
            "a device enrolled long ago, with the pending app's right code",
            "POST /v1/me/authenticator/confirm",
            CONFIRM,
            bearer(&old),
            json_type,
            right(),
            403,
            unchanged,
        ),
        (
            "a device that confirmed its app already (the step is spent)",
            "POST /v1/me/authenticator",
            BEGIN,
            bearer(&done),
            json_type,
            "{}".into(),
            403,
            unchanged,
        ),
        (
            "bob's device names alice",
            "POST /v1/me/authenticator as bob",
            BEGIN,
            bearer(&bob),
            json_type,
            json!({"user": "alice"}).to_string(),
            422,
            unchanged,
        ),
        (
            "bob's device confirms with alice's app's code (nothing pending for bob)",
            "POST /v1/me/authenticator/confirm as bob",
            CONFIRM,
            bearer(&bob),
            json_type,
            right(),
            409,
            unchanged,
        ),
        (
            "a code the app does not show",
            "POST /v1/me/authenticator/confirm",
            CONFIRM,
            bearer(&alice),
            json_type,
            json!({"code": wrong}).to_string(),
            403,
            "alice's app still pending; one failed try counted and audited",
        ),
        (
            "a confirmation without a code",
            "POST /v1/me/authenticator/confirm",
            CONFIRM,
            bearer(&alice),
            json_type,
            "{}".into(),
            422,
            unchanged,
        ),
        (
            "a cross-site request with the device's token",
            "POST /v1/me/authenticator",
            BEGIN,
            [cross_site.clone(), bearer(&alice)].concat(),
            json_type,
            "{}".into(),
            403,
            unchanged,
        ),
        (
            "a cross-site confirmation: Origin https://evil.example, text/plain",
            "POST /v1/me/authenticator/confirm",
            CONFIRM,
            [cross_site.clone(), bearer(&alice)].concat(),
            "text/plain",
            right(),
            403,
            unchanged,
        ),
        (
            "a form post (text/plain) from this site's origin",
            "POST /v1/me/authenticator",
            BEGIN,
            bearer(&alice),
            "text/plain",
            "{}".into(),
            415,
            unchanged,
        ),
        (
            "no device token",
            "POST /v1/me/authenticator",
            BEGIN,
            vec![],
            json_type,
            "{}".into(),
            401,
            unchanged,
        ),
    ];
    let mut table = Table::new(
        "app step requests",
        "cargo test -p sshield-server --test bad_input table_app_step_requests",
    );
    for (input, tried, at, headers, content_type, body, status, changes) in cases {
        let before = stored(&state);
        let mut refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refs.push(("content-type", content_type));
        let (got, answer) = server.request("POST", at, &refs, body.as_bytes());
        assert_eq!(got, status, "{input}: {answer}");
        assert!(!answer.contains(&secret), "{input}: the secret in {answer}");
        let message = json_of(&answer)["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{input}: not a JSON error: {answer}"))
            .to_owned();
        let after = stored(&state);
        if changes == unchanged {
            assert_eq!(before, after, "{input}: stored data changed");
        } else {
            // The failed try: alice's record written once (its count), one audit entry.
            let version = |s: &Stored| {
                s.0.iter()
                    .find(|u| u.0 == "alice")
                    .map(|u| u.1)
                    .expect("alice")
            };
            assert_eq!(version(&after), version(&before) + 1, "{input}");
            assert_eq!(after.2, before.2 + 1, "{input}: one audit entry");
        }
        table.push(Row {
            input: input.to_owned(),
            tried: tried.to_owned(),
            outcome: format!("HTTP {status}"),
            message,
            stored: changes.to_owned(),
        });
    }
    // After all that, the app's code confirms it, once.
    let (status, answer) = send(&alice, CONFIRM, &right());
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = send(&alice, BEGIN, "{}");
    assert_eq!(status, 403, "{answer}");
    table.check();
}
