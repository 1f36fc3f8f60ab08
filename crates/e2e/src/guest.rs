//! A throwaway Debian 12 with systemd as its PID 1, booted with `systemd-nspawn -b`, for tests
//! that need the package, its units and a real sshd under a real systemd.
//!
//! Facts this relies on (measured; shared/notes/systemd-nspawn.md):
//! - The tree comes from `debootstrap --variant=minbase` (a minute or more, ~260 MB), made
//!   once and kept as a tarball in [`cache_dir`]; each [`Tree`] unpacks a fresh copy of it in
//!   seconds, and removes it on drop.
//! - `systemd-nspawn -D DIR -b --register=no --keep-unit` boots it without the host's
//!   systemd or machined. The guest shares the host's network namespace (no
//!   `--private-network`): its sshd must be told a free loopback port before the first boot
//!   ([`Tree::write`]), or it would listen on the host's port 22.
//! - Commands run in the guest through `nsenter -t LEADER -a` ([`Guest::run`]); `LEADER` is
//!   nspawn's child, the guest's systemd. Such commands are outside the guest's cgroups and
//!   seccomp filter; what the guest's systemd starts is inside them.
//! - nspawn's default seccomp filter refuses some system calls (`pidfd_getfd`: EPERM), as a
//!   hardened host or unit might.
//!
//! [`Guest`] powers the guest off on drop, and kills nspawn by its pid if it does not stop
//! (also when a test panics); the guest's PID 1 going takes every process of the guest with
//! it. Root only.

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::admin::unique_name;

/// The packages of the guest beyond minbase: systemd as init, sshd, and what an admin uses.
const INCLUDE: &str = "systemd,systemd-sysv,dbus,openssh-server,libpam-runtime,sudo";

/// The tarball's name; bump the version whenever [`INCLUDE`] or the debootstrap command
/// changes, so that an old tree is never reused.
const TARBALL: &str = "debian12-systemd-v1.tar";

/// A PATH with the sbin dirs, for the guest's tools and the host's nspawn and debootstrap.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where the tarball is kept between runs: `$SSHIELD_E2E_CACHE`, else
/// `/var/cache/sshield-e2e` (outside any checkout, so that every clone on the machine and CI's
/// fresh one reuse it).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SSHIELD_E2E_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/sshield-e2e"))
}

/// Why guests cannot be booted here (`None`: they can): root, nspawn, nsenter, debootstrap.
pub fn guest_requirement() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("it needs root (systemd-nspawn)".into());
    }
    for (tool, package) in [
        ("systemd-nspawn", "systemd-container"),
        ("nsenter", "util-linux"),
        ("debootstrap", "debootstrap"),
        ("tar", "tar"),
    ] {
        if !on_path(tool) {
            return Some(format!(
                "{tool} is missing; run scripts/install-test-deps (package {package})"
            ));
        }
    }
    None
}

fn on_path(tool: &str) -> bool {
    PATH.split(':')
        .any(|dir| Path::new(dir).join(tool).is_file())
}

/// An unpacked Debian 12 tree, removed on drop.
#[derive(Debug)]
pub struct Tree {
    dir: TempDir,
}

impl Tree {
    /// A fresh copy of the cached tree (debootstrapped first if the cache has none).
    pub fn unpack() -> Tree {
        let tarball = cached_tarball();
        // Named like the harness's other temp dirs, so that the next run removes the tree
        // of a test process that was killed outright.
        let dir = tempfile::Builder::new()
            .prefix(&format!("{}.", unique_name('n')))
            .tempdir()
            .expect("guest tree dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let out = Command::new("tar")
            .args(["--numeric-owner", "-xpf"])
            .arg(&tarball)
            .arg("-C")
            .arg(dir.path())
            .output()
            .expect("run tar");
        assert!(
            out.status.success(),
            "unpacking {}: {}",
            tarball.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Tree { dir }
    }

    /// `path` (absolute in the guest) on the host.
    pub fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// Writes a file into the tree (its parent made if missing), e.g. before the first boot.
    pub fn write(&self, path: &str, text: &str) {
        let path = self.path(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir in the guest tree");
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    /// Copies a host file into the tree.
    pub fn copy_in(&self, from: &Path, to: &str) {
        let dest = self.path(to);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).expect("create parent dir in the guest tree");
        }
        fs::copy(from, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
    }
}

/// The cached tarball, made now if missing: debootstrap into a temp dir beside it, tar, then
/// rename into place, so that a killed run never leaves half a tarball.
fn cached_tarball() -> PathBuf {
    let cache = cache_dir();
    let tarball = cache.join(TARBALL);
    if tarball.is_file() {
        return tarball;
    }
    fs::create_dir_all(&cache).expect("create the cache dir");
    let work = tempfile::Builder::new()
        .prefix(".debootstrap.")
        .tempdir_in(&cache)
        .expect("debootstrap dir");
    let root = work.path().join("root");
    eprintln!(
        "guest: debootstrapping Debian 12 into {} (once; kept as {})",
        root.display(),
        tarball.display()
    );
    let started = Instant::now();
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={INCLUDE}"),
            "bookworm",
        ])
        .arg(&root)
        .env("PATH", PATH)
        .stdin(Stdio::null())
        .output()
        .expect("run debootstrap");
    assert!(
        out.status.success(),
        "debootstrap failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let partial = work.path().join(TARBALL);
    let out = Command::new("tar")
        .args(["--numeric-owner", "-cf"])
        .arg(&partial)
        .arg("-C")
        .arg(&root)
        .arg(".")
        .output()
        .expect("run tar");
    assert!(
        out.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::rename(&partial, &tarball).expect("move the tarball into place");
    eprintln!("guest: debootstrap took {:?}", started.elapsed());
    tarball
}

/// A booted guest: `systemd-nspawn -b` on a [`Tree`].
#[derive(Debug)]
pub struct Guest {
    nspawn: Option<Child>,
    leader: u32,
    log: PathBuf,
}

impl Guest {
    /// Boots `tree` and waits until its systemd says the boot is over (`running`, or
    /// `degraded` with the failed units printed). `log` gets nspawn's output and the guest's
    /// console.
    pub fn boot(tree: &Tree, log: &Path) -> Guest {
        let name = unique_name('m');
        let console = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the guest's log");
        let child = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(tree.dir.path())
            .args([
                "-b",
                // No machined, no host system bus: both needed otherwise.
                "--register=no",
                "--keep-unit",
                "--resolv-conf=off",
                "--link-journal=no",
                "--machine",
                &name,
            ])
            .env("PATH", PATH)
            .stdin(Stdio::null())
            .stdout(console.try_clone().expect("dup log fd"))
            .stderr(console)
            .spawn()
            .expect("run systemd-nspawn");
        let mut guest = Guest {
            leader: 0,
            nspawn: Some(child),
            log: log.to_owned(),
        };
        guest.leader = guest.wait_for_leader();
        guest.wait_booted();
        guest
    }

    /// nspawn's child: the guest's systemd.
    fn wait_for_leader(&mut self) -> u32 {
        let nspawn = self.nspawn_pid();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let children: Vec<u32> = crate::procs::tree(nspawn)
                .into_iter()
                .filter(|pid| *pid != nspawn)
                .collect();
            if let Some(pid) = children.iter().copied().find(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "systemd")
            }) {
                return pid;
            }
            if let Some(status) = self
                .nspawn
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("systemd-nspawn exited: {status}\n{}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "the guest's systemd did not start\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_booted(&self) {
        // `--wait` waits for the end of the boot (systemd 240+), once systemd answers at all:
        // until it has made /run/systemd/system systemctl says "offline", and until its
        // private socket is there, nothing.
        let deadline = Instant::now() + Duration::from_secs(60);
        let state = loop {
            let out = self.run(&["systemctl", "is-system-running", "--wait"]);
            let state = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if !matches!(state.as_str(), "" | "offline") || Instant::now() >= deadline {
                break state;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        if state == "degraded" {
            let failed = self.run(&["systemctl", "--failed", "--no-legend"]);
            eprintln!(
                "guest: degraded; failed units:\n{}",
                String::from_utf8_lossy(&failed.stdout)
            );
        } else {
            assert_eq!(
                state,
                "running",
                "the guest did not boot\n{}",
                self.log_text()
            );
        }
    }

    fn nspawn_pid(&self) -> u32 {
        self.nspawn.as_ref().map_or(0, Child::id)
    }

    /// The guest's systemd, as the host sees its pid.
    pub fn leader(&self) -> u32 {
        self.leader
    }

    /// Runs `argv` in the guest (all its namespaces, root), with a plain PATH.
    pub fn run(&self, argv: &[&str]) -> Output {
        self.command(argv).output().expect("run nsenter")
    }

    /// `argv` in the guest, to add stdin or environment before running it.
    pub fn command(&self, argv: &[&str]) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg("-t")
            .arg(self.leader.to_string())
            .args(["-a", "--", "env", "-i"])
            .arg(format!("PATH={PATH}"))
            .args(["LANG=C.UTF-8", "HOME=/root"])
            .args(argv)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `argv` in the guest and returns its stdout; panics with its output if it fails.
    pub fn ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "in the guest: {argv:?}: {}",
            show(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `sh -c script` in the guest; panics if it fails.
    pub fn sh(&self, script: &str) -> String {
        self.ok(&["sh", "-euc", script])
    }

    /// A property of a unit, as `systemctl show -p NAME --value UNIT` prints it.
    pub fn unit_property(&self, unit: &str, property: &str) -> String {
        self.ok(&["systemctl", "show", "-p", property, "--value", unit])
            .trim()
            .to_owned()
    }

    /// The guest's journal of this boot, in order, one line an entry (`-o short-monotonic`).
    pub fn journal(&self) -> String {
        self.ok(&["journalctl", "-b", "--no-pager", "-o", "short-monotonic"])
    }

    /// What nspawn and the guest's console printed so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `systemctl poweroff` in the guest, then waits for nspawn to exit (it is killed if it
    /// does not within 30 s).
    pub fn poweroff(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(mut child) = self.nspawn.take() else {
            return;
        };
        if self.leader != 0 && matches!(child.try_wait(), Ok(None)) {
            let _ = self
                .command(&["systemctl", "poweroff"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => return,
                Ok(None) if Instant::now() >= deadline => break,
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        // nspawn did not stop: take it and the whole guest down by its pid. The guest's
        // PID 1 dying ends every process in the guest's pid namespace.
        let _ = writeln!(
            std::io::stderr(),
            "guest: nspawn {} did not stop; killing it",
            child.id()
        );
        crate::procs::kill_tree(child.id());
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Exit status, stdout and stderr of a command, for failure messages.
pub fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
