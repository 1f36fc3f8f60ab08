//! What each second-factor module adds to a real `ssh` login (issue 3, "Speed, side by side
//! with the peers": "the median added to a real `ssh` login by each module over a
//! password-only login").
//!
//! Starts one real OpenSSH `sshd` per setup with the e2e harness (its own PAM service, a
//! throwaway user), then times N sequential `ssh USER@127.0.0.1 true` logins through
//! keyboard-interactive for each, the setups taken in turn (A, B, C, D, A, B, ...) so that
//! machine noise spreads over all of them:
//!
//! 1. `auth requisite pam_unix.so nodelay` alone (the baseline);
//! 2. then `auth required pam_sshield.so` (HOTP, enrolled with the real `sshield enroll`);
//! 3. then `auth required pam_oath.so usersfile=... window=10`;
//! 4. then `auth required pam_google_authenticator.so secret=DIR/${USER} user=root` (HOTP);
//! 5. then pam_sshield on a **fleet host** (issue 11: "what a fleet-mode ssh login adds over a
//!    local-store login"): the same stack and module, but the user has no record on the host;
//!    the host joined a `sshield-server` on SQLite (`sshield join`), the module asks the host's
//!    `sshield daemon`, which asks the server (a signed `POST /v1/verify`). The user's HOTP
//!    key is on the server (imported from a users.oath line);
//! 6. the same against a `sshield-server` on a throwaway PostgreSQL (`sshield_e2e::Postgres`),
//!    when the machine has PostgreSQL 15 (left out, and said so, when not).
//!
//! Every login succeeds with a fresh HOTP code from `oathtool` (each setup has its own
//! counter, so no code is offered twice); a failed login stops the run. Prints two markdown
//! tables and writes them into docs/benchmarks.md: the modules against each other between the
//! `<!-- ssh-login:begin -->` and `<!-- ssh-login:end -->` markers, the fleet against the
//! local store between `<!-- ssh-login-fleet:begin -->` and `<!-- ssh-login-fleet:end -->`
//! (each appended at the end when missing; nothing else in the file changes).
//!
//! ```text
//! cargo run --release -p sshield-e2e --example ssh_login_cost [-- --no-doc]
//! ```
//!
//! Root only. Environment: `SSH_LOGIN_COST_N` (logins per setup, default 100). Needs OpenSSH,
//! oathtool, libpam-oath and libpam-google-authenticator, and for the PostgreSQL row
//! postgresql-15 (scripts/install-test-deps). Users, PAM service files, temp dirs, sshd,
//! daemon, server and PostgreSQL processes go away with the harness's drops (each stopped by
//! its PID).
#![forbid(unsafe_code)]
// A benchmark tool run by hand: anything unexpected should stop it, with the reason.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::rc::Rc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sshield_e2e::fleet::{start_daemon, FleetServer, Running};
use sshield_e2e::{Client, Postgres, Sshd, SshdOptions, User};

const MARKERS: (&str, &str) = ("<!-- ssh-login:begin -->", "<!-- ssh-login:end -->");
const FLEET_MARKERS: (&str, &str) = (
    "<!-- ssh-login-fleet:begin -->",
    "<!-- ssh-login-fleet:end -->",
);

/// What a fleet setup keeps running while its logins are timed: the server (and its
/// database) and the host's daemon, stopped by their PIDs when dropped.
struct Fleet {
    _daemon: Running,
    _server: FleetServer,
    _postgres: Option<Postgres>,
}

/// One setup: its sshd, its user, and the code each login gives after the password.
struct Setup {
    label: &'static str,
    /// Shared by the local pam_sshield setup and the fleet ones.
    sshd: Rc<Sshd>,
    user: Rc<User>,
    /// The module's config as this setup has it, written to this path before each login: the
    /// local and the fleet setups take turns on one sshd, one user and one config path, so
    /// nothing but the module's way to its answer differs between them.
    module_config: Option<(PathBuf, String)>,
    /// `None` for the password-only baseline.
    codes: Option<Vec<String>>,
    next: usize,
    times: Vec<Duration>,
    /// For a fleet host: what it asks.
    fleet: Option<Fleet>,
}

impl Setup {
    fn login(&mut self, timed: bool) {
        if let Some((path, text)) = &self.module_config {
            let next = path.with_extension("next");
            fs::write(&next, text).expect("write the module's config");
            fs::set_permissions(&next, fs::Permissions::from_mode(0o644)).expect("chmod config");
            fs::rename(&next, path).expect("replace the module's config");
        }
        let mut answers = vec![self.user.password().to_owned()];
        if let Some(codes) = &self.codes {
            let code = codes
                .get(self.next)
                .unwrap_or_else(|| panic!("{}: out of codes", self.label));
            answers.push(code.clone());
            self.next += 1;
        }
        let out = Client::ssh(&self.sshd, &*self.user)
            .to("127.0.0.1")
            .methods("keyboard-interactive")
            .command("true")
            .answers(answers)
            .run();
        if !out.success() {
            panic!(
                "{}: login failed ({:?}), prompts {:?}\nstderr: {}\nsshd log tail:\n{}",
                self.label,
                out.status,
                out.prompt_texts(),
                out.stderr,
                tail(&self.sshd.log(), 30)
            );
        }
        if timed {
            self.times.push(out.elapsed);
        }
    }
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn main() {
    let write_doc = !std::env::args().skip(1).any(|a| a == "--no-doc");
    let n: usize = match std::env::var("SSH_LOGIN_COST_N") {
        Ok(v) => v
            .parse()
            .ok()
            .filter(|&n| n > 0)
            .unwrap_or_else(|| panic!("SSH_LOGIN_COST_N={v:?}: a positive whole number")),
        Err(_) => 100,
    };
    if !sshield_e2e::can_run() {
        eprintln!("ssh_login_cost: cannot run here (see above); run as root with OpenSSH");
        std::process::exit(1);
    }
    require("oathtool");
    let oath_so = module_path("pam_oath.so", "libpam-oath");
    let ga_so = module_path("pam_google_authenticator.so", "libpam-google-authenticator");
    let built = sshield_e2e::artefacts();
    let (module, cli) = (built.module.clone(), built.cli.clone());

    let load_start = loadavg();
    let started = now_utc();
    let dir = tempfile::Builder::new()
        .prefix("sshield-ssh-login-cost.")
        .tempdir()
        .expect("temp dir");
    let d = dir.path();
    // Everything under it is root's and private; the sshield config must be 0644, its dir
    // not writable by others.
    fs::set_permissions(d, fs::Permissions::from_mode(0o700)).expect("chmod temp dir");

    // One HOTP key for every module, codes from counter 0 (pam_oath, pam_sshield) and from
    // counter 1 (google-authenticator's `HOTP_COUNTER 1`). One warm-up login per setup.
    let key_hex = random_hex(20);
    let logins = n + 1;
    let codes = oathtool_hotp(&key_hex, logins + 1);

    let kbd = [
        "KbdInteractiveAuthentication yes",
        "PasswordAuthentication no",
        "AuthenticationMethods keyboard-interactive:pam",
    ];
    let stack = |second: Option<String>| {
        let mut lines = vec!["auth requisite pam_unix.so nodelay".to_owned()];
        lines.extend(second);
        lines.push("account required pam_unix.so".to_owned());
        lines.push("session required pam_unix.so".to_owned());
        lines
    };
    let start =
        |second: Option<String>| Sshd::start(SshdOptions::new().config(kbd).pam(stack(second)));

    // 1. Password only.
    let base_user = User::create();
    let baseline = Setup {
        label: "password only (pam_unix)",
        sshd: Rc::new(start(None)),
        user: Rc::new(base_user),
        module_config: None,
        codes: None,
        next: 0,
        times: Vec::new(),
        fleet: None,
    };

    // 2. pam_sshield: config with the store in the temp dir, user enrolled with the CLI.
    let sdir = d.join("sshield");
    fs::create_dir(&sdir).expect("mkdir sshield");
    let store = sdir.join("users");
    fs::create_dir(&store).expect("mkdir store");
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).expect("chmod store");
    let config = sdir.join("sshield.toml");
    let local_config = format!(
        "# ssh_login_cost: defaults but for the store\nstore = \"{}\"\n",
        store.display()
    );
    fs::write(&config, &local_config).expect("write sshield config");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod config");
    let link = sdir.join("pam_sshield.so");
    std::os::unix::fs::symlink(&module, &link).expect("symlink pam_sshield.so");
    let sshield_user = User::create();
    enroll(&cli, &config, sshield_user.name(), &base32(&key_hex));
    let sshield = Setup {
        label: "+ pam_sshield",
        sshd: Rc::new(start(Some(format!(
            "auth required {} config={}",
            link.display(),
            config.display()
        )))),
        user: Rc::new(sshield_user),
        module_config: Some((config.clone(), local_config.clone())),
        codes: Some(codes[..logins].to_vec()),
        next: 0,
        times: Vec::new(),
        fleet: None,
    };

    // 3. pam_oath: one usersfile line.
    let odir = d.join("oath");
    fs::create_dir(&odir).expect("mkdir oath");
    let oath_user = User::create();
    let usersfile = odir.join("users.oath");
    fs::write(
        &usersfile,
        format!("HOTP {} - {key_hex}\n", oath_user.name()),
    )
    .expect("write usersfile");
    fs::set_permissions(&usersfile, fs::Permissions::from_mode(0o600)).expect("chmod usersfile");
    let oath = Setup {
        label: "+ pam_oath",
        sshd: Rc::new(start(Some(format!(
            "auth required {} usersfile={} window=10",
            oath_so.display(),
            usersfile.display()
        )))),
        user: Rc::new(oath_user),
        module_config: None,
        codes: Some(codes[..logins].to_vec()),
        next: 0,
        times: Vec::new(),
        fleet: None,
    };

    // 4. google-authenticator: one 0600 file, HOTP mode.
    let gdir = d.join("ga");
    fs::create_dir(&gdir).expect("mkdir ga");
    let ga_user = User::create();
    let ga_file = gdir.join(ga_user.name());
    fs::write(
        &ga_file,
        format!("{}\n\" HOTP_COUNTER 1\n", base32(&key_hex)),
    )
    .expect("write google-authenticator file");
    fs::set_permissions(&ga_file, fs::Permissions::from_mode(0o600)).expect("chmod ga file");
    let ga = Setup {
        label: "+ pam_google_authenticator",
        sshd: Rc::new(start(Some(format!(
            "auth required {} secret={}/${{USER}} user=root",
            ga_so.display(),
            gdir.display()
        )))),
        user: Rc::new(ga_user),
        module_config: None,
        codes: Some(codes[1..=logins].to_vec()),
        next: 0,
        times: Vec::new(),
        fleet: None,
    };

    // 5 and 6. The fleet: the local pam_sshield setup's sshd, user and module, the module's
    // config switched to a host that joined a server holding the user (and not the user).
    let local = Local {
        sshd: Rc::clone(&sshield.sshd),
        user: Rc::clone(&sshield.user),
        config: config.clone(),
    };
    let mut setups = vec![baseline, sshield, oath, ga];
    let sqlite = FleetServer::start();
    setups.push(fleet_setup(
        "+ pam_sshield, fleet (server on SQLite)",
        d,
        "sqlite",
        sqlite,
        None,
        &key_hex,
        &codes[..logins],
        &local,
    ));
    let mut left_out = None;
    match Postgres::missing() {
        None => {
            let postgres = Postgres::start();
            let url = postgres.create_database("sshield_bench");
            let server = FleetServer::start_on("", &url);
            setups.push(fleet_setup(
                "+ pam_sshield, fleet (server on PostgreSQL)",
                d,
                "postgres",
                server,
                Some(postgres),
                &key_hex,
                &codes[..logins],
                &local,
            ));
        }
        Some(why) => {
            eprintln!("ssh_login_cost: no PostgreSQL row: {why}");
            left_out = Some(why);
        }
    }

    eprintln!(
        "ssh_login_cost: warm-up, then {n} rounds of {} logins",
        setups.len()
    );
    for s in &mut setups {
        s.login(false);
    }
    for round in 0..n {
        for s in &mut setups {
            s.login(true);
        }
        if (round + 1) % 10 == 0 {
            eprintln!("  {} rounds done", round + 1);
        }
    }
    let load_end = loadavg();

    let base_median = median(&setups[0].times);
    let mut table = String::new();
    table.push_str(
        "| setup | median ms | p90 ms | p99 ms | added over password-only (median difference) |\n",
    );
    table.push_str("|---|---:|---:|---:|---:|\n");
    for (i, s) in setups.iter().filter(|s| s.fleet.is_none()).enumerate() {
        let med = median(&s.times);
        let added = if i == 0 {
            "—".to_owned()
        } else {
            format!("{:+.1} ms", ms(med) - ms(base_median))
        };
        let _ = writeln!(
            table,
            "| {} | {:.1} | {:.1} | {:.1} | {} |",
            s.label,
            ms(med),
            ms(percentile(&s.times, 90)),
            ms(percentile(&s.times, 99)),
            added
        );
    }
    println!("{table}");
    let fleet_table = fleet_table(&setups);
    println!("{fleet_table}");

    let section = render(
        &table,
        n,
        &started,
        &load_start,
        &load_end,
        &oath_so,
        &ga_so,
    );
    let fleet_section = render_fleet(
        &fleet_table,
        n,
        &started,
        &load_start,
        &load_end,
        left_out.as_deref(),
    );
    if write_doc {
        let path = sshield_e2e::workspace_root().join("docs/benchmarks.md");
        write_section(&path, MARKERS, &section);
        write_section(&path, FLEET_MARKERS, &fleet_section);
        eprintln!("ssh_login_cost: wrote {}", path.display());
    }
    // Drops: sshds, users, PAM service files, temp dir.
    drop(setups);
    drop(dir);
}

/// The local pam_sshield setup's parts that the fleet setups share.
struct Local {
    sshd: Rc<Sshd>,
    user: Rc<User>,
    /// The module's config path (`config=` in the sshd's PAM stack).
    config: PathBuf,
}

/// A fleet host for [`Setup`] on `local`'s sshd and user: its own sshield config, empty
/// store and socket under `d`, joined to `server` with the real `sshield join`, its daemon
/// started, the user's HOTP key (`key_hex`) imported on the server and nowhere on the host.
/// Before each of its logins the module's config (`local.config`) is this host's.
#[allow(
    clippy::too_many_arguments,
    reason = "one setup: the server, its database and the host's parts, each given once"
)]
fn fleet_setup(
    label: &'static str,
    d: &Path,
    tag: &str,
    server: FleetServer,
    postgres: Option<Postgres>,
    key_hex: &str,
    codes: &[String],
    local: &Local,
) -> Setup {
    let built = sshield_e2e::artefacts();
    let dir = d.join(format!("fleet-{tag}"));
    fs::create_dir(&dir).expect("mkdir fleet host");
    let store = dir.join("users");
    fs::create_dir(&store).expect("mkdir fleet store");
    fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).expect("chmod store");
    let socket = dir.join("sshield.sock");
    let config = dir.join("sshield.toml");
    fs::write(
        &config,
        format!(
            "# ssh_login_cost: a fleet host ({tag})\nstore = \"{}\"\nsocket = \"{}\"\n",
            store.display(),
            socket.display()
        ),
    )
    .expect("write fleet host config");
    fs::set_permissions(&config, fs::Permissions::from_mode(0o644)).expect("chmod config");

    // The user's key on the server only, as an admin moving from pam_oath brings it.
    let oath = dir.join("users.oath");
    fs::write(&oath, format!("HOTP {} - {key_hex}\n", local.user.name()))
        .expect("write users.oath");
    fs::set_permissions(&oath, fs::Permissions::from_mode(0o600)).expect("chmod users.oath");
    server.cli(&["user", "import-users-oath", &oath.display().to_string()]);

    let name = format!("bench-{tag}");
    let token = server.cli(&["host", "add", &name]);
    let token = token.lines().next().expect("a join token");
    run_sshield(
        &built.cli,
        &config,
        &["join", &server.url, token, "--name", &name],
    );
    let daemon = start_daemon(&built.cli, &config, &socket);
    // What `sshield join` made of the host's config, for the module to read in turn.
    let joined = fs::read_to_string(&config).expect("read the joined config");
    Setup {
        label,
        sshd: Rc::clone(&local.sshd),
        user: Rc::clone(&local.user),
        module_config: Some((local.config.clone(), joined)),
        codes: Some(codes.to_vec()),
        next: 0,
        times: Vec::new(),
        fleet: Some(Fleet {
            _daemon: daemon,
            _server: server,
            _postgres: postgres,
        }),
    }
}

/// The fleet setups against the local pam_sshield one: medians, p90, p99, and what the
/// fleet adds.
fn fleet_table(setups: &[Setup]) -> String {
    let base = setups.first().expect("the baseline");
    let local = setups
        .iter()
        .find(|s| s.fleet.is_none() && s.label == "+ pam_sshield")
        .expect("the local pam_sshield setup");
    let mut t = String::new();
    t.push_str(
        "| setup | median ms | p90 ms | p99 ms | added over password-only | fleet − local \
(median) | fleet ÷ local (median) | fleet − local (median of per-round differences) |\n",
    );
    t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    let row = |t: &mut String, s: &Setup, against_local: bool| {
        let (med, local_med) = (ms(median(&s.times)), ms(median(&local.times)));
        let (diff, ratio, paired) = if against_local {
            let mut rounds: Vec<f64> = s
                .times
                .iter()
                .zip(&local.times)
                .map(|(f, l)| ms(*f) - ms(*l))
                .collect();
            rounds.sort_by(f64::total_cmp);
            let mid = (rounds[(rounds.len() - 1) / 2] + rounds[rounds.len() / 2]) / 2.0;
            (
                format!("{:+.1} ms", med - local_med),
                format!("{:.3}×", med / local_med),
                format!("{mid:+.1} ms"),
            )
        } else {
            ("—".to_owned(), "—".to_owned(), "—".to_owned())
        };
        let _ = writeln!(
            t,
            "| {} | {med:.1} | {:.1} | {:.1} | {:+.1} ms | {diff} | {ratio} | {paired} |",
            s.label,
            ms(percentile(&s.times, 90)),
            ms(percentile(&s.times, 99)),
            med - ms(median(&base.times)),
        );
    };
    row(&mut t, local, false);
    for s in setups.iter().filter(|s| s.fleet.is_some()) {
        row(&mut t, s, true);
    }
    t
}

fn render_fleet(
    table: &str,
    n: usize,
    started: &str,
    load_start: &str,
    load_end: &str,
    left_out: Option<&str>,
) -> String {
    let mut s = String::new();
    s.push_str("## A fleet login against a local one, across a whole ssh login\n\n");
    s.push_str(
        "Issue 11's goal: a fleet-mode ssh login adds under 5 ms over a local-store login. The \
same run as\nthe table above (`scripts/bench-ssh-login`), the same rounds. The local row is its \
`+ pam_sshield`\n(the user's HOTP record in the host's store, read and updated by the module in \
sshd). The fleet rows\nuse that row's very sshd, PAM stack, module and user, taking turns with \
it: before each login\nthe module's config file is replaced by the one of the setup whose turn \
it is, so only the\nmodule's way to its answer differs. A fleet host's config names no record of \
the user: it\njoined a `sshield-server` with `sshield join`, the module asks the host's \
`sshield daemon` over\nits socket (`verify`), the daemon asks the server (a signed \
`POST /v1/verify` over plain HTTP\non 127.0.0.1, on the connection the daemon keeps open), the server \
checks the code against the user's key\n(imported from a users.oath line) and stores the \
verification in one transaction (SQLite\n`synchronous = FULL`; PostgreSQL 15 with `fsync=on`, \
a throwaway cluster in a temp dir) before it\nanswers. Server, daemon and PostgreSQL on the \
same 2-core machine as sshd and the client.\n\n",
    );
    let _ = writeln!(
        s,
        "{n} timed logins per setup after one warm-up. \"Fleet − local\" is the difference of \
the medians;\nthe last column pairs each fleet login with the local login of the same round \
and takes the\nmedian of those differences (less moved by a slow stretch of the machine).\n"
    );
    s.push_str(table);
    s.push('\n');
    let _ = writeln!(s, "- Run: {started}.");
    let _ = writeln!(
        s,
        "- Load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end \
(a shared 2-core VM;\n  other work on it is noise in every row)."
    );
    if let Some(why) = left_out {
        let _ = writeln!(s, "- No PostgreSQL row in this run: {why}.");
    }
    s
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn sorted(times: &[Duration]) -> Vec<Duration> {
    let mut v = times.to_vec();
    v.sort();
    v
}

fn median(times: &[Duration]) -> Duration {
    let v = sorted(times);
    // The middle one, or the mean of the middle two.
    (v[(v.len() - 1) / 2] + v[v.len() / 2]) / 2
}

/// Nearest-rank percentile.
fn percentile(times: &[Duration], p: usize) -> Duration {
    let v = sorted(times);
    let rank = (p * v.len()).div_ceil(100).max(1);
    v[rank - 1]
}

#[allow(
    clippy::too_many_arguments,
    reason = "one row of the table: each argument is a column"
)]
fn render(
    table: &str,
    n: usize,
    started: &str,
    load_start: &str,
    load_end: &str,
    oath_so: &Path,
    ga_so: &Path,
) -> String {
    let mut s = String::new();
    s.push_str("## Added to a real ssh login\n\n");
    s.push_str(
        "Wall time of a whole `ssh USER@127.0.0.1 true` (connection, key exchange, \
keyboard-interactive\nauthentication with the password and, where there is one, a HOTP code, \
the session running `true`,\nexit), against a real OpenSSH `sshd` per setup started by the e2e \
harness (crates/e2e), each\nwith its own PAM service and throwaway user. Written by\n\n",
    );
    s.push_str("```sh\ncargo run --release -p sshield-e2e --example ssh_login_cost   # or scripts/bench-ssh-login\n```\n\n");
    s.push_str(
        "The PAM `auth` stack is `auth requisite pam_unix.so nodelay` alone (password only), or \
followed by\n`auth required` and the module: pam_sshield (HOTP token enrolled with \
`sshield enroll --hotp`,\ndefault config but for the store), pam_oath (`usersfile=... \
window=10`, one `HOTP` line), or\npam_google_authenticator (`secret=DIR/${USER} user=root`, \
HOTP mode). Every login succeeds with\na fresh code from `oathtool --hotp`. So \"added\" \
includes what any second prompt costs: one more\nkeyboard-interactive round trip and one more \
run of the client's askpass program, the same for\nall three modules. ",
    );
    let _ = write!(
        s,
        "{n} timed logins per setup after one warm-up, the setups taken in turn\n(A, B, C, D, A, B, \
...) so machine noise spreads over all of them (the fleet setups of the next\nsection ran in the \
same rounds). \"Added\" is the setup's median minus the password-only median.\n\n"
    );
    s.push_str(table);
    s.push('\n');
    let _ = writeln!(s, "- Run: {started}.");
    let _ = writeln!(
        s,
        "- Machine: {} CPUs (`nproc`), {}; {}. A shared 2-core VM: other work on it \
shows up as\n  noise in every row, and differences of a few milliseconds are within it.",
        nproc(),
        cpu_model(),
        os_line()
    );
    let _ = writeln!(
        s,
        "- Load average (1, 5, 15 min): {load_start} at the start, {load_end} at the end."
    );
    let _ = writeln!(
        s,
        "- Peers: {}, {}{}.",
        oath_so.display(),
        ga_so.display(),
        package_versions()
    );
    s
}

fn write_section(path: &Path, (begin, end): (&str, &str), section: &str) {
    let text = fs::read_to_string(path).unwrap_or_default();
    let block = format!("{begin}\n{}{end}\n", section.trim_end().to_owned() + "\n");
    let new = match (text.find(begin), text.find(end)) {
        (Some(b), Some(e)) if e > b => {
            let after = &text[e + end.len()..];
            let after = after.strip_prefix('\n').unwrap_or(after);
            format!("{}{block}{after}", &text[..b])
        }
        _ => {
            let mut t = text.clone();
            if !t.is_empty() && !t.ends_with('\n') {
                t.push('\n');
            }
            if !t.is_empty() {
                t.push('\n');
            }
            t + &block
        }
    };
    fs::write(path, new).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn require(tool: &str) {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(ok, "{tool} is missing (scripts/install-test-deps)");
}

fn module_path(so: &str, package: &str) -> PathBuf {
    for dir in ["/lib", "/usr/lib"] {
        let Ok(entries) = fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let candidate = entry.path().join("security").join(so);
            if candidate.is_file() {
                return candidate;
            }
        }
        let candidate = Path::new(dir).join("security").join(so);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("{so} not found: install {package} (scripts/install-test-deps)");
}

fn enroll(cli: &Path, config: &Path, user: &str, secret: &str) {
    run_sshield(
        cli,
        config,
        &["enroll", user, "--hotp", "--secret", secret, "--no-confirm"],
    );
}

/// `sshield --config CONFIG ARGS`, which must succeed.
fn run_sshield(cli: &Path, config: &Path, args: &[&str]) {
    let out = Command::new(cli)
        .arg("--config")
        .arg(config)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sshield");
    assert!(
        out.status.success(),
        "sshield {args:?} failed: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `oathtool --hotp -c 0 -w (count - 1) KEYHEX`: the codes of counters 0..count.
fn oathtool_hotp(key_hex: &str, count: usize) -> Vec<String> {
    let out = Command::new("oathtool")
        .args(["--hotp", "-c", "0", "-w", &(count - 1).to_string(), key_hex])
        .stdin(Stdio::null())
        .output()
        .expect("run oathtool");
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), count, "oathtool printed {codes:?}");
    codes
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// RFC 4648 base32, no padding (20 bytes make 32 characters, none needed).
fn base32(hex: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex key"))
        .collect();
    let mut out = String::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((acc << (5 - bits)) & 31) as usize]));
    }
    out
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

fn nproc() -> String {
    command_line("nproc", &[]).unwrap_or_else(|| "?".to_owned())
}

fn os_line() -> String {
    let os = fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| "unknown OS".to_owned());
    let ssh = Command::new("ssh")
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stderr).trim().to_owned())
        .unwrap_or_default();
    if ssh.is_empty() {
        os
    } else {
        format!("{os}, {ssh}")
    }
}

fn package_versions() -> String {
    command_line(
        "dpkg-query",
        &[
            "-W",
            "-f=${Package} ${Version}, ",
            "libpam-oath",
            "libpam-google-authenticator",
        ],
    )
    .map(|v| format!(" ({})", v.trim_end_matches([',', ' '])))
    .unwrap_or_default()
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// `YYYY-MM-DD HH:MM UTC`, from `date` (no time crate in this package).
fn now_utc() -> String {
    command_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]).unwrap_or_else(|| {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        format!("@{secs}")
    })
}
