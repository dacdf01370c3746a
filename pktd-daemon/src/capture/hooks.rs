//! Where the kernel program runs: TC ingress and egress, or XDP for
//! received packets only, through the attachment's entry programs; and
//! moving between them without losing or doubling a packet.

use std::{
    os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd},
    sync::Arc,
};

use pktd_translate::{Entry, Hook, MapFds};

use super::{
    attachment::{Attachment, EntryPrograms},
    error::CaptureError,
    link_stats::LinkStats,
    native::{self, Engine},
};
use crate::{
    netns::{Netns, NetnsHandle},
    sys::{self, LinkTarget},
};

impl Attachment {
    /// Loads the programs and attaches them to `interface` in `netns`: at
    /// TC ingress (and egress once a session wants sent packets), or at
    /// XDP (received packets only; the kernel picks the driver's native
    /// mode when it has one, generic XDP otherwise).
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
        Self::attach_with(netns, interface, engine, hook, false, |_| Ok(())).map(|(made, ())| made)
    }

    /// [`Attachment::attach_in`], at TC egress too if `egress`, running
    /// `first` (the first session's setup) on the attachment meanwhile:
    /// attaching and putting a session's ring into the shared map each
    /// wait for an RCU grace period, which then pass together. The
    /// attachment is only reached through its interface once attached.
    pub fn attach_with<T>(
        netns: &NetnsHandle,
        interface: &str,
        engine: Engine,
        hook: Hook,
        egress: bool,
        first: impl FnOnce(&mut Self) -> Result<T, CaptureError>,
    ) -> Result<(Self, T), CaptureError> {
        let mut attachment = Self::detached(engine, hook)?;
        let programs = match hook {
            Hook::Tc => (
                attachment.owned_entry(Entry::Ingress)?,
                egress
                    .then(|| attachment.owned_entry(Entry::Egress))
                    .transpose()?,
            ),
            Hook::Xdp => (attachment.owned_entry(Entry::Xdp)?, None),
        };
        let (linked, first) = std::thread::scope(|scope| {
            let linked = scope.spawn(|| link_all(netns, interface, hook, programs));
            let first = first(&mut attachment);
            let linked = linked
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (linked, first)
        });
        let linked = linked?;
        let first = first?;
        match hook {
            Hook::Tc => {
                attachment.tc_ingress = Some(linked.main);
                attachment.tc_egress = linked.egress;
            }
            Hook::Xdp => attachment.xdp_link = Some(linked.main),
        }
        attachment.ifindex = Some(linked.ifindex);
        attachment.place = Some((netns.clone(), interface.to_owned()));
        // Without them, clients only get no bound on a restart's gap.
        attachment.link_stats = match linked.stats {
            Ok(stats) => Some(Arc::new(stats)),
            Err(err) => {
                tracing::warn!(interface, %err, "the interface's own counters cannot be read");
                None
            }
        };
        if attachment.wants_sent() {
            attachment.attach_egress()?;
        }
        attachment.kernel.start_log();
        Ok((attachment, first))
    }

    /// Loads the entry programs of the attachment's hook.
    pub(super) fn load_entries(&mut self) -> Result<(), CaptureError> {
        match self.hook {
            Hook::Tc => {
                self.entry(Entry::Ingress)?;
                self.entry(Entry::Egress)?;
            }
            Hook::Xdp => {
                self.entry(Entry::Xdp)?;
            }
        }
        Ok(())
    }

    /// The entry program at `entry`, loaded if it is not yet.
    pub(super) fn entry(&mut self, entry: Entry) -> Result<BorrowedFd<'_>, CaptureError> {
        if self.entries.get(entry).is_none() {
            if entry == Entry::Xdp {
                self.kernel.load_xdp()?;
            }
            let jump = match entry.hook() {
                Hook::Tc => &self.maps.jump_fd,
                Hook::Xdp => &self.maps.xdp_jump_fd,
            };
            let maps = MapFds {
                verdicts: self.maps.verdicts_fd.as_raw_fd(),
                jump: jump.as_raw_fd(),
            };
            let insns: Vec<[u8; 8]> = pktd_translate::entry(entry, self.maps.index(), maps)
                .iter()
                .map(|insn| insn.to_bytes())
                .collect();
            let (prog_type, expected_attach_type) = native::program_type(entry.hook());
            let name = EntryPrograms::name(entry);
            let fd = sys::load_program(prog_type, expected_attach_type, name, &insns).map_err(
                |refused| CaptureError::Io {
                    operation: "loading an entry program",
                    source: std::io::Error::other(format!(
                        "{} (verifier: {})",
                        refused.error,
                        refused.log.lines().last().unwrap_or_default()
                    )),
                },
            )?;
            *self.entries.place(entry) = Some(fd);
        }
        self.loaded_entry(entry)
    }

    /// The entry program at `entry`, if it is loaded (those of the
    /// attachment's hook are).
    pub(super) fn loaded_entry(&self, entry: Entry) -> Result<BorrowedFd<'_>, CaptureError> {
        self.entries
            .get(entry)
            .map(AsFd::as_fd)
            .ok_or(CaptureError::Missing {
                name: EntryPrograms::name(entry),
            })
    }

    /// Attaches the entry program at TC ingress of `interface` in
    /// `netns`, and at egress if `egress`; the interface's index.
    pub(super) fn attach_tc(
        &mut self,
        netns: &NetnsHandle,
        interface: &str,
        egress: bool,
    ) -> Result<u32, CaptureError> {
        let ingress = self.owned_entry(Entry::Ingress)?;
        let egress = egress
            .then(|| self.owned_entry(Entry::Egress))
            .transpose()?;
        let linked = link_all(netns, interface, Hook::Tc, (ingress, egress))?;
        self.tc_ingress = Some(linked.main);
        self.tc_egress = linked.egress;
        Ok(linked.ifindex)
    }

    /// Attaches at TC egress too, if the attachment is at TC ingress only:
    /// for a session that wants sent packets.
    pub(super) fn attach_egress(&mut self) -> Result<(), CaptureError> {
        if self.hook != Hook::Tc || self.tc_egress.is_some() {
            return Ok(());
        }
        let (Some((netns, interface)), Some(ifindex)) = (self.place.clone(), self.ifindex) else {
            // Detached: test runs need no link.
            return Ok(());
        };
        let program = self.owned_entry(Entry::Egress)?;
        let ingress = &self.tc_ingress;
        let egress = netns.run(|| -> Result<_, CaptureError> {
            // The interface attached at ingress may have gone since, and
            // another device taken its index (whoever administers the
            // namespace can choose indices): only the one of that name
            // and index gets the egress program, checked before and after.
            let same = || -> Result<(), CaptureError> {
                let now = interface_index(&netns, &interface)?;
                // A device deleted detaches the ingress link (index 0).
                let ingress = ingress
                    .as_ref()
                    .and_then(|link| sys::link_ifindex(link.as_fd()).ok());
                if now == ifindex && ingress == Some(ifindex) {
                    return Ok(());
                }
                Err(CaptureError::InvalidSpec {
                    message: format!(
                        "interface {interface:?} is no longer the one captured (index {ifindex}, \
                         now {now})"
                    ),
                })
            };
            same()?;
            let egress = link(program.as_fd(), ifindex, LinkTarget::TcxEgress)?;
            same()?;
            Ok(egress)
        })??;
        self.tc_egress = Some(egress);
        Ok(())
    }

    /// A second fd of the entry program at `entry`, loaded if it is not
    /// yet (for a thread in another namespace).
    pub(super) fn owned_entry(&mut self, entry: Entry) -> Result<OwnedFd, CaptureError> {
        self.entry(entry)?
            .try_clone_to_owned()
            .map_err(|source| CaptureError::Io {
                operation: "duplicating a program fd",
                source,
            })
    }

    /// Attaches the XDP entry program to `interface` in `netns`; the
    /// interface's index.
    pub(super) fn attach_xdp(
        &mut self,
        netns: &NetnsHandle,
        interface: &str,
    ) -> Result<u32, CaptureError> {
        let program = self.owned_entry(Entry::Xdp)?;
        let linked = link_all(netns, interface, Hook::Xdp, (program, None))?;
        self.xdp_link = Some(linked.main);
        Ok(linked.ifindex)
    }

    /// Moves an XDP attachment to TC ingress and egress (for a session that
    /// wants sent packets too), without losing or doubling a packet: TC is
    /// attached first while the XDP program still serves received packets,
    /// then one flag hands them over, then XDP is detached. A packet in
    /// flight between the hooks when the flag flips is judged by the mark
    /// XDP left in its metadata (`HandOverMark`), so that exactly one hook
    /// serves it; drivers that keep no metadata leave a window of that
    /// flight's length. A move that fails before the hand-over leaves the
    /// attachment at XDP as it was.
    pub fn move_to_tc(&mut self) -> Result<(), CaptureError> {
        let Some((netns, interface)) = self.place.clone().filter(|_| self.xdp_link.is_some())
        else {
            return Ok(());
        };
        // Native code for TC; XDP keeps its own until it is detached, and
        // the globals still say XDP serves received packets.
        self.hook = Hook::Tc;
        if let Err(err) = self.rebuild_native().and_then(|()| {
            let egress = self.wants_sent();
            self.attach_tc(&netns, &interface, egress).map(drop)
        }) {
            self.hook = Hook::Xdp;
            self.tc_ingress = None;
            self.tc_egress = None;
            self.rebuild_native()?;
            return Err(err);
        }
        // The hand-over: TC ingress serves received packets from here on.
        self.xdp_receives = false;
        self.publish_globals()?;
        // Dropping the link detaches.
        self.xdp_link = None;
        tracing::info!(%netns, interface, "moved from XDP to TC");
        Ok(())
    }

    /// Moves a TC attachment to XDP (when every session wants received
    /// packets only), without losing or doubling a packet: XDP is attached
    /// first while TC ingress still serves received packets, then one flag
    /// hands them over, then TC is detached; marks decide for packets in
    /// flight, as in [`Attachment::move_to_tc`]. A move that fails before
    /// the hand-over leaves the attachment at TC as it was.
    pub fn move_to_xdp(&mut self) -> Result<(), CaptureError> {
        let Some((netns, interface)) = self.place.clone().filter(|_| self.xdp_link.is_none())
        else {
            return Ok(());
        };
        if !self.xdp_serves_all() {
            return Err(CaptureError::InvalidSpec {
                message: "a session wants sent packets or the socket buffer's metadata: XDP \
                          cannot serve it"
                    .to_owned(),
            });
        }
        self.entry(Entry::Xdp)?;
        self.hook = Hook::Xdp;
        if let Err(err) = self
            .rebuild_native()
            .and_then(|()| self.attach_xdp(&netns, &interface).map(drop))
        {
            self.hook = Hook::Tc;
            self.xdp_link = None;
            self.rebuild_native()?;
            return Err(err);
        }
        // Packets that passed the XDP hook before the program was there
        // carry no mark, and TC ingress would go by the flag for them:
        // let those reach TC before the flag flips. The kernel runs a
        // received packet's XDP and TC ingress in one softirq pass, or one
        // backlog round later, well within this.
        std::thread::sleep(HAND_OVER_GRACE);
        // The hand-over: XDP serves received packets from here on.
        self.xdp_receives = true;
        self.publish_globals()?;
        // Dropping the links detaches.
        self.tc_ingress = None;
        self.tc_egress = None;
        tracing::info!(%netns, interface, "moved from TC to XDP");
        Ok(())
    }
}

/// How long a move to XDP waits between attaching the XDP program and
/// handing received packets over to it (see `move_to_xdp`).
const HAND_OVER_GRACE: std::time::Duration = std::time::Duration::from_millis(20);

/// The index of `interface` in the calling thread's namespace, which is
/// `netns` (for the error).
fn interface_index(netns: &NetnsHandle, interface: &str) -> Result<u32, CaptureError> {
    sys::interface_index(interface).map_err(|source| CaptureError::NoInterface {
        interface: interface.to_owned(),
        netns: netns.to_string(),
        source,
    })
}

/// Attaches `program` at `target` of interface `ifindex` (the calling
/// thread's namespace).
fn link(
    program: BorrowedFd<'_>,
    ifindex: u32,
    target: LinkTarget,
) -> Result<OwnedFd, CaptureError> {
    sys::link_create(program, ifindex, target).map_err(|source| CaptureError::Io {
        operation: match target {
            LinkTarget::TcxIngress => "attaching at TC ingress",
            LinkTarget::TcxEgress => "attaching at TC egress",
            LinkTarget::Xdp => "attaching at XDP",
        },
        source,
    })
}

/// What [`link_all`] made.
pub(super) struct Linked {
    pub ifindex: u32,
    /// At TC ingress or XDP.
    pub main: OwnedFd,
    /// At TC egress, if asked for.
    pub egress: Option<OwnedFd>,
    /// The interface's own counters (read in the namespace, while there).
    pub stats: std::io::Result<LinkStats>,
}

/// Attaches the entry programs `(main, egress)` to `interface` in `netns`
/// at `hook`: `main` at TC ingress or XDP, `egress` (TC only) at TC egress.
/// Dropping the links detaches them.
pub(super) fn link_all(
    netns: &NetnsHandle,
    interface: &str,
    hook: Hook,
    (main, egress): (OwnedFd, Option<OwnedFd>),
) -> Result<Linked, CaptureError> {
    netns.run(|| -> Result<_, CaptureError> {
        let ifindex = interface_index(netns, interface)?;
        let target = match hook {
            Hook::Tc => LinkTarget::TcxIngress,
            Hook::Xdp => LinkTarget::Xdp,
        };
        let main = link(main.as_fd(), ifindex, target)?;
        let egress = egress
            .map(|egress| link(egress.as_fd(), ifindex, LinkTarget::TcxEgress))
            .transpose()?;
        Ok(Linked {
            ifindex,
            main,
            egress,
            stats: LinkStats::open(interface),
        })
    })?
}
