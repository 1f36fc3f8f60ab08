//! The command line, as clap definitions only: the man pages and completions are generated
//! from exactly these.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A self-hosted second factor for SSH and SFTP.
#[derive(Debug, Parser)]
#[command(
    name = "sshield",
    version,
    about = "A self-hosted second factor for SSH and SFTP",
    long_about = "sshield adds a one-time code (TOTP/HOTP from any authenticator app, or a backup code) \
to SSH and SFTP logins. This command enrolls users, checks codes, and imports users from pam_oath \
and google-authenticator. Records live one file per user in the store named by the config.",
    after_help = "Examples:\n  \
  sshield enroll alice                      # new TOTP secret, QR code, backup codes\n  \
  sshield enroll alice --secret JBSWY3DPEHPK3PXP --no-confirm --json\n  \
  sshield verify alice 123456               # exit 0 if accepted\n  \
  sshield status\n  \
  sshield import users-oath /etc/users.oath\n  \
  sshield --config ./test.toml code alice   # a temp store, no root needed"
)]
pub(crate) struct Cli {
    /// The config file. `sshield login` never takes it from SSHIELD_CONFIG: it runs as the user
    /// logging in, so it reads only --config (or the default), and only a root-owned file.
    #[arg(
        long,
        global = true,
        env = "SSHIELD_CONFIG",
        value_name = "PATH",
        default_value = "/etc/sshield/sshield.toml"
    )]
    pub config: PathBuf,

    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Enroll a user: make (or take) a secret, show its QR code and backup codes.
    #[command(after_help = "Examples:\n  \
  sshield enroll alice\n  \
  sshield enroll alice --name yubikey-oath --hotp --digits 8\n  \
  sshield enroll alice --secret-file /srv/keys/alice --no-confirm --json   # config management\n  \
  vault read -field=secret kv/otp/alice | sshield enroll alice --secret - --no-confirm\n\n\
A secret given as --secret BASE32 is on the command line, where `ps` shows it to every local \
user: config management should write it to a 0600 file for --secret-file, or pipe it to \
--secret -.\n\n\
The record stays pending until a first correct code confirms it, so a mis-scanned secret never \
locks anyone out. Running the same --secret again changes nothing.")]
    Enroll(EnrollArgs),

    /// Confirm a pending enrollment with a first code from the app.
    Confirm {
        /// The user.
        user: String,
        /// The code shown by the app ('-' reads it from standard input).
        code: String,
        /// Which pending authenticator, if several.
        #[arg(long)]
        name: Option<String>,
    },

    /// Check a code or backup code, and use it up if accepted.
    #[command(
        after_help = "Exit status: 0 accepted, 1 refused (reason on stderr), 2 error.\n\n\
Example:\n  sshield verify alice \"$(oathtool -b --totp \"$SECRET\")\""
    )]
    Verify {
        /// The user.
        user: String,
        /// The code ('-' reads it from standard input, keeping it out of `ps`).
        code: String,
    },

    /// Print the current code of a user's authenticator (for testing a setup).
    Code {
        /// The user.
        user: String,
        /// Which authenticator (default: the first).
        #[arg(long)]
        name: Option<String>,
    },

    /// Show a user's QR code again (e.g. for a new phone).
    Qr {
        /// The user.
        user: String,
        /// Which authenticator (default: the first).
        #[arg(long)]
        name: Option<String>,
        /// The issuer shown in the app; use the one given at enrollment, if any, so the app
        /// replaces its entry instead of adding a second one.
        #[arg(long)]
        issuer: Option<String>,
        #[command(flatten)]
        images: QrImages,
    },

    /// Who is enrolled, how, and when they last logged in.
    Status {
        /// Only this user.
        user: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },

    /// Issue a new set of ten backup codes, voiding the old set.
    BackupCodes {
        /// The user.
        user: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },

    /// Stop accepting this user's second factor (their record is kept).
    Disable {
        /// The user.
        user: String,
    },

    /// Undo `disable`.
    Enable {
        /// The user.
        user: String,
    },

    /// Delete a user's record, or one authenticator of it.
    Remove {
        /// The user.
        user: String,
        /// Remove only this authenticator.
        #[arg(long)]
        name: Option<String>,
    },

    /// Accept an authenticator only after a login with given SSH keys.
    #[command(
        after_help = "Needs `ExposeAuthInfo yes` in sshd_config, so the PAM module learns which key \
was used.\n\nExamples:\n  \
  sshield bind-keys alice ~alice/.ssh/id_ed25519.pub\n  \
  sshield bind-keys alice --name yubikey-oath SHA256:52jls/RFRFy+PubI/1au9ilDJEPP1HA5XL7AIZ5aMsA\n  \
  sshield bind-keys alice --clear"
    )]
    BindKeys {
        /// The user.
        user: String,
        /// Fingerprints (`SHA256:...`, as `ssh-keygen -l` prints them) or public key files.
        #[arg(required_unless_present = "clear")]
        keys: Vec<String>,
        /// Which authenticator (default: the first).
        #[arg(long)]
        name: Option<String>,
        /// Unbind: accept the authenticator after any first factor again.
        #[arg(long, conflicts_with = "keys")]
        clear: bool,
    },

    /// Import users from pam_oath or google-authenticator.
    #[command(subcommand)]
    Import(ImportCommand),

    /// Write this host's users (secrets, backup-code hashes, login state) as one JSON
    /// document for a fleet server: `sshield-server user import --from-sshield FILE`.
    Export {
        /// Only this user (repeat for several). Default: every user in the store.
        #[arg(long = "user", value_name = "USER")]
        users: Vec<String>,
        /// Write to this new file (mode 0600; never over an existing one) instead of
        /// standard output.
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },

    /// Try sshield in a minute: a throwaway sshd on a loopback port that asks for your code.
    #[command(
        long_about = "Starts a throwaway OpenSSH server on a free port of 127.0.0.1, wired to \
pam_sshield with a temporary config and store, enrolls you (the user who ran sudo, else the \
current user), shows the QR code and the exact `ssh` command to try, then prints each allow or \
deny decision as it is made. Nothing on the system is changed: config, store, keys, sshd_config \
and a private copy of /etc/pam.d live in a temporary directory (sshd sees the copy through a \
private mount namespace), and the first factor is a throwaway key pair, so ~/.ssh is not used. \
Enter, end of input, Ctrl-C, SIGTERM or SIGHUP stop sshd and every session it started and remove \
the directory.\n\n\
It needs root (sshd switches to your user and runs PAM). Without root, or with --engine-only, it \
shows the engine alone: a throwaway store whose codes you type at the demo's own prompt.",
        after_help = "Examples:\n  \
  cargo build --release && sudo target/release/sshield demo\n  \
  sudo sshield demo                                  # the installed module\n  \
  sudo sshield demo --module ./libpam_sshield.so --sshd /usr/sbin/sshd\n  \
  sshield demo --engine-only                         # no sshd, no root\n\n\
Then, in another terminal, the command it prints, e.g.:\n  \
  ssh -p 40123 -i /tmp/sshield-demo-4242-0/client/id_ed25519 -o IdentitiesOnly=yes \\\n      \
-o UserKnownHostsFile=/tmp/sshield-demo-4242-0/client/known_hosts alice@127.0.0.1\n\n\
With --json, or when standard output is not a terminal, it also prints one line of JSON once \
sshd listens: {\"port\",\"user\",\"key\",\"known_hosts\",\"secret\",\"command\",\"dir\",\
\"log_file\",\"sshd_pid\"}.\n\n\
Exit status: 0 after a clean stop, 1 if something it needs is missing (the message says what to \
install), 2 on any other error. See docs/demo.md."
    )]
    Demo(DemoArgs),

    /// Configure this host's sshd and PAM for sshield, in a trial that undoes itself.
    #[command(
        long_about = "Writes the sshd drop-in (/etc/ssh/sshd_config.d/50-sshield.conf, or a marked \
block at the top of sshd_config when sshd includes no such directory), puts pam_sshield in sshd's \
PAM stack (after Debian's `@include common-auth`), and sets the policy flags given in \
/etc/sshield/sshield.toml. It shows the diff, keeps backups, checks the result with `sshd -t` and \
`sshd -T`, and reloads sshd; on any error it puts every file back.\n\n\
Every change starts as a trial: unless `sshield setup --confirm` is run within --try seconds \
from a NEW ssh session, through the sshd it reconfigured, whose own login passed the second \
factor, the old files come back and sshd is reloaded again by itself. So a mistake cannot lock you out: keep the session you ran setup from \
open, log in again in another terminal, and confirm from there.",
        after_help = "Examples:\n  \
  sshield setup --dry-run                         # show the diff, change nothing\n  \
  sshield setup                                   # a key or the password, then a code\n  \
  sshield setup --first-factor key --exempt 192.168.0.0/16 --group ssh-2fa\n  \
  sshield setup --mode forcecommand               # key, then `sshield login`\n  \
  sshield setup --confirm                         # from a NEW ssh session, within --try seconds\n  \
  sshield setup --undo                            # put back every setup still in force, any time\n  \
  sshield setup --status\n\n\
Refused while the admin running it (--admin, else $SUDO_USER, else the ssh session's user) would \
need a code but has no active record: enroll first (sshield enroll NAME), or pass \
--allow-unenrolled-admin if you have another way in.\n\n\
Exit status: 0 done (or nothing to change), 1 refused, 2 error. See docs/setup.md."
    )]
    Setup(SetupArgs),

    /// Join this host to a fleet server with a one-time token.
    #[command(
        long_about = "Makes this host's ed25519 key pair (a root-only file, mode 0600, under the \
state dir: host.key beside the store), registers its public key with the server (POST /v1/join) \
using the one-time token that `sshield-server host add NAME` printed, and writes a [server] \
section into the config, keeping its comments. For an https:// URL the server's certificate is \
pinned: its SHA-256 is saved and later connections accept only that certificate (check it \
against the server's with --fingerprint, or trust a CA with --ca instead). Plain http:// is \
refused except to a loopback address.\n\n\
Then `sshield daemon` asks the server about every user who has no record in the local store \
(local-only users such as root or a break-glass account stay local), and applies `failmode` \
only when no server URL answers.",
        after_help = "Examples:\n  \
  sshield join https://auth.example.org:8443 sshj_5f2c...           # pins what it sees, prints it\n  \
  sshield join https://auth.example.org:8443 - --name web1 < token.txt\n  \
  sshield join https://auth.example.org:8443 sshj_... --fingerprint sha256:3b1f...\n  \
  sshield join https://auth.internal:8443 sshj_... --ca /etc/ssl/internal-ca.pem\n  \
  sshield --config ./test.toml join http://127.0.0.1:8080 sshj_...  # a test server on loopback\n\n\
Exit status: 0 joined, 1 refused by the server (token unknown, used, expired or for another \
name), 2 error (unreachable, bad URL, already joined). See docs/server.md and docs/config.md."
    )]
    Join(JoinArgs),

    /// Serve `sshield login` on the config's Unix socket (run as root, by systemd).
    #[command(
        long_about = "Serves the socket named by the config's `socket` (default \
/run/sshield/sshield.sock, mode 0666) for `sshield login`, the ForceCommand helper, which runs as \
the logging-in user and so must never read the secrets. The daemon runs as root with the same \
engine, policy, rate limits and log lines as the PAM module, and answers each caller only about \
themselves: the user comes from the kernel (SO_PEERCRED), the source address from the sshd \
process that owns the caller's session (/proc), never from the request or the environment.",
        after_help = "Run it from systemd (packaging/systemd/sshield.service; with sshield.socket for \
socket activation, where systemd creates the socket and passes it as fd 3). The protocol is one \
line of JSON each way, at most 4096 bytes, versioned: see docs/daemon.md.\n\n\
Examples:\n  \
  sshield daemon\n  \
  sshield --config /etc/sshield/sshield.toml daemon\n\n\
Log lines (syslog authpriv, tag sshield, and the config's log_file):\n  \
  allow user=alice rhost=203.0.113.9 service=sshield-login method=totp reason=ok\n  \
  deny user=alice rhost=203.0.113.9 service=sshield-login method=code reason=wrong-code\n\n\
Exit status: 2 if the config is broken or the socket cannot be served; it does not exit otherwise."
    )]
    Daemon {
        /// Where syslog lines go (tests point this at a socket of their own).
        #[arg(long, hide = true, value_name = "PATH", default_value = crate::syslog::DEV_LOG)]
        syslog_socket: PathBuf,
    },

    /// The ForceCommand helper: ask for a second factor, then run the user's shell or command.
    #[command(
        long_about = "Run by sshd as `ForceCommand /usr/bin/sshield --config CFG login` after sshd \
accepted the first factor (usually a public key). It asks `sshield daemon` whether this user, \
from the address sshd accepted them from, needs a second factor; if so it prompts \
\"Verification code: \" on the terminal (config login_tries and login_timeout), and on success \
replaces itself with what the client asked for: the login shell, or the user's shell -c \
\"$SSH_ORIGINAL_COMMAND\" (scp, rsync, git), or the config's sftp_server with the config's \
sftp_server_args for internal-sftp (other arguments, the client's or sshd's, are refused).\n\n\
Since it runs as the user, it reads only the config --config names (else the default path), \
never SSHIELD_CONFIG, and only if that file is root's and writable by root alone, in \
directories root alone can change; otherwise every login is refused.",
        after_help = "sshd_config:\n  \
  ForceCommand /usr/bin/sshield --config /etc/sshield/sshield.toml login\n  \
  DisableForwarding yes        # a tunnel (ssh -N -L) never runs the helper\n  \
  AcceptEnv SSHIELD_CODE       # only with accept_env_code = true\n\n\
With no terminal (scp, sftp, git, rsync) the code comes from the client's SSHIELD_CODE when the \
config says accept_env_code = true:\n  \
  scp -o SetEnv=SSHIELD_CODE=123456 file host:\n\
otherwise the login is refused with a line on stderr saying so.\n\n\
Push (fleet users, config [push]): an autopush user, or one who presses Enter at the prompt where \
push.enabled is set, sees \"Pushed a login request to your phone (pick 47)... \" and the session \
starts as soon as the phone approves (\"Success. Logging you in...\"); a code typed meanwhile is \
checked instead, and Ctrl-C stops waiting and asks for a code. With no terminal, a push without \
a number (the approval page shows the command) only where push.without_number = true.\n\n\
Ctrl-C, Ctrl-\\, Ctrl-Z, Ctrl-D, a hang-up or the timeout at the prompt end the session without \
running anything. If the daemon cannot be reached, failmode decides: \"secure\" refuses, \"safe\" \
lets the user in and logs it loudly. A broken config always refuses.\n\n\
ForceCommand runs through the user's shell, which may read the user's dotfiles first; the PAM \
module with AuthenticationMethods is the stronger setup. See docs/forcecommand.md.\n\n\
Exit status: 1 refused (reason on stderr); on success the shell or command's own."
    )]
    Login {
        /// Where syslog lines go (tests point this at a socket of their own).
        #[arg(long, hide = true, value_name = "PATH", default_value = crate::syslog::DEV_LOG)]
        syslog_socket: PathBuf,
    },

    /// Check this host's sshd, PAM, config, store and clock for mistakes, with the fix for each.
    #[command(
        long_about = "Reads the live host and prints one finding per line: `SEVERITY  what is \
wrong — how to fix  [check]`, severity ok, info, warn or error. It checks sshd_config (UsePAM, \
KbdInteractiveAuthentication, AuthenticationMethods, PermitRootLogin, and forwarding, \
PermitUserEnvironment and AcceptEnv when `ForceCommand sshield login` is used), the PAM stack (pam_sshield \
present, its order against pam_unix, a barrier after the password, its arguments), the config \
and store permissions, exempt networks, users who must use a second factor but are not \
enrolled, the clock, and the daemon socket. It changes nothing. Every file it reads can be \
pointed elsewhere. See docs/doctor.md for every check.",
        after_help = "Exit status: 0 nothing worse than info, 1 a warning, 2 an error.\n\n\
Examples:\n  \
  sudo sshield doctor\n  \
  sudo sshield doctor --sshd-t              # ask sshd -T for the effective sshd config\n  \
  sshield doctor --json | jq '.[] | select(.severity != \"ok\")'\n  \
  sshield --config ./sshield.toml doctor --sshd-config ./sshd_config --pam-service ./pam.d/sshd \\\n      \
--passwd ./passwd --group-file ./group     # check copies, not the host"
    )]
    Doctor(DoctorArgs),

    /// Recent second-factor decisions on this host, newest first (who, from where, how).
    #[command(
        after_help = "On a host that joined a fleet (a [server] section), reads the server's \
audit of this host (signed with the host key, so as root): the server's decisions, and the \
offline uses and failmode decisions this host reported; never another host's. With --local, \
or on a lone host: reads the config's log_file if it sets one, else the systemd journal \
(root's authpriv entries only: a local user can log under any name, but not as root), or the \
syslog file given with --file (its lines can be forged by anyone who can write to syslog).\n\n\
Examples:\n  \
  sshield log                                  # the last 100 decisions\n  \
  sshield log --user alice --since 1h --failed\n  \
  sshield log --summary --since 1d              # per user and source: allowed, denied, last\n  \
  sshield log --file /var/log/auth.log --json | jq 'select(.outcome == \"denied\")'\n\n\
Exit status: 0 listed (even if nothing matched), 2 the log cannot be read (or no server \
answered). See docs/log.md and docs/daemon.md (\"sshield log on a fleet host\")."
    )]
    Log(LogArgs),

    /// Write man pages and shell completions into a directory (for packagers).
    #[command(hide = true)]
    GenerateDocs {
        /// Output directory.
        dir: PathBuf,
    },
}

/// `sshield demo`'s options.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Only the engine: no sshd, no root; codes are typed at the demo's own prompt.
    #[arg(long)]
    pub engine_only: bool,
    /// The PAM module (default: libpam_sshield.so next to this program, else pam_sshield.so in
    /// the multiarch security directories).
    #[arg(long, value_name = "PATH")]
    pub module: Option<PathBuf>,
    /// The OpenSSH server binary.
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    pub sshd: PathBuf,
    /// Also print one line of JSON with the port, user, key, secret and command (always when
    /// standard output is not a terminal).
    #[arg(long)]
    pub json: bool,
}

/// `sshield log`'s options.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Only this user's decisions.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Only those logged by this host (a syslog file collected from several hosts).
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Only those in this past span (`90s`, `1h`, `2d`).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Only denials.
    #[arg(long)]
    pub failed: bool,
    /// One line per user and source instead: how many allowed and denied, and the last.
    #[arg(long)]
    pub summary: bool,
    /// At most this many decisions (not with --summary).
    #[arg(long, default_value_t = 100, conflicts_with = "summary")]
    pub limit: usize,
    /// Read this syslog-style file (`TIME HOST PROGRAM[PID]: MESSAGE`, RFC 3339 times)
    /// instead of the log_file or the journal.
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// One JSON object per line instead of text.
    #[arg(long)]
    pub json: bool,
    /// On a fleet host: read this host's own logs, not the server's audit of it.
    #[arg(long)]
    pub local: bool,
}

/// `sshield doctor`'s options: every path it reads.
#[derive(Debug, Args)]
pub(crate) struct DoctorArgs {
    /// Print a JSON array of {"severity","check","message","fix"}, and nothing else, on stdout.
    #[arg(long)]
    pub json: bool,
    /// sshd's config; `Include` paths are relative to its directory, as /etc/ssh is for sshd.
    #[arg(long, value_name = "PATH", default_value = "/etc/ssh/sshd_config")]
    pub sshd_config: PathBuf,
    /// Take the effective sshd config from `SSHD -T -f PATH` (needs root) instead of parsing
    /// the files; falls back to parsing if sshd fails. Match blocks are always read from the files.
    #[arg(long)]
    pub sshd_t: bool,
    /// The sshd binary for --sshd-t.
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    pub sshd_binary: PathBuf,
    /// sshd's PAM service file; `@include` and `include` are relative to its directory.
    #[arg(long, value_name = "PATH", default_value = "/etc/pam.d/sshd")]
    pub pam_service: PathBuf,
    /// Local users, to find those who must use a second factor but are not enrolled.
    #[arg(long, value_name = "PATH", default_value = "/etc/passwd")]
    pub passwd: PathBuf,
    /// Local groups, for the config's require_groups and exempt_groups.
    #[arg(long, value_name = "PATH", default_value = "/etc/group")]
    pub group_file: PathBuf,
    /// The timedatectl binary that says whether the clock is synchronized.
    #[arg(long, value_name = "PATH", default_value = "timedatectl")]
    pub timedatectl: PathBuf,
    /// The chronyc binary, asked `-c tracking` for the clock's offset.
    #[arg(long, value_name = "PATH", default_value = "chronyc")]
    pub chronyc: PathBuf,
}

/// `sshield setup`'s options.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("action").args(["confirm", "undo", "status", "watch_trial", "boot_guard"])))]
pub(crate) struct SetupArgs {
    /// How sshd hands logins to sshield: PAM (keyboard-interactive), or a ForceCommand after
    /// a public key (needs `sshield daemon`).
    #[arg(long, value_enum, default_value_t = SetupMode::Pam)]
    pub mode: SetupMode,
    /// PAM mode: what comes before the code. `any`: a public key or the password, then the
    /// code. `password`: password, then code (a key alone is no longer enough). `key`: public
    /// key, then code (no password).
    #[arg(long, value_enum, default_value_t = FirstFactor::Any)]
    pub first_factor: FirstFactor,
    /// A source network that needs no code (repeat for more; replaces policy.exempt_networks).
    #[arg(long, value_name = "CIDR")]
    pub exempt: Vec<String>,
    /// Only members of this group must use a code (repeat for more; replaces
    /// policy.require_groups).
    #[arg(long, value_name = "NAME")]
    pub group: Vec<String>,
    /// When the daemon cannot be reached: `secure` denies, `safe` allows and logs.
    #[arg(long, value_enum)]
    pub failmode: Option<FailmodeArg>,
    /// Users who must use a code but are not enrolled: `deny` or `allow`.
    #[arg(long, value_enum)]
    pub unenrolled: Option<UnenrolledArg>,
    /// With --unenrolled deny: let unenrolled users in until the end of this day (UTC),
    /// e.g. 2026-12-31.
    #[arg(long, value_name = "DATE")]
    pub allow_until: Option<String>,
    /// Show what would change, check it, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Seconds until the trial undoes itself unless confirmed (10 to 3600).
    #[arg(long = "try", value_name = "SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub try_seconds: u64,
    /// The admin who must still be able to log in (default: $SUDO_USER, else the ssh
    /// session's user, else the current user).
    #[arg(long, value_name = "USER")]
    pub admin: Option<String>,
    /// Go on although the admin has no active record and would need a code.
    #[arg(long)]
    pub allow_unenrolled_admin: bool,

    /// Keep the trial's changes (run from a new ssh session, through the reconfigured sshd,
    /// whose own login passed the second factor).
    #[arg(long)]
    pub confirm: bool,
    /// Put back every change setup made that is still in force, newest first, and reload sshd.
    #[arg(long)]
    pub undo: bool,
    /// Say whether a trial is running, and what the last setup changed.
    #[arg(long)]
    pub status: bool,
    /// The trial's watcher (started by setup itself).
    #[arg(long, hide = true)]
    pub watch_trial: bool,
    /// The trial's boot guard (run by sshield-setup-trial.service before sshd starts).
    #[arg(long, hide = true)]
    pub boot_guard: bool,

    /// sshd's main config file.
    #[arg(long, value_name = "PATH", default_value = "/etc/ssh/sshd_config")]
    pub sshd_config: PathBuf,
    /// sshd's PAM service file.
    #[arg(long, value_name = "PATH", default_value = "/etc/pam.d/sshd")]
    pub pam_service: PathBuf,
    /// The sshd binary, for `sshd -t` and `sshd -T`.
    #[arg(long, value_name = "PATH", default_value = "/usr/sbin/sshd")]
    pub sshd_binary: PathBuf,
    /// How to make sshd reread its config, run with /bin/sh -c (default: `systemctl reload
    /// ssh` under systemd, else SIGHUP to the pid in /run/sshd.pid).
    #[arg(long, value_name = "COMMAND")]
    pub reload_command: Option<String>,
    /// The module as the PAM line names it: a file name in the security dir, or a full path.
    #[arg(long, value_name = "PATH", default_value = "pam_sshield.so")]
    pub module: String,
    /// Where the trial's boot guard goes: a systemd unit, enabled while the trial lasts, that
    /// undoes an unconfirmed trial after a reboot (default: /etc/systemd/system when systemd
    /// runs; none otherwise).
    #[arg(long, value_name = "DIR")]
    pub systemd_unit_dir: Option<PathBuf>,
    /// Where backups and the trial's state are kept (root-only).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/sshield/setup")]
    pub state_dir: PathBuf,
    /// Print --status as JSON.
    #[arg(long, requires = "status")]
    pub json: bool,
}

/// `sshield setup --mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum SetupMode {
    /// pam_sshield in sshd's PAM stack, asked through keyboard-interactive.
    Pam,
    /// `ForceCommand sshield login` after a public key, answered by `sshield daemon`.
    Forcecommand,
}

/// `sshield setup --first-factor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FirstFactor {
    /// A public key or the password, then the code (ExposeAuthInfo tells the module which).
    Any,
    /// The account password (pam_unix), then the code.
    Password,
    /// A public key, then the code; no password.
    Key,
}

/// `sshield setup --failmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailmodeArg {
    Secure,
    Safe,
}

/// `sshield setup --unenrolled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum UnenrolledArg {
    Deny,
    Allow,
}

/// `sshield enroll`'s options.
#[derive(Debug, Args)]
pub(crate) struct EnrollArgs {
    /// The user.
    pub user: String,
    /// Time-based codes (the default).
    #[arg(long, conflicts_with = "hotp")]
    pub totp: bool,
    /// Counter-based codes (hardware tokens).
    #[arg(long)]
    pub hotp: bool,
    /// HMAC hash; most apps only support sha1.
    #[arg(long, value_enum, default_value_t = AlgorithmArg::Sha1)]
    pub algorithm: AlgorithmArg,
    /// Digits per code (6-8).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u32).range(6..=8))]
    pub digits: u32,
    /// TOTP seconds per code.
    #[arg(long, default_value_t = 30, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub period: u64,
    /// HOTP first counter.
    #[arg(long, default_value_t = 0, requires = "hotp")]
    pub counter: u64,
    /// Use this base32 secret instead of making one ('-' reads it from standard input). On
    /// the command line it is in `ps` for every local user: prefer '-' or --secret-file.
    #[arg(long, value_name = "BASE32", conflicts_with = "secret_file")]
    pub secret: Option<String>,
    /// Read the base32 secret from this file (closed to group and others, e.g. 0600), as
    /// config management writes it; surrounding whitespace is ignored.
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,
    /// Name of this authenticator, to have several (e.g. phone, yubikey-oath).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// Replace an authenticator of the same name that has a different secret.
    #[arg(long)]
    pub replace: bool,
    /// The issuer shown in the app (default: config `issuer`, else the host name).
    #[arg(long)]
    pub issuer: Option<String>,
    /// Confirm at once with this code from the app.
    #[arg(long, value_name = "CODE", conflicts_with = "no_confirm")]
    pub confirm: Option<String>,
    /// Activate without a first code (when the secret is known to be right).
    #[arg(long)]
    pub no_confirm: bool,
    /// Print {"user","secret","uri","backup_codes"} as JSON, and nothing else, on stdout.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub images: QrImages,
}

/// Where to save QR code images.
#[derive(Debug, Args)]
pub(crate) struct QrImages {
    /// Also write the QR code as a PNG image.
    #[arg(long, value_name = "FILE")]
    pub qr_png: Option<PathBuf>,
    /// Also write the QR code as an SVG image.
    #[arg(long, value_name = "FILE")]
    pub qr_svg: Option<PathBuf>,
}

/// HMAC hash names on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum AlgorithmArg {
    /// HMAC-SHA-1.
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

/// `sshield import`'s formats.
#[derive(Debug, Subcommand)]
pub(crate) enum ImportCommand {
    /// pam_oath's usersfile, e.g. /etc/users.oath (HOTP, HOTP/T30, HOTP/T60/8...).
    #[command(name = "users-oath")]
    UsersOath {
        /// The usersfile.
        file: PathBuf,
        /// Replace authenticators that exist with a different secret.
        #[arg(long)]
        replace: bool,
        /// Check the file and show what would be imported, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// A user's ~/.google_authenticator file.
    #[command(name = "google-authenticator")]
    GoogleAuthenticator {
        /// The file.
        file: PathBuf,
        /// Whose file it is.
        #[arg(long)]
        user: String,
        /// Replace an authenticator that exists with a different secret.
        #[arg(long)]
        replace: bool,
        /// Check the file and show what would be imported, changing nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `sshield join`.
#[derive(Debug, Args)]
pub(crate) struct JoinArgs {
    /// The server's URL (`https://HOST[:PORT]`; `http://` only to a loopback address).
    pub url: String,
    /// The one-time token from `sshield-server host add NAME` ('-' reads it from standard input).
    pub token: String,
    /// The name the token was made for (default: this host's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Trust any certificate this CA (PEM) issued for the URL's name, instead of pinning one.
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    pub ca: Option<PathBuf>,
    /// Join only if the server's certificate has this SHA-256 (hex, colons allowed).
    #[arg(long, value_name = "SHA256")]
    pub fingerprint: Option<String>,
    /// Where to make the host key (default: host.key in the state dir, beside the store).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
}
