//! `pktd`: parses flags, sets up logging, runs the daemon.

use clap::Parser;
use pktd_daemon::capture::Attachment;

#[derive(Parser)]
#[command(version, about = "pktd: packet capture and injection multiplexer")]
struct Args {
    /// Load the kernel program, report, and exit (a health check).
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
    // Proves the embedded program passes this kernel's verifier before
    // anything is served.
    drop(Attachment::detached()?);
    tracing::info!("kernel program loads and passes the verifier");
    if args.check {
        return Ok(());
    }
    tracing::info!("pktd running; SIGINT or SIGTERM stops it");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("pktd stopped");
    Ok(())
}
