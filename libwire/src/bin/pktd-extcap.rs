//! `pktd-extcap`: Wireshark's and tshark's way to capture through pktd.
//! Installed in Wireshark's extcap folder, it lists the interfaces the
//! user's policy allows (each namespace's too) among Wireshark's, and
//! captures from one of them through the daemon under the user's own
//! identity, writing a pcap stream to the FIFO Wireshark reads.
//!
//! The extcap protocol (Wireshark's `doc/extcap.adoc`): `--extcap-interfaces`,
//! `--extcap-dlts`, `--extcap-config`, `--capture --fifo` and
//! `--extcap-capture-filter` (alone, to check a filter).

use std::{fs::OpenOptions, io::BufWriter, path::PathBuf, process::ExitCode};

use clap::Parser;
use libwire::{
    CaptureBuilder, Direction,
    savefile::{Format, LINKTYPE_ETHERNET, Writer},
};

/// What the interfaces' values start with.
const PREFIX: &str = "pktd:";

#[derive(Parser)]
#[command(version, about = "Wireshark extcap: capture through the pktd daemon")]
struct Args {
    /// List the interfaces.
    #[arg(long)]
    extcap_interfaces: bool,
    /// The Wireshark version asking (ignored).
    #[arg(long)]
    extcap_version: Option<String>,
    /// The interface asked about.
    #[arg(long)]
    extcap_interface: Option<String>,
    /// List the link types of the interface.
    #[arg(long)]
    extcap_dlts: bool,
    /// List the interface's options.
    #[arg(long)]
    extcap_config: bool,
    /// The capture filter (alone: only check it).
    #[arg(long)]
    extcap_capture_filter: Option<String>,
    /// Capture.
    #[arg(long)]
    capture: bool,
    /// Where to write the packets (a pcap stream).
    #[arg(long)]
    fifo: Option<PathBuf>,
    /// Control pipes (unused).
    #[arg(long)]
    extcap_control_in: Option<PathBuf>,
    #[arg(long)]
    extcap_control_out: Option<PathBuf>,
    /// Option: bytes kept of each packet.
    #[arg(long, default_value_t = 262_144)]
    snaplen: u32,
    /// Option: which packets: in, out or inout.
    #[arg(long, default_value = "inout")]
    direction: String,
    /// pktd's socket.
    #[arg(long, env = "PKTD_SOCKET", default_value = libwire::DEFAULT_SOCKET)]
    socket: PathBuf,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pktd-extcap: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(err) => {
            // Wireshark shows what an extcap prints on standard error.
            eprintln!("pktd-extcap: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.extcap_interfaces {
        return interfaces(&args).await;
    }
    let Some(value) = &args.extcap_interface else {
        anyhow::bail!("no --extcap-interface given");
    };
    let (netns, interface) = parse_value(value)?;
    if args.extcap_dlts {
        println!("dlt {{number={LINKTYPE_ETHERNET}}}{{name=EN10MB}}{{display=Ethernet}}");
        return Ok(ExitCode::SUCCESS);
    }
    if args.extcap_config {
        config();
        return Ok(ExitCode::SUCCESS);
    }
    if args.capture {
        return capture(&args, netns, interface).await;
    }
    if let Some(filter) = &args.extcap_capture_filter {
        // A filter check: what libpcap says of it.
        return Ok(match pktd_filter::compile(filter, true, args.snaplen) {
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                println!("{err}");
                ExitCode::FAILURE
            }
        });
    }
    anyhow::bail!("nothing asked (--extcap-dlts, --extcap-config or --capture)")
}

/// `--extcap-interfaces`: one line per interface the policy allows.
async fn interfaces(args: &Args) -> anyhow::Result<ExitCode> {
    println!(
        "extcap {{version={}}}{{help=https://github.com/pktd/pktd}}",
        env!("CARGO_PKG_VERSION")
    );
    // Without a daemon (or a principal) Wireshark lists no pktd interface;
    // its other interfaces are not this program's to hide.
    let listed = match libwire::list_interfaces(&args.socket).await {
        Ok(listed) => listed,
        Err(err) => {
            eprintln!("pktd-extcap: {err}");
            return Ok(ExitCode::SUCCESS);
        }
    };
    for interface in listed {
        // A namespace's owner names its links: nothing that would break
        // extcap's {key=value} lines (or a terminal) goes through.
        let printable = |text: &str| {
            text.chars()
                .all(|c| c.is_ascii_graphic() && c != '{' && c != '}')
        };
        if !printable(&interface.name) || !printable(&interface.netns) {
            eprintln!("pktd-extcap: an interface with an unprintable name is left out");
            continue;
        }
        let (value, display) = if interface.netns.is_empty() {
            (
                format!("{PREFIX}{}", interface.name),
                format!("pktd: {}", interface.name),
            )
        } else {
            (
                format!("{PREFIX}{}@{}", interface.name, interface.netns),
                format!("pktd: {} (netns {})", interface.name, interface.netns),
            )
        };
        println!("interface {{value={value}}}{{display={display}}}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `pktd:NAME` or `pktd:NAME@NETNS` (a namespace name has no `@`).
fn parse_value(value: &str) -> anyhow::Result<(String, String)> {
    let Some(rest) = value.strip_prefix(PREFIX) else {
        anyhow::bail!("{value:?} is not a pktd interface");
    };
    Ok(match rest.rsplit_once('@') {
        Some((interface, netns)) => (netns.to_owned(), interface.to_owned()),
        None => (String::new(), rest.to_owned()),
    })
}

/// `--extcap-config`: the options Wireshark shows.
fn config() {
    println!(
        "arg {{number=0}}{{call=--snaplen}}{{display=Snapshot length}}{{type=integer}}{{range=1,262144}}{{default=262144}}{{tooltip=Bytes kept of each packet}}"
    );
    println!(
        "arg {{number=1}}{{call=--direction}}{{display=Direction}}{{type=selector}}{{tooltip=Which packets to capture}}"
    );
    println!("value {{arg=1}}{{value=inout}}{{display=Received and sent}}{{default=true}}");
    println!("value {{arg=1}}{{value=in}}{{display=Received}}");
    println!("value {{arg=1}}{{value=out}}{{display=Sent}}");
}

/// `--capture`: packets to the FIFO until Wireshark stops reading or
/// stops this program.
async fn capture(args: &Args, netns: String, interface: String) -> anyhow::Result<ExitCode> {
    let Some(fifo) = &args.fifo else {
        anyhow::bail!("--capture needs --fifo");
    };
    let direction = match args.direction.as_str() {
        "in" => Direction::In,
        "out" => Direction::Out,
        "inout" => Direction::InOut,
        other => anyhow::bail!("--direction {other:?}: in, out or inout"),
    };
    let mut builder = CaptureBuilder::new(&interface)
        .socket(&args.socket)
        .direction(direction)
        .snaplen(args.snaplen.clamp(1, 262_144))
        .filter(args.extcap_capture_filter.clone().unwrap_or_default());
    if !netns.is_empty() {
        builder = builder.netns(&netns);
    }
    let mut capture = builder.open().await?;
    let file = OpenOptions::new().write(true).open(fifo)?;
    let mut writer = Writer::new(
        BufWriter::with_capacity(64 * 1024, file),
        Format::Pcap,
        LINKTYPE_ETHERNET,
        capture.snaplen(),
    )?;
    writer.flush()?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        while let Some(packet) = capture.try_next_packet_ref()? {
            writer.write_packet(packet.timestamp_ns(), packet.wire_len(), packet.data())?;
        }
        // Wireshark shows what it has read: nothing waits in the buffer.
        if writer.flush().is_err() {
            // The reader has gone.
            break;
        }
        tokio::select! {
            next = capture.next_packet_ref() => {
                let Some(packet) = next? else { break };
                let written = writer.write_packet(packet.timestamp_ns(), packet.wire_len(), packet.data());
                if written.is_err() {
                    break;
                }
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    let _ = writer.flush();
    let _ = capture.close().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_the_interface_and_its_namespace() {
        assert_eq!(
            parse_value("pktd:eth0").unwrap(),
            (String::new(), "eth0".to_owned())
        );
        assert_eq!(
            parse_value("pktd:veth0@lab-1").unwrap(),
            ("lab-1".to_owned(), "veth0".to_owned())
        );
        assert_eq!(
            parse_value("pktd:we@ird@lab").unwrap(),
            ("lab".to_owned(), "we@ird".to_owned())
        );
        assert!(parse_value("eth0").is_err());
    }
}
