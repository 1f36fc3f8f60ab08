//! What `pam_sm_authenticate` does, in safe Rust: a loop over the steps of a core
//! [`Login`], doing only PAM's I/O.
//!
//! Nothing here decides a login, counts a try, chooses a severity or reads a record: core's
//! [`Login`] says who is exempt, what to ask, whether an answer is good, what to log and how
//! long to wait. This file builds the [`Caller`] from libpam's items, asks through the PAM
//! conversation, reads and sets `PAM_AUTHTOK` as the module arguments say, sleeps the delays it
//! is given, and turns the last step into a PAM code. Every path that is not an explicit
//! allow (or exemption) from core returns a failure.

use std::ffi::{c_int, CStr};
use std::net::IpAddr;
use std::sync::Arc;
use std::thread;

use sshield_core::relay::DaemonRemote;
use sshield_core::{Account, Ask, Caller, Config, Engine, Entry, Login, Response, Step, UnixTime};
use zeroize::Zeroizing;

use crate::args::{CodeSource, ModuleArgs};
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
            Log::new(pam, false).config_error(&caller_from_items(pam), &e.to_string());
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
    let caller = match pam.user() {
        Ok(user) => caller(pam, user),
        Err(rc) => {
            log.error(&format!(
                "no user name (pam_get_user returned {}); login denied",
                rc.0
            ));
            return ffi::PAM_AUTH_ERR;
        }
    };
    log.debug(|| match &caller.first_factor {
        Some(first) => format!("first factor: {}", first_factor_methods(&first.methods)),
        None => "first factor: unknown (no SSH_AUTH_INFO_0)".to_owned(),
    });
    if args.after_publickey && !caller.passed_publickey() {
        // Not this line's login: the password path after it asks for the code. Before the
        // config is read: nothing of it applies to a login this line does not decide.
        log.debug(|| "after_publickey: the first factor was not a public key; ignored".to_owned());
        return ffi::PAM_IGNORE;
    }
    let config = match Config::load(&args.config) {
        Ok(config) => config,
        Err(e) => {
            log.config_error(&caller, &e.to_string());
            return ffi::PAM_SERVICE_ERR;
        }
    };
    let log = log.with_file(config.log_file.clone());
    let mut engine = Engine::new(&config);
    if let Some(server) = &config.server {
        // A fleet host: users with no local record are the server's, asked through the local
        // daemon over its Unix socket (the module opens no network connection).
        let timeout = DaemonRemote::timeout_for(server.timeout, server.urls.len());
        engine = engine.with_remote(Arc::new(DaemonRemote::new(config.socket.clone(), timeout)));
    }
    // One answer per conversation: sshd's `MaxAuthTries` counts the conversations.
    let mut login = engine.begin(caller).with_tries(1);
    let step = login.start(UnixTime::now(), &log);
    Conversation {
        pam,
        log: &log,
        login,
    }
    .run(step, args.code_source)
}

/// The caller of `pam`'s transaction, for `user`.
fn caller(pam: &Pam, user: String) -> Caller {
    // sshd passes the name as typed; core decides for the account it stands for (`ALICE` may
    // be `alice`), and the log names that account too. Resolved here, once for the whole
    // login. If the name service fails, core fails closed with the name as typed.
    let user = Account::resolve(&user);
    let rhost = pam.text_item(ffi::PAM_RHOST).unwrap_or_default();
    let (source, source_name) = match parse_rhost(&rhost) {
        Some(address) => (Some(address), None),
        // With `UseDNS yes`, sshd puts the client's host name in PAM_RHOST, and its address
        // in SSH_CONNECTION in the PAM environment (OpenSSH's sshpam_init; set by sshd before
        // any module runs, never by the client). Without either, the name itself stands for
        // the source: a remote login never counts as a local one.
        None => match pam
            .env(c"SSH_CONNECTION")
            .and_then(|c| connection_source(&c))
        {
            Some(address) => (Some(address), None),
            None => (None, Some(rhost).filter(|h| !h.trim().is_empty())),
        },
    };
    let service = pam.text_item(ffi::PAM_SERVICE).unwrap_or_default();
    Caller {
        source_name,
        ..Caller::new(user, service)
            .from_source(source)
            .with_ssh_auth_info(pam.env(c"SSH_AUTH_INFO_0").as_deref())
    }
}

/// What is known without asking anything, for logging a refusal.
fn caller_from_items(pam: &Pam) -> Caller {
    caller(pam, pam.text_item(ffi::PAM_USER).unwrap_or_default())
}

/// One login's PAM side.
struct Conversation<'a> {
    pam: &'a Pam,
    log: &'a Log<'a>,
    login: Login<'a>,
}

impl Conversation<'_> {
    /// Feeds the login what the module arguments say until it decides.
    fn run(mut self, mut step: Step, source: CodeSource) -> c_int {
        // The pre-supplied `PAM_AUTHTOK` is offered once, at the first question.
        let mut pre_supplied = match source {
            CodeSource::UseFirstPass | CodeSource::TryFirstPass => Some(self.pam.authtok()),
            CodeSource::Prompt | CodeSource::ForwardPass => None,
        };
        // The prompt of the last question, to ask again after a denial that was not the last.
        let mut prompt: Option<String> = None;
        loop {
            let entry = match step {
                Step::Exempt(_) => return ffi::PAM_SUCCESS,
                Step::Allowed(allowed) => {
                    if let Err(rc) = self.hand_on(allowed.password.as_ref().map(|p| p.as_str())) {
                        return rc;
                    }
                    self.login.mark_session(
                        std::process::id(),
                        std::os::unix::process::parent_id(),
                        UnixTime::now(),
                        self.log,
                    );
                    return ffi::PAM_SUCCESS;
                }
                Step::Denied(denied) => {
                    if let Err(rc) = self.hand_on(denied.password.as_ref().map(|p| p.as_str())) {
                        return rc;
                    }
                    // A failure waits before the next try, as it would before the answer.
                    thread::sleep(denied.delay);
                    // use_first_pass never asks.
                    if denied.last || source == CodeSource::UseFirstPass {
                        return ffi::PAM_AUTH_ERR;
                    }
                    // (Only a pre-supplied answer leaves a try, and it comes after a question.)
                    let Some(again) = prompt.as_deref() else {
                        return ffi::PAM_AUTH_ERR;
                    };
                    match self.ask(again) {
                        Ok(typed) => Entry::Typed(Response::new(&typed)),
                        Err(rc) => return rc,
                    }
                }
                Step::Push(pushed) => {
                    // The number is in the prompt itself: OpenSSH shows a PAM info message only
                    // with the next prompt. Enter waits for the phone; a code is checked.
                    let typed = match self.ask(&pushed.prompt) {
                        Ok(typed) => typed,
                        Err(rc) => return rc,
                    };
                    if typed.trim().is_empty() {
                        step = self.login.await_push(self.log);
                        continue;
                    }
                    Entry::Typed(Response::new(&typed))
                }
                Step::Ask(ask) => {
                    if prompt.is_none() {
                        self.log.debug(|| "a code is required".to_owned());
                    }
                    prompt = Some(ask.prompt.clone());
                    match self.entry(source, pre_supplied.take(), &ask) {
                        Ok(entry) => entry,
                        Err(rc) => return rc,
                    }
                }
            };
            step = self.login.next(entry, UnixTime::now(), self.log);
        }
    }

    /// The answer to `ask`: the pre-supplied `PAM_AUTHTOK` the first time (`pre`, when the
    /// arguments take it), else what the user types; `Err` with the PAM code when there is none.
    fn entry(
        &self,
        source: CodeSource,
        pre: Option<Option<Zeroizing<String>>>,
        ask: &Ask,
    ) -> Result<Entry, c_int> {
        Ok(match (source, pre) {
            (CodeSource::UseFirstPass, Some(None)) => {
                self.log.config_error(
                    self.login.caller(),
                    "use_first_pass, but no earlier module set PAM_AUTHTOK; put a module that \
                     asks for it before pam_sshield, or use try_first_pass",
                );
                return Err(ffi::PAM_AUTH_ERR);
            }
            (_, Some(Some(token))) => Entry::PreSupplied(Response::new(&token)),
            // use_first_pass never asks: its token was no code.
            (CodeSource::UseFirstPass, None) => Entry::Unanswered,
            (CodeSource::ForwardPass, _) => Entry::PasswordAndCode(self.ask(FORWARD_PASS_PROMPT)?),
            (_, pre) => {
                if pre.is_some() {
                    self.log
                        .debug(|| "try_first_pass: no PAM_AUTHTOK; asking".to_owned());
                } else if ask.note.is_some() {
                    self.log.debug(|| {
                        "try_first_pass: PAM_AUTHTOK is not shaped like a code; asking".to_owned()
                    });
                }
                Entry::Typed(Response::new(&self.ask(&ask.prompt)?))
            }
        })
    }

    /// `forward_pass`: the password part goes on in `PAM_AUTHTOK` to the module after this one
    /// (`pam_unix.so try_first_pass`), which must therefore come after pam_sshield.
    fn hand_on(&self, password: Option<&str>) -> Result<(), c_int> {
        let Some(password) = password else {
            return Ok(());
        };
        self.pam.set_authtok(password).map_err(|e| {
            self.log.error(&format!(
                "forward_pass: cannot set PAM_AUTHTOK (PAM error {}); login denied",
                e.0
            ));
            ffi::PAM_AUTH_ERR
        })
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

/// The method names of the first factor, for debug lines (core keeps only names made of
/// letters, digits and dashes).
fn first_factor_methods(methods: &[String]) -> String {
    let methods: Vec<&str> = methods
        .iter()
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
    use sshield_core::FirstFactor;

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
        let methods = |info: &str| first_factor_methods(&FirstFactor::parse(info).methods);
        let info = "publickey ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIO\npassword\n";
        assert_eq!(methods(info), "publickey,password");
        assert_eq!(methods("keyboard-interactive"), "keyboard-interactive");
        assert_eq!(methods("Evil\u{1b}[0m x"), "none");
        assert_eq!(first_factor_methods(&["Evil".to_owned()]), "?");
        assert_eq!(methods(""), "none");
    }
}
