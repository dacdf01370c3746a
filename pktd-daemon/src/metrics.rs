//! The metrics counted as things happen ([`Metrics`], held by the
//! state): connections, refusals by reason, sessions opened and closed and
//! the most at once, how long filters take to compile and to load. The
//! scrape (`crate::scrape`) adds what it reads at each scrape.

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use pktd_proto::ErrorCode;
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::{Registry, Unit},
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: String,
}

/// Seconds, from a millisecond to a minute: compiles take milliseconds to
/// the compile deadline, verifier loads tens of milliseconds to seconds.
fn time_buckets() -> impl Iterator<Item = f64> {
    [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ]
    .into_iter()
}

/// The metrics counted as things happen.
#[derive(Debug)]
pub struct Metrics {
    connections: Gauge,
    connections_total: Counter,
    refusals: Family<ReasonLabels, Counter>,
    sessions_opened: Counter,
    sessions_closed: Counter,
    sessions_max: AtomicI64,
    compile_seconds: Histogram,
    load_seconds: Histogram,
    started: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            connections: Gauge::default(),
            connections_total: Counter::default(),
            refusals: Family::default(),
            sessions_opened: Counter::default(),
            sessions_closed: Counter::default(),
            sessions_max: AtomicI64::new(0),
            compile_seconds: Histogram::new(time_buckets()),
            load_seconds: Histogram::new(time_buckets()),
            started: unix_seconds(),
        }
    }
}

impl Metrics {
    /// Puts the metrics counted so far into `registry`, `running` being
    /// the sessions running now.
    pub fn register_into(&self, registry: &mut Registry, running: usize) {
        registry.register(
            "connections",
            "Client connections open now",
            self.connections.clone(),
        );
        registry.register(
            "connections_accepted",
            "Client connections accepted",
            self.connections_total.clone(),
        );
        registry.register(
            "refusals",
            "Requests and connections refused, by the error code the client was told",
            self.refusals.clone(),
        );
        registry.register(
            "sessions_opened",
            "Sessions (captures and recordings) opened",
            self.sessions_opened.clone(),
        );
        registry.register(
            "sessions_closed",
            "Sessions ended",
            self.sessions_closed.clone(),
        );
        registry.register_with_unit(
            "filter_compile",
            "Time to compile a client's filter expression (sandboxed libpcap)",
            Unit::Seconds,
            self.compile_seconds.clone(),
        );
        registry.register_with_unit(
            "filter_load",
            "Time to load a session's filter: translated, verified by the kernel, installed",
            Unit::Seconds,
            self.load_seconds.clone(),
        );
        let now = Gauge::<i64>::default();
        now.set(running as i64);
        registry.register("sessions", "Sessions running now", now);
        let most = Gauge::<i64>::default();
        most.set(
            self.sessions_max
                .load(Ordering::Relaxed)
                .max(running as i64),
        );
        registry.register(
            "sessions_max",
            "The most sessions that ran at once since the daemon started",
            most,
        );
        let started = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        started.set(self.started);
        registry.register_with_unit(
            "start_time",
            "When the daemon started, seconds since the Unix epoch",
            Unit::Seconds,
            started,
        );
    }
}

/// A connection counted until dropped.
pub struct ConnectionGuard(Arc<Metrics>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

impl Metrics {
    /// Counts a connection until the guard is dropped.
    pub fn connection(self: &Arc<Self>) -> ConnectionGuard {
        self.connections.inc();
        self.connections_total.inc();
        ConnectionGuard(self.clone())
    }

    /// Counts a refusal with the code the client is told.
    pub fn refused(&self, code: ErrorCode) {
        self.refusals
            .get_or_create(&ReasonLabels {
                reason: format!("{code:?}"),
            })
            .inc();
    }

    /// Counts a session opened, `running` now running.
    pub fn session_opened(&self, running: usize) {
        self.sessions_opened.inc();
        self.sessions_max
            .fetch_max(running as i64, Ordering::Relaxed);
    }

    /// Counts a session ended.
    pub fn session_closed(&self) {
        self.sessions_closed.inc();
    }

    /// A client's expression took `took` to compile.
    pub fn compiled(&self, took: Duration) {
        self.compile_seconds.observe(took.as_secs_f64());
    }

    /// A filter took `took` to load (translated, verified, installed).
    pub fn loaded(&self, took: Duration) {
        self.load_seconds.observe(took.as_secs_f64());
    }
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}
