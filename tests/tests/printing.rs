//! pktcap prints what tcpdump prints: tcpdump's own captures
//! (`tests/data/tcpdump`), replayed live through the lab's veth and printed
//! by pktcap with tcpdump's print flags, give tcpdump's output for the same
//! frames read from a file, line for line.

use std::{
    io::Read as _,
    process::{Command, Stdio},
    time::Duration,
};

use pktd_pcap::savefile::{Format, LINKTYPE_ETHERNET, Reader, Writer};
use pktd_tests::{
    netlab::Lab,
    pktd::RealDaemon,
    process::{Running, bin_path},
};

/// Print flag sets; always `-t`, since live time stamps cannot be a
/// file's.
const FLAG_SETS: &[&[&str]] = &[
    &["-n", "-t"],
    &["-n", "-t", "-v"],
    &["-nn", "-t", "-e"],
    &["-n", "-t", "-vv", "-x"],
    &["-n", "-t", "-q"],
    &["-n", "-t", "-X", "-S"],
    &["-nn", "-t", "-A", "--number"],
    &["-n", "-t", "-vvv", "-XX", "-e"],
];

const POLICY: &str =
    "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n";

/// The whole frames of tcpdump's captures, in file-name order.
fn tcpdump_frames() -> Vec<Vec<u8>> {
    let directory = concat!(env!("CARGO_MANIFEST_DIR"), "/data/tcpdump");
    let mut paths: Vec<_> = std::fs::read_dir(directory)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "pcap"))
        .collect();
    paths.sort();
    let mut frames = Vec::new();
    for path in paths {
        let mut reader = Reader::new(std::fs::File::open(&path).unwrap()).unwrap();
        while let Some(packet) = reader.next_packet().unwrap() {
            if packet.data.len() as u32 == packet.wire_len {
                frames.push(packet.data);
            }
        }
    }
    frames
}

/// pktcap with `flags` on the lab's received traffic while `frames` are
/// sent: its standard output and error.
fn pktcap_prints(
    lab: &Lab,
    daemon: &RealDaemon,
    frames: &[Vec<u8>],
    flags: &[&str],
    tcpdump: Option<&str>,
) -> (String, Vec<String>) {
    let mut command = Command::new(bin_path("pktcap"));
    command
        .arg("--socket")
        .arg(&daemon.socket)
        .args(["--netns", &lab.capture_ns, "-i", &lab.capture_if])
        .args(["-Q", "in", "-c", &frames.len().to_string()])
        .args(flags)
        .stdout(Stdio::piped());
    if let Some(tcpdump) = tcpdump {
        command.env("PKTCAP_TCPDUMP", tcpdump);
    }
    let mut pktcap = Running::spawn(command);
    // Read as it comes: a full pipe would stop tcpdump, and pktcap with it.
    let mut stdout = pktcap.child.stdout.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).unwrap();
        text
    });
    assert!(
        pktcap.wait_for_stderr("listening on", Duration::from_secs(10)),
        "{:?}",
        pktcap.stderr_lines
    );
    let sender = lab.sender();
    for frame in frames {
        sender.send(frame);
    }
    let status = pktcap
        .wait(Duration::from_secs(20))
        .unwrap_or_else(|| panic!("pktcap {flags:?} did not end at -c"));
    assert!(status.success(), "{:?}", pktcap.stderr_lines);
    (reading.join().unwrap(), pktcap.stderr_lines.clone())
}

#[test]
fn pktcap_prints_tcpdumps_captures_replayed_live_as_tcpdump_does() {
    let frames = tcpdump_frames();
    assert!(frames.len() > 100, "{} frames", frames.len());
    let lab = Lab::new();
    let daemon = RealDaemon::start("print", POLICY, &[]);
    let file = daemon.dir.0.join("frames.pcap");
    let mut writer = Writer::new(
        std::fs::File::create(&file).unwrap(),
        Format::Pcap,
        LINKTYPE_ETHERNET,
        262_144,
    )
    .unwrap();
    for (index, frame) in frames.iter().enumerate() {
        let timestamp = 1_700_000_000_000_000_000 + index as u64 * 1_000_000;
        writer
            .write_packet(timestamp, frame.len() as u32, frame)
            .unwrap();
    }
    writer.flush().unwrap();

    for flags in FLAG_SETS {
        let offline = Command::new("tcpdump")
            .arg("-r")
            .arg(&file)
            .args(*flags)
            .output()
            .expect("running tcpdump");
        assert!(offline.status.success());
        let expected = String::from_utf8_lossy(&offline.stdout);
        let (printed, stderr) = pktcap_prints(&lab, &daemon, &frames, flags, None);
        assert!(
            !stderr.iter().any(|line| line.contains("own printer")),
            "tcpdump was not used: {stderr:?}"
        );
        if printed != expected {
            let (expected, printed): (Vec<_>, Vec<_>) =
                (expected.lines().collect(), printed.lines().collect());
            let first = expected
                .iter()
                .zip(&printed)
                .position(|(a, b)| a != b)
                .unwrap_or(expected.len().min(printed.len()));
            panic!(
                "{flags:?}: line {first} differs ({} lines, {} expected):\n  tcpdump: {:?}\n  pktcap:  {:?}",
                printed.len(),
                expected.len(),
                expected.get(first),
                printed.get(first)
            );
        }
    }
}

/// Without tcpdump, pktcap prints one line per packet with its own
/// printer, and says so once.
#[test]
fn without_tcpdump_pktcap_prints_with_its_own_printer_and_says_so() {
    let lab = Lab::new();
    let daemon = RealDaemon::start("print-own", POLICY, &[]);
    let frames: Vec<Vec<u8>> = (0..5)
        .map(|sequence| pktd_tests::corpus::numbered_udp_frame(9000, sequence, 18))
        .collect();
    let (printed, stderr) = pktcap_prints(&lab, &daemon, &frames, &["-n", "-v"], Some(""));
    let notices: Vec<_> = stderr
        .iter()
        .filter(|line| line.contains("own printer"))
        .collect();
    assert_eq!(notices.len(), 1, "{stderr:?}");
    assert!(notices[0].contains("print flags ignored"), "{notices:?}");
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 5, "{printed}");
    for line in lines {
        assert!(
            line.ends_with("IP 10.0.0.1.40000 > 10.0.0.2.9000: UDP, length 18"),
            "{line}"
        );
    }
}
