//! Frame builders and independent checksum checks shared by the tests.
//! The checksums here are computed from scratch (RFC 1071), never through
//! the crate, so a mistake in its incremental updates cannot hide.

#![allow(dead_code, reason = "each test file uses a different subset")]

use etherparse::{PacketBuilder, SlicedPacket};
use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode};

/// The reference distribution's sample key.
pub const KEY: [u8; 32] = [
    21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121,
    121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
];

pub const MAC_A: [u8; 6] = [0x00, 0x1b, 0x21, 0x0a, 0x0b, 0x0c];
pub const MAC_B: [u8; 6] = [0x3c, 0xfd, 0xfe, 0x01, 0x02, 0x03];

pub const V4_A: [u8; 4] = [192, 102, 249, 13];
pub const V4_B: [u8; 4] = [128, 11, 68, 132];
pub const V4_C: [u8; 4] = [24, 13, 62, 231];
pub const V4_D: [u8; 4] = [10, 185, 25, 118];

pub const V6_A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const V6_B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const V6_C: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0c];
pub const V6_D: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0d];

pub fn anonymizer(mac: MacMode, payload: PayloadMode) -> Anonymizer {
    Anonymizer::new(CryptoPan::new(&KEY), mac, payload)
}

pub fn img4(a: [u8; 4]) -> [u8; 4] {
    CryptoPan::new(&KEY)
        .anonymize_v4(u32::from_be_bytes(a))
        .to_be_bytes()
}

pub fn img6(a: [u8; 16]) -> [u8; 16] {
    CryptoPan::new(&KEY)
        .anonymize_v6(u128::from_be_bytes(a))
        .to_be_bytes()
}

/// The folded one's complement sum of the concatenation of `parts`.
pub fn ones(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut s: u64 = 0;
    for pair in bytes.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        s += hi | pair.get(1).map_or(0, |&b| u64::from(b));
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    s as u16
}

/// The checksum to store for a region whose other bytes sum as `parts`.
pub fn checksum(parts: &[&[u8]]) -> u16 {
    !ones(parts)
}

pub fn pseudo_v4(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = [src, dst].concat();
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

pub fn pseudo_v6(src: &[u8], dst: &[u8], proto: u8, len: usize) -> Vec<u8> {
    let mut p = [src, dst].concat();
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

/// Asserts that a region (pseudo-header parts then the segment, checksum
/// field included) verifies.
#[track_caller]
pub fn assert_verifies(parts: &[&[u8]], what: &str) {
    assert_eq!(ones(parts), 0xffff, "{what}: checksum does not verify");
}

/// Parses a rewritten frame with etherparse, which must still accept it.
#[track_caller]
pub fn parse(frame: &[u8]) -> SlicedPacket<'_> {
    SlicedPacket::from_ethernet(frame).expect("etherparse parses the rewritten frame")
}

pub fn ipv4_udp(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .udp(5353, 53)
        .write(&mut f, payload)
        .expect("build");
    f
}

pub fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .tcp(40000, 443, 0x0102_0304, 1024)
        .ack(77)
        .psh()
        .write(&mut f, payload)
        .expect("build");
    f
}

pub fn ipv6_udp(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(V6_A, V6_B, 64)
        .udp(5353, 53)
        .write(&mut f, payload)
        .expect("build");
    f
}

pub fn ipv6_tcp(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(V6_A, V6_B, 64)
        .tcp(40000, 443, 7, 1024)
        .syn()
        .write(&mut f, payload)
        .expect("build");
    f
}

/// A UDP segment whose checksum is right for the given pseudo-header.
pub fn udp_segment(pseudo: impl Fn(usize) -> Vec<u8>, payload: &[u8]) -> Vec<u8> {
    let len = 8 + payload.len();
    let mut seg = vec![0x14, 0xe9, 0x00, 0x35];
    seg.extend_from_slice(&(len as u16).to_be_bytes());
    seg.extend_from_slice(&[0, 0]);
    seg.extend_from_slice(payload);
    let c = checksum(&[&pseudo(len), &seg]);
    seg[6..8].copy_from_slice(&c.to_be_bytes());
    seg
}

/// An Ethernet frame around an IPv4 header with `options` (padded to 4
/// bytes) and a UDP segment whose checksum uses `pseudo_dst`.
pub fn ipv4_options_udp(options: &[u8], pseudo_dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut opts = options.to_vec();
    while !opts.len().is_multiple_of(4) {
        opts.push(0);
    }
    let seg = udp_segment(|len| pseudo_v4(&V4_A, &pseudo_dst, 17, len), payload);
    let hl = 20 + opts.len();
    let total = hl + seg.len();
    let mut ip = vec![0x40 | (hl / 4) as u8, 0];
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0x12, 0x34, 0x40, 0x00, 64, 17, 0, 0]);
    ip.extend_from_slice(&V4_A);
    ip.extend_from_slice(&V4_B);
    ip.extend_from_slice(&opts);
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ethernet(0x0800, &[ip, seg].concat())
}

pub fn ethernet(ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut f = [MAC_B, MAC_A].concat();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// An IPv6 frame with extension headers `exts` (kind, bytes; the next
/// header byte of each is filled in) and a transport segment `l4` of
/// protocol `proto`.
pub fn ipv6_with(exts: &[(u8, Vec<u8>)], proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, (_, bytes)) in exts.iter().enumerate() {
        let mut b = bytes.clone();
        b[0] = exts.get(i + 1).map_or(proto, |e| e.0);
        chain.extend_from_slice(&b);
    }
    let first = exts.first().map_or(proto, |e| e.0);
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&((chain.len() + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[first, 64]);
    ip.extend_from_slice(&V6_A);
    ip.extend_from_slice(&V6_B);
    ethernet(0x86dd, &[ip, chain, l4.to_vec()].concat())
}
