//! `pktd`: parses flags, sets up logging, binds the socket, handles
//! signals, runs the daemon.

use std::{
    ffi::OsStr,
    os::fd::AsRawFd,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use clap::Parser;
use pktd_daemon::{
    ConnectionLimits, PolicyStore,
    capture::{Attachment, Engine, Hook, HookChoice},
    compiler,
    policy::Policy,
    scrape::http::MetricsOptions,
    service::{self, State},
};
use rustix::fs::{AtFlags, FileType, Mode, chmodat, statat, unlinkat};
use signal_hook::{
    consts::{SIGHUP, SIGINT, SIGTERM},
    iterator::Signals,
};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(
    version,
    about = "packet capture and injection multiplexer",
    long_about = "pktd owns the network devices on behalf of unprivileged tools. They ask it, \
                  through libwire (pktcap, pktd-extcap, libwire.so), to capture with a tcpdump \
                  filter, to record traces or to inject packets; the policy file decides, per \
                  user and group, which traffic each may see, how much of each packet, how much \
                  in total, where it may write and what it may inject. See pktd-policy(5)."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Subcommand>,
    /// Unix socket clients connect to.
    #[arg(long, global = true, default_value = "/run/pktd/pktd.sock")]
    socket: PathBuf,
    /// Policy file (TOML). Without one, root may do everything and everyone
    /// else nothing. SIGHUP reloads it.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Load the kernel program and the policy, report, and exit.
    #[arg(long)]
    check: bool,
    /// How filters run in the kernel: `shared` (native code, one decision
    /// program sharing the filters' common tests), `per-client` (native
    /// code, one program per client, at most 32) or `interpreter`. Filters
    /// the kernel refuses as native code are interpreted in any case.
    #[arg(long, default_value = "shared")]
    engine: Engine,
    /// Where to attach: `auto` (XDP while every session on an interface
    /// wants received packets only and its driver runs XDP on its own
    /// receive buffers, which veth does not; TC otherwise, moving there
    /// when a session wants sent packets), `tc`, or `xdp` (sessions
    /// wanting sent packets are refused).
    #[arg(long, default_value = "auto")]
    hook: HookChoice,
    /// Seconds a client's filter expression may take to compile; its
    /// sandboxed compile helper is killed then, and the request refused.
    #[arg(long, default_value_t = compiler::DEFAULT_DEADLINE.as_secs_f64(), value_parser = deadline)]
    compile_deadline: f64,
    /// Connections one user may have at once (root: no limit).
    #[arg(long, default_value_t = ConnectionLimits::default().per_uid)]
    max_connections_per_user: u32,
    /// Connections all users but root may have at once.
    #[arg(long, default_value_t = ConnectionLimits::default().total)]
    max_connections: u32,
    /// Seconds a connection without a capture may stay silent.
    #[arg(long, default_value_t = ConnectionLimits::default().idle.as_secs_f64(), value_parser = deadline)]
    idle_timeout: f64,
    /// Seconds writing one reply may take; a client reading no faster is
    /// dropped.
    #[arg(long, default_value_t = ConnectionLimits::default().write.as_secs_f64(), value_parser = deadline)]
    write_timeout: f64,
    /// Serve the metrics (OpenMetrics text, for Prometheus) at
    /// http://ADDR/metrics, e.g. 127.0.0.1:9477 or [::]:9477.
    #[arg(long, value_name = "ADDR", requires = "metrics_token_file")]
    metrics: Option<std::net::SocketAddr>,
    /// The bearer token every scrape must carry (the metrics name every
    /// user's sessions): a file only pktd's user may read, of 16 or more
    /// printable characters.
    #[arg(long, value_name = "FILE", requires = "metrics")]
    metrics_token_file: Option<PathBuf>,
    /// Keep each running recording here (root's alone, made 0700) so that
    /// it goes on after a restart, a crash or SIGKILL: resumed at the next
    /// start under the policy then in force, continuing its file numbers,
    /// its last file cut back to its last whole record. Without it,
    /// recordings end with the daemon. The packaged service uses
    /// /var/lib/pktd/state.
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// The container runtime's CRI socket, through which pods' network
    /// namespaces are found (`pod:NAMESPACE/NAME`). Without it, containerd's
    /// /run/containerd/containerd.sock or CRI-O's /run/crio/crio.sock,
    /// whichever exists.
    #[arg(long, value_name = "PATH")]
    cri_socket: Option<PathBuf>,
    /// Print the man page or shell completions to standard output and exit
    /// (for packagers).
    #[arg(long, hide = true, value_enum, value_name = "WHAT")]
    generate: Option<Generated>,
}

/// pktd(8)'s sections beyond the flags.
const MAN_SECTIONS: &str = r#".SH SIGNALS
.TP
\fBSIGHUP\fR
Reload the policy file. A file that does not parse or check keeps the old
policy (the error is logged); running sessions are held to the new one.
.TP
\fBSIGTERM\fR, \fBSIGINT\fR
End every session (clients are told "daemon restarting"), detach the kernel
programs, remove the socket and exit. With \fB\-\-state\-dir\fR, running
recordings are kept and go on at the next start. A second one exits at once.
.SH SYSTEMD
Started by \fBpktd.socket\fR, pktd takes the listening socket it is handed
(the LISTEN_FDS protocol) instead of binding \fB\-\-socket\fR, and tells the
service manager when it is ready, reloading and stopping (sd_notify).
.SH FILES
.TP
\fI/etc/pktd/policy.toml\fR
The policy (\fB\-\-policy\fR), see \fBpktd-policy\fR(5).
.TP
\fI/run/pktd/pktd.sock\fR
The socket clients connect to; its directory must be root's alone.
.TP
\fI/var/lib/pktd/state\fR
The packaged service's \fB\-\-state\-dir\fR: one JSON file per running
recording.
.SH EXIT STATUS
0 after a clean shutdown or a successful \fB\-\-check\fR; 1 on an error
(the reason is printed).
.SH SEE ALSO
\fBpktcap\fR(1), \fBpktd-policy\fR(5), \fBtcpdump\fR(8), \fBpcap-filter\fR(7),
\fBsystemd.socket\fR(5)
"#;

/// What `--generate` prints.
#[derive(Clone, Copy, clap::ValueEnum)]
enum Generated {
    /// pktd(8), roff.
    Man,
    Bash,
    Zsh,
    Fish,
}

/// Prints what `--generate` asks for, from the flags' own definitions
/// (clap_mangen, clap_complete).
fn generate(what: Generated) -> std::io::Result<()> {
    use clap::CommandFactory as _;
    use clap_complete::Shell;
    let mut command = Args::command().name("pktd");
    let out = &mut std::io::stdout().lock();
    let shell = match what {
        Generated::Man => {
            clap_mangen::Man::new(command).section("8").render(out)?;
            return std::io::Write::write_all(out, MAN_SECTIONS.as_bytes());
        }
        Generated::Bash => Shell::Bash,
        Generated::Zsh => Shell::Zsh,
        Generated::Fish => Shell::Fish,
    };
    clap_complete::generate(shell, &mut command, "pktd", out);
    Ok(())
}

/// A deadline in seconds: positive and finite.
fn deadline(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds in (0, 3600]")),
    }
}

#[derive(clap::Subcommand)]
enum Subcommand {
    /// Performance statistics of the running daemon, every INTERVAL seconds:
    /// per interface packets/s, Mbit/s, bytes per packet, drop rate, SYN/s,
    /// SYN-ACK/s, sessions; per session delivered/s and dropped/s. Root sees
    /// everything, anyone else only their own sessions.
    Stats {
        /// Seconds between reports.
        #[arg(long, default_value_t = 5.0)]
        interval: f64,
        /// Stop after this many reports (default: until interrupted).
        #[arg(long)]
        count: Option<u64>,
        /// Also append the rows as CSV to FILE.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<ExitCode> {
    // A compile helper confines itself before anything else runs: no
    // runtime, no threads, no logging.
    if std::env::args_os().nth(1).as_deref() == Some(OsStr::new(compiler::HELPER_ARG)) {
        return Ok(compiler::run_helper());
    }
    // While no thread runs: this reads and clears the environment.
    let inherited = service::inherited_listener();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(what) = args.generate {
        generate(what).context("writing to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Subcommand::Stats {
        interval,
        count,
        csv,
    }) = args.command
    {
        runtime()?.block_on(pktd_daemon::report::watch(
            &args.socket,
            interval,
            count,
            csv.as_deref(),
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    let inherited = inherited?;
    // Before any thread starts: every thread inherits what is left.
    pktd_daemon::privileges::give_up().context("giving up privileges")?;
    runtime()?.block_on(serve(args, inherited))?;
    Ok(ExitCode::SUCCESS)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Runtime::new().context("starting the runtime")
}

/// Serves on the socket the service manager handed over, or on
/// `--socket`.
async fn serve(
    args: Args,
    inherited: Option<std::os::unix::net::UnixListener>,
) -> anyhow::Result<()> {
    if let Some(socket) = &args.cri_socket {
        pktd_daemon::cri::set_socket(socket.clone());
    }
    let policy = load_policy(args.policy.as_deref())?;
    let metrics = match (args.metrics, &args.metrics_token_file) {
        (Some(addr), Some(token)) => {
            Some(MetricsOptions::new(addr, token).map_err(anyhow::Error::msg)?)
        }
        _ => None,
    };
    // Proves the embedded program passes this kernel's verifier before
    // anything is served.
    drop(Attachment::detached(args.engine, Hook::Tc).context("loading the kernel program")?);
    if args.check {
        println!("kernel program and policy OK");
        return Ok(());
    }
    // Every connection and session holds descriptors: allow as many as
    // the hard limit does, so that the connection limits bind first (no
    // capability needed: the soft limit only rises to the hard one).
    if let Err(err) = pktd_daemon::raise_open_files_limit() {
        tracing::warn!(%err, "cannot raise the open files limit");
    }
    // A socket pktd bound is pktd's to remove; one handed over is the
    // service manager's.
    let (listener, bound_here) = match inherited {
        Some(listener) => {
            tracing::info!("serving on the socket the service manager handed over");
            let listener = tokio::net::UnixListener::from_std(listener)
                .context("the socket the service manager handed over")?;
            (listener, false)
        }
        None => (bind(&args.socket)?, true),
    };
    let store = PolicyStore::new(policy);
    let shutdown = CancellationToken::new();
    handle_signals(store.clone(), args.policy.clone(), shutdown.clone())?;
    tracing::info!(socket = %args.socket.display(), engine = %args.engine, hook = %args.hook, "pktd serving");
    service::notify(State::Ready("serving"));
    let options = pktd_daemon::Options {
        engine: args.engine,
        hook: args.hook,
        compile_helper: None,
        compile_deadline: Duration::from_secs_f64(args.compile_deadline),
        connections: ConnectionLimits {
            per_uid: args.max_connections_per_user,
            total: args.max_connections,
            idle: Duration::from_secs_f64(args.idle_timeout),
            write: Duration::from_secs_f64(args.write_timeout),
            ..ConnectionLimits::default()
        },
        metrics,
        state_directory: args.state_dir.clone(),
    };
    pktd_daemon::run_with(listener, store, shutdown, options).await?;
    if bound_here {
        let _ = std::fs::remove_file(&args.socket);
    }
    Ok(())
}

fn load_policy(path: Option<&Path>) -> anyhow::Result<Policy> {
    match path {
        None => Ok(Policy::default_policy()),
        Some(path) => Ok(Policy::from_file(path)?),
    }
}

/// Signals are handled on a thread of their own, which nothing the daemon
/// does can block; it only dispatches. SIGHUP wakes a reload thread, which
/// reads and compiles the new policy (a bad file keeps the old one);
/// signals that come while a reload runs are folded into one more.
/// SIGTERM and SIGINT shut down; a second one exits at once (with TCX and
/// XDP links, kernel 6.6 and later, the kernel detaches the programs when
/// the process dies; older kernels' netlink TC filters would stay).
fn handle_signals(
    store: Arc<PolicyStore>,
    path: Option<PathBuf>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut signals = Signals::new([SIGHUP, SIGTERM, SIGINT]).context("handling signals")?;
    let (reload, reloads) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("pktd-reload".into())
        .spawn(move || {
            for () in reloads {
                service::notify(State::Reloading);
                match load_policy(path.as_deref()) {
                    Ok(policy) => {
                        store.replace(policy);
                        tracing::info!("policy reloaded");
                        service::notify(State::Ready("serving (policy reloaded)"));
                    }
                    Err(err) => {
                        tracing::error!("policy reload failed, keeping the old policy: {err:#}");
                        service::notify(State::Ready(
                            "serving (policy reload failed, the old policy kept)",
                        ));
                    }
                }
            }
        })
        .context("starting the reload thread")?;
    std::thread::Builder::new()
        .name("pktd-signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                match signal {
                    // Full: a reload is already due, which will read the
                    // file as it is now.
                    SIGHUP => drop(reload.try_send(())),
                    _ if shutdown.is_cancelled() => {
                        tracing::warn!("second termination signal: exiting now");
                        std::process::exit(1);
                    }
                    _ => {
                        tracing::info!("shutting down");
                        service::notify(State::Stopping);
                        shutdown.cancel();
                    }
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Binds the socket, replacing a stale socket file (never anything else),
/// open to every local user: the policy decides what each may do. Its
/// directory is opened without following links and must be root's alone
/// (`pktd_daemon::paths`); the socket is made through that descriptor.
fn bind(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        bail!("--socket {} is not a path to a file", path.display());
    };
    let dir_fd = pktd_daemon::paths::open_root_directory(dir)
        .with_context(|| format!("the socket's directory {}", dir.display()))?;
    match statat(&dir_fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if FileType::from_raw_mode(stat.st_mode) == FileType::Socket => {
            unlinkat(&dir_fd, name, AtFlags::empty())
                .with_context(|| format!("removing the stale socket {}", path.display()))?
        }
        Ok(_) => bail!("{} exists and is not a socket", path.display()),
        Err(rustix::io::Errno::NOENT) => {}
        Err(err) => bail!("inspecting {}: {err}", path.display()),
    }
    // Through the descriptor: whatever happens to the path meanwhile, the
    // socket lands in the directory that was checked.
    let through = Path::new("/proc/self/fd")
        .join(dir_fd.as_raw_fd().to_string())
        .join(name);
    let listener = tokio::net::UnixListener::bind(&through)
        .with_context(|| format!("binding {}", path.display()))?;
    chmodat(&dir_fd, name, Mode::from_raw_mode(0o666), AtFlags::empty())
        .with_context(|| format!("opening {} to every user", path.display()))?;
    Ok(listener)
}
