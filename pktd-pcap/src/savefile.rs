//! Writing captures as savefiles that tcpdump, libpcap and Wireshark read,
//! and reading classic pcap files back.
//!
//! Two formats are written:
//!
//! - [`Format::Pcap`], the classic libpcap format (the default): magic
//!   `0xa1b2c3d4` (microsecond timestamps), version 2.4, in the host's byte
//!   order, which is what libpcap itself writes, and every reader handles
//!   both byte orders.
//! - [`Format::PcapNg`]: one Section Header Block, one Interface Description
//!   Block with `if_tsresol = 9` (nanosecond timestamps) and one Enhanced
//!   Packet Block per packet, also in the host's byte order.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use pktd_pcap::savefile::{Format, Writer, LINKTYPE_ETHERNET};
//! let file = std::io::BufWriter::new(std::fs::File::create("out.pcap")?);
//! let mut writer = Writer::new(file, Format::Pcap, LINKTYPE_ETHERNET, 262_144)?;
//! writer.write_packet(1_700_000_000_123_456_789, 60, &[0u8; 60])?;
//! writer.into_inner()?;
//! # Ok(()) }
//! ```

use std::io::{self, Read, Write};

/// `LINKTYPE_ETHERNET`: frames start with a 14-byte Ethernet II header.
pub const LINKTYPE_ETHERNET: u32 = 1;

/// The file format a [`Writer`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Classic libpcap format with microsecond timestamps.
    #[default]
    Pcap,
    /// pcapng with nanosecond timestamps.
    PcapNg,
}

/// Classic pcap magic for microsecond timestamps.
const PCAP_MAGIC_USEC: u32 = 0xa1b2_c3d4;
/// pcapng block types.
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_IDB: u32 = 0x0000_0001;
const PCAPNG_EPB: u32 = 0x0000_0006;
/// pcapng byte-order magic; readers use it to detect the section's endianness.
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;
/// pcapng option codes.
const OPT_ENDOFOPT: u16 = 0;
const IF_TSRESOL: u16 = 9;

/// Writes packets to a pcap or pcapng savefile.
///
/// Every packet goes to the underlying writer with a single `write_all` of
/// one buffer holding its header and data, so when `W` is a `BufWriter` a
/// packet is either wholly in its buffer or not there at all; a reader of a
/// file that is still being written never sees half a header followed by
/// another packet's bytes.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: W,
    format: Format,
    snaplen: u32,
    /// Reused for every packet so that writing allocates only for the
    /// largest packet seen.
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the file header (for pcapng, the section and interface blocks)
    /// to `out` at once and returns a writer for the packets.
    ///
    /// `link_type` is a `LINKTYPE_*` value (for example
    /// [`LINKTYPE_ETHERNET`]); `snaplen` is the most bytes kept of each
    /// packet. A `snaplen` of 0 means "no limit": packets are never cut, and
    /// the pcap header says 262144, the largest snaplen libpcap uses, since
    /// some readers reject 0.
    pub fn new(mut out: W, format: Format, link_type: u32, snaplen: u32) -> io::Result<Self> {
        let header_snaplen = if snaplen == 0 { 262_144 } else { snaplen };
        let mut buf = Vec::with_capacity(64);
        match format {
            Format::Pcap => {
                buf.extend_from_slice(&PCAP_MAGIC_USEC.to_ne_bytes());
                buf.extend_from_slice(&2u16.to_ne_bytes()); // version major
                buf.extend_from_slice(&4u16.to_ne_bytes()); // version minor
                buf.extend_from_slice(&0i32.to_ne_bytes()); // thiszone: timestamps are UTC
                buf.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
                buf.extend_from_slice(&header_snaplen.to_ne_bytes());
                buf.extend_from_slice(&link_type.to_ne_bytes());
            }
            Format::PcapNg => {
                let link_type = u16::try_from(link_type).map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("link type {link_type} does not fit pcapng's 16 bits"),
                    )
                })?;
                // Section Header Block, no options: 28 bytes.
                buf.extend_from_slice(&PCAPNG_SHB.to_ne_bytes());
                buf.extend_from_slice(&28u32.to_ne_bytes());
                buf.extend_from_slice(&PCAPNG_BOM.to_ne_bytes());
                buf.extend_from_slice(&1u16.to_ne_bytes()); // major
                buf.extend_from_slice(&0u16.to_ne_bytes()); // minor
                // Section length unknown: we write a stream and never seek back.
                buf.extend_from_slice(&u64::MAX.to_ne_bytes());
                buf.extend_from_slice(&28u32.to_ne_bytes());
                // Interface Description Block with if_tsresol = 9 (10^-9 s)
                // and opt_endofopt: 32 bytes.
                buf.extend_from_slice(&PCAPNG_IDB.to_ne_bytes());
                buf.extend_from_slice(&32u32.to_ne_bytes());
                buf.extend_from_slice(&link_type.to_ne_bytes());
                buf.extend_from_slice(&0u16.to_ne_bytes()); // reserved
                buf.extend_from_slice(&snaplen.to_ne_bytes()); // pcapng: 0 = no limit
                buf.extend_from_slice(&IF_TSRESOL.to_ne_bytes());
                buf.extend_from_slice(&1u16.to_ne_bytes());
                buf.extend_from_slice(&[9, 0, 0, 0]); // value + padding to 32 bits
                buf.extend_from_slice(&OPT_ENDOFOPT.to_ne_bytes());
                buf.extend_from_slice(&0u16.to_ne_bytes());
                buf.extend_from_slice(&32u32.to_ne_bytes());
            }
        }
        out.write_all(&buf)?;
        buf.clear();
        Ok(Writer {
            out,
            format,
            snaplen,
            buf,
        })
    }

    /// Writes one packet (its header and the bytes kept), as
    /// [`append_record`] lays it out, with one `write_all`.
    pub fn write_packet(
        &mut self,
        timestamp_ns: u64,
        wire_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        self.buf.clear();
        append_record(
            self.format,
            self.snaplen,
            timestamp_ns,
            wire_len,
            data,
            &mut self.buf,
        )?;
        self.out.write_all(&self.buf)
    }

    /// Flushes the underlying writer, so that readers of the file see every
    /// packet written so far.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// The underlying writer. What is written to it directly goes into
    /// the savefile as it is.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Appends one packet's record to `out`: its header and the bytes kept,
/// in `format` (for pcapng, an Enhanced Packet Block of interface 0), for a
/// savefile whose header [`Writer::new`] wrote with `snaplen`.
///
/// `timestamp_ns` is the capture time in nanoseconds since the Unix
/// epoch (pcap keeps microseconds and drops the rest); `wire_len` is the
/// packet's length on the wire; `data` is what was captured. `data` is
/// cut to `snaplen` (0: no limit), and a `wire_len` smaller than the bytes
/// kept is raised to match, since readers treat a captured length above
/// the original length as a corrupt file.
///
/// Fails with `InvalidInput`, leaving `out` as it was, for a pcap
/// timestamp past 2106, which the format's 32-bit seconds cannot hold, or
/// a packet longer than 4 GiB.
pub fn append_record(
    format: Format,
    snaplen: u32,
    timestamp_ns: u64,
    wire_len: u32,
    data: &[u8],
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let mut caplen = u32::try_from(data.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "packet longer than 4 GiB"))?;
    if snaplen != 0 {
        caplen = caplen.min(snaplen);
    }
    let data = &data[..caplen as usize];
    let wire_len = wire_len.max(caplen);
    match format {
        Format::Pcap => {
            let secs = u32::try_from(timestamp_ns / 1_000_000_000).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "timestamp past 2106 does not fit pcap's 32-bit seconds",
                )
            })?;
            let usecs = ((timestamp_ns % 1_000_000_000) / 1_000) as u32;
            out.reserve(16 + data.len());
            out.extend_from_slice(&secs.to_ne_bytes());
            out.extend_from_slice(&usecs.to_ne_bytes());
            out.extend_from_slice(&caplen.to_ne_bytes());
            out.extend_from_slice(&wire_len.to_ne_bytes());
            out.extend_from_slice(data);
        }
        Format::PcapNg => {
            let padded = data.len().div_ceil(4) * 4;
            let start = out.len();
            // 28 bytes of fixed fields, the padded data, and the trailing length.
            let total = u32::try_from(32 + padded).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "packet too long for pcapng")
            })?;
            out.reserve(total as usize);
            out.extend_from_slice(&PCAPNG_EPB.to_ne_bytes());
            out.extend_from_slice(&total.to_ne_bytes());
            out.extend_from_slice(&0u32.to_ne_bytes()); // interface id
            out.extend_from_slice(&((timestamp_ns >> 32) as u32).to_ne_bytes());
            out.extend_from_slice(&(timestamp_ns as u32).to_ne_bytes());
            out.extend_from_slice(&caplen.to_ne_bytes());
            out.extend_from_slice(&wire_len.to_ne_bytes());
            out.extend_from_slice(data);
            out.resize(start + 28 + padded, 0);
            out.extend_from_slice(&total.to_ne_bytes());
        }
    }
    Ok(())
}

/// Reads classic pcap savefiles (either byte order, microsecond or
/// nanosecond timestamps), as written by tcpdump, libpcap and [`Writer`].
pub struct Reader<R: Read> {
    input: R,
    big_endian: bool,
    nanoseconds: bool,
    link_type: u32,
}

/// One packet read back from a savefile.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedPacket {
    /// Capture time, nanoseconds since the epoch.
    pub timestamp_ns: u64,
    /// Length on the wire.
    pub wire_len: u32,
    /// The captured bytes.
    pub data: Vec<u8>,
}

/// Largest packet a reader accepts: a corrupt length must not make it
/// allocate gigabytes.
const MAX_PACKET: u32 = 1 << 20;

impl<R: Read> Reader<R> {
    /// Reads the file header.
    pub fn new(mut input: R) -> io::Result<Self> {
        let mut header = [0u8; 24];
        input.read_exact(&mut header)?;
        let magic = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
        let (big_endian, nanoseconds) = match magic {
            0xa1b2_c3d4 => (false, false),
            0xa1b2_3c4d => (false, true),
            0xd4c3_b2a1 => (true, false),
            0x4d3c_b2a1 => (true, true),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "not a classic pcap file (pcapng is not read here)",
                ));
            }
        };
        let mut reader = Self {
            input,
            big_endian,
            nanoseconds,
            link_type: 0,
        };
        reader.link_type = reader.word(&header[20..24]);
        Ok(reader)
    }

    /// The file's link type (1: Ethernet).
    pub fn link_type(&self) -> u32 {
        self.link_type
    }

    fn word(&self, bytes: &[u8]) -> u32 {
        let bytes: [u8; 4] = bytes.try_into().expect("4 bytes");
        if self.big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        }
    }

    /// The next packet; `None` at the end of the file.
    pub fn next_packet(&mut self) -> io::Result<Option<SavedPacket>> {
        let mut header = [0u8; 16];
        match self.input.read_exact(&mut header) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(err) => return Err(err),
        }
        let seconds = u64::from(self.word(&header[0..4]));
        let fraction = u64::from(self.word(&header[4..8]));
        let cap_len = self.word(&header[8..12]);
        let wire_len = self.word(&header[12..16]);
        if cap_len > MAX_PACKET {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a packet claims {cap_len} bytes"),
            ));
        }
        let mut data = vec![0u8; cap_len as usize];
        self.input.read_exact(&mut data)?;
        let fraction_ns = if self.nanoseconds {
            fraction
        } else {
            fraction * 1000
        };
        Ok(Some(SavedPacket {
            timestamp_ns: seconds * 1_000_000_000 + fraction_ns,
            wire_len,
            data,
        }))
    }
}

#[cfg(test)]
mod reader_tests {
    use super::*;

    #[test]
    fn reads_back_what_the_writer_wrote() {
        let mut writer = Writer::new(Vec::new(), Format::Pcap, LINKTYPE_ETHERNET, 64).unwrap();
        writer
            .write_packet(1_500_000_123_000, 100, &[7u8; 100])
            .unwrap();
        writer
            .write_packet(1_500_000_456_000, 20, &[8u8; 20])
            .unwrap();
        let bytes = writer.into_inner().unwrap();
        let mut reader = Reader::new(bytes.as_slice()).unwrap();
        assert_eq!(reader.link_type(), LINKTYPE_ETHERNET);
        let first = reader.next_packet().unwrap().unwrap();
        assert_eq!(
            (first.timestamp_ns, first.wire_len, first.data.len()),
            (1_500_000_123_000, 100, 64)
        );
        let second = reader.next_packet().unwrap().unwrap();
        assert_eq!(second.data, vec![8u8; 20]);
        assert_eq!(reader.next_packet().unwrap(), None);
        assert!(Reader::new(&b"garbage that is not a pcap header"[..]).is_err());
    }

    #[test]
    fn records_appended_after_other_bytes_are_those_the_writer_writes() {
        for format in [Format::Pcap, Format::PcapNg] {
            for len in [0usize, 1, 3, 4, 61, 1500] {
                let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                let mut writer = Writer::new(Vec::new(), format, LINKTYPE_ETHERNET, 1000).unwrap();
                let header = writer.get_ref().len();
                writer
                    .write_packet(1_700_000_000_123_456_789, 2000, &data)
                    .unwrap();
                let written = writer.into_inner().unwrap()[header..].to_vec();

                let mut out = vec![0xee; 5];
                append_record(
                    format,
                    1000,
                    1_700_000_000_123_456_789,
                    2000,
                    &data,
                    &mut out,
                )
                .unwrap();
                assert_eq!(&out[..5], &[0xee; 5]);
                assert_eq!(out[5..], written, "{format:?}, {len} bytes");
            }
        }
        let mut out = vec![1, 2, 3];
        assert!(append_record(Format::Pcap, 0, u64::MAX, 10, &[0; 10], &mut out).is_err());
        assert_eq!(out, [1, 2, 3], "a refused record leaves nothing");
    }
}
