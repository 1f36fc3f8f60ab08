//! `sshield demo` as a newcomer runs it (issue 5, "demo"): the built CLI starts its own
//! throwaway sshd wired to the built pam_sshield, and the real OpenSSH client logs in with the
//! key and command the demo printed and a code from `oathtool` (the independent referee),
//! answering the code prompt through SSH_ASKPASS. Then the demo is ended by closing its
//! standard input, or by SIGINT, and must leave nothing behind: no sshd or session process,
//! no temporary directory, and `/etc/pam.d` exactly as it was.
//!
//! Root only (sshd runs PAM for a real account); elsewhere the tests skip, in CI they fail.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{artefacts, can_run, current_step, require_tool, Token};
use sshield_e2e::{is_alive, User};

/// How long the demo may take to be ready (it makes keys, copies /etc/pam.d, starts sshd).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to stop and clean up.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a decision line may take to be shown.
const SHOW_TIMEOUT: Duration = Duration::from_secs(10);

/// The machine's PAM directory, which the demo must never change.
const PAM_DIR: &str = "/etc/pam.d";

/// What the demo's JSON line says.
#[derive(Debug)]
struct Ready {
    port: u16,
    user: String,
    key: PathBuf,
    known_hosts: PathBuf,
    secret: String,
    command: String,
    dir: PathBuf,
    sshd_pid: u32,
}

/// Text a child process writes, collected by a thread.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<u8>>>);

impl Collected {
    fn pump(&self, mut from: impl Read + Send + 'static) -> JoinHandle<()> {
        let into = self.0.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 {
                    break;
                }
                into.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Waits until the text contains `needle`.
    fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.text().contains(needle)
    }
}

/// A running `sshield demo`; killed (with its process tree) on drop if a test fails midway.
struct Demo {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Collected,
    stderr: Collected,
    readers: Vec<JoinHandle<()>>,
}

impl Demo {
    /// `sshield demo` with `SUDO_USER` set to `sudo_user`, or unset.
    fn start(sudo_user: Option<&str>) -> Demo {
        let mut cmd = Command::new(&artefacts().cli);
        cmd.arg("demo")
            .env_remove("SUDO_USER")
            .env_remove("SSHIELD_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(name) = sudo_user {
            cmd.env("SUDO_USER", name);
        }
        let mut child = cmd.spawn().expect("run sshield demo");
        let stdout = Collected::default();
        let stderr = Collected::default();
        let readers = vec![
            stdout.pump(child.stdout.take().unwrap()),
            stderr.pump(child.stderr.take().unwrap()),
        ];
        Demo {
            stdin: child.stdin.take(),
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the JSON line and parses it.
    fn ready(&mut self) -> Ready {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let out = self.stdout.text();
            if let Some(line) = out.lines().find(|l| l.starts_with("{\"port\":")) {
                return parse_ready(line);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "sshield demo exited ({status}) before it was ready\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                    self.stderr.text()
                );
            }
            assert!(
                Instant::now() < deadline,
                "sshield demo not ready after {READY_TIMEOUT:?}\n--- stdout ---\n{out}\n--- stderr ---\n{}",
                self.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the demo to exit on its own.
    fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                for reader in self.readers.drain(..) {
                    let _ = reader.join();
                }
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sshield demo still runs {STOP_TIMEOUT:?} after it was told to stop\n--- stdout ---\n{}\n--- stderr ---\n{}",
                self.stdout.text(),
                self.stderr.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // A failed test: stop whatever the demo started, then the demo.
            for pid in descendants(self.child.id()) {
                signal(pid, rustix::process::Signal::Kill);
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The demo's JSON line, read by hand: its values are numbers and paths, names and codes
/// without quotes or backslashes (the demo refuses such paths).
fn parse_ready(line: &str) -> Ready {
    let field = |name: &str| -> String {
        let key = format!("\"{name}\":");
        let start = line
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            + key.len();
        let rest = &line[start..];
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').unwrap();
            let value = &quoted[..end];
            assert!(!value.contains('\\'), "{name} has an escape: {line}");
            value.to_owned()
        } else {
            rest.split([',', '}']).next().unwrap().to_owned()
        }
    };
    Ready {
        port: field("port").parse().unwrap(),
        user: field("user"),
        key: field("key").into(),
        known_hosts: field("known_hosts").into(),
        secret: field("secret"),
        command: field("command"),
        dir: field("dir").into(),
        sshd_pid: field("sshd_pid").parse().unwrap(),
    }
}

/// The demo's printed ssh command, run by the real client with `code` as the answer to every
/// keyboard-interactive prompt (SSH_ASKPASS_REQUIRE=force), and `remote` as the command.
/// `-F none` and the options before the printed ones keep the client hermetic; the printed
/// ones (port, key, known_hosts, user) are used as they are.
fn ssh(ready: &Ready, code: &str, remote: &str) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let askpass = dir.path().join("askpass");
    fs::write(
        &askpass,
        "#!/bin/sh\nprintf '%s\\n' \"$1\" >> \"$DEMO_ASKPASS_DIR/prompts\"\ncat \"$DEMO_ASKPASS_DIR/answer\"\n",
    )
    .unwrap();
    fs::set_permissions(&askpass, fs::Permissions::from_mode(0o700)).unwrap();
    fs::write(dir.path().join("answer"), format!("{code}\n")).unwrap();

    let words: Vec<&str> = ready.command.split_whitespace().collect();
    assert_eq!(words.first(), Some(&"ssh"), "{}", ready.command);
    let mut cmd = Command::new("ssh");
    cmd.args(["-F", "none"])
        .args(["-o", "BatchMode=no"])
        .args(["-o", "StrictHostKeyChecking=yes"])
        .args(["-o", "GlobalKnownHostsFile=/dev/null"])
        .args(["-o", "NumberOfPasswordPrompts=1"])
        .args(["-o", "IdentityAgent=none"])
        .args(["-o", "ConnectTimeout=10"])
        .args(&words[1..])
        .arg(remote)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env(
            "HOME",
            std::env::var_os("HOME").unwrap_or_else(|| "/root".into()),
        )
        .env("LANG", "C")
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DEMO_ASKPASS_DIR", dir.path())
        .stdin(Stdio::null());
    (cmd, dir)
}

fn prompts(askpass_dir: &Path) -> String {
    fs::read_to_string(askpass_dir.join("prompts")).unwrap_or_default()
}

/// /etc/pam.d as (name -> contents or link target), without the end-to-end harness's own
/// `sshield-e2e-*` files, which tests in other processes may be adding or removing now.
fn pam_dir_snapshot() -> BTreeMap<String, Vec<u8>> {
    let mut snapshot = BTreeMap::new();
    for entry in fs::read_dir(PAM_DIR).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("sshield-e2e-") {
            continue;
        }
        let path = entry.path();
        let meta = fs::symlink_metadata(&path).unwrap();
        let content = if meta.file_type().is_symlink() {
            fs::read_link(&path)
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_bytes()
        } else if meta.is_file() {
            fs::read(&path).unwrap()
        } else {
            b"(directory)".to_vec()
        };
        snapshot.insert(name, content);
    }
    snapshot
}

/// The pids below `root`, from /proc.
fn descendants(root: u32) -> BTreeSet<u32> {
    let mut tree = sshield_e2e::process_tree(root);
    tree.remove(&root);
    tree
}

fn comm(pid: u32) -> String {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process(pid, sig);
    }
}

fn require_demo_tools() -> bool {
    if !can_run() {
        return false;
    }
    require_tool(
        "unshare",
        "it comes with util-linux: apt-get install util-linux",
    );
    true
}

/// Asserts the demo left nothing: it exited 0, said what it stopped, removed its directory,
/// and none of `pids` (sshd and what it started) still runs.
#[track_caller]
fn assert_cleaned_up(demo: &mut Demo, ready: &Ready, pids: &BTreeSet<u32>, stopped_by: &str) {
    let status = demo.wait();
    let out = demo.stdout.text();
    assert!(
        status.success(),
        "demo exited {status}\n--- stdout ---\n{out}\n--- stderr ---\n{}",
        demo.stderr.text()
    );
    assert!(
        out.contains(&format!("stopped by {stopped_by}")),
        "no 'stopped by {stopped_by}' in:\n{out}"
    );
    assert!(
        out.contains(&format!("{} removed", ready.dir.display())),
        "{out}"
    );
    assert!(
        !ready.dir.exists(),
        "{} is still there",
        ready.dir.display()
    );
    assert!(pids.contains(&ready.sshd_pid));
    let alive: Vec<(u32, String)> = pids
        .iter()
        .filter(|pid| is_alive(**pid))
        .map(|pid| (*pid, comm(*pid)))
        .collect();
    assert!(alive.is_empty(), "still running after the demo: {alive:?}");
}

#[test]
fn newcomer_logs_in_with_key_and_code_and_closing_stdin_cleans_up() {
    if !require_demo_tools() {
        return;
    }
    // The newcomer ran `sudo sshield demo`: the demo enrolls and lets in SUDO_USER.
    let user = User::create();
    let pam_before = pam_dir_snapshot();
    let mut demo = Demo::start(Some(user.name()));
    let ready = demo.ready();

    assert_eq!(ready.user, user.name());
    assert!(ready.dir.is_dir());
    assert!(is_alive(ready.sshd_pid));
    let human = demo.stdout.text();
    for expected in [
        format!("port {}", ready.port),
        format!("   {}\n", ready.command),
        ready.secret.clone(),
        "Backup codes".to_owned(),
        "\u{2580}".to_owned(), // the QR code's half blocks
    ] {
        assert!(human.contains(&expected), "no {expected:?} in:\n{human}");
    }
    assert!(
        ready
            .command
            .starts_with(&format!("ssh -p {} -i ", ready.port))
            && ready
                .command
                .ends_with(&format!(" {}@127.0.0.1", user.name())),
        "{}",
        ready.command
    );
    // The client's files belong to the user, who runs the command without root.
    for path in [&ready.key, &ready.known_hosts] {
        let meta = fs::metadata(path).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            user.uid(),
            "{}",
            path.display()
        );
        assert_eq!(meta.permissions().mode() & 0o077, 0, "{}", path.display());
    }
    // The machine's PAM directory has no demo service: sshd sees a private copy.
    assert!(!Path::new(PAM_DIR).join("sshield-demo-sshd").exists());

    // A wrong code: refused, after the key was accepted, and the demo shows why.
    let (mut cmd, askpass) = ssh(
        &ready,
        &Token::from_secret(&ready.secret).wrong_code(),
        "echo demo-in",
    );
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong code let the user in");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("demo-in"));
    assert!(stderr.contains("Permission denied"), "{stderr}");
    assert!(
        prompts(askpass.path()).contains("Verification code:"),
        "prompts: {:?}; stderr: {stderr}",
        prompts(askpass.path())
    );
    let refused = format!(
        "deny user={} rhost=127.0.0.1 service=sshield-demo-sshd method=code reason=wrong-code",
        user.name()
    );
    assert!(
        demo.stdout.wait_for(&refused, SHOW_TIMEOUT),
        "the demo did not show {refused:?}:\n{}",
        demo.stdout.text()
    );
    assert!(demo
        .stdout
        .text()
        .contains(&format!("key accepted for {} from 127.0.0.1", user.name())));

    // The right code, from oathtool: in, and the command's output comes back. The session
    // then stays open (sleep), so that the demo has a live session to stop, and leaves a
    // detached process behind (its parent subshell exits at once).
    let code = Token::from_secret(&ready.secret).code_at_step(current_step());
    let (mut cmd, _askpass) = ssh(
        &ready,
        &code,
        "(sleep 301 </dev/null >/dev/null 2>&1 &); echo demo-in; exec sleep 300",
    );
    let mut client = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let client_out = Collected::default();
    let client_err = Collected::default();
    client_out.pump(client.stdout.take().unwrap());
    client_err.pump(client.stderr.take().unwrap());
    assert!(
        client_out.wait_for("demo-in\n", Duration::from_secs(30)),
        "no output from the logged-in command; client stderr:\n{}\ndemo:\n{}",
        client_err.text(),
        demo.stdout.text()
    );
    let allowed = format!(
        "allow user={} rhost=127.0.0.1 service=sshield-demo-sshd method=totp reason=ok",
        user.name()
    );
    assert!(
        demo.stdout.wait_for(&allowed, SHOW_TIMEOUT),
        "the demo did not show {allowed:?}:\n{}",
        demo.stdout.text()
    );

    // sshd and the session under it, by pid, while they run.
    let mut pids = descendants(demo.pid());
    let deadline = Instant::now() + Duration::from_secs(10);
    let sleeps = |pids: &BTreeSet<u32>| pids.iter().filter(|p| comm(**p) == "sleep").count();
    while sleeps(&pids) < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        pids = descendants(demo.pid());
    }
    // Both: the session's, and the detached one, re-parented to the demo (a subreaper)
    // rather than to init, so that the demo can stop it too.
    assert_eq!(
        sleeps(&pids),
        2,
        "the session's processes are not below the demo: {:?}",
        pids.iter().map(|p| (*p, comm(*p))).collect::<Vec<_>>()
    );
    assert!(pids.len() >= 3, "{pids:?}");

    // End of input ends the demo.
    demo.stdin = None;
    assert_cleaned_up(&mut demo, &ready, &pids, "end of input");
    // The client's connection went with the session.
    let deadline = Instant::now() + Duration::from_secs(10);
    while client.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ended = client.try_wait().unwrap();
    let _ = client.kill();
    let _ = client.wait();
    assert!(
        ended.is_some(),
        "the ssh client still runs after the demo ended"
    );

    assert_eq!(pam_dir_snapshot(), pam_before, "/etc/pam.d changed");
    // No secret or code in what the demo's sshd may have left (nothing is left at all).
    assert!(!ready.dir.exists());
}

#[test]
fn ctrl_c_stops_the_demo_and_removes_everything() {
    if !require_demo_tools() {
        return;
    }
    let pam_before = pam_dir_snapshot();
    // No SUDO_USER: the demo lets in whoever runs it, here root.
    let mut demo = Demo::start(None);
    let ready = demo.ready();
    assert_eq!(ready.user, "root");
    assert!(ready.dir.is_dir());

    // Root gets in with the key and a code (and only so: PermitRootLogin cannot be
    // prohibit-password, which would refuse the code).
    let code = Token::from_secret(&ready.secret).code_at_step(current_step());
    let (mut cmd, askpass) = ssh(&ready, &code, "echo root-in");
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "root could not log in: {}\nprompts: {}",
        String::from_utf8_lossy(&out.stderr),
        prompts(askpass.path())
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "root-in\n");
    // The same code again: replayed.
    let (mut cmd, _askpass) = ssh(&ready, &code, "echo again");
    let out = cmd.output().unwrap();
    assert!(!out.status.success(), "a code was accepted twice");
    assert!(
        demo.stdout.wait_for("reason=replayed", SHOW_TIMEOUT),
        "{}",
        demo.stdout.text()
    );

    let pids = descendants(demo.pid());
    assert!(pids.contains(&ready.sshd_pid), "{pids:?}");
    signal(demo.pid(), rustix::process::Signal::Int);
    assert_cleaned_up(&mut demo, &ready, &pids, "Ctrl-C (SIGINT)");
    assert_eq!(pam_dir_snapshot(), pam_before, "/etc/pam.d changed");
}

#[test]
fn missing_sshd_or_module_is_named_with_the_fix() {
    if !require_demo_tools() {
        return;
    }
    let cli = &artefacts().cli;
    let run = |args: &[&str]| {
        let child = Command::new(cli)
            .arg("demo")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        // It stopped before making anything.
        let scratch = std::env::temp_dir().join(format!("sshield-demo-{pid}-0"));
        assert!(!scratch.exists(), "{} was left", scratch.display());
        out
    };

    let out = run(&["--sshd", "/nonexistent"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("openssh-server is not installed")
            && stderr.contains("/nonexistent")
            && stderr.contains("apt install openssh-server"),
        "{stderr}"
    );

    let out = run(&["--module", "/nonexistent/pam_sshield.so"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/pam_sshield.so") && stderr.contains("cargo build --release"),
        "{stderr}"
    );

    // A sshd that is there but not a program.
    let dir = tempfile::tempdir().unwrap();
    let not_sshd = dir.path().join("sshd");
    fs::write(&not_sshd, "not a program").unwrap();
    let out = run(&["--sshd", not_sshd.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is not an executable file"), "{stderr}");
}

#[test]
fn without_root_it_explains_and_shows_the_engine_alone() {
    if !require_demo_tools() {
        return;
    }
    let user = User::create();
    let cli = &artefacts().cli;
    // The user must reach the built binary; skip where the checkout is private to root.
    let readable = cli
        .ancestors()
        .skip(1)
        .all(|dir| fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o001 != 0));
    if !readable {
        eprintln!(
            "skipping: {} is not reachable by other users",
            cli.display()
        );
        return;
    }
    let out = Command::new("runuser")
        .args(["-u", user.name(), "--"])
        .arg(cli)
        .arg("demo")
        .env_remove("SUDO_USER")
        .env("TMPDIR", "/tmp")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("needs root"), "{stdout}");
    assert!(
        stdout.contains(&format!("sudo {} demo", cli.display())),
        "{stdout}"
    );
    // Without a terminal the engine-only demo tries the current code twice by itself.
    assert!(stdout.contains("accepted (totp)"), "{stdout}");
    assert!(stdout.contains("refused"), "{stdout}");
}
