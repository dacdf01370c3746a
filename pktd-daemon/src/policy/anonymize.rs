//! A principal's `anonymize` table: what its clients see of addresses,
//! MAC addresses and payloads, and the key that maps addresses.
//!
//! ```toml
//! anonymize = { ip = "prefix-preserving", mac = "hash", payload = "zero",
//!               key_file = "/etc/pktd/researchers.key" }
//! ```
//!
//! The key file holds 32 random bytes (`head -c 32 /dev/urandom`), owned
//! by root and readable by nobody else; it is read when the policy is
//! loaded. One key gives a principal one mapping across its sessions and
//! recordings; a new key (a reload) is a new mapping, and the sessions
//! under the old one end (see `docs/privacy.md`).

use std::{
    fmt,
    path::{Path, PathBuf},
};

use pktd_anon::{Anonymizer, CryptoPan, MacMode, PayloadMode};
use serde::Deserialize;
use toml::Spanned;

/// The table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAnonymize {
    ip: Option<Spanned<String>>,
    mac: Option<Spanned<String>>,
    payload: Option<Spanned<String>>,
    key_file: Option<Spanned<String>>,
}

/// What an anonymized principal's clients see.
#[derive(Clone, PartialEq, Eq)]
pub struct Anonymization {
    /// MAC addresses: kept, zeroed, or replaced by keyed pseudonyms.
    pub mac: MacMode,
    /// Bytes past the headers: kept or zeroed.
    pub payload: PayloadMode,
    /// Where the key came from, for logs and errors.
    pub key_file: PathBuf,
    key: [u8; 32],
}

impl fmt::Debug for Anonymization {
    /// Never the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anonymization")
            .field("mac", &self.mac)
            .field("payload", &self.payload)
            .field("key_file", &self.key_file)
            .finish_non_exhaustive()
    }
}

impl Anonymization {
    /// A rewriter of one session's records (its own address cache).
    pub fn anonymizer(&self) -> Anonymizer {
        Anonymizer::new(CryptoPan::new(&self.key), self.mac, self.payload)
    }

    /// The key's mapping, for the filters' constants
    /// (`pktd_filter::AddressMap`).
    pub fn addresses(&self) -> CryptoPan {
        CryptoPan::new(&self.key)
    }
}

/// A problem with the table, and the span it is about.
pub(super) type Problem = (std::ops::Range<usize>, String);

impl RawAnonymize {
    /// Checks the table (spanning `whole`) and reads its key.
    pub fn check(self, whole: std::ops::Range<usize>) -> Result<Anonymization, Problem> {
        if let Some(ip) = &self.ip
            && ip.get_ref() != "prefix-preserving"
        {
            return Err((
                ip.span(),
                format!(
                    "ip = {:?}: the one value is \"prefix-preserving\" (Crypto-PAn)",
                    ip.get_ref()
                ),
            ));
        }
        let mac = match self
            .mac
            .as_ref()
            .map(|mac| (mac.get_ref().as_str(), mac.span()))
        {
            None | Some(("zero", _)) => MacMode::Zero,
            Some(("hash", _)) => MacMode::Hash,
            Some(("keep", _)) => MacMode::Keep,
            Some((other, span)) => {
                return Err((
                    span,
                    format!("mac = {other:?}: one of \"zero\", \"hash\", \"keep\""),
                ));
            }
        };
        let payload = match self
            .payload
            .as_ref()
            .map(|payload| (payload.get_ref().as_str(), payload.span()))
        {
            None | Some(("zero", _)) => PayloadMode::Zero,
            Some(("keep", _)) => PayloadMode::Keep,
            Some((other, span)) => {
                return Err((
                    span,
                    format!("payload = {other:?}: one of \"zero\", \"keep\""),
                ));
            }
        };
        let Some(key_file) = self.key_file else {
            return Err((
                whole,
                "anonymize needs key_file: a file of 32 random bytes, root's and readable by \
                 nobody else (head -c 32 /dev/urandom > FILE; chmod 600 FILE)"
                    .to_owned(),
            ));
        };
        let path = PathBuf::from(key_file.get_ref());
        let key = read_key(&path).map_err(|why| {
            (
                key_file.span(),
                format!("key_file {}: {why}", path.display()),
            )
        })?;
        Ok(Anonymization {
            mac,
            payload,
            key_file: path,
            key,
        })
    }
}

/// The 32 bytes of a key file: a private file of pktd's
/// ([`crate::paths::read_private_file`]) of exactly that length.
fn read_key(path: &Path) -> Result<[u8; 32], String> {
    // Read past 32 bytes, to say how long a wrong one is.
    let bytes = crate::paths::read_private_file(path, 4096)?;
    bytes
        .try_into()
        .map_err(|bytes: Vec<u8>| format!("{} bytes, not 32", bytes.len()))
}
