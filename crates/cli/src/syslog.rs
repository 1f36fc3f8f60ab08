//! Lines to syslog (facility authpriv), written to the `/dev/log` datagram socket with std
//! alone: syslog(3) would need `unsafe` FFI, and the format is one short line.
//!
//! `<PRI>TAG[PID]: MESSAGE`, without a timestamp (rsyslog and journald add the time of
//! arrival). The tag is `sshield`, the tag the shipped fail2ban filter expects.

use std::os::unix::net::UnixDatagram;
use std::path::Path;

use sshield_core::log::{self as core_log, Line, LogSink, Severity};

/// The socket syslog daemons and journald listen on.
pub(crate) const DEV_LOG: &str = "/dev/log";

/// authpriv (10) × 8.
const AUTHPRIV: u8 = 10 << 3;

/// Where the daemon's and the helper's lines go: the syslog socket, and the config's
/// `log_file` if one is given. Core chooses each line's severity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Syslog<'a> {
    /// The syslog socket (`/dev/log` but in tests).
    pub socket: &'a Path,
    /// The config's `log_file`.
    pub file: Option<&'a Path>,
}

impl LogSink for Syslog<'_> {
    fn log(&self, line: &Line) {
        send(self.socket, line.severity, &line.text);
        if let Some(path) = self.file {
            if let Err(e) = core_log::append_to_file(path, &line.text) {
                let problem = core_log::problem_line(&format!(
                    "cannot append to log_file {}: {e}",
                    path.display()
                ));
                send(self.socket, problem.severity, &problem.text);
            }
        }
    }
}

/// Sends `line` to the syslog socket at `socket`. Best effort: a machine without a syslog
/// daemon loses the line, and the caller's other channels (log_file, stderr) remain.
pub(crate) fn send(socket: &Path, severity: Severity, line: &str) {
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
        AUTHPRIV | severity.number(),
        std::process::id()
    );
    let _ = sock.send_to(message.as_bytes(), socket);
}
