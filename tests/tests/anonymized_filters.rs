//! Filters of anonymized principals (`pktd_filter::map_addresses`) with
//! the real key schedule (`pktd_anon`): a mapped filter run on the real
//! packet decides exactly what the client's filter decides on the packet
//! the client gets, for every corpus filter the mapping accepts and every
//! corpus packet; and probes for real addresses learn nothing.

use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode};
use pktd_filter::{ValidProgram, compile, interpret, map_addresses};
use pktd_tests::corpus;

const KEY: [u8; 32] = *b"pktd anonymized filter test key!";

/// The whole frames of tcpdump's captures in `tests/data/tcpdump`: IPv6
/// routing, segment-routing, AH, fragment headers, IPv4 options, ICMP.
fn tcpdump_frames() -> Vec<Vec<u8>> {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tcpdump");
    let mut frames = Vec::new();
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "pcap") {
            let file = std::fs::File::open(&path).unwrap();
            let mut reader = pktd_pcap::savefile::Reader::new(file).unwrap();
            while let Some(packet) = reader.next_packet().unwrap() {
                if packet.data.len() as u32 == packet.wire_len {
                    frames.push(packet.data);
                }
            }
        }
    }
    frames
}

fn accepts(program: &ValidProgram, frame: &[u8], wire_len: u32) -> bool {
    interpret(program, frame, wire_len) != 0
}

#[test]
fn a_mapped_filter_on_real_packets_decides_as_the_filter_on_what_the_client_sees() {
    let key = CryptoPan::new(&KEY);
    let pass_all = map_addresses(&compile("", true, 262_144).unwrap(), &key, true).unwrap();
    let mut packets: Vec<Vec<u8>> = corpus::packets(1500, 0xa11)
        .into_iter()
        .map(|packet| packet.bytes)
        .collect();
    packets.extend(tcpdump_frames());
    let mut anonymizer = Anonymizer::new(CryptoPan::new(&KEY), MacMode::Keep, PayloadMode::Keep);
    let seen: Vec<Vec<u8>> = packets
        .iter()
        .map(|packet| {
            let mut bytes = packet.clone();
            anonymizer.rewrite(&mut bytes, packet.len() as u32);
            bytes
        })
        .collect();
    let (mut accepted, mut refused, mut matches) = (0, Vec::new(), 0);
    // Beyond the corpus's filters, some that read extension headers,
    // tunnels and quoted packets (all refused, or the same on both sides).
    let probes = [
        "ip6 proto 43 and ip6[48:4] & 0x80000000 != 0",
        "ip6 proto 0 and ip6[44:2] = 0",
        "ip6 proto 44 and ip6[40] = 6",
        "ip6 proto 60",
        "ip proto 47 and ip[24:4] = 0",
        "icmp6 and ip6[40] = 135",
        "icmp and icmp[icmptype] = icmp-unreach and icmp[8] = 0x45",
        "ip6 and udp",
        "tcp and ip6",
    ];
    for expression in corpus::filters().into_iter().chain(probes) {
        let original = compile(expression, true, 262_144).unwrap();
        let mapped = match map_addresses(&original, &key, true) {
            Ok(mapped) => mapped,
            Err(error) => {
                refused.push(format!("{expression}: {error}"));
                continue;
            }
        };
        accepted += 1;
        for (index, (packet, seen)) in packets.iter().zip(&seen).enumerate() {
            let wire_len = packet.len() as u32;
            let real = accepts(&mapped, packet, wire_len);
            if !accepts(&pass_all, packet, wire_len) {
                assert!(!real, "{expression}: the guard let frame {index} through");
                continue;
            }
            let client = accepts(&original, seen, wire_len);
            assert_eq!(
                real, client,
                "{expression} on frame {index} {packet:02x?}: mapped on the real packet \
                 {real}, the client's filter on what it sees {client}"
            );
            matches += usize::from(real);
        }
    }
    eprintln!(
        "{accepted} filters mapped, {} refused, {matches} matches:\n{}",
        refused.len(),
        refused.join("\n")
    );
    assert!(accepted * 2 > corpus::filters().len(), "most filters map");
    assert!(
        refused
            .iter()
            .any(|refusal| refusal.starts_with("ip6 proto 43")),
        "a read of a routing header's addresses is refused"
    );
    assert!(
        matches > 5000,
        "only {matches} matches: the check is too weak"
    );
}
