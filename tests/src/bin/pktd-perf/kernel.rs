//! (a) The kernel program's cost per packet, per engine: BPF_PROG_TEST_RUN
//! in the real kernel, net of a program that does nothing (run interleaved
//! with it, so both see the same machine).
//!
//! For K clients with filters `udp dst port 9000+i` it runs a UDP frame that
//! no filter matches (the pure cost of evaluating K filters) and one that
//! the first client matches (plus one delivery).

use pktd_daemon::capture::{ClientSpec, Engine, MAX_CHAIN};
use pktd_filter::compile;
use pktd_tests::{corpus, kernel::Bench};

use crate::{Spread, json_string};

pub struct KernelPoint {
    pub engine: Engine,
    pub clients: u32,
    /// Net ns per packet that no filter matches.
    pub miss: Spread,
    /// Net ns per packet the first client matches.
    pub hit: Option<Spread>,
    pub empty_ns: f64,
}

impl KernelPoint {
    pub fn json(&self) -> String {
        format!(
            "{{\"engine\":{},\"clients\":{},\"no_match_ns\":{},\"one_match_ns\":{},\"empty_ns\":{:.2}}}",
            json_string(&self.engine.to_string()),
            self.clients,
            self.miss.json(),
            self.hit.as_ref().map_or("null".to_owned(), Spread::json),
            self.empty_ns
        )
    }
}

/// A 60-byte UDP frame to `dport`.
fn frame(dport: u16) -> Vec<u8> {
    corpus::numbered_udp_frame(dport, 0, 18)
}

pub fn measure(
    engines: &[Engine],
    clients: &[u32],
    repeat: u32,
    rounds: usize,
) -> anyhow::Result<Vec<KernelPoint>> {
    let mut points = Vec::new();
    for &engine in engines {
        for &count in clients {
            if engine == Engine::PerClient && count as usize > MAX_CHAIN {
                continue;
            }
            let filters = (0..count)
                .map(|i| compile(&format!("udp dst port {}", 9000 + i), true, 262_144))
                .collect::<Result<Vec<_>, _>>()?;
            let spec = ClientSpec {
                ring_bytes: 64 << 20,
                ..ClientSpec::default()
            };
            let mut bench = Bench::with_engine(&filters, &spec, engine);
            let mut empty = Vec::new();
            let mut measure = |frame: &[u8], empty: &mut Vec<f64>| -> anyhow::Result<Spread> {
                let mut samples = Vec::with_capacity(rounds);
                for _ in 0..rounds {
                    let base = bench.attachment.test_run_empty(frame, repeat)? as f64;
                    let run = bench
                        .attachment
                        .test_run(pktd_common::DIR_IN, frame, repeat)?
                        as f64;
                    empty.push(base);
                    samples.push(run - base);
                    for client in &mut bench.clients {
                        while client.next_record().is_some() {}
                    }
                }
                Ok(Spread::of(samples))
            };
            let miss = measure(&frame(8999), &mut empty)?;
            let hit = if count == 0 {
                None
            } else {
                Some(measure(&frame(9000), &mut empty)?)
            };
            points.push(KernelPoint {
                engine,
                clients: count,
                miss,
                hit,
                empty_ns: Spread::of(empty).median,
            });
        }
    }
    Ok(points)
}

pub fn print(points: &[KernelPoint], repeat: u32, rounds: usize) {
    println!(
        "\n(a) kernel program, BPF_PROG_TEST_RUN, {repeat} runs x {rounds} rounds; ns per packet net of an empty program: median (spread)"
    );
    println!(
        "{:>12} {:>8} {:>18} {:>18} {:>14}",
        "engine", "clients", "no match", "one match", "ns/filter"
    );
    for point in points {
        let per_filter = if point.clients > 0 {
            format!("{:.1}", point.miss.median / f64::from(point.clients))
        } else {
            "-".to_owned()
        };
        println!(
            "{:>12} {:>8} {:>18} {:>18} {per_filter:>14}",
            point.engine.to_string(),
            point.clients,
            point.miss.to_string(),
            point.hit.as_ref().map_or("-".to_owned(), Spread::to_string),
        );
    }
}
