//! What every connection shares, and the limits that protect the daemon
//! from its clients.

use std::{sync::Arc, time::Duration};

use tokio_util::sync::CancellationToken;

use crate::{recording::Recordings, state::State};

/// What every connection shares.
pub struct Context {
    /// The daemon's state.
    pub state: Arc<State>,
    /// The recordings.
    pub recordings: Arc<Recordings>,
    /// The daemon's shutdown.
    pub shutdown: CancellationToken,
    /// Limits on connections.
    pub limits: ConnectionLimits,
}

/// Limits on connections. They are not policy: they keep any local user,
/// with a principal or without, from tying the daemon up. Root is never
/// refused a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one uid may have at once.
    pub per_uid: u32,
    /// Connections all uids but root may have at once; more than any one
    /// uid may have, so that no uid can take them all.
    pub total: u32,
    /// How long a client may take to say hello.
    pub hello: Duration,
    /// How long a connection without a capture may go without a request.
    pub idle: Duration,
    /// How long writing one reply may take; a client that reads no faster
    /// is dropped (its ring counts what it missed meanwhile).
    pub write: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            per_uid: 32,
            total: 256,
            hello: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            write: Duration::from_secs(5),
        }
    }
}
