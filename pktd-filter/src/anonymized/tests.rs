use super::*;
use crate::{Metadata, compile, interpret, interpret_with};

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> CbpfInsn {
    CbpfInsn::new(code, jt, jf, k)
}

/// XOR with a constant is prefix-preserving: enough of a key to check the
/// mapping (the real Crypto-PAn is checked in the integration tests).
struct Xor;

const V4_KEY: u32 = 0x5a5a_0f0f;
const V6_KEY: u128 = 0x0123_4567_89ab_cdef_fedc_ba98_7654_3210;

impl AddressMap for Xor {
    fn real_prefix_v4(&self, anonymized: u32, len: u8) -> u32 {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        (anonymized ^ V4_KEY) & mask
    }

    fn real_prefix_v6(&self, anonymized: u128, len: u8) -> u128 {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        (anonymized ^ V6_KEY) & mask
    }
}

fn mapped(expression: &str) -> Result<ValidProgram, FilterError> {
    map_addresses(&compile(expression, true, 262_144).unwrap(), &Xor, false)
}

/// An Ethernet/IPv4/UDP frame from `src` to `dst`.
fn ipv4(src: u32, dst: u32) -> Vec<u8> {
    let mut frame = vec![0u8; 42];
    frame[12..14].copy_from_slice(&[0x08, 0x00]);
    frame[14] = 0x45;
    frame[16..18].copy_from_slice(&28u16.to_be_bytes());
    frame[22] = 64;
    frame[23] = 17;
    frame[26..30].copy_from_slice(&src.to_be_bytes());
    frame[30..34].copy_from_slice(&dst.to_be_bytes());
    frame[34..36].copy_from_slice(&5353u16.to_be_bytes());
    frame[36..38].copy_from_slice(&53u16.to_be_bytes());
    frame[38..40].copy_from_slice(&8u16.to_be_bytes());
    frame
}

/// An Ethernet/IPv6/UDP frame from `src` to `dst`.
fn ipv6(src: u128, dst: u128) -> Vec<u8> {
    let mut frame = vec![0u8; 62];
    frame[12..14].copy_from_slice(&[0x86, 0xdd]);
    frame[14] = 0x60;
    frame[18..20].copy_from_slice(&8u16.to_be_bytes());
    frame[20] = 17;
    frame[21] = 64;
    frame[22..38].copy_from_slice(&src.to_be_bytes());
    frame[38..54].copy_from_slice(&dst.to_be_bytes());
    frame
}

fn accepts(program: &ValidProgram, frame: &[u8]) -> bool {
    interpret(program, frame, frame.len() as u32) != 0
}

#[test]
fn host_and_net_constants_are_mapped_to_the_real_addresses() {
    let seen = 0x0a01_0203; // 10.1.2.3, as the client sees it
    let real = seen ^ V4_KEY;
    let host = mapped("host 10.1.2.3").unwrap();
    assert!(accepts(&host, &ipv4(real, 1)));
    assert!(accepts(&host, &ipv4(1, real)));
    assert!(
        !accepts(&host, &ipv4(seen, 1)),
        "the constant as written matches nothing real"
    );
    let net = mapped("src net 10.1.0.0/16").unwrap();
    let real_net = (seen ^ V4_KEY) & 0xffff_0000;
    assert!(accepts(&net, &ipv4(real_net | 0xbeef, 1)));
    assert!(!accepts(&net, &ipv4(real_net ^ 0x0001_0000, 1)));
}

#[test]
fn ipv6_words_are_mapped_with_the_words_before_them() {
    let seen: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0001;
    let real = seen ^ V6_KEY;
    let host = mapped("ip6 host 2001:db8::1").unwrap();
    assert!(accepts(&host, &ipv6(real, 1)));
    assert!(!accepts(&host, &ipv6(seen, 1)));
    let net = mapped("ip6 src net 2001:db8:aa00::/40").unwrap();
    let seen_net: u128 = 0x2001_0db8_aa00 << 80;
    let real_net = (seen_net ^ V6_KEY) & (u128::MAX << 88);
    assert!(accepts(&net, &ipv6(real_net | 0x1234, 1)));
    assert!(!accepts(&net, &ipv6(real_net ^ (1 << 88), 1)));
}

#[test]
fn other_reads_of_what_the_client_does_not_see_are_refused() {
    for (expression, reason) in [
        ("ip[12] = 10", "part of an address"),
        ("ip[12:2] = 0x0a01", "part of an address"),
        ("ip[12:4] > 167837696", "other than equal"),
        ("ip[14:4] = 1", "part of an address"),
        ("ip[10:2] = 0", "checksum"),
        ("udp[6:2] = 0", "checksum"),
        ("tcp[16:2] = 0", "checksum"),
        ("ether src 02:00:00:00:00:01", "MAC"),
        ("ether[6:4] = 0", "MAC"),
        ("ip[20] = 1", "options"),
        ("icmp[8:4] = 0", "ICMP bytes"),
        ("ip6[8] = 0x20", "whole aligned words"),
        ("ip6[12:4] = 1", "without testing the words before it"),
        ("ip[12:4] & 0xff = 3", "computes with an address"),
        ("ip[9] = 47 and ip[24:4] = 0", "options"),
        ("ether[14] = 0", "past the link header"),
        ("mpls and host 10.0.0.1", "past the link header"),
        ("ip6 and ip6[40] = 1", "next header not tested"),
        // Extension headers carry addresses (routing, home address) and
        // data the anonymizer zeroes; a fragment header hides a checksum
        // or a tunnelled packet behind it.
        ("ip6 proto 43 and ip6[48:4] & 1 != 0", "protocol 43"),
        ("ip6 proto 60 and ip6[48:4] = 0xfd001111", "protocol 60"),
        ("ip6 proto 0 and ip6[44:2] = 0xabcd", "protocol 0"),
        (
            "ip6 proto 44 and ip6[40] = 6 and ip6[64:2] = 0x1234",
            "protocol 44",
        ),
        ("ip proto 4 and ip[32:4] = 1", "options"),
        ("ip proto 33 and ip[20:2] = 0", "options"),
    ] {
        let error = mapped(expression).expect_err(expression).to_string();
        assert!(error.contains(reason), "{expression}: {error}");
    }
}

#[test]
fn header_filters_are_left_as_they_are() {
    for expression in [
        "udp port 53",
        "tcp[tcpflags] & tcp-syn != 0",
        "icmp[icmptype] = icmp-echo",
        "ip6 and tcp dst port 443",
        "arp",
        "vlan 100 and udp",
        "len > 100",
        "ip and ip[8] < 5",
        "",
    ] {
        let original = compile(expression, true, 262_144).unwrap();
        let program = mapped(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        assert_eq!(
            &program.insns()[guard().len()..],
            original.insns(),
            "{expression}"
        );
    }
}

/// Classic BPF starts with A and X 0: the guard in front leaves them so.
#[test]
fn the_clients_program_starts_with_a_and_x_zero() {
    let program = map_addresses(
        &validate(&[
            insn(BPF_MISC | BPF_TXA, 0, 0, 0),
            insn(BPF_RET | BPF_A, 0, 0, 0),
        ])
        .unwrap(),
        &Xor,
        false,
    )
    .unwrap();
    assert_eq!(interpret(&program, &ipv4(1, 2), 42), 0);
    let program = map_addresses(
        &validate(&[insn(BPF_RET | BPF_A, 0, 0, 0)]).unwrap(),
        &Xor,
        false,
    )
    .unwrap();
    assert_eq!(interpret(&program, &ipv4(1, 2), 42), 0);
}

#[test]
fn the_guard_drops_what_the_anonymizer_would_hide() {
    let program = mapped("").unwrap();
    assert!(accepts(&program, &ipv4(1, 2)));
    let mut short_header = ipv4(1, 2);
    short_header[14] = 0x44;
    assert!(!accepts(&program, &short_header), "IHL 4");
    let mut wrong_version = ipv4(1, 2);
    wrong_version[14] = 0x65;
    assert!(!accepts(&program, &wrong_version));
    let mut arp = vec![0u8; 42];
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    arp[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    assert!(accepts(&program, &arp));
    arp[18] = 8;
    assert!(!accepts(&program, &arp), "hlen 8");
    let mut tcp = ipv4(1, 2);
    tcp[23] = 6;
    tcp.resize(54, 0);
    tcp[46] = 0x50;
    assert!(accepts(&program, &tcp), "a TCP header of 20 bytes");
    tcp[46] = 0x40;
    assert!(!accepts(&program, &tcp), "a TCP data offset of 4");
}

#[test]
fn ancillary_loads_under_anonymization() {
    // The interface and the EtherType are not hidden: allowed.
    let ifindex = mapped("ifindex 3 and net 10.0.0.0/8").unwrap();
    let frame = ipv4(0x0a00_0001 ^ V4_KEY, 0x0b00_0001);
    let metadata = |ifindex| Metadata {
        protocol: 0x0800,
        ifindex,
        ..Metadata::default()
    };
    let len = frame.len() as u32;
    assert_ne!(interpret_with(&ifindex, &frame, len, &metadata(3)), 0);
    assert_eq!(interpret_with(&ifindex, &frame, len, &metadata(4)), 0);
    // The packet type follows from the MAC addresses: refused while they
    // are hidden, allowed when they are kept.
    let error = mapped("inbound").unwrap_err().to_string();
    assert!(error.contains("packet type"), "{error}");
    let program = compile("outbound and udp", true, 262_144).unwrap();
    assert!(map_addresses(&program, &Xor, true).is_ok());
    // The skb protocol of an 802.3 frame follows from bytes the
    // anonymizer hides: refused.
    let protocol = crate::validate(&[
        insn(0x28, 0, 0, 0xffff_f000),
        insn(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 1),
        insn(BPF_RET | BPF_K, 0, 0, 100),
        insn(BPF_RET | BPF_K, 0, 0, 0),
    ])
    .unwrap();
    let error = map_addresses(&protocol, &Xor, true)
        .unwrap_err()
        .to_string();
    assert!(error.contains("skb protocol"), "{error}");
}
