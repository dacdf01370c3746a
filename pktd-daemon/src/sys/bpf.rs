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

const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;

/// Deletes `key` from an array-of-maps or program array (aya 0.14 has no
/// delete for them), so the kernel drops its reference to the entry.
pub fn delete_map_entry(map: BorrowedFd<'_>, key: u32) -> io::Result<()> {
    map_elem(BPF_MAP_DELETE_ELEM, map, key, None)
}

/// Points entry `key` of a program array at the program `program`.
pub fn set_program_array_entry(
    map: BorrowedFd<'_>,
    key: u32,
    program: BorrowedFd<'_>,
) -> io::Result<()> {
    map_elem(
        BPF_MAP_UPDATE_ELEM,
        map,
        key,
        Some(program.as_raw_fd() as u32),
    )
}

/// A BPF_MAP_*_ELEM command on a map with u32 keys and (if any) u32 values.
fn map_elem(
    command: libc::c_long,
    map: BorrowedFd<'_>,
    key: u32,
    value: Option<u32>,
) -> io::Result<()> {
    let attr = MapElemAttr {
        map_fd: map.as_raw_fd() as u32,
        _pad: 0,
        key: std::ptr::from_ref(&key) as u64,
        value: value
            .as_ref()
            .map_or(0, |value| std::ptr::from_ref(value) as u64),
        flags: 0,
    };
    // SAFETY: attr is a valid bpf_attr prefix for the BPF_MAP_*_ELEM
    // commands; `key` and `value` (4 bytes each, as these maps have) outlive
    // the call, and the kernel only reads them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            command,
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

/// The `bpf_attr` layout of BPF_PROG_LOAD, up to expected_attach_type.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// A program the kernel refused, with the verifier's log.
#[derive(Debug)]
pub struct ProgramRefused {
    pub error: io::Error,
    pub log: String,
}

/// Loads eBPF instructions (8 bytes each, `struct bpf_insn`) as a GPL
/// program of `prog_type`. On refusal, loads again with the verifier log
/// on, to say why.
pub fn load_program(
    prog_type: u32,
    expected_attach_type: u32,
    name: &str,
    insns: &[[u8; 8]],
) -> Result<std::os::fd::OwnedFd, ProgramRefused> {
    match load_program_once(prog_type, expected_attach_type, name, insns, None) {
        Ok(fd) => Ok(fd),
        Err(error) => {
            let mut log = vec![0u8; 1 << 20];
            let _ = load_program_once(prog_type, expected_attach_type, name, insns, Some(&mut log));
            let end = log.iter().position(|byte| *byte == 0).unwrap_or(log.len());
            Err(ProgramRefused {
                error,
                log: String::from_utf8_lossy(&log[..end]).into_owned(),
            })
        }
    }
}

fn load_program_once(
    prog_type: u32,
    expected_attach_type: u32,
    name: &str,
    insns: &[[u8; 8]],
    log: Option<&mut [u8]>,
) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let license = c"GPL";
    let mut prog_name = [0u8; 16];
    for (to, from) in prog_name.iter_mut().zip(name.bytes().take(15)) {
        *to = from;
    }
    let (log_level, log_size, log_buf) = match log {
        Some(log) => (1, log.len() as u32, log.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let attr = ProgLoadAttr {
        prog_type,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        kern_version: 0,
        prog_flags: 0,
        prog_name,
        prog_ifindex: 0,
        expected_attach_type,
    };
    // SAFETY: attr is a valid bpf_attr prefix for BPF_PROG_LOAD; the
    // instructions, license and log buffer it points to outlive the call,
    // and the kernel writes at most log_size bytes into the log.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            std::ptr::from_ref(&attr),
            size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this new fd, owned by nobody else.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
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

// Packet injection (`crate::inject`): a send-only AF_PACKET socket and what
// the checks need to know about its interface.

/// An AF_PACKET raw socket bound to interface `ifindex` of the calling
/// thread's network namespace, for sending whole Ethernet frames. Protocol
/// 0: it receives nothing.
pub fn inject_socket(ifindex: u32) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = i32::try_from(ifindex).map_err(|_| io::ErrorKind::InvalidInput)?;
    // SAFETY: addr is a valid sockaddr_ll of the size passed, read only
    // during the call.
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

/// Sends one frame on a bound AF_PACKET socket, never blocking (a full
/// queue is an error, `EAGAIN`/`ENOBUFS`).
pub fn inject_send(socket: BorrowedFd<'_>, frame: &[u8]) -> io::Result<()> {
    // SAFETY: frame is a valid buffer of frame.len() bytes, only read
    // during the call.
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_DONTWAIT,
        )
    };
    match usize::try_from(sent) {
        Err(_) => Err(io::Error::last_os_error()),
        Ok(n) if n == frame.len() => Ok(()),
        Ok(n) => Err(io::Error::other(format!(
            "sent {n} of {} bytes",
            frame.len()
        ))),
    }
}

/// An `ifreq` naming interface `name`, everything else zero.
fn inject_ifreq(name: &str) -> io::Result<libc::ifreq> {
    // SAFETY: ifreq is plain old data (a name and a union of integers,
    // sockaddrs and a pointer); all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    // Leave room for the terminating NUL; no NUL inside the name.
    if name.len() >= request.ifr_name.len() || name.as_bytes().contains(&0) {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    for (to, from) in request.ifr_name.iter_mut().zip(name.as_bytes()) {
        *to = *from as libc::c_char;
    }
    Ok(request)
}

/// The kernel driver of interface `name` in the calling thread's network
/// namespace (ETHTOOL_GDRVINFO), e.g. "veth".
pub fn interface_driver(name: &str) -> io::Result<String> {
    use std::os::fd::{FromRawFd, OwnedFd};
    const SIOCETHTOOL: libc::c_ulong = 0x8946;
    const ETHTOOL_GDRVINFO: u32 = 0x3;
    /// struct ethtool_drvinfo.
    #[repr(C)]
    struct DriverInfo {
        cmd: u32,
        driver: [u8; 32],
        rest: [u8; 160],
    }
    // SAFETY: plain socket(2) call; the result is checked before use.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut info = DriverInfo {
        cmd: ETHTOOL_GDRVINFO,
        driver: [0; 32],
        rest: [0; 160],
    };
    let mut request = inject_ifreq(name)?;
    request.ifr_ifru.ifru_data = std::ptr::from_mut(&mut info).cast();
    // SAFETY: request names the interface and points at a DriverInfo as
    // large as the kernel's struct ethtool_drvinfo, which outlives the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL, &mut request) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let end = info.driver.iter().position(|b| *b == 0).unwrap_or(32);
    Ok(String::from_utf8_lossy(&info.driver[..end]).into_owned())
}

/// The MTU of interface `name`, asked through `socket` (the ioctl answers
/// for the socket's network namespace).
pub fn inject_interface_mtu(socket: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut request = inject_ifreq(name)?;
    // SAFETY: SIOCGIFMTU reads the name and writes ifru_mtu of a valid,
    // writable ifreq that outlives the call.
    let rc = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCGIFMTU,
            std::ptr::from_mut(&mut request),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled ifru_mtu; every bit pattern is a valid int.
    let mtu = unsafe { request.ifr_ifru.ifru_mtu };
    u32::try_from(mtu).map_err(|_| io::Error::other(format!("negative MTU {mtu}")))
}

/// The hardware address family (`ARPHRD_*`) and the first six bytes of the
/// hardware address of interface `name`, asked through `socket` (the ioctl
/// answers for the socket's network namespace).
pub fn inject_interface_hwaddr(socket: BorrowedFd<'_>, name: &str) -> io::Result<(u16, [u8; 6])> {
    let mut request = inject_ifreq(name)?;
    // SAFETY: SIOCGIFHWADDR reads the name and writes ifru_hwaddr of a
    // valid, writable ifreq that outlives the call.
    let rc = unsafe {
        libc::ioctl(
            socket.as_raw_fd(),
            libc::SIOCGIFHWADDR,
            std::ptr::from_mut(&mut request),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel filled ifru_hwaddr; a sockaddr is integers only.
    let hwaddr = unsafe { request.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (to, from) in mac.iter_mut().zip(hwaddr.sa_data) {
        *to = from as u8;
    }
    Ok((hwaddr.sa_family, mac))
}

/// The IPv4 and IPv6 addresses of interface `name` (IPv4 addresses under a
/// label `name:...` included) in the calling thread's network namespace,
/// from getifaddrs(3) (netlink, so the namespace is the thread's).
pub fn inject_interface_addresses(name: &str) -> io::Result<Vec<std::net::IpAddr>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head to a valid pointer; the list is
    // freed below with freeifaddrs, once.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut addresses = Vec::new();
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: entry is a non-null node of the list getifaddrs returned,
        // not yet freed.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        if ifa.ifa_name.is_null() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifa_name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_bytes();
        let own = ifa_name == name.as_bytes()
            || ifa_name
                .strip_prefix(name.as_bytes())
                .is_some_and(|rest| rest.starts_with(b":"));
        if !own {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr at least as large as its
        // family's (glibc allocates sockaddr_in for AF_INET and sockaddr_in6
        // for AF_INET6), read unaligned to be safe.
        let address = unsafe {
            match i32::from((*ifa.ifa_addr).sa_family) {
                libc::AF_INET => {
                    let sin = std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in>());
                    Some(std::net::IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
                }
                libc::AF_INET6 => {
                    let sin6 = std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_in6>());
                    Some(std::net::IpAddr::from(sin6.sin6_addr.s6_addr))
                }
                _ => None,
            }
        };
        addresses.extend(address);
    }
    // SAFETY: list came from getifaddrs and is freed once; no reference
    // into it survives (addresses were copied).
    unsafe { libc::freeifaddrs(list) };
    Ok(addresses)
}
