//! Injection requests: frames checked against the principal's rules and
//! sent, one verdict each.

use pktd_proto::{Frame, InjectVerdict, Reply};

use super::refusal::Refusal;
use crate::{
    policy::{Ask, Grant, Peer, grant},
    state::State,
    sync::blocking,
};

/// Checks and sends `frames` on `interface` in `netns`.
pub(super) async fn inject(
    state: &std::sync::Arc<State>,
    peer: Peer,
    netns: &str,
    interface: &str,
    frames: Vec<Frame>,
) -> Result<Reply, Refusal> {
    let (policy, generation) = state.policy().current_with_generation();
    let Grant::Inject(granted) = grant(&policy, &peer, Ask::Inject { netns, interface })? else {
        unreachable!("injection is granted as injection");
    };
    let state = state.clone();
    let frames: Vec<Vec<u8>> = frames.into_iter().map(|frame| frame.0).collect();
    let results = blocking(move || {
        state
            .senders()
            .send(peer.uid, &granted, generation, &frames)
    })
    .await?;
    Ok(Reply::Injected(
        results
            .into_iter()
            .map(|result| match result {
                Ok(()) => InjectVerdict::Sent,
                Err(refused) => InjectVerdict::Refused(refused.to_string()),
            })
            .collect(),
    ))
}
