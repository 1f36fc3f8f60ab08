//! Push approval, end to end on one host (issue 12, "approve → sshd lets the session start"):
//! from the phone's approval reaching the server to the session's command running, through the
//! host's daemon and `sshield login` (ForceCommand) under a real sshd and a real `ssh -t`.
//!
//! Starts a `sshield-server` (SQLite) and one host joined to it whose config pushes at once to
//! the test user (`autopush_users`), then runs N logins `ssh -t host 'echo session-started'`.
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

fn main() {
    if !sshield_e2e::can_run() {
        eprintln!("push_latency: needs root and OpenSSH");
        std::process::exit(2);
    }
    let n: usize = std::env::var("PUSH_LATENCY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let server = FleetServer::start_with("[push]\nper_hour = 100000\n");
    let user = User::create();
    let name = user.name().to_owned();
    server.enroll(&name);
    let phone = Phone::add(&server, &name);
    let host = Host::join_with(
        &server,
        "bench1",
        "secure",
        &format!("\n[push]\nautopush_users = [\"{name}\"]\n"),
    );
    let (mut allowed, mut session) = (Vec::new(), Vec::new());
    for round in 0..n + 2 {
        let mut s = host
            .ssh(&user)
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
    println!("| backend | from → to | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (what, times) in [
        ("approve → `sshield login` allows", &allowed),
        ("approve → the session's command runs", &session),
    ] {
        println!(
            "| SQLite | {what} | {} | {} | {} | {} |",
            times.len(),
            ms(percentile(times, 50.0)),
            ms(percentile(times, 99.0)),
            ms(*times.last().unwrap())
        );
    }
}
