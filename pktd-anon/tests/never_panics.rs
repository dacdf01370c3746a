//! Whatever the bytes, wherever the cut, in every mode: no panic (debug
//! builds also check arithmetic overflow), no access past the captured
//! bytes, the same result twice, and zeroed payload really zero.

mod common;

use common::*;
use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode, layout};
use proptest::prelude::*;
use proptest::sample::{Index, select};

fn modes() -> impl Strategy<Value = (MacMode, PayloadMode)> {
    (
        select(vec![MacMode::Keep, MacMode::Zero, MacMode::Hash]),
        select(vec![PayloadMode::Keep, PayloadMode::Zero]),
    )
}

fn templates() -> Vec<Vec<u8>> {
    let mut v4_opts = vec![1, 7, 11, 4];
    v4_opts.extend_from_slice(&[V4_C, V4_D].concat());
    v4_opts.extend_from_slice(&[131, 7, 4]);
    v4_opts.extend_from_slice(&V4_C);
    let mut rt = vec![0, 2, 0, 1, 0, 0, 0, 0];
    rt.extend_from_slice(&V6_C);
    let mut dst = vec![0, 2, 0xc9, 16];
    dst.extend_from_slice(&V6_C);
    dst.extend_from_slice(&[1, 2, 0, 0]);
    let icmp_v4 = {
        let mut f = ipv4_udp(&ipv4_udp(b"quoted")[14..]);
        f[14 + 9] = 1;
        f[34] = 3;
        f
    };
    let icmp_v6 = {
        let mut f = ipv6_udp(&ipv6_udp(b"quoted")[14..]);
        f[14 + 6] = 58;
        f[54] = 1;
        f
    };
    vec![
        ipv4_tcp(b"payload"),
        ipv4_udp(b"payload"),
        ipv6_tcp(b"payload"),
        ipv6_udp(b"payload"),
        ipv4_options_udp(&v4_opts, V4_C, b"payload"),
        ipv6_with(&[(60, dst), (43, rt)], 6, &[0u8; 40]),
        icmp_v4,
        icmp_v6,
        ethernet(
            0x0806,
            &[
                0, 1, 8, 0, 6, 4, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
            ],
        ),
    ]
}

fn check(frame: &mut Vec<u8>, wire_len: u32, mac: MacMode, payload: PayloadMode) {
    let original = frame.clone();
    let mut anon = Anonymizer::new(CryptoPan::new(&KEY), mac, payload);
    let lay = anon.rewrite(frame, wire_len);
    assert_eq!(frame.len(), original.len());
    assert_eq!(lay, layout(&original, wire_len));
    assert!(lay.header_end >= lay.l3);
    if payload == PayloadMode::Zero || lay.hide_rest {
        assert!(frame.iter().skip(lay.header_end).all(|&b| b == 0));
    }
    let mut again = original;
    anon.rewrite(&mut again, wire_len);
    assert_eq!(again, *frame, "deterministic, cache or not");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn random_bytes(
        mut bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ethertype in select(vec![0x0800u16, 0x86dd, 0x0806, 0x8035, 0x8100, 0x88a8, 0x9100, 0x1234]),
        first in select(vec![None, Some(0x45u8), Some(0x46), Some(0x4f), Some(0x60)]),
        extra in 0u32..2000,
        (mac, payload) in modes(),
    ) {
        if bytes.len() >= 14 {
            bytes[12..14].copy_from_slice(&ethertype.to_be_bytes());
        }
        if let (Some(b), true) = (first, bytes.len() > 14) {
            bytes[14] = b;
        }
        let wire = bytes.len() as u32 + extra;
        check(&mut bytes, wire, mac, payload);
    }

    #[test]
    fn mutated_frames(
        which: Index,
        flips in proptest::collection::vec((any::<Index>(), any::<u8>()), 0..6),
        cut: Index,
        (mac, payload) in modes(),
    ) {
        let all = templates();
        let mut frame = all[which.index(all.len())].clone();
        let wire = frame.len() as u32;
        for (at, byte) in flips {
            let i = at.index(frame.len());
            frame[i] = byte;
        }
        frame.truncate(cut.index(frame.len() + 1));
        check(&mut frame, wire, mac, payload);
    }
}
