//! The crate's one error type and the names of the validation rules.

use std::fmt;

use pktd_common::CbpfInsn;

/// Everything that can go wrong compiling, parsing or validating a filter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FilterError {
    /// libpcap could not compile a tcpdump expression.
    #[error("cannot compile filter expression {expression:?}: {message}")]
    Compile {
        /// The expression as given.
        expression: String,
        /// libpcap's explanation (`pcap_geterr`).
        message: String,
    },

    /// A program could not be confined to a principal's window.
    #[error("the filter cannot be confined to the policy's snap length: {reason}")]
    Confine {
        /// Why.
        reason: String,
    },

    /// An anonymized principal's filter reads what the principal does not
    /// see as it is.
    #[error(
        "instruction {index} of the filter {reason}; this principal's packets are \
         anonymized, and its filter may test addresses only with host and net \
         (written with the addresses it sees)"
    )]
    Anonymized {
        /// The instruction, from 0.
        index: usize,
        /// What it does.
        reason: String,
    },

    /// A program written for the kernel's view of a frame (it reads the
    /// VLAN metadata) cannot be run on pktd's, which keeps the tag in the
    /// frame.
    #[error(
        "instruction {index} of the filter {reason}; a program that reads the VLAN \
         metadata (vlan_avail, vlan_tci) is run on the frame as on an AF_PACKET socket, \
         its loads past the MAC addresses moved past the tag"
    )]
    KernelView {
        /// The instruction, from 0.
        index: usize,
        /// What it does.
        reason: String,
    },

    /// A textual program (`tcpdump -ddd` form) is malformed.
    #[error("line {line}: {message}")]
    Parse {
        /// 1-based line (or, in the one-line comma form, 1-based item) where
        /// the problem is.
        line: usize,
        /// What is wrong there.
        message: String,
    },

    /// A binary program is not a whole number of 8-byte instructions.
    #[error("a binary program is a multiple of 8 bytes long, this one has {len} bytes")]
    Binary {
        /// Its length in bytes.
        len: usize,
    },

    /// The program is empty or longer than the kernel allows.
    #[error(
        "a program has 1 to {max} instructions, this one has {len}",
        max = crate::opcodes::BPF_MAXINSNS
    )]
    Length {
        /// Its number of instructions.
        len: usize,
    },

    /// One instruction breaks a validation rule.
    #[error(
        "instruction {index} (code {code:#x} jt {jt} jf {jf} k {k:#x}): {rule}",
        code = insn.code, jt = insn.jt, jf = insn.jf, k = insn.k
    )]
    Invalid {
        /// Its position in the program, from 0.
        index: usize,
        /// The instruction itself.
        insn: CbpfInsn,
        /// The rule it breaks.
        rule: Rule,
    },
}

/// A rule of [`validate`](crate::validate). All but [`Rule::AncillaryLoad`]
/// and [`Rule::NegativeOffset`] are the Linux kernel's own
/// (net/core/filter.c); those two are pktd's: of the socket buffer's
/// metadata its eBPF evaluator offers what libpcap's Linux code reads
/// (see [`crate::opcodes::Ancillary`]), and it has no header-relative
/// offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// The opcode is not in the kernel's allowlist (`chk_code_allowed`).
    UnknownOpcode,
    /// `div #0` or `mod #0`.
    DivisionByZero,
    /// `lsh #k` or `rsh #k` with k of 32 or more.
    ShiftTooLarge,
    /// A scratch memory index of 16 or more.
    MemoryIndexOutOfRange,
    /// A jump whose target is at or past the end of the program.
    JumpOutOfRange,
    /// An absolute load at `SKF_AD_OFF` or above (Linux ancillary data)
    /// other than those pktd offers, or another load there.
    AncillaryLoad,
    /// A load at a negative offset (`SKF_NET_OFF` / `SKF_LL_OFF` ranges).
    NegativeOffset,
    /// The last instruction is not `ret #k` or `ret a`.
    LastNotReturn,
    /// `M[k]` may be read on some path before anything is stored there.
    UninitializedMemoryRead,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Rule::UnknownOpcode => "opcode not allowed in a classic BPF program",
            Rule::DivisionByZero => "division or modulo by constant zero",
            Rule::ShiftTooLarge => "shift by a constant of 32 or more",
            Rule::MemoryIndexOutOfRange => "scratch memory index M[k] with k of 16 or more",
            Rule::JumpOutOfRange => "jump target at or past the end of the program",
            Rule::AncillaryLoad => {
                "an ancillary load pktd does not offer (of Linux's SKF_AD_* it offers protocol, pkttype, \
                 ifindex, vlan_tci and vlan_avail, by absolute loads)"
            }
            Rule::NegativeOffset => "negative-offset loads are not supported",
            Rule::LastNotReturn => "the last instruction must be ret #k or ret a",
            Rule::UninitializedMemoryRead => "reads scratch memory M[k] before it is written",
        })
    }
}
