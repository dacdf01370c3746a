//! The daemon's shared state, behind methods: the policy in force, the
//! attachments, the compiler, the running sessions (counted per uid for
//! `max_sessions`, their filters' instructions summed per uid for
//! `max_filter_insns`), the injection senders, and the gate of verifier
//! loads.
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
    loads::Loads,
    metrics::Metrics,
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
    /// The principal the policy matched it to.
    pub principal: String,
    /// The attachment's namespace identity (device, inode).
    pub netns_key: (u64, u64),
    /// Its counters, read without any lock.
    pub counters: Arc<SlotCounters>,
    /// A policy filter hides part of the traffic from it.
    pub policy_filtered: bool,
}

#[derive(Default)]
struct Sessions {
    /// Sessions (captures and recordings) per uid, for max_sessions.
    per_uid: HashMap<u32, u32>,
    /// Instructions of each session's own filter, by session id.
    filter_insns: HashMap<u64, u32>,
    /// Their sum per uid, for max_filter_insns.
    filter_insns_per_uid: HashMap<u32, u64>,
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
    loads: Loads,
    /// Interface listings enter namespaces on the blocking pool: the same
    /// kind of gate, one per uid and one per CPU in all.
    listings: Loads,
    next_id: AtomicU64,
    /// What is counted as it happens, for `--metrics`.
    metrics: Arc<Metrics>,
    /// Map ids of the rings handed to each uid's clients, alive or not:
    /// a client keeps its ring's memory alive for as long as it keeps the
    /// descriptor, session or no session. A lock per uid, taken on a
    /// blocking thread (checking the ids takes system calls).
    handed_rings: Mutex<HashMap<u32, Arc<Mutex<Vec<u32>>>>>,
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
            loads: Loads::per_cpu(),
            listings: Loads::per_cpu(),
            next_id: AtomicU64::new(1),
            metrics: Arc::default(),
            handed_rings: Mutex::default(),
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

    /// The gate of verifier loads.
    pub fn loads(&self) -> &Loads {
        &self.loads
    }

    /// The metrics counted as things happen.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The gate of interface listings.
    pub fn listings(&self) -> &Loads {
        &self.listings
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

    /// Makes every id given from now on at least `first`: ids of sessions
    /// of an earlier run that the journal names are never given again.
    pub fn skip_ids_below(&self, first: u64) {
        self.next_id.fetch_max(first, Ordering::Relaxed);
    }

    /// Shows a reserved session in the statistics.
    pub fn register(&self, id: u64, info: SessionInfo) {
        let running = {
            let mut sessions = lock(&self.sessions);
            sessions.running.insert(id, info);
            sessions.running.len()
        };
        self.metrics.session_opened(running);
    }

    /// Takes a session out of the statistics (before its slot is given
    /// back, so that the slot's next occupant is never shown under its id).
    pub fn unregister(&self, id: u64) {
        if lock(&self.sessions).running.remove(&id).is_some() {
            self.metrics.session_closed();
        }
    }

    /// Charges session `id`'s new filter of `insns` instructions to its
    /// uid, in place of the filter it had (if any); `Err` with what the
    /// uid's other sessions use when the sum would exceed `max` (0: no
    /// limit), and then nothing changes.
    pub fn charge_filter(&self, id: u64, uid: u32, insns: u32, max: u32) -> Result<(), u64> {
        let mut sessions = lock(&self.sessions);
        let own = sessions.filter_insns.get(&id).copied().unwrap_or(0);
        let total = sessions
            .filter_insns_per_uid
            .get(&uid)
            .copied()
            .unwrap_or(0);
        let others = total.saturating_sub(u64::from(own));
        if max != 0 && others + u64::from(insns) > u64::from(max) {
            return Err(others);
        }
        sessions.filter_insns.insert(id, insns);
        sessions
            .filter_insns_per_uid
            .insert(uid, others + u64::from(insns));
        Ok(())
    }

    /// Charges session `id`'s filter `insns` under a (reloaded)
    /// `max_filter_insns` (0: no limit) and says whether the uid's filters
    /// fit it; when they do not, the session's filter stops being counted,
    /// as the session is about to end, so that the uid's other sessions,
    /// checked after it, may fit.
    pub fn refit_filter(&self, id: u64, uid: u32, insns: u32, max: u32) -> bool {
        let mut sessions = lock(&self.sessions);
        let own = sessions.filter_insns.insert(id, insns).unwrap_or(0);
        let total = sessions.filter_insns_per_uid.entry(uid).or_default();
        *total = total.saturating_sub(u64::from(own)) + u64::from(insns);
        if max == 0 || *total <= u64::from(max) {
            return true;
        }
        uncharge(&mut sessions, id, uid);
        false
    }

    /// Undoes [`State::reserve`], [`State::register`] and
    /// [`State::charge_filter`].
    pub fn release(&self, id: u64, uid: u32) {
        let mut sessions = lock(&self.sessions);
        if sessions.running.remove(&id).is_some() {
            self.metrics.session_closed();
        }
        uncharge(&mut sessions, id, uid);
        if let Some(count) = sessions.per_uid.get_mut(&uid) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                sessions.per_uid.remove(&uid);
            }
        }
    }

    /// Counts ring `id` as held by `uid`'s clients if they hold fewer than
    /// `max` rings that may still exist (its principal's `max_sessions`:
    /// the kernel memory a uid can keep is then bounded, whatever it does
    /// with the descriptors); `Err` with how many they hold otherwise.
    /// `gone` says whether a map id is surely no longer one of these rings
    /// (system calls: call this on a blocking thread; it holds the uid's
    /// own lock meanwhile, and no lock another uid needs).
    pub fn hold_ring(
        &self,
        uid: u32,
        id: u32,
        max: u32,
        gone: impl Fn(u32) -> bool,
    ) -> Result<(), usize> {
        let held = lock(&self.handed_rings).entry(uid).or_default().clone();
        let mut held = lock(&held);
        held.retain(|&held| !gone(held));
        if held.len() >= max as usize {
            return Err(held.len());
        }
        held.push(id);
        Ok(())
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

/// Stops counting session `id`'s filter against `uid`.
fn uncharge(sessions: &mut Sessions, id: u64, uid: u32) {
    let Some(insns) = sessions.filter_insns.remove(&id) else {
        return;
    };
    if let Some(total) = sessions.filter_insns_per_uid.get_mut(&uid) {
        *total = total.saturating_sub(u64::from(insns));
        if *total == 0 {
            sessions.filter_insns_per_uid.remove(&uid);
        }
    }
}
