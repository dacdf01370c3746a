//! One loaded copy of the kernel program: what it is attached to and which
//! slots are in use. The operations live beside it, one file per
//! concern: `hooks` (TC/XDP and moves), `slots` (sessions), `chain` (native
//! code), `bench` (test runs).

use std::sync::Arc;

use aya::{
    Ebpf,
    programs::{tc::SchedClassifierLinkId, xdp::XdpLinkId},
};
use pktd_common::{DEFAULT_INTERPRET_BUDGET, DIR_IN, Globals, MAX_CLIENTS, names};
use pktd_filter::{ValidProgram, reads_socket_buffer};
use pktd_translate::Hook;

use super::{
    budget,
    error::CaptureError,
    kernel_log::KernelLog,
    link_stats::LinkStats,
    native::{Engine, SlotEngine},
    object::{self, Maps, map_error},
};
use crate::netns::{Netns, NetnsHandle};

/// The kernel program loaded once for one (namespace, interface), or
/// loaded but not attached (for BPF_PROG_TEST_RUN).
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
    pub(super) ebpf: Ebpf,
    pub(super) maps: Maps,
    pub(super) slots: [Option<SlotState>; MAX_CLIENTS as usize],
    pub(super) engine: Engine,
    /// Where the program runs: TC (both directions) or XDP (received
    /// packets only).
    pub(super) hook: Hook,
    /// Slots whose filters have native code installed.
    pub(super) native: u64,
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
    /// The XDP attachment, if any.
    pub(super) xdp_link: Option<XdpLinkId>,
    /// The TC attachments (ingress, egress), if any.
    pub(super) tc_links: Vec<(&'static str, SchedClassifierLinkId)>,
    /// The XDP program, not TC ingress, serves received packets.
    pub(super) xdp_receives: bool,
    /// `Globals::hand_over_mark`.
    pub(super) hand_over_mark: u32,
    /// The interface's own counters, once attached.
    pub(super) link_stats: Option<Arc<LinkStats>>,
    /// The kernel program's log.
    pub(super) kernel_log: KernelLog,
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
        let (mut ebpf, maps) = object::load()?;
        if hook == Hook::Xdp {
            object::load_xdp(&mut ebpf, &maps)?;
        }
        let kernel_log = KernelLog::take(&mut ebpf);
        Ok(Self {
            ebpf,
            maps,
            slots: std::array::from_fn(|_| None),
            engine,
            hook,
            native: 0,
            chain_half: 0,
            freed: [None; MAX_CLIENTS as usize],
            stale: 0,
            releasing: 0,
            ifindex: None,
            place: None,
            xdp_link: None,
            tc_links: Vec::new(),
            xdp_receives: hook == Hook::Xdp,
            hand_over_mark: random_u32()?,
            link_stats: None,
            kernel_log,
        })
    }

    /// Loads the programs and attaches them to `interface` in `netns`: at
    /// TC ingress and egress, or at XDP (received packets only; the kernel
    /// picks the driver's native mode when it has one, generic XDP
    /// otherwise).
    pub fn attach(
        netns: &Netns,
        interface: &str,
        engine: Engine,
        hook: Hook,
    ) -> Result<Self, CaptureError> {
        Self::attach_in(&netns.open()?, interface, engine, hook)
    }

    /// [`Attachment::attach`] in a namespace already open.
    pub fn attach_in(
        netns: &NetnsHandle,
        interface: &str,
        engine: Engine,
        hook: Hook,
    ) -> Result<Self, CaptureError> {
        let mut attachment = Self::detached(engine, hook)?;
        let ifindex = match hook {
            Hook::Tc => attachment.attach_tc(netns, interface)?,
            Hook::Xdp => {
                let ifindex = attachment.attach_xdp(netns, interface)?;
                attachment.publish_globals()?;
                ifindex
            }
        };
        attachment.ifindex = Some(ifindex);
        attachment.place = Some((netns.clone(), interface.to_owned()));
        // Without them, clients only get no bound on a restart's gap.
        attachment.link_stats = match netns
            .run(|| LinkStats::open(interface))
            .map_err(std::io::Error::other)
            .flatten()
        {
            Ok(stats) => Some(Arc::new(stats)),
            Err(err) => {
                tracing::warn!(interface, %err, "the interface's own counters cannot be read");
                None
            }
        };
        attachment.kernel_log.start();
        Ok(attachment)
    }

    /// Forwards the kernel program's log records to the daemon's log, when
    /// no task does it as they arrive (detached programs, or attachments
    /// made outside a tokio runtime).
    pub fn flush_kernel_log(&mut self) {
        self.kernel_log.flush();
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
    /// received packets.
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
        let lengths = |mask: u64| -> Vec<(u32, usize)> {
            self.slots
                .iter()
                .enumerate()
                .filter(|(slot, _)| mask & 1 << slot != 0)
                .filter_map(|(slot, state)| Some((slot as u32, state.as_ref()?.filter.len())))
                .collect()
        };
        self.maps
            .globals
            .set(
                0,
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
            .map_err(map_error("publishing the slot count", names::MAP_GLOBALS))
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
