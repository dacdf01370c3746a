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
//! snap = "headers"               # cut every packet after its transport header, per
//!                                # packet in the kernel, the clients' filters seeing no
//!                                # further (max_snaplen still applies if it cuts
//!                                # earlier); absent: whole packets (docs/privacy.md)
//! packet_quota = 1000000         # packets per session, 0 = unlimited (default)
//! byte_quota = 100000000         # captured bytes per session, 0 = unlimited (default)
//! max_sessions = 4               # concurrent sessions, counted per uid (default 16)
//! max_filter_insns = 512         # classic-BPF instructions of the clients' own filters,
//!                                # summed over a uid's sessions; bounds what its filters
//!                                # cost every packet; 0 = unlimited (default 64; root
//!                                # is never limited)
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
//!                                # where recordings (pktcap --record) go, each user's in
//!                                # its own subdirectory UID/; created if missing; every
//!                                # component must be root's and writable by nobody else
//!                                # (docs/security.md); absent: may not record to disk
//! disk_allowance = 1000000000    # bytes all of the principal's recordings may keep in
//!                                # record_directory together; a recording deletes its
//!                                # own oldest files to stay under it, and ends when that
//!                                # is not enough (default 1 GiB; 0: no limit)
//!
//! [[principal]]
//! name = "students"
//! users = [3000]
//! interfaces = ["eth0"]
//! anonymize = { ip = "prefix-preserving", mac = "hash", payload = "zero",
//!               key_file = "/etc/pktd/students.key" }
//!                                # clients see Crypto-PAn images of addresses, MACs
//!                                # zeroed (default), hashed or kept, payloads zeroed
//!                                # (default) or kept; their filters name the images;
//!                                # the key file is 32 bytes, root's, mode 0600; such a
//!                                # principal may not inject (docs/privacy.md); absent:
//!                                # real packets
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

mod accounts;
mod anonymize;
mod error;
mod file;
mod grant;
mod principals;
mod rules;
mod store;

pub use self::{
    anonymize::Anonymization,
    error::PolicyError,
    grant::{
        Ask, CaptureGrant, Denied, Grant, HeaderView, InjectGrant, InterfacesGrant, RecordingGrant,
        Scope, grant,
    },
    principals::Policy,
    rules::{
        DEFAULT_DISK_ALLOWANCE, DEFAULT_INJECT_RATE_BPS, DEFAULT_INJECT_RATE_PPS,
        DEFAULT_MAX_FILTER_INSNS, DEFAULT_MAX_SESSIONS, DEFAULT_RING_BYTES, Directions,
        InjectRules, MAX_RING_BYTES, MAX_SNAPLEN, MIN_RING_BYTES, Peer, ROOT_RECORD_DIRECTORY,
        Rules,
    },
    store::PolicyStore,
};

#[cfg(test)]
mod tests;
