//! The hidden `generate-docs` command: man pages and shell completions from the clap
//! definitions, so they can never drift from the real options.

use std::fs;
use std::path::Path;

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::failure::Failure;

pub(crate) fn generate(dir: &Path) -> Result<(), Failure> {
    let io =
        |e: std::io::Error| Failure::Error(format!("cannot write into {}: {e}", dir.display()));
    let man = dir.join("man");
    let completions = dir.join("completions");
    fs::create_dir_all(&man).map_err(io)?;
    fs::create_dir_all(&completions).map_err(io)?;
    let cmd = Cli::command();
    clap_mangen::generate_to(cmd.clone(), &man).map_err(io)?;
    // The daemon is a system service: its page goes in section 8 (system administration).
    let mut built = cmd.clone().disable_help_subcommand(true);
    built.build();
    if let Some(daemon) = built.find_subcommand("daemon") {
        let page = clap_mangen::Man::new(daemon.clone()).section("8");
        page.generate_to(&man).map_err(io)?;
        fs::remove_file(man.join("sshield-daemon.1")).map_err(io)?;
    }
    // `sshield login` never reads SSHIELD_CONFIG (the client can set it through sshd), so its
    // page must not offer the variable the other pages inherit from the global --config.
    if let Some(login) = built.find_subcommand("login") {
        let login = login.clone().mut_arg("config", |arg| arg.hide_env(true));
        clap_mangen::Man::new(login).generate_to(&man).map_err(io)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "sshield", &completions).map_err(io)?;
    }
    Ok(())
}
