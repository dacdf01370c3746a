//! `pktcap`: capture through pktd, with tcpdump's flags.

mod output;
mod printer;

use std::{fs::File, io, path::PathBuf, process::ExitCode};

use clap::{ArgAction, Parser, ValueEnum};
use libwire::{
    CaptureBuilder, Direction, EndReason,
    savefile::{CaptureInfo, Format},
};

use crate::{output::Output, printer::PrintFlags};

#[derive(Parser)]
#[command(
    version,
    about = "Capture packets through the pktd daemon (flags as tcpdump's)",
    disable_help_flag = true
)]
struct Args {
    /// Interface to capture on.
    #[arg(short = 'i', long = "interface")]
    interface: Option<String>,
    /// Bytes to capture per packet (0: 262144).
    #[arg(short = 's', long = "snapshot-length", default_value_t = 262_144)]
    snaplen: u32,
    /// `headers`: cut every packet after its transport header (Ethernet,
    /// VLAN tags, IPv4 with options or IPv6 with extension headers, then
    /// TCP with options, UDP, ICMP or ICMPv6; other protocols after their
    /// network header), the filter seeing only those headers too. With -s
    /// the smaller cut applies.
    #[arg(long = "snap", value_name = "headers", value_parser = ["headers"])]
    snap: Option<String>,
    /// Exit after this many packets.
    #[arg(short = 'c')]
    count: Option<u64>,
    /// Write packets to FILE (`-` for standard output) in pcap format.
    #[arg(short = 'w')]
    write: Option<PathBuf>,
    /// Do not convert addresses (and, twice, ports) to names: printing,
    /// as tcpdump's -n.
    #[arg(short = 'n', action = ArgAction::Count)]
    numeric: u8,
    /// Printing (tcpdump's flags, passed to it): more detail, up to -vvv.
    #[arg(short = 'v', action = ArgAction::Count)]
    verbose: u8,
    /// Printing: the link-level header too.
    #[arg(short = 'e')]
    link_headers: bool,
    /// Printing: each packet in hex (-xx: with its link-level header).
    #[arg(short = 'x', action = ArgAction::Count)]
    hex: u8,
    /// Printing: each packet in hex and ASCII (-XX: with its link-level
    /// header).
    #[arg(short = 'X', action = ArgAction::Count)]
    hex_ascii: u8,
    /// Printing: each packet in ASCII.
    #[arg(short = 'A')]
    ascii: bool,
    /// Printing: less protocol detail.
    #[arg(short = 'q')]
    quiet: bool,
    /// Printing: no time stamp (-tt: seconds since the epoch, -ttt: since
    /// the previous packet, -tttt: date and time, -ttttt: since the first).
    #[arg(short = 't', action = ArgAction::Count)]
    timestamps: u8,
    /// Printing: absolute TCP sequence numbers.
    #[arg(short = 'S', long = "absolute-tcp-sequence-numbers")]
    absolute_seq: bool,
    /// Printing: number the packets.
    #[arg(short = '#', long = "number")]
    number: bool,
    /// Printing: line-buffered output.
    #[arg(short = 'l')]
    line_buffered: bool,
    /// Do not run the filter optimiser.
    #[arg(short = 'O', long = "no-optimize")]
    no_optimize: bool,
    /// Direction of packets to capture.
    #[arg(short = 'Q', long = "direction", value_enum, default_value_t = Dir::Inout)]
    direction: Dir,
    /// Print the compiled filter (-d, -dd, -ddd as tcpdump) and exit.
    #[arg(short = 'd', action = ArgAction::Count)]
    dump: u8,
    /// Kernel ring buffer size in KiB.
    #[arg(short = 'B', long = "buffer-size")]
    buffer_kib: Option<u32>,
    /// Network namespace of the interface: an ip netns name, /proc/PID/ns/net,
    /// container:ID or pod:NAMESPACE/NAME (a Kubernetes pod's).
    #[arg(long)]
    netns: Option<String>,
    /// pktd's socket.
    #[arg(long, env = "PKTD_SOCKET", default_value = libwire::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Use the classic-BPF program in FILE (tcpdump -ddd text, or raw
    /// struct sock_filter bytes) instead of an expression.
    #[arg(long = "bpf", value_name = "FILE")]
    bpf_file: Option<PathBuf>,
    /// Have the daemon record to files named PATTERN (one %d: the file's
    /// number) in your policy directory, and return at once.
    #[arg(long = "record", value_name = "PATTERN")]
    record: Option<String>,
    /// With --record: a new file every SECONDS.
    #[arg(short = 'G', value_name = "SECONDS")]
    rotate_seconds: Option<u32>,
    /// With --record: a new file before one exceeds MILLION_BYTES (fractions
    /// allowed).
    #[arg(short = 'C', value_name = "MILLION_BYTES")]
    rotate_mbytes: Option<f64>,
    /// With --record: keep at most FILES files, deleting the oldest.
    #[arg(short = 'W', value_name = "FILES")]
    max_files: Option<u32>,
    /// List your recordings and exit.
    #[arg(long)]
    list: bool,
    /// List the interfaces your policy lets you capture on, in every
    /// network namespace it names (as tcpdump -D), and exit.
    #[arg(short = 'D', long = "list-interfaces")]
    list_interfaces: bool,
    /// Stop recording ID and exit.
    #[arg(long = "stop", value_name = "ID")]
    stop: Option<u64>,
    /// Inject the frames of a pcap savefile on the interface (each checked
    /// by the daemon against the policy), then exit.
    #[arg(long = "inject", value_name = "FILE.pcap")]
    inject: Option<PathBuf>,
    /// Statistics mode: count matching packets and bytes in the kernel,
    /// copy none, and print the counts every SECONDS (fractions allowed).
    #[arg(long = "stats-only", value_name = "SECONDS")]
    stats_only: Option<f64>,
    /// Write pcapng instead of pcap.
    #[arg(long)]
    pcapng: bool,
    /// Deliver each packet as it arrives rather than in batches (more CPU
    /// per packet).
    #[arg(long = "immediate-mode")]
    immediate: bool,
    /// Have the daemon forward the packets instead of reading the
    /// session's ring in place.
    #[arg(long = "no-zero-copy")]
    no_zero_copy: bool,
    /// When pktd restarts (it says "daemon restarting") or goes away (a
    /// crash), wait up to SECONDS for it to come back and go on with the
    /// same capture, into the same output; say how long the gap was and
    /// how many packets it may have lost.
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "60")]
    reconnect: Option<f64>,
    /// Print help.
    #[arg(short = 'h', long = "help", action = ArgAction::Help)]
    help: Option<bool>,
    /// Print the man page or shell completions to standard output and exit
    /// (for packagers).
    #[arg(long, hide = true, value_enum, value_name = "WHAT")]
    generate: Option<Generated>,
    /// The filter expression (tcpdump syntax).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    expression: Vec<String>,
}

/// pktcap(1)'s sections beyond the flags.
const MAN_SECTIONS: &str = r#".SH DESCRIPTION OF OUTPUT
Without \fB\-w\fR, pktcap hands the packets it receives to \fBtcpdump \-r \-\fR
with the print flags given (\fB\-v\fR, \fB\-e\fR, \fB\-x\fR, \fB\-X\fR,
\fB\-A\fR, \fB\-q\fR, \fB\-t\fR..., \fB\-S\fR, \fB\-\-number\fR, \fB\-n\fR),
so that it prints what tcpdump prints. Without tcpdump (or with
\fBPKTCAP_TCPDUMP\fR set empty) it prints with its own printer and says so once.
.SH ENVIRONMENT
.TP
\fBPKTD_SOCKET\fR
The daemon's socket (\fB\-\-socket\fR).
.TP
\fBPKTCAP_TCPDUMP\fR
The tcpdump to print through; empty for the built-in printer.
.SH EXIT STATUS
0 when the capture ends (count reached, interrupted, or ended by the daemon
for a reason it gives); 1 on an error, with the daemon's reason (a policy
refusal names the rule).
.SH SEE ALSO
\fBpktd\fR(8), \fBpktd-policy\fR(5), \fBtcpdump\fR(8), \fBpcap-filter\fR(7)
"#;

/// What `--generate` prints.
#[derive(Clone, Copy, ValueEnum)]
enum Generated {
    /// pktcap(1), roff.
    Man,
    Bash,
    Zsh,
    Fish,
}

/// Prints what `--generate` asks for, from the flags' own definitions
/// (clap_mangen, clap_complete).
fn generate(what: Generated) -> io::Result<()> {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    let mut command = Args::command().name("pktcap");
    let out = &mut io::stdout().lock();
    let shell = match what {
        Generated::Man => {
            clap_mangen::Man::new(command).section("1").render(out)?;
            return io::Write::write_all(out, MAN_SECTIONS.as_bytes());
        }
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        // clap_complete writes `-s #` unquoted, which fish reads as a
        // comment: `-#` is offered there as `--number` only.
        Generated::Fish => {
            command = command.mut_arg("number", |arg| arg.short(None));
            Shell::Fish
        }
    };
    clap_complete::generate(shell, &mut command, "pktcap", out);
    Ok(())
}

#[derive(Clone, Copy, ValueEnum)]
enum Dir {
    In,
    Out,
    Inout,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("pktcap: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    if let Some(what) = args.generate {
        generate(what)?;
        return Ok(ExitCode::SUCCESS);
    }
    let expression = args.expression.join(" ");
    let snaplen = if args.snaplen == 0 {
        262_144
    } else {
        args.snaplen
    };
    if args.dump > 0 {
        let program = pktd_filter::compile(&expression, !args.no_optimize, snaplen)?;
        let text = match args.dump {
            1 => pktd_filter::format_d(program.insns()),
            2 => pktd_filter::format_dd(program.insns()),
            _ => pktd_filter::format_ddd(program.insns()),
        };
        print!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    if args.list {
        return runtime.block_on(list(&args.socket));
    }
    if args.list_interfaces {
        return runtime.block_on(list_interfaces(&args.socket));
    }
    if let Some(id) = args.stop {
        return runtime.block_on(stop(&args.socket, id));
    }
    let Some(interface) = args.interface.clone() else {
        anyhow::bail!("no interface given (-i IFACE)");
    };
    if let Some(pattern) = args.record.clone() {
        return runtime.block_on(record(&args, &interface, expression, snaplen, &pattern));
    }
    if let Some(path) = args.inject.clone() {
        return runtime.block_on(inject(&args, &interface, &path));
    }
    runtime.block_on(capture(args, interface, expression, snaplen))
}

/// The print flags, for tcpdump.
fn print_flags(args: &Args) -> PrintFlags {
    PrintFlags {
        numeric: args.numeric,
        verbose: args.verbose,
        link_headers: args.link_headers,
        hex: args.hex,
        hex_ascii: args.hex_ascii,
        ascii: args.ascii,
        quiet: args.quiet,
        timestamps: args.timestamps,
        absolute_seq: args.absolute_seq,
        number: args.number,
        line_buffered: args.line_buffered,
    }
}

/// The capture the flags describe.
fn builder(
    args: &Args,
    interface: &str,
    expression: String,
    snaplen: u32,
) -> anyhow::Result<CaptureBuilder> {
    let mut builder = CaptureBuilder::new(interface)
        .socket(&args.socket)
        .direction(match args.direction {
            Dir::In => Direction::In,
            Dir::Out => Direction::Out,
            Dir::Inout => Direction::InOut,
        })
        .snaplen(snaplen)
        .headers_only(args.snap.is_some())
        .filter(expression)
        .optimize(!args.no_optimize)
        .count(args.count.unwrap_or(0))
        .immediate(args.immediate)
        .zero_copy(!args.no_zero_copy);
    if let Some(path) = &args.bpf_file {
        let bytes =
            std::fs::read(path).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
        let program = match std::str::from_utf8(&bytes) {
            Ok(text) => pktd_filter::parse_ddd(text)?,
            Err(_) => pktd_filter::parse_binary(&bytes)?,
        };
        builder = builder.bytecode(&program);
    }
    if let Some(netns) = &args.netns {
        builder = builder.netns(netns);
    }
    if let Some(kib) = args.buffer_kib {
        builder = builder.buffer_bytes(kib.saturating_mul(1024));
    }
    Ok(builder)
}

async fn capture(
    args: Args,
    interface: String,
    expression: String,
    snaplen: u32,
) -> anyhow::Result<ExitCode> {
    // What a pcapng file says the filter was: the expression, unless the
    // program came from a file.
    let expression_text = if args.bpf_file.is_some() {
        String::new()
    } else {
        expression.clone()
    };
    let builder = builder(&args, &interface, expression, snaplen)?;
    if let Some(seconds) = args.stats_only {
        if !(seconds.is_finite() && seconds >= 0.1) {
            anyhow::bail!("--stats-only takes a number of seconds, at least 0.1");
        }
        let capture = builder
            .stats_only(std::time::Duration::from_secs_f64(seconds))
            .open()
            .await?;
        return count_only(capture, &interface).await;
    }
    let mut capture = builder.open().await?;
    let mut output = match &args.write {
        Some(path) => Output::savefile(
            path,
            if args.pcapng {
                Format::PcapNg
            } else {
                Format::Pcap
            },
            capture.snaplen(),
            &CaptureInfo {
                application: format!("pktcap {} (pktd)", env!("CARGO_PKG_VERSION")),
                interface: interface.clone(),
                description: args
                    .netns
                    .as_ref()
                    .map_or_else(String::new, |netns| format!("netns {netns}")),
                filter: expression_text.clone(),
            },
        )?,
        None => Output::printed(&print_flags(&args), capture.snaplen()),
    };
    eprintln!(
        "listening on {interface}, link-type EN10MB (Ethernet), snapshot length {} bytes{}",
        capture.snaplen(),
        if capture.headers_only() {
            ", headers only"
        } else {
            ""
        }
    );

    let patience = match args.reconnect {
        Some(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= 86_400.0 => {
            Some(std::time::Duration::from_secs_f64(seconds))
        }
        Some(_) => anyhow::bail!("--reconnect takes a number of seconds in (0, 86400]"),
        None => None,
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    // With --reconnect, the daemon's counters now and then: after a crash,
    // the gap is bounded from the last of them.
    let mut refresh = tokio::time::interval(std::time::Duration::from_secs(1));
    let mut captured = 0u64;
    let mut stopping = false;
    // The counters of the sessions before the last reconnection, and the
    // packets captured in them.
    let mut earlier = libwire::Stats::default();
    let mut captured_before = 0u64;
    loop {
        let step = 'step: {
            // What is there already, without a wait per packet.
            loop {
                match capture.try_next_packet_ref() {
                    Ok(Some(packet)) => {
                        output.packet(&packet)?;
                        captured += 1;
                    }
                    Ok(None) => break,
                    Err(err) => break 'step Step::Failed(err),
                }
            }
            output.idle()?;
            tokio::select! {
                next = capture.next_packet_ref() => match next {
                    Ok(Some(packet)) => {
                        output.packet(&packet)?;
                        captured += 1;
                        Step::Continue
                    }
                    Ok(None) => Step::Ended,
                    Err(err) => Step::Failed(err),
                },
                _ = refresh.tick(), if patience.is_some() && !stopping => Step::Refresh,
                _ = interrupt.recv(), if !stopping => Step::Stop,
                _ = terminate.recv(), if !stopping => Step::Stop,
            }
        };
        let step = match step {
            Step::Refresh => match capture.stats().await {
                Ok(_) => Step::Continue,
                Err(err) => Step::Failed(err),
            },
            step => step,
        };
        let step = match step {
            Step::Ended | Step::Failed(_) if capture.daemon_went_away() => Step::WentAway,
            step => step,
        };
        match step {
            Step::Continue | Step::Refresh => {}
            Step::Ended => break,
            Step::Failed(err) => return Err(err.into()),
            Step::Stop => {
                stopping = true;
                capture.request_close().await?;
            }
            Step::WentAway => {
                let Some(patience) = patience.filter(|_| !stopping) else {
                    break;
                };
                match capture.end_reason() {
                    Some(reason @ EndReason::DaemonShutdown) => {
                        eprintln!("pktcap: session ended by pktd: {reason}; reconnecting");
                    }
                    _ => eprintln!("pktcap: the connection to pktd was lost; reconnecting"),
                }
                let before = at_least(capture.last_stats(), captured - captured_before);
                let reconnected = tokio::select! {
                    gap = capture.reconnect(patience) => Some(gap),
                    _ = interrupt.recv() => None,
                    _ = terminate.recv() => None,
                };
                match reconnected {
                    Some(Ok(gap)) => {
                        add(&mut earlier, &before);
                        captured_before = captured;
                        let missed = match gap.packets {
                            Some(packets) => format!(
                                "the interface carried {packets} packets meanwhile: at most that many were missed"
                            ),
                            None => "how many packets were missed is not known".to_owned(),
                        };
                        eprintln!(
                            "pktcap: capturing again after a gap of {:.1} s; {missed}",
                            gap.duration.as_secs_f64()
                        );
                    }
                    Some(Err(err)) => {
                        eprintln!("pktcap: reconnecting failed: {err}");
                        break;
                    }
                    None => break,
                }
            }
        }
    }
    let mut stats = earlier;
    add(
        &mut stats,
        &at_least(capture.last_stats(), captured - captured_before),
    );
    output.finish(&stats)?;

    eprintln!("{captured} packets captured");
    eprintln!("{} packets received by filter", stats.received);
    eprintln!("{} packets dropped by kernel", stats.dropped);
    if stats.over_budget > 0 {
        eprintln!(
            "{} packets not judged: the filter ran out of the interpreter's budget",
            stats.over_budget
        );
    }
    match capture.end_reason() {
        Some(EndReason::PacketQuota) | Some(EndReason::ByteQuota) => {
            eprintln!(
                "{} packets refused over quota ({})",
                stats.over_quota,
                capture.end_reason().expect("just matched")
            );
        }
        Some(EndReason::PolicyRevoked)
        | Some(EndReason::DaemonShutdown)
        | Some(EndReason::Error(_)) => {
            eprintln!(
                "session ended by pktd: {}",
                capture.end_reason().expect("just matched")
            );
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// What one turn of the capture loop came to.
enum Step {
    Continue,
    /// Time to ask for the daemon's counters.
    Refresh,
    /// The session ended (count, quota, policy, close).
    Ended,
    /// A signal: ask the daemon to close.
    Stop,
    /// The daemon restarted or went away.
    WentAway,
    Failed(libwire::Error),
}

/// A session's last counters, made to count at least the `captured`
/// packets this process got from it: after a crash, the last counters the
/// daemon sent are older than the last packets.
fn at_least(mut stats: libwire::Stats, captured: u64) -> libwire::Stats {
    stats.delivered = stats.delivered.max(captured);
    stats.matched = stats.matched.max(stats.delivered);
    stats.received = stats.received.max(stats.matched);
    stats
}

/// Adds a session's counters to those of the sessions before it (across
/// reconnections).
fn add(total: &mut libwire::Stats, session: &libwire::Stats) {
    total.received += session.received;
    total.matched += session.matched;
    total.delivered += session.delivered;
    total.dropped += session.dropped;
    total.over_quota += session.over_quota;
    total.over_budget += session.over_budget;
}

fn describe(info: &libwire::RecordingInfo) -> String {
    format!(
        "{:>6} {:>6} {:<28} {:>10} {:>12}  {}  {}",
        info.id,
        info.uid,
        info.ended
            .as_ref()
            .map_or_else(|| "recording".to_owned(), ToString::to_string),
        info.packets,
        info.bytes,
        info.directory,
        info.files.join(" ")
    )
}

/// `--record PATTERN`: hands the capture to the daemon and returns.
async fn record(
    args: &Args,
    interface: &str,
    expression: String,
    snaplen: u32,
    pattern: &str,
) -> anyhow::Result<ExitCode> {
    let builder = builder(args, interface, expression, snaplen)?;
    let rotation = libwire::Rotation {
        seconds: args.rotate_seconds.unwrap_or(0),
        bytes: args
            .rotate_mbytes
            .map_or(0, |millions| (millions * 1e6).round().max(1.0) as u64),
        packets: 0,
        max_files: args.max_files.unwrap_or(0),
    };
    let info = builder.record(pattern, &rotation, args.pcapng).await?;
    println!(
        "recording {}: first file {}/{}",
        info.id,
        info.directory,
        info.files.first().map_or("", String::as_str)
    );
    Ok(ExitCode::SUCCESS)
}

/// `--list`: the user's recordings.
async fn list(socket: &std::path::Path) -> anyhow::Result<ExitCode> {
    println!(
        "{:>6} {:>6} {:<28} {:>10} {:>12}  directory  files",
        "id", "uid", "state", "packets", "bytes"
    );
    for info in libwire::list_recordings(socket).await? {
        println!("{}", describe(&info));
    }
    Ok(ExitCode::SUCCESS)
}

/// `-D`: the interfaces the user may capture on, numbered as tcpdump
/// numbers them, each with its namespace (for `--netns`) when it is not
/// the daemon's own.
async fn list_interfaces(socket: &std::path::Path) -> anyhow::Result<ExitCode> {
    for (number, interface) in libwire::list_interfaces(socket).await?.iter().enumerate() {
        // A namespace's owner names its links: control characters are
        // shown escaped, never sent to the terminal.
        let shown = |text: &str| text.escape_debug().to_string();
        let mut flags = Vec::new();
        if interface.up {
            flags.push("Up");
        }
        if interface.running {
            flags.push("Running");
        }
        if interface.loopback {
            flags.push("Loopback");
        }
        let netns = if interface.netns.is_empty() {
            String::new()
        } else {
            format!(" (netns {})", shown(&interface.netns))
        };
        println!(
            "{}.{}{netns} [{}]",
            number + 1,
            shown(&interface.name),
            flags.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `--stop ID`: ends a recording and shows it.
async fn stop(socket: &std::path::Path, id: u64) -> anyhow::Result<ExitCode> {
    let info = libwire::stop_recording(socket, id).await?;
    println!("{}", describe(&info));
    Ok(ExitCode::SUCCESS)
}

/// `--inject FILE.pcap`: sends the savefile's frames through the daemon;
/// one line per refused frame, a summary, and success only if all went out.
async fn inject(args: &Args, interface: &str, path: &std::path::Path) -> anyhow::Result<ExitCode> {
    let file = File::open(path).map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
    let mut reader = libwire::savefile::Reader::new(io::BufReader::new(file))
        .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))?;
    if reader.link_type() != libwire::savefile::LINKTYPE_ETHERNET {
        anyhow::bail!(
            "{}: link type {} is not Ethernet",
            path.display(),
            reader.link_type()
        );
    }
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet()? {
        if packet.data.len() < packet.wire_len as usize {
            anyhow::bail!(
                "{}: frame {} was cut to {} of {} bytes; only whole frames can be injected",
                path.display(),
                frames.len() + 1,
                packet.data.len(),
                packet.wire_len
            );
        }
        frames.push(packet.data);
    }
    let mut injector =
        libwire::Injector::open(&args.socket, args.netns.as_deref().unwrap_or(""), interface)
            .await?;
    let verdicts = injector.inject(&frames).await?;
    for (index, verdict) in verdicts.iter().enumerate() {
        if let libwire::InjectVerdict::Refused(reason) = verdict {
            eprintln!("frame {}: refused: {reason}", index + 1);
        }
    }
    eprintln!(
        "{} frames sent, {} refused",
        injector.sent(),
        injector.refused()
    );
    Ok(if injector.refused() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Statistics mode: one line per interval, totals at the end.
async fn count_only(mut capture: libwire::Capture, interface: &str) -> anyhow::Result<ExitCode> {
    eprintln!("counting on {interface} (statistics mode: no packet is copied)");
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let (mut packets, mut bytes, mut intervals) = (0u64, 0u64, 0u64);
    let mut stopping = false;
    loop {
        let next = tokio::select! {
            next = capture.next_interval() => next?,
            _ = interrupt.recv(), if !stopping => { stopping = true; capture.request_close().await?; continue }
            _ = terminate.recv(), if !stopping => { stopping = true; capture.request_close().await?; continue }
        };
        let Some(interval) = next else { break };
        let seconds = (interval.end_ns.saturating_sub(interval.start_ns)) as f64 / 1e9;
        let time = libwire::print::format_time(interval.end_ns);
        println!(
            "{time} {} packets, {} bytes, {:.1} packets/s, {:.3} Mbit/s",
            interval.packets,
            interval.bytes,
            interval.packets as f64 / seconds.max(1e-9),
            interval.bytes as f64 * 8.0 / 1e6 / seconds.max(1e-9),
        );
        packets += interval.packets;
        bytes += interval.bytes;
        intervals += 1;
    }
    eprintln!("{packets} packets ({bytes} bytes) matched in {intervals} intervals");
    Ok(ExitCode::SUCCESS)
}
