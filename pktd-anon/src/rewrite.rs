//! Anonymizing one captured Ethernet frame in place.

use crate::checksum::{Sum, Zero, store, update, zero};
use crate::cryptopan::CryptoPan;
use crate::icmp;
use crate::ip::{pseudo_addresses, rewrite_arp, rewrite_ipv4, rewrite_ipv6};
use crate::layout::{Ip, Layout, Net, Transport, TransportKind, layout};
use crate::mac::{MacHasher, MacMode};

/// What happens to the bytes after the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadMode {
    /// Kept as captured, except where this crate knows addresses are
    /// (ICMP quotes, neighbor discovery), which are mapped, and where it
    /// cannot look (tunnels, unknown protocols), which is zeroed.
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
        let old = pseudo_addresses(data, ip, v4);
        if v4 {
            rewrite_ipv4(&mut self.pan, data, ip);
        } else {
            rewrite_ipv6(&mut self.pan, data, ip);
        }
        let Some(t) = ip.transport else { return };
        let pseudo = match (old, pseudo_addresses(data, ip, v4)) {
            (Some(old), Some(new)) => new + old.negate(),
            // The transport header follows the addresses: if they were not
            // all captured, neither was its checksum.
            _ => return,
        };
        let end = ip.packet_end.unwrap_or(data.len());
        let mut body = Sum::default();
        if matches!(t.kind, TransportKind::Icmpv4 | TransportKind::Icmpv6) {
            body += icmp::rewrite_header(&mut self.pan, data, &t);
            if self.payload == PayloadMode::Keep {
                body += icmp::rewrite_body(&mut self.pan, &self.mac, data, &t, end);
            }
        }
        let zero_kind = if t.kind == TransportKind::Udp {
            Zero::Udp
        } else {
            Zero::Plain
        };
        let at = t.start + t.kind.checksum_offset();
        if self.payload == PayloadMode::Zero {
            if let Some(sum) = zero_payload_sum(data, ip, &t, v4) {
                store(data, at, sum.checksum(), zero_kind);
                return;
            }
            // Cannot recompute: account for the zeroing to come instead.
            body += Sum::range(data, t.start + t.header_len, end).negate();
        }
        if t.kind != TransportKind::Icmpv4 {
            body += pseudo;
        }
        update(data, at, body, zero_kind);
    }
}

/// The sum a transport checksum covers once its payload is all zeros:
/// its pseudo-header (with the length from the IP header, whatever was
/// cut) and its header. `None` if the header was not wholly captured or
/// the length is unknown or inconsistent.
fn zero_payload_sum(data: &[u8], ip: &Ip, t: &Transport, v4: bool) -> Option<Sum> {
    let header_end = t.start + t.header_len;
    if header_end > data.len() {
        return None;
    }
    let len = ip.packet_end?.checked_sub(t.start)?;
    if len < t.header_len {
        return None;
    }
    let at = t.start + t.kind.checksum_offset();
    let mut sum = Sum::range(data, t.start, at) + Sum::range(data, at + 2, header_end);
    if t.kind == TransportKind::Icmpv4 {
        return Some(sum);
    }
    sum += pseudo_addresses(data, ip, v4)?;
    sum += Sum::word(u16::from(t.kind.protocol()));
    if v4 {
        sum += Sum::word(u16::try_from(len).ok()?);
    } else {
        let len = u32::try_from(len).ok()?;
        sum += Sum::word((len >> 16) as u16) + Sum::word(len as u16);
    }
    Some(sum)
}
