//! interpret() and libpcap's pcap_offline_filter agree on hand-built
//! packets for a handful of compiled filters.

mod common;

use pktd_filter::{CbpfInsn, compile, interpret, pcap_offline_filter, validate};

const SNAPLEN: u32 = 262_144;

fn ethernet(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x02, 0x00, 0x00, 0x00, 0x00, 0x01,
    ];
    frame.extend_from_slice(&ethertype.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// An IPv4 header (with `options` words of options) and payload.
fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], options: usize, payload: &[u8]) -> Vec<u8> {
    let header_len = 20 + 4 * options;
    let total = (header_len + payload.len()) as u16;
    let mut packet = vec![0x40 | (5 + options as u8), 0];
    packet.extend_from_slice(&total.to_be_bytes());
    packet.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    packet.extend_from_slice(&src);
    packet.extend_from_slice(&dst);
    packet.extend(std::iter::repeat_n(1u8, 4 * options)); // NOP options
    packet.extend_from_slice(payload);
    packet
}

fn udp(sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&sport.to_be_bytes());
    segment.extend_from_slice(&dport.to_be_bytes());
    segment.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    segment.extend_from_slice(&[0, 0]);
    segment.extend_from_slice(data);
    segment
}

fn tcp(sport: u16, dport: u16, flags: u8) -> Vec<u8> {
    let mut segment = Vec::new();
    segment.extend_from_slice(&sport.to_be_bytes());
    segment.extend_from_slice(&dport.to_be_bytes());
    segment.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    segment
}

fn packets() -> Vec<(&'static str, Vec<u8>)> {
    let a = [10, 0, 0, 1];
    let b = [10, 0, 0, 2];
    let udp_dns = ethernet(0x0800, &ipv4(17, a, b, 0, &udp(5353, 53, b"query")));
    let tcp_syn = ethernet(0x0800, &ipv4(6, a, b, 1, &tcp(40000, 80, 0x02)));
    let tcp_ack = ethernet(0x0800, &ipv4(6, b, a, 0, &tcp(80, 40000, 0x10)));
    let arp = ethernet(
        0x0806,
        &[
            0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ],
    );
    let mut vlan_payload = vec![0x00, 100, 0x08, 0x00];
    vlan_payload.extend_from_slice(&ipv4(17, a, b, 0, &udp(1234, 53, b"x")));
    let vlan = ethernet(0x8100, &vlan_payload);
    let mut ipv6 = vec![0x60, 0, 0, 0, 0, 20, 6, 64];
    ipv6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    ipv6.extend_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    ipv6.extend_from_slice(&tcp(50000, 22, 0x02));
    let ipv6 = ethernet(0x86dd, &ipv6);
    let truncated = tcp_syn[..30].to_vec();
    vec![
        ("ipv4/udp dns", udp_dns),
        ("ipv4/tcp syn with options", tcp_syn),
        ("ipv4/tcp ack", tcp_ack),
        ("arp", arp),
        ("vlan 100 ipv4/udp", vlan),
        ("ipv6/tcp ssh", ipv6),
        ("truncated ipv4/tcp", truncated),
        ("empty", Vec::new()),
    ]
}

/// (filter, names of the packets it must match)
const FILTERS: &[(&str, &[&str])] = &[
    ("udp port 53", &["ipv4/udp dns"]),
    (
        "tcp port 80",
        &["ipv4/tcp syn with options", "ipv4/tcp ack"],
    ),
    (
        "tcp[tcpflags] & tcp-syn != 0",
        &["ipv4/tcp syn with options"],
    ),
    ("arp", &["arp"]),
    ("vlan 100 and udp dst port 53", &["vlan 100 ipv4/udp"]),
    ("ip6 and tcp dst port 22", &["ipv6/tcp ssh"]),
    (
        "host 10.0.0.2 and not arp",
        &["ipv4/udp dns", "ipv4/tcp syn with options", "ipv4/tcp ack"],
    ),
    (
        "greater 50",
        &[
            "ipv6/tcp ssh",
            "ipv4/tcp syn with options",
            "ipv4/tcp ack",
            "truncated ipv4/tcp",
        ],
    ),
    (
        "ip and ((ip[2:2] - ((ip[0]&0xf)<<2)) = 20) and ip[0] & 0xf > 5",
        &["ipv4/tcp syn with options", "truncated ipv4/tcp"],
    ),
    (
        "ip[9] % 5 = 1 or ip[9] / 3 = 5",
        &[
            "ipv4/tcp syn with options",
            "ipv4/tcp ack",
            "ipv4/udp dns",
            "truncated ipv4/tcp",
        ],
    ),
];

#[test]
fn interpreter_agrees_with_libpcap_on_compiled_filters() {
    let packets = packets();
    for &(expression, expected) in FILTERS {
        for optimize in [true, false] {
            let program = compile(expression, optimize, SNAPLEN)
                .unwrap_or_else(|e| panic!("compile {expression:?}: {e}"));
            for (name, packet) in &packets {
                // The truncated packet claims its full length on the wire.
                let wire_len = if name.starts_with("truncated") {
                    58
                } else {
                    packet.len() as u32
                };
                let ours = interpret(&program, packet, wire_len);
                let theirs = pcap_offline_filter(program.insns(), packet, wire_len);
                assert_eq!(
                    ours, theirs,
                    "{expression:?} (optimize {optimize}) on {name}: interpret vs libpcap"
                );
                let want = if expected.contains(name) { SNAPLEN } else { 0 };
                assert_eq!(ours, want, "{expression:?} (optimize {optimize}) on {name}");
            }
        }
    }
}

#[test]
fn hand_written_programs_agree_with_libpcap() {
    // Scratch memory, X arithmetic, ret a and pktlen, which compiled filters
    // rarely combine.
    let program = [
        CbpfInsn::new(0x80, 0, 0, 0),  // ld #pktlen
        CbpfInsn::new(0x02, 0, 0, 7),  // st M[7]
        CbpfInsn::new(0xb1, 0, 0, 14), // ldxb 4*([14]&0xf)
        CbpfInsn::new(0x87, 0, 0, 0),  // txa
        CbpfInsn::new(0x0c, 0, 0, 0),  // add x
        CbpfInsn::new(0x61, 0, 0, 7),  // ldx M[7]
        CbpfInsn::new(0x1c, 0, 0, 0),  // sub x
        CbpfInsn::new(0x16, 0, 0, 0),  // ret a
    ];
    let valid = validate(&program).unwrap_or_else(|e| panic!("program invalid: {e}"));
    for (name, packet) in packets() {
        for wire_len in [packet.len() as u32, 1500] {
            assert_eq!(
                interpret(&valid, &packet, wire_len),
                pcap_offline_filter(&program, &packet, wire_len),
                "{name} with wire_len {wire_len}"
            );
        }
    }
}

#[test]
fn random_valid_programs_never_panic_and_agree_with_libpcap() {
    use pktd_filter::opcodes::*;
    let mut rng = common::Rng(0x0123_4567_89ab_cdef);
    let ks = [
        0,
        1,
        2,
        3,
        12,
        14,
        15,
        31,
        32,
        40,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX,
    ];
    let mut packet_pool = packets().into_iter().map(|(_, p)| p).collect::<Vec<_>>();
    packet_pool.push((0..=255).collect());
    let mut ran = 0;
    while ran < 5_000 {
        let len = 2 + rng.below(10);
        let program: Vec<CbpfInsn> = (0..len)
            .map(|_| {
                let code = ALLOWED[rng.below(ALLOWED.len())];
                let k = if rng.below(2) == 0 {
                    ks[rng.below(ks.len())]
                } else {
                    rng.below(80) as u32
                };
                CbpfInsn::new(code, rng.below(3) as u8, rng.below(3) as u8, k)
            })
            .collect();
        let Ok(valid) = validate(&program) else {
            continue;
        };
        ran += 1;
        // Where the kernel and libpcap are known to differ: shifts by
        // X >= 32 (kernel: X & 31, libpcap: 0) and indirect offsets whose
        // X + k wraps (kernel: wrapped offset, libpcap: out of range).
        let comparable = program
            .iter()
            .all(|i| !matches!(i.code, 0x6c | 0x7c) && !matches!(i.code, 0x40 | 0x48 | 0x50));
        for packet in &packet_pool {
            let wire_len = packet.len() as u32 + rng.below(3) as u32;
            let ours = interpret(&valid, packet, wire_len);
            if comparable {
                assert_eq!(
                    ours,
                    pcap_offline_filter(&program, packet, wire_len),
                    "{program:?} on a {}-byte packet",
                    packet.len()
                );
            }
        }
    }
}
