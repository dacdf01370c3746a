//! Capture sessions: open one through the daemon, read its packets, change
//! its filter, ask for its counters, close it.

use std::{collections::VecDeque, path::PathBuf};

use pktd_common::CbpfInsn;
use pktd_proto::{
    Connection, Direction, EndReason, FilterSpec, Interval, OpenCapture, Packet, Reply, Request,
    Stats,
};
use tokio::net::UnixStream;

use crate::{
    Error,
    handshake::{connect, greet, unexpected},
};

/// Where the daemon listens unless told otherwise (`PKTD_SOCKET` overrides).
pub const DEFAULT_SOCKET: &str = "/run/pktd/pktd.sock";

/// Describes a capture to open, like the arguments of `pcap_open_live` plus
/// `pcap_setfilter`.
///
/// ```no_run
/// # async fn example() -> Result<(), libwire::Error> {
/// let mut capture = libwire::CaptureBuilder::new("eth0")
///     .filter("udp port 53")
///     .snaplen(128)
///     .count(10)
///     .open()
///     .await?;
/// while let Some(packet) = capture.next_packet().await? {
///     println!("{} of {} bytes", packet.data.len(), packet.wire_len);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct CaptureBuilder {
    socket: PathBuf,
    request: OpenCapture,
}

impl CaptureBuilder {
    /// A capture on `interface` in the daemon's own namespace, both
    /// directions, snaplen 262144, no filter (all packets), no count.
    pub fn new(interface: impl Into<String>) -> Self {
        let socket = std::env::var_os("PKTD_SOCKET")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
        Self {
            socket,
            request: OpenCapture {
                netns: String::new(),
                interface: interface.into(),
                direction: Direction::InOut,
                snaplen: 262_144,
                headers_only: false,
                filter: FilterSpec::Expression(String::new()),
                optimize: true,
                packet_count: 0,
                buffer_bytes: 0,
                stats_interval_ms: 0,
            },
        }
    }

    /// The daemon's socket.
    pub fn socket(mut self, path: impl Into<PathBuf>) -> Self {
        self.socket = path.into();
        self
    }

    /// The network namespace: an `ip netns` name or `/proc/PID/ns/net`.
    pub fn netns(mut self, netns: impl Into<String>) -> Self {
        self.request.netns = netns.into();
        self
    }

    /// Which packets: received, sent, or both.
    pub fn direction(mut self, direction: Direction) -> Self {
        self.request.direction = direction;
        self
    }

    /// Most bytes per packet (the daemon may lower it; see
    /// [`Capture::snaplen`]).
    pub fn snaplen(mut self, snaplen: u32) -> Self {
        self.request.snaplen = snaplen;
        self
    }

    /// Cut every packet after its transport header (Ethernet, VLAN tags,
    /// IPv4 with options or IPv6 with extension headers, then TCP with
    /// options, UDP, ICMP or ICMPv6), the filter seeing only those
    /// headers too; with a snaplen, the smaller cut applies. A
    /// principal's policy may impose it ([`Capture::headers_only`]).
    pub fn headers_only(mut self, headers_only: bool) -> Self {
        self.request.headers_only = headers_only;
        self
    }

    /// A tcpdump filter expression (empty: every packet).
    pub fn filter(mut self, expression: impl Into<String>) -> Self {
        self.request.filter = FilterSpec::Expression(expression.into());
        self
    }

    /// A classic-BPF program instead of an expression.
    pub fn bytecode(mut self, program: &[CbpfInsn]) -> Self {
        self.request.filter = FilterSpec::Bytecode(program.iter().map(|&i| i.into()).collect());
        self
    }

    /// Whether libpcap's optimiser runs on the expression (tcpdump -O turns
    /// it off).
    pub fn optimize(mut self, optimize: bool) -> Self {
        self.request.optimize = optimize;
        self
    }

    /// End the session after this many packets (0: no limit).
    pub fn count(mut self, count: u64) -> Self {
        self.request.packet_count = count;
        self
    }

    /// Kernel ring buffer size in bytes (0: the policy's default).
    pub fn buffer_bytes(mut self, bytes: u32) -> Self {
        self.request.buffer_bytes = bytes;
        self
    }

    /// Statistics mode: the kernel only counts the packets and bytes the
    /// filter matches, copying none, and [`Capture::next_interval`] yields
    /// the counts every `interval` (at least 100 ms).
    pub fn stats_only(mut self, interval: std::time::Duration) -> Self {
        self.request.stats_interval_ms = interval.as_millis().clamp(1, u128::from(u32::MAX)) as u32;
        self
    }

    /// The socket and the request, for the other kinds of session.
    pub(crate) fn into_parts(self) -> (PathBuf, OpenCapture) {
        (self.socket, self.request)
    }

    /// Connects to the daemon and opens the capture.
    pub async fn open(self) -> Result<Capture, Error> {
        let stream = connect(&self.socket).await?;
        self.open_on(stream).await
    }

    /// Opens the capture over an already connected stream.
    pub async fn open_on(self, stream: UnixStream) -> Result<Capture, Error> {
        let mut connection = greet(stream).await?;
        connection
            .write_request(&Request::Open(self.request))
            .await?;
        let mut capture = Capture {
            connection,
            session_id: 0,
            link_type: 0,
            snaplen: 0,
            headers_only: false,
            pending: VecDeque::new(),
            intervals: VecDeque::new(),
            last_stats: Stats::default(),
            end: None,
            closing: false,
        };
        match capture.read_reply().await? {
            Reply::Opened {
                session_id,
                link_type,
                snaplen,
                headers_only,
            } => {
                capture.session_id = session_id;
                capture.link_type = link_type;
                capture.snaplen = snaplen;
                capture.headers_only = headers_only;
                Ok(capture)
            }
            other => Err(unexpected(Some(other))),
        }
    }
}

/// An open capture session.
pub struct Capture {
    connection: Connection<UnixStream>,
    session_id: u64,
    link_type: u32,
    snaplen: u32,
    headers_only: bool,
    pending: VecDeque<Packet>,
    intervals: VecDeque<Interval>,
    last_stats: Stats,
    end: Option<EndReason>,
    closing: bool,
}

impl Capture {
    /// The daemon's id of this session.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The link type (1: Ethernet).
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    /// The snaplen in force: the least of the one asked for and the policy's.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }

    /// Whether packets are cut after their transport header (asked for
    /// with [`CaptureBuilder::headers_only`], or the principal's policy).
    pub fn headers_only(&self) -> bool {
        self.headers_only
    }

    /// Why the session ended, once it has.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.end.as_ref()
    }

    /// The latest counters the daemon sent (with each drop notice and at
    /// the end).
    pub fn last_stats(&self) -> Stats {
        self.last_stats
    }

    /// The next packet; `None` once the session has ended (count reached,
    /// quota, closed, revoked, daemon shutdown: see [`Capture::end_reason`]).
    pub async fn next_packet(&mut self) -> Result<Option<Packet>, Error> {
        loop {
            if let Some(packet) = self.pending.pop_front() {
                return Ok(Some(packet));
            }
            if self.end.is_some() {
                return Ok(None);
            }
            match self.read_one().await {
                // Packets were queued, or a drop notice recorded.
                Ok(None) | Ok(Some(Reply::Stats(_))) | Err(Error::Ended { .. }) => {}
                Ok(Some(reply)) => return Err(unexpected(Some(reply))),
                Err(err) => return Err(err),
            }
        }
    }

    /// Statistics mode: the next interval's counts; `None` once the session
    /// has ended.
    pub async fn next_interval(&mut self) -> Result<Option<Interval>, Error> {
        loop {
            if let Some(interval) = self.intervals.pop_front() {
                return Ok(Some(interval));
            }
            if self.end.is_some() {
                return Ok(None);
            }
            match self.read_one().await {
                Ok(None) | Ok(Some(Reply::Stats(_))) | Err(Error::Ended { .. }) => {}
                Ok(Some(reply)) => return Err(unexpected(Some(reply))),
                Err(err) => return Err(err),
            }
        }
    }

    /// Replaces the session's filter with a tcpdump expression; packets
    /// after the reply are judged by the new filter only.
    pub async fn set_filter(&mut self, expression: &str, optimize: bool) -> Result<(), Error> {
        self.request(Request::SetFilter {
            filter: FilterSpec::Expression(expression.to_owned()),
            optimize,
        })
        .await
        .and_then(|reply| match reply {
            Reply::FilterSet => Ok(()),
            other => Err(unexpected(Some(other))),
        })
    }

    /// The session's counters now.
    pub async fn stats(&mut self) -> Result<Stats, Error> {
        self.request(Request::Stats)
            .await
            .and_then(|reply| match reply {
                Reply::Stats(stats) => Ok(stats),
                other => Err(unexpected(Some(other))),
            })
    }

    /// Asks the daemon to end the session. Packets already captured keep
    /// coming from [`Capture::next_packet`] until it returns `None`.
    pub async fn request_close(&mut self) -> Result<(), Error> {
        if self.end.is_some() || self.closing {
            return Ok(());
        }
        self.closing = true;
        self.connection.write_request(&Request::Close).await?;
        Ok(())
    }

    /// Ends the session, discarding packets not yet read, and returns the
    /// final counters.
    pub async fn close(mut self) -> Result<Stats, Error> {
        self.request_close().await?;
        while self.next_packet().await?.is_some() {}
        Ok(self.last_stats)
    }

    /// The packets as an async stream (ends with the session).
    pub fn into_stream(self) -> impl futures_core::Stream<Item = Result<Packet, Error>> {
        futures_util::stream::unfold(Some(self), |capture| async move {
            let mut capture = capture?;
            match capture.next_packet().await {
                Ok(Some(packet)) => Some((Ok(packet), Some(capture))),
                Ok(None) => None,
                Err(err) => Some((Err(err), None)),
            }
        })
    }

    async fn request(&mut self, request: Request) -> Result<Reply, Error> {
        if let Some(reason) = &self.end {
            return Err(Error::Ended {
                reason: reason.clone(),
            });
        }
        self.connection.write_request(&request).await?;
        self.read_reply().await
    }

    /// The next reply that is not packets (those are queued); the End of
    /// the session is an error here.
    async fn read_reply(&mut self) -> Result<Reply, Error> {
        loop {
            if let Some(reply) = self.read_one().await? {
                return Ok(reply);
            }
        }
    }

    /// Reads one reply: packets are queued (`None`), counters and the end
    /// are recorded, the end and errors become errors.
    async fn read_one(&mut self) -> Result<Option<Reply>, Error> {
        let reply = self.connection.read_reply().await?;
        match reply {
            Some(Reply::Packets(packets)) => {
                self.pending.extend(packets);
                Ok(None)
            }
            Some(Reply::Interval(interval)) => {
                self.intervals.push_back(interval);
                Ok(None)
            }
            Some(Reply::Stats(stats)) => {
                self.last_stats = stats;
                Ok(Some(Reply::Stats(stats)))
            }
            Some(Reply::End { reason, stats }) => {
                self.last_stats = stats;
                self.end = Some(reason.clone());
                Err(Error::Ended { reason })
            }
            Some(Reply::Error { code, message }) => Err(Error::Daemon { code, message }),
            Some(other) => Ok(Some(other)),
            None => {
                self.end = Some(EndReason::Error("the daemon closed the connection".into()));
                Err(Error::Disconnected)
            }
        }
    }
}
