//! ICMP and ICMPv6: quoted packets, Redirect gateways, neighbor discovery.

mod common;

use common::*;
use etherparse::{NetSlice, PacketBuilder, TransportSlice};
use pktd_anon::{CryptoPan, MacMode, PayloadMode};

fn inner_v4_udp() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv4(V4_C, V4_D, 64)
        .udp(33434, 53)
        .write(&mut v, b"inner payload")
        .expect("build");
    v
}

fn inner_v6_udp() -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ipv6(V6_C, V6_D, 64)
        .udp(33434, 53)
        .write(&mut v, b"inner payload")
        .expect("build");
    v
}

fn icmpv4(kind: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .icmpv4_raw(kind, 1, rest)
        .write(&mut f, body)
        .expect("build");
    f
}

fn icmpv6(kind: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(V6_A, V6_B, 255)
        .icmpv6_raw(kind, 0, rest)
        .write(&mut f, body)
        .expect("build");
    f
}

fn rewrite(frame: &[u8], mac: MacMode, payload: PayloadMode) -> Vec<u8> {
    let mut out = frame.to_vec();
    anonymizer(mac, payload).rewrite(&mut out, frame.len() as u32);
    out
}

/// Checks the outer addresses and checksums, returns the ICMP message.
#[track_caller]
fn icmp_message(out: &[u8]) -> Vec<u8> {
    let p = parse(out);
    match (
        p.net.as_ref().expect("IP"),
        p.transport.as_ref().expect("ICMP"),
    ) {
        (NetSlice::Ipv4(ip), TransportSlice::Icmpv4(icmp)) => {
            assert_eq!(ip.header().source(), img4(V4_A));
            assert_verifies(&[ip.header().slice()], "outer IPv4 header");
            assert_verifies(&[icmp.slice()], "ICMP");
            icmp.slice().to_vec()
        }
        (NetSlice::Ipv6(ip), TransportSlice::Icmpv6(icmp)) => {
            let (s, d) = (ip.header().source(), ip.header().destination());
            assert_eq!((s, d), (img6(V6_A), img6(V6_B)));
            let pseudo = pseudo_v6(&s, &d, 58, icmp.slice().len());
            assert_verifies(&[&pseudo, icmp.slice()], "ICMPv6");
            icmp.slice().to_vec()
        }
        _ => panic!("not ICMP"),
    }
}

#[test]
fn icmpv4_error_quote_is_rewritten_when_payload_is_kept() {
    for kind in [3u8, 4, 11, 12] {
        let frame = icmpv4(kind, [0; 4], &inner_v4_udp());
        let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
        let inner = &msg[8..];
        assert_eq!(inner[12..16], img4(V4_C));
        assert_eq!(inner[16..20], img4(V4_D));
        assert_verifies(&[&inner[..20]], "quoted IPv4 header");
        let pseudo = pseudo_v4(&inner[12..16], &inner[16..20], 17, inner.len() - 20);
        assert_verifies(&[&pseudo, &inner[20..]], "quoted UDP");
        assert_eq!(&inner[28..], b"inner payload");
    }
}

/// A quoted UDP checksum that is not a checksum (TX offload's partial
/// sum over the quoted real addresses) comes out right for the quoted
/// packet's images when the whole packet is quoted, and zero when only its
/// start is (as usual): it cannot be verified then, and an update would
/// pass the real sum on. The outer checksum is right either way.
#[test]
fn quoted_checksums_are_computed_or_zeroed() {
    let mut inner = inner_v4_udp();
    let len = inner.len() - 20;
    let partial = ones(&[&pseudo_v4(&V4_C, &V4_D, 17, len)]);
    inner[26..28].copy_from_slice(&partial.to_be_bytes());
    // A wrong quoted header checksum is computed afresh too.
    inner[10] ^= 0x5a;
    let frame = icmpv4(3, [0; 4], &inner);
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
    let q = &msg[8..];
    assert_verifies(&[&q[..20]], "quoted IPv4 header");
    let pseudo = pseudo_v4(&img4(V4_C), &img4(V4_D), 17, len);
    assert_verifies(&[&pseudo, &q[20..]], "quoted UDP");
    // RFC 792: the header and 8 bytes of the datagram.
    let frame = icmpv4(3, [0; 4], &inner[..28]);
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
    assert_verifies(&[&msg[8..28]], "quoted IPv4 header");
    assert_eq!(msg[8 + 26..8 + 28], [0, 0], "quoted UDP checksum");

    let mut inner = inner_v6_udp();
    let len = inner.len() - 40;
    let partial = ones(&[&pseudo_v6(&V6_C, &V6_D, 17, len)]);
    inner[46..48].copy_from_slice(&partial.to_be_bytes());
    let frame = icmpv6(1, [0; 4], &inner);
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
    let pseudo = pseudo_v6(&img6(V6_C), &img6(V6_D), 17, len);
    assert_verifies(&[&pseudo, &msg[8 + 40..]], "quoted UDP over IPv6");
    let frame = icmpv6(1, [0; 4], &inner[..48]);
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
    assert_eq!(msg[8 + 46..8 + 48], [0, 0], "quoted UDP checksum");
}

#[test]
fn icmpv4_error_quote_is_zeroed_with_the_payload() {
    let frame = icmpv4(3, [0; 4], &inner_v4_udp());
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Zero));
    assert!(msg[8..].iter().all(|&b| b == 0));
}

#[test]
fn icmpv4_unrecognisable_quote_is_hidden() {
    let mut quote = inner_v4_udp();
    quote[0] = 0x65;
    let frame = icmpv4(3, [0; 4], &quote);
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
    assert!(msg[8..].iter().all(|&b| b == 0));
}

#[test]
fn icmpv4_redirect_gateway_is_mapped_in_every_mode() {
    for payload in [PayloadMode::Keep, PayloadMode::Zero] {
        let frame = icmpv4(5, V4_C, &inner_v4_udp());
        let msg = icmp_message(&rewrite(&frame, MacMode::Keep, payload));
        assert_eq!(msg[4..8], img4(V4_C));
    }
}

#[test]
fn icmpv6_error_quote_is_rewritten_when_payload_is_kept() {
    for kind in [1u8, 2, 3, 4] {
        let frame = icmpv6(kind, [0, 0, 5, 0], &inner_v6_udp());
        let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
        let inner = &msg[8..];
        assert_eq!(inner[8..24], img6(V6_C));
        assert_eq!(inner[24..40], img6(V6_D));
        let pseudo = pseudo_v6(&inner[8..24], &inner[24..40], 17, inner.len() - 40);
        assert_verifies(&[&pseudo, &inner[40..]], "quoted UDP");
    }
    let frame = icmpv6(1, [0; 4], &inner_v6_udp());
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Zero));
    assert!(msg[8..].iter().all(|&b| b == 0));
}

#[test]
fn neighbor_solicitation_target_and_link_layer_option() {
    let mut body = V6_C.to_vec();
    body.extend_from_slice(&[1, 1]);
    body.extend_from_slice(&MAC_A);
    let frame = icmpv6(135, [0; 4], &body);
    let out = rewrite(&frame, MacMode::Hash, PayloadMode::Keep);
    let msg = icmp_message(&out);
    assert_eq!(msg[8..24], img6(V6_C));
    assert_eq!(msg[26..32], out[6..12], "option MAC hashed like the source");
    assert_ne!(msg[26..32], MAC_A);
    let msg = icmp_message(&rewrite(&frame, MacMode::Hash, PayloadMode::Zero));
    assert!(msg[8..].iter().all(|&b| b == 0));
}

#[test]
fn redirect_target_destination_and_redirected_header() {
    let mut body = [V6_C, V6_D].concat();
    body.extend_from_slice(&[4, 6, 0, 0, 0, 0, 0, 0]);
    body.extend_from_slice(&inner_v6_udp()[..40]);
    let frame = icmpv6(137, [0; 4], &body);
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
    assert_eq!(msg[8..24], img6(V6_C));
    assert_eq!(msg[24..40], img6(V6_D));
    assert_eq!(msg[40..42], [4, 6]);
    assert!(msg[48..].iter().all(|&b| b == 0), "quoted packet hidden");
}

#[test]
fn router_advertisement_prefix_and_dns_server() {
    let mut body = vec![0u8; 8]; // reachable time, retrans timer
    let mut prefix = vec![3, 4, 32, 0xc0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0];
    prefix.extend_from_slice(&V6_A[..4]);
    prefix.extend_from_slice(&[0; 12]);
    body.extend_from_slice(&prefix);
    body.extend_from_slice(&[25, 3, 0, 0, 0, 0, 0, 60]);
    body.extend_from_slice(&V6_D);
    let frame = icmpv6(134, [64, 0, 0, 30], &body);
    let msg = icmp_message(&rewrite(&frame, MacMode::Keep, PayloadMode::Keep));
    let pan = CryptoPan::new(&KEY);
    let want = pan.anonymize_prefix_v6(u128::from_be_bytes(V6_A), 32);
    assert_eq!(msg[16 + 16..16 + 32], want.to_be_bytes());
    assert_eq!(msg[48 + 8..48 + 24], img6(V6_D));
}
