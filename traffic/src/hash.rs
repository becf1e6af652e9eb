//! Stable 64-bit hashing of request keys and endpoint identities.
//!
//! Consistent hashing needs a hash that is the same in every process and
//! every release: a key must land on the same endpoint in each gateway
//! replica, and in the simulator as in `serve`. The standard library's
//! hasher is randomly keyed per process, so it cannot serve. This is FNV-1a
//! (Fowler, Noll and Vo) over the bytes, followed by the splitmix64
//! finaliser (Steele, Lea and Flood, 2014) so that keys differing in one
//! byte spread over the whole ring.
//!
//! It is not keyed, so a client that controls the key can aim at one
//! endpoint; that is true of every consistent hash on a client-chosen key,
//! and rate limits, not the balancer, are the defence.

/// The hash of a request key (a header value, cookie, query or path
/// parameter, client address) or of an endpoint's identity (its address).
pub fn key_hash(bytes: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let h = bytes.iter().fold(OFFSET, |h, &b| (h ^ u64::from(b)).wrapping_mul(PRIME));
    mix(h)
}

/// The splitmix64 finaliser: a bijection on `u64` with full avalanche.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_across_releases() {
        // Changing these values moves every consistently hashed key: do not.
        assert_eq!(key_hash(b""), mix(0xcbf2_9ce4_8422_2325));
        assert_eq!(key_hash(b"10.0.0.1:80"), key_hash(b"10.0.0.1:80"));
        assert_ne!(key_hash(b"10.0.0.1:80"), key_hash(b"10.0.0.1:81"));
    }

    #[test]
    fn one_byte_changes_about_half_the_bits() {
        let a = key_hash(b"user-1000");
        let b = key_hash(b"user-1001");
        let flipped = (a ^ b).count_ones();
        assert!((16..=48).contains(&flipped), "{flipped}");
    }
}
