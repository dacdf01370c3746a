//! Crypto-PAn: prefix-preserving IP address anonymization (Fan, Xu, Ammar,
//! Moon, "Prefix-preserving IP address anonymization", Computer Networks
//! 46(2), 2004), as in the authors' reference implementation for IPv4 and
//! with the usual 128-bit extension for IPv6.
//!
//! Bit `i` of the image is bit `i` of the address XOR the top bit of
//! AES_K(the first `i` bits of the address, followed by the pad's bits from
//! `i` on). Two addresses sharing a `k`-bit prefix therefore share exactly a
//! `k`-bit prefix of their images, and the map is a bijection whose inverse
//! recovers the address bit by bit.

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use aes::Aes128;
use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};

/// Entries kept per address family before the cache is emptied. Clearing
/// rather than evicting keeps the bookkeeping free and the memory bounded
/// whatever the traffic: at most this many entries of 8 or 32 bytes.
pub const CACHE_ENTRIES: usize = 4096;

/// A key of the wrong length was given to [`CryptoPan::from_slice`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a Crypto-PAn key is 32 bytes, not {len}")]
pub struct KeyLengthError {
    /// The length that was given.
    pub len: usize,
}

/// A Crypto-PAn instance: the keyed cipher, its pad, and a small cache per
/// address family.
#[derive(Clone)]
pub struct CryptoPan {
    cipher: Aes128,
    /// AES_K(key[16..32]), as a big-endian 128-bit integer.
    pad: u128,
    cache_v4: HashMap<u32, u32>,
    cache_v6: HashMap<u128, u128>,
}

impl fmt::Debug for CryptoPan {
    // The key and pad are secrets: never print them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CryptoPan")
            .field("cached_v4", &self.cache_v4.len())
            .field("cached_v6", &self.cache_v6.len())
            .finish_non_exhaustive()
    }
}

/// The mask of the first `n` bits of a 128-bit block (`n` <= 128).
fn top_mask(n: u32) -> u128 {
    if n == 0 { 0 } else { !0u128 << (128 - n) }
}

impl CryptoPan {
    /// Keys the cipher with `key[0..16]` and derives the pad from
    /// `key[16..32]`, as the reference implementation does.
    pub fn new(key: &[u8; 32]) -> Self {
        let mut aes_key = [0u8; 16];
        aes_key.copy_from_slice(&key[..16]);
        let cipher = Aes128::new(&Array::from(aes_key));
        let mut pad = [0u8; 16];
        pad.copy_from_slice(&key[16..]);
        let mut pan = CryptoPan {
            cipher,
            pad: 0,
            cache_v4: HashMap::new(),
            cache_v6: HashMap::new(),
        };
        pan.pad = pan.encrypt(u128::from_be_bytes(pad));
        pan
    }

    /// Like [`CryptoPan::new`], for a key read from a file or the wire.
    pub fn from_slice(key: &[u8]) -> Result<Self, KeyLengthError> {
        let key: &[u8; 32] = key
            .try_into()
            .map_err(|_| KeyLengthError { len: key.len() })?;
        Ok(Self::new(key))
    }

    /// The cipher that MAC hashing derives its own key from.
    pub(crate) fn cipher(&self) -> &Aes128 {
        &self.cipher
    }

    fn encrypt(&self, block: u128) -> u128 {
        let mut b = Array::from(block.to_be_bytes());
        self.cipher.encrypt_block(&mut b);
        u128::from_be_bytes(b.into())
    }

    /// The pseudo-random bit that is XORed into bit `i` (from the top) of an
    /// address whose first `i` bits are those of `prefix` (top-aligned).
    fn flip_bit(&self, prefix: u128, i: u32) -> u128 {
        let mask = top_mask(i);
        let block = (prefix & mask) | (self.pad & !mask);
        self.encrypt(block) >> 127
    }

    /// The first `n` bits of the image of a top-aligned address; the other
    /// bits are zero.
    fn image(&self, addr: u128, n: u32) -> u128 {
        let mut otp = 0u128;
        for i in 0..n {
            otp |= self.flip_bit(addr, i) << (127 - i);
        }
        (addr & top_mask(n)) ^ otp
    }

    /// The first `n` bits of the address whose image starts with the first
    /// `n` bits of `anon` (top-aligned); the other bits are zero.
    fn preimage(&self, anon: u128, n: u32) -> u128 {
        let mut real = 0u128;
        for i in 0..n {
            let bit = ((anon >> (127 - i)) & 1) ^ self.flip_bit(real, i);
            real |= bit << (127 - i);
        }
        real
    }

    /// The image of an IPv4 address, through the cache.
    pub fn anonymize_v4(&mut self, addr: u32) -> u32 {
        if let Some(&hit) = self.cache_v4.get(&addr) {
            return hit;
        }
        let image = self.anonymize_v4_uncached(addr);
        if self.cache_v4.len() >= CACHE_ENTRIES {
            self.cache_v4.clear();
        }
        self.cache_v4.insert(addr, image);
        image
    }

    /// The image of an IPv6 address, through the cache.
    pub fn anonymize_v6(&mut self, addr: u128) -> u128 {
        if let Some(&hit) = self.cache_v6.get(&addr) {
            return hit;
        }
        let image = self.anonymize_v6_uncached(addr);
        if self.cache_v6.len() >= CACHE_ENTRIES {
            self.cache_v6.clear();
        }
        self.cache_v6.insert(addr, image);
        image
    }

    /// The image of an IPv4 address, computed without the cache (32 AES
    /// blocks).
    pub fn anonymize_v4_uncached(&self, addr: u32) -> u32 {
        (self.image(u128::from(addr) << 96, 32) >> 96) as u32
    }

    /// The image of an IPv6 address, computed without the cache (128 AES
    /// blocks).
    pub fn anonymize_v6_uncached(&self, addr: u128) -> u128 {
        self.image(addr, 128)
    }

    /// The first `len` bits of the image of `addr`, the rest zero: what a
    /// field cut after `len` bits becomes. `len` above 32 counts as 32.
    pub fn anonymize_prefix_v4(&self, addr: u32, len: u8) -> u32 {
        let n = u32::from(len.min(32));
        (self.image(u128::from(addr) << 96, n) >> 96) as u32
    }

    /// The first `len` bits of the image of `addr`, the rest zero. `len`
    /// above 128 counts as 128.
    pub fn anonymize_prefix_v6(&self, addr: u128, len: u8) -> u128 {
        self.image(addr, u32::from(len.min(128)))
    }

    /// The address whose image is `anon`.
    pub fn deanonymize_v4(&self, anon: u32) -> u32 {
        self.real_prefix_v4(anon, 32)
    }

    /// The address whose image is `anon`.
    pub fn deanonymize_v6(&self, anon: u128) -> u128 {
        self.real_prefix_v6(anon, 128)
    }

    /// The one real prefix of length `len` (bits past `len` zero) whose
    /// addresses all map into the anonymized prefix `anon/len`: how a
    /// client's filter constant `net A/n` is mapped back. `len` above 32
    /// counts as 32.
    pub fn real_prefix_v4(&self, anon: u32, len: u8) -> u32 {
        let n = u32::from(len.min(32));
        (self.preimage(u128::from(anon) << 96, n) >> 96) as u32
    }

    /// The IPv6 counterpart of [`CryptoPan::real_prefix_v4`]. `len` above
    /// 128 counts as 128.
    pub fn real_prefix_v6(&self, anon: u128, len: u8) -> u128 {
        self.preimage(anon, u32::from(len.min(128)))
    }

    /// [`CryptoPan::anonymize_v4`] on a `std::net` address.
    pub fn anonymize_ipv4(&mut self, addr: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(self.anonymize_v4(addr.to_bits()))
    }

    /// [`CryptoPan::anonymize_v6`] on a `std::net` address.
    pub fn anonymize_ipv6(&mut self, addr: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.anonymize_v6(addr.to_bits()))
    }

    /// [`CryptoPan::deanonymize_v4`] on a `std::net` address.
    pub fn deanonymize_ipv4(&self, anon: Ipv4Addr) -> Ipv4Addr {
        Ipv4Addr::from(self.deanonymize_v4(anon.to_bits()))
    }

    /// [`CryptoPan::deanonymize_v6`] on a `std::net` address.
    pub fn deanonymize_ipv6(&self, anon: Ipv6Addr) -> Ipv6Addr {
        Ipv6Addr::from(self.deanonymize_v6(anon.to_bits()))
    }

    /// How many addresses each cache holds now (IPv4, IPv6); for tests and
    /// statistics.
    pub fn cached(&self) -> (usize, usize) {
        (self.cache_v4.len(), self.cache_v6.len())
    }
}
