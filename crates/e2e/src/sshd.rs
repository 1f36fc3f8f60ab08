//! A real `sshd` on a free loopback port, under its own PAM service name.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::{symlink, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::admin::{unique_name, PAM_DIR};
use crate::nss::CaseInsensitiveNames;
use crate::procs;
use crate::syslog::{self, Capture};

/// OpenSSH ≥ 9.8 runs each connection in a separate `sshd-session` binary; PAM then runs
/// there, named after *its* program name. Not on Debian 12 (9.2), where sshd re-executes
/// itself; handled so the harness keeps its own PAM service after an upgrade.
const SSHD_SESSION: &str = "/usr/lib/openssh/sshd-session";

/// The privilege-separation directory Debian's sshd refuses to start without.
const PRIVSEP_DIR: &str = "/run/sshd";

/// How long sshd may take to listen, and a client to finish, before the harness gives up.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Keywords the harness owns: the test chooses addresses with [`SshdOptions::listen`].
const OWNED: [&str; 4] = ["port", "listenaddress", "hostkey", "pidfile"];

/// What a test wants of its sshd.
#[derive(Debug, Clone)]
pub struct SshdOptions {
    /// sshd_config lines. sshd keeps the *first* value it reads for most keywords, so the
    /// harness writes these before its own defaults, and skips a default whose keyword
    /// appears here: a test's `PasswordAuthentication no` wins. Lines from the first
    /// `Match` on go at the very end (a `Match` block runs to the next `Match` or the end).
    /// `Port`, `ListenAddress`, `HostKey` and `PidFile` are the harness's.
    pub config_lines: Vec<String>,
    /// The PAM service file's lines; `None` means [`pam_unix_stack`].
    pub pam_service_lines: Option<Vec<String>>,
    /// Addresses to listen on, all on the same port; default `127.0.0.1`. The whole of
    /// 127.0.0.0/8 is loopback on Linux: `127.0.0.2` works without configuring anything.
    pub listen: Vec<IpAddr>,
    /// Environment of sshd itself (it starts with an empty one but `PATH`). PAM modules run
    /// inside sshd and see it; users' sessions get the environment sshd builds, not this.
    pub env: Vec<(String, String)>,
    /// Capture what sshd, PAM modules and sessions send to syslog ([`Sshd::syslog`]); default
    /// true. sshd then runs in a private mount namespace with its own `/dev/log` (see
    /// `syslog.rs`); where the machine can't make one, there is no capture and
    /// [`Sshd::syslog`] says why.
    pub capture_syslog: bool,
    /// Give sshd a name service that answers for any spelling of an account name (`ALICE`
    /// is `alice`), as SSSD with `case_sensitive = false` or winbind do; default false. Only
    /// inside sshd's own mount namespace (see `nss.rs`), so it needs syslog capture's.
    pub case_insensitive_names: bool,
}

impl Default for SshdOptions {
    fn default() -> Self {
        SshdOptions {
            config_lines: Vec::new(),
            pam_service_lines: None,
            listen: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            env: Vec::new(),
            capture_syslog: true,
            case_insensitive_names: false,
        }
    }
}

impl SshdOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds sshd_config lines (see [`SshdOptions::config_lines`]).
    pub fn config<S: Into<String>>(mut self, lines: impl IntoIterator<Item = S>) -> Self {
        self.config_lines.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Sets the PAM service file's lines, e.g. `auth required /abs/path/libpam_sshield.so`.
    pub fn pam<S: Into<String>>(mut self, lines: impl IntoIterator<Item = S>) -> Self {
        self.pam_service_lines = Some(lines.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the listen addresses, e.g. `["127.0.0.1", "::1"]`.
    pub fn listen<S: AsRef<str>>(mut self, addrs: impl IntoIterator<Item = S>) -> Self {
        self.listen = addrs
            .into_iter()
            .map(|a| {
                a.as_ref()
                    .parse()
                    .unwrap_or_else(|e| panic!("listen address {:?}: {e}", a.as_ref()))
            })
            .collect();
        self
    }

    /// Whether to capture syslog (default true).
    pub fn capture_syslog(mut self, capture: bool) -> Self {
        self.capture_syslog = capture;
        self
    }

    /// Whether account names are case-insensitive for sshd (default false).
    pub fn case_insensitive_names(mut self, on: bool) -> Self {
        self.case_insensitive_names = on;
        self
    }

    /// Adds a variable to sshd's own environment.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

/// A PAM stack like Debian's `common-auth`/`-account`/`-session` reduced to `pam_unix`, the
/// default service file. `nodelay`: a wrong password fails at once instead of after
/// pam_unix's ~2 s delay.
pub fn pam_unix_stack() -> Vec<String> {
    [
        "auth     required  pam_unix.so nodelay",
        "account  required  pam_unix.so",
        "session  required  pam_unix.so",
    ]
    .map(String::from)
    .to_vec()
}

/// The PAM service file; removed on drop. Created with `O_EXCL`, so it never replaces a file
/// it did not write.
#[derive(Debug)]
struct PamFile {
    path: PathBuf,
}

impl PamFile {
    fn create(service: &str, lines: &[String]) -> PamFile {
        let path = Path::new(PAM_DIR).join(service);
        let mut text = String::from(
            "# Written by the sshield end-to-end test harness; removed when the test ends.\n",
        );
        for line in lines {
            text.push_str(line);
            text.push('\n');
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot create PAM service file {}: {e}", path.display()));
        let pam = PamFile { path };
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", pam.path.display()));
        pam
    }
}

impl Drop for PamFile {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                eprintln!("sshield-e2e: could not remove {}: {e}", self.path.display());
            }
        }
    }
}

/// The running sshd and all it forked; killed on drop.
#[derive(Debug)]
struct Running {
    child: Child,
}

impl Running {
    fn stop(&mut self) {
        procs::kill_tree(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A real OpenSSH server on a loopback port. Dropping it stops sshd and every session it
/// started, then removes its PAM service file and temp dir.
///
/// Start one per test (≈ 70 ms) and let it drop at the end: a server kept in a `static` is
/// never dropped, so it would outlive the test process (the next run's leftover sweep
/// stops it, but only then).
#[derive(Debug)]
pub struct Sshd {
    // Dropped in this order: the server first, then the syslog reader, its PAM file, and
    // its files.
    running: Running,
    syslog: Result<Capture, String>,
    pam_file: PamFile,
    service: String,
    port: u16,
    listen: Vec<IpAddr>,
    config_path: PathBuf,
    log_path: PathBuf,
    known_hosts: PathBuf,
    dir: TempDir,
}

impl Sshd {
    /// Starts sshd and waits until it listens on every address. Panics with sshd's log when
    /// it can't.
    pub fn start(opts: SshdOptions) -> Sshd {
        assert!(
            rustix::process::geteuid().is_root(),
            "Sshd::start needs root; call sshield_e2e::can_run() first"
        );
        assert!(
            Path::new(crate::SSHD).exists(),
            "{} is missing: install openssh-server",
            crate::SSHD
        );
        assert!(!opts.listen.is_empty(), "SshdOptions::listen is empty");
        for addr in &opts.listen {
            assert!(
                addr.is_loopback(),
                "sshd may only listen on loopback, not {addr}"
            );
        }
        ensure_privsep_dir();

        let service = unique_name('s');
        let dir = tempfile::Builder::new()
            .prefix(&format!("{service}."))
            .tempdir()
            .expect("temp dir for sshd");
        // World-readable (not writable), so that files a test puts here, such as a config
        // a ForceCommand helper reads as the logged-in user, can be read by that user.
        // The host key itself is 0600.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");

        let host_key = dir.path().join("ssh_host_ed25519_key");
        keygen(&host_key, &service);
        let host_pub = fs::read_to_string(host_key.with_extension("pub")).expect("host public key");
        let host_pub: String = host_pub
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ");

        // sshd re-executes itself by argv[0] (which must be absolute) for every connection,
        // and names the PAM service after it: a symlink gives it our name.
        let bin_dir = dir.path().join("bin");
        fs::create_dir(&bin_dir).expect("bin dir");
        let program = bin_dir.join(&service);
        symlink(crate::SSHD, &program).expect("symlink to sshd");
        let mut harness_lines = Vec::new();
        if Path::new(SSHD_SESSION).exists() {
            let session_dir = dir.path().join("libexec");
            fs::create_dir(&session_dir).expect("libexec dir");
            let session = session_dir.join(&service);
            symlink(SSHD_SESSION, &session).expect("symlink to sshd-session");
            harness_lines.push(format!("SshdSessionPath {}", session.display()));
            // Its per-source penalties would refuse connections after a test's deliberate
            // failures, and all test clients come from 127.0.0.0/8.
            harness_lines.push("PerSourcePenalties no".to_owned());
        }

        let syslog = if opts.capture_syslog {
            syslog::available().map(|()| Capture::start(dir.path()))
        } else {
            Err("SshdOptions::capture_syslog is off".to_owned())
        };

        let mut binds = Vec::new();
        let mut env = opts.env.clone();
        if opts.case_insensitive_names {
            if let Err(why) = &syslog {
                panic!("case_insensitive_names needs sshd's own mount namespace: {why}");
            }
            let names = CaseInsensitiveNames::build(dir.path());
            binds.push((names.nsswitch, PathBuf::from("/etc/nsswitch.conf")));
            env.push((
                "LD_LIBRARY_PATH".to_owned(),
                names.lib_dir.display().to_string(),
            ));
        }

        let pam_lines = opts
            .pam_service_lines
            .clone()
            .unwrap_or_else(pam_unix_stack);
        let pam_file = PamFile::create(&service, &pam_lines);

        let (global, matches) = split_config(&opts.config_lines);
        let config_path = dir.path().join("sshd_config");
        let log_path = dir.path().join("sshd.log");
        let stderr_path = dir.path().join("sshd.stderr");
        let known_hosts = dir.path().join("known_hosts");
        let pid_file = dir.path().join("sshd.pid");

        let mut last_error = String::new();
        for _attempt in 0..8 {
            let port = free_port(&opts.listen);
            let mut config = String::from(
                "# Written by the sshield end-to-end test harness.\n# The test's lines come first: sshd keeps the first value of most keywords.\n",
            );
            for line in &global {
                config.push_str(line);
                config.push('\n');
            }
            config.push_str("\n# Harness.\n");
            config.push_str(&format!("Port {port}\n"));
            for addr in &opts.listen {
                config.push_str(&format!("ListenAddress {}\n", listen_spec(*addr, port)));
            }
            config.push_str(&format!("HostKey {}\n", host_key.display()));
            config.push_str(&format!("PidFile {}\n", pid_file.display()));
            for line in &harness_lines {
                config.push_str(line);
                config.push('\n');
            }
            config.push_str("\n# Defaults the test did not set.\n");
            let set: Vec<String> = global.iter().filter_map(|l| keyword(l)).collect();
            for line in DEFAULTS {
                if keyword(line).is_some_and(|k| !set.contains(&k)) {
                    config.push_str(line);
                    config.push('\n');
                }
            }
            if !matches.is_empty() {
                config.push_str("\n# The test's Match blocks.\n");
                for line in &matches {
                    config.push_str(line);
                    config.push('\n');
                }
            }
            fs::write(&config_path, &config).expect("write sshd_config");

            let mut hosts = String::new();
            for addr in &opts.listen {
                hosts.push_str(&format!("[{addr}]:{port} {host_pub}\n"));
            }
            fs::write(&known_hosts, hosts).expect("write known_hosts");

            let _ = fs::remove_file(&log_path);
            let stderr = File::create(&stderr_path).expect("sshd stderr file");
            let mut cmd = match &syslog {
                Ok(capture) => capture.wrap(&program, &binds),
                Err(_) => Command::new(&program),
            };
            cmd.arg("-D")
                .arg("-f")
                .arg(&config_path)
                .arg("-E")
                .arg(&log_path)
                .env_clear()
                .env(
                    "PATH",
                    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                )
                .envs(env.iter().map(|(k, v)| (k, v)))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr);
            let child = cmd
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let mut running = Running { child };

            match wait_listening(&mut running, &log_path, &opts.listen, port) {
                Ok(()) => {
                    return Sshd {
                        running,
                        syslog,
                        pam_file,
                        service,
                        port,
                        listen: opts.listen,
                        config_path,
                        log_path,
                        known_hosts,
                        dir,
                    };
                }
                Err(Failure::PortTaken) => {
                    running.stop();
                    last_error = format!("port {port} was taken");
                }
                Err(Failure::Other(why)) => {
                    running.stop();
                    let stderr = fs::read_to_string(&stderr_path).unwrap_or_default();
                    let log = fs::read_to_string(&log_path).unwrap_or_default();
                    panic!(
                        "sshd (PAM service {service}) did not start: {why}\n--- sshd_config ---\n{config}--- stderr ---\n{stderr}--- log (end) ---\n{}",
                        tail(&log, 40)
                    );
                }
            }
        }
        panic!("sshd did not start: no free port after 8 tries ({last_error})");
    }

    /// The PAM service name, which is also sshd's program name and log tag.
    pub fn service_name(&self) -> &str {
        &self.service
    }

    /// `/etc/pam.d/<service>`.
    pub fn pam_service_path(&self) -> &Path {
        &self.pam_file.path
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The first listen address (clients connect to it unless told [`crate::Client::to`]).
    pub fn addr(&self) -> IpAddr {
        self.listen[0]
    }

    pub fn listen_addresses(&self) -> &[IpAddr] {
        &self.listen
    }

    /// sshd's temp dir (mode 0755; removed on drop): a place for files the test needs
    /// next to this server, such as an sshield config.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// known_hosts with this server's host key for every listen address.
    pub fn known_hosts(&self) -> &Path {
        &self.known_hosts
    }

    /// The pid of the listening sshd.
    pub fn pid(&self) -> u32 {
        self.running.child.id()
    }

    /// sshd's log (`-E`, at `LogLevel DEBUG3` unless the test set another level).
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        fs::read(&self.log_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// A position in the log, for [`Sshd::log_since`]: to look only at one login's lines.
    pub fn log_mark(&self) -> usize {
        fs::metadata(&self.log_path).map_or(0, |m| m.len() as usize)
    }

    /// The log written after `mark`.
    pub fn log_since(&self, mark: usize) -> String {
        let bytes = fs::read(&self.log_path).unwrap_or_default();
        String::from_utf8_lossy(bytes.get(mark..).unwrap_or_default()).into_owned()
    }

    /// Waits until the log contains `needle`: some lines (a session's end) are written after
    /// the client has returned.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.log().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything sent to syslog by sshd, its PAM modules and its sessions so far, one
    /// message a line as sent: `<PRI>Mmm dd hh:mm:ss TAG[PID]: MESSAGE`, where PRI is
    /// facility × 8 + severity (authpriv = 10: `<86>` is authpriv.info, `<85>` notice).
    /// Panics if there is no capture (see [`SshdOptions::capture_syslog`]).
    #[track_caller]
    pub fn syslog(&self) -> String {
        match &self.syslog {
            Ok(capture) => fs::read(capture.path())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            Err(why) => panic!("no syslog capture for this sshd: {why}"),
        }
    }

    /// Whether syslog is captured here (see [`SshdOptions::capture_syslog`]).
    pub fn syslog_captured(&self) -> bool {
        self.syslog.is_ok()
    }

    /// Waits until the captured syslog contains `needle`.
    #[track_caller]
    pub fn wait_for_syslog(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.syslog().contains(needle) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Whether the listener still runs.
    pub fn is_running(&self) -> bool {
        procs::is_alive(self.pid())
    }

    /// The pids of sshd and all it forked: the listener, per-connection processes, and the
    /// users' sessions under them.
    pub fn processes(&self) -> Vec<u32> {
        procs::tree(self.pid()).into_iter().collect()
    }

    /// Stops sshd and removes everything, like dropping it; reads better at the end of a test.
    pub fn stop(self) {}
}

/// Defaults for a test server; each is skipped when the test's own lines set its keyword.
const DEFAULTS: [&str; 15] = [
    "UsePAM yes",
    "LogLevel DEBUG3",
    "PasswordAuthentication yes",
    "KbdInteractiveAuthentication yes",
    "PubkeyAuthentication yes",
    "PermitRootLogin no",
    "StrictModes yes",
    "UseDNS no",
    "PrintMotd no",
    "PrintLastLog no",
    // Parallel tests connect at once; failed logins must not make sshd drop new ones.
    "MaxStartups 200",
    "MaxAuthTries 10",
    "LoginGraceTime 60",
    "AcceptEnv LANG LC_*",
    "Subsystem sftp /usr/lib/openssh/sftp-server",
];

/// The lowercase keyword of a config line (`Keyword value` or `Keyword=value`).
fn keyword(line: &str) -> Option<String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    Some(line[..end].to_ascii_lowercase())
}

/// Splits a test's lines at the first `Match`; rejects the keywords the harness owns.
fn split_config(lines: &[String]) -> (Vec<String>, Vec<String>) {
    let mut lines: Vec<String> = lines
        .iter()
        .flat_map(|l| l.lines().map(str::to_owned).collect::<Vec<_>>())
        .collect();
    let first_match = lines
        .iter()
        .position(|l| keyword(l).as_deref() == Some("match"))
        .unwrap_or(lines.len());
    let matches = lines.split_off(first_match);
    for line in &lines {
        if let Some(k) = keyword(line) {
            assert!(
                !OWNED.contains(&k.as_str()),
                "sshd_config line {line:?}: the harness sets Port, ListenAddress, HostKey and PidFile (use SshdOptions::listen)"
            );
        }
    }
    (lines, matches)
}

fn listen_spec(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// A port free on every address. Another process may take it before sshd binds it; the
/// caller then retries with another.
fn free_port(addrs: &[IpAddr]) -> u16 {
    'search: for _ in 0..100 {
        let first = TcpListener::bind(SocketAddr::new(addrs[0], 0)).expect("bind a loopback port");
        let port = first.local_addr().expect("local addr").port();
        let mut held = vec![first];
        for addr in &addrs[1..] {
            match TcpListener::bind(SocketAddr::new(*addr, port)) {
                Ok(l) => held.push(l),
                Err(_) => continue 'search,
            }
        }
        return port;
    }
    panic!("no port free on all of {addrs:?}");
}

enum Failure {
    PortTaken,
    Other(String),
}

/// Waits for "Server listening on ADDR port PORT." for every address. (Probing the port by
/// connecting would make sshd fork a connection and log a failed one.)
fn wait_listening(
    running: &mut Running,
    log_path: &Path,
    addrs: &[IpAddr],
    port: u16,
) -> Result<(), Failure> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log = fs::read_to_string(log_path).unwrap_or_default();
        if log.contains("Address already in use") {
            return Err(Failure::PortTaken);
        }
        if addrs
            .iter()
            .all(|a| log.contains(&format!("Server listening on {a} port {port}.")))
        {
            return Ok(());
        }
        if let Ok(Some(status)) = running.child.try_wait() {
            return Err(Failure::Other(format!("sshd exited: {status}")));
        }
        if Instant::now() >= deadline {
            return Err(Failure::Other(format!(
                "not listening after {START_TIMEOUT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn ensure_privsep_dir() {
    let dir = Path::new(PRIVSEP_DIR);
    if !dir.is_dir() {
        // Normally made by systemd-tmpfiles at boot; containers often lack it.
        if let Err(e) = fs::create_dir_all(dir) {
            assert!(dir.is_dir(), "cannot create {PRIVSEP_DIR}: {e}");
        }
        let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o755));
    }
}

/// `ssh-keygen -t ed25519 -N '' -f path`.
pub(crate) fn keygen(path: &Path, comment: &str) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ssh-keygen");
    assert!(
        out.status.success(),
        "ssh-keygen -f {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    let mut out = all[start..].join("\n");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords() {
        assert_eq!(keyword("  UsePAM yes").as_deref(), Some("usepam"));
        assert_eq!(keyword("Subsystem=sftp x").as_deref(), Some("subsystem"));
        assert_eq!(keyword("# UsePAM no"), None);
        assert_eq!(keyword("   "), None);
    }

    #[test]
    fn match_blocks_go_last() {
        let lines = vec![
            "PasswordAuthentication no".to_owned(),
            "Match Address 127.0.0.2\n  PasswordAuthentication yes".to_owned(),
            "Match all".to_owned(),
        ];
        let (global, matches) = split_config(&lines);
        assert_eq!(global, ["PasswordAuthentication no"]);
        assert_eq!(
            matches,
            [
                "Match Address 127.0.0.2",
                "  PasswordAuthentication yes",
                "Match all"
            ]
        );
    }

    #[test]
    #[should_panic(expected = "the harness sets Port")]
    fn port_is_the_harness_s() {
        split_config(&["Port 22".to_owned()]);
    }
}
