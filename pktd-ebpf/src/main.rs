//! pktd's kernel program.
//!
//! A classifier attached at TC ingress and egress of an interface (or the
//! XDP program, for received packets only) runs every active client's
//! validated classic-BPF filter on each packet and puts each match into that
//! client's own ring buffer, cut to the client's snaplen and charged to its
//! quotas. It never changes the packet's fate: TC programs return
//! TC_ACT_UNSPEC (TCX_NEXT), XDP returns XDP_PASS.
//!
//! Per packet, in up to three programs joined by tail calls:
//! 1. `pktd_ingress`/`pktd_egress`/`pktd_xdp` count the packet for the
//!    interface statistics and tail-call the native filters (`jump::DECIDE`);
//! 2. those, translated from classic BPF into eBPF by the daemon, write
//!    each accepting filter's verdict into `PKTD_VERDICTS` and tail-call
//!    `jump::DELIVER`;
//! 3. `pktd_deliver` delivers the matches, and interprets (one `bpf_loop`
//!    iteration per instruction) the filters without native code.
//!
//! A packet whose VLAN tag the kernel moved into metadata is judged as it
//! was on the wire, tag in place, by both engines: the native code reads
//! the tag from the skb's metadata (`pktd-translate`), the interpreter
//! from its view of the packet (`packet.rs`).
#![no_std]
#![no_main]
// Atomic fetch-and-add on map values (see `fetch_add`).
#![feature(core_intrinsics)]
#![allow(internal_features)]

mod headers;
mod interp;
mod packet;

use core::{
    ffi::c_void,
    intrinsics::{AtomicOrdering, atomic_xadd},
    ptr,
};

use aya_ebpf::{
    bindings::{TC_ACT_UNSPEC, xdp_action::XDP_PASS, xdp_md},
    btf_maps::{Array, ArrayOfMaps, PerCpuArray, ProgramArray, RingBuf},
    helpers::generated::{
        bpf_ktime_get_tai_ns, bpf_loop, bpf_ringbuf_discard, bpf_ringbuf_query,
        bpf_ringbuf_reserve, bpf_ringbuf_submit, bpf_xdp_adjust_meta,
    },
    macros::{btf_map, classifier, xdp},
    programs::{TcContext, XdpContext},
};
use aya_log_ebpf::warn;
use pktd_common::{
    ClientConfig, ClientCounters, ClientUsage, DEFAULT_INTERPRET_BUDGET, DIR_IN, DIR_OUT,
    FilterProgram, Globals, HandOverMark, InterfaceCounters, MAX_CAPLEN, MAX_CLIENTS, MAX_INSNS,
    MODE_COUNT, PacketPrefix, RECORD_CLASSES, RECORD_HEADER_LEN, RecordHeader, Verdicts, jump,
};

use crate::{
    interp::Vm,
    packet::{HookContext, PacketView, Tc, Xdp},
};

const SLOTS: usize = MAX_CLIENTS as usize;

// bpf_ringbuf_query / bpf_ringbuf_output flags (include/uapi/linux/bpf.h).
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;
const BPF_RB_RING_SIZE: u64 = 1;
const JUMP_ENTRIES: usize = jump::ENTRIES as usize;

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

#[btf_map]
static PKTD_VERDICTS: PerCpuArray<Verdicts, 1> = PerCpuArray::new();

/// Tail-call targets of the TC programs (see `pktd_common::jump`).
#[btf_map]
static PKTD_JUMP: ProgramArray<JUMP_ENTRIES> = ProgramArray::new();

/// Tail-call targets of the XDP program: a program array serves programs
/// of one type only.
#[btf_map]
static PKTD_XDP_JUMP: ProgramArray<JUMP_ENTRIES> = ProgramArray::new();

#[classifier]
pub fn pktd_ingress(ctx: TcContext) -> i32 {
    classify_tc(&ctx, DIR_IN);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn pktd_egress(ctx: TcContext) -> i32 {
    classify_tc(&ctx, DIR_OUT);
    TC_ACT_UNSPEC
}

#[classifier]
pub fn pktd_deliver(ctx: TcContext) -> i32 {
    let _ = deliver_matches(Tc(ctx.skb.skb));
    TC_ACT_UNSPEC
}

#[xdp]
pub fn pktd_xdp(ctx: XdpContext) -> u32 {
    let md = ctx.ctx;
    let Some(globals) = PKTD_GLOBALS.get(0) else {
        return XDP_PASS;
    };
    // One read of the flag decides, and the mark tells TC ingress what.
    let serves = globals.xdp_receives != 0;
    mark_hand_over(md, globals.hand_over_mark, serves);
    if !serves {
        return XDP_PASS;
    }
    // SAFETY: the context's own fields; the verifier rewrites the reads.
    let (data, data_end) = unsafe { ((*md).data as usize, (*md).data_end as usize) };
    if let Some(verdicts) = start_packet(globals, data, data_end, DIR_IN) {
        // SAFETY: tail calls return only when they fail.
        unsafe { PKTD_XDP_JUMP.tail_call(&ctx, jump::DECIDE) };
        verdicts.interpret_all = 1;
        // SAFETY: as above.
        unsafe { PKTD_XDP_JUMP.tail_call(&ctx, jump::DELIVER) };
    }
    XDP_PASS
}

/// Writes whether XDP serves this packet into its metadata, for TC ingress
/// (see `HandOverMark`). Nothing when the driver keeps no metadata.
#[inline(always)]
fn mark_hand_over(md: *mut xdp_md, attachment: u32, served: bool) {
    // SAFETY: grows the metadata area of this packet, which is ours.
    if unsafe { bpf_xdp_adjust_meta(md, -(size_of::<HandOverMark>() as i32)) } != 0 {
        return;
    }
    // SAFETY: the context's own fields (read again: the helper moved
    // `data_meta`).
    let (meta, data) = unsafe { ((*md).data_meta as usize, (*md).data as usize) };
    if meta + size_of::<HandOverMark>() > data {
        return;
    }
    let mark = HandOverMark {
        attachment,
        xdp_served: u32::from(served),
    };
    // SAFETY: bounds checked against `data` just above.
    unsafe { ptr::write_unaligned(meta as *mut HandOverMark, mark) };
}

/// Whether TC ingress serves this received packet: as the XDP program's
/// mark says when this attachment's XDP program saw it, otherwise as the
/// flag says.
#[inline(always)]
fn tc_serves_received(ctx: &TcContext, globals: &Globals) -> bool {
    let skb = ctx.skb.skb;
    // SAFETY: the context's own fields; the verifier rewrites the reads.
    let (meta, data) = unsafe { ((*skb).data_meta as usize, (*skb).data as usize) };
    if meta + size_of::<HandOverMark>() <= data {
        // SAFETY: bounds checked just above.
        let mark = unsafe { ptr::read_unaligned(meta as *const HandOverMark) };
        if mark.attachment == globals.hand_over_mark {
            return mark.xdp_served == 0;
        }
    }
    globals.xdp_receives == 0
}

#[xdp]
pub fn pktd_xdp_deliver(ctx: XdpContext) -> u32 {
    let _ = deliver_matches(Xdp(ctx.ctx));
    XDP_PASS
}

/// Does nothing: BPF_PROG_TEST_RUN of it is the fixed cost benchmarks
/// subtract to get the program's own cost per packet.
#[classifier]
pub fn pktd_empty(_ctx: TcContext) -> i32 {
    TC_ACT_UNSPEC
}

#[inline(always)]
fn classify_tc(ctx: &TcContext, direction: u32) {
    let Some(globals) = PKTD_GLOBALS.get(0) else {
        return;
    };
    if direction == DIR_IN && !tc_serves_received(ctx, globals) {
        return;
    }
    let Some(verdicts) = start_packet(globals, ctx.data(), ctx.data_end(), direction) else {
        return;
    };
    // SAFETY: tail calls return only when they fail (no native filters
    // installed): then every slot is interpreted.
    unsafe { PKTD_JUMP.tail_call(ctx, jump::DECIDE) };
    verdicts.interpret_all = 1;
    // SAFETY: as above.
    unsafe { PKTD_JUMP.tail_call(ctx, jump::DELIVER) };
}

/// Counts the packet and resets this CPU's verdicts; `None` when no client
/// is active (nothing else to do). The caller has made sure that this hook
/// serves the packet.
#[inline(always)]
fn start_packet(
    globals: &Globals,
    data: usize,
    data_end: usize,
    direction: u32,
) -> Option<&'static mut Verdicts> {
    if globals.slot_count == 0 {
        return None;
    }
    count_interface_traffic(data, data_end, direction);
    let verdicts = PKTD_VERDICTS.get_ptr_mut(0)?;
    // SAFETY: this CPU's value; programs of one hook do not nest on a CPU,
    // and the value is only used by this packet's tail calls.
    let verdicts = unsafe { &mut *verdicts };
    verdicts.direction = direction;
    verdicts.interpret_all = 0;
    verdicts.matched = 0;
    Some(verdicts)
}

/// Counts the packet for the interface's performance statistics. Not
/// inlined: as its own function its branches end at its return, so the
/// verifier does not carry them into the rest of the program.
#[inline(never)]
fn count_interface_traffic(data: usize, data_end: usize, direction: u32) {
    let Some(counters) = PKTD_INTERFACE.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: this CPU's value; programs of one hook do not nest on a CPU.
    let counters = unsafe { &mut *counters };
    counters.packets += 1;
    counters.bytes += (data_end - data) as u64;
    if direction == DIR_OUT {
        counters.sent += 1;
    } else {
        counters.received += 1;
    }
    match headers::tcp_flags(data, data_end) {
        Some(flags) if flags & 0x12 == 0x02 => counters.tcp_syn += 1,
        Some(flags) if flags & 0x12 == 0x12 => counters.tcp_synack += 1,
        _ => {}
    }
}

/// Counts a packet the interpreter runs filters on.
#[inline(never)]
fn count_interpreted() {
    if let Some(counters) = PKTD_INTERFACE.get_ptr_mut(0) {
        // SAFETY: this CPU's value; programs of one hook do not nest on a
        // CPU.
        unsafe { (*counters).interpreted += 1 };
    }
}

/// The clients one packet is evaluated for in `pktd_deliver`.
#[repr(C)]
struct Delivery<F: HookContext> {
    packet: PacketView<F>,
    verdicts: *const Verdicts,
    /// Slots still to visit (bit `i` = slot `i`).
    remaining: u64,
    /// Slots whose filter is interpreted for this packet.
    interpreted: u64,
    /// `Globals::interpret_caps`.
    caps: *const [u16; 2 * SLOTS],
    /// Which half of it applies to this packet: 0, or `SLOTS` when every
    /// slot is interpreted.
    caps_half: u32,
    /// Classic-BPF instructions the interpreter may still run for this
    /// packet, all slots together.
    budget: u32,
    /// The slot being evaluated.
    slot: u32,
}

#[inline(always)]
fn deliver_matches<F: HookContext>(frame: F) -> Option<()> {
    let globals = PKTD_GLOBALS.get(0)?;
    let verdicts = PKTD_VERDICTS.get(0)?;
    let in_use = match globals.slot_count {
        0 => return None,
        count if count >= MAX_CLIENTS => u64::MAX,
        count => (1u64 << count) - 1,
    };
    let interpreted = if verdicts.interpret_all != 0 {
        in_use
    } else {
        globals.interpreted & in_use
    };
    let remaining = (verdicts.matched & in_use) | interpreted;
    if remaining == 0 {
        return None;
    }
    if interpreted != 0 {
        count_interpreted();
    }
    let prefix = PKTD_PREFIX.get_ptr_mut(0)?;
    let mut delivery = Delivery {
        packet: PacketView::read(frame, prefix, verdicts.direction, interpreted != 0)?,
        verdicts,
        remaining,
        interpreted,
        caps: &globals.interpret_caps,
        caps_half: u32::from(verdicts.interpret_all != 0) * SLOTS as u32,
        budget: match globals.interpret_budget {
            0 => DEFAULT_INTERPRET_BUDGET,
            budget => budget,
        },
        slot: 0,
    };
    // SAFETY: bpf_loop calls `per_slot` with a pointer to `delivery`, which
    // lives on this stack frame for the whole call.
    unsafe {
        bpf_loop(
            MAX_CLIENTS,
            per_slot::<F> as *mut c_void,
            ptr::from_mut(&mut delivery).cast(),
            0,
        );
    }
    Some(())
}

/// bpf_loop callback: evaluates the lowest remaining slot; ends the loop
/// when none remains.
extern "C" fn per_slot<F: HookContext>(_index: u64, delivery: *mut c_void) -> i64 {
    // SAFETY: `delivery` is the `Delivery` deliver_matches passed to bpf_loop.
    let delivery = unsafe { &mut *delivery.cast::<Delivery<F>>() };
    let remaining = delivery.remaining;
    if remaining == 0 {
        return 1;
    }
    delivery.remaining = remaining & (remaining - 1);
    // Through a volatile round trip so that the compiler keeps the mask:
    // it knows the index is below 64, the verifier does not.
    let slot = ptr::addr_of_mut!(delivery.slot);
    // SAFETY: a field of `delivery`.
    let slot = unsafe {
        slot.write_volatile(lowest_bit(remaining));
        slot.read_volatile()
    } & (MAX_CLIENTS - 1);
    let _ = evaluate_client(slot, delivery);
    0
}

/// Index of the lowest set bit of a non-zero `mask`. Branch-free (a
/// population count of the bits below it): with branches the verifier
/// would check the rest of the loop once per possible index.
#[inline(always)]
fn lowest_bit(mask: u64) -> u32 {
    ((mask & mask.wrapping_neg()) - 1).count_ones()
}

#[inline(always)]
fn evaluate_client<F: HookContext>(slot: u32, delivery: &mut Delivery<F>) -> Option<()> {
    let config = PKTD_CLIENTS.get(slot)?;
    if config.active == 0 || config.directions & delivery.packet.direction == 0 {
        return None;
    }
    let counters = PKTD_COUNTERS.get_ptr_mut(slot)?;
    // SAFETY: per-CPU map value of this slot; nothing else on this CPU runs
    // this program concurrently.
    let counters = unsafe { &mut *counters };
    let verdict = if delivery.interpreted & (1 << slot) != 0 {
        interpret(slot, delivery, counters)?
    } else {
        // SAFETY: the pointer deliver_matches took from PKTD_VERDICTS for
        // this packet.
        unsafe { (*delivery.verdicts).cap_len[slot as usize] }
    };
    let packet = &mut delivery.packet;
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
    // Quotas cost two atomic operations per packet: only with a quota.
    let usage = if config.packet_quota != 0 || config.byte_quota != 0 {
        let usage = PKTD_USAGE.get_ptr_mut(slot)?;
        if !charge_quota(usage, config, cap_len) {
            counters.over_quota += 1;
            return None;
        }
        Some(usage)
    } else {
        None
    };

    if deliver(slot, packet, cap_len, config.immediate != 0).is_some() {
        counters.delivered += 1;
        counters.delivered_bytes += u64::from(cap_len);
    } else {
        if let Some(usage) = usage {
            refund_quota(usage, cap_len);
        }
        counters.dropped += 1;
    }
    Some(())
}

/// Runs slot `slot`'s classic program on the packet, within its cap
/// (`Globals::interpret_caps`, and what is left of the packet's budget);
/// its verdict, or `None` (counted as over budget) when the cap ran out
/// before the program ended. The caps depend on the filters' lengths only,
/// never on how far other filters ran on this packet: a filter spends its
/// own share, and learns nothing of the others'.
#[inline(always)]
fn interpret<F: HookContext>(
    slot: u32,
    delivery: &mut Delivery<F>,
    counters: &mut ClientCounters,
) -> Option<u32> {
    let budget = delivery.budget;
    // SAFETY: a pointer into the PKTD_GLOBALS value deliver_matches read
    // for this packet.
    let cap = unsafe { (*delivery.caps)[(slot + delivery.caps_half) as usize & (2 * SLOTS - 1)] };
    let share = u32::from(cap).min(budget);
    let program = PKTD_FILTERS.get_value(slot, &0)?;
    let mut vm = Vm::new(program, &delivery.packet);
    vm.fuel = share;
    // SAFETY: bpf_loop calls `interp::step` with a pointer to `vm`, which
    // lives on this stack frame for the whole call. (A constant count keeps
    // verification quick; the fuel ends the loop.)
    unsafe {
        bpf_loop(
            MAX_INSNS as u32,
            interp::step::<F> as *mut c_void,
            ptr::from_mut(&mut vm).cast(),
            0,
        );
    }
    delivery.budget = budget.saturating_sub(share.saturating_sub(vm.fuel));
    if vm.ended == 0 {
        if counters.over_budget == 0 {
            // Once per slot and CPU: the daemon's log says which session's
            // filter is too long for the interpreter's budget.
            warn!(
                &(),
                "slot {} ran out of interpreter budget ({} instructions for this packet)",
                slot,
                share
            );
        }
        counters.over_budget += 1;
        return None;
    }
    Some(vm.result)
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

/// Reserves a record in the slot's ring and writes the packet straight
/// into it. `None` when the ring is full (or missing).
#[inline(always)]
fn deliver<F: HookContext>(
    slot: u32,
    packet: &mut PacketView<F>,
    cap_len: u32,
    immediate: bool,
) -> Option<()> {
    let ring = PKTD_RINGS.get(slot)?;
    let ring: *mut c_void = ptr::from_ref(ring).cast_mut().cast();
    if packet.timestamp_ns == 0 {
        // SAFETY: no preconditions.
        packet.timestamp_ns = unsafe { bpf_ktime_get_tai_ns() };
    }
    let wakeup = if immediate {
        // The kernel's own rule: wake the reader when it has caught up.
        0
    } else {
        batched_wakeup(ring, cap_len)
    };
    // One call per class: the verifier must know each reservation's size.
    macro_rules! classes {
        ($($i:literal)*) => {
            $(if cap_len <= RECORD_CLASSES[$i] {
                return write_record::<F, { RECORD_CLASSES[$i] }>(ring, packet, cap_len, wakeup);
            })*
        };
    }
    classes!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15);
    None
}

/// The reader is woken only once the ring is an eighth full: a wake-up per
/// record (the kernel's default whenever the reader has caught up) costs
/// the receiving CPU more than everything else here. Readers look on
/// their own every few milliseconds (the daemon) or at their timeout
/// (a client reading its ring), which bounds the latency of a quiet ring.
#[inline(always)]
fn batched_wakeup(ring: *mut c_void, cap_len: u32) -> u64 {
    // SAFETY: `ring` is a ring buffer map; querying has no other effect.
    let (queued, ring_size) = unsafe {
        (
            bpf_ringbuf_query(ring, BPF_RB_AVAIL_DATA),
            bpf_ringbuf_query(ring, BPF_RB_RING_SIZE),
        )
    };
    // The consumer position is the reader's to write: `queued` may be
    // anything, and only this ring's wake-ups depend on it.
    let size = RECORD_HEADER_LEN as u64 + u64::from(cap_len);
    if queued.wrapping_add(size).wrapping_mul(8) >= ring_size {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Reserves a record of class `ROOM` (header plus `ROOM` bytes) and writes
/// the header and the first `cap_len` (at most `ROOM`) wire bytes into it.
#[inline(always)]
fn write_record<F: HookContext, const ROOM: u32>(
    ring: *mut c_void,
    packet: &PacketView<F>,
    cap_len: u32,
    wakeup: u64,
) -> Option<()> {
    // SAFETY: `ring` is a ring buffer map; the size is a constant.
    let record =
        unsafe { bpf_ringbuf_reserve(ring, u64::from(ROOM) + RECORD_HEADER_LEN as u64, 0) };
    if record.is_null() {
        return None;
    }
    let header = RecordHeader {
        timestamp_ns: packet.timestamp_ns,
        wire_len: packet.wire_len,
        cap_len,
        ifindex: packet.ifindex,
        direction: packet.direction,
    };
    // SAFETY: the reservation holds RECORD_HEADER_LEN + ROOM bytes, 8-byte
    // aligned; `copy_bytes` writes at most ROOM (>= 16) bytes after the
    // header.
    unsafe {
        record.cast::<RecordHeader>().write(header);
        let data = record.cast::<u8>().add(RECORD_HEADER_LEN);
        if packet.copy_bytes::<ROOM>(data, cap_len).is_none() {
            bpf_ringbuf_discard(record, BPF_RB_NO_WAKEUP);
            return None;
        }
        bpf_ringbuf_submit(record, wakeup);
    }
    Some(())
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
