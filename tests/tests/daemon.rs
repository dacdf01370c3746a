//! The daemon end to end: a real pktd (in this process) on a temporary
//! socket, libwire clients (some connecting as other users), the kernel
//! program attached to a veth in a throw-away namespace, real traffic.

use std::time::Duration;

use libwire::{Capture, Direction, EndReason, Error as WireError, ErrorCode};
use pktd_daemon::{capture::HookChoice, policy::Policy};
use pktd_proto::{Connection, Hello, MAGIC, Reply};
use pktd_tests::{
    corpus::{numbered_udp_frame, sequence_and_port},
    daemon::{TestDaemon, connect_as, open_as},
    netlab::Lab,
};
use tokio::{io::AsyncWriteExt, time::timeout};

const NOBODY_UID: u32 = 4242;
const NOBODY_GID: u32 = 4242;

/// Reads packets until the session ends or `idle` passes without one.
async fn collect(capture: &mut Capture, idle: Duration) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Ok(next) = timeout(idle, capture.next_packet()).await {
        match next.expect("reading packets") {
            Some(packet) => frames.push(packet.data),
            None => break,
        }
    }
    frames
}

fn policy(text: &str) -> Policy {
    Policy::parse(text, "test-policy.toml").expect("a valid policy")
}

/// A policy for NOBODY_UID with the given extra keys, root unrestricted.
fn nobody_policy(lab: &Lab, extra: &str) -> Policy {
    policy(&format!(
        r#"
[[principal]]
name = "root"
users = [0]
netns = ["*"]
interfaces = ["*"]

[[principal]]
name = "nobody"
users = [{NOBODY_UID}]
netns = ["{ns}"]
interfaces = ["{iface}"]
{extra}
"#,
        ns = lab.capture_ns,
        iface = lab.capture_if,
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_clients_each_get_exactly_their_frames() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let mut captures = Vec::new();
    for i in 0..16u16 {
        let capture = daemon
            .capture(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter(format!("udp dst port {}", 9000 + i))
            .count(10)
            .open()
            .await
            .unwrap_or_else(|err| panic!("client {i}: {err}"));
        assert_eq!(capture.link_type(), 1);
        captures.push(capture);
    }
    let sender = lab.sender();
    let mut sent = vec![Vec::new(); 16];
    for sequence in 0..170u64 {
        // 17 ports in turn: 9000..9015 for the clients, 9016 for nobody;
        // ten frames each, the clients' count.
        let port = 9000 + (sequence % 17) as u16;
        let frame = numbered_udp_frame(port, sequence, 40);
        sender.send(&frame);
        if let Some(list) = sent.get_mut(usize::from(port - 9000)) {
            list.push(frame);
        }
    }
    for (i, capture) in captures.iter_mut().enumerate() {
        let got = collect(capture, Duration::from_secs(2)).await;
        // With two CPUs the receive path may reorder frames: compare sets.
        let mut got = got;
        got.sort();
        got.dedup();
        assert_eq!(got.len(), 10, "client {i}");
        for frame in &got {
            assert!(
                sent[i].contains(frame),
                "client {i} got a frame not sent to it"
            );
        }
        assert_eq!(
            capture.end_reason(),
            Some(&EndReason::CountReached),
            "client {i}"
        );
        assert_eq!(capture.last_stats().delivered, 10, "client {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_confines_an_accept_all_client_and_caps_its_snaplen() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(nobody_policy(
        &lab,
        r#"filter = "udp dst port 9001"
max_snaplen = 64"#,
    ));
    let builder = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .snaplen(1500);
    let mut capture = open_as(builder, &daemon.socket, NOBODY_UID, NOBODY_GID)
        .await
        .expect("the policy allows this capture");
    assert_eq!(capture.snaplen(), 64, "the policy's snaplen wins");
    let sender = lab.sender();
    let mut allowed = Vec::new();
    for sequence in 0..30u64 {
        let frame = numbered_udp_frame(9000 + (sequence % 3) as u16, sequence, 200);
        sender.send(&frame);
        if sequence % 3 == 1 {
            allowed.push(frame[..64].to_vec());
        }
    }
    let mut got = collect(&mut capture, Duration::from_millis(500)).await;
    got.sort();
    allowed.sort();
    assert!(
        got == allowed,
        "only the policy's traffic, cut at 64 bytes: got {} frames",
        got.len()
    );
    let stats = capture.stats().await.expect("stats");
    // Under a policy filter, received counts only what the policy lets by.
    assert_eq!((stats.received, stats.delivered), (10, 10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_ends_the_session_with_the_right_counts() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(nobody_policy(&lab, "packet_quota = 5"));
    let builder = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp");
    let mut capture = open_as(builder, &daemon.socket, NOBODY_UID, NOBODY_GID)
        .await
        .expect("opening");
    let sender = lab.sender();
    for sequence in 0..12 {
        sender.send(&numbered_udp_frame(9000, sequence, 40));
    }
    let got = collect(&mut capture, Duration::from_secs(2)).await;
    assert_eq!(got.len(), 5);
    assert_eq!(capture.end_reason(), Some(&EndReason::PacketQuota));
    let stats = capture.last_stats();
    assert_eq!(
        (stats.matched, stats.delivered, stats.over_quota),
        (12, 5, 7)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_interfaces_namespaces_and_users_are_refused() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(nobody_policy(&lab, ""));
    let denied = |result: Result<Capture, WireError>| match result {
        Err(WireError::Daemon { code, message }) => (code, message),
        Err(other) => panic!("expected a refusal, got {other}"),
        Ok(_) => panic!("expected a refusal, the capture opened"),
    };
    let (code, message) = denied(
        open_as(
            daemon.capture("lo").netns(&lab.capture_ns),
            &daemon.socket,
            NOBODY_UID,
            NOBODY_GID,
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Denied);
    assert!(message.contains("interface"), "{message}");
    let (code, message) = denied(
        open_as(
            daemon.capture(&lab.capture_if).netns(&lab.sender_ns),
            &daemon.socket,
            NOBODY_UID,
            NOBODY_GID,
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Denied);
    assert!(message.contains("namespace"), "{message}");
    let (code, _) = denied(
        open_as(
            daemon.capture(&lab.capture_if).netns(&lab.capture_ns),
            &daemon.socket,
            NOBODY_UID + 1,
            NOBODY_GID + 1,
        )
        .await,
    );
    assert_eq!(code, ErrorCode::Denied);
    // Errors of the request itself, for a user who may capture.
    let (code, _) = denied(
        daemon
            .capture("no-such-if0")
            .netns(&lab.capture_ns)
            .open()
            .await,
    );
    assert_eq!(code, ErrorCode::NoSuchInterface);
    let (code, _) = denied(
        daemon
            .capture(&lab.capture_if)
            .netns("pktd-no-such-netns")
            .open()
            .await,
    );
    assert_eq!(code, ErrorCode::NoSuchNetns);
    let (code, _) = denied(
        daemon
            .capture(&lab.capture_if)
            .netns(&lab.capture_ns)
            .filter("udp port eleventy")
            .open()
            .await,
    );
    assert_eq!(code, ErrorCode::InvalidFilter);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_client_frees_its_slot_within_a_second() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(nobody_policy(&lab, "max_sessions = 1"));
    let open = || {
        open_as(
            daemon
                .capture(&lab.capture_if)
                .netns(&lab.capture_ns)
                .filter("udp"),
            &daemon.socket,
            NOBODY_UID,
            NOBODY_GID,
        )
    };
    let first = open().await.expect("the first session");
    match open().await {
        Err(WireError::Daemon { code, .. }) => assert_eq!(code, ErrorCode::Limit),
        other => panic!("a second session was not refused: {:?}", other.err()),
    }
    // The client disappears without a word (as when it is killed).
    drop(first);
    let started = std::time::Instant::now();
    loop {
        match open().await {
            Ok(_) => break,
            Err(WireError::Daemon {
                code: ErrorCode::Limit,
                ..
            }) => {
                assert!(
                    started.elapsed() < Duration::from_secs(1),
                    "the slot was not freed within a second"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(err) => panic!("{err}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_reload_ends_the_sessions_it_no_longer_allows() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(nobody_policy(&lab, ""));
    let builder = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .filter("udp");
    let mut revoked = open_as(builder, &daemon.socket, NOBODY_UID, NOBODY_GID)
        .await
        .expect("opening");
    let mut kept = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .filter("udp")
        .open()
        .await
        .expect("root opens");
    // The new policy keeps root only.
    daemon.policy.replace(policy(
        r#"
[[principal]]
name = "root"
users = [0]
netns = ["*"]
interfaces = ["*"]
"#,
    ));
    let next = timeout(Duration::from_secs(2), revoked.next_packet())
        .await
        .expect("the session ended in time");
    assert!(matches!(next, Ok(None)), "{next:?}");
    assert_eq!(revoked.end_reason(), Some(&EndReason::PolicyRevoked));
    lab.sender().send(&numbered_udp_frame(9000, 1, 40));
    let packet = timeout(Duration::from_secs(2), kept.next_packet())
        .await
        .expect("root's session still captures")
        .expect("reading");
    assert!(packet.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_errors_while_other_sessions_keep_capturing() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let mut bystander = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .filter("udp")
        .open()
        .await
        .expect("opening");
    let sender = lab.sender();
    let mut sequence = 0u64;
    let mut send_some = |count: u64| {
        for _ in 0..count {
            sender.send(&numbered_udp_frame(9000, sequence, 40));
            sequence += 1;
        }
    };
    send_some(5);

    // A wrong protocol version.
    let mut wrong_version = Connection::new(connect_as(&daemon.socket, 0, 0));
    wrong_version
        .write_hello(&Hello {
            magic: MAGIC,
            version: 99,
            client: "test".into(),
        })
        .await
        .unwrap();
    match wrong_version.read_reply().await.unwrap() {
        Some(Reply::Error { code, .. }) => assert_eq!(code, ErrorCode::UnsupportedVersion),
        other => panic!("{other:?}"),
    }
    // Garbage instead of a hello.
    let mut garbage = connect_as(&daemon.socket, 0, 0);
    garbage
        .write_all(b"\x00\x00\x00\x08GET / HT")
        .await
        .unwrap();
    let mut garbage = Connection::new(garbage);
    assert!(matches!(
        garbage.read_reply().await.unwrap(),
        Some(Reply::Error {
            code: ErrorCode::BadHello,
            ..
        })
    ));
    // A good hello, then an oversized length and then a garbage frame.
    for payload in [&b"\xff\xff\xff\xff"[..], &b"\x00\x00\x00\x03abc"[..]] {
        let mut connection = Connection::new(connect_as(&daemon.socket, 0, 0));
        connection.write_hello(&Hello::new("test")).await.unwrap();
        assert!(matches!(
            connection.read_reply().await.unwrap(),
            Some(Reply::HelloAck { .. })
        ));
        let mut stream = connection.into_inner();
        stream.write_all(payload).await.unwrap();
        let mut connection = Connection::new(stream);
        match connection.read_reply().await.unwrap() {
            Some(Reply::Error { code, .. }) => assert_eq!(code, ErrorCode::Malformed),
            other => panic!("{other:?}"),
        }
    }
    send_some(5);
    let got = collect(&mut bystander, Duration::from_millis(500)).await;
    let mut sequences: Vec<u64> = got.iter().map(|f| sequence_and_port(f).0).collect();
    sequences.sort();
    assert_eq!(
        sequences,
        (0..10).collect::<Vec<_>>(),
        "the bystander lost packets"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_out_of_order_are_answered_with_errors() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let mut connection = Connection::new(connect_as(&daemon.socket, 0, 0));
    connection.write_hello(&Hello::new("test")).await.unwrap();
    assert!(matches!(
        connection.read_reply().await.unwrap(),
        Some(Reply::HelloAck { .. })
    ));
    for request in [
        pktd_proto::Request::Stats,
        pktd_proto::Request::SetFilter {
            filter: pktd_proto::FilterSpec::Expression("udp".into()),
            optimize: true,
        },
    ] {
        connection.write_request(&request).await.unwrap();
        match connection.read_reply().await.unwrap() {
            Some(Reply::Error { code, .. }) => assert_eq!(code, ErrorCode::OutOfOrder),
            other => panic!("{request:?} before open: {other:?}"),
        }
    }
    let open = pktd_proto::OpenCapture {
        netns: lab.capture_ns.clone(),
        interface: lab.capture_if.clone(),
        direction: Direction::In,
        snaplen: 100,
        headers_only: false,
        filter: pktd_proto::FilterSpec::Expression("udp".into()),
        optimize: true,
        packet_count: 0,
        buffer_bytes: 0,
        stats_interval_ms: 0,
        immediate: false,
        zero_copy: false,
    };
    connection
        .write_request(&pktd_proto::Request::Open(open.clone()))
        .await
        .unwrap();
    assert!(matches!(
        connection.read_reply().await.unwrap(),
        Some(Reply::Opened { snaplen: 100, .. })
    ));
    connection
        .write_request(&pktd_proto::Request::Open(open))
        .await
        .unwrap();
    match connection.read_reply().await.unwrap() {
        Some(Reply::Error { code, .. }) => assert_eq!(code, ErrorCode::OutOfOrder),
        other => panic!("a second open: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_client_drops_only_its_own_packets_and_is_told() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let open = |buffer| {
        daemon
            .capture(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter("udp")
            .buffer_bytes(buffer)
            .open()
    };
    // Never reads: its socket fills, then its ring, then the kernel drops.
    let mut stuck = open(8192).await.expect("opening");
    let mut reader = open(32 << 20).await.expect("opening");
    const FRAMES: u64 = 3000;
    let sender = lab.sender();
    let reading = tokio::spawn(async move {
        let frames = collect(&mut reader, Duration::from_secs(2)).await;
        (frames.len() as u64, reader.stats().await.expect("stats"))
    });
    for sequence in 0..FRAMES {
        sender.send(&numbered_udp_frame(9000, sequence, 1000));
    }
    let (read, reader_stats) = reading.await.unwrap();
    assert_eq!(read, FRAMES, "the reading client lost packets");
    assert_eq!(reader_stats.dropped, 0);
    // Now the stuck client reads: it gets what fitted, then the notice.
    let mut got = 0u64;
    while let Ok(Ok(Some(_))) = timeout(Duration::from_millis(500), stuck.next_packet()).await {
        got += 1;
    }
    let notice = stuck.last_stats();
    assert!(
        notice.dropped > 0,
        "the stuck client was not told of drops: {notice:?}"
    );
    let stats = stuck.stats().await.expect("stats");
    assert_eq!(stats.delivered + stats.dropped, FRAMES, "{stats:?}");
    assert!(got <= stats.delivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_sessions() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let mut captures = Vec::new();
    for i in 0..64u16 {
        captures.push(
            daemon
                .capture(&lab.capture_if)
                .netns(&lab.capture_ns)
                .direction(Direction::In)
                .filter(format!("udp dst port {}", 10000 + i))
                .buffer_bytes(65536)
                .count(1)
                .open()
                .await
                .unwrap_or_else(|err| panic!("session {i}: {err}")),
        );
    }
    let sender = lab.sender();
    for i in 0..64u16 {
        sender.send(&numbered_udp_frame(10000 + i, u64::from(i), 40));
    }
    for (i, capture) in captures.iter_mut().enumerate() {
        let packet = timeout(Duration::from_secs(5), capture.next_packet())
            .await
            .expect("in time")
            .expect("reading")
            .expect("a packet");
        assert_eq!(
            sequence_and_port(&packet.data),
            (i as u64, 10000 + i as u16)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loopback_packets_are_seen_once_as_libpcap_does() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let mut capture = daemon
        .capture("lo")
        .netns(&lab.capture_ns)
        .filter("udp port 9999")
        .open()
        .await
        .expect("opening");
    let ns = lab.capture_netns();
    ns.run(|| {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
        for _ in 0..3 {
            socket.send_to(b"hello", "127.0.0.1:9999").expect("sending");
        }
    })
    .expect("entering the namespace");
    let got = collect(&mut capture, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 3, "each loopback packet once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_mode_counts_equal_the_frames_sent() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let mut capture = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp dst port 9000")
        .stats_only(Duration::from_millis(200))
        .open()
        .await
        .expect("opening");
    let sender = lab.sender();
    let mut frame_bytes = 0u64;
    for sequence in 0..500 {
        // Half to the counted port, half not.
        let frame = numbered_udp_frame(9000 + (sequence % 2) as u16, sequence, 100);
        if sequence % 2 == 0 {
            frame_bytes += frame.len() as u64;
        }
        sender.send(&frame);
    }
    let (mut packets, mut bytes, mut intervals) = (0, 0, 0);
    let mut last_end = 0;
    // Intervals keep coming; stop once an interval after the traffic is empty.
    loop {
        let interval = timeout(Duration::from_secs(2), capture.next_interval())
            .await
            .expect("an interval in time")
            .expect("reading")
            .expect("the session goes on");
        assert!(interval.start_ns >= last_end && interval.end_ns > interval.start_ns);
        last_end = interval.end_ns;
        intervals += 1;
        packets += interval.packets;
        bytes += interval.bytes;
        if interval.packets == 0 && packets > 0 {
            break;
        }
        assert!(intervals < 20, "the counts never settled");
    }
    assert_eq!((packets, bytes), (250, frame_bytes));
    let stats = capture.close().await.expect("closing");
    assert_eq!(stats.delivered, 0, "statistics mode copied packets");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_rotates_by_packets_in_pcapng() {
    let lab = Lab::new();
    let directory = std::env::temp_dir().join(format!("pktd-rec-packets-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&directory);
    let daemon = TestDaemon::start(policy(&format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\nrecord_directory = \"{}\"\n",
        directory.display()
    )));
    let info = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp")
        .record(
            "p-%d.pcapng",
            &libwire::Rotation {
                packets: 10,
                ..libwire::Rotation::default()
            },
            true,
        )
        .await
        .expect("recording");
    assert_eq!(info.files, vec!["p-0.pcapng".to_owned()]);
    let sender = lab.sender();
    for sequence in 0..35 {
        sender.send(&numbered_udp_frame(9000, sequence, 40));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ended = libwire::stop_recording(&daemon.socket, info.id)
        .await
        .expect("stopping");
    assert_eq!(ended.ended, Some(EndReason::Stopped));
    assert_eq!(ended.packets, 35);
    assert_eq!(ended.files.len(), 4, "{:?}", ended.files);
    assert_eq!(
        std::path::Path::new(&ended.directory),
        directory.join("0"),
        "root's own directory"
    );
    let mut counts = Vec::new();
    for name in &ended.files {
        let output = std::process::Command::new("tcpdump")
            .arg("-r")
            .arg(std::path::Path::new(&ended.directory).join(name))
            .arg("-nn")
            .output()
            .expect("tcpdump");
        assert!(output.status.success(), "{name}");
        counts.push(String::from_utf8_lossy(&output.stdout).lines().count());
    }
    assert_eq!(counts, vec![10, 10, 10, 5]);
    let _ = std::fs::remove_dir_all(&directory);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_named_by_a_process_and_packets_as_a_stream() {
    use futures_util::StreamExt as _;
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    // A process living in the capture namespace names it as /proc/PID/ns/net.
    let mut resident = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.capture_ns, "sleep", "30"])
        .spawn()
        .expect("a process in the namespace");
    let path = format!("/proc/{}/ns/net", resident.id());
    // `ip netns exec` execs sleep in place once it has entered the namespace.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let capture = daemon
        .capture(&lab.capture_if)
        .netns(&path)
        .direction(Direction::In)
        .filter("udp dst port 9000")
        .count(5)
        .open()
        .await
        .expect("opening by /proc/PID/ns/net");
    let sender = lab.sender();
    for sequence in 0..5 {
        sender.send(&numbered_udp_frame(9000, sequence, 20));
    }
    let packets: Vec<_> = timeout(
        Duration::from_secs(5),
        capture.into_stream().collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends at the count");
    let _ = resident.kill();
    let _ = resident.wait();
    let mut sequences: Vec<u64> = packets
        .into_iter()
        .map(|packet| sequence_and_port(&packet.expect("a packet").data).0)
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, vec![0, 1, 2, 3, 4]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_garbage_on_many_connections_changes_nothing_for_others() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let mut bystander = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp")
        .open()
        .await
        .expect("opening");
    // A fixed xorshift sequence: reproducible garbage.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..60 {
        let mut stream = connect_as(&daemon.socket, 0, 0);
        let mut bytes = Vec::new();
        if round % 2 == 0 {
            // A valid hello first, then garbage frames with plausible lengths.
            let mut hello = Connection::new(stream);
            hello.write_hello(&Hello::new("fuzz")).await.unwrap();
            let _ = hello.read_reply().await;
            stream = hello.into_inner();
        }
        for _ in 0..(next() % 8 + 1) {
            let len = (next() % 64) as u32;
            bytes.extend_from_slice(&len.to_be_bytes());
            bytes.extend((0..len).map(|_| next() as u8));
        }
        let _ = stream.write_all(&bytes).await;
        let mut connection = Connection::new(stream);
        // Whatever the daemon answers (errors, or closing), it answers.
        let _ = timeout(Duration::from_secs(5), connection.read_reply())
            .await
            .expect("the daemon answered or closed in time");
    }
    let sender = lab.sender();
    for sequence in 0..20 {
        sender.send(&numbered_udp_frame(9000, sequence, 40));
    }
    let got = collect(&mut bystander, Duration::from_millis(500)).await;
    assert_eq!(got.len(), 20, "the bystander lost packets");
    // And the daemon still opens new sessions.
    daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .open()
        .await
        .expect("a new session after the garbage");
}

/// `pktd --hook xdp`: ingress-only sessions are served at XDP, a session
/// wanting sent packets is refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_forced_to_xdp_serves_received_packets_and_refuses_sent_ones() {
    let lab = Lab::new();
    let daemon = TestDaemon::start_with(
        Policy::default_policy(),
        pktd_daemon::Options {
            hook: HookChoice::Xdp,
            ..pktd_daemon::Options::default()
        },
    );
    let mut capture = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp dst port 9000")
        .open()
        .await
        .expect("an ingress-only session at XDP");
    let refused = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .filter("udp")
        .open()
        .await
        .err()
        .expect("a session wanting both directions is refused at XDP");
    assert!(refused.to_string().contains("XDP"), "{refused}");
    // Nor can XDP serve a filter that reads the socket buffer's packet
    // type, even on received packets only.
    let refused = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("inbound and udp")
        .open()
        .await
        .err()
        .expect("a filter reading the packet type is refused at XDP");
    assert!(
        refused.to_string().contains("which XDP does not have"),
        "{refused}"
    );

    let sender = lab.sender();
    let frames: Vec<Vec<u8>> = (0..20u64)
        .map(|sequence| numbered_udp_frame(9000 + (sequence % 2) as u16, sequence, 30))
        .collect();
    for frame in &frames {
        sender.send(frame);
    }
    let mut got = collect(&mut capture, Duration::from_secs(1)).await;
    got.sort();
    let mut want: Vec<Vec<u8>> = frames.iter().step_by(2).cloned().collect();
    want.sort();
    assert_eq!(got, want);
}

/// Compiling and loading a filter is blocking work done on blocking
/// threads: while two clients' filters take libpcap seconds (more than the
/// daemon has async workers), a running session on the same interface
/// keeps receiving every packet on time, and a new client opens there and
/// gets packets too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_filter_stalls_neither_running_sessions_nor_new_opens() {
    use std::{
        sync::{
            Arc,
            atomic::{AtomicBool, Ordering},
        },
        time::Instant,
    };

    let lab = Lab::new();
    let daemon = TestDaemon::start(Policy::default_policy());
    let builder = || {
        daemon
            .capture(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
    };
    let mut bystander = builder()
        .filter("udp dst port 9000")
        .open()
        .await
        .expect("the bystander opens");
    // Frames every 5 ms until told to stop: the bystander's arrivals are
    // timed from here.
    let sending = Arc::new(AtomicBool::new(true));
    let sender = {
        let (sender, sending) = (lab.sender(), sending.clone());
        std::thread::spawn(move || {
            let mut sequence = 0;
            while sending.load(Ordering::Relaxed) {
                sender.send(&numbered_udp_frame(9000, sequence, 40));
                sequence += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            sequence
        })
    };
    let arrivals = tokio::spawn(async move {
        let mut arrivals = Vec::new();
        while let Ok(Ok(Some(_))) = timeout(Duration::from_secs(2), bystander.next_packet()).await {
            arrivals.push(Instant::now());
        }
        arrivals
    });

    // libpcap's optimiser takes seconds on a long disjunction (the time
    // grows with the cube of its length).
    let slow_expression = format!(
        "udp and ({})",
        (1..=300)
            .map(|port| format!("port {port}"))
            .collect::<Vec<_>>()
            .join(" or ")
    );
    let slow_started = Instant::now();
    let slow = tokio::spawn(builder().filter(slow_expression.clone()).open());
    let slower = tokio::spawn(builder().filter(slow_expression).open());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !slow.is_finished(),
        "the slow filter compiled too fast to test anything"
    );

    // A new client (raw bytecode: libpcap itself serialises compiles until
    // they move to their own processes) opens meanwhile and gets packets.
    let accept_all = [pktd_common::CbpfInsn::new(0x06, 0, 0, 65535)];
    let opening = Instant::now();
    let mut newcomer = builder()
        .bytecode(&accept_all)
        .count(5)
        .open()
        .await
        .expect("the newcomer opens");
    let opened_in = opening.elapsed();
    let got = collect(&mut newcomer, Duration::from_secs(1)).await;
    let newcomer_done = slow_started.elapsed();
    assert!(
        opened_in < Duration::from_millis(500),
        "the newcomer's open took {opened_in:?}"
    );
    assert_eq!(got.len(), 5, "the newcomer's packets");
    assert!(
        !slow.is_finished(),
        "the slow filter finished within {newcomer_done:?}: nothing was shown"
    );

    let slow = slow.await.unwrap().expect("the slow filter compiles");
    let slower = slower
        .await
        .unwrap()
        .expect("the slow filter compiles again");
    let slow_took = slow_started.elapsed();
    eprintln!(
        "slow filters took {slow_took:?}; the newcomer opened in {opened_in:?} and was done at {newcomer_done:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    sending.store(false, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    let arrivals = arrivals.await.unwrap();
    assert_eq!(arrivals.len() as u64, sent, "the bystander lost packets");
    let longest_gap = arrivals
        .windows(2)
        .map(|pair| pair[1] - pair[0])
        .max()
        .expect("packets arrived");
    assert!(
        longest_gap < Duration::from_millis(250),
        "the bystander waited {longest_gap:?} for a packet while a filter took {slow_took:?}"
    );
    drop((slow, slower));
}

/// Under a policy filter, a session's `received` counts only what the
/// policy lets it see, not the interface's whole traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_filtered_session_counts_only_what_it_may_see() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(nobody_policy(&lab, "filter = \"udp dst port 9000\""));
    let builder = daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp");
    let mut capture = open_as(builder, &daemon.socket, NOBODY_UID, NOBODY_GID)
        .await
        .expect("opening");
    let sender = lab.sender();
    for sequence in 0..40 {
        let port = if sequence % 4 == 0 { 9000 } else { 9001 };
        sender.send(&numbered_udp_frame(port, sequence, 40));
    }
    assert_eq!(
        collect(&mut capture, Duration::from_millis(500))
            .await
            .len(),
        10
    );
    let stats = capture.stats().await.expect("stats");
    assert_eq!(
        (stats.received, stats.matched),
        (10, 10),
        "the 30 frames the policy hides are not counted: {stats:?}"
    );
}

/// The limit of exclusions, as docs/security.md states it: a policy
/// filter is about the frame as captured, so `not port 22` does not see
/// port 22 inside a VLAN tag; a filter that names what it lets by, `(ip or
/// ip6) and not port 22`, excludes encapsulated frames too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusion_covers_encapsulation_only_when_written_to() {
    let lab = Lab::new();
    let tagged = pktd_tests::corpus::vlan_tag(&numbered_udp_frame(22, 1, 40), 0x8100, 7);
    let plain = numbered_udp_frame(22, 2, 40);
    for (filter, sees_tagged) in [
        ("not port 22", true),
        ("(ip or ip6) and not port 22", false),
    ] {
        let daemon = TestDaemon::start(nobody_policy(&lab, &format!("filter = \"{filter}\"")));
        let builder = daemon
            .capture(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In);
        let mut capture = open_as(builder, &daemon.socket, NOBODY_UID, NOBODY_GID)
            .await
            .expect("opening");
        let sender = lab.sender();
        sender.send(&tagged);
        sender.send(&plain);
        let got = collect(&mut capture, Duration::from_millis(500)).await;
        assert!(!got.contains(&plain), "{filter}: plain port 22 seen");
        assert_eq!(
            got.contains(&tagged),
            sees_tagged,
            "{filter}: tagged port 22"
        );
        drop(capture);
        daemon.stop();
    }
}
