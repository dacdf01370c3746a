//! ICMP and ICMPv6 messages that carry addresses: the gateway of an ICMPv4
//! Redirect, the packet an error quotes, neighbor discovery targets and
//! options.

use crate::checksum::{Sum, Zero, update, zero};
use crate::cryptopan::CryptoPan;
use crate::ip::{
    MAX_ADDRESSES_PER_WALK, map_v4, map_v6, pseudo_addresses, rewrite_ipv4, rewrite_ipv6,
};
use crate::layout::{Transport, TransportKind, parse_ipv4, parse_ipv6, u8_at};
use crate::mac::MacHasher;

/// Addresses in the 8-byte ICMP header itself (the gateway of an ICMPv4
/// Redirect). They are header, so they are mapped whatever the payload
/// mode.
pub(crate) fn rewrite_header(pan: &mut CryptoPan, data: &mut [u8], t: &Transport) -> Sum {
    if t.kind == TransportKind::Icmpv4 && u8_at(data, t.start) == Some(5) {
        map_v4(pan, data, t.start + 4)
    } else {
        Sum::default()
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
) -> Sum {
    let s = t.start;
    let Some(kind) = u8_at(data, s) else {
        return Sum::default();
    };
    match (t.kind, kind) {
        (TransportKind::Icmpv4, 3 | 4 | 5 | 11 | 12) => rewrite_quote(pan, data, s + 8, true),
        (TransportKind::Icmpv6, 1..=4) => rewrite_quote(pan, data, s + 8, false),
        // Router Solicitation and Advertisement.
        (TransportKind::Icmpv6, 133) => nd_options(pan, mac, data, s + 8, end),
        (TransportKind::Icmpv6, 134) => nd_options(pan, mac, data, s + 16, end),
        // Neighbor Solicitation and Advertisement: the target.
        (TransportKind::Icmpv6, 135 | 136) => {
            map_v6(pan, data, s + 8) + nd_options(pan, mac, data, s + 24, end)
        }
        // Redirect: the target and the destination.
        (TransportKind::Icmpv6, 137) => {
            let d = map_v6(pan, data, s + 8) + map_v6(pan, data, s + 24);
            d + nd_options(pan, mac, data, s + 40, end)
        }
        _ => Sum::default(),
    }
}

/// Rewrites the IP header an ICMP error quotes at `at`, as the outer one
/// (addresses, options, extension headers, IPv4 header checksum), and the
/// quoted transport checksum if captured. A quote that is not an IP header
/// of the expected version is hidden.
fn rewrite_quote(pan: &mut CryptoPan, data: &mut [u8], at: usize, v4: bool) -> Sum {
    let parsed = if v4 {
        parse_ipv4(data, at, None)
    } else {
        parse_ipv6(data, at, None)
    };
    let Some(ip) = parsed else {
        return zero(data, at, data.len());
    };
    let old = pseudo_addresses(data, &ip, v4);
    let mut d = if v4 {
        rewrite_ipv4(pan, data, &ip)
    } else {
        rewrite_ipv6(pan, data, &ip)
    };
    if let (Some(old), Some(new), Some(t)) = (old, pseudo_addresses(data, &ip, v4), ip.transport) {
        let pseudo = new + old.negate();
        let at = t.start + t.kind.checksum_offset();
        d += match t.kind {
            TransportKind::Udp => update(data, at, pseudo, Zero::Udp),
            TransportKind::Tcp | TransportKind::Icmpv6 => update(data, at, pseudo, Zero::Plain),
            TransportKind::Icmpv4 => Sum::default(),
        };
    }
    if ip.tunnel {
        d += zero(data, ip.header_end, data.len());
    }
    d
}

/// Neighbor discovery options from `at` to `end` (RFC 4861 section 4.6):
/// link-layer addresses by the MAC mode, prefixes and DNS servers (RFC
/// 8106) by Crypto-PAn (at most [`MAX_ADDRESSES_PER_WALK`], the others
/// hidden), and the data of any other option but the MTU hidden (a
/// Redirected Header quotes a packet). Each option is at least 8 bytes,
/// which bounds the walk.
fn nd_options(
    pan: &mut CryptoPan,
    mac: &MacHasher,
    data: &mut [u8],
    mut at: usize,
    end: usize,
) -> Sum {
    let end = end.min(data.len());
    let mut d = Sum::default();
    let mut budget = MAX_ADDRESSES_PER_WALK;
    while at + 2 <= end {
        let (Some(kind), Some(units)) = (u8_at(data, at), u8_at(data, at + 1)) else {
            break;
        };
        let len = usize::from(units) * 8;
        if len == 0 {
            d += zero(data, at + 2, end);
            break;
        }
        let next = at + len;
        d += match kind {
            1 | 2 if len == 8 => mac.rewrite(data, at + 2),
            3 if len == 32 && budget > 0 => {
                budget -= 1;
                map_prefix(pan, data, at + 16, u8_at(data, at + 2))
            }
            5 => Sum::default(),
            25 => {
                let mut s = Sum::default();
                let mut a = at + 8;
                while a + 16 <= next && budget > 0 {
                    budget -= 1;
                    s += map_v6(pan, data, a);
                    a += 16;
                }
                s + zero(data, a, next)
            }
            _ => zero(data, at + 2, next),
        };
        at = next;
    }
    d
}

/// Maps the IPv6 prefix of `len` bits at `data[at..at + 16]` to the
/// prefix of its image (bits past `len` zero).
fn map_prefix(pan: &mut CryptoPan, data: &mut [u8], at: usize, len: Option<u8>) -> Sum {
    let Some(n) = data.len().checked_sub(at).map(|n| n.min(16)) else {
        return Sum::default();
    };
    let mut b = [0u8; 16];
    b[..n].copy_from_slice(&data[at..at + n]);
    let bits = len.unwrap_or(0).min(128).min(8 * n as u8);
    let image = pan.anonymize_prefix_v6(u128::from_be_bytes(b), bits);
    crate::checksum::replace(data, at, &image.to_be_bytes()[..n])
}
