//! The listener: accepts clients on the Unix socket, one session task per
//! connection, until shutdown.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::{net::UnixListener, sync::watch};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{policy::Policy, registry::Registry, session};

/// Most connections served at once; further clients wait in the backlog.
const MAX_CONNECTIONS: usize = 256;

/// The policy in force, replaceable while the daemon runs (SIGHUP).
pub struct PolicyStore {
    current: RwLock<Arc<Policy>>,
    changed: watch::Sender<u64>,
}

impl PolicyStore {
    /// A store holding `policy`.
    pub fn new(policy: Policy) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Arc::new(policy)),
            changed: watch::Sender::new(0),
        })
    }

    /// The policy in force.
    pub fn current(&self) -> Arc<Policy> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Replaces the policy; every session re-checks itself against it.
    pub fn replace(&self, policy: Policy) {
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(policy);
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Notified on every replacement.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// What every session shares.
pub(crate) struct Shared {
    pub policy: Arc<PolicyStore>,
    pub registry: Arc<Registry>,
    pub next_session_id: AtomicU64,
    /// Sessions per uid, for the policy's max_sessions.
    pub sessions_per_uid: std::sync::Mutex<std::collections::HashMap<u32, u32>>,
    /// Open sessions by id, for the performance statistics.
    pub sessions: std::sync::Mutex<std::collections::HashMap<u64, SessionInfo>>,
}

/// What the performance statistics show of a session.
pub(crate) struct SessionInfo {
    pub uid: u32,
    pub pid: i32,
    pub netns: String,
    pub interface: String,
    pub slot: crate::registry::SlotRef,
}

impl Shared {
    pub fn new_session_id(&self) -> u64 {
        self.next_session_id.fetch_add(1, Ordering::Relaxed)
    }
}

/// Serves clients on `listener` until `shutdown` is cancelled; then ends
/// every session with a reason, waits for them, and detaches every program.
pub async fn run(
    listener: UnixListener,
    policy: Arc<PolicyStore>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let registry = Registry::new();
    let shared = Arc::new(Shared {
        policy,
        registry: registry.clone(),
        next_session_id: AtomicU64::new(1),
        sessions_per_uid: Default::default(),
        sessions: Default::default(),
    });
    let tracker = TaskTracker::new();
    let limit = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let mut backoff = Duration::from_millis(10);
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = limit.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = Duration::from_millis(10);
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tracker.spawn(async move {
                    session::serve(stream, shared, shutdown).await;
                    drop(permit);
                });
            }
            Err(err) => {
                // Out of fds and the like: wait, then try again.
                tracing::warn!(%err, "accept failed; backing off {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    tracker.close();
    tracker.wait().await;
    registry.clear();
    tracing::info!("all sessions ended, nothing attached");
    Ok(())
}
