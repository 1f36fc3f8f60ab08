//! Differential test against `oathtool` from OATH Toolkit (Debian package `oathtool`), the
//! reference implementation behind pam_oath.
//!
//! For random secrets (10 to 64 bytes), times (0 to 2^33, past 2038 and past 32-bit steps),
//! algorithms (SHA-1/256/512), digit counts (6/7/8) and periods (1 s to 1 h), it proves that:
//!
//! * [`totp`] gives the same code as `oathtool --totp` for the given time and for each of the
//!   following steps `oathtool --window` prints, and [`hotp`] the same as `oathtool --hotp`
//!   for random counters up to 2^64 - 1;
//! * [`Secret::to_base32`] and [`Secret::from_hex`] describe the same key as oathtool reads;
//! * [`verify_totp`] accepts each of oathtool's codes at the step oathtool made it for and
//!   reports the right offset, whether the window is moved by the time or by a learned drift,
//!   and refuses steps at or before `last_used`; [`verify_hotp`] likewise for counters.
//!
//! The expected verification result is worked out from oathtool's codes alone, by the rule
//! `verify_totp` documents (the step nearest the window's centre wins, earlier on a tie), so
//! that the rare case of two equal codes in one window is checked too, not skipped.
//!
//! The cases come from a seeded generator; the seed is printed in every failure message and
//! `SSHIELD_OATHTOOL_SEED=<seed> cargo test -p sshield-otp --test oathtool` replays them.
//! If oathtool is not installed the test fails (`apt-get install oathtool`): it never passes
//! without having compared anything.

use std::io::ErrorKind;
use std::process::Command;

use sshield_otp::{
    hotp, totp, totp_step, verify_hotp, verify_totp, Algorithm, Digits, HotpParams, Period, Secret,
    TotpMatch, TotpParams, Window,
};

const TOTP_CASES: usize = 300;
const HOTP_CASES: usize = 100;
/// Each oathtool run prints up to this many codes after the first (`--window`).
const MAX_WINDOW: u64 = 7;
const LATEST_TIME: u64 = 1 << 33;
const SEED_VAR: &str = "SSHIELD_OATHTOOL_SEED";

#[test]
fn totp_matches_oathtool() {
    let mut rng = Rng::from_env_or_os();
    for case in 0..TOTP_CASES {
        totp_case(&mut rng, case);
    }
}

#[test]
fn hotp_matches_oathtool() {
    let mut rng = Rng::from_env_or_os();
    for case in 0..HOTP_CASES {
        hotp_case(&mut rng, case);
    }
}

fn totp_case(rng: &mut Rng, case: usize) {
    let len = rng.range(10, 64) as usize;
    let key = rng.bytes(len);
    let secret = Secret::from_bytes(key.clone()).expect("10 to 64 bytes is a valid key");
    let algorithm = rng.pick(&[Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512]);
    let digits = rng.pick(&[6, 7, 8]);
    let period = match rng.range(0, 6) {
        6 => rng.range(1, 600),
        i => [1, 15, 30, 60, 90, 3600][i as usize],
    };
    let params = TotpParams {
        algorithm,
        digits: Digits::new(digits).expect("6 to 8 digits"),
        period: Period::new(period).expect("1 to 3600 s"),
    };
    let time = rng.range(0, LATEST_TIME);
    let window = rng.range(0, MAX_WINDOW);

    let mut args = vec![
        format!("--totp={algorithm}"),
        format!("--digits={digits}"),
        format!("--time-step-size={period}s"),
        format!("--now=@{time}"),
        format!("--window={window}"),
    ];
    args.extend(key_args(rng, &key, &secret));
    let ctx = context(rng, case, &args);
    let codes = oathtool(&args, &ctx, digits, window);

    // oathtool prints the code for `time`, then one per following step.
    let first = totp_step(time, &params);
    for (i, want) in (0u64..).zip(&codes) {
        let at = time + i * period;
        assert_eq!(totp_step(at, &params), first + i, "{ctx}");
        assert_eq!(
            totp(&secret, &params, at).as_str(),
            want,
            "{ctx}: step +{i}"
        );
    }

    // Centre the verification window on one of the printed steps, either by moving the
    // clock there or by leaving the clock at `time` and applying a drift that reaches it.
    let centre = rng.range(0, window);
    let (clock_steps, drift) = match rng.range(0, 2) {
        0 => (centre, 0),
        1 => (0, centre as i64),
        _ => (window, centre as i64 - window as i64),
    };
    let now = time + clock_steps * period;
    let span = Window {
        behind: centre,
        ahead: window - centre,
    };
    for (i, code) in codes.iter().enumerate() {
        // `last_used` relative to `first`: none, just before the window, or inside it.
        let used = match rng.range(0, 2) {
            0 => None,
            1 => first.checked_sub(1),
            _ => Some(first + rng.range(0, window)),
        };
        let got = verify_totp(&secret, &params, code, now, span, drift, used);
        let want =
            expected_step(&codes, i, centre, used.map(|u| u as i128 - first as i128)).map(|j| {
                TotpMatch {
                    step: first + j,
                    offset: j as i64 - clock_steps as i64,
                }
            });
        assert_eq!(
            got, want,
            "{ctx}: verify_totp(code {i}, now = step +{clock_steps}, drift {drift}, \
             {span:?}, last_used {used:?}; first step {first})"
        );
    }
}

fn hotp_case(rng: &mut Rng, case: usize) {
    let len = rng.range(10, 64) as usize;
    let key = rng.bytes(len);
    let secret = Secret::from_bytes(key.clone()).expect("10 to 64 bytes is a valid key");
    // `oathtool --hotp` has no algorithm option: it is always HMAC-SHA-1.
    let digits = rng.pick(&[6, 7, 8]);
    let params = HotpParams {
        algorithm: Algorithm::Sha1,
        digits: Digits::new(digits).expect("6 to 8 digits"),
    };
    let window = rng.range(0, MAX_WINDOW);
    // Stay clear of the end: oathtool's counter wraps from 2^64 - 1 to 0.
    let last_start = u64::MAX - window;
    let counter = match rng.range(0, 4) {
        0 => rng.range(0, 1000),
        1 => rng.range(0, u64::from(u32::MAX)),
        2 => rng.range(0, last_start),
        3 => last_start,
        _ => 0,
    };

    let mut args = vec![
        "--hotp".to_owned(),
        format!("--counter={counter}"),
        format!("--digits={digits}"),
        format!("--window={window}"),
    ];
    args.extend(key_args(rng, &key, &secret));
    let ctx = context(rng, case, &args);
    let codes = oathtool(&args, &ctx, digits, window);

    for (i, want) in (0u64..).zip(&codes) {
        assert_eq!(
            hotp(&secret, &params, counter + i).as_str(),
            want,
            "{ctx}: counter +{i}"
        );
    }

    for (i, code) in codes.iter().enumerate() {
        // Mostly start at or before the code's counter, sometimes after it (must refuse).
        let skip = if rng.range(0, 3) == 0 {
            rng.range(0, window)
        } else {
            rng.range(0, i as u64)
        };
        let got = verify_hotp(&secret, &params, code, counter + skip, window - skip);
        // verify_hotp takes the first match from `next` on.
        let want = (skip..=window)
            .find(|&j| codes[j as usize] == *code)
            .map(|j| counter + j);
        assert_eq!(
            got,
            want,
            "{ctx}: verify_hotp(code {i}, next = counter +{skip}, lookahead {})",
            window - skip
        );
    }
}

/// Which printed step (index into `codes`) `verify_totp` must accept for `codes[i]`, by its
/// documented rule: among the steps with that code that are after `last_used`, the one
/// nearest `centre` wins, the earlier one on a tie. Indices and `last_used` are relative to
/// the first printed step.
fn expected_step(codes: &[String], i: usize, centre: u64, last_used: Option<i128>) -> Option<u64> {
    (0u64..)
        .zip(codes)
        .filter(|(j, code)| **code == codes[i] && last_used.is_none_or(|u| i128::from(*j) > u))
        .map(|(j, _)| j)
        .min_by_key(|&j| (j.abs_diff(centre), j))
}

/// The key argument(s): hex (with a check that `from_hex` agrees) or, half the time,
/// `--base32` with our own encoding, so oathtool's decoder checks our encoder.
fn key_args(rng: &mut Rng, key: &[u8], secret: &Secret) -> Vec<String> {
    if rng.range(0, 1) == 0 {
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let parsed = Secret::from_hex(&hex).expect("hex of a valid key");
        assert_eq!(parsed.expose(), key, "from_hex({hex})");
        vec![hex]
    } else {
        vec!["--base32".to_owned(), secret.to_base32().to_string()]
    }
}

fn context(rng: &Rng, case: usize, args: &[String]) -> String {
    format!(
        "case {case} (replay: {SEED_VAR}={:#018x}): oathtool {}",
        rng.seed,
        args.join(" ")
    )
}

/// Runs oathtool and returns the `window + 1` codes it prints, checking their form.
fn oathtool(args: &[String], ctx: &str, digits: u32, window: u64) -> Vec<String> {
    let output = match Command::new("oathtool").args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "oathtool is not installed, and this test compares sshield-otp against it: \
             apt-get install oathtool ({e})"
        ),
        Err(e) => panic!("cannot run oathtool: {e}"),
    };
    assert!(
        output.status.success(),
        "{ctx}: {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let codes: Vec<String> = String::from_utf8(output.stdout)
        .expect("oathtool prints ASCII")
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len() as u64, window + 1, "{ctx}: {codes:?}");
    for code in &codes {
        assert!(
            code.len() == digits as usize && code.bytes().all(|b| b.is_ascii_digit()),
            "{ctx}: unexpected output {code:?}"
        );
    }
    codes
}

/// SplitMix64: tiny, fine for test cases, and any seed (even 0) works.
struct Rng {
    seed: u64,
    state: u64,
}

impl Rng {
    /// Seeded from `SSHIELD_OATHTOOL_SEED` (decimal or 0x-hex) to replay a failure, else from
    /// the OS. The seed is printed now and repeated in every failure message.
    fn from_env_or_os() -> Self {
        let seed = match std::env::var(SEED_VAR) {
            Ok(text) => {
                let text = text.trim();
                match text.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => text.parse(),
                }
                .unwrap_or_else(|e| panic!("{SEED_VAR}={text:?}: {e}"))
            }
            Err(_) => {
                let mut bytes = [0u8; 8];
                getrandom::getrandom(&mut bytes).expect("OS random source");
                u64::from_le_bytes(bytes)
            }
        };
        eprintln!("{SEED_VAR}={seed:#018x}");
        Self { seed, state: seed }
    }

    fn next(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `low..=high` (the modulo bias is irrelevant here).
    fn range(&mut self, low: u64, high: u64) -> u64 {
        match (high - low).checked_add(1) {
            Some(span) => low + self.next() % span,
            None => self.next(),
        }
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.range(0, items.len() as u64 - 1) as usize]
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}
