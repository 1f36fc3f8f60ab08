//! Push approval, end to end on one host (issue 12, "approve → sshd lets the session start"):
//! from the phone's approval reaching the server to the session's command running, through the
//! host's daemon and `sshield login` (ForceCommand) under a real sshd and a real `ssh -t`.
//!
//! Starts a `sshield-server` (SQLite), and then two replicas on one throwaway PostgreSQL 15
//! cluster (the host asks one, the phone approves on the other: the decision reaches the host
//! through NOTIFY), each with one host joined whose config pushes at once to the test user
//! (`autopush_users`), then runs N logins `ssh -t host 'echo session-started'` on each.
//! In each, the terminal shows "Pushed a login request to your phone (pick NN)... "; the
//! phone (a device-API client with its bearer token, one loopback connection per
//! request) lists the pending request, and the clock starts just before it sends the
//! approval with NN. Two times are taken from the client's terminal: when `sshield login`
//! prints "Success. Logging you in..." (the daemon got the server's answer and allowed), and
//! when the command's output arrives (sshd's session ran it). Prints a markdown table of
//! p50, p99 and max (ms).
//!
//! ```text
//! cargo run --release -p sshield-e2e --example push_latency
//! ```
//!
//! Root only. Environment: `PUSH_LATENCY_N` (logins, default 50). Needs OpenSSH and oathtool
//! (scripts/install-test-deps). Servers, daemons, sshd, users and temp dirs go away with the
//! harness's drops.
#![forbid(unsafe_code)]
#![allow(
    clippy::unwrap_used,
    reason = "a benchmark run by hand: anything unexpected stops it, with the reason"
)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sshield_e2e::fleet::{FleetServer, Host, Phone};
use sshield_e2e::User;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    // Nearest rank: with 50 rounds the p99 is the slowest.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

/// A throwaway PostgreSQL 15 cluster (initdb and pg_ctl as `nobody`, which initdb needs, in
/// a temp dir, on a free loopback port), stopped by its postmaster's PID when dropped.
struct Postgres {
    dir: tempfile::TempDir,
    port: u16,
}

const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

impl Postgres {
    fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("sshield-pg-")
            .tempdir()
            .unwrap();
        std::os::unix::fs::chown(dir.path(), Some(65534), Some(65534)).unwrap();
        let data = dir.path().join("data");
        let as_nobody = |program: &str| {
            let mut c = Command::new("runuser");
            c.args(["-u", "nobody", "--"])
                .arg(Path::new(PG_BIN).join(program));
            c
        };
        let run = |mut c: Command| {
            let out = c.output().unwrap();
            assert!(out.status.success(), "{c:?}: {out:?}");
        };
        let mut initdb = as_nobody("initdb");
        initdb.arg("-D").arg(&data).args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        ]);
        run(initdb);
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1",
            dir.path().display()
        );
        let mut start = as_nobody("pg_ctl");
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.path().join("log"))
            .args(["-w", "-o", &options, "start"]);
        run(start);
        Self { dir, port }
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // The postmaster's PID is the first line of postmaster.pid; SIGINT is a fast shutdown.
        let pid = std::fs::read_to_string(self.dir.path().join("data/postmaster.pid"))
            .ok()
            .and_then(|t| t.lines().next().map(str::to_owned));
        if let Some(pid) = pid {
            let _ = Command::new("kill").args(["-INT", &pid]).status();
            for _ in 0..100 {
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// `n` logins approved on `phone` through `host`: the times
/// from the approval to `sshield login` allowing, and to the session's command running.
fn rounds(host: &Host, user: &User, phone: &Phone, n: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (mut allowed, mut session) = (Vec::new(), Vec::new());
    for round in 0..n + 2 {
        let mut s = host
            .ssh(user)
            .tty()
            .command("echo session-$((40 + 2))-started")
            .spawn();
        s.expect("(pick ");
        let number = s.expect(")... ").trim_end_matches(")... ").to_owned();
        let (id, _) = phone.pending();
        let start = Instant::now();
        let state = phone.approve(&id, &number);
        assert!(state.contains("approved"), "{state}");
        s.expect("Success. Logging you in...");
        let at_allowed = start.elapsed();
        s.expect("session-42-started");
        let at_session = start.elapsed();
        assert!(s.wait().success());
        // The first two warm up the caches (the helper's and sshd's first start).
        if round >= 2 {
            allowed.push(at_allowed);
            session.push(at_session);
        }
    }
    allowed.sort();
    session.sort();
    (allowed, session)
}

const SERVER: &str = "[push]\nper_hour = 100000\n";

fn main() {
    if !sshield_e2e::can_run() {
        eprintln!("push_latency: needs root and OpenSSH");
        std::process::exit(2);
    }
    let n: usize = std::env::var("PUSH_LATENCY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let mut rows = Vec::new();
    {
        let server = FleetServer::start_with(SERVER);
        let user = User::create();
        server.enroll(user.name());
        let phone = Phone::add(&server, user.name());
        let host = Host::join_with(
            &server,
            "bench-sqlite",
            "secure",
            &format!("\n[push]\nautopush_users = [\"{}\"]\n", user.name()),
        );
        rows.push(("SQLite", rounds(&host, &user, &phone, n)));
    }
    if Path::new(PG_BIN).join("initdb").exists() {
        let pg = Postgres::start();
        // The host waits on one replica; the phone approves on the other, whose decision
        // reaches the first through PostgreSQL's NOTIFY.
        let first = FleetServer::start_on(SERVER, &pg.url());
        let second = first.replica();
        let user = User::create();
        first.enroll(user.name());
        let phone = Phone::add(&second, user.name());
        let host = Host::join_with(
            &first,
            "bench-pg",
            "secure",
            &format!("\n[push]\nautopush_users = [\"{}\"]\n", user.name()),
        );
        rows.push(("PostgreSQL, 2 replicas", rounds(&host, &user, &phone, n)));
        drop((host, second, first));
        drop(pg);
    } else {
        eprintln!("push_latency: no PostgreSQL 15 at {PG_BIN}; SQLite only");
    }
    println!("| backend | from → to | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (backend, (allowed, session)) in &rows {
        for (what, times) in [
            ("approve → `sshield login` allows", allowed),
            ("approve → the session's command runs", session),
        ] {
            println!(
                "| {backend} | {what} | {} | {} | {} | {} |",
                times.len(),
                ms(percentile(times, 50.0)),
                ms(percentile(times, 99.0)),
                ms(*times.last().unwrap())
            );
        }
    }
}
