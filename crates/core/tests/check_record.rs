//! `check_record`: the engine's rules on a record held elsewhere (the fleet server's
//! database). The contract sshield-server relies on: active authenticators only, key-bound
//! ones only after a login with one of their keys, the replay rule, and backup codes.
#![allow(clippy::unwrap_used, reason = "test code: a panic is a failure")]

use sshield_core::backup::BackupCodes;
use sshield_core::{
    check_record, Authenticator, Decision, DenyReason, FirstFactor, Method, Policy, Response,
    TokenKind, UnixTime, UserRecord,
};
use sshield_otp::{totp, Algorithm, Digits, Period, Secret, TotpParams};
use zeroize::Zeroizing;

const NOW: u64 = 1_700_000_000;
// RFC 6238's SHA-1 test secret.
const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

fn record(active: bool, ssh_keys: Vec<String>) -> UserRecord {
    let mut r = UserRecord::new("alice", NOW);
    r.authenticators.push(Authenticator {
        name: "phone".to_owned(),
        kind: TokenKind::Totp,
        secret: Secret::from_base32(SECRET).unwrap(),
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        period: Some(Period::THIRTY),
        counter: None,
        ssh_keys,
        active,
        created: NOW,
    });
    r
}

fn code_at(t: u64) -> Response {
    let params = TotpParams {
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        period: Period::THIRTY,
    };
    Response::new(totp(&Secret::from_base32(SECRET).unwrap(), &params, t).as_str())
}

fn check(r: &mut UserRecord, code: &Response, first: Option<&FirstFactor>) -> Decision {
    check_record(r, code, UnixTime(NOW), &Policy::default(), first)
}

#[test]
fn a_code_is_accepted_once_and_recorded_in_the_record() {
    let mut r = record(true, Vec::new());
    let code = code_at(NOW);
    assert!(matches!(
        check(&mut r, &code, None),
        Decision::Allow(Method::Totp { .. })
    ));
    assert_eq!(r.usage.last_success, Some(NOW));
    assert!(matches!(
        check(&mut r, &code, None),
        Decision::Deny(DenyReason::Replayed)
    ));
    assert!(matches!(
        check(&mut r, &code_at(NOW + 600), None),
        Decision::Deny(DenyReason::WrongCode)
    ));
}

#[test]
fn a_pending_authenticator_is_not_eligible() {
    let mut r = record(false, Vec::new());
    assert!(matches!(
        check(&mut r, &code_at(NOW), None),
        Decision::Deny(DenyReason::Pending)
    ));
}

#[test]
fn a_key_bound_authenticator_needs_a_login_with_its_key() {
    let blob = [7u8; 51];
    let fingerprint = sshield_core::first_factor::fingerprint(&blob);
    let mut r = record(true, vec![fingerprint]);
    assert!(matches!(
        check(&mut r, &code_at(NOW), None),
        Decision::Deny(DenyReason::FirstFactor)
    ));
    let key = data_encoding::BASE64.encode(&blob);
    let first = FirstFactor::parse(&format!("publickey ssh-ed25519 {key}\n"));
    assert!(check(&mut r, &code_at(NOW), Some(&first)).is_allow());
}

#[test]
fn a_backup_code_works_once() {
    let mut r = record(true, Vec::new());
    let codes = vec![Zeroizing::new("12345678".to_owned())];
    r.backup = BackupCodes::from_plain(&codes, NOW).unwrap();
    let typed = Response::new("12345678");
    assert!(matches!(
        check(&mut r, &typed, None),
        Decision::Allow(Method::Backup { remaining: 0 })
    ));
    assert!(matches!(
        check(&mut r, &typed, None),
        Decision::Deny(DenyReason::Replayed)
    ));
}
