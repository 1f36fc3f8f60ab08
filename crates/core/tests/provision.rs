//! Provisioning keeps login state: re-applying an enrollment (as config management does on
//! every run) never rewinds replay protection, and a clash never overwrites a token.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use common::{fixed_secret, name, outcome, totp, TestStore, STEP, T};
use sshield_core::provision::{self, Enrollment, ProvisionError};
use sshield_core::{TokenKind, UnixTime};

#[test]
fn re_enrolling_the_same_secret_after_a_login_changes_nothing() {
    let s = TestStore::new();
    // First run: no secret given, so one is generated (the QR-code flow).
    let phone = s.enroll_with(Enrollment {
        secret: None,
        ..totp("alice", "phone")
    });
    assert_eq!(
        phone.auth.secret.len(),
        20,
        "a 160-bit secret from the CSPRNG"
    );
    let code = phone.at(T);
    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");
    let after_login = s.bytes("alice");

    // Config management re-applies the same secret.
    let again = provision::enroll(
        &s.store,
        Enrollment {
            secret: Some(phone.auth.secret.clone()),
            ..totp("alice", "phone")
        },
        UnixTime(T + 5),
    )
    .unwrap();
    assert!(again.unchanged);
    assert!(again.backup_codes.is_empty(), "no new backup codes");
    assert_eq!(
        s.bytes("alice"),
        after_login,
        "the record file is untouched"
    );
    assert_eq!(s.record("alice").token_usage("phone").last_step, Some(STEP));
    // The code used before the re-run is still refused.
    assert_eq!(outcome(&s.decide("alice", &code, T + 5)), "replayed");
}

#[test]
fn re_enrolling_a_pending_token_with_activation_activates_it_and_keeps_it() {
    let s = TestStore::new();
    let phone = s.enroll_with(Enrollment {
        activate: false,
        ..totp("alice", "phone")
    });
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "pending");
    let again = provision::enroll(&s.store, totp("alice", "phone"), UnixTime(T)).unwrap();
    assert!(!again.unchanged, "activating is a change");
    assert!(again.authenticator.active);
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    // And re-applying a *pending* enrollment never deactivates it again.
    let again = provision::enroll(
        &s.store,
        Enrollment {
            activate: false,
            ..totp("alice", "phone")
        },
        UnixTime(T),
    )
    .unwrap();
    assert!(again.unchanged);
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 30), T + 30)),
        "allow"
    );
}

#[test]
fn a_different_secret_under_the_same_name_is_refused_without_replace() {
    let s = TestStore::new();
    let phone = s.enroll_with(totp("alice", "phone"));
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    let before = s.bytes("alice");

    let e = provision::enroll(
        &s.store,
        Enrollment {
            secret: Some(fixed_secret("someone-else", "phone")),
            ..totp("alice", "phone")
        },
        UnixTime(T),
    )
    .unwrap_err();
    assert!(
        matches!(&e, ProvisionError::AuthenticatorExists { name, .. } if name == "phone"),
        "{e:?}"
    );
    let text = e.to_string();
    assert!(
        text.contains("--replace") && text.contains("--name"),
        "the message says how to proceed: {text}"
    );
    assert_eq!(s.bytes("alice"), before, "nothing changed");
    // A generated secret clashes the same way.
    let e = provision::enroll(
        &s.store,
        Enrollment {
            secret: None,
            ..totp("alice", "phone")
        },
        UnixTime(T),
    )
    .unwrap_err();
    assert!(
        matches!(e, ProvisionError::AuthenticatorExists { .. }),
        "{e:?}"
    );
    assert_eq!(s.bytes("alice"), before);
    // The old phone keeps working, with its replay state.
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "replayed");
    assert_eq!(
        outcome(&s.decide("alice", &phone.at(T + 30), T + 30)),
        "allow"
    );
}

#[test]
fn replace_swaps_the_secret_and_starts_a_new_history() {
    let s = TestStore::new();
    let old = s.enroll_with(totp("alice", "phone"));
    assert_eq!(outcome(&s.decide("alice", &old.at(T), T)), "allow");
    let backup_before = s.record("alice").backup;

    let new = s.enroll_with(Enrollment {
        secret: Some(fixed_secret("alice", "new-phone")),
        replace: true,
        ..totp("alice", "phone")
    });
    assert!(new.backup_codes.is_empty());
    assert_eq!(s.record("alice").backup, backup_before, "backup codes kept");
    assert_eq!(
        outcome(&s.decide("alice", &old.at(T + 30), T + 30)),
        "wrong-code",
        "the old phone no longer works"
    );
    assert_eq!(
        outcome(&s.decide("alice", &new.at(T + 30), T + 30)),
        "allow"
    );
    assert_eq!(
        outcome(&s.decide("alice", &new.at(T + 30), T + 30)),
        "replayed"
    );
}

#[test]
fn provisioning_an_unknown_user_says_how_to_enroll() {
    let s = TestStore::new();
    let bob = name("bob");
    for e in [
        provision::renew_backup_codes(&s.store, &bob, UnixTime(T)).map(|_| ()),
        provision::set_disabled(&s.store, &bob, true).map(|_| ()),
        provision::remove(&s.store, &bob, None),
    ] {
        let e = e.unwrap_err();
        assert!(matches!(e, ProvisionError::NotEnrolled(_)), "{e:?}");
        assert!(e.to_string().contains("sshield enroll bob"), "{e}");
    }
    assert!(!s.path("bob").exists());
}

/// Attack review, issue 9 item 6: a phone re-enrolled under a new name with its old secret
/// would make every code good twice (once per authenticator). Refused, naming the authenticator
/// that has the secret and the fix; nothing is written.
#[test]
fn a_secret_already_on_file_under_another_name_is_refused() {
    let s = TestStore::new();
    s.enroll_with(totp("alice", "phone"));
    let before = s.bytes("alice");
    for kind in [TokenKind::Totp, TokenKind::Hotp] {
        for replace in [false, true] {
            let e = provision::enroll(
                &s.store,
                Enrollment {
                    secret: Some(fixed_secret("alice", "phone")),
                    kind,
                    replace,
                    ..totp("alice", "new-phone")
                },
                UnixTime(T),
            )
            .unwrap_err();
            assert!(
                matches!(&e, ProvisionError::SecretOnFile { existing, .. } if existing == "phone"),
                "{e:?}"
            );
            let text = e.to_string();
            assert!(
                text.contains("\"phone\"") && text.contains("sshield remove alice --name phone"),
                "{text}"
            );
            assert_eq!(s.bytes("alice"), before, "nothing changed");
        }
    }
    // Another user may hold the same secret: their codes are checked against their own record.
    s.enroll_with(Enrollment {
        secret: Some(fixed_secret("alice", "phone")),
        ..totp("bob", "phone")
    });
}
