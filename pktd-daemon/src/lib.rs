//! pktd, the packet capture and injection multiplexer: the daemon as a
//! library, so tests can start one on a temporary socket with [`run`].
//!
//! # Vocabulary
//!
//! These words mean one thing each, here and in every crate of pktd:
//!
//! - **connection**: one client socket, from its hello to its end
//!   (`connection`). It may carry any number of requests and at most one
//!   capture.
//! - **session**: a capture or a recording, the unit a principal's
//!   `max_sessions` counts (`session`). Each has a slot in an attachment.
//! - **capture**: a session whose packets stream to its connection.
//! - **recording**: a session the daemon writes to savefiles itself; it
//!   outlives the connection that started it ([`recording`]).
//! - **record**: one ring-buffer entry, a packet as the kernel program
//!   delivered it ([`capture::Record`]); nothing else.
//! - **attachment**: the kernel program loaded for one (network namespace,
//!   interface), shared by every session there ([`capture::Attachment`]).
//! - **slot**: a session's place in an attachment's kernel maps (its
//!   settings, filter, ring and counters; `pktd_common` calls the per-slot
//!   layouts `Client*`).
//! - **principal**: a policy entry, the rules for the users and groups it
//!   names ([`policy`]); **grant**: what a request is allowed under them.
//!
//! # Map
//!
//! | module | concern |
//! |---|---|
//! | `server` | the listener: accept loop, connection limit, shutdown |
//! | `connection` | one client socket: hello, requests, its capture, refusals |
//! | `session` | what captures and recordings share: opening, draining, quotas |
//! | [`recording`] | recordings: their tasks, rotating savefiles, name patterns |
//! | [`policy`] | the policy file, accounts, and the one authorization function |
//! | [`compiler`] | clients' expressions compiled in sandboxed helper processes |
//! | `loads` | verifier loads admitted per uid and in all |
//! | [`capture`] | the kernel program, loaded once, attached per (namespace, interface): hooks, slots, native code, rings |
//! | [`inject`] | injection: checks, rate limits, the senders |
//! | `state` | what connections and sessions share, behind methods |
//! | [`netns`] | naming and entering network namespaces |
//! | [`cri`] | Kubernetes pods' namespaces, asked of the container runtime (CRI) |
//! | [`privileges`] | what the daemon gives up before it serves |
//! | [`paths`] | directories opened without following links, checked |
//! | `sys` | every system call std and aya lack; the one module with `unsafe` |
//! | [`report`] | `pktd stats` output: rates, table, CSV |
//!
//! Blocking work (libpcap compiles, verifier loads, files, namespaces)
//! runs on tokio's blocking pool, never on the async workers and never
//! under a lock that the accept loop or a session's periodic checks need.
#![deny(unsafe_code)]

pub mod capture;
pub mod compiler;
mod connection;
pub mod cri;
mod errors;
pub mod inject;
mod loads;
pub mod metrics;
pub mod netns;
pub mod paths;
pub mod policy;
pub mod privileges;
pub mod recording;
pub mod report;
pub mod scrape;
mod server;
pub mod service;
mod session;
mod state;
mod sync;
#[allow(unsafe_code, reason = "the one module with system calls")]
mod sys;

pub use errors::chain as error_chain;

/// Raises the soft limit of open files to the hard one; the new limit.
pub fn raise_open_files_limit() -> std::io::Result<u64> {
    sys::raise_open_files()
}
pub use connection::ConnectionLimits;
pub use policy::PolicyStore;
pub use server::{Options, run, run_with};
