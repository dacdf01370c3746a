//! One loaded copy of the kernel program and its client slots.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, Map, MapData, PerCpuArray, PerCpuValues, RingBuf},
    programs::{
        SchedClassifier, TcAttachType, TestRun, TestRunOptions, Xdp, XdpMode,
        tc::SchedClassifierLinkId,
    },
    util::nr_cpus,
};
use pktd_common::{
    ClientConfig, ClientCounters, ClientUsage, DIR_IN, DIR_OUT, FilterProgram, Globals,
    InterfaceCounters, MAX_CAPLEN, MAX_CLIENTS, MAX_INSNS, MODE_CAPTURE, MODE_COUNT, PREFIX_LEN,
    jump, names,
};
use pktd_filter::ValidProgram;
use pktd_translate::{Filter, Hook, MapFds, Sharing};

use super::{
    CaptureError, Record,
    native::{self, Engine, MAX_CHAIN, NativeError, SlotEngine},
};
use crate::{netns::Netns, sys};

/// The compiled kernel program, embedded at build time.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/pktd-ebpf"));

/// Smallest and largest ring buffer a client may have.
const MIN_RING_BYTES: u32 = 4096;
const MAX_RING_BYTES: u32 = 1 << 30;

/// What a client asks of its slot (already cut to what policy allows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// DIR_IN, DIR_OUT or both.
    pub directions: u32,
    /// Most bytes captured per packet (1..=65535; more is cut to 65535).
    pub snaplen: u32,
    /// Most packets delivered; 0 = no limit.
    pub packet_quota: u64,
    /// Most captured bytes delivered; 0 = no limit.
    pub byte_quota: u64,
    /// Ring buffer size in bytes, rounded up to a power of two >= 4096.
    pub ring_bytes: u32,
    /// Count matching packets and bytes only; copy none (statistics mode).
    pub count_only: bool,
}

impl Default for ClientSpec {
    fn default() -> Self {
        Self {
            directions: DIR_IN | DIR_OUT,
            snaplen: MAX_CAPLEN,
            packet_quota: 0,
            byte_quota: 0,
            ring_bytes: 4 << 20,
            count_only: false,
        }
    }
}

/// A client's end of its slot: the ring buffer its packets arrive in.
pub struct Client {
    slot: u32,
    engine: SlotEngine,
    ring: RingBuf<MapData>,
    realtime_minus_tai_ns: i64,
}

impl Client {
    /// The slot this client occupies in its attachment.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// What the client's filter ran as when it was added.
    pub fn engine(&self) -> SlotEngine {
        self.engine
    }

    /// The next record, if one is waiting (never blocks; poll the fd).
    pub fn next_record(&mut self) -> Option<Record> {
        let entry = self.ring.next()?;
        Record::parse(&entry, self.realtime_minus_tai_ns)
    }
}

impl AsRawFd for Client {
    /// The ring buffer's fd: readable when records are waiting.
    fn as_raw_fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }
}

struct Maps {
    globals: Array<MapData, Globals>,
    clients: Array<MapData, ClientConfig>,
    filters: ArrayOfMaps<MapData, Array<MapData, FilterProgram>>,
    rings: ArrayOfMaps<MapData, RingBuf<MapData>>,
    /// Second fds of `filters` and `rings`, for deleting entries (aya 0.14's
    /// ArrayOfMaps can set but not delete).
    filters_fd: OwnedFd,
    rings_fd: OwnedFd,
    /// PKTD_JUMP, PKTD_XDP_JUMP and PKTD_VERDICTS, for the native programs.
    jump_fd: OwnedFd,
    xdp_jump_fd: OwnedFd,
    verdicts_fd: OwnedFd,
    counters: PerCpuArray<MapData, ClientCounters>,
    usage: Array<MapData, ClientUsage>,
    interface: PerCpuArray<MapData, InterfaceCounters>,
}

/// The kernel program loaded once for one (namespace, interface), or
/// loaded but not attached (for BPF_PROG_TEST_RUN).
///
/// Dropping it detaches the programs (TCX links end with their fds) and
/// frees every client's maps.
pub struct Attachment {
    ebpf: Ebpf,
    maps: Maps,
    slots: [Option<SlotState>; MAX_CLIENTS as usize],
    engine: Engine,
    /// Where the program runs: TC (both directions) or XDP (received
    /// packets only).
    hook: Hook,
    /// Slots whose filters have native code installed.
    native: u64,
    ifindex: Option<u32>,
    /// Where the programs are attached, for moving from XDP to TC.
    place: Option<(Netns, String)>,
    /// The XDP attachment, if any.
    xdp_link: Option<aya::programs::xdp::XdpLinkId>,
    /// The TC attachments (ingress, egress), if any.
    tc_links: Vec<(&'static str, SchedClassifierLinkId)>,
    /// The XDP program, not TC ingress, serves received packets.
    xdp_receives: bool,
}

/// What the attachment remembers of a client.
struct SlotState {
    filter: ValidProgram,
    directions: u32,
    /// The kernel refused native code for this filter: always interpreted.
    refused: bool,
    /// Interface packets (received, sent) when the client started.
    seen_base: (u64, u64),
}

impl Attachment {
    /// Loads the program without attaching it anywhere, with the default
    /// engine.
    pub fn detached() -> Result<Self, CaptureError> {
        Self::detached_with(Engine::default())
    }

    /// Loads the TC programs without attaching them anywhere.
    pub fn detached_with(engine: Engine) -> Result<Self, CaptureError> {
        Self::detached_for(engine, Hook::Tc)
    }

    /// Loads the programs of `hook` without attaching them anywhere.
    pub fn detached_for(engine: Engine, hook: Hook) -> Result<Self, CaptureError> {
        let cpus = nr_cpus().map_err(|(_, source)| CaptureError::Io {
            operation: "counting possible CPUs",
            source,
        })?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries(names::MAP_RECORD, cpus as u32)
            .load(EBPF_OBJECT)
            .map_err(|source| CaptureError::Load { source })?;
        // Every name pktd-common promises must be in the object.
        for name in names::ALL_MAPS {
            ebpf.map(name).ok_or(CaptureError::Missing { name })?;
        }
        let filters_fd = map_fd(&ebpf, names::MAP_FILTERS)?;
        let rings_fd = map_fd(&ebpf, names::MAP_RINGS)?;
        let jump_fd = map_fd(&ebpf, names::MAP_JUMP)?;
        let xdp_jump_fd = map_fd(&ebpf, names::MAP_XDP_JUMP)?;
        let verdicts_fd = map_fd(&ebpf, names::MAP_VERDICTS)?;
        let maps = Maps {
            filters: typed_map(&mut ebpf, names::MAP_FILTERS)?,
            filters_fd,
            rings: typed_map(&mut ebpf, names::MAP_RINGS)?,
            rings_fd,
            jump_fd,
            xdp_jump_fd,
            verdicts_fd,
            globals: typed_map(&mut ebpf, names::MAP_GLOBALS)?,
            clients: typed_map(&mut ebpf, names::MAP_CLIENTS)?,
            counters: typed_map(&mut ebpf, names::MAP_COUNTERS)?,
            usage: typed_map(&mut ebpf, names::MAP_USAGE)?,
            interface: typed_map(&mut ebpf, names::MAP_INTERFACE)?,
        };
        for name in names::TC_PROGRAMS {
            classifier(&mut ebpf, name)?
                .load()
                .map_err(|source| CaptureError::Program {
                    operation: "loading",
                    program: name,
                    source,
                })?;
        }
        let deliver = classifier(&mut ebpf, names::PROG_DELIVER)?
            .fd()
            .map_err(|source| CaptureError::Program {
                operation: "finding",
                program: names::PROG_DELIVER,
                source,
            })?;
        sys::set_program_array_entry(maps.jump_fd.as_fd(), jump::DELIVER, deliver.as_fd())
            .map_err(|source| CaptureError::Io {
                operation: "installing the delivery program",
                source,
            })?;
        let mut attachment = Self {
            ebpf,
            maps,
            slots: std::array::from_fn(|_| None),
            engine,
            hook,
            native: 0,
            ifindex: None,
            place: None,
            xdp_link: None,
            tc_links: Vec::new(),
            xdp_receives: hook == Hook::Xdp,
        };
        if hook == Hook::Xdp {
            attachment.load_xdp()?;
        }
        Ok(attachment)
    }

    /// Loads the XDP programs (once) and installs XDP delivery.
    fn load_xdp(&mut self) -> Result<(), CaptureError> {
        for name in names::XDP_PROGRAMS {
            let program = xdp_program(&mut self.ebpf, name)?;
            if program.fd().is_ok() {
                continue;
            }
            program.load().map_err(|source| CaptureError::Program {
                operation: "loading",
                program: name,
                source,
            })?;
        }
        let deliver = xdp_program(&mut self.ebpf, names::PROG_XDP_DELIVER)?
            .fd()
            .map_err(|source| CaptureError::Program {
                operation: "finding",
                program: names::PROG_XDP_DELIVER,
                source,
            })?;
        sys::set_program_array_entry(
            self.maps.xdp_jump_fd.as_fd(),
            jump::DELIVER,
            deliver.as_fd(),
        )
        .map_err(|source| CaptureError::Io {
            operation: "installing the XDP delivery program",
            source,
        })
    }

    /// Loads the program and attaches it at the XDP hook of `interface` in
    /// `netns` (received packets only; the kernel picks the driver's native
    /// mode when it has one, generic XDP otherwise).
    pub fn attach_xdp(
        netns: &Netns,
        interface: &str,
        engine: Engine,
    ) -> Result<Self, CaptureError> {
        let mut attachment = Self::detached_for(engine, Hook::Xdp)?;
        let ebpf = &mut attachment.ebpf;
        let (ifindex, link) = netns.run(|| -> Result<_, CaptureError> {
            let ifindex =
                sys::interface_index(interface).map_err(|source| CaptureError::NoInterface {
                    interface: interface.to_owned(),
                    netns: netns.to_string(),
                    source,
                })?;
            let link = xdp_program(ebpf, names::PROG_XDP)?
                .attach(interface, XdpMode::default())
                .map_err(|source| CaptureError::Program {
                    operation: "attaching",
                    program: names::PROG_XDP,
                    source,
                })?;
            Ok((ifindex, link))
        })??;
        attachment.ifindex = Some(ifindex);
        attachment.place = Some((netns.clone(), interface.to_owned()));
        attachment.xdp_link = Some(link);
        attachment.publish_globals()?;
        Ok(attachment)
    }

    /// Moves an XDP attachment to TC ingress and egress (for a client that
    /// wants sent packets too), without losing or doubling a packet: TC is
    /// attached first while the XDP program still serves received packets,
    /// then one flag hands them over, then XDP is detached.
    pub fn move_to_tc(&mut self) -> Result<(), CaptureError> {
        let Some((netns, interface)) = self.place.clone().filter(|_| self.xdp_link.is_some())
        else {
            return Ok(());
        };
        // Native code for TC; XDP keeps its own until it is detached, and
        // the globals still say XDP serves received packets.
        self.hook = Hook::Tc;
        self.rebuild_native()?;
        let ebpf = &mut self.ebpf;
        let (_, links) = netns.run(|| attach_tc(ebpf, &interface))??;
        self.tc_links = links;
        // The hand-over: TC ingress serves received packets from here on.
        self.xdp_receives = false;
        self.publish_globals()?;
        let link = self.xdp_link.take();
        if let Some(link) = link {
            xdp_program(&mut self.ebpf, names::PROG_XDP)?
                .detach(link)
                .map_err(|source| CaptureError::Program {
                    operation: "detaching",
                    program: names::PROG_XDP,
                    source,
                })?;
        }
        tracing::info!(%netns, interface, "moved from XDP to TC");
        Ok(())
    }

    /// Moves a TC attachment to XDP (when every client wants received
    /// packets only), without losing or doubling a packet: XDP is attached
    /// first while TC ingress still serves received packets, then one flag
    /// hands them over, then TC is detached.
    pub fn move_to_xdp(&mut self) -> Result<(), CaptureError> {
        let Some((netns, interface)) = self.place.clone().filter(|_| self.xdp_link.is_none())
        else {
            return Ok(());
        };
        if !self.received_only() {
            return Err(CaptureError::InvalidSpec {
                message: "a client wants sent packets: XDP cannot serve it".to_owned(),
            });
        }
        self.load_xdp()?;
        self.hook = Hook::Xdp;
        self.rebuild_native()?;
        let ebpf = &mut self.ebpf;
        let link = netns.run(|| {
            xdp_program(ebpf, names::PROG_XDP)?
                .attach(&interface, XdpMode::default())
                .map_err(|source| CaptureError::Program {
                    operation: "attaching",
                    program: names::PROG_XDP,
                    source,
                })
        })??;
        self.xdp_link = Some(link);
        // The hand-over: XDP serves received packets from here on.
        self.xdp_receives = true;
        self.publish_globals()?;
        for (name, link) in std::mem::take(&mut self.tc_links) {
            classifier(&mut self.ebpf, name)?
                .detach(link)
                .map_err(|source| CaptureError::Program {
                    operation: "detaching",
                    program: name,
                    source,
                })?;
        }
        tracing::info!(%netns, interface, "moved from TC to XDP");
        Ok(())
    }

    /// The namespace and interface the program is attached to.
    pub fn place(&self) -> Option<(&Netns, &str)> {
        self.place
            .as_ref()
            .map(|(netns, interface)| (netns, interface.as_str()))
    }

    /// Whether every client wants received packets only.
    pub fn received_only(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .all(|state| state.directions == DIR_IN)
    }

    /// Where the program runs.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// Loads the program and attaches it at TC ingress and egress of
    /// `interface` in `netns`, with the default engine.
    pub fn attach(netns: &Netns, interface: &str) -> Result<Self, CaptureError> {
        Self::attach_with(netns, interface, Engine::default())
    }

    /// Loads the program and attaches it at TC ingress and egress of
    /// `interface` in `netns`.
    pub fn attach_with(
        netns: &Netns,
        interface: &str,
        engine: Engine,
    ) -> Result<Self, CaptureError> {
        let mut attachment = Self::detached_with(engine)?;
        let ebpf = &mut attachment.ebpf;
        let (ifindex, links) = netns.run(|| attach_tc(ebpf, interface))??;
        attachment.ifindex = Some(ifindex);
        attachment.tc_links = links;
        attachment.place = Some((netns.clone(), interface.to_owned()));
        Ok(attachment)
    }

    /// The interface index, when attached.
    pub fn ifindex(&self) -> Option<u32> {
        self.ifindex
    }

    /// Number of clients in the attachment.
    pub fn client_count(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_some()).count()
    }

    /// The engine the attachment was made with.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// What slot `slot`'s filter runs as now.
    pub fn slot_engine(&self, slot: u32) -> Result<SlotEngine, CaptureError> {
        self.check_slot(slot)?;
        Ok(if self.native & (1 << slot) != 0 {
            SlotEngine::Native
        } else {
            SlotEngine::Interpreted
        })
    }

    /// Takes a free slot for a client with `spec` and `filter`. The slot is
    /// evaluated only once its filter, ring and counters are in place.
    pub fn add_client(
        &mut self,
        spec: &ClientSpec,
        filter: &ValidProgram,
    ) -> Result<Client, CaptureError> {
        let config = client_config(spec)?;
        if self.hook == Hook::Xdp && config.directions != DIR_IN {
            return Err(CaptureError::InvalidSpec {
                message: "XDP sees received packets only: directions must be `in`".to_owned(),
            });
        }
        // A counting client gets the smallest ring: nothing is copied.
        let ring_bytes = if spec.count_only {
            MIN_RING_BYTES
        } else {
            ring_size(spec.ring_bytes)?
        };
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(CaptureError::SlotsFull { max: MAX_CLIENTS })? as u32;

        let ring_map = MapData::create(
            aya_obj::Map::new_from_params(
                aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
                0,
                0,
                ring_bytes,
                0,
            ),
            "pktd_client_ring",
            None,
        )
        .map_err(map_error("creating a ring buffer", names::MAP_RINGS))?;
        let ring = RingBuf::try_from(Map::RingBuf(ring_map))
            .map_err(map_error("opening a ring buffer", names::MAP_RINGS))?;

        self.install_filter(slot, filter)?;
        self.maps
            .rings
            .set(slot, &ring, 0)
            .map_err(map_error("installing a ring buffer", names::MAP_RINGS))?;
        self.maps
            .usage
            .set(slot, ClientUsage::default(), 0)
            .map_err(map_error("resetting usage", names::MAP_USAGE))?;
        let cpus = nr_cpus().map_err(|(_, source)| CaptureError::Io {
            operation: "counting possible CPUs",
            source,
        })?;
        let zeros =
            PerCpuValues::try_from(vec![ClientCounters::default(); cpus]).map_err(|source| {
                CaptureError::Io {
                    operation: "building per-CPU counters",
                    source,
                }
            })?;
        self.maps
            .counters
            .set(slot, zeros, 0)
            .map_err(map_error("resetting counters", names::MAP_COUNTERS))?;
        let interface = self.interface_counters()?;
        self.slots[slot as usize] = Some(SlotState {
            filter: filter.clone(),
            directions: config.directions,
            refused: false,
            seen_base: (interface.received, interface.sent),
        });
        // Native code for the new filter, then the slot count, before the
        // slot goes live.
        if let Err(err) = self.rebuild_native() {
            self.slots[slot as usize] = None;
            return Err(err);
        }
        // Last: from here on the kernel evaluates the slot.
        self.maps
            .clients
            .set(slot, config, 0)
            .map_err(map_error("activating a client", names::MAP_CLIENTS))?;
        Ok(Client {
            slot,
            engine: self.slot_engine(slot)?,
            ring,
            realtime_minus_tai_ns: sys::realtime_minus_tai_ns(),
        })
    }

    /// Replaces a client's filter. The kernel sees the new program whole or
    /// not at all: it is written into a fresh map, which then replaces the
    /// old one in a single update.
    pub fn set_filter(&mut self, slot: u32, filter: &ValidProgram) -> Result<(), CaptureError> {
        self.check_slot(slot)?;
        self.install_filter(slot, filter)?;
        if let Some(state) = &mut self.slots[slot as usize] {
            state.filter = filter.clone();
            state.refused = false;
        }
        self.rebuild_native()
    }

    /// Ends a client: the kernel stops evaluating the slot at once, and its
    /// filter and ring are released (the ring stays readable through the
    /// client's own handle until that is dropped).
    pub fn remove_client(&mut self, slot: u32) -> Result<(), CaptureError> {
        self.check_slot(slot)?;
        self.maps
            .clients
            .set(slot, ClientConfig::default(), 0)
            .map_err(map_error("deactivating a client", names::MAP_CLIENTS))?;
        for (map, name) in [
            (self.maps.filters_fd.as_fd(), names::MAP_FILTERS),
            (self.maps.rings_fd.as_fd(), names::MAP_RINGS),
        ] {
            match sys::delete_map_entry(map, slot) {
                Ok(()) => {}
                // Never installed: nothing to release.
                Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                Err(source) => {
                    tracing::warn!(slot, map = name, %source, "releasing a client's map");
                }
            }
        }
        self.slots[slot as usize] = None;
        self.rebuild_native()
    }

    /// A client's counters, summed over CPUs.
    pub fn counters(&self, slot: u32) -> Result<ClientCounters, CaptureError> {
        self.check_slot(slot)?;
        let per_cpu = self
            .maps
            .counters
            .get(&slot, 0)
            .map_err(map_error("reading counters", names::MAP_COUNTERS))?;
        let mut total = ClientCounters::default();
        for cpu in per_cpu.iter() {
            total.accumulate(cpu);
        }
        // The kernel counts packets per direction, not per client.
        if let Some(state) = &self.slots[slot as usize] {
            let interface = self.interface_counters()?;
            let (received, sent) = state.seen_base;
            if state.directions & DIR_IN != 0 {
                total.seen += interface.received.saturating_sub(received);
            }
            if state.directions & DIR_OUT != 0 {
                total.seen += interface.sent.saturating_sub(sent);
            }
        }
        Ok(total)
    }

    /// All traffic the program has seen on the interface, summed over CPUs.
    pub fn interface_counters(&self) -> Result<InterfaceCounters, CaptureError> {
        let per_cpu = self
            .maps
            .interface
            .get(&0, 0)
            .map_err(map_error("reading counters", names::MAP_INTERFACE))?;
        let mut total = InterfaceCounters::default();
        for cpu in per_cpu.iter() {
            total.accumulate(cpu);
        }
        Ok(total)
    }

    /// Runs the program on `frame` with BPF_PROG_TEST_RUN, as if it had
    /// arrived (DIR_IN) or been sent (DIR_OUT); `repeat` runs, and the
    /// kernel's average duration per run in nanoseconds.
    pub fn test_run(&self, direction: u32, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        if self.hook == Hook::Xdp {
            if direction != DIR_IN {
                return Err(CaptureError::InvalidSpec {
                    message: "XDP sees received packets only".to_owned(),
                });
            }
            return self.test_run_xdp(frame, repeat);
        }
        let name = if direction == DIR_OUT {
            names::PROG_EGRESS
        } else {
            names::PROG_INGRESS
        };
        self.test_run_program(name, frame, repeat)
    }

    /// Like [`Attachment::test_run`], for the program that does nothing:
    /// the fixed cost of a test run, which benchmarks subtract.
    pub fn test_run_empty(&self, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        self.test_run_program(names::PROG_EMPTY, frame, repeat)
    }

    fn test_run_program(
        &self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<u64, CaptureError> {
        self.test_run_as::<SchedClassifier>(name, frame, repeat)
    }

    fn test_run_xdp(&self, frame: &[u8], repeat: u32) -> Result<u64, CaptureError> {
        self.test_run_as::<Xdp>(names::PROG_XDP, frame, repeat)
    }

    /// BPF_PROG_TEST_RUN of program `name`, of aya type `P`.
    fn test_run_as<P>(
        &self,
        name: &'static str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<u64, CaptureError>
    where
        P: for<'a> TestRun<Opts<'a> = TestRunOptions<'a>, Result = aya::programs::TestRunResult>,
        for<'a> &'a P: TryFrom<&'a aya::programs::Program, Error = aya::programs::ProgramError>,
    {
        let program: &P = self
            .ebpf
            .program(name)
            .ok_or(CaptureError::Missing { name })?
            .try_into()
            .map_err(|source| CaptureError::Program {
                operation: "finding",
                program: name,
                source,
            })?;
        let mut out = vec![0u8; frame.len() + 256];
        let result = program
            .test_run(TestRunOptions {
                data_in: Some(frame),
                data_out: Some(&mut out),
                repeat,
                ..TestRunOptions::default()
            })
            .map_err(|source| CaptureError::Program {
                operation: "test-running",
                program: name,
                source,
            })?;
        Ok(result.duration.as_nanos() as u64)
    }

    fn install_filter(&mut self, slot: u32, filter: &ValidProgram) -> Result<(), CaptureError> {
        let mut program = Box::new(FilterProgram {
            len: filter.len() as u32,
            entry: 0,
            insns: [Default::default(); MAX_INSNS],
        });
        program.insns[..filter.len()].copy_from_slice(filter.insns());
        let mut inner: Array<MapData, FilterProgram> =
            Array::create(1, 0).map_err(map_error("creating a filter map", names::MAP_FILTERS))?;
        inner
            .set(0, *program, 0)
            .map_err(map_error("writing a filter", names::MAP_FILTERS))?;
        self.maps
            .filters
            .set(slot, &inner, 0)
            .map_err(map_error("installing a filter", names::MAP_FILTERS))
    }

    fn check_slot(&self, slot: u32) -> Result<(), CaptureError> {
        match self.slots.get(slot as usize) {
            Some(Some(_)) => Ok(()),
            _ => Err(CaptureError::NoSuchSlot { slot }),
        }
    }

    /// Regenerates and installs the native code for the current filters
    /// (per the engine), then tells the kernel which slots are in use and
    /// which of them are interpreted. Filters the kernel refuses in native
    /// form are interpreted from then on.
    ///
    /// The native code is a chain of programs joined by tail calls: one per
    /// client (per-client engine), or as few as fit [`MAX_PROGRAM_INSNS`]
    /// each (shared engine); at most [`MAX_CHAIN`].
    fn rebuild_native(&mut self) -> Result<(), CaptureError> {
        let (programs, native) = loop {
            let groups = self.native_groups();
            match self.load_chain(&groups) {
                Ok(loaded) => break loaded,
                // A program was refused and its culprits marked: again.
                Err(()) => continue,
            }
        };
        // Entries: DECIDE, then CHAIN.. for the rest of the chain. The old
        // programs stay in place until replaced, so a packet runs the old
        // filter of a slot or the new one.
        for (index, program) in programs.iter().enumerate() {
            let entry = if index == 0 {
                jump::DECIDE
            } else {
                jump::CHAIN + index as u32 - 1
            };
            sys::set_program_array_entry(self.jump_map(), entry, program.as_fd()).map_err(
                |source| CaptureError::Io {
                    operation: "installing native filters",
                    source,
                },
            )?;
        }
        if programs.is_empty() {
            match sys::delete_map_entry(self.jump_map(), jump::DECIDE) {
                Err(err) if err.raw_os_error() != Some(libc::ENOENT) => {
                    return Err(CaptureError::Io {
                        operation: "removing native filters",
                        source: err,
                    });
                }
                _ => {}
            }
        }
        self.native = native;
        self.publish_globals()
    }

    /// The program array of the hook's programs.
    fn jump_map(&self) -> std::os::fd::BorrowedFd<'_> {
        match self.hook {
            Hook::Tc => self.maps.jump_fd.as_fd(),
            Hook::Xdp => self.maps.xdp_jump_fd.as_fd(),
        }
    }

    /// The slots to translate, grouped one group per program.
    fn native_groups(&self) -> Vec<Vec<u32>> {
        let candidates = (0..MAX_CLIENTS)
            .filter(|slot| matches!(&self.slots[*slot as usize], Some(state) if !state.refused));
        let mut groups: Vec<Vec<u32>> = Vec::new();
        match self.engine {
            Engine::Interpreter => {}
            Engine::PerClient => groups.extend(candidates.map(|slot| vec![slot])),
            Engine::Shared => {
                for slot in candidates {
                    if let Some(group) = groups.last_mut() {
                        group.push(slot);
                        let fits = native::size(&self.filters_of(group), Sharing::Shared)
                            .is_ok_and(|insns| insns <= native::MAX_PROGRAM_INSNS);
                        if fits {
                            continue;
                        }
                        group.pop();
                    }
                    groups.push(vec![slot]);
                }
            }
        }
        groups.truncate(MAX_CHAIN);
        groups
    }

    fn filters_of(&self, slots: &[u32]) -> Vec<Filter<'_>> {
        slots
            .iter()
            .filter_map(|slot| {
                let state = self.slots[*slot as usize].as_ref()?;
                Some(Filter {
                    slot: *slot,
                    program: &state.filter,
                })
            })
            .collect()
    }

    /// Loads one program per group, each tail-calling the next and the
    /// last the delivery program. `Err` when the kernel refused one: the
    /// filters it refuses alone are then marked refused (or, if none is,
    /// the whole group).
    fn load_chain(&mut self, groups: &[Vec<u32>]) -> Result<(Vec<OwnedFd>, u64), ()> {
        let sharing = match self.engine {
            Engine::Shared => Sharing::Shared,
            _ => Sharing::None,
        };
        let mut programs = Vec::new();
        let mut native = 0u64;
        for (index, group) in groups.iter().enumerate() {
            let next = if index + 1 == groups.len() {
                jump::DELIVER
            } else {
                jump::CHAIN + index as u32
            };
            match self.load_native(group, sharing, next) {
                Ok(program) => {
                    programs.push(program);
                    native |= group.iter().fold(0, |mask, slot| mask | 1 << slot);
                }
                Err(err) => {
                    tracing::warn!(slots = ?group, %err, "native code refused");
                    let mut culprits: Vec<u32> = group
                        .iter()
                        .copied()
                        .filter(|slot| {
                            self.load_native(&[*slot], Sharing::None, jump::DELIVER)
                                .is_err()
                        })
                        .collect();
                    if culprits.is_empty() {
                        culprits.clone_from(group);
                    }
                    for slot in culprits {
                        tracing::warn!(slot, "filter interpreted: no native code for it");
                        if let Some(state) = &mut self.slots[slot as usize] {
                            state.refused = true;
                        }
                    }
                    return Err(());
                }
            }
        }
        Ok((programs, native))
    }

    fn load_native(
        &self,
        slots: &[u32],
        sharing: Sharing,
        next: u32,
    ) -> Result<OwnedFd, NativeError> {
        let maps = MapFds {
            verdicts: self.maps.verdicts_fd.as_raw_fd(),
            jump: self.jump_map().as_raw_fd(),
        };
        let filters = self.filters_of(slots);
        let program = native::load(&filters, self.hook, maps, sharing, next)?;
        tracing::debug!(
            filters = filters.len(),
            insns = program.insns,
            trees = program.trees,
            standalone = program.standalone,
            ?sharing,
            "native filters loaded"
        );
        Ok(program.fd)
    }

    /// Tells the kernel how many slots to consider and which are
    /// interpreted.
    fn publish_globals(&mut self) -> Result<(), CaptureError> {
        let slot_count = self
            .slots
            .iter()
            .rposition(Option::is_some)
            .map_or(0, |last| last as u32 + 1);
        let in_use = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, state)| state.is_some())
            .fold(0u64, |mask, (slot, _)| mask | 1 << slot);
        self.maps
            .globals
            .set(
                0,
                Globals {
                    slot_count,
                    xdp_receives: u32::from(self.xdp_receives),
                    interpreted: in_use & !self.native,
                },
                0,
            )
            .map_err(map_error("publishing the slot count", names::MAP_GLOBALS))
    }
}

fn client_config(spec: &ClientSpec) -> Result<ClientConfig, CaptureError> {
    if spec.directions == 0 || spec.directions & !(DIR_IN | DIR_OUT) != 0 {
        return Err(CaptureError::InvalidSpec {
            message: format!(
                "directions {:#x} (must be in, out or both)",
                spec.directions
            ),
        });
    }
    if spec.snaplen == 0 {
        return Err(CaptureError::InvalidSpec {
            message: "snaplen 0".to_owned(),
        });
    }
    Ok(ClientConfig {
        active: 1,
        directions: spec.directions,
        snaplen: spec.snaplen.min(MAX_CAPLEN),
        mode: if spec.count_only {
            MODE_COUNT
        } else {
            MODE_CAPTURE
        },
        packet_quota: spec.packet_quota,
        byte_quota: spec.byte_quota,
    })
}

fn ring_size(requested: u32) -> Result<u32, CaptureError> {
    if requested > MAX_RING_BYTES {
        return Err(CaptureError::InvalidSpec {
            message: format!("ring buffer of {requested} bytes (at most {MAX_RING_BYTES})"),
        });
    }
    Ok(requested.max(MIN_RING_BYTES).next_power_of_two())
}

fn typed_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, CaptureError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(CaptureError::Missing { name })?;
    T::try_from(map).map_err(map_error("opening", name))
}

/// A second fd of map `name` (kept for raw map operations aya does not
/// offer).
fn map_fd(ebpf: &Ebpf, name: &'static str) -> Result<OwnedFd, CaptureError> {
    let data = match ebpf.map(name).ok_or(CaptureError::Missing { name })? {
        Map::ArrayOfMaps(data) | Map::ProgramArray(data) | Map::PerCpuArray(data) => data,
        _ => return Err(CaptureError::Missing { name }),
    };
    data.fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| CaptureError::Io {
            operation: "duplicating a map fd",
            source,
        })
}

/// The TC links of one attachment.
type TcLinks = Vec<(&'static str, SchedClassifierLinkId)>;

/// Attaches the classifiers at TC ingress and egress of `interface` (in the
/// calling thread's namespace); its index and the links.
fn attach_tc(ebpf: &mut Ebpf, interface: &str) -> Result<(u32, TcLinks), CaptureError> {
    let ifindex = sys::interface_index(interface).map_err(|source| CaptureError::NoInterface {
        interface: interface.to_owned(),
        netns: "(current)".to_owned(),
        source,
    })?;
    let mut links = Vec::new();
    for (name, hook) in [
        (names::PROG_INGRESS, TcAttachType::Ingress),
        (names::PROG_EGRESS, TcAttachType::Egress),
    ] {
        let link = classifier(ebpf, name)?
            .attach(interface, hook)
            .map_err(|source| CaptureError::Program {
                operation: "attaching",
                program: name,
                source,
            })?;
        links.push((name, link));
    }
    Ok((ifindex, links))
}

fn xdp_program<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Xdp, CaptureError> {
    program_mut(ebpf, name)
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, CaptureError> {
    program_mut(ebpf, name)
}

/// Program `name` of the object, as aya type `P`.
fn program_mut<'a, P>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, CaptureError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    ebpf.program_mut(name)
        .ok_or(CaptureError::Missing { name })?
        .try_into()
        .map_err(|source| CaptureError::Program {
            operation: "finding",
            program: name,
            source,
        })
}

fn map_error(
    operation: &'static str,
    map: &'static str,
) -> impl FnOnce(aya::maps::MapError) -> CaptureError {
    move |source| CaptureError::Map {
        operation,
        map,
        source,
    }
}

// The kernel program's prefix must cover every header a filter commonly
// reads (Ethernet + two VLAN tags + IPv6 + TCP with options).
const _: () = assert!(PREFIX_LEN >= 14 + 8 + 40 + 60);
