//! Errors of the capture path.

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
    /// The kernel gave no random number (for the attachment's hand-over
    /// mark).
    #[error("reading a random number for the attachment")]
    Random {
        /// The cause.
        #[source]
        source: std::io::Error,
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
    /// The daemon captures on as many interfaces as the shared kernel
    /// program has room for.
    #[error("pktd captures on {max} interfaces already, as many as it can at once")]
    AttachmentsFull {
        /// The number of attachments.
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
