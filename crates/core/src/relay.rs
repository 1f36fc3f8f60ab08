//! The PAM module's [`Remote`] on a fleet host: the module opens no network connection and
//! starts no thread, so it asks the host's own `sshield daemon` over its Unix socket, and the
//! daemon asks the fleet server (docs/daemon.md, the `verify` request). One blocking
//! connection per code, bounded by a timeout; a daemon that is not there or does not answer in
//! time is [`RemoteAnswer::Unreachable`] (`failmode` decides, as for the server itself), a
//! daemon that refuses (the caller is not root, a broken answer) is [`RemoteAnswer::Refused`].
//!
//! The wire types live here so the daemon (crates/cli) and the module read and write the same
//! lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::caller::Caller;
use crate::engine::Response;
use crate::push::{Approval, PushAnswer, PushAsk, PushLimit, PushSent};
use crate::remote::{Remote, RemoteAnswer};

/// The longest reply line the module reads (the daemon's `MAX_LINE`).
const MAX_REPLY: u64 = 4096;

/// The `verify` request: one verification relayed to the fleet server, which only a root peer
/// may make (sshd's PAM stack runs as root).
#[derive(Debug, Serialize)]
pub struct VerifyRequest<'a> {
    /// Always 1.
    pub v: u64,
    /// Always `verify`.
    pub op: &'a str,
    /// The account logging in.
    pub user: &'a str,
    /// The source address, or what `PAM_RHOST` named when it is no address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rhost: Option<&'a str>,
    /// The PAM service (`sshd`).
    pub service: &'a str,
    /// The code, or with `split` the entry's trailing digits (`Remote::verify_trailing`).
    pub code: &'a str,
    /// `code` is the end of a password typed with the code after it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub split: bool,
}

/// The relayed `push` and `wait` requests (root only, as `verify`).
#[derive(Debug, Serialize)]
struct PushRelay<'a> {
    v: u64,
    op: &'a str,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rhost: Option<&'a str>,
    service: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
}

/// How long the module waits for one relayed round of waiting on a push: the server holds a
/// wait up to its `max_wait` (25 s), the daemon reads it with a margin (35 s).
const WAIT_TIMEOUT: Duration = Duration::from_secs(40);

/// The daemon's `verdict` reply (or an `error` reply), as the module reads it.
#[derive(Debug, Deserialize)]
struct WireReply {
    v: u64,
    reply: String,
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    delay_ms: Option<u64>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    number: Option<u8>,
    #[serde(default)]
    expires_at: Option<u64>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    code_digits: Option<usize>,
}

/// The outcome words of a `verdict` reply, one per [`RemoteAnswer`].
pub fn outcome_word(answer: &RemoteAnswer) -> &'static str {
    match answer {
        RemoteAnswer::Allowed { .. } => "allowed",
        RemoteAnswer::Denied { .. } => "denied",
        RemoteAnswer::Unreachable(_) => "unreachable",
        RemoteAnswer::Refused(_) => "refused",
    }
}

/// The module's remote: the local daemon at `socket`.
#[derive(Debug, Clone)]
pub struct DaemonRemote {
    socket: PathBuf,
    timeout: Duration,
}

impl DaemonRemote {
    /// Asks the daemon at `socket`, waiting at most `timeout` for each of connecting,
    /// writing and reading.
    pub fn new(socket: PathBuf, timeout: Duration) -> Self {
        Self { socket, timeout }
    }

    /// The timeout for a daemon that tries `urls` server URLs, each bounded by `per_url` to
    /// connect and again to read: its worst case, and a margin.
    pub fn timeout_for(per_url: Duration, urls: usize) -> Duration {
        let urls = u32::try_from(urls.max(1)).unwrap_or(u32::MAX);
        per_url
            .saturating_mul(2)
            .saturating_mul(urls)
            .saturating_add(Duration::from_secs(2))
    }

    fn ask(
        &self,
        caller: &Caller,
        code: &Response,
        split: bool,
    ) -> Result<WireReply, std::io::Error> {
        let rhost = rhost_of(caller);
        let request = VerifyRequest {
            v: 1,
            op: "verify",
            user: caller.user.name(),
            rhost: rhost.as_deref(),
            service: &caller.service,
            code: code.expose_secret(),
            split,
        };
        // The line holds the code: wiped once sent.
        let line = Zeroizing::new(serde_json::to_vec(&request).map_err(std::io::Error::other)?);
        self.exchange(line, self.timeout)
    }

    /// Sends `line` (wiped once sent) and reads the one reply line, each within `timeout`.
    fn exchange(
        &self,
        mut line: Zeroizing<Vec<u8>>,
        timeout: Duration,
    ) -> Result<WireReply, std::io::Error> {
        let stream = UnixStream::connect(&self.socket)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(self.timeout))?;
        line.push(b'\n');
        let mut writer = &stream;
        writer.write_all(&line)?;
        writer.flush()?;
        line.zeroize();
        let mut reply = Vec::new();
        BufReader::new(Read::take(&stream, MAX_REPLY)).read_until(b'\n', &mut reply)?;
        if !reply.ends_with(b"\n") {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the daemon closed the connection without a whole answer",
            ));
        }
        serde_json::from_slice(&reply)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// The source a relayed request names: the address, or what `PAM_RHOST` named.
fn rhost_of(caller: &Caller) -> Option<String> {
    caller
        .source
        .map(|a| a.to_string())
        .or_else(|| caller.source_name.clone())
}

impl DaemonRemote {
    /// A relayed `push` or `wait` (`id`) for `caller`, and the daemon's reply.
    fn relay(
        &self,
        op: &str,
        caller: &Caller,
        id: Option<&str>,
        timeout: Duration,
    ) -> Result<WireReply, String> {
        let rhost = rhost_of(caller);
        let request = PushRelay {
            v: 1,
            op,
            user: caller.user.name(),
            rhost: rhost.as_deref(),
            service: &caller.service,
            id,
        };
        let line = Zeroizing::new(serde_json::to_vec(&request).map_err(|e| e.to_string())?);
        let at = self.socket.display();
        match self.exchange(line, timeout) {
            Ok(reply) if reply.v == 1 => Ok(reply),
            Ok(reply) => Err(format!(
                "the daemon at {at} speaks protocol version {}; this module speaks 1",
                reply.v
            )),
            Err(e) => Err(format!("the daemon at {at} did not answer the {op}: {e}")),
        }
    }
}

impl Remote for DaemonRemote {
    fn push(&self, caller: &Caller, ask: &PushAsk) -> PushAnswer {
        if ask.without_number {
            return PushAnswer::Refused("the PAM module never pushes without a number".to_owned());
        }
        let reply = match self.relay("push", caller, None, self.timeout) {
            Ok(reply) => reply,
            Err(what) => return PushAnswer::Unreachable(what),
        };
        let message = reply.message.clone().unwrap_or_default();
        match (reply.reply.as_str(), reply.outcome.as_deref()) {
            ("pushed", Some("sent")) => match (reply.id, reply.number, reply.expires_at) {
                (Some(id), Some(number), Some(expires_at)) => PushAnswer::Sent(PushSent {
                    id,
                    number: Some(number),
                    expires_at,
                }),
                _ => PushAnswer::Refused("the daemon's push has no id, number or expiry".into()),
            },
            ("pushed", Some("push-pending")) => PushAnswer::Limited(PushLimit::Pending, message),
            ("pushed", Some("push-too-many")) => PushAnswer::Limited(PushLimit::TooMany, message),
            ("pushed", Some("push-blocked")) => PushAnswer::Limited(PushLimit::Blocked, message),
            ("pushed", Some("push-no-user")) => PushAnswer::Limited(PushLimit::NoSuchUser, message),
            ("pushed", Some("unreachable")) => PushAnswer::Unreachable(message),
            (other, outcome) => PushAnswer::Refused(format!(
                "the daemon answered the push with {other:?} ({outcome:?}): {message}{}",
                reply.error.map(|e| format!(" ({e})")).unwrap_or_default()
            )),
        }
    }

    fn wait(&self, caller: &Caller, id: &str) -> Approval {
        let reply = match self.relay("wait", caller, Some(id), WAIT_TIMEOUT) {
            Ok(reply) => reply,
            Err(what) => return Approval::Unreachable(what),
        };
        let message = reply.message.clone().unwrap_or_default();
        match (reply.reply.as_str(), reply.state.as_deref()) {
            ("approval", Some("unreachable")) => Approval::Unreachable(message),
            ("approval", Some("refused")) => Approval::Refused(message),
            ("approval", Some(state)) => Approval::of_state(state),
            (other, _) => Approval::Refused(format!(
                "the daemon answered the wait with {other:?}: {message}"
            )),
        }
    }

    fn verify(&self, caller: &Caller, code: &Response) -> RemoteAnswer {
        self.verdict(self.ask(caller, code, false)).0
    }

    fn verify_trailing(
        &self,
        caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>) {
        self.verdict(self.ask(caller, trailing, true))
    }
}

impl DaemonRemote {
    /// The answer in the daemon's reply to a `verify`, and its `code_digits`.
    fn verdict(&self, reply: Result<WireReply, std::io::Error>) -> (RemoteAnswer, Option<usize>) {
        let at = self.socket.display();
        let reply = match reply {
            Ok(reply) => reply,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                let why = format!(
                    "the daemon at {at} answered something that is not a verdict ({e}); run \
                     the same version of `sshield daemon` as of the module"
                );
                return (RemoteAnswer::Refused(why), None);
            }
            Err(e) => {
                let why = format!(
                    "the daemon at {at} (which asks the fleet server) did not answer: {e}; \
                     start `sshield daemon` (systemctl start sshield.socket)"
                );
                return (RemoteAnswer::Unreachable(why), None);
            }
        };
        if reply.v != 1 {
            let why = format!(
                "the daemon at {at} speaks protocol version {}; this module speaks 1",
                reply.v
            );
            return (RemoteAnswer::Refused(why), None);
        }
        let message = reply.message.unwrap_or_default();
        let answer = match (reply.reply.as_str(), reply.outcome.as_deref()) {
            ("verdict", Some("allowed")) => RemoteAnswer::Allowed {
                method: reply.method.unwrap_or_default(),
            },
            ("verdict", Some("denied")) => RemoteAnswer::Denied {
                reason: reply.reason.unwrap_or_default(),
                delay: reply.delay_ms.map(Duration::from_millis),
            },
            ("verdict", Some("unreachable")) => RemoteAnswer::Unreachable(message),
            ("verdict", Some("refused")) => RemoteAnswer::Refused(message),
            ("error", _) => RemoteAnswer::Refused(format!(
                "the daemon at {at} refused the request ({}): {message}",
                reply.error.unwrap_or_default()
            )),
            (other, outcome) => RemoteAnswer::Refused(format!(
                "the daemon at {at} answered {other:?} with outcome {outcome:?}, not a verdict"
            )),
        };
        (answer, reply.code_digits)
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use std::io::Read;
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::accounts::Account;

    fn caller() -> Caller {
        Caller::new(Account::from_system("carol".into()), "sshd")
            .from_source("192.0.2.7".parse().ok())
    }

    /// What the module's client makes of `reply` from a peer on a real socket, and the line
    /// the peer read.
    fn answer_to(reply: &'static str) -> (RemoteAnswer, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let listener = UnixListener::bind(&path).unwrap();
        let peer = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(&stream).read_line(&mut line).unwrap();
            (&stream).write_all(reply.as_bytes()).unwrap();
            line
        });
        let remote = DaemonRemote::new(path, Duration::from_secs(5));
        let answer = remote.verify(&caller(), &Response::new("123456"));
        (answer, peer.join().unwrap())
    }

    #[test]
    fn the_request_and_each_verdict() {
        let (answer, line) = answer_to(
            "{\"v\":1,\"reply\":\"verdict\",\"outcome\":\"allowed\",\"method\":\"totp\"}\n",
        );
        assert_eq!(
            line,
            "{\"v\":1,\"op\":\"verify\",\"user\":\"carol\",\"rhost\":\"192.0.2.7\",\"service\":\"sshd\",\"code\":\"123456\"}\n"
        );
        assert_eq!(
            answer,
            RemoteAnswer::Allowed {
                method: "totp".into()
            }
        );
        let (answer, _) = answer_to(
            "{\"v\":1,\"reply\":\"verdict\",\"outcome\":\"denied\",\"reason\":\"replayed\",\"delay_ms\":250}\n",
        );
        assert_eq!(
            answer,
            RemoteAnswer::Denied {
                reason: "replayed".into(),
                delay: Some(Duration::from_millis(250))
            }
        );
        let (answer, _) = answer_to(
            "{\"v\":1,\"reply\":\"verdict\",\"outcome\":\"unreachable\",\"message\":\"down\"}\n",
        );
        assert_eq!(answer, RemoteAnswer::Unreachable("down".into()));
        // A refusal, an error reply (`busy` too: local users filling the daemon's slots must
        // not turn remote logins over to `failmode`), something else: denied, never `failmode`.
        for reply in [
            "{\"v\":1,\"reply\":\"error\",\"error\":\"busy\",\"message\":\"full\"}\n",
            "{\"v\":1,\"reply\":\"verdict\",\"outcome\":\"refused\",\"message\":\"revoked\"}\n",
            "{\"v\":1,\"reply\":\"error\",\"error\":\"forbidden\",\"message\":\"root only\"}\n",
            "{\"v\":1,\"reply\":\"allow\",\"method\":\"totp\"}\n",
            "{\"v\":2,\"reply\":\"verdict\",\"outcome\":\"allowed\"}\n",
            "not json\n",
        ] {
            let (answer, _) = answer_to(reply);
            assert!(
                matches!(answer, RemoteAnswer::Refused(_)),
                "{reply}: {answer:?}"
            );
        }
    }

    #[test]
    fn a_daemon_that_is_not_there_or_silent_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sock");
        let remote = DaemonRemote::new(path.clone(), Duration::from_millis(300));
        let answer = remote.verify(&caller(), &Response::new("123456"));
        assert!(matches!(answer, RemoteAnswer::Unreachable(_)), "{answer:?}");
        // Listening, reading, never answering: the timeout ends it.
        let listener = UnixListener::bind(&path).unwrap();
        let peer = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut all = Vec::new();
            let _ = stream.read_to_end(&mut all);
        });
        let answer = remote.verify(&caller(), &Response::new("123456"));
        assert!(matches!(answer, RemoteAnswer::Unreachable(_)), "{answer:?}");
        drop(remote);
        peer.join().unwrap();
    }
}
