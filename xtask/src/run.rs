//! `cargo xtask run` and `cargo xtask perf`: bootstrap, build, then hand the
//! process over to the program so its exit code and signals pass through.

use std::{env, ffi::OsString, os::unix::process::CommandExt as _, path::PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::{
    bootstrap::bootstrap,
    process::{self, command, root},
};

pub fn run(args: &[OsString]) -> Result<()> {
    bootstrap()?;
    // The whole default workspace, so pktcap is built next to pktd.
    process::run(
        command("cargo")
            .args(["+stable", "build", "--release"])
            .current_dir(root()),
    )?;
    let pktd = target_dir().join("release/pktd");
    if !pktd.is_file() {
        bail!("the build succeeded but left no {}", pktd.display());
    }
    let error = command(&pktd).args(args).exec();
    Err(error).with_context(|| format!("executing {}", pktd.display()))
}

pub fn perf(args: &[OsString]) -> Result<()> {
    bootstrap()?;
    // pktd-perf starts pktcap from its own directory.
    let mut build = command("cargo");
    build
        .args(["+stable", "build", "--release", "--workspace"])
        .args(["--exclude", "pktd-ebpf", "--bins"])
        .current_dir(root());
    process::run(&mut build)?;
    let mut cargo = command("cargo");
    cargo
        .args(["+stable", "run", "--release", "--package", "pktd-tests"])
        .args(["--bin", "pktd-perf", "--"])
        .args(args)
        .current_dir(root());
    let error = cargo.exec();
    Err(error).with_context(|| format!("executing `{}`", process::display(&cargo)))
}

/// Where cargo puts the build: $CARGO_TARGET_DIR (or its config-variable
/// twin) if set, which cargo resolves against its working directory, the
/// root; else the workspace's target/.
pub fn target_dir() -> PathBuf {
    ["CARGO_TARGET_DIR", "CARGO_BUILD_TARGET_DIR"]
        .into_iter()
        .find_map(|var| env::var_os(var).filter(|dir| !dir.is_empty()))
        .map_or_else(|| root().join("target"), |dir| root().join(dir))
}
