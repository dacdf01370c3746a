//! The compile helper: a short-lived process the daemon starts for each
//! client expression (`pktd compile-helper`, the daemon's own binary). It
//! gives up everything it can before libpcap's parser, C code, reads a
//! byte of what a local user wrote: CPU time, memory, files and processes
//! are limited; when started by root it becomes `nobody` for good; and a
//! seccomp allow-list leaves it reading and writing its standard streams,
//! reading the files libpcap resolves names from, and allocating memory.
//! A parser bug then cannot become root, nor reach the network, nor
//! outlive its deadline.

use std::{
    io::{Read, Write},
    process::ExitCode,
};

use seccompiler::{SeccompAction, SeccompFilter, TargetArch};

use super::protocol::{Answer, MAX_EXPRESSION_LEN, Request};
use crate::sys::{self, Limit};

/// The argument that makes `pktd` a compile helper.
pub const HELPER_ARG: &str = "compile-helper";

/// Who the helper runs as when started by root: `nobody` and `nogroup`.
pub const HELPER_UID: u32 = 65534;
/// See [`HELPER_UID`].
pub const HELPER_GID: u32 = 65534;

/// CPU seconds a helper may use (the daemon's wall-clock deadline is
/// shorter; this catches a helper the daemon could not kill).
const CPU_SECONDS: u64 = 30;
/// Address space a helper may map: libpcap takes about 260 MB for an
/// expression of 800 ports, which takes minutes to compile anyway.
const ADDRESS_SPACE: u64 = 1 << 30;
/// Open files: the standard streams and what name resolution reads.
const FILES: u64 = 32;

/// The system calls a helper may make after confining itself; anything
/// else fails with EPERM (so that glibc falls back, e.g. from nscd's socket
/// to the files, instead of dying).
const ALLOWED: &[i64] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_writev,
    libc::SYS_openat,
    libc::SYS_close,
    libc::SYS_fstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_lseek,
    libc::SYS_pread64,
    libc::SYS_fcntl,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_futex,
    libc::SYS_getrandom,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// The helper's `main`.
pub fn run() -> ExitCode {
    if let Err(err) = confine() {
        eprintln!("pktd compile-helper: cannot confine itself: {err}");
        return ExitCode::from(2);
    }
    let mut input = Vec::new();
    let limit = (MAX_EXPRESSION_LEN + 64) as u64;
    if std::io::stdin()
        .take(limit)
        .read_to_end(&mut input)
        .is_err()
    {
        return ExitCode::from(2);
    }
    let Some(request) = Request::decode(&input) else {
        eprintln!("pktd compile-helper: malformed request");
        return ExitCode::from(2);
    };
    let answer = match pktd_filter::compile_unvalidated(
        &request.expression,
        request.optimize,
        request.snaplen,
    ) {
        Ok(insns) => Answer::Program(pktd_filter::format_ddd(&insns)),
        Err(pktd_filter::FilterError::Compile { message, .. }) => Answer::Error(message),
        Err(other) => Answer::Error(other.to_string()),
    };
    match std::io::stdout().write_all(&answer.encode()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::from(2),
    }
}

/// Limits, then privileges, then system calls: each step before the next
/// may still need what the next takes away.
fn confine() -> std::io::Result<()> {
    for limit in [
        Limit::CpuSeconds(CPU_SECONDS),
        Limit::AddressSpace(ADDRESS_SPACE),
        Limit::Files(FILES),
        Limit::FileSize(0),
        Limit::CoreSize(0),
    ] {
        sys::set_limit(limit)?;
    }
    if sys::is_root() {
        sys::drop_privileges(HELPER_UID, HELPER_GID)?;
        // No processes: the helper starts nothing.
        sys::set_limit(Limit::Processes(0))?;
    }
    let filter = SeccompFilter::new(
        ALLOWED.iter().map(|&call| (call, Vec::new())).collect(),
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
        target_arch()?,
    )
    .map_err(std::io::Error::other)?;
    let program: seccompiler::BpfProgram = filter.try_into().map_err(std::io::Error::other)?;
    seccompiler::apply_filter(&program).map_err(std::io::Error::other)
}

fn target_arch() -> std::io::Result<TargetArch> {
    std::env::consts::ARCH
        .try_into()
        .map_err(|_| std::io::Error::other("no seccomp filter for this architecture"))
}
