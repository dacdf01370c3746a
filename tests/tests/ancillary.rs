//! Linux's ancillary loads (the packet type for `inbound` and `outbound`,
//! the ifindex, the protocol, the VLAN metadata, and the length beside
//! them) against the kernel's own: each filter runs on an AF_PACKET socket
//! (`SO_ATTACH_FILTER`, what a live tcpdump uses) and in a pktd session on
//! the same interface, and both must select the same frames of the same
//! traffic, received and sent, tagged and not, to this host, broadcast,
//! multicast and to others. Offline libpcap cannot say what these filters
//! match: the kernel is the reference.

use std::{collections::BTreeSet, os::fd::OwnedFd, process::Command, time::Duration};

use libwire::{Capture, Direction};
use pktd_common::{CbpfInsn, DIR_IN, DIR_OUT};
use pktd_daemon::{
    capture::{Attachment, ClientSpec, Engine, Hook, Ring, SlotEngine},
    netns::interface_index,
    policy::Policy,
};
use pktd_filter::{ValidProgram, compile, for_wire_view, parse_ddd, validate};
use pktd_tests::{daemon::TestDaemon, netlab::Lab, sys};

/// Frames carry `MAGIC << 16 | sequence` in their last 4 bytes.
const MAGIC: u32 = 0xa7c1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ipv4,
    Ipv6,
    Arp,
    /// 802.3 with an 802.2 LLC header (a length where the EtherType is).
    Llc,
    /// "Raw" 802.3: a length, then 0xffff (Novell's IPX).
    Raw8023,
}

const KINDS: [Kind; 5] = [Kind::Ipv4, Kind::Ipv6, Kind::Arp, Kind::Llc, Kind::Raw8023];

/// The tags a frame is sent with: none, VLAN 100 (priority 1), VLAN 200,
/// and QinQ (802.1ad 300 outside, 802.1Q 100 inside).
const TAGS: [&[(u16, u16)]; 4] = [
    &[],
    &[(0x8100, 0x2064)],
    &[(0x8100, 0x00c8)],
    &[(0x88a8, 0x012c), (0x8100, 0x0064)],
];

/// One frame of the test traffic.
struct Frame {
    bytes: Vec<u8>,
    /// Tagged as sent.
    tagged: bool,
}

fn frame(
    dst: [u8; 6],
    src: [u8; 6],
    kind: Kind,
    tags: &[(u16, u16)],
    len: usize,
    seq: u16,
) -> Frame {
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&dst);
    bytes.extend_from_slice(&src);
    for (tpid, tci) in tags {
        bytes.extend_from_slice(&tpid.to_be_bytes());
        bytes.extend_from_slice(&tci.to_be_bytes());
    }
    match kind {
        Kind::Ipv4 => {
            bytes.extend_from_slice(&[0x08, 0x00]);
            // UDP to 192.0.2.9 (nobody's): no reply comes back.
            bytes.extend_from_slice(&[0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0]);
            bytes.extend_from_slice(&[192, 0, 2, 1, 192, 0, 2, 9]);
            bytes.extend_from_slice(&[0x9c, 0x40, 0x23, 0x28, 0, 8, 0, 0]);
        }
        Kind::Ipv6 => {
            bytes.extend_from_slice(&[0x86, 0xdd]);
            bytes.extend_from_slice(&[0x60, 0, 0, 0, 0, 8, 17, 64]);
            bytes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            bytes.extend_from_slice(&[0; 11]);
            bytes.push(1);
            bytes.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
            bytes.extend_from_slice(&[0; 11]);
            bytes.push(9);
            bytes.extend_from_slice(&[0x9c, 0x40, 0x23, 0x28, 0, 8, 0, 0]);
        }
        Kind::Arp => {
            // A request for 192.0.2.9 (nobody's).
            bytes.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
            bytes.extend_from_slice(&src);
            bytes.extend_from_slice(&[192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 192, 0, 2, 9]);
        }
        Kind::Llc => bytes.extend_from_slice(&[0x00, 0x2e, 0xaa, 0xaa, 0x03, 0, 0, 0]),
        Kind::Raw8023 => bytes.extend_from_slice(&[0x00, 0x2e, 0xff, 0xff, 0, 0, 0, 0]),
    }
    bytes.resize(len - 4, 0);
    bytes.extend_from_slice(&(MAGIC << 16 | u32::from(seq)).to_be_bytes());
    Frame {
        bytes,
        tagged: !tags.is_empty(),
    }
}

/// The sequence number a frame carries, if it is one of the test's.
fn sequence(frame: &[u8]) -> Option<u16> {
    let tail: [u8; 4] = frame.get(frame.len().checked_sub(4)?..)?.try_into().ok()?;
    let word = u32::from_be_bytes(tail);
    (word >> 16 == MAGIC).then_some(word as u16)
}

/// A raw program from `tcpdump -ddd` text.
fn raw(text: &str) -> ValidProgram {
    validate(&parse_ddd(text).unwrap()).unwrap_or_else(|err| panic!("{text}: {err}"))
}

/// What libpcap compiles `expression` to for the live interface (as
/// tcpdump would run it there: the VLAN code reads the metadata).
fn live_program(lab: &Lab, expression: &str) -> ValidProgram {
    let output = Command::new("ip")
        .args(["netns", "exec", &lab.capture_ns, "tcpdump", "-ddd", "-i"])
        .args([&lab.capture_if, expression])
        .output()
        .expect("running tcpdump -ddd");
    assert!(
        output.status.success(),
        "tcpdump -ddd {expression}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    raw(&String::from_utf8(output.stdout).unwrap())
}

fn mac_of(lab: &Lab) -> [u8; 6] {
    let output = Command::new("ip")
        .args([
            "-n",
            &lab.capture_ns,
            "link",
            "show",
            "dev",
            &lab.capture_if,
        ])
        .output()
        .expect("running ip link");
    let text = String::from_utf8(output.stdout).unwrap();
    let address = text
        .split_whitespace()
        .skip_while(|word| *word != "link/ether")
        .nth(1)
        .expect("an Ethernet address");
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(address.split(':')) {
        *byte = u8::from_str_radix(part, 16).unwrap();
    }
    mac
}

struct Case {
    label: String,
    program: ValidProgram,
    /// Whether the filter decides the same on pktd's view of a frame (the
    /// tag in it) as on the kernel's (the tag in metadata): false for one
    /// that reads bytes past the MAC addresses without the VLAN metadata,
    /// which pktd evaluates as libpcap does offline. Such a case is
    /// compared on untagged frames only.
    on_tagged_frames: bool,
    /// How many of the compared frames the kernel selects.
    expect: Expect,
}

/// How many frames a case selects: a check of the reference itself.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Some, not all.
    Some,
    Nothing,
    Everything,
    Exactly(usize),
}

fn cases(lab: &Lab, ifindex: u32) -> Vec<Case> {
    let case = |label: &str, program: ValidProgram, on_tagged_frames| Case {
        label: label.to_owned(),
        program,
        on_tagged_frames,
        expect: match label {
            "ifindex (this one)" => Expect::Everything,
            "ifindex (another)" => Expect::Nothing,
            _ => Expect::Some,
        },
    };
    let expression = |text: &str| compile(text, true, 262_144).unwrap();
    // `ld <ancillary>; jeq #k; ret #65535; ret #0`, and with a mask.
    let equals = |ad: u32, k: u32| {
        raw(&format!(
            "4,32 0 0 {},21 0 1 {k},6 0 0 65535,6 0 0 0",
            0xffff_f000u32 + ad
        ))
    };
    let masked = |ad: u32, mask: u32, k: u32| {
        raw(&format!(
            "5,40 0 0 {},84 0 0 {mask},21 0 1 {k},6 0 0 65535,6 0 0 0",
            0xffff_f000u32 + ad
        ))
    };
    let mut cases = vec![
        case("inbound", expression("inbound"), true),
        case("outbound", expression("outbound"), true),
        case(
            "inbound and ether broadcast",
            expression("inbound and ether broadcast"),
            true,
        ),
        case("outbound and arp", expression("outbound and arp"), false),
        case(
            "ifindex (this one)",
            expression(&format!("ifindex {ifindex}")),
            true,
        ),
        case(
            "ifindex (another)",
            expression(&format!("ifindex {}", ifindex + 1)),
            true,
        ),
        case("greater 100", expression("greater 100"), false),
        case(
            "live: vlan 100 and udp",
            live_program(lab, "vlan 100 and udp"),
            true,
        ),
        case(
            "live: vlan and ip6",
            live_program(lab, "vlan and ip6"),
            true,
        ),
        case(
            "live: inbound and not vlan",
            live_program(lab, "inbound and not vlan"),
            true,
        ),
        // ld vlan_avail (read, so the kernel's view); len >= 100.
        case(
            "len >= 100 beside vlan_avail",
            raw("5,32 0 0 4294963248,128 0 0 0,53 0 1 100,6 0 0 65535,6 0 0 0"),
            true,
        ),
        case("vlan_avail = 1", equals(48, 1), true),
        case("vlan_tci & 0xfff = 100", masked(44, 0xfff, 100), true),
        case(
            "vlan_tci & 0xe000 = 0x2000",
            masked(44, 0xe000, 0x2000),
            true,
        ),
    ];
    for (name, protocol) in [
        ("IPv4", 0x0800),
        ("IPv6", 0x86dd),
        ("ARP", 0x0806),
        ("802.3", 0x0001),
        ("802.2", 0x0004),
    ] {
        cases.push(case(
            &format!("protocol = {name}"),
            equals(0, protocol),
            true,
        ));
    }
    for (name, packet_type) in [
        ("host", 0),
        ("broadcast", 1),
        ("multicast", 2),
        ("otherhost", 3),
        ("outgoing", 4),
    ] {
        cases.push(case(
            &format!("pkttype = {name}"),
            equals(4, packet_type),
            true,
        ));
    }
    cases
}

/// Frames of every kind, tag and length, from `src` to this host (`own`),
/// broadcast, multicast and another host, numbered from `*seq`.
fn frames(src: [u8; 6], own: [u8; 6], seq: &mut u16) -> Vec<Frame> {
    let other = [0x02, 0x77, 0, 0, 0, 9];
    let mut frames = Vec::new();
    for dst in [own, [0xff; 6], [0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb], other] {
        for kind in KINDS {
            for tags in TAGS {
                for len in [64, 98, 102, 160] {
                    frames.push(frame(dst, src, kind, tags, len, *seq));
                    *seq += 1;
                }
            }
        }
    }
    frames
}

/// The peer's MAC address in the test traffic.
const PEER: [u8; 6] = [0x02, 0x77, 0, 0, 0, 1];

fn drain(ring: &mut Ring) -> BTreeSet<u16> {
    let mut seen = BTreeSet::new();
    loop {
        while let Some(record) = ring.next_record() {
            if let Some(seq) = sequence(&record.data) {
                assert!(seen.insert(seq), "frame {seq} delivered twice");
            }
        }
        if !sys::wait_readable(std::os::fd::AsRawFd::as_raw_fd(ring), 200) {
            return seen;
        }
    }
}

fn received_by(socket: &OwnedFd) -> BTreeSet<u16> {
    sys::receive_all(socket)
        .expect("reading the AF_PACKET socket")
        .iter()
        .filter_map(|frame| sequence(frame))
        .collect()
}

/// Runs every case on `interface` (index `ifindex`, in the capture
/// namespace) in a pktd session and on an AF_PACKET socket, for each
/// engine, while `send` sends `all`; both must select the same frames.
fn compare(
    lab: &Lab,
    interface: &str,
    ifindex: u32,
    cases: &[Case],
    all: &[&Frame],
    send: &dyn Fn(),
) {
    let netns = lab.capture_netns();
    let both = ClientSpec {
        directions: DIR_IN | DIR_OUT,
        ..ClientSpec::default()
    };
    for engine in [Engine::Interpreter, Engine::PerClient, Engine::Shared] {
        let mut attachment =
            Attachment::attach(&netns, interface, engine, Hook::Tc).expect("attaching at TC");
        let mut sessions = Vec::new();
        let mut sockets = Vec::new();
        for case in cases {
            let program = for_wire_view(&case.program).unwrap();
            let ring = attachment.add_client(&both, &program).unwrap();
            let wanted = match engine {
                Engine::Interpreter => SlotEngine::Interpreted,
                _ => SlotEngine::Native,
            };
            assert_eq!(
                attachment.slot_engine(ring.slot()).unwrap(),
                wanted,
                "{engine:?}: {}",
                case.label
            );
            sessions.push(ring);
            let insns: Vec<CbpfInsn> = case.program.insns().to_vec();
            sockets.push(
                netns
                    .run(move || sys::filtered_capture_socket(ifindex, &insns))
                    .unwrap()
                    .expect("an AF_PACKET socket with the filter"),
            );
        }
        send();
        std::thread::sleep(Duration::from_millis(300));

        let mut differences = Vec::new();
        for ((case, ring), socket) in cases.iter().zip(&mut sessions).zip(&sockets) {
            let comparable = |seq: &u16| case.on_tagged_frames || !all[*seq as usize].tagged;
            let kernel: BTreeSet<u16> =
                received_by(socket).into_iter().filter(comparable).collect();
            let pktd: BTreeSet<u16> = drain(ring).into_iter().filter(comparable).collect();
            let compared = all
                .iter()
                .filter(|f| case.on_tagged_frames || !f.tagged)
                .count();
            let (least, most) = match case.expect {
                Expect::Some => (1, compared - 1),
                Expect::Nothing => (0, 0),
                Expect::Everything => (compared, compared),
                Expect::Exactly(count) => (count, count),
            };
            assert!(
                (least..=most).contains(&kernel.len()),
                "{engine:?}: the kernel's {:?} selects {} of {compared} frames",
                case.label,
                kernel.len()
            );
            if kernel != pktd {
                differences.push(format!(
                    "{}: kernel only {:?}, pktd only {:?}",
                    case.label,
                    kernel.difference(&pktd).collect::<Vec<_>>(),
                    pktd.difference(&kernel).collect::<Vec<_>>()
                ));
            }
        }
        assert!(
            differences.is_empty(),
            "{engine:?}: pktd and AF_PACKET differ:\n{}",
            differences.join("\n")
        );
    }
}

fn interface_index_in(lab: &Lab, interface: &str) -> u32 {
    let interface = interface.to_owned();
    lab.capture_netns()
        .run(move || interface_index(&interface))
        .unwrap()
        .expect("the interface's index")
}

/// Received and sent frames on one interface: the packet type (to this
/// host, broadcast, multicast, another host, sent), the ifindex, the
/// protocol (IPv4, IPv6, ARP, 802.3 with and without LLC), the VLAN
/// metadata of received frames (the kernel takes the outer tag out), and
/// the length beside it.
#[test]
fn ancillary_loads_select_what_the_kernels_af_packet_filter_selects() {
    let lab = Lab::new();
    let ifindex = interface_index_in(&lab, &lab.capture_if);
    let mac = mac_of(&lab);
    let cases = cases(&lab, ifindex);
    let mut seq = 0;
    let received = frames(PEER, mac, &mut seq);
    let sent = frames(mac, PEER, &mut seq);
    let all: Vec<&Frame> = received.iter().chain(&sent).collect();
    let send = || {
        let sender = lab.sender();
        for frame in &received {
            sender.send(&frame.bytes);
        }
        let own = lab
            .capture_netns()
            .run(|| sys::packet_socket(ifindex))
            .unwrap()
            .expect("a socket to send from the capture side");
        for frame in &sent {
            sys::send_frame(&own, &frame.bytes).expect("sending from the capture side");
        }
    };
    // The reference itself: inbound is exactly what came in, outbound
    // what went out.
    let cases: Vec<Case> = cases
        .into_iter()
        .map(|case| match case.label.as_str() {
            "inbound" => Case {
                expect: Expect::Exactly(received.len()),
                ..case
            },
            "outbound" => Case {
                expect: Expect::Exactly(sent.len()),
                ..case
            },
            _ => case,
        })
        .collect();
    compare(&lab, &lab.capture_if, ifindex, &cases, &all, &send);
}

/// Frames leaving a bridge port with their tag still in metadata (the
/// receive path took it out, the bridge forwards it so): TC egress and
/// AF_PACKET's tap both see it there.
#[test]
fn tags_held_in_metadata_on_egress_decide_as_on_af_packet() {
    let lab = Lab::new();
    let port = lab.bridge_capture_to_new_port();
    let ifindex = interface_index_in(&lab, &port);
    let cases: Vec<Case> = cases(&lab, ifindex)
        .into_iter()
        .filter(|case| {
            case.label.starts_with("live:")
                || case.label.starts_with("vlan_")
                || case.label.starts_with("len")
                || case.label.starts_with("protocol")
        })
        .map(|case| match case.label.as_str() {
            // Everything here is sent by the port.
            "live: inbound and not vlan" => Case {
                expect: Expect::Nothing,
                ..case
            },
            _ => case,
        })
        .collect();
    assert!(cases.len() >= 9, "{}", cases.len());
    let mut seq = 0;
    let forwarded = frames(PEER, [0x02, 0x77, 0, 0, 0, 2], &mut seq);
    let all: Vec<&Frame> = forwarded.iter().collect();
    let send = || {
        let sender = lab.sender();
        for frame in &forwarded {
            sender.send(&frame.bytes);
        }
    };
    compare(&lab, &port, ifindex, &cases, &all, &send);
}

async fn collect(capture: &mut Capture) -> BTreeSet<u16> {
    let mut seen = BTreeSet::new();
    while let Ok(next) =
        tokio::time::timeout(Duration::from_millis(400), capture.next_packet()).await
    {
        match next.expect("reading packets") {
            Some(packet) => {
                if let Some(seq) = sequence(&packet.data) {
                    assert!(seen.insert(seq), "frame {seq} delivered twice");
                }
            }
            None => break,
        }
    }
    seen
}

/// Through the daemon: `inbound` and `outbound` expressions, and libpcap's
/// live VLAN code given as bytecode, get what the kernel would give them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_inbound_outbound_and_live_vlan_programs() {
    let lab = Lab::new();
    let netns = lab.capture_netns();
    let capture_if = lab.capture_if.clone();
    let ifindex = netns
        .run(|| interface_index(&capture_if))
        .unwrap()
        .expect("the capture interface");
    let mac = mac_of(&lab);
    let daemon = TestDaemon::start(Policy::default_policy());
    let builder = || daemon.capture(&lab.capture_if).netns(&lab.capture_ns);
    let mut inbound = builder()
        .filter("inbound and udp")
        .open()
        .await
        .expect("inbound");
    let mut outbound = builder()
        .filter("outbound and udp")
        .open()
        .await
        .expect("outbound");
    let live_vlan = live_program(&lab, "vlan 100 and udp");
    let mut vlan = builder()
        .direction(Direction::InOut)
        .bytecode(live_vlan.insns())
        .open()
        .await
        .expect("libpcap's live vlan code as bytecode");

    let peer = [0x02, 0x77, 0, 0, 0, 1];
    let untagged: Vec<Frame> = (0..10)
        .map(|seq| frame(mac, peer, Kind::Ipv4, TAGS[0], 80, seq))
        .collect();
    let tagged: Vec<Frame> = (10..20)
        .map(|seq| frame(mac, peer, Kind::Ipv4, TAGS[1], 80, seq))
        .collect();
    let sent: Vec<Frame> = (20..30)
        .map(|seq| frame(peer, mac, Kind::Ipv4, TAGS[0], 80, seq))
        .collect();
    let sender = lab.sender();
    for frame in untagged.iter().chain(&tagged) {
        sender.send(&frame.bytes);
    }
    let own = netns
        .run(|| sys::packet_socket(ifindex))
        .unwrap()
        .expect("a socket to send from the capture side");
    for frame in &sent {
        sys::send_frame(&own, &frame.bytes).expect("sending from the capture side");
    }
    // `udp` (compiled offline) reads the EtherType where the tag is: a
    // tagged frame is not `udp` to it, as to libpcap reading a file.
    assert_eq!(collect(&mut inbound).await, (0..10).collect());
    assert_eq!(collect(&mut outbound).await, (20..30).collect());
    // The live code reads the tag from metadata and the rest past it.
    let mut got = Vec::new();
    while let Ok(next) = tokio::time::timeout(Duration::from_millis(400), vlan.next_packet()).await
    {
        match next.expect("reading packets") {
            Some(packet) => got.push(packet.data),
            None => break,
        }
    }
    let want: Vec<Vec<u8>> = tagged.iter().map(|frame| frame.bytes.clone()).collect();
    assert_eq!(got, want, "the tagged frames, tag included, in order");
}
