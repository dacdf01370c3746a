//! `cargo xtask perf`: the kernel program's cost per packet, measured with
//! BPF_PROG_TEST_RUN in the real kernel, net of a program that does nothing
//! (run interleaved with it, so both see the same machine).
//!
//! For K clients with filters `udp dst port 9000+i` it runs a UDP frame that
//! no filter matches (the pure cost of evaluating K filters) and one that
//! the first client matches (plus one delivery), `--repeat` times per round,
//! and reports the median over `--rounds` rounds with the spread. `--json`
//! also writes every point as JSON.

use std::{fmt::Write as _, path::PathBuf};

use anyhow::Context as _;
use clap::Parser;
use pktd_daemon::capture::ClientSpec;
use pktd_filter::compile;
use pktd_tests::{corpus, kernel::Bench};

#[derive(Parser)]
#[command(about = "Per-packet cost of pktd's kernel program (BPF_PROG_TEST_RUN)")]
struct Args {
    /// Numbers of clients to measure.
    #[arg(long, value_delimiter = ',', default_value = "0,1,4,8,16,64")]
    clients: Vec<u32>,
    /// Runs per round (the kernel averages over them).
    #[arg(long, default_value_t = 20_000)]
    repeat: u32,
    /// Rounds per point; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Also write the points to this JSON file.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// A 60-byte UDP frame to `dport`.
fn frame(dport: u16) -> Vec<u8> {
    corpus::numbered_udp_frame(dport, 0, 18)
}

/// Median and (max - min) / median of `samples`.
fn median_spread(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    let median = samples[samples.len() / 2];
    let spread = (samples[samples.len() - 1] - samples[0]) / median.abs().max(1.0);
    (median, spread)
}

struct Point {
    clients: u32,
    miss: (f64, f64),
    hit: Option<(f64, f64)>,
    empty_ns: f64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut points = Vec::new();
    for &count in &args.clients {
        let filters = (0..count)
            .map(|i| compile(&format!("udp dst port {}", 9000 + i), true, 262_144))
            .collect::<Result<Vec<_>, _>>()
            .context("compiling filters")?;
        let spec = ClientSpec {
            ring_bytes: 64 << 20,
            ..ClientSpec::default()
        };
        let mut bench = Bench::with_spec(&filters, &spec);
        let mut empty = Vec::new();
        // Each round: the empty program, then the real one, on one frame;
        // the net cost is their difference.
        let mut measure = |frame: &[u8], empty: &mut Vec<f64>| -> anyhow::Result<(f64, f64)> {
            let mut samples = Vec::with_capacity(args.rounds);
            for _ in 0..args.rounds {
                let base = bench.attachment.test_run_empty(frame, args.repeat)? as f64;
                let run = bench
                    .attachment
                    .test_run(pktd_common::DIR_IN, frame, args.repeat)?
                    as f64;
                empty.push(base);
                samples.push(run - base);
                for client in &mut bench.clients {
                    while client.next_record().is_some() {}
                }
            }
            Ok(median_spread(&mut samples))
        };
        let miss = measure(&frame(8999), &mut empty)?;
        let hit = if count == 0 {
            None
        } else {
            Some(measure(&frame(9000), &mut empty)?)
        };
        points.push(Point {
            clients: count,
            miss,
            hit,
            empty_ns: median_spread(&mut empty).0,
        });
    }

    println!(
        "# pktd kernel program, interpreted filters; BPF_PROG_TEST_RUN, {} runs x {} rounds; ns per packet net of an empty program (median, spread)",
        args.repeat, args.rounds
    );
    println!(
        "{:>8} {:>18} {:>18} {:>16} {:>10}",
        "clients", "no-match ns/pkt", "1-match ns/pkt", "ns/filter/pkt", "empty ns"
    );
    let base = points.iter().find(|p| p.clients == 0).map(|p| p.miss.0);
    for point in &points {
        let per_filter = match (base, point.clients) {
            (Some(base), clients) if clients > 0 => {
                format!("{:.1}", (point.miss.0 - base) / f64::from(clients))
            }
            _ => "-".to_owned(),
        };
        println!(
            "{:>8} {:>18} {:>18} {per_filter:>16} {:>10.1}",
            point.clients,
            format!("{:.1} ({:.0}%)", point.miss.0, point.miss.1 * 100.0),
            point.hit.map_or("-".to_owned(), |(median, spread)| format!(
                "{median:.1} ({:.0}%)",
                spread * 100.0
            )),
            point.empty_ns
        );
    }
    if let Some(path) = &args.json {
        let mut json = String::from("{\"engine\":\"interpreter\",\"points\":[");
        for (i, point) in points.iter().enumerate() {
            let _ = write!(
                json,
                "{}{{\"clients\":{},\"no_match_ns\":{:.2},\"no_match_spread\":{:.4},\"one_match_ns\":{},\"empty_ns\":{:.2}}}",
                if i == 0 { "" } else { "," },
                point.clients,
                point.miss.0,
                point.miss.1,
                point
                    .hit
                    .map_or("null".to_owned(), |(median, _)| format!("{median:.2}")),
                point.empty_ns
            );
        }
        json.push_str("]}\n");
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
