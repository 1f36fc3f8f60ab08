//! `sshield enroll`: a secret, its QR code, backup codes, and confirmation by a first code.

use std::io::{IsTerminal, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use serde::Serialize;
use sshield_core::provision::{self, Enrollment, ProvisionError};
use sshield_core::record::TokenKind;
use sshield_core::{Response, UserName};
use sshield_otp::{Algorithm, Digits, Period, Secret};
use zeroize::Zeroizing;

use super::{argument_or_stdin, key_uri, print_backup_codes, read_line, user_name, Context};
use crate::cli::{AlgorithmArg, EnrollArgs};
use crate::failure::Failure;
use crate::qr;

/// Tries at the interactive confirmation prompt before the record is left pending.
const CONFIRM_TRIES: u32 = 3;

#[derive(Serialize)]
struct JsonOut<'a> {
    user: &'a str,
    secret: &'a str,
    uri: &'a str,
    backup_codes: Vec<&'a str>,
}

pub(crate) fn run(ctx: &Context, args: EnrollArgs) -> Result<(), Failure> {
    let user = user_name(&args.user)?;
    let secret = match (&args.secret, &args.secret_file) {
        (Some(text), _) => {
            let text = argument_or_stdin(text, "secret")?;
            Some(Secret::from_base32(&text).map_err(|e| Failure::Error(format!("--secret: {e}")))?)
        }
        (None, Some(path)) => {
            let text = read_secret_file(path)?;
            Some(
                Secret::from_base32(text.trim()).map_err(|e| {
                    Failure::Error(format!("--secret-file {}: {e}", path.display()))
                })?,
            )
        }
        (None, None) => None,
    };
    let enrollment = Enrollment {
        user: user.clone(),
        name: args.name.clone(),
        kind: if args.hotp {
            TokenKind::Hotp
        } else {
            TokenKind::Totp
        },
        algorithm: match args.algorithm {
            AlgorithmArg::Sha1 => Algorithm::Sha1,
            AlgorithmArg::Sha256 => Algorithm::Sha256,
            AlgorithmArg::Sha512 => Algorithm::Sha512,
        },
        digits: Digits::new(args.digits).map_err(|e| Failure::Error(format!("--digits: {e}")))?,
        period: Period::new(args.period).map_err(|e| Failure::Error(format!("--period: {e}")))?,
        counter: args.counter,
        secret,
        activate: args.no_confirm,
        replace: args.replace,
    };
    let images = qr::ImageFiles::create(&args.images)?;
    let enrolled = provision::enroll(&ctx.store, enrollment, ctx.now)?;
    let auth = &enrolled.authenticator;
    let issuer = ctx.issuer(args.issuer.as_deref());
    let uri = key_uri(user.as_str(), &issuer, auth, auth.counter.unwrap_or(0))?.to_uri();
    images.write(&uri)?;

    if args.json {
        let secret = auth.secret.to_base32();
        let out = JsonOut {
            user: user.as_str(),
            secret: &secret,
            uri: &uri,
            backup_codes: enrolled.backup_codes.iter().map(|c| c.as_str()).collect(),
        };
        let text = Zeroizing::new(serde_json::to_string(&out).map_err(Failure::error)?);
        println!("{}", text.as_str());
    } else {
        print_human(ctx, &user, &enrolled, &uri, &issuer)?;
    }

    if auth.active {
        if !args.json && !enrolled.unchanged {
            println!("\n{user}'s authenticator {:?} is active.", auth.name);
        }
        return Ok(());
    }
    confirm_pending(ctx, &user, &auth.name, args.confirm.as_deref(), args.json)
}

/// A secret file holds nothing longer than this (a 64-byte secret is 104 base32 characters).
const MAX_SECRET_FILE: u64 = 4096;

/// The contents of `--secret-file`: a regular file closed to group and others, so the secret
/// kept out of `ps` is not in a file every local user can read instead.
fn read_secret_file(path: &Path) -> Result<Zeroizing<String>, Failure> {
    let fail = |why: String| Failure::Error(format!("--secret-file {}: {why}", path.display()));
    // O_NONBLOCK: a FIFO planted at the path must not hang the run before the type check.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(sshield_core::store::describe_io(&e)))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(sshield_core::store::describe_io(&e)))?;
    if !meta.is_file() {
        return Err(fail("not a regular file".to_owned()));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(fail(format!(
            "mode {mode:04o} lets group or others read the secret; run: chmod 600 {}",
            path.display()
        )));
    }
    if meta.len() > MAX_SECRET_FILE {
        return Err(fail(format!(
            "{} bytes is no secret; it should hold one base32 secret",
            meta.len()
        )));
    }
    let mut text = Zeroizing::new(String::new());
    (&file)
        .take(MAX_SECRET_FILE)
        .read_to_string(&mut text)
        .map_err(|e| fail(sshield_core::store::describe_io(&e)))?;
    Ok(text)
}

fn print_human(
    _ctx: &Context,
    user: &UserName,
    enrolled: &provision::Enrolled,
    uri: &str,
    issuer: &str,
) -> Result<(), Failure> {
    let auth = &enrolled.authenticator;
    if enrolled.unchanged {
        println!(
            "{user} already has this secret as {:?}; nothing changed.",
            auth.name
        );
        return Ok(());
    }
    let shape = match auth.kind {
        TokenKind::Totp => format!(
            "TOTP, {}, {} digits, {} s",
            auth.algorithm,
            auth.digits,
            auth.period.unwrap_or_default().seconds()
        ),
        TokenKind::Hotp => format!("HOTP, {}, {} digits", auth.algorithm, auth.digits),
    };
    println!(
        "Enrolling {user} as {issuer:?}, authenticator {:?} ({shape}).\n",
        auth.name
    );
    println!("Scan this QR code with an authenticator app (Aegis, FreeOTP, Google Authenticator, ...):\n");
    println!("{}", qr::terminal(uri)?);
    let secret = auth.secret.to_base32();
    let grouped: Vec<String> = secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    println!("Or type this key into the app: {}", grouped.join(" "));
    println!("Key URI: {uri}\n");
    if enrolled.backup_codes.is_empty() {
        println!("Existing backup codes were kept (sshield backup-codes {user} issues new ones).");
    } else {
        println!("Backup codes: each works once, when the phone is lost. They are shown only now;");
        println!("print them or keep them in a password manager.\n");
        print_backup_codes(&enrolled.backup_codes);
    }
    Ok(())
}

/// Confirms with `--confirm CODE`, or at a prompt, or leaves the record pending.
fn confirm_pending(
    ctx: &Context,
    user: &UserName,
    name: &str,
    code: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let attempt = |typed: &str| {
        provision::confirm(
            &ctx.store,
            user,
            Some(name),
            &Response::new(typed),
            ctx.now,
            &ctx.config.policy,
        )
    };
    if let Some(code) = code {
        attempt(code)?;
        if !json {
            println!("\nConfirmed: {user}'s authenticator {name:?} is active.");
        }
        return Ok(());
    }
    let later =
        format!("the enrollment stays pending; confirm it with: sshield confirm {user} CODE");
    if !std::io::stdin().is_terminal() {
        eprintln!("sshield: {later}");
        return Ok(());
    }
    for _ in 0..CONFIRM_TRIES {
        let Some(typed) = read_line(Some("\nEnter the code the app shows now to confirm: "))?
        else {
            break;
        };
        match attempt(&typed) {
            Ok(_) => {
                eprintln!("Confirmed: {user}'s authenticator {name:?} is active.");
                return Ok(());
            }
            Err(ProvisionError::Refused(reason)) => {
                eprintln!("That code was refused ({reason}); try again.")
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Failure::Refused(later))
}
