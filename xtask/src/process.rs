//! Child processes: every one gets the same PATH (with cargo's bin directory
//! first), and a failure keeps the child's exit code for xtask's own.

use std::{
    env,
    ffi::{OsStr, OsString},
    fmt, fs, io,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::OnceLock,
};

use anyhow::{Context as _, Result};

/// Test-only override: look for and `cargo install` bpf-linker under this
/// root instead of cargo's default (~/.cargo), so the install path can be
/// exercised on a machine that already has it.
pub const INSTALL_ROOT_VAR: &str = "PKTD_XTASK_INSTALL_ROOT";

/// The workspace root. Taken from xtask's manifest directory at compile time,
/// so every command works from any directory inside the repository.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// Cargo's home: $CARGO_HOME, else ~/.cargo (what rustup and cargo use).
fn cargo_home() -> PathBuf {
    match env::var_os("CARGO_HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home),
        _ => PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".cargo"),
    }
}

/// Where `cargo install` puts bpf-linker, if overridden for testing.
pub fn install_root_override() -> Option<PathBuf> {
    env::var_os(INSTALL_ROOT_VAR)
        .filter(|root| !root.is_empty())
        .map(PathBuf::from)
}

/// The PATH for every child. Cargo's bin directory goes first: CI shells
/// may not have sourced ~/.cargo/env, pktd-daemon's build script calls
/// `rustup`, rustc finds `bpf-linker` on PATH, and a freshly installed
/// bpf-linker must win over any other copy.
fn child_path() -> &'static OsStr {
    static PATH: OnceLock<OsString> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut first: Vec<PathBuf> = install_root_override()
            .map(|root| root.join("bin"))
            .into_iter()
            .collect();
        first.push(cargo_home().join("bin"));
        let inherited = env::var_os("PATH").unwrap_or_default();
        let rest = env::split_paths(&inherited).filter(|dir| !first.contains(dir));
        env::join_paths(first.iter().cloned().chain(rest)).expect("PATH entries never contain ':'")
    })
}

/// A command whose program is looked up, and which runs, with the child PATH.
pub fn command(program: impl AsRef<OsStr>) -> Command {
    let mut command = Command::new(program);
    command.env("PATH", child_path());
    command
}

/// Whether xtask runs with effective uid 0 (from /proc, to stay std-only).
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let uids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
            // Fields: real, effective, saved, filesystem.
            uids.split_whitespace().nth(1).map(|euid| euid == "0")
        })
        .unwrap_or(false)
}

/// A child that ran and failed; `code` is its exit code (None if killed).
#[derive(Debug)]
pub struct Failed {
    pub command: String,
    pub code: Option<i32>,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "`{}` failed with exit code {code}", self.command),
            None => write!(f, "`{}` was killed by a signal", self.command),
        }
    }
}

impl std::error::Error for Failed {}

/// The command line as a user would type it, for headers and errors.
pub fn display(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

/// Run with inherited stdio; a non-zero exit is a [`Failed`] error.
pub fn run(command: &mut Command) -> Result<()> {
    let status = command
        .status()
        .with_context(|| format!("starting `{}`", display(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(Failed {
            command: display(command),
            code: status.code(),
        }
        .into())
    }
}

/// Run with output captured (installers are noisy and their output matters
/// only when they fail, in which case it is replayed on stderr) and no stdin
/// (CI has none, and nothing here may prompt).
pub fn run_captured(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{}`", display(command)))?;
    if output.status.success() {
        return Ok(output);
    }
    let mut stderr = io::stderr().lock();
    let _ = io::Write::write_all(&mut stderr, &output.stdout);
    let _ = io::Write::write_all(&mut stderr, &output.stderr);
    Err(Failed {
        command: display(command),
        code: output.status.code(),
    }
    .into())
}

/// Run for a yes/no probe: Some(stdout) if it ran and succeeded, else None
/// (a missing program is just a "no").
pub fn probe(command: &mut Command) -> Option<String> {
    let output = command.stdin(Stdio::null()).output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}
