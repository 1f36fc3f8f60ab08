//! Where the module's lines go: syslog, facility authpriv, through `pam_syslog` (so they read
//! `pam_sshield(sshd:auth): deny user=...`), and the config's `log_file` if it names one.
//!
//! The wording and severity of decision lines are core's ([`sshield_core::log`]), so every front end
//! logs alike and the fail2ban filter matches them all. No line carries a code or a password:
//! the engine's lines have no such field, and the module's own lines are written from constants
//! and non-secret values only.

use std::path::PathBuf;

use sshield_core::log::{self as core_log, Line, LogSink};
use sshield_core::Caller;

use crate::handle::Pam;

/// The module's log, for one call.
#[derive(Debug)]
pub(crate) struct Log<'a> {
    pam: &'a Pam,
    debug: bool,
    file: Option<PathBuf>,
}

impl<'a> Log<'a> {
    /// Syslog only, until the config (and its `log_file`) is known.
    pub(crate) fn new(pam: &'a Pam, debug: bool) -> Self {
        Self {
            pam,
            debug,
            file: None,
        }
    }

    /// Also append decision lines to `file`.
    pub(crate) fn with_file(self, file: Option<PathBuf>) -> Self {
        Self { file, ..self }
    }

    /// A login denied because the module's arguments, its config or the PAM stack around it
    /// is broken: `detail` says what to fix.
    pub(crate) fn config_error(&self, caller: &Caller, detail: &str) {
        self.log(&core_log::error_line(caller, detail));
    }

    /// A problem that is not a decision (the conversation failed, a log file is unwritable),
    /// at core's severity for problems; syslog only.
    pub(crate) fn error(&self, text: &str) {
        let line = core_log::problem_line(text);
        self.pam
            .syslog(libc::c_int::from(line.severity.number()), &line.text);
    }

    /// What the module is doing, with the `debug` argument only. `text` is built only then.
    pub(crate) fn debug(&self, text: impl FnOnce() -> String) {
        if self.debug {
            self.pam
                .syslog(libc::LOG_DEBUG, &format!("debug: {}", text()));
        }
    }
}

impl LogSink for Log<'_> {
    /// Through `pam_syslog` at core's severity for the event, and to `log_file`.
    fn log(&self, line: &Line) {
        self.pam
            .syslog(libc::c_int::from(line.severity.number()), &line.text);
        if let Some(path) = &self.file {
            if let Err(e) = core_log::append_to_file(path, &line.text) {
                // Never changes the decision; syslog still has the line.
                self.error(&format!(
                    "cannot append to log_file {}: {e}; the line above is only in syslog",
                    path.display()
                ));
            }
        }
    }
}
