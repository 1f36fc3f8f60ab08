//! A case-insensitive name service for one test sshd: `ALICE` and `Alice` are the account
//! `alice`, as with SSSD's `case_sensitive = false` or winbind.
//!
//! A small NSS module (`nss_sshieldci.c`, built here with the C compiler) answers `getpwnam`
//! and `getspnam` for any spelling of a name in /etc/passwd and /etc/shadow with the entry as
//! spelled there. sshd finds it through a private `/etc/nsswitch.conf` (the machine's, with
//! `sshieldci` after `files` for `passwd` and `shadow`) bound over the real one inside sshd's
//! own mount namespace only, and through `LD_LIBRARY_PATH` (sshd keeps its environment when it
//! re-executes itself, and is not setuid, so the loader honours it). Nothing outside that
//! namespace sees either: the machine's name service is not changed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

/// The module's C source.
const SOURCE: &str = include_str!("nss_sshieldci.c");

/// The service name in nsswitch.conf; glibc loads `libnss_<name>.so.2`.
const SERVICE: &str = "sshieldci";

/// The files that make the name service, in a directory of the test sshd.
#[derive(Debug)]
pub(crate) struct CaseInsensitiveNames {
    /// Holds `libnss_sshieldci.so.2`: sshd's `LD_LIBRARY_PATH`.
    pub(crate) lib_dir: PathBuf,
    /// The nsswitch.conf to bind over `/etc/nsswitch.conf`.
    pub(crate) nsswitch: PathBuf,
}

impl CaseInsensitiveNames {
    /// Builds the module and writes the nsswitch.conf under `dir/nss`.
    pub(crate) fn build(dir: &Path) -> CaseInsensitiveNames {
        let lib_dir = dir.join("nss");
        fs::create_dir(&lib_dir).expect("nss dir");
        let source = lib_dir.join("nss_sshieldci.c");
        fs::write(&source, SOURCE).expect("write the NSS module's source");
        let library = lib_dir.join(format!("libnss_{SERVICE}.so.2"));
        let out = Command::new("gcc")
            .args(["-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .output()
            .expect("gcc, to build the test's NSS module (apt-get install gcc)");
        assert!(
            out.status.success(),
            "gcc could not build the test's NSS module:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let machine = fs::read_to_string("/etc/nsswitch.conf").unwrap_or_default();
        let nsswitch = lib_dir.join("nsswitch.conf");
        fs::write(&nsswitch, with_service(&machine)).expect("write nsswitch.conf");
        CaseInsensitiveNames { lib_dir, nsswitch }
    }
}

/// The same name service for any program, e.g. `sshield verify ALICE` run by an admin: each
/// [`CaseInsensitiveNamespace::command`] runs in a mount namespace of its own with the private
/// nsswitch.conf. Files removed on drop.
#[derive(Debug)]
pub struct CaseInsensitiveNamespace {
    names: CaseInsensitiveNames,
    _dir: TempDir,
}

impl CaseInsensitiveNamespace {
    /// Builds the module. Needs root and a machine that allows private mount namespaces.
    pub fn new() -> CaseInsensitiveNamespace {
        let dir = tempfile::Builder::new()
            .prefix("sshield-e2e-nss.")
            .tempdir()
            .expect("temp dir for the NSS module");
        let names = CaseInsensitiveNames::build(dir.path());
        CaseInsensitiveNamespace { names, _dir: dir }
    }

    /// `program`, to be given its arguments, run where account names are case-insensitive.
    /// (`LD_LIBRARY_PATH` is set inside, so a caller may clear the environment.)
    pub fn command(&self, program: impl AsRef<Path>) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c"])
            .arg(
                "mount --bind \"$1\" /etc/nsswitch.conf && export LD_LIBRARY_PATH=\"$2\" && \
                 shift 2 && exec \"$@\"",
            )
            .arg("sh")
            .arg(&self.names.nsswitch)
            .arg(&self.names.lib_dir)
            .arg(program.as_ref());
        cmd
    }
}

impl Default for CaseInsensitiveNamespace {
    fn default() -> Self {
        Self::new()
    }
}

/// `machine`'s nsswitch.conf with the module right after `files` for `passwd` and `shadow`
/// (so an exact name is found as before, any other spelling by the module), and those two
/// lines added if it lacks them.
fn with_service(machine: &str) -> String {
    let mut out = String::from("# sshield e2e: a case-insensitive passwd and shadow.\n");
    let mut seen = Vec::new();
    for line in machine.lines() {
        let database = line.split(':').next().unwrap_or_default().trim();
        if ["passwd", "shadow"].contains(&database) && line.contains(':') {
            seen.push(database.to_owned());
            out.push_str(&format!("{database}: files {SERVICE}\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    for database in ["passwd", "shadow"] {
        if !seen.iter().any(|d| d == database) {
            out.push_str(&format!("{database}: files {SERVICE}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_module_follows_files_for_passwd_and_shadow_only() {
        let conf = with_service("passwd: files systemd\ngroup: files systemd\nhosts: files dns\n");
        assert!(conf.contains("\npasswd: files sshieldci\n"), "{conf}");
        assert!(conf.contains("\nshadow: files sshieldci\n"), "{conf}");
        assert!(conf.contains("\ngroup: files systemd\n"), "{conf}");
        assert!(conf.contains("\nhosts: files dns\n"), "{conf}");
    }
}
