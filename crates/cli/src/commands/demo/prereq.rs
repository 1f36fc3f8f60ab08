//! What the live demo needs from the machine, found before anything is made; when something
//! is missing, the message says which package or build step provides it.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::DemoFailure;
use crate::cli::DemoArgs;
use crate::failure::Failure;

/// The module's file name as cargo builds it.
const BUILT_MODULE: &str = "libpam_sshield.so";
/// The module's file name as installed.
const INSTALLED_MODULE: &str = "pam_sshield.so";

/// OpenSSH ≥ 9.8 runs each connection in a separate `sshd-session` binary, and PAM runs there,
/// under *its* program name. Debian 12 (9.2) has none: sshd re-executes itself.
const SSHD_SESSION: &str = "/usr/lib/openssh/sshd-session";

/// Where programs are looked for besides `$PATH` (sudo's `secure_path` may lack sbin dirs
/// on some systems, and a user's `PATH` often does).
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The programs and files the live demo runs or loads, all found.
#[derive(Debug)]
pub(super) struct Tools {
    /// The OpenSSH server, absolute.
    pub sshd: PathBuf,
    /// `sshd-session`, where this OpenSSH has one.
    pub sshd_session: Option<PathBuf>,
    pub ssh_keygen: PathBuf,
    pub unshare: PathBuf,
    /// The PAM module, absolute.
    pub module: PathBuf,
    /// Whether the `ssh` client is here to try the printed command with.
    pub ssh_client: bool,
}

/// The user who logs in: the one who ran `sudo`, else the current one.
#[derive(Debug, Clone)]
pub(super) struct DemoUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl DemoUser {
    pub(super) fn is_root(&self) -> bool {
        self.uid == 0
    }
}

/// Finds everything, or says what is missing and how to get it.
pub(super) fn find(args: &DemoArgs) -> Result<Tools, DemoFailure> {
    let sshd = find_sshd(&args.sshd)?;
    let ssh_keygen = find_program("ssh-keygen").ok_or_else(|| {
        DemoFailure::Missing(
            "ssh-keygen is not installed; it makes the demo's host and client keys: \
             apt install openssh-client"
                .to_owned(),
        )
    })?;
    let unshare = find_program("unshare").ok_or_else(|| {
        DemoFailure::Missing(
            "unshare is not installed; it gives sshd a private view of /etc/pam.d so the \
             machine's is never changed: apt install util-linux"
                .to_owned(),
        )
    })?;
    if find_program("mount").is_none() {
        return Err(DemoFailure::Missing(
            "mount is not installed; it shows sshd the demo's copy of /etc/pam.d: apt install \
             mount"
                .to_owned(),
        ));
    }
    let module = find_module(args.module.as_deref())?;
    let sshd_session = Path::new(SSHD_SESSION)
        .is_file()
        .then(|| PathBuf::from(SSHD_SESSION));
    Ok(Tools {
        sshd,
        sshd_session,
        ssh_keygen,
        unshare,
        module,
        ssh_client: find_program("ssh").is_some(),
    })
}

fn find_sshd(given: &Path) -> Result<PathBuf, DemoFailure> {
    if !is_executable(given) {
        let why = if given.exists() {
            format!("{} is not an executable file", given.display())
        } else {
            format!("there is no {}", given.display())
        };
        return Err(DemoFailure::Missing(format!(
            "openssh-server is not installed ({why}): apt install openssh-server, or give the \
             path of sshd with --sshd PATH"
        )));
    }
    // sshd re-executes itself by its own path for every connection, so it must be absolute.
    given.canonicalize().map_err(|e| {
        DemoFailure::Failed(Failure::Error(format!(
            "cannot resolve {}: {e}",
            given.display()
        )))
    })
}

/// `--module`, else `libpam_sshield.so` next to this program (`target/release/` when run from
/// a build), else `pam_sshield.so` in the security directories a package installs into.
fn find_module(given: Option<&Path>) -> Result<PathBuf, DemoFailure> {
    if let Some(path) = given {
        if !path.is_file() {
            return Err(DemoFailure::Missing(format!(
                "there is no PAM module at {} (--module): build it with `cargo build --release` \
                 (target/release/{BUILT_MODULE}), or give the path of pam_sshield.so",
                path.display()
            )));
        }
        return absolute(path);
    }
    let candidates = module_candidates();
    match candidates.iter().find(|p| p.is_file()) {
        Some(found) => absolute(found),
        None => {
            let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
            Err(DemoFailure::Missing(format!(
                "the PAM module pam_sshield is neither built nor installed (looked for {}). \
                 Build it with `cargo build --release`, which puts target/release/{BUILT_MODULE} \
                 next to target/release/sshield, or give its path with --module PATH",
                looked.join(", ")
            )))
        }
    }
}

fn module_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        candidates.push(dir.join(BUILT_MODULE));
    }
    if let Some(triplet) = multiarch_triplet() {
        for lib in ["/lib", "/usr/lib"] {
            candidates.push(
                Path::new(lib)
                    .join(triplet)
                    .join("security")
                    .join(INSTALLED_MODULE),
            );
        }
    }
    for dir in ["/lib/security", "/usr/lib/security", "/usr/lib64/security"] {
        candidates.push(Path::new(dir).join(INSTALLED_MODULE));
    }
    candidates
}

/// Debian's multiarch directory name for the architecture this program was built for.
fn multiarch_triplet() -> Option<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Some("x86_64-linux-gnu"),
        "aarch64" => Some("aarch64-linux-gnu"),
        "arm" => Some("arm-linux-gnueabihf"),
        "x86" => Some("i386-linux-gnu"),
        "riscv64" => Some("riscv64-linux-gnu"),
        "powerpc64" => Some("powerpc64le-linux-gnu"),
        "s390x" => Some("s390x-linux-gnu"),
        _ => None,
    }
}

fn absolute(path: &Path) -> Result<PathBuf, DemoFailure> {
    path.canonicalize().map_err(|e| {
        DemoFailure::Failed(Failure::Error(format!(
            "cannot resolve {}: {e}",
            path.display()
        )))
    })
}

/// A program by name, in `$PATH` then the system directories.
pub(super) fn find_program(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(std::env::split_paths(&OsString::from(SYSTEM_PATH)));
    dirs.into_iter()
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The invoking user: `SUDO_USER` when it names an account (the newcomer ran `sudo sshield
/// demo` and wants to log in as themselves), else whoever runs this (root).
pub(super) fn invoking_user() -> Result<DemoUser, Failure> {
    if let Some(name) = std::env::var("SUDO_USER").ok().filter(|n| !n.is_empty()) {
        if let Ok(Some(user)) = nix::unistd::User::from_name(&name) {
            return Ok(DemoUser {
                name: user.name,
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            });
        }
    }
    let uid = nix::unistd::getuid();
    match nix::unistd::User::from_uid(uid) {
        Ok(Some(user)) => Ok(DemoUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }),
        Ok(None) => Err(Failure::Error(format!(
            "uid {uid} has no entry in the user database (/etc/passwd or NSS), so sshd cannot \
             log it in; run the demo from a real account"
        ))),
        Err(e) => Err(Failure::Error(format!(
            "cannot look up uid {uid} in the user database: {e}"
        ))),
    }
}

/// Whether this machine lets root make a private mount namespace (some containers don't).
pub(super) fn check_mount_namespace(unshare: &Path) -> Result<(), Failure> {
    let out = Command::new(unshare)
        .args(["--mount", "--propagation", "private", "--", "true"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::Error(format!("cannot run {}: {e}", unshare.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Failure::Error(format!(
        "cannot make a private mount namespace ({} --mount: {}). The demo needs one to show \
         sshd its own copy of /etc/pam.d without changing the machine's; in a container, run it \
         with CAP_SYS_ADMIN (e.g. docker run --privileged), or use --engine-only",
        unshare.display(),
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}
