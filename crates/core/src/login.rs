//! One login conversation, as a state machine without I/O: every front end drives it and only
//! moves text, sleeps and returns codes (the shape of rustls's `Connection` and sudo-rs's
//! `Pipeline`).
//!
//! ```text
//! let mut login = engine.begin(caller);
//! let mut step = login.start(now, &log);             // Exempt | Ask
//! loop {
//!     match step {
//!         Step::Ask(ask) => step = login.next(Entry::Typed(read(ask.prompt)), now, &log),
//!         Step::Denied(d) if !d.last => { sleep(d.delay); /* ask again */ }
//!         Step::Denied(d) => { sleep(d.delay); return refuse }
//!         Step::Allowed(_) | Step::Exempt(_) => return let_in,
//!     }
//! }
//! ```
//!
//! What is decided here, once for every front end (before issue 10 the PAM module and the
//! daemon with its `sshield login` helper each wrote their own): who is exempt (and, in
//! [`Caller::passed_publickey`], the `after_publickey` rule), which entries are checked and how (a pre-supplied value that is not
//! shaped like a code is never counted, whether it came from `PAM_AUTHTOK` or `SSHIELD_CODE`; a
//! password-and-code entry is split under one lock with at most one failure counted), how many
//! tries are left and whether this denial is the last, the delay before a denial is answered,
//! what the user is told, and every log line with its severity ([`crate::log::Event`]). Lines
//! leave through the front end's [`LogSink`].
//!
//! # Push
//!
//! For a fleet user, a push is one more step of the same conversation ([`crate::push`]): the
//! login asks the server for one at the start (`autopush`), or when the user presses Enter or
//! types `push` at the code prompt (`[push] enabled`), or when the front end asks for it
//! ([`Entry::PushRequested`]: `sshield login` with no terminal). [`Step::Push`] carries the
//! number to show; the phone's answer comes back as [`Entry::Approval`] (or through
//! [`Login::await_push`], which waits for it), and is logged and counted like a code, with
//! `method=push`. A push the server will not send (one pending, too many this hour, blocked)
//! turns into a code prompt with a note saying why. A code typed instead of waiting is checked
//! as a code; the push left pending expires on the server.

use std::fmt;
use std::time::Duration;

use zeroize::Zeroizing;

use crate::caller::Caller;
use crate::config::Failmode;
use crate::engine::{Checked, Decision, DenyReason, Engine, Method, Offer, Outcome, Response};
use crate::log::{self, LogSink};
use crate::passed::{self, Passed};
use crate::policy::{Exemption, Requirement};
use crate::push::{self, Approval, Invocation, PushAnswer, PushAsk, PushSent};
use crate::remote::{self, Remote, RemoteAnswer};
use crate::shape;
use crate::time::UnixTime;
use crate::username::UserName;

/// The longest a host waits on a server's word before telling the user of a denial. The rate
/// limiter's longest delay is 8 × `delay` (8 s by default); 64 s leaves room for a server
/// configured slower, so a server can slow a guesser but never hang a login.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(64);

/// The most digits a code has (RFC 4226 allows 6 to 8): with `forward_pass`, the most of an
/// entry's end a fleet host sends its server.
const MAX_CODE_DIGITS: usize = 8;

/// What the front end hands the login.
pub enum Entry {
    /// What the user typed at the prompt of [`Step::Ask`].
    Typed(Response),
    /// A value the front end had before asking: `PAM_AUTHTOK` (`try_first_pass`,
    /// `use_first_pass`) or the client's `SSHIELD_CODE`. Checked only if it is shaped like a
    /// code (6-8 digits or a backup code); anything else is most likely a password, is never
    /// counted as a failure, and the login asks instead. A failed one counts against the rate
    /// limit but leaves the prompt's tries: it was not typed at this prompt.
    PreSupplied(Response),
    /// The password and the code in one field (`forward_pass`): every way to split it by the
    /// lengths of the user's codes is tried under one lock of the record, with at most one
    /// failure counted and one line logged; the password comes back in the step.
    PasswordAndCode(Zeroizing<String>),
    /// The front end cannot get an answer (`use_first_pass` with no code in `PAM_AUTHTOK`):
    /// the login is refused, logged as `reason=no-code`, and counted nowhere.
    Unanswered,
    /// The front end asks for a push (`sshield login` with no terminal, whose client can type
    /// nothing).
    PushRequested,
    /// What the server says of the pending push, after the front end waited on it.
    Approval(Approval),
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Typed(_) => "Typed([redacted])",
            Self::PreSupplied(_) => "PreSupplied([redacted])",
            Self::PasswordAndCode(_) => "PasswordAndCode([redacted])",
            Self::Unanswered => "Unanswered",
            Self::PushRequested => "PushRequested",
            Self::Approval(_) => "Approval",
        })
    }
}

/// What the front end does next.
#[derive(Debug)]
pub enum Step {
    /// Let the login through without a code (already logged).
    Exempt(Exemption),
    /// Ask the user.
    Ask(Ask),
    /// A push was sent: show its number, then wait for the phone ([`Login::await_push`]) or
    /// take a code typed instead.
    Push(Pushed),
    /// The second factor passed (already logged).
    Allowed(Allowed),
    /// It did not (already logged).
    Denied(Denied),
}

/// A question for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The prompt text (config `prompt`).
    pub prompt: String,
    /// Answers still accepted in this login.
    pub tries_left: u32,
    /// Whether the answer may be shown as typed: never, a code is a secret until checked.
    pub echo: bool,
    /// Something to tell the user before asking (why a pre-supplied value was not taken).
    pub note: Option<String>,
}

/// A push sent to the user's phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The number the user picks on the phone; `None` for a push without one.
    pub number: Option<u8>,
    /// The prompt that shows it and offers a code instead (the number must be in the prompt
    /// itself: OpenSSH shows a PAM message only with the next prompt).
    pub prompt: String,
    /// When the push stops being approvable (Unix seconds).
    pub expires_at: u64,
    /// Answers still accepted in this login.
    pub tries_left: u32,
}

/// A good second factor.
#[derive(Debug)]
pub struct Allowed {
    /// How it was passed.
    pub method: Method,
    /// The password part of a [`Entry::PasswordAndCode`], to hand to the next module.
    pub password: Option<Zeroizing<String>>,
    /// Text to show the user (config `banner`).
    pub banner: Option<String>,
}

/// A refused answer.
#[derive(Debug)]
pub struct Denied {
    /// Why (its word is in the log line).
    pub reason: DenyReason,
    /// Wait this long before telling the user (the rate limiter's delay).
    pub delay: Duration,
    /// Answers still accepted in this login.
    pub tries_left: u32,
    /// A sentence for the user: never a path or other detail meant for the admin.
    pub message: String,
    /// No more answers are accepted: end the login.
    pub last: bool,
    /// The password part of a [`Entry::PasswordAndCode`] (the whole entry when no code was at
    /// its end), to hand on all the same: the next module then fails without asking again.
    pub password: Option<Zeroizing<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started: no question asked yet.
    New,
    /// Waiting for an answer.
    Asking,
    /// Decided: exempt, allowed, or the last denial.
    Done,
}

/// One login in progress: made by [`Engine::begin`], driven by [`Login::start`] and
/// [`Login::next`].
#[derive(Debug)]
pub struct Login<'e> {
    engine: &'e Engine,
    caller: Caller,
    tries_left: u32,
    state: State,
    invocation: Invocation,
    /// The push sent and not yet answered.
    pending: Option<PushSent>,
}

impl Engine {
    /// A login by `caller`, with the config's `login_tries`.
    pub fn begin(&self, caller: Caller) -> Login<'_> {
        Login {
            engine: self,
            tries_left: self.conversation().tries.max(1),
            caller,
            state: State::New,
            invocation: Invocation::default(),
            pending: None,
        }
    }
}

impl Login<'_> {
    /// Accept `tries` typed answers in this login instead of the config's `login_tries` (the
    /// PAM module takes one: sshd's `MaxAuthTries` counts the conversations).
    pub fn with_tries(self, tries: u32) -> Self {
        Self {
            tries_left: tries.max(1),
            ..self
        }
    }

    /// How the client logs in (its command; whether a terminal shows the prompt): what a
    /// push shows, and whether it may go without a number.
    pub fn with_invocation(self, invocation: Invocation) -> Self {
        Self { invocation, ..self }
    }

    /// Who is logging in.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// The push waiting for the phone: its id, and the time (Unix seconds) after which the
    /// login stops waiting for it.
    pub fn pending_push(&self) -> Option<(&str, u64)> {
        let sent = self.pending.as_ref()?;
        let bound = self.engine.push_policy().wait.as_secs();
        let deadline = sent
            .expires_at
            // A server's clock a little behind: its own expiry is the answer to wait for.
            .saturating_add(5)
            .min(UnixTime::now().0.saturating_add(bound));
        Some((&sent.id, deadline))
    }

    /// Waits for the phone's answer to the pending push (bounded by `[push] wait` and the
    /// push's expiry) and decides on it, as [`Entry::Approval`] does.
    pub fn await_push(&mut self, log: &dyn LogSink) -> Step {
        let answer = match (
            self.pending_push(),
            self.engine.remote_for(self.caller.user.name()),
        ) {
            (Some((id, deadline)), Some(remote)) => push::wait_until(
                || remote.wait(&self.caller, id),
                deadline,
                || UnixTime::now().0,
            ),
            _ => Approval::Expired,
        };
        self.next(Entry::Approval(answer), UnixTime::now(), log)
    }

    /// The first step: [`Step::Exempt`] (logged) or [`Step::Ask`].
    pub fn start(&mut self, now: UnixTime, log: &dyn LogSink) -> Step {
        match self.engine.requirement(&self.caller, now) {
            Requirement::Exempt(exemption) => {
                log.log(&log::exemption_line(&self.caller, &exemption));
                self.state = State::Done;
                Step::Exempt(exemption)
            }
            Requirement::Prompt => {
                self.state = State::Asking;
                let user = self.caller.user.name();
                if !self.invocation.no_terminal
                    && self.engine.remote_for(user).is_some()
                    && self.engine.push_policy().autopush(user)
                {
                    return self.send_push(log);
                }
                Step::Ask(self.ask(None))
            }
        }
    }

    /// The step after `entry`. A login that was never started is taken as asking (the daemon's
    /// clients may check without asking first); one that has ended refuses everything.
    pub fn next(&mut self, entry: Entry, now: UnixTime, log: &dyn LogSink) -> Step {
        match self.state {
            State::Done => {
                return Step::Denied(self.denial(
                    DenyReason::NoTriesLeft,
                    Duration::ZERO,
                    None,
                    true,
                ))
            }
            State::New => self.state = State::Asking,
            State::Asking => {}
        }
        let offer = match &entry {
            Entry::Typed(response) if self.asks_for_push(response) => return self.send_push(log),
            Entry::Typed(response) => Offer::Code(response),
            Entry::PushRequested => return self.send_push(log),
            Entry::Approval(answer) => return self.approval(answer.clone(), log),
            Entry::PreSupplied(response) => {
                if !shape::looks_like_code(response.as_str()) {
                    // Most likely a password (`try_first_pass` after pam_unix) or a
                    // mistyped variable: asking costs nothing, counting it would lock the
                    // user out of their own logins.
                    return Step::Ask(self.ask(Some(
                        "wrong code: the code given before the prompt is not shaped like a \
                         code (6 to 8 digits, or a backup code), so it was not checked",
                    )));
                }
                Offer::Code(response)
            }
            Entry::PasswordAndCode(text) => Offer::PasswordAndCode(text),
            Entry::Unanswered => {
                let decision = Decision::Deny(DenyReason::NoCode);
                log.log(&log::decision_line(&self.caller, &decision));
                self.state = State::Done;
                return Step::Denied(self.denial(DenyReason::NoCode, Duration::ZERO, None, true));
            }
        };
        let typed = !matches!(entry, Entry::PreSupplied(_));
        if let Some(remote) = self.engine.remote_for(self.caller.user.name()) {
            return self.ask_remote(remote, offer, typed, now, log);
        }
        let Checked {
            outcome: Outcome { decision, delay },
            password_len,
        } = self.engine.check_offer(&self.caller, offer, now);
        log.log(&log::decision_line(&self.caller, &decision));
        let password = match (&entry, password_len) {
            (Entry::PasswordAndCode(text), Some(len)) => {
                Some(Zeroizing::new(text.get(..len).unwrap_or(text).to_owned()))
            }
            _ => None,
        };
        self.decided(decision, delay, password, typed)
    }

    /// No server answered (a code or a push): `failmode` decides, and the login ends.
    fn unreachable(
        &mut self,
        what: &str,
        password: Option<Zeroizing<String>>,
        log: &dyn LogSink,
    ) -> Step {
        let safe = self.engine.failmode() == Failmode::Safe;
        log.log(&log::failmode_line(&self.caller, safe, what));
        self.state = State::Done;
        if safe {
            return Step::Exempt(Exemption::Failmode);
        }
        Step::Denied(self.denial(DenyReason::Unreachable, Duration::ZERO, password, true))
    }

    /// The server refused this host's request (signature, revocation, a broken config): denied,
    /// and the login ends, since nothing typed now can pass until the admin fixes the host.
    fn refused(
        &mut self,
        what: String,
        password: Option<Zeroizing<String>>,
        log: &dyn LogSink,
    ) -> Step {
        let refused = Decision::Deny(DenyReason::ServerRefused(what.clone()));
        log.log(&log::decision_line(&self.caller, &refused));
        self.state = State::Done;
        Step::Denied(self.denial(
            DenyReason::ServerRefused(what),
            Duration::ZERO,
            password,
            true,
        ))
    }

    /// Asks the fleet server about `offer` (a user with no local record), logs its answer,
    /// and applies `failmode` only when it could not be reached.
    fn ask_remote(
        &mut self,
        remote: &dyn Remote,
        offer: Offer<'_>,
        typed: bool,
        now: UnixTime,
        log: &dyn LogSink,
    ) -> Step {
        // `forward_pass`: the server knows the lengths of the user's codes, the host does not.
        // It gets the entry's trailing digits (at most 8, so at most two of a password that
        // ends in digits) and says how many were the code; the rest goes on as the password
        // (split as for 6-digit codes when the server does not say, as the local store does
        // for a user it has no record of).
        let (answer, password) = match offer {
            Offer::Code(response) => (remote.verify(&self.caller, response), None),
            Offer::PasswordAndCode(text) => {
                let text = text.trim_end_matches(['\r', '\n']);
                let digits = text.bytes().rev().take_while(u8::is_ascii_digit).count();
                // ASCII digits: a character boundary.
                let trailing = &text[text.len() - digits.min(MAX_CODE_DIGITS)..];
                let (answer, code_digits) =
                    remote.verify_trailing(&self.caller, &Response::new(trailing));
                let code_len = code_digits.unwrap_or(6).min(trailing.len());
                let at = text.len() - if trailing.is_empty() { 0 } else { code_len };
                let password = text.get(..at).unwrap_or(text);
                (answer, Some(Zeroizing::new(password.to_owned())))
            }
        };
        let mut server_delay = None;
        let decision = match answer {
            RemoteAnswer::Allowed { method } => Decision::Allow(remote::method_of(&method)),
            RemoteAnswer::Denied { reason, delay } => {
                let until = now
                    .0
                    .saturating_add(self.engine.rate_limit().lockout.as_secs());
                server_delay = delay;
                Decision::Deny(remote::reason_of(&reason, until))
            }
            RemoteAnswer::Unreachable(what) => return self.unreachable(&what, password, log),
            RemoteAnswer::Refused(what) => return self.refused(what, password, log),
        };
        log.log(&log::decision_line(&self.caller, &decision));
        // The server counted the failure and says how long to wait (its source count spans the
        // fleet), at most `MAX_SERVER_DELAY`; a server that does not say gets the host's first
        // delay (none with rate limiting off, as for a local failure).
        let limits = self.engine.rate_limit();
        let delay = match (&decision, server_delay) {
            (Decision::Deny(_), Some(delay)) => delay.min(MAX_SERVER_DELAY),
            (Decision::Deny(_), None) if limits.enabled => limits.delay,
            _ => Duration::ZERO,
        };
        self.decided(decision, delay, password, typed)
    }

    /// Whether `typed` asks for a push: an empty line or `push`, from a fleet user where push
    /// is on for them.
    fn asks_for_push(&self, typed: &Response) -> bool {
        let user = self.caller.user.name();
        (typed.as_str().is_empty() || typed.as_str().eq_ignore_ascii_case("push"))
            && self.engine.push_policy().allows(user)
            && self.engine.remote_for(user).is_some()
    }

    /// Asks the server for a push: [`Step::Push`], or a code prompt saying why not.
    fn send_push(&mut self, log: &dyn LogSink) -> Step {
        let Some(remote) = self.engine.remote_for(self.caller.user.name()) else {
            return Step::Ask(self.ask(Some(
                "push is only for users of the fleet server; type a code",
            )));
        };
        let policy = self.engine.push_policy();
        let without_number = self.invocation.no_terminal;
        if without_number && !policy.without_number {
            return Step::Ask(self.ask(Some(
                "this host allows no push without a terminal to show its number \
                 (push.without_number); give a code",
            )));
        }
        if !without_number && !policy.allows(self.caller.user.name()) {
            return Step::Ask(self.ask(Some("push is not enabled for you here; type a code")));
        }
        let ask = PushAsk {
            command: self.invocation.command.clone(),
            without_number,
        };
        match remote.push(&self.caller, &ask) {
            PushAnswer::Sent(sent) => {
                log.log(&log::push_line(&self.caller, "sent", None));
                let pushed = Pushed {
                    prompt: push_prompt(sent.number),
                    number: sent.number,
                    expires_at: sent.expires_at,
                    tries_left: self.tries_left,
                };
                self.pending = Some(sent);
                Step::Push(pushed)
            }
            PushAnswer::Limited(limit, what) => {
                log.log(&log::push_line(&self.caller, limit.as_str(), Some(&what)));
                Step::Ask(self.ask(Some(limit.user_message())))
            }
            PushAnswer::Unreachable(what) | PushAnswer::Refused(what) => {
                log.log(&log::push_line(&self.caller, "push-failed", Some(&what)));
                Step::Ask(self.ask(Some(
                    "no push could be sent to your phone right now; type a code instead",
                )))
            }
        }
    }

    /// Decides on the phone's answer to the pending push.
    fn approval(&mut self, answer: Approval, log: &dyn LogSink) -> Step {
        if self.pending.take().is_none() {
            return Step::Ask(self.ask(Some("no push is waiting for an answer; type a code")));
        }
        let decision = match answer {
            Approval::Approved => Decision::Allow(Method::Push),
            Approval::Denied => Decision::Deny(DenyReason::PushDenied),
            Approval::Reported => Decision::Deny(DenyReason::PushNotMe),
            Approval::Expired | Approval::Pending => Decision::Deny(DenyReason::PushExpired),
            Approval::Unreachable(what) => return self.unreachable(&what, None, log),
            Approval::Refused(what) => return self.refused(what, None, log),
        };
        log.log(&log::decision_line(&self.caller, &decision));
        // "This wasn't me" ends the login: the user said it is not theirs.
        if matches!(decision, Decision::Deny(DenyReason::PushNotMe)) {
            self.tries_left = 1;
        }
        self.decided(decision, Duration::ZERO, None, true)
    }

    /// The step for a decision: allowed, or denied with the tries left.
    fn decided(
        &mut self,
        decision: Decision,
        delay: Duration,
        password: Option<Zeroizing<String>>,
        typed: bool,
    ) -> Step {
        match decision {
            Decision::Allow(method) => {
                self.state = State::Done;
                Step::Allowed(Allowed {
                    method,
                    password,
                    banner: self.engine.conversation().banner.clone(),
                })
            }
            Decision::Deny(reason) => {
                if typed {
                    self.tries_left = self.tries_left.saturating_sub(1);
                }
                // A lock outlasts any login; nothing typed now can pass.
                let last = self.tries_left == 0 || matches!(reason, DenyReason::Locked { .. });
                if last {
                    self.state = State::Done;
                }
                Step::Denied(self.denial(reason, delay, password, last))
            }
        }
    }

    /// Leaves the marker that ties this pass to a process (`sshield setup --confirm` looks for
    /// it): `pid` and `parent`, one of which is the session's sshd. Never changes the
    /// decision; a marker that cannot be written is logged.
    pub fn mark_session(&self, pid: u32, parent: u32, now: UnixTime, log: &dyn LogSink) {
        let Ok(user) = UserName::new(self.caller.user.name()) else {
            return;
        };
        let passed = Passed {
            at: now.0,
            service: self.caller.service.clone(),
            pid,
            parent,
        };
        let store = self.engine.store();
        if let Err(e) = passed::record(store, &user, &passed) {
            log.log(&log::problem_line(&format!(
                "cannot record which session passed in {}: {e}; `sshield setup --confirm` from that session will be refused",
                passed::path(store, &user).display()
            )));
        }
    }

    fn ask(&self, note: Option<&str>) -> Ask {
        Ask {
            prompt: self.engine.conversation().prompt.clone(),
            tries_left: self.tries_left,
            echo: false,
            note: note.map(str::to_owned),
        }
    }

    fn denial(
        &self,
        reason: DenyReason,
        delay: Duration,
        password: Option<Zeroizing<String>>,
        last: bool,
    ) -> Denied {
        Denied {
            message: reason.user_message(),
            reason,
            delay,
            tries_left: if last { 0 } else { self.tries_left },
            last,
            password,
        }
    }
}

/// The prompt of a push: the number in the prompt itself, and a code offered instead.
fn push_prompt(number: Option<u8>) -> String {
    match number {
        Some(n) => {
            format!("Approve on your phone: pick {n}. Press Enter once approved, or type a code: ")
        }
        None => "Approve on your phone (check the command shown). Press Enter once approved, or \
                 type a code: "
            .to_owned(),
    }
}
