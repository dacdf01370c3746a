//! What happens to MAC addresses.

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};

use crate::checksum::replace;
use crate::cryptopan::CryptoPan;

/// How MAC addresses (Ethernet source and destination, ARP sender and
/// target hardware addresses, IPv6 neighbor discovery link-layer address
/// options) are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MacMode {
    /// Left as they are: vendors (OUIs) and hosts stay visible.
    #[default]
    Keep,
    /// All six bytes zero: nothing about the stations is left.
    Zero,
    /// Group addresses (broadcast, multicast) and the all-zero address
    /// kept; each other unicast address
    /// replaced by a keyed pseudo-random, locally administered unicast one,
    /// the same for the same address and key, so conversations can still
    /// be told apart but vendors and hosts cannot be recognised.
    Hash,
}

/// The domain-separation constant: the MAC hashing key is the encryption
/// of this block under the Crypto-PAn key, so no MAC block is ever
/// encrypted under the key Crypto-PAn uses.
const MAC_DOMAIN: [u8; 16] = *b"pktd-anon mac v1";

/// MAC address rewriting under one key.
#[derive(Clone)]
pub(crate) struct MacHasher {
    mode: MacMode,
    cipher: Aes128,
}

impl std::fmt::Debug for MacHasher {
    // The derived key is a secret: print only the mode.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacHasher")
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl MacHasher {
    pub(crate) fn new(mode: MacMode, pan: &CryptoPan) -> Self {
        let mut key = Array::from(MAC_DOMAIN);
        pan.cipher().encrypt_block(&mut key);
        MacHasher {
            mode,
            cipher: Aes128::new(&key),
        }
    }

    pub(crate) fn mode(&self) -> MacMode {
        self.mode
    }

    /// The image of a whole MAC address.
    pub(crate) fn map(&self, mac: [u8; 6]) -> [u8; 6] {
        match self.mode {
            MacMode::Keep => mac,
            MacMode::Zero => [0; 6],
            // Group addresses name no station, and the all-zero address
            // of an ARP request's unknown target names none either.
            MacMode::Hash if mac[0] & 0x01 != 0 || mac == [0; 6] => mac,
            MacMode::Hash => {
                let mut block = Array::from([0u8; 16]);
                block[10..].copy_from_slice(&mac);
                self.cipher.encrypt_block(&mut block);
                let mut out = [0u8; 6];
                out.copy_from_slice(&block[..6]);
                out[0] = (out[0] | 0x02) & !0x01;
                out
            }
        }
    }

    /// Rewrites the MAC address at `data[at..at + 6]`, as much of it as was
    /// captured. A cut unicast
    /// address cannot be hashed: its captured bytes become a locally
    /// administered all-zero address.
    pub(crate) fn rewrite(&self, data: &mut [u8], at: usize) {
        if at >= data.len() || self.mode == MacMode::Keep {
            return;
        }
        let n = (data.len() - at).min(6);
        let mut mac = [0u8; 6];
        mac[..n].copy_from_slice(&data[at..at + n]);
        let new = if n == 6 {
            self.map(mac)
        } else if self.mode == MacMode::Hash && mac[0] & 0x01 != 0 {
            mac
        } else if self.mode == MacMode::Hash {
            [0x02, 0, 0, 0, 0, 0]
        } else {
            [0; 6]
        };
        replace(data, at, &new[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_keeps_group_addresses_and_makes_unicast_local() {
        let pan = CryptoPan::new(&[7; 32]);
        let h = MacHasher::new(MacMode::Hash, &pan);
        let bcast = [0xff; 6];
        assert_eq!(h.map(bcast), bcast);
        let mcast = [0x01, 0x00, 0x5e, 0, 0, 1];
        assert_eq!(h.map(mcast), mcast);
        assert_eq!(h.map([0; 6]), [0; 6]);
        let uni = [0x00, 0x1b, 0x21, 0x3a, 0x4b, 0x5c];
        let img = h.map(uni);
        assert_ne!(img, uni);
        assert_eq!(img[0] & 0x03, 0x02);
        assert_eq!(h.map(uni), img);
        let other = MacHasher::new(MacMode::Hash, &CryptoPan::new(&[8; 32]));
        assert_ne!(other.map(uni), img);
    }
}
