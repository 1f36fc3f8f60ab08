//! What `pam_sm_authenticate` does, in safe Rust: find out who is logging in from where, load
//! the config, ask the engine whether a code is needed, read the code the way the module
//! arguments say, and let the engine decide.
//!
//! Nothing here decides a login. The engine says who is exempt ([`Engine::requirement`]) and
//! whether a code is good ([`Engine::check`]); this file only moves text between libpam and the
//! engine, logs the engine's answer, waits the delay it asks for, and turns it into a PAM code.
//! Every path that is not an explicit allow from the engine returns a failure.

use std::ffi::{c_int, CStr};
use std::net::IpAddr;
use std::thread;

use sshield_core::log::Subject;
use sshield_core::passed::{self, Passed};
use sshield_core::{
    Account, Attempt, Config, Engine, FirstFactor, Outcome, Requirement, Response, UnixTime,
    UserName,
};
use zeroize::Zeroizing;

use crate::args::{CodeSource, ModuleArgs};
use crate::code_shape::{looks_like_code, splits};
use crate::ffi;
use crate::handle::Pam;
use crate::logging::Log;

/// The one prompt of `forward_pass`: the password and the code in one field, for clients that
/// show a single prompt (FileZilla, some IDEs).
pub(crate) const FORWARD_PASS_PROMPT: &str = "Password & verification code: ";

/// Authenticates the user of `pam`'s transaction; returns the PAM result.
pub(crate) fn authenticate(pam: &Pam, argv: &[&CStr]) -> c_int {
    let args = match ModuleArgs::parse(argv) {
        Ok(args) => args,
        Err(e) => {
            // Before asking for anything: a broken pam.d line denies at once.
            let who = Who::from_items(pam);
            Log::new(pam, false).setup_error(&who.subject(), &e.to_string());
            return ffi::PAM_SERVICE_ERR;
        }
    };
    let log = Log::new(pam, args.debug);
    log.debug(|| {
        format!(
            "config={} code from {}",
            args.config.display(),
            args.code_source.as_str()
        )
    });
    let who = match Who::ask(pam) {
        Ok(who) => who,
        Err(rc) => {
            log.error(&format!(
                "no user name (pam_get_user returned {rc}); login denied"
            ));
            return ffi::PAM_AUTH_ERR;
        }
    };
    log.debug(|| match &who.first_factor {
        Some(info) => format!("first factor: {}", first_factor_methods(info)),
        None => "first factor: unknown (no SSH_AUTH_INFO_0)".to_owned(),
    });
    if args.after_publickey && !first_factor_was_publickey(who.first_factor.as_deref()) {
        // Not this line's login: the password path after it asks for the code.
        log.debug(|| "after_publickey: the first factor was not a public key; ignored".to_owned());
        return ffi::PAM_IGNORE;
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            log.setup_error(&who.subject(), &e.to_string());
            return ffi::PAM_SERVICE_ERR;
        }
    };
    let log = log.with_file(config.log_file.clone());
    let engine = Engine::new(&config);
    match engine.requirement(&who.subject(), UnixTime::now()) {
        Requirement::Exempt(exemption) => {
            log.exemption(&who.subject(), &exemption);
            return ffi::PAM_SUCCESS;
        }
        Requirement::Prompt => log.debug(|| "a code is required".to_owned()),
    }
    let login = Login {
        pam,
        log: &log,
        engine: &engine,
        who: &who,
        prompt: &config.prompt,
    };
    match args.code_source {
        CodeSource::Prompt => login.ask_for_code(),
        CodeSource::UseFirstPass => login.use_first_pass(),
        CodeSource::TryFirstPass => login.try_first_pass(),
        CodeSource::ForwardPass => login.forward_pass(),
    }
}

/// Whether sshd's `SSH_AUTH_INFO_0` (set only by sshd, with `ExposeAuthInfo yes`) says a public
/// key was accepted before this keyboard-interactive step.
fn first_factor_was_publickey(info: Option<&str>) -> bool {
    info.is_some_and(|i| {
        FirstFactor::parse(i)
            .methods
            .iter()
            .any(|m| m == "publickey")
    })
}

/// Who is logging in, from where, through which service.
#[derive(Debug)]
struct Who {
    user: Account,
    service: String,
    source: Option<IpAddr>,
    /// `PAM_RHOST` when it is a host name and no address is known.
    source_name: Option<String>,
    /// sshd's account of the first factor (`SSH_AUTH_INFO_0`, with `ExposeAuthInfo yes`).
    first_factor: Option<String>,
}

impl Who {
    /// Asks libpam for the user name (the application may prompt for it).
    fn ask(pam: &Pam) -> Result<Self, c_int> {
        let user = pam.user().map_err(|e| e.0)?;
        Ok(Self::with_user(pam, user))
    }

    /// What is known without asking anything, for logging a refusal.
    fn from_items(pam: &Pam) -> Self {
        let user = pam.text_item(ffi::PAM_USER).unwrap_or_default();
        Self::with_user(pam, user)
    }

    fn with_user(pam: &Pam, user: String) -> Self {
        // sshd passes the name as typed; the engine decides for the account it stands for
        // (`ALICE` may be `alice`), and the log names that account too. Resolved here, once
        // for the whole login. If the name service fails, the engine fails closed with the
        // name as typed.
        let user = Account::resolve(&user);
        let rhost = pam.text_item(ffi::PAM_RHOST).unwrap_or_default();
        let (source, source_name) = match parse_rhost(&rhost) {
            Some(address) => (Some(address), None),
            // With `UseDNS yes`, sshd puts the client's host name in PAM_RHOST, and its address
            // in SSH_CONNECTION in the PAM environment (OpenSSH's sshpam_init; set by sshd
            // before any module runs, never by the client). Without either, the name itself
            // stands for the source: a remote login never counts as a local one.
            None => match pam
                .env(c"SSH_CONNECTION")
                .and_then(|c| connection_source(&c))
            {
                Some(address) => (Some(address), None),
                None => (None, Some(rhost).filter(|h| !h.trim().is_empty())),
            },
        };
        Self {
            user,
            service: pam.text_item(ffi::PAM_SERVICE).unwrap_or_default(),
            source,
            source_name,
            first_factor: pam.env(c"SSH_AUTH_INFO_0"),
        }
    }

    fn subject(&self) -> Subject<'_> {
        Subject {
            user: &self.user,
            source: self.source,
            service: &self.service,
            first_factor: self.first_factor.as_deref(),
        }
    }
}

/// One login that needs a code.
struct Login<'a> {
    pam: &'a Pam,
    log: &'a Log<'a>,
    engine: &'a Engine,
    who: &'a Who,
    prompt: &'a str,
}

impl Login<'_> {
    /// No argument: ask with the configured prompt.
    fn ask_for_code(&self) -> c_int {
        match self.ask(self.prompt) {
            Ok(typed) => self.finish(self.check(&Response::new(&typed))),
            Err(rc) => rc,
        }
    }

    /// `use_first_pass`: the code is what an earlier module put in `PAM_AUTHTOK`.
    fn use_first_pass(&self) -> c_int {
        let Some(token) = self.pam.authtok() else {
            self.log.setup_error(
                &self.who.subject(),
                "use_first_pass, but no earlier module set PAM_AUTHTOK; put a module that asks \
                 for it before pam_sshield, or use try_first_pass",
            );
            return ffi::PAM_AUTH_ERR;
        };
        self.finish(self.check(&Response::new(&token)))
    }

    /// `try_first_pass`: `PAM_AUTHTOK` if it holds a good code, else ask.
    fn try_first_pass(&self) -> c_int {
        match self.pam.authtok() {
            Some(token) if looks_like_code(&token) => {
                let outcome = self.check(&Response::new(&token));
                if outcome.decision.is_allow() {
                    return ffi::PAM_SUCCESS;
                }
                // A failure waits before the next try, as it would before the answer.
                thread::sleep(outcome.delay);
            }
            Some(_) => self.log.debug(|| {
                "try_first_pass: PAM_AUTHTOK is not shaped like a code; asking".to_owned()
            }),
            None => self
                .log
                .debug(|| "try_first_pass: no PAM_AUTHTOK; asking".to_owned()),
        }
        self.ask_for_code()
    }

    /// `forward_pass`: one prompt for password and code; the code is split off the end and
    /// checked, and the password goes on in `PAM_AUTHTOK` to the module after this one
    /// (`pam_unix.so try_first_pass`), which must therefore come after pam_sshield.
    fn forward_pass(&self) -> c_int {
        let typed = match self.ask(FORWARD_PASS_PROMPT) {
            Ok(typed) => typed,
            Err(rc) => return rc,
        };
        let lengths = code_lengths(self.engine, self.who.user.name());
        let candidates = splits(&typed, &lengths);
        self.log.debug(|| {
            format!(
                "forward_pass: codes of {lengths:?} digits, {} way(s) to split",
                candidates.len()
            )
        });
        // With no code at the end, the whole entry is the password: the next module checks it
        // without asking again, and the login fails here.
        let mut password: &str = candidates.first().map_or(&typed, |s| s.password);
        let mut outcome = None;
        if candidates.is_empty() {
            outcome = Some(self.check(&Response::new("")));
        }
        for split in &candidates {
            let this = self.check(&Response::new(split.code));
            let allowed = this.decision.is_allow();
            outcome = Some(this);
            if allowed {
                password = split.password;
                break;
            }
        }
        if let Err(e) = self.pam.set_authtok(password) {
            self.log.error(&format!(
                "forward_pass: cannot set PAM_AUTHTOK (PAM error {}); login denied",
                e.0
            ));
            return ffi::PAM_AUTH_ERR;
        }
        match outcome {
            Some(outcome) => self.finish(outcome),
            None => ffi::PAM_AUTH_ERR,
        }
    }

    /// Asks without echo; a failed conversation is logged and denies.
    fn ask(&self, prompt: &str) -> Result<Zeroizing<String>, c_int> {
        self.pam.ask_secret(prompt).map_err(|e| {
            self.log.error(&format!(
                "the conversation failed (PAM error {}): the client could not be asked for a \
                 code; login denied",
                e.0
            ));
            ffi::PAM_AUTH_ERR
        })
    }

    /// Asks the engine about `response`, and logs its decision.
    fn check(&self, response: &Response) -> Outcome {
        let attempt = Attempt {
            user: &self.who.user,
            source: self.who.source,
            source_name: self.who.source_name.as_deref(),
            service: &self.who.service,
            response,
            now: UnixTime::now(),
            first_factor: self.who.first_factor.as_deref(),
            first_factor_passed: false,
        };
        let outcome = self.engine.check(&attempt);
        self.log.decision(&self.who.subject(), &outcome.decision);
        if outcome.decision.is_allow() {
            self.mark_passed(attempt.now);
        }
        outcome
    }

    /// Leaves the marker that ties this pass to this process and its parent, one of which is
    /// the session's sshd monitor (`sshield setup --confirm` looks for it). Never changes the
    /// decision.
    fn mark_passed(&self, now: UnixTime) {
        let Ok(user) = UserName::new(self.who.user.name()) else {
            return;
        };
        let passed = Passed {
            at: now.0,
            service: self.who.service.clone(),
            pid: std::process::id(),
            parent: std::os::unix::process::parent_id(),
        };
        if let Err(e) = passed::record(self.engine.store(), &user, &passed) {
            self.log.error(&format!(
                "cannot record which session passed in {}: {e}; `sshield setup --confirm` from this session will be refused",
                passed::path(self.engine.store(), &user).display()
            ));
        }
    }

    /// The PAM result of a decision, after the delay a failure must wait.
    fn finish(&self, outcome: Outcome) -> c_int {
        if outcome.decision.is_allow() {
            ffi::PAM_SUCCESS
        } else {
            thread::sleep(outcome.delay);
            ffi::PAM_AUTH_ERR
        }
    }
}

/// The digit counts of `user`'s active tokens, for splitting `forward_pass` entries; 6 when
/// there are none (or the record cannot be read), so every user is handled alike and the
/// engine's denial names the real problem.
///
/// This peeks at the record without a lock, which is safe (records are replaced atomically)
/// but is a question the engine should answer; see the crate docs.
fn code_lengths(engine: &Engine, user: &str) -> Vec<usize> {
    let record = UserName::new(user)
        .ok()
        .and_then(|name| engine.store().load(&name).ok().flatten());
    let mut lengths: Vec<usize> = Vec::new();
    for auth in record.iter().flat_map(|r| &r.authenticators) {
        let digits = usize::try_from(auth.digits.get()).unwrap_or(0);
        if auth.active && !lengths.contains(&digits) {
            lengths.push(digits);
        }
    }
    if lengths.is_empty() {
        lengths.push(6);
    }
    lengths
}

/// `PAM_RHOST` as an address. sshd sets the client's address (or, with `UseDNS yes`, maybe a
/// host name, which is no address: it never matches an exempt network). Accepts `[v6]` and
/// drops a `%zone`.
fn parse_rhost(rhost: &str) -> Option<IpAddr> {
    let text = rhost.trim();
    let text = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    let text = match text.split_once('%') {
        Some((address, _zone)) if address.contains(':') => address,
        _ => text,
    };
    text.parse().ok()
}

/// The client's address in sshd's `SSH_CONNECTION` (`CLIENT_ADDR CLIENT_PORT SERVER_ADDR
/// SERVER_PORT`).
fn connection_source(connection: &str) -> Option<IpAddr> {
    let mut fields = connection.split_whitespace();
    let (address, port) = (fields.next()?, fields.next()?);
    port.parse::<u16>().ok()?;
    parse_rhost(address)
}

/// The method names in `SSH_AUTH_INFO_0` (`publickey ssh-ed25519 AAAA...` per line), without
/// the keys, for debug lines.
fn first_factor_methods(info: &str) -> String {
    let methods: Vec<&str> = info
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(|m| {
            if m.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                m
            } else {
                "?"
            }
        })
        .collect();
    if methods.is_empty() {
        "none".to_owned()
    } else {
        methods.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_public_key_counts_for_after_publickey() {
        let key = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n";
        assert!(first_factor_was_publickey(Some(key)));
        assert!(first_factor_was_publickey(Some(&format!(
            "password\n{key}"
        ))));
        assert!(!first_factor_was_publickey(Some("password\n")));
        assert!(!first_factor_was_publickey(Some("keyboard-interactive\n")));
        assert!(!first_factor_was_publickey(Some("")));
        assert!(!first_factor_was_publickey(None));
    }

    #[test]
    fn rhost_addresses_and_names() {
        let v4: IpAddr = "203.0.113.9".parse().unwrap();
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_rhost("203.0.113.9"), Some(v4));
        assert_eq!(parse_rhost(" 203.0.113.9\n"), Some(v4));
        assert_eq!(parse_rhost("2001:db8::1"), Some(v6));
        assert_eq!(parse_rhost("[2001:db8::1]"), Some(v6));
        assert_eq!(
            parse_rhost("fe80::1%eth0"),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(
            parse_rhost("::ffff:192.0.2.1"),
            Some("::ffff:192.0.2.1".parse().unwrap()),
            "kept as is: the engine treats mapped addresses as IPv4"
        );
        for not_an_address in ["", "host.example.org", "localhost", "1.2.3", "10.0.0.1%x"] {
            assert_eq!(parse_rhost(not_an_address), None, "{not_an_address:?}");
        }
    }

    #[test]
    fn the_client_address_of_ssh_connection() {
        assert_eq!(
            connection_source("203.0.113.9 50022 192.0.2.1 22"),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(
            connection_source("2001:db8::7 50022 2001:db8::1 22"),
            Some("2001:db8::7".parse().unwrap())
        );
        for bad in ["", "203.0.113.9", "host.example 1 2 3", "203.0.113.9 x 1 2"] {
            assert_eq!(connection_source(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn first_factor_shows_methods_not_keys() {
        let info = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO\npassword\n";
        assert_eq!(first_factor_methods(info), "publickey,password");
        assert_eq!(
            first_factor_methods("keyboard-interactive"),
            "keyboard-interactive"
        );
        assert_eq!(first_factor_methods("Evil\u{1b}[0m x"), "?");
        assert_eq!(first_factor_methods(""), "none");
    }
}
