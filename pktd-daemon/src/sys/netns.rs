//! setns(2): moving a thread into a network namespace.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

/// Moves the calling thread into the network namespace behind `fd`.
pub fn enter_netns(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: setns only reads the fd; it changes the calling thread's
    // namespace, which callers confine to a thread they own.
    let rc = unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
