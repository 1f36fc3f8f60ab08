//! Moving users over from the tools sshield replaces.
//!
//! - [`users_oath`]: pam_oath's usersfile (`/etc/users.oath`).
//! - [`google_authenticator`]: a user's `~/.google_authenticator`.
//! - [`ImportPlan`]: what a parser read, user by user, with notes for the admin.
//! - [`apply`](fn@apply): writes a plan into the record store, all users or none.
//!
//! An import reads the whole file first; a bad line stops it with `file:line` and nothing is
//! written. Phone apps keep working: the secrets, parameters and replay state carry over.

mod apply;
mod error;
pub mod google_authenticator;
mod plan;
pub mod users_oath;

pub use apply::{apply, BackupOutcome, ImportReport, UserReport};
pub use error::{Conflict, ConflictKind, ImportError, LineProblem};
pub use plan::{ImportPlan, ImportedUser};
