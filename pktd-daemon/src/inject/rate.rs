//! Check 5 of an injected frame: a packet and a byte token bucket.

use std::time::Instant;

/// A token bucket holding at most one second's worth of tokens.
#[derive(Clone, Debug)]
pub(super) struct Bucket {
    pub rate: f64,
    pub tokens: f64,
    pub last: Instant,
}

impl Bucket {
    pub fn full(rate: f64, now: Instant) -> Self {
        Self {
            rate,
            tokens: rate,
            last: now,
        }
    }

    pub fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.last = self.last.max(now);
    }
}
