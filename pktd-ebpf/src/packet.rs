//! The packet as filters see it: the frame as it was on the wire.
//!
//! On veth and most NICs the kernel strips the outer 802.1Q/802.1ad tag
//! before TC and keeps it in skb metadata. Filters (compiled by libpcap for
//! the frame as saved) and clients (who get the saved frame) must see the tag
//! in place, so every offset past the MAC addresses is shifted by the
//! re-inserted 4 bytes.

use core::ffi::c_void;

use aya_ebpf::{bindings::__sk_buff, helpers::generated::bpf_skb_load_bytes, programs::TcContext};
use pktd_common::{PREFIX_LEN, PacketPrefix};

/// Bytes before the EtherType/VLAN tag: destination and source MAC.
const MAC_LEN: u32 = 12;
/// Bytes of a VLAN tag (TPID + TCI).
const TAG_LEN: u32 = 4;

/// One packet being classified. Lives on the stack of the classifier; the
/// callbacks reach it through bpf_loop's context pointer.
#[repr(C)]
pub struct Packet {
    skb: *mut __sk_buff,
    /// PKTD_PREFIX value of this CPU: the first `prefix_len` bytes.
    prefix: *mut PacketPrefix,
    /// Set on first delivery, shared by every client of this packet.
    pub timestamp_ns: u64,
    /// Length on the wire, the re-inserted tag included.
    pub wire_len: u32,
    /// min(wire_len, PREFIX_LEN).
    prefix_len: u32,
    /// TAG_LEN when the tag was re-inserted, else 0.
    tag_len: u32,
    /// The re-inserted tag in wire byte order.
    tag: [u8; 4],
    pub ifindex: u32,
    pub direction: u32,
}

impl Packet {
    /// Reads the packet's metadata and its first PREFIX_LEN bytes.
    #[inline(always)]
    pub fn read(ctx: &TcContext, prefix: *mut PacketPrefix, direction: u32) -> Option<Self> {
        let skb = ctx.skb.skb;
        // SAFETY: `skb` is the program's context; the verifier rewrites these
        // field reads into reads of the real sk_buff.
        let (skb_len, vlan_present, vlan_tci, vlan_proto, ifindex) = unsafe {
            (
                (*skb).len,
                (*skb).vlan_present,
                (*skb).vlan_tci,
                (*skb).vlan_proto,
                (*skb).ifindex,
            )
        };
        // TC always sees at least an Ethernet header.
        if skb_len < 14 {
            return None;
        }
        let tag_len = if vlan_present != 0 { TAG_LEN } else { 0 };
        // vlan_proto is the raw __be16 read as a little-endian u16; the TCI is
        // in host order.
        let proto = (vlan_proto as u16).to_le_bytes();
        let tci = (vlan_tci as u16).to_be_bytes();
        let mut packet = Self {
            skb,
            prefix,
            timestamp_ns: 0,
            wire_len: skb_len + tag_len,
            prefix_len: 0,
            tag_len,
            tag: [proto[0], proto[1], tci[0], tci[1]],
            ifindex,
            direction,
        };
        packet.prefix_len = packet.wire_len.min(PREFIX_LEN);
        // SAFETY: `prefix` is this CPU's PKTD_PREFIX value, PREFIX_LEN + 8
        // bytes long; prefix_len <= PREFIX_LEN.
        let dst = unsafe { (*prefix).bytes.as_mut_ptr() };
        packet.copy_bytes::<PREFIX_LEN>(dst, packet.prefix_len)?;
        Some(packet)
    }

    /// Copies the first `len` wire bytes (1..=MAX) to `dst`, which must have
    /// room for max(MAX, 16) bytes. MAX is the bound the verifier checks the
    /// copies against.
    #[inline(always)]
    pub fn copy_bytes<const MAX: u32>(&self, dst: *mut u8, len: u32) -> Option<()> {
        if len == 0 || len > MAX {
            return None;
        }
        if self.tag_len == 0 {
            return self.skb_bytes(0, dst, len);
        }
        // MAC addresses, then the tag, then the rest shifted by TAG_LEN.
        self.skb_bytes(0, dst, len.min(MAC_LEN))?;
        if len > MAC_LEN {
            // SAFETY: dst has room for at least 16 bytes.
            unsafe {
                dst.add(MAC_LEN as usize)
                    .cast::<[u8; 4]>()
                    .write_unaligned(self.tag)
            };
        }
        if len > MAC_LEN + TAG_LEN {
            // SAFETY: stays inside `len` bytes of dst.
            let rest = unsafe { dst.add((MAC_LEN + TAG_LEN) as usize) };
            self.skb_bytes(MAC_LEN, rest, len - MAC_LEN - TAG_LEN)?;
        }
        Some(())
    }

    #[inline(always)]
    fn skb_bytes(&self, offset: u32, dst: *mut u8, len: u32) -> Option<()> {
        if len == 0 {
            return Some(());
        }
        // SAFETY: the helper checks `offset`/`len` against the skb; `dst`
        // has room for `len` bytes (callers' contract).
        let rc = unsafe { bpf_skb_load_bytes(self.skb.cast(), offset, dst.cast::<c_void>(), len) };
        (rc == 0).then_some(())
    }

    /// The TCP flags byte of an IPv4 (first fragment) or IPv6 TCP segment
    /// behind at most two VLAN tags; IPv6 extension headers are not
    /// followed.
    #[inline(always)]
    pub fn tcp_flags(&self) -> Option<u8> {
        let mut l3 = MAC_LEN + 2;
        let mut ethertype = self.prefix_load::<2>(MAC_LEN)?;
        if ethertype == 0x8100 || ethertype == 0x88a8 {
            ethertype = self.prefix_load::<2>(l3 + 2)?;
            l3 += 4;
        }
        if ethertype == 0x8100 {
            ethertype = self.prefix_load::<2>(l3 + 2)?;
            l3 += 4;
        }
        let l4 = match ethertype {
            0x0800 => {
                let version_ihl = self.prefix_load::<1>(l3)?;
                let not_first_fragment = self.prefix_load::<2>(l3 + 6)? & 0x1fff != 0;
                if version_ihl >> 4 != 4
                    || self.prefix_load::<1>(l3 + 9)? != 6
                    || not_first_fragment
                {
                    return None;
                }
                l3 + (version_ihl & 0xf) * 4
            }
            0x86dd if self.prefix_load::<1>(l3 + 6)? == 6 => l3 + 40,
            _ => return None,
        };
        Some(self.prefix_load::<1>(l4 + 13)? as u8)
    }

    /// Like [`Packet::load`], but only within the copied prefix (one path
    /// for the verifier: cheap to verify on the per-packet path).
    #[inline(always)]
    fn prefix_load<const SIZE: u32>(&self, offset: u32) -> Option<u32> {
        let end = u64::from(offset) + u64::from(SIZE);
        if end > u64::from(self.prefix_len) {
            return None;
        }
        Some(self.prefix_word::<SIZE>(offset))
    }

    /// `SIZE` bytes at `offset`, which the caller checked lie in the prefix.
    #[inline(always)]
    fn prefix_word<const SIZE: u32>(&self, offset: u32) -> u32 {
        // offset < PREFIX_LEN here; the mask lets the verifier see it.
        let at = (offset & (PREFIX_LEN - 1)) as usize;
        // SAFETY: `prefix` holds PREFIX_LEN + 8 bytes, so at + 4 fits.
        let word = unsafe {
            (*self.prefix)
                .bytes
                .as_ptr()
                .add(at)
                .cast::<[u8; 4]>()
                .read_unaligned()
        };
        big_endian::<SIZE>(word)
    }

    /// Loads `SIZE` (1, 2 or 4) bytes at wire offset `offset`, big-endian,
    /// the way classic BPF does; `None` when they are not all in the packet.
    #[inline(always)]
    pub fn load<const SIZE: u32>(&self, offset: u32) -> Option<u32> {
        let end = u64::from(offset) + u64::from(SIZE);
        if end <= u64::from(self.prefix_len) {
            return Some(self.prefix_word::<SIZE>(offset));
        }
        if end > u64::from(self.wire_len) {
            return None;
        }
        // Past the prefix, so past the tag too (PREFIX_LEN > 16): the skb
        // holds these bytes TAG_LEN earlier.
        let mut word = [0u8; 4];
        self.skb_bytes(offset - self.tag_len, word.as_mut_ptr(), SIZE)?;
        Some(big_endian::<SIZE>(word))
    }
}

/// The first `SIZE` (1, 2 or 4) bytes of `word` as a big-endian number.
#[inline(always)]
fn big_endian<const SIZE: u32>(word: [u8; 4]) -> u32 {
    match SIZE {
        1 => u32::from(word[0]),
        2 => u32::from(u16::from_be_bytes([word[0], word[1]])),
        _ => u32::from_be_bytes(word),
    }
}
