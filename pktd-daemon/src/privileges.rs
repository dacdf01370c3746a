//! Least privilege for the daemon itself: before it serves anyone (and
//! before it starts any thread, since capabilities and seccomp filters are
//! per thread and inherited), it keeps only the capabilities it needs, sets
//! `no_new_privs`, and denies itself the system calls it never makes.
//!
//! The capabilities kept, and why:
//!
//! | capability | for |
//! |---|---|
//! | `CAP_BPF` | loading the kernel program and native filters, maps |
//! | `CAP_NET_ADMIN` | attaching at TC and XDP; program types of networking |
//! | `CAP_NET_RAW` | AF_PACKET sockets for injection |
//! | `CAP_SYS_ADMIN` | entering network namespaces (setns); looking maps up by id (`BPF_MAP_GET_FD_BY_ID`: whether a ring handed to a client still exists); the verifier's variable-offset stack reads (native code for VLAN-tagged frames reads the wire head the tag is in at an offset it computes) |
//! | `CAP_CHOWN` | handing recordings and users' directories to the users |
//! | `CAP_DAC_OVERRIDE` | making files in users' own `0700` record directories |
//! | `CAP_SETUID`, `CAP_SETGID` | compile helpers becoming `nobody` |
//! | `CAP_KILL` | killing a compile helper (then `nobody`) at its deadline |
//! | `CAP_SYS_PTRACE` | opening `/proc/PID/ns/net` of a process with other credentials or more capabilities (a container's, `container:ID`): the kernel asks for ptrace read access; the system calls that trace or read another process (`ptrace`, `process_vm_readv`/`writev`) stay denied by the seccomp filter |
//!
//! Everything else goes, from the bounding set too, so that nothing the
//! daemon runs (its compile helpers) can regain it. `CAP_PERFMON` goes
//! too, though `CAP_SYS_ADMIN` implies what the verifier asks of it.

use caps::{CapSet, Capability, CapsHashSet};
use seccompiler::{SeccompAction, SeccompFilter, TargetArch};

/// The capabilities the daemon keeps (see the module).
pub const KEPT: [Capability; 10] = [
    Capability::CAP_BPF,
    Capability::CAP_NET_ADMIN,
    Capability::CAP_NET_RAW,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_SETUID,
    Capability::CAP_SETGID,
    Capability::CAP_KILL,
    Capability::CAP_SYS_PTRACE,
];

/// System calls the daemon never makes, denied (EPERM) so that a bug
/// cannot make them for someone: mounting, tracing other processes,
/// loading kernel code, rebooting, changing the clock or the host's names,
/// keyrings, and the like.
const DENIED: &[i64] = &[
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_acct,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_userfaultfd,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_quotactl,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_personality,
];

/// Why privileges could not be given up.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// A capability set could not be changed.
    #[error("changing the {set} capability set")]
    Caps {
        /// Which set.
        set: &'static str,
        /// The cause.
        #[source]
        source: caps::errors::CapsError,
    },
    /// The seccomp filter could not be built or applied.
    #[error("applying the seccomp filter")]
    Seccomp(#[source] std::io::Error),
}

/// Gives up what the daemon does not need (see the module). Call it before
/// any other thread starts. Does nothing for a process that is not root
/// (`pktd stats` run by a user).
pub fn give_up() -> Result<(), PrivilegeError> {
    if !crate::sys::is_root() {
        return Ok(());
    }
    let failed = |set| move |source| PrivilegeError::Caps { set, source };
    // A service manager may have narrowed the sets already (systemd's
    // CapabilityBoundingSet=, a container's capabilities): what is gone
    // is neither dropped again (that needs CAP_SETPCAP) nor asked back.
    let permitted = caps::read(None, CapSet::Permitted).map_err(failed("permitted"))?;
    let kept: CapsHashSet = KEPT
        .into_iter()
        .filter(|cap| permitted.contains(cap))
        .collect();
    for cap in KEPT.iter().filter(|cap| !kept.contains(cap)) {
        tracing::warn!(capability = %cap, "not permitted: what needs it will fail");
    }
    for cap in caps::all() {
        if !kept.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(true) {
            caps::drop(None, CapSet::Bounding, cap).map_err(failed("bounding"))?;
        }
    }
    caps::clear(None, CapSet::Ambient).map_err(failed("ambient"))?;
    caps::clear(None, CapSet::Inheritable).map_err(failed("inheritable"))?;
    caps::set(None, CapSet::Effective, &kept).map_err(failed("effective"))?;
    caps::set(None, CapSet::Permitted, &kept).map_err(failed("permitted"))?;
    // seccompiler sets no_new_privs before it applies the filter.
    let filter = SeccompFilter::new(
        DENIED.iter().map(|&call| (call, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        target_arch()?,
    )
    .map_err(|err| PrivilegeError::Seccomp(std::io::Error::other(err)))?;
    let program: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|err| PrivilegeError::Seccomp(std::io::Error::other(err)))?;
    seccompiler::apply_filter(&program)
        .map_err(|err| PrivilegeError::Seccomp(std::io::Error::other(err)))
}

fn target_arch() -> Result<TargetArch, PrivilegeError> {
    std::env::consts::ARCH.try_into().map_err(|_| {
        PrivilegeError::Seccomp(std::io::Error::other(
            "no seccomp filter for this architecture",
        ))
    })
}
