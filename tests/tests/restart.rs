//! Restarts and crashes lose nothing (issue 14, part 6), against the real
//! `pktd` binary: a daemon killed with SIGKILL in the middle of recordings
//! under traffic leaves files every reader takes whole, nothing attached,
//! and a journal from which the next daemon resumes each recording,
//! continuing its file numbers; a recording the policy no longer grants
//! ends instead, its files repaired all the same.

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use aya::programs::{SchedClassifier, tc::TcAttachType};
use libwire::Direction;
use pktd_tests::{
    corpus::{numbered_udp_frame, sequence_and_port},
    netlab::Lab,
    pktd::{RealDaemon, Scratch},
};

/// Root may record on `interface` into `records`.
fn policy(records: &Path, interface: &str) -> String {
    format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"{interface}\"]\nrecord_directory = \"{}\"\n",
        records.display()
    )
}

/// Numbered UDP frames at a steady pace until stopped; how many were sent.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(lab: &Lab) -> Self {
        let sender = lab.sender();
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut sequence = 0;
                // About 2000 frames a second, at most a minute's worth.
                while !stop.load(Ordering::Relaxed) && sequence < 120_000 {
                    sender.send(&numbered_udp_frame(9000, sequence, 100));
                    sequence += 1;
                    sent.store(sequence, Ordering::Relaxed);
                    if sequence % 4 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        };
        Self {
            stop,
            sent,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
        self.sent.load(Ordering::Relaxed)
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The files of `directory` whose names start with `prefix`, by number.
fn numbered(directory: &Path, prefix: &str) -> Vec<(u64, PathBuf)> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(directory)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter_map(|path| {
                    let name = path.file_name()?.to_str()?.to_owned();
                    let number = name.strip_prefix(prefix)?.split('.').next()?.parse().ok()?;
                    Some((number, path))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Waits until `directory` holds at least `count` files of `prefix`.
fn wait_for_files(directory: &Path, prefix: &str, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while numbered(directory, prefix).len() < count {
        assert!(
            Instant::now() < deadline,
            "no {count} files {prefix}* in {}: {:?}",
            directory.display(),
            numbered(directory, prefix)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What tcpdump says of `file`: it must read it whole, without a word on
/// standard error but its banner; the number of packets.
fn tcpdump_reads_whole(file: &Path) -> usize {
    let output = Command::new("tcpdump")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .output()
        .expect("running tcpdump");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success()
            && stderr
                .lines()
                .all(|line| line.starts_with("reading from file")),
        "tcpdump on {}: {stderr}",
        file.display()
    );
    String::from_utf8_lossy(&output.stdout).lines().count()
}

/// The sequence numbers of a classic pcap file's frames.
fn sequences(file: &Path) -> Vec<u64> {
    let mut reader = pktd_pcap::savefile::Reader::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut sequences = Vec::new();
    while let Some(packet) = reader.next_packet().unwrap() {
        sequences.push(sequence_and_port(&packet.data).0);
    }
    sequences
}

/// The programs attached by TCX to the lab's capture interface.
fn tcx_programs(lab: &Lab) -> usize {
    let interface = lab.capture_if.clone();
    lab.capture_netns()
        .open()
        .unwrap()
        .run(move || {
            [TcAttachType::Ingress, TcAttachType::Egress]
                .into_iter()
                .map(|direction| {
                    SchedClassifier::query_tcx(&interface, direction)
                        .map(|(_, programs)| programs.len())
                        .unwrap_or_else(|err| panic!("querying TCX: {err}"))
                })
                .sum()
        })
        .unwrap()
}

async fn record(lab: &Lab, daemon: &RealDaemon, pattern: &str, pcapng: bool) -> u64 {
    libwire::CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp")
        .record(
            pattern,
            &libwire::Rotation {
                packets: 300,
                ..libwire::Rotation::default()
            },
            pcapng,
        )
        .await
        .expect("recording")
        .id
}

/// SIGKILL in the middle of two recordings (pcap and pcapng) under
/// traffic: every file reads whole, nothing stays attached, and the next
/// daemon resumes both, the next file numbers following on; the file
/// being written, torn as a crash in the middle of a write tears it, is
/// cut back to its last whole record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recordings_go_on_after_sigkill_and_every_file_reads_whole() {
    let lab = Lab::new();
    let dir = Scratch::new("restart-kill");
    let records = dir.0.join("records");
    let state = dir.0.join("state");
    let policy = policy(&records, &lab.capture_if);
    let args = ["--state-dir", state.to_str().unwrap()];
    let daemon = RealDaemon::start_in(dir, &policy, &args);
    record(&lab, &daemon, "kill-%d.pcap", false).await;
    record(&lab, &daemon, "kill-%d.pcapng", true).await;
    let user_dir = records.join("0");
    let traffic = Traffic::start(&lab);
    wait_for_files(&user_dir, "kill-", 6);
    let dir = daemon.kill();
    assert_eq!(
        tcx_programs(&lab),
        0,
        "programs stay attached after SIGKILL"
    );
    let before: Vec<(u64, PathBuf)> = numbered(&user_dir, "kill-")
        .into_iter()
        .filter(|(_, path)| path.extension().unwrap() == "pcap")
        .collect();
    let (last_number, last) = before.last().cloned().unwrap();
    // What SIGKILL left reads whole; then the last file is torn: half a
    // record header, as a crash in the middle of a write leaves it.
    for (_, file) in numbered(&user_dir, "kill-") {
        tcpdump_reads_whole(&file);
    }
    let whole_size = std::fs::metadata(&last).unwrap().len();
    {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        file.write_all(&[0x5a; 9]).unwrap();
    }

    let mut daemon = RealDaemon::start_in(dir, &policy, &args);
    for _ in 0..2 {
        assert!(
            daemon
                .process
                .wait_for_stderr("recording resumed", Duration::from_secs(10)),
            "the recordings were not resumed: {:?}",
            daemon.process.stderr_lines
        );
    }
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        whole_size,
        "the torn file was not cut back to its last whole record"
    );
    let after = before.len() + 2;
    let deadline = Instant::now() + Duration::from_secs(20);
    while numbered(&user_dir, "kill-")
        .iter()
        .filter(|(_, path)| path.extension().unwrap() == "pcap")
        .count()
        < after
    {
        assert!(
            Instant::now() < deadline,
            "the resumed recording writes no files"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = traffic.stop();
    let listed = libwire::list_recordings(&daemon.socket).await.unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    for recording in &listed {
        assert!(recording.ended.is_none(), "{recording:?}");
        assert!(recording.packets > 0, "{recording:?}");
    }
    let dir = daemon.terminate_keeping(Duration::from_secs(5));
    // A shut-down daemon keeps its recordings for the next start.
    let kept = std::fs::read_dir(&state)
        .unwrap()
        .filter(|entry| {
            entry
                .as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "json")
        })
        .count();
    assert_eq!(kept, 2, "the journal after SIGTERM");

    // Every file reads whole; the numbers go on without a gap or a reuse,
    // and no frame is in two files.
    let pcap: Vec<(u64, PathBuf)> = numbered(&user_dir, "kill-")
        .into_iter()
        .filter(|(_, path)| path.extension().unwrap() == "pcap")
        .collect();
    let numbers: Vec<u64> = pcap.iter().map(|(number, _)| *number).collect();
    assert_eq!(numbers, (0..numbers.len() as u64).collect::<Vec<_>>());
    assert!(numbers.len() as u64 > last_number + 1);
    let mut all = Vec::new();
    for (_, file) in &pcap {
        let packets = tcpdump_reads_whole(file);
        let in_file = sequences(file);
        assert_eq!(packets, in_file.len());
        all.extend(in_file);
    }
    for (_, file) in numbered(&user_dir, "kill-") {
        tcpdump_reads_whole(&file);
    }
    let received = all.len();
    assert!(
        all.windows(2).all(|pair| pair[0] < pair[1]),
        "frames out of order or in two files"
    );
    // Every frame from the first on, but for one gap: the restart's.
    assert_eq!(all.first(), Some(&0));
    let gaps: Vec<(u64, u64)> = all
        .windows(2)
        .filter(|pair| pair[1] != pair[0] + 1)
        .map(|pair| (pair[0], pair[1]))
        .collect();
    assert!(gaps.len() <= 1, "frames lost outside the restart: {gaps:?}");
    println!(
        "sent {sent} frames; the pcap recording holds {received} in {} files; the restart's gap: {gaps:?}",
        pcap.len()
    );
    assert!(received > 600 && (received as u64) < sent);
    drop(dir);
}

/// A recording the policy no longer grants at the restart is not resumed:
/// it ends, its journal entry goes, and its torn file is repaired anyway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_the_new_policy_refuses_ends_with_its_files_repaired() {
    let lab = Lab::new();
    let dir = Scratch::new("restart-refused");
    let records = dir.0.join("records");
    let state = dir.0.join("state");
    let args = ["--state-dir", state.to_str().unwrap()];
    let daemon = RealDaemon::start_in(dir, &policy(&records, &lab.capture_if), &args);
    record(&lab, &daemon, "gone-%d.pcap", false).await;
    let user_dir = records.join("0");
    let traffic = Traffic::start(&lab);
    wait_for_files(&user_dir, "gone-", 2);
    let dir = daemon.kill();
    traffic.stop();
    let (_, last) = numbered(&user_dir, "gone-").pop().unwrap();
    let whole_size = std::fs::metadata(&last).unwrap().len();
    {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&last)
            .unwrap();
        file.write_all(&[0x5a; 21]).unwrap();
    }
    // Root may no longer capture on the lab's interface.
    let mut daemon = RealDaemon::start_in(dir, &policy(&records, "lo"), &args);
    assert!(
        daemon
            .process
            .wait_for_stderr("cannot go on", Duration::from_secs(10)),
        "{:?}",
        daemon.process.stderr_lines
    );
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        whole_size,
        "{:?}",
        daemon.process.stderr_lines
    );
    tcpdump_reads_whole(&last);
    assert!(
        libwire::list_recordings(&daemon.socket)
            .await
            .unwrap()
            .is_empty()
    );
    let files = numbered(&user_dir, "gone-").len();
    let dir = daemon.terminate_keeping(Duration::from_secs(5));
    assert_eq!(
        std::fs::read_dir(&state).unwrap().count(),
        0,
        "the refused recording's entry stayed"
    );
    assert_eq!(numbered(&user_dir, "gone-").len(), files, "a file was made");
    drop(dir);
}

/// pktcap --reconnect across a restart (SIGTERM: the session ends with
/// "daemon restarting") and a crash (SIGKILL: the connection is lost):
/// each time it says so, captures again, and says how many packets the
/// gap may have lost; one file holds it all, whole, and each gap in its
/// frames is within the bound it gave.
#[test]
fn pktcap_reconnects_across_a_restart_and_a_crash_and_bounds_each_gap() {
    let lab = Lab::new();
    let dir = Scratch::new("restart-client");
    let records = dir.0.join("records");
    let state = dir.0.join("state");
    let output = dir.0.join("across.pcap");
    let policy = policy(&records, &lab.capture_if);
    let args = ["--state-dir", state.to_str().unwrap()];
    let daemon = RealDaemon::start_in(dir, &policy, &args);
    let mut command = Command::new(pktd_tests::process::bin_path("pktcap"));
    command
        .args(["--socket", daemon.socket.to_str().unwrap()])
        .args(["--netns", &lab.capture_ns, "-i", &lab.capture_if])
        .args(["-Q", "in", "--reconnect", "30", "-w"])
        .arg(&output)
        .arg("udp")
        .stdout(std::process::Stdio::null());
    let mut pktcap = pktd_tests::process::Running::spawn(command);
    assert!(
        pktcap.wait_for_stderr("listening on", Duration::from_secs(10)),
        "{:?}",
        pktcap.stderr_lines
    );
    let traffic = Traffic::start(&lab);
    std::thread::sleep(Duration::from_millis(700));

    let dir = daemon.terminate_keeping(Duration::from_secs(5));
    assert!(
        pktcap.wait_for_stderr("daemon restarting; reconnecting", Duration::from_secs(5)),
        "{:?}",
        pktcap.stderr_lines
    );
    let daemon = RealDaemon::start_in(dir, &policy, &args);
    assert!(
        pktcap.wait_for_stderr("capturing again", Duration::from_secs(20)),
        "{:?}",
        pktcap.stderr_lines
    );
    std::thread::sleep(Duration::from_millis(1500));

    let dir = daemon.kill();
    assert!(
        pktcap.wait_for_stderr("reconnecting", Duration::from_secs(5)),
        "{:?}",
        pktcap.stderr_lines
    );
    let daemon = RealDaemon::start_in(dir, &policy, &args);
    let deadline = Instant::now() + Duration::from_secs(20);
    while pktcap
        .stderr_lines
        .iter()
        .filter(|line| line.contains("capturing again"))
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "{:?}", pktcap.stderr_lines);
        pktcap.wait_for_stderr("\u{0}", Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let sent = traffic.stop();
    std::thread::sleep(Duration::from_millis(300));
    pktcap.signal("INT");
    let status = pktcap.wait(Duration::from_secs(10)).expect("pktcap exits");
    assert!(status.success(), "{:?}", pktcap.stderr_lines);
    let dir = daemon.terminate_keeping(Duration::from_secs(5));

    // The bounds pktcap gave, in order.
    let bounds: Vec<u64> = pktcap
        .stderr_lines
        .iter()
        .filter_map(|line| {
            let rest = line.split("the interface carried ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .collect();
    assert_eq!(bounds.len(), 2, "{:?}", pktcap.stderr_lines);
    tcpdump_reads_whole(&output);
    let all = sequences(&output);
    assert!(
        all.windows(2).all(|pair| pair[0] < pair[1]),
        "frames out of order or twice"
    );
    let gaps: Vec<u64> = all
        .windows(2)
        .filter(|pair| pair[1] != pair[0] + 1)
        .map(|pair| pair[1] - pair[0] - 1)
        .collect();
    println!(
        "sent {sent}, captured {} across two reconnections; missed {gaps:?}, bounds said {bounds:?}; {:?}",
        all.len(),
        pktcap.stderr_lines
    );
    assert!(gaps.len() <= 2, "frames lost outside the gaps: {gaps:?}");
    // Each gap is within its bound (a gap may be none at all).
    let mut bounds_left = bounds.clone();
    for gap in &gaps {
        let position = bounds_left
            .iter()
            .position(|bound| gap <= bound)
            .unwrap_or_else(|| panic!("a gap of {gap} frames beyond the bounds {bounds:?}"));
        bounds_left.remove(position);
    }
    drop(dir);
}

/// The interface's own count, which bounds a gap, goes only to principals
/// that may see all of its traffic: under a policy filter it is withheld.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_interface_count_is_withheld_under_a_policy_filter() {
    let lab = Lab::new();
    let policy = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n\n[[principal]]\nname = \"filtered\"\nusers = [4545]\nnetns = [\"{ns}\"]\ninterfaces = [\"{iface}\"]\nfilter = \"udp port 9000\"\n",
        ns = lab.capture_ns,
        iface = lab.capture_if
    );
    let daemon = RealDaemon::start("restart-count", &policy, &[]);
    let builder = || {
        libwire::CaptureBuilder::new(&lab.capture_if)
            .socket(&daemon.socket)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
    };
    let mut root = builder().open().await.unwrap();
    let mut filtered = pktd_tests::daemon::open_as(builder(), &daemon.socket, 4545, 4545)
        .await
        .unwrap();
    let sender = lab.sender();
    for sequence in 0..20 {
        sender.send(&numbered_udp_frame(9000, sequence, 60));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counted = root.stats().await.unwrap().interface_packets;
    assert!(counted.is_some_and(|packets| packets >= 20), "{counted:?}");
    assert_eq!(filtered.stats().await.unwrap().interface_packets, None);
    daemon.terminate(Duration::from_secs(5));
}
