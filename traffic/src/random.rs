//! Small helpers over a caller-supplied random source.

use rand_core::Rng;

/// A uniform index in `0..n` (`n > 0`), by Lemire's multiply-shift. The bias
/// is below 2^-32 for any pool size Sluice accepts, far under what balancing
/// could notice.
pub(crate) fn index<R: Rng + ?Sized>(rng: &mut R, n: usize) -> usize {
    debug_assert!(n > 0);
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}
