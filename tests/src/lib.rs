//! pktd's integration-test harness: packet and filter corpora, throw-away
//! network labs, and helpers to drive the capture path in the real kernel.
#![deny(unsafe_code)]

pub mod bystander;
pub mod corpus;
pub mod cri;
pub mod daemon;
pub mod kernel;
pub mod netlab;
pub mod pktd;
pub mod process;
#[allow(unsafe_code, reason = "AF_PACKET sockets for sending test traffic")]
pub mod sys;
