//! `sshield backup-codes`, `disable`, `enable`, `remove`.

use serde::Serialize;
use sshield_core::provision;
use zeroize::Zeroizing;

use super::{print_backup_codes, user_name, Context};
use crate::failure::Failure;

pub fn backup_codes(ctx: &Context, user: &str, json: bool) -> Result<(), Failure> {
    let user = user_name(user)?;
    let codes = provision::renew_backup_codes(&ctx.store, &user, ctx.now)?;
    if json {
        #[derive(Serialize)]
        struct Out<'a> {
            user: &'a str,
            backup_codes: Vec<&'a str>,
        }
        let out = Out {
            user: user.as_str(),
            backup_codes: codes.iter().map(|c| c.as_str()).collect(),
        };
        let text = Zeroizing::new(serde_json::to_string(&out).map_err(Failure::error)?);
        println!("{}", text.as_str());
    } else {
        println!("New backup codes for {user}; the old ones no longer work. Shown only now:\n");
        print_backup_codes(&codes);
    }
    Ok(())
}

pub fn set_disabled(ctx: &Context, user: &str, disabled: bool) -> Result<(), Failure> {
    let user = user_name(user)?;
    let changed = provision::set_disabled(&ctx.store, &user, disabled)?;
    let state = if disabled { "disabled" } else { "enabled" };
    if changed {
        eprintln!("sshield: {user}'s second factor is {state}");
    } else {
        eprintln!("sshield: {user}'s second factor was already {state}");
    }
    Ok(())
}

pub fn remove(ctx: &Context, user: &str, name: Option<&str>) -> Result<(), Failure> {
    let user = user_name(user)?;
    provision::remove(&ctx.store, &user, name)?;
    match name {
        Some(n) => eprintln!("sshield: removed authenticator {n:?} of {user}"),
        None => eprintln!("sshield: removed {user}'s record"),
    }
    Ok(())
}
