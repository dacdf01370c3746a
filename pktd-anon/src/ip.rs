//! Rewriting the addresses of IPv4, IPv6 and ARP headers in place, and
//! the sums the checksums over them are computed from.

use crate::checksum::{Sum, Zero, region_sum, replace, store, zero};
use crate::cryptopan::CryptoPan;
use crate::layout::{Arp, Ext, Ip, Transport, TransportKind, u8_at};
use crate::mac::MacHasher;

/// IPv6 addresses mapped per routing header, options header or neighbor
/// discovery walk; any further ones are zeroed. Each uncached mapping
/// costs 128 AES blocks, and a crafted 2 KiB header could otherwise ask
/// for 127 of them, eight times over.
pub(crate) const MAX_ADDRESSES_PER_WALK: usize = 16;

/// Maps the IPv4 address at `data[at..at + 4]`; a cut address becomes the
/// prefix of its image.
pub(crate) fn map_v4(pan: &mut CryptoPan, data: &mut [u8], at: usize) {
    let Some(n) = data.len().checked_sub(at).map(|n| n.min(4)) else {
        return;
    };
    if n == 0 {
        return;
    }
    let mut b = [0u8; 4];
    b[..n].copy_from_slice(&data[at..at + n]);
    let addr = u32::from_be_bytes(b);
    let image = if n == 4 {
        pan.anonymize_v4(addr)
    } else {
        pan.anonymize_prefix_v4(addr, 8 * n as u8)
    };
    replace(data, at, &image.to_be_bytes()[..n]);
}

/// Maps the IPv6 address at `data[at..at + 16]`; a cut address becomes the
/// prefix of its image.
pub(crate) fn map_v6(pan: &mut CryptoPan, data: &mut [u8], at: usize) {
    let Some(n) = data.len().checked_sub(at).map(|n| n.min(16)) else {
        return;
    };
    if n == 0 {
        return;
    }
    let mut b = [0u8; 16];
    b[..n].copy_from_slice(&data[at..at + n]);
    let addr = u128::from_be_bytes(b);
    let image = if n == 16 {
        pan.anonymize_v6(addr)
    } else {
        pan.anonymize_prefix_v6(addr, 8 * n as u8)
    };
    replace(data, at, &image.to_be_bytes()[..n]);
}

/// Rewrites an IPv4 header's addresses and options, and computes its
/// checksum afresh over the rewritten header, so that it is right even if
/// the captured one was not. A header cut short has its checksum zeroed
/// instead: it covers uncaptured bytes (route addresses, option data that
/// is hidden) whose images are not known.
pub(crate) fn rewrite_ipv4(pan: &mut CryptoPan, data: &mut [u8], ip: &Ip) {
    let s = ip.start;
    map_v4(pan, data, s + 12);
    map_v4(pan, data, s + 16);
    rewrite_v4_options(pan, data, s + 20, s + ip.header_len);
    let sum = region_sum(data, s, s + ip.header_len, s + 10);
    store(data, s + 10, sum, Zero::Plain);
}

/// Maps the routes of Record Route and source route options and hides the
/// data of every other option but EOL and NOP. A malformed option hides
/// the rest of the options.
fn rewrite_v4_options(pan: &mut CryptoPan, data: &mut [u8], start: usize, end: usize) {
    let mut at = start;
    // Each turn moves on by at least one byte: at most 40 turns.
    while at < end {
        let Some(kind) = u8_at(data, at) else { break };
        match kind {
            0 => {
                // End of list: what follows is padding, which should be
                // zero and is made so.
                zero(data, at + 1, end);
                break;
            }
            1 => {
                at += 1;
                continue;
            }
            _ => {}
        }
        let len = u8_at(data, at + 1).map(usize::from);
        let Some(len) = len.filter(|&l| l >= 2 && at + l <= end) else {
            zero(data, at + 2, end);
            break;
        };
        if matches!(kind, 7 | 131 | 137) {
            let mut a = at + 3;
            while a + 4 <= at + len {
                map_v4(pan, data, a);
                a += 4;
            }
            zero(data, a, at + len);
        } else {
            zero(data, at + 2, at + len);
        }
        at += len;
    }
}

/// Rewrites an IPv6 header's addresses and those of its extension headers.
pub(crate) fn rewrite_ipv6(pan: &mut CryptoPan, data: &mut [u8], ip: &Ip) {
    map_v6(pan, data, ip.start + 8);
    map_v6(pan, data, ip.start + 24);
    for ext in ip.ext.as_slice() {
        match ext.kind {
            0 | 60 => rewrite_v6_options(pan, data, ext),
            43 => rewrite_routing(pan, data, ext),
            // Mobility, HIP and Shim6 messages carry care-of addresses,
            // host identities and locators this crate does not parse:
            // keep the chain (next header, length), hide the rest.
            135 | 139 | 140 => zero(data, ext.start + 2, ext.start + ext.len),
            // Fragment and AH headers hold no addresses.
            _ => {}
        }
    }
}

/// Hop-by-Hop and Destination options: maps the Home Address option and
/// hides the data of every other option but Pad1 and PadN.
fn rewrite_v6_options(pan: &mut CryptoPan, data: &mut [u8], ext: &Ext) {
    let end = ext.start + ext.len;
    let mut at = ext.start + 2;
    let mut mapped = 0;
    while at < end {
        let Some(kind) = u8_at(data, at) else { break };
        if kind == 0 {
            at += 1;
            continue;
        }
        let Some(len) = u8_at(data, at + 1).map(usize::from) else {
            break;
        };
        let next = at + 2 + len;
        if next > end {
            zero(data, at + 2, end);
            break;
        }
        match (kind, len) {
            (1, _) => {}
            (0xc9, 16) if mapped < MAX_ADDRESSES_PER_WALK => {
                mapped += 1;
                map_v6(pan, data, at + 2);
            }
            _ => zero(data, at + 2, next),
        }
        at = next;
    }
}

/// Routing headers of types 0, 2 and 4 (segment routing) list addresses
/// after an 8-byte header: they are mapped (the first
/// [`MAX_ADDRESSES_PER_WALK`]), and what follows them (SRH TLVs, further
/// addresses) hidden. Other types are hidden past their first 8 bytes.
fn rewrite_routing(pan: &mut CryptoPan, data: &mut [u8], ext: &Ext) {
    let end = ext.start + ext.len;
    let body = ext.start + 8;
    let Some(kind) = u8_at(data, ext.start + 2) else {
        return;
    };
    if !matches!(kind, 0 | 2 | 4) {
        return zero(data, body, end);
    }
    let mut count = (ext.len.saturating_sub(8) / 16).min(MAX_ADDRESSES_PER_WALK);
    if kind == 4
        && let Some(last) = u8_at(data, ext.start + 4)
    {
        count = count.min(usize::from(last) + 1);
    }
    for i in 0..count {
        map_v6(pan, data, body + 16 * i);
    }
    zero(data, body + 16 * count, end);
}

/// The sum of `n` bytes at `at` as they sit in a pseudo-header (aligned),
/// or `None` if they were not all captured.
fn aligned_sum(data: &[u8], at: usize, n: usize) -> Option<Sum> {
    Some(Sum::of(data.get(at..at.checked_add(n)?)?, 0))
}

/// The sum of the addresses in a transport pseudo-header: the source and
/// the final destination, which source routing puts last in its route
/// (RFC 791, RFC 8200 section 8.1), found the way tcpdump finds it.
/// `None` if they were not captured.
pub(crate) fn pseudo_addresses(data: &[u8], ip: &Ip, v4: bool) -> Option<Sum> {
    let (src, dst, n) = if v4 {
        (ip.start + 12, final_dst_v4(data, ip), 4)
    } else {
        (ip.start + 8, final_dst_v6(data, ip), 16)
    };
    Some(aligned_sum(data, src, n)? + aligned_sum(data, dst, n)?)
}

/// The sum a transport checksum covers, the field excluded: the
/// pseudo-header (but for ICMPv4), with the length from the IP header,
/// and the segment's captured bytes up to `through`, those after it up to
/// the end of the packet counting as zeros (a zeroed payload). `None` if
/// that sum cannot be known: the segment's end is unknown, or comes
/// before `through` or before the end of its header, or the bytes up to
/// `through` or the pseudo-header addresses were not all captured.
pub(crate) fn transport_sum(
    data: &[u8],
    ip: &Ip,
    t: &Transport,
    v4: bool,
    through: usize,
) -> Option<Sum> {
    let end = ip.packet_end?;
    let len = end.checked_sub(t.start)?;
    if len < t.header_len || through > end {
        return None;
    }
    let mut sum = region_sum(data, t.start, through, t.start + t.kind.checksum_offset())?;
    if t.kind == TransportKind::Icmpv4 {
        return Some(sum);
    }
    sum += pseudo_addresses(data, ip, v4)?;
    sum += Sum::word(u16::from(t.kind.protocol()));
    if v4 {
        sum += Sum::word(u16::try_from(len).ok()?);
    } else {
        let len = u32::try_from(len).ok()?;
        sum += Sum::word((len >> 16) as u16) + Sum::word(len as u16);
    }
    Some(sum)
}

/// How `kind`'s checksum field treats zero.
pub(crate) fn zero_kind(kind: TransportKind) -> Zero {
    if kind == TransportKind::Udp {
        Zero::Udp
    } else {
        Zero::Plain
    }
}

fn final_dst_v4(data: &[u8], ip: &Ip) -> usize {
    let end = ip.start + ip.header_len;
    let mut at = ip.start + 20;
    while at < end {
        let len = match u8_at(data, at) {
            None | Some(0) => break,
            Some(1) => 1,
            Some(kind) => {
                let Some(len) = u8_at(data, at + 1).map(usize::from) else {
                    break;
                };
                if len < 2 || at + len > end {
                    break;
                }
                if matches!(kind, 131 | 137) && len >= 7 {
                    return at + len - 4;
                }
                len
            }
        };
        at += len;
    }
    ip.start + 16
}

fn final_dst_v6(data: &[u8], ip: &Ip) -> usize {
    for ext in ip.ext.as_slice() {
        match ext.kind {
            0 | 60 | 135 | 44 => continue,
            43 => {}
            _ => break,
        }
        let (Some(kind), Some(len)) = (u8_at(data, ext.start + 2), u8_at(data, ext.start + 1))
        else {
            break;
        };
        let n = usize::from(len / 2);
        match kind {
            0 | 2 if len % 2 == 0 && n > 0 => return ext.start + 8 + 16 * (n - 1),
            // Segment 0 is the final destination (RFC 8754); TLVs may make
            // the length odd.
            4 => return ext.start + 8,
            _ => break,
        }
    }
    ip.start + 24
}

/// ARP and RARP: Ethernet/IPv4 addresses are mapped; any other kind has
/// everything past its fixed 8-byte header hidden.
pub(crate) fn rewrite_arp(pan: &mut CryptoPan, mac: &MacHasher, data: &mut [u8], arp: &Arp) {
    let s = arp.start;
    if arp.ethernet_ipv4 {
        mac.rewrite(data, s + 8);
        map_v4(pan, data, s + 14);
        mac.rewrite(data, s + 18);
        map_v4(pan, data, s + 24);
    } else {
        zero(data, s + 8, data.len());
    }
}
