//! Throwaway local users and groups.
//!
//! sshd only logs in accounts that NSS knows and PAM (pam_unix) can check, so the harness
//! adds real ones with `useradd`, under names no real account has (`sshield-e2e-<pid>-u<n>`),
//! and removes them on drop, serialised by one lock (tests run on parallel threads).
//! The alternative that leaves /etc alone, cwrap's nss_wrapper + pam_wrapper preloaded into
//! sshd and everything it re-executes, tests less of the real thing (pam_unix against a real
//! shadow file, sshd's own user checks) for much more machinery.

use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{chown, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tempfile::TempDir;

use crate::admin::{self, accounts_lock, unique_name};
use crate::sshd::keygen;

/// How to make a [`User`].
#[derive(Debug, Clone)]
pub struct UserOptions {
    /// Supplementary groups (names), e.g. of [`Group`]s.
    pub groups: Vec<String>,
    /// Login shell; default `/bin/bash`.
    pub shell: String,
    /// Install the user's client key in `~/.ssh/authorized_keys`; default true. The key only
    /// counts when a client offers it ([`crate::Client::key`]).
    pub authorized_key: bool,
}

impl Default for UserOptions {
    fn default() -> Self {
        UserOptions {
            groups: Vec::new(),
            shell: "/bin/bash".to_owned(),
            authorized_key: true,
        }
    }
}

impl UserOptions {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn group(mut self, group: &Group) -> Self {
        self.groups.push(group.name().to_owned());
        self
    }

    pub fn shell(mut self, shell: impl Into<String>) -> Self {
        self.shell = shell.into();
        self
    }

    pub fn authorized_key(mut self, install: bool) -> Self {
        self.authorized_key = install;
        self
    }
}

/// A local account with a random password, a home directory and an ed25519 client key;
/// deleted with its home on drop (its processes are the sshd's, stopped by [`crate::Sshd`]).
#[derive(Debug)]
pub struct User {
    name: String,
    password: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
    key: PathBuf,
    // Root-only dir for the client key (the client runs as root).
    _key_dir: TempDir,
}

impl User {
    /// A user with the default [`UserOptions`].
    pub fn create() -> User {
        User::with(UserOptions::default())
    }

    pub fn with(opts: UserOptions) -> User {
        let name = unique_name('u');
        let password = random_password();
        {
            let _lock = accounts_lock();
            let mut args = vec![
                "-m",
                "-s",
                opts.shell.as_str(),
                "-c",
                "sshield e2e test user",
            ];
            let groups = opts.groups.join(",");
            if !groups.is_empty() {
                args.extend(["-G", groups.as_str()]);
            }
            args.push(name.as_str());
            if let Err(e) = admin::run("useradd", &args, None) {
                // It may exist half-made; remove whatever is there.
                admin::remove_user(&name);
                panic!("cannot add test user: {e}");
            }
        }
        // From here on, a panic drops `user`, which removes the account.
        let (uid, gid, home) = lookup(&name);
        let key_dir = tempfile::Builder::new()
            .prefix(&format!("{name}.key."))
            .tempdir()
            .expect("temp dir for client key");
        let user = User {
            key: key_dir.path().join("id_ed25519"),
            name,
            password,
            uid,
            gid,
            home,
            _key_dir: key_dir,
        };
        {
            let _lock = accounts_lock();
            let line = format!("{}:{}\n", user.name, user.password);
            admin::run("chpasswd", &[], Some(&line))
                .unwrap_or_else(|e| panic!("cannot set password: {e}"));
        }
        keygen(&user.key, &user.name);
        if opts.authorized_key {
            let public = user.public_key();
            user.append_authorized_key(&public);
        }
        user
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn password(&self) -> &str {
        &self.password
    }

    pub fn uid(&self) -> u32 {
        self.uid
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// The client's private key (for [`crate::Client::key`]).
    pub fn key(&self) -> &Path {
        &self.key
    }

    /// The public key line (`ssh-ed25519 AAAA... comment`).
    pub fn public_key(&self) -> String {
        fs::read_to_string(self.key.with_extension("pub"))
            .expect("read client public key")
            .trim()
            .to_owned()
    }

    /// Appends a line to `~/.ssh/authorized_keys`, e.g. one with `command="..."` options.
    pub fn append_authorized_key(&self, line: &str) {
        let ssh = self.home.join(".ssh");
        self.mkdir(&ssh, 0o700);
        let path = ssh.join("authorized_keys");
        let mut text = fs::read_to_string(&path).unwrap_or_default();
        text.push_str(line.trim_end());
        text.push('\n');
        self.write_file(".ssh/authorized_keys", text, 0o600);
    }

    /// Writes a file under the home directory (creating parent directories, mode 0700),
    /// owned by the user: `~/.ssh/environment`, `~/.google_authenticator`, ...
    pub fn write_file(
        &self,
        relative: impl AsRef<Path>,
        contents: impl AsRef<[u8]>,
        mode: u32,
    ) -> PathBuf {
        let relative = relative.as_ref();
        assert!(
            relative.is_relative(),
            "{} must be relative to the home",
            relative.display()
        );
        let path = self.home.join(relative);
        let mut dir = self.home.clone();
        if let Some(parent) = relative.parent() {
            for part in parent.components() {
                dir.push(part);
                self.mkdir(&dir, 0o700);
            }
        }
        let _ = fs::remove_file(&path);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        file.write_all(contents.as_ref()).expect("write file");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod");
        chown(&path, Some(self.uid), Some(self.gid)).expect("chown");
        path
    }

    fn mkdir(&self, dir: &Path, mode: u32) {
        if !dir.is_dir() {
            fs::create_dir(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
            fs::set_permissions(dir, fs::Permissions::from_mode(mode)).expect("chmod");
            chown(dir, Some(self.uid), Some(self.gid)).expect("chown");
        }
    }

    /// Adds the user to a group (as `usermod -a -G`). New logins see it.
    pub fn join(&self, group: &Group) {
        let _lock = accounts_lock();
        admin::run("usermod", &["-a", "-G", group.name(), &self.name], None)
            .unwrap_or_else(|e| panic!("cannot add {} to {}: {e}", self.name, group.name()));
    }

    /// Whether an account of this name exists now (e.g. to check it is gone after drop).
    pub fn exists(name: &str) -> bool {
        admin::account_exists("/etc/passwd", name)
    }
}

impl AsRef<str> for User {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

impl Drop for User {
    fn drop(&mut self) {
        let _lock = accounts_lock();
        admin::remove_user(&self.name);
    }
}

/// A local group (`groupadd`), deleted on drop.
#[derive(Debug)]
pub struct Group {
    name: String,
    gid: u32,
}

impl Group {
    pub fn create() -> Group {
        let name = unique_name('g');
        {
            let _lock = accounts_lock();
            admin::run("groupadd", &[&name], None)
                .unwrap_or_else(|e| panic!("cannot add test group: {e}"));
        }
        // From here on, a panic drops `group`, which removes it.
        let mut group = Group { gid: 0, name };
        group.gid = fs::read_to_string("/etc/group")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.first() == Some(&group.name.as_str())).then(|| f.get(2)?.parse().ok())?
            })
            .unwrap_or_else(|| panic!("group {} not in /etc/group", group.name));
        group
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn gid(&self) -> u32 {
        self.gid
    }

    pub fn exists(name: &str) -> bool {
        admin::account_exists("/etc/group", name)
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _lock = accounts_lock();
        admin::remove_group(&self.name);
    }
}

/// uid, gid and home from /etc/passwd (useradd writes there; no NSS lookup needed).
fn lookup(name: &str) -> (u32, u32, PathBuf) {
    let passwd = fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() >= 7 && f[0] == name {
            let uid = f[2].parse().expect("uid");
            let gid = f[3].parse().expect("gid");
            return (uid, gid, PathBuf::from(f[5]));
        }
    }
    panic!("user {name} not in /etc/passwd after useradd");
}

/// 20 letters and digits from the OS random source.
fn random_password() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 20];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .expect("read /dev/urandom");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}
