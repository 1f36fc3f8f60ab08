//! A whole login through the store: `Engine::decide` = lock, read, verify and, when the code
//! is good, the new login state written in place into one slot of the user's `.USER.state`
//! and `fdatasync`ed (docs/store.md).
//!
//! Run: `cargo bench -p sshield-core --bench store`, or `scripts/bench` for the table in
//! `docs/benchmarks.md`. The store lives in a fresh 0700 directory under `$SSHIELD_BENCH_DIR`
//! (default: the system temp dir), so put that on the file system the real store would use.
//! Benchmark ids:
//!
//! - `decide/accept`: a correct TOTP code (SHA-1, ±1), the user alone in the store. `now`
//!   moves on one period per iteration, so every code is fresh and is written as used. (The
//!   user's first login, which creates the state file, happens during the warm-up.)
//! - `decide/wrong`: a wrong code for a user who has logged in before: lock, read, verify,
//!   the replay check and the backup codes, and no write.
//! - `decide-users/accept/<N>`, `decide-users/wrong/<N>`: the same with N other users
//!   enrolled in the same directory. A login touches only its own files, so neither should
//!   grow with N; `wrong` has no fsync, so it shows a change hidden by fsync noise.
//! - `fsync/rewrite`: rewrite a record-sized part of a file in place and `fdatasync` it: one
//!   flush at its cheapest, with no block or inode to allocate. What a login's write is, and
//!   the floor under `decide/accept`.
//! - `fsync/new-file`: create a record-sized file, write it and `fsync` it: the first of the
//!   two fsyncs a change of provisioning does (and the only one pam_oath and
//!   google-authenticator do), which must also commit the new inode and its blocks.
//! - `fsync/dir`: rename a file within the directory and `fsync` the directory: the second.
//! - `fsync/write-rename`: a record rewrite's I/O without sshield: create a temp file, write,
//!   `fsync`, rename over the old one, `fsync` the directory (what a login did before the
//!   state file).
//!
//! The groups use flat sampling with 30 samples: an iteration takes up to milliseconds, and
//! fsync latency on a shared disk varies with what else is being written. Give them a few
//! seconds of warm-up (`scripts/bench` uses 3 s): on a VM the first fsyncs after an idle
//! spell are several times slower than the steady state.
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use criterion::measurement::WallTime;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkGroup, BenchmarkId, Criterion,
    SamplingMode,
};
use sshield_core::config::Policy;
use sshield_core::provision::{enroll, Enrollment, DEFAULT_AUTHENTICATOR};
use sshield_core::{
    Account, Attempt, Caller, Engine, RecordStore, Response, TokenKind, UnixTime, UserName,
};
use sshield_otp::{totp, Algorithm, Digits, Period, Secret, TotpParams};
use tempfile::TempDir;

/// When everyone was enrolled; logins start one period later.
const ENROLLED: u64 = 1_700_000_000;
const PERIOD: u64 = 30;
/// The user whose logins are timed.
const USER: &str = "alice";
const OTHER_USERS: [usize; 3] = [1, 1_000, 10_000];

/// A fresh 0700 directory under `$SSHIELD_BENCH_DIR` or the system temp dir.
fn temp_dir() -> TempDir {
    let parent = std::env::var_os("SSHIELD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix("sshield-bench.")
        .tempdir_in(&parent)
        .expect("create a temp dir (is $SSHIELD_BENCH_DIR writable?)");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).expect("chmod 700");
    dir
}

/// Enrolls `user` with an active SHA-1 TOTP authenticator, as `sshield enroll --activate`
/// does, and returns its secret.
fn enroll_user(store: &RecordStore, user: &str) -> Secret {
    let enrolled = enroll(
        store,
        Enrollment {
            user: UserName::new(user).expect("valid user name"),
            name: DEFAULT_AUTHENTICATOR.to_owned(),
            kind: TokenKind::Totp,
            algorithm: Algorithm::Sha1,
            digits: Digits::SIX,
            period: Period::THIRTY,
            counter: 0,
            secret: None,
            activate: true,
            replace: false,
        },
        UnixTime(ENROLLED),
    )
    .expect("enroll");
    enrolled.authenticator.secret
}

/// A store with `USER` enrolled, and the user's authenticator app.
struct Login {
    store: RecordStore,
    engine: Engine,
    app: App,
}

/// What the user's app knows, and the time of their last attempt.
struct App {
    secret: Secret,
    params: TotpParams,
    now: u64,
}

impl App {
    /// The next period and the code the app shows then.
    fn next_code(&mut self) -> (UnixTime, Response) {
        self.now += PERIOD;
        let code = totp(&self.secret, &self.params, self.now);
        (UnixTime(self.now), Response::new(code.as_str()))
    }
}

impl Login {
    fn new(dir: &Path) -> Self {
        let store = RecordStore::new(dir.join("users"));
        let secret = enroll_user(&store, USER);
        Self {
            engine: Engine::with_store(store.clone(), Policy::default()),
            store,
            app: App {
                secret,
                params: TotpParams::default(),
                now: ENROLLED,
            },
        }
    }

    fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Times accepted logins, each with the next period's code (made outside the timing).
    fn bench_accept(&mut self, b: &mut criterion::Bencher<'_>) {
        let Self { engine, app, .. } = self;
        b.iter_batched(
            || app.next_code(),
            |(now, response)| {
                // Not a timing check: a refusal would mean the write was never timed.
                assert!(
                    decide_one(engine, now, &response),
                    "a fresh code was refused"
                );
            },
            BatchSize::SmallInput,
        );
    }

    /// Times wrong codes from a user who has just logged in (so the replay check runs too):
    /// lock, read, two window checks, the backup codes; nothing is written.
    fn bench_wrong(&mut self, b: &mut criterion::Bencher<'_>) {
        let (now, response) = self.app.next_code();
        assert!(decide_one(&self.engine, now, &response));
        let window: Vec<_> = (now.0 - PERIOD..=now.0 + PERIOD)
            .step_by(PERIOD as usize)
            .map(|t| totp(&self.app.secret, &self.app.params, t))
            .collect();
        let wrong = (0u32..)
            .map(|n| format!("{n:06}"))
            .find(|typed| window.iter().all(|code| !code.matches(typed)))
            .map(|typed| Response::new(&typed))
            .expect("some 6-digit code is wrong");
        b.iter(|| assert!(!decide_one(&self.engine, black_box(now), black_box(&wrong))));
    }
}

/// A benchmark group for I/O-bound benchmarks (see the top of this file).
fn io_group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat).sample_size(30);
    group
}

/// One `Engine::decide` for `USER`; true if allowed.
fn decide_one(engine: &Engine, now: UnixTime, response: &Response) -> bool {
    let attempt = Attempt {
        caller: &Caller::new(Account::resolve(USER), "sshd"),
        response,
        now,
    };
    engine.decide(black_box(&attempt)).is_allow()
}

fn decide(c: &mut Criterion) {
    let dir = temp_dir();
    let mut login = Login::new(dir.path());

    let mut group = io_group(c, "decide");
    group.bench_function("accept", |b| login.bench_accept(b));

    group.bench_function("wrong", |b| login.bench_wrong(b));
    group.finish();
}

fn decide_users(c: &mut Criterion) {
    let dir = temp_dir();
    let mut login = Login::new(dir.path());
    let store = login.store().clone();
    let mut enrolled = 0;

    let mut group = io_group(c, "decide-users");
    for others in OTHER_USERS {
        // Grow the same store: 1, then 1 000, then 10 000 others, each with its record and
        // lock file, both created the way `sshield enroll` creates them.
        while enrolled < others {
            enrolled += 1;
            enroll_user(&store, &format!("user{enrolled:05}"));
        }
        group.bench_with_input(BenchmarkId::new("accept", others), &others, |b, _| {
            login.bench_accept(b)
        });
        // Without the fsyncs, whose noise would hide a lookup that grew with the directory.
        group.bench_with_input(BenchmarkId::new("wrong", others), &others, |b, _| {
            login.bench_wrong(b)
        });
    }
    group.finish();
}

fn fsync(c: &mut Criterion) {
    let dir = temp_dir();
    let path = dir.path();
    // As many bytes as a real record: one authenticator and a set of backup codes.
    let login = Login::new(path);
    let user = UserName::new(USER).expect("valid user name");
    let record_len = fs::read(login.store().record_path(&user))
        .expect("read the record")
        .len();
    let bytes = vec![b'x'; record_len];
    let open_new = |p: &Path| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(p)
            .expect("create file")
    };

    let mut group = io_group(c, "fsync");
    let file = open_new(&path.join("file"));
    group.bench_function("rewrite", |b| {
        b.iter(|| {
            file.write_all_at(black_box(&bytes), 0).expect("write");
            file.sync_data().expect("fdatasync file");
        })
    });

    let new_files = path.join("new");
    fs::create_dir(&new_files).expect("create dir");
    let mut n = 0u64;
    group.bench_function("new-file", |b| {
        b.iter(|| {
            n += 1;
            let mut f = open_new(&new_files.join(n.to_string()));
            f.write_all(black_box(&bytes)).expect("write");
            f.sync_all().expect("fsync file");
        })
    });

    let (a, z) = (path.join("a"), path.join("z"));
    drop(open_new(&a));
    let dir_handle = File::open(path).expect("open dir");
    let mut flip = false;
    group.bench_function("dir", |b| {
        b.iter(|| {
            let (from, to) = if flip { (&z, &a) } else { (&a, &z) };
            flip = !flip;
            fs::rename(from, to).expect("rename");
            dir_handle.sync_all().expect("fsync dir");
        })
    });

    let (tmp, record) = (path.join(".record.tmp"), path.join("record"));
    group.bench_function("write-rename", |b| {
        b.iter(|| {
            let mut f = open_new(&tmp);
            f.write_all(black_box(&bytes)).expect("write");
            f.sync_all().expect("fsync file");
            fs::rename(&tmp, &record).expect("rename");
            File::open(path)
                .and_then(|d| d.sync_all())
                .expect("fsync dir");
        })
    });
    group.finish();
}

// The reference fsyncs first, then the logins they bound, so that both see similar load.
criterion_group!(benches, fsync, decide, decide_users);
criterion_main!(benches);
