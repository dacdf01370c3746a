//! Where pktcap's packets go: a savefile (`-w`), tcpdump as the printer,
//! or, without tcpdump, pktcap's own one line per packet.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use libwire::{
    Direction, PacketRef, Stats,
    print::format_packet,
    savefile::{
        CaptureInfo, CaptureStats, Format, Frame, LINKTYPE_ETHERNET, PacketDirection, Writer,
    },
};

use crate::printer::{PrintFlags, TCPDUMP_ENV, Tcpdump, find_tcpdump};

/// Bytes of a savefile buffered before a write.
pub const SAVEFILE_BUFFER: usize = 64 * 1024;

pub enum Output {
    Savefile(Writer<BufWriter<Box<dyn Write>>>),
    Tcpdump(Tcpdump),
    Lines(io::StdoutLock<'static>),
}

impl Output {
    /// A savefile at `path` (`-` for standard output); pcapng says what
    /// `info` says.
    pub fn savefile(
        path: &Path,
        format: Format,
        snaplen: u32,
        info: &CaptureInfo,
    ) -> anyhow::Result<Self> {
        let sink: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(io::stdout().lock())
        } else {
            Box::new(
                File::create(path).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?,
            )
        };
        Ok(Self::Savefile(Writer::with_info(
            BufWriter::with_capacity(SAVEFILE_BUFFER, sink),
            format,
            LINKTYPE_ETHERNET,
            snaplen,
            info,
        )?))
    }

    /// Printed: by tcpdump when there is one, else one line per packet
    /// (and a word on standard error saying so).
    pub fn printed(flags: &PrintFlags, snaplen: u32) -> Self {
        let reason = match find_tcpdump() {
            Some(tcpdump) => match Tcpdump::spawn(&tcpdump, flags, snaplen) {
                Ok(printer) => return Self::Tcpdump(printer),
                Err(err) => format!("cannot run {}: {err}", tcpdump.display()),
            },
            None if std::env::var_os(TCPDUMP_ENV).is_some() => format!("{TCPDUMP_ENV} is empty"),
            None => format!("no tcpdump found (set {TCPDUMP_ENV} to one)"),
        };
        eprintln!(
            "pktcap: {reason}: printing with pktcap's own printer, one line per packet{}",
            if flags.any() {
                ", print flags ignored"
            } else {
                ""
            }
        );
        Self::Lines(io::stdout().lock())
    }

    pub fn packet(&mut self, packet: &PacketRef<'_>) -> io::Result<()> {
        let (timestamp_ns, wire_len, data) =
            (packet.timestamp_ns(), packet.wire_len(), packet.data());
        match self {
            Self::Savefile(writer) => writer.write(&Frame {
                timestamp_ns,
                wire_len,
                direction: match packet.direction() {
                    Direction::In => PacketDirection::Inbound,
                    Direction::Out => PacketDirection::Outbound,
                    Direction::InOut => PacketDirection::Unknown,
                },
                data,
            }),
            Self::Tcpdump(printer) => printer.packet(timestamp_ns, wire_len, data),
            Self::Lines(out) => writeln!(out, "{}", format_packet(timestamp_ns, wire_len, data)),
        }
    }

    /// pktcap is about to wait for packets: what is printed shows now (a
    /// savefile stays buffered, as tcpdump's without -U).
    pub fn idle(&mut self) -> io::Result<()> {
        match self {
            Self::Savefile(_) => Ok(()),
            Self::Tcpdump(printer) => printer.flush(),
            Self::Lines(out) => out.flush(),
        }
    }

    /// Everything out (tcpdump done printing); a pcapng savefile ends
    /// with the capture's counters.
    pub fn finish(&mut self, stats: &Stats) -> io::Result<()> {
        match self {
            Self::Savefile(writer) => {
                writer.write_statistics(&CaptureStats {
                    timestamp_ns: now_ns(),
                    received: stats.received,
                    dropped: stats.dropped,
                    matched: stats.matched,
                    delivered: stats.delivered,
                })?;
                writer.flush()
            }
            Self::Tcpdump(printer) => printer.finish(),
            Self::Lines(out) => out.flush(),
        }
    }
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}
