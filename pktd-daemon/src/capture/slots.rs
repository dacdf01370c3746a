//! Slots: a session's place in an attachment's kernel maps (its
//! settings, filter, ring buffer, counters and quota usage), taken, changed
//! and given back; and its counters.

use std::{
    os::fd::{AsFd, OwnedFd},
    sync::Arc,
    time::{Duration, Instant},
};

use aya::maps::{Array, IterableMap as _, Map, MapData, PerCpuArray, PerCpuValues, RingBuf};
use pktd_common::{
    ClientConfig, ClientCounters, ClientUsage, DIR_IN, DIR_OUT, FilterProgram, InterfaceCounters,
    MAX_CAPLEN, MAX_CLIENTS, MAX_INSNS, MODE_CAPTURE, MODE_COUNT, names,
};
use pktd_filter::{ValidProgram, reads_socket_buffer};
use pktd_translate::Hook;

use super::{
    attachment::{Attachment, SlotState},
    error::CaptureError,
    lease::Lease,
    link_stats::LinkStats,
    object::{self, map_error},
    ring::Ring,
};
use crate::sys;

/// How long a slot given back stays free before it is taken again.
pub const QUARANTINE: Duration = Duration::from_millis(100);

/// Smallest and largest ring buffer a session may have.
const MIN_RING_BYTES: u32 = 4096;
const MAX_RING_BYTES: u32 = 1 << 30;

/// What a session asks of its slot (already cut to what policy allows).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientSpec {
    /// DIR_IN, DIR_OUT or both.
    pub directions: u32,
    /// Most bytes captured per packet (1..=MAX_CAPLEN; more is cut).
    pub snaplen: u32,
    /// Most packets delivered; 0 = no limit.
    pub packet_quota: u64,
    /// Most captured bytes delivered; 0 = no limit.
    pub byte_quota: u64,
    /// Ring buffer size in bytes, rounded up to a power of two >= 4096.
    pub ring_bytes: u32,
    /// Count matching packets and bytes only; copy none (statistics mode).
    pub count_only: bool,
    /// Wake the ring's reader for every record (see
    /// `ClientConfig::immediate`).
    pub immediate: bool,
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
            immediate: false,
        }
    }
}

impl Attachment {
    /// Takes a free slot for a session with `spec` and `filter`, and returns
    /// the ring its records arrive in. The slot is evaluated only once its
    /// filter, ring, counters and native code are in place.
    pub fn add_client(
        &mut self,
        spec: &ClientSpec,
        filter: &ValidProgram,
    ) -> Result<Ring, CaptureError> {
        let config = client_config(spec)?;
        if self.hook == Hook::Xdp && config.directions != DIR_IN {
            return Err(CaptureError::InvalidSpec {
                message: "XDP sees received packets only: directions must be `in`".to_owned(),
            });
        }
        check_hook(self.hook, filter)?;
        // A counting session gets the smallest ring: nothing is copied.
        let ring_bytes = if spec.count_only {
            MIN_RING_BYTES
        } else {
            ring_size(spec.ring_bytes)?
        };
        if config.directions & DIR_OUT != 0 {
            self.attach_egress()?;
        }
        let slot = self.free_slot()?;
        let (ring, ring_id) = new_ring(ring_bytes)?;
        let entry = self.maps.entry(slot);
        // The interpreter's copy of the filter is installed only if the
        // slot is interpreted (see `publish_globals`): putting a map into
        // a map of maps waits for an RCU grace period.
        self.filters_installed &= !(1 << slot);
        self.maps
            .rings
            .set(entry, &ring, 0)
            .map_err(map_error("installing a ring buffer", names::MAP_RINGS))?;
        let added = self.finish_adding(slot, config, filter);
        if added.is_err() {
            // Nothing of the session stays in the shared maps, which
            // outlive the attachment: its ring, and the filter if it got
            // that far (each deletion waits for RCU; a rare path).
            self.slots[slot as usize] = None;
            self.maps.lease.delete_entries(1 << slot);
            self.filters_installed &= !(1 << slot);
            self.freed[slot as usize] = Some(Instant::now());
        }
        added?;
        Ok(Ring::new(
            slot,
            self.slot_engine(slot)?,
            ring,
            (ring_id, ring_bytes),
        ))
    }

    /// The rest of [`Attachment::add_client`] once the ring is in place:
    /// usage and counters reset, the slot's state, its native code, and
    /// last its activation.
    fn finish_adding(
        &mut self,
        slot: u32,
        config: ClientConfig,
        filter: &ValidProgram,
    ) -> Result<(), CaptureError> {
        let entry = self.maps.entry(slot);
        self.maps
            .usage
            .set(entry, ClientUsage::default(), 0)
            .map_err(map_error("resetting usage", names::MAP_USAGE))?;
        let zeros =
            PerCpuValues::try_from(vec![ClientCounters::default(); object::possible_cpus()?])
                .map_err(|source| CaptureError::Io {
                    operation: "building per-CPU counters",
                    source,
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
        self.rebuild_native()?;
        // Last: from here on the kernel evaluates the slot.
        self.maps
            .clients
            .set(entry, config, 0)
            .map_err(map_error("activating a client", names::MAP_CLIENTS))
    }

    /// A free slot, preferring those given back longest ago; one given
    /// back less than [`QUARANTINE`] ago is waited for. A packet that ran
    /// the native programs of the slot's previous occupant could otherwise
    /// be delivered by the new occupant's settings: between a program
    /// array update and the slot's activation lie a few system calls,
    /// while a packet's pass through the programs takes microseconds.
    fn free_slot(&mut self) -> Result<u32, CaptureError> {
        let unused = |attachment: &Self, slot: u32| {
            attachment.slots[slot as usize].is_none()
                && (attachment.stale | attachment.releasing) & (1 << slot) == 0
        };
        if !(0..MAX_CLIENTS).any(|slot| unused(self, slot)) && self.stale != 0 {
            // Only slots given back but not yet released are left: release
            // those whose code is still in the chain now rather than wait
            // for the rebuild thread. Not those it is releasing already: it
            // may still delete their entries, which would then be a new
            // occupant's.
            let stale = self.stale;
            self.rebuild_native()?;
            let (maps, _) = self.releasable();
            release(&maps, stale);
            self.released(stale);
        }
        let now = Instant::now();
        let slot = (0..MAX_CLIENTS)
            .filter(|slot| unused(self, *slot))
            .min_by_key(|slot| self.freed[*slot as usize])
            .ok_or(CaptureError::SlotsFull { max: MAX_CLIENTS })?;
        if let Some(freed) = self.freed[slot as usize] {
            let ready = freed + QUARANTINE;
            if ready > now {
                std::thread::sleep(ready - now);
            }
        }
        Ok(slot)
    }

    /// Changes a session's settings (a policy reload): directions, snaplen
    /// and quotas take effect with the next packet; what the session has
    /// had so far counts against a new quota. Its ring and mode stay as
    /// they are.
    pub fn update_client(&mut self, slot: u32, spec: &ClientSpec) -> Result<(), CaptureError> {
        self.check_slot(slot)?;
        let config = client_config(spec)?;
        if self.hook == Hook::Xdp && config.directions != DIR_IN {
            return Err(CaptureError::InvalidSpec {
                message: "XDP sees received packets only: directions must be `in`".to_owned(),
            });
        }
        let entry = self.maps.entry(slot);
        let current = self
            .maps
            .clients
            .get(&entry, 0)
            .map_err(map_error("reading a client", names::MAP_CLIENTS))?;
        if config.directions & DIR_OUT != 0 {
            self.attach_egress()?;
        }
        let had_quota = current.packet_quota != 0 || current.byte_quota != 0;
        if !had_quota && (config.packet_quota != 0 || config.byte_quota != 0) {
            // Usage is charged only under a quota: a new one starts from
            // what the session has had so far.
            let counters = self.counters(slot)?;
            let usage = ClientUsage {
                packets: counters.delivered,
                bytes: counters.delivered_bytes,
            };
            self.maps
                .usage
                .set(entry, usage, 0)
                .map_err(map_error("charging usage", names::MAP_USAGE))?;
        }
        self.maps
            .clients
            .set(
                entry,
                ClientConfig {
                    mode: current.mode,
                    ..config
                },
                0,
            )
            .map_err(map_error("updating a client", names::MAP_CLIENTS))?;
        if let Some(state) = &mut self.slots[slot as usize] {
            state.directions = config.directions;
        }
        Ok(())
    }

    /// Replaces a session's filter. The kernel sees the new program whole or
    /// not at all: it is written into a fresh map, which then replaces the
    /// old one in a single update.
    pub fn set_filter(&mut self, slot: u32, filter: &ValidProgram) -> Result<(), CaptureError> {
        self.check_slot(slot)?;
        check_hook(self.hook, filter)?;
        // Installed for the interpreter by the rebuild's publication if
        // the slot is interpreted; until then it interprets the old one.
        self.filters_installed &= !(1 << slot);
        if let Some(state) = &mut self.slots[slot as usize] {
            state.filter = filter.clone();
            state.refused = false;
        }
        self.rebuild_native()
    }

    /// Ends a session: the kernel stops evaluating the slot at once, and its
    /// filter and ring are released (the ring stays readable through the
    /// session's own handle until that is dropped).
    pub fn remove_client(&mut self, slot: u32) -> Result<(), CaptureError> {
        self.remove_client_deferred(slot)?;
        self.rebuild_native()?;
        let (maps, _) = self.releasable();
        release(&maps, 1 << slot);
        self.released(1 << slot);
        Ok(())
    }

    /// [`Attachment::remove_client`] without its slow part: the slot stops
    /// at once (deactivated: the kernel program skips it), while its old
    /// native code stays until a rebuild ([`Attachment::rebuild_stale`] or
    /// any other), and its filter and ring until [`release`]. Deleting
    /// from a map of maps waits for an RCU grace period (some 10 to 20 ms
    /// each here) and a rebuild runs the verifier, so sessions closing
    /// together would otherwise wait for each other; this way they cost
    /// one rebuild. The slot is not taken again before its release, nor
    /// before its quarantine from then.
    pub fn remove_client_deferred(&mut self, slot: u32) -> Result<(), CaptureError> {
        self.check_slot(slot)?;
        let entry = self.maps.entry(slot);
        let deactivated = self
            .maps
            .clients
            .set(entry, ClientConfig::default(), 0)
            .map_err(map_error("deactivating a client", names::MAP_CLIENTS));
        if deactivated.is_err() {
            // The kernel program would go on filling the session's ring,
            // which its client may hold: take the ring from the program at
            // once instead (it then counts drops for a slot nobody reads).
            // The slot stays taken, never reused: its settings are still
            // in force, and a new occupant would get them.
            if let Err(source) = sys::delete_map_entry(self.maps.rings_fd.as_fd(), entry) {
                tracing::error!(slot, %source, "a removed session's ring stays in use");
            }
            return deactivated;
        }
        self.slots[slot as usize] = None;
        self.stale |= 1 << slot;
        Ok(())
    }

    /// Drops the native code the deferred removals left, if any (a
    /// rebuild); whether there was any. Their filters and rings are then
    /// [`Attachment::releasable`].
    pub fn rebuild_stale(&mut self) -> Result<bool, CaptureError> {
        if self.stale == 0 {
            return Ok(false);
        }
        self.rebuild_native()?;
        Ok(true)
    }

    /// What [`release`] needs to release the filters and rings of the
    /// slots whose code is gone, without this attachment (so without its
    /// lock: each deletion from a map of maps waits for an RCU grace
    /// period): the two maps, and the slots (bit `i` = slot `i`). Hand the
    /// slots back with [`Attachment::released`] afterwards.
    pub fn releasable(&self) -> (Releasable, u64) {
        (
            Releasable {
                lease: self.maps.lease.clone(),
            },
            self.releasing,
        )
    }

    /// The slots of `slots` are released: free after their quarantine.
    pub fn released(&mut self, slots: u64) {
        let now = Instant::now();
        for slot in 0..MAX_CLIENTS {
            if slots & self.releasing & (1 << slot) != 0 {
                self.freed[slot as usize] = Some(now);
            }
        }
        self.releasing &= !slots;
    }

    /// A session's counters, summed over CPUs.
    pub fn counters(&self, slot: u32) -> Result<ClientCounters, CaptureError> {
        self.slot_counters(slot)?.read()
    }

    /// A handle that reads slot `slot`'s counters without this attachment:
    /// a session's periodic checks never wait for a filter being loaded.
    /// It reads whatever occupies the slot, so it is only good while the
    /// session holds the slot.
    pub fn slot_counters(&self, slot: u32) -> Result<SlotCounters, CaptureError> {
        self.check_slot(slot)?;
        let state = self.slots[slot as usize].as_ref().expect("checked");
        Ok(SlotCounters {
            slot,
            directions: state.directions,
            seen_base: state.seen_base,
            counters: open_per_cpu(self.maps.counters.map().fd().as_fd(), names::MAP_COUNTERS)?,
            interface: self.interface_counter_reader()?,
            link: self.link_stats.clone(),
        })
    }

    /// All traffic the program has seen on the interface, summed over CPUs.
    pub fn interface_counters(&self) -> Result<InterfaceCounters, CaptureError> {
        read_interface(&self.maps.interface, self.maps.index())
    }

    /// A handle that reads [`Attachment::interface_counters`] without this
    /// attachment.
    pub fn interface_counter_reader(&self) -> Result<InterfaceCounterReader, CaptureError> {
        Ok(InterfaceCounterReader {
            map: open_per_cpu(self.maps.interface.map().fd().as_fd(), names::MAP_INTERFACE)?,
            index: self.maps.index(),
            _lease: self.maps.lease.clone(),
        })
    }

    /// Installs `filter` as slot `slot`'s program for the interpreter: the
    /// kernel sees the new program whole or not at all, since it is
    /// written into a fresh map, which then replaces the old one in a
    /// single update.
    pub(super) fn install_filter(
        &mut self,
        slot: u32,
        filter: &ValidProgram,
    ) -> Result<(), CaptureError> {
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
            .set(self.maps.entry(slot), &inner, 0)
            .map_err(map_error("installing a filter", names::MAP_FILTERS))
    }
}

/// Reads one slot's counters (see [`Attachment::slot_counters`]).
pub struct SlotCounters {
    slot: u32,
    directions: u32,
    /// Interface packets (received, sent) when the session started.
    seen_base: (u64, u64),
    counters: PerCpuArray<MapData, ClientCounters>,
    interface: InterfaceCounterReader,
    link: Option<Arc<LinkStats>>,
}

impl SlotCounters {
    /// The packets the interface itself has counted in the slot's
    /// directions (the kernel's counters, which outlive the daemon).
    pub fn interface_packets(&self) -> Option<u64> {
        let (received, sent) = self.link.as_ref()?.packets()?;
        let mut packets = 0;
        if self.directions & DIR_IN != 0 {
            packets += received;
        }
        if self.directions & DIR_OUT != 0 {
            packets += sent;
        }
        Some(packets)
    }

    /// The slot's counters, summed over CPUs.
    pub fn read(&self) -> Result<ClientCounters, CaptureError> {
        let per_cpu = self
            .counters
            .get(&self.slot, 0)
            .map_err(map_error("reading counters", names::MAP_COUNTERS))?;
        let mut total = ClientCounters::default();
        for cpu in per_cpu.iter() {
            total.accumulate(cpu);
        }
        // The kernel counts packets per direction, not per session.
        let interface = self.interface.read()?;
        let (received, sent) = self.seen_base;
        if self.directions & DIR_IN != 0 {
            total.seen += interface.received.saturating_sub(received);
        }
        if self.directions & DIR_OUT != 0 {
            total.seen += interface.sent.saturating_sub(sent);
        }
        Ok(total)
    }
}

/// Reads an attachment's interface counters (see
/// [`Attachment::interface_counter_reader`]).
pub struct InterfaceCounterReader {
    map: PerCpuArray<MapData, InterfaceCounters>,
    index: u32,
    /// Another attachment's counters would be at this index once it is
    /// given back: it is not while the reader is there.
    _lease: Arc<Lease>,
}

impl InterfaceCounterReader {
    /// All traffic the program has seen on the interface, summed over CPUs.
    pub fn read(&self) -> Result<InterfaceCounters, CaptureError> {
        read_interface(&self.map, self.index)
    }
}

fn read_interface(
    map: &PerCpuArray<MapData, InterfaceCounters>,
    index: u32,
) -> Result<InterfaceCounters, CaptureError> {
    let per_cpu = map
        .get(&index, 0)
        .map_err(map_error("reading counters", names::MAP_INTERFACE))?;
    let mut total = InterfaceCounters::default();
    for cpu in per_cpu.iter() {
        total.accumulate(cpu);
    }
    Ok(total)
}

/// A second handle on a per-CPU array, through its own fd.
fn open_per_cpu<V: aya::Pod>(
    fd: std::os::fd::BorrowedFd<'_>,
    name: &'static str,
) -> Result<PerCpuArray<MapData, V>, CaptureError> {
    let fd: OwnedFd = object::duplicate(fd)?;
    let data = MapData::from_fd(fd).map_err(map_error("reopening", name))?;
    PerCpuArray::try_from(Map::PerCpuArray(data)).map_err(map_error("reopening", name))
}

/// A new ring buffer of `bytes` (a power of two, at least a page), and its
/// map id.
fn new_ring(bytes: u32) -> Result<(RingBuf<MapData>, u32), CaptureError> {
    let map = MapData::create(
        aya_obj::Map::new_from_params(
            aya_obj::generated::bpf_map_type::BPF_MAP_TYPE_RINGBUF as u32,
            0,
            0,
            bytes,
            0,
        ),
        super::ring::RING_NAME,
        None,
    )
    .map_err(map_error("creating a ring buffer", names::MAP_RINGS))?;
    let id = map
        .info()
        .map_err(map_error("reading a ring buffer's id", names::MAP_RINGS))?
        .id();
    let ring = RingBuf::try_from(Map::RingBuf(map))
        .map_err(map_error("opening a ring buffer", names::MAP_RINGS))?;
    Ok((ring, id))
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
        immediate: u32::from(spec.immediate),
        _pad: 0,
    })
}

/// The ring a session asking for `requested` bytes gets: a power of two of
/// at least 4096 bytes, at most 1 GiB.
pub fn ring_size(requested: u32) -> Result<u32, CaptureError> {
    if requested > MAX_RING_BYTES {
        return Err(CaptureError::InvalidSpec {
            message: format!("ring buffer of {requested} bytes (at most {MAX_RING_BYTES})"),
        });
    }
    Ok(requested.max(MIN_RING_BYTES).next_power_of_two())
}

/// The maps [`release`] deletes from: duplicates of the attachment's, so
/// that releasing needs neither the attachment nor its lock.
pub struct Releasable {
    /// The attachment's index, whose entries these are until this is
    /// dropped; the maps are the shared ones.
    lease: Arc<Lease>,
}

/// Deletes the filter and ring entries of `slots` (bit `i` = slot `i`),
/// which no code and no session uses any more: each deletion waits for an
/// RCU grace period, the memory goes with the last reference. Blocking.
pub fn release(maps: &Releasable, slots: u64) {
    maps.lease.delete_entries(slots);
}

/// A filter that reads the socket buffer's metadata cannot run at XDP.
fn check_hook(hook: Hook, filter: &ValidProgram) -> Result<(), CaptureError> {
    if hook == Hook::Xdp && reads_socket_buffer(filter) {
        return Err(CaptureError::InvalidSpec {
            message: "the filter reads the packet type, protocol or VLAN tag the kernel \
                      keeps beside the packet (inbound, outbound…), which XDP does not have; \
                      this daemon captures at XDP only"
                .to_owned(),
        });
    }
    Ok(())
}
