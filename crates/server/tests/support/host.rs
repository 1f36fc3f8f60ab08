//! A host of a fleet as the tests play it: its own config and state dir, `sshield join`, and
//! its own `sshield daemon` asked over its socket in the daemon's protocol.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The `sshield` binary under test.
pub(crate) fn sshield() -> Command {
    Command::new(&sshield_e2e::artefacts().cli)
}

/// A host's directory: `sshield.toml` (with the text it was made with), `users/`, `host.key`.
pub(crate) struct HostDir {
    _tmp: tempfile::TempDir,
    /// The directory.
    pub dir: PathBuf,
    /// The config text it started with.
    pub initial: String,
}

impl HostDir {
    /// A host whose config is `config`.
    pub(crate) fn new(config: &str) -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("host");
        std::fs::create_dir(&dir).expect("mkdir");
        std::fs::write(dir.join("sshield.toml"), config).expect("write config");
        Self {
            _tmp: tmp,
            dir,
            initial: config.to_owned(),
        }
    }

    /// Its config file.
    pub(crate) fn config(&self) -> PathBuf {
        self.dir.join("sshield.toml")
    }

    /// Where `sshield join` puts its key.
    pub(crate) fn key(&self) -> PathBuf {
        self.dir.join("host.key")
    }

    /// Its daemon's socket (the config must say `socket = "sshield.sock"`).
    pub(crate) fn socket(&self) -> PathBuf {
        self.dir.join("sshield.sock")
    }

    /// Its daemon's log (the config must say `log_file = "<dir>/log"`; see [`HostDir::log_file`]).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The `log_file` line for this host's config.
    pub(crate) fn log_file(&self) -> String {
        format!("log_file = \"{}\"\n", self.dir.join("log").display())
    }

    /// `sshield --config C ARGS`: (exit code, stdout, stderr).
    pub(crate) fn sshield(&self, args: &[&str]) -> (i32, String, String) {
        let out = sshield()
            .arg("--config")
            .arg(self.config())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run sshield");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `sshield join ARGS`.
    pub(crate) fn join(&self, args: &[&str]) -> (i32, String, String) {
        self.sshield(&[&["join"], args].concat())
    }

    /// The config's text now.
    pub(crate) fn text(&self) -> String {
        std::fs::read_to_string(self.config()).expect("read config")
    }

    /// Starts this host's daemon and waits for its socket.
    pub(crate) fn daemon(&self) -> Daemon {
        let mut child = sshield()
            .arg("--config")
            .arg(self.config())
            .arg("daemon")
            .arg("--syslog-socket")
            .arg(self.dir.join("no-syslog"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshield daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(self.socket()).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the daemon exited: {status}");
            }
            assert!(Instant::now() < deadline, "the daemon did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Daemon(child)
    }

    /// One login through the daemon: `need`, then each code typed; the reply lines.
    pub(crate) fn login(&self, codes: &[&str]) -> Vec<String> {
        let mut s = UnixStream::connect(self.socket()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let mut reader = BufReader::new(s.try_clone().expect("clone"));
        let mut requests = vec![r#"{"v":1,"op":"need"}"#.to_owned()];
        requests.extend(
            codes
                .iter()
                .map(|c| format!(r#"{{"v":1,"op":"check","code":"{c}"}}"#)),
        );
        requests
            .iter()
            .map(|r| {
                s.write_all(format!("{r}\n").as_bytes()).expect("write");
                let mut line = String::new();
                reader.read_line(&mut line).expect("read");
                line
            })
            .collect()
    }
}

/// A running daemon, stopped (by its PID) when dropped.
pub(crate) struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Joins `host` to the server whose state dir is `state` at `url`, as `name`.
pub(crate) fn join(host: &HostDir, state: &Path, url: &str, name: &str) {
    let (ok, out, err) = crate::support::server::cli(state, &[], &["host", "add", name]);
    assert!(ok, "{err}");
    let token = out.lines().next().expect("a token");
    let (code, out, err) = host.join(&[url, token, "--name", name]);
    assert_eq!(code, 0, "{out}{err}");
}
