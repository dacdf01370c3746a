//! The Internet checksum (RFC 1071), and its incremental update (RFC 1624).
//!
//! Every region a checksum covers in a frame starts at an even offset
//! (Ethernet is 14 bytes, VLAN tags 4, IP, extension and transport headers
//! multiples of 4), so a byte's place in its 16-bit word is the parity of
//! its offset in the frame. That lets one running difference serve every
//! checksum whose region covers the bytes that changed.

/// A one's complement sum, or a difference of two (RFC 1624: the new
/// words plus the complement of the old ones), not yet folded.
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

    /// The one's complement negation (`~m` in RFC 1624).
    pub(crate) fn negate(self) -> Sum {
        Sum(u64::from(!self.fold()))
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

/// Writes `new` at `data[at..]`, as much of it as was captured, and
/// returns how the sum of the frame changed.
pub(crate) fn replace(data: &mut [u8], at: usize, new: &[u8]) -> Sum {
    if at >= data.len() {
        return Sum::default();
    }
    let n = new.len().min(data.len() - at);
    let old = Sum::of(&data[at..at + n], at);
    data[at..at + n].copy_from_slice(&new[..n]);
    Sum::of(&new[..n], at) + old.negate()
}

/// Zeroes `data[start..end]` (clipped) and returns how the sum changed.
pub(crate) fn zero(data: &mut [u8], start: usize, end: usize) -> Sum {
    let end = end.min(data.len());
    if start >= end {
        return Sum::default();
    }
    let old = Sum::of(&data[start..end], start);
    data[start..end].fill(0);
    old.negate()
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

/// Updates the checksum field at `data[at..at + 2]` for a covered region
/// whose sum changed by `delta` (RFC 1624, eqn. 3), if the field was
/// captured. Returns how the field's own change moved the frame's sum, for
/// a checksum that covers this one (an ICMP error quoting a header).
pub(crate) fn update(data: &mut [u8], at: usize, delta: Sum, zero: Zero) -> Sum {
    let Some(old) = read16(data, at) else {
        return Sum::default();
    };
    if zero == Zero::Udp && old == 0 {
        return Sum::default();
    }
    let new = (Sum::word(!old) + delta).checksum();
    write(data, at, new, zero)
}

/// Stores a freshly computed checksum at `data[at..at + 2]`, if captured,
/// leaving a UDP "no checksum" zero alone. Returns the frame's sum change.
pub(crate) fn store(data: &mut [u8], at: usize, new: u16, zero: Zero) -> Sum {
    match read16(data, at) {
        None => Sum::default(),
        Some(0) if zero == Zero::Udp => Sum::default(),
        Some(_) => write(data, at, new, zero),
    }
}

fn write(data: &mut [u8], at: usize, new: u16, zero: Zero) -> Sum {
    let new = if zero == Zero::Udp && new == 0 {
        0xffff
    } else {
        new
    };
    replace(data, at, &new.to_be_bytes())
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
    fn incremental_update_matches_recomputation() {
        let mut data = vec![0x45, 0, 0, 28, 0x12, 0x34, 0, 0, 64, 17, 0, 0];
        data.extend_from_slice(&[10, 0, 0, 1, 192, 168, 1, 2]);
        let c = Sum::range(&data, 0, 20).checksum();
        data[10..12].copy_from_slice(&c.to_be_bytes());
        let delta = replace(&mut data, 12, &[172, 16, 5, 9]);
        update(&mut data, 10, delta, Zero::Plain);
        assert_eq!(Sum::range(&data, 0, 20).fold(), 0xffff);
    }

    #[test]
    fn udp_zero_stays_zero() {
        let mut data = vec![0u8; 8];
        update(&mut data, 6, Sum::word(0x1234), Zero::Udp);
        assert_eq!(read16(&data, 6), Some(0));
    }
}
