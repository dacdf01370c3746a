//! Privacy policies on the real daemon and kernel: header-only views.
//!
//! A veth lab, the daemon in process, frames from the project's corpus
//! sent from the peer; every delivered packet must be the sent frame cut
//! where its headers end (what `pktd_filter::header_end` says, itself
//! checked against etherparse in `headers.rs`), and the client's filter
//! must not see past the cut.

use std::time::Duration;

use libwire::{Capture, Direction};
use pktd_daemon::policy::Policy;
use pktd_filter::header_end;
use pktd_tests::{corpus, daemon::TestDaemon, netlab::Lab};
use tokio::time::timeout;

/// Root on the lab's interface, with `extra` keys.
fn policy(lab: &Lab, extra: &str) -> Policy {
    Policy::parse(
        &format!(
            "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"{ns}\"]\n\
             interfaces = [\"{iface}\"]\n{extra}\n",
            ns = lab.capture_ns,
            iface = lab.capture_if,
        ),
        "privacy.toml",
    )
    .expect("a valid policy")
}

/// Reads packets until `idle` passes without one.
async fn collect(capture: &mut Capture, idle: Duration) -> Vec<(Vec<u8>, u32)> {
    let mut packets = Vec::new();
    while let Ok(next) = timeout(idle, capture.next_packet()).await {
        match next.expect("reading packets") {
            Some(packet) => packets.push((packet.data, packet.wire_len)),
            None => break,
        }
    }
    packets
}

async fn open(daemon: &TestDaemon, lab: &Lab, filter: &str, headers: bool) -> Capture {
    daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .headers_only(headers)
        .filter(filter)
        .open()
        .await
        .expect("opening")
}

/// Corpus frames of every kind (VLAN tags, IP options, IPv6 extension
/// headers, fragments, ARP, runts). Once cut, frames cannot be told apart
/// by content: they are matched in order (a veth keeps it).
fn frames() -> Vec<Vec<u8>> {
    corpus::packets(400, 0x9e11)
        .into_iter()
        .map(|packet| packet.bytes)
        .collect()
}

/// Sends the frames in order, one by one; those the veth takes (a frame
/// longer than its MTU allows is refused with EMSGSIZE).
fn send_all(lab: &Lab, frames: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let sender = lab.sender();
    frames
        .iter()
        .filter(
            |frame| match sender.send_batch(std::slice::from_ref(frame)) {
                Ok(1) => true,
                Err(err) if err.raw_os_error() == Some(libc::EMSGSIZE) => false,
                other => panic!("sending: {other:?}"),
            },
        )
        .cloned()
        .collect()
}

/// What a header-only session must get of `frames`: each cut at its
/// headers (and at `snaplen`), the frames whose headers a load runs past
/// not at all.
fn cuts(frames: &[Vec<u8>], snaplen: u32) -> Vec<(Vec<u8>, u32)> {
    frames
        .iter()
        .filter_map(|frame| {
            let end = header_end(frame, frame.len() as u32)?.min(snaplen);
            let end = (end as usize).min(frame.len());
            Some((frame[..end].to_vec(), frame.len() as u32))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_only_policy_cuts_every_packet_after_its_headers() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, "snap = \"headers\""));
    // The client asks for whole packets: the policy cuts them anyway.
    let mut capture = open(&daemon, &lab, "", false).await;
    assert!(capture.headers_only(), "the policy's cut is reported");
    let frames = send_all(&lab, &frames());
    let got = collect(&mut capture, Duration::from_millis(500)).await;
    let expected = cuts(&frames, u32::MAX);
    assert!(expected.len() > 300, "{} frames expected", expected.len());
    assert_eq!(got.len(), expected.len(), "every well-formed frame, once");
    for (index, (got, expected)) in got.iter().zip(&expected).enumerate() {
        assert_eq!(got, expected, "frame {index}");
    }
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asks_for_headers_and_the_smaller_cut_applies() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, "max_snaplen = 40"));
    let mut capture = open(&daemon, &lab, "", true).await;
    assert!(capture.headers_only());
    let frames = send_all(&lab, &frames());
    let got = collect(&mut capture, Duration::from_millis(500)).await;
    assert_eq!(got, cuts(&frames, 40));
    daemon.stop();
}

/// The filter sees what the client gets: payload bytes past the headers
/// read as missing (the filter fails there, as libpcap's does on a file
/// cut at the headers), header bytes as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_only_filter_cannot_read_the_payload() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, "snap = \"headers\""));
    // The first payload word of corpus::numbered_udp_frame is the high half
    // of its sequence number, 0 here; the port is a header field.
    let mut payload_probe = open(&daemon, &lab, "udp[8:4] = 0", false).await;
    let mut header_filter = open(&daemon, &lab, "udp dst port 7001", false).await;
    let sent: Vec<Vec<u8>> = (0..20)
        .map(|sequence| corpus::numbered_udp_frame(7001, sequence, 64))
        .collect();
    let sent = send_all(&lab, &sent);
    let idle = Duration::from_millis(400);
    let (probed, filtered) = tokio::join!(
        collect(&mut payload_probe, idle),
        collect(&mut header_filter, idle)
    );
    assert_eq!(probed.len(), 0, "a payload byte decided a delivery");
    assert_eq!(filtered.len(), 20, "header fields still filter");
    assert!(filtered.iter().all(|(data, _)| data.len() == 14 + 20 + 8));
    // On whole frames the probe matches every one: it is a real probe.
    let probe = pktd_filter::compile("udp[8:4] = 0", true, 262_144).unwrap();
    assert!(sent.iter().all(|frame| {
        pktd_filter::pcap_offline_filter(probe.insns(), frame, frame.len() as u32) != 0
    }));
    daemon.stop();
}

/// SIGHUP reaches running sessions: a reload that imposes the header-only
/// view cuts an open session's packets within a second, and one that lifts
/// it gives them back whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_imposes_and_lifts_the_header_only_view() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, ""));
    let mut capture = open(&daemon, &lab, "udp", false).await;
    let frame = |sequence| corpus::numbered_udp_frame(7002, sequence, 100);
    let idle = Duration::from_millis(300);
    for (extra, expected_len) in [("snap = \"headers\"", 42), ("", frame(0).len())] {
        daemon.policy.replace(policy(&lab, extra));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let sent = send_all(&lab, &[frame(1), frame(2)]);
        let got = collect(&mut capture, idle).await;
        assert_eq!(got.len(), sent.len(), "after the reload to {extra:?}");
        for (data, wire_len) in got {
            assert_eq!(
                (data.len(), wire_len as usize),
                (expected_len, frame(0).len()),
                "{extra:?}"
            );
        }
    }
    daemon.stop();
}
