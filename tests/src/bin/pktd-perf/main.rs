//! `cargo xtask perf`: pktd's performance next to tcpdump's, in one run.
//!
//! - (a) `kernel`: the kernel program's cost per packet per engine
//!   (BPF_PROG_TEST_RUN, net of an empty program) for K clients;
//! - (b) `wire`: end to end on a veth pair, K = 0, 1, 4, 16, 64 pktd
//!   clients or as many tcpdump processes with the same filters (half of
//!   the traffic matching), alternating; the receiver's packet rate and what
//!   each client captured and lost;
//! - (c) `wire` too: one match-all client at the highest rate, pktd
//!   reading its ring in place, pktd through the daemon, and tcpdump; the
//!   receiver's rate and the CPU time per captured packet;
//! - (d) `hostile`: the untapped traffic's rate next to a narrow
//!   principal's most expensive filters (see `hostile.rs`);
//! - (e) `privacy`: an anonymized match-all client next to a plain one and
//!   to tcpdump (see `privacy.rs`);
//! - (f) `control`: opening a session with 63 others active, and 64
//!   closing together, next to tcpdump's start (see `control.rs`);
//! - (g) `vlan`: (b)'s K=16 on untagged and on VLAN-tagged traffic (see
//!   `vlan.rs`);
//! - (h) `record`: the daemon's recording next to `tcpdump -w`, the
//!   writer's CPU per packet in the file (see `record.rs`);
//! - (i) `namespaces`: one session in each of 100 namespaces through the
//!   real daemon, the time and daemon memory each new namespace costs,
//!   next to a tcpdump in each (see `namespaces.rs`).
//!
//! Every point is repeated (median and spread shown); traffic is bounded
//! in count and time; the namespaces go away on every exit. `--json FILE`
//! writes every number, and (with the wire phase) a PNG chart of (b) next
//! to it.

mod control;
mod hostile;
mod kernel;
mod namespaces;
mod privacy;
mod record;
mod vlan;
mod wire;

use std::{fmt, path::PathBuf, time::Duration};

use anyhow::Context as _;
use clap::Parser;
use pktd_daemon::capture::Engine;

use crate::wire::{Backend, Run, Summary};

#[derive(Parser)]
#[command(about = "pktd's performance next to tcpdump's")]
struct Args {
    /// Phases to run: kernel (a), wire (b and c), hostile (d), privacy
    /// (e), control (f), vlan (g), record (h), namespaces (i).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kernel,wire,hostile,privacy,control,vlan,record,namespaces"
    )]
    phases: Vec<String>,
    /// (i) Namespaces, one session each.
    #[arg(long, default_value_t = 100)]
    namespaces: usize,
    /// (a) Engines to measure.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "interpreter,per-client,shared"
    )]
    engines: Vec<Engine>,
    /// (a) Numbers of clients.
    #[arg(long, value_delimiter = ',', default_value = "0,1,4,16,64")]
    clients: Vec<u32>,
    /// (a) Runs per round (the kernel averages over them).
    #[arg(long, default_value_t = 20_000)]
    repeat: u32,
    /// (a) Rounds per point.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// (b) Numbers of capture clients.
    #[arg(long, value_delimiter = ',', default_value = "0,1,4,16,64")]
    klist: Vec<usize>,
    /// (b, c, d, e, f) Repetitions of each point.
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// (b, c, d, e) Seconds measured per run.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// (b, c, d) Engine of the daemon.
    #[arg(long, default_value = "shared")]
    engine: Engine,
    /// (b, c) Hook of the daemon: auto (XDP here: the clients want
    /// received packets only), tc or xdp.
    #[arg(long, default_value = "tc")]
    hook: pktd_daemon::capture::HookChoice,
    /// (b, c) Kernel buffer per client, KiB (-B of tcpdump and pktcap).
    #[arg(long, default_value_t = 4096)]
    buffer_kib: u32,
    /// Also write every number to this JSON file (and the chart to the
    /// same name with .png).
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Median, minimum and maximum of some samples.
#[derive(Clone, Copy, Debug)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(mut samples: Vec<f64>) -> Self {
        samples.sort_by(f64::total_cmp);
        Self {
            median: samples[samples.len() / 2],
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }

    /// (max - min) / median.
    pub fn relative(&self) -> f64 {
        (self.max - self.min) / self.median.abs().max(1e-9)
    }

    pub fn json(&self) -> String {
        format!(
            "{{\"median\":{:.2},\"min\":{:.2},\"max\":{:.2}}}",
            self.median, self.min, self.max
        )
    }
}

impl fmt::Display for Spread {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} ({:.0}%)", self.median, self.relative() * 100.0)
    }
}

pub fn json_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut json = Vec::new();

    let kernel_points = if args.phases.iter().any(|p| p == "kernel") {
        let points = kernel::measure(&args.engines, &args.clients, args.repeat, args.rounds)?;
        kernel::print(&points, args.repeat, args.rounds);
        let items: Vec<String> = points.iter().map(kernel::KernelPoint::json).collect();
        json.push(format!("\"kernel\":[{}]", items.join(",")));
        points
    } else {
        Vec::new()
    };

    let wants = |phase: &str| args.phases.iter().any(|p| p == phase);
    let bench = if ["wire", "hostile", "privacy", "control", "vlan", "record"]
        .iter()
        .any(|phase| wants(phase))
    {
        Some(wire::Bench::new(wire::Settings {
            duration: Duration::from_secs_f64(args.duration),
            warmup: Duration::from_millis(500),
            engine: args.engine,
            hook: args.hook,
            buffer_kib: args.buffer_kib,
        })?)
    } else {
        None
    };

    if let Some(bench) = bench.as_ref().filter(|_| wants("wire")) {
        // (b): per K, per repetition, the backends alternate.
        let mut runs: Vec<Run> = Vec::new();
        for &k in &args.klist {
            for rep in 0..args.reps {
                let backends: &[Backend] = if k == 0 {
                    &[Backend::None]
                } else if rep % 2 == 0 {
                    &[Backend::Pktd, Backend::Tcpdump]
                } else {
                    &[Backend::Tcpdump, Backend::Pktd]
                };
                for &backend in backends {
                    let run = bench.run(backend, k, false)?;
                    eprintln!(
                        "  (b) K={k} {} rep {rep}: {:.0} pps, captured {} of {}, dropped {}",
                        backend.name(),
                        run.rx_pps,
                        run.captured(),
                        run.matching,
                        run.dropped()
                    );
                    runs.push(run);
                }
            }
        }
        // (c): one match-all client: in place, forwarded, tcpdump, in
        // turn.
        let mut match_all: Vec<Run> = Vec::new();
        for rep in 0..args.reps {
            let mut backends = [Backend::Pktd, Backend::PktdForwarded, Backend::Tcpdump];
            backends.rotate_left(rep % 3);
            for backend in backends {
                let run = bench.run(backend, 1, true)?;
                eprintln!(
                    "  (c) {} rep {rep}: {:.0} pps, captured {} of {}, dropped {}, {:.0} ns CPU per packet ({:.0} the daemon's)",
                    backend.name(),
                    run.rx_pps,
                    run.captured(),
                    run.matching,
                    run.dropped(),
                    run.cpu_ns_per_packet.unwrap_or(f64::NAN),
                    run.daemon_cpu_ns_per_packet.unwrap_or(0.0)
                );
                match_all.push(run);
            }
        }
        let summaries: Vec<Summary> = group(&runs);
        let match_all_summaries = group(&match_all);
        let baseline = summaries
            .iter()
            .find(|s| s.clients == 0)
            .map(|s| s.rx_pps.median)
            .context("no K=0 run")?;
        print_wire(&summaries, &match_all_summaries, baseline, args.engine);
        print_targets(&kernel_points, &summaries, &match_all_summaries, baseline);

        let items: Vec<String> = runs
            .iter()
            .enumerate()
            .map(|(i, run)| run.json(i))
            .collect();
        json.push(format!(
            "\"wire\":{{\"engine\":{},\"duration_s\":{},\"baseline_pps\":{baseline:.0},\"runs\":[{}]}}",
            json_string(&args.engine.to_string()),
            args.duration,
            items.join(",")
        ));
        let items: Vec<String> = match_all
            .iter()
            .enumerate()
            .map(|(i, run)| run.json(i))
            .collect();
        json.push(format!("\"match_all\":[{}]", items.join(",")));
        if let Some(path) = &args.json {
            let png = path.with_extension("png");
            wire::chart(&png, &summaries, baseline)?;
            println!("chart: {}", png.display());
        }
    }

    if let Some(bench) = bench.as_ref().filter(|_| wants("hostile")) {
        let points = hostile::measure(bench, args.reps)?;
        hostile::print(&points);
        let items: Vec<String> = points.iter().map(hostile::Point::json).collect();
        json.push(format!("\"hostile\":[{}]", items.join(",")));
    }

    if let Some(bench) = bench.as_ref().filter(|_| wants("privacy")) {
        let (summaries, rewrite) = privacy::measure(bench, args.reps)?;
        privacy::print(&summaries, &rewrite);
        json.push(privacy::json(&summaries, &rewrite));
    }

    if let Some(bench) = bench.as_ref().filter(|_| wants("control")) {
        let control = control::measure(bench, args.reps)?;
        control::print(&control);
        json.push(control::json(&control));
    }

    if let Some(bench) = bench.as_ref().filter(|_| wants("vlan")) {
        let shapes = vlan::measure(bench, args.reps)?;
        vlan::print(&shapes);
        json.push(vlan::json(&shapes));
    }

    if let Some(bench) = bench.as_ref().filter(|_| wants("record")) {
        let summaries = record::measure(bench, args.reps)?;
        record::print(&summaries);
        json.push(record::json(&summaries));
    }

    if wants("namespaces") {
        let result = namespaces::measure(args.namespaces)?;
        namespaces::print(&result);
        json.push(namespaces::json(&result));
    }

    if let Some(path) = &args.json {
        write_json(path, &json)?;
    }
    Ok(())
}

fn write_json(path: &std::path::Path, parts: &[String]) -> anyhow::Result<()> {
    std::fs::write(path, format!("{{{}}}\n", parts.join(",")))
        .with_context(|| format!("writing {}", path.display()))?;
    println!("json: {}", path.display());
    Ok(())
}

/// One summary per (backend, K), in the order first seen.
pub fn group(runs: &[Run]) -> Vec<Summary> {
    let mut keys: Vec<(Backend, usize)> = Vec::new();
    for run in runs {
        if !keys.contains(&(run.backend, run.clients)) {
            keys.push((run.backend, run.clients));
        }
    }
    keys.iter()
        .map(|&(backend, clients)| {
            let these: Vec<&Run> = runs
                .iter()
                .filter(|run| run.backend == backend && run.clients == clients)
                .collect();
            wire::summarize(&these)
        })
        .collect()
}

fn print_wire(summaries: &[Summary], match_all: &[Summary], baseline: f64, engine: Engine) {
    println!(
        "\n(b) veth, sendmmsg sender on CPU 0, clients on CPU 1, half of the traffic matching; pktd engine {engine}"
    );
    println!(
        "{:>4} {:>8} {:>22} {:>10} {:>22} {:>10}",
        "K", "backend", "rx pps (spread)", "vs K=0", "captured / matching", "dropped"
    );
    for s in summaries {
        println!(
            "{:>4} {:>8} {:>22} {:>9.1}% {:>22} {:>10}",
            s.clients,
            s.backend.name(),
            format!(
                "{:.0} ({:.0}%)",
                s.rx_pps.median,
                s.rx_pps.relative() * 100.0
            ),
            100.0 * s.rx_pps.median / baseline,
            format!("{} / {}", s.captured, s.matching),
            s.dropped
        );
    }
    println!(
        "\n(c) one match-all client (`udp`); CPU: the capture process's, and the daemon's for pktd, per captured packet"
    );
    println!(
        "{:>8} {:>22} {:>10} {:>22} {:>10} {:>24}",
        "backend",
        "rx pps (spread)",
        "vs K=0",
        "captured / matching",
        "dropped",
        "CPU ns/packet (spread)"
    );
    for s in match_all {
        println!(
            "{:>8} {:>22} {:>9.1}% {:>22} {:>10} {:>24}",
            s.backend.name(),
            format!(
                "{:.0} ({:.0}%)",
                s.rx_pps.median,
                s.rx_pps.relative() * 100.0
            ),
            100.0 * s.rx_pps.median / baseline,
            format!("{} / {}", s.captured, s.matching),
            s.dropped,
            s.cpu_ns.as_ref().map_or("-".to_owned(), |cpu| format!(
                "{:.0} ({:.0}%)",
                cpu.median,
                cpu.relative() * 100.0
            ))
        );
    }
}

fn print_targets(
    kernel: &[kernel::KernelPoint],
    summaries: &[Summary],
    match_all: &[Summary],
    baseline: f64,
) {
    let find = |backend: Backend, k: usize| {
        summaries
            .iter()
            .find(|s| s.backend == backend && s.clients == k)
    };
    let shared = |clients: u32| {
        kernel
            .iter()
            .find(|p| p.engine == Engine::Shared && p.clients == clients)
            .map(|p| p.miss.median)
    };
    println!("\ntargets (ratios from this run):");
    if let (Some(tcpdump), Some(pktd16)) = (find(Backend::Tcpdump, 16), shared(16)) {
        let sockets_ns = (1.0 / tcpdump.rx_pps.median - 1.0 / baseline) * 1e9;
        println!(
            "  (a) 16 shared clients {pktd16:.1} ns/packet in kernel vs 16 tcpdump sockets {sockets_ns:.1} ns/packet end to end: {:.3} (target <= 0.100)",
            pktd16 / sockets_ns
        );
    }
    if let (Some(pktd64), Some(pktd16)) = (shared(64), shared(16)) {
        println!(
            "  (a) 64 vs 16 shared clients: {:.2}x (target <= 2)",
            pktd64 / pktd16
        );
    }
    for backend in [Backend::Pktd, Backend::Tcpdump] {
        if let Some(s) = find(backend, 16) {
            println!(
                "  (b) K=16 {}: untapped traffic kept {:.1}% of K=0 (target for pktd >= 95%)",
                backend.name(),
                100.0 * s.rx_pps.median / baseline
            );
        }
    }
    let of = |backend: Backend| match_all.iter().find(|s| s.backend == backend);
    if let (Some(pktd), Some(tcpdump)) = (of(Backend::Pktd), of(Backend::Tcpdump)) {
        println!(
            "  (c) match-all: pktd kept {:.1}% of K=0, dropped {}; tcpdump kept {:.1}%, dropped {} (target: pktd >= 95%, 0 drops)",
            100.0 * pktd.rx_pps.median / baseline,
            pktd.dropped,
            100.0 * tcpdump.rx_pps.median / baseline,
            tcpdump.dropped
        );
        let cpu = |s: &Summary| s.cpu_ns.as_ref().map(|cpu| cpu.median);
        if let (Some(pktd_ns), Some(tcpdump_ns)) = (cpu(pktd), cpu(tcpdump)) {
            println!(
                "  (c) match-all CPU per captured packet: pktd in place {pktd_ns:.0} ns, tcpdump {tcpdump_ns:.0} ns: {:.2}x (target <= 0.5)",
                pktd_ns / tcpdump_ns
            );
        }
        if let (Some(forwarded), Some(tcpdump_ns)) =
            (of(Backend::PktdForwarded).and_then(cpu), cpu(tcpdump))
        {
            println!(
                "  (c) match-all CPU per captured packet through the daemon: {forwarded:.0} ns, {:.2}x tcpdump's",
                forwarded / tcpdump_ns
            );
        }
    }
}
