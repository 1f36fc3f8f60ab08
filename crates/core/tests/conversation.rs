//! One login conversation for every front end (issue 10): one table of cases, each driven
//! through a PAM-shaped driver (one answer per conversation, `PAM_AUTHTOK` first as
//! `try_first_pass` takes it) and a helper-shaped one (the daemon's login with `login_tries`,
//! `SSHIELD_CODE` first, then the terminal until the login says it is over), both written here
//! on the public [`Login`] API only. Both must reach the same decision and log the same lines,
//! at the same severities, and leave the same count of failures.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::cell::RefCell;
use std::path::Path;

use common::{TestStore, T};
use sshield_core::log::{Line, LogSink, Severity};
use sshield_core::{Account, Attempt, Caller, Config, Engine, Entry, Response, Step, UnixTime};
use sshield_otp::Digits;
use zeroize::Zeroizing;

const SOURCE: &str = "203.0.113.7";
const PASSWORD: &str = "hunter2 99";

/// The lines a login logged, in order.
#[derive(Default)]
struct Captured(RefCell<Vec<Line>>);

impl LogSink for Captured {
    fn log(&self, line: &Line) {
        self.0.borrow_mut().push(line.clone());
    }
}

/// What a front end has to offer, in order.
#[derive(Debug, Clone)]
enum Answer {
    /// Before any prompt: `PAM_AUTHTOK`, `SSHIELD_CODE`.
    Pre(String),
    /// Typed at the code prompt.
    Typed(String),
    /// Password and code in one field.
    Combined(String),
}

/// How a login ended, as a front end sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Exempt(&'static str),
    /// The method, and the password handed on.
    Allowed(&'static str, Option<String>),
    /// The reason word of the last denial.
    Denied(&'static str),
    /// Still asking when the answers ran out (the user went away).
    Asking,
}

/// What one run left behind.
#[derive(Debug, PartialEq, Eq)]
struct Run {
    end: End,
    lines: Vec<(Severity, String)>,
    failures: u32,
}

/// The PAM module's loop: one typed answer per conversation, a pre-supplied one first.
fn pam_shaped(engine: &Engine, caller: Caller, answers: &[Answer], log: &Captured) -> End {
    let now = UnixTime(T);
    let mut login = engine.begin(caller).with_tries(1);
    let mut answers = answers.iter();
    let mut step = login.start(now, log);
    loop {
        let entry = match step {
            Step::Exempt(e) => return End::Exempt(e.as_str()),
            Step::Allowed(a) => {
                return End::Allowed(a.method.as_str(), a.password.map(|p| p.to_string()))
            }
            Step::Denied(d) if d.last => return End::Denied(d.reason.as_str()),
            Step::Push(p) => panic!("no push for a user of the local store: {p:?}"),
            Step::Denied(_) | Step::Ask(_) => match answers.next() {
                None => return End::Asking,
                Some(a) => entry(a),
            },
        };
        step = login.next(entry, now, log);
    }
}

/// The daemon's login as `sshield login` drives it: `login_tries` answers, the
/// `SSHIELD_CODE` first, until the login says the last denial.
fn helper_shaped(engine: &Engine, caller: Caller, answers: &[Answer], log: &Captured) -> End {
    let now = UnixTime(T);
    let mut login = engine.begin(caller);
    let mut step = login.start(now, log);
    let mut answers = answers.iter();
    // The user may go away after a denial that was not the last: that denial is the end.
    let mut denied = None;
    loop {
        match step {
            Step::Exempt(e) => return End::Exempt(e.as_str()),
            Step::Allowed(a) => {
                return End::Allowed(a.method.as_str(), a.password.map(|p| p.to_string()))
            }
            Step::Denied(d) if d.last => return End::Denied(d.reason.as_str()),
            Step::Denied(d) => {
                // The helper never counts: it asks again while the login takes answers.
                assert!(d.tries_left > 0, "{d:?}");
                assert!(!d.message.is_empty());
                denied = Some(d.reason.as_str());
            }
            Step::Ask(ask) => assert!(!ask.echo && ask.tries_left > 0, "{ask:?}"),
            Step::Push(p) => panic!("no push for a user of the local store: {p:?}"),
        }
        let Some(answer) = answers.next() else {
            return denied.map_or(End::Asking, End::Denied);
        };
        step = login.next(entry(answer), now, log);
    }
}

fn entry(answer: &Answer) -> Entry {
    match answer {
        Answer::Pre(text) => Entry::PreSupplied(Response::new(text)),
        Answer::Typed(text) => Entry::Typed(Response::new(text)),
        Answer::Combined(text) => Entry::PasswordAndCode(Zeroizing::new(text.clone())),
    }
}

/// A user's world: the store, the engine under `config`, and alice's codes at `T`.
struct World {
    store: TestStore,
    engine: Engine,
    six: String,
    eight: Option<String>,
}

fn world(config: &str, eight_digits_too: bool) -> World {
    let store = TestStore::new();
    let phone = store.enroll("alice");
    let eight = eight_digits_too.then(|| {
        let mut e = common::totp("alice", "yubikey");
        e.digits = Digits::EIGHT;
        store.enroll_with(e).at(T)
    });
    let text = format!("store = \"{}\"\n{config}", store.dir().display());
    let engine = Engine::new(&Config::parse(&text, Path::new("/test/sshield.toml")).unwrap());
    World {
        six: phone.at(T),
        eight,
        store,
        engine,
    }
}

fn caller() -> Caller {
    Caller::new(Account::resolve("alice"), "sshd").from_source(Some(SOURCE.parse().unwrap()))
}

/// One row: its name, the config, whether alice has an 8-digit authenticator too, what
/// happens before the login (codes used by an earlier login of hers), what the front end
/// offers, and what must come of it: the end, the log lines (`OUTCOME METHOD REASON`), and the
/// failures counted in her record.
struct Case {
    name: &'static str,
    config: &'static str,
    eight_digits_too: bool,
    before: fn(&World) -> Vec<String>,
    answers: fn(&World) -> Vec<Answer>,
    end: fn(&World) -> End,
    lines: &'static [&'static str],
    failures: u32,
}

fn none(_: &World) -> Vec<String> {
    Vec::new()
}

const DEFAULT: &str = "[rate_limit]\ndelay = \"0s\"\n";

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "exempt",
            config: "[policy]\nexempt_networks = [\"203.0.113.0/24\"]\n",
            eight_digits_too: false,
            before: none,
            answers: |_| Vec::new(),
            end: |_| End::Exempt("network"),
            lines: &["allow exempt network"],
            failures: 0,
        },
        Case {
            name: "ask",
            config: DEFAULT,
            eight_digits_too: false,
            before: none,
            answers: |_| Vec::new(),
            end: |_| End::Asking,
            lines: &[],
            failures: 0,
        },
        Case {
            name: "right",
            config: DEFAULT,
            eight_digits_too: false,
            before: none,
            answers: |w| vec![Answer::Typed(w.six.clone())],
            end: |_| End::Allowed("totp", None),
            lines: &["allow totp ok"],
            failures: 0,
        },
        Case {
            name: "wrong",
            config: DEFAULT,
            eight_digits_too: false,
            before: none,
            answers: |w| vec![Answer::Typed(common::typo(&w.six))],
            end: |_| End::Denied("wrong-code"),
            lines: &["deny code wrong-code"],
            failures: 1,
        },
        Case {
            name: "replay",
            config: DEFAULT,
            eight_digits_too: false,
            before: |w| vec![w.six.clone()],
            answers: |w| vec![Answer::Typed(w.six.clone())],
            end: |_| End::Denied("replayed"),
            lines: &["deny code replayed"],
            failures: 1,
        },
        Case {
            name: "locked",
            config: "[rate_limit]\ndelay = \"0s\"\nmax_failures = 1\n",
            eight_digits_too: false,
            before: |w| vec![common::typo(&w.six)],
            answers: |w| vec![Answer::Typed(w.six.clone())],
            end: |_| End::Denied("locked"),
            lines: &["deny code locked"],
            failures: 1,
        },
        Case {
            name: "forward_pass with a 6- and an 8-digit authenticator, the 8-digit code",
            config: DEFAULT,
            eight_digits_too: true,
            before: none,
            answers: |w| {
                let code = w.eight.clone().unwrap();
                vec![Answer::Combined(format!("{PASSWORD}{code}"))]
            },
            end: |_| End::Allowed("totp", Some(PASSWORD.to_owned())),
            lines: &["allow totp ok"],
            failures: 0,
        },
        Case {
            name: "forward_pass with a 6- and an 8-digit authenticator, the 6-digit code",
            config: DEFAULT,
            eight_digits_too: true,
            before: none,
            answers: |w| vec![Answer::Combined(format!("{PASSWORD}{}", w.six))],
            end: |_| End::Allowed("totp", Some(PASSWORD.to_owned())),
            lines: &["allow totp ok"],
            failures: 0,
        },
        Case {
            name: "forward_pass with a wrong code: one failure and one line for all splits",
            config: DEFAULT,
            eight_digits_too: true,
            before: none,
            answers: |_| vec![Answer::Combined(format!("{PASSWORD}00000000"))],
            end: |_| End::Denied("wrong-code"),
            lines: &["deny code wrong-code"],
            failures: 1,
        },
        Case {
            name: "a pre-supplied password is not a code: never counted, asked instead",
            config: DEFAULT,
            eight_digits_too: false,
            before: none,
            answers: |w| {
                vec![
                    Answer::Pre(PASSWORD.to_owned()),
                    Answer::Typed(w.six.clone()),
                ]
            },
            end: |_| End::Allowed("totp", None),
            lines: &["allow totp ok"],
            failures: 0,
        },
        Case {
            name: "a pre-supplied wrong code is counted, and the prompt still asks",
            config: DEFAULT,
            eight_digits_too: false,
            before: none,
            answers: |w| {
                vec![
                    Answer::Pre(common::typo(&w.six)),
                    Answer::Typed(w.six.clone()),
                ]
            },
            end: |_| End::Allowed("totp", None),
            lines: &["deny code wrong-code", "allow totp ok"],
            failures: 1,
        },
    ]
}

/// Runs `case` in a fresh world through `driver`.
fn run(case: &Case, driver: fn(&Engine, Caller, &[Answer], &Captured) -> End) -> (Run, End) {
    let w = world(case.config, case.eight_digits_too);
    for code in (case.before)(&w) {
        let response = Response::new(&code);
        w.engine.check(&Attempt {
            caller: &caller(),
            response: &response,
            now: UnixTime(T - 30),
        });
    }
    let log = Captured::default();
    let end = driver(&w.engine, caller(), &(case.answers)(&w), &log);
    let record = w.store.record("alice");
    let failures = record.usage.failures.values().map(|f| f.count).sum();
    let lines = log
        .0
        .into_inner()
        .into_iter()
        .map(|l| (l.severity, l.text))
        .collect();
    (
        Run {
            end: end.clone(),
            lines,
            failures,
        },
        (case.end)(&w),
    )
}

#[test]
fn pam_and_helper_shaped_front_ends_decide_and_log_alike() {
    for case in cases() {
        let (pam, expected_end) = run(&case, pam_shaped);
        let (helper, _) = run(&case, helper_shaped);
        assert_eq!(pam, helper, "{}: the two front ends differ", case.name);
        assert_eq!(pam.end, expected_end, "{}", case.name);
        let words: Vec<String> = pam
            .lines
            .iter()
            .map(|(_, text)| {
                let field = |key: &str| {
                    text.split(' ')
                        .find_map(|f| f.strip_prefix(key))
                        .unwrap_or("?")
                        .to_owned()
                };
                let outcome = text.split(' ').next().unwrap_or("?");
                format!("{outcome} {} {}", field("method="), field("reason="))
            })
            .collect();
        assert_eq!(words, case.lines, "{}: {:#?}", case.name, pam.lines);
        for (severity, text) in &pam.lines {
            let expected = if text.starts_with("allow") {
                Severity::Info
            } else {
                Severity::Notice
            };
            assert_eq!(*severity, expected, "{}: {text}", case.name);
            assert!(
                text.contains(&format!("user=alice rhost={SOURCE} service=sshd ")),
                "{text}"
            );
        }
        assert_eq!(pam.failures, case.failures, "{}: failures", case.name);
    }
}

/// A record that cannot be read: the same denial in both front ends, a warning for the admin
/// (with the path), and for the user a sentence without it.
#[test]
fn a_store_error_is_a_warning_with_the_path_and_the_user_is_told_nothing_of_it() {
    for (front_end, tries) in [("pam", 1), ("helper", 3)] {
        let w = world(DEFAULT, false);
        std::fs::write(w.store.path("alice"), "not a record\n").unwrap();
        let log = Captured::default();
        let mut login = w.engine.begin(caller()).with_tries(tries);
        assert!(matches!(login.start(UnixTime(T), &log), Step::Ask(_)));
        let step = login.next(Entry::Typed(Response::new(&w.six)), UnixTime(T), &log);
        let Step::Denied(denied) = step else {
            panic!("{front_end}: {step:?}");
        };
        assert_eq!(denied.reason.as_str(), "store-error", "{front_end}");
        let path = w.store.path("alice").display().to_string();
        assert!(
            !denied.message.contains(&path),
            "{front_end}: {}",
            denied.message
        );
        let lines = log.0.into_inner();
        assert_eq!(lines.len(), 1, "{front_end}: {lines:?}");
        assert_eq!(lines[0].severity, Severity::Warning, "{front_end}");
        assert!(
            lines[0].text.contains(&path),
            "{front_end}: {}",
            lines[0].text
        );
    }
}

/// `use_first_pass` with a password in `PAM_AUTHTOK`: not checked, not counted; the front end
/// that cannot ask says so, and the login ends with one `no-code` line.
#[test]
fn a_front_end_that_cannot_ask_ends_with_no_code_and_counts_nothing() {
    let w = world(DEFAULT, false);
    let log = Captured::default();
    let mut login = w.engine.begin(caller()).with_tries(1);
    assert!(matches!(login.start(UnixTime(T), &log), Step::Ask(_)));
    let step = login.next(
        Entry::PreSupplied(Response::new(PASSWORD)),
        UnixTime(T),
        &log,
    );
    let Step::Ask(ask) = step else {
        panic!("{step:?}");
    };
    assert_eq!(ask.tries_left, 1, "a password uses no try");
    assert!(ask.note.is_some());
    let step = login.next(Entry::Unanswered, UnixTime(T), &log);
    assert!(
        matches!(&step, Step::Denied(d) if d.last && d.reason.as_str() == "no-code"),
        "{step:?}"
    );
    let lines = log.0.into_inner();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].text.ends_with("method=code reason=no-code"),
        "{lines:?}"
    );
    assert!(w.store.record("alice").usage.failures.is_empty());
    // An ended login refuses whatever comes, without checking or logging it.
    let log = Captured::default();
    let step = login.next(Entry::Typed(Response::new(&w.six)), UnixTime(T), &log);
    assert!(
        matches!(&step, Step::Denied(d) if d.last && d.reason.as_str() == "no-tries-left"),
        "{step:?}"
    );
    assert!(log.0.into_inner().is_empty());
}
