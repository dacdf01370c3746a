//! The capture path in user space: the kernel program loaded once per
//! process and attached per (network namespace, interface) as an
//! [`Attachment`], sessions' slots in its maps, the native code of their
//! filters, and the [`Ring`]s their records arrive in. The [`Registry`]
//! attaches on demand and detaches when the last session leaves.
//!
//! | file | concern |
//! |---|---|
//! | `object.rs` | the embedded eBPF object, loaded once; its maps by name |
//! | `lease.rs` | attachment indices (taken, reset, given back after a rest) and an attachment's view of the maps |
//! | `attachment.rs` | one attachment: its slots and where it runs |
//! | `error.rs` | what can go wrong |
//! | `hooks.rs` | attaching: entry programs at TC and XDP, and moving between them |
//! | `slots.rs` | taking, changing and giving back a slot; counters |
//! | `chain.rs` | native code: groups of filters, chains of programs |
//! | `native.rs` | engines; translating and loading one program |
//! | `bench.rs` | BPF_PROG_TEST_RUN |
//! | `budget.rs` | the interpreter's per-packet budget shared out among slots |
//! | `kernel_log.rs` | the kernel program's log (aya-log) |
//! | `ring.rs` | ring buffers and records |
//! | `batch.rs` | records moved out of a ring together |
//! | `registry.rs` | every attachment of the daemon |

mod attachment;
mod batch;
mod bench;
mod budget;
mod chain;
mod error;
mod hooks;
mod kernel_log;
mod lease;
mod link_stats;
mod native;
mod object;
mod registry;
mod ring;
mod slots;

pub use attachment::Attachment;
pub use batch::Batch;
pub use bench::TestRunner;
pub use error::CaptureError;
pub use native::{Engine, HookChoice, MAX_CHAIN, NativeError, SlotEngine};
pub use pktd_translate::Entry;
pub use pktd_translate::Hook;
pub use registry::{Added, InterfaceSnapshot, Registry, SlotRef};
pub use ring::{AsyncRing, HandedRing, Record, Ring, ring_gone};
pub use slots::{ClientSpec, InterfaceCounterReader, QUARANTINE, SlotCounters, ring_size};
