//! A tiny classic-BPF assembler: forward jumps to labels, resolved at
//! the end. For the programs pktd writes itself (the header prologue, the
//! anonymization guard).

use crate::{
    CbpfInsn,
    opcodes::{BPF_JA, BPF_JMP},
    window::class,
};

/// A jump's target: the next instruction or a label.
#[derive(Clone, Copy)]
pub(crate) enum To<L> {
    Next,
    At(L),
}

/// A tiny assembler: forward jumps to labels, resolved at the end.
pub(crate) struct Asm<L> {
    items: Vec<(CbpfInsn, To<L>, To<L>)>,
    labels: Vec<(L, usize)>,
}

impl<L> Default for Asm<L> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            labels: Vec::new(),
        }
    }
}

impl<L: Copy + PartialEq + std::fmt::Debug> Asm<L> {
    pub fn op(&mut self, code: u16, k: u32) {
        self.items.push((insn(code, 0, 0, k), To::Next, To::Next));
    }

    pub fn jump(&mut self, code: u16, k: u32, jt: To<L>, jf: To<L>) {
        self.items.push((insn(BPF_JMP | code, 0, 0, k), jt, jf));
    }

    pub fn goto(&mut self, label: L) {
        self.items
            .push((insn(BPF_JMP | BPF_JA, 0, 0, 0), To::At(label), To::Next));
    }

    pub fn label(&mut self, label: L) {
        self.labels.push((label, self.items.len()));
    }

    /// The instructions; panics on a label used but not placed or a
    /// conditional jump too far (both bugs in pktd's own programs, which
    /// tests build).
    pub fn finish(self) -> Vec<CbpfInsn> {
        let at = |label: L| {
            self.labels
                .iter()
                .find(|(placed, _)| *placed == label)
                .map(|(_, at)| *at)
                .unwrap_or_else(|| panic!("label {label:?} not placed"))
        };
        let offset = |pc: usize, to: To<L>| match to {
            To::Next => 0,
            To::At(label) => at(label) - pc - 1,
        };
        self.items
            .iter()
            .enumerate()
            .map(|(pc, (insn, jt, jf))| {
                let mut insn = *insn;
                if insn.code == BPF_JMP | BPF_JA {
                    insn.k = offset(pc, *jt) as u32;
                } else if class(insn.code) == BPF_JMP {
                    insn.jt = u8::try_from(offset(pc, *jt))
                        .expect("a jump of pktd's own program in range");
                    insn.jf = u8::try_from(offset(pc, *jf))
                        .expect("a jump of pktd's own program in range");
                }
                insn
            })
            .collect()
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> CbpfInsn {
    CbpfInsn::new(code, jt, jf, k)
}
