//! `sshield import users-oath` and `sshield import google-authenticator`.

use std::path::Path;

use super::Context;
use crate::failure::Failure;

pub fn users_oath(
    _ctx: &Context,
    _file: &Path,
    _replace: bool,
    _dry_run: bool,
) -> Result<(), Failure> {
    Err(Failure::Error("not wired yet".into()))
}

pub fn google_authenticator(
    _ctx: &Context,
    _file: &Path,
    _user: &str,
    _replace: bool,
    _dry_run: bool,
) -> Result<(), Failure> {
    Err(Failure::Error("not wired yet".into()))
}
