//! Header-only views: where pktd cuts a packet (`pktd_filter::header_end`,
//! the prologue the kernel runs) against etherparse's reading of the same
//! frame, on the project's corpus and on tcpdump's own test captures.

use std::fs::File;

use etherparse::{IpNumber, Ipv6RawExtHeaderSlice, LaxNetSlice, LaxSlicedPacket, TcpHeaderSlice};
use pktd_filter::{IPV6_EXTENSION_HEADERS, header_end};
use pktd_tests::corpus;

/// Where the headers end by etherparse: the start of the IP payload after
/// the extension headers it walks, plus the transport header. Adjusted to
/// pktd's documented chain where etherparse's differs: a first fragment's
/// transport header counts (etherparse leaves fragmented payloads alone),
/// ICMP counts 8 bytes whatever its type, IPv4 AH is not walked, IPv6
/// Mobility/HIP/Shim6 headers are, and at most
/// `IPV6_EXTENSION_HEADERS` extension headers are. `None` when etherparse
/// finds the frame malformed before its transport header.
fn reference(frame: &[u8]) -> Option<u32> {
    let parsed = LaxSlicedPacket::from_ethernet(frame).ok()?;
    if parsed.stop_err.is_some() {
        return None;
    }
    let offset = |slice: &[u8]| (slice.as_ptr() as usize - frame.as_ptr() as usize) as u32;
    let tags = parsed.link_exts.len() as u32;
    if tags > 2 {
        return Some(22);
    }
    let (ip_end, protocol, fragment_offset) = match parsed.net? {
        LaxNetSlice::Arp(arp) => return Some(offset(arp.slice()) + arp.slice().len() as u32),
        LaxNetSlice::Ipv4(ipv4) => {
            let header = ipv4.header();
            let l3 = offset(header.slice());
            let ip_end = l3 + header.slice().len() as u32;
            // pktd does not walk IPv4 AH: its header ends the chain.
            let protocol = header.protocol();
            (ip_end, protocol, header.fragments_offset().value())
        }
        LaxNetSlice::Ipv6(ipv6) => {
            let l3 = offset(ipv6.header().slice());
            let payload = ipv6.payload();
            let mut end = offset(payload.payload);
            let mut next = payload.ip_number;
            let mut count = ipv6.extensions().clone().into_iter().count();
            let mut fragment = ipv6
                .extensions()
                .clone()
                .into_iter()
                .find_map(|ext| match ext {
                    etherparse::Ipv6ExtensionSlice::Fragment(f) => {
                        Some(f.fragment_offset().value())
                    }
                    _ => None,
                })
                .unwrap_or(0);
            // Headers etherparse does not walk but pktd does.
            let mut rest = payload.payload;
            while [IpNumber(135), IpNumber(139), IpNumber(140)].contains(&next) && fragment == 0 {
                let ext = Ipv6RawExtHeaderSlice::from_slice(rest).ok()?;
                count += 1;
                end += ext.slice().len() as u32;
                next = ext.next_header();
                rest = &rest[ext.slice().len()..];
            }
            if count > IPV6_EXTENSION_HEADERS {
                // The walk stops at the header past the limit.
                let walked: u32 = ipv6
                    .extensions()
                    .clone()
                    .into_iter()
                    .take(IPV6_EXTENSION_HEADERS)
                    .map(|ext| ext_len(&ext))
                    .sum();
                return Some(l3 + 40 + walked);
            }
            if fragment != 0 {
                fragment = 1;
            }
            (end, next, fragment)
        }
    };
    if fragment_offset != 0 {
        return Some(ip_end);
    }
    let transport = &frame[ip_end as usize..];
    let transport_len = match protocol.0 {
        6 => match TcpHeaderSlice::from_slice(transport) {
            Ok(tcp) => tcp.slice().len() as u32,
            // A data offset under 5: the chain ends at the TCP header's
            // start. A header cut short: the frame is malformed.
            Err(etherparse::err::tcp::HeaderSliceError::Content(_)) => 0,
            Err(_) => return None,
        },
        17 | 1 | 58 => 8,
        _ => 0,
    };
    if ip_end + transport_len > frame.len() as u32 {
        return None;
    }
    Some(ip_end + transport_len)
}

/// The length of one IPv6 extension header.
fn ext_len(ext: &etherparse::Ipv6ExtensionSlice) -> u32 {
    use etherparse::Ipv6ExtensionSlice::*;
    (match ext {
        HopByHop(raw) | Routing(raw) | DestinationOptions(raw) => raw.slice().len(),
        Fragment(fragment) => fragment.slice().len(),
        Authentication(auth) => auth.slice().len(),
    }) as u32
}

fn compare(name: &str, frame: &[u8], wire_len: u32, compared: &mut usize) {
    let ours = header_end(frame, wire_len);
    let Some(expected) = reference(frame) else {
        return;
    };
    assert_eq!(
        ours,
        Some(expected),
        "{name}: pktd cuts at {ours:?}, etherparse's chain ends at {expected} \
         (frame {frame:02x?})"
    );
    *compared += 1;
}

#[test]
fn the_header_cut_matches_etherparse_on_the_corpus() {
    let mut compared = 0;
    let packets = corpus::packets(4000, 0x4ead);
    for packet in &packets {
        compare(
            &packet.name,
            &packet.bytes,
            packet.bytes.len() as u32,
            &mut compared,
        );
    }
    eprintln!("{compared} of {} corpus frames compared", packets.len());
    // The corpus is mostly well-formed: most frames must be compared, not
    // skipped as malformed.
    assert!(
        compared * 2 > packets.len(),
        "only {compared} of {} frames parsed by etherparse",
        packets.len()
    );
}

#[test]
fn the_header_cut_matches_etherparse_on_tcpdumps_captures() {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tcpdump");
    let mut files = 0;
    let mut compared = 0;
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|ext| ext != "pcap") {
            continue;
        }
        files += 1;
        let mut reader = pktd_pcap::savefile::Reader::new(File::open(&path).unwrap()).unwrap();
        assert_eq!(reader.link_type(), 1, "{}", path.display());
        let mut index = 0;
        while let Some(packet) = reader.next_packet().unwrap() {
            index += 1;
            // Only whole frames: a cut one may end inside its headers.
            if packet.data.len() as u32 != packet.wire_len {
                continue;
            }
            let name = format!("{} #{index}", path.display());
            compare(&name, &packet.data, packet.wire_len, &mut compared);
        }
    }
    eprintln!("{files} captures, {compared} frames compared");
    assert!(files >= 20, "{files} captures");
    assert!(compared >= 100, "only {compared} frames compared");
}

/// Where the headers end as a session with a window sees it: the chain
/// walked on the frame cut to the window, a byte it needs past the window
/// making the end the window (nothing there is read: it may not decide).
/// `Err` for a frame shorter than the window whose chain fails: whether
/// the byte it lacks lies past the window (end: the window) or not (not
/// delivered) is not told by `header_end`.
fn windowed_end(frame: &[u8], wire_len: u32, window: Option<u32>) -> Result<Option<u32>, ()> {
    let Some(window) = window else {
        return Ok(header_end(frame, wire_len));
    };
    let cut = &frame[..frame.len().min(window as usize)];
    match header_end(cut, wire_len) {
        Some(end) => Ok(Some(end.min(window))),
        None if frame.len() > window as usize => Ok(Some(window)),
        None => Err(()),
    }
}

/// A program confined to the headers accepts exactly when the original
/// accepts the frame cut where the headers end (the wire length kept, as
/// libpcap filters a file captured that way), and returns that cut (at
/// most the window); every corpus filter on every corpus frame.
#[test]
fn a_header_confined_filter_sees_only_the_headers() {
    let packets = corpus::packets(300, 0x5eed);
    let mut accepted = 0;
    for expression in corpus::filters() {
        let original = pktd_filter::compile(expression, true, 262_144).unwrap();
        for window in [None, Some(40), Some(300)] {
            let confined = pktd_filter::confine_to_headers(&original, window, true)
                .unwrap_or_else(|e| panic!("{expression:?}: {e}"));
            let loads_only = pktd_filter::confine_to_headers(&original, window, false).unwrap();
            for packet in &packets {
                let wire_len = packet.bytes.len() as u32;
                let Ok(end) = windowed_end(&packet.bytes, wire_len, window) else {
                    continue;
                };
                let expected = match end {
                    None => 0,
                    Some(end) => {
                        let cut = &packet.bytes[..(end as usize).min(packet.bytes.len())];
                        match pktd_filter::interpret(&original, cut, wire_len) {
                            0 => 0,
                            _ => end,
                        }
                    }
                };
                let got = pktd_filter::interpret(&confined, &packet.bytes, wire_len);
                assert_eq!(
                    got, expected,
                    "{expression:?} window {window:?} on {}",
                    packet.name
                );
                let verdict = pktd_filter::interpret(&loads_only, &packet.bytes, wire_len);
                assert_eq!(
                    verdict != 0,
                    expected != 0,
                    "{expression:?} on {}",
                    packet.name
                );
                accepted += usize::from(expected != 0);
            }
        }
    }
    assert!(
        accepted > 1000,
        "only {accepted} acceptances: the check is too weak"
    );
}

/// The anonymizer zeroes payloads from where its own walk says the
/// headers end (`pktd_anon::layout`): it must be where the kernel's
/// prologue cuts, on every frame both read whole.
#[test]
fn the_anonymizer_and_the_kernel_agree_where_the_headers_end() {
    let mut frames: Vec<Vec<u8>> = corpus::packets(4000, 0xa9e)
        .into_iter()
        .map(|packet| packet.bytes)
        .collect();
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tcpdump");
    for entry in std::fs::read_dir(directory).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "pcap") {
            let mut reader = pktd_pcap::savefile::Reader::new(File::open(&path).unwrap()).unwrap();
            while let Some(packet) = reader.next_packet().unwrap() {
                if packet.data.len() as u32 == packet.wire_len {
                    frames.push(packet.data);
                }
            }
        }
    }
    let mut compared = 0;
    for frame in &frames {
        let wire_len = frame.len() as u32;
        let Some(kernel) = header_end(frame, wire_len) else {
            continue;
        };
        let anonymizer = pktd_anon::layout(frame, wire_len).header_end;
        assert_eq!(anonymizer as u32, kernel, "frame {frame:02x?}");
        compared += 1;
    }
    assert!(compared > 3000, "{compared} frames compared");
}
