//! pktd, the packet capture and injection multiplexer: the daemon as a
//! library, so tests can start one on a temporary socket.
//!
//! - [`run`]: serve clients on a Unix socket under a policy until shutdown
//!   ([`run_with`]: with [`Options`], such as the filter engine).
//! - [`policy`]: who may capture what.
//! - [`capture`]: the kernel program per (namespace, interface), client
//!   slots, ring buffers and records.
//! - [`netns`]: naming and entering network namespaces.
#![deny(unsafe_code)]

pub mod capture;
pub mod inject;
pub mod netns;
pub mod perfstats;
pub mod policy;
pub mod record;
mod recording;
mod registry;
mod server;
mod session;
#[allow(unsafe_code, reason = "the one module with system calls")]
mod sys;

pub use server::{Options, PolicyStore, run, run_with};
