//! Checks 1 to 4 of an injected frame (see the module above): well-formed,
//! within the MTU, not spoofed, matched by the principal's filter; and
//! check 5 through the token buckets of `rate`.

use std::{fmt, net::IpAddr};

use etherparse::{EtherType, LinkExtSlice, NetSlice, SlicedPacket, TransportSlice};
use pktd_filter::ValidProgram;

use super::error::InjectError;
use crate::policy::{InjectRules, MAX_SNAPLEN};

/// Length of an Ethernet header without tags.
const ETHERNET_HEADER: usize = 14;
/// Length of one 802.1Q/802.1ad tag.
const VLAN_TAG: usize = 4;
/// Smallest Ethernet frame without FCS; shorter frames are padded to it.
const MIN_FRAME: usize = 60;
/// A MAC address, printed the usual way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// Why a frame was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Shorter than an Ethernet header.
    #[error("frame of {len} bytes is shorter than an Ethernet header (14)")]
    TooShort {
        /// The frame's length.
        len: usize,
    },
    /// A header etherparse could not parse (truncated, wrong version, bad
    /// header length...).
    #[error("malformed frame: {reason}")]
    Malformed {
        /// etherparse's explanation.
        reason: String,
    },
    /// A length field disagrees with the bytes that follow it.
    #[error("{field} {claimed} disagrees with the frame ({actual} bytes {context})")]
    LengthMismatch {
        /// The field, e.g. "IPv4 total length".
        field: &'static str,
        /// What the field says.
        claimed: usize,
        /// How many bytes there are.
        actual: usize,
        /// Where they were counted, e.g. "after the Ethernet header".
        context: &'static str,
    },
    /// The IPv4 header checksum is wrong.
    #[error("IPv4 header checksum {found:#06x} is wrong (should be {expected:#06x})")]
    Ipv4Checksum {
        /// The checksum in the header.
        found: u16,
        /// The right checksum.
        expected: u16,
    },
    /// Larger than the interface can send.
    #[error("frame of {len} bytes exceeds the interface MTU ({mtu} + {headers})")]
    TooLarge {
        /// The frame's length.
        len: usize,
        /// The interface's MTU.
        mtu: u32,
        /// The link-layer headers allowed on top: 14, plus 4 per VLAN tag.
        headers: usize,
    },
    /// A source MAC address that is not the interface's.
    #[error("{field} {mac} is not the interface's (spoofing not allowed)")]
    SpoofedMac {
        /// "source MAC" or "ARP sender MAC".
        field: &'static str,
        /// The address in the frame.
        mac: Mac,
    },
    /// A source IP address that is not one of the interface's.
    #[error("{field} {address} is not one of the interface's (spoofing not allowed)")]
    SpoofedIp {
        /// "source IPv4 address", "source IPv6 address" or "ARP sender
        /// address".
        field: &'static str,
        /// The address in the frame.
        address: IpAddr,
    },
    /// The injection filter does not match the frame.
    #[error("not matched by the injection filter")]
    Filtered,
    /// No packet token left.
    #[error("rate limit: {pps} packets/s")]
    PacketRate {
        /// The principal's packet rate.
        pps: u32,
    },
    /// Not enough byte tokens left.
    #[error("rate limit: {bps} bytes/s")]
    ByteRate {
        /// The principal's byte rate.
        bps: u64,
    },
    /// Larger than the byte bucket can ever hold: never sendable.
    #[error("frame of {len} bytes exceeds the byte rate limit's burst ({bps} bytes/s)")]
    BeyondBurst {
        /// The frame's length.
        len: usize,
        /// The principal's byte rate (= burst).
        bps: u64,
    },
    /// The kernel refused to send it.
    #[error("send failed: {reason}")]
    Send {
        /// The error's text (with the errno).
        reason: String,
    },
}

/// What the checks know about the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Interface {
    pub mtu: u32,
    pub mac: [u8; 6],
    /// IPv4 and IPv6 addresses.
    pub addresses: Vec<IpAddr>,
}

/// Everything about a frame that can be decided without sending it.
#[derive(Debug)]
pub(super) struct Checker {
    interface: Interface,
    /// `None`: the blank expression, every frame matches.
    filter: Option<ValidProgram>,
    rules: InjectRules,
}

impl Checker {
    pub fn new(interface: Interface, rules: &InjectRules) -> Result<Self, InjectError> {
        let filter = if rules.filter.trim().is_empty() {
            None
        } else {
            Some(
                pktd_filter::compile(&rules.filter, true, MAX_SNAPLEN).map_err(|source| {
                    InjectError::Filter {
                        expression: rules.filter.clone(),
                        source,
                    }
                })?,
            )
        };
        Ok(Self {
            interface,
            filter,
            rules: rules.clone(),
        })
    }

    /// Checks 1 to 4: everything but the rate.
    pub fn check(&self, frame: &[u8]) -> Result<(), Refused> {
        let parsed = well_formed(frame)?;
        let tags = parsed
            .link_exts
            .iter()
            .filter(|ext| matches!(ext, LinkExtSlice::Vlan(_)))
            .count();
        let headers = ETHERNET_HEADER + VLAN_TAG * tags;
        let mtu = self.interface.mtu;
        if frame.len() > (mtu as usize).saturating_add(headers) {
            return Err(Refused::TooLarge {
                len: frame.len(),
                mtu,
                headers,
            });
        }
        if !self.rules.spoof {
            self.check_addresses(&parsed)?;
        }
        if let Some(program) = &self.filter {
            let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
            if pktd_filter::interpret(program, frame, wire_len) == 0 {
                return Err(Refused::Filtered);
            }
        }
        Ok(())
    }

    fn check_addresses(&self, parsed: &SlicedPacket<'_>) -> Result<(), Refused> {
        let own_mac = self.interface.mac;
        let own_ip = |address: IpAddr| self.interface.addresses.contains(&address);
        if let Some(etherparse::LinkSlice::Ethernet2(ethernet)) = &parsed.link
            && ethernet.source() != own_mac
        {
            return Err(Refused::SpoofedMac {
                field: "source MAC",
                mac: Mac(ethernet.source()),
            });
        }
        match &parsed.net {
            Some(NetSlice::Ipv4(ipv4)) => {
                let address = IpAddr::from(ipv4.header().source());
                if !own_ip(address) {
                    return Err(Refused::SpoofedIp {
                        field: "source IPv4 address",
                        address,
                    });
                }
            }
            Some(NetSlice::Ipv6(ipv6)) => {
                let address = IpAddr::from(ipv6.header().source());
                if !own_ip(address) {
                    return Err(Refused::SpoofedIp {
                        field: "source IPv6 address",
                        address,
                    });
                }
            }
            Some(NetSlice::Arp(arp)) => {
                if let Ok(mac) = <[u8; 6]>::try_from(arp.sender_hw_addr())
                    && mac != own_mac
                {
                    return Err(Refused::SpoofedMac {
                        field: "ARP sender MAC",
                        mac: Mac(mac),
                    });
                }
                if arp.proto_addr_type() == etherparse::EtherType::IPV4
                    && let Ok(ipv4) = <[u8; 4]>::try_from(arp.sender_protocol_addr())
                    && !own_ip(IpAddr::from(ipv4))
                {
                    return Err(Refused::SpoofedIp {
                        field: "ARP sender address",
                        address: IpAddr::from(ipv4),
                    });
                }
            }
            None => {}
        }
        Ok(())
    }
}

/// Check 1: parses `frame` and checks its lengths and IPv4 checksum.
fn well_formed(frame: &[u8]) -> Result<SlicedPacket<'_>, Refused> {
    if frame.len() < ETHERNET_HEADER {
        return Err(Refused::TooShort { len: frame.len() });
    }
    let parsed = SlicedPacket::from_ethernet(frame).map_err(|error| Refused::Malformed {
        reason: error.to_string(),
    })?;
    // etherparse stops after SlicedPacket::LINK_EXTS_CAP VLAN/MACsec
    // headers without an error; what follows would go unchecked.
    if let Some(last) = parsed.link_exts.last()
        && parsed.link_exts.is_full()
        && let Some(payload) = last.ether_payload()
        && matches!(
            payload.ether_type,
            EtherType::VLAN_TAGGED_FRAME
                | EtherType::PROVIDER_BRIDGING
                | EtherType::VLAN_DOUBLE_TAGGED_FRAME
                | EtherType::MACSEC
        )
    {
        return Err(Refused::Malformed {
            reason: format!(
                "more than {} VLAN or MACsec headers",
                SlicedPacket::LINK_EXTS_CAP
            ),
        });
    }
    lengths_agree(frame, &parsed)?;
    Ok(parsed)
}

/// Check 1, second half: the IPv4 total length, IPv6 payload length, ARP
/// length and UDP length agree with the bytes that follow them.
fn lengths_agree(frame: &[u8], parsed: &SlicedPacket<'_>) -> Result<(), Refused> {
    let tags = parsed
        .link_exts
        .iter()
        .filter(|ext| matches!(ext, LinkExtSlice::Vlan(_)))
        .count();
    // Padding is allowed only up to the minimum frame, before or after
    // tagging.
    let padded = frame.len() == MIN_FRAME || frame.len() == MIN_FRAME + VLAN_TAG * tags;
    // Where the network header starts, from where etherparse found it.
    let offset = |header: &[u8]| (header.as_ptr() as usize).saturating_sub(frame.as_ptr() as usize);
    let consistent = |field, claimed: usize, start: usize, context| {
        let actual = frame.len().saturating_sub(start);
        if claimed == actual || (claimed < actual && padded) {
            Ok(())
        } else {
            Err(Refused::LengthMismatch {
                field,
                claimed,
                actual,
                context,
            })
        }
    };
    let ip_payload = match &parsed.net {
        Some(NetSlice::Ipv4(ipv4)) => {
            let header = ipv4.header();
            consistent(
                "IPv4 total length",
                usize::from(header.total_len()),
                offset(header.slice()),
                "after the Ethernet header",
            )?;
            let expected = ipv4_checksum(header.slice());
            if expected != header.header_checksum() {
                return Err(Refused::Ipv4Checksum {
                    found: header.header_checksum(),
                    expected,
                });
            }
            Some(ipv4.payload())
        }
        Some(NetSlice::Ipv6(ipv6)) => {
            let header = ipv6.header();
            // A payload length of 0 with something after the header is a
            // jumbogram, which no MTU allows.
            consistent(
                "IPv6 payload length",
                usize::from(header.payload_length()),
                offset(header.slice()) + header.slice().len(),
                "after the IPv6 header",
            )?;
            Some(ipv6.payload())
        }
        Some(NetSlice::Arp(arp)) => {
            consistent(
                "ARP packet length",
                arp.slice().len(),
                offset(arp.slice()),
                "after the Ethernet header",
            )?;
            None
        }
        None => None,
    };
    if let (Some(payload), Some(TransportSlice::Udp(udp))) = (ip_payload, &parsed.transport) {
        let claimed = usize::from(udp.length());
        if !payload.fragmented && claimed != payload.payload.len() {
            return Err(Refused::LengthMismatch {
                field: "UDP length",
                claimed,
                actual: payload.payload.len(),
                context: "of IP payload",
            });
        }
    }
    Ok(())
}

/// The Internet checksum of an IPv4 header, its checksum field taken as 0.
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .enumerate()
        .filter(|&(word, _)| word != 5)
        .map(|(_, pair)| u32::from(pair[0]) << 8 | u32::from(pair.get(1).copied().unwrap_or(0)))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests;
