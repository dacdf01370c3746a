//! Differential: the native code `pktd-translate` makes of a classic-BPF
//! filter, run by the real kernel, against the reference interpreter
//! (`pktd_filter::interpret_with`, given the metadata a test run's socket
//! buffer carries, for the ancillary loads). Needs root: it loads the
//! kernel program.
//!
//! One kernel program is loaded, unattached (`Attachment::detached`, TC,
//! the shared engine), with one client. Per input: a valid program is
//! built from the input, becomes the client's filter (`set_filter`:
//! translated, verified, tail-called), and a packet from the input goes
//! through BPF_PROG_TEST_RUN as if received, whole and cut short at a few
//! lengths. The client's ring must hold a record exactly when the
//! interpreter accepts the packet, and the record must be the packet's
//! first `min(verdict, snaplen, length)` bytes, as
//! `tests/tests/differential.rs` checks it for the corpus.
//!
//! Input: a byte whose low 6 bits + 1 are the number N of instructions (bit
//! 7: the program ends `ret a` rather than `ret #262144`), N descriptors of
//! 4 bytes (a shape from a small vocabulary, then its three parameters),
//! then the packet. Descriptors are cut to fit (jumps stay inside the
//! program, divisions by a constant never by zero, shifts under 32), so
//! most inputs build a valid program; the rare invalid ones (a scratch
//! cell read before it is written on some path) are skipped.
#![no_main]

use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use pktd_common::{DIR_IN, MAX_CAPLEN};
use pktd_daemon::{
    capture::{Attachment, ClientSpec, Engine, Hook, Ring},
    error_chain as chain,
};
use pktd_filter::{CbpfInsn, Metadata, ValidProgram, interpret_with, opcodes::*, validate};

/// Bytes of an Ethernet header.
const ETH_HLEN: usize = 14;
/// Longest packet tried (an Ethernet frame with two VLAN tags); the test
/// run takes frames up to about a page.
const MAX_PACKET: usize = 1522;

fuzz_target!(|data: &[u8]| {
    let Some((program, packet)) = build(data) else {
        return;
    };
    BENCH.with_borrow_mut(|bench| {
        let (attachment, ring) = bench.get_or_insert_with(load);
        attachment
            .set_filter(ring.slot(), &program)
            .unwrap_or_else(|error| panic!("set_filter: {}: {:?}", chain(&error), program.insns()));
        // Loading the filter costs far more than a test run: try the
        // packet whole and cut short at a few places too.
        let len = packet.len();
        let mut cuts = vec![len, len / 2, 34, 54, 60];
        cuts.retain(|&cut| cut <= len && test_runs(&packet[..cut]));
        cuts.sort_unstable();
        cuts.dedup();
        for cut in cuts {
            compare(attachment, ring, &program, &packet[..cut]);
        }
    });
});

/// Whether BPF_PROG_TEST_RUN takes `frame` (Linux `net/bpf/test_run.c`):
/// not when it is shorter than an Ethernet header, nor (since a 2026 fix)
/// when its ethertype says IPv4 or IPv6 and it is too short for that
/// header, which a real interface delivers to TC all the same.
fn test_runs(frame: &[u8]) -> bool {
    const IPV4: [u8; 2] = [0x08, 0x00];
    const IPV6: [u8; 2] = [0x86, 0xdd];
    let network = frame.len().saturating_sub(ETH_HLEN);
    match frame.get(12..ETH_HLEN) {
        None => false,
        Some(ethertype) if ethertype == IPV4 => network >= 20,
        Some(ethertype) if ethertype == IPV6 => network >= 40,
        Some(_) => true,
    }
}

/// One packet through the kernel: the record, if any, against the
/// interpreter's verdict.
fn compare(attachment: &Attachment, ring: &mut Ring, program: &ValidProgram, packet: &[u8]) {
    attachment
        .test_run(DIR_IN, packet, 1)
        .unwrap_or_else(|error| {
            panic!(
                "test run of a {}-byte frame: {}",
                packet.len(),
                chain(&error)
            )
        });
    let record = ring.next_record();
    assert!(ring.next_record().is_none(), "one packet, two records");

    let wire = packet.len() as u32;
    let verdict = interpret_with(program, packet, wire, &test_run_metadata(packet));
    let engine = attachment.slot_engine(ring.slot());
    match (verdict, record) {
        (0, None) => {}
        (0, Some(record)) => panic!(
            "the interpreter rejects, the kernel ({engine:?}) captured {} bytes; program {:?}",
            record.data.len(),
            program.insns()
        ),
        (_, None) => panic!(
            "the interpreter accepts ({verdict}), the kernel ({engine:?}) did not capture; \
             program {:?}",
            program.insns()
        ),
        (_, Some(record)) => {
            let expected = verdict.min(MAX_CAPLEN).min(wire) as usize;
            assert_eq!(
                (record.wire_len, record.direction),
                (wire, DIR_IN),
                "record header"
            );
            assert!(
                record.data == packet[..expected],
                "the interpreter accepts with {verdict}: {expected} bytes expected, the \
                 kernel ({engine:?}) captured {} (equal as far as they go: {}); program {:?}",
                record.data.len(),
                record.data[..] == packet[..record.data.len().min(expected)],
                program.insns()
            );
        }
    }
}

/// What a test run's socket buffer says of `frame` (Linux
/// `eth_type_trans` on the loopback device, address and broadcast address
/// all zero): the packet type from the destination MAC, the protocol from
/// the EtherType (or 802.3/802.2 below 0x600); ifindex 1; no VLAN tag in
/// metadata (a test run leaves tags in the frame).
fn test_run_metadata(frame: &[u8]) -> Metadata {
    let destination = &frame[..6];
    let packet_type = if destination == [0; 6] {
        0 // PACKET_HOST
    } else if destination[0] & 1 != 0 {
        2 // PACKET_MULTICAST (the broadcast address is all zero)
    } else {
        3 // PACKET_OTHERHOST
    };
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    let protocol = if ethertype >= 0x600 {
        ethertype
    } else if frame.get(14..16) == Some(&[0xff, 0xff]) {
        1 // ETH_P_802_3
    } else {
        4 // ETH_P_802_2
    };
    Metadata {
        protocol,
        packet_type,
        ifindex: 1,
        vlan: None,
    }
}

thread_local! {
    /// The loaded kernel program and its one client, made on first use.
    static BENCH: RefCell<Option<(Attachment, Ring)>> = const { RefCell::new(None) };
}

fn load() -> (Attachment, Ring) {
    let mut attachment =
        Attachment::detached(Engine::Shared, Hook::Tc).expect("loading the kernel program");
    let reject = validate(&[CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 0)]).expect("ret #0");
    let ring = attachment
        .add_client(&ClientSpec::default(), &reject)
        .expect("adding the client");
    (attachment, ring)
}

/// The program and the packet an input describes.
fn build(data: &[u8]) -> Option<(ValidProgram, &[u8])> {
    let (&head, rest) = data.split_first()?;
    let count = usize::from(head & 0x3f) + 1;
    let descriptors = rest.get(..count * 4)?;
    let packet = &rest[count * 4..];
    let mut insns: Vec<CbpfInsn> = descriptors
        .chunks_exact(4)
        .enumerate()
        .map(|(pc, d)| insn(d[0], d[1], d[2], d[3], count - pc - 1))
        .collect();
    insns.push(if head & 0x80 != 0 {
        CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0)
    } else {
        CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 262_144)
    });
    let program = validate(&insns).ok()?;
    Some((program, &packet[..packet.len().min(MAX_PACKET)]))
}

/// One instruction of the vocabulary; `room` is how many instructions
/// follow before the final return (a jump may skip up to all of them).
fn insn(shape: u8, a: u8, b: u8, c: u8, room: usize) -> CbpfInsn {
    let size = [BPF_W, BPF_H, BPF_B][usize::from(a) % 3];
    let jump = |offset: u8| (usize::from(offset) % (room + 1)) as u8;
    let op = ALU_OPS[usize::from(a) % ALU_OPS.len()];
    match shape % 16 {
        // Sometimes an ancillary load: protocol, pkttype, ifindex, the
        // VLAN tag and its presence.
        0 if a >= 240 => CbpfInsn::new(
            BPF_LD | size | BPF_ABS,
            0,
            0,
            SKF_AD_OFF + [0, 4, 8, 44, 48][usize::from(c) % 5],
        ),
        0 => CbpfInsn::new(BPF_LD | size | BPF_ABS, 0, 0, offset(b, c)),
        1 => CbpfInsn::new(BPF_LD | size | BPF_IND, 0, 0, offset(b, c)),
        2 => CbpfInsn::new(BPF_LDX | BPF_B | BPF_MSH, 0, 0, offset(b, c)),
        3 => CbpfInsn::new(BPF_LD | BPF_IMM, 0, 0, constant(b, c)),
        4 => CbpfInsn::new(BPF_LDX | BPF_IMM, 0, 0, constant(b, c)),
        5 => CbpfInsn::new([BPF_LD, BPF_LDX][usize::from(a & 1)] | BPF_LEN, 0, 0, 0),
        6 => {
            let k = match op {
                BPF_DIV | BPF_MOD => constant(b, c).max(1),
                BPF_LSH | BPF_RSH => constant(b, c) % 32,
                _ => constant(b, c),
            };
            CbpfInsn::new(BPF_ALU | op | BPF_K, 0, 0, k)
        }
        7 if op == BPF_NEG => CbpfInsn::new(BPF_ALU | BPF_NEG, 0, 0, 0),
        7 => CbpfInsn::new(BPF_ALU | op | BPF_X, 0, 0, 0),
        8 => CbpfInsn::new(BPF_MISC | [BPF_TAX, BPF_TXA][usize::from(a & 1)], 0, 0, 0),
        9 => CbpfInsn::new(
            [BPF_ST, BPF_STX][usize::from(b & 1)],
            0,
            0,
            u32::from(a % 16),
        ),
        10 => CbpfInsn::new(
            [BPF_LD, BPF_LDX][usize::from(b & 1)] | BPF_MEM,
            0,
            0,
            u32::from(a % 16),
        ),
        11 | 12 => {
            let test = [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET][usize::from(a) % 4];
            let src = if shape % 16 == 11 { BPF_K } else { BPF_X };
            let k = constant(a >> 2, c);
            CbpfInsn::new(BPF_JMP | test | src, jump(b), jump(c), k)
        }
        13 => CbpfInsn::new(BPF_JMP | BPF_JA, 0, 0, u32::from(jump(b))),
        14 => CbpfInsn::new(BPF_RET | BPF_K, 0, 0, constant(b, c)),
        _ => CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0),
    }
}

const ALU_OPS: [u16; 11] = [
    BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_NEG, BPF_MOD,
    BPF_XOR,
];

/// A load offset: mostly inside the usual headers, sometimes at the ends
/// of frames and far past them (never negative: pktd refuses those).
fn offset(b: u8, c: u8) -> u32 {
    match b {
        0..=199 => u32::from(b),
        200..=239 => u32::from(b - 200) * 40 + u32::from(c % 40),
        _ => [
            1500,
            1513,
            1514,
            1518,
            1521,
            4000,
            65_535,
            65_536,
            0x7fff_fffe,
            0x7fff_ffff,
            0x0010_0000,
            0x4000_0000,
            0x7fff_fff0,
            255,
            256,
            0xffff,
        ][usize::from(b - 240)],
    }
}

/// A constant for comparisons, arithmetic and returns: small numbers, the
/// usual ethertypes and protocols, the edges of 8, 16 and 32 bits.
fn constant(b: u8, c: u8) -> u32 {
    match b % 64 {
        0..=31 => u32::from(b % 64) + u32::from(c),
        32 => 0x0800,
        33 => 0x86dd,
        34 => 0x0806,
        35 => 0x8100,
        36 => 0x88a8,
        37 => 0xff,
        38 => 0x100,
        39 => 0xffff,
        40 => 0x1_0000,
        41 => 0x7fff_ffff,
        42 => 0x8000_0000,
        43 => 0xffff_ffff,
        44 => 0xffff_fffe,
        45 => 262_144,
        46 => 65_535,
        47 => 65_536,
        48 => 1500,
        49 => 1514,
        _ => u32::from_le_bytes([b, c, b ^ c, c.rotate_left(3)]),
    }
}
