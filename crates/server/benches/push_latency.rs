//! Push approval's latency, printed as a table (no timing is asserted anywhere):
//!
//! - **approve → host**: from the device sending its approval (the number and a passkey
//!   assertion for that request, whose challenge it asked for just before) to the host's
//!   held-open `POST /v1/push/wait` returning `approved`;
//! - **push → notification**: from the host sending `POST /v1/push` to the encrypted push
//!   arriving at a push service's stand-in on loopback (the sending happens after the host's
//!   answer, in the background).
//!
//! On a SQLite file, on PostgreSQL with one server, and on two replicas of one PostgreSQL
//! (asked and waited on one, approved on the other: the wake-up travels by LISTEN/NOTIFY).
//! Run: `cargo bench -p sshield-server --bench push_latency` (ROUNDS=50 by default).

#[path = "../tests/support/mod.rs"]
mod support;

use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use support::passkey::{challenge, enroll_with, SoftPasskey};
use support::push_service::PushService;
use support::server::{cli, enroll_confirmed, state_dir, wait_in_background, Server, TestHost};

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn unix_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Latencies in ms: (approve → host, push → notification).
fn measure(postgres: bool, replicas: usize, rounds: usize) -> (Vec<f64>, Vec<f64>) {
    let (tmp, state) = state_dir();
    let config = tmp.path().join("server.toml");
    std::fs::write(
        &config,
        "[push]\nper_hour = 100000\nmax_wait = \"20s\"\nallow_http_endpoints = true\n\
         public_url = \"https://sshield.test\"\n",
    )
    .expect("config");
    let mut global = vec!["--config".to_owned(), config.display().to_string()];
    let pg = postgres.then(|| {
        tokio::runtime::Runtime::new()
            .expect("runtime")
            .block_on(support::pg::database())
    });
    if let Some(pg) = &pg {
        global.extend(["--database".to_owned(), pg.url.clone()]);
    }
    let args: Vec<&str> = global.iter().map(String::as_str).collect();
    let servers: Vec<Server> = (0..replicas)
        .map(|_| Server::start(&state, &args, &["--listen", "127.0.0.1:0"]))
        .collect();
    let (asked, decider) = (&servers[0], &servers[replicas - 1]);
    enroll_confirmed(&state, &args, "alice");
    let host = TestHost::new("web1", 7);
    host.join(asked, &state, &args);
    let (ok, out, err) = cli(&state, &args, &["push", "enroll-link", "alice"]);
    assert!(ok, "{err}");
    let link = out.lines().next().and_then(|l| l.rsplit('#').next());
    let mut passkey = SoftPasskey::new(1, "https://sshield.test");
    let (token, _) = enroll_with(asked, link.expect("a link"), &mut passkey);
    let auth = format!("Bearer {token}");
    let (_, key) = asked.request("GET", "/v1/push/key", &[], b"");
    let key = json_of(&key)["vapid_public_key"]
        .as_str()
        .expect("key")
        .to_owned();
    let phone = PushService::start(&key, "ok", None);
    phone.subscribe(asked, &token);

    let (mut approve, mut notify) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let sent = unix_f64();
        let body = json!({"user": "alice", "source": "203.0.113.9", "service": "sshd"});
        let (status, created) = host.post(asked, "/v1/push", &body.to_string());
        assert_eq!(status, 201, "{created}");
        let created = json_of(&created);
        let id = created["id"].as_str().expect("id").to_owned();
        let number = created["number"].as_i64().expect("number");

        let waiting = wait_in_background(asked.addr, TestHost::new("web1", 7), &id);
        // Let the wait be held open before deciding.
        thread::sleep(Duration::from_millis(100));
        let (status, options) = challenge(decider, &token, &id);
        assert_eq!(status, 200, "{options}");
        let assertion = passkey.assert(&options);
        let start = Instant::now();
        let decision =
            json!({"decision": "approve", "number": number, "assertion": assertion}).to_string();
        let (status, body) = decider.request(
            "POST",
            &format!("/v1/me/approvals/{id}"),
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            decision.as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        let ((status, body), done) = waiting.join().expect("the waiting host");
        assert_eq!(
            (status, json_of(&body)["state"].clone()),
            (200, json!("approved"))
        );
        approve.push(done.duration_since(start).as_secs_f64() * 1000.0);

        let seen = phone.requests();
        let arrived = seen
            .get(round)
            .and_then(|r| r["at"].as_f64())
            .expect("the push arrived");
        notify.push((arrived - sent) * 1000.0);
    }
    (approve, notify)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn row(label: &str, what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "| {label} | {what} | {} | {:.1} | {:.1} | {:.1} |",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms.last().copied().unwrap_or(0.0)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too: keep that short.
    let testing = std::env::args().all(|a| a != "--bench");
    let rounds = if testing {
        2
    } else {
        std::env::var("ROUNDS")
            .ok()
            .and_then(|r| r.parse().ok())
            .unwrap_or(50)
    };
    println!("| backend | from → to | n | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|---|");
    for (label, postgres, replicas) in [
        ("SQLite", false, 1),
        ("PostgreSQL", true, 1),
        ("PostgreSQL, 2 replicas", true, 2),
    ] {
        let (approve, notify) = measure(postgres, replicas, rounds);
        row(label, "approve → host's wait returns", approve);
        row(label, "push request → push arrives", notify);
    }
}
