//! The live demo: a throwaway sshd wired to pam_sshield, the invoking user enrolled, and each
//! decision shown as it is made, until Enter, end of input or a signal.

use std::io::IsTerminal;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use sshield_core::provision::{self, Enrollment};
use sshield_core::{UnixTime, UserName};
use zeroize::Zeroizing;

use super::events::{Events, Tail};
use super::prereq::{self, DemoUser};
use super::scratch::Scratch;
use super::server::{self, Layout, Started, ADDRESS, SERVICE};
use super::{procs, DemoFailure};
use crate::cli::DemoArgs;
use crate::commands::{key_uri, print_backup_codes};
use crate::failure::Failure;
use crate::qr;

/// How often the logs are read and sshd checked while waiting.
const POLL: Duration = Duration::from_millis(100);

/// Ports tried when another process takes the chosen one first.
const PORT_TRIES: u32 = 8;

/// The one JSON line for scripts and tests.
#[derive(Serialize)]
struct Ready<'a> {
    port: u16,
    user: &'a str,
    key: &'a Path,
    known_hosts: &'a Path,
    secret: &'a str,
    command: &'a str,
    dir: &'a Path,
    log_file: &'a Path,
    sshd_pid: u32,
}

pub(super) fn run(args: &DemoArgs) -> Result<(), DemoFailure> {
    // First, before any thread exists: every thread must inherit the blocked signals.
    let events = Events::start()?;
    match run_with(args, &events) {
        // Ctrl-C while setting up also reaches ssh-keygen or sshd -t (same process group),
        // whose failure is then no error: the newcomer asked to stop. Everything made so far
        // was removed on the way out.
        Err(DemoFailure::Failed(_)) if events.pending().is_some() => {
            println!("sshield demo: stopped before sshd was ready; nothing is left.");
            Ok(())
        }
        outcome => outcome,
    }
}

fn run_with(args: &DemoArgs, events: &Events) -> Result<(), DemoFailure> {
    let tools = prereq::find(args)?;
    prereq::check_mount_namespace(&tools.unshare)?;
    let user = prereq::invoking_user()?;
    if let Err(why) = procs::become_subreaper() {
        eprintln!(
            "sshield demo: warning: {why}; a process a session detaches from it may outlive the demo"
        );
    }
    server::ensure_privsep_dir()?;

    let scratch = Scratch::create()?;
    let layout = Layout::new(scratch.path());
    layout.check_paths(&tools.module)?;
    if !user.is_root() {
        // The user reaches client/ (their key and known_hosts) without listing the rest.
        scratch.set_mode(0o711)?;
    }
    let host_public = server::keygen(&tools.ssh_keygen, &layout.host_key, SERVICE)?;
    let client_public = server::make_client_dir(&layout, &user, &tools.ssh_keygen)?;
    let config = server::write_sshield_config(&layout)?;
    server::make_pam_dir(&layout)?;
    let program = server::make_links(&layout, &tools)?;

    let name = UserName::new(&user.name).map_err(Failure::from)?;
    let enrollment = Enrollment {
        activate: true,
        ..Enrollment::totp(name, "demo")
    };
    let enrolled = provision::enroll(&config.record_store(), enrollment, UnixTime::now())
        .map_err(Failure::from)?;

    // Start sshd on a free port, trying another if one is taken meanwhile.
    let mut checked = false;
    let mut started = None;
    for _ in 0..PORT_TRIES {
        let port = server::free_port()?;
        std::fs::write(
            &layout.sshd_config,
            server::sshd_config(&layout, &tools, &user, port, &client_public),
        )
        .map_err(|e| {
            Failure::Error(format!(
                "cannot write {}: {e}",
                layout.sshd_config.display()
            ))
        })?;
        server::write_known_hosts(&layout, &user, port, &host_public)?;
        if !checked {
            server::check_config(&program, &layout)?;
            checked = true;
        }
        match server::start(&program, &tools, &layout, port, events)? {
            Started::Listening(sshd) => {
                started = Some((sshd, port));
                break;
            }
            Started::PortTaken => continue,
            Started::Stopped(stop) => {
                let dir = scratch.remove()?;
                println!(
                    "sshield demo: stopped by {stop} before sshd was ready; {} removed.",
                    dir.display()
                );
                return Ok(());
            }
        }
    }
    let Some((mut sshd, port)) = started else {
        return Err(Failure::Error(format!(
            "sshd found no free port on {ADDRESS} in {PORT_TRIES} tries"
        ))
        .into());
    };

    let auth = &enrolled.authenticator;
    let secret = auth.secret.to_base32();
    let uri = Zeroizing::new(key_uri(&user.name, "sshield demo", auth, 0)?.to_uri());
    let command = ssh_command(port, &layout, &user);

    println!(
        "sshield demo: a throwaway sshd on {ADDRESS} port {port} (pid {}) that asks for a",
        sshd.pid()
    );
    println!(
        "code after the key, through pam_sshield ({}).",
        tools.module.display()
    );
    println!("Nothing on the system is changed: its config, store, keys and a private copy of");
    println!(
        "/etc/pam.d live in {}, removed when the demo ends.\n",
        layout.dir.display()
    );
    println!(
        "1. Scan this QR code with an authenticator app (or type the key {}):\n",
        secret.as_str()
    );
    println!("{}", qr::terminal(&uri)?);
    println!(
        "   Backup codes for {} (each works once, at the same prompt):\n",
        user.name
    );
    print_backup_codes(&enrolled.backup_codes);
    println!("\n2. Log in as {}, from another terminal:\n", user.name);
    println!("   {command}\n");
    println!("   ssh signs in with the demo's key (your ~/.ssh is neither used nor changed), then");
    println!(
        "   sshd asks \"Verification code:\". Type the app's code; try a wrong one, or the same"
    );
    println!("   one twice.");
    if !tools.ssh_client {
        println!("   (The ssh client is not installed here: apt install openssh-client.)");
    }
    println!(
        "\n3. Each decision appears below as it is made. Press Enter or Ctrl-C to stop the demo.\n"
    );

    if args.json || !std::io::stdout().is_terminal() {
        let ready = Ready {
            port,
            user: &user.name,
            key: &layout.client_key,
            known_hosts: &layout.known_hosts,
            secret: secret.as_str(),
            command: &command,
            dir: &layout.dir,
            log_file: &layout.log_file,
            sshd_pid: sshd.pid(),
        };
        let line = Zeroizing::new(
            serde_json::to_string(&ready).map_err(|e| Failure::Error(e.to_string()))?,
        );
        println!("{}", line.as_str());
    }

    events.watch_stdin();
    let mut decisions = Tail::from_end(&layout.log_file);
    let mut sshd_log = Tail::from_end(&layout.sshd_log);
    let stop = loop {
        for line in sshd_log.new_lines() {
            if let Some(shown) = first_factor_line(&line) {
                println!("  {shown}");
            }
        }
        for line in decisions.new_lines() {
            println!("  {}", decision_text(&line));
        }
        if sshd.has_exited() {
            let output = server::sshd_output(&layout);
            sshd.stop();
            return Err(Failure::Error(format!("sshd stopped by itself.\n{output}")).into());
        }
        procs::reap_orphans(sshd.pid());
        if let Some(stop) = events.wait(POLL) {
            break stop;
        }
    };

    let pid = sshd.pid();
    let processes = sshd.stop();
    drop(sshd);
    let dir = scratch.remove()?;
    println!(
        "\nsshield demo: stopped by {stop}: sshd (pid {pid}) and {} stopped; {} removed.",
        match processes.saturating_sub(1) {
            0 => "nothing else".to_owned(),
            1 => "1 process it started".to_owned(),
            n => format!("{n} processes it started"),
        },
        dir.display()
    );
    println!("Next: on a real host, `sshield enroll $USER`, then `sshield setup` (docs/setup.md).");
    Ok(())
}

/// The exact command to try, with shell quoting where a path needs it.
fn ssh_command(port: u16, layout: &Layout, user: &DemoUser) -> String {
    format!(
        "ssh -p {port} -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} {}@{ADDRESS}",
        shell_quote(&layout.client_key.display().to_string()),
        shell_quote(&layout.known_hosts.display().to_string()),
        shell_quote(&user.name),
    )
}

/// `text` as one shell word.
pub(super) fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@,%".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// A decision line of the log file (`TIME HOST sshield[PID]: allow user=...`), with what it
/// means in words.
fn decision_text(line: &str) -> String {
    let decision = line.split_once("]: ").map_or(line, |(_, d)| d);
    let reason = decision
        .split_whitespace()
        .find_map(|field| field.strip_prefix("reason="))
        .unwrap_or("");
    let meaning = match (decision.split_whitespace().next(), reason) {
        (Some("allow"), "ok") => "the code was right: logged in",
        (Some("allow"), _) => "let in without a code",
        (_, "wrong-code") => "that is not the current code",
        (_, "replayed") => "that code was already used once",
        (_, "locked") => "too many wrong codes: locked for a while",
        (_, "not-enrolled") => "this user is not enrolled",
        _ => "",
    };
    if meaning.is_empty() {
        decision.to_owned()
    } else {
        format!("{decision}   ({meaning})")
    }
}

/// sshd's line for a key that was accepted as the first of two factors, in words.
fn first_factor_line(line: &str) -> Option<String> {
    let rest = line.split_once("Partial publickey for ")?.1;
    let user = rest.split_whitespace().next()?;
    let from = rest
        .split_once(" from ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .unwrap_or("?");
    Some(format!(
        "key accepted for {user} from {from}; now the code (sshd asks PAM, PAM asks pam_sshield)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_leaves_plain_paths_alone() {
        assert_eq!(
            shell_quote("/tmp/sshield-demo-1-0/id"),
            "/tmp/sshield-demo-1-0/id"
        );
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn decisions_are_explained() {
        let line = "2026-01-01T00:00:00Z host sshield[42]: deny user=alice rhost=127.0.0.1 \
                    service=sshield-demo-sshd method=code reason=wrong-code";
        assert_eq!(
            decision_text(line),
            "deny user=alice rhost=127.0.0.1 service=sshield-demo-sshd method=code \
             reason=wrong-code   (that is not the current code)"
        );
        assert!(
            decision_text("h sshield[1]: allow user=a method=totp reason=ok").contains("logged in")
        );
    }

    #[test]
    fn the_key_step_is_shown() {
        let line = "Partial publickey for alice from 127.0.0.1 port 5555 ssh2: ED25519 SHA256:x";
        let shown = first_factor_line(line).expect("shown");
        assert!(
            shown.starts_with("key accepted for alice from 127.0.0.1;"),
            "{shown}"
        );
        assert_eq!(
            first_factor_line("Accepted keyboard-interactive/pam for alice"),
            None
        );
    }
}
