//! Differential: an anonymized principal's filter as the kernel runs it
//! (`pktd_filter::map_addresses`, and `confine_to_headers` when payloads
//! are hidden) on the real packet, against the client's own filter on the
//! packet the client gets (`pktd_anon::Anonymizer::rewrite`, cut where the
//! headers end when payloads are hidden: the filter may not read even the
//! zeroes). Every verdict must be the same, return value included: a
//! mapped filter that decides otherwise learnt something the client does
//! not see. Programs the mapping refuses are fine; programs it accepts
//! must hold on every packet the guard lets through.
//!
//! Input: a mode byte (bits 0-1: MAC zero, hash, keep; bit 2: payload
//! zero), a count byte N (1 to 48 instructions), N descriptors of 4 bytes
//! (a shape from a vocabulary that resembles libpcap's output: EtherType,
//! protocol and address loads, prefix masks, compares with protocol
//! numbers or with words of the input, `ldx msh`, `x + k` loads, scratch,
//! returns), then the packet (at most 1522 bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode};
use pktd_filter::{
    CbpfInsn, ValidProgram, confine_to_headers, header_end, interpret, map_addresses, opcodes::*,
    validate,
};

const KEY: [u8; 32] = *b"pktd fuzz: the anonymized target";
const MAX_PACKET: usize = 1522;

fuzz_target!(|data: &[u8]| {
    let Some((mac, payload, program, packet)) = build(data) else {
        return;
    };
    let key = CryptoPan::new(&KEY);
    let macs_visible = mac == MacMode::Keep;
    let Ok(mapped) = map_addresses(&program, &key, macs_visible) else {
        return;
    };
    let hidden = payload == PayloadMode::Zero;
    let as_run = if hidden {
        match confine_to_headers(&mapped, None, false) {
            Ok(confined) => confined,
            // No two scratch cells left, or a jump stretched too far: the
            // daemon refuses such a filter.
            Err(_) => return,
        }
    } else {
        mapped
    };
    let wire = packet.len() as u32;
    let real = interpret(&as_run, packet, wire);
    let pass_all = map_addresses(&ret(65535), &key, macs_visible).expect("the guard alone");
    if interpret(&pass_all, packet, wire) == 0 {
        assert_eq!(real, 0, "the guard drops this frame, the filter did not");
        return;
    }
    let mut seen = packet.to_vec();
    Anonymizer::new(CryptoPan::new(&KEY), mac, payload).rewrite(&mut seen, wire);
    let client = if hidden {
        match header_end(packet, wire) {
            // The confined program fails where the prologue fails.
            None => 0,
            Some(end) => interpret(&program, &seen[..(end as usize).min(seen.len())], wire),
        }
    } else {
        interpret(&program, &seen, wire)
    };
    assert_eq!(
        real,
        client,
        "mapped on the real packet {real}, the client's filter on what it sees {client}; \
         program {:?}; mac {mac:?}, payload {payload:?}",
        program.insns()
    );
});

fn ret(k: u32) -> ValidProgram {
    validate(&[CbpfInsn::new(BPF_RET | BPF_K, 0, 0, k)]).expect("ret #k")
}

/// Constants a compare uses when it does not take a word of the input.
const CONSTANTS: [u32; 16] = [
    0x0800, 0x86dd, 0x0806, 0x8035, 0x8100, 0x88a8, 6, 17, 1, 58, 0, 8, 128, 0x1fff, 0x45, 0x60,
];
/// Where the network header may be.
const L3: [u32; 3] = [14, 18, 22];

fn build(data: &[u8]) -> Option<(MacMode, PayloadMode, ValidProgram, &[u8])> {
    let (&mode, rest) = data.split_first()?;
    let (&count, rest) = rest.split_first()?;
    let n = usize::from(count % 48) + 1;
    if rest.len() < 4 * n {
        return None;
    }
    let (descriptors, packet) = rest.split_at(4 * n);
    if packet.len() < 14 || packet.len() > MAX_PACKET {
        return None;
    }
    let mac = [MacMode::Zero, MacMode::Hash, MacMode::Keep, MacMode::Keep][usize::from(mode & 3)];
    let payload = if mode & 4 != 0 {
        PayloadMode::Zero
    } else {
        PayloadMode::Keep
    };
    // The program: the descriptors, then `ret #65535` and `ret #0` that
    // jumps can reach.
    let len = n + 2;
    let mut insns: Vec<CbpfInsn> = descriptors
        .chunks_exact(4)
        .enumerate()
        .map(|(pc, d)| instruction(pc, len, [d[0], d[1], d[2], d[3]]))
        .collect();
    insns.push(CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 65535));
    insns.push(CbpfInsn::new(BPF_RET | BPF_K, 0, 0, 0));
    let program = validate(&insns).ok()?;
    Some((mac, payload, program, packet))
}

/// Instruction `pc` of a program of `len` from descriptor `d`.
fn instruction(pc: usize, len: usize, d: [u8; 4]) -> CbpfInsn {
    let [shape, a, b, c] = d;
    let l3 = L3[usize::from(a) % 3];
    let word = u32::from_be_bytes([a, b, c, a ^ c]);
    // Forward jump offsets that stay inside the program.
    let room = (len - pc - 2) as u32;
    let jt = (u32::from(b) % (room + 1)).min(255) as u8;
    let jf = (u32::from(c) % (room + 1)).min(255) as u8;
    let load = |size: u16, k: u32| CbpfInsn::new(BPF_LD | size | BPF_ABS, 0, 0, k);
    match shape % 20 {
        0 => load(BPF_H, 12 + 4 * (u32::from(b) % 3)),
        1 => load(BPF_B, l3 + [9, 6, 0, 20, 40][usize::from(b) % 5]),
        // Address words: IPv4 source and destination, IPv6 words, ARP.
        2 => load(
            BPF_W,
            l3 + [12, 16, 8, 12, 16, 20, 24, 28, 32, 36, 14, 24][usize::from(b) % 12],
        ),
        3 => load([BPF_B, BPF_H, BPF_W][usize::from(b) % 3], u32::from(c) % 96),
        4 => {
            let bits = u32::from(b) % 33;
            CbpfInsn::new(
                BPF_ALU | BPF_AND | BPF_K,
                0,
                0,
                u32::MAX.checked_shl(32 - bits).unwrap_or(0),
            )
        }
        5 => CbpfInsn::new(BPF_ALU | BPF_AND | BPF_K, 0, 0, word),
        6 | 7 => CbpfInsn::new(
            BPF_JMP | BPF_JEQ | BPF_K,
            jt,
            jf,
            CONSTANTS[usize::from(a) % 16],
        ),
        8 => CbpfInsn::new(BPF_JMP | BPF_JEQ | BPF_K, jt, jf, word),
        9 => CbpfInsn::new(
            BPF_JMP | BPF_JSET | BPF_K,
            jt,
            jf,
            [0x1fff, 0xf0, 0x0f, word][usize::from(a) % 4],
        ),
        10 => CbpfInsn::new(BPF_LDX | BPF_B | BPF_MSH, 0, 0, l3),
        11 => CbpfInsn::new(
            BPF_LD | [BPF_B, BPF_H, BPF_W][usize::from(b) % 3] | BPF_IND,
            0,
            0,
            l3 + u32::from(c) % 48,
        ),
        12 => CbpfInsn::new(
            BPF_JMP | [BPF_JGT, BPF_JGE][usize::from(a) % 2] | BPF_K,
            jt,
            jf,
            word,
        ),
        13 => CbpfInsn::new(BPF_MISC | [BPF_TAX, BPF_TXA][usize::from(a) % 2], 0, 0, 0),
        14 => CbpfInsn::new(BPF_ST, 0, 0, u32::from(b) % 16),
        15 => CbpfInsn::new(BPF_LD | BPF_MEM, 0, 0, u32::from(b) % 16),
        16 => CbpfInsn::new(BPF_RET | BPF_A, 0, 0, 0),
        17 => CbpfInsn::new(BPF_JMP | BPF_JA, 0, 0, u32::from(jt)),
        18 => CbpfInsn::new(BPF_LDX | BPF_W | BPF_IMM, 0, 0, u32::from(c) % 64),
        _ => CbpfInsn::new(
            BPF_ALU | [BPF_ADD, BPF_RSH, BPF_OR][usize::from(a) % 3] | BPF_K,
            0,
            0,
            u32::from(c) % 32,
        ),
    }
}
