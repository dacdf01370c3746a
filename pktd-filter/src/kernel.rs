//! Asking the running kernel for its own verdict on a classic program.

use std::io;

use pktd_common::CbpfInsn;

use crate::pcap_ffi;

/// Whether the running kernel accepts `insns` as a classic socket filter:
/// attaches it with `SO_ATTACH_FILTER` to a throwaway UDP socket, which runs
/// the kernel's classic-BPF checks. `Err` carries the `setsockopt` error
/// (EINVAL for a refused program). Needs no privileges.
///
/// [`validate`](crate::validate) implements the same rules (plus pktd's two
/// about load offsets); this is the ground truth its tests compare against.
pub fn kernel_accepts(insns: &[CbpfInsn]) -> io::Result<()> {
    pcap_ffi::kernel_attach(insns)
}
