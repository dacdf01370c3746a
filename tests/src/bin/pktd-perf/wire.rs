//! (b) and (c): end to end on a veth pair between two namespaces. A
//! sendmmsg(2) sender on CPU 0 in one namespace; in the other, K capture
//! clients on CPU 1, either pktcap processes of one pktd daemon or tcpdump
//! processes, alternating per repetition so that both see the same machine.
//! As on any veth, the receive path (and with it every capture hook) runs
//! on the sending CPU: capture cost shows as a lower packet rate.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use pktd_daemon::{
    Options,
    capture::{Engine, HookChoice},
    policy::Policy,
};
use pktd_tests::{corpus, daemon::TestDaemon, netlab::Lab, process::Running, sys};

use crate::{Spread, json_string};

/// Frames per sendmmsg call.
const BATCH: usize = 64;
/// Hard cap on frames per run, whatever the duration.
const MAX_FRAMES: u64 = 100_000_000;
/// Port of the traffic no client wants.
const UNMATCHED_PORT: u16 = 20000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    None,
    /// pktcap reading its ring in place (the default).
    Pktd,
    /// pktcap `--no-zero-copy`: the daemon forwards the packets.
    PktdForwarded,
    /// pktcap as [`ANONYMIZED_UID`], whose principal the privacy phase
    /// anonymizes.
    PktdAnonymized,
    Tcpdump,
    /// A recording: the daemon writes the savefile itself.
    PktdRecording,
    /// `tcpdump -w FILE`.
    TcpdumpFile,
}

/// The uid (and gid) pktcap runs as for [`Backend::PktdAnonymized`].
pub const ANONYMIZED_UID: u32 = 4344;

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::None => "none",
            Backend::Pktd => "pktd",
            Backend::PktdForwarded => "pktd-fwd",
            Backend::PktdAnonymized => "pktd-anon",
            Backend::Tcpdump => "tcpdump",
            Backend::PktdRecording => "pktd-rec",
            Backend::TcpdumpFile => "tcpdump-w",
        }
    }
}

/// What one client reported at the end (tcpdump's closing counts).
#[derive(Clone, Copy, Debug, Default)]
pub struct ClientCounts {
    pub captured: u64,
    pub dropped: u64,
}

/// One run.
pub struct Run {
    pub backend: Backend,
    pub clients: usize,
    /// Packets per second the receiver got in the window.
    pub rx_pps: f64,
    /// Frames the receiver got over the whole sender run.
    pub received: u64,
    /// Of those, the ones some client's filter matches.
    pub matching: u64,
    pub counts: Vec<ClientCounts>,
    /// CPU time of the capture processes, and of the daemon for pktd
    /// (every thread of this process but the sender's), per packet a
    /// client captured in the measured window, in nanoseconds.
    pub cpu_ns_per_packet: Option<f64>,
    /// Of that, the daemon's.
    pub daemon_cpu_ns_per_packet: Option<f64>,
}

impl Run {
    pub fn captured(&self) -> u64 {
        self.counts.iter().map(|c| c.captured).sum()
    }

    pub fn dropped(&self) -> u64 {
        self.counts.iter().map(|c| c.dropped).sum()
    }

    pub fn json(&self, rep: usize) -> String {
        let clients: Vec<String> = self
            .counts
            .iter()
            .map(|c| format!("{{\"captured\":{},\"dropped\":{}}}", c.captured, c.dropped))
            .collect();
        format!(
            "{{\"backend\":{},\"k\":{},\"rep\":{rep},\"rx_pps\":{:.0},\"received\":{},\"matching\":{},\"cpu_ns_per_packet\":{},\"per_client\":[{}]}}",
            json_string(self.backend.name()),
            self.clients,
            self.rx_pps,
            self.received,
            self.matching,
            self.cpu_ns_per_packet
                .map_or("null".to_owned(), |ns| format!("{ns:.1}")),
            clients.join(",")
        )
    }
}

pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    pub engine: Engine,
    pub hook: HookChoice,
    pub buffer_kib: u32,
}

/// The lab, the daemon and the tools, for all runs.
pub struct Bench {
    lab: Lab,
    daemon: TestDaemon,
    pktcap: PathBuf,
    peer_mac: [u8; 6],
    settings: Settings,
}

impl Bench {
    pub fn new(settings: Settings) -> anyhow::Result<Self> {
        let pktcap = std::env::current_exe()?
            .parent()
            .context("the binary's directory")?
            .join("pktcap");
        if !pktcap.exists() {
            bail!(
                "{} is not built (cargo xtask perf builds it)",
                pktcap.display()
            );
        }
        // The daemon's threads (and everything started from here) on CPU 1,
        // the receive path's CPU 0 left to the sender.
        sys::pin_thread(1).context("pinning to CPU 1")?;
        let lab = Lab::new();
        let peer_mac = mac_of(&lab.capture_ns, &lab.capture_if)?;
        let daemon = TestDaemon::start_with(
            Policy::default_policy(),
            Options {
                engine: settings.engine,
                hook: settings.hook,
                compile_helper: pktcap.parent().map(|dir| dir.join("pktd")),
                ..Options::default()
            },
        );
        Ok(Self {
            lab,
            daemon,
            pktcap,
            peer_mac,
            settings,
        })
    }

    /// 2 * 64 frames: every other one to a port the `clients` filters
    /// share out evenly (`udp dst port 9000+i`), the others to a port no
    /// filter wants; with `match_all`, all to the clients.
    fn frames(&self, clients: usize) -> Vec<Vec<u8>> {
        self.frames_of(clients, 18)
    }

    /// [`Bench::frames`] with `payload` bytes of UDP payload each (18: 60-
    /// byte frames).
    fn frames_of(&self, clients: usize, payload: usize) -> Vec<Vec<u8>> {
        let subnet = self.lab.subnet;
        let payload = vec![0x5a; payload];
        (0..2 * BATCH)
            .map(|index| {
                let port = if index % 2 == 0 {
                    9000 + ((index / 2) % clients.max(1)) as u16
                } else {
                    UNMATCHED_PORT
                };
                corpus::ipv4_udp_frame(
                    self.peer_mac,
                    [2, 0, 0, 0, 0, 1],
                    [10, 77, subnet, 1],
                    [10, 77, subnet, 2],
                    40000,
                    port,
                    &payload,
                )
            })
            .collect()
    }

    /// Filters of `clients` clients: `udp dst port 9000+i`, or `udp` for
    /// every one with `match_all`.
    fn filters(clients: usize, match_all: bool) -> Vec<String> {
        (0..clients)
            .map(|i| {
                if match_all {
                    "udp".to_owned()
                } else {
                    format!("udp dst port {}", 9000 + i)
                }
            })
            .collect()
    }

    pub fn run(&self, backend: Backend, clients: usize, match_all: bool) -> anyhow::Result<Run> {
        let matching_share = if match_all {
            1.0
        } else if clients == 0 {
            0.0
        } else {
            0.5
        };
        self.run_with(
            backend,
            &Self::filters(clients, match_all),
            self.frames(clients),
            matching_share,
        )
    }

    /// [`Bench::run`] on VLAN-tagged traffic (TCI 100, 802.1Q; the
    /// receive path moves the tag into skb metadata before TC), half of it
    /// matching `vlan and udp dst port 9000+i`.
    pub fn run_tagged(&self, backend: Backend, clients: usize) -> anyhow::Result<Run> {
        let filters: Vec<String> = (0..clients)
            .map(|i| format!("vlan and udp dst port {}", 9000 + i))
            .collect();
        let frames = self
            .frames(clients)
            .iter()
            .map(|frame| corpus::vlan_tag(frame, 0x8100, 100))
            .collect();
        let share = if clients == 0 { 0.0 } else { 0.5 };
        self.run_with(backend, &filters, frames, share)
    }

    /// One run: `backend`'s clients with `filters`, `frames` round and
    /// round, `matching_share` of them for the clients.
    fn run_with(
        &self,
        backend: Backend,
        filters: &[String],
        frames: Vec<Vec<u8>>,
        matching_share: f64,
    ) -> anyhow::Result<Run> {
        self.run_writing(
            backend,
            filters,
            frames,
            matching_share,
            Path::new("/dev/null"),
        )
    }

    /// [`Bench::run_with`], the clients writing their savefiles to
    /// `output`.
    fn run_writing(
        &self,
        backend: Backend,
        filters: &[String],
        frames: Vec<Vec<u8>>,
        matching_share: f64,
        output: &Path,
    ) -> anyhow::Result<Run> {
        let clients = filters.len();
        let mut started = Clients::default();
        for filter in filters {
            let mut command = match backend {
                Backend::None | Backend::PktdRecording => break,
                Backend::Pktd | Backend::PktdForwarded | Backend::PktdAnonymized => {
                    let mut command = Command::new(&self.pktcap);
                    command
                        .arg("--socket")
                        .arg(&self.daemon.socket)
                        .args(["--netns", &self.lab.capture_ns]);
                    if backend == Backend::PktdForwarded {
                        command.arg("--no-zero-copy");
                    }
                    if backend == Backend::PktdAnonymized {
                        command.uid(ANONYMIZED_UID).gid(ANONYMIZED_UID);
                    }
                    command
                }
                Backend::Tcpdump | Backend::TcpdumpFile => {
                    let mut command = Command::new("ip");
                    command.args(["netns", "exec", &self.lab.capture_ns, "tcpdump"]);
                    command
                }
            };
            command
                .args(["-i", &self.lab.capture_if, "-Q", "in", "-n", "-w"])
                .arg(output)
                .args(["-B", &self.settings.buffer_kib.to_string()]);
            if backend == Backend::TcpdumpFile {
                // Debian's tcpdump drops to its own user before writing.
                command.args(["-Z", "root"]);
            }
            command.arg(filter);
            let mut running = Running::spawn(command);
            if !running.wait_for_stderr("listening on", Duration::from_secs(30)) {
                bail!(
                    "{} client did not start: {:?}",
                    backend.name(),
                    running.stderr_lines
                );
            }
            started.0.push(running);
        }

        let pids: Vec<u32> = started.0.iter().map(|client| client.child.id()).collect();
        let with_daemon = !matches!(
            backend,
            Backend::None | Backend::Tcpdump | Backend::TcpdumpFile
        );
        let cpu = |sender: i32| -> [ThreadTimes; 2] {
            let mut clients = ThreadTimes::default();
            for &pid in &pids {
                clients.add_process(pid, &[]);
            }
            let mut daemon = ThreadTimes::default();
            if with_daemon {
                // The daemon's threads: all of this process's but the
                // sender's and the harness's own (the main thread).
                daemon.add_process(std::process::id(), &[sender, std::process::id() as i32]);
            }
            [clients, daemon]
        };
        let traffic = self.traffic_measured(frames, &cpu)?;
        let counts = started.stop()?;
        let captured_in_window = traffic.window_received as f64 * matching_share;
        Ok(Run {
            backend,
            clients,
            rx_pps: traffic.rx_pps,
            received: traffic.received,
            matching: (traffic.received as f64 * matching_share).round() as u64,
            counts,
            cpu_ns_per_packet: (backend != Backend::None && captured_in_window > 0.0).then(|| {
                (traffic.window_cpu_ns[0] + traffic.window_cpu_ns[1]) as f64 / captured_in_window
            }),
            daemon_cpu_ns_per_packet: (backend != Backend::None && captured_in_window > 0.0)
                .then(|| traffic.window_cpu_ns[1] as f64 / captured_in_window),
        })
    }

    /// One match-all savefile writer at the highest rate: a recording of
    /// the daemon's (pattern `NAME-%d.pcap` in the policy's directory for
    /// root, `directory`) or `tcpdump -w` to a file in `directory`. The
    /// packets captured are those in the file once it is closed.
    pub fn run_recording(&self, backend: Backend, directory: &Path) -> anyhow::Result<Run> {
        let pattern = format!("{}-%d.pcap", backend.name());
        let recording = match backend {
            Backend::PktdRecording => {
                let output = Command::new(&self.pktcap)
                    .arg("--socket")
                    .arg(&self.daemon.socket)
                    .args(["--netns", &self.lab.capture_ns])
                    .args(["-i", &self.lab.capture_if, "-Q", "in", "-n"])
                    .args(["-B", &self.settings.buffer_kib.to_string()])
                    .args(["--record", &pattern, "udp"])
                    .output()?;
                let stdout = String::from_utf8_lossy(&output.stdout);
                let id = stdout
                    .strip_prefix("recording ")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|id| id.parse::<u64>().ok())
                    .with_context(|| {
                        format!(
                            "pktcap --record: {stdout} {}",
                            String::from_utf8_lossy(&output.stderr)
                        )
                    })?;
                Some(id)
            }
            Backend::TcpdumpFile => None,
            other => bail!("{} writes no savefile", other.name()),
        };
        // The daemon writes in root's own directory (uid 0) of the
        // policy's; tcpdump next to it, on the same filesystem.
        let file = match backend {
            Backend::PktdRecording => directory.join("0"),
            _ => directory.to_owned(),
        }
        .join(pattern.replace("%d", "0"));
        let mut run = self.run_writing(
            backend,
            &Self::filters(usize::from(recording.is_none()), true),
            self.frames(1),
            1.0,
            &file,
        )?;
        if let Some(id) = recording {
            let output = Command::new(&self.pktcap)
                .arg("--socket")
                .arg(&self.daemon.socket)
                .args(["--stop", &id.to_string()])
                .output()?;
            if !output.status.success() {
                bail!(
                    "pktcap --stop {id}: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            run.clients = 1;
        }
        let mut reader = pktd_pcap::savefile::Reader::new(std::io::BufReader::new(
            std::fs::File::open(&file).with_context(|| format!("{}", file.display()))?,
        ))?;
        let mut captured = 0;
        while reader.next_packet()?.is_some() {
            captured += 1;
        }
        std::fs::remove_file(&file)?;
        run.counts = vec![ClientCounts {
            captured,
            dropped: run.counts.first().map_or(0, |c| c.dropped),
        }];
        Ok(run)
    }

    /// The receiver's packet rate with no client of the bench's own: the
    /// traffic of K=0 (no frame matches `udp dst port 9000+i` filters
    /// beyond port 9000), for whatever sessions the caller has open.
    pub fn untapped_rate(&self) -> anyhow::Result<f64> {
        Ok(self.traffic(self.frames(0))?.0)
    }

    /// [`Bench::untapped_rate`] with frames of `length` bytes (at least 60).
    pub fn untapped_rate_of(&self, length: usize) -> anyhow::Result<f64> {
        Ok(self.traffic(self.frames_of(0, length.max(60) - 42))?.0)
    }

    /// The lab: its capture namespace and interface.
    pub fn lab(&self) -> &Lab {
        &self.lab
    }

    /// The daemon.
    pub fn daemon(&self) -> &TestDaemon {
        &self.daemon
    }

    /// Sends `frames` round and round for the warm-up and the measured
    /// window: the receiver's packet rate in the window, and the frames it
    /// got over the whole run (clients given time to drain).
    fn traffic(&self, frames: Vec<Vec<u8>>) -> anyhow::Result<(f64, u64)> {
        let traffic = self.traffic_measured(frames, &|_| Default::default())?;
        Ok((traffic.rx_pps, traffic.received))
    }

    /// [`Bench::traffic`], with `cpu(sender's thread id)` sampled at the
    /// window's start and end.
    fn traffic_measured(
        &self,
        frames: Vec<Vec<u8>>,
        cpu: &dyn Fn(i32) -> [ThreadTimes; 2],
    ) -> anyhow::Result<Traffic> {
        let before = rx_packets(&self.lab.capture_ns, &self.lab.capture_if)?;
        let stop = Arc::new(AtomicBool::new(false));
        let sender_tid = Arc::new(std::sync::atomic::AtomicI32::new(0));
        let sender = {
            let socket = self.lab.sender();
            let (stop, sender_tid) = (stop.clone(), sender_tid.clone());
            let limit = Instant::now() + self.settings.warmup + self.settings.duration * 2;
            std::thread::spawn(move || -> anyhow::Result<u64> {
                sender_tid.store(sys::thread_id(), Ordering::Relaxed);
                sys::pin_thread(0)?;
                let mut sent = 0u64;
                let mut batch = 0usize;
                while !stop.load(Ordering::Relaxed) && sent < MAX_FRAMES && Instant::now() < limit {
                    let frames = &frames[batch * BATCH..(batch + 1) * BATCH];
                    // ENOBUFS and the like: the queue is full, go on.
                    sent += socket.send_batch(frames).unwrap_or(0) as u64;
                    batch = 1 - batch;
                }
                Ok(sent)
            })
        };
        std::thread::sleep(self.settings.warmup);
        let sender_tid = sender_tid.load(Ordering::Relaxed);
        let start = (
            Instant::now(),
            rx_packets(&self.lab.capture_ns, &self.lab.capture_if)?,
            cpu(sender_tid),
        );
        std::thread::sleep(self.settings.duration);
        let end = (
            Instant::now(),
            rx_packets(&self.lab.capture_ns, &self.lab.capture_if)?,
            cpu(sender_tid),
        );
        stop.store(true, Ordering::Relaxed);
        sender
            .join()
            .map_err(|_| anyhow::anyhow!("the sender panicked"))??;
        // Let the clients drain what is queued before they are stopped.
        std::thread::sleep(Duration::from_millis(500));
        let after = rx_packets(&self.lab.capture_ns, &self.lab.capture_if)?;
        Ok(Traffic {
            rx_pps: (end.1 - start.1) as f64 / (end.0 - start.0).as_secs_f64(),
            received: after - before,
            window_received: end.1 - start.1,
            window_cpu_ns: [end.2[0].since(&start.2[0]), end.2[1].since(&start.2[1])],
        })
    }
}

/// What one round of traffic measured.
struct Traffic {
    /// The receiver's packet rate in the window.
    rx_pps: f64,
    /// Frames it got over the whole run.
    received: u64,
    /// Frames it got in the window.
    window_received: u64,
    /// What the CPU sampler counted in the window: the clients', the
    /// daemon's.
    window_cpu_ns: [u64; 2],
}

/// CPU time of threads, by (process, thread) id, in nanoseconds, from
/// `/proc/PID/task/TID/schedstat` (time on a CPU, to the nanosecond).
#[derive(Default)]
struct ThreadTimes(std::collections::HashMap<(u32, i32), u64>);

impl ThreadTimes {
    /// Every thread of process `pid` but those of `except`.
    fn add_process(&mut self, pid: u32, except: &[i32]) {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return;
        };
        for task in tasks.flatten() {
            let Ok(tid) = task.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if except.contains(&tid) {
                continue;
            }
            let ns = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|text| text.split_whitespace().next()?.parse::<u64>().ok());
            if let Some(ns) = ns {
                self.0.insert((pid, tid), ns);
            }
        }
    }

    /// CPU time spent since `earlier` by the threads alive now (a thread
    /// that ended in between is not counted, one that started is whole).
    fn since(&self, earlier: &ThreadTimes) -> u64 {
        self.0
            .iter()
            .map(|(id, ns)| ns.saturating_sub(earlier.0.get(id).copied().unwrap_or(0)))
            .sum()
    }
}

/// Started clients; killed if dropped before [`Clients::stop`].
#[derive(Default)]
struct Clients(Vec<Running>);

impl Clients {
    /// SIGINT to all, then their closing counts.
    fn stop(mut self) -> anyhow::Result<Vec<ClientCounts>> {
        for client in &self.0 {
            client.signal("INT");
        }
        let mut counts = Vec::new();
        for client in &mut self.0 {
            if client.wait(Duration::from_secs(30)).is_none() {
                bail!("a client did not stop on SIGINT");
            }
            counts.push(ClientCounts {
                captured: closing_count(&client.stderr_lines, "packets captured"),
                dropped: closing_count(&client.stderr_lines, "packets dropped by kernel"),
            });
        }
        self.0.clear();
        Ok(counts)
    }
}

impl Drop for Clients {
    fn drop(&mut self) {
        for client in &mut self.0 {
            let _ = client.child.kill();
            let _ = client.child.wait();
        }
    }
}

/// N of tcpdump's closing line "N `what`".
fn closing_count(lines: &[String], what: &str) -> u64 {
    lines
        .iter()
        .find_map(|line| {
            let count = line.trim().strip_suffix(what)?;
            count.trim().parse().ok()
        })
        .unwrap_or(0)
}

fn in_netns(netns: &str, args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(["netns", "exec", netns])
        .args(args)
        .output()
        .with_context(|| format!("running {args:?} in {netns}"))?;
    if !output.status.success() {
        bail!(
            "{args:?} in {netns}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

fn rx_packets(netns: &str, interface: &str) -> anyhow::Result<u64> {
    let path = format!("/sys/class/net/{interface}/statistics/rx_packets");
    Ok(in_netns(netns, &["cat", &path])?.parse()?)
}

fn mac_of(netns: &str, interface: &str) -> anyhow::Result<[u8; 6]> {
    let path = format!("/sys/class/net/{interface}/address");
    let text = in_netns(netns, &["cat", &path])?;
    let bytes: Vec<u8> = text
        .split(':')
        .map(|byte| u8::from_str_radix(byte, 16))
        .collect::<Result<_, _>>()?;
    bytes
        .try_into()
        .map_err(|_| anyhow::anyhow!("MAC address {text:?}"))
}

/// The median-of-repetitions summary of one (backend, K).
pub struct Summary {
    pub backend: Backend,
    pub clients: usize,
    pub rx_pps: Spread,
    pub captured: u64,
    pub matching: u64,
    pub dropped: u64,
    /// CPU per captured packet, when measured.
    pub cpu_ns: Option<Spread>,
}

pub fn summarize(runs: &[&Run]) -> Summary {
    let median_run = {
        let mut sorted: Vec<&&Run> = runs.iter().collect();
        sorted.sort_by(|a, b| a.rx_pps.total_cmp(&b.rx_pps));
        sorted[sorted.len() / 2]
    };
    Summary {
        backend: runs[0].backend,
        clients: runs[0].clients,
        rx_pps: Spread::of(runs.iter().map(|run| run.rx_pps).collect()),
        captured: median_run.captured(),
        matching: median_run.matching,
        dropped: median_run.dropped(),
        cpu_ns: {
            let cpu: Vec<f64> = runs
                .iter()
                .filter_map(|run| run.cpu_ns_per_packet)
                .collect();
            (!cpu.is_empty()).then(|| Spread::of(cpu))
        },
    }
}

pub fn chart(path: &Path, summaries: &[Summary], baseline: f64) -> anyhow::Result<()> {
    let data = path.with_extension("dat");
    let mut text = String::from("# k backend kept_pct low_pct high_pct\n");
    for backend in [Backend::Pktd, Backend::Tcpdump] {
        text.push_str(&format!("# {}\n", backend.name()));
        for summary in summaries
            .iter()
            .filter(|s| s.backend == backend || s.clients == 0)
        {
            let pct = |value: f64| 100.0 * value / baseline;
            text.push_str(&format!(
                "{} {:.2} {:.2} {:.2}\n",
                summary.clients,
                pct(summary.rx_pps.median),
                pct(summary.rx_pps.min),
                pct(summary.rx_pps.max)
            ));
        }
        text.push_str("\n\n");
    }
    std::fs::write(&data, text)?;
    let script = format!(
        "set terminal png size 900,560\n\
         set output '{png}'\n\
         set title 'Untapped traffic kept vs K=0, veth, half of the traffic matching (median, min-max)'\n\
         set xlabel 'capture clients K'\n\
         set ylabel 'receiver packet rate, % of K=0'\n\
         set logscale x 2\n\
         set xrange [0.7:90]\n\
         set xtics ('0' 0.8, '1' 1, '4' 4, '16' 16, '64' 64)\n\
         set yrange [0:110]\n\
         set grid\n\
         set key bottom left\n\
         plot '{dat}' index 0 using ($1==0?0.8:$1):2:3:4 with yerrorlines lw 2 title 'pktd', '{dat}' index 1 using ($1==0?0.8:$1):2:3:4 with yerrorlines lw 2 title 'tcpdump'\n",
        png = path.display(),
        dat = data.display()
    );
    let script_path = path.with_extension("gp");
    std::fs::write(&script_path, script)?;
    let status = Command::new("gnuplot")
        .arg(&script_path)
        .status()
        .context("running gnuplot")?;
    if !status.success() {
        bail!("gnuplot failed");
    }
    Ok(())
}
