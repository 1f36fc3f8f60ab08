//! What `sshield setup` writes: pure functions from the files as they are to the files as they
//! should be. No I/O here, so every rule is tested on text, and running setup twice with the
//! same options yields the same text (which is how setup knows there is nothing to do).

use std::path::{Path, PathBuf};

use sshield_core::Config;
use toml_edit::{value, Array, DocumentMut, Item, Table};

use crate::cli::{FirstFactor, SetupMode};
use crate::commands::doctor::sshd::wildcard;

/// The drop-in's file name. `50-`: after a distribution's `10-`/`20-` defaults but before
/// anything an admin numbers higher on purpose; sshd keeps the first value it reads, so a file
/// that sorts earlier and sets the same keyword wins (setup checks with `sshd -T`).
pub(crate) const DROP_IN_NAME: &str = "50-sshield.conf";

/// The marked block setup puts at the top of sshd_config when sshd includes no drop-in dir.
const BLOCK_BEGIN: &str = "# BEGIN sshield setup (`sshield setup --undo` removes this block)";
const BLOCK_END: &str = "# END sshield setup";

/// The comment setup writes above its PAM line, and after the `@include common-auth` it turns
/// off for `--first-factor key`.
const PAM_COMMENT: &str =
    "# sshield setup: the second factor (`sshield setup --undo` puts the old file back)";
const PAM_DISABLED_SUFFIX: &str = "# sshield setup: key + code, no password";

/// The example config, the starting point when there is no config file yet.
pub(crate) const EXAMPLE_CONFIG: &str = include_str!("../../../../../examples/sshield.toml");

/// What the admin asked for, as far as the files are concerned.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub mode: SetupMode,
    pub first_factor: FirstFactor,
    /// The PAM module as the line names it (`pam_sshield.so` or a full path).
    pub module: String,
    /// The sshield config path; named in the PAM line unless it's the default, and always in
    /// the ForceCommand.
    pub config: PathBuf,
    /// Whether `config` is the default path (then the PAM line need not name it).
    pub config_is_default: bool,
    /// The `sshield` binary the ForceCommand runs.
    pub sshield_binary: PathBuf,
}

/// Why setup cannot write a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A path that must go into an sshd or PAM line as one word.
fn word(path: &Path, what: &str) -> Result<String, PlanError> {
    let text = path.to_string_lossy();
    if text.is_empty() || text.chars().any(|c| c.is_whitespace() || c == '"') {
        return Err(PlanError(format!(
            "{what} {text:?} has a space or quote, which sshd and PAM lines cannot carry; \
move it to a path without one"
        )));
    }
    Ok(text.into_owned())
}

/// The sshd_config lines for the mode.
pub(crate) fn sshd_lines(w: &Wanted) -> Result<Vec<String>, PlanError> {
    let lines = match (w.mode, w.first_factor) {
        (SetupMode::Pam, first) => vec![
            "UsePAM yes".to_owned(),
            "KbdInteractiveAuthentication yes".to_owned(),
            // Tells the module whether a key came first (SSH_AUTH_INFO_0 in the PAM env).
            "ExposeAuthInfo yes".to_owned(),
            match first {
                FirstFactor::Any => {
                    "AuthenticationMethods publickey,keyboard-interactive:pam keyboard-interactive:pam"
                }
                FirstFactor::Password => "AuthenticationMethods keyboard-interactive:pam",
                FirstFactor::Key => "AuthenticationMethods publickey,keyboard-interactive:pam",
            }
            .to_owned(),
        ],
        (SetupMode::Forcecommand, _) => {
            let binary = word(&w.sshield_binary, "the sshield binary")?;
            // Always with --config, the default path too: the helper must never take its
            // config from anywhere the client can reach (issue 9, item 5: `SSHIELD_CONFIG`
            // through `AcceptEnv SSHIELD_*`).
            let command = format!(
                "ForceCommand {binary} --config {} login",
                word(&w.config, "the config path")?
            );
            vec![
                "AuthenticationMethods publickey".to_owned(),
                command,
                // A tunnel (ssh -N -L), agent or X11 forwarding never runs the ForceCommand.
                "DisableForwarding yes".to_owned(),
            ]
        }
    };
    Ok(lines)
}

/// The setup in words.
pub(crate) fn describe(w: &Wanted) -> &'static str {
    match (w.mode, w.first_factor) {
        (SetupMode::Pam, FirstFactor::Any) => "a public key or the password, then a code (PAM)",
        (SetupMode::Pam, FirstFactor::Password) => "password, then a code (PAM)",
        (SetupMode::Pam, FirstFactor::Key) => "public key, then a code (PAM)",
        (SetupMode::Forcecommand, _) => "public key, then a code (ForceCommand sshield login)",
    }
}

/// The whole drop-in file.
pub(crate) fn drop_in(w: &Wanted) -> Result<String, PlanError> {
    let mut text = format!(
        "# Written by `sshield setup`: {}.\n\
# Run `sshield setup` again to change it, `sshield setup --undo` to put back what was here.\n\
# sshd keeps the first value it reads for each keyword: this file must be included before\n\
# sshd_config's own settings (Debian's sshd_config includes sshd_config.d/*.conf first).\n",
        describe(w)
    );
    for line in sshd_lines(w)? {
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// The directory sshd_config includes `*.conf`-like files from, before any `Match`, where a
/// file named [`DROP_IN_NAME`] would be read; relative paths are taken relative to the
/// config's directory, as `sshield doctor` does.
pub(crate) fn include_dir(sshd_config: &str, config_path: &Path) -> Option<PathBuf> {
    let base = config_path.parent().unwrap_or(Path::new("/"));
    for line in sshd_config.lines() {
        let mut words = line.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if keyword.starts_with('#') {
            continue;
        }
        if keyword.eq_ignore_ascii_case("match") {
            // Settings included from here on apply only to the matched connections.
            return None;
        }
        if !keyword.eq_ignore_ascii_case("include") {
            continue;
        }
        for pattern in words {
            let pattern = base.join(pattern.trim_matches('"'));
            let (Some(dir), Some(name)) = (pattern.parent(), pattern.file_name()) else {
                continue;
            };
            let name = name.to_string_lossy();
            let dir_text = dir.to_string_lossy();
            if !dir_text.contains(['*', '?']) && wildcard(&name, DROP_IN_NAME) {
                return Some(dir.to_owned());
            }
        }
    }
    None
}

/// sshd_config without setup's marked block.
pub(crate) fn sshd_config_without_block(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut inside = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        if trimmed == BLOCK_BEGIN {
            inside = true;
        } else if inside && trimmed == BLOCK_END {
            inside = false;
        } else if !inside {
            out.push_str(line);
        }
    }
    out
}

/// sshd_config with setup's block at the very top (first value wins), replacing an older one.
pub(crate) fn sshd_config_with_block(text: &str, w: &Wanted) -> Result<String, PlanError> {
    let rest = sshd_config_without_block(text);
    let mut out = format!(
        "{BLOCK_BEGIN}\n# {}. First in the file, because sshd keeps the first value it reads.\n",
        describe(w)
    );
    for line in sshd_lines(w)? {
        out.push_str(&line);
        out.push('\n');
    }
    out.push_str(BLOCK_END);
    out.push('\n');
    out.push_str(&rest);
    Ok(out)
}

/// Whether a PAM line loads pam_sshield.
fn is_sshield_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let Some(first) = words.next() else {
        return false;
    };
    if first.starts_with('#') {
        return false;
    }
    let mut rest: Vec<&str> = words.collect();
    // `auth [success=ok default=die] module`: the control may hold spaces inside brackets.
    if rest.first().is_some_and(|w| w.starts_with('[')) {
        let end = rest.iter().position(|w| w.ends_with(']')).unwrap_or(0);
        rest.drain(..end);
    }
    rest.get(1).is_some_and(|module| {
        let name = Path::new(module)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.strip_suffix(".so").unwrap_or(&name) == "pam_sshield"
    })
}

fn is_common_auth_include(line: &str) -> bool {
    line.split_whitespace().collect::<Vec<_>>() == ["@include", "common-auth"]
}

fn is_auth_line(line: &str) -> bool {
    matches!(line.split_whitespace().next(), Some("auth" | "-auth")) || is_common_auth_include(line)
}

/// The PAM line setup writes: `auth required MODULE [config=...]`.
pub(crate) fn pam_line(w: &Wanted) -> Result<String, PlanError> {
    pam_line_with(w, "required", "")
}

/// The line `--first-factor any` puts before the password: after a key, it asks the code and
/// ends the stack on success (`done`) or failure (`die`); without a key the module answers
/// PAM_IGNORE (`ignore`) and the password and the line after it run.
fn pam_key_line(w: &Wanted) -> Result<String, PlanError> {
    pam_line_with(
        w,
        "[success=done ignore=ignore default=die]",
        " after_publickey",
    )
}

fn pam_line_with(w: &Wanted, control: &str, args: &str) -> Result<String, PlanError> {
    let module = word(Path::new(&w.module), "the module")?;
    let mut line = format!("auth {control} {module}{args}");
    if !w.config_is_default {
        line.push_str(&format!(" config={}", word(&w.config, "the config path")?));
    }
    Ok(line)
}

/// The PAM service file as setup wants it. Any pam_sshield line already there is replaced (so
/// running setup twice changes nothing), and a `@include common-auth` setup turned off earlier
/// is turned back on before deciding anew.
pub(crate) fn pam_service(text: &str, path: &Path, w: &Wanted) -> Result<String, PlanError> {
    let mut lines: Vec<String> = Vec::new();
    for line in text.lines() {
        if is_sshield_line(line) || line.trim() == PAM_COMMENT {
            continue;
        }
        match line.strip_suffix(PAM_DISABLED_SUFFIX) {
            Some(rest) if rest.trim_start().starts_with('#') => {
                lines.push(rest.trim_start().trim_start_matches('#').trim().to_owned());
            }
            _ => lines.push(line.to_owned()),
        }
    }
    let ours = [PAM_COMMENT.to_owned(), pam_line(w)?];
    // The password step: Debian's `@include common-auth`, else the auth lines there are.
    let password_step = |lines: &[String]| {
        let include = lines.iter().position(|l| is_common_auth_include(l));
        let first = include.or_else(|| lines.iter().position(|l| is_auth_line(l)));
        let last = include.or_else(|| lines.iter().rposition(|l| is_auth_line(l)));
        first.zip(last).ok_or_else(|| {
            PlanError(format!(
                "{} has no auth lines and no `@include common-auth`, so there is no password \
step to put the code after; add `{}` after your password module by hand (docs/pam.md), or use \
--first-factor key",
                path.display(),
                ours[1]
            ))
        })
    };
    match (w.mode, w.first_factor) {
        (SetupMode::Forcecommand, _) => {}
        (SetupMode::Pam, FirstFactor::Password) => {
            // After the password: Debian's common-auth ends the stack at a wrong password, so
            // the code is only asked (and used up) after a right one.
            let (_, last) = password_step(&lines)?;
            lines.splice(last + 1..last + 1, ours.clone());
        }
        (SetupMode::Pam, FirstFactor::Any) => {
            // The code after a key, before the password; then the code after the password.
            let (first, last) = password_step(&lines)?;
            lines.splice(last + 1..last + 1, [ours[1].clone()]);
            lines.splice(first..first, [ours[0].clone(), pam_key_line(w)?]);
        }
        (SetupMode::Pam, FirstFactor::Key) => {
            let at = lines
                .iter()
                .position(|l| is_common_auth_include(l))
                .ok_or_else(|| {
                    PlanError(format!(
                        "{} has no `@include common-auth` to replace: with --first-factor key, \
the code must be the only auth step after the key. Edit it by hand (docs/pam.md: \"Public key, \
then a code\"), or use --first-factor password",
                        path.display()
                    ))
                })?;
            let disabled = format!("#{}   {PAM_DISABLED_SUFFIX}", lines[at].trim());
            lines.splice(at..at + 1, [disabled, ours[0].clone(), ours[1].clone()]);
        }
    }
    let mut out = lines.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok(out)
}

/// Policy changes from the command line; `None` leaves the config's value alone.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyEdits {
    pub exempt_networks: Option<Vec<String>>,
    pub require_groups: Option<Vec<String>>,
    pub failmode: Option<&'static str>,
    pub unenrolled: Option<&'static str>,
    pub allow_until: Option<String>,
}

/// The sshield config with `edits` applied, keeping the admin's comments and layout; starts
/// from the example config when there is none. The result is parsed as the front ends will,
/// so a bad value is refused here, naming the flag.
pub(crate) fn sshield_config(
    existing: Option<&str>,
    path: &Path,
    edits: &PolicyEdits,
) -> Result<String, PlanError> {
    let base = existing.unwrap_or(EXAMPLE_CONFIG);
    let mut doc: DocumentMut = base.parse().map_err(|e| {
        PlanError(format!(
            "{} is not valid TOML ({e}); fix it, or run `sshield doctor`",
            path.display()
        ))
    })?;
    if let Some(mode) = edits.failmode {
        set(doc.as_table_mut(), "failmode", value(mode));
    }
    let touches_policy = edits.exempt_networks.is_some()
        || edits.require_groups.is_some()
        || edits.unenrolled.is_some()
        || edits.allow_until.is_some();
    if !touches_policy {
        return checked(doc.to_string(), path);
    }
    let policy = doc
        .entry("policy")
        .or_insert_with(|| Item::Table(Table::new()))
        .as_table_mut()
        .ok_or_else(|| {
            PlanError(format!(
                "{}: `policy` is not a table; make it a [policy] section",
                path.display()
            ))
        })?;
    if let Some(networks) = &edits.exempt_networks {
        for net in networks {
            let ok = net.parse::<ipnet::IpNet>().is_ok() || net.parse::<std::net::IpAddr>().is_ok();
            if !ok {
                return Err(PlanError(format!(
                    "--exempt {net:?} is not a network: write a CIDR such as 192.168.0.0/16 or \
an address"
                )));
            }
        }
        set(policy, "exempt_networks", value(array(networks)));
    }
    if let Some(groups) = &edits.require_groups {
        set(policy, "require_groups", value(array(groups)));
    }
    if let Some(unenrolled) = edits.unenrolled {
        set(policy, "unenrolled", value(unenrolled));
    }
    if let Some(date) = &edits.allow_until {
        let parsed: toml_edit::Datetime = date.parse().map_err(|_| {
            PlanError(format!(
                "--allow-until {date:?} is not a date: write it as 2026-12-31"
            ))
        })?;
        if parsed.date.is_none() || parsed.time.is_some() {
            return Err(PlanError(format!(
                "--allow-until {date:?} must be a date alone, such as 2026-12-31"
            )));
        }
        set(policy, "allow_until", value(parsed));
    }
    checked(doc.to_string(), path)
}

/// `text` if the front ends will load it.
fn checked(text: String, path: &Path) -> Result<String, PlanError> {
    Config::parse(&text, path)
        .map_err(|e| PlanError(format!("the config would not load after the change: {e}")))?;
    Ok(text)
}
fn array(items: &[String]) -> Array {
    items.iter().map(String::as_str).collect()
}

/// Sets `key` in place, keeping the comments around it (above the key, and after the value:
/// `= []   # e.g. ...`).
fn set(table: &mut Table, key: &str, item: Item) {
    match (table.get_mut(key).and_then(Item::as_value_mut), item) {
        (Some(old), Item::Value(mut new)) => {
            *new.decor_mut() = old.decor().clone();
            *old = new;
        }
        (_, item) => {
            table.insert(key, item);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]

    use super::*;

    /// Debian 12's /etc/pam.d/sshd, shortened but in its order.
    const DEBIAN_PAM: &str = "# PAM configuration for the Secure Shell service

# Standard Un*x authentication.
@include common-auth

# Disallow non-root logins when /etc/nologin exists.
account    required     pam_nologin.so

# Standard Un*x authorization.
@include common-account
session [success=ok ignore=ignore module_unknown=ignore default=bad]        pam_selinux.so close
@include common-session
@include common-password
";

    /// Debian 12's /etc/ssh/sshd_config, its first lines.
    const DEBIAN_SSHD: &str = "# This is the sshd server system-wide configuration file.

Include /etc/ssh/sshd_config.d/*.conf

#Port 22
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
Subsystem\tsftp\t/usr/lib/openssh/sftp-server
";

    fn wanted(mode: SetupMode, first: FirstFactor) -> Wanted {
        Wanted {
            mode,
            first_factor: first,
            module: "pam_sshield.so".into(),
            config: "/etc/sshield/sshield.toml".into(),
            config_is_default: true,
            sshield_binary: "/usr/bin/sshield".into(),
        }
    }

    #[test]
    fn password_mode_puts_the_module_right_after_common_auth() {
        let w = wanted(SetupMode::Pam, FirstFactor::Password);
        let out = pam_service(DEBIAN_PAM, Path::new("/etc/pam.d/sshd"), &w).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let at = lines
            .iter()
            .position(|l| *l == "@include common-auth")
            .unwrap();
        assert_eq!(lines[at + 1], PAM_COMMENT);
        assert_eq!(lines[at + 2], "auth required pam_sshield.so");
        assert_eq!(out.lines().count(), DEBIAN_PAM.lines().count() + 2);
        // Twice is once.
        assert_eq!(pam_service(&out, Path::new("x"), &w).unwrap(), out);
    }

    #[test]
    fn any_mode_asks_after_a_key_or_after_the_password() {
        let w = wanted(SetupMode::Pam, FirstFactor::Any);
        let out = pam_service(DEBIAN_PAM, Path::new("/etc/pam.d/sshd"), &w).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        let at = lines
            .iter()
            .position(|l| *l == "@include common-auth")
            .unwrap();
        assert_eq!(lines[at - 2], PAM_COMMENT);
        assert_eq!(
            lines[at - 1],
            "auth [success=done ignore=ignore default=die] pam_sshield.so after_publickey"
        );
        assert_eq!(lines[at + 1], "auth required pam_sshield.so");
        assert_eq!(pam_service(&out, Path::new("x"), &w).unwrap(), out);
        // Back to password mode: one line, after the password.
        let pw = wanted(SetupMode::Pam, FirstFactor::Password);
        assert_eq!(
            pam_service(&out, Path::new("x"), &pw).unwrap(),
            pam_service(DEBIAN_PAM, Path::new("x"), &pw).unwrap()
        );
        // A stack of its own: around its auth lines.
        let own = "auth requisite pam_unix.so\nauth required pam_faildelay.so\naccount required pam_unix.so\n";
        let out = pam_service(own, Path::new("x"), &w).unwrap();
        assert_eq!(
            out,
            format!("{PAM_COMMENT}\nauth [success=done ignore=ignore default=die] pam_sshield.so after_publickey\nauth requisite pam_unix.so\nauth required pam_faildelay.so\nauth required pam_sshield.so\naccount required pam_unix.so\n")
        );
        let text = drop_in(&w).unwrap();
        assert!(text.contains("\nExposeAuthInfo yes\n"));
        assert!(text.contains(
            "\nAuthenticationMethods publickey,keyboard-interactive:pam keyboard-interactive:pam\n"
        ));
    }

    #[test]
    fn key_mode_turns_common_auth_off_and_back_on() {
        let key = wanted(SetupMode::Pam, FirstFactor::Key);
        let out = pam_service(DEBIAN_PAM, Path::new("x"), &key).unwrap();
        assert!(!out.lines().any(is_common_auth_include), "{out}");
        assert!(out.contains("#@include common-auth   # sshield setup: key + code"));
        assert!(out.contains("\nauth required pam_sshield.so\n"));
        assert_eq!(pam_service(&out, Path::new("x"), &key).unwrap(), out);
        // Switching to password mode brings the include back, with the module after it.
        let pw = wanted(SetupMode::Pam, FirstFactor::Password);
        let back = pam_service(&out, Path::new("x"), &pw).unwrap();
        assert_eq!(back, pam_service(DEBIAN_PAM, Path::new("x"), &pw).unwrap());
        // ForceCommand mode leaves PAM as it was before setup.
        let fc = wanted(SetupMode::Forcecommand, FirstFactor::Password);
        assert_eq!(pam_service(&out, Path::new("x"), &fc).unwrap(), DEBIAN_PAM);
    }

    #[test]
    fn an_admins_own_module_line_is_replaced_not_doubled() {
        let text =
            "auth requisite pam_unix.so\nauth [success=ok default=die] /opt/pam_sshield.so debug\n";
        let w = Wanted {
            config: "/srv/s.toml".into(),
            config_is_default: false,
            ..wanted(SetupMode::Pam, FirstFactor::Password)
        };
        let out = pam_service(text, Path::new("x"), &w).unwrap();
        assert_eq!(
            out,
            format!("auth requisite pam_unix.so\n{PAM_COMMENT}\nauth required pam_sshield.so config=/srv/s.toml\n")
        );
    }

    #[test]
    fn stacks_setup_cannot_place_the_module_in_are_refused_with_the_fix() {
        let none = "account required pam_unix.so\n";
        let e = pam_service(
            none,
            Path::new("/etc/pam.d/sshd"),
            &wanted(SetupMode::Pam, FirstFactor::Password),
        )
        .unwrap_err();
        assert!(e.0.contains("/etc/pam.d/sshd has no auth lines"), "{e}");
        let e = pam_service(
            "auth required pam_unix.so\n",
            Path::new("p"),
            &wanted(SetupMode::Pam, FirstFactor::Key),
        )
        .unwrap_err();
        assert!(e.0.contains("--first-factor password"), "{e}");
        let w = Wanted {
            module: "/opt/my modules/pam_sshield.so".into(),
            ..wanted(SetupMode::Pam, FirstFactor::Password)
        };
        assert!(pam_line(&w).unwrap_err().0.contains("space"));
    }

    #[test]
    fn the_drop_in_dir_is_found_only_where_sshd_reads_it_first() {
        let p = Path::new("/etc/ssh/sshd_config");
        assert_eq!(
            include_dir(DEBIAN_SSHD, p),
            Some(PathBuf::from("/etc/ssh/sshd_config.d"))
        );
        assert_eq!(
            include_dir("Include sshd_config.d/*\n", p),
            Some(PathBuf::from("/etc/ssh/sshd_config.d"))
        );
        // Only files called *.local: ours would not be read.
        assert_eq!(include_dir("Include /etc/ssh/d/*.local\n", p), None);
        // Inside a Match block, the settings would apply to some connections only.
        assert_eq!(
            include_dir("Match User bob\nInclude /etc/ssh/d/*.conf\n", p),
            None
        );
        assert_eq!(include_dir("# Include /etc/ssh/d/*.conf\n", p), None);
        assert_eq!(include_dir("", p), None);
    }

    #[test]
    fn the_block_goes_first_and_is_replaced_in_place() {
        let w = wanted(SetupMode::Pam, FirstFactor::Key);
        let text = "Port 22\nKbdInteractiveAuthentication no\n";
        let once = sshd_config_with_block(text, &w).unwrap();
        assert!(once.starts_with(BLOCK_BEGIN));
        assert!(once.ends_with(text));
        assert!(once.contains("AuthenticationMethods publickey,keyboard-interactive:pam\n"));
        assert_eq!(sshd_config_with_block(&once, &w).unwrap(), once);
        assert_eq!(sshd_config_without_block(&once), text);
    }

    #[test]
    fn forcecommand_lines_name_the_binary_and_turn_forwarding_off() {
        let w = Wanted {
            config: "/srv/s.toml".into(),
            config_is_default: false,
            ..wanted(SetupMode::Forcecommand, FirstFactor::Password)
        };
        let text = drop_in(&w).unwrap();
        assert!(text.contains("\nForceCommand /usr/bin/sshield --config /srv/s.toml login\n"));
        // The default path is named too: the helper never looks anywhere else.
        let default = Wanted {
            config: sshield_core::config::DEFAULT_CONFIG_PATH.into(),
            config_is_default: true,
            ..w.clone()
        };
        assert!(drop_in(&default).unwrap().contains(
            "\nForceCommand /usr/bin/sshield --config /etc/sshield/sshield.toml login\n"
        ));
        assert!(text.contains("\nDisableForwarding yes\n"));
        assert!(text.contains("\nAuthenticationMethods publickey\n"));
        assert!(!text.contains("UsePAM"));
    }

    #[test]
    fn config_edits_keep_comments_and_are_checked() {
        let path = Path::new("/etc/sshield/sshield.toml");
        let edits = PolicyEdits {
            exempt_networks: Some(vec!["192.168.0.0/16".into(), "10.0.0.1".into()]),
            require_groups: Some(vec!["ssh-2fa".into()]),
            failmode: Some("safe"),
            unenrolled: Some("allow"),
            allow_until: None,
        };
        let out = sshield_config(None, path, &edits).unwrap();
        let config = Config::parse(&out, path).unwrap();
        assert_eq!(config.policy.exempt_networks.len(), 2);
        assert_eq!(config.policy.require_groups, ["ssh-2fa"]);
        assert_eq!(config.failmode, sshield_core::config::Failmode::Safe);
        // The example's comments survive, including the one after the array.
        assert!(out.contains("# Source networks that never need a second factor"));
        assert!(
            out.contains("exempt_networks = [\"192.168.0.0/16\", \"10.0.0.1\"]            # e.g."),
            "{out}"
        );
        // No edits: the file is left exactly as it was.
        assert_eq!(
            sshield_config(Some(&out), path, &PolicyEdits::default()).unwrap(),
            out
        );

        let bad = PolicyEdits {
            exempt_networks: Some(vec!["192.168.0.0/33".into()]),
            ..PolicyEdits::default()
        };
        assert!(sshield_config(None, path, &bad)
            .unwrap_err()
            .0
            .contains("--exempt \"192.168.0.0/33\""));
        let bad = PolicyEdits {
            allow_until: Some("next week".into()),
            ..PolicyEdits::default()
        };
        assert!(sshield_config(None, path, &bad)
            .unwrap_err()
            .0
            .contains("2026-12-31"));
        let good = PolicyEdits {
            allow_until: Some("2026-12-31".into()),
            ..PolicyEdits::default()
        };
        let out = sshield_config(None, path, &good).unwrap();
        assert!(Config::parse(&out, path)
            .unwrap()
            .policy
            .allow_until
            .is_some());
        let group = PolicyEdits {
            require_groups: Some(vec!["ssh-2fa".into()]),
            ..PolicyEdits::default()
        };
        let e = sshield_config(Some("policy = 3\n"), path, &group).unwrap_err();
        assert!(e.0.contains("[policy]"), "{e}");
        // Without policy flags a bad config is still refused, by the config's own parser...
        let e = sshield_config(Some("policy = 3\n"), path, &PolicyEdits::default()).unwrap_err();
        assert!(e.0.contains("sshield.toml:1:"), "{e}");
        // ...and a good one is left exactly as it is: no [policy] table appears.
        let bare = "store = \"/srv/users\"\n";
        assert_eq!(
            sshield_config(Some(bare), path, &PolicyEdits::default()).unwrap(),
            bare
        );
    }

    #[test]
    fn the_example_config_is_the_default_config() {
        // So a config written by setup without flags behaves as no config at all.
        assert!(Config::parse(EXAMPLE_CONFIG, Path::new("/etc/sshield/sshield.toml")).is_ok());
    }
}
