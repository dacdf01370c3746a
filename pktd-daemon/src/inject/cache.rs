//! The daemon's injection senders and rates.
//!
//! - A rate (two token buckets) belongs to a (uid, network namespace),
//!   the namespace known by its identity (device and inode), not by the
//!   name it was given: a user cannot multiply its rate by naming one
//!   namespace two ways, nor by using several interfaces. A rate is
//!   forgotten once full again (nothing is lost then) and made anew after
//!   a policy reload.
//! - A sender (an AF_PACKET socket and the interface's addresses) belongs
//!   to a (uid, namespace, interface); at most [`PER_UID`] per uid and
//!   [`TOTAL`] in all are kept, the least recently used closed first, and
//!   one unused for [`IDLE`] is closed.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use super::{checks::Refused, error::InjectError, rate::Rate, sender::FrameSender};
use crate::{policy::InjectGrant, sync::lock};

/// Senders one uid may hold.
pub const PER_UID: usize = 8;
/// Senders in all.
pub const TOTAL: usize = 256;
/// A sender unused this long is closed.
pub const IDLE: Duration = Duration::from_secs(60);

type SenderKey = (u32, (u64, u64), String);
type RateKey = (u32, (u64, u64));

/// A sender and the policy generation it was made under.
struct Made {
    generation: u64,
    sender: FrameSender,
}

/// A sender in the map: its lock (held while its frames go) and when it
/// was last asked for.
struct Held {
    made: Arc<Mutex<Option<Made>>>,
    used: Instant,
}

/// The senders and rates of the daemon.
pub struct Senders {
    senders: Mutex<HashMap<SenderKey, Held>>,
    rates: Mutex<HashMap<RateKey, (u64, Rate)>>,
    idle: Duration,
}

impl Default for Senders {
    fn default() -> Self {
        Self::with_idle(IDLE)
    }
}

impl Senders {
    /// Senders closed after `idle` unused.
    pub fn with_idle(idle: Duration) -> Self {
        Self {
            senders: Mutex::default(),
            rates: Mutex::default(),
            idle,
        }
    }

    /// Checks and sends `frames` on the granted interface as `uid`, under
    /// policy generation `generation`; one result per frame. Blocking (it
    /// may enter a namespace and compile the injection filter).
    pub fn send(
        &self,
        uid: u32,
        grant: &InjectGrant,
        generation: u64,
        frames: &[impl AsRef<[u8]>],
    ) -> Result<Vec<Result<(), Refused>>, InjectError> {
        let netns = grant.netns.open()?;
        let made = self.sender((uid, netns.key(), grant.interface.clone()));
        let mut made = lock(&made);
        if made
            .as_ref()
            .is_none_or(|made| made.generation != generation)
        {
            *made = Some(Made {
                generation,
                sender: FrameSender::open(&netns, &grant.interface, &grant.rules)?,
            });
        }
        let sender = &mut made.as_mut().expect("just made").sender;
        let mut rates = lock(&self.rates);
        let now = Instant::now();
        rates.retain(|_, (_, rate)| !rate.is_full(now));
        let (made_under, rate) = rates
            .entry((uid, netns.key()))
            .or_insert_with(|| (generation, Rate::new(&grant.rules, now)));
        if *made_under != generation {
            *made_under = generation;
            *rate = Rate::new(&grant.rules, now);
        }
        Ok(frames
            .iter()
            .map(|frame| sender.inject(frame.as_ref(), rate))
            .collect())
    }

    /// The sender of `key`, its place made (and room for it) if missing.
    fn sender(&self, key: SenderKey) -> Arc<Mutex<Option<Made>>> {
        let mut senders = lock(&self.senders);
        let now = Instant::now();
        senders.retain(|_, held| now.duration_since(held.used) < self.idle);
        if !senders.contains_key(&key) {
            let uid = key.0;
            if senders.keys().filter(|(owner, ..)| *owner == uid).count() >= PER_UID {
                evict_oldest(&mut senders, |(owner, ..)| *owner == uid);
            }
            if senders.len() >= TOTAL {
                evict_oldest(&mut senders, |_| true);
            }
        }
        let held = senders.entry(key).or_insert_with(|| Held {
            made: Arc::default(),
            used: now,
        });
        held.used = now;
        held.made.clone()
    }

    /// Senders held now.
    pub fn len(&self) -> usize {
        lock(&self.senders).len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Closes the least recently used sender among those `matching` (one in
/// use finishes its frames first: it is only taken out of the map).
fn evict_oldest(senders: &mut HashMap<SenderKey, Held>, matching: impl Fn(&SenderKey) -> bool) {
    if let Some(oldest) = senders
        .iter()
        .filter(|(key, _)| matching(key))
        .min_by_key(|(_, held)| held.used)
        .map(|(key, _)| key.clone())
    {
        senders.remove(&oldest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{netns::Netns, policy::InjectRules};

    fn grant() -> InjectGrant {
        InjectGrant {
            netns: Netns::Current,
            interface: "lo".into(),
            rules: InjectRules {
                filter: String::new(),
                rate_pps: 1000,
                rate_bps: 1_000_000,
                spoof: true,
            },
        }
    }

    /// A well-formed frame for loopback.
    fn frame() -> Vec<u8> {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([0; 6], [0; 6])
            .ipv4([127, 0, 0, 1], [127, 0, 0, 1], 64)
            .udp(9, 9)
            .write(&mut frame, &[0; 18])
            .unwrap();
        frame
    }

    #[test]
    fn senders_are_bounded_in_all() {
        let senders = Senders::default();
        let frames = [frame()];
        // Loopback is the one interface here: many uids stand in for many
        // (uid, namespace, interface) keys.
        for uid in 0..(TOTAL as u32 + 20) {
            let results = senders.send(10_000 + uid, &grant(), 0, &frames).unwrap();
            assert!(results[0].is_ok(), "{results:?}");
        }
        assert_eq!(senders.len(), TOTAL, "at most {TOTAL} in all");
    }

    #[test]
    fn idle_senders_are_closed() {
        let senders = Senders::with_idle(Duration::from_millis(200));
        let frames = [frame()];
        for uid in 0..3 {
            senders.send(10_000 + uid, &grant(), 0, &frames).unwrap();
        }
        assert_eq!(senders.len(), 3);
        std::thread::sleep(Duration::from_millis(300));
        senders.send(1, &grant(), 0, &frames).unwrap();
        assert_eq!(senders.len(), 1, "the idle ones were closed");
    }

    #[test]
    fn one_rate_per_user_and_namespace_whatever_its_name() {
        let senders = Senders::default();
        let mut grant = grant();
        grant.rules.rate_pps = 4;
        let frames = [frame()];
        let mut sent = 0;
        // The daemon's namespace by two names, alternately.
        let by_pid = Netns::parse(&format!("/proc/{}/ns/net", std::process::id())).unwrap();
        for round in 0..10 {
            let mut named = grant.clone();
            if round % 2 == 1 {
                named.netns = by_pid.clone();
            }
            let results = senders.send(4242, &named, 0, &frames).unwrap();
            sent += results.iter().filter(|result| result.is_ok()).count();
        }
        assert_eq!(sent, 4, "one bucket of 4 for both names");
    }
}
