//! Packet injection: one [`FrameSender`] per (uid, namespace,
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

//!
//! | file | concern |
//! |---|---|
//! | `checks.rs` | checks 1 to 4: form, size, addresses, filter |
//! | `rate.rs` | check 5: token buckets |
//! | `cache.rs` | one sender per (uid, namespace, interface), across connections |

mod cache;
mod checks;
mod rate;

use std::{
    os::fd::{AsFd, OwnedFd},
    time::Instant,
};

use pktd_filter::FilterError;

use self::checks::{Checker, Interface};
pub use self::{
    cache::Senders,
    checks::{Mac, Refused},
};
use crate::{
    netns::{Netns, NetnsError},
    policy::InjectRules,
    sys,
};

/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK`: the hardware types whose frames
/// start with an Ethernet header.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

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

/// Sends a client's frames on one interface of one namespace, within its
/// principal's [`InjectRules`].
#[derive(Debug)]
pub struct FrameSender {
    socket: OwnedFd,
    checker: Checker,
    sent: u64,
    refused: u64,
}

impl FrameSender {
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
                sys::packet_send(self.socket.as_fd(), frame).map_err(|error| Refused::Send {
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

/// The part of [`FrameSender::open`] that runs inside the namespace.
fn open_inside(netns: &Netns, name: &str) -> Result<(OwnedFd, Interface), InjectError> {
    let index = crate::netns::interface_index(name).map_err(|source| InjectError::NoInterface {
        interface: name.to_owned(),
        netns: netns.to_string(),
        source,
    })?;
    let socket = sys::packet_socket(index).map_err(|source| InjectError::Socket {
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
    let mtu = sys::interface_mtu(socket.as_fd(), name).map_err(info("MTU"))?;
    let (hardware_type, mac) =
        sys::interface_hwaddr(socket.as_fd(), name).map_err(info("hardware address"))?;
    if hardware_type != ARPHRD_ETHER && hardware_type != ARPHRD_LOOPBACK {
        return Err(InjectError::NotEthernet {
            interface: name.to_owned(),
            hardware_type,
        });
    }
    let addresses = sys::interface_addresses(name).map_err(info("addresses"))?;
    Ok((
        socket,
        Interface {
            mtu,
            mac,
            addresses,
        },
    ))
}
