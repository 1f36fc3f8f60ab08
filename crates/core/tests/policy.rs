//! Who must pass a second factor ([`Engine::requirement`]) and failure counting with lockout
//! ([`Engine::check`]), with the policy read from a real config file.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use common::{TestStore, T};
use sshield_core::{
    Account, Attempt, Caller, Config, Decision, DenyReason, Engine, Exemption, Outcome,
    Requirement, Response, UnixTime,
};

const OUTSIDE: &str = "203.0.113.7";
const ELSEWHERE: &str = "198.51.100.9";
const LAN: &str = "192.168.1.20";

fn engine(s: &TestStore, extra: &str) -> Engine {
    let text = format!("store = \"{}\"\n{extra}", s.dir().display());
    Engine::new(&Config::parse(&text, Path::new("/test/sshield.toml")).unwrap())
}

fn ip(text: &str) -> Option<IpAddr> {
    Some(text.parse().unwrap())
}

fn requirement(e: &Engine, user: &str, source: &str, now: u64) -> Requirement {
    let subject = Caller::new(Account::resolve(user), "sshd").from_source(ip(source));
    e.requirement(&subject, UnixTime(now))
}

fn check(e: &Engine, user: &str, source: &str, typed: &str, now: u64) -> Outcome {
    let response = Response::new(typed);
    e.check(&Attempt {
        caller: &Caller::new(Account::resolve(user), "sshd").from_source(ip(source)),
        response: &response,
        now: UnixTime(now),
    })
}

#[test]
fn exempt_networks_users_and_unknown_sources() {
    let s = TestStore::new();
    s.enroll("alice");
    let e = engine(
        &s,
        "[policy]\nexempt_networks = [\"192.168.0.0/16\", \"::1\"]\nexempt_users = [\"deploy\"]\n",
    );
    assert_eq!(
        requirement(&e, "alice", LAN, T),
        Requirement::Exempt(Exemption::Network)
    );
    assert_eq!(
        requirement(&e, "alice", "::ffff:192.168.1.20", T),
        Requirement::Exempt(Exemption::Network)
    );
    assert_eq!(
        requirement(&e, "alice", "::1", T),
        Requirement::Exempt(Exemption::Network)
    );
    assert_eq!(requirement(&e, "alice", OUTSIDE, T), Requirement::Prompt);
    assert_eq!(
        requirement(&e, "deploy", OUTSIDE, T),
        Requirement::Exempt(Exemption::User)
    );
}

#[test]
fn unenrolled_users_are_prompted_like_enrolled_ones_unless_policy_allows() {
    let s = TestStore::new();
    s.enroll("alice");
    let deny = engine(&s, "");
    // Enrolled, not enrolled, and not even a valid name: the same answer, so the prompt
    // reveals nothing.
    for user in ["alice", "bob", "no such user!"] {
        assert_eq!(
            requirement(&deny, user, OUTSIDE, T),
            Requirement::Prompt,
            "{user}"
        );
    }
    let d = check(&deny, "bob", OUTSIDE, "123456", T).decision;
    assert!(
        matches!(d, Decision::Deny(DenyReason::NotEnrolled)),
        "{d:?}"
    );

    let allow = engine(&s, "[policy]\nunenrolled = \"allow\"\n");
    assert_eq!(
        requirement(&allow, "bob", OUTSIDE, T),
        Requirement::Exempt(Exemption::Unenrolled)
    );
    assert_eq!(
        requirement(&allow, "alice", OUTSIDE, T),
        Requirement::Prompt
    );

    // T is 2023-11-14; a grace period to the end of that day, and one that is over.
    let grace = engine(&s, "[policy]\nallow_until = 2023-11-14\n");
    assert_eq!(
        requirement(&grace, "bob", OUTSIDE, T),
        Requirement::Exempt(Exemption::UnenrolledGrace)
    );
    let over = engine(&s, "[policy]\nallow_until = \"2023-11-13\"\n");
    assert_eq!(requirement(&over, "bob", OUTSIDE, T), Requirement::Prompt);
}

#[test]
fn group_rules_use_the_system_groups() {
    // root is in group root on every system the tests run on.
    let s = TestStore::new();
    let exempt = engine(&s, "[policy]\nexempt_groups = [\"root\"]\n");
    assert_eq!(
        requirement(&exempt, "root", OUTSIDE, T),
        Requirement::Exempt(Exemption::Group)
    );
    let required = engine(
        &s,
        "[policy]\nrequire_groups = [\"sshield-nobody-is-in-this\"]\n",
    );
    assert_eq!(
        requirement(&required, "root", OUTSIDE, T),
        Requirement::Exempt(Exemption::NotRequired)
    );
    // A name the system does not know gets no group exemption.
    assert_eq!(
        requirement(&required, "sshield-ghost", OUTSIDE, T),
        Requirement::Prompt
    );
    let required_root = engine(&s, "[policy]\nrequire_groups = [\"root\"]\n");
    assert_eq!(
        requirement(&required_root, "root", OUTSIDE, T),
        Requirement::Prompt
    );
}

#[test]
fn remember_skips_the_prompt_for_the_same_source_only_and_only_for_a_while() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(&s, "[policy]\nremember = \"1h\"\n");
    assert_eq!(requirement(&e, "alice", OUTSIDE, T), Requirement::Prompt);
    assert!(check(&e, "alice", OUTSIDE, &phone.at(T), T)
        .decision
        .is_allow());
    assert_eq!(
        requirement(&e, "alice", OUTSIDE, T + 60),
        Requirement::Exempt(Exemption::Remembered)
    );
    assert_eq!(
        requirement(&e, "alice", ELSEWHERE, T + 60),
        Requirement::Prompt
    );
    assert_eq!(
        requirement(&e, "alice", OUTSIDE, T + 3600),
        Requirement::Prompt
    );
    // Off by default.
    let plain = engine(&s, "");
    assert_eq!(
        requirement(&plain, "alice", OUTSIDE, T + 60),
        Requirement::Prompt
    );
}

#[test]
fn lockout_is_per_user_and_source_with_growing_delays_and_ends() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(
        &s,
        "[rate_limit]\nmax_failures = 3\nwithin = \"10m\"\nlockout = \"5m\"\ndelay = \"1s\"\n",
    );
    // The owner has logged in from ELSEWHERE before: a familiar source, with its own budget.
    assert!(check(&e, "alice", ELSEWHERE, &phone.at(T - 60), T - 60)
        .decision
        .is_allow());
    let wrong = common::typo(&phone.at(T));
    let delays: Vec<Duration> = (0..3)
        .map(|i| {
            let o = check(&e, "alice", OUTSIDE, &wrong, T + i);
            assert!(
                matches!(o.decision, Decision::Deny(DenyReason::WrongCode)),
                "{o:?}"
            );
            o.delay
        })
        .collect();
    assert_eq!(delays, [1, 2, 4].map(Duration::from_secs));
    // Locked from that address: even the right code is refused, and not used up.
    let o = check(&e, "alice", OUTSIDE, &phone.at(T + 10), T + 10);
    assert!(
        matches!(o.decision, Decision::Deny(DenyReason::Locked { .. })),
        "{o:?}"
    );
    // The owner, from a familiar source, is not locked out by the attacker.
    assert!(check(&e, "alice", ELSEWHERE, &phone.at(T + 10), T + 10)
        .decision
        .is_allow());
    // After the lockout, the attacker's address may try again.
    let later = T + 10 + 300;
    assert!(check(&e, "alice", OUTSIDE, &phone.at(later), later)
        .decision
        .is_allow());
}

#[test]
fn a_success_resets_its_familiar_source() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(&s, "[rate_limit]\nmax_failures = 3\n");
    assert!(check(&e, "alice", OUTSIDE, &phone.at(T - 60), T - 60)
        .decision
        .is_allow());
    let wrong = common::typo(&phone.at(T));
    for i in 0..2 {
        check(&e, "alice", OUTSIDE, &wrong, T + i);
    }
    assert!(check(&e, "alice", OUTSIDE, &phone.at(T), T + 2)
        .decision
        .is_allow());
    assert!(s.record("alice").usage.failures.is_empty());
    for i in 0..2 {
        let o = check(&e, "alice", OUTSIDE, &wrong, T + 30 + i);
        assert!(
            matches!(o.decision, Decision::Deny(DenyReason::WrongCode)),
            "{o:?}"
        );
    }
}

#[test]
fn one_address_trying_many_users_is_locked_out() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(
        &s,
        "[rate_limit]\nsource_max_failures = 4\nmax_failures = 100\n",
    );
    // Guessing at names that are not enrolled counts against the address too.
    for (i, user) in ["bob", "carol", "dave", "erin"].iter().enumerate() {
        check(&e, user, OUTSIDE, "123456", T + i as u64);
    }
    let o = check(&e, "alice", OUTSIDE, &phone.at(T + 5), T + 5);
    assert!(
        matches!(o.decision, Decision::Deny(DenyReason::Locked { .. })),
        "{o:?}"
    );
    assert!(check(&e, "alice", ELSEWHERE, &phone.at(T + 5), T + 5)
        .decision
        .is_allow());
    // The address's count lives in the store, so it holds across processes.
    let table = s.store.load_sources().unwrap();
    assert!(table.locked(OUTSIDE, T + 5).is_some(), "{table:?}");
}

#[test]
fn rate_limiting_can_be_turned_off() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let e = engine(&s, "[rate_limit]\nenabled = false\nmax_failures = 1\n");
    let wrong = common::typo(&phone.at(T));
    for i in 0..5 {
        let o = check(&e, "alice", OUTSIDE, &wrong, T + i);
        assert_eq!(o.delay, Duration::ZERO);
    }
    assert!(check(&e, "alice", OUTSIDE, &phone.at(T), T + 6)
        .decision
        .is_allow());
}

const KEY_LINE: &str =
    "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIADZH9i5q4BpblLoMkH34ykCJ5h9wSugJ4jSFNJ6Cvr5\n";
/// What `ssh-keygen -l` prints for that key.
const KEY_FINGERPRINT: &str = "SHA256:52jls/RFRFy+PubI/1au9ilDJEPP1HA5XL7AIZ5aMsA";

fn check_after(e: &Engine, first: Option<&str>, typed: &str, now: u64) -> Decision {
    let response = Response::new(typed);
    e.check(&Attempt {
        caller: &Caller::new(Account::resolve("alice"), "sshd")
            .from_source(ip(OUTSIDE))
            .with_ssh_auth_info(first),
        response: &response,
        now: UnixTime(now),
    })
    .decision
}

#[test]
fn a_key_bound_authenticator_counts_only_after_that_key() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let user = common::name("alice");
    sshield_core::provision::bind_keys(&s.store, &user, None, vec![KEY_FINGERPRINT.into()])
        .unwrap();
    let e = engine(&s, "");
    // After a password, or with no account of the first factor: refused.
    let d = check_after(&e, Some("password\n"), &phone.at(T), T);
    assert!(
        matches!(d, Decision::Deny(DenyReason::FirstFactor)),
        "{d:?}"
    );
    let d = check_after(&e, None, &phone.at(T), T);
    assert!(!d.is_allow(), "{d:?}");
    // After the bound key: accepted.
    assert!(check_after(&e, Some(KEY_LINE), &phone.at(T + 30), T + 30).is_allow());
    // Unbinding restores the default.
    sshield_core::provision::bind_keys(&s.store, &user, None, vec![]).unwrap();
    assert!(check_after(&e, Some("password\n"), &phone.at(T + 60), T + 60).is_allow());
}

#[test]
fn exempt_methods_need_sshds_account_of_the_first_factor() {
    let s = TestStore::new();
    s.enroll("alice");
    let e = engine(&s, "[policy]\nexempt_methods = [\"publickey\"]\n");
    let ask = |first: Option<&str>| {
        e.requirement(
            &Caller::new(Account::resolve("alice"), "sshd")
                .from_source(ip(OUTSIDE))
                .with_ssh_auth_info(first),
            UnixTime(T),
        )
    };
    assert_eq!(ask(Some(KEY_LINE)), Requirement::Exempt(Exemption::Method));
    assert_eq!(ask(Some("password\n")), Requirement::Prompt);
    assert_eq!(ask(None), Requirement::Prompt);
}
