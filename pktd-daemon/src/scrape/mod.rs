//! The metrics endpoint (`pktd --metrics ADDR`, served by [`http`]): the
//! OpenMetrics text Prometheus scrapes. It holds what `crate::metrics`
//! counted as things happened, and what it reads at each scrape
//! ([`encode`]): every interface's and every session's kernel counters,
//! and CPU time.
//!
//! Everything is cumulative (counters); Prometheus computes the rates
//! (`rate(pktd_sessions_opened_total[1m])` is Snort perfmonitor's new
//! sessions per second).

pub mod http;

use std::collections::BTreeMap;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::{Registry, Unit},
};

use crate::{policy::Scope, session, state::State};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabels {
    mode: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SessionLabels {
    session: String,
    uid: String,
    principal: String,
    netns: String,
    interface: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, PartialOrd, Ord, EncodeLabelSet)]
struct InterfaceLabels {
    netns: String,
    interface: String,
}

/// Every metric, now, in the OpenMetrics text format. Blocking: it reads
/// every session's and interface's kernel counters.
pub fn encode(state: &State) -> String {
    let sessions = state.sessions(Scope::All);
    let mut registry = Registry::with_prefix("pktd");
    state.metrics().register_into(&mut registry, sessions.len());

    // Sessions, and their drops per interface.
    let delivered = Family::<SessionLabels, Counter>::default();
    let dropped = Family::<SessionLabels, Counter>::default();
    let over_quota = Family::<SessionLabels, Counter>::default();
    let matched = Family::<SessionLabels, Counter>::default();
    // By namespace identity: sessions may have named it otherwise than the
    // attachment's first session did.
    let mut interface_drops: BTreeMap<((u64, u64), String), u64> = BTreeMap::new();
    for (id, info) in &sessions {
        let Ok(counters) = info.counters.read() else {
            continue;
        };
        let stats = session::stats(&counters, info.policy_filtered);
        let labels = SessionLabels {
            session: id.to_string(),
            uid: info.uid.to_string(),
            principal: label(&info.principal),
            netns: label(&info.netns),
            interface: label(&info.interface),
        };
        delivered.get_or_create(&labels).inc_by(stats.delivered);
        dropped.get_or_create(&labels).inc_by(stats.dropped);
        over_quota.get_or_create(&labels).inc_by(stats.over_quota);
        matched.get_or_create(&labels).inc_by(stats.matched);
        *interface_drops
            .entry((info.netns_key, info.interface.clone()))
            .or_default() += stats.dropped;
    }
    registry.register(
        "session_delivered",
        "Packets delivered to a session",
        delivered,
    );
    registry.register(
        "session_dropped",
        "Packets a session's filter accepted that its full ring lost",
        dropped,
    );
    registry.register(
        "session_over_quota",
        "Packets a session's filter accepted past its quota",
        over_quota,
    );
    registry.register(
        "session_matched",
        "Packets a session's filter accepted",
        matched,
    );

    // Interfaces.
    let packets = Family::<InterfaceLabels, Counter>::default();
    let bytes = Family::<InterfaceLabels, Counter>::default();
    let drops = Family::<InterfaceLabels, Counter>::default();
    let syn = Family::<InterfaceLabels, Counter>::default();
    let synack = Family::<InterfaceLabels, Counter>::default();
    let interface_sessions = Family::<InterfaceLabels, Gauge>::default();
    for snapshot in state.registry().interfaces() {
        let dropped = interface_drops
            .get(&(snapshot.netns_key, snapshot.interface.clone()))
            .copied()
            .unwrap_or(0);
        let labels = InterfaceLabels {
            netns: label(&snapshot.netns),
            interface: label(&snapshot.interface),
        };
        packets
            .get_or_create(&labels)
            .inc_by(snapshot.counters.packets);
        bytes.get_or_create(&labels).inc_by(snapshot.counters.bytes);
        syn.get_or_create(&labels).inc_by(snapshot.counters.tcp_syn);
        synack
            .get_or_create(&labels)
            .inc_by(snapshot.counters.tcp_synack);
        interface_sessions
            .get_or_create(&labels)
            .set(i64::from(snapshot.sessions));
        drops.get_or_create(&labels).inc_by(dropped);
    }
    registry.register(
        "interface_packets",
        "Packets seen on an interface pktd is attached to",
        packets,
    );
    registry.register("interface_bytes", "Their bytes on the wire", bytes);
    registry.register(
        "interface_dropped",
        "Packets its sessions' full rings lost (sessions running now)",
        drops,
    );
    registry.register(
        "interface_tcp_syn",
        "TCP SYNs seen (connection attempts)",
        syn,
    );
    registry.register(
        "interface_tcp_synack",
        "TCP SYN-ACKs seen (connections accepted)",
        synack,
    );
    registry.register(
        "interface_sessions",
        "Sessions capturing on an interface",
        interface_sessions,
    );

    // CPU: the daemon's own, and the host's idle time (Snort
    // perfmonitor's user/sys/idle).
    let cpu = Family::<ModeLabels, Counter<f64, std::sync::atomic::AtomicU64>>::default();
    if let Some((user, system)) = own_cpu_seconds() {
        for (mode, seconds) in [("user", user), ("system", system)] {
            cpu.get_or_create(&ModeLabels {
                mode: mode.to_owned(),
            })
            .inc_by(seconds);
        }
    }
    registry.register_with_unit("cpu", "CPU time the daemon has used", Unit::Seconds, cpu);
    if let Some(idle) = host_idle_seconds() {
        let counter = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        counter.inc_by(idle);
        registry.register_with_unit(
            "host_cpu_idle",
            "CPU time the host's CPUs have been idle, all together",
            Unit::Seconds,
            counter,
        );
    }

    let mut text = String::new();
    // Writing to a String does not fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// `value` as an OpenMetrics label value: prometheus-client writes label
/// values as they are, and names (an interface's, which a namespace's
/// owner chooses; a principal's) may hold a backslash, `"` or a line break.
fn label(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

/// The daemon's user and system CPU time, from /proc/self/stat (fields 14
/// and 15, in USER_HZ ticks, after the parenthesised command name).
fn own_cpu_seconds() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    // Fields 3 on: state, ppid, … utime is the 14th, the 12th after ')'.
    let user: f64 = fields.nth(11)?.parse().ok()?;
    let system: f64 = fields.next()?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    Some((user / ticks, system / ticks))
}

/// Idle time of all CPUs from /proc/stat's first line (USER_HZ ticks).
fn host_idle_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let first = stat.lines().next()?;
    let idle: f64 = first.split_whitespace().nth(4)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second() as f64;
    Some(idle / ticks)
}
