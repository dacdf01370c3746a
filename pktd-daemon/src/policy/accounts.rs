//! `/etc/passwd` and `/etc/group`, read directly (not through NSS) once per
//! policy load, to resolve principals' user and group names.

use std::{collections::HashSet, fs, path::PathBuf};

use super::error::PolicyError;

/// Where the account databases are read from.
const PASSWD: &str = "/etc/passwd";
const GROUP: &str = "/etc/group";

/// The parts of `/etc/passwd` and `/etc/group` the policy needs.
#[derive(Debug, Default)]
pub(super) struct Accounts {
    /// (name, uid, primary gid), in file order.
    pub users: Vec<(String, u32, u32)>,
    /// (name, gid, member names), in file order.
    pub groups: Vec<(String, u32, Vec<String>)>,
}

impl Accounts {
    pub fn from_system() -> Result<Self, PolicyError> {
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
    pub fn parse(passwd: &str, group: &str) -> Self {
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
    pub fn uid(&self, name: &str) -> Option<u32> {
        self.users
            .iter()
            .find(|(user, ..)| user == name)
            .map(|&(_, uid, _)| uid)
    }

    /// The gid of group `name` (the first entry wins, as with getgrnam).
    pub fn gid(&self, name: &str) -> Option<u32> {
        self.groups
            .iter()
            .find(|(group, ..)| group == name)
            .map(|&(_, gid, _)| gid)
    }

    /// The uids of group `gid`'s members: users listed in its `/etc/group`
    /// entries and users whose primary group it is.
    pub fn members(&self, gid: u32) -> HashSet<u32> {
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
