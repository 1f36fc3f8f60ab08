//! The host's side of the fleet: how it trusts the server's certificate ([`tls`]), its key
//! ([`key`]), and the one client that asks the server ([`client`]), used by `sshield join`
//! and by `sshield daemon`, the host's only network client. The PAM module and `sshield
//! login` never come here: they ask the daemon.

pub(crate) mod client;
pub(crate) mod key;
pub(crate) mod offline;
pub(crate) mod push;
pub(crate) mod tls;
