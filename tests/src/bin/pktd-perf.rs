//! `cargo xtask perf`: the kernel program's cost per packet, measured with
//! BPF_PROG_TEST_RUN in the real kernel.
//!
//! For K clients with filters `udp dst port 9000+i` it runs a UDP frame that
//! no filter matches (the pure cost of evaluating K filters) and one that
//! the first client matches (plus one delivery), `--repeat` times per round,
//! and prints the median over `--rounds` rounds with the spread.

use anyhow::Context as _;
use clap::Parser;
use pktd_daemon::capture::ClientSpec;
use pktd_filter::compile;
use pktd_tests::{corpus, kernel::Bench};

#[derive(Parser)]
#[command(about = "Per-packet cost of pktd's kernel program (BPF_PROG_TEST_RUN)")]
struct Args {
    /// Numbers of clients to measure.
    #[arg(long, value_delimiter = ',', default_value = "0,1,8,64")]
    clients: Vec<u32>,
    /// Runs per round (the kernel averages over them).
    #[arg(long, default_value_t = 20_000)]
    repeat: u32,
    /// Rounds per point; the median is reported.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
}

/// A 60-byte UDP frame to `dport`.
fn frame(dport: u16) -> Vec<u8> {
    corpus::numbered_udp_frame(dport, 0, 18)
}

/// Median and (max - min) / median of `samples`.
fn median_spread(samples: &mut [u64]) -> (u64, f64) {
    samples.sort_unstable();
    let median = samples[samples.len() / 2];
    let spread = (samples[samples.len() - 1] - samples[0]) as f64 / median.max(1) as f64;
    (median, spread)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    println!(
        "# pktd kernel program, interpreted filters; BPF_PROG_TEST_RUN, {} runs x {} rounds, median (spread)",
        args.repeat, args.rounds
    );
    println!(
        "{:>8} {:>16} {:>16} {:>18}",
        "clients", "no-match ns/pkt", "1-match ns/pkt", "ns/client/pkt"
    );
    let mut baseline = None;
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
        let mut measure = |frame: &[u8]| -> anyhow::Result<(u64, f64)> {
            let mut samples = Vec::with_capacity(args.rounds);
            for _ in 0..args.rounds {
                samples.push(
                    bench
                        .attachment
                        .test_run(pktd_common::DIR_IN, frame, args.repeat)?,
                );
                for client in &mut bench.clients {
                    while client.next_record().is_some() {}
                }
            }
            Ok(median_spread(&mut samples))
        };
        let (miss, miss_spread) = measure(&frame(8999))?;
        let (hit, hit_spread) = measure(&frame(9000))?;
        let base = *baseline.get_or_insert(miss);
        let per_client = if count == 0 {
            "-".to_owned()
        } else {
            format!("{:.1}", (miss as f64 - base as f64) / f64::from(count))
        };
        println!(
            "{count:>8} {:>16} {:>16} {per_client:>18}",
            format!("{miss} ({:.0}%)", miss_spread * 100.0),
            if count == 0 {
                "-".to_owned()
            } else {
                format!("{hit} ({:.0}%)", hit_spread * 100.0)
            },
        );
    }
    Ok(())
}
