//! Programs written for the kernel's view of a frame, run on pktd's.
//!
//! pktd's filters see a frame as it was on the wire, as libpcap's offline
//! filter does: when the kernel moved a VLAN tag into the socket buffer's
//! metadata, pktd puts it back at byte 12. A program that reads the
//! kernel's VLAN ancillary loads (`SKF_AD_VLAN_TAG_PRESENT`,
//! `SKF_AD_VLAN_TAG`), such as the code libpcap compiles for `vlan` on a
//! live Linux handle, is written for the other view, the one an AF_PACKET
//! socket's filter has: the tag out of the bytes and in metadata, the bytes
//! from the EtherType on 4 earlier, the length 4 shorter.
//!
//! [`for_wire_view`] rewrites such a program for pktd's view, so that it
//! decides on every frame what it decides on an AF_PACKET socket, and so
//! that every later pass (the policy's filter, the window, the header
//! view, the anonymization) sees an ordinary program. Where the tag was in
//! metadata (`SKF_AD_VLAN_TAG_PRESENT` is 1, on pktd's view as on the
//! kernel's):
//! - a load at byte 12 or later reads 4 bytes further;
//! - `len` is 4 less;
//! - an accepting program's capture length counts 4 more: AF_PACKET cuts
//!   the frame without the tag there, and libpcap puts the tag back;
//! - a constant load across byte 12 (the MAC addresses and the EtherType at
//!   once) is refused when the program is given; an indirect one found to
//!   cross it rejects the packet.
//!
//! One more difference remains, on egress through a device that does not
//! offload VLAN tags: AF_PACKET's tap runs after the kernel has pushed the
//! tag into the frame (`vlan_avail` reads 0 there), pktd's TC hook before
//! (it reads 1). libpcap's `vlan` code decides the same either way; a
//! hand-written test of `vlan_avail` alone does not.
//!
//! Other programs (every expression pktd compiles, which uses a dead
//! libpcap handle) are left as they are: they are written for the wire.

use crate::{
    CbpfInsn, FilterError, ValidProgram,
    opcodes::*,
    validate,
    window::{class, load_size, mode, splice},
};

/// Where the EtherType (or the tag) starts.
const ETHERTYPE: u32 = 12;
/// Offsets past this fail on any packet in both views; they are left as
/// they are rather than moved (where 4 more could wrap).
const FAR: u32 = 0x1000_0000;

/// `ld vlan_avail`: 1 when the tag was in metadata.
const TAG_PRESENT: CbpfInsn = CbpfInsn {
    code: BPF_LD | BPF_W | BPF_ABS,
    jt: 0,
    jf: 0,
    k: SKF_AD_OFF + 48,
};

/// Does `program` read the VLAN metadata, and so expect the kernel's view?
pub fn reads_vlan_metadata(program: &ValidProgram) -> bool {
    program.insns().iter().any(|insn| {
        class(insn.code) == BPF_LD
            && mode(insn.code) == BPF_ABS
            && matches!(
                Ancillary::at(insn.k),
                Some(Ancillary::VlanTag | Ancillary::VlanTagPresent)
            )
    })
}

/// Does `program` read the socket buffer's metadata, which XDP does not
/// have (every ancillary load but the ifindex)? Its session runs at TC.
pub fn reads_socket_buffer(program: &ValidProgram) -> bool {
    program.insns().iter().any(|insn| {
        class(insn.code) == BPF_LD
            && mode(insn.code) == BPF_ABS
            && Ancillary::at(insn.k).is_some_and(|ancillary| ancillary != Ancillary::Ifindex)
    })
}

/// `program` as it decides on pktd's view of a frame (see the module): a
/// program reading the VLAN metadata rewritten, any other unchanged.
pub fn for_wire_view(program: &ValidProgram) -> Result<ValidProgram, FilterError> {
    if !reads_vlan_metadata(program) {
        return Ok(program.clone());
    }
    let insns = program.insns();
    let free_cell = (0..BPF_MEMWORDS).find(|&cell| {
        !insns.iter().any(|insn| {
            insn.k == cell
                && (matches!(class(insn.code), BPF_ST | BPF_STX)
                    || (matches!(class(insn.code), BPF_LD | BPF_LDX) && mode(insn.code) == BPF_MEM))
        })
    });
    let mut expansions = Vec::with_capacity(insns.len());
    for (index, insn) in insns.iter().enumerate() {
        expansions.push(
            expand(*insn, free_cell).map_err(|reason| FilterError::KernelView { index, reason })?,
        );
    }
    let spliced = splice(insns, &expansions).map_err(|_| FilterError::KernelView {
        index: 0,
        reason: "a conditional jump would span more than 255 instructions once rewritten"
            .to_owned(),
    })?;
    validate(&spliced)
}

fn op(code: u16, k: u32) -> CbpfInsn {
    CbpfInsn::new(code, 0, 0, k)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> CbpfInsn {
    CbpfInsn::new(BPF_JMP | code | BPF_K, jt, jf, k)
}

/// What one instruction of a kernel-view program becomes.
fn expand(insn: CbpfInsn, free_cell: Option<u32>) -> Result<Vec<CbpfInsn>, String> {
    let k = insn.k;
    match (class(insn.code), mode(insn.code)) {
        (BPF_LD, BPF_ABS) if Ancillary::at(k).is_some() => Ok(vec![insn]),
        (BPF_LD, BPF_ABS) => {
            let end = u64::from(k) + u64::from(load_size(insn.code));
            if end <= u64::from(ETHERTYPE) || k >= FAR {
                Ok(vec![insn])
            } else if k < ETHERTYPE {
                Err(format!(
                    "loads bytes {k} to {end}, across the EtherType, in a program that reads \
                     the VLAN metadata (where the tag is in metadata those bytes are not \
                     next to each other in the frame)"
                ))
            } else {
                // A is dead: the load overwrites it.
                Ok(vec![
                    TAG_PRESENT,
                    jump(BPF_JEQ, 0, 2, 0),
                    CbpfInsn { k: k + 4, ..insn },
                    op(BPF_JMP | BPF_JA, 1),
                    insn,
                ])
            }
        }
        (BPF_LD, BPF_IND) => {
            let size = load_size(insn.code);
            Ok(vec![
                TAG_PRESENT,
                jump(BPF_JEQ, 0, 8, 0),
                op(BPF_MISC | BPF_TXA, 0),
                op(BPF_ALU | BPF_ADD | BPF_K, k),
                jump(BPF_JGE, ETHERTYPE, 2, 0),
                // Below the EtherType: across it rejects, short of it reads
                // as it is.
                jump(BPF_JGT, ETHERTYPE - size, 0, 4),
                op(BPF_RET | BPF_K, 0),
                jump(BPF_JGT, FAR, 2, 0),
                CbpfInsn {
                    k: k.wrapping_add(4),
                    ..insn
                },
                op(BPF_JMP | BPF_JA, 1),
                insn,
            ])
        }
        (BPF_LDX, BPF_MSH) if (ETHERTYPE..FAR).contains(&k) => Ok(vec![
            // A is live: X, about to be overwritten, keeps it meanwhile.
            op(BPF_MISC | BPF_TAX, 0),
            TAG_PRESENT,
            jump(BPF_JEQ, 0, 3, 0),
            op(BPF_MISC | BPF_TXA, 0),
            CbpfInsn { k: k + 4, ..insn },
            op(BPF_JMP | BPF_JA, 2),
            op(BPF_MISC | BPF_TXA, 0),
            insn,
        ]),
        (BPF_LD, BPF_LEN) => Ok(vec![
            TAG_PRESENT,
            jump(BPF_JEQ, 0, 3, 0),
            insn,
            op(BPF_ALU | BPF_SUB | BPF_K, 4),
            op(BPF_JMP | BPF_JA, 1),
            insn,
        ]),
        (BPF_RET, _) if insn.code == BPF_RET | BPF_K => match k {
            0 => Ok(vec![insn]),
            // k + 4 * present (A is dead at a return).
            1..=0xffff_fffb => Ok(vec![
                TAG_PRESENT,
                op(BPF_ALU | BPF_LSH | BPF_K, 2),
                op(BPF_ALU | BPF_ADD | BPF_K, k),
                op(BPF_RET | BPF_A, 0),
            ]),
            _ => Ok(vec![insn]),
        },
        (BPF_RET, _) => {
            let cell = free_cell.ok_or_else(|| {
                "returns A in a program that reads the VLAN metadata and uses all 16 \
                 scratch cells (pktd needs one to correct the capture length)"
                    .to_owned()
            })?;
            // A + 4 * present, X (dead) holding 4 * present; 0 still
            // rejects, and a length that would wrap stays as it is.
            Ok(vec![
                op(BPF_ST, cell),
                TAG_PRESENT,
                op(BPF_ALU | BPF_LSH | BPF_K, 2),
                op(BPF_MISC | BPF_TAX, 0),
                op(BPF_LD | BPF_MEM, cell),
                jump(BPF_JEQ, 0, 3, 0),
                jump(BPF_JGT, 0xffff_fffb, 1, 0),
                op(BPF_ALU | BPF_ADD | BPF_X, 0),
                op(BPF_RET | BPF_A, 0),
                op(BPF_RET | BPF_K, 0),
            ])
        }
        (BPF_LDX, BPF_LEN) => {
            let cell = free_cell.ok_or_else(|| {
                "reads the length into X in a program that reads the VLAN metadata and uses \
                 all 16 scratch cells (pktd needs one to correct the length)"
                    .to_owned()
            })?;
            // X = len - 4 * present, A kept in the free cell.
            Ok(vec![
                op(BPF_ST, cell),
                TAG_PRESENT,
                op(BPF_ALU | BPF_LSH | BPF_K, 2),
                op(BPF_MISC | BPF_TAX, 0),
                op(BPF_LD | BPF_W | BPF_LEN, 0),
                op(BPF_ALU | BPF_SUB | BPF_X, 0),
                op(BPF_MISC | BPF_TAX, 0),
                op(BPF_LD | BPF_MEM, cell),
            ])
        }
        _ => Ok(vec![insn]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Metadata, interpret_with};

    /// A tiny deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Frames as the kernel holds them (the outer tag, if any, out of the
    /// bytes), each with its tag: IPv4, IPv6 and ARP, some with an inner
    /// tag left in the bytes, a few very short.
    fn kernel_frames(count: usize) -> Vec<(Vec<u8>, Option<u16>)> {
        let mut rng = Rng(0x7a67_5eed);
        (0..count)
            .map(|_| {
                let len = [10, 13, 14, 15, 40, 60, 120, 400][(rng.next() % 8) as usize];
                let mut frame: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len >= 14 {
                    let ethertype: [u8; 2] = match rng.next() % 4 {
                        0 => [0x08, 0x00],
                        1 => [0x86, 0xdd],
                        2 => [0x08, 0x06],
                        _ => [0x81, 0x00],
                    };
                    frame[12..14].copy_from_slice(&ethertype);
                }
                if len >= 40 && frame[12..14] == [0x08, 0x00] {
                    frame[14] = 0x45;
                    frame[20..22].fill(0);
                    frame[23] = [6, 17][(rng.next() % 2) as usize];
                    if rng.next().is_multiple_of(2) {
                        frame[36..38].copy_from_slice(&53u16.to_be_bytes());
                    }
                }
                // Priority bits, and VLAN 10 or 20.
                let tag = (!rng.next().is_multiple_of(3))
                    .then(|| ((rng.next() % 8) as u16) << 13 | [10, 20][(rng.next() % 2) as usize]);
                (frame, tag)
            })
            .collect()
    }

    fn wire(frame: &[u8], tag: Option<u16>) -> Vec<u8> {
        match tag {
            Some(tci) if frame.len() >= 12 => {
                let mut wire = frame[..12].to_vec();
                wire.extend_from_slice(&[0x81, 0x00]);
                wire.extend_from_slice(&tci.to_be_bytes());
                wire.extend_from_slice(&frame[12..]);
                wire
            }
            _ => frame.to_vec(),
        }
    }

    /// libpcap's live code for `vlan 10 and udp port 53` and `vlan and
    /// ip` (as tcpdump prints it for a live Linux interface), and programs
    /// reaching every rewritten kind of load.
    fn programs() -> Vec<ValidProgram> {
        let texts = [
            // `tcpdump -ddd -i veth0 'vlan 10 and udp port 53'` (libpcap 1.10).
            "56,0 0 0 0,2 0 0 0,2 0 0 1,48 0 0 4294963248,21 7 0 1,0 0 0 4,2 0 0 0,2 0 0 1,\
             40 0 0 12,21 2 0 33024,21 1 0 34984,21 0 43 37120,48 0 0 4294963248,21 0 2 1,\
             48 0 0 4294963244,5 0 0 1,40 0 0 14,84 0 0 4095,21 0 36 10,97 0 0 1,72 0 0 12,\
             21 0 9 34525,97 0 0 0,80 0 0 20,21 0 30 17,97 0 0 0,72 0 0 54,21 26 0 53,\
             97 0 0 0,72 0 0 56,21 23 24 53,21 0 23 2048,97 0 0 0,80 0 0 23,21 0 20 17,\
             97 0 0 0,72 0 0 20,69 17 0 8191,97 0 0 0,80 0 0 14,84 0 0 15,100 0 0 2,\
             12 0 0 0,7 0 0 0,72 0 0 14,21 8 0 53,97 0 0 0,80 0 0 14,84 0 0 15,100 0 0 2,\
             12 0 0 0,7 0 0 0,72 0 0 16,21 0 1 53,6 0 0 262144,6 0 0 0",
            // `tcpdump -ddd -i veth0 'vlan and ip'`.
            "15,0 0 0 0,2 0 0 1,48 0 0 4294963248,21 6 0 1,0 0 0 4,2 0 0 1,40 0 0 12,\
             21 2 0 33024,21 1 0 34984,21 0 4 37120,97 0 0 1,72 0 0 12,21 0 1 2048,\
             6 0 0 262144,6 0 0 0",
            // ld vlan_avail; ret a
            "2,32 0 0 4294963248,22 0 0 0",
            // ld vlan_tci; ret a
            "2,40 0 0 4294963244,22 0 0 0",
            // x = 4*([14]&0xf); ld [x+16]; A += vlan_avail; ret a
            "5,177 0 0 14,72 0 0 16,7 0 0 0,32 0 0 4294963248,22 0 0 0",
            // len, and ldx len then A = X + [vlan_avail] * 100
            "7,128 0 0 0,2 0 0 0,129 0 0 0,32 0 0 4294963248,36 0 0 100,12 0 0 0,22 0 0 0",
            // ld [20] and [12], a jump over them, vlan_avail at the end
            "7,40 0 0 12,21 0 3 2048,32 0 0 20,21 0 1 1,32 0 0 4294963248,22 0 0 0,6 0 0 0",
        ];
        texts
            .iter()
            .map(|text| {
                let insns = crate::parse_ddd(text).unwrap();
                validate(&insns).unwrap_or_else(|e| panic!("{text}: {e}"))
            })
            .collect()
    }

    /// On every frame, the rewritten program on pktd's view decides what
    /// the program decides on the kernel's view.
    #[test]
    fn rewritten_programs_decide_on_the_wire_as_on_the_kernels_view() {
        let frames = kernel_frames(3000);
        for (index, program) in programs().into_iter().enumerate() {
            assert!(reads_vlan_metadata(&program));
            let rewritten = for_wire_view(&program).unwrap();
            let mut accepted = 0;
            for (frame, tag) in &frames {
                let tag = if frame.len() >= 12 { *tag } else { None };
                let metadata = Metadata {
                    vlan: tag,
                    ..Metadata::default()
                };
                let on_wire = wire(frame, tag);
                let verdict = interpret_with(&program, frame, frame.len() as u32, &metadata);
                // The capture length counts the tag put back.
                let expected = match (verdict, tag) {
                    (0, _) | (0xffff_fffc.., _) | (_, None) => verdict,
                    (_, Some(_)) => verdict + 4,
                };
                assert_eq!(
                    interpret_with(&rewritten, &on_wire, on_wire.len() as u32, &metadata),
                    expected,
                    "program {:?} on {frame:?} tag {tag:?}",
                    program.insns()
                );
                accepted += usize::from(verdict != 0);
            }
            // libpcap's programs tell frames apart; every one accepts some.
            assert!(accepted > 0, "program {index}");
            assert!(index > 1 || accepted < frames.len(), "program {index}");
        }
    }

    #[test]
    fn an_indirect_load_across_the_ethertype_rejects_the_packet() {
        // x = [13] & 3; A = vlan_avail; ldh [x + 9]; ret a: across the
        // EtherType when x = 2 and the tag is in metadata.
        let program = validate(
            &crate::parse_ddd("6,48 0 0 13,84 0 0 3,7 0 0 0,32 0 0 4294963248,72 0 0 9,22 0 0 0")
                .unwrap(),
        )
        .unwrap();
        let rewritten = for_wire_view(&program).unwrap();
        for x in 0..4u8 {
            for tag in [None, Some(10)] {
                let mut frame: Vec<u8> = (0..60).map(|i| i as u8 | 0x80).collect();
                frame[13] = x;
                let metadata = Metadata {
                    vlan: tag,
                    ..Metadata::default()
                };
                let on_wire = wire(&frame, tag);
                let expected = match interpret_with(&program, &frame, 60, &metadata) {
                    _ if x == 2 && tag.is_some() => 0,
                    verdict if tag.is_some() => verdict + 4,
                    verdict => verdict,
                };
                assert_ne!(interpret_with(&program, &frame, 60, &metadata), 0);
                assert_eq!(
                    interpret_with(&rewritten, &on_wire, on_wire.len() as u32, &metadata),
                    expected,
                    "x {x} tag {tag:?}"
                );
            }
        }
    }

    #[test]
    fn programs_without_vlan_metadata_are_left_alone() {
        for expression in ["inbound and udp", "ifindex 3", "vlan 10 and ip", ""] {
            let program = crate::compile(expression, true, 262_144).unwrap();
            assert!(!reads_vlan_metadata(&program), "{expression}");
            assert_eq!(for_wire_view(&program).unwrap(), program);
        }
    }

    #[test]
    fn a_constant_load_across_the_ethertype_is_refused() {
        let program =
            validate(&crate::parse_ddd("3,32 0 0 4294963248,32 0 0 10,22 0 0 0").unwrap()).unwrap();
        let error = for_wire_view(&program).unwrap_err();
        assert!(
            matches!(error, FilterError::KernelView { index: 1, .. }),
            "{error}"
        );
        assert!(
            error.to_string().contains("across the EtherType"),
            "{error}"
        );
    }
}
