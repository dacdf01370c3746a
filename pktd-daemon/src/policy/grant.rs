//! Authorization, in one place: every request kind passes through [`grant`],
//! which turns (the policy, the client's identity, what it asks) into what
//! it is allowed, cut to its principal's rules, or a typed refusal. Nothing
//! here compiles, loads or opens anything, so a refusal costs the daemon
//! next to nothing and a policy reload re-checks running sessions with the
//! same function.

use std::path::PathBuf;

use pktd_common::{DIR_IN, DIR_OUT, MAX_CAPLEN, largest_record};
use pktd_proto::{Direction, OpenCapture, RecordingRequest};

use pktd_anon::PayloadMode;

use super::{
    anonymize::Anonymization,
    principals::Policy,
    rules::{InjectRules, MAX_SNAPLEN, Peer, Rules, interface_matches},
};
use crate::{
    capture::{ClientSpec, ring_size},
    netns::{Netns, NetnsError},
};

/// What a client asks for.
#[derive(Clone, Copy, Debug)]
pub enum Ask<'a> {
    /// A live capture.
    Capture(&'a OpenCapture),
    /// A recording.
    Recording(&'a RecordingRequest),
    /// Injecting frames on an interface.
    Inject {
        /// The namespace, as named.
        netns: &'a str,
        /// The interface.
        interface: &'a str,
    },
    /// The daemon's performance statistics.
    DaemonStats,
    /// Listing or stopping recordings.
    Recordings,
    /// Listing the interfaces the client may capture on.
    Interfaces,
}

/// What a client may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    /// A live capture, as the rules cut it.
    Capture(CaptureGrant),
    /// A recording.
    Recording(RecordingGrant),
    /// Injection on one interface.
    Inject(InjectGrant),
    /// Whose statistics or recordings the client may see (and stop).
    Scope(Scope),
    /// Which interfaces the client may see listed.
    Interfaces(InterfacesGrant),
}

/// A capture as the policy allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureGrant {
    /// The principal whose rules apply.
    pub principal: String,
    /// Where.
    pub netns: Netns,
    /// The namespace as the client named it.
    pub netns_name: String,
    /// Where.
    pub interface: String,
    /// What the kernel is told: the request cut to the rules.
    pub spec: ClientSpec,
    /// What an accepting filter returns: the snaplen asked for, at most
    /// the policy's (it may exceed what one record holds, `spec.snaplen`).
    pub snaplen: u32,
    /// The policy's filter, ANDed with the client's in the kernel.
    pub policy_filter: Option<String>,
    /// The bytes of each packet the client's own filter may read (its
    /// principal's `max_snaplen`, when that is less than everything): its
    /// program is confined to them, return value included
    /// (`pktd_filter::confine`).
    pub window: Option<u32>,
    /// The headers of each packet, when the client's filter may read
    /// nothing past them (its program is confined to them per packet,
    /// `pktd_filter::confine_to_headers`); with [`HeaderView::Cut`] the
    /// record is cut there too.
    pub headers: Option<HeaderView>,
    /// What the client sees of addresses, MAC addresses and payloads, when
    /// its principal's are anonymized: its records are rewritten, its
    /// filter's address constants mapped back to the real ones.
    pub anonymize: Option<Anonymization>,
    /// The principal's packet quota (0: none), to tell a packet quota from
    /// a byte quota when one ends the session.
    pub packet_quota: u64,
    /// The most sessions the client's uid may have.
    pub max_sessions: u32,
    /// The most instructions its sessions' own filters may have together
    /// (0: no limit; always 0 for root).
    pub max_filter_insns: u32,
}

/// How far past its headers a session sees each packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderView {
    /// Packets are cut after their transport header (`snap = "headers"`
    /// in the policy, or the client's request).
    Cut,
    /// Packets are whole (their payload zeroed by the anonymization), but
    /// the filter reads only the headers.
    Filter,
}

/// A recording as the policy allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingGrant {
    /// What is captured.
    pub capture: CaptureGrant,
    /// Where the files go.
    pub directory: PathBuf,
    /// Most bytes the recording's files may take (`None`: no limit).
    pub disk_allowance: Option<u64>,
    /// Who owns the files: the client.
    pub owner: (u32, u32),
}

/// Injection as the policy allows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectGrant {
    /// Where.
    pub netns: Netns,
    /// Where.
    pub interface: String,
    /// What frames may contain, and how many.
    pub rules: InjectRules,
}

/// The interfaces a client may capture on, as a listing shows them: in
/// the namespaces its principal names (every ip-netns namespace for
/// `"*"`), those its interface patterns match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfacesGrant {
    /// The principal's namespaces, as written (`"*"`: every one).
    pub netns: Vec<String>,
    /// Its interface patterns.
    pub interfaces: Vec<String>,
}

impl InterfacesGrant {
    /// Whether every namespace is the principal's.
    pub fn every_netns(&self) -> bool {
        self.netns.iter().any(|netns| netns == "*")
    }

    /// Whether a capture on `interface` would be granted (namespace aside).
    pub fn shows(&self, interface: &str) -> bool {
        interface_matches(&self.interfaces, interface)
    }
}

/// Whose sessions and recordings a client may see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everyone's (root).
    All,
    /// Those of this uid.
    Uid(u32),
}

impl Scope {
    /// Whether a session or recording of `uid` is in scope.
    pub fn covers(self, uid: u32) -> bool {
        match self {
            Self::All => true,
            Self::Uid(own) => own == uid,
        }
    }
}

/// Why a request is refused.
#[derive(Debug, thiserror::Error)]
pub enum Denied {
    /// Not something Linux would name an interface (before the policy is
    /// asked: the name goes into files and replies).
    #[error("{name:?} is not an interface name (1 to 15 bytes, no '/', ':', whitespace or NUL)")]
    InterfaceName {
        /// The name, cut to 32 characters.
        name: String,
    },
    /// No principal matches the client.
    #[error("the policy allows uid {uid} gid {gid} nothing")]
    NoPrincipal {
        /// The client's uid.
        uid: u32,
        /// The client's gid.
        gid: u32,
    },
    /// The namespace is not the principal's.
    #[error("principal {principal:?} may not capture in network namespace {netns:?}")]
    Netns {
        /// The principal.
        principal: String,
        /// The namespace asked for.
        netns: String,
    },
    /// The interface is not the principal's.
    #[error("principal {principal:?} may not capture on interface {interface:?}")]
    Interface {
        /// The principal.
        principal: String,
        /// The interface asked for.
        interface: String,
    },
    /// A direction the principal may not capture.
    #[error("principal {principal:?} may not capture direction {direction:?}")]
    Direction {
        /// The principal.
        principal: String,
        /// The direction asked for.
        direction: Direction,
    },
    /// The principal has no record directory.
    #[error("principal {principal:?} may not record to disk")]
    NoRecordDirectory {
        /// The principal.
        principal: String,
    },
    /// The principal may not inject.
    #[error("principal {principal:?} may not inject")]
    NoInjection {
        /// The principal.
        principal: String,
    },
    /// Injection outside the principal's namespaces or interfaces.
    #[error(
        "principal {principal:?} may not inject on {interface:?} in network namespace {netns:?}"
    )]
    InjectPlace {
        /// The principal.
        principal: String,
        /// The namespace asked for.
        netns: String,
        /// The interface asked for.
        interface: String,
    },
    /// A recording asked for statistics mode, which writes nothing.
    #[error("a recording cannot be in statistics mode")]
    CountOnlyRecording,
    /// The namespace's name is not one pktd accepts.
    #[error(transparent)]
    NetnsName(#[from] NetnsError),
}

/// Decides what `peer` may do of what it asks, under `policy`.
pub fn grant(policy: &Policy, peer: &Peer, ask: Ask<'_>) -> Result<Grant, Denied> {
    let scope = if peer.uid == 0 {
        Scope::All
    } else {
        Scope::Uid(peer.uid)
    };
    // Seeing one's own sessions and recordings needs no principal.
    if let Ask::DaemonStats | Ask::Recordings = ask {
        return Ok(Grant::Scope(scope));
    }
    let rules = policy.rules_for(peer).ok_or(Denied::NoPrincipal {
        uid: peer.uid,
        gid: peer.gid,
    })?;
    match ask {
        Ask::Capture(request) => capture(rules, peer, request).map(Grant::Capture),
        Ask::Recording(request) => recording(rules, peer, request).map(Grant::Recording),
        Ask::Inject { netns, interface } => inject(rules, netns, interface).map(Grant::Inject),
        Ask::DaemonStats | Ask::Recordings => Ok(Grant::Scope(scope)),
        Ask::Interfaces => Ok(Grant::Interfaces(InterfacesGrant {
            netns: rules.netns.clone(),
            interfaces: rules.interfaces.clone(),
        })),
    }
}

/// Linux's rule for interface names (`dev_valid_name`).
fn interface_name(name: &str) -> Result<(), Denied> {
    let valid = !name.is_empty()
        && name.len() < 16
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if valid {
        Ok(())
    } else {
        Err(Denied::InterfaceName {
            name: name.chars().take(32).collect(),
        })
    }
}

fn capture(rules: &Rules, peer: &Peer, request: &OpenCapture) -> Result<CaptureGrant, Denied> {
    interface_name(&request.interface)?;
    let principal = || rules.principal.clone();
    if !rules.allows_netns(&request.netns) {
        return Err(Denied::Netns {
            principal: principal(),
            netns: request.netns.clone(),
        });
    }
    if !rules.allows_interface(&request.interface) {
        return Err(Denied::Interface {
            principal: principal(),
            interface: request.interface.clone(),
        });
    }
    let (inbound, outbound) = directions(request.direction);
    if !rules.allows_direction(inbound, outbound) {
        return Err(Denied::Direction {
            principal: principal(),
            direction: request.direction,
        });
    }
    let netns = Netns::parse(&request.netns)?;
    let (spec, snaplen) = client_spec(rules, request);
    Ok(CaptureGrant {
        principal: principal(),
        netns,
        netns_name: request.netns.clone(),
        interface: request.interface.clone(),
        spec,
        snaplen,
        policy_filter: rules.filter.clone(),
        window: (rules.max_snaplen < MAX_SNAPLEN).then_some(rules.max_snaplen),
        headers: header_view(rules, request),
        anonymize: rules.anonymize.clone(),
        packet_quota: rules.packet_quota,
        max_sessions: rules.max_sessions,
        // Root is always served.
        max_filter_insns: if peer.uid == 0 {
            0
        } else {
            rules.max_filter_insns
        },
    })
}

fn recording(
    rules: &Rules,
    peer: &Peer,
    request: &RecordingRequest,
) -> Result<RecordingGrant, Denied> {
    if request.capture.stats_interval_ms != 0 {
        return Err(Denied::CountOnlyRecording);
    }
    let capture = capture(rules, peer, &request.capture)?;
    let directory = rules
        .record_directory
        .clone()
        .ok_or_else(|| Denied::NoRecordDirectory {
            principal: rules.principal.clone(),
        })?;
    Ok(RecordingGrant {
        capture,
        directory,
        disk_allowance: (rules.disk_allowance != 0).then_some(rules.disk_allowance),
        owner: (peer.uid, peer.gid),
    })
}

fn inject(rules: &Rules, netns: &str, interface: &str) -> Result<InjectGrant, Denied> {
    interface_name(interface)?;
    let inject = rules.inject.clone().ok_or_else(|| Denied::NoInjection {
        principal: rules.principal.clone(),
    })?;
    if !rules.allows_netns(netns) || !rules.allows_interface(interface) {
        return Err(Denied::InjectPlace {
            principal: rules.principal.clone(),
            netns: netns.to_owned(),
            interface: interface.to_owned(),
        });
    }
    Ok(InjectGrant {
        netns: Netns::parse(netns)?,
        interface: interface.to_owned(),
        rules: inject,
    })
}

/// How far past its headers a session sees: cut there if the policy or
/// the client says so; whole but filtered only on its headers if the
/// payload is anonymized away (a filter must not learn what the client
/// sees zeroed).
fn header_view(rules: &Rules, request: &OpenCapture) -> Option<HeaderView> {
    if rules.snap_headers || request.headers_only {
        return Some(HeaderView::Cut);
    }
    let hides_payload = rules
        .anonymize
        .as_ref()
        .is_some_and(|anonymize| anonymize.payload == PayloadMode::Zero);
    hides_payload.then_some(HeaderView::Filter)
}

/// What the kernel is told of a session: the request cut to the rules.
/// Also returns the snaplen the filter is compiled for.
fn client_spec(rules: &Rules, request: &OpenCapture) -> (ClientSpec, u32) {
    let (inbound, mut outbound) = directions(request.direction);
    // On loopback every packet leaves and arrives again: like libpcap,
    // capturing both directions sees it once, arriving.
    if request.interface == "lo" && inbound {
        outbound = false;
    }
    let snaplen = match request.snaplen {
        0 => rules.max_snaplen,
        asked => asked.min(rules.max_snaplen),
    };
    let ring_bytes = match request.buffer_bytes {
        0 => rules.ring_bytes,
        asked => asked.min(rules.ring_bytes),
    };
    // A record is reserved whole in its size class: a packet whose class
    // does not fit the ring would never be delivered, cut it to one that
    // does (a ring too large is refused later).
    let fits = ring_size(ring_bytes).map_or(MAX_CAPLEN, largest_record);
    let spec = ClientSpec {
        directions: if inbound { DIR_IN } else { 0 } | if outbound { DIR_OUT } else { 0 },
        snaplen: snaplen.min(MAX_CAPLEN).min(fits),
        // A count is a quota the kernel can enforce too: nothing past it
        // is copied into the ring.
        packet_quota: match (rules.packet_quota, request.packet_count) {
            (0, count) | (count, 0) => count,
            (quota, count) => quota.min(count),
        },
        byte_quota: rules.byte_quota,
        ring_bytes,
        count_only: request.stats_interval_ms != 0,
        immediate: request.immediate,
    };
    (spec, snaplen)
}

fn directions(direction: Direction) -> (bool, bool) {
    match direction {
        Direction::In => (true, false),
        Direction::Out => (false, true),
        Direction::InOut => (true, true),
    }
}

#[cfg(test)]
mod tests;
