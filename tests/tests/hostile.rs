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
    // Opens a capture of everything and never reads.
    let stuck = open_as(
        libwire::CaptureBuilder::new(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .filter("udp dst port 7000")
            .buffer_bytes(1 << 20),
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
