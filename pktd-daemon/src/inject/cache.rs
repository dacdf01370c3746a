//! One [`FrameSender`] per (uid, namespace, interface), shared by all of
//! that user's connections so that its rate limit holds across them, and
//! made anew after a policy reload.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use super::{checks::Refused, error::InjectError, sender::FrameSender};
use crate::{netns::Netns, policy::InjectGrant, sync::lock};

type Key = (u32, Netns, String);

/// A sender and the policy generation it was made under.
struct Made {
    generation: u64,
    sender: FrameSender,
}

/// The senders of the daemon.
#[derive(Default)]
pub struct Senders {
    /// The map's lock is held only to find or add an entry; each entry has
    /// its own, held while its frames are checked and sent.
    all: Mutex<HashMap<Key, Arc<Mutex<Option<Made>>>>>,
}

impl Senders {
    /// Checks and sends `frames` on the granted interface as `uid`, with the
    /// sender made under policy generation `generation` (made now if
    /// missing or older); one result per frame. Blocking (it may enter a
    /// namespace and compile the injection filter).
    pub fn send(
        &self,
        uid: u32,
        grant: &InjectGrant,
        generation: u64,
        frames: &[impl AsRef<[u8]>],
    ) -> Result<Vec<Result<(), Refused>>, InjectError> {
        let key = (uid, grant.netns.clone(), grant.interface.clone());
        let entry = lock(&self.all).entry(key).or_default().clone();
        let mut made = lock(&entry);
        if made
            .as_ref()
            .is_none_or(|made| made.generation != generation)
        {
            *made = Some(Made {
                generation,
                sender: FrameSender::open(&grant.netns, &grant.interface, &grant.rules)?,
            });
        }
        let sender = &mut made.as_mut().expect("just made").sender;
        Ok(frames
            .iter()
            .map(|frame| sender.inject(frame.as_ref()))
            .collect())
    }
}
