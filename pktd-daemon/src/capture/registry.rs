//! The daemon's attachments: the kernel program attached on demand per
//! (network namespace, interface), shared by every session there, detached
//! when the last one leaves.
//!
//! Every operation here may load programs into the verifier or enter a
//! namespace: call them from blocking threads, never from the async
//! runtime. Each attachment has its own lock, held for the whole of a
//! change (a filter added, replaced or removed, a move between hooks), so
//! changes on one interface are serialised while other interfaces, the
//! registry's map and every reader of counters go on. Counters are read
//! through handles ([`SlotCounters`], [`InterfaceCounterReader`]) that
//! take no lock at all.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, OnceLock,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
        mpsc,
    },
    time::Duration,
};

use pktd_filter::{ValidProgram, reads_socket_buffer};

use pktd_translate::Hook;

use super::{
    attachment::Attachment,
    error::CaptureError,
    native::{Engine, HookChoice},
    ring::Ring,
    slots::{self, ClientSpec, InterfaceCounterReader, SlotCounters},
};
use crate::{
    netns::{Netns, NetnsHandle},
    sync::lock,
};

/// Drivers whose XDP is not run on their own receive buffers: their XDP
/// converts every skb (veth measured slower than TC, docs/performance.md),
/// and generic XDP does the same.
const XDP_CONVERTS_SKBS: &[&str] = &["veth", "tun", "bridge", "loopback", ""];

/// Whether XDP is worth it on `interface`: its driver runs XDP on its own
/// receive buffers.
fn xdp_pays_off(netns: &NetnsHandle, interface: &str) -> bool {
    let driver = netns.run(|| crate::sys::interface_driver(interface));
    match driver {
        Ok(Ok(driver)) => !XDP_CONVERTS_SKBS.contains(&driver.as_str()),
        _ => false,
    }
}

/// Identity of an attachment: the namespace's (device, inode) and the
/// interface name, so two names of one namespace share one attachment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct AttachmentKey {
    netns: (u64, u64),
    interface: String,
}

/// One (namespace, interface) of the registry.
struct Entry {
    key: AttachmentKey,
    /// The namespace as the first session there named it.
    netns: String,
    /// The attachment and who occupies its slots.
    attachment: Mutex<Attached>,
    /// Set (under `attachment`'s lock) when the entry left the registry: a
    /// caller that waited for the lock must start over with a fresh entry.
    retired: AtomicBool,
    /// Reads the interface's counters without the attachment's lock.
    counters: OnceLock<InterfaceCounterReader>,
    /// Sessions in the attachment, for the performance statistics.
    sessions: AtomicU32,
}

/// An entry's attachment, once made (`None` again after the last session
/// left), and the occupant of each of its slots.
#[derive(Default)]
struct Attached {
    attachment: Option<Attachment>,
    /// The [`SlotRef::occupant`] of each slot: a slot given back and taken
    /// again has a new occupant, so a late or repeated removal through an
    /// old reference leaves the new session alone.
    occupants: HashMap<u32, u64>,
}

/// Where a session lives: its attachment and slot.
#[derive(Clone)]
pub struct SlotRef {
    entry: Arc<Entry>,
    slot: u32,
    /// Unique among all sessions the registry ever added.
    occupant: u64,
}

impl SlotRef {
    /// The slot in the attachment.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The attachment's namespace identity (device, inode), whatever name
    /// reached it.
    pub fn netns_key(&self) -> (u64, u64) {
        self.entry.key.netns
    }
}

impl std::fmt::Debug for SlotRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotRef")
            .field("netns", &self.entry.netns)
            .field("interface", &self.entry.key.interface)
            .field("slot", &self.slot)
            .finish()
    }
}

/// What a new session gets from [`Registry::add_client`].
pub struct Added {
    /// Where it lives.
    pub slot: SlotRef,
    /// Its records.
    pub ring: Ring,
    /// Its counters.
    pub counters: SlotCounters,
}

/// Traffic through one attachment, for the performance statistics.
pub struct InterfaceSnapshot {
    /// The namespace as the first session there named it.
    pub netns: String,
    /// The namespace's identity (device, inode).
    pub netns_key: (u64, u64),
    /// The interface.
    pub interface: String,
    /// Everything the program saw there.
    pub counters: pktd_common::InterfaceCounters,
    /// Sessions capturing there.
    pub sessions: u32,
}

/// Every attachment of the daemon.
pub struct Registry {
    entries: Mutex<HashMap<AttachmentKey, Arc<Entry>>>,
    engine: Engine,
    hook: HookChoice,
    next_occupant: AtomicU64,
    /// Attachments whose native code a removal left to rebuild, for the
    /// rebuild thread (see [`rebuild_after_removals`]).
    rebuilds: mpsc::Sender<Arc<Entry>>,
}

/// How long the rebuild thread waits after a removal for more, so that
/// sessions closing together cost one rebuild rather than one each.
const REBUILD_DELAY: Duration = Duration::from_millis(20);

/// The rebuild thread: releases what removed sessions leave (their native
/// code, filter and ring; `Attachment::release_stale`), one rebuild per
/// attachment for all the removals that came within [`REBUILD_DELAY`] of
/// each other. A removal itself takes effect at once (the slot is
/// deactivated) and returns without waiting for the verifier or for RCU;
/// until the release, the old code only computes a verdict no slot reads.
/// Ends when the registry is dropped.
fn rebuild_after_removals(requests: mpsc::Receiver<Arc<Entry>>) {
    while let Ok(first) = requests.recv() {
        std::thread::sleep(REBUILD_DELAY);
        let mut entries = vec![first];
        while let Ok(more) = requests.try_recv() {
            if !entries.iter().any(|entry| Arc::ptr_eq(entry, &more)) {
                entries.push(more);
            }
        }
        for entry in entries {
            let releasable = {
                let mut guard = lock(&entry.attachment);
                if entry.retired.load(Ordering::SeqCst) {
                    continue;
                }
                let Some(attachment) = guard.attachment.as_mut() else {
                    continue;
                };
                if let Err(err) = attachment.rebuild_stale() {
                    tracing::warn!(
                        interface = entry.key.interface,
                        err = %crate::errors::chain(&err),
                        "rebuilding native filters after removals"
                    );
                }
                attachment.releasable()
            };
            // Outside the lock: opens and closes go on meanwhile.
            let (maps, slots) = releasable;
            slots::release(&maps, slots);
            if let Some(attachment) = lock(&entry.attachment).attachment.as_mut() {
                attachment.released(slots);
            }
        }
    }
}

impl Registry {
    /// An empty registry whose attachments run filters with `engine` at
    /// the hook `hook` says.
    pub fn new(engine: Engine, hook: HookChoice) -> Arc<Self> {
        let (rebuilds, requests) = mpsc::channel();
        std::thread::Builder::new()
            .name("pktd-rebuild".into())
            .spawn(move || rebuild_after_removals(requests))
            .expect("starting the rebuild thread");
        Arc::new(Self {
            entries: Mutex::default(),
            engine,
            hook,
            next_occupant: AtomicU64::new(1),
            rebuilds,
        })
    }

    /// Adds a session on `interface` in `netns`, attaching the program there
    /// first if no session uses it yet. Blocking.
    pub fn add_client(
        &self,
        netns: &Netns,
        interface: &str,
        spec: &ClientSpec,
        filter: &ValidProgram,
    ) -> Result<Added, CaptureError> {
        // Opened once: the attachment keeps this very namespace, whatever
        // becomes of its name.
        let netns = netns.open()?;
        let key = AttachmentKey {
            netns: netns.key(),
            interface: interface.to_owned(),
        };
        loop {
            let entry = self.entry(&key, &netns);
            let mut attached = lock(&entry.attachment);
            if entry.retired.load(Ordering::SeqCst) {
                // It lost its last session while we waited: a new entry.
                continue;
            }
            let result = self.add_to(&entry, &mut attached.attachment, &netns, spec, filter);
            if attached
                .attachment
                .as_ref()
                .is_none_or(|a| a.client_count() == 0)
            {
                // The first session failed: keep no idle attachment.
                self.retire(&entry, &mut attached);
            }
            let (ring, counters) = result?;
            let occupant = self.next_occupant.fetch_add(1, Ordering::Relaxed);
            attached.occupants.insert(ring.slot(), occupant);
            return Ok(Added {
                slot: SlotRef {
                    entry: entry.clone(),
                    slot: ring.slot(),
                    occupant,
                },
                ring,
                counters,
            });
        }
    }

    /// The registry's entry for `key`, made if missing.
    fn entry(&self, key: &AttachmentKey, netns: &NetnsHandle) -> Arc<Entry> {
        lock(&self.entries)
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Entry {
                    key: key.clone(),
                    netns: netns.to_string(),
                    attachment: Mutex::default(),
                    retired: AtomicBool::new(false),
                    counters: OnceLock::new(),
                    sessions: AtomicU32::new(0),
                })
            })
            .clone()
    }

    /// The body of [`Registry::add_client`], under the entry's lock.
    fn add_to(
        &self,
        entry: &Entry,
        attachment: &mut Option<Attachment>,
        netns: &NetnsHandle,
        spec: &ClientSpec,
        filter: &ValidProgram,
    ) -> Result<(Ring, SlotCounters), CaptureError> {
        let interface = &entry.key.interface;
        let (attachment, ring) = match attachment {
            Some(attachment) => {
                let needs_tc =
                    spec.directions != pktd_common::DIR_IN || reads_socket_buffer(filter);
                if needs_tc && self.hook == HookChoice::Auto && attachment.hook() == Hook::Xdp {
                    attachment.move_to_tc()?;
                }
                let ring = attachment.add_client(spec, filter)?;
                (attachment, ring)
            }
            None => {
                let (made, ring) = self.attach(netns, interface, spec, filter)?;
                tracing::info!(%netns, interface, engine = %self.engine, hook = ?made.hook(), "attached");
                if entry.counters.get().is_none() {
                    let _ = entry.counters.set(made.interface_counter_reader()?);
                }
                (attachment.insert(made), ring)
            }
        };
        let counters = attachment.slot_counters(ring.slot())?;
        entry
            .sessions
            .store(attachment.client_count() as u32, Ordering::Relaxed);
        Ok((ring, counters))
    }

    /// A new attachment with the first session in it.
    fn attach(
        &self,
        netns: &NetnsHandle,
        interface: &str,
        spec: &ClientSpec,
        filter: &ValidProgram,
    ) -> Result<(Attachment, Ring), CaptureError> {
        let received_only = spec.directions == pktd_common::DIR_IN && !reads_socket_buffer(filter);
        let egress = spec.directions & pktd_common::DIR_OUT != 0;
        let at = |hook| {
            Attachment::attach_with(netns, interface, self.engine, hook, egress, |made| {
                made.add_client(spec, filter)
            })
        };
        match self.hook {
            HookChoice::Tc => at(Hook::Tc),
            HookChoice::Xdp => at(Hook::Xdp),
            HookChoice::Auto if received_only && xdp_pays_off(netns, interface) => {
                at(Hook::Xdp).or_else(|err| {
                    tracing::info!(%netns, interface, err = %crate::errors::chain(&err), "no XDP here; TC");
                    at(Hook::Tc)
                })
            }
            HookChoice::Auto => at(Hook::Tc),
        }
    }

    /// Takes `entry` out of the registry and detaches its program (the
    /// caller holds the entry's lock, `attached`).
    fn retire(&self, entry: &Arc<Entry>, attached: &mut Attached) {
        entry.retired.store(true, Ordering::SeqCst);
        entry.sessions.store(0, Ordering::Relaxed);
        attached.occupants.clear();
        let detached = attached.attachment.take().is_some();
        let mut entries = lock(&self.entries);
        if entries
            .get(&entry.key)
            .is_some_and(|current| Arc::ptr_eq(current, entry))
        {
            entries.remove(&entry.key);
        }
        if detached {
            tracing::info!(
                interface = entry.key.interface,
                "detached (no sessions left)"
            );
        }
    }

    /// Replaces a session's filter; one that reads the socket buffer's
    /// metadata moves an XDP attachment to TC first. Blocking.
    pub fn set_filter(&self, slot: &SlotRef, filter: &ValidProgram) -> Result<(), CaptureError> {
        let mut attached = lock(&slot.entry.attachment);
        if attached.occupants.get(&slot.slot) != Some(&slot.occupant) {
            return Err(CaptureError::NoSuchSlot { slot: slot.slot });
        }
        let attachment = attached
            .attachment
            .as_mut()
            .ok_or(CaptureError::NoSuchSlot { slot: slot.slot })?;
        if reads_socket_buffer(filter)
            && self.hook == HookChoice::Auto
            && attachment.hook() == Hook::Xdp
        {
            attachment.move_to_tc()?;
        }
        attachment.set_filter(slot.slot, filter)
    }

    /// Changes a session's settings (see [`Attachment::update_client`]).
    /// Blocking.
    pub fn update_client(&self, slot: &SlotRef, spec: &ClientSpec) -> Result<(), CaptureError> {
        let mut attached = lock(&slot.entry.attachment);
        if attached.occupants.get(&slot.slot) != Some(&slot.occupant) {
            return Err(CaptureError::NoSuchSlot { slot: slot.slot });
        }
        attached
            .attachment
            .as_mut()
            .ok_or(CaptureError::NoSuchSlot { slot: slot.slot })?
            .update_client(slot.slot, spec)
    }

    /// Removes a session; the last one on an attachment detaches it. A
    /// removal through a reference whose session is gone already does
    /// nothing. Blocking.
    pub fn remove_client(&self, slot: &SlotRef) {
        let entry = &slot.entry;
        let mut guard = lock(&entry.attachment);
        if guard.occupants.get(&slot.slot) != Some(&slot.occupant) {
            return;
        }
        guard.occupants.remove(&slot.slot);
        let Some(attachment) = guard.attachment.as_mut() else {
            return;
        };
        if let Err(err) = attachment.remove_client_deferred(slot.slot) {
            tracing::warn!(slot = slot.slot, %err, "removing a client");
        }
        entry
            .sessions
            .store(attachment.client_count() as u32, Ordering::Relaxed);
        if attachment.client_count() == 0 {
            self.retire(entry, &mut guard);
            return;
        }
        // The last session wanting sent packets has gone: back to XDP where
        // it pays off.
        let back_to_xdp = self.hook == HookChoice::Auto
            && attachment.hook() == Hook::Tc
            && attachment.xdp_serves_all()
            && attachment
                .place()
                .is_some_and(|(netns, interface)| xdp_pays_off(netns, interface));
        if back_to_xdp && let Err(err) = attachment.move_to_xdp() {
            tracing::warn!(
                interface = entry.key.interface,
                err = %crate::errors::chain(&err),
                "staying at TC"
            );
        }
        // The thread lives as long as the registry: a send cannot fail.
        let _ = self.rebuilds.send(entry.clone());
    }

    /// Traffic counters of every attachment; takes no attachment's lock.
    pub fn interfaces(&self) -> Vec<InterfaceSnapshot> {
        let entries: Vec<Arc<Entry>> = lock(&self.entries).values().cloned().collect();
        entries
            .iter()
            .filter(|entry| !entry.retired.load(Ordering::SeqCst))
            .filter_map(|entry| {
                let counters = entry.counters.get()?.read().ok()?;
                Some(InterfaceSnapshot {
                    netns: entry.netns.clone(),
                    netns_key: entry.key.netns,
                    interface: entry.key.interface.clone(),
                    counters,
                    sessions: entry.sessions.load(Ordering::Relaxed),
                })
            })
            .collect()
    }

    /// Detaches everything (shutdown). Blocking: waits for changes in
    /// progress.
    pub fn clear(&self) {
        let entries: Vec<Arc<Entry>> = lock(&self.entries).values().cloned().collect();
        for entry in entries {
            let mut attached = lock(&entry.attachment);
            self.retire(&entry, &mut attached);
        }
    }
}
