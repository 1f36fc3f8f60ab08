//! `sshield doctor`: reads the live host and explains what is wrong with its setup, one finding
//! per line with the fix.
//!
//! The checks are small pure functions over text and metadata ([`sshd`], [`pam`], [`host`]);
//! this module only reads the files and runs the programs they look at, and prints.

pub(crate) mod host;
pub(crate) mod pam;
pub(crate) mod sshd;

use std::fs;
use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};

use serde::Serialize;

use crate::cli::DoctorArgs;

/// How bad a finding is. The exit status is the worst one's: 0 for ok and info, 1 warn, 2 error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Severity {
    /// Checked, and fine.
    Ok,
    /// Worth knowing; nothing to fix.
    Info,
    /// Works, but weaker or more fragile than it should be.
    Warn,
    /// Logins are refused, or the second factor can be skipped.
    Error,
}

impl Severity {
    /// `ok`, `info`, `warn` or `error`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        }
    }
}

/// One thing the doctor found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Finding {
    /// How bad it is.
    pub severity: Severity,
    /// The check's stable id (see docs/doctor.md).
    pub check: &'static str,
    /// What is wrong (or, for `ok`, what was checked).
    pub message: String,
    /// How to fix it; empty for `ok`.
    pub fix: String,
}

impl Finding {
    /// A finding with a fix.
    pub(crate) fn new(
        severity: Severity,
        check: &'static str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            severity,
            check,
            message: message.into(),
            fix: fix.into(),
        }
    }

    /// A passed check.
    pub(crate) fn ok(check: &'static str, message: impl Into<String>) -> Self {
        Self::new(Severity::Ok, check, message, "")
    }

    /// The line printed for it.
    pub(crate) fn line(&self) -> String {
        let mut line = format!("{:<5}  {}", self.severity.as_str(), self.message);
        if !self.fix.is_empty() {
            line.push_str(" — ");
            line.push_str(&self.fix);
        }
        line.push_str(&format!("  [{}]", self.check));
        line
    }
}

/// The findings of one check, or an `ok` finding saying what was checked.
pub(crate) fn or_ok(findings: Vec<Finding>, check: &'static str, ok: &str) -> Vec<Finding> {
    if findings.is_empty() {
        vec![Finding::ok(check, ok)]
    } else {
        findings
    }
}

/// How sshd hands logins to sshield.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode {
    /// `pam_sshield` is in the PAM stack.
    pub pam: bool,
    /// sshd_config runs `sshield login` as a ForceCommand (globally or in a Match block).
    pub force_command: bool,
}

impl Mode {
    /// Whether the PAM route must work: the module is in the stack, or there is no
    /// ForceCommand to fall back on.
    pub(crate) fn uses_pam(self) -> bool {
        self.pam || !self.force_command
    }
}

/// The exit status for these findings.
pub(crate) fn exit_status(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        Some(Severity::Error) => 2,
        Some(Severity::Warn) => 1,
        _ => 0,
    }
}

/// Runs every check and prints the findings.
pub(crate) fn run(config_path: &Path, args: &DoctorArgs) -> ExitCode {
    let findings = collect(config_path, args);
    let text = if args.json {
        match serde_json::to_string_pretty(&findings) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("sshield: error: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        findings
            .iter()
            .map(Finding::line)
            .collect::<Vec<_>>()
            .join("\n")
    };
    // A closed pipe (`| head`) is not worth a panic; the exit status still tells.
    let _ = writeln!(io::stdout().lock(), "{text}");
    ExitCode::from(exit_status(&findings))
}

fn read(path: &Path) -> io::Result<String> {
    fs::read_to_string(path)
}

/// Reads everything and runs every check, in the order they are printed.
pub(crate) fn collect(config_path: &Path, args: &DoctorArgs) -> Vec<Finding> {
    let mut findings = Vec::new();

    // sshd_config: the files, then (if asked) sshd's own view of the global options.
    let mut sshd_config = match sshd::load(&args.sshd_config, &read) {
        Ok(c) => Some(c),
        Err(e) => {
            findings.push(Finding::new(
                Severity::Error,
                "sshd-config",
                format!("cannot read {}: {e}", args.sshd_config.display()),
                "pass the right file with --sshd-config PATH",
            ));
            None
        }
    };
    if let (Some(config), true) = (sshd_config.as_mut(), args.sshd_t) {
        findings.push(apply_sshd_t(config, args));
    }

    // The PAM stack.
    let stack = match pam::load(&args.pam_service, &read) {
        Ok(s) => Some(s),
        Err(e) => {
            findings.push(Finding::new(
                Severity::Warn,
                "pam-service",
                format!("cannot read {}: {e}", args.pam_service.display()),
                "pass sshd's PAM service file with --pam-service PATH",
            ));
            None
        }
    };

    let mode = Mode {
        pam: stack.as_ref().is_some_and(|s| pam::has_module(&s.entries)),
        force_command: sshd_config
            .as_ref()
            .is_some_and(sshd::uses_sshield_force_command),
    };

    if let Some(config) = &sshd_config {
        findings.extend(sshd::check_all(config, mode));
    }
    // An unreadable service file is an empty stack: in PAM mode nothing asks for a code.
    let empty = pam::Stack::default();
    let readable = stack.as_ref().unwrap_or(&empty);
    findings.extend(readable.problems.iter().cloned());
    findings.extend(pam::check_all(&readable.entries, mode));

    // sshield's own config, store and users.
    let mut used = Vec::new();
    if let Some(stack) = &stack {
        used.extend(pam::config_args(&stack.entries));
    }
    if let Some(sshd_config) = &sshd_config {
        used.extend(sshd::force_command_configs(sshd_config));
    }
    findings.extend(host::check_config_path(config_path, &used));
    let config = host::check_config(config_path, &mut findings);
    if let Some(config) = &config {
        if let (Some(sshd_config), true) = (&sshd_config, mode.force_command) {
            findings.extend(or_ok(
                sshd::check_sftp_args(sshd_config, &config.sftp_server_args),
                "sshd-sftp-args",
                "sshd's `Subsystem sftp internal-sftp` arguments, if any, are the config's \
                 sftp_server_args",
            ));
        }
        if let (Some(sshd_config), true) = (&sshd_config, mode.uses_pam()) {
            findings.extend(or_ok(
                sshd::check_expose_auth_info(sshd_config, &config.policy.exempt_methods),
                "sshd-expose-auth-info",
                "policy.exempt_methods is empty, or sshd has the ExposeAuthInfo yes it needs",
            ));
        }
        let store = config.record_store();
        let store_finding = host::check_store(&store);
        let store_ok = store_finding.severity == Severity::Ok;
        findings.push(store_finding);
        findings.extend(or_ok(
            host::check_exempt_networks(&config.policy),
            "exempt-networks",
            "no exempt network covers the whole internet",
        ));
        if store_ok {
            findings.push(host::check_unenrolled(
                config,
                &store,
                read(&args.passwd).map_err(|e| (args.passwd.as_path(), e)),
                read(&args.group_file).ok().as_deref(),
            ));
        } else {
            findings.push(Finding::new(
                Severity::Info,
                "unenrolled-users",
                "not checked: the store cannot be read",
                "fix the store first",
            ));
        }
        if let Some(server) = &config.server {
            // The daemon keeps its reports beside the host's key (crate::fleet::client).
            let state_dir = server
                .key_file
                .parent()
                .unwrap_or(Path::new("/var/lib/sshield"));
            findings.push(host::check_reports(state_dir));
        }
        if mode.force_command {
            findings.push(host::check_socket(
                &config.socket,
                fs::symlink_metadata(&config.socket),
            ));
        }
    }

    let chrony = run_program(&args.chronyc, &["-c", "tracking"]).ok();
    findings.push(host::check_clock(
        run_program(
            &args.timedatectl,
            &["show", "-p", "NTPSynchronized", "--value"],
        ),
        chrony.as_deref(),
    ));
    findings
}

/// Replaces the parsed global options by `sshd -T`'s, adding a finding that says which was used.
fn apply_sshd_t(config: &mut sshd::SshdConfig, args: &DoctorArgs) -> Finding {
    let output = Command::new(&args.sshd_binary)
        .arg("-T")
        .arg("-f")
        .arg(&args.sshd_config)
        .stdin(Stdio::null())
        .output();
    let why = match output {
        Ok(out) if out.status.success() => {
            config.global = sshd::parse_effective(&String::from_utf8_lossy(&out.stdout));
            return Finding::ok(
                "sshd-t",
                format!(
                    "read the effective config from {} -T",
                    args.sshd_binary.display()
                ),
            );
        }
        Ok(out) => String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("failed")
            .to_owned(),
        Err(e) => e.to_string(),
    };
    Finding::new(
        Severity::Info,
        "sshd-t",
        format!(
            "{} -T did not work ({why}); the files were parsed instead",
            args.sshd_binary.display()
        ),
        "run as root, or point --sshd-binary at sshd",
    )
}

/// Runs `binary args...`: its stdout if it succeeded, else why not.
fn run_program(binary: &Path, args: &[&str]) -> Result<String, String> {
    match Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
    {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(String::from_utf8_lossy(&out.stderr)
            .lines()
            .next()
            .unwrap_or("it failed")
            .to_owned()),
        Err(e) => Err(format!("{}: {e}", binary.display())),
    }
}
