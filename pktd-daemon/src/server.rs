//! The listener: accepts clients on the Unix socket, one task per
//! connection, until shutdown; then waits for every connection and
//! recording to end and detaches everything.

use std::{sync::Arc, time::Duration};

use tokio::net::UnixListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    capture::{Engine, HookChoice, Registry},
    connection::{self, Context},
    policy::PolicyStore,
    recording::Recordings,
    state::State,
    sync::blocking,
};

/// Most connections served at once; further clients wait in the backlog.
const MAX_CONNECTIONS: usize = 256;

/// Settings of the daemon that are not policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// How filters run in the kernel.
    pub engine: Engine,
    /// Where the kernel program is attached.
    pub hook: HookChoice,
}

/// Serves clients on `listener` under `policy` until `shutdown` is
/// cancelled; then ends every session with a reason, waits for them, and
/// detaches every program.
pub async fn run(
    listener: UnixListener,
    policy: Arc<PolicyStore>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    run_with(listener, policy, shutdown, Options::default()).await
}

/// [`run`] with non-default [`Options`].
pub async fn run_with(
    listener: UnixListener,
    policy: Arc<PolicyStore>,
    shutdown: CancellationToken,
    options: Options,
) -> std::io::Result<()> {
    let registry = Registry::new(options.engine, options.hook);
    let context = Arc::new(Context {
        state: State::new(policy, registry.clone()),
        recordings: Arc::new(Recordings::default()),
        shutdown: shutdown.clone(),
    });
    let connections = TaskTracker::new();
    accept(&listener, &context, &connections, &shutdown).await;
    connections.close();
    connections.wait().await;
    // Recordings end on the shutdown too: files closed at a whole packet.
    context.recordings.wait().await;
    blocking(move || registry.clear()).await;
    tracing::info!("all sessions ended, nothing attached");
    Ok(())
}

/// The accept loop: at most [`MAX_CONNECTIONS`] served at once, backing off
/// when accepting fails (out of fds and the like).
async fn accept(
    listener: &UnixListener,
    context: &Arc<Context>,
    connections: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return,
            permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                let context = context.clone();
                connections.spawn(async move {
                    connection::serve(stream, context).await;
                    drop(permit);
                });
            }
            Err(err) => {
                tracing::warn!(%err, "accept failed; backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
