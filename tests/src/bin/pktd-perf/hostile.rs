//! (d) `hostile`: the untapped traffic's rate next to a narrow principal's
//! most expensive filters (issue 10's target: at least 80% of the rate with
//! none). The principal has the policy's defaults (`max_sessions`,
//! `max_filter_insns`) on the lab's interface; its filters run every one of
//! their instructions on every frame and never match: a load of a header
//! word and a compare, again and again, each session's at other offsets and
//! for another word, so that no two can share code. Two shapes use all it
//! may have: one session with every instruction, and every session with an
//! equal share; a third, one session of 4 instructions, shows what an
//! attached program costs before any filter. On 1000-byte frames, a fourth
//! loads past the 256-byte prefix the kernel program copies, which costs a
//! helper call per load: the dearest instruction a filter has. The shapes
//! and runs with none alternate per repetition.

use std::time::Duration;

use anyhow::{Context as _, bail};
use libwire::{Direction, ErrorCode};
use pktd_common::CbpfInsn;
use pktd_daemon::policy::{DEFAULT_MAX_FILTER_INSNS, DEFAULT_MAX_SESSIONS, Policy};
use pktd_tests::daemon::open_as;

use crate::{Spread, json_string, wire::Bench};

/// The narrow principal's uid and gid.
const NARROW: (u32, u32) = (4343, 4343);
/// A word no frame of the bench carries.
const NEVER: u32 = 0x5eed_f00d;

/// Frames the far shape is measured on.
const BIG_FRAME: usize = 1000;
/// The first offset the far shape loads from: past the prefix.
const FAR: u32 = 300;

/// How a principal's instructions are spread over its sessions, and where
/// they load from.
#[derive(Clone, Copy)]
struct Shape {
    sessions: usize,
    insns: usize,
    /// Loads past the prefix, on [`BIG_FRAME`]-byte frames.
    far: bool,
}

impl Shape {
    fn name(self) -> String {
        let base = if self.sessions == 0 {
            "none".to_owned()
        } else {
            format!("{}x{}", self.sessions, self.insns)
        };
        if self.far {
            format!("{base}, {BIG_FRAME} B far")
        } else {
            base
        }
    }

    /// The 4-instruction reference, or a run without sessions.
    fn is_reference(self) -> bool {
        self.sessions == 0 || self.insns == 4
    }
}

/// One shape's rates over the repetitions.
pub struct Point {
    shape: Shape,
    rx_pps: Spread,
    /// Of the rate with no session on the same frames.
    kept: f64,
}

impl Point {
    pub fn json(&self) -> String {
        format!(
            "{{\"shape\":{},\"rx_pps\":{},\"kept_pct\":{:.1}}}",
            json_string(&self.shape.name()),
            self.rx_pps.json(),
            self.kept * 100.0
        )
    }
}

/// A never-matching filter of `len` instructions (4 to 257) that runs all
/// of them: `ld [k]; jeq #NEVER+variant` pairs, then `ret #0` (and the
/// `ret #65535` the compares would jump to). `variant` shifts the offsets
/// and the word; `far` loads past the prefix.
fn expensive_filter(len: usize, variant: usize, far: bool) -> Vec<CbpfInsn> {
    assert!((4..=257).contains(&len), "{len} instructions");
    let pairs = (len - 2) / 2;
    let matched = len - 1;
    let mut insns = Vec::with_capacity(len);
    for pair in 0..pairs {
        let step = (pair + variant) as u32;
        let offset = if far {
            FAR + 8 * (step % 80)
        } else {
            14 + 2 * (step % 20)
        };
        insns.push(CbpfInsn::new(0x20, 0, 0, offset));
        let next = insns.len() + 1;
        let never = NEVER.wrapping_add(variant as u32);
        insns.push(CbpfInsn::new(0x15, (matched - next) as u8, 0, never));
    }
    while insns.len() < len - 1 {
        insns.push(CbpfInsn::new(0x06, 0, 0, 0));
    }
    insns.push(CbpfInsn::new(0x06, 0, 0, 65535));
    insns
}

/// Root everywhere; the narrow principal on the lab's interface with the
/// defaults.
fn policy(bench: &Bench) -> anyhow::Result<Policy> {
    let lab = bench.lab();
    let text = format!(
        "[[principal]]\nname = \"root\"\nusers = [0]\nnetns = [\"*\"]\ninterfaces = [\"*\"]\n\
         max_sessions = 1024\n\n\
         [[principal]]\nname = \"narrow\"\nusers = [{uid}]\nnetns = [\"{ns}\"]\n\
         interfaces = [\"{iface}\"]\ndirections = [\"in\"]\n",
        uid = NARROW.0,
        ns = lab.capture_ns,
        iface = lab.capture_if,
    );
    Policy::parse(&text, "perf-hostile.toml").context("the hostile phase's policy")
}

pub fn measure(bench: &Bench, reps: usize) -> anyhow::Result<Vec<Point>> {
    bench.daemon().policy.replace(policy(bench)?);
    let total = DEFAULT_MAX_FILTER_INSNS as usize;
    let sessions = DEFAULT_MAX_SESSIONS as usize;
    let shape = |sessions, insns, far| Shape {
        sessions,
        insns,
        far,
    };
    let shapes = [
        shape(0, 0, false),
        shape(1, 4, false),
        shape(1, total, false),
        shape(sessions, total / sessions, false),
        shape(0, 0, true),
        shape(1, total, true),
    ];
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); shapes.len()];
    for rep in 0..reps {
        for turn in 0..shapes.len() {
            let index = (turn + rep) % shapes.len();
            let shape = shapes[index];
            let captures = runtime.block_on(open(bench, shape))?;
            let rate = if shape.far {
                bench.untapped_rate_of(BIG_FRAME)?
            } else {
                bench.untapped_rate()?
            };
            runtime.block_on(close(captures))?;
            eprintln!("  (d) {} rep {rep}: {rate:.0} pps", shape.name());
            rates[index].push(rate);
        }
    }
    // Each shape against no session on the same frames.
    let baseline = |far: bool| {
        let none = shapes
            .iter()
            .position(|s| s.sessions == 0 && s.far == far)
            .expect("a run without sessions");
        Spread::of(rates[none].clone()).median
    };
    let (near, far) = (baseline(false), baseline(true));
    Ok(shapes
        .iter()
        .zip(rates.iter().cloned())
        .map(|(shape, rates)| {
            let rx_pps = Spread::of(rates);
            Point {
                shape: *shape,
                kept: rx_pps.median / if shape.far { far } else { near },
                rx_pps,
            }
        })
        .collect())
}

/// Opens `shape`'s sessions as the narrow principal, and checks that one
/// instruction more is refused.
async fn open(bench: &Bench, shape: Shape) -> anyhow::Result<Vec<libwire::Capture>> {
    let lab = bench.lab();
    let socket = &bench.daemon().socket;
    let builder = |program: &[CbpfInsn]| {
        libwire::CaptureBuilder::new(&lab.capture_if)
            .netns(&lab.capture_ns)
            .direction(Direction::In)
            .bytecode(program)
    };
    let mut captures = Vec::new();
    for variant in 0..shape.sessions {
        let capture = open_as(
            builder(&expensive_filter(shape.insns, variant, shape.far)),
            socket,
            NARROW.0,
            NARROW.1,
        )
        .await
        .with_context(|| format!("opening {}", shape.name()))?;
        captures.push(capture);
    }
    if shape.sessions * shape.insns == DEFAULT_MAX_FILTER_INSNS as usize {
        let one_more = open_as(
            builder(&[CbpfInsn::new(0x06, 0, 0, 0)]),
            socket,
            NARROW.0,
            NARROW.1,
        )
        .await;
        match one_more {
            Err(libwire::Error::Daemon {
                code: ErrorCode::Limit,
                ..
            }) => {}
            Err(err) => bail!("one instruction more: {err}"),
            Ok(_) => bail!("one instruction more than max_filter_insns was allowed"),
        }
    }
    Ok(captures)
}

/// Closes the sessions; none may have matched or run out of budget.
async fn close(captures: Vec<libwire::Capture>) -> anyhow::Result<()> {
    for capture in captures {
        let stats = tokio::time::timeout(Duration::from_secs(10), capture.close())
            .await
            .context("closing a session")??;
        if stats.matched != 0 || stats.over_budget != 0 {
            bail!("an expensive filter matched or was cut short: {stats:?}");
        }
    }
    Ok(())
}

pub fn print(points: &[Point]) {
    println!(
        "\n(d) a narrow principal's most expensive filters (max_sessions {DEFAULT_MAX_SESSIONS}, \
         max_filter_insns {DEFAULT_MAX_FILTER_INSNS}; never matching, every instruction run)"
    );
    println!(
        "{:>20} {:>22} {:>10}",
        "shape", "rx pps (spread)", "vs none"
    );
    for point in points {
        println!(
            "{:>20} {:>22} {:>9.1}%",
            point.shape.name(),
            format!(
                "{:.0} ({:.0}%)",
                point.rx_pps.median,
                point.rx_pps.relative() * 100.0
            ),
            point.kept * 100.0
        );
    }
    if let Some(worst) = points
        .iter()
        .filter(|point| !point.shape.is_reference())
        .map(|point| point.kept)
        .min_by(f64::total_cmp)
    {
        println!(
            "  (d) the interface keeps {:.1}% of its rate under the worst shape (target >= 80%)",
            worst * 100.0
        );
    }
}
