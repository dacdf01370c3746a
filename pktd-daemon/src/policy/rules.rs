//! What a principal may do: the rules a policy file grants, their limits,
//! bounds and defaults, and the identity clients are matched by.

use std::{collections::HashSet, path::PathBuf};

use super::anonymize::Anonymization;

/// Largest snapshot length a principal may be given, and the default.
pub const MAX_SNAPLEN: u32 = 262_144;
/// Smallest ring buffer a principal may be given.
pub const MIN_RING_BYTES: u32 = 4096;
/// Largest ring buffer a principal may be given.
pub const MAX_RING_BYTES: u32 = 1 << 30;
/// Ring buffer size when a principal does not set one.
pub const DEFAULT_RING_BYTES: u32 = 4 << 20;
/// Concurrent sessions per uid when a principal does not set a limit.
pub const DEFAULT_MAX_SESSIONS: u32 = 16;
/// Classic-BPF instructions a uid's sessions' filters may have together
/// when a principal does not set a limit: two to six ordinary tcpdump
/// filters (10 to 30 instructions each). Filters cost the interface time
/// on every packet, whatever they match, up to in proportion to their
/// length; `cargo xtask perf` (phase d) measures the worst filters this
/// allows against the interface's rate with none (target: 80% kept).
pub const DEFAULT_MAX_FILTER_INSNS: u32 = 64;
/// Concurrent sessions root has under the default policy.
pub(super) const ROOT_MAX_SESSIONS: u32 = 1024;
/// Injected packets per second when a principal does not set a rate.
pub const DEFAULT_INJECT_RATE_PPS: u32 = 10;
/// Injected bytes per second when a principal does not set a rate.
pub const DEFAULT_INJECT_RATE_BPS: u64 = 1_000_000;
/// Injected packets per second root has under the default policy.
pub(super) const ROOT_INJECT_RATE_PPS: u32 = 100_000;
/// Injected bytes per second root has under the default policy.
pub(super) const ROOT_INJECT_RATE_BPS: u64 = 1_000_000_000;

/// Bytes a principal's recordings may keep when it does not say.
pub const DEFAULT_DISK_ALLOWANCE: u64 = 1 << 30;

/// Where root's recordings go under the default policy.
pub const ROOT_RECORD_DIRECTORY: &str = "/var/lib/pktd";

/// The capture directions a principal may ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directions {
    /// Packets arriving on the interface.
    pub inbound: bool,
    /// Packets leaving the interface.
    pub outbound: bool,
}

impl Directions {
    /// Both directions.
    pub const BOTH: Self = Self {
        inbound: true,
        outbound: true,
    };
}

/// What the clients of one principal may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rules {
    /// The principal's name, for logs and errors.
    pub principal: String,
    /// Allowed network namespaces as written: ip-netns names, `""` or `"-"`
    /// for pktd's own, `"*"` for any. Use [`Rules::allows_netns`].
    pub netns: Vec<String>,
    /// Allowed interfaces as written: names, prefixes ending in `*`, or `"*"`
    /// for any. Use [`Rules::allows_interface`].
    pub interfaces: Vec<String>,
    /// Allowed capture directions.
    pub directions: Directions,
    /// A tcpdump expression every session's filter is ANDed with (already
    /// known to compile).
    pub filter: Option<String>,
    /// Most bytes captured per packet (1..=262144).
    pub max_snaplen: u32,
    /// `snap = "headers"`: every packet is cut after its transport header
    /// (and `max_snaplen` still applies when it cuts earlier).
    pub snap_headers: bool,
    /// What the principal's clients see of addresses, MAC addresses and
    /// payloads (`None`: everything as it is).
    pub anonymize: Option<Anonymization>,
    /// Most packets per session; 0 = no limit.
    pub packet_quota: u64,
    /// Most captured bytes per session; 0 = no limit.
    pub byte_quota: u64,
    /// Most concurrent sessions per uid.
    pub max_sessions: u32,
    /// Most classic-BPF instructions of the clients' own filters, summed
    /// over a uid's sessions; 0 = no limit. Root (uid 0) is not limited.
    pub max_filter_insns: u32,
    /// Ring buffer size per session; a client's request is capped by it.
    pub ring_bytes: u32,
    /// What the principal may inject; `None`: nothing.
    pub inject: Option<InjectRules>,
    /// Where the principal's recordings go (an absolute path, created by
    /// the daemon if missing); `None`: it may not record to disk.
    pub record_directory: Option<PathBuf>,
    /// Bytes all of the principal's recordings may keep on disk together;
    /// 0 = no limit.
    pub disk_allowance: u64,
}

/// What a principal may inject (on the namespaces and interfaces its
/// [`Rules`] allow).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InjectRules {
    /// A tcpdump expression every injected frame must match (already known
    /// to compile); blank matches every frame.
    pub filter: String,
    /// Packets per second; the burst is one second's worth. At least 1.
    pub rate_pps: u32,
    /// Bytes per second; the burst is one second's worth. At least 1.
    pub rate_bps: u64,
    /// Whether frames may carry source MAC and IP addresses other than the
    /// interface's own.
    pub spoof: bool,
}

impl Rules {
    /// Whether a session may capture in network namespace `netns` (an
    /// ip-netns name, `container:ID`, `pod:NAMESPACE/NAME`, or `""`/`"-"`
    /// for pktd's own); a pattern ending in `*` allows the names it is a
    /// prefix of (`"container:*"`, `"pod:team-a/*"`, `"lab-*"`), `"*"`
    /// alone every namespace.
    pub fn allows_netns(&self, netns: &str) -> bool {
        let wanted = own_netns(netns);
        self.netns
            .iter()
            .any(|allowed| match allowed.strip_suffix('*') {
                Some(prefix) => wanted.starts_with(prefix),
                None => own_netns(allowed) == wanted,
            })
    }

    /// Whether a session may capture on interface `interface`.
    pub fn allows_interface(&self, interface: &str) -> bool {
        interface_matches(&self.interfaces, interface)
    }

    /// Whether a session may capture the directions asked for; asking for
    /// neither asks for nothing the policy could refuse.
    pub fn allows_direction(&self, inbound: bool, outbound: bool) -> bool {
        (!inbound || self.directions.inbound) && (!outbound || self.directions.outbound)
    }
}

/// `""` and `"-"` both name pktd's own namespace.
/// Whether `interface` matches one of `patterns` (a name, or a prefix
/// ending in `*`).
pub fn interface_matches(patterns: &[String], interface: &str) -> bool {
    patterns
        .iter()
        .any(|pattern| match pattern.strip_suffix('*') {
            Some(prefix) => interface.starts_with(prefix),
            None => pattern == interface,
        })
}

fn own_netns(name: &str) -> &str {
    if name == "-" { "" } else { name }
}

/// A client's identity as the kernel reports it (`SO_PEERCRED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Peer {
    /// Effective user id.
    pub uid: u32,
    /// Effective group id.
    pub gid: u32,
    /// Process id (for logs; policy does not depend on it).
    pub pid: i32,
}

/// One principal, its names resolved to ids.
#[derive(Clone, Debug)]
pub struct Principal {
    /// Clients with one of these uids match.
    pub uids: HashSet<u32>,
    /// Clients with one of these gids match.
    pub gids: HashSet<u32>,
    /// Members of `groups` (per the account databases) match by uid.
    pub member_uids: HashSet<u32>,
    pub rules: Rules,
}

impl Principal {
    pub fn matches(&self, peer: &Peer) -> bool {
        self.uids.contains(&peer.uid)
            || self.gids.contains(&peer.gid)
            || self.member_uids.contains(&peer.uid)
    }
}
