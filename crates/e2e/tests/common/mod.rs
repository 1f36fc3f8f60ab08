//! What the sshield end-to-end tests share: the real artefacts (`libpam_sshield.so` and the
//! `sshield` CLI, built once per test binary), a private sshield config and store per test,
//! users enrolled with the CLI, codes from `oathtool`, and the PAM stacks of the setups that
//! docs/pam.md documents.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sshield_e2e::{Client, Sshd, SshdOptions, User};
use tempfile::TempDir;

/// TOTP step length: the CLI's default, and oathtool's.
pub(crate) const STEP: u64 = 30;

/// The config's default prompt.
pub(crate) const CODE_PROMPT: &str = "Verification code: ";

/// pam_unix's prompt, as keyboard-interactive shows it.
pub(crate) const PASSWORD_PROMPT: &str = "Password: ";

/// The module's one prompt under `forward_pass`.
pub(crate) const FORWARD_PASS_PROMPT: &str = "Password & verification code: ";

/// How long a log line may take to reach the syslog capture after the client returned.
pub(crate) const LOG_WAIT: Duration = Duration::from_secs(5);

pub(crate) use sshield_e2e::artefacts;

/// Whether these tests can run: the harness's requirements (root, OpenSSH), and oathtool,
/// which computes every code. Skips (or fails in CI) like [`sshield_e2e::can_run`].
pub(crate) fn can_run() -> bool {
    if !sshield_e2e::can_run() {
        return false;
    }
    require_tool(
        "oathtool",
        "the codes come from oath-toolkit: apt-get install oathtool",
    );
    true
}

/// Panics with an install hint unless `program` runs.
pub(crate) fn require_tool(program: &str, hint: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    assert!(found, "{program} is missing; {hint}");
}

/// One test's sshield: config, record store and log file in a temp dir of its own, and the
/// module as `<dir>/pam_sshield.so`, a symlink to the built `libpam_sshield.so`. libpam names
/// a module after its file name, so log lines read `pam_sshield(service:auth): ...` as they
/// will when installed (and as the fail2ban filter expects), not `libpam_sshield(...)`.
#[derive(Debug)]
pub(crate) struct Sshield {
    /// The config file, root-owned, mode 0644.
    pub config: PathBuf,
    /// The record store, mode 0700.
    pub store: PathBuf,
    /// The config's `log_file`.
    pub log_file: PathBuf,
    /// `<dir>/pam_sshield.so`.
    pub module: PathBuf,
    dir: TempDir,
}

impl Sshield {
    /// A config with `store`, `log_file`, then `extra` (tables such as `[policy]`), and
    /// failure delays off unless `extra` has a `[rate_limit]` table.
    pub(crate) fn new(extra: &str) -> Sshield {
        let built = artefacts();
        remove_leftovers();
        let dir = tempfile::Builder::new()
            .prefix(&format!("{TEMP_PREFIX}{}.", std::process::id()))
            .tempdir()
            .expect("temp dir for sshield");
        let module = dir.path().join("pam_sshield.so");
        std::os::unix::fs::symlink(&built.module, &module).expect("symlink the module");
        let store = dir.path().join("users");
        fs::create_dir(&store).expect("store dir");
        fs::set_permissions(&store, fs::Permissions::from_mode(0o700)).expect("chmod store");
        let sshield = Sshield {
            config: dir.path().join("sshield.toml"),
            log_file: dir.path().join("sshield.log"),
            store,
            module,
            dir,
        };
        sshield.write_config(extra);
        sshield
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the config (as [`Sshield::new`] writes it). The module reads it at every
    /// login, so this takes effect without restarting sshd.
    pub(crate) fn write_config(&self, extra: &str) {
        let mut text = format!(
            "# An sshield end-to-end test's config.\nstore = \"{}\"\nlog_file = \"{}\"\n{extra}\n",
            self.store.display(),
            self.log_file.display()
        );
        if !extra.contains("[rate_limit]") {
            text.push_str("\n[rate_limit]\ndelay = \"0s\"\n");
        }
        fs::write(&self.config, text).expect("write the sshield config");
        // Root's (the tests run as root), 0644: what the config loader accepts.
        fs::set_permissions(&self.config, fs::Permissions::from_mode(0o644))
            .expect("chmod the config");
    }

    /// `auth required <module> config=<config> <args>`.
    pub(crate) fn auth_line(&self, args: &str) -> String {
        self.line("required", args)
    }

    /// `auth <control> <module> config=<config> <args>`.
    pub(crate) fn line(&self, control: &str, args: &str) -> String {
        format!(
            "auth {control} {} config={} {args}",
            self.module.display(),
            self.config.display()
        )
        .trim_end()
        .to_owned()
    }

    /// Enrolls `user` with the real CLI: `sshield --config CFG enroll USER --secret BASE32
    /// --no-confirm --json`, a fresh random secret.
    pub(crate) fn enroll(&self, user: &str) -> Token {
        self.enroll_with(user, &[], 6)
    }

    /// [`Sshield::enroll`] with more arguments (`--name phone2`), for codes of `digits` digits
    /// (`--digits` is added when not 6).
    pub(crate) fn enroll_with(&self, user: &str, extra: &[&str], digits: u32) -> Token {
        let secret = random_base32_secret();
        let digits_arg = digits.to_string();
        let mut extra = extra.to_vec();
        if digits != 6 {
            extra.extend(["--digits", digits_arg.as_str()]);
        }
        let out = Command::new(&artefacts().cli)
            .arg("--config")
            .arg(&self.config)
            .args([
                "enroll",
                user,
                "--secret",
                &secret,
                "--no-confirm",
                "--json",
            ])
            .args(&extra)
            .stdin(Stdio::null())
            .output()
            .expect("run sshield enroll");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "sshield enroll {user} failed: {}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let backup_codes = json_string_list(&stdout, "backup_codes");
        // A user's first authenticator comes with ten backup codes; a second one with none.
        assert!(
            backup_codes.len() == 10 || !extra.is_empty(),
            "backup codes in {stdout}"
        );
        Token {
            secret,
            backup_codes,
            digits,
            last_step: Mutex::new(None),
        }
    }

    /// `users/<name>.toml`.
    pub(crate) fn record_path(&self, user: &str) -> PathBuf {
        self.store.join(format!("{user}.toml"))
    }

    /// The record's text, followed by the newest copy of the login state that logins keep in
    /// `users/.<name>.state` (docs/store.md), if there is one: all a test can check of a user.
    pub(crate) fn record(&self, user: &str) -> String {
        let mut text = fs::read_to_string(self.record_path(user)).expect("read the record");
        if let Ok(state) = fs::read(self.store.join(format!(".{user}.state"))) {
            // Two slots, each: "SSHSTAT1", generation (u64 LE), length (u32 LE), slot size,
            // CRC-64 (8 bytes), then the [usage] TOML. No writer runs while a test reads.
            let newest = state
                .chunks_exact(state.len() / 2)
                .filter(|slot| slot.starts_with(b"SSHSTAT1"))
                .map(|slot| {
                    let generation = u64::from_le_bytes(slot[8..16].try_into().unwrap());
                    let len = u32::from_le_bytes(slot[16..20].try_into().unwrap()) as usize;
                    (generation, String::from_utf8_lossy(&slot[32..32 + len]))
                })
                .max_by_key(|(generation, _)| *generation);
            if let Some((generation, usage)) = newest {
                text.push_str(&format!(
                    "\n# .{user}.state, generation {generation}\n{usage}"
                ));
            }
        }
        text
    }

    /// The log file's lines (none before the first decision).
    pub(crate) fn log_lines(&self) -> Vec<String> {
        fs::read_to_string(&self.log_file)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// The log file's lines that contain `needle`.
    pub(crate) fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.log_lines()
            .into_iter()
            .filter(|l| l.contains(needle))
            .collect()
    }
}

/// What a user's authenticator app holds, and the backup codes the CLI printed.
#[derive(Debug)]
pub(crate) struct Token {
    pub secret: String,
    pub backup_codes: Vec<String>,
    /// How many digits its codes have.
    pub digits: u32,
    /// The last step [`Token::code`] handed out.
    last_step: Mutex<Option<u64>>,
}

impl Token {
    /// A token for a secret shown by something else (the demo prints its own), with no
    /// backup codes.
    pub(crate) fn from_secret(secret: impl Into<String>) -> Token {
        Token {
            secret: secret.into(),
            backup_codes: Vec::new(),
            digits: 6,
            last_step: Mutex::new(None),
        }
    }

    /// A code no earlier [`Token::code`] gave, that the module accepts now: the current
    /// step's, or the next one's (the window accepts one step ahead) when the current one was
    /// handed out already. Every code accepted consumes its step and all before it, so a test
    /// gets two good codes per user at once; a third waits for the next step.
    pub(crate) fn code(&self) -> String {
        let mut last = self.last_step.lock().unwrap_or_else(|p| p.into_inner());
        let now = current_step();
        let step = match *last {
            Some(l) if l >= now => l + 1,
            _ => now,
        };
        if step > now + 1 {
            sleep_until_step(step - 1);
        }
        *last = Some(step);
        self.code_at_step(step)
    }

    /// The code of step `step`, from oathtool.
    pub(crate) fn code_at_step(&self, step: u64) -> String {
        let codes = oathtool(&self.secret, step, 0, self.digits);
        codes.into_iter().next().expect("oathtool printed a code")
    }

    /// Six digits that are no code of this token anywhere near now (±4 steps), so that the
    /// module refuses them as a wrong code, whatever step it is when it checks.
    pub(crate) fn wrong_code(&self) -> String {
        let near = oathtool(&self.secret, current_step() - 4, 8, self.digits);
        (0..10)
            .map(|d| d.to_string().repeat(self.digits as usize))
            .find(|candidate| !near.contains(candidate))
            .expect("ten codes cannot all be near now")
    }
}

/// `oathtool -b --totp -d DIGITS -N @<time of step> -w window SECRET`: the codes of
/// `window + 1` steps from `step` on.
fn oathtool(secret: &str, step: u64, window: u64, digits: u32) -> Vec<String> {
    let out = Command::new("oathtool")
        .args([
            "-b",
            "--totp",
            "-d",
            &digits.to_string(),
            "-N",
            &format!("@{}", step * STEP),
            "-w",
            &window.to_string(),
            secret,
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run oathtool ({e}); apt-get install oathtool"));
    assert!(
        out.status.success(),
        "oathtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let codes: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        codes.len() as u64 == window + 1
            && codes
                .iter()
                .all(|c| c.len() == digits as usize && c.bytes().all(|b| b.is_ascii_digit())),
        "oathtool printed {codes:?}"
    );
    codes
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs()
}

pub(crate) fn current_step() -> u64 {
    unix_now() / STEP
}

/// Sleeps until step `step` has begun.
fn sleep_until_step(step: u64) {
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970");
        let start = Duration::from_secs(step * STEP);
        if now >= start {
            return;
        }
        std::thread::sleep(start - now + Duration::from_millis(50));
    }
}

/// A 160-bit secret from the OS random source, in base32 (RFC 4648, no padding).
pub(crate) fn random_base32_secret() -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = [0u8; 20];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    // 20 bytes are 160 bits: 32 characters of 5 bits, no padding.
    let mut out = String::new();
    let mut acc: u32 = 0;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((acc >> bits) & 31) as usize]));
        }
    }
    out
}

/// The strings of `"key":["a","b"]` in the CLI's JSON (no escapes occur in backup codes).
fn json_string_list(json: &str, key: &str) -> Vec<String> {
    let start = json
        .find(&format!("\"{key}\":["))
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        + key.len()
        + 4;
    let end = start + json[start..].find(']').expect("end of the list");
    json[start..end]
        .split(',')
        .map(|s| s.trim().trim_matches('"').to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// A PAM service file for sshd: these `auth` lines, then pam_unix for account and session.
pub(crate) fn sshd_stack(auth: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut lines: Vec<String> = auth.into_iter().collect();
    lines.push("account  required  pam_unix.so".to_owned());
    lines.push("session  required  pam_unix.so".to_owned());
    lines
}

/// Seed 002's setup: the password (pam_unix), then the code, both through
/// keyboard-interactive; password authentication off.
pub(crate) fn password_then_code_options(sshield: &Sshield) -> SshdOptions {
    SshdOptions::new()
        .config([
            "KbdInteractiveAuthentication yes",
            "PasswordAuthentication no",
            "AuthenticationMethods keyboard-interactive:pam",
        ])
        .pam(sshd_stack([
            "auth required pam_unix.so nodelay".to_owned(),
            sshield.auth_line(""),
        ]))
}

/// A public key, then the code (keyboard-interactive, the module alone in the stack).
pub(crate) fn key_then_code_options(sshield: &Sshield) -> SshdOptions {
    SshdOptions::new()
        .config([
            "KbdInteractiveAuthentication yes",
            "PasswordAuthentication no",
            "AuthenticationMethods publickey,keyboard-interactive:pam",
        ])
        .pam(sshd_stack([sshield.auth_line("")]))
}

/// An sshd with [`password_then_code_options`].
pub(crate) fn start_password_then_code(sshield: &Sshield) -> Sshd {
    Sshd::start(password_then_code_options(sshield))
}

/// `ssh user@sshd 'echo ok'` from 127.0.0.3 ("the internet") through keyboard-interactive,
/// typing `answers`.
pub(crate) fn login<S: Into<String>>(
    sshd: &Sshd,
    user: &User,
    answers: impl IntoIterator<Item = S>,
) -> Client {
    Client::ssh(sshd, user)
        .from("127.0.0.3")
        .methods("keyboard-interactive")
        .command("echo ok")
        .answers(answers)
}

/// The module's syslog line prefix in this sshd: `pam_sshield(<service>:auth): `.
pub(crate) fn syslog_tag(sshd: &Sshd) -> String {
    format!("pam_sshield({}:auth): ", sshd.service_name())
}

/// The decision line the module logs, without the syslog/file prefix.
pub(crate) fn decision(
    outcome: &str,
    user: &str,
    rhost: &str,
    sshd: &Sshd,
    method: &str,
    reason: &str,
) -> String {
    format!(
        "{outcome} user={user} rhost={rhost} service={} method={method} reason={reason}",
        sshd.service_name()
    )
}

/// Waits for `line` in the captured syslog (after the module's tag) and in the log file;
/// panics showing both if it is missing from either.
#[track_caller]
pub(crate) fn assert_logged(sshd: &Sshd, sshield: &Sshield, line: &str) {
    let tagged = format!("{}{line}", syslog_tag(sshd));
    assert!(
        sshd.wait_for_syslog(&tagged, LOG_WAIT),
        "not in syslog: {tagged}\n--- syslog ---\n{}",
        sshd.syslog()
    );
    // The module writes both in the same call, before sshd answers the client.
    let in_file = sshield
        .log_lines()
        .iter()
        .any(|l| l.ends_with(&format!("]: {line}")) || l.contains(&format!("]: {line} ")));
    assert!(
        in_file,
        "not in {}: {line}\n--- log file ---\n{}",
        sshield.log_file.display(),
        sshield.log_lines().join("\n")
    );
}

/// Counts the captured syslog lines of this sshd's module that contain `needle`.
pub(crate) fn syslog_count(sshd: &Sshd, needle: &str) -> usize {
    let tag = syslog_tag(sshd);
    sshd.syslog()
        .lines()
        .filter(|l| l.contains(&tag) && l.contains(needle))
        .count()
}

/// `/etc/pam.d/sshield-e2e-<kind>-<pid>-<n>`, for programs that read their service only from
/// there (pamtester); created with `O_EXCL`, removed on drop. Files a killed test process
/// left behind are removed by the next run, once that pid is gone.
#[derive(Debug)]
pub(crate) struct PamService {
    name: String,
    path: PathBuf,
}

impl PamService {
    pub(crate) fn create<S: AsRef<str>>(
        kind: &str,
        lines: impl IntoIterator<Item = S>,
    ) -> PamService {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        use std::sync::atomic::{AtomicU32, Ordering};

        static COUNTER: AtomicU32 = AtomicU32::new(0);
        assert!(
            !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase()),
            "{kind:?}"
        );
        remove_leftovers();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("sshield-e2e-{kind}-{}-{n}", std::process::id());
        let path = Path::new("/etc/pam.d").join(&name);
        let mut text =
            String::from("# Written by sshield's end-to-end tests; removed when they end.\n");
        for line in lines {
            text.push_str(line.as_ref());
            text.push('\n');
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        let service = PamService { name, path };
        file.write_all(text.as_bytes())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", service.path.display()));
        service
    }

    /// The service name (libpam looks for `/etc/pam.d/<name>`).
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PamService {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_file(&self.path) {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}

/// Prefix of the temp dirs of [`Sshield`]: `sshield-e2e-pam-<pid>.<random>`.
const TEMP_PREFIX: &str = "sshield-e2e-pam-";

/// Whether `pid` is a number and no process has it (its test process was killed before its
/// drops ran).
fn dead(pid: &str) -> bool {
    !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && pid != std::process::id().to_string()
        && !Path::new("/proc").join(pid).exists()
}

/// Once per test process: removes what a killed one left, the `/etc/pam.d` files of
/// [`PamService`] and the temp dirs of [`Sshield`], by the dead pid in their names. (The
/// harness does the same for its accounts, sshd and PAM files.)
fn remove_leftovers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        for entry in fs::read_dir("/etc/pam.d").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(rest) = name.strip_prefix("sshield-e2e-") else {
                continue;
            };
            let parts: Vec<&str> = rest.split('-').collect();
            if let [kind, pid, n] = parts[..] {
                let ours = !kind.is_empty()
                    && kind.bytes().all(|b| b.is_ascii_lowercase())
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit());
                if ours && dead(pid) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let tmp = std::env::temp_dir();
        for entry in fs::read_dir(&tmp).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name
                .strip_prefix(TEMP_PREFIX)
                .and_then(|rest| rest.split_once('.'))
                .map(|(pid, _)| pid);
            if pid.is_some_and(dead) && entry.path().is_dir() {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    });
}

/// What `pamtester` did.
#[derive(Debug)]
pub(crate) struct PamtesterRun {
    pub success: bool,
    /// stdout and stderr: the prompts (on stderr) and pamtester's verdict.
    pub output: String,
}

/// `pamtester [-I rhost=RHOST] SERVICE USER authenticate`, typing `answers`, one a line.
/// pamtester's conversation reads each answer as a line from stdin.
pub(crate) fn pamtester(
    service: &str,
    user: &str,
    rhost: Option<&str>,
    answers: &[&str],
) -> PamtesterRun {
    pamtester_as(Command::new("pamtester"), service, user, rhost, answers)
}

/// [`pamtester`] through `cmd`, a command that runs pamtester (e.g. in a namespace of its
/// own, [`sshield_e2e::CaseInsensitiveNamespace::command`]).
pub(crate) fn pamtester_as(
    mut cmd: Command,
    service: &str,
    user: &str,
    rhost: Option<&str>,
    answers: &[&str],
) -> PamtesterRun {
    use std::io::Write;

    if let Some(rhost) = rhost {
        cmd.args(["-I", &format!("rhost={rhost}")]);
    }
    let mut child = cmd
        .args([service, user, "authenticate"])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run pamtester ({e}); apt-get install pamtester"));
    let mut input = String::new();
    for answer in answers {
        input.push_str(answer);
        input.push('\n');
    }
    let mut stdin = child.stdin.take().expect("pamtester stdin");
    // pamtester may stop reading early (a refusal before the last prompt).
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    let out = child.wait_with_output().expect("wait for pamtester");
    PamtesterRun {
        success: out.status.success(),
        output: String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr),
    }
}
