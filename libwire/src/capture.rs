//! Capture sessions: open one through the daemon, read its packets, change
//! its filter, ask for its counters, close it.

use std::{collections::VecDeque, path::PathBuf, time::Duration};

use pktd_common::CbpfInsn;
use pktd_proto::{
    Connection, Direction, EndReason, FilterSpec, Interval, OpenCapture, Packet, Reply, Request,
    Stats,
};
use tokio::net::UnixStream;

use crate::{
    Error,
    handshake::{connect, greet, unexpected},
    ring::{PacketRef, RingReader},
    sys::FdStream,
};

/// How long a reader of its own ring waits for the kernel's wake-up before
/// it looks anyway, unless told otherwise (libpcap's `to_ms`): the kernel
/// wakes it only once the ring is an eighth full.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// Longest a capture that read its count waits for the daemon's end (and
/// final counters).
const END_WAIT: Duration = Duration::from_secs(2);

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
    timeout: Duration,
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
                immediate: false,
                zero_copy: true,
            },
            timeout: DEFAULT_TIMEOUT,
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

    /// Read the session's ring in place (the default): the daemon hands
    /// over the ring's descriptor and leaves the packets' path; the kernel
    /// still applies the policy. With `false`, or when the daemon itself
    /// rewrites the packets (see [`Capture::daemon_path`]), they come
    /// through the daemon.
    pub fn zero_copy(mut self, zero_copy: bool) -> Self {
        self.request.zero_copy = zero_copy;
        self
    }

    /// Deliver each packet as soon as it arrives (tcpdump's
    /// `--immediate-mode`) instead of in batches: the kernel wakes the
    /// reader for every packet, at a cost in CPU.
    pub fn immediate(mut self, immediate: bool) -> Self {
        self.request.immediate = immediate;
        self
    }

    /// Longest a packet waits in a quiet ring before the reader looks
    /// (libpcap's `to_ms`; [`DEFAULT_TIMEOUT`] unless set, at least 1 ms).
    /// Only for a ring read in place: the daemon looks at the rings it
    /// reads every few milliseconds.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout.max(Duration::from_millis(1));
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
        let mut connection = greet(FdStream::new(stream)).await?;
        let count = self.request.packet_count;
        connection
            .write_request(&Request::Open(self.request.clone()))
            .await?;
        let mut replies = Replies {
            connection,
            pending: VecDeque::new(),
            intervals: VecDeque::new(),
            last_stats: Stats::default(),
            end: None,
            ended_at: None,
            lost: false,
            closing: false,
        };
        let Reply::Opened {
            session_id,
            link_type,
            snaplen,
            headers_only,
            daemon_path,
            ring_bytes,
        } = replies.read_reply().await?
        else {
            return Err(unexpected(None));
        };
        let ring = match ring_bytes {
            0 => None,
            bytes => {
                let fd = replies.connection.get_mut().take_fd().ok_or_else(|| {
                    Error::Ring(std::io::Error::other(
                        "the daemon said it sent the ring, but no descriptor came",
                    ))
                })?;
                Some(RingReader::new(fd, bytes).map_err(Error::Ring)?)
            }
        };
        Ok(Capture {
            origin: self.clone(),
            replies,
            ring,
            session_id,
            link_type,
            snaplen,
            headers_only,
            daemon_path,
            left: (count != 0).then_some(count),
            timeout: self.timeout,
            current: None,
        })
    }
}

/// An open capture session.
pub struct Capture {
    /// What opened it, to open it again ([`Capture::reconnect`]).
    origin: CaptureBuilder,
    replies: Replies,
    /// The session's ring, when the client reads it in place.
    ring: Option<RingReader>,
    session_id: u64,
    link_type: u32,
    snaplen: u32,
    headers_only: bool,
    daemon_path: Option<String>,
    /// Packets still to read before the count asked for is reached.
    left: Option<u64>,
    timeout: Duration,
    /// The packet a [`PacketRef`] from the daemon's path borrows.
    current: Option<Packet>,
}

impl std::os::fd::AsFd for Capture {
    /// [`Capture::wait_fd`].
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.wait_fd()
    }
}

impl std::os::fd::AsRawFd for Capture {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsFd::as_fd(self).as_raw_fd()
    }
}

/// The connection and what its replies brought.
struct Replies {
    connection: Connection<FdStream>,
    /// Packets the daemon sent, not yet read.
    pending: VecDeque<Packet>,
    intervals: VecDeque<Interval>,
    last_stats: Stats,
    end: Option<EndReason>,
    /// When the end (or the connection's loss) was seen.
    ended_at: Option<std::time::Instant>,
    /// The connection was lost rather than ended by the daemon.
    lost: bool,
    closing: bool,
}

/// What a reconnection after a daemon restart missed
/// ([`Capture::reconnect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gap {
    /// From the end of the old session (as this process saw it: its end,
    /// or the connection's loss) to the opening of the new one.
    pub duration: Duration,
    /// The packets the interface itself counted in the session's
    /// directions between the last counters the old session sent and the
    /// new session's first: at most that many were missed (fewer, if the
    /// filter would not have taken them all). `None` when the daemon gave
    /// no such count (a principal under a policy filter may not learn the
    /// interface's traffic; or its counters were not readable).
    pub packets: Option<u64>,
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

    /// Whether packets are read from the session's ring in place.
    pub fn zero_copy(&self) -> bool {
        self.ring.is_some()
    }

    /// The session's ring buffer, when packets are read from it in place:
    /// readable (poll, epoll) when the kernel has woken its reader.
    pub fn ring_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ring.as_ref().map(RingReader::fd)
    }

    /// The descriptor that becomes readable when packets may be waiting:
    /// the ring's when they are read in place (woken as the kernel wakes
    /// readers: every record in immediate mode, else once the ring is an
    /// eighth full, so poll it with the capture's timeout), the daemon
    /// connection's otherwise.
    pub fn wait_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        match &self.ring {
            Some(ring) => ring.fd(),
            None => self.replies.connection.get_ref().fd(),
        }
    }

    /// Why packets come through the daemon though the ring was asked for
    /// (the daemon rewrites them for an anonymized principal, say).
    pub fn daemon_path(&self) -> Option<&str> {
        self.daemon_path.as_deref()
    }

    /// Why the session ended, once it has.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.replies.end.as_ref()
    }

    /// The latest counters the daemon sent (with each drop notice and at
    /// the end).
    pub fn last_stats(&self) -> Stats {
        self.replies.last_stats
    }

    /// The next packet, borrowed where it lies: in the session's ring,
    /// given back to the kernel when the [`PacketRef`] is dropped, or in
    /// libwire's buffer. `None` once the session has ended (count
    /// reached, quota, closed, revoked, daemon shutdown: see
    /// [`Capture::end_reason`]) and every packet before its end was read.
    pub async fn next_packet_ref(&mut self) -> Result<Option<PacketRef<'_>>, Error> {
        if self.left == Some(0) {
            self.count_reached().await;
            return Ok(None);
        }
        let found = match self.ring.is_some() {
            true => self.wait_in_ring().await?,
            false => self.wait_from_daemon().await?,
        };
        if !found {
            return Ok(None);
        }
        self.try_next_packet_ref()
    }

    /// The next packet if one is there already, borrowed as by
    /// [`Capture::next_packet_ref`]; never waits, nor reads the
    /// connection. A loop of these between waits reads a burst at the cost
    /// of reading the ring (libpcap's `pcap_dispatch` over what is
    /// buffered).
    pub fn try_next_packet_ref(&mut self) -> Result<Option<PacketRef<'_>>, Error> {
        if self.left == Some(0) {
            return Ok(None);
        }
        let packet = match self.ring.as_mut() {
            Some(ring) => ring.next().map_err(Error::Ring)?,
            None => {
                self.current = self.replies.pending.pop_front();
                self.current.as_ref().map(PacketRef::from_packet)
            }
        };
        if packet.is_some()
            && let Some(left) = self.left.as_mut()
        {
            *left -= 1;
        }
        Ok(packet)
    }

    /// The next packet, copied; `None` as for [`Capture::next_packet_ref`].
    pub async fn next_packet(&mut self) -> Result<Option<Packet>, Error> {
        Ok(self
            .next_packet_ref()
            .await?
            .map(|packet| packet.to_owned()))
    }

    /// Waits until a record is in the ring (`true`), or the session has
    /// ended and the ring is empty (`false`).
    async fn wait_in_ring(&mut self) -> Result<bool, Error> {
        let Self {
            ring,
            replies,
            timeout,
            ..
        } = self;
        let ring = ring.as_mut().expect("a ring");
        loop {
            if ring.has_record().map_err(Error::Ring)? {
                return Ok(true);
            }
            if replies.end.is_some() {
                // The daemon ends a session only once the kernel can no
                // longer write into its ring: it is empty for good.
                return Ok(false);
            }
            tokio::select! {
                ready = ring.readable() => ready.map_err(Error::Ring)?,
                read = replies.read_aside() => read?,
                () = tokio::time::sleep(*timeout) => {}
            }
        }
    }

    /// Waits until the daemon has sent a packet (`true`), or the session
    /// has ended (`false`).
    async fn wait_from_daemon(&mut self) -> Result<bool, Error> {
        loop {
            if !self.replies.pending.is_empty() {
                return Ok(true);
            }
            if self.replies.end.is_some() {
                return Ok(false);
            }
            self.replies.read_aside().await?;
        }
    }

    /// The count asked for has been read: the session ends here. The
    /// daemon is told, and its end read for the final counters (for a
    /// moment: what else it sends is not read).
    async fn count_reached(&mut self) {
        if self.replies.end.is_some() {
            return;
        }
        if self.request_close().await.is_ok() {
            let replies = &mut self.replies;
            let _ = tokio::time::timeout(END_WAIT, async {
                while replies.end.is_none() {
                    if let Err(Error::Disconnected | Error::Protocol(_)) = replies.read_one().await
                    {
                        break;
                    }
                }
            })
            .await;
        }
        self.replies.end = Some(EndReason::CountReached);
    }

    /// Statistics mode: the next interval's counts; `None` once the session
    /// has ended.
    pub async fn next_interval(&mut self) -> Result<Option<Interval>, Error> {
        loop {
            if let Some(interval) = self.replies.intervals.pop_front() {
                return Ok(Some(interval));
            }
            if self.replies.end.is_some() {
                return Ok(None);
            }
            self.replies.read_aside().await?;
        }
    }

    /// Replaces the session's filter with a tcpdump expression; packets
    /// after the reply are judged by the new filter only.
    pub async fn set_filter(&mut self, expression: &str, optimize: bool) -> Result<(), Error> {
        self.replace_filter(FilterSpec::Expression(expression.to_owned()), optimize)
            .await
    }

    /// Replaces the session's filter with a classic-BPF program (compiled
    /// by the caller; the daemon validates it as any).
    pub async fn set_filter_program(&mut self, program: &[CbpfInsn]) -> Result<(), Error> {
        let program = program.iter().map(|&insn| insn.into()).collect();
        self.replace_filter(FilterSpec::Bytecode(program), false)
            .await
    }

    async fn replace_filter(&mut self, filter: FilterSpec, optimize: bool) -> Result<(), Error> {
        self.replies
            .request(Request::SetFilter { filter, optimize })
            .await
            .and_then(|reply| match reply {
                Reply::FilterSet => Ok(()),
                other => Err(unexpected(Some(other))),
            })
    }

    /// The session's counters now.
    pub async fn stats(&mut self) -> Result<Stats, Error> {
        self.replies
            .request(Request::Stats)
            .await
            .and_then(|reply| match reply {
                Reply::Stats(stats) => Ok(stats),
                other => Err(unexpected(Some(other))),
            })
    }

    /// Opens the same capture again after the daemon went away (it said
    /// "daemon restarting", or the connection was lost: a crash, SIGKILL),
    /// trying for up to `patience` while the daemon is not there yet; what
    /// the gap may have lost. A count asked for goes on from what is left.
    /// The bound on the gap is as fresh as the last counters the old
    /// session sent: at its end after a restart, only those of the last
    /// [`Capture::stats`] or drop notice after a crash (ask for them now
    /// and then to keep it tight).
    pub async fn reconnect(&mut self, patience: Duration) -> Result<Gap, Error> {
        let ended_at = self
            .replies
            .ended_at
            .unwrap_or_else(std::time::Instant::now);
        let before = self.replies.last_stats.interface_packets;
        let mut builder = self.origin.clone();
        if let Some(left) = self.left {
            builder.request.packet_count = left;
        }
        let deadline = tokio::time::Instant::now() + patience;
        let mut wait = Duration::from_millis(50);
        let fresh = loop {
            match builder.clone().open().await {
                Ok(fresh) => break fresh,
                // Not there yet, or going away again: try once more.
                Err(Error::Connect { .. } | Error::Disconnected | Error::Protocol(_))
                    if tokio::time::Instant::now() + wait < deadline =>
                {
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(err) => return Err(err),
            }
        };
        let duration = ended_at.elapsed();
        *self = fresh;
        let after = self.stats().await?.interface_packets;
        Ok(Gap {
            duration,
            packets: before
                .zip(after)
                .map(|(before, after)| after.saturating_sub(before)),
        })
    }

    /// Whether the session ended because the daemon went away (said
    /// "daemon restarting", or the connection was lost), so that
    /// [`Capture::reconnect`] may go on with it.
    pub fn daemon_went_away(&self) -> bool {
        matches!(&self.replies.end, Some(EndReason::DaemonShutdown)) || self.replies.lost
    }

    /// Asks the daemon to end the session. Packets already captured keep
    /// coming from [`Capture::next_packet`] until it returns `None`.
    pub async fn request_close(&mut self) -> Result<(), Error> {
        let replies = &mut self.replies;
        if replies.end.is_some() || replies.closing {
            return Ok(());
        }
        replies.closing = true;
        replies.connection.write_request(&Request::Close).await?;
        Ok(())
    }

    /// Ends the session, discarding packets not yet read, and returns the
    /// final counters.
    pub async fn close(mut self) -> Result<Stats, Error> {
        self.request_close().await?;
        while self.next_packet_ref().await?.is_some() {}
        Ok(self.replies.last_stats)
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
}

impl Replies {
    async fn request(&mut self, request: Request) -> Result<Reply, Error> {
        if let Some(reason) = &self.end {
            return Err(Error::Ended {
                reason: reason.clone(),
            });
        }
        if let Err(err) = self.connection.write_request(&request).await {
            // The daemon has gone (EPIPE): as a read of its end would say.
            if self.end.is_none() {
                self.end = Some(EndReason::Error(format!("the connection failed: {err}")));
                self.ended_at = Some(std::time::Instant::now());
                self.lost = true;
            }
            return Err(err.into());
        }
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

    /// Reads one reply while waiting for packets or intervals: those are
    /// queued, a drop notice or the end recorded; any other reply is an
    /// error. Cancel-safe, as [`Replies::read_one`].
    async fn read_aside(&mut self) -> Result<(), Error> {
        match self.read_one().await {
            Ok(None) | Ok(Some(Reply::Stats(_))) | Err(Error::Ended { .. }) => Ok(()),
            Ok(Some(reply)) => Err(unexpected(Some(reply))),
            Err(err) => Err(err),
        }
    }

    /// Reads one reply: packets are queued (`None`), counters and the end
    /// are recorded, the end and errors become errors. Cancel-safe: it
    /// changes nothing before a whole reply has been read.
    async fn read_one(&mut self) -> Result<Option<Reply>, Error> {
        let reply = match self.connection.read_reply().await {
            Ok(reply) => reply,
            Err(err) => {
                // Reset by a daemon that died with data unread.
                if self.end.is_none() {
                    self.end = Some(EndReason::Error(format!("the connection failed: {err}")));
                    self.ended_at = Some(std::time::Instant::now());
                    self.lost = true;
                }
                return Err(err.into());
            }
        };
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
                self.ended_at = Some(std::time::Instant::now());
                Err(Error::Ended { reason })
            }
            Some(Reply::Error { code, message }) => Err(Error::Daemon { code, message }),
            Some(other) => Ok(Some(other)),
            None => {
                if self.end.is_none() {
                    self.end = Some(EndReason::Error("the daemon closed the connection".into()));
                    self.ended_at = Some(std::time::Instant::now());
                    self.lost = true;
                }
                Err(Error::Disconnected)
            }
        }
    }
}
