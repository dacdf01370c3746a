//! Helpers shared by the integration tests: the kernel as a validation
//! oracle and tcpdump as a formatting/compilation oracle.

#![allow(dead_code)] // each test file uses a different subset

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use pktd_filter::{CbpfInsn, kernel_accepts};

/// Whether the running kernel accepts `insns` (SO_ATTACH_FILTER). Any error
/// other than EINVAL means the test environment is broken, not the program.
pub fn kernel_ok(insns: &[CbpfInsn]) -> bool {
    match kernel_accepts(insns) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => false,
        Err(e) => panic!("SO_ATTACH_FILTER failed unexpectedly for {insns:?}: {e}"),
    }
}

/// Snapshot length written into the empty capture file; tcpdump's programs
/// return it on a match.
pub const SNAPLEN: u32 = 262_144;

/// An empty pcap savefile with link type 1 (Ethernet), so that tcpdump
/// compiles for Ethernet without an interface.
pub fn empty_pcap() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let mut header = Vec::with_capacity(24);
        header.extend_from_slice(&0xa1b2_c3d4_u32.to_le_bytes()); // magic
        header.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
        header.extend_from_slice(&4u16.to_le_bytes());
        header.extend_from_slice(&0i32.to_le_bytes()); // thiszone
        header.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
        header.extend_from_slice(&SNAPLEN.to_le_bytes());
        header.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
        let path =
            std::env::temp_dir().join(format!("pktd-filter-empty-{}.pcap", std::process::id()));
        std::fs::write(&path, header).unwrap_or_else(|e| panic!("writing {path:?}: {e}"));
        path
    })
}

/// tcpdump's output for `tcpdump -r EMPTY <flag> [-O] EXPRESSION`.
pub fn tcpdump(flag: &str, optimize: bool, expression: &str) -> String {
    let mut command = Command::new("tcpdump");
    command.arg("-r").arg(empty_pcap()).arg(flag);
    if !optimize {
        command.arg("-O");
    }
    command.arg(expression);
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running tcpdump: {e}"));
    assert!(
        output.status.success(),
        "tcpdump {flag} {expression:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap_or_else(|e| panic!("tcpdump output not UTF-8: {e}"))
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
