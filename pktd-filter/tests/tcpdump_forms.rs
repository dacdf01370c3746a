//! compile() and the text forms against real tcpdump: the same programs,
//! and byte-identical -d / -dd / -ddd listings, optimised and with -O.

mod common;

use common::{SNAPLEN, tcpdump};
use pktd_filter::{compile, format_d, format_dd, format_ddd, parse_ddd};

const EXPRESSIONS: &[&str] = &[
    "",
    "ip",
    "ip6",
    "arp",
    "tcp",
    "udp",
    "icmp",
    "icmp6",
    "tcp port 80",
    "udp port 53",
    "host 10.1.2.3",
    "net 192.168.0.0/16",
    "src host 1.2.3.4 and dst port 443",
    "ether host 00:11:22:33:44:55",
    "ether proto 0x88cc",
    "vlan 100 and ip",
    "ip[8] < 64",
    "portrange 1000-2000",
    "not broadcast and not multicast",
    "greater 100",
    "less 60",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
    "ip[2:2] / 4 > 10 and ip[0] % 3 = 1",
    "ip[1] ^ 0xff = 3",
    "tcp and (((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)",
    "ip6 and tcp port 22",
    "(tcp port 80 or udp port 53) and not host 10.0.0.1",
];

#[test]
fn compile_matches_tcpdump_ddd() {
    for &expression in EXPRESSIONS {
        for optimize in [true, false] {
            let ours = compile(expression, optimize, SNAPLEN)
                .unwrap_or_else(|e| panic!("compile {expression:?}: {e}"));
            let theirs = tcpdump("-ddd", optimize, expression);
            let parsed = parse_ddd(&theirs)
                .unwrap_or_else(|e| panic!("parse tcpdump -ddd of {expression:?}: {e}"));
            assert_eq!(
                ours.insns(),
                &parsed[..],
                "instructions of {expression:?} (optimize {optimize})"
            );
        }
    }
}

#[test]
fn listings_are_byte_identical_to_tcpdump() {
    for &expression in EXPRESSIONS {
        for optimize in [true, false] {
            let program = compile(expression, optimize, SNAPLEN)
                .unwrap_or_else(|e| panic!("compile {expression:?}: {e}"));
            let insns = program.insns();
            for (flag, ours) in [
                ("-d", format_d(insns)),
                ("-dd", format_dd(insns)),
                ("-ddd", format_ddd(insns)),
            ] {
                let theirs = tcpdump(flag, optimize, expression);
                assert_eq!(
                    ours, theirs,
                    "tcpdump {flag} {expression:?} (optimize {optimize})"
                );
            }
        }
    }
}

#[test]
fn unoptimized_differs_for_a_compound_expression() {
    // Guards against the optimize flag being ignored: both sides differ
    // between -O and the default for this expression.
    let expression = "tcp port 80";
    let optimized = compile(expression, true, SNAPLEN).expect("compiles optimized");
    let plain = compile(expression, false, SNAPLEN).expect("compiles unoptimized");
    assert_ne!(optimized, plain, "optimizer changes {expression:?}");
    assert!(
        plain.len() > optimized.len(),
        "the unoptimized program is longer"
    );
}

#[test]
fn invalid_expression_is_a_compile_error_like_tcpdump() {
    for expression in [
        "tcp port",
        "host",
        "ip proto nonesuch",
        "port 99999",
        "ether host 1:2:3",
    ] {
        match compile(expression, true, SNAPLEN) {
            Err(pktd_filter::FilterError::Compile {
                expression: echoed,
                message,
            }) => {
                assert_eq!(echoed, expression, "expression echoed");
                assert!(
                    !message.is_empty(),
                    "libpcap gives a message for {expression:?}"
                );
                // tcpdump reports the same libpcap message.
                let output = std::process::Command::new("tcpdump")
                    .arg("-r")
                    .arg(common::empty_pcap())
                    .arg("-d")
                    .arg(expression)
                    .output()
                    .unwrap_or_else(|e| panic!("running tcpdump: {e}"));
                assert!(
                    !output.status.success(),
                    "tcpdump also refuses {expression:?}"
                );
                let stderr = String::from_utf8_lossy(&output.stderr);
                assert!(
                    stderr.contains(&message),
                    "tcpdump's error for {expression:?} ({stderr:?}) contains ours ({message:?})"
                );
            }
            other => panic!("expected a compile error for {expression:?}, got {other:?}"),
        }
    }
}
