//! The auth engine as a user meets it: enroll, then log in with what the authenticator app (or
//! the backup-code sheet) shows, against real record files.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::{hotp, outcome, totp, typo, TestStore, STEP, T};
use sshield_core::provision::{self, ProvisionError};
use sshield_core::store::Change;
use sshield_core::{
    Authenticator, Decision, DenyReason, Method, Response, StoreError, UnixTime, UserState,
};
use sshield_otp::{Algorithm, Digits};

#[test]
fn a_code_is_accepted_once_and_the_record_shows_it() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let code = phone.at(T);

    let d = s.decide("alice", &code, T);
    match &d {
        Decision::Allow(Method::Totp {
            authenticator,
            offset,
        }) => {
            assert_eq!(authenticator, "default");
            assert_eq!(*offset, 0);
        }
        other => panic!("expected a TOTP allow, got {other:?}"),
    }
    let record = s.record("alice");
    assert_eq!(record.token_usage("default").last_step, Some(STEP));
    assert_eq!(record.usage.last_success, Some(T));
    assert_eq!(record.usage.last_method.as_deref(), Some("totp"));

    // The same code again: in the same step, and a step later while it is still in the window.
    assert_eq!(outcome(&s.decide("alice", &code, T)), "replayed");
    assert_eq!(outcome(&s.decide("alice", &code, T + 29)), "replayed");
    assert_eq!(outcome(&s.decide("alice", &code, T + 30)), "replayed");
    // A pasted code with a newline is the same code.
    assert_eq!(
        outcome(&s.decide("alice", &format!("{code}\n"), T)),
        "replayed"
    );
    // The next step's code is fine.
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 30), T + 30)),
        "allow"
    );
}

#[test]
fn an_earlier_step_is_refused_once_a_later_one_was_used() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    // The user's phone runs a step fast: the code for STEP+1 is accepted at T (window ±1)...
    assert_eq!(outcome(&s.decide("alice", &phone.at(T + 30), T)), "allow");
    // ...so the code for STEP, still inside the window, may never be used any more.
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "replayed");
    // A step later the old code is still inside the window around real time (and the one around
    // the phone's learned drift has moved past it): refused as used.
    let d = s.decide("alice", &phone.at(T), T + 30);
    assert!(!d.is_allow(), "{d:?}");
    assert_eq!(
        s.record("alice").token_usage("default").last_step,
        Some(STEP + 1)
    );
}

/// A code typed as its step ended arrives a step late and teaches a drift of -1; the window
/// around that drift must not cost the user the step ahead, which a phone running a little fast
/// shows (the window around real time is always searched too).
#[test]
fn a_code_typed_late_does_not_cost_the_step_ahead() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T + 30)), "allow");
    assert_eq!(s.record("alice").token_usage("default").drift, -1);
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 60), T + 30)),
        "allow"
    );
    assert_eq!(s.record("alice").token_usage("default").drift, 1);
}

/// A phone whose clock ran ahead, step by step, and is then set right: the drift it taught
/// (+3 steps) does not lock out its correct codes, and the drift is learned again.
#[test]
fn a_phone_set_right_after_a_learned_drift_is_accepted_and_the_drift_unlearned() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let drift = || s.record("alice").token_usage("default").drift;
    // Its clock gains a step at a time, and the window follows it.
    for (ahead, now) in [(1, T), (2, T + 30), (3, T + 60)] {
        assert_eq!(
            outcome(&s.decide("alice", &phone.at(now + ahead * 30), now)),
            "allow"
        );
        assert_eq!(drift(), i64::try_from(ahead).unwrap());
    }
    // Its clock is set right: the code for real time is accepted, outside the window around
    // the drift (three steps ahead)...
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 210), T + 210)),
        "allow"
    );
    // ...and the drift is back to none.
    assert_eq!(drift(), 0);
    // A code far from both windows is still wrong.
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 600), T + 240)),
        "wrong-code"
    );
}

#[test]
fn wrong_and_out_of_window_codes_are_refused_and_change_nothing() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let before = s.bytes("alice");
    let code = phone.at(T);
    for bad in [
        typo(&code),
        "000000".to_owned(),
        "abcdef".to_owned(),
        String::new(),
        phone.at(T - 90), // three steps old: outside the ±1 window
        phone.at(T + 90),
    ] {
        assert_eq!(
            outcome(&s.decide("alice", &bad, T)),
            "wrong-code",
            "{bad:?}"
        );
    }
    assert_eq!(
        s.bytes("alice"),
        before,
        "a refusal must not write the record"
    );
    // None of that used up the real code.
    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");
}

#[test]
fn an_eight_digit_token_refuses_six_and_seven_digit_codes() {
    let s = TestStore::new();
    let token = s.enroll_with(provision::Enrollment {
        digits: Digits::EIGHT,
        ..totp("alice", "default")
    });
    let code = token.at(T);
    assert_eq!(code.len(), 8);
    let before = s.bytes("alice");
    // The first six digits (pam_oath accepts this prefix), the last six (what a 6-digit app
    // with the same secret shows), and seven digits.
    for short in [&code[..6], &code[2..], &code[..7], &code[1..]] {
        assert_eq!(
            outcome(&s.decide("alice", short, T)),
            "wrong-code",
            "{short:?} for an 8-digit token"
        );
    }
    assert_eq!(s.bytes("alice"), before);
    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");
}

#[test]
fn a_pending_user_is_refused_until_confirmed_and_the_confirming_code_is_used_up() {
    let s = TestStore::new();
    let phone = s.enroll_with(provision::Enrollment {
        activate: false,
        ..totp("alice", "phone")
    });
    assert_eq!(s.record("alice").state(), UserState::Pending);
    let code = phone.at(T);

    // Logging in before confirming is refused, and does not use the code.
    let d = s.decide("alice", &code, T);
    assert!(matches!(d, Decision::Deny(DenyReason::Pending)), "{d:?}");
    // Neither do backup codes: a pending user has no second factor yet.
    let d = s.decide("alice", &phone.backup_codes[0], T);
    assert!(matches!(d, Decision::Deny(DenyReason::Pending)), "{d:?}");

    let policy = sshield_core::config::Policy::default();
    let user = common::name("alice");
    // A wrong code or a backup code does not confirm.
    for bad in [typo(&code), phone.backup_codes[0].clone()] {
        let e = provision::confirm(
            &s.store,
            &user,
            None,
            &Response::new(&bad),
            UnixTime(T),
            &policy,
        )
        .unwrap_err();
        assert!(
            matches!(e, ProvisionError::Refused(DenyReason::WrongCode)),
            "{e:?}"
        );
    }
    assert_eq!(s.record("alice").state(), UserState::Pending);

    let confirmed = provision::confirm(
        &s.store,
        &user,
        None,
        &Response::new(&code),
        UnixTime(T),
        &policy,
    )
    .unwrap();
    assert_eq!(confirmed, "phone");
    assert_eq!(s.record("alice").state(), UserState::Active);
    // The confirming code was the first use of the token: it cannot log in afterwards.
    assert_eq!(outcome(&s.decide("alice", &code, T)), "replayed");
    assert_eq!(outcome(&s.decide("alice", &code, T + 30)), "replayed");
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 30), T + 30)),
        "allow"
    );
    // Nothing is left to confirm.
    let e = provision::confirm(
        &s.store,
        &user,
        None,
        &Response::new(&phone.at(T + 60)),
        UnixTime(T + 60),
        &policy,
    )
    .unwrap_err();
    assert!(matches!(e, ProvisionError::NothingPending(_)), "{e:?}");
}

#[test]
fn a_disabled_user_is_refused_until_enabled_again() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let user = common::name("alice");
    assert!(provision::set_disabled(&s.store, &user, true).unwrap());
    assert_eq!(s.record("alice").state(), UserState::Disabled);
    let before = s.bytes("alice");

    let code = phone.at(T);
    let d = s.decide("alice", &code, T);
    assert!(matches!(d, Decision::Deny(DenyReason::Disabled)), "{d:?}");
    let d = s.decide("alice", &phone.backup_codes[0], T);
    assert!(matches!(d, Decision::Deny(DenyReason::Disabled)), "{d:?}");
    assert_eq!(s.bytes("alice"), before);

    // Disabling twice is a no-op; enabling brings back the same token, code unused.
    assert!(!provision::set_disabled(&s.store, &user, true).unwrap());
    assert!(provision::set_disabled(&s.store, &user, false).unwrap());
    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");
}

#[test]
fn an_unknown_user_is_not_enrolled() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let code = phone.at(T);
    for user in [
        "bob",
        "../alice",
        "alice/../alice",
        ".alice",
        "",
        "alice bob",
    ] {
        let d = s.decide(user, &code, T);
        assert!(
            matches!(d, Decision::Deny(DenyReason::NotEnrolled)),
            "{user:?}: {d:?}"
        );
    }
    assert!(!s.dir().join("bob.toml").exists());
    // Guessed names leave nothing behind, not even a lock file.
    let mut files: Vec<String> = std::fs::read_dir(s.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [".alice.lock", ".old-temps-removed", "alice.toml"]);
    // Alice's code was not touched by any of that.
    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");

    // A removed user is not enrolled any more.
    provision::remove(&s.store, &common::name("alice"), None).unwrap();
    assert!(!s.path("alice").exists());
    let d = s.decide("alice", &phone.at(T + 30), T + 30);
    assert!(
        matches!(d, Decision::Deny(DenyReason::NotEnrolled)),
        "{d:?}"
    );
}

#[test]
fn two_authenticators_are_both_accepted_each_with_its_own_replay_state() {
    let s = TestStore::new();
    let phone = s.enroll_with(totp("alice", "phone"));
    let yubikey = s.enroll_with(provision::Enrollment {
        digits: Digits::EIGHT,
        algorithm: Algorithm::Sha256,
        ..totp("alice", "yubikey-oath")
    });
    assert_eq!(phone.backup_codes.len(), 10);
    assert!(
        yubikey.backup_codes.is_empty(),
        "a second authenticator must not reissue backup codes"
    );

    for (token, name) in [(&phone, "phone"), (&yubikey, "yubikey-oath")] {
        let code = token.at(T);
        match s.decide("alice", &code, T) {
            Decision::Allow(Method::Totp { authenticator, .. }) => {
                assert_eq!(authenticator, name)
            }
            other => panic!("{name}: expected allow, got {other:?}"),
        }
        assert_eq!(outcome(&s.decide("alice", &code, T)), "replayed", "{name}");
    }
    let record = s.record("alice");
    assert_eq!(record.token_usage("phone").last_step, Some(STEP));
    assert_eq!(record.token_usage("yubikey-oath").last_step, Some(STEP));

    // Removing the phone leaves the YubiKey working.
    provision::remove(&s.store, &common::name("alice"), Some("phone")).unwrap();
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 30), T + 30)),
        "wrong-code"
    );
    assert_eq!(
        outcome(&s.decide("alice", &yubikey.at(T + 30), T + 30)),
        "allow"
    );
}

#[test]
fn hotp_accepts_a_look_ahead_and_never_a_counter_twice() {
    let s = TestStore::new();
    let token = s.enroll_with(hotp("alice", "token"));
    let t = T; // HOTP ignores the clock

    match s.decide("alice", &token.counter(0), t) {
        Decision::Allow(Method::Hotp { authenticator }) => assert_eq!(authenticator, "token"),
        other => panic!("expected an HOTP allow, got {other:?}"),
    }
    assert_eq!(
        outcome(&s.decide("alice", &token.counter(0), t)),
        "replayed"
    );
    // The button was pressed four times without logging in: counter 5 is within look-ahead 10.
    assert_eq!(outcome(&s.decide("alice", &token.counter(5), t)), "allow");
    assert_eq!(s.record("alice").token_usage("token").next_counter, Some(6));
    // Counters skipped over can never be used.
    for skipped in 1..=5 {
        assert_eq!(
            outcome(&s.decide("alice", &token.counter(skipped), t)),
            "replayed",
            "counter {skipped}"
        );
    }
    // 11 ahead of the next expected counter (6) is beyond the look-ahead.
    assert_eq!(
        outcome(&s.decide("alice", &token.counter(17), t)),
        "wrong-code"
    );
    assert_eq!(outcome(&s.decide("alice", &token.counter(16), t)), "allow");
    assert_eq!(
        outcome(&s.decide("alice", &token.counter(16), t)),
        "replayed"
    );
    assert_eq!(
        s.record("alice").token_usage("token").next_counter,
        Some(17)
    );
}

#[test]
fn hotp_starts_at_the_provisioned_counter() {
    let s = TestStore::new();
    let token = s.enroll_with(provision::Enrollment {
        counter: 100,
        ..hotp("alice", "token")
    });
    assert_eq!(
        outcome(&s.decide("alice", &token.counter(99), T)),
        "wrong-code"
    );
    assert_eq!(outcome(&s.decide("alice", &token.counter(100), T)), "allow");
}

#[test]
fn a_backup_code_works_exactly_once() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let codes = &phone.backup_codes;
    assert_eq!(codes.len(), 10);

    let d = s.decide("alice", &codes[0], T);
    assert!(
        matches!(d, Decision::Allow(Method::Backup { remaining: 9 })),
        "{d:?}"
    );
    assert_eq!(
        s.record("alice").usage.last_method.as_deref(),
        Some("backup")
    );
    assert_eq!(outcome(&s.decide("alice", &codes[0], T)), "replayed");
    // Typed from the printed sheet in capitals with a space: still the same (used) code.
    let shouted = codes[0].to_uppercase().replace('-', " ");
    assert_eq!(outcome(&s.decide("alice", &shouted, T)), "replayed");

    // Another code, typed sloppily, works once.
    let sloppy = format!(" {} ", codes[1].to_uppercase().replace('-', ""));
    let d = s.decide("alice", &sloppy, T);
    assert!(
        matches!(d, Decision::Allow(Method::Backup { remaining: 8 })),
        "{d:?}"
    );
    assert_eq!(outcome(&s.decide("alice", &codes[1], T)), "replayed");
    assert_eq!(s.record("alice").usage.backup_used.len(), 2);

    // Using backup codes did not use up the TOTP code.
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
}

#[test]
fn renewing_backup_codes_voids_the_old_set() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let old = &phone.backup_codes;
    assert_eq!(outcome(&s.decide("alice", &old[0], T)), "allow");

    let new = provision::renew_backup_codes(&s.store, &common::name("alice"), UnixTime(T)).unwrap();
    assert_eq!(new.len(), 10);
    assert!(s.record("alice").usage.backup_used.is_empty());
    // Old codes, used or not, are gone.
    for code in old {
        assert_eq!(outcome(&s.decide("alice", code, T)), "wrong-code", "{code}");
    }
    let d = s.decide("alice", &new[0], T);
    assert!(
        matches!(d, Decision::Allow(Method::Backup { remaining: 9 })),
        "{d:?}"
    );
    assert_eq!(outcome(&s.decide("alice", &new[0], T)), "replayed");
    // The authenticator was not touched.
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
}

/// Attack review, issue 9 item 6: a record that already holds two authenticators with one
/// secret (a phone re-enrolled under a new name before enrollment refused that, or a record
/// written by hand) accepts each code once, not once per authenticator.
#[test]
fn authenticators_sharing_a_secret_accept_each_code_once() {
    for kind in ["totp", "hotp"] {
        let s = TestStore::new();
        let phone = match kind {
            "totp" => s.enroll("alice"),
            _ => s.enroll_with(hotp("alice", "default")),
        };
        s.store
            .update(&common::name("alice"), |slot| {
                let record = slot.as_mut().unwrap();
                let copy = Authenticator {
                    name: "new-phone".to_owned(),
                    ..record.authenticators[0].clone()
                };
                record.authenticators.push(copy);
                Ok::<_, StoreError>((Change::Save, ()))
            })
            .unwrap();
        let code = match kind {
            "totp" => phone.at(T),
            _ => phone.counter(0),
        };
        assert_eq!(outcome(&s.decide("alice", &code, T)), "allow", "{kind}");
        assert_eq!(outcome(&s.decide("alice", &code, T)), "replayed", "{kind}");
        // Used through the second name first, the first one refuses it too.
        let next = match kind {
            "totp" => phone.at(T + 30),
            _ => phone.counter(1),
        };
        let record = s.record("alice");
        assert_eq!(record.authenticators.len(), 2);
        assert_eq!(
            outcome(&s.decide("alice", &next, T + 30)),
            "allow",
            "{kind}"
        );
        assert_eq!(
            outcome(&s.decide("alice", &next, T + 30)),
            "replayed",
            "{kind}"
        );
    }
}
