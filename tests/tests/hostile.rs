//! Hostile local users against the real `pktd` binary (docs/security.md).
//! Each test runs one attack while a bystander (root, on the same
//! interface) receives a steady trickle of frames: it must get every one,
//! on time, and new clients must still be served quickly. The times are
//! printed for the closing report (`cargo test --test hostile --
//! --nocapture`).

use std::{
    io::{Read, Write},
    os::unix::net::UnixStream as StdUnixStream,
    time::{Duration, Instant},
};

use libwire::{Direction, Error as WireError, ErrorCode};
use pktd_proto::{Connection, Hello, Reply};
use pktd_tests::{
    bystander::Bystander,
    corpus::numbered_udp_frame,
    daemon::{connect_as, open_as},
    netlab::Lab,
    pktd::RealDaemon,
};

/// No principal at all.
const STRANGER: (u32, u32) = (4242, 4242);
/// A narrow principal: the lab's interface only.
const NARROW: (u32, u32) = (4343, 4343);

/// Root everywhere; NARROW on the lab's capture interface only.
fn policy(lab: &Lab) -> String {
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
max_sessions = 8
"#,
        uid = NARROW.0,
        ns = lab.capture_ns,
        iface = lab.capture_if,
    )
}

/// How long root takes to open a capture with an expression.
async fn root_open_time(lab: &Lab, daemon: &RealDaemon) -> Duration {
    let started = Instant::now();
    let capture = libwire::CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp dst port 7777")
        .open()
        .await
        .expect("root is served");
    let took = started.elapsed();
    capture.close().await.expect("root closes");
    took
}

/// A connected std socket as `uid`, for raw writes and reads.
fn raw_as(daemon: &RealDaemon, (uid, gid): (u32, u32)) -> StdUnixStream {
    connect_as(&daemon.socket, uid, gid)
        .into_std()
        .and_then(|stream| {
            stream.set_nonblocking(false)?;
            Ok(stream)
        })
        .expect("a blocking socket")
}

/// Says hello on a raw socket and reads the acknowledgement.
async fn hello(stream: tokio::net::UnixStream) -> Connection<tokio::net::UnixStream> {
    let mut connection = Connection::new(stream);
    connection
        .write_hello(&Hello::new("hostile"))
        .await
        .expect("hello");
    match connection.read_reply().await {
        Ok(Some(Reply::HelloAck { .. })) => connection,
        other => panic!("no hello ack: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_of_one_user_lock_nobody_out() {
    let lab = Lab::new();
    let daemon = RealDaemon::start(
        "idle",
        &policy(&lab),
        &["--idle-timeout", "2", "--max-connections-per-user", "32"],
    );
    let bystander = Bystander::start(&lab, &daemon.socket).await;

    // A user with no principal opens 300 connections: 32 say hello and
    // idle, the rest say nothing.
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(hello(connect_as(&daemon.socket, STRANGER.0, STRANGER.1)).await);
    }
    let mut silent: Vec<StdUnixStream> = (0..268).map(|_| raw_as(&daemon, STRANGER)).collect();
    // Beyond its 32, each is told why and closed.
    let mut refused = String::new();
    silent[0]
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let _ = silent[0].read_to_string(&mut refused);
    assert!(
        refused.contains("the most one user may have"),
        "the 33rd connection: {refused:?}"
    );

    let root = root_open_time(&lab, &daemon).await;
    let started = Instant::now();
    let narrow = open_as(
        libwire::CaptureBuilder::new(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter("udp dst port 7778"),
        &daemon.socket,
        NARROW.0,
        NARROW.1,
    )
    .await
    .expect("another user is served");
    let other = started.elapsed();
    println!("lockout by idle connections: root served in {root:?}, another user in {other:?}");
    assert!(root < Duration::from_secs(1), "root waited {root:?}");
    assert!(
        other < Duration::from_secs(1),
        "another user waited {other:?}"
    );
    drop(narrow);

    // The idle ones are closed after the idle deadline.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for connection in &mut idle {
        assert!(
            matches!(connection.read_reply().await, Ok(None) | Err(_)),
            "an idle connection outlived the idle deadline"
        );
    }
    silent.clear();
    bystander.finish_whole(Duration::from_millis(500)).await;
    let took = daemon.terminate(Duration::from_secs(2));
    println!("SIGTERM after the lockout attack: exited in {took:?}");
}

/// An expression libpcap takes minutes to compile.
fn huge_expression() -> String {
    format!(
        "udp and ({})",
        (1..=800)
            .map(|port| format!("port {port}"))
            .collect::<Vec<_>>()
            .join(" or ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_filters_freeze_nothing_and_sigterm_still_works() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("huge", &policy(&lab), &["--compile-deadline", "2"]);
    let bystander = Bystander::start(&lab, &daemon.socket).await;
    let attack = || {
        let builder = libwire::CaptureBuilder::new(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter(huge_expression());
        let socket = daemon.socket.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let result = open_as(builder, &socket, NARROW.0, NARROW.1).await;
            (result, started.elapsed())
        })
    };
    let attacks: Vec<_> = (0..4).map(|_| attack()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let root = root_open_time(&lab, &daemon).await;
    println!("freeze by filter size: root served in {root:?}");
    assert!(root < Duration::from_secs(1), "root waited {root:?}");

    let (mut busy, mut deadline) = (0, 0);
    for attack in attacks {
        let (result, took) = attack.await.unwrap();
        match result {
            Err(WireError::Daemon {
                code: ErrorCode::Limit,
                message,
            }) if message.contains("compiling already") => {
                assert!(
                    took < Duration::from_secs(1),
                    "a busy refusal took {took:?}"
                );
                busy += 1;
            }
            Err(WireError::Daemon {
                code: ErrorCode::Limit,
                message,
            }) if message.contains("longer than 2 s") => {
                assert!(
                    took < Duration::from_secs(4),
                    "the deadline refusal took {took:?}"
                );
                deadline += 1;
            }
            Ok(_) => panic!("a huge filter compiled in {took:?}"),
            Err(other) => panic!("a huge filter: {other:?}"),
        }
    }
    assert_eq!((busy, deadline), (2, 2), "two compile at a time per uid");

    // SIGTERM while huge filters compile.
    let _attacks: Vec<_> = (0..2).map(|_| attack()).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    bystander.finish_whole(Duration::from_millis(500)).await;
    let took = daemon.terminate(Duration::from_secs(1));
    println!("SIGTERM while huge filters compile: exited in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_nobody_waits_for_it() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("stuck", &policy(&lab), &["--write-timeout", "1"]);
    let bystander = Bystander::start(&lab, &daemon.socket).await;
    // Opens a capture of everything through the daemon and never reads.
    // (One that reads its ring in place and stops only fills its own
    // ring: zero_copy.rs.)
    let stuck = open_as(
        libwire::CaptureBuilder::new(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter("udp dst port 7000")
            .buffer_bytes(1 << 20)
            .zero_copy(false),
        &daemon.socket,
        NARROW.0,
        NARROW.1,
    )
    .await
    .expect("the stuck client opens");
    let sender = lab.sender();
    let flood = std::thread::spawn(move || {
        for sequence in 0..20_000 {
            sender.send(&numbered_udp_frame(7000, sequence, 1000));
        }
    });
    flood.join().unwrap();
    // Its replies fill its socket; a second later it is dropped.
    let mut control = libwire::Control::connect(&daemon.socket)
        .await
        .expect("root's control connection");
    let started = Instant::now();
    loop {
        let stats = control.daemon_stats().await.expect("daemon stats");
        if !stats.sessions.iter().any(|session| session.uid == NARROW.0) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the stuck client's session is still there: {:?}",
            stats.sessions
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "a client that stops reading: dropped {:?} after the flood",
        started.elapsed()
    );
    let root = root_open_time(&lab, &daemon).await;
    assert!(root < Duration::from_secs(1), "root waited {root:?}");
    drop(stuck);
    bystander.finish_whole(Duration::from_millis(500)).await;
    let took = daemon.terminate(Duration::from_secs(1));
    println!("SIGTERM after a stuck client: exited in {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_cut_off_at_the_hello_deadline() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("silent", &policy(&lab), &[]);
    let mut silent = raw_as(&daemon, STRANGER);
    // Half a hello, then nothing.
    silent.write_all(&[0, 0, 0, 40, 1, 2]).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(8)))
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let _ = silent.read_to_end(&mut answer);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(7),
        "the daemon kept a silent client {took:?}"
    );
    assert!(String::from_utf8_lossy(&answer).contains("no hello within"));
    daemon.terminate(Duration::from_secs(1));
}

/// A directory for a test's files, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("pktd-hostile-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The "path to root" attack: a principal whose record directory sits in a
/// directory it can write swaps the record directory for a symlink to a
/// root-owned directory. pktd must make no file there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_directory_swapped_for_a_symlink_is_never_followed() {
    use std::os::unix::fs::chown;
    let lab = Lab::new();
    let scratch = Scratch::new("swap");
    let theirs = scratch.0.join("theirs");
    let victim = scratch.0.join("victim");
    std::fs::create_dir_all(theirs.join("records")).unwrap();
    std::fs::create_dir_all(&victim).unwrap();
    chown(&theirs, Some(NARROW.0), Some(NARROW.1)).unwrap();
    let policy = format!(
        "{}record_directory = \"{}\"\n",
        policy(&lab),
        theirs.join("records").display()
    );
    let daemon = RealDaemon::start("swap", &policy, &[]);
    let record = || pktd_proto::OpenCapture {
        netns: lab.capture_ns.clone(),
        interface: lab.capture_if.clone(),
        direction: pktd_proto::Direction::In,
        snaplen: 0,
        headers_only: false,
        filter: pktd_proto::FilterSpec::Expression("udp".into()),
        optimize: true,
        packet_count: 0,
        buffer_bytes: 0,
        stats_interval_ms: 0,
        immediate: false,
        zero_copy: false,
    };
    // libwire's record() connects on its own: ask through a connection
    // made as the user instead.
    let as_narrow = |capture: pktd_proto::OpenCapture| {
        let socket = daemon.socket.clone();
        async move {
            let mut connection = hello(connect_as(&socket, NARROW.0, NARROW.1)).await;
            connection
                .write_request(&pktd_proto::Request::StartRecording(
                    pktd_proto::RecordingRequest {
                        capture,
                        pattern: "x-%d.pcap".into(),
                        rotation: pktd_proto::Rotation::default(),
                        pcapng: false,
                    },
                ))
                .await
                .unwrap();
            connection.read_reply().await.unwrap()
        }
    };
    // A directory under one the user can write is refused outright.
    match as_narrow(record()).await {
        Some(Reply::Error { code, message }) => {
            assert_eq!(code, ErrorCode::Denied, "{message}");
            assert!(
                message.contains("owned by someone other than root"),
                "{message}"
            );
        }
        other => panic!("a record directory the user controls: {other:?}"),
    }
    // And swapped for a link to a root-owned directory, still nothing.
    std::fs::remove_dir(theirs.join("records")).unwrap();
    std::os::unix::fs::symlink(&victim, theirs.join("records")).unwrap();
    assert!(matches!(
        as_narrow(record()).await,
        Some(Reply::Error {
            code: ErrorCode::Denied,
            ..
        })
    ));
    assert_eq!(
        std::fs::read_dir(&victim).unwrap().count(),
        0,
        "pktd made something in the link's target"
    );
    daemon.terminate(Duration::from_secs(1));
}

/// The disk allowance covers all of a principal's recordings together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disk_allowance_covers_all_recordings_of_a_principal() {
    let lab = Lab::new();
    let scratch = Scratch::new("allowance");
    let records = scratch.0.join("records");
    let policy = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\nrecord_directory = \"{}\"\ndisk_allowance = 3000\n",
        records.display()
    );
    let daemon = RealDaemon::start("allowance", &policy, &[]);
    for pattern in ["a-%d.pcap", "b-%d.pcap"] {
        libwire::CaptureBuilder::new(&lab.capture_if)
            .socket(&daemon.socket)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter("udp")
            .record(
                pattern,
                &libwire::Rotation {
                    packets: 4,
                    ..libwire::Rotation::default()
                },
                false,
            )
            .await
            .expect("recording");
    }
    let sender = lab.sender();
    for sequence in 0..60 {
        sender.send(&numbered_udp_frame(9000, sequence, 100));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let used: u64 = std::fs::read_dir(records.join("0"))
        .unwrap()
        .map(|entry| entry.unwrap().metadata().unwrap().len())
        .sum();
    println!("two recordings under one allowance of 3000 bytes: {used} bytes on disk");
    assert!(used <= 3000, "the recordings keep {used} bytes");
    assert!(used > 1500, "both keep recording within it: {used}");
    daemon.terminate(Duration::from_secs(1));
}

/// The socket's directory must be root's alone, and is never followed
/// through a link.
#[test]
fn a_socket_directory_a_user_controls_is_refused() {
    let scratch = Scratch::new("socket");
    let theirs = scratch.0.join("run");
    std::fs::create_dir_all(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NARROW.0), Some(NARROW.1)).unwrap();
    std::os::unix::fs::symlink("/etc", scratch.0.join("link")).unwrap();
    for socket in [theirs.join("pktd.sock"), scratch.0.join("link/pktd.sock")] {
        let output = std::process::Command::new(pktd_tests::process::bin_path("pktd"))
            .arg("--socket")
            .arg(&socket)
            .output()
            .expect("running pktd");
        assert!(
            !output.status.success(),
            "pktd served on {}",
            socket.display()
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("socket's directory"), "{stderr}");
    }
    assert!(!std::path::Path::new("/etc/pktd.sock").exists());
}

/// A frame to port 9100 with `far` at offset 100 (past a 64-byte window)
/// and `near` at offset 50 (inside it).
fn probe_frame(sequence: u64, far: u8, near: u8) -> Vec<u8> {
    let mut frame = numbered_udp_frame(9100, sequence, 200);
    frame[100] = far;
    frame[50] = near;
    frame
}

/// `ldh [36]` (the UDP destination port); `jeq #9100`; `ldb [offset]`;
/// `ret a`: a filter whose return value, the capture length, would be the
/// byte at `offset`.
fn returns_byte(offset: u32) -> [pktd_common::CbpfInsn; 5] {
    [
        pktd_common::CbpfInsn::new(0x28, 0, 0, 36),
        pktd_common::CbpfInsn::new(0x15, 0, 2, 9100),
        pktd_common::CbpfInsn::new(0x30, 0, 0, offset),
        pktd_common::CbpfInsn::new(0x16, 0, 0, 0),
        pktd_common::CbpfInsn::new(0x06, 0, 0, 0),
    ]
}

/// The snaplen bypass: a principal with `max_snaplen = 64` probes byte 100
/// with its filter's tests and with its return value. It must learn
/// nothing: no test past the window decides anything, and a return value
/// says only "match" (every record is as long as the window).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filter_learns_nothing_past_the_snaplen_window() {
    let lab = Lab::new();
    let policy = policy(&lab).replace("max_sessions = 8", "max_sessions = 8\nmax_snaplen = 64");
    let daemon = RealDaemon::start("window", &policy, &[]);
    let bystander = Bystander::start(&lab, &daemon.socket).await;
    let open = |builder: libwire::CaptureBuilder| {
        let builder = builder.netns(&lab.capture_ns).direction(Direction::In);
        open_as(builder, &daemon.socket, NARROW.0, NARROW.1)
    };
    let new = || libwire::CaptureBuilder::new(&lab.capture_if);
    let mut test_far = open(new().filter("udp dst port 9100 and ether[100] = 0x41"))
        .await
        .expect("a test past the window opens");
    let mut return_far = open(new().bytecode(&returns_byte(100)))
        .await
        .expect("a return value past the window opens");
    let mut return_near = open(new().bytecode(&returns_byte(50)))
        .await
        .expect("a return value inside the window opens");
    let sender = lab.sender();
    for sequence in 0..40u64 {
        // Half with the byte probed for; all bytes non-zero and varied.
        let far = if sequence % 2 == 0 {
            0x41
        } else {
            1 + sequence as u8
        };
        sender.send(&probe_frame(sequence, far, 1 + sequence as u8));
    }
    let decided = collect_lengths(&mut test_far).await;
    assert!(
        decided.is_empty(),
        "a test past the window decided {} frames",
        decided.len()
    );
    let far = collect_lengths(&mut return_far).await;
    assert!(
        far.is_empty(),
        "a load past the window let {} frames by, lengths {far:?}",
        far.len()
    );
    let near = collect_lengths(&mut return_near).await;
    assert_eq!(near.len(), 40, "a load inside the window works");
    assert!(
        near.iter().all(|&len| len == 64),
        "record lengths carry the filter's return value: {near:?}"
    );
    bystander.finish_whole(Duration::from_millis(500)).await;
    daemon.terminate(Duration::from_secs(1));
}

/// The lengths of the records of `capture` until it is quiet.
async fn collect_lengths(capture: &mut libwire::Capture) -> Vec<usize> {
    let mut lengths = Vec::new();
    while let Ok(Ok(Some(packet))) =
        tokio::time::timeout(Duration::from_millis(700), capture.next_packet()).await
    {
        lengths.push(packet.data.len());
    }
    lengths
}

/// The daemon keeps only the capabilities docs/security.md lists, has
/// `no_new_privs` and a seccomp filter: a bug in it cannot mount, trace,
/// load kernel modules or regain what it gave up.
#[test]
fn the_daemon_keeps_only_the_capabilities_it_needs() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("caps", &policy(&lab), &[]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.process.child.id()))
        .expect("the daemon's status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .to_owned()
    };
    // CHOWN 0, DAC_OVERRIDE 1, KILL 5, SETGID 6, SETUID 7, NET_ADMIN 12,
    // NET_RAW 13, SYS_PTRACE 19, SYS_ADMIN 21, BPF 39.
    let expected: u64 = [0, 1, 5, 6, 7, 12, 13, 19, 21, 39]
        .iter()
        .map(|bit| 1u64 << bit)
        .sum();
    for set in ["CapPrm:", "CapEff:", "CapBnd:"] {
        let mask = u64::from_str_radix(&field(set), 16).unwrap();
        assert_eq!(mask, expected, "{set} {mask:#x}");
    }
    assert_eq!(field("CapInh:"), "0000000000000000");
    assert_eq!(field("NoNewPrivs:"), "1");
    assert_eq!(field("Seccomp:"), "2", "a seccomp filter");
    daemon.terminate(Duration::from_secs(1));
}

/// A program of `len` instructions that runs every one on any frame and
/// never matches: `ldh [14]` again and again, then `ret #0`. The most
/// expensive filter of its length.
fn straight_line(len: usize) -> Vec<pktd_common::CbpfInsn> {
    let mut insns = vec![pktd_common::CbpfInsn::new(0x28, 0, 0, 14); len - 1];
    insns.push(pktd_common::CbpfInsn::new(0x06, 0, 0, 0));
    insns
}

/// Filter cost: a narrow principal's filters together have at most
/// `max_filter_insns` instructions. One over is refused, says why, and
/// changes nothing: the sessions already open keep their filters and
/// traffic; a replacement over the limit leaves the old filter; a closed
/// session gives its instructions back; root is never limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_filters_cost_at_most_what_its_principal_allows() {
    let lab = Lab::new();
    let expression = "udp dst port 9100";
    let insns = pktd_filter::compile(expression, true, 262_144)
        .expect("compiles")
        .len();
    let policy = policy(&lab).replace(
        "max_sessions = 8",
        &format!("max_sessions = 8\nmax_filter_insns = {}", 2 * insns - 1),
    );
    let daemon = RealDaemon::start("cost", &policy, &[]);
    let bystander = Bystander::start(&lab, &daemon.socket).await;
    let open = |builder: libwire::CaptureBuilder| {
        let builder = builder.netns(&lab.capture_ns).direction(Direction::In);
        open_as(builder, &daemon.socket, NARROW.0, NARROW.1)
    };
    let new = || libwire::CaptureBuilder::new(&lab.capture_if);

    let mut first = open(new().filter(expression)).await.expect("one fits");
    let refused = open(new().filter(expression)).await;
    match refused {
        Err(WireError::Daemon {
            code: ErrorCode::Limit,
            message,
        }) => assert!(message.contains("max_filter_insns"), "{message}"),
        other => panic!("a second filter over the limit: {:?}", other.map(|_| ())),
    }
    // Replacing the filter by a longer one is refused the same way, and
    // the old filter stays.
    let longer = format!("{expression} or host 10.1.2.3 or host 10.4.5.6 or net 192.168.0.0/16");
    let longer_insns = pktd_filter::compile(&longer, true, 262_144)
        .expect("compiles")
        .len();
    assert!(longer_insns > 2 * insns - 1, "{longer_insns} instructions");
    match first.set_filter(&longer, true).await {
        Err(WireError::Daemon {
            code: ErrorCode::Limit,
            ..
        }) => {}
        other => panic!("a longer replacement: {other:?}"),
    }
    let sender = lab.sender();
    for sequence in 0..5 {
        sender.send(&numbered_udp_frame(9100, sequence, 20));
    }
    assert_eq!(
        collect_lengths(&mut first).await.len(),
        5,
        "the old filter runs"
    );

    // Root is not limited.
    let root = libwire::CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .bytecode(&straight_line(1000))
        .open()
        .await
        .expect("root's filters are not limited");

    // Closing the first gives its instructions back.
    first.close().await.expect("closes");
    let second = open(new().filter(expression))
        .await
        .expect("fits once the first is closed");
    drop(second);
    drop(root);
    bystander.finish_whole(Duration::from_millis(500)).await;
    daemon.terminate(Duration::from_secs(1));
}

/// Interface outage: filters the translator leaves to the interpreter (all
/// of them, with `--engine interpreter`), each as long as classic BPF
/// allows and run to its end on every frame, cost each packet a bounded
/// budget. The bystander, interpreted too, loses nothing; the long filters
/// are told (and the owner's log says) that they ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interpreted_filters_cannot_take_an_interface_down() {
    let lab = Lab::new();
    let policy = policy(&lab).replace("max_sessions = 8", "max_sessions = 8\nmax_filter_insns = 0");
    let mut daemon = RealDaemon::start("budget", &policy, &["--engine", "interpreter"]);
    let bystander = Bystander::start(&lab, &daemon.socket).await;
    let mut attackers = Vec::new();
    for _ in 0..3 {
        attackers.push(
            open_as(
                libwire::CaptureBuilder::new(&lab.capture_if)
                    .netns(&lab.capture_ns)
                    .direction(Direction::In)
                    .bytecode(&straight_line(pktd_common::MAX_INSNS)),
                &daemon.socket,
                NARROW.0,
                NARROW.1,
            )
            .await
            .expect("a longest filter opens"),
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for attacker in &mut attackers {
        let stats = attacker.stats().await.expect("counters");
        assert!(stats.over_budget > 0, "{stats:?}");
        assert_eq!(stats.matched, 0, "{stats:?}");
    }
    assert!(
        daemon
            .process
            .wait_for_stderr("ran out of interpreter budget", Duration::from_secs(2)),
        "the kernel program's log: {:?}",
        daemon.process.stderr_lines
    );
    let report = bystander.finish_whole(Duration::from_millis(500)).await;
    println!("interpreter budget: the bystander got {report:?}");
    drop(attackers);
    daemon.terminate(Duration::from_secs(1));
}

/// Under a `max_snaplen` window a filter is charged as it runs, confined:
/// each indirect load gains the checks that keep it inside the window, so
/// a filter short as sent but long as confined is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confined_filter_is_charged_as_it_runs() {
    let lab = Lab::new();
    let mut insns = vec![pktd_common::CbpfInsn::new(0x01, 0, 0, 0)]; // ldx #0
    for k in 0..6 {
        insns.push(pktd_common::CbpfInsn::new(0x48, 0, 0, 14 + 2 * k)); // ldh [x + k]
    }
    insns.push(pktd_common::CbpfInsn::new(0x06, 0, 0, 0));
    let program = pktd_filter::validate(&insns).expect("valid");
    let confined = pktd_filter::confine(&program, 64).expect("confines").len();
    let limit = insns.len() + 4;
    assert!(confined > limit, "{confined} instructions once confined");
    let policy = policy(&lab).replace(
        "max_sessions = 8",
        &format!("max_sessions = 8\nmax_snaplen = 64\nmax_filter_insns = {limit}"),
    );
    let daemon = RealDaemon::start("confined-cost", &policy, &[]);
    let open = |program: &[pktd_common::CbpfInsn]| {
        let builder = libwire::CaptureBuilder::new(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .bytecode(program);
        open_as(builder, &daemon.socket, NARROW.0, NARROW.1)
    };
    match open(&insns).await {
        Err(WireError::Daemon {
            code: ErrorCode::Limit,
            message,
        }) => assert!(
            message.contains(&format!("a filter of {confined} instructions")),
            "{message}"
        ),
        other => panic!("a filter long once confined: {:?}", other.map(|_| ())),
    }
    let short = [pktd_common::CbpfInsn::new(0x06, 0, 0, 0)];
    open(&short).await.expect("a short filter fits");
    daemon.terminate(Duration::from_secs(1));
}
