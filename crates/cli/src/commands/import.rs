//! `sshield import users-oath` and `sshield import google-authenticator`.
//!
//! The whole file is read and checked, and every user checked against the store, before
//! anything is written: a bad line stops the import with `file:line` and changes nothing.

use std::path::Path;

use sshield_core::import::{self, ImportError, ImportPlan};

use super::{user_name, Context};
use crate::failure::Failure;

pub(crate) fn users_oath(
    ctx: &Context,
    file: &Path,
    replace: bool,
    dry_run: bool,
) -> Result<(), Failure> {
    let plan = import::users_oath::read(file, ctx.now).map_err(failure)?;
    finish(ctx, plan, replace, dry_run)
}

pub(crate) fn google_authenticator(
    ctx: &Context,
    file: &Path,
    user: &str,
    replace: bool,
    dry_run: bool,
) -> Result<(), Failure> {
    let user = user_name(user)?;
    let plan = import::google_authenticator::read(file, &user, ctx.now).map_err(failure)?;
    finish(ctx, plan, replace, dry_run)
}

fn finish(ctx: &Context, plan: ImportPlan, replace: bool, dry_run: bool) -> Result<(), Failure> {
    for note in &plan.notes {
        eprintln!("sshield: note: {note}");
    }
    if dry_run {
        for u in &plan.users {
            let names: Vec<&str> = u.authenticators.iter().map(|a| a.name.as_str()).collect();
            println!(
                "{}: would import {} (line {}){}",
                u.user,
                names.join(", "),
                u.source_line,
                match u.backup_codes.len() {
                    0 => String::new(),
                    n => format!(" and {n} backup codes"),
                }
            );
        }
        println!("Dry run: nothing was written.");
        return Ok(());
    }
    ctx.store.create_dir()?;
    let report = import::apply(&ctx.store, &plan, replace, ctx.now).map_err(failure)?;
    for user in &report.users {
        println!("{user}");
    }
    println!(
        "Imported {} user{} ({} changed). Their apps keep working; `sshield status` lists them.",
        report.users.len(),
        if report.users.len() == 1 { "" } else { "s" },
        report.changed_users()
    );
    let without_backup: Vec<String> = plan
        .users
        .iter()
        .filter(|u| u.backup_codes.is_empty())
        .map(|u| u.user.to_string())
        .collect();
    if !without_backup.is_empty() {
        println!(
            "No backup codes came with {}; issue them with: sshield backup-codes USER",
            without_backup.join(", ")
        );
    }
    Ok(())
}

fn failure(e: ImportError) -> Failure {
    Failure::Error(format!("{e}; nothing was imported"))
}
