//! `sshield backup-codes`, `disable`, `enable`, `remove`.

use std::path::Path;

use serde::Serialize;
use sshield_core::{provision, user_file, FirstFactor};
use zeroize::Zeroizing;

use super::{print_backup_codes, user_name, Context};
use crate::failure::Failure;

pub(crate) fn backup_codes(ctx: &Context, user: &str, json: bool) -> Result<(), Failure> {
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

pub(crate) fn set_disabled(ctx: &Context, user: &str, disabled: bool) -> Result<(), Failure> {
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

pub(crate) fn remove(ctx: &Context, user: &str, name: Option<&str>) -> Result<(), Failure> {
    let user = user_name(user)?;
    provision::remove(&ctx.store, &user, name)?;
    match name {
        Some(n) => eprintln!("sshield: removed authenticator {n:?} of {user}"),
        None => eprintln!("sshield: removed {user}'s record"),
    }
    Ok(())
}

/// Binds (or with no keys, unbinds) an authenticator to SSH keys given as fingerprints or
/// public key files.
pub(crate) fn bind_keys(
    ctx: &Context,
    user: &str,
    name: Option<&str>,
    keys: &[String],
) -> Result<(), Failure> {
    let user = user_name(user)?;
    let fingerprints = keys
        .iter()
        .map(|k| fingerprint_of(k))
        .collect::<Result<Vec<_>, _>>()?;
    let name = provision::bind_keys(&ctx.store, &user, name, fingerprints.clone())?;
    if fingerprints.is_empty() {
        eprintln!("sshield: {user}'s authenticator {name:?} is accepted after any first factor");
    } else {
        eprintln!(
            "sshield: {user}'s authenticator {name:?} is accepted only after a login with {}",
            fingerprints.join(", ")
        );
    }
    Ok(())
}

/// No OpenSSH public key line comes near this (an RSA-16384 key is about 2.8 kB).
const MAX_PUBLIC_KEY_FILE_BYTES: u64 = 64 * 1024;

/// A `SHA256:` fingerprint as given, or the fingerprint of the first key in a public key file.
fn fingerprint_of(key: &str) -> Result<String, Failure> {
    if let Some(b64) = key.strip_prefix("SHA256:") {
        let valid = b64.len() == 43
            && b64
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        return if valid {
            Ok(key.to_owned())
        } else {
            Err(Failure::Error(format!(
                "{key:?} is not a SHA256 fingerprint as `ssh-keygen -l` prints it"
            )))
        };
    }
    // A public key usually sits in the user's own ~/.ssh, which they may have replaced with
    // a named pipe or a link to a root-only file.
    let text = user_file::read_text(Path::new(key), MAX_PUBLIC_KEY_FILE_BYTES).map_err(|e| {
        Failure::Error(format!(
            "{key}: not a SHA256:... fingerprint, and cannot read it as a public key file: {e}"
        ))
    })?;
    let first = FirstFactor::parse(&format!(
        "publickey {}",
        text.lines().next().unwrap_or_default()
    ));
    first.keys.into_iter().next().ok_or_else(|| {
        Failure::Error(format!(
            "{key}: no public key (expected a line like `ssh-ed25519 AAAA... comment`)"
        ))
    })
}
