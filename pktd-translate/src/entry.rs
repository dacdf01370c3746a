//! The entry program of one attachment: what is attached to an interface.
//!
//! The kernel program is loaded once and shared by every attachment; its
//! verification takes seconds, an attachment must take milliseconds. Each
//! attachment gets instead a few instructions of its own, which write its
//! index into the CPU's [`pktd_common::Verdicts`] (where the shared
//! programs look it up) and tail-call the shared classifier. They verify
//! in microseconds.

use pktd_common::{VERDICTS_ATTACHMENT, jump};

use crate::{
    Hook, MapFds,
    codegen::{
        ADD, ALU64, CALL, DW, EXIT, HELPER_MAP_LOOKUP, HELPER_TAIL_CALL, IMM, Insn, JEQ, JMP, K,
        LD, MEM, MOV, PSEUDO_MAP_FD, R0, R1, R2, R3, R6, R10, ST, W, X,
    },
};

/// Where an entry program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// TC ingress.
    Ingress,
    /// TC egress.
    Egress,
    /// XDP.
    Xdp,
}

impl Entry {
    /// The hook of its program type.
    pub fn hook(self) -> Hook {
        match self {
            Self::Ingress | Self::Egress => Hook::Tc,
            Self::Xdp => Hook::Xdp,
        }
    }
}

/// The entry program of attachment `attachment` at `entry`: `maps.jump` is
/// the program array of the entry's hook. A packet for which the CPU's
/// verdicts cannot be found (never) passes untouched: the classifier would
/// otherwise take it for the previous packet's attachment.
pub fn entry(entry: Entry, attachment: u32, maps: MapFds) -> Vec<Insn> {
    let (target, pass) = match entry {
        Entry::Ingress => (jump::CLASSIFY, -1), // TC_ACT_UNSPEC
        Entry::Egress => (jump::CLASSIFY_EGRESS, -1),
        Entry::Xdp => (jump::CLASSIFY, 2), // XDP_PASS
    };
    let map = |dst: u8, fd: i32| {
        [
            Insn::new(LD | DW | IMM, dst, PSEUDO_MAP_FD, 0, fd),
            Insn::default(),
        ]
    };
    let mut insns = vec![
        Insn::new(ALU64 | MOV | X, R6, R1, 0, 0),
        // The verdicts' key, 0, on the stack.
        Insn::new(ST | MEM | W, R10, 0, -4, 0),
    ];
    insns.extend(map(R1, maps.verdicts));
    insns.extend([
        Insn::new(ALU64 | MOV | X, R2, R10, 0, 0),
        Insn::new(ALU64 | ADD | K, R2, 0, 0, -4),
        Insn::new(JMP | CALL, 0, 0, 0, HELPER_MAP_LOOKUP),
        Insn::new(JMP | JEQ | K, R0, 0, 6, 0),
        Insn::new(
            ST | MEM | W,
            R0,
            0,
            VERDICTS_ATTACHMENT as i16,
            attachment as i32,
        ),
        Insn::new(ALU64 | MOV | X, R1, R6, 0, 0),
    ]);
    insns.extend(map(R2, maps.jump));
    insns.extend([
        Insn::new(ALU64 | MOV | K, R3, 0, 0, target as i32),
        Insn::new(JMP | CALL, 0, 0, 0, HELPER_TAIL_CALL),
        Insn::new(ALU64 | MOV | K, R0, 0, 0, pass),
        Insn::new(JMP | EXIT, 0, 0, 0, 0),
    ]);
    insns
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_lookup_skips_to_the_exit() {
        let maps = MapFds {
            verdicts: 7,
            jump: 8,
        };
        let insns = entry(Entry::Egress, 5, maps);
        let check = insns
            .iter()
            .position(|insn| insn.code == JMP | JEQ | K)
            .unwrap();
        let target = check + 1 + insns[check].off as usize;
        assert_eq!(insns[target].code, ALU64 | MOV | K, "lands on `r0 = pass`");
        assert_eq!(insns[target].imm, -1);
        assert_eq!(insns[target + 1].code, JMP | EXIT);
        let store = &insns[check + 1];
        assert_eq!((store.off as usize, store.imm), (VERDICTS_ATTACHMENT, 5));
        let call = insns
            .iter()
            .rposition(|insn| insn.imm == HELPER_TAIL_CALL)
            .unwrap();
        assert_eq!(insns[call - 1].imm, jump::CLASSIFY_EGRESS as i32);
        assert_eq!(insns[call - 3].regs, R2 | (PSEUDO_MAP_FD << 4));
        assert_eq!(insns[call - 3].imm, 8);
    }
}
