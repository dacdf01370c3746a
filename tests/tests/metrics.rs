//! `pktd --metrics ADDR`: the real daemon's scrape, parsed by Prometheus's
//! own OpenMetrics parser (the `prometheus_client` Python package, which
//! refuses anything malformed), after real traffic, sessions and refusals;
//! and the bearer token every scrape needs.

use std::{
    collections::BTreeMap,
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::fs::PermissionsExt as _,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use libwire::{CaptureBuilder, Direction};
use pktd_tests::{
    corpus::numbered_udp_frame,
    daemon::open_as,
    netlab::Lab,
    pktd::{RealDaemon, Scratch},
    process::{Running, bin_path},
};

/// A free TCP port on the loopback address (bound, then given back).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// One HTTP GET; the status code and the body.
fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(addr) {
            Ok(stream) => break stream,
            Err(err) if Instant::now() < deadline => {
                let _ = err;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(err) => panic!("connecting to {addr}: {err}"),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: pktd\r\n{authorization}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// The samples of a scrape as Prometheus's OpenMetrics parser reads them:
/// `name{label="value",…}` (labels sorted) → value. The parser fails on
/// any syntax or semantic error (types, units, counter suffixes, EOF).
fn parsed(scrape: &str) -> BTreeMap<String, f64> {
    const PARSER: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for sample in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
        print(f"{sample.name}{{{labels}}}\t{sample.value}")
"#;
    // Debian's Python, which has Debian's package (another python3 may
    // come first on PATH).
    let mut python = Command::new("/usr/bin/python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (cargo xtask bootstrap installs python3-prometheus-client)");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(scrape.as_bytes())
        .unwrap();
    let output = python.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "Prometheus's parser refuses the scrape: {}\n{scrape}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (sample, value) = line.split_once('\t').unwrap();
            (sample.to_owned(), value.parse().unwrap())
        })
        .collect()
}

fn sample(samples: &BTreeMap<String, f64>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut labels: Vec<_> = labels.to_vec();
    labels.sort();
    let key = format!(
        "{name}{{{}}}",
        labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{v}\""))
            .collect::<Vec<_>>()
            .join(",")
    );
    *samples.get(&key).unwrap_or_else(|| {
        panic!(
            "no {key} in the scrape: {:?}",
            samples
                .keys()
                .filter(|k| k.starts_with(name))
                .collect::<Vec<_>>()
        )
    })
}

fn token_file(dir: &std::path::Path, token: &str, mode: u32) -> std::path::PathBuf {
    let path = dir.join(format!("token-{mode:o}"));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_parses_and_counts_interfaces_sessions_refusals_and_time() {
    let secrets = Scratch::new("metrics-token");
    let token = "pktd-metrics-test-token-0123456789";
    let token_path = token_file(&secrets.0, token, 0o600);
    let addr = free_addr();
    let lab = Lab::new();
    // A name the owner of a namespace chose, with what OpenMetrics must
    // escape (the kernel allows it).
    let odd = "q\"b\\s";
    let status = Command::new("ip")
        .args([
            "-n",
            &lab.capture_ns,
            "link",
            "add",
            odd,
            "type",
            "veth",
            "peer",
            "name",
        ])
        .arg(format!("pkm{}", &lab.capture_if[3..]))
        .status()
        .unwrap();
    assert!(status.success());
    let status = Command::new("ip")
        .args(["-n", &lab.capture_ns, "link", "set", odd, "up"])
        .status()
        .unwrap();
    assert!(status.success());
    let daemon = RealDaemon::start(
        "metrics",
        "[[principal]]\nname = \"ad\\\"mins\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n",
        &[
            "--metrics",
            &addr.to_string(),
            "--metrics-token-file",
            token_path.to_str().unwrap(),
        ],
    );

    // Without the token, or with another, nothing is told.
    assert_eq!(get(addr, "/metrics", None).0, 401);
    assert_eq!(get(addr, "/metrics", Some("not-the-token-at-all")).0, 401);
    // Same length, one byte off.
    let mut near = token.to_owned();
    near.pop();
    near.push('X');
    assert_eq!(get(addr, "/metrics", Some(&near)).0, 401);
    assert_eq!(get(addr, "/other", Some(token)).0, 404);

    // A session that receives 20 packets, and two refusals.
    let mut capture = CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter("udp dst port 9000")
        .open()
        .await
        .expect("a capture");
    let refused = CaptureBuilder::new(&lab.capture_if)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .filter("udp dst port")
        .open()
        .await;
    assert!(refused.is_err(), "a filter that does not compile");
    let _odd_session = CaptureBuilder::new(odd)
        .socket(&daemon.socket)
        .netns(&lab.capture_ns)
        .stats_only(Duration::from_secs(60))
        .open()
        .await
        .expect("a session on the oddly named interface");
    let stranger = CaptureBuilder::new(&lab.capture_if).netns(&lab.capture_ns);
    assert!(open_as(stranger, &daemon.socket, 4343, 4343).await.is_err());
    let sender = lab.sender();
    for sequence in 0..20 {
        sender.send(&numbered_udp_frame(9000, sequence, 40));
    }
    for _ in 0..20 {
        tokio::time::timeout(Duration::from_secs(5), capture.next_packet())
            .await
            .expect("a packet in time")
            .expect("reading")
            .expect("a packet");
    }

    let (status, body) = get(addr, "/metrics", Some(token));
    assert_eq!(status, 200, "{body}");
    let samples = parsed(&body);
    let at = [
        ("netns", lab.capture_ns.as_str()),
        ("interface", lab.capture_if.as_str()),
    ];
    assert!(sample(&samples, "pktd_interface_packets_total", &at) >= 20.0);
    assert!(sample(&samples, "pktd_interface_bytes_total", &at) >= 20.0 * 82.0);
    assert_eq!(sample(&samples, "pktd_interface_sessions", &at), 1.0);
    assert_eq!(sample(&samples, "pktd_interface_dropped_total", &at), 0.0);
    for name in [
        "pktd_interface_tcp_syn_total",
        "pktd_interface_tcp_synack_total",
    ] {
        assert_eq!(sample(&samples, name, &at), 0.0, "{name}");
    }
    let session = samples
        .keys()
        .find(|key| key.starts_with("pktd_session_delivered_total{"))
        .expect("a session's samples");
    // The odd names came through whole.
    let odd_labels = [("netns", lab.capture_ns.as_str()), ("interface", odd)];
    assert_eq!(
        sample(&samples, "pktd_interface_sessions", &odd_labels),
        1.0
    );
    assert!(
        samples
            .keys()
            .any(|key| key.contains("principal=\"ad\"mins\"")),
        "{:?}",
        samples.keys().collect::<Vec<_>>()
    );
    for label in [
        "principal=\"ad\"mins\"",
        "uid=\"0\"",
        &format!("interface=\"{}\"", lab.capture_if),
        &format!("netns=\"{}\"", lab.capture_ns),
    ] {
        assert!(session.contains(label), "{session}");
    }
    assert_eq!(samples[session], 20.0);
    let labels = &session["pktd_session_delivered_total".len()..];
    for name in [
        "pktd_session_dropped_total",
        "pktd_session_over_quota_total",
    ] {
        assert_eq!(samples[&format!("{name}{labels}")], 0.0, "{name}");
    }
    assert_eq!(
        samples[&format!("pktd_session_matched_total{labels}")],
        20.0
    );
    assert_eq!(sample(&samples, "pktd_sessions", &[]), 2.0);
    assert_eq!(sample(&samples, "pktd_sessions_opened_total", &[]), 2.0);
    assert_eq!(sample(&samples, "pktd_sessions_max", &[]), 2.0);
    assert_eq!(
        sample(
            &samples,
            "pktd_refusals_total",
            &[("reason", "InvalidFilter")]
        ),
        1.0
    );
    assert_eq!(
        sample(&samples, "pktd_refusals_total", &[("reason", "Denied")]),
        1.0
    );
    assert!(sample(&samples, "pktd_connections", &[]) >= 1.0);
    assert!(sample(&samples, "pktd_connections_accepted_total", &[]) >= 3.0);
    assert!(sample(&samples, "pktd_filter_compile_seconds_count", &[]) >= 2.0);
    assert_eq!(sample(&samples, "pktd_filter_load_seconds_count", &[]), 2.0);
    assert!(sample(&samples, "pktd_cpu_seconds_total", &[("mode", "user")]) > 0.0);
    assert!(sample(&samples, "pktd_cpu_seconds_total", &[("mode", "system")]) > 0.0);
    assert!(sample(&samples, "pktd_host_cpu_idle_seconds_total", &[]) > 0.0);
    assert!(sample(&samples, "pktd_start_time_seconds", &[]) > 1.7e9);

    // The session ends: counted, and gone from the scrape.
    capture.close().await.expect("closing");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let samples = parsed(&get(addr, "/metrics", Some(token)).1);
        if sample(&samples, "pktd_sessions_closed_total", &[]) == 1.0 {
            assert_eq!(sample(&samples, "pktd_sessions", &[]), 1.0);
            let delivered = samples
                .keys()
                .filter(|k| k.starts_with("pktd_session_delivered"))
                .count();
            assert_eq!(delivered, 1, "only the odd one's left");
            break;
        }
        assert!(Instant::now() < deadline, "the end is not counted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Two connections that send nothing hold this address's slots: a
    // third is closed at once, and once theirs time out scrapes go on.
    let idle: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = TcpStream::connect(addr).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert_eq!(third.read(&mut byte).unwrap_or(1), 0, "closed at once");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(get(addr, "/metrics", Some(token)).0, 200);
    drop(idle);
    daemon.terminate(Duration::from_secs(15));
}

/// A token file others may read is refused, and the daemon does not start.
#[test]
fn a_token_file_others_may_read_is_refused() {
    let secrets = Scratch::new("metrics-open-token");
    let open = token_file(&secrets.0, "pktd-metrics-test-token-0123456789", 0o644);
    let mut command = Command::new(bin_path("pktd"));
    command
        .arg("--socket")
        .arg(secrets.0.join("pktd.sock"))
        .args([
            "--metrics",
            &free_addr().to_string(),
            "--metrics-token-file",
        ])
        .arg(&open)
        .stdout(Stdio::null());
    let mut daemon = Running::spawn(command);
    let status = daemon.wait(Duration::from_secs(15)).expect("pktd exits");
    assert!(!status.success());
    let said = daemon.stderr_lines.join("\n");
    assert!(said.contains("group or others may access it"), "{said}");
}
