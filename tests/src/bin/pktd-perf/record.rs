//! (h) `record`: one match-all savefile writer at the highest rate, the
//! daemon's recording (`pktcap --record`: the daemon drains the ring and
//! writes the file) next to `tcpdump -w FILE`, alternating per repetition,
//! both files on the same filesystem. The figure is the writer's CPU per
//! packet in the file: the daemon's threads for pktd, tcpdump's for
//! tcpdump.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use pktd_daemon::policy::Policy;

use crate::{
    group,
    wire::{Backend, Bench, Run, Summary},
};

/// The phase's record directory, removed on drop.
struct Directory(PathBuf);

impl Directory {
    fn new() -> anyhow::Result<Self> {
        // Under /var/tmp rather than /tmp: a disk, not memory, on most
        // hosts, as a real recording's would be.
        let path = Path::new("/var/tmp").join(format!("pktd-perf-record-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir(&path).context("creating the record directory")?;
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        Ok(Self(path))
    }
}

impl Drop for Directory {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn policy(directory: &Directory) -> anyhow::Result<Policy> {
    let text = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n\
         max_sessions = 1024\nrecord_directory = \"{}\"\ndisk_allowance = 0\n",
        directory.0.display()
    );
    Policy::parse(&text, "perf-record.toml").context("the record phase's policy")
}

pub fn measure(bench: &Bench, reps: usize) -> anyhow::Result<Vec<Summary>> {
    let directory = Directory::new()?;
    bench.daemon().policy.replace(policy(&directory)?);
    let backends = [Backend::PktdRecording, Backend::TcpdumpFile];
    let mut runs: Vec<Run> = Vec::new();
    for rep in 0..reps {
        for turn in 0..backends.len() {
            let backend = backends[(turn + rep) % backends.len()];
            let run = bench.run_recording(backend, &directory.0)?;
            eprintln!(
                "  (h) {} rep {rep}: {:.0} pps, {} of {} in the file, dropped {}, {:.0} ns CPU per packet",
                backend.name(),
                run.rx_pps,
                run.captured(),
                run.matching,
                run.dropped(),
                run.cpu_ns_per_packet.unwrap_or(f64::NAN),
            );
            runs.push(run);
        }
    }
    Ok(group(&runs))
}

pub fn print(summaries: &[Summary]) {
    println!(
        "\n(h) veth, one match-all savefile writer: the daemon's recording and tcpdump -w, CPU of the writer per packet in the file"
    );
    println!(
        "{:>10} {:>22} {:>22} {:>10} {:>22}",
        "backend", "rx pps (spread)", "in file / matching", "dropped", "CPU ns/packet (spread)"
    );
    for s in summaries {
        println!(
            "{:>10} {:>22} {:>22} {:>10} {:>22}",
            s.backend.name(),
            format!(
                "{:.0} ({:.0}%)",
                s.rx_pps.median,
                s.rx_pps.relative() * 100.0
            ),
            format!("{} / {}", s.captured, s.matching),
            s.dropped,
            s.cpu_ns.map_or("-".to_owned(), |cpu| cpu.to_string()),
        );
    }
    let cpu = |backend: Backend| {
        summaries
            .iter()
            .find(|s| s.backend == backend)
            .and_then(|s| s.cpu_ns)
            .map(|cpu| cpu.median)
    };
    if let (Some(pktd), Some(tcpdump)) = (cpu(Backend::PktdRecording), cpu(Backend::TcpdumpFile)) {
        println!(
            "  (h) daemon CPU per recorded packet {pktd:.0} ns, tcpdump -w {tcpdump:.0} ns: {:.2}x (target <= 1)",
            pktd / tcpdump
        );
    }
}

pub fn json(summaries: &[Summary]) -> String {
    let items: Vec<String> = summaries
        .iter()
        .map(|s| {
            format!(
                "{{\"backend\":\"{}\",\"rx_pps\":{},\"in_file\":{},\"matching\":{},\"dropped\":{},\"cpu_ns_per_packet\":{}}}",
                s.backend.name(),
                s.rx_pps.json(),
                s.captured,
                s.matching,
                s.dropped,
                s.cpu_ns.map_or("null".to_owned(), |cpu| cpu.json()),
            )
        })
        .collect();
    format!("\"record\":[{}]", items.join(","))
}
