//! The record store as an admin meets it: files with the wrong mode, owner or type are refused
//! with a message naming the path and the fix; a broken record names its file and line and
//! harms no other user; and a login whose new state cannot be written is refused.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use common::{is_root, name, outcome, store_error, totp, TestStore, T};
use sshield_core::config::Policy;
use sshield_core::provision;
use sshield_core::{Engine, RecordStore, Response, StoreError, UnixTime};

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// Asserts `text` names `path` and contains `fix`.
#[track_caller]
fn assert_names(text: &str, path: &Path, fix: &str) {
    assert!(
        text.contains(&path.display().to_string()),
        "message should name {}: {text}",
        path.display()
    );
    assert!(text.contains(fix), "message should say {fix:?}: {text}");
}

#[test]
fn a_store_directory_open_to_others_is_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let code = phone.at(T);
    for mode in [0o755, 0o750, 0o701, 0o707] {
        chmod(s.dir(), mode);
        let text = store_error(&s.decide("alice", &code, T));
        assert_names(&text, s.dir(), &format!("chmod 700 {}", s.dir().display()));
        assert!(text.contains(&format!("{mode:04o}")), "{text}");
        // Enrolling refuses too, rather than adding secrets to an open directory.
        let e = provision::enroll(&s.store, totp("bob", "default"), UnixTime(T)).unwrap_err();
        assert_names(&e.to_string(), s.dir(), "chmod 700");
    }
    assert!(!s.path("bob").exists());
    chmod(s.dir(), 0o700);
    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");
}

#[test]
fn a_record_open_to_others_is_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let path = s.path("alice");
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    let code = phone.at(T);
    for mode in [0o644, 0o640, 0o604, 0o660] {
        chmod(&path, mode);
        let before = s.bytes("alice");
        let text = store_error(&s.decide("alice", &code, T));
        assert_names(&text, &path, &format!("chmod 600 {}", path.display()));
        let e = s.store.load(&name("alice")).unwrap_err();
        assert!(matches!(e, StoreError::Accessible { .. }), "{e:?}");
        assert_eq!(s.bytes("alice"), before);
    }
    chmod(&path, 0o600);
    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");
}

#[test]
fn a_record_that_is_a_symlink_is_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let path = s.path("alice");
    // The real record moved out of the store, and a link left in its place (mode 0600, right
    // owner: only the link itself is wrong).
    let elsewhere = s.root().join("alice-elsewhere.toml");
    fs::rename(&path, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
    let before = fs::read(&elsewhere).unwrap();

    let text = store_error(&s.decide("alice", &phone.at(T), T));
    assert_names(&text, &path, "symbolic link");
    let e = provision::enroll(&s.store, totp("alice", "spare"), UnixTime(T)).unwrap_err();
    assert_names(&e.to_string(), &path, "symbolic link");
    assert_eq!(
        fs::read(&elsewhere).unwrap(),
        before,
        "the target is untouched"
    );
    assert!(fs::symlink_metadata(&path)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_symlinked_lock_file_is_refused_and_its_target_never_created() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let lock = s.dir().join(".alice.lock");
    fs::remove_file(&lock).unwrap();
    // As root, following this would create (or lock) any file on the system.
    let victim = s.root().join("victim");
    std::os::unix::fs::symlink(&victim, &lock).unwrap();

    let text = store_error(&s.decide("alice", &phone.at(T), T));
    assert_names(&text, &lock, "symbolic link");
    assert!(!victim.exists());
}

#[test]
fn a_store_directory_that_is_a_symlink_or_missing_is_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let link = s.root().join("users-link");
    std::os::unix::fs::symlink(s.dir(), &link).unwrap();
    let engine = Engine::with_store(RecordStore::new(&link), Policy::default());
    let text = store_error(&common::decide(&engine, "alice", &phone.at(T), T));
    assert_names(&text, &link, "symbolic link");

    let missing = s.root().join("no-such-store");
    let engine = Engine::with_store(RecordStore::new(&missing), Policy::default());
    let text = store_error(&common::decide(&engine, "alice", &phone.at(T), T));
    assert_names(&text, &missing, "does not exist");
    assert!(!missing.exists(), "a login never creates the store");
}

#[test]
fn a_record_that_is_not_a_regular_file_or_too_big_is_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let path = s.path("alice");

    fs::remove_file(&path).unwrap();
    fs::create_dir(&path).unwrap();
    chmod(&path, 0o700);
    let text = store_error(&s.decide("alice", &phone.at(T), T));
    assert_names(&text, &path, "not a regular file");
    fs::remove_dir(&path).unwrap();

    fs::write(&path, vec![b'#'; 2 << 20]).unwrap();
    chmod(&path, 0o600);
    let text = store_error(&s.decide("alice", &phone.at(T), T));
    assert_names(&text, &path, "larger than");
}

#[test]
fn files_owned_by_someone_else_are_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let path = s.path("alice");
    let me = rustix::process::geteuid().as_raw();
    // Whoever runs the tests, everything the store made is theirs.
    for entry in fs::read_dir(s.dir()).unwrap() {
        let entry = entry.unwrap();
        assert_eq!(entry.metadata().unwrap().uid(), me, "{:?}", entry.path());
    }
    if !is_root() {
        eprintln!(
            "note: not root, so the owner refusals are not exercised (CI runs this test as root)"
        );
        return;
    }
    let code = phone.at(T);
    let before = s.bytes("alice");

    std::os::unix::fs::chown(&path, Some(12345), None).unwrap();
    let d = s.decide("alice", &code, T);
    let text = store_error(&d);
    assert_names(&text, &path, &format!("chown 0 {}", path.display()));
    assert!(text.contains("uid 12345"), "{text}");
    assert_eq!(s.bytes("alice"), before);
    std::os::unix::fs::chown(&path, Some(0), None).unwrap();

    std::os::unix::fs::chown(s.dir(), Some(12345), None).unwrap();
    let text = store_error(&s.decide("alice", &code, T));
    assert_names(&text, s.dir(), &format!("chown 0 {}", s.dir().display()));
    std::os::unix::fs::chown(s.dir(), Some(0), None).unwrap();

    // A lock file planted by another user is not trusted either.
    let lock = s.dir().join(".alice.lock");
    std::os::unix::fs::chown(&lock, Some(12345), None).unwrap();
    let text = store_error(&s.decide("alice", &code, T));
    assert_names(&text, &lock, "chown 0");
    std::os::unix::fs::chown(&lock, Some(0), None).unwrap();

    assert_eq!(outcome(&s.decide("alice", &code, T)), "allow");
}

/// Inserts `line` so that it becomes line `at` (1-based) of `path`.
fn insert_line(path: &Path, at: usize, line: &str) {
    let text = fs::read_to_string(path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.insert(at - 1, line);
    fs::write(path, lines.join("\n") + "\n").unwrap();
}

#[test]
fn a_broken_record_names_its_line_and_harms_no_one_else() {
    let s = TestStore::new();
    let alice = s.enroll("alice");
    let bob = s.enroll("bob");
    let path = s.path("alice");
    insert_line(&path, 5, "this line is not toml");
    let broken = s.bytes("alice");
    let at_line_5 = format!("{}:5:", path.display());

    let e = s.store.load(&name("alice")).unwrap_err();
    assert!(e.to_string().starts_with(&at_line_5), "{e}");

    // Every way of touching alice reports the same file and line, and changes nothing.
    let text = store_error(&s.decide("alice", &alice.at(T), T));
    assert!(text.starts_with(&at_line_5), "{text}");
    let user = name("alice");
    let errors = [
        provision::enroll(&s.store, totp("alice", "default"), UnixTime(T)).map(|_| ()),
        provision::renew_backup_codes(&s.store, &user, UnixTime(T)).map(|_| ()),
        provision::set_disabled(&s.store, &user, true).map(|_| ()),
        provision::remove(&s.store, &user, None),
        provision::confirm(
            &s.store,
            &user,
            None,
            &Response::new(&alice.at(T)),
            UnixTime(T),
            &Policy::default(),
        )
        .map(|_| ()),
    ];
    for e in errors {
        let text = e.unwrap_err().to_string();
        assert!(text.starts_with(&at_line_5), "{text}");
    }
    assert_eq!(
        s.bytes("alice"),
        broken,
        "the broken file is left as it was"
    );

    // Bob logs in as usual, and the store still lists both.
    assert_eq!(outcome(&s.decide("bob", &bob.at(T), T)), "allow");
    assert_eq!(outcome(&s.decide("bob", &bob.at(T), T)), "replayed");
    assert_eq!(s.store.users().unwrap(), vec![name("alice"), name("bob")]);
    assert_eq!(s.bytes("alice"), broken);
}

#[test]
fn bad_values_and_unknown_keys_in_a_record_name_their_line() {
    let s = TestStore::new();
    s.enroll("alice");
    let path = s.path("alice");
    let good = fs::read_to_string(&path).unwrap();
    let line_of = |needle: &str| good.lines().position(|l| l.starts_with(needle)).unwrap() + 1;

    let cases = [
        ("digits = 6", "digits = \"six\""),
        ("kind = \"totp\"", "kind = \"smoke-signal\""),
        ("algorithm = \"SHA1\"", "algorithm = \"MD5\""),
        ("secret = ", "secret = \"not base32!\""),
        ("active = true", "activ = true"),
        ("version = 2", "version = 3"),
    ];
    for (find, replace) in cases {
        let line = line_of(find);
        let broken: Vec<String> = good
            .lines()
            .map(|l| {
                if l.starts_with(find) {
                    replace.to_owned()
                } else {
                    l.to_owned()
                }
            })
            .collect();
        fs::write(&path, broken.join("\n") + "\n").unwrap();
        let text = s.store.load(&name("alice")).unwrap_err().to_string();
        assert!(
            text.starts_with(&format!("{}:{line}:", path.display())),
            "{replace:?} should be reported at line {line}: {text}"
        );
    }
    fs::write(&path, &good).unwrap();
    assert!(s.store.load(&name("alice")).is_ok());
}

#[test]
fn a_record_filed_under_another_name_is_refused() {
    let s = TestStore::new();
    let alice = s.enroll("alice");
    let mallory = s.path("mallory");
    fs::copy(s.path("alice"), &mallory).unwrap();
    chmod(&mallory, 0o600);
    let text = store_error(&s.decide("mallory", &alice.at(T), T));
    assert_names(&text, &mallory, "\"alice\"");
    assert!(text.contains("\"mallory\""), "{text}");
    // Alice's own code is still unused.
    assert_eq!(outcome(&s.decide("alice", &alice.at(T), T)), "allow");
}

/// The temporary file the store writes `user`'s new record to.
fn temp_path(s: &TestStore, user: &str) -> std::path::PathBuf {
    s.dir().join(format!(".{user}.tmp"))
}

/// Issue 13: before its fix, a writer killed between writing `.USER.tmp.PID` and its rename
/// left that file for good, a copy of the record with its secret, which outlived `remove` and
/// a re-provisioning. A login leaves them (it must not list the store); the first provisioning
/// write removes them all, another user's only under that user's lock, and marks the store
/// swept once none is left; `remove` removes everything of the user's.
#[test]
fn leftover_temp_files_go_with_the_next_provisioning_write_and_remove_leaves_nothing() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    s.enroll("alice.tmp");
    // As in a store from before the fix, which has no mark of a sweep.
    let swept = s.dir().join(".old-temps-removed");
    assert!(
        swept.exists(),
        "a store with no old file is marked at its first write"
    );
    fs::remove_file(&swept).unwrap();
    let copy = s.bytes("alice");
    let plant = |n: &str| {
        let path = s.dir().join(n);
        fs::write(&path, &copy).unwrap();
        chmod(&path, 0o600);
        path
    };
    let alices = [".alice.tmp.4242", ".alice.tmp.7", ".alice.tmp"].map(plant);
    // User `alice.tmp`'s, whose lock someone holds: an old writer may be at work on it.
    let busy = plant(".alice.tmp.tmp.7");
    let held = fs::File::open(s.dir().join(".alice.tmp.lock")).unwrap();
    held.lock().unwrap();
    // No temporary file of anyone's.
    let other = plant(".alice.tmp.7x");

    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    assert!(alices[0].exists(), "a login lists no directory");
    provision::renew_backup_codes(&s.store, &name("alice"), UnixTime(T)).unwrap();
    for path in &alices {
        assert!(
            !path.exists(),
            "{} outlived a provisioning write",
            path.display()
        );
    }
    assert!(busy.exists(), "removed under another process's lock");
    assert!(!swept.exists(), "marked swept with a file left");

    drop(held);
    provision::renew_backup_codes(&s.store, &name("alice"), UnixTime(T)).unwrap();
    assert!(
        !busy.exists(),
        "a dead writer's file outlived a provisioning write"
    );
    assert!(swept.exists());
    assert!(other.exists(), "{} is no temporary file", other.display());

    let leftover = plant(".alice.tmp");
    let marker = sshield_core::passed::Passed {
        at: T,
        service: "sshd".to_owned(),
        pid: 1,
        parent: 1,
    };
    sshield_core::passed::record(&s.store, &name("alice"), &marker).unwrap();
    provision::remove(&s.store, &name("alice"), None).unwrap();
    let gone = ["alice.toml", ".alice.state", ".alice.lock", ".passed/alice"];
    for path in gone.iter().map(|n| s.dir().join(n)).chain([leftover]) {
        assert!(!path.exists(), "{} is left after remove", path.display());
    }
    assert!(other.exists() && s.dir().join("alice.tmp.toml").exists());
    // Enrolling again, and logging in, works with the lock file made anew.
    let phone = s.enroll("alice");
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
}

#[test]
fn a_login_whose_state_cannot_be_written_is_refused_and_the_code_stays_unused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let code = phone.at(T);
    let before = s.bytes("alice");
    // Something sits where the new record would be written, so the write fails (a stand-in
    // for a full or read-only disk that works as root too, whom permissions do not stop).
    let blocker = temp_path(&s, "alice");
    fs::create_dir(&blocker).unwrap();

    // The first login makes alice's login-state file, through the same temporary file.
    let d = s.decide("alice", &code, T);
    let text = store_error(&d);
    assert_names(&text, &state_path(&s, "alice"), "cannot write");
    assert_eq!(s.bytes("alice"), before, "nothing was written");
    assert!(!state_path(&s, "alice").exists());
    let e = provision::renew_backup_codes(&s.store, &name("alice"), UnixTime(T)).unwrap_err();
    assert_names(&e.to_string(), &s.path("alice"), "cannot write");
    assert_eq!(s.bytes("alice"), before);

    fs::remove_dir(&blocker).unwrap();
    assert_eq!(
        outcome(&s.decide("alice", &code, T)),
        "allow",
        "the refused login did not use up the code"
    );
    assert_eq!(outcome(&s.decide("alice", &code, T)), "replayed");
}

#[test]
fn a_temp_file_left_by_a_crashed_writer_does_not_block_logins() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    // A writer died between creating its temp file and renaming it, and its pid was later
    // reused by this process (sshd forks one per connection; pids do come round again).
    let leftover = temp_path(&s, "alice");
    fs::write(&leftover, "version = 1\nuser = \"ali").unwrap();
    chmod(&leftover, 0o600);

    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    assert!(!leftover.exists());
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "replayed");
}

/// `user`'s login-state file.
fn state_path(s: &TestStore, user: &str) -> std::path::PathBuf {
    s.dir().join(format!(".{user}.state"))
}

#[test]
fn logins_update_the_state_file_in_place_and_leave_the_record_alone() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let record = s.bytes("alice");
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    let state = state_path(&s, "alice");
    let inode = fs::metadata(&state).unwrap().ino();
    assert_eq!(fs::metadata(&state).unwrap().mode() & 0o777, 0o600);
    for n in 1..5 {
        let t = T + 30 * n;
        assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "allow");
        assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "replayed");
    }
    assert_eq!(
        s.bytes("alice"),
        record,
        "a login rewrites only the state file"
    );
    assert_eq!(
        fs::metadata(&state).unwrap().ino(),
        inode,
        "written in place"
    );
    assert_eq!(
        s.record("alice").token_usage("default").last_step,
        Some(common::STEP + 4)
    );
}

#[test]
fn a_provisioning_change_carries_the_newest_login_state() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    let user = name("alice");
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    // A record rewrite (disable, enable) after the login must not bring back the state the
    // record held before it.
    provision::set_disabled(&s.store, &user, true).unwrap();
    provision::set_disabled(&s.store, &user, false).unwrap();
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "replayed");
    // Logins after the rewrite go to the state file again, and win over the record's copy.
    let t = T + 30;
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "allow");
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "replayed");
    // Removing the user removes both files, and enrolling the name again starts afresh.
    provision::remove(&s.store, &user, None).unwrap();
    assert!(!state_path(&s, "alice").exists() && !s.path("alice").exists());
}

#[test]
fn a_version_1_record_keeps_its_replay_state_and_moves_on() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    // The record as sshield 0.1 wrote it: version 1, the login state inline, no state file.
    let mut record = s.record("alice");
    record.version = 1;
    record.usage.generation = 0;
    fs::remove_file(state_path(&s, "alice")).unwrap();
    fs::write(s.path("alice"), toml::to_string(&record).unwrap()).unwrap();
    assert!(!String::from_utf8(s.bytes("alice"))
        .unwrap()
        .contains("generation"));

    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "replayed");
    let t = T + 30;
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "allow");
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "replayed");
    assert!(state_path(&s, "alice").exists());
    // The next provisioning change writes it as version 2.
    provision::set_disabled(&s.store, &name("alice"), false).unwrap();
    provision::renew_backup_codes(&s.store, &name("alice"), UnixTime(t)).unwrap();
    assert_eq!(s.record("alice").version, 2);
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "replayed");
}

/// Writes garbage into slot `index` (4 KiB each) of `user`'s state file, past its header.
fn damage_slot(s: &TestStore, user: &str, index: u64) {
    use std::os::unix::fs::FileExt;
    let file = fs::OpenOptions::new()
        .write(true)
        .open(state_path(s, user))
        .unwrap();
    file.write_all_at(b"torn write", index * 4096 + 40).unwrap();
}

#[test]
fn a_torn_slot_is_skipped_and_two_are_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    // Two logins: one copy in each slot, the newest (generation 3) in slot 1.
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    let t = T + 30;
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "allow");
    // A crash while the next login wrote slot 0 leaves it torn: the newest copy still counts.
    damage_slot(&s, "alice", 0);
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "replayed");
    let t = T + 60;
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "allow");
    assert_eq!(outcome(&s.decide("alice", &phone.at(t), t)), "replayed");
    // Both copies damaged is no crash: refused, naming the file, never read as "no state".
    damage_slot(&s, "alice", 0);
    damage_slot(&s, "alice", 1);
    let text = store_error(&s.decide("alice", &phone.at(T + 90), T + 90));
    assert_names(&text, &state_path(&s, "alice"), "damaged");
    assert!(s.store.load(&name("alice")).is_err());
}

#[test]
fn a_state_file_open_to_others_or_a_symlink_is_refused() {
    let s = TestStore::new();
    let phone = s.enroll("alice");
    assert_eq!(outcome(&s.decide("alice", &phone.at(T), T)), "allow");
    let state = state_path(&s, "alice");
    chmod(&state, 0o644);
    let text = store_error(&s.decide("alice", &phone.at(T + 30), T + 30));
    assert_names(&text, &state, "chmod 600");
    chmod(&state, 0o600);
    let elsewhere = s.root().join("elsewhere.state");
    fs::rename(&state, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &state).unwrap();
    let text = store_error(&s.decide("alice", &phone.at(T + 30), T + 30));
    assert_names(&text, &state, "symbolic link");
}
