//! ICMP and ICMPv6 messages that carry addresses: the gateway of an ICMPv4
//! Redirect, the packet an error quotes, neighbor discovery targets and
//! options.

use crate::checksum::{store, zero};
use crate::cryptopan::CryptoPan;
use crate::ip::{
    MAX_ADDRESSES_PER_WALK, map_v4, map_v6, rewrite_ipv4, rewrite_ipv6, transport_sum, zero_kind,
};
use crate::layout::{Transport, TransportKind, parse_ipv4, parse_ipv6, u8_at};
use crate::mac::MacHasher;

/// Addresses in the 8-byte ICMP header itself (the gateway of an ICMPv4
/// Redirect). They are header, so they are mapped whatever the payload
/// mode.
pub(crate) fn rewrite_header(pan: &mut CryptoPan, data: &mut [u8], t: &Transport) {
    if t.kind == TransportKind::Icmpv4 && u8_at(data, t.start) == Some(5) {
        map_v4(pan, data, t.start + 4);
    }
}

/// Whether an ICMP message of type `kind` holds addresses this crate maps
/// (a Redirect's gateway, a quoted packet, neighbor discovery): the types
/// [`rewrite_header`] and [`rewrite_body`] act on.
pub(crate) fn maps_addresses(t: TransportKind, kind: u8) -> bool {
    match t {
        TransportKind::Icmpv4 => matches!(kind, 3 | 4 | 5 | 11 | 12),
        TransportKind::Icmpv6 => matches!(kind, 1..=4 | 133..=137),
        TransportKind::Tcp | TransportKind::Udp => false,
    }
}

/// What an ICMP message carries past its 8-byte header and can be
/// understood: the quoted packet of an error, neighbor discovery addresses
/// and options. This is payload, rewritten only when payload is kept;
/// `end` is where the message ends.
pub(crate) fn rewrite_body(
    pan: &mut CryptoPan,
    mac: &MacHasher,
    data: &mut [u8],
    t: &Transport,
    end: usize,
) {
    let s = t.start;
    let Some(kind) = u8_at(data, s) else {
        return;
    };
    match (t.kind, kind) {
        (TransportKind::Icmpv4, 3 | 4 | 5 | 11 | 12) => rewrite_quote(pan, data, s + 8, end, true),
        (TransportKind::Icmpv6, 1..=4) => rewrite_quote(pan, data, s + 8, end, false),
        // Router Solicitation and Advertisement.
        (TransportKind::Icmpv6, 133) => nd_options(pan, mac, data, s + 8, end),
        (TransportKind::Icmpv6, 134) => nd_options(pan, mac, data, s + 16, end),
        // Neighbor Solicitation and Advertisement: the target.
        (TransportKind::Icmpv6, 135 | 136) => {
            map_v6(pan, data, s + 8);
            nd_options(pan, mac, data, s + 24, end);
        }
        // Redirect: the target and the destination.
        (TransportKind::Icmpv6, 137) => {
            map_v6(pan, data, s + 8);
            map_v6(pan, data, s + 24);
            nd_options(pan, mac, data, s + 40, end);
        }
        _ => {}
    }
}

/// Rewrites the IP header an ICMP error quotes at `at`, as the outer one
/// (addresses, options, extension headers, IPv4 header checksum), and
/// sets the quoted transport checksum. A quote that is not an IP header
/// of the expected version is hidden, and so is what follows the quoted
/// headers when the outer packet's would be ([`Ip::hide_rest`]), or when
/// it is an ICMP message holding addresses, which quotes are not searched
/// for (from its checksum on, which covers them).
///
/// The quoted transport checksum is computed afresh when the whole quoted
/// packet lies in the message and was captured, and zeroed otherwise (the
/// usual case: errors quote only the start of a packet), as the outer one
/// is; a quoted ICMPv4 checksum, which covers nothing this crate rewrites,
/// is left as it is.
///
/// [`Ip::hide_rest`]: crate::Ip::hide_rest
fn rewrite_quote(pan: &mut CryptoPan, data: &mut [u8], at: usize, end: usize, v4: bool) {
    let parsed = if v4 {
        parse_ipv4(data, at, None)
    } else {
        parse_ipv6(data, at, None)
    };
    // Hiding stops where the message does: the bytes past it (Ethernet
    // padding) are not covered by its checksum, and are no part of the
    // quote.
    let Some(ip) = parsed else {
        return zero(data, at, end);
    };
    if v4 {
        rewrite_ipv4(pan, data, &ip);
    } else {
        rewrite_ipv6(pan, data, &ip);
    }
    if ip.hide_rest {
        return zero(data, ip.header_end, end);
    }
    let Some(t) = ip.transport else { return };
    if u8_at(data, t.start).is_some_and(|kind| maps_addresses(t.kind, kind)) {
        return zero(data, t.start + 2, end);
    }
    if t.kind == TransportKind::Icmpv4 {
        return;
    }
    let sum = ip
        .packet_end
        .filter(|&quoted_end| quoted_end <= end)
        .and_then(|quoted_end| transport_sum(data, &ip, &t, v4, quoted_end));
    store(
        data,
        t.start + t.kind.checksum_offset(),
        sum,
        zero_kind(t.kind),
    );
}

/// Neighbor discovery options from `at` to `end` (RFC 4861 section 4.6):
/// link-layer addresses by the MAC mode, prefixes and DNS servers (RFC
/// 8106) by Crypto-PAn (at most [`MAX_ADDRESSES_PER_WALK`], the others
/// hidden), and the data of any other option but the MTU hidden (a
/// Redirected Header quotes a packet). Each option is at least 8 bytes,
/// which bounds the walk.
fn nd_options(pan: &mut CryptoPan, mac: &MacHasher, data: &mut [u8], mut at: usize, end: usize) {
    let end = end.min(data.len());
    let mut budget = MAX_ADDRESSES_PER_WALK;
    while at + 2 <= end {
        let (Some(kind), Some(units)) = (u8_at(data, at), u8_at(data, at + 1)) else {
            break;
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            zero(data, at + 2, end);
            break;
        }
        let next = at + len;
        match kind {
            1 | 2 if len == 8 => mac.rewrite(data, at + 2),
            3 if len == 32 && budget > 0 => {
                budget -= 1;
                map_prefix(pan, data, at + 16, u8_at(data, at + 2));
            }
            5 => {}
            25 => {
                let mut a = at + 8;
                while a + 16 <= next && budget > 0 {
                    budget -= 1;
                    map_v6(pan, data, a);
                    a += 16;
                }
                zero(data, a, next);
            }
            _ => zero(data, at + 2, next),
        }
        at = next;
    }
}

/// Maps the IPv6 prefix of `len` bits at `data[at..at + 16]` to the
/// prefix of its image (bits past `len` zero).
fn map_prefix(pan: &mut CryptoPan, data: &mut [u8], at: usize, len: Option<u8>) {
    let Some(n) = data.len().checked_sub(at).map(|n| n.min(16)) else {
        return;
    };
    let mut b = [0u8; 16];
    b[..n].copy_from_slice(&data[at..at + n]);
    let bits = len.unwrap_or(0).min(128).min(8 * n as u8);
    let image = pan.anonymize_prefix_v6(u128::from_be_bytes(b), bits);
    crate::checksum::replace(data, at, &image.to_be_bytes()[..n]);
}
