//! libwire's blocking API against the real daemon, from plain threads with
//! no async runtime: captures on both paths with a timeout, a descriptor
//! poll(2) wakes on, the filter changed mid-capture, counters, injection
//! and the interface listing.

use std::time::{Duration, Instant};

use libwire::{
    CaptureBuilder, Direction,
    blocking::{Capture, Injector, Next, list_interfaces},
};
use pktd_tests::{
    corpus::{numbered_udp_frame, sequence_and_port},
    netlab::Lab,
    pktd::RealDaemon,
    sys::wait_readable,
};

const POLICY: &str = "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\ninject_filter = \"udp\"\ninject_spoof = true\n";

fn builder(lab: &Lab, daemon: &RealDaemon, filter: &str) -> CaptureBuilder {
    CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter(filter)
}

/// The next packet within `within`, as (sequence, port).
fn next(capture: &mut Capture, within: Duration) -> Option<(u64, u16)> {
    match capture.next_packet_within(within).expect("reading") {
        Next::Packet(packet) => Some(sequence_and_port(packet.data())),
        Next::Timeout => None,
        Next::End => panic!("the session ended"),
    }
}

#[test]
fn a_blocking_capture_reads_waits_polls_and_changes_its_filter() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("blocking", POLICY, &[]);
    for zero_copy in [true, false] {
        let mut capture = Capture::open(
            builder(&lab, &daemon, "udp dst port 7300")
                .zero_copy(zero_copy)
                .immediate(true),
        )
        .expect("opens");
        assert_eq!(capture.get_ref().zero_copy(), zero_copy);

        // Nothing sent: a timeout, after about the time given.
        let start = Instant::now();
        assert_eq!(next(&mut capture, Duration::from_millis(200)), None);
        let waited = start.elapsed();
        assert!(
            waited >= Duration::from_millis(190) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        assert!(matches!(capture.try_next_packet(), Ok(Next::Timeout)));

        // The descriptor wakes poll(2) when a packet comes.
        let sender = lab.sender();
        sender.send(&numbered_udp_frame(7300, 1, 18));
        assert!(
            wait_readable(std::os::fd::AsRawFd::as_raw_fd(&capture), 2000),
            "zero copy {zero_copy}: the descriptor did not wake"
        );
        assert_eq!(next(&mut capture, Duration::from_secs(2)), Some((1, 7300)));

        // A new filter applies to the packets after it.
        capture
            .set_filter("udp dst port 7301", true)
            .expect("new filter");
        sender.send(&numbered_udp_frame(7300, 2, 18));
        sender.send(&numbered_udp_frame(7301, 3, 18));
        assert_eq!(next(&mut capture, Duration::from_secs(2)), Some((3, 7301)));
        assert_eq!(next(&mut capture, Duration::from_millis(200)), None);

        let stats = capture.stats().expect("stats");
        assert_eq!(stats.dropped, 0);
        assert!(stats.matched >= 2, "{stats:?}");
        capture.close().expect("closes");
    }
}

#[test]
fn blocking_injection_and_listing() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("blocking-inject", POLICY, &[]);
    let interfaces = list_interfaces(&daemon.socket).expect("listing");
    assert!(
        interfaces
            .iter()
            .any(|i| i.name == lab.capture_if && i.netns == lab.capture_ns && i.up),
        "{interfaces:?}"
    );

    // Frames injected on the sender's side arrive on the capture side.
    let mut capture =
        Capture::open(builder(&lab, &daemon, "udp dst port 7302").immediate(true)).expect("opens");
    let mut injector =
        Injector::open(&daemon.socket, &lab.sender_ns, &lab.sender_if).expect("injector");
    let frames: Vec<Vec<u8>> = (0..3).map(|i| numbered_udp_frame(7302, i, 18)).collect();
    let verdicts = injector.inject(&frames).expect("injects");
    assert!(
        verdicts.iter().all(|v| *v == libwire::InjectVerdict::Sent),
        "{verdicts:?}"
    );
    for sequence in 0..3 {
        assert_eq!(
            next(&mut capture, Duration::from_secs(2)),
            Some((sequence, 7302))
        );
    }
    capture.close().expect("closes");
}
