//! eBPF code for the intermediate form.
//!
//! Registers: R6 the context, R7 classic BPF's A, R8 its X (both kept
//! zero-extended 32-bit values), R9 the bitmask of accepting slots; R0–R5
//! are scratch (helper calls clobber them). Stack: [`HELPER_BUFFER`] for
//! loads through a helper, [`VERDICTS_POINTER`], scratch memory M[] at
//! [`MEMORY`], and the fork save areas below it.

use std::collections::HashSet;

use pktd_common::{
    CbpfInsn, DIR_OUT, MAX_CLIENTS, PACKET_OUTGOING, VERDICTS_CAP_LEN, VERDICTS_DIRECTION,
    VERDICTS_MATCHED,
};
use pktd_filter::opcodes::*;

use crate::{
    Hook, MapFds, TranslateError,
    ir::{Ir, Label, Op},
    tree::{Len, MAX_FORK_DEPTH},
};

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Insn {
    /// Opcode.
    pub code: u8,
    /// Destination register (low nibble) and source register (high nibble).
    pub regs: u8,
    /// Offset.
    pub off: i16,
    /// Immediate.
    pub imm: i32,
}

impl Insn {
    /// The instruction as the kernel reads it (little-endian host).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut bytes = [0u8; 8];
        bytes[0] = self.code;
        bytes[1] = self.regs;
        bytes[2..4].copy_from_slice(&self.off.to_le_bytes());
        bytes[4..].copy_from_slice(&self.imm.to_le_bytes());
        bytes
    }

    pub(crate) fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: dst | (src << 4),
            off,
            imm,
        }
    }
}

// eBPF encoding (include/uapi/linux/bpf.h). Classic BPF's ALU and jump
// operation bits are the same as eBPF's, so those pass through.
pub(crate) const LD: u8 = 0x00;
const LDX: u8 = 0x01;
pub(crate) const ST: u8 = 0x02;
const STX: u8 = 0x03;
const ALU: u8 = 0x04;
pub(crate) const JMP: u8 = 0x05;
const JMP32: u8 = 0x06;
pub(crate) const ALU64: u8 = 0x07;
pub(crate) const W: u8 = 0x00;
const H: u8 = 0x08;
const B: u8 = 0x10;
pub(crate) const DW: u8 = 0x18;
pub(crate) const IMM: u8 = 0x00;
pub(crate) const MEM: u8 = 0x60;
pub(crate) const K: u8 = 0x00;
pub(crate) const X: u8 = 0x08;
pub(crate) const ADD: u8 = 0x00;
const SUB: u8 = 0x10;
const OR: u8 = 0x40;
const AND: u8 = 0x50;
const LSH: u8 = 0x60;
const RSH: u8 = 0x70;
const NEG: u8 = 0x80;
pub(crate) const MOV: u8 = 0xb0;
const END_TO_BE: u8 = 0xd0 | 0x08;
const JA: u8 = 0x00;
pub(crate) const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JNE: u8 = 0x50;
const JSLT: u8 = 0xc0;
pub(crate) const CALL: u8 = 0x80;
pub(crate) const EXIT: u8 = 0x90;
pub(crate) const PSEUDO_MAP_FD: u8 = 1;

pub(crate) const R0: u8 = 0;
pub(crate) const R1: u8 = 1;
pub(crate) const R2: u8 = 2;
pub(crate) const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
pub(crate) const R6: u8 = 6;
const REG_A: u8 = 7;
const REG_X: u8 = 8;
const REG_MATCHED: u8 = 9;
pub(crate) const R10: u8 = 10;

pub(crate) const HELPER_MAP_LOOKUP: i32 = 1;
pub(crate) const HELPER_TAIL_CALL: i32 = 12;
const HELPER_SKB_LOAD_BYTES: i32 = 26;
const HELPER_XDP_LOAD_BYTES: i32 = 189;

/// Stack offsets (from R10).
const HELPER_BUFFER: i16 = -8;
const VERDICTS_POINTER: i16 = -16;
const MEMORY: i16 = -80;
const SAVE_AREAS: i16 = -88;
const _: () = assert!(
    SAVE_AREAS as isize - 8 * (MAX_FORK_DEPTH as isize + 1)
        >= WIRE_HEAD as isize + WIRE_HEAD_LEN as isize
);
/// TC only: the first [`WIRE_HEAD_LEN`] bytes of the frame as it was on
/// the wire when the kernel moved its VLAN tag into skb metadata (MAC
/// addresses, the tag, what followed), for loads that reach the tag.
const WIRE_HEAD: i16 = -448;
const WIRE_HEAD_LEN: u32 = 24;
/// TC only: 4 when the VLAN tag is in metadata (every wire offset past
/// the MAC addresses is 4 bytes further into the skb), else 0.
const TAG_SHIFT: i16 = -456;
const _: () = assert!(TAG_SHIFT >= -512 && WIRE_HEAD + WIRE_HEAD_LEN as i16 <= TAG_SHIFT + 8 + 24);

/// `struct __sk_buff` fields the VLAN handling and the ancillary loads
/// read.
const SKB_LEN: i16 = 0;
const SKB_PKT_TYPE: i16 = 4;
const SKB_PROTOCOL: i16 = 16;
const SKB_IFINDEX: i16 = 40;
/// `struct xdp_md`'s `ingress_ifindex`.
const XDP_INGRESS_IFINDEX: i16 = 12;
const SKB_VLAN_PRESENT: i16 = 20;
const SKB_VLAN_TCI: i16 = 24;
const SKB_VLAN_PROTO: i16 = 28;
/// Bytes of the MAC addresses, before the tag.
const MAC_LEN: i32 = 12;

/// Largest packet offset the direct path serves (the verifier's limit on
/// packet pointer offsets); beyond it loads go through the helper.
const MAX_DIRECT_OFFSET: u32 = 0xffff;

struct HookLayout {
    data: i16,
    data_end: i16,
    load_bytes: i32,
    pass: i32,
}

fn layout(hook: Hook) -> HookLayout {
    match hook {
        // struct __sk_buff: len at 0, data at 76, data_end at 80.
        Hook::Tc => HookLayout {
            data: 76,
            data_end: 80,
            load_bytes: HELPER_SKB_LOAD_BYTES,
            pass: -1, // TC_ACT_UNSPEC
        },
        // struct xdp_md: data at 0, data_end at 4.
        Hook::Xdp => HookLayout {
            data: 0,
            data_end: 4,
            load_bytes: HELPER_XDP_LOAD_BYTES,
            pass: 2, // XDP_PASS
        },
    }
}

struct Emitter {
    hook: Hook,
    layout: HookLayout,
    insns: Vec<Insn>,
    bound: Vec<Option<usize>>,
    fixups: Vec<Fixup>,
    /// Conditional jumps (by ordinal) whose target lies beyond a 16-bit
    /// offset: each goes through a 32-bit `gotol` (kernel 6.4 and later).
    far: HashSet<usize>,
    /// Jumps emitted so far.
    jumps: usize,
}

/// A jump whose offset is known once its target is bound.
struct Fixup {
    at: usize,
    target: Label,
    /// The jump's ordinal, for a conditional one; `None` for the `gotol`
    /// of a far one.
    conditional: Option<usize>,
}

impl Emitter {
    fn label(&mut self) -> Label {
        self.bound.push(None);
        self.bound.len() - 1
    }

    fn bind(&mut self, label: Label) {
        self.bound[label] = Some(self.insns.len());
    }

    fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn::new(code, dst, src, off, imm));
    }

    /// A jump to `target`. Unconditional ones become `gotol` when far; a
    /// conditional one known to be far jumps over a short `ja` to a
    /// `gotol`: `jcond +1; ja +1; gotol target`.
    fn jump(&mut self, code: u8, dst: u8, src: u8, imm: i32, target: Label) {
        let ordinal = self.jumps;
        self.jumps += 1;
        let conditional = code & 0xf0 != JA;
        if conditional && self.far.contains(&ordinal) {
            self.emit(code, dst, src, 1, imm);
            self.emit(JMP | JA, 0, 0, 1, 0);
            self.fixups.push(Fixup {
                at: self.insns.len(),
                target,
                conditional: None,
            });
            self.emit(JMP32 | JA, 0, 0, 0, 0);
            return;
        }
        self.fixups.push(Fixup {
            at: self.insns.len(),
            target,
            conditional: conditional.then_some(ordinal),
        });
        self.emit(code, dst, src, 0, imm);
    }

    fn load_map_fd(&mut self, dst: u8, fd: i32) {
        self.emit(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, fd);
        self.emit(0, 0, 0, 0, 0);
    }

    fn exit(&mut self) {
        let pass = self.layout.pass;
        self.emit(ALU64 | MOV | K, R0, 0, 0, pass);
        self.emit(JMP | EXIT, 0, 0, 0, 0);
    }

    /// `dst` = `size` bytes of the packet at `offset` (big-endian, as in
    /// classic BPF); a load outside the packet goes to `fault`. Offsets
    /// are the frame's as on the wire: at TC, when the kernel moved the
    /// VLAN tag into metadata, those reaching the tag read the wire head
    /// the prologue assembled, those past it the skb 4 bytes earlier.
    fn load(&mut self, dst: u8, size: u32, offset: Offset, fault: Label) {
        let (slow, done) = (self.label(), self.label());
        let tagged = (self.hook == Hook::Tc).then(|| self.label());
        match offset {
            Offset::Absolute(k) => {
                if let Some(tagged) = tagged {
                    self.emit(LDX | MEM | W, R5, R10, TAG_SHIFT, 0);
                    self.emit(ALU | MOV | K, R1, 0, 0, k as i32);
                    self.jump(JMP | JNE | K, R5, 0, 0, tagged);
                }
                if k as u64 + size as u64 > MAX_DIRECT_OFFSET as u64 {
                    self.emit(ALU | MOV | K, R1, 0, 0, k as i32);
                    self.jump(JMP | JA, 0, 0, 0, slow);
                } else {
                    self.emit(LDX | MEM | W, R2, R6, self.layout.data, 0);
                    self.emit(LDX | MEM | W, R3, R6, self.layout.data_end, 0);
                    self.emit(ALU64 | ADD | K, R2, 0, 0, k as i32);
                    self.emit(ALU64 | MOV | X, R4, R2, 0, 0);
                    self.emit(ALU64 | ADD | K, R4, 0, 0, size as i32);
                    self.emit(ALU | MOV | K, R1, 0, 0, k as i32);
                    self.jump(JMP | JGT | X, R4, R3, 0, slow);
                    self.emit(LDX | MEM | self.width(size), dst, R2, 0, 0);
                    self.swap_to_big_endian(dst, size);
                    self.jump(JMP | JA, 0, 0, 0, done);
                }
            }
            Offset::Indirect(k) => {
                // X + k wraps at 32 bits; offsets negative as i32 would be
                // the kernel's ancillary areas, which pktd rejects.
                self.emit(ALU | MOV | X, R1, REG_X, 0, 0);
                self.emit(ALU | ADD | K, R1, 0, 0, k as i32);
                self.jump(JMP32 | JSLT | K, R1, 0, 0, fault);
                if let Some(tagged) = tagged {
                    self.emit(LDX | MEM | W, R5, R10, TAG_SHIFT, 0);
                    self.jump(JMP | JNE | K, R5, 0, 0, tagged);
                }
                self.load_at_r1(dst, size, slow, done);
            }
        }
        if let Some(tagged) = tagged {
            // The tag is in metadata; R1 = the wire offset (>= 0).
            self.bind(tagged);
            let past_head = self.label();
            self.jump(
                JMP | JGT | K,
                R1,
                0,
                (WIRE_HEAD_LEN - size) as i32,
                past_head,
            );
            // In the wire head, if the frame reaches that far.
            self.emit(LDX | MEM | W, R3, R6, SKB_LEN, 0);
            self.emit(ALU64 | ADD | K, R3, 0, 0, 4);
            self.emit(ALU64 | MOV | X, R4, R1, 0, 0);
            self.emit(ALU64 | ADD | K, R4, 0, 0, size as i32);
            self.jump(JMP | JGT | X, R4, R3, 0, fault);
            // Byte by byte, most significant first: the verifier allows
            // no unaligned stack access.
            self.emit(ALU64 | MOV | X, R2, R10, 0, 0);
            self.emit(ALU64 | ADD | K, R2, 0, 0, WIRE_HEAD.into());
            self.emit(ALU64 | ADD | X, R2, R1, 0, 0);
            self.emit(LDX | MEM | B, dst, R2, 0, 0);
            for byte in 1..size as i16 {
                self.emit(ALU | LSH | K, dst, 0, 0, 8);
                self.emit(LDX | MEM | B, R3, R2, byte, 0);
                self.emit(ALU | OR | X, dst, R3, 0, 0);
            }
            self.jump(JMP | JA, 0, 0, 0, done);
            // Past it (so past the tag): 4 bytes earlier in the skb.
            self.bind(past_head);
            self.emit(ALU | SUB | K, R1, 0, 0, 4);
            self.load_at_r1(dst, size, slow, done);
        }
        // Past the linear data (or the direct path's reach): the helper
        // copies from anywhere in the packet, R1 holding the offset.
        self.bind(slow);
        self.emit(ALU64 | MOV | X, R2, R1, 0, 0);
        self.emit(ALU64 | MOV | X, R1, R6, 0, 0);
        self.emit(ALU64 | MOV | X, R3, R10, 0, 0);
        self.emit(ALU64 | ADD | K, R3, 0, 0, HELPER_BUFFER.into());
        self.emit(ALU64 | MOV | K, R4, 0, 0, size as i32);
        let helper = self.layout.load_bytes;
        self.emit(JMP | CALL, 0, 0, 0, helper);
        self.jump(JMP | JNE | K, R0, 0, 0, fault);
        self.emit(LDX | MEM | self.width(size), dst, R10, HELPER_BUFFER, 0);
        self.swap_to_big_endian(dst, size);
        self.bind(done);
    }

    /// `dst` = `size` bytes at offset R1 (>= 0) of the linear data, or
    /// on to `slow` (R1 kept) when they are not all there; then to `done`.
    fn load_at_r1(&mut self, dst: u8, size: u32, slow: Label, done: Label) {
        self.jump(
            JMP | JGT | K,
            R1,
            0,
            (MAX_DIRECT_OFFSET - size) as i32,
            slow,
        );
        self.emit(LDX | MEM | W, R2, R6, self.layout.data, 0);
        self.emit(LDX | MEM | W, R3, R6, self.layout.data_end, 0);
        self.emit(ALU64 | ADD | X, R2, R1, 0, 0);
        self.emit(ALU64 | MOV | X, R4, R2, 0, 0);
        self.emit(ALU64 | ADD | K, R4, 0, 0, size as i32);
        self.jump(JMP | JGT | X, R4, R3, 0, slow);
        self.emit(LDX | MEM | self.width(size), dst, R2, 0, 0);
        self.swap_to_big_endian(dst, size);
        self.jump(JMP | JA, 0, 0, 0, done);
    }

    fn width(&self, size: u32) -> u8 {
        match size {
            1 => B,
            2 => H,
            _ => W,
        }
    }

    /// TC only: notes whether the kernel moved the frame's VLAN tag into
    /// metadata ([`TAG_SHIFT`]) and, if so, assembles the wire head: the
    /// MAC addresses, the tag, then up to 8 bytes that followed it.
    fn vlan_prologue(&mut self) {
        let untagged = self.label();
        self.emit(ST | MEM | W, R10, 0, TAG_SHIFT, 0);
        for word in 0..(WIRE_HEAD_LEN as i16 / 8) {
            self.emit(ST | MEM | DW, R10, 0, WIRE_HEAD + 8 * word, 0);
        }
        self.emit(LDX | MEM | W, R1, R6, SKB_VLAN_PRESENT, 0);
        self.jump(JMP | JEQ | K, R1, 0, 0, untagged);
        self.emit(ST | MEM | W, R10, 0, TAG_SHIFT, 4);
        // The tag: its TPID as the raw big-endian value, its TCI in host
        // order.
        self.emit(LDX | MEM | W, R1, R6, SKB_VLAN_PROTO, 0);
        self.emit(STX | MEM | H, R10, R1, WIRE_HEAD + MAC_LEN as i16, 0);
        self.emit(LDX | MEM | W, R1, R6, SKB_VLAN_TCI, 0);
        self.emit(ALU | END_TO_BE, R1, 0, 0, 16);
        self.emit(STX | MEM | H, R10, R1, WIRE_HEAD + MAC_LEN as i16 + 2, 0);
        // The MAC addresses (an skb at TC always holds an Ethernet
        // header; a failed copy leaves zeros, and loads past the frame
        // fail on their length check anyway).
        self.load_bytes_to_stack(0, WIRE_HEAD, MAC_LEN);
        // What followed the tag: min(8, len - 12) bytes.
        let none = self.label();
        self.emit(LDX | MEM | W, R4, R6, SKB_LEN, 0);
        self.emit(ALU | SUB | K, R4, 0, 0, MAC_LEN);
        self.jump(JMP32 | JSLT | K, R4, 0, 1, none);
        let full = self.label();
        self.jump(JMP | JGT | K, R4, 0, 8, full);
        self.emit(ALU64 | MOV | X, R1, R6, 0, 0);
        self.emit(ALU64 | MOV | K, R2, 0, 0, MAC_LEN);
        self.emit(ALU64 | MOV | X, R3, R10, 0, 0);
        self.emit(ALU64 | ADD | K, R3, 0, 0, (WIRE_HEAD + 16).into());
        self.emit(JMP | CALL, 0, 0, 0, self.layout.load_bytes);
        self.jump(JMP | JA, 0, 0, 0, none);
        self.bind(full);
        self.load_bytes_to_stack(MAC_LEN, WIRE_HEAD + 16, 8);
        self.bind(none);
        self.bind(untagged);
    }

    /// bpf_skb_load_bytes(ctx, `offset`, stack + `at`, `len`); the result
    /// is not looked at.
    fn load_bytes_to_stack(&mut self, offset: i32, at: i16, len: i32) {
        self.emit(ALU64 | MOV | X, R1, R6, 0, 0);
        self.emit(ALU64 | MOV | K, R2, 0, 0, offset);
        self.emit(ALU64 | MOV | X, R3, R10, 0, 0);
        self.emit(ALU64 | ADD | K, R3, 0, 0, at.into());
        self.emit(ALU64 | MOV | K, R4, 0, 0, len);
        self.emit(JMP | CALL, 0, 0, 0, self.layout.load_bytes);
    }

    fn swap_to_big_endian(&mut self, dst: u8, size: u32) {
        if size > 1 {
            self.emit(ALU | END_TO_BE, dst, 0, 0, (size * 8) as i32);
        }
    }

    /// The frame's length on the wire: at TC the skb's, plus the tag the
    /// kernel moved into metadata.
    fn packet_length(&mut self, dst: u8) {
        match self.hook {
            Hook::Tc => {
                self.emit(LDX | MEM | W, dst, R6, SKB_LEN, 0);
                self.emit(LDX | MEM | W, R1, R10, TAG_SHIFT, 0);
                self.emit(ALU | ADD | X, dst, R1, 0, 0);
            }
            Hook::Xdp => {
                self.emit(LDX | MEM | W, dst, R6, self.layout.data_end, 0);
                self.emit(LDX | MEM | W, R1, R6, self.layout.data, 0);
                self.emit(ALU | 0x10 | X, dst, R1, 0, 0);
            }
        }
    }

    /// `dst` = what the kernel's ancillary load reads (whatever the load's
    /// size). At XDP there is no socket buffer: only the ifindex is
    /// there, the others go to `fault` (the daemon keeps sessions whose
    /// filters read them at TC).
    fn ancillary(&mut self, dst: u8, ancillary: Ancillary, fault: Label) {
        match (self.hook, ancillary) {
            (Hook::Tc, Ancillary::Protocol) => {
                // The __be16 as stored, to host order.
                self.emit(LDX | MEM | W, dst, R6, SKB_PROTOCOL, 0);
                self.emit(ALU | END_TO_BE, dst, 0, 0, 16);
            }
            (Hook::Tc, Ancillary::PacketType) => {
                // A sent packet is PACKET_OUTGOING, as AF_PACKET's taps
                // see it; a received one has the type the kernel gave it.
                let (received, done) = (self.label(), self.label());
                self.emit(LDX | MEM | DW, R1, R10, VERDICTS_POINTER, 0);
                self.emit(LDX | MEM | W, R1, R1, VERDICTS_DIRECTION as i16, 0);
                self.jump(JMP | JNE | K, R1, 0, DIR_OUT as i32, received);
                self.emit(ALU | MOV | K, dst, 0, 0, PACKET_OUTGOING as i32);
                self.jump(JMP | JA, 0, 0, 0, done);
                self.bind(received);
                self.emit(LDX | MEM | W, dst, R6, SKB_PKT_TYPE, 0);
                self.bind(done);
            }
            (Hook::Tc, Ancillary::Ifindex) => self.emit(LDX | MEM | W, dst, R6, SKB_IFINDEX, 0),
            (Hook::Xdp, Ancillary::Ifindex) => {
                self.emit(LDX | MEM | W, dst, R6, XDP_INGRESS_IFINDEX, 0);
            }
            (Hook::Tc, Ancillary::VlanTagPresent) => {
                // TAG_SHIFT is 4 with the tag in metadata, else 0.
                self.emit(LDX | MEM | W, dst, R10, TAG_SHIFT, 0);
                self.emit(ALU | RSH | K, dst, 0, 0, 2);
            }
            (Hook::Tc, Ancillary::VlanTag) => {
                let done = self.label();
                self.emit(ALU | MOV | K, dst, 0, 0, 0);
                self.emit(LDX | MEM | W, R1, R10, TAG_SHIFT, 0);
                self.jump(JMP | JEQ | K, R1, 0, 0, done);
                self.emit(LDX | MEM | W, dst, R6, SKB_VLAN_TCI, 0);
                self.bind(done);
            }
            (Hook::Xdp, _) => self.jump(JMP | JA, 0, 0, 0, fault),
        }
    }

    fn exec(&mut self, insn: &CbpfInsn, fault: Label) {
        let k = insn.k;
        let memory = |k: u32| MEMORY + 4 * (k as i16 & 0xf);
        if matches!(insn.code, 0x20 | 0x28 | 0x30)
            && let Some(ancillary) = Ancillary::at(k)
        {
            return self.ancillary(REG_A, ancillary, fault);
        }
        match insn.code {
            0x00 => self.emit(ALU | MOV | K, REG_A, 0, 0, k as i32),
            0x20 => self.load(REG_A, 4, Offset::Absolute(k), fault),
            0x28 => self.load(REG_A, 2, Offset::Absolute(k), fault),
            0x30 => self.load(REG_A, 1, Offset::Absolute(k), fault),
            0x40 => self.load(REG_A, 4, Offset::Indirect(k), fault),
            0x48 => self.load(REG_A, 2, Offset::Indirect(k), fault),
            0x50 => self.load(REG_A, 1, Offset::Indirect(k), fault),
            0x80 => self.packet_length(REG_A),
            0x60 => self.emit(LDX | MEM | W, REG_A, R10, memory(k), 0),
            0x01 => self.emit(ALU | MOV | K, REG_X, 0, 0, k as i32),
            0x81 => self.packet_length(REG_X),
            0x61 => self.emit(LDX | MEM | W, REG_X, R10, memory(k), 0),
            0xb1 => {
                self.load(REG_X, 1, Offset::Absolute(k), fault);
                self.emit(ALU | AND | K, REG_X, 0, 0, 0xf);
                self.emit(ALU | LSH | K, REG_X, 0, 0, 2);
            }
            0x02 => self.emit(STX | MEM | W, R10, REG_A, memory(k), 0),
            0x03 => self.emit(STX | MEM | W, R10, REG_X, memory(k), 0),
            0x07 => self.emit(ALU | MOV | X, REG_X, REG_A, 0, 0),
            0x87 => self.emit(ALU | MOV | X, REG_A, REG_X, 0, 0),
            code if code & 0x07 == BPF_ALU => {
                let op = (code & 0xf0) as u8;
                let source = (code & 0x08) as u8;
                if source == X && (code & 0xf0 == BPF_DIV || code & 0xf0 == BPF_MOD) {
                    // Classic BPF rejects the packet on division by zero
                    // (eBPF would yield 0 and go on).
                    self.jump(JMP | JEQ | K, REG_X, 0, 0, fault);
                }
                self.emit_operation(ALU | op, source, k);
            }
            // Validated programs hold nothing else; reject to be safe.
            _ => self.jump(JMP | JA, 0, 0, 0, fault),
        }
    }

    /// `A = A op operand`, the operand being X or k as the classic opcode
    /// says (NEG has none).
    fn emit_operation(&mut self, code: u8, source: u8, k: u32) {
        let (src, imm) = if code & 0xf0 == NEG {
            (0, 0)
        } else {
            operand(source, k)
        };
        self.emit(code | source, REG_A, src, 0, imm);
    }

    fn accept(&mut self, slot: u32, len: Len) {
        let offset = (VERDICTS_CAP_LEN + 4 * slot as usize) as i16;
        let skip = self.label();
        self.emit(LDX | MEM | DW, R1, R10, VERDICTS_POINTER, 0);
        match len {
            Len::Constant(k) => self.emit(ST | MEM | W, R1, 0, offset, k as i32),
            Len::A => {
                self.jump(JMP32 | JEQ | K, REG_A, 0, 0, skip);
                self.emit(STX | MEM | W, R1, REG_A, offset, 0);
            }
        }
        if slot < 31 {
            self.emit(ALU64 | OR | K, REG_MATCHED, 0, 0, 1 << slot);
        } else {
            self.emit(ALU64 | MOV | K, R1, 0, 0, 1);
            self.emit(ALU64 | LSH | K, R1, 0, 0, slot as i32);
            self.emit(ALU64 | OR | X, REG_MATCHED, R1, 0, 0);
        }
        self.bind(skip);
    }
}

/// eBPF's (src register, immediate) for a classic operand, X or k as
/// `source` says; the verifier insists the unused one is 0.
fn operand(source: u8, k: u32) -> (u8, i32) {
    if source == X {
        (REG_X, 0)
    } else {
        (0, k as i32)
    }
}

#[derive(Clone, Copy)]
enum Offset {
    Absolute(u32),
    Indirect(u32),
}

/// Does the next op (past any labels) bind `label`? Then a jump there is a
/// fall-through.
fn falls_through(ir: &Ir, index: usize, label: Label) -> bool {
    for step in &ir.steps[index + 1..] {
        match step.op {
            Op::Bind(bound) if bound == label => return true,
            Op::Bind(_) => {}
            _ => return false,
        }
    }
    false
}

/// Most instructions of a program the kernel loads.
const MAX_PROGRAM: usize = 1_000_000;

/// The whole program: prologue, `ir`, and the tail call to `next`. Long
/// programs are translated whole: jumps too far for 16-bit offsets go
/// through 32-bit ones (found by emitting again until none is left).
pub fn generate(ir: &Ir, hook: Hook, maps: MapFds, next: u32) -> Result<Vec<Insn>, TranslateError> {
    let mut far = HashSet::new();
    loop {
        let (insns, farther) = emit(ir, hook, maps, next, &far);
        if farther.is_empty() {
            if insns.len() > MAX_PROGRAM {
                return Err(TranslateError::TooLarge { insns: insns.len() });
            }
            return Ok(insns);
        }
        far.extend(farther);
    }
}

/// One emission with the conditional jumps in `far` made long; the
/// program, and the conditional jumps found too far for a short offset.
fn emit(
    ir: &Ir,
    hook: Hook,
    maps: MapFds,
    next: u32,
    far: &HashSet<usize>,
) -> (Vec<Insn>, Vec<usize>) {
    debug_assert!(next < pktd_common::jump::ENTRIES && MAX_CLIENTS <= 64);
    let mut emitter = Emitter {
        hook,
        layout: layout(hook),
        insns: Vec::new(),
        bound: vec![None; ir.labels],
        fixups: Vec::new(),
        far: far.clone(),
        jumps: 0,
    };
    let e = &mut emitter;
    // Prologue: R6 = ctx; this CPU's verdicts, kept on the stack.
    e.emit(ALU64 | MOV | X, R6, R1, 0, 0);
    e.emit(ST | MEM | W, R10, 0, HELPER_BUFFER, 0);
    e.emit(ALU64 | MOV | X, R2, R10, 0, 0);
    e.emit(ALU64 | ADD | K, R2, 0, 0, HELPER_BUFFER.into());
    e.load_map_fd(R1, maps.verdicts);
    e.emit(JMP | CALL, 0, 0, 0, HELPER_MAP_LOOKUP);
    let found = e.label();
    e.jump(JMP | JNE | K, R0, 0, 0, found);
    e.exit();
    e.bind(found);
    e.emit(STX | MEM | DW, R10, R0, VERDICTS_POINTER, 0);
    if hook == Hook::Tc {
        e.vlan_prologue();
    }
    e.emit(ALU64 | MOV | K, REG_MATCHED, 0, 0, 0);
    e.emit(ALU64 | MOV | K, REG_A, 0, 0, 0);
    e.emit(ALU64 | MOV | K, REG_X, 0, 0, 0);

    for (index, step) in ir.steps.iter().enumerate() {
        match &step.op {
            Op::Bind(label) => e.bind(*label),
            Op::Exec(insn) => e.exec(insn, step.fault),
            Op::Branch {
                test,
                taken,
                not_taken,
            } => {
                let op = (test.code & 0xf0) as u8;
                let source = (test.code & 0x08) as u8;
                let (src, imm) = operand(source, test.k);
                e.jump(JMP32 | op | source, REG_A, src, imm, *taken);
                if !falls_through(ir, index, *not_taken) {
                    e.jump(JMP | JA, 0, 0, 0, *not_taken);
                }
            }
            Op::Goto(label) => {
                if !falls_through(ir, index, *label) {
                    e.jump(JMP | JA, 0, 0, 0, *label);
                }
            }
            Op::Accept { slot, len } => e.accept(*slot, *len),
            Op::Reset => {
                e.emit(ALU64 | MOV | K, REG_A, 0, 0, 0);
                e.emit(ALU64 | MOV | K, REG_X, 0, 0, 0);
            }
            Op::Save(depth) => {
                let area = SAVE_AREAS - 8 * *depth as i16;
                e.emit(STX | MEM | W, R10, REG_A, area, 0);
                e.emit(STX | MEM | W, R10, REG_X, area + 4, 0);
            }
            Op::Restore(depth) => {
                let area = SAVE_AREAS - 8 * *depth as i16;
                e.emit(LDX | MEM | W, REG_A, R10, area, 0);
                e.emit(LDX | MEM | W, REG_X, R10, area + 4, 0);
            }
        }
    }

    // Epilogue: add the bitmask to those of the programs before this one
    // (the classifier starts each packet at 0), go on to `next`.
    e.emit(LDX | MEM | DW, R1, R10, VERDICTS_POINTER, 0);
    e.emit(LDX | MEM | DW, R2, R1, VERDICTS_MATCHED as i16, 0);
    e.emit(ALU64 | OR | X, REG_MATCHED, R2, 0, 0);
    e.emit(STX | MEM | DW, R1, REG_MATCHED, VERDICTS_MATCHED as i16, 0);
    e.emit(ALU64 | MOV | X, R1, R6, 0, 0);
    e.load_map_fd(R2, maps.jump);
    e.emit(ALU64 | MOV | K, R3, 0, 0, next as i32);
    e.emit(JMP | CALL, 0, 0, 0, HELPER_TAIL_CALL);
    e.exit();

    let Emitter {
        mut insns,
        bound,
        fixups,
        ..
    } = emitter;
    let mut farther = Vec::new();
    for Fixup {
        at,
        target,
        conditional,
    } in fixups
    {
        let target = bound[target].expect("every label is bound");
        let offset = target as isize - at as isize - 1;
        match (i16::try_from(offset), conditional) {
            (Ok(short), _) if insns[at].code != JMP32 | JA => insns[at].off = short,
            (_, Some(ordinal)) => farther.push(ordinal),
            // `ja` too far, or a far jump's `gotol`: a 32-bit offset in imm.
            (_, None) => {
                insns[at].code = JMP32 | JA;
                insns[at].off = 0;
                insns[at].imm = offset as i32;
            }
        }
    }
    (insns, farther)
}

#[cfg(test)]
mod tests;
