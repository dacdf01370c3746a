//! (i) `namespaces`: one session in each of many network namespaces
//! (issue 14's target: attaching in a new namespace takes at most 50 ms
//! and 1 MiB of the daemon's memory, up to hundreds of namespaces). N
//! namespaces, their loopback up; through the real `pktd` binary, a
//! session on each one's `lo` opened in turn and kept: the time each open
//! took and the daemon's resident memory after it. Next to it, one
//! tcpdump started in each namespace: its time to "listening on" and its
//! own resident memory.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use libwire::Direction;
use pktd_tests::{pktd::RealDaemon, process::Running};

use crate::{Spread, json_string};

/// N namespaces named `pktdperf-PID-I`, removed on drop.
struct Namespaces(Vec<String>);

impl Namespaces {
    fn new(count: usize) -> anyhow::Result<Self> {
        let mut namespaces = Self(Vec::with_capacity(count));
        for i in 0..count {
            let name = format!("pktdperf-{}-{i}", std::process::id());
            run(Command::new("ip").args(["netns", "add", &name]))?;
            namespaces.0.push(name.clone());
            run(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]))?;
        }
        Ok(namespaces)
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let status = command.status().with_context(|| format!("{command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(())
}

/// Resident memory of process `pid`, bytes.
fn rss(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .context("no VmRSS")?;
    Ok(kib * 1024)
}

/// Kernel memory the daemon's eBPF maps and programs are charged
/// (`memlock` in the fdinfo of its descriptors, each object once): what
/// its attachments cost beside its own resident memory.
fn bpf_memlock(pid: u32) -> anyhow::Result<u64> {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(entry) = entry else { continue };
        let Ok(target) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let target = target.to_string_lossy();
        let kind = if target.contains("bpf-map") {
            "map_id:"
        } else if target.contains("bpf-prog") {
            "prog_id:"
        } else {
            continue;
        };
        let Ok(info) = std::fs::read_to_string(format!(
            "/proc/{pid}/fdinfo/{}",
            entry.file_name().to_string_lossy()
        )) else {
            continue;
        };
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().parse::<u64>().ok())
        };
        if let (Some(id), Some(memlock)) = (field(kind), field("memlock:"))
            && seen.insert((kind, id))
        {
            total += memlock;
        }
    }
    Ok(total)
}

/// The phase's numbers.
pub struct Namespaced {
    pub namespaces: usize,
    /// pktd: opening the first session of a namespace, ms.
    pub open_ms: Spread,
    /// pktd: the daemon's growth per namespace after the first, bytes
    /// (its resident memory with every session open, less with the first
    /// one, over N - 1).
    pub daemon_bytes_per_namespace: f64,
    /// pktd: the daemon's growth with the first namespace, bytes (the
    /// first load also sets up what later ones reuse: the allocator's
    /// arenas, the parsed object's buffers).
    pub daemon_bytes_first: u64,
    /// pktd: kernel memory of its maps and programs per namespace after
    /// the first, bytes.
    pub kernel_bytes_per_namespace: f64,
    /// pktd: kernel memory of its maps and programs with the first
    /// session (the shared program and maps, loaded once), bytes.
    pub kernel_bytes_first: u64,
    /// pktd: the daemon's resident memory before the first session.
    pub daemon_bytes_before: u64,
    /// tcpdump: from its start to "listening on", ms.
    pub tcpdump_ms: Spread,
    /// tcpdump: one process's resident memory, bytes.
    pub tcpdump_bytes: Spread,
}

pub fn measure(count: usize) -> anyhow::Result<Namespaced> {
    let namespaces = Namespaces::new(count)?;
    let policy = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"pktdperf-{}-*\"]\n\
         interfaces = [\"lo\"]\nmax_sessions = 4096\n",
        std::process::id()
    );
    let daemon = RealDaemon::start("perf-namespaces", &policy, &["--hook", "tc"]);
    let pid = daemon.process.child.id();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let before = rss(pid)?;
    let mut with_first = before;
    let mut kernel_with_first = 0;
    let mut opens = Vec::with_capacity(count);
    let sessions = runtime.block_on(async {
        let mut sessions = Vec::with_capacity(count);
        for (i, name) in namespaces.0.iter().enumerate() {
            let start = Instant::now();
            let capture = libwire::CaptureBuilder::new("lo")
                .socket(&daemon.socket)
                .netns(name)
                .direction(Direction::In)
                .filter("udp port 9")
                .open()
                .await
                .with_context(|| format!("opening a session in {name}"))?;
            let ms = start.elapsed().as_secs_f64() * 1e3;
            opens.push(ms);
            sessions.push(capture);
            if i == 0 {
                with_first = rss(pid)?;
                kernel_with_first = bpf_memlock(pid)?;
            }
            if i % 10 == 9 || i + 1 == count {
                eprintln!(
                    "  (i) pktd: {} namespaces, the last opened in {ms:.1} ms, the daemon at {:.1} MiB",
                    i + 1,
                    rss(pid)? as f64 / 1048576.0
                );
            }
        }
        Ok::<_, anyhow::Error>(sessions)
    })?;
    let after = rss(pid)?;
    let kernel_after = bpf_memlock(pid)?;
    runtime.block_on(async {
        for capture in sessions {
            let _ = capture.close().await;
        }
    });
    daemon.terminate(Duration::from_secs(30));

    let mut tcpdumps = Vec::with_capacity(count);
    let (mut starts, mut sizes) = (Vec::new(), Vec::new());
    for name in &namespaces.0 {
        let mut command = Command::new("ip");
        command.args([
            "netns",
            "exec",
            name,
            "tcpdump",
            "-i",
            "lo",
            "-n",
            "-w",
            "/dev/null",
            "udp port 9",
        ]);
        let start = Instant::now();
        let mut running = Running::spawn(command);
        if !running.wait_for_stderr("listening on", Duration::from_secs(10)) {
            bail!(
                "tcpdump did not start in {name}: {:?}",
                running.stderr_lines
            );
        }
        starts.push(start.elapsed().as_secs_f64() * 1e3);
        // `ip netns exec` execs tcpdump: the pid is tcpdump's.
        sizes.push(rss(running.child.id())? as f64);
        tcpdumps.push(running);
    }
    eprintln!("  (i) tcpdump: {count} processes listening");
    for mut running in tcpdumps {
        running.signal("INT");
        let _ = running.wait(Duration::from_secs(10));
    }
    Ok(Namespaced {
        namespaces: count,
        open_ms: Spread::of(opens),
        daemon_bytes_per_namespace: after.saturating_sub(with_first) as f64
            / count.saturating_sub(1).max(1) as f64,
        daemon_bytes_first: with_first.saturating_sub(before),
        kernel_bytes_first: kernel_with_first,
        kernel_bytes_per_namespace: kernel_after.saturating_sub(kernel_with_first) as f64
            / count.saturating_sub(1).max(1) as f64,
        daemon_bytes_before: before,
        tcpdump_ms: Spread::of(starts),
        tcpdump_bytes: Spread::of(sizes),
    })
}

pub fn print(result: &Namespaced) {
    let mib = |bytes: f64| bytes / 1048576.0;
    println!(
        "\n(i) one session in each of {} namespaces (their lo), in turn",
        result.namespaces
    );
    println!(
        "{:>44} {:>10.1} ms ({:>3.0}%)  target <= 50 ms; {:.1}x tcpdump's start",
        "pktd: opening a namespace's first session",
        result.open_ms.median,
        result.open_ms.relative() * 100.0,
        result.open_ms.median / result.tcpdump_ms.median
    );
    println!(
        "{:>44} {:>10.2} MiB         target <= 1 MiB; {:.2}x one tcpdump's",
        "pktd: the daemon's growth per further one",
        mib(result.daemon_bytes_per_namespace),
        result.daemon_bytes_per_namespace / result.tcpdump_bytes.median
    );
    println!(
        "{:>44} {:>10.2} MiB",
        "pktd: the daemon's growth with the first",
        mib(result.daemon_bytes_first as f64),
    );
    println!(
        "{:>44} {:>10.2} MiB         (eBPF maps and programs, memlock)",
        "pktd: kernel memory per further namespace",
        mib(result.kernel_bytes_per_namespace),
    );
    println!(
        "{:>44} {:>10.2} MiB         (the shared program and maps, once)",
        "pktd: kernel memory with the first",
        mib(result.kernel_bytes_first as f64),
    );
    println!(
        "{:>44} {:>10.1} ms ({:>3.0}%)",
        "tcpdump: start to listening",
        result.tcpdump_ms.median,
        result.tcpdump_ms.relative() * 100.0
    );
    println!(
        "{:>44} {:>10.2} MiB ({:>3.0}%)  (pktd before the first: {:.1} MiB)",
        "tcpdump: one process's resident memory",
        mib(result.tcpdump_bytes.median),
        result.tcpdump_bytes.relative() * 100.0,
        mib(result.daemon_bytes_before as f64)
    );
}

pub fn json(result: &Namespaced) -> String {
    format!(
        "\"namespaces\":{{\"count\":{},\"open_ms\":{},\"daemon_bytes_per_namespace\":{:.0},\"daemon_bytes_first\":{},\"kernel_bytes_per_namespace\":{:.0},\"kernel_bytes_first\":{},\"daemon_bytes_before\":{},\"tcpdump_ms\":{},\"tcpdump_bytes\":{},\"interface\":{}}}",
        result.namespaces,
        result.open_ms.json(),
        result.daemon_bytes_per_namespace,
        result.daemon_bytes_first,
        result.kernel_bytes_per_namespace,
        result.kernel_bytes_first,
        result.daemon_bytes_before,
        result.tcpdump_ms.json(),
        result.tcpdump_bytes.json(),
        json_string("lo")
    )
}
