//! Header-only views: a client program confined, per packet, to the
//! packet's headers.
//!
//! A principal with `snap = "headers"` sees every packet cut after its
//! transport header, and one whose payload is hidden (anonymization with
//! `payload = "zero"`) must not learn payload bytes through its filter.
//! Both need, per packet, where the headers end: [`confine_to_headers`]
//! puts a prologue in front of the client's program that computes it (the
//! chain below) into a scratch cell, then checks every load of the client
//! against it, the way [`crate::confine`] checks loads against a fixed
//! window. With `cut`, an accepting program returns that length, and the
//! kernel program's `min(verdict, snaplen)` cuts the record there: the cut
//! is computed per packet, in the kernel, by the same code that confines
//! the loads.
//!
//! The header chain (the same as `pktd_anon`'s frame layout, which a test
//! checks):
//! - Ethernet, then at most two VLAN tags (TPID 0x8100, 0x88a8 or 0x9100);
//!   a third tag ends the chain there;
//! - IPv4 (version 4, IHL at least 5, options included): a non-first
//!   fragment ends after the IP header; TCP adds its data offset (at least
//!   20), UDP and ICMP 8 bytes; anything else ends after the IP header;
//! - IPv6 (version 6): at most [`IPV6_EXTENSION_HEADERS`] extension headers
//!   (Hop-by-Hop, Routing, Destination, Mobility, HIP, Shim6, AH,
//!   Fragment); a non-first fragment ends after its fragment header; then
//!   TCP, UDP or ICMPv6 as above;
//! - ARP and RARP: the whole message (8 + 2·hlen + 2·plen);
//! - anything else, or an IP header whose version field is wrong: after
//!   the link header.
//!
//! A frame too short for a header its own fields announce fails a load in
//! the prologue and is not delivered (classic BPF ends a program with 0 on
//! a load past the packet).

use crate::{
    CbpfInsn, FilterError, ValidProgram,
    asm::{Asm, To},
    opcodes::{
        Ancillary, BPF_A, BPF_ABS, BPF_ADD, BPF_ALU, BPF_AND, BPF_B, BPF_H, BPF_IMM, BPF_IND,
        BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_LDX, BPF_LSH, BPF_MEM,
        BPF_MISC, BPF_MSH, BPF_RET, BPF_RSH, BPF_ST, BPF_SUB, BPF_TAX, BPF_TXA, BPF_X,
    },
    validate,
    window::{class, load_size, mode, splice},
};

pub use pktd_common::IPV6_EXTENSION_HEADERS;

/// Scratch memory cells in classic BPF.
const SCRATCH_CELLS: u32 = 16;

/// `program` with every load confined, per packet, to the packet's headers
/// (at most `window` bytes, when the principal also has a fixed snap
/// length); with `cut`, an accepting program returns where the headers end
/// (so the record is cut there), otherwise `window` (or what the program
/// returned, without a window). Fails when the program leaves fewer than
/// two scratch cells free (the prologue needs them), or when a rewritten
/// jump no longer fits the kernel's rules.
pub fn confine_to_headers(
    program: &ValidProgram,
    window: Option<u32>,
    cut: bool,
) -> Result<ValidProgram, FilterError> {
    let insns = program.insns();
    let (end, temp) = free_cells(insns)?;
    let cells = Cells { end, temp };
    let expansions: Vec<Vec<CbpfInsn>> = insns
        .iter()
        .map(|insn| expand(*insn, cells, window, cut))
        .collect();
    let mut out = prologue(cells, window);
    out.extend(splice(insns, &expansions)?);
    validate(&out)
}

/// Instructions [`confine_to_headers`] puts in front of a program (with
/// or without a window): what the daemon does not charge to a principal's
/// `max_filter_insns`, since the policy imposes it.
pub fn header_prologue_len(window: Option<u32>) -> usize {
    prologue(Cells { end: 15, temp: 14 }, window).len()
}

/// Where the headers end for `packet` (of `wire_len` bytes on the wire,
/// `packet` being what was captured), as the prologue computes it; `None`
/// when a load of the prologue fails (the frame is shorter than its
/// headers say). For the daemon's user-space rewriting and for tests.
pub fn header_end(packet: &[u8], wire_len: u32) -> Option<u32> {
    let cells = Cells { end: 15, temp: 14 };
    let mut program = prologue(cells, None);
    program.push(insn(BPF_LD | BPF_MEM, 0, 0, cells.end));
    program.push(insn(BPF_RET | BPF_A, 0, 0, 0));
    let program = validate(&program).expect("the prologue is a valid program");
    match crate::interpret(&program, packet, wire_len) {
        0 => None,
        end => Some(end),
    }
}

/// The scratch cells the confinement uses.
#[derive(Clone, Copy)]
struct Cells {
    /// Where the headers end (at most the window): set by the prologue,
    /// read by every check.
    end: u32,
    /// Scratch for the prologue and the checks.
    temp: u32,
}

/// Two scratch cells the program does not use, the highest ones.
fn free_cells(insns: &[CbpfInsn]) -> Result<(u32, u32), FilterError> {
    let mut used = [false; SCRATCH_CELLS as usize];
    for insn in insns {
        let touches_memory = match class(insn.code) {
            BPF_LD | BPF_LDX => mode(insn.code) == BPF_MEM,
            BPF_ST | 0x03 => true,
            _ => false,
        };
        if touches_memory && insn.k < SCRATCH_CELLS {
            used[insn.k as usize] = true;
        }
    }
    let mut free = (0..SCRATCH_CELLS)
        .rev()
        .filter(|&cell| !used[cell as usize]);
    match (free.next(), free.next()) {
        (Some(end), Some(temp)) => Ok((end, temp)),
        _ => Err(FilterError::Confine {
            reason: "the filter uses more than 14 of the 16 scratch memory cells; \
                     a header-only view needs two"
                .to_owned(),
        }),
    }
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> CbpfInsn {
    CbpfInsn::new(code, jt, jf, k)
}

const REJECT: CbpfInsn = CbpfInsn {
    code: BPF_RET | BPF_K,
    jt: 0,
    jf: 0,
    k: 0,
};

/// What one client instruction becomes.
fn expand(original: CbpfInsn, cells: Cells, window: Option<u32>, cut: bool) -> Vec<CbpfInsn> {
    let load_end = insn(BPF_LD | BPF_MEM, 0, 0, cells.end);
    match class(original.code) {
        BPF_LD if mode(original.code) == BPF_ABS => {
            // A is dead here: the load overwrites it. An ancillary load
            // needs the bytes its value follows from.
            let needed = match Ancillary::at(original.k) {
                Some(ancillary) => Some(ancillary.reach()),
                None => original.k.checked_add(load_size(original.code)),
            };
            match needed {
                None => vec![REJECT],
                Some(0) => vec![original],
                Some(needed) => vec![
                    load_end,
                    insn(BPF_JMP | BPF_JGE | BPF_K, 1, 0, needed),
                    REJECT,
                    original,
                ],
            }
        }
        BPF_LD if mode(original.code) == BPF_IND => {
            // A is dead, X must survive: check x + k + size <= end with X
            // holding the end, then give X its value back (the wrapping
            // add and subtract cancel out).
            let reach = original.k.wrapping_add(load_size(original.code));
            vec![
                insn(BPF_MISC | BPF_TXA, 0, 0, 0),
                insn(BPF_ALU | BPF_ADD | BPF_K, 0, 0, reach),
                insn(BPF_ST, 0, 0, cells.temp),
                insn(BPF_LDX | BPF_MEM, 0, 0, cells.end),
                insn(BPF_JMP | BPF_JGT | BPF_X, 0, 1, 0),
                REJECT,
                insn(BPF_LD | BPF_MEM, 0, 0, cells.temp),
                insn(BPF_ALU | BPF_SUB | BPF_K, 0, 0, reach),
                insn(BPF_MISC | BPF_TAX, 0, 0, 0),
                original,
            ]
        }
        BPF_LDX if mode(original.code) == BPF_MSH => vec![
            // A is live: keep it in the temporary cell meanwhile.
            insn(BPF_ST, 0, 0, cells.temp),
            load_end,
            insn(BPF_JMP | BPF_JGT | BPF_K, 1, 0, original.k),
            REJECT,
            insn(BPF_LD | BPF_MEM, 0, 0, cells.temp),
            original,
        ],
        BPF_RET if original.code == BPF_RET | BPF_K && original.k != 0 => match (cut, window) {
            (true, _) => vec![load_end, insn(BPF_RET | BPF_A, 0, 0, 0)],
            (false, Some(window)) => vec![insn(BPF_RET | BPF_K, 0, 0, window)],
            (false, None) => vec![original],
        },
        BPF_RET if original.code == BPF_RET | BPF_A => {
            let mut out = vec![insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0), REJECT];
            match (cut, window) {
                (true, _) => out.extend([load_end, insn(BPF_RET | BPF_A, 0, 0, 0)]),
                (false, Some(window)) => out.push(insn(BPF_RET | BPF_K, 0, 0, window)),
                (false, None) => out.push(original),
            }
            out
        }
        _ => vec![original],
    }
}

/// A jump target in the prologue.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Label {
    Done,
    Tag1,
    Tag2,
    Ether,
    Ipv4,
    Ipv4Version,
    Ipv4Length,
    Ipv4First,
    Ipv6,
    Ipv6Version,
    Arp,
    Tcp,
    TcpLength,
    Plus8,
    /// Where the (capped) end is stored.
    Store,
    /// A load past the window: the end is the window.
    PastWindow,
    /// Per IPv6 extension header round: its three kinds of header, the
    /// fragment cases, the next round, and the way out to the shared code.
    Extension(usize, Round),
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Round {
    Eight,
    Ah,
    Fragment,
    LaterFragment,
    FirstFragment,
    Next,
    ToTcp,
    ToPlus8,
    ToDone,
}

const VLAN_TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];

/// `ld size [x + k]` for the prologue; with a window, first a check that
/// the bytes lie inside it, else to `PastWindow`: the prologue reads
/// nothing past the window, so that nothing there decides where the
/// headers end (A is dead before every load of the prologue).
fn load(asm: &mut Asm<Label>, size: u16, k: u32, window: Option<u32>) {
    if let Some(window) = window {
        asm.op(BPF_MISC | BPF_TXA, 0);
        asm.op(BPF_ALU | BPF_ADD | BPF_K, k + load_size(size));
        asm.jump(BPF_JGT | BPF_K, window, To::Next, To::Over);
        asm.goto(Label::PastWindow);
    }
    asm.op(BPF_LD | size | BPF_IND, k);
}

/// `ld size [k]`, checked the same way.
fn load_abs(asm: &mut Asm<Label>, size: u16, k: u32, window: Option<u32>) {
    if let Some(window) = window {
        asm.op(BPF_LD | BPF_IMM, k + load_size(size));
        asm.jump(BPF_JGT | BPF_K, window, To::Next, To::Over);
        asm.goto(Label::PastWindow);
    }
    asm.op(BPF_LD | size | BPF_ABS, k);
}

/// The prologue: X walks the header chain; at `Done` X is where the
/// headers end, which (capped at `window`) goes to `cells.end`.
fn prologue(cells: Cells, window: Option<u32>) -> Vec<CbpfInsn> {
    use Label::*;
    let mut asm: Asm<Label> = Asm::default();
    let t = cells.temp;
    // Link layer: X = the network header's offset, A = its EtherType.
    for (offset, tag_label) in [(12, Tag1), (16, Tag2), (20, Done)] {
        asm.op(BPF_LDX | BPF_IMM, offset + 2);
        load_abs(&mut asm, BPF_H, offset, window);
        for tpid in VLAN_TPIDS {
            asm.jump(BPF_JEQ | BPF_K, tpid, To::At(tag_label), To::Next);
        }
        asm.goto(Ether);
        if tag_label != Done {
            asm.label(tag_label);
        }
    }
    asm.label(Ether);
    asm.jump(BPF_JEQ | BPF_K, 0x0800, To::At(Ipv4), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 0x86dd, To::At(Ipv6), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 0x0806, To::At(Arp), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 0x8035, To::At(Arp), To::At(Done));

    // IPv4: the protocol goes to the temporary cell, 256 for a non-first
    // fragment (no transport header).
    asm.label(Ipv4);
    load(&mut asm, BPF_B, 0, window);
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0xf0);
    asm.jump(BPF_JEQ | BPF_K, 0x40, To::At(Ipv4Version), To::At(Done));
    asm.label(Ipv4Version);
    load(&mut asm, BPF_B, 0, window);
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0x0f);
    asm.jump(BPF_JGE | BPF_K, 5, To::At(Ipv4Length), To::At(Done));
    asm.label(Ipv4Length);
    load(&mut asm, BPF_B, 9, window);
    asm.op(BPF_ST, t);
    load(&mut asm, BPF_H, 6, window);
    asm.jump(BPF_JSET | BPF_K, 0x1fff, To::Next, To::At(Ipv4First));
    asm.op(BPF_LD | BPF_IMM, 256);
    asm.op(BPF_ST, t);
    asm.label(Ipv4First);
    load(&mut asm, BPF_B, 0, window);
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0x0f);
    asm.op(BPF_ALU | BPF_LSH | BPF_K, 2);
    asm.op(BPF_ALU | BPF_ADD | BPF_X, 0);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.op(BPF_LD | BPF_MEM, t);
    asm.jump(BPF_JEQ | BPF_K, 6, To::At(Tcp), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 17, To::At(Plus8), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 1, To::At(Plus8), To::At(Done));

    // IPv6: the next header goes to the temporary cell.
    asm.label(Ipv6);
    load(&mut asm, BPF_B, 0, window);
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0xf0);
    asm.jump(BPF_JEQ | BPF_K, 0x60, To::At(Ipv6Version), To::At(Done));
    asm.label(Ipv6Version);
    load(&mut asm, BPF_B, 6, window);
    asm.op(BPF_ST, t);
    asm.op(BPF_MISC | BPF_TXA, 0);
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 40);
    asm.op(BPF_MISC | BPF_TAX, 0);
    for round in 0..IPV6_EXTENSION_HEADERS {
        extension_round(&mut asm, round, t, window);
    }
    asm.goto(Done);

    // ARP: X = X + 8 + 2 * hlen + 2 * plen.
    asm.label(Arp);
    load(&mut asm, BPF_B, 4, window);
    asm.op(BPF_ALU | BPF_LSH | BPF_K, 1);
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 8);
    asm.op(BPF_ALU | BPF_ADD | BPF_X, 0);
    asm.op(BPF_ST, t);
    load(&mut asm, BPF_B, 5, window);
    asm.op(BPF_ALU | BPF_LSH | BPF_K, 1);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.op(BPF_LD | BPF_MEM, t);
    asm.op(BPF_ALU | BPF_ADD | BPF_X, 0);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.goto(Done);

    // TCP: its data offset, when valid.
    asm.label(Tcp);
    load(&mut asm, BPF_B, 12, window);
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0xf0);
    asm.op(BPF_ALU | BPF_RSH | BPF_K, 2);
    asm.jump(BPF_JGE | BPF_K, 20, To::At(TcpLength), To::At(Done));
    asm.label(TcpLength);
    asm.op(BPF_ALU | BPF_ADD | BPF_X, 0);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.goto(Done);

    // UDP, ICMP, ICMPv6: 8 bytes.
    asm.label(Plus8);
    asm.op(BPF_MISC | BPF_TXA, 0);
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 8);
    asm.op(BPF_MISC | BPF_TAX, 0);

    if let Some(window) = window {
        // (UDP, ICMP, ICMPv6 above fall through to Done, not into this.)
        asm.goto(Done);
        // A load the chain needs lies past the window: the headers end past
        // it too, whatever the bytes there say, which are not read.
        asm.label(PastWindow);
        asm.op(BPF_LDX | BPF_IMM, window);
        asm.goto(Done);
    }
    asm.label(Done);
    asm.op(BPF_MISC | BPF_TXA, 0);
    if let Some(window) = window {
        asm.jump(BPF_JGT | BPF_K, window, To::Next, To::At(Store));
        asm.op(BPF_LD | BPF_IMM, window);
    }
    asm.label(Store);
    asm.op(BPF_ST, cells.end);
    // The client's program starts as classic BPF does, A and X 0.
    asm.op(BPF_LD | BPF_IMM, 0);
    asm.op(BPF_LDX | BPF_IMM, 0);
    asm.finish()
}

/// One round of the IPv6 extension header walk: X at the header, the
/// temporary cell holding its type.
fn extension_round(asm: &mut Asm<Label>, round: usize, t: u32, window: Option<u32>) {
    use Label::Extension as E;
    let at = |part| To::At(E(round, part));
    asm.op(BPF_LD | BPF_MEM, t);
    asm.jump(BPF_JEQ | BPF_K, 6, at(Round::ToTcp), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 17, at(Round::ToPlus8), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 58, at(Round::ToPlus8), To::Next);
    for eight in [0, 43, 60, 135, 139, 140] {
        asm.jump(BPF_JEQ | BPF_K, eight, at(Round::Eight), To::Next);
    }
    asm.jump(BPF_JEQ | BPF_K, 51, at(Round::Ah), To::Next);
    asm.jump(BPF_JEQ | BPF_K, 44, at(Round::Fragment), at(Round::ToDone));
    // (length + 1) * 8
    asm.label(E(round, Round::Eight));
    load(asm, BPF_B, 0, window);
    asm.op(BPF_ST, t);
    load(asm, BPF_B, 1, window);
    asm.op(BPF_ALU | BPF_LSH | BPF_K, 3);
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 8);
    asm.op(BPF_ALU | BPF_ADD | BPF_X, 0);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.goto(E(round, Round::Next));
    // AH: (length + 2) * 4
    asm.label(E(round, Round::Ah));
    load(asm, BPF_B, 0, window);
    asm.op(BPF_ST, t);
    load(asm, BPF_B, 1, window);
    asm.op(BPF_ALU | BPF_LSH | BPF_K, 2);
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 8);
    asm.op(BPF_ALU | BPF_ADD | BPF_X, 0);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.goto(E(round, Round::Next));
    // Fragment: 8 bytes; a later fragment has no transport header.
    asm.label(E(round, Round::Fragment));
    load(asm, BPF_B, 0, window);
    asm.op(BPF_ST, t);
    load(asm, BPF_H, 2, window);
    asm.op(BPF_ALU | BPF_AND | BPF_K, 0xfff8);
    asm.jump(
        BPF_JEQ | BPF_K,
        0,
        at(Round::FirstFragment),
        at(Round::LaterFragment),
    );
    asm.label(E(round, Round::LaterFragment));
    asm.op(BPF_MISC | BPF_TXA, 0);
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 8);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.goto(Label::Done);
    asm.label(E(round, Round::FirstFragment));
    asm.op(BPF_MISC | BPF_TXA, 0);
    asm.op(BPF_ALU | BPF_ADD | BPF_K, 8);
    asm.op(BPF_MISC | BPF_TAX, 0);
    asm.goto(E(round, Round::Next));
    // Ways out, near enough for the conditional jumps above.
    asm.label(E(round, Round::ToTcp));
    asm.goto(Label::Tcp);
    asm.label(E(round, Round::ToPlus8));
    asm.goto(Label::Plus8);
    asm.label(E(round, Round::ToDone));
    asm.goto(Label::Done);
    asm.label(E(round, Round::Next));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stores into all sixteen cells, then accepts.
    fn every_cell() -> ValidProgram {
        let mut insns: Vec<CbpfInsn> = (0..SCRATCH_CELLS)
            .map(|cell| insn(BPF_ST, 0, 0, cell))
            .collect();
        insns.push(insn(BPF_RET | BPF_K, 0, 0, 1));
        validate(&insns).unwrap()
    }

    #[test]
    fn a_program_that_uses_the_scratch_cells_is_refused_with_a_reason() {
        let error = confine_to_headers(&every_cell(), None, true).unwrap_err();
        assert!(error.to_string().contains("scratch memory"), "{error}");
    }

    /// A byte past the window never decides where the headers end: a TCP
    /// data offset there (valid or not) gives the window either way.
    #[test]
    fn nothing_past_the_window_decides_the_cut() {
        let accept = validate(&[insn(BPF_RET | BPF_K, 0, 0, 1)]).unwrap();
        let confined = confine_to_headers(&accept, Some(40), true).unwrap();
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[23] = 6;
        for offset in [0x50, 0x40, 0x00, 0xf0] {
            frame[46] = offset;
            assert_eq!(
                crate::interpret(&confined, &frame, 60),
                40,
                "data offset {offset:#x}"
            );
        }
    }

    #[test]
    fn the_prologue_uses_the_cells_the_program_leaves_free() {
        // Cells 15 and 14 taken: the prologue takes 13 and 12.
        let program = validate(&[
            insn(BPF_ST, 0, 0, 15),
            insn(BPF_ST, 0, 0, 14),
            insn(BPF_RET | BPF_K, 0, 0, 1),
        ])
        .unwrap();
        let confined = confine_to_headers(&program, None, true).unwrap();
        let stores: Vec<u32> = confined.insns()[..header_prologue_len(None)]
            .iter()
            .filter(|insn| insn.code == BPF_ST)
            .map(|insn| insn.k)
            .collect();
        assert!(
            stores.iter().all(|cell| *cell == 13 || *cell == 12),
            "{stores:?}"
        );
        // An ICMP echo frame: 14 + 20 + 8.
        let mut frame = vec![0u8; 60];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[23] = 1;
        assert_eq!(crate::interpret(&confined, &frame, 60), 42);
        assert_eq!(header_end(&frame, 60), Some(42));
    }
}
