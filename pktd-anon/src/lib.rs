//! Privacy policies for pktd: anonymized packets for clients that may see
//! traffic but not who exchanged it.
//!
//! Two layers, no I/O and no `unsafe`:
//!
//! - [`CryptoPan`] maps IPv4 and IPv6 addresses with Crypto-PAn (Fan, Xu,
//!   Ammar, Moon): a keyed bijection that preserves prefixes, so two
//!   addresses in the same /24 stay in one /24 and subnets can still be
//!   studied. Its inverse ([`CryptoPan::real_prefix_v4`]) maps a client's
//!   filter constant `net A/n` back to the one real prefix whose addresses
//!   land in it. A bounded cache per family (at most [`CACHE_ENTRIES`]
//!   entries each) keeps the per-packet cost low.
//! - [`Anonymizer`] rewrites one captured Ethernet frame in place: MAC
//!   addresses by [`MacMode`], IP addresses by Crypto-PAn wherever the
//!   header chain puts them, payload by [`PayloadMode`], and the IPv4,
//!   TCP, UDP, ICMP and ICMPv6 checksums updated so that a frame that
//!   verified before still verifies. [`layout`] is the parse it uses, which
//!   says where the headers end ([`Layout::header_end`]).
//!
//! ```
//! use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode};
//!
//! let mut pan = CryptoPan::new(&[7; 32]);
//! let image = pan.anonymize_v4(u32::from_be_bytes([192, 0, 2, 1]));
//! assert_eq!(pan.deanonymize_v4(image), u32::from_be_bytes([192, 0, 2, 1]));
//!
//! let mut anon = Anonymizer::new(pan, MacMode::Hash, PayloadMode::Zero);
//! let mut frame = vec![0u8; 60]; // a captured frame
//! anon.rewrite(&mut frame, 60);
//! ```
//!
//! # What each mode hides, and what it does not
//!
//! Always hidden: every IPv4 and IPv6 address the header chain holds
//! (source, destination, IPv4 route options, IPv6 routing headers and
//! Home Address options, ARP protocol addresses, the gateway of an ICMPv4
//! Redirect), mapped by Crypto-PAn; the data of IPv4 and IPv6 options this
//! crate does not understand, and of Mobility, HIP and Shim6 headers
//! (zeroed); and everything after the headers of a frame whose addresses
//! cannot be found: unknown EtherTypes, invalid IP headers, a third VLAN
//! tag, and packets tunnelled in IP-in-IP, IPv6-in-IP, GRE, EtherIP and
//! L2TP (zeroed whatever the payload mode).
//!
//! Never hidden, in any mode: the time of each packet, its length on the
//! wire and captured length, the header fields that are not addresses
//! (ports, TCP flags, sequence numbers and options, IP identification,
//! TTL, flow labels, VLAN IDs, ICMP types), and the structure of the
//! address space that Crypto-PAn preserves on purpose: which addresses
//! share a prefix, and how long it is. Prefix preservation also means an
//! observer who knows a few real addresses (their own, a public server)
//! can recognise them and learn something about their neighbours.
//! Crypto-PAn is deterministic: the same address under the same key always
//! gets the same image, across clients and sessions.
//!
//! [`MacMode::Keep`] leaves MAC addresses (and so vendors and, with
//! SLAAC's EUI-64 interface identifiers, hosts) visible;
//! [`MacMode::Zero`] removes them; [`MacMode::Hash`] keeps broadcast and
//! multicast addresses and replaces each unicast one with a keyed
//! pseudo-random local address, so stations stay distinguishable but not
//! recognisable.
//!
//! [`PayloadMode::Zero`] zeroes every byte after the headers, including
//! the packets ICMP errors quote and neighbor discovery addresses.
//! [`PayloadMode::Keep`] keeps payload bytes as they were, which leaks
//! whatever they say: application data, names in DNS and HTTP, addresses
//! inside DHCP, FTP, SIP, and in the packets of UDP tunnels (VXLAN,
//! GENEVE, GTP, WireGuard's handshake), whose inner headers are left as
//! they are. With payload kept, the packet an ICMP error quotes is
//! rewritten like the outer one, and neighbor discovery targets, prefixes,
//! DNS servers and link-layer addresses are mapped; other payload that
//! holds addresses (ICMPv4 router advertisements, DNS answers, ...) is
//! not.
//!
//! # Checksums
//!
//! With payload kept, checksums are updated incrementally (RFC 1624), so a
//! checksum that was right stays right even in a cut frame, and one that
//! was wrong stays wrong. With payload zeroed, transport checksums are
//! computed afresh for the packet with an all-zero payload, using the
//! length in the IP header, whenever the transport header was wholly
//! captured.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod checksum;
mod cryptopan;
mod icmp;
mod ip;
mod layout;
mod mac;
mod rewrite;

pub use cryptopan::{CACHE_ENTRIES, CryptoPan, KeyLengthError};
pub use layout::{
    Arp, Ext, ExtHeaders, Ip, Layout, MAX_EXT_HEADERS, MAX_VLAN_TAGS, Net, Transport,
    TransportKind, layout,
};
pub use mac::MacMode;
pub use rewrite::{Anonymizer, PayloadMode};
