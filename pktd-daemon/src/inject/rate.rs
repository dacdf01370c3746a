//! Check 5 of an injected frame: a packet and a byte token bucket, one
//! pair per (uid, network namespace), shared by all of that user's senders
//! there whatever the interface or the name the namespace was given.

use std::time::Instant;

use super::checks::Refused;
use crate::policy::InjectRules;

/// A user's injection rate in one namespace.
#[derive(Clone, Debug)]
pub struct Rate {
    pps: u32,
    bps: u64,
    pub(super) packets: Bucket,
    pub(super) bytes: Bucket,
}

impl Rate {
    /// Full buckets for `rules`' rates.
    pub fn new(rules: &InjectRules, now: Instant) -> Self {
        Self {
            pps: rules.rate_pps,
            bps: rules.rate_bps,
            packets: Bucket::full(f64::from(rules.rate_pps), now),
            // Exact below 2^53 bytes/s, far beyond any link.
            bytes: Bucket::full(rules.rate_bps as f64, now),
        }
    }

    /// Check 5, taking no tokens: whether `len` bytes may go now.
    pub fn check(&mut self, len: usize, now: Instant) -> Result<(), Refused> {
        self.packets.refill(now);
        self.bytes.refill(now);
        let len_f = len as f64;
        if len_f > self.bytes.rate {
            return Err(Refused::BeyondBurst { len, bps: self.bps });
        }
        if self.packets.tokens < 1.0 {
            return Err(Refused::PacketRate { pps: self.pps });
        }
        if self.bytes.tokens < len_f {
            return Err(Refused::ByteRate { bps: self.bps });
        }
        Ok(())
    }

    /// Takes the tokens of a sent frame of `len` bytes.
    pub fn take(&mut self, len: usize) {
        self.packets.tokens -= 1.0;
        self.bytes.tokens -= len as f64;
    }

    /// Whether both buckets are full again by `now`: forgetting the rate
    /// then loses nothing.
    pub fn is_full(&self, now: Instant) -> bool {
        let (mut packets, mut bytes) = (self.packets.clone(), self.bytes.clone());
        packets.refill(now);
        bytes.refill(now);
        packets.tokens >= packets.rate && bytes.tokens >= bytes.rate
    }
}

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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn token_buckets_refill_with_time_and_cap_at_one_second() {
        let start = Instant::now();
        let mut rate = Rate::new(
            &InjectRules {
                filter: String::new(),
                rate_pps: 5,
                rate_bps: 1000,
                spoof: false,
            },
            start,
        );
        for _ in 0..5 {
            assert_eq!(rate.check(100, start), Ok(()));
            rate.take(100);
        }
        let refused = rate.check(100, start).unwrap_err();
        assert_eq!(refused, Refused::PacketRate { pps: 5 });
        assert_eq!(refused.to_string(), "rate limit: 5 packets/s");
        // Refused attempts take nothing: 200 ms later exactly one more.
        for _ in 0..10 {
            assert!(rate.check(100, start).is_err());
        }
        let later = start + Duration::from_millis(200);
        assert_eq!(rate.check(100, later), Ok(()));
        rate.take(100);
        assert!(rate.check(100, later).is_err());
        // Bytes: 600 used of 1000, 400 + 200 refilled in 200 ms... but the
        // burst is capped at one second's worth after a long pause.
        let much_later = start + Duration::from_secs(60);
        rate.check(0, much_later).unwrap();
        assert!((rate.packets.tokens - 5.0).abs() < 1e-9);
        assert!((rate.bytes.tokens - 1000.0).abs() < 1e-9);
        assert_eq!(
            rate.check(1001, much_later),
            Err(Refused::BeyondBurst {
                len: 1001,
                bps: 1000
            })
        );
        assert_eq!(rate.check(1000, much_later), Ok(()));
        rate.take(1000);
        assert_eq!(
            rate.check(1, much_later),
            Err(Refused::ByteRate { bps: 1000 })
        );
        // A clock that goes backwards does not add tokens.
        assert!(rate.check(1, start).is_err());
    }

    #[test]
    fn a_rate_is_full_again_after_a_second() {
        let start = Instant::now();
        let rules = InjectRules {
            filter: String::new(),
            rate_pps: 5,
            rate_bps: 1000,
            spoof: false,
        };
        let mut rate = Rate::new(&rules, start);
        assert!(rate.is_full(start));
        rate.take(500);
        assert!(!rate.is_full(start + Duration::from_millis(100)));
        assert!(rate.is_full(start + Duration::from_secs(1)));
    }
}
