//! What a packet byte is to an anonymized client, given what a path
//! through the filter has established about the packet.
//!
//! The anonymizer (`pktd_anon`) maps addresses, rewrites checksums, and
//! zeroes what it cannot parse. The filter runs on the real packet in the
//! kernel, so it may read only what the client sees unchanged, or an
//! address word whose comparison constant the daemon maps back. This
//! module says which of the two a load is, for every layout the facts
//! still allow, or why it is neither.

use super::{Fact, Family, Place, Word};

/// Where the network header may start: Ethernet, one tag, two tags (a
/// third tag makes the frame one the anonymizer hides past 22 bytes).
const L3_OFFSETS: [u32; 3] = [14, 18, 22];
const TPIDS: [u32; 3] = [0x8100, 0x88a8, 0x9100];

/// ICMP types whose body (past the first 8 bytes) the anonymizer leaves
/// alone: echo, timestamp, information, address mask.
const PLAIN_ICMP: [u32; 8] = [0, 8, 13, 14, 15, 16, 17, 18];
/// ICMPv6 types whose body it leaves alone: echo request and reply.
const PLAIN_ICMPV6: [u32; 2] = [128, 129];

/// One frame shape: the network protocol and where its header starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shape {
    Ipv4(u32),
    Ipv6(u32),
    Arp(u32),
    /// Anything else: hidden past this offset.
    Hidden(u32),
}

/// What a load reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reads {
    /// Bytes the client sees as they are.
    Plain,
    /// One 4-byte word of an address (the load is that word exactly).
    Address(Word),
}

/// The frame shapes consistent with `facts`.
fn shapes(facts: &[Fact]) -> Vec<Shape> {
    let values = |offset: u32| possible(facts, Place::Abs(offset), 2, 0xffff);
    // Whether the field at `offset` may hold a value `test` accepts.
    let may = |offset: u32, test: &dyn Fn(u32) -> bool| {
        values(offset).is_none_or(|values| values.into_iter().any(test))
    };
    let is_tpid = |value: u32| TPIDS.contains(&value);
    let mut out = Vec::new();
    for (tags, &l3) in L3_OFFSETS.iter().enumerate() {
        // Tag fields before this EtherType must be TPIDs.
        if !(0..tags).all(|tag| may(12 + 4 * tag as u32, &is_tpid)) {
            continue;
        }
        let ethertype = l3 - 2;
        for (shape, types) in [
            (Shape::Ipv4(l3), &[0x0800][..]),
            (Shape::Ipv6(l3), &[0x86dd][..]),
            (Shape::Arp(l3), &[0x0806, 0x8035][..]),
        ] {
            if may(ethertype, &|value| types.contains(&value)) {
                out.push(shape);
            }
        }
        let other =
            |value: u32| ![0x0800, 0x86dd, 0x0806, 0x8035].contains(&value) && !is_tpid(value);
        if may(ethertype, &other) {
            out.push(Shape::Hidden(l3));
        }
        if tags == 2 && may(ethertype, &is_tpid) {
            // A third tag: the anonymizer hides what follows.
            out.push(Shape::Hidden(22));
        }
    }
    out
}

/// The values the facts allow the field (`place`, `size`) under `mask`;
/// `None` when they do not tell.
pub(super) fn possible(facts: &[Fact], place: Place, size: u32, mask: u32) -> Option<Vec<u32>> {
    facts
        .iter()
        .find(|fact| fact.place == place && fact.size == size && fact.mask & mask == mask)
        .map(|fact| fact.values.iter().map(|value| value & mask).collect())
}

/// The one value the facts give the field, if they give one.
pub(super) fn known(facts: &[Fact], place: Place, size: u32, mask: u32) -> Option<u32> {
    match possible(facts, place, size, mask)?.as_slice() {
        [value] => Some(*value),
        _ => None,
    }
}

/// What the load of `size` bytes at `offset` reads (`transport`: the load
/// is relative to the IPv4 transport header whose IP header starts at
/// that offset, through `X = 4 * IHL`), or why it may not.
pub(super) fn classify(
    facts: &[Fact],
    offset: u32,
    size: u32,
    transport: Option<u32>,
    macs_visible: bool,
) -> Result<Reads, String> {
    let shapes = shapes(facts);
    let mut answer: Option<Reads> = None;
    for shape in &shapes {
        let reads = match transport {
            None => in_shape(facts, *shape, offset, size, macs_visible)?,
            Some(ip) => match *shape {
                Shape::Ipv4(l3) if l3 == ip => {
                    let relative = offset
                        .checked_sub(l3)
                        .ok_or_else(|| format!("x + {offset} reads before the transport header"))?;
                    ipv4_transport(facts, l3, relative, size)?
                }
                _ => {
                    return Err(format!(
                        "x + {offset} reads relative to an IPv4 header length at {ip} that \
                         the filter has not shown to be IPv4"
                    ));
                }
            },
        };
        match answer {
            None => answer = Some(reads),
            Some(seen) if seen == reads => {}
            Some(_) => {
                return Err(format!(
                    "bytes {offset}..{} are an address in some frames and not in others",
                    offset + size
                ));
            }
        }
    }
    answer.ok_or_else(|| "no frame reaches this load".to_owned())
}

/// `size` bytes at `offset` of a frame of `shape`.
fn in_shape(
    facts: &[Fact],
    shape: Shape,
    offset: u32,
    size: u32,
    macs_visible: bool,
) -> Result<Reads, String> {
    let end = offset.saturating_add(size);
    let span = || format!("bytes {offset}..{end}");
    if offset < 12 {
        return if macs_visible && end <= 12 {
            Ok(Reads::Plain)
        } else {
            Err(format!(
                "{} are MAC addresses, which this principal sees hidden",
                span()
            ))
        };
    }
    let l3 = match shape {
        Shape::Ipv4(l3) | Shape::Ipv6(l3) | Shape::Arp(l3) | Shape::Hidden(l3) => l3,
    };
    if end <= l3 {
        // EtherTypes and VLAN tags.
        return Ok(Reads::Plain);
    }
    if offset < l3 {
        return Err(format!("{} straddle the link and network headers", span()));
    }
    let at = offset - l3;
    match shape {
        Shape::Hidden(_) => Err(format!(
            "{} are past the link header of a frame the anonymizer does not parse, which \
             this principal sees zeroed",
            span()
        )),
        Shape::Arp(l3) => arp(l3, at, size).ok_or_else(|| {
            format!(
                "{} of an ARP message are part of an address, or a MAC address",
                span()
            )
        }),
        Shape::Ipv4(l3) => ipv4(l3, at, size).ok_or_else(|| {
            format!(
                "{} of an IPv4 packet are part of an address, its checksum, or past its fixed \
                 header at a constant offset (options are rewritten: read the transport \
                 header through the header length, as tcp[…] and udp[…] do)",
                span()
            )
        }),
        Shape::Ipv6(l3) => ipv6(facts, l3, at, size).map_err(|why| format!("{}: {why}", span())),
    }
}

/// An address word: the address starts at `start` (absolute).
fn word(family: Family, start: u32, index: u32) -> Reads {
    Reads::Address(Word {
        family,
        start,
        index,
    })
}

/// The fixed IPv4 header at `l3`: visible fields, or an address word
/// exactly.
fn ipv4(l3: u32, at: u32, size: u32) -> Option<Reads> {
    if at + size <= 10 {
        return Some(Reads::Plain);
    }
    (size == 4 && (at == 12 || at == 16)).then(|| word(Family::V4, l3 + at, 0))
}

/// An ARP message at `l3`: Ethernet/IPv4 (the guard in front of the
/// client's program lets no other kind through).
fn arp(l3: u32, at: u32, size: u32) -> Option<Reads> {
    if at + size <= 8 || at >= 28 {
        return Some(Reads::Plain);
    }
    (size == 4 && (at == 14 || at == 24)).then(|| word(Family::V4, l3 + at, 0))
}

fn ipv6(facts: &[Fact], l3: u32, at: u32, size: u32) -> Result<Reads, String> {
    let end = at + size;
    if end <= 8 {
        return Ok(Reads::Plain);
    }
    if at < 40 {
        if at >= 8 && size == 4 && at.is_multiple_of(4) {
            let (start, index) = if at < 24 {
                (8, (at - 8) / 4)
            } else {
                (24, (at - 24) / 4)
            };
            return Ok(word(Family::V6, l3 + start, index));
        }
        return Err("parts of addresses are compared only as whole aligned words".to_owned());
    }
    let Some(next) = possible(facts, Place::Abs(l3 + 6), 1, 0xff) else {
        return Err("past the IPv6 header, with the next header not tested".to_owned());
    };
    each_protocol(&next, |protocol| {
        transport(
            facts,
            Family::V6,
            protocol,
            Place::Abs(l3 + 40),
            at - 40,
            size,
        )
    })
}

/// A transport header at `l4` of protocol `protocol`, `at` bytes into
/// it.
fn transport(
    facts: &[Fact],
    family: Family,
    protocol: u32,
    l4: Place,
    at: u32,
    size: u32,
) -> Result<Reads, String> {
    let end = at + size;
    let clear_of = |from: u32, to: u32| end <= from || at >= to;
    let icmp = match family {
        Family::V4 => 1,
        Family::V6 => 58,
    };
    match protocol {
        6 if clear_of(16, 18) => Ok(Reads::Plain),
        17 if clear_of(6, 8) => Ok(Reads::Plain),
        6 | 17 => Err("its checksum, which covers the real addresses".to_owned()),
        _ if protocol == icmp => {
            if !clear_of(2, 4) {
                return Err("its checksum, which covers the real addresses".to_owned());
            }
            if end <= 4 {
                return Ok(Reads::Plain);
            }
            let plain = match family {
                Family::V4 => &PLAIN_ICMP[..],
                Family::V6 => &PLAIN_ICMPV6[..],
            };
            match known(facts, l4, 1, 0xff) {
                Some(kind) if plain.contains(&kind) => Ok(Reads::Plain),
                _ => Err(
                    "ICMP bytes past the checksum of a type that may carry addresses (test \
                     the type first: echo and timestamps are readable)"
                        .to_owned(),
                ),
            }
        }
        // The first extension header's next-header and length bytes, and
        // a fragment header whole, are as they were (libpcap's `udp` reads
        // the next header behind a fragment header); what an extension
        // header carries past them may be an address.
        0 | 43 | 51 | 60 | 135 | 139 | 140 if family == Family::V6 && end <= 2 => Ok(Reads::Plain),
        44 if family == Family::V6 && end <= 8 => Ok(Reads::Plain),
        _ => match u8::try_from(protocol) {
            Ok(protocol) if pktd_anon::passes_through(protocol) => Ok(Reads::Plain),
            _ => Err(format!(
                "protocol {protocol}, which the anonymizer rewrites or hides (an extension \
                 header, a tunnel, a checksum over the addresses)"
            )),
        },
    }
}

/// `size` bytes `at` bytes into the transport header of the IPv4 packet
/// at `l3`: the protocol and a first fragment must be established.
fn ipv4_transport(facts: &[Fact], l3: u32, at: u32, size: u32) -> Result<Reads, String> {
    let Some(protocols) = possible(facts, Place::Abs(l3 + 9), 1, 0xff) else {
        return Err("reads the transport header with its protocol not tested".to_owned());
    };
    let first_fragment = known(facts, Place::Abs(l3 + 6), 2, 0x1fff) == Some(0);
    if !first_fragment {
        return Err("reads the transport header without testing for a first fragment".to_owned());
    }
    each_protocol(&protocols, |protocol| {
        transport(
            facts,
            Family::V4,
            protocol,
            Place::Transport { l3, at: 0 },
            at,
            size,
        )
    })
}

/// The load is what it is for each protocol a path may have (as after
/// `ip6[6] = 6 or ip6[6] = 17`), when that is the same for all.
fn each_protocol(
    protocols: &[u32],
    reads: impl Fn(u32) -> Result<Reads, String>,
) -> Result<Reads, String> {
    let mut answer = None;
    for &protocol in protocols {
        let this = reads(protocol)?;
        if answer.is_some_and(|seen| seen != this) {
            return Err("reads different things for different protocols".to_owned());
        }
        answer = Some(this);
    }
    answer.ok_or_else(|| "no protocol reaches this load".to_owned())
}
