//! The interchange forms of a program: `tcpdump -dd` / `-ddd` text (also
//! the comma-separated one-line form of nmap and iptables' `bpf` match) and
//! the raw `struct sock_filter` array.

use std::fmt::Write as _;

use pktd_common::CbpfInsn;

use crate::error::FilterError;

/// Size of one `struct sock_filter` in bytes.
const INSN_BYTES: usize = 8;

/// Parse the `tcpdump -ddd` form: a first line with the instruction count,
/// then one `code jt jf k` line (decimal, whitespace separated) per
/// instruction. The same records separated by commas on one line
/// (`"4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0"`) are accepted too;
/// the text is in that form when it contains a comma.
///
/// Blank lines are skipped. Errors name the 1-based line, or in the comma
/// form the 1-based record (the count is record 1). A count that disagrees
/// with the number of instructions is reported on the count's line.
pub fn parse_ddd(text: &str) -> Result<Vec<CbpfInsn>, FilterError> {
    let separator = if text.contains(',') { ',' } else { '\n' };
    let mut records = text
        .split(separator)
        .enumerate()
        .map(|(i, record)| (i + 1, record.trim()))
        .filter(|(_, record)| !record.is_empty());
    let Some((count_line, count_text)) = records.next() else {
        return Err(parse_error(1, "empty text: expected the instruction count"));
    };
    let count: usize = match count_text.split_whitespace().collect::<Vec<_>>()[..] {
        [word] => number(count_line, "count", word, u64::from(u32::MAX))? as usize,
        _ => {
            return Err(parse_error(
                count_line,
                format!("expected the instruction count alone, found {count_text:?}"),
            ));
        }
    };
    let insns = records
        .map(|(line, record)| parse_insn(line, record))
        .collect::<Result<Vec<_>, _>>()?;
    if insns.len() != count {
        return Err(parse_error(
            count_line,
            format!(
                "the count says {count} instructions but {} follow",
                insns.len()
            ),
        ));
    }
    Ok(insns)
}

/// One `code jt jf k` record.
fn parse_insn(line: usize, record: &str) -> Result<CbpfInsn, FilterError> {
    let [code, jt, jf, k] = record.split_whitespace().collect::<Vec<_>>()[..] else {
        return Err(parse_error(
            line,
            format!("expected four numbers \"code jt jf k\", found {record:?}"),
        ));
    };
    // The maxima make the narrowing casts below lossless.
    Ok(CbpfInsn::new(
        number(line, "code", code, u64::from(u16::MAX))? as u16,
        number(line, "jt", jt, u64::from(u8::MAX))? as u8,
        number(line, "jf", jf, u64::from(u8::MAX))? as u8,
        number(line, "k", k, u64::from(u32::MAX))? as u32,
    ))
}

/// A decimal field no larger than `max`. Only ASCII digits: `tcpdump -ddd`
/// prints unsigned decimal, so a sign or hex prefix means a mistake.
fn number(line: usize, field: &str, word: &str, max: u64) -> Result<u64, FilterError> {
    if word.is_empty() || !word.bytes().all(|b| b.is_ascii_digit()) {
        return Err(parse_error(
            line,
            format!("{field} {word:?} is not an unsigned decimal number"),
        ));
    }
    match word.parse::<u64>() {
        Ok(value) if value <= max => Ok(value),
        _ => Err(parse_error(
            line,
            format!("{field} {word} is out of range (at most {max})"),
        )),
    }
}

fn parse_error(line: usize, message: impl Into<String>) -> FilterError {
    FilterError::Parse {
        line,
        message: message.into(),
    }
}

/// Read a raw array of `struct sock_filter` (8 bytes each, little-endian
/// fields as on the hosts pktd runs on).
pub fn parse_binary(bytes: &[u8]) -> Result<Vec<CbpfInsn>, FilterError> {
    if !bytes.len().is_multiple_of(INSN_BYTES) {
        return Err(FilterError::Binary { len: bytes.len() });
    }
    Ok(bytes
        .chunks_exact(INSN_BYTES)
        .map(|b| {
            CbpfInsn::new(
                u16::from_le_bytes([b[0], b[1]]),
                b[2],
                b[3],
                u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
            )
        })
        .collect())
}

/// Write `insns` as a raw `struct sock_filter` array (the inverse of
/// [`parse_binary`]).
pub fn to_binary(insns: &[CbpfInsn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(insns.len() * INSN_BYTES);
    for insn in insns {
        out.extend_from_slice(&insn.code.to_le_bytes());
        out.push(insn.jt);
        out.push(insn.jf);
        out.extend_from_slice(&insn.k.to_le_bytes());
    }
    out
}

/// The `tcpdump -dd` text (libpcap's `bpf_dump` with option 2): one C
/// initialiser `{ 0xCODE, JT, JF, 0xK },` per line.
pub fn format_dd(insns: &[CbpfInsn]) -> String {
    let mut out = String::new();
    for insn in insns {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{{ 0x{:x}, {}, {}, 0x{:08x} }},",
            insn.code, insn.jt, insn.jf, insn.k
        );
    }
    out
}

/// The `tcpdump -ddd` text (libpcap's `bpf_dump` with option 3): the count,
/// then `code jt jf k` in decimal per line. [`parse_ddd`] reads it back.
pub fn format_ddd(insns: &[CbpfInsn]) -> String {
    let mut out = format!("{}\n", insns.len());
    for insn in insns {
        let _ = writeln!(out, "{} {} {} {}", insn.code, insn.jt, insn.jf, insn.k);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_err(text: &str) -> (usize, String) {
        match parse_ddd(text) {
            Err(FilterError::Parse { line, message }) => (line, message),
            other => panic!("expected a parse error for {text:?}, got {other:?}"),
        }
    }

    const IP: [CbpfInsn; 4] = [
        CbpfInsn::new(0x28, 0, 0, 12),
        CbpfInsn::new(0x15, 0, 1, 2048),
        CbpfInsn::new(0x06, 0, 0, 262_144),
        CbpfInsn::new(0x06, 0, 0, 0),
    ];

    #[test]
    fn ddd_round_trip_and_comma_form() {
        let text = format_ddd(&IP);
        assert_eq!(
            text, "4\n40 0 0 12\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n",
            "ddd text"
        );
        assert_eq!(
            parse_ddd(&text).expect("own ddd parses"),
            IP,
            "ddd round trip"
        );
        let commas = "4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0";
        assert_eq!(
            parse_ddd(commas).expect("comma form parses"),
            IP,
            "comma form"
        );
        assert_eq!(
            parse_ddd("4,40 0 0 12,21 0 1 2048,6 0 0 262144,6 0 0 0\n").expect("trailing newline"),
            IP,
            "comma form with newline"
        );
        assert_eq!(
            parse_ddd("\n4\r\n40\t0 0 12\n\n21 0 1 2048\n6 0 0 262144\n6 0 0 0\n\n")
                .expect("blank lines, CRLF, tabs"),
            IP,
            "tolerant whitespace"
        );
        let extremes = [
            CbpfInsn::new(u16::MAX, u8::MAX, u8::MAX, u32::MAX),
            CbpfInsn::new(0, 0, 0, 0),
        ];
        assert_eq!(
            parse_ddd(&format_ddd(&extremes)).expect("extremes parse"),
            extremes,
            "extreme values round trip"
        );
    }

    #[test]
    fn ddd_errors_name_the_line() {
        assert_eq!(parse_err("3\n40 0 0 12\n6 0 0 0\n").0, 1, "count too high");
        assert_eq!(parse_err("1\n40 0 0 12\n6 0 0 0\n").0, 1, "count too low");
        assert_eq!(parse_err("").0, 1, "empty");
        assert_eq!(parse_err("x\n6 0 0 0").0, 1, "count not a number");
        assert_eq!(
            parse_err("2\n6 0 0 0\n6 0 zero 0\n").0,
            3,
            "jf not a number"
        );
        assert_eq!(parse_err("1\n6 0 0\n").0, 2, "three fields");
        assert_eq!(parse_err("1\n6 0 0 0 0\n").0, 2, "five fields");
        let (line, message) = parse_err("2\n6 0 0 0\n65536 0 0 0\n");
        assert_eq!(line, 3, "code out of range line");
        assert!(
            message.contains("code 65536 is out of range"),
            "message: {message}"
        );
        let (line, message) = parse_err("1\n6 256 0 0\n");
        assert_eq!(line, 2, "jt out of range line");
        assert!(message.contains("jt 256"), "message: {message}");
        assert_eq!(parse_err("1\n6 0 0 4294967296\n").0, 2, "k out of range");
        assert_eq!(parse_err("1\n6 0 0 -1\n").0, 2, "negative k");
        assert_eq!(parse_err("1\n6 0 0 0x10\n").0, 2, "hex k");
        assert_eq!(
            parse_err("2,6 0 0 0,6 0 x 0").0,
            3,
            "comma form counts records"
        );
        assert_eq!(parse_err("2,6 0 0 0").0, 1, "comma form count mismatch");
    }

    #[test]
    fn binary_round_trip_and_length_check() {
        let bytes = to_binary(&IP);
        assert_eq!(bytes.len(), 32, "8 bytes per instruction");
        assert_eq!(
            &bytes[..8],
            &[0x28, 0, 0, 0, 12, 0, 0, 0],
            "first insn, little-endian"
        );
        assert_eq!(
            parse_binary(&bytes).expect("own binary parses"),
            IP,
            "binary round trip"
        );
        assert_eq!(
            parse_binary(&[]).expect("empty binary parses"),
            Vec::new(),
            "empty binary"
        );
        assert_eq!(
            parse_binary(&bytes[..31]),
            Err(FilterError::Binary { len: 31 }),
            "31 bytes"
        );
    }

    #[test]
    fn binary_matches_struct_layout() {
        // The kernel and libpcap read the array as struct sock_filter; the
        // byte form must be exactly CbpfInsn's in-memory representation.
        let insn = CbpfInsn::new(0x1234, 0x56, 0x78, 0x9abc_def0);
        let bytes = to_binary(&[insn]);
        let expected = [0x34, 0x12, 0x56, 0x78, 0xf0, 0xde, 0xbc, 0x9a];
        assert_eq!(bytes, expected, "layout of one instruction");
    }

    #[test]
    fn dd_text() {
        assert_eq!(
            format_dd(&IP[..2]),
            "{ 0x28, 0, 0, 0x0000000c },\n{ 0x15, 0, 1, 0x00000800 },\n",
            "dd text"
        );
    }
}
