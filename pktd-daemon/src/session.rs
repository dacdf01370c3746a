//! One client connection: the hello, then at most one capture session whose
//! packets stream to the client while its requests are answered.
//!
//! The client's identity is its SO_PEERCRED credentials; nothing it writes
//! changes who it is. A misbehaving client gets an error reply and, when the
//! framing can no longer be trusted, its connection closed; nothing it sends
//! touches another session.

use std::{os::unix::fs::DirBuilderExt, sync::Arc, time::Duration};

use libwire::savefile::Format;
use pktd_common::{ClientCounters, DIR_IN, DIR_OUT, MAX_CAPLEN};
use pktd_filter::{FilterError, ValidProgram, and_then, compile, validate};
use pktd_proto::{
    Connection, DaemonStats, Direction, EndReason, ErrorCode, FilterSpec, Hello, InjectVerdict,
    InterfaceStats, Interval, MAGIC, OpenCapture, PROTOCOL_VERSION, Packet, ProtoError,
    RecordRequest, RecordingInfo, Reply, Request, SessionStats, Stats,
};
use tokio::{io::unix::AsyncFd, net::UnixStream};
use tokio_util::sync::CancellationToken;

use crate::{
    capture::{CaptureError, Client, ClientSpec},
    inject::Injector,
    netns::Netns,
    policy::{Peer, Rules},
    record::{Pattern, Recorder, RecorderConfig, Rotation},
    recording::Start,
    registry::SlotRef,
    server::{SessionInfo, Shared},
};

/// How long a client may take to say hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often quotas, drops and the policy are looked at.
const TICK: Duration = Duration::from_millis(200);
/// Longest a record waits in a quiet ring before it is forwarded.
const DRAIN_EVERY: Duration = Duration::from_millis(5);
/// Most records moved per wake-up, so one busy session yields to others.
const DRAIN_BATCH: usize = 2048;
/// Link type of every capture: Ethernet.
const LINKTYPE_ETHERNET: u32 = 1;
/// Shortest statistics-mode interval.
const MIN_STATS_INTERVAL: Duration = Duration::from_millis(100);

/// An error reply, and whether the connection must close after it.
struct Refusal {
    code: ErrorCode,
    message: String,
}

impl Refusal {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// A capture session in progress.
struct Capture {
    id: u64,
    slot: SlotRef,
    ring: AsyncFd<Client>,
    request: OpenCapture,
    rules: Rules,
    spec: ClientSpec,
    /// Packets still to deliver before the count is reached; None = no count.
    remaining: Option<u64>,
    /// Drops already told to the client.
    told_dropped: u64,
    /// Packets moved to the client so far.
    forwarded: u64,
    /// The last drain stopped at its batch limit with records left: drain
    /// again without waiting for a wake-up (the kernel only wakes a reader
    /// that has caught up, so none may come).
    backlog: bool,
    /// Statistics mode: the end of the last interval reported, and the
    /// matched counters then.
    last_interval: Option<(u64, u64, u64)>,
}

/// Locks a mutex of plain data, carrying on after a panic elsewhere.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// Serves one connection to its end.
pub(crate) async fn serve(stream: UnixStream, shared: Arc<Shared>, shutdown: CancellationToken) {
    let peer = match stream.peer_cred() {
        Ok(cred) => Peer {
            uid: cred.uid(),
            gid: cred.gid(),
            pid: cred.pid().unwrap_or(0),
        },
        Err(err) => {
            tracing::warn!(%err, "no peer credentials; dropping the connection");
            return;
        }
    };
    let mut connection = Connection::new(stream);
    if !hello(&mut connection, &peer).await {
        return;
    }
    let mut session = Session {
        shared,
        peer,
        capture: None,
        stats_timer: None,
        shutdown: shutdown.clone(),
    };
    session.run(&mut connection, shutdown).await;
    session.finish();
}

/// The hello exchange; false when the connection is to be dropped.
async fn hello(connection: &mut Connection<UnixStream>, peer: &Peer) -> bool {
    let hello = match tokio::time::timeout(HELLO_TIMEOUT, connection.read_hello()).await {
        Ok(Ok(Some(hello))) => hello,
        Ok(Ok(None)) => return false,
        Ok(Err(err)) => {
            let _ = refuse(connection, ErrorCode::BadHello, format!("bad hello: {err}")).await;
            return false;
        }
        Err(_) => {
            let _ = refuse(connection, ErrorCode::BadHello, "no hello within 5 s").await;
            return false;
        }
    };
    let Hello {
        magic,
        version,
        client,
    } = hello;
    if magic != MAGIC {
        let _ = refuse(
            connection,
            ErrorCode::BadHello,
            "not a pktd client (bad magic)",
        )
        .await;
        return false;
    }
    if version != PROTOCOL_VERSION {
        let _ = refuse(
            connection,
            ErrorCode::UnsupportedVersion,
            format!(
                "protocol version {version} is not supported; this daemon speaks {PROTOCOL_VERSION}"
            ),
        )
        .await;
        return false;
    }
    tracing::debug!(uid = peer.uid, pid = peer.pid, client, "hello");
    connection
        .write_reply(&Reply::HelloAck {
            version: PROTOCOL_VERSION,
            daemon: format!("pktd {}", env!("CARGO_PKG_VERSION")),
        })
        .await
        .is_ok()
}

async fn refuse(
    connection: &mut Connection<UnixStream>,
    code: ErrorCode,
    message: impl Into<String>,
) -> Result<(), ProtoError> {
    connection
        .write_reply(&Reply::Error {
            code,
            message: message.into(),
        })
        .await
}

/// How the request loop goes on after one event.
enum Next {
    Continue,
    /// Stop serving; the session (if any) was already ended.
    Stop,
}

struct Session {
    shared: Arc<Shared>,
    peer: Peer,
    capture: Option<Capture>,
    /// Statistics mode: when the next interval ends.
    stats_timer: Option<tokio::time::Interval>,
    /// The daemon's shutdown, for recordings this connection starts.
    shutdown: CancellationToken,
}

impl Session {
    async fn run(&mut self, connection: &mut Connection<UnixStream>, shutdown: CancellationToken) {
        let mut policy_changes = self.shared.policy.subscribe();
        let mut tick = tokio::time::interval(TICK);
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => {
                    self.end(connection, EndReason::DaemonShutdown).await;
                    Next::Stop
                }
                request = connection.read_request() => self.on_request(connection, request).await,
                ready = readable(&self.capture) => match ready {
                    Ok(()) => self.forward_packets(connection).await,
                    Err(err) => {
                        self.end(connection, EndReason::Error(format!("ring buffer: {err}"))).await;
                        Next::Stop
                    }
                },
                _ = tick.tick() => self.check_limits(connection).await,
                _ = next_stats_tick(&mut self.stats_timer) => self.report_interval(connection).await,
                _ = policy_changes.changed() => self.recheck_policy(connection).await,
            };
            if let Next::Stop = next {
                return;
            }
        }
    }

    /// Releases the session's slot (the kernel stops evaluating it at once).
    fn finish(&mut self) {
        if let Some(capture) = self.capture.take() {
            self.release(&capture);
        }
    }

    fn release(&self, capture: &Capture) {
        lock(&self.shared.sessions).remove(&capture.id);
        self.shared.registry.remove_client(&capture.slot);
        self.unreserve_session_slot();
        tracing::info!(session = capture.id, uid = self.peer.uid, "session ended");
    }

    async fn on_request(
        &mut self,
        connection: &mut Connection<UnixStream>,
        request: Result<Option<Request>, ProtoError>,
    ) -> Next {
        let request = match request {
            Ok(Some(request)) => request,
            // The client went away: its session goes with it.
            Ok(None) => return Next::Stop,
            Err(ProtoError::Decode { message }) => {
                // The frame was whole, only its content is bad: the framing
                // still holds, so the connection can go on.
                let _ = refuse(
                    connection,
                    ErrorCode::Malformed,
                    format!("malformed request: {message}"),
                )
                .await;
                return Next::Continue;
            }
            Err(err) => {
                let _ = refuse(connection, ErrorCode::Malformed, format!("{err}; closing")).await;
                self.end(connection, EndReason::Error(err.to_string()))
                    .await;
                return Next::Stop;
            }
        };
        let result = match request {
            Request::Inject {
                netns,
                interface,
                frames,
            } => self
                .inject(netns, interface, frames)
                .await
                .map(Reply::Injected),
            Request::Open(open) => self.open(open).await.map(|(id, snaplen)| Reply::Opened {
                session_id: id,
                link_type: LINKTYPE_ETHERNET,
                snaplen,
            }),
            Request::SetFilter { filter, optimize } => self.set_filter(filter, optimize).await,
            Request::Stats => self.stats().map(Reply::Stats),
            Request::DaemonStats => Ok(Reply::DaemonStats(self.daemon_stats())),
            Request::Record(request) => self.start_recording(request).await.map(Reply::Recording),
            Request::ListRecordings => Ok(Reply::Recordings(
                self.shared
                    .recordings
                    .visible_to(self.peer.uid)
                    .iter()
                    .map(|recording| recording.info())
                    .collect(),
            )),
            Request::StopRecording { id } => self.stop_recording(id).await.map(Reply::Recording),
            Request::Close => {
                self.end(connection, EndReason::Closed).await;
                return Next::Stop;
            }
        };
        let reply = result.unwrap_or_else(|refusal| Reply::Error {
            code: refusal.code,
            message: refusal.message,
        });
        match connection.write_reply(&reply).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Stop,
        }
    }

    async fn open(&mut self, request: OpenCapture) -> Result<(u64, u32), Refusal> {
        if self.capture.is_some() {
            return Err(Refusal::new(
                ErrorCode::OutOfOrder,
                "a capture is already open on this connection",
            ));
        }
        let rules = self.allowed_rules(&request)?;
        let netns = Netns::parse(&request.netns)
            .map_err(|err| Refusal::new(ErrorCode::NoSuchNetns, err.to_string()))?;
        let (spec, snaplen) = client_spec(&rules, &request);
        let filter = session_filter(&rules, &request.filter, request.optimize, snaplen)?;
        self.reserve_session_slot(&rules)?;

        let registry = self.shared.registry.clone();
        let interface = request.interface.clone();
        let spec_for_kernel = spec.clone();
        let added = tokio::task::spawn_blocking(move || {
            registry.add_client(&netns, &interface, &spec_for_kernel, &filter)
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        let (slot, client) = match added {
            Ok(added) => added,
            Err(err) => {
                self.unreserve_session_slot();
                return Err(capture_refusal(err, &request));
            }
        };
        tracing::info!(
            interface = %request.interface,
            netns = %request.netns,
            engine = %client.engine(),
            "filter engine of the session"
        );
        let ring = match crate::sys::register_ring(client) {
            Ok(ring) => ring,
            Err(err) => {
                self.shared.registry.remove_client(&slot);
                self.unreserve_session_slot();
                return Err(Refusal::new(
                    ErrorCode::Internal,
                    format!("polling the ring buffer: {err}"),
                ));
            }
        };
        let id = self.shared.new_session_id();
        tracing::info!(
            session = id,
            uid = self.peer.uid,
            pid = self.peer.pid,
            principal = rules.principal,
            netns = request.netns,
            interface = request.interface,
            snaplen = spec.snaplen,
            "session opened"
        );
        lock(&self.shared.sessions).insert(
            id,
            SessionInfo {
                uid: self.peer.uid,
                pid: self.peer.pid,
                netns: request.netns.clone(),
                interface: request.interface.clone(),
                slot: slot.clone(),
            },
        );
        let effective_snaplen = spec.snaplen;
        if spec.count_only {
            let every =
                Duration::from_millis(u64::from(request.stats_interval_ms)).max(MIN_STATS_INTERVAL);
            let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            self.stats_timer = Some(timer);
        }
        self.capture = Some(Capture {
            last_interval: spec.count_only.then(|| (now_ns(), 0, 0)),
            backlog: false,
            forwarded: 0,
            id,
            slot,
            ring,
            remaining: (request.packet_count != 0).then_some(request.packet_count),
            request,
            rules,
            spec,
            told_dropped: 0,
        });
        Ok((id, effective_snaplen))
    }

    /// The rules that apply to this peer, if they allow `request`.
    fn allowed_rules(&self, request: &OpenCapture) -> Result<Rules, Refusal> {
        let policy = self.shared.policy.current();
        let rules = policy.rules_for(&self.peer).ok_or_else(|| {
            Refusal::new(
                ErrorCode::Denied,
                format!(
                    "the policy allows uid {} gid {} nothing",
                    self.peer.uid, self.peer.gid
                ),
            )
        })?;
        check_request(rules, request)?;
        Ok(rules.clone())
    }

    fn reserve_session_slot(&self, rules: &Rules) -> Result<(), Refusal> {
        self.shared
            .reserve_session(self.peer.uid, rules.max_sessions)
            .map_err(|count| {
                Refusal::new(
                    ErrorCode::Limit,
                    format!(
                        "uid {} already has {count} sessions, the most principal {:?} allows",
                        self.peer.uid, rules.principal
                    ),
                )
            })
    }

    fn unreserve_session_slot(&self) {
        self.shared.release_session(self.peer.uid);
    }

    async fn set_filter(&mut self, filter: FilterSpec, optimize: bool) -> Result<Reply, Refusal> {
        let capture = self
            .capture
            .as_ref()
            .ok_or_else(|| Refusal::new(ErrorCode::OutOfOrder, "no capture is open"))?;
        let program = session_filter(&capture.rules, &filter, optimize, capture.spec.snaplen)?;
        self.shared
            .registry
            .set_filter(&capture.slot, &program)
            .map_err(|err| Refusal::new(ErrorCode::Internal, err.to_string()))?;
        if let Some(capture) = self.capture.as_mut() {
            capture.request.filter = filter;
            capture.request.optimize = optimize;
        }
        Ok(Reply::FilterSet)
    }

    fn stats(&self) -> Result<Stats, Refusal> {
        let capture = self
            .capture
            .as_ref()
            .ok_or_else(|| Refusal::new(ErrorCode::OutOfOrder, "no capture is open"))?;
        self.counters(capture).map(|counters| to_stats(&counters))
    }

    /// Checks and sends frames on an interface the policy lets this peer
    /// inject on; one verdict per frame.
    async fn inject(
        &self,
        netns: String,
        interface: String,
        frames: Vec<pktd_proto::Frame>,
    ) -> Result<Vec<InjectVerdict>, Refusal> {
        let policy = self.shared.policy.current();
        let generation = self.shared.policy.generation();
        let rules = policy.rules_for(&self.peer).ok_or_else(|| {
            Refusal::new(
                ErrorCode::Denied,
                format!("the policy allows uid {} nothing", self.peer.uid),
            )
        })?;
        let inject_rules = rules.inject.clone().ok_or_else(|| {
            Refusal::new(
                ErrorCode::Denied,
                format!("principal {:?} may not inject", rules.principal),
            )
        })?;
        if !rules.allows_netns(&netns) || !rules.allows_interface(&interface) {
            return Err(Refusal::new(
                ErrorCode::Denied,
                format!(
                    "principal {:?} may not inject on {interface:?} in network namespace {netns:?}",
                    rules.principal
                ),
            ));
        }
        let shared = self.shared.clone();
        let uid = self.peer.uid;
        tokio::task::spawn_blocking(move || {
            let key = (uid, netns.clone(), interface.clone());
            let mut injectors = lock(&shared.injectors);
            let stale = injectors
                .get(&key)
                .is_none_or(|(made_under, _)| *made_under != generation);
            if stale {
                let parsed = Netns::parse(&netns)
                    .map_err(|err| Refusal::new(ErrorCode::NoSuchNetns, err.to_string()))?;
                let injector = Injector::open(&parsed, &interface, &inject_rules)
                    .map_err(|err| Refusal::new(ErrorCode::NoSuchInterface, error_chain(&err)))?;
                injectors.insert(key.clone(), (generation, injector));
            }
            let (_, injector) = injectors.get_mut(&key).expect("just made");
            Ok(frames
                .iter()
                .map(|frame| match injector.inject(&frame.0) {
                    Ok(()) => InjectVerdict::Sent,
                    Err(refused) => InjectVerdict::Refused(refused.to_string()),
                })
                .collect())
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
    }

    /// Starts a recording written by the daemon into the principal's
    /// directory; it goes on when this connection ends.
    async fn start_recording(&self, request: RecordRequest) -> Result<RecordingInfo, Refusal> {
        if request.capture.stats_interval_ms != 0 {
            return Err(Refusal::new(
                ErrorCode::Malformed,
                "a recording cannot be in statistics mode",
            ));
        }
        let rules = self.allowed_rules(&request.capture)?;
        let directory = rules.record_directory.clone().ok_or_else(|| {
            Refusal::new(
                ErrorCode::Denied,
                format!("principal {:?} may not record to disk", rules.principal),
            )
        })?;
        let pattern = Pattern::parse(&request.pattern)
            .map_err(|err| Refusal::new(ErrorCode::Malformed, err.to_string()))?;
        let netns = Netns::parse(&request.capture.netns)
            .map_err(|err| Refusal::new(ErrorCode::NoSuchNetns, err.to_string()))?;
        let (spec, snaplen) = client_spec(&rules, &request.capture);
        let filter = session_filter(
            &rules,
            &request.capture.filter,
            request.capture.optimize,
            snaplen,
        )?;
        let config = RecorderConfig {
            directory: directory.clone(),
            pattern,
            rotation: Rotation {
                seconds: (request.rotate_seconds != 0)
                    .then(|| Duration::from_secs(u64::from(request.rotate_seconds))),
                bytes: (request.rotate_bytes != 0).then_some(request.rotate_bytes),
                packets: (request.rotate_packets != 0).then_some(request.rotate_packets),
                max_files: (request.max_files != 0).then_some(request.max_files),
            },
            format: if request.pcapng {
                Format::PcapNg
            } else {
                Format::Pcap
            },
            snaplen: spec.snaplen,
            disk_allowance: (rules.disk_allowance != 0).then_some(rules.disk_allowance),
            owner: Some((self.peer.uid, self.peer.gid)),
        };
        self.reserve_session_slot(&rules)?;
        let registry = self.shared.registry.clone();
        let interface = request.capture.interface.clone();
        let started = tokio::task::spawn_blocking(move || {
            // The policy names the directory; create it if missing.
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o750)
                .create(&config.directory)
                .map_err(|err| {
                    Refusal::new(
                        ErrorCode::Internal,
                        format!("creating {}: {err}", config.directory.display()),
                    )
                })?;
            // The first file first: a refused name attaches nothing.
            let recorder = Recorder::create(config).map_err(|err| {
                Refusal::new(
                    ErrorCode::Denied,
                    format!("cannot record: {}", error_chain(&err)),
                )
            })?;
            let added = registry
                .add_client(&netns, &interface, &spec, &filter)
                .map_err(|err| capture_refusal(err, &request.capture))?;
            Ok::<_, Refusal>((recorder, added, request))
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        let (recorder, (slot, client), request) = match started {
            Ok(started) => started,
            Err(refusal) => {
                self.unreserve_session_slot();
                return Err(refusal);
            }
        };
        let id = self.shared.new_session_id();
        let shared = self.shared.clone();
        let uid = self.peer.uid;
        let recording = self.shared.recordings.start(
            Start {
                id,
                uid,
                pattern: request.pattern.clone(),
                directory: directory.display().to_string(),
                client,
                slot,
                packet_count: request.capture.packet_count,
                registry: self.shared.registry.clone(),
                shutdown: self.shutdown.clone(),
                on_end: Box::new(move || shared.release_session(uid)),
                revoked: {
                    let policy = self.shared.policy.clone();
                    let peer = self.peer;
                    let capture = request.capture.clone();
                    Box::new(move || {
                        let policy = policy.current();
                        match policy.rules_for(&peer) {
                            None => Some(format!("uid {} may do nothing", peer.uid)),
                            Some(rules) if rules.record_directory.is_none() => {
                                Some("no record_directory".to_owned())
                            }
                            Some(rules) => check_request(rules, &capture)
                                .err()
                                .map(|refusal| refusal.message),
                        }
                    })
                },
                policy_generation: {
                    let policy = self.shared.policy.clone();
                    Box::new(move || policy.generation())
                },
            },
            recorder,
        );
        tracing::info!(
            recording = id,
            uid,
            pattern = request.pattern,
            "recording started"
        );
        Ok(recording.info())
    }

    /// Stops one of the peer's recordings (root: any) and reports it.
    async fn stop_recording(&self, id: u64) -> Result<RecordingInfo, Refusal> {
        let recording = self
            .shared
            .recordings
            .visible_to(self.peer.uid)
            .into_iter()
            .find(|recording| recording.id == id)
            .ok_or_else(|| {
                Refusal::new(ErrorCode::Denied, format!("no recording {id} of yours"))
            })?;
        let stopping = recording.clone();
        let _ = tokio::task::spawn_blocking(move || stopping.stop_and_wait()).await;
        Ok(recording.info())
    }

    /// The performance statistics this peer may see: everything for root,
    /// its own sessions for anyone else.
    fn daemon_stats(&self) -> DaemonStats {
        let is_root = self.peer.uid == 0;
        let interfaces = if is_root {
            self.shared
                .registry
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
                .collect()
        } else {
            Vec::new()
        };
        let sessions = lock(&self.shared.sessions)
            .iter()
            .filter(|(_, info)| is_root || info.uid == self.peer.uid)
            .filter_map(|(&id, info)| {
                let counters = self.shared.registry.counters(&info.slot).ok()?;
                Some(SessionStats {
                    id,
                    uid: info.uid,
                    pid: info.pid,
                    netns: info.netns.clone(),
                    interface: info.interface.clone(),
                    stats: to_stats(&counters),
                })
            })
            .collect();
        DaemonStats {
            time_ns: now_ns(),
            interfaces,
            sessions,
        }
    }

    fn counters(&self, capture: &Capture) -> Result<ClientCounters, Refusal> {
        self.shared
            .registry
            .counters(&capture.slot)
            .map_err(|err| Refusal::new(ErrorCode::Internal, err.to_string()))
    }

    /// Moves waiting records to the client; ends the session when its count
    /// is reached.
    async fn forward_packets(&mut self, connection: &mut Connection<UnixStream>) -> Next {
        let Some(capture) = self.capture.as_mut() else {
            return Next::Continue;
        };
        let limit = capture.remaining.map_or(DRAIN_BATCH, |remaining| {
            remaining.min(DRAIN_BATCH as u64) as usize
        });
        let mut packets = Vec::new();
        while packets.len() < limit {
            let record = match capture.ring.get_mut().next_record() {
                Some(record) => record,
                None => {
                    // Empty: clear the readiness, then look once more, since a
                    // record committed meanwhile may have had its wake-up
                    // consumed by the clear.
                    if let Ok(Ok(mut guard)) =
                        tokio::time::timeout(Duration::ZERO, capture.ring.readable_mut()).await
                    {
                        guard.clear_ready();
                    }
                    match capture.ring.get_mut().next_record() {
                        Some(record) => record,
                        None => break,
                    }
                }
            };
            packets.push(Packet {
                timestamp_ns: record.timestamp_ns,
                wire_len: record.wire_len,
                direction: if record.direction == DIR_OUT {
                    Direction::Out
                } else {
                    Direction::In
                },
                data: record.data,
            });
        }
        capture.backlog = packets.len() == limit;
        if packets.is_empty() {
            return Next::Continue;
        }
        capture.forwarded += packets.len() as u64;
        if let Some(remaining) = capture.remaining.as_mut() {
            *remaining -= packets.len() as u64;
        }
        let count_reached = capture.remaining == Some(0);
        for reply in pktd_proto::batch_packets(packets, pktd_proto::MAX_REPLY_FRAME) {
            if connection.write_reply(&reply).await.is_err() {
                return Next::Stop;
            }
        }
        if count_reached {
            self.end(connection, EndReason::CountReached).await;
            return Next::Stop;
        }
        Next::Continue
    }

    /// Quotas reached end the session; new ring-full drops are told to the
    /// client as an unsolicited Stats reply. Also forwards anything waiting,
    /// in case a ring wake-up was missed.
    async fn check_limits(&mut self, connection: &mut Connection<UnixStream>) -> Next {
        if let Next::Stop = self.forward_packets(connection).await {
            return Next::Stop;
        }
        let Some(capture) = self.capture.as_ref() else {
            return Next::Continue;
        };
        let Ok(counters) = self.counters(capture) else {
            return Next::Continue;
        };
        // A quota ends the session, but only once every packet the kernel
        // delivered before it has reached the client.
        if counters.over_quota > 0 && counters.delivered <= capture.forwarded {
            // Whatever was delivered before the quota was hit went above.
            let reason = if capture.rules.packet_quota != 0
                && counters.delivered >= capture.rules.packet_quota
            {
                EndReason::PacketQuota
            } else {
                EndReason::ByteQuota
            };
            self.end(connection, reason).await;
            return Next::Stop;
        }
        if counters.dropped > capture.told_dropped {
            if let Some(capture) = self.capture.as_mut() {
                capture.told_dropped = counters.dropped;
            }
            if connection
                .write_reply(&Reply::Stats(to_stats(&counters)))
                .await
                .is_err()
            {
                return Next::Stop;
            }
        }
        Next::Continue
    }

    /// Statistics mode: sends the counts since the last interval.
    async fn report_interval(&mut self, connection: &mut Connection<UnixStream>) -> Next {
        let Some(capture) = self.capture.as_ref() else {
            return Next::Continue;
        };
        let Ok(counters) = self.counters(capture) else {
            return Next::Continue;
        };
        let end_ns = now_ns();
        let Some(capture) = self.capture.as_mut() else {
            return Next::Continue;
        };
        let Some((start_ns, matched, bytes)) =
            capture
                .last_interval
                .replace((end_ns, counters.matched, counters.matched_bytes))
        else {
            return Next::Continue;
        };
        let interval = Interval {
            start_ns,
            end_ns,
            packets: counters.matched - matched,
            bytes: counters.matched_bytes - bytes,
        };
        match connection.write_reply(&Reply::Interval(interval)).await {
            Ok(()) => Next::Continue,
            Err(_) => Next::Stop,
        }
    }

    /// Ends the session if the new policy no longer allows it.
    async fn recheck_policy(&mut self, connection: &mut Connection<UnixStream>) -> Next {
        let Some(capture) = self.capture.as_ref() else {
            return Next::Continue;
        };
        if let Err(refusal) = self.allowed_rules(&capture.request) {
            tracing::info!(
                session = capture.id,
                reason = refusal.message,
                "policy revoked a session"
            );
            self.end(connection, EndReason::PolicyRevoked).await;
            return Next::Stop;
        }
        Next::Continue
    }

    /// Sends End with the final counters (after the last packets) and
    /// releases the slot. Without a session there is nothing to end.
    async fn end(&mut self, connection: &mut Connection<UnixStream>, reason: EndReason) {
        let Some(capture) = self.capture.take() else {
            return;
        };
        self.stats_timer = None;
        let stats = self
            .counters(&capture)
            .map(|counters| to_stats(&counters))
            .unwrap_or_default();
        self.release(&capture);
        let _ = connection.write_reply(&Reply::End { reason, stats }).await;
    }
}

/// What the kernel is told of a session: the request cut to the rules.
/// Also returns the snaplen the filter is compiled for.
fn client_spec(rules: &Rules, request: &OpenCapture) -> (ClientSpec, u32) {
    let (inbound, mut outbound) = directions(request.direction);
    // On loopback every packet leaves and arrives again: like libpcap,
    // capturing both directions sees it once, arriving.
    if request.interface == "lo" && inbound {
        outbound = false;
    }
    let snaplen = match request.snaplen {
        0 => rules.max_snaplen,
        asked => asked.min(rules.max_snaplen),
    };
    let ring_bytes = match request.buffer_bytes {
        0 => rules.ring_bytes,
        asked => asked.min(rules.ring_bytes),
    };
    let spec = ClientSpec {
        directions: if inbound { DIR_IN } else { 0 } | if outbound { DIR_OUT } else { 0 },
        snaplen: snaplen.min(MAX_CAPLEN),
        // A count is a quota the kernel can enforce too: nothing past it
        // is copied into the ring.
        packet_quota: match (rules.packet_quota, request.packet_count) {
            (0, count) | (count, 0) => count,
            (quota, count) => quota.min(count),
        },
        byte_quota: rules.byte_quota,
        ring_bytes,
        count_only: request.stats_interval_ms != 0,
    };
    (spec, snaplen)
}

/// Resolves when a statistics-mode interval ends (never without one).
async fn next_stats_tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Resolves when the capture's ring has records, or DRAIN_EVERY has passed
/// (the kernel wakes readers only once their ring is an eighth full); never
/// without a capture.
async fn readable(capture: &Option<Capture>) -> std::io::Result<()> {
    match capture {
        Some(capture) if capture.backlog => Ok(()),
        Some(capture) => match tokio::time::timeout(DRAIN_EVERY, capture.ring.readable()).await {
            Ok(ready) => ready.map(|_| ()),
            Err(_elapsed) => Ok(()),
        },
        None => std::future::pending().await,
    }
}

fn directions(direction: Direction) -> (bool, bool) {
    match direction {
        Direction::In => (true, false),
        Direction::Out => (false, true),
        Direction::InOut => (true, true),
    }
}

fn check_request(rules: &Rules, request: &OpenCapture) -> Result<(), Refusal> {
    if !rules.allows_netns(&request.netns) {
        return Err(Refusal::new(
            ErrorCode::Denied,
            format!(
                "principal {:?} may not capture in network namespace {:?}",
                rules.principal, request.netns
            ),
        ));
    }
    if !rules.allows_interface(&request.interface) {
        return Err(Refusal::new(
            ErrorCode::Denied,
            format!(
                "principal {:?} may not capture on interface {:?}",
                rules.principal, request.interface
            ),
        ));
    }
    let (inbound, outbound) = directions(request.direction);
    if !rules.allows_direction(inbound, outbound) {
        return Err(Refusal::new(
            ErrorCode::Denied,
            format!(
                "principal {:?} may not capture direction {:?}",
                rules.principal, request.direction
            ),
        ));
    }
    Ok(())
}

/// The program the kernel runs for a session: the client's filter, ANDed
/// with the policy's when there is one.
fn session_filter(
    rules: &Rules,
    filter: &FilterSpec,
    optimize: bool,
    snaplen: u32,
) -> Result<ValidProgram, Refusal> {
    let invalid = |err: FilterError| Refusal::new(ErrorCode::InvalidFilter, err.to_string());
    let client = match filter {
        FilterSpec::Expression(expression) => compile(expression, optimize, snaplen),
        FilterSpec::Bytecode(insns) => {
            let insns: Vec<_> = insns.iter().copied().map(Into::into).collect();
            validate(&insns)
        }
    }
    .map_err(invalid)?;
    match &rules.filter {
        None => Ok(client),
        Some(expression) => {
            let policy = compile(expression, true, snaplen).map_err(|err| {
                Refusal::new(ErrorCode::Internal, format!("the policy's filter: {err}"))
            })?;
            and_then(&policy, &client).map_err(invalid)
        }
    }
}

fn capture_refusal(err: CaptureError, request: &OpenCapture) -> Refusal {
    match err {
        CaptureError::NoInterface { .. } => {
            Refusal::new(ErrorCode::NoSuchInterface, err.to_string())
        }
        CaptureError::Netns(_) => Refusal::new(
            ErrorCode::NoSuchNetns,
            format!("network namespace {:?}: {err}", request.netns),
        ),
        CaptureError::SlotsFull { .. } => Refusal::new(ErrorCode::Limit, err.to_string()),
        CaptureError::InvalidSpec { .. } => Refusal::new(ErrorCode::Malformed, err.to_string()),
        other => Refusal::new(ErrorCode::Internal, error_chain(&other)),
    }
}

/// An error and its causes on one line.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn to_stats(counters: &ClientCounters) -> Stats {
    Stats {
        received: counters.seen,
        matched: counters.matched,
        delivered: counters.delivered,
        dropped: counters.dropped,
        over_quota: counters.over_quota,
    }
}
