//! The scan that repairs a recorded file after a crash
//! (`pktd_pcap::savefile::whole_prefix_len`) on arbitrary bytes: the file
//! it reads belongs to the user who asked for the recording, who may have
//! written anything into it before the daemon restarts.
//!
//! Checked: nothing panics; the whole prefix it finds is no longer than
//! the file; cut to it, the file scans whole to the same length; and a
//! classic pcap file cut to it reads back to its end without an error.
#![no_main]

use std::{
    io::Cursor,
    time::{Duration, Instant},
};

use libfuzzer_sys::fuzz_target;
use pktd_pcap::savefile::{Reader, whole_prefix_len};

fuzz_target!(|data: &[u8]| {
    let later = Instant::now() + Duration::from_secs(60);
    let Ok(Some(whole)) = whole_prefix_len(Cursor::new(data), later) else {
        return;
    };
    assert!(whole <= data.len() as u64);
    let prefix = &data[..whole as usize];
    assert_eq!(
        whole_prefix_len(Cursor::new(prefix), later).unwrap(),
        Some(whole),
        "a whole prefix scans whole"
    );
    if let Ok(mut reader) = Reader::new(prefix) {
        while reader
            .next_packet()
            .expect("a whole pcap file reads to its end")
            .is_some()
        {}
    }
});
