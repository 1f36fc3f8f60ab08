//! Offline logins, the host's side (docs/daemon.md, "Offline logins"): the daemon's
//! [`Remote`] wraps the server's client. After the server allows a user's login here, it
//! fetches (in a thread of its own: the login does not wait) and keeps that user's offline material (hashes of coming codes and unused backup
//! codes, never a secret: `sshield_wire::offline`) in `offline/USER.json` beside the host key,
//! root-only, written atomically. When no server answers, that material decides: a code is
//! accepted at most once on this host (its counter, or the backup code, is marked used in the
//! same atomic write that queues the report of it, before the answer is given); only a user
//! with no material is left to `failmode`, and that decision is queued too. A refusal (a bad
//! signature, a revoked host, a broken key) still denies, as does a material file that does
//! not read.
//!
//! Queued reports go to the server (`POST /v1/report`, each with an id, so a resend is
//! counted once) after any answer from it, and every [`FLUSH_EVERY`] from a thread of their
//! own while any wait. A report the server refuses for what it says (400, 413, 422: sent
//! again it would be refused again) is set aside in `rejected/ID.json` with the server's
//! message, logged at `err`, and the queue goes on without it; any other refusal (a revoked
//! host, a bad signature or clock, a limit) and no answer keep every report queued, in order.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sshield_core::config::Failmode;
use sshield_core::log::{problem_line, report_refused_line, LogSink};
use sshield_core::push::{Approval, PushAnswer, PushAsk};
use sshield_core::{backup, Caller, Remote, RemoteAnswer, Response, UnixTime, UserName};
use sshield_wire::offline::{
    backup_hash, code_hash, OfflineMaterial, OfflineRequest, Report, ReportRequest, ReportResponse,
    MAX_REPORTS, OFFLINE_PATH, OUTCOME_FAILMODE, OUTCOME_OFFLINE, REPORT_PATH,
};
use sshield_wire::signed::valid_nonce;
use subtle::ConstantTimeEq;

use crate::fleet::client::{Failed, ServerClient};
use crate::syslog::Syslog;

/// How often queued reports are offered to the server while any wait.
pub(crate) const FLUSH_EVERY: Duration = Duration::from_secs(5);

/// Most `failmode` reports kept waiting: past this (a long outage under a flood of logins),
/// new ones are logged and dropped rather than fill the disk.
const MAX_QUEUED: usize = 10_000;

/// The largest material file read (12 h of 30 s steps is about 100 kB per authenticator).
const MAX_FILE: u64 = 16 * 1024 * 1024;

/// Most rounds of one [`OfflineRemote::flush`]: every report the queue may hold, in turns of
/// [`MAX_REPORTS`], and some more; a file that cannot be rewritten (a full disk) then stops
/// the flush instead of sending the same reports for ever.
const MAX_ROUNDS: usize = MAX_QUEUED / MAX_REPORTS + 10;

/// A report the server refused for good, as kept in `rejected/ID.json` for the admin.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Rejected {
    /// The report, as it was queued.
    report: Report,
    /// When the server refused it (Unix seconds).
    refused_at: u64,
    /// The server's HTTP status.
    status: Option<u16>,
    /// What the server said.
    message: String,
}

/// How the server answered a batch of reports.
#[derive(Debug)]
enum Sent {
    /// Counted (or counted before).
    Taken,
    /// Refused: the status and what the server said.
    Refused(Option<u16>, String),
    /// No URL answered (or a 5xx): try again later.
    Unreachable,
    /// A 2xx whose body is not a report answer.
    Nonsense(String),
}

/// Whether a refusal is of the request's content (400 malformed, 413 too large, 422 not
/// processable): the same report sent again is refused again, so it is set aside. Every other
/// refusal (401/403 a signature, a clock or a revoked host, 404 a server without the route,
/// 408, 409, 429 a limit) is about the host or the moment, not the report: kept.
fn refused_for_content(status: Option<u16>) -> bool {
    matches!(status, Some(400 | 413 | 422))
}

/// One user's file: the material, what of it was used here, and the reports not yet sent.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserFile {
    /// The last material fetched; `None` once expired (the file stays while reports wait).
    material: Option<OfflineMaterial>,
    /// Per authenticator, the highest counter used here offline.
    used: BTreeMap<String, u64>,
    /// The stored hashes of the backup codes used here offline.
    backup_used: Vec<String>,
    /// Offline uses not yet reported.
    pending: Vec<Report>,
}

/// Where the daemon logs what it decides offline.
#[derive(Debug, Clone)]
pub(crate) struct LogTo {
    /// The syslog socket.
    pub socket: PathBuf,
    /// The config's `log_file`.
    pub file: Option<PathBuf>,
}

impl LogTo {
    fn say(&self, text: &str) {
        self.tell(&problem_line(text));
    }

    fn tell(&self, line: &sshield_core::log::Line) {
        Syslog {
            socket: &self.socket,
            file: self.file.as_deref(),
        }
        .log(line);
    }
}

/// The daemon's remote on a fleet host: the server first, then this host's offline material.
#[derive(Debug)]
pub(crate) struct OfflineRemote {
    client: ServerClient,
    /// `offline/` in the state dir (the host key's directory).
    dir: PathBuf,
    /// `reports/` in the state dir: queued `failmode` decisions, one file each.
    reports: PathBuf,
    /// `rejected/` in the state dir: reports the server refused for good, for the admin.
    rejected: PathBuf,
    window: Duration,
    failmode: Failmode,
    log: LogTo,
    /// One check or change of the files at a time in this daemon: an offline code is
    /// accepted once even when two logins race.
    lock: Mutex<()>,
    /// Whether reports may wait to be sent: set (under `lock`) with each one queued, cleared
    /// by a flush that finds none; set at start, as the queue on disk is not known yet. A
    /// server's answer starts a sending thread only while it is set, so a login does not pay
    /// for a thread with nothing to do.
    waiting: AtomicBool,
}

impl OfflineRemote {
    /// Wraps `client`; files under `state_dir`. Starts the thread that sends queued reports.
    pub(crate) fn start(
        client: ServerClient,
        state_dir: &Path,
        window: Duration,
        failmode: Failmode,
        log: LogTo,
    ) -> Arc<Offline> {
        let remote = Arc::new(Self {
            client,
            dir: state_dir.join("offline"),
            reports: state_dir.join("reports"),
            rejected: state_dir.join("rejected"),
            window,
            failmode,
            log,
            lock: Mutex::new(()),
            waiting: AtomicBool::new(true),
        });
        let flusher = Arc::clone(&remote);
        let _ = std::thread::Builder::new()
            .name("sshield-report".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                if flusher.waiting.load(Ordering::Relaxed) {
                    flusher.flush();
                }
            });
        Arc::new(Offline(remote))
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn user_path(&self, user: &UserName) -> PathBuf {
        self.dir.join(format!("{}.json", user.as_str()))
    }

    /// Fetches and stores `user`'s material (right after the server allowed them here).
    fn fetch(&self, user: &UserName) {
        let request = OfflineRequest {
            user: user.as_str().to_owned(),
            window_secs: self.window.as_secs(),
        };
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let material = match self.client.post(OFFLINE_PATH, &body) {
            Ok(text) => match serde_json::from_str::<OfflineMaterial>(&text) {
                Ok(m) if m.user == user.as_str() => m,
                _ => {
                    self.log.say(&format!(
                        "offline material for user {}: the server's answer is not material",
                        user.as_str()
                    ));
                    return;
                }
            },
            Err(Failed::Unreachable(what) | Failed::Refused(what)) => {
                self.log.say(&format!(
                    "no offline material for user {}: {what}",
                    user.as_str()
                ));
                return;
            }
        };
        let _guard = self.guard();
        let path = self.user_path(user);
        let mut file = match read(&path) {
            Ok(Some(file)) => file,
            // A broken file is replaced: the server just vouched for what it holds.
            Ok(None) | Err(_) => UserFile::default(),
        };
        file.material = Some(material);
        if let Err(e) = write(&path, &file) {
            self.log.say(&format!(
                "cannot store offline material for user {}: {e}",
                user.as_str()
            ));
        }
    }

    /// The offline answer for `code`, or `None` when this host holds no material for the user
    /// (then `failmode` decides).
    fn offline(&self, caller: &Caller, code: &Response, now: UnixTime) -> Option<RemoteAnswer> {
        let user = UserName::new(caller.user.name()).ok()?;
        let _guard = self.guard();
        let path = self.user_path(&user);
        let mut file = match read::<UserFile>(&path) {
            Ok(Some(file)) => file,
            Ok(None) => return None,
            Err(e) => {
                return Some(RemoteAnswer::Refused(format!(
                    "no server answered, and the offline material {} cannot be read ({e}); \
                     remove it (the next login through the server fetches it again)",
                    path.display()
                )))
            }
        };
        let expired = file
            .material
            .as_ref()
            .is_none_or(|m| m.expires <= i64::try_from(now.0).unwrap_or(i64::MAX));
        if expired {
            if file.material.take().is_some() {
                let _ = self.store(&path, &file);
            }
            return None;
        }
        let material = file.material.as_ref()?;
        let decided = decide(
            material,
            &file.used,
            &file.backup_used,
            code.expose_secret(),
            now,
        );
        let (method, authenticator, counter, backup) = match decided {
            Verdict::Token {
                authenticator,
                kind,
                counter,
            } => (kind, Some(authenticator), Some(counter), None),
            Verdict::Backup(stored) => ("backup".to_owned(), None, None, Some(stored)),
            Verdict::Replayed => {
                return Some(RemoteAnswer::Denied {
                    reason: "replayed".into(),
                    delay: None,
                })
            }
            Verdict::Wrong => {
                return Some(RemoteAnswer::Denied {
                    reason: "wrong-code".into(),
                    delay: None,
                })
            }
        };
        if let (Some(a), Some(c)) = (&authenticator, counter) {
            file.used.insert(a.clone(), c);
        }
        if let Some(stored) = &backup {
            file.backup_used.push(stored.clone());
        }
        let id = match sshield_wire::signed::new_nonce() {
            Ok(id) => id,
            Err(e) => return Some(RemoteAnswer::Refused(format!("no report id: {e}"))),
        };
        self.waiting.store(true, Ordering::Relaxed);
        file.pending.push(Report {
            id,
            time: i64::try_from(now.0).unwrap_or(i64::MAX),
            user: user.as_str().to_owned(),
            source: source_of(caller),
            service: caller.service.clone(),
            outcome: OUTCOME_OFFLINE.to_owned(),
            method: Some(method.clone()),
            reason: None,
            authenticator,
            counter,
            backup,
        });
        // Marked used and queued in one atomic write, before the answer: a crash after it
        // leaves the code spent here and its report waiting; a crash before, neither.
        if let Err(e) = self.store(&path, &file) {
            return Some(RemoteAnswer::Refused(format!(
                "no server answered, and the offline use cannot be recorded in {}: {e}",
                path.display()
            )));
        }
        self.log.say(&format!(
            "offline: no server answered; a {method} code of user {} was accepted from this \
             host's offline material (to be reported)",
            user.as_str()
        ));
        Some(RemoteAnswer::Allowed { method })
    }

    fn store(&self, path: &Path, file: &UserFile) -> Result<(), String> {
        if file.material.is_none() && file.pending.is_empty() {
            return match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.to_string()),
                _ => Ok(()),
            };
        }
        write(path, file)
    }

    /// Queues a `failmode` decision for `caller`.
    fn queue_failmode(&self, caller: &Caller, now: UnixTime) {
        let reason = match self.failmode {
            Failmode::Safe => "failmode-safe",
            Failmode::Secure => "unreachable",
        };
        let Ok(id) = sshield_wire::signed::new_nonce() else {
            return;
        };
        let report = Report {
            id: id.clone(),
            time: i64::try_from(now.0).unwrap_or(i64::MAX),
            user: caller.user.name().to_owned(),
            source: source_of(caller),
            service: caller.service.clone(),
            outcome: OUTCOME_FAILMODE.to_owned(),
            method: None,
            reason: Some(reason.to_owned()),
            authenticator: None,
            counter: None,
            backup: None,
        };
        let _guard = self.guard();
        let queued = fs::read_dir(&self.reports).map_or(0, Iterator::count);
        if queued >= MAX_QUEUED {
            self.log.say(&format!(
                "{queued} failmode reports wait already; this one (user {}) is not queued",
                caller.user.name()
            ));
            return;
        }
        self.waiting.store(true, Ordering::Relaxed);
        if let Err(e) = write(&self.reports.join(format!("{id}.json")), &report) {
            self.log
                .say(&format!("cannot queue a failmode report: {e}"));
        }
    }

    /// Sends queued reports, in turns of [`MAX_REPORTS`], until none wait or the server does
    /// not take them; what it took is removed. A batch refused for its content is sent again
    /// one report at a time: the reports refused alone are set aside ([`Self::set_aside`]),
    /// the others counted, and the queue goes on.
    pub(crate) fn flush(&self) {
        for _ in 0..MAX_ROUNDS {
            let batch = {
                let _guard = self.guard();
                let batch = self.queued();
                if batch.is_empty() {
                    self.waiting.store(false, Ordering::Relaxed);
                    return;
                }
                batch
            };
            match self.send(&batch) {
                Sent::Taken => {
                    let _guard = self.guard();
                    self.forget(&batch);
                }
                Sent::Refused(status, what) if refused_for_content(status) && batch.len() == 1 => {
                    if !self.set_aside(&batch[0], status, &what) {
                        return;
                    }
                }
                Sent::Refused(status, _) if refused_for_content(status) => {
                    for one in batch.chunks(1) {
                        match self.send(one) {
                            Sent::Taken => {
                                let _guard = self.guard();
                                self.forget(one);
                            }
                            Sent::Refused(status, what) if refused_for_content(status) => {
                                if !self.set_aside(&one[0], status, &what) {
                                    return;
                                }
                            }
                            other => return self.keep(one.len(), other),
                        }
                    }
                }
                other => return self.keep(batch.len(), other),
            }
        }
    }

    /// Sends `batch` to the server.
    fn send(&self, batch: &[(Report, PathBuf)]) -> Sent {
        let body = serde_json::to_vec(&ReportRequest {
            reports: batch.iter().map(|(r, _)| r.clone()).collect(),
        })
        .unwrap_or_default();
        match self
            .client
            .post_with(self.client.short_agent(), REPORT_PATH, &body)
        {
            Ok(text) if serde_json::from_str::<ReportResponse>(&text).is_ok() => Sent::Taken,
            Ok(text) => Sent::Nonsense(text),
            Err((_, Failed::Unreachable(_))) => Sent::Unreachable,
            Err((status, Failed::Refused(what))) => Sent::Refused(status, what),
        }
    }

    /// Logs why `count` report(s) stay queued (nothing for no answer: the next flush tries
    /// again).
    fn keep(&self, count: usize, sent: Sent) {
        match sent {
            Sent::Nonsense(text) => self.log.say(&format!(
                "the server's answer to {count} report(s) is not a report answer: {}",
                text.chars().take(200).collect::<String>()
            )),
            Sent::Refused(_, what) => self.log.say(&format!(
                "the server refused {count} queued report(s) (kept, sent again later): {what}"
            )),
            Sent::Taken | Sent::Unreachable => {}
        }
    }

    /// Moves a report the server refused for good out of the queue into `rejected/ID.json`
    /// (root-only, with the server's status and message) and logs it at `err`: the admin
    /// reads it there, since the server's audit will not have it. False (and the report left
    /// queued) if it cannot be written.
    fn set_aside(
        &self,
        (report, from): &(Report, PathBuf),
        status: Option<u16>,
        what: &str,
    ) -> bool {
        // The id names the file: one that is not a well-formed id (a queue file written by
        // something else) gets a fresh name, never a path of its own choosing.
        let name = if valid_nonce(&report.id) {
            report.id.clone()
        } else {
            sshield_wire::signed::new_nonce().unwrap_or_else(|_| "unnamed".to_owned())
        };
        let path = self.rejected.join(format!("{name}.json"));
        let kept = Rejected {
            report: report.clone(),
            refused_at: UnixTime::now().0,
            status,
            message: what.to_owned(),
        };
        let _guard = self.guard();
        if let Err(e) = write(&path, &kept) {
            self.log.say(&format!(
                "the server refused report {name} for good ({what}), and it cannot be set \
                 aside ({e}): it stays queued"
            ));
            return false;
        }
        self.forget(&[(report.clone(), from.clone())]);
        self.log.tell(&report_refused_line(&format!(
            "report {name} (user {}, outcome {}) refused by the server for good, not sent \
             again: {what}; kept in {}",
            report.user,
            report.outcome,
            path.display()
        )));
        true
    }

    /// Up to [`MAX_REPORTS`] queued reports, each with the file it is in.
    fn queued(&self) -> Vec<(Report, PathBuf)> {
        let mut batch = Vec::new();
        for dir in [&self.reports, &self.dir] {
            let Ok(entries) = fs::read_dir(dir) else {
                continue;
            };
            for path in entries.flatten().map(|e| e.path()) {
                if batch.len() >= MAX_REPORTS || path.extension().is_none_or(|e| e != "json") {
                    continue;
                }
                if dir == &self.reports {
                    if let Ok(Some(report)) = read::<Report>(&path) {
                        batch.push((report, path));
                    }
                } else if let Ok(Some(file)) = read::<UserFile>(&path) {
                    let room = MAX_REPORTS - batch.len();
                    batch.extend(
                        file.pending
                            .into_iter()
                            .take(room)
                            .map(|r| (r, path.clone())),
                    );
                }
            }
        }
        batch
    }

    /// Removes `sent` reports from the files they are in.
    fn forget(&self, sent: &[(Report, PathBuf)]) {
        let mut files = BTreeSet::new();
        for (_, path) in sent {
            if path.starts_with(&self.reports) {
                let _ = fs::remove_file(path);
            } else {
                files.insert(path);
            }
        }
        for path in files {
            if let Ok(Some(mut file)) = read::<UserFile>(path) {
                file.pending
                    .retain(|p| !sent.iter().any(|(s, _)| s.id == p.id));
                let _ = self.store(path, &file);
            }
        }
    }
}

fn source_of(caller: &Caller) -> Option<String> {
    caller
        .source
        .map(|a| a.to_string())
        .or_else(|| caller.source_name.clone())
}

/// What the material says of a code.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// An unused slot of this authenticator matched.
    Token {
        authenticator: String,
        kind: String,
        counter: u64,
    },
    /// An unused backup code matched; its stored hash.
    Backup(String),
    /// A slot or backup code used here before matched.
    Replayed,
    /// Nothing matched.
    Wrong,
}

/// Checks `typed` against `material` at `now`: TOTP slots within the window around now (with
/// the server's drift), HOTP slots in order, then backup codes; every hash compared in
/// constant time.
fn decide(
    material: &OfflineMaterial,
    used: &BTreeMap<String, u64>,
    backup_used: &[String],
    typed: &str,
    now: UnixTime,
) -> Verdict {
    let typed = typed.trim();
    let mut replayed = false;
    for token in &material.tokens {
        let last = used.get(&token.authenticator).copied();
        let in_window = |counter: u64| match token.kind.as_str() {
            "totp" if token.period > 0 => {
                // As the engine: the window around the drift, and the one around real time.
                let real_time = now.0 / token.period;
                let drifted = real_time.saturating_add_signed(token.drift);
                counter.abs_diff(drifted) <= token.window
                    || counter.abs_diff(real_time) <= token.window
            }
            "hotp" => true,
            _ => false,
        };
        for slot in token.slots.iter().filter(|s| in_window(s.counter)) {
            let hash = code_hash(&material.salt, &token.authenticator, slot.counter, typed);
            if !bool::from(hash.as_bytes().ct_eq(slot.hash.as_bytes())) {
                continue;
            }
            if last.is_some_and(|l| slot.counter <= l) {
                replayed = true;
                continue;
            }
            return Verdict::Token {
                authenticator: token.authenticator.clone(),
                kind: token.kind.clone(),
                counter: slot.counter,
            };
        }
    }
    if replayed {
        return Verdict::Replayed;
    }
    if !material.backup.is_empty() {
        let stored = backup::hash(&material.backup_salt, typed);
        let wrapped = backup_hash(&material.salt, &stored);
        let mut known = false;
        for hash in &material.backup {
            known |= bool::from(hash.as_bytes().ct_eq(wrapped.as_bytes()));
        }
        if known {
            if backup_used.contains(&stored) {
                return Verdict::Replayed;
            }
            return Verdict::Backup(stored);
        }
    }
    Verdict::Wrong
}

/// Reads a JSON file of ours: `None` if there is none.
fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, String> {
    if fs::symlink_metadata(path).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound) {
        return Ok(None);
    }
    let text = sshield_core::user_file::read_text(path, MAX_FILE).map_err(|e| e.to_string())?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| format!("{}: line {}: {e}", path.display(), e.line()))
}

/// Writes `value` to `path` atomically (a temp file, fsync, rename, fsync of the directory),
/// root-only (0600, in a 0700 directory).
fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), String> {
    let dir = path.parent().ok_or("no directory")?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let text = serde_json::to_vec(value).map_err(|e| e.to_string())?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let io = |e: std::io::Error| format!("{}: {e}", tmp.display());
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(&text)
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    fs::rename(&tmp, path).map_err(io)?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| format!("{}: {e}", dir.display()))
}

impl OfflineRemote {
    /// After a server answered: sends what waits and, for an allowed `user`, fetches their
    /// material, in a thread of its own so the login does not wait for either; no thread when
    /// there is neither.
    fn after_answer(self: &Arc<Self>, allowed: Option<UserName>) {
        let allowed = allowed.filter(|_| !self.window.is_zero());
        if allowed.is_none() && !self.waiting.load(Ordering::Relaxed) {
            return;
        }
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("sshield-offline".into())
            .spawn(move || {
                this.flush();
                if let Some(user) = allowed {
                    this.fetch(&user);
                }
            });
        if spawned.is_err() {
            self.log
                .say("cannot start a thread to fetch offline material or send reports");
        }
    }
}

/// The daemon's remote: [`OfflineRemote`] behind an `Arc`, so it can hand work to a thread.
#[derive(Debug)]
pub(crate) struct Offline(pub Arc<OfflineRemote>);

impl Remote for Offline {
    fn verify(&self, caller: &Caller, code: &Response) -> RemoteAnswer {
        let answer = self.0.client.verify(caller, code);
        self.after(caller, answer, |now| self.0.offline(caller, code, now))
    }

    /// As `verify`; offline, the code is each of the last 6, 7 and 8 digits in turn (offline
    /// material counts no failure, so trying them costs nothing), and its length is said.
    fn verify_trailing(
        &self,
        caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>) {
        let (answer, digits) = self.0.client.verify_trailing(caller, trailing);
        let mut offline_digits = None;
        let answer = self.after(caller, answer, |now| {
            let text = trailing.expose_secret();
            let mut first = None;
            for length in (6..=8).filter(|&n| n <= text.len()) {
                let code = Response::new(text.get(text.len() - length..).unwrap_or(""));
                match self.0.offline(caller, &code, now) {
                    Some(allowed @ RemoteAnswer::Allowed { .. }) => {
                        offline_digits = Some(length);
                        return Some(allowed);
                    }
                    Some(other) if first.is_none() => first = Some(other),
                    _ => {}
                }
            }
            first
        });
        (answer, offline_digits.or(digits))
    }

    // A push is the server's alone (the phone answers it): nothing offline about it.
    fn push(&self, caller: &Caller, ask: &PushAsk) -> PushAnswer {
        self.0.client.push(caller, ask)
    }

    fn wait(&self, caller: &Caller, id: &str) -> Approval {
        self.0.client.wait(caller, id)
    }
}

impl Offline {
    /// What follows the server's `answer`: material fetched after a login it allowed, reports
    /// sent; when no server answered, this host's offline material's answer (`offline`), or
    /// `failmode`'s, queued for the report.
    fn after(
        &self,
        caller: &Caller,
        answer: RemoteAnswer,
        offline: impl FnOnce(UnixTime) -> Option<RemoteAnswer>,
    ) -> RemoteAnswer {
        let this = &self.0;
        match &answer {
            RemoteAnswer::Allowed { .. } => {
                this.after_answer(UserName::new(caller.user.name()).ok());
            }
            RemoteAnswer::Denied { .. } => this.after_answer(None),
            RemoteAnswer::Unreachable(_) => {
                let now = UnixTime::now();
                if let Some(offline) = offline(now) {
                    return offline;
                }
                this.queue_failmode(caller, now);
            }
            RemoteAnswer::Refused(_) => {}
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use sshield_wire::offline::{OfflineSlot, OfflineToken};

    use super::*;

    fn material(now: u64) -> OfflineMaterial {
        let salt = "00112233445566778899aabbccddeeff".to_owned();
        let step = now / 30;
        let stored = backup::hash("5a17", "k7mq2-xv9hd");
        OfflineMaterial {
            user: "carol".into(),
            tokens: vec![OfflineToken {
                authenticator: "phone".into(),
                kind: "totp".into(),
                period: 30,
                window: 1,
                drift: 0,
                slots: (step - 1..=step + 10)
                    .map(|c| OfflineSlot {
                        counter: c,
                        hash: code_hash(&salt, "phone", c, &format!("{:06}", c % 1_000_000)),
                    })
                    .collect(),
            }],
            backup_salt: "5a17".into(),
            backup: vec![backup_hash(&salt, &stored)],
            salt,
            issued: 0,
            expires: i64::MAX,
        }
    }

    #[test]
    fn a_slot_in_the_window_once_then_replayed_a_backup_code_once() {
        let now = UnixTime(1_700_000_000);
        let m = material(now.0);
        let step = now.0 / 30;
        let code = |c: u64| format!("{:06}", c % 1_000_000);
        let mut used = BTreeMap::new();
        assert_eq!(
            decide(&m, &used, &[], &code(step + 1), now),
            Verdict::Token {
                authenticator: "phone".into(),
                kind: "totp".into(),
                counter: step + 1
            }
        );
        used.insert("phone".to_owned(), step + 1);
        assert_eq!(
            decide(&m, &used, &[], &code(step + 1), now),
            Verdict::Replayed
        );
        // An earlier step of the window, after a later one was used: replayed too.
        assert_eq!(decide(&m, &used, &[], &code(step), now), Verdict::Replayed);
        // A slot outside the window (shipped for later): not now.
        assert_eq!(decide(&m, &used, &[], &code(step + 5), now), Verdict::Wrong);
        assert_eq!(decide(&m, &used, &[], "999999x", now), Verdict::Wrong);
        // The backup code, as typed in any case and with spaces; then used.
        let stored = backup::hash("5a17", "k7mq2-xv9hd");
        assert_eq!(
            decide(&m, &used, &[], " K7MQ2XV9HD ", now),
            Verdict::Backup(stored.clone())
        );
        assert_eq!(
            decide(&m, &used, &[stored], "k7mq2-xv9hd", now),
            Verdict::Replayed
        );
    }

    /// As the engine: with a learned drift of +4 steps, the window around it and the one around
    /// real time both take codes, and the steps between them do not.
    #[test]
    fn a_drift_adds_its_window_to_real_time() {
        let now = UnixTime(1_700_000_000);
        let mut m = material(now.0);
        m.tokens[0].drift = 4;
        let step = now.0 / 30;
        let code = |c: u64| format!("{:06}", c % 1_000_000);
        let used = BTreeMap::new();
        let taken = |c: u64| matches!(decide(&m, &used, &[], &code(c), now), Verdict::Token { .. });
        let taken: Vec<u64> = (step - 1..=step + 6).filter(|&c| taken(c)).collect();
        let want = [step - 1, step, step + 1, step + 3, step + 4, step + 5];
        assert_eq!(taken, want);
    }

    #[test]
    fn only_a_refusal_of_the_content_sets_a_report_aside() {
        for (status, aside) in [
            (Some(400), true),
            (Some(413), true),
            (Some(422), true),
            (Some(401), false),
            (Some(403), false),
            (Some(404), false),
            (Some(409), false),
            (Some(415), false),
            (Some(429), false),
            (None, false),
        ] {
            assert_eq!(refused_for_content(status), aside, "{status:?}");
        }
    }

    #[test]
    fn files_are_root_only_and_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("offline").join("carol.json");
        let file = UserFile {
            material: Some(material(1_700_000_000)),
            ..UserFile::default()
        };
        write(&path, &file).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o700
        );
        let back: UserFile = read(&path).unwrap().unwrap();
        assert_eq!(back.material, file.material);
        assert!(read::<UserFile>(&dir.path().join("none.json"))
            .unwrap()
            .is_none());
        fs::write(&path, "{").unwrap();
        assert!(read::<UserFile>(&path).unwrap_err().contains("line 1"));
    }
}
