//! pam_oath's usersfile (`/etc/users.oath`), read the way liboath reads and rewrites it.
//!
//! One token per line, fields separated by spaces or tabs:
//!
//! ```text
//! TYPE  USER  PIN  SECRET_HEX  [COUNTER  [LAST_OTP  [LAST_TIME]]]
//! HOTP/T30  alice  -  8fa4acca0483c5694096ff9d1cc360
//! HOTP      bob    -  3132333435363738393031323334353637383930  7  162583  2026-11-23T11:52:39L
//! ```
//!
//! What the fields mean, from liboath's `usersfile.c` (oath-toolkit 2.6) and checked against
//! liboath 2.6.7 itself:
//!
//! - **TYPE**: `HOTP`, `HOTP/E` or `HOTP/E/<digits>` is counter-based; `HOTP/T30` and
//!   `HOTP/T60`, optionally `/<digits>`, are time-based with that period. Digits are 6 (the
//!   default), 7 or 8, and the hash is always SHA-1. liboath knows no other periods and
//!   silently skips such lines; this importer takes any period sshield supports and says so
//!   in a note. liboath 2.6.7 ignores the digits, though: it checks a code of the length typed
//!   (pam_oath's `digits=` argument aside), so the importer takes the length of `LAST_OTP` when
//!   there is one, and the type's otherwise, with a note either way when it cannot be sure.
//! - **PIN**: `-` means no PIN; `+` means liboath does not check one (another PAM module
//!   checks the password the user types before the code). Anything else is a PIN that liboath
//!   compares with that prefix. sshield asks for the code alone, so a PIN cannot be carried
//!   over and such a line stops the import.
//! - **COUNTER**, **LAST_OTP**, **LAST_TIME**: after a login liboath rewrites the line with
//!   all three (`LAST_TIME` is local time, `%Y-%m-%dT%H:%M:%SL`). For HOTP the counter is the
//!   one the accepted code was made with, *not* the next one: the next login searches from
//!   it again and refuses only the string `LAST_OTP`. So when `LAST_OTP` is the code of
//!   `COUNTER`, sshield's next counter is `COUNTER + 1`; otherwise (never used, or set by
//!   hand) it is `COUNTER`. The record keeps `COUNTER` as the provisioned counter and the next
//!   one in its login state. For TOTP the counter field is meaningless: liboath adds the
//!   *absolute* window position of each accepted code to it, so it is neither a time step nor
//!   a count of logins. What liboath refuses is any code whose step is at or before the
//!   step of `LAST_OTP` — exactly sshield's `last_step` rule — so the importer finds that
//!   step by computing the codes of the steps around `LAST_TIME`.
//!
//! Lines that are blank or start with `#` are skipped (liboath skips them too, as lines
//! without a known type). Several lines for one user are several tokens; they become
//! authenticators `oath`, `oath-2`, `oath-3`, ... in file order.

use std::collections::HashMap;
use std::path::Path;

use sshield_otp::{hotp, totp_step, Algorithm, Digits, Period, Secret, TotpParams};

use super::error::{shown_field, ImportError, LineProblem};
use super::plan::{ImportPlan, ImportedUser};
use crate::record::{Authenticator, TokenKind, TokenUsage};
use crate::time::UnixTime;
use crate::user_file::read_text;
use crate::username::UserName;

/// Where pam_oath's usersfile usually lives.
pub const DEFAULT_PATH: &str = "/etc/users.oath";

/// The name of a user's first imported token; further ones get `-2`, `-3`, ...
pub const AUTHENTICATOR_NAME: &str = "oath";

/// No usersfile comes near this (a line is about 100 bytes).
const MAX_FILE_BYTES: u64 = 16 << 20;

/// How far a TOTP code may have been from the clock when liboath accepted it, in steps.
/// pam_oath's `window=` is in the PAM configuration, not in this file; seed 002 uses 30.
const TOTP_SEARCH_SLACK_STEPS: u64 = 60;

/// `LAST_TIME` is local time without a zone. UTC offsets run from -12:00 to +14:00, so the
/// real instant lies within 14 hours of the time read as UTC.
const MAX_UTC_OFFSET_SECONDS: u64 = 14 * 3600;

/// The token types liboath 2.6 understands; other lines it skips without a word.
const LIBOATH_TYPES: &[&str] = &[
    "HOTP",
    "HOTP/E",
    "HOTP/E/6",
    "HOTP/E/7",
    "HOTP/E/8",
    "HOTP/T30",
    "HOTP/T30/6",
    "HOTP/T30/7",
    "HOTP/T30/8",
    "HOTP/T60",
    "HOTP/T60/6",
    "HOTP/T60/7",
    "HOTP/T60/8",
];

/// Reads and parses the usersfile at `path` (see [`parse`]).
pub fn read(path: &Path, now: UnixTime) -> Result<ImportPlan, ImportError> {
    let text = read_text(path, MAX_FILE_BYTES)?;
    parse(&text, path, now)
}

/// Parses usersfile text; `path` is used in messages and notes, `now` to date the
/// authenticators and to bound the search for the last used TOTP step.
///
/// Stops at the first line that cannot be imported, naming `path:line`.
pub fn parse(text: &str, path: &Path, now: UnixTime) -> Result<ImportPlan, ImportError> {
    let mut plan = ImportPlan::default();
    let mut index: HashMap<UserName, usize> = HashMap::new();
    let mut never_used = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let token = parse_line(line, now).map_err(|problem| ImportError::Line {
            path: path.to_owned(),
            line: line_no,
            problem,
        })?;
        let at = format!("{}:{line_no}", path.display());
        if token.pin_elsewhere {
            plan.notes.push(format!(
                "{at}: the PIN field of {} is \"+\": pam_oath left the password to another PAM \
                 module; sshield asks for the code alone, so keep that module checking the \
                 password",
                token.user
            ));
        }
        let digits = token.authenticator.digits;
        if token.used && digits.get() != token.type_digits {
            plan.notes.push(format!(
                "{at}: token type {} says {} digits, but the last code {} used was {digits} \
                 digits long, and pam_oath checks a code of the length typed whatever the type \
                 says; imported with {digits} digits, the length the app shows",
                shown_field(token.type_field),
                token.type_digits,
                token.user
            ));
        }
        if !token.used {
            never_used.push(line_no.to_string());
        }
        if !token.liboath_type {
            plan.notes.push(format!(
                "{at}: pam_oath does not understand token type {} and skipped this line, so \
                 this token never worked with it; imported as {} with {} digits{}",
                shown_field(token.type_field),
                token.authenticator.kind.as_str().to_uppercase(),
                token.authenticator.digits,
                token
                    .authenticator
                    .period
                    .map(|p| format!(" and a {}-second period", p.seconds()))
                    .unwrap_or_default(),
            ));
        }
        let slot = *index.entry(token.user.clone()).or_insert_with(|| {
            plan.users.push(ImportedUser {
                user: token.user.clone(),
                authenticators: Vec::new(),
                usage: Default::default(),
                backup_codes: Vec::new(),
                source: path.to_owned(),
                source_line: line_no,
            });
            plan.users.len() - 1
        });
        let user = &mut plan.users[slot];
        let mut authenticator = token.authenticator;
        authenticator.name = match user.authenticators.len() {
            0 => AUTHENTICATOR_NAME.to_owned(),
            n => format!("{AUTHENTICATOR_NAME}-{}", n + 1),
        };
        if token.usage != TokenUsage::default() {
            user.usage.insert(authenticator.name.clone(), token.usage);
        }
        user.authenticators.push(authenticator);
    }
    if !never_used.is_empty() {
        plan.notes.push(format!(
            "{}: {} {} {}, so the file does not show how many digits {}: pam_oath accepts 6, \
             7 or 8 whatever the type says; imported with the digits the type names (6 if \
             none). If an app shows another length, put it in the type (HOTP/T30/8, \
             HOTP/E/6, ...) and import again with --replace",
            path.display(),
            if never_used.len() == 1 {
                "line"
            } else {
                "lines"
            },
            never_used.join(", "),
            if never_used.len() == 1 {
                "was never used"
            } else {
                "were never used"
            },
            if never_used.len() == 1 {
                "its app shows"
            } else {
                "their apps show"
            },
        ));
    }
    if !plan.users.is_empty() {
        plan.notes.push(format!(
            "{}: pam_oath's window= (set on its line in /etc/pam.d, not in this file) is not \
             carried over: sshield accepts TOTP codes within [policy] window steps of the clock \
             (default ±1) and HOTP codes up to [policy] hotp_lookahead counters ahead \
             (default 10)",
            path.display()
        ));
    }
    Ok(plan)
}

/// One parsed line, before it is given a name within its user.
struct Token<'a> {
    type_field: &'a str,
    /// The digit count the type names (the authenticator's may differ: see `parse_line`).
    type_digits: u32,
    /// The line has a last OTP: pam_oath accepted a code of this token.
    used: bool,
    liboath_type: bool,
    user: UserName,
    pin_elsewhere: bool,
    authenticator: Authenticator,
    usage: TokenUsage,
}

fn parse_line(line: &str, now: UnixTime) -> Result<Token<'_>, LineProblem> {
    let fields: Vec<&str> = line.split_ascii_whitespace().collect();
    if !(4..=7).contains(&fields.len()) {
        return Err(LineProblem::FieldCount {
            found: fields.len(),
        });
    }
    let token_type = parse_type(fields[0])?;
    let type_digits = token_type.digits.get();
    let user = UserName::new(fields[1]).map_err(|error| LineProblem::UserName {
        shown: shown_field(fields[1]),
        error,
    })?;
    let pin_elsewhere = match fields[2] {
        "-" => false,
        "+" => true,
        _ => {
            return Err(LineProblem::Pin {
                user: user.to_string(),
            })
        }
    };
    let secret = Secret::from_hex(fields[3]).map_err(LineProblem::Secret)?;
    let counter = match fields.get(4) {
        Some(f) => parse_number(f).ok_or(LineProblem::Counter)?,
        None => 0,
    };
    let last_otp = match fields.get(5) {
        Some(f) if (6..=8).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => Some(*f),
        Some(_) => return Err(LineProblem::LastOtp),
        None => None,
    };
    let last_time = match fields.get(6) {
        Some(f) => Some(parse_local_time(f).ok_or(LineProblem::LastTime)?),
        None => None,
    };

    // liboath 2.6 checks a code of the length the user types, whatever digit count the type
    // names (checked against pam_oath 2.6.7: a 6-digit code passes on a `HOTP/T30/8` line and
    // is recorded as the last OTP). So the last code used shows the length the app really
    // shows; the type is only the admin's word for it (issue 9 item 18).
    let digits = match last_otp {
        Some(otp) => u32::try_from(otp.len())
            .ok()
            .and_then(|n| Digits::new(n).ok())
            .ok_or(LineProblem::LastOtp)?,
        None => token_type.digits,
    };
    let token_type = TokenType {
        digits,
        ..token_type
    };
    let algorithm = Algorithm::Sha1;
    let mut usage = TokenUsage::default();
    let (kind, period, first_counter) = match token_type.period {
        Some(period) => {
            let params = TotpParams {
                algorithm,
                digits: token_type.digits,
                period,
            };
            usage.last_step =
                last_otp.and_then(|otp| used_totp_step(&secret, &params, otp, last_time, now.0));
            (TokenKind::Totp, Some(period), None)
        }
        None => {
            let params = sshield_otp::HotpParams {
                algorithm,
                digits: token_type.digits,
            };
            // liboath stores the counter of the code it accepted and refuses that code by
            // string; the next one to accept is therefore one further.
            let used = last_otp.is_some_and(|otp| hotp(&secret, &params, counter).matches(otp));
            let next = if used {
                counter.saturating_add(1)
            } else {
                counter
            };
            usage.next_counter = Some(next);
            // The record keeps the file's counter as provisioned and the position in its login
            // state, so the engine can tell a replayed code from a wrong one.
            (TokenKind::Hotp, None, Some(counter))
        }
    };
    Ok(Token {
        type_field: fields[0],
        type_digits,
        used: last_otp.is_some(),
        liboath_type: LIBOATH_TYPES.contains(&fields[0]),
        user,
        pin_elsewhere,
        authenticator: Authenticator {
            name: String::new(),
            kind,
            secret,
            algorithm,
            digits: token_type.digits,
            period,
            counter: first_counter,
            ssh_keys: Vec::new(),
            active: true,
            created: now.0,
        },
        usage,
    })
}

/// A token type: digits, and a period for TOTP (`None` for HOTP).
#[derive(Debug, PartialEq, Eq)]
struct TokenType {
    digits: Digits,
    period: Option<Period>,
}

/// Parses `HOTP`, `HOTP/E[/d]` or `HOTP/T<seconds>[/d]`.
fn parse_type(field: &str) -> Result<TokenType, LineProblem> {
    let unknown = || LineProblem::UnknownType {
        shown: shown_field(field),
    };
    let Some(rest) = field.strip_prefix("HOTP") else {
        return Err(unknown());
    };
    if rest.is_empty() {
        return Ok(TokenType {
            digits: Digits::SIX,
            period: None,
        });
    }
    let rest = rest.strip_prefix('/').ok_or_else(unknown)?;
    let (mode, digits) = match rest.split_once('/') {
        Some((mode, digits)) => (mode, Some(digits)),
        None => (rest, None),
    };
    let digits = match digits {
        None => Digits::SIX,
        Some(d) if is_number(d) => d
            .parse::<u32>()
            .ok()
            .and_then(|n| Digits::new(n).ok())
            .ok_or_else(|| LineProblem::Digits {
                token_type: shown_field(field),
                digits: if d.len() <= 3 {
                    d.to_owned()
                } else {
                    "over 999".to_owned()
                },
            })?,
        Some(_) => return Err(unknown()),
    };
    let period = match mode {
        "E" => None,
        _ => {
            let seconds = mode
                .strip_prefix('T')
                .filter(|s| is_number(s))
                .ok_or_else(unknown)?;
            let period = seconds
                .parse::<u64>()
                .map_err(|_| sshield_otp::ParamError::Period(u64::MAX))
                .and_then(Period::new)
                .map_err(|error| LineProblem::Period {
                    token_type: shown_field(field),
                    error,
                })?;
            Some(period)
        }
    };
    Ok(TokenType { digits, period })
}

fn is_number(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

fn parse_number(s: &str) -> Option<u64> {
    is_number(s).then(|| s.parse().ok()).flatten()
}

/// Parses liboath's `%Y-%m-%dT%H:%M:%SL` as if it were UTC (the zone is not recorded).
fn parse_local_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    let shape_ok = b.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'L';
    if !shape_ok {
        return None;
    }
    let num = |from: usize, to: usize| s.get(from..to).and_then(parse_number);
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    // strptime's %S allows 60 for a leap second.
    if year < 1970
        || !(1..=12).contains(&month)
        || day < 1
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second)
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date in or after 1970 (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let year_of_era = y - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The TOTP step whose code is `last_otp`, i.e. the step liboath accepted last, which it and
/// every earlier step sshield must refuse.
///
/// The login happened at `last_time` local time, which is within
/// [`MAX_UTC_OFFSET_SECONDS`] of that time read as UTC, and not after `now`; the code was
/// within pam_oath's window of it. Every step in that range is computed and the *latest*
/// match wins: a chance match of another step (about one in 10^digits per step searched) can
/// then only refuse codes more, never accept a used one, and it cannot reach past
/// `now` + [`TOTP_SEARCH_SLACK_STEPS`]. With no match the code cannot be replayed near `now`
/// (the search covers it), so there is nothing to record. Without `last_time` only the
/// steps around `now` matter for replay.
fn used_totp_step(
    secret: &Secret,
    params: &TotpParams,
    last_otp: &str,
    last_time: Option<u64>,
    now: u64,
) -> Option<u64> {
    let (earliest, latest) = match last_time {
        Some(t) => (
            t.saturating_sub(MAX_UTC_OFFSET_SECONDS),
            t.saturating_add(MAX_UTC_OFFSET_SECONDS),
        ),
        None => (now, now),
    };
    let latest = latest.min(now);
    let earliest = earliest.min(latest);
    let first = totp_step(earliest, params).saturating_sub(TOTP_SEARCH_SLACK_STEPS);
    let last = totp_step(latest, params).saturating_add(TOTP_SEARCH_SLACK_STEPS);
    (first..=last)
        .rev()
        .find(|&step| hotp(secret, &params.hotp(), step).matches(last_otp))
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use sshield_otp::{totp, HotpParams};

    use super::*;

    /// RFC 4226's test key, "12345678901234567890".
    const KEY: &str = "3132333435363738393031323334353637383930";
    /// When the fixture below was written.
    const FIXTURE_NOW: UnixTime = UnixTime(1_795_434_759);
    /// Written by hand, then changed by real logins through liboath 2.6.7's
    /// `oath_authenticate_usersfile` at [`FIXTURE_NOW`] (TZ=UTC, window 5): alice with the
    /// code of counter 7, bob with the TOTP code one step ahead of the clock (step 59847826),
    /// carol with the 8-digit T60 code one step behind (step 29923911); dave never logged in.
    const LIBOATH_FIXTURE: &str = "\
# written by hand, then logins made through liboath 2.6.7
HOTP\talice\t-\t3132333435363738393031323334353637383930\t7\t162583\t2026-11-23T11:52:39L
HOTP/T30\tbob\t-\t3132333435363738393031323334353637383930\t1\t649606\t2026-11-23T11:52:39L
HOTP/T60/8\tcarol\t+\t3132333435363738393031323334353637383930\t1\t21657357\t2026-11-23T11:52:39L
HOTP/E/8 dave - 3132333435363738393031323334353637383930
";

    fn path() -> &'static Path {
        Path::new("/etc/users.oath")
    }

    fn parse_ok(text: &str) -> ImportPlan {
        match parse(text, path(), FIXTURE_NOW) {
            Ok(plan) => plan,
            Err(e) => panic!("{e}"),
        }
    }

    fn parse_err(text: &str) -> String {
        match parse(text, path(), FIXTURE_NOW) {
            Ok(plan) => panic!("parsed: {plan:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Issue 9 item 18: liboath 2.6.7 checks a code of the length typed, whatever the type
    /// says (checked with pam_oath and pamtester: a 6-digit code passes on a `HOTP/T30/8` and
    /// a `HOTP/E/8` line), and records it. These lines are as pam_oath wrote them after such
    /// logins (TZ=UTC). The import must make a token of the length the phone shows, and carry
    /// the used code over.
    #[test]
    fn the_length_comes_from_the_last_code_used_not_the_type() {
        let text = format!(
            "HOTP/T30/8\tzoe\t-\t{KEY}\t0\t699179\t2026-12-04T18:27:51L\n\
             HOTP/E/8\tyann\t-\t{KEY}\t4\t338314\t2026-12-04T18:27:59L\n"
        );
        // A minute after those logins.
        let now = UnixTime(1_796_408_931);
        let plan = parse(&text, path(), now).unwrap();
        let zoe = &plan.users[0];
        let phone = &zoe.authenticators[0];
        assert_eq!((phone.kind, phone.digits.get()), (TokenKind::Totp, 6));
        assert_eq!(zoe.usage["oath"].last_step, Some(59_880_295));
        let yann = &plan.users[1];
        assert_eq!(yann.authenticators[0].digits.get(), 6);
        assert_eq!(yann.usage["oath"].next_counter, Some(5));
        for (line, token_type) in [(1, "HOTP/T30/8"), (2, "HOTP/E/8")] {
            let note = format!("/etc/users.oath:{line}: token type \"{token_type}\" says 8 digits");
            assert!(
                plan.notes
                    .iter()
                    .any(|n| n.starts_with(&note) && n.contains("imported with 6 digits")),
                "{note}: {:#?}",
                plan.notes
            );
        }
    }

    /// A line never used says nothing of the app's length: imported as its type says, and
    /// named in a note.
    #[test]
    fn a_line_never_used_keeps_its_type_and_is_named() {
        let plan = parse_ok(&format!("HOTP/T30/8 zoe - {KEY}\nHOTP/T30 yann - {KEY}\n"));
        assert_eq!(plan.users[0].authenticators[0].digits.get(), 8);
        assert_eq!(plan.users[1].authenticators[0].digits.get(), 6);
        assert!(
            plan.notes.iter().any(|n| n.starts_with(
                "/etc/users.oath: lines 1, 2 were never used, so the file does not show how many \
                 digits their apps show"
            )),
            "{:#?}",
            plan.notes
        );
    }

    #[test]
    fn every_token_type() {
        // (type, TOTP period or None for HOTP, digits, liboath understands it)
        let table: &[(&str, Option<u64>, u32, bool)] = &[
            ("HOTP", None, 6, true),
            ("HOTP/E", None, 6, true),
            ("HOTP/E/6", None, 6, true),
            ("HOTP/E/7", None, 7, true),
            ("HOTP/E/8", None, 8, true),
            ("HOTP/T30", Some(30), 6, true),
            ("HOTP/T30/6", Some(30), 6, true),
            ("HOTP/T30/7", Some(30), 7, true),
            ("HOTP/T30/8", Some(30), 8, true),
            ("HOTP/T60", Some(60), 6, true),
            ("HOTP/T60/6", Some(60), 6, true),
            ("HOTP/T60/7", Some(60), 7, true),
            ("HOTP/T60/8", Some(60), 8, true),
            ("HOTP/T45", Some(45), 6, false),
            ("HOTP/T15/8", Some(15), 8, false),
        ];
        for &(token_type, period, digits, understood) in table {
            let plan = parse_ok(&format!("{token_type} alice - {KEY}\n"));
            let a = &plan.users[0].authenticators[0];
            assert_eq!(a.period.map(Period::seconds), period, "{token_type}");
            let kind = if period.is_some() {
                TokenKind::Totp
            } else {
                TokenKind::Hotp
            };
            assert_eq!(a.kind, kind, "{token_type}");
            assert_eq!(a.digits.get(), digits, "{token_type}");
            assert_eq!(a.algorithm, Algorithm::Sha1);
            assert!(a.active, "{token_type}");
            assert_eq!(a.name, "oath");
            let skipped_note = plan.notes.iter().any(|n| n.contains("skipped this line"));
            assert_eq!(skipped_note, !understood, "{token_type}: {:?}", plan.notes);
        }
    }

    #[test]
    fn bad_lines_are_refused_naming_file_line_and_fix() {
        let table: &[(&str, &str)] = &[
            (
                "HOTP/T30 alice -",
                "found 3 fields; expected TYPE USER PIN SECRET",
            ),
            (
                &format!("HOTP alice - {KEY} 1 123456 2026-11-23T11:52:39L extra"),
                "found 8 fields",
            ),
            (
                &format!("TOTP/30 alice - {KEY}"),
                "unknown token type \"TOTP/30\"; expected HOTP, HOTP/E[/digits] or \
                 HOTP/T<seconds>[/digits]",
            ),
            (
                &format!("hotp alice - {KEY}"),
                "unknown token type \"hotp\"",
            ),
            (&format!("HOTP/6 alice - {KEY}"), "unknown token type"),
            (&format!("HOTP/T alice - {KEY}"), "unknown token type"),
            (&format!("HOTP/T30/x alice - {KEY}"), "unknown token type"),
            (&format!("HOTP/E/8/8 alice - {KEY}"), "unknown token type"),
            (
                &format!("HOTP/T30/9 alice - {KEY}"),
                "token type \"HOTP/T30/9\" asks for 9 digits; sshield and the apps support 6, \
                 7 or 8",
            ),
            (&format!("HOTP/E/5 alice - {KEY}"), "asks for 5 digits"),
            (
                &format!("HOTP/T0 alice - {KEY}"),
                "a period of 0 s is not supported",
            ),
            (&format!("HOTP/T90000 alice - {KEY}"), "a period of 90000 s"),
            (
                &format!("HOTP a/b - {KEY}"),
                "user name \"a/b\": user name contains '/'",
            ),
            (&format!("HOTP ../root - {KEY}"), "must not start with"),
            (&format!("HOTP -x - {KEY}"), "must not start with"),
            (
                "HOTP alice - 3132333435363738393g",
                "the secret cannot be used: secret is not valid hex",
            ),
            ("HOTP alice - 313233", "secret is 24 bits long"),
            (
                &format!("HOTP alice - {KEY} seven"),
                "field 5 (the counter) must be a whole number",
            ),
            (&format!("HOTP alice - {KEY} -1"), "field 5"),
            (
                &format!("HOTP alice - {KEY} 99999999999999999999999"),
                "field 5",
            ),
            (&format!("HOTP alice - {KEY} 1 12345"), "field 6"),
            (&format!("HOTP alice - {KEY} 1 12345a"), "field 6"),
            (
                &format!("HOTP alice - {KEY} 1 123456 2026-11-23 11:52:39"),
                "found 8 fields",
            ),
            (
                &format!("HOTP alice - {KEY} 1 123456 2026-11-23T11:52:39"),
                "field 7",
            ),
            (
                &format!("HOTP alice - {KEY} 1 123456 2026-02-30T11:52:39L"),
                "field 7",
            ),
            (
                &format!("HOTP alice - {KEY} 1 123456 1969-12-31T23:59:59L"),
                "field 7",
            ),
        ];
        for (line, expected) in table {
            let text = format!("# users\n{line}\nHOTP bob - {KEY}\n");
            let message = parse_err(&text);
            assert!(
                message.starts_with("/etc/users.oath:2: "),
                "{line}: {message}"
            );
            assert!(message.contains(expected), "{line}: {message}");
            assert!(!message.contains(KEY), "secret leaked: {message}");
        }
    }

    #[test]
    fn a_field_that_may_be_a_secret_is_never_echoed() {
        // The type column holds the secret (a line missing its type): not shown.
        let message = parse_err(&format!("{KEY} alice - {KEY}\n"));
        assert!(
            message.contains("a 40-character field, not shown"),
            "{message}"
        );
        assert!(!message.contains(KEY), "{message}");
        // The PIN column holds the secret.
        let message = parse_err(&format!("HOTP alice {KEY} {KEY}\n"));
        assert!(message.contains("has a PIN"), "{message}");
        assert!(!message.contains(KEY), "{message}");
    }

    #[test]
    fn pins() {
        let plan = parse_ok(&format!("HOTP/T30 alice - {KEY}\n"));
        assert!(!plan.notes.iter().any(|n| n.contains("PIN")));

        let plan = parse_ok(&format!("HOTP/T30 alice + {KEY}\n"));
        assert_eq!(plan.users.len(), 1);
        let note = plan.notes.iter().find(|n| n.contains("PIN")).unwrap();
        assert!(note.starts_with("/etc/users.oath:1: "), "{note}");
        assert!(note.contains("another PAM module"), "{note}");

        let message = parse_err(&format!("\nHOTP/T30 alice s3cretPIN {KEY}\n"));
        assert!(message.starts_with("/etc/users.oath:2: "), "{message}");
        assert!(message.contains("alice has a PIN"), "{message}");
        assert!(message.contains("set the field to \"-\""), "{message}");
        assert!(!message.contains("s3cretPIN"), "PIN leaked: {message}");
    }

    #[test]
    fn comments_blank_lines_and_several_tokens_per_user() {
        let text = format!(
            "# pam_oath users\n\n   \t\nHOTP/T30 alice - {KEY}\r\n  # indented comment\n\
             HOTP/E/8\tbob\t-\t{KEY}\t3\nHOTP/T60 alice - 8fa4acca0483c5694096ff9d1cc360\n\
             HOTP alice - {KEY} 9\n"
        );
        let plan = parse_ok(&text);
        let users: Vec<(&str, usize, Vec<&str>)> = plan
            .users
            .iter()
            .map(|u| {
                let names = u.authenticators.iter().map(|a| a.name.as_str()).collect();
                (u.user.as_str(), u.source_line, names)
            })
            .collect();
        assert_eq!(
            users,
            [
                ("alice", 4, vec!["oath", "oath-2", "oath-3"]),
                ("bob", 6, vec!["oath"]),
            ]
        );
        let alice = &plan.users[0];
        assert_eq!(
            alice.authenticators[1].period.map(Period::seconds),
            Some(60)
        );
        assert_eq!(
            alice.authenticators[1].secret.to_base32().as_str(),
            "R6SKZSQEQPCWSQEW76ORZQ3A"
        );
        assert_eq!(alice.usage["oath-3"].next_counter, Some(9));
        assert!(
            !alice.usage.contains_key("oath"),
            "unused TOTP has no state"
        );
        assert_eq!(plan.users[1].usage["oath"].next_counter, Some(3));
        assert!(plan.notes.iter().any(|n| n.contains("window=")));
    }

    #[test]
    fn hotp_counter_is_the_used_one_once_logged_in() {
        let params = HotpParams::default();
        let secret = Secret::from_hex(KEY).unwrap();
        let code = |c| hotp(&secret, &params, c).as_str().to_owned();
        let when = "2026-11-23T11:52:39L";
        // (fields after the secret, next counter sshield must accept)
        let table: &[(String, u64)] = &[
            (String::new(), 0),
            ("5".to_owned(), 5),
            // liboath wrote counter 5 with the code it accepted at counter 5.
            (format!("5 {} {when}", code(5)), 6),
            // A last code that is not counter 5's (the counter was edited by hand): liboath
            // would accept counter 5, so sshield must too.
            (format!("5 {} {when}", code(9)), 5),
            (format!("0 {} {when}", code(0)), 1),
        ];
        for (rest, next) in table {
            let plan = parse_ok(&format!("HOTP alice - {KEY} {rest}\n"));
            let alice = &plan.users[0];
            assert_eq!(alice.usage["oath"].next_counter, Some(*next), "{rest}");
            let field = rest
                .split(' ')
                .next()
                .and_then(|c| c.parse().ok())
                .unwrap_or(0);
            assert_eq!(alice.authenticators[0].counter, Some(field), "{rest}");
        }
    }

    #[test]
    fn liboath_fixture() {
        let plan = parse_ok(LIBOATH_FIXTURE);
        let by_name = |n: &str| plan.users.iter().find(|u| u.user.as_str() == n).unwrap();

        let alice = by_name("alice");
        assert_eq!(alice.usage["oath"].next_counter, Some(8));

        // bob's counter field says 1 (liboath's |window position|), which is no step at all.
        let bob = by_name("bob");
        assert_eq!(bob.authenticators[0].kind, TokenKind::Totp);
        assert_eq!(bob.usage["oath"].last_step, Some(59_847_826));
        assert_eq!(bob.usage["oath"].next_counter, None);

        let carol = by_name("carol");
        assert_eq!(carol.authenticators[0].digits.get(), 8);
        assert_eq!(
            carol.authenticators[0].period.map(Period::seconds),
            Some(60)
        );
        assert_eq!(carol.usage["oath"].last_step, Some(29_923_911));
        assert!(plan
            .notes
            .iter()
            .any(|n| n.contains(":4: the PIN field of carol")));

        let dave = by_name("dave");
        assert_eq!(dave.authenticators[0].digits.get(), 8);
        assert_eq!(dave.usage["oath"].next_counter, Some(0));
        assert_eq!(dave.source_line, 5);
    }

    /// civil_from_days, the inverse of `days_from_civil`, to write pam_oath timestamps.
    fn pam_oath_time(t: u64) -> String {
        let z = t / 86_400 + 719_468;
        let era = z / 146_097;
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + u64::from(m <= 2);
        let s = t % 86_400;
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}L",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }

    #[test]
    fn pam_oath_timestamps() {
        assert_eq!(
            parse_local_time("2026-11-23T11:52:39L"),
            Some(1_795_434_759)
        );
        assert_eq!(parse_local_time("1970-01-01T00:00:00L"), Some(0));
        assert_eq!(
            parse_local_time("2024-02-29T23:59:60L"),
            Some(1_709_251_200)
        );
        for t in [0, 951_782_400, 1_709_164_800, 4_102_444_799, FIXTURE_NOW.0] {
            assert_eq!(parse_local_time(&pam_oath_time(t)), Some(t), "{t}");
        }
        for bad in [
            "2026-11-23T11:52:39",
            "2026-11-23 11:52:39L",
            "2026-13-01T00:00:00L",
            "2026-00-01T00:00:00L",
            "2023-02-29T00:00:00L",
            "2026-11-23T24:00:00L",
            "2026-11-23T11:60:00L",
            "2026-11-23T11:52:61L",
            "+026-11-23T11:52:39L",
            "2026-11-23T11:52:39Z",
        ] {
            assert_eq!(parse_local_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn last_totp_step_is_found_in_any_time_zone() {
        let secret = Secret::from_hex(KEY).unwrap();
        let params = TotpParams::default();
        let login = FIXTURE_NOW.0 - 3600;
        for used_offset in [-5i64, -1, 0, 1, 5] {
            let used = totp_step(login, &params).saturating_add_signed(used_offset);
            let code = hotp(&secret, &params.hotp(), used);
            // LAST_TIME is the server's local time: anything from UTC-12 to UTC+14.
            for zone_hours in [-12i64, -5, 0, 1, 9, 14] {
                let local = login.saturating_add_signed(zone_hours * 3600);
                let text = format!(
                    "HOTP/T30 alice - {KEY} 0 {} {}\n",
                    code.as_str(),
                    pam_oath_time(local)
                );
                let plan = parse_ok(&text);
                assert_eq!(
                    plan.users[0].usage["oath"].last_step,
                    Some(used),
                    "used {used_offset:+}, zone {zone_hours:+}"
                );
            }
        }
    }

    #[test]
    fn a_last_totp_code_that_is_no_code_records_nothing() {
        // No step within a day of the last login has this code (checked: the search covers
        // about 3,500 steps), so it cannot be replayed and there is nothing to record.
        let text = format!("HOTP/T30 alice - {KEY} 0 000000 2026-11-23T11:52:39L\n");
        let plan = parse_ok(&text);
        assert!(plan.users[0].usage.is_empty(), "{:?}", plan.users[0].usage);
        // Nor without a time: only steps around now matter then.
        let secret = Secret::from_hex(KEY).unwrap();
        let now_code = totp(&secret, &TotpParams::default(), FIXTURE_NOW.0);
        let text = format!("HOTP/T30 alice - {KEY} 0 {}\n", now_code.as_str());
        let plan = parse_ok(&text);
        assert_eq!(
            plan.users[0].usage["oath"].last_step,
            Some(FIXTURE_NOW.0 / 30)
        );
    }

    fn oathtool(args: &[&str]) -> String {
        let out = Command::new("oathtool")
            .args(args)
            .output()
            .expect("oathtool (oath-toolkit) must be installed for this test");
        assert!(out.status.success(), "oathtool {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn imported_tokens_make_the_codes_oathtool_makes() {
        let text = format!("HOTP/E/8 alice - {KEY} 3\nHOTP/T60/7 bob - {KEY}\nHOTP/T30 carol - 8fa4acca0483c5694096ff9d1cc360\n");
        let plan = parse_ok(&text);
        let token = |i: usize| &plan.users[i].authenticators[0];

        let alice = token(0);
        for counter in [3u64, 4, 1000] {
            let ours = hotp(&alice.secret, &alice.hotp_params(), counter);
            let theirs = oathtool(&["--hotp", "-d", "8", "-c", &counter.to_string(), KEY]);
            assert_eq!(ours.as_str(), theirs.trim(), "counter {counter}");
        }
        let bob = token(1);
        for t in [59u64, 1_111_111_109, FIXTURE_NOW.0] {
            let ours = totp(&bob.secret, &bob.totp_params(), t);
            let theirs = oathtool(&["--totp", "-s", "60", "-d", "7", &format!("--now=@{t}"), KEY]);
            assert_eq!(ours.as_str(), theirs.trim(), "time {t}");
        }
        let carol = token(2);
        let verbose = oathtool(&["-v", "--totp", "8fa4acca0483c5694096ff9d1cc360"]);
        let base32 = verbose
            .lines()
            .find_map(|l| l.strip_prefix("Base32 secret: "))
            .unwrap();
        assert_eq!(carol.secret.to_base32().as_str(), base32);
    }
}
