//! Listing the interfaces a client may capture on: in each namespace its
//! principal names (every ip-netns namespace for `"*"`, at most
//! `netns::MAX_NAMED`), those its interface patterns match. Entering the
//! namespaces runs on the blocking pool, through a gate of one listing per
//! uid and one per CPU in all (root never waits).

use pktd_proto::{InterfaceInfo, Reply};

use super::refusal::Refusal;
use crate::{
    netns::{self, Netns},
    policy::{Ask, Grant, InterfacesGrant, Peer, grant},
    state::State,
    sync::blocking,
    sys,
};

/// The interfaces `peer` may capture on, now.
pub(super) async fn list(state: &State, peer: Peer) -> Result<Reply, Refusal> {
    let Grant::Interfaces(granted) = grant(&state.policy().current(), &peer, Ask::Interfaces)?
    else {
        unreachable!("a listing is granted as interfaces");
    };
    let _turn = state.listings().admit(peer.uid).await;
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
        let mut named: Vec<String> = granted
            .netns
            .iter()
            .map(|name| {
                if name == "-" {
                    String::new()
                } else {
                    name.clone()
                }
            })
            .collect();
        named.sort();
        named.dedup();
        named
    };
    let mut listed = Vec::new();
    for name in namespaces {
        // A namespace that is gone (or was never there) lists nothing.
        let Ok(links) = Netns::parse(&name).and_then(|netns| {
            netns.run(|| {
                sys::interfaces().map(|links| {
                    links
                        .into_iter()
                        .filter_map(|link| {
                            let index = sys::interface_index(&link.name).ok()?;
                            Some((index, link))
                        })
                        .collect::<Vec<_>>()
                })
            })
        }) else {
            continue;
        };
        let Ok(mut links) = links else { continue };
        links.sort_by_key(|(index, _)| *index);
        for (index, link) in links {
            if !granted.shows(&link.name) {
                continue;
            }
            listed.push(InterfaceInfo {
                netns: name.clone(),
                up: link.flags & libc::IFF_UP as u32 != 0,
                running: link.flags & libc::IFF_RUNNING as u32 != 0,
                loopback: link.flags & libc::IFF_LOOPBACK as u32 != 0,
                name: link.name,
                index,
            });
        }
    }
    listed
}
