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
            "listening on {}, link-type EN10MB (Ethernet), snapshot length 65535 bytes",
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

    // tcpdump prints every frame's bytes in hex; compare with those sent.
    let output = Command::new("tcpdump")
        .args(["-r"])
        .arg(&savefile)
        .args(["-nn", "-xx"])
        .output()
        .expect("running tcpdump");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut frames: Vec<Vec<u8>> = Vec::new();
    for line in text.lines() {
        if let Some(hex) = line.trim_start().strip_prefix("0x") {
            let bytes = hex
                .split_once(':')
                .map(|(_, rest)| rest)
                .unwrap_or("")
                .split_whitespace()
                .flat_map(|group| {
                    (0..group.len())
                        .step_by(2)
                        .map(move |i| u8::from_str_radix(&group[i..i + 2], 16).unwrap())
                })
                .collect::<Vec<u8>>();
            frames
                .last_mut()
                .expect("a frame header line first")
                .extend(bytes);
        } else {
            frames.push(Vec::new());
        }
    }
    assert_eq!(frames.len(), 25, "tcpdump read {} frames", frames.len());
    assert!(
        frames == wanted,
        "the savefile's frames differ from those sent"
    );
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
    std::fs::write(&policy, root_policy("\"*\"", "max_sessions = 1")).unwrap();
    let _pktd = start_pktd(&socket, &policy);
    let quiet = || {
        let mut command = pktcap(&socket, &lab, &["udp"]);
        command.stdout(Stdio::null());
        command
    };
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
    let session_lines: Vec<&str> = user_table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(session_lines.len(), 1, "{user_table}");
    assert!(
        session_lines[0].split_whitespace().nth(1) == Some(UID),
        "{user_table}"
    );
}
