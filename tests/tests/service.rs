//! pktd under a service manager, without systemd as PID 1: the units as
//! `systemd-analyze` reads them, socket activation through
//! `systemd-socket-activate` (the LISTEN_FDS protocol), and the sd_notify
//! states the daemon sends to a test `NOTIFY_SOCKET`.

use std::{
    collections::BTreeSet,
    os::unix::net::UnixDatagram,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use pktd_daemon::privileges::KEPT;
use pktd_tests::{
    corpus::numbered_udp_frame,
    netlab::Lab,
    pktd::Scratch,
    process::{Running, bin_path},
};

fn units_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/systemd")
}

/// The value of `key=` in a unit (the last one, as systemd reads it).
fn directive(unit: &str, key: &str) -> Option<String> {
    unit.lines()
        .rev()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
        .map(str::to_owned)
}

/// Man pages where `man` finds them, for the units' `Documentation=`.
fn man_path(dir: &Path) -> PathBuf {
    let root = dir.join("man");
    for (binary, section) in [("pktd", "8"), ("pktcap", "1")] {
        let out = root.join(format!("man{section}"));
        std::fs::create_dir_all(&out).unwrap();
        let page = Command::new(bin_path(binary))
            .args(["--generate", "man"])
            .output()
            .expect("generating a man page");
        assert!(page.status.success());
        std::fs::write(out.join(format!("{binary}.{section}")), page.stdout).unwrap();
    }
    std::fs::create_dir_all(root.join("man5")).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/man/pktd-policy.5"),
        root.join("man5/pktd-policy.5"),
    )
    .unwrap();
    root
}

#[test]
fn the_units_verify_and_bound_the_service_to_the_threat_models_capabilities() {
    let scratch = Scratch::new("units");
    let socket = std::fs::read_to_string(units_dir().join("pktd.socket")).unwrap();
    let service = std::fs::read_to_string(units_dir().join("pktd.service")).unwrap();
    // systemd-analyze wants the commands to exist: the built pktd stands
    // in for the package's /usr/sbin/pktd.
    let here = service.replace("/usr/sbin/pktd", bin_path("pktd").to_str().unwrap());
    assert_ne!(here, service, "the service runs /usr/sbin/pktd");
    std::fs::write(scratch.0.join("pktd.service"), &here).unwrap();
    std::fs::write(scratch.0.join("pktd.socket"), &socket).unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .args([
            scratch.0.join("pktd.socket"),
            scratch.0.join("pktd.service"),
        ])
        .env("MANPATH", man_path(&scratch.0))
        .output()
        .expect("running systemd-analyze verify");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim().is_empty(),
        "systemd-analyze verify: {said}"
    );

    // The capabilities are those the daemon keeps (privileges.rs), no more.
    let bounding: BTreeSet<String> = directive(&service, "CapabilityBoundingSet")
        .expect("a CapabilityBoundingSet")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let kept: BTreeSet<String> = KEPT.iter().map(ToString::to_string).collect();
    assert_eq!(bounding, kept);
    for (key, value) in [
        ("Type", "notify"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("ReadWritePaths", "/var/lib/pktd"),
        (
            "RestrictAddressFamilies",
            "AF_UNIX AF_NETLINK AF_PACKET AF_INET AF_INET6",
        ),
        ("ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Requires", "pktd.socket"),
    ] {
        assert_eq!(directive(&service, key).as_deref(), Some(value), "{key}");
    }
    for (key, value) in [
        ("ListenStream", "/run/pktd/pktd.sock"),
        ("SocketGroup", "pktd"),
        ("SocketMode", "0660"),
        ("DirectoryMode", "0755"),
    ] {
        assert_eq!(directive(&socket, key).as_deref(), Some(value), "{key}");
    }
    // systemd's own measure of the sandbox (lower is tighter; a service
    // with no hardening scores 9.6).
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--no-pager"])
        .arg(scratch.0.join("pktd.service"))
        .output()
        .expect("running systemd-analyze security");
    let text = String::from_utf8_lossy(&security.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|line| line.split("exposure level for pktd.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {text}"));
    assert!(exposure <= 5.0, "exposure {exposure}:\n{text}");
}

/// `systemd-socket-activate` binds the socket and starts pktd on the first
/// connection with the socket as descriptor 3: pktd serves on it (a
/// listing, a capture), and leaves the socket file, which is not its own,
/// when it stops.
#[test]
fn socket_activation_serves_on_the_handed_over_socket() {
    let scratch = Scratch::new("activate");
    let socket = scratch.0.join("pktd.sock");
    let policy = scratch.0.join("policy.toml");
    std::fs::write(
        &policy,
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n",
    )
    .unwrap();
    let mut command = Command::new("systemd-socket-activate");
    command
        .arg("--listen")
        .arg(&socket)
        .args(["--setenv=RUST_LOG=info"])
        .arg(bin_path("pktd"))
        .arg("--policy")
        .arg(&policy)
        // Named, but not bound: pktd takes the socket it is handed.
        .arg("--socket")
        .arg(scratch.0.join("unused.sock"))
        .stdout(Stdio::null());
    let mut activator = Running::spawn(command);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !socket.exists() {
        assert!(
            Instant::now() < deadline,
            "no socket from systemd-socket-activate"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // The first connection starts pktd.
    let interfaces = libwire::blocking::list_interfaces(&socket).expect("a listing");
    assert!(
        interfaces.iter().any(|info| info.name == "lo"),
        "{interfaces:?}"
    );
    assert!(
        activator.wait_for_stderr(
            "serving on the socket the service manager handed over",
            Duration::from_secs(5)
        ),
        "{:?}",
        activator.stderr_lines
    );
    assert!(
        !scratch.0.join("unused.sock").exists(),
        "pktd bound --socket"
    );

    // A capture on the handed-over socket.
    let lab = Lab::new();
    let mut capture = libwire::blocking::Capture::open(
        libwire::CaptureBuilder::new(&lab.capture_if)
            .socket(&socket)
            .netns(&lab.capture_ns)
            .direction(libwire::Direction::In)
            .filter("udp dst port 9000"),
    )
    .expect("a capture");
    let sender = lab.sender();
    for sequence in 0..10 {
        sender.send(&numbered_udp_frame(9000, sequence, 20));
    }
    for _ in 0..10 {
        match capture.next_packet_within(Duration::from_secs(5)) {
            Ok(libwire::blocking::Next::Packet(_)) => {}
            other => panic!("a packet: {:?}", other.map(|_| ())),
        }
    }
    drop(capture);

    activator.signal("TERM");
    let status = activator.wait(Duration::from_secs(15)).expect("pktd exits");
    assert!(status.success(), "{status:?}: {:?}", activator.stderr_lines);
    assert!(socket.exists(), "pktd removed a socket it was handed");
}

/// One datagram on the notify socket, as `KEY=VALUE` lines.
fn notification(listener: &UnixDatagram) -> Vec<String> {
    let mut buffer = [0u8; 4096];
    let got = listener
        .recv(&mut buffer)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buffer[..got])
        .lines()
        .map(str::to_owned)
        .collect()
}

fn value<'a>(lines: &'a [String], key: &str) -> Option<&'a str> {
    lines
        .iter()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// READY=1 once serving; RELOADING=1 (with MONOTONIC_USEC) and READY=1
/// again around each reload, a failed one included; STOPPING=1 on SIGTERM.
#[test]
fn the_daemon_tells_the_service_manager_ready_reloading_and_stopping() {
    let scratch = Scratch::new("notify");
    let notify = scratch.0.join("notify.sock");
    let listener = UnixDatagram::bind(&notify).expect("a notify socket");
    listener
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let policy = scratch.0.join("policy.toml");
    let good =
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"-\"]\ninterfaces = [\"lo\"]\n";
    std::fs::write(&policy, good).unwrap();
    let mut command = Command::new(bin_path("pktd"));
    command
        .arg("--socket")
        .arg(scratch.0.join("pktd.sock"))
        .arg("--policy")
        .arg(&policy)
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", &notify)
        .stdout(Stdio::null());
    let mut daemon = Running::spawn(command);

    let ready = notification(&listener);
    assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
    assert_eq!(value(&ready, "STATUS"), Some("serving"), "{ready:?}");
    // It serves by then.
    libwire::blocking::list_interfaces(scratch.0.join("pktd.sock")).expect("serving");

    let mut last = 0u64;
    for (text, outcome) in [
        (
            "[[principal]]\nname = \"broken\"\nbogus = 1\n",
            "reload failed",
        ),
        (good, "policy reloaded"),
    ] {
        std::fs::write(&policy, text).unwrap();
        daemon.signal("HUP");
        let reloading = notification(&listener);
        assert_eq!(value(&reloading, "RELOADING"), Some("1"), "{reloading:?}");
        let at: u64 = value(&reloading, "MONOTONIC_USEC")
            .and_then(|usec| usec.parse().ok())
            .unwrap_or_else(|| panic!("no MONOTONIC_USEC in {reloading:?}"));
        assert!(at > last, "MONOTONIC_USEC {at} after {last}");
        last = at;
        let ready = notification(&listener);
        assert_eq!(value(&ready, "READY"), Some("1"), "{ready:?}");
        assert!(
            value(&ready, "STATUS").is_some_and(|status| status.contains(outcome)),
            "{ready:?}"
        );
    }

    daemon.signal("TERM");
    let stopping = notification(&listener);
    assert_eq!(value(&stopping, "STOPPING"), Some("1"), "{stopping:?}");
    let status = daemon.wait(Duration::from_secs(15)).expect("pktd exits");
    assert!(status.success(), "{status:?}: {:?}", daemon.stderr_lines);
}

/// The daemon, started within the unit's capability bounding set and
/// without new privileges (as systemd starts it: `setpriv` does the
/// same), loads its program, enters a namespace and captures.
#[test]
fn the_daemon_serves_within_the_units_capability_bounding_set() {
    let service = std::fs::read_to_string(units_dir().join("pktd.service")).unwrap();
    let bounding: Vec<String> = directive(&service, "CapabilityBoundingSet")
        .expect("a CapabilityBoundingSet")
        .split_whitespace()
        .map(|cap| format!("+{}", cap.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    let scratch = Scratch::new("bounded");
    let socket = scratch.0.join("pktd.sock");
    let policy = scratch.0.join("policy.toml");
    std::fs::write(
        &policy,
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n",
    )
    .unwrap();
    let mut command = Command::new("setpriv");
    command
        .arg("--no-new-privs")
        .arg(format!("--bounding-set=-all,{}", bounding.join(",")))
        .arg("--")
        .arg(bin_path("pktd"))
        .arg("--policy")
        .arg(&policy)
        .arg("--socket")
        .arg(&socket)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null());
    let mut daemon = Running::spawn(command);
    assert!(
        daemon.wait_for_stderr("pktd serving", Duration::from_secs(15)),
        "{:?}",
        daemon.stderr_lines
    );
    assert!(
        !daemon
            .stderr_lines
            .iter()
            .any(|line| line.contains("not permitted")),
        "{:?}",
        daemon.stderr_lines
    );
    let lab = Lab::new();
    let mut capture = libwire::blocking::Capture::open(
        libwire::CaptureBuilder::new(&lab.capture_if)
            .socket(&socket)
            .netns(&lab.capture_ns)
            .direction(libwire::Direction::In)
            .filter("udp dst port 9000"),
    )
    .expect("a capture");
    let sender = lab.sender();
    for sequence in 0..5 {
        sender.send(&numbered_udp_frame(9000, sequence, 20));
    }
    for _ in 0..5 {
        match capture.next_packet_within(Duration::from_secs(5)) {
            Ok(libwire::blocking::Next::Packet(_)) => {}
            other => panic!("a packet: {:?}", other.map(|_| ())),
        }
    }
    drop(capture);
    daemon.signal("TERM");
    let status = daemon.wait(Duration::from_secs(15)).expect("pktd exits");
    assert!(status.success(), "{status:?}: {:?}", daemon.stderr_lines);
}
