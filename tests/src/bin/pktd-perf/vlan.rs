//! (g) `vlan`: the traffic of (b), untagged and VLAN-tagged (the receive
//! path moves the tag into skb metadata before TC, as rx-vlan offload does
//! on a trunk), with no client, K pktd clients and K tcpdump processes:
//! what the interface keeps of its K=0 rate with and without tags. pktd's
//! native code judges tagged frames too; before, every filter was
//! interpreted for them.

use crate::{
    Spread, group,
    wire::{Backend, Bench, Run, Summary},
};

/// Clients per run.
pub const CLIENTS: usize = 16;

/// One summary per (shape, backend): `tagged` first false, then true.
pub struct Shape {
    pub tagged: bool,
    pub summaries: Vec<Summary>,
}

pub fn measure(bench: &Bench, reps: usize) -> anyhow::Result<Vec<Shape>> {
    let mut shapes = Vec::new();
    for tagged in [false, true] {
        let mut runs: Vec<Run> = Vec::new();
        for rep in 0..reps {
            let mut backends = [Backend::None, Backend::Pktd, Backend::Tcpdump];
            backends.rotate_left(rep % 3);
            for backend in backends {
                let clients = if backend == Backend::None { 0 } else { CLIENTS };
                let run = if tagged {
                    bench.run_tagged(backend, clients)?
                } else {
                    bench.run(backend, clients, false)?
                };
                eprintln!(
                    "  (g) {} K={clients} {} rep {rep}: {:.0} pps, captured {} of {}, dropped {}",
                    if tagged { "tagged" } else { "untagged" },
                    backend.name(),
                    run.rx_pps,
                    run.captured(),
                    run.matching,
                    run.dropped()
                );
                runs.push(run);
            }
        }
        shapes.push(Shape {
            tagged,
            summaries: group(&runs),
        });
    }
    Ok(shapes)
}

fn baseline(shape: &Shape) -> Option<&Spread> {
    shape
        .summaries
        .iter()
        .find(|s| s.backend == Backend::None)
        .map(|s| &s.rx_pps)
}

pub fn print(shapes: &[Shape]) {
    println!(
        "\n(g) veth, half of the traffic matching, K={CLIENTS}: untagged (`udp dst port 9000+i`) and VLAN-tagged (`vlan and udp dst port 9000+i`, tag in skb metadata)"
    );
    println!(
        "{:>9} {:>8} {:>22} {:>10} {:>22} {:>10}",
        "traffic", "backend", "rx pps (spread)", "vs K=0", "captured / matching", "dropped"
    );
    for shape in shapes {
        let Some(base) = baseline(shape) else {
            continue;
        };
        for s in &shape.summaries {
            println!(
                "{:>9} {:>8} {:>22} {:>9.1}% {:>22} {:>10}",
                if shape.tagged { "tagged" } else { "untagged" },
                s.backend.name(),
                format!(
                    "{:.0} ({:.0}%)",
                    s.rx_pps.median,
                    s.rx_pps.relative() * 100.0
                ),
                100.0 * s.rx_pps.median / base.median,
                format!("{} / {}", s.captured, s.matching),
                s.dropped
            );
        }
    }
}

pub fn json(shapes: &[Shape]) -> String {
    let items: Vec<String> = shapes
        .iter()
        .flat_map(|shape| {
            shape.summaries.iter().map(move |s| {
                format!(
                    "{{\"tagged\":{},\"backend\":\"{}\",\"k\":{},\"rx_pps\":{},\"captured\":{},\"matching\":{},\"dropped\":{}}}",
                    shape.tagged,
                    s.backend.name(),
                    s.clients,
                    s.rx_pps.json(),
                    s.captured,
                    s.matching,
                    s.dropped
                )
            })
        })
        .collect();
    format!("\"vlan\":[{}]", items.join(","))
}
