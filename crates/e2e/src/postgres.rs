//! A throwaway PostgreSQL cluster for end-to-end tests: the machine's PostgreSQL 15
//! (`initdb`, then `postgres` itself as a child of the test) in a temp dir, on a free
//! loopback port, run as `nobody` (initdb refuses root), `fsync` on as in production. It is
//! stopped by its PID when dropped (a fast shutdown, then SIGKILL if it lingers), also when
//! a test panics.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// Where Debian's postgresql-15 puts its programs (scripts/install-test-deps installs it).
pub const POSTGRES_BIN: &str = "/usr/lib/postgresql/15/bin";
const NOBODY: u32 = 65534;
const NOGROUP: u32 = 65534;

/// A running cluster; its databases are reached as `postgres` without a password, on
/// 127.0.0.1 only.
#[derive(Debug)]
pub struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
    server: Option<Child>,
}

/// `program` from PostgreSQL's bin dir, run as nobody (setpriv execs it, so the child's
/// PID is the program's own).
fn as_nobody(program: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        &format!("--reuid={NOBODY}"),
        &format!("--regid={NOGROUP}"),
        "--clear-groups",
        "--",
    ])
    .arg(Path::new(POSTGRES_BIN).join(program));
    cmd
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

impl Postgres {
    /// Whether the cluster can be started here: the reason if not.
    pub fn missing() -> Option<String> {
        (!Path::new(POSTGRES_BIN).join("initdb").exists()).then(|| {
            format!(
                "{POSTGRES_BIN}/initdb is missing; run scripts/install-test-deps (postgresql-15)"
            )
        })
    }

    /// A new cluster, started and accepting connections.
    pub fn start() -> Postgres {
        Self::start_with(|_| Vec::new())
    }

    /// A new cluster with more settings: `settings` is given the cluster's own dir (owned by
    /// the cluster's user, `nobody`) before the server starts, may put files there (a TLS
    /// certificate), and returns `name=value` settings for the server's command line.
    pub fn start_with(settings: impl FnOnce(&Path) -> Vec<String>) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("sshield-e2e-pg.")
            .tempdir()
            .expect("a temp dir");
        chown(dir.path(), Some(NOBODY), Some(NOGROUP)).expect("chown the cluster's dir");
        let settings = settings(dir.path());
        let data = dir.path().join("data");
        run(as_nobody("initdb").arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.path().join("log")).expect("the cluster's log");
        let server = as_nobody("postgres")
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=on"])
            .args(settings.iter().flat_map(|s| ["-c", s.as_str()]))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start postgres");
        let mut cluster = Postgres {
            dir,
            port,
            server: Some(server),
        };
        cluster.wait_ready();
        cluster
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(Path::new(POSTGRES_BIN).join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not start in 30 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The cluster's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    /// The cluster's own dir (its data, log, and what `start_with` put there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The URL of the database `name` (created or not).
    pub fn url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Makes `path` (put in [`Postgres::dir`] by `start_with`'s settings) the cluster's user's.
    pub fn give_to_cluster(path: &Path) {
        chown(path, Some(NOBODY), Some(NOGROUP)).expect("chown for the cluster");
    }

    /// Creates the database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> String {
        run(
            Command::new(Path::new(POSTGRES_BIN).join("createdb")).args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                name,
            ]),
        );
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let Some(mut server) = self.server.take() else {
            return;
        };
        // Our child, not yet reaped: its PID is still ours to signal. SIGINT is PostgreSQL's
        // fast shutdown (its backends are told to end; nothing here needs to be kept).
        if let Some(pid) = i32::try_from(server.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::Int);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if !matches!(server.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        crate::procs::kill_tree(server.id());
        let _ = server.wait();
    }
}
