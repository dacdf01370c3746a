//! Whole frames built with etherparse: after a rewrite they still parse,
//! carry the Crypto-PAn images, and their checksums verify.

mod common;

use common::*;
use etherparse::{ArpEthIpv4Packet, ArpOperation, NetSlice, PacketBuilder, TransportSlice, VlanId};
use pktd_anon::{Layout, MacMode, Net, PayloadMode, layout};

const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: 192.102.249.13\r\n\r\n";

/// Checks the IP addresses and every checksum of a rewritten IPv4 or IPv6
/// TCP/UDP frame, and returns the transport payload.
#[track_caller]
fn check_ip_frame(frame: &[u8]) -> Vec<u8> {
    let p = parse(frame);
    let (pseudo, proto_len) = match p.net.as_ref().expect("IP") {
        NetSlice::Ipv4(ip) => {
            let h = ip.header();
            assert_eq!(h.source(), img4(V4_A));
            assert_eq!(h.destination(), img4(V4_B));
            assert_verifies(&[h.slice()], "IPv4 header");
            let len = usize::from(h.total_len()) - h.slice().len();
            (
                pseudo_v4(&h.source(), &h.destination(), h.protocol().0, len),
                len,
            )
        }
        NetSlice::Ipv6(ip) => {
            let h = ip.header();
            assert_eq!(h.source(), img6(V6_A));
            assert_eq!(h.destination(), img6(V6_B));
            let len = usize::from(h.payload_length());
            let proto = ip.payload().ip_number.0;
            (pseudo_v6(&h.source(), &h.destination(), proto, len), len)
        }
        NetSlice::Arp(_) => panic!("not IP"),
    };
    match p.transport.expect("transport") {
        TransportSlice::Tcp(t) => {
            assert_verifies(&[&pseudo, t.slice()], "TCP");
            assert_eq!(t.slice().len(), proto_len);
            t.payload().to_vec()
        }
        TransportSlice::Udp(u) => {
            assert_verifies(&[&pseudo, u.slice()], "UDP");
            u.payload().to_vec()
        }
        _ => panic!("not TCP or UDP"),
    }
}

fn rewrite(frame: &[u8], mac: MacMode, payload: PayloadMode) -> (Vec<u8>, Layout) {
    let mut out = frame.to_vec();
    let lay = anonymizer(mac, payload).rewrite(&mut out, frame.len() as u32);
    (out, lay)
}

#[test]
fn tcp_and_udp_keep_payload() {
    for frame in [
        ipv4_tcp(PAYLOAD),
        ipv4_udp(PAYLOAD),
        ipv6_tcp(PAYLOAD),
        ipv6_udp(PAYLOAD),
    ] {
        let (out, lay) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
        assert_eq!(check_ip_frame(&out), PAYLOAD);
        assert_eq!(out[..12], frame[..12], "MACs kept");
        assert_eq!(out[lay.header_end..], frame[lay.header_end..]);
    }
}

#[test]
fn tcp_and_udp_zero_payload() {
    for frame in [
        ipv4_tcp(PAYLOAD),
        ipv4_udp(PAYLOAD),
        ipv6_tcp(PAYLOAD),
        ipv6_udp(PAYLOAD),
    ] {
        let (out, lay) = rewrite(&frame, MacMode::Zero, PayloadMode::Zero);
        assert_eq!(check_ip_frame(&out), vec![0; PAYLOAD.len()]);
        assert!(out[lay.header_end..].iter().all(|&b| b == 0));
        assert_eq!(out[..12], [0; 12]);
    }
}

#[test]
fn zero_payload_checksum_is_right_for_the_whole_packet_when_cut() {
    // Cut right after the headers: the checksum must be the one of the
    // whole packet with a zero payload.
    let frame = ipv4_tcp(PAYLOAD);
    let (whole, lay) = rewrite(&frame, MacMode::Keep, PayloadMode::Zero);
    let mut cut = frame[..lay.header_end].to_vec();
    anonymizer(MacMode::Keep, PayloadMode::Zero).rewrite(&mut cut, frame.len() as u32);
    assert_eq!(cut[..], whole[..lay.header_end]);
}

#[test]
fn cut_frames_are_prefixes_of_the_whole_rewrite() {
    // Prefix images make a cut frame's rewrite the prefix of the whole
    // frame's, wherever the cut falls, but for the checksums over bytes
    // that were cut: those cannot be computed, and are zero (as much of
    // their field as was captured).
    for frame in [
        ipv4_tcp(PAYLOAD),
        ipv4_udp(PAYLOAD),
        ipv6_tcp(PAYLOAD),
        ipv6_udp(PAYLOAD),
    ] {
        for mac in [MacMode::Keep, MacMode::Zero] {
            let (whole, lay) = rewrite(&frame, mac, PayloadMode::Keep);
            let (Net::Ipv4(ip) | Net::Ipv6(ip)) = lay.net else {
                panic!("IP")
            };
            let t = ip.transport.expect("transport");
            // (field, end of the region it covers)
            let mut sums = vec![(t.start + t.kind.checksum_offset(), frame.len())];
            if matches!(lay.net, Net::Ipv4(_)) {
                sums.push((ip.start + 10, ip.start + ip.header_len));
            }
            for cut in 0..frame.len() {
                let mut part = frame[..cut].to_vec();
                anonymizer(mac, PayloadMode::Keep).rewrite(&mut part, frame.len() as u32);
                let mut want = whole[..cut].to_vec();
                for &(at, end) in &sums {
                    if cut < end {
                        let field = at.min(cut)..(at + 2).min(cut);
                        want[field].fill(0);
                    }
                }
                assert_eq!(part, want, "cut at {cut}");
            }
            // With payload zeroed, a cut frame's rewrite is the whole one's
            // prefix once the headers are whole.
            let (whole, _) = rewrite(&frame, mac, PayloadMode::Zero);
            for cut in lay.header_end..frame.len() {
                let mut part = frame[..cut].to_vec();
                anonymizer(mac, PayloadMode::Zero).rewrite(&mut part, frame.len() as u32);
                assert_eq!(part[..], whole[..cut], "zero mode, cut at {cut}");
            }
        }
    }
}

#[test]
fn udp_without_checksum_stays_without() {
    let mut frame = ipv4_udp(PAYLOAD);
    frame[14 + 20 + 6..14 + 20 + 8].fill(0);
    for payload in [PayloadMode::Keep, PayloadMode::Zero] {
        let (out, _) = rewrite(&frame, MacMode::Keep, payload);
        assert_eq!(out[40..42], [0, 0]);
    }
}

/// A wrong checksum (corruption, or TX checksum offload) is not passed on:
/// it is computed afresh, and is right for the rewritten packet. An update
/// would have kept it wrong by an amount that depends on the real
/// addresses.
#[test]
fn a_wrong_checksum_is_made_right() {
    for (frame, at) in [
        (ipv4_tcp(PAYLOAD), 14 + 20 + 16),
        (ipv4_udp(PAYLOAD), 14 + 20 + 6),
        (ipv6_tcp(PAYLOAD), 14 + 40 + 16),
        (ipv6_udp(PAYLOAD), 14 + 40 + 6),
    ] {
        let mut frame = frame;
        frame[at] ^= 0x40;
        // And a wrong IPv4 header checksum, which is computed afresh too.
        if frame[12] == 0x08 {
            frame[24] ^= 0x11;
        }
        let (out, _) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
        assert_eq!(check_ip_frame(&out), PAYLOAD);
    }
}

#[test]
fn vlan_tagged_frames() {
    let mut single = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(100).expect("id"))
        .ipv4(V4_A, V4_B, 64)
        .udp(1, 2)
        .write(&mut single, PAYLOAD)
        .expect("build");
    let mut double = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .double_vlan(
            VlanId::try_new(10).expect("id"),
            VlanId::try_new(20).expect("id"),
        )
        .ipv6(V6_A, V6_B, 64)
        .tcp(1, 2, 3, 4)
        .write(&mut double, PAYLOAD)
        .expect("build");
    for (frame, tags) in [(single, 1), (double, 2)] {
        for payload in [PayloadMode::Keep, PayloadMode::Zero] {
            let (out, lay) = rewrite(&frame, MacMode::Hash, payload);
            assert_eq!(lay.vlan_tags, tags);
            assert_eq!(lay.l3, 14 + 4 * usize::from(tags));
            let body = check_ip_frame(&out);
            if payload == PayloadMode::Keep {
                assert_eq!(body, PAYLOAD);
            } else {
                assert!(out[lay.header_end..].iter().all(|&b| b == 0));
            }
            assert_eq!(out[12..lay.l3], frame[12..lay.l3], "tags kept");
        }
    }
}

#[test]
fn a_third_vlan_tag_hides_everything_after_it() {
    let mut frame = [MAC_B, MAC_A].concat();
    for _ in 0..3 {
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
    }
    frame.extend_from_slice(&ipv4_udp(PAYLOAD)[12..]);
    let (out, lay) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
    assert_eq!(lay.net, Net::Other);
    assert_eq!(lay.header_end, 22);
    assert!(out[22..].iter().all(|&b| b == 0));
}

#[test]
fn unknown_ethertypes_and_invalid_ip_are_hidden() {
    let mut frames = vec![ethernet(0x88cc, &[0xaa; 40])];
    let mut bad_version = ipv4_udp(PAYLOAD);
    bad_version[14] = 0x55;
    frames.push(bad_version);
    let mut bad_ihl = ipv4_udp(PAYLOAD);
    bad_ihl[14] = 0x44;
    frames.push(bad_ihl);
    let mut bad_v6 = ipv6_udp(PAYLOAD);
    bad_v6[14] = 0x40;
    frames.push(bad_v6);
    for frame in frames {
        let (out, lay) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
        assert_eq!(lay.net, Net::Other);
        assert_eq!(lay.header_end, 14);
        assert!(lay.hide_rest);
        assert!(out[14..].iter().all(|&b| b == 0));
    }
}

#[test]
fn tunnels_are_hidden_whatever_the_payload_mode() {
    for proto in [4u8, 41, 47, 97, 115] {
        let mut frame = ipv4_udp(PAYLOAD);
        frame[14 + 9] = proto;
        // Keep the IPv4 header checksum right for the new protocol.
        frame[24..26].fill(0);
        let c = checksum(&[&frame[14..34]]);
        frame[24..26].copy_from_slice(&c.to_be_bytes());
        let (out, lay) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
        assert!(lay.hide_rest, "protocol {proto}");
        assert_eq!(lay.header_end, 34);
        assert!(out[34..].iter().all(|&b| b == 0));
        assert_verifies(&[&out[14..34]], "IPv4 header");
    }
    let frame = ipv6_with(&[], 41, &ipv6_udp(PAYLOAD)[14..]);
    let (out, lay) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
    assert!(lay.hide_rest);
    assert!(out[54..].iter().all(|&b| b == 0));
}

#[test]
fn mac_modes() {
    let mut bcast = ipv4_udp(PAYLOAD);
    bcast[..6].fill(0xff);
    let (keep, _) = rewrite(&bcast, MacMode::Keep, PayloadMode::Keep);
    assert_eq!(keep[..12], bcast[..12]);
    let (zero, _) = rewrite(&bcast, MacMode::Zero, PayloadMode::Keep);
    assert_eq!(zero[..12], [0; 12]);
    let (hash, _) = rewrite(&bcast, MacMode::Hash, PayloadMode::Keep);
    assert_eq!(hash[..6], [0xff; 6], "broadcast kept");
    assert_ne!(hash[6..12], MAC_A);
    assert_eq!(hash[6] & 0x03, 0x02, "local unicast");
    // The same MAC gets the same image in another frame and position.
    let (other, _) = rewrite(&ipv6_tcp(b""), MacMode::Hash, PayloadMode::Keep);
    assert_eq!(other[6..12], hash[6..12]);
}

fn arp_frame() -> Vec<u8> {
    let mut f = Vec::new();
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: MAC_A,
        sender_ipv4: V4_A,
        target_mac: MAC_B,
        target_ipv4: V4_B,
    };
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .arp(arp.into())
        .write(&mut f)
        .expect("build");
    f
}

#[test]
fn arp_addresses() {
    let frame = arp_frame();
    for mac in [MacMode::Keep, MacMode::Zero, MacMode::Hash] {
        let (out, lay) = rewrite(&frame, mac, PayloadMode::Zero);
        assert_eq!(lay.header_end, 14 + 28);
        let p = parse(&out);
        let Some(NetSlice::Arp(a)) = p.net else {
            panic!("ARP")
        };
        let a = a.to_packet().try_eth_ipv4().expect("Ethernet/IPv4 ARP");
        assert_eq!(a.sender_ipv4, img4(V4_A));
        assert_eq!(a.target_ipv4, img4(V4_B));
        assert_eq!(
            a.sender_mac,
            out[6..12],
            "same image as the Ethernet source"
        );
        match mac {
            MacMode::Keep => assert_eq!(a.sender_mac, MAC_A),
            MacMode::Zero => assert_eq!(a.target_mac, [0; 6]),
            MacMode::Hash => assert_ne!(a.target_mac, MAC_B),
        }
    }
}

#[test]
fn other_arp_is_hidden_past_its_fixed_header() {
    let mut frame = arp_frame();
    frame[14 + 1] = 6; // htype 6 (IEEE 802)
    let (out, lay) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
    assert_eq!(lay.header_end, 14 + 8 + 12 + 8);
    assert_eq!(out[14..22], frame[14..22]);
    assert!(out[22..].iter().all(|&b| b == 0));
}

#[test]
fn layout_agrees_with_rewrite() {
    let frame = ipv4_tcp(PAYLOAD);
    let lay = layout(&frame, frame.len() as u32);
    let (_, seen) = rewrite(&frame, MacMode::Keep, PayloadMode::Keep);
    assert_eq!(lay, seen);
    assert_eq!(lay.header_end, 14 + 20 + 20);
}
