//! Every system call pktd makes that std and aya do not wrap. This is the
//! only module of the daemon with `unsafe` code.

use std::{
    ffi::CString,
    io,
    mem::size_of,
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

/// The index of interface `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> io::Result<u32> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: c_name is a valid NUL-terminated string for the call's duration.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(index)
    }
}

/// The `bpf_attr` layout of BPF_MAP_*_ELEM commands.
#[repr(C)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

const BPF_MAP_DELETE_ELEM: libc::c_long = 3;

/// Deletes `key` from an array-of-maps (aya 0.14 has no delete for it), so
/// the kernel drops its reference to the inner map.
pub fn delete_map_entry(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    let attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(&key) as u64,
        value: 0,
        flags: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_MAP_DELETE_ELEM and
    // `key` outlives the call; the kernel reads 4 bytes through attr.key.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_DELETE_ELEM,
            std::ptr::from_ref(&attr),
            size_of::<MapElemAttr>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn clock_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_REALTIME minus CLOCK_TAI, in nanoseconds: turns the kernel
/// program's TAI timestamps into wall-clock time.
pub fn realtime_minus_tai_ns() -> i64 {
    (clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_TAI)) as i64
}

/// Registers a client's ring buffer with the tokio reactor (readable when
/// records wait).
pub fn register_ring(
    client: crate::capture::Client,
) -> io::Result<tokio::io::unix::AsyncFd<crate::capture::Client>> {
    // SAFETY: the fd is the client's ring-buffer map fd, owned by the
    // client for its whole life and the same on every as_raw_fd call.
    unsafe {
        tokio::io::unix::AsyncFd::register_with_interest(client, tokio::io::Interest::READABLE)
    }
    .map_err(io::Error::from)
}
