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
    /// Unix socket clients connect to.
    #[arg(long, default_value = "/run/pktd/pktd.sock")]
    socket: PathBuf,
    /// Policy file (TOML). Without one, root may do everything and everyone
    /// else nothing. SIGHUP reloads it.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Load the kernel program and the policy, report, and exit.
    #[arg(long)]
    check: bool,
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
    tracing::info!(socket = %args.socket.display(), "pktd serving");
    pktd_daemon::run(listener, store, shutdown).await?;
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
