//! The validator: the Linux kernel's classic-BPF checks (net/core/filter.c:
//! `bpf_check_basics`, `chk_code_allowed`, `bpf_check_classic`,
//! `check_load_and_stores`) replicated rule for rule and in the kernel's
//! order, plus pktd's refusal of ancillary and negative-offset loads.

use pktd_common::CbpfInsn;

use crate::error::{FilterError, Rule};
use crate::opcodes::*;

/// A classic-BPF program that passed [`validate`]. Only constructible
/// through [`validate`] (and [`crate::compile`], which calls it), so holding
/// one proves the kernel would accept the program and that pktd can run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidProgram {
    insns: Vec<CbpfInsn>,
}

impl ValidProgram {
    /// The instructions.
    pub fn insns(&self) -> &[CbpfInsn] {
        &self.insns
    }

    /// Number of instructions (1 to 4096).
    pub fn len(&self) -> usize {
        self.insns.len()
    }

    /// Always false: a valid program has at least one instruction. Present
    /// because a `len` without it surprises readers (and clippy).
    pub fn is_empty(&self) -> bool {
        self.insns.is_empty()
    }
}

/// Check `insns` against the kernel's classic-BPF rules and pktd's two extra
/// ones; on success the program is safe to hand to the kernel (it would pass
/// `SO_ATTACH_FILTER`) and to [`crate::interpret`].
///
/// The first broken rule is reported the way the kernel finds it: the length,
/// then per-instruction rules in program order, then the final return, then
/// the scratch-memory data flow.
pub fn validate(insns: &[CbpfInsn]) -> Result<ValidProgram, FilterError> {
    check(insns, Strictness::Pktd)?;
    Ok(ValidProgram {
        insns: insns.to_vec(),
    })
}

/// Which loads [`check`] lets through.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strictness {
    /// Any load offset: pktd's two rules (and the kernel's list of known
    /// ancillary offsets) are skipped. Enough for libpcap's interpreter,
    /// which treats such offsets as ordinary, out-of-range ones.
    AnyLoadOffset,
    /// The kernel's checks plus pktd's two.
    Pktd,
}

/// The checks behind [`validate`], with pktd's extra rules optional.
pub(crate) fn check(insns: &[CbpfInsn], strictness: Strictness) -> Result<(), FilterError> {
    let len = insns.len();
    // bpf_check_basics.
    if len == 0 || len > BPF_MAXINSNS {
        return Err(FilterError::Length { len });
    }
    for (pc, insn) in insns.iter().enumerate() {
        if let Some(rule) = check_insn(insns.len(), pc, insn, strictness) {
            return Err(invalid(pc, insn, rule));
        }
    }
    let last = insns[len - 1];
    if last.code != BPF_RET | BPF_K && last.code != BPF_RET | BPF_A {
        return Err(invalid(len - 1, &last, Rule::LastNotReturn));
    }
    check_load_and_stores(insns)
}

fn invalid(index: usize, insn: &CbpfInsn, rule: Rule) -> FilterError {
    FilterError::Invalid {
        index,
        insn: *insn,
        rule,
    }
}

/// The per-instruction part of `bpf_check_classic`, plus our load rules.
fn check_insn(len: usize, pc: usize, insn: &CbpfInsn, strictness: Strictness) -> Option<Rule> {
    if !is_allowed(insn.code) {
        return Some(Rule::UnknownOpcode);
    }
    let k = insn.k;
    // The kernel computes in int / unsigned int; with len <= 4096 and
    // jt, jf <= 255 none of these can overflow in usize/u64.
    match insn.code {
        c if c == BPF_ALU | BPF_DIV | BPF_K || c == BPF_ALU | BPF_MOD | BPF_K => {
            (k == 0).then_some(Rule::DivisionByZero)
        }
        c if c == BPF_ALU | BPF_LSH | BPF_K || c == BPF_ALU | BPF_RSH | BPF_K => {
            (k >= 32).then_some(Rule::ShiftTooLarge)
        }
        c if c == BPF_LD | BPF_MEM || c == BPF_LDX | BPF_MEM || c == BPF_ST || c == BPF_STX => {
            (k >= BPF_MEMWORDS).then_some(Rule::MemoryIndexOutOfRange)
        }
        c if c == BPF_JMP | BPF_JA => {
            (u64::from(k) >= (len - pc - 1) as u64).then_some(Rule::JumpOutOfRange)
        }
        c if is_conditional_jump(c) => {
            let out = |off: u8| pc + usize::from(off) + 1 >= len;
            (out(insn.jt) || out(insn.jf)).then_some(Rule::JumpOutOfRange)
        }
        _ if strictness == Strictness::AnyLoadOffset => None,
        // Only loads have a mode: in other classes the same bits are an
        // ALU or jump operation, hence the class test.
        c if is_load(c) && mode(c) == BPF_ABS && k >= SKF_AD_OFF => {
            // The kernel's only ancillary loads are LD ABS; pktd offers
            // those `inbound`, `outbound`, `ifindex N`, the protocol and
            // VLAN extensions need.
            (class(c) != BPF_LD || Ancillary::at(k).is_none()).then_some(Rule::AncillaryLoad)
        }
        // MSH is an absolute byte load too, and the kernel gives it the same
        // header-relative meaning for negative k, so it is refused with ABS
        // and IND.
        c if is_load(c) && matches!(mode(c), BPF_ABS | BPF_IND | BPF_MSH) && (k as i32) < 0 => {
            Some(Rule::NegativeOffset)
        }
        _ => None,
    }
}

/// Whether `code` is of a load class (LD or LDX).
fn is_load(code: u16) -> bool {
    matches!(class(code), BPF_LD | BPF_LDX)
}

/// `check_load_and_stores`: a forward pass tracking which scratch cells
/// are written on every path into each instruction. Deliberately the
/// kernel's exact (and imprecise) algorithm, so that we accept and refuse
/// the same programs: a jump resets the running mask to "all written",
/// relying on the masks merged into its targets, while a `ret` does not.
fn check_load_and_stores(insns: &[CbpfInsn]) -> Result<(), FilterError> {
    let mut masks = vec![0xffff_u16; insns.len()];
    let mut memvalid: u16 = 0;
    for (pc, insn) in insns.iter().enumerate() {
        memvalid &= masks[pc];
        // k < 16 for every memory instruction (checked above), and jump
        // targets are in range, so the shifts and indexes below are sound.
        match insn.code {
            c if c == BPF_ST || c == BPF_STX => memvalid |= 1 << insn.k,
            c if (c == BPF_LD | BPF_MEM || c == BPF_LDX | BPF_MEM)
                && memvalid & (1 << insn.k) == 0 =>
            {
                return Err(invalid(pc, insn, Rule::UninitializedMemoryRead));
            }
            c if c == BPF_JMP | BPF_JA => {
                masks[pc + 1 + insn.k as usize] &= memvalid;
                memvalid = 0xffff;
            }
            c if is_conditional_jump(c) => {
                masks[pc + 1 + usize::from(insn.jt)] &= memvalid;
                masks[pc + 1 + usize::from(insn.jf)] &= memvalid;
                memvalid = 0xffff;
            }
            _ => {}
        }
    }
    Ok(())
}
