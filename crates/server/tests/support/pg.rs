//! A throwaway PostgreSQL cluster: the end-to-end harness's (`sshield_e2e::Postgres`: the
//! machine's PostgreSQL 15 in a temp dir, on a free loopback port, run as `nobody`, stopped
//! by its PID). One cluster is shared by the tests of a binary that run at the same time
//! (starting one costs seconds); each test gets its own database. The cluster is stopped when its last user drops it, also
//! when a test panics. It serves TLS too, with a certificate for 127.0.0.1 from a CA of its
//! own ([`PgDatabase::ca`]), so tests can check `sslmode=verify-full`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};

use sqlx::Connection;
use sshield_e2e::Postgres;

/// A running cluster (the end-to-end harness's, which stops it by its PID), serving TLS.
pub(crate) struct PgCluster {
    postgres: Postgres,
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

impl PgCluster {
    fn start() -> Self {
        let postgres = Postgres::start_with(|dir| {
            super::tls::certificates(dir);
            // Readable by the cluster's user.
            for file in ["server.key", "server.crt"] {
                Postgres::give_to_cluster(&dir.join(file));
            }
            vec![
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}/server.crt", dir.display()),
                format!("ssl_key_file={}/server.key", dir.display()),
            ]
        });
        Self { postgres }
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
        self.postgres.dir().join("ca.crt")
    }

    /// A URL for `database` in this cluster.
    pub(crate) fn url(&self, database: &str) -> String {
        self.postgres.url(database)
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
