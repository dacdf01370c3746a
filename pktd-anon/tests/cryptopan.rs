//! Crypto-PAn: known answers from the reference implementation's sample
//! trace, and the properties the daemon relies on.

use std::net::{Ipv4Addr, Ipv6Addr};

use pktd_anon::{CACHE_ENTRIES, CryptoPan, KeyLengthError};
use proptest::prelude::*;

/// The sample key of the reference distribution (sample.cpp).
const KEY: [u8; 32] = [
    21, 34, 23, 141, 51, 164, 207, 128, 19, 10, 91, 22, 73, 144, 125, 16, 216, 152, 143, 131, 121,
    121, 101, 39, 98, 87, 76, 45, 42, 132, 34, 2,
];

/// sample_trace_raw.txt and sample_trace_sanitized.txt, address by address.
const V4: &[(&str, &str)] = &[
    ("128.11.68.132", "135.242.180.132"),
    ("129.118.74.4", "134.136.186.123"),
    ("130.132.252.244", "133.68.164.234"),
    ("141.223.7.43", "141.167.8.160"),
    ("141.233.145.108", "141.129.237.235"),
    ("152.163.225.39", "151.140.114.167"),
    ("156.29.3.236", "147.225.12.42"),
    ("165.247.96.84", "162.9.99.234"),
    ("166.107.77.190", "160.132.178.185"),
    ("192.102.249.13", "252.138.62.131"),
    ("192.215.32.125", "252.43.47.189"),
    ("192.233.80.103", "252.25.108.8"),
    ("192.41.57.43", "252.222.221.184"),
    ("193.150.244.223", "253.169.52.216"),
    ("195.205.63.100", "255.186.223.5"),
    ("198.200.171.101", "249.199.68.213"),
    ("198.26.132.101", "249.36.123.202"),
    ("198.36.213.5", "249.7.21.132"),
    ("198.51.77.238", "249.18.186.254"),
    ("199.217.79.101", "248.38.184.213"),
    ("202.49.198.20", "245.206.7.234"),
    ("203.12.160.252", "244.248.163.4"),
    ("204.184.162.189", "243.192.77.90"),
    ("204.202.136.230", "243.178.4.198"),
    ("204.29.20.4", "243.33.20.123"),
    ("205.178.38.67", "242.108.198.51"),
    ("205.188.147.153", "242.96.16.101"),
    ("205.188.248.25", "242.96.88.27"),
    ("205.245.121.43", "242.21.121.163"),
    ("207.105.49.5", "241.118.205.138"),
    ("207.135.65.238", "241.202.129.222"),
    ("207.155.9.214", "241.220.250.22"),
    ("207.188.7.45", "241.255.249.220"),
    ("207.25.71.27", "241.33.119.156"),
    ("207.33.151.131", "241.1.233.131"),
    ("208.147.89.59", "227.237.98.191"),
    ("208.234.120.210", "227.154.67.17"),
    ("208.28.185.184", "227.39.94.90"),
    ("208.52.56.122", "227.8.63.165"),
    ("209.12.231.7", "226.243.167.8"),
    ("209.238.72.3", "226.6.119.243"),
    ("209.246.74.109", "226.22.124.76"),
    ("209.68.60.238", "226.184.220.233"),
    ("209.85.249.6", "226.170.70.6"),
    ("212.120.124.31", "228.135.163.231"),
    ("212.146.8.236", "228.19.4.234"),
    ("212.186.227.154", "228.59.98.98"),
    ("212.204.172.118", "228.71.195.169"),
    ("212.206.130.201", "228.69.242.193"),
    ("216.148.237.145", "235.84.194.111"),
    ("216.157.30.252", "235.89.31.26"),
    ("216.184.159.48", "235.96.225.78"),
    ("216.227.10.221", "235.28.253.36"),
    ("216.254.18.172", "235.7.16.162"),
    ("216.32.132.250", "235.192.139.38"),
    ("216.35.217.178", "235.195.157.81"),
    ("24.0.250.221", "100.15.198.226"),
    ("24.13.62.231", "100.2.192.247"),
    ("24.14.213.138", "100.1.42.141"),
    ("24.5.0.80", "100.9.15.210"),
    ("24.7.198.88", "100.10.6.25"),
    ("24.94.26.44", "100.88.228.35"),
    ("38.15.67.68", "64.3.66.187"),
    ("4.3.88.225", "124.60.155.63"),
    ("63.14.55.111", "95.9.215.7"),
    ("63.195.241.44", "95.179.238.44"),
    ("63.97.7.140", "95.97.9.123"),
    ("64.14.118.196", "0.255.183.58"),
    ("64.34.154.117", "0.221.154.117"),
    ("64.39.15.238", "0.219.7.41"),
    ("10.185.25.118", "117.161.29.118"),
];

/// The 128-bit extension other implementations share, same key.
const V6: &[(&str, &str)] = &[
    ("::1", "78ff:f001:9fc0:20df:8380:b1f1:704:ed"),
    ("::2", "78ff:f001:9fc0:20df:8380:b1f1:704:ef"),
    ("::ffff", "78ff:f001:9fc0:20df:8380:b1f1:704:f838"),
    ("2001:db8::1", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1e"),
    ("2001:db8::2", "4401:2bc:603f:d91d:27f:ff8e:e6f1:dc1c"),
];

fn v4(s: &str) -> u32 {
    s.parse::<Ipv4Addr>().expect("test vector").to_bits()
}

fn v6(s: &str) -> u128 {
    s.parse::<Ipv6Addr>().expect("test vector").to_bits()
}

fn mask4(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        !0u32 << (32 - u32::from(len))
    }
}

fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        !0u128 << (128 - u32::from(len))
    }
}

#[test]
fn ipv4_known_answers() {
    let mut pan = CryptoPan::new(&KEY);
    for &(raw, anon) in V4 {
        assert_eq!(
            Ipv4Addr::from(pan.anonymize_v4(v4(raw))),
            Ipv4Addr::from(v4(anon)),
            "image of {raw}"
        );
        assert_eq!(
            pan.anonymize_v4_uncached(v4(raw)),
            v4(anon),
            "{raw} uncached"
        );
        assert_eq!(pan.deanonymize_v4(v4(anon)), v4(raw), "preimage of {anon}");
        assert_eq!(
            pan.anonymize_ipv4(raw.parse().expect("vector")),
            anon.parse::<Ipv4Addr>().expect("vector")
        );
    }
    assert_eq!(V4.len(), 71);
}

#[test]
fn ipv6_known_answers() {
    let mut pan = CryptoPan::new(&KEY);
    for &(raw, anon) in V6 {
        assert_eq!(
            Ipv6Addr::from(pan.anonymize_v6(v6(raw))),
            Ipv6Addr::from(v6(anon)),
            "image of {raw}"
        );
        assert_eq!(pan.deanonymize_v6(v6(anon)), v6(raw), "preimage of {anon}");
        assert_eq!(
            pan.deanonymize_ipv6(anon.parse().expect("vector")),
            raw.parse::<Ipv6Addr>().expect("vector")
        );
    }
}

#[test]
fn key_from_slice() {
    assert_eq!(
        CryptoPan::from_slice(&KEY[..31]).err(),
        Some(KeyLengthError { len: 31 })
    );
    let mut pan = CryptoPan::from_slice(&KEY).expect("32 bytes");
    assert_eq!(pan.anonymize_v4(v4("128.11.68.132")), v4("135.242.180.132"));
}

#[test]
fn real_prefix_of_known_answers() {
    let pan = CryptoPan::new(&KEY);
    // 192.102.249.13 -> 252.138.62.131: the /16 of the image comes from
    // the /16 of the address, and a /0 from everything.
    assert_eq!(pan.real_prefix_v4(v4("252.138.0.0"), 16), v4("192.102.0.0"));
    assert_eq!(
        pan.real_prefix_v4(v4("252.138.62.131"), 32),
        v4("192.102.249.13")
    );
    assert_eq!(pan.real_prefix_v4(v4("1.2.3.4"), 0), 0);
    assert_eq!(
        pan.real_prefix_v4(v4("252.138.62.131"), 40),
        v4("192.102.249.13")
    );
    assert_eq!(pan.real_prefix_v6(v6("4401:2bc::"), 32), v6("2001:db8::"));
    assert_eq!(
        pan.anonymize_prefix_v6(v6("2001:db8::1"), 32),
        v6("4401:2bc::")
    );
}

#[test]
fn cache_stays_bounded() {
    let mut pan = CryptoPan::new(&KEY);
    for a in 0..(3 * CACHE_ENTRIES as u32) {
        pan.anonymize_v4(a.wrapping_mul(2_654_435_761));
        pan.anonymize_v6(u128::from(a) << 64);
        let (c4, c6) = pan.cached();
        assert!(c4 <= CACHE_ENTRIES && c6 <= CACHE_ENTRIES);
    }
}

fn common_prefix4(a: u32, b: u32) -> u32 {
    (a ^ b).leading_zeros()
}

fn common_prefix6(a: u128, b: u128) -> u32 {
    (a ^ b).leading_zeros()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prefixes_are_preserved_v4(a: u32, b: u32, shared in 0u32..=32) {
        // Make the shared prefix likely to be long, not just ~1 bit.
        let m = if shared == 0 { 0 } else { !0u32 << (32 - shared) };
        let b = (a & m) | (b & !m);
        let mut pan = CryptoPan::new(&KEY);
        let (x, y) = (pan.anonymize_v4(a), pan.anonymize_v4(b));
        prop_assert_eq!(common_prefix4(x, y), common_prefix4(a, b));
    }

    #[test]
    fn prefixes_are_preserved_v6(a: u128, b: u128, shared in 0u32..=128) {
        let m = if shared == 0 { 0 } else { !0u128 << (128 - shared) };
        let b = (a & m) | (b & !m);
        let mut pan = CryptoPan::new(&KEY);
        let (x, y) = (pan.anonymize_v6(a), pan.anonymize_v6(b));
        prop_assert_eq!(common_prefix6(x, y), common_prefix6(a, b));
    }

    #[test]
    fn inverse_round_trips(a: u32, b: u128, key: [u8; 32]) {
        let mut pan = CryptoPan::new(&key);
        let x = pan.anonymize_v4(a);
        prop_assert_eq!(pan.deanonymize_v4(x), a);
        prop_assert_eq!(pan.anonymize_v4(pan.deanonymize_v4(a)), a);
        let y = pan.anonymize_v6(b);
        prop_assert_eq!(pan.deanonymize_v6(y), b);
    }

    #[test]
    fn real_prefix_is_consistent_v4(a: u32, len in 0u8..=32, host: u32) {
        let mut pan = CryptoPan::new(&KEY);
        let anon = pan.anonymize_prefix_v4(a, len);
        prop_assert_eq!(anon, pan.anonymize_v4(a) & mask4(len));
        let real = pan.real_prefix_v4(anon, len);
        prop_assert_eq!(real, a & mask4(len));
        // Any address in the real prefix maps into the anonymized one.
        let member = real | (host & !mask4(len));
        prop_assert_eq!(pan.anonymize_v4(member) & mask4(len), anon);
    }

    #[test]
    fn real_prefix_is_consistent_v6(a: u128, len in 0u8..=128, host: u128) {
        let mut pan = CryptoPan::new(&KEY);
        let anon = pan.anonymize_prefix_v6(a, len);
        prop_assert_eq!(anon, pan.anonymize_v6(a) & mask6(len));
        let real = pan.real_prefix_v6(anon, len);
        prop_assert_eq!(real, a & mask6(len));
        let member = real | (host & !mask6(len));
        prop_assert_eq!(pan.anonymize_v6(member) & mask6(len), anon);
    }

    #[test]
    fn cache_never_changes_results(addrs in proptest::collection::vec(any::<u32>(), 1..64)) {
        let mut pan = CryptoPan::new(&KEY);
        // Ask twice (the second time from the cache), in a random order.
        for &a in addrs.iter().chain(addrs.iter().rev()) {
            prop_assert_eq!(pan.anonymize_v4(a), pan.anonymize_v4_uncached(a));
            let b = u128::from(a) << 80 | u128::from(a);
            prop_assert_eq!(pan.anonymize_v6(b), pan.anonymize_v6_uncached(b));
        }
    }
}
