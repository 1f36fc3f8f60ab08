//! How a command fails: refused (exit 1) or an error (exit 2), with one clear line on stderr.

use std::fmt::Display;
use std::process::ExitCode;

/// A command's failure, already worded for the user.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A code or request was refused: exit 1.
    Refused(String),
    /// Something is broken or was misused: exit 2.
    Error(String),
}

impl Failure {
    /// An error from anything that displays well.
    pub(crate) fn error(e: impl Display) -> Self {
        Self::Error(e.to_string())
    }

    /// Prints the message and returns the exit code.
    pub(crate) fn report(self) -> ExitCode {
        match self {
            Self::Refused(m) => {
                eprintln!("sshield: refused: {m}");
                ExitCode::from(1)
            }
            Self::Error(m) => {
                eprintln!("sshield: error: {m}");
                ExitCode::from(2)
            }
        }
    }
}

impl From<sshield_core::ConfigError> for Failure {
    fn from(e: sshield_core::ConfigError) -> Self {
        Self::error(e)
    }
}

impl From<sshield_core::StoreError> for Failure {
    fn from(e: sshield_core::StoreError) -> Self {
        Self::error(e)
    }
}

impl From<sshield_core::UserNameError> for Failure {
    fn from(e: sshield_core::UserNameError) -> Self {
        Self::error(e)
    }
}

impl From<sshield_core::provision::ProvisionError> for Failure {
    fn from(e: sshield_core::provision::ProvisionError) -> Self {
        use sshield_core::provision::ProvisionError;
        match e {
            ProvisionError::Refused(_) => Self::Refused(e.to_string()),
            other => Self::error(other),
        }
    }
}
