//! Records as they come out of a client's ring buffer.

use pktd_common::{RECORD_HEADER_LEN, RecordHeader};

/// One captured packet.
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
        let header_bytes = entry.get(..RECORD_HEADER_LEN)?;
        let word = |at: usize| u32::from_ne_bytes(header_bytes[at..at + 4].try_into().unwrap());
        let header = RecordHeader {
            timestamp_ns: u64::from_ne_bytes(header_bytes[..8].try_into().unwrap()),
            wire_len: word(8),
            cap_len: word(12),
            ifindex: word(16),
            direction: word(20),
        };
        let data = entry.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + header.cap_len as usize)?;
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
