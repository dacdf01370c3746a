//! The policy file: TOML as written, checked principal by principal, each
//! error naming the file and line.

use std::{collections::HashSet, fmt, ops::Range, path::PathBuf};

use serde::{Deserialize, Deserializer, de};
use toml::Spanned;

use super::{
    accounts::Accounts,
    anonymize::{Anonymization, RawAnonymize},
    error::PolicyError,
    rules::{
        DEFAULT_DISK_ALLOWANCE, DEFAULT_INJECT_RATE_BPS, DEFAULT_INJECT_RATE_PPS,
        DEFAULT_MAX_FILTER_INSNS, DEFAULT_MAX_SESSIONS, DEFAULT_RING_BYTES, Directions,
        InjectRules, MAX_RING_BYTES, MAX_SNAPLEN, MIN_RING_BYTES, Principal, Rules,
    },
};
use crate::netns::Netns;

/// The file as deserialized, spans kept for messages.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPolicy {
    #[serde(default)]
    pub principal: Vec<Spanned<RawPrincipal>>,
}

/// One `[[principal]]` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPrincipal {
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
    snap: Option<Spanned<String>>,
    anonymize: Option<Spanned<RawAnonymize>>,
    #[serde(default)]
    packet_quota: u64,
    #[serde(default)]
    byte_quota: u64,
    max_sessions: Option<u32>,
    max_filter_insns: Option<u32>,
    ring_bytes: Option<Spanned<u32>>,
    inject_filter: Option<Spanned<String>>,
    inject_rate_pps: Option<Spanned<u32>>,
    inject_rate_bps: Option<Spanned<u64>>,
    inject_spoof: Option<Spanned<bool>>,
    record_directory: Option<Spanned<String>>,
    disk_allowance: Option<u64>,
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
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub origin: &'a str,
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

    pub fn syntax(&self, error: &toml::de::Error) -> PolicyError {
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
    pub fn principal(
        &self,
        raw: Spanned<RawPrincipal>,
        accounts: &Accounts,
        names: &mut HashSet<String>,
    ) -> Result<Principal, PolicyError> {
        let table_span = raw.span();
        let mut raw = raw.into_inner();
        let check = Check {
            source: self,
            name: raw.name.get_ref().clone(),
        };
        if check.name.trim().is_empty() {
            return Err(check.invalid(raw.name.span(), "the name is empty"));
        }
        if !names.insert(check.name.clone()) {
            return Err(check.invalid(raw.name.span(), "another principal has this name"));
        }
        if raw.users.is_empty() && raw.groups.is_empty() {
            return Err(check.invalid(
                table_span,
                "a principal needs users or groups (non-empty) to match anyone",
            ));
        }
        if let (Some(anonymize), Some(_)) = (&raw.anonymize, &raw.inject_filter) {
            // Injection works on real addresses: which sources the
            // anti-spoofing check accepts, what the injection filter
            // matches, would tell the client the real addresses its
            // captures hide.
            return Err(check.invalid(
                anonymize.span(),
                "an anonymized principal may not inject (inject_filter): what injection \
                 accepts would reveal the real addresses its captures hide",
            ));
        }
        let (uids, gids, member_uids) = check.accounts(&raw, accounts)?;
        check.places(&raw)?;
        let rules = Rules {
            principal: check.name.clone(),
            directions: check.directions(&raw)?,
            filter: check.filter(&raw)?,
            max_snaplen: check.max_snaplen(&raw)?,
            snap_headers: check.snap(&raw)?,
            anonymize: check.anonymize(raw.anonymize.take())?,
            packet_quota: raw.packet_quota,
            byte_quota: raw.byte_quota,
            max_sessions: raw.max_sessions.unwrap_or(DEFAULT_MAX_SESSIONS),
            max_filter_insns: raw.max_filter_insns.unwrap_or(DEFAULT_MAX_FILTER_INSNS),
            ring_bytes: check.ring_bytes(&raw)?,
            inject: check.inject(&raw)?,
            record_directory: check.record_directory(&raw)?,
            disk_allowance: raw.disk_allowance.unwrap_or(DEFAULT_DISK_ALLOWANCE),
            netns: raw.netns.into_iter().map(Spanned::into_inner).collect(),
            interfaces: raw
                .interfaces
                .into_iter()
                .map(Spanned::into_inner)
                .collect(),
        };
        Ok(Principal {
            uids,
            gids,
            member_uids,
            rules,
        })
    }
}

/// A set of uids or gids.
type Ids = HashSet<u32>;

/// The checks of one principal's keys, each error naming its line.
struct Check<'a> {
    source: &'a Source<'a>,
    name: String,
}

impl Check<'_> {
    fn invalid(&self, span: Range<usize>, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            origin: self.source.origin.to_owned(),
            line: self.source.line(span),
            principal: self.name.clone(),
            message: message.into(),
        }
    }

    /// `users` and `groups`, resolved: (uids, gids, uids of group members).
    fn accounts(
        &self,
        raw: &RawPrincipal,
        accounts: &Accounts,
    ) -> Result<(Ids, Ids, Ids), PolicyError> {
        let mut uids = HashSet::new();
        for user in &raw.users {
            uids.insert(match user.get_ref() {
                Account::Id(uid) => *uid,
                Account::Name(name) => accounts
                    .uid(name)
                    .ok_or_else(|| self.invalid(user.span(), format!("unknown user {name:?}")))?,
            });
        }
        let mut gids = HashSet::new();
        let mut member_uids = HashSet::new();
        for group in &raw.groups {
            let gid = match group.get_ref() {
                Account::Id(gid) => *gid,
                Account::Name(name) => accounts
                    .gid(name)
                    .ok_or_else(|| self.invalid(group.span(), format!("unknown group {name:?}")))?,
            };
            gids.insert(gid);
            member_uids.extend(accounts.members(gid));
        }
        Ok((uids, gids, member_uids))
    }

    /// `netns` and `interfaces`: names pktd accepts, or wildcards.
    fn places(&self, raw: &RawPrincipal) -> Result<(), PolicyError> {
        for netns in &raw.netns {
            let value = netns.get_ref();
            match value.strip_suffix('*') {
                // "*", or a prefix of ip-netns names or container IDs.
                Some(prefix) => check_netns_prefix(prefix)
                    .map_err(|message| self.invalid(netns.span(), message))?,
                None => drop(
                    Netns::parse(value)
                        .map_err(|error| self.invalid(netns.span(), error.to_string()))?,
                ),
            }
        }
        for interface in &raw.interfaces {
            check_interface(interface.get_ref())
                .map_err(|message| self.invalid(interface.span(), message))?;
        }
        Ok(())
    }

    fn directions(&self, raw: &RawPrincipal) -> Result<Directions, PolicyError> {
        let Some(list) = &raw.directions else {
            return Ok(Directions::BOTH);
        };
        let mut directions = Directions {
            inbound: false,
            outbound: false,
        };
        for direction in list {
            match direction.get_ref().as_str() {
                "in" => directions.inbound = true,
                "out" => directions.outbound = true,
                other => {
                    return Err(self.invalid(
                        direction.span(),
                        format!("unknown direction {other:?} (\"in\" or \"out\")"),
                    ));
                }
            }
        }
        Ok(directions)
    }

    /// `filter`. A blank expression would compile to "accept everything";
    /// say so plainly by having no filter.
    fn filter(&self, raw: &RawPrincipal) -> Result<Option<String>, PolicyError> {
        match &raw.filter {
            Some(filter) if !filter.get_ref().trim().is_empty() => {
                self.compiles(filter)?;
                Ok(Some(filter.get_ref().clone()))
            }
            _ => Ok(None),
        }
    }

    fn compiles(&self, expression: &Spanned<String>) -> Result<(), PolicyError> {
        pktd_filter::compile(expression.get_ref(), true, MAX_SNAPLEN)
            .map(drop)
            .map_err(|error| self.invalid(expression.span(), error.to_string()))
    }

    fn max_snaplen(&self, raw: &RawPrincipal) -> Result<u32, PolicyError> {
        self.within(
            &raw.max_snaplen,
            "max_snaplen",
            1..=MAX_SNAPLEN,
            MAX_SNAPLEN,
        )
    }

    /// `snap = "headers"`, the one value there is: whole packets are what
    /// a principal without `snap` gets.
    fn snap(&self, raw: &RawPrincipal) -> Result<bool, PolicyError> {
        match &raw.snap {
            None => Ok(false),
            Some(snap) if snap.get_ref() == "headers" => Ok(true),
            Some(snap) => Err(self.invalid(
                snap.span(),
                format!(
                    "snap = {:?}: the one value is \"headers\" (cut every packet after its \
                     transport header); leave snap out for whole packets",
                    snap.get_ref()
                ),
            )),
        }
    }

    /// The `anonymize` table, its key read.
    fn anonymize(
        &self,
        raw: Option<Spanned<RawAnonymize>>,
    ) -> Result<Option<Anonymization>, PolicyError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let span = raw.span();
        raw.into_inner()
            .check(span)
            .map(Some)
            .map_err(|(span, message)| self.invalid(span, message))
    }

    fn ring_bytes(&self, raw: &RawPrincipal) -> Result<u32, PolicyError> {
        self.within(
            &raw.ring_bytes,
            "ring_bytes",
            MIN_RING_BYTES..=MAX_RING_BYTES,
            DEFAULT_RING_BYTES,
        )
    }

    /// A number key's value, `default` when absent, refused outside `range`.
    fn within(
        &self,
        value: &Option<Spanned<u32>>,
        key: &str,
        range: std::ops::RangeInclusive<u32>,
        default: u32,
    ) -> Result<u32, PolicyError> {
        let Some(value) = value else {
            return Ok(default);
        };
        let number = *value.get_ref();
        if !range.contains(&number) {
            return Err(self.invalid(
                value.span(),
                format!(
                    "{key} {number} is not within {}..={}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        Ok(number)
    }

    /// `inject_*`: what the principal may inject, if anything.
    fn inject(&self, raw: &RawPrincipal) -> Result<Option<InjectRules>, PolicyError> {
        let Some(filter) = &raw.inject_filter else {
            // A rate or spoof setting without a filter grants nothing: most
            // likely the filter was forgotten, so say so.
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
            return match stray.into_iter().find(|(_, span)| span.is_some()) {
                Some((key, Some(span))) => Err(self.invalid(
                    span,
                    format!("{key} without inject_filter: this principal may not inject"),
                )),
                _ => Ok(None),
            };
        };
        if !filter.get_ref().trim().is_empty() {
            self.compiles(filter)?;
        }
        let rate_pps = self.rate(&raw.inject_rate_pps, "inject_rate_pps")?;
        let rate_bps = self.rate(&raw.inject_rate_bps, "inject_rate_bps")?;
        Ok(Some(InjectRules {
            filter: filter.get_ref().clone(),
            rate_pps: rate_pps.map_or(DEFAULT_INJECT_RATE_PPS, |rate| rate as u32),
            rate_bps: rate_bps.unwrap_or(DEFAULT_INJECT_RATE_BPS),
            spoof: raw
                .inject_spoof
                .as_ref()
                .is_some_and(|spoof| *spoof.get_ref()),
        }))
    }

    /// An injection rate: at least 1 when given.
    fn rate<T: Copy + Into<u64>>(
        &self,
        rate: &Option<Spanned<T>>,
        key: &str,
    ) -> Result<Option<u64>, PolicyError> {
        match rate {
            None => Ok(None),
            Some(rate) if (*rate.get_ref()).into() == 0 => Err(self.invalid(
                rate.span(),
                format!("{key} 0 is not at least 1 (to forbid injection, leave out inject_filter)"),
            )),
            Some(rate) => Ok(Some((*rate.get_ref()).into())),
        }
    }

    fn record_directory(&self, raw: &RawPrincipal) -> Result<Option<PathBuf>, PolicyError> {
        let Some(directory) = &raw.record_directory else {
            return Ok(None);
        };
        let path = PathBuf::from(directory.get_ref());
        if !path.is_absolute() || directory.get_ref().contains("/../") {
            return Err(self.invalid(
                directory.span(),
                format!(
                    "record_directory {:?} is not an absolute path",
                    directory.get_ref()
                ),
            ));
        }
        Ok(Some(path))
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

/// A `netns` pattern's prefix (before its `*`): empty, `container:` and
/// hex digits, `pod:` and the start of a pod's `NAMESPACE/NAME`, or the
/// start of an ip-netns name. Process paths have no patterns: a pid names
/// nothing stable.
fn check_netns_prefix(prefix: &str) -> Result<(), String> {
    let hex = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let pod = |text: &str| {
        text.len() < 63 + 1 + 253
            && text.bytes().filter(|b| *b == b'/').count() <= 1
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-./".contains(&b))
    };
    let ok = match (
        prefix.strip_prefix("container:"),
        prefix.strip_prefix("pod:"),
    ) {
        (Some(digits), _) => digits.len() < 64 && hex(digits),
        (_, Some(start)) => pod(start),
        _ => {
            prefix.len() < 255
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "netns pattern {prefix:?}*: a pattern is \"*\", \"container:\" and hex digits then \"*\", \
             \"pod:\" and the start of a pod's NAMESPACE/NAME then \"*\", or the start of an ip \
             netns name then \"*\""
        ))
    }
}
