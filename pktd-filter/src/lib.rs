//! Classic-BPF filters for pktd.
//!
//! Clients describe the packets they want with a tcpdump expression or a
//! ready-made classic-BPF program. This crate turns either into a
//! [`ValidProgram`]:
//!
//! - [`compile`] runs libpcap's own compiler for Ethernet, so expressions
//!   mean exactly what they mean to tcpdump;
//! - [`parse_ddd`] / [`parse_binary`] read the usual interchange forms, and
//!   [`format_d`], [`format_dd`], [`format_ddd`], [`to_binary`] write them
//!   (the text forms byte-identical to tcpdump's);
//! - [`validate`] applies the Linux kernel's classic-BPF rules, so pktd
//!   accepts exactly the programs the kernel would, minus negative-offset
//!   loads and the ancillary loads pktd's eBPF evaluator cannot serve (it
//!   serves those libpcap's Linux code uses: `inbound`, `outbound`,
//!   `ifindex N`, the protocol and the VLAN metadata);
//! - [`for_wire_view`] runs a program written for the kernel's view of a
//!   frame (the VLAN tag in metadata) on pktd's (the tag in the frame).
//!
//! [`and_then`] ANDs two programs (a policy's filter and a client's);
//! [`confine`] keeps a client's program to the first bytes of a packet
//! (a principal's snap length), return value included.
//!
//! [`interpret`] is a kernel-semantics interpreter, the oracle for pktd's
//! eBPF evaluator; [`pcap_offline_filter`] and [`kernel_accepts`] expose
//! libpcap's interpreter and the kernel's checks as references for tests.
//!
//! All `unsafe` code (libpcap and socket calls) lives in one private module.
#![deny(unsafe_code)]

pub use pktd_common::CbpfInsn;

mod anonymized;
mod asm;
mod combine;
mod error;
mod headers;
mod image;
mod interpret;
mod kernel;
mod kernel_view;
mod libpcap;
pub mod opcodes;
#[expect(
    unsafe_code,
    reason = "the crate's one FFI module: libpcap and setsockopt"
)]
mod pcap_ffi;
mod text;
mod validate;
mod window;

pub use anonymized::{AddressMap, map_addresses};
pub use combine::and_then;
pub use error::{FilterError, Rule};
pub use headers::{IPV6_EXTENSION_HEADERS, confine_to_headers, header_end, header_prologue_len};
pub use image::format_d;
pub use interpret::{Metadata, interpret, interpret_with};
pub use kernel::kernel_accepts;
pub use kernel_view::{for_wire_view, reads_socket_buffer, reads_vlan_metadata};
pub use libpcap::{compile, compile_unvalidated, pcap_offline_filter};
pub use text::{format_dd, format_ddd, parse_binary, parse_ddd, to_binary};
pub use validate::{ValidProgram, validate};
pub use window::confine;
