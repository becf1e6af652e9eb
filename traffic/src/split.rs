//! Weighted splits of a route's traffic over several pools (canary
//! releases, blue/green).
//!
//! The caller supplies a point in `u64`: a fresh random number for an
//! unpinned request, or [`key_hash`](crate::key_hash) of a sticky key (a
//! header, a cookie, the client address), so that every request with the
//! same key lands on the same side for as long as the weights stay the
//! same. The point is reduced modulo the total weight and the cumulative
//! weights, in list order, pick the side. When the first side's weight
//! grows and the total stays the same (5/95 to 10/90), every key it held
//! stays and it takes new ones from the next side, so a canary listed first
//! keeps its pinned users as it ramps up.

/// The index of the side that `point` falls on, or `None` when every weight
/// is zero.
pub fn choose(weights: &[u32], point: u64) -> Option<usize> {
    let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
    if total == 0 {
        return None;
    }
    let mut x = point % total;
    for (i, &w) in weights.iter().enumerate() {
        let w = u64::from(w);
        if x < w {
            return Some(i);
        }
        x -= w;
    }
    // Unreachable: `x < total` falls within some side.
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key_hash;

    #[test]
    fn splits_in_proportion() {
        let weights = [90, 10];
        let mut counts = [0u32; 2];
        for i in 0..10_000u64 {
            counts[choose(&weights, key_hash(&i.to_le_bytes())).unwrap()] += 1;
        }
        assert!((8_800..=9_200).contains(&counts[0]), "{counts:?}");
    }

    #[test]
    fn zero_weights_take_nothing_and_all_zero_is_none() {
        assert_eq!(choose(&[0, 5], 3), Some(1));
        assert_eq!(choose(&[5, 0], 3), Some(0));
        assert_eq!(choose(&[0, 0], 3), None);
        assert_eq!(choose(&[], 3), None);
    }

    #[test]
    fn a_growing_first_side_keeps_its_keys() {
        for i in 0..2_000u64 {
            let point = key_hash(&i.to_le_bytes());
            if choose(&[5, 95], point) == Some(0) {
                assert_eq!(choose(&[10, 90], point), Some(0));
            }
        }
    }
}
