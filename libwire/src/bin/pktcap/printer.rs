//! tcpdump as pktcap's printer: what pktcap receives goes, as a pcap
//! stream, to `tcpdump -r -` with the user's print flags, so that every
//! protocol tcpdump knows is printed as tcpdump prints it. tcpdump reading
//! a stream needs no privilege. Without tcpdump, pktcap's own one-line
//! printer serves, and says so once.

use std::{
    ffi::OsString,
    io::{self, BufRead as _, BufReader, BufWriter},
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Child, ChildStdin, Command, Stdio},
    thread::JoinHandle,
};

use libwire::savefile::{Format, LINKTYPE_ETHERNET, Writer};

/// Names the tcpdump to run (`PKTCAP_TCPDUMP`); empty: pktcap's own
/// printer.
pub const TCPDUMP_ENV: &str = "PKTCAP_TCPDUMP";

/// tcpdump's print flags, as given to pktcap.
#[derive(Debug, Default, Clone)]
pub struct PrintFlags {
    pub numeric: u8,
    pub verbose: u8,
    pub link_headers: bool,
    pub hex: u8,
    pub hex_ascii: u8,
    pub ascii: bool,
    pub quiet: bool,
    pub timestamps: u8,
    pub absolute_seq: bool,
    pub number: bool,
    pub line_buffered: bool,
}

impl PrintFlags {
    /// The flags as tcpdump takes them.
    fn args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut repeat = |flag: &str, times: u8| {
            for _ in 0..times {
                args.push(flag.into());
            }
        };
        repeat("-n", self.numeric);
        repeat("-v", self.verbose);
        repeat("-e", u8::from(self.link_headers));
        repeat("-x", self.hex);
        repeat("-X", self.hex_ascii);
        repeat("-A", u8::from(self.ascii));
        repeat("-q", u8::from(self.quiet));
        repeat("-t", self.timestamps);
        repeat("-S", u8::from(self.absolute_seq));
        repeat("--number", u8::from(self.number));
        repeat("-l", u8::from(self.line_buffered));
        args
    }

    /// Whether any flag asks for more than pktcap's own printer does.
    pub fn any(&self) -> bool {
        self.verbose > 0
            || self.link_headers
            || self.hex > 0
            || self.hex_ascii > 0
            || self.ascii
            || self.quiet
            || self.timestamps > 0
            || self.absolute_seq
            || self.number
    }
}

/// The tcpdump to run: `PKTCAP_TCPDUMP` if set (empty: none), else the
/// first `tcpdump` on `PATH` or in the system directories a user's `PATH`
/// often lacks.
pub fn find_tcpdump() -> Option<PathBuf> {
    if let Some(chosen) = std::env::var_os(TCPDUMP_ENV) {
        return (!chosen.is_empty()).then(|| PathBuf::from(chosen));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("tcpdump"))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A running `tcpdump -r -` fed the packets.
pub struct Tcpdump {
    child: Child,
    writer: Option<Writer<BufWriter<ChildStdin>>>,
    /// Forwards tcpdump's standard error but its "reading from file" line.
    errors: Option<JoinHandle<()>>,
}

impl Tcpdump {
    /// Starts `tcpdump` reading a pcap stream of `snaplen` from its
    /// standard input, printing to pktcap's standard output.
    pub fn spawn(tcpdump: &Path, flags: &PrintFlags, snaplen: u32) -> io::Result<Self> {
        let mut child = Command::new(tcpdump)
            .args(["-r", "-"])
            .args(flags.args())
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group: a terminal's Ctrl-C reaches pktcap
            // alone, which ends the capture, closes the stream, and lets
            // tcpdump print the rest.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        // Bytes, not text: a line that is not UTF-8 must not stop the
        // draining (tcpdump would then block on a full pipe, and pktcap
        // with it).
        let errors = std::thread::spawn(move || {
            let mut reader = BufReader::new(stderr);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let text = String::from_utf8_lossy(&line);
                if !text.starts_with("reading from file -") {
                    eprint!("{text}");
                }
                line.clear();
            }
        });
        let writer = Writer::new(
            BufWriter::with_capacity(crate::output::SAVEFILE_BUFFER, stdin),
            Format::Pcap,
            LINKTYPE_ETHERNET,
            snaplen,
        )?;
        Ok(Self {
            child,
            writer: Some(writer),
            errors: Some(errors),
        })
    }

    pub fn packet(&mut self, timestamp_ns: u64, wire_len: u32, data: &[u8]) -> io::Result<()> {
        self.writer()?.write_packet(timestamp_ns, wire_len, data)
    }

    /// Hands tcpdump what is buffered, before pktcap waits for packets.
    pub fn flush(&mut self) -> io::Result<()> {
        self.writer()?.flush()
    }

    /// Ends the stream and waits for tcpdump to print the rest and exit.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(writer) = self.writer.take() {
            // Dropping the stream is tcpdump's end of file.
            drop(
                writer
                    .into_inner()?
                    .into_inner()
                    .map_err(|err| err.into_error())?,
            );
        }
        let status = self.child.wait()?;
        if let Some(errors) = self.errors.take() {
            let _ = errors.join();
        }
        if !status.success() {
            return Err(io::Error::other(format!("tcpdump, printing, {status}")));
        }
        Ok(())
    }

    fn writer(&mut self) -> io::Result<&mut Writer<BufWriter<ChildStdin>>> {
        self.writer
            .as_mut()
            .ok_or_else(|| io::Error::other("the printer has finished"))
    }
}

impl Drop for Tcpdump {
    fn drop(&mut self) {
        // An error path: no more packets; tcpdump ends at end of file.
        drop(self.writer.take());
        let _ = self.child.wait();
    }
}
