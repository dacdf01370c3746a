//! A loaded policy: its principals in file order, the first matching a
//! client giving its rules.

use std::{
    collections::HashSet,
    fs,
    path::{Path, PathBuf},
};

use super::{
    accounts::Accounts,
    error::PolicyError,
    file::{RawPolicy, Source},
    rules::{
        DEFAULT_RING_BYTES, Directions, InjectRules, MAX_SNAPLEN, Peer, Principal,
        ROOT_INJECT_RATE_BPS, ROOT_INJECT_RATE_PPS, ROOT_MAX_SESSIONS, ROOT_RECORD_DIRECTORY,
        Rules,
    },
};

/// A loaded policy: principals in file order.
#[derive(Clone, Debug)]
pub struct Policy {
    principals: Vec<Principal>,
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
                    snap_headers: false,
                    anonymize: None,
                    packet_quota: 0,
                    byte_quota: 0,
                    max_sessions: ROOT_MAX_SESSIONS,
                    max_filter_insns: 0,
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
    pub(super) fn parse_with(
        text: &str,
        origin: &str,
        accounts: &Accounts,
    ) -> Result<Self, PolicyError> {
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
