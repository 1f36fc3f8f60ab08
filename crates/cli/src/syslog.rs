//! Lines to syslog (facility authpriv), written to the `/dev/log` datagram socket with std
//! alone: syslog(3) would need `unsafe` FFI, and the format is one short line.
//!
//! `<PRI>TAG[PID]: MESSAGE`, without a timestamp (rsyslog and journald add the time of
//! arrival). The tag is `sshield`, the tag the shipped fail2ban filter expects.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

/// The socket syslog daemons and journald listen on.
pub const DEV_LOG: &str = "/dev/log";

/// authpriv (10) × 8.
const AUTHPRIV: u8 = 10 << 3;

/// Syslog severities used here.
#[derive(Debug, Clone, Copy)]
pub enum Severity {
    /// A failure to let someone in (or a failmode decision).
    Warning = 4,
    /// A denial.
    Notice = 5,
    /// An allowed login.
    Info = 6,
}

/// Sends `line` to the syslog socket at `socket`. Best effort: a machine without a syslog
/// daemon loses the line, and the caller's other channels (log_file, stderr) remain.
pub fn send(socket: &Path, severity: Severity, line: &str) {
    let Ok(sock) = UnixDatagram::unbound() else {
        return;
    };
    // No control characters: a line is one syslog message (decision lines are escaped
    // already; this guards the free-text ones).
    let clean: String = line
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let message = format!(
        "<{}>sshield[{}]: {clean}",
        AUTHPRIV | severity as u8,
        std::process::id()
    );
    let _ = sock.send_to(message.as_bytes(), socket);
}
