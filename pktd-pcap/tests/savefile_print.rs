//! Savefiles written by `pktd_pcap::savefile` read back by the real tcpdump,
//! and `pktd_pcap::print::format_packet` compared line by line with what
//! tcpdump prints for the same frames.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use pktd_pcap::print::format_packet;
use pktd_pcap::savefile::{Format, LINKTYPE_ETHERNET, Writer};

// ---------------------------------------------------------------------------
// Frame builders. Checksums are filled in so that `tcpdump -v` has nothing to
// complain about, although the default output never shows them.

const MAC1: [u8; 6] = [2, 0, 0, 0, 0, 1];
const MAC2: [u8; 6] = [2, 0, 0, 0, 0, 2];
const BCAST: [u8; 6] = [0xff; 6];

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for part in parts {
        for &b in *part {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(hi) << 8;
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn eth(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// Inserts an 802.1Q tag after the MAC addresses.
fn vlan(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
    let mut f = frame[..12].to_vec();
    f.extend_from_slice(&tpid.to_be_bytes());
    f.extend_from_slice(&tci.to_be_bytes());
    f.extend_from_slice(&frame[12..]);
    f
}

/// Pads a frame to the Ethernet minimum of 60 bytes (without FCS).
fn pad(mut f: Vec<u8>) -> Vec<u8> {
    if f.len() < 60 {
        f.resize(60, 0);
    }
    f
}

fn ipv4_hdr(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload_len: usize, frag: u16) -> Vec<u8> {
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&((20 + payload_len) as u16).to_be_bytes());
    h.extend_from_slice(&0x1234u16.to_be_bytes());
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    ipv4_frag(src, dst, proto, payload, 0)
}

fn ipv4_frag(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8], frag: u16) -> Vec<u8> {
    let mut p = ipv4_hdr(src, dst, proto, payload.len(), frag);
    p.extend_from_slice(payload);
    eth(MAC2, MAC1, 0x0800, &p)
}

fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    eth(MAC2, MAC1, 0x86dd, &p)
}

fn pseudo4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = src.octets().to_vec();
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&[0, proto]);
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p
}

fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, proto: u8, len: usize) -> Vec<u8> {
    let mut p = src.octets().to_vec();
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, proto]);
    p
}

fn udp(pseudo: impl Fn(usize) -> Vec<u8>, sport: u16, dport: u16, data: &[u8]) -> Vec<u8> {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(data);
    let c = checksum(&[&pseudo(u.len()), &u]);
    u[6..8].copy_from_slice(&c.to_be_bytes());
    u
}

struct Tcp<'a> {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    win: u16,
    urg: u16,
    options: &'a [u8],
    data: &'a [u8],
}

fn tcp(pseudo: impl Fn(usize) -> Vec<u8>, t: &Tcp) -> Vec<u8> {
    assert!(
        t.options.len().is_multiple_of(4),
        "TCP options must be padded"
    );
    let mut s = t.sport.to_be_bytes().to_vec();
    s.extend_from_slice(&t.dport.to_be_bytes());
    s.extend_from_slice(&t.seq.to_be_bytes());
    s.extend_from_slice(&t.ack.to_be_bytes());
    s.push((((20 + t.options.len()) / 4) as u8) << 4);
    s.push(t.flags);
    s.extend_from_slice(&t.win.to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(&t.urg.to_be_bytes());
    s.extend_from_slice(t.options);
    s.extend_from_slice(t.data);
    let c = checksum(&[&pseudo(s.len()), &s]);
    s[16..18].copy_from_slice(&c.to_be_bytes());
    s
}

fn icmp(ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn icmp6(src: Ipv6Addr, dst: Ipv6Addr, ty: u8, code: u8, rest: [u8; 4], data: &[u8]) -> Vec<u8> {
    let mut m = vec![ty, code, 0, 0];
    m.extend_from_slice(&rest);
    m.extend_from_slice(data);
    let c = checksum(&[&pseudo6(src, dst, 58, m.len()), &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4];
    a.extend_from_slice(&op.to_be_bytes());
    a.extend_from_slice(&sha);
    a.extend_from_slice(&spa.octets());
    a.extend_from_slice(&tha);
    a.extend_from_slice(&tpa.octets());
    let dst = if op == 1 { BCAST } else { tha };
    eth(dst, sha, 0x0806, &a)
}

// ---------------------------------------------------------------------------
// The frames, each with a name for failure messages.

struct Frame {
    name: &'static str,
    data: Vec<u8>,
    /// Length on the wire; the savefile keeps at most the snaplen of it.
    wire_len: u32,
}

fn frame(name: &'static str, data: Vec<u8>) -> Frame {
    let wire_len = data.len() as u32;
    Frame {
        name,
        data,
        wire_len,
    }
}

fn v4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Frames of every kind `format_packet` decodes. Ports avoid the ones that
/// tcpdump hands to an application dissector (53, 80, 123, ...), which
/// `format_packet` does not imitate.
fn frames() -> Vec<Frame> {
    let a = v4("10.0.0.1");
    let b = v4("10.0.0.2");
    let a6 = v6("2001:db8::1");
    let b6 = v6("2001:db8::2");
    let ll1 = v6("fe80::1");
    let ll2 = v6("fe80::2");
    let p4 = |proto| move |len| pseudo4(a, b, proto, len);
    let p4r = |proto| move |len| pseudo4(b, a, proto, len);
    let p6 = |proto| move |len| pseudo6(a6, b6, proto, len);
    let payload: Vec<u8> = (0..1400u32).map(|i| (i * 7) as u8).collect();
    let tcp_opts_syn = [
        2, 4, 0x05, 0xb4, // mss 1460
        4, 2, // sackOK
        8, 10, 0, 0, 0, 1, 0, 0, 0, 0, // TS val 1 ecr 0
        1, // nop
        3, 3, 7, // wscale 7
    ];
    let tcp_opts_ts = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 8];
    let mut v = vec![
        frame(
            "udp",
            pad(ipv4(a, b, 17, &udp(p4(17), 40000, 9000, &payload[..18]))),
        ),
        frame(
            "udp empty",
            pad(ipv4(a, b, 17, &udp(p4(17), 40001, 9001, &[]))),
        ),
        frame(
            "udp big",
            ipv4(a, b, 17, &udp(p4(17), 40002, 9002, &payload[..1400])),
        ),
        frame(
            "tcp syn",
            pad(ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40000,
                        dport: 8080,
                        seq: 1,
                        ack: 0,
                        flags: 0x02,
                        win: 64240,
                        urg: 0,
                        options: &[],
                        data: &[],
                    },
                ),
            )),
        ),
        frame(
            "tcp syn options",
            ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40001,
                        dport: 8081,
                        seq: 3_000_000_000,
                        ack: 0,
                        flags: 0x02,
                        win: 64240,
                        urg: 0,
                        options: &tcp_opts_syn,
                        data: &[],
                    },
                ),
            ),
        ),
        frame(
            "tcp syn-ack",
            pad(ipv4(
                b,
                a,
                6,
                &tcp(
                    p4r(6),
                    &Tcp {
                        sport: 8082,
                        dport: 40002,
                        seq: 777,
                        ack: 2,
                        flags: 0x12,
                        win: 65160,
                        urg: 0,
                        options: &[],
                        data: &[],
                    },
                ),
            )),
        ),
        frame(
            "tcp psh-ack data",
            ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40003,
                        dport: 8083,
                        seq: 1000,
                        ack: 5000,
                        flags: 0x18,
                        win: 502,
                        urg: 0,
                        options: &tcp_opts_ts,
                        data: &payload[..100],
                    },
                ),
            ),
        ),
        frame(
            "tcp fin-ack",
            pad(ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40004,
                        dport: 8084,
                        seq: 10,
                        ack: 20,
                        flags: 0x11,
                        win: 1000,
                        urg: 0,
                        options: &[],
                        data: &[],
                    },
                ),
            )),
        ),
        frame(
            "tcp rst",
            pad(ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40005,
                        dport: 8085,
                        seq: 99,
                        ack: 0,
                        flags: 0x04,
                        win: 0,
                        urg: 0,
                        options: &[],
                        data: &[],
                    },
                ),
            )),
        ),
        frame(
            "tcp urg ece cwr",
            ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40006,
                        dport: 8086,
                        seq: 5,
                        ack: 6,
                        flags: 0xf8,
                        win: 100,
                        urg: 3,
                        options: &[],
                        data: &payload[..10],
                    },
                ),
            ),
        ),
        frame(
            "tcp pure ack",
            pad(ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40007,
                        dport: 8087,
                        seq: 1,
                        ack: 1,
                        flags: 0x10,
                        win: 501,
                        urg: 0,
                        options: &[],
                        data: &[],
                    },
                ),
            )),
        ),
        frame(
            "icmp echo request",
            ipv4(a, b, 1, &icmp(8, 0, [0, 1, 0, 1], &payload[..56])),
        ),
        frame(
            "icmp echo reply",
            ipv4(b, a, 1, &icmp(0, 0, [0, 1, 0, 1], &payload[..56])),
        ),
        frame("icmp port unreachable", {
            let inner_udp = udp(p4r(17), 9000, 40000, &payload[..8]);
            let mut inner = ipv4_hdr(b, a, 17, inner_udp.len(), 0);
            inner.extend_from_slice(&inner_udp);
            ipv4(a, b, 1, &icmp(3, 3, [0; 4], &inner))
        }),
        frame("icmp host unreachable", {
            let mut inner = ipv4_hdr(b, v4("10.0.0.9"), 6, 8, 0);
            inner.extend_from_slice(&payload[..8]);
            ipv4(a, b, 1, &icmp(3, 1, [0; 4], &inner))
        }),
        frame("icmp time exceeded", {
            let mut inner = ipv4_hdr(b, v4("10.0.0.9"), 17, 8, 0);
            inner.extend_from_slice(&payload[..8]);
            ipv4(a, b, 1, &icmp(11, 0, [0; 4], &inner))
        }),
        frame("arp request", pad(arp(1, MAC1, a, [0; 6], b))),
        frame("arp reply", pad(arp(2, MAC2, b, MAC1, a))),
        frame("arp request unpadded", arp(1, MAC1, a, [0; 6], b)),
        frame(
            "vlan udp",
            vlan(
                &pad(ipv4(a, b, 17, &udp(p4(17), 40010, 9010, &payload[..18]))),
                0x8100,
                100,
            ),
        ),
        frame(
            "vlan prio arp",
            vlan(&pad(arp(1, MAC1, a, [0; 6], b)), 0x8100, (5 << 13) | 42),
        ),
        frame(
            "qinq udp",
            vlan(
                &vlan(
                    &pad(ipv4(a, b, 17, &udp(p4(17), 40011, 9011, &payload[..4]))),
                    0x8100,
                    7,
                ),
                0x88a8,
                300,
            ),
        ),
        frame(
            "ipv6 udp",
            ipv6(a6, b6, 17, &udp(p6(17), 40000, 9000, &payload[..12])),
        ),
        frame(
            "ipv6 tcp",
            ipv6(
                a6,
                b6,
                6,
                &tcp(
                    p6(6),
                    &Tcp {
                        sport: 40000,
                        dport: 8443,
                        seq: 42,
                        ack: 43,
                        flags: 0x18,
                        win: 500,
                        urg: 0,
                        options: &[],
                        data: &payload[..33],
                    },
                ),
            ),
        ),
        frame(
            "icmp6 echo request",
            ipv6(
                ll1,
                v6("ff02::1"),
                58,
                &icmp6(ll1, v6("ff02::1"), 128, 0, [0, 1, 0, 1], &payload[..56]),
            ),
        ),
        frame(
            "icmp6 echo reply",
            ipv6(
                ll2,
                ll1,
                58,
                &icmp6(ll2, ll1, 129, 0, [0, 1, 0, 1], &payload[..56]),
            ),
        ),
        frame("icmp6 neighbor solicitation", {
            let dst = v6("ff02::1:ff00:2");
            let mut body = ll2.octets().to_vec();
            body.extend_from_slice(&[1, 1]);
            body.extend_from_slice(&MAC1);
            ipv6(ll1, dst, 58, &icmp6(ll1, dst, 135, 0, [0; 4], &body))
        }),
        frame("icmp6 neighbor advertisement", {
            let mut body = ll2.octets().to_vec();
            body.extend_from_slice(&[2, 1]);
            body.extend_from_slice(&MAC2);
            ipv6(
                ll2,
                ll1,
                58,
                &icmp6(ll2, ll1, 136, 0, [0x60, 0, 0, 0], &body),
            )
        }),
        frame("icmp6 router solicitation", {
            let dst = v6("ff02::2");
            ipv6(ll1, dst, 58, &icmp6(ll1, dst, 133, 0, [0; 4], &[]))
        }),
        frame(
            "ipv4 later fragment",
            pad(ipv4_frag(a, b, 17, &payload[..16], 185)),
        ),
        frame(
            "ipv4 first fragment",
            ipv4_frag(
                a,
                b,
                17,
                &udp(p4(17), 40020, 9020, &payload[..1000])[..504],
                0x2000,
            ),
        ),
        frame("ipv4 unknown proto", pad(ipv4(a, b, 253, &payload[..10]))),
        frame(
            "lldp-ish ethertype",
            pad(eth(
                [1, 0x80, 0xc2, 0, 0, 0x0e],
                MAC1,
                0x88b5,
                &payload[..20],
            )),
        ),
    ];
    v.extend([
        frame("ipv6 hbh mldv2 report", {
            let dst = v6("ff02::16");
            let mut rec = vec![4, 0, 0, 0];
            rec.extend_from_slice(&v6("ff02::fb").octets());
            let mld = icmp6(ll1, dst, 143, 0, [0, 0, 0, 1], &rec);
            let mut hbh = vec![58, 0, 5, 2, 0, 0, 1, 0]; // router alert + padn
            hbh.extend_from_slice(&mld);
            ipv6(ll1, dst, 0, &hbh)
        }),
        frame("ipv6 frag udp", {
            let u = udp(p6(17), 40040, 9040, &payload[..100]);
            let mut fh = vec![17, 0, 0, 1, 0, 0, 0, 7]; // offset 0, M set
            fh.extend_from_slice(&u[..64]);
            ipv6(a6, b6, 44, &fh)
        }),
        frame("ipv4 in ipv4", {
            let inner = ipv4(
                v4("192.168.1.1"),
                v4("192.168.1.2"),
                17,
                &udp(
                    |len| pseudo4(v4("192.168.1.1"), v4("192.168.1.2"), 17, len),
                    1111,
                    2222,
                    &payload[..5],
                ),
            );
            ipv4(a, b, 4, &inner[14..])
        }),
        frame("ipv4 short ip_len (padding)", {
            let mut f = ipv4(a, b, 17, &udp(p4(17), 40050, 9050, &payload[..4]));
            f.extend_from_slice(&[0xee; 30]);
            f
        }),
        frame("ipv4 truncated-ip", {
            let mut f = ipv4(a, b, 17, &udp(p4(17), 40051, 9051, &payload[..40]));
            f.truncate(f.len() - 20);
            f
        }),
        frame("udp bad length", {
            let mut f = ipv4(a, b, 17, &udp(p4(17), 40052, 9052, &payload[..20]));
            f[14 + 20 + 5] = 200;
            f
        }),
        frame(
            "tcp sack",
            ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40060,
                        dport: 8090,
                        seq: 100,
                        ack: 1000,
                        flags: 0x10,
                        win: 300,
                        urg: 0,
                        options: &[1, 1, 5, 10, 0, 0, 0x03, 0xe8 + 10, 0, 0, 0x04, 0x00],
                        data: &[],
                    },
                ),
            ),
        ),
        frame(
            "tcp bad option",
            ipv4(
                a,
                b,
                6,
                &tcp(
                    p4(6),
                    &Tcp {
                        sport: 40061,
                        dport: 8091,
                        seq: 100,
                        ack: 0,
                        flags: 0x02,
                        win: 300,
                        urg: 0,
                        options: &[2, 4, 5, 0xb4, 1, 9, 0, 0],
                        data: &[],
                    },
                ),
            ),
        ),
        frame("icmp need frag", {
            let mut inner = ipv4_hdr(b, v4("10.0.0.9"), 6, 8, 0x4000);
            inner.extend_from_slice(&payload[..8]);
            ipv4(a, b, 1, &icmp(3, 4, [0, 0, 0x05, 0xdc], &inner))
        }),
        frame("icmp6 packet too big", {
            let mut inner =
                ipv6(b6, a6, 17, &udp(p6(17), 9000, 40000, &payload[..8]))[14..].to_vec();
            inner.truncate(48);
            ipv6(a6, b6, 58, &icmp6(a6, b6, 2, 0, [0, 0, 0x05, 0x00], &inner))
        }),
        frame("icmp6 port unreachable", {
            let inner = ipv6(b6, a6, 17, &udp(p6(17), 9000, 40000, &payload[..8]))[14..].to_vec();
            ipv6(a6, b6, 58, &icmp6(a6, b6, 1, 4, [0; 4], &inner))
        }),
        frame("arp unknown hardware", {
            let mut f = pad(arp(1, MAC1, a, [0; 6], b));
            f[14 + 1] = 7;
            f[14 + 3] = 0x99;
            f
        }),
    ]);
    // A frame the capture already cut: the wire length stays that of the whole frame.
    let mut cut = frame(
        "udp cut by snaplen",
        ipv4(a, b, 17, &udp(p4(17), 40030, 9030, &payload[..1000])),
    );
    cut.wire_len = cut.data.len() as u32;
    v.push(cut);
    v
}

// ---------------------------------------------------------------------------
// Running tcpdump.

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "pktd-pcap-{tag}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn tcpdump(file: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new("tcpdump")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump (is it installed?): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tcpdump -r {} {args:?} failed: {stderr}",
        file.display()
    );
    // tcpdump follows some lines with a hex dump of undecoded payload on
    // lines that begin with a tab; those are not packets.
    String::from_utf8(out.stdout)
        .expect("tcpdump printed UTF-8")
        .lines()
        .filter(|l| !l.starts_with('\t'))
        .map(str::to_owned)
        .collect()
}

/// Writes `frames` (each cut to at most `snaplen` by the writer) and
/// returns the path.
fn write_frames(
    dir: &TempDir,
    name: &str,
    format: Format,
    snaplen: u32,
    frames: &[Frame],
    t0: u64,
) -> PathBuf {
    let path = dir.0.join(name);
    let file = std::fs::File::create(&path)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
    let mut w = Writer::new(
        std::io::BufWriter::new(file),
        format,
        LINKTYPE_ETHERNET,
        snaplen,
    )
    .unwrap_or_else(|e| panic!("cannot write the header: {e}"));
    for (i, f) in frames.iter().enumerate() {
        w.write_packet(t0 + i as u64 * STEP_NS, f.wire_len, &f.data)
            .unwrap_or_else(|e| panic!("cannot write frame {}: {e}", f.name));
    }
    w.into_inner()
        .unwrap_or_else(|e| panic!("cannot flush: {e}"));
    path
}

/// Packet timestamps: a known start and a step that exercises the
/// microsecond and nanosecond digits.
const T0: u64 = 1_700_000_000_123_456_789;
const STEP_NS: u64 = 1_001_001_001;

/// Frames from [`frames`] that the savefile tests cut with a snaplen.
const SNAPLEN: u32 = 96;

/// Parses `tcpdump -xx` output into (summary line, captured bytes) pairs.
fn hex_dump_packets(file: &Path, extra: &[&str]) -> Vec<(String, usize)> {
    let out = Command::new("tcpdump")
        .arg("-r")
        .arg(file)
        .args(["-nn", "-xx"])
        .args(extra)
        .output()
        .unwrap_or_else(|e| panic!("cannot run tcpdump: {e}"));
    assert!(
        out.status.success(),
        "tcpdump -xx failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut packets: Vec<(String, usize)> = Vec::new();
    for line in String::from_utf8(out.stdout).expect("UTF-8").lines() {
        if let Some(hex) = line.strip_prefix("\t0x") {
            let (_, bytes) = hex.split_once(':').expect("offset: bytes");
            let n: usize = bytes.split_whitespace().map(|group| group.len() / 2).sum();
            packets.last_mut().expect("hex before any packet").1 += n;
        } else {
            packets.push((line.to_owned(), 0));
        }
    }
    packets
}

/// Checks what tcpdump reads back from a savefile of [`frames`]: the
/// count, `-c`, the lengths on the wire (`-e`) and the captured lengths
/// (`-xx`); timestamps are checked by the callers.
fn check_read_back(path: &Path, frames: &[Frame]) {
    let lines = tcpdump(path, &["-nn"]);
    assert_eq!(
        lines.len(),
        frames.len(),
        "tcpdump saw {} packets, we wrote {}",
        lines.len(),
        frames.len()
    );
    let first3 = tcpdump(path, &["-nn", "-c", "3"]);
    assert_eq!(
        first3,
        lines[..3],
        "tcpdump -c 3 should print the first three packets"
    );

    // -e prints the length on the wire in the Ethernet header's line.
    let with_e = tcpdump(path, &["-nn", "-e"]);
    assert_eq!(with_e.len(), frames.len());
    for (line, f) in with_e.iter().zip(frames) {
        let expect = format!(", length {}: ", f.wire_len);
        assert!(
            line.contains(&expect),
            "{}: expected `{expect}` in tcpdump -e line: {line}",
            f.name
        );
    }

    // -xx dumps exactly the captured bytes.
    let packets = hex_dump_packets(path, &[]);
    assert_eq!(packets.len(), frames.len());
    for ((line, captured), f) in packets.iter().zip(frames) {
        let expect = f.data.len().min(SNAPLEN as usize);
        assert_eq!(
            *captured, expect,
            "{}: captured length in the file (tcpdump -xx of {line})",
            f.name
        );
    }
    assert!(
        frames
            .iter()
            .filter(|f| f.data.len() > SNAPLEN as usize)
            .count()
            >= 5,
        "the test should cut several frames with the snaplen"
    );
}

#[test]
fn pcap_is_read_back_by_tcpdump() {
    let dir = TempDir::new("pcap");
    let frames = frames();
    let path = write_frames(&dir, "frames.pcap", Format::Pcap, SNAPLEN, &frames, T0);

    // The header, byte for byte: magic, v2.4, thiszone, sigfigs, snaplen, linktype.
    let bytes = std::fs::read(&path).expect("read the savefile back");
    let mut header = Vec::new();
    for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, SNAPLEN, 1] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    assert_eq!(bytes[..24], header, "pcap file header");

    // -tt prints seconds.microseconds since the epoch; pcap keeps microseconds.
    let lines = tcpdump(&path, &["-nn", "-tt"]);
    assert_eq!(lines.len(), frames.len());
    for (i, (line, f)) in lines.iter().zip(&frames).enumerate() {
        let ns = T0 + i as u64 * STEP_NS;
        let expect = format!("{}.{:06} ", ns / 1_000_000_000, ns % 1_000_000_000 / 1_000);
        assert!(
            line.starts_with(&expect),
            "{}: expected timestamp {expect}in: {line}",
            f.name
        );
    }
    check_read_back(&path, &frames);
}

#[test]
fn pcapng_is_read_back_by_tcpdump_with_nanoseconds() {
    let dir = TempDir::new("pcapng");
    let frames = frames();
    let path = write_frames(&dir, "frames.pcapng", Format::PcapNg, SNAPLEN, &frames, T0);
    let lines = tcpdump(&path, &["-nn", "-tt", "--time-stamp-precision=nano"]);
    assert_eq!(lines.len(), frames.len());
    for (i, (line, f)) in lines.iter().zip(&frames).enumerate() {
        let ns = T0 + i as u64 * STEP_NS;
        let expect = format!("{}.{:09} ", ns / 1_000_000_000, ns % 1_000_000_000);
        assert!(
            line.starts_with(&expect),
            "{}: expected timestamp {expect}in: {line}",
            f.name
        );
    }
    check_read_back(&path, &frames);
}

/// Compares `format_packet` with tcpdump, whole lines, time included: both
/// read the local time zone from the same environment.
fn compare_with_tcpdump(dir: &TempDir, name: &str, frames: &[Frame]) {
    let path = write_frames(dir, name, Format::Pcap, 0, frames, T0);
    let lines = tcpdump(&path, &["-nn"]);
    assert_eq!(
        lines.len(),
        frames.len(),
        "{name}: tcpdump printed another number of packets"
    );
    let mut failures = Vec::new();
    for (i, (line, f)) in lines.iter().zip(frames).enumerate() {
        let ours = format_packet(T0 + i as u64 * STEP_NS, f.wire_len, &f.data);
        // tcpdump leaves a space before the hex dump it puts on the next
        // lines; we print no hex dump and no trailing space.
        if ours != line.trim_end() {
            failures.push(format!(
                "{} ({} of {} bytes)\n  tcpdump: {line}\n  ours:    {ours}",
                f.name,
                f.data.len(),
                f.wire_len
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} lines differ from tcpdump:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn format_packet_prints_what_tcpdump_prints() {
    let dir = TempDir::new("print");
    compare_with_tcpdump(&dir, "whole.pcap", &frames());
}

#[test]
fn format_packet_prints_truncated_frames_like_tcpdump() {
    let dir = TempDir::new("cut");
    // One file per cut, so that tcpdump sees each TCP connection once and
    // prints absolute sequence numbers, as format_packet always does.
    for cut in [
        1, 13, 14, 15, 20, 30, 34, 36, 38, 40, 42, 48, 50, 54, 56, 58, 60, 62, 64, 66, 70, 74, 80,
        90, 100,
    ] {
        let cut_frames: Vec<Frame> = frames()
            .into_iter()
            .filter(|f| f.data.len() > cut)
            .map(|f| Frame {
                data: f.data[..cut].to_vec(),
                ..f
            })
            .collect();
        compare_with_tcpdump(&dir, &format!("cut{cut}.pcap"), &cut_frames);
    }
}

/// A xorshift generator: the garbage is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn garbage_and_mangled_frames_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let check = |wire_len: u32, data: &[u8]| {
        let line = format_packet(u64::MAX, wire_len, data);
        assert!(
            !line.contains('\n') && line.len() > 16,
            "one sane line for {data:02x?}: {line:?}"
        );
    };
    for len in 0..200usize {
        for _ in 0..20 {
            let data: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check(rng.next() as u32 % 300, &data);
            check(len as u32, &data);
        }
    }
    // Valid frames with a few bytes changed reach deep into the decoders.
    for f in frames() {
        for _ in 0..300 {
            let mut data = f.data.clone();
            for _ in 0..1 + rng.next() % 4 {
                let i = 12 + rng.next() as usize % (data.len() - 12).min(80);
                data[i] = rng.next() as u8;
            }
            let cut = 1 + rng.next() as usize % data.len();
            check(f.wire_len, &data);
            check(f.wire_len, &data[..cut]);
            check(rng.next() as u32, &data[..cut]);
        }
    }
}

/// Counts the writes it is given, to check that a packet is one write.
struct CountingWriter {
    writes: Vec<usize>,
}

impl std::io::Write for CountingWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes.push(buf.len());
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn each_packet_is_one_write() {
    for (format, overhead) in [(Format::Pcap, 16), (Format::PcapNg, 32)] {
        let header = pktd_pcap::savefile::header(
            format,
            LINKTYPE_ETHERNET,
            100,
            &pktd_pcap::savefile::CaptureInfo::default(),
        )
        .unwrap()
        .len();
        let mut w = Writer::new(
            CountingWriter { writes: Vec::new() },
            format,
            LINKTYPE_ETHERNET,
            100,
        )
        .unwrap();
        w.write_packet(T0, 60, &[0xab; 60]).unwrap();
        w.write_packet(T0, 1500, &[0xcd; 1500]).unwrap();
        w.write_packet(T0, 61, &[0xef; 61]).unwrap();
        let out = w.into_inner().unwrap();
        // The second packet is cut to the snaplen (100); for pcapng, the
        // last is padded to 32 bits.
        let pad = |n: usize| {
            if format == Format::PcapNg {
                n.div_ceil(4) * 4
            } else {
                n
            }
        };
        assert_eq!(
            out.writes,
            vec![header, overhead + 60, overhead + 100, overhead + pad(61)],
            "{format:?}: one write for the header and one per packet"
        );
    }
}

#[test]
fn timestamps_pcap_cannot_hold_are_refused() {
    let mut w = Writer::new(Vec::new(), Format::Pcap, LINKTYPE_ETHERNET, 0).unwrap();
    let err = w
        .write_packet(u64::MAX, 60, &[0; 60])
        .expect_err("2554 is past pcap's 32-bit seconds");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // pcapng's 64-bit nanoseconds hold it.
    let mut w = Writer::new(Vec::new(), Format::PcapNg, LINKTYPE_ETHERNET, 0).unwrap();
    w.write_packet(u64::MAX, 60, &[0; 60])
        .expect("pcapng holds any u64 timestamp");
}

/// tshark (and capinfos) read back what a pcapng file says of its
/// capture: the system and application, the interface's name,
/// description and filter, each packet's direction, and the closing
/// statistics.
#[test]
fn tshark_reads_the_pcapng_options_back() {
    use pktd_pcap::savefile::{CaptureInfo, CaptureStats, Frame, PacketDirection};
    let path =
        std::env::temp_dir().join(format!("pktd-pcapng-options-{}.pcapng", std::process::id()));
    let info = CaptureInfo {
        application: "pktcap 0.1 (pktd)".into(),
        interface: "veth0".into(),
        description: "netns lab".into(),
        filter: "udp and port 53".into(),
    };
    let mut w = Writer::with_info(
        std::fs::File::create(&path).unwrap(),
        Format::PcapNg,
        LINKTYPE_ETHERNET,
        262_144,
        &info,
    )
    .unwrap();
    for (i, direction) in [
        PacketDirection::Inbound,
        PacketDirection::Outbound,
        PacketDirection::Unknown,
    ]
    .into_iter()
    .enumerate()
    {
        w.write(&Frame {
            timestamp_ns: T0 + i as u64,
            wire_len: 61,
            direction,
            data: &[0x5a; 61],
        })
        .unwrap();
    }
    w.write_statistics(&CaptureStats {
        timestamp_ns: T0 + 10,
        received: 1000,
        dropped: 7,
        matched: 3,
        delivered: 3,
    })
    .unwrap();
    w.into_inner().unwrap();

    let fields = Command::new("tshark")
        .arg("-r")
        .arg(&path)
        .args(["-T", "fields", "-E", "separator=|"])
        .args([
            "-e",
            "frame.interface_name",
            "-e",
            "frame.interface_description",
        ])
        .args(["-e", "frame.packet_flags_direction"])
        .output()
        .expect("running tshark");
    assert!(fields.status.success());
    let stdout = String::from_utf8_lossy(&fields.stdout).into_owned();
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "veth0|netns lab|0x00000001",
            "veth0|netns lab|0x00000002",
            "veth0|netns lab|"
        ]
    );
    let capinfos = Command::new("capinfos")
        .arg(&path)
        .output()
        .expect("running capinfos");
    assert!(capinfos.status.success());
    let text = String::from_utf8_lossy(&capinfos.stdout).into_owned();
    let os = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    for expected in [
        format!("Capture oper-sys:    Linux {}", os.trim()),
        "Capture application: pktcap 0.1 (pktd)".to_owned(),
        "Name = veth0".to_owned(),
        "Description = netns lab".to_owned(),
        "Filter string = udp and port 53".to_owned(),
        "Time precision = nanoseconds (9)".to_owned(),
        "Number of stat entries = 1".to_owned(),
    ] {
        assert!(text.contains(&expected), "no {expected:?} in\n{text}");
    }
    // The statistics' values, through another reader than ours.
    let mut reader =
        pcap_file::pcapng::PcapNgReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut statistics = Vec::new();
    while let Some(block) = reader.next_block() {
        if let pcap_file::pcapng::Block::InterfaceStatistics(isb) = block.unwrap() {
            statistics = isb.options.into_iter().map(|o| o.into_owned()).collect();
        }
    }
    use pcap_file::pcapng::blocks::interface_statistics::InterfaceStatisticsOption as Isb;
    assert_eq!(
        statistics,
        [
            Isb::IsbEndTime(T0 + 10),
            Isb::IsbIfRecv(1000),
            Isb::IsbIfDrop(7),
            Isb::IsbFilterAccept(3),
            Isb::IsbUsrDeliv(3)
        ]
    );
    let _ = std::fs::remove_file(&path);
}
