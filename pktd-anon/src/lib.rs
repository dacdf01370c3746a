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
//!   TCP, UDP, ICMP and ICMPv6 checksums computed afresh for the rewritten
//!   packet, or zeroed (see [Checksums](#checksums)). [`layout`] is the
//!   parse it uses, which says where the headers end
//!   ([`Layout::header_end`]).
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
//! cannot be found or whose bytes depend on them (zeroed whatever the
//! payload mode): unknown EtherTypes, invalid IP headers, a third VLAN
//! tag, and every IP protocol that does not [`passes_through`]: packets
//! tunnelled in IP-in-IP, IPv6-in-IP, GRE, EtherIP, L2TP and the like;
//! protocols whose checksum covers a pseudo-header with the real
//! addresses, which this crate does not update (DCCP, UDP-Lite, OSPFv3,
//! PIM, VRRPv3), so that a client could solve for their sum; IPv4 AH;
//! and an IPv6 extension header the walk stopped at (one past
//! [`MAX_EXT_HEADERS`], or of a kind it cannot walk), with whatever
//! follows it. Later fragments of those are hidden too, and so are later
//! fragments of ICMP (which may hold the rest of a quoted packet) and TCP
//! fragments that start early enough to hold its checksum (RFC 1858). In
//! a packet an ICMP error quotes, the same protocols are hidden after the
//! quoted headers, and so is a quoted ICMP message that holds addresses.
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
//! A checksum in a rewritten frame is exactly right for the bytes the
//! client sees, as if the whole rewritten packet had been captured, or it
//! is zero (for UDP, zero reads as "no checksum", and a UDP checksum that
//! was zero stays zero). It never depends on bytes the client does not
//! see as they are: real addresses, hidden bytes, or what the checksum
//! field held.
//!
//! That last point is why checksums are computed afresh and never updated
//! incrementally (RFC 1624). A captured field need not be the checksum of
//! the real packet: on the sending host, with TX checksum offload
//! (`CHECKSUM_PARTIAL`, the usual case for outgoing traffic captured at
//! egress), it holds the sum of the real pseudo-header for the NIC to
//! finish, and it may be corrupted. An update keeps whatever the field
//! held, so from an updated partial sum a client could recover the sum of
//! the real addresses. Verifying the field first and recomputing only when
//! it fails would give the same checksums as always recomputing, at the
//! same cost (one pass over the packet), so the field is not read at all
//! (but for UDP's zero): a wrong checksum becomes right.
//!
//! The IPv4 header checksum is computed over the rewritten header when
//! the header was wholly captured, and zeroed when it was cut inside its
//! options. The TCP, UDP, ICMP and ICMPv6 checksums depend on the payload
//! mode. With payload kept, each is computed over the rewritten segment
//! (and pseudo-header) when the whole segment, to the length in the IP
//! header, was captured; a segment cut short (by a snaplen, or a
//! header-only view) has its checksum zeroed, since what was not captured
//! cannot be summed and the field as it came cannot be trusted. The same
//! holds inside the packet an ICMP error quotes: its IPv4 header checksum
//! is computed if the quoted header was captured, its transport checksum
//! if the whole quoted packet is in the message (errors usually quote
//! only its start, so that checksum is usually zeroed); a quoted ICMPv4
//! checksum, which covers nothing rewritten and no address, is left as
//! it is. With payload zeroed, transport checksums are computed for the
//! packet with an all-zero payload, using the length in the IP header,
//! whenever the transport header was wholly captured, and zeroed
//! otherwise. A checksum field captured by half is zeroed in either mode.

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
    TransportKind, layout, passes_through,
};
pub use mac::MacMode;
pub use rewrite::{Anonymizer, PayloadMode};
