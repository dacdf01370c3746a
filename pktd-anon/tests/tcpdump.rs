//! End to end with the real tcpdump: rewritten frames, written to a pcap
//! file, are read back with `tcpdump -vv -n -r` without a bad checksum,
//! showing the images of the addresses and never the addresses.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use etherparse::{ArpEthIpv4Packet, ArpOperation, PacketBuilder, VlanId};
use pktd_anon::{MacMode, PayloadMode};

const TCPDUMP: &str = "/usr/bin/tcpdump";

fn frames() -> Vec<Vec<u8>> {
    let mut out = vec![
        ipv4_tcp(b"hello over TCP"),
        ipv4_udp(b"hello over UDP"),
        ipv6_tcp(b"hello over TCP"),
        ipv6_udp(b"hello over UDP"),
    ];
    let mut inner = Vec::new();
    PacketBuilder::ipv4(V4_C, V4_D, 64)
        .udp(33434, 53)
        .write(&mut inner, b"quoted")
        .expect("build");
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(V4_A, V4_B, 64)
        .icmpv4_raw(3, 3, [0; 4])
        .write(&mut f, &inner)
        .expect("build");
    out.push(f);
    let mut inner6 = Vec::new();
    PacketBuilder::ipv6(V6_C, V6_D, 64)
        .udp(33434, 53)
        .write(&mut inner6, b"quoted")
        .expect("build");
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(V6_A, V6_B, 64)
        .icmpv6_raw(1, 4, [0; 4])
        .write(&mut f, &inner6)
        .expect("build");
    out.push(f);
    let mut ns = V6_C.to_vec();
    ns.extend_from_slice(&[1, 1]);
    ns.extend_from_slice(&MAC_A);
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv6(V6_A, V6_B, 255)
        .icmpv6_raw(135, 0, [0; 4])
        .write(&mut f, &ns)
        .expect("build");
    out.push(f);
    let mut lsrr = vec![1, 131, 11, 4];
    lsrr.extend_from_slice(&[V4_C, V4_D].concat());
    out.push(ipv4_options_udp(&lsrr, V4_D, b"source routed"));
    let mut rt = vec![0, 4, 0, 2, 0, 0, 0, 0];
    rt.extend_from_slice(&[V6_C, V6_D].concat());
    let udp = udp_segment(|len| pseudo_v6(&V6_A, &V6_D, 17, len), b"routed");
    out.push(ipv6_with(&[(43, rt)], 17, &udp));
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, MAC_B)
        .single_vlan(VlanId::try_new(42).expect("id"))
        .ipv4(V4_A, V4_B, 64)
        .tcp(1234, 80, 1, 100)
        .write(&mut f, b"tagged")
        .expect("build");
    out.push(f);
    let arp = ArpEthIpv4Packet {
        operation: ArpOperation::REQUEST,
        sender_mac: MAC_A,
        sender_ipv4: V4_A,
        target_mac: [0; 6],
        target_ipv4: V4_B,
    };
    let mut f = Vec::new();
    PacketBuilder::ethernet2(MAC_A, [0xff; 6])
        .arp(arp.into())
        .write(&mut f)
        .expect("build");
    out.push(f);
    out
}

/// A classic pcap file (microsecond timestamps, Ethernet links).
fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut file = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    file.extend_from_slice(&2u16.to_le_bytes());
    file.extend_from_slice(&4u16.to_le_bytes());
    for word in [0u32, 0, 65535, 1] {
        file.extend_from_slice(&word.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let len = f.len() as u32;
        for word in [1_700_000_000 + i as u32, 0, len, len] {
            file.extend_from_slice(&word.to_le_bytes());
        }
        file.extend_from_slice(f);
    }
    std::fs::write(path, file).expect("write pcap");
}

fn tcpdump(frames: &[Vec<u8>], name: &str) -> String {
    assert!(
        Path::new(TCPDUMP).exists(),
        "{TCPDUMP} is needed (cargo xtask test installs it)"
    );
    let dir = std::env::temp_dir();
    let path: PathBuf = dir.join(format!("pktd-anon-{}-{name}.pcap", std::process::id()));
    write_pcap(&path, frames);
    let out = Command::new(TCPDUMP)
        .args(["-vv", "-n", "-r"])
        .arg(&path)
        .output()
        .expect("run tcpdump");
    if std::env::var_os("PKTD_ANON_KEEP_PCAP").is_none() {
        std::fs::remove_file(&path).ok();
    }
    assert!(out.status.success(), "tcpdump failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn v4s(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

fn v6s(a: [u8; 16]) -> String {
    std::net::Ipv6Addr::from(a).to_string()
}

#[track_caller]
fn assert_clean(text: &str) {
    for bad in ["bad cksum", "incorrect", "bad udp cksum", "bad tcp cksum"] {
        assert!(!text.contains(bad), "tcpdump says {bad:?}:\n{text}");
    }
}

#[test]
fn tcpdump_verifies_rewritten_frames() {
    let frames = frames();
    // The frames are right to begin with, as tcpdump sees them.
    let before = tcpdump(&frames, "before");
    assert_clean(&before);
    assert!(before.contains(&v4s(V4_A)) && before.contains(&v6s(V6_A)));
    for (mac, payload) in [
        (MacMode::Keep, PayloadMode::Keep),
        (MacMode::Hash, PayloadMode::Keep),
        (MacMode::Zero, PayloadMode::Zero),
    ] {
        let mut anon = anonymizer(mac, payload);
        let rewritten: Vec<Vec<u8>> = frames
            .iter()
            .map(|f| {
                let mut f = f.clone();
                let wire = f.len() as u32;
                anon.rewrite(&mut f, wire);
                f
            })
            .collect();
        let text = tcpdump(&rewritten, &format!("{mac:?}-{payload:?}"));
        assert_clean(&text);
        for a in [V4_A, V4_B] {
            assert!(!text.contains(&v4s(a)), "{} leaked:\n{text}", v4s(a));
            assert!(
                text.contains(&v4s(img4(a))),
                "{} missing:\n{text}",
                v4s(img4(a))
            );
        }
        for a in [V6_A, V6_B] {
            assert!(!text.contains(&v6s(a)), "{} leaked:\n{text}", v6s(a));
            assert!(
                text.contains(&v6s(img6(a))),
                "{} missing:\n{text}",
                v6s(img6(a))
            );
        }
        // Quoted, routed and target addresses, where the payload is kept.
        if payload == PayloadMode::Keep {
            for a in [V4_C, V4_D] {
                assert!(!text.contains(&v4s(a)), "{} leaked:\n{text}", v4s(a));
                assert!(
                    text.contains(&v4s(img4(a))),
                    "{} missing:\n{text}",
                    v4s(img4(a))
                );
            }
            for a in [V6_C, V6_D] {
                assert!(!text.contains(&v6s(a)), "{} leaked:\n{text}", v6s(a));
                assert!(
                    text.contains(&v6s(img6(a))),
                    "{} missing:\n{text}",
                    v6s(img6(a))
                );
            }
        }
    }
}
