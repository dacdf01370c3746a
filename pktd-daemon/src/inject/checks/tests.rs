//! The checks on hand-made frames, without root.

use etherparse::PacketBuilder;

use super::*;

const OWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const OWN_IP: [u8; 4] = [10, 77, 3, 1];
const PEER_IP: [u8; 4] = [10, 77, 3, 2];
const OWN_IP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const PEER_IP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

fn rules(filter: &str) -> InjectRules {
    InjectRules {
        filter: filter.to_owned(),
        rate_pps: 10,
        rate_bps: 1_000_000,
        spoof: false,
    }
}

fn checker_with(rules: &InjectRules) -> Checker {
    let interface = Interface {
        mtu: 1500,
        mac: OWN_MAC,
        addresses: vec![IpAddr::from(OWN_IP), IpAddr::from(OWN_IP6)],
    };
    Checker::new(interface, rules).expect("the filter compiles")
}

fn checker(filter: &str) -> Checker {
    checker_with(&rules(filter))
}

fn icmp_echo_from(mac: [u8; 6], ip: [u8; 4], payload: usize) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(mac, PEER_MAC)
        .ipv4(ip, PEER_IP, 64)
        .icmpv4_echo_request(7, 1);
    let payload = vec![0xab; payload];
    let mut frame = Vec::new();
    builder.write(&mut frame, &payload).unwrap();
    frame
}

fn icmp_echo(payload: usize) -> Vec<u8> {
    icmp_echo_from(OWN_MAC, OWN_IP, payload)
}

fn udp4(payload: usize) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(OWN_MAC, PEER_MAC)
        .ipv4(OWN_IP, PEER_IP, 64)
        .udp(1000, 2000);
    let mut frame = Vec::new();
    builder.write(&mut frame, &vec![1; payload]).unwrap();
    frame
}

fn udp6(source: [u8; 16], payload: usize) -> Vec<u8> {
    let builder = PacketBuilder::ethernet2(OWN_MAC, PEER_MAC)
        .ipv6(source, PEER_IP6, 64)
        .udp(1000, 2000);
    let mut frame = Vec::new();
    builder.write(&mut frame, &vec![1; payload]).unwrap();
    frame
}

fn arp(sender_mac: [u8; 6], sender_ip: [u8; 4]) -> Vec<u8> {
    let mut frame = Vec::new();
    frame.extend_from_slice(&[0xff; 6]);
    frame.extend_from_slice(&OWN_MAC);
    frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
    frame.extend_from_slice(&sender_mac);
    frame.extend_from_slice(&sender_ip);
    frame.extend_from_slice(&[0; 6]);
    frame.extend_from_slice(&PEER_IP);
    frame
}

/// Recomputes the IPv4 header checksum of an untagged frame.
fn fix_checksum(frame: &mut [u8]) {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let checksum = ipv4_checksum(&frame[14..14 + ihl]);
    frame[24..26].copy_from_slice(&checksum.to_be_bytes());
}

fn set_total_len(frame: &mut [u8], len: u16) {
    frame[16..18].copy_from_slice(&len.to_be_bytes());
    fix_checksum(frame);
}

#[test]
fn a_well_formed_own_frame_passes() {
    let echo_only = checker("icmp[icmptype] = icmp-echo and dst net 10.0.0.0/8");
    assert_eq!(echo_only.check(&icmp_echo(56)), Ok(()));
    let blank = checker("");
    for frame in [
        icmp_echo(0),
        udp4(10),
        udp6(OWN_IP6, 10),
        arp(OWN_MAC, OWN_IP),
    ] {
        assert_eq!(blank.check(&frame), Ok(()), "{frame:02x?}");
    }
}

#[test]
fn builder_checksums_agree_with_ours() {
    let frame = icmp_echo(10);
    let mut copy = frame.clone();
    fix_checksum(&mut copy);
    assert_eq!(frame, copy);
}

#[test]
fn short_and_truncated_frames_are_malformed() {
    let checker = checker("");
    for len in 0..14 {
        assert_eq!(
            checker.check(&icmp_echo(8)[..len]),
            Err(Refused::TooShort { len })
        );
    }
    let frame = icmp_echo(8);
    // Every cut inside the IPv4 header or the ICMP header.
    for len in 15..14 + 20 + 8 {
        assert!(
            matches!(
                checker.check(&frame[..len]),
                Err(Refused::Malformed { .. } | Refused::LengthMismatch { .. })
            ),
            "cut at {len}: {:?}",
            checker.check(&frame[..len])
        );
    }
    // IHL below 5.
    let mut bad = icmp_echo(8);
    bad[14] = 0x44;
    assert!(matches!(
        checker.check(&bad),
        Err(Refused::Malformed { .. })
    ));
    // Four VLAN tags, one more than etherparse looks through.
    let mut stacked = icmp_echo(8);
    for _ in 0..4 {
        stacked.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
    }
    assert_eq!(
        checker.check(&stacked),
        Err(Refused::Malformed {
            reason: "more than 3 VLAN or MACsec headers".to_owned()
        })
    );
    let mut three = icmp_echo(8);
    for _ in 0..3 {
        three.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
    }
    assert_eq!(checker.check(&three), Ok(()));
    // A truncated VLAN tag.
    let mut tagged = icmp_echo(8)[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00]);
    assert!(matches!(
        checker.check(&tagged),
        Err(Refused::Malformed { .. })
    ));
}

#[test]
fn a_wrong_ipv4_checksum_is_refused() {
    let checker = checker("");
    let mut frame = icmp_echo(8);
    let right = u16::from_be_bytes([frame[24], frame[25]]);
    frame[25] ^= 0x01;
    assert_eq!(
        checker.check(&frame),
        Err(Refused::Ipv4Checksum {
            found: right ^ 1,
            expected: right
        })
    );
    assert_eq!(
        checker.check(&frame).unwrap_err().to_string(),
        format!(
            "IPv4 header checksum {:#06x} is wrong (should be {right:#06x})",
            right ^ 1
        )
    );
}

#[test]
fn lengths_must_agree_with_the_frame() {
    let checker = checker("");
    // Total length larger than the frame.
    let mut frame = icmp_echo(18);
    set_total_len(&mut frame, 60);
    assert!(matches!(
        checker.check(&frame),
        Err(Refused::Malformed { .. })
    ));
    // Total length smaller than the frame, which is not padding.
    let mut frame = icmp_echo(18);
    frame.extend_from_slice(&[0; 4]);
    let refused = checker.check(&frame).unwrap_err();
    assert_eq!(
        refused,
        Refused::LengthMismatch {
            field: "IPv4 total length",
            claimed: 46,
            actual: 50,
            context: "after the Ethernet header"
        }
    );
    assert_eq!(
        refused.to_string(),
        "IPv4 total length 46 disagrees with the frame (50 bytes after the Ethernet header)"
    );
    // Padding to exactly 60 bytes is fine, beyond is not.
    let mut padded = icmp_echo(4);
    assert_eq!(padded.len(), 46);
    padded.resize(60, 0);
    assert_eq!(checker.check(&padded), Ok(()));
    padded.push(0);
    assert!(matches!(
        checker.check(&padded),
        Err(Refused::LengthMismatch { .. })
    ));
    let mut arp_padded = arp(OWN_MAC, OWN_IP);
    arp_padded.resize(60, 0);
    assert_eq!(checker.check(&arp_padded), Ok(()));
    arp_padded.push(0);
    assert!(matches!(
        checker.check(&arp_padded),
        Err(Refused::LengthMismatch { .. })
    ));
    // UDP length disagreeing with the IP payload.
    let mut frame = udp4(20);
    let udp_len = u16::from_be_bytes([frame[38], frame[39]]);
    frame[38..40].copy_from_slice(&(udp_len - 2).to_be_bytes());
    assert_eq!(
        checker.check(&frame),
        Err(Refused::LengthMismatch {
            field: "UDP length",
            claimed: 26,
            actual: 28,
            context: "of IP payload"
        })
    );
    frame[38..40].copy_from_slice(&0u16.to_be_bytes());
    assert!(matches!(
        checker.check(&frame),
        Err(Refused::LengthMismatch { .. })
    ));
    // IPv6 payload length, both ways.
    let mut frame = udp6(OWN_IP6, 20);
    frame.push(0);
    assert_eq!(
        checker.check(&frame).unwrap_err().to_string(),
        "IPv6 payload length 28 disagrees with the frame (29 bytes after the IPv6 header)"
    );
    let mut frame = udp6(OWN_IP6, 20);
    frame[18..20].copy_from_slice(&0u16.to_be_bytes());
    assert!(checker.check(&frame).is_err(), "a jumbogram");
}

#[test]
fn frames_over_the_mtu_are_refused() {
    let checker = checker("");
    // 14 + 20 + 8 + 1472 = 1514: exactly the MTU.
    assert_eq!(checker.check(&icmp_echo(1472)), Ok(()));
    let refused = checker.check(&icmp_echo(1473)).unwrap_err();
    assert_eq!(
        refused,
        Refused::TooLarge {
            len: 1515,
            mtu: 1500,
            headers: 14
        }
    );
    assert_eq!(
        refused.to_string(),
        "frame of 1515 bytes exceeds the interface MTU (1500 + 14)"
    );
    // A VLAN tag adds 4 bytes.
    let tag = |frame: Vec<u8>| {
        let mut tagged = frame[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
        tagged.extend_from_slice(&frame[12..]);
        tagged
    };
    assert_eq!(checker.check(&tag(icmp_echo(1472))), Ok(()));
    assert!(matches!(
        checker.check(&tag(icmp_echo(1473))),
        Err(Refused::TooLarge { headers: 18, .. })
    ));
}

#[test]
fn spoofed_addresses_are_refused_unless_allowed() {
    let strict = checker("");
    let other_mac = [0x02, 0, 0, 0, 0, 0x99];
    let other_ip = [10, 77, 3, 99];
    let refused = strict
        .check(&icmp_echo_from(other_mac, OWN_IP, 8))
        .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "source MAC 02:00:00:00:00:99 is not the interface's (spoofing not allowed)"
    );
    assert_eq!(
        strict.check(&icmp_echo_from(OWN_MAC, other_ip, 8)),
        Err(Refused::SpoofedIp {
            field: "source IPv4 address",
            address: IpAddr::from(other_ip)
        })
    );
    assert!(matches!(
        strict.check(&udp6(PEER_IP6, 8)),
        Err(Refused::SpoofedIp { .. })
    ));
    assert!(matches!(
        strict.check(&arp(other_mac, OWN_IP)),
        Err(Refused::SpoofedMac {
            field: "ARP sender MAC",
            ..
        })
    ));
    assert!(matches!(
        strict.check(&arp(OWN_MAC, other_ip)),
        Err(Refused::SpoofedIp {
            field: "ARP sender address",
            ..
        })
    ));
    let lax = checker_with(&InjectRules {
        spoof: true,
        ..rules("")
    });
    for frame in [
        icmp_echo_from(other_mac, OWN_IP, 8),
        icmp_echo_from(OWN_MAC, other_ip, 8),
        udp6(PEER_IP6, 8),
        arp(other_mac, other_ip),
    ] {
        assert_eq!(lax.check(&frame), Ok(()));
    }
}

#[test]
fn the_filter_decides_last() {
    let checker = checker("icmp[icmptype] = icmp-echo and dst net 10.0.0.0/8");
    assert_eq!(checker.check(&udp4(8)), Err(Refused::Filtered));
    assert_eq!(
        Refused::Filtered.to_string(),
        "not matched by the injection filter"
    );
    // A malformed frame is refused as malformed even if the filter
    // would refuse it too.
    let mut frame = udp4(8);
    frame[25] ^= 1;
    assert!(matches!(
        checker.check(&frame),
        Err(Refused::Ipv4Checksum { .. })
    ));
}

#[test]
fn no_input_panics() {
    let checker = checker("udp or icmp");
    let mut seed = 0x1234_5678_9abc_def0_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bases = [
        icmp_echo(30),
        udp4(30),
        udp6(OWN_IP6, 30),
        arp(OWN_MAC, OWN_IP),
    ];
    for round in 0..20_000 {
        let mut frame = bases[round % bases.len()].clone();
        let flips = next() % 4 + 1;
        for _ in 0..flips {
            let at = (next() as usize) % frame.len();
            frame[at] = next() as u8;
        }
        let len = (next() as usize) % (frame.len() + 1);
        frame.truncate(len);
        let _ = checker.check(&frame);
    }
}

#[test]
fn mac_prints_like_ip_link() {
    assert_eq!(
        Mac([0x02, 0xab, 0, 0x10, 0xff, 1]).to_string(),
        "02:ab:00:10:ff:01"
    );
}

/// The documented example `inject_filter` (docs/policy.example.toml, and
/// docs/security.md) lets echo requests by and nothing that could steer
/// other hosts or users: no router or neighbour advertisement, no DHCP
/// reply, no TCP segment into someone's connection, even with spoofing
/// allowed.
#[test]
fn the_example_injection_filter_refuses_frames_that_steer_others() {
    let example = InjectRules {
        spoof: true,
        ..rules("icmp[icmptype] = icmp-echo")
    };
    let checker = checker_with(&example);
    macro_rules! build {
        ($builder:expr, $payload:expr) => {{
            let mut frame = Vec::new();
            $builder.write(&mut frame, $payload).unwrap();
            frame
        }};
    }
    let ipv6 = || PacketBuilder::ethernet2(OWN_MAC, PEER_MAC).ipv6(OWN_IP6, PEER_IP6, 255);
    let ipv4 = || PacketBuilder::ethernet2(OWN_MAC, PEER_MAC).ipv4(OWN_IP, PEER_IP, 64);
    let refused = [
        (
            "router advertisement",
            build!(ipv6().icmpv6_raw(134, 0, [64, 0, 7, 8]), &[0; 8]),
        ),
        (
            "neighbour advertisement",
            build!(ipv6().icmpv6_raw(136, 0, [0xe0, 0, 0, 0]), &PEER_IP6),
        ),
        ("DHCP reply", build!(ipv4().udp(67, 68), &[2; 240])),
        ("TCP reset", build!(ipv4().tcp(22, 40000, 1, 0).rst(), &[])),
    ];
    for (what, frame) in refused {
        assert_eq!(checker.check(&frame), Err(Refused::Filtered), "{what}");
    }
    assert_eq!(checker.check(&icmp_echo(8)), Ok(()), "an echo request");
}
