//! Zero-copy delivery against the real `pktd` binary: an unprivileged
//! client handed its own ring reads its packets in place and gets what the
//! daemon's path gets; with that descriptor it can reach nothing else, and
//! whatever it writes into its consumer page, others lose nothing
//! (docs/security.md, "A client's own ring").
//!
//! The unprivileged clients run on threads whose credentials are dropped
//! to a narrow principal's uid (a thread's credentials are its own on
//! Linux): the daemon sees that uid, and every mapping and bpf(2) call of
//! the thread is checked against it.

use std::{
    collections::BTreeSet,
    io,
    os::fd::AsFd as _,
    sync::mpsc,
    time::{Duration, Instant},
};

use libwire::{Capture, CaptureBuilder, Direction};
use pktd_tests::{
    bystander::Bystander,
    corpus::{numbered_udp_frame, sequence_and_port},
    daemon::connect_as,
    netlab::Lab,
    pktd::RealDaemon,
    sys::{
        ConsumerPage, bpf_cmd, bpf_map_fd_by_id, bpf_map_id_and_name, bpf_map_junk_command,
        drop_thread_credentials, steal_fd, try_map_writable,
    },
};

/// A narrow principal: the lab's interface only.
const NARROW: (u32, u32) = (4545, 4545);

/// Root everywhere; NARROW on the lab's capture interface only, at most
/// `max_sessions` sessions.
fn policy(lab: &Lab, max_sessions: u32) -> String {
    format!(
        r#"
[[principal]]
name = "root"
users = [0]
netns = ["*"]
interfaces = ["*"]

[[principal]]
name = "narrow"
users = [{uid}]
netns = ["{ns}"]
interfaces = ["{iface}"]
max_sessions = {max_sessions}
"#,
        uid = NARROW.0,
        ns = lab.capture_ns,
        iface = lab.capture_if,
    )
}

/// A capture of the lab's received UDP packets to `port`.
fn builder(lab: &Lab, daemon: &RealDaemon, port: u16) -> CaptureBuilder {
    CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter(format!("udp dst port {port}"))
}

/// Runs `work` as NARROW on a thread of its own, with a runtime of its
/// own: it connects as NARROW, and maps and calls bpf(2) as NARROW.
fn as_narrow<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> std::thread::JoinHandle<T> {
    std::thread::spawn(move || {
        drop_thread_credentials(NARROW.0, NARROW.1).expect("dropping this thread's credentials");
        work()
    })
}

/// Opens `builder`'s capture as the calling thread's user, on `runtime`
/// (which must outlive it).
fn open_here(
    runtime: &tokio::runtime::Runtime,
    builder: CaptureBuilder,
    socket: &std::path::Path,
) -> Capture {
    let stream = runtime.block_on(async {
        tokio::net::UnixStream::connect(socket)
            .await
            .expect("connecting")
    });
    runtime
        .block_on(builder.open_on(stream))
        .expect("the narrow principal opens")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// Reads `count` packets (at most `within`): their bytes and wire lengths.
async fn read_packets(
    capture: &mut Capture,
    count: usize,
    within: Duration,
) -> Vec<(u32, Vec<u8>)> {
    let deadline = Instant::now() + within;
    let mut packets = Vec::new();
    while packets.len() < count {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, capture.next_packet_ref()).await {
            Ok(Ok(Some(packet))) => packets.push((packet.wire_len(), packet.data().to_vec())),
            Ok(Ok(None)) => break,
            Ok(Err(err)) => panic!("reading a packet: {err}"),
            Err(_) => break,
        }
    }
    packets
}

/// Frames of every record class up to a jumbo-less MTU: payloads from a
/// few bytes to 1400.
fn frames(port: u16, count: u64) -> Vec<Vec<u8>> {
    (0..count)
        .map(|sequence| numbered_udp_frame(port, sequence, 8 + (sequence as usize * 37) % 1400))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unprivileged_client_reads_its_ring_and_gets_what_the_daemon_path_gets() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("zc-same", &policy(&lab, 4), &[]);
    const PORT: u16 = 7101;
    const COUNT: u64 = 400;

    // The daemon's path, as root.
    let mut forwarded = builder(&lab, &daemon, PORT)
        .zero_copy(false)
        .open()
        .await
        .expect("root opens");
    assert!(
        !forwarded.zero_copy(),
        "--no-zero-copy reads through the daemon"
    );
    assert!(forwarded.ring_fd().is_none());

    // The ring in place, as NARROW.
    let (opened, opened_rx) = mpsc::channel();
    let socket = daemon.socket.clone();
    let in_place = {
        let builder = builder(&lab, &daemon, PORT);
        as_narrow(move || {
            let runtime = runtime();
            let mut capture = open_here(&runtime, builder, &socket);
            let ring = capture.ring_fd().map(bpf_map_id_and_name);
            opened.send(()).unwrap();
            let packets = runtime.block_on(read_packets(
                &mut capture,
                COUNT as usize,
                Duration::from_secs(10),
            ));
            let stats = runtime.block_on(capture.stats()).expect("counters");
            (capture.zero_copy(), ring, packets, stats)
        })
    };
    opened_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the narrow client opened");

    let sent = frames(PORT, COUNT);
    let sender = lab.sender();
    for chunk in sent.chunks(50) {
        assert_eq!(sender.send_batch(chunk).unwrap(), chunk.len());
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    let via_daemon = read_packets(&mut forwarded, COUNT as usize, Duration::from_secs(10)).await;
    let (zero_copy, ring, in_place, stats) = in_place.join().expect("the narrow client");
    assert!(zero_copy, "the narrow client reads its ring in place");
    let (_, name) = ring
        .expect("a ring descriptor")
        .expect("its own ring's info");
    assert_eq!(name, "pktd_ring");
    assert_eq!(in_place.len(), COUNT as usize, "every frame, in place");
    assert_eq!(
        via_daemon, in_place,
        "the ring read in place holds what the daemon forwards, in order"
    );
    let expected: Vec<_> = sent
        .iter()
        .map(|frame| (frame.len() as u32, frame.clone()))
        .collect();
    assert_eq!(in_place, expected, "and that is what was sent");
    assert_eq!((stats.delivered, stats.dropped), (COUNT, 0));
    forwarded.close().await.expect("root closes");
}

/// Tries every way the brief's threat model names for a client holding
/// its own ring to reach another's, or the daemon's: each must fail.
fn reach_attempts(own: std::os::fd::BorrowedFd<'_>, victim_id: u32, daemon_pid: i32) {
    let is_denied = |result: io::Result<()>, what: &str| {
        let err = result.expect_err(what);
        assert!(
            matches!(
                err.raw_os_error(),
                Some(libc::EPERM | libc::EACCES | libc::ENOTSUP | libc::EINVAL | libc::ENOENT)
                    | Some(524) // ENOTSUPP, the kernel's internal "not supported"
            ),
            "{what}: {err}"
        );
    };
    // bpf(2) by id: another ring, or any map near it.
    is_denied(
        bpf_map_fd_by_id(victim_id).map(drop),
        "the victim's ring by id",
    );
    for id in victim_id.saturating_sub(32)..victim_id + 32 {
        let result = bpf_map_fd_by_id(id).map(drop);
        assert_eq!(
            result.map_err(|err| err.raw_os_error()),
            Err(Some(libc::EPERM)),
            "map id {id}"
        );
    }
    // The daemon's descriptors: neither through /proc nor pidfd_getfd.
    is_denied(
        std::fs::read_dir(format!("/proc/{daemon_pid}/fd")).map(drop),
        "the daemon's descriptor table",
    );
    for target in 0..64 {
        is_denied(
            steal_fd(daemon_pid, target).map(drop),
            "pidfd_getfd on the daemon",
        );
    }
    // The own ring: no element access, and its producer page and data
    // stay read-only.
    for cmd in [
        bpf_cmd::MAP_LOOKUP_ELEM,
        bpf_cmd::MAP_UPDATE_ELEM,
        bpf_cmd::MAP_DELETE_ELEM,
        bpf_cmd::MAP_GET_NEXT_KEY,
    ] {
        is_denied(
            bpf_map_junk_command(cmd, own),
            "a map command on the own ring",
        );
    }
    let page = 4096;
    is_denied(
        try_map_writable(own, page, page as usize),
        "the producer page writable",
    );
    is_denied(
        try_map_writable(own, 2 * page, page as usize),
        "the data writable",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_cannot_reach_another_ring_nor_disturb_others_with_its_consumer_page() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("zc-hostile", &policy(&lab, 4), &[]);
    let daemon_pid = daemon.process.child.id() as i32;
    const ATTACK_PORT: u16 = 7102;
    // Two bystanders, one on each path: neither may lose a frame.
    let in_place = Bystander::start_on(&lab, &daemon.socket, 9999, true).await;
    let forwarded = Bystander::start_on(&lab, &daemon.socket, 9998, false).await;
    // A victim ring the attacker would like to read.
    let mut victim = builder(&lab, &daemon, 7103).open().await.expect("victim");
    let (victim_id, _) = bpf_map_id_and_name(victim.ring_fd().expect("in place")).unwrap();

    let (ready, ready_rx) = mpsc::channel();
    let (flooded, flooded_rx) = mpsc::channel::<()>();
    let socket = daemon.socket.clone();
    let attacker = {
        let builder = builder(&lab, &daemon, ATTACK_PORT);
        as_narrow(move || {
            let runtime = runtime();
            let mut capture = open_here(&runtime, builder, &socket);
            let own = capture
                .ring_fd()
                .expect("the attacker's ring")
                .try_clone_to_owned()
                .expect("a copy of its descriptor");
            let own = own.as_fd();
            reach_attempts(own, victim_id, daemon_pid);
            // Garbage consumer positions while its ring is flooded: behind
            // the producer, far ahead, unaligned, at the extremes.
            let page = ConsumerPage::map(own).expect("the consumer page is writable");
            ready.send(()).unwrap();
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            let started = Instant::now();
            let mut writes = 0u64;
            while flooded_rx.try_recv().is_err() && started.elapsed() < Duration::from_secs(20) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let position = match writes % 6 {
                    0 => 0,
                    1 => u64::MAX,
                    2 => 1 << 63,
                    3 => page.read().wrapping_add(x % 4096),
                    4 => page.read().wrapping_sub(x % (1 << 20)),
                    _ => x,
                };
                page.write(position);
                writes += 1;
            }
            // The attacker's own session is still served: it was only
            // ever its own ring.
            let stats = runtime.block_on(capture.stats());
            (writes, stats.map(|stats| stats.delivered))
        })
    };
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the attacker is ready");

    // Flood the attacker's port while the bystanders' trickles run.
    let sender = lab.sender();
    let flood: Vec<_> = (0..256)
        .map(|sequence| numbered_udp_frame(ATTACK_PORT, sequence, 200))
        .collect();
    let started = Instant::now();
    let mut flood_sent = 0;
    while started.elapsed() < Duration::from_secs(2) {
        flood_sent += sender.send_batch(&flood).unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    flooded.send(()).unwrap();
    let (writes, attacker_delivered) = attacker.join().expect("the attacker");
    println!(
        "consumer-page garbage: {writes} writes during a flood of {flood_sent} frames; \
         the attacker's session delivered {attacker_delivered:?}"
    );
    assert!(writes > 1000, "the attack ran: {writes} writes");
    attacker_delivered.expect("the attacker's own session still answers");

    // The victim's ring is untouched: it gets its frames, nothing else.
    let victim_frames: Vec<_> = (0..50)
        .map(|sequence| numbered_udp_frame(7103, sequence, 64))
        .collect();
    sender.send_batch(&victim_frames).unwrap();
    let got = read_packets(&mut victim, 50, Duration::from_secs(5)).await;
    let sequences: BTreeSet<_> = got
        .iter()
        .map(|(_, data)| sequence_and_port(data))
        .collect();
    assert_eq!(sequences, (0..50).map(|s| (s, 7103)).collect());
    victim.close().await.expect("the victim closes");

    let in_place = in_place.finish_whole(Duration::from_millis(500)).await;
    let forwarded = forwarded.finish_whole(Duration::from_millis(500)).await;
    println!("bystanders: in place {in_place:?}, through the daemon {forwarded:?}");
    let took = daemon.terminate(Duration::from_secs(2));
    println!("SIGTERM after the consumer-page attack: exited in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rings_kept_after_their_sessions_end_count_against_max_sessions() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("zc-kept", &policy(&lab, 2), &[]);
    let socket = daemon.socket.clone();
    let builder = builder(&lab, &daemon, 7104);
    let outcome = as_narrow(move || {
        let runtime = runtime();
        let open = |builder: CaptureBuilder| {
            let stream =
                runtime.block_on(async { tokio::net::UnixStream::connect(&socket).await.unwrap() });
            runtime.block_on(builder.open_on(stream)).expect("opens")
        };
        // Two sessions whose rings the client keeps after closing them.
        let mut kept = Vec::new();
        for _ in 0..2 {
            let capture = open(builder.clone());
            assert!(capture.zero_copy());
            kept.push(capture.ring_fd().unwrap().try_clone_to_owned().unwrap());
            runtime.block_on(capture.close()).expect("closes");
        }
        // A third: its uid holds two rings already, the most it may.
        let third = open(builder.clone());
        let refused = (third.zero_copy(), third.daemon_path().map(str::to_owned));
        runtime.block_on(third.close()).expect("closes");
        // Once the rings are let go, zero-copy comes back.
        drop(kept);
        let started = Instant::now();
        let back = loop {
            let capture = open(builder.clone());
            let zero_copy = capture.zero_copy();
            runtime.block_on(capture.close()).expect("closes");
            if zero_copy || started.elapsed() > Duration::from_secs(10) {
                break zero_copy.then(|| started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        (refused, back)
    })
    .join()
    .expect("the narrow client");
    let ((zero_copy, why), back) = outcome;
    assert!(!zero_copy, "a third ring while two are kept");
    let why = why.expect("the reason");
    assert!(why.contains("hold 2 rings"), "{why}");
    println!(
        "kept rings: third session through the daemon ({why}); zero-copy again after {back:?}"
    );
    assert!(back.is_some(), "zero-copy once the kept rings are closed");
}

/// The connection a NARROW client makes from the test's own thread is
/// served through the daemon's path when it asks not to read in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_keep_the_daemon_path() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("zc-off", &policy(&lab, 4), &[]);
    let stream = connect_as(&daemon.socket, NARROW.0, NARROW.1);
    let capture = builder(&lab, &daemon, 7105)
        .zero_copy(false)
        .open_on(stream)
        .await
        .expect("opens");
    assert!(!capture.zero_copy());
    assert_eq!(capture.daemon_path(), None, "asked for, so no reason given");
    capture.close().await.expect("closes");
}

/// How long a lone frame takes to reach a reader of its own ring: at once
/// in immediate mode (the kernel wakes the reader for it), within the
/// timeout otherwise (the kernel wakes readers in batches: one frame never
/// does, the reader looks on its own).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_mode_and_the_timeout_bound_a_lone_packets_wait() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("zc-wait", &policy(&lab, 4), &[]);
    let sender = lab.sender();
    let mut sequence = 0;
    // The reader waits first; the frame goes 200 ms later; how long after
    // that the reader has it.
    let mut wait_for_one = async |capture: &mut Capture| {
        sequence += 1;
        let sent_at = std::cell::Cell::new(None);
        let read = async {
            let packet = tokio::time::timeout(Duration::from_secs(5), capture.next_packet())
                .await
                .map(|packet| packet.expect("reading").expect("a packet"));
            (Instant::now(), packet)
        };
        let send = async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sent_at.set(Some(Instant::now()));
            sender.send(&numbered_udp_frame(7106, sequence, 32));
        };
        let ((arrived, packet), ()) = tokio::join!(read, send);
        let sent_at = sent_at.get().expect("sent");
        packet.map(|packet| (arrived - sent_at, sequence_and_port(&packet.data)))
    };

    let mut immediate = builder(&lab, &daemon, 7106)
        .immediate(true)
        .timeout(Duration::from_secs(60))
        .open()
        .await
        .expect("opens");
    assert!(immediate.zero_copy());
    let (took, got) = wait_for_one(&mut immediate).await.expect("in time");
    assert_eq!(got, (1, 7106));
    println!("immediate mode: a lone frame in {took:?}");
    assert!(
        took < Duration::from_millis(100),
        "immediate mode took {took:?}"
    );
    immediate.close().await.expect("closes");

    let mut batched = builder(&lab, &daemon, 7106)
        .timeout(Duration::from_millis(300))
        .open()
        .await
        .expect("opens");
    let (took, got) = wait_for_one(&mut batched).await.expect("in time");
    assert_eq!(got, (2, 7106));
    println!("batched, 300 ms timeout: a lone frame in {took:?}");
    assert!(
        took < Duration::from_millis(1000),
        "the timeout took {took:?}"
    );
    batched.close().await.expect("closes");

    // Neither a wake-up nor a timeout within 5 s: the frame waits (and is
    // read as the capture closes).
    let mut sleepy = builder(&lab, &daemon, 7106)
        .timeout(Duration::from_secs(60))
        .open()
        .await
        .expect("opens");
    assert!(
        wait_for_one(&mut sleepy).await.is_err(),
        "without immediate mode a lone frame wakes nobody"
    );
    sleepy.close().await.expect("closes");
}

/// Frames up to 64 KiB (a jumbo MTU on the lab's veth) arrive whole on
/// both paths: every record class from 1518 bytes up, reserved in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_up_to_64_kib_arrive_whole_on_both_paths() {
    let lab = Lab::new();
    for (ns, interface) in [
        (&lab.sender_ns, &lab.sender_if),
        (&lab.capture_ns, &lab.capture_if),
    ] {
        let status = std::process::Command::new("ip")
            .args(["-n", ns, "link", "set", interface, "mtu", "65000"])
            .status()
            .expect("running ip");
        assert!(status.success(), "a jumbo MTU on {interface}");
    }
    let daemon = RealDaemon::start("zc-big", &policy(&lab, 4), &[]);
    let open = |zero_copy: bool| {
        builder(&lab, &daemon, 7107)
            .snaplen(262_144)
            .buffer_bytes(8 << 20)
            .zero_copy(zero_copy)
            .open()
    };
    let mut in_place = open(true).await.expect("opens");
    let mut forwarded = open(false).await.expect("opens");
    assert!(in_place.zero_copy() && !forwarded.zero_copy());
    assert_eq!(in_place.snaplen(), 262_144);
    // Payloads that put the frames just past each class boundary.
    let sizes = [1519, 2049, 4097, 9217, 16385, 40_000, 64_986];
    let frames: Vec<Vec<u8>> = sizes
        .iter()
        .enumerate()
        .map(|(sequence, &size)| numbered_udp_frame(7107, sequence as u64, size - 42))
        .collect();
    let sender = lab.sender();
    for frame in &frames {
        sender.send(frame);
    }
    let expected: Vec<_> = frames
        .iter()
        .map(|frame| (frame.len() as u32, frame.clone()))
        .collect();
    for (path, capture) in [("in place", &mut in_place), ("forwarded", &mut forwarded)] {
        let got = read_packets(capture, frames.len(), Duration::from_secs(5)).await;
        let lengths: Vec<_> = got.iter().map(|(wire, data)| (*wire, data.len())).collect();
        assert_eq!(got, expected, "{path}: {lengths:?}");
    }
    in_place.close().await.expect("closes");
    forwarded.close().await.expect("closes");
}

/// The TCP payload's length in an Ethernet/IPv6 frame, past a hop-by-hop
/// header if there is one; 0 for anything else (neighbour discovery).
fn tcp_payload(frame: &[u8]) -> usize {
    let (mut next, mut at) = (frame[20], 14 + 40);
    if next == 0 {
        next = frame[at];
        at += (usize::from(frame[at + 1]) + 1) * 8;
    }
    if next != 6 {
        return 0;
    }
    at += usize::from(frame[at + 12] >> 4) * 4;
    frame.len() - at
}

/// Every packet `capture` gets until none comes for 800 ms.
/// An Ethernet/IPv6 frame carrying ICMPv6, directly or after a hop-by-hop
/// header (MLD has one).
fn is_icmpv6(frame: &[u8]) -> bool {
    const ICMPV6: u8 = 58;
    match frame.get(20) {
        Some(&ICMPV6) => true,
        Some(0) => {
            // The hop-by-hop header's next header is its first byte.
            frame.get(54) == Some(&ICMPV6)
        }
        _ => false,
    }
}

async fn read_until_quiet(capture: &mut Capture) -> Vec<(u32, Vec<u8>)> {
    let mut packets = Vec::new();
    loop {
        let more = read_packets(capture, 1, Duration::from_millis(800)).await;
        if more.is_empty() {
            return packets;
        }
        packets.extend(more);
    }
}

/// Runs `ip ARGS` in namespace `ns`; panics with its error if it fails.
fn ip_in(ns: &str, args: &[&str]) {
    let output = std::process::Command::new("ip")
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("running ip");
    assert!(
        output.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Packets past 64 KiB, as BIG TCP makes them (IPv6 GSO segments of up to
/// 200,000 bytes on the lab's veth), are captured whole at tcpdump's
/// snaplen, 262,144, on both paths: the largest record classes, reserved
/// in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_tcp_segments_past_64_kib_are_captured_whole_on_both_paths() {
    const GSO: &str = "200000";
    const SENT: usize = 4 << 20;
    let lab = Lab::new();
    let (sender, receiver) = (
        format!("fd77:{}::1", lab.subnet),
        format!("fd77:{}::2", lab.subnet),
    );
    for (ns, interface, address) in [
        (&lab.sender_ns, &lab.sender_if, &sender),
        (&lab.capture_ns, &lab.capture_if, &receiver),
    ] {
        // The lab turns IPv6 off; on for this interface alone.
        let status = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "sysctl", "-qw"])
            .arg(format!("net.ipv6.conf.{interface}.disable_ipv6=0"))
            .status()
            .expect("running sysctl");
        assert!(status.success(), "IPv6 on {interface}");
        ip_in(
            ns,
            &[
                "addr",
                "add",
                &format!("{address}/64"),
                "dev",
                interface,
                "nodad",
            ],
        );
        ip_in(
            ns,
            &[
                "link",
                "set",
                interface,
                "gso_max_size",
                GSO,
                "gro_max_size",
                GSO,
            ],
        );
    }
    // Rings that hold the whole transfer (each segment takes a 256 KiB
    // record), however late the readers.
    // Whole-size segments however slow the machine: TCP sizes them by
    // its pacing rate, at least this many MSS.
    let status = std::process::Command::new("ip")
        .args(["netns", "exec", &lab.sender_ns, "sysctl", "-qw"])
        .arg("net.ipv4.tcp_min_tso_segs=200")
        .status()
        .expect("running sysctl");
    assert!(status.success(), "tcp_min_tso_segs");
    let daemon = RealDaemon::start(
        "zc-bigtcp",
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\n\
         interfaces = [\"*\"]\nring_bytes = 33554432\n",
        &[],
    );
    let open = |zero_copy: bool| {
        CaptureBuilder::new(&lab.capture_if)
            .socket(&daemon.socket)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            // Not `tcp`: libpcap's `tcp` reads the IPv6 next header, and
            // the kernel gives a BIG TCP segment a hop-by-hop header.
            .filter(format!("ip6 src {sender}"))
            .snaplen(262_144)
            .buffer_bytes(32 << 20)
            .zero_copy(zero_copy)
            .open()
    };
    let mut in_place = open(true).await.expect("opens");
    let mut forwarded = open(false).await.expect("opens");
    assert!(in_place.zero_copy() && !forwarded.zero_copy());

    // A TCP transfer from the sender's namespace to the receiver's, read
    // by both captures as it goes.
    let listener = lab
        .capture_netns()
        .run(|| std::net::TcpListener::bind("[::]:7108").expect("listening"))
        .expect("entering the capture namespace");
    let receiving = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accepting");
        let mut sink = Vec::new();
        io::Read::read_to_end(&mut stream, &mut sink).expect("receiving");
        sink.len()
    });
    let sender_netns = lab.sender_netns();
    let target = format!("[{receiver}]:7108");
    let sending = std::thread::spawn(move || {
        sender_netns
            .run(move || {
                let mut stream = std::net::TcpStream::connect(&target).expect("connecting");
                io::Write::write_all(&mut stream, &vec![0x5a; SENT]).expect("sending");
            })
            .expect("entering the sender namespace");
    });
    // Every packet until the paths go quiet.
    let (mut got_in_place, mut got_forwarded) = tokio::join!(
        read_until_quiet(&mut in_place),
        read_until_quiet(&mut forwarded)
    );
    // The sender's own ICMPv6 (neighbour discovery, MLD) comes when it
    // comes: one reader may have stopped before a late one, the other
    // opened after an early one. The transfer's segments are compared.
    for got in [&mut got_in_place, &mut got_forwarded] {
        got.retain(|(_, data)| !is_icmpv6(data));
    }
    sending.join().expect("the sender");
    assert_eq!(receiving.join().expect("the receiver"), SENT);
    for capture in [&mut in_place, &mut forwarded] {
        let stats = capture.stats().await.expect("stats");
        assert_eq!(stats.dropped, 0, "{stats:?}");
    }
    let largest = got_in_place
        .iter()
        .map(|(wire, _)| *wire)
        .max()
        .unwrap_or(0);
    assert!(
        largest > 65_535,
        "no segment past 64 KiB: the largest was {largest} bytes"
    );
    for (wire, data) in &got_in_place {
        assert_eq!(*wire as usize, data.len(), "a {wire}-byte packet was cut");
    }
    let payload: usize = got_in_place.iter().map(|(_, data)| tcp_payload(data)).sum();
    assert!(
        payload >= SENT,
        "{payload} bytes of TCP payload captured, {SENT} sent"
    );
    let describe = |got: &[(u32, Vec<u8>)]| -> Vec<(u32, u8)> {
        got.iter()
            .map(|(wire, data)| (*wire, data.get(20).copied().unwrap_or(0xff)))
            .collect()
    };
    assert!(
        got_in_place == got_forwarded,
        "the paths differ: {} and {} packets (wire length, next header): {:?} and {:?}",
        got_in_place.len(),
        got_forwarded.len(),
        describe(&got_in_place),
        describe(&got_forwarded)
    );
    in_place.close().await.expect("closes");
    forwarded.close().await.expect("closes");
}
