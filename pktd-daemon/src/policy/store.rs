//! The policy in force, replaced on SIGHUP; sessions subscribe to its
//! changes.

use std::sync::{Arc, RwLock};

use tokio::sync::watch;

use super::principals::Policy;
use crate::sync::{read, write};

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
        read(&self.current).clone()
    }

    /// Replaces the policy; every session re-checks itself against it.
    pub fn replace(&self, policy: Policy) {
        // The generation moves under the write lock, so a reader holding
        // the read lock sees a policy and its own generation.
        let mut current = write(&self.current);
        *current = Arc::new(policy);
        self.changed.send_modify(|generation| *generation += 1);
    }

    /// Notified on every replacement.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// The policy in force and its generation, read together.
    pub fn current_with_generation(&self) -> (Arc<Policy>, u64) {
        let current = read(&self.current);
        (current.clone(), *self.changed.borrow())
    }

    /// How many times the policy was replaced.
    pub fn generation(&self) -> u64 {
        *self.changed.borrow()
    }
}
