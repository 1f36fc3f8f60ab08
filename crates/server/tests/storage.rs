//! The storage conformance suite: every check runs against a real SQLite file in a temp dir
//! and against a throwaway PostgreSQL cluster, so both backends keep one contract.

mod support;

use std::sync::Arc;

use sshield_server::storage::{
    AuditEntry, AuditQuery, HostRow, PostgresStorage, SourceRow, SqliteStorage, Storage,
    StorageError, UserRow,
};

fn user(name: &str, version: i64, sealed: &[u8]) -> UserRow {
    UserRow {
        name: name.to_owned(),
        sealed: sealed.to_vec(),
        version,
        state: "pending".to_owned(),
        disabled: false,
        updated_at: 1_000,
    }
}

async fn create_load_and_compare_and_swap(s: Arc<impl Storage + 'static>) {
    assert_eq!(s.load_user("alice").await.expect("load"), None);
    s.create_user(&user("alice", 1, b"v1"))
        .await
        .expect("create");
    let err = s.create_user(&user("alice", 1, b"again")).await;
    assert!(matches!(err, Err(StorageError::Exists { .. })), "{err:?}");
    let loaded = s.load_user("alice").await.expect("load").expect("some");
    assert_eq!(loaded, user("alice", 1, b"v1"));

    s.update_user(&user("alice", 2, b"v2"))
        .await
        .expect("cas from 1");
    // A writer that read version 1 lost: its write is refused, the stored row is intact.
    let stale = s.update_user(&user("alice", 2, b"stale")).await;
    assert!(
        matches!(stale, Err(StorageError::LostRace { .. })),
        "{stale:?}"
    );
    let now = s.load_user("alice").await.expect("load").expect("some");
    assert_eq!((now.version, now.sealed), (2, b"v2".to_vec()));

    let gone = s.update_user(&user("nobody", 2, b"x")).await;
    assert!(
        matches!(gone, Err(StorageError::Missing { .. })),
        "{gone:?}"
    );
}

async fn of_racing_writers_exactly_one_wins(s: Arc<impl Storage + 'static>) {
    s.create_user(&user("bob", 1, b"v1")).await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..16u8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.update_user(&user("bob", 2, &[i])).await
        }));
    }
    let mut won = 0;
    for t in tasks {
        match t.await.expect("task") {
            Ok(()) => won += 1,
            Err(StorageError::LostRace { .. }) => {}
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    assert_eq!(won, 1);
    assert_eq!(
        s.load_user("bob")
            .await
            .expect("load")
            .expect("row")
            .version,
        2
    );
}

/// An import stores all its users in one transaction: one name taken stores none of the
/// others, and the taken user's row is left as it was.
async fn an_import_stores_all_its_users_or_none(s: Arc<impl Storage + 'static>) {
    s.create_user(&user("carol", 3, b"carol's own"))
        .await
        .expect("create");
    let batch = [
        user("ann", 1, b"a"),
        user("carol", 1, b"imported"),
        user("dan", 1, b"d"),
    ];
    let err = s.create_users(&batch).await;
    assert!(
        matches!(&err, Err(StorageError::Exists { name, .. }) if name == "carol"),
        "{err:?}"
    );
    assert_eq!(s.load_user("ann").await.expect("load"), None, "rolled back");
    assert_eq!(s.load_user("dan").await.expect("load"), None);
    assert_eq!(
        s.load_user("carol").await.expect("load"),
        Some(user("carol", 3, b"carol's own"))
    );
    // The same names twice in one batch: refused whole too.
    let twice = s
        .create_users(&[user("eve", 1, b"1"), user("eve", 1, b"2")])
        .await;
    assert!(
        matches!(twice, Err(StorageError::Exists { .. })),
        "{twice:?}"
    );
    assert_eq!(s.load_user("eve").await.expect("load"), None);

    s.create_users(&[user("ann", 1, b"a"), user("dan", 1, b"d")])
        .await
        .expect("import");
    let names: Vec<String> = s
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(names, ["ann", "carol", "dan"]);
    s.create_users(&[]).await.expect("an empty import");
}

async fn users_are_listed_without_their_secrets_and_deleted(s: Arc<impl Storage + 'static>) {
    s.create_user(&user("carol", 1, b"sealed"))
        .await
        .expect("c");
    s.create_user(&user("alice", 1, b"sealed"))
        .await
        .expect("a");
    let names: Vec<_> = s
        .list_users()
        .await
        .expect("list")
        .into_iter()
        .map(|u| {
            assert!(u.sealed.is_empty());
            u.name
        })
        .collect();
    assert_eq!(names, ["alice", "carol"]);
    assert!(s.delete_user("alice").await.expect("delete"));
    assert!(!s.delete_user("alice").await.expect("delete again"));
    assert_eq!(s.list_users().await.expect("list").len(), 1);
}

async fn hosts_are_added_listed_and_revoked(s: Arc<impl Storage + 'static>) {
    let host = HostRow {
        name: "web1".to_owned(),
        public_key: vec![7; 32],
        created_at: 10,
        revoked_at: None,
    };
    s.add_host(&host).await.expect("add");
    let again = s.add_host(&host).await;
    assert!(
        matches!(again, Err(StorageError::Exists { .. })),
        "{again:?}"
    );
    assert_eq!(s.load_host("web1").await.expect("load"), Some(host.clone()));
    assert!(s.revoke_host("web1", 20).await.expect("revoke"));
    // Revoking again keeps the first time.
    assert!(s.revoke_host("web1", 30).await.expect("revoke"));
    let hosts = s.list_hosts().await.expect("list");
    assert_eq!(hosts.len(), 1);
    assert_eq!(hosts[0].revoked_at, Some(20));
    assert!(!s.revoke_host("nope", 30).await.expect("no such host"));
}

async fn a_join_token_is_used_once_and_not_after_it_expires(s: Arc<impl Storage + 'static>) {
    s.add_join_token(b"hash-1", "web1", 100, 200)
        .await
        .expect("add");
    s.add_join_token(b"hash-2", "web2", 100, 200)
        .await
        .expect("add");
    assert_eq!(s.use_join_token(b"unknown", 150).await.expect("use"), None);
    // Of racing joins with one token, exactly one gets the host.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.use_join_token(b"hash-1", 150).await
        }));
    }
    let mut hosts = Vec::new();
    for t in tasks {
        hosts.extend(t.await.expect("task").expect("use"));
    }
    assert_eq!(hosts, ["web1"]);
    assert_eq!(
        s.use_join_token(b"hash-2", 200).await.expect("expired"),
        None
    );
}

async fn a_nonce_is_accepted_once_per_host_and_pruned(s: Arc<impl Storage + 'static>) {
    assert!(s.remember_nonce("web1", "n1", 100).await.expect("first"));
    assert!(!s.remember_nonce("web1", "n1", 101).await.expect("replay"));
    assert!(s
        .remember_nonce("web2", "n1", 101)
        .await
        .expect("other host"));
    assert!(s.remember_nonce("web1", "n2", 300).await.expect("later"));
    assert_eq!(s.prune_nonces(200).await.expect("prune"), 2);
    // Pruned nonces are older than any request still accepted: they may come back.
    assert!(s
        .remember_nonce("web1", "n1", 301)
        .await
        .expect("after prune"));
    assert!(!s.remember_nonce("web1", "n2", 301).await.expect("kept"));
}

async fn audit_is_appended_and_queried(s: Arc<impl Storage + 'static>) {
    let entry = |time, host: &str, user: &str, outcome: &str| AuditEntry {
        time,
        host: host.to_owned(),
        user: user.to_owned(),
        source: Some("192.0.2.7".to_owned()),
        service: "sshd".to_owned(),
        method: (outcome == "allowed").then(|| "totp".to_owned()),
        outcome: outcome.to_owned(),
        reason: (outcome != "allowed").then(|| "wrong-code".to_owned()),
    };
    let all = [
        entry(100, "web1", "alice", "allowed"),
        entry(200, "web2", "alice", "denied"),
        entry(300, "web1", "bob", "denied"),
        entry(400, "web2", "bob", "allowed"),
    ];
    for e in &all {
        s.append_audit(e).await.expect("append");
    }
    let q = |user: Option<&str>, host: Option<&str>, since, failed_only| AuditQuery {
        user: user.map(str::to_owned),
        host: host.map(str::to_owned),
        since,
        failed_only,
        limit: 100,
    };
    let times = |found: Vec<AuditEntry>| found.iter().map(|e| e.time).collect::<Vec<_>>();
    let read = |query| {
        let s = Arc::clone(&s);
        async move { times(s.query_audit(&query).await.expect("query")) }
    };
    assert_eq!(read(q(None, None, None, false)).await, [400, 300, 200, 100]);
    assert_eq!(read(q(Some("alice"), None, None, false)).await, [200, 100]);
    assert_eq!(read(q(None, Some("web1"), None, false)).await, [300, 100]);
    assert_eq!(read(q(None, None, Some(300), false)).await, [400, 300]);
    assert_eq!(read(q(None, None, None, true)).await, [300, 200]);
    assert_eq!(
        read(q(Some("bob"), Some("web1"), Some(250), true)).await,
        [300]
    );
    let limited = AuditQuery {
        limit: 1,
        ..q(None, None, None, false)
    };
    assert_eq!(read(limited).await, [400]);
    let full = s
        .query_audit(&q(Some("alice"), None, Some(150), false))
        .await
        .expect("query");
    assert_eq!(full, [all[1].clone()]);
}

async fn audit_entries_older_than_a_time_are_pruned(s: Arc<impl Storage + 'static>) {
    for time in [100, 200, 300] {
        let entry = AuditEntry {
            time,
            host: "web1".to_owned(),
            user: "alice".to_owned(),
            source: None,
            service: "sshd".to_owned(),
            method: Some("totp".to_owned()),
            outcome: AuditEntry::ALLOWED.to_owned(),
            reason: None,
        };
        s.append_audit(&entry).await.expect("append");
    }
    assert_eq!(s.prune_audit(200).await.expect("prune"), 1);
    assert_eq!(s.prune_audit(200).await.expect("prune again"), 0);
    let left = s
        .query_audit(&AuditQuery {
            limit: 10,
            ..AuditQuery::default()
        })
        .await
        .expect("query");
    let times: Vec<i64> = left.iter().map(|e| e.time).collect();
    assert_eq!(times, [300, 200], "an entry at the limit is kept");
}

/// A source's failure count is written by compare-and-swap, like a user: of two writers that
/// read the same version (or both found none), one writes; expired rows are pruned.
async fn source_counts_are_compare_and_swapped_and_pruned(s: Arc<impl Storage + 'static>) {
    let row = |version, state: &str, expires_at| SourceRow {
        source: "198.51.100.7".to_owned(),
        state: state.to_owned(),
        version,
        expires_at,
    };
    assert_eq!(s.load_source("198.51.100.7").await.expect("load"), None);
    assert!(s.save_source(&row(1, "a", 100)).await.expect("first"));
    assert!(!s
        .save_source(&row(1, "b", 100))
        .await
        .expect("racing first"));
    assert!(s.save_source(&row(2, "c", 200)).await.expect("cas"));
    assert!(!s.save_source(&row(2, "stale", 200)).await.expect("stale"));
    assert_eq!(
        s.load_source("198.51.100.7").await.expect("load"),
        Some(row(2, "c", 200))
    );
    assert_eq!(
        s.prune_sources(200).await.expect("prune"),
        0,
        "kept at its expiry"
    );
    assert_eq!(s.prune_sources(201).await.expect("prune"), 1);
    assert_eq!(s.load_source("198.51.100.7").await.expect("load"), None);
}

/// Runs each named check on a fresh SQLite file and on a fresh PostgreSQL database.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let s = SqliteStorage::open(&dir.path().join("server.db"))
                        .await
                        .expect("open sqlite");
                    super::$check(Arc::new(s)).await;
                }
            )*
        }
        mod postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let db = support::pg::database().await;
                    let s = PostgresStorage::open(&db.url).await.expect("open postgres");
                    super::$check(Arc::new(s)).await;
                }
            )*
        }
    };
}

conformance!(
    create_load_and_compare_and_swap,
    of_racing_writers_exactly_one_wins,
    an_import_stores_all_its_users_or_none,
    users_are_listed_without_their_secrets_and_deleted,
    hosts_are_added_listed_and_revoked,
    a_join_token_is_used_once_and_not_after_it_expires,
    a_nonce_is_accepted_once_per_host_and_pruned,
    audit_is_appended_and_queried,
    audit_entries_older_than_a_time_are_pruned,
    source_counts_are_compare_and_swapped_and_pruned,
);

/// A fleet's database is often on another machine: `sslmode=verify-full` connects over TLS
/// (rustls) and checks the server's certificate against the given CA; without that CA the
/// certificate is refused, with a message that names the database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_tls_checks_the_certificate() {
    let db = support::pg::database().await;
    let ca = db.cluster.ca();
    let verified = format!(
        "{}?sslmode=verify-full&sslrootcert={}",
        db.url,
        ca.display()
    );
    let s = PostgresStorage::open(&verified)
        .await
        .expect("TLS with the CA");
    s.create_user(&user("tls", 1, b"x"))
        .await
        .expect("create over TLS");
    let unverified = format!("{}?sslmode=verify-full", db.url);
    let err = PostgresStorage::open(&unverified)
        .await
        .expect_err("an unknown CA is refused");
    let text = err.to_string();
    assert!(
        text.contains("cannot open the database postgres://"),
        "{text}"
    );
}
