//! pktd-pcap: savefiles and tcpdump-style lines, for the daemon and its
//! clients.
//!
//! [`savefile`] writes captures as pcap or pcapng files that tcpdump,
//! libpcap and Wireshark read (a [`savefile::Writer`] for either
//! [`savefile::Format`]), and reads classic pcap files back one
//! [`savefile::SavedPacket`] at a time with a [`savefile::Reader`]. The
//! daemon uses it for recordings, `pktcap` for `-w` and `--inject`.
//!
//! [`print`](mod@print) formats one Ethernet frame as the line `tcpdump -n`
//! would print for it ([`print::format_packet`]).
//!
//! Neither touches a network device or the daemon: they work on bytes, any
//! [`std::io::Write`] or [`std::io::Read`].
//!
//! ```
//! # fn main() -> std::io::Result<()> {
//! use pktd_pcap::print::format_packet;
//! use pktd_pcap::savefile::{Format, LINKTYPE_ETHERNET, Reader, Writer};
//!
//! // An ARP request for 10.0.0.2 from 10.0.0.1, padded to 60 bytes.
//! let mut frame = vec![0xff; 6];
//! frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
//! frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4, 0, 1]);
//! frame.extend_from_slice(&[2, 0, 0, 0, 0, 1, 10, 0, 0, 1]);
//! frame.extend_from_slice(&[0, 0, 0, 0, 0, 0, 10, 0, 0, 2]);
//! frame.resize(60, 0);
//!
//! let mut writer = Writer::new(Vec::new(), Format::Pcap, LINKTYPE_ETHERNET, 0)?;
//! writer.write_packet(1_700_000_000_123_456_789, 60, &frame)?;
//! let bytes = writer.into_inner()?;
//!
//! let mut reader = Reader::new(bytes.as_slice())?;
//! let packet = reader.next_packet()?.expect("one packet");
//! assert_eq!(packet.timestamp_ns, 1_700_000_000_123_456_000); // pcap keeps µs
//! assert!(reader.next_packet()?.is_none());
//!
//! let line = format_packet(packet.timestamp_ns, packet.wire_len, &packet.data);
//! // The time of day is local (HH:MM:SS.uuuuuu), the rest as tcpdump -n.
//! assert!(line.ends_with(".123456 ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 46"));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod print;
pub mod savefile;
