//! Verifier loads admitted per uid and in all. Opening a session, changing
//! its filter or applying a reloaded policy filter loads programs into the
//! kernel's verifier (a whole kernel program for a new attachment, about a
//! second of CPU here; the interface's native code otherwise), on the
//! blocking pool. Without a bound one user could keep every CPU verifying
//! by opening sessions on many interfaces at once.
//!
//! A uid has one load at a time, and all users together at most one per
//! CPU; a request over either waits (on the async runtime, holding no
//! thread) for its turn. Root is never held back. The waiters are bounded
//! too: a connection has one request at a time, and a uid at most
//! `--max-connections-per-user` connections.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::sync::lock;

/// The gate every verifier load of a client's passes.
pub struct Loads {
    total: Arc<Semaphore>,
    per_uid: Arc<Mutex<HashMap<u32, Arc<Semaphore>>>>,
}

/// A turn at the verifier; the next waiter's comes when it is dropped.
#[must_use = "the turn ends when the permit is dropped"]
pub struct LoadPermit {
    /// Root holds none. Only dropped: its `Drop` gives the turn back.
    _held: Option<Held>,
}

struct Held {
    uid: u32,
    per_uid: Arc<Mutex<HashMap<u32, Arc<Semaphore>>>>,
    own: Option<OwnedSemaphorePermit>,
    _total: OwnedSemaphorePermit,
}

impl Loads {
    /// A gate admitting at most `total` loads at once (at least 1).
    pub fn new(total: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total.max(1))),
            per_uid: Arc::default(),
        }
    }

    /// A gate with one load per CPU.
    pub fn per_cpu() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// Waits for `uid`'s turn: after its own load in progress, if any,
    /// and until fewer than `total` are in progress. Root's turn is now.
    pub async fn admit(&self, uid: u32) -> LoadPermit {
        if uid == 0 {
            return LoadPermit { _held: None };
        }
        let own = lock(&self.per_uid)
            .entry(uid)
            .or_insert_with(|| Arc::new(Semaphore::new(1)))
            .clone();
        let own = own.acquire_owned().await.expect("never closed");
        let total = self
            .total
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        LoadPermit {
            _held: Some(Held {
                uid,
                per_uid: self.per_uid.clone(),
                own: Some(own),
                _total: total,
            }),
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let own = self.own.take();
        let mut per_uid = lock(&self.per_uid);
        drop(own);
        // Forget the uid once nobody holds or waits for its turn (the map
        // holds the only other reference).
        if per_uid
            .get(&self.uid)
            .is_some_and(|own| Arc::strong_count(own) == 1 && own.available_permits() == 1)
        {
            per_uid.remove(&self.uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::timeout;

    use super::*;

    const SOON: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_uid_has_one_load_at_a_time() {
        let loads = Loads::new(4);
        let first = loads.admit(1000).await;
        assert!(
            timeout(SOON, loads.admit(1000)).await.is_err(),
            "a second load of the same uid waits"
        );
        let other = timeout(SOON, loads.admit(1001))
            .await
            .expect("another uid does not wait");
        drop(first);
        let second = timeout(SOON, loads.admit(1000))
            .await
            .expect("its turn once the first is done");
        drop((second, other));
        assert!(lock(&loads.per_uid).is_empty(), "uids are forgotten");
    }

    #[tokio::test]
    async fn all_users_together_have_at_most_the_total() {
        let loads = Loads::new(2);
        let held = [loads.admit(1).await, loads.admit(2).await];
        assert!(
            timeout(SOON, loads.admit(3)).await.is_err(),
            "a third user waits"
        );
        let root = timeout(SOON, loads.admit(0))
            .await
            .expect("root never waits");
        drop(root);
        drop(held);
        let _third = timeout(SOON, loads.admit(3))
            .await
            .expect("a turn once one is done");
    }
}
