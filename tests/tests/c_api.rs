//! libwire's C API as a C programmer uses it: `examples/c/wire_example.c`
//! compiled with gcc through pkg-config (the `.pc` file `cargo xtask
//! install` writes, pointed at this build's library and generated
//! header), run against the real daemon: it lists interfaces, captures
//! with one filter and then another set mid-capture, injects a frame, and
//! prints the counters.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use libwire::{CaptureBuilder, Direction};
use pktd_tests::{
    corpus::numbered_udp_frame,
    netlab::Lab,
    pktd::{RealDaemon, Scratch},
    process::{Running, bin_path},
};

/// This build's libraries and `include/wire.h`.
fn build_dir() -> PathBuf {
    bin_path("pktcap")
        .parent()
        .expect("the binaries' directory")
        .to_owned()
}

/// `libwire.pc` from its template, for the library in `dir`.
fn write_pc(template: &Path, dir: &Path, out: &Path) {
    let text = std::fs::read_to_string(template)
        .unwrap()
        .replace("@PREFIX@", &dir.display().to_string())
        .replace("@LIBDIR@", &dir.display().to_string())
        .replace("@INCLUDEDIR@", &dir.join("include").display().to_string())
        .replace("@VERSION@", env!("CARGO_PKG_VERSION"));
    std::fs::write(out, text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_example_captures_changes_its_filter_injects_and_counts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let build = build_dir();
    assert!(
        build.join("libwire.so").exists() && build.join("include/wire.h").exists(),
        "the C library is not built: cargo build -p libwire-c (cargo xtask test does)"
    );
    let scratch = Scratch::new("c-api-build");
    std::os::unix::fs::symlink(build.join("libwire.so"), scratch.0.join("libwire.so.0"))
        .expect("linking libwire.so.0");
    write_pc(
        &root.join("libwire-c/libwire.pc.in"),
        &build,
        &scratch.0.join("libwire.pc"),
    );
    let flags = Command::new("pkg-config")
        .args(["--cflags", "--libs", "libwire"])
        .env("PKG_CONFIG_PATH", &scratch.0)
        .output()
        .expect("running pkg-config");
    assert!(flags.status.success(), "{flags:?}");
    let flags = String::from_utf8(flags.stdout).unwrap();
    let example = scratch.0.join("wire_example");
    let compiled = Command::new("gcc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&example)
        .arg(root.join("examples/c/wire_example.c"))
        .args(flags.split_whitespace())
        .output()
        .expect("running gcc");
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    // The static library links too (pkg-config --static names what it
    // needs), and without a daemon the example says why it cannot go on.
    let static_flags = Command::new("pkg-config")
        .args(["--static", "--libs-only-l", "libwire"])
        .env("PKG_CONFIG_PATH", &scratch.0)
        .output()
        .expect("running pkg-config");
    let static_flags = String::from_utf8(static_flags.stdout).unwrap();
    let static_example = scratch.0.join("wire_example_static");
    let linked = Command::new("gcc")
        .args(["-Wall", "-Wextra", "-Werror", "-o"])
        .arg(&static_example)
        .arg(root.join("examples/c/wire_example.c"))
        .arg(format!("-I{}", build.join("include").display()))
        .arg(build.join("libwire.a"))
        .args(
            static_flags
                .split_whitespace()
                .filter(|flag| *flag != "-lwire"),
        )
        .output()
        .expect("running gcc");
    assert!(
        linked.status.success(),
        "{}",
        String::from_utf8_lossy(&linked.stderr)
    );
    let alone = Command::new(&static_example)
        .args([
            "-S",
            "/nonexistent/pktd.sock",
            "-i",
            "lo",
            "-c",
            "1",
            "udp",
            "tcp",
        ])
        .output()
        .expect("running the static example");
    assert_eq!(alone.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&alone.stderr),
        "wire_findalldevs: cannot connect to pktd at /nonexistent/pktd.sock\n"
    );

    let lab = Lab::new();
    let daemon = RealDaemon::start(
        "c-api",
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n\
         inject_filter = \"udp\"\ninject_spoof = true\n",
        &[],
    );
    // The injected frame, seen where it arrives.
    let mut peer = CaptureBuilder::new(&lab.sender_if)
        .socket(&daemon.socket)
        .netns(&lab.sender_ns)
        .direction(Direction::In)
        .filter("udp dst port 7402")
        .immediate(true)
        .open()
        .await
        .expect("a capture on the sender's side");

    let mut run = Running::spawn({
        let mut command = Command::new(&example);
        command
            .arg("-S")
            .arg(&daemon.socket)
            .args(["-n", &lab.capture_ns, "-i", &lab.capture_if, "-c", "3"])
            .args(["udp dst port 7400", "udp dst port 7401"])
            // The program asks for libwire.so.0 (the SONAME), which the
            // scratch directory links to the built library.
            .env("LD_LIBRARY_PATH", &scratch.0)
            .stdout(Stdio::piped());
        command
    });
    let mut stdout = run.child.stdout.take().unwrap();
    let reading = std::thread::spawn(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut text).unwrap();
        text
    });
    let sender = lab.sender();
    let interleaved = |base: u64| {
        for i in 0..3 {
            sender.send(&numbered_udp_frame(7401, base + 2 * i, 18));
            sender.send(&numbered_udp_frame(7400, base + 2 * i + 1, 18));
        }
    };
    assert!(
        run.wait_for_stderr("listening with", Duration::from_secs(15)),
        "{:?}",
        run.stderr_lines
    );
    interleaved(0);
    assert!(
        run.wait_for_stderr("filter changed", Duration::from_secs(15)),
        "{:?}",
        run.stderr_lines
    );
    interleaved(100);
    let status = run.wait(Duration::from_secs(15)).expect("the example ends");
    assert!(status.success(), "{:?}", run.stderr_lines);
    let printed = reading.join().unwrap();
    let lines: Vec<&str> = printed.lines().collect();
    let packet = |phase: &str, port: u16| {
        format!("{phase}: 60 bytes (60 captured), in, udp dst port {port}")
    };
    assert_eq!(
        lines[..6],
        [
            packet("first", 7400),
            packet("first", 7400),
            packet("first", 7400),
            packet("second", 7401),
            packet("second", 7401),
            packet("second", 7401),
        ]
    );
    assert!(lines[6].starts_with("stats: "), "{printed}");
    assert!(lines[6].ends_with(", 0 dropped"), "{printed}");
    assert!(
        run.stderr_lines.iter().any(|line| line
            == &format!(
                "interface {} in netns {} (up)",
                lab.capture_if, lab.capture_ns
            )),
        "{:?}",
        run.stderr_lines
    );
    // The second filter was compiled by the library, as tcpdump -d does.
    let ddd = Command::new(bin_path("pktcap"))
        .args(["-d", "udp dst port 7401"])
        .output()
        .expect("pktcap -d");
    let insns = String::from_utf8_lossy(&ddd.stdout).lines().count();
    assert!(
        run.stderr_lines
            .iter()
            .any(|line| line == &format!("compiled to {insns} instructions")),
        "{:?}",
        run.stderr_lines
    );
    assert!(
        run.stderr_lines
            .iter()
            .any(|line| line == "injected 60 bytes"),
        "{:?}",
        run.stderr_lines
    );
    let injected = tokio::time::timeout(Duration::from_secs(5), peer.next_packet())
        .await
        .expect("the injected frame arrives")
        .expect("reads")
        .expect("a packet");
    assert_eq!(&injected.data[42..60], b"libwire says hello");
}
