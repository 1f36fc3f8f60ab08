//! Man pages for `sshield-server` and its subcommands, generated from the clap definitions
//! so they can never drift from the real options (docs/man-server, checked by tests/docs.rs).

use std::fs;
use std::io;
use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;

/// Writes `sshield-server.1` and one page per visible subcommand into `dir`.
pub fn generate(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    clap_mangen::generate_to(Cli::command().disable_help_subcommand(true), dir)
}
