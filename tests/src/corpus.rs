//! A deterministic packet corpus and a list of tcpdump filter expressions for
//! differential tests of classic-BPF filters.
//!
//! The same packets are judged by libpcap's `pcap_offline_filter`, by a
//! userspace interpreter and by an eBPF program run through
//! `BPF_PROG_TEST_RUN`; verdicts must agree.  The corpus therefore
//! concentrates on the corners of tcpdump's filter language: fragments,
//! IP and TCP options (header-length arithmetic), IPv6 extension headers,
//! VLAN / QinQ tags, 802.3 length fields with LLC/SNAP, truncated headers,
//! runts and lengths that disagree with the frame.
//!
//! Everything here is std-only.  Every frame is at least 14 bytes long (an
//! Ethernet header, as `BPF_PROG_TEST_RUN` requires) and at most 1522 bytes
//! (1514 plus two VLAN tags).  Addresses and ports are drawn from small
//! pools that the expressions in [`filters`] mention, so that filters match
//! a fair fraction of the packets.

/// One generated Ethernet frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestPacket {
    /// Describes the frame; starts with its kind, e.g. `ipv4-frag-middle-udp-offset-185`,
    /// `vlan-100-ipv6-udp-…`, `trunc-in-tcp-hdr-at-40`.
    pub name: String,
    /// The frame, starting with the destination MAC address (no FCS).
    pub bytes: Vec<u8>,
}

/// The kinds of packets, in the order [`packets`] cycles through them.
/// Every name starts with one of these followed by `-`.
const KINDS: &[&str] = &[
    "ipv4-tcp",
    "ipv4-udp",
    "ipv4-icmp",
    "ipv4-igmp",
    "ipv4-proto",
    "ipv4-ipopts",
    "ipv4-frag",
    "ipv6-tcp",
    "ipv6-udp",
    "ipv6-icmp6",
    "ipv6-ext",
    "arp",
    "rarp",
    "vlan",
    "qinq",
    "llc",
    "ether",
    "trunc",
    "runt",
    "badlen",
];

/// Smallest frame the corpus produces (an Ethernet header).
pub const MIN_LEN: usize = 14;
/// Largest untagged frame the corpus produces.
const MAX_UNTAGGED: usize = 1514;
/// Largest frame the corpus produces (1514 plus two VLAN tags).
pub const MAX_LEN: usize = MAX_UNTAGGED + 8;

/// `count` packets from a fixed seed.  Same seed, same packets.
///
/// Packet `i` is of kind `i % 20` (see the kind prefixes of the names), with
/// its parameters drawn from a SplitMix64 generator seeded with `seed`.
pub fn packets(count: usize, seed: u64) -> Vec<TestPacket> {
    let mut r = Rng::new(seed);
    (0..count)
        .map(|i| {
            let p = gen_kind(&mut r, i % KINDS.len());
            debug_assert!(p.name.starts_with(KINDS[i % KINDS.len()]));
            debug_assert!((MIN_LEN..=MAX_LEN).contains(&p.bytes.len()), "{}", p.name);
            p
        })
        .collect()
}

/// The tcpdump filter expressions for differential tests.
///
/// Every expression compiles with `tcpdump -d` on an Ethernet savefile and
/// with `pcap_compile` on a dead `DLT_EN10MB` handle with
/// `PCAP_NETMASK_UNKNOWN` (checked against tcpdump 4.99.3 / libpcap 1.10.3).
///
/// Dropped, because they do not compile there or cannot run as classic BPF:
/// - `ip broadcast`: needs the netmask; `pcap_compile` on a dead handle
///   with `PCAP_NETMASK_UNKNOWN` fails ("netmask not known").
/// - `inbound` / `outbound`: "not supported on Ethernet when reading savefiles".
/// - `vxlan`: unknown to libpcap 1.10.3 (syntax error).
/// - `ip and not ip`: rejected by the optimizer ("expression rejects all
///   packets"); `len < 0` is kept as the match-nothing case.
/// - `ip[2:2] % 0 = 1`: "modulus by zero" at compile time
///   (`ip[2:2] / (ip[1] & 3) > 10` keeps a run-time division by zero).
/// - `ip protochain 17`, `ip6 protochain 6`: compile, but generate a
///   backward `ja` (a loop), which the kernel's classic-BPF checker and
///   libpcap's `bpf_validate` reject.
pub fn filters() -> Vec<&'static str> {
    vec![
        // ports and port ranges
        "port 53",
        "tcp dst port 80",
        "udp src port 9000",
        "portrange 9000-9005",
        "tcp portrange 20-25",
        "not port 22",
        "port 443",
        "src port 22",
        "dst port 5000",
        "udp port 53",
        "tcp port 80 or tcp port 443",
        "sctp portrange 9000-9010",
        "udp dst portrange 9006-9010",
        "ip6 and tcp port 22",
        "src port 9000 or dst port 443",
        // hosts and nets
        "host 10.0.0.1",
        "src host 192.168.1.7",
        "dst net 172.16.0.0/12",
        "net 192.168.1.0 mask 255.255.255.0",
        "ip6 host 2001:db8::1",
        "src net fe80::/10",
        "net 10.0.0.0/8",
        "dst host 10.0.0.2",
        "host 255.255.255.255",
        "dst host 224.0.0.1",
        "ip dst net 239.0.0.0/8",
        "ip6 dst host ff02::1",
        "ip6 net 2001:db8::/32",
        "ip6 dst net ff00::/8",
        "host fe80::1",
        "arp host 10.0.0.1",
        "rarp host 10.0.0.2",
        "ip src host 10.0.0.1",
        "src net 172.16.0.0/12 and dst net 10.0.0.0/8",
        "net 192.168.1.0/24 and not host 192.168.1.7",
        // protocols
        "tcp",
        "udp",
        "icmp",
        "icmp6",
        "arp",
        "rarp",
        "igmp",
        "ip proto 47",
        "ip6 proto 58",
        "ip6 proto 0",
        "ip6 proto 44",
        "ip proto 50",
        "sctp",
        "ip",
        "ip6",
        "pim",
        "vrrp",
        "mpls",
        "pppoed",
        // TCP flags
        "tcp[tcpflags] & tcp-syn != 0",
        "tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn",
        "tcp[13] = 18",
        "tcp[tcpflags] & (tcp-rst|tcp-fin) != 0",
        "tcp[tcpflags] & tcp-urg != 0",
        "tcp[tcpflags] == tcp-ack",
        "tcp[tcpflags] & tcp-push != 0 and tcp[tcpflags] & tcp-ece = 0",
        // byte-offset arithmetic
        "ip[0] & 0xf > 5",
        "ip[2:2] > 100",
        "tcp[((tcp[12] & 0xf0) >> 2):4] = 0x47455420",
        "udp[4:2] - 8 > 32",
        "udp[4:2] < 8",
        "ip[6:2] & 0x1fff != 0",
        "ip[6] & 0x20 != 0",
        "ip[6] & 0x40 != 0",
        "ether[12:2] = 0x0800",
        "ether[12:2] <= 1500",
        "ip[8] < 64",
        "ip[2:2] / 4 > 10",
        "ip[2:2] % 7 = 3",
        "ip[2:2] * 2 > 1200",
        "ip[1] ^ 0xff = 0xff",
        "ip[2:2] >> 3 = 7",
        "ip[2:2] - ((ip[0] & 0xf) << 2) > 100",
        "ip[2:2] / (ip[1] & 3) > 10",
        "ip[2:2] != len - 14",
        "ip[2:2] + 14 < len",
        "ip6[4:2] + 54 != len",
        "ip6[6] = 17",
        "tcp[12] >> 4 > 5",
        "tcp[0:2] = 22 or tcp[2:2] = 22",
        "udp port 53 and udp[10] & 0x80 = 0",
        "ether[0] & 1 != 0",
        "ether[len - 1] = 0",
        "ether[1200:2] = 0",
        "ether[14:4] = 0xaaaa0300",
        "icmp[icmptype] = icmp-echo",
        "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply",
        "icmp6 and ip6[40] = 128",
        "icmp6[icmp6type] = icmp6-neighborsolicit",
        // length
        "len > 500",
        "greater 1000",
        "less 100",
        "len = 60",
        "len <= 64",
        "len > 1514",
        // VLAN
        "vlan",
        "vlan 100",
        "vlan and ip",
        "vlan 100 and udp",
        "vlan and vlan 200",
        "ip and not vlan",
        "not vlan",
        "vlan and arp",
        "vlan and ip6 and icmp6",
        "vlan 100 or arp",
        "vlan 4094",
        // broadcast / multicast / MAC addresses
        "ether broadcast",
        "ether multicast",
        "broadcast",
        "ip multicast",
        "ip6 multicast",
        "ether host ff:ff:ff:ff:ff:ff",
        "ether src 02:00:00:00:00:01",
        "ether dst 01:80:c2:00:00:00",
        "ether src 02:00:00:00:00:01 and not ether dst ff:ff:ff:ff:ff:ff",
        // 802.3 / LLC and other link-layer protocols
        "llc",
        "llc i",
        "stp",
        "ipx",
        "netbeui",
        "iso",
        "decnet",
        "atalk",
        "aarp",
        "ether proto 0x88cc",
        "ether proto 0x8847",
        // combinations
        "ip6 and tcp",
        "ip6 and udp port 53",
        "(tcp or udp) and not port 443",
        "host 10.0.0.1 and (port 22 or port 80)",
        "not (ip or ip6 or arp)",
        "ip and tcp[tcpflags] & tcp-syn != 0 and not src net 10.0.0.0/8",
        "icmp or icmp6 or igmp",
        "udp and (dst host 255.255.255.255 or ip multicast)",
        "tcp and len > 1000 and dst port 443",
        // everything / nothing
        "ip or not ip",
        "len >= 0",
        "len < 0",
        "ether[0:1] = ether[0:1]",
    ]
}

/// An Ethernet frame carrying an IPv4/UDP datagram, with a correct IPv4
/// header checksum and UDP checksum (TTL 64, DF set, ID 0, no options).
pub fn ipv4_udp_frame(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: [u8; 4],
    dst: [u8; 4],
    sport: u16,
    dport: u16,
    payload: &[u8],
) -> Vec<u8> {
    let seg = udp_seg(Pseudo::V4(src, dst), sport, dport, payload);
    let ip = V4 {
        src,
        dst,
        proto: 17,
        ttl: 64,
        tos: 0,
        id: 0,
        df: true,
        mf: false,
        frag: 0,
        opts: Vec::new(),
    };
    eth(dst_mac, src_mac, 0x0800, &ip.packet(&seg))
}

/// Insert an 802.1Q / 802.1ad tag (`tpid`, `tci`) after the MAC addresses.
/// Tagging an already tagged frame puts the new tag outermost.
///
/// # Panics
/// If `frame` is shorter than the two MAC addresses (12 bytes).
pub fn vlan_tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    assert!(frame.len() >= 12, "frame too short for a VLAN tag");
    let mut f = Vec::with_capacity(frame.len() + 4);
    f.extend_from_slice(&frame[..12]);
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

// ---------------------------------------------------------------------------
// PRNG

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform-ish in `0..n`.
    fn below(&mut self, n: usize) -> usize {
        assert!(n > 0);
        (self.next_u64() % n as u64) as usize
    }
    /// In `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        assert!(lo <= hi);
        lo + self.below(hi - lo + 1)
    }
    fn chance(&mut self, num: usize, den: usize) -> bool {
        self.below(den) < num
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }
    fn u8(&mut self) -> u8 {
        self.next_u64() as u8
    }
    fn u16(&mut self) -> u16 {
        self.next_u64() as u16
    }
    fn u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
}

// ---------------------------------------------------------------------------
// Checksums

fn sum16(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [b] = chunks.remainder() {
        acc += u64::from(*b) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// The Internet checksum of `data`.
fn checksum(data: &[u8]) -> u16 {
    fold(sum16(0, data))
}

#[derive(Clone, Copy)]
enum Pseudo {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

/// Checksum of a TCP/UDP/ICMPv6 segment with its pseudo-header.
fn l4_checksum(p: Pseudo, proto: u8, seg: &[u8]) -> u16 {
    let len = seg.len() as u64;
    let mut acc = match p {
        Pseudo::V4(s, d) => sum16(sum16(0, &s), &d),
        Pseudo::V6(s, d) => sum16(sum16(0, &s), &d),
    };
    acc += u64::from(proto) + (len >> 16) + (len & 0xffff);
    fold(sum16(acc, seg))
}

/// CRC32c (Castagnoli), for SCTP.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------
// Header builders

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[derive(Clone)]
struct V4 {
    src: [u8; 4],
    dst: [u8; 4],
    proto: u8,
    ttl: u8,
    tos: u8,
    id: u16,
    df: bool,
    mf: bool,
    /// Fragment offset in 8-byte units.
    frag: u16,
    /// IP options, a multiple of 4 bytes, at most 40.
    opts: Vec<u8>,
}

impl V4 {
    fn new(r: &mut Rng, src: [u8; 4], dst: [u8; 4], proto: u8) -> V4 {
        V4 {
            src,
            dst,
            proto,
            ttl: r.pick(&[64, 64, 64, 128, 255, 63, 32, 1]),
            tos: if r.chance(1, 4) {
                r.pick(&[0x10, 0x08, 0xb8, 0x02, 0x03, 0x28])
            } else {
                0
            },
            id: r.u16(),
            df: r.chance(1, 2),
            mf: false,
            frag: 0,
            opts: Vec::new(),
        }
    }
    fn hdr_len(&self) -> usize {
        20 + self.opts.len()
    }
    /// The header, claiming `total_len`, with a correct checksum.
    fn header(&self, total_len: u16) -> Vec<u8> {
        assert!(self.opts.len().is_multiple_of(4) && self.opts.len() <= 40);
        let mut h = vec![0u8; 20];
        h[0] = 0x40 | (self.hdr_len() / 4) as u8;
        h[1] = self.tos;
        h[2..4].copy_from_slice(&total_len.to_be_bytes());
        h[4..6].copy_from_slice(&self.id.to_be_bytes());
        let ff = (u16::from(self.df) << 14) | (u16::from(self.mf) << 13) | (self.frag & 0x1fff);
        h[6..8].copy_from_slice(&ff.to_be_bytes());
        h[8] = self.ttl;
        h[9] = self.proto;
        h[12..16].copy_from_slice(&self.src);
        h[16..20].copy_from_slice(&self.dst);
        h.extend_from_slice(&self.opts);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h
    }
    fn packet(&self, payload: &[u8]) -> Vec<u8> {
        let total = self.hdr_len() + payload.len();
        let mut p = self.header(total as u16);
        p.extend_from_slice(payload);
        p
    }
}

/// IPv4 options of exactly `len` bytes (a multiple of 4, 4..=40).
fn ip_options(r: &mut Rng, len: usize) -> (Vec<u8>, &'static str) {
    let mut o = Vec::with_capacity(len);
    let mut desc = "nop";
    if r.chance(1, 2) {
        o.extend_from_slice(&[0x94, 4, 0, 0]); // router alert
        desc = "ra";
    }
    let rem = len - o.len();
    if rem >= 8 && r.chance(2, 3) {
        if r.chance(1, 2) {
            // record route
            let n = ((rem - 3) / 4).min(9);
            o.extend_from_slice(&[7, (3 + 4 * n) as u8, 8]);
            o.extend_from_slice(&[10, 0, 0, 1]);
            o.extend(std::iter::repeat_n(0, 4 * (n - 1)));
            desc = "rr";
        } else {
            // timestamp, timestamps only
            let n = ((rem - 4) / 4).min(9);
            o.extend_from_slice(&[68, (4 + 4 * n) as u8, 9, 0]);
            o.extend(r.bytes(4));
            o.extend(std::iter::repeat_n(0, 4 * (n - 1)));
            desc = "ts";
        }
    }
    while o.len() + 1 < len {
        o.push(1); // NOP
    }
    if o.len() < len {
        o.push(0); // EOL
    }
    (o, desc)
}

fn v6_packet(
    r: &mut Rng,
    src: [u8; 16],
    dst: [u8; 16],
    nh: u8,
    hlim: u8,
    payload: &[u8],
) -> Vec<u8> {
    let tc = if r.chance(1, 4) { r.u8() } else { 0 };
    let flow = if r.chance(1, 2) { r.u32() & 0xfffff } else { 0 };
    let mut p = Vec::with_capacity(40 + payload.len());
    p.push(0x60 | (tc >> 4));
    p.push((tc << 4) | (flow >> 16) as u8);
    p.extend_from_slice(&(flow as u16).to_be_bytes());
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.push(nh);
    p.push(hlim);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(payload);
    p
}

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_URG: u8 = 0x20;

#[allow(clippy::too_many_arguments)]
fn tcp_seg(
    p: Pseudo,
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    urp: u16,
    opts: &[u8],
    payload: &[u8],
) -> Vec<u8> {
    assert!(opts.len().is_multiple_of(4) && opts.len() <= 40);
    let mut s = Vec::with_capacity(20 + opts.len() + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s.extend_from_slice(&ack.to_be_bytes());
    s.push(((5 + opts.len() / 4) as u8) << 4);
    s.push(flags);
    s.extend_from_slice(&win.to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&urp.to_be_bytes());
    s.extend_from_slice(opts);
    s.extend_from_slice(payload);
    let c = l4_checksum(p, 6, &s);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

fn udp_seg(p: Pseudo, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    let c = match l4_checksum(p, 17, &s) {
        0 => 0xffff,
        c => c,
    };
    s[6..8].copy_from_slice(&c.to_be_bytes());
    s
}

/// ICMPv4 (or IGMP, PIM: same checksum) message: type, code, checksum, `rest`, body.
fn icmp4_msg(typ: u8, code: u8, rest: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(body);
    let c = checksum(&m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn icmp6_msg(p: Pseudo, typ: u8, code: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![typ, code, 0, 0];
    m.extend_from_slice(body);
    let c = l4_checksum(p, 58, &m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn arp_body(op: u16, sha: [u8; 6], spa: [u8; 4], tha: [u8; 6], tpa: [u8; 4]) -> Vec<u8> {
    let mut b = vec![0, 1, 8, 0, 6, 4];
    b.extend_from_slice(&op.to_be_bytes());
    b.extend_from_slice(&sha);
    b.extend_from_slice(&spa);
    b.extend_from_slice(&tha);
    b.extend_from_slice(&tpa);
    b
}

// ---------------------------------------------------------------------------
// Pools

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const MAC_BCAST: [u8; 6] = [0xff; 6];
const MAC_STP: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0];
const MAC_LLDP: [u8; 6] = [0x01, 0x80, 0xc2, 0, 0, 0x0e];

fn unicast_mac(r: &mut Rng) -> [u8; 6] {
    match r.below(5) {
        0 | 1 => MAC_A,
        2 => MAC_B,
        3 => [0x00, 0x1b, 0x21, 0x3a, 0x4b, 0x5c],
        _ => {
            let b = r.bytes(6);
            [(b[0] & 0xfc) | 0x02, b[1], b[2], b[3], b[4], b[5]]
        }
    }
}

fn is_v4_mcast(a: [u8; 4]) -> bool {
    (224..=239).contains(&a[0])
}

fn mac_for_v4(r: &mut Rng, dst: [u8; 4]) -> [u8; 6] {
    if dst == [255; 4] || (dst[..3] == [192, 168, 1] && dst[3] == 255) {
        MAC_BCAST
    } else if is_v4_mcast(dst) {
        [0x01, 0x00, 0x5e, dst[1] & 0x7f, dst[2], dst[3]]
    } else {
        unicast_mac(r)
    }
}

fn mac_for_v6(r: &mut Rng, dst: [u8; 16]) -> [u8; 6] {
    if dst[0] == 0xff {
        [0x33, 0x33, dst[12], dst[13], dst[14], dst[15]]
    } else {
        unicast_mac(r)
    }
}

fn v4_unicast(r: &mut Rng) -> [u8; 4] {
    match r.below(11) {
        0 | 1 => [10, 0, 0, 1],
        2 => [10, 0, 0, 2],
        3 => [192, 168, 1, 7],
        4 => [192, 168, 1, r.range(1, 254) as u8],
        5 => [172, r.range(16, 31) as u8, r.u8(), r.range(1, 254) as u8],
        6 => r.pick(&[[172, 15, 255, 254], [172, 32, 0, 1], [192, 168, 2, 7]]),
        7 => [10, r.u8(), r.u8(), r.range(1, 254) as u8],
        8 => r.pick(&[[8, 8, 8, 8], [1, 1, 1, 1], [93, 184, 216, 34]]),
        _ => [r.range(1, 223) as u8, r.u8(), r.u8(), r.range(1, 254) as u8],
    }
}

fn v4_any(r: &mut Rng) -> [u8; 4] {
    match r.below(8) {
        0 => [255, 255, 255, 255],
        1 => r.pick(&[[224, 0, 0, 1], [224, 0, 0, 251], [192, 168, 1, 255]]),
        2 => [239, r.u8(), r.u8(), r.range(1, 254) as u8],
        _ => v4_unicast(r),
    }
}

fn v6(words: [u16; 8]) -> [u8; 16] {
    let mut a = [0u8; 16];
    for (i, w) in words.iter().enumerate() {
        a[2 * i..2 * i + 2].copy_from_slice(&w.to_be_bytes());
    }
    a
}

fn v6_unicast(r: &mut Rng) -> [u8; 16] {
    match r.below(8) {
        0 | 1 => v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
        2 => v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]),
        3 => v6([0x2001, 0xdb8, r.u16(), 0, 0, 0, 0, r.u16()]),
        4 => v6([0xfe80, 0, 0, 0, 0, 0, 0, 1]),
        5 => v6([0xfe80, 0, 0, 0, r.u16() & 0xfdff, 0xff, 0xfe00, r.u16()]),
        6 => v6([0x2606, 0x4700, 0, 0, 0, 0, 0, 0x1111]),
        _ => v6([
            0x2a00 | (r.u16() & 0xff),
            r.u16(),
            r.u16(),
            0,
            0,
            0,
            0,
            r.u16(),
        ]),
    }
}

fn v6_any(r: &mut Rng) -> [u8; 16] {
    match r.below(6) {
        0 => v6([0xff02, 0, 0, 0, 0, 0, 0, 1]),
        1 => r.pick(&[
            v6([0xff02, 0, 0, 0, 0, 0, 0, 0xfb]),
            v6([0xff02, 0, 0, 0, 0, 0, 1, 2]),
            v6([0xff05, 0, 0, 0, 0, 0, 1, 3]),
            v6([0xff0e, 0, 0, 0, 0, 0, 0, 0x101]),
        ]),
        _ => v6_unicast(r),
    }
}

fn service_port(r: &mut Rng) -> u16 {
    match r.below(12) {
        0 => 22,
        1 => 53,
        2 => 80,
        3 => 443,
        4 => 5000,
        5 | 6 => r.range(9000, 9010) as u16,
        7 => r.range(20, 25) as u16,
        8 => r.pick(&[8080, 123, 8999, 9011, 19]),
        _ => r.range(1, 65535) as u16,
    }
}

/// (sport, dport): a service port on one side, usually an ephemeral one on the other.
fn ports(r: &mut Rng) -> (u16, u16) {
    let service = service_port(r);
    let client = if r.chance(1, 5) {
        service_port(r)
    } else {
        r.range(1024, 65535) as u16
    };
    if r.chance(1, 2) {
        (client, service)
    } else {
        (service, client)
    }
}

fn payload_len(r: &mut Rng) -> usize {
    match r.below(11) {
        0 | 1 => 0,
        2 | 3 => r.range(1, 16),
        4 | 5 => r.range(17, 200),
        6 | 7 => r.range(201, 800),
        8 | 9 => r.range(801, 1400),
        _ => usize::MAX, // as much as fits: full-size frames
    }
}

/// `v` truncated or extended to `n` bytes: zeros, text, or text mixed with random bytes.
fn fill_to(r: &mut Rng, mut v: Vec<u8>, n: usize) -> Vec<u8> {
    v.truncate(n);
    let mode = r.below(4);
    while v.len() < n {
        v.push(match mode {
            0 => 0,
            1 => b'a' + (r.u8() % 26),
            _ if r.chance(1, 2) => b'a' + (r.u8() % 26),
            _ => r.u8(),
        });
    }
    v
}

/// Pad to the 60-byte Ethernet minimum, usually, as a NIC would.
fn maybe_pad(r: &mut Rng, mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 && r.chance(2, 3) {
        f.resize(60, 0);
    }
    f
}

fn dst_tag_v4(dst: [u8; 4]) -> &'static str {
    if dst == [255; 4] || dst[..3] == [192, 168, 1] && dst[3] == 255 {
        "-bcast"
    } else if is_v4_mcast(dst) {
        "-mcast"
    } else {
        ""
    }
}

fn dst_tag_v6(dst: [u8; 16]) -> &'static str {
    if dst[0] == 0xff {
        "-mcast"
    } else if dst[..2] == [0xfe, 0x80] {
        "-linklocal"
    } else {
        ""
    }
}

// ---------------------------------------------------------------------------
// Transport payloads

struct L4 {
    proto: u8,
    seg: Vec<u8>,
    desc: String,
}

fn dns_payload(r: &mut Rng, n: usize) -> Vec<u8> {
    let response = r.chance(1, 2);
    let mut d = Vec::new();
    d.extend_from_slice(&r.u16().to_be_bytes());
    d.extend_from_slice(if response {
        &[0x81, 0x80]
    } else {
        &[0x01, 0x00]
    });
    d.extend_from_slice(&[0, 1, 0, u8::from(response), 0, 0, 0, 0]);
    d.extend_from_slice(b"\x07example\x03com\x00\x00\x01\x00\x01");
    if response {
        d.extend_from_slice(&[
            0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 93, 184, 216, 34,
        ]);
    }
    let n = n.max(d.len());
    fill_to(r, d, n)
}

fn app_payload(r: &mut Rng, sport: u16, dport: u16, n: usize) -> Vec<u8> {
    let base: Vec<u8> = if dport == 80 && r.chance(2, 3) {
        b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: pktd\r\n\r\n".to_vec()
    } else if sport == 80 && r.chance(1, 2) {
        b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n".to_vec()
    } else if (dport == 443 || sport == 443) && r.chance(1, 2) {
        vec![
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ]
    } else if r.chance(1, 8) {
        b"GET ".to_vec() // not on port 80, still matches the GET filter
    } else {
        Vec::new()
    };
    fill_to(r, base, n)
}

const TCP_FLAG_SETS: &[(&str, u8)] = &[
    ("syn", TCP_SYN),
    ("syn-ack", TCP_SYN | TCP_ACK),
    ("syn", TCP_SYN),
    ("syn-ack", TCP_SYN | TCP_ACK),
    ("ack", TCP_ACK),
    ("ack", TCP_ACK),
    ("psh-ack", TCP_PSH | TCP_ACK),
    ("psh-ack", TCP_PSH | TCP_ACK),
    ("fin-ack", TCP_FIN | TCP_ACK),
    ("fin", TCP_FIN),
    ("rst", TCP_RST),
    ("rst-ack", TCP_RST | TCP_ACK),
    ("urg-ack", TCP_URG | TCP_ACK),
    ("urg-psh-ack", TCP_URG | TCP_PSH | TCP_ACK),
    ("syn-ece-cwr", TCP_SYN | 0xc0),
    ("xmas", TCP_FIN | TCP_PSH | TCP_URG),
    ("null", 0),
    ("syn-fin", TCP_SYN | TCP_FIN),
];

fn tcp_options(r: &mut Rng, syn: bool) -> (Vec<u8>, &'static str) {
    let mut ts = vec![1, 1, 8, 10];
    ts.extend(r.bytes(8));
    match r.below(if syn { 6 } else { 4 }) {
        0 => (Vec::new(), "noopts"),
        1 => (ts, "opts-ts"),
        2 => {
            // NOP NOP TS + NOP NOP SACK with 3 blocks: 40 bytes, data offset 15
            let mut o = ts;
            o.extend_from_slice(&[1, 1, 5, 26]);
            o.extend(r.bytes(24));
            (o, "opts-sack40")
        }
        3 => (vec![2, 4, 0x05, 0xb4], "opts-mss"),
        _ => {
            let mut o = vec![2, 4, 0x05, 0xb4, 4, 2, 8, 10];
            o.extend(r.bytes(8));
            o.extend_from_slice(&[1, 3, 3, 7]);
            (o, "opts-syn20")
        }
    }
}

/// A random TCP segment of at most `room` bytes.
fn rand_tcp(r: &mut Rng, p: Pseudo, room: usize) -> L4 {
    let (fname, flags) = r.pick(TCP_FLAG_SETS);
    let (opts, odesc) = tcp_options(r, flags & TCP_SYN != 0);
    let (sport, dport) = ports(r);
    let mut n = payload_len(r);
    if flags & (TCP_SYN | TCP_RST) != 0 && r.chance(3, 4) {
        n = 0;
    }
    let n = n.min(room.saturating_sub(20 + opts.len()));
    let payload = app_payload(r, sport, dport, n);
    let ack = if flags & TCP_ACK != 0 { r.u32() } else { 0 };
    let urp = if flags & TCP_URG != 0 { r.u16() } else { 0 };
    let win = r.pick(&[65535, 64240, 502, 0, 29200]);
    let seg = tcp_seg(
        p,
        sport,
        dport,
        r.u32(),
        ack,
        flags,
        win,
        urp,
        &opts,
        &payload,
    );
    L4 {
        proto: 6,
        seg,
        desc: format!("tcp-{fname}-{odesc}-{sport}-{dport}-pay{n}"),
    }
}

/// A random UDP datagram of at most `room` bytes.
fn rand_udp(r: &mut Rng, p: Pseudo, room: usize) -> L4 {
    let (sport, dport) = ports(r);
    let n = payload_len(r).min(room.saturating_sub(8));
    let payload = if sport == 53 || dport == 53 {
        let mut d = dns_payload(r, n);
        d.truncate(room.saturating_sub(8));
        d
    } else {
        app_payload(r, sport, dport, n)
    };
    let seg = udp_seg(p, sport, dport, &payload);
    L4 {
        proto: 17,
        desc: format!("udp-{sport}-{dport}-pay{}", payload.len()),
        seg,
    }
}

/// A random ICMPv4 message of at most `room` bytes, from `src` to `dst`.
fn rand_icmp4(r: &mut Rng, src: [u8; 4], dst: [u8; 4], room: usize) -> L4 {
    let (seg, desc) = match r.below(5) {
        0 | 1 => {
            let (typ, name) = r.pick(&[(8, "echo-request"), (0, "echo-reply")]);
            let n = if r.chance(1, 2) { 56 } else { payload_len(r) };
            let body = fill_to(r, Vec::new(), n.min(room.saturating_sub(8)));
            let mut rest = [0u8; 4];
            rest[..2].copy_from_slice(&r.u16().to_be_bytes());
            rest[2..].copy_from_slice(&(r.range(0, 500) as u16).to_be_bytes());
            (icmp4_msg(typ, 0, rest, &body), name.to_string())
        }
        2 | 3 => {
            // an error quoting the offending datagram (dst -> src), IP header + 8 bytes
            let (typ, code, name) = r.pick(&[
                (3, 3, "unreach-port"),
                (3, 1, "unreach-host"),
                (3, 4, "unreach-needfrag"),
                (3, 13, "unreach-admin"),
                (11, 0, "time-exceeded"),
            ]);
            let inner_ip = V4::new(r, dst, src, 17);
            let inner = rand_udp(r, Pseudo::V4(dst, src), 200);
            let mut quoted = inner_ip.packet(&inner.seg);
            quoted.truncate(28);
            let rest = if code == 4 {
                [0, 0, 0x05, 0xdc]
            } else {
                [0; 4]
            };
            (icmp4_msg(typ, code, rest, &quoted), name.to_string())
        }
        _ => {
            let body = r.bytes(12);
            (
                icmp4_msg(13, 0, [0, 1, 0, 1], &body),
                "timestamp".to_string(),
            )
        }
    };
    L4 {
        proto: 1,
        seg,
        desc: format!("icmp-{desc}"),
    }
}

// ---------------------------------------------------------------------------
// Kinds

fn gen_kind(r: &mut Rng, kind: usize) -> TestPacket {
    match kind {
        0 => k_ipv4_tcp(r),
        1 => k_ipv4_udp(r),
        2 => k_ipv4_icmp(r),
        3 => k_ipv4_igmp(r),
        4 => k_ipv4_proto(r),
        5 => k_ipv4_ipopts(r),
        6 => k_ipv4_frag(r),
        7 => k_ipv6_tcp(r),
        8 => k_ipv6_udp(r),
        9 => k_ipv6_icmp6(r),
        10 => k_ipv6_ext(r),
        11 => k_arp(r),
        12 => k_rarp(r),
        13 => k_vlan(r),
        14 => k_qinq(r),
        15 => k_llc(r),
        16 => k_ether(r),
        17 => k_trunc(r),
        18 => k_runt(r),
        _ => k_badlen(r),
    }
}

fn pkt(name: String, bytes: Vec<u8>) -> TestPacket {
    TestPacket { name, bytes }
}

const V4_ROOM: usize = MAX_UNTAGGED - 14 - 20;
const V6_ROOM: usize = MAX_UNTAGGED - 14 - 40;

fn df_tag(ip: &V4) -> &'static str {
    if ip.df { "-df" } else { "" }
}

fn k_ipv4_tcp(r: &mut Rng) -> TestPacket {
    let (src, dst) = (v4_unicast(r), v4_unicast(r));
    let ip = V4::new(r, src, dst, 6);
    let l4 = rand_tcp(r, Pseudo::V4(src, dst), V4_ROOM);
    let f = eth(
        mac_for_v4(r, dst),
        unicast_mac(r),
        0x0800,
        &ip.packet(&l4.seg),
    );
    pkt(format!("ipv4-{}{}", l4.desc, df_tag(&ip)), maybe_pad(r, f))
}

fn k_ipv4_udp(r: &mut Rng) -> TestPacket {
    let (src, dst) = (v4_unicast(r), v4_any(r));
    let ip = V4::new(r, src, dst, 17);
    let l4 = rand_udp(r, Pseudo::V4(src, dst), V4_ROOM);
    let f = eth(
        mac_for_v4(r, dst),
        unicast_mac(r),
        0x0800,
        &ip.packet(&l4.seg),
    );
    pkt(
        format!("ipv4-{}{}", l4.desc, dst_tag_v4(dst)),
        maybe_pad(r, f),
    )
}

fn k_ipv4_icmp(r: &mut Rng) -> TestPacket {
    let src = v4_unicast(r);
    let dst = if r.chance(1, 6) {
        v4_any(r)
    } else {
        v4_unicast(r)
    };
    let ip = V4::new(r, src, dst, 1);
    let l4 = rand_icmp4(r, src, dst, V4_ROOM);
    let f = eth(
        mac_for_v4(r, dst),
        unicast_mac(r),
        0x0800,
        &ip.packet(&l4.seg),
    );
    pkt(
        format!("ipv4-{}{}", l4.desc, dst_tag_v4(dst)),
        maybe_pad(r, f),
    )
}

fn k_ipv4_igmp(r: &mut Rng) -> TestPacket {
    let src = v4_unicast(r);
    let group = [239, r.u8(), r.u8(), r.range(1, 254) as u8];
    let (dst, msg, name) = match r.below(4) {
        0 => ([224, 0, 0, 1], icmp4_msg(0x11, 100, [0; 4], &[]), "query"),
        1 => (group, icmp4_msg(0x16, 0, group, &[]), "v2-report"),
        2 => ([224, 0, 0, 2], icmp4_msg(0x17, 0, group, &[]), "v2-leave"),
        _ => {
            let mut rec = vec![4, 0, 0, 0];
            rec.extend_from_slice(&group);
            (
                [224, 0, 0, 22],
                icmp4_msg(0x22, 0, [0, 0, 0, 1], &rec),
                "v3-report",
            )
        }
    };
    let mut ip = V4::new(r, src, dst, 2);
    ip.ttl = 1;
    ip.tos = 0xc0;
    let ra = r.chance(3, 4);
    if ra {
        ip.opts = vec![0x94, 4, 0, 0];
    }
    let f = eth(mac_for_v4(r, dst), unicast_mac(r), 0x0800, &ip.packet(&msg));
    pkt(
        format!("ipv4-igmp-{name}{}", if ra { "-ra" } else { "" }),
        maybe_pad(r, f),
    )
}

fn k_ipv4_proto(r: &mut Rng) -> TestPacket {
    let src = v4_unicast(r);
    let mut dst = v4_unicast(r);
    let (proto, body, name): (u8, Vec<u8>, &str) = match r.below(9) {
        0 | 1 => {
            let (isrc, idst) = (v4_unicast(r), v4_unicast(r));
            let inner = rand_udp(r, Pseudo::V4(isrc, idst), V4_ROOM - 40);
            let mut g = if r.chance(1, 2) {
                vec![0, 0, 8, 0]
            } else {
                vec![0x20, 0, 8, 0, 0, 0, 0, 42]
            };
            g.extend(V4::new(r, isrc, idst, 17).packet(&inner.seg));
            (47, g, "gre")
        }
        2 | 3 => {
            let (sport, dport) = ports(r);
            let mut s = Vec::new();
            s.extend_from_slice(&sport.to_be_bytes());
            s.extend_from_slice(&dport.to_be_bytes());
            s.extend(r.bytes(4)); // verification tag
            s.extend_from_slice(&[0; 4]);
            let n = r.range(1, 400);
            let data = r.bytes(n);
            let clen = 16 + data.len();
            s.extend_from_slice(&[0, 3]);
            s.extend_from_slice(&(clen as u16).to_be_bytes());
            s.extend(r.bytes(4)); // TSN
            s.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
            s.extend_from_slice(&data);
            s.resize(s.len().next_multiple_of(4), 0);
            let c = crc32c(&s);
            s[8..12].copy_from_slice(&c.to_le_bytes());
            (132, s, "sctp")
        }
        4 => {
            let n = r.range(16, 600);
            (50, r.bytes(n), "esp")
        }
        5 => {
            dst = [224, 0, 0, 13];
            (103, icmp4_msg(0x20, 0, [0, 1, 0, 2], &[0, 105]), "pim")
        }
        6 => {
            dst = [224, 0, 0, 18];
            let mut v = vec![0x21, r.range(1, 255) as u8, 100, 1, 0, 1, 0, 0];
            v.extend_from_slice(&src);
            v.extend_from_slice(&[0; 8]);
            let c = checksum(&v);
            v[6..8].copy_from_slice(&c.to_be_bytes());
            (112, v, "vrrp")
        }
        7 => {
            let inner_dst = v6_unicast(r);
            let inner_src = v6_unicast(r);
            let l4 = rand_udp(r, Pseudo::V6(inner_src, inner_dst), V6_ROOM - 40);
            (
                41,
                v6_packet(r, inner_src, inner_dst, 17, 64, &l4.seg),
                "ipv6-in-ipv4",
            )
        }
        _ => {
            let proto = r.pick(&[253, 255, 0, 4, 89]);
            let n = r.range(0, 300);
            (proto, r.bytes(n), "other")
        }
    };
    let mut ip = V4::new(r, src, dst, proto);
    if is_v4_mcast(dst) {
        ip.ttl = if proto == 112 { 255 } else { 1 };
    }
    let f = eth(
        mac_for_v4(r, dst),
        unicast_mac(r),
        0x0800,
        &ip.packet(&body),
    );
    pkt(format!("ipv4-proto-{proto}-{name}"), maybe_pad(r, f))
}

fn k_ipv4_ipopts(r: &mut Rng) -> TestPacket {
    let ihl = r.range(6, 15);
    let (opts, odesc) = ip_options(r, 4 * (ihl - 5));
    let src = v4_unicast(r);
    let dst = v4_unicast(r);
    let room = MAX_UNTAGGED - 14 - 4 * ihl;
    let l4 = match r.below(3) {
        0 | 1 => rand_tcp(r, Pseudo::V4(src, dst), room),
        _ => rand_udp(r, Pseudo::V4(src, dst), room),
    };
    let mut ip = V4::new(r, src, dst, l4.proto);
    ip.opts = opts;
    let f = eth(
        mac_for_v4(r, dst),
        unicast_mac(r),
        0x0800,
        &ip.packet(&l4.seg),
    );
    pkt(
        format!("ipv4-ipopts-ihl{ihl}-{odesc}-{}", l4.desc),
        maybe_pad(r, f),
    )
}

/// Fragment data that starts with bytes that look like well-known ports and
/// TCP flags, so a filter that wrongly reads ports in a non-first fragment matches.
fn decoy(r: &mut Rng, n: usize) -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&r.pick(&[53u16, 80, 22, 443, 9000]).to_be_bytes());
    d.extend_from_slice(&r.pick(&[53u16, 80, 22, 9003, 5000]).to_be_bytes());
    d.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, TCP_SYN, 0xff, 0xff]);
    fill_to(r, d, n)
}

fn k_ipv4_frag(r: &mut Rng) -> TestPacket {
    let src = v4_unicast(r);
    let dst = v4_unicast(r);
    let p = Pseudo::V4(src, dst);
    let mut l4 = if r.chance(1, 2) {
        rand_tcp(r, p, V4_ROOM)
    } else {
        rand_udp(r, p, V4_ROOM)
    };
    while l4.seg.len() < 64 {
        l4 = if r.chance(1, 2) {
            rand_tcp(r, p, V4_ROOM)
        } else {
            rand_udp(r, p, V4_ROOM)
        };
    }
    let pname = if l4.proto == 6 { "tcp" } else { "udp" };
    let mut ip = V4::new(r, src, dst, l4.proto);
    ip.df = false;
    let (data, name) = match r.below(6) {
        0 => {
            let hdr = if l4.proto == 6 {
                usize::from(l4.seg[12] >> 4) * 4
            } else {
                8
            };
            let cut = (r.range(hdr + 1, l4.seg.len() - 1) / 8 * 8).max(hdr.next_multiple_of(8));
            ip.mf = true;
            let data = l4.seg[..cut.min(l4.seg.len() - 1)].to_vec();
            (data, format!("first-{}", l4.desc))
        }
        1 => {
            ip.mf = true;
            (l4.seg[..8].to_vec(), format!("first-tiny-{}", l4.desc))
        }
        2 | 3 => {
            let mid = r.below(2) == 0;
            ip.mf = mid;
            let any = r.range(4, 7999) as u16;
            let off = r.pick(&[1u16, 2, 3, 185, 1000, any]);
            ip.frag = off;
            let n = if mid {
                8 * r.range(1, 180)
            } else {
                r.range(1, 1400)
            };
            let data = decoy(r, n);
            let which = if mid { "middle" } else { "last" };
            (data, format!("{which}-{pname}-offset-{off}"))
        }
        4 => {
            ip.frag = 8191;
            let n = r.range(1, 7);
            (decoy(r, n), format!("last-{pname}-offset-8191"))
        }
        _ => {
            ip.df = true;
            (l4.seg.clone(), format!("none-df-{}", l4.desc))
        }
    };
    let f = eth(
        mac_for_v4(r, dst),
        unicast_mac(r),
        0x0800,
        &ip.packet(&data),
    );
    pkt(format!("ipv4-frag-{name}"), maybe_pad(r, f))
}

fn k_ipv6_tcp(r: &mut Rng) -> TestPacket {
    let (src, dst) = (v6_unicast(r), v6_unicast(r));
    let l4 = rand_tcp(r, Pseudo::V6(src, dst), V6_ROOM);
    let ip = v6_packet(r, src, dst, 6, 64, &l4.seg);
    let f = eth(mac_for_v6(r, dst), unicast_mac(r), 0x86dd, &ip);
    pkt(
        format!("ipv6-{}{}", l4.desc, dst_tag_v6(dst)),
        maybe_pad(r, f),
    )
}

fn k_ipv6_udp(r: &mut Rng) -> TestPacket {
    let (src, dst) = (v6_unicast(r), v6_any(r));
    let l4 = rand_udp(r, Pseudo::V6(src, dst), V6_ROOM);
    let hlim = r.pick(&[64, 255, 1]);
    let ip = v6_packet(r, src, dst, 17, hlim, &l4.seg);
    let f = eth(mac_for_v6(r, dst), unicast_mac(r), 0x86dd, &ip);
    pkt(
        format!("ipv6-{}{}", l4.desc, dst_tag_v6(dst)),
        maybe_pad(r, f),
    )
}

/// A random ICMPv6 message: (src, dst, hop limit, message, name).
fn rand_icmp6(r: &mut Rng, room: usize) -> ([u8; 16], [u8; 16], u8, Vec<u8>, &'static str) {
    let mac = unicast_mac(r);
    let ll = v6([0xfe80, 0, 0, 0, 0, 0, 0, r.pick(&[1, 2, 0x1234])]);
    match r.below(7) {
        0 | 1 => {
            let src = v6_unicast(r);
            let dst = if r.chance(1, 4) {
                v6([0xff02, 0, 0, 0, 0, 0, 0, 1])
            } else {
                v6_unicast(r)
            };
            let (typ, name) = r.pick(&[(128u8, "echo-request"), (129, "echo-reply")]);
            let mut body = Vec::new();
            body.extend_from_slice(&r.u16().to_be_bytes());
            body.extend_from_slice(&(r.range(0, 500) as u16).to_be_bytes());
            let n = payload_len(r).min(room - 8);
            body.extend(r.bytes(n));
            (
                src,
                dst,
                64,
                icmp6_msg(Pseudo::V6(src, dst), typ, 0, &body),
                name,
            )
        }
        2 => {
            // neighbor solicitation to the solicited-node group of the target (or DAD from ::)
            let target = v6_unicast(r);
            let dad = r.chance(1, 4);
            let src = if dad { [0; 16] } else { ll };
            let mut dst = v6([0xff02, 0, 0, 0, 0, 1, 0xff00, 0]);
            dst[13..].copy_from_slice(&target[13..]);
            let mut body = vec![0; 4];
            body.extend_from_slice(&target);
            if !dad {
                body.extend_from_slice(&[1, 1]);
                body.extend_from_slice(&mac);
            }
            let name = if dad {
                "neighbor-solicit-dad"
            } else {
                "neighbor-solicit"
            };
            (
                src,
                dst,
                255,
                icmp6_msg(Pseudo::V6(src, dst), 135, 0, &body),
                name,
            )
        }
        3 => {
            let target = v6_unicast(r);
            let dst = if r.chance(1, 2) {
                v6([0xff02, 0, 0, 0, 0, 0, 0, 1])
            } else {
                ll
            };
            let mut body = vec![0x60, 0, 0, 0];
            body.extend_from_slice(&target);
            body.extend_from_slice(&[2, 1]);
            body.extend_from_slice(&mac);
            (
                target,
                dst,
                255,
                icmp6_msg(Pseudo::V6(target, dst), 136, 0, &body),
                "neighbor-advert",
            )
        }
        4 => {
            let dst = v6([0xff02, 0, 0, 0, 0, 0, 0, 2]);
            let mut body = vec![0; 4];
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&mac);
            (
                ll,
                dst,
                255,
                icmp6_msg(Pseudo::V6(ll, dst), 133, 0, &body),
                "router-solicit",
            )
        }
        5 => {
            let dst = v6([0xff02, 0, 0, 0, 0, 0, 0, 1]);
            let mut body = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
            body.extend_from_slice(&[
                3, 4, 64, 0xc0, 0, 0x27, 0x8d, 0, 0, 0, 0x3a, 0x98, 0, 0, 0, 0,
            ]);
            body.extend_from_slice(&v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]));
            (
                ll,
                dst,
                255,
                icmp6_msg(Pseudo::V6(ll, dst), 134, 0, &body),
                "router-advert",
            )
        }
        _ => {
            let src = v6_unicast(r);
            let dst = v6_unicast(r);
            let inner = rand_udp(r, Pseudo::V6(dst, src), 100);
            let mut quoted = v6_packet(r, dst, src, 17, 64, &inner.seg);
            quoted.truncate(r.range(48, quoted.len()));
            let (typ, name) = r.pick(&[
                (1u8, "unreach"),
                (2, "packet-too-big"),
                (3, "time-exceeded"),
            ]);
            let mut body = if typ == 2 {
                vec![0, 0, 0x05, 0x00]
            } else {
                vec![0; 4]
            };
            body.extend_from_slice(&quoted);
            (
                src,
                dst,
                64,
                icmp6_msg(
                    Pseudo::V6(src, dst),
                    typ,
                    if typ == 1 { 4 } else { 0 },
                    &body,
                ),
                name,
            )
        }
    }
}

fn k_ipv6_icmp6(r: &mut Rng) -> TestPacket {
    let (src, dst, hlim, msg, name) = rand_icmp6(r, V6_ROOM);
    let ip = v6_packet(r, src, dst, 58, hlim, &msg);
    let f = eth(mac_for_v6(r, dst), unicast_mac(r), 0x86dd, &ip);
    pkt(
        format!("ipv6-icmp6-{name}{}", dst_tag_v6(dst)),
        maybe_pad(r, f),
    )
}

fn k_ipv6_ext(r: &mut Rng) -> TestPacket {
    let src = v6_unicast(r);
    let variant = r.below(7);
    let mld = variant == 6;
    let dst = if mld {
        v6([0xff02, 0, 0, 0, 0, 0, 0, 0x16])
    } else {
        v6_unicast(r)
    };
    let p = Pseudo::V6(src, dst);
    // upper layer
    let room = V6_ROOM - 64;
    let l4 = if mld {
        let mut rec = vec![0, 0, 0, 1, 4, 0, 0, 0];
        rec.extend_from_slice(&v6([0xff05, 0, 0, 0, 0, 0, 1, 3]));
        L4 {
            proto: 58,
            seg: icmp6_msg(p, 143, 0, &rec),
            desc: "mld-report".into(),
        }
    } else {
        match r.below(3) {
            0 => rand_tcp(r, p, room),
            1 => rand_udp(r, p, room),
            _ => {
                let mut body = r.u32().to_be_bytes().to_vec();
                let n = r.range(0, 64);
                body.extend(r.bytes(n));
                L4 {
                    proto: 58,
                    seg: icmp6_msg(p, 128, 0, &body),
                    desc: "icmp6-echo-request".into(),
                }
            }
        }
    };
    let pname = match l4.proto {
        6 => "tcp",
        17 => "udp",
        _ => "icmp6",
    };
    let hbh = |nh: u8| vec![nh, 0, 5, 2, 0, 0, 1, 0];
    let dstopts = |nh: u8| vec![nh, 0, 1, 4, 0, 0, 0, 0];
    let frag = |nh: u8, off: u16, m: bool, id: u32| {
        let mut h = vec![nh, 0];
        h.extend_from_slice(&((off << 3) | u16::from(m)).to_be_bytes());
        h.extend_from_slice(&id.to_be_bytes());
        h
    };
    let id = r.u32();
    let (first_nh, mut payload, name) = match variant {
        0 => (0, hbh(l4.proto), format!("hbh-{}", l4.desc)),
        1 => (60, dstopts(l4.proto), format!("dstopts-{}", l4.desc)),
        2 => {
            let mut h = hbh(60);
            h.extend(dstopts(l4.proto));
            (0, h, format!("hbh-dstopts-{}", l4.desc))
        }
        3 => {
            // segment routing header with one segment (the destination), segments left 0
            let mut h = vec![l4.proto, 2, 4, 0, 0, 0, 0, 0];
            h.extend_from_slice(&dst);
            (43, h, format!("srh-{}", l4.desc))
        }
        4 => {
            let mut h = frag(l4.proto, 0, true, id);
            let cut = (l4.seg.len() / 2)
                .next_multiple_of(8)
                .max(8)
                .min(l4.seg.len());
            h.extend_from_slice(&l4.seg[..cut]);
            let payload = h;
            let f = eth(
                mac_for_v6(r, dst),
                unicast_mac(r),
                0x86dd,
                &v6_packet(r, src, dst, 44, 64, &payload),
            );
            return pkt(format!("ipv6-ext-frag-first-{}", l4.desc), maybe_pad(r, f));
        }
        5 => {
            let any = r.range(4, 8000) as u16;
            let off = r.pick(&[1u16, 3, 185, any]);
            let m = r.chance(1, 2);
            let mut h = frag(l4.proto, off, m, id);
            let n = if m {
                8 * r.range(1, 100)
            } else {
                r.range(1, 800)
            };
            h.extend(decoy(r, n));
            let f = eth(
                mac_for_v6(r, dst),
                unicast_mac(r),
                0x86dd,
                &v6_packet(r, src, dst, 44, 64, &h),
            );
            let which = if m { "middle" } else { "last" };
            return pkt(
                format!("ipv6-ext-frag-{which}-offset-{off}-{pname}"),
                maybe_pad(r, f),
            );
        }
        _ => (0, hbh(58), "hbh-mld-report".to_string()),
    };
    payload.extend_from_slice(&l4.seg);
    let hlim = if mld { 1 } else { 64 };
    let ip = v6_packet(r, src, dst, first_nh, hlim, &payload);
    let f = eth(mac_for_v6(r, dst), unicast_mac(r), 0x86dd, &ip);
    pkt(
        format!("ipv6-ext-{name}{}", dst_tag_v6(dst)),
        maybe_pad(r, f),
    )
}

fn k_arp(r: &mut Rng) -> TestPacket {
    let (mac_s, mac_t) = (unicast_mac(r), unicast_mac(r));
    let (spa, tpa) = (v4_unicast(r), v4_unicast(r));
    let (dst, body, name) = match r.below(4) {
        0 | 1 => (MAC_BCAST, arp_body(1, mac_s, spa, [0; 6], tpa), "request"),
        2 => (mac_t, arp_body(2, mac_s, spa, mac_t, tpa), "reply"),
        _ => {
            if r.chance(1, 2) {
                (
                    MAC_BCAST,
                    arp_body(1, mac_s, spa, [0; 6], spa),
                    "gratuitous",
                )
            } else {
                (MAC_BCAST, arp_body(1, mac_s, [0; 4], [0; 6], tpa), "probe")
            }
        }
    };
    let f = eth(dst, mac_s, 0x0806, &body);
    pkt(format!("arp-{name}"), maybe_pad(r, f))
}

fn k_rarp(r: &mut Rng) -> TestPacket {
    let (mac_s, mac_t) = (unicast_mac(r), unicast_mac(r));
    let (dst, body, name) = if r.chance(1, 2) {
        (
            MAC_BCAST,
            arp_body(3, mac_s, [0; 4], mac_s, [0; 4]),
            "request",
        )
    } else {
        (
            mac_t,
            arp_body(4, mac_s, v4_unicast(r), mac_t, v4_unicast(r)),
            "reply",
        )
    };
    let f = eth(dst, mac_s, 0x8035, &body);
    pkt(format!("rarp-{name}"), maybe_pad(r, f))
}

fn vlan_id(r: &mut Rng) -> u16 {
    match r.below(8) {
        0 | 1 => 100,
        2 | 3 => 200,
        4 => 1,
        5 => 4094,
        6 => 0, // priority tag
        _ => r.range(2, 4093) as u16,
    }
}

fn tci(r: &mut Rng, vid: u16) -> u16 {
    let pcp = if r.chance(1, 2) {
        r.range(0, 7) as u16
    } else {
        0
    };
    let dei = u16::from(r.chance(1, 8));
    (pcp << 13) | (dei << 12) | vid
}

/// An untagged frame to be tagged.
fn inner_frame(r: &mut Rng) -> TestPacket {
    match r.below(10) {
        0 | 1 => k_ipv4_udp(r),
        2 => k_ipv4_tcp(r),
        3 => k_ipv4_icmp(r),
        4 => k_ipv4_frag(r),
        5 => k_ipv6_udp(r),
        6 => k_ipv6_tcp(r),
        7 => k_ipv6_icmp6(r),
        8 => k_ipv4_ipopts(r),
        _ => k_arp(r),
    }
}

fn k_vlan(r: &mut Rng) -> TestPacket {
    let inner = inner_frame(r);
    let vid = vlan_id(r);
    let tpid = r.pick(&[0x8100, 0x8100, 0x8100, 0x8100, 0x8100, 0x88a8, 0x9100]);
    let t = tci(r, vid);
    let f = vlan_tag(&inner.bytes, tpid, t);
    let tp = if tpid == 0x8100 {
        String::new()
    } else {
        format!("tpid{tpid:04x}-")
    };
    pkt(format!("vlan-{tp}{vid}-{}", inner.name), f)
}

fn k_qinq(r: &mut Rng) -> TestPacket {
    let inner = inner_frame(r);
    let (ovid, ivid) = (vlan_id(r), vlan_id(r));
    let outer_tpid = r.pick(&[0x88a8, 0x88a8, 0x8100, 0x9100]);
    let (it, ot) = (tci(r, ivid), tci(r, ovid));
    let f = vlan_tag(&vlan_tag(&inner.bytes, 0x8100, it), outer_tpid, ot);
    pkt(
        format!("qinq-{outer_tpid:04x}-{ovid}-{ivid}-{}", inner.name),
        f,
    )
}

/// An 802.3 frame: the length field, then the LLC payload.
fn dot3(dst: [u8; 6], src: [u8; 6], llc: &[u8]) -> Vec<u8> {
    eth(dst, src, llc.len() as u16, llc)
}

fn k_llc(r: &mut Rng) -> TestPacket {
    let src = unicast_mac(r);
    let (f, name) = match r.below(10) {
        0 | 1 => {
            // spanning tree configuration or RSTP BPDU
            let rstp = r.chance(1, 2);
            let mut b = vec![
                0x42,
                0x42,
                0x03,
                0,
                0,
                if rstp { 2 } else { 0 },
                if rstp { 2 } else { 0 },
            ];
            b.push(if rstp { 0x3c } else { 0 });
            b.extend_from_slice(&[0x80, 0]);
            b.extend_from_slice(&src);
            b.extend_from_slice(&[0, 0, 0, 4, 0x80, 0]);
            b.extend_from_slice(&src);
            b.extend_from_slice(&[0x80, 0x01, 0, 0, 0x14, 0, 0x02, 0, 0x0f, 0]);
            if rstp {
                b.push(0);
            }
            (
                dot3(MAC_STP, src, &b),
                if rstp { "stp-rstp" } else { "stp-config" },
            )
        }
        2 => {
            // CDP over SNAP
            let mut b = vec![0xaa, 0xaa, 0x03, 0, 0, 0x0c, 0x20, 0x00, 2, 180, 0, 0];
            b.extend_from_slice(&[0, 1, 0, 11]);
            b.extend_from_slice(b"switch1");
            let c = checksum(&b[8..]);
            b[10..12].copy_from_slice(&c.to_be_bytes());
            (
                dot3([0x01, 0x00, 0x0c, 0xcc, 0xcc, 0xcc], src, &b),
                "snap-cdp",
            )
        }
        3 => {
            // RFC 1042: IPv4 over SNAP (not `ip` for libpcap on Ethernet)
            let (s, d) = (v4_unicast(r), v4_unicast(r));
            let l4 = rand_udp(r, Pseudo::V4(s, d), 1400);
            let mut b = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x00];
            b.extend(V4::new(r, s, d, 17).packet(&l4.seg));
            (dot3(unicast_mac(r), src, &b), "snap-ipv4")
        }
        4 => {
            let mut b = vec![0xaa, 0xaa, 0x03, 0, 0, 0, 0x08, 0x06];
            b.extend(arp_body(1, src, v4_unicast(r), [0; 6], [10, 0, 0, 1]));
            (dot3(MAC_BCAST, src, &b), "snap-arp")
        }
        5 => {
            // NetBEUI: LLC F0 F0 UI, then a NetBIOS frame header
            let mut b = vec![
                0xf0, 0xf0, 0x03, 0x2c, 0x00, 0xff, 0xef, 0x08, 0, 0, 0, 0, 0, 0, 0,
            ];
            b.extend_from_slice(b"WORKGROUP      \x00");
            b.extend_from_slice(b"HOST1          \x00");
            (dot3([0x03, 0, 0, 0, 0, 0x01], src, &b), "netbeui")
        }
        6 => {
            // IPX: over LLC E0 E0, or "raw 802.3" starting with the FFFF checksum
            let raw = r.chance(1, 2);
            let mut b = if raw {
                Vec::new()
            } else {
                vec![0xe0, 0xe0, 0x03]
            };
            let n = r.range(0, 64);
            let data = r.bytes(n);
            b.extend_from_slice(&[0xff, 0xff]);
            b.extend_from_slice(&((30 + data.len()) as u16).to_be_bytes());
            b.extend_from_slice(&[0, 4, 0, 0, 0, 0]);
            b.extend_from_slice(&MAC_BCAST);
            b.extend_from_slice(&[0x04, 0x52, 0, 0, 0, 1]);
            b.extend_from_slice(&src);
            b.extend_from_slice(&[0x40, 0x05]);
            b.extend_from_slice(&data);
            (
                dot3(MAC_BCAST, src, &b),
                if raw { "ipx-raw" } else { "ipx" },
            )
        }
        7 => {
            // ISO ES-IS hello
            let mut b = vec![
                0xfe, 0xfe, 0x03, 0x82, 15, 1, 0, 2, 0, 180, 0, 0, 9, 0x49, 0, 1,
            ];
            b.extend_from_slice(&src);
            b.push(0);
            (dot3([0x09, 0, 0x2b, 0, 0, 0x04], src, &b), "iso-esis")
        }
        8 => {
            // LLC I-frame (two-byte control field), e.g. SNA
            let mut b = vec![0x04, 0x04, 0x00, 0x02];
            let n = r.range(0, 100);
            b.extend(r.bytes(n));
            (dot3(unicast_mac(r), src, &b), "i-frame")
        }
        _ => {
            // length-field corners: 1500 claimed but short, or 1501..1535 (neither length nor type)
            let field = r.pick(&[0x05dcu16, 0x05dd, 0x05ff, 0x0000]);
            let mut f = eth(unicast_mac(r), src, field, &[0x42, 0x42, 0x03]);
            let n = r.range(0, 100);
            f.extend(r.bytes(n));
            return pkt(format!("llc-lenfield-{field:04x}"), maybe_pad(r, f));
        }
    };
    pkt(format!("llc-{name}"), maybe_pad(r, f))
}

fn k_ether(r: &mut Rng) -> TestPacket {
    let src = unicast_mac(r);
    let (dst, ethertype, body, name): ([u8; 6], u16, Vec<u8>, &str) = match r.below(10) {
        0 | 1 => {
            let mut b = vec![0x02, 0x07, 0x04];
            b.extend_from_slice(&src);
            b.extend_from_slice(&[0x04, 0x06, 0x05]);
            b.extend_from_slice(b"eth0\x00");
            b.extend_from_slice(&[0x06, 0x02, 0, 120, 0, 0]);
            (MAC_LLDP, 0x88cc, b, "lldp")
        }
        2 | 3 => {
            let (s, d) = (v4_unicast(r), v4_unicast(r));
            let l4 = rand_udp(r, Pseudo::V4(s, d), 1400);
            let two = r.chance(1, 2);
            let mut b = Vec::new();
            if two {
                b.extend_from_slice(&[0x00, 0x01, 0x00, 0x40]);
            }
            b.extend_from_slice(&[0x00, 0x02, 0x01, 0x40]);
            b.extend(V4::new(r, s, d, 17).packet(&l4.seg));
            (
                unicast_mac(r),
                0x8847,
                b,
                if two { "mpls2" } else { "mpls" },
            )
        }
        4 => {
            let b = vec![0x11, 0x09, 0, 0, 0, 4, 0x01, 0x01, 0, 0];
            (MAC_BCAST, 0x8863, b, "pppoe-padi")
        }
        5 => {
            let (s, d) = (v4_unicast(r), v4_unicast(r));
            let l4 = rand_udp(r, Pseudo::V4(s, d), 1400);
            let ip = V4::new(r, s, d, 17).packet(&l4.seg);
            let mut b = vec![0x11, 0x00, 0x12, 0x34];
            b.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
            b.extend_from_slice(&[0x00, 0x21]);
            b.extend(ip);
            (unicast_mac(r), 0x8864, b, "pppoe-session-ipv4")
        }
        6 => {
            let (t, name) = r.pick(&[
                (0x6003u16, "decnet"),
                (0x809b, "atalk"),
                (0x80f3, "aarp"),
                (0x8137, "ipx"),
            ]);
            let n = r.range(20, 120);
            (unicast_mac(r), t, r.bytes(n), name)
        }
        7 => {
            let b = vec![0x01, 0x01, 0, 0];
            ([0x01, 0x80, 0xc2, 0, 0, 0x03], 0x888e, b, "eapol-start")
        }
        8 => {
            let mut b = vec![0, 0, 1, 0];
            b.extend_from_slice(&src);
            b.extend_from_slice(&[1, 0, 0, 0]);
            ([0xcf, 0, 0, 0, 0, 0], 0x9000, b, "loopback")
        }
        _ => {
            let t = r.range(0x0600, 0xffff) as u16;
            let n = r.range(0, 200);
            (unicast_mac(r), t, r.bytes(n), "random-type")
        }
    };
    let f = eth(dst, src, ethertype, &body);
    pkt(format!("ether-{name}-{ethertype:04x}"), maybe_pad(r, f))
}

/// Ethernet + IPv4 with `l4`, possibly with IP options; returns the frame and the IP header length.
fn v4_frame_with(r: &mut Rng, tcp: bool) -> (Vec<u8>, usize) {
    let (src, dst) = (v4_unicast(r), v4_unicast(r));
    let mut ip = V4::new(r, src, dst, if tcp { 6 } else { 17 });
    if r.chance(1, 3) {
        let n = r.range(1, 10);
        ip.opts = ip_options(r, 4 * n).0;
    }
    let p = Pseudo::V4(src, dst);
    let room = MAX_UNTAGGED - 14 - ip.hdr_len();
    let l4 = if tcp {
        rand_tcp(r, p, room)
    } else {
        rand_udp(r, p, room)
    };
    (
        eth(
            mac_for_v4(r, dst),
            unicast_mac(r),
            0x0800,
            &ip.packet(&l4.seg),
        ),
        ip.hdr_len(),
    )
}

fn k_trunc(r: &mut Rng) -> TestPacket {
    let (mut f, name) = match r.below(9) {
        0 => {
            let t = r.pick(&[0x0800u16, 0x86dd, 0x0806, 0x8100, 0x88a8, 0x8035]);
            (
                eth(unicast_mac(r), unicast_mac(r), t, &[]),
                format!("after-ethertype-{t:04x}"),
            )
        }
        1 => {
            let tcp = r.chance(1, 2);
            let (mut f, ihl) = v4_frame_with(r, tcp);
            let at = 14 + r.range(1, ihl - 1);
            f.truncate(at);
            (f, format!("in-ipv4-hdr-ihl{}-at-{at}", ihl / 4))
        }
        2 | 3 => {
            let (mut f, ihl) = v4_frame_with(r, true);
            let doff = usize::from(f[14 + ihl + 12] >> 4) * 4;
            let at = 14 + ihl + r.range(1, doff - 1);
            f.truncate(at);
            (f, format!("in-tcp-hdr-at-{at}"))
        }
        4 => {
            let (mut f, ihl) = v4_frame_with(r, false);
            let at = 14 + ihl + r.range(1, 7);
            f.truncate(at);
            (f, format!("in-udp-hdr-at-{at}"))
        }
        5 => {
            let mut f = if r.chance(1, 2) {
                k_ipv6_tcp(r).bytes
            } else {
                k_ipv6_udp(r).bytes
            };
            let at = 14 + r.range(1, 39);
            f.truncate(at);
            (f, format!("in-ipv6-hdr-at-{at}"))
        }
        6 => {
            let mut f = k_ipv6_tcp(r).bytes;
            let at = 54 + r.range(1, 19);
            f.truncate(at);
            (f, format!("in-ipv6-tcp-hdr-at-{at}"))
        }
        7 => {
            let vid = vlan_id(r);
            let inner = k_ipv4_udp(r).bytes;
            let mut f = vlan_tag(&inner, 0x8100, vid);
            let in_ip = 18 + r.range(1, 19);
            let at = r.pick(&[14, 15, 16, 17, in_ip]);
            f.truncate(at);
            (f, format!("in-vlan-{vid}-at-{at}"))
        }
        _ => {
            let tcp = r.chance(1, 2);
            let (mut f, ihl) = v4_frame_with(r, tcp);
            let l4_hdr = if f[14 + 9] == 6 { 20 } else { 8 };
            let min = 14 + ihl + l4_hdr + 40;
            if f.len() > min + 1 {
                let at = r.range(min, f.len() - 1);
                f.truncate(at);
                (f, format!("in-payload-at-{at}"))
            } else {
                f.truncate(14 + ihl + 2);
                (f, "in-l4-ports".to_string())
            }
        }
    };
    f.truncate(MAX_UNTAGGED);
    pkt(format!("trunc-{name}"), f)
}

fn k_runt(r: &mut Rng) -> TestPacket {
    let len = r.range(14, 20);
    let any = r.u16();
    let t = r.pick(&[0x0800u16, 0x0800, 0x86dd, 0x0806, 0x8100, 0x0026, any]);
    let dst = if r.chance(1, 4) {
        MAC_BCAST
    } else {
        unicast_mac(r)
    };
    let mut f = eth(dst, unicast_mac(r), t, &[]);
    match t {
        0x0800 => f.extend_from_slice(&[0x45, 0x00, 0x00, 0x54, 0x12, 0x34]),
        0x86dd => f.extend_from_slice(&[0x60, 0, 0, 0, 0, 0x20]),
        0x8100 => f.extend_from_slice(&[0x00, 0x64, 0x08, 0x00, 0x45, 0x00]),
        _ => f.extend(r.bytes(6)),
    }
    f.truncate(len);
    pkt(format!("runt-{t:04x}-{len}"), f)
}

fn k_badlen(r: &mut Rng) -> TestPacket {
    let src = v4_unicast(r);
    let dst = v4_unicast(r);
    let mut ip = V4::new(r, src, dst, 17);
    if r.chance(1, 4) {
        ip.opts = vec![1, 1, 1, 0];
    }
    let tcp = r.chance(1, 2);
    ip.proto = if tcp { 6 } else { 17 };
    let p = Pseudo::V4(src, dst);
    let room = 1200;
    let l4 = if tcp {
        rand_tcp(r, p, room)
    } else {
        rand_udp(r, p, room)
    };
    let actual = ip.hdr_len() + l4.seg.len();
    let build = |ip: &V4, total: usize, seg: &[u8]| {
        let mut b = ip.header(total as u16);
        b.extend_from_slice(seg);
        b
    };
    let (body, name) = match r.below(6) {
        0 => {
            let total = actual + r.range(1, 1000);
            (
                build(&ip, total, &l4.seg),
                format!("ipv4-totlen-gt-frame-{total}"),
            )
        }
        1 => {
            let mut b = build(&ip, actual, &l4.seg);
            let n = r.range(1, 200).min(MAX_UNTAGGED - 14 - b.len());
            b.extend(r.bytes(n));
            (b, format!("ipv4-trailing-{n}"))
        }
        2 => {
            let total = r.range(0, ip.hdr_len() - 1);
            (
                build(&ip, total, &l4.seg),
                format!("ipv4-totlen-lt-hdr-{total}"),
            )
        }
        3 => {
            let total = ip.hdr_len() + r.range(1, 7);
            (
                build(&ip, total, &l4.seg),
                format!("ipv4-totlen-in-l4-hdr-{total}"),
            )
        }
        4 => {
            // UDP length field disagreeing with the datagram
            let n = r.range(0, 100);
            let data = r.bytes(n);
            let mut seg = udp_seg(p, 9000, 53, &data);
            let ulen = r.pick(&[0u16, 4, 7, 9, 1000, seg.len() as u16 + 8]);
            seg[4..6].copy_from_slice(&ulen.to_be_bytes());
            ip.proto = 17;
            (ip.packet(&seg), format!("udp-len-{ulen}"))
        }
        _ => {
            // IPv6 payload length disagreeing with the frame
            let (s6, d6) = (v6_unicast(r), v6_unicast(r));
            let l4 = rand_udp(r, Pseudo::V6(s6, d6), 1000);
            let mut b = v6_packet(r, s6, d6, 17, 64, &l4.seg);
            let plen = r.pick(&[
                0u16,
                1,
                (l4.seg.len() + 100) as u16,
                l4.seg.len().saturating_sub(4) as u16,
            ]);
            b[4..6].copy_from_slice(&plen.to_be_bytes());
            let f = eth(unicast_mac(r), unicast_mac(r), 0x86dd, &b);
            return pkt(format!("badlen-ipv6-plen-{plen}"), maybe_pad(r, f));
        }
    };
    let f = eth(mac_for_v4(r, dst), unicast_mac(r), 0x0800, &body);
    pkt(format!("badlen-{name}"), maybe_pad(r, f))
}

// ---------------------------------------------------------------------------

/// A UDP frame 10.0.0.1:40000 → 10.0.0.2:`dport` whose payload starts with
/// `sequence` (big-endian u64), padded to `payload_len` bytes; see
/// [`sequence_and_port`].
pub fn numbered_udp_frame(dport: u16, sequence: u64, payload_len: usize) -> Vec<u8> {
    let mut payload = sequence.to_be_bytes().to_vec();
    payload.resize(payload_len.max(8), 0x5a);
    ipv4_udp_frame(
        [2, 0, 0, 0, 0, 2],
        [2, 0, 0, 0, 0, 1],
        [10, 0, 0, 1],
        [10, 0, 0, 2],
        40000,
        dport,
        &payload,
    )
}

/// The sequence number and destination port of a frame made by
/// [`numbered_udp_frame`] (the frame may be cut short after the sequence).
pub fn sequence_and_port(frame: &[u8]) -> (u64, u16) {
    let port = u16::from_be_bytes([frame[36], frame[37]]);
    let sequence = u64::from_be_bytes(frame[42..50].try_into().expect("8 bytes"));
    (sequence, port)
}

/// An IPv4 TCP segment with `flags`, behind `vlan_tags` 802.1Q tags.
pub fn tcp_frame(flags: u8, vlan_tags: usize) -> Vec<u8> {
    let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for _ in 0..vlan_tags {
        frame.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    }
    frame.extend_from_slice(&[0x08, 0x00]);
    let mut ip = vec![
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    let mut tcp = vec![0u8; 20];
    tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
    tcp[2..4].copy_from_slice(&80u16.to_be_bytes());
    tcp[12] = 5 << 4;
    tcp[13] = flags;
    frame.append(&mut ip);
    frame.append(&mut tcp);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::Command;

    fn kind_of(name: &str) -> Option<&'static str> {
        KINDS.iter().copied().find(|k| {
            name.strip_prefix(k)
                .is_some_and(|rest| rest.starts_with('-'))
        })
    }

    /// `Some(ok)` if the frame holds a complete IPv4 header (behind any VLAN tags).
    fn ipv4_checksum_ok(f: &[u8]) -> Option<bool> {
        let mut off = 12;
        while f.len() >= off + 4
            && matches!(
                u16::from_be_bytes([f[off], f[off + 1]]),
                0x8100 | 0x88a8 | 0x9100
            )
        {
            off += 4;
        }
        if f.len() < off + 2 || u16::from_be_bytes([f[off], f[off + 1]]) != 0x0800 {
            return None;
        }
        let ip = &f[off + 2..];
        if ip.is_empty() || ip[0] >> 4 != 4 {
            return None;
        }
        let ihl = usize::from(ip[0] & 0xf) * 4;
        if ihl < 20 || ip.len() < ihl {
            return None;
        }
        Some(checksum(&ip[..ihl]) == 0)
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pktd-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn write_pcap(path: &Path, pkts: &[TestPacket]) {
        let mut out = Vec::new();
        out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        out.extend_from_slice(&2u16.to_le_bytes());
        out.extend_from_slice(&4u16.to_le_bytes());
        out.extend_from_slice(&0i32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&65535u32.to_le_bytes());
        out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        for (i, p) in pkts.iter().enumerate() {
            out.extend_from_slice(&(1_700_000_000 + i as u32).to_le_bytes());
            out.extend_from_slice(&0u32.to_le_bytes());
            out.extend_from_slice(&(p.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&(p.bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(&p.bytes);
        }
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn corpus_is_deterministic_and_well_formed() {
        let a = packets(500, 1);
        assert_eq!(a, packets(500, 1));
        assert_ne!(a, packets(500, 2));
        assert_eq!(a.len(), 500);
        let mut kinds = std::collections::BTreeSet::new();
        let mut checked = 0;
        for p in &a {
            assert!(
                (MIN_LEN..=MAX_LEN).contains(&p.bytes.len()),
                "{}: length {}",
                p.name,
                p.bytes.len()
            );
            kinds.insert(kind_of(&p.name).unwrap_or_else(|| panic!("{}: unknown kind", p.name)));
            if let Some(ok) = ipv4_checksum_ok(&p.bytes) {
                assert!(ok, "{}: bad IPv4 header checksum", p.name);
                checked += 1;
            }
        }
        assert_eq!(kinds.len(), KINDS.len(), "kinds seen: {kinds:?}");
        assert!(checked > 100, "only {checked} IPv4 headers checked");
        // payload sizes spread, so len filters split the corpus
        assert!(a.iter().any(|p| p.bytes.len() <= 60));
        assert!(a.iter().any(|p| p.bytes.len() > 1000));
        assert!(a.iter().any(|p| p.bytes.len() > 1514));
        // other seeds and counts stay in bounds too
        for p in packets(2000, 0xdead_beef) {
            assert!((MIN_LEN..=MAX_LEN).contains(&p.bytes.len()), "{}", p.name);
            assert_ne!(ipv4_checksum_ok(&p.bytes), Some(false), "{}", p.name);
        }
    }

    #[test]
    fn helpers() {
        let f = ipv4_udp_frame(
            MAC_A,
            MAC_B,
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            9000,
            53,
            b"hello",
        );
        assert_eq!(f.len(), 14 + 20 + 8 + 5);
        assert_eq!(ipv4_checksum_ok(&f), Some(true));
        // UDP checksum verifies to zero over pseudo-header + datagram
        assert_eq!(
            l4_checksum(Pseudo::V4([10, 0, 0, 1], [10, 0, 0, 2]), 17, &f[34..]),
            0
        );
        let t = vlan_tag(&f, 0x8100, 100);
        assert_eq!(&t[12..18], &[0x81, 0x00, 0x00, 0x64, 0x08, 0x00]);
        let q = vlan_tag(&t, 0x88a8, 200);
        assert_eq!(
            &q[12..22],
            &[0x88, 0xa8, 0x00, 0xc8, 0x81, 0x00, 0x00, 0x64, 0x08, 0x00]
        );
        assert_eq!(ipv4_checksum_ok(&q), Some(true));
    }

    #[test]
    fn filters_compile_and_tcpdump_reads_corpus() {
        let fs = filters();
        assert!(fs.len() >= 70, "{} filters", fs.len());
        let mut uniq = std::collections::BTreeSet::new();
        for f in &fs {
            assert!(uniq.insert(*f), "duplicate filter {f:?}");
        }

        let empty = scratch("empty.pcap");
        write_pcap(&empty, &[]);
        for f in &fs {
            let out = Command::new("tcpdump")
                .arg("-d")
                .arg("-r")
                .arg(&empty)
                .arg(f)
                .output()
                .expect("run tcpdump");
            assert!(
                out.status.success(),
                "tcpdump rejects {f:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }

        let file = scratch("corpus.pcap");
        let pkts = packets(500, 1);
        write_pcap(&file, &pkts);
        let run = |expr: Option<&str>| {
            let mut c = Command::new("tcpdump");
            c.arg("-r").arg(&file).arg("-nn");
            if let Some(e) = expr {
                c.arg(e);
            }
            let out = c.output().expect("run tcpdump");
            assert!(
                out.status.success(),
                "tcpdump -r failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            // one summary line per packet; tcpdump adds indented hex-dump lines
            // for protocols it does not know (random EtherTypes, LLC I-frames, ...)
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| !l.starts_with(char::is_whitespace))
                .count()
        };
        assert_eq!(
            run(None),
            500,
            "tcpdump should print one summary line per packet"
        );
        for expr in [
            "tcp",
            "port 53",
            "vlan",
            "ip6",
            "tcp[tcpflags] & tcp-syn != 0",
        ] {
            let n = run(Some(expr));
            println!("{expr:40} matches {n:3} of 500");
            assert!(n > 0 && n < 500, "{expr:?} matches {n} of 500");
        }
        let _ = std::fs::remove_dir_all(file.parent().unwrap());
    }
}
