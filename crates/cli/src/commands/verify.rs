//! `sshield verify` and `sshield confirm`: a code in, a decision out.

use sshield_core::provision;
use sshield_core::{Account, Attempt, Caller, Decision, Method, Response};

use super::{argument_or_stdin, user_name, Context};
use crate::failure::Failure;

/// Checks a code through the engine, exactly as a login would, and uses it up.
pub(crate) fn verify(ctx: &Context, user: &str, code: &str) -> Result<(), Failure> {
    let typed = argument_or_stdin(code, "code")?;
    let response = Response::new(&typed);
    let attempt = Attempt {
        caller: &Caller::new(Account::resolve(user), "sshield-verify"),
        response: &response,
        now: ctx.now,
    };
    match ctx.engine.decide(&attempt) {
        Decision::Allow(method) => {
            eprintln!("sshield: accepted: {}", describe(&method));
            Ok(())
        }
        Decision::Deny(sshield_core::DenyReason::Store(e)) => Err(Failure::error(e)),
        Decision::Deny(reason) => Err(Failure::Refused(reason.to_string())),
    }
}

fn describe(method: &Method) -> String {
    match method {
        Method::Totp {
            authenticator,
            offset: 0,
        } => format!("TOTP code from {authenticator:?}"),
        Method::Totp {
            authenticator,
            offset,
        } => {
            format!("TOTP code from {authenticator:?} (its clock is {offset:+} steps off)")
        }
        Method::Hotp { authenticator } => format!("HOTP code from {authenticator:?}"),
        Method::Backup { remaining } => format!("backup code ({remaining} left)"),
        Method::Push => "push approved on the phone".to_owned(),
    }
}

/// Activates a pending authenticator with its first code.
pub(crate) fn confirm(
    ctx: &Context,
    user: &str,
    code: &str,
    name: Option<&str>,
) -> Result<(), Failure> {
    let user = user_name(user)?;
    let typed = argument_or_stdin(code, "code")?;
    let name = provision::confirm(
        &ctx.store,
        &user,
        name,
        &Response::new(&typed),
        ctx.now,
        &ctx.config.policy,
    )?;
    eprintln!("sshield: {user}'s authenticator {name:?} is confirmed and active");
    Ok(())
}
