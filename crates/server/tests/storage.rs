//! The storage conformance suite: every check runs against a real SQLite file in a temp dir
//! and against a throwaway PostgreSQL cluster, so both backends keep one contract.

mod support;

use std::sync::Arc;

use sshield_server::storage::{
    Admission, ApprovalRow, AuditEntry, AuditQuery, Basis, Committed, DeviceRow, HostRow, NonceRow,
    OfflineStorage, PasskeyAdded, PasskeyRow, PasskeyStorage, PostgresStorage, PushStorage,
    ReportCommitted, ReportWrites, SourceFailure, SourceRow, SqliteStorage, Storage, StorageError,
    UserRow, UserWrite, Verdict, VerificationReads, VerificationWrites, WebhookRow,
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

/// A verification's reads at once (one round trip on PostgreSQL) find what the reads one by one
/// find: the host (revoked or not), the source's count when asked, the user; none where there
/// is no row, whichever of the three is missing.
async fn a_verifications_reads_are_those_made_one_by_one(s: Arc<impl Storage + 'static>) {
    let none = VerificationReads::default();
    assert_eq!(
        s.load_verification("web1", Some("198.51.100.7"), "alice")
            .await
            .expect("nothing yet"),
        none
    );
    let host = HostRow {
        name: "web1".to_owned(),
        public_key: vec![7; 32],
        created_at: 10,
        revoked_at: None,
    };
    s.add_host(&host).await.expect("add host");
    let alice = user("alice", 1, b"sealed alice");
    s.create_user(&alice).await.expect("create");
    let source = SourceRow {
        source: "198.51.100.7".to_owned(),
        state: "{}".to_owned(),
        version: 1,
        expires_at: 100,
    };
    assert!(s.save_source(&source).await.expect("count"));
    let all = s
        .load_verification("web1", Some("198.51.100.7"), "alice")
        .await
        .expect("all three");
    assert_eq!(
        all,
        VerificationReads {
            host: Some(host.clone()),
            source: Some(source.clone()),
            user: Some(alice.clone()),
        }
    );
    // No source asked for; another source; another user; another host.
    for (h, src, u, want) in [
        ("web1", None, "alice", (true, false, true)),
        ("web1", Some("203.0.113.1"), "alice", (true, false, true)),
        ("web1", Some("198.51.100.7"), "bob", (true, true, false)),
        ("web2", Some("198.51.100.7"), "alice", (false, true, true)),
    ] {
        let got = s.load_verification(h, src, u).await.expect("read");
        let found = (got.host.is_some(), got.source.is_some(), got.user.is_some());
        assert_eq!(found, want, "{h} {src:?} {u}");
        assert_eq!(got.host, s.load_host(h).await.expect("host"));
        assert_eq!(got.user, s.load_user(u).await.expect("user"));
    }
    // Revoked: still read, with the time.
    assert!(s.revoke_host("web1", 20).await.expect("revoke"));
    let got = s
        .load_verification("web1", None, "alice")
        .await
        .expect("read");
    assert_eq!(got.host.and_then(|h| h.revoked_at), Some(20));
}

fn entry(user: &str, reason: Option<&str>) -> AuditEntry {
    AuditEntry {
        time: 1_000,
        host: "web1".to_owned(),
        user: user.to_owned(),
        source: Some("192.0.2.7".to_owned()),
        service: "sshd".to_owned(),
        method: reason.is_none().then(|| "totp".to_owned()),
        outcome: if reason.is_none() {
            "allowed"
        } else {
            "denied"
        }
        .to_owned(),
        reason: reason.map(str::to_owned),
    }
}

/// web1, the host the verifications below come from.
fn web1() -> HostRow {
    HostRow {
        name: "web1".to_owned(),
        public_key: vec![7; 32],
        created_at: 10,
        revoked_at: None,
    }
}

/// One verification's writes: `nonce` from web1, `user`'s write, the audit entry; a failure
/// counted against 192.0.2.7 (the count is the stored state, a number, plus one) for a
/// denial. It rests on web1's key alone.
fn verification(nonce: &str, user: Option<UserWrite>, denied: bool) -> VerificationWrites {
    let source = denied.then(|| SourceFailure {
        source: "192.0.2.7".to_owned(),
        count: Box::new(|row: Option<&SourceRow>| {
            let n = row.map_or(0, |r| r.state.parse::<u32>().expect("a count")) + 1;
            let next = SourceRow {
                source: "192.0.2.7".to_owned(),
                state: n.to_string(),
                version: row.map_or(1, |r| r.version + 1),
                expires_at: 9_999,
            };
            (next, n)
        }),
    });
    VerificationWrites {
        nonce: NonceRow {
            host: "web1".to_owned(),
            nonce: nonce.to_owned(),
            ts: 1_000,
        },
        user,
        source,
        audit: entry("vic", denied.then_some("wrong-code")),
        basis: Basis {
            host_key: web1().public_key,
            user: None,
            source: None,
        },
    }
}

async fn commit(s: &impl Storage, nonce: &str, user: Option<UserWrite>, denied: bool) -> Committed {
    s.commit_verification(verification(nonce, user, denied))
        .await
        .expect("commit")
}

async fn audit_count(s: &impl Storage) -> usize {
    s.query_audit(&AuditQuery {
        limit: 1_000,
        ..AuditQuery::default()
    })
    .await
    .expect("audit")
    .len()
}

/// A verification's nonce, user write, source count and audit entry are stored together or
/// not at all: a replayed nonce or a lost compare-and-swap stores none of them.
async fn a_verification_is_stored_whole_or_not_at_all(s: Arc<impl Storage + 'static>) {
    s.add_host(&web1()).await.expect("host");
    s.create_user(&user("vic", 1, b"v1")).await.expect("create");
    let stored = commit(
        &*s,
        "n1",
        Some(UserWrite::Update(user("vic", 2, b"v2"))),
        false,
    )
    .await;
    assert_eq!(
        stored,
        Committed::Stored {
            source_failures: None
        }
    );
    assert_eq!(
        s.load_user("vic")
            .await
            .expect("load")
            .expect("row")
            .version,
        2
    );
    assert_eq!(audit_count(&*s).await, 1);
    assert!(
        !s.remember_nonce("web1", "n1", 1_000).await.expect("nonce"),
        "stored"
    );

    // The same nonce again: nothing of it stored.
    let replayed = commit(
        &*s,
        "n1",
        Some(UserWrite::Update(user("vic", 3, b"v3"))),
        true,
    )
    .await;
    assert_eq!(replayed, Committed::NonceUsed);
    // The same for an allowed login's writes (no source to count: PostgreSQL stores those
    // by one statement): a replayed nonce, a stale read.
    let replayed = commit(
        &*s,
        "n1",
        Some(UserWrite::Update(user("vic", 3, b"v3"))),
        false,
    )
    .await;
    assert_eq!(replayed, Committed::NonceUsed);
    let lost = commit(
        &*s,
        "n2a",
        Some(UserWrite::Update(user("vic", 2, b"stale"))),
        false,
    )
    .await;
    assert_eq!(lost, Committed::LostRace);
    assert!(
        s.remember_nonce("web1", "n2a", 1_000).await.expect("nonce"),
        "not stored"
    );
    // A write from a stale read: neither its nonce nor its audit entry nor its count.
    let lost = commit(
        &*s,
        "n2",
        Some(UserWrite::Update(user("vic", 2, b"stale"))),
        true,
    )
    .await;
    assert_eq!(lost, Committed::LostRace);
    let row = s.load_user("vic").await.expect("load").expect("row");
    assert_eq!((row.version, row.sealed), (2, b"v2".to_vec()));
    assert_eq!(audit_count(&*s).await, 1);
    assert_eq!(s.load_source("192.0.2.7").await.expect("source"), None);
    assert!(
        s.remember_nonce("web1", "n2", 1_000).await.expect("nonce"),
        "not stored"
    );
    // A user created meanwhile loses the same way.
    let taken = commit(
        &*s,
        "n3",
        Some(UserWrite::Create(user("vic", 1, b"new"))),
        false,
    )
    .await;
    assert_eq!(taken, Committed::LostRace);

    // Denials count against their source, from the row as it is.
    for n in 1..=3u32 {
        let denied = commit(&*s, &format!("d{n}"), None, true).await;
        assert_eq!(
            denied,
            Committed::Stored {
                source_failures: Some(n)
            }
        );
    }
    let source = s
        .load_source("192.0.2.7")
        .await
        .expect("source")
        .expect("row");
    assert_eq!((source.state.as_str(), source.version), ("3", 3));
    // A removal is stored with its verification too.
    let removed = commit(&*s, "n4", Some(UserWrite::Delete("vic".to_owned())), false).await;
    assert!(matches!(removed, Committed::Stored { .. }));
    assert_eq!(s.load_user("vic").await.expect("load"), None);
    assert_eq!(audit_count(&*s).await, 5);
}

/// Verifications at the same moment (on SQLite, committed together by one writer): of those
/// that write one user from the same read, one is stored; one refused (a replayed nonce)
/// sinks none of the others; every denial from one source is counted.
async fn concurrent_verifications_are_each_stored_or_refused_alone(s: Arc<impl Storage + 'static>) {
    s.add_host(&web1()).await.expect("host");
    s.create_user(&user("vic", 1, b"v1")).await.expect("create");
    let mut tasks = Vec::new();
    for i in 0..48u8 {
        let s = Arc::clone(&s);
        let writes = match i % 3 {
            // 16 writes of vic from version 1.
            0 => verification(
                &format!("cas{i}"),
                Some(UserWrite::Update(user("vic", 2, &[i]))),
                false,
            ),
            // 16 denials from one source.
            1 => verification(&format!("deny{i}"), None, true),
            // 16 requests with one nonce.
            _ => verification("twice", None, false),
        };
        tasks.push(tokio::spawn(async move {
            (i % 3, s.commit_verification(writes).await)
        }));
    }
    let mut counts = [[0u32; 3]; 3];
    for t in tasks {
        let (kind, done) = t.await.expect("task");
        let column = match done.expect("commit") {
            Committed::Stored { .. } => 0,
            Committed::LostRace => 1,
            Committed::NonceUsed => 2,
        };
        counts[usize::from(kind)][column] += 1;
    }
    assert_eq!(counts, [[1, 15, 0], [16, 0, 0], [1, 0, 15]]);
    assert_eq!(
        s.load_user("vic")
            .await
            .expect("load")
            .expect("row")
            .version,
        2
    );
    let source = s
        .load_source("192.0.2.7")
        .await
        .expect("source")
        .expect("row");
    assert_eq!((source.state.as_str(), source.version), ("16", 16));
    assert_eq!(audit_count(&*s).await, 18);
}

/// A verification is stored only if the rows it was decided on are as it read them (its
/// basis): the host's key, unrevoked; the user's row's version, or its absence; the source's
/// count's version, or its absence. Otherwise nothing of it is stored (not its nonce, not its
/// audit entry, not its user write), by either statement PostgreSQL uses.
async fn a_verification_is_stored_only_on_the_rows_it_was_decided_on(
    s: Arc<impl Storage + 'static>,
) {
    s.add_host(&web1()).await.expect("host");
    s.create_user(&user("vic", 1, b"v1")).await.expect("create");
    let src = "198.51.100.7";
    let on = |nonce: &str, write: Option<UserWrite>, basis: Basis| {
        let mut w = verification(nonce, write, false);
        w.basis = basis;
        w
    };
    let basis = |key: u8, user: Option<(&str, Option<i64>)>, source: Option<Option<i64>>| Basis {
        host_key: vec![key; 32],
        user: user.map(|(name, version)| (name.to_owned(), version)),
        source: source.map(|version| (src.to_owned(), version)),
    };
    let stored = Committed::Stored {
        source_failures: None,
    };
    let mut audited = 0;
    let cases: Vec<(&str, VerificationWrites, Committed)> = vec![
        // As read: stored.
        (
            "as-read",
            on("b1", None, basis(7, Some(("vic", Some(1))), Some(None))),
            stored,
        ),
        // Another key than the host's row holds.
        (
            "other-key",
            on("b2", None, basis(8, Some(("vic", Some(1))), None)),
            Committed::LostRace,
        ),
        // The user's row at another version, with and without a write of it.
        (
            "user-moved",
            on("b3", None, basis(7, Some(("vic", Some(0))), None)),
            Committed::LostRace,
        ),
        (
            "user-moved-write",
            on(
                "b4",
                Some(UserWrite::Update(user("vic", 2, b"v2"))),
                basis(7, Some(("vic", Some(0))), None),
            ),
            Committed::LostRace,
        ),
        // Read as missing, but there.
        (
            "user-there",
            on("b5", None, basis(7, Some(("vic", None)), None)),
            Committed::LostRace,
        ),
        // Missing as read.
        (
            "user-missing",
            on("b6", None, basis(7, Some(("carol", None)), None)),
            stored,
        ),
        // The source read with a count it does not have.
        (
            "source-moved",
            on("b7", None, basis(7, None, Some(Some(1)))),
            Committed::LostRace,
        ),
    ];
    for (what, writes, want) in cases {
        let done = s.commit_verification(writes).await.expect("commit");
        assert_eq!(done, want, "{what}");
        if done == stored {
            audited += 1;
        }
    }
    assert_eq!(audit_count(&*s).await, audited);
    // Nothing of a refused one: its nonce is free, the user as they were.
    for nonce in ["b2", "b3", "b4", "b5", "b7"] {
        assert!(
            s.remember_nonce("web1", nonce, 1_000).await.expect("nonce"),
            "{nonce}"
        );
    }
    assert_eq!(version_of(&*s, "vic").await, 1);

    // The source counted meanwhile: a login that read no count is not stored; one that read
    // this count is.
    let source = SourceRow {
        source: src.to_owned(),
        state: "{}".to_owned(),
        version: 1,
        expires_at: 100,
    };
    assert!(s.save_source(&source).await.expect("count"));
    let stale = on(
        "c1",
        Some(UserWrite::Update(user("vic", 2, b"v2"))),
        basis(7, Some(("vic", Some(1))), Some(None)),
    );
    assert_eq!(
        s.commit_verification(stale).await.expect("commit"),
        Committed::LostRace
    );
    let fresh = on(
        "c2",
        Some(UserWrite::Update(user("vic", 2, b"v2"))),
        basis(7, Some(("vic", Some(1))), Some(Some(1))),
    );
    assert_eq!(s.commit_verification(fresh).await.expect("commit"), stored);
    assert_eq!(version_of(&*s, "vic").await, 2);

    // The host revoked: nothing more from it, whatever it writes or counts.
    assert!(s.revoke_host("web1", 20).await.expect("revoke"));
    for (nonce, write, denied) in [
        ("r1", None, false),
        ("r2", Some(UserWrite::Update(user("vic", 3, b"v3"))), false),
        ("r3", None, true),
    ] {
        let mut w = verification(nonce, write, denied);
        w.basis = basis(7, Some(("vic", Some(2))), None);
        assert_eq!(
            s.commit_verification(w).await.expect("commit"),
            Committed::LostRace,
            "{nonce}"
        );
    }
    assert_eq!(version_of(&*s, "vic").await, 2);
    assert_eq!(audit_count(&*s).await, audited + 1);
    assert_eq!(s.load_source(src).await.expect("source"), Some(source));
}

fn approval(id: &str, user: &str, created_at: i64) -> ApprovalRow {
    ApprovalRow {
        id: id.to_owned(),
        user: user.to_owned(),
        host: "db1".to_owned(),
        source: Some("203.0.113.9".to_owned()),
        service: "sshd".to_owned(),
        command: None,
        number: 47,
        choices: "12,47,83".to_owned(),
        created_at,
        expires_at: created_at + 60,
        state: ApprovalRow::PENDING.to_owned(),
        decided_at: None,
        device: None,
    }
}

fn device(id: &str, user: &str, token: &[u8]) -> DeviceRow {
    DeviceRow {
        id: id.to_owned(),
        user: user.to_owned(),
        kind: "webpush".to_owned(),
        name: format!("{user}'s phone"),
        data: r#"{"endpoint":"https://push.example/x"}"#.to_owned(),
        token_hash: Some(token.to_vec()),
        created_at: 1_000,
        revoked_at: None,
    }
}

async fn devices_are_found_by_token_until_revoked(s: Arc<impl PushStorage + 'static>) {
    s.add_device(&device("d1", "alice", b"t1"))
        .await
        .expect("add");
    s.add_device(&device("d2", "alice", b"t2"))
        .await
        .expect("add");
    s.add_device(&device("d3", "bob", b"t3"))
        .await
        .expect("add");
    let found = s.device_by_token(b"t2").await.expect("find").expect("some");
    assert_eq!(found, device("d2", "alice", b"t2"));
    assert_eq!(s.list_devices("alice").await.expect("list").len(), 2);
    // Another user's device is not revoked by alice, whatever id she names.
    assert!(!s.revoke_device("alice", "d3", 2_000).await.expect("revoke"));
    assert!(s.revoke_device("alice", "d2", 2_000).await.expect("revoke"));
    assert_eq!(s.device_by_token(b"t2").await.expect("find"), None);
    assert!(s.device_by_token(b"t3").await.expect("find").is_some());
    let listed = s.list_devices("alice").await.expect("list");
    assert_eq!(
        listed[1].revoked_at,
        Some(2_000),
        "a revoked device stays listed"
    );
    assert!(s.set_device_data("alice", "d1", "{}").await.expect("set"));
    assert!(!s
        .set_device_data("alice", "d2", "{}")
        .await
        .expect("revoked"));
    assert!(!s.set_device_data("alice", "d3", "{}").await.expect("bob's"));
    assert_eq!(s.list_devices("alice").await.expect("list")[0].data, "{}");
}

async fn an_enroll_link_is_used_once_and_not_after_it_expires(s: Arc<impl PushStorage + 'static>) {
    s.add_enroll_link(b"h1", "alice", 100, 200)
        .await
        .expect("add");
    s.add_enroll_link(b"h2", "bob", 100, 200)
        .await
        .expect("add");
    assert_eq!(s.use_enroll_link(b"nope", 150).await.expect("use"), None);
    assert_eq!(
        s.use_enroll_link(b"h1", 150).await.expect("use"),
        Some("alice".to_owned())
    );
    assert_eq!(s.use_enroll_link(b"h1", 151).await.expect("twice"), None);
    assert_eq!(s.use_enroll_link(b"h2", 200).await.expect("expired"), None);
    // Racing uses of one link: one gets the user.
    s.add_enroll_link(b"h3", "carol", 100, 900)
        .await
        .expect("add");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(
            async move { s.use_enroll_link(b"h3", 300).await },
        ));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.expect("task").expect("use").is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

async fn a_webhook_is_set_replaced_and_removed(s: Arc<impl PushStorage + 'static>) {
    assert_eq!(s.load_webhook("alice").await.expect("load"), None);
    let hook = |url: &str| WebhookRow {
        url: url.to_owned(),
        secret: b"k".to_vec(),
    };
    s.set_webhook("alice", &hook("https://a/1"))
        .await
        .expect("set");
    s.set_webhook("alice", &hook("https://a/2"))
        .await
        .expect("replace");
    assert_eq!(
        s.load_webhook("alice").await.expect("load"),
        Some(hook("https://a/2"))
    );
    assert!(s.delete_webhook("alice").await.expect("delete"));
    assert!(!s.delete_webhook("alice").await.expect("delete again"));
}

async fn one_pending_push_per_user_and_at_most_n_an_hour(s: Arc<impl PushStorage + 'static>) {
    let t = 10_000;
    assert_eq!(
        s.admit_approval(&approval("a1", "alice", t), 3, t)
            .await
            .expect("admit"),
        Admission::Stored
    );
    assert_eq!(
        s.admit_approval(&approval("a2", "alice", t + 1), 3, t + 1)
            .await
            .expect("admit"),
        Admission::AlreadyPending { id: "a1".into() }
    );
    // Another user is not held up by alice's request.
    assert_eq!(
        s.admit_approval(&approval("b1", "bob", t + 1), 3, t + 1)
            .await
            .expect("admit"),
        Admission::Stored
    );
    // Once a1 expires and is swept, the next one is taken.
    // (bob's b1, asked at t + 1, has expired too.)
    let mut expired: Vec<String> = s
        .expire_approvals(t + 61)
        .await
        .expect("sweep")
        .into_iter()
        .map(|r| r.id)
        .collect();
    expired.sort();
    assert_eq!(expired, ["a1", "b1"]);
    assert_eq!(
        s.expire_approvals(t + 61).await.expect("sweep").len(),
        0,
        "once"
    );
    assert_eq!(
        s.admit_approval(&approval("a3", "alice", t + 61), 3, t + 61)
            .await
            .expect("admit"),
        Admission::Stored
    );
    let a1 = s.load_approval("a1").await.expect("load").expect("kept");
    assert_eq!(a1.state, ApprovalRow::EXPIRED);
    s.decide_approval("a3", "alice", Verdict::Deny, "d1", t + 62)
        .await
        .expect("decide")
        .expect("pending");
    assert_eq!(
        s.admit_approval(&approval("a4", "alice", t + 63), 3, t + 63)
            .await
            .expect("admit"),
        Admission::Stored
    );
    s.decide_approval("a4", "alice", Verdict::Deny, "d1", t + 64)
        .await
        .expect("decide");
    // Three in the last hour: the fourth is refused, and not stored.
    assert_eq!(
        s.admit_approval(&approval("a5", "alice", t + 65), 3, t + 65)
            .await
            .expect("admit"),
        Admission::TooMany { count: 3 }
    );
    assert_eq!(s.load_approval("a5").await.expect("load"), None);
    // An hour after the first, one slot is free again.
    assert_eq!(
        s.admit_approval(&approval("a6", "alice", t + 3_600), 3, t + 3_600)
            .await
            .expect("admit"),
        Admission::Stored
    );
}

async fn of_racing_pushes_for_one_user_one_is_stored(s: Arc<impl PushStorage + 'static>) {
    let mut tasks = Vec::new();
    for i in 0..12 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.admit_approval(&approval(&format!("r{i}"), "carol", 500), 100, 500)
                .await
        }));
    }
    let mut stored = 0;
    for t in tasks {
        match t.await.expect("task").expect("admit") {
            Admission::Stored => stored += 1,
            Admission::AlreadyPending { id } => assert!(id.starts_with('r'), "{id}"),
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(stored, 1);
    assert_eq!(
        s.pending_approvals("carol", 500).await.expect("list").len(),
        1
    );
}

async fn a_decision_needs_the_right_number_the_right_user_and_time(
    s: Arc<impl PushStorage + 'static>,
) {
    let t = 20_000;
    s.admit_approval(&approval("p1", "alice", t), 10, t)
        .await
        .expect("admit");
    // Bob cannot decide alice's request; it stays pending.
    let other = s
        .decide_approval("p1", "bob", Verdict::Approve { number: 47 }, "d9", t + 1)
        .await
        .expect("decide");
    assert_eq!(other, None);
    assert_eq!(
        s.pending_approvals("alice", t + 1)
            .await
            .expect("list")
            .len(),
        1
    );
    // The wrong number is a denial, stored by the same statement: no second guess.
    let wrong = s
        .decide_approval("p1", "alice", Verdict::Approve { number: 12 }, "d1", t + 2)
        .await
        .expect("decide")
        .expect("decided");
    assert_eq!(
        (wrong.state.as_str(), wrong.decided_at),
        (ApprovalRow::DENIED, Some(t + 2))
    );
    let again = s
        .decide_approval("p1", "alice", Verdict::Approve { number: 47 }, "d1", t + 3)
        .await
        .expect("decide");
    assert_eq!(again, None, "a decided request is not decided again");

    s.admit_approval(&approval("p2", "alice", t + 10), 10, t + 10)
        .await
        .expect("admit");
    let right = s
        .decide_approval("p2", "alice", Verdict::Approve { number: 47 }, "d1", t + 11)
        .await
        .expect("decide")
        .expect("decided");
    assert_eq!(right.state, ApprovalRow::APPROVED);
    assert_eq!(right.device.as_deref(), Some("d1"));

    // Expired: refused at the edge, even if no sweep has marked it yet.
    s.admit_approval(&approval("p3", "alice", t + 20), 10, t + 20)
        .await
        .expect("admit");
    let late = s
        .decide_approval("p3", "alice", Verdict::Approve { number: 47 }, "d1", t + 80)
        .await
        .expect("decide");
    assert_eq!(late, None);
    assert_eq!(s.expire_approvals(t + 80).await.expect("sweep").len(), 1);
    assert_eq!(
        s.load_approval("p3")
            .await
            .expect("load")
            .expect("kept")
            .state,
        ApprovalRow::EXPIRED
    );
}

async fn this_wasnt_me_blocks_pushes_until_cleared(s: Arc<impl PushStorage + 'static>) {
    let t = 30_000;
    s.admit_approval(&approval("w1", "alice", t), 10, t)
        .await
        .expect("admit");
    let reported = s
        .decide_approval("w1", "alice", Verdict::Report, "d1", t + 1)
        .await
        .expect("decide")
        .expect("decided");
    assert_eq!(reported.state, ApprovalRow::REPORTED);
    assert_eq!(s.push_block("alice").await.expect("block"), Some(t + 1));
    assert_eq!(
        s.admit_approval(&approval("w2", "alice", t + 2), 10, t + 2)
            .await
            .expect("admit"),
        Admission::Blocked { since: t + 1 }
    );
    assert!(s.clear_push_block("alice").await.expect("clear"));
    assert_eq!(
        s.admit_approval(&approval("w3", "alice", t + 3), 10, t + 3)
            .await
            .expect("admit"),
        Admission::Stored
    );
    s.announce_approval("w3").await.expect("announce");
}

fn passkey(credential: &str, device: &str, user: &str) -> PasskeyRow {
    PasskeyRow {
        credential_id: credential.to_owned(),
        device: device.to_owned(),
        user: user.to_owned(),
        passkey: format!(r#"{{"cred":"{credential}","counter":0}}"#),
        created_at: 1_000,
        used_at: None,
    }
}

/// A device and its passkey are stored together or not at all, and one credential id
/// belongs to one device of one user.
async fn a_passkey_comes_with_its_device_and_one_credential_once<S>(s: Arc<S>)
where
    S: PasskeyStorage + PushStorage + 'static,
{
    let added = s
        .add_device_with_passkey(&device("d1", "alice", b"t1"), &passkey("c1", "d1", "alice"))
        .await
        .expect("add");
    assert_eq!(added, PasskeyAdded::Stored);
    // The same credential for bob: refused, and bob's device is not stored either.
    let twin = s
        .add_device_with_passkey(&device("d2", "bob", b"t2"), &passkey("c1", "d2", "bob"))
        .await
        .expect("add");
    assert_eq!(twin, PasskeyAdded::CredentialTaken);
    assert!(s.list_devices("bob").await.expect("list").is_empty());
    assert_eq!(s.device_by_token(b"t2").await.expect("find"), None);
    let stored = s.load_passkey("d1").await.expect("load").expect("some");
    assert_eq!(stored, passkey("c1", "d1", "alice"));
    assert_eq!(s.load_passkey("d2").await.expect("load"), None);
    s.add_device_with_passkey(&device("d3", "alice", b"t3"), &passkey("c3", "d3", "alice"))
        .await
        .expect("add");
    let mine = s.passkeys_of("alice").await.expect("list");
    assert_eq!(mine.len(), 2);
    assert!(s.passkeys_of("bob").await.expect("list").is_empty());
    // The counter moves after an approval; another device's passkey is not touched.
    assert!(s
        .update_passkey("d1", "{\"counter\":5}", 2_000)
        .await
        .expect("update"));
    let moved = s.load_passkey("d1").await.expect("load").expect("some");
    assert_eq!(
        (moved.passkey.as_str(), moved.used_at),
        ("{\"counter\":5}", Some(2_000))
    );
    assert!(!s.update_passkey("d9", "{}", 2_000).await.expect("none"));
}

/// A ceremony is taken once, never after it expires, and a new one under the same key
/// replaces the last; racing takes get it once; a peek leaves it.
async fn a_ceremony_is_taken_once_and_not_after_it_expires(s: Arc<impl PasskeyStorage + 'static>) {
    s.put_ceremony("approve:r1:d1", "alice", "state-1", 200, 100)
        .await
        .expect("put");
    assert_eq!(
        s.take_ceremony("approve:r1:d2", 150).await.expect("take"),
        None
    );
    assert_eq!(
        s.take_ceremony("approve:r1:d1", 150).await.expect("take"),
        Some(("alice".to_owned(), "state-1".to_owned()))
    );
    assert_eq!(
        s.take_ceremony("approve:r1:d1", 151).await.expect("twice"),
        None
    );
    s.put_ceremony("k", "alice", "old", 200, 100)
        .await
        .expect("put");
    s.put_ceremony("k", "alice", "new", 300, 100)
        .await
        .expect("put");
    assert_eq!(
        s.take_ceremony("k", 250).await.expect("take"),
        Some(("alice".to_owned(), "new".to_owned()))
    );
    s.put_ceremony("late", "bob", "x", 200, 100)
        .await
        .expect("put");
    // Peeking (a grant that lasts until taken) leaves it in place, until it expires.
    for _ in 0..2 {
        assert_eq!(
            s.peek_ceremony("late", 199).await.expect("peek"),
            Some(("bob".to_owned(), 200))
        );
    }
    assert_eq!(s.peek_ceremony("late", 200).await.expect("expired"), None);
    assert_eq!(s.peek_ceremony("none", 100).await.expect("none"), None);
    assert_eq!(s.take_ceremony("late", 200).await.expect("expired"), None);
    s.put_ceremony("race", "carol", "y", 900, 100)
        .await
        .expect("put");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(
            async move { s.take_ceremony("race", 300).await },
        ));
    }
    let mut won = 0;
    for t in tasks {
        if t.await.expect("task").expect("take").is_some() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// Begin peeks at an enrollment link without spending it.
async fn an_enroll_link_is_peeked_without_spending_it<S>(s: Arc<S>)
where
    S: PasskeyStorage + PushStorage + 'static,
{
    s.add_enroll_link(b"h1", "alice", 100, 200)
        .await
        .expect("add");
    assert_eq!(
        s.peek_enroll_link(b"h1", 150).await.expect("peek"),
        Some(("alice".to_owned(), 200))
    );
    assert_eq!(s.peek_enroll_link(b"h1", 200).await.expect("expired"), None);
    assert_eq!(s.peek_enroll_link(b"h9", 150).await.expect("unknown"), None);
    assert!(s.use_enroll_link(b"h1", 160).await.expect("use").is_some());
    assert_eq!(s.peek_enroll_link(b"h1", 161).await.expect("spent"), None);
}

/// Runs each named check on a fresh SQLite file and on a fresh PostgreSQL database.
async fn an_offline_report_is_counted_once_per_host_and_pruned(
    s: Arc<impl OfflineStorage + 'static>,
) {
    assert!(s.record_report("web1", "r1", 100).await.expect("first"));
    assert!(!s.record_report("web1", "r1", 150).await.expect("again"));
    assert!(s
        .record_report("web2", "r1", 150)
        .await
        .expect("other host"));
    // Of racing replicas, one counts it.
    let racing = (0..8).map(|_| {
        let s = Arc::clone(&s);
        tokio::spawn(async move { s.record_report("web1", "r2", 160).await.expect("race") })
    });
    let mut counted = 0;
    for r in racing {
        counted += usize::from(r.await.expect("join"));
    }
    assert_eq!(counted, 1);
    assert_eq!(s.prune_reports(120).await.expect("prune"), 1);
    assert!(!s.record_report("web2", "r1", 170).await.expect("kept"));
    // Pruned with the audit log: an id that old may be counted again.
    assert!(s
        .record_report("web1", "r1", 170)
        .await
        .expect("after prune"));
}

async fn version_of(s: &impl Storage, name: &str) -> i64 {
    s.load_user(name).await.expect("load").expect("row").version
}

/// One report's writes from web1: its id, `user`'s marked row, its audit entry.
fn report(id: &str, user: Option<UserRow>) -> ReportWrites {
    ReportWrites {
        host: "web1".to_owned(),
        id: id.to_owned(),
        now: 1_000,
        user,
        audit: AuditEntry {
            outcome: "offline".to_owned(),
            method: Some("totp".to_owned()),
            reason: Some("ok".to_owned()),
            ..entry("olga", None)
        },
    }
}

/// A report's id, the user's marked record and its audit entry are stored together or not at
/// all: a lost compare-and-swap stores none of them (the id may come again), and a resend of
/// a stored report stores nothing more, even with another write of the user.
async fn an_offline_report_is_stored_whole_or_not_at_all<S>(s: Arc<S>)
where
    S: Storage + OfflineStorage + 'static,
{
    s.create_user(&user("olga", 1, b"v1"))
        .await
        .expect("create");
    // Read at version 3, but the row is at 1: lost; nothing of it stored.
    let lost = s
        .commit_report(&report("r-lost", Some(user("olga", 4, b"stale"))))
        .await
        .expect("commit");
    assert_eq!(lost, ReportCommitted::LostRace);
    assert_eq!(audit_count(&*s).await, 0, "no audit entry");
    assert_eq!(
        s.load_user("olga").await.expect("load"),
        Some(user("olga", 1, b"v1"))
    );
    // The same id again, marked from the row as it is: stored whole.
    let stored = s
        .commit_report(&report("r-lost", Some(user("olga", 2, b"v2"))))
        .await
        .expect("commit");
    assert_eq!(stored, ReportCommitted::Stored, "the lost id was not kept");
    assert_eq!(audit_count(&*s).await, 1);
    assert_eq!(
        s.load_user("olga")
            .await
            .expect("load")
            .expect("row")
            .sealed,
        b"v2".to_vec()
    );
    // Sent again (the host did not hear the answer): nothing more, the user untouched.
    let again = s
        .commit_report(&report("r-lost", Some(user("olga", 3, b"v3"))))
        .await
        .expect("commit");
    assert_eq!(again, ReportCommitted::Duplicate);
    assert_eq!(audit_count(&*s).await, 1);
    assert_eq!(version_of(&*s, "olga").await, 2);
    // A report that marks nothing (a failmode decision): id and audit entry.
    let failmode = s
        .commit_report(&report("r-failmode", None))
        .await
        .expect("commit");
    assert_eq!(failmode, ReportCommitted::Stored);
    assert_eq!(audit_count(&*s).await, 2);
    // Of racing replicas with one report, one stores it.
    let racing = (0..8).map(|_| {
        let s = Arc::clone(&s);
        tokio::spawn(async move {
            s.commit_report(&report("r-race", Some(user("olga", 3, b"v3"))))
                .await
                .expect("race")
        })
    });
    let mut stored = 0;
    for r in racing {
        let done = r.await.expect("join");
        assert_ne!(done, ReportCommitted::LostRace, "one id, one writer");
        stored += usize::from(done == ReportCommitted::Stored);
    }
    assert_eq!(stored, 1);
    assert_eq!(audit_count(&*s).await, 3);
    assert_eq!(version_of(&*s, "olga").await, 3);
}

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
    a_verifications_reads_are_those_made_one_by_one,
    a_verification_is_stored_whole_or_not_at_all,
    concurrent_verifications_are_each_stored_or_refused_alone,
    a_verification_is_stored_only_on_the_rows_it_was_decided_on,
    devices_are_found_by_token_until_revoked,
    a_webhook_is_set_replaced_and_removed,
    an_enroll_link_is_used_once_and_not_after_it_expires,
    one_pending_push_per_user_and_at_most_n_an_hour,
    of_racing_pushes_for_one_user_one_is_stored,
    a_decision_needs_the_right_number_the_right_user_and_time,
    this_wasnt_me_blocks_pushes_until_cleared,
    an_offline_report_is_counted_once_per_host_and_pruned,
    an_offline_report_is_stored_whole_or_not_at_all,
    a_passkey_comes_with_its_device_and_one_credential_once,
    a_ceremony_is_taken_once_and_not_after_it_expires,
    an_enroll_link_is_peeked_without_spending_it,
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
