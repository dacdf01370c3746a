//! One connection: a client socket, from its hello to its end. It serves
//! any number of requests and at most one capture, whose records stream to
//! the client between the answers.
//!
//! The client's identity is its SO_PEERCRED credentials; nothing it writes
//! changes who it is. A misbehaving client gets an error reply and, when
//! the framing can no longer be trusted, its connection closed; nothing it
//! sends touches another connection or session.
//!
//! | file | concern |
//! |---|---|
//! | `context.rs` | what every connection shares |
//! | `hello.rs` | the hello exchange |
//! | `socket.rs` | requests read, replies written within a deadline |
//! | `capture.rs` | the connection's capture: open, filter, stats, records, end |
//! | `recording.rs` | starting, listing and stopping recordings |
//! | `inject.rs` | injecting frames |
//! | `stats.rs` | the daemon's performance statistics |
//! | `interfaces.rs` | listing the interfaces a client may capture on |
//! | `refusal.rs` | typed refusals and their wire codes |

mod capture;
mod context;
mod hello;
mod inject;
mod interfaces;
mod recording;
mod refusal;
mod socket;
mod stats;

use std::{sync::Arc, time::Duration};

use pktd_proto::{EndReason, ErrorCode, ProtoError, Reply, Request};
use tokio::{net::UnixStream, time::Instant};

use self::{
    capture::{CaptureSession, Flow},
    socket::ClientSocket,
};
pub use self::{
    context::{ConnectionLimits, Context},
    recording::{journaled, resume as resume_recordings},
    refusal::Refusal,
};
use crate::policy::Peer;

/// How often a capture's quota, drops and backlog are looked at.
const TICK: Duration = Duration::from_millis(200);

/// Serves one connection of `peer` (its SO_PEERCRED credentials) to its
/// end.
pub async fn serve(stream: UnixStream, peer: Peer, context: Arc<Context>) {
    let limits = context.limits;
    let mut socket = ClientSocket::new(stream, limits.write, context.shutdown.clone());
    if !hello::hello(&mut socket, &peer, limits.hello).await {
        return;
    }
    let mut handler = Handler {
        context,
        peer,
        capture: None,
        stats_timer: None,
        ring_to_send: None,
    };
    handler.run(&mut socket).await;
    if let Some(capture) = handler.capture.take() {
        capture.close().await;
    }
}

/// Tells a client it is over a connection limit, then closes: the write
/// gets a moment, not the full write deadline, since such clients can come
/// in floods.
pub async fn refuse(stream: UnixStream, refusal: Refusal) {
    let shutdown = tokio_util::sync::CancellationToken::new();
    let mut socket = ClientSocket::new(stream, Duration::from_millis(100), shutdown);
    let _ = socket.send(&refusal.reply()).await;
}

/// When a connection without a capture that has been silent since
/// `last_request` is closed; never while it has a capture.
async fn idle_deadline(capture: &Option<CaptureSession>, last_request: Instant, idle: Duration) {
    match capture {
        Some(_) => std::future::pending().await,
        None => tokio::time::sleep_until(last_request + idle).await,
    }
}

/// How the request loop goes on after one event.
enum Next {
    Continue,
    /// Stop serving; the capture (if any) has ended.
    Stop,
}

/// A connection after its hello.
struct Handler {
    context: Arc<Context>,
    peer: Peer,
    capture: Option<CaptureSession>,
    /// Statistics mode: when the capture's next interval ends. Beside the
    /// capture, not in it, so that the loop can wait on both at once.
    stats_timer: Option<tokio::time::Interval>,
    /// The ring of a capture just opened, to go with the reply that says
    /// so, when its client reads it itself.
    ring_to_send: Option<std::os::fd::OwnedFd>,
}

impl Handler {
    async fn run(&mut self, socket: &mut ClientSocket) {
        let shutdown = self.context.shutdown.clone();
        let mut policy_changes = self.context.state.policy().subscribe();
        let mut tick = tokio::time::interval(TICK);
        let mut last_request = Instant::now();
        loop {
            let idle = self.context.limits.idle;
            let next = tokio::select! {
                _ = shutdown.cancelled() => self.end(socket, EndReason::DaemonShutdown).await,
                request = socket.read() => {
                    last_request = Instant::now();
                    self.on_request(socket, request).await
                }
                () = idle_deadline(&self.capture, last_request, idle) => {
                    tracing::debug!(uid = self.peer.uid, "idle connection closed");
                    Next::Stop
                }
                ready = capture::records_ready(&self.capture) => self.on_records(socket, ready).await,
                _ = tick.tick() => self.on_tick(socket).await,
                _ = capture::next_interval(&mut self.stats_timer) => self.on_interval(socket).await,
                _ = policy_changes.changed() => self.on_policy_change(socket).await,
            };
            if let Next::Stop = next {
                return;
            }
        }
    }

    /// Records wait in the capture's ring: forward them.
    async fn on_records(&mut self, socket: &mut ClientSocket, ready: std::io::Result<()>) -> Next {
        let flow = match (ready, self.capture.as_mut()) {
            (Err(err), _) => Flow::End(EndReason::Error(format!("ring buffer: {err}"))),
            (Ok(()), Some(capture)) => capture.forward(socket).await,
            (Ok(()), None) => Flow::Continue,
        };
        self.follow(socket, flow).await
    }

    /// The periodic look at the capture's quota and drops.
    async fn on_tick(&mut self, socket: &mut ClientSocket) -> Next {
        let flow = match self.capture.as_mut() {
            Some(capture) => capture.tick(socket).await,
            None => Flow::Continue,
        };
        self.follow(socket, flow).await
    }

    /// Statistics mode: an interval has ended.
    async fn on_interval(&mut self, socket: &mut ClientSocket) -> Next {
        let flow = match self.capture.as_mut() {
            Some(capture) => capture.report_interval(socket).await,
            None => Flow::Continue,
        };
        self.follow(socket, flow).await
    }

    /// The policy was reloaded: the capture follows its new rules, or ends
    /// if it is no longer allowed.
    async fn on_policy_change(&mut self, socket: &mut ClientSocket) -> Next {
        let flow = match self.capture.as_mut() {
            Some(capture) => capture.recheck(&self.context.state, &self.peer).await,
            None => Flow::Continue,
        };
        self.follow(socket, flow).await
    }

    /// Goes on, or ends the capture and the connection, as `flow` says.
    async fn follow(&mut self, socket: &mut ClientSocket, flow: Flow) -> Next {
        match flow {
            Flow::Continue => Next::Continue,
            Flow::End(reason) => self.end(socket, reason).await,
            Flow::Disconnected => Next::Stop,
        }
    }

    async fn on_request(
        &mut self,
        socket: &mut ClientSocket,
        request: Result<Option<Request>, ProtoError>,
    ) -> Next {
        let request = match request {
            Ok(Some(request)) => request,
            // The client went away: its capture goes with it.
            Ok(None) => return Next::Stop,
            Err(ProtoError::Decode { message }) => {
                // The frame was whole, only its content is bad: the framing
                // still holds, so the connection can go on.
                let reply = Refusal::Malformed(message).reply();
                return match socket.send(&reply).await {
                    Ok(()) => Next::Continue,
                    Err(_) => Next::Stop,
                };
            }
            Err(err) => {
                let reply = Refusal::Malformed(format!("{err}; closing")).reply();
                let _ = socket.send(&reply).await;
                return self.end(socket, EndReason::Error(err.to_string())).await;
            }
        };
        if let Request::Close = request {
            return self.end(socket, EndReason::Closed).await;
        }
        // A request may take seconds (a filter compiling, a program
        // loading): the daemon's shutdown does not wait for it.
        let shutdown = self.context.shutdown.clone();
        let answered = tokio::select! {
            answered = self.dispatch(request) => answered,
            () = shutdown.cancelled() => return self.end(socket, EndReason::DaemonShutdown).await,
        };
        let reply = answered.unwrap_or_else(|refusal| {
            tracing::debug!(uid = self.peer.uid, %refusal, "request refused");
            self.context
                .state
                .metrics()
                .refused(ErrorCode::from(&refusal));
            refusal.reply()
        });
        let sent = match self.ring_to_send.take() {
            Some(ring) => socket.send_with_fd(&reply, ring).await,
            None => socket.send(&reply).await,
        };
        match sent {
            Ok(()) => Next::Continue,
            Err(_) => Next::Stop,
        }
    }

    /// Answers one request (Close aside).
    async fn dispatch(&mut self, request: Request) -> Result<Reply, Refusal> {
        let (context, peer) = (&self.context, self.peer);
        match request {
            Request::Open(open) => {
                if self.capture.is_some() {
                    return Err(Refusal::OutOfOrder(
                        "a capture is already open on this connection",
                    ));
                }
                let (capture, reply, ring) =
                    CaptureSession::open(&context.state, peer, open).await?;
                self.ring_to_send = ring;
                self.stats_timer = capture.stats_timer();
                self.capture = Some(capture);
                Ok(reply)
            }
            Request::SetFilter { filter, optimize } => {
                self.open_capture()?.set_filter(filter, optimize).await
            }
            Request::Stats => self.open_capture()?.stats(),
            Request::Inject {
                netns,
                interface,
                frames,
            } => inject::inject(&context.state, peer, &netns, &interface, frames).await,
            Request::DaemonStats => stats::daemon_stats(&context.state, peer),
            Request::StartRecording(request) => recording::start(context, peer, request).await,
            Request::ListRecordings => recording::list(context, peer),
            Request::StopRecording { id } => recording::stop(context, peer, id).await,
            Request::ListInterfaces => interfaces::list(&context.state, peer).await,
            Request::Close => Err(Refusal::OutOfOrder("close is answered with the end")),
        }
    }

    fn open_capture(&mut self) -> Result<&mut CaptureSession, Refusal> {
        self.capture
            .as_mut()
            .ok_or(Refusal::OutOfOrder("no capture is open"))
    }

    /// Ends the capture with `reason` (after its last records), if there is
    /// one; the connection ends with it.
    async fn end(&mut self, socket: &mut ClientSocket, reason: EndReason) -> Next {
        self.stats_timer = None;
        if let Some(capture) = self.capture.take() {
            capture.end(socket, reason).await;
        }
        Next::Stop
    }
}
