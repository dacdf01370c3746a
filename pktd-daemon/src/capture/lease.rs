//! Attachment indices: which entries of the shared maps (`object.rs`) an
//! attachment owns, and its view of them ([`Maps`]). An index is leased to
//! one attachment at a time; when the lease ends, the attachment's state in
//! the shared maps is reset and the index rests for [`REST`] before
//! another attachment gets it, so that no packet still passing through the
//! old attachment's programs is taken for the new one's.

use std::{
    os::fd::{AsFd, BorrowedFd, OwnedFd},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Instant,
};

use aya::maps::{
    Array, ArrayOfMaps, IterableMap as _, Map, MapData, PerCpuArray, PerCpuValues, RingBuf,
};
use pktd_common::{
    ClientConfig, ClientCounters, ClientUsage, FilterProgram, Globals, InterfaceCounters,
    MAX_ATTACHMENTS, MAX_CLIENTS, jump, names,
};

use super::{
    error::CaptureError,
    object::{self, Kernel, map_error},
};
use crate::sys;

/// How long an index given back rests: a packet's pass through the
/// programs takes microseconds (the slots' quarantine, for the same
/// reason).
const REST: std::time::Duration = std::time::Duration::from_millis(100);

/// The process's indices (the kernel program is the process's too).
static LEASES: std::sync::LazyLock<Leases> = std::sync::LazyLock::new(Leases::default);

/// Indices whose counters maps are made together: putting maps into a map
/// of maps waits for an RCU grace period (some 8 ms here), once per
/// command, so one batch of 16 costs what one would. 16 maps of 4 KiB per
/// possible CPU each.
const COUNTERS_BLOCK: u32 = 16;

/// Every index the process has used: whether it is leased and when it is
/// ready again; and the counters maps, made once per index.
#[derive(Default)]
struct Leases {
    indices: Mutex<Vec<IndexState>>,
    /// The inner map of PKTD_COUNTERS at each index made so far.
    counters: Mutex<Vec<Arc<OwnedFd>>>,
}

struct IndexState {
    leased: bool,
    /// When it may be leased again (free ones).
    ready_at: Instant,
}

/// One attachment's index, given back when dropped.
pub(super) struct Lease(Held);

/// What a lease holds.
pub(super) struct Held {
    kernel: Arc<Kernel>,
    index: u32,
    counters: Arc<OwnedFd>,
}

impl std::ops::Deref for Lease {
    type Target = Held;

    fn deref(&self) -> &Held {
        &self.0
    }
}

impl Lease {
    /// Leases the free index ready longest (a fresh one when none is ready;
    /// waiting for the end of one's rest when all are leased or resting).
    /// Blocking.
    pub fn take(kernel: &Arc<Kernel>) -> Result<Arc<Self>, CaptureError> {
        let leases = &*LEASES;
        let (index, ready_at) = {
            let mut indices = leases.indices();
            let now = Instant::now();
            let free = |ready: bool| {
                indices
                    .iter()
                    .enumerate()
                    .filter(|(_, state)| !state.leased && (!ready || state.ready_at <= now))
                    .min_by_key(|(_, state)| state.ready_at)
                    .map(|(index, _)| index)
            };
            let index = match free(true) {
                Some(index) => index,
                None if indices.len() < MAX_ATTACHMENTS as usize => {
                    indices.push(IndexState {
                        leased: false,
                        ready_at: now,
                    });
                    indices.len() - 1
                }
                None => free(false).ok_or(CaptureError::AttachmentsFull {
                    max: MAX_ATTACHMENTS,
                })?,
            };
            indices[index].leased = true;
            (index as u32, indices[index].ready_at)
        };
        let wait = ready_at.saturating_duration_since(Instant::now());
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let counters = match leases.counters_of(kernel, index) {
            Ok(counters) => counters,
            Err(err) => {
                leases.indices()[index as usize].leased = false;
                return Err(err);
            }
        };
        let held = Held {
            kernel: kernel.clone(),
            index,
            counters,
        };
        held.reset();
        Ok(Arc::new(Self(held)))
    }
}

impl Held {
    /// The index.
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The attachment's counters map.
    pub fn counters(&self) -> BorrowedFd<'_> {
        self.counters.as_fd()
    }

    /// Deletes the filter and ring entries of `slots` (bit `i` = slot `i`)
    /// from the shared maps: the memory goes with the last reference.
    /// Blocking: each entry there is waits for an RCU grace period (one
    /// that is not there costs nothing).
    pub fn delete_entries(&self, slots: u64) {
        for slot in (0..MAX_CLIENTS).filter(|slot| slots & (1 << slot) != 0) {
            for name in [names::MAP_FILTERS, names::MAP_RINGS] {
                let Ok(map) = self.kernel.map(name) else {
                    continue;
                };
                match sys::delete_map_entry(map, self.index * MAX_CLIENTS + slot) {
                    Ok(()) => {}
                    Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(err) => tracing::warn!(slot, map = name, %err, "releasing a client's map"),
                }
            }
        }
    }

    /// Leaves nothing of a previous attachment at this index that the
    /// kernel program could act on or a reader could see: no native code
    /// in its blocks, no active client, no clients to scan, no traffic
    /// counted, no filter or ring. Failures are logged: nothing runs at a
    /// reset index, and the next lease resets it again.
    fn reset(&self) {
        let kernel = &*self.kernel;
        let block = jump::block(self.index);
        for map in [names::MAP_JUMP, names::MAP_XDP_JUMP] {
            let Ok(fd) = kernel.map(map) else { continue };
            for entry in block..block + jump::BLOCK {
                match sys::delete_map_entry(fd, entry) {
                    Ok(()) => {}
                    Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(err) => tracing::warn!(index = self.index, %err, "resetting native code"),
                }
            }
        }
        self.delete_entries(u64::MAX);
        if let Err(err) = self.reset_maps() {
            tracing::warn!(
                index = self.index,
                err = %crate::errors::chain(&err),
                "resetting an attachment's index"
            );
        }
    }

    fn reset_maps(&self) -> Result<(), CaptureError> {
        let kernel = &*self.kernel;
        let mut globals: Array<MapData, Globals> = object::reopen(
            kernel.map(names::MAP_GLOBALS)?,
            names::MAP_GLOBALS,
            Map::Array,
        )?;
        globals
            .set(self.index, Globals::default(), 0)
            .map_err(map_error("resetting", names::MAP_GLOBALS))?;
        let mut interface: PerCpuArray<MapData, InterfaceCounters> = object::reopen(
            kernel.map(names::MAP_INTERFACE)?,
            names::MAP_INTERFACE,
            Map::PerCpuArray,
        )?;
        let zeros =
            PerCpuValues::try_from(vec![InterfaceCounters::default(); object::possible_cpus()?])
                .map_err(|source| CaptureError::Io {
                    operation: "building per-CPU counters",
                    source,
                })?;
        interface
            .set(self.index, zeros, 0)
            .map_err(map_error("resetting", names::MAP_INTERFACE))?;
        let mut clients: Array<MapData, ClientConfig> = object::reopen(
            kernel.map(names::MAP_CLIENTS)?,
            names::MAP_CLIENTS,
            Map::Array,
        )?;
        for slot in 0..MAX_CLIENTS {
            clients
                .set(self.index * MAX_CLIENTS + slot, ClientConfig::default(), 0)
                .map_err(map_error("resetting", names::MAP_CLIENTS))?;
        }
        Ok(())
    }
}

impl Drop for Lease {
    /// Resets the index and gives it back: on the blocking pool when there
    /// is a runtime (the last holder is often a session ending on it; the
    /// reset is a few hundred system calls), else here.
    fn drop(&mut self) {
        let held = Held {
            kernel: self.kernel.clone(),
            index: self.index,
            counters: self.counters.clone(),
        };
        let give_back = move || {
            held.reset();
            let mut indices = LEASES.indices();
            let state = &mut indices[held.index as usize];
            state.leased = false;
            state.ready_at = Instant::now() + REST;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(give_back)),
            Err(_) => give_back(),
        }
    }
}

impl Leases {
    fn indices(&self) -> MutexGuard<'_, Vec<IndexState>> {
        self.indices.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The counters map of `index`, made (with those of its block) if it
    /// is not yet.
    fn counters_of(&self, kernel: &Kernel, index: u32) -> Result<Arc<OwnedFd>, CaptureError> {
        let mut counters = self.counters.lock().unwrap_or_else(PoisonError::into_inner);
        while counters.len() <= index as usize {
            let first = counters.len() as u32;
            let last = (first + COUNTERS_BLOCK).min(MAX_ATTACHMENTS);
            let made = (first..last)
                .map(|_| {
                    let inner: PerCpuArray<MapData, ClientCounters> =
                        PerCpuArray::create(MAX_CLIENTS, 0)
                            .map_err(map_error("creating counters", names::MAP_COUNTERS))?;
                    object::duplicate(inner.map().fd().as_fd())
                })
                .collect::<Result<Vec<OwnedFd>, CaptureError>>()?;
            let keys: Vec<u32> = (first..last).collect();
            let fds: Vec<BorrowedFd<'_>> = made.iter().map(AsFd::as_fd).collect();
            sys::set_fd_entries(kernel.map(names::MAP_COUNTERS)?, &keys, &fds).map_err(
                |source| CaptureError::Io {
                    operation: "installing attachments' counters",
                    source,
                },
            )?;
            counters.extend(made.into_iter().map(Arc::new));
        }
        Ok(counters[index as usize].clone())
    }
}

/// One attachment's view of the shared maps, each through its own fd: its
/// entries are `index` in the maps indexed by attachment, and `index *
/// MAX_CLIENTS + slot` in those indexed by (attachment, slot) (see
/// [`Maps::entry`]); the counters map is its own. Writes go through these
/// handles without any lock: the kernel keeps each update whole.
pub(super) struct Maps {
    pub globals: Array<MapData, Globals>,
    pub clients: Array<MapData, ClientConfig>,
    pub filters: ArrayOfMaps<MapData, Array<MapData, FilterProgram>>,
    pub rings: ArrayOfMaps<MapData, RingBuf<MapData>>,
    /// A second fd of `rings`, for deleting entries (aya 0.14's
    /// ArrayOfMaps can set but not delete; the lease deletes the rest).
    pub rings_fd: OwnedFd,
    /// PKTD_JUMP, PKTD_XDP_JUMP and PKTD_VERDICTS, for the native programs.
    pub jump_fd: OwnedFd,
    pub xdp_jump_fd: OwnedFd,
    pub verdicts_fd: OwnedFd,
    /// This attachment's counters (the inner map of PKTD_COUNTERS at
    /// `index`).
    pub counters: PerCpuArray<MapData, ClientCounters>,
    pub usage: Array<MapData, ClientUsage>,
    pub interface: PerCpuArray<MapData, InterfaceCounters>,
    /// The attachment's index, held until the attachment and whatever
    /// still releases its entries are gone (the last field: dropped after
    /// the others).
    pub lease: Arc<Lease>,
}

impl Maps {
    /// The view of attachment `lease`.
    pub fn new(kernel: &Kernel, lease: Arc<Lease>) -> Result<Self, CaptureError> {
        let fd = |name| kernel.map(name).and_then(object::duplicate);
        Ok(Self {
            globals: typed(kernel, names::MAP_GLOBALS, Map::Array)?,
            clients: typed(kernel, names::MAP_CLIENTS, Map::Array)?,
            filters: typed(kernel, names::MAP_FILTERS, Map::ArrayOfMaps)?,
            rings: typed(kernel, names::MAP_RINGS, Map::ArrayOfMaps)?,
            rings_fd: fd(names::MAP_RINGS)?,
            jump_fd: fd(names::MAP_JUMP)?,
            xdp_jump_fd: fd(names::MAP_XDP_JUMP)?,
            verdicts_fd: fd(names::MAP_VERDICTS)?,
            counters: object::reopen(lease.counters(), names::MAP_COUNTERS, Map::PerCpuArray)?,
            usage: typed(kernel, names::MAP_USAGE, Map::Array)?,
            interface: typed(kernel, names::MAP_INTERFACE, Map::PerCpuArray)?,
            lease,
        })
    }

    /// The attachment's index.
    pub fn index(&self) -> u32 {
        self.lease.index()
    }

    /// The entry of slot `slot` in the maps indexed by (attachment, slot).
    pub fn entry(&self, slot: u32) -> u32 {
        self.index() * MAX_CLIENTS + slot
    }

    /// The first entry of the attachment's block in the program arrays.
    pub fn block(&self) -> u32 {
        jump::block(self.index())
    }
}

/// Shared map `name` through a new fd, as aya type `T` (of `Map` variant
/// `variant`).
fn typed<T>(
    kernel: &Kernel,
    name: &'static str,
    variant: fn(MapData) -> Map,
) -> Result<T, CaptureError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    object::reopen(kernel.map(name)?, name, variant)
}
