//! pktd's kernel program.
//!
//! One TC classifier, attached at ingress and egress of an interface, runs
//! every active client's validated classic-BPF filter on each packet and puts
//! each match into that client's own ring buffer, cut to the client's
//! snaplen and charged to its quotas. It never changes the packet's fate: it
//! always returns TC_ACT_UNSPEC (TCX_NEXT), so the packet goes on as if pktd
//! were not there.
//!
//! The filters are interpreted (one `bpf_loop` iteration per instruction).
//! Filters see the packet as it was on the wire: when the kernel has moved
//! the outer VLAN tag into skb metadata, the tag is put back in place.
#![no_std]
#![no_main]
// Atomic fetch-and-add on map values (see `fetch_add`).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod interp;
mod packet;

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xadd},
    ptr,
};

use aya_ebpf::{
    bindings::TC_ACT_UNSPEC,
    btf_maps::{Array, ArrayOfMaps, PerCpuArray, RingBuf},
    helpers::generated::{
        bpf_get_smp_processor_id, bpf_ktime_get_tai_ns, bpf_loop, bpf_ringbuf_output,
    },
    macros::{btf_map, classifier},
    programs::TcContext,
};
use pktd_common::{
    ClientConfig, ClientCounters, ClientUsage, DIR_IN, DIR_OUT, FilterProgram, Globals,
    InterfaceCounters, MAX_CAPLEN, MAX_CLIENTS, MAX_INSNS, MODE_COUNT, PacketPrefix,
    RECORD_HEADER_LEN, RecordBuffer,
};

use crate::{interp::Vm, packet::Packet};

const SLOTS: usize = MAX_CLIENTS as usize;

#[btf_map]
static PKTD_GLOBALS: Array<Globals, 1> = Array::new();

#[btf_map]
static PKTD_CLIENTS: Array<ClientConfig, SLOTS> = Array::new();

#[btf_map]
static PKTD_FILTERS: ArrayOfMaps<Array<FilterProgram, 1>, SLOTS> = ArrayOfMaps::new();

/// The inner template's size is only a placeholder: each client's ring is
/// created by user space with the size its session asked for.
#[btf_map]
static PKTD_RINGS: ArrayOfMaps<RingBuf<u8, 4096>, SLOTS> = ArrayOfMaps::new();

#[btf_map]
static PKTD_COUNTERS: PerCpuArray<ClientCounters, SLOTS> = PerCpuArray::new();

#[btf_map]
static PKTD_USAGE: Array<ClientUsage, SLOTS> = Array::new();

#[btf_map]
static PKTD_PREFIX: PerCpuArray<PacketPrefix, 1> = PerCpuArray::new();

#[btf_map]
static PKTD_INTERFACE: PerCpuArray<InterfaceCounters, 1> = PerCpuArray::new();

/// One entry per possible CPU (user space sets max_entries at load): a
/// record is too large for a per-CPU map value.
#[btf_map]
static PKTD_RECORD: Array<RecordBuffer, 1> = Array::new();

#[classifier]
pub fn pktd_ingress(ctx: TcContext) -> i32 {
    classify(&ctx, DIR_IN)
}

#[classifier]
pub fn pktd_egress(ctx: TcContext) -> i32 {
    classify(&ctx, DIR_OUT)
}

/// Does nothing: BPF_PROG_TEST_RUN of it is the fixed cost benchmarks
/// subtract to get the program's own cost per packet.
#[classifier]
pub fn pktd_empty(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

#[inline(always)]
fn classify(ctx: &TcContext, direction: u32) -> i32 {
    let _ = try_classify(ctx, direction);
    TC_ACT_UNSPEC
}

#[inline(always)]
fn try_classify(ctx: &TcContext, direction: u32) -> Option<()> {
    let slot_count = PKTD_GLOBALS.get(0)?.slot_count;
    if slot_count == 0 {
        return None;
    }
    let prefix = PKTD_PREFIX.get_ptr_mut(0)?;
    let mut packet = Packet::read(ctx, prefix, direction)?;
    count_interface_traffic(&packet);
    // SAFETY: bpf_loop calls `per_client` with a pointer to `packet`, which
    // lives on this stack frame for the whole call.
    unsafe {
        bpf_loop(
            slot_count.min(MAX_CLIENTS),
            per_client as *mut c_void,
            ptr::from_mut(&mut packet).cast(),
            0,
        );
    }
    Some(())
}

/// Counts the packet for the interface's performance statistics. Not
/// inlined: as its own function its branches end at its return, so the
/// verifier does not carry them into the client loop (load: 1.3 s inlined,
/// 0.5 s not).
#[inline(never)]
fn count_interface_traffic(packet: &Packet) {
    let Some(counters) = PKTD_INTERFACE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's value; TC programs do not nest on one CPU.
    let counters = unsafe { &mut *counters };
    counters.packets += 1;
    counters.bytes += u64::from(packet.wire_len);
    match packet.tcp_flags() {
        Some(flags) if flags & 0x12 == 0x02 => counters.tcp_syn += 1,
        Some(flags) if flags & 0x12 == 0x12 => counters.tcp_synack += 1,
        _ => {}
    }
}

/// bpf_loop callback: evaluates client slot `index` on the packet.
extern "C" fn per_client(index: u64, packet: *mut c_void) -> i64 {
    // SAFETY: `packet` is the `Packet` try_classify passed to bpf_loop.
    let packet = unsafe { &mut *packet.cast::<Packet>() };
    let _ = evaluate_client(index as u32, packet);
    0
}

#[inline(always)]
fn evaluate_client(slot: u32, packet: &mut Packet) -> Option<()> {
    let config = PKTD_CLIENTS.get(slot)?;
    if config.active == 0 || config.directions & packet.direction == 0 {
        return None;
    }
    let counters = PKTD_COUNTERS.get_ptr_mut(slot)?;
    // SAFETY: per-CPU map value of this slot; nothing else on this CPU runs
    // this program concurrently.
    let counters = unsafe { &mut *counters };
    counters.seen += 1;

    let program = PKTD_FILTERS.get_value(slot, &0)?;
    let mut vm = Vm::new(program, packet);
    // SAFETY: bpf_loop calls `interp::step` with a pointer to `vm`, which
    // lives on this stack frame for the whole call.
    unsafe {
        bpf_loop(
            MAX_INSNS as u32,
            interp::step as *mut c_void,
            ptr::from_mut(&mut vm).cast(),
            0,
        );
    }
    let verdict = vm.result;
    if verdict == 0 {
        return None;
    }
    counters.matched += 1;
    counters.matched_bytes += u64::from(packet.wire_len);
    if config.mode == MODE_COUNT {
        return Some(());
    }

    let cap_len = verdict
        .min(config.snaplen)
        .min(packet.wire_len)
        .min(MAX_CAPLEN);
    if cap_len == 0 {
        return None;
    }
    let usage = PKTD_USAGE.get_ptr_mut(slot)?;
    if !charge_quota(usage, config, cap_len) {
        counters.over_quota += 1;
        return None;
    }

    if deliver(slot, packet, cap_len).is_some() {
        counters.delivered += 1;
        counters.delivered_bytes += u64::from(cap_len);
    } else {
        refund_quota(usage, cap_len);
        counters.dropped += 1;
    }
    Some(())
}

/// Charges one packet of `cap_len` bytes to the slot's quotas, atomically
/// across CPUs; refuses (and charges nothing) when either quota would be
/// exceeded.
#[inline(always)]
fn charge_quota(usage: *mut ClientUsage, config: &ClientConfig, cap_len: u32) -> bool {
    let bytes = u64::from(cap_len);
    // SAFETY: `usage` is a valid map value shared by all CPUs; only atomic
    // read-modify-writes touch it.
    let (packets_before, bytes_before) = unsafe {
        (
            fetch_add(ptr::addr_of_mut!((*usage).packets), 1),
            fetch_add(ptr::addr_of_mut!((*usage).bytes), bytes),
        )
    };
    let over_packets = config.packet_quota != 0 && packets_before >= config.packet_quota;
    let over_bytes = config.byte_quota != 0 && bytes_before + bytes > config.byte_quota;
    if over_packets || over_bytes {
        refund_quota(usage, cap_len);
        return false;
    }
    true
}

#[inline(always)]
fn refund_quota(usage: *mut ClientUsage, cap_len: u32) {
    // SAFETY: as in charge_quota.
    unsafe {
        fetch_add(ptr::addr_of_mut!((*usage).packets), u64::MAX);
        fetch_add(
            ptr::addr_of_mut!((*usage).bytes),
            u64::from(cap_len).wrapping_neg(),
        );
    }
}

/// Atomic fetch-and-add (BPF_ATOMIC | BPF_FETCH). core's AtomicU64 offers no
/// read-modify-write on the BPF target, so this uses the intrinsic.
///
/// # Safety
/// `target` must be valid for reads and writes and 8-byte aligned.
#[inline(always)]
unsafe fn fetch_add(target: *mut u64, value: u64) -> u64 {
    // SAFETY: the caller's contract.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::SeqCst }>(target, value) }
}

/// Builds the record in this CPU's record buffer and copies it into the
/// slot's ring buffer. `None` when the ring is full (or missing).
#[inline(always)]
fn deliver(slot: u32, packet: &mut Packet, cap_len: u32) -> Option<()> {
    let ring = PKTD_RINGS.get(slot)?;
    // SAFETY: no preconditions; TC programs run with migration disabled, so
    // the CPU id stays valid for the rest of this run.
    let cpu = unsafe { bpf_get_smp_processor_id() };
    let record = PKTD_RECORD.get_ptr_mut(cpu)?;
    if packet.timestamp_ns == 0 {
        // SAFETY: no preconditions.
        packet.timestamp_ns = unsafe { bpf_ktime_get_tai_ns() };
    }
    // SAFETY: `record` is this CPU's entry of PKTD_RECORD; TC programs do
    // not nest on one CPU, so nothing else writes it meanwhile.
    let record = unsafe { &mut *record };
    record.header.timestamp_ns = packet.timestamp_ns;
    record.header.wire_len = packet.wire_len;
    record.header.cap_len = cap_len;
    record.header.ifindex = packet.ifindex;
    record.header.direction = packet.direction;
    packet.copy_bytes::<MAX_CAPLEN>(record.data.as_mut_ptr(), cap_len)?;
    let size = RECORD_HEADER_LEN as u64 + u64::from(cap_len.min(MAX_CAPLEN));
    // SAFETY: the first `size` bytes of `record` are initialised and lie
    // inside the map value (header + at most 65535 bytes of data).
    let rc = unsafe {
        bpf_ringbuf_output(
            ptr::from_ref(ring).cast_mut().cast(),
            ptr::from_mut(record).cast(),
            size,
            0,
        )
    };
    (rc == 0).then_some(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
