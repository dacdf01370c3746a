//! (e) `privacy`: one match-all client (`udp`) of an anonymized principal
//! (Crypto-PAn addresses, hashed MACs, payload kept: every record
//! rewritten in the daemon) next to the same client of a plain principal
//! and to tcpdump, on the traffic of (c), the three alternating per
//! repetition. What anonymization costs shows in what the client keeps up
//! with (captured and dropped) and in the receiver's rate.

use std::{io::Write as _, os::unix::fs::OpenOptionsExt as _, path::PathBuf, time::Instant};

use anyhow::Context as _;
use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode};
use pktd_daemon::policy::Policy;

use crate::{
    Spread, group,
    wire::{ANONYMIZED_UID, Backend, Bench, Run, Summary},
};

/// A key file for the phase, removed on drop.
struct KeyFile(PathBuf);

impl KeyFile {
    fn new() -> anyhow::Result<Self> {
        let path = std::env::temp_dir().join(format!("pktd-perf-key-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .context("creating the key file")?;
        file.write_all(b"pktd perf: the anonymized client")?;
        Ok(Self(path))
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Root everywhere; the anonymized principal on the lab's interface.
fn policy(bench: &Bench, key: &KeyFile) -> anyhow::Result<Policy> {
    let lab = bench.lab();
    let text = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n\
         max_sessions = 1024\n\n\
         [[principal]]\nname = \"anonymized\"\nusers = [{uid}]\nnetns = [\"{ns}\"]\n\
         interfaces = [\"{iface}\"]\ndirections = [\"in\"]\n\
         anonymize = {{ mac = \"hash\", payload = \"keep\", key_file = \"{key}\" }}\n",
        uid = ANONYMIZED_UID,
        ns = lab.capture_ns,
        iface = lab.capture_if,
        key = key.0.display(),
    );
    Policy::parse(&text, "perf-privacy.toml").context("the privacy phase's policy")
}

/// The anonymizer alone, on one thread: ns per 60-byte IPv4/UDP frame
/// whose addresses it has mapped before (its cache warm), and whose source
/// is new every time (32 AES blocks for it).
pub struct Rewrite {
    pub warm_ns: Spread,
    pub cold_ns: Spread,
}

fn rewrite_cost(reps: usize) -> Rewrite {
    const FRAMES: u32 = 200_000;
    let frame = pktd_tests::corpus::ipv4_udp_frame(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        [10, 77, 0, 1],
        [10, 77, 0, 2],
        40000,
        9000,
        &[0x5a; 18],
    );
    let per_frame = |fresh: bool| {
        let mut anonymizer = Anonymizer::new(
            CryptoPan::new(b"pktd perf: the anonymized client"),
            MacMode::Hash,
            PayloadMode::Keep,
        );
        let mut frames = vec![frame.clone(); 1024];
        let start = Instant::now();
        for index in 0..FRAMES {
            let data = &mut frames[index as usize % 1024];
            data.copy_from_slice(&frame);
            if fresh {
                data[26..30].copy_from_slice(&(0x0b00_0000 + index).to_be_bytes());
            }
            anonymizer.rewrite(data, 60);
        }
        start.elapsed().as_nanos() as f64 / f64::from(FRAMES)
    };
    Rewrite {
        warm_ns: Spread::of((0..reps).map(|_| per_frame(false)).collect()),
        cold_ns: Spread::of((0..reps).map(|_| per_frame(true)).collect()),
    }
}

pub fn measure(bench: &Bench, reps: usize) -> anyhow::Result<(Vec<Summary>, Rewrite)> {
    let key = KeyFile::new()?;
    bench.daemon().policy.replace(policy(bench, &key)?);
    let backends = [Backend::Pktd, Backend::PktdAnonymized, Backend::Tcpdump];
    let mut runs: Vec<Run> = Vec::new();
    for rep in 0..reps {
        for turn in 0..backends.len() {
            let backend = backends[(turn + rep) % backends.len()];
            let run = bench.run(backend, 1, true)?;
            eprintln!(
                "  (e) {} rep {rep}: {:.0} pps, captured {} of {}, dropped {}",
                backend.name(),
                run.rx_pps,
                run.captured(),
                run.matching,
                run.dropped()
            );
            runs.push(run);
        }
    }
    Ok((group(&runs), rewrite_cost(reps)))
}

pub fn print(summaries: &[Summary], rewrite: &Rewrite) {
    println!(
        "\n(e) one match-all client (`udp`): plain, anonymized (Crypto-PAn, MAC hash), tcpdump"
    );
    println!(
        "{:>10} {:>22} {:>22} {:>10} {:>10}",
        "backend", "rx pps (spread)", "captured / matching", "dropped", "captured"
    );
    for s in summaries {
        println!(
            "{:>10} {:>22} {:>22} {:>10} {:>9.1}%",
            s.backend.name(),
            format!(
                "{:.0} ({:.0}%)",
                s.rx_pps.median,
                s.rx_pps.relative() * 100.0
            ),
            format!("{} / {}", s.captured, s.matching),
            s.dropped,
            100.0 * s.captured as f64 / s.matching.max(1) as f64
        );
    }
    let of = |backend| summaries.iter().find(|s| s.backend == backend);
    if let (Some(plain), Some(anonymized)) = (of(Backend::Pktd), of(Backend::PktdAnonymized)) {
        println!(
            "  (e) anonymized vs plain: receiver rate {:.1}%, captured share {:.1}% vs {:.1}%",
            100.0 * anonymized.rx_pps.median / plain.rx_pps.median,
            100.0 * anonymized.captured as f64 / anonymized.matching.max(1) as f64,
            100.0 * plain.captured as f64 / plain.matching.max(1) as f64
        );
    }
    println!(
        "  (e) the anonymizer alone, one thread: {:.0} ns per frame ({:.0}%) with its cache warm, \
         {:.0} ns ({:.0}%) with a new source address every frame",
        rewrite.warm_ns.median,
        rewrite.warm_ns.relative() * 100.0,
        rewrite.cold_ns.median,
        rewrite.cold_ns.relative() * 100.0
    );
}

/// The summaries as JSON items.
pub fn json(summaries: &[Summary], rewrite: &Rewrite) -> String {
    let items: Vec<String> = summaries
        .iter()
        .map(|s| {
            format!(
                "{{\"backend\":{},\"rx_pps\":{},\"captured\":{},\"matching\":{},\"dropped\":{}}}",
                crate::json_string(s.backend.name()),
                s.rx_pps.json(),
                s.captured,
                s.matching,
                s.dropped
            )
        })
        .collect();
    format!(
        "\"privacy\":{{\"clients\":[{}],\"rewrite_warm_ns\":{},\"rewrite_cold_ns\":{}}}",
        items.join(","),
        rewrite.warm_ns.json(),
        rewrite.cold_ns.json()
    )
}
