//! Layouts and names shared by the pktd eBPF program (`pktd-ebpf`) and its user
//! space (`pktd-daemon`, tests).
//!
//! Every type that crosses the kernel/user boundary is defined here once, as
//! `#[repr(C)]` with explicit padding and integers instead of `bool`, and its
//! size is pinned by a compile-time assertion. With the `user` feature the
//! types implement [`aya::Pod`] so user space can read and write them in maps.
#![no_std]

use core::mem::size_of;

/// Most clients (capture sessions) one attachment — the kernel program
/// on one (network namespace, interface) — evaluates per packet.
pub const MAX_CLIENTS: u32 = 64;

/// Most attachments at once. The kernel program is loaded once and shared
/// by every attachment: a small entry program per attachment tells it
/// which one a packet came through ([`Verdicts::attachment`]), and every
/// per-attachment map entry is found by that index (the clients of
/// attachment `a` at `a * MAX_CLIENTS ..`). 1024 attachments cost the
/// shared maps some 7 MiB of kernel memory, allocated once.
pub const MAX_ATTACHMENTS: u32 = 1024;

/// Entries of the maps indexed by (attachment, slot).
pub const MAX_SLOTS: u32 = MAX_ATTACHMENTS * MAX_CLIENTS;

/// Most instructions in one classic-BPF program (the kernel's BPF_MAXINSNS).
pub const MAX_INSNS: usize = 4096;

/// Classic-BPF instructions the interpreter runs per packet, for all
/// slots together, unless the daemon sets another budget
/// (`Globals::interpret_budget`): one longest program's worth, so that a
/// filter interpreted alone always runs to its end.
pub const DEFAULT_INTERPRET_BUDGET: u32 = MAX_INSNS as u32;

/// Number of scratch memory cells of classic BPF (BPF_MEMWORDS).
pub const MEM_WORDS: usize = 16;

/// Most bytes of a packet copied into one record (tcpdump's largest
/// snaplen: GSO and BIG TCP packets exceed 64 KiB). Longer captures are
/// cut here whatever the filter, client and policy allow.
pub const MAX_CAPLEN: u32 = 262_144;

/// The data capacities of the records the kernel program reserves in a
/// ring, smallest first: a ring buffer reservation must have a size the
/// verifier knows, so each packet gets the smallest class its captured
/// bytes fit, written in place (no intermediate copy). Up to 2048 bytes
/// each class is at most 1.5 times the one before, so a record wastes at
/// most a third of its room; past that, where packets are rarer, the
/// steps grow to 4 times. The bytes past `cap_len` are left as the ring
/// last held them: this session's own earlier records, or zeros. The last
/// class is [`MAX_CAPLEN`]; a ring must hold a record's whole class (see
/// [`largest_record`]).
pub const RECORD_CLASSES: [u32; 16] = [
    64, 96, 128, 192, 256, 384, 512, 768, 1024, 1518, 2048, 4096, 9216, 16384, 65536, MAX_CAPLEN,
];

/// The most bytes a record may capture in a ring of `ring_bytes` bytes: a
/// record is reserved whole in its size class (plus the header and the
/// kernel's 8 bytes), and one larger than the ring never fits. At least
/// the smallest class.
pub const fn largest_record(ring_bytes: u32) -> u32 {
    let mut best = RECORD_CLASSES[0];
    let mut i = 0;
    while i < RECORD_CLASSES.len() {
        if RECORD_CLASSES[i] as u64 + RECORD_HEADER_LEN as u64 + 8 <= ring_bytes as u64 {
            best = RECORD_CLASSES[i];
        }
        i += 1;
    }
    best
}

/// IPv6 extension headers a header-only view follows (the prologue the
/// kernel runs, `pktd_filter::confine_to_headers`) and the anonymizer
/// walks (`pktd_anon::layout`) before the chain ends: one number, so that
/// both agree where the headers end.
pub const IPV6_EXTENSION_HEADERS: usize = 4;

/// Bytes of each packet the kernel program copies once per packet so that
/// filter loads inside them need no helper call.
pub const PREFIX_LEN: u32 = 256;

/// Client mode: matched packets are copied into the client's ring.
pub const MODE_CAPTURE: u32 = 0;
/// Client mode: matched packets are only counted (Npcap's MODE_STAT).
pub const MODE_COUNT: u32 = 1;

/// Direction bit: the packet was received on the interface (TC ingress).
pub const DIR_IN: u32 = 1;
/// Direction bit: the packet was sent on the interface (TC egress).
pub const DIR_OUT: u32 = 2;

/// Start of Linux's ancillary-data offsets for classic-BPF absolute loads
/// (`SKF_AD_OFF`, -0x1000 as u32).
pub const SKF_AD_OFF: u32 = 0xffff_f000;
/// `SKF_AD_PROTOCOL`: the skb's EtherType, host order.
pub const SKF_AD_PROTOCOL: u32 = 0;
/// `SKF_AD_PKTTYPE`: PACKET_HOST (0) … PACKET_OUTGOING (4).
pub const SKF_AD_PKTTYPE: u32 = 4;
/// `SKF_AD_IFINDEX`: the interface's index.
pub const SKF_AD_IFINDEX: u32 = 8;
/// `SKF_AD_VLAN_TAG`: the TCI of a tag held in metadata.
pub const SKF_AD_VLAN_TAG: u32 = 44;
/// `SKF_AD_VLAN_TAG_PRESENT`: 1 with such a tag.
pub const SKF_AD_VLAN_TAG_PRESENT: u32 = 48;
/// `PACKET_OUTGOING`, the packet type AF_PACKET's taps see for sent packets.
pub const PACKET_OUTGOING: u32 = 4;

/// Names of the eBPF programs and maps in the object built from `pktd-ebpf`.
pub mod names {
    /// TC classifier run on received packets, tail-called by each
    /// attachment's entry program.
    pub const PROG_INGRESS: &str = "pktd_tc_in";
    /// TC classifier run on sent packets, likewise.
    pub const PROG_EGRESS: &str = "pktd_tc_out";
    /// Name of an attachment's entry program at TC ingress (generated by
    /// the daemon, see `pktd_translate::entry`).
    pub const ENTRY_INGRESS: &str = "pktd_ingress";
    /// Its entry program at TC egress.
    pub const ENTRY_EGRESS: &str = "pktd_egress";
    /// Its entry program at XDP.
    pub const ENTRY_XDP: &str = "pktd_xdp";
    /// A classifier that does nothing: the baseline benchmarks subtract.
    pub const PROG_EMPTY: &str = "pktd_empty";
    /// `Array<Globals, MAX_ATTACHMENTS>`: each attachment's settings.
    pub const MAP_GLOBALS: &str = "PKTD_GLOBALS";
    /// `Array<ClientConfig, MAX_SLOTS>`: per-client settings.
    pub const MAP_CLIENTS: &str = "PKTD_CLIENTS";
    /// `ArrayOfMaps<Array<FilterProgram, 1>, MAX_SLOTS>`: per-client
    /// filter, for the interpreter.
    pub const MAP_FILTERS: &str = "PKTD_FILTERS";
    /// `ArrayOfMaps<RingBuf, MAX_SLOTS>`: per-client ring buffer.
    pub const MAP_RINGS: &str = "PKTD_RINGS";
    /// `ArrayOfMaps<PerCpuArray<ClientCounters, MAX_CLIENTS>,
    /// MAX_ATTACHMENTS>`: per-client counters, one inner map per
    /// attachment (per-CPU values for every possible slot would cost
    /// megabytes per CPU).
    pub const MAP_COUNTERS: &str = "PKTD_COUNTERS";
    /// `Array<ClientUsage, MAX_SLOTS>`: quota consumption, shared by CPUs.
    pub const MAP_USAGE: &str = "PKTD_USAGE";
    /// `PerCpuArray<PacketPrefix, 1>`: the first bytes of the current packet.
    pub const MAP_PREFIX: &str = "PKTD_PREFIX";
    /// `PerCpuArray<InterfaceCounters, MAX_ATTACHMENTS>`: traffic on each
    /// attachment's interface.
    pub const MAP_INTERFACE: &str = "PKTD_INTERFACE";
    /// `PerCpuArray<Verdicts, 1>`: what the native filters decided about
    /// the packet being classified.
    pub const MAP_VERDICTS: &str = "PKTD_VERDICTS";
    /// `ProgramArray`: the TC programs the classifiers tail-call (see
    /// [`super::jump`]).
    pub const MAP_JUMP: &str = "PKTD_JUMP";
    /// TC program run after the native filters: delivers their matches and
    /// interprets the filters that have no native code.
    pub const PROG_DELIVER: &str = "pktd_deliver";
    /// XDP program run on received packets, tail-called by each XDP
    /// attachment's entry program.
    pub const PROG_XDP: &str = "pktd_xdp_in";
    /// XDP counterpart of [`PROG_DELIVER`].
    pub const PROG_XDP_DELIVER: &str = "pktd_xdp_deliver";
    /// `ProgramArray`: the XDP programs `pktd_xdp` tail-calls.
    pub const MAP_XDP_JUMP: &str = "PKTD_XDP_JUMP";

    /// Every map name, for the check that the built object has them all.
    pub const ALL_MAPS: [&str; 11] = [
        MAP_VERDICTS,
        MAP_JUMP,
        MAP_XDP_JUMP,
        MAP_INTERFACE,
        MAP_GLOBALS,
        MAP_CLIENTS,
        MAP_FILTERS,
        MAP_RINGS,
        MAP_COUNTERS,
        MAP_USAGE,
        MAP_PREFIX,
    ];
    /// Every TC program name.
    pub const TC_PROGRAMS: [&str; 4] = [PROG_INGRESS, PROG_EGRESS, PROG_DELIVER, PROG_EMPTY];
    /// Every XDP program name.
    pub const XDP_PROGRAMS: [&str; 2] = [PROG_XDP, PROG_XDP_DELIVER];
}

/// Entries of the program arrays (`PKTD_JUMP`, `PKTD_XDP_JUMP`).
///
/// An attachment's entry program tail-calls [`CLASSIFY`] (or
/// [`CLASSIFY_EGRESS`]), the shared classifier, which tail-calls the
/// attachment's [`DECIDE`] in its [`block`]: the natively translated
/// filters, generated in user space. They write a [`Verdicts`] and
/// tail-call [`DELIVER`]. With a chain, entry `CHAIN + i` of the block
/// holds its (i+1)-th program, each calling the next.
///
/// [`Verdicts`]: super::Verdicts
pub mod jump {
    use super::{MAX_ATTACHMENTS, MAX_CLIENTS};

    /// The shared classifier: TC ingress, or the XDP program.
    pub const CLASSIFY: u32 = 0;
    /// The shared TC egress classifier.
    pub const CLASSIFY_EGRESS: u32 = 1;
    /// The delivery program, shared.
    pub const DELIVER: u32 = 2;
    /// Where the attachments' blocks begin.
    pub const FIRST_BLOCK: u32 = 3;
    /// In a block: the native filters (the shared decision program, or
    /// the first of a chain).
    pub const DECIDE: u32 = 0;
    /// In a block: first entry of the rest of a chain.
    pub const CHAIN: u32 = 1;
    /// Entries of one attachment's block.
    pub const BLOCK: u32 = CHAIN + MAX_CLIENTS;
    /// Entries in each program array.
    pub const ENTRIES: u32 = FIRST_BLOCK + MAX_ATTACHMENTS * BLOCK;

    /// The first entry of attachment `attachment`'s block.
    pub const fn block(attachment: u32) -> u32 {
        FIRST_BLOCK + attachment * BLOCK
    }
}

/// One classic-BPF instruction, laid out like the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CbpfInsn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when the condition holds.
    pub jt: u8,
    /// Jump offset when the condition does not hold.
    pub jf: u8,
    /// Generic field (constant, offset, memory index).
    pub k: u32,
}
const _: () = assert!(size_of::<CbpfInsn>() == 8);

impl CbpfInsn {
    /// An instruction from its four fields.
    pub const fn new(code: u16, jt: u8, jf: u8, k: u32) -> Self {
        Self { code, jt, jf, k }
    }
}

/// A validated classic-BPF program as the kernel program reads it: the value
/// of a client's one-entry filter map. Replacing the inner map swaps the
/// filter atomically; a packet sees either the old or the new program whole.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct FilterProgram {
    /// Number of instructions in use (1..=MAX_INSNS).
    pub len: u32,
    /// Always 0: the first instruction, and the value A, X and M[] start
    /// with. The kernel program reads it from the map instead of using a
    /// constant so that the verifier sees the interpreter's state as
    /// unknown from the start; with constants it would verify the
    /// instruction loop once per possible pc value (seconds per load).
    pub entry: u32,
    /// The instructions; those past `len` are never executed.
    pub insns: [CbpfInsn; MAX_INSNS],
}
const _: () = assert!(size_of::<FilterProgram>() == 8 + 8 * MAX_INSNS);

/// Settings of one attachment.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Globals {
    /// Slots `0..slot_count` may be in use; 0 means no client at all.
    pub slot_count: u32,
    /// 1 while the XDP program serves received packets, 0 while TC
    /// ingress does: when the daemon moves from one hook to the other, both
    /// are attached for a moment, and this flag makes exactly one of them
    /// see each packet. The flag can change between a packet's XDP and its
    /// TC ingress, so XDP also writes what it decided into the packet's
    /// metadata ([`HandOverMark`]), and TC ingress follows that when it
    /// finds it.
    pub xdp_receives: u32,
    /// Bit `i` set: slot `i`'s filter has no native code and is
    /// interpreted.
    pub interpreted: u64,
    /// Classic-BPF instructions the interpreter may run per packet, for
    /// all interpreted slots together (a safety net: the caps below add up
    /// to at most this). 0: [`DEFAULT_INTERPRET_BUDGET`].
    pub interpret_budget: u32,
    /// This attachment's [`HandOverMark::attachment`]: random, so that a
    /// mark another attachment left in a packet's metadata is not taken
    /// for this one's.
    pub hand_over_mark: u32,
    /// Entry `i`: the instructions slot `i`'s filter may run per packet
    /// while the slots of `interpreted` are; entry `MAX_CLIENTS + i`: the
    /// same when every slot in use is interpreted (no native program is
    /// installed for the packet's hook). The budget is shared out by the filters' lengths,
    /// max-min fair (a filter runs at most its length, so the short ones
    /// get all they can use and the rest is split among the long ones). A
    /// filter that does not end within its cap gives no verdict for the
    /// packet, and its `over_budget` counter says so. One array, so that
    /// the kernel picks a half by index rather than by branch.
    pub interpret_caps: [u16; 2 * MAX_CLIENTS as usize],
}
const _: () = assert!(size_of::<Globals>() == 24 + 4 * MAX_CLIENTS as usize);

impl Default for Globals {
    fn default() -> Self {
        Self {
            slot_count: 0,
            xdp_receives: 0,
            interpreted: 0,
            interpret_budget: 0,
            hand_over_mark: 0,
            interpret_caps: [0; 2 * MAX_CLIENTS as usize],
        }
    }
}

/// What the XDP program writes into a received packet's metadata (in front
/// of its data, by `bpf_xdp_adjust_meta`) and TC ingress reads back from
/// the socket buffer's `data_meta`: whether XDP served the packet, so that
/// during a move between the hooks exactly one of them does, whenever the
/// flag flips. Drivers without metadata support get no mark; then TC
/// ingress follows [`Globals::xdp_receives`] alone.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandOverMark {
    /// [`Globals::hand_over_mark`] of the attachment that wrote it.
    pub attachment: u32,
    /// 1: XDP delivered the packet to the clients; 0: it left it to TC.
    pub xdp_served: u32,
}
const _: () = assert!(size_of::<HandOverMark>() == 8);

/// What the native filters decided about the packet being classified
/// (per-CPU; written by the classifier and the generated programs, read by
/// the delivery program of the same packet).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verdicts {
    /// DIR_IN or DIR_OUT.
    pub direction: u32,
    /// 1 when no native program ran for this packet (none installed) and
    /// every active slot is interpreted.
    pub interpret_all: u32,
    /// Bit `i` set: slot `i`'s native filter accepted the packet.
    pub matched: u64,
    /// For each bit of `matched`: the filter's return value.
    pub cap_len: [u32; MAX_CLIENTS as usize],
    /// The attachment the packet came through: written by the
    /// attachment's entry program before anything else runs for the
    /// packet, read by the shared programs to find its maps' entries.
    pub attachment: u32,
    /// Padding.
    pub _pad: u32,
}
const _: () = assert!(size_of::<Verdicts>() == 24 + 4 * MAX_CLIENTS as usize);
/// Offset of [`Verdicts::direction`], for generated code.
pub const VERDICTS_DIRECTION: usize = core::mem::offset_of!(Verdicts, direction);
/// Offset of [`Verdicts::matched`], for generated code.
pub const VERDICTS_MATCHED: usize = core::mem::offset_of!(Verdicts, matched);
/// Offset of [`Verdicts::cap_len`], for generated code.
pub const VERDICTS_CAP_LEN: usize = core::mem::offset_of!(Verdicts, cap_len);
/// Offset of [`Verdicts::attachment`], for the entry programs.
pub const VERDICTS_ATTACHMENT: usize = core::mem::offset_of!(Verdicts, attachment);

/// Settings of one client slot. A slot is evaluated only while `active` is 1;
/// user space fills everything else (filter, ring) before setting it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// 1 while the slot is in use.
    pub active: u32,
    /// Bitmask of DIR_IN / DIR_OUT.
    pub directions: u32,
    /// Most bytes captured per packet (already the minimum of the client's
    /// and the policy's snaplen).
    pub snaplen: u32,
    /// MODE_CAPTURE or MODE_COUNT.
    pub mode: u32,
    /// Most packets delivered in the session; 0 means no limit.
    pub packet_quota: u64,
    /// Most captured bytes delivered in the session; 0 means no limit.
    pub byte_quota: u64,
    /// 1: wake the ring's reader for every record it has not caught up
    /// with (tcpdump's `--immediate-mode`); 0: only once the ring is an
    /// eighth full, the reader looking on its own every so often.
    pub immediate: u32,
    /// Padding.
    pub _pad: u32,
}
const _: () = assert!(size_of::<ClientConfig>() == 40);

/// Per-CPU counters of one client slot.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientCounters {
    /// Packets that passed the client's hook in its directions while it was
    /// active (the kernel leaves it 0: user space derives it from the
    /// interface's per-direction counts).
    pub seen: u64,
    /// Packets the filter accepted.
    pub matched: u64,
    /// Packets put into the client's ring buffer.
    pub delivered: u64,
    /// Matched packets lost because the ring buffer was full.
    pub dropped: u64,
    /// Matched packets refused because a quota was reached.
    pub over_quota: u64,
    /// Captured bytes put into the ring buffer.
    pub delivered_bytes: u64,
    /// Wire bytes of the packets the filter accepted.
    pub matched_bytes: u64,
    /// Packets the interpreter had no budget left for: the filter was not
    /// run (or not to its end), the packet not delivered.
    pub over_budget: u64,
}
const _: () = assert!(size_of::<ClientCounters>() == 64);

impl ClientCounters {
    /// Adds another CPU's counters to these.
    pub fn accumulate(&mut self, other: &Self) {
        self.seen += other.seen;
        self.matched += other.matched;
        self.delivered += other.delivered;
        self.dropped += other.dropped;
        self.over_quota += other.over_quota;
        self.delivered_bytes += other.delivered_bytes;
        self.matched_bytes += other.matched_bytes;
        self.over_budget += other.over_budget;
    }
}

/// Per-CPU counters of all traffic through one attachment (both
/// directions), for the administrators' performance statistics.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InterfaceCounters {
    /// Packets seen.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// TCP segments with SYN set and ACK clear (connection attempts).
    pub tcp_syn: u64,
    /// TCP segments with SYN and ACK set (connection acceptances).
    pub tcp_synack: u64,
    /// Packets seen received (TC ingress or XDP).
    pub received: u64,
    /// Packets seen sent (TC egress).
    pub sent: u64,
    /// Packets for which the interpreter ran at least one filter (those
    /// without native code, or all of them when no native program is
    /// installed): what the fallback engine costs the interface.
    pub interpreted: u64,
}
const _: () = assert!(size_of::<InterfaceCounters>() == 56);

impl InterfaceCounters {
    /// Adds another CPU's counters to these.
    pub fn accumulate(&mut self, other: &Self) {
        self.packets += other.packets;
        self.bytes += other.bytes;
        self.tcp_syn += other.tcp_syn;
        self.tcp_synack += other.tcp_synack;
        self.received += other.received;
        self.sent += other.sent;
        self.interpreted += other.interpreted;
    }
}

/// Quota consumption of one client slot, updated atomically by all CPUs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClientUsage {
    /// Packets charged to the quota.
    pub packets: u64,
    /// Captured bytes charged to the quota.
    pub bytes: u64,
}
const _: () = assert!(size_of::<ClientUsage>() == 16);

/// The first bytes of the packet being classified, as it was on the wire
/// (VLAN tag in place).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PacketPrefix {
    /// The bytes; `PREFIX_LEN` of packet plus room for a 4-byte load that
    /// starts inside it.
    pub bytes: [u8; PREFIX_LEN as usize + 8],
}

/// Header of each record in a client's ring buffer; `cap_len` packet bytes
/// follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// CLOCK_TAI time the packet was seen, in nanoseconds.
    pub timestamp_ns: u64,
    /// Length of the packet on the wire (VLAN tag included).
    pub wire_len: u32,
    /// Number of bytes that follow.
    pub cap_len: u32,
    /// Interface index in the attachment's network namespace.
    pub ifindex: u32,
    /// DIR_IN or DIR_OUT.
    pub direction: u32,
}
/// Size of [`RecordHeader`].
pub const RECORD_HEADER_LEN: usize = 24;
const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER_LEN);

impl RecordHeader {
    /// Splits a ring buffer entry into its header and its `cap_len`
    /// captured bytes; `None` for an entry too short for either (the
    /// kernel program never writes one; a ring a reader wrote into may
    /// hold anything).
    pub fn split(entry: &[u8]) -> Option<(Self, &[u8])> {
        let header = entry.get(..RECORD_HEADER_LEN)?;
        let word = |at: usize| {
            u32::from_ne_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&header[..8]);
        let header = Self {
            timestamp_ns: u64::from_ne_bytes(timestamp),
            wire_len: word(8),
            cap_len: word(12),
            ifindex: word(16),
            direction: word(20),
        };
        let data = entry
            .get(RECORD_HEADER_LEN..RECORD_HEADER_LEN.checked_add(header.cap_len as usize)?)?;
        Some((header, data))
    }
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: each type is #[repr(C)], made only of integers with explicit
    // padding fields, so every bit pattern is valid and there are no holes.
    unsafe impl aya::Pod for super::CbpfInsn {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::FilterProgram {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Globals {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClientConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClientCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ClientUsage {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::InterfaceCounters {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::RecordHeader {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Verdicts {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_fits_its_ring_whole() {
        assert_eq!(largest_record(4096), 2048, "4096 + header > 4096");
        assert_eq!(largest_record(8192), 4096);
        assert_eq!(largest_record(65536), 16384);
        assert_eq!(largest_record(4 << 20), MAX_CAPLEN);
        assert_eq!(
            largest_record(0),
            RECORD_CLASSES[0],
            "never below the smallest"
        );
    }
}
