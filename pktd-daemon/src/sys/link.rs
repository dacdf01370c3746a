//! What pktd asks about network interfaces: index, driver, MTU, hardware
//! address and IP addresses, each in the calling thread's namespace (or a
//! socket's).

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

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

/// An `ifreq` naming interface `name`, everything else zero.
fn ifreq(name: &str) -> io::Result<libc::ifreq> {
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
    let mut request = ifreq(name)?;
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
pub fn interface_mtu(socket: BorrowedFd<'_>, name: &str) -> io::Result<u32> {
    let mut request = ifreq(name)?;
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
pub fn interface_hwaddr(socket: BorrowedFd<'_>, name: &str) -> io::Result<(u16, [u8; 6])> {
    let mut request = ifreq(name)?;
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
pub fn interface_addresses(name: &str) -> io::Result<Vec<std::net::IpAddr>> {
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

/// An interface of the calling thread's network namespace: its name,
/// index and `IFF_*` flags.
pub struct LinkFlags {
    pub name: String,
    pub index: u32,
    pub flags: u32,
}

/// The interfaces of the calling thread's network namespace whose names
/// `wanted` accepts, at most `most`, from getifaddrs(3) (netlink, so the
/// namespace is the thread's): each link has one `AF_PACKET` entry, with
/// or without addresses, which gives its index too.
pub fn interfaces(wanted: impl Fn(&str) -> bool, most: usize) -> io::Result<Vec<LinkFlags>> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: as in interface_addresses.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut links = Vec::new();
    let mut entry = list;
    while !entry.is_null() && links.len() < most {
        // SAFETY: entry is a non-null node of the list getifaddrs returned,
        // not yet freed.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        if ifa.ifa_name.is_null() || ifa.ifa_addr.is_null() {
            continue;
        }
        // SAFETY: ifa_addr points to a sockaddr, whose family field is
        // always there.
        if i32::from(unsafe { (*ifa.ifa_addr).sa_family }) != libc::AF_PACKET {
            continue;
        }
        // SAFETY: an AF_PACKET entry's address is a sockaddr_ll (glibc
        // allocates it so), read unaligned to be safe.
        let index = unsafe { std::ptr::read_unaligned(ifa.ifa_addr.cast::<libc::sockaddr_ll>()) }
            .sll_ifindex;
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let name = unsafe { std::ffi::CStr::from_ptr(ifa.ifa_name) }.to_string_lossy();
        if !wanted(&name) {
            continue;
        }
        links.push(LinkFlags {
            name: name.into_owned(),
            index: u32::try_from(index).unwrap_or(0),
            flags: ifa.ifa_flags,
        });
    }
    // SAFETY: list came from getifaddrs and is freed once; the names were
    // copied.
    unsafe { libc::freeifaddrs(list) };
    Ok(links)
}
