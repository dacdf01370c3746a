//! Builds the eBPF program (pktd-ebpf) with the nightly toolchain and
//! bpf-linker, so that `cargo build` on stable embeds it in pktd.
//! `cargo xtask run|test` install both first on a fresh machine.
//!
//! aya-build does the same but fixes the rustflags; pktd needs
//! `-C target-cpu=v3` (atomic fetch-and-add for the kernel-side quotas).

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail};

fn main() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?);
    let root = manifest_dir.parent().context("pktd-daemon has no parent")?;
    let ebpf_dir = root.join("pktd-ebpf");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    for watched in ["pktd-ebpf/src", "pktd-ebpf/Cargo.toml", "pktd-common/src"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let arch = env::var("CARGO_CFG_TARGET_ARCH")?;
    let rustflags = [
        format!("--cfg=bpf_target_arch=\"{arch}\""),
        "-Cdebuginfo=2".to_owned(),
        "-Clink-arg=--btf".to_owned(),
        "-Ctarget-cpu=v3".to_owned(),
    ]
    .join("\x1f");
    // One target directory for every build of the workspace (check,
    // debug, release, the fuzz targets': each runs this script with its own
    // OUT_DIR): the eBPF object, built once, is reused by the others.
    let target_dir = root.join("target/ebpf-build");
    let output = Command::new("rustup")
        .args(["run", "nightly", "cargo", "build", "--package", "pktd-ebpf"])
        .args(["--bins", "--release", "--target", "bpfel-unknown-none"])
        .args(["-Z", "build-std=core", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&ebpf_dir)
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags)
        .env_remove("RUSTC")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("RUSTFLAGS")
        .output()
        .context(
            "running `rustup run nightly cargo build` for pktd-ebpf (run `cargo xtask bootstrap`)",
        )?;
    if !output.status.success() {
        for line in String::from_utf8_lossy(&output.stderr).lines() {
            println!("cargo:warning={line}");
        }
        bail!(
            "building pktd-ebpf failed ({}); `cargo xtask bootstrap` installs the nightly rust-src and bpf-linker it needs",
            output.status
        );
    }
    copy(
        &target_dir.join("bpfel-unknown-none/release/pktd-ebpf"),
        &out_dir.join("pktd-ebpf"),
    )
}

fn copy(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}
