//! Listing the interfaces a client may capture on: in each namespace its
//! principal names (every ip-netns namespace for `"*"`, those a pattern
//! such as `"lab-*"` matches, at most `netns::MAX_NAMED`; a
//! `/proc/PID/ns/net` of the policy is not listed, since it names whatever
//! process has that pid now, nor are containers), those its interface
//! patterns match, at most [`MAX_LISTED`] in all. Entering the namespaces
//! runs on the blocking pool, through a gate of one listing per uid and
//! one per CPU in all (root never waits).

use pktd_proto::{InterfaceInfo, Reply};

use super::refusal::Refusal;
use crate::{
    netns::{self, Netns},
    policy::{Ask, Grant, InterfacesGrant, Peer, grant},
    state::State,
    sync::blocking,
    sys,
};

/// Most interfaces one listing shows, over all namespaces: a namespace's
/// owner (a container's root) makes as many links as it likes.
const MAX_LISTED: usize = 4096;

/// The interfaces `peer` may capture on, now.
pub(super) async fn list(state: &State, peer: Peer) -> Result<Reply, Refusal> {
    let granted = || match grant(&state.policy().current(), &peer, Ask::Interfaces)? {
        Grant::Interfaces(granted) => Ok::<_, Refusal>(granted),
        _ => unreachable!("a listing is granted as interfaces"),
    };
    // Refused at once when it would be; asked again once its turn has
    // come, since a reload may have come first.
    granted()?;
    let _turn = state.listings().admit(peer.uid).await;
    let granted = granted()?;
    Ok(Reply::Interfaces(
        blocking(move || interfaces(&granted)).await,
    ))
}

/// Blocking: enters each namespace.
fn interfaces(granted: &InterfacesGrant) -> Vec<InterfaceInfo> {
    let namespaces: Vec<String> = if granted.every_netns() {
        std::iter::once(String::new())
            .chain(netns::named())
            .collect()
    } else {
        // A pattern lists the ip-netns namespaces it matches (container
        // patterns list none: containers are not enumerated).
        let every_named = netns::named();
        let mut named: Vec<String> = granted
            .netns
            .iter()
            .filter(|name| !name.starts_with('/'))
            .flat_map(|name| match name.strip_suffix('*') {
                Some(prefix) => every_named
                    .iter()
                    .filter(|named| named.starts_with(prefix))
                    .cloned()
                    .collect(),
                None if name == "-" => vec![String::new()],
                None => vec![name.clone()],
            })
            .collect();
        named.sort();
        named.dedup();
        named
    };
    let mut listed = Vec::new();
    for name in namespaces {
        let left = MAX_LISTED - listed.len();
        // A namespace that is gone (or was never there) lists nothing.
        let Ok(Ok(mut links)) = Netns::parse(&name).and_then(|netns| {
            netns.run(|| sys::interfaces(|link_name| granted.shows(link_name), left))
        }) else {
            continue;
        };
        links.sort_by_key(|link| link.index);
        for link in links {
            listed.push(InterfaceInfo {
                netns: name.clone(),
                up: link.flags & libc::IFF_UP as u32 != 0,
                running: link.flags & libc::IFF_RUNNING as u32 != 0,
                loopback: link.flags & libc::IFF_LOOPBACK as u32 != 0,
                name: link.name,
                index: link.index,
            });
        }
        if listed.len() >= MAX_LISTED {
            break;
        }
    }
    listed
}
