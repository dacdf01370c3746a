//! The control path: sessions closing together do not wait for each
//! other (a removal deactivates its slot at once; one background rebuild
//! releases what they leave), and a slot given back is taken again only
//! once no code, filter or ring of its previous occupant remains.

use std::time::{Duration, Instant};

use libwire::{Capture, Direction};
use pktd_daemon::policy::Policy;
use pktd_tests::{corpus::numbered_udp_frame, daemon::TestDaemon, netlab::Lab};
use tokio::time::timeout;

fn policy(lab: &Lab) -> Policy {
    Policy::parse(
        &format!(
            "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"{}\"]\ninterfaces = [\"{}\"]\n\
             max_sessions = 1024\n",
            lab.capture_ns, lab.capture_if
        ),
        "control.toml",
    )
    .unwrap()
}

async fn open(daemon: &TestDaemon, lab: &Lab, port: u16) -> Capture {
    daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter(format!("udp dst port {port}"))
        .open()
        .await
        .expect("opening")
}

/// The destination ports of the frames a capture gets until `idle`.
async fn ports(capture: &mut Capture, idle: Duration) -> Vec<u16> {
    let mut ports = Vec::new();
    while let Ok(Ok(Some(packet))) = timeout(idle, capture.next_packet()).await {
        ports.push(u16::from_be_bytes([packet.data[36], packet.data[37]]));
    }
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_closing_together_free_their_slots_for_new_ones_cleanly() {
    const SESSIONS: u16 = 24;
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab));
    // A bystander through it all.
    let mut bystander = open(&daemon, &lab, 8999).await;
    let mut first = Vec::new();
    for i in 0..SESSIONS {
        first.push(open(&daemon, &lab, 9000 + i).await);
    }
    let closing = Instant::now();
    let closes = first.into_iter().map(|capture| capture.close());
    for closed in futures_util::future::join_all(closes).await {
        closed.expect("closing");
    }
    // Reported, not asserted: timings belong to `cargo xtask perf`.
    eprintln!(
        "{SESSIONS} sessions closed together in {:?}",
        closing.elapsed()
    );
    // New sessions take the same slots, with other filters, at once and
    // after the release: none may get a frame its predecessor's filter
    // matched.
    let mut second = Vec::new();
    for i in 0..SESSIONS {
        second.push(open(&daemon, &lab, 9100 + i).await);
    }
    let sender = lab.sender();
    for round in 0..3u64 {
        for i in 0..SESSIONS {
            sender.send(&numbered_udp_frame(9000 + i, round, 40));
            sender.send(&numbered_udp_frame(9100 + i, round, 40));
        }
        sender.send(&numbered_udp_frame(8999, round, 40));
    }
    for (i, capture) in second.iter_mut().enumerate() {
        let got = ports(capture, Duration::from_millis(200)).await;
        assert_eq!(got, vec![9100 + i as u16; 3], "session {i}");
    }
    assert_eq!(
        ports(&mut bystander, Duration::from_millis(200)).await,
        vec![8999; 3]
    );
    daemon.stop();
}
