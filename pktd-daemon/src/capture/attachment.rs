//! One loaded copy of the kernel program and its client slots.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, ArrayOfMaps, Map, MapData, PerCpuArray, PerCpuValues, RingBuf},
    programs::{SchedClassifier, TcAttachType, TestRun, TestRunOptions},
    util::nr_cpus,
};
use pktd_common::{
    ClientConfig, ClientCounters, ClientUsage, DIR_IN, DIR_OUT, FilterProgram, Globals,
    InterfaceCounters, MAX_CAPLEN, MAX_CLIENTS, MAX_INSNS, MODE_CAPTURE, MODE_COUNT, PREFIX_LEN,
    names,
};
use pktd_filter::ValidProgram;

use super::{CaptureError, Record};
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
    ring: RingBuf<MapData>,
    realtime_minus_tai_ns: i64,
}

impl Client {
    /// The slot this client occupies in its attachment.
    pub fn slot(&self) -> u32 {
        self.slot
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
    in_use: [bool; MAX_CLIENTS as usize],
    ifindex: Option<u32>,
}

impl Attachment {
    /// Loads the program without attaching it anywhere.
    pub fn detached() -> Result<Self, CaptureError> {
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
        let (filters, filters_fd) = outer_map(&mut ebpf, names::MAP_FILTERS)?;
        let (rings, rings_fd) = outer_map(&mut ebpf, names::MAP_RINGS)?;
        let maps = Maps {
            filters,
            filters_fd,
            rings,
            rings_fd,
            globals: typed_map(&mut ebpf, names::MAP_GLOBALS)?,
            clients: typed_map(&mut ebpf, names::MAP_CLIENTS)?,
            counters: typed_map(&mut ebpf, names::MAP_COUNTERS)?,
            usage: typed_map(&mut ebpf, names::MAP_USAGE)?,
            interface: typed_map(&mut ebpf, names::MAP_INTERFACE)?,
        };
        for name in names::ALL_PROGRAMS {
            classifier(&mut ebpf, name)?
                .load()
                .map_err(|source| CaptureError::Program {
                    operation: "loading",
                    program: name,
                    source,
                })?;
        }
        Ok(Self {
            ebpf,
            maps,
            in_use: [false; MAX_CLIENTS as usize],
            ifindex: None,
        })
    }

    /// Loads the program and attaches it at TC ingress and egress of
    /// `interface` in `netns`.
    pub fn attach(netns: &Netns, interface: &str) -> Result<Self, CaptureError> {
        let mut attachment = Self::detached()?;
        let ebpf = &mut attachment.ebpf;
        let ifindex = netns.run(|| -> Result<u32, CaptureError> {
            let ifindex =
                sys::interface_index(interface).map_err(|source| CaptureError::NoInterface {
                    interface: interface.to_owned(),
                    netns: netns.to_string(),
                    source,
                })?;
            for (name, hook) in [
                (names::PROG_INGRESS, TcAttachType::Ingress),
                (names::PROG_EGRESS, TcAttachType::Egress),
            ] {
                classifier(ebpf, name)?
                    .attach(interface, hook)
                    .map_err(|source| CaptureError::Program {
                        operation: "attaching",
                        program: name,
                        source,
                    })?;
            }
            Ok(ifindex)
        })??;
        attachment.ifindex = Some(ifindex);
        Ok(attachment)
    }

    /// The interface index, when attached.
    pub fn ifindex(&self) -> Option<u32> {
        self.ifindex
    }

    /// Number of clients in the attachment.
    pub fn client_count(&self) -> usize {
        self.in_use.iter().filter(|used| **used).count()
    }

    /// Takes a free slot for a client with `spec` and `filter`. The slot is
    /// evaluated only once its filter, ring and counters are in place.
    pub fn add_client(
        &mut self,
        spec: &ClientSpec,
        filter: &ValidProgram,
    ) -> Result<Client, CaptureError> {
        let config = client_config(spec)?;
        // A counting client gets the smallest ring: nothing is copied.
        let ring_bytes = if spec.count_only {
            MIN_RING_BYTES
        } else {
            ring_size(spec.ring_bytes)?
        };
        let slot = self
            .in_use
            .iter()
            .position(|used| !used)
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
        // Last: from here on the kernel evaluates the slot.
        self.maps
            .clients
            .set(slot, config, 0)
            .map_err(map_error("activating a client", names::MAP_CLIENTS))?;
        self.in_use[slot as usize] = true;
        self.publish_slot_count()?;
        Ok(Client {
            slot,
            ring,
            realtime_minus_tai_ns: sys::realtime_minus_tai_ns(),
        })
    }

    /// Replaces a client's filter. The kernel sees the new program whole or
    /// not at all: it is written into a fresh map, which then replaces the
    /// old one in a single update.
    pub fn set_filter(&mut self, slot: u32, filter: &ValidProgram) -> Result<(), CaptureError> {
        self.check_slot(slot)?;
        self.install_filter(slot, filter)
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
        self.in_use[slot as usize] = false;
        self.publish_slot_count()
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
        let program: &SchedClassifier = self
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
        match self.in_use.get(slot as usize) {
            Some(true) => Ok(()),
            _ => Err(CaptureError::NoSuchSlot { slot }),
        }
    }

    /// Lets the kernel scan only up to the highest slot in use.
    fn publish_slot_count(&mut self) -> Result<(), CaptureError> {
        let slot_count = self
            .in_use
            .iter()
            .rposition(|used| *used)
            .map_or(0, |last| last as u32 + 1);
        self.maps
            .globals
            .set(
                0,
                Globals {
                    slot_count,
                    _pad: 0,
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

/// An array-of-maps and a second fd of it.
fn outer_map<V>(
    ebpf: &mut Ebpf,
    name: &'static str,
) -> Result<(ArrayOfMaps<MapData, V>, OwnedFd), CaptureError>
where
    ArrayOfMaps<MapData, V>: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = ebpf.take_map(name).ok_or(CaptureError::Missing { name })?;
    let Map::ArrayOfMaps(data) = &map else {
        return Err(CaptureError::Missing { name });
    };
    let fd = data
        .fd()
        .as_fd()
        .try_clone_to_owned()
        .map_err(|source| CaptureError::Io {
            operation: "duplicating a map fd",
            source,
        })?;
    let map = ArrayOfMaps::try_from(map).map_err(map_error("opening", name))?;
    Ok((map, fd))
}

fn classifier<'a>(
    ebpf: &'a mut Ebpf,
    name: &'static str,
) -> Result<&'a mut SchedClassifier, CaptureError> {
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
