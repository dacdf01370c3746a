//! The real `pktd` and `pktcap` programs as an operator runs them: signals,
//! policy files, savefiles read back by tcpdump.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use aya::programs::{SchedClassifier, TcAttachType};
use pktd_tests::{
    corpus::numbered_udp_frame,
    netlab::Lab,
    process::{Running, bin_path},
};

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("pktd-bin-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn root_policy(interfaces: &str, extra: &str) -> String {
    format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [{interfaces}]\n{extra}\n"
    )
}

fn start_pktd(socket: &Path, policy: &Path) -> Running {
    let mut command = Command::new(bin_path("pktd"));
    command
        .arg("--socket")
        .arg(socket)
        .arg("--policy")
        .arg(policy)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    let mut pktd = Running::spawn(command);
    assert!(
        pktd.wait_for_stderr("pktd serving", Duration::from_secs(10)),
        "pktd did not start: {:?}",
        pktd.stderr_lines
    );
    pktd
}

fn pktcap(socket: &Path, lab: &Lab, args: &[&str]) -> Command {
    let mut command = Command::new(bin_path("pktcap"));
    command
        .arg("--socket")
        .arg(socket)
        .args(["--netns", &lab.capture_ns, "-i", &lab.capture_if])
        .args(args);
    command
}

/// The pktd programs attached at TCX on the lab's capture interface.
fn attached_programs(lab: &Lab) -> Vec<String> {
    let interface = lab.capture_if.clone();
    lab.capture_netns()
        .run(move || {
            let mut names = Vec::new();
            for hook in [TcAttachType::Ingress, TcAttachType::Egress] {
                let (_, programs) =
                    SchedClassifier::query_tcx(&interface, hook).expect("querying TCX");
                names.extend(
                    programs
                        .iter()
                        .map(|program| program.name_as_str().unwrap_or("?").to_owned()),
                );
            }
            names
        })
        .expect("entering the namespace")
}

#[test]
fn pktcap_writes_a_savefile_tcpdump_reads_back_as_sent() {
    let lab = Lab::new();
    let scratch = Scratch::new("w");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, root_policy("\"*\"", "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let savefile = scratch.0.join("out.pcap");
    let mut command = pktcap(&socket, &lab, &["-Q", "in", "-c", "25", "-w"]);
    command.arg(&savefile).args(["udp", "dst", "port", "9001"]);
    let mut capture = Running::spawn(command);
    assert!(
        capture.wait_for_stderr("listening on", Duration::from_secs(10)),
        "{:?}",
        capture.stderr_lines
    );
    assert!(capture.stderr_lines.iter().any(|line| line
        == &format!(
            "listening on {}, link-type EN10MB (Ethernet), snapshot length 262144 bytes",
            lab.capture_if
        )));
    let sender = lab.sender();
    let mut wanted = Vec::new();
    for sequence in 0..60u64 {
        let frame = numbered_udp_frame(9000 + (sequence % 2) as u16, sequence, 100);
        sender.send(&frame);
        if sequence % 2 == 1 && wanted.len() < 25 {
            wanted.push(frame);
        }
    }
    let status = capture
        .wait(Duration::from_secs(10))
        .expect("pktcap ends at -c");
    assert!(status.success(), "{:?}", capture.stderr_lines);
    assert!(
        capture
            .stderr_lines
            .contains(&"25 packets captured".to_owned())
    );
    assert!(
        capture
            .stderr_lines
            .contains(&"0 packets dropped by kernel".to_owned())
    );

    let frames = tcpdump_frames(&savefile);
    assert_eq!(frames.len(), 25, "tcpdump read {} frames", frames.len());
    assert!(
        frames == wanted,
        "the savefile's frames differ from those sent"
    );
}

/// `pktcap --snap headers -w`: tcpdump reads back each frame cut after
/// its UDP header, the wire length kept, and prints the header fields.
#[test]
fn pktcap_snap_headers_writes_headers_only_tcpdump_reads_back() {
    let lab = Lab::new();
    let scratch = Scratch::new("snap");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, root_policy("\"*\"", "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let savefile = scratch.0.join("headers.pcap");
    let mut command = pktcap(
        &socket,
        &lab,
        &["-Q", "in", "-c", "5", "--snap", "headers", "-w"],
    );
    command.arg(&savefile).args(["udp", "dst", "port", "9003"]);
    let mut capture = Running::spawn(command);
    assert!(
        capture.wait_for_stderr("listening on", Duration::from_secs(10)),
        "{:?}",
        capture.stderr_lines
    );
    assert!(
        capture
            .stderr_lines
            .iter()
            .any(|line| line.ends_with("snapshot length 262144 bytes, headers only")),
        "{:?}",
        capture.stderr_lines
    );
    let sender = lab.sender();
    let sent: Vec<Vec<u8>> = (0..5u64)
        .map(|sequence| numbered_udp_frame(9003, sequence, 300))
        .collect();
    for frame in &sent {
        sender.send(frame);
    }
    let status = capture
        .wait(Duration::from_secs(10))
        .expect("pktcap ends at -c");
    assert!(status.success(), "{:?}", capture.stderr_lines);
    let output = Command::new("tcpdump")
        .arg("-r")
        .arg(&savefile)
        .args(["-nn", "-v", "-xx"])
        .output()
        .expect("running tcpdump");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    // The UDP header is there (ports, length); the payload is not.
    assert_eq!(
        text.matches("10.0.0.1.40000 > 10.0.0.2.9003: UDP, length 300")
            .count(),
        5,
        "{text}"
    );
    let frames = tcpdump_frames(&savefile);
    let cut: Vec<Vec<u8>> = sent.iter().map(|frame| frame[..42].to_vec()).collect();
    assert_eq!(frames, cut);
}

#[test]
fn sighup_reload_revokes_and_sigterm_leaves_nothing_attached() {
    let lab = Lab::new();
    let scratch = Scratch::new("sig");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, root_policy(&format!("\"{}\"", lab.capture_if), "")).unwrap();
    let mut pktd = start_pktd(&socket, &policy);

    let mut revoked = Running::spawn({
        let mut command = pktcap(&socket, &lab, &["-n", "udp"]);
        command.stdout(Stdio::null());
        command
    });
    assert!(revoked.wait_for_stderr("listening on", Duration::from_secs(10)));
    assert_eq!(
        attached_programs(&lab).len(),
        2,
        "attached at ingress and egress"
    );

    // A broken policy file keeps the old policy.
    std::fs::write(&policy, "[[principal]\nname = ").unwrap();
    pktd.signal("HUP");
    assert!(pktd.wait_for_stderr("policy reload failed", Duration::from_secs(5)));
    assert!(
        revoked.child.try_wait().unwrap().is_none(),
        "session ended by a failed reload"
    );

    // The new policy no longer allows this interface.
    std::fs::write(&policy, root_policy("\"lo\"", "")).unwrap();
    pktd.signal("HUP");
    let status = revoked
        .wait(Duration::from_secs(5))
        .expect("the session ended");
    assert!(status.success());
    assert!(
        revoked
            .stderr_lines
            .iter()
            .any(|line| line.contains("session ended by pktd") && line.contains("policy")),
        "{:?}",
        revoked.stderr_lines
    );

    // The last session on the interface has left: nothing stays attached.
    assert_eq!(
        attached_programs(&lab),
        Vec::<String>::new(),
        "attached with no session"
    );

    // A session the new policy allows, then SIGTERM.
    std::fs::write(&policy, root_policy("\"*\"", "")).unwrap();
    pktd.signal("HUP");
    assert!(pktd.wait_for_stderr("policy reloaded", Duration::from_secs(5)));
    let mut last = Running::spawn({
        let mut command = pktcap(&socket, &lab, &["udp"]);
        command.stdout(Stdio::null());
        command
    });
    assert!(last.wait_for_stderr("listening on", Duration::from_secs(10)));
    pktd.signal("TERM");
    let status = pktd
        .wait(Duration::from_secs(10))
        .expect("pktd exits on SIGTERM");
    assert!(status.success(), "{:?}", pktd.stderr_lines);
    let status = last
        .wait(Duration::from_secs(5))
        .expect("pktcap ends with the daemon");
    assert!(status.success());
    assert!(
        last.stderr_lines
            .iter()
            .any(|line| line.contains("session ended by pktd")),
        "{:?}",
        last.stderr_lines
    );
    assert_eq!(
        attached_programs(&lab),
        Vec::<String>::new(),
        "something stayed attached"
    );
    assert!(!socket.exists(), "pktd left its socket behind");
}

#[test]
fn a_killed_pktcap_frees_its_session_within_a_second() {
    let lab = Lab::new();
    let scratch = Scratch::new("kill");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, root_policy("\"*\"", "max_sessions = 2")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let quiet = || {
        let mut command = pktcap(&socket, &lab, &["udp"]);
        command.stdout(Stdio::null());
        command
    };
    // A bystander keeps the interface attached: what is timed below is
    // the session's release, not a new load of the kernel program.
    let mut bystander = Running::spawn(quiet());
    assert!(bystander.wait_for_stderr("listening on", Duration::from_secs(10)));
    let mut first = Running::spawn(quiet());
    assert!(first.wait_for_stderr("listening on", Duration::from_secs(10)));
    let mut refused = Running::spawn(quiet());
    let status = refused
        .wait(Duration::from_secs(10))
        .expect("refused at once");
    assert!(!status.success(), "a second session was allowed");
    assert!(
        refused
            .stderr_lines
            .iter()
            .any(|line| line.contains("sessions")),
        "{:?}",
        refused.stderr_lines
    );

    first.signal("KILL");
    first.wait(Duration::from_secs(5)).expect("killed");
    let killed_at = std::time::Instant::now();
    loop {
        let mut next = Running::spawn(quiet());
        if next.wait_for_stderr("listening on", Duration::from_secs(2)) {
            break;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(1),
            "the killed client's session was not freed within a second: {:?}",
            next.stderr_lines
        );
    }
}

#[test]
fn pktd_refuses_to_start_with_an_invalid_policy_naming_the_line() {
    let scratch = Scratch::new("badpolicy");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(
        &policy,
        "[[principal]]\nname = \"x\"\nusers = [0]\nmax_snaplen = 0\n",
    )
    .unwrap();
    let output = Command::new(bin_path("pktd"))
        .arg("--socket")
        .arg(&socket)
        .arg("--policy")
        .arg(&policy)
        .output()
        .expect("running pktd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(!socket.exists(), "pktd served with an invalid policy");
}

#[test]
fn pktcap_flushes_every_packet_on_sigint_and_prints_tcpdump_counts() {
    let lab = Lab::new();
    let scratch = Scratch::new("int");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, root_policy("\"*\"", "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    // The filter as raw classic BPF, the way tcpdump -ddd prints it.
    let bpf = scratch.0.join("udp.bpf");
    let ddd = Command::new(bin_path("pktcap"))
        .args(["-ddd", "udp"])
        .output()
        .expect("pktcap -ddd");
    assert!(ddd.status.success());
    std::fs::write(&bpf, &ddd.stdout).unwrap();
    let mut command = pktcap(&socket, &lab, &["-Q", "in", "-n", "--bpf"]);
    command.arg(&bpf).stdout(Stdio::piped());
    let mut capture = Running::spawn(command);
    assert!(capture.wait_for_stderr("listening on", Duration::from_secs(10)));
    let sender = lab.sender();
    for sequence in 0..30 {
        sender.send(&numbered_udp_frame(9000, sequence, 18));
    }
    std::thread::sleep(Duration::from_millis(300));
    capture.signal("INT");
    let status = capture
        .wait(Duration::from_secs(10))
        .expect("pktcap ends on SIGINT");
    assert!(status.success(), "{:?}", capture.stderr_lines);
    let mut stdout = String::new();
    std::io::Read::read_to_string(capture.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 30, "{stdout}");
    for line in &lines {
        assert!(
            line.ends_with("IP 10.0.0.1.40000 > 10.0.0.2.9000: UDP, length 18"),
            "{line}"
        );
    }
    for expected in [
        "30 packets captured",
        "30 packets received by filter",
        "0 packets dropped by kernel",
    ] {
        assert!(
            capture.stderr_lines.iter().any(|line| line == expected),
            "no {expected:?} in {:?}",
            capture.stderr_lines
        );
    }
}

#[test]
fn pktcap_prints_compiled_filters_exactly_like_tcpdump() {
    let scratch = Scratch::new("d");
    // An empty Ethernet savefile gives tcpdump the link type without an
    // interface.
    let empty = scratch.0.join("empty.pcap");
    let mut header = Vec::new();
    for word in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 262_144, 1] {
        header.extend_from_slice(&word.to_le_bytes());
    }
    // Version is two u16 (2, 4): rewrite bytes 4..8 accordingly.
    header[4..8].copy_from_slice(&[2, 0, 4, 0]);
    std::fs::write(&empty, &header).unwrap();
    for expression in ["tcp port 80", "vlan 100 and udp", "ip6 and not icmp6"] {
        for flags in [&["-d"][..], &["-dd"], &["-ddd"], &["-d", "-O"]] {
            let ours = Command::new(bin_path("pktcap"))
                .args(flags)
                .arg(expression)
                .output()
                .expect("pktcap");
            let theirs = Command::new("tcpdump")
                .arg("-r")
                .arg(&empty)
                .args(flags)
                .arg(expression)
                .output()
                .expect("tcpdump");
            assert!(ours.status.success() && theirs.status.success());
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "{flags:?} {expression}"
            );
        }
    }
}

#[test]
fn the_documented_example_policy_is_valid() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/policy.example.toml");
    let output = Command::new(bin_path("pktd"))
        .arg("--check")
        .arg("--policy")
        .arg(&example)
        .output()
        .expect("running pktd --check");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn pktcap_stats_only_prints_interval_counts_and_totals() {
    let lab = Lab::new();
    let scratch = Scratch::new("stats");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, root_policy("\"*\"", "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let mut command = pktcap(&socket, &lab, &["-Q", "in", "--stats-only", "0.2", "udp"]);
    command.stdout(Stdio::piped());
    let mut capture = Running::spawn(command);
    assert!(capture.wait_for_stderr("counting on", Duration::from_secs(10)));
    let sender = lab.sender();
    for sequence in 0..40 {
        sender.send(&numbered_udp_frame(9000, sequence, 58));
    }
    std::thread::sleep(Duration::from_millis(700));
    capture.signal("INT");
    assert!(
        capture
            .wait(Duration::from_secs(10))
            .expect("ends")
            .success()
    );
    let mut stdout = String::new();
    std::io::Read::read_to_string(capture.child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    let counted: u64 = stdout
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            words.next().expect("a time");
            words
                .next()
                .expect("a count")
                .parse::<u64>()
                .expect("a number")
        })
        .sum();
    assert_eq!(counted, 40, "{stdout}");
    assert!(
        capture
            .stderr_lines
            .iter()
            .any(|line| line.starts_with("40 packets (4000 bytes) matched in")),
        "{:?}",
        capture.stderr_lines
    );
}

#[test]
fn pktd_stats_reports_rates_as_table_and_csv_and_users_see_only_their_own() {
    const UID: &str = "4242";
    let lab = Lab::new();
    let scratch = Scratch::new("perf");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(
        &policy,
        format!(
            "{}\n[[principal]]\nname = \"user\"\nusers = [{UID}]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n",
            root_policy("\"*\"", "")
        ),
    )
    .unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let quiet = |command: &mut Command| {
        command.stdout(Stdio::null());
    };
    let mut root_capture = Running::spawn({
        let mut command = pktcap(&socket, &lab, &["-Q", "in", "tcp"]);
        quiet(&mut command);
        command
    });
    assert!(root_capture.wait_for_stderr("listening on", Duration::from_secs(10)));
    let mut user_capture = Running::spawn({
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", UID, "--regid", UID, "--clear-groups"])
            .arg(bin_path("pktcap"))
            .arg("--socket")
            .arg(&socket)
            .args([
                "--netns",
                &lab.capture_ns,
                "-i",
                &lab.capture_if,
                "-Q",
                "in",
                "udp",
            ]);
        quiet(&mut command);
        command
    });
    assert!(
        user_capture.wait_for_stderr("listening on", Duration::from_secs(10)),
        "{:?}",
        user_capture.stderr_lines
    );

    let stop = std::sync::atomic::AtomicBool::new(false);
    let csv = scratch.0.join("stats.csv");
    let (root_out, user_out) = std::thread::scope(|scope| {
        let sender = lab.sender();
        let stop = &stop;
        scope.spawn(move || {
            // Bounded: at most 2000 frames, about 4 s.
            for sequence in 0..2000u64 {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                sender.send(&pktd_tests::corpus::tcp_frame(0x02, 0));
                sender.send(&numbered_udp_frame(9000, sequence, 58));
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let root_out = Command::new(bin_path("pktd"))
            .arg("--socket")
            .arg(&socket)
            .args(["stats", "--interval", "0.5", "--count", "2", "--csv"])
            .arg(&csv)
            .output()
            .expect("pktd stats");
        let user_out = Command::new("setpriv")
            .args(["--reuid", UID, "--regid", UID, "--clear-groups"])
            .arg(bin_path("pktd"))
            .arg("--socket")
            .arg(&socket)
            .args(["stats", "--interval", "0.3", "--count", "1"])
            .output()
            .expect("pktd stats as a user");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (root_out, user_out)
    });
    assert!(
        root_out.status.success(),
        "{}",
        String::from_utf8_lossy(&root_out.stderr)
    );
    let table = String::from_utf8_lossy(&root_out.stdout);
    assert!(
        table.contains(&format!("{}/{}", lab.capture_ns, lab.capture_if)),
        "{table}"
    );

    let text = std::fs::read_to_string(&csv).expect("the CSV file");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("a header").split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let rows: Vec<Vec<&str>> = lines.map(|line| line.split(',').collect()).collect();
    assert!(rows.iter().all(|row| row.len() == header.len()), "{text}");
    let interface_rows: Vec<_> = rows
        .iter()
        .filter(|row| row[column("kind")] == "interface")
        .collect();
    assert_eq!(interface_rows.len(), 2, "{text}");
    for row in &interface_rows {
        let syn: f64 = row[column("syn_per_s")].parse().unwrap();
        let pps: f64 = row[column("pkts_per_s")].parse().unwrap();
        assert!(syn > 10.0 && pps >= 2.0 * syn * 0.9, "{text}");
        assert_eq!(row[column("sessions")], "2");
    }
    let session_rows = rows
        .iter()
        .filter(|row| row[column("kind")] == "session")
        .count();
    assert_eq!(session_rows, 4, "two sessions in two reports: {text}");

    assert!(
        user_out.status.success(),
        "{}",
        String::from_utf8_lossy(&user_out.stderr)
    );
    let user_table = String::from_utf8_lossy(&user_out.stdout);
    assert!(
        !user_table.contains("SYN/s"),
        "a user saw interface rows: {user_table}"
    );
    // Each table is stamped with the time the counters were read.
    let mut lines = user_table.lines();
    let stamp = lines.next().unwrap_or_default();
    assert!(
        stamp.starts_with("at 20") && stamp.len() >= "at 2026-12-01 17:16:42".len(),
        "{user_table}"
    );
    let session_lines: Vec<&str> = lines.skip(1).filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(session_lines.len(), 1, "{user_table}");
    assert!(
        session_lines[0].split_whitespace().nth(1) == Some(UID),
        "{user_table}"
    );
}

/// Policy for root with a recording directory (and `extra` keys).
fn recording_policy(directory: &Path, extra: &str) -> String {
    root_policy(
        "\"*\"",
        &format!("record_directory = \"{}\"\n{extra}", directory.display()),
    )
}

fn run_pktcap(socket: &Path, args: &[&str]) -> std::process::Output {
    Command::new(bin_path("pktcap"))
        .arg("--socket")
        .arg(socket)
        .args(args)
        .output()
        .expect("running pktcap")
}

/// The frames of a savefile as tcpdump reads them (`-xx` hex dump); tcpdump
/// must read the file without complaint.
fn tcpdump_frames(file: &Path) -> Vec<Vec<u8>> {
    let output = Command::new("tcpdump")
        .arg("-r")
        .arg(file)
        .args(["-nn", "-xx"])
        .output()
        .expect("running tcpdump");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{}: {stderr}", file.display());
    assert!(
        !stderr.contains("truncated"),
        "{}: {stderr}",
        file.display()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        if let Some(hex) = line.trim_start().strip_prefix("0x") {
            let bytes = hex.split_once(':').map_or("", |(_, rest)| rest);
            let frame = frames.last_mut().expect("a header line first");
            for group in bytes.split_whitespace() {
                for i in (0..group.len()).step_by(2) {
                    frame.push(u8::from_str_radix(&group[i..i + 2], 16).unwrap());
                }
            }
        } else {
            frames.push(Vec::new());
        }
    }
    frames
}

/// The UDP sequence numbers in a savefile, read by tcpdump.
fn sequences_in(file: &Path) -> Vec<u64> {
    let frames = tcpdump_frames(file);
    frames
        .iter()
        .map(|frame| pktd_tests::corpus::sequence_and_port(frame).0)
        .collect()
}

#[test]
fn recordings_rotate_by_size_keep_w_files_and_outlive_their_client() {
    let lab = Lab::new();
    let scratch = Scratch::new("rec");
    let directory = scratch.0.join("records");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, recording_policy(&directory, "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let netns = [
        "--netns",
        lab.capture_ns.as_str(),
        "-i",
        lab.capture_if.as_str(),
    ];

    let output = run_pktcap(
        &socket,
        &[
            &netns[..],
            &[
                "-Q",
                "in",
                "--record",
                "cap-%d.pcap",
                "-C",
                "0.01",
                "-W",
                "3",
                "udp",
            ],
        ]
        .concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let id: u64 = stdout
        .strip_prefix("recording ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(stdout.trim_end().ends_with("/cap-0.pcap"), "{stdout}");
    // pktcap has exited: the daemon records on its own.
    let sender = lab.sender();
    for sequence in 0..200 {
        sender.send(&numbered_udp_frame(9000, sequence, 158));
    }
    std::thread::sleep(Duration::from_millis(500));
    let listed = run_pktcap(&socket, &["--list"]);
    let listing = String::from_utf8_lossy(&listed.stdout);
    assert!(listing.contains("recording"), "{listing}");

    let stopped = run_pktcap(&socket, &["--stop", &id.to_string()]);
    assert!(
        stopped.status.success(),
        "{}",
        String::from_utf8_lossy(&stopped.stderr)
    );
    assert!(String::from_utf8_lossy(&stopped.stdout).contains("stopped"));

    let mut files: Vec<PathBuf> = std::fs::read_dir(directory.join("0"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort_by_key(|path| {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        name.trim_start_matches("cap-")
            .trim_end_matches(".pcap")
            .parse::<u64>()
            .unwrap()
    });
    assert_eq!(files.len(), 3, "-W 3 keeps three files: {files:?}");
    let mut sequences = Vec::new();
    for file in &files {
        assert!(
            std::fs::metadata(file).unwrap().len() <= 10_000,
            "{}",
            file.display()
        );
        sequences.extend(sequences_in(file));
    }
    // The newest frames, none missing between the first kept and the last.
    sequences.sort_unstable();
    let first = sequences[0];
    assert_eq!(sequences, (first..200).collect::<Vec<_>>());
}

#[test]
fn recordings_rotate_on_time_without_traffic_and_refuse_hostile_names() {
    let lab = Lab::new();
    let scratch = Scratch::new("rect");
    let directory = scratch.0.join("records");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, recording_policy(&directory, "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let netns = [
        "--netns",
        lab.capture_ns.as_str(),
        "-i",
        lab.capture_if.as_str(),
    ];
    for hostile in [
        "../a%d",
        "/etc/x%d",
        "%n",
        "%d%d",
        "%s",
        ".hidden%d",
        &"a".repeat(300),
    ] {
        let output = run_pktcap(
            &socket,
            &[&netns[..], &["--record", hostile, "udp"]].concat(),
        );
        assert!(!output.status.success(), "{hostile:?} accepted");
        assert!(
            String::from_utf8_lossy(&output.stderr).contains("pattern"),
            "{hostile:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(!scratch.0.join("a0").exists());
    // A symlink planted at the first name is not followed.
    // Root's recordings go to its own directory, RECORD_DIRECTORY/0.
    let own = directory.join("0");
    std::fs::create_dir_all(&own).unwrap();
    let target = scratch.0.join("victim");
    std::fs::write(&target, "keep").unwrap();
    std::os::unix::fs::symlink(&target, own.join("planted-0.pcap")).unwrap();
    let output = run_pktcap(
        &socket,
        &[&netns[..], &["--record", "planted-%d.pcap", "udp"]].concat(),
    );
    assert!(!output.status.success());
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");

    let output = run_pktcap(
        &socket,
        &[&netns[..], &["--record", "t-%d.pcap", "-G", "1", "udp"]].concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    std::thread::sleep(Duration::from_millis(2600));
    for index in 0..3 {
        let file = own.join(format!("t-{index}.pcap"));
        assert!(file.exists(), "no {} after 2.6 s of -G 1", file.display());
        assert!(sequences_in(&file).is_empty());
    }
}

#[test]
fn a_full_disk_ends_the_recording_at_a_whole_record_and_spares_other_sessions() {
    let lab = Lab::new();
    let scratch = Scratch::new("full");
    let directory = scratch.0.join("records");
    std::fs::create_dir_all(&directory).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&directory)
        .status()
        .expect("mount");
    assert!(mounted.success(), "mounting a small tmpfs");
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(directory.clone());
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, recording_policy(&directory, "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let netns = [
        "--netns",
        lab.capture_ns.as_str(),
        "-i",
        lab.capture_if.as_str(),
    ];
    let output = run_pktcap(
        &socket,
        &[&netns[..], &["-Q", "in", "--record", "f-%d.pcap", "udp"]].concat(),
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut live = Running::spawn({
        let mut command = pktcap(&socket, &lab, &["-Q", "in", "-c", "300", "-w", "-", "udp"]);
        command.stdout(Stdio::null());
        command
    });
    assert!(live.wait_for_stderr("listening on", Duration::from_secs(10)));
    let sender = lab.sender();
    for sequence in 0..300 {
        sender.send(&numbered_udp_frame(9000, sequence, 958));
    }
    let status = live
        .wait(Duration::from_secs(10))
        .expect("the live session ends at -c");
    assert!(status.success());
    assert!(
        live.stderr_lines
            .contains(&"300 packets captured".to_owned()),
        "{:?}",
        live.stderr_lines
    );
    std::thread::sleep(Duration::from_millis(300));
    let listing = String::from_utf8_lossy(&run_pktcap(&socket, &["--list"]).stdout).into_owned();
    assert!(listing.to_lowercase().contains("no space"), "{listing}");
    let file = directory.join("0").join("f-0.pcap");
    let sequences = sequences_in(&file);
    assert!(
        !sequences.is_empty() && sequences.len() < 300,
        "{}",
        sequences.len()
    );
    assert_eq!(sequences, (0..sequences.len() as u64).collect::<Vec<_>>());
}

#[test]
fn pktcap_injects_a_savefile_and_the_daemon_refuses_what_the_policy_forbids() {
    let lab = Lab::new();
    let scratch = Scratch::new("inj");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(
        &policy,
        root_policy(
            "\"*\"",
            "inject_filter = \"udp dst port 9001\"\ninject_spoof = true\ninject_rate_pps = 1000",
        ),
    )
    .unwrap();
    let _pktd = start_pktd(&socket, &policy);
    // Watch the peer.
    let mut watch = Running::spawn({
        let mut command = pktcap(&socket, &lab, &["-Q", "in", "-w", "-", "udp"]);
        command.stdout(Stdio::piped());
        command
    });
    assert!(watch.wait_for_stderr("listening on", Duration::from_secs(10)));

    let allowed: Vec<Vec<u8>> = (0..5).map(|i| numbered_udp_frame(9001, i, 30)).collect();
    let outside_filter = numbered_udp_frame(9002, 100, 30);
    let mut bad_checksum = numbered_udp_frame(9001, 101, 30);
    bad_checksum[24] ^= 0xff;
    let savefile = scratch.0.join("inject.pcap");
    {
        let file = std::fs::File::create(&savefile).unwrap();
        let mut writer =
            libwire::savefile::Writer::new(file, libwire::savefile::Format::Pcap, 1, 65535)
                .unwrap();
        for frame in allowed.iter().chain([&outside_filter, &bad_checksum]) {
            writer.write_packet(0, frame.len() as u32, frame).unwrap();
        }
        writer.flush().unwrap();
    }
    let output = Command::new(bin_path("pktcap"))
        .arg("--socket")
        .arg(&socket)
        .args(["--netns", &lab.sender_ns, "-i", &lab.sender_if, "--inject"])
        .arg(&savefile)
        .output()
        .expect("pktcap --inject");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "some frames must be refused: {stderr}"
    );
    assert!(stderr.contains("5 frames sent, 2 refused"), "{stderr}");
    assert!(
        stderr.contains("frame 6: refused") && stderr.contains("frame 7: refused"),
        "{stderr}"
    );

    std::thread::sleep(Duration::from_millis(300));
    watch.signal("INT");
    assert!(watch.wait(Duration::from_secs(10)).expect("ends").success());
    let mut captured = Vec::new();
    std::io::Read::read_to_end(watch.child.stdout.as_mut().unwrap(), &mut captured).unwrap();
    let mut reader = libwire::savefile::Reader::new(captured.as_slice()).unwrap();
    let mut seen = Vec::new();
    while let Some(packet) = reader.next_packet().unwrap() {
        seen.push(packet.data);
    }
    seen.sort();
    let mut want = allowed.clone();
    want.sort();
    assert!(
        seen == want,
        "the peer saw {} frames, not exactly the 5 allowed",
        seen.len()
    );
}

#[test]
fn a_users_recording_files_belong_to_that_user() {
    use std::os::unix::fs::MetadataExt;
    let lab = Lab::new();
    let scratch = Scratch::new("own");
    let directory = scratch.0.join("user-records");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(
        &policy,
        format!(
            "[[principal]]\nname = \"user\"\nusers = [4242]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\nrecord_directory = \"{}\"\n",
            directory.display()
        ),
    )
    .unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let output = Command::new("setpriv")
        .args(["--reuid", "4242", "--regid", "4242", "--clear-groups"])
        .arg(bin_path("pktcap"))
        .arg("--socket")
        .arg(&socket)
        .args([
            "--netns",
            &lab.capture_ns,
            "-i",
            &lab.capture_if,
            "--record",
            "u-%d.pcap",
            "udp",
        ])
        .output()
        .expect("pktcap as a user");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // In the user's own directory, which only the user may enter.
    let own = directory.join("4242");
    let meta = std::fs::metadata(&own).expect("the user's directory");
    assert_eq!((meta.uid(), meta.mode() & 0o777), (4242, 0o700));
    let meta = std::fs::metadata(own.join("u-0.pcap")).expect("the first file");
    assert_eq!((meta.uid(), meta.gid()), (4242, 4242));
    // Root sees every recording.
    let listing = run_pktcap(&socket, &["--list"]);
    assert!(String::from_utf8_lossy(&listing.stdout).contains("u-0.pcap"));
}

/// `pktcap -D` lists what the caller's policy lets it capture on, in every
/// namespace the policy names, and nothing else.
#[test]
fn pktcap_lists_the_interfaces_the_policy_allows_and_no_others() {
    use std::os::unix::process::CommandExt as _;
    let lab = Lab::new();
    let policy = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n\n\
         [[principal]]\nname = \"narrow\"\nusers = [4547]\nnetns = [\"{ns}\"]\ninterfaces = [\"{iface}\"]\n",
        ns = lab.capture_ns,
        iface = lab.capture_if,
    );
    let daemon = pktd_tests::pktd::RealDaemon::start("list", &policy, &[]);
    let list_as = |uid: u32| {
        let output = Command::new(bin_path("pktcap"))
            .arg("--socket")
            .arg(&daemon.socket)
            .arg("-D")
            .uid(uid)
            .gid(uid)
            .output()
            .expect("running pktcap -D");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };

    let (ok, root, stderr) = list_as(0);
    assert!(ok, "{stderr}");
    let lines: Vec<&str> = root.lines().collect();
    let line_of = |interface: &str, netns: &str| {
        lines
            .iter()
            .find(|line| line.contains(&format!(".{interface} (netns {netns}) [")))
            .copied()
    };
    // Numbered from 1, as tcpdump numbers them.
    for (number, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("{}.", number + 1)), "{root}");
    }
    assert!(
        lines
            .iter()
            .any(|line| line.contains(".lo [Up, Running, Loopback]")),
        "{root}"
    );
    assert!(
        line_of(&lab.capture_if, &lab.capture_ns)
            .is_some_and(|line| line.ends_with("[Up, Running]")),
        "{root}"
    );
    assert!(line_of(&lab.sender_if, &lab.sender_ns).is_some(), "{root}");
    assert!(
        line_of("lo", &lab.capture_ns).is_some_and(|line| line.contains("Loopback")),
        "{root}"
    );

    let (ok, narrow, stderr) = list_as(4547);
    assert!(ok, "{stderr}");
    assert_eq!(
        narrow,
        format!(
            "1.{} (netns {}) [Up, Running]\n",
            lab.capture_if, lab.capture_ns
        )
    );

    let (ok, nobody, stderr) = list_as(4548);
    assert!(!ok && nobody.is_empty(), "{nobody}");
    assert!(
        stderr.contains("allows uid 4548 gid 4548 nothing"),
        "{stderr}"
    );
}

/// The fields tshark reads from `file`, one line per packet, `|` between.
fn tshark_fields(file: &Path, fields: &[&str]) -> Vec<String> {
    let mut command = Command::new("tshark");
    command
        .arg("-r")
        .arg(file)
        .args(["-T", "fields", "-E", "separator=|"]);
    for field in fields {
        command.args(["-e", field]);
    }
    let output = command.output().expect("running tshark");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn capinfos(file: &Path) -> String {
    let output = Command::new("capinfos")
        .arg(file)
        .output()
        .expect("running capinfos");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A pcapng file, written by pktcap or recorded by the daemon, says
/// where and how it was captured (system, application, interface,
/// namespace, filter), which way each packet went, and ends with the
/// capture's counters: as tshark and capinfos read them.
#[test]
fn pcapng_files_say_where_and_how_their_packets_were_captured() {
    let lab = Lab::new();
    let scratch = Scratch::new("ng");
    let directory = scratch.0.join("records");
    let (socket, policy) = (scratch.0.join("pktd.sock"), scratch.0.join("policy.toml"));
    std::fs::write(&policy, recording_policy(&directory, "")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    // UDP to the capture side's own address on a closed port: it answers
    // with ICMP (and ARP first), outbound.
    let link = Command::new("ip")
        .args(["-n", &lab.capture_ns, "-o", "link", "show", &lab.capture_if])
        .output()
        .expect("running ip");
    let link = String::from_utf8_lossy(&link.stdout);
    let mac_text = link
        .split_whitespace()
        .skip_while(|word| *word != "link/ether")
        .nth(1)
        .expect("a MAC address");
    let mut mac = [0u8; 6];
    for (byte, hex) in mac.iter_mut().zip(mac_text.split(':')) {
        *byte = u8::from_str_radix(hex, 16).unwrap();
    }
    let to_capture = |sequence: u16| {
        pktd_tests::corpus::ipv4_udp_frame(
            [2, 0, 0, 0, 0, 1],
            mac,
            [10, 77, lab.subnet, 1],
            [10, 77, lab.subnet, 2],
            40000 + sequence,
            9999,
            &[0x5a; 18],
        )
    };
    let file = scratch.0.join("live.pcapng");
    let mut live = Running::spawn({
        let mut command = pktcap(&socket, &lab, &["--pcapng", "-w"]);
        command.arg(&file).arg("udp or icmp or arp");
        command
    });
    assert!(live.wait_for_stderr("listening on", Duration::from_secs(10)));
    let recorded = run_pktcap(
        &socket,
        &[
            "--netns",
            &lab.capture_ns,
            "-i",
            &lab.capture_if,
            "-Q",
            "in",
            "--pcapng",
            "--record",
            "r-%d.pcapng",
            "udp",
        ],
    );
    assert!(recorded.status.success(), "{recorded:?}");
    let stdout = String::from_utf8_lossy(&recorded.stdout);
    let id = stdout
        .strip_prefix("recording ")
        .and_then(|rest| rest.split(':').next())
        .expect("a recording id")
        .to_owned();
    let sender = lab.sender();
    for sequence in 0..3 {
        sender.send(&to_capture(sequence));
    }
    std::thread::sleep(Duration::from_millis(500));
    live.signal("INT");
    assert!(
        live.wait(Duration::from_secs(10))
            .is_some_and(|s| s.success())
    );
    assert!(run_pktcap(&socket, &["--stop", &id]).status.success());

    let where_ = format!("{}|netns {}", lab.capture_if, lab.capture_ns);
    let live_lines = tshark_fields(
        &file,
        &[
            "frame.interface_name",
            "frame.interface_description",
            "frame.packet_flags_direction",
            "udp.dstport",
        ],
    );
    let inbound: Vec<_> = live_lines
        .iter()
        .filter(|line| line.ends_with("|0x00000001|9999"))
        .collect();
    assert_eq!(inbound.len(), 3, "{live_lines:?}");
    assert!(
        live_lines
            .iter()
            .any(|line| line.starts_with(&format!("{where_}|0x00000002"))),
        "no outbound packet: {live_lines:?}"
    );
    assert!(
        live_lines.iter().all(|line| line.starts_with(&where_)),
        "{live_lines:?}"
    );
    let info = capinfos(&file);
    for expected in [
        "Capture application: pktcap",
        "Filter string = udp or icmp or arp",
        "Number of stat entries = 1",
    ] {
        assert!(info.contains(expected), "{expected:?} not in {info}");
    }

    let record = directory.join("0").join("r-0.pcapng");
    assert_eq!(
        tshark_fields(
            &record,
            &[
                "frame.interface_name",
                "frame.interface_description",
                "frame.packet_flags_direction",
                "udp.dstport",
            ],
        ),
        vec![format!("{where_}|0x00000001|9999"); 3]
    );
    let info = capinfos(&record);
    for expected in [
        "Capture application: pktd",
        "Filter string = udp",
        "Number of stat entries = 1",
    ] {
        assert!(info.contains(expected), "{expected:?} not in {info}");
    }
}
