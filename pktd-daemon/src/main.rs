//! `pktd`: parses flags, sets up logging, binds the socket, handles
//! signals, runs the daemon.

use std::{
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::{Context as _, bail};
use clap::Parser;
use pktd_daemon::{
    PolicyStore,
    capture::{Attachment, Engine, Hook, HookChoice},
    policy::Policy,
};
use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(version, about = "pktd: packet capture and injection multiplexer")]
struct Args {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// Unix socket clients connect to.
    #[arg(long, global = true, default_value = "/run/pktd/pktd.sock")]
    socket: PathBuf,
    /// Policy file (TOML). Without one, root may do everything and everyone
    /// else nothing. SIGHUP reloads it.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Load the kernel program and the policy, report, and exit.
    #[arg(long)]
    check: bool,
    /// How filters run in the kernel: `shared` (native code, one decision
    /// program sharing the filters' common tests), `per-client` (native
    /// code, one program per client, at most 32) or `interpreter`. Filters
    /// the kernel refuses as native code are interpreted in any case.
    #[arg(long, default_value = "shared")]
    engine: Engine,
    /// Where to attach: `auto` (XDP while every session on an interface
    /// wants received packets only and its driver runs XDP on its own
    /// receive buffers, which veth does not; TC otherwise, moving there
    /// when a session wants sent packets), `tc`, or `xdp` (sessions
    /// wanting sent packets are refused).
    #[arg(long, default_value = "auto")]
    hook: HookChoice,
}

#[derive(clap::Subcommand)]
enum Subcommand {
    /// Performance statistics of the running daemon, every INTERVAL seconds:
    /// per interface packets/s, Mbit/s, bytes per packet, drop rate, SYN/s,
    /// SYN-ACK/s, sessions; per session delivered/s and dropped/s. Root sees
    /// everything, anyone else only their own sessions.
    Stats {
        /// Seconds between reports.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// Stop after this many reports (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
        /// Also append the rows as CSV to FILE.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Subcommand::Stats {
        interval,
        count,
        csv,
    }) = args.command
    {
        pktd_daemon::report::watch(&args.socket, interval, count, csv.as_deref()).await?;
        return Ok(());
    }
    let policy = load_policy(args.policy.as_deref())?;
    // Proves the embedded program passes this kernel's verifier before
    // anything is served.
    drop(Attachment::detached(args.engine, Hook::Tc).context("loading the kernel program")?);
    if args.check {
        println!("kernel program and policy OK");
        return Ok(());
    }
    let listener = bind(&args.socket)?;
    let store = PolicyStore::new(policy);
    let shutdown = CancellationToken::new();
    handle_signals(store.clone(), args.policy.clone(), shutdown.clone())?;
    tracing::info!(socket = %args.socket.display(), engine = %args.engine, hook = %args.hook, "pktd serving");
    let options = pktd_daemon::Options {
        engine: args.engine,
        hook: args.hook,
    };
    pktd_daemon::run_with(listener, store, shutdown, options).await?;
    let _ = std::fs::remove_file(&args.socket);
    Ok(())
}

fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    match path {
        None => Ok(Policy::default_policy()),
        Some(path) => Ok(Policy::from_file(path)?),
    }
}

/// Signals are handled on a thread of their own, which nothing the daemon
/// does can block: SIGHUP reloads the policy (a bad file keeps the old
/// one; the reload reads and compiles on this thread, off the runtime);
/// SIGTERM and SIGINT shut down, and a second one exits at once (the
/// kernel detaches programs whose links die with the process).
fn handle_signals(
    store: Arc<PolicyStore>,
    path: Option<PathBuf>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT]).context("handling signals")?;
    std::thread::Builder::new()
        .name("pktd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    SIGHUP => match load_policy(path.as_deref()) {
                        Ok(policy) => {
                            store.replace(policy);
                            tracing::info!("policy reloaded");
                        }
                        Err(err) => {
                            tracing::error!("policy reload failed, keeping the old policy: {err:#}")
                        }
                    },
                    _ if shutdown.is_cancelled() => {
                        tracing::warn!("second termination signal: exiting now");
                        std::process::exit(1);
                    }
                    _ => {
                        tracing::info!("shutting down");
                        shutdown.cancel();
                    }
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Binds the socket, replacing a stale socket file (never anything else),
/// open to every local user: the policy decides what each may do.
fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("removing the stale socket {}", path.display()))?,
        Ok(_) => bail!("{} exists and is not a socket", path.display()),
        Err(_) => {}
    }
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("binding {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(listener)
}
