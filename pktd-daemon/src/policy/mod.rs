//! The box owner's policy: what each client may capture and inject.
//!
//! A client is identified only by the credentials the kernel reports for its
//! socket (`SO_PEERCRED`: uid, gid, pid), never by anything it writes. The
//! policy maps that identity to the [`Rules`] of the first matching
//! principal; a client no principal matches may do nothing.
//!
//! Without a policy file the [default](Policy::default_policy) applies: root
//! (uid 0) may do everything, everyone else nothing. With `pktd --policy
//! FILE` the file replaces the default entirely, so it must list root too if
//! root is to capture.
//!
//! # Format
//!
//! A TOML file of `[[principal]]` tables, tried in file order:
//!
//! ```toml
//! # Principals are tried in file order; the first that matches the client is used.
//! [[principal]]
//! name = "researchers"           # label for logs and errors (required, unique)
//! users = ["alice", 1001]        # user names or uids: match the client's uid
//! groups = ["netlab", 2000]      # group names or gids: match the client's gid, or
//!                                # users that are members of the group
//! netns = ["lab1", "lab2"]       # ip-netns names, "" or "-" for pktd's own, "*" for any
//!                                # (default: none)
//! interfaces = ["veth*", "eth0"] # a trailing * is a prefix wildcard, "*" alone is any
//!                                # (default: none)
//! directions = ["in", "out"]     # capture directions (default: both)
//! filter = "not port 22"         # tcpdump expression ANDed with the client's (default: none)
//! max_snaplen = 1500             # 1 to 262144 (default 262144)
//! packet_quota = 1000000         # packets per session, 0 = unlimited (default)
//! byte_quota = 100000000         # captured bytes per session, 0 = unlimited (default)
//! max_sessions = 4               # concurrent sessions, counted per uid (default 16)
//! ring_bytes = 4194304           # ring buffer per session, caps the client's request;
//!                                # 4096 to 1 GiB (default 4 MiB)
//! inject_filter = "icmp[icmptype] = icmp-echo and dst net 10.0.0.0/8"
//!                                # tcpdump expression every injected frame must match;
//!                                # "" matches everything; absent: may not inject at all
//! inject_rate_pps = 100          # injected packets per second, burst one second's worth;
//!                                # 1 or more (default 10)
//! inject_rate_bps = 1000000      # injected bytes per second, burst one second's worth;
//!                                # 1 or more (default 1000000)
//! inject_spoof = false           # may frames carry a source MAC or IP address that is
//!                                # not the interface's own (default false)
//! record_directory = "/var/lib/pktd/researchers"
//!                                # where recordings (pktcap --record) go; created if
//!                                # missing; absent: may not record to disk
//! disk_allowance = 1000000000    # bytes each recording's files may take; the oldest
//!                                # are deleted to stay under it (0: no limit)
//!
//! [[principal]]
//! name = "admins"
//! users = ["root"]
//! netns = ["*"]
//! interfaces = ["*"]
//! max_sessions = 1024
//! ```
//!
//! A principal needs `users`, `groups` or both. Unknown keys, user and group
//! names missing from `/etc/passwd` and `/etc/group`, filters libpcap does
//! not compile, values out of range and `inject_rate_*`/`inject_spoof`
//! without `inject_filter` are refused when the file is loaded, each error
//! naming the file and line.
//!
//! Injection uses the principal's `netns` and `interfaces` like capture
//! does; the `inject_*` keys add what a frame may contain (see
//! [`crate::inject`]).
//!
//! Names are resolved once, at load time, from `/etc/passwd` and
//! `/etc/group` (read directly, not through NSS, so accounts that exist only
//! in LDAP or systemd-userdb must be given by number). A group's members
//! are the users it lists in `/etc/group` and the users whose primary group
//! it is in `/etc/passwd`. Numeric uids and gids need not exist.

use std::{
    collections::HashSet,
    fs, io,
    path::{Path, PathBuf},
};

use self::{
    accounts::Accounts,
    file::{RawPolicy, Source},
};
pub use self::{
    grant::{Ask, CaptureGrant, Denied, Grant, InjectGrant, RecordingGrant, Scope, grant},
    store::PolicyStore,
};

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
/// Concurrent sessions root has under the default policy.
const ROOT_MAX_SESSIONS: u32 = 1024;
/// Injected packets per second when a principal does not set a rate.
pub const DEFAULT_INJECT_RATE_PPS: u32 = 10;
/// Injected bytes per second when a principal does not set a rate.
pub const DEFAULT_INJECT_RATE_BPS: u64 = 1_000_000;
/// Injected packets per second root has under the default policy.
const ROOT_INJECT_RATE_PPS: u32 = 100_000;
/// Injected bytes per second root has under the default policy.
const ROOT_INJECT_RATE_BPS: u64 = 1_000_000_000;

/// Where root's recordings go under the default policy.
pub const ROOT_RECORD_DIRECTORY: &str = "/var/lib/pktd";

/// Everything that can be wrong with a policy file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// The policy file (or an account database) could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The file is not TOML, or not of the policy's shape (unknown key, wrong
    /// type, missing `name`).
    #[error("{origin} line {line}, column {column}: {message}")]
    Syntax {
        /// The file name.
        origin: String,
        /// 1-based line of the offending text.
        line: usize,
        /// 1-based column (in characters) of the offending text.
        column: usize,
        /// The TOML parser's explanation.
        message: String,
    },
    /// A principal is well-formed TOML but says something pktd refuses.
    #[error("{origin} line {line}: principal {principal:?}: {message}")]
    Invalid {
        /// The file name.
        origin: String,
        /// 1-based line of the offending key or value.
        line: usize,
        /// The principal's name.
        principal: String,
        /// What is wrong.
        message: String,
    },
}

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
    /// Most packets per session; 0 = no limit.
    pub packet_quota: u64,
    /// Most captured bytes per session; 0 = no limit.
    pub byte_quota: u64,
    /// Most concurrent sessions per uid.
    pub max_sessions: u32,
    /// Ring buffer size per session; a client's request is capped by it.
    pub ring_bytes: u32,
    /// What the principal may inject; `None`: nothing.
    pub inject: Option<InjectRules>,
    /// Where the principal's recordings go (an absolute path, created by
    /// the daemon if missing); `None`: it may not record to disk.
    pub record_directory: Option<PathBuf>,
    /// Bytes each recording's files may take; 0 = no limit.
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
    /// ip-netns name, or `""`/`"-"` for pktd's own).
    pub fn allows_netns(&self, netns: &str) -> bool {
        let wanted = own_netns(netns);
        self.netns
            .iter()
            .any(|allowed| allowed == "*" || own_netns(allowed) == wanted)
    }

    /// Whether a session may capture on interface `interface`.
    pub fn allows_interface(&self, interface: &str) -> bool {
        self.interfaces
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => interface.starts_with(prefix),
                None => pattern == interface,
            })
    }

    /// Whether a session may capture the directions asked for; asking for
    /// neither asks for nothing the policy could refuse.
    pub fn allows_direction(&self, inbound: bool, outbound: bool) -> bool {
        (!inbound || self.directions.inbound) && (!outbound || self.directions.outbound)
    }
}

/// `""` and `"-"` both name pktd's own namespace.
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

/// A loaded policy: principals in file order.
#[derive(Clone, Debug)]
pub struct Policy {
    principals: Vec<Principal>,
}

/// One principal, its names resolved to ids.
#[derive(Clone, Debug)]
pub(super) struct Principal {
    /// Clients with one of these uids match.
    pub uids: HashSet<u32>,
    /// Clients with one of these gids match.
    pub gids: HashSet<u32>,
    /// Members of `groups` (per the account databases) match by uid.
    pub member_uids: HashSet<u32>,
    pub rules: Rules,
}

impl Principal {
    fn matches(&self, peer: &Peer) -> bool {
        self.uids.contains(&peer.uid)
            || self.gids.contains(&peer.gid)
            || self.member_uids.contains(&peer.uid)
    }
}

impl Policy {
    /// The policy without a file: root may do everything, everyone else
    /// nothing.
    pub fn default_policy() -> Self {
        Self {
            principals: vec![Principal {
                uids: HashSet::from([0]),
                gids: HashSet::new(),
                member_uids: HashSet::new(),
                rules: Rules {
                    principal: "root".to_owned(),
                    netns: vec!["*".to_owned()],
                    interfaces: vec!["*".to_owned()],
                    directions: Directions::BOTH,
                    filter: None,
                    max_snaplen: MAX_SNAPLEN,
                    packet_quota: 0,
                    byte_quota: 0,
                    max_sessions: ROOT_MAX_SESSIONS,
                    ring_bytes: DEFAULT_RING_BYTES,
                    inject: Some(InjectRules {
                        filter: String::new(),
                        rate_pps: ROOT_INJECT_RATE_PPS,
                        rate_bps: ROOT_INJECT_RATE_BPS,
                        spoof: true,
                    }),
                    record_directory: Some(PathBuf::from(ROOT_RECORD_DIRECTORY)),
                    disk_allowance: 0,
                },
            }],
        }
    }

    /// Reads and checks the policy file `path`.
    pub fn from_file(path: &Path) -> Result<Self, PolicyError> {
        let text = fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses and checks policy text; `origin` names it in error messages.
    /// User and group names are resolved against `/etc/passwd` and
    /// `/etc/group`.
    pub fn parse(text: &str, origin: &str) -> Result<Self, PolicyError> {
        let accounts = Accounts::from_system()?;
        Self::parse_with(text, origin, &accounts)
    }

    /// [`Policy::parse`] against given account databases.
    fn parse_with(text: &str, origin: &str, accounts: &Accounts) -> Result<Self, PolicyError> {
        let source = Source { text, origin };
        let raw: RawPolicy = toml::from_str(text).map_err(|error| source.syntax(&error))?;
        let mut names = HashSet::new();
        let principals = raw
            .principal
            .into_iter()
            .map(|principal| source.principal(principal, accounts, &mut names))
            .collect::<Result<_, _>>()?;
        Ok(Self { principals })
    }

    /// The rules for a client, `None` if it may do nothing.
    pub fn rules_for(&self, peer: &Peer) -> Option<&Rules> {
        self.principals
            .iter()
            .find(|principal| principal.matches(peer))
            .map(|principal| &principal.rules)
    }
}

mod accounts;
mod file;
mod grant;
mod store;

#[cfg(test)]
mod tests;
