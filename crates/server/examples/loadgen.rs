//! The load generator of `scripts/bench-server`: a joined host that asks `POST /v1/verify`
//! for users' next valid HOTP codes, as fast as the server answers (closed loop).
//!
//! It does what the privacyIDEA harness's `loadgen.py` does against `/validate/check`, so the
//! two systems are driven the same way: `--concurrency` workers each keep one request in
//! flight; users are handed out first in, first out, so one user never has two requests in
//! flight; a user's counter moves on only when the server accepts; counters are kept in
//! `--state` between runs. Unlike `loadgen.py` every request is signed, as a host signs it
//! (docs/server.md, "Signed requests"), and each worker keeps one HTTP/1.1 connection open.
//!
//! ```text
//! loadgen join --url http://127.0.0.1:PORT --name bench --token sshj_... --key FILE
//! loadgen run  --url http://127.0.0.1:PORT --name bench --key FILE --users-oath FILE \
//!              --state FILE -c 32 -d 20 [--server-pid PID] [--label TEXT]
//! ```
//!
//! `run` prints one JSON line with the keys `loadgen.py` prints (requests, ok, rejected,
//! errors, ok_rps, p50_ms, p90_ms, p99_ms, server_cpu_ms_per_req, ...), so one script can put
//! both systems in one table.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use ed25519_dalek::SigningKey;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::Request;
use hyper_util::rt::TokioIo;
use sshield_otp::{hotp, HotpParams, Secret};
use sshield_wire::signed as signature;

type Error = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Make a host key, join with a token from `sshield-server host add`, save the key.
    Join {
        #[command(flatten)]
        host: HostArgs,
        /// The join token.
        #[arg(long)]
        token: String,
    },
    /// Drive `/v1/verify` with valid HOTP codes and print one JSON line.
    Run(RunArgs),
}

#[derive(Debug, Args)]
struct HostArgs {
    /// The server, `http://127.0.0.1:PORT`.
    #[arg(long)]
    url: String,
    /// The host's name.
    #[arg(long)]
    name: String,
    /// The host's ed25519 key (32 raw bytes), written by `join`, read by `run`.
    #[arg(long)]
    key: PathBuf,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    host: HostArgs,
    /// pam_oath usersfile with the users and keys (the `HOTP` lines are used).
    #[arg(long)]
    users_oath: PathBuf,
    /// Each user's next counter, kept between runs (JSON object: index -> counter).
    #[arg(long)]
    state: PathBuf,
    /// Requests in flight.
    #[arg(long, short = 'c', default_value_t = 8)]
    concurrency: usize,
    /// Seconds of load; requests in flight then finish.
    #[arg(long, short = 'd', default_value_t = 20.0)]
    duration: f64,
    /// Untimed requests first (warm the server's caches and connections).
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    /// The server's PID, for its CPU time.
    #[arg(long, default_value_t = 0)]
    server_pid: u32,
    /// Copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

/// One simulated user: name, secret, next counter.
struct User {
    name: String,
    secret: Secret,
}

/// What the workers share.
struct Shared {
    users: Vec<User>,
    queue: Mutex<Queue>,
    stats: Mutex<Stats>,
    key: SigningKey,
    host: String,
    authority: String,
    run_id: String,
}

struct Queue {
    free: VecDeque<usize>,
    counters: Vec<u64>,
    issued: u64,
}

#[derive(Default)]
struct Stats {
    latencies: Vec<f64>,
    ok: u64,
    rejected: u64,
    errors: u64,
    http: BTreeMap<String, u64>,
    reasons: BTreeMap<String, u64>,
    samples: Vec<String>,
}

fn main() -> Result<(), Error> {
    let cli = Cli::parse();
    // One thread, like loadgen.py's one asyncio loop: the load generator takes at most one of
    // the machine's cores, and the server the rest.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match cli.command {
        Command::Join { host, token } => runtime.block_on(join(host, token)),
        Command::Run(args) => runtime.block_on(run(args)),
    }
}

fn authority(url: &str) -> Result<String, Error> {
    url.strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/').to_owned())
        .ok_or_else(|| format!("--url {url:?}: give http://HOST:PORT").into())
}

async fn connect(
    authority: &str,
) -> Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>, Error> {
    let stream = tokio::net::TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn join(host: HostArgs, token: String) -> Result<(), Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    let key = SigningKey::from_bytes(&seed);
    let body = serde_json::json!({
        "token": token,
        "name": host.name,
        "public_key": data_encoding::BASE64.encode(key.verifying_key().as_bytes()),
    })
    .to_string();
    let authority = authority(&host.url)?;
    let mut sender = connect(&authority).await?;
    let request = Request::post("/v1/join")
        .header("host", &authority)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let text = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        return Err(format!("join: HTTP {status}: {}", String::from_utf8_lossy(&text)).into());
    }
    fs::write(&host.key, seed)?;
    Ok(())
}

/// The `HOTP` users of a pam_oath usersfile (as `scripts/bench-server` writes it).
fn read_users(path: &Path) -> Result<Vec<User>, Error> {
    let text = fs::read_to_string(path)?;
    let mut users = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() != Some(&"HOTP") {
            continue;
        }
        let (Some(name), Some(hex)) = (fields.get(1), fields.get(3)) else {
            return Err(format!(
                "{}:{}: expected `HOTP USER - HEXKEY`",
                path.display(),
                n + 1
            )
            .into());
        };
        let bytes = data_encoding::HEXLOWER_PERMISSIVE
            .decode(hex.as_bytes())
            .map_err(|e| format!("{}:{}: the key: {e}", path.display(), n + 1))?;
        users.push(User {
            name: (*name).to_owned(),
            secret: Secret::from_bytes(bytes)?,
        });
    }
    if users.is_empty() {
        return Err(format!("{}: no HOTP users", path.display()).into());
    }
    Ok(users)
}

/// Linux reports process times in USER_HZ, 100 per second on every architecture.
const USER_HZ: f64 = 100.0;

/// utime + stime of a process (all its threads), in seconds.
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / USER_HZ
}

/// Nearest-rank percentile, as loadgen.py computes it.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p / 100.0 * sorted.len() as f64 + 0.5).round() as usize;
    Some(sorted[rank.saturating_sub(1).min(sorted.len() - 1)])
}

async fn run(args: RunArgs) -> Result<(), Error> {
    let users = read_users(&args.users_oath)?;
    let seed: [u8; 32] = fs::read(&args.host.key)?
        .try_into()
        .map_err(|_| format!("{}: not a 32-byte key", args.host.key.display()))?;
    let mut counters = vec![0u64; users.len()];
    if let Ok(text) = fs::read_to_string(&args.state) {
        let saved: HashMap<String, u64> =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.state.display()))?;
        for (index, counter) in saved {
            if let Some(slot) = index
                .parse::<usize>()
                .ok()
                .and_then(|i| counters.get_mut(i))
            {
                *slot = counter;
            }
        }
    }
    let mut run_id = [0u8; 6];
    getrandom::getrandom(&mut run_id)?;
    let shared = Arc::new(Shared {
        queue: Mutex::new(Queue {
            free: (0..users.len()).collect(),
            counters,
            issued: 0,
        }),
        users,
        stats: Mutex::new(Stats::default()),
        key: SigningKey::from_bytes(&seed),
        host: args.host.name.clone(),
        authority: authority(&args.host.url)?,
        run_id: data_encoding::HEXLOWER.encode(&run_id),
    });

    // Warm-up: untimed, through one connection; its counters count, its figures do not.
    if args.warmup > 0 {
        let mut sender = connect(&shared.authority).await?;
        for _ in 0..args.warmup {
            one(&shared, &mut sender, usize::MAX, false).await?;
        }
        *shared.stats.lock().map_err(|_| "poisoned")? = Stats::default();
    }

    let pid = args.server_pid.to_string();
    let server_cpu0 = cpu_seconds(&pid);
    let self_cpu0 = cpu_seconds("self");
    let started = Instant::now();
    let stop = started + Duration::from_secs_f64(args.duration);
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let shared = Arc::clone(&shared);
        workers.push(tokio::spawn(async move {
            let mut sender = connect(&shared.authority).await?;
            while Instant::now() < stop {
                one(&shared, &mut sender, worker, true).await?;
            }
            Ok::<_, Error>(())
        }));
    }
    for worker in workers {
        worker.await??;
    }
    let wall = started.elapsed().as_secs_f64();
    let server_cpu = cpu_seconds(&pid) - server_cpu0;
    let self_cpu = cpu_seconds("self") - self_cpu0;

    let queue = shared.queue.lock().map_err(|_| "poisoned")?;
    let saved: BTreeMap<String, u64> = queue
        .counters
        .iter()
        .enumerate()
        .map(|(i, c)| (i.to_string(), *c))
        .collect();
    let temp = args.state.with_extension("tmp");
    fs::write(&temp, serde_json::to_string(&saved)?)?;
    fs::rename(&temp, &args.state)?;

    let mut stats = shared.stats.lock().map_err(|_| "poisoned")?;
    stats.latencies.sort_by(f64::total_cmp);
    let n = stats.ok + stats.rejected + stats.errors;
    let ms = |v: Option<f64>| v.map(|s| (s * 100_000.0).round() / 100.0);
    let lat = &stats.latencies;
    let round1 = |v: f64| (v * 10.0).round() / 10.0;
    let line = serde_json::json!({
        "label": args.label,
        "mode": "hotp",
        "concurrency": args.concurrency,
        "requests": n,
        "ok": stats.ok,
        "rejected": stats.rejected,
        "errors": stats.errors,
        "http": stats.http,
        "reasons": stats.reasons,
        "wall_s": (wall * 100.0).round() / 100.0,
        "rps": round1(n as f64 / wall),
        "ok_rps": round1(stats.ok as f64 / wall),
        "p50_ms": ms(percentile(lat, 50.0)),
        "p90_ms": ms(percentile(lat, 90.0)),
        "p99_ms": ms(percentile(lat, 99.0)),
        "max_ms": ms(lat.last().copied()),
        "server_cpu_s": (server_cpu * 100.0).round() / 100.0,
        "server_cpu_pct_of_1core": round1(100.0 * server_cpu / wall),
        "server_cpu_ms_per_req": if n > 0 { Some((100_000.0 * server_cpu / n as f64).round() / 100.0) } else { None },
        "loadgen_cpu_pct_of_1core": round1(100.0 * self_cpu / wall),
        "err_samples": stats.samples,
    });
    println!("{line}");
    Ok(())
}

/// One verification of the next free user's next code; `record` false for the warm-up.
async fn one(
    shared: &Shared,
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    worker: usize,
    record: bool,
) -> Result<(), Error> {
    let (user, counter, sequence) = {
        let mut queue = shared.queue.lock().map_err(|_| "poisoned")?;
        let user = queue
            .free
            .pop_front()
            .ok_or("no free user: more workers than users")?;
        queue.issued += 1;
        (user, queue.counters[user], queue.issued)
    };
    let code = hotp(&shared.users[user].secret, &HotpParams::default(), counter);
    let body = serde_json::json!({
        "user": shared.users[user].name,
        "code": code.as_str(),
        "source": "127.0.0.1",
        "service": "sshd",
    })
    .to_string();
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let nonce = format!("{}-{worker}-{sequence}", shared.run_id);
    let headers = signature::sign(
        &shared.key,
        &shared.host,
        "POST",
        "/v1/verify",
        body.as_bytes(),
        i64::try_from(now)?,
        &nonce,
    );
    let mut request = Request::post("/v1/verify")
        .header("host", &shared.authority)
        .header("content-type", "application/json");
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request.body(Full::new(Bytes::from(body)))?;

    let started = Instant::now();
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let latency = started.elapsed().as_secs_f64();

    let answer: Option<serde_json::Value> = serde_json::from_slice(&bytes).ok();
    let allowed = status.is_success()
        && answer
            .as_ref()
            .and_then(|a| a.get("outcome"))
            .and_then(|o| o.as_str())
            == Some("allowed");
    {
        let mut queue = shared.queue.lock().map_err(|_| "poisoned")?;
        if allowed {
            queue.counters[user] += 1;
        }
        queue.free.push_back(user);
    }
    if !record {
        return Ok(());
    }
    let mut stats = shared.stats.lock().map_err(|_| "poisoned")?;
    stats.latencies.push(latency);
    *stats.http.entry(status.as_u16().to_string()).or_default() += 1;
    if allowed {
        stats.ok += 1;
    } else if status.is_success() {
        stats.rejected += 1;
        let reason = answer
            .as_ref()
            .and_then(|a| a.get("reason"))
            .and_then(|r| r.as_str())
            .unwrap_or("?")
            .to_owned();
        *stats.reasons.entry(reason).or_default() += 1;
    } else {
        stats.errors += 1;
        if stats.samples.len() < 5 {
            let sample = format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes));
            stats.samples.push(sample);
        }
    }
    Ok(())
}
