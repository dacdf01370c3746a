//! Packet injection: one [`Injector`] per (client connection, namespace,
//! interface) checks every frame a client asks to send against the
//! principal's [`InjectRules`] and sends the ones that pass with an
//! AF_PACKET socket bound to the interface.
//!
//! A frame is checked in this order, and the first failure is the
//! [`Refused`] reason:
//!
//! 1. **well-formed**: etherparse parses the Ethernet, VLAN, ARP, IP and
//!    transport headers it knows; the IPv4 total length, IPv6 payload length
//!    and UDP length agree with the frame (trailing Ethernet padding is
//!    allowed only in a minimum-size frame of 60 bytes, plus 4 per VLAN
//!    tag); the IPv4 header checksum is right;
//! 2. **size**: at most the interface MTU + 14, plus 4 per VLAN tag;
//! 3. **addresses** (unless [`InjectRules::spoof`]): the source MAC (and an
//!    Ethernet/IPv4 ARP packet's sender MAC) is the interface's, and the
//!    IPv4/IPv6 source (and an ARP sender IPv4 address) is one of the
//!    interface's addresses as they were when the injector was opened;
//! 4. **filter**: the principal's injection filter matches the frame (a blank
//!    expression matches every frame);
//! 5. **rate**: a packet and a byte token bucket, each refilled by elapsed
//!    time at the principal's rate up to one second's worth. Refused frames
//!    (for any reason, sending errors included) take no tokens.
//!
//! Then the frame is sent as is, without blocking; a sending error (a full
//! queue, the interface gone down) is a refusal too.

use std::{
    fmt,
    net::IpAddr,
    os::fd::{AsFd, OwnedFd},
    time::Instant,
};

use etherparse::{EtherType, LinkExtSlice, NetSlice, SlicedPacket, TransportSlice};
use pktd_filter::{FilterError, ValidProgram};

use crate::{
    netns::{Netns, NetnsError},
    policy::{InjectRules, MAX_SNAPLEN},
    sys,
};

/// Length of an Ethernet header without tags.
const ETHERNET_HEADER: usize = 14;
/// Length of one 802.1Q/802.1ad tag.
const VLAN_TAG: usize = 4;
/// Smallest Ethernet frame without FCS; shorter frames are padded to it.
const MIN_FRAME: usize = 60;
/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK`: the hardware types whose frames
/// start with an Ethernet header.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

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

/// Setting an injector up failed.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    /// The namespace could not be opened or entered.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// No such interface in the namespace.
    #[error("no interface {interface:?} in network namespace {netns}")]
    NoInterface {
        /// The interface name.
        interface: String,
        /// The namespace.
        netns: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The AF_PACKET socket could not be opened or bound.
    #[error("cannot open an AF_PACKET socket on {interface}")]
    Socket {
        /// The interface name.
        interface: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The interface's MTU, MAC or addresses could not be read.
    #[error("cannot read the {what} of {interface}")]
    InterfaceInfo {
        /// The interface name.
        interface: String,
        /// "MTU", "hardware address" or "addresses".
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The interface's frames do not start with an Ethernet header.
    #[error("{interface} is not an Ethernet interface (hardware type {hardware_type})")]
    NotEthernet {
        /// The interface name.
        interface: String,
        /// Its `ARPHRD_*` type.
        hardware_type: u16,
    },
    /// The injection filter does not compile (the policy checks it at
    /// load, so this means libpcap changed its mind).
    #[error("injection filter {expression:?}")]
    Filter {
        /// The expression.
        expression: String,
        /// The cause.
        #[source]
        source: FilterError,
    },
}

/// What the checks know about the interface.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Interface {
    mtu: u32,
    mac: [u8; 6],
    /// IPv4 and IPv6 addresses.
    addresses: Vec<IpAddr>,
}

/// A token bucket holding at most one second's worth of tokens.
#[derive(Clone, Debug)]
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = self.last.max(now);
    }
}

/// Everything about a frame that can be decided without sending it.
#[derive(Debug)]
struct Checker {
    interface: Interface,
    /// `None`: the blank expression, every frame matches.
    filter: Option<ValidProgram>,
    rules: InjectRules,
    packets: Bucket,
    bytes: Bucket,
}

impl Checker {
    fn new(interface: Interface, rules: &InjectRules, now: Instant) -> Result<Self, InjectError> {
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
            packets: Bucket::full(f64::from(rules.rate_pps), now),
            // Exact below 2^53 bytes/s, far beyond any link.
            bytes: Bucket::full(rules.rate_bps as f64, now),
        })
    }

    /// Checks 1 to 4: everything but the rate.
    fn check(&self, frame: &[u8]) -> Result<(), Refused> {
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

    /// Check 5, taking no tokens: whether `len` bytes may go now.
    fn check_rate(&mut self, len: usize, now: Instant) -> Result<(), Refused> {
        self.packets.refill(now);
        self.bytes.refill(now);
        let len_f = len as f64;
        if len_f > self.bytes.rate {
            return Err(Refused::BeyondBurst {
                len,
                bps: self.rules.rate_bps,
            });
        }
        if self.packets.tokens < 1.0 {
            return Err(Refused::PacketRate {
                pps: self.rules.rate_pps,
            });
        }
        if self.bytes.tokens < len_f {
            return Err(Refused::ByteRate {
                bps: self.rules.rate_bps,
            });
        }
        Ok(())
    }

    /// Takes the tokens of a sent frame of `len` bytes.
    fn take(&mut self, len: usize) {
        self.packets.tokens -= 1.0;
        self.bytes.tokens -= len as f64;
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
    Ok(parsed)
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

/// Sends a client's frames on one interface of one namespace, within its
/// principal's [`InjectRules`].
#[derive(Debug)]
pub struct Injector {
    socket: OwnedFd,
    checker: Checker,
    sent: u64,
    refused: u64,
}

impl Injector {
    /// Opens an AF_PACKET socket on `interface` in `netns` (on a thread
    /// inside the namespace) and reads the interface's MTU, MAC address and
    /// IPv4/IPv6 addresses there. The addresses are not re-read: an address
    /// added later counts as spoofed until the injector is reopened.
    pub fn open(netns: &Netns, interface: &str, rules: &InjectRules) -> Result<Self, InjectError> {
        let name = interface.to_owned();
        let (socket, info) = netns.run(move || open_inside(netns, &name))??;
        Ok(Self {
            socket,
            checker: Checker::new(info, rules, Instant::now())?,
            sent: 0,
            refused: 0,
        })
    }

    /// Checks one Ethernet frame (VLAN tags included, no FCS) and sends it,
    /// or says why not. Never panics on any input.
    pub fn inject(&mut self, frame: &[u8]) -> Result<(), Refused> {
        let result = self
            .checker
            .check(frame)
            .and_then(|()| self.checker.check_rate(frame.len(), Instant::now()))
            .and_then(|()| {
                sys::inject_send(self.socket.as_fd(), frame).map_err(|error| Refused::Send {
                    reason: error.to_string(),
                })
            });
        match result {
            Ok(()) => {
                self.checker.take(frame.len());
                self.sent += 1;
            }
            Err(_) => self.refused += 1,
        }
        result
    }

    /// Frames sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Frames refused (sending errors included).
    pub fn refused(&self) -> u64 {
        self.refused
    }
}

/// The part of [`Injector::open`] that runs inside the namespace.
fn open_inside(netns: &Netns, name: &str) -> Result<(OwnedFd, Interface), InjectError> {
    let index = crate::netns::interface_index(name).map_err(|source| InjectError::NoInterface {
        interface: name.to_owned(),
        netns: netns.to_string(),
        source,
    })?;
    let socket = sys::inject_socket(index).map_err(|source| InjectError::Socket {
        interface: name.to_owned(),
        source,
    })?;
    let info = |what| {
        let interface = name.to_owned();
        move |source| InjectError::InterfaceInfo {
            interface,
            what,
            source,
        }
    };
    let mtu = sys::inject_interface_mtu(socket.as_fd(), name).map_err(info("MTU"))?;
    let (hardware_type, mac) =
        sys::inject_interface_hwaddr(socket.as_fd(), name).map_err(info("hardware address"))?;
    if hardware_type != ARPHRD_ETHER && hardware_type != ARPHRD_LOOPBACK {
        return Err(InjectError::NotEthernet {
            interface: name.to_owned(),
            hardware_type,
        });
    }
    let addresses = sys::inject_interface_addresses(name).map_err(info("addresses"))?;
    Ok((
        socket,
        Interface {
            mtu,
            mac,
            addresses,
        },
    ))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use etherparse::PacketBuilder;

    use super::*;

    const OWN_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
    const OWN_IP: [u8; 4] = [10, 77, 3, 1];
    const PEER_IP: [u8; 4] = [10, 77, 3, 2];
    const OWN_IP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const PEER_IP6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn rules(filter: &str) -> InjectRules {
        InjectRules {
            filter: filter.to_owned(),
            rate_pps: 10,
            rate_bps: 1_000_000,
            spoof: false,
        }
    }

    fn checker_with(rules: &InjectRules) -> Checker {
        let interface = Interface {
            mtu: 1500,
            mac: OWN_MAC,
            addresses: vec![IpAddr::from(OWN_IP), IpAddr::from(OWN_IP6)],
        };
        Checker::new(interface, rules, Instant::now()).expect("the filter compiles")
    }

    fn checker(filter: &str) -> Checker {
        checker_with(&rules(filter))
    }

    fn icmp_echo_from(mac: [u8; 6], ip: [u8; 4], payload: usize) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(mac, PEER_MAC)
            .ipv4(ip, PEER_IP, 64)
            .icmpv4_echo_request(7, 1);
        let payload = vec![0xab; payload];
        let mut frame = Vec::new();
        builder.write(&mut frame, &payload).unwrap();
        frame
    }

    fn icmp_echo(payload: usize) -> Vec<u8> {
        icmp_echo_from(OWN_MAC, OWN_IP, payload)
    }

    fn udp4(payload: usize) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(OWN_MAC, PEER_MAC)
            .ipv4(OWN_IP, PEER_IP, 64)
            .udp(1000, 2000);
        let mut frame = Vec::new();
        builder.write(&mut frame, &vec![1; payload]).unwrap();
        frame
    }

    fn udp6(source: [u8; 16], payload: usize) -> Vec<u8> {
        let builder = PacketBuilder::ethernet2(OWN_MAC, PEER_MAC)
            .ipv6(source, PEER_IP6, 64)
            .udp(1000, 2000);
        let mut frame = Vec::new();
        builder.write(&mut frame, &vec![1; payload]).unwrap();
        frame
    }

    fn arp(sender_mac: [u8; 6], sender_ip: [u8; 4]) -> Vec<u8> {
        let mut frame = Vec::new();
        frame.extend_from_slice(&[0xff; 6]);
        frame.extend_from_slice(&OWN_MAC);
        frame.extend_from_slice(&[0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1]);
        frame.extend_from_slice(&sender_mac);
        frame.extend_from_slice(&sender_ip);
        frame.extend_from_slice(&[0; 6]);
        frame.extend_from_slice(&PEER_IP);
        frame
    }

    /// Recomputes the IPv4 header checksum of an untagged frame.
    fn fix_checksum(frame: &mut [u8]) {
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        let checksum = ipv4_checksum(&frame[14..14 + ihl]);
        frame[24..26].copy_from_slice(&checksum.to_be_bytes());
    }

    fn set_total_len(frame: &mut [u8], len: u16) {
        frame[16..18].copy_from_slice(&len.to_be_bytes());
        fix_checksum(frame);
    }

    #[test]
    fn a_well_formed_own_frame_passes() {
        let echo_only = checker("icmp[icmptype] = icmp-echo and dst net 10.0.0.0/8");
        assert_eq!(echo_only.check(&icmp_echo(56)), Ok(()));
        let blank = checker("");
        for frame in [
            icmp_echo(0),
            udp4(10),
            udp6(OWN_IP6, 10),
            arp(OWN_MAC, OWN_IP),
        ] {
            assert_eq!(blank.check(&frame), Ok(()), "{frame:02x?}");
        }
    }

    #[test]
    fn builder_checksums_agree_with_ours() {
        let frame = icmp_echo(10);
        let mut copy = frame.clone();
        fix_checksum(&mut copy);
        assert_eq!(frame, copy);
    }

    #[test]
    fn short_and_truncated_frames_are_malformed() {
        let checker = checker("");
        for len in 0..14 {
            assert_eq!(
                checker.check(&icmp_echo(8)[..len]),
                Err(Refused::TooShort { len })
            );
        }
        let frame = icmp_echo(8);
        // Every cut inside the IPv4 header or the ICMP header.
        for len in 15..14 + 20 + 8 {
            assert!(
                matches!(
                    checker.check(&frame[..len]),
                    Err(Refused::Malformed { .. } | Refused::LengthMismatch { .. })
                ),
                "cut at {len}: {:?}",
                checker.check(&frame[..len])
            );
        }
        // IHL below 5.
        let mut bad = icmp_echo(8);
        bad[14] = 0x44;
        assert!(matches!(
            checker.check(&bad),
            Err(Refused::Malformed { .. })
        ));
        // Four VLAN tags, one more than etherparse looks through.
        let mut stacked = icmp_echo(8);
        for _ in 0..4 {
            stacked.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        }
        assert_eq!(
            checker.check(&stacked),
            Err(Refused::Malformed {
                reason: "more than 3 VLAN or MACsec headers".to_owned()
            })
        );
        let mut three = icmp_echo(8);
        for _ in 0..3 {
            three.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
        }
        assert_eq!(checker.check(&three), Ok(()));
        // A truncated VLAN tag.
        let mut tagged = icmp_echo(8)[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00]);
        assert!(matches!(
            checker.check(&tagged),
            Err(Refused::Malformed { .. })
        ));
    }

    #[test]
    fn a_wrong_ipv4_checksum_is_refused() {
        let checker = checker("");
        let mut frame = icmp_echo(8);
        let right = u16::from_be_bytes([frame[24], frame[25]]);
        frame[25] ^= 0x01;
        assert_eq!(
            checker.check(&frame),
            Err(Refused::Ipv4Checksum {
                found: right ^ 1,
                expected: right
            })
        );
        assert_eq!(
            checker.check(&frame).unwrap_err().to_string(),
            format!(
                "IPv4 header checksum {:#06x} is wrong (should be {right:#06x})",
                right ^ 1
            )
        );
    }

    #[test]
    fn lengths_must_agree_with_the_frame() {
        let checker = checker("");
        // Total length larger than the frame.
        let mut frame = icmp_echo(18);
        set_total_len(&mut frame, 60);
        assert!(matches!(
            checker.check(&frame),
            Err(Refused::Malformed { .. })
        ));
        // Total length smaller than the frame, which is not padding.
        let mut frame = icmp_echo(18);
        frame.extend_from_slice(&[0; 4]);
        let refused = checker.check(&frame).unwrap_err();
        assert_eq!(
            refused,
            Refused::LengthMismatch {
                field: "IPv4 total length",
                claimed: 46,
                actual: 50,
                context: "after the Ethernet header"
            }
        );
        assert_eq!(
            refused.to_string(),
            "IPv4 total length 46 disagrees with the frame (50 bytes after the Ethernet header)"
        );
        // Padding to exactly 60 bytes is fine, beyond is not.
        let mut padded = icmp_echo(4);
        assert_eq!(padded.len(), 46);
        padded.resize(60, 0);
        assert_eq!(checker.check(&padded), Ok(()));
        padded.push(0);
        assert!(matches!(
            checker.check(&padded),
            Err(Refused::LengthMismatch { .. })
        ));
        let mut arp_padded = arp(OWN_MAC, OWN_IP);
        arp_padded.resize(60, 0);
        assert_eq!(checker.check(&arp_padded), Ok(()));
        arp_padded.push(0);
        assert!(matches!(
            checker.check(&arp_padded),
            Err(Refused::LengthMismatch { .. })
        ));
        // UDP length disagreeing with the IP payload.
        let mut frame = udp4(20);
        let udp_len = u16::from_be_bytes([frame[38], frame[39]]);
        frame[38..40].copy_from_slice(&(udp_len - 2).to_be_bytes());
        assert_eq!(
            checker.check(&frame),
            Err(Refused::LengthMismatch {
                field: "UDP length",
                claimed: 26,
                actual: 28,
                context: "of IP payload"
            })
        );
        frame[38..40].copy_from_slice(&0u16.to_be_bytes());
        assert!(matches!(
            checker.check(&frame),
            Err(Refused::LengthMismatch { .. })
        ));
        // IPv6 payload length, both ways.
        let mut frame = udp6(OWN_IP6, 20);
        frame.push(0);
        assert_eq!(
            checker.check(&frame).unwrap_err().to_string(),
            "IPv6 payload length 28 disagrees with the frame (29 bytes after the IPv6 header)"
        );
        let mut frame = udp6(OWN_IP6, 20);
        frame[18..20].copy_from_slice(&0u16.to_be_bytes());
        assert!(checker.check(&frame).is_err(), "a jumbogram");
    }

    #[test]
    fn frames_over_the_mtu_are_refused() {
        let checker = checker("");
        // 14 + 20 + 8 + 1472 = 1514: exactly the MTU.
        assert_eq!(checker.check(&icmp_echo(1472)), Ok(()));
        let refused = checker.check(&icmp_echo(1473)).unwrap_err();
        assert_eq!(
            refused,
            Refused::TooLarge {
                len: 1515,
                mtu: 1500,
                headers: 14
            }
        );
        assert_eq!(
            refused.to_string(),
            "frame of 1515 bytes exceeds the interface MTU (1500 + 14)"
        );
        // A VLAN tag adds 4 bytes.
        let tag = |frame: Vec<u8>| {
            let mut tagged = frame[..12].to_vec();
            tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
            tagged.extend_from_slice(&frame[12..]);
            tagged
        };
        assert_eq!(checker.check(&tag(icmp_echo(1472))), Ok(()));
        assert!(matches!(
            checker.check(&tag(icmp_echo(1473))),
            Err(Refused::TooLarge { headers: 18, .. })
        ));
    }

    #[test]
    fn spoofed_addresses_are_refused_unless_allowed() {
        let strict = checker("");
        let other_mac = [0x02, 0, 0, 0, 0, 0x99];
        let other_ip = [10, 77, 3, 99];
        let refused = strict
            .check(&icmp_echo_from(other_mac, OWN_IP, 8))
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "source MAC 02:00:00:00:00:99 is not the interface's (spoofing not allowed)"
        );
        assert_eq!(
            strict.check(&icmp_echo_from(OWN_MAC, other_ip, 8)),
            Err(Refused::SpoofedIp {
                field: "source IPv4 address",
                address: IpAddr::from(other_ip)
            })
        );
        assert!(matches!(
            strict.check(&udp6(PEER_IP6, 8)),
            Err(Refused::SpoofedIp { .. })
        ));
        assert!(matches!(
            strict.check(&arp(other_mac, OWN_IP)),
            Err(Refused::SpoofedMac {
                field: "ARP sender MAC",
                ..
            })
        ));
        assert!(matches!(
            strict.check(&arp(OWN_MAC, other_ip)),
            Err(Refused::SpoofedIp {
                field: "ARP sender address",
                ..
            })
        ));
        let lax = checker_with(&InjectRules {
            spoof: true,
            ..rules("")
        });
        for frame in [
            icmp_echo_from(other_mac, OWN_IP, 8),
            icmp_echo_from(OWN_MAC, other_ip, 8),
            udp6(PEER_IP6, 8),
            arp(other_mac, other_ip),
        ] {
            assert_eq!(lax.check(&frame), Ok(()));
        }
    }

    #[test]
    fn the_filter_decides_last() {
        let checker = checker("icmp[icmptype] = icmp-echo and dst net 10.0.0.0/8");
        assert_eq!(checker.check(&udp4(8)), Err(Refused::Filtered));
        assert_eq!(
            Refused::Filtered.to_string(),
            "not matched by the injection filter"
        );
        // A malformed frame is refused as malformed even if the filter
        // would refuse it too.
        let mut frame = udp4(8);
        frame[25] ^= 1;
        assert!(matches!(
            checker.check(&frame),
            Err(Refused::Ipv4Checksum { .. })
        ));
    }

    #[test]
    fn token_buckets_refill_with_time_and_cap_at_one_second() {
        let start = Instant::now();
        let mut checker = checker_with(&InjectRules {
            rate_pps: 5,
            rate_bps: 1000,
            ..rules("")
        });
        checker.packets.last = start;
        checker.bytes.last = start;
        for _ in 0..5 {
            assert_eq!(checker.check_rate(100, start), Ok(()));
            checker.take(100);
        }
        let refused = checker.check_rate(100, start).unwrap_err();
        assert_eq!(refused, Refused::PacketRate { pps: 5 });
        assert_eq!(refused.to_string(), "rate limit: 5 packets/s");
        // Refused attempts take nothing: 200 ms later exactly one more.
        for _ in 0..10 {
            assert!(checker.check_rate(100, start).is_err());
        }
        let later = start + Duration::from_millis(200);
        assert_eq!(checker.check_rate(100, later), Ok(()));
        checker.take(100);
        assert!(checker.check_rate(100, later).is_err());
        // Bytes: 600 used of 1000, 400 + 200 refilled in 200 ms... but the
        // burst is capped at one second's worth after a long pause.
        let much_later = start + Duration::from_secs(60);
        checker.check_rate(0, much_later).unwrap();
        assert!((checker.packets.tokens - 5.0).abs() < 1e-9);
        assert!((checker.bytes.tokens - 1000.0).abs() < 1e-9);
        assert_eq!(
            checker.check_rate(1001, much_later),
            Err(Refused::BeyondBurst {
                len: 1001,
                bps: 1000
            })
        );
        assert_eq!(checker.check_rate(1000, much_later), Ok(()));
        checker.take(1000);
        assert_eq!(
            checker.check_rate(1, much_later),
            Err(Refused::ByteRate { bps: 1000 })
        );
        // A clock that goes backwards does not add tokens.
        assert!(checker.check_rate(1, start).is_err());
    }

    #[test]
    fn no_input_panics() {
        let checker = checker("udp or icmp");
        let mut seed = 0x1234_5678_9abc_def0_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let bases = [
            icmp_echo(30),
            udp4(30),
            udp6(OWN_IP6, 30),
            arp(OWN_MAC, OWN_IP),
        ];
        for round in 0..20_000 {
            let mut frame = bases[round % bases.len()].clone();
            let flips = next() % 4 + 1;
            for _ in 0..flips {
                let at = (next() as usize) % frame.len();
                frame[at] = next() as u8;
            }
            let len = (next() as usize) % (frame.len() + 1);
            frame.truncate(len);
            let _ = checker.check(&frame);
        }
    }

    #[test]
    fn mac_prints_like_ip_link() {
        assert_eq!(
            Mac([0x02, 0xab, 0, 0x10, 0xff, 1]).to_string(),
            "02:ab:00:10:ff:01"
        );
    }
}
