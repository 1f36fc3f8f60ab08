//! The PAM service file, flattened through `@include` and `include`/`substack`, and the checks
//! on where and how pam_sshield sits in it.

use std::io;
use std::path::{Path, PathBuf};

use super::{or_ok, Finding, Mode, Severity};

/// One module line of the `auth` stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The control: `required`, `requisite`, `sufficient`, `optional`, or `[...]`.
    pub control: String,
    /// The module's file name (`pam_unix.so`), without its directory.
    pub module: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// `FILE:LINE`, for messages.
    pub origin: String,
}

impl Entry {
    fn is(&self, stem: &str) -> bool {
        self.module.strip_suffix(".so").unwrap_or(&self.module) == stem
    }

    /// Whether this is pam_sshield.
    pub(crate) fn is_sshield(&self) -> bool {
        self.is("pam_sshield")
    }

    /// Whether this is the password module.
    pub(crate) fn is_unix(&self) -> bool {
        self.is("pam_unix")
    }

    /// Whether a failure ends the stack here (`requisite`, or `[... default=die]`).
    fn stops_on_failure(&self) -> bool {
        self.control == "requisite"
            || (self.control.starts_with('[') && self.control.contains("default=die"))
    }
}

/// The flattened `auth` stack, and anything that could not be read on the way.
#[derive(Debug, Clone, Default)]
pub(crate) struct Stack {
    /// The `auth` lines, in the order PAM runs them.
    pub entries: Vec<Entry>,
    /// Included files that could not be read.
    pub problems: Vec<Finding>,
}

const MAX_DEPTH: usize = 8;

/// Reads the service file and what it includes (relative to its directory).
pub(crate) fn load(path: &Path, read: &dyn Fn(&Path) -> io::Result<String>) -> io::Result<Stack> {
    let text = read(path)?;
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut stack = Stack::default();
    parse_into(&text, &path.display().to_string(), dir, read, &mut stack, 0);
    Ok(stack)
}

/// Parses service-file text into `stack` (its `auth` lines only).
pub(crate) fn parse_into(
    text: &str,
    name: &str,
    dir: &Path,
    read: &dyn Fn(&Path) -> io::Result<String>,
    stack: &mut Stack,
    depth: usize,
) {
    let include = |file: &str, stack: &mut Stack, origin: &str| {
        if depth >= MAX_DEPTH {
            return;
        }
        let path = dir.join(file);
        match read(&path) {
            Ok(text) => parse_into(
                &text,
                &path.display().to_string(),
                dir,
                read,
                stack,
                depth + 1,
            ),
            Err(e) => stack.problems.push(Finding::new(
                Severity::Warn,
                "pam-service",
                format!("{origin}: cannot read the included {}: {e}", path.display()),
                "fix the include, or the stack is not what it seems",
            )),
        }
    };
    for (i, line) in text.lines().enumerate() {
        let origin = format!("{name}:{}", i + 1);
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        if let Some(file) = line.strip_prefix("@include") {
            include(file.trim(), stack, &origin);
            continue;
        }
        let Some((kind, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        if kind.trim_start_matches('-') != "auth" {
            continue;
        }
        let rest = rest.trim_start();
        let (control, rest) = if rest.starts_with('[') {
            match rest.find(']') {
                Some(end) => (&rest[..=end], &rest[end + 1..]),
                None => (rest, ""),
            }
        } else {
            rest.split_once(char::is_whitespace).unwrap_or((rest, ""))
        };
        let mut words = rest.split_whitespace();
        let Some(module) = words.next() else {
            continue;
        };
        if control == "include" || control == "substack" {
            include(module, stack, &origin);
            continue;
        }
        stack.entries.push(Entry {
            control: control.to_owned(),
            module: module.rsplit('/').next().unwrap_or(module).to_owned(),
            args: words.map(str::to_owned).collect(),
            origin,
        });
    }
}

/// The `config=` of each pam_sshield line, with where it is set.
pub(crate) fn config_args(entries: &[Entry]) -> Vec<(String, PathBuf)> {
    entries
        .iter()
        .filter(|e| e.is_sshield())
        .flat_map(|e| {
            e.args
                .iter()
                .filter_map(|a| a.strip_prefix("config="))
                .map(|p| {
                    (
                        format!("{} (pam_sshield config=)", e.origin),
                        PathBuf::from(p),
                    )
                })
        })
        .collect()
}

/// Whether pam_sshield is in the stack.
pub(crate) fn has_module(entries: &[Entry]) -> bool {
    entries.iter().any(Entry::is_sshield)
}

/// Every PAM check, each with an `ok` finding if it passed.
pub(crate) fn check_all(entries: &[Entry], mode: Mode) -> Vec<Finding> {
    let mut out = or_ok(
        check_module_present(entries, mode),
        "pam-module",
        "pam_sshield is in sshd's auth stack",
    );
    if has_module(entries) {
        out.extend(or_ok(
            check_module_args(entries),
            "pam-module-args",
            "pam_sshield's arguments are all known",
        ));
        out.extend(or_ok(
            check_order(entries),
            "pam-order",
            "pam_sshield and the password module are in the right order",
        ));
        out.extend(or_ok(
            check_barrier(entries),
            "pam-barrier",
            "a wrong password ends the stack before the code is asked",
        ));
    }
    out
}

/// Without the module (and without ForceCommand), nothing asks for a code.
pub(crate) fn check_module_present(entries: &[Entry], mode: Mode) -> Vec<Finding> {
    if has_module(entries) {
        return Vec::new();
    }
    if mode.force_command {
        return vec![Finding::new(
            Severity::Info,
            "pam-module",
            "pam_sshield is not in sshd's auth stack; sshd_config uses ForceCommand sshield login instead",
            "nothing to do (PAM mode is the stronger setup: see docs/forcecommand.md)",
        )];
    }
    vec![Finding::new(
        Severity::Error,
        "pam-module",
        "pam_sshield is not in sshd's auth stack, and no ForceCommand runs sshield login: \
         no login is asked for a code",
        "add `auth required pam_sshield.so` after `@include common-auth` (see docs/pam.md)",
    )]
}

/// The module refuses every login on an argument it does not know; say so before it happens.
pub(crate) fn check_module_args(entries: &[Entry]) -> Vec<Finding> {
    let mut out = Vec::new();
    for entry in entries.iter().filter(|e| e.is_sshield()) {
        let mut sources = Vec::new();
        for arg in &entry.args {
            let problem = match arg.as_str() {
                "debug" | "after_publickey" => None,
                "use_first_pass" | "try_first_pass" | "forward_pass" => {
                    sources.push(arg.as_str());
                    None
                }
                a if a.starts_with("config=") => (!Path::new(&a["config=".len()..]).is_absolute())
                    .then(|| format!("{a:?} is not an absolute path")),
                a if a.starts_with("prompt=") => {
                    Some("prompt= is set in the config file, not on the module line".to_owned())
                }
                a => Some(format!("unknown argument {a:?}")),
            };
            if let Some(problem) = problem {
                out.push(Finding::new(
                    Severity::Error,
                    "pam-module-args",
                    format!("{}: pam_sshield: {problem}; the module refuses every login through this stack", entry.origin),
                    "use only config=/ABSOLUTE/PATH, debug, use_first_pass, try_first_pass, forward_pass, after_publickey (see docs/pam.md)",
                ));
            }
        }
        if sources.len() > 1 {
            out.push(Finding::new(
                Severity::Error,
                "pam-module-args",
                format!(
                    "{}: pam_sshield: {} cannot be combined; the module refuses every login",
                    entry.origin,
                    sources.join(" and ")
                ),
                "keep one of use_first_pass, try_first_pass, forward_pass",
            ));
        }
    }
    out
}

/// The first pam_sshield line that asks every login (an `after_publickey` line before the
/// password asks only logins that came with a key, and steps aside for the others), pam_unix,
/// and whether that line has `forward_pass`.
fn positions(entries: &[Entry]) -> Option<(usize, Option<usize>, bool)> {
    let sshield = entries
        .iter()
        .position(|e| e.is_sshield() && !e.args.iter().any(|a| a == "after_publickey"))?;
    let unix = entries.iter().position(Entry::is_unix);
    let forward = entries[sshield].args.iter().any(|a| a == "forward_pass");
    Some((sshield, unix, forward))
}

/// With `forward_pass` the module comes before pam_unix and hands it the password; without,
/// it comes after the password.
pub(crate) fn check_order(entries: &[Entry]) -> Vec<Finding> {
    let Some((sshield, Some(unix), forward)) = positions(entries) else {
        return Vec::new();
    };
    let (s, u) = (&entries[sshield], &entries[unix]);
    if forward && unix < sshield {
        return vec![Finding::new(
            Severity::Warn,
            "pam-order",
            format!(
                "{}: pam_sshield forward_pass comes after pam_unix ({}): the password is asked twice",
                s.origin, u.origin
            ),
            "put `auth required pam_sshield.so forward_pass` before `@include common-auth` (see docs/pam.md)",
        )];
    }
    if forward
        && !u
            .args
            .iter()
            .any(|a| a == "use_first_pass" || a == "try_first_pass")
    {
        return vec![Finding::new(
            Severity::Warn,
            "pam-order",
            format!(
                "{}: pam_unix has neither use_first_pass nor try_first_pass, so it asks again \
                 instead of taking the password pam_sshield forward_pass hands on",
                u.origin
            ),
            "add use_first_pass (or try_first_pass) to the pam_unix line",
        )];
    }
    if !forward && sshield < unix {
        return vec![Finding::new(
            Severity::Warn,
            "pam-order",
            format!(
                "{}: pam_sshield comes before pam_unix ({}): the code is asked, and used up, \
                 before the password is checked",
                s.origin, u.origin
            ),
            "move `auth required pam_sshield.so` after `@include common-auth` (or add \
             forward_pass for one-prompt clients; see docs/pam.md)",
        )];
    }
    Vec::new()
}

/// After `auth required pam_unix.so`, PAM goes on to the code even when the password was
/// wrong, and a right code typed then is spent.
pub(crate) fn check_barrier(entries: &[Entry]) -> Vec<Finding> {
    let Some((sshield, Some(unix), false)) = positions(entries) else {
        return Vec::new();
    };
    if unix > sshield {
        return Vec::new();
    }
    let u = &entries[unix];
    if u.control == "sufficient" {
        return vec![Finding::new(
            Severity::Error,
            "pam-barrier",
            format!(
                "{}: `auth sufficient pam_unix.so` ends the stack at a right password: \
                 pam_sshield ({}) never runs",
                u.origin, entries[sshield].origin
            ),
            "use `auth requisite pam_unix.so`, or `@include common-auth`",
        )];
    }
    if entries[unix..sshield].iter().any(Entry::stops_on_failure) {
        return Vec::new();
    }
    vec![Finding::new(
        Severity::Warn,
        "pam-barrier",
        format!(
            "{}: `auth {} pam_unix.so` lets PAM go on to the code after a wrong password, \
             and a right code typed then is spent",
            u.origin, u.control
        ),
        "use `auth requisite pam_unix.so` (or `@include common-auth`, which ends the stack \
         at a wrong password); see docs/pam.md \"Order matters\"",
    )]
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        reason = "a test: a failed unwrap is a failed test"
    )]
    use super::*;

    const COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\n\
        auth requisite pam_deny.so\nauth required pam_permit.so\n";

    fn stack(text: &str) -> Vec<Entry> {
        let read = |p: &Path| {
            if p.ends_with("common-auth") {
                Ok(COMMON_AUTH.to_owned())
            } else {
                Err(io::ErrorKind::NotFound.into())
            }
        };
        let mut s = Stack::default();
        parse_into(text, "sshd", Path::new("/pam.d"), &read, &mut s, 0);
        assert!(s.problems.is_empty());
        s.entries
    }

    #[test]
    fn debian_layout_is_healthy() {
        let e = stack("# comment\n@include common-auth\nauth required pam_sshield.so debug\naccount include common-account\n");
        assert_eq!(e.len(), 4);
        assert!(check_order(&e).is_empty());
        assert!(check_barrier(&e).is_empty());
        assert!(check_module_args(&e).is_empty());
    }

    #[test]
    fn required_unix_without_barrier() {
        let e = stack("auth required pam_unix.so\nauth required /lib/security/pam_sshield.so\n");
        assert_eq!(check_barrier(&e)[0].check, "pam-barrier");
        let e = stack("auth requisite pam_unix.so\nauth required pam_sshield.so\n");
        assert!(check_barrier(&e).is_empty());
    }

    #[test]
    fn forward_pass_order_and_args() {
        let e = stack("auth required pam_sshield.so forward_pass\n@include common-auth\n");
        assert!(check_order(&e)[0].message.contains("use_first_pass"));
        let e = stack("auth include common-auth\nauth required pam_sshield.so forward_pass\n");
        assert!(check_order(&e)[0].message.contains("twice"));
        let e = stack("auth required pam_sshield.so use_frist_pass config=rel\n");
        assert_eq!(check_module_args(&e).len(), 2);
    }
}
