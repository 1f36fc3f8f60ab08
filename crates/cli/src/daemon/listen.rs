//! The daemon's listening socket, with an accept queue short enough that a flood cannot stand
//! between another user and the accept loop for long.
//!
//! The accept loop serves connections in the order the kernel queued them, and a flooder's
//! refused connections queue like anyone's. `UnixListener::bind` asks for the largest queue
//! the kernel allows (`listen(fd, -1)`: `net.core.somaxconn`, 4 096 on Linux 5.4 and later),
//! so one user hammering the socket kept up to 4 096 of their connections ahead of another
//! user's login, each costing the loop a credential lookup and a `busy` reply: 94-235 ms at the
//! median on a loaded 2-core machine, 5-15 ms with this queue (docs/benchmarks.md, issue 13).
//! With [`BACKLOG`] connections queued, a further `connect()` waits in the kernel until there
//! is room, and each user's process is woken to try again alike.

use std::io;
use std::os::unix::net::UnixListener;
use std::path::Path;

use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

/// Connections the kernel queues for the accept loop: as many as the daemon serves at once
/// ([`super::MAX_CONNECTIONS`]), so a burst of logins that could all be served is never
/// refused by the kernel, and no more.
pub(super) const BACKLOG: i32 = 128;
const _: () = assert!(BACKLOG as usize == super::MAX_CONNECTIONS);

/// A Unix stream socket bound at `path`, listening with a queue of [`BACKLOG`],
/// close-on-exec as std's own.
pub(super) fn bind(path: &Path) -> io::Result<UnixListener> {
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    rustix::net::bind_unix(&fd, &SocketAddrUnix::new(path)?)?;
    rustix::net::listen(&fd, BACKLOG)?;
    Ok(UnixListener::from(fd))
}
