//! The listening socket a service manager hands over (systemd's
//! LISTEN_FDS protocol: descriptors from 3 on, owned by the process that
//! LISTEN_PID names).

use std::{
    io,
    os::{
        fd::{FromRawFd, OwnedFd, RawFd},
        unix::net::UnixListener,
    },
};

use rustix::net::{AddressFamily, SocketType, sockopt};

/// Takes descriptor `fd`, handed over by the service manager, as a
/// listening Unix stream socket; refuses anything else.
///
/// Call once per descriptor: the result owns it.
pub fn adopt_listener(fd: RawFd) -> io::Result<UnixListener> {
    // SAFETY: the LISTEN_FDS protocol gives this process descriptors 3 to
    // 3 + LISTEN_FDS - 1 (sd_notify::listen_fds checked LISTEN_PID and
    // set them close-on-exec); nothing else in pktd opens or owns them
    // before this call, and the caller adopts each one once.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let family = sockopt::socket_domain(&fd)?;
    let kind = sockopt::socket_type(&fd)?;
    let listening = sockopt::socket_acceptconn(&fd)?;
    if family != AddressFamily::UNIX || kind != SocketType::STREAM || !listening {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "descriptor {} is not a listening Unix stream socket",
                rustix::fd::AsRawFd::as_raw_fd(&fd)
            ),
        ));
    }
    let listener = UnixListener::from(fd);
    listener.set_nonblocking(true)?;
    Ok(listener)
}
