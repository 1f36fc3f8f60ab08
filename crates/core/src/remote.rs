//! A second opinion from elsewhere: on a host that joined a fleet, users with no record in
//! the local store are checked by the fleet server. Core knows nothing of HTTP: the daemon
//! gives the engine a [`Remote`] ([`Engine::with_remote`](crate::Engine::with_remote)), and
//! the login conversation asks it, logs its answer and applies `failmode` when it says the
//! server is [`RemoteAnswer::Unreachable`], the same way for every front end that goes
//! through the daemon.

use std::fmt;

use crate::caller::Caller;
use crate::engine::{DenyReason, Method, Response};
use crate::push::{Approval, PushAnswer, PushAsk};

/// What checks a code where the secrets are: the fleet server.
pub trait Remote: fmt::Debug + Send + Sync {
    /// Asks whether `code` is good for `caller`. Blocks, bounded by the remote's timeouts.
    fn verify(&self, caller: &Caller, code: &Response) -> RemoteAnswer;

    /// Asks about the end of a password typed with the code after it (`forward_pass`):
    /// `trailing` is the entry's trailing digits, at most 8, and the remote takes the code off
    /// their end by the lengths of the user's codes (the host does not know them). The answer,
    /// and how many of `trailing`'s last characters were the code, if the remote says.
    fn verify_trailing(
        &self,
        caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>);

    /// Asks the server to push a login request for `caller` to their phone. No default: a
    /// remote that wraps another must pass push on, not refuse it by omission.
    fn push(&self, caller: &Caller, ask: &PushAsk) -> PushAnswer;

    /// Waits one round (the server's `max_wait` at most) for the outcome of push `id`.
    fn wait(&self, caller: &Caller, id: &str) -> Approval;
}

/// What the remote said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteAnswer {
    /// The code is good; `method` is the server's word (`totp`, `hotp`, `backup`).
    Allowed {
        /// How the user passed, as the server says it.
        method: String,
    },
    /// The code is not good; `reason` is the server's word, the same as a host's
    /// (`wrong-code`, `replayed`, `not-enrolled`, `locked`...).
    Denied {
        /// Why not, as the server says it.
        reason: String,
        /// How long to wait before telling the user, as the server counted the source's
        /// failures across the fleet; `None` from a server that does not say.
        delay: Option<std::time::Duration>,
    },
    /// No server could be reached (refused, timed out, TLS failed, a 5xx): `failmode`
    /// decides. The text says what failed at each URL, for the admin's log.
    Unreachable(String),
    /// A server answered but refused this host (a bad signature, a revoked host, any other
    /// 4xx), or the host's side is broken (its key unreadable): the login is denied, never
    /// let through by `failmode`.
    Refused(String),
}

/// The remote of an engine no front end gave one: on a fleet host, a user the local store does
/// not know is denied, never judged by the local "unenrolled" rules, which would let them in
/// under `unenrolled = "allow"`. The daemon replaces it with its HTTP client, the PAM module
/// with [`DaemonRemote`](crate::relay::DaemonRemote).
#[derive(Debug)]
pub(crate) struct NotHere;

impl Remote for NotHere {
    fn verify_trailing(
        &self,
        caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>) {
        (self.verify(caller, trailing), None)
    }

    fn verify(&self, _caller: &Caller, _code: &Response) -> RemoteAnswer {
        RemoteAnswer::Refused(
            "this host is in a fleet ([server] in the config) but this front end cannot ask \
             the server; log in through `sshield login` (ForceCommand) with `sshield daemon`, \
             or give the user a local record"
                .to_owned(),
        )
    }

    fn push(&self, _caller: &Caller, _ask: &PushAsk) -> PushAnswer {
        PushAnswer::Refused("this front end cannot ask the server for a push".to_owned())
    }

    fn wait(&self, _caller: &Caller, _id: &str) -> Approval {
        Approval::Refused("this front end cannot ask the server about a push".to_owned())
    }
}

/// A method word from the server as core's [`Method`] (the authenticator's name and offset
/// stay on the server).
pub(crate) fn method_of(word: &str) -> Method {
    match word {
        "hotp" => Method::Hotp {
            authenticator: String::new(),
        },
        "backup" => Method::Backup { remaining: 0 },
        "push" => Method::Push,
        _ => Method::Totp {
            authenticator: String::new(),
            offset: 0,
        },
    }
}

/// A reason word from the server as core's [`DenyReason`]; `locked_until` is used for
/// `locked` (the server does not say when its lock ends).
pub(crate) fn reason_of(word: &str, locked_until: u64) -> DenyReason {
    match word {
        "wrong-code" => DenyReason::WrongCode,
        "replayed" => DenyReason::Replayed,
        "not-enrolled" => DenyReason::NotEnrolled,
        "pending" => DenyReason::Pending,
        "disabled" => DenyReason::Disabled,
        "locked" => DenyReason::Locked {
            until: locked_until,
        },
        other => DenyReason::ServerRefused(format!("the server denied with reason {other:?}")),
    }
}
