//! Offline logins, the server's side, on a SQLite file and on PostgreSQL: the material a host
//! gets right after an allowed login (and not otherwise), what it holds (hashes that match
//! oathtool's coming codes, no secret, no used step), reports that mark codes used once per id,
//! and a host's own audit. The host's side with real sshd: crates/e2e/tests/fleet.rs.

mod support;

use sshield_server::storage::{AuditQuery, Backend, DatabaseTarget, Storage};
use sshield_wire::offline::{backup_hash, code_hash, OfflineMaterial};
use support::server::{
    backup_codes_of, cli, fresh_nonce, now, oathtool, secret_of, state_dir, verify_body, Server,
    TestHost,
};

/// A backend for one test: the global flags that select it, and what keeps it alive.
struct Db {
    global: Vec<String>,
    target: Option<DatabaseTarget>,
    _pg: Option<support::pg::PgDatabase>,
}

impl Db {
    fn sqlite() -> Self {
        Self {
            global: Vec::new(),
            target: None,
            _pg: None,
        }
    }

    fn postgres() -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let pg = runtime.block_on(support::pg::database());
        Self {
            global: vec!["--database".to_owned(), pg.url.clone()],
            target: Some(DatabaseTarget::Postgres(pg.url.clone())),
            _pg: Some(pg),
        }
    }

    fn args(&self) -> Vec<&str> {
        self.global.iter().map(String::as_str).collect()
    }

    /// How many audit entries there are, read as another replica would.
    fn audit_count(&self, state: &std::path::Path) -> usize {
        let target = self
            .target
            .clone()
            .unwrap_or_else(|| DatabaseTarget::Sqlite(state.join("sshield-server.db")));
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(async {
            let store = Backend::open(&target).await.expect("open");
            store
                .query_audit(&AuditQuery {
                    limit: 1000,
                    ..AuditQuery::default()
                })
                .await
                .expect("query")
                .len()
        })
    }
}

/// `host`'s signed `GET path`.
fn get(server: &Server, host: &TestHost, path: &str) -> (u16, String) {
    let headers = host.headers("GET", path, b"", now(), &fresh_nonce());
    let refs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    server.request("GET", path, &refs, b"")
}

fn material_for(server: &Server, host: &TestHost, user: &str) -> (u16, String) {
    let body = serde_json::json!({"user": user, "window_secs": 3600}).to_string();
    host.post(server, "/v1/offline", &body)
}

fn offline_material_reports_and_audit(db: Db) {
    let (tmp, state) = state_dir();
    // Four steps either side, so a code after the ones used offline is still in the window.
    let config = tmp.path().join("server.toml");
    std::fs::write(&config, "[policy]\nwindow = 4\n").expect("config");
    let mut global = db.args();
    global.extend(["--config", config.to_str().expect("path")]);
    let server = Server::start(&state, &global, &["--listen", "127.0.0.1:0"]);
    let (ok, out, err) = cli(&state, &global, &["user", "enroll", "alice", "--no-qr"]);
    assert!(ok, "{err}");
    let secret = secret_of(&out);
    let backup = backup_codes_of(&out);
    let (ok, _, err) = cli(
        &state,
        &global,
        &["user", "confirm", "alice", &oathtool(&secret, 0)],
    );
    assert!(ok, "{err}");
    let web1 = TestHost::new("web1", 1);
    let web2 = TestHost::new("web2", 2);
    web1.join(&server, &state, &global);
    web2.join(&server, &state, &global);

    // Unsigned, or before any allowed login from this host: none.
    let body = serde_json::json!({"user": "alice", "window_secs": 3600}).to_string();
    let (status, answer) = server.post_json("/v1/offline", &body);
    assert_eq!(status, 401, "{answer}");
    let (status, answer) = material_for(&server, &web1, "alice");
    assert!(
        status == 403 && answer.contains("right after"),
        "{status} {answer}"
    );
    // A denied login opens nothing either.
    let (status, _) = web1.post(&server, "/v1/verify", &verify_body("alice", "000000"));
    assert_eq!(status, 200);
    let (status, _) = material_for(&server, &web1, "alice");
    assert_eq!(status, 403);

    // Allowed on web1: web1 (not web2) gets hashes of the coming codes and unused backups.
    let (status, answer) = web1.post(
        &server,
        "/v1/verify",
        &verify_body("alice", &oathtool(&secret, 30)),
    );
    assert!(status == 200 && answer.contains("allowed"), "{answer}");
    let (status, _) = material_for(&server, &web2, "alice");
    assert_eq!(status, 403, "another host");
    let (status, text) = material_for(&server, &web1, "alice");
    assert_eq!(status, 200, "{text}");
    let material: OfflineMaterial = serde_json::from_str(&text).expect("material");
    assert!(
        !text.contains(&secret)
            && !text.contains(&backup[0])
            && !text.contains(&oathtool(&secret, 60))
    );
    assert_eq!(material.expires - material.issued, 3600);
    let token = &material.tokens[0];
    assert_eq!((token.kind.as_str(), token.period), ("totp", 30));
    let step = u64::try_from(now()).expect("time") / 30;
    // The used step (now + 30 s) is not shipped; the next one is, and its hash is of
    // oathtool's code; about an hour of steps.
    assert!(
        token.slots.iter().all(|s| s.counter > step),
        "{:?}",
        token.slots.first()
    );
    let next = token
        .slots
        .iter()
        .find(|s| s.counter == step + 2)
        .expect("next step");
    let hash = code_hash(
        &material.salt,
        &token.authenticator,
        step + 2,
        &oathtool(&secret, 60),
    );
    assert_eq!(next.hash, hash);
    assert!(
        (118..=130).contains(&token.slots.len()),
        "{}",
        token.slots.len()
    );
    assert_eq!(material.backup.len(), backup.len());
    let stored = sshield_core::backup::hash(&material.backup_salt, &backup[0]);
    assert!(material
        .backup
        .contains(&backup_hash(&material.salt, &stored)));
    // Each fetch has its own salt.
    let (_, again) = material_for(&server, &web1, "alice");
    let again: OfflineMaterial = serde_json::from_str(&again).expect("material");
    assert_ne!(again.salt, material.salt);
    assert_ne!(again.tokens[0].slots[0].hash, token.slots[0].hash);

    // Reports: a TOTP step and a backup code used offline, a failmode decision.
    let before = db.audit_count(&state);
    let report = |id: &str, extra: serde_json::Value| {
        let mut r = serde_json::json!({
            "id": id, "time": now(), "user": "alice", "source": "192.0.2.9", "service": "sshd",
        });
        for (k, v) in extra.as_object().expect("object") {
            r[k] = v.clone();
        }
        r
    };
    let reports = serde_json::json!({"reports": [
        report("r-totp-0000000001", serde_json::json!({"outcome": "offline", "method": "totp",
            "authenticator": token.authenticator, "counter": step + 2})),
        report("r-backup-00000001", serde_json::json!({"outcome": "offline", "method": "backup",
            "backup": stored})),
        report("r-failmode-000001", serde_json::json!({"outcome": "failmode",
            "reason": "failmode-safe"})),
        // Far in the future: not something the server shipped; ignored, not burned.
        report("r-future-00000001", serde_json::json!({"outcome": "offline", "method": "totp",
            "authenticator": token.authenticator, "counter": step + 100_000})),
    ]})
    .to_string();
    let (status, answer) = web1.post(&server, "/v1/report", &reports);
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"recorded":4,"duplicate":0}"#)
    );
    // Sent again (the host never heard the answer): counted once.
    let (status, answer) = web1.post(&server, "/v1/report", &reports);
    assert_eq!(
        (status, answer.as_str()),
        (200, r#"{"recorded":0,"duplicate":4}"#)
    );
    assert_eq!(db.audit_count(&state), before + 4);
    // The code and the backup code used offline on web1 are refused on web2.
    let (_, answer) = web2.post(
        &server,
        "/v1/verify",
        &verify_body("alice", &oathtool(&secret, 60)),
    );
    assert!(answer.contains("replayed"), "{answer}");
    let (_, answer) = web2.post(&server, "/v1/verify", &verify_body("alice", &backup[0]));
    assert!(answer.contains("replayed"), "{answer}");
    // The far-future report burned nothing: the next code is good.
    let (_, answer) = web2.post(
        &server,
        "/v1/verify",
        &verify_body("alice", &oathtool(&secret, 90)),
    );
    assert!(answer.contains("allowed"), "{answer}");

    // A bad report refuses the whole request, naming the field, and stores nothing.
    let count = db.audit_count(&state);
    for (bad, says) in [
        (
            serde_json::json!({"reports": [report("short", serde_json::json!({"outcome": "failmode", "reason": "unreachable"}))]}),
            "reports[0].id",
        ),
        (
            serde_json::json!({"reports": [report("r-outcome-000001", serde_json::json!({"outcome": "allowed"}))]}),
            "reports[0].outcome",
        ),
        (
            serde_json::json!({"reports": [report("r-both-000000001", serde_json::json!({"outcome": "offline", "backup": stored, "authenticator": "x", "counter": 1}))]}),
            "reports[0].outcome",
        ),
        (
            serde_json::json!({"reports": [report("r-reason-0000001", serde_json::json!({"outcome": "failmode", "reason": "ok"}))]}),
            "reports[0].reason",
        ),
    ] {
        let (status, answer) = web1.post(&server, "/v1/report", &bad.to_string());
        assert!(
            status == 422 && answer.contains(says),
            "{bad}: {status} {answer}"
        );
    }
    let many: Vec<_> = (0..101)
        .map(|i| {
            report(
                &format!("r-many-{i:010}"),
                serde_json::json!({"outcome": "failmode", "reason": "unreachable"}),
            )
        })
        .collect();
    let (status, answer) = web1.post(
        &server,
        "/v1/report",
        &serde_json::json!({"reports": many}).to_string(),
    );
    assert!(
        status == 422 && answer.contains("at most 100"),
        "{status} {answer}"
    );
    assert_eq!(db.audit_count(&state), count);

    // The audit, as each host reads it: its own entries only, filtered.
    let (status, text) = get(&server, &web1, "/v1/audit?user=alice");
    assert_eq!(status, 200, "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).expect("json");
    let entries = listed["entries"].as_array().expect("entries");
    assert!(entries.iter().all(|e| e["host"] == "web1"), "{text}");
    let outcomes: Vec<&str> = entries
        .iter()
        .filter_map(|e| e["outcome"].as_str())
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| **o == "offline").count(),
        3,
        "{text}"
    );
    assert!(
        outcomes.contains(&"failmode") && outcomes.contains(&"allowed"),
        "{text}"
    );
    let (_, text) = get(&server, &web1, "/v1/audit?failed=true&limit=50");
    assert!(
        !text.contains("\"offline\"") && !text.contains("\"allowed\"") && text.contains("failmode"),
        "{text}"
    );
    let (_, text) = get(&server, &web2, "/v1/audit");
    assert!(!text.contains("web1") && text.contains("web2"), "{text}");
    for bad in [
        "/v1/audit?host=web2",
        "/v1/audit?limit=0",
        "/v1/audit?since=soon",
    ] {
        let (status, text) = get(&server, &web1, bad);
        assert_eq!(status, 400, "{bad}: {text}");
    }
    let (status, _) = server.request("GET", "/v1/audit", &[], b"");
    assert_eq!(status, 401, "unsigned");
}

/// `offline_max_window = "off"`: no material for anyone.
fn a_server_with_offline_off_gives_no_material(db: Db) {
    let (tmp, state) = state_dir();
    let config = tmp.path().join("server.toml");
    std::fs::write(&config, "offline_max_window = \"off\"\n").expect("config");
    let mut global = db.args();
    global.extend(["--config", config.to_str().expect("path")]);
    let server = Server::start(&state, &global, &["--listen", "127.0.0.1:0"]);
    let secret = support::server::enroll_confirmed(&state, &global, "bob");
    let web1 = TestHost::new("web1", 1);
    web1.join(&server, &state, &global);
    let (_, answer) = web1.post(
        &server,
        "/v1/verify",
        &verify_body("bob", &oathtool(&secret, 30)),
    );
    assert!(answer.contains("allowed"), "{answer}");
    let (status, answer) = material_for(&server, &web1, "bob");
    assert!(
        status == 403 && answer.contains("offline_max_window"),
        "{status} {answer}"
    );
}

macro_rules! on_both_backends {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $( #[test] fn $check() { super::$check(super::Db::sqlite()) } )*
        }
        mod postgres {
            $( #[test] fn $check() { super::$check(super::Db::postgres()) } )*
        }
    };
}

on_both_backends!(
    offline_material_reports_and_audit,
    a_server_with_offline_off_gives_no_material,
);
