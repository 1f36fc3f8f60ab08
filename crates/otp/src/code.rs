//! Computing and checking codes: HOTP (RFC 4226 §5) and TOTP (RFC 6238 §4).

use std::fmt;

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use subtle::{Choice, ConstantTimeEq};
use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::params::{Algorithm, Digits, HotpParams, TotpParams};
use crate::secret::Secret;

/// The longest code: 8 digits.
const MAX_DIGITS: usize = 8;

/// A one-time code: `digits` ASCII digits with leading zeros kept. Wiped on drop; `Debug`
/// hides it, because a valid code is a secret until it has been used.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Code {
    text: [u8; MAX_DIGITS],
    len: u8,
}

impl Code {
    fn new(value: u32, digits: Digits) -> Self {
        let len = digits.get() as usize;
        let mut text = [b'0'; MAX_DIGITS];
        let mut rest = value;
        for slot in text[..len].iter_mut().rev() {
            *slot = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        Self {
            text,
            len: len as u8,
        }
    }

    /// The code as text, e.g. `"004821"`.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits are ever written into `text`.
        std::str::from_utf8(&self.text[..usize::from(self.len)]).unwrap_or_default()
    }

    /// Compares with what a user typed, in constant time for a given length. The candidate
    /// must have exactly the token's digit count: pam_oath compares only a prefix, so a
    /// 6-digit guess passes for an 8-digit token (see docs/prior-art.md).
    pub fn matches(&self, candidate: &str) -> bool {
        let ours = &self.text[..usize::from(self.len)];
        let theirs = candidate.as_bytes();
        // Length is public (it is the token's digit count), so this early return leaks nothing.
        if theirs.len() != ours.len() {
            return false;
        }
        ours.ct_eq(theirs).into()
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code([{} digits redacted])", self.len)
    }
}

/// RFC 4226 §5.3: HMAC the big-endian counter, then dynamic truncation.
pub fn hotp(secret: &Secret, params: &HotpParams, counter: u64) -> Code {
    KeyedMac::new(secret, params.algorithm).code(counter, params.digits)
}

/// An HMAC keyed once with a token's secret and cloned for each counter, so a window of
/// steps computes the key schedule once, not once per step (for SHA-512 that is most of the
/// cost of a step).
#[derive(Clone)]
enum KeyedMac {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl KeyedMac {
    fn new(secret: &Secret, algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(keyed(secret)),
            Algorithm::Sha256 => Self::Sha256(keyed(secret)),
            Algorithm::Sha512 => Self::Sha512(keyed(secret)),
        }
    }

    fn code(&self, counter: u64, digits: Digits) -> Code {
        let value = match self {
            Self::Sha1(m) => truncated(m, counter),
            Self::Sha256(m) => truncated(m, counter),
            Self::Sha512(m) => truncated(m, counter),
        };
        Code::new(value % digits.modulus(), digits)
    }
}

fn keyed<M: Mac + KeyInit>(secret: &Secret) -> M {
    // HMAC takes keys of any length (RFC 2104 §2), so `new_from_slice` cannot fail here;
    // an empty key would still be a correct HMAC, never a panic.
    <M as KeyInit>::new_from_slice(secret.expose())
        .unwrap_or_else(|_| <M as KeyInit>::new(&Default::default()))
}

fn truncated<M: Mac + Clone>(keyed: &M, counter: u64) -> u32 {
    let mut mac = keyed.clone();
    mac.update(&counter.to_be_bytes());
    truncate(&mac.finalize().into_bytes())
}

/// RFC 4226 §5.4 dynamic truncation: 31 bits from the offset named by the last nibble.
fn truncate(hash: &[u8]) -> u32 {
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ])
}

/// The TOTP step containing `unix_time` (RFC 6238 §4.2, T0 = 0).
pub fn totp_step(unix_time: u64, params: &TotpParams) -> u64 {
    unix_time / params.period.seconds()
}

/// The TOTP code for `unix_time`.
pub fn totp(secret: &Secret, params: &TotpParams, unix_time: u64) -> Code {
    hotp(secret, &params.hotp(), totp_step(unix_time, params))
}

/// How many steps (or counters) around the expected one are also accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Steps before the expected one (a slow clock, or a code typed late).
    pub behind: u64,
    /// Steps after the expected one (a fast clock).
    pub ahead: u64,
}

impl Window {
    /// `n` steps either side: ±1 forgives one step of clock skew or typing delay.
    pub fn symmetric(n: u64) -> Self {
        Self {
            behind: n,
            ahead: n,
        }
    }
}

/// Which TOTP step a code matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TotpMatch {
    /// The matched step; store it, and refuse it and all earlier steps next time.
    pub step: u64,
    /// Matched step minus the current step: the client clock's drift, in steps.
    pub offset: i64,
}

/// Checks a typed TOTP code against the steps around `unix_time`.
///
/// The window is centred on the current step shifted by `drift` (the client's learned clock
/// offset, in steps). Steps at or before `last_used` are never accepted: this is the replay
/// rule (RFC 6238 §5.2). When a code matches several steps (a 1-in-10^digits chance), the one
/// nearest the centre wins. Every step in the window is computed and compared, so the time
/// taken does not depend on which one matched.
pub fn verify_totp(
    secret: &Secret,
    params: &TotpParams,
    candidate: &str,
    unix_time: u64,
    window: Window,
    drift: i64,
    last_used: Option<u64>,
) -> Option<TotpMatch> {
    if !well_formed(candidate, params.digits) {
        return None;
    }
    let now_step = totp_step(unix_time, params);
    let centre = now_step.saturating_add_signed(drift);
    let first = centre.saturating_sub(window.behind);
    let last = centre.saturating_add(window.ahead);
    let mac = KeyedMac::new(secret, params.algorithm);
    let mut best: Option<u64> = None;
    for step in first..=last {
        let hit = Choice::from(u8::from(mac.code(step, params.digits).matches(candidate)));
        let fresh = last_used.is_none_or(|used| step > used);
        if bool::from(hit) && fresh {
            let nearer = best.is_none_or(|b| step.abs_diff(centre) < b.abs_diff(centre));
            if nearer {
                best = Some(step);
            }
        }
    }
    best.map(|step| TotpMatch {
        step,
        offset: signed_difference(step, now_step),
    })
}

/// Checks a typed HOTP code against counters `next..=next + lookahead`, returning the matched
/// counter. The caller stores `matched + 1` as the next counter, so no counter is accepted
/// twice (RFC 4226 §7.2 resynchronisation with a look-ahead window).
pub fn verify_hotp(
    secret: &Secret,
    params: &HotpParams,
    candidate: &str,
    next: u64,
    lookahead: u64,
) -> Option<u64> {
    if !well_formed(candidate, params.digits) {
        return None;
    }
    let mac = KeyedMac::new(secret, params.algorithm);
    let mut found = None;
    for counter in next..=next.saturating_add(lookahead) {
        if mac.code(counter, params.digits).matches(candidate) && found.is_none() {
            found = Some(counter);
        }
    }
    found
}

fn well_formed(candidate: &str, digits: Digits) -> bool {
    candidate.len() == digits.get() as usize && candidate.bytes().all(|b| b.is_ascii_digit())
}

fn signed_difference(a: u64, b: u64) -> i64 {
    if a >= b {
        i64::try_from(a - b).unwrap_or(i64::MAX)
    } else {
        i64::try_from(b - a).map(|d| -d).unwrap_or(i64::MIN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Period;

    /// RFC 4226 Appendix D: secret "12345678901234567890", counters 0-9.
    #[test]
    fn rfc4226_appendix_d() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let expected = [
            "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583",
            "399871", "520489",
        ];
        for (counter, want) in expected.iter().enumerate() {
            let code = hotp(&secret, &HotpParams::default(), counter as u64);
            assert_eq!(code.as_str(), *want, "counter {counter}");
        }
    }

    /// RFC 4226 Appendix D also lists the truncated 31-bit values; check the truncation.
    #[test]
    fn rfc4226_truncated_values() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let expected: [u32; 10] = [
            1284755224, 1094287082, 137359152, 1726969429, 1640338314, 868254676, 1918287922,
            82162583, 673399871, 645520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            let value = truncated(&keyed::<Hmac<sha1::Sha1>>(&secret), counter as u64);
            assert_eq!(value, *want);
        }
    }

    /// RFC 6238 Appendix B: 8 digits, 30 s, per-algorithm seeds of 20, 32 and 64 bytes.
    #[test]
    fn rfc6238_appendix_b() {
        let seed20 = b"12345678901234567890".to_vec();
        let seed32 = b"12345678901234567890123456789012".to_vec();
        let seed64 = b"1234567890123456789012345678901234567890123456789012345678901234".to_vec();
        let table: &[(u64, &str, &str, &str)] = &[
            (59, "94287082", "46119246", "90693936"),
            (1111111109, "07081804", "68084774", "25091201"),
            (1111111111, "14050471", "67062674", "99943326"),
            (1234567890, "89005924", "91819424", "93441116"),
            (2000000000, "69279037", "90698825", "38618901"),
            (20000000000, "65353130", "77737706", "47863826"),
        ];
        for &(time, sha1, sha256, sha512) in table {
            for (algorithm, seed, want) in [
                (Algorithm::Sha1, &seed20, sha1),
                (Algorithm::Sha256, &seed32, sha256),
                (Algorithm::Sha512, &seed64, sha512),
            ] {
                let secret = Secret::from_bytes(seed.clone()).unwrap();
                let params = TotpParams {
                    algorithm,
                    digits: Digits::EIGHT,
                    period: Period::THIRTY,
                };
                assert_eq!(
                    totp(&secret, &params, time).as_str(),
                    want,
                    "{algorithm} at {time}"
                );
            }
        }
    }

    fn sample() -> (Secret, TotpParams) {
        (
            Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            TotpParams::default(),
        )
    }

    #[test]
    fn window_accepts_neighbours_and_reports_offset() {
        let (secret, params) = sample();
        let now: u64 = 1_700_000_000;
        for offset in [-1i64, 0, 1] {
            let t = now.saturating_add_signed(offset * 30);
            let code = totp(&secret, &params, t);
            let hit = verify_totp(
                &secret,
                &params,
                code.as_str(),
                now,
                Window::symmetric(1),
                0,
                None,
            )
            .unwrap();
            assert_eq!(hit.offset, offset);
            assert_eq!(hit.step, totp_step(t, &params));
        }
        let far = totp(&secret, &params, now + 90);
        assert!(verify_totp(
            &secret,
            &params,
            far.as_str(),
            now,
            Window::symmetric(1),
            0,
            None
        )
        .is_none());
        // A learned drift of +3 steps moves the window with it.
        let hit = verify_totp(
            &secret,
            &params,
            far.as_str(),
            now,
            Window::symmetric(1),
            3,
            None,
        )
        .unwrap();
        assert_eq!(hit.offset, 3);
    }

    #[test]
    fn replay_rule_refuses_used_and_earlier_steps() {
        let (secret, params) = sample();
        let now: u64 = 1_700_000_000;
        let step = totp_step(now, &params);
        let code = totp(&secret, &params, now);
        assert!(verify_totp(
            &secret,
            &params,
            code.as_str(),
            now,
            Window::symmetric(1),
            0,
            Some(step)
        )
        .is_none());
        assert!(verify_totp(
            &secret,
            &params,
            code.as_str(),
            now,
            Window::symmetric(1),
            0,
            Some(step - 1)
        )
        .is_some());
        let earlier = totp(&secret, &params, now - 30);
        assert!(verify_totp(
            &secret,
            &params,
            earlier.as_str(),
            now,
            Window::symmetric(1),
            0,
            Some(step)
        )
        .is_none());
    }

    #[test]
    fn exact_digit_count_required() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let params = TotpParams {
            digits: Digits::EIGHT,
            ..TotpParams::default()
        };
        let code = totp(&secret, &params, 59);
        assert_eq!(code.as_str(), "94287082");
        let six = &code.as_str()[2..];
        assert!(verify_totp(&secret, &params, six, 59, Window::symmetric(1), 0, None).is_none());
        assert!(verify_totp(
            &secret,
            &params,
            "94287082 ",
            59,
            Window::symmetric(1),
            0,
            None
        )
        .is_none());
        assert!(verify_totp(
            &secret,
            &params,
            "94287082",
            59,
            Window::symmetric(1),
            0,
            None
        )
        .is_some());
    }

    #[test]
    fn hotp_lookahead() {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let p = HotpParams::default();
        assert_eq!(verify_hotp(&secret, &p, "969429", 0, 5), Some(3));
        assert_eq!(
            verify_hotp(&secret, &p, "969429", 4, 5),
            None,
            "used counters stay used"
        );
        assert_eq!(
            verify_hotp(&secret, &p, "520489", 0, 5),
            None,
            "beyond the look-ahead"
        );
        assert_eq!(verify_hotp(&secret, &p, "abcdef", 0, 5), None);
    }

    #[test]
    fn time_zero_and_the_far_future_do_not_overflow() {
        let (secret, params) = sample();
        let code = totp(&secret, &params, 0);
        assert!(verify_totp(
            &secret,
            &params,
            code.as_str(),
            0,
            Window::symmetric(10),
            -5,
            None
        )
        .is_some());
        let code = totp(&secret, &params, u64::MAX);
        assert!(verify_totp(
            &secret,
            &params,
            code.as_str(),
            u64::MAX,
            Window::symmetric(10),
            5,
            None
        )
        .is_some());
    }
}
