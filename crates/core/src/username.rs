//! User names that are safe to use as file names in the store.

use std::fmt;

/// A login name checked to be safe as a file name: 1-64 characters from `A-Za-z0-9._@-`,
/// not starting with `.` or `-`. This covers POSIX portable names and `user@domain`
/// (SSSD/winbind) while making `../root` or `.lock` impossible by construction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserName(String);

impl UserName {
    /// Checks `name`.
    pub fn new(name: &str) -> Result<Self, UserNameError> {
        if name.is_empty() || name.len() > 64 {
            return Err(UserNameError::Length(name.len()));
        }
        if name.starts_with(['.', '-']) {
            return Err(UserNameError::Start);
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-')))
        {
            return Err(UserNameError::Character(c));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a user name was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserNameError {
    /// Empty or longer than 64 bytes.
    Length(usize),
    /// Starts with `.` or `-`.
    Start,
    /// Contains a character outside `A-Za-z0-9._@-`.
    Character(char),
}

impl fmt::Display for UserNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Length(n) => write!(f, "user name must be 1 to 64 characters long, not {n}"),
            Self::Start => write!(f, "user name must not start with '.' or '-'"),
            Self::Character(c) => write!(
                f,
                "user name contains {c:?}; only letters, digits and . _ @ - are allowed"
            ),
        }
    }
}

impl std::error::Error for UserNameError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_names_and_refuses_paths() {
        for ok in [
            "alice",
            "bob.smith",
            "svc_backup",
            "alice@corp.example",
            "u1-x",
        ] {
            assert!(UserName::new(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../root",
            ".alice",
            "-x",
            "a/b",
            "a b",
            "al\0ice",
            "zoë",
            &"a".repeat(65),
        ] {
            assert!(UserName::new(bad).is_err(), "{bad:?}");
        }
    }
}
