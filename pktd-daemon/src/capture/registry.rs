//! The daemon's attachments: the kernel program attached on demand per
//! (network namespace, interface), shared by every session there, detached
//! when the last one leaves.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use pktd_common::ClientCounters;
use pktd_filter::ValidProgram;

use crate::{
    capture::{Attachment, CaptureError, Client, ClientSpec, Engine, Hook, HookChoice},
    netns::Netns,
};

/// Drivers whose XDP is not run on their own receive buffers: their XDP
/// converts every skb (veth measured slower than TC, docs/performance.md),
/// and generic XDP does the same.
const XDP_CONVERTS_SKBS: &[&str] = &["veth", "tun", "bridge", "loopback", ""];

/// Whether XDP is worth it on `interface`: its driver runs XDP on its own
/// receive buffers.
fn xdp_pays_off(netns: &Netns, interface: &str) -> bool {
    let driver = netns.run(|| crate::sys::interface_driver(interface));
    match driver {
        Ok(Ok(driver)) => !XDP_CONVERTS_SKBS.contains(&driver.as_str()),
        _ => false,
    }
}

/// Identity of an attachment: the namespace's (device, inode) and the
/// interface name, so two names of one namespace share one attachment.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AttachmentKey {
    netns: (u64, u64),
    interface: String,
}

/// Where a session's client lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotRef {
    key: AttachmentKey,
    slot: u32,
}

/// One attachment and the namespace name it was made under.
struct Entry {
    attachment: Attachment,
    netns: String,
}

/// Traffic through one attachment, for the performance statistics.
pub struct InterfaceSnapshot {
    /// The namespace as the first session there named it.
    pub netns: String,
    /// The interface.
    pub interface: String,
    /// Everything the program saw there.
    pub counters: pktd_common::InterfaceCounters,
    /// Sessions capturing there.
    pub sessions: u32,
}

/// Every attachment of the daemon.
#[derive(Default)]
pub struct Registry {
    attachments: Mutex<HashMap<AttachmentKey, Entry>>,
    engine: Engine,
    hook: HookChoice,
}

impl Registry {
    /// An empty registry whose attachments run filters with `engine` at
    /// the hook `hook` says.
    pub fn new(engine: Engine, hook: HookChoice) -> Arc<Self> {
        Arc::new(Self {
            attachments: Mutex::default(),
            engine,
            hook,
        })
    }

    fn attach(
        &self,
        netns: &Netns,
        interface: &str,
        spec: &ClientSpec,
    ) -> Result<Attachment, CaptureError> {
        let received_only = spec.directions == pktd_common::DIR_IN;
        match self.hook {
            HookChoice::Tc => Attachment::attach_with(netns, interface, self.engine),
            HookChoice::Xdp => Attachment::attach_xdp(netns, interface, self.engine),
            HookChoice::Auto if received_only && xdp_pays_off(netns, interface) => {
                Attachment::attach_xdp(netns, interface, self.engine).or_else(|err| {
                    tracing::info!(%netns, interface, err = %crate::session::error_chain(&err), "no XDP here; TC");
                    Attachment::attach_with(netns, interface, self.engine)
                })
            }
            HookChoice::Auto => Attachment::attach_with(netns, interface, self.engine),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<AttachmentKey, Entry>> {
        // A panic while holding the lock leaves plain data behind; carry on.
        self.attachments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds a client on `interface` in `netns`, attaching the program there
    /// first if no session uses it yet. Blocking (it may load and attach a
    /// program): call it from a blocking thread.
    pub fn add_client(
        &self,
        netns: &Netns,
        interface: &str,
        spec: &ClientSpec,
        filter: &ValidProgram,
    ) -> Result<(SlotRef, Client), CaptureError> {
        let key = AttachmentKey {
            netns: netns.key()?,
            interface: interface.to_owned(),
        };
        let mut attachments = self.lock();
        let attachment = match attachments.entry(key.clone()) {
            std::collections::hash_map::Entry::Occupied(entry) => {
                let attachment = &mut entry.into_mut().attachment;
                let wants_sent = spec.directions != pktd_common::DIR_IN;
                if wants_sent && self.hook == HookChoice::Auto && attachment.hook() == Hook::Xdp {
                    attachment.move_to_tc()?;
                }
                attachment
            }
            std::collections::hash_map::Entry::Vacant(entry) => {
                let attachment = self.attach(netns, interface, spec)?;
                tracing::info!(%netns, interface, engine = %self.engine, hook = ?attachment.hook(), "attached");
                &mut entry
                    .insert(Entry {
                        attachment,
                        netns: netns.to_string(),
                    })
                    .attachment
            }
        };
        let result = attachment.add_client(spec, filter);
        if attachment.client_count() == 0 {
            // The first client failed: do not keep an idle attachment.
            attachments.remove(&key);
        }
        let client = result?;
        Ok((
            SlotRef {
                key,
                slot: client.slot(),
            },
            client,
        ))
    }

    /// Replaces a client's filter.
    pub fn set_filter(&self, slot: &SlotRef, filter: &ValidProgram) -> Result<(), CaptureError> {
        let mut attachments = self.lock();
        let entry = attachments
            .get_mut(&slot.key)
            .ok_or(CaptureError::NoSuchSlot { slot: slot.slot })?;
        entry.attachment.set_filter(slot.slot, filter)
    }

    /// A client's counters.
    pub fn counters(&self, slot: &SlotRef) -> Result<ClientCounters, CaptureError> {
        let attachments = self.lock();
        let entry = attachments
            .get(&slot.key)
            .ok_or(CaptureError::NoSuchSlot { slot: slot.slot })?;
        entry.attachment.counters(slot.slot)
    }

    /// Removes a client; the last one on an attachment detaches it.
    pub fn remove_client(&self, slot: &SlotRef) {
        let mut attachments = self.lock();
        let Some(Entry { attachment, .. }) = attachments.get_mut(&slot.key) else {
            return;
        };
        if let Err(err) = attachment.remove_client(slot.slot) {
            tracing::warn!(slot = slot.slot, %err, "removing a client");
        }
        // The last client wanting sent packets has gone: back to XDP where
        // it pays off.
        let back_to_xdp = self.hook == HookChoice::Auto
            && attachment.client_count() > 0
            && attachment.hook() == Hook::Tc
            && attachment.received_only()
            && attachment
                .place()
                .is_some_and(|(netns, interface)| xdp_pays_off(netns, interface));
        if back_to_xdp && let Err(err) = attachment.move_to_xdp() {
            tracing::warn!(
                interface = slot.key.interface,
                err = %crate::session::error_chain(&err),
                "staying at TC"
            );
        }
        if attachment.client_count() == 0 {
            attachments.remove(&slot.key);
            tracing::info!(
                interface = slot.key.interface,
                "detached (no sessions left)"
            );
        }
    }

    /// Traffic counters of every attachment.
    pub fn interfaces(&self) -> Vec<InterfaceSnapshot> {
        self.lock()
            .iter()
            .filter_map(|(key, entry)| {
                let counters = entry.attachment.interface_counters().ok()?;
                Some(InterfaceSnapshot {
                    netns: entry.netns.clone(),
                    interface: key.interface.clone(),
                    counters,
                    sessions: entry.attachment.client_count() as u32,
                })
            })
            .collect()
    }

    /// Detaches everything (shutdown).
    pub fn clear(&self) {
        self.lock().clear();
    }
}
