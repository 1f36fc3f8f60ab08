//! Crash-kill: the real `sshield` binary killed with SIGKILL at random moments of every kind of
//! record and state update, then the store checked (issue 13).
//!
//! Each round starts one command (a login through `sshield verify` with an HOTP code or a
//! backup code, `enroll --replace` with a fresh secret, `import users-oath --replace`,
//! `backup-codes`, `remove`), waits a random time within that command's usual run time, and
//! sends SIGKILL. Only rounds where the signal really ended the process count as kills. After
//! each one:
//!
//! - every record loads;
//! - the touched record is its old content or the new one;
//! - a code the killed login may have used, once accepted, is refused ever after, and so is
//!   every earlier accepted code of the current secret that is tried again;
//! - no leftover file blocks a login (a login never fails with an error, exit 2);
//! - leftover temporary files are counted, and the next completed write of that user leaves
//!   none of them, and no file in the store holds a secret that was retired.
//!
//! The seed is printed; `SSHIELD_CRASH_SEED=N` replays a run, `SSHIELD_CRASH_KILLS=N` changes
//! the number of kills (at least 1 000 by default). Codes come from oathtool, never from
//! sshield's own code.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Child;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{oathtool, Sandbox};
use sshield_core::record::UserRecord;
use sshield_core::store::RecordStore;
use sshield_core::UserName;

/// Rate limiting off: a refused code must not lock the user or sleep a second.
const CONFIG: &str = "store = \"users\"\n[rate_limit]\nenabled = false\n";
const ENROLLED: [&str; 4] = ["erin", "eve", "ezra", "emma"];
const IMPORTED: [&str; 2] = ["ivan", "iris"];

/// SplitMix64: a seeded, reproducible sequence; ten lines, no crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// 20 random bytes as base32 (RFC 4648, no padding needed for 20 bytes).
    fn secret(&mut self) -> (String, String) {
        let bytes: Vec<u8> = (0..20).map(|_| self.next() as u8).collect();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut b32 = String::new();
        for chunk in bytes.chunks(5) {
            let n = chunk.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
            for i in (0..8).rev() {
                b32.push(alphabet[((n >> (5 * i)) & 31) as usize] as char);
            }
        }
        let hex = bytes.iter().map(|b| format!("{b:02x}")).collect();
        (b32, hex)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Login,
    Backup,
    Enroll,
    Import,
    BackupCodes,
    Remove,
}

/// What the test knows about one user.
#[derive(Default)]
struct Known {
    /// Backup codes from the last `backup-codes` that completed, and the hashes they go with.
    backup_codes: Vec<String>,
    backup_hashes: Vec<String>,
    /// (secret, code) pairs accepted so far.
    accepted: Vec<(String, String)>,
    /// Every secret this user had that was since replaced or removed.
    retired: Vec<String>,
}

struct Crash {
    sb: Sandbox,
    store: RecordStore,
    rng: Rng,
    known: BTreeMap<String, Known>,
    /// Typical run time of each operation, to aim the kills.
    spans: BTreeMap<Op, Duration>,
    kills: BTreeMap<Op, u32>,
    leftovers: u32,
    leftovers_with_secret: u32,
    accepted_after_kill: u32,
}

impl Crash {
    fn record(&self, user: &str) -> Option<UserRecord> {
        let name = UserName::new(user).unwrap();
        self.store
            .load(&name)
            .unwrap_or_else(|e| panic!("{user}'s record does not load after a kill: {e}"))
    }

    /// The current secret and the HOTP counter and digits of its next code.
    fn hotp(&self, user: &str) -> Option<(String, u64, u32)> {
        let r = self.record(user)?;
        let a = r.authenticators.first()?;
        let next = r
            .usage
            .tokens
            .get(&a.name)
            .and_then(|t| t.next_counter)
            .unwrap_or(a.counter.unwrap_or(0));
        Some((a.secret.to_base32().to_string(), next, a.digits.get()))
    }

    fn code(secret: &str, counter: u64, digits: u32) -> String {
        oathtool(
            secret,
            &[
                "--hotp",
                &format!("--digits={digits}"),
                "-c",
                &counter.to_string(),
            ],
        )
        .remove(0)
    }

    fn start(&self, args: &[&str], stdin: Option<&str>) -> Child {
        let mut cmd = self.sb.command();
        cmd.arg("--config").arg(self.sb.config()).args(args);
        common::spawn_command(cmd, stdin)
    }

    /// Runs to completion; the exit code.
    fn run(&self, args: &[&str], stdin: Option<&str>) -> common::Output {
        let mut cmd = self.sb.command();
        cmd.arg("--config").arg(self.sb.config()).args(args);
        common::run_command(cmd, stdin)
    }

    /// Starts the command, kills it after a random part of its usual run time. `Some(code)`
    /// if it finished first, `None` if the kill ended it.
    fn kill_during(&mut self, op: Op, args: &[&str], stdin: Option<&str>) -> Option<i32> {
        let span = self.spans[&op];
        let wait = Duration::from_micros(self.rng.below(span.as_micros() as u64 + 1));
        let mut child = self.start(args, stdin);
        sleep(wait);
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if out.status.signal() == Some(9) {
            *self.kills.entry(op).or_default() += 1;
            None
        } else {
            Some(out.status.code().unwrap_or(-1))
        }
    }

    /// Temporary files of `user` in the store.
    fn temps(&self, user: &str) -> Vec<String> {
        let prefix = format!(".{user}.tmp");
        fs::read_dir(self.store.dir())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n == &prefix || n.starts_with(&format!("{prefix}.")))
            .collect()
    }

    /// Counts `user`'s leftovers (after a kill).
    fn count_leftovers(&mut self, user: &str) -> usize {
        let temps = self.temps(user);
        for t in &temps {
            self.leftovers += 1;
            let text = fs::read(self.store.dir().join(t)).unwrap_or_default();
            if String::from_utf8_lossy(&text).contains("secret =") {
                self.leftovers_with_secret += 1;
            }
        }
        temps.len()
    }

    /// After a completed write of `user`: no temporary file of theirs, and no retired secret
    /// in any file of the store.
    #[track_caller]
    fn assert_clean(&self, user: &str, after: &str) {
        let temps = self.temps(user);
        assert!(
            temps.is_empty(),
            "after {after} of {user}, temporary files are left: {temps:?}"
        );
        let retired = &self.known[user].retired;
        for path in files_under(self.store.dir()) {
            let text = String::from_utf8_lossy(&fs::read(&path).unwrap_or_default()).into_owned();
            for s in retired {
                assert!(
                    !text.contains(s.as_str()),
                    "after {after} of {user}, {} still holds the retired secret {s}",
                    path.display()
                );
            }
        }
    }

    /// A login with `code` to completion: 0 accepted, 1 refused; never an error.
    #[track_caller]
    fn login(&self, user: &str, code: &str) -> bool {
        let out = self.run(&["verify", user, "-"], Some(code));
        match out.status {
            0 => true,
            1 => false,
            _ => panic!(
                "a login of {user} failed with an error after a kill (a leftover blocks it?): {}",
                out.stderr
            ),
        }
    }

    /// A round of a login with `code` of `secret`, killed.
    fn login_round(&mut self, op: Op, user: &str, secret: &str, code: &str) {
        let before = self.record(user).expect("enrolled");
        let killed = self.kill_during(op, &["verify", user, "-"], Some(code));
        let after = self.record(user).expect("a login never removes a record");
        assert_eq!(
            provisioning(&after),
            provisioning(&before),
            "a login changed {user}'s provisioning"
        );
        let (g0, g1) = (before.usage.generation, after.usage.generation);
        assert!(
            g1 == g0 || g1 == g0 + 1,
            "{user}'s login state went from generation {g0} to {g1}"
        );
        match killed {
            Some(2) | Some(-1) => panic!("a login of {user} failed with an error"),
            Some(status) => {
                if status == 0 {
                    self.accept(user, secret, code);
                }
            }
            None => {
                self.count_leftovers(user);
                // The killed login may or may not have used the code. Once accepted, never again.
                if self.login(user, code) {
                    self.accepted_after_kill += 1;
                    self.accept(user, secret, code);
                }
            }
        }
        assert!(
            !self.login(user, code),
            "{user}'s code {code} was accepted again after a kill"
        );
        // And an older accepted code of the same secret, picked at random.
        let old: Vec<String> = self.known[user]
            .accepted
            .iter()
            .filter(|(s, _)| s == secret)
            .map(|(_, c)| c.clone())
            .collect();
        if !old.is_empty() {
            let c = &old[self.rng.below(old.len() as u64) as usize];
            assert!(
                !self.login(user, c),
                "{user}'s old code {c} was accepted again"
            );
        }
        // Used or not, a backup code tried is not offered again.
        let k = self.known.get_mut(user).unwrap();
        k.backup_codes.retain(|c| c != code);
    }

    fn accept(&mut self, user: &str, secret: &str, code: &str) {
        let k = self.known.get_mut(user).unwrap();
        k.accepted.push((secret.to_owned(), code.to_owned()));
        k.backup_codes.retain(|c| c != code);
    }

    /// A provisioning round: `args` killed, then the record must be `before` or satisfy
    /// `is_new`; then a completed rewrite must leave nothing behind.
    fn provisioning_round(
        &mut self,
        op: Op,
        user: &str,
        args: &[&str],
        stdin: Option<&str>,
        is_new: impl Fn(Option<&UserRecord>) -> bool,
    ) -> Option<i32> {
        let before = self.record(user);
        let killed = self.kill_during(op, args, stdin);
        let after = self.record(user);
        let same = after.as_ref().map(provisioning) == before.as_ref().map(provisioning);
        assert!(
            same || is_new(after.as_ref()),
            "after a kill of {args:?}, {user}'s record is neither the old nor the new one"
        );
        if killed.is_none() {
            self.count_leftovers(user);
        }
        killed
    }

    /// Re-provisions `user` to completion with a fresh secret (enroll, or import for an
    /// imported user), then checks nothing is left.
    fn reprovision(&mut self, user: &str) {
        let (b32, hex) = self.rng.secret();
        self.retire_current(user);
        if IMPORTED.contains(&user) {
            let file = self.oath_file(user, &hex);
            self.run(&["import", "users-oath", &file, "--replace"], None)
                .expect(0);
        } else {
            self.run(&enroll_args(user), Some(&b32)).expect(0);
        }
        self.assert_clean(user, "a completed re-provisioning");
    }

    /// A users.oath file with one HOTP line for `user`.
    fn oath_file(&self, user: &str, hex: &str) -> String {
        let file = self.sb.path().join(format!("{user}.oath"));
        fs::write(&file, format!("HOTP {user} - {hex}\n")).unwrap();
        file.to_str().unwrap().to_owned()
    }

    /// After a completed `remove`: nothing named for `user` is left, and no secret of theirs.
    #[track_caller]
    fn assert_gone(&self, user: &str) {
        assert!(self.record(user).is_none(), "{user} was not removed");
        let dir = self.store.dir();
        for path in [
            dir.join(format!(".{user}.state")),
            dir.join(format!(".{user}.lock")),
            dir.join(".passed").join(user),
        ] {
            assert!(
                fs::symlink_metadata(&path).is_err(),
                "{} is left after removing {user}",
                path.display()
            );
        }
        self.assert_clean(user, "remove");
    }

    fn retire_current(&mut self, user: &str) {
        if let Some((secret, _, _)) = self.hotp(user) {
            self.known.get_mut(user).unwrap().retired.push(secret);
        }
    }
}

fn enroll_args(user: &str) -> Vec<&str> {
    vec![
        "enroll",
        user,
        "--hotp",
        "--digits",
        "8",
        "--secret",
        "-",
        "--no-confirm",
        "--replace",
    ]
}

/// The provisioning half of a record (what logins never change), comparable.
fn provisioning(r: &UserRecord) -> String {
    let mut r = r.clone();
    r.usage = Default::default();
    r.version = 0;
    toml::to_string(&r).unwrap()
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn kill_9_at_random_moments_loses_nothing_replays_nothing_leaves_nothing() {
    let seed = std::env::var("SSHIELD_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let target: u32 = std::env::var("SSHIELD_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    println!("crash-kill seed {seed} (replay with SSHIELD_CRASH_SEED={seed})");
    let sb = Sandbox::with_config(CONFIG);
    let store = RecordStore::new(sb.store());
    let mut t = Crash {
        sb,
        store,
        rng: Rng(seed),
        known: BTreeMap::new(),
        spans: BTreeMap::new(),
        kills: BTreeMap::new(),
        leftovers: 0,
        leftovers_with_secret: 0,
        accepted_after_kill: 0,
    };

    // Enroll everyone to completion, timing each kind of command once to aim the kills.
    let timed = |t: &Crash, args: &[&str], stdin: Option<&str>| {
        let start = Instant::now();
        t.run(args, stdin).expect(0);
        start.elapsed()
    };
    for user in ENROLLED {
        t.known.insert(user.to_owned(), Known::default());
        let (b32, _) = t.rng.secret();
        let span = timed(&t, &enroll_args(user), Some(&b32));
        t.spans.insert(Op::Enroll, span);
        t.spans.insert(Op::Remove, span);
    }
    for user in IMPORTED {
        t.known.insert(user.to_owned(), Known::default());
        let (_, hex) = t.rng.secret();
        let file = t.oath_file(user, &hex);
        let span = timed(&t, &["import", "users-oath", &file, "--replace"], None);
        t.spans.insert(Op::Import, span);
    }
    let span = timed(&t, &["backup-codes", "erin", "--json"], None);
    t.spans.insert(Op::BackupCodes, span);
    let (secret, next, digits) = t.hotp("erin").unwrap();
    let code = Crash::code(&secret, next, digits);
    let start = Instant::now();
    assert!(t.login("erin", &code));
    t.spans.insert(Op::Login, start.elapsed());
    t.spans.insert(Op::Backup, start.elapsed());
    t.accept("erin", &secret, &code);
    println!("run times: {:?}", t.spans);

    let users: Vec<&str> = ENROLLED.iter().chain(&IMPORTED).copied().collect();
    let started = Instant::now();
    let mut rounds = 0u32;
    while t.kills.values().sum::<u32>() < target {
        rounds += 1;
        let user = users[t.rng.below(users.len() as u64) as usize];
        let imported = IMPORTED.contains(&user);
        let pick = t.rng.below(100);
        let op = match pick {
            0..=39 => Op::Login,
            40..=49 => Op::Backup,
            50..=69 if imported => Op::Import,
            50..=69 => Op::Enroll,
            70..=84 => Op::BackupCodes,
            _ => Op::Remove,
        };
        if t.record(user).is_none() {
            // Removed (by a kill that landed after the removal): provision again, completed,
            // which must clean what the killed remove left.
            t.reprovision(user);
            t.known.get_mut(user).unwrap().backup_codes.clear();
        }
        match op {
            Op::Login => {
                let (secret, next, digits) = t.hotp(user).unwrap();
                let code = Crash::code(&secret, next, digits);
                t.login_round(op, user, &secret, &code);
            }
            Op::Backup => {
                let hashes = t.record(user).unwrap().backup.hashes.clone();
                let k = &t.known[user];
                if k.backup_codes.is_empty() || k.backup_hashes != hashes {
                    continue;
                }
                let code = k.backup_codes[0].clone();
                let secret = t.hotp(user).unwrap().0;
                t.login_round(op, user, &secret, &code);
            }
            Op::Enroll | Op::Import => {
                let (b32, hex) = t.rng.secret();
                let file = t.oath_file(user, &hex);
                let args: Vec<&str> = if op == Op::Enroll {
                    enroll_args(user)
                } else {
                    vec!["import", "users-oath", &file, "--replace"]
                };
                let stdin = (op == Op::Enroll).then_some(b32.as_str());
                let old = t.hotp(user).map(|h| h.0);
                let fresh = b32.clone();
                let killed = t.provisioning_round(op, user, &args, stdin, |r| {
                    r.and_then(|r| r.authenticators.first())
                        .is_some_and(|a| *a.secret.to_base32() == fresh)
                });
                if let Some(status) = killed {
                    assert_eq!(status, 0, "{args:?} failed after earlier kills");
                }
                if t.hotp(user).map(|h| h.0) != old {
                    if let Some(old) = old {
                        t.known.get_mut(user).unwrap().retired.push(old);
                    }
                }
                if killed.is_some() {
                    t.assert_clean(user, "a completed re-provisioning");
                }
            }
            Op::BackupCodes => {
                let args = ["backup-codes", user, "--json"];
                let before = t.record(user).unwrap();
                let mut cmd_out = None;
                let killed = t.provisioning_round(op, user, &args, None, |r| {
                    r.is_some_and(|r| {
                        r.backup.hashes != before.backup.hashes
                            && r.authenticators.len() == before.authenticators.len()
                    })
                });
                if killed.is_some() {
                    // Finished before the kill: ask again, completed, to learn the codes.
                    let out = t.run(&args, None);
                    out.expect(0);
                    cmd_out = Some(out.json());
                    t.assert_clean(user, "backup-codes");
                }
                if let Some(json) = cmd_out {
                    let codes = json["backup_codes"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(|c| c.as_str().map(str::to_owned))
                                .collect()
                        })
                        .unwrap_or_default();
                    let hashes = t.record(user).unwrap().backup.hashes.clone();
                    let k = t.known.get_mut(user).unwrap();
                    k.backup_codes = codes;
                    k.backup_hashes = hashes;
                }
            }
            Op::Remove => {
                let old = t.hotp(user).map(|h| h.0);
                let killed =
                    t.provisioning_round(op, user, &["remove", user], None, |r| r.is_none());
                if t.record(user).is_none() {
                    if let Some(old) = old {
                        t.known.get_mut(user).unwrap().retired.push(old);
                    }
                }
                if killed.is_some() {
                    t.assert_gone(user);
                }
            }
        }
        // Every record loads.
        for u in &users {
            t.record(u);
        }
        // A user with a leftover gets a completed re-provisioning now, which must clean it.
        if !t.temps(user).is_empty() && t.record(user).is_some() {
            t.reprovision(user);
        }
    }
    // The end: remove everyone, completed; nothing of theirs may stay.
    for user in &users {
        t.retire_current(user);
        if t.record(user).is_some() {
            t.run(&["remove", user], None).expect(0);
        } else {
            // Removed by a kill: a completed enrollment and removal must clean up after it.
            t.reprovision(user);
            t.retire_current(user);
            t.run(&["remove", user], None).expect(0);
        }
        t.assert_gone(user);
    }
    let left: Vec<_> = files_under(t.store.dir())
        .into_iter()
        .map(|p| p.strip_prefix(t.store.dir()).unwrap().display().to_string())
        .filter(|p| !p.starts_with(".sources") && p != ".old-temps-removed")
        .collect();
    println!(
        "{} kills in {rounds} rounds ({:?}), {:.1?}; leftover temporary files {} ({} holding a \
         secret); codes accepted by the login after a killed one {}; files after removing \
         everyone: {left:?}",
        t.kills.values().sum::<u32>(),
        t.kills,
        started.elapsed(),
        t.leftovers,
        t.leftovers_with_secret,
        t.accepted_after_kill,
    );
    assert!(
        left.is_empty(),
        "files left in the store after every user was removed: {left:?}"
    );
}
