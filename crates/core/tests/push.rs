//! Push in the login conversation, for a fleet user: when the login pushes (autopush, Enter at
//! the prompt, a front end with no terminal), what the prompt shows, how the server's limits
//! turn into a code prompt, and what each answer of the phone decides and logs. The remote is
//! a scripted stand-in for the server (crates/e2e/tests/fleet.rs runs the same through a real
//! server, daemon, sshd and ssh).
#![allow(
    clippy::unwrap_used,
    reason = "a test: a failed unwrap is a failed test"
)]

mod common;

use std::cell::RefCell;
use std::path::Path;
use std::sync::{Arc, Mutex};

use common::{TestStore, T};
use sshield_core::log::{Line, LogSink};
use sshield_core::push::{Approval, Invocation, PushAnswer, PushAsk, PushLimit, PushSent};
use sshield_core::{
    Account, Caller, Config, Engine, Entry, Remote, RemoteAnswer, Response, Step, UnixTime,
};

#[derive(Default)]
struct Captured(RefCell<Vec<Line>>);

impl LogSink for Captured {
    fn log(&self, line: &Line) {
        self.0.borrow_mut().push(line.clone());
    }
}

impl Captured {
    fn text(&self) -> String {
        self.0
            .borrow()
            .iter()
            .map(|l| l.text.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The server, scripted: its answer to a push, then to each wait; the pushes it was asked.
#[derive(Debug)]
struct Server {
    push: PushAnswer,
    waits: Mutex<Vec<Approval>>,
    asked: Mutex<Vec<PushAsk>>,
}

impl Remote for Server {
    fn verify_trailing(
        &self,
        caller: &Caller,
        trailing: &Response,
    ) -> (RemoteAnswer, Option<usize>) {
        (self.verify(caller, trailing), None)
    }

    fn verify(&self, _caller: &Caller, code: &Response) -> RemoteAnswer {
        if code.expose_secret() == "123456" {
            RemoteAnswer::Allowed {
                method: "totp".into(),
            }
        } else {
            RemoteAnswer::Denied {
                reason: "wrong-code".into(),
                delay: None,
            }
        }
    }

    fn push(&self, _caller: &Caller, ask: &PushAsk) -> PushAnswer {
        self.asked.lock().unwrap().push(ask.clone());
        self.push.clone()
    }

    fn wait(&self, _caller: &Caller, _id: &str) -> Approval {
        self.waits
            .lock()
            .unwrap()
            .pop()
            .unwrap_or(Approval::Pending)
    }
}

fn sent(number: Option<u8>) -> PushAnswer {
    PushAnswer::Sent(PushSent {
        id: "r7".into(),
        number,
        // Far ahead: the wait ends on the server's answer, not on the clock.
        expires_at: UnixTime::now().0 + 60,
    })
}

fn server(push: PushAnswer, waits: &[Approval]) -> Arc<Server> {
    let mut waits = waits.to_vec();
    waits.reverse();
    Arc::new(Server {
        push,
        waits: Mutex::new(waits),
        asked: Mutex::new(Vec::new()),
    })
}

fn engine(store: &TestStore, push: &str, server: &Arc<Server>) -> Engine {
    let text = format!(
        "store = \"{}\"\n[push]\n{push}\n[server]\nurls = [\"http://127.0.0.1:1\"]\n\
         host = \"web1\"\nkey_file = \"host.key\"\n",
        store.dir().display()
    );
    Engine::new(&Config::parse(&text, Path::new("/test/sshield.toml")).unwrap())
        .with_remote(Arc::clone(server) as Arc<dyn Remote>)
}

fn caller() -> Caller {
    Caller::new(Account::resolve("carol"), "sshd").from_source(Some("203.0.113.7".parse().unwrap()))
}

#[test]
fn autopush_shows_the_number_in_the_prompt_and_an_approval_lets_in() {
    let store = TestStore::new();
    let s = server(sent(Some(47)), &[Approval::Pending, Approval::Approved]);
    let engine = engine(&store, "autopush_users = [\"carol\"]", &s);
    let log = Captured::default();
    let mut login = engine.begin(caller()).with_tries(1);
    let Step::Push(pushed) = login.start(UnixTime(T), &log) else {
        panic!("no push: {}", log.text());
    };
    assert_eq!(pushed.number, Some(47));
    assert_eq!(
        pushed.prompt,
        "Approve on your phone: pick 47. Press Enter once approved, or type a code: "
    );
    assert_eq!(login.pending_push().map(|(id, _)| id), Some("r7"));
    let step = login.await_push(&log);
    assert!(
        matches!(&step, Step::Allowed(a) if a.method.as_str() == "push"),
        "{step:?}"
    );
    let text = log.text();
    assert!(
        text.contains("push user=carol rhost=203.0.113.7 service=sshd method=push reason=sent"),
        "{text}"
    );
    assert!(
        text.contains("allow user=carol rhost=203.0.113.7 service=sshd method=push reason=ok"),
        "{text}"
    );
}

#[test]
fn each_answer_of_the_phone_is_a_decision_with_method_push() {
    for (answer, word) in [
        (Approval::Denied, "push-denied"),
        (Approval::Reported, "push-not-me"),
        (Approval::Expired, "push-expired"),
    ] {
        let store = TestStore::new();
        let s = server(sent(Some(12)), std::slice::from_ref(&answer));
        let engine = engine(&store, "autopush_users = [\"carol\"]", &s);
        let log = Captured::default();
        // Three tries: a denial by the phone uses one, "This wasn't me" ends the login.
        let mut login = engine.begin(caller());
        assert!(matches!(login.start(UnixTime(T), &log), Step::Push(_)));
        let step = login.next(Entry::Approval(answer.clone()), UnixTime(T), &log);
        let Step::Denied(d) = step else {
            panic!("{answer:?}: {step:?}");
        };
        assert_eq!(d.reason.as_str(), word);
        assert_eq!(d.last, word == "push-not-me", "{answer:?}");
        let text = log.text();
        assert!(
            text.contains(&format!(
                "deny user=carol rhost=203.0.113.7 service=sshd method=push reason={word}"
            )),
            "{text}"
        );
        // The push is answered: another answer finds none pending.
        assert!(login.pending_push().is_none());
    }
}

#[test]
fn enter_at_the_prompt_pushes_where_enabled_and_a_code_still_works() {
    let store = TestStore::new();
    let s = server(sent(Some(33)), &[]);
    let engine_on = engine(&store, "enabled = true", &s);
    let log = Captured::default();
    let mut login = engine_on.begin(caller());
    assert!(matches!(login.start(UnixTime(T), &log), Step::Ask(_)));
    let step = login.next(Entry::Typed(Response::new("")), UnixTime(T), &log);
    assert!(
        matches!(&step, Step::Push(p) if p.number == Some(33)),
        "{step:?}"
    );
    // A code typed at the push's prompt is a code.
    let step = login.next(Entry::Typed(Response::new("123456")), UnixTime(T), &log);
    assert!(
        matches!(&step, Step::Allowed(a) if a.method.as_str() == "totp"),
        "{step:?}"
    );

    // Off (the default): Enter is an empty code, and nothing is pushed.
    let s = server(sent(Some(33)), &[]);
    let engine_off = engine(&store, "", &s);
    let mut login = engine_off.begin(caller());
    assert!(matches!(login.start(UnixTime(T), &log), Step::Ask(_)));
    let step = login.next(Entry::Typed(Response::new("")), UnixTime(T), &log);
    assert!(matches!(step, Step::Denied(_)), "{step:?}");
    assert!(s.asked.lock().unwrap().is_empty());
}

#[test]
fn the_servers_limits_turn_into_a_code_prompt_saying_why() {
    for (limit, says) in [
        (PushLimit::Pending, "already waiting"),
        (PushLimit::TooMany, "too many pushes"),
        (PushLimit::Blocked, "This wasn't me"),
    ] {
        let store = TestStore::new();
        let s = server(PushAnswer::Limited(limit, "the server's words".into()), &[]);
        let engine = engine(&store, "autopush_users = [\"carol\"]", &s);
        let log = Captured::default();
        let mut login = engine.begin(caller());
        let step = login.start(UnixTime(T), &log);
        let Step::Ask(ask) = step else {
            panic!("{limit:?}: {step:?}");
        };
        assert!(ask.note.as_deref().unwrap_or("").contains(says), "{ask:?}");
        let text = log.text();
        assert!(
            text.contains(&format!(
                "method=push reason={} detail=\"the server's words\"",
                limit.as_str()
            )),
            "{text}"
        );
    }
}

#[test]
fn a_client_with_no_terminal_gets_a_push_without_a_number_only_where_allowed() {
    let no_terminal = Invocation {
        command: Some("scp -t /tmp/".into()),
        no_terminal: true,
    };
    let store = TestStore::new();
    let s = server(sent(None), &[Approval::Approved]);
    let allowed = engine(&store, "without_number = true", &s);
    let log = Captured::default();
    let mut login = allowed.begin(caller()).with_invocation(no_terminal.clone());
    assert!(matches!(login.start(UnixTime(T), &log), Step::Ask(_)));
    let step = login.next(Entry::PushRequested, UnixTime(T), &log);
    assert!(
        matches!(&step, Step::Push(p) if p.number.is_none()),
        "{step:?}"
    );
    assert_eq!(
        s.asked.lock().unwrap().as_slice(),
        [PushAsk {
            command: Some("scp -t /tmp/".into()),
            without_number: true
        }]
    );
    assert!(matches!(login.await_push(&log), Step::Allowed(_)));

    // Not allowed (push on, but not without a number): no push is asked for.
    let s = server(sent(None), &[]);
    let refused = engine(&store, "enabled = true", &s);
    let mut login = refused.begin(caller()).with_invocation(no_terminal);
    login.start(UnixTime(T), &log);
    let step = login.next(Entry::PushRequested, UnixTime(T), &log);
    assert!(
        matches!(&step, Step::Ask(a) if a.note.as_deref().unwrap_or("").contains("without_number")),
        "{step:?}"
    );
    assert!(s.asked.lock().unwrap().is_empty());
}
