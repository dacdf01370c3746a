//! The Internet checksum (RFC 1071), computed afresh over rewritten bytes.
//!
//! Checksums are never updated incrementally (RFC 1624): an update carries
//! over whatever the old field held, and a field that was not the
//! checksum of the real packet (a partial pseudo-header sum left by TX
//! checksum offload, a corrupted value) would then tell a client the sum
//! of the real addresses. A checksum is computed over the rewritten bytes
//! when all of them are known, and zeroed otherwise.
//!
//! Every region a checksum covers in a frame starts at an even offset
//! (Ethernet is 14 bytes, VLAN tags 4, IP, extension and transport headers
//! multiples of 4), so a byte's place in its 16-bit word is the parity of
//! its offset in the frame, and a region can be summed in pieces.

/// A one's complement sum, not yet folded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Sum(u64);

impl Sum {
    /// The sum of `bytes`, the first of which is at frame offset `at`.
    pub(crate) fn of(bytes: &[u8], at: usize) -> Sum {
        let mut s = 0u64;
        for (i, &b) in bytes.iter().enumerate() {
            s += if (at + i).is_multiple_of(2) {
                u64::from(b) << 8
            } else {
                u64::from(b)
            };
        }
        Sum(s)
    }

    /// The sum of `data[start..end]`, clipped to what was captured.
    pub(crate) fn range(data: &[u8], start: usize, end: usize) -> Sum {
        let end = end.min(data.len());
        if start >= end {
            return Sum(0);
        }
        Sum::of(&data[start..end], start)
    }

    pub(crate) fn word(w: u16) -> Sum {
        Sum(u64::from(w))
    }

    /// The 16-bit one's complement value of the sum.
    pub(crate) fn fold(self) -> u16 {
        let mut s = self.0;
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    /// The checksum field that makes a region summing to `self` verify.
    pub(crate) fn checksum(self) -> u16 {
        !self.fold()
    }
}

impl std::ops::Add for Sum {
    type Output = Sum;
    fn add(self, other: Sum) -> Sum {
        Sum(self.0 + other.0)
    }
}

impl std::ops::AddAssign for Sum {
    fn add_assign(&mut self, other: Sum) {
        self.0 += other.0;
    }
}

/// Writes `new` at `data[at..]`, as much of it as was captured.
pub(crate) fn replace(data: &mut [u8], at: usize, new: &[u8]) {
    if at >= data.len() {
        return;
    }
    let n = new.len().min(data.len() - at);
    data[at..at + n].copy_from_slice(&new[..n]);
}

/// Zeroes `data[start..end]`, clipped to what was captured.
pub(crate) fn zero(data: &mut [u8], start: usize, end: usize) {
    let end = end.min(data.len());
    if start < end {
        data[start..end].fill(0);
    }
}

/// How a checksum field treats zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    /// Zero is a value like any other (IP header, TCP, ICMP).
    Plain,
    /// UDP: zero means "no checksum" and stays zero; a computed zero is
    /// sent as 0xffff (RFC 768).
    Udp,
}

/// Sets the checksum field at `data[at..at + 2]` for a covered region
/// whose other bytes (the field excluded) sum to `sum`, or zeroes it when
/// `sum` is `None`: the region was not all captured, so the checksum
/// cannot be computed, and the field as it came cannot be trusted to be
/// a checksum at all (a partial sum over the real addresses). A field
/// captured by half is zeroed too, and a UDP "no checksum" zero is left
/// alone.
pub(crate) fn store(data: &mut [u8], at: usize, sum: Option<Sum>, zero: Zero) {
    match (read16(data, at), sum) {
        (Some(0), _) if zero == Zero::Udp => {}
        (Some(_), Some(sum)) => {
            let new = match sum.checksum() {
                0 if zero == Zero::Udp => 0xffff,
                c => c,
            };
            replace(data, at, &new.to_be_bytes());
        }
        _ => clear(data, at),
    }
}

/// Zeroes the checksum field at `data[at..at + 2]`, as much of it as was
/// captured: for a checksum that cannot be made right for the bytes the
/// client sees, and would otherwise depend on bytes it does not see as
/// they are. For UDP, zero reads as "no checksum".
pub(crate) fn clear(data: &mut [u8], at: usize) {
    zero(data, at, at.saturating_add(2));
}

/// The sum of `data[start..end]` without the checksum field at
/// `data[at..at + 2]`, or `None` if the region was not all captured.
pub(crate) fn region_sum(data: &[u8], start: usize, end: usize, at: usize) -> Option<Sum> {
    if end > data.len() {
        return None;
    }
    Some(Sum::range(data, start, at.min(end)) + Sum::range(data, at + 2, end))
}

/// The big-endian 16-bit word at `data[at..at + 2]`, if captured.
pub(crate) fn read16(data: &[u8], at: usize) -> Option<u16> {
    let b = data.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_checksum_verifies_whatever_the_field_held() {
        let mut data = vec![0x45, 0, 0, 28, 0x12, 0x34, 0, 0, 64, 17, 0xde, 0xad];
        data.extend_from_slice(&[10, 0, 0, 1, 192, 168, 1, 2]);
        let sum = region_sum(&data, 0, 20, 10);
        store(&mut data, 10, sum, Zero::Plain);
        assert_eq!(Sum::range(&data, 0, 20).fold(), 0xffff);
    }

    #[test]
    fn udp_zero_stays_zero() {
        let mut data = vec![0u8; 8];
        store(&mut data, 6, Some(Sum::word(0x1234)), Zero::Udp);
        assert_eq!(read16(&data, 6), Some(0));
        store(&mut data, 6, None, Zero::Udp);
        assert_eq!(read16(&data, 6), Some(0));
    }

    #[test]
    fn computed_udp_zero_is_sent_as_all_ones() {
        let mut data = vec![0, 0, 0, 0, 0, 0, 1, 1];
        store(&mut data, 6, Some(Sum::word(0xffff)), Zero::Udp);
        assert_eq!(read16(&data, 6), Some(0xffff));
    }

    #[test]
    fn a_region_not_all_captured_zeroes_the_field() {
        let mut data = vec![1, 2, 3, 4, 5, 6];
        let sum = region_sum(&data, 0, 8, 2);
        assert_eq!(sum, None);
        store(&mut data, 2, sum, Zero::Plain);
        assert_eq!(data, [1, 2, 0, 0, 5, 6]);
    }
}
