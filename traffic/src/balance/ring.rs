//! The hash ring behind `consistent_hash`.
//!
//! Karger et al.'s consistent hashing (1997) with virtual nodes: each
//! endpoint owns many points on a 64-bit ring, as many as its weight times
//! [`POINTS_PER_WEIGHT`], and a key belongs to the first point at or after
//! its hash, going round. The points of an endpoint depend only on that
//! endpoint's own identity key, never on its position in the pool or on the
//! other endpoints, so adding or removing one endpoint moves exactly the
//! keys that it gains or loses (about 1/N of them) and no key moves between
//! two endpoints that stayed.
//!
//! The alternative considered was Maglev (Eisenbud et al., 2016): a lookup
//! table gives O(1) picks and a more even spread with fewer entries, but a
//! change of membership moves some keys between surviving endpoints, and
//! skipping an unhealthy endpoint means rebuilding the table. With the ring,
//! an unhealthy or excluded endpoint is skipped at lookup by walking on to
//! the next point, which moves only that endpoint's keys and needs no
//! rebuild, so health changes stay lock-free. The cost is a binary search
//! per pick and the memory of the points.

use crate::hash::mix;

/// Ring points per unit of weight. With 128 points, an endpoint's share of
/// the ring deviates from its weight's share by about 9% (one standard
/// deviation, 1/sqrt(128)).
pub(crate) const POINTS_PER_WEIGHT: u64 = 128;

/// Most points on one ring (3 MiB). Pools whose weights sum past
/// `MAX_POINTS / POINTS_PER_WEIGHT` (2048) get proportionally fewer points
/// per endpoint; shares stay proportional, but the number of points then
/// depends on the other endpoints' weights, so a membership change moves
/// somewhat more than the minimum.
pub(crate) const MAX_POINTS: u64 = 1 << 18;

/// Points sorted by hash, with the endpoint that owns each.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    hashes: Vec<u64>,
    owners: Vec<u32>,
}

impl Ring {
    /// A ring over endpoints with these identity keys and weights (zipped;
    /// endpoints of weight 0 get no points).
    pub(crate) fn new(keys: &[u64], weights: &[u32]) -> Ring {
        let total: u64 =
            weights.iter().map(|&w| u64::from(w).saturating_mul(POINTS_PER_WEIGHT)).sum();
        let points = |w: u32| -> u64 {
            let full = u64::from(w) * POINTS_PER_WEIGHT;
            if w == 0 || total <= MAX_POINTS {
                full
            } else {
                let scaled = u128::from(full) * u128::from(MAX_POINTS) / u128::from(total);
                (scaled as u64).max(1)
            }
        };

        let mut ring: Vec<(u64, u32)> = Vec::new();
        for (i, (&key, &w)) in keys.iter().zip(weights).enumerate() {
            ring.extend((0..points(w)).map(|v| (point_hash(key, v), i as u32)));
        }
        // Sorting by owner too makes the order of colliding points fixed.
        ring.sort_unstable();
        let (hashes, owners) = ring.into_iter().unzip();
        Ring { hashes, owners }
    }

    /// The owner of the first point at or after `hash` (going round) that
    /// `ok` accepts, or `None` when it accepts no owner on the ring.
    pub(crate) fn lookup(&self, hash: u64, mut ok: impl FnMut(usize) -> bool) -> Option<usize> {
        let n = self.hashes.len();
        let start = self.hashes.partition_point(|&h| h < hash);
        (0..n).map(|k| self.owners[(start + k) % n] as usize).find(|&i| ok(i))
    }
}

/// Where the `v`-th point of the endpoint with identity `key` sits.
fn point_hash(key: u64, v: u64) -> u64 {
    mix(key ^ mix(v.wrapping_add(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_follow_weights() {
        let ring = Ring::new(&[1, 2, 3], &[1, 3, 0]);
        let count = |i| ring.owners.iter().filter(|&&o| o == i).count() as u64;
        assert_eq!(count(0), POINTS_PER_WEIGHT);
        assert_eq!(count(1), 3 * POINTS_PER_WEIGHT);
        assert_eq!(count(2), 0);
    }

    #[test]
    fn huge_weights_are_capped_but_keep_every_endpoint() {
        let ring = Ring::new(&[1, 2], &[u32::MAX, 1]);
        assert!(ring.hashes.len() as u64 <= MAX_POINTS + 1);
        assert!(ring.owners.contains(&1));
    }

    #[test]
    fn empty_ring_finds_nothing() {
        let ring = Ring::new(&[], &[]);
        assert!(ring.hashes.is_empty());
        assert_eq!(ring.lookup(42, |_| true), None);
        let zero = Ring::new(&[7], &[0]);
        assert_eq!(zero.lookup(42, |_| true), None);
    }

    #[test]
    fn lookup_wraps_round_and_skips_refused_owners() {
        let ring = Ring::new(&[10, 20], &[1, 1]);
        let last = *ring.hashes.last().unwrap();
        let first_owner = ring.owners[0] as usize;
        assert_eq!(ring.lookup(last.wrapping_add(1), |_| true), Some(first_owner));
        let other = 1 - first_owner;
        assert_eq!(ring.lookup(last.wrapping_add(1), |i| i == other), Some(other));
        assert_eq!(ring.lookup(5, |_| false), None);
    }
}
