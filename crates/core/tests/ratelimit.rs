//! The rate limit against the attacks of issue 9 (docs/ratelimit.md): many addresses, rotated
//! addresses and IPv6 prefixes, shared addresses, named sources, and what the delays tell.
//! Each test drives the real [`Engine`] over a real store, with the config read from text.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use common::{TestStore, T};
use sshield_core::{Account, Attempt, Caller, Config, Engine, Outcome, Response, UnixTime};

const HOME: &str = "192.0.2.10";
const NAT: &str = "198.51.100.1";
/// A first factor as sshd shows it with `ExposeAuthInfo yes`.
const PASSWORD_PASSED: &str = "password\n";

fn engine(s: &TestStore, extra: &str) -> Engine {
    let text = format!("store = \"{}\"\n{extra}", s.dir().display());
    Engine::new(&Config::parse(&text, Path::new("/test/sshield.toml")).unwrap())
}

/// Where a test login comes from, and what it shows of a first factor.
#[derive(Clone, Copy)]
struct From<'a> {
    address: Option<&'a str>,
    name: Option<&'a str>,
    first_factor: Option<&'a str>,
}

fn at(address: &str) -> From<'_> {
    From {
        address: Some(address),
        name: None,
        first_factor: None,
    }
}

const LOCAL: From<'static> = From {
    address: None,
    name: None,
    first_factor: None,
};

fn login(e: &Engine, user: &str, from: From<'_>, typed: &str, now: u64) -> Outcome {
    let response = Response::new(typed);
    e.check(&Attempt {
        caller: &Caller {
            source_name: from.name.map(str::to_owned),
            ..Caller::new(Account::resolve(user), "sshd")
                .from_source(from.address.map(|a| a.parse::<IpAddr>().unwrap()))
                .with_ssh_auth_info(from.first_factor)
        },
        response: &response,
        now: UnixTime(now),
    })
}

fn reason(o: &Outcome) -> &'static str {
    match &o.decision {
        sshield_core::Decision::Allow(_) => "allow",
        sshield_core::Decision::Deny(r) => r.as_str(),
    }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn state_len(s: &TestStore, user: &str) -> u64 {
    fs::metadata(s.dir().join(format!(".{user}.state")))
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Item 3: 120 guesses from 120 addresses drew no lock, and the right code then passed.
/// Every source the user never passed from shares one budget, IPv4 or IPv6; the owner's
/// familiar source keeps its own.
#[test]
fn rotating_addresses_share_one_budget_and_the_owner_keeps_home() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(&s, "[rate_limit]\nmax_failures = 5\ndelay = \"0s\"\n");
    assert_eq!(
        reason(&login(&e, "alice", at(HOME), &phone.at(T), T)),
        "allow"
    );
    let now = T + 30;
    let wrong = common::typo(&phone.at(now));
    let reasons: Vec<&str> = (0..120)
        .map(|i| {
            let address = format!("203.0.{}.{}", i / 200, i % 200 + 1);
            reason(&login(&e, "alice", at(&address), &wrong, now))
        })
        .collect();
    assert_eq!(reasons[..5], ["wrong-code"; 5]);
    assert!(reasons[5..].iter().all(|r| *r == "locked"), "{reasons:?}");
    // The right code from yet another address (or a whole IPv6 network) is refused unchecked.
    let right = phone.at(now);
    assert_eq!(
        reason(&login(&e, "alice", at("198.18.0.1"), &right, now)),
        "locked"
    );
    assert_eq!(
        reason(&login(&e, "alice", at("2001:db8::1"), &right, now)),
        "locked"
    );
    // The owner, from home, is not locked out by any of it.
    assert_eq!(reason(&login(&e, "alice", at(HOME), &right, now)), "allow");
    // Nor on the console.
    let later = phone.at(now + 30);
    assert_eq!(
        reason(&login(&e, "alice", LOCAL, &later, now + 30)),
        "allow"
    );
}

/// Item 3: an IPv6 guesser holds a /64; it counts as one source.
#[test]
fn an_ipv6_network_is_one_source() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(
        &s,
        "[rate_limit]\nmax_failures = 100\nsource_max_failures = 4\ndelay = \"0s\"\n",
    );
    let wrong = common::typo(&phone.at(T));
    for i in 1..=4 {
        let address = format!("2001:db8:1:2::{i:x}");
        assert_eq!(
            reason(&login(&e, "bob", at(&address), &wrong, T)),
            "not-enrolled"
        );
    }
    // Another address in the same /64: the source is locked.
    let right = phone.at(T);
    let o = login(&e, "alice", at("2001:db8:1:2:ffff::1"), &right, T);
    assert_eq!(reason(&o), "locked");
    // The next /64 is another source.
    let o = login(&e, "alice", at("2001:db8:1:3::1"), &right, T);
    assert_eq!(reason(&o), "allow");
    // A prefix of 48 bits makes the two one.
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(
        &s,
        "[rate_limit]\nmax_failures = 100\nsource_max_failures = 4\nipv6_prefix = 48\n",
    );
    for i in 1..=4 {
        login(&e, "bob", at(&format!("2001:db8:1:{i}::1")), &wrong, T);
    }
    let o = login(&e, "alice", at("2001:db8:1:ff::1"), &phone.at(T), T);
    assert_eq!(reason(&o), "locked");
}

/// Item 3: a guesser who stays under the short limit (4 failures every 15 minutes, 384 a
/// day) meets the daily budget.
#[test]
fn a_slow_guesser_meets_the_daily_budget() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(&s, "[rate_limit]\ndelay = \"0s\"\n");
    let mut now = T;
    let mut guesses = 0;
    while now < T + 24 * 3600 {
        for i in 0..4 {
            let address = format!("203.0.113.{}", guesses % 250 + 1);
            let o = login(
                &e,
                "alice",
                at(&address),
                &common::typo(&phone.at(now)),
                now + i,
            );
            if reason(&o) == "locked" {
                break;
            }
            guesses += 1;
        }
        now += 15 * 60;
    }
    assert_eq!(guesses, 20, "max_failures_per_day = 20 by default");
    let o = login(&e, "alice", at("203.0.113.99"), &phone.at(now), now);
    assert_eq!(reason(&o), "allow", "the day is over");
}

/// Items 2 and 11: each failing address used to add an entry to the user's state (and two
/// files to `.sources/`), until the state was too large to write: from then on a failure was
/// answered as a store error with no delay and no count, and the user's own backup code was
/// refused. Now the state and the directory stay small whatever the number of addresses.
#[test]
fn thousands_of_addresses_leave_the_state_and_the_store_small() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(
        &s,
        "[rate_limit]\nmax_failures = 100000\nmax_failures_per_day = 0\nsource_max_failures = 100000\n",
    );
    let wrong = common::typo(&phone.at(T));
    for i in 0..100u32 {
        let address = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
        let o = login(&e, "alice", at(&address), &wrong, T);
        assert_eq!(reason(&o), "wrong-code", "address {address}");
        assert!(!o.delay.is_zero(), "address {address}: no delay");
        let o = login(&e, "nobody", at(&address), &wrong, T);
        assert_eq!(reason(&o), "not-enrolled");
    }
    // One slot of a page each, as for a user nobody attacks.
    assert!(state_len(&s, "alice") <= 8192, "{}", state_len(&s, "alice"));
    let usage = s.record("alice").usage;
    assert_eq!(usage.failures.keys().collect::<Vec<_>>(), ["unfamiliar"]);
    assert_eq!(usage.failures["unfamiliar"].count, 100);
    // One table and its lock file, whatever the number of addresses.
    assert_eq!(
        files_in(&s.dir().join(".sources")),
        [".table.lock", "table.toml"]
    );
    // The owner's backup code still works.
    let o = login(&e, "alice", at(HOME), &phone.backup_codes[0], T);
    assert_eq!(reason(&o), "allow");
}

/// Item 2: a state left large by an older version (one entry per address) is pruned by the
/// next write, a success included, so the user's own codes keep working.
#[test]
fn a_state_grown_by_an_older_version_is_pruned_on_the_next_write() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let name = common::name("alice");
    s.store
        .update(&name, |slot| {
            let record = slot.as_mut().unwrap();
            for i in 0..2000u32 {
                let f = sshield_core::ratelimit::FailureCount {
                    count: 1,
                    first: T,
                    ..Default::default()
                };
                let key = format!("10.0.{}.{}", i >> 8, i & 255);
                record.usage.failures.insert(key, f);
            }
            Ok::<_, sshield_core::StoreError>((sshield_core::store::Change::SaveUsage, ()))
        })
        .unwrap();
    assert!(state_len(&s, "alice") > 8192);
    let e = engine(&s, "");
    let o = login(&e, "alice", at(HOME), &phone.backup_codes[0], T);
    assert_eq!(reason(&o), "allow");
    assert!(s.record("alice").usage.failures.is_empty());
}

/// Item 2: a failure whose count cannot be written is still delayed, the longest delay: a
/// broken store must never mean "no count and no delay".
#[test]
fn a_failure_that_cannot_be_counted_waits_the_longest_delay() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(
        &s,
        "[rate_limit]
delay = \"1s\"\n",
    );
    // The user's state cannot be read (both copies damaged): a store error, delayed.
    let state = s.dir().join(".alice.state");
    login(&e, "alice", at(HOME), &common::typo(&phone.at(T)), T);
    fs::write(&state, vec![0xA5; 8192]).unwrap();
    let o = login(&e, "alice", at(HOME), &phone.at(T), T);
    assert_eq!(reason(&o), "store-error");
    assert_eq!(o.delay, Duration::from_secs(8));
    // And it still counts against its source: the wrong code before it, and itself.
    assert_eq!(s.store.load_sources().unwrap().sources[HOME].count, 2);
    fs::remove_file(&state).unwrap();
    // The per-source table cannot be written (its directory is a file): the wrong code is
    // refused, with the longest delay.
    let sources = s.dir().join(".sources");
    fs::remove_dir_all(&sources).unwrap();
    fs::write(&sources, "not a directory").unwrap();
    let o = login(
        &e,
        "alice",
        at(HOME),
        &common::typo(&phone.at(T + 30)),
        T + 30,
    );
    assert_eq!(reason(&o), "wrong-code");
    assert_eq!(o.delay, Duration::from_secs(8));
    let o = login(&e, "nobody", at(HOME), "123456", T + 30);
    assert_eq!(o.delay, Duration::from_secs(8));
}

/// Item 10: one shared address (a NAT, a bastion, `ssh -J`) filled with failures by requests
/// that passed no first factor (`forward_pass` checks the code before the password) locks
/// the address only for logins that show nothing better: not for a user who passed a first
/// factor, nor for a user at home there.
#[test]
fn a_locked_shared_address_does_not_hurt_users_who_show_more() {
    let s = TestStore::new();
    let alice = s.enroll("alice");
    let bob = s.enroll("bob");
    let carol = s.enroll("carol");
    let e = engine(
        &s,
        "[rate_limit]\nsource_max_failures = 4\nmax_failures = 100\ndelay = \"0s\"\n",
    );
    // Alice logs in from behind the NAT every day.
    assert_eq!(
        reason(&login(&e, "alice", at(NAT), &alice.at(T), T)),
        "allow"
    );
    // Someone behind it sprays names with no credentials at all.
    let now = T + 30;
    for user in ["root", "admin", "alice", "bob"] {
        login(&e, user, at(NAT), "000000", now);
    }
    // Alice, at home there: let in.
    assert_eq!(
        reason(&login(&e, "alice", at(NAT), &alice.at(now), now)),
        "allow"
    );
    // Bob, new there, after a password sshd checked: let in.
    let bob_from = From {
        first_factor: Some(PASSWORD_PASSED),
        ..at(NAT)
    };
    assert_eq!(
        reason(&login(&e, "bob", bob_from, &bob.at(now), now)),
        "allow"
    );
    // Carol, new there and showing nothing but the address: the address's lock holds.
    assert_eq!(
        reason(&login(&e, "carol", at(NAT), &carol.at(now), now)),
        "locked"
    );
}

/// Item 4: with `UseDNS yes` sshd names the source; a named source is remote, never the
/// local bucket, so it cannot lock the owner's console and sudo logins.
#[test]
fn a_named_source_never_locks_local_logins() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(&s, "[rate_limit]\nmax_failures = 3\ndelay = \"0s\"\n");
    let named = From {
        name: Some("attacker.example.net"),
        ..LOCAL
    };
    let wrong = common::typo(&phone.at(T));
    for _ in 0..3 {
        assert_eq!(reason(&login(&e, "alice", named, &wrong, T)), "wrong-code");
    }
    assert_eq!(
        reason(&login(&e, "alice", named, &phone.at(T), T)),
        "locked"
    );
    assert_eq!(reason(&login(&e, "alice", LOCAL, &phone.at(T), T)), "allow");
}

/// Item 16: an enrolled and an unenrolled name answer with the same delays, failure after
/// failure, through the lock.
#[test]
fn enrolled_and_unenrolled_names_wait_alike() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(&s, "[rate_limit]\nmax_failures = 3\ndelay = \"1s\"\n");
    let delays = |user: &str, address: &str| -> Vec<u64> {
        (0..8)
            .map(|i| {
                let now = T + i * 30;
                login(&e, user, at(address), &common::typo(&phone.at(now)), now)
                    .delay
                    .as_secs()
            })
            .collect()
    };
    let enrolled = delays("alice", "203.0.113.1");
    let unenrolled = delays("zed", "203.0.113.2");
    assert_eq!(enrolled, unenrolled);
    assert_eq!(enrolled, [1, 2, 4, 8, 8, 8, 8, 8]);
    // Locally, every denial waits `delay`, enrolled or not.
    let local: Vec<u64> = ["alice", "zed"]
        .iter()
        .flat_map(|u| (0..5).map(move |i| (u, i)))
        .map(|(u, i)| login(&e, u, LOCAL, "000000", T + i).delay.as_secs())
        .collect();
    assert_eq!(local, [1; 10]);
}

/// Item 11: files an older version left per address in `.sources/` are removed by the next
/// write of the table.
#[test]
fn per_address_files_of_an_older_version_are_removed() {
    let s = TestStore::new();
    s.enroll("alice");
    let dir = s.dir().join(".sources");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for i in 0..50 {
        fs::write(
            dir.join(format!("10.0.0.{i}.toml")),
            "count = 1\nfirst = 1\n",
        )
        .unwrap();
        fs::write(dir.join(format!(".10.0.0.{i}.lock")), "").unwrap();
    }
    // And a temporary file of a writer that died before its rename.
    fs::write(dir.join(".table.tmp.99999999"), "half").unwrap();
    let e = engine(&s, "");
    login(&e, "nobody", at(HOME), "123456", T);
    assert_eq!(files_in(&dir), [".table.lock", "table.toml"]);
}
