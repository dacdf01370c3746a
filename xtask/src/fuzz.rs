//! `cargo xtask fuzz [--seconds N] [--sanitizer S] [--smoke] [TARGET...]`:
//! runs the cargo-fuzz targets of `fuzz/` (installing cargo-fuzz first if
//! missing), each for N seconds (or `cargo xtask test`'s smoke pass), and prints per target its executions, its corpus and
//! whether it crashed; a crash fails the command, naming the input that
//! caused it.
//!
//! Nothing lands in git: the seeds in `fuzz/corpus/TARGET` are only read;
//! what the fuzzer adds goes to `corpus/TARGET` in the fuzz build's target
//! directory (kept between runs), libFuzzer's output to `logs/TARGET.log`
//! beside it, and crashing inputs to `fuzz/artifacts/TARGET/` (ignored).

use std::{
    env,
    fs::{self, File},
    path::{Path, PathBuf},
    process::Stdio,
};

use anyhow::{Context as _, Result, bail};

use crate::process::{self, command, install_root_override, is_root, probe, root, run_captured};

/// Every target, in the order they run.
pub const TARGETS: &[&str] = &[
    "frames",
    "policy",
    "validator",
    "translator",
    "patterns",
    "anonymized",
    "savefiles",
];

/// The target that loads eBPF programs, and so needs root.
const NEEDS_ROOT: &str = "translator";

/// How long each target runs.
#[derive(Clone, Copy)]
pub enum Length {
    /// This many seconds, from the corpus kept between runs.
    Seconds(u32),
    /// The smoke pass of `cargo xtask test`: a fixed number of inputs
    /// (some 7 s each here), random seed 1, from the seeds alone (not the
    /// corpus kept between runs), so that a run of the same tree does
    /// nearly the same work: libFuzzer's choices still vary a little.
    Smoke,
}

impl Length {
    /// libFuzzer's options for `target`.
    fn options(self, target: &str) -> Vec<String> {
        match self {
            Length::Seconds(seconds) => vec![format!("-max_total_time={seconds}")],
            Length::Smoke => {
                let runs = match target {
                    "frames" => 300_000,
                    "policy" => 50_000,
                    "validator" => 200_000,
                    "translator" => 500,
                    "anonymized" => 100_000,
                    "savefiles" => 200_000,
                    _ => 1_000_000,
                };
                vec!["-seed=1".to_owned(), format!("-runs={runs}")]
            }
        }
    }

    fn describe(self) -> String {
        match self {
            Length::Seconds(seconds) => format!("{seconds} s per target"),
            Length::Smoke => {
                "smoke pass: fixed inputs per target, seed 1, from the seeds".to_owned()
            }
        }
    }
}

/// What one run of one target came to.
struct Outcome {
    target: String,
    executions: u64,
    per_second: u64,
    corpus_files: u64,
    corpus_bytes: u64,
    /// The input that crashed it (or ran out of time or memory), if any.
    artifact: Option<PathBuf>,
    log: PathBuf,
}

/// Bootstraps, then fuzzes `targets` (all when empty) for `length` each,
/// built with `sanitizer` (cargo-fuzz's: address, none, …).
pub fn fuzz(length: Length, sanitizer: &str, targets: &[String]) -> Result<()> {
    crate::bootstrap::bootstrap()?;
    run_targets(length, sanitizer, targets)
}

/// Fuzzes `targets` (all when empty) for `length` each, built with
/// `sanitizer`; the toolchain is already there.
pub fn run_targets(length: Length, sanitizer: &str, targets: &[String]) -> Result<()> {
    let targets: Vec<&str> = if targets.is_empty() {
        TARGETS.to_vec()
    } else {
        targets.iter().map(String::as_str).collect()
    };
    if let Some(unknown) = targets.iter().find(|target| !TARGETS.contains(target)) {
        bail!(
            "no fuzz target {unknown:?}; there are: {}",
            TARGETS.join(", ")
        );
    }
    if targets.contains(&NEEDS_ROOT) && !is_root() {
        bail!(
            "the {NEEDS_ROOT} fuzz target loads eBPF programs and must run as root; \
             run from a root shell, or name the other targets"
        );
    }
    cargo_fuzz()?;

    // One build for all of them, its progress shown as it goes.
    let mut build = cargo_fuzz_command("build", sanitizer);
    if let [target] = targets[..] {
        build.arg(target);
    }
    println!("==> {}", process::display(&build));
    process::run(&mut build)?;

    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_target(target, length, sanitizer)?);
    }
    print_table(&outcomes, length);

    let crashes: Vec<&Outcome> = outcomes.iter().filter(|o| o.artifact.is_some()).collect();
    if crashes.is_empty() {
        return Ok(());
    }
    for outcome in &crashes {
        let artifact = outcome.artifact.as_deref().unwrap_or(Path::new("?"));
        eprintln!(
            "fuzz {}: crashed on {} (log: {}); reproduce with \
             `cargo +nightly fuzz run {} {}`",
            outcome.target,
            artifact.display(),
            outcome.log.display(),
            outcome.target,
            artifact.display(),
        );
    }
    bail!(
        "{} of the fuzz targets crashed: {}",
        crashes.len(),
        crashes
            .iter()
            .map(|o| o.target.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `cargo +nightly fuzz SUBCOMMAND --sanitizer SANITIZER` at the workspace
/// root (cargo-fuzz finds `fuzz/` there). Build and run must name the same
/// sanitizer, or the run builds again.
fn cargo_fuzz_command(subcommand: &str, sanitizer: &str) -> std::process::Command {
    let mut cargo = command("cargo");
    cargo
        .args(["+nightly", "fuzz", subcommand, "--sanitizer", sanitizer])
        .current_dir(root());
    cargo
}

/// Runs one target for `length`, its output into its log.
fn run_target(target: &str, length: Length, sanitizer: &str) -> Result<Outcome> {
    let seeds = root().join("fuzz/corpus").join(target);
    let corpus = match length {
        Length::Seconds(_) => fuzz_target_dir().join("corpus").join(target),
        Length::Smoke => {
            let fresh = fuzz_target_dir().join("smoke-corpus").join(target);
            if fresh.exists() {
                fs::remove_dir_all(&fresh)
                    .with_context(|| format!("emptying {}", fresh.display()))?;
            }
            fresh
        }
    };
    let logs = fuzz_target_dir().join("logs");
    for dir in [&corpus, &logs] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let log_path = logs.join(format!("{target}.log"));
    let log =
        File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;

    // libFuzzer writes what it finds into the first directory and only
    // reads the others.
    let mut run = cargo_fuzz_command("run", sanitizer);
    run.arg(target)
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .args(length.options(target))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(
            log.try_clone()
                .context("duplicating the log's descriptor")?,
        )
        .stderr(log);
    println!(
        "==> {}  (output in {})",
        process::display(&run),
        log_path.display()
    );
    let status = run
        .status()
        .with_context(|| format!("starting `{}`", process::display(&run)))?;

    let output =
        fs::read_to_string(&log_path).with_context(|| format!("reading {}", log_path.display()))?;
    let artifact = artifact(&output).map(|path| root().join(path));
    if !status.success() && artifact.is_none() {
        // Not a finding: the build or libFuzzer itself failed.
        let tail: Vec<&str> = output.lines().rev().take(30).collect();
        for line in tail.iter().rev() {
            eprintln!("{line}");
        }
        return Err(process::Failed {
            command: process::display(&run),
            code: status.code(),
        }
        .into());
    }
    let (corpus_files, corpus_bytes) = [&corpus, &seeds]
        .iter()
        .map(|dir| directory_size(dir))
        .try_fold((0, 0), |(files, bytes), size| {
            size.map(|(f, b)| (files + f, bytes + b))
        })?;
    let outcome = Outcome {
        target: target.to_owned(),
        executions: final_stat(&output, "number_of_executed_units").unwrap_or(0),
        per_second: final_stat(&output, "average_exec_per_sec").unwrap_or(0),
        corpus_files,
        corpus_bytes,
        artifact,
        log: log_path,
    };
    println!(
        "fuzz {target}: {} executions ({}/s), corpus {} files, {} bytes, {}",
        outcome.executions,
        outcome.per_second,
        outcome.corpus_files,
        outcome.corpus_bytes,
        match &outcome.artifact {
            Some(path) => format!("CRASHED on {}", path.display()),
            None => "no crash".to_owned(),
        }
    );
    Ok(outcome)
}

fn print_table(outcomes: &[Outcome], length: Length) {
    println!("\nfuzzing, {}:", length.describe());
    println!(
        "{:<12} {:>12} {:>8} {:>13} {:>13}  result",
        "target", "executions", "exec/s", "corpus files", "corpus bytes"
    );
    for o in outcomes {
        println!(
            "{:<12} {:>12} {:>8} {:>13} {:>13}  {}",
            o.target,
            o.executions,
            o.per_second,
            o.corpus_files,
            o.corpus_bytes,
            if o.artifact.is_some() { "CRASH" } else { "ok" }
        );
    }
}

/// Where cargo-fuzz builds: $CARGO_TARGET_DIR (resolved against the root,
/// where cargo-fuzz runs) if set, else `fuzz/target`.
fn fuzz_target_dir() -> PathBuf {
    ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .into_iter()
        .find_map(|var| env::var_os(var).filter(|dir| !dir.is_empty()))
        .map_or_else(|| root().join("fuzz/target"), |dir| root().join(dir))
}

/// Installs cargo-fuzz unless `cargo fuzz` already runs.
fn cargo_fuzz() -> Result<()> {
    if probe(command("cargo").args(["fuzz", "--version"])).is_some() {
        return Ok(());
    }
    println!("xtask fuzz: installing cargo-fuzz (cargo install; a minute or two)");
    let mut install = command("cargo");
    install
        .args(["+stable", "install", "cargo-fuzz", "--locked"])
        // The repo's .cargo/config.toml is none of cargo-fuzz's business.
        .current_dir(env::temp_dir());
    if let Some(root) = install_root_override() {
        install.arg("--root").arg(root);
    }
    run_captured(&mut install)?;
    if probe(command("cargo").args(["fuzz", "--version"])).is_none() {
        bail!("installed cargo-fuzz, but `cargo fuzz --version` does not run");
    }
    Ok(())
}

/// A `stat::NAME: VALUE` line of libFuzzer's final statistics.
fn final_stat(output: &str, name: &str) -> Option<u64> {
    output.lines().rev().find_map(|line| {
        line.strip_prefix("stat::")?
            .strip_prefix(name)?
            .strip_prefix(':')?
            .trim()
            .parse()
            .ok()
    })
}

/// The input libFuzzer saved when a run failed: "Test unit written to
/// PATH" (a crash, a timeout, running out of memory, a leak).
fn artifact(output: &str) -> Option<PathBuf> {
    output.lines().find_map(|line| {
        let (_, path) = line.split_once("Test unit written to ")?;
        Some(PathBuf::from(path.trim()))
    })
}

/// Files and bytes directly in `dir` (a corpus is flat).
fn directory_size(dir: &Path) -> Result<(u64, u64)> {
    let mut files = 0;
    let mut bytes = 0;
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let metadata = entry?.metadata()?;
        if metadata.is_file() {
            files += 1;
            bytes += metadata.len();
        }
    }
    Ok((files, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLEAN: &str = "#4096\tpulse  cov: 518 ft: 1587 corp: 302/11387b\n\
                         Done 273221 runs in 11 second(s)\n\
                         stat::number_of_executed_units: 273221\n\
                         stat::average_exec_per_sec:     24838\n\
                         stat::new_units_added:          846\n\
                         stat::peak_rss_mb:              229\n";

    #[test]
    fn final_stats_are_read() {
        assert_eq!(final_stat(CLEAN, "number_of_executed_units"), Some(273_221));
        assert_eq!(final_stat(CLEAN, "average_exec_per_sec"), Some(24_838));
        assert_eq!(final_stat(CLEAN, "new_units"), None);
        assert_eq!(artifact(CLEAN), None);
    }

    #[test]
    fn a_crashing_input_is_found() {
        let crash = "==1234== ERROR: libFuzzer: deadly signal\n\
                     MS: 2 ChangeBit-CopyPart-; base unit: 0123\n\
                     artifact_prefix='/w/fuzz/artifacts/frames/'; Test unit written to \
                     /w/fuzz/artifacts/frames/crash-da39a3ee\n\
                     Base64: AAAA\n";
        assert_eq!(
            artifact(crash),
            Some(PathBuf::from("/w/fuzz/artifacts/frames/crash-da39a3ee"))
        );
    }
}
