//! The interpreter's per-packet budget shared out among the slots it runs:
//! by the filters' lengths, max-min fair. Classic BPF has no backward
//! jumps, so a filter runs at most its length: the short ones get all they
//! can use, and what is left is split evenly among the long ones. The caps
//! depend on lengths alone, never on what other filters do with a packet,
//! so no session can take another's share, nor learn anything from it.

use pktd_common::MAX_CLIENTS;

/// Caps per slot, indexed by slot.
pub(super) type Caps = [u16; MAX_CLIENTS as usize];

/// `Globals::interpret_caps`: `budget` shared among the `interpreted`
/// filters (slot, length), then among `all` of them.
pub(super) fn caps(
    interpreted: &[(u32, usize)],
    all: &[(u32, usize)],
    budget: u32,
) -> [u16; 2 * MAX_CLIENTS as usize] {
    let mut caps = [0; 2 * MAX_CLIENTS as usize];
    let (some, every) = caps.split_at_mut(MAX_CLIENTS as usize);
    some.copy_from_slice(&share(interpreted, budget));
    every.copy_from_slice(&share(all, budget));
    caps
}

/// Shares `budget` instructions among `filters` (slot, length): each
/// slot's cap, 0 for slots not named. The caps add up to at most
/// `budget`; a filter whose length fits its cap is never cut short.
pub(super) fn share(filters: &[(u32, usize)], budget: u32) -> Caps {
    let mut by_length = filters.to_vec();
    by_length.sort_by_key(|&(_, length)| length);
    let mut caps = [0u16; MAX_CLIENTS as usize];
    let mut left = u64::from(budget);
    for (index, &(slot, length)) in by_length.iter().enumerate() {
        let even = left / (by_length.len() - index) as u64;
        let cap = (length as u64).min(even).min(u64::from(u16::MAX));
        caps[slot as usize % MAX_CLIENTS as usize] = cap as u16;
        left -= cap;
    }
    caps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_filters_get_their_length_and_long_ones_split_the_rest() {
        // 60 one-instruction filters cannot dilute a 1000-instruction one.
        let mut filters: Vec<(u32, usize)> = (1..=60).map(|slot| (slot, 1)).collect();
        filters.push((0, 1000));
        let caps = share(&filters, 4096);
        assert_eq!(caps[0], 1000);
        assert!(caps[1..=60].iter().all(|&cap| cap == 1));

        let caps = share(&[(0, 4096), (1, 4096), (2, 4096), (3, 5)], 4096);
        assert_eq!(
            &caps[..4],
            &[1363, 1364, 1364, 5],
            "4091 split, the remainder too"
        );
    }

    #[test]
    fn caps_never_add_up_past_the_budget() {
        for count in 1..=64u32 {
            let filters: Vec<(u32, usize)> = (0..count)
                .map(|slot| (slot, (slot as usize * 97) % 4097 + 1))
                .collect();
            let caps = share(&filters, 4096);
            let total: u32 = caps.iter().map(|&cap| u32::from(cap)).sum();
            assert!(total <= 4096, "{count} filters: {total}");
            let lengths: usize = filters.iter().map(|&(_, length)| length).sum();
            if lengths <= 4096 {
                for &(slot, length) in &filters {
                    assert_eq!(usize::from(caps[slot as usize]), length);
                }
            }
        }
    }
}
