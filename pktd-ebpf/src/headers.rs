//! Header reads straight from the packet's linear data, for the per-packet
//! interface statistics: cheaper than copying the packet first.

/// The TCP flags byte of an IPv4 (first fragment) or IPv6 TCP segment
/// behind at most two VLAN tags still in the frame; IPv6 extension headers
/// are not followed. `data..end` is the linear packet data.
#[inline(always)]
pub fn tcp_flags(data: usize, end: usize) -> Option<u8> {
    let mut l3 = 14;
    let mut ethertype = be16(data, end, 12)?;
    if ethertype == 0x8100 || ethertype == 0x88a8 {
        ethertype = be16(data, end, 16)?;
        l3 = 18;
    }
    if ethertype == 0x8100 {
        ethertype = be16(data, end, 20)?;
        l3 = 22;
    }
    let l4 = match ethertype {
        0x0800 => {
            let version_ihl = byte(data, end, l3)?;
            let not_first_fragment = be16(data, end, l3 + 6)? & 0x1fff != 0;
            if version_ihl >> 4 != 4 || byte(data, end, l3 + 9)? != 6 || not_first_fragment {
                return None;
            }
            l3 + usize::from(version_ihl & 0xf) * 4
        }
        0x86dd if byte(data, end, l3 + 6)? == 6 => l3 + 40,
        _ => return None,
    };
    byte(data, end, l4 + 13)
}

#[inline(always)]
fn byte(data: usize, end: usize, offset: usize) -> Option<u8> {
    let at = data + offset;
    if at + 1 > end {
        return None;
    }
    // SAFETY: `at` lies inside the packet's linear data, checked above in
    // the form the verifier tracks.
    Some(unsafe { *(at as *const u8) })
}

#[inline(always)]
fn be16(data: usize, end: usize, offset: usize) -> Option<u16> {
    let at = data + offset;
    if at + 2 > end {
        return None;
    }
    // SAFETY: as in `byte`.
    Some(u16::from_be(unsafe { (at as *const u16).read_unaligned() }))
}
