//! libwire: the client library of pktd, shaped like libpcap.
//!
//! Unprivileged programs never touch network devices: they ask the pktd
//! daemon for a capture with a [`CaptureBuilder`] (interface, namespace,
//! direction, snaplen, tcpdump filter, count, buffer), then read packets
//! with [`Capture::next_packet`] or as a stream, change the filter with
//! [`Capture::set_filter`], read counters with [`Capture::stats`] and end
//! with [`Capture::close`]. The daemon's policy decides what each user may
//! see; refusals come back as [`Error::Daemon`] with the daemon's code and
//! message.
//!
//! ```no_run
//! # async fn example() -> Result<(), libwire::Error> {
//! let mut capture = libwire::CaptureBuilder::new("veth0")
//!     .netns("lab")
//!     .filter("tcp port 80")
//!     .open()
//!     .await?;
//! if let Some(packet) = capture.next_packet().await? {
//!     println!("{} bytes at {} ns", packet.data.len(), packet.timestamp_ns);
//! }
//! let stats = capture.close().await?;
//! println!("{} matched, {} dropped", stats.matched, stats.dropped);
//! # Ok(()) }
//! ```
//!
//! [`blocking`] offers the same without async, for callers that run no
//! tokio runtime; its capture is a selectable descriptor (`AsFd`).
//!
//! [`Injector`] sends Ethernet frames through the daemon, which checks each
//! against the policy. [`CaptureBuilder::record`] has the daemon write the
//! capture to files itself, and a [`Control`] connection lists and stops
//! those recordings and reads the daemon's performance statistics.
//!
//! [`savefile`] writes pcap/pcapng files and reads pcap files back, and
//! [`print`](mod@print) formats packets the way tcpdump prints them; both
//! serve the `pktcap` command. They live in the `pktd-pcap` crate and are
//! re-exported here, so a client needs only libwire.
#![deny(missing_docs)]
#![deny(unsafe_code)]

pub mod blocking;
mod capture;
mod control;
mod handshake;
mod inject;
mod ring;
#[allow(unsafe_code)]
mod sys;

use std::path::PathBuf;

pub use capture::{Capture, CaptureBuilder, DEFAULT_SOCKET, DEFAULT_TIMEOUT, Gap};
pub use control::{Control, Rotation, list_interfaces, list_recordings, stop_recording};
pub use inject::Injector;
pub use pktd_common::CbpfInsn;
pub use pktd_pcap::{print, savefile};
pub use pktd_proto::{
    DaemonStats, Direction, EndReason, ErrorCode, InjectVerdict, InterfaceInfo, InterfaceStats,
    Interval, Packet, RecordingInfo, SessionStats, Stats,
};
pub use ring::PacketRef;

/// Everything that can go wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon's socket could not be reached.
    #[error("cannot connect to pktd at {}", path.display())]
    Connect {
        /// The socket path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The daemon refused a request; `code` says why in a stable form.
    #[error("{message}")]
    Daemon {
        /// The daemon's error code.
        code: ErrorCode,
        /// The daemon's explanation.
        message: String,
    },
    /// The session has ended (see the reason).
    #[error("the session ended: {reason}")]
    Ended {
        /// Why it ended.
        reason: EndReason,
    },
    /// The daemon closed the connection.
    #[error("the daemon closed the connection")]
    Disconnected,
    /// The daemon answered something that makes no sense here.
    #[error("unexpected reply from the daemon: {reply}")]
    UnexpectedReply {
        /// The reply, abbreviated.
        reply: String,
    },
    /// Framing or encoding failed.
    #[error(transparent)]
    Protocol(#[from] pktd_proto::ProtoError),
    /// The session's ring could not be mapped or read.
    #[error("the session's ring buffer: {0}")]
    Ring(#[source] std::io::Error),
}
