//! pktd, the packet capture and injection multiplexer: the daemon as a
//! library.
//!
//! - [`capture`]: the kernel program per (namespace, interface), client
//!   slots, ring buffers and records.
//! - [`netns`]: naming and entering network namespaces.
#![deny(unsafe_code)]

pub mod capture;
pub mod netns;
#[allow(unsafe_code, reason = "the one module with system calls")]
mod sys;
