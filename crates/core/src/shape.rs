//! Finding the code in what was typed: split off the end of `password123456` (`forward_pass`),
//! or told apart from a password pre-supplied in `PAM_AUTHTOK` (`try_first_pass`) or
//! `SSHIELD_CODE` (one rule for both).
//!
//! Only the shape is looked at here; whether a code is right is the engine's question.

use crate::backup;

/// Codes are this many digits or fewer (RFC 4226 §5.3 allows 6 to 8; so do authenticator apps).
const DIGITS: std::ops::RangeInclusive<usize> = 6..=8;

/// One way to read a combined entry: the password, then a code of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Split<'a> {
    /// Everything before the code, exactly as typed (it goes to `pam_unix`).
    pub password: &'a str,
    /// The trailing digits.
    pub code: &'a str,
}

/// The ways to read `typed` as a password followed by a code of one of `lengths` digits, in
/// the order of `lengths` (the user's tokens, most common first). Empty if it does not end in
/// enough digits. A line ending that a pasted entry may carry is not part of either.
pub(crate) fn splits<'a>(typed: &'a str, lengths: &[usize]) -> Vec<Split<'a>> {
    let typed = typed.trim_end_matches(['\r', '\n']);
    let trailing_digits = typed.bytes().rev().take_while(u8::is_ascii_digit).count();
    let mut found: Vec<Split<'a>> = Vec::new();
    for &length in lengths {
        if length == 0 || length > trailing_digits || found.iter().any(|s| s.code.len() == length) {
            continue;
        }
        // The last `length` bytes are ASCII digits, so this is a character boundary.
        let (password, code) = typed.split_at(typed.len() - length);
        found.push(Split { password, code });
    }
    found
}

/// Whether `text` has the shape of something the prompt accepts: 6 to 8 digits, or a backup
/// code (`k7mq2-xv9hd`, any case, with or without the dash). A password almost never has
/// either shape, so `try_first_pass` can skip asking the engine about it, which would count a
/// failure against the user on every login.
pub(crate) fn looks_like_code(text: &str) -> bool {
    let text = text.trim();
    if DIGITS.contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let normal = backup::normalize(text);
    normal.len() == backup::CODE_LENGTH && normal.bytes().all(|b| backup::ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_pairs<'a>(typed: &'a str, lengths: &[usize]) -> Vec<(&'a str, &'a str)> {
        splits(typed, lengths)
            .into_iter()
            .map(|s| (s.password, s.code))
            .collect()
    }

    #[test]
    fn the_code_is_split_off_the_end() {
        assert_eq!(split_pairs("hunter2123456", &[6]), [("hunter2", "123456")]);
        assert_eq!(
            split_pairs("pass word 123456\n", &[6]),
            [("pass word ", "123456")]
        );
        assert_eq!(split_pairs("héllo12345678", &[8]), [("héllo", "12345678")]);
        // Only the code: the password is empty, and pam_unix decides what that means.
        assert_eq!(split_pairs("123456", &[6]), [("", "123456")]);
    }

    #[test]
    fn one_split_per_token_length_in_the_order_given() {
        assert_eq!(
            split_pairs("pw99123456", &[6, 8, 6]),
            [("pw99", "123456"), ("pw", "99123456")]
        );
        assert_eq!(split_pairs("pw123456", &[8, 6]), [("pw", "123456")]);
    }

    #[test]
    fn no_split_without_enough_trailing_digits() {
        assert!(splits("hunter2", &[6]).is_empty());
        assert!(splits("password", &[6, 7, 8]).is_empty());
        assert!(splits("12345x", &[6]).is_empty());
        assert!(splits("", &[6]).is_empty());
        assert!(splits("123456", &[0]).is_empty());
    }

    #[test]
    fn codes_and_passwords_look_different() {
        for code in [
            "123456",
            "1234567",
            "12345678",
            " 123456\n",
            "k7mq2-xv9hd",
            "K7MQ2XV9HD",
        ] {
            assert!(looks_like_code(code), "{code:?}");
        }
        for other in [
            "",
            "12345",
            "123456789",
            "hunter2",
            "correct horse",
            "k7mq2-xv9h0",
            "abcde-fghij",
        ] {
            assert!(!looks_like_code(other), "{other:?}");
        }
    }
}
