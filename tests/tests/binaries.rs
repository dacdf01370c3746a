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
