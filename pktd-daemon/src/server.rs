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

use crate::{
    capture::{Engine, HookChoice},
    policy::Policy,
    registry::Registry,
    session,
};

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

    /// How many times the policy was replaced.
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
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
    /// Recordings, running or recently ended.
    pub recordings: crate::recording::Recordings,
    /// Injectors by (uid, netns, interface) and the policy generation they
    /// were made under: one per user, so that the rate limit holds across
    /// connections; a policy reload makes new ones.
    pub injectors: std::sync::Mutex<InjectorCache>,
}

/// See [`Shared::injectors`].
pub(crate) type InjectorCache =
    std::collections::HashMap<(u32, String, String), (u64, crate::inject::Injector)>;

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

    /// Counts a new session (capture or recording) of `uid` against its
    /// principal's max_sessions; false when it has that many already.
    pub fn reserve_session(&self, uid: u32, max_sessions: u32) -> Result<(), u32> {
        let mut per_uid = self
            .sessions_per_uid
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = per_uid.entry(uid).or_default();
        if *count >= max_sessions {
            return Err(*count);
        }
        *count += 1;
        Ok(())
    }

    /// Undoes one `reserve_session`.
    pub fn release_session(&self, uid: u32) {
        let mut per_uid = self
            .sessions_per_uid
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = per_uid.get_mut(&uid) {
            *count = count.saturating_sub(1);
        }
    }
}

/// Settings of the daemon that are not policy.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// How filters run in the kernel.
    pub engine: Engine,
    /// Where the kernel program is attached.
    pub hook: HookChoice,
}

/// Serves clients on `listener` until `shutdown` is cancelled; then ends
/// every session with a reason, waits for them, and detaches every program.
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
    let shared = Arc::new(Shared {
        policy,
        registry: registry.clone(),
        next_session_id: AtomicU64::new(1),
        sessions_per_uid: Default::default(),
        sessions: Default::default(),
        recordings: Default::default(),
        injectors: Default::default(),
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
    // Recordings end too: files closed at a whole record.
    let recordings = shared.clone();
    let _ = tokio::task::spawn_blocking(move || recordings.recordings.stop_all()).await;
    registry.clear();
    tracing::info!("all sessions ended, nothing attached");
    Ok(())
}
