//! The one log line per decision, in a stable format that the shipped fail2ban filter matches.
//!
//! ```text
//! allow user=alice rhost=203.0.113.9 service=sshd method=totp reason=ok
//! deny user=alice rhost=203.0.113.9 service=sshd method=code reason=wrong-code
//! exempt user=bob rhost=192.168.1.20 service=sshd method=exempt reason=network
//! ```
//!
//! Fields are `key=value` with no spaces inside values; anything a client controls (the user
//! name, the host) is escaped, so a crafted name cannot forge a second field or line. Front ends
//! send the line to syslog (authpriv); [`append_to_file`] also keeps a copy in a plain file
//! when the config's `log_file` asks for it.

use std::fmt::{self, Write as _};
use std::fs::OpenOptions;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::accounts::Account;
use crate::engine::{Decision, DenyReason, Method};
use crate::policy::Exemption;
use crate::time::UnixTime;

/// Who asked: the fields every line carries.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The user: the account the client's name stands for, resolved once by the front end.
    pub user: &'a Account,
    /// The source address, if known.
    pub source: Option<IpAddr>,
    /// The PAM service or front end.
    pub service: &'a str,
    /// sshd's `SSH_AUTH_INFO_0`, where the front end has it.
    pub first_factor: Option<&'a str>,
}

/// The line for an engine decision.
pub fn decision_line(subject: &Subject<'_>, decision: &Decision) -> String {
    match decision {
        Decision::Allow(method) => line("allow", subject, method_name(method), "ok"),
        Decision::Deny(reason) => {
            let method = match reason {
                DenyReason::NotEnrolled | DenyReason::Pending => "unenrolled",
                _ => "code",
            };
            let mut l = line("deny", subject, method, reason.as_str());
            if let DenyReason::Store(e) = reason {
                // The path and fix, so the admin sees what to repair. Never a secret: store
                // errors name files and modes, not contents.
                let _ = write!(l, " detail=\"{}\"", escape(&e.to_string()));
            }
            l
        }
    }
}

/// The line for a login let through without a code.
pub fn exemption_line(subject: &Subject<'_>, exemption: &Exemption) -> String {
    let method = match exemption {
        Exemption::Unenrolled | Exemption::UnenrolledGrace => "unenrolled",
        _ => "exempt",
    };
    line("allow", subject, method, exemption.as_str())
}

/// The line for a failure before any decision (a broken config): always a denial.
pub fn error_line(subject: &Subject<'_>, what: &str) -> String {
    let mut l = line("deny", subject, "none", "config-error");
    let _ = write!(l, " detail=\"{}\"", escape(what));
    l
}

/// The line for a login decided by `failmode` because a service it needs (the daemon, the
/// approval server) could not be reached: `allowed` under `failmode = "safe"`.
pub fn failmode_line(subject: &Subject<'_>, allowed: bool, what: &str) -> String {
    let (outcome, reason) = if allowed {
        ("allow", "failmode-safe")
    } else {
        ("deny", "unreachable")
    };
    let mut l = line(outcome, subject, "none", reason);
    let _ = write!(l, " detail=\"{}\"", escape(what));
    l
}

fn method_name(m: &Method) -> &'static str {
    m.as_str()
}

fn line(outcome: &str, s: &Subject<'_>, method: &str, reason: &str) -> String {
    let rhost = s
        .source
        .map(|a| crate::policy::canonical(a).to_string())
        .unwrap_or_else(|| "-".into());
    format!(
        "{outcome} user={} rhost={rhost} service={} method={method} reason={reason}",
        escape_token(s.user.name()),
        escape_token(s.service)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crafted_names_cannot_forge_fields_or_lines() {
        let s = Subject {
            user: &Account::from_system("x reason=ok\nallow user=root".to_owned()),
            source: None,
            service: "sshd",
            first_factor: None,
        };
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
        let s = Subject {
            user: &Account::from_system("alice".to_owned()),
            source: Some("::ffff:203.0.113.9".parse().unwrap()),
            service: "sshd",
            first_factor: None,
        };
        let l = decision_line(&s, &Decision::Deny(DenyReason::WrongCode));
        assert_eq!(
            l,
            "deny user=alice rhost=203.0.113.9 service=sshd method=code reason=wrong-code"
        );
    }
}
