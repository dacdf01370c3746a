//! A policy reload reaches running work: within a second every session and
//! recording follows each changed rule, or ends with a reason. One test per
//! rule, each through the daemon's policy store as SIGHUP replaces it.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use libwire::{Capture, Direction, EndReason, InjectVerdict};
use pktd_daemon::policy::Policy;
use pktd_tests::{
    corpus::{numbered_udp_frame, sequence_and_port},
    daemon::{TestDaemon, open_as},
    netlab::Lab,
};
use tokio::time::timeout;

/// How long the daemon has to apply a reload.
const APPLIED_WITHIN: Duration = Duration::from_secs(1);

/// One principal, root, on the lab's interface, with `extra` keys.
fn policy(lab: &Lab, extra: &str) -> Policy {
    Policy::parse(
        &format!(
            "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"{ns}\"]\ninterfaces = [\"{iface}\"]\n{extra}\n",
            ns = lab.capture_ns,
            iface = lab.capture_if,
        ),
        "reload.toml",
    )
    .expect("a valid policy")
}

/// Reads packets until `idle` passes without one or the session ends.
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

async fn open(daemon: &TestDaemon, lab: &Lab, direction: Direction, filter: &str) -> Capture {
    daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(direction)
        .filter(filter)
        .open()
        .await
        .expect("opening")
}

/// Replaces the policy and gives the daemon its second.
async fn reload(daemon: &TestDaemon, policy: Policy) {
    daemon.policy.replace(policy);
    tokio::time::sleep(APPLIED_WITHIN).await;
}

fn send(lab: &Lab, port: u16, sequences: std::ops::Range<u64>, payload: usize) {
    let sender = lab.sender();
    for sequence in sequences {
        sender.send(&numbered_udp_frame(port, sequence, payload));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_policy_filter_applies_to_running_sessions() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, ""));
    let mut capture = open(&daemon, &lab, Direction::In, "udp").await;
    send(&lab, 9000, 0..3, 40);
    send(&lab, 9001, 3..6, 40);
    assert_eq!(
        collect(&mut capture, Duration::from_millis(500))
            .await
            .len(),
        6
    );
    reload(&daemon, policy(&lab, "filter = \"udp dst port 9001\"")).await;
    send(&lab, 9000, 6..9, 40);
    send(&lab, 9001, 9..12, 40);
    let ports: Vec<u16> = collect(&mut capture, Duration::from_millis(500))
        .await
        .iter()
        .map(|frame| sequence_and_port(frame).1)
        .collect();
    assert_eq!(
        ports,
        vec![9001; 3],
        "only what the new policy filter lets by"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_max_snaplen_applies_to_running_sessions() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, "max_snaplen = 1500"));
    let mut capture = open(&daemon, &lab, Direction::In, "udp").await;
    send(&lab, 9000, 0..3, 300);
    let before = collect(&mut capture, Duration::from_millis(500)).await;
    assert!(
        before.iter().all(|frame| frame.len() > 300),
        "whole frames first"
    );
    reload(&daemon, policy(&lab, "max_snaplen = 64")).await;
    send(&lab, 9000, 3..6, 300);
    let after = collect(&mut capture, Duration::from_millis(500)).await;
    assert_eq!(after.len(), 3);
    assert!(
        after.iter().all(|frame| frame.len() == 64),
        "cut to the new snaplen: {:?}",
        after.iter().map(Vec::len).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_packet_quota_applies_to_running_sessions() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, ""));
    let mut capture = open(&daemon, &lab, Direction::In, "udp").await;
    send(&lab, 9000, 0..5, 40);
    assert_eq!(
        collect(&mut capture, Duration::from_millis(500))
            .await
            .len(),
        5
    );
    reload(&daemon, policy(&lab, "packet_quota = 8")).await;
    send(&lab, 9000, 5..15, 40);
    let after = collect(&mut capture, Duration::from_secs(2)).await;
    assert_eq!(after.len(), 3, "the quota counts what was delivered before");
    assert_eq!(capture.end_reason(), Some(&EndReason::PacketQuota));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_byte_quota_applies_to_running_sessions() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, ""));
    let mut capture = open(&daemon, &lab, Direction::In, "udp").await;
    send(&lab, 9000, 0..2, 58);
    let before = collect(&mut capture, Duration::from_millis(500)).await;
    assert_eq!(before.len(), 2);
    let frame = before[0].len() as u64;
    // Room for three more frames.
    let quota = frame * 5;
    reload(&daemon, policy(&lab, &format!("byte_quota = {quota}"))).await;
    send(&lab, 9000, 2..12, 58);
    let after = collect(&mut capture, Duration::from_secs(2)).await;
    assert_eq!(after.len(), 3);
    assert_eq!(capture.end_reason(), Some(&EndReason::ByteQuota));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fewer_directions_end_the_sessions_that_want_more() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, ""));
    let mut both = open(&daemon, &lab, Direction::InOut, "udp").await;
    let mut received = open(&daemon, &lab, Direction::In, "udp").await;
    reload(&daemon, policy(&lab, "directions = [\"in\"]")).await;
    collect(&mut both, Duration::from_millis(200)).await;
    assert_eq!(both.end_reason(), Some(&EndReason::PolicyRevoked));
    send(&lab, 9000, 0..3, 40);
    assert_eq!(
        collect(&mut received, Duration::from_millis(500))
            .await
            .len(),
        3
    );
    assert_eq!(received.end_reason(), None, "what is still allowed goes on");
}

/// A lower `max_filter_insns` ends sessions of a uid (not root: root is
/// never limited) until the rest fit: here one of two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_filter_cost_limit_ends_sessions_until_the_rest_fit() {
    const USER: (u32, u32) = (4545, 4545);
    let lab = Lab::new();
    let user = |limit: usize| {
        format!(
            "[[principal]]\nname = \"user\"\nusers = [{uid}]\nnetns = [\"{ns}\"]\n\
             interfaces = [\"{iface}\"]\nmax_filter_insns = {limit}\n",
            uid = USER.0,
            ns = lab.capture_ns,
            iface = lab.capture_if,
        )
    };
    let insns = pktd_filter::compile("udp", true, 262_144)
        .expect("compiles")
        .len();
    let daemon = TestDaemon::start(policy(&lab, &user(2 * insns)));
    let mut sessions = Vec::new();
    for _ in 0..2 {
        sessions.push(
            open_as(
                daemon
                    .capture(&lab.capture_if)
                    .netns(&lab.capture_ns)
                    .direction(Direction::In)
                    .filter("udp"),
                &daemon.socket,
                USER.0,
                USER.1,
            )
            .await
            .expect("both fit"),
        );
    }
    let mut root = open(&daemon, &lab, Direction::In, "udp").await;
    reload(&daemon, policy(&lab, &user(insns))).await;
    send(&lab, 9000, 0..3, 40);
    let mut delivered = Vec::new();
    for session in &mut sessions {
        delivered.push(collect(session, Duration::from_millis(500)).await.len());
    }
    delivered.sort();
    assert_eq!(delivered, [0, 3], "one session ends, the other goes on");
    let ended: Vec<_> = sessions.iter().filter_map(Capture::end_reason).collect();
    assert_eq!(ended, [&EndReason::PolicyRevoked]);
    assert_eq!(
        collect(&mut root, Duration::from_millis(500)).await.len(),
        3,
        "root's session is not limited"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawn_interface_ends_its_sessions() {
    let lab = Lab::new();
    let daemon = TestDaemon::start(policy(&lab, ""));
    let mut capture = open(&daemon, &lab, Direction::In, "udp").await;
    daemon.policy.replace(
        Policy::parse(
            &format!(
                "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"{}\"]\ninterfaces = [\"eth9\"]\n",
                lab.capture_ns
            ),
            "reload.toml",
        )
        .unwrap(),
    );
    tokio::time::sleep(APPLIED_WITHIN).await;
    collect(&mut capture, Duration::from_millis(200)).await;
    assert_eq!(capture.end_reason(), Some(&EndReason::PolicyRevoked));
}

/// A scratch record directory, removed on drop.
struct RecordDir(PathBuf);

impl RecordDir {
    fn new(tag: &str) -> Self {
        let path = std::env::temp_dir().join(format!("pktd-reload-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        Self(path)
    }

    /// Root's files (in its own directory, `0`).
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.0.join("0"))
            .map(|entries| {
                entries
                    .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for RecordDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn record(daemon: &TestDaemon, lab: &Lab, packets_per_file: u64) -> u64 {
    daemon
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp")
        .record(
            "r-%d.pcap",
            &libwire::Rotation {
                packets: packets_per_file,
                ..libwire::Rotation::default()
            },
            false,
        )
        .await
        .expect("recording")
        .id
}

async fn recording_end(socket: &Path, id: u64) -> Option<EndReason> {
    libwire::list_recordings(socket)
        .await
        .expect("listing")
        .into_iter()
        .find(|recording| recording.id == id)
        .expect("the recording is listed")
        .ended
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_record_directory_ends_its_recordings() {
    let lab = Lab::new();
    let (first, second) = (RecordDir::new("a"), RecordDir::new("b"));
    let directory = |dir: &RecordDir| format!("record_directory = \"{}\"", dir.0.display());
    let daemon = TestDaemon::start(policy(&lab, &directory(&first)));
    let id = record(&daemon, &lab, 0).await;
    reload(&daemon, policy(&lab, &directory(&second))).await;
    assert_eq!(
        recording_end(&daemon.socket, id).await,
        Some(EndReason::PolicyRevoked)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_disk_allowance_applies_to_running_recordings() {
    let lab = Lab::new();
    let dir = RecordDir::new("allowance");
    let keys = |allowance: u64| {
        format!(
            "record_directory = \"{}\"\ndisk_allowance = {allowance}",
            dir.0.display()
        )
    };
    let daemon = TestDaemon::start(policy(&lab, &keys(0)));
    let id = record(&daemon, &lab, 5).await;
    send(&lab, 9000, 0..22, 40);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(dir.files().len(), 5, "{:?}", dir.files());
    // A file of five 82-byte frames: 24 + 5 * (16 + 82) = 514 bytes; two
    // of them and the current one fit in 1400.
    reload(&daemon, policy(&lab, &keys(1400))).await;
    assert_eq!(
        dir.files(),
        vec!["r-2.pcap", "r-3.pcap", "r-4.pcap"],
        "the oldest files go at once, without traffic"
    );
    assert_eq!(recording_end(&daemon.socket, id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_injection_rules_apply_to_the_next_frames() {
    let lab = Lab::new();
    let rules = |filter: &str| {
        format!("inject_filter = \"{filter}\"\ninject_spoof = true\ninject_rate_pps = 1000")
    };
    let daemon = TestDaemon::start(policy(&lab, &rules("udp dst port 9000")));
    let mut injector = libwire::Injector::open(&daemon.socket, &lab.capture_ns, &lab.capture_if)
        .await
        .expect("an injector");
    let frames = vec![numbered_udp_frame(9000, 0, 40)];
    assert_eq!(
        injector.inject(&frames).await.unwrap(),
        vec![InjectVerdict::Sent]
    );
    reload(&daemon, policy(&lab, &rules("udp dst port 9001"))).await;
    match injector.inject(&frames).await.unwrap().as_slice() {
        [InjectVerdict::Refused(reason)] => {
            assert!(reason.contains("injection filter"), "{reason}")
        }
        other => panic!("after the reload: {other:?}"),
    }
}
