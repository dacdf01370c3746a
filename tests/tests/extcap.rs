//! Wireshark's tshark through pktd, as a user: `pktd-extcap` in tshark's
//! extcap folder lists the interfaces that user's policy allows, and a
//! capture on one of them gets what libpcap's filter selects, through the
//! real daemon, under the user's own identity.
//!
//! tshark honours `WIRESHARK_EXTCAP_DIR` only when not run as root, which
//! suits the test: it runs as an unprivileged user, as a user would.

use std::{
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pktd_pcap::savefile::Reader;
use pktd_tests::{
    corpus::{numbered_udp_frame, sequence_and_port},
    netlab::Lab,
    pktd::{RealDaemon, Scratch},
    process::{Running, bin_path},
};

/// The user tshark runs as.
const USER: u32 = 4552;

/// tshark as USER, with pktd-extcap (copied into `scratch`) as its only
/// extcap and `daemon`'s socket.
fn tshark(scratch: &Path, daemon: &RealDaemon) -> Command {
    let extcap = scratch.join("extcap");
    let home = scratch.join("home");
    if !extcap.exists() {
        std::fs::create_dir_all(&extcap).unwrap();
        std::fs::copy(bin_path("pktd-extcap"), extcap.join("pktd-extcap")).unwrap();
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(USER), Some(USER)).unwrap();
        for dir in [scratch, &extcap] {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    let mut command = Command::new("tshark");
    command
        .uid(USER)
        .gid(USER)
        .current_dir(&home)
        .env("HOME", &home)
        .env("WIRESHARK_EXTCAP_DIR", &extcap)
        .env("PKTD_SOCKET", &daemon.socket);
    command
}

#[test]
fn tshark_lists_and_captures_what_the_users_policy_allows_through_pktd() {
    let lab = Lab::new();
    let policy = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n\n\
         [[principal]]\nname = \"analyst\"\nusers = [{USER}]\nnetns = [\"{ns}\"]\ninterfaces = [\"{iface}\"]\n",
        ns = lab.capture_ns,
        iface = lab.capture_if,
    );
    let daemon = RealDaemon::start("extcap", &policy, &[]);
    let scratch = Scratch::new("extcap-ws");
    let value = format!("pktd:{}@{}", lab.capture_if, lab.capture_ns);

    // tshark -D: the one interface the policy allows, with its namespace.
    let listed = tshark(&scratch.0, &daemon)
        .arg("-D")
        .output()
        .expect("running tshark -D");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let pktd_lines: Vec<&str> = listed
        .lines()
        .filter(|line| line.contains("pktd:"))
        .collect();
    assert_eq!(pktd_lines.len(), 1, "{listed}");
    assert!(
        pktd_lines[0].ends_with(&format!(
            "{value} (pktd: {} (netns {}))",
            lab.capture_if, lab.capture_ns
        )),
        "{listed}"
    );

    // tshark -i ... -f FILTER -c N: the matching frames, all of them from
    // the first on, and nothing else. Frames go out until tshark has its
    // five (the session opens while it starts).
    let file = scratch.0.join("home").join("out.pcap");
    let mut capture = Running::spawn({
        let mut command = tshark(&scratch.0, &daemon);
        command
            .args([
                "-i",
                &value,
                "-f",
                "udp dst port 9000",
                "-c",
                "5",
                "-F",
                "pcap",
                "-w",
            ])
            .arg(&file)
            .stdout(Stdio::null());
        command
    });
    let sender = lab.sender();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sequence = 0;
    let status = loop {
        if let Ok(Some(status)) = capture.child.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tshark did not stop at -c 5: {:?}",
            capture.stderr_lines
        );
        sender.send(&numbered_udp_frame(9000, sequence, 18));
        sender.send(&numbered_udp_frame(9001, sequence + 1, 18));
        sequence += 2;
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{:?}", capture.stderr_lines);
    let mut reader = Reader::new(std::fs::File::open(&file).unwrap_or_else(|err| {
        panic!(
            "{}: {err}; tshark said {:?}",
            file.display(),
            capture.stderr_lines
        )
    }))
    .unwrap();
    let mut got = Vec::new();
    while let Some(packet) = reader.next_packet().unwrap() {
        got.push(sequence_and_port(&packet.data));
    }
    assert_eq!(got.len(), 5, "{got:?}");
    let first = got[0].0;
    let expected: Vec<(u64, u16)> = (0..5).map(|i| (first + 2 * i, 9000)).collect();
    assert_eq!(got, expected);
}

/// A user without a principal sees no pktd interface, and tshark's own
/// listing still works.
#[test]
fn a_user_the_policy_does_not_name_sees_no_pktd_interface() {
    let daemon = RealDaemon::start(
        "extcap-none",
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n",
        &[],
    );
    let scratch = Scratch::new("extcap-none-ws");
    let listed = tshark(&scratch.0, &daemon)
        .arg("-D")
        .output()
        .expect("running tshark -D");
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    assert!(!listed.contains("pktd:"), "{listed}");
    assert!(listed.contains("lo"), "{listed}");
}
