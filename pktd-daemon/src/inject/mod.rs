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
//! | `sender.rs` | one sender: checks, then AF_PACKET |
//! | `error.rs` | why a sender could not be set up |
//! | `cache.rs` | one sender per (uid, namespace, interface), across connections |

mod cache;
mod checks;
mod error;
mod rate;
mod sender;

pub use self::{
    cache::Senders,
    checks::{Mac, Refused},
    error::InjectError,
    rate::Rate,
    sender::FrameSender,
};
