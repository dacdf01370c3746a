//! The packet as filters see it: the frame as it was on the wire.
//!
//! On veth and most NICs the kernel strips the outer 802.1Q/802.1ad tag
//! before TC and keeps it in skb metadata. Filters (compiled by libpcap for
//! the frame as saved) and clients (who get the saved frame) must see the tag
//! in place, so every offset past the MAC addresses is shifted by the
//! re-inserted 4 bytes. XDP runs before that stripping: its frames are
//! whole.

use core::ffi::c_void;

use aya_ebpf::{
    bindings::{__sk_buff, xdp_md},
    helpers::generated::{bpf_skb_load_bytes, bpf_xdp_load_bytes},
};
use pktd_common::{
    DIR_OUT, PACKET_OUTGOING, PREFIX_LEN, PacketPrefix, SKF_AD_IFINDEX, SKF_AD_OFF, SKF_AD_PKTTYPE,
    SKF_AD_PROTOCOL, SKF_AD_VLAN_TAG, SKF_AD_VLAN_TAG_PRESENT,
};

/// What a hook's context tells about its packet.
pub struct FrameInfo {
    /// Bytes in the frame as the hook holds it (tag not included).
    pub len: u32,
    /// The outer VLAN tag moved into metadata, if any: (TPID as the raw
    /// big-endian u16 read little-endian, TCI in host order).
    pub vlan: Option<(u32, u32)>,
    pub ifindex: u32,
}

/// A hook's packet context: TC's `__sk_buff` or XDP's `xdp_md`.
pub trait HookContext: Copy {
    fn info(self) -> FrameInfo;
    /// The packet type (PACKET_HOST …) and EtherType (host order) the
    /// kernel gave the packet, for the ancillary loads; only asked when a
    /// filter reads them. `None` at XDP, before the kernel has looked at
    /// the frame.
    fn metadata(self) -> Option<(u32, u32)>;
    /// Copies `len` bytes at `offset` of the frame (as the hook holds it)
    /// to `dst`; the helper's return code.
    fn load_bytes(self, offset: u32, dst: *mut u8, len: u32) -> i64;
}

/// A TC program's context.
#[derive(Clone, Copy)]
pub struct Tc(pub *mut __sk_buff);

impl HookContext for Tc {
    #[inline(always)]
    fn info(self) -> FrameInfo {
        let skb = self.0;
        // SAFETY: `skb` is the program's context; the verifier rewrites these
        // field reads into reads of the real sk_buff.
        unsafe {
            FrameInfo {
                len: (*skb).len,
                vlan: ((*skb).vlan_present != 0).then(|| ((*skb).vlan_proto, (*skb).vlan_tci)),
                ifindex: (*skb).ifindex,
            }
        }
    }

    #[inline(always)]
    fn metadata(self) -> Option<(u32, u32)> {
        let skb = self.0;
        // SAFETY: as in `info`.
        let (pkt_type, protocol) = unsafe { ((*skb).pkt_type, (*skb).protocol) };
        // `protocol` is the __be16 as stored.
        Some((pkt_type, u32::from(u16::from_be(protocol as u16))))
    }

    #[inline(always)]
    fn load_bytes(self, offset: u32, dst: *mut u8, len: u32) -> i64 {
        // SAFETY: the helper checks `offset`/`len` against the skb; callers
        // give `dst` room for `len` bytes.
        unsafe { bpf_skb_load_bytes(self.0.cast(), offset, dst.cast::<c_void>(), len) }
    }
}

/// An XDP program's context.
#[derive(Clone, Copy)]
pub struct Xdp(pub *mut xdp_md);

impl HookContext for Xdp {
    #[inline(always)]
    fn info(self) -> FrameInfo {
        let md = self.0;
        // SAFETY: `md` is the program's context; the verifier rewrites these
        // field reads.
        let (data, data_end, ifindex) =
            unsafe { ((*md).data, (*md).data_end, (*md).ingress_ifindex) };
        FrameInfo {
            // Without fragments (pktd does not ask for them) an XDP frame
            // fits a page; the mask shows the verifier a bound.
            len: data_end.wrapping_sub(data) & 0xffff,
            vlan: None,
            ifindex,
        }
    }

    #[inline(always)]
    fn metadata(self) -> Option<(u32, u32)> {
        // XDP runs before the kernel has classified the frame: sessions
        // whose filters read these keep their interface at TC.
        None
    }

    #[inline(always)]
    fn load_bytes(self, offset: u32, dst: *mut u8, len: u32) -> i64 {
        // SAFETY: as for Tc.
        unsafe { bpf_xdp_load_bytes(self.0.cast(), offset, dst.cast::<c_void>(), len) }
    }
}

/// Bytes before the EtherType/VLAN tag: destination and source MAC.
const MAC_LEN: u32 = 12;
/// Bytes of a VLAN tag (TPID + TCI).
const TAG_LEN: u32 = 4;

/// One packet being classified. Lives on the stack of the classifier; the
/// callbacks reach it through bpf_loop's context pointer.
#[repr(C)]
pub struct PacketView<F: HookContext> {
    frame: F,
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

impl<F: HookContext> PacketView<F> {
    /// Reads the packet's metadata and, if `with_prefix` (the interpreter
    /// will run: only it loads from the prefix), its first PREFIX_LEN bytes.
    #[inline(always)]
    pub fn read(
        frame: F,
        prefix: *mut PacketPrefix,
        direction: u32,
        with_prefix: bool,
    ) -> Option<Self> {
        let FrameInfo {
            len: skb_len,
            vlan,
            ifindex,
        } = frame.info();
        // Both hooks always see at least an Ethernet header.
        if skb_len < 14 {
            return None;
        }
        let (tag_len, (vlan_proto, vlan_tci)) = match vlan {
            Some(tag) => (TAG_LEN, tag),
            None => (0, (0, 0)),
        };
        // vlan_proto is the raw __be16 read as a little-endian u16; the TCI is
        // in host order.
        let proto = (vlan_proto as u16).to_le_bytes();
        let tci = (vlan_tci as u16).to_be_bytes();
        let mut packet = Self {
            frame,
            prefix,
            timestamp_ns: 0,
            wire_len: skb_len + tag_len,
            prefix_len: 0,
            tag_len,
            tag: [proto[0], proto[1], tci[0], tci[1]],
            ifindex,
            direction,
        };
        if !with_prefix {
            return Some(packet);
        }
        packet.prefix_len = packet.wire_len.min(PREFIX_LEN);
        // SAFETY: `prefix` is this CPU's PKTD_PREFIX value, PREFIX_LEN + 8
        // bytes long; prefix_len <= PREFIX_LEN.
        let dst = unsafe { (*prefix).bytes.as_mut_ptr() };
        packet.copy_bytes::<PREFIX_LEN>(dst, packet.prefix_len)?;
        Some(packet)
    }

    /// What the ancillary load at `k` (at or above SKF_AD_OFF) reads:
    /// `None` (the packet is rejected) for one pktd does not offer.
    #[inline(always)]
    pub fn ancillary(&self, k: u32) -> Option<u32> {
        let offset = k.wrapping_sub(SKF_AD_OFF);
        if offset == SKF_AD_IFINDEX {
            return Some(self.ifindex);
        }
        // The others need the socket buffer (TC); at XDP the packet is
        // rejected, as native code does.
        let (pkt_type, protocol) = self.frame.metadata()?;
        match offset {
            SKF_AD_PROTOCOL => Some(protocol),
            SKF_AD_PKTTYPE if self.direction == DIR_OUT => Some(PACKET_OUTGOING),
            SKF_AD_PKTTYPE => Some(pkt_type),
            SKF_AD_VLAN_TAG => Some(if self.tag_len != 0 {
                u32::from(u16::from_be_bytes([self.tag[2], self.tag[3]]))
            } else {
                0
            }),
            SKF_AD_VLAN_TAG_PRESENT => Some(u32::from(self.tag_len != 0)),
            _ => None,
        }
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
        // The tag's bytes within `len` only: a record is read in place, so
        // nothing past its length may be written (a window of 13 to 15
        // bytes must not show the rest of the TCI).
        for (i, byte) in self.tag.iter().enumerate() {
            if len > MAC_LEN + i as u32 {
                // SAFETY: dst has room for at least 16 bytes.
                unsafe { dst.add(MAC_LEN as usize + i).write(*byte) };
            }
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
        (self.frame.load_bytes(offset, dst, len) == 0).then_some(())
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
