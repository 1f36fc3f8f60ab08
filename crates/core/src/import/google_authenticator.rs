//! A user's `~/.google_authenticator`, read the way pam_google_authenticator reads it.
//!
//! ```text
//! JAH23MKGYNGIZWHK7QCDHDEY6A
//! " RATE_LIMIT 3 30 1795434744
//! " WINDOW_SIZE 17
//! " DISALLOW_REUSE 59847826 59847823
//! " TOTP_AUTH
//! 40036662
//! 45285895
//! ```
//!
//! What the lines mean, from google-authenticator-libpam's `pam_google_authenticator.c` and
//! its `FILEFORMAT`, and checked by logging in through the real module:
//!
//! - Line 1 is the base32 secret. Codes are always 6 digits with HMAC-SHA-1.
//! - `" NAME value` lines are options, anywhere after line 1. The module reads the first
//!   occurrence of each; a `"` line it does not know is inert.
//!   - `HOTP_COUNTER n` (n ≥ 1) makes the token counter-based; `n` is the *next* counter the
//!     module accepts (a login with counter `c` writes `c + 1`, and so does a failed attempt),
//!     so it is sshield's next counter as it stands (the record's provisioned counter is 1,
//!     where google-authenticator starts every token). It wins over `TOTP_AUTH` if both are
//!     set.
//!   - `TOTP_AUTH` makes it time-based, `STEP_SIZE n` (1-60, default 30) sets the period.
//!   - `DISALLOW_REUSE s...` lists used codes as **time steps** (Unix time / `STEP_SIZE`,
//!     including any `TIME_SKEW`), not seconds. The module refuses exactly the listed steps;
//!     sshield refuses every step up to its last used one, so the largest listed step becomes
//!     `last_step`.
//!   - `TIME_SKEW n` is the phone's learned clock offset in steps, which sshield keeps as its
//!     drift when it is within sshield's default `max_drift`.
//!   - `WINDOW_SIZE` and `RATE_LIMIT` are sshield policy, not per-user settings: they are
//!     reported in notes, not carried over. `RESETTING_TIME_SKEW` is the state of an
//!     unfinished clock-skew reset and is dropped.
//! - Every other line is an 8-digit scratch code not starting with 0; each one left in the
//!   file is unused (the module deletes a code when it is used). They become backup codes.

use std::path::Path;

use sshield_otp::{Algorithm, Digits, Period, Secret};
use zeroize::Zeroizing;

use super::error::{shown_field, ImportError, LineProblem};
use super::plan::{ImportPlan, ImportedUser};
use crate::config::Policy;
use crate::record::{Authenticator, TokenKind, TokenUsage};
use crate::time::UnixTime;
use crate::user_file::read_text;
use crate::username::UserName;

/// The file's name in a user's home directory.
pub const FILE_NAME: &str = ".google_authenticator";

/// The name the imported token gets in the user's record.
pub const AUTHENTICATOR_NAME: &str = "google-authenticator";

/// pam_google_authenticator refuses files larger than this.
const MAX_FILE_BYTES: u64 = 64 * 1024;

/// google-authenticator's default window: the current step and one either side.
const DEFAULT_WINDOW_SIZE: u64 = 3;

/// Reads and parses `path`, the google-authenticator file of `user` (see [`parse`]).
pub fn read(path: &Path, user: &UserName, now: UnixTime) -> Result<ImportPlan, ImportError> {
    let text = read_text(path, MAX_FILE_BYTES)?;
    parse(&text, path, user, now)
}

/// Parses the text of `user`'s google-authenticator file; `path` is used in messages and
/// notes, `now` to date the authenticator.
pub fn parse(
    text: &str,
    path: &Path,
    user: &UserName,
    now: UnixTime,
) -> Result<ImportPlan, ImportError> {
    let line_error = |line: usize, problem: LineProblem| ImportError::Line {
        path: path.to_owned(),
        line,
        problem,
    };
    let mut notes = Vec::new();
    let mut lines = text.lines().enumerate();
    let secret_line = match lines.next() {
        Some((_, line)) if !line.trim().is_empty() && !line.starts_with('"') => line,
        _ => return Err(line_error(1, LineProblem::NoSecret)),
    };
    let secret = Secret::from_base32(secret_line.trim())
        .map_err(|e| line_error(1, LineProblem::Secret(e)))?;

    let mut options = Options::default();
    let mut scratch_codes = Vec::new();
    for (i, line) in lines {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('"') {
            match rest.strip_prefix(' ') {
                Some(body) => {
                    if let Some(name) = options
                        .parse(body, line_no)
                        .map_err(|p| line_error(line_no, p))?
                    {
                        notes.push(format!(
                            "{}:{line_no}: option {} is unknown to sshield and was ignored",
                            path.display(),
                            shown_field(name)
                        ));
                    }
                }
                None => notes.push(format!(
                    "{}:{line_no}: ignored, as google-authenticator ignores it (an option line \
                     starts with a quote and a space)",
                    path.display()
                )),
            }
            continue;
        }
        let code = line.trim();
        let well_formed =
            code.len() == 8 && code.bytes().all(|b| b.is_ascii_digit()) && !code.starts_with('0');
        if !well_formed {
            return Err(line_error(line_no, LineProblem::NotAScratchCode));
        }
        scratch_codes.push(Zeroizing::new(code.to_owned()));
    }

    let at = path.display();
    let hotp_counter = options.hotp_counter.filter(|(_, n)| *n >= 1);
    let mut usage = TokenUsage::default();
    let kind = match (hotp_counter, options.totp_auth) {
        (Some(_), Some(_)) => {
            notes.push(format!(
                "{at}: both \" TOTP_AUTH and \" HOTP_COUNTER are set; google-authenticator used \
                 HOTP_COUNTER, so the token is imported as counter-based"
            ));
            TokenKind::Hotp
        }
        (Some(_), None) => TokenKind::Hotp,
        (None, Some(_)) => TokenKind::Totp,
        (None, None) => {
            return Err(match options.hotp_counter {
                Some((line, _)) => line_error(
                    line,
                    LineProblem::OptionValue {
                        option: "HOTP_COUNTER",
                        expected: "a counter from 1 up (google-authenticator takes 0 as no \
                                   counter)",
                    },
                ),
                None => line_error(1, LineProblem::NoTokenMode),
            })
        }
    };

    let window = options.window_size.map(|(_, w)| w);
    let (period, counter) = match kind {
        TokenKind::Hotp => {
            let next = hotp_counter.map(|(_, n)| n).unwrap_or(1);
            usage.next_counter = Some(next);
            if let Some(w) = window {
                notes.push(format!(
                    "{at}: WINDOW_SIZE {w} not carried over: sshield accepts HOTP codes up to \
                     [policy] hotp_lookahead counters ahead (default 10)"
                ));
            }
            // google-authenticator provisions every counter-based token at 1; the position
            // is login state, so that the engine can tell a replayed code from a wrong one.
            (None, Some(1))
        }
        TokenKind::Totp => {
            match &options.disallow_reuse {
                Some((_, steps)) => usage.last_step = steps.iter().copied().max(),
                None => notes.push(format!(
                    "{at}: codes could be reused (no DISALLOW_REUSE); sshield accepts each code \
                     only once"
                )),
            }
            if let Some((_, skew)) = options.time_skew {
                let max_drift = Policy::default().max_drift;
                if skew.unsigned_abs() <= max_drift {
                    usage.drift = skew;
                } else {
                    notes.push(format!(
                        "{at}: TIME_SKEW {skew} (the phone's clock is {skew} steps off) not \
                         carried over: sshield follows at most {max_drift} steps; set the \
                         phone's clock to network time"
                    ));
                }
            }
            if let Some(w) = window.filter(|w| *w != DEFAULT_WINDOW_SIZE) {
                notes.push(format!(
                    "{at}: WINDOW_SIZE {w} not carried over: sshield uses [policy] window \
                     (default ±1 step)"
                ));
            }
            let period = options.step_size.map(|(_, s)| s).unwrap_or_default();
            (Some(period), None)
        }
    };
    if let Some((_, attempts, seconds)) = options.rate_limit {
        notes.push(format!(
            "{at}: RATE_LIMIT {attempts} {seconds} ({attempts} logins per {seconds} s) not \
             carried over: sshield's rate limits are set in its config, for all users alike"
        ));
    }

    let authenticator = Authenticator {
        name: AUTHENTICATOR_NAME.to_owned(),
        kind,
        secret,
        algorithm: Algorithm::Sha1,
        digits: Digits::SIX,
        period,
        counter,
        ssh_keys: Vec::new(),
        active: true,
        created: now.0,
    };
    let mut imported = ImportedUser {
        user: user.clone(),
        authenticators: vec![authenticator],
        usage: Default::default(),
        backup_codes: scratch_codes,
        source: path.to_owned(),
        source_line: 1,
    };
    if usage != TokenUsage::default() {
        imported.usage.insert(AUTHENTICATOR_NAME.to_owned(), usage);
    }
    Ok(ImportPlan {
        users: vec![imported],
        notes,
    })
}

/// The options read so far, each with the line it came from.
#[derive(Default)]
struct Options {
    totp_auth: Option<(usize, ())>,
    hotp_counter: Option<(usize, u64)>,
    step_size: Option<(usize, Period)>,
    window_size: Option<(usize, u64)>,
    disallow_reuse: Option<(usize, Vec<u64>)>,
    rate_limit: Option<(usize, u64, u64)>,
    time_skew: Option<(usize, i64)>,
    resetting_time_skew: Option<(usize, ())>,
}

impl Options {
    /// Reads one option line (without its `" `). Returns the option's name if it is unknown.
    fn parse<'a>(&mut self, body: &'a str, line: usize) -> Result<Option<&'a str>, LineProblem> {
        let (name, value) = match body.find([' ', '\t']) {
            Some(i) => (&body[..i], body[i..].trim()),
            None => (body.trim_end(), ""),
        };
        let bad = |option: &'static str, expected: &'static str| LineProblem::OptionValue {
            option,
            expected,
        };
        match name {
            "TOTP_AUTH" => once(&mut self.totp_auth, "TOTP_AUTH", line, ())?,
            "RESETTING_TIME_SKEW" => once(
                &mut self.resetting_time_skew,
                "RESETTING_TIME_SKEW",
                line,
                (),
            )?,
            "HOTP_COUNTER" => {
                let n = number(value).ok_or(bad("HOTP_COUNTER", "a counter (a whole number)"))?;
                once(&mut self.hotp_counter, "HOTP_COUNTER", line, n)?;
            }
            "STEP_SIZE" => {
                let n = number(value)
                    .filter(|n| (1..=60).contains(n))
                    .and_then(|n| Period::new(n).ok())
                    .ok_or(bad("STEP_SIZE", "a number of seconds from 1 to 60"))?;
                once(&mut self.step_size, "STEP_SIZE", line, n)?;
            }
            "WINDOW_SIZE" => {
                let n = number(value)
                    .filter(|n| (1..=100).contains(n))
                    .ok_or(bad("WINDOW_SIZE", "a number of codes from 1 to 100"))?;
                once(&mut self.window_size, "WINDOW_SIZE", line, n)?;
            }
            "DISALLOW_REUSE" => {
                let steps = value
                    .split_ascii_whitespace()
                    .map(number)
                    .collect::<Option<Vec<u64>>>()
                    .ok_or(bad(
                        "DISALLOW_REUSE",
                        "a list of used time steps (whole numbers), or nothing",
                    ))?;
                once(&mut self.disallow_reuse, "DISALLOW_REUSE", line, steps)?;
            }
            "RATE_LIMIT" => {
                let expected = "a number of logins (1 to 100), a number of seconds (1 to \
                                3600), and the times of recent logins";
                let numbers = value
                    .split_ascii_whitespace()
                    .map(number)
                    .collect::<Option<Vec<u64>>>()
                    .ok_or(bad("RATE_LIMIT", expected))?;
                let (attempts, seconds) = match numbers[..] {
                    [a, s, ..] if (1..=100).contains(&a) && (1..=3600).contains(&s) => (a, s),
                    _ => return Err(bad("RATE_LIMIT", expected)),
                };
                if let Some((first_line, ..)) = self.rate_limit {
                    return Err(LineProblem::DuplicateOption {
                        option: "RATE_LIMIT",
                        first_line,
                    });
                }
                self.rate_limit = Some((line, attempts, seconds));
            }
            "TIME_SKEW" => {
                let skew = value.parse::<i64>().ok().ok_or(bad(
                    "TIME_SKEW",
                    "a number of time steps, possibly negative",
                ))?;
                once(&mut self.time_skew, "TIME_SKEW", line, skew)?;
            }
            unknown => return Ok(Some(unknown)),
        }
        Ok(None)
    }
}

/// Sets an option the first time; a second time is an error (the module would silently use
/// the first, and a hand-edited file deserves a look).
fn once<T>(
    slot: &mut Option<(usize, T)>,
    option: &'static str,
    line: usize,
    value: T,
) -> Result<(), LineProblem> {
    if let Some((first_line, _)) = slot {
        return Err(LineProblem::DuplicateOption {
            option,
            first_line: *first_line,
        });
    }
    *slot = Some((line, value));
    Ok(())
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixTime = UnixTime(1_795_434_759);

    /// Written by `google-authenticator -t -d -f -r 3 -R 30 -w 17` (libpam-google-authenticator
    /// 20191231), then two logins through pam_google_authenticator.so at Unix time 1795434744
    /// (step 59847824): with the code of step +2, then of step -1.
    const TOTP_AFTER_LOGINS: &str = "\
JAH23MKGYNGIZWHK7QCDHDEY6A
\" RATE_LIMIT 3 30 1795434744 1795434745 1795434745
\" WINDOW_SIZE 17
\" DISALLOW_REUSE 59847826 59847823
\" TOTP_AUTH
40036662
45285895
22679811
42002787
31270035
";

    /// Written by `google-authenticator -c -w 5 -u`, then three attempts through the module:
    /// counter 1 (accepted: 2), counter 1 again (refused, but the module still advances: 3),
    /// counter 5 (accepted: 6), then the scratch code 74970023 (removed).
    const HOTP_AFTER_LOGINS: &str = "\
MCPDDX5LEPOPS2YEMZVXKG55WI
\" WINDOW_SIZE 5
\" HOTP_COUNTER 6
38900960
56954581
75539730
49031544
";

    /// Written by `google-authenticator -t -D -u -S 60 -W -e 3`: reuse allowed, 60 s steps.
    const TOTP_60_REUSE_ALLOWED: &str = "\
PJ2HCRTZOQGEIMUDM4GJEZPPPM
\" WINDOW_SIZE 3
\" STEP_SIZE 60
\" TOTP_AUTH
31151969
58224212
34251336
";

    fn path() -> &'static Path {
        Path::new("/home/alice/.google_authenticator")
    }

    fn alice() -> UserName {
        UserName::new("alice").unwrap()
    }

    fn parse_ok(text: &str) -> ImportPlan {
        match parse(text, path(), &alice(), NOW) {
            Ok(plan) => plan,
            Err(e) => panic!("{e}"),
        }
    }

    fn codes(user: &ImportedUser) -> Vec<&str> {
        user.backup_codes.iter().map(|c| c.as_str()).collect()
    }

    #[test]
    fn totp_with_disallow_reuse_and_scratch_codes() {
        let plan = parse_ok(TOTP_AFTER_LOGINS);
        assert_eq!(plan.users.len(), 1);
        let user = &plan.users[0];
        assert_eq!(user.user.as_str(), "alice");
        let a = &user.authenticators[0];
        assert_eq!(a.name, "google-authenticator");
        assert_eq!(a.kind, TokenKind::Totp);
        assert_eq!(
            (a.digits.get(), a.period.map(Period::seconds), a.algorithm),
            (6, Some(30), Algorithm::Sha1)
        );
        assert!(a.active);
        assert_eq!(
            a.secret,
            Secret::from_base32("JAH23MKGYNGIZWHK7QCDHDEY6A").unwrap()
        );
        // Steps, not seconds: the largest used one, so both used codes are refused.
        assert_eq!(user.usage[AUTHENTICATOR_NAME].last_step, Some(59_847_826));
        assert_eq!(
            codes(user),
            ["40036662", "45285895", "22679811", "42002787", "31270035"]
        );
        let notes = plan.notes.join("\n");
        assert!(
            notes.contains(
                "/home/alice/.google_authenticator: WINDOW_SIZE 17 not carried over: sshield \
                 uses [policy] window (default ±1 step)"
            ),
            "{notes}"
        );
        assert!(
            notes.contains("RATE_LIMIT 3 30 (3 logins per 30 s) not carried over"),
            "{notes}"
        );
        assert_eq!(plan.notes.len(), 2, "{notes}");
        // Debug never shows the scratch codes.
        assert!(!format!("{plan:?}").contains("40036662"));
    }

    #[test]
    fn hotp_counter_is_the_next_one() {
        let plan = parse_ok(HOTP_AFTER_LOGINS);
        let user = &plan.users[0];
        let a = &user.authenticators[0];
        assert_eq!(a.kind, TokenKind::Hotp);
        assert_eq!((a.period, a.counter), (None, Some(1)));
        assert_eq!(user.usage[AUTHENTICATOR_NAME].next_counter, Some(6));
        assert_eq!(user.usage[AUTHENTICATOR_NAME].last_step, None);
        assert_eq!(codes(user).len(), 4);
        assert!(plan.notes[0].contains("WINDOW_SIZE 5 not carried over"));
        assert!(plan.notes[0].contains("hotp_lookahead"));
    }

    #[test]
    fn step_size_and_reuse_allowed() {
        let plan = parse_ok(TOTP_60_REUSE_ALLOWED);
        let user = &plan.users[0];
        assert_eq!(user.authenticators[0].period.map(Period::seconds), Some(60));
        assert!(user.usage.is_empty());
        assert_eq!(codes(user).len(), 3);
        // WINDOW_SIZE 3 is sshield's default window; only the reuse change is worth a note.
        assert_eq!(plan.notes.len(), 1, "{:?}", plan.notes);
        assert!(plan.notes[0].contains("no DISALLOW_REUSE"));
    }

    #[test]
    fn time_skew() {
        // (TIME_SKEW value, drift carried over, a note expected)
        for (skew, drift, note) in [
            ("3", 3, false),
            ("-20", -20, false),
            ("21", 0, true),
            ("-300", 0, true),
        ] {
            let text = format!("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n\" DISALLOW_REUSE\n\" TIME_SKEW {skew}\n\" RESETTING_TIME_SKEW 59847826+3\n");
            let plan = parse_ok(&text);
            let drift_now = plan.users[0]
                .usage
                .get(AUTHENTICATOR_NAME)
                .map_or(0, |u| u.drift);
            assert_eq!(drift_now, drift, "{skew}");
            assert_eq!(
                plan.notes.iter().any(|n| n.contains("TIME_SKEW")),
                note,
                "{skew}"
            );
        }
    }

    #[test]
    fn odd_but_valid_files() {
        // CRLF, blank lines, options after the scratch codes, a quote line the module ignores,
        // an option sshield does not know, both modes (the module uses HOTP then).
        let text = "JBSWY3DPEHPK3PXP\r\n\r\n12345678\r\n\"comment\r\n\" TOTP_AUTH\r\n\
                    \" FUTURE_OPTION 1\r\n\" HOTP_COUNTER 4\r\n87654321\r\n";
        let plan = parse_ok(text);
        let user = &plan.users[0];
        assert_eq!(user.authenticators[0].kind, TokenKind::Hotp);
        assert_eq!(user.usage[AUTHENTICATOR_NAME].next_counter, Some(4));
        assert_eq!(codes(user), ["12345678", "87654321"]);
        let notes = plan.notes.join("\n");
        assert!(notes.contains(":4: ignored"), "{notes}");
        assert!(
            notes.contains(":6: option \"FUTURE_OPTION\" is unknown"),
            "{notes}"
        );
        assert!(notes.contains("imported as counter-based"), "{notes}");
        // No scratch codes at all is fine too; HOTP_COUNTER 0 is no counter.
        let plan = parse_ok("JBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 0\n\" TOTP_AUTH\n");
        assert_eq!(plan.users[0].authenticators[0].kind, TokenKind::Totp);
        assert!(plan.users[0].backup_codes.is_empty());
    }

    #[test]
    fn bad_files_are_refused_naming_file_line_and_fix() {
        let secret = "JBSWY3DPEHPK3PXP";
        let table: &[(String, &str)] = &[
            (
                String::new(),
                ":1: the first line must be the base32 secret",
            ),
            (
                "\" TOTP_AUTH\n".to_owned(),
                ":1: the first line must be the base32 secret",
            ),
            (
                "\nJBSWY3DPEHPK3PXP\n".to_owned(),
                ":1: the first line must be",
            ),
            (
                "JBSWY3DPEHPK3PX1\n\" TOTP_AUTH\n".to_owned(),
                ":1: the secret cannot be used: invalid base32 character at position 16",
            ),
            (
                "JBSWY3DP\n\" TOTP_AUTH\n".to_owned(),
                ":1: the secret cannot be used: secret is 40 bits long",
            ),
            (
                format!("{secret}\n12345678\n"),
                ":1: neither \" TOTP_AUTH nor \" HOTP_COUNTER is set",
            ),
            (
                format!("{secret}\n\" HOTP_COUNTER 0\n"),
                ":2: \" HOTP_COUNTER takes a counter from 1 up",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n1234567\n"),
                ":3: neither an option (\" NAME ...) nor an 8-digit scratch code",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n123456789\n"),
                ":3: neither an option",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n01234567\n"),
                ":3: neither an option",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n1234567a\n"),
                ":3: neither an option",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" STEP_SIZE 0\n"),
                ":3: \" STEP_SIZE takes a number of seconds from 1 to 60",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" STEP_SIZE 61\n"),
                ":3: \" STEP_SIZE takes",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" WINDOW_SIZE 101\n"),
                ":3: \" WINDOW_SIZE takes",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" DISALLOW_REUSE 1 x\n"),
                ":3: \" DISALLOW_REUSE takes a list of used time steps",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" RATE_LIMIT 3\n"),
                ":3: \" RATE_LIMIT takes",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" RATE_LIMIT 0 30\n"),
                ":3: \" RATE_LIMIT takes",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" TIME_SKEW x\n"),
                ":3: \" TIME_SKEW takes",
            ),
            (
                format!("{secret}\n\" HOTP_COUNTER x\n"),
                ":2: \" HOTP_COUNTER takes",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" STEP_SIZE 30\n\" STEP_SIZE 60\n"),
                ":4: \" STEP_SIZE appears again (first on line 3)",
            ),
            (
                format!("{secret}\n\" TOTP_AUTH\n\" TOTP_AUTH\n"),
                ":3: \" TOTP_AUTH appears again",
            ),
        ];
        for (text, expected) in table {
            let message = match parse(text, path(), &alice(), NOW) {
                Ok(plan) => panic!("{text:?} parsed: {plan:?}"),
                Err(e) => e.to_string(),
            };
            let expected = format!("/home/alice/.google_authenticator{expected}");
            assert!(message.starts_with(&expected), "{text:?}: {message}");
            assert!(!message.contains(secret), "secret leaked: {message}");
        }
    }

    #[test]
    fn reads_files_but_not_symlinks() {
        use std::os::unix::fs::symlink;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE_NAME);
        std::fs::write(&file, TOTP_AFTER_LOGINS).unwrap();
        let plan = read(&file, &alice(), NOW).unwrap();
        assert_eq!(plan.users[0].backup_codes.len(), 5);
        assert_eq!(plan.users[0].source, file);

        let link = dir.path().join("link");
        symlink(&file, &link).unwrap();
        let message = read(&link, &alice(), NOW).unwrap_err().to_string();
        assert!(message.contains("is a symbolic link"), "{message}");

        let message = read(dir.path(), &alice(), NOW).unwrap_err().to_string();
        assert!(message.contains("not a regular file"), "{message}");

        let missing = dir.path().join("missing");
        let message = read(&missing, &alice(), NOW).unwrap_err().to_string();
        assert!(message.contains("no such file"), "{message}");

        std::fs::write(&file, vec![b'A'; 64 * 1024 + 1]).unwrap();
        let message = read(&file, &alice(), NOW).unwrap_err().to_string();
        assert!(message.contains("more than the 65536 bytes"), "{message}");

        std::fs::write(&file, b"JBSWY3DPEHPK3PXP\n\xff\n").unwrap();
        let message = read(&file, &alice(), NOW).unwrap_err().to_string();
        assert!(message.contains("not a text file"), "{message}");
    }
}
