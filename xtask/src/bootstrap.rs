//! Installs what pktd's build and tests need, idempotently: prints nothing
//! when everything is present and one line per thing it installs.

use std::{fs, path::PathBuf, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::process::{self, command, is_root, probe, run_captured};

/// LLVM 22 (with Polly, zstd and zlib, which llvm-sys links) for building
/// bpf-linker; libpcap for compiling filters; iproute2, tcpdump and ethtool
/// for the tests' namespaces, veth pairs and offload settings; tshark
/// (with capinfos) to read pcapng options back; gcc and pkg-config to
/// build C against libwire; gnuplot for
/// `cargo xtask perf`'s chart; systemd's tools to check the units and
/// activate a socket; zsh and fish to check their completions; lintian
/// and dpkg-dev for `cargo xtask package`; man-db to render man pages;
/// Prometheus's Python client, whose parser reads the metrics back;
/// containerd (its CRI plugin), runc and the CNI plugins, to run real pods
/// whose namespaces pktd finds through the CRI socket.
const DEBIAN_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "libpcap-dev",
    "iproute2",
    "tcpdump",
    "ethtool",
    "tshark",
    "gcc",
    "pkg-config",
    "gnuplot-nox",
    "systemd",
    "zsh",
    "fish",
    "lintian",
    "dpkg-dev",
    "man-db",
    "python3-prometheus-client",
    "python3-venv",
    "containerd",
    "runc",
    "containernetworking-plugins",
];

/// kubernetes-validate (PyPI), which checks the Kubernetes manifests
/// against the API's schemas offline, in a virtual environment under the
/// target directory.
const KUBERNETES_VALIDATE: &str = "kubernetes-validate==1.37.0";

/// (toolchain, components). Nightly builds the eBPF crate (`-Z build-std`
/// needs rust-src) and lints it; stable builds, formats and lints the rest.
const TOOLCHAINS: &[(&str, &[&str])] = &[
    ("stable", &["clippy", "rustfmt"]),
    ("nightly", &["rust-src", "clippy"]),
];

const BPF_LINKER_VERSION: &str = "0.13";
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";
const BPFFS: &str = "/sys/fs/bpf";

pub fn bootstrap() -> Result<()> {
    // Order matters: bpf-linker is built with stable against LLVM 22.
    debian_packages()?;
    rust_toolchains()?;
    bpf_linker()?;
    bpffs()?;
    kubernetes_validate()
}

/// Where `kubernetes-validate` is installed: `target/tools/kubernetes-validate`.
pub fn kubernetes_validate_dir() -> PathBuf {
    crate::run::target_dir().join("tools/kubernetes-validate")
}

fn kubernetes_validate() -> Result<()> {
    let venv = kubernetes_validate_dir();
    if venv.join("bin/kubernetes-validate").exists() {
        return Ok(());
    }
    say(&format!(
        "installing {KUBERNETES_VALIDATE} (PyPI) into {}",
        venv.display()
    ));
    // Debian's Python (with venv), whatever else comes first on PATH.
    run_captured(command("/usr/bin/python3").args(["-m", "venv"]).arg(&venv))?;
    run_captured(
        command(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(KUBERNETES_VALIDATE),
    )?;
    Ok(())
}

fn say(what: &str) {
    println!("xtask bootstrap: {what}");
}

fn debian_packages() -> Result<()> {
    let missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| !dpkg_installed(package))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing.join(" ");
    if !is_root() {
        bail!(
            "missing Debian packages: {list}\n\
             install them as root: apt-get install --no-install-recommends {list}"
        );
    }
    say(&format!("installing Debian packages: {list}"));
    let apt = |args: &[&str]| {
        let mut apt = command("apt-get");
        apt.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        apt
    };
    // A fresh machine (or container) may have no package lists at all.
    run_captured(&mut apt(&["update", "-q"]))?;
    run_captured(apt(&["install", "-y", "-q", "--no-install-recommends"]).args(&missing))?;
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    // dpkg still knows removed packages ("deinstall ok config-files"), so
    // the Status field must be checked; unknown ones make dpkg-query fail.
    probe(command("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_some_and(|status| status == "install ok installed")
}

fn rust_toolchains() -> Result<()> {
    let installed = run_captured(command("rustup").args(["toolchain", "list"]))
        .context("pktd needs a working rustup (https://rustup.rs)")?;
    let installed = String::from_utf8_lossy(&installed.stdout);
    for &(toolchain, components) in TOOLCHAINS {
        if !has_toolchain(&installed, toolchain) {
            say(&format!("installing the {toolchain} Rust toolchain"));
            // Without --no-self-update a fresh rustup may replace itself
            // (even with an older release) as a side effect.
            run_captured(command("rustup").args([
                "toolchain",
                "install",
                toolchain,
                "--profile",
                "minimal",
                "--no-self-update",
            ]))?;
        }
        let present = probe(command("rustup").args([
            "component",
            "list",
            "--toolchain",
            toolchain,
            "--installed",
        ]))
        .with_context(|| format!("listing the {toolchain} toolchain's components"))?;
        let missing: Vec<&str> = components
            .iter()
            .copied()
            .filter(|component| !has_component(&present, component))
            .collect();
        if !missing.is_empty() {
            say(&format!(
                "installing {} on the {toolchain} toolchain",
                missing.join(", ")
            ));
            run_captured(
                command("rustup")
                    .args(["component", "add", "--toolchain", toolchain])
                    .args(&missing),
            )?;
        }
    }
    Ok(())
}

/// `rustup toolchain list` prints e.g. "nightly-x86_64-unknown-linux-gnu
/// (active)". A dated nightly ("nightly-2025-01-01-...") does not answer to
/// `+nightly`, hence the digit check.
fn has_toolchain(list: &str, channel: &str) -> bool {
    list.lines().any(|line| {
        line.strip_prefix(channel)
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// Installed components are listed as "rust-src" or "clippy-<host triple>".
fn has_component(list: &str, component: &str) -> bool {
    list.lines().any(|line| {
        line == component
            || line
                .strip_prefix(component)
                .is_some_and(|rest| rest.starts_with('-'))
    })
}

fn bpf_linker() -> Result<()> {
    let override_root = process::install_root_override();
    // With the override only the copy under it counts; otherwise whatever
    // rustc will find, i.e. the first bpf-linker on the child PATH.
    let program = match &override_root {
        Some(root) => root.join("bin/bpf-linker"),
        None => PathBuf::from("bpf-linker"),
    };
    let version = || bpf_linker_version(command(&program));
    if version().is_some_and(|v| is_wanted_version(&v)) {
        return Ok(());
    }

    say(&format!(
        "installing bpf-linker {BPF_LINKER_VERSION} (cargo install; a minute or two)"
    ));
    let mut install = command("cargo");
    install
        .args(["+stable", "install", "bpf-linker"])
        .args(["--version", &format!("^{BPF_LINKER_VERSION}")])
        // The published lockfile pins versions known to build together.
        .arg("--locked")
        // Reinstall even if cargo's records say 0.13 is there: a copy that
        // no longer runs (e.g. its libLLVM.so went away) must be replaced.
        .arg("--force")
        // The default feature wants LLVM 23; link the LLVM 22 that apt
        // installed (llvm-22-dev) instead.
        .args(["--no-default-features", "--features", "llvm-22"])
        .env("LLVM_PREFIX", LLVM_PREFIX)
        // The repo's .cargo/config.toml (aliases, resolver fallback) is none
        // of bpf-linker's business.
        .current_dir(std::env::temp_dir());
    if let Some(root) = &override_root {
        install.arg("--root").arg(root);
    }
    run_captured(&mut install)?;

    match version() {
        Some(v) if is_wanted_version(&v) => Ok(()),
        found => bail!(
            "installed bpf-linker, but `{} --version` reports {found:?}, not {BPF_LINKER_VERSION}.x",
            program.display()
        ),
    }
}

/// The version from `bpf-linker --version` ("bpf-linker 0.13.0"), if it runs.
fn bpf_linker_version(mut bpf_linker: Command) -> Option<String> {
    let stdout = probe(bpf_linker.arg("--version"))?;
    stdout.split_whitespace().nth(1).map(str::to_owned)
}

fn is_wanted_version(version: &str) -> bool {
    version
        .strip_prefix(BPF_LINKER_VERSION)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

fn bpffs() -> Result<()> {
    let mounts = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    let mounted = mounts.lines().any(|line| {
        let mut fields = line.split_whitespace().skip(1);
        fields.next() == Some(BPFFS) && fields.next() == Some("bpf")
    });
    if mounted {
        return Ok(());
    }
    if !is_root() {
        bail!("{BPFFS} is not a bpf filesystem; as root run: mount -t bpf bpf {BPFFS}");
    }
    say(&format!("mounting bpffs at {BPFFS}"));
    run_captured(command("mount").args(["-t", "bpf", "bpf", BPFFS]))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toolchain_list() {
        let list = "stable-x86_64-unknown-linux-gnu (active, default)\n\
                    nightly-2025-01-01-x86_64-unknown-linux-gnu\n\
                    1.95.0-x86_64-unknown-linux-gnu\n";
        assert!(has_toolchain(list, "stable"));
        assert!(!has_toolchain(list, "nightly"));
        assert!(has_toolchain(
            "nightly-x86_64-unknown-linux-gnu\n",
            "nightly"
        ));
    }

    #[test]
    fn component_list() {
        let list = "clippy-x86_64-unknown-linux-gnu\nrust-src\nrust-std-x86_64-unknown-linux-gnu\n";
        assert!(has_component(list, "clippy"));
        assert!(has_component(list, "rust-src"));
        assert!(!has_component(list, "rustfmt"));
    }

    #[test]
    fn versions() {
        assert!(is_wanted_version("0.13.0"));
        assert!(is_wanted_version("0.13.12"));
        assert!(!is_wanted_version("0.130.0"));
        assert!(!is_wanted_version("0.12.2"));
    }
}
