//! The demo's sshd: the files it is given and the process, in a mount namespace of its own.
//!
//! OpenSSH names its PAM service after its program name, and PAM reads services from
//! `/etc/pam.d`. Adding a file there would change the machine, so sshd runs under the
//! unique name [`SERVICE`] (a symlink in the demo's directory) inside a private mount
//! namespace (`unshare --mount`) in which the demo's own copy of `/etc/pam.d`, plus the demo's
//! service file, is bind-mounted over `/etc/pam.d`. Outside the namespace nothing changes, and
//! the namespace ends with the last process in it. The end-to-end test harness
//! (crates/e2e/src/sshd.rs, syslog.rs) does the same two things for the same reasons.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sshield_core::Config;

use super::events::{Events, Stop};
use super::prereq::{find_program, DemoUser, Tools};
use super::procs;
use crate::failure::Failure;

/// sshd's program name, hence its PAM service, hence the `service=` of the decision lines.
pub(super) const SERVICE: &str = "sshield-demo-sshd";

/// The only address the demo listens on.
pub(super) const ADDRESS: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The privilege-separation directory Debian's sshd refuses to start without.
const PRIVSEP_DIR: &str = "/run/sshd";

/// The environment sshd starts with (it builds its sessions' own).
const SSHD_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long sshd may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Run as `unshare --mount --propagation private -- /bin/sh -c SETUP sh PAMD PROGRAM ARGS...`:
/// shows PAMD as /etc/pam.d to this process alone, then becomes sshd (same pid).
const NAMESPACE_SETUP: &str = r#"set -e
mount --bind "$1" /etc/pam.d
shift
exec "$@"
"#;

/// Where each of the demo's files lives, all in its temporary directory.
#[derive(Debug)]
pub(super) struct Layout {
    pub dir: PathBuf,
    /// sshield's config, read by the CLI and the module.
    pub config: PathBuf,
    /// The record store.
    pub store: PathBuf,
    /// The config's `log_file`: one line per decision, shown live.
    pub log_file: PathBuf,
    /// `pam_sshield.so`, a symlink to the module: libpam names a module after its file, so
    /// syslog lines read `pam_sshield(...)` as they will when installed.
    pub module_link: PathBuf,
    /// The private copy of /etc/pam.d.
    pub pam_dir: PathBuf,
    /// sshd (and sshd-session) under the demo's program name.
    pub bin_dir: PathBuf,
    pub sshd_config: PathBuf,
    /// sshd's own log (`-E`).
    pub sshd_log: PathBuf,
    pub sshd_stderr: PathBuf,
    pub host_key: PathBuf,
    /// The client's files, owned by the user who logs in, so they can run the ssh command
    /// without root.
    pub client_dir: PathBuf,
    pub client_key: PathBuf,
    pub known_hosts: PathBuf,
}

impl Layout {
    pub(super) fn new(dir: &Path) -> Layout {
        let client_dir = dir.join("client");
        Layout {
            dir: dir.to_owned(),
            config: dir.join("sshield.toml"),
            store: dir.join("users"),
            log_file: dir.join("decisions.log"),
            module_link: dir.join("pam_sshield.so"),
            pam_dir: dir.join("pam.d"),
            bin_dir: dir.join("bin"),
            sshd_config: dir.join("sshd_config"),
            sshd_log: dir.join("sshd.log"),
            sshd_stderr: dir.join("sshd.stderr"),
            host_key: dir.join("ssh_host_ed25519_key"),
            client_key: client_dir.join("id_ed25519"),
            known_hosts: client_dir.join("known_hosts"),
            client_dir,
        }
    }

    /// PAM service files and sshd_config split their lines at white space, so the paths put
    /// there must have none.
    pub(super) fn check_paths(&self, module: &Path) -> Result<(), Failure> {
        for path in [&self.dir, module] {
            let text = path.to_string_lossy();
            if text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\\')
            {
                return Err(Failure::Error(format!(
                    "{} contains white space, quotes or backslashes, which a PAM service file cannot hold; \
                     use a path without (for the temporary directory: TMPDIR=/tmp)",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

fn io_error<'a>(what: &str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Failure + 'a {
    let what = what.to_owned();
    move |e| Failure::Error(format!("cannot {what} {}: {e}", path.display()))
}

/// Writes sshield's config (store, issuer, log file) and loads it as the module will.
pub(super) fn write_sshield_config(layout: &Layout) -> Result<Config, Failure> {
    let text = format!(
        "# Config of `sshield demo`; removed with its directory when the demo ends.\n\
         store = \"{}\"\n\
         issuer = \"sshield demo\"\n\
         log_file = \"{}\"\n",
        layout.store.display(),
        layout.log_file.display()
    );
    write_private(&layout.config, &text)?;
    // Created now, so that it can be followed from its start.
    write_private(&layout.log_file, "")?;
    Ok(Config::parse(&text, &layout.config)?)
}

/// Creates `path` 0600 with `text`; never follows or reuses an existing file.
fn write_private(path: &Path, text: &str) -> Result<(), Failure> {
    use std::io::Write;
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error("create", path))?;
    file.write_all(text.as_bytes())
        .map_err(io_error("write", path))
}

/// `ssh-keygen -t ed25519 -N '' -f path`; returns the public key as `TYPE BASE64`.
pub(super) fn keygen(ssh_keygen: &Path, path: &Path, comment: &str) -> Result<String, Failure> {
    let out = Command::new(ssh_keygen)
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::Error(format!("cannot run {}: {e}", ssh_keygen.display())))?;
    if !out.status.success() {
        return Err(Failure::Error(format!(
            "ssh-keygen could not make {}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let public_path = path.with_extension("pub");
    let public = fs::read_to_string(&public_path).map_err(io_error("read", &public_path))?;
    let mut fields = public.split_whitespace();
    match (fields.next(), fields.next()) {
        (Some(kind), Some(key)) => Ok(format!("{kind} {key}")),
        _ => Err(Failure::Error(format!(
            "{} is not a public key",
            public_path.display()
        ))),
    }
}

/// The client's key pair and known_hosts directory, owned by the user who logs in.
pub(super) fn make_client_dir(
    layout: &Layout,
    user: &DemoUser,
    ssh_keygen: &Path,
) -> Result<String, Failure> {
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&layout.client_dir)
        .map_err(io_error("create", &layout.client_dir))?;
    let public = keygen(ssh_keygen, &layout.client_key, "sshield-demo")?;
    if !user.is_root() {
        for path in [
            &layout.client_dir,
            &layout.client_key,
            &layout.client_key.with_extension("pub"),
        ] {
            std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
                .map_err(io_error("give the user", path))?;
        }
    }
    Ok(public)
}

/// Writes the client's known_hosts (so ssh does not ask about the host key), owned by the
/// user who logs in.
pub(super) fn write_known_hosts(
    layout: &Layout,
    user: &DemoUser,
    port: u16,
    host_public: &str,
) -> Result<(), Failure> {
    let _ = fs::remove_file(&layout.known_hosts);
    write_private(
        &layout.known_hosts,
        &format!("[{ADDRESS}]:{port} {host_public}\n"),
    )?;
    if !user.is_root() {
        std::os::unix::fs::chown(&layout.known_hosts, Some(user.uid), Some(user.gid))
            .map_err(io_error("give the user", &layout.known_hosts))?;
    }
    Ok(())
}

/// Copies /etc/pam.d (files as files, symlinks as symlinks) and adds the demo's service.
/// sshd's sessions live in the namespace too, so a `sudo` typed in one finds its stack.
pub(super) fn make_pam_dir(layout: &Layout) -> Result<(), Failure> {
    let system = Path::new("/etc/pam.d");
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&layout.pam_dir)
        .map_err(io_error("create", &layout.pam_dir))?;
    let entries = fs::read_dir(system).map_err(io_error("read", system))?;
    for entry in entries {
        let entry = entry.map_err(io_error("read", system))?;
        let from = entry.path();
        let to = layout.pam_dir.join(entry.file_name());
        let meta = fs::symlink_metadata(&from).map_err(io_error("read", &from))?;
        if meta.file_type().is_symlink() {
            let target = fs::read_link(&from).map_err(io_error("read", &from))?;
            symlink(target, &to).map_err(io_error("create", &to))?;
        } else if meta.is_file() {
            fs::copy(&from, &to).map_err(io_error("copy", &from))?;
        }
    }
    let service = layout.pam_dir.join(SERVICE);
    // A file of this name in /etc/pam.d would be some earlier experiment's; the copy's is ours.
    match fs::remove_file(&service) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(io_error("replace", &service)(e)),
        _ => {}
    }
    let text = format!(
        "# PAM service of `sshield demo`'s sshd, in the demo's private copy of /etc/pam.d.\n\
         # After the key, only the code: pam_sshield alone in the auth stack.\n\
         auth     required  {} config={}\n\
         account  required  pam_unix.so\n\
         session  required  pam_unix.so\n",
        layout.module_link.display(),
        layout.config.display()
    );
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o644);
    let mut file = options
        .open(&service)
        .map_err(io_error("create", &service))?;
    std::io::Write::write_all(&mut file, text.as_bytes()).map_err(io_error("write", &service))
}

/// The symlinks that give sshd (and sshd-session) the demo's program name, and
/// `pam_sshield.so`; returns the sshd to run.
pub(super) fn make_links(layout: &Layout, tools: &Tools) -> Result<PathBuf, Failure> {
    fs::DirBuilder::new()
        .mode(0o755)
        .create(&layout.bin_dir)
        .map_err(io_error("create", &layout.bin_dir))?;
    let program = layout.bin_dir.join(SERVICE);
    symlink(&tools.sshd, &program).map_err(io_error("create", &program))?;
    if let Some(session) = &tools.sshd_session {
        let link = layout.bin_dir.join(format!("{SERVICE}-session"));
        symlink(session, &link).map_err(io_error("create", &link))?;
    }
    symlink(&tools.module, &layout.module_link).map_err(io_error("create", &layout.module_link))?;
    Ok(program)
}

/// The demo's sshd_config.
pub(super) fn sshd_config(
    layout: &Layout,
    tools: &Tools,
    user: &DemoUser,
    port: u16,
    client_public: &str,
) -> String {
    let echo = find_program("echo").unwrap_or_else(|| PathBuf::from("/bin/echo"));
    let mut text = format!(
        "# sshd_config of `sshield demo`; only the demo's sshd reads it, and it is removed with\n\
         # {dir}.\n\
         Port {port}\n\
         ListenAddress {ADDRESS}:{port}\n\
         HostKey {host_key}\n\
         PidFile {dir}/sshd.pid\n\
         \n\
         # First the key, then the code: keyboard-interactive runs PAM, whose service is this\n\
         # sshd's program name, {SERVICE}; in the demo's copy of /etc/pam.d it holds\n\
         # `auth required pam_sshield.so config={config}`.\n\
         AuthenticationMethods publickey,keyboard-interactive:pam\n\
         UsePAM yes\n\
         PubkeyAuthentication yes\n\
         KbdInteractiveAuthentication yes\n\
         PasswordAuthentication no\n\
         \n\
         # The first factor is the demo's throwaway key, given by a command: an AuthorizedKeysFile\n\
         # must lie in directories that only root (or the user) may write, up to /, and /tmp is\n\
         # not one. So nothing in ~/.ssh is read or changed.\n\
         AuthorizedKeysFile none\n\
         AuthorizedKeysCommand {echo} {client_public}\n\
         AuthorizedKeysCommandUser {user}\n\
         AllowUsers {user}\n",
        dir = layout.dir.display(),
        host_key = layout.host_key.display(),
        config = layout.config.display(),
        echo = echo.display(),
        user = user.name,
    );
    if user.is_root() {
        // `prohibit-password` would refuse keyboard-interactive, i.e. the code, for root; root
        // still needs the demo's key and a code, and no other user may log in.
        text.push_str("PermitRootLogin yes\n");
    } else {
        text.push_str("PermitRootLogin no\n");
    }
    text.push_str(
        "\n\
         DisableForwarding yes\n\
         PermitUserEnvironment no\n\
         UseDNS no\n\
         LogLevel VERBOSE\n\
         PrintMotd no\n\
         MaxAuthTries 6\n\
         LoginGraceTime 120\n\
         Subsystem sftp internal-sftp\n",
    );
    if tools.sshd_session.is_some() {
        let session = layout.bin_dir.join(format!("{SERVICE}-session"));
        text.push_str(&format!(
            "\n# OpenSSH >= 9.8: connections (and PAM) run in sshd-session, named like this sshd.\n\
             SshdSessionPath {}\n\
             # Its per-source penalties would lock the newcomer out after a few wrong codes.\n\
             PerSourcePenalties no\n",
            session.display()
        ));
    }
    text
}

/// Debian's sshd refuses to start without its privilege-separation directory; Debian's own
/// systemd unit creates it (`RuntimeDirectory=sshd`) before every start, and so does the demo
/// when it is missing (in a container, or when the machine's sshd never ran).
pub(super) fn ensure_privsep_dir() -> Result<(), Failure> {
    let dir = Path::new(PRIVSEP_DIR);
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .mode(0o755)
        .recursive(true)
        .create(dir)
        .map_err(io_error(
            "create sshd's privilege separation directory",
            dir,
        ))
}

/// `sshd -t`: the config and host key as sshd sees them, with sshd's own words if wrong.
pub(super) fn check_config(program: &Path, layout: &Layout) -> Result<(), Failure> {
    let out = Command::new(program)
        .arg("-t")
        .arg("-f")
        .arg(&layout.sshd_config)
        .env_clear()
        .env("PATH", SSHD_PATH)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Failure::Error(format!("cannot run {}: {e}", program.display())))?;
    if out.status.success() {
        return Ok(());
    }
    Err(Failure::Error(format!(
        "sshd refused the demo's config {} (sshd -t):\n{}",
        layout.sshd_config.display(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )))
}

/// A free port on the loopback address. Another process may take it before sshd binds it;
/// [`start`] then tries another.
pub(super) fn free_port() -> Result<u16, Failure> {
    let listener = TcpListener::bind(SocketAddrV4::new(ADDRESS, 0))
        .map_err(|e| Failure::Error(format!("cannot find a free port on {ADDRESS}: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Failure::Error(format!("cannot find a free port on {ADDRESS}: {e}")))
}

/// The running sshd. Dropping it stops sshd and every process below the demo.
#[derive(Debug)]
pub(super) struct Sshd {
    child: Child,
    stopped: bool,
}

/// How a start ended.
#[derive(Debug)]
pub(super) enum Started {
    Listening(Sshd),
    /// The port was taken between choosing and binding it.
    PortTaken,
    /// The newcomer stopped the demo while sshd was starting.
    Stopped(Stop),
}

/// Starts `program` in its namespace and waits until it listens on `port`.
pub(super) fn start(
    program: &Path,
    tools: &Tools,
    layout: &Layout,
    port: u16,
    events: &Events,
) -> Result<Started, Failure> {
    let _ = fs::remove_file(&layout.sshd_log);
    let stderr = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&layout.sshd_stderr)
        .map_err(io_error("create", &layout.sshd_stderr))?;
    let child = Command::new(&tools.unshare)
        .args([
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            NAMESPACE_SETUP,
            "sh",
        ])
        .arg(&layout.pam_dir)
        .arg(program)
        .arg("-D")
        .arg("-f")
        .arg(&layout.sshd_config)
        .arg("-E")
        .arg(&layout.sshd_log)
        .env_clear()
        .env("PATH", SSHD_PATH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        // Its own process group: Ctrl-C in the terminal reaches the demo alone, which then
        // stops sshd and its sessions in order.
        .process_group(0)
        .spawn()
        .map_err(|e| Failure::Error(format!("cannot run {}: {e}", tools.unshare.display())))?;
    let mut sshd = Sshd {
        child,
        stopped: false,
    };
    let listening = format!("Server listening on {ADDRESS} port {port}.");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Some(stop) = events.pending() {
            sshd.stop();
            return Ok(Started::Stopped(stop));
        }
        let log = fs::read_to_string(&layout.sshd_log).unwrap_or_default();
        if log.contains(&listening) {
            return Ok(Started::Listening(sshd));
        }
        if log.contains("Address already in use") {
            sshd.stop();
            return Ok(Started::PortTaken);
        }
        let exited = matches!(sshd.child.try_wait(), Ok(Some(_)));
        if exited || Instant::now() >= deadline {
            sshd.stop();
            let why = if exited {
                "sshd exited".to_owned()
            } else {
                format!("sshd did not listen within {START_TIMEOUT:?}")
            };
            return Err(Failure::Error(format!("{why}.\n{}", sshd_output(layout))));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The end of sshd's stderr and log, for an error message.
pub(super) fn sshd_output(layout: &Layout) -> String {
    let stderr = fs::read_to_string(&layout.sshd_stderr).unwrap_or_default();
    let log = fs::read_to_string(&layout.sshd_log).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(15).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!(
        "--- sshd's stderr ({}) ---\n{}\n--- sshd's log ({}), last lines ---\n{}",
        layout.sshd_stderr.display(),
        stderr.trim_end(),
        layout.sshd_log.display(),
        tail.join("\n")
    )
}

impl Sshd {
    /// The listener's pid (`unshare` became `sh`, which became sshd).
    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether sshd has exited.
    pub(super) fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Stops sshd and every process below the demo (the listener, connections, sessions and
    /// anything they left behind); returns how many processes there were.
    pub(super) fn stop(&mut self) -> usize {
        if self.stopped {
            return 0;
        }
        self.stopped = true;
        let killed = procs::kill_below(std::process::id());
        let _ = self.child.kill();
        let _ = self.child.wait();
        procs::reap_orphans(self.child.id());
        killed
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}
