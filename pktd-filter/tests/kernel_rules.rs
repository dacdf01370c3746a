//! validate() against the running kernel's SO_ATTACH_FILTER checks.

mod common;

use common::{Rng, kernel_ok};
use pktd_filter::opcodes::*;
use pktd_filter::{CbpfInsn, FilterError, Rule, validate};

const fn insn(code: u16, jt: u8, jf: u8, k: u32) -> CbpfInsn {
    CbpfInsn::new(code, jt, jf, k)
}
const RET_0: CbpfInsn = insn(BPF_RET | BPF_K, 0, 0, 0);
const RET_A: CbpfInsn = insn(BPF_RET | BPF_A, 0, 0, 0);
const LD_1: CbpfInsn = insn(BPF_LD | BPF_IMM, 0, 0, 1);

/// The rule and index validate() reports; panics if it accepts.
fn refusal(insns: &[CbpfInsn]) -> (usize, Rule) {
    match validate(insns) {
        Err(FilterError::Invalid { index, insn, rule }) => {
            assert_eq!(insn, insns[index], "the error carries the instruction");
            (index, rule)
        }
        other => panic!("expected Invalid for {insns:?}, got {other:?}"),
    }
}

/// validate() refuses with (index, rule), and so does the kernel.
fn both_refuse(insns: &[CbpfInsn], index: usize, rule: Rule) {
    assert_eq!(refusal(insns), (index, rule), "validate of {insns:?}");
    assert!(!kernel_ok(insns), "the kernel also refuses {insns:?}");
}

/// validate() and the kernel both accept.
fn both_accept(insns: &[CbpfInsn]) {
    if let Err(e) = validate(insns) {
        panic!("validate refuses {insns:?}: {e}");
    }
    assert!(kernel_ok(insns), "the kernel accepts {insns:?}");
}

#[test]
fn all_65536_opcodes_agree_with_the_kernel() {
    let mut accepted = Vec::new();
    let mut disagreements = Vec::new();
    for code in 0..=u16::MAX {
        // ST M[1] first so that loads of M[1] are initialised; k = 1 keeps
        // clear of division by zero, shift and ancillary limits.
        let program = [insn(BPF_ST, 0, 0, 1), insn(code, 0, 0, 1), RET_0];
        let ours = validate(&program).is_ok();
        if ours != kernel_ok(&program) {
            disagreements.push(code);
        }
        if ours {
            accepted.push(code);
        }
    }
    assert!(
        disagreements.is_empty(),
        "validate and the kernel disagree on codes {disagreements:#x?}"
    );
    // Every allowlisted code is accepted except JA: with k = 1 it would
    // jump past the end (checked by itself below).
    let expected: Vec<u16> = ALLOWED
        .iter()
        .copied()
        .filter(|&c| c != BPF_JMP | BPF_JA)
        .collect();
    assert_eq!(accepted, expected, "accepted opcodes");
    assert_eq!(accepted.len(), 48, "49 allowed codes minus JA");
    both_accept(&[
        insn(BPF_ST, 0, 0, 1),
        insn(BPF_JMP | BPF_JA, 0, 0, 0),
        RET_0,
    ]);
}

#[test]
fn every_allowed_code_is_accepted_by_the_kernel_in_isolation() {
    // The converse view of the table: each listed code, in a program that
    // satisfies its other rules, is accepted by both.
    for &code in &ALLOWED {
        let k = if code == BPF_JMP | BPF_JA { 0 } else { 1 };
        both_accept(&[insn(BPF_ST, 0, 0, 1), insn(code, 0, 0, k), RET_0]);
    }
}

#[test]
fn length_rule() {
    assert_eq!(validate(&[]), Err(FilterError::Length { len: 0 }), "empty");
    assert!(!kernel_ok(&[]), "the kernel refuses an empty program");
    let too_long = vec![RET_0; BPF_MAXINSNS + 1];
    assert_eq!(
        validate(&too_long),
        Err(FilterError::Length { len: 4097 }),
        "4097"
    );
    assert!(
        !kernel_ok(&too_long),
        "the kernel refuses 4097 instructions"
    );
    both_accept(&vec![RET_0; BPF_MAXINSNS]);
    assert_eq!(
        FilterError::Length { len: 0 }.to_string(),
        "a program has 1 to 4096 instructions, this one has 0",
        "Length message"
    );
}

#[test]
fn unknown_opcode_rule() {
    for code in [0x0e, 0x8c, 0x1000, 0x1006, 0x0d, 0x38, 0xffff] {
        both_refuse(&[LD_1, insn(code, 0, 0, 0), RET_A], 1, Rule::UnknownOpcode);
    }
}

#[test]
fn division_by_zero_rule() {
    let mod_zero = [
        LD_1,
        LD_1,
        LD_1,
        insn(BPF_ALU | BPF_MOD | BPF_K, 0, 0, 0),
        RET_A,
    ];
    both_refuse(&mod_zero, 3, Rule::DivisionByZero);
    let message = validate(&mod_zero).expect_err("mod #0 refused").to_string();
    assert_eq!(
        message, "instruction 3 (code 0x94 jt 0 jf 0 k 0x0): division or modulo by constant zero",
        "Invalid message"
    );
    both_refuse(
        &[LD_1, insn(BPF_ALU | BPF_DIV | BPF_K, 0, 0, 0), RET_A],
        1,
        Rule::DivisionByZero,
    );
    // By X is a run-time matter, not a validation one.
    both_accept(&[LD_1, insn(BPF_ALU | BPF_DIV | BPF_X, 0, 0, 0), RET_A]);
}

#[test]
fn shift_rule() {
    for op in [BPF_LSH, BPF_RSH] {
        both_refuse(
            &[LD_1, insn(BPF_ALU | op | BPF_K, 0, 0, 32), RET_A],
            1,
            Rule::ShiftTooLarge,
        );
        both_refuse(
            &[insn(BPF_ALU | op | BPF_K, 0, 0, u32::MAX), RET_A],
            0,
            Rule::ShiftTooLarge,
        );
        both_accept(&[LD_1, insn(BPF_ALU | op | BPF_K, 0, 0, 31), RET_A]);
    }
}

#[test]
fn memory_index_rule() {
    for code in [BPF_ST, BPF_STX, BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM] {
        both_refuse(
            &[LD_1, insn(code, 0, 0, 16), RET_A],
            1,
            Rule::MemoryIndexOutOfRange,
        );
    }
    both_accept(&[
        insn(BPF_ST, 0, 0, 15),
        insn(BPF_LDX | BPF_MEM, 0, 0, 15),
        RET_A,
    ]);
}

#[test]
fn jump_rules() {
    // JA: k must be below len - pc - 1.
    both_refuse(
        &[insn(BPF_JMP | BPF_JA, 0, 0, 1), RET_0],
        0,
        Rule::JumpOutOfRange,
    );
    both_refuse(
        &[insn(BPF_JMP | BPF_JA, 0, 0, u32::MAX), RET_0],
        0,
        Rule::JumpOutOfRange,
    );
    both_accept(&[insn(BPF_JMP | BPF_JA, 0, 0, 1), RET_0, RET_0]);
    // Conditional: both targets must be inside.
    for code in [0x15, 0x1d, 0x25, 0x2d, 0x35, 0x3d, 0x45, 0x4d] {
        both_refuse(&[LD_1, insn(code, 1, 0, 0), RET_0], 1, Rule::JumpOutOfRange);
        both_refuse(&[LD_1, insn(code, 0, 1, 0), RET_0], 1, Rule::JumpOutOfRange);
        both_refuse(
            &[LD_1, insn(code, 255, 255, 0), RET_0],
            1,
            Rule::JumpOutOfRange,
        );
        both_accept(&[LD_1, insn(code, 1, 0, 0), RET_0, RET_A]);
    }
}

#[test]
fn last_must_return() {
    both_refuse(&[LD_1], 0, Rule::LastNotReturn);
    both_refuse(&[RET_0, LD_1], 1, Rule::LastNotReturn);
    both_refuse(
        &[RET_0, insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 0)],
        1,
        Rule::JumpOutOfRange,
    );
    both_accept(&[RET_A]);
}

#[test]
fn ancillary_loads_are_ours_alone() {
    // The packet type, ifindex, protocol and VLAN extensions: accepted by
    // both (what `inbound`, `outbound` and `ifindex N` compile to).
    for size in [BPF_W, BPF_H, BPF_B] {
        for ad in [0, 4, 8, 44, 48] {
            let program = [insn(BPF_LD | size | BPF_ABS, 0, 0, SKF_AD_OFF + ad), RET_A];
            assert!(validate(&program).is_ok(), "ancillary {ad}");
            assert!(kernel_ok(&program), "the kernel accepts ancillary {ad}");
        }
    }
    // Other known ancillary offsets: the kernel accepts, pktd refuses on
    // purpose (nothing at TC or XDP to offer for them).
    for size in [BPF_W, BPF_H, BPF_B] {
        for ad in [12, 16, 56, 60] {
            let program = [insn(BPF_LD | size | BPF_ABS, 0, 0, SKF_AD_OFF + ad), RET_A];
            assert_eq!(
                refusal(&program),
                (0, Rule::AncillaryLoad),
                "ancillary {ad}"
            );
            assert!(kernel_ok(&program), "the kernel accepts ancillary {ad}");
        }
    }
    // Unknown ancillary offsets: refused by both.
    for k in [SKF_AD_OFF + 2, SKF_AD_OFF + 64, u32::MAX] {
        both_refuse(
            &[insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, k), RET_A],
            0,
            Rule::AncillaryLoad,
        );
    }
    let message = validate(&[LD_1, insn(0x30, 0, 0, SKF_AD_OFF + 12), RET_A])
        .expect_err("refused")
        .to_string();
    assert!(
        message.contains("it offers protocol, pkttype, ifindex, vlan_tci and vlan_avail"),
        "{message}"
    );
}

#[test]
fn negative_offset_loads_are_ours_alone() {
    // Header-relative (SKF_NET_OFF, SKF_LL_OFF) and other negative offsets:
    // the kernel accepts them, pktd refuses on purpose.
    let cases = [
        insn(BPF_LD | BPF_W | BPF_ABS, 0, 0, SKF_NET_OFF),
        insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, SKF_LL_OFF + 12),
        insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0x8000_0000),
        insn(BPF_LD | BPF_W | BPF_IND, 0, 0, u32::MAX - 3),
        insn(BPF_LD | BPF_B | BPF_IND, 0, 0, SKF_AD_OFF),
        insn(BPF_LDX | BPF_B | BPF_MSH, 0, 0, SKF_NET_OFF),
    ];
    for load in cases {
        let program = [load, RET_A];
        assert_eq!(refusal(&program), (0, Rule::NegativeOffset), "{load:?}");
        assert!(kernel_ok(&program), "the kernel accepts {load:?}");
    }
    both_accept(&[insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, 0x7fff_ffff), RET_A]);
    both_accept(&[insn(BPF_LD | BPF_B | BPF_IND, 0, 0, 0x7fff_ffff), RET_A]);
}

#[test]
fn first_failing_instruction_wins_in_kernel_order() {
    // Per-instruction rules are checked in program order...
    both_refuse(
        &[
            LD_1,
            insn(BPF_ALU | BPF_DIV | BPF_K, 0, 0, 0),
            insn(0x0e, 0, 0, 0),
            RET_A,
        ],
        1,
        Rule::DivisionByZero,
    );
    // ...before the final return...
    assert_eq!(
        refusal(&[insn(0x64, 0, 0, 40), LD_1]),
        (0, Rule::ShiftTooLarge),
        "shift before last"
    );
    // ...before the memory data flow.
    assert_eq!(
        refusal(&[insn(BPF_LD | BPF_MEM, 0, 0, 0), insn(0x34, 0, 0, 0), RET_A]),
        (1, Rule::DivisionByZero),
        "per-insn before data flow"
    );
    assert_eq!(
        refusal(&[insn(BPF_LD | BPF_MEM, 0, 0, 0), LD_1]),
        (1, Rule::LastNotReturn),
        "last before data flow"
    );
}

#[test]
fn scratch_memory_data_flow() {
    let ld_m0 = insn(BPF_LD | BPF_MEM, 0, 0, 0);
    let st_m0 = insn(BPF_ST, 0, 0, 0);
    // Read before any write.
    both_refuse(&[ld_m0, RET_A], 0, Rule::UninitializedMemoryRead);
    both_refuse(
        &[st_m0, insn(BPF_LDX | BPF_MEM, 0, 0, 1), RET_A],
        1,
        Rule::UninitializedMemoryRead,
    );
    // Written on one branch only.
    let one_branch = [
        insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12),
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x800),
        st_m0,
        ld_m0,
        RET_A,
    ];
    both_refuse(&one_branch, 3, Rule::UninitializedMemoryRead);
    // Written on both branches.
    let both_branches = [
        insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12),
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 0x800),
        st_m0,
        insn(BPF_JMP | BPF_JA, 0, 0, 1),
        insn(BPF_STX, 0, 0, 0),
        ld_m0,
        RET_A,
    ];
    both_accept(&both_branches);
    // Written before the branch.
    both_accept(&[
        st_m0,
        insn(BPF_JMP | BPF_JSET | BPF_X, 0, 1, 0),
        ld_m0,
        ld_m0,
        RET_A,
    ]);
    // A write on the jumped-over path does not count at the ja target.
    both_refuse(
        &[LD_1, insn(BPF_JMP | BPF_JA, 0, 0, 1), st_m0, ld_m0, RET_A],
        3,
        Rule::UninitializedMemoryRead,
    );
}

#[test]
fn scratch_memory_quirks_match_the_kernel() {
    let ld_m5 = insn(BPF_LD | BPF_MEM, 0, 0, 5);
    // Dead code right after a jump starts from "all written": accepted.
    both_accept(&[insn(BPF_JMP | BPF_JA, 0, 0, 1), ld_m5, RET_A]);
    // A ret does not reset the state, so dead code after it is checked with
    // the state falling through: refused when nothing was written...
    both_refuse(&[RET_0, ld_m5, RET_A], 1, Rule::UninitializedMemoryRead);
    // ...and accepted when the write precedes the ret.
    both_accept(&[insn(BPF_ST, 0, 0, 5), RET_0, ld_m5, RET_A]);
    // A jump target merges the states of all its predecessors, including
    // the fall-through from a ret.
    both_refuse(
        &[
            LD_1,
            insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 2, 1),
            insn(BPF_ST, 0, 0, 5),
            RET_0,
            ld_m5,
            RET_A,
        ],
        4,
        Rule::UninitializedMemoryRead,
    );
}

#[test]
fn large_k_only_matters_for_loads() {
    // Offsets in the ancillary / negative range are load rules only: in
    // ALU and jump opcodes the same mode bits mean something else.
    for &code in &ALLOWED {
        for k in [
            SKF_AD_OFF + 12,
            SKF_AD_OFF + 16,
            SKF_NET_OFF,
            0x8000_0000,
            u32::MAX,
        ] {
            let program = [insn(BPF_ST, 0, 0, 1), insn(code, 0, 0, k), RET_0];
            let ours = validate(&program);
            let offset_load = matches!(class(code), BPF_LD | BPF_LDX)
                && matches!(mode(code), BPF_ABS | BPF_IND | BPF_MSH);
            match ours {
                Err(FilterError::Invalid {
                    rule: Rule::AncillaryLoad | Rule::NegativeOffset,
                    ..
                }) => assert!(offset_load, "load rule applied to {code:#x} k {k:#x}"),
                ours => {
                    assert!(
                        !offset_load,
                        "offset load {code:#x} k {k:#x} passed: {ours:?}"
                    );
                    assert_eq!(
                        ours.is_ok(),
                        kernel_ok(&program),
                        "validate vs kernel for {code:#x} k {k:#x}: {ours:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn random_programs_agree_with_the_kernel() {
    // Short programs over mostly-allowed opcodes and boundary operands, so
    // that every rule, and especially the scratch-memory data flow, fires
    // often. Programs refused by pktd's own load rules are skipped.
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let ks = [0, 1, 2, 15, 16, 31, 32, SKF_AD_OFF, u32::MAX];
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..20_000 {
        let len = 1 + rng.below(8);
        let program: Vec<CbpfInsn> = (0..len)
            .map(|_| {
                let code = if rng.below(50) == 0 {
                    rng.next() as u16
                } else {
                    // Bias towards memory and jump instructions.
                    let favourites = [0x02, 0x03, 0x60, 0x61, 0x05, 0x15, 0x45, 0x06, 0x16];
                    if rng.below(2) == 0 {
                        favourites[rng.below(favourites.len())]
                    } else {
                        ALLOWED[rng.below(ALLOWED.len())]
                    }
                };
                let k = if rng.below(3) == 0 {
                    ks[rng.below(ks.len())]
                } else {
                    rng.below(4) as u32
                };
                insn(code, rng.below(4) as u8, rng.below(4) as u8, k)
            })
            .collect();
        let ours = validate(&program);
        if let Err(FilterError::Invalid {
            rule: Rule::AncillaryLoad | Rule::NegativeOffset,
            ..
        }) = ours
        {
            continue;
        }
        assert_eq!(
            ours.is_ok(),
            kernel_ok(&program),
            "round {round}: validate vs kernel for {program:?}: {ours:?}"
        );
        if ours.is_ok() {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    assert!(
        accepted > 500 && refused > 500,
        "coverage: {accepted} accepted, {refused} refused"
    );
}
