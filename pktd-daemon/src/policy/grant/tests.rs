//! The authorization rules, without root: policies parsed from text
//! against fixed account databases, and every refusal checked by type.

use pktd_proto::{FilterSpec, Rotation};

use super::*;
use crate::policy::accounts::Accounts;

const POLICY: &str = r#"
[[principal]]
name = "researchers"
groups = [2000]
netns = ["lab1", "-"]
interfaces = ["veth*", "eth0"]
directions = ["in"]
filter = "not port 22"
max_snaplen = 128
packet_quota = 1000
byte_quota = 5000
max_sessions = 3
ring_bytes = 65536
record_directory = "/var/lib/pktd/researchers"
disk_allowance = 1000000
inject_filter = "icmp"
inject_rate_pps = 5

[[principal]]
name = "watchers"
users = [1001]
netns = ["*"]
interfaces = ["*"]
"#;

fn policy() -> Policy {
    Policy::parse_with(POLICY, "grant.toml", &Accounts::default()).expect("the test policy")
}

fn peer(uid: u32, gid: u32) -> Peer {
    Peer { uid, gid, pid: 7 }
}

const RESEARCHER: Peer = Peer {
    uid: 1500,
    gid: 2000,
    pid: 7,
};
const WATCHER: Peer = Peer {
    uid: 1001,
    gid: 1001,
    pid: 7,
};

fn open(netns: &str, interface: &str, direction: Direction) -> OpenCapture {
    OpenCapture {
        netns: netns.into(),
        interface: interface.into(),
        direction,
        snaplen: 0,
        headers_only: false,
        filter: FilterSpec::Expression("udp".into()),
        optimize: true,
        packet_count: 0,
        buffer_bytes: 0,
        stats_interval_ms: 0,
        immediate: false,
        zero_copy: false,
    }
}

fn capture_grant(peer: &Peer, request: &OpenCapture) -> Result<CaptureGrant, Denied> {
    match grant(&policy(), peer, Ask::Capture(request))? {
        Grant::Capture(capture) => Ok(capture),
        other => panic!("a capture was granted as {other:?}"),
    }
}

#[test]
fn nobody_may_capture_record_or_inject_but_may_see_their_own() {
    let stranger = peer(4242, 4242);
    let request = open("lab1", "veth0", Direction::In);
    assert!(matches!(
        grant(&policy(), &stranger, Ask::Capture(&request)),
        Err(Denied::NoPrincipal {
            uid: 4242,
            gid: 4242
        })
    ));
    let recording = RecordingRequest {
        capture: request,
        pattern: "a-%d".into(),
        rotation: Rotation::default(),
        pcapng: false,
    };
    assert!(matches!(
        grant(&policy(), &stranger, Ask::Recording(&recording)),
        Err(Denied::NoPrincipal { .. })
    ));
    assert!(matches!(
        grant(
            &policy(),
            &stranger,
            Ask::Inject {
                netns: "lab1",
                interface: "veth0"
            }
        ),
        Err(Denied::NoPrincipal { .. })
    ));
    for ask in [Ask::DaemonStats, Ask::Recordings] {
        assert_eq!(
            grant(&policy(), &stranger, ask).unwrap(),
            Grant::Scope(Scope::Uid(4242))
        );
        assert_eq!(
            grant(&policy(), &peer(0, 0), ask).unwrap(),
            Grant::Scope(Scope::All)
        );
    }
    assert!(Scope::All.covers(5) && Scope::Uid(5).covers(5) && !Scope::Uid(5).covers(6));
}

#[test]
fn a_capture_is_cut_to_the_rules() {
    let mut request = open("lab1", "veth3", Direction::In);
    request.snaplen = 1500;
    request.buffer_bytes = 1 << 20;
    request.packet_count = 5000;
    let granted = capture_grant(&RESEARCHER, &request).unwrap();
    assert_eq!(granted.principal, "researchers");
    assert_eq!(granted.netns, Netns::parse("lab1").unwrap());
    assert_eq!(granted.snaplen, 128, "the policy's max_snaplen");
    assert_eq!(
        granted.spec,
        ClientSpec {
            directions: DIR_IN,
            snaplen: 128,
            packet_quota: 1000,
            byte_quota: 5000,
            ring_bytes: 65536,
            count_only: false,
            immediate: false,
        }
    );
    assert_eq!(granted.policy_filter.as_deref(), Some("not port 22"));
    assert_eq!(granted.window, Some(128), "its filter sees 128 bytes");
    assert_eq!((granted.packet_quota, granted.max_sessions), (1000, 3));

    // Smaller asks stay as asked.
    request.snaplen = 64;
    request.buffer_bytes = 4096;
    request.packet_count = 10;
    request.stats_interval_ms = 1000;
    let spec = capture_grant(&RESEARCHER, &request).unwrap().spec;
    assert_eq!((spec.snaplen, spec.ring_bytes), (64, 4096));
    assert_eq!(spec.packet_quota, 10, "a count is a quota too");
    assert!(spec.count_only);

    // A snaplen whose records would not fit the ring in their size class
    // is cut to one that does.
    request.snaplen = 0;
    request.buffer_bytes = 4096;
    request.stats_interval_ms = 0;
    let granted = capture_grant(&WATCHER, &request).unwrap();
    assert_eq!(
        (granted.spec.snaplen, granted.spec.ring_bytes),
        (2048, 4096),
        "a 4096-byte ring holds records of up to 2048 bytes"
    );
}

#[test]
fn a_capture_outside_the_rules_is_refused_by_type() {
    assert!(matches!(
        capture_grant(&RESEARCHER, &open("lab2", "veth0", Direction::In)),
        Err(Denied::Netns { netns, .. }) if netns == "lab2"
    ));
    assert!(matches!(
        capture_grant(&RESEARCHER, &open("lab1", "eth1", Direction::In)),
        Err(Denied::Interface { interface, .. }) if interface == "eth1"
    ));
    for direction in [Direction::Out, Direction::InOut] {
        assert!(matches!(
            capture_grant(&RESEARCHER, &open("lab1", "eth0", direction)),
            Err(Denied::Direction { direction: refused, .. }) if refused == direction
        ));
    }
    // "" and "-" both name pktd's own namespace.
    assert_eq!(
        capture_grant(&RESEARCHER, &open("", "eth0", Direction::In))
            .unwrap()
            .netns,
        Netns::Current
    );
    // A wildcard namespace still takes only names pktd accepts.
    assert!(matches!(
        capture_grant(&WATCHER, &open("../etc", "eth0", Direction::In)),
        Err(Denied::NetnsName(_))
    ));
}

#[test]
fn loopback_in_both_directions_is_captured_arriving() {
    let granted = capture_grant(&WATCHER, &open("", "lo", Direction::InOut)).unwrap();
    assert_eq!(granted.spec.directions, DIR_IN);
    assert_eq!(
        granted.spec.snaplen, MAX_CAPLEN,
        "one record holds at most this"
    );
    assert_eq!(
        granted.snaplen,
        crate::policy::rules::MAX_SNAPLEN,
        "what the filter returns"
    );
    let granted = capture_grant(&WATCHER, &open("", "eth0", Direction::InOut)).unwrap();
    assert_eq!(granted.spec.directions, DIR_IN | DIR_OUT);
    assert_eq!(granted.window, None, "no max_snaplen: no window");
}

#[test]
fn recordings_need_a_directory_and_packets() {
    let mut request = RecordingRequest {
        capture: open("lab1", "veth0", Direction::In),
        pattern: "a-%d.pcap".into(),
        rotation: Rotation::default(),
        pcapng: false,
    };
    match grant(&policy(), &RESEARCHER, Ask::Recording(&request)).unwrap() {
        Grant::Recording(recording) => {
            assert_eq!(
                recording.directory,
                PathBuf::from("/var/lib/pktd/researchers")
            );
            assert_eq!(recording.disk_allowance, Some(1_000_000));
            assert_eq!(recording.owner, (1500, 2000));
            assert_eq!(recording.capture.spec.snaplen, 128);
        }
        other => panic!("granted {other:?}"),
    }
    request.capture.interface = "eth1".into();
    assert!(matches!(
        grant(&policy(), &RESEARCHER, Ask::Recording(&request)),
        Err(Denied::Interface { .. })
    ));
    request.capture.interface = "eth0".into();
    assert!(matches!(
        grant(&policy(), &WATCHER, Ask::Recording(&request)),
        Err(Denied::NoRecordDirectory { principal }) if principal == "watchers"
    ));
    request.capture.stats_interval_ms = 100;
    assert!(matches!(
        grant(&policy(), &RESEARCHER, Ask::Recording(&request)),
        Err(Denied::CountOnlyRecording)
    ));
}

#[test]
fn injection_needs_rules_and_a_place() {
    let inject =
        |peer: &Peer, netns, interface| grant(&policy(), peer, Ask::Inject { netns, interface });
    match inject(&RESEARCHER, "-", "veth9").unwrap() {
        Grant::Inject(granted) => {
            assert_eq!(granted.netns, Netns::Current);
            assert_eq!(granted.interface, "veth9");
            assert_eq!(granted.rules.filter, "icmp");
            assert_eq!(granted.rules.rate_pps, 5);
        }
        other => panic!("granted {other:?}"),
    }
    assert!(matches!(
        inject(&RESEARCHER, "lab2", "veth0"),
        Err(Denied::InjectPlace { .. })
    ));
    assert!(matches!(
        inject(&RESEARCHER, "lab1", "lo"),
        Err(Denied::InjectPlace { .. })
    ));
    assert!(matches!(
        inject(&WATCHER, "lab1", "veth0"),
        Err(Denied::NoInjection { .. })
    ));
}

#[test]
fn a_listing_shows_the_principals_namespaces_and_interfaces_only() {
    let policy = policy();
    let Ok(Grant::Interfaces(researcher)) = grant(&policy, &RESEARCHER, Ask::Interfaces) else {
        panic!("researchers may list");
    };
    assert!(!researcher.every_netns());
    assert_eq!(researcher.netns, ["lab1", "-"]);
    for (interface, shown) in [
        ("veth0", true),
        ("veth", true),
        ("eth0", true),
        ("eth1", false),
        ("lo", false),
    ] {
        assert_eq!(researcher.shows(interface), shown, "{interface}");
    }
    let Ok(Grant::Interfaces(watcher)) = grant(&policy, &WATCHER, Ask::Interfaces) else {
        panic!("watchers may list");
    };
    assert!(watcher.every_netns() && watcher.shows("anything"));
    assert!(matches!(
        grant(&policy, &peer(4242, 4242), Ask::Interfaces),
        Err(Denied::NoPrincipal { uid: 4242, .. })
    ));
}

#[test]
fn names_linux_would_not_give_an_interface_are_refused_first() {
    let policy = policy();
    for name in [
        "",
        "veth0123456789012",
        "veth/0",
        "veth:0",
        "veth 0",
        "..",
        "veth\u{0}",
    ] {
        let request = open("lab1", name, Direction::In);
        assert!(
            matches!(
                grant(&policy, &WATCHER, Ask::Capture(&request)),
                Err(Denied::InterfaceName { .. })
            ),
            "{name:?}"
        );
    }
    let long = "veth".to_owned() + &"x".repeat(200_000);
    let Err(Denied::InterfaceName { name }) = grant(
        &policy,
        &WATCHER,
        Ask::Capture(&open("lab1", &long, Direction::In)),
    ) else {
        panic!("a long name is refused");
    };
    assert_eq!(name.len(), 32, "the refusal does not echo it whole");
    assert!(
        grant(
            &policy,
            &WATCHER,
            Ask::Capture(&open("lab1", "veth01234567890", Direction::In))
        )
        .is_ok()
    );
}
