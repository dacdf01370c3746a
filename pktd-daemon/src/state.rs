//! The daemon's shared state, behind methods: the policy in force, the
//! attachments, the compiler, the running sessions (counted per uid for
//! `max_sessions`), and the injection senders.
//!
//! Its locks are `std` mutexes held for a few map operations and never
//! across an `.await` or a blocking call (mini-redis's `db.rs` explains the
//! choice); anything slow happens in the subsystems, on blocking threads.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use crate::{
    capture::{Registry, SlotCounters},
    compiler::Compiler,
    inject::Senders,
    policy::{PolicyStore, Scope},
    sync::lock,
};

/// What the performance statistics show of a running session.
#[derive(Clone)]
pub struct SessionInfo {
    /// The client's uid.
    pub uid: u32,
    /// The client's pid.
    pub pid: i32,
    /// Where it captures, as named.
    pub netns: String,
    /// Where it captures.
    pub interface: String,
    /// Its counters, read without any lock.
    pub counters: Arc<SlotCounters>,
    /// A policy filter hides part of the traffic from it.
    pub policy_filtered: bool,
}

#[derive(Default)]
struct Sessions {
    /// Sessions (captures and recordings) per uid, for max_sessions.
    per_uid: HashMap<u32, u32>,
    /// Running sessions by id.
    running: HashMap<u64, SessionInfo>,
}

/// What every connection, session and recording shares.
pub struct State {
    policy: Arc<PolicyStore>,
    registry: Arc<Registry>,
    compiler: Arc<Compiler>,
    sessions: Mutex<Sessions>,
    senders: Senders,
    next_id: AtomicU64,
}

impl State {
    /// The state of a daemon serving under `policy` with `registry` and
    /// `compiler`.
    pub fn new(
        policy: Arc<PolicyStore>,
        registry: Arc<Registry>,
        compiler: Arc<Compiler>,
    ) -> Arc<Self> {
        Arc::new(Self {
            policy,
            registry,
            compiler,
            sessions: Mutex::default(),
            senders: Senders::default(),
            next_id: AtomicU64::new(1),
        })
    }

    /// The policy in force.
    pub fn policy(&self) -> &Arc<PolicyStore> {
        &self.policy
    }

    /// The attachments.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The compiler of clients' expressions.
    pub fn compiler(&self) -> &Compiler {
        &self.compiler
    }

    /// The injection senders.
    pub fn senders(&self) -> &Senders {
        &self.senders
    }

    /// Counts a new session of `uid` against its principal's
    /// `max_sessions` and gives it an id; `Err` with the count it has when
    /// that is the most.
    pub fn reserve(&self, uid: u32, max_sessions: u32) -> Result<u64, u32> {
        let mut sessions = lock(&self.sessions);
        let count = sessions.per_uid.entry(uid).or_default();
        if *count >= max_sessions {
            return Err(*count);
        }
        *count += 1;
        Ok(self.next_id.fetch_add(1, Ordering::Relaxed))
    }

    /// Shows a reserved session in the statistics.
    pub fn register(&self, id: u64, info: SessionInfo) {
        lock(&self.sessions).running.insert(id, info);
    }

    /// Takes a session out of the statistics (before its slot is given
    /// back, so that the slot's next occupant is never shown under its id).
    pub fn unregister(&self, id: u64) {
        lock(&self.sessions).running.remove(&id);
    }

    /// Undoes [`State::reserve`] and [`State::register`].
    pub fn release(&self, id: u64, uid: u32) {
        let mut sessions = lock(&self.sessions);
        sessions.running.remove(&id);
        if let Some(count) = sessions.per_uid.get_mut(&uid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                sessions.per_uid.remove(&uid);
            }
        }
    }

    /// The running sessions in `scope`, by id.
    pub fn sessions(&self, scope: Scope) -> Vec<(u64, SessionInfo)> {
        let mut sessions: Vec<_> = lock(&self.sessions)
            .running
            .iter()
            .filter(|(_, info)| scope.covers(info.uid))
            .map(|(id, info)| (*id, info.clone()))
            .collect();
        sessions.sort_by_key(|(id, _)| *id);
        sessions
    }
}
