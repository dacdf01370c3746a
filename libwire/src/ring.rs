//! A session's ring read in place (zero-copy): the daemon hands the
//! client the ring buffer's descriptor, and records are read where the
//! kernel program wrote them, each released when its [`PacketRef`] is
//! dropped.

use std::{io, os::fd::OwnedFd};

use pktd_common::RecordHeader;
use pktd_proto::{Direction, Packet};
use tokio::io::unix::AsyncFd;

use crate::sys::{RingMap, realtime_minus_tai_ns, register_ring};

/// The kernel's ring buffer record header (include/uapi/linux/bpf.h):
/// the length word with these two bits, then the page offset.
const BUSY_BIT: u32 = 1 << 31;
const DISCARD_BIT: u32 = 1 << 30;
const KERNEL_HEADER_LEN: usize = 8;

/// Records released between two publications of the consumer position:
/// the kernel program reads that position on every reservation, so each
/// store to it costs the producing CPU a cache miss.
const PUBLISH_EVERY: u32 = 64;

/// A ring mapped for reading.
pub(crate) struct RingReader {
    map: RingMap,
    cursor: Cursor,
    /// The descriptor in the reactor: readable when the kernel woke the
    /// reader.
    wake: AsyncFd<OwnedFd>,
    realtime_minus_tai_ns: i64,
}

/// Where the next record lies.
struct Next {
    /// Its payload: pktd's record header, then the packet bytes.
    start: usize,
    len: usize,
    /// The position after it.
    end: usize,
}

/// Where the reader is.
struct Cursor {
    /// Where the next record starts.
    pos: usize,
    /// The producer position last read: records before it are committed
    /// or busy. Read again only once the reader has caught up with it, as
    /// the kernel writes it on every reservation (a shared cache line).
    produced: usize,
    /// Records released since the consumer position was last published.
    unpublished: u32,
}

impl Cursor {
    /// Gives the record ending at `end` back; the kernel learns of it with
    /// the next publication.
    fn release(&mut self, map: &RingMap, end: usize) {
        self.pos = end;
        self.unpublished += 1;
        if self.unpublished >= PUBLISH_EVERY {
            self.publish(map);
        }
    }

    fn publish(&mut self, map: &RingMap) {
        if self.unpublished > 0 {
            map.set_consumer_pos(self.pos);
            self.unpublished = 0;
        }
    }
}

impl RingReader {
    /// Maps ring `fd`, whose data area is `size` bytes.
    pub fn new(fd: OwnedFd, size: u32) -> io::Result<Self> {
        let wake = register_ring(fd.try_clone()?)?;
        let map = RingMap::new(fd, size as usize)?;
        // Where the reader starts is the consumer page's word, which any
        // holder of the ring may have written: records start 8-aligned.
        let pos = map.consumer_pos();
        if pos % 8 != 0 {
            return Err(corrupt());
        }
        Ok(Self {
            map,
            cursor: Cursor {
                pos,
                produced: pos,
                unpublished: 0,
            },
            wake,
            realtime_minus_tai_ns: realtime_minus_tai_ns(),
        })
    }

    /// The ring buffer's descriptor.
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd as _;
        self.wake.get_ref().as_fd()
    }

    /// Whether a whole record waits (discarded ones are skipped).
    pub fn has_record(&mut self) -> io::Result<bool> {
        Ok(self.peek()?.is_some())
    }

    /// The next record, released when the [`PacketRef`] is dropped.
    pub fn next(&mut self) -> io::Result<Option<PacketRef<'_>>> {
        let Some(next) = self.peek()? else {
            return Ok(None);
        };
        let Self {
            map,
            cursor,
            realtime_minus_tai_ns,
            ..
        } = self;
        let map = &*map;
        let payload = map.bytes(next.start, next.len).ok_or_else(corrupt)?;
        let packet = parse(payload, *realtime_minus_tai_ns).ok_or_else(corrupt)?;
        Ok(Some(PacketRef {
            release: Some(Release {
                map,
                cursor,
                end: next.end,
            }),
            ..packet
        }))
    }

    /// Resolves when the kernel has woken the reader (once the ring is an
    /// eighth full, or for every record in immediate mode). Call it once
    /// the ring is empty (the kernel learns then of every record read).
    pub async fn readable(&mut self) -> io::Result<()> {
        self.cursor.publish(&self.map);
        let mut guard = self.wake.readable().await?;
        // Readiness is looked at again (has_record) before any wait.
        guard.clear_ready();
        Ok(())
    }

    fn peek(&mut self) -> io::Result<Option<Next>> {
        loop {
            let pos = self.cursor.pos;
            if pos == self.cursor.produced {
                self.cursor.produced = self.map.producer_pos();
                if pos == self.cursor.produced {
                    // Caught up: let the kernel have the room now. It
                    // wakes the reader for a record only if the consumer
                    // position it reads is that record's, so one
                    // committed between the look above and this store
                    // would wake nobody: look once more after it.
                    if self.cursor.unpublished == 0 {
                        return Ok(None);
                    }
                    self.cursor.publish(&self.map);
                    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
                    self.cursor.produced = self.map.producer_pos();
                    if pos == self.cursor.produced {
                        return Ok(None);
                    }
                }
            }
            let queued = self.cursor.produced.wrapping_sub(pos);
            if queued > self.map.size() {
                return Err(corrupt());
            }
            let word = self.map.header_word(pos);
            if word & BUSY_BIT != 0 {
                // Reserved, not yet committed: it is next, whatever
                // follows it.
                self.cursor.publish(&self.map);
                return Ok(None);
            }
            let len = (word & !(BUSY_BIT | DISCARD_BIT)) as usize;
            let end = pos.wrapping_add((KERNEL_HEADER_LEN + len).next_multiple_of(8));
            if end.wrapping_sub(pos) > queued {
                return Err(corrupt());
            }
            if word & DISCARD_BIT != 0 {
                self.cursor.release(&self.map, end);
                continue;
            }
            return Ok(Some(Next {
                start: pos.wrapping_add(KERNEL_HEADER_LEN),
                len,
                end,
            }));
        }
    }
}

impl Drop for RingReader {
    fn drop(&mut self) {
        self.cursor.publish(&self.map);
    }
}

fn corrupt() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        "the ring buffer holds a record pktd did not write",
    )
}

/// Parses a record's payload: pktd's header (`pktd_common::RecordHeader`)
/// and the captured bytes.
fn parse(payload: &[u8], realtime_minus_tai_ns: i64) -> Option<PacketRef<'_>> {
    let (header, data) = RecordHeader::split(payload)?;
    Some(PacketRef {
        timestamp_ns: header
            .timestamp_ns
            .saturating_add_signed(realtime_minus_tai_ns),
        wire_len: header.wire_len,
        direction: Direction::of_record(header.direction),
        data,
        release: None,
    })
}

/// A packet borrowed from where it was received: from the session's ring
/// in place (zero-copy), released to the kernel when dropped, or from
/// libwire's buffer when the daemon sent it. [`PacketRef::to_owned`]
/// copies it.
pub struct PacketRef<'a> {
    timestamp_ns: u64,
    wire_len: u32,
    direction: Direction,
    data: &'a [u8],
    release: Option<Release<'a>>,
}

/// Gives a record's room back to the kernel.
struct Release<'a> {
    map: &'a RingMap,
    cursor: &'a mut Cursor,
    end: usize,
}

impl Drop for Release<'_> {
    fn drop(&mut self) {
        self.cursor.release(self.map, self.end);
    }
}

impl<'a> PacketRef<'a> {
    /// A packet the daemon sent.
    pub(crate) fn from_packet(packet: &'a Packet) -> Self {
        Self {
            timestamp_ns: packet.timestamp_ns,
            wire_len: packet.wire_len,
            direction: packet.direction,
            data: &packet.data,
            release: None,
        }
    }

    /// Wall-clock time the packet was seen, in nanoseconds since the
    /// epoch.
    pub fn timestamp_ns(&self) -> u64 {
        self.timestamp_ns
    }

    /// Its length on the wire.
    pub fn wire_len(&self) -> u32 {
        self.wire_len
    }

    /// Received or sent.
    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// The captured bytes (at most the snaplen), VLAN tag in place.
    pub fn data(&self) -> &[u8] {
        self.data
    }

    /// A copy that outlives the record.
    pub fn to_owned(&self) -> Packet {
        Packet {
            timestamp_ns: self.timestamp_ns,
            wire_len: self.wire_len,
            direction: self.direction,
            data: self.data.to_vec(),
        }
    }
}

impl std::fmt::Debug for PacketRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PacketRef")
            .field("timestamp_ns", &self.timestamp_ns)
            .field("wire_len", &self.wire_len)
            .field("direction", &self.direction)
            .field("len", &self.data.len())
            .field("in_ring", &self.release.is_some())
            .finish()
    }
}
