//! Where pktcap's packets go: a savefile (`-w`), tcpdump as the printer,
//! or, without tcpdump, pktcap's own one line per packet.

use std::{
    fs::File,
    io::{self, BufWriter, Write},
    path::Path,
};

use libwire::{
    print::format_packet,
    savefile::{Format, LINKTYPE_ETHERNET, Writer},
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
    /// A savefile at `path` (`-` for standard output).
    pub fn savefile(path: &Path, format: Format, snaplen: u32) -> anyhow::Result<Self> {
        let sink: Box<dyn Write> = if path.as_os_str() == "-" {
            Box::new(io::stdout().lock())
        } else {
            Box::new(
                File::create(path).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?,
            )
        };
        Ok(Self::Savefile(Writer::new(
            BufWriter::with_capacity(SAVEFILE_BUFFER, sink),
            format,
            LINKTYPE_ETHERNET,
            snaplen,
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

    pub fn packet(&mut self, timestamp_ns: u64, wire_len: u32, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Savefile(writer) => writer.write_packet(timestamp_ns, wire_len, data),
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

    /// Everything out (tcpdump done printing).
    pub fn finish(&mut self) -> io::Result<()> {
        match self {
            Self::Savefile(writer) => writer.flush(),
            Self::Tcpdump(printer) => printer.finish(),
            Self::Lines(out) => out.flush(),
        }
    }
}
