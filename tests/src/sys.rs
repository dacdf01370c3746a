//! The test harness's system calls (AF_PACKET sockets). The only module of
//! this crate with `unsafe` code.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// An AF_PACKET raw socket bound to `ifindex` in the calling thread's
/// namespace, for sending whole Ethernet frames. It receives nothing
/// (protocol 0).
pub fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: addr is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&addr).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// Sends one frame on a bound AF_PACKET socket.
pub fn send_frame(socket: &OwnedFd, frame: &[u8]) -> io::Result<()> {
    // SAFETY: frame is a valid buffer of frame.len() bytes.
    let sent = unsafe { libc::send(socket.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
    match sent {
        n if n < 0 => Err(io::Error::last_os_error()),
        n if n as usize == frame.len() => Ok(()),
        n => Err(io::Error::other(format!(
            "sent {n} of {} bytes",
            frame.len()
        ))),
    }
}

/// Sends `frames` on a bound AF_PACKET socket with one sendmmsg(2) call;
/// the number the kernel took (possibly fewer, e.g. on ENOBUFS).
pub fn send_frames(socket: &OwnedFd, frames: &[Vec<u8>]) -> io::Result<usize> {
    let mut iovecs: Vec<libc::iovec> = frames
        .iter()
        .map(|frame| libc::iovec {
            iov_base: frame.as_ptr().cast_mut().cast(),
            iov_len: frame.len(),
        })
        .collect();
    let mut messages: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .map(|iovec| {
            // SAFETY: mmsghdr is plain old data; all-zero is a valid value.
            let mut message: libc::mmsghdr = unsafe { std::mem::zeroed() };
            message.msg_hdr.msg_iov = std::ptr::from_mut(iovec);
            message.msg_hdr.msg_iovlen = 1;
            message
        })
        .collect();
    // SAFETY: every message points at one iovec of a frame; all outlive the
    // call, and the kernel only reads the frames.
    let sent = unsafe {
        libc::sendmmsg(
            socket.as_raw_fd(),
            messages.as_mut_ptr(),
            messages.len() as u32,
            0,
        )
    };
    if sent < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(sent as usize)
    }
}

/// Pins the calling thread to CPU `cpu`.
pub fn pin_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain old data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes a bit of `set`; cpu is checked against its size.
    unsafe {
        if cpu >= 8 * size_of::<libc::cpu_set_t>() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        libc::CPU_SET(cpu, &mut set);
    }
    // SAFETY: set is a valid cpu_set_t of the size passed; 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Waits up to `timeout_ms` for `fd` to become readable.
pub fn wait_readable(fd: i32, timeout_ms: i32) -> bool {
    let mut pollfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let rc = unsafe { libc::poll(&mut pollfd, 1, timeout_ms) };
    rc > 0
}

/// Sets the calling thread's (only this thread's: raw system calls, not
/// the libc wrappers that change every thread) groups, gid and uid. There is
/// no way back: call it on a thread that ends afterwards.
pub fn drop_thread_credentials(uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: raw credential syscalls with plain integer arguments; they
    // affect only the calling thread.
    let ok = unsafe {
        let groups = [gid];
        libc::syscall(libc::SYS_setgroups, 1, groups.as_ptr()) == 0
            && libc::syscall(libc::SYS_setresgid, gid, gid, gid) == 0
            && libc::syscall(libc::SYS_setresuid, uid, uid, uid) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
