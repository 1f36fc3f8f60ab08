//! sshd_config: parsed the way sshd reads it (first value wins, `Include` in place, `Match`
//! blocks apart), and the checks over it.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{or_ok, Finding, Mode, Severity};

/// Keywords (lowercase) and their first value, as sshd keeps them.
pub(crate) type Settings = BTreeMap<String, String>;

/// One `Match` block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MatchBlock {
    /// What follows `Match`.
    pub criteria: String,
    /// Its settings.
    pub settings: Settings,
}

/// sshd_config as far as the checks need it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SshdConfig {
    /// Options outside any `Match` block.
    pub global: Settings,
    /// The `Match` blocks, in order.
    pub blocks: Vec<MatchBlock>,
}

/// Includes nested deeper than this are ignored (sshd stops at 16 too).
const MAX_DEPTH: usize = 16;

/// Reads `path` and what it includes. Relative `Include` paths are relative to `path`'s
/// directory (for /etc/ssh/sshd_config that is /etc/ssh, as for sshd).
pub(crate) fn load(
    path: &Path,
    read: &dyn Fn(&Path) -> io::Result<String>,
) -> io::Result<SshdConfig> {
    let text = read(path)?;
    let base = path.parent().unwrap_or(Path::new("/")).to_owned();
    let mut config = SshdConfig::default();
    let mut current: Option<usize> = None;
    parse_into(&text, &base, read, &mut config, &mut current, 0);
    Ok(config)
}

/// Parses `text` into `config`; `current` is the Match block lines go into (`None`: global).
pub(crate) fn parse_into(
    text: &str,
    base: &Path,
    read: &dyn Fn(&Path) -> io::Result<String>,
    config: &mut SshdConfig,
    current: &mut Option<usize>,
    depth: usize,
) {
    for line in text.lines() {
        let Some((key, value)) = split_line(line) else {
            continue;
        };
        match key.as_str() {
            "include" => {
                if depth >= MAX_DEPTH {
                    continue;
                }
                for pattern in value.split_whitespace() {
                    let pattern = base.join(pattern);
                    for file in expand_glob(&pattern) {
                        if let Ok(text) = read(&file) {
                            parse_into(&text, base, read, config, current, depth + 1);
                        }
                    }
                }
            }
            "match" => {
                if value.eq_ignore_ascii_case("all") {
                    *current = None;
                } else {
                    config.blocks.push(MatchBlock {
                        criteria: value,
                        settings: Settings::new(),
                    });
                    *current = Some(config.blocks.len() - 1);
                }
            }
            _ => {
                let settings = match *current {
                    Some(i) => &mut config.blocks[i].settings,
                    None => &mut config.global,
                };
                keep(settings, key, value);
            }
        }
    }
}

/// `Keyword value` or `Keyword=value`, the keyword lowercased (ChallengeResponseAuthentication
/// is read as its newer name), the value unquoted; `None` for blanks and comments.
fn split_line(line: &str) -> Option<(String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let key = line[..end].to_ascii_lowercase();
    let rest = line[end..].trim_start();
    let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
    let value = rest.replace('"', "");
    let key = if key == "challengeresponseauthentication" {
        "kbdinteractiveauthentication".to_owned()
    } else {
        key
    };
    Some((key, value))
}

/// `sshd -T` output: one `keyword value` per line, keywords already lowercase.
pub(crate) fn parse_effective(text: &str) -> Settings {
    let mut settings = Settings::new();
    for line in text.lines() {
        if let Some((key, value)) = split_line(line) {
            keep(&mut settings, key, value);
        }
    }
    settings
}

/// Keywords whose every line counts, in order (sshd adds them up instead of keeping the first).
const CUMULATIVE: &[&str] = &["acceptenv"];

/// Records one line as sshd does: the first value wins, except for [`CUMULATIVE`] keywords,
/// whose values are joined with spaces, and `Subsystem`, one per name: kept as
/// `subsystem NAME` with the command line as its value.
fn keep(settings: &mut Settings, key: String, value: String) {
    if key == "subsystem" {
        if let Some((name, command)) = value.split_once(char::is_whitespace) {
            settings
                .entry(format!("subsystem {name}"))
                .or_insert_with(|| command.trim().to_owned());
        }
    } else if CUMULATIVE.contains(&key.as_str()) {
        settings
            .entry(key)
            .and_modify(|all| {
                all.push(' ');
                all.push_str(&value);
            })
            .or_insert(value);
    } else {
        settings.entry(key).or_insert(value);
    }
}

/// The files a path with `*`, `?` wildcards names, sorted (as glob(3) gives them to sshd).
pub(crate) fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    let text = pattern.to_string_lossy();
    if !text.contains(['*', '?']) {
        return vec![pattern.to_owned()];
    }
    let mut found = vec![PathBuf::new()];
    for part in pattern.components() {
        let part = part.as_os_str().to_string_lossy();
        let mut next = Vec::new();
        for dir in &found {
            if !part.contains(['*', '?']) {
                next.push(dir.join(part.as_ref()));
                continue;
            }
            let listed = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir.as_path()
            };
            let Ok(entries) = fs::read_dir(listed) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .filter(|n| !n.starts_with('.') && wildcard(&part, n))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| dir.join(n)));
        }
        found = next;
    }
    found
}

/// Shell wildcard match with `*` and `?`.
pub(crate) fn wildcard(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Whether a ForceCommand runs `sshield ... login`.
pub(crate) fn is_sshield_login(command: &str) -> bool {
    let mut words = command.split_whitespace();
    words.any(|w| w.rsplit('/').next() == Some("sshield")) && words.any(|w| w == "login")
}

fn force_command(settings: &Settings) -> bool {
    settings
        .get("forcecommand")
        .is_some_and(|c| is_sshield_login(c))
}

/// Whether `ForceCommand sshield login` is used anywhere.
pub(crate) fn uses_sshield_force_command(config: &SshdConfig) -> bool {
    force_command(&config.global) || config.blocks.iter().any(|b| force_command(&b.settings))
}

fn value<'a>(settings: &'a Settings, key: &str) -> Option<&'a str> {
    settings.get(key).map(String::as_str)
}

fn is(settings: &Settings, key: &str, expected: &str) -> bool {
    value(settings, key).is_some_and(|v| v.eq_ignore_ascii_case(expected))
}

/// Every sshd check, each with an `ok` finding if it passed.
pub(crate) fn check_all(config: &SshdConfig, mode: Mode) -> Vec<Finding> {
    let mut out = Vec::new();
    if mode.uses_pam() {
        out.extend(or_ok(check_use_pam(config), "sshd-use-pam", "UsePAM yes"));
        out.extend(or_ok(
            check_kbd_interactive(config),
            "sshd-kbd-interactive",
            "keyboard-interactive authentication is on, so the code can be asked",
        ));
        out.extend(or_ok(
            check_authentication_methods(config),
            "sshd-authentication-methods",
            "AuthenticationMethods always ends in keyboard-interactive",
        ));
    }
    out.extend(or_ok(
        check_permit_root_login(config),
        "sshd-permit-root-login",
        "PermitRootLogin is not yes",
    ));
    if mode.pam {
        out.extend(or_ok(
            check_root_kbd_interactive(config),
            "sshd-root-kbd-interactive",
            "root cannot log in, or can answer pam_sshield's code prompt (PermitRootLogin is \
             no, yes or forced-commands-only)",
        ));
    }
    if mode.force_command {
        out.extend(or_ok(
            check_forwarding(config),
            "sshd-forwarding",
            "forwarding is off where ForceCommand sshield login is used",
        ));
        out.extend(or_ok(
            check_permit_user_environment(config),
            "sshd-permit-user-environment",
            "PermitUserEnvironment is off",
        ));
        out.extend(or_ok(
            check_accept_env(config),
            "sshd-accept-env",
            "AcceptEnv lets no client variable steer the helper or the shell that starts it",
        ));
    }
    out
}

/// The global settings (scope `""`) and each `Match` block's (scope `" in `Match ...``"`), for
/// messages that say where a line is.
fn scopes(config: &SshdConfig) -> impl Iterator<Item = (String, &Settings)> {
    std::iter::once((String::new(), &config.global)).chain(
        config
            .blocks
            .iter()
            .map(|b| (format!(" in `Match {}`", b.criteria), &b.settings)),
    )
}

/// `sshield login` runs sftp-server for `internal-sftp` only with the config's
/// `sftp_server_args`, and refuses when sshd's `Subsystem sftp internal-sftp ...` gives others.
pub(crate) fn check_sftp_args(config: &SshdConfig, sftp_server_args: &[String]) -> Vec<Finding> {
    let mut out = Vec::new();
    for (scope, settings) in scopes(config) {
        let Some(command) = settings.get("subsystem sftp") else {
            continue;
        };
        let mut words = command.split_whitespace();
        if words.next() != Some("internal-sftp") {
            continue;
        }
        let given: Vec<String> = words.map(str::to_owned).collect();
        if given == sftp_server_args {
            continue;
        }
        out.push(Finding::new(
            Severity::Error,
            "sshd-sftp-args",
            format!(
                "sshd_config{scope}: `Subsystem sftp {command}` gives internal-sftp {given:?}, \
                 but the config's sftp_server_args is {sftp_server_args:?}: sshield login runs \
                 no sftp-server for it, so every sftp session through the ForceCommand is refused"
            ),
            format!("set sftp_server_args = {given:?} in the config"),
        ));
    }
    out
}

/// `policy.exempt_methods` is told the first factor only with `ExposeAuthInfo yes`.
pub(crate) fn check_expose_auth_info(
    config: &SshdConfig,
    exempt_methods: &[String],
) -> Vec<Finding> {
    if exempt_methods.is_empty() || is(&config.global, "exposeauthinfo", "yes") {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Warn,
        "sshd-expose-auth-info",
        format!(
            "the config's policy.exempt_methods = {exempt_methods:?} has no effect without \
             sshd's ExposeAuthInfo yes: everyone is asked for a code"
        ),
        "set `ExposeAuthInfo yes` in sshd_config (or drop exempt_methods)",
    )]
}

/// The `--config PATH` of each `ForceCommand sshield ... login`, with where it is set.
pub(crate) fn force_command_configs(config: &SshdConfig) -> Vec<(String, PathBuf)> {
    let scopes = std::iter::once(("sshd_config ForceCommand".to_owned(), &config.global)).chain(
        config.blocks.iter().map(|b| {
            (
                format!("sshd_config `Match {}` ForceCommand", b.criteria),
                &b.settings,
            )
        }),
    );
    let mut out = Vec::new();
    for (scope, settings) in scopes {
        let Some(command) = settings.get("forcecommand").filter(|c| is_sshield_login(c)) else {
            continue;
        };
        let mut words = command.split_whitespace();
        while let Some(word) = words.next() {
            if let Some(path) = word.strip_prefix("--config=") {
                out.push((scope.clone(), PathBuf::from(path)));
            } else if word == "--config" {
                if let Some(path) = words.next() {
                    out.push((scope.clone(), PathBuf::from(path)));
                }
            }
        }
    }
    out
}

/// PAM mode needs `UsePAM yes` (OpenSSH's default is no).
pub(crate) fn check_use_pam(config: &SshdConfig) -> Vec<Finding> {
    if is(&config.global, "usepam", "yes") {
        return Vec::new();
    }
    let now = value(&config.global, "usepam").unwrap_or("unset (sshd's default: no)");
    vec![Finding::new(
        Severity::Error,
        "sshd-use-pam",
        format!("sshd_config: UsePAM is {now}, so sshd never runs pam_sshield"),
        "set `UsePAM yes` in sshd_config and reload sshd",
    )]
}

/// The code is asked through keyboard-interactive authentication.
pub(crate) fn check_kbd_interactive(config: &SshdConfig) -> Vec<Finding> {
    if !is(&config.global, "kbdinteractiveauthentication", "no") {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Error,
        "sshd-kbd-interactive",
        "sshd_config: KbdInteractiveAuthentication (or ChallengeResponseAuthentication) is no, \
         so the code can never be asked",
        "set `KbdInteractiveAuthentication yes` (the first value sshd reads wins: check \
         sshd_config.d/ too) and reload sshd",
    )]
}

/// Every `AuthenticationMethods` list must include keyboard-interactive, or a login that
/// satisfies that list (a key, typically) never reaches PAM's auth stack.
pub(crate) fn check_authentication_methods(config: &SshdConfig) -> Vec<Finding> {
    let methods = value(&config.global, "authenticationmethods").unwrap_or("any");
    let lacking: Vec<&str> = if methods.eq_ignore_ascii_case("any") {
        vec!["any"]
    } else {
        methods
            .split_whitespace()
            .filter(|list| {
                !list
                    .split(',')
                    .any(|m| m == "keyboard-interactive" || m.starts_with("keyboard-interactive:"))
            })
            .collect()
    };
    if lacking.is_empty() {
        return Vec::new();
    }
    let message = if lacking == ["any"] {
        "sshd_config: AuthenticationMethods is not set: a login by public key (or any one \
         method but keyboard-interactive) never runs PAM's auth stack, so it gets no second factor"
            .to_owned()
    } else {
        format!(
            "sshd_config: AuthenticationMethods {methods}: a login by {} never runs PAM's auth \
             stack, so it gets no second factor",
            lacking.join(" or ")
        )
    };
    vec![Finding::new(
        Severity::Warn,
        "sshd-authentication-methods",
        message,
        "set `AuthenticationMethods publickey,keyboard-interactive:pam` (key + code) or \
         `keyboard-interactive:pam` (password + code)",
    )]
}

/// Root logging in with a password is the first thing a guesser tries.
pub(crate) fn check_permit_root_login(config: &SshdConfig) -> Vec<Finding> {
    if !is(&config.global, "permitrootlogin", "yes") {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Warn,
        "sshd-permit-root-login",
        "sshd_config: PermitRootLogin yes lets root log in with a password",
        "set `PermitRootLogin no` and log in as yourself, then sudo (with pam_sshield in the stack `prohibit-password` locks root out: see sshd-root-kbd-interactive)",
    )]
}

/// OpenSSH's auth-pam.c (`sshpam_respond`) replaces every keyboard-interactive answer of
/// root's with a wrong password unless `PermitRootLogin yes`; under `prohibit-password` (the
/// default) root may log in, but can never pass pam_sshield's code. Only called when
/// pam_sshield is in the stack: without it there is no code to fail.
pub(crate) fn check_root_kbd_interactive(config: &SshdConfig) -> Vec<Finding> {
    let setting = value(&config.global, "permitrootlogin");
    let fine = setting.is_some_and(|v| {
        ["no", "yes", "forced-commands-only"]
            .iter()
            .any(|ok| v.eq_ignore_ascii_case(ok))
    });
    if fine {
        return Vec::new();
    }
    let now = match setting {
        Some(v) => format!("PermitRootLogin is {v}"),
        None => "PermitRootLogin is unset (sshd's default: prohibit-password)".to_owned(),
    };
    vec![Finding::new(
        Severity::Warn,
        "sshd-root-kbd-interactive",
        format!(
            "sshd_config: {now} while pam_sshield is in sshd's PAM stack: sshd answers root's \
             keyboard-interactive prompts itself with a wrong password unless PermitRootLogin \
             is yes, so root can never pass the code and cannot log in"
        ),
        "log in as yourself and use sudo, or set `PermitRootLogin no`; `yes` only if root must \
         log in with a code",
    )]
}

/// A tunnel (`ssh -N -L`) is set up before any ForceCommand runs.
pub(crate) fn check_forwarding(config: &SshdConfig) -> Vec<Finding> {
    let closed =
        |s: &Settings| is(s, "disableforwarding", "yes") || is(s, "allowtcpforwarding", "no");
    let only_tcp =
        |s: &Settings| !is(s, "disableforwarding", "yes") && is(s, "allowtcpforwarding", "no");
    let mut out = Vec::new();
    let mut scopes: Vec<(String, &Settings, bool)> = Vec::new();
    if force_command(&config.global) {
        scopes.push((
            "globally".to_owned(),
            &config.global,
            closed(&config.global),
        ));
    }
    for block in &config.blocks {
        if force_command(&block.settings) {
            let ok = closed(&block.settings)
                || (closed(&config.global)
                    && !is(&block.settings, "allowtcpforwarding", "yes")
                    && !is(&block.settings, "disableforwarding", "no"));
            scopes.push((
                format!("in `Match {}`", block.criteria),
                &block.settings,
                ok,
            ));
        }
    }
    for (scope, settings, ok) in scopes {
        if !ok {
            out.push(Finding::new(
                Severity::Error,
                "sshd-forwarding",
                format!(
                    "sshd_config: ForceCommand sshield login is used {scope} without \
                     DisableForwarding yes: `ssh -N -L` opens a tunnel with the key alone, \
                     never running the helper"
                ),
                "add `DisableForwarding yes` next to the ForceCommand (or use PAM mode, \
                 see docs/forcecommand.md)",
            ));
        } else if only_tcp(settings) || (only_tcp(&config.global) && !closed(settings)) {
            out.push(Finding::new(
                Severity::Warn,
                "sshd-forwarding",
                format!(
                    "sshd_config: ForceCommand sshield login is used {scope} with only \
                     AllowTcpForwarding no: agent, X11 and Unix-socket forwarding still work \
                     without the helper"
                ),
                "use `DisableForwarding yes` instead",
            ));
        }
    }
    out
}

/// `~/.ssh/environment` is the user's, and reaches the helper's environment.
pub(crate) fn check_permit_user_environment(config: &SshdConfig) -> Vec<Finding> {
    let on = |s: &Settings| {
        value(s, "permituserenvironment").is_some_and(|v| !v.eq_ignore_ascii_case("no"))
    };
    if !on(&config.global) && !config.blocks.iter().any(|b| on(&b.settings)) {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Warn,
        "sshd-permit-user-environment",
        "sshd_config: PermitUserEnvironment is on with ForceCommand sshield login: users set \
         the environment the helper and their shell start with (LD_PRELOAD, BASH_ENV...)",
        "set `PermitUserEnvironment no`",
    )]
}

/// Client variables that take over `sshield login` before it asks for a code, one example
/// name each: the helper's config (older helpers read it, issue 9 item 5), the dynamic
/// loader's (`LD_PRELOAD` runs the user's code inside the helper), and the shell sshd starts
/// the ForceCommand with (`bash -c` sources `BASH_ENV`, imports functions from `BASH_FUNC_*`,
/// even one named `/usr/bin/sshield`; `sh` reads `ENV`).
const STEERING: &[(&str, &str)] = &[
    ("SSHIELD_CONFIG", "SSHIELD_CONFIG"),
    ("LD_PRELOAD", "LD_*"),
    ("LD_LIBRARY_PATH", "LD_*"),
    ("LD_AUDIT", "LD_*"),
    ("BASH_ENV", "BASH_ENV"),
    ("BASH_FUNC_sshield%%", "BASH_FUNC_*"),
    ("ENV", "ENV"),
];

/// `AcceptEnv` patterns that let the client set a [`STEERING`] variable.
pub(crate) fn check_accept_env(config: &SshdConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for (scope, settings) in scopes(config) {
        let Some(patterns) = settings.get("acceptenv") else {
            continue;
        };
        let mut matched: Vec<String> = Vec::new();
        for pattern in patterns.split_whitespace() {
            let steers: Vec<&str> = STEERING
                .iter()
                .filter(|(name, _)| wildcard(pattern, name))
                .map(|(_, family)| *family)
                .collect();
            if !steers.is_empty() {
                let mut families = steers;
                families.dedup();
                matched.push(format!("{pattern} (matches {})", families.join(", ")));
            }
        }
        if matched.is_empty() {
            continue;
        }
        out.push(Finding::new(
            Severity::Error,
            "sshd-accept-env",
            format!(
                "sshd_config: AcceptEnv{scope} lets the client set {} with ForceCommand sshield \
                 login: those variables run the client's code, or the client's config, before \
                 the helper asks for a code",
                matched.join(", ")
            ),
            "name only the variables clients need, e.g. `AcceptEnv LANG LC_* SSHIELD_CODE`",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]
    use super::*;

    fn parse(text: &str) -> SshdConfig {
        let mut c = SshdConfig::default();
        let mut cur = None;
        parse_into(
            text,
            Path::new("/nonexistent"),
            &|_| Err(io::ErrorKind::NotFound.into()),
            &mut c,
            &mut cur,
            0,
        );
        c
    }

    #[test]
    fn first_value_wins_and_match_blocks_are_apart() {
        let c = parse(
            "UsePAM yes\nusepam no\nChallengeResponseAuthentication=no\n\
             KbdInteractiveAuthentication yes\nMatch User bob\n  PermitRootLogin yes\n",
        );
        assert_eq!(c.global["usepam"], "yes");
        assert_eq!(c.global["kbdinteractiveauthentication"], "no");
        assert!(!c.global.contains_key("permitrootlogin"));
        assert_eq!(c.blocks[0].criteria, "User bob");
        assert_eq!(check_kbd_interactive(&c).len(), 1);
    }

    #[test]
    fn authentication_methods_lists() {
        let c = parse("AuthenticationMethods publickey,keyboard-interactive:pam\n");
        assert!(check_authentication_methods(&c).is_empty());
        let c = parse("AuthenticationMethods publickey,keyboard-interactive publickey\n");
        assert_eq!(check_authentication_methods(&c).len(), 1);
        assert_eq!(check_authentication_methods(&parse("")).len(), 1);
    }

    #[test]
    fn root_and_keyboard_interactive() {
        // Root may log in but cannot answer a keyboard-interactive prompt: the default, and
        // its two spellings.
        for text in [
            "",
            "PermitRootLogin prohibit-password\n",
            "permitrootlogin=without-password\n",
        ] {
            let found = check_root_kbd_interactive(&parse(text));
            assert_eq!(found.len(), 1, "{text:?}");
            assert_eq!(found[0].severity, Severity::Warn);
            assert!(found[0].message.contains("PermitRootLogin"), "{found:?}");
            assert!(found[0].fix.contains("sudo"), "{found:?}");
        }
        assert!(check_root_kbd_interactive(&parse(""))
            .remove(0)
            .message
            .contains("unset"));
        // Root cannot log in, may answer, or runs only forced commands.
        for text in [
            "PermitRootLogin no\n",
            "PermitRootLogin YES\n",
            "PermitRootLogin forced-commands-only\n",
            // The first value wins.
            "PermitRootLogin no\nPermitRootLogin prohibit-password\n",
        ] {
            assert!(
                check_root_kbd_interactive(&parse(text)).is_empty(),
                "{text:?}"
            );
        }
        // Only with pam_sshield in the stack.
        let config = parse("");
        let ids =
            |mode| -> Vec<&str> { check_all(&config, mode).iter().map(|f| f.check).collect() };
        assert!(ids(Mode {
            pam: true,
            force_command: false
        })
        .contains(&"sshd-root-kbd-interactive"));
        assert!(!ids(Mode {
            pam: false,
            force_command: false
        })
        .contains(&"sshd-root-kbd-interactive"));
    }

    #[test]
    fn force_command_forwarding() {
        let c = parse(
            "Match Address *,!10.0.0.0/8\n ForceCommand /usr/bin/sshield --config /x login\n",
        );
        assert!(uses_sshield_force_command(&c));
        assert_eq!(check_forwarding(&c)[0].severity, Severity::Error);
        let c = parse("DisableForwarding yes\nMatch Address *\n ForceCommand sshield login\n");
        assert!(check_forwarding(&c).is_empty());
        let c = parse("ForceCommand sshield login\nAllowTcpForwarding no\n");
        assert_eq!(check_forwarding(&c)[0].severity, Severity::Warn);
        assert!(!is_sshield_login("/usr/bin/login"));
    }

    #[test]
    fn accept_env_patterns_that_steer_the_helper() {
        for (lines, blamed) in [
            ("AcceptEnv LANG LC_*\nAcceptEnv SSHIELD_CODE\n", None),
            (
                "AcceptEnv LANG LC_*\nAcceptEnv SSHIELD_*\n",
                Some("SSHIELD_* (matches SSHIELD_CONFIG)"),
            ),
            ("AcceptEnv LD_PRELOAD\n", Some("LD_PRELOAD (matches LD_*)")),
            ("AcceptEnv L*\n", Some("L* (matches LD_*)")),
            (
                "AcceptEnv BASH_*\n",
                Some("BASH_* (matches BASH_ENV, BASH_FUNC_*)"),
            ),
            (
                "AcceptEnv *\n",
                Some("* (matches SSHIELD_CONFIG, LD_*, BASH_ENV, BASH_FUNC_*, ENV)"),
            ),
            (
                "Match User bob\n  AcceptEnv ENV\n",
                Some("in `Match User bob` lets the client set ENV (matches ENV)"),
            ),
            ("AcceptEnv ENVIRONMENT LDAP_URI\n", None),
        ] {
            let found = check_accept_env(&parse(lines));
            match blamed {
                None => assert!(found.is_empty(), "{lines:?}: {found:?}"),
                Some(text) => {
                    assert_eq!(found.len(), 1, "{lines:?}: {found:?}");
                    assert!(
                        found[0].message.contains(text),
                        "{lines:?}: {}",
                        found[0].message
                    );
                }
            }
        }
    }

    #[test]
    fn sftp_subsystem_arguments_against_the_config() {
        let read_only = ["-R".to_owned()];
        for (lines, configured, blamed) in [
            ("Subsystem sftp internal-sftp -R\n", &read_only[..], false),
            ("Subsystem sftp internal-sftp\n", &[][..], false),
            (
                "Subsystem sftp /usr/lib/openssh/sftp-server -R\n",
                &[][..],
                false,
            ),
            ("Subsystem sftp internal-sftp -R\n", &[][..], true),
            (
                "Subsystem other x\nSubsystem sftp internal-sftp -R\n",
                &[][..],
                true,
            ),
            ("Subsystem sftp internal-sftp\n", &read_only[..], true),
            (
                "Match User bob\n  Subsystem sftp internal-sftp -l INFO\n",
                &[][..],
                true,
            ),
        ] {
            let found = check_sftp_args(&parse(lines), configured);
            assert_eq!(found.len(), usize::from(blamed), "{lines:?}: {found:?}");
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "50-sshield.conf"));
        assert!(!wildcard("*.conf", "50-sshield.conf~"));
        assert!(wildcard("a?c*", "abcdef"));
        let dir = tempfile::tempdir().unwrap();
        for f in ["b.conf", "a.conf", "c.txt", ".hidden.conf"] {
            fs::write(dir.path().join(f), "").unwrap();
        }
        let found = expand_glob(&dir.path().join("*.conf"));
        assert_eq!(
            found,
            [dir.path().join("a.conf"), dir.path().join("b.conf")]
        );
    }
}
