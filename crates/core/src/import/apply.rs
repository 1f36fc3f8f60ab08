//! Writing an import plan into the record store: every user is checked first, and only if
//! all of them can be imported is anything written.

use std::collections::HashMap;
use std::fmt;

use crate::backup::BackupCodes;
use crate::record::{Authenticator, TokenKind, TokenUsage, UserRecord};
use crate::store::{Change, RecordStore};
use crate::time::UnixTime;
use crate::username::UserName;

use super::error::{Conflict, ConflictKind, ImportError};
use super::plan::{ImportPlan, ImportedUser};

/// What an import did, user by user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// One entry per imported user, in plan order.
    pub users: Vec<UserReport>,
}

impl ImportReport {
    /// How many records were created or changed.
    pub fn changed_users(&self) -> usize {
        self.users.iter().filter(|u| u.changed()).count()
    }
}

/// What the import did to one user's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserReport {
    /// The user.
    pub user: UserName,
    /// The record did not exist before.
    pub created: bool,
    /// Authenticators that were added.
    pub added: Vec<String>,
    /// Authenticators whose different secret or parameters were replaced (`replace`).
    pub replaced: Vec<String>,
    /// Authenticators already on file with the same secret; login state not moved.
    pub unchanged: Vec<String>,
    /// Authenticators already on file but unconfirmed, now active.
    pub activated: Vec<String>,
    /// Authenticators already on file whose replay state moved forward to what the old
    /// tool had recorded (codes it accepted since the last import).
    pub advanced: Vec<String>,
    /// What happened to backup codes.
    pub backup_codes: BackupOutcome,
}

impl UserReport {
    fn new(user: UserName) -> Self {
        Self {
            user,
            created: false,
            added: Vec::new(),
            replaced: Vec::new(),
            unchanged: Vec::new(),
            activated: Vec::new(),
            advanced: Vec::new(),
            backup_codes: BackupOutcome::NotImported,
        }
    }

    /// The record was created or changed.
    pub fn changed(&self) -> bool {
        self.created
            || !self.added.is_empty()
            || !self.replaced.is_empty()
            || !self.activated.is_empty()
            || !self.advanced.is_empty()
            || matches!(
                self.backup_codes,
                BackupOutcome::Added(_) | BackupOutcome::Replaced(_)
            )
    }
}

impl fmt::Display for UserReport {
    /// One line, e.g. `alice: created; added oath, oath-2; 5 backup codes added`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.created {
            parts.push("created".to_owned());
        }
        for (what, names) in [
            ("added", &self.added),
            ("replaced", &self.replaced),
            ("activated", &self.activated),
            ("replay state advanced for", &self.advanced),
            ("unchanged", &self.unchanged),
        ] {
            if !names.is_empty() {
                parts.push(format!("{what} {}", names.join(", ")));
            }
        }
        match self.backup_codes {
            BackupOutcome::NotImported => {}
            BackupOutcome::Added(n) => parts.push(format!("{n} backup codes added")),
            BackupOutcome::Replaced(n) => parts.push(format!("backup codes replaced by {n}")),
            BackupOutcome::Unchanged => parts.push("backup codes unchanged".to_owned()),
        }
        write!(f, "{}: {}", self.user, parts.join("; "))
    }
}

/// What happened to a user's backup codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupOutcome {
    /// The import had none.
    NotImported,
    /// The user had none; this many were added.
    Added(usize),
    /// The user's different set was replaced by this many (`replace`).
    Replaced(usize),
    /// The user's set already holds every imported code.
    Unchanged,
}

/// Writes `plan` into `store`, all users or none.
///
/// First every user is checked against the store: a record that cannot be read stops the
/// import (the message names its path), and so does an authenticator of the same name with a
/// different secret or parameters, or a different set of backup codes, unless `replace` is
/// set; every conflict is listed at once. Only then is each record updated, under its lock.
///
/// Re-importing the same file changes nothing and never moves login state backwards: for an
/// authenticator already on file with the same secret, the replay state becomes the later of
/// the record's and the import's. A replaced authenticator gets the imported state, since
/// its new secret starts a new history (as `sshield enroll --replace` does). Imported
/// authenticators are active at once.
///
/// The store directory is created if missing. Records are written one at a time; if writing
/// one fails (a full disk) or a user changes between check and write, the error names that
/// user, the records before it are already imported, and running the import again is safe.
pub fn apply(
    store: &RecordStore,
    plan: &ImportPlan,
    replace: bool,
    now: UnixTime,
) -> Result<ImportReport, ImportError> {
    check_unique(plan)?;
    store.create_dir()?;

    let mut conflicts = Vec::new();
    for imported in &plan.users {
        let mut record = store
            .load(&imported.user)?
            .unwrap_or_else(|| UserRecord::new(imported.user.as_str(), now.0));
        match merge(&mut record, imported, replace, now) {
            Ok(_) => {}
            Err(ImportError::Conflicts(found)) => conflicts.extend(found),
            Err(e) => return Err(e),
        }
    }
    if !conflicts.is_empty() {
        return Err(ImportError::Conflicts(conflicts));
    }

    let mut report = ImportReport::default();
    for imported in &plan.users {
        let user_report = store.update(&imported.user, |slot| {
            let created = slot.is_none();
            let record = slot.get_or_insert_with(|| UserRecord::new(imported.user.as_str(), now.0));
            let mut user_report = merge(record, imported, replace, now)?;
            user_report.created = created;
            let change = if user_report.changed() {
                Change::Save
            } else {
                Change::Keep
            };
            Ok::<_, ImportError>((change, user_report))
        })?;
        report.users.push(user_report);
    }
    Ok(report)
}

fn check_unique(plan: &ImportPlan) -> Result<(), ImportError> {
    let mut seen: HashMap<&UserName, &ImportedUser> = HashMap::new();
    for imported in &plan.users {
        if let Some(first) = seen.insert(&imported.user, imported) {
            return Err(ImportError::DuplicateUser {
                user: imported.user.clone(),
                first: origin(first),
                again: origin(imported),
            });
        }
    }
    Ok(())
}

fn origin(imported: &ImportedUser) -> String {
    format!("{}:{}", imported.source.display(), imported.source_line)
}

/// Applies one imported user to `record` (a fresh one if there was none), reporting what
/// changed, or every conflict found.
fn merge(
    record: &mut UserRecord,
    imported: &ImportedUser,
    replace: bool,
    now: UnixTime,
) -> Result<UserReport, ImportError> {
    let mut report = UserReport::new(imported.user.clone());
    let mut conflicts = Vec::new();
    let conflict = |kind| Conflict {
        user: imported.user.clone(),
        kind,
        origin: origin(imported),
    };
    for wanted in &imported.authenticators {
        let name = &wanted.name;
        let imported_usage = imported.usage.get(name).cloned().unwrap_or_default();
        // Replay is kept per authenticator: the same secret under two names would accept
        // each code twice (issue 9 item 6).
        if let Some(existing) = record.same_codes_as(wanted) {
            conflicts.push(conflict(ConflictKind::SameSecret {
                name: name.clone(),
                existing: existing.name.clone(),
            }));
            continue;
        }
        let position = record.authenticators.iter().position(|a| &a.name == name);
        match position {
            Some(i) if same_token(&record.authenticators[i], wanted) => {
                let existing = &mut record.authenticators[i];
                let provisioned = existing.counter;
                let mut touched = false;
                if !existing.active {
                    existing.active = true;
                    report.activated.push(name.clone());
                    touched = true;
                }
                let mut usage = record.token_usage(name);
                if advance(&mut usage, &imported_usage, provisioned) {
                    record.usage.tokens.insert(name.clone(), usage);
                    report.advanced.push(name.clone());
                    touched = true;
                }
                if !touched {
                    report.unchanged.push(name.clone());
                }
            }
            Some(_) if !replace => {
                conflicts.push(conflict(ConflictKind::Authenticator(name.clone())));
            }
            Some(i) => {
                record.authenticators[i] = active_copy(wanted);
                set_usage(record, name, imported_usage);
                report.replaced.push(name.clone());
            }
            None => {
                record.authenticators.push(active_copy(wanted));
                set_usage(record, name, imported_usage);
                report.added.push(name.clone());
            }
        }
    }

    let codes = &imported.backup_codes;
    if !codes.is_empty() {
        let all_on_file = !record.backup.is_empty()
            && codes
                .iter()
                .all(|c| record.backup.find_unused(c, &[]).is_some());
        if all_on_file {
            report.backup_codes = BackupOutcome::Unchanged;
        } else if record.backup.is_empty() || replace {
            report.backup_codes = if record.backup.is_empty() {
                BackupOutcome::Added(codes.len())
            } else {
                BackupOutcome::Replaced(codes.len())
            };
            record.backup = BackupCodes::from_plain(codes, now.0)
                .map_err(|e| ImportError::Random(e.to_string()))?;
            record.usage.backup_used.clear();
        } else {
            conflicts.push(conflict(ConflictKind::BackupCodes));
        }
    }

    if conflicts.is_empty() {
        Ok(report)
    } else {
        Err(ImportError::Conflicts(conflicts))
    }
}

fn active_copy(wanted: &Authenticator) -> Authenticator {
    Authenticator {
        active: true,
        ..wanted.clone()
    }
}

/// A new or replaced authenticator starts with the imported state (and any state left under
/// its name belongs to an old secret).
fn set_usage(record: &mut UserRecord, name: &str, usage: TokenUsage) {
    if usage == TokenUsage::default() {
        record.usage.tokens.remove(name);
    } else {
        record.usage.tokens.insert(name.to_owned(), usage);
    }
}

/// The same token: an authenticator app configured for one works for the other.
fn same_token(a: &Authenticator, b: &Authenticator) -> bool {
    a.secret == b.secret
        && a.kind == b.kind
        && a.algorithm == b.algorithm
        && a.digits == b.digits
        && (a.kind == TokenKind::Hotp
            || a.period.unwrap_or_default() == b.period.unwrap_or_default())
}

/// Moves `current` replay state forward to `imported` where that is later; never back.
/// `provisioned` is the authenticator's own first HOTP counter, which the engine also honours.
fn advance(current: &mut TokenUsage, imported: &TokenUsage, provisioned: Option<u64>) -> bool {
    let mut moved = false;
    if let Some(step) = imported.last_step {
        if current.last_step.is_none_or(|s| step > s) {
            current.last_step = Some(step);
            moved = true;
        }
    }
    if let Some(next) = imported.next_counter {
        let effective = current
            .next_counter
            .unwrap_or(0)
            .max(provisioned.unwrap_or(0));
        if next > effective {
            current.next_counter = Some(next);
            moved = true;
        }
    }
    moved
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use sshield_otp::{hotp, Secret, TotpParams};

    use super::*;
    use crate::config::Policy;
    use crate::engine::{Attempt, Decision, DenyReason, Engine, Method, Response};
    use crate::import::{google_authenticator, users_oath};
    use crate::Caller;

    const KEY: &str = "3132333435363738393031323334353637383930";
    const OTHER_KEY: &str = "8fa4acca0483c5694096ff9d1cc360";
    /// Step 59847825 starts at 1795434750.
    const NOW: UnixTime = UnixTime(1_795_434_759);

    fn store() -> (tempfile::TempDir, RecordStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = RecordStore::new(dir.path().join("users"));
        (dir, store)
    }

    fn oath_plan(text: &str) -> ImportPlan {
        users_oath::parse(text, Path::new("/etc/users.oath"), NOW).unwrap()
    }

    fn ga_plan(user: &str, text: &str) -> ImportPlan {
        let user = UserName::new(user).unwrap();
        let path = format!("/home/{user}/.google_authenticator");
        google_authenticator::parse(text, Path::new(&path), &user, NOW).unwrap()
    }

    fn user(name: &str) -> UserName {
        UserName::new(name).unwrap()
    }

    fn decide(store: &RecordStore, user: &str, typed: &str, now: u64) -> Decision {
        let engine = Engine::with_store(store.clone(), Policy::default());
        let response = Response::new(typed);
        engine.decide(&Attempt {
            caller: &Caller::new(crate::Account::resolve(user), "test"),
            response: &response,
            now: UnixTime(now),
        })
    }

    fn assert_replayed(d: Decision, what: &str) {
        assert!(
            matches!(d, Decision::Deny(DenyReason::Replayed)),
            "{what}: {d:?}"
        );
    }

    /// bob, from a usersfile line with KEY and no login yet.
    fn import_bob(store: &RecordStore) {
        apply(
            store,
            &oath_plan(&format!("HOTP/T30 bob - {KEY}\n")),
            false,
            NOW,
        )
        .unwrap();
    }

    fn totp_code(key_hex: &str, step: u64) -> String {
        let secret = Secret::from_hex(key_hex).unwrap();
        hotp(&secret, &TotpParams::default().hotp(), step)
            .as_str()
            .to_owned()
    }

    /// Issue 9 item 6: one secret imported twice (a users.oath line and the same user's
    /// ~/.google_authenticator, or two usersfile lines) would accept each code twice. Refused,
    /// naming the authenticator on file; nothing is written, also with --replace.
    #[test]
    fn a_secret_on_file_under_another_name_is_not_imported_again() {
        let (_dir, store) = store();
        import_bob(&store);
        let before = std::fs::read(store.record_path(&user("bob"))).unwrap();
        // KEY in base32.
        let ga = ga_plan("bob", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\" TOTP_AUTH\n");
        for replace in [false, true] {
            let message = apply(&store, &ga, replace, NOW).unwrap_err().to_string();
            assert!(
                message.contains("bob's authenticator \"oath\" already has the secret of \"google-authenticator\""),
                "{message}"
            );
            assert!(
                message.contains("sshield remove bob --name oath"),
                "{message}"
            );
            assert!(!message.contains("pass --replace"), "{message}");
            assert_eq!(
                std::fs::read(store.record_path(&user("bob"))).unwrap(),
                before
            );
        }
        // Two lines of one usersfile.
        let twice = format!("HOTP/T30 carol - {KEY}\nHOTP/T30 carol - {KEY}\n");
        let message = apply(&store, &oath_plan(&twice), false, NOW)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("carol's authenticator \"oath\" already has the secret of \"oath-2\""),
            "{message}"
        );
        assert!(!store.record_path(&user("carol")).exists());
    }

    #[test]
    fn used_totp_step_is_refused_after_import_and_the_next_accepted() {
        let (_dir, store) = store();
        // bob logged in through pam_oath with the code of step 59847826 (one ahead).
        let used = 59_847_826;
        let line = format!(
            "HOTP/T30 bob - {KEY} 1 {} 2026-11-23T11:52:39L\n",
            totp_code(KEY, used)
        );
        let report = apply(&store, &oath_plan(&line), false, NOW).unwrap();
        assert_eq!(report.users[0].added, ["oath"]);
        assert!(report.users[0].created);

        let code = |step| totp_code(KEY, step);
        // Within the ±1 window of now, but already used, or before the used step.
        assert_replayed(decide(&store, "bob", &code(used), NOW.0), "used step");
        assert_replayed(
            decide(&store, "bob", &code(used - 1), NOW.0),
            "earlier step",
        );
        // Once the clock reaches the used step, it is still refused; the next one is not.
        let later = used * 30 + 5;
        assert_replayed(
            decide(&store, "bob", &code(used), later),
            "used step, later",
        );
        let d = decide(&store, "bob", &code(used + 1), later);
        assert!(
            matches!(&d, Decision::Allow(Method::Totp { offset: 1, .. })),
            "{d:?}"
        );
    }

    #[test]
    fn used_hotp_counter_is_refused_after_import_and_the_next_accepted() {
        let (_dir, store) = store();
        let secret = Secret::from_hex(KEY).unwrap();
        let code = |c| hotp(&secret, &Default::default(), c).as_str().to_owned();
        let line = format!("HOTP alice - {KEY} 7 {} 2026-11-23T11:52:39L\n", code(7));
        apply(&store, &oath_plan(&line), false, NOW).unwrap();
        assert_replayed(decide(&store, "alice", &code(7), NOW.0), "counter 7");
        assert!(decide(&store, "alice", &code(8), NOW.0).is_allow());
        assert_replayed(decide(&store, "alice", &code(8), NOW.0), "counter 8 again");
    }

    #[test]
    fn google_authenticator_state_and_scratch_codes_work_after_import() {
        let (_dir, store) = store();
        let secret = "JBSWY3DPEHPK3PXP";
        let text = format!(
            "{secret}\n\" DISALLOW_REUSE 59847824 59847826\n\" TOTP_AUTH\n11111111\n22222222\n"
        );
        let report = apply(&store, &ga_plan("carol", &text), false, NOW).unwrap();
        assert_eq!(report.users[0].backup_codes, BackupOutcome::Added(2));
        assert_eq!(
            report.users[0].to_string(),
            "carol: created; added google-authenticator; 2 backup codes added"
        );
        let key = Secret::from_base32(secret).unwrap();
        let code = |step| hotp(&key, &Default::default(), step).as_str().to_owned();
        assert_replayed(
            decide(&store, "carol", &code(59_847_826), NOW.0),
            "listed step",
        );
        let later = 59_847_826 * 30;
        assert!(decide(&store, "carol", &code(59_847_827), later).is_allow());

        let d = decide(&store, "carol", "2222 2222", NOW.0);
        assert!(
            matches!(d, Decision::Allow(Method::Backup { remaining: 1 })),
            "{d:?}"
        );
        assert_replayed(decide(&store, "carol", "22222222", NOW.0), "scratch code");
    }

    #[test]
    fn reapplying_changes_nothing_and_never_rewinds() {
        let (_dir, store) = store();
        let secret = Secret::from_hex(KEY).unwrap();
        let code = |c| hotp(&secret, &Default::default(), c).as_str().to_owned();
        let plan = oath_plan(&format!(
            "HOTP alice - {KEY} 3 {} 2026-11-23T11:52:39L\n",
            code(3)
        ));
        apply(&store, &plan, false, NOW).unwrap();
        // A login through sshield moves alice on to counter 6.
        assert!(decide(&store, "alice", &code(5), NOW.0).is_allow());
        let path = store.record_path(&user("alice"));
        let before = std::fs::read(&path).unwrap();

        let report = apply(&store, &plan, false, UnixTime(NOW.0 + 99)).unwrap();
        assert_eq!(report.users[0].unchanged, ["oath"]);
        assert!(!report.users[0].changed());
        assert_eq!(report.changed_users(), 0);
        assert_eq!(std::fs::read(&path).unwrap(), before, "record rewritten");
        assert_replayed(decide(&store, "alice", &code(5), NOW.0), "counter 5");
    }

    #[test]
    fn replay_state_advances_when_the_old_tool_saw_later_logins() {
        let (_dir, store) = store();
        import_bob(&store);
        // bob kept logging in through pam_oath before the second import.
        let used = 59_847_826;
        let line = format!(
            "HOTP/T30 bob - {KEY} 1 {} 2026-11-23T11:52:39L\n",
            totp_code(KEY, used)
        );
        let report = apply(&store, &oath_plan(&line), false, NOW).unwrap();
        assert_eq!(report.users[0].advanced, ["oath"]);
        let record = store.load(&user("bob")).unwrap().unwrap();
        assert_eq!(record.token_usage("oath").last_step, Some(used));
        // And an older file does not move it back.
        let older = format!(
            "HOTP/T30 bob - {KEY} 1 {} 2026-11-23T11:52:39L\n",
            totp_code(KEY, used - 1)
        );
        let report = apply(&store, &oath_plan(&older), false, NOW).unwrap();
        assert_eq!(report.users[0].unchanged, ["oath"]);
        let record = store.load(&user("bob")).unwrap().unwrap();
        assert_eq!(record.token_usage("oath").last_step, Some(used));
    }

    #[test]
    fn a_conflict_writes_nothing_for_anyone_unless_replace() {
        let (_dir, store) = store();
        apply(
            &store,
            &oath_plan(&format!("HOTP/T30 alice - {OTHER_KEY}\n")),
            false,
            NOW,
        )
        .unwrap();
        let text = format!("HOTP/T30 bob - {KEY}\n# alice got a new phone\nHOTP/T30 alice - {KEY} 1 {} 2026-11-23T11:52:39L\n", totp_code(KEY, 59_847_825));
        let plan = oath_plan(&text);
        let err = apply(&store, &plan, false, NOW).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("nothing was imported: 1 entry already differ"),
            "{message}"
        );
        assert!(
            message.contains(
                "/etc/users.oath:3: alice already has an authenticator named \"oath\" with a \
                 different secret or parameters"
            ),
            "{message}"
        );
        assert!(message.contains("--replace"), "{message}");
        assert!(
            store.load(&user("bob")).unwrap().is_none(),
            "bob was written"
        );

        let report = apply(&store, &plan, true, NOW).unwrap();
        assert_eq!(report.users[1].replaced, ["oath"]);
        let record = store.load(&user("alice")).unwrap().unwrap();
        assert_eq!(
            record.authenticators[0].secret,
            Secret::from_hex(KEY).unwrap()
        );
        assert_eq!(record.token_usage("oath").last_step, Some(59_847_825));
        assert!(store.load(&user("bob")).unwrap().is_some());
    }

    #[test]
    fn a_record_that_cannot_be_read_stops_the_import() {
        let (_dir, store) = store();
        store.create_dir().unwrap();
        let path = store.record_path(&user("alice"));
        std::fs::write(&path, "version = 1\nuser = \"alice\"\ncreated = x\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let plan = oath_plan(&format!("HOTP bob - {KEY}\nHOTP alice - {KEY}\n"));
        let message = apply(&store, &plan, true, NOW).unwrap_err().to_string();
        assert!(
            message.starts_with(&format!("{}:3: ", path.display())),
            "{message}"
        );
        assert!(
            store.load(&user("bob")).unwrap().is_none(),
            "bob was written"
        );
    }

    #[test]
    fn a_user_twice_in_one_plan_is_refused() {
        let (_dir, store) = store();
        let mut plan = ga_plan("dave", "JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n");
        plan.extend(oath_plan(&format!("\nHOTP dave - {KEY}\n")));
        let message = apply(&store, &plan, false, NOW).unwrap_err().to_string();
        assert_eq!(
            message,
            "/etc/users.oath:2: user dave is already imported from \
             /home/dave/.google_authenticator:1; import one of the two"
        );
    }

    #[test]
    fn backup_codes_are_kept_when_the_same_and_conflict_when_not() {
        let (_dir, store) = store();
        let file = |codes: &str| format!("JBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n{codes}");
        apply(
            &store,
            &ga_plan("erin", &file("11111111\n22222222\n")),
            false,
            NOW,
        )
        .unwrap();
        // The same codes, or fewer (google-authenticator deletes used ones): unchanged.
        for codes in ["11111111\n22222222\n", "22222222\n"] {
            let report = apply(&store, &ga_plan("erin", &file(codes)), false, NOW).unwrap();
            assert_eq!(report.users[0].backup_codes, BackupOutcome::Unchanged);
            assert!(!report.users[0].changed());
        }
        let other = ga_plan("erin", &file("33333333\n"));
        let err = apply(&store, &other, false, NOW).unwrap_err();
        match &err {
            ImportError::Conflicts(c) => assert_eq!(c[0].kind, ConflictKind::BackupCodes),
            e => panic!("{e}"),
        }
        assert!(err
            .to_string()
            .contains("already has a different set of backup codes"));
        let report = apply(&store, &other, true, NOW).unwrap();
        assert_eq!(report.users[0].backup_codes, BackupOutcome::Replaced(1));
        assert!(decide(&store, "erin", "33333333", NOW.0).is_allow());
        assert!(!decide(&store, "erin", "11111111", NOW.0).is_allow());
    }

    #[test]
    fn a_pending_authenticator_with_the_same_secret_is_activated() {
        use crate::provision::{enroll, Enrollment};
        use sshield_otp::{Algorithm, Digits, Period};
        let (_dir, store) = store();
        enroll(
            &store,
            Enrollment {
                user: user("frank"),
                name: "oath".to_owned(),
                kind: TokenKind::Totp,
                algorithm: Algorithm::Sha1,
                digits: Digits::SIX,
                period: Period::THIRTY,
                counter: 0,
                secret: Some(Secret::from_hex(KEY).unwrap()),
                activate: false,
                replace: false,
            },
            NOW,
        )
        .unwrap();
        let report = apply(
            &store,
            &oath_plan(&format!("HOTP/T30 frank - {KEY}\n")),
            false,
            NOW,
        )
        .unwrap();
        assert_eq!(report.users[0].activated, ["oath"]);
        let record = store.load(&user("frank")).unwrap().unwrap();
        assert!(record.authenticators[0].active);
        assert!(!record.backup.is_empty(), "enroll's backup codes kept");
    }
}
