//! One line per packet, the way `tcpdump -n` prints Ethernet frames.
//!
//! [`format_packet`] imitates tcpdump 4.99's default output (no `-v`, no
//! `-e`) for the protocols pktcap users meet most: Ethernet with 802.1Q /
//! 802.1ad tags, ARP, IPv4, IPv6 (with hop-by-hop, destination-options and
//! fragment headers), TCP, UDP, ICMP and ICMPv6. The wording, the order of
//! fields and the `length` values follow tcpdump's printers, so a line from
//! pktcap can be read, grepped and diffed like one from tcpdump.
//!
//! Where tcpdump differs, by design:
//! - Names are never resolved (as with `-nn`): addresses and ports stay
//!   numeric.
//! - No application-layer dissectors: UDP always ends in `UDP, length N`
//!   and TCP after `length N`, where tcpdump would go on to decode DNS,
//!   HTTP, NTP and the like from well-known ports.
//! - The printer has no memory between packets, so TCP sequence numbers
//!   are always printed as tcpdump prints them for the first packet of a
//!   connection (absolute); tcpdump prints later packets relative to it.
//! - Undecoded payloads are not hex-dumped on the lines that follow.
//! - Protocols not listed above are summarised as tcpdump summarises an
//!   unknown protocol (`ip-proto-47 24`, `ethertype Unknown (0x88cc)`).
//!
//! Garbage and truncated frames never panic: like tcpdump, the line ends
//! in ` [|proto]` where the captured bytes ran out.

use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Formats one captured Ethernet frame as a tcpdump-style line, without a
/// trailing newline.
///
/// `timestamp_ns` is the capture time in nanoseconds since the Unix epoch
/// and is printed as `HH:MM:SS.uuuuuu` in the local time zone (the `TZ`
/// environment variable, else `/etc/localtime`, as tcpdump and the C
/// library do), truncated to microseconds as tcpdump does. `wire_len` is
/// the frame's length on the wire and `data` the bytes captured, which may
/// be fewer.
pub fn format_packet(timestamp_ns: u64, wire_len: u32, data: &[u8]) -> String {
    let mut out = String::with_capacity(128);
    push_time(&mut out, timestamp_ns);
    out.push(' ');
    // A wire length below the captured length is nonsense; trust the bytes.
    let wire_len = wire_len.max(u32::try_from(data.len()).unwrap_or(u32::MAX));
    if let Err(Trunc(proto)) = ether(&mut out, wire_len, data) {
        let _ = write!(out, " [|{proto}]");
    }
    // tcpdump ends some lines with a space before its hex dump; we print
    // no hex dump, so the space would only be noise.
    let kept = out.trim_end().len();
    out.truncate(kept);
    out
}

/// A timestamp as tcpdump prints it: local `HH:MM:SS.uuuuuu`.
pub fn format_time(timestamp_ns: u64) -> String {
    let mut out = String::new();
    push_time(&mut out, timestamp_ns);
    out
}

/// Appends the local wall-clock time of `timestamp_ns`.
fn push_time(out: &mut String, timestamp_ns: u64) {
    use chrono::{Local, TimeZone, Timelike};
    let secs = (timestamp_ns / 1_000_000_000) as i64;
    let micros = (timestamp_ns % 1_000_000_000) / 1_000;
    // chrono reads TZ and the system's zone database like localtime(3);
    // a time it cannot place (none for whole seconds since the epoch, but
    // be safe) falls back to UTC rather than failing the line.
    let (h, m, s) = match Local.timestamp_opt(secs, 0).earliest() {
        Some(t) => (t.hour(), t.minute(), t.second()),
        None => {
            let day = secs.rem_euclid(86_400) as u32;
            (day / 3600, day / 60 % 60, day % 60)
        }
    };
    let _ = write!(out, "{h:02}:{m:02}:{s:02}.{micros:06}");
}

/// The captured bytes ran out inside the named protocol's header.
struct Trunc(&'static str);

type Res = Result<(), Trunc>;

fn u8_at(d: &[u8], off: usize, proto: &'static str) -> Result<u8, Trunc> {
    d.get(off).copied().ok_or(Trunc(proto))
}

fn be16(d: &[u8], off: usize, proto: &'static str) -> Result<u16, Trunc> {
    match d.get(off..off + 2) {
        Some(b) => Ok(u16::from_be_bytes([b[0], b[1]])),
        None => Err(Trunc(proto)),
    }
}

fn be32(d: &[u8], off: usize, proto: &'static str) -> Result<u32, Trunc> {
    match d.get(off..off + 4) {
        Some(b) => Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        None => Err(Trunc(proto)),
    }
}

fn ip4_at(d: &[u8], off: usize, proto: &'static str) -> Result<Ipv4Addr, Trunc> {
    match d.get(off..off + 4) {
        Some(b) => Ok(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        None => Err(Trunc(proto)),
    }
}

fn ip6_at(d: &[u8], off: usize, proto: &'static str) -> Result<Ipv6Addr, Trunc> {
    match d
        .get(off..off + 16)
        .and_then(|b| <[u8; 16]>::try_from(b).ok())
    {
        Some(b) => Ok(Ipv6Addr::from(b)),
        None => Err(Trunc(proto)),
    }
}

/// `aa:bb:cc:...` as tcpdump prints link-layer addresses.
fn push_mac(out: &mut String, mac: &[u8]) {
    for (i, b) in mac.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        let _ = write!(out, "{b:02x}");
    }
}

const ETHERTYPE_IP: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Names tcpdump gives ethertypes in its "ethertype NAME (0x....)" line.
fn ethertype_name(et: u16) -> &'static str {
    match et {
        0x0800 => "IPv4",
        0x0806 => "ARP",
        0x8035 => "Reverse ARP",
        0x86dd => "IPv6",
        0x8100 => "802.1Q",
        0x88a8 => "802.1Q-QinQ",
        0x9100 => "802.1Q-9100",
        0x8847 => "MPLS unicast",
        0x8848 => "MPLS multicast",
        0x8863 => "PPPoE D",
        0x8864 => "PPPoE S",
        0x888e => "EAPOL",
        0x88cc => "LLDP",
        0x88f7 => "PTP",
        0x8809 => "Slow Protocols",
        0x88e5 => "MACsec",
        0x8902 => "CFM",
        0x9000 => "Loopback",
        _ => "Unknown",
    }
}

fn ether(out: &mut String, wire_len: u32, data: &[u8]) -> Res {
    if data.len() < 14 {
        return Err(Trunc("ether"));
    }
    let mut length = wire_len - 14;
    let mut et = be16(data, 12, "ether")?;
    let mut p = &data[14..];
    // Without -e tcpdump says nothing about VLAN tags and prints what they
    // carry; each tag takes 4 bytes from what the next layer sees.
    while matches!(et, 0x8100 | 0x88a8 | 0x9100) {
        et = be16(p, 2, "vlan")?;
        p = &p[4..];
        length = length.saturating_sub(4);
    }
    if et <= 1500 {
        // IEEE 802.3 with an LLC header: tcpdump decodes a zoo of protocols
        // here (STP, CDP, IPX...); we give the LLC addresses only.
        let dsap = u8_at(p, 0, "llc")?;
        let ssap = u8_at(p, 1, "llc")?;
        let _ = write!(
            out,
            "802.3, length {et}: LLC, dsap 0x{dsap:02x}, ssap 0x{ssap:02x}"
        );
        return Ok(());
    }
    match et {
        ETHERTYPE_IP => ip4(out, p, length),
        ETHERTYPE_IPV6 => ip6(out, p, length),
        ETHERTYPE_ARP => arp(out, p, length),
        _ => {
            push_mac(out, &data[6..12]);
            out.push_str(" > ");
            push_mac(out, &data[0..6]);
            let _ = write!(
                out,
                ", ethertype {} (0x{et:04x}), length {wire_len}:",
                ethertype_name(et)
            );
            Ok(())
        }
    }
}

fn arp(out: &mut String, p: &[u8], length: u32) -> Res {
    if p.len() < 8 {
        return Err(Trunc("arp"));
    }
    let hrd = be16(p, 0, "arp")?;
    let pro = be16(p, 2, "arp")?;
    let hln = usize::from(p[4]);
    let pln = usize::from(p[5]);
    let op = be16(p, 6, "arp")?;
    let sha = 8;
    let spa = sha + hln;
    let tha = spa + pln;
    let tpa = tha + hln;
    if p.len() < tpa + pln {
        return Err(Trunc("arp"));
    }
    out.push_str("ARP, ");
    let ip_like = pro == ETHERTYPE_IP || pro == 0x1000; // 0x1000: trailer encapsulation
    if !ip_like || pln != 4 || hln == 0 {
        let hrd_name = match hrd {
            1 => "Ethernet".to_string(),
            6 => "TokenRing".to_string(),
            7 => "ArcNet".to_string(),
            15 => "FrameRelay".to_string(),
            19 => "ATM".to_string(),
            23 => "Strip".to_string(),
            24 => "IEEE 1394".to_string(),
            32 => "InfiniBand".to_string(),
            _ => format!("Unknown Hardware ({hrd})"),
        };
        let pro_name = match ethertype_name(pro) {
            "Unknown" => format!("Unknown Protocol (0x{pro:04x})"),
            name => name.to_string(),
        };
        let _ = write!(
            out,
            "{hrd_name} (len {hln}), {pro_name} (len {pln}), length {length}"
        );
        return Ok(());
    }
    let addr = |off: usize| Ipv4Addr::new(p[off], p[off + 1], p[off + 2], p[off + 3]);
    match op {
        1 => {
            let _ = write!(out, "Request who-has {}", addr(tpa));
            if p[tha..tha + hln].iter().any(|&b| b != 0) {
                out.push_str(" (");
                push_mac(out, &p[tha..tha + hln]);
                out.push(')');
            }
            let _ = write!(out, " tell {}", addr(spa));
        }
        2 => {
            let _ = write!(out, "Reply {} is-at ", addr(spa));
            push_mac(out, &p[sha..sha + hln]);
        }
        3 | 8 => {
            out.push_str(if op == 3 {
                "Reverse Request who-is "
            } else {
                "Inverse Request who-is "
            });
            push_mac(out, &p[tha..tha + hln]);
            out.push_str(" tell ");
            push_mac(out, &p[sha..sha + hln]);
        }
        4 => {
            out.push_str("Reverse Reply ");
            push_mac(out, &p[tha..tha + hln]);
            let _ = write!(out, " at {}", addr(tpa));
        }
        9 => {
            out.push_str("Inverse Reply ");
            push_mac(out, &p[sha..sha + hln]);
            let _ = write!(out, " at {}", addr(spa));
        }
        _ => {
            // tcpdump hex-dumps the rest, without the length.
            let name = if op == 10 {
                "NACK Reply".to_string()
            } else {
                format!("Unknown ({op})")
            };
            let _ = write!(out, "{name} ");
            return Ok(());
        }
    }
    let _ = write!(out, ", length {length}");
    Ok(())
}

/// The network-layer context the transport printers need.
#[derive(Clone, Copy)]
enum Net {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    /// `direct` is false when extension headers came between the IPv6
    /// header and the transport header: tcpdump then prints only the ports.
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
        direct: bool,
    },
}

impl Net {
    /// `src > dst: `
    fn push_addrs(self, out: &mut String) {
        let _ = match self {
            Net::V4 { src, dst } => write!(out, "{src} > {dst}: "),
            Net::V6 { src, dst, .. } => write!(out, "{src} > {dst}: "),
        };
    }

    /// `src.sport > dst.dport: `, or `sport > dport: ` after IPv6
    /// extension headers.
    fn push_ports(self, out: &mut String, sport: u16, dport: u16) {
        let _ = match self {
            Net::V4 { src, dst } => write!(out, "{src}.{sport} > {dst}.{dport}: "),
            Net::V6 {
                src,
                dst,
                direct: true,
            } => write!(out, "{src}.{sport} > {dst}.{dport}: "),
            Net::V6 { direct: false, .. } => write!(out, "{sport} > {dport}: "),
        };
    }
}

const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_NONE: u8 = 59;

/// Mirrors tcpdump's `ip_print`; `length` is what the link layer says is
/// left of the frame on the wire.
fn ip4(out: &mut String, p: &[u8], length: u32) -> Res {
    let version = u8_at(p, 0, "ip")? >> 4;
    if version != 4 {
        if version == 6 {
            out.push_str("IP6, wrong link-layer encapsulation (invalid)");
        } else {
            let _ = write!(out, "IP{version} (invalid)");
        }
        return Ok(());
    }
    out.push_str("IP ");
    if p.len() < 20 {
        return Err(Trunc("ip"));
    }
    if length < 20 {
        let _ = write!(out, "truncated-ip {length}");
        return Ok(());
    }
    let hlen = u32::from(p[0] & 0x0f) * 4;
    if hlen < 20 {
        let _ = write!(out, "bad-hlen {hlen}");
        return Ok(());
    }
    let mut len = u32::from(be16(p, 2, "ip")?);
    if length < len {
        let _ = write!(out, "truncated-ip - {} bytes missing! ", len - length);
    }
    if len < hlen {
        if len != 0 {
            let _ = write!(out, "bad-len {len}");
            return Ok(());
        }
        // A zero length is what TCP segmentation offload leaves in packets
        // captured on the sending host; tcpdump uses the frame's length.
        len = length;
    }
    // Link-layer padding after the IP datagram is not part of it.
    let p = &p[..p.len().min(len as usize)];
    let payload_len = len - hlen;
    let off = be16(p, 6, "ip")?;
    let proto = p[9];
    let net = Net::V4 {
        src: ip4_at(p, 12, "ip")?,
        dst: ip4_at(p, 16, "ip")?,
    };
    if off & 0x1fff != 0 {
        // Not the first fragment: no transport header to show.
        net.push_addrs(out);
        out.pop();
        let _ = write!(out, " ip-proto-{proto}");
        return Ok(());
    }
    if proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != 132 && proto != 33 {
        net.push_addrs(out);
    }
    let hlen = hlen as usize;
    if p.len() < hlen {
        let _ = write!(
            out,
            " [remaining caplen({}) < header length({hlen})]",
            p.len()
        );
        return Err(Trunc("ip"));
    }
    demux(out, &p[hlen..], payload_len, net, proto, off & 0x2000 != 0)
}

/// Mirrors tcpdump's `ip6_print` for the headers it walks by default.
fn ip6(out: &mut String, p: &[u8], length: u32) -> Res {
    if p.len() < 40 {
        return Err(Trunc("ip6"));
    }
    if length < 40 {
        let _ = write!(out, "truncated-ip6 {length}");
        return Ok(());
    }
    out.push_str("IP6 ");
    let version = p[0] >> 4;
    if version != 6 {
        let _ = write!(out, "version error: {version} != 6");
        return Ok(());
    }
    let payload_len = u32::from(be16(p, 4, "ip6")?);
    let total = if payload_len != 0 {
        let total = payload_len + 40;
        if length < total {
            let _ = write!(out, "truncated-ip6 - {} bytes missing!", total - length);
        }
        total
    } else {
        // Jumbograms are not decoded; take what the frame holds.
        length
    };
    let p = &p[..p.len().min(total as usize)];
    let src = ip6_at(p, 8, "ip6")?;
    let dst = ip6_at(p, 24, "ip6")?;
    let first = p[6];
    let mut nh = first;
    let mut pos = 40usize;
    let mut left = total - 40;
    let mut fragmented = false;
    if !matches!(nh, IPPROTO_TCP | IPPROTO_UDP | 33 | 132) {
        let _ = write!(out, "{src} > {dst}: ");
    }
    loop {
        let rest = p.get(pos..).unwrap_or(&[]);
        match nh {
            // Hop-by-hop and destination options: tcpdump names them and
            // shows their options only with -v.
            0 | 60 => {
                let proto = if nh == 0 { "hbhopt" } else { "dstopt" };
                let hdr_len = (usize::from(u8_at(rest, 1, proto)?) + 1) * 8;
                if rest.len() < hdr_len {
                    return Err(Trunc(proto));
                }
                out.push_str(if nh == 0 { "HBH " } else { "DSTOPT " });
                if !ip6_options_ok(&rest[2..hdr_len]) {
                    return Err(Trunc(proto));
                }
                nh = rest[0];
                pos += hdr_len;
                left = left.saturating_sub(hdr_len as u32);
            }
            44 => {
                let off = be16(rest, 2, "frag6")? & 0xfff8;
                let frag_len = left.saturating_sub(8);
                let _ = write!(out, "frag ({off}|{frag_len}) ");
                if off != 0 || rest.len() <= 8 {
                    // Not the first fragment: what follows is not a header.
                    return Ok(());
                }
                nh = rest[0];
                pos += 8;
                left = left.saturating_sub(8);
                fragmented = true;
            }
            _ => {
                let net = Net::V6 {
                    src,
                    dst,
                    direct: nh == first,
                };
                return demux(out, rest, left, net, nh, fragmented);
            }
        }
    }
}

/// Whether hop-by-hop or destination options are well formed, as
/// tcpdump's option walker checks them; it gives up on the packet
/// otherwise.
fn ip6_options_ok(mut opts: &[u8]) -> bool {
    while let Some(&kind) = opts.first() {
        if kind == 0 {
            opts = &opts[1..];
            continue;
        }
        let Some(&len) = opts.get(1) else {
            return false;
        };
        let len = usize::from(len);
        if opts.len() < 2 + len {
            return false;
        }
        // Router alert and jumbo payload have fixed sizes.
        if (kind == 0x05 && len != 2) || (kind == 0xc2 && len != 4) {
            return false;
        }
        opts = &opts[2 + len..];
    }
    true
}

/// Hands an IP payload to its protocol's printer, like tcpdump's
/// `ip_demux_print`. `length` is the payload's length per the IP header.
fn demux(out: &mut String, p: &[u8], length: u32, net: Net, proto: u8, fragmented: bool) -> Res {
    match proto {
        IPPROTO_TCP => tcp(out, p, length, net),
        IPPROTO_UDP => udp(out, p, length, net, fragmented),
        IPPROTO_ICMP => icmp(out, p, length),
        IPPROTO_ICMPV6 => icmp6(out, p, length),
        IPPROTO_IPIP => ip4(out, p, length),
        IPPROTO_IPV6 => ip6(out, p, length),
        IPPROTO_NONE => {
            out.push_str("no next header");
            Ok(())
        }
        _ => {
            let _ = write!(out, " ip-proto-{proto} {length}");
            Ok(())
        }
    }
}

/// Mirrors tcpdump's `udp_print` without application dissectors.
fn udp(out: &mut String, p: &[u8], mut length: u32, net: Net, fragmented: bool) -> Res {
    let (Ok(sport), Ok(dport)) = (be16(p, 0, "udp"), be16(p, 2, "udp")) else {
        // Without ports tcpdump shows the addresses, unless IPv6 extension
        // headers came first, where it would have shown only the ports.
        if !matches!(net, Net::V6 { direct: false, .. }) {
            net.push_addrs(out);
        }
        return Err(Trunc("udp"));
    };
    net.push_ports(out, sport, dport);
    if length < 8 {
        let _ = write!(out, "truncated-udp {length}");
        return Ok(());
    }
    let mut ulen = u32::from(be16(p, 4, "udp")?);
    if ulen == 0 && length > 65535 {
        ulen = length;
    }
    if ulen < 8 {
        let _ = write!(out, "truncated-udplength {ulen}");
        return Ok(());
    }
    ulen -= 8;
    length -= 8;
    if ulen < length {
        length = ulen;
    }
    if p.len() < 8 {
        return Err(Trunc("udp"));
    }
    if ulen > length && !fragmented {
        let _ = write!(out, "UDP, bad length {ulen} > {length}");
    } else {
        let _ = write!(out, "UDP, length {ulen}");
    }
    Ok(())
}

/// Mirrors tcpdump's `tcp_print` for a connection's first packet (see the
/// module docs) and without application dissectors.
fn tcp(out: &mut String, p: &[u8], length: u32, net: Net) -> Res {
    let (Ok(sport), Ok(dport)) = (be16(p, 0, "tcp"), be16(p, 2, "tcp")) else {
        net.push_addrs(out);
        out.pop();
        return Err(Trunc("tcp"));
    };
    net.push_ports(out, sport, dport);
    if p.len() < 20 {
        return Err(Trunc("tcp"));
    }
    let hlen = u32::from(p[12] >> 4) * 4;
    if hlen < 20 {
        let _ = write!(
            out,
            " tcp {} [bad hdr length {hlen} - too short, < 20]",
            length.wrapping_sub(hlen)
        );
        return Ok(());
    }
    let seq = be32(p, 4, "tcp")?;
    let ack = be32(p, 8, "tcp")?;
    let flags = p[13];
    let win = be16(p, 14, "tcp")?;
    let urp = be16(p, 18, "tcp")?;
    out.push_str("Flags [");
    if flags == 0 {
        out.push_str("none");
    }
    for (bit, letter) in [
        (0x01, 'F'),
        (0x02, 'S'),
        (0x04, 'R'),
        (0x08, 'P'),
        (0x10, '.'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'W'),
    ] {
        if flags & bit != 0 {
            out.push(letter);
        }
    }
    out.push(']');
    const ACK: u8 = 0x10;
    // tcpdump keys relative numbering on the first packet it sees with
    // ACK set, taking ack - 1 as the base; on that packet only SACK blocks
    // come out relative.
    let sack_base = if flags & ACK != 0 {
        ack.wrapping_sub(1)
    } else {
        0
    };
    if hlen > length {
        let _ = write!(out, " [bad hdr length {hlen} - too long, > {length}]");
        return Ok(());
    }
    let data_len = length - hlen;
    if data_len > 0 || flags & 0x07 != 0 {
        let _ = write!(out, ", seq {seq}");
        if data_len > 0 {
            let _ = write!(out, ":{}", seq.wrapping_add(data_len));
        }
    }
    if flags & ACK != 0 {
        let _ = write!(out, ", ack {ack}");
    }
    let _ = write!(out, ", win {win}");
    if flags & 0x20 != 0 {
        let _ = write!(out, ", urg {urp}");
    }
    if hlen > 20 {
        out.push_str(", options [");
        let cap = &p[20..p.len().min(hlen as usize)];
        if !tcp_options(out, hlen as usize - 20, cap, sack_base)? {
            // A malformed option ends the line, as in tcpdump.
            return Ok(());
        }
        out.push(']');
    }
    let _ = write!(out, ", length {data_len}");
    Ok(())
}

/// Prints TCP options the way tcpdump does, piece by piece, so that a
/// capture cut inside them shows the options before the cut. `space` is
/// the option area per the header length and `cap` what of it was
/// captured. Returns false when the line must end here: after a malformed
/// option (`[bad opt]`) or data cut short (` [|tcp]`, with tcpdump's
/// stray `>` once an option has been printed).
fn tcp_options(out: &mut String, space: usize, cap: &[u8], sack_base: u32) -> Result<bool, Trunc> {
    // Comma before every option but the first; tcpdump also uses "has an
    // option been printed" to decide on the closing characters above.
    let mut after_first = false;
    let mut pos = 0usize;
    let bad = |out: &mut String, after_first: bool| {
        out.push_str(if after_first {
            "[bad opt]]"
        } else {
            "[bad opt]"
        });
        Ok(false)
    };
    let trunc = |out: &mut String, after_first: bool| {
        out.push_str(if after_first { " [|tcp]>" } else { " [|tcp]" });
        Ok(false)
    };
    while pos < space {
        if after_first {
            out.push(',');
        }
        let kind = u8_at(cap, pos, "tcp")?;
        let mut left = space - pos - 1;
        let len = if kind <= 1 {
            1
        } else {
            let len = usize::from(u8_at(cap, pos + 1, "tcp")?);
            if len < 2 || len > space - pos {
                return bad(out, after_first);
            }
            left -= 1;
            len
        };
        let data = pos + if kind <= 1 { 1 } else { 2 };
        let name = match kind {
            0 => "eol",
            1 => "nop",
            2 => "mss",
            3 => "wscale",
            4 => "sackOK",
            5 => "sack",
            6 => "echo",
            7 => "echoreply",
            8 => "TS",
            11 => "cc",
            12 => "ccnew",
            13 => "",
            19 => "md5",
            27 => "scps",
            28 => "uto",
            29 => "tcp-ao",
            30 => "mptcp",
            34 => "tfo",
            254 => "exp",
            _ => "unknown-",
        };
        out.push_str(name);
        if name == "unknown-" {
            let _ = write!(out, "{kind}");
        }
        // tcpdump's LENCHECK: past the header is malformed, past the
        // capture is truncated.
        let check = |n: usize| -> Option<Result<bool, Trunc>> {
            if n > left {
                Some(Ok(true)) // marker: bad
            } else if cap.len() < data + n {
                Some(Err(Trunc("tcp"))) // marker: truncated
            } else {
                None
            }
        };
        macro_rules! need {
            ($n:expr) => {
                match check($n) {
                    Some(Ok(_)) => return bad(out, after_first),
                    Some(Err(_)) => return trunc(out, after_first),
                    None => {}
                }
            };
        }
        let be = |off: usize, n: usize| -> u32 {
            cap[data + off..data + off + n]
                .iter()
                .fold(0u32, |acc, &b| acc << 8 | u32::from(b))
        };
        let mut datalen = 0usize;
        match kind {
            0 | 1 | 4 => {}
            2 => {
                datalen = 2;
                need!(2);
                let _ = write!(out, " {}", be(0, 2));
            }
            3 => {
                datalen = 1;
                need!(1);
                let _ = write!(out, " {}", be(0, 1));
            }
            5 => {
                datalen = len - 2;
                if !datalen.is_multiple_of(8) {
                    out.push_str(" invalid sack");
                } else {
                    let _ = write!(out, " {} ", datalen / 8);
                    for i in (0..datalen).step_by(8) {
                        need!(i + 8);
                        let s = be(i, 4).wrapping_sub(sack_base);
                        let e = be(i + 4, 4).wrapping_sub(sack_base);
                        let _ = write!(out, "{{{s}:{e}}}");
                    }
                }
            }
            6 | 7 | 11 | 12 | 13 => {
                datalen = 4;
                need!(4);
                let _ = write!(out, " {}", be(0, 4));
            }
            8 => {
                datalen = 8;
                need!(8);
                let _ = write!(out, " val {} ecr {}", be(0, 4), be(4, 4));
            }
            _ => {
                // Options tcpdump decodes further (md5, tcp-ao, mptcp,
                // tfo...) and unknown ones alike come out as hex here.
                datalen = len.saturating_sub(2);
                if kind <= 1 {
                    datalen = 0;
                }
                if datalen > 0 {
                    out.push_str(" 0x");
                }
                for i in 0..datalen {
                    need!(i + 1);
                    let _ = write!(out, "{:02x}", cap[data + i]);
                }
            }
        }
        let consumed = datalen + if kind <= 1 { 1 } else { 2 };
        if consumed != len {
            let _ = write!(out, "[len {len}]");
        }
        pos = data + datalen;
        after_first = true;
        if kind == 0 {
            break;
        }
    }
    Ok(true)
}

/// Mirrors tcpdump's `icmp_print` without -v; `length` is the ICMP
/// message's length per the IP header.
fn icmp(out: &mut String, p: &[u8], length: u32) -> Res {
    const P: &str = "icmp";
    let ty = u8_at(p, 0, P)?;
    let code = u8_at(p, 1, P)?;
    // Error messages quote the offending datagram's IP header from byte 8.
    let inner_dst = || ip4_at(p, 8 + 16, P);
    let text = match ty {
        0 | 8 => format!(
            "echo {}, id {}, seq {}",
            if ty == 8 { "request" } else { "reply" },
            be16(p, 4, P)?,
            be16(p, 6, P)?
        ),
        3 => match code {
            0 => format!("net {} unreachable", inner_dst()?),
            1 => format!("host {} unreachable", inner_dst()?),
            2 => format!(
                "{} protocol {} unreachable",
                inner_dst()?,
                u8_at(p, 8 + 9, P)?
            ),
            3 => {
                let ihl = usize::from(u8_at(p, 8, P)? & 0x0f) * 4;
                let inner_proto = u8_at(p, 8 + 9, P)?;
                let dport = be16(p, 8 + ihl + 2, P)?;
                match inner_proto {
                    IPPROTO_TCP => format!("{} tcp port {dport} unreachable", inner_dst()?),
                    IPPROTO_UDP => format!("{} udp port {dport} unreachable", inner_dst()?),
                    _ => format!(
                        "{} protocol {inner_proto} port {dport} unreachable",
                        inner_dst()?
                    ),
                }
            }
            4 => match be16(p, 6, P)? {
                0 => format!("{} unreachable - need to frag", inner_dst()?),
                mtu => format!("{} unreachable - need to frag (mtu {mtu})", inner_dst()?),
            },
            5 => format!("{} unreachable - source route failed", inner_dst()?),
            6 => format!("net {} unreachable - unknown", inner_dst()?),
            7 => format!("host {} unreachable - unknown", inner_dst()?),
            8 => format!("{} unreachable - source host isolated", inner_dst()?),
            9 => format!("net {} unreachable - admin prohibited", inner_dst()?),
            10 => format!("host {} unreachable - admin prohibited", inner_dst()?),
            11 => format!("net {} unreachable - tos prohibited", inner_dst()?),
            12 => format!("host {} unreachable - tos prohibited", inner_dst()?),
            13 => format!(
                "host {} unreachable - admin prohibited filter",
                inner_dst()?
            ),
            14 => format!(
                "host {} unreachable - host precedence violation",
                inner_dst()?
            ),
            15 => format!("host {} unreachable - precedence cutoff", inner_dst()?),
            _ => format!("{} unreachable - #{code}", inner_dst()?),
        },
        5 => {
            let gw = ip4_at(p, 4, P)?;
            let dst = inner_dst()?;
            match code {
                0 => format!("redirect {dst} to net {gw}"),
                1 => format!("redirect {dst} to host {gw}"),
                2 => format!("redirect-tos {dst} to net {gw}"),
                3 => format!("redirect-tos {dst} to host {gw}"),
                _ => format!("redirect-#{code} {dst} to {gw}"),
            }
        }
        11 => {
            inner_dst()?;
            match code {
                0 => "time exceeded in-transit".to_string(),
                1 => "ip reassembly time exceeded".to_string(),
                _ => format!("time exceeded-#{code}"),
            }
        }
        12 => match code {
            0 => format!("parameter problem - octet {}", u8_at(p, 4, P)?),
            _ => format!("parameter problem - code {code}"),
        },
        13 => format!(
            "time stamp query id {} seq {}",
            be16(p, 4, P)?,
            be16(p, 6, P)?
        ),
        18 => format!("address mask is 0x{:08x}", be32(p, 8, P)?),
        4 => "source quench".to_string(),
        10 => "router solicitation".to_string(),
        15 => "information request".to_string(),
        16 => "information reply".to_string(),
        17 => "address mask request".to_string(),
        // Router advertisements and time stamp replies carry more than we
        // decode; their names at least.
        9 => "router advertisement".to_string(),
        14 => "time stamp reply".to_string(),
        _ => format!("type-#{ty}"),
    };
    let _ = write!(out, "ICMP {text}, length {length}");
    Ok(())
}

/// Mirrors tcpdump's `icmp6_print` without -v; `length` is the ICMPv6
/// message's length per the IPv6 header.
fn icmp6(out: &mut String, p: &[u8], length: u32) -> Res {
    const P: &str = "icmp6";
    if length == 0 {
        out.push_str("ICMP6, length 0");
        return Ok(());
    }
    let ty = u8_at(p, 0, P)?;
    let name = match ty {
        1 => "destination unreachable",
        2 => "packet too big",
        3 => "time exceeded in-transit",
        4 => "parameter problem",
        128 => "echo request",
        129 => "echo reply",
        130 => "multicast listener query",
        131 => "multicast listener report",
        132 => "multicast listener done",
        133 => "router solicitation",
        134 => "router advertisement",
        135 => "neighbor solicitation",
        136 => "neighbor advertisement",
        137 => "redirect",
        138 => "router renumbering",
        141 => "inverse neighbor solicitation",
        142 => "inverse neighbor advertisement",
        143 => "multicast listener report v2",
        144 => "ha discovery request",
        145 => "ha discovery reply",
        146 => "mobile router solicitation",
        147 => "mobile router advertisement",
        139 => "node information query",
        140 => "node information reply",
        200 => "mtrace message",
        201 => "mtrace response",
        155 => "RPL",
        _ => "",
    };
    if name.is_empty() {
        let _ = write!(out, "ICMP6, unknown icmp6 type ({ty}), length {length}");
        return Ok(());
    }
    let _ = write!(out, "ICMP6, {name}");
    let code = u8_at(p, 1, P)?;
    // Error messages quote the offending IPv6 packet from byte 8.
    let inner_dst = || ip6_at(p, 8 + 24, P);
    match ty {
        1 => {
            let code_name = match code {
                0 => "unreachable route".to_string(),
                1 => " unreachable prohibited".to_string(),
                2 => "beyond scope".to_string(),
                3 => "unreachable address".to_string(),
                4 => "unreachable port".to_string(),
                _ => format!("unknown unreach code ({code})"),
            };
            let _ = write!(out, ", {code_name}");
            match code {
                0 | 1 | 3 => {
                    let _ = write!(out, " {}", inner_dst()?);
                }
                2 => {
                    let _ = write!(
                        out,
                        " {}, source address {}",
                        inner_dst()?,
                        ip6_at(p, 8 + 8, P)?
                    );
                }
                4 => {
                    // Only the common case of no extension headers in the
                    // quoted packet is decoded.
                    let proto = u8_at(p, 8 + 6, P)?;
                    let dport = be16(p, 8 + 40 + 2, P)?;
                    let dst = inner_dst()?;
                    let _ = match proto {
                        IPPROTO_TCP => write!(out, ", {dst} tcp port {dport}"),
                        IPPROTO_UDP => write!(out, ", {dst} udp port {dport}"),
                        _ => write!(out, ", {dst} protocol {proto} port {dport} unreachable"),
                    };
                }
                _ => return Ok(()),
            }
        }
        2 => {
            let _ = write!(out, ", mtu {}", be32(p, 4, P)?);
        }
        3 => match code {
            0 => {
                let _ = write!(out, " for {}", inner_dst()?);
            }
            1 => out.push_str(" (reassembly)"),
            _ => {
                let _ = write!(out, ", unknown code ({code})");
            }
        },
        4 => {
            inner_dst()?;
            let ptr = be32(p, 4, P)?;
            let _ = match code {
                0 => write!(out, ", erroneous - octet {ptr}"),
                1 => write!(out, ", next header - octet {ptr}"),
                2 => write!(out, ", option - octet {ptr}"),
                3 => write!(out, ", incomplete header chain - octet {ptr}"),
                _ => write!(out, ", code-#{code}"),
            };
        }
        128 | 129 => {
            let _ = write!(out, ", id {}, seq {}", be16(p, 4, P)?, be16(p, 6, P)?);
        }
        // tcpdump's MLDv1 printer really does start without a separator.
        130 if length == 24 => mld6(out, p),
        130 if length >= 28 => {
            let _ = write!(out, " v2 [gaddr {}", ip6_at(p, 8, P)?);
            let nsrcs = be16(p, 26, P)?;
            if nsrcs > 0 {
                if length < 28 + u32::from(nsrcs) * 16 {
                    out.push_str(" [invalid number of sources]");
                } else {
                    let _ = write!(out, ", {nsrcs} source(s)");
                }
            }
            out.push(']');
        }
        130 => {
            let _ = write!(out, " unknown-version (len {length}) ");
        }
        131 | 132 => mld6(out, p),
        135 => {
            let _ = write!(out, ", who has {}", ip6_at(p, 8, P)?);
        }
        136 => {
            let _ = write!(out, ", tgt is {}", ip6_at(p, 8, P)?);
        }
        137 => {
            let _ = write!(out, ", {}", ip6_at(p, 24, P)?);
            let _ = write!(out, " to {}", ip6_at(p, 8, P)?);
        }
        143 => {
            if length < 8 {
                let _ = write!(out, " [invalid len {length}]");
            } else {
                let _ = write!(out, ", {} group record(s)", be16(p, 6, P)?);
            }
        }
        _ => {}
    }
    let _ = write!(out, ", length {length}");
    Ok(())
}

/// tcpdump's `mld6_print`: silent when the message is cut short.
fn mld6(out: &mut String, p: &[u8]) {
    if let (Ok(delay), Ok(addr)) = (be16(p, 4, "icmp6"), ip6_at(p, 8, "icmp6")) {
        let _ = write!(out, "max resp delay: {delay} addr: {addr}");
    }
}
