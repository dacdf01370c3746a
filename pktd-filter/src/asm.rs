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
    /// Past the next instruction.
    Over,
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

    /// A conditional jump. A label target goes through an unconditional
    /// `ja` right after it (32-bit offsets), so that no program of pktd's
    /// own outgrows the 8-bit offsets of conditional jumps: a true label
    /// target is the `ja` next to the jump, a false one the `ja` after it.
    pub fn jump(&mut self, code: u16, k: u32, jt: To<L>, jf: To<L>) {
        let code = BPF_JMP | code;
        match (jt, jf) {
            (To::At(taken), To::At(not_taken)) => {
                self.items.push((insn(code, 0, 0, k), To::Next, To::Over));
                self.goto(taken);
                self.goto(not_taken);
            }
            (To::At(taken), not_taken) => {
                let not_taken = match not_taken {
                    To::Next => To::Over,
                    _ => panic!("a false target past the next instruction needs a label"),
                };
                self.items.push((insn(code, 0, 0, k), To::Next, not_taken));
                self.goto(taken);
            }
            (taken, To::At(not_taken)) => {
                let taken = match taken {
                    To::Next => To::Over,
                    _ => panic!("a true target past the next instruction needs a label"),
                };
                self.items.push((insn(code, 0, 0, k), taken, To::Next));
                self.goto(not_taken);
            }
            (taken, not_taken) => self.items.push((insn(code, 0, 0, k), taken, not_taken)),
        }
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
            To::Over => 1,
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
