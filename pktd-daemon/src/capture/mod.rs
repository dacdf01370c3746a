//! The capture path in user space: the kernel program loaded once per
//! (network namespace, interface) as an [`Attachment`], sessions' slots in
//! its maps, the native code of their filters, and the [`Ring`]s their
//! records arrive in. The [`Registry`] attaches on demand and detaches
//! when the last session leaves.
//!
//! | file | concern |
//! |---|---|
//! | `object.rs` | loading the embedded eBPF object, its maps by name |
//! | `attachment.rs` | one loaded program: its slots and where it runs |
//! | `hooks.rs` | TC and XDP, and moving between them |
//! | `slots.rs` | taking, changing and giving back a slot; counters |
//! | `chain.rs` | native code: groups of filters, chains of programs |
//! | `native.rs` | engines; translating and loading one program |
//! | `bench.rs` | BPF_PROG_TEST_RUN |
//! | `ring.rs` | ring buffers and records |
//! | `registry.rs` | every attachment of the daemon |

mod attachment;
mod bench;
mod chain;
mod hooks;
mod native;
mod object;
mod registry;
mod ring;
mod slots;

pub use attachment::Attachment;
pub use native::{Engine, HookChoice, MAX_CHAIN, NativeError, SlotEngine};
pub use pktd_translate::Hook;
pub use registry::{InterfaceSnapshot, Registry, SlotRef};
pub use ring::{AsyncRing, Record, Ring};
pub use slots::{ClientSpec, InterfaceCounterReader, SlotCounters};

use crate::netns::NetnsError;

/// Errors of the capture path.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The embedded eBPF object could not be loaded into the kernel.
    #[error("loading the pktd eBPF program")]
    Load {
        /// The cause.
        #[source]
        source: aya::EbpfError,
    },
    /// The object lacks a map or program pktd-common names.
    #[error("the pktd eBPF object has no {name}")]
    Missing {
        /// The missing map or program.
        name: &'static str,
    },
    /// A map operation failed.
    #[error("{operation} on map {map}")]
    Map {
        /// What was being done.
        operation: &'static str,
        /// Which map.
        map: &'static str,
        /// The cause.
        #[source]
        source: aya::maps::MapError,
    },
    /// A program could not be loaded, attached or run.
    #[error("{operation} program {program}")]
    Program {
        /// What was being done.
        operation: &'static str,
        /// Which program.
        program: &'static str,
        /// The cause.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The interface does not exist in the namespace.
    #[error("no interface {interface:?} in network namespace {netns}")]
    NoInterface {
        /// The interface name.
        interface: String,
        /// The namespace, as named.
        netns: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Entering the namespace failed.
    #[error(transparent)]
    Netns(#[from] NetnsError),
    /// Every slot of the attachment is taken.
    #[error("all {max} client slots of this interface are in use")]
    SlotsFull {
        /// The number of slots.
        max: u32,
    },
    /// A slot number that is not in use.
    #[error("no client in slot {slot}")]
    NoSuchSlot {
        /// The slot.
        slot: u32,
    },
    /// A session setting out of range.
    #[error("invalid client setting: {message}")]
    InvalidSpec {
        /// What is wrong.
        message: String,
    },
    /// Another system call failed.
    #[error("{operation}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}
