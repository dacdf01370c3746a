//! The policy file (`pktd_daemon::policy::Policy::parse`) on arbitrary
//! text, and when it loads, the one authorization function
//! (`policy::grant`) on a few clients and requests.
//!
//! Checked: nothing panics; an error names a line of the file; and every
//! grant stays within the rules of the principal that matched: the
//! namespace, interface and directions it allows, its snaplen, ring,
//! quotas, filter cost, filter, record directory and injection rules; a client no
//! principal matches gets nothing but its own (empty) lists.
//!
//! Filters in the policy are compiled by libpcap, so this also feeds
//! libpcap's parser whatever expressions the fuzzer writes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pktd_common::{DIR_IN, DIR_OUT, MAX_CAPLEN};
use pktd_daemon::policy::{
    Ask, CaptureGrant, Denied, Grant, HeaderView, MAX_SNAPLEN, Peer, Policy, PolicyError, Rules,
    Scope, grant,
};
use pktd_proto::{Direction, FilterSpec, OpenCapture, RecordingRequest, Rotation};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let policy = match Policy::parse(text, "fuzz.toml") {
        Ok(policy) => policy,
        Err(error) => return check_error(text, &error),
    };
    for peer in peers(text) {
        let rules = policy.rules_for(&peer);
        for ask in &asks() {
            check_grant(&policy, &peer, rules, ask);
        }
    }
});

/// A refusal names a line of the file (or the line just past its end).
fn check_error(text: &str, error: &PolicyError) {
    let message = error.to_string();
    let line = match error {
        PolicyError::Syntax { line, column, .. } => {
            assert!(*column >= 1, "{message}");
            *line
        }
        PolicyError::Invalid { line, .. } => *line,
        // The account databases could not be read: not the text's doing.
        PolicyError::Read { .. } => return,
    };
    let lines = text.split('\n').count();
    assert!(
        (1..=lines).contains(&line),
        "an error on line {line} of a {lines}-line file: {message}"
    );
}

/// Root, nobody, a few usual ids, and the first numbers the text names
/// (the ids its principals are likely to list).
fn peers(text: &str) -> Vec<Peer> {
    let mut ids: Vec<u32> = vec![0, 1000, 1001, 2000, 65534];
    ids.extend(
        text.split(|c: char| !c.is_ascii_digit())
            .filter_map(|word| word.parse::<u32>().ok())
            .take(4),
    );
    let mut peers: Vec<Peer> = ids
        .iter()
        .flat_map(|&uid| [(uid, uid), (uid, 65534), (65534, uid)])
        .map(|(uid, gid)| Peer { uid, gid, pid: 1 })
        .collect();
    peers.dedup();
    peers
}

/// Requests of every kind, in and out of what a policy usually allows.
fn asks() -> Vec<Request> {
    let mut asks = vec![
        Request::DaemonStats,
        Request::Recordings,
        Request::Interfaces,
    ];
    let places = [
        ("", "eth0"),
        ("-", "veth0"),
        ("lab1", "veth1"),
        ("lab2", "lo"),
        ("/proc/1/ns/net", "wlan0"),
        ("bad/name", "eth0"),
        ("lab1", "not/an:interface"),
    ];
    for (i, (netns, interface)) in places.into_iter().enumerate() {
        let direction = [Direction::In, Direction::Out, Direction::InOut][i % 3];
        let capture = OpenCapture {
            netns: netns.to_owned(),
            interface: interface.to_owned(),
            direction,
            snaplen: [0, 64, 100_000][i % 3],
            headers_only: i % 4 == 1,
            filter: FilterSpec::Expression("udp".to_owned()),
            optimize: true,
            packet_count: [0, 5][i % 2],
            buffer_bytes: [0, 1 << 31][i % 2],
            stats_interval_ms: [0, 0, 1000][i % 3],
            immediate: i % 2 == 0,
            zero_copy: i % 3 != 2,
        };
        asks.push(Request::Recording(RecordingRequest {
            capture: capture.clone(),
            pattern: "fuzz-%d.pcap".to_owned(),
            rotation: Rotation::default(),
            pcapng: false,
        }));
        asks.push(Request::Capture(capture));
        asks.push(Request::Inject {
            netns: netns.to_owned(),
            interface: interface.to_owned(),
        });
    }
    asks
}

/// A request, owned (an [`Ask`] borrows one).
enum Request {
    Capture(OpenCapture),
    Recording(RecordingRequest),
    Inject { netns: String, interface: String },
    DaemonStats,
    Recordings,
    Interfaces,
}

impl Request {
    fn ask(&self) -> Ask<'_> {
        match self {
            Self::Capture(capture) => Ask::Capture(capture),
            Self::Recording(recording) => Ask::Recording(recording),
            Self::Inject { netns, interface } => Ask::Inject { netns, interface },
            Self::DaemonStats => Ask::DaemonStats,
            Self::Recordings => Ask::Recordings,
            Self::Interfaces => Ask::Interfaces,
        }
    }
}

fn check_grant(policy: &Policy, peer: &Peer, rules: Option<&Rules>, request: &Request) {
    let result = grant(policy, peer, request.ask());
    let scope = if peer.uid == 0 {
        Scope::All
    } else {
        Scope::Uid(peer.uid)
    };
    let Some(rules) = rules else {
        match (request, &result) {
            (Request::DaemonStats | Request::Recordings, Ok(Grant::Scope(got))) => {
                assert_eq!(*got, scope)
            }
            (
                Request::Capture(_)
                | Request::Recording(_)
                | Request::Inject { .. }
                | Request::Interfaces,
                Err(Denied::NoPrincipal { .. }),
            ) => {}
            (_, other) => panic!("{peer:?} has no principal, yet: {other:?}"),
        }
        return;
    };
    match (request, result) {
        (Request::DaemonStats | Request::Recordings, Ok(Grant::Scope(got))) => {
            assert_eq!(got, scope)
        }
        (Request::Capture(asked), Ok(Grant::Capture(got))) => {
            check_capture(peer, rules, asked, &got)
        }
        (Request::Recording(asked), Ok(Grant::Recording(got))) => {
            assert_eq!(asked.capture.stats_interval_ms, 0, "a counting recording");
            check_capture(peer, rules, &asked.capture, &got.capture);
            let directory = rules.record_directory.as_ref();
            assert_eq!(Some(&got.directory), directory);
            assert!(got.directory.is_absolute());
            assert_eq!(got.owner, (peer.uid, peer.gid));
            let allowance = (rules.disk_allowance != 0).then_some(rules.disk_allowance);
            assert_eq!(got.disk_allowance, allowance);
        }
        (Request::Interfaces, Ok(Grant::Interfaces(got))) => {
            // A listing shows what a capture would be granted, no more.
            assert_eq!(got.netns, rules.netns);
            for interface in ["eth0", "veth1", "lo", "wlan0"] {
                assert_eq!(got.shows(interface), rules.allows_interface(interface));
            }
        }
        (Request::Inject { netns, interface }, Ok(Grant::Inject(got))) => {
            assert!(rules.allows_netns(netns) && rules.allows_interface(interface));
            assert_eq!(&got.interface, interface);
            assert_eq!(Some(&got.rules), rules.inject.as_ref());
        }
        (Request::Capture(_) | Request::Recording(_) | Request::Inject { .. }, Err(denied)) => {
            assert!(
                !matches!(denied, Denied::NoPrincipal { .. }),
                "{peer:?} has principal {:?}, yet: {denied}",
                rules.principal
            );
            let _ = denied.to_string();
        }
        (_, other) => panic!("a request answered with the wrong kind of grant: {other:?}"),
    }
}

/// A capture grant is the request cut to the rules, never more.
fn check_capture(peer: &Peer, rules: &Rules, asked: &OpenCapture, got: &CaptureGrant) {
    assert_eq!(got.principal, rules.principal);
    assert!(
        rules.allows_netns(&asked.netns),
        "{asked:?} under {rules:?}"
    );
    assert!(rules.allows_interface(&asked.interface));
    assert_eq!(
        (&got.netns_name, &got.interface),
        (&asked.netns, &asked.interface)
    );
    let spec = &got.spec;
    let (inbound, outbound) = match asked.direction {
        Direction::In => (true, false),
        Direction::Out => (false, true),
        Direction::InOut => (true, true),
    };
    assert!(spec.directions & DIR_IN == 0 || (inbound && rules.directions.inbound));
    assert!(spec.directions & DIR_OUT == 0 || (outbound && rules.directions.outbound));
    assert!(got.snaplen >= 1 && got.snaplen <= rules.max_snaplen);
    if asked.snaplen != 0 {
        assert!(got.snaplen <= asked.snaplen);
    }
    let fits = pktd_daemon::capture::ring_size(spec.ring_bytes)
        .map_or(MAX_CAPLEN, pktd_common::largest_record);
    assert_eq!(spec.snaplen, got.snaplen.min(MAX_CAPLEN).min(fits));
    assert_eq!(spec.immediate, asked.immediate);
    assert!(spec.ring_bytes <= rules.ring_bytes);
    assert_eq!(got.policy_filter, rules.filter);
    let window = (rules.max_snaplen < MAX_SNAPLEN).then_some(rules.max_snaplen);
    assert_eq!(got.window, window);
    let cut = rules.snap_headers || asked.headers_only;
    let hidden = rules
        .anonymize
        .as_ref()
        .is_some_and(|anonymize| anonymize.payload == pktd_anon::PayloadMode::Zero);
    let view = match (cut, hidden) {
        (true, _) => Some(HeaderView::Cut),
        (false, true) => Some(HeaderView::Filter),
        (false, false) => None,
    };
    assert_eq!(got.headers, view);
    assert_eq!(got.anonymize, rules.anonymize);
    if rules.packet_quota != 0 {
        assert!(spec.packet_quota != 0 && spec.packet_quota <= rules.packet_quota);
    }
    assert_eq!(spec.byte_quota, rules.byte_quota);
    assert_eq!(spec.count_only, asked.stats_interval_ms != 0);
    assert_eq!(got.packet_quota, rules.packet_quota);
    assert_eq!(got.max_sessions, rules.max_sessions);
    // Root is always served; everyone else within the principal's limit.
    let insns = if peer.uid == 0 {
        0
    } else {
        rules.max_filter_insns
    };
    assert_eq!(got.max_filter_insns, insns);
}
