//! Filters of anonymized principals (`pktd_filter::map_addresses`) with
//! the real key schedule (`pktd_anon`): a mapped filter run on the real
//! packet decides exactly what the client's filter decides on the packet
//! the client gets, for every corpus filter the mapping accepts and every
//! corpus packet; and probes for real addresses learn nothing.

use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode};
use pktd_filter::{AddressMap, ValidProgram, compile, interpret, map_addresses};
use pktd_tests::corpus;

const KEY: [u8; 32] = *b"pktd anonymized filter test key!";

struct Key(CryptoPan);

impl AddressMap for Key {
    fn real_prefix_v4(&self, anonymized: u32, len: u8) -> u32 {
        self.0.real_prefix_v4(anonymized, len)
    }

    fn real_prefix_v6(&self, anonymized: u128, len: u8) -> u128 {
        self.0.real_prefix_v6(anonymized, len)
    }
}

fn accepts(program: &ValidProgram, frame: &[u8], wire_len: u32) -> bool {
    interpret(program, frame, wire_len) != 0
}

#[test]
fn a_mapped_filter_on_real_packets_decides_as_the_filter_on_what_the_client_sees() {
    let key = Key(CryptoPan::new(&KEY));
    let pass_all = map_addresses(&compile("", true, 262_144).unwrap(), &key, true).unwrap();
    let packets = corpus::packets(1500, 0xa11);
    let mut anonymizer = Anonymizer::new(CryptoPan::new(&KEY), MacMode::Keep, PayloadMode::Keep);
    let seen: Vec<Vec<u8>> = packets
        .iter()
        .map(|packet| {
            let mut bytes = packet.bytes.clone();
            anonymizer.rewrite(&mut bytes, packet.bytes.len() as u32);
            bytes
        })
        .collect();
    let (mut accepted, mut refused, mut matches) = (0, Vec::new(), 0);
    for expression in corpus::filters() {
        let original = compile(expression, true, 262_144).unwrap();
        let mapped = match map_addresses(&original, &key, true) {
            Ok(mapped) => mapped,
            Err(error) => {
                refused.push(format!("{expression}: {error}"));
                continue;
            }
        };
        accepted += 1;
        for (packet, seen) in packets.iter().zip(&seen) {
            let wire_len = packet.bytes.len() as u32;
            let real = accepts(&mapped, &packet.bytes, wire_len);
            if !accepts(&pass_all, &packet.bytes, wire_len) {
                assert!(!real, "{expression}: the guard let {} through", packet.name);
                continue;
            }
            let client = accepts(&original, seen, wire_len);
            assert_eq!(
                real, client,
                "{expression} on {}: mapped on the real packet {real}, the client's filter \
                 on what it sees {client}",
                packet.name
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
        matches > 5000,
        "only {matches} matches: the check is too weak"
    );
}
