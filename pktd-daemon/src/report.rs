//! `pktd stats`: performance statistics for administrators (in the spirit
//! of Snort's perfmonitor). The command is a libwire client like any
//! other: it asks the running daemon for counter snapshots and prints the
//! rates between two of them as a console table and as CSV.

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    time::Duration,
};

use pktd_proto::DaemonStats;

/// Why `pktd stats` stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The interval is not a number of seconds, at least 0.1.
    #[error("--interval takes seconds, at least 0.1")]
    Interval,
    /// The daemon could not be asked.
    #[error(transparent)]
    Daemon(#[from] libwire::Error),
    /// The CSV file could not be written.
    #[error("writing {}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Asks the daemon at `socket` for its counters every `interval` seconds
/// and prints the rates (and appends them to `csv`), `count` times or
/// until interrupted.
pub async fn watch(
    socket: &Path,
    interval: f64,
    count: Option<u64>,
    csv_path: Option<&Path>,
) -> Result<(), ReportError> {
    if !(interval.is_finite() && interval >= 0.1) {
        return Err(ReportError::Interval);
    }
    let mut control = libwire::Control::connect(socket).await?;
    let mut csv_file = csv_path.map(open_csv).transpose()?;
    let mut previous = None;
    let mut reports = 0;
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(interval));
    loop {
        ticker.tick().await;
        let snapshot = control.daemon_stats().await?;
        if let Some(before) = &previous {
            let (interfaces, sessions) = rates(before, &snapshot);
            println!("{}", table(snapshot.time_ns, &interfaces, &sessions));
            if let (Some(file), Some(path)) = (csv_file.as_mut(), csv_path) {
                let rows = csv(snapshot.time_ns, &interfaces, &sessions);
                file.write_all(rows.as_bytes())
                    .and_then(|()| file.flush())
                    .map_err(|source| ReportError::Csv {
                        path: path.to_owned(),
                        source,
                    })?;
            }
            reports += 1;
            if count.is_some_and(|count| reports >= count) {
                return Ok(());
            }
        }
        previous = Some(snapshot);
    }
}

/// Opens `path` for appending, writing the header if it is new.
fn open_csv(path: &Path) -> Result<std::fs::File, ReportError> {
    let failed = |source| ReportError::Csv {
        path: path.to_owned(),
        source,
    };
    let is_new = !path.exists();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(failed)?;
    if is_new {
        file.write_all(CSV_HEADER.as_bytes()).map_err(failed)?;
    }
    Ok(file)
}

/// Rates of one attached interface over an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct InterfaceRow {
    /// Namespace of the interface.
    pub netns: String,
    /// The interface.
    pub interface: String,
    /// Packets per second.
    pub pps: f64,
    /// Megabits per second (wire bytes).
    pub mbps: f64,
    /// Average bytes per packet.
    pub avg_bytes: f64,
    /// Share of matched packets the sessions there lost to full rings.
    pub drop_rate: f64,
    /// TCP SYNs per second.
    pub syn_ps: f64,
    /// TCP SYN-ACKs per second.
    pub synack_ps: f64,
    /// Sessions open there.
    pub sessions: u32,
}

/// Rates of one session over an interval.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionRow {
    /// Session id.
    pub id: u64,
    /// Its client's uid.
    pub uid: u32,
    /// Where it captures.
    pub netns: String,
    /// Where it captures.
    pub interface: String,
    /// Packets delivered per second.
    pub delivered_ps: f64,
    /// Packets dropped (ring full) per second.
    pub dropped_ps: f64,
}

/// The rates between two snapshots; sessions and interfaces that are not
/// in both are left out (they began or ended within the interval).
pub fn rates(before: &DaemonStats, after: &DaemonStats) -> (Vec<InterfaceRow>, Vec<SessionRow>) {
    let seconds = (after.time_ns.saturating_sub(before.time_ns) as f64 / 1e9).max(1e-9);
    let per_second = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
    let previous: HashMap<u64, _> = before.sessions.iter().map(|s| (s.id, s)).collect();
    let mut sessions = Vec::new();
    // Per interface: (delivered, dropped) deltas of its sessions.
    let mut losses: HashMap<(&str, &str), (u64, u64)> = HashMap::new();
    for session in &after.sessions {
        let Some(then) = previous.get(&session.id) else {
            continue;
        };
        let delivered = session.stats.delivered.saturating_sub(then.stats.delivered);
        let dropped = session.stats.dropped.saturating_sub(then.stats.dropped);
        let loss = losses
            .entry((session.netns.as_str(), session.interface.as_str()))
            .or_default();
        loss.0 += delivered;
        loss.1 += dropped;
        sessions.push(SessionRow {
            id: session.id,
            uid: session.uid,
            netns: session.netns.clone(),
            interface: session.interface.clone(),
            delivered_ps: delivered as f64 / seconds,
            dropped_ps: dropped as f64 / seconds,
        });
    }
    let mut interfaces = Vec::new();
    for now in &after.interfaces {
        let Some(then) = before
            .interfaces
            .iter()
            .find(|then| then.netns == now.netns && then.interface == now.interface)
        else {
            continue;
        };
        let packets = now.packets.saturating_sub(then.packets);
        let bytes = now.bytes.saturating_sub(then.bytes);
        let (delivered, dropped) = losses
            .get(&(now.netns.as_str(), now.interface.as_str()))
            .copied()
            .unwrap_or_default();
        interfaces.push(InterfaceRow {
            netns: now.netns.clone(),
            interface: now.interface.clone(),
            pps: per_second(now.packets, then.packets),
            mbps: bytes as f64 * 8.0 / 1e6 / seconds,
            avg_bytes: if packets == 0 {
                0.0
            } else {
                bytes as f64 / packets as f64
            },
            drop_rate: if delivered + dropped == 0 {
                0.0
            } else {
                dropped as f64 / (delivered + dropped) as f64
            },
            syn_ps: per_second(now.tcp_syn, then.tcp_syn),
            synack_ps: per_second(now.tcp_synack, then.tcp_synack),
            sessions: now.sessions,
        });
    }
    (interfaces, sessions)
}

fn place(netns: &str, interface: &str) -> String {
    if netns.is_empty() {
        interface.to_owned()
    } else {
        format!("{netns}/{interface}")
    }
}

/// The rows as a console table.
pub fn table(time_ns: u64, interfaces: &[InterfaceRow], sessions: &[SessionRow]) -> String {
    let mut out = String::new();
    // When the counters were read, local time, as Snort's perfmonitor
    // stamps each report.
    let stamp = chrono::DateTime::from_timestamp_nanos(time_ns as i64)
        .with_timezone(&chrono::Local)
        .format("%Y-%m-%d %H:%M:%S %Z");
    let _ = writeln!(out, "at {stamp}");
    if !interfaces.is_empty() {
        let _ = writeln!(
            out,
            "{:<24} {:>10} {:>9} {:>8} {:>7} {:>8} {:>9} {:>8}",
            "interface", "pkts/s", "Mbit/s", "avg B", "drop%", "SYN/s", "SYNACK/s", "sessions"
        );
        for row in interfaces {
            let _ = writeln!(
                out,
                "{:<24} {:>10.1} {:>9.3} {:>8.1} {:>7.2} {:>8.1} {:>9.1} {:>8}",
                place(&row.netns, &row.interface),
                row.pps,
                row.mbps,
                row.avg_bytes,
                row.drop_rate * 100.0,
                row.syn_ps,
                row.synack_ps,
                row.sessions
            );
        }
    }
    let _ = writeln!(
        out,
        "{:>8} {:>6} {:<24} {:>12} {:>10}",
        "session", "uid", "interface", "delivered/s", "dropped/s"
    );
    for row in sessions {
        let _ = writeln!(
            out,
            "{:>8} {:>6} {:<24} {:>12.1} {:>10.1}",
            row.id,
            row.uid,
            place(&row.netns, &row.interface),
            row.delivered_ps,
            row.dropped_ps
        );
    }
    out
}

/// The CSV header line (with newline).
pub const CSV_HEADER: &str = "time_ns,kind,netns,interface,session,uid,pkts_per_s,mbit_per_s,avg_bytes,drop_rate,syn_per_s,synack_per_s,sessions,delivered_per_s,dropped_per_s\n";

/// One CSV line per row (names are quoted: they may contain commas).
pub fn csv(time_ns: u64, interfaces: &[InterfaceRow], sessions: &[SessionRow]) -> String {
    let quote = |text: &str| format!("\"{}\"", text.replace('"', "\"\""));
    let mut out = String::new();
    for row in interfaces {
        let _ = writeln!(
            out,
            "{time_ns},interface,{},{},,,{:.3},{:.6},{:.3},{:.6},{:.3},{:.3},{},,",
            quote(&row.netns),
            quote(&row.interface),
            row.pps,
            row.mbps,
            row.avg_bytes,
            row.drop_rate,
            row.syn_ps,
            row.synack_ps,
            row.sessions
        );
    }
    for row in sessions {
        let _ = writeln!(
            out,
            "{time_ns},session,{},{},{},{},,,,,,,,{:.3},{:.3}",
            quote(&row.netns),
            quote(&row.interface),
            row.id,
            row.uid,
            row.delivered_ps,
            row.dropped_ps
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use pktd_proto::{InterfaceStats, SessionStats, Stats};

    use super::*;

    fn snapshot(time_s: u64, packets: u64, syn: u64, delivered: u64, dropped: u64) -> DaemonStats {
        DaemonStats {
            time_ns: time_s * 1_000_000_000,
            interfaces: vec![InterfaceStats {
                netns: "lab".into(),
                interface: "veth0".into(),
                packets,
                bytes: packets * 100,
                tcp_syn: syn,
                tcp_synack: syn / 2,
                sessions: 1,
            }],
            sessions: vec![SessionStats {
                id: 7,
                uid: 1000,
                pid: 1,
                netns: "lab".into(),
                interface: "veth0".into(),
                stats: Stats {
                    delivered,
                    dropped,
                    ..Stats::default()
                },
            }],
        }
    }

    #[test]
    fn rates_over_an_interval() {
        let (interfaces, sessions) = rates(
            &snapshot(10, 1000, 10, 500, 0),
            &snapshot(12, 3000, 50, 1400, 100),
        );
        let row = &interfaces[0];
        assert_eq!(row.pps, 1000.0);
        assert_eq!(row.mbps, 0.8);
        assert_eq!(row.avg_bytes, 100.0);
        assert_eq!(row.drop_rate, 0.1);
        assert_eq!((row.syn_ps, row.synack_ps), (20.0, 10.0));
        assert_eq!(
            (sessions[0].delivered_ps, sessions[0].dropped_ps),
            (450.0, 50.0)
        );
        let csv = csv(12, &interfaces, &sessions);
        for line in csv.lines() {
            assert_eq!(
                line.split(',').count(),
                CSV_HEADER.trim_end().split(',').count(),
                "{line}"
            );
        }
        let printed = table(1_700_000_000_000_000_000, &interfaces, &sessions);
        assert!(printed.contains("lab/veth0"));
        // 2023-11-14 22:13:20 UTC, in whatever zone the test runs.
        assert!(printed.starts_with("at 2023-11-1"), "{printed}");
    }
}
