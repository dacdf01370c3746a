//! `cargo xtask test`: no import circles in the daemon, fmt (the fuzz
//! crate's too), clippy on the host crates, clippy on the eBPF crate, every
//! test, then a short run of every fuzz target; the first failure stops
//! the run.

use std::{env, ffi::OsString, process::Command};

use anyhow::{Result, bail};

use crate::{
    bootstrap::bootstrap,
    process::{self, command, is_root, root},
};

pub fn test(extra: &[OsString]) -> Result<()> {
    // Checked before bootstrapping so a non-root run installs nothing only
    // to be refused afterwards.
    if !is_root() {
        bail!(
            "cargo xtask test must run as root: the tests create network namespaces \
             and veth pairs and load eBPF programs; run it from a root shell"
        );
    }
    bootstrap()?;

    // The daemon's modules stay free of import circles (issue 9).
    println!("==> cargo xtask layout pktd-daemon --deny-cycles");
    crate::layout::layout(&[root().join("pktd-daemon")], false, true)?;

    let mut fmt = stable(["fmt", "--all", "--", "--check"]);
    // The fuzz crate is a workspace of its own.
    let mut fuzz_fmt = stable(["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"]);

    let mut clippy = stable(["clippy", "--workspace", "--exclude", "pktd-ebpf"]);
    clippy.args(["--all-targets", "--", "-D", "warnings"]);

    // The tests run the pktd and pktcap binaries themselves, and build C
    // against libwire.so/libwire.a and wire.h (libwire-c's library).
    let mut build = stable([
        "build",
        "--workspace",
        "--exclude",
        "pktd-ebpf",
        "--bins",
        "--lib",
    ]);
    let mut tests = stable(["test", "--workspace", "--exclude", "pktd-ebpf"]);
    tests.args(extra);

    for step in [
        &mut fmt,
        &mut fuzz_fmt,
        &mut clippy,
        &mut ebpf_clippy(),
        &mut build,
        &mut tests,
    ] {
        match step.get_current_dir() {
            Some(dir) if dir != root() => {
                let dir = dir.strip_prefix(root()).unwrap_or(dir);
                println!("==> {}  (in {})", process::display(step), dir.display());
            }
            _ => println!("==> {}", process::display(step)),
        }
        process::run(step)?;
    }

    // A smoke pass: a fixed number of inputs of each target from its
    // seeds, random seed 1, without AddressSanitizer (pktd's unsafe
    // code is small; the build takes half the time). docs/security.md has
    // what it costs.
    println!("==> fuzz smoke pass (--sanitizer none, seed 1, fixed runs)");
    crate::fuzz::run_targets(crate::fuzz::Length::Smoke, "none", &[])
}

/// `cargo +stable ARGS` at the workspace root. Explicitly stable: the
/// outer `cargo xtask` may have been started with another toolchain, and
/// bootstrap installs clippy and rustfmt on stable.
fn stable<const N: usize>(args: [&str; N]) -> Command {
    let mut cargo = command("cargo");
    cargo.arg("+stable").args(args).current_dir(root());
    cargo
}

/// The eBPF crate only builds on nightly for bpfel with a rebuilt core, so
/// it is linted on its own, inside its directory (its rust-toolchain.toml)
/// and with its own target dir so its artifacts never clash with the host's.
fn ebpf_clippy() -> Command {
    let mut cargo = command("cargo");
    cargo
        .args(["+nightly", "clippy", "--package", "pktd-ebpf"])
        .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
        .args(["--release", "--", "-D", "warnings"])
        .current_dir(root().join("pktd-ebpf"))
        .env("CARGO_TARGET_DIR", root().join("target/ebpf-clippy"))
        // The cfg aya-ebpf selects its per-architecture code with, and the
        // CPU level, as pktd-daemon/build.rs sets them for the real build.
        // The encoded form needs no quoting and overrides RUSTFLAGS.
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            [
                format!("--cfg=bpf_target_arch=\"{}\"", env::consts::ARCH),
                "-Ctarget-cpu=v3".to_owned(),
            ]
            .join("\x1f"),
        )
        .env_remove("RUSTFLAGS");
    cargo
}
