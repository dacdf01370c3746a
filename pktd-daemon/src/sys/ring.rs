//! Ring buffers in the tokio reactor.

use std::io;

use aya::maps::{MapData, RingBuf};
use tokio::io::{Interest, unix::AsyncFd};

/// Registers a ring buffer with the tokio reactor: readable when records
/// wait. Call it inside a runtime.
pub fn register_ring(ring: RingBuf<MapData>) -> io::Result<AsyncFd<RingBuf<MapData>>> {
    // SAFETY: the fd is the ring buffer map's own, owned by the RingBuf (its
    // MapData holds the OwnedFd) for the RingBuf's whole life, which the
    // AsyncFd now owns; as_raw_fd returns that same fd on every call.
    unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }.map_err(io::Error::from)
}

/// Registers the kernel program's log with the tokio reactor: readable
/// when records wait. Call it inside a runtime.
pub fn register_log<T>(log: aya_log::EbpfLogger<T>) -> io::Result<AsyncFd<aya_log::EbpfLogger<T>>> {
    // SAFETY: the fd is the log's ring buffer map's own, owned by the
    // EbpfLogger (its RingBuf's MapData holds the OwnedFd) for the logger's
    // whole life, which the AsyncFd now owns; as_raw_fd returns that same
    // fd on every call.
    unsafe { AsyncFd::register_with_interest(log, Interest::READABLE) }.map_err(io::Error::from)
}
