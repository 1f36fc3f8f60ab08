//! The daemon's side of push approval: relaying the PAM module's push and wait requests to the
//! fleet server (root peers only, as `verify`), and, for `sshield login`, waiting for the
//! phone's answer while the client may still type a code instead.

use std::io;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use sshield_core::push::{self, Approval, PushAnswer, PushAsk};
use sshield_core::{Login, UnixTime};

use super::Shared;
use crate::protocol::{LineReader, Reply};

/// How often a wait looks whether the client sent something (a code typed instead). The
/// phone's answer itself is taken the moment it arrives.
const CLIENT_POLL: Duration = Duration::from_millis(20);

/// Relays a push request for the PAM module. PAM logins always have a prompt to show the
/// number in: never a push without one.
pub(super) fn push(
    shared: &Shared,
    uid: u32,
    user: String,
    rhost: Option<String>,
    service: String,
) -> Reply {
    let (remote, caller) = match shared.relay_for(uid, user, rhost, service) {
        Ok(pair) => pair,
        Err(reply) => return reply,
    };
    let ask = PushAsk {
        command: None,
        without_number: false,
    };
    let pushed = |outcome: &str, message: String| Reply::Pushed {
        outcome: outcome.to_owned(),
        id: None,
        number: None,
        expires_at: None,
        message: Some(message),
    };
    match remote.push(&caller, &ask) {
        PushAnswer::Sent(sent) => Reply::Pushed {
            outcome: "sent".to_owned(),
            id: Some(sent.id),
            number: sent.number,
            expires_at: Some(sent.expires_at),
            message: None,
        },
        PushAnswer::Limited(limit, what) => pushed(limit.as_str(), what),
        PushAnswer::Unreachable(what) => pushed("unreachable", what),
        PushAnswer::Refused(what) => pushed("refused", what),
    }
}

/// Relays one round of waiting on push `id` for the PAM module.
pub(super) fn wait(shared: &Shared, uid: u32, user: String, service: String, id: &str) -> Reply {
    let (remote, caller) = match shared.relay_for(uid, user, None, service) {
        Ok(pair) => pair,
        Err(reply) => return reply,
    };
    let answer = remote.wait(&caller, id);
    let message = match &answer {
        Approval::Unreachable(what) | Approval::Refused(what) => Some(what.clone()),
        _ => None,
    };
    Reply::Approval {
        state: answer.as_str().to_owned(),
        message,
    }
}

/// A wait on the phone's answer running in its own thread: the push it waits on, and where
/// the answer comes.
#[derive(Debug)]
pub(super) struct Waiting {
    id: String,
    answer: mpsc::Receiver<Approval>,
}

/// Waits for the phone's answer to `login`'s pending push: `Some(answer)` when it comes (or
/// the wait's bound passes), `None` as soon as the client sends something (a code typed
/// instead, or it hung up), leaving the wait running in `waiting` for a later `wait` on the
/// same push. At most one wait runs per connection; one on an older push is dropped (its
/// thread ends at that push's deadline, its answer unread).
pub(super) fn await_answer(
    shared: &Shared,
    login: &Login<'_>,
    waiting: &mut Option<Waiting>,
    reader: &LineReader<UnixStream>,
) -> Option<Approval> {
    let pending = login.pending_push();
    if waiting.as_ref().map(|w| w.id.as_str()) != pending.map(|(id, _)| id) {
        *waiting = None;
    }
    if waiting.is_none() {
        let (Some((id, deadline)), Some(remote)) = (pending, &shared.remote) else {
            return Some(Approval::Expired);
        };
        let (tx, rx) = mpsc::channel();
        let remote = Arc::clone(remote);
        let caller = login.caller().clone();
        let id = id.to_owned();
        let waited = id.clone();
        let spawned = thread::Builder::new()
            .name("sshield-push".into())
            .spawn(move || {
                let answer = push::wait_until(
                    || remote.wait(&caller, &waited),
                    deadline,
                    || UnixTime::now().0,
                );
                let _ = tx.send(answer);
            });
        if spawned.is_err() {
            return Some(Approval::Unreachable(
                "the daemon could not start a thread to wait".to_owned(),
            ));
        }
        *waiting = Some(Waiting { id, answer: rx });
    }
    let rx = &waiting.as_ref()?.answer;
    loop {
        match rx.recv_timeout(CLIENT_POLL) {
            Ok(answer) => return Some(answer),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Some(Approval::Unreachable(
                    "the daemon's wait for the push ended without an answer".to_owned(),
                ))
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if client_spoke(reader.get_ref()).unwrap_or(true) {
                    return None;
                }
            }
        }
    }
}

/// Whether the client sent something (or hung up) on `stream`, without reading it.
fn client_spoke(stream: &UnixStream) -> io::Result<bool> {
    let mut fds = [rustix::event::PollFd::new(
        stream,
        rustix::event::PollFlags::IN,
    )];
    match rustix::event::poll(&mut fds, 0) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
