//! The socket protocol between `sshield login` and `sshield daemon` (docs/daemon.md).
//!
//! One JSON object per line each way, at most [`MAX_LINE`] bytes including the newline, every
//! object carrying `"v": 1`. The client asks `{"v":1,"op":"need"}` (is a second factor needed
//! for me, now, from where I logged in?) and `{"v":1,"op":"check","code":"123456"}`, with
//! `"entry":"env"` when the code came from `SSHIELD_CODE` rather than the prompt. The daemon
//! holds the connection's login ([`sshield_core::Login`]): its replies say how many tries are
//! left and whether a denial is the last, so the client counts nothing and reads no reason
//! word. Fields added since the first version are optional both ways, so `"v"` stays 1. Who "me"
//! is, and from where, the daemon learns from the kernel and from `/proc`, never from the
//! request: `need` and `check` have no field that names a user, a pid or an address. The one
//! request that does, `verify` (the PAM module on a fleet host relaying one code to the fleet
//! server: `user`, `rhost`, `service`, `code`), is refused unless the peer is root; its reply
//! is a `verdict` ([`sshield_core::relay`] is the module's side). Anything else — too long,
//! not JSON, an unknown field, another version — gets an `error` reply and the connection is
//! closed.

use std::fmt;
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};
use sshield_core::push::Invocation;
use sshield_core::Response;
use zeroize::Zeroizing;

/// The protocol version this build speaks.
pub(crate) const VERSION: u64 = 1;
/// The longest line, newline included, either way.
pub(crate) const MAX_LINE: usize = 4096;
/// The longest code: 8 digits, or a backup code, with room for pasted spaces.
pub(crate) const MAX_CODE: usize = 64;

/// What a client may ask.
#[derive(Debug)]
pub(crate) enum Request {
    /// Must the caller pass a second factor now? With how the client logs in (for a push).
    Need(Invocation),
    /// Send a push to the caller's phone (`sshield login` with no terminal).
    Push,
    /// Wait for the phone's answer to the caller's push; a request sent meanwhile (a code
    /// typed instead) ends the wait.
    Wait,
    /// Relay a push request to the fleet server (root peers only: the PAM module).
    RelayPush {
        /// The account logging in.
        user: String,
        /// The source address, or the name `PAM_RHOST` gave.
        rhost: Option<String>,
        /// The PAM service.
        service: String,
    },
    /// Relay one round of waiting on push `id` (root peers only).
    RelayWait {
        /// The account logging in.
        user: String,
        /// The PAM service.
        service: String,
        /// The push's id.
        id: String,
    },
    /// Check this code (or backup code) for the caller, and use it up if good.
    Check {
        /// The code.
        code: Response,
        /// It came from `SSHIELD_CODE`, not from the prompt (`"entry":"env"`): checked only if
        /// shaped like a code, and it uses no try.
        pre_supplied: bool,
    },
    /// Relay one verification to the fleet server (root peers only: the PAM module).
    Verify {
        /// The account logging in, as the module resolved it.
        user: String,
        /// The source address, or the name `PAM_RHOST` gave.
        rhost: Option<String>,
        /// The PAM service.
        service: String,
        /// The code, or with `split` the trailing digits of a password typed with the code
        /// after it (`forward_pass`).
        code: Response,
        /// The server takes the code off `code`'s end by the lengths of the user's codes.
        split: bool,
    },
}

/// The daemon's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub(crate) enum Reply {
    /// No code needed; `reason` is the exemption's log word (`network`, `user`, ...).
    Exempt {
        /// Why.
        reason: String,
    },
    /// Ask for a code.
    Prompt {
        /// The prompt text (config `prompt`).
        prompt: String,
        /// Whether `SSHIELD_CODE` may stand in for a prompt (config `accept_env_code`).
        accept_env_code: bool,
        /// Codes the daemon accepts on this connection (config `login_tries`).
        tries: u32,
        /// How long to wait for the user (config `login_timeout`).
        timeout_secs: u64,
        /// Something to tell the user first: why a code from `SSHIELD_CODE` was not taken.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// The code is good.
    Allow {
        /// `totp`, `hotp` or `backup`.
        method: String,
        /// Text to show the user (config `banner`).
        banner: Option<String>,
    },
    /// The code is not good.
    Deny {
        /// The stable reason word (`wrong-code`, `replayed`, `locked`, ...).
        reason: String,
        /// A sentence for the user.
        message: String,
        /// Codes still accepted on this connection; 0 means it is about to close.
        tries_left: u32,
        /// The login is over (out of tries, or locked): the connection closes after this.
        #[serde(default)]
        last: bool,
    },
    /// A push was sent to the user's phone: show the prompt (it holds the number), then
    /// `wait`, or `check` a code typed instead.
    Push {
        /// The number to pick on the phone; none for a push without one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<u8>,
        /// The prompt, with the number.
        prompt: String,
        /// Seconds until the push expires.
        expires_in: u64,
        /// Codes the daemon still accepts on this connection.
        tries: u32,
    },
    /// The fleet server's answer to a relayed push request (`sent`, a limit's word
    /// `push-pending`, `push-too-many`, `push-blocked`, `push-no-user`, or `unreachable`,
    /// `refused`); the connection closes after this.
    Pushed {
        /// What happened.
        outcome: String,
        /// The push's id (`sent`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The number (`sent`, unless the push has none).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        number: Option<u8>,
        /// When it expires, Unix seconds (`sent`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
        /// What the server said.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// One round of waiting on a relayed push: `pending`, `approved`, `denied`, `reported`,
    /// `expired`, `unreachable` or `refused`; the connection closes after this.
    Approval {
        /// Where the push stands.
        state: String,
        /// What failed (`unreachable`, `refused`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The fleet server's answer to a `verify` request; the connection closes after this.
    Verdict {
        /// `allowed`, `denied`, `unreachable` or `refused`.
        outcome: String,
        /// How the user passed (`allowed`): `totp`, `hotp` or `backup`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        method: Option<String>,
        /// Why not (`denied`): the server's reason word.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// How long the module waits before telling the user (`denied`, when the server says).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
        /// What failed (`unreachable`, `refused`), for the module's log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
        /// For a `split` verify: how many of the code's last characters were the code, when
        /// the server says.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code_digits: Option<u8>,
    },
    /// The request could not be served; the connection closes after this.
    Error {
        /// A stable word: `too-long`, `malformed`, `version`, `unknown-peer`, `busy`...
        error: String,
        /// What went wrong.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    v: u64,
    #[serde(flatten)]
    reply: Reply,
}

/// Why a line is not a request (or not a reply).
#[derive(Debug)]
pub(crate) enum ProtocolError {
    /// Longer than [`MAX_LINE`].
    TooLong,
    /// The stream ended in the middle of a line.
    Truncated,
    /// Not a JSON object of the expected shape.
    Malformed(String),
    /// Another protocol version.
    Version(u64),
    /// A `check` without a usable code.
    BadCode(&'static str),
    /// The connection failed.
    Io(io::Error),
}

impl ProtocolError {
    /// The stable word sent in an `error` reply.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Self::TooLong => "too-long",
            Self::Truncated => "truncated",
            Self::Malformed(_) => "malformed",
            Self::Version(_) => "version",
            Self::BadCode(_) => "bad-code",
            Self::Io(_) => "io",
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLong => write!(f, "line longer than {MAX_LINE} bytes"),
            Self::Truncated => f.write_str("the stream ended inside a line"),
            Self::Malformed(why) => write!(f, "not a request: {why}"),
            Self::Version(v) => write!(
                f,
                "protocol version {v} is not spoken here (only {VERSION})"
            ),
            Self::BadCode(why) => f.write_str(why),
            Self::Io(e) => write!(f, "connection failed: {e}"),
        }
    }
}

impl From<io::Error> for ProtocolError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Reads lines of at most [`MAX_LINE`] bytes from a stream, without a `BufReader`: its buffer
/// would keep copies of codes after use. Everything read is held in one allocation, made once
/// at full size and wiped on drop, and each line is handed out in a buffer wiped on drop.
#[derive(Debug)]
pub(crate) struct LineReader<R> {
    inner: R,
    pending: Zeroizing<Vec<u8>>,
}

impl<R: Read> LineReader<R> {
    /// Reads from `inner`.
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            pending: Zeroizing::new(Vec::with_capacity(2 * MAX_LINE)),
        }
    }

    /// The stream.
    pub(crate) fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The next line, newline included. `None` at a clean end of stream.
    pub(crate) fn read_line(&mut self) -> Result<Option<Zeroizing<Vec<u8>>>, ProtocolError> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                if i >= MAX_LINE {
                    return Err(ProtocolError::TooLong);
                }
                let mut line = Zeroizing::new(Vec::with_capacity(i + 1));
                line.extend_from_slice(&self.pending[..=i]);
                self.pending.drain(..=i);
                return Ok(Some(line));
            }
            if self.pending.len() >= MAX_LINE {
                return Err(ProtocolError::TooLong);
            }
            // Never beyond the capacity reserved at the start: no reallocation, no stray copy.
            let mut chunk = Zeroizing::new([0u8; 512]);
            let room = (2 * MAX_LINE - self.pending.len()).min(chunk.len());
            let n = match self.inner.read(&mut chunk[..room]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if n == 0 {
                return if self.pending.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtocolError::Truncated)
                };
            }
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

#[derive(Deserialize)]
struct Versioned {
    v: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireRequest {
    #[expect(dead_code, reason = "checked through `Versioned` first")]
    v: u64,
    op: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    entry: Option<String>,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    rhost: Option<String>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    command: Option<String>,
    #[serde(default)]
    terminal: Option<bool>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    split: bool,
}

/// Parses one request line (as returned by [`LineReader::read_line`]).
pub(crate) fn parse_request(line: &[u8]) -> Result<Request, ProtocolError> {
    let malformed = |e: serde_json::Error| ProtocolError::Malformed(e.to_string());
    // The version first, so a newer client hears "version" rather than "unknown field".
    let versioned: Versioned = serde_json::from_slice(line).map_err(malformed)?;
    match versioned.v {
        Some(VERSION) => {}
        Some(other) => return Err(ProtocolError::Version(other)),
        None => return Err(ProtocolError::Malformed("missing field `v`".into())),
    }
    let wire: WireRequest = serde_json::from_slice(line).map_err(malformed)?;
    let code = wire.code.map(Zeroizing::new);
    let pre_supplied = match wire.entry.as_deref() {
        None | Some("typed") => false,
        Some("env") => true,
        Some(other) => {
            return Err(ProtocolError::Malformed(format!(
                "unknown entry {:?}; use \"typed\" or \"env\"",
                other.chars().take(32).collect::<String>()
            )))
        }
    };
    if wire.op != "check" && wire.entry.is_some() {
        return Err(ProtocolError::Malformed(
            "only `check` takes an `entry`".into(),
        ));
    }
    if wire.op != "need" && (wire.command.is_some() || wire.terminal.is_some()) {
        return Err(ProtocolError::Malformed(
            "only `need` takes a `command` or `terminal`".into(),
        ));
    }
    let relayed = wire.user.is_some();
    if !matches!(wire.op.as_str(), "verify" | "push" | "wait")
        && (relayed || wire.rhost.is_some() || wire.service.is_some())
    {
        return Err(ProtocolError::Malformed(
            "only `verify`, `push` and `wait` take a `user`, `rhost` or `service`".into(),
        ));
    }
    if wire.id.is_some() && !(wire.op == "wait" && relayed) {
        return Err(ProtocolError::Malformed(
            "only a relayed `wait` (with a `user`) takes an `id`".into(),
        ));
    }
    match (wire.op.as_str(), code) {
        ("push" | "wait", Some(_)) => Err(ProtocolError::Malformed(format!(
            "`{}` takes no code",
            wire.op
        ))),
        ("push", None) if relayed => match (wire.user, wire.service) {
            (Some(user), Some(service)) if !user.is_empty() => Ok(Request::RelayPush {
                user,
                rhost: wire.rhost.filter(|r| !r.trim().is_empty()),
                service,
            }),
            _ => Err(ProtocolError::Malformed(
                "a relayed `push` needs a `user` and a `service`".into(),
            )),
        },
        ("wait", None) if relayed => match (wire.user, wire.service, wire.id) {
            (Some(user), Some(service), Some(id)) if !user.is_empty() && !id.is_empty() => {
                Ok(Request::RelayWait { user, service, id })
            }
            _ => Err(ProtocolError::Malformed(
                "a relayed `wait` needs a `user`, a `service` and an `id`".into(),
            )),
        },
        ("push", None) => Ok(Request::Push),
        ("wait", None) => Ok(Request::Wait),
        ("verify", Some(code)) if code.len() > MAX_CODE => {
            Err(ProtocolError::BadCode("the code is too long"))
        }
        ("verify", Some(code)) => match (wire.user, wire.service) {
            (Some(user), Some(service)) if !user.is_empty() => Ok(Request::Verify {
                user,
                rhost: wire.rhost.filter(|r| !r.trim().is_empty()),
                service,
                code: Response::new(&code),
                split: wire.split,
            }),
            _ => Err(ProtocolError::Malformed(
                "`verify` needs a `user` and a `service`".into(),
            )),
        },
        ("verify", None) => Err(ProtocolError::BadCode("`verify` needs a `code`")),
        ("need", None) => Ok(Request::Need(Invocation {
            command: wire.command,
            no_terminal: wire.terminal == Some(false),
        })),
        ("need", Some(_)) => Err(ProtocolError::Malformed("`need` takes no code".into())),
        ("check", Some(code)) if code.len() > MAX_CODE => {
            Err(ProtocolError::BadCode("the code is too long"))
        }
        ("check", Some(code)) if code.trim().is_empty() => {
            Err(ProtocolError::BadCode("the code is empty"))
        }
        ("check", Some(code)) => Ok(Request::Check {
            code: Response::new(&code),
            pre_supplied,
        }),
        ("check", None) => Err(ProtocolError::BadCode("`check` needs a `code`")),
        (op, _) => Err(ProtocolError::Malformed(format!(
            "unknown op {:?}; use \"need\", \"check\", \"push\", \"wait\" or \"verify\"",
            op.chars().take(32).collect::<String>()
        ))),
    }
}

/// Writes a `need` request, saying how the client logs in: its command, and whether a
/// terminal shows the prompt.
pub(crate) fn write_need(
    writer: &mut impl Write,
    command: Option<&str>,
    terminal: bool,
) -> io::Result<()> {
    #[derive(Serialize)]
    struct Need<'a> {
        v: u64,
        op: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        command: Option<&'a str>,
        terminal: bool,
    }
    let mut line = serde_json::to_vec(&Need {
        v: VERSION,
        op: "need",
        command,
        terminal,
    })
    .map_err(io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line)?;
    writer.flush()
}

/// Writes a `push` or `wait` request (`op`) of `sshield login`.
pub(crate) fn write_op(writer: &mut impl Write, op: &str) -> io::Result<()> {
    writer.write_all(format!("{{\"v\":1,\"op\":\"{op}\"}}\n").as_bytes())?;
    writer.flush()
}

/// Writes a `check` request for `code` (from `SSHIELD_CODE` if `pre_supplied`), through a
/// buffer that is wiped afterwards.
pub(crate) fn write_check(
    writer: &mut impl Write,
    code: &str,
    pre_supplied: bool,
) -> io::Result<()> {
    #[derive(Serialize)]
    struct Check<'a> {
        v: u64,
        op: &'a str,
        code: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        entry: Option<&'a str>,
    }
    let mut line = Zeroizing::new(Vec::with_capacity(MAX_LINE));
    serde_json::to_writer(
        &mut *line,
        &Check {
            v: VERSION,
            op: "check",
            code,
            entry: pre_supplied.then_some("env"),
        },
    )
    .map_err(io::Error::other)?;
    line.push(b'\n');
    writer.write_all(&line)?;
    writer.flush()
}

/// Writes a reply. One that would exceed [`MAX_LINE`] (a very long banner) is replaced by an
/// error, so the client never sees a line it must refuse.
pub(crate) fn write_reply(writer: &mut impl Write, reply: &Reply) -> io::Result<()> {
    let mut line = serde_json::to_vec(&Envelope {
        v: VERSION,
        reply: reply.clone(),
    })
    .map_err(io::Error::other)?;
    if line.len() >= MAX_LINE {
        line = serde_json::to_vec(&Envelope {
            v: VERSION,
            reply: Reply::Error {
                error: "too-long".into(),
                message: "the reply (with the config's banner) is too long; shorten `banner`"
                    .into(),
            },
        })
        .map_err(io::Error::other)?;
    }
    line.push(b'\n');
    writer.write_all(&line)?;
    writer.flush()
}

/// Reads one reply.
pub(crate) fn read_reply(reader: &mut LineReader<impl Read>) -> Result<Reply, ProtocolError> {
    let line = reader.read_line()?.ok_or(ProtocolError::Truncated)?;
    let envelope: Envelope =
        serde_json::from_slice(&line).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if envelope.v != VERSION {
        return Err(ProtocolError::Version(envelope.v));
    }
    Ok(envelope.reply)
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use super::*;

    fn parse(text: &str) -> Result<Request, ProtocolError> {
        parse_request(text.as_bytes())
    }

    #[test]
    fn the_two_requests() {
        assert!(matches!(
            parse("{\"v\":1,\"op\":\"need\"}\n"),
            Ok(Request::Need(_))
        ));
        let check = parse("{\"v\":1,\"op\":\"check\",\"code\":\" 123456 \"}\n").unwrap();
        assert!(matches!(
            check,
            Request::Check {
                pre_supplied: false,
                ..
            }
        ));
        let env = parse("{\"v\":1,\"op\":\"check\",\"code\":\"123456\",\"entry\":\"env\"}\n");
        assert!(matches!(
            env,
            Ok(Request::Check {
                pre_supplied: true,
                ..
            })
        ));
        // The code never shows in Debug output.
        assert!(!format!("{check:?}").contains("123456"));
    }

    #[test]
    fn the_module_s_verify_request() {
        let text = "{\"v\":1,\"op\":\"verify\",\"user\":\"alice\",\"rhost\":\"192.0.2.7\",\"service\":\"sshd\",\"code\":\"123456\"}\n";
        match parse(text).unwrap() {
            Request::Verify {
                user,
                rhost,
                service,
                code,
                split,
            } => {
                assert!(!split);
                assert_eq!(user, "alice");
                assert_eq!(rhost.as_deref(), Some("192.0.2.7"));
                assert_eq!(service, "sshd");
                assert_eq!(code.expose_secret(), "123456");
            }
            other => panic!("{other:?}"),
        }
        // What the module writes parses here.
        let caller =
            sshield_core::Caller::new(sshield_core::Account::from_system("bob".into()), "sshd");
        let request = sshield_core::relay::VerifyRequest {
            v: VERSION,
            op: "verify",
            user: caller.user.name(),
            rhost: None,
            service: &caller.service,
            code: "654321",
            split: false,
        };
        let line = serde_json::to_vec(&request).unwrap();
        assert!(matches!(
            parse_request(&line),
            Ok(Request::Verify {
                rhost: None,
                split: false,
                ..
            })
        ));
        // `forward_pass`: the trailing digits, for the server to split.
        let split = sshield_core::relay::VerifyRequest {
            split: true,
            ..request
        };
        let line = serde_json::to_vec(&split).unwrap();
        assert!(String::from_utf8_lossy(&line).contains("\"split\":true"));
        assert!(matches!(
            parse_request(&line),
            Ok(Request::Verify { split: true, .. })
        ));
        for (bad, word) in [
            (
                "{\"v\":1,\"op\":\"verify\",\"service\":\"sshd\",\"code\":\"1\"}",
                "malformed",
            ),
            (
                "{\"v\":1,\"op\":\"verify\",\"user\":\"\",\"service\":\"sshd\",\"code\":\"1\"}",
                "malformed",
            ),
            (
                "{\"v\":1,\"op\":\"verify\",\"user\":\"a\",\"code\":\"1\"}",
                "malformed",
            ),
            (
                "{\"v\":1,\"op\":\"verify\",\"user\":\"a\",\"service\":\"sshd\"}",
                "bad-code",
            ),
            (
                "{\"v\":1,\"op\":\"check\",\"code\":\"1\",\"user\":\"a\"}",
                "malformed",
            ),
            (
                "{\"v\":1,\"op\":\"need\",\"service\":\"sshd\"}",
                "malformed",
            ),
        ] {
            assert_eq!(parse(bad).unwrap_err().as_str(), word, "{bad}");
        }
    }

    #[test]
    fn the_push_requests() {
        let need = parse("{\"v\":1,\"op\":\"need\",\"command\":\"scp -t x\",\"terminal\":false}\n");
        assert!(
            matches!(&need, Ok(Request::Need(i)) if i.no_terminal && i.command.as_deref() == Some("scp -t x")),
            "{need:?}"
        );
        assert!(matches!(
            parse("{\"v\":1,\"op\":\"push\"}\n"),
            Ok(Request::Push)
        ));
        assert!(matches!(
            parse("{\"v\":1,\"op\":\"wait\"}\n"),
            Ok(Request::Wait)
        ));
        let relayed = parse(
            "{\"v\":1,\"op\":\"wait\",\"user\":\"bob\",\"service\":\"sshd\",\"id\":\"r7\"}\n",
        );
        assert!(
            matches!(&relayed, Ok(Request::RelayWait { user, id, .. }) if user == "bob" && id == "r7"),
            "{relayed:?}"
        );
        let relayed = parse(
            "{\"v\":1,\"op\":\"push\",\"user\":\"bob\",\"rhost\":\"192.0.2.1\",\"service\":\"sshd\"}\n",
        );
        assert!(
            matches!(&relayed, Ok(Request::RelayPush { .. })),
            "{relayed:?}"
        );
    }

    #[test]
    fn what_is_refused_and_why() {
        let cases = [
            ("", "malformed"),
            ("garbage\n", "malformed"),
            ("[1,2]\n", "malformed"),
            ("{\"op\":\"need\"}\n", "malformed"),
            ("{\"v\":2,\"op\":\"need\",\"new\":true}\n", "version"),
            ("{\"v\":\"1\",\"op\":\"need\"}\n", "malformed"),
            ("{\"v\":1,\"op\":\"need\",\"user\":\"root\"}\n", "malformed"),
            ("{\"v\":1,\"op\":\"need\",\"pid\":1}\n", "malformed"),
            ("{\"v\":1,\"op\":\"need\",\"code\":\"1\"}\n", "malformed"),
            ("{\"v\":1,\"op\":\"fly\"}\n", "malformed"),
            ("{\"v\":1,\"op\":\"push\",\"code\":\"1\"}\n", "malformed"),
            ("{\"v\":1,\"op\":\"wait\",\"id\":\"x\"}\n", "malformed"),
            (
                "{\"v\":1,\"op\":\"check\",\"code\":\"1\",\"terminal\":false}\n",
                "malformed",
            ),
            (
                "{\"v\":1,\"op\":\"wait\",\"user\":\"bob\",\"service\":\"sshd\"}\n",
                "malformed",
            ),
            ("{\"v\":1,\"op\":\"check\"}\n", "bad-code"),
            ("{\"v\":1,\"op\":\"check\",\"code\":\"  \"}\n", "bad-code"),
            ("{\"v\":1,\"op\":\"check\",\"code\":12}\n", "malformed"),
            (
                "{\"v\":1,\"op\":\"check\",\"code\":\"1\",\"entry\":\"file\"}\n",
                "malformed",
            ),
            ("{\"v\":1,\"op\":\"need\",\"entry\":\"env\"}\n", "malformed"),
        ];
        for (text, word) in cases {
            match parse(text) {
                Ok(r) => panic!("{text:?} parsed as {r:?}"),
                Err(e) => assert_eq!(e.as_str(), word, "{text:?}: {e}"),
            }
        }
        let long = format!(
            "{{\"v\":1,\"op\":\"check\",\"code\":\"{}\"}}",
            "1".repeat(65)
        );
        assert_eq!(parse(&long).unwrap_err().as_str(), "bad-code");
    }

    fn lines(bytes: impl Into<Vec<u8>>) -> LineReader<std::io::Cursor<Vec<u8>>> {
        LineReader::new(std::io::Cursor::new(bytes.into()))
    }

    /// One byte per read, as a slow client sends them.
    struct Trickle(Vec<u8>, usize);

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match (self.0.get(self.1), buf.first_mut()) {
                (Some(&b), Some(slot)) => {
                    *slot = b;
                    self.1 += 1;
                    Ok(1)
                }
                _ => Ok(0),
            }
        }
    }

    #[test]
    fn lines_arrive_whole_however_they_are_split() {
        let text =
            b"{\"v\":1,\"op\":\"need\"}\n{\"v\":1,\"op\":\"check\",\"code\":\"1\"}\n".to_vec();
        let mut r = LineReader::new(Trickle(text, 0));
        assert!(matches!(
            parse_request(&r.read_line().unwrap().unwrap()),
            Ok(Request::Need(_))
        ));
        assert!(matches!(
            parse_request(&r.read_line().unwrap().unwrap()),
            Ok(Request::Check { .. })
        ));
        assert!(r.read_line().unwrap().is_none());
    }

    #[test]
    fn lines_are_length_limited() {
        let mut ok = lines(b"{\"v\":1}\n{\"v\":1}\n".to_vec());
        assert_eq!(ok.read_line().unwrap().unwrap().as_slice(), b"{\"v\":1}\n");
        assert_eq!(ok.read_line().unwrap().unwrap().as_slice(), b"{\"v\":1}\n");
        assert!(ok.read_line().unwrap().is_none());

        let mut exact = vec![b' '; MAX_LINE - 1];
        exact.push(b'\n');
        assert!(lines(exact).read_line().unwrap().is_some());
        let long = vec![b'x'; MAX_LINE + 10];
        let e = lines(long).read_line().unwrap_err();
        assert_eq!(e.as_str(), "too-long");
        let e = lines(b"{\"v\":1".to_vec()).read_line().unwrap_err();
        assert_eq!(e.as_str(), "truncated");
    }

    #[test]
    fn replies_round_trip() {
        let replies = [
            Reply::Exempt {
                reason: "network".into(),
            },
            Reply::Prompt {
                prompt: "Verification code: ".into(),
                accept_env_code: true,
                tries: 3,
                timeout_secs: 60,
                note: None,
            },
            Reply::Prompt {
                prompt: "Verification code: ".into(),
                accept_env_code: true,
                tries: 3,
                timeout_secs: 60,
                note: Some("not a code".into()),
            },
            Reply::Allow {
                method: "totp".into(),
                banner: Some("Welcome\n\"x\"".into()),
            },
            Reply::Deny {
                reason: "wrong-code".into(),
                message: "wrong code".into(),
                tries_left: 2,
                last: false,
            },
            Reply::Deny {
                reason: "locked".into(),
                message: "too many failures".into(),
                tries_left: 0,
                last: true,
            },
            Reply::Error {
                error: "malformed".into(),
                message: "no".into(),
            },
            Reply::Verdict {
                outcome: "denied".into(),
                method: None,
                reason: Some("wrong-code".into()),
                delay_ms: Some(1500),
                message: None,
                code_digits: None,
            },
            Reply::Verdict {
                outcome: "allowed".into(),
                method: Some("totp".into()),
                reason: None,
                delay_ms: None,
                message: None,
                code_digits: Some(8),
            },
        ];
        for reply in replies {
            let mut buf = Vec::new();
            write_reply(&mut buf, &reply).unwrap();
            assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
            assert!(buf.starts_with(b"{\"v\":1,\"reply\":"), "{buf:?}");
            let back = read_reply(&mut lines(buf)).unwrap();
            assert_eq!(back, reply);
        }
        let huge = Reply::Allow {
            method: "totp".into(),
            banner: Some("x".repeat(MAX_LINE)),
        };
        let mut buf = Vec::new();
        write_reply(&mut buf, &huge).unwrap();
        assert!(matches!(
            read_reply(&mut lines(buf)).unwrap(),
            Reply::Error { .. }
        ));
    }

    #[test]
    fn requests_written_by_the_client_parse() {
        let mut buf = Vec::new();
        write_need(&mut buf, None, true).unwrap();
        assert!(matches!(parse_request(&buf), Ok(Request::Need(_))));
        let mut buf = Vec::new();
        write_check(&mut buf, "12\"34\n", false).unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(matches!(
            parse_request(&buf),
            Ok(Request::Check {
                pre_supplied: false,
                ..
            })
        ));
        let mut buf = Vec::new();
        write_check(&mut buf, "123456", true).unwrap();
        assert!(matches!(
            parse_request(&buf),
            Ok(Request::Check {
                pre_supplied: true,
                ..
            })
        ));
    }

    /// Random bytes, and random mutations of good requests, never panic the parser or the
    /// line reader; every outcome is a request or an error with a stable word.
    #[test]
    fn fuzzed_input_never_panics() {
        // A small xorshift, seeded per run from the OS so runs differ; the seed is printed
        // for reproducing a failure.
        let mut seed = [0u8; 8];
        getrandom_seed(&mut seed);
        let mut state = u64::from_le_bytes(seed) | 1;
        eprintln!("fuzz seed {state:#x}");
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let seeds: [&[u8]; 3] = [
            b"{\"v\":1,\"op\":\"need\"}\n",
            b"{\"v\":1,\"op\":\"check\",\"code\":\"123456\"}\n",
            b"{\"v\":1,\"reply\":\"deny\",\"reason\":\"x\",\"message\":\"y\",\"tries_left\":1}\n",
        ];
        for round in 0..20_000 {
            let len = (next() % 300) as usize;
            let bytes: Vec<u8> = if round % 2 == 0 {
                (0..len).map(|_| next() as u8).collect()
            } else {
                let mut b = seeds[(next() % 3) as usize].to_vec();
                for _ in 0..(1 + next() % 4) {
                    let at = (next() as usize) % b.len();
                    match next() % 3 {
                        0 => b[at] = next() as u8,
                        1 => b.insert(at, next() as u8),
                        _ => {
                            b.remove(at);
                            if b.is_empty() {
                                b.push(b'{');
                            }
                        }
                    }
                }
                b
            };
            let mut reader = lines(bytes.clone());
            while let Ok(Some(line)) = reader.read_line() {
                if let Err(e) = parse_request(&line) {
                    assert!(!e.as_str().is_empty());
                }
            }
            let _ = read_reply(&mut lines(bytes));
        }
    }

    fn getrandom_seed(out: &mut [u8; 8]) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(7);
        *out = (nanos as u64 ^ u64::from(std::process::id())).to_le_bytes();
    }
}
