//! Where the kernel program runs: TC ingress and egress, or XDP for
//! received packets only, and moving between them without losing or
//! doubling a packet.

use aya::programs::{TcAttachType, XdpMode};
use pktd_common::names;
use pktd_translate::Hook;

use super::{
    attachment::Attachment,
    error::CaptureError,
    object::{self, classifier, program_error, xdp_program},
};
use crate::{netns::NetnsHandle, sys};

impl Attachment {
    /// Attaches the classifiers at TC ingress and egress of `interface` in
    /// `netns`; the interface's index.
    pub(super) fn attach_tc(
        &mut self,
        netns: &NetnsHandle,
        interface: &str,
    ) -> Result<u32, CaptureError> {
        let ebpf = &mut self.ebpf;
        let (ifindex, links) = netns.run(|| -> Result<_, CaptureError> {
            let ifindex = interface_index(netns, interface)?;
            let mut links = Vec::new();
            for (name, hook) in [
                (names::PROG_INGRESS, TcAttachType::Ingress),
                (names::PROG_EGRESS, TcAttachType::Egress),
            ] {
                let link = classifier(ebpf, name)?
                    .attach(interface, hook)
                    .map_err(program_error("attaching", name))?;
                links.push((name, link));
            }
            Ok((ifindex, links))
        })??;
        self.tc_links = links;
        Ok(ifindex)
    }

    /// Attaches the XDP program to `interface` in `netns`; the interface's
    /// index.
    pub(super) fn attach_xdp(
        &mut self,
        netns: &NetnsHandle,
        interface: &str,
    ) -> Result<u32, CaptureError> {
        let ebpf = &mut self.ebpf;
        let (ifindex, link) = netns.run(|| -> Result<_, CaptureError> {
            let ifindex = interface_index(netns, interface)?;
            let link = xdp_program(ebpf, names::PROG_XDP)?
                .attach(interface, XdpMode::default())
                .map_err(program_error("attaching", names::PROG_XDP))?;
            Ok((ifindex, link))
        })??;
        self.xdp_link = Some(link);
        Ok(ifindex)
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
        if let Err(err) = self
            .rebuild_native()
            .and_then(|()| self.attach_tc(&netns, &interface).map(drop))
        {
            self.hook = Hook::Xdp;
            self.tc_links.clear();
            self.rebuild_native()?;
            return Err(err);
        }
        // The hand-over: TC ingress serves received packets from here on.
        self.xdp_receives = false;
        self.publish_globals()?;
        if let Some(link) = self.xdp_link.take() {
            xdp_program(&mut self.ebpf, names::PROG_XDP)?
                .detach(link)
                .map_err(program_error("detaching", names::PROG_XDP))?;
        }
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
        object::load_xdp(&mut self.ebpf, &self.maps)?;
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
        for (name, link) in std::mem::take(&mut self.tc_links) {
            classifier(&mut self.ebpf, name)?
                .detach(link)
                .map_err(program_error("detaching", name))?;
        }
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
