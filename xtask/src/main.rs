//! pktd's developer commands. Each one that builds bootstraps the machine
//! first (Debian packages, rustup toolchains, bpf-linker, bpffs), so a fresh
//! clone on a fresh Debian 12 machine needs nothing but `cargo xtask test`.

mod bootstrap;
mod files;
mod fuzz;
mod install;
mod layout;
mod package;
mod process;
mod run;
mod test;

use std::{ffi::OsString, path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "pktd's developer commands", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Install whatever is missing: Debian packages, rustup toolchains and
    /// components, bpf-linker 0.13; mount bpffs. Prints nothing if all is there.
    Bootstrap,
    /// Bootstrap, build the workspace in release mode and run pktd with ARGS.
    Run {
        /// Arguments for pktd (put them after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Bootstrap, then (as root) fmt, clippy (host and eBPF) and every test.
    Test {
        /// Extra arguments for `cargo test` (put them after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Bootstrap, then run the kernel program's benchmark (pktd-perf) with ARGS.
    Perf {
        /// Arguments for pktd-perf (put them after `--`).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<OsString>,
    },
    /// Bootstrap, install cargo-fuzz if missing, then run the fuzz targets
    /// of fuzz/ (as root: `translator` loads eBPF), each for a while, and
    /// report executions, corpus and crashes; a crash fails.
    Fuzz {
        /// How long to run each target.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// cargo-fuzz's sanitizer: address (the default) also catches
        /// memory errors in unsafe code; none builds in half the time.
        #[arg(long, default_value = "address")]
        sanitizer: String,
        /// Run `cargo xtask test`'s smoke pass instead (a fixed number of
        /// inputs per target, seed 1, from the seeds alone); --seconds is
        /// ignored.
        #[arg(long)]
        smoke: bool,
        /// Targets to run (default: all of them): frames, policy,
        /// validator, translator, patterns.
        targets: Vec<String>,
    },
    /// Bootstrap, build in release mode and install pktd, pktcap, libwire's
    /// C library, header and pkg-config file, and pktd-extcap in
    /// Wireshark's extcap folder.
    Install {
        /// Where: bin/, sbin/, lib/, include/ and share/ under it.
        #[arg(long, default_value = "/usr/local")]
        prefix: PathBuf,
        /// Wireshark's extcap folder (default: Debian's for /usr, else
        /// PREFIX/lib/wireshark/extcap).
        #[arg(long)]
        extcap_dir: Option<PathBuf>,
    },
    /// Build a Debian package (.deb) of pktd: the daemon and its systemd
    /// units, pktcap, pktd-extcap, libwire (library, header, pkg-config),
    /// man pages, completions, a default policy and the `pktd` group.
    Package {
        /// Cargo profile to package (`release`, or `dev` for a quick test).
        #[arg(long, default_value = "release")]
        profile: String,
        /// Package what is built already instead of building first.
        #[arg(long)]
        no_build: bool,
        /// Leave the archive uncompressed (quicker; for tests).
        #[arg(long)]
        uncompressed: bool,
        /// Where to put the .deb (default: target/package).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The longest files and functions and the import circles between
    /// modules, read from the source alone (no bootstrap, no build), to plan
    /// and check restructurings.
    Layout {
        /// Crate directories (e.g. pktd-daemon) or source directories; by
        /// default every workspace member's src but xtask's and tests'.
        dirs: Vec<PathBuf>,
        /// Leave test code out: `mod tests` and other #[cfg(test)] items,
        /// #[test] functions, files named tests.rs or under a tests/ directory.
        #[arg(long)]
        no_tests: bool,
        /// Exit non-zero if any two modules of a crate (top-level, or one
        /// level deeper) import each other, directly or through others.
        #[arg(long)]
        deny_cycles: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Bootstrap => bootstrap::bootstrap(),
        Command::Run { args } => run::run(&args),
        Command::Test { args } => test::test(&args),
        Command::Perf { args } => run::perf(&args),
        Command::Fuzz {
            seconds,
            sanitizer,
            smoke,
            targets,
        } => {
            let length = if smoke {
                fuzz::Length::Smoke
            } else {
                fuzz::Length::Seconds(seconds)
            };
            fuzz::fuzz(length, &sanitizer, &targets)
        }
        Command::Layout {
            dirs,
            no_tests,
            deny_cycles,
        } => layout::layout(&dirs, no_tests, deny_cycles),
        Command::Install { prefix, extcap_dir } => install::install(&prefix, extcap_dir),
        Command::Package {
            profile,
            no_build,
            uncompressed,
            out,
        } => package::package(&profile, !no_build, !uncompressed, out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            // A failed step exits with its own code, so CI and scripts see
            // e.g. cargo's 101 rather than a generic 1.
            let code = error
                .downcast_ref::<process::Failed>()
                .and_then(|failed| failed.code)
                .and_then(|code| u8::try_from(code).ok())
                .filter(|&code| code != 0)
                .unwrap_or(1);
            ExitCode::from(code)
        }
    }
}
