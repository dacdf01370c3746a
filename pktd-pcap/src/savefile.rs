//! Writing captures as savefiles that tcpdump, libpcap and Wireshark read,
//! and reading classic pcap files back.
//!
//! Two formats are written:
//!
//! - [`Format::Pcap`], the classic libpcap format (the default): magic
//!   `0xa1b2c3d4` (microsecond timestamps), version 2.4, in the host's byte
//!   order, which is what libpcap itself writes, and every reader handles
//!   both byte orders.
//! - [`Format::PcapNg`]: one Section Header Block (`shb_os`,
//!   `shb_userappl`), one Interface Description Block (`if_name`,
//!   `if_description`, `if_tsresol = 9` for nanosecond timestamps,
//!   `if_filter`), one Enhanced Packet Block per packet (`epb_flags` with
//!   its direction when known) and, at the end, an Interface Statistics
//!   Block, also in the host's byte order. The header and statistics
//!   blocks are the pcap-file crate's; the packet blocks, one per packet on
//!   the daemon's hot path, are laid out here in place.
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

use byteorder::NativeEndian;
use pcap_file::{
    DataLink, Endianness,
    pcapng::blocks::{
        PcapNgBlock as _,
        interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
        interface_statistics::{InterfaceStatisticsBlock, InterfaceStatisticsOption},
        section_header::{SectionHeaderBlock, SectionHeaderOption},
    },
};

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
/// pcapng Enhanced Packet Block type.
const PCAPNG_EPB: u32 = 0x0000_0006;
/// pcapng option codes.
const OPT_ENDOFOPT: u16 = 0;
const EPB_FLAGS: u16 = 2;
/// `if_tsresol` of every interface written: nanoseconds.
const TSRESOL_NS: u8 = 9;
/// `if_filter`'s first byte: the filter is a libpcap expression.
const FILTER_LIBPCAP: u8 = 0;

/// What a pcapng savefile says of its capture besides the packets (a pcap
/// file has no room for it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureInfo {
    /// The application that wrote it (`shb_userappl`); empty: "pktd".
    pub application: String,
    /// The interface's name (`if_name`); empty: none.
    pub interface: String,
    /// The interface described (`if_description`): pktd says which network
    /// namespace it is in. Empty: none.
    pub description: String,
    /// The filter expression (`if_filter`); empty: none.
    pub filter: String,
}

/// Which way a packet travelled, as a pcapng Enhanced Packet Block's
/// `epb_flags` says it (a pcap file cannot).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PacketDirection {
    /// Not said.
    #[default]
    Unknown,
    /// Received by the interface.
    Inbound,
    /// Sent by the interface.
    Outbound,
}

/// One packet to write.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture time in nanoseconds since the Unix epoch (pcap keeps
    /// microseconds and drops the rest).
    pub timestamp_ns: u64,
    /// Its length on the wire.
    pub wire_len: u32,
    /// Which way it travelled.
    pub direction: PacketDirection,
    /// What was captured.
    pub data: &'a [u8],
}

/// A capture's counters at the end of a pcapng file (an Interface
/// Statistics Block).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// When, in nanoseconds since the Unix epoch.
    pub timestamp_ns: u64,
    /// Packets the filter ran on (`isb_ifrecv`).
    pub received: u64,
    /// Packets lost because the buffer was full (`isb_ifdrop`).
    pub dropped: u64,
    /// Packets the filter accepted (`isb_filteraccept`).
    pub matched: u64,
    /// Packets delivered (`isb_usrdeliv`).
    pub delivered: u64,
}

/// A savefile's header: pcap's 24 bytes, or for pcapng a Section Header
/// Block (`shb_os`, `shb_userappl`) and one Interface Description Block
/// (`if_name`, `if_description`, `if_tsresol` = nanoseconds, `if_filter`),
/// in the host's byte order.
///
/// `link_type` is a `LINKTYPE_*` value (for example [`LINKTYPE_ETHERNET`]);
/// `snaplen` is the most bytes kept of each packet, 0 for no limit (the
/// pcap header then says 262144, the largest snaplen libpcap uses, since
/// some readers reject 0).
pub fn header(
    format: Format,
    link_type: u32,
    snaplen: u32,
    info: &CaptureInfo,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    match format {
        Format::Pcap => {
            let header_snaplen = if snaplen == 0 { 262_144 } else { snaplen };
            out.extend_from_slice(&PCAP_MAGIC_USEC.to_ne_bytes());
            out.extend_from_slice(&2u16.to_ne_bytes()); // version major
            out.extend_from_slice(&4u16.to_ne_bytes()); // version minor
            out.extend_from_slice(&0i32.to_ne_bytes()); // thiszone: timestamps are UTC
            out.extend_from_slice(&0u32.to_ne_bytes()); // sigfigs
            out.extend_from_slice(&header_snaplen.to_ne_bytes());
            out.extend_from_slice(&link_type.to_ne_bytes());
        }
        Format::PcapNg => {
            // pcapng option lengths are 16 bits.
            for (what, text) in [
                ("application", &info.application),
                ("interface", &info.interface),
                ("description", &info.description),
                ("filter", &info.filter),
            ] {
                if text.len() >= usize::from(u16::MAX) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("the {what} is too long for a pcapng option"),
                    ));
                }
            }
            if link_type > u32::from(u16::MAX) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("link type {link_type} does not fit pcapng's 16 bits"),
                ));
            }
            let application = if info.application.is_empty() {
                "pktd"
            } else {
                &info.application
            };
            let section = SectionHeaderBlock {
                endianness: Endianness::native(),
                major_version: 1,
                minor_version: 0,
                // Unknown: the file is a stream, never sought back into.
                section_length: -1,
                options: vec![
                    SectionHeaderOption::OS(os().into()),
                    SectionHeaderOption::UserApplication(application.into()),
                ],
            };
            let mut options = Vec::new();
            if !info.interface.is_empty() {
                options.push(InterfaceDescriptionOption::IfName(
                    info.interface.as_str().into(),
                ));
            }
            if !info.description.is_empty() {
                options.push(InterfaceDescriptionOption::IfDescription(
                    info.description.as_str().into(),
                ));
            }
            options.push(InterfaceDescriptionOption::IfTsResol(TSRESOL_NS));
            if !info.filter.is_empty() {
                let mut filter = vec![FILTER_LIBPCAP];
                filter.extend_from_slice(info.filter.as_bytes());
                options.push(InterfaceDescriptionOption::IfFilter(filter.into()));
            }
            let interface = InterfaceDescriptionBlock {
                linktype: DataLink::from(link_type),
                // pcapng: 0 = no limit.
                snaplen,
                options,
            };
            section.into_block().write_to::<NativeEndian, _>(&mut out)?;
            interface
                .into_block()
                .write_to::<NativeEndian, _>(&mut out)?;
        }
    }
    Ok(out)
}

/// The operating system, as `shb_os` names it: "Linux 6.18.0".
fn os() -> String {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/sys/kernel/{name}"))
            .map(|text| text.trim().to_owned())
            .unwrap_or_default()
    };
    let (kind, release) = (read("ostype"), read("osrelease"));
    match (kind.is_empty(), release.is_empty()) {
        (true, _) => "Linux".to_owned(),
        (false, true) => kind,
        (false, false) => format!("{kind} {release}"),
    }
}

/// A pcapng Interface Statistics Block of interface 0 with `stats`; nothing
/// for pcap, which has no place for it.
pub fn statistics(format: Format, stats: &CaptureStats) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    if format == Format::PcapNg {
        let block = InterfaceStatisticsBlock {
            interface_id: 0,
            timestamp: stats.timestamp_ns,
            options: vec![
                InterfaceStatisticsOption::IsbEndTime(stats.timestamp_ns),
                InterfaceStatisticsOption::IsbIfRecv(stats.received),
                InterfaceStatisticsOption::IsbIfDrop(stats.dropped),
                InterfaceStatisticsOption::IsbFilterAccept(stats.matched),
                InterfaceStatisticsOption::IsbUsrDeliv(stats.delivered),
            ],
        };
        block.into_block().write_to::<NativeEndian, _>(&mut out)?;
    }
    Ok(out)
}

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
    /// Writes the file's [`header`] (nothing said of the capture) to `out`
    /// at once and returns a writer for the packets.
    pub fn new(out: W, format: Format, link_type: u32, snaplen: u32) -> io::Result<Self> {
        Self::with_info(out, format, link_type, snaplen, &CaptureInfo::default())
    }

    /// [`Writer::new`], the pcapng header saying what `info` says.
    pub fn with_info(
        mut out: W,
        format: Format,
        link_type: u32,
        snaplen: u32,
        info: &CaptureInfo,
    ) -> io::Result<Self> {
        let buf = header(format, link_type, snaplen, info)?;
        out.write_all(&buf)?;
        Ok(Writer {
            out,
            format,
            snaplen,
            buf,
        })
    }

    /// Writes one packet of unknown direction (see [`Writer::write`]).
    pub fn write_packet(
        &mut self,
        timestamp_ns: u64,
        wire_len: u32,
        data: &[u8],
    ) -> io::Result<()> {
        self.write(&Frame {
            timestamp_ns,
            wire_len,
            direction: PacketDirection::Unknown,
            data,
        })
    }

    /// Writes one packet (its header and the bytes kept), as
    /// [`append_record`] lays it out, with one `write_all`.
    pub fn write(&mut self, frame: &Frame<'_>) -> io::Result<()> {
        self.buf.clear();
        append_record(self.format, self.snaplen, frame, &mut self.buf)?;
        self.out.write_all(&self.buf)
    }

    /// Writes the capture's counters (pcapng; nothing for pcap), with one
    /// `write_all`: the last block of a file.
    pub fn write_statistics(&mut self, stats: &CaptureStats) -> io::Result<()> {
        let block = statistics(self.format, stats)?;
        self.out.write_all(&block)
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

    /// Flushes and returns the underlying writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The bytes [`append_record`] gives a packet of `captured` bytes (before
/// the snaplen cut) in `direction`.
pub fn record_len(
    format: Format,
    snaplen: u32,
    captured: usize,
    direction: PacketDirection,
) -> u64 {
    let mut caplen = captured as u64;
    if snaplen != 0 {
        caplen = caplen.min(u64::from(snaplen));
    }
    match format {
        Format::Pcap => 16 + caplen,
        Format::PcapNg => {
            let flags = if direction == PacketDirection::Unknown {
                0
            } else {
                12
            };
            32 + caplen.div_ceil(4) * 4 + flags
        }
    }
}

/// Appends one packet's record to `out`: its header and the bytes kept,
/// in `format` (for pcapng, an Enhanced Packet Block of interface 0, with
/// `epb_flags` when the direction is known), for a savefile whose
/// [`header`] has `snaplen`.
///
/// The data is cut to `snaplen` (0: no limit), and a wire length smaller
/// than the bytes kept is raised to match, since readers treat a captured
/// length above the original length as a corrupt file.
///
/// Fails with `InvalidInput`, leaving `out` as it was, for a pcap
/// timestamp past 2106, which the format's 32-bit seconds cannot hold, or
/// a packet longer than 4 GiB.
pub fn append_record(
    format: Format,
    snaplen: u32,
    frame: &Frame<'_>,
    out: &mut Vec<u8>,
) -> io::Result<()> {
    let Frame {
        timestamp_ns,
        wire_len,
        direction,
        data,
    } = *frame;
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
            let flags = match direction {
                PacketDirection::Unknown => None,
                PacketDirection::Inbound => Some(1u32),
                PacketDirection::Outbound => Some(2u32),
            };
            let options = if flags.is_some() { 12 } else { 0 };
            // 28 bytes of fixed fields, the padded data, the options and
            // the trailing length.
            let total = u32::try_from(32 + padded + options).map_err(|_| {
                io::Error::new(io::ErrorKind::InvalidInput, "packet too long for pcapng")
            })?;
            let start = out.len();
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
            if let Some(flags) = flags {
                out.extend_from_slice(&EPB_FLAGS.to_ne_bytes());
                out.extend_from_slice(&4u16.to_ne_bytes());
                out.extend_from_slice(&flags.to_ne_bytes());
                out.extend_from_slice(&OPT_ENDOFOPT.to_ne_bytes());
                out.extend_from_slice(&0u16.to_ne_bytes());
            }
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
        word(self.big_endian, bytes)
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

/// The length of the longest start of a savefile that is whole: its
/// header and every record or block after it that is complete and
/// consistent. Cutting a file to it (after a crash in the middle of a
/// write, or a machine that lost the tail) leaves a file every reader takes
/// to its last whole packet. `None` when not even the header is whole or
/// the file is neither pcap nor pcapng (in either byte order).
///
/// Reads the file's record headers and skips over their bodies: the time
/// taken grows with the number of records, and memory stays constant. A
/// file still not read through at `give_up_at` (one its owner made huge)
/// is an error of kind `TimedOut`; so is a record with nothing on the
/// wire, which no capture writes (zeros, as in a sparse file).
pub fn whole_prefix_len<R: Read + io::Seek>(
    input: R,
    give_up_at: std::time::Instant,
) -> io::Result<Option<u64>> {
    let mut input = Scan {
        input: io::BufReader::new(input),
        give_up_at,
        records: 0,
    };
    let mut magic = [0u8; 4];
    if !read_all_or_eof(&mut input.input, &mut magic)? {
        return Ok(None);
    }
    match u32::from_le_bytes(magic) {
        0xa1b2_c3d4 | 0xa1b2_3c4d => whole_pcap(&mut input, false),
        0xd4c3_b2a1 | 0x4d3c_b2a1 => whole_pcap(&mut input, true),
        PCAPNG_SHB => whole_pcapng(&mut input),
        _ => Ok(None),
    }
}

/// A file being scanned, and when to give up.
struct Scan<R> {
    input: io::BufReader<R>,
    give_up_at: std::time::Instant,
    records: u64,
}

impl<R> Scan<R> {
    /// Counts a record; gives up past the deadline (looked at now and
    /// then: the clock costs more than a record header).
    fn record(&mut self) -> io::Result<()> {
        self.records += 1;
        if self.records.is_multiple_of(4096) && std::time::Instant::now() > self.give_up_at {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("still scanning after {} records", self.records),
            ));
        }
        Ok(())
    }
}

/// The 32-bit word at the start of `bytes`, in the file's byte order.
fn word(big_endian: bool, bytes: &[u8]) -> u32 {
    let bytes: [u8; 4] = bytes[..4].try_into().expect("4 bytes");
    if big_endian {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    }
}

/// pcapng's Section Header Block type, the same in both byte orders.
const PCAPNG_SHB: u32 = 0x0a0d_0d0a;

/// Fills `buffer`; `false` when the input ends first.
fn read_all_or_eof(input: &mut impl Read, buffer: &mut [u8]) -> io::Result<bool> {
    match input.read_exact(buffer) {
        Ok(()) => Ok(true),
        Err(err) if err.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(err) => Err(err),
    }
}

/// Skips `len` bytes; `false` when the input ends first.
fn skip<R: Read + io::Seek>(input: &mut io::BufReader<R>, len: u64) -> io::Result<bool> {
    let mut left = len;
    let mut scratch = [0u8; 512];
    // Short skips within the buffer; long ones by seeking past it, then
    // one byte read to learn whether the file reaches that far.
    if left > scratch.len() as u64 {
        input.seek_relative(left as i64 - 1)?;
        left = 1;
    }
    while left > 0 {
        let take = left.min(scratch.len() as u64) as usize;
        if !read_all_or_eof(input, &mut scratch[..take])? {
            return Ok(false);
        }
        left -= take as u64;
    }
    Ok(true)
}

fn whole_pcap<R: Read + io::Seek>(scan: &mut Scan<R>, big_endian: bool) -> io::Result<Option<u64>> {
    let word = |bytes: &[u8]| word(big_endian, bytes);
    let mut rest = [0u8; 20];
    if !read_all_or_eof(&mut scan.input, &mut rest)? {
        return Ok(None);
    }
    let mut whole = 24u64;
    let mut header = [0u8; 16];
    loop {
        scan.record()?;
        if !read_all_or_eof(&mut scan.input, &mut header)? {
            return Ok(Some(whole));
        }
        let cap_len = word(&header[8..12]);
        let wire_len = word(&header[12..16]);
        // Garbage where a header should be: stop before it.
        if cap_len > MAX_PACKET || cap_len > wire_len || wire_len == 0 {
            return Ok(Some(whole));
        }
        if !skip(&mut scan.input, u64::from(cap_len))? {
            return Ok(Some(whole));
        }
        whole += 16 + u64::from(cap_len);
    }
}

fn whole_pcapng<R: Read + io::Seek>(scan: &mut Scan<R>) -> io::Result<Option<u64>> {
    // The section header's byte-order magic says how to read lengths.
    let mut start = [0u8; 8];
    if !read_all_or_eof(&mut scan.input, &mut start)? {
        return Ok(None);
    }
    let big_endian = match u32::from_le_bytes(start[4..8].try_into().expect("4 bytes")) {
        0x1a2b_3c4d => false,
        0x4d3c_2b1a => true,
        _ => return Ok(None),
    };
    let word = |bytes: &[u8]| word(big_endian, bytes);
    // The section header: type, length, byte-order magic, version (4),
    // section length (8), trailing length: 28 bytes at least.
    let first_len = word(&start[..4]);
    if first_len < 28 {
        return Ok(None);
    }
    let mut whole = 0u64;
    let mut block_len = first_len;
    // Bytes of the block already read.
    let mut read_of_block = 12u64;
    loop {
        scan.record()?;
        if block_len < 12 || block_len % 4 != 0 || block_len > MAX_PACKET + 4096 {
            return Ok((whole > 0).then_some(whole));
        }
        let Some(body) = u64::from(block_len).checked_sub(read_of_block + 4) else {
            return Ok((whole > 0).then_some(whole));
        };
        if !skip(&mut scan.input, body)? {
            return Ok((whole > 0).then_some(whole));
        }
        let mut trailer = [0u8; 4];
        if !read_all_or_eof(&mut scan.input, &mut trailer)? || word(&trailer) != block_len {
            return Ok((whole > 0).then_some(whole));
        }
        whole += u64::from(block_len);
        let mut next = [0u8; 8];
        if !read_all_or_eof(&mut scan.input, &mut next)? {
            return Ok(Some(whole));
        }
        // A second section (another byte order) is not written by pktd:
        // the file is cut before it.
        if u32::from_le_bytes(next[..4].try_into().expect("4 bytes")) == PCAPNG_SHB {
            return Ok(Some(whole));
        }
        block_len = word(&next[4..8]);
        read_of_block = 8;
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
            for direction in [
                PacketDirection::Unknown,
                PacketDirection::Inbound,
                PacketDirection::Outbound,
            ] {
                for len in [0usize, 1, 3, 4, 61, 1500] {
                    let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
                    let frame = Frame {
                        timestamp_ns: 1_700_000_000_123_456_789,
                        wire_len: 2000,
                        direction,
                        data: &data,
                    };
                    let mut writer =
                        Writer::new(Vec::new(), format, LINKTYPE_ETHERNET, 1000).unwrap();
                    let header = writer.get_ref().len();
                    writer.write(&frame).unwrap();
                    let written = writer.into_inner().unwrap()[header..].to_vec();

                    let mut out = vec![0xee; 5];
                    append_record(format, 1000, &frame, &mut out).unwrap();
                    assert_eq!(&out[..5], &[0xee; 5]);
                    assert_eq!(out[5..], written, "{format:?}, {direction:?}, {len} bytes");
                    assert_eq!(
                        record_len(format, 1000, len, direction),
                        written.len() as u64
                    );
                }
            }
        }
        let mut out = vec![1, 2, 3];
        let late = Frame {
            timestamp_ns: u64::MAX,
            wire_len: 10,
            direction: PacketDirection::Inbound,
            data: &[0; 10],
        };
        assert!(append_record(Format::Pcap, 0, &late, &mut out).is_err());
        assert_eq!(out, [1, 2, 3], "a refused record leaves nothing");
    }

    /// Every cut of a file, at every byte, is repaired back to its last
    /// whole record, in both formats and both byte orders of pcap.
    #[test]
    fn a_cut_file_is_whole_up_to_its_last_whole_record() {
        for format in [Format::Pcap, Format::PcapNg] {
            let mut writer = Writer::new(Vec::new(), format, LINKTYPE_ETHERNET, 1000).unwrap();
            let mut ends = vec![writer.get_ref().len() as u64];
            if format == Format::PcapNg {
                // The section header ends before the interface's block.
                let shb = u32::from_ne_bytes(writer.get_ref()[4..8].try_into().unwrap());
                ends.insert(0, u64::from(shb));
            }
            for (i, len) in [60usize, 1, 0, 777, 64].into_iter().enumerate() {
                let frame = Frame {
                    timestamp_ns: 1_700_000_000_000_000_000 + i as u64,
                    wire_len: 1500,
                    direction: PacketDirection::Inbound,
                    data: &vec![i as u8; len],
                };
                writer.write(&frame).unwrap();
                ends.push(writer.get_ref().len() as u64);
            }
            let bytes = writer.into_inner().unwrap();
            for cut in 0..=bytes.len() as u64 {
                let expected = ends.iter().rev().find(|&&end| end <= cut).copied();
                let whole =
                    whole_prefix_len(io::Cursor::new(&bytes[..cut as usize]), later()).unwrap();
                assert_eq!(whole, expected, "{format:?} cut at {cut}");
            }
            // Garbage after the last record is cut off too.
            let mut spoiled = bytes.clone();
            spoiled.extend_from_slice(&[0xff; 40]);
            assert_eq!(
                whole_prefix_len(io::Cursor::new(&spoiled), later()).unwrap(),
                Some(bytes.len() as u64)
            );
        }
        // The other byte order of pcap.
        let mut swapped = vec![0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4];
        swapped.extend_from_slice(&[0; 8]);
        swapped.extend_from_slice(&65535u32.to_be_bytes());
        swapped.extend_from_slice(&1u32.to_be_bytes());
        let header = swapped.len() as u64;
        swapped.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]);
        swapped.extend_from_slice(&3u32.to_be_bytes());
        swapped.extend_from_slice(&3u32.to_be_bytes());
        swapped.extend_from_slice(&[1, 2, 3]);
        let record = swapped.len() as u64;
        swapped.extend_from_slice(&[0, 0]);
        assert_eq!(
            whole_prefix_len(io::Cursor::new(&swapped), later()).unwrap(),
            Some(record)
        );
        assert_eq!(
            whole_prefix_len(io::Cursor::new(&swapped[..header as usize - 1]), later()).unwrap(),
            None
        );
        assert_eq!(
            whole_prefix_len(io::Cursor::new(&b"not a savefile at all"[..]), later()).unwrap(),
            None
        );
    }

    fn later() -> std::time::Instant {
        std::time::Instant::now() + std::time::Duration::from_secs(60)
    }

    /// What a hostile owner can make of a file: a section header too short
    /// to hold itself, zeros (a sparse file), endless tiny records past a
    /// deadline. None panics, and none is scanned for long.
    #[test]
    fn hostile_files_end_the_scan() {
        let mut short = 0x0a0d_0d0au32.to_le_bytes().to_vec();
        short.extend_from_slice(&12u32.to_le_bytes());
        short.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
        short.extend_from_slice(&[0; 20]);
        assert_eq!(
            whole_prefix_len(io::Cursor::new(&short), later()).unwrap(),
            None
        );

        let mut zeros = Writer::new(Vec::new(), Format::Pcap, LINKTYPE_ETHERNET, 100)
            .unwrap()
            .into_inner()
            .unwrap();
        let header = zeros.len() as u64;
        zeros.resize(1 << 20, 0);
        assert_eq!(
            whole_prefix_len(io::Cursor::new(&zeros), later()).unwrap(),
            Some(header)
        );

        let mut writer = Writer::new(Vec::new(), Format::Pcap, LINKTYPE_ETHERNET, 100).unwrap();
        for _ in 0..10_000 {
            writer.write_packet(1, 1, &[0]).unwrap();
        }
        let many = writer.into_inner().unwrap();
        let past = std::time::Instant::now() - std::time::Duration::from_secs(1);
        let err = whole_prefix_len(io::Cursor::new(&many), past).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
