//! (f) `control`: the control path with many sessions (issue 12's
//! targets). How long a session takes to open with 63 others active on
//! the interface (median ≤ 100 ms), and how long 64 sessions closing
//! together take until the last one has ended (≤ 1 s); next to how long
//! tcpdump takes to start listening on the same interface. The sessions'
//! filters are mixed, so that each change makes the shared engine and
//! the verifier work.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use libwire::{Capture, Direction};
use pktd_daemon::policy::Policy;
use pktd_tests::process::Running;

use crate::{Spread, json_string, wire::Bench};

/// Sessions on the interface (the kernel program's slots).
const SESSIONS: usize = 64;

/// Root on the lab's interface, with room for every slot.
fn policy(bench: &Bench) -> anyhow::Result<Policy> {
    let lab = bench.lab();
    let text = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"{}\"]\ninterfaces = [\"{}\"]\n\
         max_sessions = 1024\n",
        lab.capture_ns, lab.capture_if
    );
    Policy::parse(&text, "perf-control.toml").context("the control phase's policy")
}

/// Session `i`'s filter: four kinds, each with its own constants.
fn filter(i: usize) -> String {
    let port = 10000 + i;
    match i % 4 {
        0 => format!("udp dst port {port}"),
        1 => format!("tcp dst port {port} and tcp[tcpflags] & tcp-syn != 0"),
        2 => format!("ip6 and udp port {port}"),
        _ => format!("icmp or (udp and len > {})", 100 + i),
    }
}

async fn open(bench: &Bench, i: usize) -> anyhow::Result<Capture> {
    let lab = bench.lab();
    bench
        .daemon()
        .capture(&lab.capture_if)
        .netns(&lab.capture_ns)
        .direction(Direction::In)
        .filter(filter(i))
        .open()
        .await
        .with_context(|| format!("opening session {i}"))
}

/// The phase's numbers.
pub struct Control {
    /// Opening one session with `SESSIONS - 1` others active, ms.
    pub open_ms: Spread,
    /// `SESSIONS` sessions closing together, until the last has ended, ms.
    pub close_all_ms: Spread,
    /// tcpdump from its start to "listening on", ms.
    pub tcpdump_ms: Spread,
}

pub fn measure(bench: &Bench, reps: usize) -> anyhow::Result<Control> {
    bench.daemon().policy.replace(policy(bench)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (mut opens, mut closes, mut tcpdumps) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let (open_ms, close_ms) = runtime.block_on(async {
            let mut sessions = Vec::with_capacity(SESSIONS);
            for i in 0..SESSIONS - 1 {
                sessions.push(open(bench, i).await?);
            }
            let start = Instant::now();
            sessions.push(open(bench, SESSIONS - 1).await?);
            let open_ms = start.elapsed().as_secs_f64() * 1e3;
            let start = Instant::now();
            let closed = futures_util::future::join_all(sessions.into_iter().map(Capture::close));
            for result in closed.await {
                result.context("closing")?;
            }
            Ok::<_, anyhow::Error>((open_ms, start.elapsed().as_secs_f64() * 1e3))
        })?;
        let tcpdump_ms = tcpdump_start(bench)?;
        eprintln!(
            "  (f) rep {rep}: open with {} others {open_ms:.1} ms, {SESSIONS} closing together \
             {close_ms:.1} ms, tcpdump listening after {tcpdump_ms:.1} ms",
            SESSIONS - 1
        );
        opens.push(open_ms);
        closes.push(close_ms);
        tcpdumps.push(tcpdump_ms);
    }
    Ok(Control {
        open_ms: Spread::of(opens),
        close_all_ms: Spread::of(closes),
        tcpdump_ms: Spread::of(tcpdumps),
    })
}

/// Milliseconds from starting tcpdump on the lab's interface to its
/// "listening on".
fn tcpdump_start(bench: &Bench) -> anyhow::Result<f64> {
    let lab = bench.lab();
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", &lab.capture_ns, "tcpdump", "-i"])
        .arg(&lab.capture_if)
        .args(["-n", "-w", "/dev/null", "udp dst port 10000"]);
    let start = Instant::now();
    let mut running = Running::spawn(command);
    if !running.wait_for_stderr("listening on", Duration::from_secs(10)) {
        bail!("tcpdump did not start: {:?}", running.stderr_lines);
    }
    let elapsed = start.elapsed().as_secs_f64() * 1e3;
    running.signal("INT");
    let _ = running.wait(Duration::from_secs(10));
    Ok(elapsed)
}

pub fn print(control: &Control) {
    println!("\n(f) the control path, {SESSIONS} sessions with mixed filters");
    let row = |what: &str, spread: &Spread, target: &str| {
        println!(
            "{what:>44} {:>10.1} ms ({:>3.0}%)  {target}",
            spread.median,
            spread.relative() * 100.0
        );
    };
    row(
        &format!("open with {} others active", SESSIONS - 1),
        &control.open_ms,
        "target <= 100 ms",
    );
    row(
        &format!("{SESSIONS} closing together, until the last ended"),
        &control.close_all_ms,
        "target <= 1000 ms",
    );
    row("tcpdump, start to listening", &control.tcpdump_ms, "");
}

pub fn json(control: &Control) -> String {
    format!(
        "\"control\":{{\"sessions\":{SESSIONS},\"open_ms\":{},\"close_all_ms\":{},\"tcpdump_ms\":{},\"filters\":{}}}",
        control.open_ms.json(),
        control.close_all_ms.json(),
        control.tcpdump_ms.json(),
        json_string(&filter(0))
    )
}
