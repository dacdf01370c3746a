//! IPv4 options and IPv6 extension headers: route lists and Home Address
//! options are mapped, other option data hidden, fragments delimited, and
//! transport checksums follow the final destination of a source route.

mod common;

use common::*;
use pktd_anon::{Layout, MacMode, Net, PayloadMode};

const PAYLOAD: &[u8] = b"some payload";

fn rewrite(frame: &[u8], payload: PayloadMode) -> (Vec<u8>, Layout) {
    let mut out = frame.to_vec();
    let lay = anonymizer(MacMode::Keep, payload).rewrite(&mut out, frame.len() as u32);
    (out, lay)
}

/// NOP, Record Route (at an odd offset), Loose Source Route, a timestamp
/// option, EOL.
fn v4_options() -> Vec<u8> {
    let mut o = vec![1, 7, 11, 4];
    o.extend_from_slice(&[V4_C, V4_D].concat());
    o.extend_from_slice(&[131, 11, 4]);
    o.extend_from_slice(&[V4_C, V4_D].concat());
    o.extend_from_slice(&[68, 8, 5, 0, 0xde, 0xad, 0xbe, 0xef, 0]);
    o
}

#[test]
fn ipv4_route_options_are_mapped_and_others_hidden() {
    let frame = ipv4_options_udp(&v4_options(), V4_D, PAYLOAD);
    for payload in [PayloadMode::Keep, PayloadMode::Zero] {
        let (out, lay) = rewrite(&frame, payload);
        assert_eq!(lay.header_end, 14 + 52 + 8);
        let ip = &out[14..14 + 52];
        assert_verifies(&[ip], "IPv4 header with options");
        let o = &ip[20..];
        assert_eq!(o[..4], [1, 7, 11, 4]);
        assert_eq!(o[4..12], [img4(V4_C), img4(V4_D)].concat(), "record route");
        assert_eq!(o[15..23], [img4(V4_C), img4(V4_D)].concat(), "source route");
        assert_eq!(o[23..25], [68, 8]);
        assert_eq!(o[25..31], [0; 6], "timestamp data hidden");
        let udp = &out[14 + 52..];
        let pseudo = pseudo_v4(&img4(V4_A), &img4(V4_D), 17, udp.len());
        assert_verifies(&[&pseudo, udp], "UDP to the source route's end");
        parse(&out);
    }
}

#[test]
fn ipv4_later_fragment_has_no_transport_header() {
    let mut frame = ipv4_udp(PAYLOAD);
    frame[14 + 6..14 + 8].copy_from_slice(&[0x00, 0x10]);
    frame[24..26].fill(0);
    let c = checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&c.to_be_bytes());
    let (out, lay) = rewrite(&frame, PayloadMode::Keep);
    let Net::Ipv4(ip) = lay.net else {
        panic!("IPv4")
    };
    assert_eq!(ip.transport, None);
    assert_eq!(lay.header_end, 34);
    assert_eq!(out[34..], frame[34..], "payload kept as is");
    let (out, _) = rewrite(&frame, PayloadMode::Zero);
    assert!(out[34..].iter().all(|&b| b == 0));
    assert_verifies(&[&out[14..34]], "IPv4 header");
}

/// Hop-by-hop with an unknown option, destination options with a Home
/// Address, a type 0 routing header, an atomic fragment header.
fn v6_chain() -> Vec<(u8, Vec<u8>)> {
    let mut hbh = vec![0, 0, 0x3e, 4, 0xca, 0xfe, 0xba, 0xbe];
    hbh.truncate(8);
    let mut dst = vec![0, 2, 0xc9, 16];
    dst.extend_from_slice(&V6_C);
    dst.extend_from_slice(&[1, 2, 0, 0]);
    let mut rt = vec![0, 4, 0, 2, 0, 0, 0, 0];
    rt.extend_from_slice(&[V6_C, V6_D].concat());
    let frag = vec![0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    vec![(0, hbh), (60, dst), (43, rt), (44, frag)]
}

#[test]
fn ipv6_extension_headers() {
    let udp = udp_segment(|len| pseudo_v6(&V6_A, &V6_D, 17, len), PAYLOAD);
    let frame = ipv6_with(&v6_chain(), 17, &udp);
    for payload in [PayloadMode::Keep, PayloadMode::Zero] {
        let (out, lay) = rewrite(&frame, payload);
        let Net::Ipv6(ip) = lay.net else {
            panic!("IPv6")
        };
        let kinds: Vec<u8> = ip.ext.as_slice().iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [0, 60, 43, 44]);
        let e = 54;
        assert_eq!(
            out[e + 2..e + 8],
            [0x3e, 4, 0, 0, 0, 0],
            "unknown option hidden"
        );
        assert_eq!(out[e + 12..e + 28], img6(V6_C), "home address");
        assert_eq!(out[e + 28..e + 32], [1, 2, 0, 0], "PadN kept");
        assert_eq!(out[e + 40..e + 56], img6(V6_C), "route");
        assert_eq!(out[e + 56..e + 72], img6(V6_D), "route");
        let t = e + 80;
        assert_eq!(lay.header_end, t + 8);
        let seg = &out[t..];
        let pseudo = pseudo_v6(&img6(V6_A), &img6(V6_D), 17, seg.len());
        assert_verifies(&[&pseudo, seg], "UDP to the route's end");
        parse(&out);
    }
}

#[test]
fn segment_routing_header() {
    let mut srh = vec![0, 5, 4, 1, 1, 0, 0, 0];
    srh.extend_from_slice(&[V6_D, V6_C].concat());
    srh.extend_from_slice(&[5, 6, 1, 2, 3, 4, 5, 6]); // a TLV
    let udp = udp_segment(|len| pseudo_v6(&V6_A, &V6_D, 17, len), PAYLOAD);
    let frame = ipv6_with(&[(43, srh)], 17, &udp);
    let (out, _) = rewrite(&frame, PayloadMode::Keep);
    assert_eq!(out[62..78], img6(V6_D));
    assert_eq!(out[78..94], img6(V6_C));
    assert_eq!(out[94..102], [0; 8], "TLVs hidden");
    let seg = &out[102..];
    assert_eq!(&seg[8..], PAYLOAD);
    let pseudo = pseudo_v6(&img6(V6_A), &img6(V6_D), 17, seg.len());
    assert_verifies(&[&pseudo, seg], "UDP to segment 0");
}

#[test]
fn other_routing_types_are_hidden_past_eight_bytes() {
    let mut rt = vec![0, 2, 3, 1, 0x12, 0x34, 0x56, 0x78];
    rt.extend_from_slice(&V6_C);
    let udp = udp_segment(|len| pseudo_v6(&V6_A, &V6_B, 17, len), PAYLOAD);
    let frame = ipv6_with(&[(43, rt)], 17, &udp);
    let (out, _) = rewrite(&frame, PayloadMode::Keep);
    assert_eq!(out[54..62], frame[54..62]);
    assert_eq!(out[62..78], [0; 16]);
    let seg = &out[78..];
    let pseudo = pseudo_v6(&img6(V6_A), &img6(V6_B), 17, seg.len());
    assert_verifies(&[&pseudo, seg], "UDP");
}

#[test]
fn ipv6_later_fragment_ends_the_chain() {
    let frag = vec![0, 0, 0x05, 0x00, 1, 2, 3, 4];
    let frame = ipv6_with(&[(44, frag)], 17, PAYLOAD);
    let (out, lay) = rewrite(&frame, PayloadMode::Keep);
    assert_eq!(lay.header_end, 62);
    assert_eq!(out[62..], *PAYLOAD);
    let (out, _) = rewrite(&frame, PayloadMode::Zero);
    assert!(out[62..].iter().all(|&b| b == 0));
}

#[test]
fn too_many_extension_headers_end_the_chain() {
    let walked = pktd_anon::MAX_EXT_HEADERS;
    let exts: Vec<(u8, Vec<u8>)> = (0..=walked)
        .map(|_| (60, vec![0, 0, 1, 4, 0, 0, 0, 0]))
        .collect();
    let frame = ipv6_with(&exts, 17, &udp_segment(|_| Vec::new(), PAYLOAD));
    let (_, lay) = rewrite(&frame, PayloadMode::Keep);
    let Net::Ipv6(ip) = lay.net else {
        panic!("IPv6")
    };
    assert_eq!(ip.ext.as_slice().len(), walked);
    assert_eq!(ip.transport, None);
    assert_eq!(lay.header_end, 54 + 8 * walked);
}

#[test]
fn authentication_header_is_walked() {
    // AH: length in 4-byte units minus 2; 12 bytes of fixed fields plus a
    // 12-byte ICV = 24 bytes, length field 4.
    let mut ah = vec![0, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
    ah.extend_from_slice(&[0xaa; 12]);
    let udp = udp_segment(|len| pseudo_v6(&V6_A, &V6_B, 17, len), PAYLOAD);
    let frame = ipv6_with(&[(51, ah)], 17, &udp);
    let (out, lay) = rewrite(&frame, PayloadMode::Keep);
    assert_eq!(lay.header_end, 54 + 24 + 8);
    let seg = &out[78..];
    let pseudo = pseudo_v6(&img6(V6_A), &img6(V6_B), 17, seg.len());
    assert_verifies(&[&pseudo, seg], "UDP after AH");
}

#[test]
fn long_routing_headers_map_a_bounded_number_of_addresses() {
    // 20 addresses: the first 16 are mapped, the rest hidden.
    let mut rt = vec![0, 40, 0, 20, 0, 0, 0, 0];
    for _ in 0..20 {
        rt.extend_from_slice(&V6_C);
    }
    let frame = ipv6_with(&[(43, rt)], 59, &[]);
    let (out, lay) = rewrite(&frame, PayloadMode::Keep);
    assert_eq!(lay.header_end, 54 + 8 + 320);
    for i in 0..20 {
        let at = 62 + 16 * i;
        let want = if i < 16 { img6(V6_C) } else { [0; 16] };
        assert_eq!(out[at..at + 16], want, "address {i}");
    }
}
