//! `tcpdump -d` text: a byte-for-byte reimplementation of libpcap 1.10's
//! `bpf_image`, so that printing needs neither libpcap's static buffer nor
//! a lock. Tests hold it to libpcap's own `bpf_image` and to tcpdump.

use std::fmt::Write as _;

use pktd_common::CbpfInsn;

use crate::opcodes::*;

/// The `tcpdump -d` listing of `insns` (libpcap's `bpf_dump` with option 1:
/// one `bpf_image` line per instruction), e.g.
/// `"(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 5\n"`.
pub fn format_d(insns: &[CbpfInsn]) -> String {
    let mut out = String::new();
    for (n, insn) in insns.iter().enumerate() {
        out.push_str(&image(insn, n));
        out.push('\n');
    }
    out
}

/// One line of [`format_d`] without its newline (libpcap's `bpf_image`).
pub(crate) fn image(insn: &CbpfInsn, n: usize) -> String {
    // libpcap prints k with "%d", i.e. reinterpreted as a signed int.
    let k = insn.k;
    let signed = k as i32;
    let code = insn.code;
    let (mnemonic, operand): (&str, String) = match code {
        c if c == BPF_RET | BPF_K => ("ret", format!("#{signed}")),
        c if c == BPF_RET | BPF_A => ("ret", String::new()),
        c if c == BPF_LD | BPF_W | BPF_ABS => ("ld", abs_operand(k)),
        c if c == BPF_LD | BPF_H | BPF_ABS => ("ldh", abs_operand(k)),
        c if c == BPF_LD | BPF_B | BPF_ABS => ("ldb", abs_operand(k)),
        c if c == BPF_LD | BPF_W | BPF_LEN => ("ld", "#pktlen".to_string()),
        c if c == BPF_LD | BPF_W | BPF_IND => ("ld", format!("[x + {signed}]")),
        c if c == BPF_LD | BPF_H | BPF_IND => ("ldh", format!("[x + {signed}]")),
        c if c == BPF_LD | BPF_B | BPF_IND => ("ldb", format!("[x + {signed}]")),
        c if c == BPF_LD | BPF_IMM => ("ld", format!("#0x{k:x}")),
        c if c == BPF_LDX | BPF_IMM => ("ldx", format!("#0x{k:x}")),
        c if c == BPF_LDX | BPF_MSH | BPF_B => ("ldxb", format!("4*([{signed}]&0xf)")),
        c if c == BPF_LD | BPF_MEM => ("ld", format!("M[{signed}]")),
        c if c == BPF_LDX | BPF_MEM => ("ldx", format!("M[{signed}]")),
        c if c == BPF_ST => ("st", format!("M[{signed}]")),
        c if c == BPF_STX => ("stx", format!("M[{signed}]")),
        c if c == BPF_JMP | BPF_JA => {
            // "n + 1 + p->k" is computed in unsigned int, printed with %d.
            let target = (n as u32).wrapping_add(1).wrapping_add(k) as i32;
            ("ja", target.to_string())
        }
        c if c == BPF_JMP | BPF_JGT | BPF_K => ("jgt", format!("#0x{k:x}")),
        c if c == BPF_JMP | BPF_JGE | BPF_K => ("jge", format!("#0x{k:x}")),
        c if c == BPF_JMP | BPF_JEQ | BPF_K => ("jeq", format!("#0x{k:x}")),
        c if c == BPF_JMP | BPF_JSET | BPF_K => ("jset", format!("#0x{k:x}")),
        c if c == BPF_JMP | BPF_JGT | BPF_X => ("jgt", "x".to_string()),
        c if c == BPF_JMP | BPF_JGE | BPF_X => ("jge", "x".to_string()),
        c if c == BPF_JMP | BPF_JEQ | BPF_X => ("jeq", "x".to_string()),
        c if c == BPF_JMP | BPF_JSET | BPF_X => ("jset", "x".to_string()),
        c if class(c) == BPF_ALU && is_allowed(c) => alu_image(c, k),
        c if c == BPF_MISC | BPF_TAX => ("tax", String::new()),
        c if c == BPF_MISC | BPF_TXA => ("txa", String::new()),
        _ => ("unimp", format!("0x{code:x}")),
    };
    // The jt/jf columns depend on the class and op bits alone, so even an
    // unknown jump-class opcode gets them, as in libpcap.
    if class(code) == BPF_JMP && op(code) != BPF_JA {
        format!(
            "({n:03}) {mnemonic:<8} {operand:<16} jt {}\tjf {}",
            n + 1 + usize::from(insn.jt),
            n + 1 + usize::from(insn.jf)
        )
    } else {
        let mut line = String::new();
        let _ = write!(line, "({n:03}) {mnemonic:<8} {operand}");
        line
    }
}

/// ALU mnemonics and operands; `and`, `or` and `xor` print k in hex, the
/// others in signed decimal.
fn alu_image(code: u16, k: u32) -> (&'static str, String) {
    let name = match op(code) {
        BPF_ADD => "add",
        BPF_SUB => "sub",
        BPF_MUL => "mul",
        BPF_DIV => "div",
        BPF_MOD => "mod",
        BPF_AND => "and",
        BPF_OR => "or",
        BPF_XOR => "xor",
        BPF_LSH => "lsh",
        BPF_RSH => "rsh",
        _ => return ("neg", String::new()),
    };
    let operand = if src(code) == BPF_X {
        "x".to_string()
    } else if matches!(op(code), BPF_AND | BPF_OR | BPF_XOR) {
        format!("#0x{k:x}")
    } else {
        format!("#{}", k as i32)
    };
    (name, operand)
}

/// Names libpcap (built with Linux headers) gives ancillary offsets,
/// indexed by `(k - SKF_AD_OFF) / 4`.
const ANCILLARY_NAMES: [&str; 16] = [
    "proto",
    "type",
    "ifidx",
    "nla",
    "nlan",
    "mark",
    "queue",
    "hatype",
    "rxhash",
    "cpu",
    "xor_x",
    "vlan_tci",
    "vlanp",
    "poff",
    "random",
    "vlan_tpid",
];

/// The operand of an absolute load: `[k]`, or `[name]` for a known
/// ancillary offset.
fn abs_operand(k: u32) -> String {
    let index = k.wrapping_sub(SKF_AD_OFF);
    if k >= SKF_AD_OFF && index < SKF_AD_MAX && index.is_multiple_of(4) {
        format!("[{}]", ANCILLARY_NAMES[(index / 4) as usize])
    } else {
        format!("[{}]", k as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pcap_ffi::libpcap_image;

    /// Every opcode with a spread of operands prints exactly as libpcap's
    /// own bpf_image does.
    #[test]
    fn every_opcode_matches_libpcap_bpf_image() {
        let ks = [
            0,
            1,
            12,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            SKF_AD_OFF,
            SKF_AD_OFF + 4,
            SKF_AD_OFF + 2,
            SKF_AD_OFF + 60,
            SKF_AD_OFF + 64,
        ];
        let mut checked = 0;
        for code in 0..=u16::MAX {
            // All k for the codes that print k, two for the rest.
            let ks: &[u32] = if is_allowed(code) { &ks } else { &ks[..2] };
            for (i, &k) in ks.iter().enumerate() {
                let insn = CbpfInsn::new(code, (i * 37) as u8, 255 - i as u8, k);
                let n = [0, 7, 999, 4095][i % 4];
                let ours = image(&insn, n);
                let theirs = libpcap_image(&insn, n);
                assert_eq!(ours, theirs, "bpf_image of {insn:?} at {n}");
                checked += 1;
            }
        }
        assert!(checked > 65_536, "checked {checked} instructions");
    }

    #[test]
    fn listing_example() {
        let insns = [
            CbpfInsn::new(0x28, 0, 0, 12),
            CbpfInsn::new(0x15, 0, 3, 0x800),
        ];
        assert_eq!(
            format_d(&insns),
            "(000) ldh      [12]\n(001) jeq      #0x800           jt 2\tjf 5\n",
            "listing"
        );
    }
}
