//! The test harness's system calls (AF_PACKET sockets). The only module of
//! this crate with `unsafe` code.

use std::{
    io,
    mem::size_of,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
};

use pktd_common::CbpfInsn;

/// An AF_PACKET raw socket bound to `ifindex` in the calling thread's
/// namespace, for sending whole Ethernet frames. It receives nothing
/// (protocol 0).
pub fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    let fd = raw_packet_socket(0)?;
    bind_packet_socket(&fd, ifindex, 0)?;
    Ok(fd)
}

/// A fresh AF_PACKET raw socket with extra `flags` (SOCK_NONBLOCK…).
fn raw_packet_socket(flags: i32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | flags,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds `fd` to `ifindex`, receiving `protocol` (network order; 0:
/// nothing).
fn bind_packet_socket(fd: &OwnedFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
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
    Ok(())
}

/// An AF_PACKET socket receiving every frame of `ifindex`, both ways, that
/// `program` accepts: the kernel's own filter, the reference for what a
/// live tcpdump with that filter sees. Non-blocking. The filter is in
/// place before the socket is bound, so that nothing unfiltered gets in.
pub fn filtered_capture_socket(ifindex: u32, program: &[CbpfInsn]) -> io::Result<OwnedFd> {
    let fd = raw_packet_socket(libc::SOCK_NONBLOCK)?;
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr().cast_mut().cast(),
    };
    // SAFETY: fprog points at `program`, whose CbpfInsn is laid out as the
    // kernel's sock_filter (8 bytes: code, jt, jf, k); the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            std::ptr::from_ref(&fprog).cast(),
            size_of::<libc::sock_fprog>() as u32,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let buffer: libc::c_int = 8 << 20;
    // SAFETY: a valid int of the size passed.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            std::ptr::from_ref(&buffer).cast(),
            size_of::<libc::c_int>() as u32,
        );
    }
    bind_packet_socket(&fd, ifindex, (libc::ETH_P_ALL as u16).to_be())?;
    Ok(fd)
}

/// Every frame waiting on a non-blocking packet socket, whole.
pub fn receive_all(socket: &OwnedFd) -> io::Result<Vec<Vec<u8>>> {
    let mut frames = Vec::new();
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        // SAFETY: buffer is a valid writable buffer of its length.
        let got = unsafe {
            libc::recv(
                socket.as_raw_fd(),
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_TRUNC,
            )
        };
        if got < 0 {
            let err = io::Error::last_os_error();
            return match err.kind() {
                io::ErrorKind::WouldBlock => Ok(frames),
                _ => Err(err),
            };
        }
        frames.push(buffer[..(got as usize).min(buffer.len())].to_vec());
    }
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

/// The calling thread's id.
pub fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Pins the calling thread to `cpu`.
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

/// bpf(2) commands the zero-copy tests try as an unprivileged user
/// (include/uapi/linux/bpf.h).
pub mod bpf_cmd {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const MAP_GET_NEXT_KEY: i32 = 4;
    pub const MAP_GET_FD_BY_ID: i32 = 14;
    pub const OBJ_GET_INFO_BY_FD: i32 = 15;
    pub const MAP_FREEZE: i32 = 22;
}

fn bpf(cmd: i32, attr: &mut [u64; 16]) -> io::Result<i64> {
    // SAFETY: bpf(2) reads (and for some commands writes) at most the
    // 128-byte attribute union passed, which `attr` is.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr.as_mut_ptr(),
            std::mem::size_of_val(attr),
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// BPF_MAP_GET_FD_BY_ID: a descriptor of map `id` (CAP_SYS_ADMIN only).
pub fn bpf_map_fd_by_id(id: u32) -> io::Result<OwnedFd> {
    let mut attr = [0u64; 16];
    attr[0] = u64::from(id);
    let fd = bpf(bpf_cmd::MAP_GET_FD_BY_ID, &mut attr)?;
    // SAFETY: the kernel just returned this new descriptor to us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// BPF_OBJ_GET_INFO_BY_FD of a map: its id and name.
pub fn bpf_map_id_and_name(fd: BorrowedFd<'_>) -> io::Result<(u32, String)> {
    let mut info = [0u8; 64];
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd() as u32) | ((info.len() as u64) << 32);
    attr[1] = info.as_mut_ptr() as u64;
    bpf(bpf_cmd::OBJ_GET_INFO_BY_FD, &mut attr)?;
    // struct bpf_map_info: type, id, key_size, value_size, max_entries,
    // map_flags, then name[16].
    let id = u32::from_ne_bytes(info[4..8].try_into().unwrap());
    let name = info[24..40].split(|&b| b == 0).next().unwrap_or_default();
    Ok((id, String::from_utf8_lossy(name).into_owned()))
}

/// A map command on `fd` with 64 bytes of junk as key and value.
pub fn bpf_map_junk_command(cmd: i32, fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut key = [0x5au8; 64];
    let mut value = [0xa5u8; 64];
    let mut attr = [0u64; 16];
    attr[0] = u64::from(fd.as_raw_fd() as u32);
    attr[1] = key.as_mut_ptr() as u64;
    attr[2] = value.as_mut_ptr() as u64;
    bpf(cmd, &mut attr).map(|_| ())
}

/// A BPF ring buffer's consumer page mapped writable, as any holder of
/// the ring's descriptor may map it.
pub struct ConsumerPage {
    ptr: *mut u64,
    len: usize,
}

impl ConsumerPage {
    pub fn map(ring: BorrowedFd<'_>) -> io::Result<Self> {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        // SAFETY: a new shared mapping of the descriptor's first page.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                ring.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len: page,
        })
    }

    /// Writes the consumer position.
    pub fn write(&self, position: u64) {
        // SAFETY: the first word of the mapped page, aligned.
        unsafe { self.ptr.write_volatile(position) }
    }

    /// Reads the consumer position.
    pub fn read(&self) -> u64 {
        // SAFETY: as above.
        unsafe { self.ptr.read_volatile() }
    }
}

impl Drop for ConsumerPage {
    fn drop(&mut self) {
        // SAFETY: the mapping `map` made.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Tries to map `len` bytes of `fd` at `offset` writable; the mapping is
/// undone at once if the kernel allows it.
pub fn try_map_writable(fd: BorrowedFd<'_>, offset: i64, len: usize) -> io::Result<()> {
    // SAFETY: a new shared mapping, unmapped before returning.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            offset,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping just made.
    unsafe { libc::munmap(ptr, len) };
    Ok(())
}

/// pidfd_getfd(2): a copy of descriptor `target` of process `pid`
/// (needs PTRACE_MODE_ATTACH_REALCREDS over it).
pub fn steal_fd(pid: i32, target: i32) -> io::Result<OwnedFd> {
    // SAFETY: raw system calls with integer arguments; the pidfd is closed
    // by its OwnedFd.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned it.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: as above.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), target, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}
