//! `sshield login`: the ForceCommand helper. Runs as the logging-in user, asks the daemon,
//! prompts, and on success replaces itself with what the client asked for.
//!
//! Why it cannot be escaped (authy-ssh's bash script could be, seed 000):
//! - It installs no signal handler and never execs anything but after an `allow` reply.
//!   A signal therefore has its default effect — SIGINT, SIGQUIT, SIGHUP, SIGTERM end the
//!   process, SIGTSTP stops it — and none of them leads to a shell.
//! - While it reads the code, the terminal is in non-canonical mode with ISIG off, so Ctrl-C,
//!   Ctrl-\, Ctrl-Z and Ctrl-D arrive as bytes, which end the session with a message
//!   (and a user can't suspend the prompt). That needs no handler and no `unsafe`.
//! - End of input, a read error, or the timeout also end it.
//! - Who the user is comes from the kernel (the daemon reads SO_PEERCRED), and from where
//!   from `/proc`; nothing is taken from `$USER` or `$SSH_CONNECTION`.
//! - A broken config always denies; only an unreachable daemon falls to `failmode`.
//! - It decides nothing and counts nothing: the daemon's login says how many tries are left
//!   and whether a denial is the last, and how long it waited; the helper only prompts,
//!   prints, and waits as long as the rate limit can make the daemon wait.
//! - The config is never the user's: not from `SSHIELD_CONFIG` (the client sets it through
//!   `AcceptEnv SSHIELD_*`), and only a file root alone can change ([`Config::load_root_owned`]).

use std::ffi::OsString;
use std::io::{self, IsTerminal, Write};
use std::os::unix::ffi::OsStringExt;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use sshield_core::config::Failmode;
use sshield_core::log::{error_line, failmode_line, LogSink};
use sshield_core::{ratelimit, Account, Caller, Config};
use zeroize::Zeroizing;

use crate::daemon::SERVICE;
use crate::protocol::{self, Reply, MAX_CODE};
use crate::syslog::Syslog;

/// The environment variable a client may pass the code in (`ssh -o SetEnv=SSHIELD_CODE=...`).
pub(crate) const CODE_VAR: &str = "SSHIELD_CODE";

/// How long to wait for the daemon's answer to `need`; a check may take longer by the rate
/// limit's longest delay, which the daemon serves before it answers.
const DAEMON_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the helper. Returns only on refusal or error: on success the process becomes the
/// user's shell or command.
pub(crate) fn run(config_path: &Path, syslog_socket: &Path) -> ExitCode {
    let me = Me::current();
    let log = Syslog {
        socket: syslog_socket,
        file: None,
    };
    let config = match Config::load_root_owned(config_path) {
        Ok(c) => c,
        Err(e) => {
            // Whatever failmode says: a config nobody can read correctly decides nothing.
            log.log(&error_line(&me.caller(), &e.to_string()));
            return refuse(&format!(
                "the sshield config is broken, so every login is refused until an admin fixes it: {e}"
            ));
        }
    };
    let command = std::env::var_os("SSH_ORIGINAL_COMMAND").map(|c| {
        // What the approval page shows (a notification carries 512 bytes of it). 512 bytes
        // fit the protocol's 4096-byte line even with every byte escaped as \uXXXX.
        let text = c.to_string_lossy().into_owned();
        text.char_indices()
            .take_while(|(i, ch)| i + ch.len_utf8() <= 512)
            .map(|(_, ch)| ch)
            .collect::<String>()
    });
    let terminal = io::stdin().is_terminal();
    let connected = Daemon::connect(&config)
        .and_then(|mut d| d.need(command.as_deref(), terminal).map(|r| (d, r)));
    let (daemon, reply) = match connected {
        Ok(pair) => pair,
        Err(e) => return unreachable(&config, &me, &log, &e),
    };
    match reply {
        Reply::Exempt { .. } => become_target(&config, &me),
        Reply::Prompt {
            prompt,
            accept_env_code,
            timeout_secs,
            note,
            ..
        } => {
            // Why a push was not sent (one pending, too many, blocked), before the prompt.
            if let Some(note) = note {
                eprintln!("sshield: {note}");
            }
            let ask = Ask {
                prompt,
                accept_env_code,
                timeout: Duration::from_secs(timeout_secs),
            };
            match authenticate(daemon, &ask) {
                Ok(banner) => {
                    if let Some(banner) = banner {
                        eprintln!("{}", banner.trim_end());
                    }
                    become_target(&config, &me)
                }
                Err(code) => code,
            }
        }
        Reply::Push { number, .. } => {
            let ask = Ask {
                prompt: config.prompt.clone(),
                accept_env_code: config.accept_env_code,
                timeout: config.login_timeout,
            };
            let waited = Terminal::prompting()
                .map_err(|e| refuse(&format!("cannot use the terminal: {e}")))
                .and_then(|terminal| {
                    let wait = config.push.wait.max(config.login_timeout);
                    match await_push(daemon, &terminal, number, wait) {
                        Pushed::Allowed(banner) => Ok(Ok(banner)),
                        Pushed::Code(daemon) => Ok(Err(daemon)),
                        Pushed::Refused(code) => Err(code),
                    }
                });
            let banner = match waited {
                Ok(Ok(banner)) => Ok(banner),
                Ok(Err(daemon)) => authenticate(daemon, &ask),
                Err(code) => Err(code),
            };
            match banner {
                Ok(banner) => {
                    if let Some(banner) = banner {
                        eprintln!("{}", banner.trim_end());
                    }
                    become_target(&config, &me)
                }
                Err(code) => code,
            }
        }
        Reply::Error { message, .. } => {
            refuse(&format!("the sshield daemon refused to answer: {message}"))
        }
        other => refuse(&format!("the sshield daemon answered {other:?} to `need`")),
    }
}

/// The user running the helper, from the kernel's uid and the password database.
#[derive(Debug)]
struct Me {
    name: Account,
    shell: PathBuf,
}

impl Me {
    fn current() -> Me {
        let uid = nix::unistd::getuid();
        match nix::unistd::User::from_uid(uid) {
            Ok(Some(u)) => Me {
                name: Account::from_system(u.name),
                shell: u.shell,
            },
            _ => Me {
                name: Account::from_system(format!("uid-{uid}")),
                shell: PathBuf::new(),
            },
        }
    }

    fn caller(&self) -> Caller {
        // The helper itself has no trustworthy source; the daemon logs the real one.
        Caller::new(self.name.clone(), SERVICE)
    }
}

fn refuse(message: &str) -> ExitCode {
    eprintln!("sshield: {message}");
    ExitCode::from(1)
}

/// The daemon could not be asked: `failmode` decides, loudly either way.
fn unreachable(config: &Config, me: &Me, log: &Syslog<'_>, e: &io::Error) -> ExitCode {
    let what = format!(
        "the sshield daemon at {} cannot be reached: {e}",
        config.socket.display()
    );
    match config.failmode {
        Failmode::Secure => {
            log.log(&failmode_line(&me.caller(), false, &what));
            refuse(&format!("{what}; login refused (failmode = \"secure\")"))
        }
        Failmode::Safe => {
            log.log(&failmode_line(&me.caller(), true, &what));
            eprintln!(
                "sshield: WARNING: {what}; letting you in WITHOUT a second factor (failmode = \"safe\")"
            );
            become_target(config, me)
        }
    }
}

/// A connection to the daemon.
#[derive(Debug)]
struct Daemon {
    reader: protocol::LineReader<UnixStream>,
    writer: UnixStream,
    /// The longest the daemon may wait before answering a check: the rate limit's longest
    /// delay, from the same config the daemon reads.
    longest_delay: Duration,
}

impl Daemon {
    fn connect(config: &Config) -> io::Result<Daemon> {
        let stream = UnixStream::connect(&config.socket)?;
        stream.set_read_timeout(Some(DAEMON_TIMEOUT))?;
        stream.set_write_timeout(Some(DAEMON_TIMEOUT))?;
        let writer = stream.try_clone()?;
        Ok(Daemon {
            reader: protocol::LineReader::new(stream),
            writer,
            longest_delay: ratelimit::longest_delay(&config.rate_limit),
        })
    }

    fn need(&mut self, command: Option<&str>, terminal: bool) -> io::Result<Reply> {
        protocol::write_need(&mut self.writer, command, terminal)?;
        self.read()
    }

    /// Asks for a push (`push`), or for the phone's answer (`wait`), and reads nothing.
    fn send(&mut self, op: &str) -> io::Result<()> {
        protocol::write_op(&mut self.writer, op)
    }

    /// The next reply, however long it takes to come (a wait on the phone).
    fn read_unbounded(&mut self) -> io::Result<Reply> {
        self.reader.get_ref().set_read_timeout(None)?;
        self.read()
    }

    fn read(&mut self) -> io::Result<Reply> {
        protocol::read_reply(&mut self.reader).map_err(|e| io::Error::other(e.to_string()))
    }

    fn check(&mut self, code: &str, pre_supplied: bool) -> io::Result<Reply> {
        self.reader
            .get_ref()
            .set_read_timeout(Some(DAEMON_TIMEOUT.saturating_add(self.longest_delay)))?;
        protocol::write_check(&mut self.writer, code, pre_supplied)?;
        match self.read()? {
            // The phone's answer to a push, sent before the daemon read this code: said, and
            // the code's own answer follows (unless that denial ended the login).
            Reply::Deny {
                reason,
                message,
                last: false,
                ..
            } if reason.starts_with("push-") => {
                eprint!("sshield: {message}\r\n");
                self.read()
            }
            reply => Ok(reply),
        }
    }
}

/// What the daemon said to ask for.
#[derive(Debug)]
struct Ask {
    prompt: String,
    accept_env_code: bool,
    timeout: Duration,
}

/// Gets a good code to the daemon: from `SSHIELD_CODE` if allowed, else from the terminal,
/// until the daemon says the login is over. `Ok(banner)` when allowed; `Err(exit code)` after
/// saying why not.
fn authenticate(mut daemon: Daemon, ask: &Ask) -> Result<Option<String>, ExitCode> {
    let env_code = std::env::var_os(CODE_VAR).map(|v| Zeroizing::new(v.into_vec()));
    let terminal = io::stdin().is_terminal();
    if let (true, Some(code)) = (ask.accept_env_code, env_code.as_ref()) {
        let code = String::from_utf8_lossy(code);
        match outcome(daemon.check(&code, true))? {
            Checked::Allowed(banner) => return Ok(banner),
            Checked::Denied { last: true } => return Err(ExitCode::from(1)),
            Checked::Denied { last: false } if !terminal => return Err(ExitCode::from(1)),
            // Not taken (no code's shape): ask, as for no code at all.
            Checked::Denied { last: false } | Checked::Ask | Checked::Push(_) => {}
        }
    }
    if !terminal {
        // A push without a number, where the admin allows it: the phone shows the command.
        let pushed = daemon.send("push").and_then(|()| daemon.read());
        if let Ok(Reply::Push { .. }) = pushed {
            eprintln!(
                "sshield: pushed a login request to your phone (no number: check the command shown)..."
            );
            let answer = daemon.send("wait").and_then(|()| daemon.read_unbounded());
            return match outcome(answer)? {
                Checked::Allowed(banner) => {
                    eprintln!("sshield: approved.");
                    Ok(banner)
                }
                Checked::Denied { .. } | Checked::Ask | Checked::Push(_) => {
                    Err(refuse("login refused"))
                }
            };
        }
        let how = if ask.accept_env_code {
            "pass it with: ssh -o SetEnv=SSHIELD_CODE=123456 ... (sshd_config needs `AcceptEnv SSHIELD_CODE`), or use ssh -t"
        } else {
            "use ssh -t to be asked for it (for scp, sftp, git and rsync the admin can set accept_env_code = true, then pass ssh -o SetEnv=SSHIELD_CODE=123456)"
        };
        return Err(refuse(&format!(
            "a verification code is needed and there is no terminal to ask for it on; {how}"
        )));
    }
    let terminal =
        Terminal::prompting().map_err(|e| refuse(&format!("cannot use the terminal: {e}")))?;
    let deadline = Instant::now() + ask.timeout;
    loop {
        let typed = match terminal.read_code(&ask.prompt, deadline) {
            Ok(code) => code,
            Err(end) => {
                drop(terminal);
                return Err(refuse(&end.to_string()));
            }
        };
        let reply = if typed.trim().is_empty() || typed.trim().eq_ignore_ascii_case("push") {
            // Enter (or `push`) asks for a push where the admin allows it; else the daemon
            // says why not and the prompt comes back.
            daemon.send("push").and_then(|()| daemon.read())
        } else {
            daemon.check(&typed, false)
        };
        match outcome(reply) {
            Ok(Checked::Allowed(banner)) => return Ok(banner),
            Ok(Checked::Denied { last: true }) => break,
            Ok(Checked::Denied { last: false } | Checked::Ask) => {}
            Ok(Checked::Push(number)) => match await_push(daemon, &terminal, number, ask.timeout) {
                Pushed::Allowed(banner) => return Ok(banner),
                Pushed::Code(back) => daemon = back,
                Pushed::Refused(code) => return Err(code),
            },
            Err(code) => return Err(code),
        }
    }
    drop(terminal);
    Err(refuse("login refused"))
}

/// How a wait on the phone ended.
enum Pushed {
    /// Approved: the banner to show.
    Allowed(Option<String>),
    /// Not approved, but the login goes on: ask for a code on this connection.
    Code(Daemon),
    /// Refused: the exit code, after saying why.
    Refused(ExitCode),
}

/// Shows the push's progress (seed 003: "Pushed a login request to your phone... Success.
/// Logging you in...") and waits for the phone's answer, which the daemon sends the moment it
/// lands. A code typed meanwhile (and Enter) is checked instead; Ctrl-C stops waiting and asks
/// for a code.
fn await_push(
    mut daemon: Daemon,
    terminal: &Terminal,
    number: Option<u8>,
    wait: Duration,
) -> Pushed {
    match number {
        Some(n) => eprint!("Pushed a login request to your phone (pick {n})... "),
        None => eprint!("Pushed a login request to your phone... "),
    }
    if let Err(e) = daemon.send("wait") {
        return Pushed::Refused(refuse(&format!(
            "lost the sshield daemon ({e}); login refused"
        )));
    }
    let deadline = Instant::now() + wait.saturating_add(Duration::from_secs(10));
    loop {
        let watch = daemon.reader.get_ref().try_clone().ok();
        match terminal.read_code_watching("", deadline, watch.as_ref()) {
            Err(PromptEnd::Daemon) => {
                return match outcome(daemon.read_unbounded()) {
                    Ok(Checked::Allowed(banner)) => {
                        eprint!("Success. Logging you in...\r\n");
                        Pushed::Allowed(banner)
                    }
                    Ok(Checked::Denied { last: true }) => Pushed::Refused(refuse("login refused")),
                    Ok(Checked::Denied { last: false } | Checked::Ask | Checked::Push(_)) => {
                        Pushed::Code(daemon)
                    }
                    Err(code) => Pushed::Refused(code),
                };
            }
            Err(PromptEnd::Key("Ctrl-C")) => {
                eprint!("sshield: not waiting for the phone; type a code instead\r\n");
                return Pushed::Code(daemon);
            }
            Err(end) => return Pushed::Refused(refuse(&end.to_string())),
            Ok(typed) if typed.trim().is_empty() => {}
            Ok(typed) => {
                return match outcome(daemon.check(&typed, false)) {
                    Ok(Checked::Allowed(banner)) => Pushed::Allowed(banner),
                    Ok(Checked::Denied { last: true }) => Pushed::Refused(refuse("login refused")),
                    Ok(_) => Pushed::Code(daemon),
                    Err(code) => Pushed::Refused(code),
                };
            }
        }
    }
}

enum Checked {
    Allowed(Option<String>),
    Denied {
        last: bool,
    },
    /// The code was not taken (not shaped like one): ask for one.
    Ask,
    /// A push was sent, with this number to show.
    Push(Option<u8>),
}

/// Turns the daemon's answer to a check into what to do next, telling the user about denials.
fn outcome(reply: io::Result<Reply>) -> Result<Checked, ExitCode> {
    match reply {
        Ok(Reply::Allow { banner, .. }) => Ok(Checked::Allowed(banner)),
        // A fleet host whose server could not be reached, with `failmode = "safe"`: the
        // daemon decided and logged it; the helper only carries it out.
        Ok(Reply::Exempt { .. }) => Ok(Checked::Allowed(None)),
        Ok(Reply::Deny { message, last, .. }) => {
            eprint!("sshield: {message}\r\n");
            Ok(Checked::Denied { last })
        }
        Ok(Reply::Prompt { note, .. }) => {
            if let Some(note) = note {
                eprint!("sshield: {note}\r\n");
            }
            Ok(Checked::Ask)
        }
        Ok(Reply::Push { number, .. }) => Ok(Checked::Push(number)),
        Ok(Reply::Error { message, .. }) => Err(refuse(&format!("the sshield daemon: {message}"))),
        // The PAM module's replies, never one to `check`.
        Ok(Reply::Verdict { .. } | Reply::Pushed { .. } | Reply::Approval { .. }) => Err(refuse(
            "the sshield daemon answered a check with a verdict; login refused",
        )),
        // Mid-login the daemon is no longer "unreachable": failmode never turns a started
        // check into an allow.
        Err(e) => Err(refuse(&format!(
            "lost the sshield daemon while checking the code ({e}); login refused"
        ))),
    }
}

/// Why reading a code ended without one.
#[derive(Debug)]
enum PromptEnd {
    /// The daemon answered (the phone's answer to a push) while the user was typing.
    Daemon,
    Key(&'static str),
    Eof,
    Timeout,
    Io(io::Error),
}

impl std::fmt::Display for PromptEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Daemon => f.write_str("the sshield daemon answered"),
            Self::Key(key) => write!(f, "{key}: login cancelled"),
            Self::Eof => f.write_str("end of input: login cancelled"),
            Self::Timeout => f.write_str("no code in time: login cancelled"),
            Self::Io(e) => write!(f, "cannot read the terminal ({e}): login cancelled"),
        }
    }
}

/// The terminal on stdin, switched to read the code key by key with signals off; restored
/// on drop (before the shell starts, or the process ends).
struct Terminal {
    saved: Termios,
}

impl Terminal {
    fn prompting() -> io::Result<Terminal> {
        let stdin = io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        // No line editing by the tty (we do it), no echo (a code is a secret until checked),
        // and no signals from keys: ^C, ^\ and ^Z become bytes we treat as "cancel".
        raw.local_modes
            .remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN);
        raw.special_codes[SpecialCodeIndex::VMIN] = 1;
        raw.special_codes[SpecialCodeIndex::VTIME] = 0;
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(Terminal { saved })
    }

    fn read_code(&self, prompt: &str, deadline: Instant) -> Result<Zeroizing<String>, PromptEnd> {
        self.read_code_watching(prompt, deadline, None)
    }

    /// As [`Terminal::read_code`], ending with [`PromptEnd::Daemon`] as soon as `watch` (the
    /// daemon's socket) has something to read.
    fn read_code_watching(
        &self,
        prompt: &str,
        deadline: Instant,
        watch: Option<&UnixStream>,
    ) -> Result<Zeroizing<String>, PromptEnd> {
        eprint!("{prompt}");
        let _ = io::stderr().flush();
        let stdin = io::stdin();
        let mut code = Zeroizing::new(String::with_capacity(MAX_CODE));
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                eprint!("\r\n");
                return Err(PromptEnd::Timeout);
            }
            let mut fds = vec![rustix::event::PollFd::new(
                &stdin,
                rustix::event::PollFlags::IN,
            )];
            if let Some(daemon) = watch {
                fds.push(rustix::event::PollFd::new(
                    daemon,
                    rustix::event::PollFlags::IN,
                ));
            }
            let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX).max(1);
            match rustix::event::poll(&mut fds, ms) {
                Ok(0) => continue,
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(PromptEnd::Io(e.into())),
            }
            if fds.get(1).is_some_and(|fd| !fd.revents().is_empty()) {
                return Err(PromptEnd::Daemon);
            }
            if fds[0].revents().is_empty() {
                continue;
            }
            let mut byte = [0u8; 1];
            let n = match rustix::io::read(&stdin, &mut byte) {
                Ok(n) => n,
                Err(rustix::io::Errno::INTR) => continue,
                // A hung-up terminal reads EIO: the connection is gone.
                Err(_) => 0,
            };
            if n == 0 {
                return Err(PromptEnd::Eof);
            }
            let end = |key| {
                eprint!("\r\n");
                Err(PromptEnd::Key(key))
            };
            match byte[0] {
                b'\r' | b'\n' => {
                    eprint!("\r\n");
                    return Ok(code);
                }
                0x03 => return end("Ctrl-C"),
                0x1c => return end("Ctrl-\\"),
                0x1a => return end("Ctrl-Z"),
                0x04 => return end("Ctrl-D"),
                0x7f | 0x08 => {
                    code.pop();
                }
                0x15 => code.clear(),
                b @ 0x21..=0x7e if code.len() < MAX_CODE => code.push(char::from(b)),
                _ => {}
            }
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(io::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// What the client asked for, as sshd would have run it without the ForceCommand.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    program: PathBuf,
    arg0: OsString,
    args: Vec<OsString>,
}

/// Why the helper runs nothing after a good code.
#[derive(Debug, PartialEq, Eq)]
enum TargetError {
    /// `internal-sftp` came with other arguments than the config's `sftp_server_args`.
    SftpArguments {
        /// The words after `internal-sftp`: the Subsystem line's, or a client's own.
        asked: Vec<String>,
        /// The config's.
        configured: Vec<String>,
    },
}

impl std::fmt::Display for TargetError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SftpArguments { asked, configured } => write!(
                f,
                "internal-sftp was asked with arguments {asked:?}, but the sshield config's \
                 sftp_server_args is {configured:?}; nothing is run. If sshd's `Subsystem sftp \
                 internal-sftp ...` line gives those arguments, the admin should set \
                 sftp_server_args to the same"
            ),
        }
    }
}

fn target(
    shell: &Path,
    original: Option<OsString>,
    sftp_server: &Path,
    sftp_server_args: &[String],
) -> Result<Target, TargetError> {
    let shell = if shell.as_os_str().is_empty() {
        Path::new("/bin/sh")
    } else {
        shell
    };
    let base = shell
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| OsString::from("sh"));
    match original {
        None => {
            // A login shell, as sshd starts one: argv[0] is "-" and the shell's name.
            let mut arg0 = OsString::from("-");
            arg0.push(&base);
            Ok(Target {
                program: shell.to_owned(),
                arg0,
                args: Vec::new(),
            })
        }
        Some(command) => {
            // Only sshd can run its built-in sftp server; the binary speaks the same protocol.
            // Its arguments come from the config alone: the command is the client's to choose
            // (`sftp -s 'internal-sftp -d /'` is `internal-sftp` without the admin's `-R`).
            // Other words than the config's are refused, not dropped: from a client they are
            // an attempt, and from sshd's Subsystem line (`internal-sftp -R`) a setting the
            // config lacks, which must not quietly make a read-only sftp writable.
            let text = command.to_string_lossy();
            let mut words = text.split_whitespace();
            if words.next() == Some("internal-sftp") {
                let asked: Vec<String> = words.map(str::to_owned).collect();
                if asked != sftp_server_args {
                    return Err(TargetError::SftpArguments {
                        asked,
                        configured: sftp_server_args.to_vec(),
                    });
                }
                return Ok(Target {
                    program: sftp_server.to_owned(),
                    arg0: sftp_server.as_os_str().to_owned(),
                    args: sftp_server_args.iter().map(OsString::from).collect(),
                });
            }
            Ok(Target {
                program: shell.to_owned(),
                arg0: base,
                args: vec![OsString::from("-c"), command],
            })
        }
    }
}

/// Replaces this process with the user's shell or command. Returns only if that fails.
fn become_target(config: &Config, me: &Me) -> ExitCode {
    let t = match target(
        &me.shell,
        std::env::var_os("SSH_ORIGINAL_COMMAND"),
        &config.sftp_server,
        &config.sftp_server_args,
    ) {
        Ok(t) => t,
        Err(e) => return refuse(&e.to_string()),
    };
    let _ = io::stderr().flush();
    let error = Command::new(&t.program)
        .arg0(&t.arg0)
        .args(&t.args)
        // The code has done its job; the shell and its children need not see it.
        .env_remove(CODE_VAR)
        .exec();
    refuse(&format!("cannot run {}: {error}", t.program.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_runs_after_a_good_code() {
        let sftp = Path::new("/usr/lib/openssh/sftp-server");
        let bash = Path::new("/bin/bash");
        let target = |shell, original, sftp| target(shell, original, sftp, &[]).unwrap();
        assert_eq!(
            target(bash, None, sftp),
            Target {
                program: bash.into(),
                arg0: "-bash".into(),
                args: vec![]
            }
        );
        assert_eq!(
            target(bash, Some("echo ok; id".into()), sftp),
            Target {
                program: bash.into(),
                arg0: "bash".into(),
                args: vec!["-c".into(), "echo ok; id".into()]
            }
        );
        assert_eq!(
            target(bash, Some("internal-sftp".into()), sftp),
            Target {
                program: sftp.into(),
                arg0: sftp.as_os_str().into(),
                args: vec![]
            }
        );
        // A configured sftp-server path is an ordinary command.
        let t = target(bash, Some("/usr/lib/openssh/sftp-server".into()), sftp);
        assert_eq!(t.program, bash);
        assert_eq!(target(Path::new(""), None, sftp).arg0, "-sh");
    }

    #[test]
    fn internal_sftp_runs_with_the_configs_arguments_only() {
        let sftp = Path::new("/usr/lib/openssh/sftp-server");
        let bash = Path::new("/bin/bash");
        let read_only = ["-R".to_owned()];
        let run = |command: &str, configured: &[String]| {
            target(bash, Some(command.into()), sftp, configured)
        };
        assert_eq!(
            run("internal-sftp  -R", &read_only).unwrap().args,
            vec![OsString::from("-R")]
        );
        // A client's own words, or a Subsystem line the config does not match: nothing runs.
        for (command, configured) in [
            ("internal-sftp -d /", &read_only[..]),
            ("internal-sftp", &read_only[..]),
            ("internal-sftp -R", &[][..]),
            ("internal-sftp -l INFO", &[][..]),
        ] {
            assert_eq!(
                run(command, configured),
                Err(TargetError::SftpArguments {
                    asked: command
                        .split_whitespace()
                        .skip(1)
                        .map(str::to_owned)
                        .collect(),
                    configured: configured.to_vec(),
                }),
                "{command}"
            );
        }
    }
}
