//! Classic-BPF opcode constants (the values of `<linux/filter.h>` and
//! `<linux/bpf_common.h>`) and helpers that take an opcode apart.
//!
//! An opcode is `class | size | mode` for loads, `class | op | src` for ALU
//! operations and jumps, `class | rval` for returns and `class | miscop` for
//! the register moves.

// Instruction classes (the low three bits).
/// Load into A.
pub const BPF_LD: u16 = 0x00;
/// Load into X.
pub const BPF_LDX: u16 = 0x01;
/// Store A into scratch memory.
pub const BPF_ST: u16 = 0x02;
/// Store X into scratch memory.
pub const BPF_STX: u16 = 0x03;
/// Arithmetic and logic on A.
pub const BPF_ALU: u16 = 0x04;
/// Jumps.
pub const BPF_JMP: u16 = 0x05;
/// Return (end the program).
pub const BPF_RET: u16 = 0x06;
/// Register moves (TAX, TXA).
pub const BPF_MISC: u16 = 0x07;

// Load sizes.
/// 32-bit word.
pub const BPF_W: u16 = 0x00;
/// 16-bit half word.
pub const BPF_H: u16 = 0x08;
/// Byte.
pub const BPF_B: u16 = 0x10;

// Load modes.
/// Immediate: the constant `k`.
pub const BPF_IMM: u16 = 0x00;
/// Packet bytes at offset `k`.
pub const BPF_ABS: u16 = 0x20;
/// Packet bytes at offset `X + k`.
pub const BPF_IND: u16 = 0x40;
/// Scratch memory cell `M[k]`.
pub const BPF_MEM: u16 = 0x60;
/// The packet's length on the wire.
pub const BPF_LEN: u16 = 0x80;
/// `4 * (P[k] & 0xf)`: the IPv4 header length (LDX only).
pub const BPF_MSH: u16 = 0xa0;

// ALU and jump operations.
/// `A + operand`.
pub const BPF_ADD: u16 = 0x00;
/// `A - operand`.
pub const BPF_SUB: u16 = 0x10;
/// `A * operand`.
pub const BPF_MUL: u16 = 0x20;
/// `A / operand`.
pub const BPF_DIV: u16 = 0x30;
/// `A | operand`.
pub const BPF_OR: u16 = 0x40;
/// `A & operand`.
pub const BPF_AND: u16 = 0x50;
/// `A << operand`.
pub const BPF_LSH: u16 = 0x60;
/// `A >> operand`.
pub const BPF_RSH: u16 = 0x70;
/// `-A`.
pub const BPF_NEG: u16 = 0x80;
/// `A % operand`.
pub const BPF_MOD: u16 = 0x90;
/// `A ^ operand`.
pub const BPF_XOR: u16 = 0xa0;

/// Unconditional jump by `k`.
pub const BPF_JA: u16 = 0x00;
/// Jump if `A == operand`.
pub const BPF_JEQ: u16 = 0x10;
/// Jump if `A > operand` (unsigned).
pub const BPF_JGT: u16 = 0x20;
/// Jump if `A >= operand` (unsigned).
pub const BPF_JGE: u16 = 0x30;
/// Jump if `A & operand != 0`.
pub const BPF_JSET: u16 = 0x40;

// Operand sources.
/// The operand is the constant `k`.
pub const BPF_K: u16 = 0x00;
/// The operand is register X.
pub const BPF_X: u16 = 0x08;

// Return values.
/// Return register A.
pub const BPF_A: u16 = 0x10;

// Miscellaneous operations.
/// `X = A`.
pub const BPF_TAX: u16 = 0x00;
/// `A = X`.
pub const BPF_TXA: u16 = 0x80;

/// Number of scratch memory cells (`BPF_MEMWORDS`).
pub const BPF_MEMWORDS: u32 = 16;
/// Most instructions the kernel accepts in one program (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// Start of the Linux ancillary-data offsets (`SKF_AD_OFF`, -0x1000 as u32).
pub const SKF_AD_OFF: u32 = 0xffff_f000;
/// Start of the Linux network-header-relative offsets (`SKF_NET_OFF`, -0x100000).
pub const SKF_NET_OFF: u32 = 0xfff0_0000;
/// Start of the Linux link-layer-relative offsets (`SKF_LL_OFF`, -0x200000).
pub const SKF_LL_OFF: u32 = 0xffe0_0000;
/// One past the last ancillary-data index (`SKF_AD_MAX`).
pub const SKF_AD_MAX: u32 = 64;

/// The Linux ancillary loads pktd supports: what `inbound`, `outbound`
/// and `ifindex N` compile to, and the protocol and VLAN extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ancillary {
    /// `SKF_AD_PROTOCOL`: the skb's protocol (EtherType), host order.
    Protocol,
    /// `SKF_AD_PKTTYPE`: PACKET_HOST, _BROADCAST, _MULTICAST,
    /// _OTHERHOST or _OUTGOING.
    PacketType,
    /// `SKF_AD_IFINDEX`: the interface's index.
    Ifindex,
    /// `SKF_AD_VLAN_TAG`: the TCI of a tag held in metadata.
    VlanTag,
    /// `SKF_AD_VLAN_TAG_PRESENT`: 1 with such a tag.
    VlanTagPresent,
}

impl Ancillary {
    /// The extension an absolute load at `k` reads, if pktd supports it.
    pub const fn at(k: u32) -> Option<Self> {
        match k.wrapping_sub(SKF_AD_OFF) {
            0 => Some(Self::Protocol),
            4 => Some(Self::PacketType),
            8 => Some(Self::Ifindex),
            44 => Some(Self::VlanTag),
            48 => Some(Self::VlanTagPresent),
            _ => None,
        }
    }

    /// How many bytes at the start of the frame (as on the wire) tell
    /// what this load reads, for the passes that confine a program to a
    /// part of the frame: the packet type follows from the destination
    /// MAC (and the direction), the tag's presence from the TPID, the tag
    /// from the TCI, the protocol from the EtherType past a tag and, for
    /// an 802.3 length there, from the two bytes after it (0xffff makes
    /// it ETH_P_802_3, anything else ETH_P_802_2); the ifindex from none.
    pub const fn reach(self) -> u32 {
        match self {
            Self::Ifindex => 0,
            Self::PacketType => 6,
            Self::VlanTagPresent => 14,
            Self::VlanTag => 16,
            Self::Protocol => 20,
        }
    }
}

/// The instruction class (`BPF_CLASS`).
pub const fn class(code: u16) -> u16 {
    code & 0x07
}

/// The load size (`BPF_SIZE`).
pub const fn size(code: u16) -> u16 {
    code & 0x18
}

/// The load mode (`BPF_MODE`).
pub const fn mode(code: u16) -> u16 {
    code & 0xe0
}

/// The ALU or jump operation (`BPF_OP`).
pub const fn op(code: u16) -> u16 {
    code & 0xf0
}

/// The operand source, [`BPF_K`] or [`BPF_X`] (`BPF_SRC`).
pub const fn src(code: u16) -> u16 {
    code & 0x08
}

/// The return value source, [`BPF_K`], [`BPF_X`] or [`BPF_A`] (`BPF_RVAL`).
pub const fn rval(code: u16) -> u16 {
    code & 0x18
}

/// The miscellaneous operation, [`BPF_TAX`] or [`BPF_TXA`] (`BPF_MISCOP`).
pub const fn miscop(code: u16) -> u16 {
    code & 0xf8
}

/// Every opcode the Linux kernel accepts in a classic program (the table of
/// `chk_code_allowed` in net/core/filter.c), in ascending order. The whole
/// 16-bit value counts: bits the classic format does not use must be zero.
pub const ALLOWED: [u16; 49] = {
    let mut out = [0u16; 49];
    let mut n = 0;
    // ALU with both operand sources, except NEG which takes none.
    let ops = [
        BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_MOD, BPF_AND, BPF_OR, BPF_XOR, BPF_LSH, BPF_RSH,
    ];
    let mut i = 0;
    while i < ops.len() {
        out[n] = BPF_ALU | ops[i] | BPF_K;
        out[n + 1] = BPF_ALU | ops[i] | BPF_X;
        n += 2;
        i += 1;
    }
    let jumps = [BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JSET];
    let mut i = 0;
    while i < jumps.len() {
        out[n] = BPF_JMP | jumps[i] | BPF_K;
        out[n + 1] = BPF_JMP | jumps[i] | BPF_X;
        n += 2;
        i += 1;
    }
    let single = [
        BPF_ALU | BPF_NEG,
        BPF_LD | BPF_W | BPF_ABS,
        BPF_LD | BPF_H | BPF_ABS,
        BPF_LD | BPF_B | BPF_ABS,
        BPF_LD | BPF_W | BPF_LEN,
        BPF_LD | BPF_W | BPF_IND,
        BPF_LD | BPF_H | BPF_IND,
        BPF_LD | BPF_B | BPF_IND,
        BPF_LD | BPF_IMM,
        BPF_LD | BPF_MEM,
        BPF_LDX | BPF_W | BPF_LEN,
        BPF_LDX | BPF_B | BPF_MSH,
        BPF_LDX | BPF_IMM,
        BPF_LDX | BPF_MEM,
        BPF_ST,
        BPF_STX,
        BPF_MISC | BPF_TAX,
        BPF_MISC | BPF_TXA,
        BPF_RET | BPF_K,
        BPF_RET | BPF_A,
        BPF_JMP | BPF_JA,
    ];
    let mut i = 0;
    while i < single.len() {
        out[n] = single[i];
        n += 1;
        i += 1;
    }
    assert!(n == out.len());
    // Sort so that membership can use a binary search.
    let mut a = 0;
    while a < out.len() {
        let mut b = a + 1;
        while b < out.len() {
            if out[b] < out[a] {
                let t = out[a];
                out[a] = out[b];
                out[b] = t;
            }
            b += 1;
        }
        a += 1;
    }
    out
};

/// Whether the kernel's opcode allowlist contains `code` (`chk_code_allowed`).
pub fn is_allowed(code: u16) -> bool {
    ALLOWED.binary_search(&code).is_ok()
}

/// Whether `code` is a conditional jump (JEQ, JGT, JGE, JSET with K or X).
pub fn is_conditional_jump(code: u16) -> bool {
    is_allowed(code) && class(code) == BPF_JMP && op(code) != BPF_JA
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_table_is_sorted_and_unique() {
        assert!(
            ALLOWED.windows(2).all(|w| w[0] < w[1]),
            "ALLOWED must be strictly ascending: {ALLOWED:x?}"
        );
    }

    #[test]
    fn helpers_split_known_codes() {
        let code = BPF_LD | BPF_H | BPF_ABS;
        assert_eq!(code, 0x28, "ldh [k] is 0x28");
        assert_eq!(class(code), BPF_LD, "class of 0x28");
        assert_eq!(size(code), BPF_H, "size of 0x28");
        assert_eq!(mode(code), BPF_ABS, "mode of 0x28");
        let jeq = BPF_JMP | BPF_JEQ | BPF_X;
        assert_eq!((op(jeq), src(jeq)), (BPF_JEQ, BPF_X), "jeq x parts");
        assert_eq!(BPF_RET | BPF_A, 0x16, "ret a is 0x16");
        assert_eq!(BPF_MISC | BPF_TXA, 0x87, "txa is 0x87");
        assert!(is_conditional_jump(0x15), "jeq #k is conditional");
        assert!(!is_conditional_jump(0x05), "ja is unconditional");
    }
}
