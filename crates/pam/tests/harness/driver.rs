//! A PAM application, like sshd's PAM code, that logs in once and reports what happened.
//!
//! Each login runs in its own process, as sshd runs each in its own child: libpam loads the
//! module afresh, a module that crashed cannot take the test harness down with it, and the
//! syslog lines can be seen. The child is this same test binary, started on the test
//! `pam_driver_process` with [`DRIVER_ENV`] naming a spec file ([`main_if_requested`]).
//!
//! It calls `pam_start_confdir` with the test's own PAM config dir, sets `PAM_RHOST` and the
//! PAM environment, answers prompts from a queue (failing the conversation when the queue is
//! empty, as a client that cannot answer), and runs `pam_authenticate`, then `pam_setcred`
//! after a success and `pam_acct_mgmt` if asked. `openlog(LOG_PERROR)` makes every syslog line,
//! the module's `pam_syslog` ones included, also go to stderr, which the parent reads.
#![allow(unsafe_code, reason = "this is the C side of libpam")]

use std::collections::VecDeque;
use std::ffi::{c_char, c_int, CString};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::ptr;
use std::time::{Duration, Instant};

// The module's own declarations, so the test checks them from the application's side too.
#[allow(
    dead_code,
    reason = "the module's declarations are included whole; the driver uses some"
)]
#[path = "../../src/ffi.rs"]
pub(crate) mod ffi;

use ffi::{pam_conv, pam_handle_t};

// The application's conversation function, shared with the module's own unit tests, which
// run it under Miri against a fake libpam (`src/fake_libpam.rs`).
#[path = "conversation.rs"]
mod conversation;
use conversation::{converse, Conversation};

/// The environment variable that turns the test binary into the driver.
pub(crate) const DRIVER_ENV: &str = "SSHIELD_PAM_DRIVER_SPEC";
/// The test function that calls [`main_if_requested`].
const DRIVER_TEST: &str = "pam_driver_process";

const PAM_ESTABLISH_CRED: c_int = 0x2;

// The application half of libpam (`pam_appl.h`, `_pam_types.h`), which the module never calls.
// By soname, as the module does (`src/ffi.rs`): no libpam0g-dev needed to build the tests.
#[link(name = "libpam.so.0", kind = "dylib", modifiers = "+verbatim")]
extern "C" {
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const pam_conv,
        confdir: *const c_char,
        pamh: *mut *mut pam_handle_t,
    ) -> c_int;
    fn pam_end(pamh: *mut pam_handle_t, pam_status: c_int) -> c_int;
    fn pam_authenticate(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    fn pam_setcred(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut pam_handle_t, flags: c_int) -> c_int;
    fn pam_putenv(pamh: *mut pam_handle_t, name_value: *const c_char) -> c_int;
}

/// One login to perform.
#[derive(Debug, Clone, Default)]
pub(crate) struct Login {
    /// The PAM service (a file in the config dir).
    pub service: String,
    /// The user given to `pam_start`; `None` makes libpam ask for it.
    pub user: Option<String>,
    /// `PAM_RHOST`.
    pub rhost: Option<String>,
    /// `NAME=value` entries of the PAM environment.
    pub env: Vec<String>,
    /// Answers to prompts, in order.
    pub answers: Vec<String>,
    /// Also run the `account` stack.
    pub account: bool,
}

impl Login {
    /// `user` logging in to [`SERVICE`](super::fixture::SERVICE) from `rhost`, answering
    /// `answers`.
    pub(crate) fn new(user: &str, rhost: &str, answers: &[&str]) -> Self {
        Self {
            service: super::fixture::SERVICE.to_owned(),
            user: Some(user.to_owned()),
            rhost: Some(rhost.to_owned()),
            answers: answers.iter().map(|a| (*a).to_owned()).collect(),
            ..Self::default()
        }
    }
}

/// A message the module (or libpam) sent to the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prompt {
    /// `PAM_PROMPT_ECHO_OFF` etc.
    pub style: c_int,
    /// Its text.
    pub text: String,
}

/// What happened.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// `pam_authenticate`'s result.
    pub authenticate: c_int,
    /// `pam_setcred`'s, after a successful authentication.
    pub setcred: Option<c_int>,
    /// `pam_acct_mgmt`'s, when asked for.
    pub account: Option<c_int>,
    /// Every conversation message, in order.
    pub prompts: Vec<Prompt>,
    /// The syslog lines of `pam_sshield`, from `pam_sshield(` on.
    pub syslog: Vec<String>,
    /// The child's whole stderr, for failure messages.
    pub stderr: String,
    /// How long `pam_authenticate` took.
    pub elapsed: Duration,
}

impl Outcome {
    /// The prompt texts alone.
    pub(crate) fn prompt_texts(&self) -> Vec<&str> {
        self.prompts.iter().map(|p| p.text.as_str()).collect()
    }

    /// The `detail="..."` of the one config-error line, with the engine's `\x22` escapes
    /// undone; fails unless the login failed closed: `PAM_SERVICE_ERR`, nothing asked, that
    /// one line.
    #[track_caller]
    pub(crate) fn setup_error(&self) -> String {
        assert_eq!(self.authenticate, ffi::PAM_SERVICE_ERR, "{self:#?}");
        assert!(self.prompts.is_empty(), "nothing is asked: {self:#?}");
        let lines = self.lines();
        assert_eq!(lines.len(), 1, "{self:#?}");
        let (head, detail) = lines[0].split_once(" detail=").unwrap();
        assert!(head.ends_with("method=none reason=config-error"), "{head}");
        detail.trim_matches('"').replace("\\x22", "\"")
    }

    /// The module's syslog lines without the `pam_sshield(service:auth): ` prefix.
    pub(crate) fn lines(&self) -> Vec<&str> {
        self.syslog
            .iter()
            .filter_map(|l| l.split_once("): ").map(|(_, rest)| rest))
            .collect()
    }
}

/// Runs `login` against the PAM config dir `confdir` in a child process.
pub(crate) fn run(confdir: &Path, login: &Login) -> Outcome {
    let spec = tempfile::NamedTempFile::new_in(confdir.parent().unwrap_or(confdir)).unwrap();
    let mut text = format!("confdir {}\nservice {}\n", confdir.display(), login.service);
    let mut add = |key: &str, value: &str| {
        assert!(!value.contains('\n'), "{key} {value:?} must be one line");
        text.push_str(&format!("{key} {value}\n"));
    };
    if let Some(user) = &login.user {
        add("user", user);
    }
    if let Some(rhost) = &login.rhost {
        add("rhost", rhost);
    }
    for entry in &login.env {
        add("env", entry);
    }
    for answer in &login.answers {
        add("answer", answer);
    }
    if login.account {
        add("account", "yes");
    }
    fs::write(spec.path(), text).unwrap();
    let report = report_path(spec.path());
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            DRIVER_TEST,
            "--exact",
            "--nocapture",
            "--test-threads=1",
            "-q",
        ])
        .env(DRIVER_ENV, spec.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr).into_owned();
    let report_text = fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "the driver wrote no report ({e}); it exited with {}; stderr:\n{stderr}",
            child.status
        )
    });
    let _ = fs::remove_file(&report);
    parse_report(&report_text, stderr)
}

fn report_path(spec: &Path) -> PathBuf {
    let mut name = spec.as_os_str().to_owned();
    name.push(".report");
    PathBuf::from(name)
}

fn parse_report(text: &str, stderr: String) -> Outcome {
    let mut outcome = Outcome {
        authenticate: -1,
        setcred: None,
        account: None,
        prompts: Vec::new(),
        syslog: stderr
            .lines()
            .filter_map(|l| l.find("pam_sshield(").map(|at| l[at..].to_owned()))
            .collect(),
        stderr,
        elapsed: Duration::ZERO,
    };
    for line in text.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        match key {
            "start" => panic!(
                "pam_start_confdir failed: {value}; stderr:\n{}",
                outcome.stderr
            ),
            "authenticate" => outcome.authenticate = value.parse().unwrap(),
            "setcred" => outcome.setcred = Some(value.parse().unwrap()),
            "account" => outcome.account = Some(value.parse().unwrap()),
            "elapsed_ms" => outcome.elapsed = Duration::from_millis(value.parse().unwrap()),
            "prompt" => {
                let (style, text) = value.split_once(' ').unwrap_or((value, ""));
                outcome.prompts.push(Prompt {
                    style: style.parse().unwrap(),
                    text: text.replace("\\n", "\n"),
                });
            }
            other => panic!("unknown report line {other:?}"),
        }
    }
    outcome
}

/// The driver's side: does nothing unless this process was started by [`run`]; then logs in
/// as the spec says, writes the report and exits.
pub(crate) fn main_if_requested() {
    let Some(spec) = std::env::var_os(DRIVER_ENV) else {
        return;
    };
    let spec = PathBuf::from(spec);
    let report = drive(&fs::read_to_string(&spec).unwrap());
    fs::write(report_path(&spec), report).unwrap();
    std::process::exit(0);
}

fn drive(spec: &str) -> String {
    let mut confdir = None;
    let mut service = None;
    let mut user = None;
    let mut rhost = None;
    let mut env = Vec::new();
    let mut answers = VecDeque::new();
    let mut account = false;
    for line in spec.lines() {
        let (key, value) = line.split_once(' ').unwrap_or((line, ""));
        let value = CString::new(value).unwrap();
        match key {
            "confdir" => confdir = Some(value),
            "service" => service = Some(value),
            "user" => user = Some(value),
            "rhost" => rhost = Some(value),
            "env" => env.push(value),
            "answer" => answers.push_back(value),
            "account" => account = true,
            other => panic!("unknown spec line {other:?}"),
        }
    }
    let (confdir, service) = (confdir.unwrap(), service.unwrap());
    let mut conversation = Conversation::new(answers);
    let conv = pam_conv {
        conv: Some(converse),
        appdata_ptr: ptr::addr_of_mut!(conversation).cast(),
    };
    let mut report = String::new();
    // SAFETY: the ident is a static string; LOG_PERROR copies every line to stderr.
    unsafe { libc::openlog(c"pam-driver".as_ptr(), libc::LOG_PERROR, libc::LOG_AUTHPRIV) };
    let mut pamh: *mut pam_handle_t = ptr::null_mut();
    // SAFETY: every string is NUL-terminated and outlives the transaction; `conv` and the
    // conversation state it points to live until after pam_end.
    let rc = unsafe {
        pam_start_confdir(
            service.as_ptr(),
            user.as_ref().map_or(ptr::null(), |u| u.as_ptr()),
            &conv,
            confdir.as_ptr(),
            &mut pamh,
        )
    };
    if rc != ffi::PAM_SUCCESS {
        return format!("start {rc}\n");
    }
    if let Some(rhost) = &rhost {
        // SAFETY: a valid handle; libpam copies the string.
        let rc = unsafe { ffi::pam_set_item(pamh, ffi::PAM_RHOST, rhost.as_ptr().cast()) };
        assert_eq!(rc, ffi::PAM_SUCCESS, "pam_set_item(PAM_RHOST)");
    }
    for entry in &env {
        // SAFETY: a valid handle; libpam copies the string.
        let rc = unsafe { pam_putenv(pamh, entry.as_ptr()) };
        assert_eq!(rc, ffi::PAM_SUCCESS, "pam_putenv");
    }
    let started = Instant::now();
    // SAFETY: a valid handle, with the conversation set at pam_start.
    let authenticated = unsafe { pam_authenticate(pamh, 0) };
    let elapsed = started.elapsed();
    report.push_str(&format!("authenticate {authenticated}\n"));
    report.push_str(&format!("elapsed_ms {}\n", elapsed.as_millis()));
    if authenticated == ffi::PAM_SUCCESS {
        // SAFETY: a valid handle.
        let rc = unsafe { pam_setcred(pamh, PAM_ESTABLISH_CRED) };
        report.push_str(&format!("setcred {rc}\n"));
    }
    if account {
        // SAFETY: a valid handle.
        let rc = unsafe { pam_acct_mgmt(pamh, 0) };
        report.push_str(&format!("account {rc}\n"));
    }
    // SAFETY: a valid handle, not used after this.
    unsafe { pam_end(pamh, authenticated) };
    for (style, text) in &conversation.prompts {
        report.push_str(&format!("prompt {style} {}\n", text.replace('\n', "\\n")));
    }
    report
}
