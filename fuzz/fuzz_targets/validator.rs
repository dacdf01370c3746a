//! The classic-BPF validator (`pktd_filter::validate`) on arbitrary
//! programs, and on the valid ones the reference interpreter and the
//! snaplen window (`pktd_filter::confine`).
//!
//! Input: a mode byte, a 2-byte window, then the program and the packet.
//! Mode bit 0 clear: a count byte N, N instructions of 8 bytes each
//! (`struct sock_filter`, `pktd_filter::parse_binary`), the packet after
//! them. Bit 0 set: `tcpdump -ddd` text up to a NUL byte
//! (`pktd_filter::parse_ddd`), the packet after it.
//!
//! Checked: nothing panics; the `-ddd` and binary forms read back what
//! they write; the validator agrees with the running kernel
//! (`SO_ATTACH_FILTER`), save for the two kinds of load only pktd refuses;
//! a program written for the kernel's view of a frame decides the same on
//! pktd's once rewritten (`pktd_filter::for_wire_view`);
//! and the window's promise (`pktd-filter/src/window.rs`): the confined
//! program on a packet returns `window` where the original accepts the
//! packet cut to `window` bytes, and 0 where it does not; the same for the
//! header-only view (`pktd_filter::confine_to_headers`), the cut being
//! where the packet's headers end (at most the window).
#![no_main]

use libfuzzer_sys::fuzz_target;
use pktd_filter::{
    CbpfInsn, FilterError, Metadata, Rule, ValidProgram, confine, confine_to_headers,
    for_wire_view, format_ddd, header_end, interpret, interpret_with, kernel_accepts,
    opcodes::{Ancillary, BPF_ABS, BPF_IND, BPF_LD},
    parse_binary, parse_ddd, reads_vlan_metadata, to_binary, validate,
};

/// Longest packet tried (an Ethernet frame with two VLAN tags).
const MAX_PACKET: usize = 1522;

fuzz_target!(|data: &[u8]| {
    let Some((insns, packet, window)) = split(data) else {
        return;
    };
    assert_eq!(parse_ddd(&format_ddd(&insns)).as_ref(), Ok(&insns));
    assert_eq!(parse_binary(&to_binary(&insns)).as_ref(), Ok(&insns));

    let verdict = validate(&insns);
    agree_with_the_kernel(&insns, &verdict);
    let Ok(program) = verdict else { return };

    kernel_view(&program, packet, window);
    // An ancillary load reads metadata that follows from the first `reach`
    // bytes of the frame: a confined program fails it when fewer are
    // shown, which the original on a cut frame (no metadata given) cannot
    // tell. Those cases are left to the unit tests.
    let reach = program
        .insns()
        .iter()
        .filter(|insn| insn.code & 0xe7 == BPF_LD | BPF_ABS)
        .filter_map(|insn| Ancillary::at(insn.k))
        .map(Ancillary::reach)
        .max()
        .unwrap_or(0);
    // Wire lengths as captured and as cut short by a snaplen.
    for wire in [packet.len() as u32, packet.len() as u32 + 100] {
        if reach > window {
            break;
        }
        let whole = interpret(&program, packet, wire);
        let Ok(confined) = confine(&program, window) else {
            // Only a jump stretched past 255, or past 4096 instructions.
            continue;
        };
        let cut = &packet[..packet.len().min(window as usize)];
        let expected = match interpret(&program, cut, wire) {
            0 => 0,
            _ => window,
        };
        assert_eq!(
            interpret(&confined, packet, wire),
            expected,
            "window {window}, wire {wire}, whole-packet verdict {whole}"
        );
        let Ok(headers) = confine_to_headers(&program, Some(window), true) else {
            // A jump past 255, or no two scratch cells left.
            continue;
        };
        // The chain walked on the packet cut to the window: a byte it needs
        // past the window makes the end the window (it is never read).
        let within = &packet[..packet.len().min(window as usize)];
        let end = match header_end(within, wire) {
            Some(end) => Some(end.min(window)),
            None if packet.len() > window as usize => Some(window),
            // Shorter than the window and the chain fails: whether the byte
            // it lacks lies past the window is not told here.
            None => continue,
        };
        if end.is_some_and(|end| reach > end) {
            continue;
        }
        let expected = match end {
            None => 0,
            Some(end) => {
                let cut = &packet[..packet.len().min(end as usize)];
                match interpret(&program, cut, wire) {
                    0 => 0,
                    _ => end,
                }
            }
        };
        assert_eq!(
            interpret(&headers, packet, wire),
            expected,
            "headers, window {window}, wire {wire}, whole-packet verdict {whole}"
        );
    }
});

/// A program written for the kernel's view (it reads the VLAN metadata),
/// rewritten for pktd's (`pktd_filter::for_wire_view`): on the frame with
/// a tag put back at byte 12, the rewritten program decides what the
/// program decides on the frame without it, the tag in metadata (its
/// capture length 4 more, counting the tag). An
/// indirect load found to cross the EtherType rejects instead (the one
/// documented difference), so with indirect loads a rejection is allowed.
fn kernel_view(program: &ValidProgram, packet: &[u8], window: u32) {
    if !reads_vlan_metadata(program) || packet.len() < 12 {
        return;
    }
    let Ok(rewritten) = for_wire_view(program) else {
        // A constant load across the EtherType, a jump stretched past
        // 255, or past 4096 instructions.
        return;
    };
    let indirect = program
        .insns()
        .iter()
        .any(|insn| insn.code & 0xe7 == BPF_LD | BPF_IND);
    let tci = window as u16;
    let mut tagged = packet[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00]);
    tagged.extend_from_slice(&tci.to_be_bytes());
    tagged.extend_from_slice(&packet[12..]);
    for (on_wire, vlan) in [(packet.to_vec(), None), (tagged, Some(tci))] {
        let metadata = Metadata {
            vlan,
            ..Metadata::default()
        };
        let kernel = interpret_with(program, packet, packet.len() as u32, &metadata);
        // The capture length counts the tag put back.
        let kernel = match kernel {
            1..=0xffff_fffb if vlan.is_some() => kernel + 4,
            _ => kernel,
        };
        let pktd = interpret_with(&rewritten, &on_wire, on_wire.len() as u32, &metadata);
        assert!(
            pktd == kernel || (indirect && vlan.is_some() && pktd == 0),
            "kernel view {kernel}, pktd's view {pktd}, tag {vlan:?}"
        );
    }
}

/// The program, the packet and the window (1..=1500) in the input.
fn split(data: &[u8]) -> Option<(Vec<CbpfInsn>, &[u8], u32)> {
    let [mode, w0, w1, rest @ ..] = data else {
        return None;
    };
    let window = 1 + u32::from(u16::from_le_bytes([*w0, *w1])) % 1500;
    let (insns, packet) = if mode & 1 == 0 {
        let (&count, rest) = rest.split_first()?;
        let bytes = usize::from(count) * 8;
        if rest.len() < bytes {
            return None;
        }
        let insns = parse_binary(&rest[..bytes]).expect("whole instructions");
        (insns, &rest[bytes..])
    } else {
        let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
        let text = std::str::from_utf8(&rest[..end]).ok()?;
        let insns = parse_ddd(text).ok()?;
        (insns, rest.get(end + 1..).unwrap_or_default())
    };
    Some((insns, &packet[..packet.len().min(MAX_PACKET)], window))
}

/// The validator says what the kernel says, except that it also refuses
/// the ancillary loads pktd does not offer and negative-offset loads, which
/// the kernel takes.
fn agree_with_the_kernel(
    insns: &[CbpfInsn],
    verdict: &Result<pktd_filter::ValidProgram, FilterError>,
) {
    let kernel = kernel_accepts(insns);
    // Only EINVAL is a verdict on the program; ENOMEM (socket memory) and
    // the like say nothing about it.
    if let Err(error) = &kernel
        && error.kind() != std::io::ErrorKind::InvalidInput
    {
        return;
    }
    match (verdict, &kernel) {
        (Ok(_), Ok(())) | (Err(_), Err(_)) => {}
        (Ok(_), Err(error)) => panic!("validated, but the kernel refuses it ({error}): {insns:?}"),
        (Err(FilterError::Invalid { rule, .. }), Ok(()))
            if matches!(rule, Rule::AncillaryLoad | Rule::NegativeOffset) => {}
        (Err(error), Ok(())) => panic!("the kernel accepts it, but: {error}: {insns:?}"),
    }
}
