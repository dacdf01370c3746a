//! The daemon's performance statistics: every interface and session for
//! root, the client's own sessions otherwise. Counters are read through
//! handles that take no lock a filter load holds.

use pktd_proto::{DaemonStats, InterfaceStats, Reply, SessionStats};

use super::refusal::Refusal;
use crate::{
    policy::{Ask, Grant, Peer, Scope, grant},
    session,
    state::State,
};

/// The counters `peer` may see, now.
pub(super) fn daemon_stats(state: &State, peer: Peer) -> Result<Reply, Refusal> {
    let Grant::Scope(scope) = grant(&state.policy().current(), &peer, Ask::DaemonStats)? else {
        unreachable!("statistics are granted as a scope");
    };
    let interfaces = match scope {
        Scope::All => state
            .registry()
            .interfaces()
            .into_iter()
            .map(|snapshot| InterfaceStats {
                netns: snapshot.netns,
                interface: snapshot.interface,
                packets: snapshot.counters.packets,
                bytes: snapshot.counters.bytes,
                tcp_syn: snapshot.counters.tcp_syn,
                tcp_synack: snapshot.counters.tcp_synack,
                sessions: snapshot.sessions,
            })
            .collect(),
        Scope::Uid(_) => Vec::new(),
    };
    let sessions = state
        .sessions(scope)
        .into_iter()
        .filter_map(|(id, info)| {
            let counters = info.counters.read().ok()?;
            Some(SessionStats {
                id,
                uid: info.uid,
                pid: info.pid,
                netns: info.netns,
                interface: info.interface,
                stats: session::stats(&counters, info.policy_filtered),
            })
        })
        .collect();
    Ok(Reply::DaemonStats(DaemonStats {
        time_ns: now_ns(),
        interfaces,
        sessions,
    }))
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}
