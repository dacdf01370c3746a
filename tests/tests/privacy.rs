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
/// headers, the frames whose headers a load runs past not at all. With a
/// window (`max_snaplen`), as the user-space interpreter runs the program
/// the kernel gets: the chain stops at the window, whatever lies past it
/// (`pktd_filter::confine_to_headers`; the chain itself is checked
/// against etherparse in `headers.rs`).
fn cuts(frames: &[Vec<u8>], window: Option<u32>) -> Vec<(Vec<u8>, u32)> {
    let accept = pktd_filter::compile("", true, 262_144).unwrap();
    let program = pktd_filter::confine_to_headers(&accept, window, true).unwrap();
    frames
        .iter()
        .filter_map(|frame| {
            let wire_len = frame.len() as u32;
            let end = match window {
                None => header_end(frame, wire_len)?,
                Some(_) => match pktd_filter::interpret(&program, frame, wire_len) {
                    0 => return None,
                    end => end,
                },
            };
            let end = (end as usize).min(frame.len());
            Some((frame[..end].to_vec(), wire_len))
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
    let expected = cuts(&frames, None);
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
    assert_eq!(got, cuts(&frames, Some(40)));
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

// --- Anonymization ---------------------------------------------------

/// A key file: 32 bytes, root's, mode 0600, removed on drop.
struct KeyFile(std::path::PathBuf);

impl KeyFile {
    fn new(tag: &str, key: &[u8; 32]) -> Self {
        use std::os::unix::fs::OpenOptionsExt;
        let path = std::env::temp_dir().join(format!("pktd-key-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .expect("creating the key file");
        std::io::Write::write_all(&mut file, key).unwrap();
        Self(path)
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A scratch record directory, removed on drop.
struct RecordDir(std::path::PathBuf);

impl RecordDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("pktd-privacy-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for RecordDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const KEY: [u8; 32] = *b"a researcher's key, 32 bytes ok!";
const SENDER: [u8; 4] = [10, 0, 0, 1];
const RECEIVER: [u8; 4] = [10, 0, 0, 2];

fn anonymize_key(key_file: &KeyFile, mac: &str, payload: &str) -> String {
    format!(
        "anonymize = {{ ip = \"prefix-preserving\", mac = \"{mac}\", payload = \"{payload}\", \
         key_file = \"{}\" }}",
        key_file.0.display()
    )
}

/// What the principal's clients see for `real`.
fn image(real: [u8; 4]) -> [u8; 4] {
    pktd_anon::CryptoPan::new(&KEY)
        .anonymize_v4(u32::from_be_bytes(real))
        .to_be_bytes()
}

fn dotted(address: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(address).to_string()
}

/// UDP, TCP and ICMP echo frames from SENDER to RECEIVER, with correct
/// checksums, each with a 32-byte payload of `fill`.
fn mixed_frames(fill: u8) -> Vec<Vec<u8>> {
    use etherparse::PacketBuilder;
    let payload = [fill; 32];
    let base = || {
        PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(SENDER, RECEIVER, 64)
    };
    let mut frames = Vec::new();
    for kind in 0..3 {
        let mut frame = Vec::new();
        match kind {
            0 => base().udp(40000, 44444).write(&mut frame, &payload),
            1 => base()
                .tcp(40001, 44445, 1000, 64240)
                .syn()
                .write(&mut frame, &payload),
            _ => base().icmpv4_echo_request(7, 1).write(&mut frame, &payload),
        }
        .unwrap();
        frames.push(frame);
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymized_captures_and_recordings_show_mapped_addresses_tcpdump_verifies() {
    let lab = Lab::new();
    let key = KeyFile::new("mapped", &KEY);
    let dir = RecordDir::new("mapped");
    let extra = format!(
        "{}\nrecord_directory = \"{}\"",
        anonymize_key(&key, "hash", "keep"),
        dir.0.display()
    );
    let daemon = TestDaemon::start(policy(&lab, &extra));
    let mut capture = open(&daemon, &lab, "", false).await;
    // It asked to read its ring in place (libwire's default): the daemon
    // rewrites its packets, so they come through the daemon, and it is
    // told why.
    assert!(!capture.zero_copy(), "an anonymized capture in place");
    assert!(
        capture
            .daemon_path()
            .is_some_and(|why| why.contains("anonymized")),
        "{:?}",
        capture.daemon_path()
    );
    let recording = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .record("anon-%d.pcap", &libwire::Rotation::default(), false)
        .await
        .expect("recording");
    let sent = send_all(&lab, &mixed_frames(0x61));
    let got = collect(&mut capture, Duration::from_millis(400)).await;
    assert_eq!(got.len(), sent.len());
    for ((data, _), frame) in got.iter().zip(&sent) {
        assert_eq!(data.len(), frame.len());
        assert_eq!(
            data[26..30],
            image(SENDER),
            "the source as the client sees it"
        );
        assert_eq!(data[30..34], image(RECEIVER));
        assert_ne!(data[6..12], frame[6..12], "a hashed MAC");
        assert_eq!(data[6] & 0x03, 0x02, "locally administered, unicast");
        assert_eq!(data[data.len() - 32..], [0x61; 32], "the payload is kept");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    libwire::stop_recording(&daemon.socket, recording.id)
        .await
        .expect("stopping");
    let file = dir.0.join("0").join("anon-0.pcap");
    let output = std::process::Command::new("tcpdump")
        .arg("-r")
        .arg(&file)
        .args(["-nn", "-vv"])
        .output()
        .expect("running tcpdump");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let (from, to) = (dotted(image(SENDER)), dotted(image(RECEIVER)));
    for line in [
        format!("{from}.40000 > {to}.44444: [udp sum ok] UDP, length 32"),
        format!("{from}.40001 > {to}.44445: Flags [S], cksum"),
        format!("{from} > {to}: ICMP echo request, id 7, seq 1, length 40"),
    ] {
        assert_eq!(text.matches(&line).count(), 1, "{line:?} in\n{text}");
    }
    assert_eq!(
        text.matches("(correct)").count(),
        1,
        "the TCP checksum verified:\n{text}"
    );
    for bad in ["bad", "incorrect", "wrong", "10.0.0.1", "10.0.0.2"] {
        assert!(!text.contains(bad), "{bad:?} in\n{text}");
    }
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_for_real_addresses_learn_nothing() {
    let lab = Lab::new();
    let key = KeyFile::new("probe", &KEY);
    let daemon = TestDaemon::start(policy(&lab, &anonymize_key(&key, "zero", "keep")));
    let seen = dotted(image(SENDER));
    assert_ne!(seen, dotted(SENDER));
    let mut real_host = open(&daemon, &lab, &format!("host {}", dotted(SENDER)), false).await;
    let mut real_net = open(&daemon, &lab, "src net 10.0.0.0/8", false).await;
    let mut seen_host = open(&daemon, &lab, &format!("src host {seen}"), false).await;
    let seen_net = format!("src net {}.0.0.0/8", image(SENDER)[0]);
    let mut seen_prefix = open(&daemon, &lab, &seen_net, false).await;
    // Statistics mode counts with the mapped filter too.
    let stats_filter = format!("src host {seen} or src host {}", dotted(SENDER));
    let mut stats = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter(&stats_filter)
        .stats_only(Duration::from_millis(200))
        .open()
        .await
        .expect("a statistics session");
    for probe in [
        "ip[12:2] = 0x0a00",
        "ip[12] = 10",
        "ip[12:4] > 0",
        "ether[6:4] = 0x02000000",
        "ip[10:2] = 0",
    ] {
        match daemon
            .capture(&lab.capture_if)
            .netns(&lab.capture_ns)
            .filter(probe)
            .open()
            .await
        {
            Err(libwire::Error::Daemon { code, message }) => {
                assert_eq!(
                    code,
                    libwire::ErrorCode::InvalidFilter,
                    "{probe}: {message}"
                );
                assert!(message.contains("anonymized"), "{probe}: {message}");
            }
            Ok(_) => panic!("{probe} was accepted"),
            Err(other) => panic!("{probe}: {other}"),
        }
    }
    let sent = send_all(&lab, &mixed_frames(0x62));
    let idle = Duration::from_millis(400);
    let (a, b, c, d) = tokio::join!(
        collect(&mut real_host, idle),
        collect(&mut real_net, idle),
        collect(&mut seen_host, idle),
        collect(&mut seen_prefix, idle)
    );
    assert_eq!((a.len(), b.len()), (0, 0), "a real address matched");
    assert_eq!(
        (c.len(), d.len()),
        (sent.len(), sent.len()),
        "the addresses seen match"
    );
    // Intervals come every 200 ms: a second's worth covers the frames.
    let mut counted = 0;
    for _ in 0..5 {
        let interval = timeout(Duration::from_secs(1), stats.next_interval())
            .await
            .expect("an interval")
            .expect("reading")
            .expect("the session goes on");
        counted += interval.packets;
    }
    assert_eq!(
        counted,
        sent.len() as u64,
        "statistics count the frames once, by the address seen"
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_payloads_are_zeroed_and_unreadable_by_the_filter() {
    let lab = Lab::new();
    let key = KeyFile::new("payload", &KEY);
    let daemon = TestDaemon::start(policy(&lab, &anonymize_key(&key, "zero", "zero")));
    let mut all = open(&daemon, &lab, "udp or tcp or icmp", false).await;
    // 0x63636363: the payload's first word.
    let mut probe = open(&daemon, &lab, "udp[8:4] = 0x63636363", false).await;
    let mut zero = open(&daemon, &lab, "udp[8:4] = 0", false).await;
    let sent = send_all(&lab, &mixed_frames(0x63));
    let idle = Duration::from_millis(400);
    let (all, probe, zero) = tokio::join!(
        collect(&mut all, idle),
        collect(&mut probe, idle),
        collect(&mut zero, idle)
    );
    assert_eq!(all.len(), sent.len());
    for ((data, _), frame) in all.iter().zip(&sent) {
        assert_eq!(data.len(), frame.len(), "whole frames");
        assert_eq!(data[..12], [0; 12], "MAC addresses zeroed");
        assert_eq!(data[data.len() - 32..], [0; 32], "payload zeroed");
    }
    assert_eq!(probe.len(), 0, "the real payload decided a delivery");
    assert_eq!(
        zero.len(),
        0,
        "the filter reads no payload, not even the zeroes"
    );
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_with_another_key_ends_the_principals_sessions() {
    let lab = Lab::new();
    let first = KeyFile::new("first", &KEY);
    let second = KeyFile::new("second", b"another key, 32 bytes long, ok!!");
    let daemon = TestDaemon::start(policy(&lab, &anonymize_key(&first, "zero", "keep")));
    let mut capture = open(&daemon, &lab, "udp", false).await;
    // The same key file with the same options: nothing changes.
    daemon
        .policy
        .replace(policy(&lab, &anonymize_key(&first, "zero", "keep")));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let sent = send_all(&lab, &mixed_frames(0x64)[..1]);
    assert_eq!(
        collect(&mut capture, Duration::from_millis(300))
            .await
            .len(),
        sent.len()
    );
    daemon
        .policy
        .replace(policy(&lab, &anonymize_key(&second, "zero", "keep")));
    let ended = timeout(Duration::from_secs(2), async {
        while capture.next_packet().await.expect("reading").is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the session did not end");
    assert_eq!(
        capture.end_reason(),
        Some(&libwire::EndReason::AnonymizationChanged)
    );
    daemon.stop();
}
