//! libwire's C API (`wire.h`, `libwire.so`, `libwire.a`), shaped like
//! libpcap's so that a C programmer feels at home: create a handle, set
//! its options, activate it, set a filter (and change it mid-capture),
//! read packets with `wire_next_ex` or `wire_dispatch`/`wire_loop` and a
//! callback, stop a loop with `wire_breakloop`, poll a selectable
//! descriptor in non-blocking mode, read counters, inject frames (one, or
//! a send queue), list interfaces, and close.
//!
//! Rules at the boundary:
//! - errors are return codes (`WIRE_ERROR*`, negative) and a message
//!   (`wire_geterr`, or an error buffer of `WIRE_ERRBUF_SIZE` bytes);
//! - no panic crosses into C: it becomes `WIRE_ERROR`;
//! - a handle is used by one thread at a time; `wire_breakloop` alone may
//!   be called from another thread or a signal handler, and takes effect
//!   within 50 ms; a call on a handle from its own packet callback fails
//!   with `WIRE_ERROR` (`wire_breakloop` and `wire_geterr` aside);
//! - timestamps are nanoseconds since the Unix epoch.
//!
//! The daemon checks every request against the policy for the calling
//! user: this library holds no privilege.

mod boundary;
mod handle;

use std::{
    ffi::{CString, c_char, c_int},
    sync::atomic::AtomicBool,
    time::Duration,
};

use boundary::{bytes, free, guard, into_raw, object, put, set_errbuf, string};
use handle::{State, Wire};
use libwire::Direction;

/// Bytes of an error buffer.
pub const WIRE_ERRBUF_SIZE: usize = 256;
/// A generic failure; `wire_geterr` says what.
pub const WIRE_ERROR: c_int = -1;
/// `wire_breakloop` was called, or (`wire_next_ex`) the session ended.
pub const WIRE_ERROR_BREAK: c_int = -2;
/// The handle is not activated yet.
pub const WIRE_ERROR_NOT_ACTIVATED: c_int = -3;
/// The handle is already activated.
pub const WIRE_ERROR_ACTIVATED: c_int = -4;
/// The policy does not allow it.
pub const WIRE_ERROR_PERM_DENIED: c_int = -8;

/// Direction: received packets.
pub const WIRE_D_IN: u32 = 1;
/// Direction: sent packets.
pub const WIRE_D_OUT: u32 = 2;
/// Direction: both.
pub const WIRE_D_INOUT: u32 = 3;

/// `wire_if` flags.
pub const WIRE_IF_UP: u32 = 1;
pub const WIRE_IF_RUNNING: u32 = 2;
pub const WIRE_IF_LOOPBACK: u32 = 4;

/// A packet's header.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WirePkthdr {
    /// Capture time, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Bytes captured (at most the snaplen).
    pub caplen: u32,
    /// Length on the wire.
    pub len: u32,
    /// `WIRE_D_IN` or `WIRE_D_OUT`.
    pub direction: u32,
}

/// A capture's counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WireStat {
    /// Packets the filter ran on.
    pub received: u64,
    /// Packets the filter accepted.
    pub matched: u64,
    /// Packets delivered.
    pub delivered: u64,
    /// Packets lost because the buffer was full.
    pub dropped: u64,
    /// Packets refused over the policy's quota.
    pub over_quota: u64,
}

/// An interface the caller may capture on (`wire_findalldevs`).
#[repr(C)]
pub struct WireIf {
    /// The next one, or NULL.
    pub next: *mut WireIf,
    /// Its name.
    pub name: *mut c_char,
    /// Its network namespace ("" for the daemon's own).
    pub netns: *mut c_char,
    /// `WIRE_IF_*` flags.
    pub flags: u32,
}

/// One classic-BPF instruction, laid out as Linux's `struct sock_filter`
/// and libpcap's `struct bpf_insn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WireInsn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// A compiled filter (`wire_compile`), as libpcap's `struct bpf_program`.
#[repr(C)]
pub struct WireProgram {
    /// Instructions.
    pub bf_len: u32,
    pub bf_insns: *mut WireInsn,
}

/// Frames queued to be sent together (`wire_sendqueue_*`).
pub struct WireSendQueue {
    frames: Vec<Vec<u8>>,
}

/// A packet callback: the `user` pointer given, the header, the bytes
/// (valid during the call only).
pub type WireHandler =
    unsafe extern "C" fn(user: *mut u8, header: *const WirePkthdr, bytes: *const u8);

/// A handle for `interface` (in the daemon's own namespace until
/// `wire_set_netns`), not yet activated; NULL (and `errbuf` says why) on
/// failure. Free it with `wire_close`.
///
/// # Safety
/// `interface` is a NUL-terminated string; `errbuf` is NULL or holds
/// `WIRE_ERRBUF_SIZE` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_create(interface: *const c_char, errbuf: *mut c_char) -> *mut Wire {
    guard(std::ptr::null_mut(), || {
        // SAFETY: the caller's promise.
        match unsafe { string(interface) } {
            Some(interface) => into_raw(Wire::new(interface)),
            None => {
                // SAFETY: the caller's promise.
                unsafe { set_errbuf(errbuf, "no interface (a UTF-8 name) given") };
                std::ptr::null_mut()
            }
        }
    })
}

/// Runs `body` on the handle's state (one call at a time), or fails for
/// NULL.
///
/// # Safety
/// `wire` is NULL or a handle from `wire_create` not yet closed.
unsafe fn with(wire: *const Wire, body: impl FnOnce(&mut State, &AtomicBool) -> c_int) -> c_int {
    guard(WIRE_ERROR, || {
        // SAFETY: the caller's promise.
        match unsafe { object(wire) } {
            Some(wire) => wire.enter(body),
            None => WIRE_ERROR,
        }
    })
}

/// Runs `body` on the handle's state and a string argument.
///
/// # Safety
/// As for `with`; `text` is a NUL-terminated string.
unsafe fn with_text(
    wire: *const Wire,
    text: *const c_char,
    body: impl FnOnce(&mut State, String) -> c_int,
) -> c_int {
    // SAFETY: the caller's promise.
    let text = unsafe { string(text) };
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, _| match text {
            Some(text) => body(state, text),
            None => WIRE_ERROR,
        })
    }
}

/// The daemon's socket (default `/run/pktd/pktd.sock`). Before activation.
///
/// # Safety
/// `wire` is a live handle; `path` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_set_socket(wire: *mut Wire, path: *const c_char) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { with_text(wire, path, State::set_socket) }
}

/// The interface's network namespace: an `ip netns` name or
/// `/proc/PID/ns/net`. Before activation.
///
/// # Safety
/// `wire` is a live handle; `netns` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_set_netns(wire: *mut Wire, netns: *const c_char) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { with_text(wire, netns, State::set_netns) }
}

/// Bytes kept of each packet (at most 262144). Before activation.
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_set_snaplen(wire: *mut Wire, snaplen: c_int) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, _| {
            state.set(|b| b.snaplen(snaplen.max(0) as u32))
        })
    }
}

/// `WIRE_D_IN`, `WIRE_D_OUT` or `WIRE_D_INOUT` (the default). Before
/// activation.
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_set_direction(wire: *mut Wire, direction: u32) -> c_int {
    let direction = match direction {
        WIRE_D_IN => Direction::In,
        WIRE_D_OUT => Direction::Out,
        WIRE_D_INOUT => Direction::InOut,
        _ => return WIRE_ERROR,
    };
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.set(|b| b.direction(direction))) }
}

/// How long a read waits for a packet, in milliseconds (libpcap's
/// `to_ms`; default 50). Before activation.
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_set_timeout(wire: *mut Wire, ms: c_int) -> c_int {
    let timeout = Duration::from_millis(ms.max(1) as u64);
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.set_timeout(timeout)) }
}

/// Each packet as it comes rather than in batches. Before activation.
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_set_immediate_mode(wire: *mut Wire, immediate: c_int) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.set(|b| b.immediate(immediate != 0))) }
}

/// The kernel buffer, in bytes (the policy may cut it). Before activation.
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_set_buffer_size(wire: *mut Wire, bytes: c_int) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, _| {
            state.set(|b| b.buffer_bytes(bytes.max(0) as u32))
        })
    }
}

/// Opens the capture through the daemon (no filter: every packet the
/// policy allows, until `wire_setfilter`). 0, or a `WIRE_ERROR*` code
/// (`WIRE_ERROR_PERM_DENIED` when the policy says no).
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_activate(wire: *mut Wire) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.activate()) }
}

/// Compiles `expression` (tcpdump's filter language) and installs it, at
/// once for the packets that follow, also mid-capture.
///
/// # Safety
/// `wire` is a live handle; `expression` a NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_setfilter(
    wire: *mut Wire,
    expression: *const c_char,
    optimize: c_int,
) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with_text(wire, expression, |wire, text| {
            wire.set_filter(&text, optimize != 0)
        })
    }
}

/// Compiles `expression` (tcpdump's filter language) with libpcap, here,
/// for the handle's snaplen, into `program` (free it with
/// `wire_freecode`); the daemon validates it again when it is set.
///
/// # Safety
/// `wire` is a live handle; `program` valid for a write; `expression` a
/// NUL-terminated string.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_compile(
    wire: *mut Wire,
    program: *mut WireProgram,
    expression: *const c_char,
    optimize: c_int,
) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with_text(wire, expression, |wire, text| {
            match wire.compile(&text, optimize != 0) {
                Ok(insns) => {
                    let insns: Box<[WireInsn]> = insns
                        .iter()
                        .map(|insn| WireInsn {
                            code: insn.code,
                            jt: insn.jt,
                            jf: insn.jf,
                            k: insn.k,
                        })
                        .collect();
                    let len = insns.len() as u32;
                    put(
                        program,
                        WireProgram {
                            bf_len: len,
                            bf_insns: Box::into_raw(insns).cast::<WireInsn>(),
                        },
                    );
                    0
                }
                Err(code) => code,
            }
        })
    }
}

/// Installs a compiled program as the filter, as `wire_setfilter` does an
/// expression.
///
/// # Safety
/// `wire` is a live handle; `program` points to a program whose
/// `bf_insns` holds `bf_len` instructions.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_setfilter_program(
    wire: *mut Wire,
    program: *const WireProgram,
) -> c_int {
    // SAFETY: the caller's promise.
    let insns: Vec<libwire::CbpfInsn> = match unsafe { program.as_ref() } {
        Some(program) => {
            // SAFETY: the caller's promise: bf_len instructions.
            let raw =
                unsafe { boundary::slice(program.bf_insns.cast_const(), program.bf_len as usize) };
            raw.iter()
                .map(|insn| libwire::CbpfInsn::new(insn.code, insn.jt, insn.jf, insn.k))
                .collect()
        }
        None => return WIRE_ERROR,
    };
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.set_filter_program(&insns)) }
}

/// Frees what `wire_compile` put in `program`.
///
/// # Safety
/// `program` is NULL or filled by `wire_compile` and not freed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_freecode(program: *mut WireProgram) {
    guard((), || {
        // SAFETY: the caller's promise.
        if let Some(program) = unsafe { program.as_mut() }
            && !program.bf_insns.is_null()
        {
            let slice =
                std::ptr::slice_from_raw_parts_mut(program.bf_insns, program.bf_len as usize);
            // SAFETY: from Box::into_raw of a boxed slice of this length.
            drop(unsafe { Box::from_raw(slice) });
            program.bf_insns = std::ptr::null_mut();
            program.bf_len = 0;
        }
    })
}

/// The next packet: 1 and `*header`, `*data` (valid until the next call
/// on the handle), 0 if none came within the timeout (at once in
/// non-blocking mode), `WIRE_ERROR_BREAK` once the session has ended,
/// `WIRE_ERROR` on failure.
///
/// # Safety
/// `wire` is a live handle; `header` and `data` valid for writes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_next_ex(
    wire: *mut Wire,
    header: *mut *const WirePkthdr,
    data: *mut *const u8,
) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, _| {
            let (code, packet) = state.next_ex();
            if let Some((packet_header, packet_data)) = packet {
                put(header, packet_header);
                put(data, packet_data);
            }
            code
        })
    }
}

/// Calls `handler` for at most `count` packets (all that are there for 0
/// or less), waiting at most the timeout for the first: how many, 0 for
/// none, `WIRE_ERROR_BREAK` after `wire_breakloop` with none read.
///
/// # Safety
/// `wire` is a live handle; `handler` a valid function; `user` is passed
/// to it as is.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_dispatch(
    wire: *mut Wire,
    count: c_int,
    handler: WireHandler,
    user: *mut u8,
) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, breaking| {
            state.dispatch(breaking, count, |header, bytes| {
                boundary::call(handler, user, header, bytes)
            })
        })
    }
}

/// Calls `handler` for `count` packets (for ever for 0 or less): 0 once
/// they are done or the session has ended, `WIRE_ERROR_BREAK` after
/// `wire_breakloop` (within the timeout), `WIRE_ERROR` on failure.
///
/// # Safety
/// As for `wire_dispatch`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_loop(
    wire: *mut Wire,
    count: c_int,
    handler: WireHandler,
    user: *mut u8,
) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, breaking| {
            state.run(breaking, count, |header, bytes| {
                boundary::call(handler, user, header, bytes)
            })
        })
    }
}

/// Makes `wire_loop` or `wire_dispatch` return `WIRE_ERROR_BREAK`; from
/// any thread or a signal handler (it only sets a flag).
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_breakloop(wire: *mut Wire) {
    // SAFETY: the caller's promise.
    if let Some(wire) = unsafe { object(wire) } {
        wire.breakloop();
    }
}

/// A descriptor poll(2) and select(2) take: readable when packets may be
/// waiting (poll with the timeout: the kernel wakes readers in batches
/// unless in immediate mode); -1 before activation.
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_get_selectable_fd(wire: *mut Wire) -> c_int {
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.selectable_fd()) }
}

/// Non-blocking mode: reads return at once when nothing is there.
///
/// # Safety
/// `wire` is a live handle; `errbuf` is NULL or `WIRE_ERRBUF_SIZE` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_setnonblock(
    wire: *mut Wire,
    nonblock: c_int,
    errbuf: *mut c_char,
) -> c_int {
    let _ = errbuf;
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.set_nonblock(nonblock != 0)) }
}

/// 1 in non-blocking mode, 0 otherwise.
///
/// # Safety
/// `wire` is a live handle; `errbuf` is NULL or `WIRE_ERRBUF_SIZE` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_getnonblock(wire: *mut Wire, errbuf: *mut c_char) -> c_int {
    let _ = errbuf;
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| c_int::from(state.nonblock())) }
}

/// The session's counters, from the daemon.
///
/// # Safety
/// `wire` is a live handle; `stats` valid for a write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_stats(wire: *mut Wire, stats: *mut WireStat) -> c_int {
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, _| match state.stats() {
            Ok(counters) => {
                put(stats, counters);
                0
            }
            Err(code) => code,
        })
    }
}

/// Sends one Ethernet frame on the handle's interface (the daemon checks
/// it against the policy): the bytes sent, or `WIRE_ERROR`.
///
/// # Safety
/// `wire` is a live handle; `frame` valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_inject(wire: *mut Wire, frame: *const u8, len: usize) -> c_int {
    // SAFETY: the caller's promise.
    let frame = unsafe { bytes(frame, len) }.to_vec();
    // SAFETY: the caller's promise.
    unsafe {
        with(wire, |state, _| {
            match state.inject(std::slice::from_ref(&frame)) {
                1 => len.min(c_int::MAX as usize) as c_int,
                0 => WIRE_ERROR,
                code => code,
            }
        })
    }
}

/// An empty send queue; free it with `wire_sendqueue_destroy`.
#[unsafe(no_mangle)]
pub extern "C" fn wire_sendqueue_alloc() -> *mut WireSendQueue {
    guard(std::ptr::null_mut(), || {
        into_raw(WireSendQueue { frames: Vec::new() })
    })
}

/// Adds a frame to the queue.
///
/// # Safety
/// `queue` is a live queue; `frame` valid for `len` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_sendqueue_queue(
    queue: *mut WireSendQueue,
    frame: *const u8,
    len: usize,
) -> c_int {
    guard(WIRE_ERROR, || {
        // SAFETY: the caller's promise.
        let frame = unsafe { bytes(frame, len) }.to_vec();
        // SAFETY: the caller's promise: a live queue, used by this thread.
        match unsafe { queue.as_mut() } {
            Some(queue) => {
                queue.frames.push(frame);
                0
            }
            None => WIRE_ERROR,
        }
    })
}

/// Sends the queued frames in one request: how many went out (the
/// handle's error says why the first refused one was).
///
/// # Safety
/// `wire` is a live handle; `queue` a live queue.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_sendqueue_transmit(
    wire: *mut Wire,
    queue: *const WireSendQueue,
) -> c_int {
    // SAFETY: the caller's promise.
    let Some(queue) = (unsafe { object(queue) }) else {
        return WIRE_ERROR;
    };
    // SAFETY: the caller's promise.
    unsafe { with(wire, |state, _| state.inject(&queue.frames)) }
}

/// Frees a send queue.
///
/// # Safety
/// `queue` is NULL or a queue not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_sendqueue_destroy(queue: *mut WireSendQueue) {
    // SAFETY: the caller's promise.
    guard((), || unsafe { free(queue) });
}

/// The interfaces the caller's policy lets it capture on, in every
/// namespace it names, as a list to free with `wire_freealldevs`; `socket`
/// NULL for the default. 0, or `WIRE_ERROR` and `errbuf`.
///
/// # Safety
/// `alldevs` valid for a write; `socket` NULL or a NUL-terminated string;
/// `errbuf` NULL or `WIRE_ERRBUF_SIZE` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_findalldevs(
    alldevs: *mut *mut WireIf,
    socket: *const c_char,
    errbuf: *mut c_char,
) -> c_int {
    guard(WIRE_ERROR, || {
        // SAFETY: the caller's promise.
        let socket = unsafe { string(socket) }.unwrap_or_else(|| libwire::DEFAULT_SOCKET.into());
        match libwire::blocking::list_interfaces(&socket) {
            Ok(listed) => {
                let mut head: *mut WireIf = std::ptr::null_mut();
                for interface in listed.into_iter().rev() {
                    let text = |s: String| {
                        CString::new(s.replace('\0', " "))
                            .unwrap_or_default()
                            .into_raw()
                    };
                    let flag = |set: bool, bit: u32| if set { bit } else { 0 };
                    let flags = flag(interface.up, WIRE_IF_UP)
                        | flag(interface.running, WIRE_IF_RUNNING)
                        | flag(interface.loopback, WIRE_IF_LOOPBACK);
                    head = into_raw(WireIf {
                        next: head,
                        name: text(interface.name),
                        netns: text(interface.netns),
                        flags,
                    });
                }
                // SAFETY: the caller's promise.
                unsafe { put(alldevs, head) };
                0
            }
            Err(err) => {
                // SAFETY: the caller's promise.
                unsafe { set_errbuf(errbuf, &err.to_string()) };
                WIRE_ERROR
            }
        }
    })
}

/// Frees a list from `wire_findalldevs`.
///
/// # Safety
/// `alldevs` is NULL or a list from `wire_findalldevs` not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_freealldevs(alldevs: *mut WireIf) {
    guard((), || {
        let mut next = alldevs;
        while !next.is_null() {
            // SAFETY: every node came from into_raw, once.
            let node = unsafe { Box::from_raw(next) };
            next = node.next;
            for text in [node.name, node.netns] {
                if !text.is_null() {
                    // SAFETY: from CString::into_raw, freed once.
                    drop(unsafe { CString::from_raw(text) });
                }
            }
        }
    })
}

/// The last error's message (valid until the next call on the handle).
///
/// # Safety
/// `wire` is a live handle.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_geterr(wire: *mut Wire) -> *const c_char {
    guard(c"internal error".as_ptr(), || {
        // SAFETY: the caller's promise.
        match unsafe { object(wire) } {
            Some(wire) => wire.error(),
            None => c"no handle".as_ptr(),
        }
    })
}

/// Ends the session and frees the handle.
///
/// # Safety
/// `wire` is NULL or a handle not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn wire_close(wire: *mut Wire) {
    guard((), || {
        if !wire.is_null() {
            // SAFETY: the caller's promise: from wire_create, not used again.
            let wire = unsafe { Box::from_raw(wire) };
            wire.close();
        }
    })
}
