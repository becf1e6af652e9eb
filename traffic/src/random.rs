//! Small helpers over a caller-supplied random source.

use std::time::Duration;

use rand_core::Rng;

/// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift. The bias
/// is below 2^-32 for any pool size Sluice accepts, far under what balancing
/// could notice. `n == 0` gives 0 rather than panicking.
pub(crate) fn index<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    debug_assert!(n > 0);
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// A uniform integer in `0..=max`.
pub(crate) fn up_to<R: Rng + ?Sized>(rng: &mut R, max: u64) -> u64 {
    match max.checked_add(1) {
        Some(n) => ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64,
        None => rng.next_u64(),
    }
}

/// A uniform duration in `[0, max]`, at nanosecond resolution.
pub(crate) fn duration_up_to<R: Rng + ?Sized>(rng: &mut R, max: Duration) -> Duration {
    Duration::from_nanos(up_to(rng, crate::time::duration_nanos(max)))
}

/// True with probability `num / den` (`den > 0`; `num >= den` is always true).
pub(crate) fn chance<R: Rng + ?Sized>(rng: &mut R, num: u64, den: u64) -> bool {
    num >= den || up_to(rng, den.saturating_sub(1)) < num
}
