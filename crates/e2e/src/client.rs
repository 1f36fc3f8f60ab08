//! The real OpenSSH clients, answering prompts through `SSH_ASKPASS`.
//!
//! With `SSH_ASKPASS_REQUIRE=force`, ssh (and sftp/scp, which run ssh) hand *every* password
//! and keyboard-interactive prompt to the askpass program instead of a terminal: one run of
//! the program per prompt, the prompt text as its argument, the answer on its stdout. The
//! harness's askpass script records each prompt in a file and prints the next answer from a
//! queue the test gave ([`Client::answers`]); with the queue empty it exits 1, which ssh
//! takes as an empty answer. No terminal is involved, so nothing depends on timing or on
//! matching a prompt before it is printed.
//!
//! What the remote program prints and reads after login is another matter: for that
//! [`Client::tty`] asks for a remote pty (`ssh -tt`) and [`Client::spawn`] returns a
//! [`Session`] to read its output and type into it (`Ctrl-C` etc. are interpreted by the
//! remote pty, so a pipe on our side is enough).

use std::fs;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::admin::unique_name;
use crate::sshd::Sshd;

/// Default limit for one client run.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default wait in [`Session::expect`].
const EXPECT_TIMEOUT: Duration = Duration::from_secs(10);

const ASKPASS: &str = r#"#!/bin/sh
# sshield-e2e askpass: OpenSSH runs this once per password or keyboard-interactive prompt
# (SSH_ASKPASS_REQUIRE=force), with the prompt as $1. It records the prompt as
# prompts/N and prints answers/N, the N-th queued answer; with none left it exits 1.
dir=${SSHIELD_E2E_ASKPASS_DIR:?}
n=0
while [ -e "$dir/prompts/$n" ]; do n=$((n + 1)); done
printf '%s' "$1" > "$dir/prompts/$n"
[ -e "$dir/answers/$n" ] || exit 1
cat "$dir/answers/$n"
"#;

#[derive(Debug, Clone)]
enum Kind {
    Ssh { command: Option<String> },
    Sftp { batch: String },
    Scp { transfers: Vec<(String, String)> },
}

/// One run of `ssh`, `sftp` or `scp` against a [`Sshd`], built up then [`Client::run`] (or
/// [`Client::spawn`]). The client is hermetic: no ssh_config (`-F none`), no agent, no
/// default keys; the server's host key is known and checked.
#[derive(Debug, Clone)]
pub struct Client {
    kind: Kind,
    user: String,
    host: IpAddr,
    port: u16,
    known_hosts: PathBuf,
    from: Option<IpAddr>,
    answers: Vec<String>,
    key: Option<PathBuf>,
    methods: Option<String>,
    options: Vec<String>,
    args: Vec<String>,
    tty: bool,
    stdin: Option<Vec<u8>>,
    env: Vec<(String, String)>,
    timeout: Duration,
}

impl Client {
    fn new(sshd: &Sshd, user: &str, kind: Kind) -> Client {
        Client::at(sshd.addr(), sshd.port(), sshd.known_hosts(), user, kind)
    }

    fn at(host: IpAddr, port: u16, known_hosts: &Path, user: &str, kind: Kind) -> Client {
        Client {
            kind,
            user: user.to_owned(),
            host,
            port,
            known_hosts: known_hosts.to_owned(),
            from: None,
            answers: Vec::new(),
            key: None,
            methods: None,
            options: Vec::new(),
            args: Vec::new(),
            tty: false,
            stdin: None,
            env: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// `ssh user@host [command]`; without [`Client::command`] it asks for a shell.
    pub fn ssh(sshd: &Sshd, user: impl AsRef<str>) -> Client {
        Client::new(sshd, user.as_ref(), Kind::Ssh { command: None })
    }

    /// `ssh user@host` to an sshd the harness did not start (a [`crate::Guest`]'s), whose
    /// host key `known_hosts` holds.
    pub fn ssh_to(host: IpAddr, port: u16, known_hosts: &Path, user: impl AsRef<str>) -> Client {
        Client::at(
            host,
            port,
            known_hosts,
            user.as_ref(),
            Kind::Ssh { command: None },
        )
    }

    /// `sftp -b batch user@host`: the batch's commands (one a line, e.g. `put a b`), which
    /// stop at the first that fails; paths are local to the test and remote to the user's
    /// home. (`-b` makes sftp pass `BatchMode=yes` to ssh, which would refuse every prompt;
    /// the harness puts its own `-o BatchMode=no` first, and ssh keeps the first value.)
    pub fn sftp(sshd: &Sshd, user: impl AsRef<str>, batch: impl Into<String>) -> Client {
        Client::new(
            sshd,
            user.as_ref(),
            Kind::Sftp {
                batch: batch.into(),
            },
        )
    }

    /// `scp`: add [`Client::upload`]s or [`Client::download`]s.
    pub fn scp(sshd: &Sshd, user: impl AsRef<str>) -> Client {
        Client::new(
            sshd,
            user.as_ref(),
            Kind::Scp {
                transfers: Vec::new(),
            },
        )
    }

    /// Source address, e.g. `127.0.0.2` (`-o BindAddress`): what sshd and PAM see as the
    /// client's address.
    pub fn from(mut self, addr: &str) -> Client {
        let addr: IpAddr = addr
            .parse()
            .unwrap_or_else(|e| panic!("from {addr:?}: {e}"));
        assert!(
            addr.is_loopback(),
            "tests connect only from loopback, not {addr}"
        );
        self.from = Some(addr);
        self
    }

    /// Which of the server's listen addresses to connect to (default: its first).
    pub fn to(mut self, addr: &str) -> Client {
        self.host = addr.parse().unwrap_or_else(|e| panic!("to {addr:?}: {e}"));
        self
    }

    /// The remote command (ssh only).
    pub fn command(mut self, command: impl Into<String>) -> Client {
        match &mut self.kind {
            Kind::Ssh { command: c } => *c = Some(command.into()),
            _ => panic!("Client::command is for ssh"),
        }
        self
    }

    /// Answers to the prompts, in order, whatever they ask (see [`Outcome::prompts`]).
    pub fn answers<S: Into<String>>(mut self, answers: impl IntoIterator<Item = S>) -> Client {
        self.answers.extend(answers.into_iter().map(Into::into));
        self
    }

    /// Offers this private key (`-i`); without one, public key authentication is off.
    pub fn key(mut self, path: impl AsRef<Path>) -> Client {
        self.key = Some(path.as_ref().to_owned());
        self
    }

    /// `PreferredAuthentications`, e.g. `"password"`, `"keyboard-interactive"`,
    /// `"publickey,keyboard-interactive"`.
    pub fn methods(mut self, methods: impl Into<String>) -> Client {
        self.methods = Some(methods.into());
        self
    }

    /// An ssh option (`-o`), e.g. `"SetEnv=SSHIELD_CODE=123456"`. Given before the harness's
    /// own options, so it wins over them (ssh keeps the first value).
    pub fn option(mut self, option: impl Into<String>) -> Client {
        self.options.push(option.into());
        self
    }

    /// An extra command-line argument, before the destination (e.g. `-O` for scp's old
    /// protocol, `-v`).
    pub fn arg(mut self, arg: impl Into<String>) -> Client {
        self.args.push(arg.into());
        self
    }

    /// Asks for a remote terminal (`ssh -tt`, escape character off).
    pub fn tty(mut self) -> Client {
        self.tty = true;
        self
    }

    /// Bytes for the client's stdin (default: none, `/dev/null`).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Client {
        self.stdin = Some(input.into());
        self
    }

    /// A variable in the client's environment (for `SendEnv`).
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Client {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Limit for the whole run (default 30 s); past it the client is killed and
    /// [`Outcome::timed_out`] is set.
    pub fn timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// scp a local file to a path relative to the user's home.
    pub fn upload(mut self, local: impl AsRef<Path>, remote: &str) -> Client {
        let spec = self.remote_spec(remote);
        match &mut self.kind {
            Kind::Scp { transfers } => transfers.push((local.as_ref().display().to_string(), spec)),
            _ => panic!("Client::upload is for scp"),
        }
        self
    }

    /// scp a remote file (relative to the user's home) to a local path.
    pub fn download(mut self, remote: &str, local: impl AsRef<Path>) -> Client {
        let spec = self.remote_spec(remote);
        match &mut self.kind {
            Kind::Scp { transfers } => transfers.push((spec, local.as_ref().display().to_string())),
            _ => panic!("Client::download is for scp"),
        }
        self
    }

    fn host_for_uri(&self) -> String {
        match self.host {
            IpAddr::V4(a) => a.to_string(),
            IpAddr::V6(a) => format!("[{a}]"),
        }
    }

    fn remote_spec(&self, path: &str) -> String {
        format!("{}@{}:{path}", self.user, self.host_for_uri())
    }

    /// The command line, without the program name.
    fn argv(&self, askpass_dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = vec!["-F".into(), "none".into()];
        let port_flag = match self.kind {
            Kind::Ssh { .. } => "-p",
            _ => "-P",
        };
        v.extend([port_flag.into(), self.port.to_string()]);
        // The test's options first: ssh keeps the first value of an option.
        let mut opts = self.options.clone();
        if let Some(m) = &self.methods {
            opts.push(format!("PreferredAuthentications={m}"));
        }
        if let Some(from) = self.from {
            opts.push(format!("BindAddress={from}"));
        }
        opts.extend([
            "BatchMode=no".to_owned(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "GlobalKnownHostsFile=/dev/null".to_owned(),
            "StrictHostKeyChecking=yes".to_owned(),
            "UpdateHostKeys=no".to_owned(),
            "NumberOfPasswordPrompts=1".to_owned(),
            "ConnectTimeout=10".to_owned(),
            "IdentityAgent=none".to_owned(),
            "IdentitiesOnly=yes".to_owned(),
            "ControlMaster=no".to_owned(),
            "ControlPath=none".to_owned(),
            "ForwardAgent=no".to_owned(),
            "ForwardX11=no".to_owned(),
        ]);
        if self.key.is_none() {
            opts.push("PubkeyAuthentication=no".to_owned());
        }
        for o in opts {
            v.extend(["-o".into(), o]);
        }
        if let Some(key) = &self.key {
            v.extend(["-i".into(), key.display().to_string()]);
        }
        match &self.kind {
            Kind::Ssh { command } => {
                if self.tty {
                    v.extend(["-tt".into(), "-e".into(), "none".into()]);
                }
                v.extend(self.args.iter().cloned());
                v.push(format!("{}@{}", self.user, self.host));
                if let Some(c) = command {
                    v.push(c.clone());
                }
            }
            Kind::Sftp { .. } => {
                v.extend(self.args.iter().cloned());
                v.extend(["-b".into(), askpass_dir.join("batch").display().to_string()]);
                v.push(format!("{}@{}", self.user, self.host_for_uri()));
            }
            Kind::Scp { transfers } => {
                assert!(!transfers.is_empty(), "scp without upload or download");
                assert!(transfers.len() == 1, "one scp transfer per client run");
                v.extend(self.args.iter().cloned());
                v.push("--".into());
                v.push(transfers[0].0.clone());
                v.push(transfers[0].1.clone());
            }
        }
        v
    }

    fn program(&self) -> &'static str {
        match self.kind {
            Kind::Ssh { .. } => "ssh",
            Kind::Sftp { .. } => "sftp",
            Kind::Scp { .. } => "scp",
        }
    }

    fn prepare(&self) -> (TempDir, Command) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}.", unique_name('c')))
            .tempdir()
            .expect("client temp dir");
        let askpass = dir.path().join("askpass");
        fs::write(&askpass, ASKPASS).expect("write askpass");
        fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700)).expect("chmod askpass");
        fs::create_dir(dir.path().join("prompts")).expect("prompts dir");
        fs::create_dir(dir.path().join("answers")).expect("answers dir");
        for (i, answer) in self.answers.iter().enumerate() {
            assert!(
                !answer.contains('\n'),
                "an answer cannot contain a newline: {answer:?}"
            );
            fs::write(
                dir.path().join("answers").join(i.to_string()),
                format!("{answer}\n"),
            )
            .expect("write answer");
        }
        if let Kind::Sftp { batch } = &self.kind {
            fs::write(dir.path().join("batch"), format!("{}\n", batch.trim_end()))
                .expect("write batch");
        }
        let mut cmd = Command::new(self.program());
        cmd.args(self.argv(dir.path()))
            .env_clear()
            .env(
                "PATH",
                std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into()),
            )
            .env(
                "HOME",
                std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
            )
            .env("LANG", "C")
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("SSHIELD_E2E_ASKPASS_DIR", dir.path())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        (dir, cmd)
    }

    /// Runs the client to the end (or its timeout).
    pub fn run(self) -> Outcome {
        let input = self.stdin.clone();
        let mut session = self.start(input.is_some());
        if let (Some(input), Some(mut stdin)) = (input, session.stdin.take()) {
            // From a thread, so that a client that never reads still meets its timeout.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&input);
            });
        }
        session.wait()
    }

    /// Starts the client and returns at once: to read what the remote side prints and type
    /// into it. Usually with [`Client::tty`].
    pub fn spawn(self) -> Session {
        self.start(true)
    }

    fn start(self, piped_stdin: bool) -> Session {
        let (dir, mut cmd) = self.prepare();
        cmd.stdin(if piped_stdin {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.program()));
        let stdout = Arc::new(Stream::default());
        let stderr = Arc::new(Stream::default());
        let readers = vec![
            pump(
                child.stdout.take().expect("stdout pipe"),
                Arc::clone(&stdout),
            ),
            pump(
                child.stderr.take().expect("stderr pipe"),
                Arc::clone(&stderr),
            ),
        ];
        Session {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
            cursor: 0,
            started,
            deadline: started + self.timeout,
            askpass: dir,
        }
    }
}

/// What a client run did.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// Every prompt the client was asked, in order, exactly as ssh passed it to askpass:
    /// `user@host's password: ` for password authentication, `(user@host) Password: ` for
    /// keyboard-interactive (ssh prefixes these with the user and host).
    pub prompts: Vec<String>,
    /// Wall time from start to exit.
    pub elapsed: Duration,
    /// The client was killed at its timeout.
    pub timed_out: bool,
}

impl Outcome {
    pub fn success(&self) -> bool {
        self.status.success() && !self.timed_out
    }

    /// The exit code (`None` if killed by a signal). ssh exits 255 when it could not log in.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing everything, unless the client exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "client failed: {self:#?}");
        self
    }

    /// Panics unless the login was refused (ssh's "Permission denied", exit 255).
    #[track_caller]
    pub fn assert_denied(&self) -> &Self {
        assert!(
            !self.timed_out
                && self.code() == Some(255)
                && self.stderr.contains("Permission denied"),
            "expected the login to be refused: {self:#?}"
        );
        self
    }

    /// The prompts without ssh's `(user@host) ` prefix on keyboard-interactive ones.
    pub fn prompt_texts(&self) -> Vec<String> {
        self.prompts
            .iter()
            .map(|p| match (p.starts_with('('), p.find(") ")) {
                (true, Some(i)) => p[i + 2..].to_owned(),
                _ => p.clone(),
            })
            .collect()
    }

    /// Whether any prompt contains `needle`.
    pub fn asked(&self, needle: &str) -> bool {
        self.prompts.iter().any(|p| p.contains(needle))
    }
}

#[derive(Debug, Default)]
struct Stream {
    state: Mutex<(Vec<u8>, bool)>,
    changed: Condvar,
}

impl Stream {
    fn text(&self) -> String {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&state.0).into_owned()
    }
}

fn pump(mut from: impl Read + Send + 'static, to: Arc<Stream>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            let n = from.read(&mut buf).unwrap_or(0);
            let mut state = to.state.lock().unwrap_or_else(|p| p.into_inner());
            if n == 0 {
                state.1 = true;
                to.changed.notify_all();
                return;
            }
            state.0.extend_from_slice(&buf[..n]);
            to.changed.notify_all();
        }
    })
}

/// A running client: read its output, type into it, then [`Session::wait`]. Killed on drop.
#[derive(Debug)]
pub struct Session {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Arc<Stream>,
    stderr: Arc<Stream>,
    readers: Vec<JoinHandle<()>>,
    cursor: usize,
    started: Instant,
    deadline: Instant,
    askpass: TempDir,
}

impl Session {
    /// Waits up to 10 s for `needle` in stdout after the previous match, and returns the
    /// output up to and including it. Panics with the transcript if it doesn't come.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) -> String {
        match self.try_expect(needle, EXPECT_TIMEOUT) {
            Some(text) => text,
            None => panic!(
                "did not see {needle:?} within {EXPECT_TIMEOUT:?}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- prompts ---\n{:?}",
                self.stdout(),
                self.stderr(),
                self.prompts()
            ),
        }
    }

    /// Like [`Session::expect`], returning `None` at the timeout or at end of output.
    pub fn try_expect(&mut self, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let mut state = self.stdout.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let seen = state.0.get(self.cursor..).unwrap_or_default();
            if let Some(i) = find(seen, needle.as_bytes()) {
                let end = self.cursor + i + needle.len();
                let text = String::from_utf8_lossy(&state.0[self.cursor..end]).into_owned();
                self.cursor = end;
                return Some(text);
            }
            let now = Instant::now();
            if state.1 || now >= deadline {
                return None;
            }
            state = self
                .stdout
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// Types bytes (see [`crate::keys`] for Ctrl-C and friends).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let stdin = self.stdin.as_mut().expect("stdin is closed");
        // The client may have exited already; what it does then is for the test to check.
        let _ = stdin.write_all(bytes.as_ref()).and_then(|()| stdin.flush());
    }

    /// Types a line (adds `\n`; the remote pty turns it into Enter).
    pub fn send_line(&mut self, line: &str) {
        self.send(format!("{line}\n"));
    }

    /// Closes the client's stdin: ssh sends EOF on the channel.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The client's pid, e.g. to signal it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the client outright: the connection drops, and sshd hangs up the remote pty
    /// (SIGHUP to the session), as when a laptop lid closes.
    pub fn disconnect(mut self) -> Outcome {
        let _ = self.child.kill();
        self.finish(false)
    }

    /// All stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout.text()
    }

    /// All stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The prompts askpass was given so far.
    pub fn prompts(&self) -> Vec<String> {
        read_prompts(self.askpass.path())
    }

    /// Waits for the client to exit (closing its stdin first), up to the client's timeout.
    pub fn wait(mut self) -> Outcome {
        self.stdin = None;
        let mut timed_out = false;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() >= self.deadline => {
                    let _ = self.child.kill();
                    timed_out = true;
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(2)),
                Err(e) => panic!("waiting for the client: {e}"),
            }
        }
        self.finish(timed_out)
    }

    fn finish(mut self, timed_out: bool) -> Outcome {
        let status = self.child.wait().expect("wait for the client");
        let elapsed = self.started.elapsed();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Outcome {
            status,
            stdout: self.stdout(),
            stderr: self.stderr(),
            prompts: self.prompts(),
            elapsed,
            timed_out,
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn read_prompts(dir: &Path) -> Vec<String> {
    let mut prompts = Vec::new();
    for n in 0.. {
        match fs::read(dir.join("prompts").join(n.to_string())) {
            Ok(bytes) => prompts.push(String::from_utf8_lossy(&bytes).into_owned()),
            Err(_) => break,
        }
    }
    prompts
}
