//! One sender: a frame checked, then sent through an AF_PACKET socket on
//! the interface.

use std::{
    os::fd::{AsFd, OwnedFd},
    time::Instant,
};

use super::{
    checks::{Checker, Interface, Refused},
    error::InjectError,
    rate::Rate,
};
use crate::{netns::NetnsHandle, policy::InjectRules, sys};

/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK`: the hardware types whose frames
/// start with an Ethernet header.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

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
    pub fn open(
        netns: &NetnsHandle,
        interface: &str,
        rules: &InjectRules,
    ) -> Result<Self, InjectError> {
        let name = interface.to_owned();
        let (socket, info) = netns.run(move || open_inside(netns, &name))??;
        Ok(Self {
            socket,
            checker: Checker::new(info, rules)?,
            sent: 0,
            refused: 0,
        })
    }

    /// Checks one Ethernet frame (VLAN tags included, no FCS) and sends it
    /// within `rate`, or says why not. Never panics on any input.
    pub fn inject(&mut self, frame: &[u8], rate: &mut Rate) -> Result<(), Refused> {
        let result = self
            .checker
            .check(frame)
            .and_then(|()| rate.check(frame.len(), Instant::now()))
            .and_then(|()| {
                sys::packet_send(self.socket.as_fd(), frame).map_err(|error| Refused::Send {
                    reason: error.to_string(),
                })
            });
        match result {
            Ok(()) => {
                rate.take(frame.len());
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
fn open_inside(netns: &NetnsHandle, name: &str) -> Result<(OwnedFd, Interface), InjectError> {
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
