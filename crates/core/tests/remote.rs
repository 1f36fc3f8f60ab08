//! The login conversation on a fleet host: users with no local record are the remote's (the
//! fleet server's) to judge, with its answer logged like a local one and `failmode` applied
//! only when it is unreachable; users with a local record stay local. The remote here is a
//! scripted stand-in for the daemon's HTTP client (which crates/server/tests/fleet_daemon.rs
//! and crates/e2e/tests/fleet.rs run against a real server): what is tested is the
//! conversation around it.
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{TestStore, T};
use sshield_core::log::{Line, LogSink, Severity};
use sshield_core::push::{Approval, PushAnswer, PushAsk};
use sshield_core::{
    Account, Caller, Config, Engine, Entry, Exemption, Remote, RemoteAnswer, Response, Step,
    UnixTime,
};

#[derive(Default)]
struct Captured(RefCell<Vec<Line>>);

impl LogSink for Captured {
    fn log(&self, line: &Line) {
        self.0.borrow_mut().push(line.clone());
    }
}

/// Answers every question with `answer`, counting them.
#[derive(Debug)]
struct Scripted {
    answer: RemoteAnswer,
    asked: AtomicUsize,
    trailing: std::sync::Mutex<Vec<String>>,
}

impl Remote for Scripted {
    fn verify(&self, _caller: &Caller, _code: &Response) -> RemoteAnswer {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.answer.clone()
    }

    /// As `verify`; says the last 8 characters were the code, and keeps what it was sent.
    fn verify_trailing(
        &self,
        _caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>) {
        self.asked.fetch_add(1, Ordering::SeqCst);
        self.trailing
            .lock()
            .unwrap()
            .push(trailing.expose_secret().to_owned());
        (self.answer.clone(), Some(8))
    }

    fn push(&self, _caller: &Caller, _ask: &PushAsk) -> PushAnswer {
        PushAnswer::Refused("no push in these tests".to_owned())
    }

    fn wait(&self, _caller: &Caller, _id: &str) -> Approval {
        Approval::Refused("no push in these tests".to_owned())
    }
}

const FLEET: &str = "[policy]\nunenrolled = \"allow\"\n[server]\nurls = [\"http://127.0.0.1:1\"]\n\
                     host = \"web1\"\nkey_file = \"host.key\"\n";

fn engine(store: &TestStore, failmode: &str) -> Engine {
    let text = format!(
        "store = \"{}\"\nfailmode = \"{failmode}\"\n{FLEET}",
        store.dir().display()
    );
    Engine::new(&Config::parse(&text, Path::new("/test/sshield.toml")).unwrap())
}

fn scripted(answer: RemoteAnswer) -> Arc<Scripted> {
    Arc::new(Scripted {
        answer,
        asked: AtomicUsize::new(0),
        trailing: std::sync::Mutex::default(),
    })
}

fn caller(user: &str) -> Caller {
    Caller::new(Account::resolve(user), "sshd").from_source(Some("203.0.113.7".parse().unwrap()))
}

/// One typed code by `user`: the step after it, and the lines logged.
fn login(engine: &Engine, user: &str, code: &str) -> (Step, Vec<Line>) {
    let log = Captured::default();
    let mut login = engine.begin(caller(user));
    let first = login.start(UnixTime(T), &log);
    assert!(matches!(first, Step::Ask(_)), "{first:?}");
    let step = login.next(Entry::Typed(Response::new(code)), UnixTime(T), &log);
    (step, log.0.into_inner())
}

#[test]
fn without_a_front_end_that_can_ask_a_fleet_user_is_denied_not_let_in_as_unenrolled() {
    let store = TestStore::new();
    // An engine whose config names a server, and nobody gave it a remote (the PAM module and
    // the daemon each give theirs).
    let (step, lines) = login(&engine(&store, "safe"), "bob", "123456");
    assert!(
        matches!(&step, Step::Denied(d) if d.last && d.reason.as_str() == "server-refused"),
        "{step:?}"
    );
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0].severity, Severity::Error);
    assert!(
        lines[0].text.contains("reason=server-refused") && lines[0].text.contains("sshield login"),
        "{lines:?}"
    );
}

#[test]
fn a_user_with_a_local_record_stays_local() {
    let store = TestStore::new();
    let token = store.enroll("alice");
    let remote = scripted(RemoteAnswer::Unreachable("never asked".to_owned()));
    let engine = engine(&store, "secure").with_remote(remote.clone());
    let (step, lines) = login(&engine, "alice", &token.at(T));
    assert!(matches!(step, Step::Allowed(_)), "{step:?}");
    assert!(lines[0].text.contains("method=totp reason=ok"), "{lines:?}");
    assert_eq!(remote.asked.load(Ordering::SeqCst), 0);
}

#[test]
fn the_remotes_answers_are_logged_and_counted_like_local_ones() {
    let store = TestStore::new();
    // (answer, failmode, end, log line's end, severity)
    let rows: [(RemoteAnswer, &str, &str, &str, Severity); 5] = [
        (
            RemoteAnswer::Allowed {
                method: "totp".to_owned(),
            },
            "secure",
            "allowed",
            "method=totp reason=ok",
            Severity::Info,
        ),
        (
            RemoteAnswer::Denied {
                reason: "wrong-code".to_owned(),
                delay: None,
            },
            "safe",
            "denied wrong-code tries_left=2",
            "method=code reason=wrong-code",
            Severity::Notice,
        ),
        (
            RemoteAnswer::Denied {
                reason: "replayed".to_owned(),
                delay: None,
            },
            "safe",
            "denied replayed tries_left=2",
            "method=code reason=replayed",
            Severity::Notice,
        ),
        (
            RemoteAnswer::Unreachable("http://127.0.0.1:1: refused".to_owned()),
            "secure",
            "denied unreachable last",
            "method=none reason=unreachable detail=\"http://127.0.0.1:1: refused\"",
            Severity::Warning,
        ),
        (
            RemoteAnswer::Unreachable("http://127.0.0.1:1: refused".to_owned()),
            "safe",
            "exempt failmode-safe",
            "method=none reason=failmode-safe detail=\"http://127.0.0.1:1: refused\"",
            Severity::Warning,
        ),
    ];
    for (answer, failmode, end, line, severity) in rows {
        let remote = scripted(answer.clone());
        let engine = engine(&store, failmode).with_remote(remote.clone());
        let (step, lines) = login(&engine, "bob", "123456");
        let got = match &step {
            Step::Allowed(_) => "allowed".to_owned(),
            Step::Exempt(Exemption::Failmode) => "exempt failmode-safe".to_owned(),
            Step::Denied(d) if d.last => format!("denied {} last", d.reason.as_str()),
            Step::Denied(d) => format!("denied {} tries_left={}", d.reason.as_str(), d.tries_left),
            other => format!("{other:?}"),
        };
        assert_eq!(got, end, "{answer:?} under {failmode}");
        assert_eq!(lines.len(), 1, "{answer:?}: {lines:?}");
        assert!(
            lines[0].text.starts_with(if end.starts_with("denied") {
                "deny user=bob "
            } else {
                "allow user=bob "
            }),
            "{lines:?}"
        );
        assert!(lines[0].text.ends_with(line), "{answer:?}: {lines:?}");
        assert_eq!(lines[0].severity, severity, "{answer:?}");
        assert_eq!(remote.asked.load(Ordering::SeqCst), 1);
    }
}

/// The server answers a denial at once and says how long the host waits (its count of the
/// source's failures spans the fleet); the host waits that long, at most 64 s, and its own
/// first delay only when the server says nothing.
#[test]
fn a_denial_waits_as_long_as_the_server_says_within_a_bound() {
    let store = TestStore::new();
    let cases = [
        (
            Some(Duration::from_millis(1200)),
            Duration::from_millis(1200),
        ),
        (Some(Duration::from_secs(3600)), Duration::from_secs(64)),
        (None, Duration::from_secs(1)),
    ];
    for (said, waited) in cases {
        let remote = scripted(RemoteAnswer::Denied {
            reason: "wrong-code".to_owned(),
            delay: said,
        });
        let engine = engine(&store, "secure").with_remote(remote);
        let (step, _) = login(&engine, "bob", "123456");
        assert!(
            matches!(&step, Step::Denied(d) if d.delay == waited),
            "{said:?}: {step:?}"
        );
    }
}

/// `forward_pass` on a fleet host: the server, not the host, knows the lengths of the user's
/// codes. It is sent the entry's trailing digits (at most 8, so at most two of a password
/// that ends in digits, and none of one that does not) and says how many were the code; the
/// rest goes on as the password, whether the code passed or not.
#[test]
fn forward_pass_sends_the_trailing_digits_and_hands_on_the_rest() {
    let store = TestStore::new();
    for (entry, sent, password, allowed) in [
        ("hunter2212345678", "12345678", "hunter22", true),
        ("pass word 12345678", "12345678", "pass word ", true),
        ("abc12345678", "12345678", "abc", false),
        ("nodigits", "", "nodigits", false),
    ] {
        let answer = if allowed {
            RemoteAnswer::Allowed {
                method: "totp".into(),
            }
        } else {
            RemoteAnswer::Denied {
                reason: "wrong-code".into(),
                delay: None,
            }
        };
        let remote = scripted(answer);
        let engine = engine(&store, "secure").with_remote(remote.clone());
        let log = Captured::default();
        let mut login = engine.begin(caller("carol"));
        let first = login.start(UnixTime(T), &log);
        assert!(matches!(first, Step::Ask(_)), "{first:?}");
        let text = zeroize::Zeroizing::new(entry.to_owned());
        let step = login.next(Entry::PasswordAndCode(text), UnixTime(T), &log);
        let handed_on = match &step {
            Step::Allowed(a) => a.password.as_ref().map(|p| p.as_str().to_owned()),
            Step::Denied(d) => d.password.as_ref().map(|p| p.as_str().to_owned()),
            other => panic!("{entry}: {other:?}"),
        };
        assert_eq!(handed_on.as_deref(), Some(password), "{entry}");
        assert_eq!(matches!(step, Step::Allowed(_)), allowed, "{entry}");
        assert_eq!(*remote.trailing.lock().unwrap(), [sent], "{entry}");
    }
}
