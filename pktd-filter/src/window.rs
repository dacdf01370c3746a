//! Confining a client's program to the first `window` bytes of each packet
//! (a principal's `max_snaplen`), so that it learns nothing about the bytes
//! past them: neither through which packets it accepts nor through the
//! value it returns.
//!
//! [`confine`] rewrites the program so that, on any packet, it accepts
//! exactly when the original accepts the packet cut to `window` bytes (as
//! libpcap filters a savefile captured with that snaplen), and returns
//! either 0 or `window`:
//!
//! - a load at a constant offset past the window (`ld [k]`, `ldx
//!   4*([k]&0xf)`) becomes `ret #0`, as it would fail on the cut packet;
//!   so does an ancillary load whose value follows from bytes past it
//!   ([`Ancillary::reach`]: the protocol past a VLAN tag, say);
//! - a load at `x + k` is preceded by a check of the offset it will use:
//!   `txa; add #k; jgt #(window - size), reject` (A is dead there: the load
//!   overwrites it; offsets wrap at 32 bits as the load's do);
//! - `ret #k` with k ≠ 0 becomes `ret #window`, and `ret a` becomes
//!   `jeq #0, reject; ret #window`.
//!
//! `ld #len` still sees the length on the wire, which every record carries
//! anyway. The policy's own filter is not confined: it is ANDed in front of
//! the confined client program ([`crate::and_then`]).

use crate::{
    CbpfInsn, FilterError, ValidProgram,
    opcodes::{
        Ancillary, BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_B, BPF_H, BPF_IND, BPF_JA, BPF_JEQ,
        BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_LDX, BPF_MISC, BPF_MSH, BPF_RET, BPF_TXA,
    },
    validate,
};

/// `program` confined to the first `window` bytes of a packet (see the
/// module). Fails only when the rewritten program breaks a kernel rule: a
/// conditional jump stretched past 255 instructions, or more than 4096.
pub fn confine(program: &ValidProgram, window: u32) -> Result<ValidProgram, FilterError> {
    let insns = program.insns();
    let expansions: Vec<Vec<CbpfInsn>> = insns.iter().map(|insn| expand(*insn, window)).collect();
    validate(&splice(insns, &expansions)?)
}

/// Each instruction of `insns` replaced by its expansion (the instruction
/// itself for a jump, which keeps its place at the end of its expansion),
/// jumps retargeted to the start of their targets' expansions so that
/// the checks there run.
pub(crate) fn splice(
    insns: &[CbpfInsn],
    expansions: &[Vec<CbpfInsn>],
) -> Result<Vec<CbpfInsn>, FilterError> {
    // Where each original instruction's expansion starts.
    let mut starts = Vec::with_capacity(insns.len() + 1);
    let mut at = 0;
    for expansion in expansions {
        starts.push(at);
        at += expansion.len();
    }
    starts.push(at);
    let mut out = Vec::with_capacity(at);
    for (pc, (insn, expansion)) in insns.iter().zip(expansions).enumerate() {
        if class(insn.code) != BPF_JMP {
            out.extend_from_slice(expansion);
            continue;
        }
        // A jump's expansion may put checks before it: it is the last
        // instruction of its expansion.
        out.extend_from_slice(&expansion[..expansion.len() - 1]);
        let here = starts[pc + 1] - 1;
        let target = |offset: u32| starts[pc + 1 + offset as usize] - here - 1;
        let mut jump = *insn;
        if insn.code == BPF_JMP | BPF_JA {
            jump.k = target(insn.k) as u32;
        } else {
            jump.jt = narrow(target(u32::from(insn.jt)))?;
            jump.jf = narrow(target(u32::from(insn.jf)))?;
        }
        out.push(jump);
    }
    Ok(out)
}

/// A conditional jump's offset, which must fit in 8 bits.
pub(crate) fn narrow(offset: usize) -> Result<u8, FilterError> {
    u8::try_from(offset).map_err(|_| FilterError::Confine {
        reason: format!(
            "a conditional jump would span {offset} instructions once confined (at most 255)"
        ),
    })
}

/// What `insn` becomes.
fn expand(insn: CbpfInsn, window: u32) -> Vec<CbpfInsn> {
    let reject = CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 0);
    let accept = CbpfInsn::new(BPF_RET | BPF_K, 0, 0, window);
    let past_window =
        |offset: u32, size: u32| u64::from(offset) + u64::from(size) > u64::from(window);
    match class(insn.code) {
        BPF_LD if mode(insn.code) == BPF_ABS => {
            let beyond = match Ancillary::at(insn.k) {
                Some(ancillary) => past_window(0, ancillary.reach()),
                None => past_window(insn.k, load_size(insn.code)),
            };
            if beyond { vec![reject] } else { vec![insn] }
        }
        BPF_LDX if mode(insn.code) == BPF_MSH => {
            if past_window(insn.k, 1) {
                vec![reject]
            } else {
                vec![insn]
            }
        }
        BPF_LD if mode(insn.code) == BPF_IND => {
            let size = load_size(insn.code);
            match window.checked_sub(size) {
                // Not even one such load fits.
                None => vec![reject],
                Some(last) => vec![
                    CbpfInsn::new(BPF_MISC | BPF_TXA, 0, 0, 0),
                    CbpfInsn::new(BPF_ALU | BPF_ADD | BPF_K, 0, 0, insn.k),
                    CbpfInsn::new(BPF_JMP | BPF_JGT | BPF_K, 0, 1, last),
                    reject,
                    insn,
                ],
            }
        }
        BPF_RET if insn.code == BPF_RET | BPF_K => {
            if insn.k == 0 {
                vec![insn]
            } else {
                vec![accept]
            }
        }
        BPF_RET if insn.code == BPF_RET | BPF_A => vec![
            CbpfInsn::new(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0),
            reject,
            accept,
        ],
        _ => vec![insn],
    }
}

pub(crate) fn class(code: u16) -> u16 {
    code & 0x07
}

pub(crate) fn mode(code: u16) -> u16 {
    code & 0xe0
}

pub(crate) fn load_size(code: u16) -> u32 {
    match code & 0x18 {
        BPF_H => 2,
        BPF_B => 1,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{compile, interpret};

    /// A tiny deterministic generator (xorshift), for reproducible packets.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Ethernet/IPv4 frames with random options, protocols, ports and
    /// payload, 34 to 400 bytes long.
    fn frames(count: usize) -> Vec<Vec<u8>> {
        let mut rng = Rng(0x5eed_cafe_f00d);
        (0..count)
            .map(|_| {
                let len = 34 + (rng.next() % 367) as usize;
                let mut frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                frame[12..14].copy_from_slice(&[0x08, 0x00]);
                frame[14] = 0x45 + (rng.next() % 3) as u8;
                frame[20] &= 0x1f;
                frame[21] = 0;
                frame[23] = [6, 17, 1, 47][(rng.next() % 4) as usize];
                frame
            })
            .collect()
    }

    /// Confined on a whole frame means the original on the frame cut to
    /// the window (with the wire length kept), accepting with `window`.
    #[test]
    fn a_confined_filter_sees_only_the_window() {
        let expressions = [
            "udp port 53",
            "tcp[tcpflags] & tcp-syn != 0",
            "ip[40] = 7 or ip[60:2] > 1000",
            "ether[100] = 0x41",
            "ip[0] & 0xf = 6 and tcp[20:4] != 0",
            "len > 100 and udp[8] = 1",
            "greater 200",
            "",
        ];
        let mut programs: Vec<ValidProgram> = expressions
            .iter()
            .map(|e| compile(e, true, 262_144).unwrap())
            .collect();
        // ld [x + 100] (after x = 4*([14]&0xf)), and a return of A.
        programs.push(
            validate(&[
                CbpfInsn::new(0xb1, 0, 0, 14),
                CbpfInsn::new(0x50, 0, 0, 100),
                CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0),
            ])
            .unwrap(),
        );
        let frames = frames(400);
        for window in [1, 14, 34, 54, 64, 96, 128, 1500] {
            for program in &programs {
                let confined = confine(program, window).unwrap();
                for frame in &frames {
                    let wire = frame.len() as u32;
                    let cut = &frame[..frame.len().min(window as usize)];
                    let expected = match interpret(program, cut, wire) {
                        0 => 0,
                        _ => window,
                    };
                    assert_eq!(
                        interpret(&confined, frame, wire),
                        expected,
                        "window {window}, program {:?}",
                        program.insns()
                    );
                }
            }
        }
    }

    #[test]
    fn the_return_value_says_nothing_but_match() {
        // ret [100] would give away byte 100 as the capture length.
        let leaky = validate(&[
            CbpfInsn::new(0x30, 0, 0, 40),
            CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0),
        ])
        .unwrap();
        let confined = confine(&leaky, 64).unwrap();
        let mut frame = vec![0u8; 120];
        for byte in 1..=255u8 {
            frame[40] = byte;
            assert_eq!(interpret(&confined, &frame, 120), 64);
        }
        frame[40] = 0;
        assert_eq!(interpret(&confined, &frame, 120), 0);
    }

    /// An ancillary load counts as reading the bytes its value follows
    /// from: the packet type the destination MAC, the ifindex none.
    #[test]
    fn ancillary_loads_need_the_bytes_they_follow_from() {
        use crate::{Metadata, interpret_with};
        let frame = [0u8; 60];
        let received = Metadata {
            protocol: 0x0800,
            ifindex: 3,
            ..Metadata::default()
        };
        let sent = Metadata {
            packet_type: 4,
            ..received
        };
        for (expression, window, on_received, on_sent) in [
            ("ifindex 3", 1, true, true),
            ("inbound", 4, false, false),
            ("inbound", 6, true, false),
            ("outbound", 64, false, true),
            ("protocol", 19, false, false),
            ("protocol", 20, true, true),
        ] {
            let program = match expression {
                // ld proto; jeq #0x800 (802.3 frames: bytes 18-19 tell
                // ETH_P_802_3 from _802_2 past a tag).
                "protocol" => validate(&[
                    CbpfInsn::new(0x28, 0, 0, 0xffff_f000),
                    CbpfInsn::new(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x0800),
                    CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 100),
                    CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 0),
                ])
                .unwrap(),
                _ => compile(expression, true, 262_144).unwrap(),
            };
            let confined = confine(&program, window).unwrap();
            assert_eq!(
                interpret_with(&confined, &frame, 60, &received) != 0,
                on_received,
                "{expression} in {window}"
            );
            assert_eq!(
                interpret_with(&confined, &frame, 60, &sent) != 0,
                on_sent,
                "{expression} in {window}"
            );
        }
    }

    #[test]
    fn jumps_stretched_past_255_are_refused() {
        // A jump over 100 indirect loads: each grows by four.
        let mut insns = vec![CbpfInsn::new(BPF_JMP | BPF_JEQ | BPF_K, 100, 0, 1)];
        insns.extend((0..100).map(|_| CbpfInsn::new(0x50, 0, 0, 0)));
        insns.push(CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 1));
        let program = validate(&insns).unwrap();
        assert!(matches!(
            confine(&program, 64),
            Err(FilterError::Confine { .. })
        ));
    }
}
