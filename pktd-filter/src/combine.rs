//! Conjunction of two programs: the policy's filter AND the client's.

use crate::{
    CbpfInsn, FilterError, ValidProgram,
    opcodes::{BPF_A, BPF_IMM, BPF_JA, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_LDX, BPF_RET, BPF_W},
    validate,
};

/// A program that accepts a packet when `first` and `second` both do, and
/// then returns `second`'s value (its capture length).
///
/// `first` runs unchanged except for its returns: a zero return still
/// rejects, any other return jumps to `second`, which starts, as every
/// classic program does, with A and X cleared. So `second` behaves exactly
/// as it would alone; this works for bytecode as well as expressions, and
/// the result passes the same validation as any client program.
pub fn and_then(first: &ValidProgram, second: &ValidProgram) -> Result<ValidProgram, FilterError> {
    let first = first.insns();
    // Layout: first | jeq #0 (for RET A) | ret #0 | ld #0 | ldx #0 | second
    let test_a = first.len();
    let reject = test_a + 1;
    let second_start = reject + 1;
    let jump_to =
        |from: usize, to: usize| CbpfInsn::new(BPF_JMP | BPF_JA, 0, 0, (to - from - 1) as u32);
    let mut insns: Vec<CbpfInsn> = first
        .iter()
        .enumerate()
        .map(|(pc, insn)| match insn.code {
            code if code == BPF_RET | BPF_K && insn.k == 0 => *insn,
            code if code == BPF_RET | BPF_K => jump_to(pc, second_start),
            code if code == BPF_RET | BPF_A => jump_to(pc, test_a),
            _ => *insn,
        })
        .collect();
    // A == 0 rejects; anything else goes on to `second`.
    insns.push(CbpfInsn::new(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0));
    insns.push(CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 0));
    insns.push(CbpfInsn::new(BPF_LD | BPF_W | BPF_IMM, 0, 0, 0));
    insns.push(CbpfInsn::new(BPF_LDX | BPF_W | BPF_IMM, 0, 0, 0));
    insns.extend_from_slice(second.insns());
    validate(&insns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, interpret, pcap_offline_filter};

    fn udp_frame(dport: u16, sport: u16) -> Vec<u8> {
        let mut frame = vec![0u8; 14 + 20 + 8 + 4];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&((20 + 8 + 4) as u16).to_be_bytes());
        frame[23] = 17;
        frame[26..30].copy_from_slice(&[10, 0, 0, 1]);
        frame[30..34].copy_from_slice(&[10, 0, 0, 2]);
        frame[34..36].copy_from_slice(&sport.to_be_bytes());
        frame[36..38].copy_from_slice(&dport.to_be_bytes());
        frame
    }

    #[test]
    fn accepts_exactly_what_both_accept_and_returns_the_second_value() {
        let expressions = [
            "udp",
            "not port 22",
            "udp dst port 53",
            "tcp",
            "ip[0] & 0xf = 5",
            "len > 40",
        ];
        let frames = [
            udp_frame(53, 1000),
            udp_frame(22, 53),
            udp_frame(80, 80),
            udp_frame(53, 22),
        ];
        let ret_a = validate(&[
            CbpfInsn::new(BPF_LD | BPF_W | 0x80, 0, 0, 0), // A = len
            CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0),
        ])
        .unwrap();
        let ret_10 = validate(&[CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 10)]).unwrap();
        let mut programs: Vec<ValidProgram> = expressions
            .iter()
            .map(|e| compile(e, true, 262_144).unwrap())
            .collect();
        programs.push(ret_a);
        programs.push(ret_10);
        for first in &programs {
            for second in &programs {
                let both = and_then(first, second).expect("combined programs validate");
                for frame in &frames {
                    let len = frame.len() as u32;
                    let expected = if interpret(first, frame, len) != 0 {
                        interpret(second, frame, len)
                    } else {
                        0
                    };
                    assert_eq!(interpret(&both, frame, len), expected);
                    assert_eq!(pcap_offline_filter(both.insns(), frame, len), expected);
                }
            }
        }
    }

    #[test]
    fn too_long_a_conjunction_is_refused() {
        let long: Vec<CbpfInsn> =
            std::iter::repeat_n(CbpfInsn::new(BPF_LD | BPF_W | BPF_IMM, 0, 0, 1), 3000)
                .chain([CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 1)])
                .collect();
        let long = validate(&long).unwrap();
        assert!(matches!(
            and_then(&long, &long),
            Err(FilterError::Length { .. })
        ));
    }
}
