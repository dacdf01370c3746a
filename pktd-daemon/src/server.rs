//! The listener: accepts clients on the Unix socket, one task per
//! connection, until shutdown; then waits for every connection and
//! recording to end and detaches everything.

use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::Duration,
};

use pktd_proto::ErrorCode;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    capture::{Engine, HookChoice, Registry},
    compiler::{self, Compiler},
    connection::{self, ConnectionLimits, Context, Refusal},
    policy::Peer,
    policy::PolicyStore,
    recording::{Journal, Recordings},
    scrape::http::MetricsOptions,
    state::State,
    sync::{blocking, lock},
};

/// Settings of the daemon that are not policy.
#[derive(Clone, Debug)]
pub struct Options {
    /// How filters run in the kernel.
    pub engine: Engine,
    /// Where the kernel program is attached.
    pub hook: HookChoice,
    /// The binary run as `BINARY compile-helper` to compile clients'
    /// expressions (default: this process's own executable).
    pub compile_helper: Option<PathBuf>,
    /// How long a compile may take before its helper is killed.
    pub compile_deadline: Duration,
    /// Limits on connections.
    pub connections: ConnectionLimits,
    /// Serve the metrics over HTTP.
    pub metrics: Option<MetricsOptions>,
    /// Keep running recordings here, to resume them at the next start
    /// (none: they end with the daemon).
    pub state_directory: Option<PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            engine: Engine::default(),
            hook: HookChoice::default(),
            compile_helper: None,
            compile_deadline: compiler::DEFAULT_DEADLINE,
            connections: ConnectionLimits::default(),
            metrics: None,
            state_directory: None,
        }
    }
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
    let helper = match options.compile_helper {
        Some(helper) => helper,
        None => std::env::current_exe()?,
    };
    let compiler = Compiler::new(helper, options.compile_deadline);
    let journal = match options.state_directory {
        Some(path) => Some(
            blocking(move || Journal::open(&path))
                .await
                .map_err(std::io::Error::other)?,
        ),
        None => None,
    };
    let context = Arc::new(Context {
        state: State::new(policy, registry.clone(), compiler),
        recordings: Arc::new(Recordings::new(journal)),
        shutdown: shutdown.clone(),
        limits: options.connections,
    });
    if let Some(metrics) = &options.metrics {
        let http = TcpListener::from_std(metrics.listener.try_clone()?)?;
        tracing::info!(addr = %http.local_addr()?, "serving metrics");
        tokio::spawn(crate::scrape::http::serve(
            http,
            metrics.token.clone(),
            context.state.clone(),
            shutdown.clone(),
        ));
    }
    let connections = TaskTracker::new();
    // The recordings of the run before go on, beside the clients: their
    // repairs read files their users can make long.
    let journaled = connection::journaled(&context).await;
    connections.spawn({
        let context = context.clone();
        async move { connection::resume_recordings(&context, journaled).await }
    });
    accept(&listener, &context, &connections, &shutdown).await;
    connections.close();
    connections.wait().await;
    // Recordings end on the shutdown too: files closed at a whole packet.
    context.recordings.wait().await;
    blocking(move || registry.clear()).await;
    tracing::info!("all sessions ended, nothing attached");
    Ok(())
}

/// The accept loop. It never waits for anything but the next client: a
/// client over the limits is told so and closed on a task of its own, and
/// root is always served.
async fn accept(
    listener: &UnixListener,
    context: &Arc<Context>,
    connections: &TaskTracker,
    shutdown: &CancellationToken,
) {
    let admission = Arc::new(Admission::new(context.limits));
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                // Out of fds and the like: wait, then try again.
                tracing::warn!(%err, "accept failed; backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        backoff = Duration::from_millis(10);
        let peer = match stream.peer_cred() {
            Ok(cred) => Peer {
                uid: cred.uid(),
                gid: cred.gid(),
                pid: cred.pid().unwrap_or(0),
            },
            Err(err) => {
                tracing::warn!(%err, "no peer credentials; dropping the connection");
                continue;
            }
        };
        match admission.admit(peer.uid) {
            Ok(ticket) => {
                let context = context.clone();
                let counted = context.state.metrics().connection();
                connections.spawn(async move {
                    connection::serve(stream, peer, context).await;
                    drop(ticket);
                    drop(counted);
                });
            }
            Err(refusal) => {
                tracing::debug!(uid = peer.uid, %refusal, "connection refused");
                context.state.metrics().refused(ErrorCode::from(&refusal));
                connections.spawn(connection::refuse(stream, refusal));
            }
        }
    }
}

/// Connections counted per uid and in all, against [`ConnectionLimits`].
struct Admission {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: u32,
    per_uid: HashMap<u32, u32>,
}

impl Admission {
    fn new(limits: ConnectionLimits) -> Self {
        Self {
            limits,
            counts: Mutex::default(),
        }
    }

    /// Counts a connection of `uid`, or says which limit it is over. Root
    /// is counted but never refused.
    fn admit(self: &Arc<Self>, uid: u32) -> Result<AdmissionTicket, Refusal> {
        let mut counts = lock(&self.counts);
        let own = counts.per_uid.get(&uid).copied().unwrap_or(0);
        if uid != 0 {
            if own >= self.limits.per_uid {
                return Err(Refusal::UserConnections {
                    uid,
                    limit: self.limits.per_uid,
                });
            }
            let others = counts.total - counts.per_uid.get(&0).copied().unwrap_or(0);
            if others >= self.limits.total {
                return Err(Refusal::Connections {
                    limit: self.limits.total,
                });
            }
        }
        counts.total += 1;
        counts.per_uid.insert(uid, own + 1);
        Ok(AdmissionTicket {
            admission: self.clone(),
            uid,
        })
    }
}

/// A connection counted until dropped.
struct AdmissionTicket {
    admission: Arc<Admission>,
    uid: u32,
}

impl Drop for AdmissionTicket {
    fn drop(&mut self) {
        let mut counts = lock(&self.admission.counts);
        counts.total -= 1;
        if let Some(count) = counts.per_uid.get_mut(&self.uid) {
            *count -= 1;
            if *count == 0 {
                counts.per_uid.remove(&self.uid);
            }
        }
    }
}
