//! One attachment of the kernel program: what it is attached to and which
//! slots are in use. The operations live beside it, one file per
//! concern: `hooks` (TC/XDP and moves), `slots` (sessions), `chain` (native
//! code), `bench` (test runs).

use std::{os::fd::OwnedFd, sync::Arc};

use pktd_common::{ClientConfig, DEFAULT_INTERPRET_BUDGET, DIR_IN, Globals, MAX_CLIENTS, names};
use pktd_filter::{ValidProgram, reads_socket_buffer};
use pktd_translate::{Entry, Hook};

use super::{
    budget,
    error::CaptureError,
    lease::{Lease, Maps},
    link_stats::LinkStats,
    native::{Engine, SlotEngine},
    object::{Kernel, map_error},
};
use crate::netns::NetnsHandle;

/// The kernel program at one (namespace, interface), or loaded but not
/// attached (for BPF_PROG_TEST_RUN): its entry programs, its entries in
/// the shared maps, and its sessions' slots. The shared programs are
/// loaded once per process (see `object.rs`).
///
/// Dropping it detaches the programs (TCX and XDP links end with their fds)
/// and frees every session's maps.
///
/// ```no_run
/// use pktd_daemon::capture::{Attachment, ClientSpec, Engine, Hook};
/// use pktd_daemon::netns::Netns;
/// let netns = Netns::parse("lab")?;
/// let mut attachment = Attachment::attach(&netns, "veth0", Engine::Shared, Hook::Tc)?;
/// let filter = pktd_filter::compile("udp dst port 53", true, 262144)?;
/// let mut ring = attachment.add_client(&ClientSpec::default(), &filter)?;
/// while let Some(record) = ring.next_record() {
///     println!("{} bytes of {}", record.data.len(), record.wire_len);
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Attachment {
    pub(super) kernel: Arc<Kernel>,
    /// The entry programs, loaded as the hooks need them.
    pub(super) entries: EntryPrograms,
    pub(super) slots: [Option<SlotState>; MAX_CLIENTS as usize],
    pub(super) engine: Engine,
    /// Where the program runs: TC (both directions) or XDP (received
    /// packets only).
    pub(super) hook: Hook,
    /// Slots whose filters have native code installed.
    pub(super) native: u64,
    /// Slots whose current filter is installed for the interpreter.
    pub(super) filters_installed: u64,
    /// The slots in use as last published to the kernel.
    pub(super) published: u64,
    /// Which half of the program array the running chain's rest uses.
    pub(super) chain_half: u32,
    /// When each free slot was given back: a slot is taken again only
    /// after [`slots::QUARANTINE`](super::slots), so that no packet still
    /// carries the verdict of its previous occupant.
    pub(super) freed: [Option<std::time::Instant>; MAX_CLIENTS as usize],
    /// Slots given back whose previous occupant's native code may still be
    /// in the running chain (a removal whose rebuild was deferred, see
    /// [`Attachment::remove_client_deferred`]): not free until a rebuild
    /// has dropped it, and only then does their quarantine start.
    pub(super) stale: u64,
    /// Slots given back whose code a rebuild has dropped and whose filter
    /// and ring are being released (see [`Attachment::releasable`]): not
    /// free yet either.
    pub(super) releasing: u64,
    pub(super) ifindex: Option<u32>,
    /// Where the programs are attached, for moves between XDP and TC: the
    /// namespace held open since the attachment was made, never named
    /// again.
    pub(super) place: Option<(NetnsHandle, String)>,
    /// The XDP attachment, if any: a link, which detaches when dropped.
    pub(super) xdp_link: Option<OwnedFd>,
    /// The TC ingress attachment, if any.
    pub(super) tc_ingress: Option<OwnedFd>,
    /// The TC egress attachment, if any: made when a session first wants
    /// sent packets (each TCX attachment waits for an RCU grace period).
    pub(super) tc_egress: Option<OwnedFd>,
    /// The XDP program, not TC ingress, serves received packets.
    pub(super) xdp_receives: bool,
    /// `Globals::hand_over_mark`.
    pub(super) hand_over_mark: u32,
    /// The interface's own counters, once attached.
    pub(super) link_stats: Option<Arc<LinkStats>>,
    /// Its view of the shared maps: last, so that it (and with it the
    /// attachment's index) goes after the links.
    pub(super) maps: Maps,
}

/// What the attachment remembers of a session.
pub(super) struct SlotState {
    pub filter: ValidProgram,
    pub directions: u32,
    /// The kernel refused native code for this filter: always interpreted.
    pub refused: bool,
    /// Interface packets (received, sent) when the session started.
    pub seen_base: (u64, u64),
}

impl Attachment {
    /// Loads the programs of `hook` without attaching them anywhere (for
    /// BPF_PROG_TEST_RUN, and to prove at start-up that this kernel's
    /// verifier takes them).
    pub fn detached(engine: Engine, hook: Hook) -> Result<Self, CaptureError> {
        let kernel = Kernel::shared()?;
        if hook == Hook::Xdp {
            kernel.load_xdp()?;
        }
        let maps = Maps::new(&kernel, Lease::take(&kernel)?)?;
        let mut attachment = Self {
            entries: EntryPrograms::default(),
            kernel,
            slots: std::array::from_fn(|_| None),
            engine,
            hook,
            native: 0,
            filters_installed: 0,
            published: 0,
            chain_half: 0,
            freed: [None; MAX_CLIENTS as usize],
            stale: 0,
            releasing: 0,
            ifindex: None,
            place: None,
            xdp_link: None,
            tc_ingress: None,
            tc_egress: None,
            xdp_receives: hook == Hook::Xdp,
            hand_over_mark: random_u32()?,
            link_stats: None,
            maps,
        };
        attachment.publish_globals()?;
        attachment.load_entries()?;
        Ok(attachment)
    }

    /// Forwards the kernel program's log records to the daemon's log, when
    /// no task does it as they arrive (detached programs, or attachments
    /// made outside a tokio runtime).
    pub fn flush_kernel_log(&mut self) {
        self.kernel.flush_log();
    }

    /// The attachment's index among the attachments of this process (its
    /// entries in the shared maps).
    pub fn index(&self) -> u32 {
        self.maps.index()
    }

    /// The interface index, when attached.
    pub fn ifindex(&self) -> Option<u32> {
        self.ifindex
    }

    /// The namespace and interface the program is attached to.
    pub fn place(&self) -> Option<(&NetnsHandle, &str)> {
        self.place
            .as_ref()
            .map(|(netns, interface)| (netns, interface.as_str()))
    }

    /// Where the program runs.
    pub fn hook(&self) -> Hook {
        self.hook
    }

    /// The engine the attachment was made with.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Number of sessions in the attachment.
    pub fn client_count(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_some()).count()
    }

    /// Whether a session wants sent packets.
    pub(super) fn wants_sent(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|state| state.directions & pktd_common::DIR_OUT != 0)
    }

    /// Whether XDP can serve every session: each wants received packets
    /// only, and no filter reads the socket buffer's metadata (the packet
    /// type, the protocol, the VLAN tag), which XDP does not have.
    pub fn xdp_serves_all(&self) -> bool {
        self.slots
            .iter()
            .flatten()
            .all(|state| state.directions == DIR_IN && !reads_socket_buffer(&state.filter))
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

    pub(super) fn check_slot(&self, slot: u32) -> Result<(), CaptureError> {
        match self.slots.get(slot as usize) {
            Some(Some(_)) => Ok(()),
            _ => Err(CaptureError::NoSuchSlot { slot }),
        }
    }

    /// Tells the kernel how many slots to consider, which are interpreted
    /// and how many instructions each may run then, and which hook serves
    /// received packets; first installs the filters of the slots to be
    /// interpreted for the interpreter, if they are not.
    pub(super) fn publish_globals(&mut self) -> Result<(), CaptureError> {
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
        let interpreted = in_use & !self.native;
        for slot in 0..MAX_CLIENTS {
            if (interpreted & !self.filters_installed) & (1 << slot) == 0 {
                continue;
            }
            let filter = match &self.slots[slot as usize] {
                Some(state) => state.filter.clone(),
                None => continue,
            };
            self.install_filter(slot, &filter)?;
            self.filters_installed |= 1 << slot;
        }
        let lengths = |mask: u64| -> Vec<(u32, usize)> {
            self.slots
                .iter()
                .enumerate()
                .filter(|(slot, _)| mask & 1 << slot != 0)
                .filter_map(|(slot, state)| Some((slot as u32, state.as_ref()?.filter.len())))
                .collect()
        };
        let index = self.maps.index();
        self.maps
            .globals
            .set(
                index,
                Globals {
                    slot_count,
                    xdp_receives: u32::from(self.xdp_receives),
                    interpreted,
                    interpret_budget: DEFAULT_INTERPRET_BUDGET,
                    hand_over_mark: self.hand_over_mark,
                    interpret_caps: budget::caps(
                        &lengths(interpreted),
                        &lengths(in_use),
                        DEFAULT_INTERPRET_BUDGET,
                    ),
                },
                0,
            )
            .map_err(map_error("publishing the slot count", names::MAP_GLOBALS))?;
        self.published = in_use;
        Ok(())
    }
}

impl Drop for Attachment {
    /// Detaches, then takes every session's settings, filter and ring out
    /// of the shared maps (the lease resets the rest when it ends). Only
    /// slots still in use or not yet released have any: deleting from a
    /// map of maps waits for an RCU grace period.
    fn drop(&mut self) {
        self.xdp_link = None;
        self.tc_ingress = None;
        self.tc_egress = None;
        let occupied = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, state)| state.is_some())
            .fold(0u64, |mask, (slot, _)| mask | 1 << slot);
        let slots = occupied | self.stale | self.releasing;
        for slot in (0..MAX_CLIENTS).filter(|slot| slots & (1 << slot) != 0) {
            let entry = self.maps.entry(slot);
            if let Err(err) = self.maps.clients.set(entry, ClientConfig::default(), 0) {
                tracing::warn!(slot, %err, "deactivating a client");
            }
        }
        self.maps.lease.delete_entries(slots);
    }
}

/// An attachment's entry programs (see `pktd_translate::entry`), each
/// loaded when first needed.
#[derive(Default)]
pub(super) struct EntryPrograms([Option<OwnedFd>; 3]);

impl EntryPrograms {
    /// The program at `entry`, if loaded.
    pub fn get(&self, entry: Entry) -> Option<&OwnedFd> {
        self.0[entry as usize].as_ref()
    }

    /// The place of the program at `entry`.
    pub fn place(&mut self, entry: Entry) -> &mut Option<OwnedFd> {
        &mut self.0[entry as usize]
    }

    /// The name the program at `entry` is loaded with.
    pub fn name(entry: Entry) -> &'static str {
        match entry {
            Entry::Ingress => names::ENTRY_INGRESS,
            Entry::Egress => names::ENTRY_EGRESS,
            Entry::Xdp => names::ENTRY_XDP,
        }
    }
}

// The kernel program's prefix must cover every header a filter commonly
// reads (Ethernet + two VLAN tags + IPv6 + TCP with options).
const _: () = assert!(pktd_common::PREFIX_LEN >= 14 + 8 + 40 + 60);

/// A random number from the kernel.
fn random_u32() -> Result<u32, CaptureError> {
    let mut bytes = [0u8; 4];
    rustix::rand::getrandom(&mut bytes, rustix::rand::GetRandomFlags::empty()).map_err(
        |errno| CaptureError::Random {
            source: errno.into(),
        },
    )?;
    Ok(u32::from_ne_bytes(bytes))
}
