//! A reference interpreter with the Linux kernel's classic-BPF semantics,
//! used as the oracle for pktd's eBPF evaluator in tests.

use crate::opcodes::*;
use crate::validate::ValidProgram;

/// Run `program` on a packet the way the kernel runs a socket filter.
///
/// `packet` is the bytes available to loads; `wire_len` is what
/// `ld #pktlen` / `ldx #pktlen` see. Returns the filter's return value:
/// 0 rejects the packet, anything else is the capture length limit.
///
/// Semantics, following the kernel's translation of classic BPF to eBPF:
/// A, X and M\[0..16\] start at 0; arithmetic wraps at 32 bits; a load
/// outside the packet, and a division or modulo by X = 0, end the program
/// with 0; shifts by X use X & 31; jumps are unsigned comparisons.
/// Never panics: a [`ValidProgram`] has its jumps, memory indexes and final
/// return checked, and anything else is bounds-checked here.
pub fn interpret(program: &ValidProgram, packet: &[u8], wire_len: u32) -> u32 {
    interpret_with(program, packet, wire_len, &Metadata::default())
}

/// What the kernel knows of a packet besides its bytes, as the supported
/// ancillary loads ([`Ancillary`]) read it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metadata {
    /// The EtherType the skb carries, host order.
    pub protocol: u16,
    /// PACKET_HOST (0), _BROADCAST (1), _MULTICAST (2), _OTHERHOST (3) or
    /// _OUTGOING (4).
    pub packet_type: u8,
    /// The interface's index.
    pub ifindex: u32,
    /// The TCI of a VLAN tag held in metadata.
    pub vlan: Option<u16>,
}

impl Metadata {
    fn get(&self, ancillary: Ancillary) -> u32 {
        match ancillary {
            Ancillary::Protocol => u32::from(self.protocol),
            Ancillary::PacketType => u32::from(self.packet_type),
            Ancillary::Ifindex => self.ifindex,
            Ancillary::VlanTag => u32::from(self.vlan.unwrap_or(0)),
            Ancillary::VlanTagPresent => u32::from(self.vlan.is_some()),
        }
    }
}

/// [`interpret`] with the packet's metadata, for the ancillary loads: an
/// absolute load at a supported `SKF_AD_*` offset reads `metadata`
/// whatever its size, as the kernel's does.
pub fn interpret_with(
    program: &ValidProgram,
    packet: &[u8],
    wire_len: u32,
    metadata: &Metadata,
) -> u32 {
    let insns = program.insns();
    let mut a: u32 = 0;
    let mut x: u32 = 0;
    let mut mem = [0u32; BPF_MEMWORDS as usize];
    let mut pc: usize = 0;
    // Each step moves pc forward (jumps are forward only), so this ends.
    while let Some(insn) = insns.get(pc) {
        let k = insn.k;
        let operand = if src(insn.code) == BPF_X { x } else { k };
        pc += 1;
        match class(insn.code) {
            BPF_RET => return if rval(insn.code) == BPF_A { a } else { k },
            BPF_LD => match mode(insn.code) {
                BPF_IMM => a = k,
                BPF_MEM => a = mem[(k % BPF_MEMWORDS) as usize],
                BPF_LEN => a = wire_len,
                BPF_ABS => match Ancillary::at(k) {
                    Some(ancillary) => a = metadata.get(ancillary),
                    None => match load(packet, k, size(insn.code)) {
                        Some(v) => a = v,
                        None => return 0,
                    },
                },
                BPF_IND => match load(packet, x.wrapping_add(k), size(insn.code)) {
                    Some(v) => a = v,
                    None => return 0,
                },
                _ => return 0,
            },
            BPF_LDX => match mode(insn.code) {
                BPF_IMM => x = k,
                BPF_MEM => x = mem[(k % BPF_MEMWORDS) as usize],
                BPF_LEN => x = wire_len,
                BPF_MSH => match load(packet, k, BPF_B) {
                    Some(v) => x = (v & 0xf) << 2,
                    None => return 0,
                },
                _ => return 0,
            },
            // `% BPF_MEMWORDS` never changes a validated index; it only
            // keeps indexing total.
            BPF_ST => mem[(k % BPF_MEMWORDS) as usize] = a,
            BPF_STX => mem[(k % BPF_MEMWORDS) as usize] = x,
            BPF_ALU => {
                a = match op(insn.code) {
                    BPF_ADD => a.wrapping_add(operand),
                    BPF_SUB => a.wrapping_sub(operand),
                    BPF_MUL => a.wrapping_mul(operand),
                    BPF_DIV => match a.checked_div(operand) {
                        Some(v) => v,
                        None => return 0,
                    },
                    BPF_MOD => match a.checked_rem(operand) {
                        Some(v) => v,
                        None => return 0,
                    },
                    BPF_AND => a & operand,
                    BPF_OR => a | operand,
                    BPF_XOR => a ^ operand,
                    BPF_LSH => a << (operand & 31),
                    BPF_RSH => a >> (operand & 31),
                    BPF_NEG => a.wrapping_neg(),
                    _ => return 0,
                }
            }
            BPF_JMP => {
                let offset = match op(insn.code) {
                    BPF_JA => k as usize,
                    cond => {
                        let taken = match cond {
                            BPF_JEQ => a == operand,
                            BPF_JGT => a > operand,
                            BPF_JGE => a >= operand,
                            BPF_JSET => a & operand != 0,
                            _ => return 0,
                        };
                        usize::from(if taken { insn.jt } else { insn.jf })
                    }
                };
                pc = pc.saturating_add(offset);
            }
            BPF_MISC => {
                if miscop(insn.code) == BPF_TXA {
                    a = x;
                } else {
                    x = a;
                }
            }
            _ => return 0,
        }
    }
    // Unreachable for a valid program (it ends in a return); reject.
    0
}

/// A big-endian load of `size` (BPF_W/H/B) bytes at `offset`, or None when
/// the offset is negative as i32 (a header-relative offset in the kernel,
/// refused by the validator) or the bytes are not all in the packet.
fn load(packet: &[u8], offset: u32, size: u16) -> Option<u32> {
    if (offset as i32) < 0 {
        return None;
    }
    let width = match size {
        BPF_W => 4,
        BPF_H => 2,
        _ => 1,
    };
    let start = offset as usize;
    let bytes = packet.get(start..start.checked_add(width)?)?;
    Some(bytes.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CbpfInsn, validate};

    fn run(insns: &[CbpfInsn], packet: &[u8]) -> u32 {
        let program = validate(insns).unwrap_or_else(|e| panic!("test program invalid: {e}"));
        interpret(&program, packet, packet.len() as u32)
    }

    const RET_A: CbpfInsn = CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0);

    #[test]
    fn loads_are_big_endian_and_bounds_checked() {
        let packet = [0x12, 0x34, 0x56, 0x78, 0x9a];
        let ld = |code: u16, k| run(&[CbpfInsn::new(code, 0, 0, k), RET_A], &packet);
        assert_eq!(ld(BPF_LD | BPF_W | BPF_ABS, 1), 0x3456_789a, "word at 1");
        assert_eq!(ld(BPF_LD | BPF_H | BPF_ABS, 3), 0x789a, "half at 3");
        assert_eq!(ld(BPF_LD | BPF_B | BPF_ABS, 4), 0x9a, "byte at 4");
        assert_eq!(ld(BPF_LD | BPF_W | BPF_ABS, 2), 0, "word past the end");
        assert_eq!(ld(BPF_LD | BPF_B | BPF_ABS, 5), 0, "byte past the end");
        assert_eq!(
            ld(BPF_LDX | BPF_B | BPF_MSH, 0),
            0,
            "msh result is in X, A stays 0"
        );
        let msh = run(
            &[
                CbpfInsn::new(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 4),
                CbpfInsn::new(BPF_MISC | BPF_TXA, 0, 0, 0),
                RET_A,
            ],
            &packet,
        );
        assert_eq!(msh, (0x9a & 0xf) << 2, "4*([4]&0xf)");
    }

    #[test]
    fn indirect_offsets_wrap_and_negative_rejects() {
        let packet = [1, 2, 3, 4];
        let ind = |x: u32, k: u32| {
            run(
                &[
                    CbpfInsn::new(BPF_LDX | BPF_IMM, 0, 0, x),
                    CbpfInsn::new(BPF_LD | BPF_B | BPF_IND, 0, 0, k),
                    CbpfInsn::new(BPF_ALU | BPF_ADD | BPF_K, 0, 0, 100),
                    RET_A,
                ],
                &packet,
            )
        };
        assert_eq!(ind(1, 2), 104, "X + k = 3");
        assert_eq!(ind(0xffff_fffe, 3), 102, "X + k wraps to 1");
        assert_eq!(ind(0x8000_0000, 0), 0, "negative offset rejects");
        assert_eq!(ind(4, 0), 0, "offset past the end rejects");
    }

    #[test]
    fn alu_semantics() {
        let alu = |a: u32, code: u16, x: u32, k: u32| {
            run(
                &[
                    CbpfInsn::new(BPF_LD | BPF_IMM, 0, 0, a),
                    CbpfInsn::new(BPF_LDX | BPF_IMM, 0, 0, x),
                    CbpfInsn::new(code, 0, 0, k),
                    RET_A,
                ],
                &[],
            )
        };
        assert_eq!(
            alu(5, BPF_ALU | BPF_SUB | BPF_K, 0, 6),
            u32::MAX,
            "wrapping sub"
        );
        assert_eq!(
            alu(7, BPF_ALU | BPF_DIV | BPF_X, 0, 0),
            0,
            "div by X = 0 ends with 0"
        );
        assert_eq!(
            alu(7, BPF_ALU | BPF_MOD | BPF_X, 0, 0),
            0,
            "mod by X = 0 ends with 0"
        );
        assert_eq!(alu(7, BPF_ALU | BPF_MOD | BPF_X, 4, 0), 3, "7 % 4");
        assert_eq!(
            alu(1, BPF_ALU | BPF_LSH | BPF_X, 33, 0),
            2,
            "shift count masked to 1"
        );
        assert_eq!(
            alu(4, BPF_ALU | BPF_RSH | BPF_X, 34, 0),
            1,
            "shift count masked to 2"
        );
        assert_eq!(alu(1, BPF_ALU | BPF_NEG, 0, 0), u32::MAX, "neg 1");
        assert_eq!(alu(0xf0, BPF_ALU | BPF_XOR | BPF_K, 0, 0xff), 0x0f, "xor");
    }

    #[test]
    fn jumps_memory_and_returns() {
        let program = [
            CbpfInsn::new(BPF_LD | BPF_W | BPF_LEN, 0, 0, 0),
            CbpfInsn::new(BPF_ST, 0, 0, 3),
            CbpfInsn::new(BPF_JMP | BPF_JGT | BPF_K, 0, 1, 10),
            CbpfInsn::new(BPF_JMP | BPF_JA, 0, 0, 1),
            CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 0),
            CbpfInsn::new(BPF_LDX | BPF_MEM, 0, 0, 3),
            CbpfInsn::new(BPF_MISC | BPF_TXA, 0, 0, 0),
            RET_A,
        ];
        let valid = validate(&program).unwrap_or_else(|e| panic!("program invalid: {e}"));
        assert_eq!(interpret(&valid, &[], 11), 11, "len 11 > 10 returns len");
        assert_eq!(interpret(&valid, &[], 10), 0, "len 10 is not > 10");
    }

    #[test]
    fn inbound_outbound_and_ifindex_read_the_packets_metadata() {
        let frame = [0u8; 60];
        let host = Metadata {
            protocol: 0x0800,
            packet_type: 0,
            ifindex: 7,
            vlan: None,
        };
        let outgoing = Metadata {
            packet_type: 4,
            ..host
        };
        for (expression, on_host, on_outgoing) in [
            ("inbound", true, false),
            ("outbound", false, true),
            ("ifindex 7", true, true),
            ("ifindex 8", false, false),
        ] {
            let program = crate::compile(expression, true, 262_144).expect(expression);
            assert_eq!(
                interpret_with(&program, &frame, 60, &host) != 0,
                on_host,
                "{expression} on a received packet"
            );
            assert_eq!(
                interpret_with(&program, &frame, 60, &outgoing) != 0,
                on_outgoing,
                "{expression} on a sent packet"
            );
        }
    }

    #[test]
    fn unsupported_ancillary_loads_are_still_refused() {
        use crate::{CbpfInsn, FilterError, Rule};
        for offset in [12, 16, 56, 60] {
            let program = [
                CbpfInsn::new(BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_AD_OFF + offset),
                CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0),
            ];
            assert!(
                matches!(
                    crate::validate(&program),
                    Err(FilterError::Invalid {
                        rule: Rule::AncillaryLoad,
                        ..
                    })
                ),
                "SKF_AD_OFF + {offset}"
            );
        }
    }
}
