//! libwire without async: the same captures, injection and listings for
//! a caller that runs no tokio runtime (a C program through the C API, a
//! plain thread). Each object runs a current-thread runtime of its own
//! and blocks on it; none may be used from inside an async runtime.
//!
//! ```no_run
//! # fn example() -> Result<(), libwire::Error> {
//! use std::time::Duration;
//! use libwire::blocking::{Capture, Next};
//! let mut capture = Capture::open(libwire::CaptureBuilder::new("veth0").filter("udp"))?;
//! match capture.next_packet_within(Duration::from_secs(1))? {
//!     Next::Packet(packet) => println!("{} bytes", packet.data().len()),
//!     Next::Timeout => println!("nothing within a second"),
//!     Next::End => println!("the session has ended"),
//! }
//! if let Some(reason) = capture.end_reason() {
//!     println!("ended: {reason}");
//! }
//! capture.close()?;
//! # Ok(()) }
//! ```

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd},
    path::Path,
    time::Duration,
};

use tokio::runtime::Runtime;

use crate::{EndReason, Error, InjectVerdict, InterfaceInfo, PacketRef, Stats};

/// What waiting for a packet brought.
pub enum Next<'a> {
    /// A packet, borrowed where it lies (see [`crate::PacketRef`]).
    Packet(PacketRef<'a>),
    /// None came within the time given.
    Timeout,
    /// The session has ended and every packet before its end was read.
    End,
}

fn runtime() -> Result<Runtime, Error> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| Error::Connect {
            path: "(a runtime for the blocking API)".into(),
            source: err,
        })
}

/// A capture session, blocking ([`crate::Capture`]'s counterpart).
pub struct Capture {
    runtime: Runtime,
    capture: crate::Capture,
}

impl Capture {
    /// Opens the capture `builder` describes.
    pub fn open(builder: crate::CaptureBuilder) -> Result<Self, Error> {
        let runtime = runtime()?;
        let capture = runtime.block_on(builder.open())?;
        Ok(Self { runtime, capture })
    }

    /// The async capture underneath, for what this API does not say.
    pub fn get_ref(&self) -> &crate::Capture {
        &self.capture
    }

    /// Waits for the next packet, as long as it takes.
    pub fn next_packet(&mut self) -> Result<Option<PacketRef<'_>>, Error> {
        self.runtime.block_on(self.capture.next_packet_ref())
    }

    /// Waits for the next packet at most `timeout` (libpcap's
    /// `pcap_next_ex`); `Duration::ZERO` only looks at what is there.
    pub fn next_packet_within(&mut self, timeout: Duration) -> Result<Next<'_>, Error> {
        // The timer is made inside the runtime, which it needs.
        let capture = &mut self.capture;
        let waited = self.runtime.block_on(async move {
            tokio::time::timeout(timeout, capture.next_packet_ref()).await
        });
        Ok(match waited {
            Ok(Ok(Some(packet))) => Next::Packet(packet),
            Ok(Ok(None)) => Next::End,
            Ok(Err(err)) => return Err(err),
            Err(_elapsed) => Next::Timeout,
        })
    }

    /// The next packet if one is there already; never waits (non-blocking
    /// mode). Reads the ring, or what the daemon has written.
    pub fn try_next_packet(&mut self) -> Result<Next<'_>, Error> {
        self.next_packet_within(Duration::ZERO)
    }

    /// Replaces the filter, atomically for the packets that follow.
    pub fn set_filter(&mut self, expression: &str, optimize: bool) -> Result<(), Error> {
        self.runtime
            .block_on(self.capture.set_filter(expression, optimize))
    }

    /// Replaces the filter with a classic-BPF program.
    pub fn set_filter_program(&mut self, program: &[pktd_common::CbpfInsn]) -> Result<(), Error> {
        self.runtime
            .block_on(self.capture.set_filter_program(program))
    }

    /// The session's counters now.
    pub fn stats(&mut self) -> Result<Stats, Error> {
        self.runtime.block_on(self.capture.stats())
    }

    /// The snaplen in force.
    pub fn snaplen(&self) -> u32 {
        self.capture.snaplen()
    }

    /// Why the session ended, once it has.
    pub fn end_reason(&self) -> Option<&EndReason> {
        self.capture.end_reason()
    }

    /// Whether the session ended because the daemon went away (see
    /// [`crate::Capture::daemon_went_away`]).
    pub fn daemon_went_away(&self) -> bool {
        self.capture.daemon_went_away()
    }

    /// Opens the same capture again after the daemon went away, waiting up
    /// to `patience` for it; what the gap may have lost (see
    /// [`crate::Capture::reconnect`]).
    pub fn reconnect(&mut self, patience: Duration) -> Result<crate::Gap, Error> {
        self.runtime.block_on(self.capture.reconnect(patience))
    }

    /// Ends the session; its last counters.
    pub fn close(self) -> Result<Stats, Error> {
        let Self { runtime, capture } = self;
        runtime.block_on(capture.close())
    }
}

impl AsFd for Capture {
    /// Readable when packets may be waiting (see
    /// [`crate::Capture::wait_fd`]: poll it with the capture's timeout).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.capture.wait_fd()
    }
}

impl AsRawFd for Capture {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}

/// Injection through the daemon, blocking ([`crate::Injector`]'s
/// counterpart).
pub struct Injector {
    runtime: Runtime,
    injector: crate::Injector,
}

impl Injector {
    /// Connects to the daemon at `socket` for interface `interface` of
    /// namespace `netns` ("" for the daemon's own).
    pub fn open(socket: impl AsRef<Path>, netns: &str, interface: &str) -> Result<Self, Error> {
        let runtime = runtime()?;
        let injector = runtime.block_on(crate::Injector::open(socket, netns, interface))?;
        Ok(Self { runtime, injector })
    }

    /// Sends `frames`; one verdict per frame, in order.
    pub fn inject(&mut self, frames: &[Vec<u8>]) -> Result<Vec<InjectVerdict>, Error> {
        self.runtime.block_on(self.injector.inject(frames))
    }
}

/// The interfaces the user may capture on (blocking
/// [`crate::list_interfaces`]).
pub fn list_interfaces(socket: impl AsRef<Path>) -> Result<Vec<InterfaceInfo>, Error> {
    runtime()?.block_on(crate::list_interfaces(socket))
}
