//! Where each header of a captured Ethernet frame starts, and where the
//! headers end.
//!
//! This is the one parse of the header chain: the rewriter finds addresses
//! through it, and the daemon cuts "header-only" packets at
//! [`Layout::header_end`], so both agree on what is header and what is
//! payload. Offsets may lie past the captured bytes when the frame was cut:
//! a length that could not be read counts as the header's minimum length.
//! Every walk is bounded (two VLAN tags, `MAX_EXT_HEADERS` IPv6 extension headers).

/// VLAN tags looked through; a third makes the frame "other".
pub const MAX_VLAN_TAGS: usize = 2;
/// IPv6 extension headers walked before the chain is declared ended.
pub const MAX_EXT_HEADERS: usize = pktd_common::IPV6_EXTENSION_HEADERS;

const TPIDS: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// Whether the bytes after the network headers of an IP packet whose
/// (last) protocol / next header is `protocol` reach a client unchanged
/// when the payload is kept (true), or are rewritten or hidden by the
/// anonymizer (false: tunnels, protocols with pseudo-header checksums it
/// does not update, IPv6 extension headers it did not walk past, ...).
/// TCP, UDP, ICMP and ICMPv6 return false: their headers hold fields the
/// anonymizer rewrites (checksums, quoted packets); the filter analysis
/// has its own finer rules for them.
///
/// This is the one definition: [`layout`] hides the bytes after the
/// headers of exactly the other protocols it returns false for.
pub fn passes_through(protocol: u8) -> bool {
    !matches!(
        protocol,
        // Rewritten: ICMP, TCP, UDP, ICMPv6.
        1 | 6 | 17 | 58
        // Whole packets or frames whose inner addresses cannot be mapped:
        // IP-in-IP, IPv6, GRE, minimal encapsulation, IPIP, EtherIP, ENCAP,
        // IPComp (a compressed packet), L2TP, PIPE, MPLS-in-IP, Ethernet.
        | 4 | 41 | 47 | 55 | 94 | 97 | 98 | 108 | 115 | 131 | 137 | 143
        // Checksums over a pseudo-header holding the real addresses, which
        // a client could solve for: DCCP, UDP-Lite, and over IPv6 OSPFv3
        // (RFC 5340 A.3.1), PIM (RFC 7761 4.9) and VRRPv3 (RFC 5798 5.2.8).
        | 33 | 136 | 89 | 103 | 112
        // IPv6 extension headers (and AH, WESP), which a packet only ends
        // at when the walk stopped: what follows holds a transport header
        // whose checksum covers the real addresses, or more of the chain.
        | 0 | 43 | 44 | 51 | 60 | 135 | 139 | 140 | 141 | 253 | 254
    )
}

/// Whether a later fragment of `protocol`, at `offset` 8-byte units into
/// its packet, is hidden whatever the payload mode. TCP and UDP fragments
/// are pieces of payload, unless a crafted TCP fragment (RFC 1858) starts
/// early enough to hold the checksum; ICMP fragments may hold the rest of
/// a quoted packet.
fn later_fragment_hidden(protocol: u8, offset: u16) -> bool {
    match protocol {
        6 => offset <= 2,
        17 => false,
        p => !passes_through(p),
    }
}

/// The header chain of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// VLAN tags between the MAC addresses and the EtherType (0 to 2).
    pub vlan_tags: u8,
    /// Where the network header starts: 14 + 4 * `vlan_tags`.
    pub l3: usize,
    /// The EtherType after the tags, if captured.
    pub ethertype: Option<u16>,
    /// What the network header is.
    pub net: Net,
    /// Where the headers end and the payload starts.
    pub header_end: usize,
    /// The bytes from `header_end` on are hidden whatever the payload mode:
    /// no addresses can be found in them (unknown EtherType, invalid
    /// header), or they depend on the real ones (see [`Ip::hide_rest`]).
    pub hide_rest: bool,
}

/// The network layer of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// A valid IPv4 header.
    Ipv4(Ip),
    /// A valid IPv6 header.
    Ipv6(Ip),
    /// ARP or RARP.
    Arp(Arp),
    /// Anything else: unknown EtherType, invalid IP header, a third VLAN
    /// tag, or a frame cut before its EtherType.
    Other,
}

/// An IPv4 or IPv6 header and what follows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ip {
    /// Where the IP header starts.
    pub start: usize,
    /// Its length: 4 * IHL for IPv4, 40 for IPv6.
    pub header_len: usize,
    /// Where the IP packet ends according to its length field (or the
    /// frame's length when the field is zero: jumbograms, TSO), if known.
    pub packet_end: Option<usize>,
    /// IPv6 extension headers, in order (none for IPv4).
    pub ext: ExtHeaders,
    /// The transport header, if this is a first fragment of TCP, UDP,
    /// ICMP or ICMPv6 with a valid header.
    pub transport: Option<Transport>,
    /// Where this packet's headers end.
    pub header_end: usize,
    /// The bytes from `header_end` on are hidden whatever the payload mode:
    /// the protocol after the headers does not [`passes_through`] (a
    /// tunnel, a checksum over the real addresses, an extension header the
    /// walk stopped at), or a later fragment of one.
    pub hide_rest: bool,
}

/// One IPv6 extension header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ext {
    /// The next-header value that announced it (0, 43, 44, 51, 60, ...).
    pub kind: u8,
    /// Where it starts.
    pub start: usize,
    /// Its length in bytes.
    pub len: usize,
}

/// Up to [`MAX_EXT_HEADERS`] extension headers, without allocating.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtHeaders {
    items: [Ext; MAX_EXT_HEADERS],
    count: usize,
}

impl ExtHeaders {
    /// The headers, in order.
    pub fn as_slice(&self) -> &[Ext] {
        &self.items[..self.count]
    }

    fn push(&mut self, ext: Ext) {
        if self.count < MAX_EXT_HEADERS {
            self.items[self.count] = ext;
            self.count += 1;
        }
    }
}

/// A transport header whose checksum the rewriter maintains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Which protocol.
    pub kind: TransportKind,
    /// Where its header starts.
    pub start: usize,
    /// Its header length (TCP: data offset * 4, or 20 if not captured or
    /// if the data offset is invalid, below 5: such a segment's checksum is
    /// still maintained, but its headers are taken to end where it starts,
    /// at [`Ip::header_end`]).
    pub header_len: usize,
}

/// The transports the rewriter knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// ICMP (1, over IPv4).
    Icmpv4,
    /// ICMPv6 (58, over IPv6).
    Icmpv6,
}

impl TransportKind {
    /// The IP protocol number.
    pub fn protocol(self) -> u8 {
        match self {
            TransportKind::Tcp => 6,
            TransportKind::Udp => 17,
            TransportKind::Icmpv4 => 1,
            TransportKind::Icmpv6 => 58,
        }
    }

    /// Where the checksum field is in the header.
    pub fn checksum_offset(self) -> usize {
        match self {
            TransportKind::Tcp => 16,
            TransportKind::Udp => 6,
            TransportKind::Icmpv4 | TransportKind::Icmpv6 => 2,
        }
    }
}

/// An ARP or RARP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// Where it starts.
    pub start: usize,
    /// Ethernet hardware and IPv4 protocol addresses (htype 1, ptype
    /// 0x0800, hlen 6, plen 4): the addresses can be mapped.
    pub ethernet_ipv4: bool,
}

pub(crate) fn u8_at(data: &[u8], at: usize) -> Option<u8> {
    data.get(at).copied()
}

pub(crate) fn u16_at(data: &[u8], at: usize) -> Option<u16> {
    crate::checksum::read16(data, at)
}

/// Parses the header chain of a frame of `wire_len` bytes of which `data`
/// is the captured prefix.
pub fn layout(data: &[u8], wire_len: u32) -> Layout {
    let mut at = 12;
    let mut tags = 0u8;
    let mut ethertype = u16_at(data, at);
    while ethertype.is_some_and(|t| TPIDS.contains(&t)) {
        if usize::from(tags) == MAX_VLAN_TAGS {
            return other(tags, at + 2, ethertype);
        }
        tags += 1;
        at += 4;
        ethertype = u16_at(data, at);
    }
    let l3 = at + 2;
    let frame_end = (wire_len as usize).max(data.len());
    let net = match ethertype {
        Some(0x0800) => parse_ipv4(data, l3, Some(frame_end)).map(Net::Ipv4),
        Some(0x86dd) => parse_ipv6(data, l3, Some(frame_end)).map(Net::Ipv6),
        Some(0x0806 | 0x8035) => Some(Net::Arp(parse_arp(data, l3))),
        _ => None,
    };
    let Some(net) = net else {
        return other(tags, l3, ethertype);
    };
    let (header_end, hide_rest) = match net {
        Net::Ipv4(ip) | Net::Ipv6(ip) => (ip.header_end, ip.hide_rest),
        Net::Arp(arp) => (arp_end(data, arp), false),
        Net::Other => (l3, true),
    };
    Layout {
        vlan_tags: tags,
        l3,
        ethertype,
        net,
        header_end,
        hide_rest,
    }
}

fn other(vlan_tags: u8, l3: usize, ethertype: Option<u16>) -> Layout {
    Layout {
        vlan_tags,
        l3,
        ethertype,
        net: Net::Other,
        header_end: l3,
        hide_rest: true,
    }
}

fn parse_arp(data: &[u8], start: usize) -> Arp {
    let ethernet_ipv4 = u16_at(data, start) == Some(1)
        && u16_at(data, start + 2) == Some(0x0800)
        && u8_at(data, start + 4) == Some(6)
        && u8_at(data, start + 5) == Some(4);
    Arp {
        start,
        ethernet_ipv4,
    }
}

fn arp_end(data: &[u8], arp: Arp) -> usize {
    let fixed = arp.start + 8;
    if arp.ethernet_ipv4 {
        return arp.start + 28;
    }
    match (u8_at(data, arp.start + 4), u8_at(data, arp.start + 5)) {
        (Some(hlen), Some(plen)) => fixed + 2 * usize::from(hlen) + 2 * usize::from(plen),
        _ => fixed,
    }
}

/// Parses an IPv4 header at `start`; `None` if it is not a valid one
/// (version 4, IHL >= 5) or not captured. `frame_end` stands in for a zero
/// total length; quoted headers pass `None`.
pub(crate) fn parse_ipv4(data: &[u8], start: usize, frame_end: Option<usize>) -> Option<Ip> {
    let vihl = u8_at(data, start)?;
    let ihl = usize::from(vihl & 0x0f);
    if vihl >> 4 != 4 || ihl < 5 {
        return None;
    }
    let header_len = 4 * ihl;
    let end = start + header_len;
    let packet_end = match u16_at(data, start + 2).map(usize::from) {
        Some(0) => frame_end,
        Some(total) if total >= header_len => Some(start + total),
        _ => None,
    };
    let mut ip = Ip {
        start,
        header_len,
        packet_end,
        ext: ExtHeaders::default(),
        transport: None,
        header_end: end,
        hide_rest: false,
    };
    let (Some(frag), Some(proto)) = (u16_at(data, start + 6), u8_at(data, start + 9)) else {
        return Some(ip);
    };
    if frag & 0x1fff != 0 {
        // A later fragment: its bytes are a piece of the payload, or of
        // something hidden.
        ip.hide_rest = later_fragment_hidden(proto, frag & 0x1fff);
        return Some(ip);
    }
    set_transport(&mut ip, data, proto, end, TransportKind::Icmpv4);
    Some(ip)
}

/// Parses an IPv6 header at `start` and its extension headers; `None` if
/// it is not a valid one (version 6) or not captured.
pub(crate) fn parse_ipv6(data: &[u8], start: usize, frame_end: Option<usize>) -> Option<Ip> {
    if u8_at(data, start)? >> 4 != 6 {
        return None;
    }
    let packet_end = match u16_at(data, start + 4).map(usize::from) {
        Some(0) => frame_end,
        Some(len) => Some(start + 40 + len),
        None => None,
    };
    let mut ip = Ip {
        start,
        header_len: 40,
        packet_end,
        ext: ExtHeaders::default(),
        transport: None,
        header_end: start + 40,
        hide_rest: false,
    };
    let Some(mut nh) = u8_at(data, start + 6) else {
        return Some(ip);
    };
    let mut at = start + 40;
    for _ in 0..MAX_EXT_HEADERS {
        let len = match nh {
            0 | 43 | 60 | 135 | 139 | 140 => u8_at(data, at + 1).map(|l| (usize::from(l) + 1) * 8),
            51 => u8_at(data, at + 1).map(|l| (usize::from(l) + 2) * 4),
            44 => Some(8),
            _ => return Some(finish_ipv6(ip, data, nh, at)),
        };
        let (Some(len), Some(next)) = (len, u8_at(data, at)) else {
            // Cut inside the extension header: count its minimum length.
            ip.header_end = at + 8;
            return Some(ip);
        };
        ip.ext.push(Ext {
            kind: nh,
            start: at,
            len,
        });
        if nh == 44 {
            let Some(offset) = u16_at(data, at + 2) else {
                ip.header_end = at + 8;
                return Some(ip);
            };
            if offset & 0xfff8 != 0 {
                ip.header_end = at + 8;
                ip.hide_rest = later_fragment_hidden(next, offset >> 3);
                return Some(ip);
            }
        }
        nh = next;
        at += len;
    }
    // Past the last header walked: a transport, or an extension header
    // too many, which ends the chain unread and hides what follows.
    Some(finish_ipv6(ip, data, nh, at))
}

fn finish_ipv6(mut ip: Ip, data: &[u8], nh: u8, at: usize) -> Ip {
    set_transport(&mut ip, data, nh, at, TransportKind::Icmpv6);
    ip
}

/// Records the transport header `proto` at `at` (ICMP being `icmp` for
/// this IP version), or that what follows is hidden, and where the headers
/// end.
fn set_transport(ip: &mut Ip, data: &[u8], proto: u8, at: usize, icmp: TransportKind) {
    ip.header_end = at;
    let (kind, header_len) = match proto {
        6 => match u8_at(data, at + 12).map(|b| usize::from(b >> 4)) {
            Some(doff) if doff >= 5 => (TransportKind::Tcp, doff * 4),
            // An invalid data offset, or one the record does not hold: the
            // header cannot be delimited (the whole frame's may be invalid,
            // its bytes then payload, zeroed with it), but its checksum
            // still covers the addresses and must be handled.
            _ => {
                ip.transport = Some(Transport {
                    kind: TransportKind::Tcp,
                    start: at,
                    header_len: 20,
                });
                return;
            }
        },
        17 => (TransportKind::Udp, 8),
        p if p == icmp.protocol() => (icmp, 8),
        p => {
            ip.hide_rest = !passes_through(p);
            return;
        }
    };
    ip.transport = Some(Transport {
        kind,
        start: at,
        header_len,
    });
    ip.header_end = at + header_len;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn third_vlan_tag_is_other() {
        let mut f = vec![0u8; 12];
        for _ in 0..3 {
            f.extend_from_slice(&[0x81, 0x00, 0, 1]);
        }
        f.extend_from_slice(&[0x08, 0x00, 0x45]);
        let l = layout(&f, f.len() as u32);
        assert_eq!(l.net, Net::Other);
        assert!(l.hide_rest);
        assert_eq!(l.header_end, 12 + 8 + 2);
    }

    #[test]
    fn cut_frame_is_other_without_panicking() {
        for n in 0..20 {
            let l = layout(&[0x08; 20][..n], 60);
            assert_eq!(l.net, Net::Other);
        }
    }

    #[test]
    fn what_passes_through() {
        // Rewritten transports, which have finer rules of their own.
        let rewritten = [1, 6, 17, 58];
        let tunnels = [4, 41, 47, 97, 115];
        // Checksums over the real addresses: DCCP, UDP-Lite, OSPFv3, PIM.
        let pseudo_header = [33, 136, 89, 103];
        // Extension headers the walk stopped at.
        let extensions = [0, 43, 44, 51, 60, 135, 139, 140];
        for p in [&rewritten[..], &tunnels, &pseudo_header, &extensions].concat() {
            assert!(!passes_through(p), "protocol {p}");
        }
        // IGMP, SCTP (CRC32c over itself only), ESP, No Next Header.
        for p in [2, 132, 50, 59] {
            assert!(passes_through(p), "protocol {p}");
        }
    }
}
