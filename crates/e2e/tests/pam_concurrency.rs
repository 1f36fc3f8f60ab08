//! Many authentications at once: the replay rule holds when logins race for one code, and
//! concurrent logins of different users never lose each other's record updates.
//!
//! - One user, one code, 50 logins at once: through the real sshd and 50 `ssh` clients
//!   (about 6 s on 2 cores), since that is where the race happens in real life: one sshd
//!   process per connection, each running the module.
//! - 50 users at once: through 50 `pamtester` processes on a private PAM service, one per
//!   user. Through sshd this would need 50 throwaway accounts (about 15 s of useradd and
//!   userdel, serialised) for no more coverage of the module: what can lose an update here is
//!   the store, which both paths share. The module alone in the stack needs no account, so
//!   the names exist only in sshield's store.
//!
//! Root only; elsewhere they skip, in CI they fail.
#![allow(
    clippy::unwrap_used,
    reason = "a test that cannot go on fails, with the reason"
)]
mod common;

use std::sync::Barrier;
use std::thread;

use common::*;
use sshield_e2e::{Sshd, User};

const LOGINS: usize = 50;

#[test]
fn fifty_logins_racing_with_one_code_let_exactly_one_in() {
    if !can_run() {
        return;
    }
    // Rate limits out of the way, so that every loser is refused for the replay alone.
    let sshield = Sshield::new(
        "[rate_limit]\nmax_failures = 1000\nmax_failures_per_day = 0\nsource_max_failures = 1000\ndelay = \"0s\"",
    );
    // sshd's debug log would only slow 50 connections down.
    let sshd = Sshd::start(password_then_code_options(&sshield).config(["LogLevel INFO"]));
    let user = User::create();
    let token = sshield.enroll(user.name());
    let step = current_step();
    let code = token.code();

    let start = Barrier::new(LOGINS);
    let outcomes: Vec<_> = thread::scope(|s| {
        let clients: Vec<_> = (0..LOGINS)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    login(&sshd, &user, [user.password(), &code]).run()
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });

    let winners = outcomes.iter().filter(|o| o.success()).count();
    assert_eq!(winners, 1, "{outcomes:#?}");
    for out in outcomes.iter().filter(|o| !o.success()) {
        out.assert_denied();
        assert_eq!(out.prompt_texts(), [PASSWORD_PROMPT, CODE_PROMPT]);
    }
    let prefix = format!(
        "user={} rhost=127.0.0.3 service={} method=",
        user.name(),
        sshd.service_name()
    );
    let lines = sshield.log_lines();
    let allowed = lines
        .iter()
        .filter(|l| l.ends_with(&format!("allow {prefix}totp reason=ok")))
        .count();
    let replayed = lines
        .iter()
        .filter(|l| l.ends_with(&format!("deny {prefix}code reason=replayed")))
        .count();
    assert_eq!(
        (allowed, replayed, lines.len()),
        (1, LOGINS - 1, LOGINS),
        "{lines:#?}"
    );
    // The record kept the step of the one accepted code (it was computed in `step` or, past
    // a step change, the one after).
    let record = sshield.record(user.name());
    assert!(
        record.contains(&format!("last_step = {step}\n"))
            || record.contains(&format!("last_step = {}\n", step + 1)),
        "{record}"
    );
    assert!(sshd.is_running());
}

#[test]
fn fifty_users_at_once_all_get_in_and_every_record_shows_it() {
    if !can_run() {
        return;
    }
    require_tool("pamtester", "apt-get install pamtester");
    let sshield = Sshield::new("");
    let module = sshield.auth_line("");
    let service = PamService::create(
        "concurrency",
        [module.as_str(), "account required pam_permit.so"],
    );
    let names: Vec<String> = (0..LOGINS).map(|i| format!("racer{i:02}")).collect();
    let tokens: Vec<Token> = thread::scope(|s| {
        let enrolling: Vec<_> = names
            .iter()
            .map(|name| s.spawn(|| sshield.enroll(name)))
            .collect();
        enrolling.into_iter().map(|e| e.join().unwrap()).collect()
    });
    let before: Vec<String> = names.iter().map(|n| sshield.record(n)).collect();
    assert!(
        before.iter().all(|r| !r.contains("last_step")),
        "{before:#?}"
    );

    let start = Barrier::new(LOGINS);
    let runs: Vec<_> = thread::scope(|s| {
        let logins: Vec<_> = names
            .iter()
            .zip(&tokens)
            .map(|(name, token)| {
                let code = token.code();
                let (start, service) = (&start, service.name());
                s.spawn(move || {
                    start.wait();
                    let run = pamtester(service, name, Some("127.0.0.3"), &[&code]);
                    (run, code)
                })
            })
            .collect();
        logins.into_iter().map(|l| l.join().unwrap()).collect()
    });

    for (name, (run, _)) in names.iter().zip(&runs) {
        assert!(run.success, "{name}: {}", run.output);
    }
    // Every record holds its own login: its code's step, and the time and method.
    for ((name, token), (_, code)) in names.iter().zip(&tokens).zip(&runs) {
        let record = sshield.record(name);
        let step = (current_step() - 2..=current_step() + 1)
            .find(|s| token.code_at_step(*s) == *code)
            .unwrap();
        assert!(
            record.contains(&format!("last_step = {step}\n"))
                && record.contains("last_method = \"totp\"")
                && record.contains("last_success = "),
            "{name}:\n{record}"
        );
    }
    let lines = sshield.log_lines();
    assert_eq!(lines.len(), LOGINS, "{lines:#?}");
    for name in &names {
        let mine = format!(
            "allow user={name} rhost=127.0.0.3 service={} method=totp reason=ok",
            service.name()
        );
        assert_eq!(
            lines.iter().filter(|l| l.ends_with(&mine)).count(),
            1,
            "{name}: {lines:#?}"
        );
    }
}
