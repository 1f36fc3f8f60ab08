//! The module arguments of a `pam.d` line: `config=PATH`, `debug`, and how the code is read.
//!
//! An argument the module does not know is an error that denies every login through this
//! line, never a warning: a misspelt `use_frist_pass` silently ignored would change how codes
//! are read, and a misspelt option in a security module must never quietly weaken it.

use std::ffi::CStr;
use std::fmt;
use std::path::PathBuf;

use sshield_core::config::DEFAULT_CONFIG_PATH;

/// The parsed arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ModuleArgs {
    /// The config file (`config=`); `/etc/sshield/sshield.toml` by default.
    pub config: PathBuf,
    /// Log what the module does at debug level (never a code or password).
    pub debug: bool,
    /// Where the code comes from.
    pub code_source: CodeSource,
    /// `after_publickey`: act only when sshd's `SSH_AUTH_INFO_0` shows the first factor was a
    /// public key; otherwise return `PAM_IGNORE`, so the lines after this one (the password,
    /// then pam_sshield again) run instead. For "a key or a password, then a code".
    pub after_publickey: bool,
}

/// Where the module gets the code from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CodeSource {
    /// Ask for it with the configured prompt (no argument).
    Prompt,
    /// `use_first_pass`: take it from `PAM_AUTHTOK`, set by an earlier module; never ask.
    UseFirstPass,
    /// `try_first_pass`: take it from `PAM_AUTHTOK` if that holds a good code, else ask.
    TryFirstPass,
    /// `forward_pass`: ask once for the password with the code typed right after it, split
    /// the code off, and hand the password on in `PAM_AUTHTOK` to the modules after this one.
    ForwardPass,
}

impl CodeSource {
    /// The argument that selects this source.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Prompt => "prompt",
            Self::UseFirstPass => "use_first_pass",
            Self::TryFirstPass => "try_first_pass",
            Self::ForwardPass => "forward_pass",
        }
    }
}

/// Why the arguments cannot be used. Every one denies the login with `PAM_SERVICE_ERR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ArgError {
    /// Not an argument this module knows.
    Unknown(String),
    /// `prompt=` was given: the prompt is set in the config file.
    PromptArgument,
    /// `config=` with an empty or relative path.
    ConfigPath(String),
    /// `config=` given twice with different paths: the first, then the second.
    ConfigTwice(PathBuf, PathBuf),
    /// Two of `use_first_pass`, `try_first_pass`, `forward_pass`.
    ConflictingSources(CodeSource, CodeSource),
}

const KNOWN: &str =
    "config=PATH, debug, use_first_pass, try_first_pass, forward_pass, after_publickey";

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(arg) => write!(
                f,
                "unknown module argument {arg:?}; the arguments are {KNOWN} (see pam_sshield(8))"
            ),
            Self::PromptArgument => f.write_str(
                "prompt= is not a module argument; set `prompt = \"...\"` in the config file",
            ),
            Self::ConfigPath(path) => write!(
                f,
                "config={path:?} must be an absolute path, e.g. config=/etc/sshield/sshield.toml"
            ),
            Self::ConfigTwice(first, second) => write!(
                f,
                "config= is given twice with different paths, {} and {}; keep one",
                first.display(),
                second.display()
            ),
            Self::ConflictingSources(a, b) => write!(
                f,
                "{} and {} cannot be combined; choose one way to read the code",
                a.as_str(),
                b.as_str()
            ),
        }
    }
}

impl ModuleArgs {
    /// Parses the arguments libpam passed.
    pub(crate) fn parse(argv: &[&CStr]) -> Result<Self, ArgError> {
        let mut config: Option<PathBuf> = None;
        let mut debug = false;
        let mut after_publickey = false;
        let mut code_source = CodeSource::Prompt;
        for raw in argv {
            // Not UTF-8 cannot be any argument we know; show it escaped.
            let Ok(arg) = raw.to_str() else {
                return Err(ArgError::Unknown(
                    String::from_utf8_lossy(raw.to_bytes()).into_owned(),
                ));
            };
            let source = match arg {
                "debug" => {
                    debug = true;
                    continue;
                }
                "after_publickey" => {
                    after_publickey = true;
                    continue;
                }
                "use_first_pass" => CodeSource::UseFirstPass,
                "try_first_pass" => CodeSource::TryFirstPass,
                "forward_pass" => CodeSource::ForwardPass,
                _ => {
                    if let Some(path) = arg.strip_prefix("config=") {
                        let path = PathBuf::from(path);
                        if !path.is_absolute() {
                            return Err(ArgError::ConfigPath(arg["config=".len()..].to_owned()));
                        }
                        if let Some(first) = config.as_ref().filter(|c| **c != path) {
                            return Err(ArgError::ConfigTwice(first.clone(), path));
                        }
                        config = Some(path);
                        continue;
                    }
                    if arg.starts_with("prompt=") {
                        return Err(ArgError::PromptArgument);
                    }
                    return Err(ArgError::Unknown(arg.to_owned()));
                }
            };
            if code_source != CodeSource::Prompt && code_source != source {
                return Err(ArgError::ConflictingSources(code_source, source));
            }
            code_source = source;
        }
        Ok(Self {
            config: config.unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_PATH)),
            debug,
            code_source,
            after_publickey,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CString;

    fn parse(args: &[&str]) -> Result<ModuleArgs, ArgError> {
        let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        let borrowed: Vec<&CStr> = owned.iter().map(CString::as_c_str).collect();
        ModuleArgs::parse(&borrowed)
    }

    #[test]
    fn defaults() {
        let a = parse(&[]).unwrap();
        assert_eq!(a.config, PathBuf::from("/etc/sshield/sshield.toml"));
        assert!(!a.debug);
        assert_eq!(a.code_source, CodeSource::Prompt);
        assert!(!a.after_publickey);
    }

    #[test]
    fn every_argument() {
        let a = parse(&[
            "config=/etc/x.toml",
            "debug",
            "forward_pass",
            "after_publickey",
        ])
        .unwrap();
        assert_eq!(a.config, PathBuf::from("/etc/x.toml"));
        assert!(a.debug);
        assert!(a.after_publickey);
        assert_eq!(a.code_source, CodeSource::ForwardPass);
        let sources = [
            ("use_first_pass", CodeSource::UseFirstPass),
            ("try_first_pass", CodeSource::TryFirstPass),
        ];
        for (arg, source) in sources {
            assert_eq!(parse(&[arg]).unwrap().code_source, source, "{arg}");
            // Repeating the same one is harmless.
            assert_eq!(
                parse(&[arg, arg]).unwrap().code_source,
                source,
                "{arg} twice"
            );
        }
        // PAM's `[config=/path with space]` syntax arrives as one argument.
        let a = parse(&["config=/etc/my dir/s.toml"]).unwrap();
        assert_eq!(a.config, PathBuf::from("/etc/my dir/s.toml"));
    }

    #[test]
    fn mistakes_are_errors_that_say_what_to_do() {
        let cases: &[(&[&str], &str)] = &[
            (
                &["use_frist_pass"],
                "unknown module argument \"use_frist_pass\"; the arguments are config=PATH, debug,",
            ),
            (&["Debug"], "unknown module argument \"Debug\""),
            (&["config"], "unknown module argument \"config\""),
            (&["config="], "config=\"\" must be an absolute path"),
            (
                &["config=sshield.toml"],
                "config=\"sshield.toml\" must be an absolute path",
            ),
            (
                &["config=/a.toml", "config=/b.toml"],
                "config= is given twice",
            ),
            (
                &["prompt=Code: "],
                "prompt= is not a module argument; set `prompt = \"...\"` in the config file",
            ),
            (
                &["use_first_pass", "forward_pass"],
                "use_first_pass and forward_pass cannot be combined",
            ),
            (
                &["try_first_pass", "use_first_pass"],
                "try_first_pass and use_first_pass cannot be combined",
            ),
        ];
        for (args, expected) in cases {
            let message = parse(args).unwrap_err().to_string();
            assert!(message.starts_with(expected), "{args:?}: {message}");
        }
        assert!(parse(&["config=/a.toml", "config=/a.toml"]).is_ok());
    }

    #[test]
    fn arguments_that_are_not_utf8_are_unknown() {
        let raw = CString::new(vec![b'd', 0xff]).unwrap();
        let err = ModuleArgs::parse(&[raw.as_c_str()]).unwrap_err();
        assert_eq!(err, ArgError::Unknown("d\u{fffd}".to_owned()));
    }
}
