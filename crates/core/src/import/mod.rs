//! Moving users over from the tools sshield replaces.
//!
//! - [`users_oath`]: pam_oath's usersfile (`/etc/users.oath`).
//! - [`google_authenticator`]: a user's `~/.google_authenticator`.
//!
//! An import reads the whole file first; a bad line stops it with `file:line` and nothing is
//! written. Phone apps keep working: the secrets, parameters and replay state carry over.
