//! A session's ring buffer and the records that come out of it. A record
//! is one ring-buffer entry: a header (`pktd_common::RecordHeader`) and the
//! captured bytes.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd, OwnedFd, RawFd},
    time::Duration,
};

use aya::maps::{MapData, RingBuf};
use pktd_common::RecordHeader;
use tokio::io::unix::AsyncFd;

use super::{batch::Batch, native::SlotEngine};
use crate::sys;

/// The ring a session's records arrive in, read without waiting (the
/// kernel program's tests use it directly).
pub struct Ring {
    slot: u32,
    engine: SlotEngine,
    ring: RingBuf<MapData>,
    /// The ring buffer map's id, by which the daemon can tell whether it
    /// still exists once handed over.
    id: u32,
    /// The size of its data area.
    bytes: u32,
    realtime_minus_tai_ns: i64,
}

/// A ring to be handed to its session's client, who reads its records in
/// place: the daemon keeps no mapping of it.
pub struct HandedRing {
    /// A descriptor of the ring buffer map, to pass with SCM_RIGHTS.
    pub fd: OwnedFd,
    /// The size of its data area (a power of two), which the client maps.
    pub bytes: u32,
}

impl Ring {
    pub(super) fn new(
        slot: u32,
        engine: SlotEngine,
        ring: RingBuf<MapData>,
        (id, bytes): (u32, u32),
    ) -> Self {
        Self {
            slot,
            engine,
            ring,
            id,
            bytes,
            realtime_minus_tai_ns: sys::realtime_minus_tai_ns(),
        }
    }

    /// The ring for its client (see [`HandedRing`]): the daemon's own
    /// mapping and descriptor go, a new descriptor of the map comes back.
    pub fn hand_over(self) -> io::Result<HandedRing> {
        Ok(HandedRing {
            fd: self.ring.as_fd().try_clone_to_owned()?,
            bytes: self.bytes,
        })
    }

    /// The slot this ring's session occupies in its attachment.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The ring buffer map's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// What the session's filter ran as when it was added.
    pub fn engine(&self) -> SlotEngine {
        self.engine
    }

    /// The next record, if one is waiting (never blocks).
    pub fn next_record(&mut self) -> Option<Record> {
        let entry = self.ring.next()?;
        Record::parse(&entry, self.realtime_minus_tai_ns)
    }

    /// The ring in the tokio reactor, to wait for records. Call it inside a
    /// runtime.
    pub fn into_async(self) -> io::Result<AsyncRing> {
        Ok(AsyncRing {
            slot: self.slot,
            ring: sys::register_ring(self.ring)?,
            realtime_minus_tai_ns: self.realtime_minus_tai_ns,
        })
    }
}

impl AsRawFd for Ring {
    /// The ring buffer's fd: readable when the kernel has woken its
    /// reader.
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

/// Name of every session's ring buffer map (see `slots::new_ring`); map
/// names are at most 15 bytes.
pub(super) const RING_NAME: &str = "pktd_ring";
const _: () = assert!(RING_NAME.len() < 16);

/// Whether map `id` is gone, so that a ring handed over with that id no
/// longer holds memory: only when the kernel says there is no such map,
/// or a map of another kind has the id now (ids are reused only after
/// they wrap around). Any other answer (out of descriptors, no
/// permission) counts as still there: the limit on handed rings fails
/// closed.
pub fn ring_gone(id: u32) -> bool {
    match aya::maps::MapInfo::from_id(id) {
        Ok(info) => info.name_as_str() != Some(RING_NAME),
        Err(aya::maps::MapError::SyscallError(err)) => {
            err.io_error.raw_os_error() == Some(libc::ENOENT)
        }
        Err(_) => false,
    }
}

/// A [`Ring`] whose records can be waited for.
pub struct AsyncRing {
    slot: u32,
    ring: AsyncFd<RingBuf<MapData>>,
    realtime_minus_tai_ns: i64,
}

impl AsyncRing {
    /// The slot this ring's session occupies in its attachment.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// Resolves when the kernel has woken the ring's reader (it does so
    /// once the ring is an eighth full, not for every record).
    pub async fn readable(&self) -> io::Result<()> {
        self.ring.readable().await.map(|_| ())
    }

    /// Moves the records waiting into `batch`, at most `limit` and only
    /// while its bytes are under `bytes`; returns how many (never waits
    /// for one).
    pub async fn take_into(&mut self, batch: &mut Batch, limit: usize, bytes: usize) -> usize {
        let taken = self.pop_into(batch, limit, bytes);
        if taken == limit || batch.bytes() >= bytes {
            return taken;
        }
        // Empty: clear the readiness, then look once more, since a record
        // committed meanwhile may have had its wake-up consumed by the
        // clear.
        if let Ok(Ok(mut guard)) =
            tokio::time::timeout(Duration::ZERO, self.ring.readable_mut()).await
        {
            guard.clear_ready();
        }
        taken + self.pop_into(batch, limit - taken, bytes)
    }

    fn pop_into(&mut self, batch: &mut Batch, limit: usize, bytes: usize) -> usize {
        let ring = self.ring.get_mut();
        let mut taken = 0;
        while taken < limit && batch.bytes() < bytes {
            let Some(entry) = ring.next() else {
                break;
            };
            // An entry too short for its header is passed over, as the
            // kernel program never writes one.
            if batch.push_entry(&entry, self.realtime_minus_tai_ns) {
                taken += 1;
            }
        }
        taken
    }
}

/// One record: a captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Wall-clock time the packet was seen, in nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// Length of the packet on the wire.
    pub wire_len: u32,
    /// Interface index in the attachment's namespace.
    pub ifindex: u32,
    /// `pktd_common::DIR_IN` or `DIR_OUT`.
    pub direction: u32,
    /// The captured bytes (at most the snaplen), VLAN tag in place.
    pub data: Vec<u8>,
}

impl Record {
    /// Parses a ring buffer entry; `realtime_minus_tai_ns` converts the
    /// kernel's TAI timestamp. `None` for an entry too short for its header
    /// (the kernel program never writes one).
    pub fn parse(entry: &[u8], realtime_minus_tai_ns: i64) -> Option<Self> {
        let (header, data) = RecordHeader::split(entry)?;
        Some(Self {
            timestamp_ns: header
                .timestamp_ns
                .saturating_add_signed(realtime_minus_tai_ns),
            wire_len: header.wire_len,
            ifindex: header.ifindex,
            direction: header.direction,
            data: data.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_bytes() {
        let mut entry = Vec::new();
        entry.extend_from_slice(&1_000u64.to_ne_bytes());
        for word in [60u32, 3, 7, 1] {
            entry.extend_from_slice(&word.to_ne_bytes());
        }
        entry.extend_from_slice(&[9, 8, 7, 0, 0]);
        let record = Record::parse(&entry, 5).expect("a whole record");
        assert_eq!(record.timestamp_ns, 1_005);
        assert_eq!(
            (record.wire_len, record.ifindex, record.direction),
            (60, 7, 1)
        );
        assert_eq!(record.data, vec![9, 8, 7]);
        assert_eq!(Record::parse(&entry[..20], 0), None, "short header");
        assert_eq!(Record::parse(&entry[..26], 0), None, "short data");
    }
}
