//! The hidden `generate-docs` command: man pages and shell completions from the clap
//! definitions, so they can never drift from the real options.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::failure::Failure;

pub fn generate(dir: &Path) -> Result<(), Failure> {
    let io =
        |e: std::io::Error| Failure::Error(format!("cannot write into {}: {e}", dir.display()));
    let man = dir.join("man");
    let completions = dir.join("completions");
    fs::create_dir_all(&man).map_err(io)?;
    fs::create_dir_all(&completions).map_err(io)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man).map_err(io)?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "sshield", &completions).map_err(io)?;
    }
    Ok(())
}
