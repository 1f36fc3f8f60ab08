//! `sshield doctor` on fixture hosts: `tests/fixtures/doctor/healthy/` is a host set up right,
//! and every other fixture is that host with the files it holds laid over it, holding exactly
//! one known mistake (see tests/fixtures/doctor/README.md).
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::Output;
use serde_json::Value;
use tempfile::TempDir;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/doctor")
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

/// A fixture host in a temp dir, with the modes git does not keep.
struct Host {
    dir: TempDir,
    _socket: Option<UnixListener>,
}

impl Host {
    fn new(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        copy_tree(&fixtures().join("healthy"), root);
        if name != "healthy" {
            let overlay = fixtures().join(name);
            assert!(overlay.is_dir(), "no fixture {}", overlay.display());
            copy_tree(&overlay, root);
        }
        chmod(&root.join("sshield.toml"), 0o644);
        chmod(&root.join("users"), 0o700);
        for record in fs::read_dir(root.join("users")).unwrap() {
            chmod(&record.unwrap().path(), 0o600);
        }
        for script in ["timedatectl", "chronyc"] {
            if root.join(script).exists() {
                chmod(&root.join(script), 0o755);
            }
        }
        if let Ok(modes) = fs::read_to_string(root.join("modes")) {
            for line in modes
                .lines()
                .filter(|l| !l.starts_with('#') && !l.is_empty())
            {
                let (path, mode) = line.split_once(' ').unwrap();
                chmod(
                    &root.join(path),
                    u32::from_str_radix(mode.trim(), 8).unwrap(),
                );
            }
        }
        // ForceCommand fixtures name `socket = "sshield.sock"`: a daemon's socket.
        let socket = Some(UnixListener::bind(root.join("sshield.sock")).unwrap());
        Self {
            dir,
            _socket: socket,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn doctor(&self, extra: &[&str]) -> Output {
        // The host's clock tools are never asked: a fixture's script, or nothing.
        let tool = |name: &str| {
            if self.path(name).exists() {
                self.path(name)
            } else {
                self.path(&format!("no-{name}-here"))
            }
        };
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sshield"));
        cmd.current_dir(self.dir.path())
            .env_remove("SSHIELD_CONFIG")
            .arg("--config")
            .arg(self.path("sshield.toml"))
            .arg("doctor")
            .arg("--sshd-config")
            .arg(self.path("sshd_config"))
            .arg("--pam-service")
            .arg(self.path("pam.d/sshd"))
            .arg("--passwd")
            .arg(self.path("passwd"))
            .arg("--group-file")
            .arg(self.path("group"))
            .arg("--timedatectl")
            .arg(tool("timedatectl"))
            .arg("--chronyc")
            .arg(tool("chronyc"))
            .args(extra);
        common::run_command(cmd, None)
    }

    /// `doctor --json`: the findings.
    fn findings(&self) -> (Output, Vec<Value>) {
        let out = self.doctor(&["--json"]);
        let findings = out.json().as_array().unwrap().clone();
        (out, findings)
    }
}

/// Runs the fixture; asserts the exit status, that `check` is found with `severity`, and that
/// nothing else is worse than info (one known mistake per fixture). Returns that finding.
#[track_caller]
fn expect(fixture: &str, status: i32, check: &str, severity: &str) -> Value {
    let host = Host::new(fixture);
    let (out, findings) = host.findings();
    out.expect(status);
    let bad: Vec<&Value> = findings
        .iter()
        .filter(|f| f["severity"] == "warn" || f["severity"] == "error")
        .collect();
    for f in &bad {
        assert_eq!(f["check"], check, "{fixture}: unexpected finding {f}");
    }
    let found = findings
        .iter()
        .find(|f| f["check"] == check && f["severity"] == severity)
        .unwrap_or_else(|| panic!("{fixture}: no {severity} {check} in {findings:#?}"))
        .clone();
    assert!(
        !found["fix"].as_str().unwrap().is_empty(),
        "{fixture}: no fix in {found}"
    );
    found
}

#[test]
fn healthy_host_exits_0_with_every_check_ok() {
    let host = Host::new("healthy");
    let (out, findings) = host.findings();
    out.expect(0);
    let checks: Vec<&str> = findings
        .iter()
        .map(|f| f["check"].as_str().unwrap())
        .collect();
    for check in [
        "sshd-use-pam",
        "sshd-kbd-interactive",
        "sshd-authentication-methods",
        "sshd-permit-root-login",
        "sshd-root-kbd-interactive",
        "pam-module",
        "pam-module-args",
        "pam-order",
        "pam-barrier",
        "config",
        "config-permissions",
        "store",
        "exempt-networks",
        "unenrolled-users",
        "clock",
    ] {
        assert!(checks.contains(&check), "{check} not run: {checks:?}");
    }
    for f in &findings {
        let ok = f["severity"] == "ok" || (f["check"] == "clock" && f["severity"] == "info");
        assert!(ok, "{f}");
    }
    // Each finding is an object with exactly these keys, and nothing else is on stdout.
    for f in &findings {
        let mut keys: Vec<&String> = f.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["check", "fix", "message", "severity"]);
    }
}

#[test]
fn text_output_is_one_line_per_finding() {
    let host = Host::new("permit-root-login");
    let out = host.doctor(&[]);
    out.expect(1);
    let line = out
        .stdout
        .lines()
        .find(|l| l.contains("[sshd-permit-root-login]"))
        .unwrap();
    assert!(
        line.starts_with("warn   sshd_config: PermitRootLogin yes"),
        "{line}"
    );
    assert!(
        line.contains(" — set `PermitRootLogin no` and log in as yourself"),
        "{line}"
    );
    assert!(out
        .stdout
        .lines()
        .any(|l| l.starts_with("ok     UsePAM yes")));
}

#[test]
fn other_healthy_setups_exit_0() {
    for fixture in [
        "forcecommand-healthy",
        "pam-forward-pass-healthy",
        "pam-publickey-healthy",
    ] {
        let host = Host::new(fixture);
        let (out, findings) = host.findings();
        out.expect(0);
        assert!(
            findings
                .iter()
                .all(|f| f["severity"] == "ok" || f["severity"] == "info"),
            "{fixture}: {findings:#?}"
        );
    }
    // ForceCommand mode: no pam_sshield is fine (info), and the socket is checked.
    let (_, findings) = Host::new("forcecommand-healthy").findings();
    assert!(findings
        .iter()
        .any(|f| f["check"] == "pam-module" && f["severity"] == "info"));
    assert!(findings
        .iter()
        .any(|f| f["check"] == "daemon-socket" && f["severity"] == "ok"));
}

#[test]
fn sshd_use_pam_off() {
    expect("use-pam-off", 2, "sshd-use-pam", "error");
}

#[test]
fn sshd_kbd_interactive_off() {
    expect("kbd-interactive-off", 2, "sshd-kbd-interactive", "error");
    expect("challenge-response-off", 2, "sshd-kbd-interactive", "error");
}

#[test]
fn sshd_authentication_methods_without_keyboard_interactive() {
    let f = expect(
        "authentication-methods",
        1,
        "sshd-authentication-methods",
        "warn",
    );
    assert!(f["message"].as_str().unwrap().contains("publickey"), "{f}");
}

#[test]
fn sshd_permit_root_login() {
    expect("permit-root-login", 1, "sshd-permit-root-login", "warn");
}

#[test]
fn sshd_root_cannot_answer_the_code() {
    let f = expect(
        "root-kbd-interactive",
        1,
        "sshd-root-kbd-interactive",
        "warn",
    );
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("PermitRootLogin is unset (sshd's default: prohibit-password)")
            && message.contains("root can never pass the code"),
        "{f}"
    );
    assert!(
        f["fix"].as_str().unwrap().contains("`PermitRootLogin no`"),
        "{f}"
    );
    // ForceCommand mode has no pam_sshield in the stack: root's prompts are not sshd's to
    // answer there, and the check does not run.
    let (_, findings) = Host::new("forcecommand-healthy").findings();
    assert!(
        !findings
            .iter()
            .any(|f| f["check"] == "sshd-root-kbd-interactive"),
        "{findings:#?}"
    );
}

#[test]
fn sshd_forwarding_with_force_command() {
    let f = expect("forcecommand-forwarding", 2, "sshd-forwarding", "error");
    assert!(
        f["message"].as_str().unwrap().contains("Match Address"),
        "{f}"
    );
    expect("forcecommand-tcp-only", 1, "sshd-forwarding", "warn");
}

#[test]
fn sshd_permit_user_environment_with_force_command() {
    expect(
        "permit-user-environment",
        1,
        "sshd-permit-user-environment",
        "warn",
    );
}

/// Issue 9, item 5: `AcceptEnv SSHIELD_*`, meant for SSHIELD_CODE, also lets the client
/// choose the helper's config; LD_* and BASH_ENV run the client's code before the helper.
#[test]
fn sshd_accept_env_that_steers_the_helper() {
    let f = expect("accept-env", 2, "sshd-accept-env", "error");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("SSHIELD_* (matches SSHIELD_CONFIG)"),
        "{f}"
    );
    // The line before it, `AcceptEnv LANG LC_*`, is not blamed.
    assert!(!message.contains("LC_*"), "{f}");
    let (_, findings) = Host::new("forcecommand-healthy").findings();
    assert!(findings
        .iter()
        .any(|f| f["check"] == "sshd-accept-env" && f["severity"] == "ok"));
}

/// Issue 9, item 14: sshield login runs sftp-server only with the config's sftp_server_args
/// and refuses other arguments, so a `Subsystem sftp internal-sftp -R` the config does not
/// repeat refuses every sftp session (sftp clients only say "Connection closed").
#[test]
fn sshd_sftp_subsystem_arguments_the_config_lacks() {
    let f = expect("sftp-args", 2, "sshd-sftp-args", "error");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("`Subsystem sftp internal-sftp -R` gives internal-sftp [\"-R\"]"),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("sftp_server_args = [\"-R\"]"),
        "{f}"
    );
    let (_, findings) = Host::new("forcecommand-healthy").findings();
    assert!(findings
        .iter()
        .any(|f| f["check"] == "sshd-sftp-args" && f["severity"] == "ok"));
}

#[test]
fn daemon_socket_missing() {
    let f = expect("daemon-socket", 1, "daemon-socket", "warn");
    assert!(
        f["message"].as_str().unwrap().contains("missing.sock"),
        "{f}"
    );
}

/// A fleet host keeps its offline reports beside its key: one the server refused for good is
/// a login its audit lacks, and the admin is told until they read and remove it; one still
/// waiting to be sent is worth a line.
#[test]
fn fleet_reports_refused_or_waiting() {
    let host = Host::new("healthy");
    let config = fs::read_to_string(host.path("sshield.toml")).unwrap();
    fs::write(
        host.path("sshield.toml"),
        format!(
            "{config}\n[server]\nurls = [\"http://127.0.0.1:9\"]\nhost = \"web1\"\n\
             key_file = \"host.key\"\n"
        ),
    )
    .unwrap();
    let (out, findings) = host.findings();
    out.expect(0);
    let reports = |findings: &[Value]| {
        findings
            .iter()
            .find(|f| f["check"] == "fleet-reports")
            .cloned()
            .unwrap_or_else(|| panic!("no fleet-reports in {findings:#?}"))
    };
    assert_eq!(reports(&findings)["severity"], "ok");
    fs::create_dir(host.path("reports")).unwrap();
    fs::write(host.path("reports/q1.json"), "{}").unwrap();
    let (out, findings) = host.findings();
    out.expect(0);
    assert_eq!(reports(&findings)["severity"], "info");
    fs::create_dir(host.path("rejected")).unwrap();
    fs::write(host.path("rejected/r1.json"), "{}").unwrap();
    let (out, findings) = host.findings();
    out.expect(1);
    let f = reports(&findings);
    assert_eq!(f["severity"], "warn", "{f}");
    let fix = f["fix"].as_str().unwrap();
    assert!(fix.contains("rejected/*.json"), "{f}");
}

#[test]
fn pam_module_missing() {
    expect("pam-module-missing", 2, "pam-module", "error");
}

#[test]
fn pam_module_unknown_argument() {
    let f = expect("pam-module-args", 2, "pam-module-args", "error");
    assert!(
        f["message"].as_str().unwrap().contains("use_frist_pass"),
        "{f}"
    );
}

#[test]
fn pam_order() {
    expect("pam-order", 1, "pam-order", "warn");
    expect("pam-forward-pass-after", 1, "pam-order", "warn");
    let f = expect("pam-forward-pass-prompts", 1, "pam-order", "warn");
    assert!(
        f["message"].as_str().unwrap().contains("use_first_pass"),
        "{f}"
    );
}

#[test]
fn pam_barrier() {
    expect("pam-barrier", 1, "pam-barrier", "warn");
    expect("pam-unix-sufficient", 2, "pam-barrier", "error");
}

#[test]
fn config_invalid() {
    let f = expect("config-invalid", 2, "config", "error");
    let message = f["message"].as_str().unwrap();
    assert!(
        message.contains("sshield.toml:5: unknown field `windw`"),
        "{f}"
    );
}

#[test]
fn config_writable() {
    let f = expect("config-writable", 2, "config-permissions", "error");
    assert!(f["fix"].as_str().unwrap().starts_with("chmod go-w"), "{f}");
}

#[test]
fn store_permissions() {
    let f = expect("store-permissions", 2, "store", "error");
    assert!(f["message"].as_str().unwrap().contains("0755"), "{f}");
}

#[test]
fn exempt_networks_covering_the_internet() {
    let host = Host::new("exempt-networks");
    let (out, findings) = host.findings();
    out.expect(2);
    let nets: Vec<&Value> = findings
        .iter()
        .filter(|f| f["check"] == "exempt-networks")
        .collect();
    assert_eq!(nets.len(), 2, "{nets:#?}");
    assert!(nets.iter().all(|f| f["severity"] == "error"));
    expect("exempt-networks", 2, "exempt-networks", "error");
}

#[test]
fn unenrolled_users_are_named() {
    let f = expect("unenrolled-users", 1, "unenrolled-users", "warn");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("bob (not enrolled)"), "{f}");
    assert!(
        !message.contains("alice") && !message.contains("backup-svc"),
        "{f}"
    );

    let f = expect("unenrolled-required-group", 1, "unenrolled-users", "warn");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains("bob") && !message.contains("carol"), "{f}");
}

#[test]
fn clock_not_synchronized() {
    expect("clock-not-synced", 1, "clock", "warn");
    let f = expect("clock-offset", 1, "clock", "warn");
    assert!(
        f["message"].as_str().unwrap().contains("off by -42.5 s"),
        "{f}"
    );
    // chrony synchronized, no timedatectl: ok, with the offset.
    let (out, findings) = Host::new("clock-chrony-synced").findings();
    out.expect(0);
    let clock = findings.iter().find(|f| f["check"] == "clock").unwrap();
    assert_eq!(clock["severity"], "ok", "{clock}");
    assert!(
        clock["message"].as_str().unwrap().contains("0.000 s"),
        "{clock}"
    );
    // No timedatectl at all: unknown, which is only info.
    let (_, findings) = Host::new("healthy").findings();
    let clock = findings.iter().find(|f| f["check"] == "clock").unwrap();
    assert_eq!(clock["severity"], "info", "{clock}");
}

#[test]
fn missing_files_are_findings_not_crashes() {
    let host = Host::new("healthy");
    fs::remove_file(host.path("sshield.toml")).unwrap();
    fs::remove_file(host.path("pam.d/sshd")).unwrap();
    fs::remove_file(host.path("sshd_config")).unwrap();
    let (out, findings) = host.findings();
    out.expect(2);
    assert!(findings
        .iter()
        .any(|f| f["check"] == "sshd-config" && f["severity"] == "error"));
    assert!(findings
        .iter()
        .any(|f| f["check"] == "config" && f["severity"] == "error"));
    assert!(findings.iter().any(|f| f["check"] == "pam-service"));
    assert!(findings
        .iter()
        .any(|f| f["check"] == "pam-module" && f["severity"] == "error"));
}

#[test]
fn sshd_t_falls_back_to_parsing_when_sshd_fails() {
    let host = Host::new("healthy");
    let out = host.doctor(&["--json", "--sshd-t", "--sshd-binary", "/nonexistent/sshd"]);
    out.expect(0);
    let findings = out.json();
    let t = findings
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["check"] == "sshd-t")
        .unwrap();
    assert_eq!(t["severity"], "info", "{t}");
}

/// With `--sshd-t` and a real sshd, the global options come from `sshd -T` (skipped where
/// there is no sshd; where sshd cannot run, it falls back, which the test above covers).
#[test]
fn sshd_t_reads_the_effective_config_from_a_real_sshd() {
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.exists() {
        eprintln!("skipped: no /usr/sbin/sshd (Debian package openssh-server)");
        return;
    }
    for (fixture, status) in [("healthy", 0), ("use-pam-off", 2)] {
        let host = Host::new(fixture);
        // sshd resolves a relative Include against /etc/ssh, not the fixture: make it absolute,
        // and give it a host key of its own.
        let key = host.path("host_ed25519");
        let keygen = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&key)
            .status();
        if !keygen.is_ok_and(|s| s.success()) {
            eprintln!("skipped: no ssh-keygen (Debian package openssh-client)");
            return;
        }
        let config = fs::read_to_string(host.path("sshd_config"))
            .unwrap()
            .replace(
                "Include sshd_config.d/",
                &format!("Include {}/", host.path("sshd_config.d").display()),
            );
        let config = format!("HostKey {}\n{config}", key.display());
        fs::write(host.path("sshd_config"), config).unwrap();

        let out = host.doctor(&["--json", "--sshd-t", "--sshd-binary", "/usr/sbin/sshd"]);
        let findings = out.json();
        let findings = findings.as_array().unwrap();
        let t = findings.iter().find(|f| f["check"] == "sshd-t").unwrap();
        if t["severity"] != "ok" {
            eprintln!("skipped: sshd -T does not run here: {t}");
            return;
        }
        out.expect(status);
        if status == 2 {
            assert!(findings
                .iter()
                .any(|f| f["check"] == "sshd-use-pam" && f["severity"] == "error"));
        }
    }
}

#[test]
fn sshd_expose_auth_info_for_exempt_methods() {
    expect(
        "exempt-methods-no-expose",
        1,
        "sshd-expose-auth-info",
        "warn",
    );
}

#[test]
fn config_path_of_the_module_differs() {
    let host = Host::new("config-path");
    let (out, findings) = host.findings();
    out.expect(0);
    let f = findings
        .iter()
        .find(|f| f["check"] == "config-path")
        .unwrap_or_else(|| panic!("{findings:#?}"));
    assert_eq!(f["severity"], "info");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("/etc/sshield/other.toml"),
        "{f}"
    );
    assert!(
        f["fix"]
            .as_str()
            .unwrap()
            .contains("--config /etc/sshield/other.toml"),
        "{f}"
    );
}

/// Every check id in the source is documented in docs/doctor.md and exercised here.
#[test]
fn every_check_is_documented_and_tested() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = fs::read_to_string(root.join("../../docs/doctor.md")).unwrap();
    let this = fs::read_to_string(root.join("tests/doctor.rs")).unwrap();
    let mut ids = vec!["config".to_owned(), "store".to_owned(), "clock".to_owned()];
    for file in ["mod.rs", "sshd.rs", "pam.rs", "host.rs"] {
        let text = fs::read_to_string(root.join("src/commands/doctor").join(file)).unwrap();
        for (i, _) in text.match_indices('"') {
            let rest = &text[i + 1..];
            let end = rest
                .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'))
                .unwrap_or(0);
            let literal = &rest[..end];
            let id_like = rest[end..].starts_with('"')
                && literal.contains('-')
                && literal.starts_with(|c: char| c.is_ascii_lowercase());
            let not_ids = [
                "common-auth",
                "keyboard-interactive",
                "forced-commands-only",
                "internal-sftp",
            ];
            if id_like && !not_ids.contains(&literal) {
                ids.push(literal.to_owned());
            }
        }
    }
    ids.sort();
    ids.dedup();
    assert!(ids.len() >= 20, "{ids:?}");
    for id in &ids {
        assert!(
            doc.contains(&format!("| `{id}` |")),
            "docs/doctor.md lacks check {id}"
        );
        assert!(
            this.contains(&format!("\"{id}\"")),
            "tests/doctor.rs never expects {id}"
        );
    }
}
