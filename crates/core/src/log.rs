//! The one log line per decision, in a stable format that the shipped fail2ban filter matches,
//! with one severity per kind of event, and the small trait through which a login's lines
//! leave core ([`LogSink`]: `pam_syslog` in the PAM module, `/dev/log` in the daemon).
//!
//! ```text
//! allow user=alice rhost=203.0.113.9 service=sshd method=totp reason=ok
//! deny user=alice rhost=203.0.113.9 service=sshd method=code reason=wrong-code
//! allow user=bob rhost=192.168.1.20 service=sshd method=exempt reason=network
//! ```
//!
//! Fields are `key=value` with no spaces inside values; anything a client controls (the user
//! name, the host) is escaped, so a crafted name cannot forge a second field or line. Front ends
//! send the line to syslog (authpriv); [`append_to_file`] also keeps a copy in a plain file
//! when the config's `log_file` asks for it.

use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::address;
use crate::caller::Caller;
use crate::engine::{Decision, DenyReason, Method};
use crate::policy::Exemption;
use crate::time::UnixTime;

/// Syslog severities (RFC 5424 §6.2.1 numbers), the ones sshield uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The admin must fix something before logins work again (a broken config).
    Error = 3,
    /// Something is wrong that is not the user's doing (a store error, failmode, a file that
    /// could not be written).
    Warning = 4,
    /// A login refused.
    Notice = 5,
    /// A login let through.
    Info = 6,
    /// What a front end is doing, with its `debug` switch on.
    Debug = 7,
}

impl Severity {
    /// The syslog severity number (`LOG_ERR` = 3 ... `LOG_DEBUG` = 7).
    pub fn number(self) -> u8 {
        self as u8
    }
}

/// What a line reports. Each event has one severity ([`Event::severity`]), the same in every
/// front end: before this table the PAM module logged a store error at NOTICE and the daemon
/// at WARNING, a broken config at ERR and WARNING (issue 10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A second factor passed.
    Allow,
    /// A login let through without a code (an exemption).
    Exempt,
    /// A code refused (wrong, replayed, locked, not enrolled...).
    Deny,
    /// A code refused because the store could not be read or written.
    StoreError,
    /// A login refused because the config or the front end's set-up is broken.
    ConfigError,
    /// A login decided by `failmode`: a service it needs could not be reached.
    Failmode,
    /// A problem that decides nothing (a marker or a log file that could not be written, a
    /// conversation that failed).
    Problem,
    /// A service started (the daemon listening).
    Started,
    /// A push sent to a user's phone, or not sent by one of the server's limits: no decision
    /// yet (the decision's own line follows, with `method=push`).
    Push,
    /// A fleet host's queued report that the server refused for good: set aside, never sent
    /// again, so the admin must read it (the audit will not have it).
    ReportRefused,
}

impl Event {
    /// The one severity of this event, everywhere.
    pub fn severity(self) -> Severity {
        match self {
            Self::Allow | Self::Exempt | Self::Started | Self::Push => Severity::Info,
            Self::Deny => Severity::Notice,
            Self::StoreError | Self::Failmode | Self::Problem => Severity::Warning,
            Self::ConfigError | Self::ReportRefused => Severity::Error,
        }
    }
}

/// One line to log, with its severity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// How severe.
    pub severity: Severity,
    /// The text, escaped, without a newline.
    pub text: String,
}

impl Line {
    /// `text` as an `event` line.
    pub fn new(event: Event, text: String) -> Self {
        Self {
            severity: event.severity(),
            text,
        }
    }
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Where a login's lines go. Each front end has one: the PAM module's writes through
/// `pam_syslog` (and the config's `log_file`), the daemon's to `/dev/log` (and `log_file`),
/// a test's into a list. A sink never changes a decision; it cannot fail.
pub trait LogSink {
    /// Writes `line`.
    fn log(&self, line: &Line);
}

/// The line for an engine decision.
pub fn decision_line(caller: &Caller, decision: &Decision) -> Line {
    match decision {
        Decision::Allow(method) => Line::new(
            Event::Allow,
            line("allow", caller, method_name(method), "ok"),
        ),
        Decision::Deny(reason) => {
            let method = match reason {
                DenyReason::NotEnrolled | DenyReason::Pending => "unenrolled",
                DenyReason::PushDenied | DenyReason::PushNotMe | DenyReason::PushExpired => "push",
                _ => "code",
            };
            let mut l = line("deny", caller, method, reason.as_str());
            if let DenyReason::Store(e) = reason {
                // The path and fix, so the admin sees what to repair. Never a secret: store
                // errors name files and modes, not contents.
                let _ = write!(l, " detail=\"{}\"", escape(&e.to_string()));
                return Line::new(Event::StoreError, l);
            }
            if let DenyReason::ServerRefused(what) = reason {
                // A refused signature or a revoked host is the admin's to fix, like a broken
                // config: what the server said, never the code.
                let _ = write!(l, " detail=\"{}\"", escape(what));
                return Line::new(Event::ConfigError, l);
            }
            Line::new(Event::Deny, l)
        }
    }
}

/// The line for a login let through without a code.
pub fn exemption_line(caller: &Caller, exemption: &Exemption) -> Line {
    let method = match exemption {
        Exemption::Unenrolled | Exemption::UnenrolledGrace => "unenrolled",
        _ => "exempt",
    };
    Line::new(
        Event::Exempt,
        line("allow", caller, method, exemption.as_str()),
    )
}

/// The line for a failure before any decision (a broken config): always a denial.
pub fn error_line(caller: &Caller, what: &str) -> Line {
    let mut l = line("deny", caller, "none", "config-error");
    let _ = write!(l, " detail=\"{}\"", escape(what));
    Line::new(Event::ConfigError, l)
}

/// The line for a login decided by `failmode` because a service it needs (the daemon, the
/// approval server) could not be reached: `allowed` under `failmode = "safe"`.
pub fn failmode_line(caller: &Caller, allowed: bool, what: &str) -> Line {
    let (outcome, reason) = if allowed {
        ("allow", "failmode-safe")
    } else {
        ("deny", "unreachable")
    };
    let mut l = line(outcome, caller, "none", reason);
    let _ = write!(l, " detail=\"{}\"", escape(what));
    Line::new(Event::Failmode, l)
}

/// The line for a push sent (`reason=sent`), or not sent by a server's limit (`reason=` the
/// limit's word, `detail=` what the server said). Never `allow` or `deny`: the decision comes
/// later, in its own line.
pub fn push_line(caller: &Caller, reason: &str, detail: Option<&str>) -> Line {
    let mut l = line("push", caller, "push", reason);
    if let Some(detail) = detail {
        let _ = write!(l, " detail=\"{}\"", escape(detail));
    }
    Line::new(Event::Push, l)
}

/// A line about a problem that decides nothing; `text` must hold no secret.
pub fn problem_line(text: &str) -> Line {
    Line::new(Event::Problem, text.to_owned())
}

/// A line about a report the fleet server refused for good ([`Event::ReportRefused`]);
/// `text` must hold no secret.
pub fn report_refused_line(text: &str) -> Line {
    Line::new(Event::ReportRefused, text.to_owned())
}

fn method_name(m: &Method) -> &'static str {
    m.as_str()
}

fn line(outcome: &str, s: &Caller, method: &str, reason: &str) -> String {
    let rhost = s
        .source
        .map(|a| address::canonical(a).to_string())
        .unwrap_or_else(|| "-".into());
    format!(
        "{outcome} user={} rhost={rhost} service={} method={method} reason={reason}",
        escape_token(s.user.name()),
        escape_token(&s.service)
    )
}

/// A value without spaces, quotes or control characters: anything else becomes `\xNN`.
fn escape_token(text: &str) -> String {
    if text.is_empty() {
        return "-".into();
    }
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b".-_@:+/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Text for inside double quotes: printable ASCII except `"` and `\`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

/// Appends `line` to `path` as a syslog-style line (`TIME HOST sshield[PID]: LINE`), creating
/// it 0600. Errors are returned for the caller to report another way; they never change a
/// decision.
pub fn append_to_file(path: &Path, line: &str) -> std::io::Result<()> {
    let host = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let text = format!(
        "{} {host} sshield[{}]: {line}\n",
        UnixTime::now().to_rfc3339(),
        std::process::id()
    );
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    // One write call per line, so lines from concurrent sshd processes never interleave.
    file.write_all(text.as_bytes())
}

impl fmt::Display for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A decision line read back from a log: what [`decision_line`], [`exemption_line`],
/// [`error_line`] and [`failmode_line`] wrote, with its values unescaped (`sshield log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    /// `allow` (true) or `deny`.
    pub allowed: bool,
    /// The account.
    pub user: String,
    /// The client's address, `None` for a local login (`rhost=-`).
    pub rhost: Option<String>,
    /// The PAM service (or `sshield-login` for the ForceCommand helper).
    pub service: String,
    /// `totp`, `hotp`, `backup`, `exempt`, `unenrolled`, `code` or `none`.
    pub method: String,
    /// `ok`, a denial's reason or an exemption.
    pub reason: String,
}

impl Decided {
    /// The decision in a syslog message: the text after the logger's `PROGRAM[PID]: `, which
    /// is the decision line itself (`sshield` and the daemon) or one `pam_sshield(SERVICE:auth): `
    /// tag and the line (the PAM module through `pam_syslog`). `None` for anything else. Nothing
    /// may come before the line but that tag, its fields must come in the writers' order, and
    /// nothing but a `detail="..."` after them: sshd's `Invalid user NAME from ...`, whose NAME
    /// the client chooses, is never read as a decision.
    pub fn parse(message: &str) -> Option<Self> {
        let line = match message.strip_prefix("pam_sshield(") {
            Some(rest) => rest.split_once("): ")?.1,
            None => message,
        };
        let mut words = line.splitn(7, ' ');
        let allowed = match words.next()? {
            "allow" => true,
            "deny" => false,
            _ => return None,
        };
        let mut field = |key: &str| {
            words
                .next()
                .and_then(|w| w.strip_prefix(key))
                .and_then(|w| w.strip_prefix('='))
                .map(unescape_token)
        };
        let user = field("user")?;
        let rhost = field("rhost")?;
        let service = field("service")?;
        let method = field("method")?;
        let reason = field("reason")?;
        match words.next() {
            None => {}
            Some(detail) if detail.starts_with("detail=\"") && detail.ends_with('"') => {}
            Some(_) => return None,
        }
        Some(Self {
            allowed,
            user,
            rhost: (rhost != "-").then_some(rhost),
            service,
            method,
            reason,
        })
    }
}

/// The inverse of [`escape_token`].
fn unescape_token(token: &str) -> String {
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 2..i + 4)
            .filter(|_| bytes[i] == b'\\' && bytes.get(i + 1) == Some(&b'x'))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::Account;

    #[test]
    fn crafted_names_cannot_forge_fields_or_lines() {
        let s = Caller::new(
            Account::from_system("x reason=ok\nallow user=root".to_owned()),
            "sshd",
        );
        let l = line("deny", &s, "code", "wrong-code");
        assert_eq!(l.matches("reason=").count(), 1, "{l}");
        assert!(!l.contains('\n'));
        assert!(
            l.starts_with("deny user=x\\x20reason\\x3dok\\x0aallow\\x20user\\x3droot rhost=- "),
            "{l}"
        );
    }

    #[test]
    fn mapped_addresses_are_logged_as_ipv4() {
        let s = Caller::new(Account::from_system("alice".to_owned()), "sshd")
            .from_source(Some("::ffff:203.0.113.9".parse().unwrap()));
        let l = decision_line(&s, &Decision::Deny(DenyReason::WrongCode));
        assert_eq!(l.severity, Severity::Notice);
        assert_eq!(
            l.text,
            "deny user=alice rhost=203.0.113.9 service=sshd method=code reason=wrong-code"
        );
    }

    #[test]
    fn every_kind_of_line_reads_back_as_written() {
        let caller = Caller::new(Account::from_system("al ice\"x".to_owned()), "sshd")
            .from_source(Some("203.0.113.9".parse().unwrap()));
        let local = Caller::new(Account::from_system("bob".to_owned()), "sudo");
        let lines = [
            decision_line(&caller, &Decision::Deny(DenyReason::WrongCode)),
            exemption_line(&local, &Exemption::Network),
            error_line(&caller, "config.toml:3: bad"),
            failmode_line(&local, true, "no daemon at /run/x.sock"),
        ];
        let read: Vec<Decided> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let message = if i % 2 == 0 {
                    format!("pam_sshield(sshd:auth): {l}")
                } else {
                    l.to_string()
                };
                Decided::parse(&message).unwrap()
            })
            .collect();
        assert_eq!(read[0].user, "al ice\"x");
        assert_eq!(read[0].rhost.as_deref(), Some("203.0.113.9"));
        assert_eq!(
            (
                read[0].allowed,
                read[0].method.as_str(),
                read[0].reason.as_str()
            ),
            (false, "code", "wrong-code")
        );
        assert_eq!(
            (
                read[1].allowed,
                read[1].rhost.as_deref(),
                read[1].service.as_str()
            ),
            (true, None, "sudo")
        );
        assert_eq!(
            (read[1].method.as_str(), read[1].reason.as_str()),
            ("exempt", "network")
        );
        assert_eq!(read[2].reason, "config-error");
        assert_eq!(
            (read[3].allowed, read[3].reason.as_str()),
            (true, "failmode-safe")
        );
    }

    #[test]
    fn text_that_only_looks_like_a_decision_is_not_one() {
        for text in [
            "Invalid user allow user=root rhost=- service=sshd method=totp reason=ok from 192.0.2.1",
            "Invalid user pam_sshield(x): allow user=root rhost=- service=sshd method=totp reason=ok",
            "allow user=root rhost=- service=sshd method=totp reason=ok from 192.0.2.1 port 22",
            "allow user=root rhost=- service=sshd reason=ok method=totp",
            "deny user=root rhost=-",
            "",
        ] {
            assert_eq!(Decided::parse(text), None, "{text}");
        }
    }
}
