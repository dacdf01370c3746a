//! Anonymizing one captured Ethernet frame in place.

use crate::checksum::{store, zero};
use crate::cryptopan::CryptoPan;
use crate::icmp;
use crate::ip::{rewrite_arp, rewrite_ipv4, rewrite_ipv6, transport_sum, zero_kind};
use crate::layout::{Ip, Layout, Net, TransportKind, layout};
use crate::mac::{MacHasher, MacMode};

/// What happens to the bytes after the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadMode {
    /// Kept as captured, except where this crate knows addresses are
    /// (ICMP quotes, neighbor discovery), which are mapped, and after the
    /// headers of protocols that do not [`passes_through`] (tunnels,
    /// checksums over the real addresses), which is zeroed.
    ///
    /// [`passes_through`]: crate::passes_through
    #[default]
    Keep,
    /// Every byte from [`Layout::header_end`] on is zeroed; checksums are
    /// recomputed as if the whole payload were zeros.
    Zero,
}

/// Rewrites frames under one key and one pair of modes.
#[derive(Debug, Clone)]
pub struct Anonymizer {
    pan: CryptoPan,
    mac: MacHasher,
    payload: PayloadMode,
}

impl Anonymizer {
    /// An anonymizer mapping IP addresses with `pan`, MAC addresses by
    /// `mac` (hashing under a key derived from `pan`'s) and payloads by
    /// `payload`.
    pub fn new(pan: CryptoPan, mac: MacMode, payload: PayloadMode) -> Self {
        let mac = MacHasher::new(mac, &pan);
        Anonymizer { pan, mac, payload }
    }

    /// The address mapping, e.g. to map a client's filter constants back
    /// with [`CryptoPan::real_prefix_v4`].
    pub fn crypto_pan(&self) -> &CryptoPan {
        &self.pan
    }

    /// The MAC mode.
    pub fn mac_mode(&self) -> MacMode {
        self.mac.mode()
    }

    /// The payload mode.
    pub fn payload_mode(&self) -> PayloadMode {
        self.payload
    }

    /// Anonymizes `data`, the captured prefix of a frame of `wire_len`
    /// bytes, in place, and returns the layout it found. Never reads or
    /// writes past `data.len()`, whatever the bytes.
    pub fn rewrite(&mut self, data: &mut [u8], wire_len: u32) -> Layout {
        let lay = layout(data, wire_len);
        self.mac.rewrite(data, 0);
        self.mac.rewrite(data, 6);
        match lay.net {
            Net::Ipv4(ip) => self.rewrite_ip(data, &ip, true),
            Net::Ipv6(ip) => self.rewrite_ip(data, &ip, false),
            Net::Arp(arp) => rewrite_arp(&mut self.pan, &self.mac, data, &arp),
            Net::Other => {}
        }
        if lay.hide_rest || self.payload == PayloadMode::Zero {
            zero(data, lay.header_end, data.len());
        }
        lay
    }

    /// The IP headers, then the transport checksum, which covers the
    /// addresses through its pseudo-header.
    fn rewrite_ip(&mut self, data: &mut [u8], ip: &Ip, v4: bool) {
        if v4 {
            rewrite_ipv4(&mut self.pan, data, ip);
        } else {
            rewrite_ipv6(&mut self.pan, data, ip);
        }
        let Some(t) = ip.transport else { return };
        if matches!(t.kind, TransportKind::Icmpv4 | TransportKind::Icmpv6) {
            icmp::rewrite_header(&mut self.pan, data, &t);
            if self.payload == PayloadMode::Keep {
                let end = ip.packet_end.unwrap_or(data.len());
                icmp::rewrite_body(&mut self.pan, &self.mac, data, &t, end);
            }
        }
        // The checksum is computed afresh for the bytes the client sees,
        // never updated: the field as captured need not be a checksum of
        // the real packet (with TX checksum offload it holds the sum of the
        // real pseudo-header), and an update would pass whatever it holds
        // on. With the payload kept, that needs the whole segment; a cut
        // one gets zero, since what was not captured cannot be summed.
        // With the payload zeroed, the header is enough, the payload the
        // client sees being zeros to the length in the IP header.
        let through = match self.payload {
            PayloadMode::Keep => ip.packet_end,
            PayloadMode::Zero => Some(t.start + t.header_len),
        };
        let sum = through.and_then(|through| transport_sum(data, ip, &t, v4, through));
        store(
            data,
            t.start + t.kind.checksum_offset(),
            sum,
            zero_kind(t.kind),
        );
    }
}
