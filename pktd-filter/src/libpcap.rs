//! The two uses of libpcap itself: compiling tcpdump expressions, and its
//! interpreter as the reference verdict in differential tests.

use pktd_common::CbpfInsn;

use crate::error::FilterError;
use crate::pcap_ffi;
use crate::validate::{self, Strictness, ValidProgram};

/// Compile a tcpdump filter expression with libpcap for Ethernet
/// (`pcap_open_dead(DLT_EN10MB, snaplen)`, `pcap_compile` with an unknown
/// netmask), then [`validate`](crate::validate) the result.
///
/// `snaplen` is what an accepting `ret` returns. A syntax or semantic error
/// gives [`FilterError::Compile`] with libpcap's message; a program the
/// validator refuses (e.g. one using Linux ancillary loads) gives its error.
pub fn compile(
    expression: &str,
    optimize: bool,
    snaplen: u32,
) -> Result<ValidProgram, FilterError> {
    validate::validate(&compile_unvalidated(expression, optimize, snaplen)?)
}

/// [`compile`] without the validation: libpcap's program as it comes, for a
/// process that hands it to another which validates it (pktd's sandboxed
/// compile helper).
pub fn compile_unvalidated(
    expression: &str,
    optimize: bool,
    snaplen: u32,
) -> Result<Vec<CbpfInsn>, FilterError> {
    pcap_ffi::compile(expression, optimize, snaplen).map_err(|message| FilterError::Compile {
        expression: expression.to_string(),
        message,
    })
}

/// libpcap's verdict on a packet: `pcap_offline_filter` with a packet header
/// of `caplen = packet.len()` and `len = wire_len`. Returns what libpcap's
/// `bpf_filter` returns: the match length, 0 for no match.
///
/// Unlike [`crate::interpret`] this takes any instruction slice, so that
/// ancillary and negative-offset loads (which libpcap treats as ordinary
/// out-of-range offsets) can be compared too.
///
/// # Panics
///
/// If `insns` breaks a kernel rule other than the load-offset ones (for
/// example a jump past the end or an unknown opcode): libpcap's interpreter
/// trusts its input and would read out of bounds or `abort()`.
pub fn pcap_offline_filter(insns: &[CbpfInsn], packet: &[u8], wire_len: u32) -> u32 {
    if let Err(e) = validate::check(insns, Strictness::AnyLoadOffset) {
        panic!("pcap_offline_filter: libpcap cannot safely run this program: {e}");
    }
    pcap_ffi::offline_filter(insns, packet, wire_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_error_carries_libpcap_message() {
        match compile("tcp port", true, 65535) {
            Err(FilterError::Compile {
                expression,
                message,
            }) => {
                assert_eq!(expression, "tcp port", "expression echoed");
                assert!(
                    message.contains("syntax error"),
                    "libpcap message: {message}"
                );
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
        match compile("nul\0byte", true, 65535) {
            Err(FilterError::Compile { message, .. }) => {
                assert!(message.contains("NUL"), "message: {message}")
            }
            other => panic!("expected a compile error, got {other:?}"),
        }
    }

    #[test]
    fn snaplen_is_the_accept_value() {
        for snaplen in [1, 96, 65535, 262_144, u32::MAX] {
            let program = compile("", true, snaplen).expect("empty expression compiles");
            assert_eq!(
                program.insns(),
                &[CbpfInsn::new(0x06, 0, 0, snaplen)],
                "empty expression with snaplen {snaplen}"
            );
        }
    }

    #[test]
    #[should_panic(expected = "cannot safely run")]
    fn unsafe_program_is_refused() {
        pcap_offline_filter(
            &[CbpfInsn::new(0x05, 0, 0, 5), CbpfInsn::new(0x06, 0, 0, 1)],
            &[],
            0,
        );
    }
}
