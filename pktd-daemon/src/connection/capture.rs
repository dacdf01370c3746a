//! A connection's capture: opened as the policy allows, its records
//! forwarded as packets, its filter replaced, its counters reported, and
//! ended with a reason after its last packets.

use std::{os::fd::OwnedFd, sync::Arc, time::Duration};

use pktd_proto::{EndReason, FilterSpec, Interval, OpenCapture, Reply};

use super::{refusal::Refusal, socket::ClientSocket};
use crate::{
    capture::Batch,
    policy::{Ask, CaptureGrant, Grant, HeaderView, Peer, grant},
    session::{self, Session},
    state::State,
};

/// Link type of every capture: Ethernet.
const LINKTYPE_ETHERNET: u32 = 1;
/// Shortest statistics-mode interval.
const MIN_STATS_INTERVAL: Duration = Duration::from_millis(100);

/// How a capture goes on after one step.
pub(super) enum Flow {
    Continue,
    /// End it, with this reason.
    End(EndReason),
    /// The client can no longer be written to.
    Disconnected,
}

/// A capture in progress.
pub(super) struct CaptureSession {
    session: Session,
    /// What the client asked, for the policy's re-checks.
    request: OpenCapture,
    /// Drops already told to the client.
    told_dropped: u64,
    /// Statistics mode: the end of the last interval reported, and the
    /// matched counters then.
    last_interval: Option<(u64, u64, u64)>,
    /// The records being forwarded, and their frames; both reused.
    batch: Batch,
    frames: Vec<u8>,
}

impl CaptureSession {
    /// Opens `request` for `peer` as the policy allows; the session and the
    /// reply that says so, with the ring's descriptor when the client
    /// reads it itself.
    pub async fn open(
        state: &Arc<State>,
        peer: Peer,
        request: OpenCapture,
    ) -> Result<(Self, Reply, Option<OwnedFd>), Refusal> {
        let Grant::Capture(granted) =
            grant(&state.policy().current(), &peer, Ask::Capture(&request))?
        else {
            unreachable!("a capture is granted as a capture");
        };
        let filter = (request.filter.clone(), request.optimize);
        let (reader, refused) = reader(&request, &granted);
        let (mut session, ()) =
            session::open(
                state,
                peer,
                granted,
                filter,
                reader,
                || Ok::<_, Refusal>(()),
            )
            .await?;
        let ring = session.take_ring();
        let reply = Reply::Opened {
            session_id: session.id(),
            link_type: LINKTYPE_ETHERNET,
            snaplen: session.grant().spec.snaplen,
            headers_only: session.grant().headers == Some(HeaderView::Cut),
            daemon_path: refused.or_else(|| session.daemon_path().map(str::to_owned)),
            ring_bytes: ring.as_ref().map_or(0, |ring| ring.bytes),
        };
        let capture = Self {
            last_interval: session.grant().spec.count_only.then(|| (now_ns(), 0, 0)),
            session,
            request,
            told_dropped: 0,
            batch: Batch::default(),
            frames: Vec::new(),
        };
        Ok((capture, reply, ring.map(|ring| ring.fd)))
    }

    /// Statistics mode: the timer of its intervals.
    pub fn stats_timer(&self) -> Option<tokio::time::Interval> {
        if !self.session.grant().spec.count_only {
            return None;
        }
        let every = Duration::from_millis(u64::from(self.request.stats_interval_ms))
            .max(MIN_STATS_INTERVAL);
        let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        Some(timer)
    }

    /// Replaces the filter; the reply that says so.
    pub async fn set_filter(
        &mut self,
        filter: FilterSpec,
        optimize: bool,
    ) -> Result<Reply, Refusal> {
        self.session.set_filter(filter.clone(), optimize).await?;
        self.request.filter = filter;
        self.request.optimize = optimize;
        Ok(Reply::FilterSet)
    }

    /// The counters now.
    pub fn stats(&self) -> Result<Reply, Refusal> {
        Ok(Reply::Stats(self.session.stats()?))
    }

    /// Moves waiting records to the client as packets; the count reached
    /// ends the capture.
    pub async fn forward(&mut self, socket: &mut ClientSocket) -> Flow {
        let Some(drain) = self.session.drain() else {
            return Flow::Continue;
        };
        drain.take(&mut self.batch).await;
        if self.batch.is_empty() {
            return Flow::Continue;
        }
        // One encode and one write for the whole batch.
        self.frames.clear();
        let encoded = pktd_proto::encode_packets(
            self.batch.packets(),
            pktd_proto::MAX_REPLY_FRAME,
            &mut self.frames,
        );
        if encoded.is_err() || socket.send_encoded(&self.frames).await.is_err() {
            return Flow::Disconnected;
        }
        if self
            .session
            .drain()
            .is_some_and(|drain| drain.count_reached())
        {
            return Flow::End(EndReason::CountReached);
        }
        Flow::Continue
    }

    /// The periodic look: forwards anything waiting (in case a wake-up was
    /// missed), ends the capture on a quota, and tells the client of new
    /// drops with an unsolicited Stats reply.
    pub async fn tick(&mut self, socket: &mut ClientSocket) -> Flow {
        if let flow @ (Flow::End(_) | Flow::Disconnected) = self.forward(socket).await {
            return flow;
        }
        if let Some(reason) = self.session.quota_end() {
            return Flow::End(reason);
        }
        let Ok(counters) = self.session.counters() else {
            return Flow::Continue;
        };
        if counters.dropped > self.told_dropped {
            self.told_dropped = counters.dropped;
            let filtered = self.session.grant().policy_filter.is_some();
            let mut stats = session::stats(&counters, filtered);
            if let Ok(now) = self.session.stats() {
                stats.interface_packets = now.interface_packets;
            }
            let reply = Reply::Stats(stats);
            if socket.send(&reply).await.is_err() {
                return Flow::Disconnected;
            }
        }
        Flow::Continue
    }

    /// Statistics mode: sends the counts since the last interval.
    pub async fn report_interval(&mut self, socket: &mut ClientSocket) -> Flow {
        let Ok(counters) = self.session.counters() else {
            return Flow::Continue;
        };
        let end_ns = now_ns();
        let Some((start_ns, matched, bytes)) =
            self.last_interval
                .replace((end_ns, counters.matched, counters.matched_bytes))
        else {
            return Flow::Continue;
        };
        let interval = Interval {
            start_ns,
            end_ns,
            packets: counters.matched - matched,
            bytes: counters.matched_bytes - bytes,
        };
        match socket.send(&Reply::Interval(interval)).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Disconnected,
        }
    }

    /// Puts the capture under the policy in force: its new rules, or its
    /// end if the policy no longer allows it.
    pub async fn recheck(&mut self, state: &State, peer: &Peer) -> Flow {
        let granted = match grant(&state.policy().current(), peer, Ask::Capture(&self.request)) {
            Ok(Grant::Capture(granted)) => granted,
            Ok(_) => unreachable!("a capture is granted as a capture"),
            Err(denied) => {
                tracing::info!(session = self.session.id(), reason = %denied, "policy revoked a session");
                return Flow::End(EndReason::PolicyRevoked);
            }
        };
        match self.session.apply(granted).await {
            Ok(()) => Flow::Continue,
            Err(err) if err.ends_as().is_some() => {
                tracing::info!(session = self.session.id(), reason = %err, "the reloaded policy ends a session");
                Flow::End(err.ends_as().unwrap_or(EndReason::PolicyRevoked))
            }
            Err(err) => {
                let reason = crate::errors::chain(&err);
                tracing::warn!(
                    session = self.session.id(),
                    reason,
                    "the reloaded policy could not be applied"
                );
                Flow::End(EndReason::Error(format!(
                    "the reloaded policy could not be applied: {reason}"
                )))
            }
        }
    }

    /// Sends End with the final counters (after the last packets) and gives
    /// the slot back.
    pub async fn end(self, socket: &mut ClientSocket, reason: EndReason) {
        let stats = self.session.stats().unwrap_or_default();
        self.session.close().await;
        let _ = socket.send(&Reply::End { reason, stats }).await;
    }

    /// Gives the slot back without telling the client (it has gone).
    pub async fn close(self) {
        self.session.close().await;
    }
}

/// Who reads a capture's records: the client, from its own ring, when it
/// asks and nothing stands in the way; the daemon otherwise, and why when
/// the client asked.
fn reader(request: &OpenCapture, granted: &CaptureGrant) -> (session::Reader, Option<String>) {
    let daemon = session::Reader::Daemon {
        count: request.packet_count,
    };
    if !request.zero_copy || granted.spec.count_only {
        return (daemon, None);
    }
    if granted.anonymize.is_some() {
        let why = format!(
            "principal {:?} is anonymized: the daemon rewrites its packets",
            granted.principal
        );
        return (daemon, Some(why));
    }
    (session::Reader::Client, None)
}

/// A record as the client gets it.
/// Resolves when the capture's ring may hold records; never without a
/// capture.
pub(super) async fn records_ready(capture: &Option<CaptureSession>) -> std::io::Result<()> {
    match capture {
        Some(capture) => capture.session.ready().await,
        None => std::future::pending().await,
    }
}

/// Resolves when a statistics-mode interval ends; never without one.
pub(super) async fn next_interval(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}
