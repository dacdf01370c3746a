//! The wire protocol between `pktd` and its unprivileged clients.
//!
//! A connection over the daemon's Unix socket starts with a hello exchange
//! (the client sends a [`Hello`], the daemon answers [`Reply::HelloAck`] or
//! [`Reply::Error`]), after which the client sends [`Request`]s and the daemon
//! sends [`Reply`]s, including unsolicited [`Reply::Packets`] batches and a
//! final [`Reply::End`].
//!
//! Every message, the hello included, travels as one frame: a 4-byte
//! big-endian payload length, then that many bytes of bincode 2
//! (`bincode::config::standard()`, through serde). The length is checked
//! against a hard cap before anything is allocated for it:
//! [`MAX_REQUEST_FRAME`] for client → daemon, [`MAX_REPLY_FRAME`] for
//! daemon → client and [`MAX_HELLO_FRAME`] for the hello.
//!
//! [`Connection`] does the framing over any `AsyncRead + AsyncWrite` stream,
//! so the daemon and the clients share one implementation.
//!
//! # Example
//!
//! ```
//! use pktd_proto::{Connection, Hello, PROTOCOL_VERSION, Reply, Request};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), pktd_proto::ProtoError> {
//! let (client, daemon) = tokio::net::UnixStream::pair()?;
//! let mut client = Connection::new(client);
//! let mut daemon = Connection::new(daemon);
//!
//! client.write_hello(&Hello::new("pktcap 0.1")).await?;
//! let hello = daemon.read_hello().await?.expect("client sent a hello");
//! assert!(hello.check().is_ok());
//! daemon
//!     .write_reply(&Reply::HelloAck { version: PROTOCOL_VERSION, daemon: "pktd 0.1".into() })
//!     .await?;
//! assert!(matches!(client.read_reply().await?, Some(Reply::HelloAck { .. })));
//!
//! client.write_request(&Request::Stats).await?;
//! assert_eq!(daemon.read_request().await?, Some(Request::Stats));
//!
//! // Closing the client at a frame boundary is a clean end of stream.
//! drop(client);
//! assert_eq!(daemon.read_request().await?, None);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

use std::fmt;

use bincode::config::Config;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

mod packets;
#[cfg(test)]
mod tests;

pub use packets::{PacketRef, encode_packets};

/// The four bytes every [`Hello`] starts with.
pub const MAGIC: [u8; 4] = *b"PKTD";

/// The protocol version this crate speaks.
pub const PROTOCOL_VERSION: u32 = 6;

/// Largest payload of a client → daemon frame.
pub const MAX_REQUEST_FRAME: usize = 256 * 1024;

/// Largest payload of a daemon → client frame.
pub const MAX_REPLY_FRAME: usize = 8 * 1024 * 1024;

/// Largest payload of a hello frame (either direction reads it with this cap).
pub const MAX_HELLO_FRAME: usize = 1024;

/// Largest payload any frame may have, whatever `max_len` a caller passes to
/// [`Connection::read_frame`] or [`Connection::write_frame`].
pub const MAX_FRAME: usize = MAX_REPLY_FRAME;

/// Bytes of the length prefix.
const HEADER_LEN: usize = 4;

/// How much buffer space to offer each read while the frame size is not yet
/// known (or is smaller): enough to pick up several small frames at once, and
/// small enough that a hostile length prefix costs next to nothing.
const READ_CHUNK: usize = 8 * 1024;

/// Bincode counts each decoded value against its limit by its in-memory size
/// (a `u64` counts 8 even when its varint took 1 byte), so a valid payload of
/// `n` bytes counts at most `8 * n`. Limiting at that bound never rejects a
/// valid frame, while a length *inside* the payload (of a string, say) can no
/// longer make the decoder allocate more than that before it notices the
/// payload is too short.
const DECODE_LIMIT_FACTOR: usize = 8;

/// The client's opening message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Must be [`MAGIC`].
    pub magic: [u8; 4],
    /// The client's [`PROTOCOL_VERSION`].
    pub version: u32,
    /// Free text naming the client, e.g. `"pktcap 0.1"`; informational only.
    pub client: String,
}

impl Hello {
    /// A hello for this crate's protocol version.
    pub fn new(client: impl Into<String>) -> Self {
        Self {
            magic: MAGIC,
            version: PROTOCOL_VERSION,
            client: client.into(),
        }
    }

    /// Whether the daemon should accept this hello; the error is the code to
    /// answer with.
    pub fn check(&self) -> Result<(), ErrorCode> {
        if self.magic != MAGIC {
            Err(ErrorCode::BadHello)
        } else if self.version != PROTOCOL_VERSION {
            Err(ErrorCode::UnsupportedVersion)
        } else {
            Ok(())
        }
    }
}

/// Which way packets travel relative to the captured interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// Received by the interface.
    In,
    /// Sent by the interface.
    Out,
    /// Both (only meaningful when asking for a capture).
    InOut,
}

impl Direction {
    /// The way a kernel record (`pktd_common::RecordHeader::direction`)
    /// says its packet went: `DIR_OUT`, or received.
    pub fn of_record(direction: u32) -> Self {
        if direction == pktd_common::DIR_OUT {
            Self::Out
        } else {
            Self::In
        }
    }
}

/// One classic-BPF instruction on the wire.
///
/// Kept separate from [`pktd_common::CbpfInsn`] so that the kernel-shared
/// layout never has to carry serde, and the wire format cannot change by
/// accident when that layout does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WireInsn {
    /// Opcode.
    pub code: u16,
    /// Jump offset when the condition holds.
    pub jt: u8,
    /// Jump offset when the condition does not hold.
    pub jf: u8,
    /// Generic field (constant, offset, memory index).
    pub k: u32,
}

impl From<pktd_common::CbpfInsn> for WireInsn {
    fn from(insn: pktd_common::CbpfInsn) -> Self {
        Self {
            code: insn.code,
            jt: insn.jt,
            jf: insn.jf,
            k: insn.k,
        }
    }
}

impl From<WireInsn> for pktd_common::CbpfInsn {
    fn from(insn: WireInsn) -> Self {
        Self::new(insn.code, insn.jt, insn.jf, insn.k)
    }
}

/// A packet filter as the client supplies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FilterSpec {
    /// A pcap-filter expression, compiled by the daemon.
    Expression(String),
    /// An already compiled classic-BPF program, validated by the daemon.
    Bytecode(Vec<WireInsn>),
}

/// What a client asks for when it opens a capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenCapture {
    /// Network namespace: `""` for the daemon's own, an `ip netns` name, or a
    /// path such as `/proc/PID/ns/net`.
    pub netns: String,
    /// Interface name inside that namespace.
    pub interface: String,
    /// Which packets to capture.
    pub direction: Direction,
    /// Bytes to keep of each packet; the daemon may lower it.
    pub snaplen: u32,
    /// Cut every packet after its transport header (`pktcap --snap
    /// headers`), and confine the filter to the headers; the smaller of
    /// this and `snaplen` applies. A principal's policy may impose it.
    pub headers_only: bool,
    /// Which packets to deliver.
    pub filter: FilterSpec,
    /// Whether to optimise the compiled filter.
    pub optimize: bool,
    /// Stop after this many delivered packets; 0 = unlimited.
    pub packet_count: u64,
    /// Requested ring buffer size in bytes; 0 = the policy's default.
    pub buffer_bytes: u32,
    /// 0: deliver packets. Otherwise statistics mode: the kernel only
    /// counts matching packets and bytes, copying none, and the daemon
    /// sends [`Reply::Interval`] every this many milliseconds.
    pub stats_interval_ms: u32,
    /// Wake the reader for every packet rather than in batches (tcpdump's
    /// `--immediate-mode`): lower latency, more CPU per packet.
    pub immediate: bool,
    /// Ask for the session's ring itself: the daemon then sends its fd
    /// with [`Reply::Opened`] (SCM_RIGHTS, on that frame's first byte),
    /// and the client reads the records in place; no packets come over
    /// the connection. The daemon may say no (see [`Reply::Opened`]).
    pub zero_copy: bool,
}

/// Counts of one statistics-mode interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    /// Start of the interval, nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// End of the interval.
    pub end_ns: u64,
    /// Packets the filter matched in the interval.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
}

/// A recording to start: the daemon writes the capture to files in the
/// principal's directory instead of streaming it, and goes on after the
/// client disconnects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingRequest {
    /// What to capture (`stats_interval_ms` must be 0; `packet_count` ends
    /// the recording).
    pub capture: OpenCapture,
    /// File names: `A-Za-z0-9._-` and exactly one `%d`, the file's sequence
    /// number; not starting with `.` or `-`; at most 237 bytes (so that
    /// every name fits 255 bytes with a 20-digit number).
    pub pattern: String,
    /// When to start a new file, and how many to keep.
    pub rotation: Rotation,
    /// pcapng instead of pcap.
    pub pcapng: bool,
}

/// How a recording rotates its files (tcpdump's -G, -C, -W and -c); 0
/// means no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Rotation {
    /// Start a new file after this many seconds (0: never); files rotate
    /// without traffic too.
    pub seconds: u32,
    /// Start a new file before one would exceed this many bytes (0: never;
    /// a file always gets at least one packet).
    pub bytes: u64,
    /// Start a new file after this many packets (0: never).
    pub packets: u64,
    /// Keep at most this many files, deleting the oldest (0: all).
    pub max_files: u32,
}

/// An interface a client may capture on ([`Request::ListInterfaces`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceInfo {
    /// Its network namespace as [`OpenCapture::netns`] takes it (empty:
    /// the daemon's own).
    pub netns: String,
    /// Its name there.
    pub name: String,
    /// Its index there.
    pub index: u32,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// Its link is up (`IFF_RUNNING`).
    pub running: bool,
    /// A loopback interface.
    pub loopback: bool,
}

/// A recording as the daemon reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingInfo {
    /// The recording's id (for stopping it).
    pub id: u64,
    /// Its owner.
    pub uid: u32,
    /// The file name pattern.
    pub pattern: String,
    /// The directory its files are in.
    pub directory: String,
    /// Its files still on disk, oldest first (names only).
    pub files: Vec<String>,
    /// Packets written.
    pub packets: u64,
    /// Bytes written.
    pub bytes: u64,
    /// `None` while it records; why it ended otherwise.
    pub ended: Option<EndReason>,
}

/// Traffic through one attached interface (all packets, both directions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceStats {
    /// The namespace, as the first session there named it.
    pub netns: String,
    /// The interface.
    pub interface: String,
    /// Packets seen.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// TCP SYNs (connection attempts).
    pub tcp_syn: u64,
    /// TCP SYN-ACKs.
    pub tcp_synack: u64,
    /// Sessions capturing there.
    pub sessions: u32,
}

/// One session, for the performance statistics.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionStats {
    /// The daemon's session id.
    pub id: u64,
    /// Its client's uid and pid.
    pub uid: u32,
    /// Its client's pid.
    pub pid: i32,
    /// Where it captures.
    pub netns: String,
    /// Where it captures.
    pub interface: String,
    /// Its counters.
    pub stats: Stats,
}

/// Answer to [`Request::DaemonStats`]: counters (not rates) at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonStats {
    /// When they were read, nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Attached interfaces (root only).
    pub interfaces: Vec<InterfaceStats>,
    /// Sessions: all of them for root, the client's own otherwise.
    pub sessions: Vec<SessionStats>,
}

/// What became of one frame handed to [`Request::Inject`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InjectVerdict {
    /// Sent on the interface.
    Sent,
    /// Refused, and why.
    Refused(String),
}

/// A client → daemon message after the hello.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Start capturing.
    Open(OpenCapture),
    /// Replace the filter of the open capture.
    SetFilter {
        /// The new filter.
        filter: FilterSpec,
        /// Whether to optimise it.
        optimize: bool,
    },
    /// Ask for [`Reply::Stats`].
    Stats,
    /// Send Ethernet frames on an interface (no capture needed); the daemon
    /// answers with [`Reply::Injected`].
    Inject {
        /// Network namespace, as in [`OpenCapture::netns`].
        netns: String,
        /// Interface name inside it.
        interface: String,
        /// Whole Ethernet frames, without FCS.
        frames: Vec<Frame>,
    },
    /// Ask for [`Reply::DaemonStats`] (no capture needed).
    DaemonStats,
    /// Start a recording; answered with [`Reply::Recording`].
    StartRecording(RecordingRequest),
    /// The client's recordings (all of them for root); answered with
    /// [`Reply::Recordings`].
    ListRecordings,
    /// Stop one of the client's recordings; answered with
    /// [`Reply::Recording`] as it ended.
    StopRecording {
        /// The recording's id.
        id: u64,
    },
    /// Stop capturing; the daemon answers with [`Reply::End`].
    Close,
    /// The interfaces the client may capture on, in every network
    /// namespace its policy names; answered with [`Reply::Interfaces`].
    ListInterfaces,
}

/// One frame to inject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Frame(#[serde(with = "byte_buf")] pub Vec<u8>);

/// One captured packet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    /// Capture time in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Length of the packet on the wire (`data` may be shorter: snaplen).
    pub wire_len: u32,
    /// Which way the packet travelled.
    pub direction: Direction,
    /// The captured bytes.
    // Encoded exactly as serde's default for `Vec<u8>` would be (a length,
    // then the raw bytes), but decoded in one copy instead of byte by byte:
    // this is the bulk of every reply.
    #[serde(with = "byte_buf")]
    pub data: Vec<u8>,
}

/// Capture counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stats {
    /// Packets the filter ran on.
    pub received: u64,
    /// Packets the filter accepted.
    pub matched: u64,
    /// Packets sent to the client.
    pub delivered: u64,
    /// Matched packets lost because the ring was full.
    pub dropped: u64,
    /// Matched packets withheld because a quota was exhausted.
    pub over_quota: u64,
    /// Packets the filter gave no verdict on: it is interpreted (it has no
    /// native code) and ran out of the interpreter's per-packet budget.
    /// Always 0 under a policy filter, which these packets may not pass.
    pub over_budget: u64,
    /// The packets the interface itself has counted in the session's
    /// directions, now (the kernel's counters, which outlive the daemon):
    /// the difference between two readings around a daemon restart bounds
    /// what the restart may have lost. `None` under a policy filter (the
    /// interface's traffic is more than the principal may know of) or when
    /// the kernel's counters cannot be read.
    pub interface_packets: Option<u64>,
}

/// Why the daemon refused or failed a request.
///
/// On the wire this travels as its declaration index (serde's default), so
/// new codes must be appended, never inserted or reordered.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The hello was not a valid `pktd` hello.
    BadHello,
    /// The client's protocol version is not supported.
    UnsupportedVersion,
    /// A frame could not be decoded.
    Malformed,
    /// A request that is not valid in the connection's current state.
    OutOfOrder,
    /// The policy does not allow this.
    Denied,
    /// The filter does not compile or does not validate.
    InvalidFilter,
    /// No such interface in the namespace.
    NoSuchInterface,
    /// No such network namespace.
    NoSuchNetns,
    /// A policy or daemon limit was reached.
    Limit,
    /// The daemon failed.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 10] = [
        Self::BadHello,
        Self::UnsupportedVersion,
        Self::Malformed,
        Self::OutOfOrder,
        Self::Denied,
        Self::InvalidFilter,
        Self::NoSuchInterface,
        Self::NoSuchNetns,
        Self::Limit,
        Self::Internal,
    ];

    /// A stable number for logs, exit statuses and foreign clients.
    pub const fn code(self) -> u16 {
        match self {
            Self::BadHello => 1,
            Self::UnsupportedVersion => 2,
            Self::Malformed => 3,
            Self::OutOfOrder => 4,
            Self::Denied => 5,
            Self::InvalidFilter => 6,
            Self::NoSuchInterface => 7,
            Self::NoSuchNetns => 8,
            Self::Limit => 9,
            Self::Internal => 10,
        }
    }

    /// The code whose [`code`](Self::code) is `code`, if any.
    pub fn from_code(code: u16) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The snake_case name, as [`Display`](fmt::Display) prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::BadHello => "bad_hello",
            Self::UnsupportedVersion => "unsupported_version",
            Self::Malformed => "malformed",
            Self::OutOfOrder => "out_of_order",
            Self::Denied => "denied",
            Self::InvalidFilter => "invalid_filter",
            Self::NoSuchInterface => "no_such_interface",
            Self::NoSuchNetns => "no_such_netns",
            Self::Limit => "limit",
            Self::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a session (a capture or a recording) ended.
///
/// On the wire this travels as its declaration index, so new reasons must
/// be appended, never inserted or reordered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EndReason {
    /// The requested packet count was delivered.
    CountReached,
    /// The client asked to close.
    Closed,
    /// The policy's packet quota was used up.
    PacketQuota,
    /// The policy's byte quota was used up.
    ByteQuota,
    /// The policy no longer allows this capture.
    PolicyRevoked,
    /// The daemon is stopping (said "daemon restarting": a service stops
    /// to start again, and its recordings go on then).
    DaemonShutdown,
    /// The session failed (a ring buffer, a file written).
    Error(String),
    /// Its client stopped the recording.
    Stopped,
    /// A policy reload changed how its principal is anonymized (the key or
    /// the options): a session never mixes two mappings.
    AnonymizationChanged,
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CountReached => f.write_str("requested packet count reached"),
            Self::Closed => f.write_str("closed by the client"),
            Self::PacketQuota => f.write_str("packet quota exhausted"),
            Self::ByteQuota => f.write_str("byte quota exhausted"),
            Self::PolicyRevoked => f.write_str("no longer allowed by the policy"),
            Self::DaemonShutdown => f.write_str("daemon restarting"),
            Self::Error(message) => write!(f, "failed: {message}"),
            Self::Stopped => f.write_str("stopped"),
            Self::AnonymizationChanged => {
                f.write_str("the policy changed its anonymization (key or options)")
            }
        }
    }
}

/// A daemon → client message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// The hello was accepted.
    HelloAck {
        /// The protocol version the daemon will speak.
        version: u32,
        /// Free text naming the daemon; informational only.
        daemon: String,
    },
    /// The capture is open.
    Opened {
        /// The daemon's identifier of this capture, for logs.
        session_id: u64,
        /// pcap link type (1 = `LINKTYPE_ETHERNET`, a.k.a. EN10MB).
        link_type: u32,
        /// The snaplen in effect, possibly lower than requested.
        snaplen: u32,
        /// Whether packets are cut after their transport header (asked
        /// for, or the principal's policy).
        headers_only: bool,
        /// Why the ring is not handed over when zero-copy was asked for
        /// and the daemon serves packets itself (a principal whose
        /// packets the daemon rewrites, for one); `None` otherwise.
        daemon_path: Option<String>,
        /// Not 0: the ring's fd comes with this frame, and its data area
        /// is this many bytes (a power of two); the client reads the
        /// records in place (see [`OpenCapture::zero_copy`]).
        ring_bytes: u32,
    },
    /// Captured packets, in capture order (see [`encode_packets`]).
    Packets(Vec<Packet>),
    /// The filter was replaced.
    FilterSet,
    /// Answer to [`Request::Stats`].
    Stats(Stats),
    /// A request failed; the connection stays usable unless the daemon closes it.
    Error {
        /// What kind of failure.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
    },
    /// Answer to [`Request::DaemonStats`].
    DaemonStats(DaemonStats),
    /// A recording (started, or stopped).
    Recording(RecordingInfo),
    /// Answer to [`Request::ListRecordings`].
    Recordings(Vec<RecordingInfo>),
    /// Statistics mode: the counts of one interval.
    Interval(Interval),
    /// Answer to [`Request::Inject`]: one verdict per frame, in order.
    Injected(Vec<InjectVerdict>),
    /// The capture is over; nothing follows on this connection.
    End {
        /// Why.
        reason: EndReason,
        /// Final counters.
        stats: Stats,
    },
    /// Answer to [`Request::ListInterfaces`]: by namespace, then index.
    Interfaces(Vec<InterfaceInfo>),
}

/// Failure to read or write a frame.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The underlying stream failed.
    #[error("pktd connection i/o failed")]
    Io {
        /// The stream's error.
        #[source]
        source: std::io::Error,
    },
    /// A frame's payload is longer than allowed. On read the length prefix
    /// is left unconsumed: the stream cannot be resynchronised.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Payload length announced (read) or encoded (write).
        len: usize,
        /// The limit in force.
        max: usize,
    },
    /// A frame's payload is not a valid message. The frame was consumed, so
    /// the next read starts at the next frame.
    #[error("cannot decode frame: {message}")]
    Decode {
        /// The decoder's description.
        message: String,
    },
    /// A frame's payload holds a valid message followed by extra bytes. The
    /// frame was consumed, so the next read starts at the next frame.
    #[error("frame of {len} bytes has {} trailing bytes after its message", len - used)]
    TrailingBytes {
        /// Payload length.
        len: usize,
        /// Bytes the message took.
        used: usize,
    },
    /// A value could not be encoded.
    #[error("cannot encode frame: {message}")]
    Encode {
        /// The encoder's description.
        message: String,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame: needed {needed} bytes, got {got}")]
    Truncated {
        /// Bytes of the frame (prefix included) needed, as far as known.
        needed: usize,
        /// Bytes of it received.
        got: usize,
    },
}

impl From<std::io::Error> for ProtoError {
    fn from(source: std::io::Error) -> Self {
        Self::Io { source }
    }
}

/// Frames messages over a byte stream; used by both the daemon and clients.
///
/// Reads are cancel-safe: bytes received by a read that is dropped (say, by
/// the losing branch of `tokio::select!`) stay buffered and the next read
/// carries on from them. Writes are not: a dropped write may leave half a
/// frame on the stream, after which the connection must be abandoned.
#[derive(Debug)]
pub struct Connection<S> {
    stream: S,
    /// Received bytes not yet parsed; always starts at a frame boundary.
    buffer: Vec<u8>,
    /// Scratch space for outgoing frames, kept to avoid an allocation per write.
    out: Vec<u8>,
}

impl<S> Connection<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
            out: Vec::new(),
        }
    }

    /// The stream back. Bytes already read but not yet parsed are lost.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// The stream, e.g. to query peer credentials.
    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    /// The stream, e.g. to write a frame with a descriptor attached (see
    /// [`encode_frame`]) or take descriptors received with one. Bytes it
    /// reads or writes directly bypass the framing.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }
}

/// `value` as one frame (length prefix and payload), for a writer that
/// sends it itself (with a descriptor attached, say); refused as in
/// [`Connection::write_frame`] past `max_len`.
pub fn encode_frame<T: Serialize>(value: &T, max_len: usize) -> Result<Vec<u8>, ProtoError> {
    let mut out = Vec::new();
    encode_frame_into(value, max_len, &mut out)?;
    Ok(out)
}

fn encode_frame_into<T: Serialize>(
    value: &T,
    max_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtoError> {
    let max_len = max_len.min(MAX_FRAME);
    out.clear();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let mut writer = CappedWriter {
        out,
        len: 0,
        max: max_len,
    };
    bincode::serde::encode_into_writer(value, &mut writer, bincode::config::standard()).map_err(
        |e| ProtoError::Encode {
            message: e.to_string(),
        },
    )?;
    let len = writer.len;
    if len > max_len {
        return Err(ProtoError::TooLarge { len, max: max_len });
    }
    // max_len <= MAX_FRAME < 4 GiB, so the length fits the prefix.
    let prefix = u32::try_from(len).expect("frame length checked against MAX_FRAME");
    out[..HEADER_LEN].copy_from_slice(&prefix.to_be_bytes());
    Ok(())
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Reads one frame of at most `max_len` payload bytes and decodes it.
    ///
    /// Returns `Ok(None)` when the stream ends cleanly between frames, and
    /// [`ProtoError::Truncated`] when it ends inside one. `max_len` is clamped
    /// to [`MAX_FRAME`].
    pub async fn read_frame<T: DeserializeOwned>(
        &mut self,
        max_len: usize,
    ) -> Result<Option<T>, ProtoError> {
        let max_len = max_len.min(MAX_FRAME);
        loop {
            // Parse first: an earlier read may have brought several frames.
            let needed = match self.frame_len(max_len)? {
                Some(len) => {
                    let end = HEADER_LEN + len;
                    if self.buffer.len() >= end {
                        let result = decode_payload(&self.buffer[HEADER_LEN..end], max_len);
                        // Consume the frame even when it does not decode: the
                        // framing is intact, so the peer can be told and the
                        // conversation can go on.
                        self.buffer.drain(..end);
                        return result.map(Some);
                    }
                    end
                }
                None => HEADER_LEN,
            };

            // The length (if known) is within max_len, so reserving the rest
            // of the frame is bounded; READ_CHUNK lets small frames batch up.
            let missing = needed - self.buffer.len();
            self.buffer.reserve(missing.max(READ_CHUNK));
            // `read_buf` is cancel-safe and appends to `buffer`, which is what
            // makes this whole method cancel-safe.
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return if self.buffer.is_empty() {
                    Ok(None)
                } else {
                    Err(ProtoError::Truncated {
                        needed,
                        got: self.buffer.len(),
                    })
                };
            }
        }
    }

    /// The payload length of the buffered frame, once its prefix is in.
    fn frame_len(&self, max_len: usize) -> Result<Option<usize>, ProtoError> {
        let Some(prefix) = self.buffer.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(*prefix) as usize;
        if len > max_len {
            return Err(ProtoError::TooLarge { len, max: max_len });
        }
        Ok(Some(len))
    }

    /// Encodes `value` and writes it as one frame, then flushes.
    ///
    /// A value whose encoding exceeds `max_len` (clamped to [`MAX_FRAME`]) is
    /// refused with [`ProtoError::TooLarge`] and nothing is written.
    pub async fn write_frame<T: Serialize>(
        &mut self,
        value: &T,
        max_len: usize,
    ) -> Result<(), ProtoError> {
        encode_frame_into(value, max_len, &mut self.out)?;
        // One write for prefix and payload: one syscall for small frames, and
        // no window where the peer sees a prefix without its payload.
        self.stream.write_all(&self.out).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Writes frames already encoded (by [`encode_packets`], say), then
    /// flushes.
    pub async fn write_encoded(&mut self, frames: &[u8]) -> Result<(), ProtoError> {
        self.stream.write_all(frames).await?;
        self.stream.flush().await?;
        Ok(())
    }

    /// Reads a [`Request`] (at most [`MAX_REQUEST_FRAME`] bytes).
    pub async fn read_request(&mut self) -> Result<Option<Request>, ProtoError> {
        self.read_frame(MAX_REQUEST_FRAME).await
    }

    /// Writes a [`Request`] (at most [`MAX_REQUEST_FRAME`] bytes).
    pub async fn write_request(&mut self, request: &Request) -> Result<(), ProtoError> {
        self.write_frame(request, MAX_REQUEST_FRAME).await
    }

    /// Reads a [`Reply`] (at most [`MAX_REPLY_FRAME`] bytes).
    pub async fn read_reply(&mut self) -> Result<Option<Reply>, ProtoError> {
        self.read_frame(MAX_REPLY_FRAME).await
    }

    /// Writes a [`Reply`] (at most [`MAX_REPLY_FRAME`] bytes).
    pub async fn write_reply(&mut self, reply: &Reply) -> Result<(), ProtoError> {
        self.write_frame(reply, MAX_REPLY_FRAME).await
    }

    /// Reads a [`Hello`] (at most [`MAX_HELLO_FRAME`] bytes). Use
    /// [`Hello::check`] to validate it.
    pub async fn read_hello(&mut self) -> Result<Option<Hello>, ProtoError> {
        self.read_frame(MAX_HELLO_FRAME).await
    }

    /// Writes a [`Hello`] (at most [`MAX_HELLO_FRAME`] bytes).
    pub async fn write_hello(&mut self, hello: &Hello) -> Result<(), ProtoError> {
        self.write_frame(hello, MAX_HELLO_FRAME).await
    }
}

/// Decodes a whole payload, bounding what the decoder may allocate.
fn decode_payload<T: DeserializeOwned>(payload: &[u8], max_len: usize) -> Result<T, ProtoError> {
    use bincode::config::standard;
    // Bincode's limit is a const generic, so pick the smallest fixed tier
    // that covers this frame's cap.
    if max_len <= MAX_HELLO_FRAME {
        decode_with(
            payload,
            standard().with_limit::<{ DECODE_LIMIT_FACTOR * MAX_HELLO_FRAME }>(),
        )
    } else if max_len <= MAX_REQUEST_FRAME {
        decode_with(
            payload,
            standard().with_limit::<{ DECODE_LIMIT_FACTOR * MAX_REQUEST_FRAME }>(),
        )
    } else {
        decode_with(
            payload,
            standard().with_limit::<{ DECODE_LIMIT_FACTOR * MAX_FRAME }>(),
        )
    }
}

fn decode_with<T: DeserializeOwned, C: Config>(payload: &[u8], config: C) -> Result<T, ProtoError> {
    let (value, used) =
        bincode::serde::decode_from_slice(payload, config).map_err(|e| ProtoError::Decode {
            message: e.to_string(),
        })?;
    if used != payload.len() {
        return Err(ProtoError::TrailingBytes {
            len: payload.len(),
            used,
        });
    }
    Ok(value)
}

/// Collects an encoding up to `max` bytes and counts the rest, so an
/// oversized value is measured exactly without being buffered whole.
struct CappedWriter<'a> {
    out: &'a mut Vec<u8>,
    len: usize,
    max: usize,
}

impl bincode::enc::write::Writer for CappedWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), bincode::error::EncodeError> {
        self.len = self.len.saturating_add(bytes.len());
        if self.len <= self.max {
            self.out.extend_from_slice(bytes);
        }
        Ok(())
    }
}

/// Serde for `Vec<u8>` as bytes: same encoding as the default (bincode writes
/// a length then the bytes either way), decoded in one copy.
mod byte_buf {
    use std::fmt;

    use serde::de::{self, SeqAccess, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(data: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(data)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        deserializer.deserialize_byte_buf(BytesVisitor)
    }

    struct BytesVisitor;

    impl<'de> Visitor<'de> for BytesVisitor {
        type Value = Vec<u8>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a byte array")
        }

        fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }

        // Self-describing formats may present bytes as a sequence.
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<u8>, A::Error> {
            // Trust the size hint only a little: it comes from the peer.
            let mut data = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64 * 1024));
            while let Some(byte) = seq.next_element()? {
                data.push(byte);
            }
            Ok(data)
        }
    }
}
