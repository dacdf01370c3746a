//! Every foreign call of the crate, and so all of its `unsafe`: libpcap
//! (compiling expressions, its reference interpreter, its instruction
//! printer) and the kernel's `SO_ATTACH_FILTER`. Each function here takes
//! and returns plain Rust values; the callers never see a raw pointer.

use std::ffi::{CStr, CString, c_char, c_int, c_uint};
use std::io;
use std::sync::{Mutex, PoisonError};

use pktd_common::CbpfInsn;

/// libpcap's `DLT_EN10MB` (Ethernet) link type.
const DLT_EN10MB: c_int = 1;
/// libpcap's `PCAP_NETMASK_UNKNOWN`.
const PCAP_NETMASK_UNKNOWN: u32 = 0xffff_ffff;

/// Opaque `pcap_t`.
#[repr(C)]
struct Pcap {
    _private: [u8; 0],
}

/// `struct bpf_program`. `struct bpf_insn` has the layout of
/// `struct sock_filter`, which is what [`CbpfInsn`] mirrors.
#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut CbpfInsn,
}

/// `struct pcap_pkthdr`.
#[repr(C)]
struct PcapPkthdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

#[link(name = "pcap")]
unsafe extern "C" {
    fn pcap_open_dead(linktype: c_int, snaplen: c_int) -> *mut Pcap;
    fn pcap_close(p: *mut Pcap);
    fn pcap_compile(
        p: *mut Pcap,
        fp: *mut BpfProgram,
        expression: *const c_char,
        optimize: c_int,
        netmask: u32,
    ) -> c_int;
    fn pcap_freecode(fp: *mut BpfProgram);
    fn pcap_geterr(p: *mut Pcap) -> *mut c_char;
    fn pcap_offline_filter(fp: *const BpfProgram, h: *const PcapPkthdr, pkt: *const u8) -> c_int;
    #[cfg(test)]
    fn bpf_image(p: *const CbpfInsn, n: c_int) -> *mut c_char;
}

/// Serialises calls into libpcap that use global state: `pcap_compile`
/// (not thread-safe before libpcap 1.8) and `bpf_image` (a static buffer).
static LIBPCAP_LOCK: Mutex<()> = Mutex::new(());

/// Compile `expression` with libpcap on a dead Ethernet handle. On failure
/// returns libpcap's error text.
pub(crate) fn compile(
    expression: &str,
    optimize: bool,
    snaplen: u32,
) -> Result<Vec<CbpfInsn>, String> {
    let c_expression =
        CString::new(expression).map_err(|_| "the expression contains a NUL byte".to_string())?;
    // The lock guards no data, so a panic while holding it leaves nothing
    // inconsistent: ignore poisoning.
    let _guard = LIBPCAP_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    // libpcap keeps the snapshot length as an int and emits it as the u32
    // `k` of `ret`, so reinterpreting the bits round-trips every u32.
    // SAFETY: pcap_open_dead has no preconditions; it returns NULL or a
    // handle that we close below.
    let handle = unsafe { pcap_open_dead(DLT_EN10MB, snaplen as c_int) };
    if handle.is_null() {
        return Err("pcap_open_dead failed (out of memory)".to_string());
    }
    let mut program = BpfProgram {
        bf_len: 0,
        bf_insns: std::ptr::null_mut(),
    };
    // SAFETY: handle is a live pcap_t, program a writable bpf_program and
    // c_expression a NUL-terminated string that outlives the call.
    let status = unsafe {
        pcap_compile(
            handle,
            &mut program,
            c_expression.as_ptr(),
            c_int::from(optimize),
            PCAP_NETMASK_UNKNOWN,
        )
    };
    let result = if status == 0 {
        let insns = if program.bf_insns.is_null() {
            Vec::new()
        } else {
            // SAFETY: on success libpcap filled program with bf_len
            // instructions at bf_insns (same layout as CbpfInsn), which stay
            // allocated until pcap_freecode below; we copy them out first.
            unsafe { std::slice::from_raw_parts(program.bf_insns, program.bf_len as usize) }
                .to_vec()
        };
        // SAFETY: program came from a successful pcap_compile and is freed
        // exactly once.
        unsafe { pcap_freecode(&mut program) };
        Ok(insns)
    } else {
        // SAFETY: pcap_geterr returns the handle's NUL-terminated error
        // buffer, valid until the handle is closed; we copy it before that.
        let message = unsafe { CStr::from_ptr(pcap_geterr(handle)) };
        Err(message.to_string_lossy().into_owned())
    };
    // SAFETY: handle came from pcap_open_dead and is closed exactly once.
    unsafe { pcap_close(handle) };
    result
}

/// Run libpcap's interpreter (`pcap_offline_filter`) on a packet.
///
/// The caller must have checked the program with
/// `validate::check(.., Strictness::AnyLoadOffset)`: libpcap's interpreter
/// trusts its input (jumps are unchecked, unknown opcodes `abort()`), and
/// that check guarantees in-range jumps, known opcodes, in-range and
/// initialised memory cells and a final return.
pub(crate) fn offline_filter(insns: &[CbpfInsn], packet: &[u8], wire_len: u32) -> u32 {
    let program = BpfProgram {
        // At most BPF_MAXINSNS after the caller's check.
        bf_len: insns.len() as c_uint,
        // libpcap only reads through this pointer.
        bf_insns: insns.as_ptr().cast_mut(),
    };
    let header = PcapPkthdr {
        ts: libc::timeval {
            tv_sec: 0,
            tv_usec: 0,
        },
        // A slice is never longer than isize::MAX; libpcap's caplen is u32,
        // so longer packets are truncated rather than misreported.
        caplen: u32::try_from(packet.len()).unwrap_or(u32::MAX),
        len: wire_len,
    };
    // SAFETY: program points to insns.len() valid instructions that the
    // caller checked (see above), so libpcap stays inside them; it reads at
    // most caplen <= packet.len() bytes of packet, bounds-checking every load.
    let verdict = unsafe { pcap_offline_filter(&program, &header, packet.as_ptr()) };
    // libpcap returns the u_int of the program's `ret` through an int.
    verdict as u32
}

/// Ask the running kernel whether it accepts `insns` as a socket filter:
/// `SO_ATTACH_FILTER` on a fresh UDP socket, which runs the kernel's
/// classic-BPF checks. Returns the `setsockopt` error (EINVAL for a
/// rejected program).
pub(crate) fn kernel_attach(insns: &[CbpfInsn]) -> io::Result<()> {
    // SAFETY: plain socket(2) call; the descriptor is owned just below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor nobody else owns; OwnedFd closes it.
    let socket = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let Ok(len) = u16::try_from(insns.len()) else {
        // sock_fprog.len is an unsigned short; the kernel could not even be
        // told the length, and would refuse anything this long anyway.
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    };
    let fprog = libc::sock_fprog {
        len,
        // The kernel copies the instructions and never writes them.
        filter: insns.as_ptr().cast_mut().cast::<libc::sock_filter>(),
    };
    // SAFETY: fprog describes len instructions of insns (CbpfInsn has the
    // layout of struct sock_filter) that live across the call, and the
    // option length is that of fprog itself.
    let status = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&socket),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// libpcap's own `bpf_image` text of instruction `n`, the reference for
/// [`crate::format_d`] in tests.
#[cfg(test)]
pub(crate) fn libpcap_image(insn: &CbpfInsn, n: usize) -> String {
    let _guard = LIBPCAP_LOCK.lock().unwrap_or_else(PoisonError::into_inner);
    let n = c_int::try_from(n).expect("instruction index fits in an int");
    // SAFETY: bpf_image reads the one instruction and returns a pointer to
    // its static NUL-terminated buffer, which we copy while holding the lock
    // that serialises every bpf_image call.
    let text = unsafe { CStr::from_ptr(bpf_image(insn, n)) };
    text.to_string_lossy().into_owned()
}
