//! `pktd`: parses flags, sets up logging, binds the socket, runs the daemon.

use std::{
    os::unix::fs::{FileTypeExt, PermissionsExt},
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use pktd_daemon::{PolicyStore, capture::Attachment, policy::Policy};
use tokio::signal::unix::{SignalKind, signal};
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
    engine: pktd_daemon::capture::Engine,
    /// Where to attach: `auto` (XDP while every session on an interface
    /// wants received packets only and its driver runs XDP on its own
    /// receive buffers, which veth does not; TC otherwise, moving there
    /// when a session wants sent packets), `tc`, or `xdp` (sessions
    /// wanting sent packets are refused).
    #[arg(long, default_value = "auto")]
    hook: pktd_daemon::capture::HookChoice,
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
        return stats(&args.socket, interval, count, csv.as_deref()).await;
    }
    let policy = load_policy(args.policy.as_deref())?;
    // Proves the embedded program passes this kernel's verifier before
    // anything is served.
    drop(Attachment::detached().context("loading the kernel program")?);
    if args.check {
        println!("kernel program and policy OK");
        return Ok(());
    }
    let listener = bind(&args.socket)?;
    let store = PolicyStore::new(policy);
    let shutdown = CancellationToken::new();
    tokio::spawn(handle_signals(
        store.clone(),
        args.policy.clone(),
        shutdown.clone(),
    ));
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

/// SIGHUP reloads the policy (a bad file keeps the old one); SIGINT and
/// SIGTERM shut down.
async fn handle_signals(
    store: std::sync::Arc<PolicyStore>,
    path: Option<PathBuf>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = hangup.recv() => match load_policy(path.as_deref()) {
                Ok(policy) => {
                    store.replace(policy);
                    tracing::info!("policy reloaded");
                }
                Err(err) => tracing::error!("policy reload failed, keeping the old policy: {err:#}"),
            },
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    tracing::info!("shutting down");
    shutdown.cancel();
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

/// `pktd stats`: asks the running daemon for its counters every
/// `interval` and prints the rates.
async fn stats(
    socket: &Path,
    interval: f64,
    count: Option<u64>,
    csv: Option<&Path>,
) -> anyhow::Result<()> {
    use std::io::Write as _;

    use pktd_proto::{Connection, Hello, Reply, Request};
    if !(interval.is_finite() && interval >= 0.1) {
        bail!("--interval takes seconds, at least 0.1");
    }
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .with_context(|| format!("connecting to pktd at {}", socket.display()))?;
    let mut connection = Connection::new(stream);
    connection.write_hello(&Hello::new("pktd stats")).await?;
    let mut csv_file = match csv {
        Some(path) => {
            let is_new = !path.exists();
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?;
            if is_new {
                file.write_all(pktd_daemon::perfstats::CSV_HEADER.as_bytes())?;
            }
            Some(file)
        }
        None => None,
    };
    let mut previous = None;
    let mut reports = 0;
    let mut ticker = tokio::time::interval(std::time::Duration::from_secs_f64(interval));
    loop {
        ticker.tick().await;
        connection.write_request(&Request::DaemonStats).await?;
        let snapshot = loop {
            match connection.read_reply().await? {
                Some(Reply::DaemonStats(snapshot)) => break snapshot,
                Some(Reply::HelloAck { .. }) => continue,
                Some(Reply::Error { message, .. }) => bail!("pktd: {message}"),
                other => bail!("unexpected reply from pktd: {other:?}"),
            }
        };
        if let Some(before) = &previous {
            let (interfaces, sessions) = pktd_daemon::perfstats::rates(before, &snapshot);
            println!("{}", pktd_daemon::perfstats::table(&interfaces, &sessions));
            if let Some(file) = csv_file.as_mut() {
                file.write_all(
                    pktd_daemon::perfstats::csv(snapshot.time_ns, &interfaces, &sessions)
                        .as_bytes(),
                )?;
                file.flush()?;
            }
            reports += 1;
            if count.is_some_and(|count| reports >= count) {
                return Ok(());
            }
        }
        previous = Some(snapshot);
    }
}
