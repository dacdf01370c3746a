//! What a sandboxed helper process does to itself before it touches
//! untrusted input: resource limits, and giving up root for good.

use std::io;

/// A resource limit to set (soft and hard alike).
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// Seconds of CPU time; then SIGXCPU, and SIGKILL a second later.
    CpuSeconds(u64),
    /// Bytes of address space.
    AddressSpace(u64),
    /// Open file descriptors.
    Files(u64),
    /// Bytes any file written may have (0: none may be written).
    FileSize(u64),
    /// Processes of the (unprivileged) user: 0 forbids fork.
    Processes(u64),
    /// Bytes of a core dump (0: none).
    CoreSize(u64),
}

/// Sets `limit` for the calling process.
pub fn set_limit(limit: Limit) -> io::Result<()> {
    let (resource, value) = match limit {
        Limit::CpuSeconds(value) => (libc::RLIMIT_CPU, value),
        Limit::AddressSpace(value) => (libc::RLIMIT_AS, value),
        Limit::Files(value) => (libc::RLIMIT_NOFILE, value),
        Limit::FileSize(value) => (libc::RLIMIT_FSIZE, value),
        Limit::Processes(value) => (libc::RLIMIT_NPROC, value),
        Limit::CoreSize(value) => (libc::RLIMIT_CORE, value),
    };
    let rlimit = libc::rlimit {
        rlim_cur: value,
        rlim_max: value,
    };
    // SAFETY: setrlimit reads a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(resource, &rlimit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether the process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Gives up root for good: no supplementary groups, then real, effective
/// and saved gid and uid all `gid` and `uid` (in that order: the gid can
/// only be changed while still root). Checked afterwards: regaining root
/// must fail.
pub fn drop_privileges(uid: u32, gid: u32) -> io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    // SAFETY: setgroups with a count of 0 reads no memory.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    // SAFETY: plain system calls on integers.
    check(unsafe { libc::setresgid(gid, gid, gid) })?;
    // SAFETY: as above.
    check(unsafe { libc::setresuid(uid, uid, uid) })?;
    // SAFETY: as above; it must fail now that no id is 0.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other("root could be regained"));
    }
    Ok(())
}

/// Raises the soft limit of open files to the hard limit.
pub fn raise_open_files() -> io::Result<u64> {
    let mut rlimit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes a valid rlimit.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rlimit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    rlimit.rlim_cur = rlimit.rlim_max;
    // SAFETY: setrlimit reads a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rlimit.rlim_cur)
}
