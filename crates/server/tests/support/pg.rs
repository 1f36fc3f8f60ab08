//! A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` from the machine's PostgreSQL 15 in a
//! temp dir, on a free loopback port, run as `nobody` (initdb refuses root). One cluster is
//! shared by the tests of a binary that run at the same time (starting one costs seconds);
//! each test gets its own database. The cluster is stopped when its last user drops it, also
//! when a test panics. It serves TLS too, with a certificate for 127.0.0.1 from a CA of its
//! own ([`PgDatabase::ca`]), so tests can check `sslmode=verify-full`.

use std::net::TcpListener;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sqlx::Connection;

const BIN: &str = "/usr/lib/postgresql/15/bin";
/// initdb refuses to run as root; `nobody` owns the cluster's files.
const RUN_AS: &str = "nobody";
const NOBODY_UID: u32 = 65534;
const NOGROUP_GID: u32 = 65534;

/// A running cluster.
pub(crate) struct PgCluster {
    dir: tempfile::TempDir,
    port: u16,
}

static SHARED: Mutex<Weak<PgCluster>> = Mutex::new(Weak::new());
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A database of its own in the shared cluster; keeps the cluster running while held.
pub(crate) struct PgDatabase {
    /// The cluster (its CA for TLS tests).
    pub cluster: Arc<PgCluster>,
    /// Its URL.
    pub url: String,
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run a PostgreSQL command");
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn as_nobody(program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", RUN_AS, "--"])
        .arg(Path::new(BIN).join(program));
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

impl PgCluster {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sshield-pg-")
            .tempdir()
            .expect("temp dir");
        chown(dir.path(), Some(NOBODY_UID), Some(NOGROUP_GID)).expect("chown the cluster dir");
        let data = dir.path().join("data");
        super::tls::certificates(dir.path());
        // Readable by the cluster's user.
        for file in ["server.key", "server.crt"] {
            chown(dir.path().join(file), Some(NOBODY_UID), Some(NOGROUP_GID)).expect("chown");
        }
        run(as_nobody("initdb").arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]));
        let port = free_port();
        let options = format!(
            "-p {port} -k {0} -c listen_addresses=127.0.0.1 -c fsync=on -c ssl=on \
             -c ssl_cert_file={0}/server.crt -c ssl_key_file={0}/server.key",
            dir.path().display()
        );
        run(as_nobody("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "-o", &options, "start"]));
        Self { dir, port }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The shared cluster, started if none is running.
    pub(crate) fn shared() -> Arc<Self> {
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(cluster) = slot.upgrade() {
            return cluster;
        }
        let cluster = Arc::new(Self::start());
        *slot = Arc::downgrade(&cluster);
        cluster
    }

    /// The CA that signed the cluster's TLS certificate.
    pub(crate) fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A URL for `database` in this cluster.
    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        // Immediate: nothing here needs to survive; a fast stop keeps the tests short.
        let _ = as_nobody("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }
}

/// A fresh, empty database in the shared cluster.
pub(crate) async fn database() -> PgDatabase {
    let cluster = PgCluster::shared();
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::SeqCst)
    );
    let mut admin = sqlx::PgConnection::connect(&cluster.url("postgres"))
        .await
        .expect("connect to the cluster");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create a database");
    let _ = admin.close().await;
    PgDatabase {
        url: cluster.url(&name),
        cluster,
    }
}
