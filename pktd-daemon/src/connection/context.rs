//! What every connection shares.

use std::sync::Arc;

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
}
