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
    fmt, fs, io,
    ops::Range,
    path::{Path, PathBuf},
};

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use crate::netns::Netns;

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

/// Where the account databases are read from.
const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

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
struct Principal {
    /// Clients with one of these uids match.
    uids: HashSet<u32>,
    /// Clients with one of these gids match.
    gids: HashSet<u32>,
    /// Members of `groups` (per the account databases) match by uid.
    member_uids: HashSet<u32>,
    rules: Rules,
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

/// The file as deserialized, spans kept for messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    principal: Vec<Spanned<RawPrincipal>>,
}

/// One `[[principal]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrincipal {
    name: Spanned<String>,
    #[serde(default)]
    users: Vec<Spanned<Account>>,
    #[serde(default)]
    groups: Vec<Spanned<Account>>,
    #[serde(default)]
    netns: Vec<Spanned<String>>,
    #[serde(default)]
    interfaces: Vec<Spanned<String>>,
    directions: Option<Vec<Spanned<String>>>,
    filter: Option<Spanned<String>>,
    max_snaplen: Option<Spanned<u32>>,
    #[serde(default)]
    packet_quota: u64,
    #[serde(default)]
    byte_quota: u64,
    max_sessions: Option<u32>,
    ring_bytes: Option<Spanned<u32>>,
    inject_filter: Option<Spanned<String>>,
    inject_rate_pps: Option<Spanned<u32>>,
    inject_rate_bps: Option<Spanned<u64>>,
    inject_spoof: Option<Spanned<bool>>,
    record_directory: Option<Spanned<String>>,
    #[serde(default)]
    disk_allowance: u64,
}

/// A user or group as written: a name or a number.
enum Account {
    Name(String),
    Id(u32),
}

impl<'de> Deserialize<'de> for Account {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = Account;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a name or a number from 0 to 4294967295")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Account, E> {
                Ok(Account::Name(name.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, id: i64) -> Result<Account, E> {
                u32::try_from(id)
                    .map(Account::Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Signed(id), &self))
            }

            fn visit_u64<E: de::Error>(self, id: u64) -> Result<Account, E> {
                u32::try_from(id)
                    .map(Account::Id)
                    .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(id), &self))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// The policy text and its name, for turning spans into messages.
struct Source<'a> {
    text: &'a str,
    origin: &'a str,
}

impl Source<'_> {
    /// 1-based line and column (in characters) of byte `offset`.
    fn position(&self, offset: usize) -> (usize, usize) {
        // toml's spans are on char boundaries, but clamp so that a stray
        // offset cannot panic while reporting another error.
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        (
            before.matches('\n').count() + 1,
            before[line_start..].chars().count() + 1,
        )
    }

    fn line(&self, span: Range<usize>) -> usize {
        self.position(span.start).0
    }

    fn syntax(&self, error: &toml::de::Error) -> PolicyError {
        let (line, column) = error
            .span()
            .map_or((1, 1), |span| self.position(span.start));
        PolicyError::Syntax {
            origin: self.origin.to_owned(),
            line,
            column,
            // Some messages carry a second line of hints; keep one line.
            message: error.message().trim().replace('\n', "; "),
        }
    }

    /// Checks one principal and resolves its names.
    fn principal(
        &self,
        raw: Spanned<RawPrincipal>,
        accounts: &Accounts,
        names: &mut HashSet<String>,
    ) -> Result<Principal, PolicyError> {
        let table_span = raw.span();
        let raw = raw.into_inner();
        let name = raw.name.get_ref().clone();
        let invalid = |span: Range<usize>, message: String| PolicyError::Invalid {
            origin: self.origin.to_owned(),
            line: self.line(span),
            principal: name.clone(),
            message,
        };

        if name.trim().is_empty() {
            return Err(invalid(raw.name.span(), "the name is empty".to_owned()));
        }
        if !names.insert(name.clone()) {
            return Err(invalid(
                raw.name.span(),
                "another principal has this name".to_owned(),
            ));
        }
        if raw.users.is_empty() && raw.groups.is_empty() {
            return Err(invalid(
                table_span,
                "a principal needs users or groups (non-empty) to match anyone".to_owned(),
            ));
        }

        let mut uids = HashSet::new();
        for user in &raw.users {
            let uid = match user.get_ref() {
                Account::Id(uid) => *uid,
                Account::Name(user_name) => accounts
                    .uid(user_name)
                    .ok_or_else(|| invalid(user.span(), format!("unknown user {user_name:?}")))?,
            };
            uids.insert(uid);
        }

        let mut gids = HashSet::new();
        let mut member_uids = HashSet::new();
        for group in &raw.groups {
            let gid = match group.get_ref() {
                Account::Id(gid) => *gid,
                Account::Name(group_name) => accounts.gid(group_name).ok_or_else(|| {
                    invalid(group.span(), format!("unknown group {group_name:?}"))
                })?,
            };
            gids.insert(gid);
            member_uids.extend(accounts.members(gid));
        }

        for netns in &raw.netns {
            let value = netns.get_ref();
            if value != "*" {
                Netns::parse(value).map_err(|error| invalid(netns.span(), error.to_string()))?;
            }
        }

        for interface in &raw.interfaces {
            check_interface(interface.get_ref())
                .map_err(|message| invalid(interface.span(), message))?;
        }

        let directions = match &raw.directions {
            None => Directions::BOTH,
            Some(list) => {
                let mut directions = Directions {
                    inbound: false,
                    outbound: false,
                };
                for direction in list {
                    match direction.get_ref().as_str() {
                        "in" => directions.inbound = true,
                        "out" => directions.outbound = true,
                        other => {
                            return Err(invalid(
                                direction.span(),
                                format!("unknown direction {other:?} (\"in\" or \"out\")"),
                            ));
                        }
                    }
                }
                directions
            }
        };

        // A blank expression would compile to "accept everything"; say so
        // plainly by having no filter.
        let filter = match &raw.filter {
            Some(filter) if !filter.get_ref().trim().is_empty() => {
                pktd_filter::compile(filter.get_ref(), true, MAX_SNAPLEN)
                    .map_err(|error| invalid(filter.span(), error.to_string()))?;
                Some(filter.get_ref().clone())
            }
            _ => None,
        };

        let max_snaplen = match &raw.max_snaplen {
            None => MAX_SNAPLEN,
            Some(snaplen) => {
                let value = *snaplen.get_ref();
                if !(1..=MAX_SNAPLEN).contains(&value) {
                    return Err(invalid(
                        snaplen.span(),
                        format!("max_snaplen {value} is not within 1..={MAX_SNAPLEN}"),
                    ));
                }
                value
            }
        };

        let ring_bytes = match &raw.ring_bytes {
            None => DEFAULT_RING_BYTES,
            Some(ring) => {
                let value = *ring.get_ref();
                if !(MIN_RING_BYTES..=MAX_RING_BYTES).contains(&value) {
                    return Err(invalid(
                        ring.span(),
                        format!(
                            "ring_bytes {value} is not within {MIN_RING_BYTES}..={MAX_RING_BYTES}"
                        ),
                    ));
                }
                value
            }
        };

        let inject = match &raw.inject_filter {
            None => {
                // A rate or spoof setting without a filter grants nothing:
                // most likely the filter was forgotten, so say so.
                let stray = [
                    (
                        "inject_rate_pps",
                        raw.inject_rate_pps.as_ref().map(Spanned::span),
                    ),
                    (
                        "inject_rate_bps",
                        raw.inject_rate_bps.as_ref().map(Spanned::span),
                    ),
                    ("inject_spoof", raw.inject_spoof.as_ref().map(Spanned::span)),
                ];
                if let Some((key, Some(span))) = stray.into_iter().find(|(_, span)| span.is_some())
                {
                    return Err(invalid(
                        span,
                        format!("{key} without inject_filter: this principal may not inject"),
                    ));
                }
                None
            }
            Some(filter) => {
                if !filter.get_ref().trim().is_empty() {
                    pktd_filter::compile(filter.get_ref(), true, MAX_SNAPLEN)
                        .map_err(|error| invalid(filter.span(), error.to_string()))?;
                }
                let rate_pps = match &raw.inject_rate_pps {
                    None => DEFAULT_INJECT_RATE_PPS,
                    Some(rate) if *rate.get_ref() == 0 => {
                        return Err(invalid(
                            rate.span(),
                            "inject_rate_pps 0 is not at least 1 (to forbid injection, \
                             leave out inject_filter)"
                                .to_owned(),
                        ));
                    }
                    Some(rate) => *rate.get_ref(),
                };
                let rate_bps = match &raw.inject_rate_bps {
                    None => DEFAULT_INJECT_RATE_BPS,
                    Some(rate) if *rate.get_ref() == 0 => {
                        return Err(invalid(
                            rate.span(),
                            "inject_rate_bps 0 is not at least 1 (to forbid injection, \
                             leave out inject_filter)"
                                .to_owned(),
                        ));
                    }
                    Some(rate) => *rate.get_ref(),
                };
                Some(InjectRules {
                    filter: filter.get_ref().clone(),
                    rate_pps,
                    rate_bps,
                    spoof: raw
                        .inject_spoof
                        .as_ref()
                        .is_some_and(|spoof| *spoof.get_ref()),
                })
            }
        };

        let record_directory = match &raw.record_directory {
            None => None,
            Some(directory) => {
                let path = PathBuf::from(directory.get_ref());
                if !path.is_absolute() || directory.get_ref().contains("/../") {
                    return Err(invalid(
                        directory.span(),
                        format!(
                            "record_directory {:?} is not an absolute path",
                            directory.get_ref()
                        ),
                    ));
                }
                Some(path)
            }
        };
        Ok(Principal {
            uids,
            gids,
            member_uids,
            rules: Rules {
                principal: name.clone(),
                netns: raw.netns.into_iter().map(Spanned::into_inner).collect(),
                interfaces: raw
                    .interfaces
                    .into_iter()
                    .map(Spanned::into_inner)
                    .collect(),
                directions,
                filter,
                max_snaplen,
                packet_quota: raw.packet_quota,
                byte_quota: raw.byte_quota,
                max_sessions: raw.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
                ring_bytes,
                inject,
                record_directory,
                disk_allowance: raw.disk_allowance,
            },
        })
    }
}

/// Checks an interface pattern: `*`, a name, or a name prefix and `*`, where
/// names follow the kernel's rules (`dev_valid_name`), so that a typo that
/// could never match is caught at load time.
fn check_interface(pattern: &str) -> Result<(), String> {
    if pattern == "*" {
        return Ok(());
    }
    let name = pattern.strip_suffix('*').unwrap_or(pattern);
    if name.contains('*') {
        return Err(format!(
            "interface {pattern:?}: only a trailing * is a wildcard"
        ));
    }
    // IFNAMSIZ is 16 including the terminating NUL.
    if name.is_empty() || name.len() > 15 {
        return Err(format!(
            "interface {pattern:?}: a name is 1 to 15 bytes long"
        ));
    }
    if name == "."
        || name == ".."
        || name.contains(['/', ':'])
        || name.contains(char::is_whitespace)
    {
        return Err(format!(
            "interface {pattern:?}: a name is not . or .. and has no /, : or white space"
        ));
    }
    Ok(())
}

/// The parts of `/etc/passwd` and `/etc/group` the policy needs.
#[derive(Debug, Default)]
struct Accounts {
    /// (name, uid, primary gid), in file order.
    users: Vec<(String, u32, u32)>,
    /// (name, gid, member names), in file order.
    groups: Vec<(String, u32, Vec<String>)>,
}

impl Accounts {
    fn from_system() -> Result<Self, PolicyError> {
        let read = |path: &str| {
            fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: PathBuf::from(path),
                source,
            })
        };
        Ok(Self::parse(&read(PASSWD)?, &read(GROUP)?))
    }

    /// Parses the two files' text. Lines that are not well-formed entries
    /// (comments, NIS `+`/`-` lines, garbage) are skipped, as the C library
    /// skips them.
    fn parse(passwd: &str, group: &str) -> Self {
        fn entries(text: &str) -> Vec<Vec<&str>> {
            text.lines()
                .filter(|line| !line.starts_with(['#', '+', '-']))
                .map(|line| line.split(':').collect())
                .collect()
        }
        let users = entries(passwd)
            .into_iter()
            .filter_map(|fields| match fields[..] {
                [name, _, uid, gid, ..] if !name.is_empty() => {
                    Some((name.to_owned(), uid.parse().ok()?, gid.parse().ok()?))
                }
                _ => None,
            })
            .collect();
        let groups = entries(group)
            .into_iter()
            .filter_map(|fields| match fields[..] {
                [name, _, gid, members, ..] if !name.is_empty() => Some((
                    name.to_owned(),
                    gid.parse().ok()?,
                    members
                        .split(',')
                        .map(str::trim)
                        .filter(|member| !member.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )),
                _ => None,
            })
            .collect();
        Self { users, groups }
    }

    /// The uid of user `name` (the first entry wins, as with getpwnam).
    fn uid(&self, name: &str) -> Option<u32> {
        self.users
            .iter()
            .find(|(user, ..)| user == name)
            .map(|&(_, uid, _)| uid)
    }

    /// The gid of group `name` (the first entry wins, as with getgrnam).
    fn gid(&self, name: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(group, ..)| group == name)
            .map(|&(_, gid, _)| gid)
    }

    /// The uids of group `gid`'s members: users listed in its `/etc/group`
    /// entries and users whose primary group it is.
    fn members(&self, gid: u32) -> HashSet<u32> {
        let listed = self
            .groups
            .iter()
            .filter(|(_, group_gid, _)| *group_gid == gid)
            .flat_map(|(.., members)| members)
            .filter_map(|member| self.uid(member));
        let primary = self
            .users
            .iter()
            .filter(|&&(_, _, user_gid)| user_gid == gid)
            .map(|&(_, uid, _)| uid);
        listed.chain(primary).collect()
    }
}

#[cfg(test)]
mod tests;
