//! Packet injection on a real interface: a [`FrameSender`] on the sender end
//! of a lab's veth pair, what it lets through watched with pktd's own
//! capture on the other end.

use std::{net::Ipv4Addr, os::fd::AsRawFd, process::Command};

use pktd_common::DIR_IN;
use pktd_daemon::{
    capture::{Attachment, ClientSpec, Engine, Hook, Ring},
    inject::{FrameSender, InjectError, Rate, Refused},
    policy::InjectRules,
};
use pktd_tests::{netlab::Lab, sys};

/// The sender interface's and the peer's addresses, as the namespaces
/// report them.
struct Addresses {
    own_mac: [u8; 6],
    own_ip: Ipv4Addr,
    peer_mac: [u8; 6],
    peer_ip: Ipv4Addr,
}

/// `ip -n NS -o ARGS...`, one line per object.
fn ip_output(ns: &str, args: &[&str]) -> String {
    let output = Command::new("ip")
        .args(["-n", ns, "-o"])
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        output.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("ip prints UTF-8")
}

/// The word after `key` in `text`.
fn word_after<'a>(text: &'a str, key: &str) -> &'a str {
    let mut words = text.split_whitespace();
    words
        .by_ref()
        .find(|word| *word == key)
        .unwrap_or_else(|| panic!("no {key} in {text:?}"));
    words
        .next()
        .unwrap_or_else(|| panic!("nothing after {key}"))
}

fn mac_and_ip(ns: &str, interface: &str) -> ([u8; 6], Ipv4Addr) {
    let link = ip_output(ns, &["link", "show", "dev", interface]);
    let mac_text = word_after(&link, "link/ether");
    let mut mac = [0u8; 6];
    let octets: Vec<u8> = mac_text
        .split(':')
        .map(|octet| u8::from_str_radix(octet, 16).expect("a hex octet"))
        .collect();
    mac.copy_from_slice(&octets);
    let addr = ip_output(ns, &["-4", "addr", "show", "dev", interface]);
    let ip = word_after(&addr, "inet")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .expect("an IPv4 address");
    (mac, ip)
}

fn addresses(lab: &Lab) -> Addresses {
    let (own_mac, own_ip) = mac_and_ip(&lab.sender_ns, &lab.sender_if);
    let (peer_mac, peer_ip) = mac_and_ip(&lab.capture_ns, &lab.capture_if);
    Addresses {
        own_mac,
        own_ip,
        peer_mac,
        peer_ip,
    }
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|pair| u32::from(pair[0]) << 8 | u32::from(pair.get(1).copied().unwrap_or(0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An Ethernet/IPv4/ICMP frame with correct checksums: an echo request
/// (type 8) or reply (type 0) with sequence number `sequence` and
/// `payload` bytes of data.
fn icmp(
    src_mac: [u8; 6],
    dst_mac: [u8; 6],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    icmp_type: u8,
    sequence: u16,
    payload: usize,
) -> Vec<u8> {
    let mut message = vec![icmp_type, 0, 0, 0, 0x12, 0x34];
    message.extend_from_slice(&sequence.to_be_bytes());
    message.extend((0..payload).map(|i| i as u8));
    let sum = checksum(&message);
    message[2..4].copy_from_slice(&sum.to_be_bytes());

    let total_len = (20 + message.len()) as u16;
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total_len.to_be_bytes());
    ip.extend_from_slice(&sequence.to_be_bytes());
    ip.extend_from_slice(&[0x40, 0, 64, 1, 0, 0]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    let sum = checksum(&ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());

    let mut frame = Vec::new();
    frame.extend_from_slice(&dst_mac);
    frame.extend_from_slice(&src_mac);
    frame.extend_from_slice(&[0x08, 0x00]);
    frame.extend_from_slice(&ip);
    frame.extend_from_slice(&message);
    frame
}

impl Addresses {
    /// An echo request from the sender interface to the peer.
    fn echo(&self, sequence: u16, payload: usize) -> Vec<u8> {
        icmp(
            self.own_mac,
            self.peer_mac,
            self.own_ip,
            self.peer_ip,
            8,
            sequence,
            payload,
        )
    }
}

const ECHO_TO_TEN_SLASH_EIGHT: &str = "icmp[icmptype] = icmp-echo and dst net 10.0.0.0/8";

fn rules(filter: &str, rate_pps: u32, spoof: bool) -> InjectRules {
    InjectRules {
        filter: filter.to_owned(),
        rate_pps,
        rate_bps: 1_000_000,
        spoof,
    }
}

/// pktd's capture on the peer, of every IPv4 frame arriving there (not
/// ARP: the peer's answers to the echo requests make the sender answer its
/// neighbour solicitations).
struct Remote {
    _attachment: Attachment,
    client: Ring,
}

impl Remote {
    fn watch(lab: &Lab) -> Self {
        let mut attachment = Attachment::attach(
            &lab.capture_netns(),
            &lab.capture_if,
            Engine::default(),
            Hook::Tc,
        )
        .expect("attaching");
        let spec = ClientSpec {
            directions: DIR_IN,
            ..ClientSpec::default()
        };
        let program = pktd_filter::compile("ip", true, 262_144).unwrap();
        let client = attachment.add_client(&spec, &program).expect("a client");
        Self {
            _attachment: attachment,
            client,
        }
    }

    /// Every frame that arrived, until none has for 300 ms.
    fn seen(&mut self) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        loop {
            while let Some(record) = self.client.next_record() {
                frames.push(record.data);
            }
            if !sys::wait_readable(self.client.as_raw_fd(), 300) {
                return frames;
            }
        }
    }
}

/// A sender and its rate, as the daemon pairs them for one user.
struct Injector {
    sender: FrameSender,
    rate: Rate,
}

impl Injector {
    fn inject(&mut self, frame: &[u8]) -> Result<(), Refused> {
        self.sender.inject(frame, &mut self.rate)
    }

    fn sent(&self) -> u64 {
        self.sender.sent()
    }

    fn refused(&self) -> u64 {
        self.sender.refused()
    }
}

fn open_sender(
    lab: &Lab,
    interface: &str,
    rules: &InjectRules,
) -> Result<FrameSender, InjectError> {
    FrameSender::open(
        &lab.sender_netns().open().expect("the sender namespace"),
        interface,
        rules,
    )
}

fn open(lab: &Lab, rules: &InjectRules) -> Injector {
    Injector {
        sender: open_sender(lab, &lab.sender_if, rules).expect("opening an injector"),
        rate: Rate::new(rules, std::time::Instant::now()),
    }
}

#[test]
fn a_matching_frame_from_the_interface_arrives_byte_identical() {
    let lab = Lab::new();
    let addresses = addresses(&lab);
    let mut peer = Remote::watch(&lab);
    let mut injector = open(&lab, &rules(ECHO_TO_TEN_SLASH_EIGHT, 10, false));
    let frame = addresses.echo(1, 56);
    assert_eq!(injector.inject(&frame), Ok(()));
    assert_eq!((injector.sent(), injector.refused()), (1, 0));
    assert_eq!(peer.seen(), vec![frame]);
}

/// Whether a refusal is of the expected kind.
type RefusalKind = fn(&Refused) -> bool;

#[test]
fn refused_frames_never_reach_the_peer() {
    let lab = Lab::new();
    let a = addresses(&lab);
    let mut peer = Remote::watch(&lab);
    let mut injector = open(&lab, &rules(ECHO_TO_TEN_SLASH_EIGHT, 1000, false));
    let spoofed_mac = [0x02, 0x42, 0, 0, 0, 0x99];
    let spoofed_ip = Ipv4Addr::new(
        a.own_ip.octets()[0],
        a.own_ip.octets()[1],
        a.own_ip.octets()[2],
        99,
    );

    let bad_checksum = {
        let mut frame = a.echo(6, 8);
        frame[25] ^= 0x40;
        frame
    };
    let inconsistent = {
        // 4 bytes more than the IPv4 total length says, in a frame longer
        // than the minimum: not padding.
        let mut frame = a.echo(7, 30);
        frame.extend_from_slice(&[0; 4]);
        frame
    };
    let truncated = a.echo(5, 8)[..14 + 12].to_vec();
    let cases: Vec<(&str, Vec<u8>, RefusalKind)> = vec![
        (
            "spoofed source MAC",
            icmp(spoofed_mac, a.peer_mac, a.own_ip, a.peer_ip, 8, 1, 8),
            |r| matches!(r, Refused::SpoofedMac { .. }),
        ),
        (
            "spoofed source IP",
            icmp(a.own_mac, a.peer_mac, spoofed_ip, a.peer_ip, 8, 2, 8),
            |r| matches!(r, Refused::SpoofedIp { .. }),
        ),
        (
            "outside the filter (an echo reply)",
            icmp(a.own_mac, a.peer_mac, a.own_ip, a.peer_ip, 0, 3, 8),
            |r| *r == Refused::Filtered,
        ),
        ("over the MTU", a.echo(4, 1500 - 20 - 8 + 1), |r| {
            matches!(
                r,
                Refused::TooLarge {
                    len: 1515,
                    mtu: 1500,
                    headers: 14
                }
            )
        }),
        ("truncated IP header", truncated, |r| {
            matches!(r, Refused::Malformed { .. })
        }),
        ("bad IPv4 checksum", bad_checksum, |r| {
            matches!(r, Refused::Ipv4Checksum { .. })
        }),
        ("inconsistent lengths", inconsistent, |r| {
            matches!(r, Refused::LengthMismatch { .. })
        }),
        ("shorter than an Ethernet header", vec![0xff; 13], |r| {
            matches!(r, Refused::TooShort { len: 13 })
        }),
    ];
    for (name, frame, expected) in &cases {
        let refused = injector
            .inject(frame)
            .expect_err(&format!("{name} should be refused"));
        assert!(
            expected(&refused),
            "{name}: refused as {refused:?}: {refused}"
        );
        assert!(!refused.to_string().is_empty());
    }
    // The largest frame the MTU allows goes through, as does a marker.
    let largest = a.echo(8, 1500 - 20 - 8);
    assert_eq!(injector.inject(&largest), Ok(()));
    let marker = a.echo(9, 8);
    assert_eq!(injector.inject(&marker), Ok(()));
    assert_eq!(injector.refused(), cases.len() as u64);
    assert_eq!(injector.sent(), 2);
    assert_eq!(
        peer.seen(),
        vec![largest, marker],
        "only the accepted frames arrive"
    );
}

#[test]
fn the_packet_rate_limits_a_burst_and_refills() {
    let lab = Lab::new();
    let a = addresses(&lab);
    let mut peer = Remote::watch(&lab);
    let mut injector = open(&lab, &rules(ECHO_TO_TEN_SLASH_EIGHT, 5, false));
    let frames: Vec<Vec<u8>> = (0..20).map(|sequence| a.echo(sequence, 8)).collect();
    let mut accepted = Vec::new();
    for frame in &frames {
        match injector.inject(frame) {
            Ok(()) => accepted.push(frame.clone()),
            Err(refused) => assert_eq!(refused, Refused::PacketRate { pps: 5 }),
        }
    }
    assert!(
        (5..=6).contains(&accepted.len()),
        "{} of 20 accepted at 5 packets/s",
        accepted.len()
    );
    assert_eq!(injector.sent(), accepted.len() as u64);
    assert_eq!(injector.refused(), 20 - accepted.len() as u64);
    assert_eq!(
        peer.seen(),
        accepted,
        "the peer sees exactly the accepted frames"
    );

    // After the 300 ms of watching, at least one more token has come in.
    let again = a.echo(100, 8);
    assert_eq!(injector.inject(&again), Ok(()));
    assert_eq!(peer.seen(), vec![again]);
}

#[test]
fn the_byte_rate_limits_too() {
    let lab = Lab::new();
    let a = addresses(&lab);
    let mut injector = open(
        &lab,
        &InjectRules {
            rate_bps: 1000,
            ..rules("", 1000, false)
        },
    );
    // 14 + 20 + 8 + 358 = 400 bytes: two fit in the burst, the third not.
    assert_eq!(injector.inject(&a.echo(1, 358)), Ok(()));
    assert_eq!(injector.inject(&a.echo(2, 358)), Ok(()));
    assert_eq!(
        injector.inject(&a.echo(3, 358)),
        Err(Refused::ByteRate { bps: 1000 })
    );
    assert!(matches!(
        injector.inject(&a.echo(4, 1000)),
        Err(Refused::BeyondBurst { bps: 1000, .. })
    ));
}

#[test]
fn spoofing_allowed_lets_other_addresses_through() {
    let lab = Lab::new();
    let a = addresses(&lab);
    let mut peer = Remote::watch(&lab);
    let mut injector = open(&lab, &rules(ECHO_TO_TEN_SLASH_EIGHT, 100, true));
    let spoofed = [
        icmp(
            [0x02, 0x42, 0, 0, 0, 0x99],
            a.peer_mac,
            a.own_ip,
            a.peer_ip,
            8,
            1,
            8,
        ),
        icmp(
            a.own_mac,
            a.peer_mac,
            Ipv4Addr::new(10, 200, 0, 7),
            a.peer_ip,
            8,
            2,
            8,
        ),
    ];
    for frame in &spoofed {
        assert_eq!(injector.inject(frame), Ok(()));
    }
    // The other checks still apply.
    assert_eq!(
        injector.inject(&icmp(a.own_mac, a.peer_mac, a.own_ip, a.peer_ip, 0, 3, 8)),
        Err(Refused::Filtered)
    );
    assert_eq!(peer.seen(), spoofed.to_vec());
}

#[test]
fn the_peer_end_is_not_the_interface() {
    // The injector reads the interface's addresses inside its namespace: the
    // peer's MAC and IP, a namespace away, are someone else's.
    let lab = Lab::new();
    let a = addresses(&lab);
    let mut injector = open(&lab, &rules("", 100, false));
    let as_peer = icmp(a.peer_mac, a.own_mac, a.peer_ip, a.own_ip, 8, 1, 8);
    assert!(matches!(
        injector.inject(&as_peer),
        Err(Refused::SpoofedMac { .. })
    ));
    let peer_ip_only = icmp(a.own_mac, a.peer_mac, a.peer_ip, a.own_ip, 8, 1, 8);
    assert!(matches!(
        injector.inject(&peer_ip_only),
        Err(Refused::SpoofedIp { .. })
    ));
}

#[test]
fn opening_a_missing_interface_says_so() {
    let lab = Lab::new();
    match open_sender(&lab, &lab.capture_if, &rules("", 1, false)) {
        Err(error @ InjectError::NoInterface { .. }) => {
            assert!(error.to_string().contains(&lab.capture_if), "{error}");
        }
        other => panic!("the peer's interface is in another namespace: {other:?}"),
    }
}
