//! Races, as they happen when several sshd children (one process per connection) log in at once:
//! a code is accepted at most once however many logins race with it, and no update is lost.
//!
//! Three levels of "at once": threads sharing one engine; threads each with their own
//! `RecordStore` (each opens its own lock file description, which is what `flock` arbitrates,
//! exactly as between processes); and real processes, by re-running this test binary as
//! workers (see [`worker`]).
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use common::{decide, name, outcome, TestStore, STEP, T};
use sshield_core::config::Policy;
use sshield_core::{Decision, Engine, Method, RecordStore};

/// Runs `f(i)` on `n` threads released together, and returns what each returned.
fn race<R: Send>(n: usize, f: impl Fn(usize) -> R + Sync) -> Vec<R> {
    let start = Barrier::new(n);
    thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let (start, f) = (&start, &f);
                scope.spawn(move || {
                    start.wait();
                    f(i)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn count(outcomes: &[&str], word: &str) -> usize {
    outcomes.iter().filter(|o| **o == word).count()
}

#[test]
fn fifty_logins_racing_with_one_code_let_exactly_one_in() {
    let s = TestStore::new();
    let code = s.enroll("alice").at(T);
    let outcomes: Vec<&str> = race(50, |_| outcome(&s.decide("alice", &code, T)));
    assert_eq!(count(&outcomes, "allow"), 1, "{outcomes:?}");
    assert_eq!(count(&outcomes, "replayed"), 49, "{outcomes:?}");
}

#[test]
fn fifty_users_logging_in_at_once_all_get_in_and_all_are_recorded() {
    let s = TestStore::new();
    let users: Vec<String> = (0..50).map(|i| format!("user{i:02}")).collect();
    let codes: Vec<String> = users.iter().map(|u| s.enroll(u).at(T)).collect();
    let outcomes: Vec<&str> = race(50, |i| outcome(&s.decide(&users[i], &codes[i], T)));
    assert_eq!(count(&outcomes, "allow"), 50, "{outcomes:?}");
    for (user, code) in users.iter().zip(&codes) {
        let record = s.record(user);
        assert_eq!(
            record.token_usage("default").last_step,
            Some(STEP),
            "{user}"
        );
        assert_eq!(record.usage.last_success, Some(T), "{user}");
        assert_eq!(outcome(&s.decide(user, code, T)), "replayed", "{user}");
    }
}

/// An engine with its own `RecordStore` on `dir`, as a separate sshd child would have.
fn own_engine(dir: &Path) -> Engine {
    Engine::with_store(RecordStore::new(dir), Policy::default())
}

#[test]
fn separate_stores_on_one_directory_let_one_code_in_once() {
    let s = TestStore::new();
    let code = s.enroll("alice").at(T);
    let outcomes: Vec<&str> = race(50, |_| {
        let engine = own_engine(s.dir());
        outcome(&decide(&engine, "alice", &code, T))
    });
    assert_eq!(count(&outcomes, "allow"), 1, "{outcomes:?}");
    assert_eq!(count(&outcomes, "replayed"), 49, "{outcomes:?}");
}

#[test]
fn separate_stores_using_different_backup_codes_lose_no_update() {
    let s = TestStore::new();
    let codes = s.enroll("alice").backup_codes;
    // Each login reads the record, marks its code used and writes it back: without the lock,
    // two would read the same old record and one mark would be lost.
    let decisions = race(codes.len(), |i| {
        let engine = own_engine(s.dir());
        decide(&engine, "alice", &codes[i], T)
    });
    let remaining: BTreeSet<usize> = decisions
        .iter()
        .map(|d| match d {
            Decision::Allow(Method::Backup { remaining }) => *remaining,
            other => panic!("expected a backup allow, got {other:?}"),
        })
        .collect();
    // Each login saw the one before it: 9, 8, ..., 0 left, each exactly once.
    assert_eq!(remaining, (0..codes.len()).collect());
    assert_eq!(s.record("alice").usage.backup_used.len(), codes.len());
    for code in &codes {
        assert_eq!(outcome(&s.decide("alice", code, T)), "replayed");
    }
}

#[test]
fn a_reader_never_sees_half_a_record() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let logins = 40u64;
    let done = std::sync::atomic::AtomicBool::new(false);
    thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let store = RecordStore::new(s.dir());
            let mut last_seen = None;
            let mut reads = 0u32;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || reads == 0 {
                // Loads take no lock; atomic replacement alone must keep them whole.
                let record = store.load(&name("alice")).unwrap().unwrap();
                let step = record.token_usage("default").last_step;
                assert!(
                    step >= last_seen,
                    "went back from {last_seen:?} to {step:?}"
                );
                last_seen = step;
                reads += 1;
            }
            reads
        });
        for n in 0..logins {
            let now = T + 30 * n;
            assert_eq!(outcome(&s.decide("alice", &phone.at(now), now)), "allow");
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
    });
    assert_eq!(
        s.record("alice").token_usage("default").last_step,
        Some(STEP + logins - 1)
    );
}

// --- Real processes -------------------------------------------------------------------------

/// Set in a child process to make [`worker`] do one login instead of returning at once.
const WORKER_ENV: &str = "SSHIELD_TEST_WORKER";

/// Not a test of its own: in a normal run it returns at once. A child started by
/// [`separate_processes_racing_let_a_code_in_once_and_lose_no_update`] runs only this, with
/// `SSHIELD_TEST_WORKER=<control dir>`, where it finds its job and leaves its answer.
#[test]
fn worker() {
    let Some(control) = std::env::var_os(WORKER_ENV) else {
        return;
    };
    let control = PathBuf::from(control);
    let index = std::env::var("SSHIELD_TEST_WORKER_INDEX").unwrap();
    let job = fs::read_to_string(control.join("job")).unwrap();
    let [store, user, totp_code] = job.lines().collect::<Vec<_>>()[..] else {
        panic!("bad job file: {job:?}");
    };
    let backup_code = fs::read_to_string(control.join(format!("backup.{index}"))).unwrap();
    let engine = own_engine(Path::new(store));

    fs::write(control.join(format!("ready.{index}")), "").unwrap();
    wait_for(&control.join("go"));
    let first = outcome(&decide(&engine, user, totp_code, T));
    let second = outcome(&decide(&engine, user, &backup_code, T));
    fs::write(
        control.join(format!("result.{index}")),
        format!("{first} {second}"),
    )
    .unwrap();
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !path.exists() {
        assert!(Instant::now() < deadline, "timed out waiting for {path:?}");
        thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn separate_processes_racing_let_a_code_in_once_and_lose_no_update() {
    let s = TestStore::new();
    let token = s.enroll("alice");
    let n = token.backup_codes.len();
    let control = tempfile::tempdir().unwrap();
    let job = format!("{}\nalice\n{}\n", s.dir().display(), token.at(T));
    fs::write(control.path().join("job"), job).unwrap();
    for (i, code) in token.backup_codes.iter().enumerate() {
        fs::write(control.path().join(format!("backup.{i}")), code).unwrap();
    }

    // Each child is this test binary running only `worker`.
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..n)
        .map(|i| {
            Command::new(&exe)
                .args(["worker", "--exact", "--test-threads=1", "--nocapture"])
                .env(WORKER_ENV, control.path())
                .env("SSHIELD_TEST_WORKER_INDEX", i.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    // Release them together once all have started, so the logins really overlap.
    for i in 0..n {
        wait_for(&control.path().join(format!("ready.{i}")));
    }
    fs::write(control.path().join("go"), "").unwrap();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "worker failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    let results: Vec<String> = (0..n)
        .map(|i| fs::read_to_string(control.path().join(format!("result.{i}"))).unwrap())
        .collect();
    let totp: Vec<&str> = results.iter().map(|r| &r[..r.find(' ').unwrap()]).collect();
    let backup: Vec<&str> = results
        .iter()
        .map(|r| &r[r.find(' ').unwrap() + 1..])
        .collect();
    assert_eq!(count(&totp, "allow"), 1, "{results:?}");
    assert_eq!(count(&totp, "replayed"), n - 1, "{results:?}");
    assert_eq!(count(&backup, "allow"), n, "{results:?}");

    let record = s.record("alice");
    assert_eq!(record.token_usage("default").last_step, Some(STEP));
    assert_eq!(
        record.usage.backup_used.len(),
        n,
        "every process's update is kept"
    );
}

/// `remove` unlinks the user's lock file while holding it (issue 13: removing a user leaves
/// nothing of theirs). A process that was waiting on that file then holds the lock of a file
/// no name leads to, while the next one locks a new file at the name: unless each checks,
/// after `flock`, that the name still leads to the file it locked, the two run together.
/// Threads with their own `RecordStore` (as separate processes) remove, re-create and read
/// one user in a loop; no two may ever be inside an update at once.
#[test]
fn removing_a_user_while_others_wait_on_the_lock_never_lets_two_in_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};

    let s = TestStore::new();
    s.enroll("alice");
    let record = s.record("alice");
    let inside = AtomicUsize::new(0);
    let overlaps = AtomicUsize::new(0);
    let errors = race(8, |i| {
        let store = RecordStore::new(s.dir());
        let mut errors = Vec::new();
        for round in 0..150 {
            let result = store.update(&name("alice"), |slot| {
                if inside.fetch_add(1, Ordering::SeqCst) != 0 {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                // Long enough for the others to pile up on the lock.
                thread::sleep(Duration::from_micros(200));
                let change = match (i + round) % 3 {
                    0 if slot.is_some() => {
                        *slot = None;
                        sshield_core::store::Change::Save
                    }
                    1 if slot.is_none() => {
                        *slot = Some(record.clone());
                        sshield_core::store::Change::Save
                    }
                    _ => sshield_core::store::Change::Keep,
                };
                inside.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, sshield_core::StoreError>((change, ()))
            });
            if let Err(e) = result {
                errors.push(e.to_string());
            }
        }
        errors
    });
    // Two writers at once also trip over each other's temporary file.
    let errors: Vec<String> = errors.into_iter().flatten().collect();
    assert_eq!(errors, Vec::<String>::new(), "updates failed");
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two updates of alice ran at once"
    );
}
