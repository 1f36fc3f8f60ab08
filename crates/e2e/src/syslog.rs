//! Capturing what sshd, PAM modules and sessions send to syslog, without touching the
//! machine's syslog.
//!
//! PAM modules (pam_unix, and sshield's own decision lines) log with syslog(3), which writes
//! to the datagram socket `/dev/log` — not to sshd's `-E` log. The machine may have no
//! syslog daemon at all (then the lines are lost), or a real one (then tests would fill
//! the machine's auth log, and a fail2ban there might act on them). So the harness runs
//! sshd in a private mount namespace (`unshare --mount`) whose `/dev` is a copy made of
//! bind mounts of the real device nodes plus the harness's own socket as `/dev/log`. The
//! machine's `/dev` is not changed; the namespace ends with the last process in it.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// Device nodes bound into the private `/dev` (the same list is in [`SETUP`]).
const NODES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// Directories mounted in it.
const DIRS: [&str; 2] = ["pts", "shm"];

/// Run as `unshare --mount --propagation private -- sh -c SETUP sh DEV [FILE TARGET]... --
/// PROGRAM ARGS...`: binds each FILE over its TARGET (a test's private /etc/nsswitch.conf),
/// binds the nodes into DEV, gives it a devpts of its own for sshd's ptys (a bound ptmx
/// node would not find its devpts; `ptmx -> pts/ptmx` as in containers), puts DEV over
/// /dev, and becomes PROGRAM (same pid).
const SETUP: &str = r#"set -e
dev=$1; shift
while [ "$1" != "--" ]; do mount --bind "$1" "$2"; shift 2; done
shift
for n in null zero full random urandom tty; do
    if [ -e "/dev/$n" ]; then mount --bind "/dev/$n" "$dev/$n"; fi
done
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$dev/pts"
if [ -d /dev/shm ]; then mount --bind /dev/shm "$dev/shm"; fi
mount --rbind "$dev" /dev
exec "$@"
"#;

/// Whether this machine lets root make a private mount namespace (not in every container).
pub(crate) fn available() -> Result<(), String> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT
        .get_or_init(|| {
            let out = Command::new("unshare")
                .args(["--mount", "--propagation", "private", "--", "true"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("cannot run unshare: {e}"))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "unshare --mount failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ))
            }
        })
        .clone()
}

/// The private `/dev` and the socket behind its `/dev/log`; stops reading on drop.
#[derive(Debug)]
pub(crate) struct Capture {
    dev: PathBuf,
    file: PathBuf,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Capture {
    /// Prepares `dir/dev` and starts receiving into `dir/syslog`, one line per message.
    pub(crate) fn start(dir: &Path) -> Capture {
        let dev = dir.join("dev");
        fs::create_dir(&dev).expect("private /dev dir");
        fs::set_permissions(&dev, fs::Permissions::from_mode(0o755)).expect("chmod dev");
        for node in NODES {
            if Path::new("/dev").join(node).exists() {
                fs::File::create(dev.join(node)).expect("mount point for a device node");
            }
        }
        for sub in DIRS {
            fs::create_dir(dev.join(sub)).expect("mount point for a /dev dir");
        }
        symlink("pts/ptmx", dev.join("ptmx")).expect("dev/ptmx");
        symlink("/proc/self/fd", dev.join("fd")).expect("dev/fd");
        for (i, name) in ["stdin", "stdout", "stderr"].iter().enumerate() {
            symlink(format!("/proc/self/fd/{i}"), dev.join(name)).expect("dev/std*");
        }

        let socket = UnixDatagram::bind(dev.join("log")).expect("bind the /dev/log socket");
        // Sessions log as their user.
        fs::set_permissions(dev.join("log"), fs::Permissions::from_mode(0o666))
            .expect("chmod /dev/log");
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .expect("socket timeout");
        let file = dir.join("syslog");
        let mut out = fs::File::create(&file).expect("syslog file");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let mut line = buf[..n].to_vec();
                    while line.last().is_some_and(|b| *b == b'\n' || *b == 0) {
                        line.pop();
                    }
                    line.push(b'\n');
                    let _ = out.write_all(&line);
                }
            }
        });
        Capture {
            dev,
            file,
            stop,
            reader: Some(reader),
        }
    }

    /// The command that runs `program args` inside the namespace, with each `(file, target)`
    /// of `binds` bound over its target there only.
    pub(crate) fn wrap(&self, program: &Path, binds: &[(PathBuf, PathBuf)]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            SETUP,
            "sh",
        ])
        .arg(&self.dev);
        for (file, target) in binds {
            cmd.arg(file).arg(target);
        }
        cmd.arg("--").arg(program);
        cmd
    }

    pub(crate) fn path(&self) -> &Path {
        &self.file
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}
