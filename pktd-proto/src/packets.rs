//! [`crate::Reply::Packets`] frames written straight from borrowed packets: the
//! daemon's path encodes a whole batch of records into one buffer, frames
//! back to back, with no `Packet` (and no `Vec`) per record, and sends it
//! with one write.
//!
//! The bytes are exactly those of [`crate::Connection::write_reply`] for the same
//! packets (the tests decode them with bincode); sizes are worked out
//! arithmetically, so each packet is written once.

use crate::{Direction, HEADER_LEN, MAX_FRAME, ProtoError};

/// A packet to encode, borrowed from wherever it lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketRef<'a> {
    /// Capture time in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Length of the packet on the wire.
    pub wire_len: u32,
    /// Which way the packet travelled.
    pub direction: Direction,
    /// The captured bytes.
    pub data: &'a [u8],
}

impl PacketRef<'_> {
    /// Its size encoded as a [`crate::Packet`]: bincode's standard
    /// configuration writes integers as varints, an enum as its variant's
    /// varint index, and bytes as a varint length then the bytes.
    fn encoded_len(&self) -> usize {
        varint_len(self.timestamp_ns)
            + varint_len(u64::from(self.wire_len))
            + varint_len(direction_index(self.direction))
            + varint_len(self.data.len() as u64)
            + self.data.len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.timestamp_ns);
        put_varint(out, u64::from(self.wire_len));
        put_varint(out, direction_index(self.direction));
        put_varint(out, self.data.len() as u64);
        out.extend_from_slice(self.data);
    }
}

/// Appends `packets`, in order, to `out` as [`crate::Reply::Packets`] frames
/// (length prefix and payload, back to back), each as full as fits in
/// `max_frame` payload bytes (pass [`crate::MAX_REPLY_FRAME`]); returns how
/// many frames it wrote.
///
/// A packet too large for a frame of its own (impossible at
/// [`crate::MAX_REPLY_FRAME`] with data up to 256 KiB) fails with
/// [`ProtoError::TooLarge`]; the frames before it are in `out`.
pub fn encode_packets<'a, I>(
    packets: I,
    max_frame: usize,
    out: &mut Vec<u8>,
) -> Result<usize, ProtoError>
where
    I: Iterator<Item = PacketRef<'a>> + Clone,
{
    let max_frame = max_frame.min(MAX_FRAME);
    let tag = varint_len(PACKETS_VARIANT);
    let mut rest = packets.peekable();
    let mut frames = 0;
    while rest.peek().is_some() {
        // How many of the next packets fit, and the frame's payload size.
        let (mut count, mut packets_len, mut payload) = (0u64, 0usize, 0usize);
        for packet in rest.clone() {
            let with = packets_len + packet.encoded_len();
            let size = tag + varint_len(count + 1) + with;
            if size > max_frame {
                if count == 0 {
                    return Err(ProtoError::TooLarge {
                        len: size,
                        max: max_frame,
                    });
                }
                break;
            }
            (count, packets_len, payload) = (count + 1, with, size);
        }
        out.reserve(HEADER_LEN + payload);
        // payload <= max_frame <= MAX_FRAME < 4 GiB.
        out.extend_from_slice(&(payload as u32).to_be_bytes());
        put_varint(out, PACKETS_VARIANT);
        put_varint(out, count);
        for packet in rest.by_ref().take(count as usize) {
            packet.encode(out);
        }
        frames += 1;
    }
    Ok(frames)
}

/// [`crate::Reply::Packets`]'s variant index, which bincode writes first (a test
/// checks it against bincode's own encoding).
pub(crate) const PACKETS_VARIANT: u64 = 2;

fn direction_index(direction: Direction) -> u64 {
    match direction {
        Direction::In => 0,
        Direction::Out => 1,
        Direction::InOut => 2,
    }
}

/// bincode's varint: one byte below 251, else a marker byte and the value
/// as a little-endian u16, u32 or u64.
fn varint_len(value: u64) -> usize {
    match value {
        0..=250 => 1,
        251..=0xffff => 3,
        0x1_0000..=0xffff_ffff => 5,
        _ => 9,
    }
}

fn put_varint(out: &mut Vec<u8>, value: u64) {
    match value {
        0..=250 => out.push(value as u8),
        251..=0xffff => {
            out.push(251);
            out.extend_from_slice(&(value as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(252);
            out.extend_from_slice(&(value as u32).to_le_bytes());
        }
        _ => {
            out.push(253);
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
}
