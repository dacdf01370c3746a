//! Records moved out of a ring together: their bytes back to back in one
//! buffer, their headers beside it. The daemon's path (captures it
//! forwards, recordings) moves a batch at a time, so a record costs a copy
//! into a buffer that is reused, not an allocation of its own.

use pktd_common::RecordHeader;
use pktd_proto::{Direction, PacketRef};

/// A batch of records; reused from one batch to the next.
#[derive(Debug, Default)]
pub struct Batch {
    /// Every record's captured bytes, in order.
    data: Vec<u8>,
    records: Vec<Entry>,
}

/// One record of a [`Batch`]: its header, and where its bytes are.
#[derive(Debug, Clone, Copy)]
struct Entry {
    timestamp_ns: u64,
    wire_len: u32,
    direction: Direction,
    start: usize,
    len: usize,
}

impl Batch {
    /// Empties it, keeping its memory.
    pub fn clear(&mut self) {
        self.data.clear();
        self.records.clear();
    }

    /// Records in it.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Captured bytes in it, over all records.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    /// Adds the record whose ring entry is `entry`, its kernel (TAI)
    /// timestamp moved to the wall clock by `realtime_minus_tai_ns`;
    /// `false` for an entry too short for its header (the kernel program
    /// never writes one).
    pub fn push_entry(&mut self, entry: &[u8], realtime_minus_tai_ns: i64) -> bool {
        let Some((header, data)) = RecordHeader::split(entry) else {
            return false;
        };
        self.records.push(Entry {
            timestamp_ns: header
                .timestamp_ns
                .saturating_add_signed(realtime_minus_tai_ns),
            wire_len: header.wire_len,
            direction: Direction::of_record(header.direction),
            start: self.data.len(),
            len: data.len(),
        });
        self.data.extend_from_slice(data);
        true
    }

    /// The records, in order, as packets.
    pub fn packets(&self) -> impl Iterator<Item = PacketRef<'_>> + Clone {
        self.records.iter().map(|entry| PacketRef {
            timestamp_ns: entry.timestamp_ns,
            wire_len: entry.wire_len,
            direction: entry.direction,
            data: &self.data[entry.start..entry.start + entry.len],
        })
    }

    /// Calls `rewrite(captured bytes, wire length)` on every record, in
    /// order, to change its bytes in place (anonymization).
    pub fn rewrite_each(&mut self, mut rewrite: impl FnMut(&mut [u8], u32)) {
        for entry in &self.records {
            rewrite(
                &mut self.data[entry.start..entry.start + entry.len],
                entry.wire_len,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use pktd_common::{DIR_IN, DIR_OUT, RECORD_HEADER_LEN};

    use super::*;

    fn entry(timestamp_ns: u64, direction: u32, data: &[u8]) -> Vec<u8> {
        let mut entry = Vec::new();
        entry.extend_from_slice(&timestamp_ns.to_ne_bytes());
        entry.extend_from_slice(&(data.len() as u32 + 4).to_ne_bytes());
        entry.extend_from_slice(&(data.len() as u32).to_ne_bytes());
        entry.extend_from_slice(&7u32.to_ne_bytes());
        entry.extend_from_slice(&direction.to_ne_bytes());
        entry.extend_from_slice(data);
        entry.extend_from_slice(&[0xaa; 5]); // the record class's slack
        entry
    }

    #[test]
    fn records_keep_their_bytes_order_and_headers() {
        let mut batch = Batch::default();
        assert!(batch.push_entry(&entry(100, DIR_IN, b"first"), 5));
        assert!(batch.push_entry(&entry(200, DIR_OUT, b""), -5));
        assert!(batch.push_entry(&entry(300, DIR_IN, &[9; 1500]), 0));
        assert!(!batch.push_entry(&entry(400, DIR_IN, b"x")[..RECORD_HEADER_LEN - 1], 0));
        assert_eq!(batch.len(), 3);
        let packets: Vec<PacketRef<'_>> = batch.packets().collect();
        assert_eq!(
            (
                packets[0].timestamp_ns,
                packets[0].wire_len,
                packets[0].direction,
                packets[0].data
            ),
            (105, 9, Direction::In, &b"first"[..])
        );
        assert_eq!(
            (
                packets[1].timestamp_ns,
                packets[1].direction,
                packets[1].data
            ),
            (195, Direction::Out, &b""[..])
        );
        assert_eq!(packets[2].data, &[9; 1500][..]);

        batch.rewrite_each(|data, wire_len| {
            if let Some(first) = data.first_mut() {
                *first = wire_len as u8;
            }
        });
        let packets: Vec<PacketRef<'_>> = batch.packets().collect();
        assert_eq!(packets[0].data, b"\x09irst");
        assert_eq!(packets[2].data[..2], [0xe0, 9]); // 1504 as u8, then kept

        batch.clear();
        assert!(batch.is_empty());
        assert_eq!(batch.packets().count(), 0);
    }
}
