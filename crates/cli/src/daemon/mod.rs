//! `sshield daemon`: the privileged side of `sshield login`, on a Unix socket.
//!
//! The login helper runs as the logging-in user, who must never read the secrets. So it asks
//! this daemon (root) over the socket named by the config's `socket`, in the protocol of
//! [`crate::protocol`]. The daemon answers only about the caller: the uid comes from the
//! kernel (SO_PEERCRED), the source address from `/proc` ([`source`]), nothing from the
//! request. Each connection holds one core [`Login`]: the daemon only turns its steps into
//! replies, sleeps the delays it gives, and writes its lines to syslog; the exemptions, tries,
//! severities and messages are core's, the same as the PAM module's.
//!
//! One thread per connection, at most [`MAX_CONNECTIONS`] at once and [`MAX_PER_USER`] per
//! uid, both taken in the accept loop before any thread starts ([`Slots`]); each connection is
//! bounded in time (the config's `login_timeout` plus a margin, between requests) and in
//! requests (the login's `login_tries`: it closes after the last denial).

mod listen;
mod push_relay;
pub(crate) mod source;

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use std::{fs, thread};

use sshield_core::log::{Event, Line, LogSink};
use sshield_core::relay;
use sshield_core::{
    Account, Caller, Config, Engine, Entry, Login, Remote, RemoteAnswer, Response, Step, UnixTime,
};

use crate::failure::Failure;
use crate::procs;
use crate::protocol::{self, Reply, Request};
use crate::syslog::Syslog;

/// The `service=` of the daemon's log lines.
pub(crate) const SERVICE: &str = "sshield-login";

/// Connections served at once; more are answered `busy` and closed.
pub(crate) const MAX_CONNECTIONS: usize = 128;

/// Connections one uid may hold at once, so one local user cannot take every slot and keep
/// the others from logging in.
pub(crate) const MAX_PER_USER: usize = 8;

/// Time allowed between requests beyond `login_timeout` (the user typing, the engine's delay).
const IDLE_MARGIN: Duration = Duration::from_secs(30);

/// What every connection thread shares.
#[derive(Debug)]
pub(crate) struct Shared {
    config: Config,
    engine: Engine,
    /// The fleet server's client, which `verify` requests (the PAM module's) are relayed to.
    pub(crate) remote: Option<Arc<dyn Remote>>,
    syslog_socket: PathBuf,
}

/// Serves until killed. `syslog_socket` is where log lines go besides the config's `log_file`.
pub(crate) fn run(config: Config, syslog_socket: PathBuf) -> Result<(), Failure> {
    let (listener, serving) = match activated_listener()? {
        Some(l) => (l, "the socket systemd passed".to_owned()),
        None => (bind(&config.socket)?, config.socket.display().to_string()),
    };
    let mut engine = Engine::new(&config);
    let mut fleet = None;
    let mut relay = None;
    if let Some(server) = &config.server {
        // The host's one network client: users with no local record are the server's.
        let log = crate::fleet::offline::LogTo {
            socket: syslog_socket.clone(),
            file: config.log_file.clone(),
        };
        let (remote, said) = crate::fleet::client::remote_of(server, config.failmode, log);
        engine = engine.with_remote(Arc::clone(&remote));
        relay = Some(remote);
        fleet = Some(said);
    }
    let shared = Arc::new(Shared {
        engine,
        remote: relay,
        config,
        syslog_socket,
    });
    let slots = Arc::new(Slots::default());
    shared.sink().log(&Line::new(
        Event::Started,
        format!("daemon listening on {serving}"),
    ));
    match fleet {
        Some(Ok(text)) => shared.sink().log(&Line::new(Event::Started, text)),
        Some(Err(text)) => shared.sink().log(&Line::new(Event::ConfigError, text)),
        None => {}
    }
    for stream in listener.incoming() {
        let Ok(stream) = stream else {
            // EMFILE and friends: pause rather than spin.
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        // The uid first, from the kernel, in this loop: a connection counts against its own
        // uid's share before it may hold one of the shared slots, so a uid that has used up
        // its share is turned away without ever holding capacity the others need. (Taking the
        // shared slot first, and the uid's in the thread, let one user's flood of refused
        // connections fill the shared slots for a moment each, and 7-13 % of other users'
        // logins were answered `busy`: issue 9, item 12.)
        let cred = rustix::net::sockopt::get_socket_peercred(&stream).map(|cred| Credentials {
            uid: cred.uid.as_raw(),
            pid: u32::try_from(cred.pid.as_raw_nonzero().get()).unwrap_or(0),
        });
        let slot = match cred {
            Ok(cred) => Slots::take(&slots, cred.uid).map(|slot| (slot, cred)),
            Err(_) => Err(Busy::Unknown),
        };
        let (slot, cred) = match slot {
            Ok(taken) => taken,
            Err(busy) => {
                turn_away(stream, busy);
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name("sshield-conn".into())
            .spawn(move || {
                serve(stream, cred, &shared);
                drop(slot);
            });
        if spawned.is_err() {
            // The closure, and the slot in it, were dropped: the slot is free again.
            thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

/// Answers `busy` and closes, without waiting on a caller that does not read: this runs in
/// the accept loop, which every other user's login waits behind.
fn turn_away(mut stream: UnixStream, busy: Busy) {
    let message = match busy {
        Busy::User => "too many connections from this user; try again",
        Busy::All => "too many connections; try again",
        Busy::Unknown => "no peer credentials",
    };
    let error = match busy {
        Busy::Unknown => "unknown-peer",
        Busy::User | Busy::All => "busy",
    };
    if stream.set_nonblocking(true).is_ok() {
        let _ = protocol::write_reply(&mut stream, &error_reply(error, message));
    }
}

/// Why a connection gets no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    /// Its uid holds [`MAX_PER_USER`] already.
    User,
    /// [`MAX_CONNECTIONS`] are being served.
    All,
    /// The kernel named no peer.
    Unknown,
}

/// The connections being served: in all, and per uid, under one lock so both are taken (or
/// neither) at once.
#[derive(Debug, Default)]
struct Slots {
    counts: Mutex<SlotCounts>,
}

#[derive(Debug, Default)]
struct SlotCounts {
    all: usize,
    per_uid: HashMap<u32, usize>,
}

impl Slots {
    /// A slot for `uid`: refused if the uid holds its share, else if all are taken. Root's
    /// share is all of them: on a fleet host every PAM login of a server user is a root
    /// connection (sshd's PAM stack asking `verify`), and root needs no protecting from.
    fn take(slots: &Arc<Slots>, uid: u32) -> Result<Slot, Busy> {
        let mut counts = slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = counts.per_uid.get(&uid).copied().unwrap_or(0);
        let share = if uid == 0 {
            MAX_CONNECTIONS
        } else {
            MAX_PER_USER
        };
        if mine >= share {
            return Err(Busy::User);
        }
        if counts.all >= MAX_CONNECTIONS {
            return Err(Busy::All);
        }
        counts.all += 1;
        counts.per_uid.insert(uid, mine + 1);
        Ok(Slot {
            slots: Arc::clone(slots),
            uid,
        })
    }
}

/// One connection's slot, given back on drop.
#[derive(Debug)]
struct Slot {
    slots: Arc<Slots>,
    uid: u32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.slots.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.all = counts.all.saturating_sub(1);
        if let Some(count) = counts.per_uid.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                counts.per_uid.remove(&self.uid);
            }
        }
    }
}

/// The listening socket systemd passed (socket activation: `LISTEN_PID` is us and
/// `LISTEN_FDS` is 1, the socket being fd 3), if any.
///
/// Adopting fd 3 as a `UnixListener` needs `FromRawFd`, i.e. `unsafe`, which this crate
/// forbids; the `listenfd` crate does it after checking that the fd is a Unix stream socket,
/// and marks it close-on-exec. An earlier version duplicated fd 3 with `pidfd_getfd(2)`
/// instead, which seccomp filters refuse: systemd-nspawn's default one (EPERM), and
/// `SystemCallFilter=@system-service`, which sshield.service sets (SIGSYS). The daemon then
/// died at every start, and after five restarts systemd gave up on sshield.socket (issue 9).
/// What is adopted here needs nothing beyond `@system-service`.
fn activated_listener() -> Result<Option<UnixListener>, Failure> {
    let me = rustix::process::getpid();
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<i32>().ok())
        .is_some_and(|p| p == me.as_raw_nonzero().get());
    if !for_us {
        // Not ours (or none): never adopt an fd on the word of a variable meant for another
        // process, as listenfd would where LISTEN_PID is unset.
        return Ok(None);
    }
    let fds = std::env::var("LISTEN_FDS").unwrap_or_default();
    if fds != "1" {
        return Err(Failure::Error(format!(
            "systemd passed LISTEN_FDS={fds:?}; sshield.socket must have exactly one ListenStream"
        )));
    }
    if std::env::var_os("LISTEN_FDS_FIRST_FD").is_some() {
        // systemd always starts at fd 3; listenfd would follow this variable elsewhere.
        return Err(Failure::Error(
            "LISTEN_FDS_FIRST_FD is set: systemd passes its sockets from fd 3 on; start the daemon without it".into(),
        ));
    }
    let activation = |e: io::Error| {
        Failure::Error(format!(
            "cannot take the socket systemd passed (fd 3): {e}; start the daemon without sshield.socket instead"
        ))
    };
    let listener = listenfd::ListenFd::from_env()
        .take_unix_listener(0)
        .map_err(activation)?
        .ok_or_else(|| activation(io::Error::other("no fd 3")))?;
    // A Unix stream socket, but one that was never listen()ed on would make accept() fail
    // for ever.
    let listening =
        rustix::net::sockopt::get_socket_acceptconn(&listener).map_err(|e| activation(e.into()))?;
    if !listening {
        return Err(activation(io::Error::other(
            "fd 3 is not a listening socket",
        )));
    }
    Ok(Some(listener))
}

/// Binds the socket at `path`, world-connectable (0666): any local user may ask, about
/// themselves only. A stale socket file from a previous run is replaced; a live one (another
/// daemon answers) is an error.
fn bind(path: &Path) -> Result<UnixListener, Failure> {
    let io =
        |what: &str, e: io::Error| Failure::Error(format!("cannot {what} {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        if !dir.exists() {
            fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
                .map_err(|e| io("set the mode of the directory of", e))?;
        }
    }
    if let Ok(meta) = fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(Failure::Error(format!(
                "{} exists and is not a socket; remove it or change `socket` in the config",
                path.display()
            )));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(Failure::Error(format!(
                "another daemon is serving {} already",
                path.display()
            )));
        }
        fs::remove_file(path).map_err(|e| io("remove the stale socket", e))?;
    }
    let listener = listen::bind(path).map_err(|e| io("listen on", e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o666))
        .map_err(|e| io("set the mode of", e))?;
    Ok(listener)
}

/// The peer of a connection as the kernel names it (SO_PEERCRED).
#[derive(Debug, Clone, Copy)]
struct Credentials {
    uid: u32,
    /// Its pid when it connected (0 if the kernel gave none).
    pid: u32,
}

/// The peer of a connection, as the kernel and `/proc` say.
#[derive(Debug)]
pub(crate) struct Peer {
    /// The account of the peer's uid, as the password database names it, and its source.
    /// The helper runs after sshd's authentication ended: a first factor passed.
    pub(crate) caller: Caller,
    /// The peer's uid, from the kernel.
    pub(crate) uid: u32,
    /// The ssh session the caller runs under, if `/proc` shows one beyond doubt.
    session: Option<procs::SshSession>,
}

/// Who the peer of a `sshield login` connection is: its account, and the ssh session and
/// source address `/proc` shows for it (walking the process tree and reading the session's
/// TCP tables: not for relayed requests, which need only the uid).
fn identify(cred: Credentials) -> Result<Peer, String> {
    let Credentials { uid, pid } = cred;
    let user = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .ok_or_else(|| format!("uid {uid} has no user name"))?;
    let session = source::session_of_peer(pid, uid);
    let caller = Caller {
        first_factor_passed: true,
        ..Caller::new(Account::from_system(user.name), SERVICE)
            .from_source(session.as_ref().and_then(source::of_session))
    };
    Ok(Peer {
        caller,
        uid,
        session,
    })
}

pub(crate) fn error_reply(error: &str, message: &str) -> Reply {
    Reply::Error {
        error: error.to_owned(),
        message: message.to_owned(),
    }
}

/// Serves one connection until it closes, misbehaves, or its login ends.
fn serve(stream: UnixStream, cred: Credentials, shared: &Shared) {
    let idle = shared.config.login_timeout.saturating_add(IDLE_MARGIN);
    let _ = stream.set_read_timeout(Some(idle));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(10)));
    let Ok(writer) = stream.try_clone() else {
        return;
    };
    let mut reader = protocol::LineReader::new(stream);
    let Some(first) = next_request(&mut reader, &writer) else {
        return;
    };
    // The PAM module's relayed requests are answered on the uid alone.
    let first = match shared.relay_request(cred.uid, first) {
        Ok(reply) => return write_reply(&writer, &reply),
        Err(request) => request,
    };
    let peer = match identify(cred) {
        Ok(p) => p,
        Err(why) => return write_reply(&writer, &error_reply("unknown-peer", &why)),
    };
    let mut login = shared.engine.begin(peer.caller.clone());
    // The wait on the phone's answer, running while the client may still type a code.
    let mut waiting: Option<push_relay::Waiting> = None;
    let mut next = Some(first);
    loop {
        let Some(request) = next.take().or_else(|| next_request(&mut reader, &writer)) else {
            return;
        };
        let request = match shared.relay_request(peer.uid, request) {
            Ok(reply) => return write_reply(&writer, &reply),
            Err(request) => request,
        };
        let now = UnixTime::now();
        let step = match request {
            Request::Need(invocation) => {
                login = login.with_invocation(invocation);
                login.start(now, &shared.sink())
            }
            Request::Check { code, pre_supplied } => {
                let entry = if pre_supplied {
                    Entry::PreSupplied(code)
                } else {
                    Entry::Typed(code)
                };
                login.next(entry, now, &shared.sink())
            }
            Request::Push => login.next(Entry::PushRequested, now, &shared.sink()),
            Request::Wait => {
                match push_relay::await_answer(shared, &login, &mut waiting, &reader) {
                    // The client sent something first (a code typed instead): read it.
                    None => continue,
                    Some(answer) => {
                        waiting = None;
                        login.next(Entry::Approval(answer), UnixTime::now(), &shared.sink())
                    }
                }
            }
            // Answered by `relay_request` above.
            Request::Verify { .. } | Request::RelayPush { .. } | Request::RelayWait { .. } => {
                return
            }
        };
        let reply = shared.reply(&login, &peer, step, now);
        let done = matches!(reply, Reply::Deny { last: true, .. });
        let mut out = &writer;
        if protocol::write_reply(&mut out, &reply).is_err() || done {
            return;
        }
    }
}

/// The next request on a connection; `None` when it closed or failed (a malformed request is
/// answered with what is wrong first).
fn next_request(
    reader: &mut protocol::LineReader<UnixStream>,
    writer: &UnixStream,
) -> Option<Request> {
    let request = reader.read_line().and_then(|line| match line {
        Some(line) => protocol::parse_request(&line).map(Some),
        None => Ok(None),
    });
    match request {
        Ok(request) => request,
        Err(protocol::ProtocolError::Io(_)) => None,
        Err(e) => {
            write_reply(writer, &error_reply(e.as_str(), &e.to_string()));
            None
        }
    }
}

/// Writes `reply`; a peer that went away is not an error here.
fn write_reply(writer: &UnixStream, reply: &Reply) {
    let mut writer = writer;
    let _ = protocol::write_reply(&mut writer, reply);
}

impl Shared {
    /// The answer to a request the daemon relays for the PAM module (`verify`, `relay-push`,
    /// `relay-wait`), from peer `uid`; any other request is handed back.
    fn relay_request(&self, uid: u32, request: Request) -> Result<Reply, Request> {
        Ok(match request {
            Request::Verify {
                user,
                rhost,
                service,
                code,
                split,
            } => self.relay(uid, user, rhost, service, &code, split),
            Request::RelayPush {
                user,
                rhost,
                service,
            } => push_relay::push(self, uid, user, rhost, service),
            Request::RelayWait { user, service, id } => {
                push_relay::wait(self, uid, user, service, &id)
            }
            other => return Err(other),
        })
    }

    /// The fleet server's answer to a `verify` request: one verification relayed through the
    /// daemon's client, for a root peer (the PAM module in sshd's stack) only. Nothing is
    /// logged here: the module's login logs its decision, as for any other.
    fn relay(
        &self,
        uid: u32,
        user: String,
        rhost: Option<String>,
        service: String,
        code: &Response,
        split: bool,
    ) -> Reply {
        let (remote, caller) = match self.relay_for(uid, user, rhost, service) {
            Ok(pair) => pair,
            Err(reply) => return reply,
        };
        let (answer, code_digits) = if split {
            let (answer, digits) = remote.verify_trailing(&caller, code);
            (answer, digits.and_then(|d| u8::try_from(d).ok()))
        } else {
            (remote.verify(&caller, code), None)
        };
        let outcome = relay::outcome_word(&answer).to_owned();
        match answer {
            RemoteAnswer::Allowed { method } => Reply::Verdict {
                outcome,
                method: Some(method),
                reason: None,
                delay_ms: None,
                message: None,
                code_digits,
            },
            RemoteAnswer::Denied { reason, delay } => Reply::Verdict {
                outcome,
                method: None,
                reason: Some(reason),
                delay_ms: delay.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                message: None,
                code_digits,
            },
            RemoteAnswer::Unreachable(what) | RemoteAnswer::Refused(what) => Reply::Verdict {
                outcome,
                method: None,
                reason: None,
                delay_ms: None,
                message: Some(what),
                code_digits: None,
            },
        }
    }

    /// The remote and the caller of a relayed request: only a root peer (the PAM module in
    /// sshd) may name another user, and only a fleet host has a server to ask.
    pub(crate) fn relay_for(
        &self,
        uid: u32,
        user: String,
        rhost: Option<String>,
        service: String,
    ) -> Result<(&Arc<dyn Remote>, Caller), Reply> {
        if uid != 0 {
            return Err(error_reply(
                "forbidden",
                "only root (the PAM module in sshd) may ask about another user; `sshield \
                 login` uses `need`, `check`, `push` and `wait`",
            ));
        }
        let Some(remote) = &self.remote else {
            return Err(error_reply(
                "not-a-fleet-host",
                "this daemon's config has no [server] section; add it (sshield join) or remove \
                 it from the module's config",
            ));
        };
        let (source, source_name) = match rhost.as_deref().map(str::parse::<IpAddr>) {
            Some(Ok(address)) => (Some(address), None),
            Some(Err(_)) => (None, rhost),
            None => (None, None),
        };
        let caller = Caller {
            source_name,
            ..Caller::new(Account::from_system(user), service).from_source(source)
        };
        Ok((remote, caller))
    }

    pub(crate) fn sink(&self) -> Syslog<'_> {
        Syslog {
            socket: &self.syslog_socket,
            file: self.config.log_file.as_deref(),
        }
    }

    /// The reply for `step`, after the delay a denial must wait.
    fn reply(&self, login: &Login<'_>, peer: &Peer, step: Step, now: UnixTime) -> Reply {
        match step {
            Step::Exempt(exemption) => Reply::Exempt {
                reason: exemption.as_str().to_owned(),
            },
            Step::Push(pushed) => Reply::Push {
                number: pushed.number,
                prompt: pushed.prompt,
                expires_in: pushed.expires_at.saturating_sub(now.0),
                tries: pushed.tries_left,
            },
            Step::Ask(ask) => Reply::Prompt {
                prompt: ask.prompt,
                accept_env_code: self.config.accept_env_code,
                tries: ask.tries_left,
                timeout_secs: self.config.login_timeout.as_secs(),
                note: ask.note,
            },
            Step::Allowed(allowed) => {
                // Ties this pass to the caller's ssh session, its sshd processes (`sshield
                // setup --confirm` looks for it).
                if let Some(ssh) = &peer.session {
                    let parent = ssh.monitor.as_ref().map_or(ssh.session.ppid, |m| m.pid);
                    login.mark_session(ssh.session.pid, parent, now, &self.sink());
                }
                Reply::Allow {
                    method: allowed.method.as_str().to_owned(),
                    banner: allowed.banner,
                }
            }
            Step::Denied(denied) => {
                // The delay is served here, where the client cannot skip it.
                thread::sleep(denied.delay);
                Reply::Deny {
                    reason: denied.reason.as_str().to_owned(),
                    message: denied.message,
                    tries_left: denied.tries_left,
                    last: denied.last,
                }
            }
        }
    }
}
