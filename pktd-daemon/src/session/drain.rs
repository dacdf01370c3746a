//! Moving records out of a session's ring, for captures and recordings
//! alike: in batches, without waiting for a wake-up the kernel may never
//! send, and no further than the session's packet count; anonymized on
//! the way when the session's principal is (so that no path, live or
//! recorded, sees a record before it is).

use std::{
    io,
    sync::{Arc, Mutex},
    time::Duration,
};

use pktd_anon::Anonymizer;

use crate::{
    capture::{AsyncRing, Batch},
    sync::{blocking, lock},
};

/// Longest a record waits in a quiet ring before it is moved: the kernel
/// wakes a reader only once its ring is an eighth full.
const DRAIN_EVERY: Duration = Duration::from_millis(5);
/// Most records moved per batch, so one busy session yields to others
/// (a batch of small records takes a few hundred microseconds).
const DRAIN_BATCH: usize = 8192;
/// A batch stops growing at this many captured bytes: the buffers a
/// session keeps from one batch to the next stay near this size (plus one
/// record of at most 256 KiB), whatever its ring's.
const DRAIN_BYTES: usize = 1 << 20;

/// A session's ring, drained.
pub struct Drain {
    ring: AsyncRing,
    /// The last batch stopped at its limit with records left: go again
    /// without waiting (the kernel only wakes a reader that has caught up,
    /// so no wake-up may come).
    backlog: bool,
    /// Records still to move before the session's count is reached; `None`
    /// without a count.
    remaining: Option<u64>,
    /// Records moved so far.
    moved: u64,
    /// Rewrites every record for an anonymized principal, on a blocking
    /// thread (Crypto-PAn costs up to 128 AES blocks per new address).
    /// Shared with that thread rather than moved to it, so that a batch
    /// whose future is dropped cannot take it away from the records after
    /// it.
    anonymizer: Option<Arc<Mutex<Anonymizer>>>,
}

impl Drain {
    /// Drains `ring`, at most `count` records (0: no limit), each
    /// rewritten by `anonymizer` if there is one.
    pub fn new(ring: AsyncRing, count: u64, anonymizer: Option<Anonymizer>) -> Self {
        Self {
            ring,
            backlog: false,
            remaining: (count != 0).then_some(count),
            moved: 0,
            anonymizer: anonymizer.map(|anonymizer| Arc::new(Mutex::new(anonymizer))),
        }
    }

    /// Resolves when records may be waiting: at once after a full batch,
    /// when the kernel wakes the ring, or after [`DRAIN_EVERY`].
    pub async fn ready(&self) -> io::Result<()> {
        if self.backlog {
            return Ok(());
        }
        match tokio::time::timeout(DRAIN_EVERY, self.ring.readable()).await {
            Ok(ready) => ready,
            Err(_elapsed) => Ok(()),
        }
    }

    /// Replaces `batch`'s records with those waiting, at most
    /// [`DRAIN_BATCH`] (or [`DRAIN_BYTES`]) and no more than the count
    /// leaves; never waits.
    pub async fn take(&mut self, batch: &mut Batch) {
        batch.clear();
        let limit = self.remaining.map_or(DRAIN_BATCH, |remaining| {
            remaining.min(DRAIN_BATCH as u64) as usize
        });
        let taken = self.ring.take_into(batch, limit, DRAIN_BYTES).await;
        self.backlog = limit > 0 && (taken == limit || batch.bytes() >= DRAIN_BYTES);
        self.moved += taken as u64;
        if let Some(remaining) = self.remaining.as_mut() {
            *remaining -= taken as u64;
        }
        if let Some(anonymizer) = &self.anonymizer
            && taken > 0
        {
            let anonymizer = anonymizer.clone();
            let mut records = std::mem::take(batch);
            *batch = blocking(move || {
                let mut anonymizer = lock(&anonymizer);
                records.rewrite_each(|data, wire_len| {
                    anonymizer.rewrite(data, wire_len);
                });
                records
            })
            .await;
        }
    }

    /// Records moved so far.
    pub fn moved(&self) -> u64 {
        self.moved
    }

    /// Whether the session's count has been moved.
    pub fn count_reached(&self) -> bool {
        self.remaining == Some(0)
    }
}
