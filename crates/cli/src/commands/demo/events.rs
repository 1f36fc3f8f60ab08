//! What the live demo waits for: the newcomer's Enter, the end of its input, Ctrl-C, SIGTERM
//! and SIGHUP (all of which end it, cleanly); and new lines in the logs it shows.
//!
//! The signals are blocked in every thread and taken with `sigwait` by one thread of their
//! own, so no handler runs at an arbitrary point and no `unsafe` is needed. Children start
//! with an empty signal mask (the standard library resets it when it spawns).

use std::fs::File;
use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::time::Duration;

use nix::sys::signal::{SigSet, Signal};
use zeroize::Zeroizing;

use crate::failure::Failure;

/// Why the demo ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stop {
    Enter,
    EndOfInput,
    Signal(Signal),
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Enter => f.write_str("Enter"),
            Stop::EndOfInput => f.write_str("end of input"),
            Stop::Signal(Signal::SIGINT) => f.write_str("Ctrl-C (SIGINT)"),
            Stop::Signal(s) => f.write_str(s.as_str()),
        }
    }
}

/// The stream of reasons to stop.
#[derive(Debug)]
pub(super) struct Events {
    rx: Receiver<Stop>,
    tx: Sender<Stop>,
}

impl Events {
    /// Blocks SIGINT, SIGTERM and SIGHUP and starts waiting for them. Must run before any
    /// other thread is started, so that every thread inherits the mask.
    pub(super) fn start() -> Result<Events, Failure> {
        let mut set = SigSet::empty();
        for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
            set.add(sig);
        }
        set.thread_block()
            .map_err(|e| Failure::Error(format!("cannot block signals: {e}")))?;
        let (tx, rx) = channel();
        let signals = tx.clone();
        std::thread::spawn(move || {
            while let Ok(sig) = set.wait() {
                if signals.send(Stop::Signal(sig)).is_err() {
                    return;
                }
            }
        });
        Ok(Events { rx, tx })
    }

    /// From now on, a line (Enter) or the end of standard input stops the demo too.
    pub(super) fn watch_stdin(&self) {
        let tx = self.tx.clone();
        std::thread::spawn(move || {
            // Whatever is typed is discarded; it might be a code typed into the wrong window.
            let mut line = Zeroizing::new(String::new());
            let stop = match std::io::stdin().lock().read_line(&mut line) {
                Ok(0) | Err(_) => Stop::EndOfInput,
                Ok(_) => Stop::Enter,
            };
            let _ = tx.send(stop);
        });
    }

    /// A reason to stop that has come, without waiting.
    pub(super) fn pending(&self) -> Option<Stop> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for a reason to stop.
    pub(super) fn wait(&self, timeout: Duration) -> Option<Stop> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// The lines appended to a file since the last look (`tail -f`); a line still being
/// written waits for its newline.
#[derive(Debug)]
pub(super) struct Tail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
}

impl Tail {
    /// Follows `path` from its current end (from the start if it does not exist yet).
    pub(super) fn from_end(path: &Path) -> Tail {
        let offset = path.metadata().map_or(0, |m| m.len());
        Tail {
            path: path.to_owned(),
            offset,
            partial: Vec::new(),
        }
    }

    /// The complete lines written since the last call.
    pub(super) fn new_lines(&mut self) -> Vec<String> {
        let Ok(mut file) = File::open(&self.path) else {
            return Vec::new();
        };
        let mut bytes = Vec::new();
        if file.seek(SeekFrom::Start(self.offset)).is_err() || file.read_to_end(&mut bytes).is_err()
        {
            return Vec::new();
        }
        self.offset += bytes.len() as u64;
        self.partial.extend_from_slice(&bytes);
        let Some(last_newline) = self.partial.iter().rposition(|b| *b == b'\n') else {
            return Vec::new();
        };
        let rest = self.partial.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut self.partial, rest);
        String::from_utf8_lossy(&complete)
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn tail_returns_only_complete_new_lines() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log");
        std::fs::write(&path, "old line\n").expect("write");
        let mut tail = Tail::from_end(&path);
        assert!(tail.new_lines().is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        file.write_all(b"first\nsec").expect("append");
        assert_eq!(tail.new_lines(), ["first"]);
        file.write_all(b"ond\nthird\n").expect("append");
        assert_eq!(tail.new_lines(), ["second", "third"]);
        assert!(tail.new_lines().is_empty());
    }

    #[test]
    fn a_missing_file_is_read_from_its_start_once_it_exists() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("log");
        let mut tail = Tail::from_end(&path);
        assert!(tail.new_lines().is_empty());
        std::fs::write(&path, "allow user=a\n").expect("write");
        assert_eq!(tail.new_lines(), ["allow user=a"]);
    }
}
