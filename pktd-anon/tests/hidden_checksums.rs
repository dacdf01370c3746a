//! No checksum in a record depends on bytes the client does not see as
//! they are (real addresses, zeroed payload, uncaptured bytes that would
//! have been rewritten): each is right for the rewritten packet, or zero.
//! Two frames that differ only in such bytes must give the same record.

mod common;

use common::*;
use etherparse::PacketBuilder;
use pktd_anon::{Anonymizer, CryptoPan, Layout, MacMode, Net, PayloadMode, layout, passes_through};

const MODES: [PayloadMode; 2] = [PayloadMode::Keep, PayloadMode::Zero];

/// The record of the first `cut` bytes of `frame`.
fn record(frame: &[u8], cut: usize, payload: PayloadMode) -> Vec<u8> {
    let mut out = frame[..cut].to_vec();
    anonymizer(MacMode::Zero, payload).rewrite(&mut out, frame.len() as u32);
    out
}

/// Ethernet + IPv4 (`V4_A` to `V4_B`, no options) + `l4` of `proto`,
/// with a right header checksum.
fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&V4_A);
    ip.extend_from_slice(&V4_B);
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ethernet(0x0800, &[ip, l4.to_vec()].concat())
}

/// Sets the checksum at `at` in `l4` right for `V4_A` to `V4_B`.
fn with_checksum(proto: u8, mut l4: Vec<u8>, at: usize) -> Vec<u8> {
    l4[at..at + 2].fill(0);
    let pseudo = pseudo_v4(&V4_A, &V4_B, proto, l4.len());
    let c = checksum(&[&pseudo, &l4]);
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    l4
}

fn echo(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .icmpv4_echo_request(0x1234, 1)
        .write(&mut f, payload)
        .expect("build");
    f
}

/// An ICMPv4 Port Unreachable quoting a UDP datagram to `victim`.
fn unreachable(victim: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut quote = Vec::new();
    PacketBuilder::ipv4(V4_B, victim, 64)
        .udp(5353, 53)
        .write(&mut quote, payload)
        .expect("build");
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .icmpv4_raw(3, 3, [0; 4])
        .write(&mut f, &quote)
        .expect("build");
    f
}

/// TCP with a 12-byte timestamp option and `payload`.
fn tcp_with_options(payload: &[u8]) -> Vec<u8> {
    let mut tcp = vec![
        0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x80, 0x18, 4, 0,
    ];
    tcp.extend_from_slice(&[0; 4]);
    tcp.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    tcp.extend_from_slice(payload);
    ipv4(6, &with_checksum(6, tcp, 16))
}

/// F2: payload zeroed, a transport header cut before its end: the
/// checksum cannot be recomputed and is zeroed, not updated over the real
/// payload.
#[test]
fn zero_payload_cut_transport_header_zeroes_the_checksum() {
    let cases = [
        (echo(b"secret-AAAA"), echo(b"secret-BBBB"), 38),
        (unreachable(V4_C, b"q"), unreachable(V4_D, b"q"), 38),
        (tcp_with_options(b"Apass"), tcp_with_options(b"Bpass"), 54),
    ];
    for (a, b, cut) in cases {
        let (ra, rb) = (
            record(&a, cut, PayloadMode::Zero),
            record(&b, cut, PayloadMode::Zero),
        );
        assert_eq!(ra, rb, "cut at {cut}");
        assert_eq!(ra[cut - 2..], [0, 0], "the checksum is zeroed");
        // Whole, the checksum is computed afresh: nothing leaks either.
        let whole = |f: &Vec<u8>| record(f, f.len(), PayloadMode::Zero);
        assert_eq!(whole(&a), whole(&b));
    }
}

/// F2: a checksum field cut in half is zeroed, in both modes.
#[test]
fn half_a_checksum_is_zeroed() {
    for payload in MODES {
        let frame = echo(b"data");
        assert_eq!(record(&frame, 37, payload)[36], 0, "{payload:?}");
        let frame = ipv4_tcp(b"data");
        assert_eq!(record(&frame, 14 + 20 + 17, payload)[50], 0, "{payload:?}");
    }
}

/// An IPv4 header with a Record Route option holding `hop`.
fn record_route(hop: [u8; 4]) -> Vec<u8> {
    let mut rr = vec![7, 11, 12];
    rr.extend_from_slice(&V4_C);
    rr.extend_from_slice(&hop);
    ipv4_options_udp(&rr, V4_B, b"payload")
}

/// F3: an IPv4 header cut inside its options has its checksum zeroed,
/// whatever the payload mode: an update would cover the real route.
#[test]
fn cut_ipv4_header_zeroes_its_checksum() {
    let (a, b) = (record_route(V4_C), record_route(V4_D));
    for payload in MODES {
        for cut in 26..14 + 20 + 8 {
            let (ra, rb) = (record(&a, cut, payload), record(&b, cut, payload));
            assert_eq!(ra, rb, "{payload:?}, cut at {cut}");
            assert_eq!(ra[24..26], [0, 0]);
        }
        // Whole, it is computed afresh and verifies.
        let out = record(&a, a.len(), payload);
        assert_verifies(&[&out[14..46]], "IPv4 header");
    }
}

/// F3: payload kept, an ICMP error cut inside its quote: the ICMP
/// checksum covers quoted addresses that were not captured, and a quoted
/// IPv4 header checksum covers a header not wholly captured.
#[test]
fn cut_icmp_error_zeroes_the_checksums_over_the_quote() {
    let (a, b) = (unreachable(V4_C, b"q"), unreachable(V4_D, b"q"));
    let quote = 14 + 20 + 8;
    // Cut before the quoted destination: nothing may depend on it.
    for cut in 38..quote + 16 {
        let (ra, rb) = (
            record(&a, cut, PayloadMode::Keep),
            record(&b, cut, PayloadMode::Keep),
        );
        assert_eq!(ra, rb, "cut at {cut}");
    }
    let cut = quote + 18;
    let out = record(&a, cut, PayloadMode::Keep);
    assert_eq!(out[36..38], [0, 0], "ICMP checksum");
    assert_eq!(
        out[quote + 10..quote + 12],
        [0, 0],
        "quoted header checksum"
    );
    // A quote whose header is whole keeps a quoted header checksum that
    // verifies.
    let out = record(&a, quote + 20, PayloadMode::Keep);
    assert_eq!(out[36..38], [0, 0]);
    assert_verifies(&[&out[quote..quote + 20]], "quoted IPv4 header");
}

/// Payload kept, a TCP or UDP segment or an echo cut in its payload
/// (a snaplen) gets checksum 0: its checksum cannot be verified, so the
/// field may hold a partial sum over the real addresses (TX checksum
/// offload), which an update would pass on. The rest of the record is the
/// prefix of the whole one's. A UDP "no checksum" zero stays zero.
#[test]
fn cut_kept_payload_zeroes_the_checksum() {
    let mut no_checksum = ipv4_udp(b"kept");
    no_checksum[40..42].fill(0);
    for frame in [
        ipv4_tcp(b"kept payload"),
        ipv4_udp(b"kept"),
        ipv6_tcp(b"kept payload"),
        ipv6_udp(b"kept"),
        echo(b"kept"),
        no_checksum,
    ] {
        let whole = record(&frame, frame.len(), PayloadMode::Keep);
        let lay = layout(&frame, frame.len() as u32);
        let (Net::Ipv4(ip) | Net::Ipv6(ip)) = lay.net else {
            panic!("IP")
        };
        let t = ip.transport.expect("transport");
        let at = t.start + t.kind.checksum_offset();
        for cut in lay.header_end..frame.len() {
            let out = record(&frame, cut, PayloadMode::Keep);
            assert_eq!(out[at..at + 2], [0, 0], "cut at {cut}");
            assert_eq!(out[..at], whole[..at], "cut at {cut}");
            assert_eq!(out[at + 2..], whole[at + 2..cut], "cut at {cut}");
        }
    }
}

/// The checksum field as TX checksum offload (CHECKSUM_PARTIAL) leaves it
/// in a capture on the sending host: the one's complement sum of the
/// pseudo-header, not complemented, for the NIC to finish.
fn offload_partial(frame: &mut [u8], at: usize, pseudo: &[u8]) {
    frame[at..at + 2].copy_from_slice(&ones(&[pseudo]).to_be_bytes());
}

/// Ethernet + IPv4 from `V4_A` to `dst` + TCP with `payload`, its
/// checksum field holding the partial sum TX offload leaves.
fn offloaded_tcp_to(dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, dst, 64)
        .tcp(40000, 443, 1, 1024)
        .ack(1)
        .write(&mut f, payload)
        .expect("build");
    let pseudo = pseudo_v4(&V4_A, &dst, 6, f.len() - 34);
    offload_partial(&mut f, 34 + 16, &pseudo);
    f
}

/// Two real destinations whose one's complement sums differ but whose
/// images' sums are the same: frames to them differ, once rewritten, only
/// in the destination, unless something depends on the real sum.
fn destinations_with_equal_image_sums() -> ([u8; 4], [u8; 4]) {
    let mut seen = std::collections::HashMap::new();
    for i in 0..=u16::MAX {
        let [x, y] = i.to_be_bytes();
        let real = [10, 77, x, y];
        if let Some(other) = seen.insert(ones(&[&img4(real)]), real) {
            assert_ne!(ones(&[&other]), ones(&[&real]));
            return (other, real);
        }
    }
    panic!("no two images of 10.77/16 with the same sum")
}

/// TX checksum offload: the field holds the sum of the real
/// pseudo-header, not a checksum. Updated incrementally, it would give
/// the client the sum of the real addresses; it must come out right for
/// the rewritten packet instead, in TCP and UDP over IPv4 and IPv6.
#[test]
fn an_offload_partial_checksum_is_made_right() {
    for (frame, v4) in [
        (ipv4_tcp(b"offloaded"), true),
        (ipv4_udp(b"offloaded"), true),
        (ipv6_tcp(b"offloaded"), false),
        (ipv6_udp(b"offloaded"), false),
    ] {
        let mut frame = frame;
        let (l4, proto) = if v4 { (34, frame[23]) } else { (54, frame[20]) };
        let at = l4 + if proto == 6 { 16 } else { 6 };
        let len = frame.len() - l4;
        let pseudo = if v4 {
            pseudo_v4(&V4_A, &V4_B, proto, len)
        } else {
            pseudo_v6(&V6_A, &V6_B, proto, len)
        };
        offload_partial(&mut frame, at, &pseudo);
        let out = record(&frame, frame.len(), PayloadMode::Keep);
        let pseudo = if v4 {
            pseudo_v4(&img4(V4_A), &img4(V4_B), proto, len)
        } else {
            pseudo_v6(&img6(V6_A), &img6(V6_B), proto, len)
        };
        assert_verifies(&[&pseudo, &out[l4..]], "offloaded segment");
        assert_eq!(out[l4 + len - 9..], *b"offloaded");
    }
}

/// Two offloaded segments whose partial checksum fields differ by the
/// real addresses' sum, and whose images sum the same: rewritten, whole
/// or cut, they differ only in the destination's image, so no checksum
/// tells the real sum.
#[test]
fn an_offload_partial_checksum_leaves_no_trace_of_the_real_sum() {
    let (d1, d2) = destinations_with_equal_image_sums();
    let (a, b) = (
        offloaded_tcp_to(d1, b"same payload"),
        offloaded_tcp_to(d2, b"same payload"),
    );
    assert_ne!(a[50..52], b[50..52], "the real sums differ");
    let dst = 30..34;
    for cut in [a.len(), 54, 60] {
        let (mut ra, mut rb) = (
            record(&a, cut, PayloadMode::Keep),
            record(&b, cut, PayloadMode::Keep),
        );
        assert_eq!(ra[dst.clone()], img4(d1));
        assert_eq!(rb[dst.clone()], img4(d2));
        ra[dst.clone()].fill(0);
        rb[dst.clone()].fill(0);
        assert_eq!(ra, rb, "cut at {cut}");
    }
    let out = record(&a, a.len(), PayloadMode::Keep);
    let pseudo = pseudo_v4(&img4(V4_A), &img4(d1), 6, a.len() - 34);
    assert_verifies(&[&pseudo, &out[34..]], "TCP");
    assert_verifies(&[&out[14..34]], "IPv4 header");
}

/// F4: DCCP and UDP-Lite checksums cover the real addresses, which this
/// crate does not update: everything after the IP header is hidden.
#[test]
fn dccp_and_udp_lite_are_hidden() {
    for proto in [33, 136] {
        let l4 = with_checksum(proto, (0..24).collect(), 6);
        let frame = ipv4(proto, &l4);
        for payload in MODES {
            let out = record(&frame, frame.len(), payload);
            assert!(out[34..].iter().all(|&b| b == 0), "protocol {proto}");
            assert_verifies(&[&out[14..34]], "IPv4 header");
        }
    }
}

/// F4: a TCP data offset below 5 does not stop the checksum, which covers
/// the addresses, from being computed: it is right for what the client
/// sees.
#[test]
fn tcp_with_an_invalid_data_offset_gets_its_checksum_computed() {
    let mut tcp: Vec<u8> = (0..24).collect();
    tcp[12] = 0x40;
    let frame = ipv4(6, &with_checksum(6, tcp, 16));
    let out = record(&frame, frame.len(), PayloadMode::Keep);
    assert_ne!(out[50..52], frame[50..52]);
    let pseudo = pseudo_v4(&img4(V4_A), &img4(V4_B), 6, 24);
    assert_verifies(&[&pseudo, &out[34..]], "TCP");
    let out = record(&frame, frame.len(), PayloadMode::Zero);
    assert!(out[34..].iter().all(|&b| b == 0));
}

/// IPv6 with `exts` then a UDP datagram whose checksum is right.
fn ipv6_exts_udp(exts: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let udp = udp_segment(|len| pseudo_v6(&V6_A, &V6_B, 17, len), b"payload");
    ipv6_with(exts, 17, &udp)
}

/// F4: the IPv6 chain ends at an extension header too many, or at one it
/// cannot walk: the transport checksum behind it, over the real
/// addresses, is hidden with the rest.
#[test]
fn ipv6_chain_ended_at_an_extension_header_hides_the_rest() {
    let opts = || vec![0, 0, 1, 4, 0, 0, 0, 0];
    let too_many: Vec<_> = (0..=pktd_anon::MAX_EXT_HEADERS)
        .map(|_| (60, opts()))
        .collect();
    let experimental = vec![(253, opts())];
    for exts in [too_many, experimental] {
        let frame = ipv6_exts_udp(&exts);
        let lay = layout(&frame, frame.len() as u32);
        assert!(lay.hide_rest);
        let out = record(&frame, frame.len(), PayloadMode::Keep);
        assert!(out[lay.header_end..].iter().all(|&b| b == 0));
    }
}

/// F4: IPv4 carrying AH (not walked in IPv4) then TCP, or a TCP fragment
/// crafted to start before the checksum (RFC 1858): hidden.
#[test]
fn ipv4_ah_and_tiny_tcp_fragments_are_hidden() {
    let mut ah = vec![6, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
    ah.extend_from_slice(&[0xaa; 12]);
    let tcp = &ipv4_tcp(b"data")[34..];
    let frame = ipv4(51, &[ah, tcp.to_vec()].concat());
    assert!(
        record(&frame, frame.len(), PayloadMode::Keep)[34..]
            .iter()
            .all(|&b| b == 0)
    );
    let mut frag = ipv4(6, &tcp[8..]);
    frag[14 + 6..14 + 8].copy_from_slice(&1u16.to_be_bytes());
    assert!(layout(&frag, frag.len() as u32).hide_rest);
    // Later UDP fragments are payload, kept.
    let mut frag = ipv4(17, b"a later piece of a datagram");
    frag[14 + 6..14 + 8].copy_from_slice(&1u16.to_be_bytes());
    assert!(!layout(&frag, frag.len() as u32).hide_rest);
}

/// F4: an ICMP error quoting a DCCP packet hides the quoted DCCP header,
/// whose checksum covers the quoted real addresses.
#[test]
fn quoted_hidden_protocols_are_hidden() {
    let dccp = with_checksum(33, (0..16).collect(), 6);
    let quoted = &ipv4(33, &dccp)[14..];
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .icmpv4_raw(3, 3, [0; 4])
        .write(&mut f, quoted)
        .expect("build");
    let out = record(&f, f.len(), PayloadMode::Keep);
    let quote = 14 + 20 + 8;
    assert!(out[quote + 20..].iter().all(|&b| b == 0));
    assert_verifies(&[&out[34..]], "ICMP");
}

/// The protocol after the headers, if it is one `layout` decides on.
fn hides(frame: &[u8]) -> (Layout, bool) {
    let lay = layout(frame, frame.len() as u32);
    let (Net::Ipv4(ip) | Net::Ipv6(ip)) = lay.net else {
        panic!("IP")
    };
    (lay, ip.hide_rest)
}

/// `passes_through` is the one definition: every protocol it says does
/// not pass (but the transports rewritten) is hidden after the headers,
/// in IPv4 and IPv6, and every other is kept.
#[test]
fn layout_hides_exactly_what_does_not_pass_through() {
    for proto in 0..=255u8 {
        if matches!(proto, 1 | 6 | 17 | 58) {
            continue;
        }
        let frame = ipv4(proto, &[0x5a; 40]);
        let (lay, hidden) = hides(&frame);
        assert_eq!(hidden, !passes_through(proto), "IPv4, protocol {proto}");
        assert_eq!(lay.hide_rest, hidden);
        // IPv6 walks its extension headers; behind the most it walks, the
        // next header decides the same way.
        let exts: Vec<_> = (0..pktd_anon::MAX_EXT_HEADERS)
            .map(|_| (60, vec![0, 0, 1, 4, 0, 0, 0, 0]))
            .collect();
        let frame = ipv6_with(&exts, proto, &[0x5a; 40]);
        let (_, hidden) = hides(&frame);
        assert_eq!(hidden, !passes_through(proto), "IPv6, next header {proto}");
    }
}

/// A record cut before a TCP data offset it does not hold: the headers
/// end where TCP starts (the whole frame's offset might be invalid, its
/// bytes then payload): with the payload hidden, nothing the whole
/// frame's rewrite would zero survives the cut.
#[test]
fn a_cut_before_the_tcp_data_offset_hides_what_the_whole_frame_hides() {
    // Ethernet, IPv6, an 8-byte Destination Options header, then TCP
    // with a data offset of 4 (invalid) followed by "SECRETSECRET".
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd];
    let mut tcp = vec![
        0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x40, 0x02, 0xff, 0xff,
    ];
    tcp.extend_from_slice(&[0; 4]);
    tcp.extend_from_slice(b"SECRETSECRET");
    let payload_len = 8 + tcp.len();
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(payload_len as u16).to_be_bytes());
    frame.extend_from_slice(&[60, 64]);
    frame.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    frame.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    frame.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
    frame.extend_from_slice(&tcp);
    let wire = frame.len() as u32;
    let key = [5u8; 32];
    let mut whole = frame.clone();
    Anonymizer::new(CryptoPan::new(&key), MacMode::Zero, PayloadMode::Zero)
        .rewrite(&mut whole, wire);
    for cut in [66usize, 70, 74] {
        let mut record = frame[..cut].to_vec();
        Anonymizer::new(CryptoPan::new(&key), MacMode::Zero, PayloadMode::Zero)
            .rewrite(&mut record, wire);
        for (at, (&got, &zeroed)) in record.iter().zip(&whole).enumerate() {
            if zeroed == 0 {
                assert_eq!(got, 0, "cut at {cut}: byte {at} the whole rewrite zeroes");
            }
        }
    }
}
