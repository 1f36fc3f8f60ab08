//! The Debian package, as an admin meets it (issue 5): `scripts/build-deb` builds it; its file
//! list, modes and control fields are what docs/packaging.md says; lintian finds no error; and
//! it installs into a throwaway root with `dpkg --root`, where `sshield --version` and
//! `sshield doctor` run, and purges from there again without touching the machine.
//!
//! The package is built from this test's own profile (`dev` under `cargo test`), so it reuses
//! what the other end-to-end tests build instead of compiling the fat-LTO release once more;
//! scripts/build-deb packages `release` by default. Root only (dpkg); elsewhere it skips, in CI
//! it fails.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

/// A PATH with the sbin dirs, where dpkg looks for ldconfig and start-stop-daemon.
const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[test]
fn deb_builds_lints_installs_into_a_root_and_purges() {
    if !can_run() {
        return;
    }
    let out = TempDir::new().unwrap();
    let deb = sshield_e2e::build_deb(out.path());
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("sshield_{version}-1_")),
        "{}",
        deb.display()
    );

    let files = check_file_list(&deb);
    check_control(&deb);
    check_lintian(&deb);

    // The machine's own copies of everything the package holds, and its dpkg's idea of
    // sshield, before the throwaway installs: compared again after the purge.
    let host_paths: Vec<PathBuf> = files
        .keys()
        .map(PathBuf::from)
        .chain([
            "/var/lib/sshield".into(),
            "/var/lib/dpkg/info/sshield.list".into(),
        ])
        .collect();
    let host_before = snapshot(&host_paths);
    let host_status_before = host_dpkg_status();

    let root = ThrowawayRoot::new();
    root.dpkg(&["--install", deb.to_str().unwrap()])
        .expect_success("dpkg --install");
    for path in files.keys() {
        let meta = fs::symlink_metadata(root.path(path))
            .unwrap_or_else(|e| panic!("{path} not installed: {e}"));
        assert_eq!(meta.mode() & 0o7777, files[path], "{path}: mode");
    }
    // postinst made the record store, closed to all but root.
    for dir in ["/var/lib/sshield", "/var/lib/sshield/users"] {
        let meta = fs::symlink_metadata(root.path(dir))
            .unwrap_or_else(|e| panic!("postinst did not create {dir}: {e}"));
        assert!(meta.is_dir(), "{dir}");
        assert_eq!(meta.mode() & 0o7777, 0o700, "{dir}: mode");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{dir}: owner");
    }
    let conffiles = fs::read_to_string(root.path("/var/lib/dpkg/info/sshield.conffiles")).unwrap();
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort_unstable();
    assert_eq!(
        conffiles,
        [
            "/etc/fail2ban/filter.d/sshield.conf",
            "/etc/sshield/sshield.toml"
        ]
    );

    // The installed binary runs from there, with the installed config.
    let cli = root.path("/usr/bin/sshield");
    let run = Command::new(&cli).arg("--version").output().unwrap();
    assert!(run.status.success(), "{}", show(&run));
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim(),
        format!("sshield {version}")
    );
    check_doctor(&root, &cli);

    // prerm refuses while sshd's PAM stack still loads the module: removing it would fail
    // every login that stack guards.
    let pam_d = root.path("/etc/pam.d");
    fs::create_dir_all(&pam_d).unwrap();
    fs::write(
        pam_d.join("sshd"),
        "@include common-auth\nauth required pam_sshield.so\n",
    )
    .unwrap();
    let refused = root.dpkg(&["--purge", "sshield"]);
    assert!(
        !refused.status.success(),
        "purge went ahead: {}",
        show(&refused)
    );
    assert!(
        show(&refused).contains("/etc/pam.d/sshd"),
        "the refusal names the file: {}",
        show(&refused)
    );
    assert!(cli.exists(), "a refused purge removed the binary");
    // A commented-out line is not a use.
    fs::write(
        pam_d.join("sshd"),
        "@include common-auth\n# auth required pam_sshield.so\n",
    )
    .unwrap();
    root.dpkg(&["--purge", "sshield"])
        .expect_success("dpkg --purge");
    for path in files
        .keys()
        .map(String::as_str)
        .chain(["/var/lib/sshield", "/var/lib/dpkg/info/sshield.list"])
    {
        assert!(
            fs::symlink_metadata(root.path(path)).is_err(),
            "{path} is left after the purge"
        );
    }
    let status = fs::read_to_string(root.path("/var/lib/dpkg/status")).unwrap();
    assert!(!status.contains("Status: install"), "{status}");

    assert_eq!(
        snapshot(&host_paths),
        host_before,
        "the machine's files changed"
    );
    assert_eq!(
        host_dpkg_status(),
        host_status_before,
        "the machine's dpkg changed"
    );
}

/// Root, dpkg, lintian and cargo-deb; without them this prints why and returns `false`, or
/// panics under CI, which must never skip silently.
fn can_run() -> bool {
    let missing = if !rustix::process::geteuid().is_root() {
        Some("it needs root (dpkg --root)".to_string())
    } else {
        ["dpkg", "dpkg-deb", "dpkg-query", "lintian", "strip"]
            .into_iter()
            .find(|tool| !on_path(tool))
            .map(|tool| format!("{tool} is missing; run scripts/install-test-deps"))
            .or_else(sshield_e2e::cargo_deb_missing)
    };
    sshield_e2e::run_or_skip("the deb test", missing)
}

fn on_path(tool: &str) -> bool {
    PATH.split(':')
        .any(|dir| Path::new(dir).join(tool).is_file())
}

/// `dpkg-deb -c`: exactly the files docs/packaging.md lists, each with its mode, all root's,
/// and every directory 0755. Returns path -> mode of the files.
fn check_file_list(deb: &Path) -> BTreeMap<String, u32> {
    let list = run_ok(Command::new("dpkg-deb").arg("--contents").arg(deb));
    let mut files = BTreeMap::new();
    for line in list.lines() {
        // drwxr-xr-x 0/0  0 2026-01-01 00:00 ./usr/bin/
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(fields.len() >= 6, "{line}");
        let (perms, owner, path) = (fields[0], fields[1], fields[5]);
        assert_eq!(owner, "0/0", "{line}: not root's");
        let path = path.trim_start_matches('.');
        if perms.starts_with('d') {
            assert_eq!(perms, "drwxr-xr-x", "{line}");
            continue;
        }
        assert!(perms.starts_with('-'), "{line}: not a plain file");
        files.insert(path.to_string(), mode_of(perms));
    }

    let mut expected: BTreeMap<String, u32> = BTreeMap::new();
    let mut add = |path: &str, mode: u32| {
        expected.insert(path.to_string(), mode);
    };
    add("/usr/bin/sshield", 0o755);
    // Beside pam_unix.so, where this release's libpam looks for modules (on Debian 12 amd64,
    // /lib/x86_64-linux-gnu/security).
    let security_dir = pam_security_dir();
    add(&format!("{security_dir}/pam_sshield.so"), 0o644);
    let lib_prefix = Path::new(&security_dir)
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .to_string_lossy()
        .into_owned();
    add(
        &format!("{lib_prefix}/systemd/system/sshield.service"),
        0o644,
    );
    add(
        &format!("{lib_prefix}/systemd/system/sshield.socket"),
        0o644,
    );
    add("/etc/sshield/sshield.toml", 0o644);
    add("/etc/fail2ban/filter.d/sshield.conf", 0o644);
    add("/usr/share/bash-completion/completions/sshield", 0o644);
    add("/usr/share/zsh/vendor-completions/_sshield", 0o644);
    add("/usr/share/fish/vendor_completions.d/sshield.fish", 0o644);
    for doc in [
        "README.md",
        "copyright",
        "changelog.Debian.gz",
        "examples/sshield.toml",
        "examples/fail2ban/jail.d/sshield.conf",
    ] {
        add(&format!("/usr/share/doc/sshield/{doc}"), 0o644);
    }
    // Every man page of docs/man (kept equal to the CLI's by the docs test) and every doc.
    let repo = sshield_e2e::workspace_root();
    for page in names_in(&repo.join("docs/man")) {
        let section = page.rsplit('.').next().unwrap();
        add(&format!("/usr/share/man/man{section}/{page}.gz"), 0o644);
    }
    for doc in names_in(&repo.join("docs")) {
        if doc.ends_with(".md") {
            add(&format!("/usr/share/doc/sshield/docs/{doc}"), 0o644);
        }
    }
    let extra: Vec<_> = files
        .keys()
        .filter(|p| !expected.contains_key(*p))
        .collect();
    let absent: Vec<_> = expected
        .keys()
        .filter(|p| !files.contains_key(*p))
        .collect();
    assert!(
        extra.is_empty() && absent.is_empty(),
        "unexpected in the package: {extra:?}\nmissing from it: {absent:?}\n{list}"
    );
    assert_eq!(files, expected, "modes:\n{list}");
    eprintln!("deb: {} files, as expected", files.len());
    files
}

fn check_control(deb: &Path) {
    let field = |name: &str| {
        run_ok(Command::new("dpkg-deb").arg("--field").arg(deb).arg(name))
            .trim()
            .to_string()
    };
    assert_eq!(field("Package"), "sshield");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section"), "admin");
    let depends = field("Depends");
    assert!(depends.contains("libpam0g"), "Depends: {depends}");
    assert!(depends.contains("libc6"), "Depends: {depends}");
    assert_eq!(field("Recommends"), "openssh-server");
    assert_eq!(field("Suggests"), "fail2ban");
    let arch = run_ok(Command::new("dpkg").arg("--print-architecture"));
    assert_eq!(field("Architecture"), arch.trim());
}

/// lintian: errors fail the test; warnings are printed.
fn check_lintian(deb: &Path) {
    let run = Command::new("lintian")
        .arg(deb)
        .env("PATH", PATH)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&run.stdout);
    eprintln!("lintian:\n{report}");
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("E:")).collect();
    assert!(errors.is_empty(), "lintian errors:\n{}", errors.join("\n"));
    assert!(
        run.status.success(),
        "lintian failed: {}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// `sshield doctor` from the root: with the installed config as shipped it runs and reports
/// (exit 0, 1 or 2, never a crash); with the store pointed into the root it finds the store
/// postinst made sound.
fn check_doctor(root: &ThrowawayRoot, cli: &Path) {
    let doctor = |config: &Path| {
        Command::new(cli)
            .arg("--config")
            .arg(config)
            .arg("doctor")
            .arg("--sshd-config")
            .arg(root.path("/etc/ssh/sshd_config"))
            .arg("--pam-service")
            .arg(root.path("/etc/pam.d/sshd"))
            .arg("--passwd")
            .arg(root.path("/etc/passwd"))
            .arg("--group-file")
            .arg(root.path("/etc/group"))
            // Absent: the clock check says "unknown" rather than reading this machine's.
            .arg("--timedatectl")
            .arg(root.path("/absent/timedatectl"))
            .arg("--chronyc")
            .arg(root.path("/absent/chronyc"))
            .output()
            .unwrap()
    };
    let installed = root.path("/etc/sshield/sshield.toml");
    let run = doctor(&installed);
    eprintln!("sshield doctor (installed config):\n{}", show(&run));
    assert!(matches!(run.status.code(), Some(0..=2)), "{}", show(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.ends_with("[config]")),
        "the installed config is not valid: {text}"
    );

    let copy = root.path("/tmp/sshield.toml");
    fs::create_dir_all(copy.parent().unwrap()).unwrap();
    let config = fs::read_to_string(&installed).unwrap();
    let store = root.path("/var/lib/sshield/users");
    let config = config.replace(
        "store = \"/var/lib/sshield/users\"",
        &format!("store = {:?}", store.to_str().unwrap()),
    );
    assert!(config.contains(store.to_str().unwrap()), "no store key");
    fs::write(&copy, config).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o644)).unwrap();
    let run = doctor(&copy);
    assert!(matches!(run.status.code(), Some(0..=2)), "{}", show(&run));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("ok") && l.ends_with("[store]")),
        "the store postinst made is not sound: {text}"
    );
}

/// An empty dpkg database in a temp dir, for `dpkg --root`.
struct ThrowawayRoot {
    dir: TempDir,
}

impl ThrowawayRoot {
    fn new() -> Self {
        let dir = TempDir::new().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for sub in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
            "var/log",
        ] {
            fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        fs::write(dir.path().join("var/lib/dpkg/status"), "").unwrap();
        fs::write(dir.path().join("var/lib/dpkg/available"), "").unwrap();
        ThrowawayRoot { dir }
    }

    /// `path` (absolute in the package) inside the root.
    fn path(&self, path: &str) -> PathBuf {
        self.dir.path().join(path.trim_start_matches('/'))
    }

    /// dpkg on this root. The maintainer scripts run unchrooted (the root has no shell) with
    /// DPKG_ROOT set, which they honour; --force-depends since the root holds no libc.
    fn dpkg(&self, args: &[&str]) -> Output {
        Command::new("dpkg")
            .arg(format!("--root={}", self.dir.path().display()))
            .args(["--force-script-chrootless", "--force-depends"])
            .args(args)
            .env("PATH", PATH)
            .env_remove("SSHIELD_FORCE_REMOVE")
            .output()
            .unwrap()
    }
}

trait ExpectSuccess {
    fn expect_success(&self, what: &str);
}

impl ExpectSuccess for Output {
    fn expect_success(&self, what: &str) {
        assert!(self.status.success(), "{what}: {}", show(self));
    }
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", show(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn show(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `-rwxr-xr-x` -> 0o755.
fn mode_of(perms: &str) -> u32 {
    perms[1..]
        .chars()
        .fold(0, |mode, c| (mode << 1) | u32::from(c != '-'))
}

/// The directory libpam-modules puts pam_unix.so in.
fn pam_security_dir() -> String {
    let list = run_ok(Command::new("dpkg-query").args(["-L", "libpam-modules"]));
    let pam_unix = list
        .lines()
        .find(|l| l.ends_with("/security/pam_unix.so"))
        .expect("libpam-modules has pam_unix.so");
    pam_unix.trim_end_matches("/pam_unix.so").to_string()
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Kind and mode, owner, size and modification time of a path; `None` where it is absent.
type Stat = Option<(u32, u32, u64, i64, i64)>;

/// Each path with its [`Stat`].
fn snapshot(paths: &[PathBuf]) -> Vec<(PathBuf, Stat)> {
    paths
        .iter()
        .map(|p| {
            let meta = fs::symlink_metadata(p)
                .ok()
                .map(|m| (m.mode(), m.uid(), m.size(), m.mtime(), m.mtime_nsec()));
            (p.clone(), meta)
        })
        .collect()
}

/// What the machine's own dpkg says of sshield.
fn host_dpkg_status() -> String {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Status} ${Version}", "sshield"])
        .output()
        .unwrap();
    format!(
        "{} {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
